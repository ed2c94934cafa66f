"""Test harness: starts real mailserver processes on free loopback ports.

Every helper waits for a condition (a port that answers, a file that
appears, a process that exits) with a bounded deadline; nothing sleeps as
synchronisation. Processes are stopped by their own PID.
"""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAILSERVER = os.environ.get("MAILSERVER_BIN", os.path.join(ROOT, "mailserver"))
MAILCTL = os.environ.get("MAILCTL_BIN", os.path.join(ROOT, "mailctl"))
SANITIZE = os.environ.get("SANITIZE", "")
# Sanitized builds are several times slower: scale the deadlines.
SLOW = 4 if SANITIZE else 1


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(cond, timeout=10.0, what="condition"):
    """Polls cond() until it returns a true value or timeout passes."""
    deadline = time.monotonic() + timeout * SLOW
    delay = 0.005
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


_certs = {}


def test_cert(name="localhost", days=30):
    """A self-signed certificate and key (PEM) made with certtool, valid
    for days more."""
    if (name, days) in _certs:
        return _certs[(name, days)]
    d = tempfile.mkdtemp(prefix="ms-cert-")
    key, cert, tmpl = (os.path.join(d, n) for n in ("key.pem", "cert.pem", "cert.tmpl"))
    with open(tmpl, "w") as f:
        f.write('cn = "%s"\ndns_name = "%s"\nexpiration_days = %d\ntls_www_server\n'
                'signing_key\nencryption_key\n' % (name, name, days))
    subprocess.run(["certtool", "--generate-privkey", "--key-type=rsa", "--bits=2048",
                    "--outfile", key], check=True, capture_output=True)
    subprocess.run(["certtool", "--generate-self-signed", "--load-privkey", key,
                    "--template", tmpl, "--outfile", cert], check=True, capture_output=True)
    _certs[(name, days)] = (cert, key)
    return cert, key


class Server:
    """One mailserver process with its own directory, config and port."""

    def __init__(self, extra="", port=None, listen=None, workdir=None, hostname="mx.test"):
        self.dir = workdir or tempfile.mkdtemp(prefix="ms-test-")
        self.port = port or free_port()
        self.conf = os.path.join(self.dir, "mailserver.conf")
        self.log = os.path.join(self.dir, "mailserver.log")
        self.proc = None
        listen = listen or "127.0.0.1:%d" % self.port
        text = ("hostname = %s\n" % hostname +
                "".join("listen = %s\n" % l for l in listen.split(";")) +
                "queue_dir = %s/queue\n" % self.dir +
                "mail_dir = %s/mail\n" % self.dir +
                "log_file = %s\n" % self.log +
                "log_level = debug\n" +
                "dns_server = 127.0.0.1:1\n" +
                "shutdown_timeout = 10s\n")
        self.write_config(text + extra)

    def write_config(self, text):
        with open(self.conf, "w") as f:
            f.write(text)

    def start(self, wait=True, env=None):
        """env: variables to add (e.g. LD_PRELOAD for faults.py)."""
        full = None
        if env:
            full = dict(os.environ)
            full.update(env)
        self.proc = subprocess.Popen([MAILSERVER, "-c", self.conf], cwd=self.dir,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=full)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, port=None, host="127.0.0.1"):
        port = port or self.port

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("mailserver exited with %s: %s" % (
                    self.proc.returncode, self.proc.stderr.read().decode(errors="replace")))
            try:
                with socket.create_connection((host, port), timeout=1):
                    return True
            except OSError:
                return False
        wait_for(ready, 20, "mailserver to listen on %d" % port)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stops the server; returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("mailserver did not stop")
        code = self.proc.returncode
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.proc = None
        if "Sanitizer" in err or "runtime error" in err:
            raise AssertionError("sanitizer report:\n" + err[-6000:])
        return code

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.proc = None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def cleanup(self):
        try:
            if self.proc is not None:
                self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def logtext(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, needle, timeout=10):
        return wait_for(lambda: needle in self.logtext(), timeout, "log line %r" % needle)

    def mailctl(self, *args, check=True):
        r = subprocess.run([MAILCTL, "-c", self.conf] + list(args), cwd=self.dir,
                           capture_output=True, text=True, timeout=60 * SLOW)
        if check and r.returncode != 0:
            raise AssertionError("mailctl %s: %d %s" % (args, r.returncode, r.stderr))
        return r

    def queue_json(self):
        return json.loads(self.mailctl("--json", "queue").stdout)

    def delivered_ids(self):
        """Queue ids named in the Received headers of every delivered file."""
        ids = set()
        root = os.path.join(self.dir, "mail")
        for dirpath, _, names in os.walk(root):
            if os.path.basename(dirpath) != "new":
                continue
            for n in names:
                with open(os.path.join(dirpath, n), "rb") as f:
                    head = f.read(4096)
                m = re.search(rb"\bid ([0-9A-F]{13})\b", head)
                if m:
                    ids.add(m.group(1).decode())
        return ids

    def known_ids(self):
        """Every message the server holds: queued or delivered."""
        return {m["id"] for m in self.queue_json()["messages"]} | self.delivered_ids()

    def maildir_files(self, addr, sub="new"):
        user, domain = addr.split("@")
        d = os.path.join(self.dir, "mail", domain.lower(), user, sub)
        try:
            return sorted(os.path.join(d, n) for n in os.listdir(d))
        except FileNotFoundError:
            return []


class DnsServer:
    """ldns-testns on a random loopback port, answering from a data file."""

    def __init__(self, datafile):
        self.proc = subprocess.Popen(["ldns-testns", "-r", datafile],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.port = None
        deadline = time.monotonic() + 10 * SLOW
        while self.port is None and time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode(errors="replace")
            if not line:
                break
            m = re.search(r"Listening on port (\d+)", line)
            if m:
                self.port = int(m.group(1))
        if self.port is None:
            self.stop()
            raise AssertionError("ldns-testns did not start")
        # keep draining its output so it never blocks on a full pipe
        import threading
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Client:
    """A raw SMTP client: exact bytes out, replies parsed in."""

    def __init__(self, port, host="127.0.0.1", timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout * SLOW)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("connection closed; have %r" % self.buf)
            self.buf += d
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l.decode(errors="replace")

    def reply(self):
        """One whole (possibly multi-line) reply: (code, [texts])."""
        lines = []
        while True:
            l = self.line()
            lines.append(l[4:])
            if len(l) < 4 or l[3] != "-":
                return int(l[:3]), lines

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def closed(self):
        """True when the server closed the connection (reads EOF)."""
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (ConnectionResetError, BrokenPipeError):
            return True

    def starttls(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def greet(port, ehlo="client.test"):
    c = Client(port)
    code, _ = c.reply()
    assert code == 220, code
    code, lines = c.cmd("EHLO " + ehlo)
    assert code == 250, (code, lines)
    return c, lines


def dot_stuff(body):
    return b"".join((b"." + l if l.startswith(b".") else l)
                    for l in body.splitlines(keepends=True))


def send_message(port, sender, rcpts, body=b"Subject: test\r\n\r\nhello\r\n"):
    """One whole transaction; returns the queue id of the 250 reply."""
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    c, _ = greet(port)
    assert c.cmd("MAIL FROM:<%s>" % sender)[0] == 250
    for r in rcpts:
        code, _ = c.cmd("RCPT TO:<%s>" % r)
        assert code == 250, (r, code)
    assert c.cmd("DATA")[0] == 354
    c.send(dot_stuff(body) + b".\r\n")
    code, lines = c.reply()
    c.close()
    assert code == 250, (code, lines)
    return lines[0].split()[-1]
