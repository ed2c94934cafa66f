/*
 * mailctl_int: what the parts of mailctl share, and nothing else
 * includes: mailctl.c (the command line, the queue listing, show, stats,
 * delete, flush, dkim-keygen), mailctl_out.c (output helpers),
 * mailctl_admin.c (hold, release, requeue, bounce, cat), mailctl_trace.c
 * (trace), mailctl_selftest.c (selftest).
 *
 * Every command writes its result to mc->out and its errors to stderr as
 * `mailctl: ...`, and returns the exit code: 0 done, 1 a runtime failure
 * (an ID not in the queue, a queue error), 2 bad usage.
 * Threads: one.
 */
#ifndef SERVER_MAILCTL_INT_H
#define SERVER_MAILCTL_INT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "queue/envelope.h"

struct queue_store;
struct config;
struct trace_db;

struct mailctl {
	int json;		/* --json */
	FILE *out;
	const struct config *cfg;
	size_t nmsgs;		/* queue listing counters */
	size_t nrcpts;
	struct trace_db *trace;	/* opened for the first event mailctl adds */
};

/* ---- mailctl_out.c ---- */

/* s (n bytes) as a JSON string: quoted, escaped, invalid UTF-8 replaced by
 * U+FFFD, so the output is always valid JSON. NULL (json_str) is null. */
void json_strn(FILE *f, const char *s, size_t n);
void json_str(FILE *f, const char *s);

/* s for a terminal: control bytes other than tab become '?'. */
void text_strn(FILE *f, const char *s, size_t n);
void text_str(FILE *f, const char *s);

/* t (unix seconds) as "2026-01-02T03:04:05Z" into out; returns out. */
char *iso_time(int64_t t, char *out, size_t outsize);

/* "mailctl: ARG: not in the queue" on stderr; returns 1. */
int not_in_queue(const char *arg);

/* ---- mailctl_admin.c ---- */

/* hold ID... | all, release ID... | all: one line per message changed. */
int mailctl_hold(struct mailctl *mc, struct queue_store *s, char **ids, int nids,
    int hold);

/* requeue ID...: delivery starts over now, with a fresh backoff. */
int mailctl_requeue(struct mailctl *mc, struct queue_store *s, char **ids, int nids);

/* bounce ID...: back to the sender now, with a DSN. */
int mailctl_bounce(struct mailctl *mc, struct queue_store *s, char **ids, int nids);

/* cat ID: the message as stored, written out chunk by chunk. */
int mailctl_cat(struct mailctl *mc, struct queue_store *s, const char *arg);

/* ---- mailctl_selftest.c ---- */

/* selftest: probes the listeners and checks the DNS (server/selftest.h);
 * exit code 1 when a check failed. */
int mailctl_selftest(struct mailctl *mc);

/* ---- mailctl_trace.c ---- */

/* trace ID: every event recorded about the message, oldest first.
 * trace ADDRESS (arg has an '@'): each message whose trace names it as
 * the sender or a recipient: its ID, first event, sender, events. */
int mailctl_trace(struct mailctl *mc, const char *arg);

/* Adds "WHAT by mailctl" (kind admin) to the trace of id, and with done
 * set marks its end (the message left the queue). A trace that cannot be
 * written is reported on stderr; the command goes on. */
void mailctl_trace_note(struct mailctl *mc, queue_id_t id, const char *what, int done);

#endif
