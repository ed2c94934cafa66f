/*
 * tls_report: RFC 8460 result counters, the daily aggregate (JSON and
 * text) and the _smtp._tls record parser (relay/tls_report.h).
 */
#include "relay/tls_report.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"
#include "lib/utf8.h"

#define POL_VERSION 1
#define AGG_POLICIES_MAX 64
#define AGG_FAILURES_MAX 1000
#define IP_MAX 46

static const char *const result_names[TLS_RPT_NRESULTS] = {
	[TLS_RPT_SUCCESS] = "success",
	[TLS_RPT_STARTTLS_NOT_SUPPORTED] = "starttls-not-supported",
	[TLS_RPT_CERT_HOST_MISMATCH] = "certificate-host-mismatch",
	[TLS_RPT_CERT_EXPIRED] = "certificate-expired",
	[TLS_RPT_CERT_NOT_TRUSTED] = "certificate-not-trusted",
	[TLS_RPT_VALIDATION_FAILURE] = "validation-failure",
	[TLS_RPT_TLSA_INVALID] = "tlsa-invalid",
	[TLS_RPT_DNSSEC_INVALID] = "dnssec-invalid",
	[TLS_RPT_DANE_REQUIRED] = "dane-required",
	[TLS_RPT_STS_POLICY_FETCH_ERROR] = "sts-policy-fetch-error",
	[TLS_RPT_STS_POLICY_INVALID] = "sts-policy-invalid",
	[TLS_RPT_STS_WEBPKI_INVALID] = "sts-webpki-invalid",
};

const char *
tls_rpt_result_str(enum tls_rpt_result r)
{
	return (unsigned)r < TLS_RPT_NRESULTS ? result_names[r] : "?";
}

int
tls_rpt_result_parse(const char *s)
{
	for (int i = 0; i < TLS_RPT_NRESULTS; i++)
		if (strcmp(s, result_names[i]) == 0)
			return i;
	return -1;
}

const char *
tls_rpt_policy_type_str(enum tls_rpt_policy_type t)
{
	switch (t) {
	case TLS_RPT_POLICY_TLSA: return "tlsa";
	case TLS_RPT_POLICY_STS: return "sts";
	default: return "no-policy-found";
	}
}

static int
policy_type_parse(const char *s, enum tls_rpt_policy_type *t)
{
	for (int i = TLS_RPT_POLICY_NONE; i <= TLS_RPT_POLICY_STS; i++)
		if (strcmp(s, tls_rpt_policy_type_str((enum tls_rpt_policy_type)i)) == 0) {
			*t = (enum tls_rpt_policy_type)i;
			return 0;
		}
	return -1;
}

/* "YYYYMMDD" of the UTC day of t into out (9 bytes); the day's start. */
static int64_t
day_key(int64_t t, char out[9])
{
	struct tm tm;
	time_t tt = (time_t)t;

	gmtime_r(&tt, &tm);
	snprintf(out, 9, "%04u%02u%02u", (unsigned)(tm.tm_year + 1900) % 10000,
	    (unsigned)(tm.tm_mon + 1) % 100, (unsigned)tm.tm_mday % 100);
	return t - (tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec);
}

static uint64_t
fnv1a(uint64_t h, const char *s)
{
	for (; s && *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h * 0x100000001b3ULL;	/* a field separator */
}

/* s when it is a numeric IPv4 or IPv6 address (in canonical form), else "". */
static void
ip_clean(const char *s, char out[IP_MAX])
{
	unsigned char b[16];

	out[0] = '\0';
	if (s == NULL)
		return;
	if (inet_pton(AF_INET, s, b) == 1)
		inet_ntop(AF_INET, b, out, IP_MAX);
	else if (inet_pton(AF_INET6, s, b) == 1)
		inet_ntop(AF_INET6, b, out, IP_MAX);
}

/* Appends s and a 0 byte to b (s cut to max bytes). */
static void
key_field(struct buf *b, const char *s, size_t max)
{
	size_t n = s ? strnlen(s, max) : 0;

	if (buf_append(b, s ? s : "", n) != 0 || buf_append(b, "", 1) != 0)
		abort();	/* sized for the bounds */
}

int
tls_report_record(struct tls_store *s, const struct tls_rpt_policy *p,
    const struct tls_rpt_event *e, int64_t now)
{
	char day[9], hash[17], dom[DNS_NAME_MAX], rip[IP_MAX], sip[IP_MAX];
	const char *type = tls_rpt_policy_type_str(p->type);
	const char *res = tls_rpt_result_str(e->result);
	struct buf k, v;
	size_t fixed, room;
	uint64_t h;
	int rc;

	if (s == NULL || (unsigned)e->result >= TLS_RPT_NRESULTS ||
	    dns_name_normalize(p->domain, dom, sizeof dom) != 0)
		return -1;
	day_key(now, day);
	h = fnv1a(fnv1a(fnv1a(0xcbf29ce484222325ULL, type), p->strings), p->mx_hosts);
	snprintf(hash, sizeof hash, "%016llx", (unsigned long long)h);
	ip_clean(e->result == TLS_RPT_SUCCESS ? NULL : e->receiving_ip, rip);
	ip_clean(e->result == TLS_RPT_SUCCESS ? NULL : e->sending_ip, sip);

	/* The policy's description, once per day. */
	buf_init(&k, TLS_STORE_KEY_MAX);
	key_field(&k, day, 8);
	key_field(&k, dom, DNS_NAME_MAX);
	key_field(&k, type, 20);
	if (buf_append(&k, hash, 16) != 0)
		abort();
	buf_init(&v, TLS_RPT_POLICY_TEXT_MAX * 2 + 2);
	rc = tls_store_get(s, TLS_STORE_RPOL, k.data, k.len, &v);
	if (rc == 1) {
		char ver = POL_VERSION;
		buf_reset(&v);
		if (buf_append(&v, &ver, 1) != 0)
			abort();
		key_field(&v, p->strings, TLS_RPT_POLICY_TEXT_MAX);
		key_field(&v, p->mx_hosts, TLS_RPT_POLICY_TEXT_MAX);
		(void)tls_store_put(s, TLS_STORE_RPOL, k.data, k.len, v.data, v.len, 0);
	}
	buf_free(&v);

	/* The counter: host fields cut so that the key fits. */
	if (buf_append(&k, "", 1) != 0)
		abort();
	key_field(&k, res, 40);
	fixed = k.len + strlen(rip) + 1 + strlen(sip);
	room = fixed + 2 < TLS_STORE_KEY_MAX ? TLS_STORE_KEY_MAX - fixed - 2 : 0;
	key_field(&k, e->result == TLS_RPT_SUCCESS ? NULL : e->mx_host, room);
	key_field(&k, rip, IP_MAX);
	if (buf_append(&k, sip, strlen(sip)) != 0)
		abort();
	rc = tls_store_add(s, TLS_STORE_RPT, k.data, k.len, 1);
	buf_free(&k);
	return rc;
}

/* ---- aggregation ---- */

struct agg_failure {
	enum tls_rpt_result result;
	char mx[DNS_NAME_MAX];
	char rip[IP_MAX], sip[IP_MAX];
	uint64_t count;
};

struct agg_policy {
	enum tls_rpt_policy_type type;
	char hash[17];
	char *strings, *mx_hosts;
	uint64_t ok, failed;
	size_t nfail;
	struct agg_failure *fail;
};

struct agg {
	char day[9], domain[DNS_NAME_MAX];
	int64_t day_start;
	size_t npol;
	struct agg_policy pol[AGG_POLICIES_MAX];
	size_t skipped;
};

/* Splits a key into its 0-separated fields (at most max); how many. */
static size_t
key_split(const char *k, size_t klen, const char **f, size_t *fl, size_t max)
{
	size_t n = 0, start = 0;

	for (size_t i = 0; i <= klen && n < max; i++)
		if (i == klen || k[i] == '\0') {
			f[n] = k + start;
			fl[n++] = i - start;
			start = i + 1;
		}
	return n;
}

static void
field_copy(char *dst, size_t dstsize, const char *s, size_t n)
{
	if (n >= dstsize)
		n = dstsize - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static void
agg_add(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct agg *a = ctx;
	const char *f[8];
	size_t fl[8];
	char type[24], hash[17], res[48];
	enum tls_rpt_policy_type t;
	struct agg_policy *p = NULL;
	uint64_t n;
	int r;

	if (key_split(key, klen, f, fl, 8) != 8 || tls_store_counter(val, vlen, &n) != 0) {
		a->skipped++;
		return;
	}
	field_copy(type, sizeof type, f[2], fl[2]);
	field_copy(hash, sizeof hash, f[3], fl[3]);
	field_copy(res, sizeof res, f[4], fl[4]);
	if (policy_type_parse(type, &t) != 0 || (r = tls_rpt_result_parse(res)) < 0) {
		a->skipped++;
		return;
	}
	for (size_t i = 0; i < a->npol && p == NULL; i++)
		if (a->pol[i].type == t && strcmp(a->pol[i].hash, hash) == 0)
			p = &a->pol[i];
	if (p == NULL) {
		if (a->npol >= AGG_POLICIES_MAX) {
			a->skipped++;
			return;
		}
		p = &a->pol[a->npol++];
		memset(p, 0, sizeof *p);
		p->type = t;
		str_copy(p->hash, hash, sizeof p->hash);
	}
	if (r == TLS_RPT_SUCCESS) {
		p->ok += n;
		return;
	}
	p->failed += n;
	if (p->nfail >= AGG_FAILURES_MAX) {
		a->skipped++;
		return;
	}
	p->fail = xrealloc(p->fail, (p->nfail + 1) * sizeof *p->fail);
	p->fail[p->nfail].result = (enum tls_rpt_result)r;
	field_copy(p->fail[p->nfail].mx, DNS_NAME_MAX, f[5], fl[5]);
	field_copy(p->fail[p->nfail].rip, IP_MAX, f[6], fl[6]);
	field_copy(p->fail[p->nfail].sip, IP_MAX, f[7], fl[7]);
	p->fail[p->nfail++].count = n;
}

/* The policy descriptions of each policy found. */
static void
agg_describe(struct tls_store *s, struct agg *a)
{
	struct buf k, v;

	buf_init(&k, TLS_STORE_KEY_MAX);
	buf_init(&v, TLS_RPT_POLICY_TEXT_MAX * 2 + 2);
	for (size_t i = 0; i < a->npol; i++) {
		struct agg_policy *p = &a->pol[i];
		const char *f[2];
		size_t fl[2];
		buf_reset(&k);
		key_field(&k, a->day, 8);
		key_field(&k, a->domain, DNS_NAME_MAX);
		key_field(&k, tls_rpt_policy_type_str(p->type), 20);
		if (buf_append(&k, p->hash, 16) != 0)
			abort();
		if (tls_store_get(s, TLS_STORE_RPOL, k.data, k.len, &v) != 0 ||
		    v.len < 1 || v.data[0] != POL_VERSION ||
		    key_split(v.data + 1, v.len - 1, f, fl, 2) != 2)
			continue;
		p->strings = xstrndup(f[0], fl[0]);
		p->mx_hosts = xstrndup(f[1], fl[1]);
	}
	buf_free(&k);
	buf_free(&v);
}

static void
agg_free(struct agg *a)
{
	for (size_t i = 0; i < a->npol; i++) {
		free(a->pol[i].strings);
		free(a->pol[i].mx_hosts);
		free(a->pol[i].fail);
	}
	free(a);
}

static struct agg *
agg_load(struct tls_store *s, const char *domain, int64_t day)
{
	struct agg *a = xcalloc(1, sizeof *a);
	struct buf prefix;

	if (s == NULL || dns_name_normalize(domain, a->domain, sizeof a->domain) != 0) {
		free(a);
		return NULL;
	}
	a->day_start = day_key(day, a->day);
	buf_init(&prefix, TLS_STORE_KEY_MAX);
	key_field(&prefix, a->day, 8);
	key_field(&prefix, a->domain, DNS_NAME_MAX);
	if (tls_store_scan(s, TLS_STORE_RPT, prefix.data, prefix.len, 0, agg_add,
	    a) < 0) {
		buf_free(&prefix);
		agg_free(a);
		return NULL;
	}
	buf_free(&prefix);
	if (a->skipped > 0)
		log_warn("tls report: %zu records of %s skipped", a->skipped, a->domain);
	agg_describe(s, a);
	return a;
}

/* ---- output ---- */

/* Output is built in a buffer of OUT_MAX, more than the bounds of an
 * aggregate can fill (AGG_POLICIES_MAX policies of two texts of
 * TLS_RPT_POLICY_TEXT_MAX and AGG_FAILURES_MAX short lines), then handed
 * to the caller's buffer; an append that fails there is a bug. */
#define OUT_MAX ((size_t)64 << 20)

static void
out_put(struct buf *b, int rc)
{
	(void)b;
	if (rc != 0)
		abort();
}

/* Appends the finished tmp to out: n, or -1 when out is too small. */
static int
out_hand(struct buf *tmp, struct buf *out, int n)
{
	if (buf_append(out, tmp->data ? tmp->data : "", tmp->len) != 0)
		n = -1;
	buf_free(tmp);
	return n;
}

/* A JSON string of s[0..n); a byte that is not part of valid UTF-8 (a
 * policy's 8-bit junk, a character cut by a bound) becomes U+FFFD, so the
 * report stays JSON (RFC 8259 8.1). */
static void
json_str(struct buf *b, const char *s, size_t n)
{
	out_put(b, buf_puts(b, "\""));
	for (size_t i = 0, len; i < n; i += len) {
		unsigned char c = (unsigned char)s[i];
		len = 1;
		if (c == '"' || c == '\\')
			out_put(b, buf_printf(b, "\\%c", c));
		else if (c < 0x20 || c == 0x7f)
			out_put(b, buf_printf(b, "\\u%04x", c));
		else if (c < 0x80)
			out_put(b, buf_append(b, &s[i], 1));
		else if ((len = utf8_char_len((const unsigned char *)s + i, n - i)) > 0)
			out_put(b, buf_append(b, &s[i], len));
		else {
			len = 1;
			out_put(b, buf_puts(b, "\\ufffd"));
		}
	}
	out_put(b, buf_puts(b, "\""));
}

static void
json_cstr(struct buf *b, const char *s)
{
	json_str(b, s, strlen(s));
}

/* The lines of text (joined by '\n') as a JSON array of strings. */
static void
json_lines(struct buf *b, const char *text)
{
	int first = 1;

	out_put(b, buf_puts(b, "["));
	while (text && *text) {
		const char *nl = strchr(text, '\n');
		size_t n = nl ? (size_t)(nl - text) : strlen(text);
		if (n > 0 && text[n - 1] == '\r')
			n--;
		if (n > 0) {
			if (!first)
				out_put(b, buf_puts(b, ", "));
			json_str(b, text, n);
			first = 0;
		}
		text = nl ? nl + 1 : text + strlen(text);
	}
	out_put(b, buf_puts(b, "]"));
}

static void
iso_time(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;

	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int
tls_report_json(struct tls_store *s, const char *domain, int64_t day,
    const struct tls_report_meta *meta, struct buf *dest)
{
	struct agg *a = agg_load(s, domain, day);
	char start[32], end[32], id[300];
	struct buf tmp, *out = &tmp;
	int n;

	if (a == NULL)
		return -1;
	buf_init(&tmp, OUT_MAX);
	iso_time(a->day_start, start);
	iso_time(a->day_start + 86399, end);
	if (meta && meta->report_id)
		str_copy(id, meta->report_id, sizeof id);
	else
		snprintf(id, sizeof id, "%s_%s", start, a->domain);
	out_put(out, buf_puts(out, "{\n  \"organization-name\": "));
	json_cstr(out, meta && meta->organization ? meta->organization : "");
	out_put(out, buf_printf(out, ",\n  \"date-range\": {\"start-datetime\": \"%s\", "
	    "\"end-datetime\": \"%s\"},\n  \"contact-info\": ", start, end));
	json_cstr(out, meta && meta->contact ? meta->contact : "");
	out_put(out, buf_puts(out, ",\n  \"report-id\": "));
	json_cstr(out, id);
	out_put(out, buf_puts(out, ",\n  \"policies\": ["));
	for (size_t i = 0; i < a->npol; i++) {
		const struct agg_policy *p = &a->pol[i];
		out_put(out, buf_printf(out, "%s\n    {\"policy\": {\"policy-type\": \"%s\", "
		    "\"policy-string\": ", i ? "," : "", tls_rpt_policy_type_str(p->type)));
		json_lines(out, p->strings);
		out_put(out, buf_puts(out, ", \"policy-domain\": "));
		json_cstr(out, a->domain);
		if (p->type == TLS_RPT_POLICY_STS) {
			out_put(out, buf_puts(out, ", \"mx-host\": "));
			json_lines(out, p->mx_hosts);
		}
		out_put(out, buf_printf(out, "},\n     \"summary\": {"
		    "\"total-successful-session-count\": %llu, "
		    "\"total-failure-session-count\": %llu},\n     \"failure-details\": [",
		    (unsigned long long)p->ok, (unsigned long long)p->failed));
		for (size_t j = 0; j < p->nfail; j++) {
			const struct agg_failure *f = &p->fail[j];
			out_put(out, buf_printf(out, "%s\n       {\"result-type\": \"%s\"",
			    j ? "," : "", tls_rpt_result_str(f->result)));
			if (f->sip[0])
				out_put(out, buf_printf(out, ", \"sending-mta-ip\": \"%s\"", f->sip));
			if (f->mx[0]) {
				out_put(out, buf_puts(out, ", \"receiving-mx-hostname\": "));
				json_cstr(out, f->mx);
			}
			if (f->rip[0])
				out_put(out, buf_printf(out, ", \"receiving-ip\": \"%s\"", f->rip));
			out_put(out, buf_printf(out, ", \"failed-session-count\": %llu}",
			    (unsigned long long)f->count));
		}
		out_put(out, buf_puts(out, p->nfail ? "\n     ]}" : "]}"));
	}
	out_put(out, buf_puts(out, a->npol ? "\n  ]\n}\n" : "]\n}\n"));
	n = (int)a->npol;
	agg_free(a);
	return out_hand(&tmp, dest, n);
}

int
tls_report_text(struct tls_store *s, const char *domain, int64_t day,
    struct buf *dest)
{
	struct agg *a = agg_load(s, domain, day);
	struct buf tmp, *out = &tmp;
	int n;

	if (a == NULL)
		return -1;
	buf_init(&tmp, OUT_MAX);
	for (size_t i = 0; i < a->npol; i++) {
		const struct agg_policy *p = &a->pol[i];
		out_put(out, buf_printf(out, "%.4s-%.2s-%.2s %s policy %s: %llu "
		    "successful, %llu failed\n", a->day, a->day + 4, a->day + 6,
		    a->domain, tls_rpt_policy_type_str(p->type),
		    (unsigned long long)p->ok, (unsigned long long)p->failed));
		for (const char *l = p->strings; l && *l;) {
			const char *nl = strchr(l, '\n');
			size_t len = nl ? (size_t)(nl - l) : strlen(l);
			out_put(out, buf_printf(out, "  policy: %.*s\n", (int)len, l));
			l = nl ? nl + 1 : l + len;
		}
		for (size_t j = 0; j < p->nfail; j++)
			out_put(out, buf_printf(out, "  %s mx=%s receiving-ip=%s "
			    "sending-ip=%s: %llu\n", tls_rpt_result_str(p->fail[j].result),
			    p->fail[j].mx[0] ? p->fail[j].mx : "-",
			    p->fail[j].rip[0] ? p->fail[j].rip : "-",
			    p->fail[j].sip[0] ? p->fail[j].sip : "-",
			    (unsigned long long)p->fail[j].count));
	}
	n = (int)a->npol;
	agg_free(a);
	return out_hand(&tmp, dest, n);
}

long
tls_report_prune(struct tls_store *s, int64_t before)
{
	char day[9];
	long n;

	day_key(before, day);
	n = tls_store_delete_before(s, TLS_STORE_RPT, day, 8);
	if (n < 0 || tls_store_delete_before(s, TLS_STORE_RPOL, day, 8) < 0 ||
	    tls_store_delete_before(s, TLS_STORE_RSENT, day, 8) < 0)
		return -1;
	return n;
}

int64_t
tls_report_day(int64_t t, char out[9])
{
	return day_key(t, out);
}

int
tls_report_parse_date(const char *s, int64_t *t_r)
{
	struct tm tm;
	char *end;

	memset(&tm, 0, sizeof tm);
	end = strptime(s, "%Y-%m-%d", &tm);
	if (end == NULL || *end != '\0' || tm.tm_year < 70)
		return -1;
	tm.tm_hour = 12;
	*t_r = (int64_t)timegm(&tm);
	return 0;
}

struct domain_list {
	char (*name)[DNS_NAME_MAX];
	size_t n, cap;
};

/* Keys come in order, so a domain's counters are together. */
static void
domain_add(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct domain_list *l = ctx;
	const char *f[2];
	size_t fl[2];

	(void)val;
	(void)vlen;
	if (key_split(key, klen, f, fl, 2) != 2 || fl[1] == 0 ||
	    fl[1] >= DNS_NAME_MAX || l->n >= TLS_RPT_DOMAINS_MAX)
		return;
	if (l->n > 0 && strlen(l->name[l->n - 1]) == fl[1] &&
	    memcmp(l->name[l->n - 1], f[1], fl[1]) == 0)
		return;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->name = xrealloc(l->name, l->cap * sizeof *l->name);
	}
	field_copy(l->name[l->n++], DNS_NAME_MAX, f[1], fl[1]);
}

long
tls_report_domains(struct tls_store *s, int64_t day,
    char (**list_r)[DNS_NAME_MAX])
{
	struct domain_list l = { NULL, 0, 0 };
	char d[9];

	*list_r = NULL;
	if (s == NULL)
		return -1;
	day_key(day, d);
	if (tls_store_scan(s, TLS_STORE_RPT, d, 9, 0, domain_add, &l) < 0) {
		free(l.name);
		return -1;
	}
	*list_r = l.name;
	return (long)l.n;
}

/* ---- _smtp._tls (RFC 8460 3) ---- */

static int
uri_ok(const char *s, size_t n)
{
	if (n == 0 || n >= TLS_RPT_URI_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f ||
		    s[i] == ';' || s[i] == ',')
			return 0;
	return 1;
}

/* The rua value: URIs separated by ","; 0 with at least one kept, or -1. */
static int
rua_parse(const char *v, size_t n, struct tls_rpt_txt *out)
{
	size_t pos = 0;

	while (pos <= n) {
		const char *comma = memchr(v + pos, ',', n - pos);
		size_t end = comma ? (size_t)(comma - v) : n, s = pos, e = end;
		while (s < e && (v[s] == ' ' || v[s] == '\t'))
			s++;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (!uri_ok(v + s, e - s))
			return -1;
		if ((strncasecmp(v + s, "mailto:", 7) == 0 && e - s > 7) ||
		    (strncasecmp(v + s, "https:", 6) == 0 && e - s > 6)) {
			if (out->nrua < TLS_RPT_RUA_MAX)
				field_copy(out->rua[out->nrua++], TLS_RPT_URI_MAX,
				    v + s, e - s);
		}
		if (comma == NULL)
			break;
		pos = end + 1;
	}
	return out->nrua > 0 ? 0 : -1;
}

int
tls_rpt_txt_parse(const char *txt, struct tls_rpt_txt *out)
{
	const char *p = txt;
	int first = 1, have_rua = 0;

	memset(out, 0, sizeof *out);
	if (txt == NULL)
		return -1;
	for (;;) {
		const char *semi = strchr(p, ';');
		const char *end = semi ? semi : p + strlen(p);
		const char *s = p, *e = end, *eq;

		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (first) {
			if (e - s != 10 || memcmp(s, "v=TLSRPTv1", 10) != 0)
				return -1;
			first = 0;
		} else if (s == e) {
			if (semi != NULL)
				return -1;
		} else if ((eq = memchr(s, '=', (size_t)(e - s))) == NULL || eq == s) {
			return -1;
		} else if (eq - s == 3 && strncasecmp(s, "rua", 3) == 0) {
			if (have_rua || rua_parse(eq + 1, (size_t)(e - eq - 1), out) != 0)
				return -1;
			have_rua = 1;
		} else {
			for (const char *c = s; c < e; c++)
				if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
					return -1;
		}
		if (semi == NULL)
			break;
		p = semi + 1;
	}
	return have_rua ? 0 : -1;
}

int
tls_rpt_txt_select(char *const *txts, size_t n, struct tls_rpt_txt *out)
{
	const char *found = NULL;

	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < n; i++) {
		if (strncmp(txts[i], "v=TLSRPTv1", 10) != 0 ||
		    (txts[i][10] != ';' && txts[i][10] != ' ' && txts[i][10] != '\t' &&
		    txts[i][10] != '\0'))
			continue;
		if (found != NULL)
			return -1;
		found = txts[i];
	}
	return found ? tls_rpt_txt_parse(found, out) : -1;
}
