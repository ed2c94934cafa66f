/*
 * tls_report: SMTP TLS reporting (RFC 8460). Every outbound TLS result
 * (one per connection attempt that got as far as a policy decision) is
 * counted durably per UTC day and policy domain in relay/tls_store.h
 * ("rpt" counters, "rpol" policy descriptions); the day's aggregate comes
 * out as the RFC's JSON report (4.4) or as text. Also the _smtp._tls TXT
 * record parser (3), for where reports would go.
 *
 * A counter's key: "YYYYMMDD" 0 domain 0 policy-type 0 policy-hash 0
 * result-type 0 mx-host 0 receiving-ip 0 sending-ip, all text; success
 * counters leave the host fields empty (the report only sums them).
 * Fields longer than their bounds are cut, so a key always fits LMDB.
 *
 * Errors: 0 or -1 (a counter that cannot be written is logged by the
 * store and lost: reports never stop mail). Out of memory aborts.
 * Threads: any number of threads at once (the store serialises writes).
 */
#ifndef RELAY_TLS_REPORT_H
#define RELAY_TLS_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"
#include "lib/buf.h"
#include "relay/tls_store.h"

/* RFC 8460 4.3 result types. */
enum tls_rpt_result {
	TLS_RPT_SUCCESS = 0,
	TLS_RPT_STARTTLS_NOT_SUPPORTED,
	TLS_RPT_CERT_HOST_MISMATCH,
	TLS_RPT_CERT_EXPIRED,
	TLS_RPT_CERT_NOT_TRUSTED,
	TLS_RPT_VALIDATION_FAILURE,
	TLS_RPT_TLSA_INVALID,
	TLS_RPT_DNSSEC_INVALID,
	TLS_RPT_DANE_REQUIRED,
	TLS_RPT_STS_POLICY_FETCH_ERROR,
	TLS_RPT_STS_POLICY_INVALID,
	TLS_RPT_STS_WEBPKI_INVALID,
	TLS_RPT_NRESULTS
};

/* "starttls-not-supported", ... ("success" for TLS_RPT_SUCCESS). */
const char *tls_rpt_result_str(enum tls_rpt_result r);
/* The result named s, or -1. */
int tls_rpt_result_parse(const char *s);

enum tls_rpt_policy_type {
	TLS_RPT_POLICY_NONE = 0,	/* "no-policy-found" */
	TLS_RPT_POLICY_TLSA,		/* "tlsa" */
	TLS_RPT_POLICY_STS,		/* "sts" */
};

const char *tls_rpt_policy_type_str(enum tls_rpt_policy_type t);

/* The policy a result was judged by (RFC 8460 4.4 "policy"). */
struct tls_rpt_policy {
	enum tls_rpt_policy_type type;
	const char *domain;	/* policy-domain: the recipient domain */
	const char *strings;	/* policy-string, lines joined by '\n': TLSA
				 * records in presentation form, or the
				 * MTA-STS policy text; NULL: none */
	const char *mx_hosts;	/* sts: the mx patterns joined by '\n' */
};

struct tls_rpt_event {
	enum tls_rpt_result result;
	const char *mx_host;	/* receiving-mx-hostname (failures) */
	const char *receiving_ip;
	const char *sending_ip;	/* NULL or "": not known */
};

#define TLS_RPT_POLICY_TEXT_MAX	16384	/* policy strings kept per policy */

/* Counts e under p on the UTC day of Unix time now. */
int tls_report_record(struct tls_store *s, const struct tls_rpt_policy *p,
    const struct tls_rpt_event *e, int64_t now);

/* What a report says: the reporter. */
struct tls_report_meta {
	const char *organization;	/* organization-name */
	const char *contact;		/* contact-info (e.g. postmaster@host) */
	const char *report_id;		/* report-id; NULL: made from day+domain */
};

/*
 * The aggregate of domain for the UTC day that holds Unix time day, as
 * RFC 8460 JSON into out (appended). Returns the number of policies in
 * it (0: nothing was recorded that day), or -1.
 */
int tls_report_json(struct tls_store *s, const char *domain, int64_t day,
    const struct tls_report_meta *meta, struct buf *out);

/* The same aggregate as readable text, one line per policy and failure. */
int tls_report_text(struct tls_store *s, const char *domain, int64_t day,
    struct buf *out);

/* Deletes what was recorded before the UTC day of Unix time before (the
 * counters, policies and what was mailed of those days). Returns the
 * number of counters deleted, or -1. */
long tls_report_prune(struct tls_store *s, int64_t before);

/* "YYYYMMDD" of the UTC day of Unix time t into out (9 bytes); returns
 * the Unix time of that day's start. */
int64_t tls_report_day(int64_t t, char out[9]);

/* "YYYY-MM-DD" (a UTC day from 1970) into a Unix time within that day
 * (its noon); 0 or -1. */
int tls_report_parse_date(const char *s, int64_t *t_r);

#define TLS_RPT_DOMAINS_MAX 100000	/* policy domains listed per day */

/* The policy domains with results on the UTC day of Unix time day, in
 * order, into *list_r (malloc'd; free it): how many, or -1. */
long tls_report_domains(struct tls_store *s, int64_t day,
    char (**list_r)[DNS_NAME_MAX]);

/* ---- the _smtp._tls TXT record (RFC 8460 3) ---- */

#define TLS_RPT_RUA_MAX		8
#define TLS_RPT_URI_MAX		512

struct tls_rpt_txt {
	size_t nrua;
	char rua[TLS_RPT_RUA_MAX][TLS_RPT_URI_MAX];	/* mailto: and https: URIs */
};

/* Parses one record: 0 (at least one mailto: or https: rua), or -1. */
int tls_rpt_txt_parse(const char *txt, struct tls_rpt_txt *out);

/* Among the TXT records at _smtp._tls.<domain>: the ones starting with
 * "v=TLSRPTv1" must be exactly one, and valid. 0 or -1. */
int tls_rpt_txt_select(char *const *txts, size_t n, struct tls_rpt_txt *out);

#endif
