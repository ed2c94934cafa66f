/*
 * delivery: the pool of delivery threads. Each takes a job from the
 * scheduler (one message, one destination, or a report job), delivers it
 * (local domains into Maildirs through storage/, others through the
 * relay client), and records the outcome of every recipient in two
 * steps:
 *  1. the facts: every attempt's outcome (sent, deferred, bounced), as a
 *     facts request that the committer writes whatever the room (a full
 *     queue never makes a delivery repeat); a recipient whose outcome
 *     calls for a notice gets RCPT_F_NOTICE_PENDING in the same write;
 *  2. the new mail: the notices (failure, delay, success; RFC 3464, NOTIFY
 *     honoured) with the clearing of those flags, and alias expansions.
 *     When the queue is full it is refused: the notices stay pending and
 *     are made later from the records (a report job), an alias waits
 *     (deferred) and is expanded later.
 *
 * Outcomes: delivered -> sent; a failure that may pass -> deferred, with
 * the next try backing off from retry_min to retry_max (exponential, with
 * jitter, never past retry_max nor past the expiry) until queue_lifetime,
 * then bounced; a permanent failure -> bounced. A recipient past
 * queue_lifetime is bounced without another try (report job).
 *
 * Local recipients: those of local_domains, a bare "postmaster", and
 * user@[one of own_addrs] (RFC 5321 4.1.3), which is delivered as
 * user@literal_domain and stays the recipient as written (log, notices).
 *
 * Aliases: a local recipient that is an alias is expanded (userdb) into
 * its final targets, which become recipients of the same message of
 * their own (RCPT_F_ALIAS_TARGET, ORCPT naming the alias unless one was
 * given): each is delivered, deferred, bounced and reported alone, local
 * or remote, and never expanded again. An alias of several targets with
 * NOTIFY=SUCCESS gets an "expanded" notice, and its targets NOTIFY
 * without SUCCESS (RFC 3461 5.2.7.3; one target: NOTIFY as it is).
 *
 * Notices never loop: a notice or bounce we made (ENV_NOTICE) that fails
 * is logged and dropped, never answered with another notice. A failure
 * of other mail from the null sender is reported to postmaster (with
 * ENV_NOTICE). No success notice for a recipient passed to a server that
 * took its NOTIFY (RFC 3461 5.2.2).
 *
 * Threads: of the pool, a quarter (at least one) take only local and
 * report jobs, so local delivery never waits behind remote hosts; the
 * others take any job. delivery_start/stop/set_policy from the main
 * thread.
 */
#ifndef QUEUE_DELIVERY_H
#define QUEUE_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

struct queue_store;
struct committer;
struct scheduler;
struct userdb;
struct relay_ctx;

struct lmtp_ctx;
struct ip_addr;

/* A next hop: an SMTP host, or an LMTP server (lmtp: a Unix socket at
 * lmtp_unix, or host, an IP literal, and port). */
struct delivery_route {
	const char *domain;	/* lower case */
	const char *host;
	uint16_t port;
	int lmtp;		/* over LMTP (delivery_lmtp.c) */
	const char *lmtp_unix;	/* NULL: TCP to host:port */
};

/* What delivery needs of the config; the strings and the userdb belong to
 * owner, which release(owner) frees when the policy is no longer used. */
struct delivery_policy {
	const char *hostname;
	const char *mail_dir;
	const char *const *local_domains;	/* lower case; [0] gets bare
						 * "postmaster" */
	size_t nlocal_domains;
	const struct ip_addr *own_addrs;	/* this server's addresses: an
					 * address literal of one is local too */
	size_t nown_addrs;
	const char *literal_domain;		/* user@[own address] is user@
					 * this domain (NULL: "localhost") */
	const struct userdb *udb;
	unsigned retry_min, retry_max;		/* seconds */
	unsigned queue_lifetime, delay_warning;	/* seconds; 0 = no warning */
	const struct delivery_route *routes;
	size_t nroutes;
	const char *relayhost;			/* NULL, or a host */
	uint16_t relayhost_port;
	struct relay_ctx *relay;		/* NULL: remote mail defers */
	const struct delivery_route *local_lmtp;	/* local_domains over
					 * LMTP (its domain unused); NULL:
					 * Maildirs in mail_dir */
	struct lmtp_ctx *lmtp;			/* NULL: LMTP mail defers */
	void *owner;
	void (*release)(void *owner);
	int refs;				/* managed here */
};

struct delivery;

/* Starts the delivery threads for a pool of n (delivery_local_threads(n)
 * local ones and delivery_remote_threads(n) others) taking jobs from
 * sched and committing through c; sets the scheduler's pool bound and
 * queue_lifetime. policy (a reference is taken over) may be replaced
 * later. */
struct delivery *delivery_start(struct queue_store *st, struct committer *c,
    struct scheduler *sched, struct delivery_policy *policy, unsigned n);

/* Makes the pool one of n (SIGHUP): new threads start at once; threads
 * beyond the new size finish the job they have and then end. Main
 * thread. */
void delivery_resize(struct delivery *d, unsigned n);

/* Swaps in a new policy (takes over the reference); jobs in flight keep
 * the old one until they finish. */
void delivery_set_policy(struct delivery *d, struct delivery_policy *policy);

/* Waits up to timeout_s seconds for the threads to finish their jobs (the
 * scheduler must be shut down first, so that they get no new ones), then
 * frees everything and returns 0. Returns -1 when some job is still
 * running then (a hung remote server): nothing is freed, and the caller
 * should end the process; those recipients stay queued. */
int delivery_stop(struct delivery **dp, unsigned timeout_s);

/* Threads of a pool of n: local-only ones, and the others (n < 2 gives
 * one of each). */
unsigned delivery_local_threads(unsigned n);
unsigned delivery_remote_threads(unsigned n);

/* The per-destination limit for a pool of n threads: configured, but
 * below the remote threads (at least 1), so that one destination cannot
 * take them all. */
unsigned delivery_dest_limit(unsigned n, unsigned configured);

/* Exposed for tests: the delay before attempt number attempts+1 (>= 1)
 * with jitter drawn from rnd (0..1), never more than retry_max. */
unsigned delivery_backoff(unsigned retry_min, unsigned retry_max,
    unsigned attempts, double rnd);

#endif
