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
from the code under test (pki.py).

The SMTP probes are also run against a deliberately vulnerable fake
server (a relay for anybody, bare-LF and bare-CR ends of data, commands
buffered across STARTTLS answered inside TLS, AUTH before TLS, TLS 1.0
and 1.1 where this OpenSSL still has them), which they must
each fail: a probe that always passed would go unnoticed against our own
daemon."""
import json
import os
import re
import shutil
import socket
import socketserver
import ssl
import subprocess
import tempfile
import threading
import unittest

from harness import MAILCTL, SLOW, DnsServer, Server, free_port, test_cert
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


BARE_END = re.compile(rb"(\r\n|\n|\r)\.(\r\n|\n|\r)")


class _Vulnerable(socketserver.BaseRequestHandler):
    """One session of a server with every flaw the probes look for."""

    def handle(self):
        self.sock = self.request
        self.sock.settimeout(10 * SLOW)
        self.buf = b""
        try:
            self.send(b"220 fake.test ESMTP\r\n")
            while True:
                line = self.line()
                if line is None:
                    return
                verb = line.split(b" ", 1)[0].upper()
                if verb == b"EHLO":
                    ext = [b"AUTH PLAIN LOGIN"] + ([] if self.tls() else [b"STARTTLS"])
                    self.send(b"250-fake.test\r\n" + b"".join(
                        b"250-" + e + b"\r\n" for e in ext[:-1]) + b"250 " + ext[-1] + b"\r\n")
                elif verb == b"STARTTLS":
                    self.send(b"220 go ahead\r\n")
                    # the flaw: what came with STARTTLS stays in self.buf
                    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                    ctx.load_cert_chain(*self.server.cert)
                    # and it takes TLS 1.0, where this OpenSSL still can
                    try:
                        ctx.minimum_version = ssl.TLSVersion.TLSv1
                        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                    except (ValueError, ssl.SSLError):
                        pass
                    self.sock = ctx.wrap_socket(self.sock, server_side=True)
                elif verb == b"DATA":
                    self.send(b"354 go\r\n")
                    while not BARE_END.search(self.buf):
                        if not self.more():
                            return
                    self.buf = self.buf[BARE_END.search(self.buf).end():]
                    self.send(b"250 2.0.0 queued\r\n")
                elif verb == b"QUIT":
                    self.send(b"221 bye\r\n")
                    return
                else:   # MAIL, RCPT (anybody to anywhere), NOOP, RSET
                    self.send(b"250 ok\r\n")
        except (OSError, ssl.SSLError):
            return

    def tls(self):
        return isinstance(self.sock, ssl.SSLSocket)

    def send(self, data):
        self.sock.sendall(data)

    def more(self):
        d = self.sock.recv(65536)
        self.buf += d
        return bool(d)

    def line(self):
        while b"\n" not in self.buf:
            if not self.more():
                return None
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")


class _VulnerableServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class SelftestVulnerableTest(unittest.TestCase):
    def test_probes_fail_a_vulnerable_server(self):
        port = free_port()
        fake = _VulnerableServer(("127.0.0.1", port), _Vulnerable)
        fake.cert = test_cert()
        t = threading.Thread(target=fake.serve_forever, kwargs={"poll_interval": 0.05},
                             daemon=True)
        t.start()
        # mailctl alone, against the listener of this config (no daemon)
        srv = Server(port=port, extra="local_domains = fake.test\n"
                     "relay_networks = 127.0.0.1/32\n")
        try:
            r = srv.mailctl("--json", "selftest", check=False)
        finally:
            fake.shutdown()
            fake.server_close()
            t.join(10)
            srv.cleanup()
        self.assertEqual(r.returncode, 1, r.stderr)
        by = {c["check"]: c for c in json.loads(r.stdout)["checks"]
              if c["target"] == "127.0.0.1:%d" % port}
        for check in ("auth_plaintext", "open_relay", "smtp_smuggling", "starttls_inject"):
            self.assertEqual(by[check]["result"], "fail", by[check])
            self.assertTrue(by[check]["fix"], by[check])
        self.assertEqual(by["auth_plaintext"]["detail"], "AUTH offered before TLS")
        # every address trick is reported
        for trick in ("<selftest@relay-test.invalid>", "<@fake.test:selftest@relay-test.invalid>",
                      "<selftest@relay-test.invalid@fake.test>", "<selftest@[192.0.2.1]>",
                      "<selftest@relay-test.invalid.>"):
            self.assertIn(trick, by["open_relay"]["detail"])
        self.assertEqual(by["smtp_smuggling"]["detail"],
                         "the data ended at \\n.\\n \\r\\n.\\n \\n.\\r\\n \\r.\\r\\n \\r\\n.\\r")
        self.assertIn("answered inside it", by["starttls_inject"]["detail"])
        self.assertIn("CVE-2011-0411", by["starttls_inject"]["fix"])
        # the certificate itself is fine
        self.assertEqual(by["tls_cert"]["result"], "pass", by["tls_cert"])
        # TLS 1.1 taken: a failure, where both ends can still speak it
        if ssl.HAS_TLSv1_1 and by["tls_version"]["result"] != "skip":
            self.assertEqual(by["tls_version"]["result"], "fail", by["tls_version"])
            self.assertIn("handshake succeeded", by["tls_version"]["detail"])
            self.assertIn("tls_priority", by["tls_version"]["fix"])


if __name__ == "__main__":
    unittest.main()
