"""mailserver stores, an IMAP server serves: Dovecot (Debian's
dovecot-imapd) runs from a private config over mailserver's mail_dir with a
passwd-file of the same users; a message delivered through mailserver is
fetched with imaplib after LOGIN (issue: Maildir interoperability).

Both run as Debian's `mail` user (mailserver with `user = mail`): Dovecot
never reads mail as root, and mailserver's Maildir files are 0600. See
dovecot_conf.py for the Dovecot settings this needs.
"""
import imaplib
import os
import re
import smtplib
import subprocess
import unittest
import warnings

import dovecot_conf
from dovecot_conf import Dovecot, MAIL_USER, prepare_mail_tree
from harness import Server, wait_for, SLOW

PASSWORD = "dave's secret 7"
SENDER = "sender@example.org"
RCPT = "dave@localhost"

MSG1 = (b"From: Sender <sender@example.org>\r\n"
        b"To: Dave <dave@localhost>\r\n"
        b"Subject: hello from mailserver\r\n"
        b"Message-ID: <m1@example.org>\r\n"
        b"\r\n"
        b"First line.\r\n"
        b"\r\n"
        b"Last line.\r\n")
BODY2 = (b"Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln \xe2\x80\x94 8-bit \xff\x80 bytes\r\n"
         b".leading dot\r\n"
         b"..two dots\r\n"
         b".\tdot and tab\r\n"
         b"end\r\n")
MSG2 = (b"From: sender@example.org\r\n"
        b"To: dave@localhost\r\n"
        b"Subject: eight bit and dots\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n" + BODY2)


def crypt_hash(password):
    """A SHA-512 crypt(3) hash ($6$...), as users_file and Dovecot's
    {CRYPT} scheme both take."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))
    except ImportError:  # Python 3.13 dropped the module
        return subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password,
                              capture_output=True, text=True, check=True).stdout.strip()


def split(msg):
    head, _, body = msg.partition(b"\r\n\r\n")
    return head + b"\r\n", body


@unittest.skipUnless(dovecot_conf.available(), "dovecot (dovecot-imapd) is not installed")
class DovecotTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server()
        cls.dovecot = None
        try:
            hashed = crypt_hash(PASSWORD)
            users = os.path.join(cls.srv.dir, "users")
            with open(users, "w") as f:
                f.write("%s:%s\n" % (RCPT, hashed))
            with open(cls.srv.conf, "a") as f:
                f.write("users_file = %s\nuser = %s\n" % (users, MAIL_USER))
            # mailserver drops to MAIL_USER before it creates queue_dir and
            # mail_dir in its directory.
            prepare_mail_tree(cls.srv.dir)
            cls.srv.start()
            cls.dovecot = Dovecot(os.path.join(cls.srv.dir, "mail"),
                                  {RCPT: "{CRYPT}" + hashed}).start()
            cls.qids = [cls.send(MSG1, []), cls.send(MSG2, ["BODY=8BITMIME"])]
            wait_for(lambda: len(cls.srv.maildir_files(RCPT)) == 2, 30,
                     "two messages in %s's Maildir" % RCPT)
        except BaseException:
            cls.stop_all()
            raise

    @classmethod
    def stop_all(cls):
        code = None
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

    @classmethod
    def send(cls, msg, mail_options):
        with smtplib.SMTP("127.0.0.1", cls.srv.port, timeout=10 * SLOW) as s:
            s.ehlo("client.test")
            code, text = s.mail(SENDER, mail_options)
            assert code == 250, (code, text)
            code, text = s.rcpt(RCPT)
            assert code == 250, (code, text)
            code, text = s.data(msg)  # smtplib dot-stuffs
            assert code == 250, (code, text)
        m = re.search(r"queued as ([0-9A-Z]+)", text.decode())
        assert m, text
        return m.group(1)

    def imap(self):
        m = imaplib.IMAP4(self.dovecot.host, self.dovecot.port, timeout=10 * SLOW)
        self.addCleanup(self.close_imap, m)
        return m

    @staticmethod
    def close_imap(m):
        try:
            m.logout()
        except (imaplib.IMAP4.error, OSError):
            pass

    def fetch(self, m, num, item):
        typ, data = m.fetch(num, "(%s)" % item)
        self.assertEqual(typ, "OK", data)
        self.assertIsInstance(data[0], tuple, data)
        return data[0][1]

    def test_maildir_files_are_lf_and_start_with_trace_headers(self):
        for path in self.srv.maildir_files(RCPT) + self.srv.maildir_files(RCPT, "cur"):
            with open(path, "rb") as f:
                data = f.read()
            self.assertNotIn(b"\r", data, path)
            self.assertTrue(data.startswith(b"Return-Path: <%s>\n" % SENDER.encode()), data[:200])

    def test_imap_login_fetches_delivered_messages(self):
        m = self.imap()
        typ, data = m.login(RCPT, PASSWORD)
        self.assertEqual(typ, "OK", data)
        typ, data = m.select("INBOX", readonly=True)
        self.assertEqual(typ, "OK", data)
        self.assertEqual(int(data[0]), 2)
        typ, data = m.search(None, "ALL")
        self.assertEqual(typ, "OK", data)
        nums = data[0].split()
        self.assertEqual(len(nums), 2, data)

        by_subject = {}
        for num in nums:
            subj = self.fetch(m, num, "BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
            by_subject[subj.strip().decode()] = num
        self.assertEqual(set(by_subject), {"Subject: hello from mailserver",
                                           "Subject: eight bit and dots"})

        for msg, subject, qid in ((MSG1, "hello from mailserver", self.qids[0]),
                                  (MSG2, "eight bit and dots", self.qids[1])):
            num = by_subject["Subject: " + subject]
            head, body = split(msg)
            with self.subTest(subject=subject):
                # The body, byte for byte (IMAP hands out CRLF line ends).
                self.assertEqual(self.fetch(m, num, "BODY.PEEK[TEXT]"), body)
                whole = self.fetch(m, num, "BODY.PEEK[]")
                self.assertTrue(whole.endswith(b"\r\n\r\n" + body))
                self.assertNotIn(b"\n", whole.replace(b"\r\n", b""))
                # mailserver's trace headers lead, then the sent header.
                header = self.fetch(m, num, "BODY.PEEK[HEADER]")
                self.assertTrue(header.startswith(b"Return-Path: <%s>\r\n" % SENDER.encode()),
                                header[:300])
                self.assertRegex(header, rb"(?m)^Delivered-To: <?dave@localhost>?\r$")
                received = re.search(rb"(?m)^Received: .*\r\n(?:[ \t].*\r\n)*", header)
                self.assertIsNotNone(received, header)
                self.assertIn(qid.encode(), received.group(0))
                self.assertTrue(header.endswith(head + b"\r\n"), header)
                # Dovecot parses the same envelope fields from the file.
                env = self.fetch(m, num, "BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
                self.assertEqual(env, b"Subject: " + subject.encode() + b"\r\n\r\n")
        typ, data = m.close()
        self.assertEqual(typ, "OK", data)

    def test_wrong_password_is_refused(self):
        for user, password in ((RCPT, PASSWORD + "x"), (RCPT, ""),
                               ("nobody@localhost", PASSWORD)):
            with self.subTest(user=user, password=password):
                m = self.imap()
                with self.assertRaises(imaplib.IMAP4.error) as cm:
                    m.login(user, password)
                self.assertIn("AUTHENTICATIONFAILED", str(cm.exception))
        # the right password still works
        typ, data = self.imap().login(RCPT, PASSWORD)
        self.assertEqual(typ, "OK", data)

if __name__ == "__main__":
    unittest.main()
