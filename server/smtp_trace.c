/*
 * smtp_trace: a session's part of the message trace (queue/trace.h).
 * What a message went through before it was queued (the connection, TLS,
 * the login, MAIL and RCPT, a hold rule) is written once the commit has
 * made it durable, each event at the time it happened, so that a trace
 * only ever exists for a message that was queued.
 */
#include <stdio.h>

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
	if (s->hold_why != NULL)
		trace_add(env->id, c->durable_us, "held", "%s", s->hold_why);
	trace_add(env->id, c->durable_us, "queued", "size=%llu nrcpt=%zu%s",
	    (unsigned long long)s->commit_size, env->nrcpts,
	    (env->flags & ENV_TLS) ? " tls=yes" : "");
}
