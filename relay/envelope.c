/* envelope: MAIL, the RCPTs and DATA in pipelined groups; see envelope.h. */
#include "relay/envelope.h"

#include <string.h>

#include "lib/log.h"
#include "lib/util.h"
#include "relay/relay_conn.h"

/* The command at position k of MAIL, rcpts..., DATA. */
static long
env_cmd(const size_t *rcpts, size_t n, size_t k)
{
	if (k == 0)
		return RELAY_ENV_MAIL;
	return k <= n ? (long)rcpts[k - 1] : RELAY_ENV_DATA;
}

/* Builds the group of commands [from, to) into group. 0, or -1 for a
 * line that must not go out. */
static int
env_group(struct relay_envelope *e, const size_t *rcpts, size_t n, size_t from,
    size_t to, struct buf *group)
{
	struct buf line;
	int rc = 0;

	buf_init(&line, e->line_max);
	buf_reset(group);
	for (size_t k = from; k < to && rc == 0; k++) {
		long cmd = env_cmd(rcpts, n, k);

		buf_reset(&line);
		e->ops->build(e->arg, cmd, &line);
		if (line.len == 0 || line.len > e->line_max ||
		    memchr(line.data, '\r', line.len) != NULL ||
		    memchr(line.data, '\n', line.len) != NULL) {
			log_error("relay: refusing to send a malformed command line");
			e->at = cmd;
			rc = -1;
			break;
		}
		log_debug("%s: > %.*s", e->peer, (int)line.len, line.data);
		buf_append(group, line.data, line.len);
		buf_append(group, "\r\n", 2);
		if (cmd == RELAY_ENV_DATA)
			e->data_sent = 1;
	}
	buf_free(&line);
	return rc;
}

int
relay_envelope_run(struct relay_envelope *e, const size_t *rcpts, size_t n)
{
	size_t ncmd = n + 2, sent = 0, answered = 0;
	size_t window = e->window ? e->window : 1;
	struct buf group;
	int rc = RELAY_IO_OK;

	e->mail_code = e->data_code = e->data_sent = 0;
	e->nacc = 0;
	e->at = RELAY_ENV_MAIL;
	buf_init(&group, (e->line_max + 2) * window);
	while (answered < ncmd) {
		long cmd;
		int r;

		if (sent == answered) {
			size_t to = ncmd - sent < window ? ncmd : sent + window;

			if (sent > 0 && e->mail_code / 100 != 2)
				break;
			if (sent == ncmd - 1 && e->nacc == 0)
				break;	/* every RCPT refused: no DATA */
			if (env_group(e, rcpts, n, sent, to, &group) != 0) {
				rc = RELAY_IO_ERROR;
				break;
			}
			e->at = env_cmd(rcpts, n, sent);
			rc = e->ops->write(e->arg, group.data, group.len,
			    e->command_timeout_ms);
			if (rc != RELAY_IO_OK)
				break;
			sent = to;
		}
		cmd = env_cmd(rcpts, n, answered);
		e->at = cmd;
		rc = e->ops->read(e->arg, cmd, cmd == RELAY_ENV_DATA ?
		    e->data_init_timeout_ms : e->command_timeout_ms);
		if (rc != RELAY_IO_OK)
			break;
		answered++;
		if (cmd == RELAY_ENV_MAIL)
			e->mail_code = e->reply->code;
		else if (cmd == RELAY_ENV_DATA)
			e->data_code = e->reply->code;
		else if (e->mail_code / 100 != 2)
			continue;	/* the transaction failed at MAIL */
		r = e->ops->judge(e->arg, cmd);
		if (r < 0) {
			rc = RELAY_ENV_STOPPED;
			break;
		}
		if (cmd >= 0)
			e->nacc += (size_t)r;
	}
	buf_free(&group);
	return rc;
}
