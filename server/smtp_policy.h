/*
 * smtp_policy: the session asks the policy services (policy_services;
 * Postfix's SMTP access policy delegation, client in filter/policy.h)
 * about each recipient at RCPT, and about the whole message at the end of
 * data with policy_stages = end_of_data, and carries out their answers.
 *
 * When: at RCPT after the session's own recipient checks (an unknown
 * user, relaying denied) passed, so no OK accepts a recipient they
 * refused (REDIRECT and BCC name addresses of the service's choice); at the
 * end of data after the message passed its own checks, before the
 * commit. The services are asked in the order configured, one request
 * each, on the filter pool (never on a session worker's event loop); the
 * session holds its input meanwhile (PH_POLICY).
 *
 * What the answers add up to, as Postfix's restriction lists do with
 * check_policy_service last (smtp_policy_outcome_add):
 *   DUNNO, WARN, INFO  go on to the next service.
 *   OK                 accept; later services are not asked.
 *   REJECT, 5xx        refuse (a DEFER_IF_REJECT before: its 450 instead).
 *   DEFER, 4xx         refuse.
 *   DEFER_IF_PERMIT    remembered; go on; if the request is accepted in
 *                      the end, it is refused with that reply instead.
 *   DEFER_IF_REJECT    remembered; go on.
 *   421                the reply, and the session closes.
 *   PREPEND            the header goes on top of the message when it is
 *                      queued (above our Received:, as Postfix puts it);
 *                      go on. At most SMTP_POLICY_PREPEND_MAX bytes and
 *                      SMTP_POLICY_HEADERS_MAX headers a message; a header
 *                      given again (policyd-spf for each recipient) once.
 *   BCC                the address becomes one more recipient; go on.
 *   REDIRECT           accept; the message goes to that address instead
 *                      of all its recipients.
 *   DISCARD            accept; the message is answered 250 and dropped
 *                      (logged), never queued.
 *   HOLD               accept; the message is queued held (mailctl
 *                      release lets it go), the text logged as why.
 * A service that is down, slow past policy_timeout or broken answers
 * policy_default_action (451 4.3.5 unless configured). The PREPEND, BCC,
 * REDIRECT and DISCARD of a refused recipient are dropped with it.
 *
 * Threads: the services object belongs to a runtime snapshot (made and
 * freed with it); a pool thread uses one idle connection per service at
 * a time. The outcome and transaction functions are pure.
 */
#ifndef SERVER_SMTP_POLICY_H
#define SERVER_SMTP_POLICY_H

#include <stddef.h>

#include "filter/policy.h"
#include "lib/buf.h"
#include "server/config.h"

#define SMTP_POLICY_HEADERS_MAX	8
#define SMTP_POLICY_PREPEND_MAX	2048	/* bytes of PREPEND headers a message */
#define SMTP_POLICY_BCC_MAX	8
#define SMTP_POLICY_IDLE_MAX	32	/* idle connections kept per service */

struct smtp_policy_services;

/* One client spec and idle pool per configured service, with the
 * timeouts and default action of cfg. NULL with a reason in err. */
struct smtp_policy_services *smtp_policy_services_new(const struct config *cfg,
    char *err, size_t errsize);
void smtp_policy_services_free(struct smtp_policy_services **sp);

/* Pool thread: asks every service in turn about rq until one gives a
 * final answer; fills o (smtp_policy_outcome_init is done here). */
struct smtp_policy_outcome;
void smtp_policy_services_ask(struct smtp_policy_services *sv,
    const struct policy_request *rq, struct smtp_policy_outcome *o);

/* ---- what the answers to one request add up to ---- */

enum smtp_policy_result {
	SMTP_POLICY_ACCEPT = 0,
	SMTP_POLICY_REFUSE,	/* reply is 4xx or 5xx */
	SMTP_POLICY_SHUTDOWN,	/* reply is 421: then close */
};

struct smtp_policy_outcome {
	enum smtp_policy_result result;
	int stop;		/* final: later services are not asked */
	char reply[FILTER_REPLY_MAX + 1];
	char dip[FILTER_REPLY_MAX + 1];	/* a DEFER_IF_PERMIT's reply, or "" */
	char dir[FILTER_REPLY_MAX + 1];	/* a DEFER_IF_REJECT's reply, or "" */
	size_t nheaders;
	char headers[SMTP_POLICY_HEADERS_MAX][sizeof ((struct policy_verdict *)0)->header];
	size_t nbcc;
	char bcc[SMTP_POLICY_BCC_MAX][sizeof ((struct policy_verdict *)0)->addr];
	char redirect[sizeof ((struct policy_verdict *)0)->addr];	/* or "" */
	int discard;
	char hold[sizeof ((struct policy_verdict *)0)->text + 1];	/* HOLD: why */
	int held;
};

void smtp_policy_outcome_init(struct smtp_policy_outcome *o);
/* Adds the next service's verdict. Returns 1 when it is final (o->stop:
 * ask no more), else 0. */
int smtp_policy_outcome_add(struct smtp_policy_outcome *o,
    const struct policy_verdict *v);
/* After the last verdict: a DEFER_IF_PERMIT turns an accept into its
 * refusal. */
void smtp_policy_outcome_end(struct smtp_policy_outcome *o);

/* ---- what the accepted answers of one message carry ---- */

struct smtp_policy_txn {
	struct buf headers;	/* "Name: value\r\n" lines, in order */
	size_t nheaders;
	char *bcc[SMTP_POLICY_BCC_MAX];
	size_t nbcc;
	char *redirect;		/* or NULL */
	int discard;
	char *hold;		/* a HOLD's text ("" none given), or NULL */
};

void smtp_policy_txn_init(struct smtp_policy_txn *t);
/* Takes what an accepted outcome carries: headers not there yet (while
 * they fit), BCC addresses not there yet, a redirect (the last one
 * wins), a discard, a hold. Returns the number of headers or addresses dropped
 * for the limits (to log). */
size_t smtp_policy_txn_take(struct smtp_policy_txn *t,
    const struct smtp_policy_outcome *o);
/* Forgets everything (the transaction ended); storage is kept. */
void smtp_policy_txn_reset(struct smtp_policy_txn *t);
void smtp_policy_txn_free(struct smtp_policy_txn *t);

#endif
