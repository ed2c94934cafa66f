"""Inbound SMTP against a running mailserver: commands, replies, policy,
pipelining, limits and hostile input (issue: inbound SMTP)."""
import contextlib
import json
import os
import signal
import smtplib
import socket
import time
import unittest

from harness import Client, DnsServer, Server, greet, wait_for, SLOW

HERE = os.path.dirname(os.path.abspath(__file__))

MSG = b"Subject: test\r\nFrom: a@example.org\r\n\r\nhello\r\n"


@contextlib.contextmanager
def frozen(srv):
    """The server stopped (SIGSTOP) meanwhile: what the client sends then
    is all in the socket when the server next reads."""
    srv.signal(signal.SIGSTOP)
    try:
        yield
    finally:
        srv.signal(signal.SIGCONT)


def read_to_eof(sock):
    data = b""
    while True:
        d = sock.recv(65536)
        if not d:
            return data
        data += d


class SmtpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server()
        users = os.path.join(cls.srv.dir, "users")
        with open(users, "w") as f:
            f.write("alice@localhost:\nbob@localhost:\n")
        aliases = os.path.join(cls.srv.dir, "aliases")
        with open(aliases, "w") as f:
            f.write("team@localhost: alice@localhost, bob@localhost\n")
        with open(cls.srv.conf, "a") as f:
            f.write("users_file = %s\naliases_file = %s\n" % (users, aliases) +
                    "relay_domains = relayed.test hold.test\nmax_recipients = 5\n"
                    # mail for hold.test waits in the queue (nothing listens there)
                    "routes = hold.test=[127.0.0.1]:9\n"
                    "max_message_size = 64K\nmax_errors = 5\n")
        cls.srv.start()

    @classmethod
    def tearDownClass(cls):
        code = cls.srv.stop()
        cls.srv.cleanup()
        assert code == 0, code

    def queued_ids(self):
        return self.srv.known_ids()

    def test_greeting_and_ehlo_capabilities(self):
        c = Client(self.srv.port)
        code, lines = c.reply()
        self.assertEqual(code, 220)
        self.assertTrue(lines[0].startswith("mx.test"))
        code, lines = c.cmd("EHLO client.test")
        self.assertEqual(code, 250)
        caps = {l.split()[0].upper() for l in lines[1:]}
        for cap in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES",
                    "SMTPUTF8", "CHUNKING", "DSN"):
            self.assertIn(cap, caps)
        self.assertIn("SIZE 65536", lines)
        self.assertNotIn("STARTTLS", caps)  # no certificate configured
        self.assertEqual(c.cmd("QUIT")[0], 221)
        self.assertTrue(c.closed())

    def test_smtplib_message_is_queued(self):
        with smtplib.SMTP("127.0.0.1", self.srv.port) as s:
            s.ehlo("client.test")
            s.mail("sender@example.org")
            s.rcpt("alice@hold.test")
            code, text = s.data(MSG)
        self.assertEqual(code, 250)
        self.assertRegex(text.decode(), r"^2\.0\.0 Ok: queued as [0-9A-F]{13}$")
        qid = text.decode().split()[-1]
        self.assertIn(qid, self.queued_ids())
        show = json.loads(self.srv.mailctl("--json", "show", qid).stdout)
        self.assertEqual(show["sender"], "sender@example.org")
        self.assertIn("Received: from client.test ([127.0.0.1])", show["headers"])
        self.assertIn("id " + qid, show["headers"])
        self.assertIn("for <alice@hold.test>", show["headers"])
        self.assertNotIn("Message-ID:", show["headers"])  # only submissions get one
        self.srv.wait_log(qid + ": from=<sender@example.org>")

    def test_helo_vrfy_help_noop_rset(self):
        c = Client(self.srv.port)
        c.reply()
        self.assertEqual(c.cmd("HELO client.test")[0], 250)
        self.assertEqual(c.cmd("VRFY alice")[0], 252)
        self.assertEqual(c.cmd("HELP")[0], 214)
        self.assertEqual(c.cmd("NOOP")[0], 250)
        self.assertEqual(c.cmd("RSET")[0], 250)
        # ESMTP parameters need EHLO
        self.assertEqual(c.cmd("MAIL FROM:<a@b.example> SIZE=10")[0], 555)
        self.assertEqual(c.cmd("QUIT")[0], 221)

    def test_sequence_and_syntax_errors(self):
        c = Client(self.srv.port)
        c.reply()
        self.assertEqual(c.cmd("MAIL FROM:<a@b.example>")[0], 503)  # before EHLO
        c.cmd("EHLO client.test")
        self.assertEqual(c.cmd("RCPT TO:<alice@localhost>")[0], 503)
        self.assertEqual(c.cmd("DATA")[0], 503)
        self.assertEqual(c.cmd("MAIL FROM:a@b.example")[0], 501)
        c.close()
        # 503s count toward max_errors (5 here): go on in a new session
        c, _ = greet(self.srv.port)
        self.assertEqual(c.cmd("MAIL FROM:<a@b.example>")[0], 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@b.example>")[0], 503)  # nested
        self.assertEqual(c.cmd("RCPT TO:<>")[0], 501)
        self.assertEqual(c.cmd("DATA")[0], 554)  # no valid recipients
        self.assertEqual(c.cmd("FOO")[0], 500)
        c.close()

    def test_recipient_policy(self):
        c, _ = greet(self.srv.port)
        self.assertEqual(c.cmd("MAIL FROM:<>")[0], 250)  # null sender works
        code, lines = c.cmd("RCPT TO:<nobody@localhost>")
        self.assertEqual(code, 550)
        self.assertTrue(lines[0].startswith("5.1.1"))
        self.assertEqual(c.cmd("RCPT TO:<Alice@LOCALHOST>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<team@localhost>")[0], 250)  # alias
        self.assertEqual(c.cmd("RCPT TO:<postmaster>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<postmaster@localhost>")[0], 250)
        # quotes that were not needed are not part of the name (RFC 5322
        # 3.2.4); ones that are needed name another mailbox
        self.assertEqual(c.cmd('RCPT TO:<"alice"@localhost>')[0], 250)
        self.assertEqual(c.cmd('RCPT TO:<"alice x"@localhost>')[0], 550)
        c.cmd("RSET")
        c.cmd("MAIL FROM:<a@b.example>")
        self.assertEqual(c.cmd("RCPT TO:<x@relayed.test>")[0], 250)
        # 127.0.0.1 is in the default relay_networks
        self.assertEqual(c.cmd("RCPT TO:<x@elsewhere.example>")[0], 250)
        c.close()

    def test_too_many_recipients(self):
        c, _ = greet(self.srv.port)
        c.cmd("MAIL FROM:<a@b.example>")
        for i in range(5):
            self.assertEqual(c.cmd("RCPT TO:<x%d@relayed.test>" % i)[0], 250)
        code, lines = c.cmd("RCPT TO:<x9@relayed.test>")
        self.assertEqual(code, 452)
        self.assertTrue(lines[0].startswith("4.5.3"))
        c.close()

    def test_size_limits(self):
        c, _ = greet(self.srv.port)
        code, lines = c.cmd("MAIL FROM:<a@b.example> SIZE=1000000")
        self.assertEqual(code, 552)
        self.assertTrue(lines[0].startswith("5.3.4"))
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@localhost>")
        self.assertEqual(c.cmd("DATA")[0], 354)
        line = b"x" * 900 + b"\r\n"
        c.send(line * 100 + b".\r\n")
        code, lines = c.reply()
        self.assertEqual(code, 552)
        self.assertTrue(lines[0].startswith("5.3.4"))
        # the session goes on
        self.assertEqual(c.cmd("NOOP")[0], 250)
        c.close()

    def test_bdat_over_the_size_limit_refused_at_its_chunk(self):
        """BDAT: the chunk that passes max_message_size gets the 552, not
        only LAST; the chunks after it are read and refused, and the next
        transaction is clean."""
        before = self.queued_ids()
        c, _ = greet(self.srv.port)
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@localhost>")
        chunk = (b"x" * 98 + b"\r\n") * 400          # 40,000 octets
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        self.assertEqual(c.reply()[1][0], "2.0.0 40000 octets received")
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)  # 80,000 > 64K
        code, lines = c.reply()
        self.assertEqual((code, lines[0][:5]), (552, "5.3.4"), lines)
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        self.assertEqual(c.reply()[0], 552)
        self.assertEqual(c.cmd("BDAT 0 LAST")[0], 552)
        self.assertEqual(c.cmd("RCPT TO:<alice@localhost>")[0], 503)   # the transaction is over
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@localhost>")
        self.assertEqual(c.cmd("BDAT 0 LAST")[0], 250)
        c.close()
        self.assertEqual(len(self.queued_ids() - before), 1)

    def test_new_mail_after_a_refused_bdat_chunk(self):
        """RFC 3030 2: after a 4xx/5xx to a chunk the client sends no more
        chunks; its next MAIL (no RSET, no LAST) starts a new
        transaction, and the pipelined chunk behind the refused one is
        still refused."""
        before = self.queued_ids()
        c, _ = greet(self.srv.port)
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@localhost>")
        chunk = (b"x" * 98 + b"\r\n") * 400          # 40,000 octets
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        self.assertEqual(c.reply()[0], 250)
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk + b"BDAT %d\r\n" % len(chunk) + chunk)
        self.assertEqual(c.reply()[0], 552)
        self.assertEqual(c.reply()[0], 552)
        self.assertEqual(c.cmd("MAIL FROM:<a@b.example>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<alice@localhost>")[0], 250)
        c.send(b"BDAT 4 LAST\r\nhi\r\n")
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(c.cmd("QUIT")[0], 221)
        c.close()
        self.assertEqual(len(self.queued_ids() - before), 1)

    def test_long_command_line(self):
        c, _ = greet(self.srv.port)
        code, lines = c.cmd("NOOP " + "x" * 600)
        self.assertEqual(code, 500)
        self.assertTrue(lines[0].startswith("5.5.2"))
        self.assertEqual(c.cmd("NOOP")[0], 250)
        c.close()

    def test_100k_line_without_newline(self):
        c, _ = greet(self.srv.port)
        try:
            c.send(b"A" * 100000)
            code, lines = c.reply()
            self.assertEqual(code, 500)
        except (ConnectionResetError, BrokenPipeError, EOFError):
            pass  # a close is allowed too
        c.close()
        # the server is fine
        c2, _ = greet(self.srv.port)
        self.assertEqual(c2.cmd("NOOP")[0], 250)
        c2.close()

    def test_long_text_line_rejected(self):
        """A content line over 998 octets is refused at the end of data with
        a reply RFC 5321 allows there (not 500), and the session goes on."""
        c, _ = greet(self.srv.port)
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@localhost>")
        c.cmd("DATA")
        c.send(b"Subject: x\r\n\r\n" + b"y" * 1200 + b"\r\n.\r\n")
        code, lines = c.reply()
        self.assertEqual(code, 550)
        self.assertTrue(lines[0].startswith("5.6.0"), lines)
        self.assertEqual(c.cmd("NOOP")[0], 250)
        c.close()

    def test_unknown_recipients_counted_apart(self):
        """550s at RCPT are not bad commands: a list with stale addresses
        goes on; a harvest of names is cut at max_unknown_recipients."""
        c, _ = greet(self.srv.port)
        c.cmd("MAIL FROM:<list@b.example>")
        for i in range(15):
            self.assertEqual(c.cmd("RCPT TO:<stale%d@localhost>" % i)[0], 550)
        self.assertEqual(c.cmd("RCPT TO:<alice@localhost>")[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(MSG + b".\r\n")
        self.assertEqual(c.reply()[0], 250)
        c.close()
        c, _ = greet(self.srv.port)
        c.cmd("MAIL FROM:<harvest@b.example>")
        for i in range(20):
            self.assertEqual(c.cmd("RCPT TO:<guess%d@localhost>" % i)[0], 550)
        code, lines = c.reply()
        self.assertEqual(code, 421)
        self.assertTrue(lines[0].startswith("4.7.0"), lines)
        self.assertTrue(c.closed())

    def test_bad_sequence_counts_as_error(self):
        c, _ = greet(self.srv.port)
        codes = [c.cmd("RCPT TO:<alice@localhost>")[0] for _ in range(5)]
        self.assertEqual(codes, [503] * 5)
        self.assertEqual(c.reply()[0], 421)       # max_errors = 5
        self.assertTrue(c.closed())

    def test_bdat_refusals_do_not_spoil_the_next_transaction(self):
        c, _ = greet(self.srv.port)
        c.send(b"BDAT 5\r\nhello")                 # before MAIL
        self.assertEqual(c.reply()[0], 503)
        self.assertEqual(c.cmd("BDAT 0")[0], 503)
        self.assertEqual(c.cmd("BDAT")[0], 501)    # a bare BDAT
        self.assertEqual(c.cmd("MAIL FROM:<a@b.example>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<alice@localhost>")[0], 250)
        body = b"Subject: chunk\r\n\r\nok\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(body) + body)
        code, lines = c.reply()
        self.assertEqual(code, 250, lines)
        self.assertIn("queued as", lines[0])
        c.close()

    def test_bdat_chunk_octet_counts(self):
        """Each non-last BDAT chunk's reply names its own size."""
        c, _ = greet(self.srv.port)
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@localhost>")
        c.send(b"BDAT 5\r\nabcd\r")             # the CR waits for its LF
        code, lines = c.reply()
        self.assertEqual((code, lines[0]), (250, "2.0.0 5 octets received"))
        c.send(b"BDAT 3\r\n\nxy")
        self.assertEqual(c.reply()[1][0], "2.0.0 3 octets received")
        c.send(b"BDAT 2\r\n\r\n")
        self.assertEqual(c.reply()[1][0], "2.0.0 2 octets received")
        self.assertEqual(c.cmd("BDAT 0 LAST")[0], 250)
        c.close()

    def test_long_mail_and_rcpt_lines(self):
        """MAIL and RCPT take the longer lines AUTH=, ENVID and ORCPT need;
        other commands keep the 512-octet limit."""
        c, _ = greet(self.srv.port)
        envid = "+41" * 100                         # 100 octets decoded
        auth = "+3C" + "u" * 200 + "@b.example+3E"
        line = "MAIL FROM:<a@b.example> BODY=8BITMIME ENVID=%s AUTH=%s" % (envid, auth)
        self.assertGreater(len(line), 512)
        self.assertEqual(c.cmd(line)[0], 250)
        orcpt = "o" * 60 + "@" + ".".join(["d" * 60] * 6) + ".example"
        line = "RCPT TO:<alice@hold.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;%s" % (
            orcpt.replace("o", "+6F"))
        self.assertGreater(len(line), 512)
        self.assertEqual(c.cmd(line)[0], 250)
        self.assertEqual(c.cmd("NOOP " + "x" * 600)[0], 500)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(MSG + b".\r\n")
        code, lines = c.reply()
        self.assertEqual(code, 250)
        qid = lines[0].split()[-1]
        show = json.loads(self.srv.mailctl("--json", "show", qid).stdout)
        self.assertEqual(show["envid"], "A" * 100)
        self.assertEqual(show["recipients"][0]["orcpt"], "rfc822;" + orcpt)
        c.close()

    def test_long_local_parts_of_verp_and_srs(self):
        """Local parts past RFC 5321's 64 octets, as mailing lists (VERP)
        and forwarders (SRS) write them, are taken; only the path's 256
        octets bound them."""
        c, _ = greet(self.srv.port)
        verp = "list-bounces+" + "someone.with.a.long.name=example.org" * 2
        srs = "SRS0=HHH=TT=" + "sub.example.org=" + "very.long.user.name" * 4
        self.assertGreater(len(verp), 64)
        self.assertGreater(len(srs), 64)
        self.assertEqual(c.cmd("MAIL FROM:<%s@lists.example.org>" % verp)[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<%s@hold.test>" % srs)[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(MSG + b".\r\n")
        code, lines = c.reply()
        self.assertEqual(code, 250)
        show = json.loads(self.srv.mailctl("--json", "show", lines[0].split()[-1]).stdout)
        self.assertEqual(show["sender"], verp + "@lists.example.org")
        self.assertEqual(show["recipients"][0]["address"], srs + "@hold.test")
        self.assertEqual(c.cmd("MAIL FROM:<%s@b.example>" % ("l" * 250))[0], 501)
        c.close()

    def test_reject_log_lines_end_cleanly(self):
        c, _ = greet(self.srv.port)
        c.cmd("MAIL FROM:<logcheck@b.example>")
        c.cmd("RCPT TO:<alice@localhost>")
        c.cmd("DATA")
        c.send(b"Subject: x\r\n\r\nbare\nlf\r\n.\r\n")
        self.assertEqual(c.reply()[0], 550)
        c.close()
        self.srv.wait_log("reject: logcheck@b.example")
        lines = [l for l in self.srv.logtext().splitlines() if "reject:" in l]
        self.assertTrue(lines)
        for l in lines:
            self.assertFalse(l.endswith("?"), l)

    def test_bare_lf_in_command(self):
        c, _ = greet(self.srv.port)
        c.send(b"NOOP\n")
        code, lines = c.reply()
        self.assertEqual(code, 500)
        c.send(b"NO\rOP\r\n")
        self.assertEqual(c.reply()[0], 500)
        self.assertEqual(c.cmd("NOOP")[0], 250)
        c.close()

    def smuggle(self, ending):
        """Sends a message whose body holds `ending` followed by a second,
        smuggled transaction; returns (reply code, queue ids before, after)."""
        before = self.queued_ids()
        c, _ = greet(self.srv.port)
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@localhost>")
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"Subject: first\r\n\r\nbody\r\n" + ending +
               b"MAIL FROM:<evil@b.example>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n"
               b"Subject: smuggled\r\n\r\nevil\r\n.\r\n")
        code, lines = c.reply()
        after = self.queued_ids()
        extra = []
        c.sock.settimeout(0.5 * SLOW)
        try:
            while True:
                extra.append(c.reply()[0])
        except (socket.timeout, EOFError, OSError):
            pass
        c.close()
        return code, before, after, extra

    def test_smuggling_variants(self):
        endings = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r",
                   b".\n", b"\n.", b"\r\n\x00.\r\n", b"\r\n.\x00\r\n", b"\n..\n",
                   b"\r\n.\r\r\n"]
        for ending in endings:
            with self.subTest(ending=ending):
                code, before, after, extra = self.smuggle(ending)
                # the whole thing is one message, and it is refused
                self.assertIn(code, (550, 500), ending)
                self.assertEqual(after, before, ending)
                self.assertEqual(extra, [], ending)

    def test_clean_message_after_dot_ending_counts_once(self):
        before = self.queued_ids()
        c, _ = greet(self.srv.port)
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@localhost>")
        c.cmd("DATA")
        c.send(b"Subject: x\r\n\r\n..leading dot\r\n.\r\n")
        code, lines = c.reply()
        self.assertEqual(code, 250)
        self.assertEqual(len(self.queued_ids() - before), 1)
        c.close()

    def test_pipelining_in_order(self):
        c, _ = greet(self.srv.port)
        c.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<nobody@localhost>\r\n"
               b"RCPT TO:<alice@localhost>\r\nNOOP\r\nDATA\r\n")
        self.assertEqual([c.reply()[0] for _ in range(5)], [250, 550, 250, 250, 354])
        c.send(b"Subject: p\r\n\r\nx\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n")
        self.assertEqual([c.reply()[0] for _ in range(4)], [250, 250, 250, 221])
        c.close()

    def test_pipelined_end_quit_and_fin(self):
        """'.' CRLF QUIT CRLF and the client's FIN at once: the 250 and the
        221 still come, so the client does not send the message again."""
        for size in (200, 32768, 49152):
            with self.subTest(size=size):
                before = self.queued_ids()
                c, _ = greet(self.srv.port)
                c.cmd("MAIL FROM:<a@b.example>")
                c.cmd("RCPT TO:<alice@localhost>")
                self.assertEqual(c.cmd("DATA")[0], 354)
                tail = b".\r\nQUIT\r\n"
                head = b"Subject: fin\r\n\r\n"
                k = (size - len(tail) - len(head)) // 72 - 1
                last = size - len(tail) - len(head) - 72 * k
                body = head + (b"z" * 70 + b"\r\n") * k + b"y" * (last - 2) + b"\r\n"
                self.assertEqual(len(body + tail), size)
                with frozen(self.srv):
                    c.send(body + tail)
                    c.sock.shutdown(socket.SHUT_WR)
                data = read_to_eof(c.sock)
                c.close()
                self.assertRegex(data, rb"^250 2\.0\.0 Ok: queued as [0-9A-F]{13}\r\n221 ")
                qid = data.split(b"\r\n")[0].split()[-1].decode()
                self.assertEqual(self.queued_ids() - before, {qid})

    def test_pipelined_bdat_last_quit_and_fin(self):
        """The same with BDAT ... LAST, the chunk, QUIT and the FIN at once."""
        for size in (200, 49152):
            with self.subTest(size=size):
                before = self.queued_ids()
                c, _ = greet(self.srv.port)
                c.cmd("MAIL FROM:<a@b.example>")
                c.cmd("RCPT TO:<alice@localhost>")
                body = b"Subject: fin\r\n\r\n" + (b"z" * 70 + b"\r\n") * (size // 72)
                with frozen(self.srv):
                    c.send(b"BDAT %d LAST\r\n" % len(body) + body + b"QUIT\r\n")
                    c.sock.shutdown(socket.SHUT_WR)
                data = read_to_eof(c.sock)
                c.close()
                self.assertRegex(data, rb"^250 2\.0\.0 Ok: queued as [0-9A-F]{13}\r\n221 ")
                qid = data.split(b"\r\n")[0].split()[-1].decode()
                self.assertEqual(self.queued_ids() - before, {qid})

    def test_pipelined_body_after_rejected_data_not_commands(self):
        before = self.queued_ids()
        c, _ = greet(self.srv.port)
        c.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<nobody@localhost>\r\nDATA\r\n"
               b"MAIL FROM:<x@b.example>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n"
               b"x\r\n.\r\n")
        codes = []
        c.sock.settimeout(2 * SLOW)
        try:
            while True:
                codes.append(c.reply()[0])
        except (socket.timeout, EOFError, OSError):
            pass
        self.assertEqual(codes[:3], [250, 550, 554])
        self.assertNotIn(354, codes)
        self.assertEqual(self.queued_ids(), before)
        c.close()

    def test_bdat(self):
        c, _ = greet(self.srv.port)
        c.cmd("MAIL FROM:<a@b.example> BODY=8BITMIME")
        c.cmd("RCPT TO:<alice@hold.test>")
        part1 = b"Subject: chunked\r\n\r\nfirst \xc3\xa9 line\r"
        part2 = b"\n.second line\r\n"
        c.send(b"BDAT %d\r\n" % len(part1) + part1)
        self.assertEqual(c.reply()[0], 250)
        c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
        code, lines = c.reply()
        self.assertEqual(code, 250)
        qid = lines[0].split()[-1]
        show = json.loads(self.srv.mailctl("--json", "show", qid).stdout)
        self.assertIn("8bitmime", [f.lower() for f in show["flags"]])
        # a bare LF inside BDAT content is refused at LAST
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@localhost>")
        bad = b"Subject: x\r\n\r\nbare\nlf\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(bad) + bad)
        self.assertEqual(c.reply()[0], 550)
        # DATA after BDAT is a sequence error; BDAT 0 LAST ends a message
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@localhost>")
        c.send(b"BDAT 6\r\nab\r\n\r\n")
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 503)
        self.assertEqual(c.cmd("BDAT 0 LAST")[0], 250)
        c.close()

    def test_dsn_parameters_stored(self):
        c, _ = greet(self.srv.port)
        self.assertEqual(c.cmd("MAIL FROM:<a@b.example> RET=HDRS ENVID=abc+2Bdef")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<alice@hold.test> NOTIFY=SUCCESS,FAILURE "
                               "ORCPT=rfc822;alice+40localhost")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<bob@hold.test> NOTIFY=NEVER")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<team@localhost> NOTIFY=NEVER,SUCCESS")[0], 501)
        c.cmd("DATA")
        c.send(MSG + b".\r\n")
        code, lines = c.reply()
        self.assertEqual(code, 250)
        qid = lines[0].split()[-1]
        show = json.loads(self.srv.mailctl("--json", "show", qid).stdout)
        self.assertEqual(show["envid"], "abc+def")
        self.assertEqual(show["ret"].upper(), "HDRS")
        r = {x["address"]: x for x in show["recipients"]}
        self.assertEqual(r["alice@hold.test"]["orcpt"], "rfc822;alice@localhost")
        self.assertIn("SUCCESS", r["alice@hold.test"]["notify"].upper())
        self.assertIn("NEVER", r["bob@hold.test"]["notify"].upper())
        c.close()

    def test_smtputf8(self):
        c, _ = greet(self.srv.port)
        self.assertEqual(c.cmd("MAIL FROM:<j\u00f6rg@b.example>")[0], 553)
        self.assertEqual(c.cmd("MAIL FROM:<j\u00f6rg@b.example> SMTPUTF8")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<alice@localhost>")[0], 250)
        c.cmd("DATA")
        c.send("Subject: caf\u00e9\r\n\r\nhi\r\n.\r\n".encode())
        self.assertEqual(c.reply()[0], 250)
        c.close()

    def test_mail_loop_refused(self):
        c, _ = greet(self.srv.port)
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@localhost>")
        c.cmd("DATA")
        hops = b"".join(b"Received: from hop%d.example by hop%d.example; date\r\n" % (i, i)
                        for i in range(60))
        c.send(hops + b"Subject: loop\r\n\r\nround and round\r\n.\r\n")
        code, lines = c.reply()
        self.assertEqual(code, 554)
        self.assertTrue(lines[0].startswith("5.4.6"))
        # 40 hops are fine
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@localhost>")
        c.cmd("DATA")
        c.send(hops[:len(hops) * 2 // 3] + b"Subject: ok\r\n\r\nx\r\n.\r\n")
        self.assertEqual(c.reply()[0], 250)
        c.close()

    def test_http_request_closed(self):
        c = Client(self.srv.port)
        c.reply()
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(c.closed())
        self.assertNotIn(b"250", c.buf)

    def test_repeated_errors_close(self):
        c, _ = greet(self.srv.port)
        codes = []
        try:
            for i in range(10):
                codes.append(c.cmd("BOGUS%d" % i)[0])
        except (EOFError, BrokenPipeError, ConnectionResetError):
            pass
        self.assertIn(421, codes)
        self.assertTrue(c.closed())

class SlowClientTest(unittest.TestCase):
    """A client that sends a byte now and then cannot hold a session:
    commands and messages have a total time; junk commands are counted."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Server("command_timeout = 2s\ndata_timeout = 2s\nmin_data_rate = 1K\n"
                         "max_junk_commands = 5\n").start()

    @classmethod
    def tearDownClass(cls):
        code = cls.srv.stop()
        cls.srv.cleanup()
        assert code == 0, code

    def dribble(self, c, chunk, every=0.3, limit=12):
        """Sends chunk every `every` seconds until the server answers;
        returns (reply, seconds it took)."""
        t0 = time.monotonic()
        c.sock.settimeout(every)
        while time.monotonic() - t0 < limit * SLOW:
            try:
                c.send(chunk)
            except OSError:
                break
            try:
                reply = c.reply()
                return reply, time.monotonic() - t0
            except socket.timeout:
                continue
        c.sock.settimeout(5 * SLOW)
        return c.reply(), time.monotonic() - t0

    def test_command_sent_a_byte_at_a_time(self):
        c, _ = greet(self.srv.port)
        (code, lines), took = self.dribble(c, b"N")
        self.assertEqual(code, 421)
        self.assertTrue(lines[0].startswith("4.4.2"), lines)
        self.assertLess(took, 5 * SLOW)
        c.close()

    def test_message_sent_a_line_at_a_time(self):
        c, _ = greet(self.srv.port)
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<x@localhost>")
        self.assertEqual(c.cmd("DATA")[0], 354)
        (code, lines), took = self.dribble(c, b"a line\r\n")
        self.assertEqual(code, 421)
        self.assertLess(took, 6 * SLOW)
        c.close()
        self.srv.wait_log("message data slower than 1024 bytes/s")

    def test_junk_commands_limited(self):
        c, _ = greet(self.srv.port)
        self.assertEqual([c.cmd(v)[0] for v in ("NOOP", "RSET", "VRFY x", "HELP", "NOOP")],
                         [250, 250, 252, 214, 250])
        code, lines = c.cmd("NOOP")
        self.assertEqual(code, 421)
        self.assertTrue(c.closed())
        # mail resets the count
        c, _ = greet(self.srv.port)
        for _ in range(2):
            for _ in range(4):
                self.assertEqual(c.cmd("NOOP")[0], 250)
            c.cmd("MAIL FROM:<a@b.example>")
            c.cmd("RCPT TO:<x@localhost>")
            c.cmd("DATA")
            c.send(MSG + b".\r\n")
            self.assertEqual(c.reply()[0], 250)
        c.close()


class ClientNameTest(unittest.TestCase):
    """The Received header names the client's forward-confirmed reverse
    name, looked up off the loop through dns_server, waited for at DATA
    no longer than client_dns_timeout."""

    HOLD = "relay_domains = hold.test\nroutes = hold.test=[127.0.0.1]:9\nretry_min = 1h\nretry_max = 2h\n"

    def server(self, dns_port, extra=""):
        srv = Server(self.HOLD + extra)
        srv.write_config(open(srv.conf).read().replace(
            "dns_server = 127.0.0.1:1", "dns_server = 127.0.0.1:%d" % dns_port))
        self.addCleanup(srv.cleanup)
        return srv.start()

    def received(self, srv, source):
        """Sends a message from source at once (pipelined) and returns the
        Received header and the seconds DATA waited."""
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW,
                                     source_address=(source, 0))
        c = Client.__new__(Client)
        c.sock, c.buf = s, b""
        self.assertEqual(c.reply()[0], 220)
        t0 = time.monotonic()
        c.send(b"EHLO client.test\r\nMAIL FROM:<a@b.example>\r\n"
               b"RCPT TO:<x@hold.test>\r\nDATA\r\n")
        for want in (250, 250, 250, 354):
            self.assertEqual(c.reply()[0], want)
        waited = time.monotonic() - t0
        c.send(MSG + b".\r\n")
        code, lines = c.reply()
        self.assertEqual(code, 250, lines)
        c.close()
        show = json.loads(srv.mailctl("--json", "show", lines[0].split()[-1]).stdout)
        return show["headers"].split("\n")[0], waited

    def test_confirmed_and_unconfirmed_names(self):
        dns = DnsServer(os.path.join(HERE, "dns", "clients.data"))
        self.addCleanup(dns.stop)
        srv = self.server(dns.port)
        header, _ = self.received(srv, "127.0.0.1")
        self.assertIn("Received: from client.test (client.example [127.0.0.1])", header)
        header, _ = self.received(srv, "127.0.0.7")       # PTR liar.example -> 127.0.0.8
        self.assertIn("Received: from client.test ([127.0.0.7])", header)
        self.assertEqual(srv.stop(), 0)

    def test_wait_is_bounded(self):
        """A DNS server that never answers: DATA goes on after
        client_dns_timeout, without a name."""
        mute = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        mute.bind(("127.0.0.1", 0))
        self.addCleanup(mute.close)
        srv = self.server(mute.getsockname()[1], "client_dns_timeout = 1s\n")
        header, waited = self.received(srv, "127.0.0.1")
        self.assertIn("Received: from client.test ([127.0.0.1])", header)
        self.assertGreater(waited, 0.5)
        self.assertLess(waited, 3 * SLOW)
        self.assertEqual(srv.stop(), 0)


class PolicyTest(unittest.TestCase):
    """A client outside relay_networks cannot relay; an early talker is
    refused."""

    def test_pregreet_refused(self):
        srv = Server("greeting_delay = 1s\nrelay_networks = 10.255.0.0/16\n")
        try:
            srv.start()
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(b"EHLO early.test\r\n")
            s.settimeout(10 * SLOW)
            data = b""
            while True:
                d = s.recv(4096)
                if not d:
                    break
                data += d
            s.close()
            self.assertTrue(data.startswith(b"554 5.5.1"), data)
            # a patient client gets the greeting after the delay
            c = Client(srv.port)
            self.assertEqual(c.reply()[0], 220)
            self.assertEqual(c.cmd("EHLO ok.test")[0], 250)
            c.close()
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()

    def test_relay_denied(self):
        srv = Server("relay_networks = 10.255.0.0/16\n")
        try:
            srv.start()
            c, _ = greet(srv.port)
            c.cmd("MAIL FROM:<a@b.example>")
            code, lines = c.cmd("RCPT TO:<x@elsewhere.example>")
            self.assertEqual(code, 554)
            self.assertTrue(lines[0].startswith("5.7.1"))
            self.assertEqual(c.cmd("RCPT TO:<anyone@localhost>")[0], 250)
            c.close()
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


if __name__ == "__main__":
    unittest.main()
