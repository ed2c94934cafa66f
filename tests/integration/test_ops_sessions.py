"""`mailctl sessions [--json]`: the live inbound sessions of a real
daemon, asked through its control socket: client, listener, state, TLS,
AUTH user, bytes, age, for a plain session in a mail transaction and a
STARTTLS session with a login; a closed session leaves the list; with no
daemon the command fails clearly."""
import json
import os
import unittest

from harness import Client, Server, test_cert, wait_for
from ops import auth_plain, crypt_hash

PASSWORD = "sessions-secret"


class SessionsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cert, key = test_cert()
        srv = Server("tls_cert_file = %s\ntls_key_file = %s\n" % (cert, key))
        users = os.path.join(srv.dir, "users")
        with open(users, "w") as f:
            f.write("alice@localhost:%s\n" % crypt_hash(PASSWORD))
        srv.write_config(open(srv.conf).read() + "users_file = %s\n" % users)
        cls.srv = srv.start()
        # the port listens before the control socket is made
        wait_for(lambda: os.path.exists(os.path.join(srv.dir, "queue", "control")), 10,
                 "the control socket")

    @classmethod
    def tearDownClass(cls):
        try:
            assert cls.srv.stop() == 0
        finally:
            cls.srv.cleanup()

    def sessions(self):
        return json.loads(self.srv.mailctl("--json", "sessions").stdout)["sessions"]

    def test_live_sessions(self):
        srv = self.srv
        # wait_ready's probe leaves the list once the server saw it close
        wait_for(lambda: self.sessions() == [], 10, "no sessions")
        plain = Client(srv.port)
        self.assertEqual(plain.reply()[0], 220)
        self.assertEqual(plain.cmd("EHLO plain.test")[0], 250)
        self.assertEqual(plain.cmd("MAIL FROM:<a@example.org>")[0], 250)
        tls = Client(srv.port)
        self.assertEqual(tls.reply()[0], 220)
        self.assertEqual(tls.cmd("EHLO tls.test")[0], 250)
        self.assertEqual(tls.cmd("STARTTLS")[0], 220)
        tls.starttls()
        self.assertEqual(tls.cmd("EHLO tls.test")[0], 250)
        self.assertEqual(auth_plain(tls, "alice@localhost", PASSWORD), 235)
        try:
            s = {x["helo"]: x for x in self.sessions()}
            self.assertEqual(sorted(s), ["plain.test", "tls.test"])
            p, t = s["plain.test"], s["tls.test"]
            self.assertEqual(p["client"], "127.0.0.1")
            self.assertEqual(p["listener"], "smtp")
            self.assertEqual(p["state"], "mail")
            self.assertEqual(p["tls"], "")
            self.assertEqual(p["auth_user"], "")
            self.assertEqual(p["bytes_in"], len("EHLO plain.test\r\nMAIL FROM:<a@example.org>\r\n"))
            self.assertGreaterEqual(p["age"], 0)
            self.assertEqual(t["state"], "helo")
            self.assertIn("TLS", t["tls"])
            self.assertEqual(t["auth_user"], "alice@localhost")
            text = srv.mailctl("sessions").stdout.splitlines()
            self.assertTrue(text[0].startswith("CLIENT"))
            self.assertEqual(len(text), 3)
            self.assertTrue(any("alice@localhost" in l and "tls.test" in l for l in text))
        finally:
            plain.close()
            tls.close()
        wait_for(lambda: self.sessions() == [], 10, "the sessions to leave the list")

    def test_no_daemon(self):
        other = Server()
        try:
            r = other.mailctl("sessions", check=False)
            self.assertEqual(r.returncode, 1)
            self.assertIn("is the daemon running?", r.stderr)
        finally:
            other.cleanup()


if __name__ == "__main__":
    unittest.main()
