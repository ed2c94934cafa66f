"""Message data streams into the queue as it arrives (DESIGN.md, the queue):
large messages over plain TCP, STARTTLS and smtps arrive byte-exact in the
Maildir; the daemon's memory stays bounded while several clients send large
messages slowly; a SIGKILL mid-message leaves nothing visible and the next
start sweeps what was staged; the global in-flight cap answers 451 4.3.2;
a message refused at its end leaves no record behind."""
import warnings
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import crypt
import base64
import json
import os
import socket
import ssl
import threading
import time
import unittest

from peers import Peer
from harness import SANITIZE, SLOW, Client, Server, dot_stuff, free_port, greet, test_cert, wait_for

MIB = 1 << 20


def big_message(size, tag):
    """About size bytes of CRLF text: headers, then numbered lines, some
    starting with a dot (dot-stuffing across record boundaries)."""
    head = b"From: a@example.org\r\nSubject: big %s\r\n\r\n" % tag.encode()
    parts, n, i = [head], len(head), 0
    while n < size:
        line = (b"." if i % 7 == 0 else b"") + (b"%s line %08d " % (tag.encode(), i)) + \
            b"abcdefghijklmnopqrstuvwxyz0123456789" * (i % 3 + 1) + b"\r\n"
        parts.append(line)
        n += len(line)
        i += 1
    return b"".join(parts)


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS", "RssAnon"):
                out[k] = int(v.split()[0])	# KiB
    return out


def stats(srv):
    return json.loads(srv.mailctl("--json", "stats").stdout)


def start_tls_client(port):
    c, lines = greet(port)
    assert "STARTTLS" in lines, lines
    assert c.cmd("STARTTLS")[0] == 220
    c.starttls()
    assert c.cmd("EHLO client.test")[0] == 250
    return c


def smtps_client(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = Client.__new__(Client)
    c.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW))
    c.buf = b""
    assert c.reply()[0] == 220
    assert c.cmd("EHLO client.test")[0] == 250
    return c


def send_data(c, rcpt, body, piece=256 * 1024, pause=0.0, sender="a@example.org"):
    """MAIL, RCPT, DATA and the body in pieces; returns the final reply."""
    assert c.cmd("MAIL FROM:<%s>" % sender)[0] == 250
    assert c.cmd("RCPT TO:<%s>" % rcpt)[0] == 250
    assert c.cmd("DATA")[0] == 354
    data = dot_stuff(body) + b".\r\n"
    for off in range(0, len(data), piece):
        c.send(data[off:off + piece])
        if pause:
            time.sleep(pause)	# a slow client, not a synchronisation
    return c.reply()


class StreamingTest(unittest.TestCase):
    """One daemon for the delivery and refusal tests."""

    @classmethod
    def setUpClass(cls):
        cert, key = test_cert()
        cls.smtps_port = free_port()
        cls.srv = Server("tls_cert_file = %s\ntls_key_file = %s\n"
                         "max_message_size = 24M\n" % (cert, key))
        users = os.path.join(cls.srv.dir, "users")
        with open(users, "w") as f:
            for u in ("alice", "bob", "carol", "dave", "erin"):
                f.write("%s@localhost:%s\n" % (u, crypt.crypt("s3cret", "$6$saltsalt$")))
        with open(cls.srv.conf, "a") as f:
            f.write("users_file = %s\nlisten = 127.0.0.1:%d smtps\n" % (users, cls.smtps_port))
        cls.srv.start()
        cls.srv.wait_ready(cls.smtps_port)

    @classmethod
    def tearDownClass(cls):
        code = cls.srv.stop()
        cls.srv.cleanup()
        assert code == 0, code

    def delivered(self, rcpt, tag):
        """The Maildir file of the message tagged tag, once there."""
        def find():
            for p in self.srv.maildir_files(rcpt):
                with open(p, "rb") as f:
                    if (b"Subject: big %s\n" % tag.encode()) in f.read(8192):
                        return p
            return None
        return wait_for(find, 60, "delivery of %s" % tag)

    def assert_exact(self, rcpt, tag, body):
        with open(self.delivered(rcpt, tag), "rb") as f:
            got = f.read()
        want = body.replace(b"\r\n", b"\n")
        self.assertTrue(got.endswith(want), "body differs (%d bytes, want %d)" % (len(got), len(want)))
        for line in got[:len(got) - len(want)].split(b"\n"):
            # only trace headers before what was sent
            self.assertTrue(line == b"" or line[:1] in b" \t" or
                            line.split(b":")[0] in (b"Return-Path", b"Delivered-To", b"Received"),
                            line[:200])

    def assert_queue_clean(self):
        def clean():
            st = stats(self.srv)
            return st["staged"] == 0 and st["body_records"] == 0 and st["messages"] == 0
        wait_for(clean, 30, "an empty queue: %r" % stats(self.srv))

    def test_large_plain(self):
        body = big_message(16 * MIB, "plain")
        c, _ = greet(self.srv.port)
        code, lines = send_data(c, "alice@localhost", body)
        c.close()
        self.assertEqual(code, 250, lines)
        self.assert_exact("alice@localhost", "plain", body)
        self.assert_queue_clean()

    def test_large_starttls(self):
        body = big_message(12 * MIB, "starttls")
        c = start_tls_client(self.srv.port)
        code, lines = send_data(c, "bob@localhost", body)
        c.close()
        self.assertEqual(code, 250, lines)
        self.assert_exact("bob@localhost", "starttls", body)
        self.assert_queue_clean()

    def test_large_smtps_submission_headers(self):
        # submission over implicit TLS, without Date and Message-ID: both
        # are added although the message is far larger than one record
        body = big_message(8 * MIB, "smtps").replace(b"From: a@example.org\r\n", b"")
        c = smtps_client(self.smtps_port)
        token = base64.b64encode(b"\0carol@localhost\0s3cret").decode()
        self.assertEqual(c.cmd("AUTH PLAIN " + token)[0], 235)
        code, lines = send_data(c, "carol@localhost", body, sender="carol@localhost")
        c.close()
        self.assertEqual(code, 250, lines)
        with open(self.delivered("carol@localhost", "smtps"), "rb") as f:
            got = f.read()
        head = got[:got.index(b"\n\n")]
        self.assertIn(b"\nDate: ", head)
        self.assertIn(b"\nMessage-ID: <", head)
        self.assertEqual(got.count(b"\nDate: "), 1)
        self.assertTrue(got.endswith(body[body.index(b"\r\n\r\n") + 4:].replace(b"\r\n", b"\n")))

    def test_bdat_in_1000_chunks(self):
        body = big_message(10 * MIB, "bdat")
        c, _ = greet(self.srv.port)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.org>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<dave@localhost>")[0], 250)
        step = (len(body) + 999) // 1000
        chunks = [body[i:i + step] for i in range(0, len(body), step)]
        self.assertEqual(len(chunks), 1000)
        for i, ch in enumerate(chunks):
            last = " LAST" if i == len(chunks) - 1 else ""
            c.send(b"BDAT %d%s\r\n" % (len(ch), last.encode()) + ch)
            code, lines = c.reply()
            self.assertEqual(code, 250, (i, lines))
        c.close()
        self.assert_exact("dave@localhost", "bdat", body)
        self.assert_queue_clean()

    def test_refused_at_end_leaves_nothing(self):
        base = stats(self.srv)
        big = big_message(4 * MIB, "refused")
        cases = [
            # too large: 552 after the end
            (big_message(25 * MIB, "toolarge"), 552),
            # a bare LF deep in the body
            (big + b"bare\nlf\r\n", 554),
            # a NUL deep in the body
            (big + b"nul\x00byte\r\n", 554),
            # a loop: too many Received fields, the body large
            (b"Received: from x\r\n" * 60 + big, 554),
        ]
        for body, want in cases:
            c, _ = greet(self.srv.port)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.org>")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<erin@localhost>")[0], 250)
            self.assertEqual(c.cmd("DATA")[0], 354)
            # raw: the bare LF must reach the server as sent
            data = body.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n"
            for off in range(0, len(data), 1 << 20):
                c.send(data[off:off + (1 << 20)])
            code, lines = c.reply()
            self.assertEqual(code // 100, want // 100, lines)
            self.assertEqual(c.cmd("NOOP")[0], 250)
            c.close()

        def nothing_left():
            st = stats(self.srv)
            return st["staged"] == 0 and st["body_records"] == 0 and st["messages"] == 0
        wait_for(nothing_left, 30, "no records left: %r" % stats(self.srv))
        self.assertEqual(self.srv.maildir_files("erin@localhost"), [])
        self.assertEqual(stats(self.srv)["received"], base["received"])


class MemoryTest(unittest.TestCase):
    def test_concurrent_slow_large_sends_stay_bounded(self):
        """6 clients send 16 MiB each, slowly, at once (96 MiB in flight
        with the old whole-message buffers); the daemon's peak resident
        memory grows by far less than that. Delivery is held (an
        unreachable route), so the queue's pages are never read in."""
        cert, key = test_cert()
        srv = Server("tls_cert_file = %s\ntls_key_file = %s\nmax_message_size = 24M\n"
                     "routes = hold.test=[127.0.0.1]:9\nretry_min = 1h\nretry_max = 2h\n"
                     % (cert, key))
        try:
            srv.start()
            pid = srv.proc.pid
            # warm up the threads and TLS, then reset the peak (clear_refs 5)
            c = start_tls_client(srv.port)
            self.assertEqual(send_data(c, "x@hold.test", big_message(256 * 1024, "warm"))[0], 250)
            c.close()
            with open("/proc/%d/clear_refs" % pid, "w") as f:
                f.write("5")
            before = proc_status(pid)
            peak_anon = [before["RssAnon"]]
            done = threading.Event()

            def sample():
                while not done.is_set():
                    try:
                        peak_anon[0] = max(peak_anon[0], proc_status(pid)["RssAnon"])
                    except (OSError, KeyError):
                        return
                    done.wait(0.05)
            codes, lock = [], threading.Lock()

            def sender(i):
                body = big_message(16 * MIB, "mem%d" % i)
                c = start_tls_client(srv.port) if i % 2 else greet(srv.port)[0]
                try:
                    code, _ = send_data(c, "x@hold.test", body, piece=128 * 1024, pause=0.01)
                finally:
                    c.close()
                with lock:
                    codes.append(code)
            sampler = threading.Thread(target=sample)
            sampler.start()
            threads = [threading.Thread(target=sender, args=(i,)) for i in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(300 * SLOW)
            done.set()
            sampler.join()
            after = proc_status(pid)
            self.assertEqual(codes, [250] * 6)
            grown_hwm = after["VmHWM"] - before["VmRSS"]
            grown_anon = peak_anon[0] - before["RssAnon"]
            print("\n  memory: VmRSS before %d KiB, VmHWM %d KiB (+%d), RssAnon peak +%d KiB"
                  % (before["VmRSS"], after["VmHWM"], grown_hwm, grown_anon))
            if not SANITIZE:	# a sanitizer's shadow memory grows with every byte touched
                self.assertLess(grown_hwm, 48 * 1024)
                self.assertLess(grown_anon, 48 * 1024)
            st = stats(srv)
            self.assertEqual(st["messages"], 7)
            self.assertEqual(st["staged"], 0)
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


class CrashTest(unittest.TestCase):
    def test_kill9_mid_message_then_sweep(self):
        srv = Server("max_message_size = 24M\n")
        try:
            srv.start()
            body = dot_stuff(big_message(20 * MIB, "crash"))
            c, _ = greet(srv.port)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.org>")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<alice@localhost>")[0], 250)
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send(body[:8 * MIB])
            wait_for(lambda: stats(srv)["staged"] >= 1, 30, "records staged")
            self.assertGreater(stats(srv)["body_records"], 10)
            srv.kill9()
            c.close()
            srv.start()
            srv.wait_log("1 message(s) left half received")
            st = stats(srv)
            self.assertEqual((st["staged"], st["body_records"], st["messages"]), (0, 0, 0))
            self.assertEqual(srv.maildir_files("alice@localhost"), [])
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


class InflightCapTest(unittest.TestCase):
    def test_cap_refuses_new_data_with_451(self):
        # 1 MiB holds the base buffers of 7 messages (2 x 68 KiB each)
        srv = Server("max_inflight_data = 1M\n")
        try:
            srv.start()
            open_ = []
            for i in range(7):
                c, _ = greet(srv.port)
                self.assertEqual(c.cmd("MAIL FROM:<a@example.org>")[0], 250)
                self.assertEqual(c.cmd("RCPT TO:<alice@localhost>")[0], 250)
                self.assertEqual(c.cmd("DATA")[0], 354, i)
                open_.append(c)
            c, _ = greet(srv.port)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.org>")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<alice@localhost>")[0], 250)
            code, lines = c.cmd("DATA")
            self.assertEqual(code, 451, lines)
            self.assertTrue(lines[0].startswith("4.3.2"), lines)
            # BDAT too: the chunk is read and refused, the session goes on
            c.send(b"BDAT 5 LAST\r\nhello")
            code, lines = c.reply()
            self.assertEqual(code, 451, lines)
            self.assertEqual(c.cmd("NOOP")[0], 250)
            srv.wait_log("max_inflight_data")
            # one message ends: room again
            first = open_.pop(0)
            first.send(b"Subject: s\r\n\r\nsmall\r\n.\r\n")
            self.assertEqual(first.reply()[0], 250)
            first.close()
            self.assertEqual(c.cmd("RSET")[0], 250)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.org>")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<alice@localhost>")[0], 250)
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send(b"Subject: s\r\n\r\nsmall\r\n.\r\n")
            self.assertEqual(c.reply()[0], 250)
            c.close()
            for o in open_:
                o.close()
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


class RelayStreamingTest(unittest.TestCase):
    """The relay client and RET=FULL bounces read a large body record by
    record: what the peer gets is byte-exact, and the bounce quotes the
    whole original."""

    def test_relay_and_full_bounce_of_large_messages(self):
        peer = Peer(rcpt={"bounce": "550 5.1.1 unknown"},
                    ehlo=["PIPELINING", "SIZE 52428800", "8BITMIME", "DSN",
                          "ENHANCEDSTATUSCODES"]).start()
        srv = Server("max_message_size = 24M\nroutes = far.test=[127.0.0.1]:%d\n"
                     "retry_min = 1h\nretry_max = 2h\n" % peer.port)
        try:
            srv.start()
            pid = srv.proc.pid
            # a first small message through each path: what the relay
            # client and the bounce set up once (TLS trust, DANE state,
            # the report and trace stores) is not counted
            c, _ = greet(srv.port)
            self.assertEqual(send_data(c, "known@far.test", b"Subject: warm\r\n\r\nx\r\n")[0], 250)
            self.assertEqual(c.cmd("MAIL FROM:<alice@localhost> RET=FULL")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<bounce@far.test>")[0], 250)
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send(b"Subject: warm bounce\r\n\r\nx\r\n.\r\n")
            self.assertEqual(c.reply()[0], 250)
            c.close()
            peer.wait_messages(1, 60 * SLOW)
            wait_for(lambda: srv.maildir_files("alice@localhost"), 60, "the first bounce")
            wait_for(lambda: stats(srv)["messages"] == 0, 30, "an empty queue")
            base_anon = proc_status(pid)["RssAnon"]
            peak, done = [base_anon], threading.Event()

            def sample():
                while not done.is_set():
                    try:
                        peak[0] = max(peak[0], proc_status(pid)["RssAnon"])
                    except (OSError, KeyError):
                        return
                    done.wait(0.02)
            sampler = threading.Thread(target=sample)
            sampler.start()
            body = big_message(12 * MIB, "relayed")
            c, _ = greet(srv.port)
            code, lines = send_data(c, "known@far.test", body)
            self.assertEqual(code, 250, lines)
            got = peer.wait_messages(2, 60 * SLOW)[1]
            self.assertEqual(got.rcpts, ["known@far.test"])
            self.assertTrue(got.data.endswith(body), len(got.data))
            self.assertTrue(got.data[:len(got.data) - len(body)].startswith(b"Received: "))
            # refused by the peer: the bounce to alice quotes it all
            orig = big_message(6 * MIB, "bounced")
            self.assertEqual(c.cmd("MAIL FROM:<alice@localhost> RET=FULL")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<bounce@far.test>")[0], 250)
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send(dot_stuff(orig) + b".\r\n")
            self.assertEqual(c.reply()[0], 250)
            c.close()
            files = wait_for(lambda: len(srv.maildir_files("alice@localhost")) >= 2 and
                             srv.maildir_files("alice@localhost"), 60, "the bounce")
            path = max(files, key=os.path.getsize)
            with open(path, "rb") as f:
                dsn = f.read()
            self.assertIn(b"message/delivery-status", dsn)
            self.assertIn(b"message/rfc822", dsn)
            self.assertIn(orig.replace(b"\r\n", b"\n"), dsn)
            wait_for(lambda: stats(srv)["messages"] == 0, 30, "an empty queue")
            done.set()
            sampler.join()
            # neither the relay client nor the bounce held a message whole
            print("\n  relay and bounce: RssAnon peak +%d KiB" % (peak[0] - base_anon))
            if not SANITIZE:
                self.assertLess(peak[0] - base_anon, 6 * 1024)
            self.assertEqual(stats(srv)["body_records"], 0)
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()
            peer.stop()


if __name__ == "__main__":
    unittest.main()
