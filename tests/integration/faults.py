"""Fault makers for tests/integration/test_faults.py: a small tmpfs (a full
disk on demand) and DNS servers that are down, slow or answer garbage.

    with Tmpfs("2m") as d:          # a 2 MiB file system at d.path
        ...queue_dir = d.path...
    with DnsFault(upstream_port, "slow", delay=3.0) as dns:
        ...dns_server = 127.0.0.1:<dns.port>...

Tmpfs mounts inside the test run's private mount namespace
(tests/run_integration.sh runs everything under `unshare --net --mount`),
so nothing is visible outside it; Tmpfs.available() says whether mounting
works here (root in a private namespace). DnsFault modes:
  "slow"     forwards each query to the upstream server (ldns-testns) and
             sends its answer back `delay` seconds later
  "garbage"  answers every query at once with the query's ID followed by
             random bytes (a reply no parser may accept)
  "silent"   takes queries and never answers
  "down"     nothing listens on the port: queries are refused (ICMP)
Only loopback is used; every wait is bounded.

Faults inside a server process (a wall clock that is a day off, a meta
page write that fails) come from tests/fault/msfault.c, preloaded:
    srv.start(env=fault_env(MSFAULT_REALTIME_OFFSET="86400"))
fault_lib() is its path (the Makefile sets MSFAULT_LIB), or None.
"""
import os
import random
import socket
import subprocess
import tempfile
import threading
import time


class Tmpfs:
    """A tmpfs of `size` (mount's syntax: "2m") on a new temporary dir."""

    _checked = None

    def __init__(self, size):
        self.size = size
        self.path = None

    @classmethod
    def available(cls):
        if cls._checked is None:
            d = tempfile.mkdtemp(prefix="ms-tmpfs-probe-")
            ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d],
                                capture_output=True).returncode == 0
            if ok:
                subprocess.run(["umount", d], capture_output=True)
            os.rmdir(d)
            # Only inside a private mount namespace: never touch the host's.
            cls._checked = ok and os.environ.get("MS_IN_MOUNTNS") == "1"
        return cls._checked

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="ms-tmpfs-")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % self.size,
                        "tmpfs", self.path], check=True, capture_output=True)
        return self

    def __exit__(self, *exc):
        subprocess.run(["umount", "-l", self.path], capture_output=True)
        try:
            os.rmdir(self.path)
        except OSError:
            pass

    def free_bytes(self):
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave=0):
        """Writes a file that takes all free space but `leave` bytes."""
        n = max(0, self.free_bytes() - leave)
        with open(os.path.join(self.path, "filler"), "wb") as f:
            while n > 0:
                k = min(n, 1 << 20)
                try:
                    f.write(b"\0" * k)
                    f.flush()
                except OSError:
                    break
                n -= k

    def unfill(self):
        try:
            os.unlink(os.path.join(self.path, "filler"))
        except FileNotFoundError:
            pass


class DnsFault:
    """A faulty DNS server on 127.0.0.1 (see the module text)."""

    def __init__(self, upstream_port, mode, delay=3.0):
        self.mode = mode
        self.delay = delay
        self.upstream = ("127.0.0.1", upstream_port)
        self.queries = 0
        self._stop = threading.Event()
        self._threads = []
        if mode == "down":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
            s.close()           # nobody listens there now
            self.sock = None
            return
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]

    def __enter__(self):
        if self.sock is not None:
            t = threading.Thread(target=self._serve, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(10)
        if self.sock is not None:
            self.sock.close()

    def _serve(self):
        while not self._stop.is_set():
            try:
                q, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            self.queries += 1
            if len(q) < 12 or self.mode == "silent":
                continue
            if self.mode == "garbage":
                junk = bytes(random.getrandbits(8) for _ in range(40))
                self._send(q[:2] + junk, peer)
            elif self.mode == "slow":
                t = threading.Thread(target=self._slow, args=(q, peer), daemon=True)
                t.start()

    def _slow(self, q, peer):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
            up.settimeout(5)
            try:
                up.sendto(q, self.upstream)
                ans, _ = up.recvfrom(65535)
            except OSError:
                return
        if not self._stop.wait(self.delay):
            self._send(ans, peer)

    def _send(self, data, peer):
        try:
            self.sock.sendto(data, peer)
        except OSError:
            pass


def fault_lib():
    lib = os.environ.get("MSFAULT_LIB")
    return lib if lib and os.path.exists(lib) else None


def fault_env(**faults):
    """The environment that preloads msfault with the given faults."""
    env = {"LD_PRELOAD": fault_lib()}
    env.update(faults)
    # A sanitized server: its runtime is not first in the list any more.
    asan = os.environ.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "verify_asan_link_order=0"
    return env
