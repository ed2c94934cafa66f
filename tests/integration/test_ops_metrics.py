"""The daemon's metrics, scraped with a real client (urllib) during and
after a known run: N messages delivered, M recipients refused, K
messages deferred (two to a closed port, one to a peer that hangs while
the scrape watches its delivery in flight), one relayed to a peer over
STARTTLS, one login that works and one that fails, one STARTTLS in. The text passes `promtool check metrics`
(Debian's prometheus package)."""
import os
import shutil
import subprocess
import unittest

from harness import Client, Server, free_port, greet, send_message, test_cert, wait_for
from peers import Peer
from ops import SilentPeer, auth_plain, crypt_hash, parse, scrape, value

N, M = 5, 3
PASSWORD = "metrics-secret"


class DaemonMetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.peer = SilentPeer()
        closed = free_port()
        cls.mport = free_port()
        cert, key = test_cert()
        cls.tls_peer = Peer("127.0.0.1", starttls=(cert, key)).start()
        srv = Server()
        users = os.path.join(srv.dir, "users")
        with open(users, "w") as f:
            f.write("alice@localhost:%s\n" % crypt_hash(PASSWORD))
        srv.write_config(open(srv.conf).read() +
                         "users_file = %s\n" % users +
                         "tls_cert_file = %s\ntls_key_file = %s\n" % (cert, key) +
                         "metrics_listen = 127.0.0.1:%d\n" % cls.mport +
                         "relay_networks = 10.255.0.0/16\n"
                         "auth_fail_delay = 0\n"
                         "delivery_threads = 4\n"
                         "retry_min = 1h\nretry_max = 2h\n"
                         "routes = defer.test=[127.0.0.1]:%d hang.test=[127.0.0.1]:%d "
                         "tls.test=[127.0.0.1]:%d\n" % (closed, cls.peer.port,
                                                        cls.tls_peer.port))
        cls.srv = srv.start()

    @classmethod
    def tearDownClass(cls):
        cls.peer.close()
        cls.tls_peer.stop()
        try:
            assert cls.srv.stop() == 0
        finally:
            cls.srv.cleanup()

    def samples(self):
        return parse(scrape(self.mport))

    def test_known_run(self):
        srv = self.srv
        for i in range(N):
            send_message(srv.port, "x@example.org", "alice@localhost")
        c, _ = greet(srv.port)
        self.assertEqual(c.cmd("MAIL FROM:<x@example.org>")[0], 250)
        for i in range(M):
            self.assertEqual(c.cmd("RCPT TO:<nobody%d@localhost>" % i)[0], 550)
        # During the run: this session is open.
        wait_for(lambda: value(self.samples(), "mailserver_sessions") == 1, 10,
                 "one session open")
        c.cmd("QUIT")
        c.close()

        # A submission over TLS: one failed login, one good; then three
        # messages to destinations that do not take them, and one relayed
        # over TLS.
        c, _ = greet(srv.port)
        self.assertEqual(c.cmd("STARTTLS")[0], 220)
        c.starttls()
        self.assertEqual(c.cmd("EHLO client.test")[0], 250)
        self.assertEqual(auth_plain(c, "alice@localhost", "wrong"), 535)
        self.assertEqual(auth_plain(c, "alice@localhost", PASSWORD), 235)
        for rcpt in ("a@defer.test", "b@defer.test", "c@hang.test", "d@tls.test"):
            self.assertEqual(c.cmd("MAIL FROM:<alice@localhost>")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<%s>" % rcpt)[0], 250)
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send("Subject: m\r\n\r\nbody\r\n.\r\n")
            self.assertEqual(c.reply()[0], 250)
        c.cmd("QUIT")
        c.close()
        sessions = N + 3  # and the harness's probe that the port answers

        # The delivery to the silent peer is in flight: watch it.
        wait_for(lambda: self.peer.accepted() > 0, 20, "the delivery to hang.test")
        s = wait_for(lambda: (lambda v: v if value(
            v, "mailserver_destination_concurrency", destination="hang.test") == 1
            else None)(self.samples()), 20, "hang.test in flight")
        self.assertGreaterEqual(value(s, "mailserver_delivery_threads_busy"), 1)
        self.assertEqual(value(s, "mailserver_delivery_threads"), 4)
        self.peer.hangup()

        def settled():
            v = self.samples()
            done = (value(v, "mailserver_deliveries_total", result="delivered") == N + 1 and
                    value(v, "mailserver_deliveries_total", result="deferred") == 3 and
                    value(v, "mailserver_queue_messages") == 3 and
                    value(v, "mailserver_sessions") == 0 and
                    value(v, "mailserver_delivery_threads_busy") == 0)
            return v if done else None
        s = wait_for(settled, 30, "the run to settle")
        self.assertEqual(value(s, "mailserver_connections_total"), sessions)
        self.assertEqual(value(s, "mailserver_messages_received_total"), N + 4)
        self.assertEqual(value(s, "mailserver_recipients_received_total"), N + 4)
        self.assertEqual(value(s, "mailserver_rejections_total", reason="unknown_recipient"), M)
        self.assertEqual(value(s, "mailserver_rejections_total", reason="relay_denied"), 0)
        self.assertEqual(value(s, "mailserver_deliveries_total", result="bounced"), 0)
        self.assertEqual(value(s, "mailserver_auth_attempts_total", result="success"), 1)
        self.assertEqual(value(s, "mailserver_auth_attempts_total", result="failure"), 1)
        self.assertEqual(value(s, "mailserver_tls_sessions_total", direction="inbound"), 1)
        self.assertEqual(value(s, "mailserver_tls_sessions_total", direction="outbound"), 1)
        self.assertEqual(value(s, "mailserver_relayed_bytes_total"),
                         len(self.tls_peer.wait_messages(1)[0].data))
        self.assertEqual(value(s, "mailserver_commit_latency_seconds_count"), N + 4)
        self.assertEqual(value(s, "mailserver_delivery_latency_seconds_count"), N + 1)
        self.assertEqual(value(s, "mailserver_session_duration_seconds_count"), sessions)
        self.assertEqual(value(s, "mailserver_queue_recipients"), 3)
        queued = srv.queue_json()["messages"]
        self.assertEqual(len(queued), 3)
        self.assertEqual(value(s, "mailserver_queue_bytes"), sum(m["size"] for m in queued))
        self.assertGreater(value(s, "mailserver_received_bytes_total"),
                           value(s, "mailserver_queue_bytes"))
        self.assertLess(value(s, "mailserver_queue_oldest_age_seconds"), 600)

        # The exposition format, as Prometheus's own checker reads it.
        if shutil.which("promtool") is None:
            self.skipTest("promtool (Debian prometheus) is not installed")
        text = scrape(self.mport)
        r = subprocess.run(["promtool", "check", "metrics"], input=text,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
