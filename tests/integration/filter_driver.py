"""Runs tests/tools/filter_driver (the filter clients of filter/ and
server/sasl_dovecot) with a script on stdin and returns its JSON lines."""
import json
import os
import subprocess
import tempfile
import time

from harness import ROOT, SLOW

DRIVER = os.environ.get("FILTER_DRIVER_BIN",
                        os.path.join(ROOT, "build", "default", "tools", "filter_driver"))
SYSTEM_PYTHON = "/usr/bin/python3"


class Run:
    def __init__(self, proc, elapsed):
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.rc = proc.returncode
        self.elapsed = elapsed
        self.lines = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]

    def stage(self, name, n=0):
        """The n-th result line of stage name."""
        got = [l for l in self.lines if l.get("stage") == name]
        if len(got) <= n:
            raise AssertionError("no %s #%d in %s\n%s" % (name, n, self.stdout, self.stderr))
        return got[n]


def run(mode, args, script, timeout=60):
    """mode: milter, policy or sasl; script: list of lines."""
    t0 = time.monotonic()
    p = subprocess.run([DRIVER, mode] + list(args), input="\n".join(script) + "\n",
                       capture_output=True, text=True, timeout=timeout * SLOW)
    r = Run(p, time.monotonic() - t0)
    if p.returncode != 0 or "Sanitizer" in p.stderr or "runtime error" in p.stderr:
        raise AssertionError("filter_driver %s: exit %d\n%s\n%s" % (
            mode, p.returncode, p.stdout, p.stderr[-4000:]))
    return r


def message_file(data, tmpdir=None):
    """Writes message bytes to a file the driver can read; returns its path."""
    fd, path = tempfile.mkstemp(prefix="ms-msg-", dir=tmpdir)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def session_script(msg_path, sender="sender@example.org", rcpts=("rcpt@example.org",),
                   helo="client.example", addr="192.0.2.1", port=4321, name="client.example",
                   piece=1000, macros=None):
    """A whole SMTP session for the milter mode, the usual macros set."""
    m = {"j": "mx.test", "{daemon_name}": "mailserver", "{daemon_addr}": "127.0.0.1",
         "v": "mailserver", "_": "%s [%s]" % (name, addr)}
    m.update(macros or {})
    lines = ["macro %s %s" % (k, v) for k, v in m.items()]
    lines += ["connect %s %s %d 4" % (name or "-", addr, port), "helo " + helo,
              "macro i 4F2A1B3C5D6E7", "mail %s SIZE=%d" % (sender or "<>", 1000)]
    lines += ["rcpt " + r for r in rcpts]
    lines += ["data", "message %s %d" % (msg_path, piece), "eom"]
    return lines
