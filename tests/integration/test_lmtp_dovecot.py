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
import pwd
import re
import smtplib
import unittest

import dovecot_conf
from dovecot_conf import Dovecot, MAIL_USER, prepare_mail_tree
from harness import Server, free_port, test_cert, wait_for, SLOW

PASSWORD = "lmtp secret"
USERS = ["alice@example.org", "bob@example.org", "carol@example.org",
         "sieve@example.org", "full@example.org", "tempfull@example.org",
         "ann@route.test", "dave@down.test"]
# Over quota: full gets 552 (a bounce), tempfull 452 (deferred) from
# Dovecot after the data (quota_full_tempfail per user).
QUOTA_USERS = {"full@example.org": "userdb_quota_rule=*:storage=1K",
               "tempfull@example.org": "userdb_quota_rule=*:storage=1K "
                                       "userdb_quota_full_tempfail=yes"}
SIEVE = b'require ["fileinto", "mailbox"];\r\nfileinto :create "Folder";\r\n'
PAD = b"".join(b"padding line %04d to be larger than one kilobyte\r\n" % i
               for i in range(60))


def lmtp_available():
    """Dovecot with its LMTP server (dovecot-lmtpd) and Sieve (dovecot-sieve)."""
    return dovecot_conf.available() and os.path.exists("/usr/lib/dovecot/lmtp") and \
        os.path.exists("/usr/lib/dovecot/modules/lib90_sieve_plugin.so")


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
        # Found by experiment (2.3.19): the extra fields of a userdb
        # passwd-file count only with uid and gid given and the userdb_
        # prefix.
        pw = pwd.getpwnam(MAIL_USER)
        with open(userdb, "w") as f:
            for addr, fields in QUOTA_USERS.items():
                f.write("%s::%d:%d::::%s\n" % (addr, pw.pw_uid, pw.pw_gid, fields))
        os.chmod(userdb, 0o644)
        with open(self.conf) as f:
            text = f.read()
        text = text.replace("protocols = imap\n", "protocols = imap lmtp\n")
        # TLS for STARTTLS on the LMTP port (IMAP logins stay plaintext:
        # disable_plaintext_auth = no).
        cert, key = test_cert("localhost")
        text = text.replace("ssl = no\n", "ssl = yes\nssl_cert = <%s\nssl_key = <%s\n"
                            % (cert, key))
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


@unittest.skipUnless(lmtp_available(), "dovecot-lmtpd or dovecot-sieve is not installed")
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
            aliases = os.path.join(cls.srv.dir, "aliases")
            with open(aliases, "w") as f:
                f.write("team@example.org: alice@example.org, ann@route.test\n")
            with open(cls.srv.conf, "a") as f:
                f.write("aliases_file = %s\n" % aliases)
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
        """The queue's record of addr in message qid, or None."""
        for msg in self.srv.queue_json()["messages"]:
            if msg["id"] == qid:
                for r in msg["recipients"]:
                    if r["address"] == addr:
                        return r
        return None

    def delivery_line(self, qid, addr):
        """The log line of addr's outcome in qid, once there."""
        pat = re.compile(r"%s: to=<%s>, relay=lmtp:.*" % (qid, re.escape(addr)))
        found = []

        def there():
            found[:] = pat.findall(self.srv.logtext())
            return found
        wait_for(there, 30 * SLOW, "the outcome of %s in %s" % (addr, qid))
        return found[-1]

    def test_one_recipient_read_back_over_imap(self):
        self.send(["alice@example.org"], message("thin path", "alice@example.org"))
        got = self.wait_message("alice@example.org", "thin path")
        self.assertEqual(len(got), 1)
        self.assertIn(b"Hello over LMTP.\r\n.a line with a leading dot\r\n", got[0])
        # Dovecot's own trace: it came in over LMTP, from our envelope.
        self.assertIn(b"with LMTP", got[0])
        self.assertIn(b"Return-Path: <carol@example.org>", got[0])

    def test_two_users_in_one_transaction(self):
        qid = self.send(["alice@example.org", "bob@example.org"],
                        message("for two", "alice@example.org, bob@example.org"))
        a = self.wait_message("alice@example.org", "for two")
        b = self.wait_message("bob@example.org", "for two")
        self.assertEqual((len(a), len(b)), (1, 1))
        # Dovecot names its transaction in its Received field: the same
        # for both copies.
        ids = [re.search(rb"with LMTP\r\n\tid (\S+)", got[0]).group(1) for got in (a, b)]
        self.assertEqual(ids[0], ids[1])
        for got in (a, b):
            self.assertIn(b"Hello over LMTP.", got[0])
        # One transaction: one MAIL FROM, both RCPTs, one DATA, and a
        # reply for each recipient after it.
        self.assertIn("status=sent", self.delivery_line(qid, "bob@example.org"))
        log = self.srv.logtext()
        conv = log[log.rindex("> RCPT TO:<alice@example.org>"):]
        conv = conv[:conv.index("%s: to=<" % qid)]
        self.assertEqual(conv.count("> RCPT TO:<bob@example.org>"), 1)
        self.assertEqual(conv.count("> DATA"), 1)
        self.assertNotIn("> MAIL FROM", conv)
        self.assertEqual(len(re.findall(r"< 250 2\.0\.0 <(alice|bob)@example\.org>", conv)),
                         2, conv)
        self.assertIsNone(self.rcpt_entry(qid, "alice@example.org"))

    def test_tcp_route_with_starttls(self):
        qid = self.send(["ann@route.test"], message("routed", "ann@route.test"))
        got = self.wait_message("ann@route.test", "routed")
        self.assertEqual(len(got), 1)
        line = self.delivery_line(qid, "ann@route.test")
        self.assertIn("relay=lmtp:[127.0.0.1]:%d" % self.dovecot.lmtp_port, line)
        # STARTTLS was offered over TCP and taken: Dovecot says so too.
        self.assertRegex(line, r"tls=Untrusted TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\) \(may\)")
        self.assertIn(b"with LMTPS", got[0])
        # Over the Unix socket: no TLS.
        qid = self.send(["alice@example.org"], message("local no tls", "alice@example.org"))
        got = self.wait_message("alice@example.org", "local no tls")
        self.assertNotIn("tls=", self.delivery_line(qid, "alice@example.org"))
        self.assertIn(b"with LMTP\r\n", got[0])

    def test_sieve_fileinto_folder(self):
        self.send(["sieve@example.org"], message("sorted by sieve", "sieve@example.org"))
        got = self.wait_message("sieve@example.org", "sorted by sieve", mailbox="Folder")
        self.assertEqual(len(got), 1)
        self.assertEqual(self.messages("sieve@example.org", "INBOX", "sorted by sieve"), [])

    def test_over_quota_552_bounces_the_other_is_delivered(self):
        qid = self.send(["full@example.org", "alice@example.org"],
                        message("too big for full", "full@example.org", PAD))
        self.wait_message("alice@example.org", "too big for full")
        line = self.delivery_line(qid, "full@example.org")
        self.assertIn("dsn=5.2.2, status=bounced", line)
        self.assertIn("552 5.2.2", line)
        # The sender (here, over LMTP too) gets the failure notice.
        dsn = self.wait_message("carol@example.org", "Undelivered Mail Returned to Sender")
        text = b"".join(dsn)
        self.assertIn(b"Final-Recipient: rfc822; full@example.org", text)
        self.assertIn(b"Status: 5.2.2", text)
        self.assertNotIn(b"alice@example.org", text.split(b"Message-ID: <too-big")[0]
                         .split(b"Final-Recipient")[-1])
        self.assertEqual(self.messages("full@example.org", "INBOX", "too big for full"), [])

    def test_over_quota_452_defers_the_other_is_delivered(self):
        qid = self.send(["tempfull@example.org", "bob@example.org"],
                        message("too big for tempfull", "tempfull@example.org", PAD))
        self.wait_message("bob@example.org", "too big for tempfull")
        line = self.delivery_line(qid, "tempfull@example.org")
        self.assertIn("dsn=4.2.2, status=deferred", line)
        r = self.rcpt_entry(qid, "tempfull@example.org")
        self.assertIsNotNone(r)
        self.assertEqual(r["state"], "deferred")
        self.assertIn("452 4.2.2", r["diagnostic"])
        # Only it is tried again: bob is done.
        self.assertEqual(self.rcpt_entry(qid, "bob@example.org")["state"], "sent")

    def test_server_down_defers_then_delivers_when_back(self):
        qid = self.send(["dave@down.test"], message("while down", "dave@down.test"))
        line = self.delivery_line(qid, "dave@down.test")
        self.assertIn("status=deferred", line)
        self.assertIn("connect to LMTP server unix:%s" % self.down_path, line)
        self.assertEqual(self.rcpt_entry(qid, "dave@down.test")["state"], "deferred")
        # The server is back: its socket appears at the routed path.
        os.symlink(self.dovecot.lmtp_path, self.down_path)
        self.srv.mailctl("flush")
        got = self.wait_message("dave@down.test", "while down")
        self.assertEqual(len(got), 1)
        wait_for(lambda: self.rcpt_entry(qid, "dave@down.test") is None, 20 * SLOW,
                 "dave's recipient to leave the queue")

    def test_alias_expands_to_lmtp_targets(self):
        """An alias of ours expands before LMTP: each target is delivered
        on its own (local over the socket, routed over TCP)."""
        qid = self.send(["team@example.org"], message("for the team", "team@example.org"))
        self.assertEqual(len(self.wait_message("alice@example.org", "for the team")), 1)
        self.assertEqual(len(self.wait_message("ann@route.test", "for the team")), 1)
        self.assertIn("relay=lmtp:unix:", self.delivery_line(qid, "alice@example.org"))
        self.assertIn("relay=lmtp:[127.0.0.1]", self.delivery_line(qid, "ann@route.test"))
        # The alias itself never goes to the LMTP server (it knows no team).
        self.assertNotIn("RCPT TO:<team@example.org>", self.srv.logtext())
