"""Test harness: starts real mailserver processes on free loopback ports.

Every helper waits for a condition (a port that answers, a file that
appears, a process that exits) with a bounded deadline; nothing sleeps as
synchronisation. Processes are stopped by their own PID.
"""
import json
import os
import queue
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAILSERVER = os.environ.get("MAILSERVER_BIN", os.path.join(ROOT, "mailserver"))
MAILCTL = os.environ.get("MAILCTL_BIN", os.path.join(ROOT, "mailctl"))
SANITIZE = os.environ.get("SANITIZE", "")
# Sanitized builds are several times slower: scale the deadlines.
SLOW = 4 if SANITIZE else 1


def _port_range():
    """Ports for servers the tests start: below the kernel's ephemeral
    range, so that no outgoing connection and no bind to port 0 (a peer
    on port 0, a client) can take one between free_port and the bind."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    # below, but clear of the default ports of the peers (rspamd 11332..,
    # Prometheus 9090, unbound-control 8953, ...)
    if low - 20000 >= 4096:
        return 20000, low
    return high + 1, 65536


_ports_given = set()
_port_next = [None]


def _port_bindable(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(fam, kind) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def free_port(host="127.0.0.1"):
    """A port free on host (TCP and UDP) that no other call of this process
    returned: two servers started later never get the same one, nor one
    that a client or peer took meanwhile (see _port_range)."""
    lo, hi = _port_range()
    if _port_next[0] is None:   # apart from another suite on the same host
        _port_next[0] = lo + (os.getpid() * 7919) % (hi - lo)
    for _ in range(hi - lo):
        port = _port_next[0]
        _port_next[0] = lo if port + 1 >= hi else port + 1
        if port in _ports_given:
            continue
        if _port_bindable(host, port) and _port_bindable("0.0.0.0", port):
            _ports_given.add(port)
            return port
    raise AssertionError("no free port left in %d..%d" % (lo, hi - 1))


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

    def backtraces(self):
        """Every thread's stack in the running server (gdb), for a test
        that found it stuck; "" when gdb is not there."""
        if self.proc is None or shutil.which("gdb") is None:
            return ""
        r = subprocess.run(["gdb", "-p", str(self.proc.pid), "-batch", "-nx",
                            "-ex", "thread apply all bt"],
                           capture_output=True, text=True, timeout=120)
        return r.stdout[-30000:]

    def wait_log(self, needle, timeout=10):
        return wait_for(lambda: needle in self.logtext(), timeout, "log line %r" % needle)

    def sessions(self):
        """The sessions the server counts now (the stats line of SIGUSR2)."""
        mark = "stats: received="
        before = self.logtext().count(mark)
        self.signal(signal.SIGUSR2)
        wait_for(lambda: self.logtext().count(mark) > before, 10, "a stats line")
        last = [l for l in self.logtext().splitlines() if mark in l][-1]
        return int(re.search(r"sessions=(\d+)", last).group(1))

    def wait_sessions(self, n=0):
        """Waits until the server counts n sessions: a connection's count
        ends after the client saw it close (wait_ready's probe too)."""
        wait_for(lambda: self.sessions() == n, 10, "%d sessions" % n)

    def mailctl(self, *args, check=True):
        r = subprocess.run([MAILCTL, "-c", self.conf] + list(args), cwd=self.dir,
                           capture_output=True, text=True, timeout=60 * SLOW)
        if check and r.returncode != 0:
            raise AssertionError("mailctl %s: %d %s" % (args, r.returncode, r.stderr))
        return r

    def queue_json(self):
        return json.loads(self.mailctl("--json", "queue").stdout)

    def delivered_counts(self):
        """Delivered files per queue id (named in their Received headers)."""
        counts = {}
        root = os.path.join(self.dir, "mail")
        for dirpath, _, names in os.walk(root):
            if os.path.basename(dirpath) != "new":
                continue
            for n in names:
                with open(os.path.join(dirpath, n), "rb") as f:
                    head = f.read(4096)
                m = re.search(rb"\bid ([0-9A-F]{13})\b", head)
                if m:
                    qid = m.group(1).decode()
                    counts[qid] = counts.get(qid, 0) + 1
        return counts

    def delivered_ids(self):
        """Queue ids named in the Received headers of every delivered file."""
        return set(self.delivered_counts())

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
    """ldns-testns on a free loopback port, answering from a data file.

    The port is one of free_port's (-p), not ldns-testns' own -r: that
    one is any port at random, also one that a server of the test is
    about to bind, and it gives up when the port's UDP half is free but
    its TCP half is not. Should the port be taken all the same, it is
    started again on another one."""

    ATTEMPTS = 5

    def __init__(self, datafile):
        self.output = []
        for _ in range(self.ATTEMPTS):
            self.port = free_port()
            self.proc = subprocess.Popen(["ldns-testns", "-p", str(self.port), datafile],
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self._lines = queue.Queue()
            # drains its output for as long as it runs, so it never blocks
            # on a full pipe
            threading.Thread(target=self._drain, args=(self.proc, self._lines),
                             daemon=True).start()
            if self._listening():
                return
            self.stop()
        raise AssertionError("ldns-testns did not start:\n" + "".join(self.output[-20:]))

    @staticmethod
    def _drain(proc, lines):
        for line in iter(proc.stdout.readline, b""):
            lines.put(line.decode(errors="replace"))
        lines.put(None)

    def _listening(self):
        """True once it listens (it says so after bind and listen), False
        when it exited first."""
        deadline = time.monotonic() + 10 * SLOW
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                return False
            if line is None:
                return False
            self.output.append(line)
            if "Listening on port %d" % self.port in line:
                return True

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10 * SLOW)


class Client:
    """A raw SMTP client: exact bytes out, replies parsed in."""

    def __init__(self, port, host="127.0.0.1", timeout=10, source=None):
        """source: a local address to connect from (all of 127/8 is ours)."""
        self.sock = socket.create_connection((host, port), timeout=timeout * SLOW,
                                             source_address=(source, 0) if source else None)
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
