"""SIGHUP changes delivery_threads: the pool grows at once and shrinks as
its threads finish their jobs, counted in the daemon's own threads
(/proc/PID/task) and in mailserver_delivery_threads, while mail goes on
being delivered and sessions stay open across the reloads."""
import os
import signal
import unittest

from harness import Server, free_port, greet, send_message, wait_for
from ops import parse, scrape, value


class DeliveryPoolReloadTest(unittest.TestCase):
    def setUp(self):
        self.mport = free_port()
        self.srv = Server(self.extra(4)).start()

    def tearDown(self):
        try:
            self.assertEqual(self.srv.stop(), 0)
        finally:
            self.srv.cleanup()

    def extra(self, n):
        return "metrics_listen = 127.0.0.1:%d\ndelivery_threads = %d\n" % (self.mport, n)

    def threads(self):
        return len(os.listdir("/proc/%d/task" % self.srv.proc.pid))

    def gauge(self):
        return value(parse(scrape(self.mport)), "mailserver_delivery_threads")

    def reload(self, n):
        base = open(self.srv.conf).read().split("metrics_listen")[0]
        self.srv.write_config(base + self.extra(n))
        self.srv.signal(signal.SIGHUP)
        self.srv.wait_log("delivery: delivery_threads %d:" % n)

    def delivered(self):
        qid = send_message(self.srv.port, "a@example.org", "alice@localhost")
        wait_for(lambda: qid in self.srv.delivered_ids(), 20, "delivery of %s" % qid)

    def test_grow_and_shrink(self):
        def up():
            try:
                return self.gauge() == 4
            except OSError:  # the endpoint starts after the SMTP listeners
                return False
        wait_for(up, 10, "the metrics endpoint")
        self.delivered()
        open_session, _ = greet(self.srv.port)
        start = self.threads()
        # 4 = 1 local + 3 remote; 12 = 3 local + 9 remote; 1 = 1 + 1.
        self.reload(12)
        self.assertEqual(self.threads(), start + 8)
        self.assertEqual(self.gauge(), 12)
        self.delivered()
        self.reload(1)
        wait_for(lambda: self.threads() == start - 2, 10, "the surplus threads to end")
        self.assertEqual(self.gauge(), 2)
        self.delivered()
        # The session opened before the reloads still works.
        self.assertEqual(open_session.cmd("NOOP")[0], 250)
        open_session.close()
        self.reload(4)
        self.assertEqual(self.threads(), start)
        self.delivered()


if __name__ == "__main__":
    unittest.main()
