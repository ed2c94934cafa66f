"""The milter client against ClamAV (Debian's clamd and clamav-milter 1.4)
driven by tests/tools/filter_driver as the SMTP session will drive it:
clamd loads a one-line local signature database (the EICAR test string)
and starts in a fraction of a second, so the real scanner runs in every
`make test`. The EICAR string in the body, or in a base64 attachment
(clamd decodes MIME), is rejected at the end of data with the
signature's name; a clean message gets clamav-milter's headers; clamd
down means clamav-milter's own temporary failure.
"""
import base64
import shutil
import tempfile
import time
import unittest

from filter_driver import message_file, run, session_script
from milter_daemons import EICAR, ClamAv, clamav_available

CLEAN = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: clean\r\n\r\nNothing here.\r\n"


def attachment(payload):
    return (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: see attached\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
            b"--b1\r\nContent-Type: text/plain\r\n\r\nThe file.\r\n"
            b"--b1\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; filename=\"x.com\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" +
            base64.encodebytes(payload).replace(b"\n", b"\r\n") + b"--b1--\r\n")


@unittest.skipUnless(clamav_available(), "clamav-daemon or clamav-milter is not installed")
class ClamAvMilterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ms-clamtest-")
        t0 = time.monotonic()
        cls.clamav = ClamAv().start()
        cls.started_in = time.monotonic() - t0

    @classmethod
    def tearDownClass(cls):
        cls.clamav.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def session(self, data, endpoint=None, args=()):
        f = message_file(data, self.tmp)
        return run("milter", list(args) + [endpoint or self.clamav.endpoint],
                   session_script(f))

    def test_eicar_in_body_and_attachment_is_rejected(self):
        for data in (b"Subject: test\r\n\r\n" + EICAR + b"\r\n", attachment(EICAR)):
            eom = self.session(data).stage("eom")
            self.assertEqual((eom["action"], eom["default"]), ("reject", 0))
            self.assertEqual(eom["reply"], "550 5.7.1 Virus found: %s.UNOFFICIAL" %
                             ClamAv.SIGNATURE)
            self.assertEqual(eom["milter"], self.clamav.endpoint)

    def test_clean_message_gets_headers(self):
        for data in (CLEAN, attachment(b"just some bytes\n" * 100)):
            eom = self.session(data).stage("eom")
            self.assertEqual(eom["action"], "accept")
            added = {m["name"]: m["value"].strip() for m in eom["mods"]
                     if m["kind"] == "add_header"}
            self.assertEqual(added.get("X-Virus-Status"), "Clean", eom["mods"])
            self.assertTrue(added.get("X-Virus-Scanned", "").startswith("clamav-milter"))
            self.assertIn("X-Virus-Status: Clean\r\n", eom["applied"])

    def test_zz_clamd_down_is_a_temporary_failure(self):
        # Runs last (unittest sorts by name): clamd stops, clamav-milter
        # stays and answers for it (its OnFail default: Defer).
        self.clamav.clamd.stop()
        eom = self.session(CLEAN).stage("eom")
        self.assertEqual((eom["action"], eom["default"]), ("tempfail", 0), eom)
        self.assertTrue(eom["reply"].startswith("4"), eom)


if __name__ == "__main__":
    unittest.main()
