"""DANE (RFC 7672) and the verify level end to end, in isolation from the
relay: tls_probe runs what relay/relay.c will run (tls_policy_destination,
STARTTLS, tls_policy_check_session, one message) against SMTP peers with
STARTTLS and certificates from a certtool CA, with TLSA records served by
the DNSSEC lab (nsd + a validating unbound)."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from dnssec_lab import DnssecLab
from harness import SLOW, free_port
from peers import Peer
from pki import Pki

PROBE = os.environ.get("TLS_PROBE_BIN", "")


def private_netns():
    """Inside tests/run_integration.sh's own network namespace, as root:
    port 53 is ours, and a mount namespace can give tools a resolv.conf."""
    return os.environ.get("MS_IN_NETNS") == "1" and os.geteuid() == 0 and \
        shutil.which("unshare") is not None


def run_probe(*args):
    r = subprocess.run([PROBE] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=120 * SLOW)
    if r.returncode != 0:
        raise AssertionError("tls_probe %s: %d %s" % (args, r.returncode, r.stderr))
    return r.stdout


def fields(line):
    """'word k=v k=v reason=free text' -> dict (reason= runs to the end)."""
    out = {}
    rest = line.split(" ", 1)[1] if " " in line else ""
    while rest:
        if rest.startswith("reason=") or rest.startswith("detail="):
            k, v = rest.split("=", 1)
            out[k] = v
            break
        part, _, rest = rest.partition(" ")
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    return out


def lines(out, word):
    return [fields(l) for l in out.splitlines() if l.startswith(word + " ")]


@unittest.skipUnless(PROBE, "TLS_PROBE_BIN not set (run through make integration)")
class DaneTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = pki = Pki()
        cls.port = port = free_port()
        ee = pki.cert(["mx-ee.dane.test"])
        ta = pki.cert(["mx-ta.dane.test"])
        other = pki.cert(["mx-bad.dane.test"])
        wild = pki.cert(["*.dane.test"])
        cls.certs = {"ee": ee, "ta": ta}
        peers = {
            "127.0.0.2": dict(starttls=(ee.chain, ee.key)),
            "127.0.0.3": dict(starttls=(ta.chain, ta.key)),
            "127.0.0.4": dict(starttls=(other.chain, other.key)),
            "127.0.0.5": dict(),                                  # no STARTTLS
            "127.0.0.6": dict(starttls=(other.chain, other.key)),
            "127.0.0.7": dict(starttls=(ee.chain, ee.key)),
            "127.0.0.8": dict(starttls=(ee.chain, ee.key)),
            "127.0.0.9": dict(starttls=(ee.chain, ee.key)),
            "127.0.0.10": dict(starttls=(wild.chain, wild.key)),
        }
        cls.peers = {a: Peer(a, port, **kw).start() for a, kw in peers.items()}
        tl = "_%d._tcp" % port
        lab = DnssecLab()
        lab.zone("dane.test", [
            "ee MX 10 mx-ee", "mx-ee A 127.0.0.2", "%s.mx-ee TLSA %s" % (tl, ee.tlsa(3, 1, 1)),
            "ta MX 10 mx-ta", "mx-ta A 127.0.0.3", "%s.mx-ta TLSA %s" % (tl, pki.ca.tlsa(2, 0, 1)),
            "bad MX 10 mx-bad", "mx-bad A 127.0.0.4",
            "%s.mx-bad TLSA %s" % (tl, ee.tlsa(3, 1, 1)),        # not the cert it serves
            "two MX 10 mx-bad", "two MX 20 mx-ee",
            "plain MX 10 mx-plain", "mx-plain A 127.0.0.5",
            "%s.mx-plain TLSA %s" % (tl, ee.tlsa(3, 1, 1)),
            "unusable MX 10 mx-unusable", "mx-unusable A 127.0.0.6",
            "%s.mx-unusable TLSA %s" % (tl, ee.tlsa(1, 1, 1)),   # PKIX-EE: unusable for SMTP
            "nodane MX 10 mx-nodane", "mx-nodane A 127.0.0.2",
            "full MX 10 mx-full", "mx-full A 127.0.0.2",
            "%s.mx-full TLSA %s" % (tl, ee.tlsa(3, 0, 2)),
            "wrongname MX 10 mx-wrongname", "mx-wrongname A 127.0.0.2",
            "alias MX 10 mx-alias", "mx-alias CNAME mx-ta",
            "wild MX 10 mx-wild", "mx-wild A 127.0.0.10",
            "%s.mx-wild TLSA %s" % (tl, pki.ca.tlsa(2, 1, 1)),
        ])
        lab.zone("insecure.test", [
            "@ MX 10 mx", "mx A 127.0.0.7", "%s.mx TLSA %s" % (tl, ee.tlsa(3, 1, 1)),
        ], mode="insecure")
        lab.zone("bogus.test", [
            "@ MX 10 mx", "mx A 127.0.0.8", "%s.mx TLSA %s" % (tl, ee.tlsa(3, 1, 1)),
        ], mode="bogus")
        lab.zone("broken.test", [
            "@ MX 10 mx", "mx A 127.0.0.9", "%s.mx TLSA %s" % (tl, ee.tlsa(3, 1, 1)),
        ], broken=[("%s.mx" % tl, "TLSA")])
        try:
            # port 53 lets posttls-finger use the lab through resolv.conf
            cls.lab = lab.start(port=53 if private_netns() else None)
        except Exception:
            for p in cls.peers.values():
                p.stop()
            raise
        cls.dns = "127.0.0.1:%d" % lab.port

    @classmethod
    def tearDownClass(cls):
        cls.lab.cleanup()
        for p in cls.peers.values():
            p.stop()
        cls.pki.cleanup()

    def deliver(self, domain, *opts):
        return run_probe("deliver", self.dns, domain, "--smtp-port", self.port, *opts)

    def messages(self, addr):
        return len(self.peers[addr].messages)

    def mark(self, addr):
        """Where the peer at addr is now: (messages, transcript lines)."""
        p = self.peers[addr]
        return len(p.messages), len(p.transcript)

    def assert_delivered(self, out, host):
        self.assertIn("result delivered host=%s" % host, out, out)

    def assert_deferred(self, out):
        self.assertIn("result defer", out, out)
        self.assertNotIn("result delivered", out, out)

    def no_mail_sent(self, addr, mark):
        """Since mark, nothing of a message reached the peer at addr, in
        TLS or not."""
        p = self.peers[addr]
        self.assertEqual(len(p.messages), mark[0])
        self.assertFalse([l for _, l in p.transcript[mark[1]:]
                          if l.upper().startswith(("MAIL", "RCPT", "DATA"))])

    def test_dane_ee_match(self):
        before = self.messages("127.0.0.2")
        out = self.deliver("ee.dane.test")
        host = lines(out, "hostpolicy")[0]
        self.assertEqual((host["level"], host["via"], host["auth"], host["tls_required"]),
                         ("dane", "dane", "dane", "1"))
        att = lines(out, "attempt")[0]
        self.assertEqual((att["verdict"], att["ok"], att["rpt"]), ("Verified", "1", "success"))
        self.assertIn("DANE-EE match", att["reason"])
        self.assertRegex(out, r"log Verified TLS connection established to "
                         r"mx-ee\.dane\.test\[127\.0\.0\.2\]:%d: TLSv1\.[23] with cipher .* \(dane\)"
                         % self.port)
        self.assert_delivered(out, "mx-ee.dane.test")
        self.assertEqual(self.messages("127.0.0.2"), before + 1)
        self.assertTrue(self.peers["127.0.0.2"].messages[-1].tls)

    def test_dane_ta_match(self):
        out = self.deliver("ta.dane.test")
        att = lines(out, "attempt")[0]
        self.assertEqual((att["verdict"], att["ok"]), ("Verified", "1"))
        self.assertIn("DANE-TA match", att["reason"])
        self.assert_delivered(out, "mx-ta.dane.test")

    def test_dane_full_cert_sha512(self):
        out = self.deliver("full.dane.test")
        self.assertEqual(lines(out, "attempt")[0]["verdict"], "Verified")
        self.assert_delivered(out, "mx-full.dane.test")

    def test_dane_ta_wildcard_name(self):
        # DANE-TA checks names: "*.dane.test" covers mx-wild.dane.test
        out = self.deliver("wild.dane.test")
        self.assertIn("DANE-TA match", lines(out, "attempt")[0]["reason"])
        self.assert_delivered(out, "mx-wild.dane.test")

    def test_secure_alias_uses_expanded_name(self):
        # mx-alias is a CNAME to mx-ta: TLSA at the expanded name (RFC 7672 2.2.2)
        out = self.deliver("alias.dane.test")
        self.assertIn("tlsa _%d._tcp.mx-ta.dane.test 2 0 1" % self.port, out)
        att = lines(out, "attempt")[0]
        self.assertEqual(att["verdict"], "Verified")
        self.assert_delivered(out, "mx-alias.dane.test")

    def test_dane_mismatch_defers_nothing_sent(self):
        before = self.mark("127.0.0.4")
        out = self.deliver("bad.dane.test")
        att = lines(out, "attempt")[0]
        self.assertEqual((att["ok"], att["rpt"]), ("0", "tlsa-invalid"))
        self.assertIn(att["verdict"], ("Untrusted", "Trusted"))
        self.assert_deferred(out)
        self.no_mail_sent("127.0.0.4", before)
        self.assertIn("<TLS>", [l for _, l in self.peers["127.0.0.4"].transcript[before[1]:]])

    def test_mismatch_then_next_mx(self):
        out = self.deliver("two.dane.test")
        atts = lines(out, "attempt")
        self.assertEqual([(a["host"], a["ok"]) for a in atts],
                         [("mx-bad.dane.test", "0"), ("mx-ee.dane.test", "1")])
        self.assert_delivered(out, "mx-ee.dane.test")

    def test_tlsa_but_no_starttls_defers(self):
        before = self.mark("127.0.0.5")
        out = self.deliver("plain.dane.test")
        att = lines(out, "attempt")[0]
        self.assertEqual((att["tls"], att["ok"], att["rpt"]), ("0", "0", "starttls-not-supported"))
        self.assert_deferred(out)
        self.no_mail_sent("127.0.0.5", before)

    def test_unusable_tlsa_means_encrypt(self):
        out = self.deliver("unusable.dane.test")
        host = lines(out, "hostpolicy")[0]
        self.assertEqual((host["level"], host["via"], host["tls_required"], host["auth"]),
                         ("encrypt", "dane", "1", "none"))
        self.assertIn("(unusable)", out)
        att = lines(out, "attempt")[0]
        self.assertEqual((att["tls"], att["verdict"], att["ok"]), ("1", "Untrusted", "1"))
        self.assert_delivered(out, "mx-unusable.dane.test")

    def test_no_tlsa_is_opportunistic(self):
        out = self.deliver("nodane.dane.test")
        host = lines(out, "hostpolicy")[0]
        self.assertEqual((host["level"], host["tls_required"]), ("may", "0"))
        self.assertEqual(lines(out, "attempt")[0]["verdict"], "Untrusted")
        self.assert_delivered(out, "mx-nodane.dane.test")

    def test_insecure_zone_is_opportunistic(self):
        out = self.deliver("insecure.test")
        dest = lines(out, "dest")[0]
        self.assertEqual(dest["mx_state"], "insecure")
        host = lines(out, "hostpolicy")[0]
        self.assertEqual((host["level"], host["auth"]), ("may", "none"))
        att = lines(out, "attempt")[0]
        self.assertEqual((att["tls"], att["verdict"], att["via"]), ("1", "Untrusted", "may"))
        self.assert_delivered(out, "mx.insecure.test")

    def test_bogus_zone_defers(self):
        before = self.messages("127.0.0.8")
        out = self.deliver("bogus.test")
        self.assert_deferred(out)
        self.assertEqual(self.messages("127.0.0.8"), before)
        self.assertEqual(self.peers["127.0.0.8"].connections, 0)

    def test_bogus_tlsa_skips_host(self):
        out = self.deliver("broken.test")
        host = lines(out, "hostpolicy")[0]
        self.assertEqual((host["skip"], host["rpt"]), ("1", "dnssec-invalid"))
        self.assertIn("TLSA lookup of _%d._tcp.mx.broken.test failed" % self.port, host["reason"])
        self.assert_deferred(out)
        self.assertEqual(self.peers["127.0.0.9"].connections, 0)

    def test_dane_only(self):
        out = self.deliver("nodane.dane.test", "--level", "dane-only")
        host = lines(out, "hostpolicy")[0]
        self.assertEqual((host["skip"], host["rpt"]), ("1", "dane-required"))
        self.assert_deferred(out)
        out = self.deliver("insecure.test", "--level", "dane-only")
        self.assertIn("the MX lookup is not DNSSEC-secure", out)
        self.assert_deferred(out)
        out = self.deliver("ee.dane.test", "--level", "dane-only")
        self.assert_delivered(out, "mx-ee.dane.test")

    def test_verify_level(self):
        ca = self.pki.ca.pem
        out = self.deliver("ee.dane.test", "--level", "verify", "--ca-file", ca)
        att = lines(out, "attempt")[0]
        self.assertEqual((att["verdict"], att["via"], att["ok"]), ("Verified", "verify", "1"))
        self.assert_delivered(out, "mx-ee.dane.test")
        # the peer's certificate does not name mx-wrongname: Trusted, deferred
        before = self.mark("127.0.0.2")
        out = self.deliver("wrongname.dane.test", "--level", "verify", "--ca-file", ca)
        att = lines(out, "attempt")[0]
        self.assertEqual((att["verdict"], att["ok"], att["rpt"]),
                         ("Trusted", "0", "certificate-host-mismatch"))
        self.assert_deferred(out)
        self.no_mail_sent("127.0.0.2", before)
        # without the CA the chain is not trusted
        out = self.deliver("ee.dane.test", "--level", "verify", "--ca-file",
                           self.certs["ta"].pem)
        self.assertEqual(lines(out, "attempt")[0]["rpt"], "certificate-not-trusted")
        self.assert_deferred(out)

    def test_policy_file(self):
        d = tempfile.mkdtemp(prefix="ms-policy-")
        try:
            path = os.path.join(d, "tls_policy")
            with open(path, "w") as f:
                f.write("ee.dane.test none\n"
                        "wrongname.dane.test verify match=mx-ee.dane.test\n"
                        ".insecure.test dane-only\ninsecure.test encrypt\n")
            out = self.deliver("ee.dane.test", "--policy-file", path)
            self.assertEqual(lines(out, "attempt")[0]["tls"], "0")   # level none: plaintext
            self.assertFalse(self.peers["127.0.0.2"].messages[-1].tls)
            out = self.deliver("wrongname.dane.test", "--policy-file", path,
                               "--ca-file", self.pki.ca.pem)
            self.assertEqual(lines(out, "attempt")[0]["verdict"], "Verified")
            self.assert_delivered(out, "mx-wrongname.dane.test")
            out = self.deliver("insecure.test", "--policy-file", path)
            self.assertEqual(lines(out, "hostpolicy")[0]["level"], "encrypt")
            self.assert_delivered(out, "mx.insecure.test")
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_reports(self):
        d = tempfile.mkdtemp(prefix="ms-rpt-")
        try:
            q = ["--queue-dir", d, "--now", "1780000000"]
            self.deliver("ee.dane.test", *q)
            self.deliver("ee.dane.test", *q)
            self.deliver("two.dane.test", *q)
            self.deliver("broken.test", *q)
            rep = json.loads(run_probe("report", d, "ee.dane.test", "--json", "--now", "1780000000"))
            self.assertEqual(rep["date-range"]["start-datetime"], "2026-05-28T00:00:00Z")
            (pol,) = rep["policies"]
            self.assertEqual(pol["policy"]["policy-type"], "tlsa")
            self.assertEqual(pol["policy"]["policy-string"], [self.certs["ee"].tlsa(3, 1, 1)])
            self.assertEqual(pol["summary"]["total-successful-session-count"], 2)
            self.assertEqual(pol["summary"]["total-failure-session-count"], 0)
            # both MX hosts publish the same TLSA RRset: one policy
            rep = json.loads(run_probe("report", d, "two.dane.test", "--json", "--now", "1780000000"))
            sums = [(p["summary"]["total-successful-session-count"],
                     p["summary"]["total-failure-session-count"]) for p in rep["policies"]]
            self.assertEqual(sums, [(1, 1)])
            fail = [f for p in rep["policies"] for f in p["failure-details"]]
            self.assertEqual([(f["result-type"], f["receiving-mx-hostname"], f["receiving-ip"])
                              for f in fail], [("tlsa-invalid", "mx-bad.dane.test", "127.0.0.4")])
            rep = json.loads(run_probe("report", d, "broken.test", "--json", "--now", "1780000000"))
            self.assertEqual([f["result-type"] for p in rep["policies"] for f in p["failure-details"]],
                             ["dnssec-invalid"])
            text = run_probe("report", d, "ee.dane.test", "--now", "1780000000")
            self.assertIn("ee.dane.test policy tlsa: 2 successful, 0 failed", text)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_cross_check_gnutls_dane(self):
        # GnuTLS's own tool agrees with our records for the certificates served
        ee = self.certs["ee"]
        r = subprocess.run(["danetool", "--tlsa-rr", "--host", "mx-ee.dane.test",
                            "--port", str(self.port), "--load-certificate", ee.pem],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("03 01 01 " + ee.tlsa(3, 1, 1).split()[3], r.stdout)
        head = run_probe("tlsa", self.dns, "mx-ee.dane.test", self.port)
        self.assertIn("rr " + ee.tlsa(3, 1, 1), head)

    @unittest.skipUnless(private_netns() and shutil.which("posttls-finger"),
                         "needs the private network namespace and posttls-finger")
    def test_cross_check_posttls_finger(self):
        # Postfix's DANE client (AD bit from the resolver in resolv.conf,
        # as ours) judges each MX host as we do.
        d = tempfile.mkdtemp(prefix="ms-ptf-")
        self.addCleanup(shutil.rmtree, d, True)
        with open(os.path.join(d, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\n")
        with open(os.path.join(d, "main.cf"), "w") as f:
            f.write("compatibility_level = 3.6\nsmtp_dns_support_level = dnssec\n")
        for domain, host, theirs in (("ee.dane.test", "mx-ee", "Matched DANE EE"),
                                     ("ta.dane.test", "mx-ta", "Matched DANE TA"),
                                     ("bad.dane.test", "mx-bad", "no matching DANE TLSA"),
                                     ("insecure.test", "mx", None)):
            name = host + "." + domain.split(".", 1)[1] if host != "mx" else "mx." + domain
            r = subprocess.run(
                ["unshare", "--mount", "sh", "-c",
                 'mount --bind "$0/resolv.conf" /etc/resolv.conf && MAIL_CONFIG="$0" '
                 'exec posttls-finger -c -l dane "[$1]:$2"', d, name, str(self.port)],
                capture_output=True, text=True, timeout=60 * SLOW)
            m = re.search(r"(\w+) TLS connection established to %s" % re.escape(name),
                          r.stdout + r.stderr)
            self.assertIsNotNone(m, r.stdout + r.stderr)
            ours = lines(self.deliver(domain), "attempt")[0]["verdict"]
            self.assertEqual(m.group(1), ours, (domain, r.stdout, r.stderr))
            if theirs:
                self.assertIn(theirs, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
