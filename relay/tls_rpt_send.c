/*
 * tls_rpt_send: the daily report mailed to _smtp._tls rua addresses
 * (relay/tls_rpt_send.h).
 */
#include "relay/tls_rpt_send.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "relay/tls_report.h"
#include "relay/tls_rpt_mail.h"

#define SENT_VERSION 1
#define SENT_MAX 4096
#define REPORT_JSON_MAX ((size_t)64 << 20)

enum sent_state { SENT_MAILED = 'S', SENT_NOTHING = 'N' };

/* One report at a time per process (see the header). */
static pthread_mutex_t send_lock = PTHREAD_MUTEX_INITIALIZER;

const char *
tls_rpt_send_result_str(enum tls_rpt_send_result r)
{
	switch (r) {
	case TLS_RPT_SEND_SENT: return "sent";
	case TLS_RPT_SEND_NONE: return "no results";
	case TLS_RPT_SEND_DONE: return "already done";
	case TLS_RPT_SEND_NO_RECORD: return "no record";
	default: return "temporary failure";
	}
}

/* The "rsent" key of domain and day: "YYYYMMDD" 0 domain. */
static void
sent_key(struct buf *k, const char *domain, int64_t day)
{
	char d[9];

	tls_report_day(day, d);
	if (buf_append(k, d, 9) != 0 || buf_puts(k, domain) != 0)
		abort();	/* sized for a day and a name */
}

/* The state recorded for the key: SENT_MAILED, SENT_NOTHING or 0. */
static int
sent_get(struct tls_store *st, const struct buf *k)
{
	struct buf v;
	int state = 0;

	buf_init(&v, SENT_MAX);
	if (tls_store_get(st, TLS_STORE_RSENT, k->data, k->len, &v) == 0 &&
	    v.len >= 2 && v.data[0] == SENT_VERSION)
		state = v.data[1];
	buf_free(&v);
	return state;
}

static void
sent_put(struct tls_store *st, const struct buf *k, enum sent_state state,
    const char *what)
{
	struct buf v;

	buf_init(&v, SENT_MAX);
	if (buf_printf(&v, "%c%c%.*s", SENT_VERSION, state, SENT_MAX / 2, what) != 0 ||
	    tls_store_put(st, TLS_STORE_RSENT, k->data, k->len, v.data, v.len, 1) != 0)
		log_warn("tls report: what was sent for %s cannot be recorded",
		    k->data + 9);
	buf_free(&v);
}

/* The mailto: addresses of domain's _smtp._tls record: how many (0: none
 * usable, why says), or -1 (DNS failed). */
static int
rua_addresses(struct dns_resolver *dns, const char *domain,
    char addrs[TLS_RPT_RUA_MAX][TLS_RPT_ADDR_MAX], char *why, size_t whysize)
{
	char q[DNS_NAME_MAX + 16], *txts[64];
	struct tls_rpt_txt rec;
	struct dns_records *t;
	size_t n = 0;
	int naddr = 0;

	snprintf(q, sizeof q, "_smtp._tls.%s", domain);
	dns_txt_lookup(dns, q, &t);
	/* A record holding a NUL is no text record of ours. */
	for (size_t i = 0; i < t->n && n < sizeof txts / sizeof txts[0]; i++)
		if (t->rr[i].text != NULL && strlen(t->rr[i].text) == t->rr[i].textlen)
			txts[n++] = t->rr[i].text;
	if (t->status == DNS_REC_TEMP) {
		str_format(why, whysize, "%s TXT lookup failed: %s", q, t->detail);
		dns_records_free(&t);
		return -1;
	}
	if (t->status != DNS_REC_DATA)
		str_format(why, whysize, "no %s TXT record", q);
	else if (tls_rpt_txt_select(txts, n, &rec) != 0)
		str_format(why, whysize, "no single valid TLSRPTv1 record at %s", q);
	else {
		for (size_t i = 0; i < rec.nrua; i++) {
			int dup = 0;
			if (tls_rpt_mailto_parse(rec.rua[i], addrs[naddr]) != 0) {
				log_info("tls report: %s: rua %s not used (only plain "
				    "mailto: addresses are)", domain, rec.rua[i]);
				continue;
			}
			for (int j = 0; j < naddr; j++)
				dup |= strcasecmp(addrs[j], addrs[naddr]) == 0;
			if (!dup)
				naddr++;
		}
		if (naddr == 0)
			str_format(why, whysize, "no mailto: address in %s", q);
	}
	dns_records_free(&t);
	return naddr;
}

/* Builds and queues the report to each address; 0 when all are queued. */
static int
mail_all(const struct tls_rpt_sender *s, const char *domain, int64_t day,
    int64_t now, const struct buf *json, char addrs[][TLS_RPT_ADDR_MAX],
    int naddr, struct buf *done, char *why, size_t whysize)
{
	for (int i = 0; i < naddr; i++) {
		char unique[48], id[64], daytxt[9];
		struct tls_rpt_mail m = {
			.submitter = s->hostname, .from = s->from, .to = addrs[i],
			.domain = domain, .day_start = tls_report_day(day, daytxt),
			.now = now, .unique = unique, .json = json->data,
			.json_len = json->len,
		};
		struct buf msg;
		int rc;

		snprintf(unique, sizeof unique, "%lld.%d", (long long)now, i);
		buf_init(&msg, TLS_RPT_MAIL_MAX);
		rc = tls_rpt_mail_build(&m, &msg);
		if (rc != 0)
			str_format(why, whysize, "the report to <%s> cannot be made",
			    addrs[i]);
		else if ((rc = s->queue(s->queue_arg, s->from, addrs[i], msg.data,
		    msg.len, id, sizeof id)) != 0)
			str_format(why, whysize, "the report to <%s> cannot be queued now",
			    addrs[i]);
		buf_free(&msg);
		if (rc != 0)
			return -1;
		log_info("%s: tls report of %s for %s queued to <%s>", id, domain,
		    daytxt, addrs[i]);
		(void)buf_printf(done, "%s<%s> (%s)", done->len ? ", " : "", addrs[i], id);
	}
	return 0;
}

/* The work of tls_rpt_send_domain, under send_lock. */
static enum tls_rpt_send_result
send_locked(const struct tls_rpt_sender *s, const char *dom, int64_t day,
    int64_t now, int manual, char *detail, size_t detailsize)
{
	struct tls_report_meta meta = { s->hostname, s->from, NULL };
	char addrs[TLS_RPT_RUA_MAX][TLS_RPT_ADDR_MAX], why[300];
	struct buf key, json, done;
	enum tls_rpt_send_result r;
	int state, n;

	buf_init(&key, TLS_STORE_KEY_MAX);
	sent_key(&key, dom, day);
	state = sent_get(s->store, &key);
	if (state == SENT_MAILED || (state == SENT_NOTHING && !manual)) {
		str_format(detail, detailsize, "the report of %s for that day was %s "
		    "before", dom, state == SENT_MAILED ? "sent" : "found nothing to "
		    "send to");
		buf_free(&key);
		return TLS_RPT_SEND_DONE;
	}
	buf_init(&json, REPORT_JSON_MAX);
	buf_init(&done, SENT_MAX);
	if ((n = tls_report_json(s->store, dom, day, &meta, &json)) <= 0) {
		str_format(detail, detailsize, n < 0 ? "the TLS report of %s cannot be "
		    "read" : "no TLS results recorded for %s that day", dom);
		r = n < 0 ? TLS_RPT_SEND_TEMP : TLS_RPT_SEND_NONE;
	} else if ((n = rua_addresses(s->dns, dom, addrs, why, sizeof why)) < 0) {
		str_format(detail, detailsize, "%s; it is tried again later", why);
		r = TLS_RPT_SEND_TEMP;
	} else if (n == 0) {
		sent_put(s->store, &key, SENT_NOTHING, why);
		str_format(detail, detailsize, "not sent: %s", why);
		r = TLS_RPT_SEND_NO_RECORD;
	} else if (mail_all(s, dom, day, now, &json, addrs, n, &done, why,
	    sizeof why) != 0) {
		str_format(detail, detailsize, "%s; it is tried again later", why);
		r = TLS_RPT_SEND_TEMP;
	} else {
		sent_put(s->store, &key, SENT_MAILED, done.data);
		str_format(detail, detailsize, "sent to %s", done.data);
		r = TLS_RPT_SEND_SENT;
	}
	buf_free(&key);
	buf_free(&json);
	buf_free(&done);
	return r;
}

enum tls_rpt_send_result
tls_rpt_send_domain(const struct tls_rpt_sender *s, const char *domain,
    int64_t day, int64_t now, int manual, char *detail, size_t detailsize)
{
	char dom[DNS_NAME_MAX];
	enum tls_rpt_send_result r;

	if (dns_name_normalize(domain, dom, sizeof dom) != 0) {
		str_format(detail, detailsize, "%s: not a domain name", domain);
		return TLS_RPT_SEND_NONE;
	}
	pthread_mutex_lock(&send_lock);
	r = send_locked(s, dom, day, now, manual, detail, detailsize);
	pthread_mutex_unlock(&send_lock);
	return r;
}

long
tls_rpt_send_day(const struct tls_rpt_sender *s, int64_t day, int64_t now)
{
	char (*doms)[DNS_NAME_MAX];
	long n = tls_report_domains(s->store, day, &doms), sent = 0;

	for (long i = 0; i < n; i++) {
		char detail[600];
		enum tls_rpt_send_result r = tls_rpt_send_domain(s, doms[i], day, now,
		    0, detail, sizeof detail);

		sent += r == TLS_RPT_SEND_SENT;
		if (r == TLS_RPT_SEND_NO_RECORD || r == TLS_RPT_SEND_TEMP)
			log_info("tls report of %s: %s", doms[i], detail);
	}
	free(doms);
	if (n >= 0) {
		char d[9];
		tls_report_day(day, d);
		log_debug("tls reports of %.4s-%.2s-%.2s: %ld domains, %ld sent", d,
		    d + 4, d + 6, n, sent);
	}
	return n < 0 ? -1 : sent;
}
