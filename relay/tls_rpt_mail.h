/*
 * tls_rpt_mail: the mail that carries a daily TLS report (RFC 8460 5.3)
 * and the mailto: addresses it goes to (RFC 8460 3, RFC 6068).
 *
 * The message: From, To, Date, Message-ID, the Subject of 5.3 ("Report
 * Domain: D Submitter: S Report-ID: <ID>"), TLS-Report-Domain,
 * TLS-Report-Submitter, `TLS-Required: No` (RFC 8460 5.1: a report is
 * delivered despite TLS failures, and its own sessions are not reported;
 * RFC 8689 5), then a multipart/report; report-type="tlsrpt" of a
 * text/plain part and the JSON report gzipped (application/tlsrpt+gzip,
 * base64, named as 5.3 says: submitter!domain!begin!end.json.gz). CRLF
 * line ends; lines shorter than 78 characters unless the names are long
 * (never more than 998: a name is at most 253).
 *
 * Errors: 0 or -1 (a field that is not what it must be, a message
 * larger than out's bound). Out of memory aborts.
 * Threads: reentrant.
 */
#ifndef RELAY_TLS_RPT_MAIL_H
#define RELAY_TLS_RPT_MAIL_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define TLS_RPT_ADDR_MAX	320	/* an address: 64 + '@' + 253, rounded */
#define TLS_RPT_MAIL_MAX	((size_t)32 << 20)	/* a report message */

/*
 * 1 when addr is a plain address we can send to: local-part@domain,
 * the local part a dot-atom of printable ASCII (RFC 5322 atext) of at
 * most 64 bytes, the domain one dns_name_normalize accepts.
 */
int tls_rpt_addr_valid(const char *addr);

/*
 * The address of a "mailto:" URI (scheme in any case) into out
 * (TLS_RPT_ADDR_MAX bytes): %XX escapes decoded, a "?..." part
 * (headers, RFC 6068) ignored. One address only (a ',' is refused), and
 * it must be tls_rpt_addr_valid. 0, or -1 (then out is "").
 */
int tls_rpt_mailto_parse(const char *uri, char out[TLS_RPT_ADDR_MAX]);

struct tls_rpt_mail {
	const char *submitter;	/* our host name: TLS-Report-Submitter */
	const char *from;	/* From: */
	const char *to;		/* To: (the rua address) */
	const char *domain;	/* the policy domain: TLS-Report-Domain */
	int64_t day_start;	/* Unix time of the reported UTC day's start */
	int64_t now;		/* Date: */
	const char *unique;	/* makes the Message-ID unique ([A-Za-z0-9.-]) */
	const char *json;	/* the report (tls_report_json) */
	size_t json_len;
};

/* Appends the whole message to out. 0 or -1. */
int tls_rpt_mail_build(const struct tls_rpt_mail *m, struct buf *out);

#endif
