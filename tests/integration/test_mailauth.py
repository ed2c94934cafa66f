"""Mail authentication through the daemon (README "Mail authentication"):
SPF at MAIL FROM, DKIM and DMARC at the end of data, the
Authentication-Results field, and DKIM signing of our users' mail.

One ldns-testns on loopback serves every record for the module. Mail from
outside comes from 127.0.0.1 with relay_networks empty, so the checks
apply; the SPF records name 127.0.0.1 (pass) or not (fail). Messages are
signed by dkimpy (Debian python3-dkim) with keys made by mailctl
dkim-keygen, and our signatures are checked by dkimpy, reading the
delivered Maildir files."""
import json
import os
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
import unittest

from testns_zone import entry, nxdomain_for_the_rest, txt_strings
from harness import MAILCTL, MAILSERVER, ROOT, Client, DnsServer, Server, free_port, wait_for
from ops import parse, scrape, value

DKIMPY = os.path.join(ROOT, "tests", "integration", "dkimpy_tool.py")
PYTHON = "/usr/bin/python3"      # Debian's, with the dkim module
PASSWORD = "s3cret-pass"


def run(cmd, data=b""):
    p = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if p.returncode != 0:
        raise AssertionError("%s: %s" % (cmd, p.stderr.decode(errors="replace")))
    return p.stdout


def message(frm, subject, extra=b""):
    return (b"From: <%s>\r\nTo: <bob@mx.test>\r\nSubject: %s\r\n"
            b"Date: Tue, 1 Dec 2026 10:00:00 +0000\r\n"
            b"Message-ID: <%s@client.test>\r\n" % (frm.encode(), subject.encode(),
                                                   subject.encode().replace(b" ", b"-")) +
            extra + b"\r\nHello, this is the body.\r\n")


def keygen(directory, domain, selector, typ):
    path = os.path.join(directory, "%s.%s.pem" % (selector, domain))
    out = run([MAILCTL, "dkim-keygen", domain, selector, "--type", typ, "--out", path])
    value = "".join(re.findall(r'"([^"]*)"', out.decode()))
    assert value.startswith("v=DKIM1;"), out
    return path, value


def header_fields(data, name):
    head = data.split(b"\r\n\r\n", 1)[0]
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", head)
    return [l.split(b":", 1)[1].strip().decode() for l in unfolded.split(b"\r\n")
            if l.lower().startswith(name.lower().encode() + b":")]


class Zone:
    """The records of the module, and the DKIM keys (made once)."""

    def __init__(self, directory):
        self.dir = directory
        self.keys = {}
        text = []
        for dom, sel, typ in (("pass.test", "rsa", "rsa"),
                              ("example.test", "rsa", "rsa"), ("example.test", "ed", "ed25519"),
                              ("example.test", "new", "ed25519")):
            path, value = keygen(directory, dom, sel, typ)
            self.keys[(dom, sel)] = path
            text.append(entry("%s._domainkey.%s" % (sel, dom), "TXT", [txt_strings(value)]))
        recs = {
            # SPF: 127.0.0.1 may send for pass.test and its friends
            "pass.test": ["v=spf1 ip4:127.0.0.1 -all"],
            "_dmarc.pass.test": ["v=DMARC1; p=reject"],
            "fail.test": ["v=spf1 -all"],
            "soft.test": ["v=spf1 ~all"],
            "_dmarc.soft.test": ["v=DMARC1; p=reject"],
            "reject.test": ["v=spf1 ip4:192.0.2.1 -all"],
            "_dmarc.reject.test": ["v=DMARC1; p=reject"],
            "quar.test": ["v=spf1 ip4:192.0.2.1 -all"],
            "_dmarc.quar.test": ["v=DMARC1; p=quarantine"],
            "pct.test": ["v=spf1 ip4:192.0.2.1 -all"],
            "_dmarc.pct.test": ["v=DMARC1; p=reject; pct=0"],
            "_dmarc.parent.test": ["v=DMARC1; p=none; sp=reject"],
            "_dmarc.mx.test": ["v=DMARC1; p=reject"],
            "_dmarc.example.test": ["v=DMARC1; p=reject"],
            "example.test": ["v=spf1 -all"],
        }
        for name, values in recs.items():
            text.append(entry(name, "TXT", [txt_strings(v) for v in values]))
        text.append(entry("temp.test", "TXT", rcode="SERVFAIL"))
        text.append(entry("_dmarc.tempd.test", "TXT", rcode="SERVFAIL"))
        text.append(entry("1.0.0.127.in-addr.arpa", "PTR", ["localhost."]))
        text.append(entry("localhost", "A", ["127.0.0.1"]))
        text.append(nxdomain_for_the_rest())
        self.zonefile = os.path.join(directory, "zone.data")
        with open(self.zonefile, "w") as f:
            f.write("".join(text))
        # dkimpy's view of the keys ("NAME TXT value" lines)
        self.dkimpy_zone = os.path.join(directory, "dkimpy.zone")
        with open(self.dkimpy_zone, "w") as f:
            for (dom, sel), path in self.keys.items():
                value = [l for l in text if ("%s._domainkey.%s." % (sel, dom)) in l][0]
                rdata = "".join(re.findall(r'"([^"]*)"', value.split("IN TXT", 1)[1]))
                f.write("%s._domainkey.%s TXT %s\n" % (sel, dom, rdata))

    def dkimpy_sign(self, msg, dom, sel, alg="rsa"):
        return run([PYTHON, DKIMPY, "sign", self.keys[(dom, sel)], sel, dom, alg,
                    "relaxed"], msg)

    def dkimpy_verify(self, msg):
        return run([PYTHON, DKIMPY, "verify", self.dkimpy_zone], msg).decode().split()


def make_dir():
    return tempfile.mkdtemp(prefix="ms-mailauth-")


class MailAuthBase(unittest.TestCase):
    EXTRA = ""
    RELAY = ""      # relay_networks: none, so mail from 127.0.0.1 is checked

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_dir()
        cls.zone = Zone(cls.tmp)
        cls.dns = DnsServer(cls.zone.zonefile)
        cls.srv = Server(cls.EXTRA)
        with open(cls.srv.conf) as f:
            text = f.read().replace("dns_server = 127.0.0.1:1\n",
                                    "dns_server = 127.0.0.1:%d\n" % cls.dns.port)
        users = os.path.join(cls.srv.dir, "users")
        with open(users, "w") as f:
            f.write("bob@mx.test:\nalice@example.test:%s\n" % crypt_hash(PASSWORD))
        text += ("local_domains = mx.test example.test\nusers_file = %s\n" % users +
                 "relay_networks = %s\nauth_plaintext_networks = 127.0.0.0/8\n" % cls.RELAY +
                 "listen = 127.0.0.1:%d submission\n" % cls.sub_port())
        cls.mport = free_port()
        text += "metrics_listen = 127.0.0.1:%d\n" % cls.mport
        cls.srv.write_config(text)
        cls.srv.start()

    @classmethod
    def sub_port(cls):
        if not hasattr(cls, "_sub"):
            from harness import free_port
            cls._sub = free_port()
        return cls._sub

    @classmethod
    def tearDownClass(cls):
        try:
            code = cls.srv.stop()
            assert code == 0, code
        finally:
            cls.srv.cleanup()
            cls.dns.stop()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def send(self, sender, msg, rcpt="bob@mx.test"):
        """(code of MAIL, code of DATA or None, text)."""
        with smtplib.SMTP("127.0.0.1", self.srv.port, timeout=30) as s:
            s.ehlo("client.test")
            code, text = s.mail(sender)
            if code != 250:
                return code, None, text.decode()
            self.assertEqual(s.rcpt(rcpt)[0], 250)
            code, text = s.data(msg)
            return 250, code, text.decode()

    def delivered(self, subject, addr="bob@mx.test"):
        """The delivered file whose Subject is subject."""
        def find():
            for path in self.srv.maildir_files(addr):
                with open(path, "rb") as f:
                    data = f.read().replace(b"\n", b"\r\n")   # Maildir has LF
                if b"Subject: " + subject.encode() + b"\r\n" in data:
                    return data
            return None
        return wait_for(find, 20, "delivery of %r" % subject)

    def rejections(self, reason):
        return value(parse(scrape(self.mport)), "mailserver_rejections_total", reason=reason)

    def trace_texts(self, qid, kind):
        """The texts of qid's trace events of kind, once there are any
        (the trace is written about once a second)."""
        def texts():
            r = self.srv.mailctl("--json", "trace", qid, check=False)
            got = [] if r.returncode else [e["text"] for e in json.loads(r.stdout)["events"]
                                           if e["kind"] == kind]
            return got or None
        return wait_for(texts, 10, "%s events in the trace of %s" % (kind, qid))

    def authres(self, data):
        fields = header_fields(data, "Authentication-Results")
        ours = [f for f in fields if f.startswith("mx.test;")]
        self.assertEqual(len(ours), 1, fields)
        return ours[0]


def crypt_hash(password):
    return subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password,
                          capture_output=True, text=True, check=True).stdout.strip()


class InboundChecksTest(MailAuthBase):
    def test_spf_fail_refused_at_mail_from(self):
        before = self.rejections("sender_auth")
        code, _, text = self.send("someone@fail.test", message("someone@fail.test", "spf fail"))
        self.assertEqual(code, 550)
        self.assertIn("5.7.23", text)
        self.srv.wait_log("spf=fail <someone@fail.test>")
        self.assertEqual(self.rejections("sender_auth"), before + 1)

    def test_aligned_pass(self):
        msg = self.zone.dkimpy_sign(message("a@pass.test", "aligned pass"), "pass.test", "rsa")
        _, code, text = self.send("a@pass.test", msg)
        self.assertEqual(code, 250)
        ar = self.authres(self.delivered("aligned pass"))
        self.assertRegex(ar, r"spf=pass .*smtp\.mailfrom=a@pass\.test")
        self.assertRegex(ar, r"dkim=pass .*header\.d=pass\.test")
        self.assertRegex(ar, r"dmarc=pass .*header\.from=pass\.test")
        # the verdicts are in the message's trace too
        ev = self.trace_texts(text.split()[-1], "mailauth")
        self.assertEqual(len(ev), 1, ev)
        self.assertRegex(ev[0], r"spf=pass.*dkim=pass.*dmarc=pass.*header\.from=pass\.test$")

    def test_spf_only_pass(self):
        _, code, _ = self.send("a@pass.test", message("a@pass.test", "spf only"))
        self.assertEqual(code, 250)
        ar = self.authres(self.delivered("spf only"))
        self.assertIn("spf=pass", ar)
        self.assertIn("dkim=none", ar)
        self.assertIn("dmarc=pass", ar)

    def test_dkim_only_pass(self):
        # softfail for MAIL FROM; the From: domain's signature aligns
        msg = self.zone.dkimpy_sign(message("x@pass.test", "dkim only"), "pass.test", "rsa")
        _, code, _ = self.send("bounce@soft.test", msg)
        self.assertEqual(code, 250)
        ar = self.authres(self.delivered("dkim only"))
        self.assertIn("spf=softfail", ar)
        self.assertIn("dkim=pass", ar)
        self.assertIn("dmarc=pass", ar)

    def test_misaligned_pass_fails_and_p_reject_refuses(self):
        # SPF passes for pass.test, DKIM passes for pass.test, From: is
        # reject.test: nothing aligns
        msg = self.zone.dkimpy_sign(message("ceo@reject.test", "misaligned"),
                                    "pass.test", "rsa")
        before = self.rejections("sender_auth")
        _, code, text = self.send("a@pass.test", msg)
        self.assertEqual(code, 550)
        self.assertIn("5.7.1", text)
        self.assertIn("reject.test", text)
        self.srv.wait_log("dmarc=fail p=reject")
        self.assertEqual(self.rejections("sender_auth"), before + 1)

    def test_tampered_signature_fails_dmarc(self):
        msg = self.zone.dkimpy_sign(message("x@pass.test", "tampered"), "pass.test", "rsa")
        msg = msg.replace(b"this is the body", b"this is THE body")
        _, code, _ = self.send("bounce@soft.test", msg)
        self.assertEqual(code, 550)

    def test_quarantine_adds_the_header(self):
        _, code, _ = self.send("a@pass.test", message("x@quar.test", "quarantined"))
        self.assertEqual(code, 250)
        ar = self.authres(self.delivered("quarantined"))
        self.assertIn("dmarc=fail", ar)
        self.assertIn("quarantine", ar)

    def test_pct_zero_is_not_rejected(self):
        _, code, _ = self.send("a@pass.test", message("x@pct.test", "pct zero"))
        self.assertEqual(code, 250)
        self.assertIn("dmarc=fail", self.authres(self.delivered("pct zero")))

    def test_subdomain_policy(self):
        _, code, _ = self.send("a@pass.test", message("x@sub.parent.test", "subdomain"))
        self.assertEqual(code, 550)

    def test_our_own_domain_forged_from_outside(self):
        _, code, _ = self.send("a@pass.test", message("boss@mx.test", "forged ours"))
        self.assertEqual(code, 550)

    def test_forged_authentication_results_removed(self):
        extra = (b"Authentication-Results: mx.test; dkim=pass header.d=bank.test\r\n"
                 b"Authentication-Results: other.example; spf=pass\r\n")
        _, code, _ = self.send("a@pass.test", message("a@pass.test", "forged ar", extra))
        self.assertEqual(code, 250)
        data = self.delivered("forged ar")
        fields = header_fields(data, "Authentication-Results")
        self.assertEqual(len([f for f in fields if f.startswith("mx.test;")]), 1)
        self.assertNotIn("bank.test", data.decode())
        self.assertIn("other.example; spf=pass", fields)

    def test_several_from_fields_refused(self):
        # RFC 5322 3.6 allows one From field, RFC 7489 6.6.1 says mail
        # with several (or authors in several domains) is typically
        # rejected: a reader would see one author, DMARC none of them.
        # Both would pass for pass.test (SPF aligned), the message is
        # still refused.
        for n, extra in enumerate((b"From: <ceo@reject.test>\r\n",
                                   b"From: <a@pass.test>\r\n")):
            subject = "two from %d" % n
            _, code, text = self.send("a@pass.test", message("a@pass.test", subject, extra))
            self.assertEqual(code, 550, text)
            self.assertIn("5.7.1", text)
        msg = message("a@pass.test", "two authors").replace(
            b"From: <a@pass.test>", b"From: <a@pass.test>, <ceo@reject.test>")
        _, code, text = self.send("a@pass.test", msg)
        self.assertEqual(code, 550, text)
        self.srv.wait_log("dmarc=permerror")

    def test_from_without_author_domain_refused(self):
        # no domain DMARC can find, though a reader may show one (a NUL
        # is refused before: 5.6.0)
        for n, frm in enumerate((b"From: Bank <ceo@reject.test\r\n",
                                 b"From: ceo@reject.test\x01.pass.test\r\n")):
            msg = message("a@pass.test", "no author %d" % n).replace(b"From: <a@pass.test>\r\n",
                                                                    frm)
            _, code, text = self.send("a@pass.test", msg)
            self.assertEqual(code, 550, (frm, text))
            self.assertIn("no author domain", text)
        # no From field at all: DMARC does not apply, accepted
        msg = message("a@pass.test", "no from").replace(b"From: <a@pass.test>\r\n", b"")
        _, code, _ = self.send("a@pass.test", msg)
        self.assertEqual(code, 250)
        self.assertIn("dmarc=none", self.authres(self.delivered("no from")))

    def test_bdat_chunks_checked(self):
        # CHUNKING: the verifier takes the chunks as they come, one cut
        # inside the header section, one inside a signed header field's
        # value and one in the body
        msg = self.zone.dkimpy_sign(message("a@pass.test", "bdat chunks"), "pass.test", "rsa")
        cuts = [0, 7, msg.index(b"Subject:") + 12, msg.index(b"\r\n\r\n") + 5, len(msg)]
        c = Client(self.srv.port)
        self.assertEqual(c.reply()[0], 220)
        self.assertEqual(c.cmd("EHLO client.test")[0], 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@pass.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<bob@mx.test>")[0], 250)
        for i in range(len(cuts) - 1):
            chunk = msg[cuts[i]:cuts[i + 1]]
            last = " LAST" if i == len(cuts) - 2 else ""
            c.send(b"BDAT %d%s\r\n" % (len(chunk), last.encode()) + chunk)
            self.assertEqual(c.reply()[0], 250)
        c.cmd("QUIT")
        c.close()
        ar = self.authres(self.delivered("bdat chunks"))
        self.assertRegex(ar, r"dkim=pass .*header\.d=pass\.test")
        self.assertIn("dmarc=pass", ar)

    def test_header_section_past_first_record_refused(self):
        # forged fields could hide past what can be edited: refused
        extra = b"".join(b"X-Pad-%04d: %s\r\n" % (i, b"y" * 60) for i in range(1200))
        _, code, text = self.send("a@pass.test", message("a@pass.test", "huge head", extra))
        self.assertEqual(code, 552, text)
        self.assertIn("5.3.4", text)

    def test_temperror_accepted_by_default(self):
        _, code, _ = self.send("a@temp.test", message("a@temp.test", "temperror"))
        self.assertEqual(code, 250)
        self.assertIn("spf=temperror", self.authres(self.delivered("temperror")))

    def test_large_message_checked_while_streaming(self):
        body = b"".join(b"line %06d of a large signed message\r\n" % i for i in range(60000))
        msg = self.zone.dkimpy_sign(message("big@pass.test", "large signed") + body,
                                    "pass.test", "rsa")
        _, code, _ = self.send("big@pass.test", msg)
        self.assertEqual(code, 250)
        ar = self.authres(self.delivered("large signed"))
        self.assertIn("dkim=pass", ar)
        self.assertIn("dmarc=pass", ar)


class TempfailDeferTest(MailAuthBase):
    EXTRA = "auth_tempfail = defer\nspf_reject = no\ndmarc_reject = no\n"

    def test_spf_temperror_deferred(self):
        code, _, text = self.send("a@temp.test", message("a@temp.test", "t1"))
        self.assertEqual(code, 451)
        self.assertIn("4.7.24", text)

    def test_dmarc_temperror_deferred(self):
        _, code, text = self.send("a@pass.test", message("a@tempd.test", "t2"))
        self.assertEqual(code, 451)

    def test_several_from_fields_only_headers(self):
        extra = b"From: <ceo@reject.test>\r\n"
        _, code, _ = self.send("a@pass.test", message("a@pass.test", "two from hdr", extra))
        self.assertEqual(code, 250)
        self.assertIn("dmarc=permerror", self.authres(self.delivered("two from hdr")))

    def test_no_reject_only_headers(self):
        code, dcode, _ = self.send("someone@fail.test", message("ceo@reject.test", "hdr only"))
        self.assertEqual((code, dcode), (250, 250))
        ar = self.authres(self.delivered("hdr only"))
        self.assertIn("spf=fail", ar)
        self.assertIn("dmarc=fail", ar)


class SigningTest(MailAuthBase):
    @classmethod
    def setUpClass(cls):
        cls.tmp0 = make_dir()
        zone = Zone(cls.tmp0)
        cls.EXTRA = ("dkim_sign = example.test rsa %s\ndkim_sign = example.test ed %s\n" %
                     (zone.keys[("example.test", "rsa")], zone.keys[("example.test", "ed")]) +
                     # another domain the server signs for, not alice's
                     "dkim_sign = pass.test rsa %s\n" % zone.keys[("pass.test", "rsa")])
        super().setUpClass()
        # the module's zone is the one the keys of EXTRA belong to
        cls.zone = zone

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.tmp0, ignore_errors=True)

    def submit(self, msg, rcpt="bob@mx.test"):
        """Returns the queue ID."""
        with smtplib.SMTP("127.0.0.1", self.sub_port(), timeout=30) as s:
            s.ehlo("laptop.test")
            s.login("alice@example.test", PASSWORD)
            self.assertEqual(s.mail("alice@example.test")[0], 250)
            self.assertEqual(s.rcpt(rcpt)[0], 250)
            code, text = s.data(msg)
            self.assertEqual(code, 250, text)
            return text.decode().split()[-1]

    def test_submission_is_dual_signed_and_verifies(self):
        # no Date, no Message-ID: the server adds them, and signs them
        msg = (b"From: Alice <alice@example.test>\r\nTo: bob@mx.test\r\n"
               b"Subject: signed by us\r\n\r\nA body.\r\n")
        qid = self.submit(msg)
        data = self.delivered("signed by us")
        self.assertEqual(self.trace_texts(qid, "dkim"), ["signed for example.test"])
        sigs = header_fields(data, "DKIM-Signature")
        self.assertEqual(len(sigs), 2, sigs)
        self.assertTrue(any("a=rsa-sha256" in s for s in sigs))
        self.assertTrue(any("a=ed25519-sha256" in s for s in sigs))
        for s in sigs:
            self.assertIn("d=example.test", s)
            h = re.search(r"h=([^;]*)", s).group(1).replace(" ", "").lower().split(":")
            # each there once, and oversigned: listed twice
            for name in ("from", "to", "subject", "date", "message-id"):
                self.assertEqual(h.count(name), 2, (name, h))
        self.assertEqual(self.zone.dkimpy_verify(data), ["pass", "pass"])
        # inbound checks do not apply to our own users: no A-R of ours
        self.assertEqual([f for f in header_fields(data, "Authentication-Results")
                          if f.startswith("mx.test;")], [])

    def test_forged_authentication_results_removed(self):
        # a user's forged verdict for another user to read (RFC 8601 5)
        msg = (b"Authentication-Results: mx.test; dkim=pass header.d=bank.test\r\n"
               b"Authentication-Results: MX.TEST (x); dmarc=pass header.from=bank.test\r\n"
               b"Authentication-Results: other.example; spf=pass\r\n"
               b"From: Alice <alice@example.test>\r\nTo: bob@mx.test\r\n"
               b"Subject: forged by a user\r\n\r\nA body.\r\n")
        self.submit(msg)
        data = self.delivered("forged by a user")
        self.assertNotIn(b"bank.test", data)
        self.assertEqual(header_fields(data, "Authentication-Results"),
                         ["other.example; spf=pass"])
        self.assertEqual(self.zone.dkimpy_verify(data), ["pass", "pass"])

    def test_other_from_domain_not_signed(self):
        msg = (b"From: Alice <alice@elsewhere.test>\r\nTo: bob@mx.test\r\n"
               b"Subject: not ours\r\n\r\nA body.\r\n")
        self.submit(msg)
        self.assertEqual(header_fields(self.delivered("not ours"), "DKIM-Signature"), [])

    def test_other_hosted_domain_not_signed_for_a_user(self):
        # alice may not get pass.test's signature on mail "from" its boss
        msg = (b"From: Boss <ceo@pass.test>\r\nTo: bob@mx.test\r\n"
               b"Subject: not alice's domain\r\n\r\nA body.\r\n")
        self.submit(msg)
        data = self.delivered("not alice's domain")
        self.assertEqual(header_fields(data, "DKIM-Signature"), [])
        self.srv.wait_log("not signed for pass.test")
        # auth_any_sender lets a user send (and be signed) as anyone
        with open(self.srv.conf) as f:
            before = f.read()
        self.reload(before + "auth_any_sender = alice@example.test\n")
        self.addCleanup(self.reload, before)
        self.submit(msg.replace(b"not alice's domain", b"any sender"))
        sigs = header_fields(self.delivered("any sender"), "DKIM-Signature")
        self.assertEqual(len(sigs), 1, sigs)
        self.assertIn("d=pass.test", sigs[0])

    def reload(self, text):
        self.srv.write_config(text)
        marks = self.srv.logtext().count("reloaded ")
        self.srv.signal(signal.SIGHUP)
        wait_for(lambda: self.srv.logtext().count("reloaded ") > marks, 10, "the reload")

    def test_reload_brings_new_keys(self):
        with open(self.srv.conf) as f:
            before = f.read()
        text = re.sub(r"dkim_sign = .*\n", "", before)
        text += "dkim_sign = example.test new %s\n" % self.zone.keys[("example.test", "new")]
        self.reload(text)
        self.addCleanup(self.reload, before)
        msg = (b"From: <alice@example.test>\r\nTo: bob@mx.test\r\n"
               b"Subject: after reload\r\n\r\nA body.\r\n")
        self.submit(msg)
        data = self.delivered("after reload")
        sigs = header_fields(data, "DKIM-Signature")
        self.assertEqual(len(sigs), 1, sigs)
        self.assertIn("s=new", sigs[0])
        self.assertEqual(self.zone.dkimpy_verify(data), ["pass"])


class RelayNetworksTest(MailAuthBase):
    """Mail from relay_networks: signed when its From: domain has keys,
    not checked, and without forged fields claiming our authserv-id."""
    RELAY = "127.0.0.0/8"

    @classmethod
    def setUpClass(cls):
        cls.tmp0 = make_dir()
        zone = Zone(cls.tmp0)
        cls.EXTRA = "dkim_sign = example.test ed %s\n" % zone.keys[("example.test", "ed")]
        super().setUpClass()
        cls.zone = zone

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.tmp0, ignore_errors=True)

    def test_signed_not_checked_forged_results_removed(self):
        extra = b"Authentication-Results: mx.test; dmarc=pass header.from=bank.test\r\n"
        # SPF would fail for fail.test and DMARC refuse example.test: not checked
        _, code, text = self.send("app@fail.test",
                                  message("app@example.test", "from the app", extra))
        self.assertEqual(code, 250, text)
        data = self.delivered("from the app")
        self.assertEqual(header_fields(data, "Authentication-Results"), [])
        sigs = header_fields(data, "DKIM-Signature")
        self.assertEqual(len(sigs), 1, sigs)
        self.assertIn("d=example.test", sigs[0])
        self.assertEqual(self.zone.dkimpy_verify(data), ["pass"])


class ConfigCheckTest(unittest.TestCase):
    def test_bad_key_fails_the_check(self):
        d = make_dir()
        try:
            bad = os.path.join(d, "bad.pem")
            with open(bad, "w") as f:
                f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
            srv = Server("dkim_sign = example.test sel %s\n" % bad, workdir=d)
            r = subprocess.run([MAILSERVER, "-t", "-c", srv.conf], capture_output=True,
                               text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("dkim_sign example.test sel", r.stderr)
            srv.write_config(open(srv.conf).read().replace(
                "dkim_sign = example.test sel %s\n" % bad, "dkim_sign = example.test\n"))
            r = subprocess.run([MAILSERVER, "-t", "-c", srv.conf], capture_output=True,
                               text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("DOMAIN SELECTOR KEYFILE", r.stderr)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
