/*
 * policy: the client of Postfix's SMTP access policy delegation protocol
 * (a policy service such as postgrey or policyd-spf decides at RCPT, or
 * at another stage). A request is "name=value" lines and an empty line
 * (request=smtpd_access_policy, protocol_state, sender, recipient,
 * client_address, ...); the answer is "action=..." (and any other
 * attributes, ignored) and an empty line. The action is what a Postfix
 * access table may say, turned into a verdict the session carries out.
 *
 * Verdicts (enum policy_kind), and what the session does:
 *   DUNNO     no opinion: go on with the other checks.
 *   OK        this stage is accepted: skip the remaining checks of it
 *             (Postfix: OK, and an all-numerical action).
 *   REJECT    refuse with reply (5xx; REJECT [text] is 554 5.7.1).
 *   DEFER     refuse with reply (4xx; DEFER [text] is 450 4.7.1).
 *   DEFER_IF_PERMIT  refuse with reply (450 4.7.1) if the session's own
 *             checks would accept; else do what they say (postgrey's
 *             greylisting answer).
 *   DEFER_IF_REJECT  if the session's own checks refuse, refuse with
 *             reply (450 4.7.1) instead; else go on.
 *   SHUTDOWN  "421 text": send reply and close the session.
 *   DISCARD   accept, and drop the message at the end of data.
 *   HOLD      accept, and keep the message on hold (text: the reason).
 *   PREPEND   as DUNNO, and add header (a whole "Name: value" line,
 *             checked) at the top of the message.
 *   REDIRECT  as OK, and the message goes to addr instead of its
 *             recipients.
 *   BCC       as DUNNO, and addr gets a copy.
 * WARN and INFO text are DUNNO with text set (log it). FILTER, and the
 * names of Postfix restrictions other than permit/reject/defer, mean
 * nothing here: like an unknown action they are logged and give "451
 * 4.3.5 Server configuration problem" (what Postfix answers then).
 *
 * The service down, a timeout, or an answer that breaks the protocol
 * (no action, a line over POLICY_LINE_MAX, more than POLICY_ATTRS_MAX
 * attributes) give the spec's default_action, parsed like an action,
 * with from_default set.
 *
 * Connections: a client keeps one connection and reuses it for the next
 * requests (postgrey and policyd-spf serve many per connection); one idle
 * longer than idle_ms, or closed by the service, is replaced, and a
 * request on a reused connection that finds it closed is sent once more
 * on a new one.
 *
 * Threads: policy_client_ask blocks up to its timeouts: call it from a
 * pool thread, never from a session worker's event loop. A client belongs
 * to one thread at a time; a spec is immutable once made and may be
 * shared. Errors: as above; logged as warnings ("policy NAME: why").
 */
#ifndef FILTER_POLICY_H
#define FILTER_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "filter/endpoint.h"
#include "filter/reply.h"
#include "lib/buf.h"

#define POLICY_LINE_MAX		4096	/* one reply line without LF */
#define POLICY_ATTRS_MAX	64	/* attributes in one reply */
#define POLICY_REPLY_MAX	(64 * 1024)	/* a whole reply */
#define POLICY_ACTION_MAX	2048	/* the action attribute's value */
#define POLICY_VALUE_MAX	2048	/* a request value (longer is cut) */
#define POLICY_DEFAULT_ACTION	"451 4.3.5 Server configuration problem"

struct policy_spec {
	struct filter_endpoint ep;	/* ep.text names it in logs */
	unsigned connect_timeout_ms;	/* default 10 s */
	unsigned timeout_ms;		/* request to reply: default 100 s */
	unsigned idle_ms;		/* reuse an idle connection: 300 s */
	char default_action[POLICY_ACTION_MAX + 1];
};

/* Fills s for endpoint with the defaults (Postfix's: 100 s, 300 s,
 * POLICY_DEFAULT_ACTION). Returns 0, or -1 with a reason in err. */
int policy_spec_init(struct policy_spec *s, const char *endpoint, char *err,
    size_t errsize);
/* Sets the default action; -1 (err) when it is not a valid action. */
int policy_spec_default(struct policy_spec *s, const char *action, char *err,
    size_t errsize);

/* The attributes of a request (Postfix's names). NULL sends an empty
 * value; control bytes become '?', values are cut at POLICY_VALUE_MAX. */
struct policy_request {
	const char *protocol_state;	/* CONNECT EHLO HELO MAIL RCPT DATA
					 * END-OF-MESSAGE VRFY ETRN */
	const char *protocol_name;	/* SMTP, ESMTP */
	const char *helo_name, *queue_id, *sender, *recipient;
	unsigned long recipient_count, size;
	const char *client_address, *client_name, *reverse_client_name;
	const char *client_port;
	const char *instance;		/* the same for every request of one
					 * message: services count by it */
	const char *sasl_method, *sasl_username, *sasl_sender;
	const char *ccert_subject, *ccert_issuer, *ccert_fingerprint;
	const char *ccert_pubkey_fingerprint;
	const char *encryption_protocol, *encryption_cipher;
	const char *encryption_keysize;
	const char *etrn_domain, *stress;
	const char *server_address, *server_port;
	const char *policy_context, *compatibility_level, *mail_version;
};

enum policy_kind {
	POLICY_DUNNO = 0,
	POLICY_OK,
	POLICY_REJECT,
	POLICY_DEFER,
	POLICY_DEFER_IF_PERMIT,
	POLICY_DEFER_IF_REJECT,
	POLICY_SHUTDOWN,
	POLICY_DISCARD,
	POLICY_HOLD,
	POLICY_PREPEND,
	POLICY_REDIRECT,
	POLICY_BCC,
};

struct policy_verdict {
	enum policy_kind kind;
	int from_default;	/* the default action decided */
	char reply[FILTER_REPLY_MAX + 1];	/* REJECT, DEFER*, SHUTDOWN */
	char header[1000];	/* PREPEND: "Name: value" */
	char addr[512];		/* REDIRECT, BCC */
	char text[512];		/* HOLD, DISCARD, WARN, INFO: printable */
};

/* Turns an action ("DEFER_IF_PERMIT Greylisted", "550 5.7.1 no", "OK")
 * into v. Returns 0, or -1 with a static reason when the action is
 * unknown or malformed (v is then the 451 4.3.5 answer). */
int policy_action_parse(const char *action, struct policy_verdict *v,
    const char **why_r);

/* Appends the request (every attribute, then the empty line) to out.
 * Returns 0, or -1 when out's maximum would be passed. */
int policy_request_encode(const struct policy_request *rq, struct buf *out);

/* The incremental reply parser. */
enum policy_reply_rc {
	POLICY_REPLY_DONE = 0,	/* the empty line came */
	POLICY_REPLY_MORE,	/* whole lines consumed; need more */
	POLICY_REPLY_ERROR,	/* why says why */
};

struct policy_reply {
	size_t lines, bytes;
	int have_action;
	char action[POLICY_ACTION_MAX + 1];
	const char *why;
};

void policy_reply_init(struct policy_reply *r);
/* Consumes whole lines (LF-ended, a CR before the LF dropped) of data and
 * sets *used_r; the caller keeps the rest for the next call. ERROR: a
 * line without '=', an empty name, a line over POLICY_LINE_MAX (also when
 * no LF came within that many bytes), too many attributes or bytes, a
 * second action, the end without an action, a NUL byte. */
int policy_reply_feed(struct policy_reply *r, const char *data, size_t len,
    size_t *used_r);

struct policy_client;

struct policy_client *policy_client_new(const struct policy_spec *spec);
void policy_client_free(struct policy_client **c);
/* Asks the service; fills *v (never fails: see default_action). */
void policy_client_ask(struct policy_client *c, const struct policy_request *rq,
    struct policy_verdict *v);

/* "dunno", "ok", "reject", ... for logs and the test driver. */
const char *policy_kind_name(enum policy_kind k);

#endif
