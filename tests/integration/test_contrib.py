"""What administrators install: `make install` (PREFIX, DESTDIR) puts the
binaries and manual pages in place and they work from there; mailctl(8)
documents every command mailctl's usage names; the systemd unit in
contrib/ passes `systemd-analyze verify` against the installed files; and
the logrotate example in contrib/ rotates a running daemon's log with
SIGUSR2 (its postrotate line pointed at the test daemon's pid instead of
systemctl)."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import MAILSERVER, Server, SLOW, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SANITIZE = os.environ.get("SANITIZE", "")


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dest = tempfile.mkdtemp(prefix="ms-install-")
        r = subprocess.run(["make", "-s", "--no-print-directory", "install",
                            "DESTDIR=" + cls.dest, "PREFIX=/usr/local",
                            "SANITIZE=" + SANITIZE], cwd=ROOT, capture_output=True,
                           text=True, timeout=600 * SLOW)
        if r.returncode != 0:
            shutil.rmtree(cls.dest, ignore_errors=True)
            raise AssertionError("make install: " + r.stdout + r.stderr)
        cls.sbin = os.path.join(cls.dest, "usr/local/sbin")
        cls.man = os.path.join(cls.dest, "usr/local/share/man")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dest, ignore_errors=True)

    def test_files_in_place(self):
        for name in ("mailserver", "mailctl"):
            path = os.path.join(self.sbin, name)
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o755)
            with open(path, "rb") as a, open(os.path.join(os.path.dirname(MAILSERVER),
                                                          name), "rb") as b:
                self.assertEqual(a.read(), b.read())
        for page in ("man8/mailserver.8", "man8/mailctl.8", "man5/mailserver.conf.5"):
            path = os.path.join(self.man, page)
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o644)
        # man finds the installed pages by name
        env = dict(os.environ, MANPATH=self.man)
        for name, section in (("mailserver", "8"), ("mailserver.conf", "5"), ("mailctl", "8")):
            r = subprocess.run(["man", "-w", section, name], env=env, capture_output=True,
                               text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.strip().startswith(self.man), r.stdout)

    def test_installed_binary_checks_config(self):
        with tempfile.TemporaryDirectory() as d:
            conf = os.path.join(d, "mailserver.conf")
            with open(conf, "w") as f:
                f.write("listen = 127.0.0.1:2525\nqueue_dir = %s/q\n" % d)
            r = subprocess.run([os.path.join(self.sbin, "mailserver"), "-t", "-c", conf],
                               capture_output=True, text=True, timeout=60 * SLOW)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(conf, "a") as f:
                f.write("no_such_key = 1\n")
            r = subprocess.run([os.path.join(self.sbin, "mailserver"), "-t", "-c", conf],
                               capture_output=True, text=True, timeout=60 * SLOW)
            self.assertEqual(r.returncode, 2)
            self.assertIn("mailserver.conf:3:", r.stderr)

    def test_mailctl_commands_documented(self):
        r = subprocess.run([os.path.join(self.sbin, "mailctl")], capture_output=True,
                           text=True, timeout=60 * SLOW)
        commands = set()
        # "usage: mailctl [-c FILE] [--json] queue | show ID | ..." and more
        # "mailctl COMMAND ARGS [OPTIONS]" lines: options in brackets go.
        for line in (r.stdout + r.stderr).splitlines():
            line = re.sub(r"\[[^]]*\]", "", line.split("mailctl", 1)[-1])
            commands |= {alt.split()[0] for alt in line.split("|") if alt.strip()}
        self.assertTrue({"queue", "show", "delete", "flush", "stats"} <= commands, commands)
        with open(os.path.join(self.man, "man8/mailctl.8")) as f:
            page = f.read()
        section = page.split("\n.SH COMMANDS\n", 1)[1].split("\n.SH ", 1)[0]
        documented = set(re.findall(r"^\.BI? (\S+)", section, re.M))
        self.assertEqual(commands - documented, set(),
                         "mailctl commands missing from mailctl(8)")

    def test_systemd_unit_verifies(self):
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze not installed")
        with open(os.path.join(ROOT, "contrib", "mailserver.service")) as f:
            unit = f.read()
        self.assertIn("Type=notify", unit)
        self.assertIn("ExecReload=/bin/kill -HUP $MAINPID", unit)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "mailserver.service")
            with open(path, "w") as f:
                f.write(unit.replace("/usr/local/sbin", self.sbin))
            env = dict(os.environ, MANPATH=self.man)
            r = subprocess.run(["systemd-analyze", "verify", path], env=env,
                               capture_output=True, text=True, timeout=60 * SLOW)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(r.stdout + r.stderr, "")
            # the check can fail: a unit naming a missing binary does
            with open(path, "w") as f:
                f.write(unit.replace("/usr/local/sbin", d + "/nowhere"))
            r = subprocess.run(["systemd-analyze", "verify", path], env=env,
                               capture_output=True, text=True, timeout=60 * SLOW)
            self.assertNotEqual(r.returncode, 0)


class LogrotateTest(unittest.TestCase):
    def test_rotation_reopens_the_log(self):
        if shutil.which("logrotate") is None:
            self.skipTest("logrotate not installed")
        srv = Server()
        try:
            srv.start()
            srv.wait_log("mailserver started")
            with open(os.path.join(ROOT, "contrib", "mailserver.logrotate")) as f:
                example = f.read()
            self.assertIn("SIGUSR2", example)
            conf = re.sub(r"systemctl kill [^\n]*", "kill -USR2 %d" % srv.proc.pid, example)
            conf = conf.replace("/var/log/mailserver.log", srv.log)
            path = os.path.join(srv.dir, "logrotate.conf")
            with open(path, "w") as f:
                f.write(conf)
            r = subprocess.run(["logrotate", "-f", "-s", os.path.join(srv.dir, "state"),
                                path], capture_output=True, text=True, timeout=60 * SLOW)
            self.assertEqual(r.returncode, 0, r.stderr)
            rotated = srv.log + ".1"
            with open(rotated) as f:
                self.assertIn("mailserver started", f.read())
            # the daemon reopened log_file: its stats line is in the new file
            srv.wait_log("stats: received=")
            self.assertNotIn("mailserver started", srv.logtext())
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


if __name__ == "__main__":
    unittest.main()
