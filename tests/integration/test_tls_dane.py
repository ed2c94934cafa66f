"""Outbound TLS through the real daemon: DANE (RFC 7672), the verify level,
the tls_policy map, REQUIRETLS (RFC 8689) and TLS reports (RFC 8460).

A mailserver (A) delivers to SMTP peers whose certificates come from a
certtool CA, and to a second mailserver (B); every lookup goes to the
DNSSEC lab (nsd serving signed zones, a validating unbound on loopback).
What protected each delivery is read from A's log; what reached a peer
from its transcript. posttls-finger and danetool cross-check the verdicts.
"""
import email
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from dnssec_lab import DnssecLab
from faults import fault_env, fault_lib
from harness import MAILSERVER, SLOW, Client, Server, free_port, test_cert, wait_for
from outbound import deliveries, delivery, lab_server, submit, tls_lines
from peers import DEFAULT_EHLO, Peer
from pki import Pki


def private_netns():
    """Inside tests/run_integration.sh's own network namespace, as root:
    port 53 is ours, and a mount namespace can give tools a resolv.conf."""
    return os.environ.get("MS_IN_NETNS") == "1" and os.geteuid() == 0 and \
        shutil.which("unshare") is not None


BASE_POLICY = ("verify.dane.test verify\n"
               "wrongname.dane.test verify\n"
               "old.dane.test verify\n"
               "strip.dane.test encrypt\n"
               "nostarttls.dane.test verify\n"
               "reuse1.test verify\n"
               "reuse3.test verify\n"
               "rtverify.dane.test verify\n"
               "rtv.insecure.test verify\n"
               "rtvm.insecure.test verify match=mx-c.dane.test\n"
               "reuse2.test verify match=mx-other.dane.test\n")


class DaneDaemonTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = pki = Pki()
        cls.port = port = free_port("127.0.0.30")
        ee = pki.cert(["mx-ee.dane.test"])
        ta = pki.cert(["mx-ta.dane.test"])
        other = pki.cert(["mx-bad.dane.test"])
        b_cert = pki.cert(["mx-b.dane.test"])
        c_cert = pki.cert(["mx-c.dane.test"])
        old = pki.cert(["mx-old.dane.test"], expired=True)
        cls.certs = {"ee": ee, "ta": ta, "b": b_cert}
        peers = {
            "127.0.0.2": dict(starttls=(ee.chain, ee.key)),
            "127.0.0.3": dict(starttls=(ta.chain, ta.key)),
            "127.0.0.4": dict(starttls=(other.chain, other.key)),
            "127.0.0.5": dict(),                                  # no STARTTLS
            "127.0.0.7": dict(starttls=(ee.chain, ee.key)),
            "127.0.0.8": dict(starttls=(ee.chain, ee.key)),
            "127.0.0.9": dict(starttls=(ee.chain, ee.key)),
            "127.0.0.10": dict(starttls=(old.chain, old.key)),   # expired
            # STARTTLS offered, then 454: what a stripping middlebox answers
            "127.0.0.11": dict(refuse_starttls=True),
            # an old server: TLS 1.1 at most
            "127.0.0.12": dict(starttls=(ee.chain, ee.key), tls_max="TLSv1_1"),
            # the next hop of B: takes REQUIRETLS over TLS
            "127.0.0.31": dict(starttls=(c_cert.chain, c_cert.key),
                               ehlo=DEFAULT_EHLO + ["REQUIRETLS"]),
        }
        cls.peers = {a: Peer(a, port, **kw).start() for a, kw in peers.items()}
        tl = "_%d._tcp" % port
        lab = DnssecLab()
        lab.zone("dane.test", [
            "ee MX 10 mx-ee", "mx-ee A 127.0.0.2", "%s.mx-ee TLSA %s" % (tl, ee.tlsa(3, 1, 1)),
            # an MX host that is an alias: the TLSA base domain is its target
            "alias MX 10 mx-alias", "mx-alias CNAME mx-ee",
            "ta MX 10 mx-ta", "mx-ta A 127.0.0.3", "%s.mx-ta TLSA %s" % (tl, pki.ca.tlsa(2, 0, 1)),
            "bad MX 10 mx-bad", "mx-bad A 127.0.0.4",
            "%s.mx-bad TLSA %s" % (tl, ee.tlsa(3, 1, 1)),        # not the cert it serves
            "two MX 10 mx-bad", "two MX 20 mx-ee",
            "plain MX 10 mx-plain", "mx-plain A 127.0.0.5",
            "%s.mx-plain TLSA %s" % (tl, ee.tlsa(3, 1, 1)),
            "nodane MX 10 mx-nodane", "mx-nodane A 127.0.0.2",
            "verify MX 10 mx-ee",
            "wrongname MX 10 mx-wrongname", "mx-wrongname A 127.0.0.2",
            "rt MX 10 mx-b", "mx-b A 127.0.0.30", "%s.mx-b TLSA %s" % (tl, b_cert.tlsa(3, 1, 1)),
            "mx-c A 127.0.0.31", "%s.mx-c TLSA %s" % (tl, c_cert.tlsa(3, 1, 1)),
            "rtverify MX 10 mx-c",
            "old MX 10 mx-old", "mx-old A 127.0.0.10",
            "strip MX 10 mx-strip", "mx-strip A 127.0.0.11",
            "stripmay MX 10 mx-strip",
            "nostarttls MX 10 mx-nostls", "mx-nostls A 127.0.0.5",
            "nostlsmay MX 10 mx-nostls",
            "tls11 MX 10 mx-tls11", "mx-tls11 A 127.0.0.12",
            "%s.mx-tls11 TLSA %s" % (tl, ee.tlsa(3, 1, 1)),
            "tls11may MX 10 mx-tls11may", "mx-tls11may A 127.0.0.12",
            # only unusable records (PKIX-EE, RFC 7672 3.1.3): TLS required,
            # not authenticated
            "unus MX 10 mx-unus", "mx-unus A 127.0.0.2",
            "%s.mx-unus TLSA %s" % (tl, ee.tlsa(1, 1, 1)),
            "unusplain MX 10 mx-unusplain", "mx-unusplain A 127.0.0.5",
            "%s.mx-unusplain TLSA %s" % (tl, ee.tlsa(1, 1, 1)),
        ])
        lab.zone("insecure.test", [
            "@ MX 10 mx", "mx A 127.0.0.7", "%s.mx TLSA %s" % (tl, ee.tlsa(3, 1, 1)),
            # MX RRsets nobody signed, naming a host whose certificate verifies
            "rtv MX 10 mx-c.dane.test.", "rtvm MX 10 mx-c.dane.test.",
            # an unsigned MX RRset naming a signed host whose TLSA record
            # does not match its certificate
            "unsignedmx MX 10 mx-bad.dane.test.",
        ], mode="insecure")
        lab.zone("bogus.test", [
            "@ MX 10 mx", "mx A 127.0.0.8", "%s.mx TLSA %s" % (tl, ee.tlsa(3, 1, 1)),
        ], mode="bogus")
        lab.zone("broken.test", [
            "@ MX 10 mx", "mx A 127.0.0.9", "%s.mx TLSA %s" % (tl, ee.tlsa(3, 1, 1)),
        ], broken=[("%s.mx" % tl, "TLSA")])
        cls.servers = []
        try:
            # port 53 lets posttls-finger use the lab through resolv.conf
            cls.lab = lab.start(port=53 if private_netns() else None)
            cls.policy_dir = tempfile.mkdtemp(prefix="ms-policy-")
            cls.policy = os.path.join(cls.policy_dir, "tls_policy")
            cls.write_policy(BASE_POLICY)
            cert, key = test_cert("relay.a.test")
            common = ("smtp_port = %d\ntls_outbound = dane\n"
                      "retry_min = 1h\nretry_max = 2h\nconnect_timeout = 2s\n"
                      "relay_command_timeout = 10s\n" % port)
            # B: the MX of rt.dane.test, relaying to C with DANE (a route by name)
            cls.b = lab_server(common + "relay_domains = rt.dane.test\n"
                           "routes = rt.dane.test=[mx-c.dane.test]:%d\n"
                           "tls_cert_file = %s\ntls_key_file = %s\n"
                           % (port, b_cert.chain, b_cert.key),
                           lab.port, port=port, listen="127.0.0.30:%d" % port,
                           hostname="mx-b.dane.test")
            cls.servers.append(cls.b)
            cls.b.start(wait=False)
            cls.b.wait_ready(port, "127.0.0.30")
            # two domains routed to one host share its idle connections
            routes = "routes = %s\n" % " ".join(
                "%s=[mx-ee.dane.test]:%d" % (d, port) for d in ("reuse1.test", "reuse2.test", "reuse3.test"))
            cls.a = lab_server(common + "local_domains = a.test\ntls_ca_file = %s\n"
                               "tls_policy = %s\ntls_cert_file = %s\ntls_key_file = %s\n"
                               % (pki.ca.pem, cls.policy, cert, key) + routes, lab.port,
                               hostname="relay.a.test")
            cls.servers.append(cls.a)
            cls.a.start()
        except Exception:
            cls.tearDownClass()
            raise
        cls.dns = "127.0.0.1:%d" % lab.port

    @classmethod
    def write_policy(cls, text):
        with open(cls.policy, "w") as f:
            f.write(text)

    @classmethod
    def tearDownClass(cls):
        codes = []
        for s in getattr(cls, "servers", []):
            codes.append(s.stop() if s.proc else 0)
            s.cleanup()
        if getattr(cls, "lab", None):
            cls.lab.cleanup()
        for p in cls.peers.values():
            p.stop()
        shutil.rmtree(getattr(cls, "policy_dir", "/nonexistent"), ignore_errors=True)
        cls.pki.cleanup()
        assert all(c == 0 for c in codes), codes

    # ---- helpers ----

    def mark(self, addr):
        p = self.peers[addr]
        return len(p.messages), len(p.transcript), p.connections

    def nothing_sent(self, addr, mark):
        """Since mark, nothing of a message reached the peer at addr."""
        p = self.peers[addr]
        self.assertEqual(len(p.messages), mark[0])
        self.assertFalse([l for _, l in p.transcript[mark[1]:]
                          if l.upper().startswith(("MAIL", "RCPT", "DATA", "BDAT"))],
                         p.transcript[mark[1]:])

    def send(self, rcpt, **kw):
        qid = submit(self.a.port, "sender@a.test", rcpt, **kw)
        return qid, delivery(self.a, qid, rcpt)

    def bounce_status(self, qid):
        """The Status: of the DSN A sent back to sender@a.test for qid."""
        def find():
            for path in self.a.maildir_files("sender@a.test"):
                with open(path, "rb") as f:
                    msg = email.message_from_bytes(f.read())
                if qid in msg.as_string():
                    return msg
            return None
        msg = wait_for(find, 30, "the bounce of " + qid)
        self.assertEqual(msg.get_content_type(), "multipart/report")
        return re.search(r"Status: ([0-9.]+)", msg.get_payload()[1].as_string()).group(1)

    # ---- DANE ----

    def test_dane_ee_3_1_1_verified(self):
        before = self.mark("127.0.0.2")
        qid, d = self.send("u@ee.dane.test")
        self.assertEqual((d["status"], d["relay"]),
                         ("sent", "mx-ee.dane.test[127.0.0.2]:%d" % self.port))
        self.assertRegex(d["tls"], r"^Verified TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\) "
                         r"\(dane\)$")
        self.assertTrue([l for l in tls_lines(self.a, "mx-ee.dane.test")
                         if re.search(r"info: Verified TLS connection established to "
                                      r"mx-ee\.dane\.test\[127\.0\.0\.2\]:%d: TLSv1\.[23] "
                                      r"with cipher .* \(dane\)$" % self.port, l)])
        msg = self.peers["127.0.0.2"].wait_messages(before[0] + 1)[-1]
        self.assertTrue(msg.tls)
        self.assertEqual(msg.rcpts, ["u@ee.dane.test"])

    def test_dane_sni_is_the_tlsa_base_domain(self):
        # RFC 7672 8.1: SNI names the TLSA base domain; for an MX host that
        # is an alias with TLSA records at its target, the target
        peer = self.peers["127.0.0.2"]
        n = len(peer.messages)
        qid, d = self.send("u@ee.dane.test")
        self.assertEqual(d["status"], "sent", d)
        self.assertEqual(peer.wait_messages(n + 1)[-1].sni, "mx-ee.dane.test")
        qid, d = self.send("u@alias.dane.test")
        self.assertEqual((d["status"], d["relay"]),
                         ("sent", "mx-alias.dane.test[127.0.0.2]:%d" % self.port), d)
        self.assertRegex(d["tls"], r"^Verified .* \(dane\)$")
        self.assertEqual(peer.wait_messages(n + 2)[-1].sni, "mx-ee.dane.test")

    def test_dane_ta_2_0_1_verified(self):
        qid, d = self.send("u@ta.dane.test")
        self.assertEqual(d["status"], "sent")
        self.assertTrue(d["tls"].startswith("Verified "), d)
        self.assertTrue(d["tls"].endswith("(dane)"), d)
        self.assertTrue(self.peers["127.0.0.3"].messages[-1].tls)

    def test_dane_mismatch_defers_nothing_sent(self):
        before = self.mark("127.0.0.4")
        qid, d = self.send("u@bad.dane.test")
        self.assertEqual((d["status"], d["dsn"]), ("deferred", "4.7.5"))
        self.assertIn("TLS policy (dane) not met by host mx-bad.dane.test[127.0.0.4]", d["diag"])
        self.assertIn("DANE authentication of mx-bad.dane.test failed", d["diag"])
        self.nothing_sent("127.0.0.4", before)
        # the handshake did happen, and the session was judged right after it
        self.assertIn("<TLS>", [l for _, l in self.peers["127.0.0.4"].transcript[before[1]:]])
        self.assertTrue([l for l in tls_lines(self.a, "mx-bad.dane.test")
                         if "Untrusted" in l or "Trusted" in l])
        q = {m["id"]: m for m in self.a.queue_json()["messages"]}
        self.assertEqual(q[qid]["recipients"][0]["state"], "deferred")

    def test_mismatch_then_next_mx(self):
        before = self.mark("127.0.0.4")
        qid, d = self.send("u@two.dane.test")
        self.assertEqual((d["status"], d["relay"]),
                         ("sent", "mx-ee.dane.test[127.0.0.2]:%d" % self.port))
        self.assertTrue(d["tls"].startswith("Verified"))
        self.nothing_sent("127.0.0.4", before)

    def test_tlsa_without_starttls_defers(self):
        before = self.mark("127.0.0.5")
        qid, d = self.send("u@plain.dane.test")
        self.assertEqual((d["status"], d["dsn"]), ("deferred", "4.7.4"))
        self.assertIn("TLS is required, but was not offered by host mx-plain.dane.test", d["diag"])
        self.nothing_sent("127.0.0.5", before)
        self.assertGreater(self.peers["127.0.0.5"].connections, before[2])

    def test_unusable_tlsa_is_mandatory_unauthenticated_tls(self):
        qid, d = self.send("u@unus.dane.test")
        self.assertEqual(d["status"], "sent")
        self.assertRegex(d["tls"], r"^(Untrusted|Trusted) TLSv1\.[23] .* \(dane\)$")
        self.assertTrue(self.peers["127.0.0.2"].messages[-1].tls)
        before = self.mark("127.0.0.5")
        qid, d = self.send("u@unusplain.dane.test")
        self.assertEqual((d["status"], d["dsn"]), ("deferred", "4.7.4"))
        self.nothing_sent("127.0.0.5", before)
        # and it does not count as authenticated for REQUIRETLS
        qid, d = self.send("u@unus.dane.test", requiretls=True)
        self.assertEqual((d["status"], d["dsn"]), ("bounced", "5.7.10"), d)

    def test_authenticated_tls_is_1_2_or_later(self):
        # RFC 8996: TLS 1.0 and 1.1 authenticate nothing. The TLSA record
        # matches, but the server speaks TLS 1.1 at most: deferred, nothing
        # sent; the same server without DANE gets its mail over TLS 1.1
        peer = self.peers["127.0.0.12"]
        before = self.mark("127.0.0.12")
        qid, d = self.send("u@tls11.dane.test")
        self.assertEqual((d["status"], d["dsn"]), ("deferred", "4.7.5"), d)
        self.assertIn("handshake failure with mx-tls11.dane.test", d["diag"])
        self.assertGreater(peer.connections, before[2])
        self.nothing_sent("127.0.0.12", before)
        qid, d = self.send("u@tls11may.dane.test")
        self.assertEqual(d["status"], "sent", d)
        self.assertRegex(d["tls"], r"^\w+ TLSv1\.1 .* \(may\)$")
        self.assertTrue(peer.wait_messages(before[0] + 1)[-1].tls)

    def test_insecure_zone_is_opportunistic(self):
        qid, d = self.send("u@insecure.test")
        self.assertEqual(d["status"], "sent")
        # TLSA records of an unsigned zone count for nothing: may (the
        # chain is Trusted: A has the test CA as tls_ca_file)
        self.assertRegex(d["tls"], r"^Trusted TLSv1\.[23] .* \(may\)$")
        self.assertTrue(self.peers["127.0.0.7"].messages[-1].tls)

    def test_insecure_mx_rrset_means_no_dane(self):
        # RFC 7672 2.2.1: the MX host name counts only from a secure MX
        # RRset; mx-bad's TLSA record (a mismatch) is not looked at
        peer = self.peers["127.0.0.4"]
        n = len(peer.messages)
        qid, d = self.send("u@unsignedmx.insecure.test")
        self.assertEqual((d["status"], d["relay"]),
                         ("sent", "mx-bad.dane.test[127.0.0.4]:%d" % self.port), d)
        self.assertRegex(d["tls"], r"^Trusted TLSv1\.[23] .* \(may\)$")
        self.assertTrue(peer.wait_messages(n + 1)[-1].tls)

    def test_no_tlsa_is_opportunistic(self):
        qid, d = self.send("u@nodane.dane.test")
        self.assertEqual(d["status"], "sent")
        self.assertTrue(d["tls"].endswith("(may)"), d)

    def test_bogus_zone_defers_without_connecting(self):
        before = self.mark("127.0.0.8")
        qid, d = self.send("u@bogus.test")
        self.assertEqual(d["status"], "deferred")
        self.assertIn("SERVFAIL", d["diag"])
        self.assertEqual(self.mark("127.0.0.8"), before)

    def test_bogus_tlsa_defers_without_connecting(self):
        before = self.mark("127.0.0.9")
        qid, d = self.send("u@broken.test")
        self.assertEqual((d["status"], d["dsn"]), ("deferred", "4.7.5"))
        self.assertIn("TLSA lookup of _%d._tcp.mx.broken.test failed" % self.port, d["diag"])
        self.assertEqual(self.mark("127.0.0.9"), before)

    # ---- verify, and the tls_policy map ----

    def test_verify_with_tls_ca_file(self):
        qid, d = self.send("u@verify.dane.test")
        self.assertEqual(d["status"], "sent")
        self.assertRegex(d["tls"], r"^Verified .* \(verify\)$")

    def test_verify_wrong_name_defers(self):
        before = self.mark("127.0.0.2")
        qid, d = self.send("u@wrongname.dane.test")
        self.assertEqual((d["status"], d["dsn"]), ("deferred", "4.7.5"))
        self.assertIn("TLS policy (verify) not met by host mx-wrongname.dane.test", d["diag"])
        self.assertIn("name", d["diag"])
        self.nothing_sent("127.0.0.2", before)

    def test_verify_expired_cert_defers(self):
        before = self.mark("127.0.0.10")
        qid, d = self.send("u@old.dane.test")
        self.assertEqual((d["status"], d["dsn"]), ("deferred", "4.7.5"))
        self.assertIn("TLS policy (verify) not met by host mx-old.dane.test", d["diag"])
        self.assertIn("expired", d["diag"])
        self.nothing_sent("127.0.0.10", before)
        self.assertIn("<TLS>", [l for _, l in self.peers["127.0.0.10"].transcript[before[1]:]])

    def test_reused_connection_counted_for_each_domain(self):
        # reuse3.test's mail goes over the idle connection of reuse1.test
        # (the same host, the same policy); its TLS report counts it
        peer = self.peers["127.0.0.2"]
        qid, d = self.send("u@reuse1.test")
        self.assertEqual(d["status"], "sent", d)
        conns = peer.connections
        for _ in range(2):
            qid, d = self.send("u@reuse3.test")
            self.assertEqual(d["status"], "sent", d)
            self.assertRegex(d["tls"], r"^Verified .* \(verify\)$")
        self.assertEqual(peer.connections, conns)       # the idle one, twice
        rep = json.loads(self.a.mailctl("tls-report", "--json", "reuse3.test").stdout)
        (pol,) = rep["policies"]
        self.assertEqual(pol["policy"]["policy-domain"], "reuse3.test")
        # one session, however many messages
        self.assertEqual(pol["summary"]["total-successful-session-count"], 1)
        self.assertEqual(pol["summary"]["total-failure-session-count"], 0)

    def test_reused_connection_judged_by_each_domain(self):
        # reuse1.test and reuse2.test are routed to mx-ee.dane.test; the
        # certificate names mx-ee (reuse1's verify), not mx-other
        # (reuse2's match=). The idle connection of reuse1 serves reuse1
        # again, never reuse2.
        peer = self.peers["127.0.0.2"]
        qid, d = self.send("u@reuse1.test")
        self.assertEqual(d["status"], "sent", d)
        self.assertRegex(d["tls"], r"^Verified .* \(verify\)$")
        conns = peer.connections
        qid, d = self.send("u@reuse1.test")
        self.assertEqual(d["status"], "sent", d)
        self.assertEqual(peer.connections, conns)       # the idle one
        before = self.mark("127.0.0.2")
        qid, d = self.send("u@reuse2.test")
        self.assertEqual((d["status"], d["dsn"]), ("deferred", "4.7.5"), d)
        self.assertIn("TLS policy (verify) not met by host mx-ee.dane.test", d["diag"])
        self.assertIn("mx-other.dane.test", d["diag"])
        self.nothing_sent("127.0.0.2", before)

    # ---- STARTTLS stripped: refused (454) or not offered ----

    def test_starttls_refused_under_encrypt_defers(self):
        before = self.mark("127.0.0.11")
        qid, d = self.send("u@strip.dane.test")
        self.assertEqual((d["status"], d["dsn"]), ("deferred", "4.7.4"))
        self.assertIn("STARTTLS", d["diag"])
        self.nothing_sent("127.0.0.11", before)
        self.assertGreater(self.peers["127.0.0.11"].connections, before[2])

    def test_starttls_not_offered_under_verify_defers(self):
        before = self.mark("127.0.0.5")
        qid, d = self.send("u@nostarttls.dane.test")
        self.assertEqual((d["status"], d["dsn"]), ("deferred", "4.7.4"))
        self.assertIn("TLS is required, but was not offered by host mx-nostls.dane.test",
                      d["diag"])
        self.nothing_sent("127.0.0.5", before)

    def test_stripped_starttls_at_may_goes_in_plaintext(self):
        # the contrast: without DANE, MTA-STS or a policy entry, dane is may
        for rcpt, addr in (("u@stripmay.dane.test", "127.0.0.11"),
                           ("u@nostlsmay.dane.test", "127.0.0.5")):
            n = len(self.peers[addr].messages)
            qid, d = self.send(rcpt)
            self.assertEqual(d["status"], "sent", d)
            self.assertEqual(d["tls"], "plaintext (may)", d)
            msg = self.peers[addr].wait_messages(n + 1)[-1]
            self.assertFalse(msg.tls)
            self.assertEqual(msg.rcpts, [rcpt])

    def test_policy_map_reloaded_on_sighup(self):
        self.addCleanup(self.reload_policy, BASE_POLICY)
        self.reload_policy(BASE_POLICY.replace("wrongname.dane.test verify\n", "") +
                           "wrongname.dane.test verify match=mx-ee.dane.test\n"
                           "nodane.dane.test dane-only\n")
        qid, d = self.send("u@wrongname.dane.test")
        self.assertEqual(d["status"], "sent")
        self.assertRegex(d["tls"], r"^Verified .* \(verify\)$")
        before = self.mark("127.0.0.2")
        qid, d = self.send("u@nodane.dane.test")
        self.assertEqual((d["status"], d["dsn"]), ("deferred", "4.7.5"))
        self.assertIn("no DANE for mx-nodane.dane.test", d["diag"])
        self.assertEqual(self.mark("127.0.0.2")[2], before[2])     # not even connected

    def reload_policy(self, text):
        n = self.a.logtext().count("reloaded ")
        self.write_policy(text)
        self.a.signal(signal.SIGHUP)
        wait_for(lambda: self.a.logtext().count("reloaded ") > n, 20, "the reload")

    def test_bad_policy_map_is_a_config_error(self):
        d = tempfile.mkdtemp(prefix="ms-badpol-")
        self.addCleanup(shutil.rmtree, d, True)
        pol = os.path.join(d, "tls_policy")
        with open(pol, "w") as f:
            f.write("ok.test may\nbad..name verify\nx.test strict\n")
        srv = Server("tls_policy = %s\n" % pol, workdir=d)
        r = subprocess.run([MAILSERVER, "-t", "-c", srv.conf],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertRegex(r.stderr, r"%s:2: .*bad\.\.name" % re.escape(pol))
        self.assertRegex(r.stderr, r"%s:3: .*strict" % re.escape(pol))
        # and a bad map on SIGHUP keeps the old one
        n = self.a.logtext().count("reload failed")
        self.write_policy("wrongname.dane.test strict\n")
        self.addCleanup(self.reload_policy, BASE_POLICY)
        self.a.signal(signal.SIGHUP)
        wait_for(lambda: self.a.logtext().count("reload failed") > n, 20, "the failed reload")
        qid, dl = self.send("u@wrongname.dane.test")
        self.assertEqual(dl["status"], "deferred")      # still verify

    # ---- REQUIRETLS ----

    def test_requiretls_end_to_end(self):
        # client -> A (TLS, REQUIRETLS) -> B (DANE) -> C (DANE, a route by name)
        c = self.peers["127.0.0.31"]
        n = len(c.messages)
        qid, d = self.send("u@rt.dane.test", requiretls=True)
        self.assertEqual((d["status"], d["relay"]),
                         ("sent", "mx-b.dane.test[127.0.0.30]:%d" % self.port))
        self.assertTrue(d["tls"].startswith("Verified") and d["tls"].endswith("(dane)"), d)
        msg = c.wait_messages(n + 1)[-1]
        self.assertIn("REQUIRETLS", msg.mail_params)
        self.assertEqual(msg.mail_from, "sender@a.test")
        self.assertTrue(msg.tls)
        bd = delivery(self.b, d["diag"].split()[-1], "u@rt.dane.test")
        self.assertEqual(bd["status"], "sent")
        self.assertRegex(bd["tls"], r"^Verified .* \(dane\)$")
        self.assertEqual(bd["relay"], "mx-c.dane.test[127.0.0.31]:%d" % self.port)

    def test_requiretls_over_verify(self):
        # the verify level authenticates too (the tls_policy entry; its TLSA
        # records play no part there)
        c = self.peers["127.0.0.31"]
        n = len(c.messages)
        qid, d = self.send("u@rtverify.dane.test", requiretls=True)
        self.assertEqual((d["status"], d["relay"]),
                         ("sent", "mx-c.dane.test[127.0.0.31]:%d" % self.port), d)
        self.assertRegex(d["tls"], r"^Verified .* \(verify\)$")
        msg = c.wait_messages(n + 1)[-1]
        self.assertIn("REQUIRETLS", msg.mail_params)
        self.assertTrue(msg.tls)

    def test_requiretls_verify_needs_a_validated_name(self):
        # RFC 8689 4.2.1: verify checks the certificate against the MX host
        # name; from an MX RRset that is not DNSSEC-secure that name may be
        # an attacker's, so it does not do for REQUIRETLS; match= names do
        c = self.peers["127.0.0.31"]
        qid, d = self.send("u@rtv.insecure.test")
        self.assertEqual(d["status"], "sent", d)
        self.assertRegex(d["tls"], r"^Verified .* \(verify\)$")
        n = len(c.messages)
        qid, d = self.send("u@rtv.insecure.test", requiretls=True)
        self.assertEqual((d["status"], d["dsn"]), ("bounced", "5.7.10"), d)
        self.assertEqual(len(c.messages), n)
        qid, d = self.send("u@rtvm.insecure.test", requiretls=True)
        self.assertEqual((d["status"], d["relay"]),
                         ("sent", "mx-c.dane.test[127.0.0.31]:%d" % self.port), d)
        self.assertRegex(d["tls"], r"^Verified .* \(verify\)$")
        msg = c.wait_messages(n + 1)[-1]
        self.assertIn("REQUIRETLS", msg.mail_params)

    def test_requiretls_refused_toward_unverified_peer(self):
        before = self.mark("127.0.0.7")
        qid, d = self.send("u@insecure.test", requiretls=True)
        self.assertEqual((d["status"], d["dsn"]), ("bounced", "5.7.10"))
        self.assertIn("REQUIRETLS", d["diag"])
        self.assertEqual(self.mark("127.0.0.7"), before)    # never connected
        self.assertEqual(self.bounce_status(qid), "5.7.10")

    def test_requiretls_refused_toward_peer_without_the_extension(self):
        before = self.mark("127.0.0.2")
        qid, d = self.send("u@ee.dane.test", requiretls=True)
        self.assertEqual((d["status"], d["dsn"]), ("bounced", "5.7.30"))
        self.assertIn("REQUIRETLS support required", d["diag"])
        self.nothing_sent("127.0.0.2", before)

    def test_requiretls_defers_while_the_fault_may_pass(self):
        before = self.mark("127.0.0.4")
        qid, d = self.send("u@bad.dane.test", requiretls=True)
        self.assertEqual((d["status"], d["dsn"]), ("deferred", "4.7.5"))
        self.nothing_sent("127.0.0.4", before)
        # the flag is kept with the envelope in the queue record
        flags = self.a.mailctl("show", qid).stdout
        self.assertRegex(flags, r"(?m)^flags: .*requiretls")

    def test_requiretls_notice_goes_with_requiretls(self):
        # RFC 8689 4.3: the bounce holds the header, so it is protected too:
        # to x@rt.dane.test it goes A -> B -> C with REQUIRETLS and <>
        c = self.peers["127.0.0.31"]
        n = len(c.messages)
        qid = submit(self.a.port, "x@rt.dane.test", "u@insecure.test", requiretls=True)
        d = delivery(self.a, qid, "u@insecure.test")
        self.assertEqual((d["status"], d["dsn"]), ("bounced", "5.7.10"))
        msg = c.wait_messages(n + 1)[-1]
        self.assertEqual((msg.mail_from, msg.rcpts), ("", ["x@rt.dane.test"]))
        self.assertIn("REQUIRETLS", msg.mail_params)
        self.assertTrue(msg.tls)
        self.assertIn(qid.encode(), msg.data)
        # toward a sender whose MX lacks REQUIRETLS it is dropped, not sent
        before = self.mark("127.0.0.2")
        qid = submit(self.a.port, "y@ee.dane.test", "u@insecure.test", requiretls=True)
        self.assertEqual(delivery(self.a, qid, "u@insecure.test")["status"], "bounced")
        notice = wait_for(lambda: [x for x in deliveries(self.a) if x["to"] == "y@ee.dane.test"],
                          30, "the notice's delivery")[0]
        self.assertEqual((notice["status"], notice["dsn"]), ("bounced", "5.7.30"), notice)
        self.nothing_sent("127.0.0.2", before)

    def test_requiretls_only_inside_tls(self):
        c = Client(self.a.port)
        try:
            self.assertEqual(c.reply()[0], 220)
            code, kws = c.cmd("EHLO client.test")
            self.assertNotIn("REQUIRETLS", kws)
            code, lines = c.cmd("MAIL FROM:<sender@a.test> REQUIRETLS")
            self.assertEqual(code, 530)
            self.assertTrue(lines[0].startswith("5.7.10"), lines)
            self.assertEqual(c.cmd("STARTTLS")[0], 220)
            c.starttls()
            code, kws = c.cmd("EHLO client.test")
            self.assertIn("REQUIRETLS", kws)
            self.assertEqual(c.cmd("MAIL FROM:<sender@a.test> REQUIRETLS=YES")[0], 501)
            self.assertEqual(c.cmd("MAIL FROM:<sender@a.test> REQUIRETLS")[0], 250)
            self.assertEqual(c.cmd("RSET")[0], 250)
        finally:
            c.close()

    def test_tls_required_no_header(self):
        # RFC 8689 5: the sender asks that the TLS policy be ignored
        n = len(self.peers["127.0.0.4"].messages)
        qid, d = self.send("u@bad.dane.test",
                           body=b"Subject: anyway\r\nTLS-Required: No\r\n\r\nhello\r\n")
        self.assertEqual(d["status"], "sent")
        self.assertTrue(d["tls"].endswith("(may)"), d)
        self.peers["127.0.0.4"].wait_messages(n + 1)
        # the field past the first 64 KiB body record of the queue
        pad = b"".join(b"X-Pad-%04d: %s\r\n" % (i, b"a" * 60) for i in range(1400))
        qid, d = self.send("u@bad.dane.test",
                           body=b"Subject: big\r\n" + pad + b"TLS-Required: No\r\n\r\nhi\r\n")
        self.assertEqual(d["status"], "sent", d)
        self.peers["127.0.0.4"].wait_messages(n + 2)

    # ---- admin views ----

    def test_mailctl_tls(self):
        out = self.a.mailctl("tls", "ee.dane.test").stdout
        self.assertIn("domain ee.dane.test: level dane, MX DNSSEC secure", out)
        self.assertIn("mx 10 mx-ee.dane.test: 127.0.0.2", out)
        self.assertIn("host mx-ee.dane.test: dane via dane, TLS required, DANE authentication, "
                      "address DNSSEC secure", out)
        self.assertIn("tlsa _%d._tcp.mx-ee.dane.test %s" % (self.port,
                                                             self.certs["ee"].tlsa(3, 1, 1)), out)
        out = self.a.mailctl("tls", "insecure.test").stdout
        self.assertIn("MX DNSSEC insecure", out)
        self.assertIn("host mx.insecure.test: may via may", out)
        self.assertNotIn("tlsa ", out)
        out = self.a.mailctl("tls", "bogus.test", check=False)
        self.assertIn("SERVFAIL", out.stdout + out.stderr)
        out = self.a.mailctl("tls", "wrongname.dane.test").stdout
        self.assertIn("level verify", out)

    def test_mailctl_tls_report(self):
        self.send("u@ee.dane.test")
        self.send("u@bad.dane.test")
        rep = json.loads(self.a.mailctl("tls-report", "--json", "ee.dane.test").stdout)
        (pol,) = rep["policies"]
        self.assertEqual(pol["policy"]["policy-type"], "tlsa")
        self.assertEqual(pol["policy"]["policy-string"], [self.certs["ee"].tlsa(3, 1, 1)])
        self.assertGreaterEqual(pol["summary"]["total-successful-session-count"], 1)
        self.assertEqual(pol["summary"]["total-failure-session-count"], 0)
        self.assertIn("relay.a.test", rep["organization-name"])
        rep = json.loads(self.a.mailctl("tls-report", "--json", "bad.dane.test").stdout)
        fails = [f for p in rep["policies"] for f in p["failure-details"]]
        self.assertEqual({(f["result-type"], f["receiving-mx-hostname"], f["receiving-ip"])
                          for f in fails}, {("tlsa-invalid", "mx-bad.dane.test", "127.0.0.4")})
        text = self.a.mailctl("tls-report", "ee.dane.test").stdout
        self.assertRegex(text, r"ee\.dane\.test policy tlsa: \d+ successful, 0 failed")

    @unittest.skipUnless(fault_lib(), "MSFAULT_LIB not set (run through make integration)")
    def test_old_report_counters_pruned(self):
        # a daemon of its own, whose counters of today are 20 days old for
        # the same daemon started with its wall clock 20 days on
        srv = lab_server("smtp_port = %d\ntls_outbound = dane\nlocal_domains = a.test\n"
                         % self.port, self.lab.port, hostname="prune.a.test")
        self.addCleanup(srv.cleanup)
        srv.start()
        qid = submit(srv.port, "sender@a.test", "u@ee.dane.test")
        self.assertEqual(delivery(srv, qid, "u@ee.dane.test")["status"], "sent")
        today = time.strftime("%Y-%m-%d", time.gmtime())
        self.assertIn("1 successful", srv.mailctl("tls-report", "ee.dane.test",
                                                  "--date", today).stdout)
        self.assertEqual(srv.stop(), 0)
        srv.start(env=fault_env(MSFAULT_REALTIME_OFFSET=str(20 * 86400)))
        srv.wait_log("counters older than 14 days pruned")
        self.assertEqual(srv.stop(), 0)
        self.assertIn("no TLS results recorded", srv.mailctl("tls-report", "ee.dane.test",
                                                             "--date", today).stdout)

    # ---- cross-checks ----

    def test_cross_check_gnutls_dane(self):
        # GnuTLS's own tool agrees with the records for the certificates served
        ee = self.certs["ee"]
        r = subprocess.run(["danetool", "--tlsa-rr", "--host", "mx-ee.dane.test",
                            "--port", str(self.port), "--load-certificate", ee.pem],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("03 01 01 " + ee.tlsa(3, 1, 1).split()[3], r.stdout)

    @unittest.skipUnless(private_netns() and shutil.which("posttls-finger"),
                         "needs the private network namespace and posttls-finger")
    def test_cross_check_posttls_finger(self):
        # Postfix's DANE client (AD bit from the resolver in resolv.conf, as
        # ours) judges each DANE host as the daemon did. (Where DANE does
        # not apply the words differ by design: A trusts the test CA, a
        # posttls-finger without CA file does not.)
        d = tempfile.mkdtemp(prefix="ms-ptf-")
        self.addCleanup(shutil.rmtree, d, True)
        with open(os.path.join(d, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\n")
        with open(os.path.join(d, "main.cf"), "w") as f:
            f.write("compatibility_level = 3.6\nsmtp_dns_support_level = dnssec\n")
        for domain, name, theirs in (("ee.dane.test", "mx-ee.dane.test", "Matched DANE EE"),
                                     ("ta.dane.test", "mx-ta.dane.test", "Matched DANE TA"),
                                     ("bad.dane.test", "mx-bad.dane.test",
                                      "no matching DANE TLSA")):
            r = subprocess.run(
                ["unshare", "--mount", "sh", "-c",
                 'mount --bind "$0/resolv.conf" /etc/resolv.conf && MAIL_CONFIG="$0" '
                 'exec posttls-finger -c -l dane "[$1]:$2"', d, name, str(self.port)],
                capture_output=True, text=True, timeout=60 * SLOW)
            m = re.search(r"(\w+) TLS connection established to %s" % re.escape(name),
                          r.stdout + r.stderr)
            self.assertIsNotNone(m, r.stdout + r.stderr)
            self.send("x@" + domain)
            ours = re.search(r"(\w+) TLS connection established to %s\[" % re.escape(name),
                             tls_lines(self.a, name)[-1]).group(1)
            self.assertEqual(m.group(1), ours, (domain, r.stdout, r.stderr))
            if theirs:
                self.assertIn(theirs, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
