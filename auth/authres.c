/*
 * authres: Authentication-Results (RFC 8601), built and recognised.
 *
 * Everything that comes from outside (domains from DNS and headers,
 * selectors, addresses, reasons that quote them) is written as a token
 * when it is one, as a quoted-string otherwise, and comments keep only
 * printable ASCII without parentheses or backslashes, so that a hostile
 * value can neither end the field nor start a new one.
 */
#include "auth/authres.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"

/* RFC 2045 token: printable ASCII without SP and tspecials. */
static int
token_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

static int
is_token(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (!token_char((unsigned char)*s))
			return 0;
	return 1;
}

/* A pvalue (RFC 8601 2.2): a domain or local@domain as it is when it is
 * made of atext and dots, else a quoted-string. */
static int
put_value(struct buf *out, const char *v)
{
	int plain = *v != '\0';

	for (const char *p = v; *p && plain; p++)
		plain = isalnum((unsigned char)*p) ||
		    strchr("!#$%&'*+-/=?^_`{|}~.@", *p) != NULL;
	if (plain)
		return buf_puts(out, v);
	if (buf_append(out, "\"", 1) != 0)
		return -1;
	for (const char *p = v; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c > 0x7e)
			c = '?';
		if ((c == '"' || c == '\\') && buf_append(out, "\\", 1) != 0)
			return -1;
		if (buf_append(out, &c, 1) != 0)
			return -1;
	}
	return buf_append(out, "\"", 1);
}

static int
put_comment(struct buf *out, const char *text)
{
	if (text == NULL || *text == '\0')
		return 0;
	if (buf_puts(out, " (") != 0)
		return -1;
	for (const char *p = text; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c > 0x7e || c == '(' || c == ')' || c == '\\')
			c = ' ';
		if (buf_append(out, &c, 1) != 0)
			return -1;
	}
	return buf_puts(out, ")");
}

static int
put_spf(struct buf *out, const struct spf_outcome *o, int helo)
{
	const char *why = o->problem[0] ? o->problem :
	    o->mechanism[0] ? o->mechanism : NULL;
	char comment[320];
	int rc;

	if (why != NULL && o->problem[0] == '\0')
		snprintf(comment, sizeof comment, "matched %s", why);
	else
		str_copy(comment, why ? why : "", sizeof comment);
	rc = buf_printf(out, ";\r\n\tspf=%s", spf_result_name(o->result));
	rc |= put_comment(out, comment);
	if (helo) {
		const char *at = strrchr(o->sender, '@');
		rc |= buf_puts(out, " smtp.helo=");
		rc |= put_value(out, at ? at + 1 : o->sender);
	} else {
		rc |= buf_puts(out, " smtp.mailfrom=");
		rc |= put_value(out, o->sender);
	}
	return rc ? -1 : 0;
}

static int
put_dkim(struct buf *out, const struct dkim_results *r)
{
	int rc = 0;

	if (r->n == 0)
		return buf_puts(out, ";\r\n\tdkim=none");
	for (size_t i = 0; i < r->n && rc == 0; i++) {
		const struct dkim_sig_result *s = &r->sig[i];
		char comment[200];
		if (s->result == DKIM_PASS && s->testing)
			snprintf(comment, sizeof comment, "%s; key in testing mode",
			    s->reason);
		else
			str_copy(comment, s->result == DKIM_PASS &&
			    s->length < 0 ? "" : s->reason, sizeof comment);
		rc |= buf_printf(out, ";\r\n\tdkim=%s", dkim_result_name(s->result));
		rc |= put_comment(out, comment);
		if (s->domain[0] != '\0') {
			rc |= buf_puts(out, "\r\n\t header.d=");
			rc |= put_value(out, s->domain);
			rc |= buf_puts(out, " header.s=");
			rc |= put_value(out, s->selector);
			rc |= buf_printf(out, " header.a=%s", dkim_alg_name(s->alg));
			if (s->b_prefix[0] != '\0') {
				rc |= buf_puts(out, " header.b=");
				rc |= put_value(out, s->b_prefix);
			}
		}
	}
	return rc ? -1 : 0;
}

static int
put_dmarc(struct buf *out, const struct dmarc_outcome *o)
{
	char comment[300];
	int rc;

	if (o->result == DMARC_PASS || o->result == DMARC_FAIL)
		snprintf(comment, sizeof comment, "p=%s sp=%s pct=%u dis=%s%s",
		    dmarc_policy_name(o->record.p),
		    dmarc_policy_name(o->record.sp), o->record.pct,
		    dmarc_policy_name(o->disposition),
		    o->sampled_out ? " sampled out" : "");
	else
		str_copy(comment, o->problem, sizeof comment);
	rc = buf_printf(out, ";\r\n\tdmarc=%s", dmarc_result_name(o->result));
	rc |= put_comment(out, comment);
	if (o->from_domain[0] != '\0') {
		rc |= buf_puts(out, " header.from=");
		rc |= put_value(out, o->from_domain);
	}
	return rc ? -1 : 0;
}

int
authres_build(const struct authres_input *in, struct buf *out)
{
	int rc;

	if (in->authserv_id == NULL || !is_token(in->authserv_id))
		return -1;
	rc = buf_printf(out, "Authentication-Results: %s", in->authserv_id);
	if (in->spf == NULL && in->spf_helo == NULL && in->dkim == NULL &&
	    in->dmarc == NULL)
		rc |= buf_puts(out, "; none");
	if (in->spf_helo != NULL)
		rc |= put_spf(out, in->spf_helo, 1);
	if (in->spf != NULL)
		rc |= put_spf(out, in->spf, 0);
	if (in->dkim != NULL)
		rc |= put_dkim(out, in->dkim);
	if (in->dmarc != NULL)
		rc |= put_dmarc(out, in->dmarc);
	rc |= buf_puts(out, "\r\n");
	return rc ? -1 : 0;
}

/* Skips CFWS (blanks, folding and comments) at v[i]. */
static size_t
skip_cfws(const char *v, size_t n, size_t i)
{
	int depth = 0;

	for (; i < n; i++) {
		char c = v[i];
		if (depth > 0) {
			if (c == '\\' && i + 1 < n)
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (c == '(')
			depth++;
		else if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
			break;
	}
	return i;
}

int
authres_field_is_ours(const struct auth_field *f, const char *authserv_id)
{
	const char *v = f->value;
	size_t n = f->valuelen, i, idlen = strlen(authserv_id);
	char id[256];
	size_t o = 0;

	if (!auth_field_is(f, "Authentication-Results"))
		return 0;
	i = skip_cfws(v, n, 0);
	if (i < n && v[i] == '"') {
		/* a quoted-string authserv-id */
		for (i++; i < n && v[i] != '"' && o < sizeof id - 1; i++) {
			if (v[i] == '\\' && i + 1 < n)
				i++;
			id[o++] = v[i];
		}
	} else {
		for (; i < n && token_char((unsigned char)v[i]) && o < sizeof id - 1;
		    i++)
			id[o++] = v[i];
	}
	id[o] = '\0';
	return o == idlen && o > 0 && strncasecmp(id, authserv_id, o) == 0;
}

int
authres_strip(const char *h, size_t len, const char *authserv_id,
    struct buf *out)
{
	struct auth_field f;
	size_t pos = 0, last = 0;
	int removed = 0;

	while (auth_header_next(h, len, &pos, &f)) {
		if (!authres_field_is_ours(&f, authserv_id))
			continue;
		/* keep everything between the last cut and this field */
		if (buf_append(out, h + last, (size_t)(f.raw - (h + last))) != 0)
			return -1;
		last = (size_t)(f.raw - h) + f.rawlen;
		removed++;
	}
	if (buf_append(out, h + last, len - last) != 0)
		return -1;
	return removed;
}
