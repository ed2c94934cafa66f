/*
 * policy: Postfix's access policy delegation protocol, client side (see
 * policy.h). The actions follow Postfix's access(5) and smtpd_check.c.
 */
#include "filter/policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "filter/milter_mods.h"
#include "lib/log.h"
#include "lib/util.h"

#define REPLY_CONFIG	"451 4.3.5 Server configuration problem"

int
policy_spec_init(struct policy_spec *s, const char *endpoint, char *err,
    size_t errsize)
{
	memset(s, 0, sizeof *s);
	if (filter_endpoint_parse(endpoint, &s->ep, err, errsize) != 0)
		return -1;
	s->connect_timeout_ms = 10000;
	s->timeout_ms = 100000;
	s->idle_ms = 300000;
	str_copy(s->default_action, POLICY_DEFAULT_ACTION, sizeof s->default_action);
	return 0;
}

int
policy_spec_default(struct policy_spec *s, const char *action, char *err,
    size_t errsize)
{
	struct policy_verdict v;
	const char *why = NULL;

	if (policy_action_parse(action, &v, &why) != 0 ||
	    str_copy(s->default_action, action, sizeof s->default_action) != 0) {
		if (errsize > 0 && snprintf(err, errsize, "bad default action: %s",
		    why != NULL ? why : "too long") < 0)
			err[0] = '\0';
		return -1;
	}
	return 0;
}

const char *
policy_kind_name(enum policy_kind k)
{
	switch (k) {
	case POLICY_DUNNO: return "dunno";
	case POLICY_OK: return "ok";
	case POLICY_REJECT: return "reject";
	case POLICY_DEFER: return "defer";
	case POLICY_DEFER_IF_PERMIT: return "defer_if_permit";
	case POLICY_DEFER_IF_REJECT: return "defer_if_reject";
	case POLICY_SHUTDOWN: return "shutdown";
	case POLICY_DISCARD: return "discard";
	case POLICY_HOLD: return "hold";
	case POLICY_PREPEND: return "prepend";
	case POLICY_REDIRECT: return "redirect";
	case POLICY_BCC: return "bcc";
	}
	return "unknown";
}

/* ---- actions ---- */

/* Copies printable text (other bytes become '?') into out. */
static void
copy_text(char *out, size_t outsize, const char *s)
{
	size_t n = 0;

	for (; *s != '\0' && n + 1 < outsize; s++)
		out[n++] = ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f) ?
		    '?' : *s;
	out[n] = '\0';
}

/* The reply "code text" for a keyword action (text may start with an
 * enhanced status code of the class; else C.7.1 is put in), checked. */
static int
keyword_reply(struct policy_verdict *v, const char *code, const char *text,
    const char *dflt, const char **why_r)
{
	char t[FILTER_REPLY_LINE_MAX], line[FILTER_REPLY_LINE_MAX * 2];

	copy_text(t, sizeof t - 16, text[0] != '\0' ? text : dflt);
	snprintf(line, sizeof line, "%s %s", code, t);
	if (filter_reply_check(line, 0, v->reply, sizeof v->reply, why_r) < 0)
		return -1;
	return 0;
}

/* Does s, a word of length n, equal kw (any case)? */
static int
word_is(const char *s, size_t n, const char *kw)
{
	return strlen(kw) == n && strncasecmp(s, kw, n) == 0;
}

static int
all_digits(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* An address for REDIRECT or BCC: one word, no brackets or controls. */
static int
action_addr(struct policy_verdict *v, const char *arg, const char **why_r)
{
	size_t n = strlen(arg);

	if (n == 0 || n >= sizeof v->addr || strpbrk(arg, " \t<>") != NULL) {
		*why_r = "bad address";
		return -1;
	}
	for (const char *p = arg; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f) {
			*why_r = "bad address";
			return -1;
		}
	memcpy(v->addr, arg, n + 1);
	return 0;
}

/* PREPEND "Name: value": a header line that cannot break the message. */
static int
action_header(struct policy_verdict *v, const char *arg, const char **why_r)
{
	const char *colon = strchr(arg, ':');
	char name[MILTER_HEADER_NAME_MAX + 1];
	size_t nlen;

	if (colon == NULL || (nlen = (size_t)(colon - arg)) == 0 ||
	    nlen > MILTER_HEADER_NAME_MAX) {
		*why_r = "PREPEND without a header";
		return -1;
	}
	memcpy(name, arg, nlen);
	name[nlen] = '\0';
	if (!milter_header_name_ok(name) || strlen(arg) >= sizeof v->header) {
		*why_r = "PREPEND with a bad header";
		return -1;
	}
	for (const char *p = colon + 1; *p != '\0'; p++)
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f) {
			*why_r = "PREPEND with a bad header";
			return -1;
		}
	memcpy(v->header, arg, strlen(arg) + 1);
	return 0;
}

int
policy_action_parse(const char *action, struct policy_verdict *v,
    const char **why_r)
{
	const char *a = action, *arg;
	size_t wl;

	memset(v, 0, sizeof *v);
	while (*a == ' ' || *a == '\t')
		a++;
	wl = strcspn(a, " \t");
	arg = a + wl;
	while (*arg == ' ' || *arg == '\t')
		arg++;

	/* Postfix's restriction names permit, reject and defer match the
	 * keywords too (the comparison ignores case). */
	if (word_is(a, wl, "OK") || word_is(a, wl, "permit") ||
	    (all_digits(a) && arg[0] == '\0' && wl == strlen(a))) {
		v->kind = POLICY_OK;
		return 0;
	}
	if (word_is(a, wl, "DUNNO")) {
		v->kind = POLICY_DUNNO;
		return 0;
	}
	if (word_is(a, wl, "REJECT")) {
		v->kind = POLICY_REJECT;
		if (keyword_reply(v, "554", arg, "Access denied", why_r) == 0)
			return 0;
		goto bad;
	}
	if (word_is(a, wl, "DEFER") || word_is(a, wl, "DEFER_IF_PERMIT") ||
	    word_is(a, wl, "DEFER_IF_REJECT")) {
		v->kind = wl == 5 ? POLICY_DEFER : word_is(a, wl, "DEFER_IF_PERMIT") ?
		    POLICY_DEFER_IF_PERMIT : POLICY_DEFER_IF_REJECT;
		if (keyword_reply(v, "450", arg, "Try again later", why_r) == 0)
			return 0;
		goto bad;
	}
	if ((a[0] == '4' || a[0] == '5') && wl == 3 && a[1] >= '0' &&
	    a[1] <= '9' && a[2] >= '0' && a[2] <= '9') {
		char line[FILTER_REPLY_LINE_MAX * 2];
		int code;

		snprintf(line, sizeof line, "%.3s %s", a, arg[0] != '\0' ? arg :
		    (a[0] == '4' ? "Try again later" : "Access denied"));
		code = filter_reply_check(line, 0, v->reply, sizeof v->reply, why_r);
		if (code < 0)
			goto bad;
		v->kind = code == 421 ? POLICY_SHUTDOWN : code >= 500 ?
		    POLICY_REJECT : POLICY_DEFER;
		return 0;
	}
	if (word_is(a, wl, "DISCARD") || word_is(a, wl, "HOLD")) {
		v->kind = word_is(a, wl, "HOLD") ? POLICY_HOLD : POLICY_DISCARD;
		copy_text(v->text, sizeof v->text, arg);
		return 0;
	}
	if (word_is(a, wl, "PREPEND")) {
		v->kind = POLICY_PREPEND;
		if (action_header(v, arg, why_r) == 0)
			return 0;
		goto bad;
	}
	if (word_is(a, wl, "REDIRECT") || word_is(a, wl, "BCC")) {
		v->kind = word_is(a, wl, "BCC") ? POLICY_BCC : POLICY_REDIRECT;
		if (action_addr(v, arg, why_r) == 0)
			return 0;
		goto bad;
	}
	if (word_is(a, wl, "WARN") || word_is(a, wl, "INFO")) {
		v->kind = POLICY_DUNNO;
		copy_text(v->text, sizeof v->text, arg);
		return 0;
	}
	*why_r = word_is(a, wl, "FILTER") ? "FILTER is not supported" :
	    "unknown action";
bad:
	memset(v, 0, sizeof *v);
	v->kind = POLICY_DEFER;
	str_copy(v->reply, REPLY_CONFIG, sizeof v->reply);
	return -1;
}

/* ---- requests ---- */

static int
put_attr(struct buf *out, const char *name, const char *value)
{
	char v[POLICY_VALUE_MAX + 1];
	size_t n = 0;

	/* UTF-8 (SMTPUTF8 addresses) goes as it is; a control byte would
	 * break the line format and becomes '?'. */
	for (const char *p = value != NULL ? value : ""; *p != '\0' &&
	    n < POLICY_VALUE_MAX; p++)
		v[n++] = ((unsigned char)*p < 0x20 || *p == 0x7f) ? '?' : *p;
	v[n] = '\0';
	return buf_printf(out, "%s=%s\n", name, v);
}

int
policy_request_encode(const struct policy_request *rq, struct buf *out)
{
	char rc[24], sz[24];
	size_t start = out->len;
	int e = 0;

	snprintf(rc, sizeof rc, "%lu", rq->recipient_count);
	snprintf(sz, sizeof sz, "%lu", rq->size);
	e |= put_attr(out, "request", "smtpd_access_policy");
	e |= put_attr(out, "protocol_state", rq->protocol_state);
	e |= put_attr(out, "protocol_name", rq->protocol_name);
	e |= put_attr(out, "helo_name", rq->helo_name);
	e |= put_attr(out, "queue_id", rq->queue_id);
	e |= put_attr(out, "sender", rq->sender);
	e |= put_attr(out, "recipient", rq->recipient);
	e |= put_attr(out, "recipient_count", rc);
	e |= put_attr(out, "client_address", rq->client_address);
	e |= put_attr(out, "client_name", rq->client_name);
	e |= put_attr(out, "reverse_client_name", rq->reverse_client_name);
	e |= put_attr(out, "instance", rq->instance);
	e |= put_attr(out, "sasl_method", rq->sasl_method);
	e |= put_attr(out, "sasl_username", rq->sasl_username);
	e |= put_attr(out, "sasl_sender", rq->sasl_sender);
	e |= put_attr(out, "size", sz);
	e |= put_attr(out, "ccert_subject", rq->ccert_subject);
	e |= put_attr(out, "ccert_issuer", rq->ccert_issuer);
	e |= put_attr(out, "ccert_fingerprint", rq->ccert_fingerprint);
	e |= put_attr(out, "ccert_pubkey_fingerprint", rq->ccert_pubkey_fingerprint);
	e |= put_attr(out, "encryption_protocol", rq->encryption_protocol);
	e |= put_attr(out, "encryption_cipher", rq->encryption_cipher);
	e |= put_attr(out, "encryption_keysize", rq->encryption_keysize);
	e |= put_attr(out, "etrn_domain", rq->etrn_domain);
	e |= put_attr(out, "stress", rq->stress);
	e |= put_attr(out, "client_port", rq->client_port);
	e |= put_attr(out, "policy_context", rq->policy_context);
	e |= put_attr(out, "server_address", rq->server_address);
	e |= put_attr(out, "server_port", rq->server_port);
	e |= put_attr(out, "compatibility_level", rq->compatibility_level);
	e |= put_attr(out, "mail_version", rq->mail_version);
	e |= buf_puts(out, "\n");
	if (e != 0) {
		out->len = start;
		if (out->data != NULL)
			out->data[start] = '\0';
		return -1;
	}
	return 0;
}

/* ---- replies ---- */

void
policy_reply_init(struct policy_reply *r)
{
	memset(r, 0, sizeof *r);
}

static int
reply_error(struct policy_reply *r, const char *why)
{
	r->why = why;
	return POLICY_REPLY_ERROR;
}

int
policy_reply_feed(struct policy_reply *r, const char *data, size_t len,
    size_t *used_r)
{
	size_t off = 0;

	*used_r = 0;
	while (off < len) {
		const char *line = data + off, *nl, *eq;
		size_t n, ln;

		nl = memchr(line, '\n', len - off);
		if (nl == NULL) {
			if (len - off > POLICY_LINE_MAX + 1)
				return reply_error(r, "reply line too long");
			return POLICY_REPLY_MORE;
		}
		n = (size_t)(nl - line);
		ln = n > 0 && line[n - 1] == '\r' ? n - 1 : n;
		if (ln > POLICY_LINE_MAX)
			return reply_error(r, "reply line too long");
		if (memchr(line, '\0', ln) != NULL)
			return reply_error(r, "NUL in reply");
		r->bytes += n + 1;
		if (r->bytes > POLICY_REPLY_MAX)
			return reply_error(r, "reply too long");
		off += n + 1;
		*used_r = off;
		if (ln == 0) {
			if (!r->have_action)
				return reply_error(r, "reply without action");
			return POLICY_REPLY_DONE;
		}
		if (++r->lines > POLICY_ATTRS_MAX)
			return reply_error(r, "too many attributes");
		eq = memchr(line, '=', ln);
		if (eq == NULL || eq == line)
			return reply_error(r, "reply line is not name=value");
		if ((size_t)(eq - line) == 6 && memcmp(line, "action", 6) == 0) {
			size_t vl = ln - 7;

			if (r->have_action)
				return reply_error(r, "two actions");
			if (vl > POLICY_ACTION_MAX)
				return reply_error(r, "action too long");
			memcpy(r->action, eq + 1, vl);
			r->action[vl] = '\0';
			r->have_action = 1;
		}
	}
	return POLICY_REPLY_MORE;
}

/* ---- the client ---- */

struct policy_client {
	const struct policy_spec *spec;
	int fd;
	int64_t last_used;
	struct buf out, in;
};

struct policy_client *
policy_client_new(const struct policy_spec *spec)
{
	struct policy_client *c = xcalloc(1, sizeof *c);

	c->spec = spec;
	c->fd = -1;
	buf_init(&c->out, 128 * 1024);
	buf_init(&c->in, POLICY_LINE_MAX + 2 + 16384);
	return c;
}

static void
client_close(struct policy_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	buf_reset(&c->in);
}

void
policy_client_free(struct policy_client **cp)
{
	struct policy_client *c = *cp;

	if (c == NULL)
		return;
	client_close(c);
	buf_free(&c->out);
	buf_free(&c->in);
	free(c);
	*cp = NULL;
}

enum try_rc { TRY_OK, TRY_FAIL, TRY_STALE };

/* One try: 0 with r done, TRY_STALE when a reused connection turned out
 * closed before any reply byte, TRY_FAIL (logged) otherwise. */
static enum try_rc
client_try(struct policy_client *c, int reused, int64_t deadline,
    struct policy_reply *r)
{
	char chunk[16384], why[256];
	size_t got = 0;

	if (filter_write_all(c->fd, c->out.data, c->out.len, deadline) != 0) {
		if (reused && errno == EPIPE)
			return TRY_STALE;
		snprintf(why, sizeof why, "write: %s", errno == ETIMEDOUT ?
		    "timed out" : strerror(errno));
		goto fail;
	}
	policy_reply_init(r);
	for (;;) {
		size_t used;
		ssize_t n;
		int rc = policy_reply_feed(r, c->in.data != NULL ? c->in.data : "",
		    c->in.len, &used);

		buf_consume(&c->in, used);
		if (rc == POLICY_REPLY_DONE) {
			if (c->in.len > 0) {
				/* Bytes nobody asked for: do not reuse. */
				client_close(c);
			}
			return TRY_OK;
		}
		if (rc == POLICY_REPLY_ERROR) {
			snprintf(why, sizeof why, "%s", r->why);
			goto fail;
		}
		n = filter_read_some(c->fd, chunk, sizeof chunk, deadline);
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			if (reused && got == 0)
				return TRY_STALE;
			snprintf(why, sizeof why, "connection closed");
			goto fail;
		}
		if (n < 0) {
			snprintf(why, sizeof why, "read: %s", errno == ETIMEDOUT ?
			    "timed out" : strerror(errno));
			goto fail;
		}
		got += (size_t)n;
		if (buf_append(&c->in, chunk, (size_t)n) != 0) {
			snprintf(why, sizeof why, "reply line too long");
			goto fail;
		}
	}
fail:
	log_warn("policy %s: %s", c->spec->ep.text, why);
	client_close(c);
	return TRY_FAIL;
}

static void
client_default(struct policy_client *c, struct policy_verdict *v)
{
	const char *why;

	if (policy_action_parse(c->spec->default_action, v, &why) != 0)
		log_warn("policy %s: bad default action", c->spec->ep.text);
	v->from_default = 1;
}

void
policy_client_ask(struct policy_client *c, const struct policy_request *rq,
    struct policy_verdict *v)
{
	struct policy_reply r;
	int64_t now = time_mono_ms();
	int64_t deadline = now + c->spec->timeout_ms;
	const char *why = NULL;

	buf_reset(&c->out);
	if (policy_request_encode(rq, &c->out) != 0) {
		log_warn("policy %s: request too long", c->spec->ep.text);
		client_default(c, v);
		return;
	}
	if (c->fd >= 0 && (now - c->last_used > (int64_t)c->spec->idle_ms ||
	    !filter_conn_idle_ok(c->fd)))
		client_close(c);
	for (int attempt = 0; attempt < 2; attempt++) {
		int reused = c->fd >= 0;
		enum try_rc rc;

		if (!reused) {
			int64_t cd = time_mono_ms() + c->spec->connect_timeout_ms;
			c->fd = filter_connect(&c->spec->ep, cd < deadline ? cd : deadline);
			if (c->fd < 0) {
				log_warn("policy %s: connect: %s", c->spec->ep.text,
				    errno == ETIMEDOUT ? "timed out" : strerror(errno));
				client_default(c, v);
				return;
			}
		}
		rc = client_try(c, reused, deadline, &r);
		if (rc == TRY_STALE) {
			client_close(c);
			continue;
		}
		if (rc == TRY_FAIL)
			break;
		c->last_used = time_mono_ms();
		if (policy_action_parse(r.action, v, &why) != 0) {
			char shown[128];
			copy_text(shown, sizeof shown, r.action);
			log_warn("policy %s: %s: %s", c->spec->ep.text, why, shown);
		}
		return;
	}
	client_default(c, v);
}
