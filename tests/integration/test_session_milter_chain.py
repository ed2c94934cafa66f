"""Milters through the daemon, continued: two milters in order (the first
refusing means the second is never asked; the changes of both are made),
configured as one comma-separated value and as repeated lines; and every
failure of a milter (down, hanging past its timeout, disconnecting,
answering garbage) at CONNECT, MAIL, RCPT and the end of data, handled
by each default_action: accept (left out, mail flows), tempfail (451
4.7.1), reject (550 5.7.1), set per milter or by milter_default_action.
"""
import os
import struct
import tempfile
import time
import unittest

from harness import Client, Server, SLOW, dot_stuff, free_port, wait_for
from milter_peer import CLOSE, HANG, MilterPeer, packet, parse_connect, parse_strings, strings
from test_session_milter import current, header_names, headers_of, message, read_delivered


def local_of(data):
    return parse_strings(data)[0].strip("<>").split("@")[0]


def session(port, source=None, helo="client.test"):
    c = Client(port, source=source)
    c.local_port = c.sock.getsockname()[1]
    assert c.reply()[0] == 220
    if helo:
        code, lines = c.cmd("EHLO " + helo)
        assert code == 250, (code, lines)
    return c


def data(c, msg):
    code, text = c.cmd("DATA")
    if code != 354:
        return code, text[0]
    c.send(dot_stuff(msg) + b".\r\n")
    code, text = c.reply()
    return code, text[0]


def first_rcpt(data, conn):
    return packet("r") if local_of(data) == "firstno" else packet("c")


def first_eom(data, conn):
    hdrs = dict(headers_of(current(conn)))
    if hdrs.get("X-First-Eom") == "reject":
        return packet("r")
    return [packet("h", strings("X-First", "1")),
            packet("m", struct.pack(">I", 1) + strings("Subject", "changed by the first")),
            packet("c")]


def second_eom(data, conn):
    return [packet("h", strings("X-Second", "2")), packet("+", strings("<added@example.org>")),
            packet("c")]


class TwoMiltersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.first = MilterPeer(replies={"R": first_rcpt, "E": first_eom}).start()
        cls.second = MilterPeer(replies={"E": second_eom}, inet=True).start()
        base = "local_domains = example.org\nsession_workers = 1\n"
        cls.servers = [
            Server(base + "milters = %s, %s default_action=accept\n" % (
                cls.first.endpoint, cls.second.endpoint)).start(),
            Server(base + "milters = %s\nmilters = %s\n" % (
                cls.first.endpoint, cls.second.endpoint)).start()]

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers:
            s.cleanup()
        cls.first.stop()
        cls.second.stop()

    def conns(self, c):
        return [wait_for(lambda: p.conn_from_port(c.local_port), 10, "milter connection")
                for p in (self.first, self.second)]

    def test_first_refusal_stops_the_second(self):
        for srv in self.servers:
            with self.subTest(conf=srv.conf):
                c = session(srv.port)
                self.assertEqual(c.cmd("MAIL FROM:<a@example.net>")[0], 250)
                self.assertEqual(c.cmd("RCPT TO:<firstno@example.org>"),
                                 (550, ["5.7.1 Command rejected"]))
                self.assertEqual(c.cmd("RCPT TO:<two@example.org>")[0], 250)
                code, text = data(c, message("first eom", extra=b"X-First-Eom: reject\r\n"))
                self.assertEqual(code, 550, text)
                c.close()
                a, b = self.conns(c)
                wait_for(lambda: a.ended.is_set() and b.ended.is_set(), 20, "both to end")
                self.assertEqual([local_of(d) for cmd, d in a.packets if cmd == "R"],
                                 ["firstno", "two"])
                self.assertEqual([local_of(d) for cmd, d in b.packets if cmd == "R"], ["two"])
                self.assertIn("E", [cmd for cmd, _ in a.packets])
                self.assertNotIn("E", [cmd for cmd, _ in b.packets])
                self.assertEqual(srv.maildir_files("two@example.org"), [])

    def test_changes_of_both_in_order(self):
        for srv in self.servers:
            with self.subTest(conf=srv.conf):
                c = session(srv.port)
                self.assertEqual(c.cmd("MAIL FROM:<a@example.net>")[0], 250)
                self.assertEqual(c.cmd("RCPT TO:<one@example.org>")[0], 250)
                code, text = data(c, message("both change it"))
                self.assertEqual(code, 250, text)
                c.close()
                for addr in ("one@example.org", "added@example.org"):
                    msg = read_delivered(srv, addr, "<both.change.it@example.net>")
                    names = header_names(msg)
                    self.assertEqual(names[-2:], ["X-First", "X-Second"], names)
                    self.assertIn(b"\nSubject: changed by the first\n", msg)
                    self.assertIn(b"\nX-First: 1\nX-Second: 2\n", msg)


GARBAGE = packet("Z", b"not a milter reply")
FAILURES = {"hang": HANG, "close": CLOSE, "garbage": GARBAGE}
SOURCES = {"127.0.0.71": "hang", "127.0.0.72": "close", "127.0.0.73": "garbage"}
TIMEOUT = 1        # command_timeout
EOM_TIMEOUT = 2    # eom_timeout


def fail_connect(data, conn):
    return FAILURES.get(SOURCES.get(parse_connect(data)[3]), packet("c"))


def fail_by_local(suffix):
    def answer(data, conn):
        local = local_of(data)
        return FAILURES.get(local[:-len(suffix)], packet("c")) if local.endswith(suffix) \
            else packet("c")
    return answer


def fail_eom(data, conn):
    hdrs = dict(headers_of(current(conn)))
    return FAILURES.get(hdrs.get("X-Fail"), packet("c"))


class FailureBase:
    """One server per default action (ACTION), its milter failing on
    demand; WANT: what a failure answers (None: mail flows)."""

    ACTION = None
    WANT = None
    CONF = ""
    DOWN_CONF = ""

    @classmethod
    def setUpClass(cls):
        cls.peer = MilterPeer(replies={"C": fail_connect, "M": fail_by_local("-mail"),
                                       "R": fail_by_local("-rcpt"), "E": fail_eom}).start()
        cls.server = Server("local_domains = example.org\nsession_workers = 1\n" +
                            cls.CONF % {"milter": cls.peer.endpoint}).start()
        cls.tmp = tempfile.mkdtemp(prefix="ms-milterdown-")
        down = cls.DOWN_CONF % {"unix": "unix:" + os.path.join(cls.tmp, "none.sock"),
                                "inet": "inet:127.0.0.1:%d" % free_port()}
        cls.down = Server("local_domains = example.org\n" + down).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()
        cls.down.cleanup()
        cls.peer.stop()
        os.rmdir(cls.tmp)

    def check(self, got):
        """got: (code, text) of the command the failure answered."""
        if self.WANT is None:
            self.assertEqual(got[0], 250, got)
        else:
            self.assertEqual((got[0], got[1][:5]), self.WANT, got)

    def flows(self, server, token, addr="one@example.org"):
        if self.WANT is None:
            read_delivered(server, addr, token)

    def timed(self, mode, fn, timeout=TIMEOUT):
        t0 = time.monotonic()
        got = fn()
        took = time.monotonic() - t0
        if mode == "hang":
            self.assertGreater(took, timeout - 0.2, got)
        self.assertLess(took, timeout + 10 * SLOW, got)
        return got

    def transaction(self, c, rcpt, token):
        """The rest of a transaction that went on (accept)."""
        if rcpt:
            self.assertEqual(c.cmd("RCPT TO:<%s>" % rcpt)[0], 250)
        self.assertEqual(data(c, message(token))[0], 250)

    def test_down(self):
        c = session(self.down.port, helo=None)
        got = c.cmd("EHLO client.test")
        got = (got[0], got[1][-1])
        self.check(got)
        if self.WANT is None:
            self.assertEqual(c.cmd("MAIL FROM:<a@example.net>")[0], 250)
            self.transaction(c, "one@example.org", "milter down")
            self.flows(self.down, "milter down")
        else:
            # At CONNECT: it holds for the session.
            got = c.cmd("MAIL FROM:<a@example.net>")
            self.assertEqual((got[0], got[1][0][:5]), self.WANT)
            self.assertEqual(c.cmd("QUIT")[0], 221)
        c.close()

    def test_at_connect(self):
        for source, mode in SOURCES.items():
            with self.subTest(mode=mode):
                c = session(self.server.port, source=source, helo=None)
                code, text = self.timed(mode, lambda: c.cmd("EHLO client.test"))
                self.check((code, text[-1]))
                got = c.cmd("MAIL FROM:<a@example.net>")
                if self.WANT is None:
                    self.assertEqual(got[0], 250)
                    self.transaction(c, "one@example.org", "connect " + mode)
                    self.flows(self.server, "connect " + mode)
                else:
                    self.assertEqual((got[0], got[1][0][:5]), self.WANT)
                c.close()

    def test_at_mail(self):
        for mode in FAILURES:
            with self.subTest(mode=mode):
                c = session(self.server.port)
                code, text = self.timed(mode, lambda: c.cmd("MAIL FROM:<%s-mail@example.net>"
                                                            % mode))
                self.check((code, text[0]))
                if self.WANT is None:
                    self.transaction(c, "one@example.org", "mail " + mode)
                    self.flows(self.server, "mail " + mode)
                c.close()

    def test_at_rcpt(self):
        for mode in FAILURES:
            with self.subTest(mode=mode):
                c = session(self.server.port)
                self.assertEqual(c.cmd("MAIL FROM:<a@example.net>")[0], 250)
                code, text = self.timed(mode, lambda: c.cmd("RCPT TO:<%s-rcpt@example.org>"
                                                            % mode))
                self.check((code, text[0]))
                if self.WANT is None:
                    self.transaction(c, None, "rcpt " + mode)
                    self.flows(self.server, "rcpt " + mode, "%s-rcpt@example.org" % mode)
                c.close()

    def test_at_end_of_data(self):
        for mode in FAILURES:
            with self.subTest(mode=mode):
                c = session(self.server.port)
                self.assertEqual(c.cmd("MAIL FROM:<a@example.net>")[0], 250)
                self.assertEqual(c.cmd("RCPT TO:<one@example.org>")[0], 250)
                token = "eom " + mode
                msg = message(token, extra=b"X-Fail: " + mode.encode() + b"\r\n")
                got = self.timed(mode, lambda: data(c, msg), EOM_TIMEOUT)
                self.check(got)
                self.flows(self.server, token)
                if self.WANT is not None:
                    self.assertEqual(self.server.maildir_files("one@example.org"), [])
                c.close()


class AcceptFailureTest(FailureBase, unittest.TestCase):
    ACTION = "accept"
    WANT = None
    CONF = ("milters = %%(milter)s default_action=accept command_timeout=%ds "
            "eom_timeout=%ds\n" % (TIMEOUT, EOM_TIMEOUT))
    DOWN_CONF = "milter_default_action = accept\nmilters = %(unix)s\n"


class TempfailFailureTest(FailureBase, unittest.TestCase):
    ACTION = "tempfail"
    WANT = (451, "4.7.1")
    CONF = ("milter_command_timeout = %ds\nmilter_eom_timeout = %ds\n"
            "milters = %%(milter)s\n" % (TIMEOUT, EOM_TIMEOUT))
    DOWN_CONF = "milters = %(inet)s\n"


class RejectFailureTest(FailureBase, unittest.TestCase):
    ACTION = "reject"
    WANT = (550, "5.7.1")
    CONF = ("milter_command_timeout = %ds\nmilter_eom_timeout = %ds\n"
            "milter_default_action = accept\n"
            "milters = %%(milter)s default_action=reject\n" % (TIMEOUT, EOM_TIMEOUT))
    DOWN_CONF = "milters = %(unix)s default_action=reject connect_timeout=1s\n"


if __name__ == "__main__":
    unittest.main()
