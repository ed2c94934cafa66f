"""Mailed TLS reports (RFC 8460 3 and 5.3) through the daemon.

ldns-testns serves the _smtp._tls TXT records; mail to the policy domains
goes by routes to a loopback peer with STARTTLS (tls_outbound = may), so
each delivery is one counted TLS result. The rua addresses are at a local
domain: the report lands in a Maildir and is read back (MIME structure,
headers, the gunzipped JSON against `mailctl tls-report --json`). One rua
is remote (a route to a second peer) to show that the report's own
delivery says `TLS-Required: No` and is not counted.

The daily run is shown with the daemon's wall clock a day on
(MSFAULT_REALTIME_OFFSET, tests/fault/msfault.c): at start it mails the
day before's reports, not twice after a restart, and not at all with
tls_report_send = no.
"""
import email
import email.policy
import gzip
import json
import os
import re
import shutil
import tempfile
import time
import unittest

from faults import fault_env, fault_lib
from harness import DnsServer, Server, test_cert, wait_for
from outbound import delivery, submit
from peers import Peer
from testns_zone import entry, nxdomain_for_the_rest, txt_strings

RUA = "tlsrpt@reports.test"


def zone(directory):
    path = os.path.join(directory, "zone.data")
    text = [
        entry("_smtp._tls.rpt.test", "TXT",
              [txt_strings("v=TLSRPTv1; rua=mailto:%s" % RUA)]),
        # not one valid record: a second TLSRPTv1, then a bad rua
        entry("_smtp._tls.two.test", "TXT",
              [txt_strings("v=TLSRPTv1; rua=mailto:%s" % RUA),
               txt_strings("v=TLSRPTv1; rua=mailto:other@reports.test")]),
        entry("_smtp._tls.bad.test", "TXT",
              [txt_strings("v=TLSRPTv1; rua=mailto:%s; rua=mailto:%s" % (RUA, RUA))]),
        entry("_smtp._tls.https.test", "TXT",
              [txt_strings("v=TLSRPTv1; rua=https://reports.test/tlsrpt")]),
        entry("_smtp._tls.remote.test", "TXT",
              [txt_strings("v=TLSRPTv1; rua=mailto:r@sink.test")]),
        nxdomain_for_the_rest(),
    ]
    with open(path, "w") as f:
        f.write("".join(text))
    return path


DOMAINS = ("rpt.test", "two.test", "bad.test", "https.test", "none.test",
           "remote.test")


def make_server(dns_port, peer_ports, sink_port, send="yes", hostname="relay.test"):
    """Each domain's route goes to a peer of its own: a connection kept
    for one is never reused for another, so each counts its own result."""
    routes = " ".join("%s=[127.0.0.1]:%d" % (d, peer_ports[d]) for d in DOMAINS)
    routes += " sink.test=[127.0.0.1]:%d" % sink_port
    srv = Server("local_domains = reports.test\ntls_outbound = may\n"
                 "routes = %s\ntls_report_send = %s\n" % (routes, send),
                 hostname=hostname)
    with open(srv.conf) as f:
        text = f.read()
    srv.write_config(text.replace("dns_server = 127.0.0.1:1\n",
                                  "dns_server = 127.0.0.1:%d\n" % dns_port))
    return srv


def set_send(srv, value):
    with open(srv.conf) as f:
        text = f.read()
    srv.write_config(re.sub(r"tls_report_send = \w+", "tls_report_send = " + value, text))


def today(offset_days=0):
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() + offset_days * 86400))


def report_files(srv):
    return srv.maildir_files(RUA)


def read_report(path):
    with open(path, "rb") as f:
        return email.message_from_bytes(f.read(), policy=email.policy.compat32)


class ReportMailTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ms-tlsrpt-")
        cls.dns = DnsServer(zone(cls.tmp))
        cert = test_cert("peer.test")
        cls.peers = {d: Peer("127.0.0.1", starttls=cert).start() for d in DOMAINS}
        cls.sink = Peer("127.0.0.1", starttls=cert).start()

    @classmethod
    def tearDownClass(cls):
        for p in cls.peers.values():
            p.stop()
        cls.sink.stop()
        cls.dns.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def server(self, **kw):
        srv = make_server(self.dns.port, {d: p.port for d, p in self.peers.items()},
                          self.sink.port, **kw)
        self.addCleanup(srv.cleanup)
        return srv

    def deliver(self, srv, rcpt):
        qid = submit(srv.port, "sender@reports.test", rcpt)
        d = delivery(srv, qid, rcpt)
        self.assertEqual(d["status"], "sent", d)

    def check_report(self, srv, path, domain, date):
        msg = read_report(path)
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "tlsrpt")
        self.assertEqual(msg["TLS-Report-Domain"], domain)
        self.assertEqual(msg["TLS-Report-Submitter"], "relay.test")
        self.assertEqual(msg["TLS-Required"], "No")
        self.assertEqual(msg["From"], "postmaster@relay.test")
        self.assertEqual(msg["To"], RUA)
        self.assertRegex(" ".join(msg["Subject"].split()),
                         r"^Report Domain: %s Submitter: relay\.test "
                         r"Report-ID: <[^<>@ ]+@relay\.test>$" % re.escape(domain))
        parts = msg.get_payload()
        self.assertEqual([p.get_content_type() for p in parts],
                         ["text/plain", "application/tlsrpt+gzip"])
        name = parts[1].get_filename()
        self.assertRegex(name, r"^relay\.test!%s!\d+!\d+\.json\.gz$" % re.escape(domain))
        b, e = (int(x) for x in name[:-len(".json.gz")].split("!")[2:])
        self.assertEqual(time.strftime("%Y-%m-%d", time.gmtime(b)), date)
        self.assertEqual(e - b, 86399)
        got = json.loads(gzip.decompress(parts[1].get_payload(decode=True)))
        want = json.loads(srv.mailctl("tls-report", "--json", domain, "--date", date).stdout)
        self.assertEqual(got, want)
        self.assertEqual(got["policies"][0]["policy"]["policy-domain"], domain)
        self.assertGreaterEqual(
            got["policies"][0]["summary"]["total-successful-session-count"], 1)
        return msg

    def wait_queue_empty(self, srv):
        wait_for(lambda: not srv.queue_json()["messages"], 30, "an empty queue")

    def test_send_by_hand(self):
        srv = self.server()
        srv.start()
        for d in DOMAINS:
            self.deliver(srv, "u@" + d)
        date = today()
        r = srv.mailctl("tls-report", "--send", "rpt.test", "--date", date, check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"^ok: sent to <%s> \([0-9A-F]{13}\)" % re.escape(RUA))
        wait_for(lambda: len(report_files(srv)) == 1, 30, "the report in the Maildir")
        self.check_report(srv, report_files(srv)[0], "rpt.test", date)

        # once per domain and day
        r = srv.mailctl("tls-report", "--send", "rpt.test", "--date", date, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("was sent before", r.stderr)

        # no record, no single valid record, only https: nothing is sent
        for dom, why in (("none.test", "no _smtp._tls.none.test TXT record"),
                         ("two.test", "no single valid TLSRPTv1 record"),
                         ("bad.test", "no single valid TLSRPTv1 record"),
                         ("https.test", "no mailto: address")):
            r = srv.mailctl("tls-report", "--send", dom, "--date", date, check=False)
            self.assertEqual(r.returncode, 1, dom)
            self.assertIn(why, r.stderr, dom)
        # a day without results
        r = srv.mailctl("tls-report", "--send", "rpt.test", "--date", today(-3), check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no TLS results recorded", r.stderr)
        self.wait_queue_empty(srv)
        self.assertEqual(len(report_files(srv)), 1)

        # a remote rua: the report goes with TLS-Required: No and its
        # session is not counted for sink.test
        before = len(self.sink.messages)
        r = srv.mailctl("tls-report", "--send", "remote.test", "--date", date, check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        (m,) = self.sink.wait_messages(before + 1)[before:]
        self.assertIn(b"\r\nTLS-Required: No\r\n", m.data)
        self.wait_queue_empty(srv)
        rep = json.loads(srv.mailctl("tls-report", "--json", "sink.test", "--date", date).stdout)
        self.assertEqual(rep["policies"], [])
        self.assertEqual(srv.stop(), 0)

    def test_send_off(self):
        srv = self.server(send="no")
        srv.start()
        self.deliver(srv, "u@rpt.test")
        r = srv.mailctl("tls-report", "--send", "rpt.test", "--date", today(), check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("tls_report_send is no", r.stderr)
        self.assertEqual(report_files(srv), [])
        self.assertEqual(srv.stop(), 0)

    @unittest.skipUnless(fault_lib(), "MSFAULT_LIB not set (run through make integration)")
    def test_daily_run(self):
        srv = self.server()
        srv.start()
        self.deliver(srv, "u@rpt.test")
        self.deliver(srv, "u@none.test")
        self.assertEqual(srv.stop(), 0)
        date = today()
        tomorrow = fault_env(MSFAULT_REALTIME_OFFSET=str(86400))
        mark = "tls reports of %s: 2 domains, " % date

        # off: the daily run mails nothing
        set_send(srv, "no")
        srv.start(env=tomorrow)
        srv.wait_log("none mailed (tls_report_send = no)")
        self.assertEqual(srv.stop(), 0)
        self.assertEqual(report_files(srv), [])

        # on: at start, the day before's report (rpt.test; none.test has
        # no record)
        set_send(srv, "yes")
        srv.start(env=tomorrow)
        srv.wait_log(mark + "1 sent")
        wait_for(lambda: len(report_files(srv)) == 1, 30, "the daily report")
        self.check_report(srv, report_files(srv)[0], "rpt.test", date)
        self.wait_queue_empty(srv)
        self.assertEqual(srv.stop(), 0)

        # a restart sends nothing again
        srv.start(env=tomorrow)
        srv.wait_log(mark + "0 sent")
        self.assertEqual(srv.queue_json()["messages"], [])
        self.assertEqual(len(report_files(srv)), 1)
        self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    unittest.main()
