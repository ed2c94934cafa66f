"""A test mail filter on Debian's python3-milter (pymilter over the real
libmilter), run by Debian's /usr/bin/python3:

    milter_pymilter.py SOCKET LOG [plain|quiet]

SOCKET is libmilter's "unix:/path" or "inet:PORT@127.0.0.1". LOG gets one
JSON line per callback (what the MTA sent, with the macros of the stage),
so tests can check what mailserver's milter client told the filter.

What it answers is chosen by the mail itself:
  connect from 192.0.2.66 / .67 / .68: reject / tempfail / accept
  HELO reject.example: reject
  MAIL FROM <reject-mail@...>: 553 5.7.1 custom reply
  RCPT TO <reject@...>, <tempfail@...>, <discard@...>, <accept@...>,
    <custom@...> (multi-line 550 with a '%'), <bad-reply@...>
  a header X-Reject-Header: reject at that header
  body text REJECT-BODY / SKIP-BODY: reject / skip the rest of the body
  a header X-Test-Action: NAME (any number) at end of message:
    add-header insert-header change-header delete-header folded-header
    replace-body big-body chgfrom addrcpt addrcpt-par delrcpt quarantine
    progress reject-eom tempfail-eom discard-eom hang-eom

Mode "quiet" negotiates no HELO and no end of headers (SMFIP_NOHELO,
SMFIP_NOEOH), no replies to headers and body chunks (SMFIP_NR_HDR,
SMFIP_NR_BODY), leading spaces kept (SMFIP_HDR_LEADSPC), rejected
recipients wanted (SMFIP_RCPT_REJ), and asks for its own macro lists.
"""
import json
import sys
import threading
import time

import Milter

LOG_LOCK = threading.Lock()
LOG_PATH = None
MODE = "plain"

MACROS = {
    "connect": ["j", "{daemon_name}", "{daemon_addr}", "{client_addr}",
                "{client_name}", "{client_port}", "_", "v"],
    "hello": ["{tls_version}", "{cipher}", "{cipher_bits}"],
    "envfrom": ["i", "{auth_authen}", "{auth_type}", "{mail_addr}"],
    "envrcpt": ["i", "{rcpt_addr}", "{rcpt_mailer}"],
    "data": ["i"],
    "eoh": ["i"],
    "eom": ["i"],
}


def log(event, **kw):
    kw["event"] = event
    line = json.dumps(kw, default=lambda b: b.decode("latin-1"))
    with LOG_LOCK:
        with open(LOG_PATH, "a") as f:
            f.write(line + "\n")


def text(v):
    return v.decode("latin-1") if isinstance(v, bytes) else v


class TestMilter(Milter.Base):
    def __init__(self):
        self.actions = []
        self.body_chunks = 0
        self.body_bytes = 0
        self.rcpts = []

    def macros(self, stage):
        out = {}
        for m in MACROS[stage]:
            v = self.getsymval(m)
            if v is not None:
                out[m] = text(v)
        return out

    def connect(self, hostname, family, hostaddr):
        addr = hostaddr[0] if isinstance(hostaddr, tuple) else hostaddr
        port = hostaddr[1] if isinstance(hostaddr, tuple) else None
        log("connect", hostname=text(hostname), family=int(family), addr=text(addr),
            port=port, macros=self.macros("connect"), protocol=self._protocol,
            actions=self._actions)
        if addr == "192.0.2.66":
            return Milter.REJECT
        if addr == "192.0.2.67":
            return Milter.TEMPFAIL
        if addr == "192.0.2.68":
            return Milter.ACCEPT
        return Milter.CONTINUE

    def hello(self, hostname):
        log("helo", name=text(hostname), macros=self.macros("hello"))
        if text(hostname) == "reject.example":
            return Milter.REJECT
        return Milter.CONTINUE

    def envfrom(self, f, *params):
        log("mail", addr=text(f), params=[text(p) for p in params],
            macros=self.macros("envfrom"))
        self.actions = []
        self.body_chunks = 0
        self.body_bytes = 0
        self.rcpts = []
        if text(f).startswith("<reject-mail@"):
            self.setreply("553", "5.7.1", "sender refused by test milter")
            return Milter.REJECT
        return Milter.CONTINUE

    def envrcpt(self, to, *params):
        to = text(to)
        log("rcpt", addr=to, params=[text(p) for p in params],
            macros=self.macros("envrcpt"))
        self.rcpts.append(to)
        local = to.strip("<>").split("@")[0]
        if local == "reject":
            return Milter.REJECT
        if local == "tempfail":
            return Milter.TEMPFAIL
        if local == "discard":
            return Milter.DISCARD
        if local == "accept":
            return Milter.ACCEPT
        if local == "custom":
            self.setreply("550", "5.7.1", "first line", "second 100%% line")
            return Milter.REJECT
        return Milter.CONTINUE

    def data(self):
        log("data", macros=self.macros("data"))
        return Milter.CONTINUE

    def header(self, name, value):
        name, value = text(name), text(value)
        log("header", name=name, value=value)
        if name.lower() == "x-test-action":
            self.actions.append(value.strip())
        if name.lower() == "x-reject-header":
            return Milter.REJECT
        return Milter.CONTINUE

    def eoh(self):
        log("eoh", macros=self.macros("eoh"))
        return Milter.CONTINUE

    def body(self, chunk):
        self.body_chunks += 1
        self.body_bytes += len(chunk)
        log("body", length=len(chunk), head=chunk[:80])
        if b"REJECT-BODY" in chunk:
            return Milter.REJECT
        if b"SKIP-BODY" in chunk:
            return Milter.SKIP
        return Milter.CONTINUE

    def eom(self):
        log("eom", macros=self.macros("eom"), actions=self.actions,
            body_chunks=self.body_chunks, body_bytes=self.body_bytes)
        for a in self.actions:
            if a == "add-header":
                self.addheader("X-Added", "yes")
            elif a == "insert-header":
                self.addheader("X-Inserted", "at the top", 0)
            elif a == "change-header":
                self.chgheader("Subject", 1, "changed by milter")
            elif a == "delete-header":
                self.chgheader("X-Delete-Me", 1, "")
            elif a == "folded-header":
                self.addheader("X-Folded", "line one\n\tline two")
            elif a == "replace-body":
                self.replacebody(b"replaced body\r\n")
            elif a == "big-body":
                line = b"0123456789" * 7 + b"\r\n"
                for _ in range(3000):
                    self.replacebody(line)
            elif a == "chgfrom":
                self.chgfrom("<new-sender@example.org>", "BODY=8BITMIME")
            elif a == "addrcpt":
                self.addrcpt("<added@example.org>")
            elif a == "addrcpt-par":
                self.addrcpt("<added2@example.org>", "NOTIFY=NEVER")
            elif a == "delrcpt":
                self.delrcpt("<victim@example.org>")
            elif a == "quarantine":
                self.quarantine("held for review")
            elif a == "progress":
                for _ in range(3):
                    time.sleep(0.6)
                    self.progress()
            elif a == "reject-eom":
                self.setreply("554", "5.7.0", "message refused", "by the test milter")
                return Milter.REJECT
            elif a == "tempfail-eom":
                return Milter.TEMPFAIL
            elif a == "discard-eom":
                return Milter.DISCARD
            elif a == "hang-eom":
                time.sleep(10)
        return Milter.ACCEPT

    def abort(self):
        log("abort")
        return Milter.CONTINUE

    def close(self):
        log("close")
        return Milter.CONTINUE


class QuietMilter(TestMilter):
    """Asks for fewer steps and replies (see the module docstring)."""

    def negotiate(self, opts):
        rc = Milter.Base.negotiate(self, opts)
        self._protocol = opts[1] = (opts[1] | Milter.P_NOHELO | Milter.P_NOEOH |
                                    Milter.P_NR_HDR | Milter.P_NR_BODY |
                                    Milter.P_HDR_LEADSPC | Milter.P_RCPT_REJ)
        # Milter.Base.setsymlist hands bytes to a call that takes str.
        self._ctx.setsymlist(Milter.M_CONNECT, "{client_addr} j")
        self._ctx.setsymlist(Milter.M_ENVFROM, "{mail_addr}")
        return rc


def main():
    global LOG_PATH, MODE
    sock, LOG_PATH = sys.argv[1], sys.argv[2]
    MODE = sys.argv[3] if len(sys.argv) > 3 else "plain"
    Milter.factory = QuietMilter if MODE == "quiet" else TestMilter
    Milter.set_flags(Milter.CURR_ACTS)
    log("start", mode=MODE)
    Milter.runmilter("mailserver-test", sock, 60)


if __name__ == "__main__":
    main()
