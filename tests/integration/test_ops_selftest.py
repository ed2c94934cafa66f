"""`mailctl selftest [--json]` against a real daemon and a loopback DNS
server (ldns-testns): a good config passes every check; a deliberately
bad one (relay and plaintext AUTH for everybody, a certificate about to
expire, an MX elsewhere, two SPF records, no DMARC) fails exactly those
checks, each with its fix, and the exit code tells the two apart. The
probes queue nothing."""
import json
import os
import tempfile
import unittest

from harness import DnsServer, Server, test_cert
from test_auth_dns import entry


ZONE = (entry("good.test", "MX", ["10 mx.test."]) +
        entry("good.test", "TXT", ['"v=spf1 mx -all"', '"google-site-verification=x"']) +
        entry("_dmarc.good.test", "TXT", ['"v=DMARC1; p=reject"']) +
        entry("bad.test", "MX", ["10 elsewhere.example."]) +
        entry("bad.test", "TXT", ['"v=spf1 mx -all"', '"v=spf1 +all"']) +
        entry("_dmarc.bad.test", "TXT"))


class SelftestTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ms-selftest-")
        data = os.path.join(cls.dir, "zone.data")
        with open(data, "w") as f:
            f.write(ZONE)
        cls.dns = DnsServer(data)

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()

    def run_selftest(self, extra, cert):
        srv = Server("tls_cert_file = %s\ntls_key_file = %s\n" % cert +
                     "dns_server = 127.0.0.1:%d\n" % self.dns.port +
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
        rc, out, text = self.run_selftest("local_domains = good.test\n"
                                          "relay_networks = 127.0.0.1/32\n", test_cert())
        failed = [c for c in out["checks"] if c["result"] == "fail"]
        self.assertEqual(failed, [])
        self.assertEqual(rc, 0)
        res = self.results(out)
        for check in ("open_relay", "smtp_smuggling", "starttls_inject", "auth_plaintext",
                      "tls_cert", "dns_mx", "dns_spf", "dns_dmarc"):
            self.assertIn((check, "pass"), res)
        # skip: a GnuTLS built without TLS 1.0 and 1.1 cannot try them
        self.assertTrue(("tls_version", "pass") in res or ("tls_version", "skip") in res)
        self.assertIn("0 failed", text.stdout)

    def test_bad_config_fails_with_fixes(self):
        rc, out, text = self.run_selftest("local_domains = bad.test\n"
                                          "relay_networks = 0.0.0.0/0\n"
                                          "auth_plaintext_networks = 0.0.0.0/0\n",
                                          test_cert("mx.test", days=5))
        self.assertEqual(rc, 1)
        failed = {c["check"]: c for c in out["checks"] if c["result"] == "fail"}
        self.assertEqual(sorted(failed), ["auth_plaintext", "dns_dmarc", "dns_mx", "dns_spf",
                                          "open_relay", "tls_cert"])
        for c in failed.values():
            self.assertTrue(c["fix"], c)
        self.assertIn("expires in", failed["tls_cert"]["detail"])
        self.assertIn("MX 10 mx.test", failed["dns_mx"]["fix"])
        self.assertIn("2 SPF records", failed["dns_spf"]["detail"])
        self.assertIn("fix: ", text.stdout)
        self.assertIn("%d failed" % out["failures"], text.stdout)
        self.assertEqual(out["failures"], 6)


if __name__ == "__main__":
    unittest.main()
