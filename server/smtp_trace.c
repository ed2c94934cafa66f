/*
 * smtp_trace: a session's part of the message trace (queue/trace.h).
 * What a message went through before it was queued (the connection, TLS,
 * the login, MAIL and RCPT, the recipients refused, the answers of the
 * sender checks, policy services and milters, a hold rule) is written
 * once the commit has made it durable, each event at the time it
 * happened, so that a trace only ever exists for a message that was
 * queued. The transaction's notes wait in the session until then, at most
 * SESSION_TRACE_NOTES of them (later ones are dropped, and counted in a
 * last note).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/util.h"
#include "queue/trace.h"
#include "server/smtp_session_int.h"

static const char *
trace_listener(enum listen_kind k)
{
	return k == LISTEN_SUBMISSION ? "submission" : k == LISTEN_SMTPS ? "smtps" : "smtp";
}

int64_t
session_trace_now(void)
{
	return trace_now_us();
}

struct session_trace_note {
	int64_t time_us;
	char kind[TRACE_KIND_MAX + 1];
	char *text;
};

struct session_trace_notes {
	size_t n;
	size_t dropped;
	struct session_trace_note v[SESSION_TRACE_NOTES];
};

void
session_trace_note(struct smtp_session *s, const char *kind, const char *fmt, ...)
{
	struct session_trace_notes *t = s->trace_notes;
	struct session_trace_note *e;
	char text[TRACE_TEXT_MAX + 1];
	va_list ap;

	if (t == NULL)
		t = s->trace_notes = xcalloc(1, sizeof *t);
	if (t->n == SESSION_TRACE_NOTES) {
		t->dropped++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);	/* cut: as trace_add cuts */
	va_end(ap);
	e = &t->v[t->n++];
	e->time_us = trace_now_us();
	str_copy(e->kind, kind, sizeof e->kind);
	e->text = xstrdup(text);
}

void
session_trace_notes_clear(struct smtp_session *s)
{
	struct session_trace_notes *t = s->trace_notes;

	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].text);
	t->n = 0;
	t->dropped = 0;
}

void
session_trace_notes_free(struct smtp_session *s)
{
	session_trace_notes_clear(s);
	free(s->trace_notes);
	s->trace_notes = NULL;
}

void
session_trace_queued(struct smtp_session *s, const struct commit_msg *c)
{
	const struct envelope *env = &c->env;
	/* The session's start is on the monotonic clock of the metrics. */
	int64_t connected = trace_now_us() - (metrics_clock_us() - s->start_us);

	trace_add(env->id, connected, "connect", "client=[%s] listener=%s",
	    s->peer_ip, trace_listener(s->kind));
	if (s->trace_helo_us)
		trace_add(env->id, s->trace_helo_us, "helo", "helo=%s", s->helo);
	if (s->trace_tls_us)
		trace_add(env->id, s->trace_tls_us, "tls", "%s", s->tls_desc);
	if (s->trace_auth_us && s->auth_user[0] != '\0')
		trace_add(env->id, s->trace_auth_us, "auth", "sasl_username=%s",
		    s->auth_user);
	trace_add(env->id, s->trace_mail_us, "mail", "from=<%s>", env->sender);
	for (size_t i = 0; i < env->nrcpts; i++)
		trace_add(env->id, s->trace_rcpt_us, "rcpt", "to=<%s> accepted",
		    env->rcpts[i].addr);
	if (s->trace_notes != NULL) {
		const struct session_trace_notes *t = s->trace_notes;

		for (size_t i = 0; i < t->n; i++)
			trace_add(env->id, t->v[i].time_us, t->v[i].kind, "%s", t->v[i].text);
		if (t->dropped > 0)
			trace_add(env->id, t->v[t->n - 1].time_us, "trace",
			    "%zu more events of the session not kept", t->dropped);
	}
	if (s->hold_why != NULL)
		trace_add(env->id, c->durable_us, "held", "%s", s->hold_why);
	trace_add(env->id, c->durable_us, "queued", "size=%llu nrcpt=%zu%s",
	    (unsigned long long)s->commit_size, env->nrcpts,
	    (env->flags & ENV_TLS) ? " tls=yes" : "");
}
