#!/usr/bin/python3
"""dkimpy (Debian python3-dkim) as a peer for the DKIM interop tests. It
needs Debian's /usr/bin/python3, which has the dkim and nacl modules; the
test modules run it as a subprocess.

  dkimpy_tool.py sign KEYFILE SELECTOR DOMAIN rsa|ed25519 relaxed|simple [length]
      reads a message on stdin, writes it signed on stdout
  dkimpy_tool.py verify ZONEFILE
      reads a message on stdin, prints "pass" or "fail" per DKIM-Signature
      field, in order; keys come from ZONEFILE ("NAME TXT value" lines, the
      auth_dns_table text form), never from DNS
"""
import sys

import dkim


def sign(keyfile, selector, domain, alg, canon, length):
    msg = sys.stdin.buffer.read()
    with open(keyfile, "rb") as f:
        key = f.read()
    sig = dkim.sign(msg, selector.encode(), domain.encode(), key,
                    canonicalize=(canon.encode(), canon.encode()),
                    signature_algorithm=b"ed25519-sha256" if alg == "ed25519"
                    else b"rsa-sha256",
                    length=length)
    sys.stdout.buffer.write(sig + msg)


def verify(zonefile):
    zone = {}
    with open(zonefile) as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) == 3 and parts[1] == "TXT":
                value = parts[2]
                if value.startswith('"'):
                    value = "".join(value.split('"')[1::2])
                zone[parts[0].lower().rstrip(".")] = value.encode()

    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        return zone.get(n.lower().rstrip("."), b"")

    msg = sys.stdin.buffer.read()
    d = dkim.DKIM(msg)
    head = msg.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    count = sum(1 for line in head.split(b"\n")
                if line.lower().startswith(b"dkim-signature:"))
    for i in range(count):
        try:
            ok = d.verify(idx=i, dnsfunc=dnsfunc)
        except dkim.DKIMException:
            ok = False
        print("pass" if ok else "fail")


if __name__ == "__main__":
    if sys.argv[1] == "sign":
        sign(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6],
             len(sys.argv) > 7 and sys.argv[7] == "length")
    else:
        verify(sys.argv[2])
