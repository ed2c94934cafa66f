"""STARTTLS (RFC 3207), implicit TLS (smtps, RFC 8314) and AUTH."""
import warnings
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import crypt
import base64
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time
import unittest

from harness import MAILSERVER, Client, Server, free_port, greet, test_cert, SLOW

MSG = b"Subject: tls\r\n\r\nover tls\r\n"


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def line_reader(sock):
    """Reads CRLF lines from a (TLS) socket; returns a function giving the
    next whole reply as (code, text)."""
    state = {"buf": b""}

    def reply():
        while True:
            while b"\r\n" not in state["buf"]:
                d = sock.recv(65536)
                if not d:
                    raise EOFError(state["buf"])
                state["buf"] += d
            line, state["buf"] = state["buf"].split(b"\r\n", 1)
            if line[3:4] != b"-":
                return int(line[:3]), line[4:].decode()
    return reply


def big_body(size):
    line = b"0123456789" * 7 + b"\r\n"
    return b"Subject: big\r\n\r\n" + line * (size // len(line))


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
                    "relay_domains = hold.test\nroutes = hold.test=[127.0.0.1]:9\n"
                    # these tests log in without TLS too, and fail on purpose
                    "auth_plaintext_networks = 127.0.0.0/8\n"
                    "auth_fail_delay = 0\nauth_fail_limit = 0\n")
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

    def send_big(self, sock, reply, size, sender=b"a@example.org"):
        """MAIL, RCPT, then a body of size bytes written as 10,000-byte
        TLS records; returns the reply to the end of data."""
        sock.sendall(b"MAIL FROM:<" + sender + b">\r\n")
        self.assertEqual(reply()[0], 250)
        sock.sendall(b"RCPT TO:<carol@localhost>\r\n")
        self.assertEqual(reply()[0], 250)
        sock.sendall(b"DATA\r\n")
        self.assertEqual(reply()[0], 354)
        data = big_body(size) + b".\r\n"
        for i in range(0, len(data), 10000):
            sock.sendall(data[i:i + 10000])
        return reply()

    def test_large_message_in_small_records(self):
        """8 MiB over STARTTLS and over smtps, in 10,000-byte records, by
        DATA and by BDAT: no stall with bytes left inside GnuTLS."""
        size = 8 * 1024 * 1024
        raw = socket.create_connection(("127.0.0.1", self.srv.port), timeout=30 * SLOW)
        reply = line_reader(raw)
        self.assertEqual(reply()[0], 220)
        raw.sendall(b"EHLO client.test\r\n")
        reply()
        raw.sendall(b"STARTTLS\r\n")
        self.assertEqual(reply()[0], 220)
        tls = client_ctx().wrap_socket(raw)
        reply = line_reader(tls)
        tls.sendall(b"EHLO client.test\r\n")
        reply()
        code, text = self.send_big(tls, reply, size)
        self.assertEqual(code, 250, text)
        tls.close()
        raw = socket.create_connection(("127.0.0.1", self.smtps_port), timeout=30 * SLOW)
        tls = client_ctx().wrap_socket(raw)
        reply = line_reader(tls)
        self.assertEqual(reply()[0], 220)
        tls.sendall(b"EHLO client.test\r\n")
        reply()
        tls.sendall(b"AUTH PLAIN " + base64.b64encode(b"\0carol@localhost\0s3cret") + b"\r\n")
        self.assertEqual(reply()[0], 235)
        code, text = self.send_big(tls, reply, size, b"carol@localhost")
        self.assertEqual(code, 250, text)
        tls.close()
        qid = text.split()[-1]
        self.srv.wait_log(qid + ": to=<carol@localhost>")
        files = self.srv.maildir_files("carol@localhost")
        with open(files[-1], "rb") as f:
            delivered = f.read()
        self.assertIn(qid.encode(), delivered)
        self.assertTrue(delivered.endswith(big_body(size).replace(b"\r\n", b"\n")[-100000:]))
        # and BDAT over STARTTLS: four 2 MiB chunks, in 10,000-byte records
        raw = socket.create_connection(("127.0.0.1", self.srv.port), timeout=30 * SLOW)
        reply = line_reader(raw)
        self.assertEqual(reply()[0], 220)
        raw.sendall(b"EHLO client.test\r\nSTARTTLS\r\n")
        reply()
        self.assertEqual(reply()[0], 220)
        tls = client_ctx().wrap_socket(raw)
        reply = line_reader(tls)
        tls.sendall(b"EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<carol@localhost>\r\n")
        self.assertEqual([reply()[0] for _ in range(3)], [250, 250, 250])
        data = big_body(size)
        quarter = len(data) // 4
        stream = b""
        for i in range(4):
            chunk = data[i * quarter:] if i == 3 else data[i * quarter:(i + 1) * quarter]
            stream += b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if i == 3 else b"") + chunk
        for i in range(0, len(stream), 10000):
            tls.sendall(stream[i:i + 10000])
        codes = [reply() for _ in range(4)]
        self.assertEqual([c for c, _ in codes], [250] * 4, codes)
        self.assertIn("queued as", codes[3][1])
        tls.close()
        self.srv.wait_log(codes[3][1].split()[-1] + ": to=<carol@localhost>")

    def test_close_notify_after_pipelined_quit(self):
        """'.' CRLF QUIT CRLF then close_notify at once: the 250 and the 221
        still arrive."""
        raw = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10 * SLOW)
        reply = line_reader(raw)
        self.assertEqual(reply()[0], 220)
        raw.sendall(b"EHLO client.test\r\nSTARTTLS\r\n")
        reply()
        self.assertEqual(reply()[0], 220)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = client_ctx().wrap_bio(incoming, outgoing)

        def pump():
            d = outgoing.read()
            if d:
                raw.sendall(d)

        def feed():
            d = raw.recv(65536)
            if not d:
                incoming.write_eof()
            else:
                incoming.write(d)
            return bool(d)

        def read_until(needle, have=b""):
            while needle not in have:
                try:
                    have += tls.read(65536)
                except ssl.SSLWantReadError:
                    pump()
                    if not feed():
                        break
                except ssl.SSLZeroReturnError:
                    break
            return have

        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pump()
                feed()
        pump()
        tls.write(b"EHLO client.test\r\nMAIL FROM:<a@example.org>\r\n"
                  b"RCPT TO:<carol@localhost>\r\nDATA\r\n")
        pump()
        got = read_until(b"354 ")
        tls.write(big_body(40000) + b".\r\nQUIT\r\n")
        self.srv.signal(signal.SIGSTOP)
        try:
            try:
                tls.unwrap()    # sends close_notify
            except ssl.SSLWantReadError:
                pass
            pump()
        finally:
            self.srv.signal(signal.SIGCONT)
        got = read_until(b"221 ", got)
        raw.close()
        self.assertRegex(got, rb"354 [^\n]*\n250 2\.0\.0 Ok: queued as [0-9A-F]{13}\r\n221 ")

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
        # bad base64 is a syntax error (RFC 4954 4), not a failed login
        code, lines = c.cmd("AUTH PLAIN !!!notbase64!!!")
        self.assertEqual(code, 501)
        self.assertTrue(lines[0].startswith("5.5.2"), lines)
        self.assertEqual(c.cmd("AUTH LOGIN")[0], 334)
        self.assertEqual(c.cmd("Y2Fyb2xAbG9jYWxob3N0")[0], 334)
        self.assertEqual(c.cmd("czNj=mV0")[0], 501)
        self.assertEqual(c.cmd("AUTH PLAIN AGNhcm9sQGxvY2FsaG9zdA==")[0], 535)  # no password part
        self.assertEqual(c.cmd("AUTH PLAIN")[0], 334)
        code, lines = c.cmd("*")                      # the client gives up
        self.assertEqual(code, 501)
        self.assertEqual(c.cmd("AUTH CRAM-MD5")[0], 504)
        # authzid differing from authcid: no proxy logins
        import base64
        bad = base64.b64encode(b"admin@localhost\0carol@localhost\0s3cret").decode()
        self.assertEqual(c.cmd("AUTH PLAIN " + bad)[0], 535)
        # a SASL line over the AUTH limit (RFC 4954 4 and 6: 500 5.5.6),
        # as a response and as an initial response
        self.assertEqual(c.cmd("AUTH PLAIN")[0], 334)
        code, lines = c.cmd("A" * 13000)
        self.assertEqual((code, lines[0][:5]), (500, "5.5.6"), lines)
        self.assertEqual(c.cmd("NOOP")[0], 250)   # back to commands
        code, lines = c.cmd("AUTH PLAIN " + "A" * 13000)
        self.assertEqual((code, lines[0][:5]), (500, "5.5.6"), lines)
        code, lines = c.cmd("NOOP " + "A" * 13000)
        self.assertEqual((code, lines[0][:5]), (500, "5.5.2"), lines)
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


class TlsSettingsTest(unittest.TestCase):
    """tls_priority and its default, session resumption, alerts."""

    @classmethod
    def setUpClass(cls):
        cert, key = test_cert()
        cls.smtps = free_port()
        cls.srv = Server("tls_cert_file = %s\ntls_key_file = %s\nlisten = 127.0.0.1:%d smtps\n"
                         % (cert, key, cls.smtps)).start()
        cls.srv.wait_ready(cls.smtps)

    @classmethod
    def tearDownClass(cls):
        code = cls.srv.stop()
        cls.srv.cleanup()
        assert code == 0, code

    def connect(self, ctx, session=None, port=None):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port or self.smtps),
                                                     timeout=10 * SLOW), session=session)
        self.assertTrue(s.recv(100).startswith(b"220 "))   # tickets come after the handshake
        return s

    def test_session_resumption(self):
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            with self.subTest(version=version):
                ctx = client_ctx()
                ctx.minimum_version = ctx.maximum_version = version
                s = self.connect(ctx)
                session = s.session
                s.close()
                s = self.connect(ctx, session)
                self.assertTrue(s.session_reused)
                s.close()

    def test_default_priority(self):
        # no static RSA key exchange, no CBC (so no CBC-SHA1)
        ctx = client_ctx()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("AES128-SHA:AES256-SHA:AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA")
        with self.assertRaises(ssl.SSLError):
            self.connect(ctx)
        # the server's order wins over the client's
        ctx = client_ctx()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384")
        s = self.connect(ctx)
        self.assertEqual(s.cipher()[0], "ECDHE-RSA-AES256-GCM-SHA384")
        s.close()

    def test_refused_version_gets_an_alert(self):
        import warnings as w
        ctx = client_ctx()
        with w.catch_warnings():
            w.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        with self.assertRaises(ssl.SSLError) as e:
            self.connect(ctx)
        self.assertIn("PROTOCOL_VERSION", str(e.exception))   # not a silent close

    def test_tls_priority_key(self):
        cert, key = test_cert()
        srv = Server("tls_cert_file = %s\ntls_key_file = %s\n" % (cert, key) +
                     "tls_priority = NORMAL:-VERS-ALL:+VERS-TLS1.2\n").start()
        try:
            c, _ = greet(srv.port)
            self.assertEqual(c.cmd("STARTTLS")[0], 220)
            c.starttls()
            self.assertEqual(c.sock.version(), "TLSv1.2")
            c.close()
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()
        bad = Server("tls_priority = NORMAL:+NO-SUCH-THING\n")
        try:
            r = subprocess.run([MAILSERVER, "-t", "-c", bad.conf], capture_output=True,
                               text=True, timeout=30)
            self.assertEqual(r.returncode, 2)
            self.assertRegex(r.stderr, r":\d+: tls_priority: .*NO-SUCH-THING")
        finally:
            bad.cleanup()

    @unittest.skipUnless(shutil.which("testssl"), "needs testssl.sh (tests/deps.sh)")
    def test_testssl_protocols_and_cipher_order(self):
        """testssl.sh (protocols, server preferences, forward secrecy,
        vulnerabilities): nothing rated MEDIUM or worse but the self-signed
        test certificate."""
        out = os.path.join(self.srv.dir, "testssl.json")
        subprocess.run(["testssl", "--quiet", "--color", "0", "--warnings", "off",
                        "--jsonfile", out, "-p", "-P", "-f", "-U",
                        "127.0.0.1:%d" % self.smtps],
                       capture_output=True, timeout=300 * SLOW)
        with open(out) as f:
            findings = json.load(f)
        bad = [(x["id"], x["severity"], x.get("finding")) for x in findings
               if x["severity"] in ("MEDIUM", "HIGH", "CRITICAL") and not x["id"].startswith("cert")]
        self.assertEqual(bad, [])
        # it did test: TLS 1.3 found, TLS 1.0 not offered
        ids = {x["id"]: x.get("finding", "") for x in findings}
        self.assertIn("offered", ids.get("TLS1_3", ""), findings)
        self.assertIn("not offered", ids.get("TLS1", ""), findings)
        for check in ("PFS", "secure_client_renego", "ROBOT", "SWEET32", "LUCKY13", "BEAST"):
            self.assertIn(check, ids, findings)


class AuthTest(unittest.TestCase):
    """AUTH only inside TLS by default, logins forgotten at STARTTLS,
    password hashing off the event loop, failed logins throttled."""

    def make_server(self, extra, users, aliases=None):
        cert, key = test_cert()
        srv = Server()
        path = os.path.join(srv.dir, "users")
        with open(path, "w") as f:
            f.write(users)
        if aliases is not None:
            with open(os.path.join(srv.dir, "aliases"), "w") as f:
                f.write(aliases)
            extra += "aliases_file = %s/aliases\n" % srv.dir
        with open(srv.conf, "a") as f:
            f.write("tls_cert_file = %s\ntls_key_file = %s\nusers_file = %s\n" % (cert, key, path) +
                    "relay_networks = 10.255.0.0/16\n" + extra)
        self.addCleanup(srv.cleanup)
        return srv.start()

    def test_auth_only_inside_tls_by_default(self):
        srv = self.make_server("", "carol@localhost:%s\n" % crypt.crypt("s3cret", "$6$saltsalt$"))
        c, lines = greet(srv.port)     # loopback, in clear
        self.assertFalse(any(l.startswith("AUTH") for l in lines), lines)
        code, lines = c.cmd("AUTH PLAIN " + base64.b64encode(b"\0carol@localhost\0s3cret").decode())
        self.assertEqual(code, 538)
        self.assertTrue(lines[0].startswith("5.7.11"))
        self.assertEqual(c.cmd("STARTTLS")[0], 220)
        c.starttls()
        code, lines = c.cmd("EHLO client.test")
        self.assertIn("AUTH PLAIN LOGIN", lines)
        self.assertEqual(c.cmd("AUTH PLAIN " + base64.b64encode(
            b"\0carol@localhost\0s3cret").decode())[0], 235)
        c.close()
        self.assertEqual(srv.stop(), 0)

    def test_starttls_forgets_login(self):
        srv = self.make_server("auth_plaintext_networks = 127.0.0.1\nlisten = 127.0.0.1:%d submission\n"
                               % free_port(), "carol@localhost:%s\n" % crypt.crypt("s3cret", "$6$saltsalt$"))
        sub = int([l for l in open(srv.conf) if "submission" in l][0].split(":")[1].split()[0])
        srv.wait_ready(sub)
        c, lines = greet(sub)
        self.assertIn("AUTH PLAIN LOGIN", lines)
        self.assertEqual(c.cmd("AUTH PLAIN " + base64.b64encode(
            b"\0carol@localhost\0s3cret").decode())[0], 235)
        self.assertEqual(c.cmd("STARTTLS")[0], 220)
        c.starttls()
        self.assertEqual(c.cmd("EHLO client.test")[0], 250)
        # RFC 3207 4.2: the login made in clear is gone
        self.assertEqual(c.cmd("MAIL FROM:<carol@localhost>")[0], 530)
        c.close()
        self.assertEqual(srv.stop(), 0)

    def test_sender_must_be_owned(self):
        """An authenticated user sends as its own address or an alias that
        leads to it; auth_any_sender names the accounts that may not."""
        h = crypt.crypt("pw", "$6$saltsalt$")
        srv = self.make_server("auth_plaintext_networks = 127.0.0.0/8\n"
                               "auth_any_sender = webapp@localhost\n",
                               "carol@localhost:%s\ndave@localhost:%s\nwebapp@localhost:%s\n" % (h, h, h),
                               "c@localhost: carol@localhost\n"
                               "team@localhost: c@localhost, dave@localhost\n")

        def login(user):
            c, _ = greet(srv.port)
            self.assertEqual(c.cmd("AUTH PLAIN " + base64.b64encode(
                b"\0" + user.encode() + b"\0pw").decode())[0], 235)
            return c

        c = login("carol@localhost")
        for sender, want in (("carol@localhost", 250), ("Carol@LocalHost", 250),
                             ('"carol"@localhost', 250), ('"carol "@localhost', 553),
                             ("c@localhost", 250), ("team@localhost", 250), ("", 250),
                             ("dave@localhost", 553), ("ceo@example.org", 553),
                             ("carol@localhost.example", 553)):
            code, lines = c.cmd("MAIL FROM:<%s>" % sender)
            self.assertEqual(code, want, (sender, lines))
            if code == 553:
                self.assertTrue(lines[0].startswith("5.7.1"), lines)
            c.cmd("RSET")
        c.close()
        c = login("webapp@localhost")
        self.assertEqual(c.cmd("MAIL FROM:<ceo@example.org>")[0], 250)
        c.close()
        # unauthenticated mail to this port is not concerned
        c, _ = greet(srv.port)
        self.assertEqual(c.cmd("MAIL FROM:<ceo@example.org>")[0], 250)
        c.close()
        self.assertEqual(srv.stop(), 0)

    def test_password_hash_off_the_event_loop(self):
        """One worker; a login with a costly hash (about 2 s) must not stall
        another session of that worker."""
        slow = crypt.crypt("s3cret", "$6$rounds=4000000$saltsalt$")
        srv = self.make_server("session_workers = 1\nauth_plaintext_networks = 127.0.0.0/8\n"
                               "max_junk_commands = 1000000\n",
                               "slow@localhost:%s\n" % slow)
        other, _ = greet(srv.port)
        login, _ = greet(srv.port)
        started = time.monotonic()
        login.send("AUTH PLAIN " + base64.b64encode(b"\0slow@localhost\0s3cret").decode() + "\r\n")
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("reply", login.reply()))
        t.start()
        worst = 0.0
        while t.is_alive() and time.monotonic() - started < 60 * SLOW:
            t0 = time.monotonic()
            self.assertEqual(other.cmd("NOOP")[0], 250)
            worst = max(worst, time.monotonic() - t0)
        t.join(60 * SLOW)
        took = time.monotonic() - started
        self.assertEqual(result["reply"][0], 235)
        self.assertGreater(took, 1.0)          # the hash was costly
        self.assertLess(worst, took / 4, (worst, took))
        other.close()
        login.close()
        self.assertEqual(srv.stop(), 0)

    def test_stop_while_a_password_is_checked(self):
        """SIGTERM while a costly hash runs off the loop, with a shorter
        shutdown_timeout: the job ends on its own, the daemon exits 0."""
        slow = crypt.crypt("s3cret", "$6$rounds=4000000$saltsalt$")
        srv = self.make_server("auth_plaintext_networks = 127.0.0.0/8\n", "slow@localhost:%s\n" % slow)
        srv.write_config(open(srv.conf).read().replace("shutdown_timeout = 10s",
                                                       "shutdown_timeout = 1s"))
        srv.signal(signal.SIGHUP)
        srv.wait_log("reloaded")
        c, _ = greet(srv.port)
        c.send("AUTH PLAIN " + base64.b64encode(b"\0slow@localhost\0s3cret").decode() + "\r\n")
        srv.wait_log("connect from")
        srv.signal(signal.SIGTERM)
        self.assertEqual(srv.stop(), 0)
        c.close()

    def test_failed_logins_throttled(self):
        srv = self.make_server("auth_plaintext_networks = 127.0.0.0/8\nauth_fail_delay = 1s\n"
                               "auth_fail_limit = 3\nauth_block_time = 1m\n",
                               "carol@localhost:%s\n" % crypt.crypt("s3cret", "$6$saltsalt$"))
        wrong = "AUTH PLAIN " + base64.b64encode(b"\0carol@localhost\0wrong").decode()
        c, _ = greet(srv.port)
        took = []
        for _ in range(2):
            t0 = time.monotonic()
            code, lines = c.cmd(wrong)
            took.append(time.monotonic() - t0)
            self.assertEqual(code, 535)
            self.assertTrue(lines[0].startswith("5.7.8"))
        self.assertGreater(took[0], 0.9)       # 1 s, then 2 s
        self.assertGreater(took[1], 1.9)
        code, lines = c.cmd(wrong)              # the third blocks
        self.assertEqual(code, 421)
        self.assertTrue(c.closed())
        # the block holds for new sessions, even with the right password
        c, _ = greet(srv.port)
        code, _ = c.cmd("AUTH PLAIN " + base64.b64encode(b"\0carol@localhost\0s3cret").decode())
        self.assertEqual(code, 421)
        c.close()
        log = srv.logtext()
        self.assertEqual(len(re.findall(r"auth failed: client=\[127\.0\.0\.1\] sasl_method=PLAIN "
                                        r"sasl_username=carol@localhost failures=\d", log)), 3, log)
        self.assertIn("auth blocked: client=[127.0.0.1]", log)
        self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    unittest.main()
