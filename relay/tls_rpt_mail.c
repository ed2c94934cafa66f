/*
 * tls_rpt_mail: the report message of RFC 8460 5.3 and mailto: URIs
 * (relay/tls_rpt_mail.h).
 */
#include "relay/tls_rpt_mail.h"

#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

#include "dns/dns.h"
#include "lib/util.h"

#define LOCAL_MAX 64
#define B64_LINE 76

/* RFC 5322 atext. */
static int
atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

int
tls_rpt_addr_valid(const char *addr)
{
	const char *at = strrchr(addr, '@');
	char dom[DNS_NAME_MAX];
	size_t n;

	if (at == NULL || (n = (size_t)(at - addr)) == 0 || n > LOCAL_MAX ||
	    strlen(addr) >= TLS_RPT_ADDR_MAX ||
	    dns_name_normalize(at + 1, dom, sizeof dom) != 0 ||
	    at[1] == '\0' || at[strlen(at) - 1] == '.')
		return 0;
	if (addr[0] == '.' || addr[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (addr[i] == '.' ? addr[i + 1] == '.' : !atext((unsigned char)addr[i]))
			return 0;
	return 1;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
tls_rpt_mailto_parse(const char *uri, char out[TLS_RPT_ADDR_MAX])
{
	size_t n = 0;
	const char *p;

	out[0] = '\0';
	if (strncasecmp(uri, "mailto:", 7) != 0)
		return -1;
	for (p = uri + 7; *p != '\0' && *p != '?'; p++) {
		int c = (unsigned char)*p;
		if (c == '%') {
			int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
			if (lo < 0)
				goto bad;
			c = hi * 16 + lo;
			p += 2;
		}
		/* A decoded NUL, control or ',' ends nothing: it is refused. */
		if (c <= 0x20 || c >= 0x7f || c == ',' || n + 1 >= TLS_RPT_ADDR_MAX)
			goto bad;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	if (tls_rpt_addr_valid(out))
		return 0;
bad:
	out[0] = '\0';
	return -1;
}

/* The gzip stream (RFC 1952) of p[0..n) into out; 0 or -1. */
static int
gzip_buf(const char *p, size_t n, struct buf *out)
{
	z_stream z;
	unsigned char *dst;
	uLong bound;
	int rc;

	memset(&z, 0, sizeof z);
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	bound = deflateBound(&z, (uLong)n) + 32;
	dst = xmalloc(bound);
	z.next_in = (Bytef *)(uintptr_t)p;
	z.avail_in = (uInt)n;
	z.next_out = dst;
	z.avail_out = (uInt)bound;
	rc = deflate(&z, Z_FINISH);
	if (rc == Z_STREAM_END)
		rc = buf_append(out, dst, z.total_out);
	else
		rc = -1;
	deflateEnd(&z);
	free(dst);
	return rc;
}

/* The base64 of bin in lines of B64_LINE with CRLF, appended. */
static int
base64_lines(const struct buf *bin, struct buf *out)
{
	gnutls_datum_t in = { (unsigned char *)bin->data, (unsigned)bin->len }, b64;
	int rc = 0;

	if (bin->len == 0)
		return 0;
	if (gnutls_base64_encode2(&in, &b64) != 0)
		return -1;
	for (size_t i = 0; i < b64.size && rc == 0; i += B64_LINE) {
		size_t k = b64.size - i < B64_LINE ? b64.size - i : B64_LINE;
		rc = buf_append(out, b64.data + i, k) != 0 ||
		    buf_puts(out, "\r\n") != 0 ? -1 : 0;
	}
	gnutls_free(b64.data);
	return rc;
}

static int
unique_ok(const char *s)
{
	return s[0] != '\0' && strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == strlen(s);
}

int
tls_rpt_mail_build(const struct tls_rpt_mail *m, struct buf *out)
{
	char dom[DNS_NAME_MAX], sub[DNS_NAME_MAX], date[64], day[16];
	char boundary[80];
	struct buf gz, msg;
	struct tm tm;
	time_t ds = (time_t)m->day_start;
	int rc = 0;

	if (dns_name_normalize(m->domain, dom, sizeof dom) != 0 ||
	    dns_name_normalize(m->submitter, sub, sizeof sub) != 0 ||
	    !tls_rpt_addr_valid(m->from) || !tls_rpt_addr_valid(m->to) ||
	    !unique_ok(m->unique) || strlen(m->unique) > 64)
		return -1;
	gmtime_r(&ds, &tm);
	strftime(day, sizeof day, "%Y%m%d", &tm);
	time_rfc5322((time_t)m->now, date, sizeof date);
	snprintf(boundary, sizeof boundary, "----=_tlsrpt_%s_%s", day, m->unique);
	buf_init(&gz, TLS_RPT_MAIL_MAX);
	if (gzip_buf(m->json, m->json_len, &gz) != 0) {
		buf_free(&gz);
		return -1;
	}
	buf_init(&msg, TLS_RPT_MAIL_MAX);
	rc |= buf_printf(&msg,
	    "From: %s\r\n"
	    "To: %s\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <tlsrpt.%s.%s.%s@%s>\r\n"
	    "Subject: Report Domain: %s\r\n"
	    " Submitter: %s\r\n"
	    " Report-ID: <%s.%s@%s>\r\n"
	    "TLS-Report-Domain: %s\r\n"
	    "TLS-Report-Submitter: %s\r\n"
	    "TLS-Required: No\r\n"
	    "Auto-Submitted: auto-generated\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
	    " boundary=\"%s\"\r\n"
	    "\r\n"
	    "This is a multipart message in MIME format.\r\n"
	    "\r\n"
	    "--%s\r\n"
	    "Content-Type: text/plain; charset=\"us-ascii\"\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n"
	    "\r\n"
	    "This is an aggregate TLS report (RFC 8460) from %s\r\n"
	    "for the policy domain %s, UTC day %.4s-%.2s-%.2s.\r\n"
	    "\r\n"
	    "--%s\r\n"
	    "Content-Type: application/tlsrpt+gzip\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment;\r\n"
	    " filename=\"%s!%s!%lld!%lld.json.gz\"\r\n"
	    "\r\n",
	    m->from, m->to, date, day, dom, m->unique, sub, dom, sub, day, dom,
	    sub, dom, sub, boundary, boundary, sub, dom, day, day + 4, day + 6,
	    boundary, sub, dom, (long long)m->day_start,
	    (long long)m->day_start + 86399) != 0 ? -1 : 0;
	if (rc == 0)
		rc = base64_lines(&gz, &msg);
	if (rc == 0)
		rc = buf_printf(&msg, "--%s--\r\n", boundary) != 0 ? -1 : 0;
	if (rc == 0)
		rc = buf_append(out, msg.data, msg.len);
	buf_free(&gz);
	buf_free(&msg);
	return rc;
}
