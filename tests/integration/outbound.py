"""Helpers of the outbound TLS tests (test_tls_dane.py, test_mta_sts.py):
submitting mail to a mailserver (optionally over STARTTLS with
REQUIRETLS), reading its delivery log lines, and running tls_probe.

    qid = submit(srv.port, "s@a.test", ["u@ee.dane.test"], requiretls=True)
    d = delivery(srv, qid, "u@ee.dane.test")   # waits for the line
    d["status"], d["dsn"], d["tls"], d["relay"], d["diag"]
"""
import os
import re
import subprocess

from harness import SLOW, Client, Server, dot_stuff, wait_for

PROBE = os.environ.get("TLS_PROBE_BIN", "")

_DELIVERY = re.compile(r"([0-9A-F]{13}): to=<([^>]*)>, relay=(\S+), delay=(\d+), "
                       r"dsn=([0-9.]+), (?:tls=(.*?), )?status=(\w+) \((.*)\)$")


def lab_server(extra, dns_port, **kw):
    """A harness Server whose only dns_server is the lab's resolver."""
    srv = Server(extra, **kw)
    with open(srv.conf) as f:
        text = f.read()
    srv.write_config(text.replace("dns_server = 127.0.0.1:1\n",
                                  "dns_server = 127.0.0.1:%d\n" % dns_port))
    return srv


def submit(port, sender, rcpts, body=b"Subject: tls test\r\n\r\nhello\r\n", tls=False,
           requiretls=False):
    """One message through SMTP (STARTTLS first with tls or requiretls,
    then MAIL FROM with REQUIRETLS); returns the queue id."""
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    c = Client(port)
    try:
        assert c.reply()[0] == 220
        code, kws = c.cmd("EHLO client.test")
        assert code == 250, kws
        if tls or requiretls:
            assert "REQUIRETLS" not in kws, kws     # never offered in clear
            assert c.cmd("STARTTLS")[0] == 220
            c.starttls()
            code, kws = c.cmd("EHLO client.test")
            assert code == 250 and (not requiretls or "REQUIRETLS" in kws), kws
        code, lines = c.cmd("MAIL FROM:<%s>%s" % (sender, " REQUIRETLS" if requiretls else ""))
        assert code == 250, (code, lines)
        for r in rcpts:
            code, lines = c.cmd("RCPT TO:<%s>" % r)
            assert code == 250, (r, code, lines)
        assert c.cmd("DATA")[0] == 354
        c.send(dot_stuff(body) + b".\r\n")
        code, lines = c.reply()
        assert code == 250, (code, lines)
        c.cmd("QUIT")
        return lines[0].split()[-1]
    finally:
        c.close()


def deliveries(srv, qid=None):
    """Every delivery line of srv's log (of message qid), parsed."""
    out = []
    for line in srv.logtext().splitlines():
        m = _DELIVERY.search(line)
        if m and (qid is None or m.group(1) == qid):
            out.append(dict(qid=m.group(1), to=m.group(2), relay=m.group(3),
                            dsn=m.group(5), tls=m.group(6) or "", status=m.group(7),
                            diag=m.group(8)))
    return out


def delivery(srv, qid, rcpt, timeout=30):
    """The first delivery line of rcpt in message qid (waits for it)."""
    def find():
        for d in deliveries(srv, qid):
            if d["to"] == rcpt:
                return d
        return None
    return wait_for(find, timeout, "the delivery of %s to %s" % (qid, rcpt))


def tls_lines(srv, host):
    """The "... TLS connection established to HOST[..." lines of srv."""
    return [l for l in srv.logtext().splitlines()
            if "TLS connection established to %s[" % host in l]


def run_probe(*args):
    r = subprocess.run([PROBE] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=120 * SLOW)
    if r.returncode != 0:
        raise AssertionError("tls_probe %s: %d %s" % (args, r.returncode, r.stderr))
    return r.stdout


def fields(line):
    """'word k=v k=v reason=free text' -> dict (reason= runs to the end)."""
    out = {}
    rest = line.split(" ", 1)[1] if " " in line else ""
    while rest:
        if rest.startswith("reason=") or rest.startswith("detail="):
            k, v = rest.split("=", 1)
            out[k] = v
            break
        part, _, rest = rest.partition(" ")
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    return out


def lines(out, word):
    return [fields(l) for l in out.splitlines() if l.startswith(word + " ")]
