"""A scripted mail filter speaking the milter protocol with Python's
standard library, for the failures a well-behaved libmilter never shows:
hangs, disconnects, garbage, oversized packets, replies out of place,
modifications it never negotiated, odd protocol versions. It records every
packet the MTA sent, per connection, so tests can check the exact bytes
(macros, header values, body chunk sizes, skipped steps).

    peer = MilterPeer(steps=..., replies={"R": [reply("r")]}).start()
    ... peer.endpoint is "unix:/tmp/.../milter.sock"
    peer.stop()

replies maps a command letter to what is sent back instead of the usual
SMFIR_CONTINUE: a list of packets (bytes), or a function(data, conn) that
returns one, or HANG (never answer; the connection stays open until stop)
or CLOSE (close the connection). optneg, when given, is sent as the whole
answer to SMFIC_OPTNEG (bytes), or HANG/CLOSE.
"""
import os
import shutil
import socket
import struct
import tempfile
import threading

HANG = "hang"
CLOSE = "close"

# Commands that get a reply, and the "no reply" flag of each.
NR_FLAGS = {"C": 0x1000, "H": 0x2000, "M": 0x4000, "R": 0x8000, "T": 0x10000,
            "U": 0x20000, "N": 0x40000, "B": 0x80000, "L": 0x80, "E": 0}


def packet(cmd, data=b""):
    if isinstance(cmd, str):
        cmd = cmd.encode()
    return struct.pack(">I", len(data) + 1) + cmd + data


def optneg(version=6, actions=0x1FF, steps=0, macros=None):
    """SMFIC_OPTNEG answer; macros: {stage number: "names"}."""
    data = struct.pack(">III", version, actions, steps)
    for stage, names in (macros or {}).items():
        data += struct.pack(">I", stage) + names.encode() + b"\0"
    return packet("O", data)


def strings(*parts):
    return b"".join((p.encode() if isinstance(p, str) else p) + b"\0" for p in parts)


def header_packet(cmd, name, value, index=None):
    data = (struct.pack(">I", index) if index is not None else b"") + strings(name, value)
    return packet(cmd, data)


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.packets = []  # (command letter, data bytes)
        self.buf = b""
        self.ended = threading.Event()  # set once the MTA closed or QUIT

    def read_packet(self):
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    cmd = self.buf[4:5].decode("latin-1")
                    data = self.buf[5:4 + n]
                    self.buf = self.buf[4 + n:]
                    return cmd, data
            try:
                d = self.sock.recv(65536)
            except OSError:
                return None
            if not d:
                return None
            self.buf += d


class MilterPeer:
    def __init__(self, version=6, actions=0x1FF, steps=0, macros=None, replies=None,
                 optneg_reply=None, inet=False):
        self.dir = tempfile.mkdtemp(prefix="ms-milterpeer-")
        self.replies = replies or {}
        self.steps = steps
        self.optneg_reply = optneg_reply if optneg_reply is not None else \
            optneg(version, actions, steps, macros)
        if inet:
            self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.lsock.bind(("127.0.0.1", 0))
            self.endpoint = "inet:127.0.0.1:%d" % self.lsock.getsockname()[1]
        else:
            self.path = os.path.join(self.dir, "milter.sock")
            self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.lsock.bind(self.path)
            self.endpoint = "unix:" + self.path
        self.lsock.listen(16)
        self.conns = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = []

    def start(self):
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def _accept(self):
        self.lsock.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            s.settimeout(None)
            c = Conn(s)
            with self.lock:
                self.conns.append(c)
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()
            self.threads.append(t)

    def _send(self, c, what, data):
        """Sends what (packets, a function's result, HANG or CLOSE); False
        when the connection is to end."""
        if callable(what):
            what = what(data, c)
        if what == HANG:
            self.stopping.wait(120)
            return False
        if what == CLOSE:
            return False
        if isinstance(what, bytes):
            what = [what]
        for p in what:
            if p == HANG:
                self.stopping.wait(120)
                return False
            if p == CLOSE:
                return False
            try:
                c.sock.sendall(p)
            except OSError:
                return False
        return True

    def _serve(self, c):
        try:
            while True:
                p = c.read_packet()
                if p is None:
                    return
                cmd, data = p
                c.packets.append((cmd, data))
                if cmd == "O":
                    if not self._send(c, self.optneg_reply, data):
                        return
                    continue
                if cmd in ("D", "A", "K"):
                    continue
                if cmd == "Q":
                    return
                if cmd in self.replies:
                    if not self._send(c, self.replies[cmd], data):
                        return
                    continue
                if cmd not in NR_FLAGS or (self.steps & NR_FLAGS[cmd]):
                    continue
                if not self._send(c, [packet("c")], data):
                    return
        finally:
            try:
                c.sock.close()
            except OSError:
                pass
            c.ended.set()

    def commands(self, i=-1):
        """The command letters connection i received, in order."""
        return [cmd for cmd, _ in self.conns[i].packets]

    def packets_of(self, cmd, i=-1):
        return [d for c, d in self.conns[i].packets if c == cmd]

    def find(self, pred):
        """The connections for which pred(conn) is true, oldest first."""
        with self.lock:
            conns = list(self.conns)
        return [c for c in conns if pred(c)]

    def conn_from_port(self, port):
        """The connection whose SMFIC_CONNECT names client port port, or
        None (yet)."""
        got = self.find(lambda c: any(cmd == "C" and parse_connect(d)[2] == port
                                      for cmd, d in list(c.packets)))
        return got[-1] if got else None

    def stop(self):
        self.stopping.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            for c in self.conns:
                try:
                    c.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for t in self.threads:
            t.join(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def parse_macros(data):
    """SMFIC_MACRO data -> (stage letter, {name: value})."""
    stage = data[:1].decode()
    parts = data[1:].split(b"\0")[:-1]
    return stage, {parts[i].decode(): parts[i + 1].decode() for i in range(0, len(parts) - 1, 2)}


def parse_strings(data):
    """NUL-terminated strings (MAIL and RCPT arguments, headers) -> [str]."""
    return [p.decode("latin-1") for p in data.split(b"\0")[:-1]]


def parse_connect(data):
    """SMFIC_CONNECT data -> (hostname, family letter, port, address)."""
    host, rest = data.split(b"\0", 1)
    family = rest[:1].decode()
    if family in ("4", "6"):
        return (host.decode(), family, struct.unpack(">H", rest[1:3])[0],
                rest[3:].rstrip(b"\0").decode())
    return host.decode(), family, None, rest[1:].rstrip(b"\0").decode()
