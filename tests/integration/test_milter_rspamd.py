"""The milter client against rspamd (Debian's rspamd 3.x) through its milter
proxy: an rspamd_proxy worker in milter mode scanning by itself
(self_scan), from Debian's stock configuration with private directories
and overrides (no normal or controller worker, no Redis, every DNS query
sent to a dead loopback port, a short TLD list so it starts in seconds).
GTUBE is rejected; a clean message gets rspamd's headers as add and insert
header changes; rspamd down means each default_action.
"""
import email
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

from filter_driver import message_file, run, session_script
from harness import free_port, wait_for, SLOW

RSPAMD = shutil.which("rspamd") or "/usr/bin/rspamd"
STOCK_CONF = "/etc/rspamd/rspamd.conf"
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
CLEAN = (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n"
         b"Subject: lunch tomorrow\r\nMessage-ID: <lunch.1@example.org>\r\n"
         b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\n"
         b"Shall we meet at noon at the usual place?\r\n\r\nAlice\r\n")


def available():
    return os.path.exists(RSPAMD) and os.path.exists(STOCK_CONF)


class Rspamd:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ms-rspamd-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.endpoint = "inet:127.0.0.1:%d" % self.port
        d = {n: os.path.join(self.dir, n) for n in ("db", "run", "log", "local")}
        for n in ("db", "run", "log", "local/local.d", "local/override.d"):
            os.makedirs(os.path.join(self.dir, n))
        self.log = os.path.join(d["log"], "rspamd.log")
        tld = os.path.join(self.dir, "tld.dat")
        with open(tld, "w") as f:
            f.write("com\norg\nnet\ntest\nexample\n")
        files = {
            "override.d/worker-proxy.inc":
                'bind_socket = "127.0.0.1:%d";\nmilter = yes;\ntimeout = 60s;\n'
                'upstream "local" {\n  default = yes;\n  self_scan = yes;\n}\ncount = 1;\n'
                % self.port,
            "override.d/worker-normal.inc": "enabled = false;\n",
            "override.d/worker-controller.inc": "enabled = false;\n",
            "override.d/logging.inc": 'type = "file";\nfilename = "%s";\nlevel = "info";\n'
                                      % self.log,
            "local.d/options.inc": 'dns {\n  nameserver = ["127.0.0.1:1"];\n  timeout = 0.3s;\n'
                                   '  retransmits = 0;\n}\nurl_tld = "%s";\n' % tld,
            "local.d/milter_headers.conf":
                'use = ["x-spamd-result", "x-rspamd-server", "x-rspamd-queue-id", '
                '"x-spam-status", "authentication-results"];\n'
                'skip_local = false;\nskip_authenticated = false;\n',
        }
        for name, text in files.items():
            with open(os.path.join(d["local"], name), "w") as f:
                f.write(text)
        self.argv = [RSPAMD, "-f", "-c", STOCK_CONF] + \
            ["--var=%s=%s" % kv for kv in (("LOCAL_CONFDIR", d["local"]), ("DBDIR", d["db"]),
                                           ("RUNDIR", d["run"]), ("LOGDIR", d["log"]))]
        try:
            pw = pwd.getpwnam("_rspamd")
            for root, dirs, names in os.walk(self.dir):
                for n in [root] + [os.path.join(root, x) for x in dirs + names]:
                    os.chown(n, pw.pw_uid, pw.pw_gid)
            self.argv += ["-u", "_rspamd", "-g", "_rspamd"]
        except KeyError:
            self.argv.append("-i")
        self.proc = None

    def start(self):
        self.out = open(os.path.join(self.dir, "stdout"), "w")
        self.proc = subprocess.Popen(self.argv, stdout=self.out, stderr=subprocess.STDOUT,
                                     cwd=self.dir)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("rspamd exited: %s" % self.logtext())
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return True
            except OSError:
                return False
        wait_for(ready, 120, "rspamd's milter proxy to listen")
        return self

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.out.close()

    def logtext(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-4000:]
        except FileNotFoundError:
            return ""

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipUnless(available(), "rspamd is not installed")
class RspamdMilterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ms-rspamdtest-")
        cls.rspamd = Rspamd().start()

    @classmethod
    def tearDownClass(cls):
        cls.rspamd.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def session(self, data, args=(), **kw):
        f = message_file(data, self.tmp)
        return run("milter", list(args) + [self.rspamd.endpoint], session_script(f, **kw),
                   timeout=120)

    def test_gtube_is_rejected(self):
        r = self.session(b"Subject: test\r\n\r\n" + GTUBE + b"\r\n")
        eom = r.stage("eom")
        self.assertEqual(eom["action"], "reject", r.stdout)
        self.assertEqual(eom["default"], 0)
        self.assertTrue(eom["reply"].startswith("554 5.7.1 "), eom["reply"])
        self.assertIn("Gtube", eom["reply"])
        self.assertIsNone(eom["mods"])

    def test_clean_message_gets_rspamd_headers(self):
        r = self.session(CLEAN, sender="alice@example.org", rcpts=("bob@example.net",),
                         macros={"i": "4F2A1B3C5D6E7"})
        eom = r.stage("eom")
        self.assertEqual(eom["action"], "accept", r.stdout + self.rspamd.logtext())
        self.assertEqual(eom["default"], 0)
        mods = {m["name"]: m for m in eom["mods"]}
        self.assertEqual(mods["X-Spamd-Result"]["kind"], "add_header")
        self.assertTrue(mods["X-Spamd-Result"]["value"].startswith(" default: False ["),
                        mods["X-Spamd-Result"]["value"])
        self.assertTrue(mods["X-Spam-Status"]["value"].startswith(" No, score="))
        # The queue id it names is our "i" macro: the macros reached it.
        self.assertEqual(mods["X-Rspamd-Queue-Id"]["value"], " 4F2A1B3C5D6E7")
        self.assertIn("X-Rspamd-Server", mods)
        self.assertEqual(mods["Authentication-Results"]["kind"], "insert_header")
        # Folded values come as CRLF + HTAB, ready for the message; the
        # changed header section parses as one, with rspamd's fields.
        self.assertIn("\r\n\t", mods["X-Spamd-Result"]["value"])
        parsed = email.message_from_string(eom["applied"] + "\r\n")
        self.assertEqual(parsed["X-Rspamd-Queue-Id"], "4F2A1B3C5D6E7")
        self.assertEqual(parsed["Subject"], "lunch tomorrow")
        self.assertTrue(parsed["X-Spamd-Result"].startswith("default: False"))
        self.assertEqual(list(parsed.keys())[1], "Authentication-Results")

    def test_two_messages_one_connection(self):
        clean = message_file(CLEAN, self.tmp)
        spam = message_file(b"Subject: x\r\n\r\n" + GTUBE + b"\r\n", self.tmp)
        script = session_script(clean) + ["mail a@example.org", "rcpt b@example.net", "data",
                                          "message %s 7" % spam, "eom"]
        r = run("milter", [self.rspamd.endpoint], script, timeout=120)
        self.assertEqual(r.stage("eom", 0)["action"], "accept")
        self.assertEqual(r.stage("eom", 1)["action"], "reject")

    def test_zz_rspamd_down_means_default_action(self):
        # Runs last in the class (unittest sorts by name).
        self.rspamd.stop()
        for default, action, reply in (
                ("tempfail", "tempfail", "451 4.7.1 Service unavailable - try again later"),
                ("reject", "reject", "550 5.7.1 Service unavailable"),
                ("accept", "accept", "")):
            r = self.session(CLEAN, args=["--default", default])
            self.assertEqual(r.stage("connect")["action"], action)
            self.assertEqual(r.stage("connect")["reply"], reply)
            self.assertEqual(r.stage("eom")["action"], action)
            self.assertEqual(r.stage("eom")["default"], 1 if default != "accept" else 0)
            self.assertIn("Connection refused", r.stderr)


if __name__ == "__main__":
    unittest.main()
