"""STARTTLS (RFC 3207), implicit TLS (smtps, RFC 8314) and AUTH."""
import warnings
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import crypt
import os
import smtplib
import ssl
import unittest

from harness import Client, Server, free_port, greet, test_cert

MSG = b"Subject: tls\r\n\r\nover tls\r\n"


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cert, key = test_cert()
        cls.smtps_port = free_port()
        cls.sub_port = free_port()
        srv = Server()
        srv.extra_ports = None
        users = os.path.join(srv.dir, "users")
        with open(users, "w") as f:
            f.write("carol@localhost:%s\n" % crypt.crypt("s3cret", "$6$saltsalt$"))
        with open(srv.conf, "a") as f:
            f.write("tls_cert_file = %s\ntls_key_file = %s\nusers_file = %s\n" % (cert, key, users) +
                    "listen = 127.0.0.1:%d smtps\n" % cls.smtps_port +
                    "listen = 127.0.0.1:%d submission\n" % cls.sub_port +
                    "relay_networks = 10.255.0.0/16\n"
                    "relay_domains = hold.test\nroutes = hold.test=[127.0.0.1]:9\n")
        cls.srv = srv.start()
        srv.wait_ready(cls.smtps_port)
        srv.wait_ready(cls.sub_port)

    @classmethod
    def tearDownClass(cls):
        code = cls.srv.stop()
        cls.srv.cleanup()
        assert code == 0, code

    def test_starttls_then_mail(self):
        with smtplib.SMTP("127.0.0.1", self.srv.port) as s:
            s.ehlo("client.test")
            self.assertTrue(s.has_extn("starttls"))
            s.starttls(context=client_ctx())
            s.ehlo("client.test")
            self.assertFalse(s.has_extn("starttls"))
            s.mail("a@example.org")
            s.rcpt("carol@hold.test")
            code, text = s.data(MSG)
            self.assertEqual(code, 250)
        qid = text.decode().split()[-1]
        show = self.srv.mailctl("show", qid).stdout
        self.assertIn("with ESMTPS", show)
        self.assertIn("using TLS", show)

    def test_plaintext_after_starttls_discarded(self):
        c, _ = greet(self.srv.port)
        # the injected command rides in the same packet as STARTTLS
        c.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<inject@example.org>\r\n")
        code, _ = c.reply()
        self.assertEqual(code, 220)
        self.assertEqual(c.buf, b"")
        c.starttls()
        # the server must answer our next command, not the injected ones
        self.assertEqual(c.cmd("MAIL FROM:<a@example.org>")[0], 503)  # EHLO needed again
        code, lines = c.cmd("EHLO client.test")
        self.assertEqual(code, 250)
        self.assertNotIn("STARTTLS", lines)
        self.assertEqual(c.cmd("STARTTLS")[0], 503)   # already active
        self.assertEqual(c.cmd("MAIL FROM:<a@example.org>")[0], 250)
        c.close()

    def test_smtps_implicit_tls(self):
        with smtplib.SMTP_SSL("127.0.0.1", self.smtps_port, context=client_ctx()) as s:
            s.ehlo("client.test")
            code, _ = s.mail("carol@localhost")
            self.assertEqual(code, 530)  # smtps is submission: AUTH first
        with smtplib.SMTP_SSL("127.0.0.1", self.smtps_port, context=client_ctx()) as s:
            s.ehlo("client.test")
            s.login("carol@localhost", "s3cret")
            s.mail("carol@localhost")
            self.assertEqual(s.rcpt("someone@hold.test")[0], 250)
            code, text = s.data(b"Subject: no date, no id\r\n\r\nbody\r\n")
            self.assertEqual(code, 250)
        # message submission: Date and Message-ID added (RFC 6409 8.2, 8.3)
        head = self.srv.mailctl("show", text.decode().split()[-1]).stdout
        self.assertIn("Date: ", head)
        self.assertIn("Message-ID: <", head)
        self.assertIn("Subject: no date, no id", head)

    def test_submission_requires_auth(self):
        c, _ = greet(self.sub_port)
        code, lines = c.cmd("MAIL FROM:<carol@localhost>")
        self.assertEqual(code, 530)
        self.assertTrue(lines[0].startswith("5.7.0"))
        c.close()

    def test_auth_hostile_input(self):
        c, _ = greet(self.sub_port)
        self.assertEqual(c.cmd("AUTH PLAIN !!!notbase64!!!")[0], 535)
        self.assertEqual(c.cmd("AUTH PLAIN")[0], 334)
        code, lines = c.cmd("*")                      # the client gives up
        self.assertEqual(code, 501)
        self.assertEqual(c.cmd("AUTH CRAM-MD5")[0], 504)
        # authzid differing from authcid: no proxy logins
        import base64
        bad = base64.b64encode(b"admin@localhost\0carol@localhost\0s3cret").decode()
        self.assertEqual(c.cmd("AUTH PLAIN " + bad)[0], 535)
        # a SASL line over the AUTH limit
        self.assertEqual(c.cmd("AUTH PLAIN")[0], 334)
        code, _ = c.cmd("A" * 13000)
        self.assertEqual(code, 500)
        self.assertEqual(c.cmd("NOOP")[0], 250)   # back to commands
        c.close()
        # repeated failures end the session
        c, _ = greet(self.sub_port)
        codes = []
        try:
            for _ in range(12):
                codes.append(c.cmd("AUTH PLAIN AGNhcm9sQGxvY2FsaG9zdAB3cm9uZw==")[0])
        except (EOFError, BrokenPipeError, ConnectionResetError):
            pass
        self.assertIn(421, codes)
        c.close()

    def test_auth_plain_and_login(self):
        with smtplib.SMTP("127.0.0.1", self.sub_port) as s:
            s.ehlo("client.test")
            s.starttls(context=client_ctx())
            s.ehlo("client.test")
            with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
                s.login("carol@localhost", "wrong")
            self.assertEqual(e.exception.smtp_code, 535)
            s.login("carol@localhost", "s3cret")
            s.mail("carol@localhost")
            # authenticated: may relay even though 127.0.0.1 is not in relay_networks
            self.assertEqual(s.rcpt("x@remote.example")[0], 250)
        c, _ = greet(self.sub_port)
        self.assertEqual(c.cmd("AUTH LOGIN")[0], 334)
        self.assertEqual(c.cmd("Y2Fyb2xAbG9jYWxob3N0")[0], 334)  # carol@localhost
        self.assertEqual(c.cmd("czNjcmV0")[0], 235)  # s3cret
        c.close()


if __name__ == "__main__":
    unittest.main()
