"""Scriptable SMTP peers for integration tests: the remote MX hosts and
smarthosts that mailserver's outbound client (relay/relay.c) talks to.

A Peer listens on a loopback address and port (several peers can share a
port on 127.0.0.2, 127.0.0.3, ... so that DNS answers can point at them),
follows a behaviour script, and records every connection, command line and
message it receives. One thread per connection; every wait is bounded.

    from peers import Peer
    with Peer("127.0.0.2", 2525) as p:          # accepts everything
        ...run mailserver with routes = x.test=[127.0.0.2]:2525 ...
        msg = p.wait_messages(1)[0]
        assert msg.rcpts == ["a@x.test"] and b"Subject:" in msg.data

Behaviours (keyword arguments of Peer, combinable):
  greeting="554 5.7.1 go away"  reply to the connection (default 220)
  hang="greeting"|"data"|"final"  say nothing: after accept, after the
                                354 (no reply to the data), or after "."
  rcpt={"defer": "451 4.3.0 later", "bounce": "550 5.1.1 unknown"}
                                RCPT replies by prefix of the local part
                                (default: 250); or a callable addr -> reply
  mail_reply="452 4.3.1 full"   reply to MAIL FROM
  data_reply="554 5.5.1 no"     reply to DATA (default 354)
  final_reply="554 5.7.1 spam"  reply to the end of data (default 250)
  drop="data"|"rcpt"|"mail"|"final"
                                close the connection at that point ("data":
                                mid-DATA; "final": after ".", unanswered)
  starttls=(cert, key)          offer STARTTLS with this PEM pair (ssl)
  refuse_starttls=True          offer STARTTLS but answer 454
  tls_max="TLSv1_1"             speak no TLS version above this one (an
                                old server: TLS 1.0 and 1.1 only)
  ehlo=["PIPELINING", ...]      EHLO keywords (default PIPELINING,
                                SIZE 10240000, 8BITMIME, DSN, SMTPUTF8,
                                ENHANCEDSTATUSCODES)
  no_ehlo=True                  502 to EHLO (clients must fall back to HELO)

Recorded: p.connections (accepted count), p.transcript (list of
(conn_no, line) for every command line, "<TLS>" after a handshake),
p.messages (list of Message: mail_from, mail_params, rcpts, rcpt_params,
data (bytes after 354, dot-stuffing undone, CRLF kept), tls, helo, sni
(the server name the client sent in its TLS handshake, or None)).

Only loopback is used. Run this file to self-test it.
"""
import os
import re
import socket
import socketserver
import ssl
import threading
import time
import warnings

from harness import SLOW

LINE_MAX = 4096 + 2
DATA_MAX = 64 * 1024 * 1024
IO_TIMEOUT = 30.0           # one read or write
SESSION_LIMIT = 600.0       # one connection, all in all

DEFAULT_EHLO = ["PIPELINING", "SIZE 10240000", "8BITMIME", "DSN", "SMTPUTF8",
                "ENHANCEDSTATUSCODES"]


class Message:
    def __init__(self, helo, mail_from, mail_params, tls):
        self.helo = helo
        self.mail_from = mail_from
        self.mail_params = mail_params
        self.rcpts = []
        self.rcpt_params = []
        self.data = b""
        self.raw = b""        # as received, dot-stuffed, with the "."
        self.tls = tls
        self.sni = None

    def __repr__(self):
        return "Message(from=%r, rcpts=%r, %d bytes, tls=%s)" % (
            self.mail_from, self.rcpts, len(self.data), self.tls)


class _Closed(Exception):
    pass


def _split_path(arg):
    """'<a@b> K=V K2' -> ('a@b', ['K=V', 'K2'])."""
    m = re.match(r"\s*<([^>]*)>\s*(.*)$", arg)
    if not m:
        return arg.strip(), []
    return m.group(1), m.group(2).split()


class _Session:
    def __init__(self, peer, sock, conn_no):
        self.peer = peer
        self.sock = sock
        self.conn_no = conn_no
        self.buf = b""
        self.tls = False
        self.sni = None
        self.helo = None
        self.msg = None
        self.deadline = time.monotonic() + SESSION_LIMIT
        sock.settimeout(0.2)

    # -- I/O, bounded --
    def _recv_more(self):
        limit = time.monotonic() + IO_TIMEOUT
        while True:
            if self.peer._stopping.is_set():
                raise _Closed()
            if time.monotonic() > min(limit, self.deadline):
                raise _Closed()
            try:
                b = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except (OSError, ssl.SSLError):
                raise _Closed()
            if not b:
                raise _Closed()
            self.buf += b
            return

    def readline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return line.rstrip(b"\r\n").decode("utf-8", "replace")
            if len(self.buf) > LINE_MAX:
                raise _Closed()
            self._recv_more()

    def send(self, text):
        if isinstance(text, str):
            text = text.encode()
        try:
            self.sock.sendall(text)
        except (OSError, ssl.SSLError):
            raise _Closed()

    def reply(self, text):
        lines = text if isinstance(text, list) else [text]
        out = ""
        for i, l in enumerate(lines):
            code, rest = l[:3], l[4:]
            out += "%s%s%s\r\n" % (code, "-" if i < len(lines) - 1 else " ", rest)
        self.send(out)

    def hang(self):
        while not self.peer._stopping.wait(0.1):
            if time.monotonic() > self.deadline:
                break
        raise _Closed()

    def record(self, line):
        with self.peer._lock:
            self.peer.transcript.append((self.conn_no, line))

    # -- the conversation --
    def run(self):
        p = self.peer
        if p.hang == "greeting":
            self.hang()
        self.reply(p.greeting)
        for _ in range(100000):
            line = self.readline()
            self.record(line)
            verb = line.split(" ", 1)[0].upper()
            handler = getattr(self, "cmd_" + verb, None)
            # After a refusing greeting, like a real server: only QUIT.
            if not p.greeting.startswith("2") and verb != "QUIT":
                self.reply("503 5.5.1 go away")
                continue
            if handler is None:
                self.reply("502 5.5.2 Error: command not recognized")
                continue
            if handler(line[len(verb):].lstrip(" ") if len(line) > len(verb) else "") is False:
                return

    def cmd_EHLO(self, arg):
        p = self.peer
        if p.no_ehlo:
            self.reply("502 5.5.2 Error: command not recognized")
            return
        self.helo = arg
        kws = list(p.ehlo)
        if p.starttls or p.refuse_starttls:
            if not self.tls:
                kws.append("STARTTLS")
        self.reply(["250 peer.test"] + ["250 " + k for k in kws])

    def cmd_HELO(self, arg):
        self.helo = arg
        self.reply("250 peer.test")

    def cmd_STARTTLS(self, arg):
        p = self.peer
        if self.tls or not (p.starttls or p.refuse_starttls):
            self.reply("502 5.5.1 Error: command not implemented")
            return
        if p.refuse_starttls:
            self.reply("454 4.7.0 TLS not available due to local problem")
            return
        self.reply("220 2.0.0 Ready to start TLS")
        # RFC 3207: whatever the client sent before the handshake is void.
        self.buf = b""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*p.starttls)
        if p.tls_max:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.maximum_version = getattr(ssl.TLSVersion, p.tls_max)
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")

        def sni(sslobj, name, c):
            self.sni = name
        ctx.sni_callback = sni
        try:
            self.sock.settimeout(IO_TIMEOUT)
            self.sock = ctx.wrap_socket(self.sock, server_side=True)
            self.sock.settimeout(0.2)
        except (OSError, ssl.SSLError):
            raise _Closed()
        self.tls = True
        self.helo = None
        self.msg = None
        self.record("<TLS>")

    def cmd_MAIL(self, arg):
        p = self.peer
        if p.drop == "mail":
            return False
        m = re.match(r"(?i)FROM:(.*)$", arg)
        if not m:
            self.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
            return
        addr, params = _split_path(m.group(1))
        if p.mail_reply and not p.mail_reply.startswith("2"):
            self.reply(p.mail_reply)
            return
        self.msg = Message(self.helo, addr, params, self.tls)
        self.msg.sni = self.sni
        self.reply(p.mail_reply or "250 2.1.0 Ok")

    def cmd_RCPT(self, arg):
        p = self.peer
        if p.drop == "rcpt":
            return False
        m = re.match(r"(?i)TO:(.*)$", arg)
        if self.msg is None:
            self.reply("503 5.5.1 Error: need MAIL command")
            return
        if not m:
            self.reply("501 5.5.4 Syntax: RCPT TO:<address>")
            return
        addr, params = _split_path(m.group(1))
        r = "250 2.1.5 Ok"
        if callable(p.rcpt):
            r = p.rcpt(addr) or r
        elif p.rcpt:
            local = addr.split("@")[0].lower()
            for prefix, reply in p.rcpt.items():
                if local.startswith(prefix):
                    r = reply
                    break
        if r.startswith("2"):
            self.msg.rcpts.append(addr)
            self.msg.rcpt_params.append(params)
        self.reply(r)

    def cmd_DATA(self, arg):
        p = self.peer
        if self.msg is None or not self.msg.rcpts:
            self.reply(p.data_reply if p.data_reply and not p.data_reply.startswith("3")
                       else "554 5.5.1 Error: no valid recipients")
            return
        if p.data_reply and not p.data_reply.startswith("3"):
            self.reply(p.data_reply)
            return
        self.reply(p.data_reply or "354 End data with <CR><LF>.<CR><LF>")
        if p.hang == "data":
            self.hang()
        if p.drop == "data":
            # drop mid-DATA: once some of the message arrived, before any reply
            if not self.buf:
                self._recv_more()
            return False
        scan = 0
        while True:
            if self.buf.startswith(b".\r\n"):
                raw, self.buf = self.buf[:3], self.buf[3:]
                break
            i = self.buf.find(b"\r\n.\r\n", scan)
            if i >= 0:
                raw, self.buf = self.buf[:i + 5], self.buf[i + 5:]
                break
            if len(self.buf) > DATA_MAX:
                return False
            scan = max(0, len(self.buf) - 4)
            self._recv_more()
        body = raw[:-3] if raw != b".\r\n" else b""
        # Undo dot-stuffing.
        lines = body.split(b"\r\n")
        data = b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)
        self.msg.raw = raw
        self.msg.data = data
        if p.drop == "final":
            with p._lock:
                p.unanswered.append(self.msg)
            return False
        if p.hang == "final":
            with p._lock:
                p.unanswered.append(self.msg)
            self.hang()
        final = p.final_reply or "250 2.0.0 Ok: queued as PEER%d" % len(p.messages)
        if final.startswith("2"):
            with p._lock:
                p.messages.append(self.msg)
                p._cond.notify_all()
        self.msg = None
        self.reply(final)

    def cmd_RSET(self, arg):
        self.msg = None
        self.reply("250 2.0.0 Ok")

    def cmd_NOOP(self, arg):
        self.reply("250 2.0.0 Ok")

    def cmd_QUIT(self, arg):
        self.reply("221 2.0.0 Bye")
        return False


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        peer = self.server.peer
        with peer._lock:
            peer.connections += 1
            n = peer.connections
            peer._socks.add(self.request)
        s = _Session(peer, self.request, n)
        try:
            s.run()
        except _Closed:
            pass
        finally:
            with peer._lock:
                peer._socks.discard(self.request)
            try:
                s.sock.close()
            except OSError:
                pass


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = True


class Peer:
    """An SMTP peer on host:port (port 0: a free one, see .port)."""

    def __init__(self, host="127.0.0.1", port=0, greeting="220 peer.test ESMTP",
                 hang=None, rcpt=None, mail_reply=None, data_reply=None,
                 final_reply=None, drop=None, starttls=None, refuse_starttls=False,
                 ehlo=None, no_ehlo=False, tls_max=None):
        if not (host.startswith("127.") or host == "::1"):
            raise ValueError("peers listen on loopback only")
        self.host = host
        self.greeting = greeting
        self.hang = hang
        self.rcpt = rcpt
        self.mail_reply = mail_reply
        self.data_reply = data_reply
        self.final_reply = final_reply
        self.drop = drop
        self.starttls = starttls
        self.refuse_starttls = refuse_starttls
        self.tls_max = tls_max
        self.ehlo = DEFAULT_EHLO if ehlo is None else ehlo
        self.no_ehlo = no_ehlo
        self.connections = 0
        self.transcript = []
        self.messages = []
        self.unanswered = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._socks = set()
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        _Server.address_family = fam
        self._server = _Server((host, port), _Handler)
        self._server.peer = self
        self.port = self._server.server_address[1]
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stops listening and ends every connection (bounded)."""
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(10)
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def wait_messages(self, n, timeout=20.0 * SLOW):
        """Waits until n messages were accepted; returns them."""
        end = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < n:
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("peer %s:%d got %d of %d messages" % (
                        self.host, self.port, len(self.messages), n))
                self._cond.wait(min(left, 0.5))
            return list(self.messages)

    def commands(self, conn_no=None):
        """Command lines received (on one connection, or all)."""
        with self._lock:
            return [l for c, l in self.transcript if conn_no is None or c == conn_no]


def make_cert(directory, name="peer.test"):
    """A self-signed certificate and key (PEM) made with certtool."""
    import subprocess
    key, cert, tmpl = (os.path.join(directory, n) for n in ("key.pem", "cert.pem", "cert.tmpl"))
    with open(tmpl, "w") as f:
        f.write('cn = "%s"\ndns_name = "%s"\nexpiration_days = 30\ntls_www_server\n'
                'signing_key\nencryption_key\n' % (name, name))
    subprocess.run(["certtool", "--generate-privkey", "--key-type=ecdsa",
                    "--outfile", key], check=True, capture_output=True)
    subprocess.run(["certtool", "--generate-self-signed", "--load-privkey", key,
                    "--template", tmpl, "--outfile", cert], check=True, capture_output=True)
    return cert, key


def _self_test():
    import smtplib
    import tempfile

    def send(peer, rcpts, body=b"Subject: t\r\n\r\n.dot\r\nhi\r\n", tls=False):
        c = smtplib.SMTP(peer.host, peer.port, timeout=10)
        try:
            c.ehlo("client.test")
            if tls:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                c.starttls(context=ctx)
                c.ehlo("client.test")
            return c.sendmail("s@client.test", rcpts, body)
        finally:
            try:
                c.quit()
            except (smtplib.SMTPException, OSError):
                pass

    with Peer("127.0.0.1") as p:
        assert send(p, ["a@x.test", "b@x.test"]) == {}
        m = p.wait_messages(1)[0]
        assert m.rcpts == ["a@x.test", "b@x.test"], m
        assert m.data == b"Subject: t\r\n\r\n.dot\r\nhi\r\n", m.data
        assert m.raw.endswith(b"\r\n.\r\n") and b"\r\n..dot\r\n" in m.raw
        assert p.connections == 1

    with Peer("127.0.0.1", rcpt={"defer": "451 4.3.0 later",
                                 "bounce": "550 5.1.1 unknown"}) as p:
        refused = send(p, ["defer@x.test", "bounce@x.test", "ok@x.test"])
        assert refused["defer@x.test"][0] == 451 and refused["bounce@x.test"][0] == 550
        assert p.wait_messages(1)[0].rcpts == ["ok@x.test"]

    with Peer("127.0.0.1", final_reply="554 5.7.1 spam") as p:
        try:
            send(p, ["a@x.test"])
            raise AssertionError("5xx at end of data not seen")
        except smtplib.SMTPDataError as e:
            assert e.smtp_code == 554
        assert not p.messages

    with Peer("127.0.0.1", drop="data") as p:
        try:
            send(p, ["a@x.test"], body=b"x" * 100000)
            raise AssertionError("drop not seen")
        except (smtplib.SMTPException, OSError):
            pass

    with Peer("127.0.0.1", hang="greeting") as p:
        try:
            smtplib.SMTP(p.host, p.port, timeout=0.5)
            raise AssertionError("hang not seen")
        except (socket.timeout, smtplib.SMTPException, OSError):
            pass

    with Peer("127.0.0.1", refuse_starttls=True) as p:
        c = smtplib.SMTP(p.host, p.port, timeout=10)
        c.ehlo("client.test")
        assert c.has_extn("starttls")
        code, _ = c.docmd("STARTTLS")
        assert code == 454
        c.quit()

    try:
        d = tempfile.mkdtemp(prefix="peers-cert-")
        cert = make_cert(d)
    except (OSError, Exception) as e:   # certtool missing
        print("peers.py: TLS self-test skipped (%s)" % e)
        cert = None
    if cert:
        with Peer("127.0.0.1", starttls=cert) as p:
            assert send(p, ["a@x.test"], tls=True) == {}
            m = p.wait_messages(1)[0]
            assert m.tls and "<TLS>" in p.commands()
    print("peers.py: self-test ok")


if __name__ == "__main__":
    _self_test()
