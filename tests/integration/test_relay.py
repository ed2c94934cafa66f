"""Remote delivery through DNS: a relay (mailserver A) finds the MX of a
domain in a real DNS server (ldns-testns on loopback) and hands the message
to a second mailserver (B), which stores it (issue: remote delivery)."""
import email
import os
import unittest

from harness import send_message as send, DnsServer, Server, free_port, greet, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))


def relay_server(smtp_port, hostname, dns):
    """A relay (not started) that asks dns and delivers to smtp_port."""
    srv = Server("smtp_port = %d\nretry_min = 1h\nretry_max = 2h\n"
                 "connect_timeout = 2s\n" % smtp_port, hostname=hostname)
    # the test DNS server (the harness default is a dead port)
    srv.write_config(open(srv.conf).read().replace(
        "dns_server = 127.0.0.1:1", "dns_server = 127.0.0.1:%d" % dns.port))
    return srv




class RelayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = DnsServer(os.path.join(HERE, "dns", "mail.data"))
        cls.mx_port = free_port("127.0.0.2")
        # B: the MX of b.test (127.0.0.2) and the second MX of fallback.test
        # and the implicit MX of implicit.test (127.0.0.3), on one port.
        cls.b = Server("local_domains = b.test fallback.test implicit.test backup.test\n",
                       port=cls.mx_port, hostname="mx.b.test",
                       listen="127.0.0.2:%d;127.0.0.3:%d" % (cls.mx_port, cls.mx_port))
        cls.b.start(wait=False)
        cls.b.wait_ready(cls.mx_port, "127.0.0.2")
        cls.b.wait_ready(cls.mx_port, "127.0.0.3")
        cls.a = relay_server(cls.mx_port, "relay.a.test", cls.dns)
        cls.a.start()

    @classmethod
    def tearDownClass(cls):
        codes = (cls.a.stop(), cls.b.stop())
        cls.a.cleanup()
        cls.b.cleanup()
        cls.dns.stop()
        assert codes == (0, 0), codes

    def wait_files(self, srv, addr):
        return wait_for(lambda: srv.maildir_files(addr), 30, "mail for " + addr)

    def test_two_hops_body_identical(self):
        body = (b"Subject: two hops\r\nFrom: a@localhost\r\n\r\n"
                b".dot line\r\n8-bit \xc3\xa9\r\n" + b"w" * 990 + b"\r\nend\r\n")
        qid = send(self.a.port, "sender@localhost", "user@b.test", body)
        files = self.wait_files(self.b, "user@b.test")
        with open(files[0], "rb") as f:
            data = f.read()
        self.assertTrue(data.endswith(body.replace(b"\r\n", b"\n")), data[-200:])
        # both hops left their Received header, B's on top
        self.assertIn(b"by relay.a.test (mailserver)", data)
        self.assertLess(data.index(b"by mx.b.test"), data.index(b"by relay.a.test"))
        self.a.wait_log(qid + ": to=<user@b.test>, relay=mx.b.test[127.0.0.2]:%d" % self.mx_port)
        self.assertIn("status=sent", self.a.logtext())

    def test_mx_fallback_to_second_preference(self):
        qid = send(self.a.port, "sender@localhost", "u@fallback.test", b"Subject: fb\r\n\r\nx\r\n")
        self.wait_files(self.b, "u@fallback.test")
        self.a.wait_log(qid + ": to=<u@fallback.test>, relay=mx2.fallback.test[127.0.0.3]")

    def test_implicit_mx(self):
        send(self.a.port, "sender@localhost", "u@implicit.test", b"Subject: imp\r\n\r\nx\r\n")
        self.wait_files(self.b, "u@implicit.test")

    def bounce_for(self, rcpt, status):
        user = rcpt.split("@")[0]
        send(self.a.port, user + "-sender@localhost", rcpt, b"Subject: b\r\n\r\nx\r\n")
        files = self.wait_files(self.a, user + "-sender@localhost")
        with open(files[0], "rb") as f:
            msg = email.message_from_bytes(f.read())
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertIn("Status: " + status, msg.get_payload()[1].as_string())

    def test_null_mx_bounces_5_1_10(self):
        self.bounce_for("nm@nullmx.test", "5.1.10")

    def test_nxdomain_bounces_5_1_2(self):
        self.bounce_for("nx@nx.test", "5.1.2")

    def test_mx_pointing_at_ourselves_bounces(self):
        self.bounce_for("me@self.test", "5.4.6")

    def test_backup_mx_hands_to_the_better_mx(self):
        send(self.a.port, "sender@localhost", "u@backup.test", b"Subject: bk\r\n\r\nx\r\n")
        self.wait_files(self.b, "u@backup.test")

    def test_servfail_defers(self):
        qid = send(self.a.port, "sender@localhost", "sf@fail.test", b"Subject: sf\r\n\r\nx\r\n")
        self.a.wait_log(qid + ": to=<sf@fail.test>")
        wait_for(lambda: "status=deferred" in [l for l in self.a.logtext().splitlines()
                                               if qid + ": to=" in l][0], 10, "deferral")
        q = {m["id"]: m for m in self.a.queue_json()["messages"]}
        self.assertEqual(q[qid]["recipients"][0]["state"], "deferred")


class SelfWithoutAddressTest(unittest.TestCase):
    """RFC 5321 5.1 for a relay whose own name (ghost.a.test) has no
    address in the DNS: it still finds itself among the MX hosts by name,
    tries only better ones, and never hands the mail to a worse one."""

    @classmethod
    def setUpClass(cls):
        cls.dns = DnsServer(os.path.join(HERE, "dns", "mail.data"))
        cls.a = relay_server(free_port("127.0.0.2"), "ghost.a.test", cls.dns)
        cls.a.start()

    @classmethod
    def tearDownClass(cls):
        code = cls.a.stop()
        cls.a.cleanup()
        cls.dns.stop()
        assert code == 0, code

    def bounce_for(self, rcpt):
        user = rcpt.split("@")[0]
        send(self.a.port, user + "-sender@localhost", rcpt, b"Subject: b\r\n\r\nx\r\n")
        files = wait_for(lambda: self.a.maildir_files(user + "-sender@localhost"), 30,
                         "the bounce for " + rcpt)
        with open(files[0], "rb") as f:
            report = f.read()
        self.assertIn(b"Status: 5.4.6", report)
        self.assertIn(b"loops back to myself", report)

    def test_only_mx_is_myself(self):
        self.bounce_for("u@selfghost.test")

    def test_worse_mx_is_never_tried(self):
        # down.b.test (10) has no address; mx.b.test (30) is worse than us
        self.bounce_for("u@backupghost.test")

    def test_better_mx_failing_for_now_defers(self):
        qid = send(self.a.port, "sender@localhost", "u@tempghost.test", b"Subject: t\r\n\r\nx\r\n")
        line = wait_for(lambda: [l for l in self.a.logtext().splitlines()
                                 if qid + ": to=<u@tempghost.test>" in l], 30, "the attempt")[0]
        self.assertIn("status=deferred", line)
        self.assertIn("better than myself have no address for now", line)
        self.assertNotIn("127.0.0.2", line)


if __name__ == "__main__":
    unittest.main()
