"""MTA-STS (RFC 8461) end to end: the _mta-sts TXT record from the DNS lab,
the policy fetched over HTTPS with libcurl from a loopback server
(addresses from our resolver), the durable cache under queue_dir/tls.

Through the real daemon (MtaStsDaemonTest): enforce with a matching and a
non-matching MX host, a certificate for another name, testing mode, a
policy change picked up through a new id, the cache surviving a restart,
the reports and `mailctl tls`. Through tls_probe, whose --now moves the
clock (MtaStsCacheTest): expiry, unfetchable, invalid and badly served
policies, an untrusted policy host, mode none."""
import json
import os
import shutil
import signal
import tempfile
import unittest

from dnssec_lab import DnssecLab
from harness import free_port, test_cert, wait_for
from https_policy import PolicyServer
from outbound import PROBE, delivery, lab_server, lines, run_probe, submit
from peers import DEFAULT_EHLO, Peer
from pki import Pki

NOW = 1780000000

ENFORCE = ("version: STSv1\r\nmode: enforce\r\nmx: mx1.enforce.sts.test\r\n"
           "mx: *.pool.enforce.sts.test\r\nmax_age: 86400\r\n")


def policy(mode, *mx, max_age=86400):
    return "version: STSv1\nmode: %s\n%smax_age: %d\n" % (
        mode, "".join("mx: %s\n" % m for m in mx), max_age)


class StsLab:
    """The DNS lab, the HTTPS policy hosts and the SMTP peers, once per
    module (setUpModule)."""

    @classmethod
    def up(cls):
        cls.pki = pki = Pki()
        cls.smtp_port = free_port()
        cls.https_port = free_port()
        names = ["mta-sts.%s.sts.test" % d for d in
                 ("enforce", "badcert", "testing", "change", "gone", "redirect", "html",
                  "big", "invalid", "restart", "expire", "none", "nomatch", "pool", "strict",
                  "stripped", "rt", "rttesting", "down")]
        web = pki.cert(names)
        wrong = pki.cert(["www.elsewhere.test"])
        mx1 = pki.cert(["mx1.enforce.sts.test", "mx.testing.sts.test", "mx.change.sts.test",
                        "mx.restart.sts.test", "mx.expire.sts.test", "mx.none.sts.test",
                        "mx.nomatch.sts.test", "a.pool.enforce.sts.test", "mx.strict.sts.test"])
        rt = pki.cert(["mx.rt.sts.test"])
        cls.web = PolicyServer("127.0.0.20", cls.https_port, web.chain, web.key).start()
        cls.web_wrong = PolicyServer("127.0.0.23", cls.https_port, wrong.chain, wrong.key).start()
        cls.peers = {
            "127.0.0.21": Peer("127.0.0.21", cls.smtp_port, starttls=(mx1.chain, mx1.key)).start(),
            "127.0.0.22": Peer("127.0.0.22", cls.smtp_port, starttls=(wrong.chain, wrong.key)).start(),
            # STARTTLS stripped on the path: offered, then 454
            "127.0.0.24": Peer("127.0.0.24", cls.smtp_port, refuse_starttls=True).start(),
            # takes REQUIRETLS (RFC 8689) over TLS
            "127.0.0.25": Peer("127.0.0.25", cls.smtp_port, starttls=(rt.chain, rt.key),
                               ehlo=DEFAULT_EHLO + ["REQUIRETLS"]).start(),
        }
        recs = []
        for d in ("enforce", "badcert", "testing", "gone", "redirect", "html", "big",
                  "invalid", "restart", "expire", "none", "nomatch", "webpki", "noaddr", "strict",
                  "down"):
            recs.append('_mta-sts.%s TXT "v=STSv1; id=1;"' % d)
            if d == "webpki":
                recs.append("mta-sts.%s A 127.0.0.23" % d)
            elif d != "noaddr":
                recs.append("mta-sts.%s A 127.0.0.20" % d)
            recs.append("mx.%s A 127.0.0.21" % d)
        recs += [
            # a short TTL: a new id is seen at once after a reload
            '_mta-sts.change 1 TXT "v=STSv1; id=1;"', "mta-sts.change A 127.0.0.20",
            "mx.change A 127.0.0.21",
            "enforce MX 5 rogue.enforce", "rogue.enforce A 127.0.0.22",
            "enforce MX 10 mx1.enforce", "mx1.enforce A 127.0.0.21",
            "pool MX 10 a.pool.enforce", "a.pool.enforce A 127.0.0.21",
            '_mta-sts.pool TXT "v=STSv1; id=1;"', "mta-sts.pool A 127.0.0.20",
            "badcert MX 10 mx.badcert", "mx.badcert A 127.0.0.22",
            "testing MX 10 bad.testing", "bad.testing A 127.0.0.22",
            "nomatch MX 10 mx.nomatch",
            "restart MX 5 rogue.restart", "rogue.restart A 127.0.0.22",
            "strict MX 10 mx.strict",
            '_mta-sts.stripped TXT "v=STSv1; id=1;"', "mta-sts.stripped A 127.0.0.20",
            "stripped MX 10 mx.stripped", "mx.stripped A 127.0.0.24",
            '_mta-sts.rt TXT "v=STSv1; id=1;"', "mta-sts.rt A 127.0.0.20",
            "rt MX 10 mx.rt", "mx.rt A 127.0.0.25",
            '_mta-sts.rttesting TXT "v=STSv1; id=1;"', "mta-sts.rttesting A 127.0.0.20",
            "rttesting MX 10 mx.rt",
        ]
        for d in ("change", "gone", "redirect", "html", "big", "invalid", "restart", "expire",
                  "none", "webpki", "noaddr", "down"):
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
        w.set("mta-sts.strict.sts.test", policy("enforce", "other.sts.test"))
        w.set("mta-sts.change.sts.test", policy("testing", "*.change.sts.test"))
        w.set("mta-sts.redirect.sts.test", "moved\n", status=302,
              headers={"Location": "https://mta-sts.enforce.sts.test/.well-known/mta-sts.txt"})
        w.set("mta-sts.html.sts.test", ENFORCE, ctype="text/html")
        w.set("mta-sts.big.sts.test", ENFORCE + "x: " + "a" * 70000 + "\n")
        w.set("mta-sts.invalid.sts.test", "version: STSv1\nmode: strict\nmax_age: 1\n")
        w.set("mta-sts.restart.sts.test", policy("enforce", "mx.restart.sts.test"))
        w.set("mta-sts.expire.sts.test", policy("enforce", "mx.expire.sts.test", max_age=600))
        w.set("mta-sts.none.sts.test", policy("none"))
        w.set("mta-sts.down.sts.test", "down\n", status=503)
        w.set("mta-sts.stripped.sts.test", policy("enforce", "mx.stripped.sts.test"))
        w.set("mta-sts.rt.sts.test", policy("enforce", "mx.rt.sts.test"))
        w.set("mta-sts.rttesting.sts.test", policy("testing", "mx.rt.sts.test"))
        cls.web_wrong.set("mta-sts.webpki.sts.test", policy("enforce", "mx.webpki.sts.test"))
        return cls

    @classmethod
    def stop_servers(cls):
        cls.web.stop()
        cls.web_wrong.stop()
        for p in cls.peers.values():
            p.stop()

    @classmethod
    def down(cls):
        cls.lab.cleanup()
        cls.stop_servers()
        cls.pki.cleanup()


def setUpModule():
    StsLab.up()


def tearDownModule():
    StsLab.down()


class MtaStsDaemonTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = w = StsLab
        cert, key = test_cert("relay.a.test")
        cls.a = lab_server("smtp_port = %d\ntls_outbound = dane\ntls_ca_file = %s\n"
                           "mta_sts_ca_file = %s\nmta_sts_port = %d\nlocal_domains = a.test\n"
                           "retry_min = 1h\nretry_max = 2h\nconnect_timeout = 2s\n"
                           "tls_cert_file = %s\ntls_key_file = %s\n"
                           % (w.smtp_port, w.pki.ca.pem, w.pki.ca.pem, w.https_port, cert, key),
                           w.lab.port, hostname="relay.a.test")
        try:
            cls.a.start()
        except Exception:
            cls.a.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        code = cls.a.stop() if cls.a.proc else 0
        cls.a.cleanup()
        assert code == 0, code

    def send(self, rcpt, **kw):
        qid = submit(self.a.port, "sender@a.test", rcpt, **kw)
        return qid, delivery(self.a, qid, rcpt)

    def reload(self):
        n = self.a.logtext().count("reloaded ")
        self.a.signal(signal.SIGHUP)
        wait_for(lambda: self.a.logtext().count("reloaded ") > n, 20, "the reload")

    def test_enforce_matching_mx_verified_rogue_skipped(self):
        rogue, good = self.w.peers["127.0.0.22"], self.w.peers["127.0.0.21"]
        before, n = rogue.connections, len(good.messages)
        qid, d = self.send("u@enforce.sts.test")
        # the rogue MX (a better preference) matches no mx pattern: never tried
        self.assertEqual((d["status"], d["relay"]),
                         ("sent", "mx1.enforce.sts.test[127.0.0.21]:%d" % self.w.smtp_port))
        self.assertRegex(d["tls"], r"^Verified TLSv1\.[23] .* \(mta-sts\)$")
        self.assertEqual(rogue.connections, before)
        self.assertTrue(good.wait_messages(n + 1)[-1].tls)
        self.assertIn(("mta-sts.enforce.sts.test", "/.well-known/mta-sts.txt"),
                      self.w.web.requests)

    def test_enforce_wildcard_pattern(self):
        qid, d = self.send("u@pool.sts.test")
        self.assertEqual((d["status"], d["relay"].split("[")[0]),
                         ("sent", "a.pool.enforce.sts.test"))

    def test_enforce_no_matching_mx_defers(self):
        good = self.w.peers["127.0.0.21"]
        before = good.connections
        qid, d = self.send("u@strict.sts.test")
        self.assertEqual((d["status"], d["dsn"]), ("deferred", "4.7.5"))
        self.assertIn("mx.strict.sts.test matches no mx pattern of the MTA-STS policy", d["diag"])
        self.assertEqual(good.connections, before)

    def test_enforce_bad_certificate_defers(self):
        peer = self.w.peers["127.0.0.22"]
        n = len(peer.messages)
        qid, d = self.send("u@badcert.sts.test")
        self.assertEqual((d["status"], d["dsn"]), ("deferred", "4.7.5"))
        self.assertIn("TLS policy (mta-sts) not met", d["diag"])
        self.assertEqual(len(peer.messages), n)
        rep = json.loads(self.a.mailctl("tls-report", "--json", "badcert.sts.test").stdout)
        (pol,) = rep["policies"]
        self.assertEqual(pol["policy"]["policy-type"], "sts")
        self.assertEqual(pol["policy"]["mx-host"], ["mx.badcert.sts.test"])
        self.assertIn("mode: enforce", pol["policy"]["policy-string"])
        self.assertEqual(pol["failure-details"][0]["result-type"], "certificate-host-mismatch")

    def test_enforce_stripped_starttls_defers(self):
        peer = self.w.peers["127.0.0.24"]
        before, n = peer.connections, len(peer.messages)
        qid, d = self.send("u@stripped.sts.test")
        self.assertEqual((d["status"], d["dsn"]), ("deferred", "4.7.4"))
        self.assertGreater(peer.connections, before)
        self.assertEqual(len(peer.messages), n)
        self.assertFalse([l for _, l in peer.transcript
                          if l.upper().startswith(("MAIL", "RCPT", "DATA", "BDAT"))])
        (pol,) = json.loads(self.a.mailctl("tls-report", "--json",
                                           "stripped.sts.test").stdout)["policies"]
        self.assertEqual(pol["policy"]["policy-type"], "sts")
        self.assertEqual(pol["failure-details"][0]["result-type"], "starttls-not-supported")

    def test_testing_mode_reports_only(self):
        peer = self.w.peers["127.0.0.22"]
        n = len(peer.messages)
        qid, d = self.send("u@testing.sts.test")
        self.assertEqual(d["status"], "sent")
        self.assertRegex(d["tls"], r"^Trusted .* \(mta-sts\)$")
        self.assertTrue(peer.wait_messages(n + 1)[-1].tls)
        (pol,) = json.loads(self.a.mailctl("tls-report", "--json",
                                           "testing.sts.test").stdout)["policies"]
        self.assertIn("mode: testing", pol["policy"]["policy-string"])
        self.assertEqual(pol["summary"]["total-successful-session-count"], 0)
        self.assertGreaterEqual(pol["summary"]["total-failure-session-count"], 1)
        self.assertEqual(pol["failure-details"][0]["result-type"], "certificate-host-mismatch")

    def test_testing_mode_mismatch_is_reported(self):
        qid, d = self.send("u@nomatch.sts.test")
        self.assertEqual(d["status"], "sent")
        rep = json.loads(self.a.mailctl("tls-report", "--json", "nomatch.sts.test").stdout)
        self.assertEqual(rep["policies"][0]["failure-details"][0]["result-type"],
                         "validation-failure")

    def test_policy_change_through_new_id(self):
        web = self.w.web
        qid, d = self.send("u@change.sts.test")
        self.assertEqual(d["status"], "sent")
        fetches = web.fetches("mta-sts.change.sts.test")
        self.assertGreaterEqual(fetches, 1)
        self.addCleanup(web.set, "mta-sts.change.sts.test", policy("testing", "*.change.sts.test"))
        # a new policy file without a new id is not fetched: the cache holds
        web.set("mta-sts.change.sts.test", policy("enforce", "other.sts.test"))
        self.reload()
        qid, d = self.send("u@change.sts.test")
        self.assertEqual(d["status"], "sent")
        self.assertEqual(web.fetches("mta-sts.change.sts.test"), fetches)
        # the new id: fetched, and now no MX host may be used
        self.addCleanup(self.w.lab.update, "sts.test", self.w.recs)
        self.w.lab.update("sts.test", [r.replace('"v=STSv1; id=1;"', '"v=STSv1; id=2;"')
                                       if r.startswith("_mta-sts.change ") else r
                                       for r in self.w.recs])
        self.reload()
        qid, d = self.send("u@change.sts.test")
        self.assertEqual((d["status"], d["dsn"]), ("deferred", "4.7.5"))
        self.assertIn("matches no mx pattern", d["diag"])
        self.assertEqual(web.fetches("mta-sts.change.sts.test"), fetches + 1)
        self.assertIn("mta-sts cache: policy 2 mode enforce",
                      self.a.mailctl("tls", "change.sts.test").stdout)

    def test_failed_fetch_not_repeated_by_each_delivery(self):
        # a policy host that fails: one fetch serves the deliveries of the
        # next MTA_STS_RETRY_S (300 s), each still reporting the failure
        web = self.w.web
        before = web.fetches("mta-sts.down.sts.test")
        for _ in range(3):
            qid, d = self.send("u@down.sts.test")
            self.assertEqual(d["status"], "sent")
            self.assertEqual(web.fetches("mta-sts.down.sts.test"), before + 1)
        rep = json.loads(self.a.mailctl("tls-report", "--json", "down.sts.test").stdout)
        fails = [f for p in rep["policies"] for f in p.get("failure-details", [])
                 if f["result-type"] == "sts-policy-fetch-error"]
        self.assertEqual(sum(f["failed-session-count"] for f in fails), 3, rep)

    def test_cache_survives_restart(self):
        rogue = self.w.peers["127.0.0.22"]
        qid, d = self.send("u@restart.sts.test")
        self.assertEqual((d["status"], d["relay"].split("[")[0]), ("sent", "mx.restart.sts.test"))
        # the policy host goes away; the restarted daemon still has the policy
        self.addCleanup(self.w.web.set, "mta-sts.restart.sts.test",
                        policy("enforce", "mx.restart.sts.test"))
        self.w.web.set("mta-sts.restart.sts.test", "gone\n", status=503)
        self.assertEqual(self.a.stop(), 0)
        self.a.start()
        before = rogue.connections
        qid, d = self.send("u@restart.sts.test")
        self.assertEqual((d["status"], d["relay"].split("[")[0]), ("sent", "mx.restart.sts.test"))
        self.assertRegex(d["tls"], r"^Verified .* \(mta-sts\)$")
        self.assertEqual(rogue.connections, before)      # still skipped: enforce

    def test_requiretls_over_enforce(self):
        # RFC 8689 4.2.1: an MX host validated by an enforce policy, a
        # session verified by WebPKI, a server that offers REQUIRETLS
        peer = self.w.peers["127.0.0.25"]
        n = len(peer.messages)
        qid, d = self.send("u@rt.sts.test", requiretls=True)
        self.assertEqual((d["status"], d["relay"]),
                         ("sent", "mx.rt.sts.test[127.0.0.25]:%d" % self.w.smtp_port), d)
        self.assertRegex(d["tls"], r"^Verified .* \(mta-sts\)$")
        msg = peer.wait_messages(n + 1)[-1]
        self.assertTrue(msg.tls)
        self.assertIn("REQUIRETLS", msg.mail_params)

    def test_requiretls_not_over_testing(self):
        # the same host under a testing policy authenticates nothing:
        # bounced 5.7.10, never connected (as Mox, stricter than may be read
        # into RFC 8689 4.2.1)
        peer = self.w.peers["127.0.0.25"]
        before = peer.connections
        qid, d = self.send("u@rttesting.sts.test", requiretls=True)
        self.assertEqual((d["status"], d["dsn"]), ("bounced", "5.7.10"), d)
        self.assertEqual(peer.connections, before)
        # without REQUIRETLS the same message goes
        qid, d = self.send("u@rttesting.sts.test")
        self.assertEqual(d["status"], "sent", d)

    def test_mailctl_tls(self):
        self.send("u@enforce.sts.test")
        out = self.a.mailctl("tls", "enforce.sts.test").stdout
        self.assertIn("mx 5 rogue.enforce.sts.test: 127.0.0.22", out)
        self.assertIn("host rogue.enforce.sts.test: skipped: rogue.enforce.sts.test matches no "
                      "mx pattern", out)
        self.assertIn("host mx1.enforce.sts.test: verify via mta-sts, TLS required, WebPKI "
                      "authentication", out)
        self.assertIn("mta-sts cache: policy 1 mode enforce max_age 86400", out)
        self.assertIn("  mx *.pool.enforce.sts.test", out)


@unittest.skipUnless(PROBE, "TLS_PROBE_BIN not set (run through make integration)")
class MtaStsCacheTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for k in ("pki", "smtp_port", "https_port", "web", "web_wrong", "peers", "recs",
                  "lab", "dns"):
            setattr(cls, k, getattr(StsLab, k))

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

    def level(self, domain, now=NOW):
        """The level of the first host of domain under policy lookups at now."""
        out = run_probe("policy", self.dns, domain, *self.opts(now))
        return lines(out, "hostpolicy")[0]["level"]

    def test_expired_policy_is_not_used(self):
        st, _ = self.sts("expire.sts.test")
        self.assertEqual((st["have"], st["max_age"]), ("1", "600"))
        self.web.set("mta-sts.expire.sts.test", "gone\n", status=404)
        try:
            st, _ = self.sts("expire.sts.test", NOW + 300)
            self.assertEqual((st["have"], st["from_cache"]), ("1", "1"))
            st, _ = self.sts("expire.sts.test", NOW + 601)
            self.assertEqual((st["have"], st["failure"]), ("0", "sts-policy-fetch-error"))
            self.assertEqual(self.level("expire.sts.test", NOW + 601), "may")
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
        self.assertEqual(self.level("gone.sts.test"), "may")

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
        self.assertEqual(self.level("none.sts.test"), "may")

    def test_no_record_no_policy(self):
        st, _ = self.sts("nothing.sts.test")
        self.assertEqual((st["have"], st["fetch_tried"]), ("0", "0"))
        self.assertIn("no _mta-sts.nothing.sts.test TXT record", st["detail"])


if __name__ == "__main__":
    unittest.main()
