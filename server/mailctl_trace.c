/*
 * mailctl_trace: `mailctl trace ID [--json]`, the recorded decisions
 * about one message (queue/trace.h); `mailctl trace ADDRESS`, the
 * messages whose trace names that sender or recipient (a scan of the
 * whole trace); and the events mailctl itself adds to a trace when it
 * changes a message.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/util.h"
#include "queue/envelope.h"
#include "queue/trace.h"
#include "server/config.h"
#include "server/mailctl_int.h"

struct trace_out {
	struct mailctl *mc;
	int n;
};

static int
trace_event_out(const struct trace_rec *r, void *arg)
{
	struct trace_out *to = arg;
	FILE *f = to->mc->out;
	char tbuf[32];

	iso_time(r->time_us / 1000000, tbuf, sizeof tbuf);
	if (to->mc->json) {
		fprintf(f, "%s{\"time_us\":%" PRId64 ",\"time\":\"%s\",\"kind\":",
		    to->n ? "," : "", r->time_us, tbuf);
		json_str(f, r->kind);
		fputs(",\"text\":", f);
		json_str(f, r->text);
		fputc('}', f);
	} else {
		/* 2026-01-02T03:04:05.123456Z  kind  text */
		fprintf(f, "%.19s.%06" PRId64 "Z  %-9s ", tbuf, r->time_us % 1000000, r->kind);
		text_str(f, r->text);
		fputc('\n', f);
	}
	to->n++;
	return 0;
}

/* trace ADDRESS: one message's events at a time (the scan goes by id). */
struct trace_find {
	struct mailctl *mc;
	char needle[TRACE_TEXT_MAX + 3];	/* "<address>" */
	queue_id_t id;
	long events;			/* of id; 0: none yet */
	int matched;
	int64_t first_us;
	char from[TRACE_TEXT_MAX + 1];	/* the sender, from its mail event */
	int n;				/* messages printed */
};

static void
trace_find_flush(struct trace_find *tf)
{
	FILE *f = tf->mc->out;
	char id[QUEUE_ID_LEN + 1], tbuf[32];

	if (tf->events == 0 || !tf->matched)
		return;
	queue_id_format(tf->id, id, sizeof id);
	iso_time(tf->first_us / 1000000, tbuf, sizeof tbuf);
	if (tf->mc->json) {
		fprintf(f, "%s{\"id\":\"%s\",\"time\":\"%s\",\"from\":", tf->n ? "," : "",
		    id, tbuf);
		json_str(f, tf->from);
		fprintf(f, ",\"events\":%ld}", tf->events);
	} else {
		fprintf(f, "%s  %s  from=<", id, tbuf);
		text_str(f, tf->from);
		fprintf(f, ">  %ld events\n", tf->events);
	}
	tf->n++;
}

static int
trace_find_event(queue_id_t id, const struct trace_rec *r, void *arg)
{
	struct trace_find *tf = arg;

	if (tf->events == 0 || id != tf->id) {
		trace_find_flush(tf);
		tf->id = id;
		tf->events = 0;
		tf->matched = 0;
		tf->first_us = r->time_us;
		tf->from[0] = '\0';
	}
	tf->events++;
	if (strcmp(r->kind, "mail") == 0 && strncmp(r->text, "from=<", 6) == 0) {
		const char *end = strrchr(r->text + 6, '>');
		size_t len = end != NULL ? (size_t)(end - r->text - 6) : 0;

		memcpy(tf->from, r->text + 6, len);
		tf->from[len] = '\0';
	}
	/* The sender (mail), a recipient accepted or refused (rcpt), an
	 * attempt (delivery) or an alias expanded (expand): from=<..>, to=<..>. */
	if ((strcmp(r->kind, "mail") == 0 || strcmp(r->kind, "rcpt") == 0 ||
	    strcmp(r->kind, "delivery") == 0 || strcmp(r->kind, "expand") == 0) &&
	    strcasestr(r->text, tf->needle) != NULL)
		tf->matched = 1;
	return 0;
}

/* trace ADDRESS (with its '@'; angle brackets optional). */
static int
mailctl_trace_find(struct mailctl *mc, const char *arg)
{
	struct trace_find *tf = xcalloc(1, sizeof *tf);
	size_t len = strlen(arg);
	struct trace_db *db;
	char err[512];
	long n;
	int found;

	if (len >= 2 && arg[0] == '<' && arg[len - 1] == '>') {
		arg++;
		len -= 2;
	}
	if (len == 0 || len > TRACE_TEXT_MAX) {
		fprintf(stderr, "mailctl: trace: not an address\n");
		free(tf);
		return 1;
	}
	tf->mc = mc;
	snprintf(tf->needle, sizeof tf->needle, "<%.*s>", (int)len, arg);
	if ((db = trace_db_open(mc->cfg->queue_dir, 0, err, sizeof err)) == NULL) {
		fprintf(stderr, "mailctl: trace: %s\n", err);
		free(tf);
		return 1;
	}
	if (mc->json) {
		fputs("{\"address\":", mc->out);
		json_strn(mc->out, arg, len);
		fputs(",\"messages\":[", mc->out);
	}
	n = trace_db_scan(db, trace_find_event, tf);
	trace_find_flush(tf);
	trace_db_close(&db);
	if (mc->json)
		fputs("]}\n", mc->out);
	found = tf->n;
	free(tf);
	if (n < 0) {
		fprintf(stderr, "mailctl: trace: read error\n");
		return 1;
	}
	if (found == 0) {
		fprintf(stderr, "mailctl: trace: no message from or to <");
		text_strn(stderr, arg, len);
		fprintf(stderr, "> recorded\n");
		return 1;
	}
	return 0;
}

int
mailctl_trace(struct mailctl *mc, const char *arg)
{
	struct trace_out to = { mc, 0 };
	struct trace_db *db;
	queue_id_t id;
	char err[512];
	int n;

	if (strchr(arg, '@') != NULL)
		return mailctl_trace_find(mc, arg);
	if (queue_id_parse(arg, &id) != 0) {
		fprintf(stderr, "mailctl: ");
		text_str(stderr, arg);
		fprintf(stderr, ": not a queue ID\n");
		return 1;
	}
	if ((db = trace_db_open(mc->cfg->queue_dir, 0, err, sizeof err)) == NULL) {
		fprintf(stderr, "mailctl: trace: %s\n", err);
		return 1;
	}
	if (mc->json) {
		fputs("{\"id\":", mc->out);
		json_str(mc->out, arg);
		fputs(",\"events\":[", mc->out);
	}
	n = trace_db_read(db, id, trace_event_out, &to);
	trace_db_close(&db);
	if (mc->json)
		fputs("]}\n", mc->out);
	if (n < 0) {
		fprintf(stderr, "mailctl: trace: read error\n");
		return 1;
	}
	if (n == 0) {
		fprintf(stderr, "mailctl: ");
		text_str(stderr, arg);
		fprintf(stderr, ": no trace (never queued here, or past trace_retention)\n");
		return 1;
	}
	return 0;
}

void
mailctl_trace_note(struct mailctl *mc, queue_id_t id, const char *what, int done)
{
	char err[512], text[128];

	if (mc->trace == NULL &&
	    (mc->trace = trace_db_open(mc->cfg->queue_dir, 1, err, sizeof err)) == NULL) {
		fprintf(stderr, "mailctl: %s (not traced)\n", err);
		return;
	}
	snprintf(text, sizeof text, "%s by mailctl", what);
	(void)trace_db_write(mc->trace, id, "admin", text, done);
}
