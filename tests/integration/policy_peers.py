"""Policy services for the tests of the policy client (test_policy.py) and
of the session asking them (test_session_policy.py): a scripted service
on Python's standard library, a private postgrey, and
postfix-policyd-spf-python spawned per connection with its DNS answered
by ldns-testns on 127.0.0.1:53 (inside the test's network namespace).
Each is started and stopped by its owner, by PID."""
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading

from harness import free_port, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
HANG = "hang"
CLOSE = "close"


def accept_loop(lsock, stopping, handle):
    """Hands each connection of lsock (with a short timeout, so that the
    loop sees stopping) to handle(sock) until stopping is set or lsock
    closes."""
    while not stopping.is_set():
        try:
            s, _ = lsock.accept()
        except socket.timeout:
            continue
        except OSError:
            return
        s.settimeout(None)
        handle(s)


def action(text):
    return lambda attrs, n: b"action=" + text.encode() + b"\n\n"


class PolicyPeer:
    """A scripted policy service on a loopback port. answer(attrs, n)
    returns the reply bytes for the n-th request of the run (or HANG or
    CLOSE); close_after: close the connection after each reply."""

    def __init__(self, answer, close_after=False):
        self.answer = answer
        self.close_after = close_after
        self.requests = []
        self.connections = 0
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.lsock.settimeout(0.2)
        self.endpoint = "inet:127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        accept_loop(self.lsock, self.stopping, self._start)

    def _start(self, s):
        self.connections += 1
        t = threading.Thread(target=self._serve, args=(s,), daemon=True)
        t.start()
        self.threads.append(t)

    def _serve(self, s):
        buf = b""
        with s:
            while True:
                while b"\n\n" not in buf:
                    try:
                        d = s.recv(65536)
                    except OSError:
                        return
                    if not d:
                        return
                    buf += d
                block, buf = buf.split(b"\n\n", 1)
                attrs = dict(l.split(b"=", 1) for l in block.split(b"\n"))
                attrs = {k.decode(): v.decode("latin-1") for k, v in attrs.items()}
                self.requests.append(attrs)
                what = self.answer(attrs, len(self.requests) - 1)
                if what == HANG:
                    self.stopping.wait(60)
                    return
                if what == CLOSE:
                    return
                try:
                    s.sendall(what)
                except OSError:
                    return
                if self.close_after:
                    return

    def stop(self):
        self.stopping.set()
        self.lsock.close()
        for t in self.threads:
            t.join(10)


def postgrey_available():
    try:
        pwd.getpwnam("postgrey")
    except KeyError:
        return False
    return shutil.which("postgrey") is not None or os.path.exists("/usr/sbin/postgrey")


class Postgrey:
    """postgrey with a private database, empty whitelists and a delay of
    delay seconds, on a free loopback port."""

    def __init__(self, delay, hostname="greylist.test"):
        self.dir = tempfile.mkdtemp(prefix="ms-postgrey-")
        os.chmod(self.dir, 0o755)
        db = os.path.join(self.dir, "db")
        os.mkdir(db)
        pw = pwd.getpwnam("postgrey")
        os.chown(db, pw.pw_uid, pw.pw_gid)
        for n in ("clients", "recipients"):
            open(os.path.join(self.dir, n), "w").close()
        self.port = free_port()
        self.endpoint = "inet:127.0.0.1:%d" % self.port
        self.out = open(os.path.join(self.dir, "postgrey.log"), "w")
        self.proc = subprocess.Popen(
            [shutil.which("postgrey") or "/usr/sbin/postgrey",
             "--inet=127.0.0.1:%d" % self.port, "--dbdir=" + db,
             "--delay=%d" % delay, "--hostname=" + hostname,
             "--whitelist-clients=" + os.path.join(self.dir, "clients"),
             "--whitelist-recipients=" + os.path.join(self.dir, "recipients")],
            stdout=self.out, stderr=subprocess.STDOUT, cwd=self.dir)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("postgrey exited: " + open(self.out.name).read())
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return True
            except OSError:
                return False
        wait_for(ready, 30, "postgrey to listen")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.stop()
        self.out.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def spf_available():
    return (os.path.exists("/usr/bin/policyd-spf") and shutil.which("ldns-testns") and
            os.environ.get("MS_IN_NETNS") == "1" and os.geteuid() == 0 and
            shutil.which("unshare") is not None)


SPF_UNAVAILABLE = ("needs policyd-spf, ldns-testns, root and the private network "
                   "namespace (its DNS server must listen on 127.0.0.1:53)")


class PolicydSpf:
    """postfix-policyd-spf-python, spawned per connection as Postfix's
    spawn(8) would (stdin and stdout on the socket), in its own mount
    namespace where /etc/resolv.conf names 127.0.0.1: the DNS server there
    is ldns-testns with tests/integration/dns/spf.data. conf: the text of
    its policyd-spf.conf."""

    def __init__(self, conf):
        self.dir = tempfile.mkdtemp(prefix="ms-spf-")
        self.resolv = os.path.join(self.dir, "resolv.conf")
        with open(self.resolv, "w") as f:
            f.write("nameserver 127.0.0.1\n")
        self.conf = os.path.join(self.dir, "policyd-spf.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.dns = subprocess.Popen(["ldns-testns", "-p", "53",
                                     os.path.join(HERE, "dns", "spf.data")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def dns_ready():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(("127.0.0.1", 53))
                s.close()
                return False
            except OSError:
                return True
        wait_for(dns_ready, 10, "ldns-testns on port 53")
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.lsock.settimeout(0.2)
        self.endpoint = "inet:127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.stopping = threading.Event()
        self.children = []
        self.thread = threading.Thread(target=self._spawn_loop, daemon=True)
        self.thread.start()

    def _spawn_loop(self):
        accept_loop(self.lsock, self.stopping, self._spawn)

    def _spawn(self, s):
        cmd = ["unshare", "--mount", "sh", "-c",
               'mount --bind "$1" /etc/resolv.conf && exec /usr/bin/policyd-spf "$2"',
               "sh", self.resolv, self.conf]
        self.children.append(subprocess.Popen(cmd, stdin=s, stdout=s,
                                              stderr=subprocess.DEVNULL))
        s.close()

    def cleanup(self):
        self.stopping.set()
        self.thread.join(10)
        self.lsock.close()
        for c in self.children:
            if c.poll() is None:
                c.terminate()
            c.wait(10)
        self.dns.terminate()
        self.dns.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
