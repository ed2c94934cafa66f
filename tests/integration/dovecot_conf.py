"""A private Dovecot IMAP server for integration tests.

Writes a self-contained dovecot.conf into its own temporary directory and
runs `dovecot -F -c CONF` (the master in the foreground, so this object owns
its PID) listening for IMAP on 127.0.0.1 and a free port, serving Maildirs
in mailserver's layout (<mail_dir>/<domain>/<user>/) from a passwd-file.

Users and permissions (Debian 12, Dovecot 2.3.19, everything started as
root), found by experiment:
- Dovecot's imap process never accesses mail as uid 0: with mail_uid = root
  it fails with "Mail access not allowed for root" whatever first_valid_uid
  says (only doveadm may), so mail must belong to an ordinary user.
- mailserver writes Maildir files 0600 and directories 0700, so that user
  must be the one mailserver runs as. Tests therefore start mailserver with
  `user = MAIL_USER` (it drops to it after binding) and give Dovecot
  mail_uid/mail_gid = MAIL_USER: the usual "vmail" deployment. Debian's
  `mail` user (uid 8, gid 8) exists on every system, so no user is added;
  first_valid_uid/gid are lowered to its ids (the defaults are 500/1).
- default_internal_user = dovecot and default_login_user = dovenull: the
  users the dovecot-core package creates (Dovecot refuses to run its login
  processes as root).
- ssl = no and disable_plaintext_auth = no (2.3 spelling; 2.4 calls it
  auth_allow_cleartext = yes) so that imaplib can LOGIN in clear text.
- base_dir, state_dir and the logs live in the temporary directory, made
  0755 so that the unprivileged processes can reach the sockets in it.
"""
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile

from harness import free_port, wait_for, SLOW

DOVECOT = next((p for p in (os.environ.get("DOVECOT_BIN"), "/usr/sbin/dovecot",
                            shutil.which("dovecot")) if p and os.path.exists(p)), None)
MAIL_USER = "mail"


def available():
    """True when a Dovecot with the users its package creates is installed."""
    if DOVECOT is None:
        return False
    try:
        for u in ("dovecot", "dovenull", MAIL_USER):
            pwd.getpwnam(u)
    except KeyError:
        return False
    return True


def prepare_mail_tree(path, user=MAIL_USER):
    """Makes path (and its contents) owned by the mail user, so that a
    mailserver running with `user = MAIL_USER` can create its queue and
    mail_dir there, and Dovecot running as the same user can read them."""
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for n in [root] + [os.path.join(root, d) for d in dirs] + \
                 [os.path.join(root, f) for f in files]:
            os.lchown(n, pw.pw_uid, pw.pw_gid)


class Dovecot:
    """One Dovecot master process with its own config, directory and port.

    users: {"user@domain": "{CRYPT}$6$..." or "{PLAIN}secret"}.
    mail_dir: mailserver's mail_dir; user@domain's Maildir is
    mail_dir/domain/user (mailserver lower-cases domain and local part).
    """

    def __init__(self, mail_dir, users, port=None, host="127.0.0.1", mail_user=MAIL_USER):
        self.dir = tempfile.mkdtemp(prefix="ms-dovecot-")
        os.chmod(self.dir, 0o755)
        self.host = host
        self.port = port or free_port(host)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log = os.path.join(self.dir, "dovecot.log")
        self.passwd = os.path.join(self.dir, "passwd")
        self.proc = None
        pw = pwd.getpwnam(mail_user)
        gr = grp.getgrgid(pw.pw_gid)
        with open(self.passwd, "w") as f:
            for addr, secret in users.items():
                f.write("%s:%s\n" % (addr, secret))
        os.chmod(self.passwd, 0o644)
        text = """\
# Written by tests/integration/dovecot_conf.py; see its docstring.
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
debug_log_path = {d}/dovecot.log
protocols = imap
listen = {host}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
# Answer a failed LOGIN at once (the default waits 2s).
auth_failure_delay = 0
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_uid = {user}
mail_gid = {group}
mail_location = maildir:{mail}/%d/%n
passdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
userdb {{
  driver = static
  args = home={mail}/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
# No auth penalty: anvil would delay every login from an IP by 4s, 8s...
# after each failure from it. With this socket closed to it, the auth
# process cannot reach anvil's penalty service and skips the penalty.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
""".format(d=self.dir, host=host, port=self.port, uid=pw.pw_uid, gid=pw.pw_gid,
           user=pw.pw_name, group=gr.gr_name, mail=os.path.abspath(mail_dir),
           passwd=self.passwd)
        with open(self.conf, "w") as f:
            f.write(text)

    def start(self):
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf], cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.wait_ready()
        return self

    def wait_ready(self):
        """Waits for the IMAP greeting: imap-login holds it back until the
        auth process is up, so a greeting means LOGIN can be answered."""
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("dovecot exited with %s: %s\n%s" % (
                    self.proc.returncode, self.proc.stdout.read().decode(errors="replace"),
                    self.logtext()))
            try:
                with socket.create_connection((self.host, self.port), timeout=2) as s:
                    s.settimeout(5 * SLOW)
                    return s.recv(512).startswith(b"* OK")
            except OSError:
                return False
        wait_for(ready, 20, "dovecot to greet on %d" % self.port)

    def stop(self, timeout=30):
        """SIGTERM to the master (it stops its children), then waits."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("dovecot did not stop")
        finally:
            self.proc.stdout.close()
        code, self.proc = self.proc.returncode, None
        return code

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def logtext(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""
