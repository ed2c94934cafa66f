"""MTA-STS (RFC 8461) end to end, in isolation from the relay: the
_mta-sts TXT record from the DNS lab, the policy fetched over HTTPS with
libcurl from a loopback server (addresses from our resolver), the durable
cache under a queue_dir, and delivery through tls_probe to SMTP peers
whose certificates come from a certtool CA: enforce with matching and
non-matching MX hosts, testing, a policy change through a new id, the
cache surviving a restart, unfetchable, invalid and badly served
policies, expiry."""
import json
import os
import shutil
import tempfile
import unittest

from dnssec_lab import DnssecLab
from harness import free_port
from https_policy import PolicyServer
from peers import Peer
from pki import Pki
from test_tls_dane import PROBE, fields, lines, run_probe

NOW = 1780000000

ENFORCE = ("version: STSv1\r\nmode: enforce\r\nmx: mx1.enforce.sts.test\r\n"
           "mx: *.pool.enforce.sts.test\r\nmax_age: 86400\r\n")


def policy(mode, *mx, max_age=86400):
    return "version: STSv1\nmode: %s\n%smax_age: %d\n" % (
        mode, "".join("mx: %s\n" % m for m in mx), max_age)


@unittest.skipUnless(PROBE, "TLS_PROBE_BIN not set (run through make integration)")
class MtaStsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = pki = Pki()
        cls.smtp_port = free_port()
        cls.https_port = free_port()
        names = ["mta-sts.%s.sts.test" % d for d in
                 ("enforce", "badcert", "testing", "change", "gone", "redirect", "html",
                  "big", "invalid", "restart", "expire", "none", "nomatch", "pool")]
        web = pki.cert(names)
        wrong = pki.cert(["www.elsewhere.test"])
        mx1 = pki.cert(["mx1.enforce.sts.test", "mx.testing.sts.test", "mx.change.sts.test",
                        "mx.restart.sts.test", "mx.expire.sts.test", "mx.none.sts.test",
                        "mx.nomatch.sts.test", "a.pool.enforce.sts.test"])
        cls.web = PolicyServer("127.0.0.20", cls.https_port, web.chain, web.key).start()
        cls.web_wrong = PolicyServer("127.0.0.23", cls.https_port, wrong.chain, wrong.key).start()
        cls.peers = {
            "127.0.0.21": Peer("127.0.0.21", cls.smtp_port, starttls=(mx1.chain, mx1.key)).start(),
            "127.0.0.22": Peer("127.0.0.22", cls.smtp_port, starttls=(wrong.chain, wrong.key)).start(),
        }
        recs = []
        for d in ("enforce", "badcert", "testing", "change", "gone", "redirect", "html", "big",
                  "invalid", "restart", "expire", "none", "nomatch", "webpki", "noaddr"):
            recs.append('_mta-sts.%s TXT "v=STSv1; id=1;"' % d)
            if d == "webpki":
                recs.append("mta-sts.%s A 127.0.0.23" % d)
            elif d != "noaddr":
                recs.append("mta-sts.%s A 127.0.0.20" % d)
            recs.append("mx.%s A 127.0.0.21" % d)
        recs += [
            "enforce MX 5 rogue.enforce", "rogue.enforce A 127.0.0.22",
            "enforce MX 10 mx1.enforce", "mx1.enforce A 127.0.0.21",
            "pool MX 10 a.pool.enforce", "a.pool.enforce A 127.0.0.21",
            '_mta-sts.pool TXT "v=STSv1; id=1;"', "mta-sts.pool A 127.0.0.20",
            "badcert MX 10 mx.badcert", "mx.badcert A 127.0.0.22",
            "testing MX 10 bad.testing", "bad.testing A 127.0.0.22",
            "nomatch MX 10 mx.nomatch",
        ]
        for d in ("change", "gone", "redirect", "html", "big", "invalid", "restart", "expire",
                  "none", "webpki", "noaddr"):
            recs.append("%s MX 10 mx.%s" % (d, d))
        cls.recs = recs
        lab = DnssecLab()
        lab.zone("sts.test", recs, mode="insecure")
        try:
            cls.lab = lab.start()
        except Exception:
            cls.stop_servers()
            raise
        cls.dns = "127.0.0.1:%d" % lab.port
        w = cls.web
        w.set("mta-sts.enforce.sts.test", ENFORCE)
        w.set("mta-sts.pool.sts.test", policy("enforce", "*.pool.enforce.sts.test"))
        w.set("mta-sts.badcert.sts.test", policy("enforce", "mx.badcert.sts.test"))
        w.set("mta-sts.testing.sts.test", policy("testing", "bad.testing.sts.test"))
        w.set("mta-sts.nomatch.sts.test", policy("testing", "other.sts.test"))
        w.set("mta-sts.change.sts.test", policy("testing", "*.change.sts.test"))
        w.set("mta-sts.redirect.sts.test", "moved\n", status=302,
              headers={"Location": "https://mta-sts.enforce.sts.test/.well-known/mta-sts.txt"})
        w.set("mta-sts.html.sts.test", ENFORCE, ctype="text/html")
        w.set("mta-sts.big.sts.test", ENFORCE + "x: " + "a" * 70000 + "\n")
        w.set("mta-sts.invalid.sts.test", "version: STSv1\nmode: strict\nmax_age: 1\n")
        w.set("mta-sts.restart.sts.test", policy("enforce", "mx.restart.sts.test"))
        w.set("mta-sts.expire.sts.test", policy("enforce", "mx.expire.sts.test", max_age=600))
        w.set("mta-sts.none.sts.test", policy("none"))
        cls.web_wrong.set("mta-sts.webpki.sts.test", policy("enforce", "mx.webpki.sts.test"))

    @classmethod
    def stop_servers(cls):
        cls.web.stop()
        cls.web_wrong.stop()
        for p in cls.peers.values():
            p.stop()

    @classmethod
    def tearDownClass(cls):
        cls.lab.cleanup()
        cls.stop_servers()
        cls.pki.cleanup()

    def setUp(self):
        self.qdir = tempfile.mkdtemp(prefix="ms-sts-")

    def tearDown(self):
        shutil.rmtree(self.qdir, ignore_errors=True)

    def opts(self, now=NOW):
        return ["--queue-dir", self.qdir, "--sts-port", self.https_port,
                "--sts-ca-file", self.pki.ca.pem, "--ca-file", self.pki.ca.pem,
                "--smtp-port", self.smtp_port, "--now", now]

    def sts(self, domain, now=NOW):
        out = run_probe("sts", self.dns, domain, *self.opts(now))
        return lines(out, "sts")[0], [l.split()[1] for l in out.splitlines() if l.startswith("mx ")]

    def deliver(self, domain, now=NOW):
        return run_probe("deliver", self.dns, domain, *self.opts(now))

    def report(self, domain):
        return json.loads(run_probe("report", self.qdir, domain, "--json", "--now", NOW))

    def test_enforce_filters_mx_and_verifies(self):
        rogue = self.peers["127.0.0.22"]
        before = rogue.connections
        out = self.deliver("enforce.sts.test")
        hosts = {h["name"]: h for h in lines(out, "hostpolicy")}
        self.assertEqual(hosts["rogue.enforce.sts.test"]["skip"], "1")
        self.assertIn("matches no mx pattern", hosts["rogue.enforce.sts.test"]["reason"])
        mx1 = hosts["mx1.enforce.sts.test"]
        self.assertEqual((mx1["level"], mx1["via"], mx1["auth"], mx1["tls_required"]),
                         ("verify", "mta-sts", "mta-sts", "1"))
        att = lines(out, "attempt")
        self.assertEqual([(a["host"], a["verdict"], a["ok"]) for a in att],
                         [("mx1.enforce.sts.test", "Verified", "1")])
        self.assertIn("result delivered host=mx1.enforce.sts.test", out)
        self.assertIn("(mta-sts)", out)
        self.assertEqual(rogue.connections, before)        # never contacted
        # the policy was fetched with the name and path of RFC 8461 3.3
        self.assertGreaterEqual(self.web.fetches("mta-sts.enforce.sts.test"), 1)
        self.assertIn(("mta-sts.enforce.sts.test", "/.well-known/mta-sts.txt"), self.web.requests)

    def test_enforce_wildcard_pattern(self):
        out = self.deliver("pool.sts.test")
        self.assertIn("result delivered host=a.pool.enforce.sts.test", out)

    def test_enforce_bad_certificate_defers(self):
        peer = self.peers["127.0.0.22"]
        before = len(peer.messages)
        out = self.deliver("badcert.sts.test")
        att = lines(out, "attempt")[0]
        self.assertEqual((att["verdict"], att["ok"], att["rpt"]),
                         ("Trusted", "0", "certificate-host-mismatch"))
        self.assertIn("result defer", out)
        self.assertEqual(len(peer.messages), before)
        rep = self.report("badcert.sts.test")
        (pol,) = rep["policies"]
        self.assertEqual(pol["policy"]["policy-type"], "sts")
        self.assertEqual(pol["policy"]["mx-host"], ["mx.badcert.sts.test"])
        self.assertIn("mode: enforce", pol["policy"]["policy-string"])
        self.assertEqual(pol["failure-details"][0]["result-type"], "certificate-host-mismatch")

    def test_testing_mode_reports_only(self):
        # the only MX has a certificate for another name: testing delivers anyway
        peer = self.peers["127.0.0.22"]
        before = len(peer.messages)
        out = self.deliver("testing.sts.test")
        host = lines(out, "hostpolicy")[0]
        self.assertEqual((host["testing"], host["level"], host["tls_required"]), ("1", "may", "0"))
        att = lines(out, "attempt")[0]
        self.assertEqual((att["verdict"], att["ok"], att["rpt"]),
                         ("Trusted", "1", "certificate-host-mismatch"))
        self.assertIn("result delivered host=bad.testing.sts.test", out)
        self.assertEqual(len(peer.messages), before + 1)
        self.assertTrue(peer.messages[-1].tls)
        (pol,) = self.report("testing.sts.test")["policies"]
        self.assertIn("mode: testing", pol["policy"]["policy-string"])
        self.assertEqual(pol["summary"], {"total-successful-session-count": 0,
                                          "total-failure-session-count": 1})
        self.assertEqual(pol["failure-details"][0]["result-type"], "certificate-host-mismatch")
        # the same certificate under enforce: deferred, nothing sent
        out = self.deliver("badcert.sts.test")
        self.assertIn("result defer", out)
        self.assertEqual(len(peer.messages), before + 1)

    def test_testing_mode_mismatch_is_reported(self):
        out = self.deliver("nomatch.sts.test")
        att = lines(out, "attempt")[0]
        self.assertEqual((att["ok"], att["rpt"]), ("1", "validation-failure"))
        self.assertIn("result delivered host=mx.nomatch.sts.test", out)
        rep = self.report("nomatch.sts.test")
        self.assertEqual(rep["policies"][0]["failure-details"][0]["result-type"],
                         "validation-failure")

    def test_policy_change_through_new_id(self):
        st, mx = self.sts("change.sts.test")
        self.assertEqual((st["have"], st["mode"], st["id"], st["fetch_tried"]),
                         ("1", "testing", "1", "1"))
        # a new policy file without a new id is not fetched: the cache holds
        self.web.set("mta-sts.change.sts.test", policy("enforce", "mx.change.sts.test"))
        n = self.web.fetches("mta-sts.change.sts.test")
        st, _ = self.sts("change.sts.test", NOW + 60)
        self.assertEqual((st["mode"], st["from_cache"], st["fetch_tried"]), ("testing", "1", "0"))
        self.assertEqual(self.web.fetches("mta-sts.change.sts.test"), n)
        # the new id is seen and the new policy fetched
        recs = [r.replace('_mta-sts.change TXT "v=STSv1; id=1;"',
                          '_mta-sts.change TXT "v=STSv1; id=2;"') for r in self.recs]
        self.lab.update("sts.test", recs)
        try:
            st, mx = self.sts("change.sts.test", NOW + 120)
            self.assertEqual((st["mode"], st["id"], st["from_cache"], st["fetch_tried"]),
                             ("enforce", "2", "0", "1"))
            self.assertEqual(mx, ["mx.change.sts.test"])
            st, _ = self.sts("change.sts.test", NOW + 180)
            self.assertEqual((st["mode"], st["id"], st["from_cache"]), ("enforce", "2", "1"))
        finally:
            self.lab.update("sts.test", self.recs)
            self.web.set("mta-sts.change.sts.test", policy("testing", "*.change.sts.test"))

    def test_cache_survives_restart(self):
        st, _ = self.sts("restart.sts.test")
        self.assertEqual((st["have"], st["mode"], st["from_cache"]), ("1", "enforce", "0"))
        # the policy host goes away; a new process still has the policy
        self.web.set("mta-sts.restart.sts.test", "gone\n", status=503)
        try:
            st, mx = self.sts("restart.sts.test", NOW + 3600)
            self.assertEqual((st["have"], st["mode"], st["from_cache"]), ("1", "enforce", "1"))
            self.assertEqual(mx, ["mx.restart.sts.test"])
            # the daily refresh fails: the cached policy stays in force
            st, _ = self.sts("restart.sts.test", NOW + 86400 - 1 + 0)
            self.assertEqual((st["have"], st["from_cache"]), ("1", "1"))
            out = self.deliver("restart.sts.test", NOW + 7200)
            self.assertIn("via=mta-sts", out)
            self.assertIn("result delivered host=mx.restart.sts.test", out)
        finally:
            self.web.set("mta-sts.restart.sts.test", policy("enforce", "mx.restart.sts.test"))

    def test_expired_policy_is_not_used(self):
        st, _ = self.sts("expire.sts.test")
        self.assertEqual((st["have"], st["max_age"]), ("1", "600"))
        self.web.set("mta-sts.expire.sts.test", "gone\n", status=404)
        try:
            st, _ = self.sts("expire.sts.test", NOW + 300)
            self.assertEqual((st["have"], st["from_cache"]), ("1", "1"))
            st, _ = self.sts("expire.sts.test", NOW + 601)
            self.assertEqual((st["have"], st["failure"]), ("0", "sts-policy-fetch-error"))
            out = self.deliver("expire.sts.test", NOW + 601)
            self.assertEqual(lines(out, "hostpolicy")[0]["level"], "may")
        finally:
            self.web.set("mta-sts.expire.sts.test",
                         policy("enforce", "mx.expire.sts.test", max_age=600))

    def test_unfetchable_policies(self):
        cases = {
            "gone.sts.test": "sts-policy-fetch-error",       # 404
            "redirect.sts.test": "sts-policy-fetch-error",   # 3xx is not followed
            "html.sts.test": "sts-policy-fetch-error",       # not text/plain
            "big.sts.test": "sts-policy-fetch-error",        # over 64 KiB
            "invalid.sts.test": "sts-policy-invalid",
            "webpki.sts.test": "sts-webpki-invalid",         # certificate for another name
            "noaddr.sts.test": "sts-policy-fetch-error",     # no address for mta-sts.<domain>
        }
        for domain, failure in cases.items():
            st, _ = self.sts(domain)
            self.assertEqual((st["have"], st["failure"], st["fetch_tried"]), ("0", failure, "1"),
                             (domain, st))
        self.assertIn("larger than", self.sts("big.sts.test")[0]["detail"])
        self.assertIn("HTTP status 302", self.sts("redirect.sts.test")[0]["detail"])
        # no policy: delivery goes on opportunistically
        out = self.deliver("gone.sts.test")
        self.assertEqual(lines(out, "hostpolicy")[0]["level"], "may")
        self.assertIn("result delivered", out)

    def test_untrusted_policy_host(self):
        # the policy host's certificate must chain to the trust anchors
        out = run_probe("sts", self.dns, "enforce.sts.test", "--sts-port", self.https_port,
                        "--sts-ca-file", self.peers_ca_other(), "--now", NOW)
        st = lines(out, "sts")[0]
        self.assertEqual((st["have"], st["failure"]), ("0", "sts-webpki-invalid"))

    def peers_ca_other(self):
        other = Pki("Other CA")
        self.addCleanup(other.cleanup)
        return other.ca.pem

    def test_mode_none(self):
        st, _ = self.sts("none.sts.test")
        self.assertEqual((st["have"], st["mode"]), ("1", "none"))
        out = self.deliver("none.sts.test")
        self.assertEqual(lines(out, "hostpolicy")[0]["level"], "may")

    def test_no_record_no_policy(self):
        st, _ = self.sts("nothing.sts.test")
        self.assertEqual((st["have"], st["fetch_tried"]), ("0", "0"))
        self.assertIn("no _mta-sts.nothing.sts.test TXT record", st["detail"])


if __name__ == "__main__":
    unittest.main()
