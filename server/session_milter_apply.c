/*
 * session_milter_apply: what the milters changed at the end of data,
 * carried out on the session's message and envelope before the commit
 * (README "Milters"): the header section and the body in record 0, the
 * sender and its DSN parameters, recipients added and deleted, the
 * quarantine. session_milter.c asks for it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filter/milter_chain.h"
#include "lib/log.h"
#include "lib/util.h"
#include "queue/store.h"
#include "server/smtp_session_int.h"
#include "server/worker.h"

/* The message is refused for a change that cannot be made. */
static void
milter_cannot(struct smtp_session *s, const char *what)
{
	char id[QUEUE_ID_LEN + 1];

	log_warn("%s: milter: %s; refused", queue_id_format(s->qid, id, sizeof id), what);
	session_message_refused(s, "552 5.3.4 Message header section too large "
	    "for the milters' changes");
}

/* The header section and the body as the milters changed them. Returns 0,
 * or -1 after refusing the message. */
static int
milter_apply_content(struct smtp_session *s, const struct milter_mods *m)
{
	struct smtp_message_parts p;
	int headers = 0;
	long dropped;

	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].kind <= MILTER_MOD_DELETE_HEADER)
			headers = 1;
	if (headers) {
		const char *h;
		size_t hl;
		struct buf out;
		int rc;

		if (smtp_message_head_fields(s->msg, &h, &hl) != 0) {
			milter_cannot(s, "the header section is not in record 0");
			return -1;
		}
		buf_init(&out, hl + 2 * (size_t)MILTER_MODS_BYTES_MAX);
		rc = milter_mods_apply_header(m, h, hl, &out);
		if (rc == 0)
			rc = smtp_message_replace_head_fields(s->msg,
			    out.data != NULL ? out.data : "", out.len);
		buf_free(&out);
		if (rc != 0) {
			milter_cannot(s, "the header changes do not fit");
			return -1;
		}
	}
	if (m->body_replaced) {
		dropped = smtp_message_replace_body(s->msg,
		    m->body.data != NULL ? m->body.data : "", m->body.len);
		if (dropped == -2) {
			char id[QUEUE_ID_LEN + 1];

			log_warn("%s: milter: no room for the new body (max_inflight_data); "
			    "deferred", queue_id_format(s->qid, id, sizeof id));
			session_message_refused(s, "451 4.3.2 Too much mail data in flight "
			    "for the milters' new body, try again later");
			return -1;
		}
		if (dropped < 0) {
			milter_cannot(s, "the header section is not in record 0");
			return -1;
		}
		/* The records of the old body go before the commit of the
		 * new one (committer.h: in order). */
		if (dropped > 0)
			committer_discard(worker_committer(s->w), smtp_message_id(s->msg));
	}
	smtp_message_peek(s->msg, &p);
	if (p.staged > 0 && p.head_len > RECORD_CHUNK_MAX) {
		milter_cannot(s, "record 0 grew past its limit");
		return -1;
	}
	return 0;
}

static void
milter_rcpt_delete(struct smtp_session *s, const char *addr)
{
	size_t k = 0;

	for (size_t i = 0; i < s->nrcpts; i++) {
		if (strcasecmp(s->rcpts[i].addr, addr) == 0) {
			free(s->rcpts[i].addr);
			free(s->rcpts[i].orcpt);
			continue;
		}
		s->rcpts[k++] = s->rcpts[i];
	}
	s->nrcpts = k;
}

/* The ESMTP parameters of a changed sender (SMFIR_CHGFROM): the DSN
 * ones (RET, ENVID) replace the client's; SIZE, BODY and the rest
 * describe the message, which the session knows better, and are left
 * aside (logged when unknown or malformed, as Postfix does). */
static void
milter_sender_args(struct smtp_session *s, const char *id,
    const struct milter_mod *d)
{
	struct smtp_mail_args a;
	char line[SMTP_PATH_MAX + MILTER_ARGS_MAX + 4], err[128];

	if (d->args == NULL || d->args[0] == '\0')
		return;
	snprintf(line, sizeof line, "<%s> %s", d->addr, d->args);
	if (smtp_parse_mail(line, &a, err, sizeof err) != 0) {
		log_warn("%s: milter: sender parameters \"%.100s\" ignored: %s", id,
		    d->args, err);
		return;
	}
	if (a.ret != DSN_RET_UNSET)
		s->mail.ret = a.ret;
	if (a.envid[0] != '\0')
		str_copy(s->mail.envid, a.envid, sizeof s->mail.envid);
}

/* The ESMTP parameters of an added recipient (SMFIR_ADDRCPT_PAR): NOTIFY
 * and ORCPT into *r (empty when none or malformed: logged). */
static void
milter_rcpt_args(const struct smtp_session *s, const char *id,
    const struct milter_mod *d, struct smtp_rcpt_args *r)
{
	char line[SMTP_PATH_MAX + MILTER_ARGS_MAX + 4], err[128];

	memset(r, 0, sizeof *r);
	if (d->args == NULL || d->args[0] == '\0')
		return;
	snprintf(line, sizeof line, "<%s> %s", d->addr, d->args);
	if (smtp_parse_rcpt(line, s->mail.smtputf8, r, err, sizeof err) != 0) {
		log_warn("%s: milter: recipient parameters \"%.100s\" ignored: %s", id,
		    d->args, err);
		memset(r, 0, sizeof *r);
	}
}

int
session_milter_changes(struct smtp_session *s, const struct milter_mods *m,
    char **quarantine)
{
	char id[QUEUE_ID_LEN + 1];

	if (m == NULL || m->n == 0)
		return 0;
	queue_id_format(s->qid, id, sizeof id);
	if (milter_apply_content(s, m) != 0)
		return -1;
	for (size_t i = 0; i < m->n; i++) {
		const struct milter_mod *d = &m->v[i];

		switch (d->kind) {
		case MILTER_MOD_CHANGE_FROM:
			if (strlen(d->addr) >= sizeof s->mail.addr) {
				log_warn("%s: milter: sender <%.64s...> too long; not changed",
				    id, d->addr);
				break;
			}
			log_info("%s: milter: sender <%s> -> <%s>", id, s->mail.addr, d->addr);
			session_trace_note(s, "milter", "sender <%s> -> <%s>", s->mail.addr,
			    d->addr);
			str_copy(s->mail.addr, d->addr, sizeof s->mail.addr);
			milter_sender_args(s, id, d);
			break;
		case MILTER_MOD_ADD_RCPT:
			if (strlen(d->addr) >= SMTP_PATH_MAX || d->addr[0] == '\0') {
				log_warn("%s: milter: recipient <%.64s> refused; not added", id,
				    d->addr);
				break;
			}
			if (!session_rcpt_has(s, d->addr) && s->nrcpts < s->cfg->max_recipients) {
				struct smtp_rcpt_args r;

				log_info("%s: milter: recipient <%s> added", id, d->addr);
				session_trace_note(s, "milter", "recipient <%s> added", d->addr);
				milter_rcpt_args(s, id, d, &r);
				session_rcpt_append(s, d->addr, r.orcpt[0] ? r.orcpt : NULL,
				    r.notify);
			}
			break;
		case MILTER_MOD_DELETE_RCPT:
			if (session_rcpt_has(s, d->addr)) {
				log_info("%s: milter: recipient <%s> deleted", id, d->addr);
				session_trace_note(s, "milter", "recipient <%s> deleted", d->addr);
			}
			milter_rcpt_delete(s, d->addr);
			break;
		case MILTER_MOD_QUARANTINE:
			free(*quarantine);
			*quarantine = xstrdup(d->text != NULL ? d->text : "");
			break;
		default:
			break;
		}
	}
	return s->nrcpts == 0 ? 1 : 0;
}
