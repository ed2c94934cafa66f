/*
 * delivery: the pool of delivery threads. Each takes a job from the
 * scheduler (one message, one destination), delivers it (local domains
 * into Maildirs through storage/, others through the relay client), and
 * hands every recipient's outcome, with any bounce, delay or success
 * notice it caused, to the committer as one durable batch.
 *
 * Outcomes: delivered -> sent; a failure that may pass -> deferred, with
 * the next try backing off from retry_min to retry_max (exponential, with
 * jitter) until queue_lifetime, then bounced; a permanent failure ->
 * bounced. Bounces go to the sender (RFC 3464, NOTIFY honoured); never to
 * the null sender: such a failure is logged and reported to postmaster.
 *
 * Threads: delivery_start/stop/set_policy from the main thread.
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

struct delivery_route {
	const char *domain;	/* lower case */
	const char *host;
	uint16_t port;
};

/* What delivery needs of the config; the strings and the userdb belong to
 * owner, which release(owner) frees when the policy is no longer used. */
struct delivery_policy {
	const char *hostname;
	const char *mail_dir;
	const char *const *local_domains;	/* lower case; [0] gets bare
						 * "postmaster" */
	size_t nlocal_domains;
	const struct userdb *udb;
	unsigned retry_min, retry_max;		/* seconds */
	unsigned queue_lifetime, delay_warning;	/* seconds; 0 = no warning */
	const struct delivery_route *routes;
	size_t nroutes;
	const char *relayhost;			/* NULL, or a host */
	uint16_t relayhost_port;
	struct relay_ctx *relay;		/* NULL: remote mail defers */
	void *owner;
	void (*release)(void *owner);
	int refs;				/* managed here */
};

struct delivery;

/* Starts n delivery threads taking jobs from sched and committing
 * through c; policy (a reference is taken over) may be replaced later. */
struct delivery *delivery_start(struct queue_store *st, struct committer *c,
    struct scheduler *sched, struct delivery_policy *policy, unsigned n);

/* Swaps in a new policy (takes over the reference); jobs in flight keep
 * the old one until they finish. */
void delivery_set_policy(struct delivery *d, struct delivery_policy *policy);

/* Waits up to timeout_s seconds for the threads to finish their jobs (the
 * scheduler must be shut down first, so that they get no new ones), then
 * frees everything and returns 0. Returns -1 when some job is still
 * running then (a hung remote server): nothing is freed, and the caller
 * should end the process; those recipients stay queued. */
int delivery_stop(struct delivery **dp, unsigned timeout_s);

/* Exposed for tests: the delay before attempt number attempts+1 (>= 1)
 * with jitter drawn from rnd (0..1). */
unsigned delivery_backoff(unsigned retry_min, unsigned retry_max,
    unsigned attempts, double rnd);

#endif
