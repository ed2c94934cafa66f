"""Faults, all in one place (issue 8: nothing repeated, looped or
stranded). Every test makes its fault itself and is bounded in time:
  - DNS servers that are down, silent, slow (answers after 3 s) or answer
    garbage (faults.DnsFault in front of ldns-testns);
  - SMTP peers that never greet, or drop the connection mid-DATA or after
    the final "." (peers.Peer);
  - a small tmpfs under queue_dir or mail_dir that fills up (faults.Tmpfs,
    mounted in the test run's private mount namespace).
"""
import email
import glob
import json
import os
import re
import signal
import shutil
import subprocess
import tempfile
import time
import unittest

from faults import DnsFault, Tmpfs, fault_env, fault_lib
from harness import (DnsServer, Server, free_port, greet, send_message as send,
                     wait_for, SLOW, MAILSERVER)
from peers import Peer

HERE = os.path.dirname(os.path.abspath(__file__))
FAULTS_DATA = os.path.join(HERE, "dns", "faults.data")


def with_dns(srv, port):
    """Points srv's config at the DNS server on port."""
    text = open(srv.conf).read().replace("dns_server = 127.0.0.1:1",
                                         "dns_server = 127.0.0.1:%d" % port)
    srv.write_config(text)


def rcpt_states(srv, qid):
    q = {m["id"]: m for m in srv.queue_json()["messages"]}
    if qid not in q:
        return {}
    return {r["address"]: r for r in q[qid]["recipients"]}


class DnsFaultTest(unittest.TestCase):
    """A resolver that is down, silent, slow or broken: slow answers are
    used; the others defer (4.4.3) in bounded time, and the server goes on."""

    @classmethod
    def setUpClass(cls):
        cls.dns = DnsServer(FAULTS_DATA)
        cls.mx_port = free_port("127.0.0.2")
        cls.peer = Peer("127.0.0.2", cls.mx_port).start()

    @classmethod
    def tearDownClass(cls):
        cls.peer.stop()
        cls.dns.stop()

    def run_with(self, mode, extra=""):
        srv = Server("smtp_port = %d\nretry_min = 1h\nretry_max = 2h\n%s"
                     % (self.mx_port, extra))
        self.addCleanup(srv.cleanup)
        fault = DnsFault(self.dns.port, mode, delay=3.0)
        fault.__enter__()
        self.addCleanup(fault.__exit__, None, None, None)
        with_dns(srv, fault.port)
        srv.start()
        return srv, fault

    def test_slow_resolver_answers_are_used(self):
        srv, _ = self.run_with("slow")    # dns_timeout 2s, dns_attempts 2
        before = len(self.peer.messages)
        t0 = time.monotonic()
        send(srv.port, "a@localhost", "u@slow.test")
        self.peer.wait_messages(before + 1, timeout=40 * SLOW)
        # three questions (MX, A, AAAA), each answered after 3 s
        self.assertGreater(time.monotonic() - t0, 8)
        self.assertEqual(srv.stop(), 0)

    def defers_in_time(self, mode, bound):
        srv, fault = self.run_with(mode, "dns_timeout = 1s\ndns_attempts = 2\n")
        t0 = time.monotonic()
        qid = send(srv.port, "a@localhost", "u@slow.test")
        st = wait_for(lambda: rcpt_states(srv, qid).get("u@slow.test", {}).get("state")
                      == "deferred" and rcpt_states(srv, qid), bound, "deferral")
        self.assertLess(time.monotonic() - t0, bound * SLOW)
        self.assertIn("Name service error", st["u@slow.test"]["diagnostic"])
        c, _ = greet(srv.port)          # the server goes on
        self.assertEqual(c.cmd("NOOP")[0], 250)
        c.close()
        self.assertEqual(srv.stop(), 0)
        return fault

    def test_resolver_down_defers(self):
        self.defers_in_time("down", 15)

    def test_silent_resolver_defers_in_bounded_time(self):
        fault = self.defers_in_time("silent", 20)
        self.assertGreaterEqual(fault.queries, 2)

    def test_garbage_answers_defer(self):
        fault = self.defers_in_time("garbage", 20)
        self.assertGreaterEqual(fault.queries, 1)


class SelfMxTest(unittest.TestCase):
    """An MX host at one of the server's own listening addresses is the
    server itself, whatever its name: the mail bounces at once (5.4.6)
    instead of going round in a loop."""

    def test_mx_at_own_listen_address(self):
        dns = DnsServer(FAULTS_DATA)
        self.addCleanup(dns.stop)
        port = free_port()
        mx_port = free_port("127.0.0.9")
        srv = Server("smtp_port = %d\n" % mx_port, port=port, hostname="relay.a.test",
                     listen="127.0.0.1:%d;127.0.0.9:%d" % (port, mx_port))
        self.addCleanup(srv.cleanup)
        with_dns(srv, dns.port)
        srv.start()
        send(srv.port, "sender@localhost", "u@selfaddr.test")
        files = wait_for(lambda: srv.maildir_files("sender@localhost"), 30, "bounce")
        with open(files[0], "rb") as f:
            report = f.read()
        self.assertIn(b"Status: 5.4.6", report)
        self.assertIn(b"loops back to myself", report)
        stats = json.loads(srv.mailctl("--json", "stats").stdout)
        self.assertEqual(stats["received"], 2)      # the message and its bounce
        self.assertEqual(srv.stop(), 0)


USERS = "alice@localhost:\ncarol@localhost:\n"


def local_server(extra, aliases="", **kw):
    """A server with users alice and carol and the given aliases."""
    srv = Server(extra, **kw)
    with open(os.path.join(srv.dir, "users"), "w") as f:
        f.write(USERS)
    with open(os.path.join(srv.dir, "aliases"), "w") as f:
        f.write(aliases)
    with open(srv.conf, "a") as f:
        f.write("users_file = %s/users\naliases_file = %s/aliases\n" % (srv.dir, srv.dir))
    return srv


def peer_ids(peer):
    """Queue ids in the Received headers of the messages a peer got."""
    ids = []
    for m in list(peer.messages):
        found = re.search(rb"\bid ([0-9A-F]{13})\b", m.data)
        if found:
            ids.append(found.group(1).decode())
    return ids


def rcpt_lines(peer):
    return [l for l in peer.commands() if l.upper().startswith("RCPT")]


def stays(cond, seconds):
    """cond() holds for the whole window (absence of an event over time:
    a loop or a repeat would show within it)."""
    end = time.monotonic() + seconds * SLOW
    while time.monotonic() < end:
        if not cond():
            return False
        time.sleep(0.1)
    return cond()


def send_code(port, sender, rcpts, body):
    """One transaction; returns (code, text) of the reply to the data."""
    c, _ = greet(port)
    try:
        assert c.cmd("MAIL FROM:<%s>" % sender)[0] == 250
        for r in rcpts:
            assert c.cmd("RCPT TO:<%s>" % r)[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(body + b".\r\n")
        code, lines = c.reply()
        return code, lines[0]
    finally:
        c.close()


class NoticeLoopTest(unittest.TestCase):
    """A notice that fails is never answered with another notice: here a
    failure of null-sender mail goes to postmaster, who is aliased to a
    remote address that answers 550. It is logged and dropped."""

    def test_postmaster_forwarded_to_a_bouncing_address(self):
        port = free_port("127.0.0.10")
        peer = Peer("127.0.0.10", port, rcpt=lambda a: "550 5.1.1 no such user").start()
        self.addCleanup(peer.stop)
        srv = local_server("routes = remote.test=[127.0.0.10]:%d\nretry_min = 1s\n"
                           "retry_max = 1s\n" % port,
                           aliases="postmaster@localhost: pm@remote.test\n")
        self.addCleanup(srv.cleanup)
        srv.start()
        send(srv.port, "", "x@remote.test", b"Subject: from <>\r\n\r\nx\r\n")
        wait_for(lambda: len(rcpt_lines(peer)) >= 2, 20, "the notice to reach pm@remote.test")
        wait_for(lambda: srv.queue_json()["messages"] == [], 20, "the queue to empty")
        srv.wait_log("no notice of a notice")
        # nothing goes round: no third attempt, ever
        self.assertTrue(stays(lambda: len(rcpt_lines(peer)) == 2, 3), rcpt_lines(peer))
        self.assertEqual(srv.stop(), 0)


class AliasTargetTest(unittest.TestCase):
    """Each final target of an alias is a recipient of its own: one that
    fails for a while is retried alone (the others get the message once);
    one that fails for good gets a DSN naming the alias."""

    def test_targets_have_outcomes_of_their_own(self):
        port = free_port("127.0.0.10")
        tries = {"n": 0}

        def rcpt(addr):
            tries["n"] += 1
            return "451 4.3.0 try again" if tries["n"] <= 2 else None
        peer = Peer("127.0.0.10", port, rcpt=rcpt).start()
        self.addCleanup(peer.stop)
        srv = local_server("routes = remote.test=[127.0.0.10]:%d\nretry_min = 1s\n"
                           "retry_max = 1s\n" % port,
                           aliases="team@localhost: alice@localhost, x@remote.test, "
                                   "ghost@localhost\n")
        self.addCleanup(srv.cleanup)
        srv.start()
        qid = send(srv.port, "carol@localhost", "team@localhost", b"Subject: team\r\n\r\nx\r\n")
        msg = peer.wait_messages(1, timeout=30 * SLOW)[0]
        self.assertEqual(msg.rcpts, ["x@remote.test"])
        self.assertIn("ORCPT=rfc822;team@localhost", " ".join(msg.rcpt_params[0]))
        wait_for(lambda: qid not in {m["id"] for m in srv.queue_json()["messages"]}, 20,
                 "the message to leave the queue")
        # alice got it once, though the remote target was tried three times
        self.assertEqual(tries["n"], 3)
        self.assertEqual(len(srv.maildir_files("alice@localhost")), 1)
        # the unknown target bounced, named with the alias
        files = wait_for(lambda: srv.maildir_files("carol@localhost"), 20, "the bounce")
        self.assertEqual(len(files), 1)
        with open(files[0], "rb") as f:
            report = f.read()
        self.assertIn(b"Final-Recipient: rfc822; ghost@localhost", report)
        self.assertIn(b"Original-Recipient: rfc822;team@localhost", report)
        self.assertIn(b"Status: 5.1.1", report)
        self.assertEqual(srv.stop(), 0)


class FullQueueTest(unittest.TestCase):
    """A full queue (map or disk) answers new mail with 452 4.3.1 and keeps
    delivering; no message is delivered twice because it was full; it
    recovers by itself once deliveries are recorded."""

    BIG = b"Subject: big\r\n\r\n" + (b"z" * 998 + b"\r\n") * 200

    def setUp(self):
        self.port = free_port("127.0.0.10")
        self.peer = None

    def tearDown(self):
        if self.peer is not None:
            self.peer.stop()

    def start_peer(self, **kw):
        self.peer = Peer("127.0.0.10", self.port, **kw).start()

    def server(self, extra, **kw):
        srv = local_server("routes = remote.test=[127.0.0.10]:%d hold.test=[127.0.0.1]:9\n"
                           "retry_min = 1s\nretry_max = 2s\nmax_message_size = 2M\n"
                           "delivery_threads = 4\n" % self.port + extra, **kw)
        self.addCleanup(srv.cleanup)
        return srv

    def fill(self, srv, rcpt, limit=400):
        """Messages until the queue is full to the brim: big ones until one
        is refused, then smaller and smaller ones; returns their ids."""
        ids = []
        for lines in (200, 20, 2, 0):
            body = b"Subject: fill\r\n\r\n" + (b"z" * 998 + b"\r\n") * lines
            for _ in range(limit):
                code, text = send_code(srv.port, "alice@localhost", [rcpt], body)
                if code != 250:
                    self.assertEqual(code, 452, text)
                    self.assertTrue(text.startswith("4.3.1"), text)
                    break
                ids.append(text.split()[-1])
            else:
                self.fail("the queue never filled")
        return ids, text

    def assert_once_each(self, ids):
        got = peer_ids(self.peer)
        self.assertEqual(sorted(got), sorted(ids))

    def test_full_map_repeats_nothing(self):
        srv = self.server("queue_map_size = 1M\nqueue_map_max = 1M\n")
        srv.start()
        # mail that will make bounces (new mail) as it is delivered
        mixed = [send(srv.port, "carol@localhost", ["ok%d@remote.test" % i,
                                                     "bad%d@remote.test" % i],
                      b"Subject: m%d\r\n\r\nx\r\n" % i) for i in range(10)]
        wait_for(lambda: srv.logtext().count("status=deferred") >= 20, 20, "deferrals")
        fillers, _ = self.fill(srv, "h@hold.test")
        self.assertIn("recipients made due now", srv.mailctl("flush").stdout)
        self.start_peer(rcpt={"bad": "550 5.1.1 no such user"})
        srv.signal(signal.SIGUSR1)          # flushes work on a full queue
        srv.wait_log("flush:")
        self.assertNotIn("flush: queue", srv.logtext())
        self.peer.wait_messages(10, timeout=30 * SLOW)
        # new mail is still refused, and no delivery is repeated
        code, text = send_code(srv.port, "alice@localhost", ["h@hold.test"], self.BIG)
        self.assertEqual(code, 452, text)
        self.assertTrue(stays(lambda: len(self.peer.messages) == 10, 4))
        self.assert_once_each(mixed)
        # room again: the pending bounces are made
        srv.mailctl("delete", *fillers)
        wait_for(lambda: len(srv.maildir_files("carol@localhost")) == 10, 30, "10 bounces")
        wait_for(lambda: not (set(mixed) & {m["id"] for m in srv.queue_json()["messages"]}),
                 20, "the mixed messages to leave the queue")
        self.assert_once_each(mixed)
        self.assertEqual(srv.stop(), 0)

    def drains_by_itself(self, srv):
        ids, _ = self.fill(srv, "r@remote.test")
        self.start_peer()
        self.peer.wait_messages(len(ids), timeout=60 * SLOW)
        wait_for(lambda: srv.queue_json()["messages"] == [], 30, "the queue to empty")
        # recovered by itself: new mail is taken again
        qid = send(srv.port, "alice@localhost", "r@remote.test", b"Subject: after\r\n\r\nx\r\n")
        self.peer.wait_messages(len(ids) + 1, timeout=30 * SLOW)
        self.assertTrue(stays(lambda: len(self.peer.messages) == len(ids) + 1, 2))
        self.assert_once_each(ids + [qid])
        self.assertEqual(srv.stop(), 0)

    def test_full_map_drains_by_itself(self):
        srv = self.server("queue_map_size = 1M\nqueue_map_max = 1M\n")
        srv.start()
        self.drains_by_itself(srv)

    @unittest.skipUnless(Tmpfs.available(), "needs a private mount namespace (root)")
    def test_full_disk_is_a_full_queue(self):
        with Tmpfs("6m") as fs:
            # the map is far larger than the disk: the disk fills first
            srv = self.server("queue_map_size = 64M\n")
            text = open(srv.conf).read().replace("queue_dir = %s/queue" % srv.dir,
                                                 "queue_dir = %s/queue" % fs.path)
            srv.write_config(text)
            srv.start()
            self.drains_by_itself(srv)

    @unittest.skipUnless(Tmpfs.available(), "needs a private mount namespace (root)")
    def test_full_mail_dir_defers(self):
        with Tmpfs("1m") as fs:
            srv = self.server("")
            text = open(srv.conf).read().replace("mail_dir = %s/mail" % srv.dir,
                                                 "mail_dir = %s/mail" % fs.path)
            srv.write_config(text)
            srv.start()
            fs.fill(leave=64 * 1024)
            qid = send(srv.port, "carol@localhost", "alice@localhost", self.BIG)
            srv.wait_log(qid + ": to=<alice@localhost>, relay=local")
            self.assertIn("status=deferred", srv.logtext())
            self.assertEqual(rcpt_states(srv, qid)["alice@localhost"]["state"], "deferred")
            fs.unfill()
            srv.signal(signal.SIGUSR1)
            files = wait_for(lambda: glob.glob(os.path.join(fs.path, "mail", "localhost",
                                                            "alice", "new", "*")), 20, "mail")
            wait_for(lambda: srv.queue_json()["messages"] == [], 20, "the queue to empty")
            self.assertEqual(len(files), 1)
            self.assertEqual(srv.stop(), 0)


class SlowDestinationTest(unittest.TestCase):
    """A destination whose MX hosts never greet cannot take every delivery
    thread: a healthy destination and local mail are still delivered; and
    one attempt has one time limit over all of its addresses."""

    @classmethod
    def setUpClass(cls):
        cls.dns = DnsServer(FAULTS_DATA)
        cls.mx_port = free_port("127.0.0.6")

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()

    def setUp(self):
        self.hang1 = Peer("127.0.0.6", self.mx_port, hang="greeting").start()
        self.hang2 = Peer("127.0.0.7", self.mx_port, hang="greeting").start()
        self.ok = Peer("127.0.0.8", self.mx_port).start()

    def tearDown(self):
        for p in (self.hang1, self.hang2, self.ok):
            p.stop()

    def server(self, extra):
        srv = local_server("smtp_port = %d\nretry_min = 1h\nretry_max = 2h\n"
                           % self.mx_port + extra)
        self.addCleanup(srv.cleanup)
        with_dns(srv, self.dns.port)
        # hung deliveries must not hold the stop for long
        srv.write_config(open(srv.conf).read().replace("shutdown_timeout = 10s",
                                                       "shutdown_timeout = 2s"))
        srv.start()
        return srv

    def test_hung_destination_leaves_threads_for_others(self):
        srv = self.server("delivery_threads = 4\nrelay_command_timeout = 60s\n")
        for i in range(6):
            send(srv.port, "carol@localhost", "u%d@hang.test" % i, b"Subject: h\r\n\r\nx\r\n")
        wait_for(lambda: self.hang1.connections + self.hang2.connections >= 2, 10,
                 "deliveries to hang on the hung MX hosts")
        send(srv.port, "carol@localhost", "v@ok.test", b"Subject: ok\r\n\r\nx\r\n")
        send(srv.port, "carol@localhost", "alice@localhost", b"Subject: local\r\n\r\nx\r\n")
        self.ok.wait_messages(1, timeout=10 * SLOW)
        wait_for(lambda: srv.maildir_files("alice@localhost"), 10, "local mail")
        # still hung: only a share of the threads
        self.assertLessEqual(self.hang1.connections + self.hang2.connections, 2)
        self.assertEqual(srv.stop(), 0)

    def test_domains_through_one_hung_host_share_its_limit(self):
        # Two domains routed to one host that never greets share that
        # host's limit (2 of the 3 remote threads): between them they
        # cannot take every thread, and a healthy destination goes at once.
        srv = self.server("delivery_threads = 4\nrelay_command_timeout = 60s\n"
                          "routes = a.test=[127.0.0.6]:%d b.test=[127.0.0.6]:%d\n"
                          % (self.mx_port, self.mx_port))
        for dom in ("a.test", "b.test"):
            for i in range(3):
                send(srv.port, "carol@localhost", "u%d@%s" % (i, dom),
                     b"Subject: h\r\n\r\nx\r\n")
        wait_for(lambda: self.hang1.connections >= 2, 10, "deliveries to hang")
        send(srv.port, "carol@localhost", "v@ok.test", b"Subject: ok\r\n\r\nx\r\n")
        self.ok.wait_messages(1, timeout=5 * SLOW)
        self.assertEqual(self.hang1.connections, 2)
        self.assertEqual(srv.stop(), 0)

    def test_one_time_limit_over_all_addresses(self):
        srv = self.server("relay_command_timeout = 3s\nrelay_attempt_timeout = 2s\n")
        t0 = time.monotonic()
        qid = send(srv.port, "carol@localhost", "u@hang.test", b"Subject: t\r\n\r\nx\r\n")
        wait_for(lambda: rcpt_states(srv, qid).get("u@hang.test", {}).get("state") ==
                 "deferred", 10, "the deferral")
        self.assertLess(time.monotonic() - t0, 5.5 * SLOW)
        self.assertEqual(self.hang2.connections, 0)   # mx2's turn never came
        self.assertEqual(srv.stop(), 0)

    def test_expiry_while_waiting_for_a_slot(self):
        # limit 1 (2 threads: 1 remote); the first message holds the slot
        srv = self.server("delivery_threads = 2\nrelay_command_timeout = 60s\n"
                          "queue_lifetime = 3s\n")
        first = send(srv.port, "carol@localhost", "u@hang.test", b"Subject: 1\r\n\r\nx\r\n")
        wait_for(lambda: self.hang1.connections + self.hang2.connections >= 1, 10, "the hang")
        second = send(srv.port, "carol@localhost", "w@hang.test", b"Subject: 2\r\n\r\nx\r\n")
        files = wait_for(lambda: srv.maildir_files("carol@localhost"), 15, "the expiry bounce")
        with open(files[0], "rb") as f:
            report = f.read()
        self.assertIn(b"Final-Recipient: rfc822; w@hang.test", report)
        self.assertIn(b"Status: 4.4.7", report)
        self.assertIn(b"expired", report)
        ids = {m["id"] for m in srv.queue_json()["messages"]}
        self.assertNotIn(second, ids)
        self.assertIn(first, ids)       # still in its hung attempt
        self.assertEqual(srv.stop(), 0)


class CorruptRecordFaultTest(unittest.TestCase):
    """A recipient record that no longer decodes: set aside, and its
    message's sender gets a DSN; records of messages that are gone are
    collected."""

    def test_unreadable_recipient_gets_a_dsn(self):
        srv = local_server("routes = hold.test=[127.0.0.1]:9\nretry_min = 1h\nretry_max = 2h\n")
        self.addCleanup(srv.cleanup)
        srv.start()
        qid = send(srv.port, "carol@localhost", ["x@hold.test", "y@hold.test"],
                   b"Subject: c\r\n\r\nx\r\n")
        self.assertEqual(srv.stop(), 0)
        key = "%016x" % int(qid, 16)
        junk = ("VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n"
                " %s00000001\n 07676172626167650a\n"        # y's record: garbage
                "DATA=END\n" % key)
        subprocess.run(["mdb_load", "-s", "rcpt", os.path.join(srv.dir, "queue")],
                       input=junk, text=True, check=True, capture_output=True)
        orphan = ("VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n"
                  " 000000000000002a00000000\n 6f727068616e\nDATA=END\n")
        subprocess.run(["mdb_load", "-s", "body", os.path.join(srv.dir, "queue")],
                       input=orphan, text=True, check=True, capture_output=True)
        srv.start()
        files = wait_for(lambda: srv.maildir_files("carol@localhost"), 20, "the DSN")
        with open(files[0], "rb") as f:
            report = f.read()
        self.assertIn(b"unreadable", report)
        self.assertIn(b"could not be read", report)
        self.assertIn(b"Action: failed", report)
        srv.wait_log("orphaned record")
        stats = json.loads(srv.mailctl("--json", "stats").stdout)
        self.assertGreaterEqual(stats["bad"], 2)
        q = {m["id"]: m for m in srv.queue_json()["messages"]}
        self.assertEqual([r["address"] for r in q[qid]["recipients"]
                          if r["state"] != "bounced"], ["x@hold.test"])
        self.assertEqual(srv.stop(), 0)


@unittest.skipUnless(fault_lib(), "needs tests/fault/msfault.c built (MSFAULT_LIB)")
class InProcessFaultTest(unittest.TestCase):
    """Faults injected into the server (tests/fault/msfault.c)."""

    def test_waits_use_the_monotonic_clock(self):
        # The wall clock reads a day ahead of the kernel's: a wait for an
        # absolute wall-clock time would last a day. mailctl's flush is
        # seen only by the scheduler's once-a-second look (no signal).
        port = free_port("127.0.0.10")
        srv = Server("routes = remote.test=[127.0.0.10]:%d\nretry_min = 1h\n"
                     "retry_max = 2h\n" % port)
        self.addCleanup(srv.cleanup)
        srv.start(env=fault_env(MSFAULT_REALTIME_OFFSET="86400"))
        qid = send(srv.port, "a@localhost", "r@remote.test", b"Subject: c\r\n\r\nx\r\n")
        wait_for(lambda: rcpt_states(srv, qid).get("r@remote.test", {}).get("state") ==
                 "deferred", 20, "the deferral")
        peer = Peer("127.0.0.10", port).start()
        self.addCleanup(peer.stop)
        srv.mailctl("flush")
        peer.wait_messages(1, timeout=10 * SLOW)
        self.assertEqual(srv.stop(), 0)

    def test_broken_environment_exits_1(self):
        # After two commits the disk fails under a meta page write: LMDB
        # marks the environment broken (MDB_PANIC). The server logs it
        # and exits 1 (a supervisor restarts it) instead of answering 451
        # for ever; what it acknowledged is there after the restart.
        srv = Server("routes = hold.test=[127.0.0.1]:9\nretry_min = 1h\nretry_max = 2h\n")
        self.addCleanup(srv.cleanup)
        srv.start(env=fault_env(MSFAULT_META_FAIL_AFTER="3",
                                MSFAULT_META_FILE=os.path.realpath(
                                    os.path.join(srv.dir, "queue", "data.mdb"))))
        acked, refused = [], 0
        for i in range(20):
            try:
                code, text = send_code(srv.port, "a@localhost", ["h@hold.test"],
                                       b"Subject: p%d\r\n\r\nx\r\n" % i)
            except (OSError, EOFError, AssertionError):
                break
            if code == 250:
                acked.append(text.split()[-1])
            else:
                refused += 1
            if srv.proc.poll() is not None:
                break
        code = srv.proc.wait(timeout=20 * SLOW)
        self.assertEqual(code, 1)
        self.assertLessEqual(refused, 5)        # no spinning on 451
        self.assertIn("MDB_PANIC", srv.logtext())
        self.assertIn("exiting with status 1", srv.logtext())
        srv.proc.stdout.close()
        srv.proc.stderr.close()
        srv.proc = None
        self.assertGreaterEqual(len(acked), 1)
        srv.start()
        self.assertEqual(set(acked) - srv.known_ids(), set())
        self.assertEqual(srv.stop(), 0)

    def test_broken_worker_gets_no_connections(self):
        # Session worker 1's event loop fails at once (epoll_wait): it is
        # handed no connection after that, so every client is served by
        # worker 0, none is left hanging in a loop that is gone.
        srv = Server("session_workers = 2\n")
        self.addCleanup(srv.cleanup)
        srv.start(env=fault_env(MSFAULT_EPOLL_FAIL_THREAD="worker1"))
        srv.wait_log("worker 1: epoll_wait")
        for i in range(6):
            qid = send(srv.port, "a@localhost", "alice@localhost",
                       b"Subject: w%d\r\n\r\nx\r\n" % i)
            self.assertTrue(qid)
        self.assertEqual(srv.stop(), 0)

    def test_broken_worker_closes_its_sessions(self):
        # Worker 1's loop breaks while it serves sessions: they lose their
        # connections at once (as a crashed process's would) instead of
        # waiting for a loop that is gone; worker 0's go on, and new
        # clients are all served.
        trigger = os.path.join(tempfile.mkdtemp(prefix="ms-epoll-"), "break")
        self.addCleanup(shutil.rmtree, os.path.dirname(trigger), True)
        srv = Server("session_workers = 2\n")
        self.addCleanup(srv.cleanup)
        srv.start(env=fault_env(MSFAULT_EPOLL_FAIL_THREAD="worker1",
                                MSFAULT_EPOLL_FAIL_FILE=trigger))
        clients = [greet(srv.port)[0] for _ in range(6)]
        for c in clients:
            self.addCleanup(c.close)
        open(trigger, "w").close()
        srv.wait_log("worker 1: closing its")
        alive = closed = 0
        for c in clients:
            try:
                code, _ = c.cmd("NOOP")
                self.assertEqual(code, 250)
                alive += 1
            except (EOFError, ConnectionResetError, BrokenPipeError):
                closed += 1
        self.assertGreater(closed, 0)
        self.assertGreater(alive, 0)
        self.assertEqual(alive + closed, 6)
        for i in range(4):
            self.assertTrue(send(srv.port, "a@localhost", "alice@localhost",
                                 b"Subject: w%d\r\n\r\nx\r\n" % i))
        for c in clients:
            c.close()
        self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    unittest.main()
