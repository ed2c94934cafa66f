"""`mailctl selftest [--json]` against a real daemon and a loopback DNS
server (ldns-testns): a good config passes every check; a deliberately
bad one (relay and plaintext AUTH for everybody, a certificate about to
expire, an MX elsewhere, two SPF records, no DMARC, a DKIM selector that
publishes another key, an MTA-STS policy that leaves our MX out, a TLSA
record of another certificate) fails exactly those checks, each with its
fix, and the exit code tells the two apart. The probes queue nothing.

The MTA-STS policies come from a loopback HTTPS server (https_policy.py)
with a certificate of a test CA; the TLSA answer carries the AD bit, as a
validating resolver's would, and its association data is computed apart
from the code under test (pki.py)."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import MAILCTL, DnsServer, Server, free_port, test_cert
from https_policy import PolicyServer
from pki import Cert, Pki
from testns_zone import entry, nxdomain_for_the_rest

WEB = "127.0.0.20"      # the MTA-STS policy host of both domains


def secure(text):
    """An entry whose answer says it was DNSSEC-validated (the AD bit)."""
    return text.replace("REPLY QR AA ", "REPLY QR AA AD ", 1)


def keygen(directory, domain, selector):
    """A new Ed25519 key; returns its path and the TXT rdata to publish."""
    path = os.path.join(directory, "%s-%s.pem" % (domain, selector))
    out = subprocess.run([MAILCTL, "dkim-keygen", domain, selector, "--type", "ed25519",
                          "--out", path], capture_output=True, text=True, check=True).stdout
    return path, " ".join(re.findall(r'"[^"]*"', out))


def policy(*mx):
    return "version: STSv1\nmode: enforce\n%smax_age: 86400\n" % "".join(
        "mx: %s\n" % m for m in mx)


class SelftestTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ms-selftest-")
        cls.pki = Pki()
        web = cls.pki.cert(["mta-sts.good.test", "mta-sts.bad.test"])
        cls.https_port = free_port(WEB)
        cls.web = PolicyServer(WEB, cls.https_port, web.chain, web.key).start()
        cls.web.set("mta-sts.good.test", policy("mx.test", "*.backup.test"))
        cls.web.set("mta-sts.bad.test", policy("mx.test"))
        cls.good_key, good_txt = keygen(cls.dir, "good.test", "s1")
        cls.bad_key, cls.bad_txt = keygen(cls.dir, "bad.test", "s1")
        # The certificate the good config's listener shows (DANE-EE, SPKI).
        cert, key = test_cert()
        tlsa = Cert(cert, key).tlsa(3, 1, 1)
        zone = (entry("good.test", "MX", ["10 mx.test.", "20 mx2.backup.test."]) +
                entry("good.test", "TXT", ['"v=spf1 mx -all"', '"google-site-verification=x"']) +
                entry("_dmarc.good.test", "TXT", ['"v=DMARC1; p=reject"']) +
                entry("s1._domainkey.good.test", "TXT", [good_txt]) +
                entry("_mta-sts.good.test", "TXT", ['"v=STSv1; id=2026120101"']) +
                entry("plain.test", "MX", ["10 mx.test."]) +
                entry("plain.test", "TXT", ['"v=spf1 mx -all"']) +
                entry("_dmarc.plain.test", "TXT", ['"v=DMARC1; p=none"']) +
                entry("_mta-sts.plain.test", "TXT") +
                entry("bad.test", "MX", ["10 elsewhere.example."]) +
                entry("bad.test", "TXT", ['"v=spf1 mx -all"', '"v=spf1 +all"']) +
                entry("_dmarc.bad.test", "TXT") +
                # the good domain's key published for the bad one
                entry("s1._domainkey.bad.test", "TXT", [good_txt]) +
                entry("_mta-sts.bad.test", "TXT", ['"v=STSv1; id=1"']) +
                secure(entry("_25._tcp.mx.test", "TLSA", [tlsa])) +
                entry("_25._tcp.unsigned.test", "TLSA", [tlsa]))
        for host in ("mta-sts.good.test", "mta-sts.bad.test"):
            zone += entry(host, "A", [WEB]) + entry(host, "AAAA")
        data = os.path.join(cls.dir, "zone.data")
        with open(data, "w") as f:
            f.write(zone + nxdomain_for_the_rest())
        cls.dns = DnsServer(data)

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()
        cls.web.stop()
        cls.pki.cleanup()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def run_selftest(self, extra, cert, hostname="mx.test"):
        srv = Server(hostname=hostname, extra="tls_cert_file = %s\ntls_key_file = %s\n" % cert +
                     "dns_server = 127.0.0.1:%d\n" % self.dns.port +
                     "mta_sts_port = %d\nmta_sts_ca_file = %s\n" % (
                         self.https_port, self.pki.ca.pem) +
                     # the test DNS has no PTR records: DATA waits that long
                     "client_dns_timeout = 1s\n" + extra)
        # The harness points dns_server at a dead port; the last line wins.
        srv.write_config(open(srv.conf).read().replace("dns_server = 127.0.0.1:1\n", ""))
        srv.start()
        try:
            r = srv.mailctl("--json", "selftest", check=False)
            text = srv.mailctl("selftest", check=False)
            self.assertEqual(srv.queue_json()["messages"], [])
        finally:
            self.assertEqual(srv.stop(), 0)
            srv.cleanup()
        out = json.loads(r.stdout)
        return r.returncode, out, text

    def results(self, out):
        return {(c["check"], c["result"]) for c in out["checks"]}

    def test_good_config_passes(self):
        rc, out, text = self.run_selftest("local_domains = good.test plain.test\n"
                                          "relay_networks = 127.0.0.1/32\n"
                                          "dkim_sign = good.test s1 %s\n" % self.good_key,
                                          test_cert())
        failed = [c for c in out["checks"] if c["result"] == "fail"]
        self.assertEqual(failed, [])
        self.assertEqual(rc, 0)
        res = self.results(out)
        for check in ("open_relay", "smtp_smuggling", "starttls_inject", "auth_plaintext",
                      "tls_cert", "dns_mx", "dns_spf", "dns_dmarc", "dns_dkim",
                      "dns_mta_sts", "dns_tlsa"):
            self.assertIn((check, "pass"), res)
        by = {(c["check"], c["target"]): c for c in out["checks"]}
        self.assertEqual(by[("dns_dkim", "s1._domainkey.good.test")]["result"], "pass")
        # every MX host listed: mx.test, and mx2.backup.test by its wildcard
        self.assertEqual(by[("dns_mta_sts", "good.test")]["result"], "pass")
        self.assertIn("id=2026120101, mode enforce", by[("dns_mta_sts", "good.test")]["detail"])
        # no _mta-sts record: nothing to check
        self.assertEqual(by[("dns_mta_sts", "plain.test")]["result"], "skip")
        self.assertIn("DANE-EE", by[("dns_tlsa", "_25._tcp.mx.test")]["detail"])
        # skip: a GnuTLS built without TLS 1.0 and 1.1 cannot try them
        self.assertTrue(("tls_version", "pass") in res or ("tls_version", "skip") in res)
        self.assertIn("0 failed", text.stdout)

    def test_bad_config_fails_with_fixes(self):
        rc, out, text = self.run_selftest("local_domains = bad.test\n"
                                          "relay_networks = 0.0.0.0/0\n"
                                          "auth_plaintext_networks = 0.0.0.0/0\n"
                                          "dkim_sign = bad.test s1 %s\n" % self.bad_key,
                                          test_cert("mx.test", days=5))
        self.assertEqual(rc, 1)
        failed = {c["check"]: c for c in out["checks"] if c["result"] == "fail"}
        self.assertEqual(sorted(failed), ["auth_plaintext", "dns_dkim", "dns_dmarc",
                                          "dns_mta_sts", "dns_mx", "dns_spf", "dns_tlsa",
                                          "open_relay", "tls_cert"])
        for c in failed.values():
            self.assertTrue(c["fix"], c)
        self.assertIn("expires in", failed["tls_cert"]["detail"])
        self.assertIn("MX 10 mx.test", failed["dns_mx"]["fix"])
        self.assertIn("2 SPF records", failed["dns_spf"]["detail"])
        # the selector publishes the good domain's key: the fix is ours
        self.assertIn("is not the key of", failed["dns_dkim"]["detail"])
        self.assertIn(re.search(r"p=[^\"]+", self.bad_txt).group(0), failed["dns_dkim"]["fix"])
        self.assertIn("elsewhere.example", failed["dns_mta_sts"]["detail"])
        self.assertIn('mx: elsewhere.example', failed["dns_mta_sts"]["fix"])
        self.assertIn("matches no TLSA record", failed["dns_tlsa"]["detail"])
        self.assertIn("TLSA 3 1 1 ", failed["dns_tlsa"]["fix"])
        self.assertIn("fix: ", text.stdout)
        self.assertIn("%d failed" % out["failures"], text.stdout)
        self.assertEqual(out["failures"], 9)

    def test_unreachable_policy_and_unsigned_tlsa(self):
        """A policy host that does not answer, and TLSA records from an
        answer that was not validated, are failures with their fixes."""
        web = self.https_port
        self.https_port = free_port(WEB)   # nobody listens there
        try:
            rc, out, _ = self.run_selftest("local_domains = good.test\n"
                                           "relay_networks = 127.0.0.1/32\n", test_cert(),
                                           hostname="unsigned.test")
        finally:
            self.https_port = web
        by = {c["check"]: c for c in out["checks"]}
        self.assertEqual(rc, 1)
        self.assertEqual(by["dns_tlsa"]["result"], "fail")
        self.assertIn("not DNSSEC-validated", by["dns_tlsa"]["detail"])
        self.assertIn("DNSSEC", by["dns_tlsa"]["fix"])
        self.assertEqual(by["dns_mta_sts"]["result"], "fail")
        self.assertIn("cannot be fetched", by["dns_mta_sts"]["detail"])
        self.assertIn("https://mta-sts.good.test/.well-known/mta-sts.txt",
                      by["dns_mta_sts"]["fix"])


if __name__ == "__main__":
    unittest.main()
