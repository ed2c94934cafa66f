"""Interoperability with real peers: a private Postfix relaying to
mailserver (UTF-8 mailboxes with ORCPT, long lines), and swaks."""
import json
import os
import shutil
import smtplib
import socket
import subprocess
import tempfile
import unittest

from harness import Server, free_port, wait_for, SLOW


class PrivatePostfix:
    """A Postfix instance of its own (postfix -c DIR/conf), listening on
    127.0.0.1:port, sending mail for each domain to a loopback port."""

    def __init__(self, port, transports):
        self.dir = tempfile.mkdtemp(prefix="ms-postfix-")
        self.port = port
        conf, queue, data, log = (os.path.join(self.dir, d) for d in ("conf", "queue", "data", "log"))
        for d in (conf, queue, data, log):
            os.makedirs(d)
        os.chmod(self.dir, 0o755)
        shutil.chown(data, "postfix", "postfix")
        self.maillog = os.path.join(log, "maillog")
        routes = ", ".join("%s=smtp:[127.0.0.1]:%d" % (d, p) for d, p in transports.items())
        with open(os.path.join(conf, "main.cf"), "w") as f:
            f.write("\n".join([
                "compatibility_level = 3.6",
                "queue_directory = " + queue,
                "data_directory = " + data,
                "command_directory = /usr/sbin",
                "daemon_directory = /usr/lib/postfix/sbin",
                "shlib_directory = /usr/lib/postfix",
                "meta_directory = /etc/postfix",
                "mail_owner = postfix",
                "setgid_group = postdrop",
                "myhostname = postfix.test",
                "mydestination =",
                "inet_interfaces = 127.0.0.1",
                "inet_protocols = ipv4",
                "mynetworks = 127.0.0.0/8",
                "smtpd_relay_restrictions = permit_mynetworks, reject",
                "smtputf8_enable = yes",
                "transport_maps = inline:{%s}" % routes,
                "smtp_dns_support_level = disabled",
                "smtpd_peername_lookup = no",
                "alias_maps =",
                "alias_database =",
                "local_recipient_maps =",
                "maillog_file = " + self.maillog,
                "maillog_file_prefixes = " + log,
                "",
            ]))
        with open("/etc/postfix/master.cf") as f, open(os.path.join(conf, "master.cf"), "w") as out:
            for line in f:
                parts = line.split()
                if line.startswith("#") or line[:1] in (" ", "\t") or len(parts) < 8:
                    out.write(line)
                elif parts[0] == "smtp" and parts[1] == "inet":
                    out.write("127.0.0.1:%d inet n - n - - smtpd\n" % port)
                else:
                    parts[4] = "n"     # no chroot
                    out.write(" ".join(parts) + "\n")
        self.conf = conf
        r = subprocess.run(["postfix", "-c", conf, "start"], capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            self.cleanup()
            raise AssertionError("postfix start: %s%s" % (r.stdout, r.stderr))

        def listening():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                return False
        wait_for(listening, 30, "postfix on %d" % port)

    def log(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def cleanup(self):
        # Stops the master this instance started (its own pid file).
        subprocess.run(["postfix", "-c", self.conf, "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("postfix"),
                     "needs root and Postfix (tests/deps.sh)")
class PostfixRelayTest(unittest.TestCase):
    """Postfix sends RCPT TO:<j\u00f6rg@...> ORCPT=rfc822;j+C3+B6rg@... to a
    UTF-8 mailbox; mailserver must take it (not 501: Postfix would bounce)."""

    @classmethod
    def setUpClass(cls):
        cls.users = Server(hostname="mx.test")
        with open(os.path.join(cls.users.dir, "users"), "w") as f:
            f.write("j\u00f6rg@localhost:\nalice@localhost:\n")
        with open(os.path.join(cls.users.dir, "aliases"), "w") as f:
            f.write("\u00f6@localhost: j\u00f6rg@localhost\n")
        with open(cls.users.conf, "a") as f:
            f.write("users_file = %s/users\naliases_file = %s/aliases\n" % (cls.users.dir, cls.users.dir))
        cls.users.start()
        # relay_domains and a route nobody answers: mail waits in the queue
        # so its envelope can be read back
        cls.held = Server("relay_domains = held.test\nroutes = held.test=[127.0.0.1]:9\n"
                          "retry_min = 1h\nretry_max = 2h\n", hostname="mx2.test").start()
        cls.pf = PrivatePostfix(free_port(), {"localhost": cls.users.port,
                                              "held.test": cls.held.port})

    @classmethod
    def tearDownClass(cls):
        cls.pf.cleanup()
        for srv in (cls.users, cls.held):
            code = srv.stop()
            srv.cleanup()
            assert code == 0, code

    def submit(self, rcpt, body):
        with smtplib.SMTP("127.0.0.1", self.pf.port, timeout=30) as s:
            s.ehlo("client.test")
            s.sendmail("sender@example.org", [rcpt], body, mail_options=["SMTPUTF8"])

    def test_utf8_mailbox_with_orcpt(self):
        self.submit("j\u00f6rg@held.test", "Subject: held\r\n\r\nhi\r\n".encode())

        def queued():
            msgs = self.held.queue_json()["messages"]
            return msgs[0] if msgs else None
        msg = wait_for(queued, 30, "the message from Postfix")
        show = self.held.mailctl("--json", "show", msg["id"]).stdout
        rcpt = json.loads(show)["recipients"][0]
        self.assertEqual(rcpt["address"], "j\u00f6rg@held.test")
        self.assertEqual(rcpt["orcpt"], "rfc822;j\u00f6rg@held.test")
        self.assertNotIn("status=bounced", self.pf.log())

    def test_utf8_users_and_aliases(self):
        self.submit("j\u00f6rg@localhost", "Subject: direct\r\n\r\nhallo\r\n".encode())
        self.submit("\u00f6@localhost", "Subject: alias\r\n\r\nhallo\r\n".encode())
        files = wait_for(lambda: len(self.users.maildir_files("j\u00f6rg@localhost")) == 2 and
                         self.users.maildir_files("j\u00f6rg@localhost"), 30, "two deliveries")
        subjects = sorted(open(f, "rb").read().split(b"Subject: ")[1].split(b"\n")[0] for f in files)
        self.assertEqual(subjects, [b"alias", b"direct"])
        # Postfix logs through postlogd, after the 250 it was given
        wait_for(lambda: "status=sent" in self.pf.log(), 30, "Postfix to log status=sent")

    def test_long_line_folded_by_postfix_is_taken(self):
        line = "x" * 1500
        self.submit("alice@localhost", ("Subject: long\r\n\r\n%s\r\n" % line).encode())
        files = wait_for(lambda: self.users.maildir_files("alice@localhost"), 30, "delivery")
        body = open(files[0], "rb").read().split(b"\n\n", 1)[1]
        self.assertEqual(body.count(b"x"), 1500)
        self.assertTrue(all(len(l) <= 998 for l in body.split(b"\n")))


@unittest.skipUnless(shutil.which("swaks"), "needs swaks (tests/deps.sh)")
class SwaksTest(unittest.TestCase):
    """swaks as the client: a long content line gets a 5xx that RFC 5321
    allows at the end of data, and the session ends normally."""

    def test_long_line_refused_at_end_of_data(self):
        srv = Server().start()
        try:
            body = os.path.join(srv.dir, "body")
            with open(body, "w") as f:
                f.write("Subject: long\n\n" + "y" * 1200 + "\n")
            r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % srv.port,
                                "--from", "a@b.example", "--to", "x@localhost",
                                "--data", "@" + body, "--timeout", str(30 * SLOW)],
                               capture_output=True, text=True, timeout=120 * SLOW)
            self.assertIn("<** 550 5.6.0", r.stdout, r.stdout)
            self.assertIn("<-  221", r.stdout)
            r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % srv.port,
                                "--from", "a@b.example", "--to", "x@localhost",
                                "--timeout", str(30 * SLOW)],
                               capture_output=True, text=True, timeout=120 * SLOW)
            self.assertIn("<-  250 2.0.0 Ok: queued as", r.stdout, r.stdout)
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


if __name__ == "__main__":
    unittest.main()
