"""Outbound delivery against scripted SMTP peers: per-recipient results,
retries, TLS policies, routes and relayhost (issue: remote delivery)."""
import email
import os
import signal
import tempfile
import unittest

from harness import send_message as send, Server, free_port, greet, wait_for, SLOW
from peers import Peer, make_cert




class PeerTest(unittest.TestCase):
    def setUp(self):
        self.port = free_port("127.0.0.5")
        self.peer = None
        self.srv = None

    def tearDown(self):
        if self.peer:
            self.peer.stop()
        if self.srv:
            code = self.srv.stop() if self.srv.proc else 0
            self.srv.cleanup()
            self.assertEqual(code, 0)

    def start(self, extra="", **peer_args):
        if peer_args is not None:
            self.peer = Peer("127.0.0.5", self.port, **peer_args).start()
        self.srv = Server("routes = p.test=[127.0.0.5]:%d\nretry_min = 1h\nretry_max = 2h\n"
                          "connect_timeout = 2s\nrelay_command_timeout = 3s\n"
                          "relay_data_timeout = 3s\n" % self.port + extra)
        self.srv.start()

    def states(self, qid):
        q = {m["id"]: m for m in self.srv.queue_json()["messages"]}
        if qid not in q:
            return {}
        return {r["address"]: r for r in q[qid]["recipients"]}

    def test_delivery_and_exact_bytes(self):
        self.start()
        body = b"Subject: exact\r\n\r\n.dot line\r\n..two\r\n" + b"y" * 997 + b"\r\nend\r\n"
        qid = send(self.srv.port, "alice@localhost", ["a@p.test", "b@p.test"], body)
        msg = self.peer.wait_messages(1)[0]
        self.assertEqual(sorted(msg.rcpts), ["a@p.test", "b@p.test"])  # one transaction
        self.assertEqual(msg.mail_from, "alice@localhost")
        self.assertTrue(msg.data.endswith(body), msg.data[-100:])
        self.assertNotIn(b"\n", msg.raw.replace(b"\r\n", b""))
        self.srv.wait_log(qid + ": to=<a@p.test>, relay=")
        wait_for(lambda: self.states(qid) == {}, 20, "the message to leave the queue")
        self.assertIn("status=sent", self.srv.logtext())

    def test_bounce_of_8bit_mail_declares_8bitmime(self):
        """RFC 6152 3: a notice that returns an 8-bit original (RET=FULL)
        goes out with BODY=8BITMIME."""
        self.start(rcpt={"bounce": "550 5.1.1 no such user"})
        c, _ = greet(self.srv.port)
        self.assertEqual(c.cmd("MAIL FROM:<s@p.test> BODY=8BITMIME RET=FULL")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<bounce1@p.test>")[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"Subject: 8\r\n\r\ncaf\xc3\xa9\r\n.\r\n")
        self.assertEqual(c.reply()[0], 250)
        c.close()
        msg = self.peer.wait_messages(1)[0]
        self.assertEqual((msg.mail_from, msg.rcpts), ("", ["s@p.test"]))
        self.assertIn("BODY=8BITMIME", [p.upper() for p in msg.mail_params])
        self.assertIn(b"caf\xc3\xa9", msg.data)

    def test_partial_recipient_failures(self):
        self.start(rcpt={"defer": "451 4.3.0 try later", "bounce": "550 5.1.1 no such user"})
        qid = send(self.srv.port, "alice@localhost",
                   ["ok@p.test", "defer1@p.test", "bounce1@p.test"])
        msg = self.peer.wait_messages(1)[0]
        self.assertEqual(msg.rcpts, ["ok@p.test"])
        files = wait_for(lambda: self.srv.maildir_files("alice@localhost"), 20, "bounce")
        with open(files[0], "rb") as f:
            report = email.message_from_bytes(f.read()).get_payload()[1].as_string()
        self.assertIn("Final-Recipient: rfc822; bounce1@p.test", report)
        self.assertIn("550 5.1.1 no such user", report)
        self.assertNotIn("defer1", report)
        st = wait_for(lambda: self.states(qid).get("defer1@p.test", {}).get("state") ==
                      "deferred" and self.states(qid), 20, "deferral")
        self.assertEqual(st["ok@p.test"]["state"], "sent")
        self.assertEqual(st["bounce1@p.test"]["state"], "bounced")
        self.assertIn("451 4.3.0 try later", st["defer1@p.test"]["diagnostic"])

    def test_retry_then_success_after_flush(self):
        self.start(extra="", **{})
        self.peer.stop()           # nobody listens: connection refused
        self.peer = None
        qid = send(self.srv.port, "alice@localhost", ["late@p.test"])
        wait_for(lambda: self.states(qid).get("late@p.test", {}).get("state") == "deferred",
                 20, "deferral")
        self.peer = Peer("127.0.0.5", self.port).start()
        self.srv.signal(signal.SIGUSR1)
        msg = self.peer.wait_messages(1)[0]
        self.assertEqual(msg.rcpts, ["late@p.test"])
        wait_for(lambda: self.states(qid) == {}, 20, "the message to leave the queue")

    def test_drop_mid_data_defers(self):
        self.start(drop="data")
        qid = send(self.srv.port, "alice@localhost", ["x@p.test"])
        wait_for(lambda: self.states(qid).get("x@p.test", {}).get("state") == "deferred",
                 20, "deferral")

    def test_5xx_after_data_bounces(self):
        self.start(final_reply="554 5.7.1 content rejected")
        send(self.srv.port, "alice@localhost", ["x@p.test"])
        files = wait_for(lambda: self.srv.maildir_files("alice@localhost"), 20, "bounce")
        with open(files[0], "rb") as f:
            self.assertIn(b"554 5.7.1 content rejected", f.read())

    def test_tls_may_uses_starttls(self):
        d = tempfile.mkdtemp(prefix="ms-peer-")
        cert, key = make_cert(d)
        self.start(starttls=(cert, key))
        send(self.srv.port, "alice@localhost", ["t@p.test"])
        msg = self.peer.wait_messages(1)[0]
        self.assertTrue(msg.tls)

    def test_tls_encrypt_without_starttls_defers(self):
        self.start(extra="tls_outbound = encrypt\n")
        qid = send(self.srv.port, "alice@localhost", ["t@p.test"])
        wait_for(lambda: self.states(qid).get("t@p.test", {}).get("state") == "deferred",
                 20, "deferral")
        self.assertEqual(self.peer.messages, [])
        self.assertFalse(any(l.upper().startswith("MAIL") for l in self.peer.commands()))

    def test_address_literal_destination(self):
        self.start(extra="smtp_port = %d\n" % self.port)
        send(self.srv.port, "alice@localhost", ["lit@[127.0.0.5]"])
        msg = self.peer.wait_messages(1)[0]
        self.assertEqual(msg.rcpts, ["lit@[127.0.0.5]"])

    def test_destination_limit_queues_the_rest(self):
        self.start(extra="max_per_destination = 2\n")
        ids = [send(self.srv.port, "alice@localhost", ["n%d@p.test" % i]) for i in range(40)]
        msgs = self.peer.wait_messages(40, timeout=60 * SLOW)
        self.assertEqual(sorted(r for m in msgs for r in m.rcpts),
                         sorted("n%d@p.test" % i for i in range(40)))
        wait_for(lambda: not (set(ids) & {m["id"] for m in self.srv.queue_json()["messages"]}),
                 30, "the queue to empty")

    def send_notify_success(self, rcpt, smtputf8=False):
        c, _ = greet(self.srv.port)
        self.assertEqual(c.cmd("MAIL FROM:<alice@localhost>%s" %
                               (" SMTPUTF8" if smtputf8 else ""))[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<%s> NOTIFY=SUCCESS" % rcpt)[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"Subject: dsn\r\n\r\nx\r\n.\r\n")
        code, lines = c.reply()
        c.close()
        self.assertEqual(code, 250)
        return lines[0].split()[-1]

    def test_no_relayed_notice_when_next_hop_has_dsn(self):
        # RFC 3461 5.2.2: NOTIFY goes with the recipient; the next hop reports.
        self.start()
        qid = self.send_notify_success("s@p.test")
        msg = self.peer.wait_messages(1)[0]
        self.assertIn("NOTIFY=SUCCESS", msg.rcpt_params[0])
        wait_for(lambda: self.states(qid) == {}, 20, "the message to leave the queue")
        wait_for(lambda: self.srv.queue_json()["messages"] == [], 20, "no notice queued")
        self.assertEqual(self.srv.maildir_files("alice@localhost"), [])

    def test_relayed_notice_when_next_hop_lacks_dsn(self):
        self.start(ehlo=["PIPELINING", "8BITMIME"])
        self.send_notify_success("s@p.test")
        files = wait_for(lambda: self.srv.maildir_files("alice@localhost"), 20, "notice")
        with open(files[0], "rb") as f:
            self.assertIn(b"Action: relayed", f.read())

    def test_smtputf8_not_needed_goes_to_server_without_it(self):
        # RFC 6531 3.4: ASCII addresses and headers need no SMTPUTF8.
        self.start(ehlo=["PIPELINING", "8BITMIME", "DSN"])
        self.send_notify_success("u8@p.test", smtputf8=True)
        msg = self.peer.wait_messages(1)[0]
        self.assertEqual(msg.rcpts, ["u8@p.test"])
        self.assertNotIn("SMTPUTF8", msg.mail_params)

    def test_relayhost_takes_all_remote_mail(self):
        self.start(extra="relayhost = [127.0.0.5]:%d\n" % self.port)
        send(self.srv.port, "alice@localhost", ["r@anywhere.example", "s@other.example"])
        msgs = self.peer.wait_messages(2)
        self.assertEqual(sorted(r for m in msgs for r in m.rcpts),
                         ["r@anywhere.example", "s@other.example"])


if __name__ == "__main__":
    unittest.main()


class HungPeerStopTest(unittest.TestCase):
    def test_stop_does_not_wait_past_shutdown_timeout_for_a_hung_server(self):
        port = free_port("127.0.0.5")
        peer = Peer("127.0.0.5", port, hang="final").start()
        srv = Server("routes = p.test=[127.0.0.5]:%d\nrelay_data_timeout = 10m\n" % port)
        srv.write_config(open(srv.conf).read().replace("shutdown_timeout = 10s",
                                                       "shutdown_timeout = 2s"))
        try:
            srv.start()
            qid = send(srv.port, "alice@localhost", ["x@p.test"])
            wait_for(lambda: peer.unanswered, 20, "the message to reach the hung peer")
            self.assertEqual(srv.stop(timeout=30), 0)
            # the recipient is still queued, to be tried again
            q = {m["id"]: m for m in srv.queue_json()["messages"]}
            self.assertIn(qid, q)
            self.assertNotEqual(q[qid]["recipients"][0]["state"], "sent")
        finally:
            peer.stop()
            srv.cleanup()
