"""Faults, all in one place (issue 8: nothing repeated, looped or
stranded). Every test makes its fault itself and is bounded in time:
  - DNS servers that are down, silent, slow (answers after 3 s) or answer
    garbage (faults.DnsFault in front of ldns-testns);
  - SMTP peers that never greet, or drop the connection mid-DATA or after
    the final "." (peers.Peer);
  - a small tmpfs under queue_dir or mail_dir that fills up (faults.Tmpfs,
    mounted in the test run's private mount namespace).
"""
import email
import json
import os
import signal
import subprocess
import time
import unittest

from faults import DnsFault, Tmpfs
from harness import (DnsServer, Server, free_port, greet, send_message as send,
                     wait_for, SLOW, MAILSERVER)
from peers import Peer

HERE = os.path.dirname(os.path.abspath(__file__))
FAULTS_DATA = os.path.join(HERE, "dns", "faults.data")


def with_dns(srv, port):
    """Points srv's config at the DNS server on port."""
    text = open(srv.conf).read().replace("dns_server = 127.0.0.1:1",
                                         "dns_server = 127.0.0.1:%d" % port)
    srv.write_config(text)


def rcpt_states(srv, qid):
    q = {m["id"]: m for m in srv.queue_json()["messages"]}
    if qid not in q:
        return {}
    return {r["address"]: r for r in q[qid]["recipients"]}


class DnsFaultTest(unittest.TestCase):
    """A resolver that is down, silent, slow or broken: slow answers are
    used; the others defer (4.4.3) in bounded time, and the server goes on."""

    @classmethod
    def setUpClass(cls):
        cls.dns = DnsServer(FAULTS_DATA)
        cls.mx_port = free_port("127.0.0.2")
        cls.peer = Peer("127.0.0.2", cls.mx_port).start()

    @classmethod
    def tearDownClass(cls):
        cls.peer.stop()
        cls.dns.stop()

    def run_with(self, mode, extra=""):
        srv = Server("smtp_port = %d\nretry_min = 1h\nretry_max = 2h\n%s"
                     % (self.mx_port, extra))
        self.addCleanup(srv.cleanup)
        fault = DnsFault(self.dns.port, mode, delay=3.0)
        fault.__enter__()
        self.addCleanup(fault.__exit__, None, None, None)
        with_dns(srv, fault.port)
        srv.start()
        return srv, fault

    def test_slow_resolver_answers_are_used(self):
        srv, _ = self.run_with("slow")    # dns_timeout 2s, dns_attempts 2
        before = len(self.peer.messages)
        t0 = time.monotonic()
        send(srv.port, "a@localhost", "u@slow.test")
        self.peer.wait_messages(before + 1, timeout=40 * SLOW)
        # three questions (MX, A, AAAA), each answered after 3 s
        self.assertGreater(time.monotonic() - t0, 8)
        self.assertEqual(srv.stop(), 0)

    def defers_in_time(self, mode, bound):
        srv, fault = self.run_with(mode, "dns_timeout = 1s\ndns_attempts = 2\n")
        t0 = time.monotonic()
        qid = send(srv.port, "a@localhost", "u@slow.test")
        st = wait_for(lambda: rcpt_states(srv, qid).get("u@slow.test", {}).get("state")
                      == "deferred" and rcpt_states(srv, qid), bound, "deferral")
        self.assertLess(time.monotonic() - t0, bound * SLOW)
        self.assertIn("Name service error", st["u@slow.test"]["diagnostic"])
        c, _ = greet(srv.port)          # the server goes on
        self.assertEqual(c.cmd("NOOP")[0], 250)
        c.close()
        self.assertEqual(srv.stop(), 0)
        return fault

    def test_resolver_down_defers(self):
        self.defers_in_time("down", 15)

    def test_silent_resolver_defers_in_bounded_time(self):
        fault = self.defers_in_time("silent", 20)
        self.assertGreaterEqual(fault.queries, 2)

    def test_garbage_answers_defer(self):
        fault = self.defers_in_time("garbage", 20)
        self.assertGreaterEqual(fault.queries, 1)


class SelfMxTest(unittest.TestCase):
    """An MX host at one of the server's own listening addresses is the
    server itself, whatever its name: the mail bounces at once (5.4.6)
    instead of going round in a loop."""

    def test_mx_at_own_listen_address(self):
        dns = DnsServer(FAULTS_DATA)
        self.addCleanup(dns.stop)
        port = free_port()
        mx_port = free_port("127.0.0.9")
        srv = Server("smtp_port = %d\n" % mx_port, port=port, hostname="relay.a.test",
                     listen="127.0.0.1:%d;127.0.0.9:%d" % (port, mx_port))
        self.addCleanup(srv.cleanup)
        with_dns(srv, dns.port)
        srv.start()
        send(srv.port, "sender@localhost", "u@selfaddr.test")
        files = wait_for(lambda: srv.maildir_files("sender@localhost"), 30, "bounce")
        with open(files[0], "rb") as f:
            report = f.read()
        self.assertIn(b"Status: 5.4.6", report)
        self.assertIn(b"loops back to myself", report)
        stats = json.loads(srv.mailctl("--json", "stats").stdout)
        self.assertEqual(stats["received"], 2)      # the message and its bounce
        self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    unittest.main()
