"""The message trace (`mailctl trace ID [--json]`) of a real daemon fed
by smtplib over STARTTLS: the connection, HELO, TLS, MAIL, each
recipient, a hold rule, the commit, every delivery attempt, mailctl's
own changes and the removal, in time order, still there after the
message left the queue and after a restart; the decisions made on the
way (a recipient refused, a policy service's answers) and the TLS of a
delivery to a peer over STARTTLS. And the daemon's sd_notify messages
(READY=1, RELOADING=1, STOPPING=1) to a $NOTIFY_SOCKET."""
import json
import os
import shutil
import signal
import smtplib
import socket
import ssl
import tempfile
import unittest

from harness import SLOW, Server, free_port, test_cert, wait_for
from peers import Peer, make_cert
from ops import parse, scrape, value
from policy_peers import PolicyPeer


def kinds(trace):
    return [e["kind"] for e in trace["events"]]


class TraceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cert, key = test_cert()
        cls.closed = free_port()
        cls.srv = Server("tls_cert_file = %s\ntls_key_file = %s\n" % (cert, key) +
                         "routes = defer.test=[127.0.0.1]:%d\n" % cls.closed +
                         "retry_min = 1h\nretry_max = 2h\n"
                         "hold_recipients = held@localhost\n"
                         "trace_retention = 1h\n").start()

    @classmethod
    def tearDownClass(cls):
        try:
            assert cls.srv.stop() == 0
        finally:
            cls.srv.cleanup()

    def send(self, rcpts, sender="sender@example.org"):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", self.srv.port, timeout=10 * SLOW) as c:
            c.ehlo("trace-client.test")
            c.starttls(context=ctx)
            c.ehlo("trace-client.test")
            c.mail(sender)
            for r in rcpts:
                self.assertEqual(c.rcpt(r)[0], 250)
            code, reply = c.data(b"Subject: traced\r\n\r\nbody\r\n")
            self.assertEqual(code, 250)
            return reply.decode().split()[-1]

    def trace(self, qid):
        """The trace of qid; no events while nothing is written yet (the
        writer commits about once a second)."""
        r = self.srv.mailctl("--json", "trace", qid, check=False)
        if r.returncode == 1 and "no trace" in r.stderr:
            return {"id": qid, "events": []}
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_delivered_and_deferred_then_deleted(self):
        srv = self.srv
        qid = self.send(["alice@localhost", "bob@defer.test"])
        wait_for(lambda: sum(1 for e in self.trace(qid)["events"]
                             if e["kind"] == "delivery") == 2, 20, "both attempts traced")
        t = self.trace(qid)
        self.assertEqual(t["id"], qid)
        k = kinds(t)
        # HELO is the one after STARTTLS (RFC 3207 4.2: a new EHLO).
        self.assertEqual(k[:4], ["connect", "tls", "helo", "mail"])
        self.assertEqual(k.count("rcpt"), 2)
        self.assertIn("queued", k)
        self.assertLess(k.index("queued"), k.index("delivery"))
        times = [e["time_us"] for e in t["events"]]
        self.assertEqual(times, sorted(times))
        texts = {e["kind"]: [] for e in t["events"]}
        for e in t["events"]:
            texts[e["kind"]].append(e["text"])
        self.assertIn("client=[127.0.0.1] listener=smtp", texts["connect"][0])
        self.assertIn("helo=trace-client.test", texts["helo"][0])
        self.assertIn("TLS", texts["tls"][0])
        self.assertIn("from=<sender@example.org>", texts["mail"][0])
        deliveries = " | ".join(texts["delivery"])
        self.assertIn("to=<alice@localhost> relay=local", deliveries)
        self.assertIn("status=sent", deliveries)
        self.assertIn("to=<bob@defer.test> relay=", deliveries)
        self.assertIn("status=deferred", deliveries)
        # The text form: one line per event.
        text = srv.mailctl("trace", qid).stdout
        self.assertEqual(len(text.splitlines()), len(t["events"]))
        self.assertRegex(text.splitlines()[0], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z  connect ")
        # mailctl's own change, and the trace outlives the message.
        srv.mailctl("delete", qid)
        t = self.trace(qid)
        self.assertEqual(t["events"][-1]["kind"], "admin")
        self.assertEqual(t["events"][-1]["text"], "deleted by mailctl")
        self.assertNotIn(qid, [m["id"] for m in srv.queue_json()["messages"]])

    def test_held_released_delivered_removed(self):
        srv = self.srv
        qid = self.send(["held@localhost"])
        wait_for(lambda: "queued" in kinds(self.trace(qid)), 10, "the commit traced")
        t = self.trace(qid)
        held = [e["text"] for e in t["events"] if e["kind"] == "held"]
        self.assertEqual(held, ["hold_recipients held@localhost matches <held@localhost>"])
        self.assertNotIn("delivery", kinds(t))
        srv.mailctl("release", qid)
        wait_for(lambda: "removed" in kinds(self.trace(qid)), 20, "the removal traced")
        k = kinds(self.trace(qid))
        self.assertLess(k.index("held"), k.index("admin"))
        self.assertLess(k.index("admin"), k.index("delivery"))
        self.assertEqual(k[-1], "removed")
        # Kept across a restart (the trace is durable), and readable with
        # the daemon stopped.
        self.assertEqual(srv.stop(), 0)
        try:
            self.assertEqual(kinds(self.trace(qid)), k)
        finally:
            srv.start()

    def test_find_by_address(self):
        """trace ADDRESS: the messages that name it as the sender or a
        recipient (any case), with their IDs for trace ID."""
        srv = self.srv
        first = self.send(["carol@localhost"], sender="finder@example.org")
        second = self.send(["dave@localhost", "erin@localhost"], sender="finder@example.org")

        def found(addr):
            r = srv.mailctl("--json", "trace", addr, check=False)
            if r.returncode != 0:
                return None
            return [m["id"] for m in json.loads(r.stdout)["messages"]]
        wait_for(lambda: found("erin@localhost") == [second], 20, "the second traced")
        self.assertEqual(found("<Carol@LOCALHOST>"), [first])
        self.assertEqual(sorted(found("finder@example.org")), sorted([first, second]))
        out = json.loads(srv.mailctl("--json", "trace", "dave@localhost").stdout)
        self.assertEqual(out["address"], "dave@localhost")
        self.assertEqual(out["messages"][0]["from"], "finder@example.org")
        self.assertGreaterEqual(out["messages"][0]["events"], 5)
        text = srv.mailctl("trace", "carol@localhost").stdout.splitlines()
        self.assertEqual(len(text), 1)
        self.assertRegex(text[0], r"^%s  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  "
                         r"from=<finder@example\.org>  \d+ events$" % first)
        # a part of an address is not the address
        self.assertIsNone(found("arol@localhost"))
        r = srv.mailctl("trace", "nobody@nowhere.test", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no message from or to <nobody@nowhere.test>", r.stderr)

    def test_unknown_id(self):
        r = self.srv.mailctl("trace", "0000000000001", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no trace", r.stderr)
        r = self.srv.mailctl("trace", "not-an-id", check=False)
        self.assertEqual(r.returncode, 1)


def policy_answer(attrs, n):
    """At RCPT, by the recipient's local part."""
    what = {"prepend": "PREPEND X-Policy-Test: yes", "bcc": "BCC copy@localhost",
            "reject": "REJECT not here"}.get(attrs.get("recipient", "").split("@")[0],
                                              "DUNNO")
    return b"action=" + what.encode() + b"\n\n"


class TraceDecisionsTest(unittest.TestCase):
    """What the session decided besides accepting (a recipient refused by
    a policy service, its header and its copy) and the TLS of a delivery
    are in the trace."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ms-trace-")
        cls.peer = Peer("127.0.0.1", starttls=make_cert(cls.dir)).start()
        cls.policy = PolicyPeer(policy_answer)
        cls.mport = free_port()
        cls.srv = Server("routes = tls.test=[127.0.0.1]:%d\n" % cls.peer.port +
                         "metrics_listen = 127.0.0.1:%d\n" % cls.mport +
                         "policy_services = %s\npolicy_stages = rcpt\n" %
                         cls.policy.endpoint).start()

    @classmethod
    def tearDownClass(cls):
        try:
            assert cls.srv.stop() == 0
        finally:
            cls.srv.cleanup()
            cls.policy.stop()
            cls.peer.stop()
            shutil.rmtree(cls.dir, ignore_errors=True)

    def test_decisions_and_delivery_tls(self):
        srv = self.srv
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10 * SLOW) as c:
            c.ehlo("trace-client.test")
            c.mail("sender@example.org")
            self.assertEqual(c.rcpt("prepend@localhost")[0], 250)
            refused = c.rcpt("reject@localhost")
            self.assertEqual(refused[0] // 100, 5)
            self.assertEqual(c.rcpt("bcc@localhost")[0], 250)
            self.assertEqual(c.rcpt("far@tls.test")[0], 250)
            code, reply = c.data(b"Subject: decisions\r\n\r\nbody\r\n")
            self.assertEqual(code, 250)
            qid = reply.decode().split()[-1]
        self.peer.wait_messages(1)
        wait_for(lambda: "removed" in kinds(TraceTest.trace(self, qid)), 20,
                 "the message to leave the queue")
        events = TraceTest.trace(self, qid)["events"]
        texts = [(e["kind"], e["text"]) for e in events]
        self.assertIn(("rcpt", "to=<reject@localhost> refused (%d %s)" % (
            refused[0], refused[1].decode())), texts)
        self.assertIn(("policy", "header fields of the policy services added"), texts)
        self.assertIn(("policy", "copy for <copy@localhost>"), texts)
        k = kinds({"events": events})
        self.assertLess(k.index("policy"), k.index("queued"))
        tls = [t for kind, t in texts if kind == "delivery" and "to=<far@tls.test>" in t]
        self.assertEqual(len(tls), 1, texts)
        self.assertRegex(tls[0], r"relay=\S+ tls=.*TLSv1\.[23] .* dsn=2\.0\.0 status=sent")
        local = [t for kind, t in texts if kind == "delivery" and "relay=local" in t]
        self.assertEqual(len(local), 3, texts)   # prepend, bcc and the copy
        self.assertNotIn("tls=", " ".join(local))
        # the policy service's refusal is counted as its own (its 554
        # 5.7.1 is not a relay refusal)
        s = parse(scrape(self.mport))
        self.assertEqual(value(s, "mailserver_rejections_total", reason="policy"), 1)
        self.assertEqual(value(s, "mailserver_rejections_total", reason="relay_denied"), 0)


class NotifyTest(unittest.TestCase):
    """sd_notify from the main thread, as systemd's Type=notify reads it."""

    def test_ready_reloading_stopping(self):
        d = tempfile.mkdtemp(prefix="ms-notify-")
        path = os.path.join(d, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(20 * SLOW)
        srv = Server()
        try:
            srv.start(env={"NOTIFY_SOCKET": path})

            def next_msg():
                return sock.recv(4096).decode()
            m = next_msg()
            self.assertIn("READY=1", m.splitlines())
            self.assertIn("STATUS=serving: 1 listeners", m)
            srv.signal(signal.SIGHUP)
            m = next_msg()
            self.assertIn("RELOADING=1", m.splitlines())
            self.assertTrue(any(l.startswith("MONOTONIC_USEC=") for l in m.splitlines()))
            self.assertIn("READY=1", next_msg().splitlines())
            srv.signal(signal.SIGTERM)
            self.assertIn("STOPPING=1", next_msg().splitlines())
            self.assertEqual(srv.stop(), 0)
        finally:
            sock.close()
            srv.cleanup()
            os.unlink(path)
            os.rmdir(d)


if __name__ == "__main__":
    unittest.main()
