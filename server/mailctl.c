/*
 * mailctl: the queue administration tool.
 *
 *   mailctl [-c FILE] [--json] queue | show ID | delete ID... | delete all
 *                              | flush | stats
 *   mailctl [-c FILE] tls DOMAIN
 *   mailctl [-c FILE] [--json] tls-report DOMAIN [--date YYYY-MM-DD]
 *   mailctl [-c FILE] tls-report --send DOMAIN [--date YYYY-MM-DD]
 *   mailctl [-c FILE] hold ID... | hold all | release ID... | release all
 *                   | requeue ID... | bounce ID... | cat ID
 *   mailctl [-c FILE] [--json] trace ID | trace ADDRESS | sessions | selftest
 *   mailctl dkim-keygen DOMAIN SELECTOR [--type rsa|ed25519] [--out FILE]
 *
 * It reads queue_dir and queue_map_size from the config file (default
 * ./mailserver.conf) and opens the LMDB queue directly, so it works
 * whether the daemon runs or not: reads (queue, show, stats, cat) use a
 * read-only environment and short read transactions; delete, flush,
 * hold, release, requeue and bounce take LMDB's writer lock for short,
 * fully synced transactions (mailctl_admin.c).
 * trace reads <queue_dir>/trace (queue/trace.h); the commands that change
 * a message add an event to its trace (mailctl_trace.c). sessions asks
 * the running daemon through its control socket (server/control.h).
 * tls and tls-report read the outbound TLS state (server/mailctl_tls.h);
 * tls-report --send asks the daemon to mail a report.
 * --json (anywhere on the line) gives JSON for queue, show, stats and
 * trace, and the RFC 8460 JSON report for tls-report.
 *
 * Exit codes: 0 done, 1 runtime failure (e.g. an ID not in the queue),
 * 2 usage error or bad config.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/dkim.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "queue/envelope.h"
#include "queue/record.h"
#include "queue/store.h"
#include "queue/trace.h"
#include "server/config.h"
#include "server/mailctl_tls.h"
#include "server/control.h"
#include "server/mailctl_int.h"

#define MAILCTL_HEADERS_MAX (256 * 1024)	/* bytes of a body read by show */


static void
usage(FILE *f)
{
	fprintf(f, "usage: mailctl [-c FILE] [--json] queue | show ID | "
	    "delete ID... | delete all | flush | stats\n"
	    "       mailctl [-c FILE] tls DOMAIN\n"
	    "       mailctl [-c FILE] [--json] tls-report DOMAIN [--date YYYY-MM-DD]\n"
	    "       mailctl [-c FILE] tls-report --send DOMAIN [--date YYYY-MM-DD]\n"
	    "       mailctl [-c FILE] hold ID... | hold all | release ID... | "
	    "release all | requeue ID... | bounce ID... | cat ID\n"
	    "       mailctl [-c FILE] [--json] trace ID | trace ADDRESS | sessions | selftest\n"
	    "       mailctl dkim-keygen DOMAIN SELECTOR [--type rsa|ed25519] "
	    "[--out FILE]\n");
}

static const char *
ret_name(int ret)
{
	return ret == 1 ? "full" : ret == 2 ? "hdrs" : NULL;
}

/* "failure,delay" etc. (the enum dsn_notify bits); "" for the default. */
static char *
notify_text(unsigned notify, char *out, size_t outsize)
{
	static const char *const names[] = { "never", "success", "failure", "delay" };
	size_t len = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < 4; i++) {
		if ((notify & (1u << i)) == 0)
			continue;
		int n = snprintf(out + len, outsize - len, "%s%s", len ? "," : "",
		    names[i]);
		if (n < 0 || (size_t)n >= outsize - len)
			break;
		len += (size_t)n;
	}
	return out;
}

static void
flags_text(FILE *f, unsigned flags, int json)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{ ENV_8BITMIME, "8bitmime" }, { ENV_SMTPUTF8, "smtputf8" },
		{ ENV_TLS, "tls" }, { ENV_NOTICE, "notice" },
		{ ENV_REQUIRETLS, "requiretls" }, { ENV_HELD, "held" },
	};
	int first = 1;

	if (json)
		fputc('[', f);
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if ((flags & names[i].bit) == 0)
			continue;
		if (json)
			fprintf(f, "%s\"%s\"", first ? "" : ",", names[i].name);
		else
			fprintf(f, "%s%s", first ? "" : " ", names[i].name);
		first = 0;
	}
	if (json)
		fputc(']', f);
	else if (first)
		fputc('-', f);
}

/* ---- queue ---- */

static void
print_rcpt_json(FILE *f, const struct queue_rcpt *r)
{
	char tbuf[64], nbuf[64];
	int pending = r->state == RCPT_QUEUED || r->state == RCPT_DEFERRED;

	fprintf(f, "{\"index\":%" PRIu32 ",\"address\":", r->idx);
	json_str(f, r->addr);
	fputs(",\"orcpt\":", f);
	json_str(f, r->orcpt);
	fprintf(f, ",\"notify\":\"%s\",\"state\":\"%s\",\"attempts\":%" PRIu32,
	    notify_text(r->notify, nbuf, sizeof nbuf), rcpt_state_name(r->state),
	    r->attempts);
	if (r->next_try == STORE_HOLD_TIME)
		fputs(",\"next_try\":null,\"next_try_time\":\"held\"", f);
	else if (pending)
		fprintf(f, ",\"next_try\":%" PRId64 ",\"next_try_time\":\"%s\"",
		    r->next_try, iso_time(r->next_try, tbuf, sizeof tbuf));
	else
		fputs(",\"next_try\":null,\"next_try_time\":null", f);
	if (r->last_try > 0)
		fprintf(f, ",\"last_try\":%" PRId64 ",\"last_try_time\":\"%s\"",
		    r->last_try, iso_time(r->last_try, tbuf, sizeof tbuf));
	else
		fputs(",\"last_try\":null,\"last_try_time\":null", f);
	fputs(",\"diagnostic\":", f);
	json_str(f, r->diag);
	fprintf(f, ",\"delay_notified\":%s}",
	    (r->flags & RCPT_F_DELAY_NOTIFIED) ? "true" : "false");
}

static void
print_rcpt_text(FILE *f, const struct queue_rcpt *r)
{
	char tbuf[64];

	fputs("    <", f);
	text_str(f, r->addr);
	fprintf(f, "> %s, attempts %" PRIu32, rcpt_state_name(r->state),
	    r->attempts);
	if (r->next_try == STORE_HOLD_TIME)
		fputs(", held", f);
	else if (r->state == RCPT_QUEUED || r->state == RCPT_DEFERRED)
		fprintf(f, ", next try %s", iso_time(r->next_try, tbuf, sizeof tbuf));
	if (r->diag != NULL && r->diag[0] != '\0') {
		fputs(", last: ", f);
		text_str(f, r->diag);
	}
	fputc('\n', f);
}

static int
queue_cb(const struct queue_msg *m, void *arg)
{
	struct mailctl *mc = arg;
	FILE *f = mc->out;
	char id[QUEUE_ID_LEN + 1], tbuf[64];

	queue_id_format(m->env.id, id, sizeof id);
	if (mc->json) {
		fprintf(f, "%s{\"id\":\"%s\",\"arrival\":%" PRId64
		    ",\"arrival_time\":\"%s\",\"size\":%" PRIu64 ",\"sender\":",
		    mc->nmsgs ? "," : "", id, m->env.arrival,
		    iso_time(m->env.arrival, tbuf, sizeof tbuf), m->size);
		json_str(f, m->env.sender);
		fprintf(f, ",\"held\":%s,\"recipients\":[",
		    (m->env.flags & ENV_HELD) ? "true" : "false");
		for (size_t i = 0; i < m->nrcpts; i++) {
			if (i > 0)
				fputc(',', f);
			print_rcpt_json(f, &m->rcpts[i]);
		}
		fputs("]}", f);
	} else {
		fprintf(f, "%s  %s  %" PRIu64 " bytes  <", id,
		    iso_time(m->env.arrival, tbuf, sizeof tbuf), m->size);
		text_str(f, m->env.sender);
		fputs((m->env.flags & ENV_HELD) ? ">  HELD\n" : ">\n", f);
		for (size_t i = 0; i < m->nrcpts; i++)
			print_rcpt_text(f, &m->rcpts[i]);
		fputc('\n', f);
	}
	mc->nmsgs++;
	mc->nrcpts += m->nrcpts;
	return 0;
}

static int
cmd_queue(struct mailctl *mc, struct queue_store *s)
{
	int st;

	if (mc->json)
		fputs("{\"messages\":[", mc->out);
	st = store_foreach_msg(s, queue_cb, mc);
	if (st != STORE_OK) {
		if (mc->json)
			fputs("]}\n", mc->out);
		fprintf(stderr, "mailctl: reading the queue: %s\n",
		    store_status_text(st));
		return 1;
	}
	if (mc->json)
		fprintf(mc->out, "],\"count\":%zu,\"recipients\":%zu}\n",
		    mc->nmsgs, mc->nrcpts);
	else
		fprintf(mc->out, "%zu messages, %zu recipients\n", mc->nmsgs,
		    mc->nrcpts);
	return 0;
}

/* ---- show ---- */

/* Length of the header block of body (up to, not including, the empty
 * line), or len when there is none. */
static size_t
header_len(const char *body, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (body[i] != '\n')
			continue;
		if (i + 1 < len && body[i + 1] == '\n')
			return i + 1;
		if (i + 2 < len && body[i + 1] == '\r' && body[i + 2] == '\n')
			return i + 1;
	}
	if (len >= 2 && body[0] == '\r' && body[1] == '\n')
		return 0;
	return len;
}

/* The start of message id, record by record through a body cursor (never
 * the whole message): up to its empty line, or MAILCTL_HEADERS_MAX bytes.
 * *body_r is a heap string the caller frees. */
static int
read_head(struct queue_store *s, queue_id_t id, char **body_r, size_t *len_r)
{
	struct store_body *b;
	struct buf head;
	int st;

	*body_r = NULL;
	*len_r = 0;
	if ((st = store_body_open(s, id, &b)) != STORE_OK)
		return st;
	buf_init(&head, MAILCTL_HEADERS_MAX);
	while (head.len < MAILCTL_HEADERS_MAX &&
	    header_len(head.data, head.len) == head.len) {
		const char *p;
		size_t n;

		if ((st = store_body_next(b, &p, &n)) != STORE_OK || n == 0)
			break;
		if (n > MAILCTL_HEADERS_MAX - head.len)
			n = MAILCTL_HEADERS_MAX - head.len;
		buf_append(&head, p, n);
	}
	store_body_close(&b);
	if (st != STORE_OK) {
		buf_free(&head);
		return st;
	}
	*body_r = buf_steal(&head, len_r);
	return STORE_OK;
}

static int
cmd_show(struct mailctl *mc, struct queue_store *s, const char *arg)
{
	struct queue_msg m;
	FILE *f = mc->out;
	char id[QUEUE_ID_LEN + 1], tbuf[64], rbuf[64], nbuf[64];
	char *body = NULL;
	size_t len = 0, hlen;
	queue_id_t qid;
	int st;

	if (queue_id_parse(arg, &qid) != 0)
		return not_in_queue(arg);
	st = store_msg_load(s, qid, &m);
	if (st == STORE_NOTFOUND)
		return not_in_queue(arg);
	if (st != STORE_OK) {
		fprintf(stderr, "mailctl: %s: %s\n", arg, store_status_text(st));
		return 1;
	}
	st = read_head(s, qid, &body, &len);
	if (st != STORE_OK) {
		fprintf(stderr, "mailctl: %s: body: %s\n", arg, store_status_text(st));
		queue_msg_free(&m);
		return 1;
	}
	hlen = header_len(body, len);
	queue_id_format(m.env.id, id, sizeof id);
	if (mc->json) {
		fprintf(f, "{\"id\":\"%s\",\"sender\":", id);
		json_str(f, m.env.sender);
		fprintf(f, ",\"arrival\":%" PRId64 ",\"arrival_time\":\"%s\""
		    ",\"size\":%" PRIu64 ",\"client\":", m.env.arrival,
		    iso_time(m.env.arrival, tbuf, sizeof tbuf), m.size);
		json_str(f, m.env.client_addr);
		fputs(",\"helo\":", f);
		json_str(f, m.env.helo);
		fputs(",\"auth\":", f);
		json_str(f, m.env.auth_user);
		fputs(",\"envid\":", f);
		json_str(f, m.env.envid);
		fputs(",\"ret\":", f);
		json_str(f, ret_name(m.env.ret));
		fputs(",\"flags\":", f);
		flags_text(f, m.env.flags, 1);
		fputs(",\"recipients\":[", f);
		for (size_t i = 0; i < m.nrcpts; i++) {
			if (i > 0)
				fputc(',', f);
			print_rcpt_json(f, &m.rcpts[i]);
		}
		fputs("],\"headers\":", f);
		json_strn(f, body, hlen);
		fputs("}\n", f);
	} else {
		fprintf(f, "id: %s\nsender: <", id);
		text_str(f, m.env.sender);
		fprintf(f, ">\narrival: %s (%s)\nsize: %" PRIu64 "\nclient: ",
		    time_rfc5322((time_t)m.env.arrival, rbuf, sizeof rbuf),
		    iso_time(m.env.arrival, tbuf, sizeof tbuf), m.size);
		text_str(f, m.env.client_addr);
		fputs("\nhelo: ", f);
		text_str(f, m.env.helo);
		fputs("\nauth: ", f);
		text_str(f, m.env.auth_user ? m.env.auth_user : "-");
		fputs("\nenvid: ", f);
		text_str(f, m.env.envid ? m.env.envid : "-");
		fprintf(f, "\nret: %s\nflags: ", ret_name(m.env.ret) ?
		    ret_name(m.env.ret) : "-");
		flags_text(f, m.env.flags, 0);
		fprintf(f, "\nrecipients: %zu\n", m.nrcpts);
		for (size_t i = 0; i < m.nrcpts; i++) {
			const struct queue_rcpt *r = &m.rcpts[i];
			print_rcpt_text(f, r);
			if (r->orcpt != NULL || r->notify != 0) {
				fputs("      orcpt=", f);
				text_str(f, r->orcpt ? r->orcpt : "-");
				fprintf(f, " notify=%s\n", r->notify ?
				    notify_text(r->notify, nbuf, sizeof nbuf) : "-");
			}
		}
		fputs("headers:\n", f);
		/* Line by line, CRLF shown as a plain newline. */
		for (size_t i = 0; i < hlen;) {
			const char *nl = memchr(body + i, '\n', hlen - i);
			size_t end = nl ? (size_t)(nl - body) : hlen;
			size_t n = end - i;
			if (n > 0 && body[i + n - 1] == '\r')
				n--;
			text_strn(f, body + i, n);
			fputc('\n', f);
			i = end + 1;
		}
	}
	free(body);
	queue_msg_free(&m);
	return 0;
}

/* ---- stats ---- */

static int
cmd_stats(struct mailctl *mc, struct queue_store *s)
{
	struct store_stats st;
	int rc = store_stats_get(s, &st);

	if (rc != STORE_OK) {
		fprintf(stderr, "mailctl: stats: %s\n", store_status_text(rc));
		return 1;
	}
	if (mc->json)
		fprintf(mc->out, "{\"received\":%" PRIu64 ",\"delivered\":%" PRIu64
		    ",\"deferred\":%" PRIu64 ",\"bounced\":%" PRIu64
		    ",\"rejected\":%" PRIu64 ",\"messages\":%" PRIu64
		    ",\"recipients\":%" PRIu64 ",\"pending\":%" PRIu64
		    ",\"bad\":%" PRIu64 ",\"body_records\":%" PRIu64
		    ",\"staged\":%" PRIu64 "}\n", st.received, st.delivered,
		    st.deferred, st.bounced, st.rejected, st.messages,
		    st.recipients, st.pending, st.bad, st.body_records, st.staged);
	else
		fprintf(mc->out, "received: %" PRIu64 "\ndelivered: %" PRIu64
		    "\ndeferred: %" PRIu64 "\nbounced: %" PRIu64
		    "\nrejected: %" PRIu64 "\nmessages: %" PRIu64
		    "\nrecipients: %" PRIu64 "\npending: %" PRIu64
		    "\nbad: %" PRIu64 "\nbody records: %" PRIu64
		    "\nstaged: %" PRIu64 "\n", st.received, st.delivered,
		    st.deferred, st.bounced, st.rejected, st.messages,
		    st.recipients, st.pending, st.bad, st.body_records, st.staged);
	return 0;
}

/* ---- delete, flush ---- */

static int
cmd_delete(struct mailctl *mc, struct queue_store *s, char **ids, int nids)
{
	struct store_wtxn *t;
	char idtxt[QUEUE_ID_LEN + 1];
	queue_id_t *ok;	/* per ID: the id deleted, or 0 */
	uint64_t count = 0;
	int st, failed = 0;

	if ((st = store_wtxn_begin(s, NULL, &t)) != STORE_OK) {
		fprintf(stderr, "mailctl: delete: %s\n", store_status_text(st));
		return 1;
	}
	if (nids == 1 && strcmp(ids[0], "all") == 0) {
		st = store_delete_all(t, &count);
		if (st == STORE_OK)
			st = store_wtxn_commit(&t);
		else
			store_wtxn_abort(&t);
		if (st != STORE_OK) {
			fprintf(stderr, "mailctl: delete all: %s\n",
			    store_status_text(st));
			return 1;
		}
		fprintf(mc->out, "%" PRIu64 " messages deleted\n", count);
		return 0;
	}
	ok = xcalloc((size_t)nids, sizeof *ok);
	for (int i = 0; i < nids; i++) {
		if (queue_id_parse(ids[i], &ok[i]) != 0) {
			ok[i] = 0;
			failed |= not_in_queue(ids[i]);
			continue;
		}
		st = store_delete_msg(t, ok[i]);
		if (st == STORE_NOTFOUND) {
			ok[i] = 0;	/* also a repeated ID */
			failed |= not_in_queue(ids[i]);
			continue;
		}
		if (st != STORE_OK) {
			store_wtxn_abort(&t);
			free(ok);
			fprintf(stderr, "mailctl: delete: %s\n", store_status_text(st));
			return 1;
		}
	}
	st = store_wtxn_commit(&t);
	if (st != STORE_OK) {
		free(ok);
		fprintf(stderr, "mailctl: delete: %s\n", store_status_text(st));
		return 1;
	}
	for (int i = 0; i < nids; i++) {
		if (ok[i] == 0)
			continue;
		fprintf(mc->out, "%s: deleted\n", queue_id_format(ok[i], idtxt, sizeof idtxt));
		mailctl_trace_note(mc, ok[i], "deleted", 1);
	}
	free(ok);
	return failed ? 1 : 0;
}

static int
cmd_flush(struct mailctl *mc, struct queue_store *s)
{
	uint64_t count = 0;
	int st = store_flush_all(s, (int64_t)time(NULL), &count);

	if (st != STORE_OK) {
		fprintf(stderr, "mailctl: flush: %s\n", store_status_text(st));
		return 1;
	}
	fprintf(mc->out, "%" PRIu64 " recipients made due now\n", count);
	return 0;
}

/* ---- DKIM keys ---- */

/*
 * dkim-keygen DOMAIN SELECTOR [--type rsa|ed25519] [--out FILE]: writes a
 * new private key (mode 0600; the default file is
 * SELECTOR._domainkey.DOMAIN.pem) and prints the TXT record to publish,
 * in zone-file form with strings of at most 255 characters.
 */
static int
cmd_dkim_keygen(char **args, int nargs)
{
	enum dkim_alg alg = DKIM_ALG_RSA_SHA256;
	const char *domain = NULL, *selector = NULL, *out = NULL;
	char path[600], err[512];
	struct buf txt;

	for (int i = 0; i < nargs; i++) {
		if (strcmp(args[i], "--type") == 0 && i + 1 < nargs) {
			i++;
			if (strcmp(args[i], "rsa") == 0)
				alg = DKIM_ALG_RSA_SHA256;
			else if (strcmp(args[i], "ed25519") == 0)
				alg = DKIM_ALG_ED25519_SHA256;
			else
				return usage(stderr), 2;
		} else if (strcmp(args[i], "--out") == 0 && i + 1 < nargs) {
			out = args[++i];
		} else if (domain == NULL) {
			domain = args[i];
		} else if (selector == NULL) {
			selector = args[i];
		} else {
			return usage(stderr), 2;
		}
	}
	if (domain == NULL || selector == NULL ||
	    strpbrk(domain, "/ \t") != NULL || strpbrk(selector, "/ \t") != NULL)
		return usage(stderr), 2;
	if (out == NULL) {
		if ((size_t)snprintf(path, sizeof path, "%s._domainkey.%s.pem",
		    selector, domain) >= sizeof path)
			return usage(stderr), 2;
		out = path;
	}
	buf_init(&txt, 16384);
	if (dkim_keygen(alg, out, &txt, err, sizeof err) != 0) {
		fprintf(stderr, "mailctl: %s\n", err);
		buf_free(&txt);
		return 1;
	}
	fprintf(stderr, "mailctl: wrote the %s private key to %s\n",
	    alg == DKIM_ALG_ED25519_SHA256 ? "Ed25519" : "RSA 2048-bit", out);
	printf("%s._domainkey.%s. IN TXT (", selector, domain);
	for (size_t k = 0; k < txt.len; k += 255)
		printf(" \"%.*s\"", (int)(txt.len - k < 255 ? txt.len - k : 255),
		    txt.data + k);
	printf(" )\n");
	buf_free(&txt);
	return 0;
}

/* ---- main ---- */

int
main(int argc, char **argv)
{
	struct mailctl mc = { .json = 0, .out = stdout };
	const char *config_path = "mailserver.conf";
	char **words = xcalloc((size_t)argc + 1, sizeof *words);
	struct config *cfg;
	struct queue_store *s;
	char err[512];
	int nwords = 0, rc, writes, send;
	const char *cmd;

	/* A closed stdout or stderr would be taken by the queue's files and
	 * get the listing (or a warning) written into them. */
	if (fd_std_ensure() < 0) {
		free(words);
		return 1;
	}
	log_set_level(LOG_LVL_WARN);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			mc.json = 1;
		} else if (strcmp(argv[i], "-c") == 0) {
			if (++i >= argc) {
				usage(stderr);
				free(words);
				return 2;
			}
			config_path = argv[i];
		} else if (strncmp(argv[i], "-c", 2) == 0) {
			config_path = argv[i] + 2;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			free(words);
			return 0;
		} else if (strcmp(argv[i], "--") == 0) {
			while (++i < argc)
				words[nwords++] = argv[i];
		} else if (argv[i][0] == '-' && argv[i][1] != '\0' && nwords == 0) {
			fprintf(stderr, "mailctl: unknown option %s\n", argv[i]);
			usage(stderr);
			free(words);
			return 2;
		} else {
			words[nwords++] = argv[i];
		}
	}
	cmd = nwords > 0 ? words[0] : "";
	if (strcmp(cmd, "dkim-keygen") == 0) {
		rc = cmd_dkim_keygen(words + 1, nwords - 1);
		free(words);
		return rc;
	}
	/* tls-report --send DOMAIN ...: the words after --send as without. */
	send = strcmp(cmd, "tls-report") == 0 && nwords >= 2 &&
	    strcmp(words[1], "--send") == 0;
	if (send) {
		memmove(&words[1], &words[2], (size_t)(nwords - 1) * sizeof *words);
		nwords--;
	}
	if ((strcmp(cmd, "tls") == 0 && nwords == 2) ||
	    (strcmp(cmd, "tls-report") == 0 && (nwords == 2 ||
	    (nwords == 4 && strcmp(words[2], "--date") == 0)))) {
		if ((cfg = config_load(config_path, stderr)) == NULL) {
			free(words);
			return 2;
		}
		if (strcmp(cmd, "tls") == 0)
			rc = mailctl_tls(cfg, words[1], stdout);
		else if (send)
			rc = mailctl_tls_report_send(cfg, words[1],
			    nwords == 4 ? words[3] : NULL, stdout);
		else
			rc = mailctl_tls_report(cfg, words[1], nwords == 4 ? words[3] : NULL,
			    mc.json, stdout);
		config_unref(&cfg);
		free(words);
		if (fflush(stdout) != 0 || ferror(stdout))
			return 1;
		return rc;
	}
	if (!((strcmp(cmd, "queue") == 0 && nwords == 1) ||
	    (strcmp(cmd, "show") == 0 && nwords == 2) ||
	    (strcmp(cmd, "cat") == 0 && nwords == 2) ||
	    (strcmp(cmd, "trace") == 0 && nwords == 2) ||
	    (strcmp(cmd, "sessions") == 0 && nwords == 1) ||
	    (strcmp(cmd, "selftest") == 0 && nwords == 1) ||
	    (strcmp(cmd, "hold") == 0 && nwords >= 2) ||
	    (strcmp(cmd, "release") == 0 && nwords >= 2) ||
	    (strcmp(cmd, "requeue") == 0 && nwords >= 2) ||
	    (strcmp(cmd, "bounce") == 0 && nwords >= 2) ||
	    (strcmp(cmd, "delete") == 0 && nwords >= 2) ||
	    (strcmp(cmd, "flush") == 0 && nwords == 1) ||
	    (strcmp(cmd, "stats") == 0 && nwords == 1))) {
		usage(stderr);
		free(words);
		return 2;
	}
	if ((cfg = config_load(config_path, stderr)) == NULL) {
		free(words);
		return 2;
	}
	mc.cfg = cfg;
	if (strcmp(cmd, "sessions") == 0) {
		char cerr[512];

		rc = control_ask(cfg->queue_dir, mc.json ? "sessions json" : "sessions",
		    stdout, cerr, sizeof cerr) < 0;
		if (rc)
			fprintf(stderr, "mailctl: sessions: %s\n", cerr);
		config_unref(&cfg);
		free(words);
		return rc;
	}
	if (strcmp(cmd, "selftest") == 0) {
		rc = mailctl_selftest(&mc);
		config_unref(&cfg);
		free(words);
		return rc;
	}
	if (strcmp(cmd, "trace") == 0) {
		rc = mailctl_trace(&mc, words[1]);
		config_unref(&cfg);
		free(words);
		return rc;
	}
	writes = strcmp(cmd, "delete") == 0 || strcmp(cmd, "flush") == 0 ||
	    strcmp(cmd, "hold") == 0 || strcmp(cmd, "release") == 0 ||
	    strcmp(cmd, "requeue") == 0 || strcmp(cmd, "bounce") == 0;
	s = store_open(cfg->queue_dir, cfg->queue_map_size,
	    writes ? 0 : STORE_RDONLY, err, sizeof err);
	if (s == NULL) {
		fprintf(stderr, "mailctl: %s\n", err);
		config_unref(&cfg);
		free(words);
		return 1;
	}
	if (strcmp(cmd, "queue") == 0)
		rc = cmd_queue(&mc, s);
	else if (strcmp(cmd, "show") == 0)
		rc = cmd_show(&mc, s, words[1]);
	else if (strcmp(cmd, "stats") == 0)
		rc = cmd_stats(&mc, s);
	else if (strcmp(cmd, "flush") == 0)
		rc = cmd_flush(&mc, s);
	else if (strcmp(cmd, "cat") == 0)
		rc = mailctl_cat(&mc, s, words[1]);
	else if (strcmp(cmd, "hold") == 0 || strcmp(cmd, "release") == 0)
		rc = mailctl_hold(&mc, s, words + 1, nwords - 1, cmd[0] == 'h');
	else if (strcmp(cmd, "requeue") == 0)
		rc = mailctl_requeue(&mc, s, words + 1, nwords - 1);
	else if (strcmp(cmd, "bounce") == 0)
		rc = mailctl_bounce(&mc, s, words + 1, nwords - 1);
	else
		rc = cmd_delete(&mc, s, words + 1, nwords - 1);
	store_close(&s);
	trace_db_close(&mc.trace);
	config_unref(&cfg);
	free(words);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "mailctl: writing the output: %s\n", strerror(errno));
		return 1;
	}
	return rc;
}
