"""Real milters through the daemon (milters =), each daemon started once
for its class, on loopback, stopped by its PID:
- rspamd through its milter proxy (test_milter_rspamd.Rspamd): GTUBE is
  refused at the end of data, a clean message is delivered with rspamd's
  headers (its queue id is ours), rspamd down means each default_action;
- OpenDKIM signs the mail of an authenticated user (the {auth_type} and
  {auth_authen} macros; loopback is not one of its internal hosts) and
  python3-dkim verifies the delivered message against the key; mail of
  anyone else is only verified (Authentication-Results, no signature);
- ClamAV (clamd with the EICAR signature, clamav-milter): EICAR is
  refused, a clean message carries clamav-milter's headers.
"""
import base64
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import test_milter_opendkim as odk
import test_milter_rspamd as rsp
from harness import MAILCTL, Client, Server, dot_stuff, test_cert
from milter_daemons import EICAR, ClamAv, OpenDkim, clamav_available, opendkim_available
from test_dovecot import crypt_hash
from test_session_milter import read_delivered


def session(port, helo="client.test"):
    c = Client(port, timeout=120)
    assert c.reply()[0] == 220
    code, lines = c.cmd("EHLO " + helo)
    assert code == 250, (code, lines)
    return c


def transaction(c, sender, rcpt, msg):
    """MAIL, RCPT, DATA and the message; the reply to its end."""
    assert c.cmd("MAIL FROM:<%s>" % sender)[0] == 250
    assert c.cmd("RCPT TO:<%s>" % rcpt)[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(dot_stuff(msg) + b".\r\n")
    code, text = c.reply()
    return code, text


def send(port, sender, rcpt, msg):
    c = session(port)
    try:
        return transaction(c, sender, rcpt, msg)
    finally:
        c.close()


def fields(msg):
    """The header section of a delivered (LF) message: [(name, value)]."""
    out = []
    for line in msg.split(b"\n\n", 1)[0].split(b"\n"):
        if line[:1] in (b" ", b"\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + b"\n" + line)
        else:
            n, v = line.split(b":", 1)
            out.append((n.decode(), v.strip()))
    return out


@unittest.skipUnless(rsp.available(), "rspamd is not installed")
class SessionRspamdTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rspamd = rsp.Rspamd().start()
        cls.server = Server("local_domains = example.org\n"
                            "milters = %s command_timeout=60s eom_timeout=120s\n" %
                            cls.rspamd.endpoint).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()
        cls.rspamd.cleanup()

    def test_gtube_is_refused(self):
        code, text = send(self.server.port, "spammer@example.net", "gtube@example.org",
                          b"Subject: test\r\n\r\n" + rsp.GTUBE + b"\r\n")
        self.assertEqual(code, 554, text)
        self.assertTrue(text[0].startswith("5.7.1 "), text)
        self.assertIn("Gtube", " ".join(text))
        self.assertEqual(self.server.maildir_files("gtube@example.org"), [])

    def test_clean_message_gets_rspamd_headers(self):
        code, text = send(self.server.port, "alice@example.org", "bob@example.org", rsp.CLEAN)
        self.assertEqual(code, 250, text + [self.rspamd.logtext()])
        qid = text[0].split()[-1]
        msg = read_delivered(self.server, "bob@example.org", b"<lunch.1@example.org>")
        got = dict(fields(msg))
        self.assertEqual(got["X-Rspamd-Queue-Id"], qid.encode())
        self.assertTrue(got["X-Spamd-Result"].startswith(b"default: False ["), got)
        self.assertTrue(got["X-Spam-Status"].startswith(b"No, score="), got)
        self.assertIn("X-Rspamd-Server", got)
        self.assertIn("Authentication-Results", got)
        self.assertIn(b"\n\nShall we meet at noon at the usual place?\n", msg)

    def test_zz_rspamd_down_means_default_action(self):
        # Runs last in the class (unittest sorts by name).
        self.rspamd.stop()
        for action, want in (("tempfail", (451, "4.7.1")), ("reject", (550, "5.7.1")),
                             ("accept", None)):
            with self.subTest(action=action):
                srv = Server("local_domains = example.org\nmilters = %s default_action=%s\n"
                             % (self.rspamd.endpoint, action))
                try:
                    srv.start()
                    c = Client(srv.port)
                    self.assertEqual(c.reply()[0], 220)
                    code, text = c.cmd("EHLO client.test")
                    if want is None:
                        self.assertEqual(code, 250, text)
                        self.assertEqual(transaction(c, "alice@example.org", "down@example.org",
                                                     rsp.CLEAN)[0], 250)
                        read_delivered(srv, "down@example.org", b"<lunch.1@example.org>")
                    else:
                        self.assertEqual((code, text[0][:5]), want, text)
                    c.close()
                finally:
                    srv.cleanup()


MESSAGE = (b"From: Carol <carol@example.org>\r\nTo: bob@example.org\r\n"
           b"Subject: signed by opendkim\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
           b"Message-ID: <sodk.1@example.org>\r\n\r\n"
           b"Hello Bob,\r\n\r\nthis one is signed on its way out.\r\n")


@unittest.skipUnless(opendkim_available(), "opendkim is not installed")
class SessionOpenDkimTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ms-sodk-")
        key = os.path.join(cls.tmp, "odk.pem")
        out = subprocess.run([MAILCTL, "dkim-keygen", "example.org", "odk", "--out", key],
                             capture_output=True, check=True, timeout=60).stdout.decode()
        txt = "".join(re.findall(r'"([^"]*)"', out))
        cls.zone = os.path.join(cls.tmp, "zone")
        with open(cls.zone, "w") as f:
            f.write("odk._domainkey.example.org TXT %s\n" % txt)
        # Loopback is not internal: only the AUTH macros make it sign.
        cls.opendkim = OpenDkim("example.org", "odk", key,
                                "odk._domainkey.example.org %s\n" % txt,
                                extra="InternalHosts csl:192.0.2.250\n").start()
        cert, tkey = test_cert()
        cls.users = os.path.join(cls.tmp, "users")
        with open(cls.users, "w") as f:
            f.write("carol@example.org:%s\nbob@example.org:\ndave@example.org:\n" %
                    crypt_hash("carol pw"))
        cls.server = Server("local_domains = example.org\nusers_file = %s\n" % cls.users +
                            "tls_cert_file = %s\ntls_key_file = %s\n" % (cert, tkey) +
                            "auth_plaintext_networks = 127.0.0.0/8\n"
                            "milters = %s\n" % cls.opendkim.endpoint).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()
        cls.opendkim.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def verify(self, msg):
        out = subprocess.run(odk.DKIMPY + ["verify", self.zone], input=msg,
                             capture_output=True, timeout=60)
        return out.stdout.decode().split()

    @unittest.skipUnless(odk.dkimpy_available(), "python3-dkim is not installed")
    def test_signs_for_authenticated_user_dkimpy_verifies(self):
        c = session(self.server.port)
        login = base64.b64encode(b"\0carol@example.org\0carol pw").decode()
        self.assertEqual(c.cmd("AUTH PLAIN " + login)[0], 235)
        code, text = transaction(c, "carol@example.org", "bob@example.org", MESSAGE)
        c.close()
        self.assertEqual(code, 250, text)
        msg = read_delivered(self.server, "bob@example.org", b"<sodk.1@example.org>")
        names = [n for n, _ in fields(msg)]
        # Inserted on top of the message as queued: above our Received.
        self.assertEqual(names[2:4], ["DKIM-Signature", "Received"], names)
        sig = dict(fields(msg))["DKIM-Signature"]
        self.assertIn(b"d=example.org; s=odk;", sig)
        crlf = msg.replace(b"\n", b"\r\n")
        self.assertEqual(self.verify(crlf), ["pass"])
        self.assertEqual(self.verify(crlf.replace(b"signed on its way", b"changed on its way")),
                         ["fail"])

    def test_others_are_verified_not_signed(self):
        code, text = send(self.server.port, "carol@example.org", "dave@example.org",
                          MESSAGE.replace(b"sodk.1", b"sodk.2"))
        self.assertEqual(code, 250, text)
        msg = read_delivered(self.server, "dave@example.org", b"<sodk.2@example.org>")
        got = fields(msg)
        self.assertNotIn("DKIM-Signature", [n for n, _ in got])
        ar = [v for n, v in got if n == "Authentication-Results"]
        self.assertEqual(len(ar), 1, got)
        self.assertTrue(ar[0].startswith(b"mx.test;"), ar)
        self.assertIn(b"dkim=none", ar[0])


CLEAN = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: clean\r\n\r\nNothing here.\r\n"


@unittest.skipUnless(clamav_available(), "clamav-daemon or clamav-milter is not installed")
class SessionClamAvTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.clamav = ClamAv()
        try:
            cls.clamav.start()
        except AssertionError as e:
            cls.clamav.cleanup()
            if "timed out" in str(e):
                raise unittest.SkipTest("clamd did not start within the budget: %s" % e)
            raise
        cls.server = Server("local_domains = example.org\nmilters = %s\n" %
                            cls.clamav.endpoint).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()
        cls.clamav.cleanup()

    def test_eicar_is_refused(self):
        code, text = send(self.server.port, "a@example.net", "virus@example.org",
                          b"Subject: test\r\n\r\n" + EICAR + b"\r\n")
        self.assertEqual((code, text[0]), (550, "5.7.1 Virus found: %s.UNOFFICIAL" %
                                           ClamAv.SIGNATURE))
        self.assertEqual(self.server.maildir_files("virus@example.org"), [])

    def test_clean_message_gets_headers(self):
        code, text = send(self.server.port, "a@example.net", "clean@example.org", CLEAN)
        self.assertEqual(code, 250, text)
        msg = read_delivered(self.server, "clean@example.org", b"Nothing here.")
        got = dict(fields(msg))
        self.assertEqual(got["X-Virus-Status"], b"Clean")
        self.assertTrue(got["X-Virus-Scanned"].startswith(b"clamav-milter"), got)


if __name__ == "__main__":
    unittest.main()
