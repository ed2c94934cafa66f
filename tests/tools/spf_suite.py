#!/usr/bin/python3
"""Converts the RFC 7208 test suite (the openspf.org YAML of pyspf) into
the line format that tests/unit/test_spf_suite.c reads, on stdout.

The zone of each scenario follows the rules of pyspf's own driver
(test/testspf.py): an SPF-type record stands for a TXT record unless the
name has a TXT entry of its own (TXT: NONE included), those generated TXT
records come last, and a TIMEOUT entry makes every query of a type with
no record before it time out.

Lines, fields separated by TAB, bytes outside 0x21..0x7e and '%'
written as %XX:
  S  description                       a new scenario (zone emptied)
  Z  name  TYPE  value                 TYPE A AAAA MX PTR TXT CNAME TEMP
  T  id  spec  host  helo  mailfrom  result[,result...]  [explanation]
"""
import sys
import yaml

TYPES = ("A", "AAAA", "MX", "PTR", "TXT", "CNAME")


def esc(v):
    if isinstance(v, str):
        v = v.encode("utf-8", "surrogateescape")
    out = []
    for b in v:
        if b <= 0x20 or b >= 0x7f or b == 0x25:
            out.append("%%%02X" % b)
        else:
            out.append(chr(b))
    return "".join(out)


def text(v):
    """A TXT/SPF value: one string, or a list of strings joined."""
    if isinstance(v, list):
        return "".join(str(x) for x in v)
    return str(v)


def zone_lines(name, entries):
    has_txt = any(isinstance(e, dict) and "TXT" in e for e in entries)
    recs = []       # (type, value) in order; ("TIMEOUT", None) markers
    generated = []
    for e in entries:
        if e == "TIMEOUT":
            recs.append(("TIMEOUT", None))
            continue
        for t, v in e.items():
            if t == "SPF":
                if not has_txt:
                    generated.append(("TXT", text(v)))
                continue
            if v == "NONE":
                continue
            if t == "TXT":
                recs.append(("TXT", text(v)))
            elif t == "MX":
                recs.append(("MX", "%d %s" % (v[0], v[1] if v[1] else ".")))
            elif t in TYPES:
                recs.append((t, str(v)))
            else:
                raise SystemExit("unknown record type %s at %s" % (t, name))
    recs += generated
    lines = []
    cut = next((i for i, r in enumerate(recs) if r[0] == "TIMEOUT"), len(recs))
    for t in TYPES:
        before = [v for (rt, v) in recs[:cut] if rt == t]
        for v in before:
            lines.append("Z\t%s\t%s\t%s" % (esc(name), t, esc(v)))
        if cut < len(recs) and not before and t != "CNAME":
            lines.append("Z\t%s\tTEMP\t%s" % (esc(name), t))
    return lines


def main():
    with open(sys.argv[1], "rb") as f:
        docs = list(yaml.safe_load_all(f))
    out = []
    for doc in docs:
        out.append("S\t%s" % esc(doc.get("description", "")))
        for name, entries in doc.get("zonedata", {}).items():
            out += zone_lines(name.lower(), entries)
        for tid, t in doc["tests"].items():
            res = t["result"]
            if not isinstance(res, list):
                res = [res]
            fields = ["T", esc(tid), esc(str(t.get("spec", ""))),
                      esc(t["host"]), esc(t["helo"]), esc(t["mailfrom"]),
                      ",".join(res)]
            if "explanation" in t:
                fields.append(esc(t["explanation"]))
            out.append("\t".join(fields))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
