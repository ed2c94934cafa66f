"""auth/ through the server's own resolver (dns/, with the TXT lookups of
dns/txt.c) against a real DNS server: ldns-testns on loopback serves SPF
records (one split into several strings), DKIM keys (an RSA key longer
than one TXT string) and a DMARC policy, plus NODATA, NXDOMAIN and
SERVFAIL answers; tests/tools/authtool runs SPF, DKIM and DMARC with
--dns pointing at it."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from testns_zone import entry, txt_strings
from harness import MAILCTL, ROOT, DnsServer

AUTHTOOL = os.environ.get("AUTHTOOL_BIN", os.path.join(ROOT, "build", "default",
                                                       "tools", "authtool"))

MESSAGE = (b"From: Alice <alice@example.test>\r\n"
           b"To: bob@example.net\r\n"
           b"Subject: through real DNS\r\n"
           b"Date: Tue, 2 Jan 2024 10:00:00 +0000\r\n"
           b"Message-ID: <dns-1@example.test>\r\n"
           b"\r\n"
           b"Hello.\r\n")


def run(cmd, data=b""):
    p = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if p.returncode != 0:
        raise AssertionError("%s: %s" % (cmd, p.stderr.decode(errors="replace")))
    return p.stdout.decode()


class AuthDnsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ms-authdns-")
        keys = {}
        for sel, typ in (("rsa", "rsa"), ("ed", "ed25519")):
            out = run([MAILCTL, "dkim-keygen", "example.test", sel, "--type", typ,
                       "--out", os.path.join(cls.dir, sel + ".pem")])
            keys[sel] = "".join(re.findall(r'"([^"]*)"', out))
        data = "$TTL 300\n\n"
        data += entry("spf.test", "TXT",
                      ['"v=spf1 a:mail.spf.test include:inc.spf.test -all"'])
        data += entry("mail.spf.test", "A", ["127.0.0.5"])
        data += entry("inc.spf.test", "TXT", ['"v=spf1 ip4:127.0.0.7/32 ~all"'])
        data += entry("long.spf.test", "TXT", ['"v=spf1 " "ip4:127.0.0.9" " -all"',
                                               '"google-site-verification=x"'])
        data += entry("nodata.spf.test", "TXT")
        data += entry("temp.spf.test", "TXT", rcode="SERVFAIL")
        data += entry("voids.spf.test", "TXT", [
            '"v=spf1 a:n1.spf.test a:n2.spf.test mx:nodata.spf.test +all"'])
        data += entry("rsa._domainkey.example.test", "TXT", [txt_strings(keys["rsa"])])
        data += entry("ed._domainkey.example.test", "TXT", [txt_strings(keys["ed"])])
        data += entry("gone._domainkey.example.test", "TXT", ['"v=DKIM1; k=rsa; p="'])
        data += entry("_dmarc.example.test", "TXT", ['"v=DMARC1; p=reject; adkim=s"'])
        data += entry("_dmarc.down.test", "TXT", rcode="SERVFAIL")
        # everything else does not exist
        data += ("ENTRY_BEGIN\nMATCH opcode\nADJUST copy_id copy_query\n"
                 "REPLY QR AA NXDOMAIN\nSECTION QUESTION\ninvalid. IN A\n"
                 "SECTION AUTHORITY\n"
                 "test. 300 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n"
                 "ENTRY_END\n")
        cls.datafile = os.path.join(cls.dir, "auth.data")
        with open(cls.datafile, "w") as f:
            f.write(data)
        cls.dns = DnsServer(cls.datafile)
        cls.server = "127.0.0.1:%d" % cls.dns.port

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def spf(self, ip, sender):
        return run([AUTHTOOL, "spf", "--dns", self.server, ip, "helo.test", sender]).strip()

    def test_spf(self):
        self.assertRegex(self.spf("127.0.0.5", "a@spf.test"),
                         r"^pass domain=spf.test mechanism=a:mail.spf.test ")
        self.assertRegex(self.spf("127.0.0.7", "a@spf.test"),
                         r"^pass .*mechanism=include:inc.spf.test ")
        self.assertRegex(self.spf("127.0.0.8", "a@spf.test"), r"^fail .*mechanism=-all ")
        # strings of one record are joined; other TXT records ignored
        self.assertRegex(self.spf("127.0.0.9", "a@long.spf.test"),
                         r"^pass .*mechanism=ip4:127.0.0.9 ")
        self.assertRegex(self.spf("127.0.0.9", "a@nodata.spf.test"), r"^none ")
        self.assertRegex(self.spf("127.0.0.9", "a@nowhere.spf.test"), r"^none ")
        self.assertRegex(self.spf("127.0.0.9", "a@temp.spf.test"), r"^temperror ")
        # two NXDOMAIN and one NODATA: over the void-lookup limit
        self.assertRegex(self.spf("127.0.0.9", "a@voids.spf.test"),
                         r"^permerror .*more than 2 void lookups")

    def test_dkim_and_dmarc(self):
        keys = ["example.test:%s:%s" % (s, os.path.join(self.dir, s + ".pem"))
                for s in ("rsa", "ed")]
        signed = subprocess.run([AUTHTOOL, "sign"] + keys, input=MESSAGE,
                                stdout=subprocess.PIPE, check=True).stdout
        out = run([AUTHTOOL, "verify", "--dns", self.server], signed).splitlines()
        self.assertTrue(out[0].startswith("pass d=example.test s=rsa a=rsa-sha256"), out)
        self.assertTrue(out[1].startswith("pass d=example.test s=ed a=ed25519-sha256"), out)
        self.assertEqual(out[2], "from=example.test")
        # a selector that is revoked, and one that does not exist
        gone = signed.replace(b"s=rsa;", b"s=gone;").replace(b"s=ed;", b"s=none;")
        out = run([AUTHTOOL, "verify", "--dns", self.server], gone).splitlines()
        self.assertIn("reason=key revoked", out[0])
        self.assertIn("reason=no key for signature", out[1])

        dmarc = [AUTHTOOL, "dmarc", "--dns", self.server]
        self.assertRegex(run(dmarc + ["-d", "example.test"], MESSAGE),
                         r"^pass policy=reject disposition=none domain=example.test ")
        # adkim=s: a subdomain's signature is not aligned
        self.assertRegex(run(dmarc + ["-d", "mail.example.test"], MESSAGE),
                         r"^fail policy=reject disposition=reject ")
        self.assertRegex(run(dmarc, MESSAGE.replace(b"example.test>", b"down.test>")),
                         r"^temperror ")
        self.assertRegex(run(dmarc, MESSAGE.replace(b"example.test>", b"other.test>")),
                         r"^none ")


if __name__ == "__main__":
    unittest.main()
