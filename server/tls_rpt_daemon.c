/*
 * tls_rpt_daemon: mailed TLS reports in the daemon
 * (server/tls_rpt_daemon.h).
 */
#include "server/tls_rpt_daemon.h"

#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"
#include "queue/msg_writer.h"
#include "relay/tls_report.h"
#include "relay/tls_rpt_send.h"
#include "server/control.h"
#include "server/policy.h"

#define TLS_RPT_DAEMON_DAYS_BACK 2

struct daemon_queue {
	struct committer *c;
	const char *hostname;
	int64_t now;
};

/* tls_rpt_queue_fn: into the queue as the daemon's own mail. */
static int
daemon_queue(void *arg, const char *sender, const char *rcpt, const char *msg,
    size_t len, char *id, size_t idsize)
{
	struct daemon_queue *q = arg;
	queue_id_t qid = 0;
	enum commit_status st = msg_writer_queue(q->c, q->hostname, sender, rcpt, 0,
	    q->now, msg, len, &qid);

	if (st != COMMIT_OK)
		return -1;
	queue_id_format(qid, id, idsize);
	return 0;
}

/* The sender of cfg over tls and c; its resolver is the caller's to free.
 * -1 (logged, err) when the resolver cannot be made. */
static int
daemon_sender(const struct config *cfg, struct tls_store *tls,
    struct daemon_queue *q, struct tls_rpt_sender *s, char *err, size_t errsize)
{
	memset(s, 0, sizeof *s);
	s->store = tls;
	s->hostname = cfg->hostname;
	s->from = cfg->tls_report_from;
	s->queue = daemon_queue;
	s->queue_arg = q;
	q->hostname = cfg->hostname;
	if ((s->dns = policy_resolver(cfg, err, errsize)) == NULL) {
		log_warn("tls reports: dns: %s", err);
		return -1;
	}
	return 0;
}

void
tls_rpt_daemon_daily(const struct config *cfg, struct tls_store *tls,
    struct committer *c, int64_t now)
{
	struct daemon_queue q = { c, NULL, now };
	struct tls_rpt_sender s;
	char err[300];
	long n;

	if (!cfg->tls_report_send) {
		log_debug("tls reports: none mailed (tls_report_send = no)");
		return;
	}
	if (tls == NULL || daemon_sender(cfg, tls, &q, &s, err, sizeof err) != 0)
		return;
	/* The day before too: what a DNS failure left undone yesterday. */
	for (int back = 1; back <= TLS_RPT_DAEMON_DAYS_BACK; back++) {
		if ((n = tls_rpt_send_day(&s, now - back * 86400, now)) < 0)
			log_warn("tls reports: the domains of %d days ago cannot be read",
			    back);
		else if (n > 0)
			log_info("tls reports: %ld daily reports queued", n);
	}
	dns_resolver_free(&s.dns);
}

void
tls_rpt_daemon_request(const struct config *cfg, struct tls_store *tls,
    struct committer *c, const char *arg, FILE *out)
{
	struct daemon_queue q = { c, NULL, (int64_t)time(NULL) };
	char domain[CONTROL_ARG_MAX], detail[700], err[300];
	const char *sp = strchr(arg, ' ');
	struct tls_rpt_sender s;
	enum tls_rpt_send_result r;
	int64_t day;

	if (!cfg->tls_report_send) {
		fputs("error: tls_report_send is no: no report is mailed\n", out);
		return;
	}
	if (sp == NULL || (size_t)(sp - arg) >= sizeof domain ||
	    tls_report_parse_date(sp + 1, &day) != 0) {
		fputs("error: tls-report send DOMAIN YYYY-MM-DD\n", out);
		return;
	}
	memcpy(domain, arg, (size_t)(sp - arg));
	domain[sp - arg] = '\0';
	if (tls == NULL || daemon_sender(cfg, tls, &q, &s, err, sizeof err) != 0) {
		fputs("error: the report cannot be sent now\n", out);
		return;
	}
	r = tls_rpt_send_domain(&s, domain, day, q.now, 1, detail, sizeof detail);
	fprintf(out, "%s: %s\n", r == TLS_RPT_SEND_SENT ? "ok" : "error", detail);
	dns_resolver_free(&s.dns);
}
