/*
 * smtp_describe: one session as `mailctl sessions` shows it
 * (smtp_session_describe in smtp_session.h).
 */
#include <inttypes.h>
#include <stdio.h>

#include "lib/netaddr.h"
#include "server/smtp_session.h"
#include "server/smtp_session_int.h"

/* src cut to printable ASCII without '"' and '\\' ('?' instead), into out. */
static const char *
describe_clean(const char *src, char *out, size_t outsize)
{
	size_t i = 0;

	for (; src[i] != '\0' && i + 1 < outsize; i++) {
		unsigned char ch = (unsigned char)src[i];

		out[i] = ch < 0x20 || ch >= 0x7F || ch == '"' || ch == '\\' ? '?' : (char)ch;
	}
	out[i] = '\0';
	return out;
}

static const char *
describe_state(const struct smtp_session *s)
{
	switch (s->phase) {
	case PH_GREET_WAIT:
		return "greeting";
	case PH_COMMAND:
		return s->in_txn ? "mail" : s->helo_seen ? "helo" : "connected";
	case PH_AUTH:
	case PH_AUTH_CHECK:
	case PH_AUTH_DELAY:
		return "auth";
	case PH_NAME_WAIT:
	case PH_DATA:
	case PH_BDAT:
		return "data";
	case PH_COMMIT:
		return "commit";
	case PH_CLOSING:
		return "closing";
	default:
		return "closed";
	}
}

void
smtp_session_describe(const struct smtp_session *s, FILE *f, int json, int first)
{
	static const char *const listeners[] = {
		[LISTEN_SMTP] = "smtp", [LISTEN_SUBMISSION] = "submission",
		[LISTEN_SMTPS] = "smtps",
	};
	char tls[sizeof s->tls_desc], user[sizeof s->auth_user], helo[sizeof s->helo];
	int64_t age = (metrics_clock_us() - s->start_us) / 1000000;
	const char *tls_text = s->io.tls_active ? describe_clean(s->tls_desc, tls, sizeof tls) : "";

	describe_clean(s->auth_user, user, sizeof user);
	describe_clean(s->helo_seen ? s->helo : "", helo, sizeof helo);
	if (json) {
		fprintf(f, "%s{\"client\":\"%s\",\"listener\":\"%s\",\"state\":\"%s\","
		    "\"age\":%" PRId64 ",\"bytes_in\":%" PRIu64 ",\"messages\":%u,"
		    "\"tls\":\"%s\",\"auth_user\":\"%s\",\"helo\":\"%s\"}",
		    first ? "" : ",", s->peer_ip, listeners[s->kind], describe_state(s),
		    age, s->bytes_in, s->messages, tls_text, user, helo);
		return;
	}
	fprintf(f, "%-39s %-10s %-9s %7" PRId64 "s %10" PRIu64 " %4u  %s  %s  %s\n",
	    s->peer_ip, listeners[s->kind], describe_state(s), age, s->bytes_in,
	    s->messages, s->io.tls_active ? tls_text : "-", user[0] ? user : "-",
	    helo[0] ? helo : "-");
}
