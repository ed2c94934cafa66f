"""The DNSSEC state of dns/'s answers (dns_tlsa_lookup, dns_sec_mx_lookup,
dns_sec_host_lookup, dns_txt_lookup, all through the one cached resolver)
against the DNSSEC lab: real signatures checked by a real validating
resolver (unbound), served by nsd from zones signed with ldns-signzone.
Driven through tls_probe."""
import os
import subprocess
import unittest

from dnssec_lab import DnssecLab
from harness import SLOW

PROBE = os.environ.get("TLS_PROBE_BIN", "")
H32 = "0123456789abcdef" * 4


def probe(*args):
    r = subprocess.run([PROBE] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=60 * SLOW)
    if r.returncode != 0:
        raise AssertionError("tls_probe %s: %d %s" % (args, r.returncode, r.stderr))
    lines = r.stdout.splitlines()
    head = dict(kv.split("=", 1) for kv in lines[0].split()[1:] if "=" in kv)
    return head, lines[1:]


@unittest.skipUnless(PROBE, "TLS_PROBE_BIN not set (run through make integration)")
class DnssecLabTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        lab = DnssecLab()
        lab.zone("secure.test", [
            "@ IN MX 10 mx", "@ IN MX 20 mx2",
            "mx IN A 127.0.0.2",
            "_25._tcp.mx IN TLSA 3 1 1 " + H32,
            "_25._tcp.mx IN TLSA 2 0 1 " + H32[::-1],
            "mx2 IN A 127.0.0.3",
            "alias IN CNAME mx",
            "out IN CNAME mx.insecure.test.",
            "_25._tcp.out IN TLSA 3 1 1 " + H32,
            "tlsalias IN A 127.0.0.4",
            "_25._tcp.tlsalias IN CNAME _25._tcp.mx",
            '_mta-sts IN TXT "v=STSv1; id=20260101;"',
            "nomx IN A 127.0.0.5",
        ])
        lab.zone("insecure.test", [
            "@ IN MX 10 mx", "mx IN A 127.0.0.6",
            "_25._tcp.mx IN TLSA 3 1 1 " + H32,
        ], mode="insecure")
        lab.zone("bogus.test", [
            "@ IN MX 10 mx", "mx IN A 127.0.0.7",
            "_25._tcp.mx IN TLSA 3 1 1 " + H32,
        ], mode="bogus")
        lab.zone("broken.test", [
            "@ IN MX 10 mx", "mx IN A 127.0.0.8",
            "_25._tcp.mx IN TLSA 3 1 1 " + H32,
        ], broken=[("_25._tcp.mx", "TLSA")])
        cls.lab = lab.start()
        cls.dns = "127.0.0.1:%d" % lab.port

    @classmethod
    def tearDownClass(cls):
        cls.lab.cleanup()

    def test_tlsa_secure(self):
        head, rrs = probe("tlsa", self.dns, "mx.secure.test")
        self.assertEqual((head["kind"], head["state"]), ("data", "secure"))
        self.assertEqual(head["qname"], "_25._tcp.mx.secure.test")
        self.assertEqual(sorted(rrs), sorted(["rr 3 1 1 " + H32, "rr 2 0 1 " + H32[::-1]]))

    def test_tlsa_through_cname(self):
        head, rrs = probe("tlsa", self.dns, "tlsalias.secure.test")
        self.assertEqual((head["kind"], head["state"]), ("data", "secure"))
        self.assertEqual(len(rrs), 2)

    def test_tlsa_absent_is_secure_denial(self):
        head, rrs = probe("tlsa", self.dns, "mx2.secure.test")
        self.assertEqual((head["kind"], head["state"]), ("nxdomain", "secure"))
        self.assertEqual(rrs, [])
        head, _ = probe("tlsa", self.dns, "mx.secure.test", 587)
        self.assertEqual(head["state"], "secure")
        self.assertIn(head["kind"], ("nxdomain", "nodata"))

    def test_tlsa_insecure(self):
        head, rrs = probe("tlsa", self.dns, "mx.insecure.test")
        self.assertEqual((head["kind"], head["state"]), ("data", "insecure"))
        self.assertEqual(rrs, ["rr 3 1 1 " + H32])   # found, but not to be trusted

    def test_tlsa_bogus_zone(self):
        head, rrs = probe("tlsa", self.dns, "mx.bogus.test")
        self.assertEqual((head["kind"], head["state"]), ("fail", "bogus"))
        self.assertEqual(rrs, [])
        self.assertIn("SERVFAIL", head["detail"])

    def test_tlsa_bogus_rrsig(self):
        # the zone is signed and anchored, only the TLSA signature is spoiled
        head, _ = probe("host", self.dns, "mx.broken.test")
        self.assertEqual(head["state"], "secure")
        head, rrs = probe("tlsa", self.dns, "mx.broken.test")
        self.assertEqual((head["kind"], head["state"]), ("fail", "bogus"))
        self.assertEqual(rrs, [])

    def test_mx_views(self):
        head, names = probe("mx", self.dns, "secure.test")
        self.assertEqual((head["kind"], head["state"]), ("data", "secure"))
        self.assertEqual(sorted(names), ["name mx.secure.test", "name mx2.secure.test"])
        head, _ = probe("mx", self.dns, "insecure.test")
        self.assertEqual(head["state"], "insecure")
        head, _ = probe("mx", self.dns, "bogus.test")
        self.assertEqual(head["state"], "bogus")
        head, names = probe("mx", self.dns, "nomx.secure.test")
        self.assertEqual((head["kind"], head["state"]), ("nodata", "secure"))

    def test_host_views(self):
        head, _ = probe("host", self.dns, "mx.secure.test")
        self.assertEqual((head["state"], head["alias"], head["expanded"]),
                         ("secure", "0", "mx.secure.test"))
        head, _ = probe("host", self.dns, "alias.secure.test")
        self.assertEqual((head["state"], head["alias"], head["expanded"]),
                         ("secure", "1", "mx.secure.test"))
        # a signed alias into an unsigned zone: the chain is insecure, the alias is not
        head, _ = probe("host", self.dns, "out.secure.test")
        self.assertEqual((head["state"], head["alias"], head["alias_state"], head["expanded"]),
                         ("insecure", "1", "secure", "mx.insecure.test"))
        head, _ = probe("host", self.dns, "mx.insecure.test")
        self.assertEqual((head["state"], head["alias"]), ("insecure", "0"))
        head, _ = probe("host", self.dns, "mx.bogus.test")
        self.assertEqual(head["state"], "bogus")

    def test_txt(self):
        head, recs = probe("txt", self.dns, "_mta-sts.secure.test")
        self.assertEqual((head["kind"], head["state"]), ("data", "secure"))
        self.assertEqual(recs, ["record v=STSv1; id=20260101;"])

    def test_update_is_seen(self):
        z = self.lab.zones["insecure.test"]
        old = list(z.records)
        self.lab.update("insecure.test", old[:2])     # TLSA record removed
        try:
            head, rrs = probe("tlsa", self.dns, "mx.insecure.test")
            self.assertEqual((head["kind"], rrs), ("nxdomain", []))
        finally:
            self.lab.update("insecure.test", old)
        head, rrs = probe("tlsa", self.dns, "mx.insecure.test")
        self.assertEqual(len(rrs), 1)


if __name__ == "__main__":
    unittest.main()
