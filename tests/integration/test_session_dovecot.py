"""AUTH checked by a real Dovecot through the daemon (auth_service =
dovecot:unix:...): users defined only in Dovecot's passwd-file submit on
a submission listener over STARTTLS with PLAIN, LOGIN and CRAM-MD5 (the
exchange is Dovecot's, passed through); a wrong password gets 535 and
counts toward the throttle; what a Dovecot user may use as its sender;
Dovecot down or hung gets 454 4.7.0; a stopped Dovecot holds up only the
session that logs in, never the others on the same worker.
"""
import base64
import hmac
import os
import select
import signal
import socket
import time
import unittest

import dovecot_conf
from harness import Client, Server, SLOW, dot_stuff, free_port, test_cert, wait_for
from test_sasl_dovecot import AuthDovecot, auth_children
from test_dovecot import crypt_hash

DAVE_PASSWORD = "dave pass 9"


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def plain(user, password):
    return b64("\0%s\0%s" % (user, password))


def ehlo(c, name="client.test"):
    code, lines = c.cmd("EHLO " + name)
    assert code == 250, (code, lines)
    return lines


def auth_line(lines):
    return next((l for l in lines if l.startswith("AUTH ")), None)


def submission(port, src="127.0.0.1"):
    """A submission session inside TLS, after the second EHLO. Failing
    tests log in from a source address of their own: the failed-login
    throttle counts per client address."""
    c = Client(port, source=src)
    assert c.reply()[0] == 220
    lines = ehlo(c)
    assert "STARTTLS" in lines and auth_line(lines) is None, lines
    assert c.cmd("STARTTLS")[0] == 220
    c.starttls()
    return c, ehlo(c)


@unittest.skipUnless(dovecot_conf.available(), "dovecot is not installed")
class SessionDovecotTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        users = {"carol@example.org": "{PLAIN}carol's secret",
                 "dave@example.org": "{CRYPT}" + crypt_hash(DAVE_PASSWORD),
                 "erin": "{PLAIN}erin pw"}
        cls.dmail = os.path.join("/tmp", "ms-sdove-mail-%d" % os.getpid())
        os.makedirs(cls.dmail, exist_ok=True)
        cls.dovecot = AuthDovecot(cls.dmail, users)
        with open(cls.dovecot.conf) as f:
            text = f.read()
        with open(cls.dovecot.conf, "w") as f:
            f.write(text.replace("auth_mechanisms = plain login",
                                 "auth_mechanisms = plain login cram-md5"))
        cls.dovecot.start()
        wait_for(lambda: os.path.exists(cls.dovecot.auth_path), 20, "auth socket")
        cert, key = test_cert()
        cls.sub = free_port()
        cls.smtp = free_port()
        aliases = os.path.join("/tmp", "ms-sdove-aliases-%d" % os.getpid())
        with open(aliases, "w") as f:
            f.write("team@example.org: carol@example.org, bob@example.net\n")
        cls.aliases = aliases
        cls.server = Server(
            "local_domains = example.org\n"
            "tls_cert_file = %s\ntls_key_file = %s\n" % (cert, key) +
            "auth_service = dovecot:unix:%s\n" % cls.dovecot.auth_path +
            "aliases_file = %s\n" % aliases +
            "auth_fail_delay = 0\nauth_fail_limit = 3\n"
            "session_workers = 1\n",
            listen="127.0.0.1:%d submission;127.0.0.1:%d" % (cls.sub, cls.smtp),
            port=cls.sub).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()
        cls.dovecot.cleanup()
        os.unlink(cls.aliases)
        os.rmdir(cls.dmail)

    def login(self, c, user, password):
        return c.cmd("AUTH PLAIN " + plain(user, password))

    def test_dovecot_user_submits_over_starttls(self):
        c, lines = submission(self.sub)
        self.assertIsNotNone(auth_line(lines), lines)
        code, text = c.cmd("MAIL FROM:<carol@example.org>")
        self.assertEqual(code, 530, text)
        self.assertEqual(self.login(c, "carol@example.org", "carol's secret")[0], 235)
        self.assertEqual(c.cmd("MAIL FROM:<carol@example.org>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<frank@example.org>")[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(dot_stuff(b"Subject: from dovecot user\r\n\r\nhello\r\n") + b".\r\n")
        code, text = c.reply()
        self.assertEqual(code, 250, text)
        c.cmd("QUIT")
        c.close()
        self.server.wait_log("auth: client=[127.0.0.1] sasl_method=PLAIN "
                             "sasl_username=carol@example.org")
        files = wait_for(lambda: self.server.maildir_files("frank@example.org"), 20,
                         "delivery")
        with open(files[0], "rb") as f:
            msg = f.read()
        self.assertIn(b"with ESMTPSA id", msg)
        self.assertIn(b"Subject: from dovecot user", msg)

    def test_login_and_cram_md5_pass_through(self):
        # EHLO shows Dovecot's list (CRAM-MD5 is not one of ours): the
        # first EHLO had it fetched in the background.
        def dovecot_list():
            c, lines = submission(self.sub)
            c.close()
            return "CRAM-MD5" in auth_line(lines).split()
        wait_for(dovecot_list, 10, "EHLO to show Dovecot's mechanisms")
        c, _ = submission(self.sub)
        code, text = c.cmd("AUTH LOGIN")
        self.assertEqual((code, base64.b64decode(text[0])), (334, b"Username:"))
        code, text = c.cmd(b64("dave@example.org"))
        self.assertEqual((code, base64.b64decode(text[0])), (334, b"Password:"))
        self.assertEqual(c.cmd(b64(DAVE_PASSWORD))[0], 235)
        c.close()
        c, _ = submission(self.sub)
        code, text = c.cmd("AUTH CRAM-MD5")
        self.assertEqual(code, 334)
        challenge = base64.b64decode(text[0])
        digest = hmac.new(b"carol's secret", challenge, "md5").hexdigest()
        self.assertEqual(c.cmd(b64("carol@example.org " + digest))[0], 235)
        c.close()
        self.server.wait_log("sasl_method=CRAM-MD5 sasl_username=carol@example.org")
        # A mechanism Dovecot does not offer is unknown, not a failure.
        c, _ = submission(self.sub)
        self.assertEqual(c.cmd("AUTH DIGEST-MD5")[0], 504)
        # "*" cancels an exchange in the middle; the next one works.
        self.assertEqual(c.cmd("AUTH LOGIN")[0], 334)
        self.assertEqual(c.cmd("*")[0], 501)
        self.assertEqual(self.login(c, "erin", "erin pw")[0], 235)
        c.close()

    def test_wrong_password_gets_535_and_is_throttled(self):
        c, _ = submission(self.sub, src="127.0.0.2")
        code, text = self.login(c, "carol@example.org", "not it")
        self.assertEqual(code, 535, text)
        self.assertTrue(text[0].startswith("5.7.8"), text)
        self.server.wait_log("auth failed: client=[127.0.0.2] sasl_method=PLAIN "
                             "sasl_username=carol@example.org failures=1")
        self.assertEqual(self.login(c, "nobody@example.org", "x")[0], 535)
        # The third failure from this address blocks it (auth_fail_limit).
        self.assertEqual(self.login(c, "carol@example.org", "again not")[0], 421)
        self.assertTrue(c.closed())
        c, _ = submission(self.sub, src="127.0.0.2")
        self.assertEqual(self.login(c, "carol@example.org", "carol's secret")[0], 421)
        c.close()

    def test_sender_ownership_of_dovecot_users(self):
        c, _ = submission(self.sub)
        self.assertEqual(self.login(c, "carol@example.org", "carol's secret")[0], 235)
        for sender, code in (("carol@example.org", 250), ("Carol@Example.ORG", 250),
                             ("team@example.org", 250), ("dave@example.org", 553),
                             ("", 250), ("carol@example.net", 553)):
            got, text = c.cmd("MAIL FROM:<%s>" % sender)
            self.assertEqual(got, code, (sender, text))
            if got == 553:
                self.assertTrue(text[0].startswith("5.7.1"), text)
            c.cmd("RSET")
        c.close()
        # A login without a domain owns that name at the local domains.
        c, _ = submission(self.sub)
        self.assertEqual(self.login(c, "erin", "erin pw")[0], 235)
        self.assertEqual(c.cmd("MAIL FROM:<erin@example.org>")[0], 250)
        c.cmd("RSET")
        self.assertEqual(c.cmd("MAIL FROM:<erin@example.net>")[0], 553)
        c.close()

    def test_stopped_dovecot_holds_up_only_the_login(self):
        # session_workers = 1: every session runs on the same event loop.
        c, _ = submission(self.sub)
        pids = auth_children(self.dovecot.proc.pid)
        self.assertTrue(pids)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            c.send("AUTH PLAIN %s\r\n" % plain("carol@example.org", "carol's secret"))
            # Another session on the same worker goes through meanwhile.
            t0 = time.monotonic()
            other = Client(self.smtp)
            self.assertEqual(other.reply()[0], 220)
            ehlo(other)
            self.assertEqual(other.cmd("MAIL FROM:<x@example.net>")[0], 250)
            self.assertEqual(other.cmd("RCPT TO:<grace@example.org>")[0], 250)
            self.assertEqual(other.cmd("DATA")[0], 354)
            other.send(b"Subject: meanwhile\r\n\r\nhi\r\n.\r\n")
            self.assertEqual(other.reply()[0], 250)
            other.close()
            self.assertLess(time.monotonic() - t0, 5 * SLOW)
            # The login is still waiting for Dovecot.
            self.assertEqual(select.select([c.sock], [], [], 0)[0], [])
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        self.assertEqual(c.reply()[0], 235)
        c.close()


@unittest.skipUnless(dovecot_conf.available(), "dovecot is not installed")
class SessionDovecotDownTest(unittest.TestCase):
    """No Dovecot at the socket, and one that accepts and never answers."""

    @classmethod
    def setUpClass(cls):
        cert, key = test_cert()
        cls.dir = os.path.join("/tmp", "ms-sdove-down-%d" % os.getpid())
        os.makedirs(cls.dir, exist_ok=True)
        cls.hang_path = os.path.join(cls.dir, "hang.sock")
        cls.hang = socket.socket(socket.AF_UNIX)
        cls.hang.bind(cls.hang_path)
        cls.hang.listen(8)
        p1, p2 = free_port(), free_port()
        cls.down = Server("tls_cert_file = %s\ntls_key_file = %s\n" % (cert, key) +
                          "auth_service = dovecot:unix:%s/none.sock\n" % cls.dir,
                          listen="127.0.0.1:%d submission" % p1, port=p1).start()
        cls.hung = Server("tls_cert_file = %s\ntls_key_file = %s\n" % (cert, key) +
                          "auth_service = dovecot:unix:%s\n" % cls.hang_path +
                          "auth_service_timeout = 1s\n",
                          listen="127.0.0.1:%d submission" % p2, port=p2).start()

    @classmethod
    def tearDownClass(cls):
        cls.down.cleanup()
        cls.hung.cleanup()
        cls.hang.close()
        os.unlink(cls.hang_path)
        os.rmdir(cls.dir)

    def test_dovecot_down_gets_454(self):
        c, lines = submission(self.down.port)
        # Never connected: the mechanisms we can pass through.
        self.assertEqual(auth_line(lines), "AUTH PLAIN LOGIN")
        code, text = c.cmd("AUTH PLAIN " + plain("carol@example.org", "x"))
        self.assertEqual(code, 454, text)
        self.assertTrue(text[0].startswith("4.7.0"), text)
        self.assertEqual(c.cmd("MAIL FROM:<carol@example.org>")[0], 530)
        c.close()
        self.down.wait_log("dovecot auth unix:")

    def test_hung_dovecot_times_out_with_454(self):
        c, _ = submission(self.hung.port)
        t0 = time.monotonic()
        code, text = c.cmd("AUTH PLAIN " + plain("carol@example.org", "x"))
        self.assertEqual(code, 454, text)
        self.assertLess(time.monotonic() - t0, 10 * SLOW)
        c.close()
        self.hung.wait_log("timed out")


if __name__ == "__main__":
    unittest.main()
