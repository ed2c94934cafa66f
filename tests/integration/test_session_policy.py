"""The session asks policy services (policy_services) through the daemon:
real postgrey (the first try gets 450, a retry after the delay passes and
the message carries postgrey's header), real postfix-policyd-spf-python
(SPF pass prepends Received-SPF, fail refuses), and two scripted services
in a chain for every action, the order rules (OK stops, DEFER_IF_PERMIT,
DEFER_IF_REJECT), the end-of-data stage, the attributes sent, and a hung
service (the default action, while other sessions on the same worker go
on).
"""
import base64
import os
import select
import signal
import time
import unittest

from harness import Client, Server, SLOW, dot_stuff, test_cert, wait_for
from policy_peers import (HANG, PolicyPeer, PolicydSpf, Postgrey, SPF_UNAVAILABLE,
                          postgrey_available, spf_available)
from test_dovecot import crypt_hash


def ok(text):
    return b"action=" + text.encode() + b"\n\n"


def session(port, source=None, helo="client.test"):
    c = Client(port, source=source)
    assert c.reply()[0] == 220
    code, lines = c.cmd("EHLO " + helo)
    assert code == 250, (code, lines)
    return c


def data(c, body=b"Subject: policy\r\n\r\nhello\r\n"):
    """DATA and the message; returns the reply to its end."""
    code, text = c.cmd("DATA")
    assert code == 354, (code, text)
    c.send(dot_stuff(body) + b".\r\n")
    return c.reply()


def read_mail(server, addr):
    files = wait_for(lambda: server.maildir_files(addr), 20, "delivery to " + addr)
    with open(files[-1], "rb") as f:
        return f.read()


def header_names(msg):
    """The field names of the header section, in order."""
    head = msg.split(b"\n\n", 1)[0]
    return [l.split(b":", 1)[0].decode() for l in head.split(b"\n")
            if l and l[:1] not in (b" ", b"\t")]


# What the first scripted service answers at RCPT, by the recipient's
# local part; at END-OF-MESSAGE, by the sender's local part.
FIRST = {
    "reject": "REJECT not here",
    "defer": "DEFER come back",
    "dip": "DEFER_IF_PERMIT Greylisted",
    "dipreject": "DEFER_IF_PERMIT Greylisted",
    "dir": "DEFER_IF_REJECT maybe later",
    "okfirst": "OK",
    "prepend": "PREPEND X-Policy-Test: yes",
    "prepend2": "PREPEND X-Policy-Test: yes",
    "bcc": "BCC copy@example.org",
    "redirect": "REDIRECT elsewhere@example.org",
    "discard": "DISCARD spam",
    "hold": "HOLD look",
    "shutdown": "421 4.7.0 go away",
    "code": "550 5.1.1 no such user here",
    "hang": HANG,
}
SECOND = {"dipreject": "REJECT second says no", "dir": "REJECT second says no",
          "okfirst": "REJECT never asked", "prepend": "PREPEND X-Second: 2"}
EOM = {"eomreject": "550 5.7.1 not at the end", "eomprepend": "PREPEND X-End: of data"}


def local(addr):
    return addr.split("@")[0]


def first_answer(attrs, n):
    if attrs.get("protocol_state") == "END-OF-MESSAGE":
        return ok(EOM.get(local(attrs.get("sender", "")), "DUNNO"))
    what = FIRST.get(local(attrs.get("recipient", "")), "DUNNO")
    return what if what == HANG else ok(what)


def second_answer(attrs, n):
    if attrs.get("protocol_state") == "END-OF-MESSAGE":
        return ok("DUNNO")
    return ok(SECOND.get(local(attrs.get("recipient", "")), "DUNNO"))


class SessionPolicyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.first = PolicyPeer(first_answer)
        cls.second = PolicyPeer(second_answer)
        cert, key = test_cert()
        # users_file: sam logs in; the others exist (and cannot log in).
        cls.users = os.path.join("/tmp", "ms-spol-users-%d" % os.getpid())
        with open(cls.users, "w") as f:
            f.write("sam@example.org:%s\n" % crypt_hash("sam pw"))
            for u in list(FIRST) + ["one", "two", "three", "copy", "elsewhere", "tlsrcpt"]:
                f.write("%s@example.org:\n" % u)
        cls.server = Server(
            "local_domains = example.org\n"
            "tls_cert_file = %s\ntls_key_file = %s\n" % (cert, key) +
            "policy_services = %s\npolicy_services = %s\n" % (cls.first.endpoint,
                                                              cls.second.endpoint) +
            "policy_stages = rcpt end_of_data\n"
            "policy_default_action = DEFER policy down\n"
            "policy_timeout = 2s\n"
            "session_workers = 1\n"
            "auth_plaintext_networks = 127.0.0.0/8\nauth_any_sender = sam@example.org\n"
            "users_file = %s\n" % cls.users).start()
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()
        cls.first.stop()
        cls.second.stop()
        os.unlink(cls.users)

    def rcpt(self, addr, sender="alice@example.net"):
        c = session(self.port)
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % sender)[0], 250)
        return c, c.cmd("RCPT TO:<%s>" % addr)

    def asked(self, peer, rcpt):
        return [r for r in peer.requests if r.get("recipient") == rcpt]

    def test_refusals_at_rcpt(self):
        cases = [("reject@example.org", 554, "5.7.1 not here"),
                 ("defer@example.org", 450, "4.7.1 come back"),
                 ("dip@example.org", 450, "4.7.1 Greylisted"),
                 ("dipreject@example.org", 554, "5.7.1 second says no"),
                 ("dir@example.org", 450, "4.7.1 maybe later"),
                 ("code@example.org", 550, "5.1.1 no such user here")]
        for addr, code, text in cases:
            c, (got, lines) = self.rcpt(addr)
            self.assertEqual((got, lines[0]), (code, text), addr)
            c.close()
        # Refused recipients are not in the transaction: DATA has none.
        c, (got, _) = self.rcpt("reject@example.org")
        self.assertEqual(c.cmd("DATA")[0], 554)
        c.close()

    def test_ok_stops_and_users_file_checks_first(self):
        c, (got, _) = self.rcpt("okfirst@example.org")
        self.assertEqual(got, 250)
        self.assertEqual(len(self.asked(self.first, "okfirst@example.org")), 1)
        self.assertEqual(self.asked(self.second, "okfirst@example.org"), [])
        # An unknown local user is refused before any service is asked.
        self.assertEqual(c.cmd("RCPT TO:<nobody-here@example.org>")[0], 550)
        self.assertEqual(self.asked(self.first, "nobody-here@example.org"), [])
        c.close()

    def test_shutdown_closes(self):
        c, (got, lines) = self.rcpt("shutdown@example.org")
        self.assertEqual((got, lines[0]), (421, "4.7.0 go away"))
        self.assertTrue(c.closed())

    def test_prepend_bcc_redirect_discard(self):
        c = session(self.port)
        self.assertEqual(c.cmd("MAIL FROM:<alice@example.net>")[0], 250)
        for r in ("prepend@example.org", "prepend2@example.org", "bcc@example.org"):
            self.assertEqual(c.cmd("RCPT TO:<%s>" % r)[0], 250, r)
        self.assertEqual(data(c)[0], 250)
        msg = read_mail(self.server, "prepend@example.org")
        names = header_names(msg)
        # On top, in the order given, each header once, above Received.
        self.assertEqual(names[2:5], ["X-Policy-Test", "X-Second", "Received"], names)
        self.assertEqual(names.count("X-Policy-Test"), 1)
        self.assertIn(b"X-Policy-Test: yes\n", msg)
        self.assertIn(b"Subject: policy", read_mail(self.server, "copy@example.org"))
        self.assertIn(b"Subject: policy", read_mail(self.server, "bcc@example.org"))

        c, (got, _) = self.rcpt("redirect@example.org")
        self.assertEqual(got, 250)
        self.assertEqual(data(c, b"Subject: redirected\r\n\r\nx\r\n")[0], 250)
        c.close()
        self.assertIn(b"Subject: redirected", read_mail(self.server, "elsewhere@example.org"))
        self.assertEqual(self.server.maildir_files("redirect@example.org"), [])

        c, (got, _) = self.rcpt("discard@example.org")
        self.assertEqual(got, 250)
        code, text = data(c)
        self.assertEqual(code, 250, text)
        c.close()
        self.server.wait_log("discarded by a policy service")
        self.assertEqual(self.server.maildir_files("discard@example.org"), [])

        # HOLD: accepted, queued held (never delivered), released by hand.
        c, (got, _) = self.rcpt("hold@example.org")
        self.assertEqual(got, 250)
        code, text = data(c, b"Subject: held\r\n\r\nx\r\n")
        self.assertEqual(code, 250, text)
        c.close()
        qid = text[0].split()[-1]
        self.server.wait_log("%s: held: policy service HOLD: look" % qid)
        out = self.server.mailctl("queue").stdout
        self.assertIn("HELD", [l for l in out.splitlines() if l.startswith(qid)][0])
        self.assertEqual(self.server.maildir_files("hold@example.org"), [])
        self.server.mailctl("release", qid)
        self.assertIn(b"Subject: held", read_mail(self.server, "hold@example.org"))

    def test_end_of_data_stage_and_attributes(self):
        c = session(self.port, helo="helo.example")
        login = base64.b64encode(b"\0sam@example.org\0sam pw").decode()
        self.assertEqual(c.cmd("AUTH PLAIN " + login)[0], 235)
        self.assertEqual(c.cmd("MAIL FROM:<eomreject@example.org> SIZE=100")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<one@example.org>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<two@example.org>")[0], 250)
        code, text = data(c)
        self.assertEqual((code, text[0]), (550, "5.7.1 not at the end"))
        self.assertEqual(c.cmd("MAIL FROM:<eomprepend@example.org>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<three@example.org>")[0], 250)
        code, text = data(c, b"Subject: eom\r\n\r\nbody\r\n")
        self.assertEqual(code, 250, text)
        qid = text[0].split()[-1]
        c.close()
        msg = read_mail(self.server, "three@example.org")
        self.assertEqual(header_names(msg)[2:4], ["X-End", "Received"])

        first = [r for r in self.first.requests if r.get("sender", "").startswith("eom")]
        rcpt1, rcpt2, eom1, rcpt3, eom2 = first
        self.assertEqual([r["protocol_state"] for r in first],
                         ["RCPT", "RCPT", "END-OF-MESSAGE", "RCPT", "END-OF-MESSAGE"])
        self.assertEqual(rcpt1["request"], "smtpd_access_policy")
        self.assertEqual((rcpt1["recipient"], rcpt1["sender"]),
                         ("one@example.org", "eomreject@example.org"))
        self.assertEqual((rcpt1["client_address"], rcpt1["helo_name"],
                          rcpt1["protocol_name"]), ("127.0.0.1", "helo.example", "ESMTP"))
        self.assertEqual((rcpt1["sasl_username"], rcpt1["sasl_method"]),
                         ("sam@example.org", "PLAIN"))
        self.assertEqual((rcpt1["size"], rcpt1["recipient_count"]), ("100", "0"))
        self.assertEqual(rcpt1["server_address"], "127.0.0.1")
        self.assertEqual(rcpt1["server_port"], str(self.port))
        self.assertTrue(rcpt1["client_port"].isdigit())
        # One instance per message, the same at every stage of it.
        self.assertEqual({rcpt1["instance"], rcpt2["instance"], eom1["instance"]},
                         {rcpt1["instance"]})
        self.assertNotEqual(rcpt3["instance"], rcpt1["instance"])
        self.assertEqual(eom2["instance"], rcpt3["instance"])
        self.assertEqual((eom1["recipient"], eom1["recipient_count"]), ("", "2"))
        self.assertEqual(eom2["queue_id"], qid)
        self.assertEqual(eom2["size"], str(len(b"Subject: eom\r\n\r\nbody\r\n")))
        self.assertEqual(rcpt1["queue_id"], "")
        # The second service is asked after the first, unless the first
        # decided (the 550 at the end of the first message).
        self.assertEqual([r["protocol_state"] for r in self.second.requests
                          if r.get("sender", "").startswith("eom")],
                         ["RCPT", "RCPT", "RCPT", "END-OF-MESSAGE"])

    def test_encryption_attributes(self):
        c = session(self.port)
        self.assertEqual(c.cmd("STARTTLS")[0], 220)
        c.starttls()
        self.assertEqual(c.cmd("EHLO client.test")[0], 250)
        self.assertEqual(c.cmd("MAIL FROM:<tls@example.net>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<tlsrcpt@example.org>")[0], 250)
        c.close()
        r = self.asked(self.first, "tlsrcpt@example.org")[0]
        self.assertTrue(r["encryption_protocol"].startswith("TLSv1."), r)
        self.assertTrue(r["encryption_cipher"], r)
        self.assertGreaterEqual(int(r["encryption_keysize"]), 128)
        self.assertEqual(r["sasl_username"], "")

    def test_hung_service_gets_default_action_and_stalls_nobody(self):
        # session_workers = 1: both sessions share one event loop.
        c, _ = self.rcpt("one@example.org")
        t0 = time.monotonic()
        c.send("RCPT TO:<hang@example.org>\r\n")
        other, (got, _) = self.rcpt("defer@example.org")
        self.assertEqual(got, 450)
        other.close()
        self.assertEqual(select.select([c.sock], [], [], 0)[0], [])
        code, text = c.reply()
        self.assertEqual((code, text[0]), (450, "4.7.1 policy down"))
        self.assertGreater(time.monotonic() - t0, 1.5)
        self.assertLess(time.monotonic() - t0, 10 * SLOW)
        c.close()
        self.server.wait_log("(default action)")

    def test_reload_brings_the_new_services(self):
        a = PolicyPeer(lambda attrs, n: ok("REJECT said A"))
        b = PolicyPeer(lambda attrs, n: ok("REJECT said B"))
        server = Server("local_domains = example.org\npolicy_services = %s\n" % a.endpoint)
        try:
            server.start()
            c = session(server.port)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.net>")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<x@example.org>")[1][0], "5.7.1 said A")
            with open(server.conf) as f:
                text = f.read()
            server.write_config(text.replace(a.endpoint, b.endpoint))
            server.signal(signal.SIGHUP)
            server.wait_log("reloaded")
            # The session keeps the snapshot it began with; new ones ask B.
            self.assertEqual(c.cmd("RCPT TO:<y@example.org>")[1][0], "5.7.1 said A")
            c.close()
            c = session(server.port)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.net>")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<x@example.org>")[1][0], "5.7.1 said B")
            c.close()
        finally:
            server.cleanup()
            a.stop()
            b.stop()

    def test_stop_does_not_wait_out_a_hung_service(self):
        # policy_timeout 100 s; the daemon still stops within its own
        # shutdown_timeout (the pool's waits on filter daemons end).
        server = Server("local_domains = example.org\n"
                        "policy_services = %s\n" % self.first.endpoint +
                        "users_file = %s\n" % self.users)
        with open(server.conf) as f:
            server.write_config(f.read().replace("shutdown_timeout = 10s",
                                                 "shutdown_timeout = 1s"))
        server.start()
        try:
            c = session(server.port)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.net>")[0], 250)
            n = len(self.asked(self.first, "hang@example.org"))
            c.send("RCPT TO:<hang@example.org>\r\n")
            wait_for(lambda: len(self.asked(self.first, "hang@example.org")) > n, 10,
                     "the request to the hung service")
            t0 = time.monotonic()
            self.assertEqual(server.stop(), 0)
            self.assertLess(time.monotonic() - t0, 10 * SLOW)
            c.close()
        finally:
            server.cleanup()


@unittest.skipUnless(postgrey_available(), "postgrey is not installed")
class SessionPostgreyTest(unittest.TestCase):
    DELAY = 2

    @classmethod
    def setUpClass(cls):
        cls.postgrey = Postgrey(cls.DELAY, hostname="grey.test")
        cls.server = Server("local_domains = example.org\n"
                            "policy_services = %s\n" % cls.postgrey.endpoint).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()
        cls.postgrey.cleanup()

    def test_first_try_450_retry_passes_with_header(self):
        def attempt():
            c = session(self.server.port)
            self.assertEqual(c.cmd("MAIL FROM:<list@example.net>")[0], 250)
            code, text = c.cmd("RCPT TO:<grey@example.org>")
            return c, code, text
        t0 = time.monotonic()
        c, code, text = attempt()
        self.assertEqual(code, 450, text)
        self.assertTrue(text[0].startswith("4.2.0 Greylisted"), text)
        self.assertEqual(c.cmd("DATA")[0], 554)
        c.close()

        def passes():
            c, code, _ = attempt()
            if code == 250:
                return c
            c.close()
            return None
        c = wait_for(passes, 20, "postgrey to let the retry pass")
        self.assertGreater(time.monotonic() - t0, self.DELAY - 1)
        self.assertEqual(data(c)[0], 250)
        c.close()
        msg = read_mail(self.server, "grey@example.org")
        self.assertEqual(header_names(msg)[2:4], ["X-Greylist", "Received"])
        self.assertIn(b"X-Greylist: delayed ", msg)
        self.assertIn(b"grey.test", msg)


@unittest.skipUnless(spf_available(), SPF_UNAVAILABLE)
class SessionPolicydSpfTest(unittest.TestCase):
    """loop.spf.test allows 127.0.0.5 only (tests/integration/dns/spf.data);
    clients connect from 127.0.0.5 and 127.0.0.6."""

    @classmethod
    def setUpClass(cls):
        cls.spf = PolicydSpf("debugLevel = 1\nTestOnly = 1\nHELO_reject = Fail\n"
                             "Mail_From_reject = Fail\nPermError_reject = False\n"
                             "TempError_Defer = False\nskip_addresses = 192.0.2.255/32\n"
                             "Lookup_Time = 5\n")
        cls.server = Server("local_domains = example.org\n"
                            "policy_services = %s\n" % cls.spf.endpoint).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()
        cls.spf.cleanup()

    def test_pass_prepends_received_spf_and_fail_is_refused(self):
        c = session(self.server.port, source="127.0.0.5")
        self.assertEqual(c.cmd("MAIL FROM:<a@loop.spf.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<spf@example.org>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<spf2@example.org>")[0], 250)
        self.assertEqual(data(c)[0], 250)
        c.close()
        msg = read_mail(self.server, "spf@example.org")
        names = header_names(msg)
        self.assertEqual(names[2:4], ["Received-SPF", "Received"])
        self.assertEqual(names.count("Received-SPF"), 1)
        self.assertIn(b"Received-SPF: Pass (mailfrom)", msg)
        self.assertIn(b"client-ip=127.0.0.5", msg)

        c = session(self.server.port, source="127.0.0.6")
        self.assertEqual(c.cmd("MAIL FROM:<a@loop.spf.test>")[0], 250)
        code, text = c.cmd("RCPT TO:<spf@example.org>")
        self.assertEqual(code, 550, text)
        self.assertTrue(text[0].startswith("5.7.23 Message rejected due to: SPF fail"), text)
        c.close()


if __name__ == "__main__":
    unittest.main()
