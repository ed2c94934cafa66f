"""Abuse control through the daemon, with bounded loops of real
sessions: the per-client rates (connections, messages, recipients,
unknown recipients) answered with 4.7.x and logged; the per-account
quotas of the day; DNSBL at connect against ldns-testns serving test
lists (tests/integration/dns/dnsbl.data), weighted, cached, exempt for
relay_networks and for submission; the greeting test with its
whitelist. Every client here is its own 127.0.0.x address, since the
limits count per address."""
import os
import signal
import socket
import subprocess
import time
import unittest

from harness import Client, DnsServer, SLOW, Server, free_port, wait_for
from ops import auth_plain, client_from, crypt_hash, greeting_from, parse, scrape, value

HERE = os.path.dirname(os.path.abspath(__file__))
PASSWORD = "abuse-secret"


def rejections(srv, reason):
    return value(parse(scrape(srv.mport)), "mailserver_rejections_total", reason=reason)


def start_server(extra):
    srv = Server()
    srv.mport = free_port()
    users = os.path.join(srv.dir, "users")
    with open(users, "w") as f:
        f.write("alice@localhost:%s\nbob@localhost:\n" % crypt_hash(PASSWORD))
    srv.write_config(open(srv.conf).read() + "users_file = %s\n" % users +
                     "metrics_listen = 127.0.0.1:%d\n" % srv.mport + extra)
    return srv.start()


class RateLimitTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = start_server(
            "relay_networks = 10.255.0.0/16\n"
            "auth_plaintext_networks = 127.0.0.0/8\n"
            "rate_window = 1h\n"
            "max_connection_rate = 3\n"
            "max_message_rate = 2\n"
            "max_recipient_rate = 4\n"
            "max_unknown_recipient_rate = 2\n"
            "account_max_messages = 2\n"
            "account_max_recipients = 3\n")

    @classmethod
    def tearDownClass(cls):
        try:
            assert cls.srv.stop() == 0
        finally:
            cls.srv.cleanup()

    def session(self, source):
        code, _, c = greeting_from(self.srv.port, source)
        self.assertEqual(code, 220)
        self.assertEqual(c.cmd("EHLO client.test")[0], 250)
        return c

    def test_connection_rate(self):
        codes = []
        for i in range(5):
            code, text, c = greeting_from(self.srv.port, "127.0.0.11")
            codes.append((code, text[:5]))
            if code != 220:
                self.assertTrue(c.closed())
            c.close()
        self.assertEqual(codes, [(220, "mx.te")] * 3 + [(421, "4.7.0")] * 2)
        self.srv.wait_log("reject: connect from [127.0.0.11]: 421 4.7.0 connection rate")
        self.assertEqual(rejections(self.srv, "connection_rate"), 2)
        # another address is another client
        code, _, c = greeting_from(self.srv.port, "127.0.0.15")
        self.assertEqual(code, 220)
        c.close()

    def test_message_rate(self):
        c = self.session("127.0.0.12")
        replies = []
        for i in range(4):
            replies.append(c.cmd("MAIL FROM:<x%d@example.org>" % i))
            c.cmd("RSET")
        c.close()
        self.assertEqual([r[0] for r in replies], [250, 250, 451, 451])
        self.assertTrue(replies[2][1][0].startswith("4.7.1"), replies[2])
        self.srv.wait_log("reject: MAIL from [127.0.0.12]: 451 4.7.1 message rate")
        self.assertEqual(rejections(self.srv, "message_rate"), 2)

    def test_recipient_rate(self):
        c = self.session("127.0.0.13")
        self.assertEqual(c.cmd("MAIL FROM:<x@example.org>")[0], 250)
        codes = [c.cmd("RCPT TO:<alice@localhost>")[0] for i in range(6)]
        c.close()
        self.assertEqual(codes, [250] * 4 + [452] * 2)
        self.srv.wait_log("reject: RCPT from [127.0.0.13]: 452 4.7.1 recipient rate")
        self.assertEqual(rejections(self.srv, "recipient_rate"), 2)

    def test_unknown_recipient_rate(self):
        c = self.session("127.0.0.14")
        self.assertEqual(c.cmd("MAIL FROM:<x@example.org>")[0], 250)
        codes = [c.cmd("RCPT TO:<%s@localhost>" % u)[0]
                 for u in ("nobody1", "nobody2", "alice", "bob")]
        c.close()
        # two unknown ones use the allowance up: then every RCPT waits
        self.assertEqual(codes, [550, 550, 450, 450])
        self.srv.wait_log("reject: RCPT from [127.0.0.14]: 450 4.7.1 unknown recipient rate")
        self.assertEqual(rejections(self.srv, "unknown_recipient_rate"), 2)

    def test_account_quotas(self):
        # The account counts, not the addresses it logs in from.
        sent = []
        for source in ("127.0.0.16", "127.0.0.17", "127.0.0.18"):
            c = self.session(source)
            self.assertEqual(auth_plain(c, "alice@localhost", PASSWORD), 235)
            code, lines = c.cmd("MAIL FROM:<alice@localhost>")
            sent.append(code)
            if code == 250:
                # distinct recipients: three a day; a repeat is free
                rcpts = ["r1@far.example", "r2@far.example"] if len(sent) == 1 else \
                    ["r1@far.example", "r3@far.example", "r4@far.example"]
                got = [c.cmd("RCPT TO:<%s>" % r)[0] for r in rcpts]
                self.assertEqual(got, [250, 250] if len(sent) == 1 else [250, 250, 452])
                c.cmd("RSET")
            else:
                self.assertTrue(lines[0].startswith("4.7.1"), lines)
            c.close()
        self.assertEqual(sent, [250, 250, 451])
        self.srv.wait_log("reject: MAIL from [127.0.0.18]: 451 4.7.1 account daily "
                          "messages of sasl_username=alice@localhost")
        self.srv.wait_log("452 4.7.1 account daily recipients of sasl_username=alice@localhost")
        self.assertEqual(rejections(self.srv, "account_quota"), 2)

    def test_relay_networks_exempt(self):
        # 127.0.0.1 is not in relay_networks here: its own server proves
        # the exemption (a reload would make every address exempt).
        srv = start_server("relay_networks = 127.0.0.19/32\nmax_connection_rate = 1\n"
                           "max_message_rate = 1\n")
        try:
            for i in range(3):
                c = client_from(srv.port, "127.0.0.19")
                self.assertEqual(c.reply()[0], 220)
                c.cmd("EHLO client.test")
                self.assertEqual(c.cmd("MAIL FROM:<a@b.example>")[0], 250)
                c.close()
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


class ReloadTest(unittest.TestCase):
    """SIGHUP brings new limits and lists to the running daemon; the
    counts so far are kept."""

    def test_reload_changes_limits_keeps_counts(self):
        dns = DnsServer(os.path.join(HERE, "dns", "dnsbl.data"))
        base = ("relay_networks = 10.255.0.0/16\nrate_window = 1h\n"
                "dns_timeout = 1s\ndns_attempts = 1\n")
        srv = start_server(base + "max_connection_rate = 3\n")
        conf = open(srv.conf).read()
        try:
            def reload(extra):
                text = conf.replace("max_connection_rate = 3\n", extra)
                if "dns_server" in extra:   # the harness's dead one goes
                    text = text.replace("dns_server = 127.0.0.1:1\n", "")
                srv.write_config(text)
                n = srv.logtext().count("reloaded")
                srv.signal(signal.SIGHUP)
                wait_for(lambda: srv.logtext().count("reloaded") > n, 10, "the reload")

            def code(source):
                c, _, conn = greeting_from(srv.port, source)
                conn.close()
                return c
            self.assertEqual([code("127.0.0.41") for i in range(2)], [220, 220])
            # a lower limit: the two connections so far count against it
            reload("max_connection_rate = 2\n")
            self.assertEqual(code("127.0.0.41"), 421)
            # no limit, and a list: 127.0.0.2 is listed, 127.0.0.41 greeted
            reload("max_connection_rate = 0\ndns_server = 127.0.0.1:%d\n" % dns.port +
                   "dnsbl = bl.test\ndnsbl_threshold = 1\n")
            self.assertEqual(code("127.0.0.41"), 220)
            self.assertEqual(code("127.0.0.2"), 554)
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()
            dns.stop()


class DnsblTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = DnsServer(os.path.join(HERE, "dns", "dnsbl.data"))
        cls.sub = free_port()
        cls.srv = start_server(
            "dns_server = 127.0.0.1:%d\n" % cls.dns.port +
            "dns_timeout = 1s\ndns_attempts = 1\n"
            "relay_networks = 10.255.0.0/16\n"
            "listen = 127.0.0.1:%d submission\n" % cls.sub +
            "dnsbl = bl.test=2 b2.test allow.test=-5\n"
            "dnsbl_threshold = 3\n")

    @classmethod
    def tearDownClass(cls):
        try:
            assert cls.srv.stop() == 0
        finally:
            cls.srv.cleanup()
            cls.dns.stop()

    def test_listed_refused_others_greeted(self):
        # 127.0.0.2: bl.test (2) + b2.test (1) = 3, at the threshold
        code, text, c = greeting_from(self.srv.port, "127.0.0.2")
        self.assertEqual(code, 554)
        self.assertTrue(text.startswith("5.7.1"), text)
        self.assertIn("[127.0.0.2] blocked using bl.test", text)
        self.assertTrue(c.closed())
        c.close()
        self.srv.wait_log("reject: connect from [127.0.0.2]: 554 5.7.1")
        # 127.0.0.3: bl.test only (2); 127.0.0.6: bl.test and the
        # allowlist (2 - 5); 127.0.0.9: listed nowhere
        for source in ("127.0.0.3", "127.0.0.6", "127.0.0.9"):
            code, text, c = greeting_from(self.srv.port, source)
            self.assertEqual(code, 220, (source, text))
            self.assertEqual(c.cmd("EHLO client.test")[0], 250)
            c.close()
        # submission is for users on any network: no lists there
        code, _, c = greeting_from(self.sub, "127.0.0.2")
        self.assertEqual(code, 220)
        c.close()
        self.assertEqual(rejections(self.srv, "dnsbl"), 1)

    def test_z_cached_and_bounded(self):
        # (runs last: it stops the DNS server) 127.0.0.2's verdict is
        # cached; a client never seen waits for the lists at most their
        # bound, and is greeted when they do not answer.
        greeting_from(self.srv.port, "127.0.0.2")[2].close()
        self.dns.stop()
        code, _, c = greeting_from(self.srv.port, "127.0.0.2")
        self.assertEqual(code, 554)
        c.close()
        start = time.monotonic()
        code, _, c = greeting_from(self.srv.port, "127.0.0.8")
        waited = time.monotonic() - start
        c.close()
        self.assertEqual(code, 220)
        self.assertLess(waited, 8 * SLOW)
        self.srv.wait_log("dnsbl: no answer about [127.0.0.8]")


IPV6_LISTED = "2001:db8::1"         # bl.test lists it (dns/dnsbl.data)
IPV6_CLEAN = "2001:db8:1::1"
IPV6_SAME_64 = ["2001:db8:2::1", "2001:db8:2::2"]
IPV6_OTHER_64 = "2001:db8:3::1"


@unittest.skipUnless(os.environ.get("MS_IN_NETNS") == "1" and os.geteuid() == 0,
                     "needs the private network namespace (run_integration.sh)")
class Ipv6ClientTest(unittest.TestCase):
    """IPv6 clients through the daemon: the connection rate counts a /64
    as one client; the DNSBL asks the lists by the 32 nibbles of the
    address. The addresses exist only in this test's network namespace."""

    ADDRS = [IPV6_LISTED, IPV6_CLEAN] + IPV6_SAME_64 + [IPV6_OTHER_64]

    @classmethod
    def setUpClass(cls):
        for a in cls.ADDRS:
            subprocess.run(["ip", "-6", "addr", "add", a + "/64", "dev", "lo", "nodad"],
                           check=True, capture_output=True)
        cls.dns = DnsServer(os.path.join(HERE, "dns", "dnsbl.data"))
        port = free_port("::1")
        srv = Server(port=port, listen="[::1]:%d" % port)
        srv.mport = free_port()
        srv.write_config(open(srv.conf).read() +
                         "metrics_listen = 127.0.0.1:%d\n" % srv.mport +
                         "dns_server = 127.0.0.1:%d\n" % cls.dns.port +
                         "dns_timeout = 1s\ndns_attempts = 1\n"
                         "relay_networks = 10.255.0.0/16\n"
                         "rate_window = 1h\nmax_connection_rate = 2\n"
                         "dnsbl = bl.test\ndnsbl_threshold = 1\n")
        srv.start(wait=False)
        srv.wait_ready(port, "::1")
        cls.srv = srv

    @classmethod
    def tearDownClass(cls):
        try:
            assert cls.srv.stop() == 0
        finally:
            cls.srv.cleanup()
            cls.dns.stop()
            for a in cls.ADDRS:
                subprocess.run(["ip", "-6", "addr", "del", a + "/64", "dev", "lo"],
                               capture_output=True)

    def greeting(self, source):
        c = Client.__new__(Client)
        c.sock = socket.create_connection(("::1", self.srv.port), timeout=10 * SLOW,
                                          source_address=(source, 0))
        c.buf = b""
        code, lines = c.reply()
        c.close()
        return code, lines[0] if lines else ""

    def test_connection_rate_per_64(self):
        # two addresses of one /64 share its allowance; the next /64 has its own
        codes = [self.greeting(a)[0] for a in IPV6_SAME_64 + IPV6_SAME_64[:1]]
        self.assertEqual(codes, [220, 220, 421])
        self.assertEqual(self.greeting(IPV6_OTHER_64)[0], 220)
        self.assertEqual(rejections(self.srv, "connection_rate"), 1)

    def test_dnsbl_by_nibbles(self):
        code, text = self.greeting(IPV6_LISTED)
        self.assertEqual(code, 554)
        self.assertIn("[%s] blocked using bl.test" % IPV6_LISTED, text)
        self.assertEqual(self.greeting(IPV6_CLEAN)[0], 220)
        self.assertEqual(rejections(self.srv, "dnsbl"), 1)


class PregreetTest(unittest.TestCase):
    DELAY = 2

    @classmethod
    def setUpClass(cls):
        cls.sub = free_port()
        cls.srv = start_server("greeting_delay = %ds\npregreet_ttl = 1h\n" % cls.DELAY +
                               "relay_networks = 127.0.0.28/30\n"
                               "listen = 127.0.0.1:%d submission\n" % cls.sub)

    @classmethod
    def tearDownClass(cls):
        try:
            assert cls.srv.stop() == 0
        finally:
            cls.srv.cleanup()

    def timed_greeting(self, source, port=None):
        start = time.monotonic()
        code, _, c = greeting_from(port or self.srv.port, source)
        took = time.monotonic() - start
        c.close()
        self.assertEqual(code, 220)
        return took

    def test_whitelist(self):
        # unknown: delayed; it waited, so it is remembered and not delayed
        self.assertGreaterEqual(self.timed_greeting("127.0.0.21"), self.DELAY - 0.05)
        self.assertLess(self.timed_greeting("127.0.0.21"), self.DELAY - 0.5)
        # an early talker is refused, and a later connection of it is
        # delayed: it never passed
        c = client_from(self.srv.port, "127.0.0.23")
        c.send("EHLO early.test\r\n")
        code, _ = c.reply()
        self.assertEqual(code, 554)
        c.close()
        self.srv.wait_log("pregreet from [127.0.0.23]: refused")
        self.assertGreaterEqual(self.timed_greeting("127.0.0.23"), self.DELAY - 0.05)
        self.assertEqual(rejections(self.srv, "pregreet"), 1)

    def test_trusted_clients_and_submission_not_delayed(self):
        # relay_networks (postscreen's permit_mynetworks), and users
        # submitting from wherever they are: never delayed, though never
        # seen before. (A first session, untimed: a sanitized daemon's
        # first one can take a second or more.)
        self.timed_greeting("127.0.0.28")
        self.assertLess(self.timed_greeting("127.0.0.30"), self.DELAY - 0.5)
        self.assertLess(self.timed_greeting("127.0.0.24", self.sub), self.DELAY - 0.5)
        # and the smtp listener still delays that stranger: it never
        # waited there
        self.assertGreaterEqual(self.timed_greeting("127.0.0.24"), self.DELAY - 0.05)


if __name__ == "__main__":
    unittest.main()
