/*
 * smtp_session_int: the session's internals, shared by the files that
 * make up one inbound SMTP session and by nothing else:
 *   smtp_session.c          life cycle, the run loop, timers, commit results
 *   smtp_commands.c         the command table and the commands of a transaction
 *   smtp_auth.c             AUTH (smtp_auth_dovecot.c: checked by Dovecot)
 *   session_io.c            socket, TLS and what the session waits for
 *   smtp_message.c          message assembly
 *   session_policy.c        the policy services at RCPT and the end of data
 *   session_mailauth.c      SPF, DKIM and DMARC checks; DKIM signing
 *   session_milter.c        the milters, stage by stage
 *   session_milter_apply.c  their changes at the end of data
 *
 * Threads: everything here runs on the session's worker thread.
 */
#ifndef SERVER_SMTP_SESSION_INT_H
#define SERVER_SMTP_SESSION_INT_H

#include <stdint.h>
#include <sys/socket.h>

#include "lib/metrics.h"
#include "queue/committer.h"
#include "server/config.h"
#include "server/offloop.h"
#include "server/runtime.h"
#include "server/session_io.h"
#include "server/smtp_args.h"
#include "server/smtp_message.h"
#include "server/smtp_parser.h"
#include "server/smtp_sasl.h"

enum session_phase {
	PH_GREET_WAIT,		/* greeting_delay: the client must stay silent */
	PH_COMMAND,		/* reading commands */
	PH_AUTH,		/* reading a SASL response line */
	PH_AUTH_CHECK,		/* the password is checked off the loop */
	PH_POLICY,		/* the policy services are asked off the loop */
	PH_MAILAUTH,		/* SPF, DKIM, DMARC or signing off the loop */
	PH_MILTER,		/* the milters are asked off the loop (or the
				 * end of data waits for its records first) */
	PH_AUTH_DELAY,		/* the answer to a failed login waits */
	PH_NAME_WAIT,		/* DATA/BDAT waits for the client's name */
	PH_DATA,		/* reading DATA content */
	PH_BDAT,		/* reading a BDAT chunk */
	PH_COMMIT,		/* the message is with the committer (or its
				 * last records are, before the commit) */
	PH_CLOSING,		/* sending the last replies, then close */
	PH_CLOSED,		/* connection gone; freed once nothing is in flight */
};

struct smtp_session;

/* A message given up (refused, or its transaction reset) while records of
 * it were with the committer: freed, and its records discarded, when the
 * last one came back. Or (committed) one whose final commit went out
 * with records still with the committer (committer_submit_stage says why
 * that is safe): only freed then; its records are the commit's. */
struct session_dying {
	struct smtp_message *msg;
	int committed;
	struct session_dying *next;
};

/* A record of a message on its way to the committer (smtp_message.h). */
struct session_stage {
	struct commit_stage req;	/* first; req.arg is this */
	struct smtp_session *s;
	struct smtp_message *msg;
	struct smtp_message_rec *rec;
};

/* An off-loop job of a session (offloop.h). The pool thread sees only
 * base and the inputs of the job's own struct; s and next belong to the
 * worker thread. */
struct session_job {
	struct offloop_job base;	/* first */
	struct smtp_session *s;		/* NULL once the session ended */
	struct session_job *next;	/* the session's jobs in flight */
	/* Worker thread, s alive: the job ran (or was cancelled:
	 * base.cancelled). Returns as smtp_session_event. */
	int (*finish)(struct smtp_session *s, struct session_job *j);
	void (*release)(struct session_job *j);	/* frees the job */
};

struct smtp_session {
	struct worker *w;
	struct runtime *rt;
	const struct config *cfg;	/* rt->cfg */
	size_t slot;			/* index in the worker's table */
	int ready;			/* queued by the worker to run again */
	enum listen_kind kind;
	struct sockaddr_storage peer;
	char peer_ip[64];
	int may_relay;			/* relay_networks or authenticated */
	enum session_phase phase;
	int64_t deadline;		/* monotonic ms: timeout of the current wait */
	int deadline_rate;		/* it is the min_data_rate bound */
	int64_t wake;			/* PH_AUTH_DELAY ends then */
	struct session_job *jobs;	/* off-loop jobs in flight */
	struct session_job *name_job;	/* the client name lookup, in flight */
	int64_t name_deadline;		/* waited for until then, at most */
	enum session_phase name_then;	/* PH_DATA or PH_BDAT once it is known */
	char client_name[256];		/* forward-confirmed reverse name, or "" */
	int draining;

	struct session_io io;
	char tls_desc[160];
	struct smtp_cmd_parser cp;
	unsigned errors;		/* bad commands (max_errors) */
	unsigned junk;			/* NOOP, RSET... since the last message */
	unsigned refused_rcpts;		/* RCPT refusals since the last message */

	/* HELO */
	int helo_seen;
	int esmtp;
	char helo[256];

	/* AUTH */
	char auth_user[256];		/* "" until a login succeeded */
	struct smtp_sasl sasl;
	const char *auth_mech;		/* "PLAIN" or "LOGIN" during AUTH */
	struct session_dovecot *dovecot;	/* auth_service = dovecot */

	/* policy services (smtp_policy.c); NULL until first asked */
	struct session_policy *policy;
	/* mail authentication (session_mailauth.c); NULL until needed */
	struct session_mailauth *mailauth;
	/* the milters (session_milter.c); NULL until the first HELO */
	struct session_milter *milter;

	/* the mail transaction */
	int in_txn;
	struct smtp_mail_args mail;
	struct envelope_rcpt *rcpts;
	size_t nrcpts, caprcpts;
	int bdat_used;			/* BDAT seen in this transaction */
	int bdat_failed;		/* the transaction's chunks are refused
					 * until LAST or a new MAIL (a chunk
					 * refused, no valid recipients) */
	const char *bdat_refusal;	/* this chunk is read and refused so */
	const char *bdat_fail_reply;	/* with bdat_failed: the chunks' reply */
	uint64_t bdat_left;		/* bytes of the current chunk still to read */
	uint64_t bdat_size;		/* size of the current chunk */
	int bdat_last;
	struct smtp_message *msg;	/* being received */
	struct smtp_message_stager stager;	/* its records go through us */
	int64_t msg_start;		/* when its content began (monotonic ms) */
	uint64_t msg_bytes;		/* content bytes read for it so far */
	int64_t blocked_since;		/* its buffers are all out since (0: not) */
	queue_id_t qid;
	struct commit_msg *commit;	/* in flight (PH_COMMIT) */
	struct commit_msg commit_storage;
	size_t commit_reserved;		/* inflight bytes held for it */
	uint64_t commit_size;		/* its bytes */
	unsigned stages;		/* records with the committer */
	enum commit_status commit_stage_status;	/* the first failure of a
					 * record of the message in commit */
	struct session_dying *dying;

	/* operations: metrics */
	int64_t start_us;		/* connected (metrics_clock_us) */
	uint64_t bytes_in;		/* received, commands and data */
	unsigned messages;		/* queued in this session */
	int64_t commit_us;		/* the message went to the committer */

	/* operations: abuse control (smtp_ops.c) */
	int rate_exempt;		/* relay_networks: no client rates, no DNSBL,
					 * no greeting test */
	int greet_delayed;		/* the greeting test applies to this client */
	int64_t greet_at;		/* PH_GREET_WAIT: the greeting is due then */
	struct session_job *dnsbl_job;	/* the DNSBL lookups, in flight */
	int64_t dnsbl_deadline;		/* the greeting waits for them until then */
	char *dnsbl_refusal;		/* listed: the 554 sent instead of 220 */
	char *hold_why;			/* the hold rule that holds the message */

	/* operations: the trace (smtp_trace.c), unix us; 0: not yet */
	int64_t trace_helo_us, trace_tls_us, trace_auth_us;
	int64_t trace_mail_us, trace_rcpt_us;
	struct session_trace_notes *trace_notes;	/* the transaction's other events */
};

/* smtp_session.c */
void session_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Counts a bad command; at max_errors replies 421 and closes. Returns 1
 * when the session is closing now. */
int session_error(struct smtp_session *s);
void session_set_deadline(struct smtp_session *s);
/* Runs s until it has to wait (after a job or timer); as
 * smtp_session_event. */
int session_continue(struct smtp_session *s);
/* Hands j (base.run, finish and release set) to pool for s. Returns 0, or
 * -1 when the pool refused it (j untouched, still the caller's). */
int session_job_submit(struct smtp_session *s, struct offloop *pool,
    struct session_job *j);
/* The session stops waiting for j: it finishes alone and is freed. */
void session_job_abandon(struct smtp_session *s, struct session_job *j);
/* Does a DATA or BDAT have to wait for the client name now? */
int session_name_pending(const struct smtp_session *s);

/* smtp_commands.c */
void session_command(struct smtp_session *s, const char *line);
/* A command out of sequence: 503 5.5.1 with why; counts as an error. */
void session_bad_sequence(struct smtp_session *s, const char *why);
void session_txn_reset(struct smtp_session *s);
/* The stager of the session's messages (smtp_message.h). */
void session_stager_init(struct smtp_session *s);
/* The message being received is given up: freed with what it staged,
 * now or when its last record comes back. */
void session_msg_abandon(struct smtp_session *s);
/* Content bytes for the message in DATA or BDAT; returns bytes consumed
 * (fewer when the message's buffers are all with the committer). */
size_t session_content(struct smtp_session *s, const char *p, size_t avail);
/* Recipients: refused with reply (counts: toward max_unknown_recipients;
 * the metrics reason from the reply, or with _reason the enum
 * metric_reason given); accepted (250); appended without a reply; all
 * dropped. */
void session_rcpt_refuse(struct smtp_session *s, const char *addr,
    const char *reply, int counts);
void session_rcpt_refuse_reason(struct smtp_session *s, const char *addr,
    const char *reply, int counts, unsigned reason);
void session_rcpt_accept(struct smtp_session *s, const struct smtp_rcpt_args *r);
/* Adds a recipient to the transaction, unless it has it already (the
 * address compared without case, as Postfix's duplicate filter does):
 * a mailbox named twice, by the client, a milter or a policy service,
 * gets one copy. Returns 1 when added, 0 when it was there. */
int session_rcpt_append(struct smtp_session *s, const char *addr,
    const char *orcpt, unsigned notify);
/* 1 when the transaction has recipient addr (compared without case). */
int session_rcpt_has(const struct smtp_session *s, const char *addr);
void session_rcpt_clear(struct smtp_session *s);
/* The message passed every check: the milters, then the committer. */
void session_commit(struct smtp_session *s);
/* The milters passed it too (or there are none): to the committer
 * (PH_COMMIT). */
void session_commit_now(struct smtp_session *s);
/* HELO/EHLO took the name (and the milters did not refuse it): the reply. */
void session_helo_reply(struct smtp_session *s);
/* MAIL passed every check: the transaction begins (250). */
void session_mail_begin(struct smtp_session *s);
/* RCPT r passed every check: it is taken (250). */
void session_rcpt_take(struct smtp_session *s, const struct smtp_rcpt_args *r);
/* The milters decided DATA or the first BDAT: refusal NULL goes on (354,
 * or the chunk is read), else it is the reply (it must stay valid for
 * the transaction: BDAT refuses every chunk with it). */
void session_data_decided(struct smtp_session *s, const char *refusal);
/* The message is refused at its end with reply; the transaction ends.
 * The metrics reason comes from the reply, or with _reason is given. */
void session_message_refused(struct smtp_session *s, const char *reply);
void session_message_refused_reason(struct smtp_session *s, const char *reply,
    unsigned reason);
/* Is the message waiting for one of its records to come back? */
int session_msg_blocked(const struct smtp_session *s);
/* A record came back (smtp_session_stage_done): the message goes on, is
 * committed once its last record is in, or is dropped. */
void session_stage_back(struct smtp_session *s, struct session_stage *sg,
    enum commit_status st);
/* TLS is up: forget what was said in clear (RFC 3207 4.2). */
void session_tls_started(struct smtp_session *s);
/* The client name lookup is over (or given up): a DATA or BDAT that
 * waited for it (PH_NAME_WAIT) goes on. */
void session_name_known(struct smtp_session *s);

/* smtp_auth.c */
#define SMTP_AUTH_MECHS_MAX 2200	/* the EHLO AUTH line's mechanisms */
/* May this session authenticate now (and is AUTH offered in EHLO)? */
int session_auth_offered(const struct smtp_session *s);
void session_cmd_auth(struct smtp_session *s, const char *arg);
void session_auth_response(struct smtp_session *s, const char *line);
/* A broken SASL response line (too long, bare CR/LF) ends the exchange. */
void session_auth_abort(struct smtp_session *s);
/* PH_AUTH_DELAY is over: the held answer goes out. */
void session_auth_delay_over(struct smtp_session *s);
/* The mechanisms of the EHLO AUTH line into out. */
void session_auth_mechanisms(struct smtp_session *s, char *out, size_t outsize);
/* The login succeeded as user: 235, logged, the throttle forgets. */
void session_auth_succeeded(struct smtp_session *s, const char *user);
/* Does the logged-in user own sender: its login name as an address, or
 * an alias (aliases_file) that leads there? A Dovecot login without a
 * domain stands for that name at each of local_domains. */
int session_sender_owned(const struct smtp_session *s, const char *sender);
/* The login failed (user: as named, or ""): the exchange ends, the
 * throttle counts it, 535 (maybe after a delay) or 421. */
void session_auth_failed(struct smtp_session *s, const char *user);

/* session_mailauth.c (README "Mail authentication") */
/* MAIL FROM passed the session's checks: 1 when SPF is checked off the
 * loop (the reply comes then), 0 to accept now (session_mail_accepted). */
int session_mailauth_mail(struct smtp_session *s);
/* A message begins: the DKIM verifier or signer taps its content. */
void session_mailauth_begin(struct smtp_session *s,
    struct smtp_message_info *info);
/* The message passed its own checks: checked or signed off the loop, then
 * the policy services (session_policy_end_message) and the commit.
 * Returns 1 when it goes on there, 0 to commit now. */
int session_mailauth_end_message(struct smtp_session *s);
void session_mailauth_txn_reset(struct smtp_session *s);
void session_mailauth_free(struct smtp_session *s);
/* MAIL FROM is accepted: the transaction begins (250). */
void session_mail_accepted(struct smtp_session *s);

/* session_policy.c (the policy services: smtp_policy.h) */
/* RCPT r passed the session's own checks. Returns 1 when the policy
 * services decide it (the answer comes later, in PH_POLICY, or was
 * given), 0 when none is asked at RCPT (accept it now). */
int session_policy_rcpt(struct smtp_session *s, const struct smtp_rcpt_args *r);
/* The message passed its own checks: asks at END-OF-MESSAGE when
 * configured, then applies what the answers carry (PREPEND, BCC,
 * REDIRECT, DISCARD). Returns 1 when the session goes on from there
 * (commit, refusal or discard done, or an answer awaited); 0: commit. */
int session_policy_end_message(struct smtp_session *s);
/* The transaction ended: what the answers carried is forgotten. */
void session_policy_txn_reset(struct smtp_session *s);
/* Did an answer say HOLD for the message being committed (s->hold_why
 * set then, unless a hold rule set it)? */
int session_policy_hold(struct smtp_session *s);
void session_policy_free(struct smtp_session *s);

/* session_milter.c (README "Milters"): each returns 1 when the milters
 * decide (the session waits in PH_MILTER, or the answer was given), 0
 * when there are none (go on now). */
/* A CONNECT or HELO refusal that holds for the session: 1 with *reply_r. */
int session_milter_refusal(struct smtp_session *s, const char **reply_r);
/* After HELO/EHLO took the name: then session_helo_reply. */
int session_milter_helo(struct smtp_session *s);
/* MAIL passed the session's checks: then session_mail_begin. */
int session_milter_mail(struct smtp_session *s);
/* RCPT r passed the session's and the policy services' checks: then
 * session_rcpt_take. */
int session_milter_rcpt(struct smtp_session *s, const struct smtp_rcpt_args *r);
/* A command the session does not know (line as received): then its 500
 * (or the milters' refusal) and the error count. */
int session_milter_unknown(struct smtp_session *s, const char *line);
/* The session refused recipient addr: told with the next event. */
void session_milter_rcpt_refused(struct smtp_session *s, const char *addr);
/* DATA or the first BDAT, the message begun: then session_data_decided. */
int session_milter_data(struct smtp_session *s);
/* The message passed the other checks: then session_commit_now, or the
 * refusal or discard. */
int session_milter_end_message(struct smtp_session *s);
/* A record of the message came back: 1 when the end of data waited for
 * it (it goes on now, or keeps waiting). */
int session_milter_staged(struct smtp_session *s);
/* Is the message being committed quarantined by a milter (s->hold_why
 * set then, unless a hold rule set it)? */
int session_milter_hold(struct smtp_session *s);
/* The socket of the milter a stage asked from the loop waits for is
 * ready: returns as smtp_session_event. */
int session_milter_event(struct smtp_session *s);
/* Has that milter's deadline passed? Then session_milter_expire (it
 * fails: its default action; returns as smtp_session_event). */
int session_milter_expired(const struct smtp_session *s, int64_t now);
int session_milter_expire(struct smtp_session *s);
void session_milter_txn_reset(struct smtp_session *s);
/* session_milter_apply.c: the end of data's changes m (may be NULL) made
 * to the message and envelope; a quarantine's text replaces *quarantine.
 * Returns 0 (commit it), 1 (every recipient was deleted: drop it), or -1
 * (the message was refused, and answered). */
int session_milter_changes(struct smtp_session *s, const struct milter_mods *m,
    char **quarantine);
void session_milter_free(struct smtp_session *s);

/* smtp_auth_dovecot.c (s->rt->dovecot set) */
/* AUTH mech [initial]: the exchange goes to Dovecot (PH_AUTH_CHECK). */
void session_dovecot_start(struct smtp_session *s, const char *mech,
    const char *initial);
/* The client's answer to a challenge ("*" cancels). */
void session_dovecot_response(struct smtp_session *s, const char *line);
/* The mechanisms for EHLO into out; the first EHLO also has Dovecot
 * asked in the background. Returns 1 when they are Dovecot's. */
int session_dovecot_mechanisms(struct smtp_session *s, char *out, size_t outsize);
/* The exchange is over: a connection the session holds is closed. */
void session_dovecot_drop(struct smtp_session *s);
/* The session ends. */
void session_dovecot_free(struct smtp_session *s);

/* smtp_ops.c: abuse control, the counting of refusals, hold rules */
/* The metrics reason (enum metric_reason) of a refusal reply. */
unsigned session_reply_reason(const char *reply);
/* The connection is up (TLS too, for smtps): the connection rate, the
 * DNSBL lookups and the greeting test decide when the 220 goes, or
 * whether the client is refused instead. */
void session_admit(struct smtp_session *s);
/* PH_GREET_WAIT at now: sends the greeting (or the refusal) when its
 * time has come. Returns 1 when it did. */
int session_greet_due(struct smtp_session *s, int64_t now);
/* The client talked before the greeting: 554 5.5.1 and close. */
void session_pregreet(struct smtp_session *s);
/* MAIL: the client's message rate, or the account's messages of the day.
 * Returns 1 after replying with a refusal. */
int session_rate_mail(struct smtp_session *s);
/* RCPT of addr: the client's recipient rates, or the account's distinct
 * recipients of the day. Returns 1 after replying with a refusal. */
int session_rate_rcpt(struct smtp_session *s, const char *addr);
/* A recipient was refused as unknown (550 5.1.1). */
void session_rate_unknown(struct smtp_session *s);
/* Does a hold rule hold the message of env (about to be committed)?
 * Logs `ID: held: RULE` when one does. */
int session_hold_check(struct smtp_session *s, const struct envelope *env);
/* Frees what abuse control holds (at the session's end). */
void session_abuse_free(struct smtp_session *s);

/* smtp_trace.c */
/* The time for the trace_*_us fields. */
int64_t session_trace_now(void);
/* The message of c was committed: its events until now go to the trace. */
void session_trace_queued(struct smtp_session *s, const struct commit_msg *c);
/* Notes an event of the transaction now (kind at most TRACE_KIND_MAX
 * bytes; the text is cut at TRACE_TEXT_MAX), for the trace of its message
 * once it is queued. */
#define SESSION_TRACE_NOTES 64
void session_trace_note(struct smtp_session *s, const char *kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Forgets the notes (a new transaction); _free at the session's end. */
void session_trace_notes_clear(struct smtp_session *s);
void session_trace_notes_free(struct smtp_session *s);

#endif
