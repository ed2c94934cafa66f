#!/usr/bin/env python3
"""bench/idle_clients.py: hold many idle SMTP connections open, then measure.

Opens N TCP connections to HOST:PORT (spread over source addresses
127.0.0.2, 127.0.0.3, ... so that ephemeral ports never run short), waits
until every one has read its 220 greeting, then reads the server's VmRSS
(and VmHWM) from /proc/PID/status and times a normal smtplib client sending
one message (several times) while the idle connections stay open.

Standard library only. Every wait is bounded. Prints key=value lines.
"""
import argparse
import errno
import os
import resource
import selectors
import smtplib
import socket
import statistics
import sys
import time

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = v.strip()
    try:
        out["fds"] = str(len(os.listdir(f"/proc/{pid}/fd")))
    except OSError:
        out["fds"] = "?"
    return out


def kib(v):
    return int(v.split()[0]) if v else 0


def send_one(host, port, timeout):
    t0 = time.monotonic()
    with smtplib.SMTP(host, port, timeout=timeout) as s:
        s.ehlo("probe.bench.test")
        msg = ("From: sender@bench.test\r\nTo: rcpt@localhost\r\n"
               "Subject: idle bench probe\r\n\r\n" + ("x" * 70 + "\r\n") * 14)
        refused = s.sendmail("sender@bench.test", ["rcpt@localhost"], msg)
        if refused:
            raise RuntimeError(f"refused: {refused}")
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--sources", type=int, default=10,
                    help="source addresses 127.0.0.2 .. 127.0.0.(1+N)")
    ap.add_argument("--timeout", type=float, default=180,
                    help="bound on connecting and greeting all (s)")
    ap.add_argument("--batch", type=int, default=500,
                    help="connections started before reading replies")
    ap.add_argument("--probes", type=int, default=5)
    a = ap.parse_args()

    want = a.count + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        print(f"error=RLIMIT_NOFILE {soft} < {want}", flush=True)
        return 2

    base = proc_status(a.pid)
    print(f"rss_before_kib={kib(base.get('VmRSS'))}", flush=True)

    sel = selectors.DefaultSelector()
    bufs = {}
    greeted = 0
    failed = 0
    errors = {}
    socks = []
    deadline = time.monotonic() + a.timeout
    t_start = time.monotonic()
    opened = 0

    def pump(wait):
        nonlocal greeted, failed
        for key, _ in sel.select(wait):
            s = key.fileobj
            try:
                data = s.recv(512)
            except BlockingIOError:
                continue
            except OSError as e:
                data = None
                errors[e.errno] = errors.get(e.errno, 0) + 1
            if not data:
                failed += 1
                sel.unregister(s)
                continue
            bufs[s] += data
            if b"\n" in bufs[s]:
                sel.unregister(s)
                if bufs[s].startswith(b"220"):
                    greeted += 1
                else:
                    failed += 1
                    line = bufs[s].split(b"\n")[0][:60]
                    errors[line] = errors.get(line, 0) + 1

    while opened < a.count and time.monotonic() < deadline:
        for _ in range(min(a.batch, a.count - opened)):
            src = f"127.0.0.{2 + opened % a.sources}"
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((src, 0))
            s.setblocking(False)
            rc = s.connect_ex((a.host, a.port))
            if rc not in (0, errno.EINPROGRESS):
                errors[rc] = errors.get(rc, 0) + 1
                failed += 1
                s.close()
                opened += 1
                continue
            bufs[s] = b""
            socks.append(s)
            sel.register(s, selectors.EVENT_READ)
            opened += 1
        pump(0)
    while greeted + failed < opened and time.monotonic() < deadline:
        pump(0.5)
    t_greet = time.monotonic() - t_start
    print(f"opened={opened} greeted={greeted} failed={failed} "
          f"secs_to_greet_all={t_greet:.2f}", flush=True)
    if errors:
        print(f"errors={errors}", flush=True)

    time.sleep(1)  # let the server settle
    st = proc_status(a.pid)
    print(f"rss_kib={kib(st.get('VmRSS'))} hwm_kib={kib(st.get('VmHWM'))} "
          f"threads={st.get('Threads')} server_fds={st.get('fds')}", flush=True)

    lat = []
    for _ in range(a.probes):
        try:
            lat.append(send_one(a.host, a.port, 30))
        except Exception as e:  # noqa: BLE001 - report, do not hide
            print(f"probe_error={type(e).__name__}: {e}", flush=True)
    if lat:
        print(f"probe_ms_median={statistics.median(lat) * 1000:.1f} "
              f"probe_ms_max={max(lat) * 1000:.1f} probes_ok={len(lat)}", flush=True)
    else:
        print("probe_ms_median=- probe_ms_max=- probes_ok=0", flush=True)

    # still connected? (the server must not have dropped idle sessions)
    alive = 0
    for s in socks:
        try:
            d = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            if d:
                alive += 1  # unread data (e.g. a 421): still open
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    print(f"still_open={alive}", flush=True)
    for s in socks:
        s.close()
    return 0 if greeted == a.count and lat else 1


if __name__ == "__main__":
    sys.exit(main())
