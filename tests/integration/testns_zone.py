"""Entries of an ldns-testns data file, for the tests that serve mail
authentication records (SPF, DKIM keys, DMARC policies) from loopback."""


def entry(name, qtype, answers=(), rcode="NOERROR"):
    """One answer: the records of answers (rdata text), or, with none,
    NODATA/NXDOMAIN/SERVFAIL as rcode says."""
    out = ["ENTRY_BEGIN", "MATCH opcode qtype qname", "ADJUST copy_id",
           "REPLY QR AA " + rcode, "SECTION QUESTION", "%s. IN %s" % (name, qtype)]
    if answers:
        out.append("SECTION ANSWER")
        out += ["%s. 300 IN %s %s" % (name, qtype, a) for a in answers]
    else:
        out += ["SECTION AUTHORITY",
                "test. 300 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60"]
    out.append("ENTRY_END")
    return "\n".join(out) + "\n\n"


def nxdomain_for_the_rest():
    """Last in the file: every other name does not exist (ldns-testns
    would not answer it at all)."""
    return ("ENTRY_BEGIN\nMATCH opcode\nADJUST copy_id copy_query\n"
            "REPLY QR AA NXDOMAIN\nSECTION QUESTION\ninvalid. IN A\n"
            "SECTION AUTHORITY\n"
            "test. 300 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n"
            "ENTRY_END\n\n")


def txt_strings(text):
    """A TXT rdata of 255-octet strings."""
    return " ".join('"%s"' % text[i:i + 255] for i in range(0, len(text), 255))
