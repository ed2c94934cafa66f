/*
 * tls_rpt_send: mails a policy domain's daily TLS report (RFC 8460) to
 * the mailto: addresses of its _smtp._tls TXT record, once per domain and
 * UTC day.
 *
 * For a domain and day with results (relay/tls_report.h): the record is
 * looked up through the given resolver and parsed strictly
 * (tls_rpt_txt_select; https: URIs are not used), then for each mailto:
 * address the report mail (relay/tls_rpt_mail.h) is handed to the
 * caller's queue function, which puts it into the queue as new mail.
 * What was done is remembered durably in the TLS store (database
 * "rsent", synced, pruned with the counters): "sent" once every address
 * got its message, "nothing" when the domain publishes no usable record.
 * A DNS failure or a queue that refuses the mail leaves nothing behind,
 * so the next run tries again. A crash between queueing and the record
 * may send that day's report twice (at least once, never lost silently).
 *
 * Errors: the result says what happened; detail explains (for mailctl).
 * Threads: any thread; reports are made one at a time per process (a
 * lock held across the check, the queueing and the record), so the
 * daily run and `mailctl tls-report --send` never send one twice.
 */
#ifndef RELAY_TLS_RPT_SEND_H
#define RELAY_TLS_RPT_SEND_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"
#include "relay/tls_store.h"

/* Queues msg[0..len) (CRLF line ends) from sender to rcpt as new mail of
 * our own. Returns 0 once it is durable in the queue, with its queue id
 * (text) in id, or -1. */
typedef int tls_rpt_queue_fn(void *arg, const char *sender, const char *rcpt,
    const char *msg, size_t len, char *id, size_t idsize);

struct tls_rpt_sender {
	struct tls_store *store;	/* read-write */
	struct dns_resolver *dns;
	const char *hostname;		/* organization-name, submitter */
	const char *from;		/* envelope sender, From:, contact-info */
	tls_rpt_queue_fn *queue;
	void *queue_arg;
};

enum tls_rpt_send_result {
	TLS_RPT_SEND_SENT = 0,		/* queued to every mailto: address */
	TLS_RPT_SEND_NONE,		/* no results that day */
	TLS_RPT_SEND_DONE,		/* done before (sent; or, for the daily
					 * run, nothing to send to) */
	TLS_RPT_SEND_NO_RECORD,		/* no valid _smtp._tls record with a
					 * mailto: address */
	TLS_RPT_SEND_TEMP,		/* DNS or the queue failed: later */
};

/* "sent", "no results", "already done", "no record", "temporary failure". */
const char *tls_rpt_send_result_str(enum tls_rpt_send_result r);

/*
 * The report of domain for the UTC day holding Unix time day. manual (an
 * administrator's request) sends again what found no record before, but
 * never what was sent. detail gets one line of what was done.
 */
enum tls_rpt_send_result tls_rpt_send_domain(const struct tls_rpt_sender *s,
    const char *domain, int64_t day, int64_t now, int manual, char *detail,
    size_t detailsize);

/* The daily run: every domain with results on that day not done yet.
 * Returns the number of reports sent, or -1 when the day's domains
 * cannot be listed. */
long tls_rpt_send_day(const struct tls_rpt_sender *s, int64_t day, int64_t now);

#endif
