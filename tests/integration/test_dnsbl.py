"""DNSBL lookups against real test lists: ldns-testns on loopback serves
tests/integration/dns/dnsbl.data, and the CUnit program
tests/unit/test_dnsbl_live.c (built next to the mailserver binary under
test, in BUILD/tests/) checks server/dnsbl against it. Phase B adds
sessions refused at connect on top of this."""
import os
import subprocess
import unittest

from harness import DnsServer, MAILSERVER, SLOW

HERE = os.path.dirname(os.path.abspath(__file__))
LIVE = os.path.join(os.path.dirname(MAILSERVER), "tests", "test_dnsbl_live")


class DnsblLiveTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(LIVE):
            if "MAILSERVER_BIN" in os.environ:
                raise AssertionError("%s not built (make integration builds it)" % LIVE)
            raise unittest.SkipTest("%s not built" % LIVE)
        cls.dns = DnsServer(os.path.join(HERE, "dns", "dnsbl.data"))

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()

    def test_lists(self):
        env = dict(os.environ, DNS_TEST_SERVER="127.0.0.1:%d" % self.dns.port)
        p = subprocess.run([LIVE], env=env, capture_output=True, text=True,
                           timeout=60 * SLOW)
        self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-3000:])
        self.assertIn("listings, scores, codes ...passed", p.stdout)
        self.assertNotIn("skipped", p.stdout)


if __name__ == "__main__":
    unittest.main()
