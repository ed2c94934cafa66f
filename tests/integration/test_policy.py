"""The policy delegation client (filter/policy.c) against real policy
services: postgrey (greylisting: the first try is deferred, a try after
the delay passes), postfix-policyd-spf-python (SPF pass and fail, with its
DNS answered by ldns-testns on 127.0.0.1:53 inside the test's network
namespace), and a scripted service on Python's standard library for every
action and every failure (hangs, closed connections, garbage, limits).
Requests are made by tests/tools/filter_driver, reusing one connection.
"""
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from filter_driver import run
from harness import free_port, wait_for, SLOW

HERE = os.path.dirname(os.path.abspath(__file__))
HANG = "hang"
CLOSE = "close"


def request(**kw):
    base = {"protocol_state": "RCPT", "protocol_name": "ESMTP",
            "helo_name": "client.example", "sender": "alice@example.org",
            "recipient": "bob@example.net", "client_address": "192.0.2.10",
            "client_name": "client.example", "reverse_client_name": "client.example",
            "instance": "a1.b2.c3", "recipient_count": "0", "size": "1234",
            "queue_id": "4F2A1B3C5D6E7"}
    base.update(kw)
    return ["%s=%s" % kv for kv in base.items()] + [""]


def ask(endpoint, *requests, args=()):
    script = []
    for r in requests:
        script += r
    return run("policy", list(args) + [endpoint], script)


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
        while not self.stopping.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            s.settimeout(None)
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


def action(text):
    return lambda attrs, n: b"action=" + text.encode() + b"\n\n"


class PolicyPeerTest(unittest.TestCase):
    def peer(self, answer, **kw):
        p = PolicyPeer(answer, **kw)
        self.addCleanup(p.stop)
        return p

    def test_actions(self):
        cases = [
            ("OK", "ok", "", "", ""),
            ("ok", "ok", "", "", ""),
            ("permit", "ok", "", "", ""),
            ("200", "ok", "", "", ""),
            ("DUNNO", "dunno", "", "", ""),
            ("REJECT", "reject", "554 5.7.1 Access denied", "", ""),
            ("REJECT not from here", "reject", "554 5.7.1 not from here", "", ""),
            ("reject 5.7.26 DMARC policy", "reject", "554 5.7.26 DMARC policy", "", ""),
            ("DEFER", "defer", "450 4.7.1 Try again later", "", ""),
            ("DEFER_IF_PERMIT Greylisted", "defer_if_permit", "450 4.7.1 Greylisted", "", ""),
            ("DEFER_IF_REJECT maybe", "defer_if_reject", "450 4.7.1 maybe", "", ""),
            ("550 5.1.1 no such user", "reject", "550 5.1.1 no such user", "", ""),
            ("550 no such user", "reject", "550 5.7.1 no such user", "", ""),
            ("450 4.2.0 greylisted", "defer", "450 4.2.0 greylisted", "", ""),
            ("421 4.7.0 go away", "shutdown", "421 4.7.0 go away", "", ""),
            ("DISCARD spam", "discard", "", "", "spam"),
            ("HOLD check it", "hold", "", "", "check it"),
            ("PREPEND X-Policy: seen", "prepend", "", "X-Policy: seen", ""),
            ("REDIRECT abuse@example.org", "redirect", "", "", ""),
            ("BCC archive@example.org", "bcc", "", "", ""),
            ("WARN odd client", "dunno", "", "", "odd client"),
            ("INFO hello", "dunno", "", "", "hello"),
        ]
        p = self.peer(lambda a, n: b"action=" + cases[n][0].encode() + b"\nignored=x\n\n")
        r = ask(p.endpoint, *[request() for _ in cases])
        self.assertEqual(p.connections, 1)
        for i, (act, kind, reply, header, text) in enumerate(cases):
            v = r.stage("policy", i)
            self.assertEqual((v["kind"], v["reply"], v["header"], v["text"], v["default"]),
                             (kind, reply, header, text, 0), act)
        self.assertEqual(r.stage("policy", 18)["addr"], "abuse@example.org")

    def test_actions_that_mean_a_configuration_problem(self):
        bad = ["FILTER smtp:[127.0.0.1]:10025", "reject_unauth_destination", "",
               "PREPEND no-colon", "PREPEND Bad Name: x", "REDIRECT two words",
               "550 4.7.1 class mismatch", "650 x", "BCC"]
        p = self.peer(lambda a, n: b"action=" + bad[n].encode() + b"\n\n")
        r = ask(p.endpoint, *[request() for _ in bad])
        for i, act in enumerate(bad):
            v = r.stage("policy", i)
            self.assertEqual((v["kind"], v["reply"], v["default"]),
                             ("defer", "451 4.3.5 Server configuration problem", 0), act)

    def test_request_attributes(self):
        p = self.peer(action("DUNNO"))
        ask(p.endpoint, request(sender="a\x01b@example.org", sasl_username="alice",
                                sasl_method="PLAIN", encryption_protocol="TLSv1.3",
                                recipient="j\u00f6rg@example.net"))
        got = p.requests[0]
        self.assertEqual(got["request"], "smtpd_access_policy")
        for name in ("protocol_state", "protocol_name", "helo_name", "queue_id", "sender",
                     "recipient", "recipient_count", "client_address", "client_name",
                     "reverse_client_name", "instance", "sasl_method", "sasl_username",
                     "sasl_sender", "size", "ccert_subject", "ccert_issuer",
                     "ccert_fingerprint", "ccert_pubkey_fingerprint", "encryption_protocol",
                     "encryption_cipher", "encryption_keysize", "etrn_domain", "stress",
                     "client_port", "policy_context", "server_address", "server_port",
                     "compatibility_level", "mail_version"):
            self.assertIn(name, got)
        self.assertEqual(got["sender"], "a?b@example.org")
        self.assertEqual(got["recipient"].encode("latin-1").decode(), "j\u00f6rg@example.net")
        self.assertEqual(got["size"], "1234")
        self.assertEqual(got["sasl_username"], "alice")
        self.assertEqual(got["ccert_subject"], "")

    def test_failures_give_the_default_action(self):
        cases = {
            "garbage": lambda a, n: b"this is not a policy reply\n\n",
            "no action": lambda a, n: b"foo=bar\n\n",
            "two actions": lambda a, n: b"action=OK\naction=REJECT\n\n",
            "closed": lambda a, n: CLOSE,
            "line too long": lambda a, n: b"action=" + b"x" * 5000 + b"\n\n",
            "too many attributes": lambda a, n: b"".join(b"a%d=b\n" % i for i in range(70)) +
            b"action=OK\n\n",
            "endless line": lambda a, n: b"action=" + b"x" * 200000,
            "hang": lambda a, n: HANG,
        }
        for name, answer in cases.items():
            with self.subTest(name):
                p = self.peer(answer)
                r = ask(p.endpoint, request(), args=["--timeout", "1000"])
                v = r.stage("policy")
                self.assertEqual((v["kind"], v["reply"], v["default"]),
                                 ("defer", "451 4.3.5 Server configuration problem", 1))
                self.assertIn("policy inet:", r.stderr)
                self.assertLess(r.elapsed, 6 * SLOW)

    def test_service_down_and_own_default(self):
        r = ask("inet:127.0.0.1:%d" % free_port(), request(),
                args=["--default", "DUNNO"])
        self.assertEqual((r.stage("policy")["kind"], r.stage("policy")["default"]),
                         ("dunno", 1))
        self.assertIn("Connection refused", r.stderr)
        path = os.path.join(tempfile.mkdtemp(prefix="ms-policy-"), "none.sock")
        r = ask("unix:" + path, request())
        self.assertEqual(r.stage("policy")["reply"], "451 4.3.5 Server configuration problem")
        shutil.rmtree(os.path.dirname(path))

    def test_closed_connection_is_replaced(self):
        # The service closes after each answer (as Postfix's own spawned
        # services may): every request still gets its answer.
        p = self.peer(action("OK"), close_after=True)
        r = ask(p.endpoint, request(), request(), request())
        for i in range(3):
            self.assertEqual(r.stage("policy", i)["kind"], "ok")
            self.assertEqual(r.stage("policy", i)["default"], 0)
        self.assertEqual(p.connections, 3)

    def test_stale_connection_is_retried_once(self):
        # The service drops the reused connection without answering: the
        # request goes once more on a new connection.
        p = self.peer(lambda a, n: CLOSE if n == 1 else b"action=OK\n\n")
        r = ask(p.endpoint, request(), request())
        self.assertEqual([r.stage("policy", i)["kind"] for i in range(2)], ["ok", "ok"])
        self.assertEqual(r.stage("policy", 1)["default"], 0)
        self.assertEqual((p.connections, len(p.requests)), (2, 3))
        # Only once: a new connection that fails too gives the default.
        p = self.peer(lambda a, n: CLOSE if n >= 1 else b"action=OK\n\n")
        r = ask(p.endpoint, request(), request())
        self.assertEqual(r.stage("policy", 1)["default"], 1)
        self.assertEqual((p.connections, len(p.requests)), (2, 3))

    def test_unix_socket(self):
        d = tempfile.mkdtemp(prefix="ms-policy-")
        self.addCleanup(shutil.rmtree, d)
        path = os.path.join(d, "policy.sock")
        ls = socket.socket(socket.AF_UNIX)
        ls.bind(path)
        ls.listen(1)

        def serve():
            s, _ = ls.accept()
            with s:
                data = b""
                while b"\n\n" not in data:
                    data += s.recv(4096)
                s.sendall(b"action=REJECT by unix\n\n")
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        r = ask("unix:" + path, request())
        t.join(10)
        ls.close()
        self.assertEqual(r.stage("policy")["reply"], "554 5.7.1 by unix")


def postgrey_available():
    try:
        pwd.getpwnam("postgrey")
    except KeyError:
        return False
    return shutil.which("postgrey") is not None or os.path.exists("/usr/sbin/postgrey")


@unittest.skipUnless(postgrey_available(), "postgrey is not installed")
class PostgreyTest(unittest.TestCase):
    """Real greylisting: postgrey with a private database and a 2 s delay."""

    DELAY = 2

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ms-postgrey-")
        os.chmod(cls.dir, 0o755)
        db = os.path.join(cls.dir, "db")
        os.mkdir(db)
        pw = pwd.getpwnam("postgrey")
        os.chown(db, pw.pw_uid, pw.pw_gid)
        for n in ("clients", "recipients"):
            open(os.path.join(cls.dir, n), "w").close()
        cls.port = free_port()
        cls.endpoint = "inet:127.0.0.1:%d" % cls.port
        cls.out = open(os.path.join(cls.dir, "postgrey.log"), "w")
        cls.proc = subprocess.Popen(
            [shutil.which("postgrey") or "/usr/sbin/postgrey",
             "--inet=127.0.0.1:%d" % cls.port, "--dbdir=" + db,
             "--delay=%d" % cls.DELAY, "--hostname=greylist.test",
             "--whitelist-clients=" + os.path.join(cls.dir, "clients"),
             "--whitelist-recipients=" + os.path.join(cls.dir, "recipients")],
            stdout=cls.out, stderr=subprocess.STDOUT, cwd=cls.dir)

        def ready():
            if cls.proc.poll() is not None:
                raise AssertionError("postgrey exited: " + open(cls.out.name).read())
            try:
                socket.create_connection(("127.0.0.1", cls.port), 1).close()
                return True
            except OSError:
                return False
        wait_for(ready, 30, "postgrey to listen")

    @classmethod
    def tearDownClass(cls):
        cls.stop_postgrey()
        cls.out.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def stop_postgrey(cls):
        if cls.proc is not None and cls.proc.poll() is None:
            cls.proc.terminate()
            try:
                cls.proc.wait(20)
            except subprocess.TimeoutExpired:
                cls.proc.kill()
                cls.proc.wait()
        cls.proc = None

    def test_first_try_deferred_later_one_passes(self):
        rq = request(sender="first@example.org", recipient="grey@example.net",
                     client_address="192.0.2.50")
        t0 = time.monotonic()
        r = ask(self.endpoint, rq, rq)
        for i in range(2):
            v = r.stage("policy", i)
            self.assertEqual(v["kind"], "defer_if_permit")
            self.assertEqual(v["default"], 0)
            self.assertTrue(v["reply"].startswith("450 4.2.0 Greylisted"), v["reply"])
        # Another triplet is greylisted on its own.
        other = ask(self.endpoint, request(sender="second@example.org",
                                           recipient="grey@example.net",
                                           client_address="192.0.2.50"))
        self.assertEqual(other.stage("policy")["kind"], "defer_if_permit")

        def passes():
            v = ask(self.endpoint, rq).stage("policy")
            return v if v["kind"] != "defer_if_permit" else None
        v = wait_for(passes, 20, "postgrey to let the retry pass")
        # postgrey counts whole seconds from the first try.
        self.assertGreater(time.monotonic() - t0, self.DELAY - 1)
        self.assertEqual(v["kind"], "prepend")
        self.assertTrue(v["header"].startswith("X-Greylist: delayed "), v["header"])
        self.assertIn("greylist.test", v["header"])
        # Then the triplet is known: no more header.
        self.assertEqual(ask(self.endpoint, rq).stage("policy")["kind"], "dunno")

    def test_zz_postgrey_down_means_default(self):
        # Runs last in the class (unittest sorts by name).
        self.stop_postgrey()
        r = ask(self.endpoint, request(), args=["--default", "DEFER Policy service down"])
        v = r.stage("policy")
        self.assertEqual((v["kind"], v["reply"], v["default"]),
                         ("defer", "450 4.7.1 Policy service down", 1))


def spf_available():
    return (os.path.exists("/usr/bin/policyd-spf") and shutil.which("ldns-testns") and
            os.environ.get("MS_IN_NETNS") == "1" and os.geteuid() == 0 and
            shutil.which("unshare") is not None)


@unittest.skipUnless(spf_available(), "needs policyd-spf, ldns-testns, root and the private "
                     "network namespace (its DNS server must listen on 127.0.0.1:53)")
class PolicydSpfTest(unittest.TestCase):
    """postfix-policyd-spf-python, spawned per connection as Postfix's
    spawn(8) would (stdin and stdout on the socket), in its own mount
    namespace where /etc/resolv.conf names 127.0.0.1: the DNS server there
    is ldns-testns with tests/integration/dns/spf.data."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ms-spf-")
        cls.resolv = os.path.join(cls.dir, "resolv.conf")
        with open(cls.resolv, "w") as f:
            f.write("nameserver 127.0.0.1\n")
        cls.conf = os.path.join(cls.dir, "policyd-spf.conf")
        with open(cls.conf, "w") as f:
            f.write("debugLevel = 1\nTestOnly = 1\nHELO_reject = Fail\n"
                    "Mail_From_reject = Fail\nPermError_reject = False\n"
                    "TempError_Defer = False\nskip_addresses = 127.0.0.0/8,::1\n"
                    "Lookup_Time = 5\n")
        cls.dns = subprocess.Popen(["ldns-testns", "-p", "53",
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
        cls.lsock = socket.socket()
        cls.lsock.bind(("127.0.0.1", 0))
        cls.lsock.listen(8)
        cls.lsock.settimeout(0.2)
        cls.endpoint = "inet:127.0.0.1:%d" % cls.lsock.getsockname()[1]
        cls.stopping = threading.Event()
        cls.children = []
        cls.thread = threading.Thread(target=cls.spawn_loop, daemon=True)
        cls.thread.start()

    @classmethod
    def spawn_loop(cls):
        while not cls.stopping.is_set():
            try:
                s, _ = cls.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            s.settimeout(None)
            cmd = ["unshare", "--mount", "sh", "-c",
                   'mount --bind "$1" /etc/resolv.conf && exec /usr/bin/policyd-spf "$2"',
                   "sh", cls.resolv, cls.conf]
            cls.children.append(subprocess.Popen(cmd, stdin=s, stdout=s,
                                                 stderr=subprocess.DEVNULL))
            s.close()

    @classmethod
    def tearDownClass(cls):
        cls.stopping.set()
        cls.thread.join(10)
        cls.lsock.close()
        for c in cls.children:
            if c.poll() is None:
                c.terminate()
            c.wait(10)
        cls.dns.terminate()
        cls.dns.wait(10)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_spf_pass_and_fail(self):
        r = ask(self.endpoint,
                request(sender="a@pass.spf.test", client_address="192.0.2.1",
                        helo_name="helo.example", instance="1"),
                request(sender="a@fail.spf.test", client_address="192.0.2.1",
                        helo_name="helo.example", instance="2"))
        ok = r.stage("policy", 0)
        self.assertEqual(ok["kind"], "prepend")
        self.assertTrue(ok["header"].startswith("Received-SPF: Pass (mailfrom)"), ok["header"])
        self.assertIn("client-ip=192.0.2.1", ok["header"])
        bad = r.stage("policy", 1)
        self.assertEqual(bad["kind"], "reject")
        self.assertTrue(bad["reply"].startswith("550 5.7.23 Message rejected due to: SPF fail"),
                        bad["reply"])
        self.assertEqual(len(self.children), 1)


if __name__ == "__main__":
    unittest.main()
