"""A test PKI made with certtool: a CA, certificates it signs for given
DNS names (optionally expired), chain files for servers, and TLSA
association data computed apart from the code under test (certtool's
SubjectPublicKeyInfo, Python's hashlib)."""
import hashlib
import os
import shutil
import ssl
import subprocess
import tempfile


def _certtool(*args):
    r = subprocess.run(["certtool"] + list(args), capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("certtool %s: %s" % (args, r.stderr.decode(errors="replace")))
    return r.stdout


class Cert:
    def __init__(self, pem, key, chain=None):
        self.pem = pem          # the certificate alone
        self.key = key
        self.chain = chain or pem   # the certificate, then its issuers

    def der(self):
        with open(self.pem) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())

    def spki_der(self):
        return _certtool("--pubkey-info", "--load-certificate", self.pem, "--outder")

    def tlsa(self, usage, selector, mtype):
        """The presentation form "U S M HEX" of a TLSA record for this cert."""
        data = self.der() if selector == 0 else self.spki_der()
        if mtype == 1:
            data = hashlib.sha256(data).digest()
        elif mtype == 2:
            data = hashlib.sha512(data).digest()
        return "%d %d %d %s" % (usage, selector, mtype, data.hex())


class Pki:
    def __init__(self, name="Test CA"):
        self.dir = tempfile.mkdtemp(prefix="ms-pki-")
        self.n = 0
        key = self._key()
        tmpl = self._write("ca.tmpl", 'cn = "%s"\nca\ncert_signing_key\nexpiration_days = 30\n' % name)
        pem = os.path.join(self.dir, "ca%d.pem" % self.n)
        _certtool("--generate-self-signed", "--load-privkey", key, "--template", tmpl,
                  "--outfile", pem)
        self.ca = Cert(pem, key)

    def _write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def _key(self):
        self.n += 1
        key = os.path.join(self.dir, "key%d.pem" % self.n)
        _certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", key)
        return key

    def cert(self, names, expired=False, ca=None):
        """A server certificate for DNS names (the first is the CN)."""
        ca = ca or self.ca
        key = self._key()
        lines = ['cn = "%s"' % names[0]] + ['dns_name = "%s"' % n for n in names]
        lines += ["tls_www_server", "signing_key", "encryption_key"]
        if expired:
            lines += ['activation_date = "2020-01-01 00:00:00"',
                      'expiration_date = "2020-02-01 00:00:00"']
        else:
            lines += ["expiration_days = 30"]
        tmpl = self._write("ee%d.tmpl" % self.n, "\n".join(lines) + "\n")
        pem = os.path.join(self.dir, "ee%d.pem" % self.n)
        _certtool("--generate-certificate", "--load-privkey", key, "--load-ca-certificate",
                  ca.pem, "--load-ca-privkey", ca.key, "--template", tmpl, "--outfile", pem)
        chain = os.path.join(self.dir, "chain%d.pem" % self.n)
        with open(chain, "w") as out:
            for p in (pem, ca.pem):
                with open(p) as f:
                    out.write(f.read())
        return Cert(pem, key, chain)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)
