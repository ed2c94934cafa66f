"""AUTH checked by Dovecot (server/sasl_dovecot.c): a real Dovecot (the
private instance of dovecot_conf.py) with a passwd-file and two auth-client
listeners of its own, a Unix socket in its directory and a loopback port.
Users exist only in Dovecot's passwd-file. Exchanges are run by
tests/tools/filter_driver as the SMTP session will (one connection kept for
every exchange of a run). What goes on the wire (the AUTH line, escaping,
CANCEL) is checked byte for byte in tests/unit/test_sasl_dovecot.c.
"""
import base64
import json
import os
import socket
import subprocess
import unittest

import dovecot_conf
from dovecot_conf import Dovecot
from filter_driver import DRIVER, run
from harness import free_port, wait_for, SLOW
from test_dovecot import crypt_hash

USERS = {"carol@example.org": "{PLAIN}carol's secret",
         "dave@example.org": None}  # CRYPT, filled in setUpClass
DAVE_PASSWORD = "dave pass 9"


def b64(s):
    return base64.b64encode(s.encode()).decode()


def plain(user, password):
    return b64("\0%s\0%s" % (user, password))


class AuthDovecot(Dovecot):
    """dovecot_conf.Dovecot with auth-client listeners for mailserver."""

    def __init__(self, mail_dir, users):
        super().__init__(mail_dir, users)
        self.auth_port = free_port()
        self.auth_path = os.path.join(self.dir, "run", "auth-mailserver")
        with open(self.conf) as f:
            text = f.read()
        text += """
service auth {{
  unix_listener auth-mailserver {{
    mode = 0600
  }}
  inet_listener {{
    address = 127.0.0.1
    port = {port}
  }}
}}
""".format(port=self.auth_port)
        with open(self.conf, "w") as f:
            f.write(text)


@unittest.skipUnless(dovecot_conf.available(), "dovecot is not installed")
class SaslDovecotTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        users = dict(USERS)
        users["dave@example.org"] = "{CRYPT}" + crypt_hash(DAVE_PASSWORD)
        cls.mail = os.path.join("/tmp", "ms-sasl-mail-%d" % os.getpid())
        os.makedirs(cls.mail, exist_ok=True)
        cls.dovecot = AuthDovecot(cls.mail, users).start()
        wait_for(lambda: os.path.exists(cls.dovecot.auth_path), 20, "auth socket")
        cls.unix = "unix:" + cls.dovecot.auth_path
        cls.inet = "inet:127.0.0.1:%d" % cls.dovecot.auth_port

    @classmethod
    def tearDownClass(cls):
        if cls.dovecot is not None:
            cls.dovecot.cleanup()
        os.rmdir(cls.mail)

    def sasl(self, script, endpoint=None, args=()):
        return run("sasl", list(args) + [endpoint or self.unix], script)

    def test_plain_ok_wrong_password_unknown_user(self):
        r = self.sasl(["mechs",
                       "start PLAIN %s secured" % plain("carol@example.org", "carol's secret"),
                       "start PLAIN %s secured" % plain("carol@example.org", "wrong"),
                       "start PLAIN %s secured" % plain("nobody@example.org", "x"),
                       "start plain %s secured" % plain("dave@example.org", DAVE_PASSWORD)])
        mechs = r.stage("mechs")
        self.assertEqual(mechs["rc"], 0)
        self.assertIn("PLAIN", mechs["mechs"].split())
        self.assertIn("LOGIN", mechs["mechs"].split())
        ok = r.stage("sasl", 0)
        self.assertEqual((ok["status"], ok["user"]), ("ok", "carol@example.org"))
        self.assertEqual(r.stage("sasl", 1)["status"], "fail")
        self.assertEqual(r.stage("sasl", 2)["status"], "fail")
        self.assertEqual((r.stage("sasl", 3)["status"], r.stage("sasl", 3)["user"]),
                         ("ok", "dave@example.org"))

    def test_login_continuations(self):
        r = self.sasl(["start LOGIN - secured", "cont " + b64("dave@example.org"),
                       "cont " + b64(DAVE_PASSWORD),
                       "start LOGIN - secured", "cont " + b64("dave@example.org"),
                       "cont " + b64("not it")])
        first, second, done = (r.stage("sasl", i) for i in range(3))
        self.assertEqual((first["status"], base64.b64decode(first["challenge"])),
                         ("continue", b"Username:"))
        self.assertEqual((second["status"], base64.b64decode(second["challenge"])),
                         ("continue", b"Password:"))
        self.assertEqual((done["status"], done["user"]), ("ok", "dave@example.org"))
        self.assertEqual(r.stage("sasl", 5)["status"], "fail")

    def test_plain_without_initial_response(self):
        r = self.sasl(["start PLAIN - secured",
                       "cont " + plain("carol@example.org", "carol's secret")])
        self.assertEqual(r.stage("sasl", 0)["status"], "continue")
        self.assertEqual(r.stage("sasl", 0)["challenge"], "")
        self.assertEqual(r.stage("sasl", 1)["status"], "ok")

    def test_over_tcp(self):
        r = self.sasl(["start PLAIN %s secured" % plain("carol@example.org", "carol's secret")],
                      endpoint=self.inet)
        self.assertEqual(r.stage("sasl")["status"], "ok")

    def test_cancel_then_next_exchange(self):
        r = self.sasl(["start LOGIN - secured", "cancel",
                       "start LOGIN - secured", "cont " + b64("dave@example.org"),
                       "start PLAIN %s secured" % plain("carol@example.org", "carol's secret")])
        self.assertEqual(r.stage("sasl", 0)["status"], "continue")
        self.assertEqual(r.stage("sasl", 1)["status"], "continue")
        self.assertEqual(r.stage("sasl", 2)["status"], "continue")
        self.assertEqual((r.stage("sasl", 3)["status"], r.stage("sasl", 3)["user"]),
                         ("ok", "carol@example.org"))

    def test_client_data_checked_before_sending(self):
        r = self.sasl(["start PLAIN not*base64 secured", "start CRAM-MD5 - secured",
                       "start LOGIN - secured", "cont tab\tinside",
                       "start PLAIN %s secured" % plain("carol@example.org", "carol's secret")])
        self.assertEqual(r.stage("sasl", 0)["status"], "invalid")
        self.assertEqual(r.stage("sasl", 1)["status"], "fail")
        self.assertEqual(r.stage("sasl", 3)["status"], "invalid")
        self.assertEqual(r.stage("sasl", 4)["status"], "ok")

    def test_dovecot_down(self):
        path = os.path.join(self.dovecot.dir, "no-such-socket")
        r = self.sasl(["mechs", "start PLAIN %s secured" % plain("a@b", "c")],
                      endpoint="unix:" + path)
        self.assertEqual(r.stage("mechs")["rc"], -1)
        self.assertEqual(r.stage("sasl")["status"], "tempfail")
        self.assertIn("connect", r.stderr)
        r = self.sasl(["start PLAIN %s secured" % plain("a@b", "c")],
                      endpoint="inet:127.0.0.1:%d" % free_port())
        self.assertEqual(r.stage("sasl")["status"], "tempfail")

    def test_wrong_socket_kind(self):
        # auth-master speaks the same framing but offers no mechanisms.
        master = os.path.join(self.dovecot.dir, "run", "auth-master")
        if not os.path.exists(master):
            self.skipTest("no auth-master socket")
        r = self.sasl(["start PLAIN %s secured" % plain("a@b", "c")], endpoint="unix:" + master)
        self.assertEqual(r.stage("sasl")["status"], "tempfail")

    def test_hung_auth_service_times_out(self):
        ls = socket.socket(socket.AF_UNIX)
        path = os.path.join(self.dovecot.dir, "hang.sock")
        ls.bind(path)
        ls.listen(1)
        try:
            r = self.sasl(["start PLAIN %s secured" % plain("a@b", "c")],
                          endpoint="unix:" + path, args=["--timeout", "500"])
            self.assertEqual(r.stage("sasl")["status"], "tempfail")
            self.assertIn("timed out", r.stderr)
            self.assertLess(r.elapsed, 5 * SLOW)
        finally:
            ls.close()
            os.unlink(path)


def auth_children(master_pid):
    """PIDs of the dovecot/auth processes of this master (ours)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == master_pid and comm == "auth":
            pids.append(int(d))
    return pids


def gone(pid):
    """Has pid ended (or is it a zombie)? It may end while we look."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2:].startswith("Z")


@unittest.skipUnless(dovecot_conf.available(), "dovecot is not installed")
class SaslDovecotStopTest(unittest.TestCase):
    """The auth process dying under a kept connection, then Dovecot
    stopped and started: every exchange ends cleanly (a new connection
    when Dovecot is there, tempfail when it is not, never a hang)."""

    def test_auth_process_and_dovecot_go_away(self):
        users = {"carol@example.org": "{PLAIN}pw"}
        mail = os.path.join("/tmp", "ms-sasl-stop-%d" % os.getpid())
        os.makedirs(mail, exist_ok=True)
        d = AuthDovecot(mail, users).start()
        proc = None
        try:
            wait_for(lambda: os.path.exists(d.auth_path), 20, "auth socket")
            proc = subprocess.Popen([DRIVER, "sasl", "unix:" + d.auth_path],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)

            def ask():
                proc.stdin.write("start PLAIN %s secured\n" % plain("carol@example.org", "pw"))
                proc.stdin.flush()
                return json.loads(proc.stdout.readline())["status"]
            self.assertEqual(ask(), "ok")
            # The auth process dies: the kept connection is dead, the
            # next exchange takes a new one (the master starts a new
            # auth process on demand).
            master = d.proc.pid
            for pid in auth_children(master):
                os.kill(pid, 9)
                wait_for(lambda: gone(pid), 10, "auth process to end")
            self.assertEqual(ask(), "ok")
            # Dovecot stops: tempfail, quickly.
            children = auth_children(master)
            d.stop()
            for pid in children:
                if not gone(pid):
                    os.kill(pid, 15)
                wait_for(lambda: gone(pid), 10, "auth process to end")
            self.assertEqual(ask(), "tempfail")
            self.assertEqual(ask(), "tempfail")
            d.start()
            wait_for(lambda: os.path.exists(d.auth_path), 20, "auth socket again")
            self.assertEqual(ask(), "ok")
            proc.stdin.close()
            self.assertEqual(proc.wait(30 * SLOW), 0)
            err = proc.stderr.read()
            self.assertNotIn("Sanitizer", err)
            self.assertIn("dovecot auth unix:", err)
        finally:
            if proc is not None:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
                proc.stderr.close()
            d.cleanup()
            os.rmdir(mail)


if __name__ == "__main__":
    unittest.main()
