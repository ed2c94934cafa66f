"""SIGHUP changes delivery_threads: the pool grows at once and shrinks as
its threads finish their jobs, counted in the daemon's own threads
(/proc/PID/task) and in mailserver_delivery_threads, while mail goes on
being delivered and sessions stay open across the reloads.

SIGHUP changes session_workers: a retired worker takes no new
connection and runs its sessions (idle ones, ones in the middle of DATA
with records on their way to the queue) to their end before its thread
goes; new workers serve new connections at once; `mailctl sessions`
lists the sessions of every worker; and sessions that log in and send
while the pool is resized again and again lose nothing."""
import json
import os
import signal
import sys
import threading
import time
import traceback
import unittest

from harness import SLOW, Client, Server, dot_stuff, free_port, greet, send_message, wait_for
from ops import auth_plain, crypt_hash, parse, scrape, value


class DeliveryPoolReloadTest(unittest.TestCase):
    def setUp(self):
        self.mport = free_port()
        self.srv = Server(self.extra(4)).start()

    def tearDown(self):
        try:
            self.assertEqual(self.srv.stop(), 0)
        finally:
            self.srv.cleanup()

    def extra(self, n):
        return "metrics_listen = 127.0.0.1:%d\ndelivery_threads = %d\n" % (self.mport, n)

    def threads(self):
        return len(os.listdir("/proc/%d/task" % self.srv.proc.pid))

    def gauge(self):
        return value(parse(scrape(self.mport)), "mailserver_delivery_threads")

    def reload(self, n):
        base = open(self.srv.conf).read().split("metrics_listen")[0]
        self.srv.write_config(base + self.extra(n))
        self.srv.signal(signal.SIGHUP)
        self.srv.wait_log("delivery: delivery_threads %d:" % n)

    def delivered(self):
        qid = send_message(self.srv.port, "a@example.org", "alice@localhost")
        wait_for(lambda: qid in self.srv.delivered_ids(), 20, "delivery of %s" % qid)

    def test_grow_and_shrink(self):
        def up():
            try:
                return self.gauge() == 4
            except OSError:  # the endpoint starts after the SMTP listeners
                return False
        wait_for(up, 10, "the metrics endpoint")
        self.delivered()
        open_session, _ = greet(self.srv.port)
        start = self.threads()
        # 4 = 1 local + 3 remote; 12 = 3 local + 9 remote; 1 = 1 + 1.
        self.reload(12)
        self.assertEqual(self.threads(), start + 8)
        self.assertEqual(self.gauge(), 12)
        self.delivered()
        self.reload(1)
        wait_for(lambda: self.threads() == start - 2, 10, "the surplus threads to end")
        self.assertEqual(self.gauge(), 2)
        self.delivered()
        # The session opened before the reloads still works.
        self.assertEqual(open_session.cmd("NOOP")[0], 250)
        open_session.close()
        self.reload(4)
        self.assertEqual(self.threads(), start)
        self.delivered()


PASSWORD = "reload-secret"


class SessionWorkersReloadTest(unittest.TestCase):
    def setUp(self):
        self.srv = Server()
        users = os.path.join(self.srv.dir, "users")
        with open(users, "w") as f:
            f.write("alice@localhost:%s\n" % crypt_hash(PASSWORD))
        self.base = open(self.srv.conf).read() + (
            "users_file = %s\nauth_plaintext_networks = 127.0.0.0/8\n" % users)
        self.srv.write_config(self.base + self.extra(4))
        self.srv.start()
        wait_for(lambda: os.path.exists(os.path.join(self.srv.dir, "queue", "control")), 10,
                 "the control socket")

    def tearDown(self):
        try:
            self.assertEqual(self.srv.stop(), 0)
        finally:
            self.srv.cleanup()

    def extra(self, n):
        return "session_workers = %d\n" % n

    def threads(self):
        return len(os.listdir("/proc/%d/task" % self.srv.proc.pid))

    def reload(self, n, started, retiring):
        line = "session_workers %d: %d started, %d retiring" % (n, started, retiring)
        before = self.srv.logtext().count(line)
        self.srv.write_config(self.base + self.extra(n))
        self.srv.signal(signal.SIGHUP)
        wait_for(lambda: self.srv.logtext().count(line) > before, 10 * SLOW, line)

    def retired(self):
        return self.srv.logtext().count("retired; its last session ended")

    def sessions(self):
        return json.loads(self.srv.mailctl("--json", "sessions").stdout)["sessions"]

    def delivered_token(self, token):
        for path in self.srv.maildir_files("alice@localhost"):
            with open(path, "rb") as f:
                if token.encode() in f.read():
                    return True
        return False

    def open_session(self, helo, stage):
        """A session left idle after EHLO ("idle"), after MAIL ("mail"),
        or inside DATA with 300 KiB of the body sent ("data": several
        records staged)."""
        c = Client(self.srv.port)
        self.assertEqual(c.reply()[0], 220)
        self.assertEqual(c.cmd("EHLO " + helo)[0], 250)
        if stage in ("mail", "data"):
            self.assertEqual(c.cmd("MAIL FROM:<a@example.org>")[0], 250)
        if stage == "data":
            self.assertEqual(c.cmd("RCPT TO:<alice@localhost>")[0], 250)
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send(b"Subject: " + helo.encode() + b"\r\n\r\n" +
                   (b"x" * 998 + b"\r\n") * 300)
        return c

    @staticmethod
    def finish(c, helo, stage):
        """Completes the message of an open session; returns its reply."""
        if stage == "idle":
            assert c.cmd("MAIL FROM:<a@example.org>")[0] == 250
        if stage in ("idle", "mail"):
            assert c.cmd("RCPT TO:<alice@localhost>")[0] == 250
            assert c.cmd("DATA")[0] == 354
            c.send(b"Subject: " + helo.encode() + b"\r\n\r\n")
        c.send(b"token " + helo.encode() + b"\r\n.\r\n")
        code, lines = c.reply()
        c.cmd("QUIT")
        c.close()
        return code, lines

    def thread_names(self):
        names = set()
        for t in os.listdir("/proc/%d/task" % self.srv.proc.pid):
            try:
                with open("/proc/%d/task/%s/comm" % (self.srv.proc.pid, t)) as f:
                    names.add(f.read().strip())
            except OSError:
                pass    # a thread that just ended
        return names

    def test_threads_are_named(self):
        # top -H, ps -L and perf show each thread's role (README, Threads).
        want = {"acceptor", "committer", "scheduler", "control", "trace", "deliver",
                "deliver-local", "password", "lookup", "filter",
                "worker0", "worker1", "worker2", "worker3"}
        wait_for(lambda: want <= self.thread_names(), 10 * SLOW, "the named threads")
        self.reload(5, 1, 0)
        wait_for(lambda: "worker4" in self.thread_names(), 10 * SLOW, "worker4")

    def test_shrink_and_grow_with_sessions_open(self):
        srv = self.srv
        wait_for(lambda: self.sessions() == [], 10, "no sessions")
        start = self.threads()
        # Handed round robin to the 4 workers: every worker has some.
        stages = ["idle", "mail", "data"] * 4
        open_ = [(self.open_session("open%d.test" % i, st), "open%d.test" % i, st)
                 for i, st in enumerate(stages)]
        self.reload(1, 0, 3)
        # The retired workers' threads stay while their sessions go on.
        self.assertEqual(self.threads(), start)
        self.assertEqual(self.retired(), 0)
        # A new connection is served (by the remaining worker), and the
        # list has every session, of retired workers too.
        fresh, _ = greet(srv.port, "fresh.test")
        helos = sorted(x["helo"] for x in self.sessions())
        self.assertEqual(helos, sorted([h for _, h, _ in open_] + ["fresh.test"]))
        fresh.close()
        # Every session opened before the reload completes its message.
        for c, helo, st in open_:
            code, lines = self.finish(c, helo, st)
            self.assertEqual(code, 250, (helo, st, lines))
        for _, helo, _ in open_:
            wait_for(lambda h=helo: self.delivered_token("token " + h), 20 * SLOW,
                     "delivery of %s" % helo)
        # Their last session over, the three retired threads end.
        wait_for(lambda: self.retired() == 3, 10 * SLOW, "the retired workers to end")
        wait_for(lambda: self.threads() == start - 3, 10 * SLOW, "their threads to go")
        # Growing: new workers at once, each new connection served.
        self.reload(3, 2, 0)
        self.assertEqual(self.threads(), start - 1)
        clients = [greet(srv.port, "grown%d.test" % i)[0] for i in range(6)]
        self.assertEqual(sorted(x["helo"] for x in self.sessions()),
                         sorted("grown%d.test" % i for i in range(6)))
        for i, c in enumerate(clients):
            code, lines = self.finish(c, "grown%d.test" % i, "idle")
            self.assertEqual(code, 250, lines)
        for i in range(6):
            wait_for(lambda i=i: self.delivered_token("token grown%d.test" % i), 20 * SLOW,
                     "delivery of grown%d" % i)
        self.assertEqual(self.retired(), 3)

    def test_sessions_across_reloads(self):
        """Client threads log in and send, one session after the other,
        while the pool is resized six times: every message is answered
        250 and delivered exactly once."""
        srv = self.srv
        wait_for(lambda: self.sessions() == [], 10, "no sessions")
        start = self.threads()
        # Each client goes on until the last resize is through (bounded in
        # sessions and time): with a fixed small count, fast clients ran
        # out before the last resizes, which then saw no progress.
        clients, most, until = 6, 2000, time.monotonic() + 300 * SLOW
        results, errors = {}, []
        lock = threading.Lock()
        done = threading.Event()

        def run(k):
            try:
                for i in range(most):
                    if done.is_set() or time.monotonic() > until:
                        return
                    token = "loop-%d-%d" % (k, i)
                    c, _ = greet(srv.port, "loop%d.test" % k)
                    self.assertEqual(auth_plain(c, "alice@localhost", PASSWORD), 235)
                    self.assertEqual(c.cmd("MAIL FROM:<alice@localhost>")[0], 250)
                    self.assertEqual(c.cmd("RCPT TO:<alice@localhost>")[0], 250)
                    self.assertEqual(c.cmd("DATA")[0], 354)
                    c.send(dot_stuff(b"Subject: " + token.encode() + b"\r\n\r\n" +
                                     token.encode() + b"\r\n") + b".\r\n")
                    code, lines = c.reply()
                    c.cmd("QUIT")
                    c.close()
                    with lock:
                        results[token] = (code, lines)
            except Exception as e:  # reported by the main thread
                with lock:
                    errors.append(repr(e))

        threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        retired = 0
        try:
            for n, started, retiring in [(1, 0, 3), (4, 3, 0), (2, 0, 2), (3, 1, 0),
                                         (1, 0, 2), (4, 3, 0)]:
                got = len(results)
                self.reload(n, started, retiring)
                retired += retiring
                # a few sessions more on this size before the next
                try:
                    wait_for(lambda g=got: len(results) >= g + 3 or errors, 30 * SLOW,
                             "sessions to go on")
                except AssertionError:
                    frames = sys._current_frames()
                    stacks = "\n".join(
                        "".join(traceback.format_stack(frames[t.ident])[-3:])
                        for t in threads if t.ident in frames)
                    raise AssertionError("no progress at session_workers %d after %d "
                                         "sessions; open: %s; %d clients left:\n%s\nlog:\n%s\n"
                                         "server threads:\n%s" % (
                                             n, len(results), self.sessions(),
                                             sum(t.is_alive() for t in threads), stacks,
                                             srv.logtext()[-4000:], srv.backtraces()))
        finally:
            done.set()
            for t in threads:
                t.join(60 * SLOW)
        self.assertEqual(errors, [])
        self.assertGreaterEqual(len(results), 18)
        ids = set()
        for token, (code, lines) in results.items():
            self.assertEqual(code, 250, (token, lines))
            ids.add(lines[0].split()[-1])
        wait_for(lambda: ids <= srv.delivered_ids(), 30 * SLOW, "every message delivered")
        counts = srv.delivered_counts()
        self.assertTrue(all(counts[i] == 1 for i in ids), counts)
        wait_for(lambda: self.sessions() == [], 10 * SLOW, "no sessions left")
        # Every retired worker ended, and 4 take connections again.
        wait_for(lambda: self.retired() == retired, 10 * SLOW, "the retired workers to end")
        wait_for(lambda: self.threads() == start, 10 * SLOW, "4 workers' threads")

if __name__ == "__main__":
    unittest.main()
