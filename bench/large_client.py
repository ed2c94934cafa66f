#!/usr/bin/env python3
"""bench/large_client.py: large messages over SMTP, plain or STARTTLS, from
S concurrent sessions, with the server's memory sampled meanwhile.

  large_client.py PORT SESSIONS COUNT SIZE RCPT [--tls] [--rate BYTES/S]
                  [--pids-of PID]

Each session connects (EHLO, STARTTLS and EHLO again with --tls) and sends
its share of COUNT messages of SIZE bytes (CRLF text, no dot-stuffing
needed) one after the other on the same connection. --rate caps each
session's send rate (a slow client). --pids-of PID: every 50 ms the script
sums RssAnon (and VmHWM) over PID and all its descendants (Postfix's
master and its smtpd and cleanup processes; mailserver is one process) and
keeps the peak. Prints one line of key=value: secs, ok, failed, mib_s,
msgs_s, peak_anon_kib, peak_hwm_kib, procs. Every socket has a timeout;
the run is bounded by the caller (timeout(1)).
"""
import os
import socket
import ssl
import sys
import threading
import time


def message(size):
    head = b"From: sender@bench.test\r\nTo: rcpt\r\nSubject: large\r\n\r\n"
    line = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_=+0123456789\r\n"
    n = max(0, size - len(head)) // len(line)
    return head + line * n


class Session:
    def __init__(self, port, tls):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=300)
        self.buf = b""
        self.expect(220)
        self.cmd(b"EHLO client.bench.test", 250)
        if tls:
            self.cmd(b"STARTTLS", 220)
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.sock = ctx.wrap_socket(self.sock)
            self.cmd(b"EHLO client.bench.test", 250)

    def reply(self):
        while True:
            while b"\r\n" not in self.buf:
                d = self.sock.recv(65536)
                if not d:
                    raise EOFError("connection closed")
                self.buf += d
            line, self.buf = self.buf.split(b"\r\n", 1)
            if line[3:4] != b"-":
                return int(line[:3]), line

    def expect(self, code):
        got, line = self.reply()
        if got != code:
            raise RuntimeError("expected %d, got %r" % (code, line))

    def cmd(self, text, code):
        self.sock.sendall(text + b"\r\n")
        self.expect(code)

    def send_message(self, rcpt, body, rate):
        self.cmd(b"MAIL FROM:<sender@bench.test> SIZE=%d" % len(body), 250)
        self.cmd(b"RCPT TO:<%s>" % rcpt.encode(), 250)
        self.cmd(b"DATA", 354)
        # a paced client sends small pieces (a slow link), not bursts
        piece = 16 * 1024 if rate else 256 * 1024
        t0 = time.monotonic()
        view = memoryview(body)
        for off in range(0, len(body), piece):
            self.sock.sendall(view[off:off + piece])
            if rate:
                ahead = (off + piece) / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)	# pacing a slow client
        self.sock.sendall(b".\r\n")
        self.expect(250)

    def close(self):
        try:
            self.sock.sendall(b"QUIT\r\n")
            self.sock.close()
        except OSError:
            pass


def descendants(pid):
    children = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(p))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def sample(pid):
    anon = hwm = 0
    procs = descendants(pid)
    for p in procs:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        anon += int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm += int(line.split()[1])
        except OSError:
            pass
    return anon, hwm, len(procs)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    port, sessions, count, size = (int(a) for a in args[:4])
    rcpt = args[4]
    tls = "--tls" in sys.argv
    rate = 0
    pid = 0
    for i, a in enumerate(sys.argv):
        if a == "--rate":
            rate = int(sys.argv[i + 1])
        if a == "--pids-of":
            pid = int(sys.argv[i + 1])
    body = message(size) + b""
    ok, failed = [0], [0]
    lock = threading.Lock()
    peak = [0, 0, 0]
    done = threading.Event()

    def sampler():
        while not done.is_set():
            a, h, n = sample(pid)
            peak[0], peak[1], peak[2] = max(peak[0], a), max(peak[1], h), max(peak[2], n)
            done.wait(0.05)

    def worker(n):
        try:
            s = Session(port, tls)
        except (OSError, EOFError, RuntimeError) as e:
            print("session: %s" % e, file=sys.stderr)
            with lock:
                failed[0] += n
            return
        for _ in range(n):
            try:
                s.send_message(rcpt, body, rate)
                with lock:
                    ok[0] += 1
            except (OSError, EOFError, RuntimeError) as e:
                print("message: %s" % e, file=sys.stderr)
                with lock:
                    failed[0] += 1
                break
        s.close()

    shares = [count // sessions + (1 if i < count % sessions else 0) for i in range(sessions)]
    threads = [threading.Thread(target=worker, args=(n,)) for n in shares if n > 0]
    st = threading.Thread(target=sampler) if pid else None
    if st:
        st.start()
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    done.set()
    if st:
        st.join()
    mib = ok[0] * len(body) / (1 << 20)
    print("secs=%.3f ok=%d failed=%d mib_s=%.1f msgs_s=%.2f peak_anon_kib=%d peak_hwm_kib=%d procs=%d"
          % (secs, ok[0], failed[0], mib / secs if secs > 0 else 0,
             ok[0] / secs if secs > 0 else 0, peak[0], peak[1], peak[2]))


if __name__ == "__main__":
    main()
