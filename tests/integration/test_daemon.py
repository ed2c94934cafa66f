"""The daemon: config checking, signals, reload, graceful stop, connection
limits, timeouts, durability of acknowledged mail, a full queue."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest

from harness import MAILCTL, MAILSERVER, Client, Server, free_port, greet, wait_for, SLOW

MSG = b"Subject: d\r\n\r\ndurable\r\n"


def send_one(port, rcpt="alice@localhost", body=MSG):
    c, _ = greet(port)
    c.cmd("MAIL FROM:<a@example.org>")
    assert c.cmd("RCPT TO:<%s>" % rcpt)[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(body + b".\r\n")
    code, lines = c.reply()
    c.close()
    return code, lines[0]


class ConfigCheckTest(unittest.TestCase):
    def run_check(self, text):
        srv = Server()
        try:
            with open(srv.conf, "a") as f:
                f.write(text)
            return subprocess.run([MAILSERVER, "-t", "-c", srv.conf], capture_output=True,
                                  text=True, timeout=30), srv.conf
        finally:
            srv.cleanup()

    def test_good_config(self):
        r, _ = self.run_check("")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_bad_config_line_numbers(self):
        probe = Server()
        with open(probe.conf) as f:
            base = len(f.read().splitlines())
        probe.cleanup()
        r, conf = self.run_check("max_recipients = lots\nbogus_key = 1\n")
        self.assertEqual(r.returncode, 2)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 2, r.stderr)
        self.assertTrue(lines[0].startswith("%s:%d: " % (conf, base + 1)), lines)
        self.assertTrue(lines[1].startswith("%s:%d: " % (conf, base + 2)), lines)

    def test_bad_start_exits_2(self):
        srv = Server("listen = nonsense\n")
        try:
            r = subprocess.run([MAILSERVER, "-c", srv.conf], capture_output=True,
                               text=True, timeout=30)
            self.assertEqual(r.returncode, 2)
            self.assertIn(srv.conf + ":", r.stderr)
            self.assertFalse(os.path.exists(os.path.join(srv.dir, "queue")))
        finally:
            srv.cleanup()

    def test_shipped_config(self):
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        r = subprocess.run([MAILSERVER, "-t", "-c", "mailserver.conf"], cwd=root,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)


class SignalTest(unittest.TestCase):
    def setUp(self):
        self.srv = Server()
        self.srv.start()

    def tearDown(self):
        self.srv.cleanup()

    def test_sigterm_graceful(self):
        idle, _ = greet(self.srv.port)
        busy, _ = greet(self.srv.port)
        busy.cmd("MAIL FROM:<a@example.org>")
        busy.cmd("RCPT TO:<alice@localhost>")
        self.assertEqual(busy.cmd("DATA")[0], 354)
        busy.send(b"Subject: in flight\r\n\r\npart one\r\n")
        self.srv.signal(signal.SIGTERM)
        code, lines = idle.reply()
        self.assertEqual(code, 421)
        self.assertTrue(lines[0].startswith("4.3.2"))
        # the message in DATA still completes and is acknowledged
        busy.send(b"part two\r\n.\r\n")
        code, lines = busy.reply()
        self.assertEqual(code, 250)
        qid = lines[0].split()[-1]
        self.assertEqual(self.srv.stop(), 0)
        self.assertIn(qid, self.srv.known_ids())

    def test_sighup_reload_listeners_and_domains(self):
        port2 = free_port()
        c, _ = greet(self.srv.port)
        c.cmd("MAIL FROM:<a@example.org>")
        self.assertEqual(c.cmd("RCPT TO:<x@newlocal.test>")[0], 250)  # relay from loopback
        c.close()
        with open(self.srv.conf, "a") as f:
            f.write("listen = 127.0.0.1:%d\nlocal_domains = localhost newlocal.test\n" % port2)
            f.write("users_file = %s/users\n" % self.srv.dir)
        with open(os.path.join(self.srv.dir, "users"), "w") as f:
            f.write("known@newlocal.test:\n")
        self.srv.signal(signal.SIGHUP)
        self.srv.wait_log("reloaded")
        self.srv.wait_ready(port2)
        c, _ = greet(port2)
        c.cmd("MAIL FROM:<a@example.org>")
        self.assertEqual(c.cmd("RCPT TO:<x@newlocal.test>")[0], 550)
        self.assertEqual(c.cmd("RCPT TO:<known@newlocal.test>")[0], 250)
        c.close()
        # a bad config is logged and the old one kept
        with open(self.srv.conf, "a") as f:
            f.write("max_recipients = -1\n")
        self.srv.signal(signal.SIGHUP)
        self.srv.wait_log("keeping the old configuration")
        c, _ = greet(port2)
        self.assertEqual(c.cmd("NOOP")[0], 250)
        c.close()
        self.assertEqual(self.srv.stop(), 0)

    def test_sighup_enables_tls(self):
        from harness import test_cert
        c, lines = greet(self.srv.port)
        self.assertNotIn("STARTTLS", lines)
        c.close()
        cert, key = test_cert()
        with open(self.srv.conf, "a") as f:
            f.write("tls_cert_file = %s\ntls_key_file = %s\n" % (cert, key))
        self.srv.signal(signal.SIGHUP)
        self.srv.wait_log("reloaded")
        c, lines = greet(self.srv.port)
        self.assertIn("STARTTLS", lines)
        self.assertEqual(c.cmd("STARTTLS")[0], 220)
        c.starttls()
        self.assertEqual(c.cmd("EHLO again.test")[0], 250)
        c.close()
        # a key file that went missing keeps the old TLS files
        text = open(self.srv.conf).read().replace(key, key + ".missing")
        self.srv.write_config(text)
        self.srv.signal(signal.SIGHUP)
        self.srv.wait_log("keeping the old configuration")
        c, lines = greet(self.srv.port)
        self.assertIn("STARTTLS", lines)
        c.close()
        self.assertEqual(self.srv.stop(), 0)

    def test_sigusr2_logs_stats(self):
        self.srv.signal(signal.SIGUSR2)
        self.srv.wait_log("stats: received=")
        self.assertEqual(self.srv.stop(), 0)


@unittest.skipUnless(os.geteuid() == 0, "needs root to drop privileges")
class PrivilegeDropTest(unittest.TestCase):
    """user = nobody, with a TLS key only root may read: SIGHUP still
    reloads, the log file made at start belongs to nobody, and mailctl run
    as nobody does not need the key."""

    def test_reload_after_drop_with_root_only_key(self):
        import pwd
        import shutil
        from harness import test_cert
        cert, key = test_cert()          # in a 0700 directory of root's
        nobody = pwd.getpwnam("nobody")
        srv = Server("user = nobody\ntls_cert_file = %s\ntls_key_file = %s\n" % (cert, key))
        try:
            os.chmod(srv.dir, 0o755)
            shutil.chown(srv.dir, nobody.pw_uid, nobody.pw_gid)
            srv.start()
            self.assertEqual(os.stat(srv.log).st_uid, nobody.pw_uid)
            with open(srv.conf, "a") as f:
                f.write("max_recipients = 7\n")
            srv.signal(signal.SIGHUP)
            srv.wait_log("reloaded")
            log = srv.logtext()
            self.assertIn("keeping the TLS certificate and key loaded before", log)
            self.assertNotIn("keeping the old configuration", log)
            self.assertNotIn("reload: log_file", log)
            c, lines = greet(srv.port)
            self.assertIn("STARTTLS", lines)
            self.assertEqual(c.cmd("STARTTLS")[0], 220)
            c.starttls()
            self.assertEqual(c.cmd("EHLO again.test")[0], 250)
            c.close()
            # rotation: the file is reopened (made anew) as nobody
            os.rename(srv.log, srv.log + ".1")
            srv.signal(signal.SIGUSR2)
            srv.wait_log("stats: received=")
            # mailctl as nobody reads the queue without the key (a copy
            # nobody may run, wherever the tree is checked out)
            mailctl = os.path.join(srv.dir, "mailctl")
            shutil.copy(MAILCTL, mailctl)
            os.chmod(mailctl, 0o755)
            r = subprocess.run([mailctl, "-c", srv.conf, "--json", "stats"], cwd=srv.dir,
                               capture_output=True, text=True, timeout=60 * SLOW,
                               preexec_fn=lambda: (os.setgid(nobody.pw_gid),
                                                   os.setuid(nobody.pw_uid)))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("received", r.stdout)
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()

    def test_reload_after_drop_with_root_only_dkim_key(self):
        """The same for a dkim_sign key only root may read: SIGHUP keeps
        the key loaded at start (and says so), and mailctl as nobody does
        not need it. A key that is missing is still an error."""
        import pwd
        import shutil
        import tempfile
        nobody = pwd.getpwnam("nobody")
        keydir = tempfile.mkdtemp(prefix="ms-dkim-")     # 0700, root's
        key = os.path.join(keydir, "sel.example.test.pem")
        subprocess.run([MAILCTL, "dkim-keygen", "example.test", "sel", "--type", "ed25519",
                        "--out", key], check=True, capture_output=True)
        os.chmod(key, 0o600)
        srv = Server("user = nobody\ndkim_sign = example.test sel %s\n" % key +
                     # mail for hold.test waits in the queue (nothing listens there)
                     "relay_domains = hold.test\nroutes = hold.test=[127.0.0.1]:9\n")
        try:
            os.chmod(srv.dir, 0o755)
            shutil.chown(srv.dir, nobody.pw_uid, nobody.pw_gid)
            srv.start()
            with open(srv.conf, "a") as f:
                f.write("max_recipients = 7\n")
            srv.signal(signal.SIGHUP)
            wait_for(lambda: "reloaded" in srv.logtext() or "keeping the old" in srv.logtext(),
                     10, "the reload")
            log = srv.logtext()
            self.assertIn("keeping the DKIM keys loaded before", log)
            self.assertNotIn("keeping the old configuration", log)
            # the key still signs: a message from our own user
            code, text = send_one(srv.port, rcpt="x@hold.test",
                                  body=b"From: someone@example.test\r\nSubject: s\r\n\r\nhi\r\n")
            self.assertEqual(code, 250)
            qid = text.split()[-1]
            self.assertIn("DKIM-Signature:", srv.mailctl("show", qid).stdout)
            mailctl = os.path.join(srv.dir, "mailctl")
            shutil.copy(MAILCTL, mailctl)
            os.chmod(mailctl, 0o755)
            r = subprocess.run([mailctl, "-c", srv.conf, "--json", "stats"], cwd=srv.dir,
                               capture_output=True, text=True, timeout=60 * SLOW,
                               preexec_fn=lambda: (os.setgid(nobody.pw_gid),
                                                   os.setuid(nobody.pw_uid)))
            self.assertEqual(r.returncode, 0, r.stderr)
            # a key that is gone is not kept
            with open(srv.conf, "a") as f:
                f.write("dkim_sign = example.test other %s/missing.pem\n" % keydir)
            srv.signal(signal.SIGHUP)
            wait_for(lambda: "keeping the old configuration" in srv.logtext(), 10,
                     "the reload refused")
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()
            shutil.rmtree(keydir, ignore_errors=True)


class DurabilityTest(unittest.TestCase):
    def test_kill9_after_250_keeps_message(self):
        srv = Server()
        try:
            srv.start()
            acked = []
            for i in range(20):
                code, text = send_one(srv.port, body=MSG + b"n=%d\r\n" % i)
                self.assertEqual(code, 250)
                acked.append(text.split()[-1])
            srv.kill9()
            srv.start()
            ids = srv.known_ids()
            self.assertTrue(set(acked) <= ids, set(acked) - ids)
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()

    def test_kill9_under_load(self):
        """Concurrent senders; SIGKILL at an arbitrary moment; every message
        acknowledged with 250 before the kill is in the queue after it."""
        srv = Server()
        try:
            srv.start()
            acked, lock = [], threading.Lock()
            stop = threading.Event()

            def sender():
                for i in range(200):
                    if stop.is_set():
                        return
                    try:
                        code, text = send_one(srv.port)
                    except (OSError, EOFError, AssertionError):
                        return
                    if code == 250:
                        with lock:
                            acked.append(text.split()[-1])
            threads = [threading.Thread(target=sender) for _ in range(8)]
            for t in threads:
                t.start()
            wait_for(lambda: len(acked) >= 50, 60, "50 acknowledged messages")
            srv.kill9()
            stop.set()
            for t in threads:
                t.join(60)
            srv.start()
            ids = srv.known_ids()
            with lock:
                missing = set(acked) - ids
            self.assertEqual(missing, set())
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()

    def test_full_queue_answers_452_and_recovers(self):
        # held mail (its destination refuses connections) fills the map
        srv = Server("queue_map_size = 1M\nqueue_map_max = 1M\nmax_message_size = 2M\n"
                     "routes = hold.test=[127.0.0.1]:9\nretry_min = 1h\nretry_max = 2h\n")
        try:
            srv.start()
            big = b"Subject: big\r\n\r\n" + (b"z" * 998 + b"\r\n") * 300
            codes = []
            for i in range(10):
                code, text = send_one(srv.port, rcpt="x@hold.test", body=big)
                codes.append(code)
                if code == 452:
                    self.assertTrue(text.startswith("4.3.1"), text)
                    break
            self.assertIn(452, codes)
            # the server goes on: small messages still get an answer
            c, _ = greet(srv.port)
            self.assertEqual(c.cmd("NOOP")[0], 250)
            c.close()
            srv.mailctl("delete", "all")
            code, _ = send_one(srv.port, rcpt="x@hold.test", body=big)
            self.assertEqual(code, 250)
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


class LimitsTest(unittest.TestCase):
    def test_connection_limits(self):
        srv = Server("max_connections = 6\nmax_connections_per_ip = 3\n")
        try:
            srv.start()
            srv.wait_sessions(0)        # wait_ready's probe no longer counts
            held = [greet(srv.port)[0] for _ in range(3)]
            c = Client(srv.port)
            code, lines = c.reply()
            self.assertEqual(code, 421)
            self.assertTrue(lines[0].startswith("4.7.0"))
            self.assertTrue(c.closed())
            held[0].cmd("QUIT")
            held[0].close()
            # the slot frees when the session ends
            wait_for(lambda: Client(srv.port).reply()[0] == 220, 10, "a free slot")
            for h in held[1:]:
                h.close()
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()

    def cpu_seconds(self, pid):
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def test_out_of_file_descriptors(self):
        """With the descriptor limit reached, the acceptor neither spins nor
        floods the log, refuses clients with 421, and recovers."""
        import resource
        srv = Server("max_connections = 1000\nmax_connections_per_ip = 1000\n")
        try:
            srv.proc = subprocess.Popen(
                [MAILSERVER, "-c", srv.conf], cwd=srv.dir, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)))
            srv.wait_ready()
            srv.wait_log("does not fit in the descriptor limit 64")
            clients = []
            for _ in range(100):
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW)
                clients.append(s)
            cpu0, t0 = self.cpu_seconds(srv.proc.pid), time.monotonic()
            # the refused ones get a 421 rather than hang in the backlog
            refused = 0
            for s in clients[-20:]:
                s.settimeout(3 * SLOW)
                try:
                    if s.recv(100).startswith(b"421 4.3.2"):
                        refused += 1
                except OSError:
                    pass
            elapsed = max(time.monotonic() - t0, 2.0)
            time.sleep(max(0, 2.0 - (time.monotonic() - t0)))
            used = self.cpu_seconds(srv.proc.pid) - cpu0
            self.assertGreater(refused, 0)
            self.assertLess(used, 0.5 * (time.monotonic() - t0), "the acceptor spins")
            lines = srv.logtext().count("Too many open files")
            self.assertLess(lines, 3 + 2 * elapsed, "the log is flooded")
            for s in clients:
                s.close()
            # sessions end, descriptors come back, accepting resumes
            wait_for(lambda: Client(srv.port).reply()[0] == 220, 20, "a greeting again")
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()

    def test_soft_descriptor_limit_raised(self):
        """Started with a soft RLIMIT_NOFILE below the hard one, the daemon
        takes the hard limit, and warns only when max_connections does not
        fit in it."""
        import resource

        def max_open_files(pid):
            with open("/proc/%d/limits" % pid) as f:
                line = [l for l in f if l.startswith("Max open files")][0]
            return [int(x) for x in line.split()[3:5]]
        for conns, hard, warned in ((1000, 4096, False), (8000, 4096, True)):
            with self.subTest(max_connections=conns):
                srv = Server("max_connections = %d\n" % conns)
                try:
                    srv.proc = subprocess.Popen(
                        [MAILSERVER, "-c", srv.conf], cwd=srv.dir, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                                              (256, hard)))
                    srv.wait_ready()
                    self.assertEqual(max_open_files(srv.proc.pid), [hard, hard])
                    log = srv.logtext()
                    self.assertEqual("does not fit in the descriptor limit %d" % hard in log,
                                     warned, log)
                    self.assertEqual(srv.stop(), 0)
                finally:
                    srv.cleanup()

    def test_closed_standard_descriptors(self):
        """Started with fds 0, 1 and 2 closed and logging to stderr: the
        log lines must not land in the queue's LMDB file."""
        srv = Server()
        try:
            text = open(srv.conf).read().replace("log_file = %s\n" % srv.log, "")
            srv.write_config(text)

            def close_std():
                for fd in (0, 1, 2):
                    os.close(fd)
            srv.proc = subprocess.Popen([MAILSERVER, "-c", srv.conf], cwd=srv.dir,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, preexec_fn=close_std)
            srv.proc.stdout = open(os.devnull, "rb")
            srv.proc.stderr = open(os.devnull, "rb")
            srv.wait_ready()
            for fd in (0, 1, 2):
                self.assertEqual(os.readlink("/proc/%d/fd/%d" % (srv.proc.pid, fd)), "/dev/null")
            code, text = send_one(srv.port, rcpt="x@localhost")
            self.assertEqual(code, 250)
            self.assertEqual(srv.stop(), 0)
            with open(os.path.join(srv.dir, "queue", "data.mdb"), "rb") as f:
                data = f.read()
            self.assertNotIn(b"mailserver started", data)
            self.assertNotIn(b"info:", data)
            srv.mailctl("stats")   # the queue still opens
        finally:
            srv.cleanup()

    def test_mailctl_with_closed_standard_descriptors(self):
        """mailctl started with fds 0, 1 and 2 closed: its listing does not
        land in the queue's LMDB files (they would take those fds)."""
        srv = Server("relay_domains = hold.test\nroutes = hold.test=[127.0.0.1]:9\n"
                     "retry_min = 1h\nretry_max = 2h\n")
        try:
            srv.start()
            c, _ = greet(srv.port)
            for i in range(60):      # a listing longer than stdio's buffer
                c.cmd("MAIL FROM:<a@example.org>")
                c.cmd("RCPT TO:<listed%d@hold.test>" % i)
                c.cmd("DATA")
                c.send(MSG + b".\r\n")
                self.assertEqual(c.reply()[0], 250)
            c.close()
            self.assertEqual(srv.stop(), 0)
            qdir = os.path.join(srv.dir, "queue")
            sizes = {f: os.path.getsize(os.path.join(qdir, f)) for f in ("lock.mdb", "data.mdb")}

            def close_std():
                for fd in (0, 1, 2):
                    os.close(fd)
            for args in (["queue"], ["flush"]):
                subprocess.run([MAILCTL, "-c", srv.conf] + args, cwd=srv.dir,
                               preexec_fn=close_std, timeout=60 * SLOW)
            for f, size in sizes.items():
                with open(os.path.join(qdir, f), "rb") as fh:
                    data = fh.read()
                # the listing's last line, flush's line (no dump of the file)
                self.assertFalse(b" messages, " in data, f)
                self.assertFalse(b"made due now" in data, f)
                if f == "lock.mdb":
                    self.assertFalse(b"listed" in data, f)
                    self.assertEqual(len(data), size)
            self.assertIn("listed59@hold.test", srv.mailctl("queue").stdout)
        finally:
            srv.cleanup()

    def test_data_timeout(self):
        srv = Server("data_timeout = 1s\n")
        try:
            srv.start()
            c, _ = greet(srv.port)
            c.cmd("MAIL FROM:<a@example.org>")
            c.cmd("RCPT TO:<alice@localhost>")
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send(b"Subject: half\r\n\r\nand then silence\r\n")
            code, lines = c.reply()
            self.assertEqual(code, 421)
            self.assertTrue(lines[0].startswith("4.4.2"))
            self.assertTrue(c.closed())
            self.assertEqual(srv.known_ids(), set())  # nothing half-received was kept
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()

    def test_command_timeout(self):
        srv = Server("command_timeout = 1s\n")
        try:
            srv.start()
            c, _ = greet(srv.port)
            code, lines = c.reply()  # waits: the server speaks first
            self.assertEqual(code, 421)
            self.assertTrue(lines[0].startswith("4.4.2"))
            self.assertTrue(c.closed())
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


if __name__ == "__main__":
    unittest.main()


class MailctlStoppedTest(unittest.TestCase):
    """mailctl reads and changes the queue while the daemon is stopped."""

    def test_queue_show_delete_stats_while_stopped(self):
        srv = Server("routes = hold.test=[127.0.0.1]:9\nretry_min = 1h\nretry_max = 2h\n")
        try:
            srv.start()
            a = send_one(srv.port, rcpt="x@hold.test")[1].split()[-1]
            b = send_one(srv.port, rcpt="y@hold.test")[1].split()[-1]
            self.assertEqual(srv.stop(), 0)
            ids = [m["id"] for m in srv.queue_json()["messages"]]
            self.assertEqual(sorted(ids), sorted([a, b]))
            text = srv.mailctl("queue").stdout
            self.assertIn(a, text)
            self.assertIn("x@hold.test", text)
            self.assertIn("Subject: d", srv.mailctl("show", b).stdout)
            stats = json.loads(srv.mailctl("--json", "stats").stdout)
            self.assertEqual(stats["received"], 2)
            srv.mailctl("delete", a)
            self.assertEqual([m["id"] for m in srv.queue_json()["messages"]], [b])
            r = srv.mailctl("show", a, check=False)
            self.assertEqual(r.returncode, 1)
            srv.mailctl("flush")
            srv.mailctl("delete", "all")
            self.assertEqual(srv.queue_json()["messages"], [])
        finally:
            srv.cleanup()


class Ipv6Test(unittest.TestCase):
    def test_ipv6_listener(self):
        port = free_port("::1")
        srv = Server(port=port, listen="[::1]:%d" % port)
        try:
            srv.start(wait=False)
            srv.wait_ready(port, "::1")
            c = Client(port, host="::1")
            self.assertEqual(c.reply()[0], 220)
            self.assertEqual(c.cmd("EHLO v6.test")[0], 250)
            c.cmd("MAIL FROM:<a@example.org>")
            self.assertEqual(c.cmd("RCPT TO:<x@elsewhere.example>")[0], 250)  # ::1 relays
            c.close()
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


    @unittest.skipUnless(os.environ.get("MS_IN_NETNS") == "1" and os.geteuid() == 0,
                         "needs the private network namespace (run_integration.sh)")
    def test_per_address_limit_counts_a_64(self):
        """max_connections_per_ip counts an IPv6 client by its /64: one host
        often has all of it."""
        addrs = ["2001:db8:7:7::1", "2001:db8:7:7::2", "2001:db8:7:7::3", "2001:db8:7:8::1"]
        for a in addrs:     # only in this test's own network namespace
            subprocess.run(["ip", "-6", "addr", "add", a + "/64", "dev", "lo", "nodad"],
                           check=True, capture_output=True)
        port = free_port("::1")
        srv = Server("max_connections_per_ip = 2\n", port=port, listen="[::1]:%d" % port)
        try:
            srv.start(wait=False)
            srv.wait_ready(port, "::1")

            def client(source):
                s = socket.create_connection(("::1", port), timeout=10 * SLOW,
                                             source_address=(source, 0))
                c = Client.__new__(Client)
                c.sock, c.buf = s, b""
                return c
            held = [client(addrs[0]), client(addrs[1])]
            for c in held:
                self.assertEqual(c.reply()[0], 220)
            third = client(addrs[2])
            code, lines = third.reply()
            self.assertEqual(code, 421)
            self.assertTrue(lines[0].startswith("4.7.0"))
            third.close()
            other = client(addrs[3])                 # another /64
            self.assertEqual(other.reply()[0], 220)
            for c in held + [other]:
                c.close()
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()
            for a in addrs:
                subprocess.run(["ip", "-6", "addr", "del", a + "/64", "dev", "lo"],
                               capture_output=True)


class CorruptRecordTest(unittest.TestCase):
    """A queue record that no longer decodes is set aside with a log line;
    the server runs on and the good mail is still delivered."""

    def test_undecodable_record_set_aside(self):
        srv = Server("routes = hold.test=[127.0.0.1]:9\nretry_min = 1h\nretry_max = 2h\n")
        try:
            srv.start()
            good = send_one(srv.port, rcpt="x@hold.test")[1].split()[-1]
            self.assertEqual(srv.stop(), 0)
            # write junk into the envelope database with LMDB's own tool
            junk = ("VERSION=3\nformat=print\ntype=btree\nHEADER=END\n"
                    " 0102030405060708\n zzzz\nDATA=END\n")
            subprocess.run(["mdb_load", "-s", "msg", os.path.join(srv.dir, "queue")],
                           input=junk, text=True, check=True, capture_output=True)
            srv.start()
            srv.wait_log("record set aside")
            # the line comes before the commit that counts it
            wait_for(lambda: json.loads(srv.mailctl("--json", "stats").stdout)["bad"] == 1,
                     10, "the record counted as bad")
            # the line is logged inside the transaction that moves it
            wait_for(lambda: json.loads(srv.mailctl("--json", "stats").stdout)["bad"] == 1,
                     10, "the record set aside to be committed")
            self.assertEqual([m["id"] for m in srv.queue_json()["messages"]], [good])
            c, _ = greet(srv.port)
            self.assertEqual(c.cmd("NOOP")[0], 250)
            c.close()
            self.assertEqual(srv.stop(), 0)
            self.assertEqual(json.loads(srv.mailctl("--json", "stats").stdout)["bad"], 1)
        finally:
            srv.cleanup()


class ReaderSlotsTest(unittest.TestCase):
    """LMDB's reader table is sized from the thread counts that may read
    the queue at once: the delivery pool at its largest (1,024) and the
    filter pool at its largest (1,024, milters read staged records)."""

    def test_reader_slots_cover_the_pools(self):
        srv = Server()
        try:
            srv.start()
            r = subprocess.run(["mdb_stat", "-e", os.path.join(srv.dir, "queue")],
                               capture_output=True, text=True, timeout=30 * SLOW)
            self.assertEqual(r.returncode, 0, r.stderr)
            found = re.search(r"Max readers: (\d+)", r.stdout)
            self.assertIsNotNone(found, r.stdout)
            self.assertGreaterEqual(int(found.group(1)), 1024 + 1024, r.stdout)
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


class OneDaemonPerQueueTest(unittest.TestCase):
    """A second daemon on the same queue_dir refuses to start (an exclusive
    lock), so no message is delivered by two daemons; mailctl still works."""

    def test_second_daemon_refuses(self):
        a = Server()
        b = Server(workdir=None)
        try:
            a.start()
            # b: its own port and log, a's queue
            text = open(b.conf).read().replace("queue_dir = %s/queue" % b.dir,
                                               "queue_dir = %s/queue" % a.dir)
            b.write_config(text)
            r = subprocess.run([MAILSERVER, "-c", b.conf], cwd=b.dir, capture_output=True,
                               text=True, timeout=30 * SLOW)
            self.assertEqual(r.returncode, 1, (r.stdout, r.stderr, b.logtext()[-2000:]))
            self.assertIn("in use by another mailserver (pid %d)" % a.proc.pid, b.logtext())
            code, text = send_one(a.port)
            self.assertEqual(code, 250)
            wait_for(lambda: a.queue_json()["messages"] == [], 20, "the delivery")
            self.assertEqual(a.stop(), 0)
            # read once it stopped: the one daemon delivered it exactly once
            self.assertEqual(a.delivered_counts(), {text.split()[-1]: 1})
            # once the first one stopped, the queue may be taken again
            b.start()
            self.assertEqual(b.stop(), 0)
        finally:
            a.cleanup()
            b.cleanup()
