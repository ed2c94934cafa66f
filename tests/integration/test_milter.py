"""The milter client (filter/milter*.c) against real filters: a test filter
on Debian's python3-milter, i.e. the real libmilter (every reply and every
modification; milter_pymilter.py), and a scripted filter on Python's
standard library for every failure: hangs, disconnects, garbage, bad
packets, replies out of place (milter_peer.py). Sessions are run by
tests/tools/filter_driver, which calls the chain as the SMTP session will.
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import unittest

import filter_driver
from filter_driver import message_file, run, session_script
from harness import free_port, wait_for, SLOW
from milter_peer import (CLOSE, HANG, MilterPeer, header_packet, optneg, packet,
                         parse_macros, strings)

HERE = os.path.dirname(os.path.abspath(__file__))
PYMILTER = os.path.join(HERE, "milter_pymilter.py")


def have_pymilter():
    if not os.path.exists(filter_driver.SYSTEM_PYTHON):
        return False
    return subprocess.run([filter_driver.SYSTEM_PYTHON, "-c", "import Milter"],
                          capture_output=True).returncode == 0


def msg(headers, body=b"hello\r\n"):
    h = b"".join(k.encode() + b": " + v.encode() + b"\r\n" for k, v in headers)
    return h + b"\r\n" + body


class PyMilter:
    """milter_pymilter.py on a Unix socket or a loopback port."""

    def __init__(self, mode="plain", inet=False):
        self.dir = tempfile.mkdtemp(prefix="ms-pymilter-")
        self.log = os.path.join(self.dir, "events.log")
        if inet:
            self.port = free_port()
            sock = "inet:%d@127.0.0.1" % self.port
            self.endpoint = "inet:127.0.0.1:%d" % self.port
        else:
            self.path = os.path.join(self.dir, "m.sock")
            sock = "unix:" + self.path
            self.endpoint = "unix:" + self.path
        self.inet = inet
        self.proc = subprocess.Popen([filter_driver.SYSTEM_PYTHON, PYMILTER, sock, self.log, mode],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("pymilter exited: %s" % self.proc.stderr.read())
            try:
                if self.inet:
                    socket.create_connection(("127.0.0.1", self.port), 1).close()
                else:
                    s = socket.socket(socket.AF_UNIX)
                    s.connect(self.path)
                    s.close()
                return True
            except OSError:
                return False
        wait_for(ready, 20, "pymilter to listen")

    def events(self):
        with open(self.log) as f:
            return [json.loads(l) for l in f]

    def mark(self):
        return len(self.events())

    def since(self, mark):
        return self.events()[mark:]

    def wait_event(self, mark, name):
        # 30 s: after a hang-eom the close comes only once its 10 s sleep ended
        return wait_for(lambda: [e for e in self.since(mark) if e["event"] == name],
                        30, "pymilter event " + name)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def events_named(events, name):
    return [e for e in events if e["event"] == name]


@unittest.skipUnless(have_pymilter(), "python3-milter is not installed")
class PyMilterTest(unittest.TestCase):
    """Against libmilter: what the filter sees, and every answer it gives."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ms-miltertest-")
        cls.m = PyMilter()

    @classmethod
    def tearDownClass(cls):
        cls.m.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def file(self, data):
        return message_file(data, self.tmp)

    def session(self, data, args=(), **kw):
        mark = self.m.mark()
        r = run("milter", list(args) + [self.m.endpoint], session_script(self.file(data), **kw))
        self.m.wait_event(mark, "close")
        return r, self.m.since(mark)

    def test_clean_message_what_the_filter_sees(self):
        body = b"line one\r\n.dot line\r\n\r\nlast\r\n"
        data = (b"From: Sender <sender@example.org>\r\n"
                b"Subject: folded\r\n\tsecond line\r\n"
                b"X-Spaces:   three spaces\r\n"
                b"\r\n" + body)
        r, ev = self.session(data, macros={"{auth_authen}": "alice", "{auth_type}": "PLAIN",
                                           "{tls_version}": "TLSv1.3", "{cipher}": "AES256"},
                             piece=3)
        self.assertEqual(r.stage("eom")["action"], "accept")
        self.assertEqual(r.stage("eom")["mods"], [])
        conn = events_named(ev, "connect")[0]
        self.assertEqual(conn["hostname"], "client.example")
        self.assertEqual(conn["addr"], "192.0.2.1")
        self.assertEqual(conn["port"], 4321)
        self.assertEqual(conn["family"], socket.AF_INET)
        for k, v in {"j": "mx.test", "{daemon_name}": "mailserver",
                     "{client_addr}": "192.0.2.1", "{client_name}": "client.example",
                     "{client_port}": "4321", "_": "client.example [192.0.2.1]"}.items():
            self.assertEqual(conn["macros"].get(k), v, k)
        helo = events_named(ev, "helo")[0]
        self.assertEqual(helo["name"], "client.example")
        self.assertEqual(helo["macros"], {"{tls_version}": "TLSv1.3", "{cipher}": "AES256"})
        mail = events_named(ev, "mail")[0]
        self.assertEqual(mail["addr"], "<sender@example.org>")
        self.assertEqual(mail["params"], ["SIZE=1000"])
        self.assertEqual(mail["macros"], {"i": "4F2A1B3C5D6E7", "{auth_authen}": "alice",
                                          "{auth_type}": "PLAIN",
                                          "{mail_addr}": "sender@example.org"})
        rcpt = events_named(ev, "rcpt")[0]
        self.assertEqual(rcpt["addr"], "<rcpt@example.org>")
        self.assertEqual(rcpt["macros"]["{rcpt_addr}"], "rcpt@example.org")
        self.assertEqual(events_named(ev, "data")[0]["macros"], {"i": "4F2A1B3C5D6E7"})
        headers = [(e["name"], e["value"]) for e in events_named(ev, "header")]
        self.assertEqual(headers, [("From", "Sender <sender@example.org>"),
                                   ("Subject", "folded\n\tsecond line"),
                                   ("X-Spaces", "  three spaces")])
        self.assertEqual(len(events_named(ev, "eoh")), 1)
        self.assertEqual(sum(e["length"] for e in events_named(ev, "body")), len(body))
        self.assertEqual(events_named(ev, "eom")[0]["macros"], {"i": "4F2A1B3C5D6E7"})

    def test_every_modification(self):
        actions = ["add-header", "insert-header", "change-header", "delete-header",
                   "folded-header", "replace-body", "chgfrom", "addrcpt", "addrcpt-par",
                   "delrcpt", "quarantine"]
        data = msg([("Subject", "original"), ("X-Delete-Me", "bye")] +
                   [("X-Test-Action", a) for a in actions])
        r, ev = self.session(data)
        eom = r.stage("eom")
        self.assertEqual(eom["action"], "accept")
        got = [(m["kind"], m["index"], m["name"], m["value"], m["addr"], m["args"], m["text"])
               for m in eom["mods"]]
        self.assertEqual(got, [
            ("add_header", 0, "X-Added", " yes", None, None, None),
            ("insert_header", 0, "X-Inserted", " at the top", None, None, None),
            ("change_header", 1, "Subject", " changed by milter", None, None, None),
            ("delete_header", 1, "X-Delete-Me", None, None, None, None),
            ("add_header", 0, "X-Folded", " line one\r\n\tline two", None, None, None),
            ("replace_body", 0, None, None, None, None, None),
            ("change_from", 0, None, None, "new-sender@example.org", "BODY=8BITMIME", None),
            ("add_rcpt", 0, None, None, "added@example.org", None, None),
            ("add_rcpt", 0, None, None, "added2@example.org", "NOTIFY=NEVER", None),
            ("delete_rcpt", 0, None, None, "victim@example.org", None, None),
            ("quarantine", 0, None, None, None, None, "held for review"),
        ])
        self.assertEqual(eom["body"], "replaced body\r\n")
        self.assertEqual(eom["quarantine"], "held for review")
        # The header section with the changes carried out, as the
        # session will queue it.
        self.assertEqual(eom["applied"],
                         "X-Inserted: at the top\r\nSubject: changed by milter\r\n" +
                         "".join("X-Test-Action: %s\r\n" % a for a in actions) +
                         "X-Added: yes\r\nX-Folded: line one\r\n\tline two\r\n")

    def test_big_body_in_chunks_and_replaced(self):
        body = b"".join(b"%06d abcdefghijklmnopqrstuvwxyz\r\n" % i for i in range(10000))
        r, ev = self.session(msg([("X-Test-Action", "big-body")], body), piece=70000)
        chunks = [e["length"] for e in events_named(ev, "body")]
        self.assertGreater(len(chunks), 4)
        self.assertTrue(all(c <= 65535 for c in chunks), chunks)
        self.assertEqual(sum(chunks), len(body))
        eom = r.stage("eom")
        self.assertEqual(eom["action"], "accept")
        self.assertEqual(eom["body"], ("0123456789" * 7 + "\r\n") * 3000)

    def test_connect_answers_hold_for_the_session(self):
        for addr, action, reply in (("192.0.2.66", "reject", "550 5.7.1 Command rejected"),
                                    ("192.0.2.67", "tempfail",
                                     "451 4.7.1 Service unavailable - try again later")):
            r, _ = self.session(msg([("Subject", "x")]), addr=addr)
            for stage in ("connect", "helo", "mail", "rcpt", "data", "eom"):
                self.assertEqual(r.stage(stage)["action"], action, (addr, stage))
                self.assertEqual(r.stage(stage)["reply"], reply)
        r, ev = self.session(msg([("Subject", "x")]), addr="192.0.2.68")
        self.assertEqual(r.stage("connect")["action"], "accept")
        self.assertEqual(r.stage("mail")["action"], "accept")
        self.assertEqual(r.stage("eom")["action"], "accept")
        self.assertEqual(events_named(ev, "mail"), [])

    def test_helo_and_mail_rejects(self):
        r, _ = self.session(msg([("Subject", "x")]), helo="reject.example")
        self.assertEqual(r.stage("helo")["action"], "reject")
        self.assertEqual(r.stage("mail")["action"], "reject")
        r, ev = self.session(msg([("Subject", "x")]), sender="reject-mail@example.org")
        self.assertEqual(r.stage("mail")["action"], "reject")
        self.assertEqual(r.stage("mail")["reply"], "553 5.7.1 sender refused by test milter")
        self.assertEqual(events_named(ev, "rcpt"), [])

    def test_recipient_answers(self):
        r, ev = self.session(msg([("Subject", "x")]), rcpts=(
            "reject@example.org", "tempfail@example.org", "custom@example.org",
            "ok@example.org"))
        self.assertEqual(r.stage("rcpt", 0)["action"], "reject")
        self.assertEqual(r.stage("rcpt", 0)["reply"], "550 5.7.1 Command rejected")
        self.assertEqual(r.stage("rcpt", 1)["action"], "tempfail")
        self.assertEqual(r.stage("rcpt", 2)["action"], "reject")
        self.assertEqual(r.stage("rcpt", 2)["reply"],
                         "550-5.7.1 first line\r\n550 5.7.1 second 100% line")
        self.assertEqual(r.stage("rcpt", 3)["action"], "continue")
        self.assertEqual(r.stage("eom")["action"], "accept")
        self.assertEqual(len(events_named(ev, "eom")), 1)

    def test_discard_and_accept_at_rcpt(self):
        r, ev = self.session(msg([("Subject", "x")]), rcpts=("discard@example.org",
                                                            "later@example.org"))
        self.assertEqual(r.stage("rcpt", 0)["action"], "discard")
        self.assertEqual(r.stage("rcpt", 1)["action"], "discard")
        self.assertEqual(r.stage("eom")["action"], "discard")
        self.assertEqual(events_named(ev, "header"), [])
        r, ev = self.session(msg([("Subject", "x")]), rcpts=("accept@example.org",))
        self.assertEqual(r.stage("rcpt")["action"], "accept")
        self.assertEqual(r.stage("eom")["action"], "accept")
        self.assertEqual(events_named(ev, "data"), [])

    def test_reject_in_header_then_next_transaction(self):
        bad = self.file(msg([("X-Reject-Header", "yes"), ("Subject", "x")]))
        good = self.file(msg([("Subject", "second"), ("X-Test-Action", "add-header")]))
        mark = self.m.mark()
        script = session_script(bad) + ["mail next@example.org", "rcpt r@example.org",
                                         "data", "message %s 5" % good, "eom"]
        r = run("milter", [self.m.endpoint], script)
        self.m.wait_event(mark, "close")
        self.assertEqual(r.stage("message", 0)["action"], "reject")
        self.assertEqual(r.stage("eom", 0)["action"], "reject")
        self.assertIsNone(r.stage("eom", 0)["mods"])
        self.assertEqual(r.stage("eom", 1)["action"], "accept")
        self.assertEqual([m["name"] for m in r.stage("eom", 1)["mods"]], ["X-Added"])
        ev = self.m.since(mark)
        self.assertEqual([e["name"] for e in events_named(ev, "header")],
                         ["X-Reject-Header", "Subject", "X-Test-Action"])

    def test_body_reject_and_skip(self):
        r, _ = self.session(msg([("Subject", "x")], b"ok\r\nREJECT-BODY\r\n"))
        self.assertEqual(r.stage("eom")["action"], "reject")
        body = b"SKIP-BODY\r\n" + b"x" * 200000 + b"\r\n"
        r, ev = self.session(msg([("Subject", "x")], body), piece=65536)
        self.assertEqual(r.stage("eom")["action"], "accept")
        self.assertEqual(len(events_named(ev, "body")), 1)
        self.assertEqual(events_named(ev, "eom")[0]["body_chunks"], 1)

    def test_eom_answers(self):
        r, _ = self.session(msg([("X-Test-Action", "add-header"), ("X-Test-Action", "reject-eom")]))
        eom = r.stage("eom")
        self.assertEqual(eom["action"], "reject")
        self.assertEqual(eom["reply"], "554-5.7.0 message refused\r\n554 5.7.0 by the test milter")
        self.assertIsNone(eom["mods"])
        r, _ = self.session(msg([("X-Test-Action", "tempfail-eom")]))
        self.assertEqual(r.stage("eom")["action"], "tempfail")
        r, _ = self.session(msg([("X-Test-Action", "discard-eom")]))
        self.assertEqual(r.stage("eom")["action"], "discard")

    def test_progress_resets_the_timeout(self):
        # 3 x 0.6 s of work (1.8 s in all) with a 1.5 s end-of-message
        # timeout: each gap leaves 0.9 s for a loaded machine.
        r, _ = self.session(msg([("X-Test-Action", "progress"), ("X-Test-Action", "add-header")]),
                            args=["--timeouts", "5000,5000,%d" % (1500 * SLOW)])
        self.assertEqual(r.stage("eom")["action"], "accept")
        self.assertEqual(r.stage("eom")["default"], 0)
        self.assertEqual([m["name"] for m in r.stage("eom")["mods"]], ["X-Added"])

    def test_hang_at_eom_times_out_to_default(self):
        r, _ = self.session(msg([("X-Test-Action", "add-header"), ("X-Test-Action", "hang-eom")]),
                            args=["--timeouts", "5000,5000,1000"])
        eom = r.stage("eom")
        self.assertEqual(eom["action"], "tempfail")
        self.assertEqual(eom["default"], 1)
        self.assertEqual(eom["reply"], "451 4.7.1 Service unavailable - try again later")
        self.assertLess(r.elapsed, 8 * SLOW)
        self.assertIn("timed out", r.stderr)

    def test_abort_then_new_transaction(self):
        mark = self.m.mark()
        f = self.file(msg([("Subject", "x")]))
        r = run("milter", [self.m.endpoint], [
            "connect - 192.0.2.1 25 4", "helo h.example", "mail a@example.org",
            "rcpt b@example.org", "abort", "mail c@example.org", "rcpt d@example.org",
            "data", "message %s" % f, "eom"])
        self.m.wait_event(mark, "close")
        self.assertEqual(r.stage("eom")["action"], "accept")
        ev = self.m.since(mark)
        self.assertEqual([e["event"] for e in ev if e["event"] in ("mail", "rcpt", "abort")],
                         ["mail", "rcpt", "abort", "mail", "rcpt"])
        # No reverse name: libmilter gets the address in brackets.
        self.assertEqual(events_named(ev, "connect")[0]["hostname"], "[192.0.2.1]")

    def test_two_milters_in_order(self):
        second = PyMilter()
        try:
            f = self.file(msg([("X-Test-Action", "add-header")]))
            mark1, mark2 = self.m.mark(), second.mark()
            r = run("milter", [self.m.endpoint, second.endpoint],
                    session_script(f, rcpts=("reject@example.org", "ok@example.org")))
            self.m.wait_event(mark1, "close")
            second.wait_event(mark2, "close")
            self.assertEqual(r.stage("rcpt", 0)["action"], "reject")
            self.assertEqual(r.stage("rcpt", 0)["milter"], self.m.endpoint)
            eom = r.stage("eom")
            self.assertEqual([(m["milter"], m["name"]) for m in eom["mods"]],
                             [(0, "X-Added"), (1, "X-Added")])
            # The first milter refused the first recipient: the second never saw it.
            self.assertEqual([e["addr"] for e in events_named(second.since(mark2), "rcpt")],
                             ["<ok@example.org>"])
        finally:
            second.stop()


@unittest.skipUnless(have_pymilter(), "python3-milter is not installed")
class QuietPyMilterTest(unittest.TestCase):
    """libmilter asking for fewer steps, no replies, its own macro lists,
    leading spaces and rejected recipients, over TCP."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ms-miltertest-")
        cls.m = PyMilter(mode="quiet", inet=True)

    @classmethod
    def tearDownClass(cls):
        cls.m.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_negotiated_steps_are_honoured(self):
        f = message_file(msg([("Subject", "x"), ("X-Test-Action", "folded-header")]), self.tmp)
        mark = self.m.mark()
        script = session_script(f)
        script.insert(-4, "rcpt_rejected nobody@example.org")
        script.append("negotiated")
        r = run("milter", [self.m.endpoint], script)
        self.m.wait_event(mark, "close")
        neg = r.stage("negotiated")
        for bit in (0x2, 0x40, 0x80, 0x80000, 0x100000, 0x800):
            self.assertTrue(neg["steps"] & bit, hex(bit))
        ev = self.m.since(mark)
        self.assertEqual(events_named(ev, "helo"), [])
        self.assertEqual(events_named(ev, "eoh"), [])
        self.assertEqual(events_named(ev, "connect")[0]["macros"],
                         {"{client_addr}": "192.0.2.1", "j": "mx.test"})
        self.assertEqual(events_named(ev, "mail")[0]["macros"],
                         {"{mail_addr}": "sender@example.org"})
        self.assertEqual([e["value"] for e in events_named(ev, "header")], [" x", " folded-header"])
        rejected = [e for e in events_named(ev, "rcpt") if e["addr"] == "<nobody@example.org>"]
        self.assertEqual(rejected[0]["macros"].get("{rcpt_mailer}"), "error")
        eom = r.stage("eom")
        self.assertEqual(eom["action"], "accept")
        # With SMFIP_HDR_LEADSPC the value is taken as sent: no space added.
        self.assertEqual(eom["mods"][0]["value"], "line one\r\n\tline two")


class PeerTest(unittest.TestCase):
    """Failures and protocol details against a scripted filter."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ms-miltertest-")
        self.peers = []

    def tearDown(self):
        for p in self.peers:
            p.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def peer(self, **kw):
        p = MilterPeer(**kw).start()
        self.peers.append(p)
        return p

    def session(self, peer_or_endpoint, data=None, args=(), **kw):
        ep = peer_or_endpoint if isinstance(peer_or_endpoint, str) else peer_or_endpoint.endpoint
        f = message_file(data or msg([("Subject", "x")]), self.tmp)
        return run("milter", list(args) + [ep], session_script(f, **kw))

    def quit_seen(self, p):
        """Waits until the peer has read the QUIT the driver sent last."""
        wait_for(lambda: "Q" in p.commands(), 10, "QUIT at the peer")

    def assert_default(self, r, stage, action="tempfail"):
        v = r.stage(stage)
        self.assertEqual(v["action"], action, r.stdout)
        self.assertEqual(v["default"], 1 if action != "continue" else 0)

    def test_filter_down_means_default_action(self):
        path = os.path.join(self.tmp, "nothing.sock")
        for default, action, reply in (
                ("tempfail", "tempfail", "451 4.7.1 Service unavailable - try again later"),
                ("reject", "reject", "550 5.7.1 Service unavailable"),
                ("accept", "accept", "")):
            r = self.session("unix:" + path, args=["--default", default])
            self.assertEqual(r.stage("connect")["action"], action)
            self.assertEqual(r.stage("connect")["reply"], reply)
            self.assertEqual(r.stage("eom")["action"], action)
            self.assertIn("connect", r.stderr)
        port = free_port()
        r = self.session("inet:127.0.0.1:%d" % port, args=["--default", "reject"])
        self.assertEqual(r.stage("mail")["action"], "reject")
        self.assertIn("Connection refused", r.stderr)

    def test_garbage_and_bad_packets(self):
        cases = {
            "text instead of packets": {"C": [b"hello, this is not milter\r\n"]},
            "zero length": {"C": [b"\0\0\0\0"]},
            "length over 1 MiB": {"H": [struct.pack(">I", 0x7FFFFFFF) + b"c"]},
            "unknown reply": {"M": [packet("Z")]},
            "continue with data": {"R": [packet("c", b"junk")]},
            "cut off then closed": {"T": [struct.pack(">I", 100) + b"h" + b"x" * 10, CLOSE]},
            "header mod before end": {"R": [header_packet("h", "X-A", "b"), packet("c")]},
            "string without NUL": {"E": [packet("h", b"X-A\0no-nul")]},
            "bad reply code": {"R": [packet("y", strings("250 ok"))]},
            "reply class mismatch": {"R": [packet("y", strings("550 4.7.1 mismatch"))]},
            "control byte in reply": {"R": [packet("y", strings("550 5.7.1 bell\x07"))]},
            "header name with colon": {"E": [header_packet("h", "X:A", "b"), packet("a")]},
            "header value starting a header": {"E": [header_packet("h", "X-A", "b\r\nX-B: c"),
                                                     packet("a")]},
            "header value ending the header": {"E": [header_packet("h", "X-A", "b\n"), packet("a")]},
            "discard at connect": {"C": [packet("d")]},
            "skip outside the body": {"R": [packet("s")]},
            "closed at rcpt": {"R": CLOSE},
        }
        for name, replies in cases.items():
            with self.subTest(name):
                p = self.peer(replies=replies)
                r = self.session(p, args=["--timeouts", "2000,2000,2000"])
                self.assertEqual(r.stage("eom")["action"], "tempfail", (name, r.stdout))
                self.assertEqual(r.stage("eom")["default"], 1)
                self.assertIn("milter unix:", r.stderr)
                self.assertLess(r.elapsed, 10 * SLOW)

    def test_garbage_with_default_accept_leaves_the_filter_out(self):
        p = self.peer(replies={"M": [b"garbage!"]})
        r = self.session(p, args=["--default", "accept"])
        self.assertEqual(r.stage("mail")["action"], "accept")
        self.assertEqual(r.stage("eom")["action"], "accept")
        self.assertEqual(r.stage("eom")["mods"], [])

    def test_negotiation_failures(self):
        for name, reply in (("version 7", optneg(version=7)),
                            ("version 1", optneg(version=1)),
                            ("unknown actions", optneg(actions=0x3FF)),
                            ("short", packet("O", b"\0\0\0\6")),
                            ("not optneg", packet("c")),
                            ("hang", HANG), ("close", CLOSE)):
            with self.subTest(name):
                p = self.peer(optneg_reply=reply)
                r = self.session(p, args=["--timeouts", "1000,1000,1000", "--default", "reject"])
                self.assertEqual(r.stage("connect")["action"], "reject", name)
                self.assertEqual(r.stage("connect")["default"], 1)
                self.assertLess(r.elapsed, 6 * SLOW)

    def test_hangs_time_out(self):
        for cmd in ("C", "H", "M", "R", "T", "L", "N", "B", "E"):
            with self.subTest(cmd):
                p = self.peer(replies={cmd: HANG})
                t0 = time.monotonic()
                r = self.session(p, args=["--timeouts", "500,500,500"])
                self.assertEqual(r.stage("eom")["action"], "tempfail")
                self.assertIn("timed out", r.stderr)
                self.assertLess(time.monotonic() - t0, 5 * SLOW)

    def test_unnegotiated_modification_fails(self):
        p = self.peer(actions=0x1FF & ~0x1, replies={"E": [header_packet("h", "X-A", "b"),
                                                          packet("a")]})
        r = self.session(p)
        self.assertEqual(r.stage("eom")["action"], "tempfail")
        self.assertIn("did not negotiate", r.stderr)

    def test_failure_at_eom_drops_that_filters_changes(self):
        ok = self.peer(replies={"E": [header_packet("h", "X-First", "1"), packet("a")]})
        bad = self.peer(replies={"E": [header_packet("h", "X-Second", "2"),
                                       packet("b", b"half a bo"), b"junk"]})
        f = message_file(msg([("Subject", "x")]), self.tmp)
        r = run("milter", [ok.endpoint, "--default", "accept", bad.endpoint], session_script(f))
        eom = r.stage("eom")
        self.assertEqual(eom["action"], "accept")
        self.assertEqual([m["name"] for m in eom["mods"]], ["X-First"])
        self.assertNotIn("body", eom)

    def test_what_goes_on_the_wire(self):
        p = self.peer()
        body = b"a" * 70000 + b"\r\n" + b"b" * 70000 + b"\r\n"
        data = b"Subject:  two spaces\r\nX-Fold: one\r\n two\r\n\r\n" + body
        r = self.session(p, data, macros={"{auth_authen}": "bob"}, piece=999)
        self.assertEqual(r.stage("eom")["action"], "accept")
        self.quit_seen(p)
        cmds = p.commands()
        self.assertEqual(cmds[0], "O")
        neg = p.packets_of("O")[0]
        self.assertEqual(struct.unpack(">III", neg), (6, 0x1FF, 0x1FFFFF))
        self.assertEqual([c for c in cmds if c not in "DB"],
                         ["O", "C", "H", "M", "R", "T", "L", "L", "N", "E", "Q"])
        conn = p.packets_of("C")[0]
        self.assertEqual(conn, b"client.example\0" + b"4" + struct.pack(">H", 4321) + b"192.0.2.1\0")
        self.assertEqual(p.packets_of("M")[0], b"<sender@example.org>\0SIZE=1000\0")
        self.assertEqual(p.packets_of("L"), [b"Subject\0 two spaces\0", b"X-Fold\0one\n two\0"])
        chunks = p.packets_of("B")
        self.assertTrue(all(len(c) <= 65535 for c in chunks))
        self.assertEqual(b"".join(chunks), body)
        macros = [parse_macros(d) for d in p.packets_of("D")]
        stages = {s: m for s, m in macros}
        self.assertEqual(sorted(stages), ["C", "E", "M", "N", "R", "T"])
        self.assertEqual(stages["C"]["{client_port}"], "4321")
        self.assertEqual(stages["M"]["{auth_authen}"], "bob")
        self.assertEqual(stages["R"]["{rcpt_addr}"], "rcpt@example.org")
        # Macros come right before their command.
        for stage in "CMRTNE":
            i = cmds.index(stage)
            self.assertEqual(cmds[i - 1], "D", stage)

    def test_skipped_steps_and_no_replies(self):
        # Steps not wanted are not sent; replies it will not send are not
        # waited for (the peer sends none: waiting would time out).
        steps = 0x1 | 0x2 | 0x20 | 0x40 | 0x4000 | 0x8000 | 0x10000 | 0x80000
        p = self.peer(steps=steps)
        r = self.session(p, args=["--timeouts", "2000,2000,2000"])
        self.assertEqual(r.stage("eom")["action"], "accept")
        self.quit_seen(p)
        self.assertEqual([c for c in p.commands() if c != "D"], ["O", "M", "R", "T", "B", "E", "Q"])

    def test_old_protocol_version(self):
        # Version 2 knows no DATA and no unknown commands.
        p = self.peer(version=2, actions=0x1F)
        f = message_file(msg([("Subject", "x")]), self.tmp)
        script = session_script(f)
        script.insert(-3, "unknown XYZZY")
        r = run("milter", [p.endpoint], script)
        self.assertEqual(r.stage("eom")["action"], "accept")
        self.quit_seen(p)
        self.assertNotIn("T", p.commands())
        self.assertNotIn("U", p.commands())

    def test_macro_lists_asked_for(self):
        p = self.peer(macros={0: "{client_addr}", 2: "{auth_type} i", 5: "{nonexistent}"})
        r = self.session(p, macros={"{auth_type}": "LOGIN", "{auth_authen}": "x"})
        self.assertEqual(r.stage("eom")["action"], "accept")
        self.quit_seen(p)
        stages = dict(parse_macros(d) for d in p.packets_of("D"))
        self.assertEqual(stages["C"], {"{client_addr}": "192.0.2.1"})
        self.assertEqual(stages["M"], {"{auth_type}": "LOGIN", "i": "4F2A1B3C5D6E7"})
        self.assertNotIn("E", stages)

    def test_replies_from_the_peer(self):
        cases = [
            ({"R": [packet("y", strings("550-rejected %% here\r\n550 second"))]}, "rcpt",
             "reject", "550-5.7.1 rejected % here\r\n550 5.7.1 second"),
            ({"M": [packet("y", strings("452 4.3.1 full"))]}, "mail", "tempfail",
             "452 4.3.1 full"),
            ({"T": [packet("y", strings("421 4.7.0 bye"))]}, "data", "shutdown",
             "421 4.7.0 bye"),
            ({"H": [packet("4")]}, "helo", "shutdown",
             "421 4.7.0 Service unavailable - closing connection"),
            ({"E": [packet("p"), packet("p"), packet("q", strings("spam")), packet("c")]},
             "eom", "accept", ""),
        ]
        for replies, stage, action, reply in cases:
            with self.subTest(stage):
                p = self.peer(replies=replies)
                r = self.session(p)
                self.assertEqual(r.stage(stage)["action"], action)
                self.assertEqual(r.stage(stage)["reply"], reply)
                self.assertEqual(r.stage(stage)["default"], 0)

    def test_skip_in_body(self):
        p = self.peer(replies={"B": [packet("s")]})
        body = b"x" * 300000 + b"\r\n"
        r = self.session(p, msg([("Subject", "x")], body), piece=100000)
        self.assertEqual(r.stage("eom")["action"], "accept")
        self.quit_seen(p)
        self.assertEqual(p.commands().count("B"), 1)


if __name__ == "__main__":
    unittest.main()
