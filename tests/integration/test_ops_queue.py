"""Queue control through the daemon and mailctl: hold and release (held
mail is never delivered, flushed or expired while held, and `queue`
shows it held), hold all and release all, requeue (a fresh schedule),
bounce (a DSN to the sender now), cat (the message as stored, written
out chunk by chunk: mailctl never holds a large message in memory), and
the hold rules of the config (sender, recipient, client address,
authenticated user, an account's first hours)."""
import os
import signal
import subprocess
import time
import unittest

from harness import MAILCTL, SANITIZE, SLOW, Server, free_port, greet, send_message, wait_for
from ops import SilentPeer, auth_plain, client_from, crypt_hash

PASSWORD = "queue-secret"


def message(srv, sender, rcpt, body=b"Subject: q\r\n\r\nbody\r\n", source=None, auth=None):
    """One message in its own session; returns the queue id."""
    if source is None and auth is None:
        return send_message(srv.port, sender, rcpt, body)
    c = client_from(srv.port, source or "127.0.0.1")
    assert c.reply()[0] == 220
    assert c.cmd("EHLO client.test")[0] == 250
    if auth:
        assert auth_plain(c, auth, PASSWORD) == 235
    assert c.cmd("MAIL FROM:<%s>" % sender)[0] == 250
    assert c.cmd("RCPT TO:<%s>" % rcpt)[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(body + b".\r\n")
    code, lines = c.reply()
    c.close()
    assert code == 250, (code, lines)
    return lines[0].split()[-1]


class QueueControlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        srv = Server()
        cls.users = os.path.join(srv.dir, "users")
        with open(cls.users, "w") as f:
            f.write("".join("%s@localhost:%s\n" % (u, crypt_hash(PASSWORD))
                            for u in ("alice", "old", "sender", "held", "watcher")))
        closed = free_port()
        cls.peer = SilentPeer()
        srv.write_config(open(srv.conf).read() +
                         "users_file = %s\n" % cls.users +
                         "auth_plaintext_networks = 127.0.0.0/8\n"
                         "routes = defer.test=[127.0.0.1]:%d hang.test=[127.0.0.1]:%d\n"
                         % (closed, cls.peer.port) +
                         "retry_min = 1h\nretry_max = 2h\n"
                         "max_message_size = 64M\n"
                         "hold_recipients = held@localhost @hold-rcpt.test\n"
                         "hold_senders = @spam.example\n"
                         "hold_clients = 127.0.0.31/32\n"
                         "hold_users = watcher@localhost\n"
                         "hold_new_accounts = 1h\n")
        cls.srv = srv.start()

    @classmethod
    def tearDownClass(cls):
        cls.peer.close()
        try:
            assert cls.srv.stop() == 0
        finally:
            cls.srv.cleanup()

    def entry(self, qid):
        for m in self.srv.queue_json()["messages"]:
            if m["id"] == qid:
                return m
        return None

    def deferred_once(self, rcpt):
        qid = message(self.srv, "sender@localhost", rcpt)
        wait_for(lambda: (self.entry(qid) or {"recipients": [{"attempts": 0}]})
                 ["recipients"][0]["attempts"] == 1, 20, "the first attempt")
        return qid

    def test_hold_rule_holds_until_release(self):
        srv = self.srv
        held = message(srv, "x@example.org", "held@localhost")
        srv.wait_log("%s: held: hold_recipients held@localhost matches <held@localhost>" % held)
        e = self.entry(held)
        self.assertTrue(e["held"])
        self.assertEqual(e["recipients"][0]["next_try_time"], "held")
        self.assertIn("HELD", srv.mailctl("queue").stdout)
        self.assertIn(", held", srv.mailctl("queue").stdout)
        # Later mail is delivered, and a flush (mailctl and SIGUSR1) makes
        # nothing of the held one due: it is still not delivered.
        later = message(srv, "x@example.org", "alice@localhost")
        self.assertIn("0 recipients made due now", srv.mailctl("flush").stdout)
        srv.signal(signal.SIGUSR1)
        srv.wait_log("flush: 0 deferred recipients due now")
        wait_for(lambda: later in srv.delivered_ids(), 20, "the later message")
        later2 = message(srv, "x@example.org", "alice@localhost")
        wait_for(lambda: later2 in srv.delivered_ids(), 20, "one more message")
        self.assertNotIn(held, srv.delivered_ids())
        self.assertTrue(self.entry(held)["held"])
        r = srv.mailctl("release", held)
        self.assertEqual(r.stdout.strip(), "%s: released" % held)
        wait_for(lambda: held in srv.delivered_ids(), 20, "the released message")

    def test_hold_deferred_then_release_tries_again(self):
        srv = self.srv
        qid = self.deferred_once("x@defer.test")
        self.assertEqual(srv.mailctl("hold", qid).stdout.strip(), "%s: held" % qid)
        e = self.entry(qid)
        self.assertTrue(e["held"])
        self.assertIsNone(e["recipients"][0]["next_try"])
        # a flush makes nothing of it due (other tests' mail may be)
        srv.mailctl("flush")
        e = self.entry(qid)
        self.assertTrue(e["held"])
        self.assertIsNone(e["recipients"][0]["next_try"])
        srv.mailctl("release", qid)
        wait_for(lambda: self.entry(qid)["recipients"][0]["attempts"] == 2, 20,
                 "a second attempt after the release")
        self.assertFalse(self.entry(qid)["held"])
        srv.mailctl("delete", qid)

    def test_hold_during_delivery_stays_held(self):
        # The hold comes while an attempt is under way: its outcome
        # (deferred) is recorded, and the message stays held.
        srv = self.srv
        qid = message(srv, "sender@localhost", "x@hang.test")
        wait_for(lambda: self.peer.accepted() > 0, 20, "the delivery to start")
        srv.mailctl("hold", qid)
        self.peer.hangup()
        srv.wait_log("%s: to=<x@hang.test>" % qid)
        e = self.entry(qid)
        self.assertEqual(e["recipients"][0]["attempts"], 1)
        self.assertEqual(e["recipients"][0]["state"], "deferred")
        self.assertEqual(e["recipients"][0]["next_try_time"], "held")
        self.assertTrue(e["held"])
        srv.mailctl("delete", qid)

    def test_hold_all_release_all_and_unknown_ids(self):
        srv = self.srv
        a = self.deferred_once("a@defer.test")
        b = self.deferred_once("b@defer.test")
        r = srv.mailctl("hold", "all")
        self.assertRegex(r.stdout, r"^\d+ messages held")
        self.assertTrue(self.entry(a)["held"] and self.entry(b)["held"])
        r = srv.mailctl("hold", a, "FFFFFFFFFFFFF", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s: already held" % a, r.stdout)
        self.assertIn("FFFFFFFFFFFFF: not in the queue", r.stderr)
        r = srv.mailctl("release", "all")
        self.assertRegex(r.stdout, r"^\d+ messages released")
        self.assertFalse(self.entry(a)["held"] or self.entry(b)["held"])
        srv.mailctl("delete", a, b)

    def test_requeue_starts_over(self):
        srv = self.srv
        qid = self.deferred_once("r@defer.test")
        first = self.entry(qid)["recipients"][0]
        self.assertGreater(first["next_try"], time.time() + 1800)
        self.assertEqual(srv.mailctl("requeue", qid).stdout.strip(), "%s: requeued" % qid)
        # tried again at once, counted as the first attempt of a fresh
        # schedule: the next try is retry_min away again
        wait_for(lambda: self.entry(qid)["recipients"][0]["last_try"] > first["last_try"] or
                 None, 20 + 2, "the requeued attempt")
        again = self.entry(qid)["recipients"][0]
        self.assertEqual(again["attempts"], 1)
        self.assertLess(again["next_try"] - again["last_try"], 3600 * 1.11)
        srv.mailctl("delete", qid)

    def test_bounce_sends_dsn_now(self):
        srv = self.srv
        qid = self.deferred_once("b@defer.test")
        self.assertEqual(srv.mailctl("bounce", qid).stdout.strip(),
                         "%s: bounced (1 recipients)" % qid)
        wait_for(lambda: self.entry(qid) is None, 20, "the bounced message to leave")
        files = wait_for(lambda: [f for f in srv.maildir_files("sender@localhost")
                                  if qid.encode() in open(f, "rb").read()], 20, "the DSN")
        dsn = open(files[0], "rb").read()
        self.assertIn(b"Action: failed", dsn)
        self.assertIn(b"Status: 5.0.0", dsn)
        self.assertIn(b"returned to the sender by the administrator", dsn)

    def test_cat_streams_the_stored_message(self):
        srv = self.srv
        # held by a rule, so that it stays: 40 MiB over 300 chunks
        line = b"x" * 998 + b"\r\n"
        body = b"Subject: big\r\n\r\n" + line * (40 * 1024)
        qid = message(srv, "x@example.org", "big@hold-rcpt.test", body)
        size = self.entry(qid)["size"]
        out = subprocess.run([MAILCTL, "-c", srv.conf, "cat", qid], capture_output=True,
                             timeout=120 * SLOW).stdout
        self.assertEqual(len(out), size)
        self.assertTrue(out.startswith(b"Received: "), out[:80])
        self.assertTrue(out.endswith(body), out[-80:])
        # Read slowly: mailctl blocks on the pipe after its first chunks,
        # and by then holds no more than a chunk or two of it.
        p = subprocess.Popen([MAILCTL, "-c", srv.conf, "cat", qid], stdout=subprocess.PIPE)
        try:
            def blocked():
                with open("/proc/%d/status" % p.pid) as f:
                    st = dict(l.split(":", 1) for l in f if ":" in l)
                with open("/proc/%d/wchan" % p.pid) as f:
                    wchan = f.read()
                return (int(st["RssAnon"].split()[0]) if "pipe" in wchan else None)
            anon_kib = wait_for(blocked, 20, "mailctl cat to block on its pipe")
            # (a sanitizer's own memory is counted too: still well below
            # the 40 MiB of the message)
            self.assertLess(anon_kib * 1024, (24 if SANITIZE else 8) * 1024 * 1024)
            got = p.stdout.read()
        finally:
            p.stdout.close()
            p.wait(60 * SLOW)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(len(got), size)
        r = srv.mailctl("cat", "FFFFFFFFFFFFF", check=False)
        self.assertEqual(r.returncode, 1)
        srv.mailctl("delete", qid)

    def test_hold_rules(self):
        srv = self.srv
        cases = [
            (dict(sender="x@spam.example", rcpt="alice@localhost"),
             "hold_senders @spam.example matches <x@spam.example>"),
            (dict(sender="x@example.org", rcpt="y@hold-rcpt.test"),
             "hold_recipients @hold-rcpt.test matches <y@hold-rcpt.test>"),
            (dict(sender="x@example.org", rcpt="alice@localhost", source="127.0.0.31"),
             "hold_clients matches [127.0.0.31]"),
            (dict(sender="watcher@localhost", rcpt="alice@localhost",
                  auth="watcher@localhost"), "hold_users matches sasl_username=watcher@localhost"),
        ]
        for kw, why in cases:
            qid = message(srv, **kw)
            srv.wait_log("%s: held: %s" % (qid, why))
            self.assertTrue(self.entry(qid)["held"], kw)
            srv.mailctl("delete", qid)
        # An account that was in users_file when the server first started
        # is old; one added since is new for hold_new_accounts.
        qid = message(srv, "old@localhost", "alice@localhost", auth="old@localhost")
        wait_for(lambda: qid in srv.delivered_ids(), 20, "mail of an old account")
        with open(self.users, "a") as f:
            f.write("newbie@localhost:%s\n" % crypt_hash(PASSWORD))
        srv.signal(signal.SIGHUP)
        srv.wait_log("hold: 1 new accounts seen")
        srv.wait_log("reloaded")
        qid = message(srv, "newbie@localhost", "alice@localhost", auth="newbie@localhost")
        srv.wait_log("%s: held: hold_new_accounts: sasl_username=newbie@localhost is" % qid)
        self.assertTrue(self.entry(qid)["held"])
        with open(os.path.join(srv.dir, "queue", "accounts")) as f:
            ages = dict(l.split() for l in f)
        self.assertEqual(ages["old@localhost"], "0")
        self.assertGreater(int(ages["newbie@localhost"]), time.time() - 600)
        srv.mailctl("delete", qid)


class HeldNeverExpiresTest(unittest.TestCase):
    """queue_lifetime passes for a held message and for one that is not:
    the one not held bounces, the held one stays, and bounces (expired)
    only once released."""

    def test_expiry_waits_for_release(self):
        closed = free_port()
        srv = Server("routes = defer.test=[127.0.0.1]:%d\n" % closed +
                     "queue_lifetime = 3s\nretry_min = 1s\nretry_max = 1s\n"
                     "hold_recipients = h@defer.test\n")
        try:
            srv.start()
            held = send_message(srv.port, "s@localhost", "h@defer.test")
            free_one = send_message(srv.port, "s@localhost", "f@defer.test")
            srv.wait_log("%s: to=<f@defer.test>" % free_one)
            wait_for(lambda: b"Action: failed" in b"".join(
                open(f, "rb").read() for f in srv.maildir_files("s@localhost")), 30,
                "the bounce of the message that was not held")
            ids = {m["id"]: m for m in srv.queue_json()["messages"]}
            self.assertIn(held, ids)
            self.assertEqual(ids[held]["recipients"][0]["state"], "queued")
            self.assertNotIn("to=<h@defer.test>", srv.logtext())
            srv.mailctl("release", held)
            srv.wait_log("%s: to=<h@defer.test>, relay=none" % held, 30)
            wait_for(lambda: held not in {m["id"] for m in srv.queue_json()["messages"]},
                     30, "the released message to expire and leave")
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


if __name__ == "__main__":
    unittest.main()
