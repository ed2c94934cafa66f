/*
 * mailctl_trace: `mailctl trace ID [--json]`, the recorded decisions
 * about one message (queue/trace.h), and the events mailctl itself adds
 * to a trace when it changes a message.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

int
mailctl_trace(struct mailctl *mc, const char *arg)
{
	struct trace_out to = { mc, 0 };
	struct trace_db *db;
	queue_id_t id;
	char err[512];
	int n;

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
