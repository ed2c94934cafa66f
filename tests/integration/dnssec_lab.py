"""A DNSSEC lab on loopback: nsd serves test zones signed with
ldns-signzone, and unbound validates them with the zones' trust anchors.
Point `dns_server` (or a dns_sec path) at lab.port.

    lab = DnssecLab()
    lab.zone("secure.test", ["mx IN A 127.0.0.2", ...])            # signed, anchored
    lab.zone("insecure.test", [...], mode="insecure")             # unsigned
    lab.zone("bogus.test", [...], mode="bogus")                   # anchored to a key that did not sign it
    lab.zone("secure2.test", [...], broken=[("_25._tcp.mx", "TLSA")])  # one RRSIG spoiled
    lab.start()            # once per test module (about a second)
    ... lab.port ...
    lab.update("secure.test", [...])   # re-sign, reload nsd, flush unbound's cache
    lab.stop()             # by PID

unbound has stub zones for every lab zone and for "." (nsd serves an
unsigned root), so it never asks anything off this host; answers for
signed zones carry the AD bit, unsigned ones are insecure, and a bogus
zone or RRset gets SERVFAIL. Records are zone-file lines relative to the
zone (or absolute with a final dot); SOA, NS and "ns" A 127.0.0.1 are
added. Nothing here sleeps as synchronisation: readiness is polled with
real queries, each wait bounded.
"""
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

from harness import SLOW, free_port, wait_for

LAB_TTL = 60


def _free_udp_tcp_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        p = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
    raise AssertionError("no free port")


def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def query(port, name, qtype, timeout=2.0):
    """One raw UDP query with DO and AD set to 127.0.0.1:port.
    Returns (rcode, ad, ancount) or None when nothing answers."""
    qid = random.randrange(65536)
    flags = 0x0100 | 0x0020          # RD, AD
    pkt = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 1) + _encode_name(name) + \
        struct.pack(">HH", qtype, 1) + \
        b"\0" + struct.pack(">HHIH", 41, 1232, 0x00008000, 0)   # OPT with DO
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(pkt, ("127.0.0.1", port))
            while True:
                data, _ = s.recvfrom(65535)
                if len(data) >= 12 and struct.unpack(">H", data[:2])[0] == qid:
                    break
        except (socket.timeout, ConnectionRefusedError, OSError):
            return None
    _, fl, _, an, _, _ = struct.unpack(">HHHHHH", data[:12])
    return fl & 0x000f, bool(fl & 0x0020), an


class _Zone:
    def __init__(self, name, records, mode, broken):
        self.name = name.rstrip(".").lower()
        self.records = list(records)
        self.mode = mode
        self.broken = list(broken)
        self.serial = 1
        self.keys = []          # key file base names used to sign
        self.anchor = None      # DS line given to unbound

    @property
    def signed(self):
        return self.mode in ("secure", "bogus")


class DnssecLab:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ms-dnssec-")
        self.zones = {}
        self.nsd = None
        self.unbound = None
        self.port = None          # the validating resolver (unbound)
        self.nsd_port = None

    # ---- zones ----

    def zone(self, name, records, mode="secure", broken=()):
        """Adds a zone before start(). mode: secure, insecure or bogus;
        broken: (owner relative to the zone, type) whose RRSIG is spoiled."""
        assert mode in ("secure", "insecure", "bogus")
        z = _Zone(name, records, mode, broken)
        self.zones[z.name] = z
        return z

    def _run(self, args):
        r = subprocess.run(args, cwd=self.dir, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("%s failed: %s%s" % (args[0], r.stdout, r.stderr))
        return r.stdout.strip()

    def _keys(self, z):
        if z.keys:
            return
        ksk = self._run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", z.name])
        zsk = self._run(["ldns-keygen", "-a", "ECDSAP256SHA256", z.name])
        z.keys = [ksk, zsk]
        anchor_key = ksk
        if z.mode == "bogus":
            # anchored to a key that signs nothing: validation must fail
            anchor_key = self._run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", z.name])
        with open(os.path.join(self.dir, anchor_key + ".ds")) as f:
            z.anchor = f.read().split(";")[0].strip()

    def _zone_text(self, z):
        head = ["$ORIGIN %s." % z.name, "$TTL %d" % LAB_TTL,
                "@ IN SOA ns.%s. hostmaster.%s. %d 3600 600 86400 %d" % (
                    z.name, z.name, z.serial, LAB_TTL),
                "@ IN NS ns.%s." % z.name, "ns IN A 127.0.0.1"]
        return "\n".join(head + z.records) + "\n"

    def _write_zone(self, z):
        path = os.path.join(self.dir, z.name + ".zone")
        with open(path, "w") as f:
            f.write(self._zone_text(z))
        if not z.signed:
            return path
        self._keys(z)
        self._run(["ldns-signzone", "-o", z.name, path] + z.keys)
        signed = path + ".signed"
        if z.broken:
            self._spoil(z, signed)
        return signed

    def _spoil(self, z, path):
        """Changes one byte of the signature over each broken RRset."""
        with open(path) as f:
            lines = f.read().splitlines()
        todo = {((o if o.endswith(".") else o + "." + z.name + ".").lower(), t.upper())
                for o, t in z.broken}
        for i, line in enumerate(lines):
            f = line.split()
            if len(f) > 5 and f[3] == "RRSIG" and (f[0].lower(), f[4].upper()) in todo:
                sig = f[-1]
                mid = len(sig) // 2
                f[-1] = sig[:mid] + ("A" if sig[mid] != "A" else "B") + sig[mid + 1:]
                lines[i] = "\t".join(f)
                todo.discard((f[0].lower(), f[4].upper()))
        assert not todo, "no RRSIG to spoil for %s" % todo
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _write_root(self):
        path = os.path.join(self.dir, "root.zone")
        with open(path, "w") as f:
            f.write("$TTL %d\n. IN SOA ns.root. hostmaster.root. 1 3600 600 86400 %d\n"
                    ". IN NS ns.root.\nns.root. IN A 127.0.0.1\n" % (LAB_TTL, LAB_TTL))
        return path

    # ---- daemons ----

    def start(self, port=None):
        """Signs the zones and starts nsd and unbound; port: unbound's
        (default: a free one)."""
        self.nsd_port = _free_udp_tcp_port()
        self.port = port or _free_udp_tcp_port()
        files = {".": self._write_root()}
        for z in self.zones.values():
            files[z.name] = self._write_zone(z)
        d = self.dir
        with open(os.path.join(d, "nsd.conf"), "w") as f:
            f.write('server:\n  ip-address: 127.0.0.1\n  port: %d\n  do-ip6: no\n'
                    '  username: ""\n  chroot: ""\n  zonesdir: "%s"\n  database: ""\n'
                    '  zonelistfile: "%s/zone.list"\n  xfrdfile: "%s/xfrd.state"\n'
                    '  xfrdir: "%s"\n  pidfile: "%s/nsd.pid"\n  logfile: "%s/nsd.log"\n'
                    '  server-count: 1\n  verbosity: 1\n  minimal-responses: yes\nremote-control:\n  control-enable: no\n'
                    % (self.nsd_port, d, d, d, d, d, d))
            for name, path in files.items():
                f.write('zone:\n  name: "%s"\n  zonefile: "%s"\n' % (name, path))
        with open(os.path.join(d, "unbound.conf"), "w") as f:
            f.write('server:\n  interface: 127.0.0.1\n  port: %d\n  do-ip6: no\n'
                    '  outgoing-interface: 127.0.0.1\n  username: ""\n  chroot: ""\n'
                    '  directory: "%s"\n  pidfile: "%s/unbound.pid"\n  logfile: "%s/unbound.log"\n'
                    '  use-syslog: no\n  verbosity: 1\n  val-log-level: 2\n  num-threads: 1\n'
                    '  module-config: "validator iterator"\n  do-not-query-localhost: no\n'
                    '  harden-dnssec-stripped: yes\n  qname-minimisation: no\n  ede: yes\n'
                    '  so-reuseport: no\n'
                    # unbound answers test., invalid. and others itself (RFC 6761)
                    '  local-zone: "test." nodefault\n  local-zone: "invalid." nodefault\n'
                    % (self.port, d, d, d))
            for z in self.zones.values():
                if z.signed:
                    f.write('  trust-anchor: "%s"\n' % z.anchor)
            f.write('remote-control:\n  control-enable: yes\n  control-interface: "%s/unbound.ctl"\n'
                    '  control-use-cert: no\n' % d)
            for name in files:
                f.write('stub-zone:\n  name: "%s"\n  stub-addr: 127.0.0.1@%d\n'
                        % (name, self.nsd_port))
        self.nsd = subprocess.Popen(["nsd", "-d", "-c", os.path.join(d, "nsd.conf")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            first = next(iter(self.zones), ".")
            wait_for(lambda: self._alive(self.nsd, "nsd") and
                     query(self.nsd_port, first, 6, 0.5) is not None, 20, "nsd to answer")
            self.unbound = subprocess.Popen(["unbound", "-d", "-c", os.path.join(d, "unbound.conf")],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for(lambda: self._alive(self.unbound, "unbound") and
                     query(self.port, first, 6, 0.5) is not None, 20, "unbound to answer")
        except Exception:
            self.stop()
            raise
        return self

    def _alive(self, proc, what):
        if proc.poll() is not None:
            raise AssertionError("%s exited with %s: %s" % (what, proc.returncode, self.logs()))
        return True

    def logs(self):
        out = ""
        for n in ("nsd.log", "unbound.log"):
            try:
                with open(os.path.join(self.dir, n), errors="replace") as f:
                    out += "== %s\n%s" % (n, f.read()[-4000:])
            except FileNotFoundError:
                pass
        return out

    def update(self, name, records):
        """New records for a zone: re-signed, nsd reloaded, unbound's cache
        for the zone flushed; returns when unbound serves the new serial."""
        z = self.zones[name]
        z.records = list(records)
        z.serial += 1
        path = self._write_zone(z)
        # nsd reloads files whose mtime changed: make sure it does.
        st = os.stat(path)
        os.utime(path, (st.st_atime, st.st_mtime + z.serial))
        self.nsd.send_signal(signal.SIGHUP)
        wait_for(lambda: self._serial(self.nsd_port, z.name) == z.serial, 20,
                 "nsd to load serial %d of %s" % (z.serial, z.name))
        self._run(["unbound-control", "-c", os.path.join(self.dir, "unbound.conf"),
                   "flush_zone", z.name])
        self._run(["unbound-control", "-c", os.path.join(self.dir, "unbound.conf"),
                   "flush_bogus"])

    @staticmethod
    def _serial(port, zone):
        """The SOA serial nsd serves for zone, or None."""
        qid = random.randrange(65536)
        pkt = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + _encode_name(zone) + \
            struct.pack(">HH", 6, 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1.0)
            try:
                s.sendto(pkt, ("127.0.0.1", port))
                data, _ = s.recvfrom(65535)
            except (socket.timeout, OSError):
                return None
        # the SOA rdata ends with serial, refresh, retry, expire, minimum
        if struct.unpack(">H", data[6:8])[0] < 1 or len(data) < 20:
            return None
        return struct.unpack(">I", data[-20:-16])[0]

    def stop(self):
        for proc in (self.unbound, self.nsd):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10 * SLOW)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.unbound = self.nsd = None

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
