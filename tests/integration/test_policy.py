"""The policy delegation client (filter/policy.c) against real policy
services: postgrey (greylisting: the first try is deferred, a try after
the delay passes), postfix-policyd-spf-python (SPF pass and fail, with its
DNS answered by ldns-testns on 127.0.0.1:53 inside the test's network
namespace), and a scripted service on Python's standard library for every
action and every failure (hangs, closed connections, garbage, limits).
Requests are made by tests/tools/filter_driver, reusing one connection.
"""
import os
import shutil
import socket
import tempfile
import threading
import time
import unittest

from filter_driver import run
from harness import free_port, SLOW, wait_for
from policy_peers import (CLOSE, HANG, PolicyPeer, PolicydSpf, Postgrey, SPF_UNAVAILABLE,
                          action, postgrey_available, spf_available)


def request(**kw):
    base = {"protocol_state": "RCPT", "protocol_name": "ESMTP",
            "helo_name": "client.example", "sender": "alice@example.org",
            "recipient": "bob@example.net", "client_address": "192.0.2.10",
            "client_name": "client.example", "reverse_client_name": "client.example",
            "instance": "a1.b2.c3", "recipient_count": "0", "size": "1234",
            "queue_id": "4F2A1B3C5D6E7"}
    base.update(kw)
    return ["%s=%s" % kv for kv in base.items()] + [""]


def ask(endpoint, *requests, args=()):
    script = []
    for r in requests:
        script += r
    return run("policy", list(args) + [endpoint], script)


class PolicyPeerTest(unittest.TestCase):
    def peer(self, answer, **kw):
        p = PolicyPeer(answer, **kw)
        self.addCleanup(p.stop)
        return p

    def test_actions(self):
        cases = [
            ("OK", "ok", "", "", ""),
            ("ok", "ok", "", "", ""),
            ("permit", "ok", "", "", ""),
            ("200", "ok", "", "", ""),
            ("DUNNO", "dunno", "", "", ""),
            ("REJECT", "reject", "554 5.7.1 Access denied", "", ""),
            ("REJECT not from here", "reject", "554 5.7.1 not from here", "", ""),
            ("reject 5.7.26 DMARC policy", "reject", "554 5.7.26 DMARC policy", "", ""),
            ("DEFER", "defer", "450 4.7.1 Try again later", "", ""),
            ("DEFER_IF_PERMIT Greylisted", "defer_if_permit", "450 4.7.1 Greylisted", "", ""),
            ("DEFER_IF_REJECT maybe", "defer_if_reject", "450 4.7.1 maybe", "", ""),
            ("550 5.1.1 no such user", "reject", "550 5.1.1 no such user", "", ""),
            ("550 no such user", "reject", "550 5.7.1 no such user", "", ""),
            ("450 4.2.0 greylisted", "defer", "450 4.2.0 greylisted", "", ""),
            ("421 4.7.0 go away", "shutdown", "421 4.7.0 go away", "", ""),
            ("DISCARD spam", "discard", "", "", "spam"),
            ("HOLD check it", "hold", "", "", "check it"),
            ("PREPEND X-Policy: seen", "prepend", "", "X-Policy: seen", ""),
            ("REDIRECT abuse@example.org", "redirect", "", "", ""),
            ("BCC archive@example.org", "bcc", "", "", ""),
            ("WARN odd client", "dunno", "", "", "odd client"),
            ("INFO hello", "dunno", "", "", "hello"),
        ]
        p = self.peer(lambda a, n: b"action=" + cases[n][0].encode() + b"\nignored=x\n\n")
        r = ask(p.endpoint, *[request() for _ in cases])
        self.assertEqual(p.connections, 1)
        for i, (act, kind, reply, header, text) in enumerate(cases):
            v = r.stage("policy", i)
            self.assertEqual((v["kind"], v["reply"], v["header"], v["text"], v["default"]),
                             (kind, reply, header, text, 0), act)
        self.assertEqual(r.stage("policy", 18)["addr"], "abuse@example.org")

    def test_actions_that_mean_a_configuration_problem(self):
        bad = ["FILTER smtp:[127.0.0.1]:10025", "reject_unauth_destination", "",
               "PREPEND no-colon", "PREPEND Bad Name: x", "REDIRECT two words",
               "550 4.7.1 class mismatch", "650 x", "BCC"]
        p = self.peer(lambda a, n: b"action=" + bad[n].encode() + b"\n\n")
        r = ask(p.endpoint, *[request() for _ in bad])
        for i, act in enumerate(bad):
            v = r.stage("policy", i)
            self.assertEqual((v["kind"], v["reply"], v["default"]),
                             ("defer", "451 4.3.5 Server configuration problem", 0), act)

    def test_request_attributes(self):
        p = self.peer(action("DUNNO"))
        ask(p.endpoint, request(sender="a\x01b@example.org", sasl_username="alice",
                                sasl_method="PLAIN", encryption_protocol="TLSv1.3",
                                recipient="j\u00f6rg@example.net"))
        got = p.requests[0]
        self.assertEqual(got["request"], "smtpd_access_policy")
        for name in ("protocol_state", "protocol_name", "helo_name", "queue_id", "sender",
                     "recipient", "recipient_count", "client_address", "client_name",
                     "reverse_client_name", "instance", "sasl_method", "sasl_username",
                     "sasl_sender", "size", "ccert_subject", "ccert_issuer",
                     "ccert_fingerprint", "ccert_pubkey_fingerprint", "encryption_protocol",
                     "encryption_cipher", "encryption_keysize", "etrn_domain", "stress",
                     "client_port", "policy_context", "server_address", "server_port",
                     "compatibility_level", "mail_version"):
            self.assertIn(name, got)
        self.assertEqual(got["sender"], "a?b@example.org")
        self.assertEqual(got["recipient"].encode("latin-1").decode(), "j\u00f6rg@example.net")
        self.assertEqual(got["size"], "1234")
        self.assertEqual(got["sasl_username"], "alice")
        self.assertEqual(got["ccert_subject"], "")

    def test_failures_give_the_default_action(self):
        cases = {
            "garbage": lambda a, n: b"this is not a policy reply\n\n",
            "no action": lambda a, n: b"foo=bar\n\n",
            "two actions": lambda a, n: b"action=OK\naction=REJECT\n\n",
            "closed": lambda a, n: CLOSE,
            "line too long": lambda a, n: b"action=" + b"x" * 5000 + b"\n\n",
            "too many attributes": lambda a, n: b"".join(b"a%d=b\n" % i for i in range(70)) +
            b"action=OK\n\n",
            "endless line": lambda a, n: b"action=" + b"x" * 200000,
            "hang": lambda a, n: HANG,
        }
        for name, answer in cases.items():
            with self.subTest(name):
                p = self.peer(answer)
                r = ask(p.endpoint, request(), args=["--timeout", "1000"])
                v = r.stage("policy")
                self.assertEqual((v["kind"], v["reply"], v["default"]),
                                 ("defer", "451 4.3.5 Server configuration problem", 1))
                self.assertIn("policy inet:", r.stderr)
                self.assertLess(r.elapsed, 6 * SLOW)

    def test_service_down_and_own_default(self):
        r = ask("inet:127.0.0.1:%d" % free_port(), request(),
                args=["--default", "DUNNO"])
        self.assertEqual((r.stage("policy")["kind"], r.stage("policy")["default"]),
                         ("dunno", 1))
        self.assertIn("Connection refused", r.stderr)
        path = os.path.join(tempfile.mkdtemp(prefix="ms-policy-"), "none.sock")
        r = ask("unix:" + path, request())
        self.assertEqual(r.stage("policy")["reply"], "451 4.3.5 Server configuration problem")
        shutil.rmtree(os.path.dirname(path))

    def test_closed_connection_is_replaced(self):
        # The service closes after each answer (as Postfix's own spawned
        # services may): every request still gets its answer.
        p = self.peer(action("OK"), close_after=True)
        r = ask(p.endpoint, request(), request(), request())
        for i in range(3):
            self.assertEqual(r.stage("policy", i)["kind"], "ok")
            self.assertEqual(r.stage("policy", i)["default"], 0)
        self.assertEqual(p.connections, 3)

    def test_stale_connection_is_retried_once(self):
        # The service drops the reused connection without answering: the
        # request goes once more on a new connection.
        p = self.peer(lambda a, n: CLOSE if n == 1 else b"action=OK\n\n")
        r = ask(p.endpoint, request(), request())
        self.assertEqual([r.stage("policy", i)["kind"] for i in range(2)], ["ok", "ok"])
        self.assertEqual(r.stage("policy", 1)["default"], 0)
        self.assertEqual((p.connections, len(p.requests)), (2, 3))
        # Only once: a new connection that fails too gives the default.
        p = self.peer(lambda a, n: CLOSE if n >= 1 else b"action=OK\n\n")
        r = ask(p.endpoint, request(), request())
        self.assertEqual(r.stage("policy", 1)["default"], 1)
        self.assertEqual((p.connections, len(p.requests)), (2, 3))

    def test_unix_socket(self):
        d = tempfile.mkdtemp(prefix="ms-policy-")
        self.addCleanup(shutil.rmtree, d)
        path = os.path.join(d, "policy.sock")
        ls = socket.socket(socket.AF_UNIX)
        ls.bind(path)
        ls.listen(1)

        def serve():
            s, _ = ls.accept()
            with s:
                data = b""
                while b"\n\n" not in data:
                    data += s.recv(4096)
                s.sendall(b"action=REJECT by unix\n\n")
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        r = ask("unix:" + path, request())
        t.join(10)
        ls.close()
        self.assertEqual(r.stage("policy")["reply"], "554 5.7.1 by unix")


@unittest.skipUnless(postgrey_available(), "postgrey is not installed")
class PostgreyTest(unittest.TestCase):
    """Real greylisting: postgrey with a private database and a 2 s delay."""

    DELAY = 2

    @classmethod
    def setUpClass(cls):
        cls.postgrey = Postgrey(cls.DELAY)
        cls.endpoint = cls.postgrey.endpoint

    @classmethod
    def tearDownClass(cls):
        cls.postgrey.cleanup()

    def test_first_try_deferred_later_one_passes(self):
        rq = request(sender="first@example.org", recipient="grey@example.net",
                     client_address="192.0.2.50")
        t0 = time.monotonic()
        r = ask(self.endpoint, rq, rq)
        for i in range(2):
            v = r.stage("policy", i)
            self.assertEqual(v["kind"], "defer_if_permit")
            self.assertEqual(v["default"], 0)
            self.assertTrue(v["reply"].startswith("450 4.2.0 Greylisted"), v["reply"])
        # Another triplet is greylisted on its own.
        other = ask(self.endpoint, request(sender="second@example.org",
                                           recipient="grey@example.net",
                                           client_address="192.0.2.50"))
        self.assertEqual(other.stage("policy")["kind"], "defer_if_permit")

        def passes():
            v = ask(self.endpoint, rq).stage("policy")
            return v if v["kind"] != "defer_if_permit" else None
        v = wait_for(passes, 20, "postgrey to let the retry pass")
        # postgrey counts whole seconds from the first try.
        self.assertGreater(time.monotonic() - t0, self.DELAY - 1)
        self.assertEqual(v["kind"], "prepend")
        self.assertTrue(v["header"].startswith("X-Greylist: delayed "), v["header"])
        self.assertIn("greylist.test", v["header"])
        # Then the triplet is known: no more header.
        self.assertEqual(ask(self.endpoint, rq).stage("policy")["kind"], "dunno")

    def test_zz_postgrey_down_means_default(self):
        # Runs last in the class (unittest sorts by name).
        self.postgrey.stop()
        r = ask(self.endpoint, request(), args=["--default", "DEFER Policy service down"])
        v = r.stage("policy")
        self.assertEqual((v["kind"], v["reply"], v["default"]),
                         ("defer", "450 4.7.1 Policy service down", 1))


@unittest.skipUnless(spf_available(), SPF_UNAVAILABLE)
class PolicydSpfTest(unittest.TestCase):
    """postfix-policyd-spf-python as Postfix's spawn(8) runs it
    (policy_peers.PolicydSpf), its DNS from tests/integration/dns/spf.data."""

    @classmethod
    def setUpClass(cls):
        cls.spf = PolicydSpf("debugLevel = 1\nTestOnly = 1\nHELO_reject = Fail\n"
                             "Mail_From_reject = Fail\nPermError_reject = False\n"
                             "TempError_Defer = False\nskip_addresses = 127.0.0.0/8,::1\n"
                             "Lookup_Time = 5\n")
        cls.endpoint = cls.spf.endpoint

    @classmethod
    def tearDownClass(cls):
        cls.spf.cleanup()

    def test_spf_pass_and_fail(self):
        r = ask(self.endpoint,
                request(sender="a@pass.spf.test", client_address="192.0.2.1",
                        helo_name="helo.example", instance="1"),
                request(sender="a@fail.spf.test", client_address="192.0.2.1",
                        helo_name="helo.example", instance="2"))
        ok = r.stage("policy", 0)
        self.assertEqual(ok["kind"], "prepend")
        self.assertTrue(ok["header"].startswith("Received-SPF: Pass (mailfrom)"), ok["header"])
        self.assertIn("client-ip=192.0.2.1", ok["header"])
        bad = r.stage("policy", 1)
        self.assertEqual(bad["kind"], "reject")
        self.assertTrue(bad["reply"].startswith("550 5.7.23 Message rejected due to: SPF fail"),
                        bad["reply"])
        self.assertEqual(len(self.spf.children), 1)


if __name__ == "__main__":
    unittest.main()
