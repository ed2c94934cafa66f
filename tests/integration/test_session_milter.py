"""The SMTP session asks milters (milters =) through the daemon, with a
scripted milter on Python's standard library (milter_peer.py) that
records every packet: each event and macro reaches it in order (over
STARTTLS, AUTH, RSET, a second EHLO, BDAT, every listener); every verdict
at every stage gets its reply (reject, tempfail, a custom reply, discard,
accept, shutdown; at CONNECT and HELO for the whole session); every
change at the end of data is in the delivered message and envelope
(headers added, inserted, changed and deleted, a new body, a new sender,
recipients added and deleted, every recipient deleted, quarantine); a
slow milter delays only its own session; and `mailserver -t` checks the
keys. The milter decides by what it is sent (see decide()).
"""
import base64
import json
import os
import select
import socket
import struct
import subprocess
import threading
import time
import unittest

from harness import (MAILCTL, MAILSERVER, Client, DnsServer, Server, SLOW, dot_stuff, free_port,
                     test_cert, wait_for)
from milter_peer import MilterPeer, packet, parse_connect, parse_macros, \
    parse_strings, strings
from ops import parse, scrape, value
from test_dovecot import crypt_hash

HERE = os.path.dirname(os.path.abspath(__file__))

REJECT = (550, "5.7.1 Command rejected")
TEMPFAIL = (451, "4.7.1 Service unavailable - try again later")
CONTENT_REJECT = (550, "5.7.1 Message content rejected")
CUSTOM = (553, "5.7.2 custom refusal")
CUSTOM4 = (452, "4.7.2 custom deferral")

# Every macro of the specification, asked for at every stage (SMFIC_OPTNEG
# macro lists: connect, helo, mail, rcpt, data, eom, eoh).
ALL_MACROS = ("j {daemon_name} v _ {daemon_addr} {daemon_port} {client_addr} "
              "{client_name} {client_port} {tls_version} {cipher} {cipher_bits} "
              "{auth_type} {auth_authen} i {mail_addr} {mail_host} {mail_mailer} "
              "{rcpt_addr} {rcpt_host} {rcpt_mailer}")
STEPS_RCPT_REJ = 0x800

VERDICTS = {
    "reject": packet("r"),
    "tempfail": packet("t"),
    "accept": packet("a"),
    "discard": packet("d"),
    "shutdown": packet("4"),
    "custom": packet("y", b"553 5.7.2 custom refusal\0"),
    "custom4": packet("y", b"452 4.7.2 custom deferral\0"),
}

# Local users of the test server (users_file decides who exists).
USERS = ["one", "two", "victim", "added", "bob", "iso", "bdat", "listen", "heldrcpt",
         "chg", "chg2", "mods", "allgone", "allgone2", "control"] + \
    ["%s-rcpt" % v for v in VERDICTS] + ["%s-any" % s for s in "MRTLBE"]


def current(conn):
    """The packets of the connection's transaction so far (from its last
    MAIL)."""
    pk = list(conn.packets)
    starts = [i for i, (cmd, _) in enumerate(pk) if cmd == "M"]
    return pk[starts[-1]:] if starts else pk


def headers_of(pk):
    return [tuple(parse_strings(d)[:2]) for cmd, d in pk if cmd == "L"]


def sender_local(conn):
    m = [d for cmd, d in current(conn) if cmd == "M"]
    return parse_strings(m[0])[0].strip("<>").split("@")[0] if m else ""


def verdict_reply(word):
    return VERDICTS.get(word, packet("c"))


def eom_actions(conn):
    """What the message asks of the end of data: X-Do: words."""
    pk = current(conn)
    out = []
    for word in " ".join(v for n, v in headers_of(pk) if n.lower() == "x-do").split():
        if word == "add":
            out.append(packet("h", strings("X-Added", "added by milter")))
        elif word == "insert":
            out.append(packet("i", struct.pack(">I", 0) + strings("X-Inserted", "on top")))
        elif word == "change":
            out.append(packet("m", struct.pack(">I", 1) + strings("Subject", "changed subject")))
        elif word == "delete":
            out.append(packet("m", struct.pack(">I", 1) + strings("X-Delete-Me", "")))
        elif word == "body":
            out += [packet("b", b"new body, part one\r\n"), packet("b", b"and part two\r\n")]
        elif word == "chgfrom":
            out.append(packet("e", strings("<changed@example.net>")))
        elif word == "chgfromargs":
            out.append(packet("e", strings("<changed@example.net>", "RET=HDRS ENVID=m+2Benv")))
        elif word == "addrcptpar":
            out.append(packet("2", strings("<par@remote.test>",
                                           "NOTIFY=NEVER ORCPT=rfc822;orig+2B1@example.org")))
        elif word == "addrcptbad":
            out.append(packet("2", strings("<bad@remote.test>", "BOGUS=1")))
        elif word == "addrcpt":
            out.append(packet("+", strings("<added@example.org>")))
        elif word == "delrcpt":
            out.append(packet("-", strings("<victim@example.org>")))
        elif word == "delall":
            out += [packet("-", strings(parse_strings(d)[0])) for cmd, d in pk if cmd == "R"]
        elif word == "quarantine":
            out.append(packet("q", strings("held by the test milter")))
    return out


class Decider:
    """The scripted milter's answers, chosen by the session:
      CONNECT  by the client address 127.0.0.66 / .67 / .68 / .69 / .70:
               reject, tempfail, accept, custom, shutdown
      HELO     VERDICT.helo.test
      MAIL     <VERDICT-mail@...>; <slow-mail@...> waits for self.slow
      RCPT     <VERDICT-rcpt@...>
      DATA     the sender <VERDICT-data@...>
      HEADER   X-Verdict: VERDICT
      BODY     a chunk with "VERDICT-BODY VERDICT."
      EOM      X-Eom: VERDICT (slow: waits for self.slow); X-Do: the
               changes (eom_actions)
    VERDICT: a key of VERDICTS (custom: 553, custom4: 452)."""

    CONNECT = {"127.0.0.66": "reject", "127.0.0.67": "tempfail", "127.0.0.68": "accept",
               "127.0.0.69": "custom", "127.0.0.70": "shutdown"}

    def __init__(self):
        self.slow = threading.Event()

    def replies(self):
        return {cmd: (lambda data, conn, cmd=cmd: self.answer(cmd, data, conn))
                for cmd in "CHMRTLNBE"}

    def answer(self, cmd, data, conn):
        if cmd == "C":
            return verdict_reply(self.CONNECT.get(parse_connect(data)[3]))
        if cmd == "H":
            name = parse_strings(data)[0]
            return verdict_reply(name[:-len(".helo.test")] if name.endswith(".helo.test")
                                 else None)
        if cmd == "M":
            local = parse_strings(data)[0].strip("<>").split("@")[0]
            if local == "slow-mail":
                self.slow.wait(60)
            return verdict_reply(local[:-5] if local.endswith("-mail") else None)
        if cmd == "R":
            local = parse_strings(data)[0].strip("<>").split("@")[0]
            return verdict_reply(local[:-5] if local.endswith("-rcpt") else None)
        if cmd == "T":
            local = sender_local(conn)
            return verdict_reply(local[:-5] if local.endswith("-data") else None)
        if cmd == "L":
            name, value = parse_strings(data)[:2]
            return verdict_reply(value if name.lower() == "x-verdict" else None)
        if cmd == "B":
            i = data.find(b"VERDICT-BODY ")
            return verdict_reply(data[i + 13:].split(b".")[0].decode() if i >= 0 else None)
        if cmd == "E":
            word = [v for n, v in headers_of(current(conn)) if n.lower() == "x-eom"]
            if word and word[0] == "slow":
                self.slow.wait(60)
            return eom_actions(conn) + [verdict_reply(word[0] if word else None)]
        return packet("c")


def message(subject, extra=b"", body=b"hello\r\n"):
    return (b"From: sender@example.net\r\nTo: one@example.org\r\nSubject: " +
            subject.encode() + b"\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
            b"Message-ID: <" + subject.encode().replace(b" ", b".") + b"@example.net>\r\n" +
            extra + b"\r\n" + body)


def read_delivered(server, addr, token, timeout=20):
    """The file delivered to addr that holds token (str or bytes), once it
    is there."""
    if isinstance(token, str):
        token = token.encode()

    def find():
        for f in server.maildir_files(addr):
            with open(f, "rb") as fh:
                data = fh.read()
            if token in data:
                return data
        return None
    return wait_for(find, timeout, "delivery of %r to %s" % (token, addr))


def header_names(msg):
    head = msg.split(b"\n\n", 1)[0]
    return [l.split(b":", 1)[0].decode() for l in head.split(b"\n")
            if l and l[:1] not in (b" ", b"\t")]


class MilterSessionBase(unittest.TestCase):
    """A server with the scripted milter; helpers to talk to it."""

    port = None
    server = None
    peer = None

    def client(self, source=None, port=None, helo="client.test", tls=False):
        c = Client(port or self.port, source=source)
        c.local_port = c.sock.getsockname()[1]
        if tls:
            c.starttls()
        self.assertEqual(c.reply()[0], 220)
        if helo is not None:
            code, lines = c.cmd("EHLO " + helo)
            self.assertEqual(code, 250, lines)
        return c

    def conn(self, c):
        """The milter connection of client c's session."""
        return wait_for(lambda: self.peer.conn_from_port(c.local_port), 10,
                        "the milter connection of port %d" % c.local_port)

    def ended(self, c):
        """Closes c and returns its milter connection once that ended."""
        c.close()
        m = self.conn(c)
        wait_for(m.ended.is_set, 20, "the milter connection to end")
        return m

    def data(self, c, msg):
        code, text = c.cmd("DATA")
        self.assertEqual(code, 354, text)
        c.send(dot_stuff(msg) + b".\r\n")
        code, text = c.reply()
        return code, text[0]

    def send(self, sender, rcpts, msg, source=None):
        """A whole transaction; returns (code, text) of the end of data."""
        c = self.client(source=source)
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % sender)[0], 250)
        for r in rcpts:
            self.assertEqual(c.cmd("RCPT TO:<%s>" % r)[0], 250, r)
        got = self.data(c, msg)
        c.close()
        return got

    def delivered(self, addr, token):
        return read_delivered(self.server, addr, token)

    def not_delivered(self, addr, token, qid=None):
        """Nothing with token reached addr: checked once a control message
        sent after it to the same mailbox is delivered."""
        control = "control message %f" % time.monotonic()
        self.assertEqual(self.send("control@example.net", [addr], message(control))[0], 250)
        self.delivered(addr, control)
        for f in self.server.maildir_files(addr):
            with open(f, "rb") as fh:
                self.assertNotIn(token.encode(), fh.read(), f)
        if qid:
            self.assertNotIn(qid, self.server.known_ids())


class SlowDns:
    """A UDP relay on loopback that passes each DNS query to upstream and
    its answer back after delay seconds."""

    def __init__(self, upstream, delay):
        self.upstream, self.delay = upstream, delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                query, client = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.relay, args=(query, client), daemon=True).start()

    def relay(self, query, client):
        if self.stopping.wait(self.delay):
            return
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
            up.settimeout(5)
            try:
                up.sendto(query, ("127.0.0.1", self.upstream))
                self.sock.sendto(up.recv(4096), client)
            except OSError:
                pass

    def stop(self):
        self.stopping.set()
        self.thread.join(10)
        self.sock.close()


def qid_of(text):
    return text.split()[-1]


class SessionMilterTest(MilterSessionBase):
    @classmethod
    def setUpClass(cls):
        cls.decider = Decider()
        cls.peer = MilterPeer(steps=STEPS_RCPT_REJ, replies=cls.decider.replies(),
                              macros={stage: ALL_MACROS for stage in range(7)}).start()
        cls.dns = DnsServer(os.path.join(HERE, "dns", "clients.data"))
        cert, key = test_cert()
        cls.users = os.path.join("/tmp", "ms-smilter-users-%d" % os.getpid())
        # Mail of authenticated users from example.org is signed: the
        # milters see our DKIM-Signature above our Received.
        cls.dkim_key = os.path.join("/tmp", "ms-smilter-dkim-%d.pem" % os.getpid())
        subprocess.run([MAILCTL, "dkim-keygen", "example.org", "sel", "--out", cls.dkim_key],
                       capture_output=True, check=True, timeout=60)
        with open(cls.users, "w") as f:
            f.write("sam@example.org:%s\n" % crypt_hash("sam pw"))
            f.write("".join("%s@example.org:\n" % u for u in USERS))
        cls.port = free_port()
        cls.sub_port = free_port()
        cls.smtps_port = free_port()
        cls.mport = free_port()
        cls.server = Server(
            "local_domains = example.org\n"
            "tls_cert_file = %s\ntls_key_file = %s\n" % (cert, key) +
            "users_file = %s\n" % cls.users +
            "auth_plaintext_networks = 127.0.0.0/8\nauth_any_sender = sam@example.org\n"
            "session_workers = 1\n"
            "dkim_sign = example.org sel %s\n" % cls.dkim_key +
            "routes = remote.test=[127.0.0.1]:9\nretry_min = 1h\nretry_max = 1h\n"
            "metrics_listen = 127.0.0.1:%d\n" % cls.mport +
            "milters = %s command_timeout=%ds eom_timeout=%ds\n" % (
                cls.peer.endpoint, 30 * SLOW, 30 * SLOW),
            port=cls.port,
            listen="127.0.0.1:%d smtp;127.0.0.1:%d submission;127.0.0.1:%d smtps" % (
                cls.port, cls.sub_port, cls.smtps_port))
        with open(cls.server.conf) as f:
            cls.server.write_config(f.read().replace(
                "dns_server = 127.0.0.1:1", "dns_server = 127.0.0.1:%d" % cls.dns.port))
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.decider.slow.set()
        cls.server.cleanup()
        cls.peer.stop()
        cls.dns.stop()
        os.unlink(cls.users)
        os.unlink(cls.dkim_key)

    # ---- events and macros ----

    def test_events_and_macros_in_order(self):
        c = self.client(helo="ev1.test")
        self.assertEqual(c.cmd("STARTTLS")[0], 220)
        c.starttls()
        self.assertEqual(c.cmd("EHLO ev2.test")[0], 250)
        login = base64.b64encode(b"\0sam@example.org\0sam pw").decode()
        self.assertEqual(c.cmd("AUTH PLAIN " + login)[0], 235)
        self.assertEqual(c.cmd("MAIL FROM:<sam@example.org> SIZE=300 RET=HDRS "
                               "ENVID=ev+2B1 AUTH=sam@example.org")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<one@example.org> NOTIFY=SUCCESS,FAILURE "
                               "ORCPT=rfc822;one+2Bx@example.org")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<nobody@example.org>")[0], 550)
        self.assertEqual(c.cmd("RCPT TO:<far@remote.test>")[0], 250)
        msg = (b"From: sam@example.org\r\nTo: one@example.org\r\nSubject: events\r\n"
               b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <ev@example.org>\r\n"
               b"X-Folded: first\r\n\tsecond\r\n\r\nline one\r\n.dot line\r\nlast line\r\n")
        code, text = self.data(c, msg)
        self.assertEqual(code, 250, text)
        qid = qid_of(text)
        self.assertEqual(c.cmd("MAIL FROM:<sam@example.org>")[0], 250)
        self.assertEqual(c.cmd("RSET")[0], 250)
        self.assertEqual(c.cmd("MAIL FROM:<sam@example.org>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<two@example.org>")[0], 250)
        self.assertEqual(c.cmd("EHLO ev3.test")[0], 250)
        self.assertEqual(c.cmd("QUIT")[0], 221)
        m = self.ended(c)

        events = [(cmd, d) for cmd, d in m.packets if cmd not in "OD"]
        cmds = [cmd for cmd, _ in events]
        nheaders = cmds.count("L")
        nbody = cmds.count("B")
        self.assertEqual(cmds, ["C", "H", "H", "M", "R", "R", "R", "T"] + ["L"] * nheaders +
                         ["N"] + ["B"] * nbody + ["E", "M", "A", "M", "R", "A", "H", "Q"], cmds)
        self.assertEqual([parse_strings(d)[0] for cmd, d in events if cmd == "H"],
                         ["ev1.test", "ev2.test", "ev3.test"])
        host, family, port, addr = parse_connect(events[0][1])
        self.assertEqual((family, port, addr), ("4", c.local_port, "127.0.0.1"))
        # The ESMTP parameters as a client writes them (xtext where the
        # RFCs say so).
        self.assertEqual(parse_strings([d for cmd, d in events if cmd == "M"][0]),
                         ["<sam@example.org>", "SIZE=300", "RET=HDRS", "ENVID=ev+2B1",
                          "AUTH=sam@example.org"])
        self.assertEqual(parse_strings([d for cmd, d in events if cmd == "R"][0]),
                         ["<one@example.org>", "NOTIFY=SUCCESS,FAILURE",
                          "ORCPT=rfc822;one+2Bx@example.org"])
        # The refused recipient too (the milter asked for them), in order.
        self.assertEqual([parse_strings(d)[0] for cmd, d in events if cmd == "R"],
                         ["<one@example.org>", "<nobody@example.org>", "<far@remote.test>",
                          "<two@example.org>"])
        # The message as queued: our DKIM-Signature, our Received, then
        # the client's header section, then the body (dot-stuffing undone).
        hdrs = headers_of(events)
        self.assertEqual(hdrs[0][0], "DKIM-Signature")
        self.assertIn("d=example.org; s=sel;", hdrs[0][1])
        self.assertEqual(hdrs[1][0], "Received")
        self.assertIn(qid, hdrs[1][1])
        self.assertEqual(hdrs[2:], [("From", "sam@example.org"), ("To", "one@example.org"),
                                    ("Subject", "events"),
                                    ("Date", "Tue, 01 Dec 2026 10:00:00 +0000"),
                                    ("Message-ID", "<ev@example.org>"),
                                    ("X-Folded", "first\n\tsecond")])
        self.assertEqual(b"".join(d for cmd, d in events if cmd == "B"),
                         b"line one\r\n.dot line\r\nlast line\r\n")

        # The macros sent before each event, by the event they precede.
        before = []
        pending = {}
        for cmd, d in m.packets:
            if cmd == "D":
                pending.update(parse_macros(d)[1])
            elif cmd != "O":
                before.append((cmd, pending))
                pending = {}
        at = {}
        for cmd, mac in before:
            at.setdefault(cmd, []).append(mac)
        conn = at["C"][0]
        self.assertEqual((conn["j"], conn["{daemon_name}"], conn["{daemon_addr}"],
                          conn["{daemon_port}"], conn["{client_addr}"], conn["{client_port}"]),
                         ("mx.test", "mailserver", "127.0.0.1", str(self.port), "127.0.0.1",
                          str(c.local_port)))
        self.assertTrue(conn["v"], conn)
        self.assertIn("[127.0.0.1]", conn["_"])
        self.assertNotIn("{tls_version}", at["H"][0])
        mail = at["M"][0]
        self.assertEqual((mail["{auth_type}"], mail["{auth_authen}"], mail["{mail_addr}"]),
                         ("PLAIN", "sam@example.org", "sam@example.org"))
        self.assertTrue(mail["{mail_host}"] and mail["{mail_mailer}"], mail)
        r_one, r_nobody, r_far = at["R"][:3]
        self.assertEqual((r_one["{rcpt_addr}"], r_one["{rcpt_mailer}"]),
                         ("one@example.org", "local"))
        self.assertEqual(r_nobody["{rcpt_addr}"], "nobody@example.org")
        self.assertEqual((r_far["{rcpt_addr}"], r_far["{rcpt_mailer}"]),
                         ("far@remote.test", "smtp"))
        self.assertTrue(r_far["{rcpt_host}"], r_far)
        # The queue id from DATA on.
        self.assertEqual(at["T"][0]["i"], qid)
        self.assertEqual(at["E"][0]["i"], qid)
        tls = at["H"][1]
        self.assertIn("1.", tls["{tls_version}"])
        self.assertTrue(tls["{cipher}"], tls)
        self.assertGreaterEqual(int(tls["{cipher_bits}"]), 128)

    def test_bdat_and_every_listener(self):
        c = self.client(helo="bdat.test")
        self.assertEqual(c.cmd("MAIL FROM:<sender@example.net>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<bdat@example.org>")[0], 250)
        msg = message("bdat chunks", body=b"in two chunks\r\n")
        c.send(b"BDAT %d\r\n" % 40 + msg[:40])
        self.assertEqual(c.reply()[0], 250)
        c.send(b"BDAT %d LAST\r\n" % (len(msg) - 40) + msg[40:])
        code, text = c.reply()
        self.assertEqual(code, 250, text)
        m = self.ended(c)
        cmds = [cmd for cmd, _ in m.packets if cmd not in "OD"]
        self.assertEqual(cmds[:5], ["C", "H", "M", "R", "T"])
        self.assertEqual(b"".join(d for cmd, d in m.packets if cmd == "B"), b"in two chunks\r\n")
        self.assertEqual(dict(headers_of(m.packets))["Subject"], "bdat chunks")
        self.delivered("bdat@example.org", "bdat chunks")

        # A refusal at DATA answers the BDAT chunk, which is still read.
        c = self.client(helo="bdat2.test")
        self.assertEqual(c.cmd("MAIL FROM:<reject-data@example.net>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<bdat@example.org>")[0], 250)
        c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
        self.assertEqual(c.reply(), (REJECT[0], [REJECT[1]]))
        self.assertEqual(c.cmd("NOOP")[0], 250)
        c.close()

        # Submission and smtps sessions go to the milters too.
        for port, tls in ((self.sub_port, False), (self.smtps_port, True)):
            c = self.client(port=port, tls=tls, helo="listener.test")
            m = self.ended(c)
            mac = parse_macros([d for cmd, d in m.packets if cmd == "D"][0])[1]
            self.assertEqual(mac["{daemon_port}"], str(port))
            self.assertEqual([cmd for cmd, _ in m.packets if cmd not in "OD"], ["C", "H", "Q"])

    # ---- verdicts ----

    def session_refused(self, c, want):
        """After a CONNECT/HELO refusal: every command but QUIT, RSET and
        NOOP gets it."""
        for cmd in ("EHLO again.test", "HELO again.test", "MAIL FROM:<a@example.net>",
                    "RCPT TO:<one@example.org>", "DATA"):
            self.assertEqual(c.cmd(cmd), (want[0], [want[1]]), cmd)
        self.assertEqual(c.cmd("NOOP")[0], 250)
        self.assertEqual(c.cmd("RSET")[0], 250)
        self.assertEqual(c.cmd("QUIT")[0], 221)

    def test_verdicts_at_connect_and_helo(self):
        source = {v: k for k, v in Decider.CONNECT.items()}
        for stage in ("connect", "helo"):
            for word, want in (("reject", REJECT), ("tempfail", TEMPFAIL), ("custom", CUSTOM)):
                with self.subTest(stage=stage, verdict=word):
                    c = self.client(source=source[word] if stage == "connect" else None,
                                    helo=None)
                    helo = "c.test" if stage == "connect" else "%s.helo.test" % word
                    self.assertEqual(c.cmd("EHLO " + helo), (want[0], [want[1]]))
                    self.session_refused(c, want)
                    # The milter is told the session is over (QUIT).
                    m = self.ended(c)
                    cmds = [cmd for cmd, _ in m.packets if cmd not in "OD"]
                    self.assertEqual(cmds, ["C", "Q"] if stage == "connect" else
                                     ["C", "H", "Q"])
            with self.subTest(stage=stage, verdict="shutdown"):
                c = self.client(source=source["shutdown"] if stage == "connect" else None,
                                helo=None)
                helo = "c.test" if stage == "connect" else "shutdown.helo.test"
                self.assertEqual(c.cmd("EHLO " + helo)[0], 421)
                self.assertTrue(c.closed())
                c.close()
            # Accept: mail flows; the milter hears nothing more of the session.
            with self.subTest(stage=stage, verdict="accept"):
                c = self.client(source=source["accept"] if stage == "connect" else None,
                                helo="c.test" if stage == "connect" else "accept.helo.test")
                self.assertEqual(c.cmd("MAIL FROM:<sender@example.net>")[0], 250)
                self.assertEqual(c.cmd("RCPT TO:<accept-rcpt@example.org>")[0], 250)
                self.assertEqual(self.data(c, message("accepted at %s" % stage))[0], 250)
                m = self.ended(c)
                cmds = [cmd for cmd, _ in m.packets if cmd not in "OD"]
                self.assertEqual(cmds, ["C", "Q"] if stage == "connect" else
                                 ["C", "H", "Q"])
                self.delivered("accept-rcpt@example.org", "accepted at %s" % stage)

    def test_verdicts_at_mail(self):
        # A MAIL the session refuses never reaches the milter.
        c = self.client(helo="badmail.test")
        self.assertEqual(c.cmd("MAIL FROM:<no address")[0], 501)
        self.assertEqual(c.cmd("MAIL FROM:<sender@example.net> BOGUS=1")[0], 555)
        m = self.ended(c)
        self.assertEqual([cmd for cmd, _ in m.packets if cmd not in "OD"], ["C", "H", "Q"])
        for word, want in (("reject", REJECT), ("tempfail", TEMPFAIL), ("custom", CUSTOM),
                           ("custom4", CUSTOM4)):
            with self.subTest(verdict=word):
                c = self.client()
                self.assertEqual(c.cmd("MAIL FROM:<%s-mail@example.net>" % word),
                                 (want[0], [want[1]]))
                # The transaction is over: RCPT needs a new MAIL.
                self.assertEqual(c.cmd("RCPT TO:<one@example.org>")[0], 503)
                self.assertEqual(c.cmd("MAIL FROM:<sender@example.net>")[0], 250)
                c.close()
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<shutdown-mail@example.net>")[0], 421)
        self.assertTrue(c.closed())
        c.close()

    def test_auth_param_of_an_unauthenticated_client_is_dropped(self):
        # RFC 4954 5: as if AUTH=<> was given; no milter hears the claim.
        c = self.client(helo="noauth.test")
        self.assertEqual(c.cmd("MAIL FROM:<sender@example.net> "
                               "AUTH=sam@example.org")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<one@example.org>")[0], 250)
        self.assertEqual(c.cmd("QUIT")[0], 221)
        m = self.ended(c)
        self.assertEqual([parse_strings(d) for cmd, d in m.packets if cmd == "M"],
                         [["<sender@example.net>"]])

    def test_verdicts_at_rcpt(self):
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<sender@example.net>")[0], 250)
        for word, want in (("reject", REJECT), ("tempfail", TEMPFAIL), ("custom", CUSTOM),
                           ("custom4", CUSTOM4)):
            self.assertEqual(c.cmd("RCPT TO:<%s-rcpt@example.org>" % word),
                             (want[0], [want[1]]), word)
        # That recipient only: the others are taken and delivered.
        self.assertEqual(c.cmd("RCPT TO:<one@example.org>")[0], 250)
        self.assertEqual(self.data(c, message("rcpt verdicts"))[0], 250)
        m = self.ended(c)
        self.delivered("one@example.org", "rcpt verdicts")
        for word in ("reject", "tempfail", "custom", "custom4"):
            self.assertEqual(self.server.maildir_files("%s-rcpt@example.org" % word), [])
        self.assertIn("E", [cmd for cmd, _ in m.packets])
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<sender@example.net>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<shutdown-rcpt@example.org>")[0], 421)
        self.assertTrue(c.closed())
        c.close()

    def test_verdicts_at_data(self):
        for word, want in (("reject", REJECT), ("tempfail", TEMPFAIL), ("custom", CUSTOM)):
            with self.subTest(verdict=word):
                c = self.client()
                self.assertEqual(c.cmd("MAIL FROM:<%s-data@example.net>" % word)[0], 250)
                self.assertEqual(c.cmd("RCPT TO:<one@example.org>")[0], 250)
                self.assertEqual(c.cmd("DATA"), (want[0], [want[1]]))
                self.assertEqual(c.cmd("RCPT TO:<one@example.org>")[0], 503)
                c.close()
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<shutdown-data@example.net>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<one@example.org>")[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 421)
        self.assertTrue(c.closed())
        c.close()

    def test_verdicts_at_end_of_data(self):
        """In a header, a body chunk or at the end: the answer to the end
        of data."""
        cases = [("X-Eom", "E"), ("X-Verdict", "L"), ("body", "B")]
        for header, stage in cases:
            for word, want in (("reject", (550, "5.7.1")), ("tempfail", TEMPFAIL),
                               ("custom", CUSTOM)):
                with self.subTest(stage=stage, verdict=word):
                    token = "eom %s %s" % (stage, word)
                    if header == "body":
                        msg = message(token, body=b"text\r\nVERDICT-BODY %s.\r\n" % word.encode())
                    else:
                        msg = message(token, extra=b"%s: %s\r\n" % (header.encode(),
                                                                     word.encode()))
                    c = self.client()
                    self.assertEqual(c.cmd("MAIL FROM:<sender@example.net>")[0], 250)
                    self.assertEqual(c.cmd("RCPT TO:<%s-any@example.org>" % stage)[0], 250)
                    got = self.data(c, msg)
                    self.assertEqual((got[0], got[1][:len(want[1])]), want)
                    # A new transaction works.
                    self.assertEqual(c.cmd("MAIL FROM:<sender@example.net>")[0], 250)
                    c.close()
                    self.assertEqual(self.server.maildir_files("%s-any@example.org" % stage), [])
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<sender@example.net>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<one@example.org>")[0], 250)
        self.assertEqual(self.data(c, message("shut", extra=b"X-Eom: shutdown\r\n"))[0], 421)
        self.assertTrue(c.closed())
        c.close()

    def test_reject_at_end_of_data_says_content(self):
        def policy_rejections():
            return value(parse(scrape(self.mport)), "mailserver_rejections_total",
                         reason="policy")
        before = policy_rejections()
        for extra, body in ((b"X-Eom: reject\r\n", b"x\r\n"),
                            (b"X-Verdict: reject\r\n", b"x\r\n"),
                            (b"", b"VERDICT-BODY reject.\r\n")):
            code, text = self.send("sender@example.net", ["one@example.org"],
                                   message("content", extra=extra, body=body))
            self.assertEqual((code, text), CONTENT_REJECT)
        # counted as a milter's refusal, whatever its code
        self.assertEqual(policy_rejections(), before + 3)

    def test_tls_version_named_as_postfix_does(self):
        c = self.client(helo="tlsname.test")
        self.assertEqual(c.cmd("STARTTLS")[0], 220)
        c.starttls()
        self.assertEqual(c.cmd("EHLO tlsname2.test")[0], 250)
        m = self.ended(c)
        macros = {}
        for cmd, d in m.packets:
            if cmd == "D":
                macros.update(parse_macros(d)[1])
        # Postfix and Sendmail: "TLSv1.3", as the policy services get it.
        self.assertTrue(macros["{tls_version}"].startswith("TLSv1."), macros)

    def test_client_name_once_known(self):
        """The client's verified name reaches the milter once the session
        knows it, also when the first EHLO came before its lookup ended."""
        dns = SlowDns(self.dns.port, 1.0)
        srv = Server("local_domains = example.org\nmilters = %s\n" % self.peer.endpoint)
        try:
            with open(srv.conf) as f:
                srv.write_config(f.read().replace("dns_server = 127.0.0.1:1",
                                                  "dns_server = 127.0.0.1:%d" % dns.port))
            srv.start()
            c = self.client(port=srv.port, helo="early.test")
            self.assertEqual(c.cmd("MAIL FROM:<a@example.net>")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<one@example.org>")[0], 250)
            code, text = self.data(c, message("named late"))
            self.assertEqual(code, 250, text)
            m = self.ended(c)
            # The session waited for the name at DATA: its Received has it.
            received = dict(headers_of(m.packets))["Received"]
            self.assertIn("(client.example [127.0.0.1])", received)
            macros = {}
            for cmd, d in m.packets:
                if cmd == "D":
                    macros.update(parse_macros(d)[1])
                if cmd == "T":
                    break
            self.assertEqual(macros["{client_name}"], "client.example", macros)
        finally:
            srv.cleanup()
            dns.stop()

    def test_discard_at_every_stage(self):
        # At RCPT too the whole message is discarded (one@ is told 250).
        one = ["one@example.org"]
        cases = [("M", "discard-mail@example.net", one, b""),
                 ("R", "sender@example.net", one + ["discard-rcpt@example.org"], b""),
                 ("T", "discard-data@example.net", one, b""),
                 ("L", "sender@example.net", one, b"X-Verdict: discard\r\n"),
                 ("B", "sender@example.net", one, b""),
                 ("E", "sender@example.net", one, b"X-Eom: discard\r\n")]
        for stage, sender, rcpts, extra in cases:
            with self.subTest(stage=stage):
                token = "discarded at %s" % stage
                body = b"VERDICT-BODY discard.\r\n" if stage == "B" else b"hello\r\n"
                code, text = self.send(sender, rcpts, message(token, extra=extra, body=body))
                self.assertEqual(code, 250, text)
                self.not_delivered("one@example.org", token, qid_of(text))

    def test_accept_stops_the_events_of_the_message(self):
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<accept-mail@example.net>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<accept-rcpt@example.org>")[0], 250)
        self.assertEqual(self.data(c, message("accepted at mail"))[0], 250)
        m = self.conn(c)
        cmds = [cmd for cmd, _ in current(m) if cmd not in "D"]
        self.assertEqual(cmds, ["M"])
        # The next message is told again.
        self.assertEqual(c.cmd("MAIL FROM:<sender@example.net>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<two@example.org>")[0], 250)
        self.assertEqual(self.data(c, message("after the accept"))[0], 250)
        m = self.ended(c)
        cmds = [cmd for cmd, _ in current(m) if cmd not in "DLB"]
        self.assertEqual(cmds, ["M", "R", "T", "N", "E", "Q"])
        self.delivered("accept-rcpt@example.org", "accepted at mail")
        self.delivered("two@example.org", "after the accept")

    def test_large_message_streams_to_the_milter(self):
        # About 3 MiB: many records staged in the queue while it arrives,
        # read back for the milter; a refusal in the middle stops it.
        line = b"%07d a line of a large message, to the milter in chunks\r\n"
        body = b"".join(line % i for i in range(50000))
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<sender@example.net>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<one@example.org>")[0], 250)
        code, text = self.data(c, message("large to milter", body=body))
        self.assertEqual(code, 250, text)
        m = self.conn(c)
        pk = current(m)
        self.assertEqual(b"".join(d for cmd, d in pk if cmd == "B"), body)
        self.assertEqual([cmd for cmd, _ in pk].count("E"), 1)
        data = self.delivered("one@example.org", "Message-ID: <large.to.milter@example.net>")
        self.assertEqual(data.split(b"\n\n", 1)[1], body.replace(b"\r\n", b"\n"))
        # The token lies inside body chunk 20 (chunks of 65535 bytes).
        pos = (65535 * 20 + 100) // len(line % 0) * len(line % 0)
        refused = body[:pos] + b"VERDICT-BODY reject.\r\n" + body[pos:]
        self.assertEqual(c.cmd("MAIL FROM:<sender@example.net>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<one@example.org>")[0], 250)
        code, text = self.data(c, message("large refused", body=refused))
        self.assertEqual((code, text), CONTENT_REJECT)
        cmds = [cmd for cmd, _ in current(m)]
        self.assertEqual(cmds.count("B"), 21, cmds)
        self.assertNotIn("E", cmds)
        c.close()
        self.not_delivered("one@example.org", "large.refused")

    # ---- changes at the end of data ----

    def test_header_and_body_changes(self):
        msg = message("mods one", extra=b"X-Delete-Me: gone\r\nX-Do: add insert change "
                      b"delete body\r\n", body=b"the old body\r\n")
        code, text = self.send("sender@example.net", ["mods@example.org"], msg)
        self.assertEqual(code, 250, text)
        data = self.delivered("mods@example.org", "Message-ID: <mods.one@example.net>")
        names = header_names(data)
        self.assertEqual(names[:4], ["Return-Path", "Delivered-To", "X-Inserted", "Received"],
                         names)
        self.assertEqual(names[-1], "X-Added")
        self.assertNotIn("X-Delete-Me", names)
        self.assertIn(b"\nX-Inserted: on top\n", data)
        self.assertIn(b"\nX-Added: added by milter\n", data)
        self.assertIn(b"\nSubject: changed subject\n", data)
        self.assertNotIn(b"Subject: mods one", data)
        self.assertEqual(data.split(b"\n\n", 1)[1], b"new body, part one\nand part two\n")

    def test_envelope_changes(self):
        msg = message("envelope", extra=b"X-Do: chgfrom addrcpt delrcpt\r\n")
        code, text = self.send("sender@example.net", ["chg@example.org", "victim@example.org"],
                               msg)
        self.assertEqual(code, 250, text)
        for addr in ("chg@example.org", "added@example.org"):
            data = self.delivered(addr, "Subject: envelope")
            self.assertTrue(data.startswith(b"Return-Path: <changed@example.net>\n"), data[:80])
        self.not_delivered("victim@example.org", "Subject: envelope")
        # The changes are in the message's trace (mailctl trace).
        qid = qid_of(text)

        def milter_events():
            r = self.server.mailctl("--json", "trace", qid, check=False)
            ev = [] if r.returncode else [e["text"] for e in json.loads(r.stdout)["events"]
                                          if e["kind"] == "milter"]
            return ev if len(ev) == 3 else None
        self.assertEqual(sorted(wait_for(milter_events, 10, "the milter's changes traced")),
                         ["recipient <added@example.org> added",
                          "recipient <victim@example.org> deleted",
                          "sender <sender@example.net> -> <changed@example.net>"])

    def test_envelope_changes_with_parameters(self):
        # The DSN parameters a milter gives with a new sender or recipient
        # are in the queued envelope; unknown ones are left out (logged),
        # the recipient still added.
        msg = message("envelope params", extra=b"X-Do: chgfromargs addrcptpar addrcptbad\r\n")
        code, text = self.send("sender@example.net", ["chg2@example.org"], msg)
        self.assertEqual(code, 250, text)
        self.delivered("chg2@example.org", "Subject: envelope params")
        shown = json.loads(self.server.mailctl("--json", "show", qid_of(text)).stdout)
        self.assertEqual((shown["sender"], shown["envid"], shown["ret"]),
                         ("changed@example.net", "m+env", "hdrs"))
        rcpts = {r["address"]: r for r in shown["recipients"]}
        self.assertEqual((rcpts["par@remote.test"]["orcpt"],
                          rcpts["par@remote.test"]["notify"]),
                         ("rfc822;orig+1@example.org", "never"))
        self.assertEqual((rcpts["bad@remote.test"]["orcpt"],
                          rcpts["bad@remote.test"]["notify"]), (None, ""))
        self.server.wait_log("recipient parameters \"BOGUS=1\" ignored")

    def test_every_recipient_deleted_drops_the_message(self):
        msg = message("all gone", extra=b"X-Do: delall\r\n")
        code, text = self.send("sender@example.net", ["allgone@example.org",
                                                      "allgone2@example.org"], msg)
        self.assertEqual(code, 250, text)
        self.not_delivered("allgone@example.org", "Subject: all gone", qid_of(text))
        self.not_delivered("allgone2@example.org", "Subject: all gone")

    def test_quarantine_holds_until_release(self):
        msg = message("quarantined", extra=b"X-Do: quarantine add\r\n")
        code, text = self.send("sender@example.net", ["heldrcpt@example.org"], msg)
        self.assertEqual(code, 250, text)
        qid = qid_of(text)
        entry = [e for e in self.server.queue_json()["messages"] if e["id"] == qid]
        self.assertEqual(len(entry), 1, self.server.queue_json())
        self.assertTrue(entry[0]["held"], entry)
        out = self.server.mailctl("cat", qid).stdout
        self.assertIn("X-Added: added by milter\n", out)
        self.assertEqual(self.server.maildir_files("heldrcpt@example.org"), [])
        self.assertEqual(self.server.mailctl("release", qid).stdout.strip(),
                         "%s: released" % qid)
        data = self.delivered("heldrcpt@example.org", "Subject: quarantined")
        self.assertIn(b"\nX-Added: added by milter\n", data)

    # ---- a slow milter ----

    def test_slow_milter_delays_only_its_session(self):
        # session_workers = 1: every session shares one event loop; and
        # more sessions wait on the milter at once (40) than the filter
        # pool has threads at the start (32): it grows.
        self.decider.slow.clear()
        slow = []
        try:
            for i in range(40):
                c = self.client(helo="slow%d.test" % i)
                c.send("MAIL FROM:<slow-mail@example.net>\r\n")
                slow.append(c)
            for c in slow:
                m = self.conn(c)
                wait_for(lambda m=m: "M" in [cmd for cmd, _ in m.packets], 10 * SLOW,
                         "the slow MAIL of port %d" % c.local_port)
            code, text = self.send("sender@example.net", ["iso@example.org"],
                                   message("meanwhile"))
            self.assertEqual(code, 250, text)
            self.assertEqual(select.select([c.sock for c in slow], [], [], 0)[0], [])
        finally:
            self.decider.slow.set()
        for c in slow[1:]:
            self.assertEqual(c.reply()[0], 250)
            c.close()
        c = slow[0]
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<iso@example.org>")[0], 250)
        self.assertEqual(self.data(c, message("the slow one"))[0], 250)
        c.close()
        self.delivered("iso@example.org", "meanwhile")
        self.delivered("iso@example.org", "the slow one")

    def test_slow_end_of_body_delays_only_its_session(self):
        # The end of body goes out from the one event loop too: while the
        # milter sits on three of them, another session's message passes.
        self.decider.slow.clear()
        slow = []
        try:
            for i in range(3):
                c = self.client(helo="slow-eom%d.test" % i)
                self.assertEqual(c.cmd("MAIL FROM:<sender@example.net>")[0], 250)
                self.assertEqual(c.cmd("RCPT TO:<iso@example.org>")[0], 250)
                self.assertEqual(c.cmd("DATA")[0], 354)
                c.send(dot_stuff(message("slow eom %d" % i, extra=b"X-Eom: slow\r\n")) +
                       b".\r\n")
                slow.append(c)
            for c in slow:
                m = self.conn(c)
                wait_for(lambda m=m: "E" in [cmd for cmd, _ in m.packets], 10 * SLOW,
                         "the slow end of body of port %d" % c.local_port)
            code, text = self.send("sender@example.net", ["iso@example.org"],
                                   message("while the ends wait"))
            self.assertEqual(code, 250, text)
            self.assertEqual(select.select([c.sock for c in slow], [], [], 0)[0], [])
        finally:
            self.decider.slow.set()
        for i, c in enumerate(slow):
            self.assertEqual(c.reply()[0], 250)
            c.close()
            self.delivered("iso@example.org", "Message-ID: <slow.eom.%d@example.net>" % i)
        self.delivered("iso@example.org", "while the ends wait")


class MilterConfigTest(unittest.TestCase):
    def check(self, text):
        srv = Server()
        try:
            with open(srv.conf) as f:
                base = len(f.read().splitlines())
            with open(srv.conf, "a") as f:
                f.write(text)
            r = subprocess.run([MAILSERVER, "-t", "-c", srv.conf], capture_output=True,
                               text=True, timeout=30 * SLOW)
            return r, srv.conf, base
        finally:
            srv.cleanup()

    def test_good_values(self):
        r, _, _ = self.check(
            "milters = unix:/tmp/ms-none.sock default_action=accept connect_timeout=5s "
            "command_timeout=10s eom_timeout=2m, inet:127.0.0.1:8891\n"
            "milters = inet:[::1]:8892 default_action=reject\n"
            "milter_default_action = accept\nmilter_connect_timeout = 10s\n"
            "milter_command_timeout = 1m\nmilter_eom_timeout = 10m\n")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_bad_values_name_the_line(self):
        for line in ("milters = bogus:/x", "milters = inet:127.0.0.1",
                     "milters = unix:/x default_action=maybe",
                     "milters = unix:/x command_timeout=soon",
                     "milters = unix:/x eom_timeout=0s",
                     "milters = unix:/x colour=blue",
                     "milters = unix:/x, inet:nowhere",
                     "milter_default_action = sometimes",
                     "milter_command_timeout = never"):
            with self.subTest(line=line):
                r, conf, base = self.check("local_domains = example.org\n" + line + "\n")
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertTrue(r.stderr.startswith("%s:%d: " % (conf, base + 2)), r.stderr)



class MilterStopTest(unittest.TestCase):
    """A session still in DATA when shutdown_timeout ends is freed with the
    workers, after the filter pool stopped: its milter connection is
    closed there, not handed to the pool that is gone (a sanitized build
    aborts otherwise), and the daemon exits cleanly."""

    def test_stop_with_a_session_mid_message(self):
        peer = MilterPeer().start()
        srv = Server("local_domains = example.org\nmilters = %s\n" % peer.endpoint)
        srv.write_config(open(srv.conf).read().replace("shutdown_timeout = 10s",
                                                       "shutdown_timeout = 1s"))
        try:
            srv.start()
            c = Client(srv.port)
            self.assertEqual(c.reply()[0], 220)
            self.assertEqual(c.cmd("EHLO client.test")[0], 250)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.net>")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<postmaster@example.org>")[0], 250)
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send(b"Subject: never ends\r\n\r\npart of it\r\n")
            wait_for(lambda: peer.conns, 10, "the milter connection")
            self.assertEqual(srv.stop(), 0)
            c.close()
        finally:
            srv.cleanup()
            peer.stop()

if __name__ == "__main__":
    unittest.main()
