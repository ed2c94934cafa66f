"""The milter client against OpenDKIM (Debian's opendkim 2.11) as a milter,
driven by tests/tools/filter_driver as the SMTP session will drive it: for
an authenticated client it signs (a DKIM-Signature inserted on top, which
dkimpy verifies on the message with the header change carried out); for
anyone else it verifies, with its keys from a file (no DNS), and adds
Authentication-Results: pass for the message it signed, fail once the body
changed. (A milter that is down: test_milter.py and test_milter_rspamd.py.)
"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from filter_driver import message_file, run, session_script
from harness import MAILCTL, ROOT
from milter_daemons import OpenDkim, opendkim_available

DKIMPY = ["/usr/bin/python3", os.path.join(ROOT, "tests", "integration", "dkimpy_tool.py")]
MESSAGE = (b"From: Carol <carol@example.org>\r\nTo: bob@example.net\r\n"
           b"Subject: signed by opendkim\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
           b"Message-ID: <odk.1@example.org>\r\n\r\n"
           b"Hello Bob,\r\n\r\nthis one is signed on its way out.\r\n")
AUTH_MACROS = {"{auth_type}": "PLAIN", "{auth_authen}": "carol@example.org"}


def dkimpy_available():
    try:
        return subprocess.run(["/usr/bin/python3", "-c", "import dkim"],
                              capture_output=True, timeout=60).returncode == 0
    except OSError:
        return False


@unittest.skipUnless(opendkim_available(), "opendkim is not installed")
class OpenDkimMilterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ms-odktest-")
        key = os.path.join(cls.tmp, "odk.pem")
        out = subprocess.run([MAILCTL, "dkim-keygen", "example.org", "odk", "--out", key],
                             capture_output=True, check=True, timeout=60).stdout.decode()
        cls.txt = "".join(re.findall(r'"([^"]*)"', out))
        cls.zone = os.path.join(cls.tmp, "zone")
        with open(cls.zone, "w") as f:
            f.write("odk._domainkey.example.org TXT %s\n" % cls.txt)
        cls.opendkim = OpenDkim("example.org", "odk", key,
                                "odk._domainkey.example.org %s\n" % cls.txt).start()

    @classmethod
    def tearDownClass(cls):
        cls.opendkim.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def session(self, data, endpoint=None, args=(), **kw):
        f = message_file(data, self.tmp)
        return run("milter", list(args) + [endpoint or self.opendkim.endpoint],
                   session_script(f, **kw))

    def signed(self):
        r = self.session(MESSAGE, sender="carol@example.org", macros=AUTH_MACROS)
        eom = r.stage("eom")
        self.assertEqual((eom["action"], eom["default"]), ("accept", 0))
        sigs = [m for m in eom["mods"] if m["name"] == "DKIM-Signature"]
        self.assertEqual(len(sigs), 1, eom["mods"])
        self.assertEqual((sigs[0]["kind"], sigs[0]["index"]), ("insert_header", 0))
        self.assertIn("d=example.org; s=odk;", sigs[0]["value"])
        # The header section with the change made, then the body as sent.
        head = eom["applied"].encode("latin-1")
        self.assertTrue(head.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;"), head)
        return head + b"\r\n" + MESSAGE.split(b"\r\n\r\n", 1)[1]

    @unittest.skipUnless(dkimpy_available(), "python3-dkim is not installed")
    def test_signs_for_authenticated_client_dkimpy_verifies(self):
        msg = self.signed()
        out = subprocess.run(DKIMPY + ["verify", self.zone], input=msg, capture_output=True,
                             timeout=60)
        self.assertEqual(out.stdout.decode().split(), ["pass"], out.stderr)
        tampered = msg.replace(b"signed on its way", b"changed on its way")
        out = subprocess.run(DKIMPY + ["verify", self.zone], input=tampered,
                             capture_output=True, timeout=60)
        self.assertEqual(out.stdout.decode().split(), ["fail"])

    def test_verifies_for_everyone_else(self):
        msg = self.signed()
        for data, result in ((msg, "dkim=pass"),
                             (msg.replace(b"Hello Bob", b"Hello Eve"), "dkim=fail")):
            r = self.session(data, sender="carol@example.org")
            eom = r.stage("eom")
            self.assertEqual(eom["action"], "accept")
            ar = [m for m in eom["mods"] if m["name"] == "Authentication-Results"]
            self.assertEqual(len(ar), 1, eom["mods"])
            self.assertIn(result, ar[0]["value"])
            self.assertIn("header.d=example.org", ar[0]["value"])
            self.assertTrue(ar[0]["value"].strip().startswith("mx.test;"), ar[0])
            self.assertEqual([m for m in eom["mods"] if m["name"] == "DKIM-Signature"], [])


if __name__ == "__main__":
    unittest.main()
