/*
 * sasl_dovecot: Dovecot's auth-client protocol, client side (see
 * sasl_dovecot.h). Learned from Postfix's xsasl_dovecot_server.c and
 * Dovecot's auth-client-connection.c and auth-request-handler.c.
 */
#include "server/sasl_dovecot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"

struct sasl_dovecot {
	const struct sasl_dovecot_spec *spec;
	int fd;
	unsigned next_id;
	unsigned open_id;	/* the exchange in progress, 0 when none */
	struct sasl_dovecot_handshake hs;
	struct buf in, out;
};

int
sasl_dovecot_spec_init(struct sasl_dovecot_spec *s, const char *endpoint,
    char *err, size_t errsize)
{
	memset(s, 0, sizeof *s);
	if (filter_endpoint_parse(endpoint, &s->ep, err, errsize) != 0)
		return -1;
	s->timeout_ms = SASL_DOVECOT_TIMEOUT_MS;
	return 0;
}

/* ---- pure parts ---- */

int
sasl_dovecot_base64_ok(const char *s)
{
	size_t n = strlen(s), i = 0, pad = 0;

	if (strcmp(s, "=") == 0)
		return 1;
	for (; i < n; i++) {
		char c = s[i];

		if (c == '=') {
			pad++;
			continue;
		}
		if (pad > 0)
			return 0;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '+' || c == '/'))
			return 0;
	}
	return pad <= 2;
}

/* Splits line at TABs into at most max fields (in place). */
static size_t
split_tabs(char *line, char **f, size_t max)
{
	size_t n = 0;

	f[n++] = line;
	for (char *p = line; *p != '\0' && n < max; p++)
		if (*p == '\t') {
			*p = '\0';
			f[n++] = p + 1;
		}
	return n;
}

/* Undoes Dovecot's tab-escaping into out (printable: anything below 0x20
 * or DEL becomes '?'). */
static void
unescape(const char *s, char *out, size_t outsize)
{
	size_t n = 0;

	for (; *s != '\0' && n + 1 < outsize; s++) {
		char c = *s;

		if (c == '\001' && s[1] != '\0') {
			s++;
			switch (*s) {
			case '0': c = '\0'; break;
			case '1': c = '\001'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'n': case 'l': c = '\n'; break;
			default: c = *s; break;
			}
		}
		out[n++] = ((unsigned char)c < 0x20 || c == 0x7f) ? '?' : c;
	}
	out[n] = '\0';
}

int
sasl_dovecot_handshake_line(struct sasl_dovecot_handshake *hs,
    const char *line, const char **why_r)
{
	char copy[SASL_DOVECOT_LINE_MAX + 1], *f[8];
	size_t nf;

	if (str_copy(copy, line, sizeof copy) != 0) {
		*why_r = "handshake line too long";
		return -1;
	}
	nf = split_tabs(copy, f, 8);
	if (strcmp(f[0], "VERSION") == 0) {
		if (nf < 3 || strcmp(f[1], "1") != 0) {
			*why_r = "auth protocol version is not 1";
			return -1;
		}
		hs->version_ok = 1;
	} else if (strcmp(f[0], "MECH") == 0 && nf >= 2) {
		int skip = 0;

		/* Private mechanisms are not for clients; anonymous ones
		 * would let anyone relay as "authenticated". */
		for (size_t i = 2; i < nf; i++)
			if (strcmp(f[i], "private") == 0 || strcmp(f[i], "anonymous") == 0)
				skip = 1;
		hs->any_mech = 1;
		if (skip)
			return 0;
		if (hs->nmechs == SASL_DOVECOT_MECHS_MAX) {
			*why_r = "too many mechanisms";
			return -1;
		}
		if (strlen(f[1]) == 0 || strlen(f[1]) >= sizeof hs->mechs[0]) {
			*why_r = "bad mechanism name";
			return -1;
		}
		for (const char *p = f[1]; *p != '\0'; p++)
			if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_')) {
				*why_r = "bad mechanism name";
				return -1;
			}
		str_copy(hs->mechs[hs->nmechs], f[1], sizeof hs->mechs[0]);
		{
			size_t at = strlen(hs->mechlist);

			/* mechlist has room for every name and a space. */
			snprintf(hs->mechlist + at, sizeof hs->mechlist - at, "%s%s",
			    hs->nmechs > 0 ? " " : "", f[1]);
		}
		hs->nmechs++;
	} else if (strcmp(f[0], "DONE") == 0) {
		if (!hs->version_ok) {
			*why_r = "handshake without VERSION";
			return -1;
		}
		if (!hs->any_mech) {
			/* auth-master and auth-userdb send no MECH. */
			*why_r = "no mechanisms: not an auth-client socket";
			return -1;
		}
		if (hs->nmechs == 0) {
			*why_r = "no mechanism that may be offered";
			return -1;
		}
		hs->done = 1;
	}
	/* SPID, CUID, COOKIE and unknown lines do not matter here. */
	return 0;
}

int
sasl_dovecot_reply_line(const char *line, unsigned id,
    struct sasl_dovecot_result *res, const char **why_r)
{
	char copy[SASL_DOVECOT_LINE_MAX + 1], *f[64], idtext[16];
	size_t nf;
	int fail, temp = 0;

	if (str_copy(copy, line, sizeof copy) != 0) {
		*why_r = "answer line too long";
		return -1;
	}
	nf = split_tabs(copy, f, 64);
	fail = strcmp(f[0], "FAIL") == 0;
	if (!fail && strcmp(f[0], "OK") != 0 && strcmp(f[0], "CONT") != 0)
		return 0;
	snprintf(idtext, sizeof idtext, "%u", id);
	if (nf < 2 || strcmp(f[1], idtext) != 0)
		return 0;
	memset(res, 0, sizeof *res);
	if (strcmp(f[0], "CONT") == 0) {
		if (nf < 3 || !sasl_dovecot_base64_ok(f[2])) {
			*why_r = "CONT without a base64 challenge";
			return -1;
		}
		if (strlen(f[2]) >= sizeof res->challenge) {
			*why_r = "challenge too long";
			return -1;
		}
		str_copy(res->challenge, f[2], sizeof res->challenge);
		res->status = SASL_DOVECOT_CONTINUE;
		return 1;
	}
	for (size_t i = 2; i < nf; i++) {
		if (strncmp(f[i], "user=", 5) == 0)
			unescape(f[i] + 5, res->user, sizeof res->user);
		else if (strncmp(f[i], "reason=", 7) == 0)
			unescape(f[i] + 7, res->reason, sizeof res->reason);
		else if (strcmp(f[i], "temp") == 0 ||
		    strcmp(f[i], "code=temp_fail") == 0)
			temp = 1;
	}
	if (!fail) {
		if (res->user[0] == '\0') {
			*why_r = "OK without a user";
			return -1;
		}
		res->status = SASL_DOVECOT_OK;
		return 1;
	}
	res->status = temp ? SASL_DOVECOT_TEMPFAIL : SASL_DOVECOT_FAIL;
	return 1;
}

/* ---- the connection ---- */

struct sasl_dovecot *
sasl_dovecot_new(const struct sasl_dovecot_spec *spec)
{
	struct sasl_dovecot *c = xcalloc(1, sizeof *c);

	c->spec = spec;
	c->fd = -1;
	buf_init(&c->in, SASL_DOVECOT_LINE_MAX + 16384);
	buf_init(&c->out, 2 * SASL_DOVECOT_LINE_MAX);
	return c;
}

static void
dc_close(struct sasl_dovecot *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->open_id = 0;
	buf_reset(&c->in);
	memset(&c->hs, 0, sizeof c->hs);
}

void
sasl_dovecot_free(struct sasl_dovecot **cp)
{
	struct sasl_dovecot *c = *cp;

	if (c == NULL)
		return;
	dc_close(c);
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
	*cp = NULL;
}

static void
dc_warn(struct sasl_dovecot *c, const char *what, int e)
{
	char tmp[128];

	log_warn("dovecot auth %s: %s%s%s", c->spec->ep.text, what,
	    e != 0 ? ": " : "", e == 0 ? "" : e == ETIMEDOUT ? "timed out" :
	    strerror_r(e, tmp, sizeof tmp));
}

/* Reads one line (without LF, CR dropped) into line. 0, 1 at end of
 * stream with nothing read, or -1 with errno (EMSGSIZE: too long). */
static int
dc_read_line(struct sasl_dovecot *c, int64_t deadline, char *line,
    size_t linesize)
{
	for (;;) {
		char *nl = c->in.data != NULL ? memchr(c->in.data, '\n', c->in.len) : NULL;
		char chunk[16384];
		ssize_t r;

		if (nl != NULL) {
			size_t n = (size_t)(nl - c->in.data);

			if (n > 0 && c->in.data[n - 1] == '\r')
				n--;
			if (n >= linesize || n > SASL_DOVECOT_LINE_MAX) {
				errno = EMSGSIZE;
				return -1;
			}
			memcpy(line, c->in.data, n);
			line[n] = '\0';
			if (memchr(line, '\0', n) != NULL) {
				errno = EPROTO;
				return -1;
			}
			buf_consume(&c->in, (size_t)(nl - c->in.data) + 1);
			return 0;
		}
		if (c->in.len > SASL_DOVECOT_LINE_MAX) {
			errno = EMSGSIZE;
			return -1;
		}
		r = filter_read_some(c->fd, chunk, sizeof chunk, deadline);
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = ECONNRESET;
			return c->in.len == 0 ? 1 : -1;
		}
		if (buf_append(&c->in, chunk, (size_t)r) != 0) {
			errno = EMSGSIZE;
			return -1;
		}
	}
}

int
sasl_dovecot_connect(struct sasl_dovecot *c)
{
	int64_t deadline = time_mono_ms() + c->spec->timeout_ms;
	char line[SASL_DOVECOT_LINE_MAX + 1];
	const char *why = NULL;

	if (c->fd >= 0)
		return 0;
	memset(&c->hs, 0, sizeof c->hs);
	c->fd = filter_connect(&c->spec->ep, deadline);
	if (c->fd < 0) {
		dc_warn(c, "connect", errno);
		return -1;
	}
	buf_reset(&c->out);
	buf_printf(&c->out, "VERSION\t1\t2\nCPID\t%ld\n", (long)getpid());
	if (filter_write_all(c->fd, c->out.data, c->out.len, deadline) != 0) {
		dc_warn(c, "write", errno);
		dc_close(c);
		return -1;
	}
	for (int n = 0; !c->hs.done; n++) {
		int rc;

		if (n > SASL_DOVECOT_MECHS_MAX + SASL_DOVECOT_SKIP_MAX) {
			dc_warn(c, "handshake too long", 0);
			dc_close(c);
			return -1;
		}
		rc = dc_read_line(c, deadline, line, sizeof line);
		if (rc != 0) {
			dc_warn(c, "handshake", rc > 0 ? ECONNRESET : errno);
			dc_close(c);
			return -1;
		}
		if (sasl_dovecot_handshake_line(&c->hs, line, &why) != 0) {
			dc_warn(c, why, 0);
			dc_close(c);
			return -1;
		}
	}
	return 0;
}

const char *
sasl_dovecot_mechs(const struct sasl_dovecot *c)
{
	return c->fd >= 0 ? c->hs.mechlist : "";
}

/* Dovecot's spelling of mech, or NULL when it does not offer it. */
static const char *
dc_mech(const struct sasl_dovecot *c, const char *mech)
{
	if (c->fd < 0)
		return NULL;
	for (size_t i = 0; i < c->hs.nmechs; i++)
		if (strcasecmp(c->hs.mechs[i], mech) == 0)
			return c->hs.mechs[i];
	return NULL;
}

int
sasl_dovecot_has_mech(const struct sasl_dovecot *c, const char *mech)
{
	return dc_mech(c, mech) != NULL;
}

static void
res_set(struct sasl_dovecot_result *res, enum sasl_dovecot_status st,
    const char *reason)
{
	memset(res, 0, sizeof *res);
	res->status = st;
	str_copy(res->reason, reason, sizeof res->reason);
}

/* Sends c->out and waits for the answer to c->open_id. stale_r (may be
 * NULL) is set when the connection turned out closed before any answer. */
static void
dc_exchange(struct sasl_dovecot *c, struct sasl_dovecot_result *res,
    int *stale_r)
{
	int64_t deadline = time_mono_ms() + c->spec->timeout_ms;
	char *line = xmalloc(SASL_DOVECOT_LINE_MAX + 1);

	if (stale_r != NULL)
		*stale_r = 0;
	if (filter_write_all(c->fd, c->out.data, c->out.len, deadline) != 0) {
		if (stale_r != NULL && errno == EPIPE)
			*stale_r = 1;
		else
			dc_warn(c, "write", errno);
		goto broken;
	}
	for (int skipped = 0; skipped <= SASL_DOVECOT_SKIP_MAX; skipped++) {
		const char *why = NULL;
		int rc = dc_read_line(c, deadline, line, SASL_DOVECOT_LINE_MAX + 1);

		if (rc != 0) {
			if (rc > 0 && stale_r != NULL)
				*stale_r = 1;
			else
				dc_warn(c, "read", rc > 0 ? ECONNRESET : errno);
			goto broken;
		}
		rc = sasl_dovecot_reply_line(line, c->open_id, res, &why);
		if (rc < 0) {
			dc_warn(c, why, 0);
			goto broken;
		}
		if (rc == 1) {
			if (res->status != SASL_DOVECOT_CONTINUE)
				c->open_id = 0;
			free(line);
			return;
		}
	}
	dc_warn(c, "no answer among the lines it sent", 0);
broken:
	free(line);
	dc_close(c);
	res_set(res, SASL_DOVECOT_TEMPFAIL, "Connection lost to authentication server");
}

void
sasl_dovecot_start(struct sasl_dovecot *c,
    const struct sasl_dovecot_request *rq, struct sasl_dovecot_result *res)
{
	if (rq->initial != NULL && !sasl_dovecot_base64_ok(rq->initial)) {
		res_set(res, SASL_DOVECOT_INVALID, "Invalid base64 data in initial response");
		return;
	}
	if (c->open_id != 0)
		sasl_dovecot_cancel(c);
	for (int attempt = 0; attempt < 2; attempt++) {
		int reused = c->fd >= 0, stale = 0;
		const char *mech;

		if (reused && !filter_conn_idle_ok(c->fd)) {
			dc_close(c);
			reused = 0;
		}
		if (sasl_dovecot_connect(c) != 0) {
			res_set(res, SASL_DOVECOT_TEMPFAIL,
			    "Can't connect to authentication server");
			return;
		}
		/* The name as Dovecot spells it: nothing of the client's
		 * goes into the line unchecked. */
		if ((mech = dc_mech(c, rq->mech)) == NULL) {
			res_set(res, SASL_DOVECOT_FAIL, "Invalid authentication mechanism");
			return;
		}
		if (++c->next_id == 0)
			c->next_id = 1;
		c->open_id = c->next_id;
		buf_reset(&c->out);
		buf_printf(&c->out, "AUTH\t%u\t%s\tservice=%s\tnologin", c->open_id,
		    mech, rq->service != NULL ? rq->service : "smtp");
		if (rq->secured)
			buf_puts(&c->out, "\tsecured");
		if (rq->local_ip != NULL && strpbrk(rq->local_ip, "\t\n\001") == NULL)
			buf_printf(&c->out, "\tlip=%s", rq->local_ip);
		if (rq->remote_ip != NULL && strpbrk(rq->remote_ip, "\t\n\001") == NULL)
			buf_printf(&c->out, "\trip=%s", rq->remote_ip);
		if (rq->local_port != 0)
			buf_printf(&c->out, "\tlport=%u", (unsigned)rq->local_port);
		if (rq->remote_port != 0)
			buf_printf(&c->out, "\trport=%u", (unsigned)rq->remote_port);
		/* resp= must be the last parameter. */
		if (rq->initial != NULL && buf_printf(&c->out, "\tresp=%s",
		    strcmp(rq->initial, "=") == 0 ? "" : rq->initial) != 0) {
			res_set(res, SASL_DOVECOT_INVALID, "Initial response too long");
			c->open_id = 0;
			return;
		}
		buf_puts(&c->out, "\n");
		dc_exchange(c, res, reused ? &stale : NULL);
		if (!stale)
			return;
		dc_close(c);
	}
	res_set(res, SASL_DOVECOT_TEMPFAIL, "Connection lost to authentication server");
}

void
sasl_dovecot_continue(struct sasl_dovecot *c, const char *response,
    struct sasl_dovecot_result *res)
{
	if (c->fd < 0 || c->open_id == 0) {
		res_set(res, SASL_DOVECOT_TEMPFAIL, "No authentication in progress");
		return;
	}
	if (!sasl_dovecot_base64_ok(response)) {
		sasl_dovecot_cancel(c);
		res_set(res, SASL_DOVECOT_INVALID, "Invalid base64 data in continued response");
		return;
	}
	buf_reset(&c->out);
	if (buf_printf(&c->out, "CONT\t%u\t%s\n", c->open_id, response) != 0) {
		sasl_dovecot_cancel(c);
		res_set(res, SASL_DOVECOT_INVALID, "Response too long");
		return;
	}
	dc_exchange(c, res, NULL);
}

void
sasl_dovecot_cancel(struct sasl_dovecot *c)
{
	if (c->fd >= 0 && c->open_id != 0) {
		int64_t deadline = time_mono_ms() + c->spec->timeout_ms;

		buf_reset(&c->out);
		buf_printf(&c->out, "CANCEL\t%u\n", c->open_id);
		if (filter_write_all(c->fd, c->out.data, c->out.len, deadline) != 0)
			dc_close(c);
	}
	c->open_id = 0;
}
