"""Local delivery: Maildirs, aliases, deferrals that survive a restart,
flush, deletion, bounces and reloads (issue: delivery pool and storage)."""
import email
import email.policy
import json
import os
import signal
import smtplib
import unittest

from harness import send_message as send, Client, Server, free_port, greet, wait_for

USERS = "alice@localhost:\nbob@localhost:\ncarol@localhost:\n"
ALIASES = ("team@localhost: alice@localhost, bob@localhost\n"
           "broken@localhost: ghost@localhost\n"
           "loop1@localhost: loop2@localhost\nloop2@localhost: loop1@localhost\n")


def make_server(extra="", **server_args):
    srv = Server(extra, **server_args)
    with open(os.path.join(srv.dir, "users"), "w") as f:
        f.write(USERS)
    with open(os.path.join(srv.dir, "aliases"), "w") as f:
        f.write(ALIASES)
    with open(srv.conf, "a") as f:
        f.write("users_file = %s/users\naliases_file = %s/aliases\n" % (srv.dir, srv.dir))
    return srv




def read(path):
    with open(path, "rb") as f:
        return f.read()


class DeliveryTest(unittest.TestCase):
    def setUp(self):
        self.srv = make_server("retry_min = 1h\nretry_max = 2h\n")
        self.srv.start()

    def tearDown(self):
        code = self.srv.stop() if self.srv.proc else 0
        self.srv.cleanup()
        self.assertEqual(code, 0)

    def wait_files(self, addr, n=1):
        return wait_for(lambda: len(self.srv.maildir_files(addr)) >= n and
                        self.srv.maildir_files(addr), 20, "mail for " + addr)

    def test_several_users_and_alias_byte_exact(self):
        body = (b"Subject: exact\r\nFrom: x@example.org\r\n\r\n"
                b".leading dot\r\n..two dots\r\n8-bit: \xc3\xa9\xff\r\n"
                b"tab\there \r\n" + b"L" * 998 + b"\r\nlast line\r\n")
        qid = send(self.srv.port, "x@example.org",
                   ["alice@localhost", "carol@localhost", "team@localhost"], body)
        expect = body.replace(b"\r\n", b"\n")
        for user in ("alice", "bob", "carol"):
            files = self.wait_files(user + "@localhost")
            data = read(files[0])
            self.assertTrue(data.startswith(b"Return-Path: <x@example.org>\nDelivered-To: <%s@localhost>\n"
                                            % user.encode()), data[:200])
            self.assertIn(b"Received: from client.test ([127.0.0.1])", data)
            self.assertIn(b"id " + qid.encode(), data)
            self.assertTrue(data.endswith(expect), data[-300:])
            self.assertNotIn(b"\r\n", data)
        self.srv.wait_log(qid + ": to=<alice@localhost>, relay=local")
        self.assertIn("status=sent", self.srv.logtext())
        wait_for(lambda: self.srv.queue_json()["messages"] == [], 20, "queue to empty")
        # alice is both a direct recipient and a team member: one copy per
        # mailbox (counted once every delivery is done)
        self.assertEqual(len(self.srv.maildir_files("alice@localhost")), 1)

    def test_one_copy_per_mailbox(self):
        # the same mailbox named several ways (also by our address
        # literal), directly and through two aliases: every RCPT gets 250,
        # and each mailbox one copy
        with open(os.path.join(self.srv.dir, "aliases"), "a") as f:
            f.write("staff@localhost: Bob@localhost, carol@localhost\n")
        self.srv.signal(signal.SIGHUP)
        self.srv.wait_log("reloaded")
        c, _ = greet(self.srv.port)
        self.assertEqual(c.cmd("MAIL FROM:<x@example.org>")[0], 250)
        for rcpt in ("alice@localhost", "ALICE@LOCALHOST", "Alice@localhost",
                     "team@localhost", "staff@localhost", "carol@localhost",
                     "postmaster", "Postmaster", "alice@[127.0.0.1]",
                     "Carol@[127.0.0.1]"):
            self.assertEqual(c.cmd("RCPT TO:<%s>" % rcpt)[0], 250, rcpt)
        self.assertEqual(c.cmd("DATA")[0], 354)
        code, text = c.cmd("Subject: once\r\n\r\nonce\r\n.")
        self.assertEqual(code, 250, text)
        qid = text[0].split()[-1]
        c.cmd("QUIT")
        c.close()
        self.srv.wait_log(qid + ": removed")
        for user in ("alice", "bob", "carol", "postmaster"):
            self.assertEqual(len(self.srv.maildir_files(user + "@localhost")), 1, user)
        self.assertIn(qid + ": from=<x@example.org>, size=", self.srv.logtext())
        self.assertIn("nrcpt=5 (queued)", self.srv.logtext())

    def test_large_body(self):
        body = b"Subject: big\r\n\r\n" + b"".join(b"%07d " % i + b"x" * 90 + b"\r\n"
                                                  for i in range(20000))
        send(self.srv.port, "x@example.org", ["bob@localhost"], body)
        files = self.wait_files("bob@localhost")
        self.assertTrue(read(files[0]).endswith(body.replace(b"\r\n", b"\n")))

    def test_deferral_survives_restart_then_flush(self):
        # a symlink loop where the Maildir should be: a temporary failure
        mbox = os.path.join(self.srv.dir, "mail", "localhost", "carol")
        os.makedirs(os.path.dirname(mbox), exist_ok=True)
        os.symlink(mbox, mbox)
        qid = send(self.srv.port, "x@example.org", ["carol@localhost"], b"Subject: d\r\n\r\nx\r\n")
        self.srv.wait_log(qid + ": to=<carol@localhost>")
        self.assertIn("status=deferred", self.srv.logtext())
        self.assertEqual(self.srv.stop(), 0)
        self.srv.start()
        q = self.srv.queue_json()["messages"]
        self.assertEqual([m["id"] for m in q], [qid])
        self.assertEqual(q[0]["recipients"][0]["state"], "deferred")
        self.assertGreaterEqual(q[0]["recipients"][0]["attempts"], 1)
        os.unlink(mbox)
        self.srv.signal(signal.SIGUSR1)
        self.wait_files("carol@localhost")
        wait_for(lambda: self.srv.queue_json()["messages"] == [], 20, "queue to empty")

    def test_mailctl_flush_and_delete(self):
        mbox = os.path.join(self.srv.dir, "mail", "localhost", "bob")
        os.makedirs(os.path.dirname(mbox), exist_ok=True)
        os.symlink(mbox, mbox)
        keep = send(self.srv.port, "x@example.org", ["bob@localhost"], b"Subject: keep\r\n\r\nk\r\n")
        drop = send(self.srv.port, "x@example.org", ["bob@localhost"], b"Subject: drop\r\n\r\nd\r\n")
        wait_for(lambda: self.srv.logtext().count("status=deferred") >= 2, 20, "two deferrals")
        self.srv.mailctl("delete", drop)
        self.assertEqual([m["id"] for m in self.srv.queue_json()["messages"]], [keep])
        os.unlink(mbox)
        self.srv.mailctl("flush")
        files = self.wait_files("bob@localhost")
        wait_for(lambda: self.srv.queue_json()["messages"] == [], 20, "queue to empty")
        self.assertEqual(len(self.srv.maildir_files("bob@localhost")), 1)
        self.assertIn(b"Subject: keep", read(files[0]))
        stats = json.loads(self.srv.mailctl("--json", "stats").stdout)
        self.assertGreaterEqual(stats["delivered"], 1)
        self.assertGreaterEqual(stats["deferred"], 2)

    def test_bounce_to_sender_is_multipart_report(self):
        qid = send(self.srv.port, "alice@localhost", ["broken@localhost"],
                   b"Subject: to nobody\r\nMessage-ID: <orig@example.org>\r\n\r\nlost\r\n")
        files = self.wait_files("alice@localhost")
        msg = email.message_from_bytes(read(files[0]), policy=email.policy.default)
        self.assertEqual(msg["Return-Path"], "<>")
        self.assertTrue(msg["From"].startswith("MAILER-DAEMON@"))
        self.assertEqual(msg.get_content_type(), "multipart/report")
        parts = list(msg.iter_parts())
        self.assertEqual(parts[1].get_content_type(), "message/delivery-status")
        report = parts[1].as_string()
        # the alias's target failed: it is named, and the alias with it
        self.assertIn("Final-Recipient: rfc822; ghost@localhost", report)
        self.assertIn("Original-Recipient: rfc822;broken@localhost", report)
        self.assertIn("Action: failed", report)
        self.assertIn("Status: 5.1.1", report)
        self.assertIn("X-Mailserver-Queue-ID: " + qid, report)
        self.assertIn("Message-ID: <orig@example.org>", parts[2].as_string())
        self.srv.wait_log("status=bounced")

    def test_alias_loop_bounces(self):
        send(self.srv.port, "alice@localhost", ["loop1@localhost"], b"Subject: loop\r\n\r\nx\r\n")
        files = self.wait_files("alice@localhost")
        self.assertIn(b"Status: 5.4.6", read(files[0]))

    def test_notify_never_and_success(self):
        c, _ = greet(self.srv.port)
        c.cmd("MAIL FROM:<alice@localhost> ENVID=E1")
        c.cmd("RCPT TO:<broken@localhost> NOTIFY=NEVER")
        c.cmd("RCPT TO:<bob@localhost> NOTIFY=SUCCESS")
        c.cmd("DATA")
        c.send(b"Subject: notify\r\n\r\nx\r\n.\r\n")
        self.assertEqual(c.reply()[0], 250)
        c.close()
        self.wait_files("bob@localhost")
        files = self.wait_files("alice@localhost")
        wait_for(lambda: self.srv.queue_json()["messages"] == [], 20, "queue to empty")
        self.assertEqual(len(self.srv.maildir_files("alice@localhost")), 1)  # no bounce
        data = read(files[0])
        self.assertIn(b"Action: delivered", data)
        self.assertIn(b"Original-Envelope-Id: E1", data)

    def notify_send(self, rcpts):
        c, _ = greet(self.srv.port)
        self.assertEqual(c.cmd("MAIL FROM:<carol@localhost>")[0], 250)
        for rcpt, notify in rcpts:
            self.assertEqual(c.cmd("RCPT TO:<%s> NOTIFY=%s" % (rcpt, notify))[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        code, text = c.cmd("Subject: expand\r\n\r\nx\r\n.")
        self.assertEqual(code, 250, text)
        c.close()
        return text[0].split()[-1]

    def test_alias_of_several_targets_reports_expanded(self):
        # RFC 3461 5.2.7.3: NOTIFY=SUCCESS to an alias of several targets
        # gets one "expanded" notice; the targets report no success of
        # their own, but failures still when FAILURE was asked for.
        with open(os.path.join(self.srv.dir, "aliases"), "a") as f:
            f.write("crew@localhost: ghost@localhost, alice@localhost\n")
        self.srv.signal(signal.SIGHUP)
        self.srv.wait_log("reloaded")
        qid = self.notify_send([("team@localhost", "SUCCESS")])
        self.srv.wait_log(qid + ": removed")
        wait_for(lambda: self.srv.queue_json()["messages"] == [], 20, "queue to empty")
        files = self.srv.maildir_files("carol@localhost")
        self.assertEqual(len(files), 1, files)
        data = read(files[0])
        self.assertIn(b"Action: expanded", data)
        self.assertIn(b"Final-Recipient: rfc822; team@localhost", data)
        self.assertNotIn(b"Action: delivered", data)
        for user in ("alice", "bob"):
            self.assertEqual(len(self.srv.maildir_files(user + "@localhost")), 1, user)
        qid = self.notify_send([("crew@localhost", "SUCCESS,FAILURE")])
        self.srv.wait_log(qid + ": removed")
        wait_for(lambda: self.srv.queue_json()["messages"] == [], 20, "queue to empty")
        reports = sorted(read(f) for f in self.srv.maildir_files("carol@localhost")
                         if f not in files)
        self.assertEqual(len(reports), 2, reports)
        expanded = [r for r in reports if b"Action: expanded" in r]
        failed = [r for r in reports if b"Action: failed" in r]
        self.assertEqual(len(expanded), 1)
        self.assertIn(b"Final-Recipient: rfc822; crew@localhost", expanded[0])
        self.assertEqual(len(failed), 1)
        self.assertIn(b"Final-Recipient: rfc822; ghost@localhost", failed[0])
        self.assertIn(b"Original-Recipient: rfc822;crew@localhost", failed[0])
        self.assertFalse(any(b"Action: delivered" in r for r in reports))

    def test_null_sender_failure_goes_to_postmaster_once(self):
        send(self.srv.port, "", ["broken@localhost"], b"Subject: from <>\r\n\r\nx\r\n")
        files = self.wait_files("postmaster@localhost")
        wait_for(lambda: self.srv.queue_json()["messages"] == [], 20, "queue to empty")
        self.assertEqual(len(self.srv.maildir_files("postmaster@localhost")), 1)
        self.assertIn(b"broken@localhost", read(files[0]))

    def test_reload_users_and_aliases(self):
        c, _ = greet(self.srv.port)
        c.cmd("MAIL FROM:<x@example.org>")
        self.assertEqual(c.cmd("RCPT TO:<dave@localhost>")[0], 550)
        c.close()
        with open(os.path.join(self.srv.dir, "users"), "a") as f:
            f.write("dave@localhost:\n")
        with open(os.path.join(self.srv.dir, "aliases"), "a") as f:
            f.write("d@localhost: dave@localhost\n")
        self.srv.signal(signal.SIGHUP)
        self.srv.wait_log("reloaded")
        send(self.srv.port, "x@example.org", ["d@localhost"], b"Subject: new\r\n\r\nx\r\n")
        self.wait_files("dave@localhost")


class UnwritableMailboxTest(unittest.TestCase):
    """A Maildir that cannot be written is deferred until it can (README:
    retried until queue_lifetime), never bounced at once."""

    def deferred_then_delivered(self, srv, addr, mend):
        qid = send(srv.port, "x@example.org", [addr], b"Subject: w\r\n\r\nx\r\n")
        srv.wait_log(qid + ": to=<%s>" % addr)
        q = {m["id"]: m for m in srv.queue_json()["messages"]}
        self.assertEqual(q[qid]["recipients"][0]["state"], "deferred")
        self.assertEqual(srv.maildir_files("x@example.org"), [])     # no bounce
        mend()
        srv.signal(signal.SIGUSR1)
        wait_for(lambda: srv.maildir_files(addr), 20, "mail for " + addr)
        wait_for(lambda: srv.queue_json()["messages"] == [], 20, "queue to empty")

    def test_file_where_the_maildir_belongs(self):
        srv = make_server("retry_min = 1h\nretry_max = 2h\n")
        try:
            srv.start()
            mbox = os.path.join(srv.dir, "mail", "localhost", "carol")
            os.makedirs(os.path.dirname(mbox), exist_ok=True)
            with open(mbox, "w") as f:
                f.write("not a directory\n")
            self.deferred_then_delivered(srv, "carol@localhost", lambda: os.unlink(mbox))
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()

    @unittest.skipUnless(os.geteuid() == 0, "needs root to run the server as nobody")
    def test_permission_denied(self):
        import pwd
        nobody = pwd.getpwnam("nobody")
        srv = make_server("retry_min = 1h\nretry_max = 2h\nuser = nobody\n")
        try:
            os.chmod(srv.dir, 0o755)
            for d in ("queue", "mail", "mail/localhost"):
                os.makedirs(os.path.join(srv.dir, d), exist_ok=True)
                os.chown(os.path.join(srv.dir, d), nobody.pw_uid, nobody.pw_gid)
            mbox = os.path.join(srv.dir, "mail", "localhost", "bob")
            os.makedirs(mbox, mode=0o700)           # root's: nobody may not write
            srv.start()
            self.deferred_then_delivered(
                srv, "bob@localhost", lambda: os.chown(mbox, nobody.pw_uid, nobody.pw_gid))
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


class GracefulStopTest(unittest.TestCase):
    def test_stop_with_deliveries_in_flight(self):
        srv = make_server("delivery_threads = 4\n")
        try:
            srv.start()
            ids = [send(srv.port, "x@example.org", ["alice@localhost"],
                        b"Subject: n%d\r\n\r\nx\r\n" % i) for i in range(60)]
            self.assertEqual(srv.stop(), 0)
            # Read while stopped, when nothing moves: nothing lost, every
            # message is delivered or still queued. Deliveries in flight
            # finished and recorded their results, so none is both, unless
            # the stop had to cut hung ones off (then at least once).
            cut = "still running after" in srv.logtext()
            queued = {m["id"] for m in srv.queue_json()["messages"]}
            delivered = srv.delivered_ids()
            self.assertEqual(set(ids) - queued - delivered, set())
            if not cut:
                self.assertEqual(queued & delivered, set())
            srv.start()
            wait_for(lambda: srv.queue_json()["messages"] == [], 30,
                     "every message delivered after the restart")
            self.assertEqual(srv.stop(), 0)
            counts = srv.delivered_counts()
            self.assertEqual(set(ids) - set(counts), set())
            if not cut:
                self.assertEqual({q: n for q, n in counts.items() if n != 1}, {})
        finally:
            srv.cleanup()


if __name__ == "__main__":
    unittest.main()


class ExpiryTest(unittest.TestCase):
    """A recipient that keeps failing gets one delay notice, then bounces
    when queue_lifetime has passed."""

    def test_delay_notice_then_expiry_bounce(self):
        srv = make_server("retry_min = 1s\nretry_max = 1s\ndelay_warning = 1s\n"
                          "queue_lifetime = 8s\n")
        try:
            mbox = os.path.join(srv.dir, "mail", "localhost", "carol")
            os.makedirs(os.path.dirname(mbox), exist_ok=True)
            os.symlink(mbox, mbox)
            srv.start()
            qid = send(srv.port, "alice@localhost", ["carol@localhost"],
                       b"Subject: slow\r\n\r\nx\r\n")
            files = wait_for(lambda: len(srv.maildir_files("alice@localhost")) >= 2 and
                             srv.maildir_files("alice@localhost"), 30, "delay notice and bounce")
            texts = [read(f) for f in files]
            delayed = [t for t in texts if b"Action: delayed" in t]
            failed = [t for t in texts if b"Action: failed" in t]
            self.assertEqual(len(delayed), 1)
            self.assertEqual(len(failed), 1)
            self.assertIn(b"Status: 4.", failed[0])
            self.assertIn(b"expired", failed[0])
            wait_for(lambda: qid not in {m["id"] for m in srv.queue_json()["messages"]}, 10,
                     "the message to leave the queue")
            self.assertEqual(len(srv.maildir_files("alice@localhost")), 2)
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


def ipv6_loopback():
    """Can a socket be bound to ::1 here?"""
    import socket
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class AddressLiteralTest(unittest.TestCase):
    """user@[an address we listen on] is local (RFC 5321 4.1.3, as
    Postfix's inet_interfaces): the mailbox of user at the first local
    domain (hostname mx.test is not one here, so localhost), whoever
    sends; the address as written stays the recipient (log, DSN). A
    literal of another address stays remote."""

    def setUp(self):
        self.v6 = ipv6_loopback()
        port = free_port()
        listen = "127.0.0.1:%d" % port
        if self.v6:
            listen += ";[::1]:%d" % free_port("::1")
        # a stranger: 127.0.0.1 is not in relay_networks
        self.srv = make_server("relay_networks = 192.0.2.0/24\nauth_checks = no\n"
                               "retry_min = 1h\nretry_max = 2h\n", port=port, listen=listen)
        self.srv.start()

    def tearDown(self):
        code = self.srv.stop() if self.srv.proc else 0
        self.srv.cleanup()
        self.assertEqual(code, 0)

    def wait_files(self, addr):
        return wait_for(lambda: self.srv.maildir_files(addr), 20, "mail for " + addr)

    def transaction(self, rcpts, sender="x@example.org"):
        """RCPT replies by recipient, then the message (queue id)."""
        c, _ = greet(self.srv.port)
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % sender)[0], 250)
        codes = {}
        for r in rcpts:
            code, lines = c.cmd("RCPT TO:<%s>" % r)
            codes[r] = "%d %s" % (code, lines[0])
        qid = None
        if any(v.startswith("250") for v in codes.values()):
            self.assertEqual(c.cmd("DATA")[0], 354)
            code, lines = c.cmd("Subject: literal\r\n\r\nto a literal\r\n.")
            self.assertEqual(code, 250, lines)
            qid = lines[0].split()[-1]
        c.cmd("QUIT")
        c.close()
        return codes, qid

    def test_own_literal_from_a_stranger_is_local(self):
        codes, qid = self.transaction(["alice@[127.0.0.1]", "postmaster@[127.0.0.1]",
                                       "ghost@[127.0.0.1]", "bob@[127.0.0.2]"])
        self.assertTrue(codes["alice@[127.0.0.1]"].startswith("250"), codes)
        self.assertTrue(codes["postmaster@[127.0.0.1]"].startswith("250"), codes)
        self.assertTrue(codes["ghost@[127.0.0.1]"].startswith("550 5.1.1"), codes)
        # someone else's address: relaying, refused as before
        self.assertTrue(codes["bob@[127.0.0.2]"].startswith("554 5.7.1"), codes)
        for user in ("alice", "postmaster"):
            data = read(self.wait_files(user + "@localhost")[0])
            self.assertTrue(data.startswith(b"Return-Path: <x@example.org>\n"
                                            b"Delivered-To: <%s@localhost>\n" % user.encode()),
                            data[:200])
            self.assertIn(b"id " + qid.encode(), data)
            self.assertTrue(data.endswith(b"\n\nto a literal\n"), data[-100:])
        self.srv.wait_log(qid + ": to=<alice@[127.0.0.1]>, relay=local")
        wait_for(lambda: self.srv.queue_json()["messages"] == [], 20, "queue to empty")
        self.assertNotIn("127.0.0.1]:25", self.srv.logtext())

    def test_ipv6_literal(self):
        if not self.v6:
            self.skipTest("no IPv6 loopback")
        codes, qid = self.transaction(["alice@[IPv6:::1]", "postmaster@[ipv6:0:0::1]",
                                       "bob@[IPv6:::2]"])
        self.assertTrue(codes["alice@[IPv6:::1]"].startswith("250"), codes)
        self.assertTrue(codes["postmaster@[ipv6:0:0::1]"].startswith("250"), codes)
        self.assertTrue(codes["bob@[IPv6:::2]"].startswith("554 5.7.1"), codes)
        self.assertIn(b"Delivered-To: <alice@localhost>", read(self.wait_files("alice@localhost")[0]))
        self.wait_files("postmaster@localhost")
        wait_for(lambda: self.srv.queue_json()["messages"] == [], 20, "queue to empty")

    def test_success_notice_names_the_literal(self):
        c, _ = greet(self.srv.port)
        self.assertEqual(c.cmd("MAIL FROM:<alice@localhost>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<bob@[127.0.0.1]> NOTIFY=SUCCESS "
                               "ORCPT=rfc822;bob@[127.0.0.1]")[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        self.assertEqual(c.cmd("Subject: dsn\r\n\r\nx\r\n.")[0], 250)
        c.close()
        self.wait_files("bob@localhost")
        report = read(self.wait_files("alice@localhost")[0])
        self.assertIn(b"Action: delivered", report)
        self.assertIn(b"Final-Recipient: rfc822; bob@[127.0.0.1]", report)
        self.assertIn(b"Original-Recipient: rfc822;bob@[127.0.0.1]", report)


class LiteralDeliveryTest(unittest.TestCase):
    """The delivery side: a recipient queued as user@[our address] is
    delivered here, and one that would only reach our own listener
    bounces as a mail loop; neither is ever sent to ourselves."""

    def test_queued_literal_is_delivered_here(self):
        # queued while 127.0.0.9 is not ours (deferred: nobody listens
        # there), then a reload adds a listener on it
        port = free_port()
        srv = make_server("retry_min = 1h\nretry_max = 2h\nconnect_timeout = 2s\n", port=port)
        try:
            srv.start()
            qid = send(srv.port, "alice@localhost", ["bob@[127.0.0.9]", "ghost@[127.0.0.9]"],
                       b"Subject: queued\r\n\r\nx\r\n")
            srv.wait_log(qid + ": to=<ghost@[127.0.0.9]>")
            self.assertIn("status=deferred", srv.logtext())
            with open(srv.conf, "a") as f:
                f.write("listen = 127.0.0.9:%d\n" % free_port("127.0.0.9"))
            srv.signal(signal.SIGHUP)
            srv.wait_log("reloaded")
            srv.signal(signal.SIGUSR1)
            data = read(wait_for(lambda: srv.maildir_files("bob@localhost"), 20, "mail for bob")[0])
            self.assertIn(b"Delivered-To: <bob@localhost>", data)
            srv.wait_log(qid + ": to=<bob@[127.0.0.9]>, relay=local")
            # the failure names the recipient as it was written
            report = read(wait_for(lambda: srv.maildir_files("alice@localhost"), 20,
                                   "the bounce")[0])
            self.assertIn(b"Final-Recipient: rfc822; ghost@[127.0.0.9]", report)
            self.assertIn(b"Status: 5.1.1", report)
            wait_for(lambda: srv.queue_json()["messages"] == [], 20, "queue to empty")
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()

    def test_wildcard_listener(self):
        # every interface address is ours (getifaddrs); another address
        # that still reaches us (127.0.0.2 on lo) bounces as a loop
        port = free_port()
        srv = make_server("smtp_port = %d\nretry_min = 1h\nretry_max = 2h\n" % port,
                          port=port, listen="*:%d" % port)
        try:
            srv.start()
            send(srv.port, "alice@localhost", ["bob@[127.0.0.1]"], b"Subject: w\r\n\r\nx\r\n")
            self.assertIn(b"Delivered-To: <bob@localhost>",
                          read(wait_for(lambda: srv.maildir_files("bob@localhost"), 20,
                                        "mail for bob")[0]))
            send(srv.port, "alice@localhost", ["carol@[127.0.0.2]"], b"Subject: l\r\n\r\nx\r\n")
            report = read(wait_for(lambda: srv.maildir_files("alice@localhost"), 20,
                                   "the bounce")[0])
            self.assertIn(b"Status: 5.4.6", report)
            self.assertIn(b"loops back to myself", report)
            wait_for(lambda: srv.queue_json()["messages"] == [], 20, "queue to empty")
            stats = json.loads(srv.mailctl("--json", "stats").stdout)
            self.assertEqual(stats["received"], 3)      # two messages, one bounce
            self.assertEqual(srv.maildir_files("carol@localhost"), [])
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()
