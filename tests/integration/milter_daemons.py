"""Real milters for the milter client's tests, each run in the foreground
from a private directory and configuration, on a free loopback port or a
Unix socket, stopped by its PID: OpenDKIM (signing for authenticated
clients, verifying the others with keys from a file, no DNS) and ClamAV
(clamd with a one-line local signature database that knows the EICAR
test string, and clamav-milter in front of it)."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile

from harness import free_port, wait_for, SLOW

OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"
CLAMD = shutil.which("clamd") or "/usr/sbin/clamd"
CLAMAV_MILTER = shutil.which("clamav-milter") or "/usr/sbin/clamav-milter"
# Daemons built on libmilter linger 5 s after SIGTERM once they have
# served a connection; they keep nothing that needs a clean stop.
LIBMILTER_STOP = signal.SIGKILL
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


class Proc:
    """One daemon process in the foreground; its output goes to a file."""

    def __init__(self, name, argv, cwd, stop_signal=signal.SIGTERM):
        self.name = name
        self.argv = argv
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.proc = None

    def start(self, ready):
        """ready(): true once the daemon serves."""
        self.out = open(os.path.join(self.cwd, self.name + ".out"), "w")
        self.proc = subprocess.Popen(self.argv, stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.cwd)

        def up():
            if self.proc.poll() is not None:
                with open(self.out.name, errors="replace") as f:
                    raise AssertionError("%s exited with %s: %s" % (
                        self.name, self.proc.returncode, f.read()[-2000:]))
            return ready()
        wait_for(up, 30, self.name + " to serve")

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(30 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.out.close()


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def opendkim_available():
    return os.path.exists(OPENDKIM)


class OpenDkim:
    """opendkim -f: signs mail of authenticated clients (the {auth_type}
    macro) for domain with key under selector, and verifies everyone
    else's signatures with the keys of keys_text ("NAME TXT-value" lines:
    its TestPublicKeys), adding Authentication-Results as authserv_id.
    extra: more opendkim.conf lines (e.g. InternalHosts)."""

    def __init__(self, domain, selector, keyfile, keys_text, authserv_id="mx.test", extra=""):
        self.dir = tempfile.mkdtemp(prefix="ms-opendkim-")
        self.port = free_port()
        self.endpoint = "inet:127.0.0.1:%d" % self.port
        keys = os.path.join(self.dir, "keys")
        with open(keys, "w") as f:
            f.write(keys_text)
        conf = os.path.join(self.dir, "opendkim.conf")
        with open(conf, "w") as f:
            f.write("Mode sv\nSocket inet:%d@127.0.0.1\nDomain %s\nSelector %s\n"
                    "KeyFile %s\nCanonicalization relaxed/simple\nSyslog no\n"
                    "RequireSafeKeys no\nPidFile %s/pid\nAuthservID %s\n"
                    "AlwaysAddARHeader yes\nTestPublicKeys %s\n" % (
                        self.port, domain, selector, keyfile, self.dir, authserv_id, keys) +
                    extra)
        self.proc = Proc("opendkim", [OPENDKIM, "-f", "-x", conf], self.dir,
                         stop_signal=LIBMILTER_STOP)

    def start(self):
        self.proc.start(lambda: port_open(self.port))
        return self

    def cleanup(self):
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def clamav_available():
    return os.path.exists(CLAMD) and os.path.exists(CLAMAV_MILTER)


class ClamAv:
    """clamd on a Unix socket with one local signature (the EICAR test
    string in any file, a mail's decoded parts included), and
    clamav-milter on a loopback port rejecting what it finds."""

    SIGNATURE = "Mailserver-Test-EICAR"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ms-clamav-")
        db = os.path.join(self.dir, "db")
        os.mkdir(db)
        with open(os.path.join(db, "local.ndb"), "w") as f:
            f.write("%s:0:*:%s\n" % (self.SIGNATURE,
                                     b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE".hex()))
        self.sock = os.path.join(self.dir, "clamd.sock")
        clamd_conf = os.path.join(self.dir, "clamd.conf")
        with open(clamd_conf, "w") as f:
            f.write("Foreground yes\nLocalSocket %s\nDatabaseDirectory %s\n"
                    "LogFile %s/clamd.log\nPidFile %s/clamd.pid\nUser root\n" % (
                        self.sock, db, self.dir, self.dir))
        self.port = free_port()
        self.endpoint = "inet:127.0.0.1:%d" % self.port
        milter_conf = os.path.join(self.dir, "clamav-milter.conf")
        with open(milter_conf, "w") as f:
            f.write("MilterSocket inet:%d@127.0.0.1\nClamdSocket unix:%s\nForeground yes\n"
                    "PidFile %s/milter.pid\nLogFile %s/milter.log\nOnInfected Reject\n"
                    "RejectMsg Virus found: %%v\nAddHeader Replace\nUser root\n" % (
                        self.port, self.sock, self.dir, self.dir))
        self.clamd = Proc("clamd", [CLAMD, "-c", clamd_conf], self.dir)
        self.milter = Proc("clamav-milter", [CLAMAV_MILTER, "-c", milter_conf], self.dir,
                           stop_signal=LIBMILTER_STOP)

    def start(self):
        self.clamd.start(lambda: os.path.exists(self.sock))
        self.milter.start(lambda: port_open(self.port))
        return self

    def cleanup(self):
        self.milter.stop()
        self.clamd.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
