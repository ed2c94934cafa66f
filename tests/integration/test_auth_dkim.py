"""DKIM against independent implementations: keys made by `mailctl
dkim-keygen`, our signatures (auth/, through tests/tools/authtool)
checked by dkimpy (Debian python3-dkim) and by OpenDKIM, and messages
signed by dkimpy and by OpenDKIM checked by us, as sent and after the
changes in transit that relaxed canonicalization allows (header refolding,
whitespace). Tampered bodies and headers, wrong, revoked and missing
keys, expired signatures, l= with content after it, and OpenDKIM's
rsa-sha1 signatures must fail with the right result."""
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import MAILCTL, ROOT

AUTHTOOL = os.environ.get("AUTHTOOL_BIN", os.path.join(ROOT, "build", "default",
                                                       "tools", "authtool"))
DKIMPY = ["/usr/bin/python3", os.path.join(ROOT, "tests", "integration",
                                           "dkimpy_tool.py")]

MESSAGE = (b"Received: from client.example.com (client.example.com [192.0.2.1])\r\n"
           b"\tby mx.example.com with ESMTPS; Tue, 2 Jan 2024 10:00:00 +0000\r\n"
           b"From: Alice Example <alice@example.com>\r\n"
           b"To: Bob <bob@example.net>, carol@example.net\r\n"
           b"Subject: The quarterly   report\r\n"
           b"Date: Tue, 2 Jan 2024 10:00:00 +0000\r\n"
           b"Message-ID: <report-1@example.com>\r\n"
           b"MIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"\r\n"
           b"Hello Bob,\r\n"
           b"\r\n"
           b"the numbers are  attached.   \r\n"
           b"  Regards,\r\n"
           b"Alice\r\n"
           b"\r\n")


def run(cmd, data=b"", check=True):
    p = subprocess.run(cmd, input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d: %s" % (cmd[0], p.returncode,
                                                 p.stderr.decode(errors="replace")))
    return p.stdout


def relaxed_transit(msg):
    """What relaxed/relaxed survives: refolded and re-spaced headers,
    whitespace changes in the body, LF line ends, more empty lines."""
    head, body = msg.split(b"\r\n\r\n", 1)
    head = head.replace(b"Subject: The quarterly   report",
                        b"Subject:   The quarterly\r\n\t  report  ")
    head = head.replace(b"To: Bob <bob@example.net>, carol@example.net",
                        b"To:  Bob <bob@example.net>,\r\n carol@example.net")
    body = body.replace(b"numbers are  attached.   ", b"numbers are\tattached.")
    body = body.replace(b"  Regards,", b" \t Regards,  ")
    out = head + b"\r\n\r\n" + body + b"\r\n\r\n\r\n"
    return out.replace(b"\r\n", b"\n")


class DkimInteropTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ms-dkim-")
        cls.zone = {}
        # Our keys, made by mailctl; one more RSA key to be the wrong one.
        for name, typ in (("rsa1", "rsa"), ("ed1", "ed25519"), ("wrong", "rsa")):
            path = os.path.join(cls.dir, name + ".pem")
            out = run([MAILCTL, "dkim-keygen", "example.com", name, "--type", typ,
                       "--out", path]).decode()
            cls.zone["%s._domainkey.example.com" % name] = "".join(
                re.findall(r'"([^"]*)"', out))
        # dkimpy's keys, made by its own dknewkey.
        for name, typ in (("pyrsa", "rsa"), ("pyed", "ed25519")):
            run(["dknewkey", "--ktype", typ, os.path.join(cls.dir, name)])
            with open(os.path.join(cls.dir, name + ".dns")) as f:
                cls.zone["%s._domainkey.example.org" % name] = "".join(f.read().split("\n"))
        # OpenDKIM signs for the From domain (it signs nothing else) with
        # dkimpy's RSA key under its own selector.
        cls.zone["odk._domainkey.example.com"] = cls.zone["pyrsa._domainkey.example.org"]
        cls.write_zone()

    @classmethod
    def write_zone(cls, overrides=None, only=None):
        zone = dict(cls.zone) if only is None else dict(only)
        zone.update(overrides or {})
        cls.zonefile = os.path.join(cls.dir, "zone")
        with open(cls.zonefile, "w") as f:
            for name, txt in zone.items():
                f.write("%s TXT %s\n" % (name, txt))
        return cls.zonefile

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    # ---- the peers ----

    def sign_ours(self, selectors, msg=MESSAGE, extra=()):
        keys = ["example.com:%s:%s" % (s, os.path.join(self.dir, s + ".pem"))
                for s in selectors]
        return run([AUTHTOOL, "sign"] + list(extra) + keys, msg)

    def verify_ours(self, msg, zonefile=None, extra=()):
        out = run([AUTHTOOL, "verify", "--zone", zonefile or self.zonefile]
                  + list(extra), msg).decode()
        lines = [l for l in out.splitlines() if not l.startswith("from=")]
        return [(l.split()[0], l) for l in lines]

    def dkimpy_sign(self, sel, alg, canon, msg=MESSAGE, length=False):
        return run(DKIMPY + ["sign", os.path.join(self.dir, sel + ".key"), sel,
                             "example.org", alg, canon] + (["length"] if length else []),
                   msg)

    def dkimpy_verify(self, msg):
        return run(DKIMPY + ["verify", self.zonefile], msg).decode().split()

    def opendkim_conf(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text + "Syslog no\nRequireSafeKeys no\n")
        return path

    def opendkim_sign(self, canon, ttl=None, msg=MESSAGE):
        conf = self.opendkim_conf("odk-sign.conf",
                                  "Mode s\nDomain example.com\nSelector odk\n"
                                  "KeyFile %s\nSignatureAlgorithm rsa-sha256\n"
                                  "Canonicalization %s/%s\n%s" % (
                                      os.path.join(self.dir, "pyrsa.key"), canon, canon,
                                      "SignatureTTL %d\n" % ttl if ttl else ""))
        path = os.path.join(self.dir, "msg.eml")
        with open(path, "wb") as f:
            f.write(msg)
        out = run(["opendkim", "-x", conf, "-t", path])
        # "opendkim: FILE:" then the DKIM-Signature field it would insert
        field = out.split(b"\n", 1)[1].replace(b"\r\n", b"\n").rstrip(b"\n")
        self.assertTrue(field.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;"), field)
        return field.replace(b"\n", b"\r\n") + b"\r\n" + msg

    def opendkim_verify(self, msg):
        keys = os.path.join(self.dir, "odk-keys")
        with open(keys, "w") as f:
            for name, txt in self.zone.items():
                f.write("%s %s\n" % (name, txt))
        conf = self.opendkim_conf("odk-verify.conf",
                                  "Mode v\nTestPublicKeys %s\nAlwaysAddARHeader yes\n"
                                  "AuthservID verifier.test\n" % keys)
        path = os.path.join(self.dir, "verify.eml")
        with open(path, "wb") as f:
            f.write(msg)
        p = subprocess.run(["opendkim", "-x", conf, "-t", path, "-vvv"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        return p.stdout.decode(errors="replace")

    # ---- keys ----

    def test_keygen(self):
        path = os.path.join(self.dir, "rsa1.pem")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        with open(path) as f:
            self.assertTrue(f.read().startswith("-----BEGIN PRIVATE KEY-----"))
        # the printed record is the key's own
        txt = run([AUTHTOOL, "keytxt", "example.com", "rsa1", path]).decode().strip()
        self.assertEqual(txt, self.zone["rsa1._domainkey.example.com"])
        self.assertTrue(txt.startswith("v=DKIM1; k=rsa; p=MII"))
        self.assertTrue(self.zone["ed1._domainkey.example.com"].startswith(
            "v=DKIM1; k=ed25519; p="))
        # never overwrites, and says why
        p = subprocess.run([MAILCTL, "dkim-keygen", "example.com", "x", "--out", path],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"exists", p.stderr)
        p = subprocess.run([MAILCTL, "dkim-keygen", "example.com"], capture_output=True)
        self.assertEqual(p.returncode, 2)

    # ---- our signatures, their verifiers ----

    def test_ours_verify_with_dkimpy(self):
        for sels in (["rsa1"], ["ed1"], ["rsa1", "ed1"]):
            signed = self.sign_ours(sels)
            self.assertEqual(self.dkimpy_verify(signed), ["pass"] * len(sels), sels)
            self.assertEqual([r for r, _ in self.verify_ours(signed)], ["pass"] * len(sels))
            # and after relaxed changes in transit
            moved = relaxed_transit(signed)
            self.assertEqual(self.dkimpy_verify(moved), ["pass"] * len(sels))
            self.assertEqual([r for r, _ in self.verify_ours(moved)], ["pass"] * len(sels))

    def test_ours_verify_with_opendkim(self):
        out = self.opendkim_verify(self.sign_ours(["rsa1", "ed1"]))
        self.assertIn("dkim=pass (2048-bit key) header.d=example.com", out)
        self.assertRegex(out, r"dkim=pass header\.d=example\.com header\.i=@example\.com "
                              r"header\.a=ed25519-sha256 header\.s=ed1")
        tampered = self.sign_ours(["rsa1"]).replace(b"Alice\r\n\r\n", b"Mallory\r\n\r\n")
        self.assertIn("dkim=fail", self.opendkim_verify(tampered))

    # ---- their signatures, our verifier ----

    def test_dkimpy_signatures(self):
        for sel, alg in (("pyrsa", "rsa"), ("pyed", "ed25519")):
            for canon in ("relaxed", "simple"):
                signed = self.dkimpy_sign(sel, alg, canon)
                res = self.verify_ours(signed)
                self.assertEqual(res[0][0], "pass", (sel, canon, res))
                self.assertIn("d=example.org s=%s" % sel, res[0][1])
                moved = relaxed_transit(signed)
                res = self.verify_ours(moved)
                if canon == "relaxed":
                    self.assertEqual(res[0][0], "pass", (sel, res))
                else:
                    # simple keeps every byte: the refolded Subject breaks it
                    self.assertEqual(res[0][0], "fail", (sel, res))

    def test_opendkim_signatures(self):
        for canon in ("relaxed", "simple"):
            signed = self.opendkim_sign(canon)
            res = self.verify_ours(signed)
            self.assertEqual(res[0][0], "pass", (canon, res))
            self.assertIn("s=odk a=rsa-sha256", res[0][1])
            res = self.verify_ours(relaxed_transit(signed))
            self.assertEqual(res[0][0], "pass" if canon == "relaxed" else "fail", res)
            # LF line ends alone change nothing, even for simple
            self.assertEqual(self.verify_ours(signed.replace(b"\r\n", b"\n"))[0][0], "pass")

    def test_opendkim_rsa_sha1_refused(self):
        # opendkim-testmsg signs rsa-sha1, which RFC 8301 forbids accepting.
        signed = run(["opendkim-testmsg", "-d", "example.com", "-s", "odk", "-k",
                      os.path.join(self.dir, "pyrsa.key")], MESSAGE.replace(b"\r\n", b"\n"))
        self.assertIn(b"a=rsa-sha1", signed)
        res = self.verify_ours(signed)
        self.assertEqual(res[0][0], "permerror", res)
        self.assertIn("rsa-sha1 is not accepted", res[0][1])

    # ---- failures ----

    def test_tampered(self):
        signed = [self.sign_ours(["rsa1", "ed1"]), self.dkimpy_sign("pyrsa", "rsa", "relaxed"),
                  self.dkimpy_sign("pyed", "ed25519", "relaxed"),
                  self.opendkim_sign("relaxed")]
        for msg in signed:
            n = len(self.verify_ours(msg))
            body = msg.replace(b"the numbers are", b"the numbers were")
            for r, line in self.verify_ours(body):
                self.assertEqual(r, "fail", line)
                self.assertIn("reason=body hash did not verify", line)
            head = msg.replace(b"The quarterly", b"The yearly")
            res = self.verify_ours(head)
            self.assertEqual(len(res), n)
            for r, line in res:
                self.assertEqual(r, "fail", line)
                self.assertIn("reason=signature did not verify", line)
            # an added From (From is oversigned by us; others sign the
            # instance they saw, which is no longer the bottom one)
            added = msg.replace(b"MIME-Version", b"From: Mallory <m@evil.example>\r\n"
                                b"MIME-Version")
            for r, line in self.verify_ours(added):
                self.assertEqual(r, "fail", line)
            self.assertNotIn("pass", self.dkimpy_verify(body))

    def test_wrong_revoked_missing_keys(self):
        signed = self.sign_ours(["rsa1", "ed1"])
        # the wrong key
        zone = self.write_zone({"rsa1._domainkey.example.com":
                                self.zone["wrong._domainkey.example.com"]})
        res = self.verify_ours(signed, zone)
        self.assertEqual(res[0][0], "fail")
        self.assertIn("signature did not verify", res[0][1])
        self.assertEqual(res[1][0], "pass")
        self.assertEqual(self.dkimpy_verify(signed), ["fail", "pass"])
        # revoked
        zone = self.write_zone({"rsa1._domainkey.example.com": "v=DKIM1; k=rsa; p=",
                                "ed1._domainkey.example.com": "v=DKIM1; k=ed25519; p="})
        res = self.verify_ours(signed, zone)
        self.assertEqual([r for r, _ in res], ["permerror", "permerror"])
        self.assertIn("key revoked", res[0][1])
        self.assertEqual(self.dkimpy_verify(signed), ["fail", "fail"])
        # missing
        zone = self.write_zone(only={"other.example.com": "x"})
        res = self.verify_ours(signed, zone)
        self.assertEqual([r for r, _ in res], ["permerror", "permerror"])
        self.assertIn("no key for signature", res[0][1])
        self.write_zone()

    def test_expired(self):
        now = int(time.time())
        ours = self.sign_ours(["rsa1", "ed1"], extra=["-t", str(now), "-x", "60"])
        self.assertIn(b"x=%d;" % (now + 60), ours)
        theirs = self.opendkim_sign("relaxed", ttl=60)
        self.assertIn(b"x=", theirs)
        for msg in (ours, theirs):
            for r, _ in self.verify_ours(msg):
                self.assertEqual(r, "pass")
            for r, line in self.verify_ours(msg, extra=["-t", str(now + 3600)]):
                self.assertEqual(r, "permerror", line)
                self.assertIn("signature expired", line)

    def test_length_tag(self):
        signed = self.dkimpy_sign("pyrsa", "rsa", "relaxed", length=True)
        self.assertIn(b"l=", signed)
        res = self.verify_ours(signed)
        self.assertEqual(res[0][0], "pass", res)
        self.assertNotIn("unsigned", res[0][1])
        # content appended after the signed length: still signed as far as
        # l= goes, noted; refused when the option asks for it
        longer = signed + b"P.S. appended in transit\r\n"
        res = self.verify_ours(longer)
        self.assertEqual(res[0][0], "pass", res)
        self.assertRegex(res[0][1], r"reason=l=\d+: 28 of \d+ body octets unsigned")
        res = self.verify_ours(longer, extra=["-l"])
        self.assertEqual(res[0][0], "policy", res)
        self.assertIn("body octets unsigned", res[0][1])
        # a body shorter than l= fails
        shorter = signed.replace(b"Alice\r\n\r\n", b"")
        self.assertEqual(self.verify_ours(shorter)[0][0], "permerror")


if __name__ == "__main__":
    unittest.main()
