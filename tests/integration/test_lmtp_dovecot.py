"""LMTP delivery (relay/lmtp.c) to a real Dovecot (dovecot-lmtpd, with
dovecot-sieve and the quota plugin), read back over IMAP with imaplib.

One private Dovecot for the module (dovecot_conf.py, with an LMTP Unix
socket and a loopback LMTP port added) and one mailserver whose
local_domains (example.org) go over LMTP to the socket, with routes over
LMTP too: route.test to the TCP port, down.test to a socket path that
does not exist until a test links it to Dovecot's (the server "comes
back"). Users live only in Dovecot's passwd-file; mailserver has no
users_file.
"""
import imaplib
import os
import re
import smtplib
import unittest

import dovecot_conf
from dovecot_conf import Dovecot, prepare_mail_tree
from harness import Server, free_port, wait_for, SLOW

PASSWORD = "lmtp secret"
USERS = ["alice@example.org", "bob@example.org", "carol@example.org",
         "sieve@example.org", "full@example.org", "tempfull@example.org",
         "ann@route.test", "dave@down.test"]
# Over quota: full gets 552 (a bounce), tempfull 452 (deferred) from
# Dovecot after the data (quota_full_tempfail per user).
QUOTA_USERS = {"full@example.org": "quota_rule=*:storage=1K",
               "tempfull@example.org": "quota_rule=*:storage=1K quota_full_tempfail=yes"}
SIEVE = b'require ["fileinto", "mailbox"];\r\nfileinto :create "Folder";\r\n'
PAD = b"".join(b"padding line %04d to be larger than one kilobyte\r\n" % i
               for i in range(60))


def message(subject, to, extra=b""):
    return (b"From: Carol <carol@example.org>\r\n"
            b"To: " + to.encode() + b"\r\n"
            b"Subject: " + subject.encode() + b"\r\n"
            b"Message-ID: <" + subject.replace(" ", "-").encode() + b"@example.org>\r\n"
            b"\r\n"
            b"Hello over LMTP.\r\n"
            b".a line with a leading dot\r\n" + extra)


class LmtpDovecot(Dovecot):
    """dovecot_conf.Dovecot serving LMTP too, with Sieve and quota, and a
    userdb file that gives some users their own settings."""

    def __init__(self, mail_dir, users):
        super().__init__(mail_dir, users)
        self.lmtp_port = free_port()
        self.lmtp_path = os.path.join(self.dir, "run", "lmtp-mailserver")
        self.sieve_dir = os.path.join(self.dir, "sieve")
        os.makedirs(self.sieve_dir)
        os.chmod(self.sieve_dir, 0o777)
        userdb = os.path.join(self.dir, "userdb")
        with open(userdb, "w") as f:
            for addr, fields in QUOTA_USERS.items():
                f.write("%s::::::%s\n" % (addr, fields))
        os.chmod(userdb, 0o644)
        with open(self.conf) as f:
            text = f.read()
        text = text.replace("protocols = imap\n", "protocols = imap lmtp\n")
        # Users with settings of their own first; the others from the
        # static userdb (the passdb says who exists).
        text = text.replace("userdb {\n", """userdb {{
  driver = passwd-file
  args = username_format=%u {userdb}
  default_fields = home={mail}/%d/%n
}}
userdb {{
""".format(userdb=userdb, mail=os.path.abspath(mail_dir)), 1)
        text += """
mail_plugins = $mail_plugins quota
postmaster_address = postmaster@example.org
lmtp_save_to_detail_mailbox = no
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
}}
plugin {{
  quota = maildir:User quota
  sieve = file:{sieve}/%u;active={sieve}/%u/active.sieve
}}
service lmtp {{
  unix_listener lmtp-mailserver {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
""".format(port=self.lmtp_port, sieve=self.sieve_dir)
        with open(self.conf, "w") as f:
            f.write(text)

    def add_sieve(self, user, script):
        d = os.path.join(self.sieve_dir, user)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "active.sieve"), "wb") as f:
            f.write(script)
        prepare_mail_tree(d)


@unittest.skipUnless(dovecot_conf.available(), "dovecot is not installed")
class LmtpDovecotTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server()
        cls.dovecot = None
        try:
            # Dovecot reads and writes the mail as the mail user.
            os.chmod(cls.srv.dir, 0o711)
            cls.mail = os.path.join(cls.srv.dir, "dovecot-mail")
            os.makedirs(cls.mail)
            prepare_mail_tree(cls.mail)
            cls.dovecot = LmtpDovecot(cls.mail, {u: "{PLAIN}" + PASSWORD for u in USERS})
            cls.dovecot.add_sieve("sieve@example.org", SIEVE)
            cls.dovecot.start()
            wait_for(lambda: os.path.exists(cls.dovecot.lmtp_path), 20, "LMTP socket")
            cls.down_path = os.path.join(cls.srv.dir, "lmtp-down")
            with open(cls.srv.conf, "a") as f:
                f.write("local_domains = example.org\n"
                        "local_transport = lmtp:unix:%s\n"
                        "routes = route.test=lmtp:[127.0.0.1]:%d down.test=lmtp:unix:%s\n"
                        "retry_min = 1h\nretry_max = 2h\n"
                        % (cls.dovecot.lmtp_path, cls.dovecot.lmtp_port, cls.down_path))
            cls.srv.start()
        except BaseException:
            cls.stop_all()
            raise

    @classmethod
    def stop_all(cls):
        try:
            if cls.dovecot is not None:
                cls.dovecot.cleanup()
        finally:
            code = cls.srv.stop()
            cls.srv.cleanup()
        return code

    @classmethod
    def tearDownClass(cls):
        code = cls.stop_all()
        assert code == 0, code

    def send(self, rcpts, msg, sender="carol@example.org"):
        with smtplib.SMTP("127.0.0.1", self.srv.port, timeout=10 * SLOW) as s:
            s.ehlo("client.test")
            code, text = s.mail(sender)
            self.assertEqual(code, 250, text)
            for r in rcpts:
                code, text = s.rcpt(r)
                self.assertEqual(code, 250, text)
            code, text = s.data(msg)
            self.assertEqual(code, 250, text)
        m = re.search(r"queued as ([0-9A-Z]+)", text.decode())
        self.assertTrue(m, text)
        return m.group(1)

    def imap(self, user):
        m = imaplib.IMAP4(self.dovecot.host, self.dovecot.port, timeout=10 * SLOW)
        typ, data = m.login(user, PASSWORD)
        self.assertEqual(typ, "OK", data)
        return m

    def messages(self, user, mailbox="INBOX", subject=None):
        """The messages of user's mailbox (whole, as IMAP gives them) with
        subject in their Subject (every message when None)."""
        m = self.imap(user)
        try:
            typ, data = m.select(mailbox, readonly=True)
            if typ != "OK":
                return []
            crit = ("SUBJECT", '"%s"' % subject) if subject else ("ALL",)
            typ, data = m.search(None, *crit)
            self.assertEqual(typ, "OK", data)
            out = []
            for num in data[0].split():
                typ, d = m.fetch(num, "(BODY.PEEK[])")
                self.assertEqual(typ, "OK", d)
                out.append(d[0][1])
            return out
        finally:
            try:
                m.logout()
            except (imaplib.IMAP4.error, OSError):
                pass

    def wait_message(self, user, subject, mailbox="INBOX", timeout=30):
        got = []

        def there():
            got[:] = self.messages(user, mailbox, subject)
            return len(got) > 0
        try:
            wait_for(there, timeout * SLOW, "%r in %s's %s" % (subject, user, mailbox))
        except AssertionError as e:
            raise AssertionError("%s\nmailserver log:\n%s\ndovecot log:\n%s" % (
                e, self.srv.logtext()[-3000:], self.dovecot.logtext()[-3000:])) from None
        return got

    def rcpt_entry(self, qid, addr):
        for msg in self.srv.queue_json():
            if msg.get("id") == qid:
                for r in msg.get("recipients", []):
                    if r.get("address") == addr:
                        return r
        return None

    def test_one_recipient_read_back_over_imap(self):
        self.send(["alice@example.org"], message("thin path", "alice@example.org"))
        got = self.wait_message("alice@example.org", "thin path")
        self.assertEqual(len(got), 1)
        self.assertIn(b"Hello over LMTP.\r\n.a line with a leading dot\r\n", got[0])
        # Dovecot's own trace: it came in over LMTP, from our envelope.
        self.assertIn(b"with LMTP", got[0])
        self.assertIn(b"Return-Path: <carol@example.org>", got[0])
