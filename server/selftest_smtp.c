/*
 * selftest_smtp: the probes of one listener, as an outsider (selftest.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lib/netaddr.h"
#include "lib/util.h"
#include "server/selftest.h"

#define PROBE_BUF 16384
#define PROBE_FOREIGN "relay-test.invalid"

struct probe {
	int fd;
	gnutls_session_t tls;		/* NULL before TLS */
	gnutls_certificate_credentials_t cred;
	char in[PROBE_BUF];
	size_t len;
	char last[512];			/* the last reply's first line */
};

/* The address to reach ls at: a wildcard through loopback. */
static void
probe_target(const struct listen_spec *ls, struct sockaddr_storage *out)
{
	memcpy(out, &ls->sa, ls->salen);
	if (out->ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)out;
		if (in->sin_addr.s_addr == htonl(INADDR_ANY))
			in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (out->ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
		if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
			in6->sin6_addr = in6addr_loopback;
	}
}

/* A loopback source the server does not trust, for family; 0 when it
 * trusts them all. */
static int
probe_stranger(const struct config *cfg, int family, struct sockaddr_storage *out)
{
	static const char *const v4[] = {
		"127.0.0.254", "127.0.0.200", "127.1.0.1", "127.254.254.254",
	};

	if (family != AF_INET)
		return 0;	/* ::1 is IPv6's only loopback address */
	for (size_t i = 0; i < sizeof v4 / sizeof v4[0]; i++) {
		struct sockaddr_in *in = (struct sockaddr_in *)out;

		memset(out, 0, sizeof *out);
		in->sin_family = AF_INET;
		inet_pton(AF_INET, v4[i], &in->sin_addr);
		if (!config_client_may_relay(cfg, (struct sockaddr *)out) &&
		    !config_client_may_auth_plaintext(cfg, (struct sockaddr *)out))
			return 1;
	}
	return 0;
}

static void
probe_close(struct probe *p)
{
	if (p->tls != NULL) {
		gnutls_deinit(p->tls);
		p->tls = NULL;
	}
	if (p->cred != NULL) {
		gnutls_certificate_free_credentials(p->cred);
		p->cred = NULL;
	}
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}

/* Connects from src (NULL: any) with every wait bounded. 0 or -1 (err). */
static int
probe_connect(struct probe *p, const struct sockaddr_storage *dst,
    const struct sockaddr_storage *src, char *err, size_t errsize)
{
	struct timeval tv = { SELFTEST_TIMEOUT_MS / 1000, (SELFTEST_TIMEOUT_MS % 1000) * 1000 };
	socklen_t len = dst->ss_family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6);

	memset(p, 0, sizeof *p);
	if ((p->fd = socket(dst->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    setsockopt(p->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
	    (src != NULL && bind(p->fd, (const struct sockaddr *)src, len) != 0) ||
	    connect(p->fd, (const struct sockaddr *)dst, len) != 0) {
		snprintf(err, errsize, "cannot connect: %s", strerror(errno));
		probe_close(p);
		return -1;
	}
	return 0;
}

static int
probe_send(struct probe *p, const char *s)
{
	size_t n = strlen(s);

	if (p->tls != NULL) {
		int64_t deadline = time_mono_ms() + SELFTEST_TIMEOUT_MS;

		while (n > 0) {
			ssize_t w = gnutls_record_send(p->tls, s, n);
			if (w < 0 && !gnutls_error_is_fatal((int)w) && time_mono_ms() < deadline)
				continue;
			if (w <= 0)
				return -1;
			s += w;
			n -= (size_t)w;
		}
		return 0;
	}
	return send(p->fd, s, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

/* Reads more input by deadline (monotonic ms). Returns 1, 0 (nothing in
 * time) or -1 (closed, error). Records without data (TLS 1.3 session
 * tickets) are read and waited past. */
static int
probe_read(struct probe *p, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
		int64_t left = deadline - time_mono_ms();
		ssize_t got;

		if (p->len == sizeof p->in)
			return -1;
		if (!(p->tls != NULL && gnutls_record_check_pending(p->tls) > 0) &&
		    (left <= 0 || poll(&pfd, 1, (int)left) <= 0))
			return 0;
		if (p->tls != NULL) {
			got = gnutls_record_recv(p->tls, p->in + p->len, sizeof p->in - p->len);
			if (got == GNUTLS_E_AGAIN || got == GNUTLS_E_INTERRUPTED)
				continue;
		} else {
			got = recv(p->fd, p->in + p->len, sizeof p->in - p->len, 0);
			if (got < 0 && errno == EINTR)
				continue;
		}
		if (got <= 0)
			return -1;
		p->len += (size_t)got;
		return 1;
	}
}

/* The next whole reply within ms: its code, its first line in p->last,
 * and with caps set the lines of an EHLO reply checked for caps words:
 * *auth_r and *starttls_r. Returns the code, 0 (none in time), -1. */
static int
probe_reply_caps(struct probe *p, int ms, int *auth_r, int *starttls_r)
{
	int64_t deadline = time_mono_ms() + ms;

	for (;;) {
		char *nl;

		while ((nl = memchr(p->in, '\n', p->len)) != NULL) {
			size_t linelen = (size_t)(nl - p->in) + 1;
			char line[512];
			size_t n = linelen < sizeof line ? linelen : sizeof line - 1;
			int code;

			memcpy(line, p->in, n);
			line[n] = '\0';
			line[strcspn(line, "\r\n")] = '\0';
			memmove(p->in, p->in + linelen, p->len - linelen);
			p->len -= linelen;
			if (strlen(line) < 3 || sscanf(line, "%3d", &code) != 1)
				return -1;
			if (auth_r != NULL && strncasecmp(line + 4, "AUTH", 4) == 0 &&
			    (line[8] == ' ' || line[8] == '\0' || line[8] == '='))
				*auth_r = 1;
			if (starttls_r != NULL && strcasecmp(line + 4, "STARTTLS") == 0)
				*starttls_r = 1;
			if (line[3] != '-') {
				str_copy(p->last, line, sizeof p->last);
				return code;
			}
		}
		int rc;

		if ((rc = probe_read(p, deadline)) <= 0)
			return rc;
	}
}

static int
probe_reply(struct probe *p, int ms)
{
	return probe_reply_caps(p, ms, NULL, NULL);
}

/* A command and its reply code (0 none in time, -1 gone). */
static int
probe_cmd(struct probe *p, const char *cmd)
{
	char line[600];

	snprintf(line, sizeof line, "%s\r\n", cmd);
	if (probe_send(p, line) < 0)
		return -1;
	return probe_reply(p, SELFTEST_TIMEOUT_MS);
}

/* A TLS handshake on the connection with priority prio (NULL: the
 * defaults). Returns 0, -1 (failed: err), -2 (prio not supported here). */
static int
probe_tls(struct probe *p, const char *prio, char *err, size_t errsize)
{
	int rc;

	if (gnutls_certificate_allocate_credentials(&p->cred) < 0 ||
	    gnutls_init(&p->tls, GNUTLS_CLIENT) < 0) {
		snprintf(err, errsize, "GnuTLS cannot start a session");
		return -1;
	}
	if (prio == NULL)
		rc = gnutls_set_default_priority(p->tls);
	else if ((rc = gnutls_priority_set_direct(p->tls, prio, NULL)) < 0)
		return -2;
	if (rc < 0 || gnutls_credentials_set(p->tls, GNUTLS_CRD_CERTIFICATE, p->cred) < 0) {
		snprintf(err, errsize, "GnuTLS cannot set up the session");
		return -1;
	}
	gnutls_transport_set_int(p->tls, p->fd);
	gnutls_handshake_set_timeout(p->tls, SELFTEST_TIMEOUT_MS);
	do
		rc = gnutls_handshake(p->tls);
	while (rc < 0 && !gnutls_error_is_fatal(rc) && rc != GNUTLS_E_AGAIN);
	if (rc < 0) {
		snprintf(err, errsize, "handshake failed: %s", gnutls_strerror(rc));
		return -1;
	}
	return 0;
}

/* Connects, reads the greeting (after the handshake for smtps) and sends
 * EHLO. Returns 0, or -1 with err. */
static int
probe_open(struct probe *p, const struct listen_spec *ls, const struct sockaddr_storage *dst,
    const struct sockaddr_storage *src, int *auth_r, int *starttls_r, char *err,
    size_t errsize)
{
	int code;

	if (probe_connect(p, dst, src, err, errsize) < 0)
		return -1;
	if (ls->kind == LISTEN_SMTPS && probe_tls(p, NULL, err, errsize) != 0) {
		probe_close(p);
		return -1;
	}
	if ((code = probe_reply(p, SELFTEST_TIMEOUT_MS)) != 220) {
		snprintf(err, errsize, "no 220 greeting (%.200s)", code > 0 ? p->last :
		    code == 0 ? "none in time" : "closed");
		probe_close(p);
		return -1;
	}
	if (probe_send(p, "EHLO selftest.invalid\r\n") < 0 ||
	    (code = probe_reply_caps(p, SELFTEST_TIMEOUT_MS, auth_r, starttls_r)) != 250) {
		snprintf(err, errsize, "EHLO refused (%.200s)", code > 0 ? p->last : "no answer");
		probe_close(p);
		return -1;
	}
	return 0;
}

static const char *
probe_local_domain(const struct config *cfg)
{
	return cfg->nlocal_domains > 0 ? cfg->local_domains[0] : cfg->hostname;
}

static void
check_open_relay(const struct config *cfg, const struct listen_spec *ls,
    const struct sockaddr_storage *dst, const struct sockaddr_storage *src,
    struct selftest_report *rep)
{
	const char *local = probe_local_domain(cfg);
	char tricks[5][320], accepted[1024] = "", err[256], cmd[400];
	struct probe p;
	int code;

	snprintf(tricks[0], sizeof tricks[0], "selftest@%s", PROBE_FOREIGN);
	snprintf(tricks[1], sizeof tricks[1], "@%s:selftest@%s", local, PROBE_FOREIGN);
	snprintf(tricks[2], sizeof tricks[2], "selftest@%s@%s", PROBE_FOREIGN, local);
	snprintf(tricks[3], sizeof tricks[3], "selftest@[192.0.2.1]");
	snprintf(tricks[4], sizeof tricks[4], "selftest@%s.", PROBE_FOREIGN);
	if (probe_open(&p, ls, dst, src, NULL, NULL, err, sizeof err) < 0) {
		selftest_add(rep, "open_relay", ls->text, SELFTEST_FAIL, NULL, "%s", err);
		return;
	}
	code = probe_cmd(&p, "MAIL FROM:<selftest@selftest.invalid>");
	if (code == 530) {
		selftest_add(rep, "open_relay", ls->text, SELFTEST_PASS, NULL,
		    "MAIL needs AUTH here");
		probe_close(&p);
		return;
	}
	if (code != 250) {
		selftest_add(rep, "open_relay", ls->text, SELFTEST_PASS, NULL,
		    "MAIL from a stranger refused (%s)", code > 0 ? p.last : "no answer");
		probe_close(&p);
		return;
	}
	for (size_t i = 0; i < sizeof tricks / sizeof tricks[0]; i++) {
		snprintf(cmd, sizeof cmd, "RCPT TO:<%.300s>", tricks[i]);
		if ((code = probe_cmd(&p, cmd)) >= 200 && code < 300) {
			size_t l = strlen(accepted);
			snprintf(accepted + l, sizeof accepted - l, "%s<%.300s>", l ? " " : "", tricks[i]);
		}
		if (code <= 0)
			break;
	}
	(void)probe_cmd(&p, "QUIT");
	probe_close(&p);
	if (accepted[0] != '\0')
		selftest_add(rep, "open_relay", ls->text, SELFTEST_FAIL,
		    "narrow relay_networks and relay_domains; strangers may only send to "
		    "local_domains", "a stranger's foreign recipients accepted: %s", accepted);
	else if (code <= 0)
		selftest_add(rep, "open_relay", ls->text, SELFTEST_FAIL, NULL,
		    "the server stopped answering");
	else
		selftest_add(rep, "open_relay", ls->text, SELFTEST_PASS, NULL,
		    "%zu foreign recipients (with address tricks) refused",
		    sizeof tricks / sizeof tricks[0]);
}

static void
check_smuggling(const struct config *cfg, const struct listen_spec *ls,
    const struct sockaddr_storage *dst, struct selftest_report *rep)
{
	static const struct {
		const char *name, *end;
	} ends[] = {
		{ "\\n.\\n", "\n.\n" }, { "\\r\\n.\\n", "\r\n.\n" }, { "\\n.\\r\\n", "\n.\r\n" },
		/* bare CRs, as in the 2023 SMTP smuggling research */
		{ "\\r.\\r\\n", "\r.\r\n" }, { "\\r\\n.\\r", "\r\n.\r" },
	};
	char cmd[400], err[256], ended[128] = "";
	struct probe p;

	for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
		char data[256];
		int code;

		if (probe_open(&p, ls, dst, NULL, NULL, NULL, err, sizeof err) < 0) {
			selftest_add(rep, "smtp_smuggling", ls->text, SELFTEST_FAIL, NULL, "%s", err);
			return;
		}
		snprintf(cmd, sizeof cmd, "RCPT TO:<postmaster@%s>", probe_local_domain(cfg));
		/* DATA may wait for the client's name (client_dns_timeout). */
		if (probe_cmd(&p, "MAIL FROM:<>") != 250 || probe_cmd(&p, cmd) != 250 ||
		    probe_send(&p, "DATA\r\n") < 0 ||
		    probe_reply(&p, SELFTEST_TIMEOUT_MS +
		    (int)cfg->client_dns_timeout * 1000) != 354) {
			selftest_add(rep, "smtp_smuggling", ls->text, SELFTEST_SKIP, NULL,
			    "no transaction to postmaster from here (%s)", p.last);
			probe_close(&p);
			return;
		}
		/* Data that a vulnerable server ends early, followed by a
		 * command it would then answer; hung up before the real end,
		 * so nothing is queued. */
		snprintf(data, sizeof data, "Subject: mailctl selftest\r\n\r\nprobe%sRSET\r\n",
		    ends[i].end);
		if (probe_send(&p, data) < 0) {
			probe_close(&p);
			continue;
		}
		code = probe_reply(&p, SELFTEST_QUIET_MS);
		probe_close(&p);
		if (code >= 200 && code < 300) {
			size_t l = strlen(ended);
			snprintf(ended + l, sizeof ended - l, "%s%s", l ? " " : "", ends[i].name);
		}
	}
	if (ended[0] != '\0')
		selftest_add(rep, "smtp_smuggling", ls->text, SELFTEST_FAIL,
		    "end the data only at <CR><LF>.<CR><LF> (RFC 5321 4.1.1.4)",
		    "the data ended at %s", ended);
	else
		selftest_add(rep, "smtp_smuggling", ls->text, SELFTEST_PASS, NULL,
		    "bare-LF ends of data are not taken as the end");
}

/* STARTTLS with NOOP in the same packet; the NOOP must not be answered
 * inside TLS. Also checks the certificate of the handshake. */
static void
check_starttls(const struct listen_spec *ls, const struct sockaddr_storage *dst,
    struct selftest_report *rep)
{
	char err[256];
	struct probe p;
	int code;

	if (probe_open(&p, ls, dst, NULL, NULL, NULL, err, sizeof err) < 0) {
		selftest_add(rep, "starttls_inject", ls->text, SELFTEST_FAIL, NULL, "%s", err);
		return;
	}
	if (probe_send(&p, "STARTTLS\r\nNOOP\r\n") < 0 ||
	    (code = probe_reply(&p, SELFTEST_TIMEOUT_MS)) != 220) {
		selftest_add(rep, "starttls_inject", ls->text, SELFTEST_PASS, NULL,
		    "STARTTLS with a command after it refused (%s)", p.last);
		probe_close(&p);
		return;
	}
	p.len = 0;	/* what the server sent in clear after 220 is not TLS */
	if (probe_tls(&p, NULL, err, sizeof err) != 0) {
		selftest_add(rep, "starttls_inject", ls->text, SELFTEST_FAIL,
		    "check tls_cert_file, tls_key_file and tls_priority", "%s", err);
		probe_close(&p);
		return;
	}
	code = probe_reply(&p, SELFTEST_QUIET_MS);
	if (code != 0)
		selftest_add(rep, "starttls_inject", ls->text, SELFTEST_FAIL,
		    "discard the input buffered before the TLS handshake (CVE-2011-0411)",
		    "a command sent before TLS was answered inside it (%s)", p.last);
	else
		selftest_add(rep, "starttls_inject", ls->text, SELFTEST_PASS, NULL,
		    "a command sent with STARTTLS was discarded");
	probe_close(&p);
}

/* The certificate the listener shows, and the old protocol versions. */
static void
check_tls(const struct listen_spec *ls, const struct sockaddr_storage *dst,
    struct selftest_report *rep)
{
	static const char old[] = "NORMAL:-VERS-ALL:+VERS-TLS1.1:+VERS-TLS1.0";
	char err[256];
	struct probe p;
	int rc;

	for (int pass = 0; pass < 2; pass++) {
		const char *prio = pass == 0 ? NULL : old;

		if (probe_connect(&p, dst, NULL, err, sizeof err) < 0) {
			selftest_add(rep, "tls_cert", ls->text, SELFTEST_FAIL, NULL, "%s", err);
			return;
		}
		if (ls->kind != LISTEN_SMTPS &&
		    (probe_reply(&p, SELFTEST_TIMEOUT_MS) != 220 ||
		    probe_cmd(&p, "EHLO selftest.invalid") != 250 ||
		    probe_cmd(&p, "STARTTLS") != 220)) {
			selftest_add(rep, pass ? "tls_version" : "tls_cert", ls->text,
			    SELFTEST_FAIL, NULL, "no STARTTLS (%s)", p.last);
			probe_close(&p);
			return;
		}
		rc = probe_tls(&p, prio, err, sizeof err);
		if (pass == 1) {
			if (rc == -2)
				selftest_add(rep, "tls_version", ls->text, SELFTEST_SKIP, NULL,
				    "this GnuTLS cannot offer TLS 1.0 or 1.1 to try");
			else if (rc == 0)
				selftest_add(rep, "tls_version", ls->text, SELFTEST_FAIL,
				    "leave TLS 1.0 and 1.1 out of tls_priority",
				    "a %s handshake succeeded",
				    gnutls_protocol_get_name(gnutls_protocol_get_version(p.tls)));
			else
				selftest_add(rep, "tls_version", ls->text, SELFTEST_PASS, NULL,
				    "TLS 1.0 and 1.1 refused");
		} else if (rc != 0) {
			selftest_add(rep, "tls_cert", ls->text, SELFTEST_FAIL,
			    "check tls_cert_file, tls_key_file and tls_priority", "%s", err);
		} else {
			unsigned n = 0;
			const gnutls_datum_t *certs = gnutls_certificate_get_peers(p.tls, &n);
			gnutls_x509_crt_t crt;
			time_t expires = 0;

			if (n > 0 && gnutls_x509_crt_init(&crt) == 0) {
				if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0)
					expires = gnutls_x509_crt_get_expiration_time(crt);
				gnutls_x509_crt_deinit(crt);
			}
			if (expires <= 0)
				selftest_add(rep, "tls_cert", ls->text, SELFTEST_FAIL,
				    "check tls_cert_file", "no certificate could be read");
			else if (expires - time(NULL) < SELFTEST_CERT_DAYS * 86400)
				selftest_add(rep, "tls_cert", ls->text, SELFTEST_FAIL,
				    "renew the certificate of tls_cert_file, then SIGHUP",
				    "the certificate expires in %lld days",
				    (long long)((expires - time(NULL)) / 86400));
			else
				selftest_add(rep, "tls_cert", ls->text, SELFTEST_PASS, NULL,
				    "the certificate is valid for %lld days more (%s)",
				    (long long)((expires - time(NULL)) / 86400),
				    gnutls_protocol_get_name(gnutls_protocol_get_version(p.tls)));
		}
		probe_close(&p);
	}
}

void
selftest_listener(const struct config *cfg, const struct listen_spec *ls,
    struct selftest_report *rep)
{
	struct sockaddr_storage dst, src;
	int stranger, auth = 0, starttls = 0;
	char err[256];
	struct probe p;

	probe_target(ls, &dst);
	stranger = probe_stranger(cfg, dst.ss_family, &src);
	if (probe_open(&p, ls, &dst, stranger ? &src : NULL, &auth, &starttls, err,
	    sizeof err) < 0) {
		selftest_add(rep, "connect", ls->text, SELFTEST_FAIL,
		    "is the daemon running, with this config?", "%s", err);
		return;
	}
	(void)probe_cmd(&p, "QUIT");
	probe_close(&p);
	if (ls->kind == LISTEN_SMTPS)
		selftest_add(rep, "auth_plaintext", ls->text, SELFTEST_PASS, NULL,
		    "TLS from the first byte");
	else if (!stranger)
		selftest_add(rep, "auth_plaintext", ls->text, SELFTEST_SKIP, NULL,
		    "every loopback address is trusted; probe from outside");
	else if (auth)
		selftest_add(rep, "auth_plaintext", ls->text, SELFTEST_FAIL,
		    "leave strangers out of auth_plaintext_networks: AUTH then waits for STARTTLS",
		    "AUTH offered before TLS");
	else
		selftest_add(rep, "auth_plaintext", ls->text, SELFTEST_PASS, NULL,
		    "AUTH not offered before TLS");
	if (stranger)
		check_open_relay(cfg, ls, &dst, &src, rep);
	else
		selftest_add(rep, "open_relay", ls->text, SELFTEST_SKIP, NULL,
		    "every loopback address is in relay_networks; probe from outside");
	if (ls->kind == LISTEN_SMTP)
		check_smuggling(cfg, ls, &dst, rep);
	if (ls->kind != LISTEN_SMTPS && !starttls) {
		selftest_add(rep, "starttls_inject", ls->text, SELFTEST_SKIP, NULL,
		    "STARTTLS not offered");
		selftest_add(rep, "tls_cert", ls->text, cfg->tls_cert_file ? SELFTEST_FAIL :
		    SELFTEST_SKIP, cfg->tls_cert_file ? "check the TLS settings" : NULL,
		    "no TLS on this listener");
		return;
	}
	if (ls->kind != LISTEN_SMTPS)
		check_starttls(ls, &dst, rep);
	check_tls(ls, &dst, rep);
}

int
selftest_peer_chain(const struct listen_spec *ls, gnutls_datum_t **chain_r,
    unsigned *n_r, char *err, size_t errsize)
{
	struct sockaddr_storage dst;
	const gnutls_datum_t *certs;
	gnutls_datum_t *chain;
	unsigned n = 0;
	struct probe p;

	*chain_r = NULL;
	*n_r = 0;
	probe_target(ls, &dst);
	if (probe_connect(&p, &dst, NULL, err, errsize) < 0)
		return -1;
	if (ls->kind != LISTEN_SMTPS &&
	    (probe_reply(&p, SELFTEST_TIMEOUT_MS) != 220 ||
	    probe_cmd(&p, "EHLO selftest.invalid") != 250 ||
	    probe_cmd(&p, "STARTTLS") != 220)) {
		snprintf(err, errsize, "no STARTTLS on %s (%s)", ls->text, p.last);
		probe_close(&p);
		return -1;
	}
	if (probe_tls(&p, NULL, err, errsize) != 0) {
		probe_close(&p);
		return -1;
	}
	certs = gnutls_certificate_get_peers(p.tls, &n);
	if (certs == NULL || n == 0) {
		snprintf(err, errsize, "%s sent no certificate", ls->text);
		probe_close(&p);
		return -1;
	}
	chain = xcalloc(n, sizeof *chain);
	for (unsigned i = 0; i < n; i++) {
		chain[i].data = xmalloc(certs[i].size ? certs[i].size : 1);
		memcpy(chain[i].data, certs[i].data, certs[i].size);
		chain[i].size = certs[i].size;
	}
	probe_close(&p);
	*chain_r = chain;
	*n_r = n;
	return 0;
}

void
selftest_chain_free(gnutls_datum_t *chain, unsigned n)
{
	for (unsigned i = 0; chain != NULL && i < n; i++)
		free(chain[i].data);
	free(chain);
}
