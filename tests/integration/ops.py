"""Helpers of the operations tests (metrics, queue control, abuse
control): password hashes, metrics scrapes and their parser, a peer that
accepts connections and never answers, SMTP AUTH."""
import base64
import re
import socket
import subprocess
import threading
import urllib.request
import warnings

from harness import SLOW

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def crypt_hash(password):
    """A SHA-512 crypt(3) hash ($6$...) for users_file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))
    except ImportError:  # Python 3.13 dropped the module
        return subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password,
                              capture_output=True, text=True, check=True).stdout.strip()


def scrape(port, accept=None):
    """GET /metrics; returns the text."""
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % port,
                                 headers={"Accept": accept} if accept else {})
    with NO_PROXY.open(req, timeout=10 * SLOW) as r:
        return r.read().decode()


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


def parse(text):
    """{(name, labels): value} of every sample; labels as a sorted tuple
    of (name, value) pairs."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError("not a sample line: %r" % line)
        labels = ()
        if m.group(2):
            labels = tuple(sorted(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                             m.group(2))))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples, name, **labels):
    """The value of one sample, 0 when absent."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def auth_plain(client, user, password):
    """AUTH PLAIN with an initial response; returns the reply code."""
    token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    return client.cmd("AUTH PLAIN " + token)[0]


class SilentPeer:
    """Listens on a loopback port and accepts connections without ever
    answering; hangup() closes them (the client sees the connection go)."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)

    def accepted(self):
        with self.lock:
            return len(self.conns)

    def hangup(self):
        with self.lock:
            for c in self.conns:
                c.close()
            self.conns = []

    def close(self):
        self.hangup()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept
        except OSError:
            pass
        self.sock.close()
        self.thread.join(10)


def client_from(port, source, timeout=10):
    """A harness Client whose connection comes from address source (any
    of 127.0.0.0/8), so that per-address limits see another client."""
    from harness import Client
    c = Client.__new__(Client)
    c.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW,
                                      source_address=(source, 0))
    c.buf = b""
    return c


def greeting_from(port, source):
    """Connects from source and reads the greeting: (code, text, client)."""
    c = client_from(port, source)
    code, lines = c.reply()
    return code, lines[0] if lines else "", c
