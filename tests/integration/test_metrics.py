"""The metrics endpoint scraped by real clients: Python's urllib (told to
use no proxy) and a Prometheus server (Debian's prometheus, on loopback,
scraping every second). tests/integration/metrics_serve.c serves a known
run; the values must come back through Prometheus's query API, which
also proves that its OpenMetrics parser accepts what we render (the
helper's log names the format Prometheus was served)."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import unittest
import urllib.error
import urllib.parse
import urllib.request

from harness import MAILSERVER, SLOW, free_port, wait_for

SERVE = os.path.join(os.path.dirname(MAILSERVER), "tests", "metrics_serve")
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url, headers=None, method="GET"):
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with NO_PROXY.open(req, timeout=10 * SLOW) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


class MetricsScrapeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(SERVE):
            if "MAILSERVER_BIN" in os.environ:
                raise AssertionError("%s not built (make integration builds it)" % SERVE)
            raise unittest.SkipTest("%s not built" % SERVE)
        cls.dir = tempfile.mkdtemp(prefix="ms-metrics-")
        cls.errlog = open(os.path.join(cls.dir, "serve.log"), "w+")
        cls.serve = subprocess.Popen([SERVE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=cls.errlog, text=True)
        line = cls.serve.stdout.readline()
        m = re.match(r"port (\d+)", line)
        if not m:
            cls.tearDownClass()
            raise AssertionError("metrics_serve did not start: %r" % line)
        cls.url = "http://127.0.0.1:%s/metrics" % m.group(1)
        cls.port = int(m.group(1))

    @classmethod
    def tearDownClass(cls):
        cls.serve.stdin.close()
        cls.serve.wait(30 * SLOW)
        cls.errlog.close()
        shutil.rmtree(cls.dir, ignore_errors=True)
        assert cls.serve.returncode == 0, cls.serve.returncode

    def served_log(self):
        self.errlog.flush()
        with open(self.errlog.name) as f:
            return f.read()

    def test_urllib_text_and_openmetrics(self):
        status, headers, body = fetch(self.url)
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        self.assertIn("\nmailserver_connections_total 7\n", body)
        self.assertIn('mailserver_rejections_total{reason="dnsbl"} 2\n', body)
        self.assertIn("mailserver_commit_latency_seconds_count 3\n", body)
        self.assertIn("mailserver_queue_bytes 1234.5\n", body)
        self.assertIn('mailserver_destination_concurrency{destination="example.org"} 4\n', body)
        status, headers, body = fetch(self.url, {"Accept": "application/openmetrics-text"})
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("application/openmetrics-text"))
        self.assertTrue(body.endswith("# EOF\n"))
        self.assertEqual(fetch(self.url.replace("/metrics", "/"))[0], 404)
        self.assertEqual(fetch(self.url, method="POST")[0], 405)

    def test_prometheus_scrapes_known_values(self):
        if shutil.which("prometheus") is None:
            self.skipTest("prometheus not installed")
        web = free_port()
        data = os.path.join(self.dir, "tsdb")
        conf = os.path.join(self.dir, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: mailserver\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % self.port)
        plog = open(os.path.join(self.dir, "prometheus.log"), "w")
        prom = subprocess.Popen(["prometheus", "--config.file=" + conf,
                                 "--storage.tsdb.path=" + data,
                                 "--web.listen-address=127.0.0.1:%d" % web],
                                stdout=plog, stderr=subprocess.STDOUT)
        api = "http://127.0.0.1:%d/api/v1/" % web

        def query(expr):
            status, _, body = fetch(api + "query?query=" + urllib.parse.quote(expr))
            if status != 200:
                return None
            result = json.loads(body)["data"]["result"]
            return float(result[0]["value"][1]) if result else None

        try:
            def scraped():
                if prom.poll() is not None:
                    raise AssertionError("prometheus exited %s" % prom.returncode)
                try:
                    return query('up{job="mailserver"}') == 1
                except OSError:
                    return False
            wait_for(scraped, 30, "prometheus to scrape the endpoint")
            _, _, targets = fetch(api + "targets")
            target = json.loads(targets)["data"]["activeTargets"][0]
            self.assertEqual(target["health"], "up", target)
            self.assertEqual(target["lastError"], "")
            self.assertEqual(query("mailserver_connections_total"), 7)
            self.assertEqual(query('mailserver_rejections_total{reason="dnsbl"}'), 2)
            self.assertEqual(query('mailserver_rejections_total{reason="relay_denied"}'), 1)
            self.assertEqual(query('mailserver_rejections_total{reason="other"}'), 0)
            self.assertEqual(query("mailserver_commit_latency_seconds_count"), 3)
            self.assertEqual(query('mailserver_commit_latency_seconds_bucket{le="0.005"}'), 3)
            self.assertEqual(query('mailserver_commit_latency_seconds_bucket{le="0.0025"}'), 0)
            self.assertAlmostEqual(query("mailserver_commit_latency_seconds_sum"), 0.009)
            self.assertEqual(query("mailserver_sessions"), 5)
            self.assertEqual(query("mailserver_queue_bytes"), 1234.5)
            self.assertEqual(query('mailserver_destination_concurrency{destination="example.net"}'), 1)
            # Prometheus asked for OpenMetrics and got it.
            self.assertIn("(openmetrics)", self.served_log())
        finally:
            prom.terminate()
            try:
                prom.wait(30 * SLOW)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
            plog.close()


if __name__ == "__main__":
    unittest.main()
