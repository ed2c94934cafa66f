/*
 * filter_driver: runs the filter clients against real daemons for the
 * integration tests (tests/integration/test_milter*.py, test_policy.py,
 * test_sasl_dovecot.py), one script line at a time from stdin, printing
 * one JSON object per result line to stdout.
 *
 *   filter_driver milter [OPTS] ENDPOINT [[OPTS] ENDPOINT...]
 *     OPTS: --default accept|tempfail|reject, --timeouts CONNECT,CMD,EOM
 *     (milliseconds; apply to the endpoints after them)
 *     script: macro NAME VALUE | connect NAME ADDR PORT 4|6|unix|unknown |
 *       helo NAME | mail ADDR [PARAM...] | rcpt ADDR [PARAM...] |
 *       rcpt_rejected ADDR | data | message FILE [PIECE] | eom | abort |
 *       unknown LINE | negotiated | quit   (ADDR "<>" is the null sender)
 *   filter_driver policy [--timeout MS] [--default ACTION] ENDPOINT
 *     script: blocks of name=value lines, each ended by an empty line,
 *     are requests (protocol_state, sender, ...); "quit" ends.
 *   filter_driver sasl [--timeout MS] ENDPOINT
 *     script: start MECH [RESP|-] [secured] | cont [RESP] | cancel |
 *       mechs | quit
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "filter/milter_chain.h"
#include "filter/policy.h"
#include "lib/log.h"
#include "lib/util.h"
#include "server/sasl_dovecot.h"

#define SPECS_MAX 8

/* Prints s as a JSON string (bytes >= 0x80 as \u00XX: decode as latin-1
 * to get the bytes back). */
static void
json_str(const char *s, size_t n)
{
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\r')
			fputs("\\r", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void
json_field(const char *name, const char *value, int comma)
{
	if (comma)
		fputs(", ", stdout);
	json_str(name, strlen(name));
	fputs(": ", stdout);
	if (value == NULL)
		fputs("null", stdout);
	else
		json_str(value, strlen(value));
}

static void
print_verdict(const char *stage, const struct milter_verdict *v)
{
	putchar('{');
	json_field("stage", stage, 0);
	json_field("action", milter_action_name(v->action), 1);
	json_field("reply", v->reply, 1);
	json_field("milter", v->milter, 1);
	printf(", \"default\": %d", v->from_default);
}

static void
print_mods(const struct milter_mods *m)
{
	if (m == NULL) {
		fputs(", \"mods\": null", stdout);
		return;
	}
	fputs(", \"mods\": [", stdout);
	for (size_t i = 0; i < m->n; i++) {
		const struct milter_mod *d = &m->v[i];

		if (i > 0)
			fputs(", ", stdout);
		putchar('{');
		json_field("kind", milter_mod_kind_name(d->kind), 0);
		printf(", \"milter\": %zu, \"index\": %u", d->milter,
		    (unsigned)d->index);
		json_field("name", d->name, 1);
		json_field("value", d->value, 1);
		json_field("addr", d->addr, 1);
		json_field("args", d->args, 1);
		json_field("text", d->text, 1);
		putchar('}');
	}
	putchar(']');
	if (m->body_replaced) {
		fputs(", \"body\": ", stdout);
		json_str(m->body.data != NULL ? m->body.data : "", m->body.len);
	}
	json_field("quarantine", m->quarantine, 1);
}

/* Splits line into words at spaces; returns the count (at most max). */
static int
split(char *line, char **w, int max)
{
	int n = 0;
	char *save = NULL;

	for (char *t = strtok_r(line, " ", &save); t != NULL && n < max;
	    t = strtok_r(NULL, " ", &save))
		w[n++] = t;
	return n;
}

/* The header section of the last message fed (for "applied"). */
static struct buf last_header;

/* Prints the header section of the last message with the header changes
 * of m carried out. */
static void
print_applied(const struct milter_mods *m)
{
	struct buf out;
	const char *h = last_header.data != NULL ? last_header.data : "";

	buf_init(&out, 4 << 20);
	if (milter_mods_apply_header(m, h, last_header.len, &out) == 0) {
		fputs(", \"applied\": ", stdout);
		json_str(out.data != NULL ? out.data : "", out.len);
	}
	buf_free(&out);
}

static void
feed_file(struct milter_chain *c, const char *path, size_t piece,
    struct milter_verdict *v)
{
	FILE *f = fopen(path, "rb");
	char *b;
	size_t n;

	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		exit(2);
	}
	b = xmalloc(piece);
	memset(v, 0, sizeof *v);
	buf_free(&last_header);
	buf_init(&last_header, 4 << 20);
	while ((n = fread(b, 1, piece, f)) > 0) {
		milter_chain_message(c, b, n, v);
		(void)buf_append(&last_header, b, n);
	}
	{
		/* Keep what comes before the empty line. */
		char *end = last_header.data != NULL ?
		    strstr(last_header.data, "\r\n\r\n") : NULL;

		if (end != NULL) {
			last_header.len = (size_t)(end - last_header.data) + 2;
			last_header.data[last_header.len] = '\0';
		}
	}
	free(b);
	fclose(f);
}

static int
run_milter(int argc, char **argv)
{
	struct milter_spec specs[SPECS_MAX];
	size_t n = 0;
	enum milter_default def = MILTER_DEFAULT_TEMPFAIL;
	unsigned t_conn = MILTER_CONNECT_TIMEOUT_MS, t_cmd = MILTER_COMMAND_TIMEOUT_MS;
	unsigned t_eom = MILTER_EOM_TIMEOUT_MS;
	struct milter_chain *c;
	char line[8192];

	for (int i = 0; i < argc; i++) {
		char err[256];

		if (strcmp(argv[i], "--default") == 0 && i + 1 < argc) {
			if (milter_default_parse(argv[++i], &def) != 0)
				return 2;
		} else if (strcmp(argv[i], "--timeouts") == 0 && i + 1 < argc) {
			if (sscanf(argv[++i], "%u,%u,%u", &t_conn, &t_cmd, &t_eom) != 3)
				return 2;
		} else if (n < SPECS_MAX) {
			if (milter_spec_init(&specs[n], argv[i], err, sizeof err) != 0) {
				fprintf(stderr, "%s\n", err);
				return 2;
			}
			specs[n].default_action = def;
			specs[n].connect_timeout_ms = t_conn;
			specs[n].command_timeout_ms = t_cmd;
			specs[n].eom_timeout_ms = t_eom;
			n++;
		}
	}
	c = milter_chain_new(specs, n, 1 << 20);
	while (fgets(line, sizeof line, stdin) != NULL) {
		char *w[64];
		int nw;
		struct milter_verdict v;

		line[strcspn(line, "\r\n")] = '\0';
		if (strncmp(line, "macro ", 6) == 0) {
			/* macro NAME VALUE...: the value is the rest of the line */
			char *name = line + 6, *value = strchr(name, ' ');

			if (value != NULL)
				*value++ = '\0';
			printf("{\"stage\": \"macro\", \"rc\": %d}\n",
			    milter_chain_macro(c, name, value));
			continue;
		}
		nw = split(line, w, 64);
		if (nw == 0)
			continue;
		memset(&v, 0, sizeof v);
		if (strcmp(w[0], "quit") == 0)
			break;
		if (strcmp(w[0], "connect") == 0 && nw == 5) {
			struct milter_client cl = {
				.name = strcmp(w[1], "-") == 0 ? NULL : w[1],
				.addr = w[2],
				.port = (uint16_t)atoi(w[3]),
				.family = strcmp(w[4], "4") == 0 ? AF_INET :
				    strcmp(w[4], "6") == 0 ? AF_INET6 :
				    strcmp(w[4], "unix") == 0 ? AF_UNIX : 0,
			};
			milter_chain_connect(c, &cl, &v);
			print_verdict("connect", &v);
			puts("}");
		} else if (strcmp(w[0], "helo") == 0 && nw == 2) {
			milter_chain_helo(c, w[1], &v);
			print_verdict("helo", &v);
			puts("}");
		} else if ((strcmp(w[0], "mail") == 0 || strcmp(w[0], "rcpt") == 0 ||
		    strcmp(w[0], "rcpt_rejected") == 0) && nw >= 2) {
			const char *addr = strcmp(w[1], "<>") == 0 ? "" : w[1];
			const char *params[64];
			int np = 0;

			for (int i = 2; i < nw; i++)
				params[np++] = w[i];
			params[np] = NULL;
			if (w[0][0] == 'm')
				milter_chain_mail(c, addr, params, &v);
			else if (strcmp(w[0], "rcpt") == 0)
				milter_chain_rcpt(c, addr, params, &v);
			else
				milter_chain_rcpt_rejected(c, addr, params);
			print_verdict(w[0], &v);
			puts("}");
		} else if (strcmp(w[0], "data") == 0) {
			milter_chain_data(c, &v);
			print_verdict("data", &v);
			puts("}");
		} else if (strcmp(w[0], "message") == 0 && nw >= 2) {
			feed_file(c, w[1], nw >= 3 ? (size_t)atoi(w[2]) : 4096, &v);
			print_verdict("message", &v);
			puts("}");
		} else if (strcmp(w[0], "eom") == 0) {
			const struct milter_mods *mods;

			milter_chain_eom(c, &v);
			mods = milter_chain_mods(c);
			print_verdict("eom", &v);
			print_mods(mods);
			if (mods != NULL)
				print_applied(mods);
			puts("}");
		} else if (strcmp(w[0], "abort") == 0) {
			milter_chain_abort(c);
			puts("{\"stage\": \"abort\"}");
		} else if (strcmp(w[0], "unknown") == 0 && nw >= 2) {
			milter_chain_unknown(c, w[1], &v);
			print_verdict("unknown", &v);
			puts("}");
		} else if (strcmp(w[0], "negotiated") == 0) {
			for (size_t i = 0; i < milter_chain_count(c); i++) {
				uint32_t ver = 0, act = 0, st = 0;
				struct milter_conn *m = milter_chain_conn(c, i);

				if (m != NULL)
					milter_conn_negotiated(m, &ver, &act, &st);
				printf("{\"stage\": \"negotiated\", \"milter\": %zu, "
				    "\"version\": %u, \"actions\": %u, \"steps\": %u, "
				    "\"live\": %d}\n", i, (unsigned)ver, (unsigned)act,
				    (unsigned)st, m != NULL && milter_conn_live(m));
			}
		} else {
			fprintf(stderr, "bad script line: %s\n", w[0]);
			return 2;
		}
		fflush(stdout);
	}
	milter_chain_free(&c);
	buf_free(&last_header);
	puts("{\"stage\": \"quit\"}");
	return 0;
}

/* A request block: name=value lines into rq (strings kept in vals). */
static void
request_set(struct policy_request *rq, const char *name, char *value)
{
	static const struct {
		const char *name;
		size_t off;
	} f[] = {
#define F(x) { #x, offsetof(struct policy_request, x) }
		F(protocol_state), F(protocol_name), F(helo_name), F(queue_id),
		F(sender), F(recipient), F(client_address), F(client_name),
		F(reverse_client_name), F(client_port), F(instance), F(sasl_method),
		F(sasl_username), F(sasl_sender), F(ccert_subject), F(ccert_issuer),
		F(ccert_fingerprint), F(ccert_pubkey_fingerprint),
		F(encryption_protocol), F(encryption_cipher), F(encryption_keysize),
		F(etrn_domain), F(stress), F(server_address), F(server_port),
		F(policy_context), F(compatibility_level), F(mail_version),
#undef F
	};

	if (strcmp(name, "recipient_count") == 0) {
		rq->recipient_count = strtoul(value, NULL, 10);
		return;
	}
	if (strcmp(name, "size") == 0) {
		rq->size = strtoul(value, NULL, 10);
		return;
	}
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
		if (strcmp(f[i].name, name) == 0) {
			*(const char **)((char *)rq + f[i].off) = value;
			return;
		}
	fprintf(stderr, "unknown attribute %s\n", name);
	exit(2);
}

static int
run_policy(int argc, char **argv)
{
	struct policy_spec spec;
	struct policy_client *c;
	char err[256], line[8192];
	char *vals[64];
	size_t nv = 0;
	struct policy_request rq;
	int have = 0, i = 0;

	for (; i < argc - 1; i++) {
		if (strcmp(argv[i], "--timeout") == 0 && i + 2 < argc)
			i++;
		else if (strcmp(argv[i], "--default") == 0 && i + 2 < argc)
			i++;
		else
			break;
	}
	if (i != argc - 1 || policy_spec_init(&spec, argv[argc - 1], err, sizeof err) != 0) {
		fprintf(stderr, "usage or endpoint: %s\n", err);
		return 2;
	}
	for (i = 0; i < argc - 1; i++) {
		if (strcmp(argv[i], "--timeout") == 0) {
			spec.timeout_ms = (unsigned)atoi(argv[++i]);
			spec.connect_timeout_ms = spec.timeout_ms;
		} else if (strcmp(argv[i], "--default") == 0 &&
		    policy_spec_default(&spec, argv[++i], err, sizeof err) != 0) {
			fprintf(stderr, "%s\n", err);
			return 2;
		}
	}
	c = policy_client_new(&spec);
	memset(&rq, 0, sizeof rq);
	while (fgets(line, sizeof line, stdin) != NULL) {
		char *eq;

		line[strcspn(line, "\r\n")] = '\0';
		if (strcmp(line, "quit") == 0)
			break;
		if (line[0] == '\0') {
			struct policy_verdict v;

			if (!have)
				continue;
			policy_client_ask(c, &rq, &v);
			printf("{\"stage\": \"policy\"");
			json_field("kind", policy_kind_name(v.kind), 1);
			printf(", \"default\": %d", v.from_default);
			json_field("reply", v.reply, 1);
			json_field("header", v.header, 1);
			json_field("addr", v.addr, 1);
			json_field("text", v.text, 1);
			puts("}");
			fflush(stdout);
			for (size_t k = 0; k < nv; k++)
				free(vals[k]);
			nv = 0;
			memset(&rq, 0, sizeof rq);
			have = 0;
			continue;
		}
		eq = strchr(line, '=');
		if (eq == NULL || nv == 64) {
			fprintf(stderr, "bad request line: %s\n", line);
			return 2;
		}
		*eq = '\0';
		vals[nv] = xstrdup(eq + 1);
		request_set(&rq, line, vals[nv++]);
		have = 1;
	}
	policy_client_free(&c);
	return 0;
}

static void
print_sasl(const struct sasl_dovecot_result *r)
{
	static const char *const names[] = { "ok", "continue", "fail", "tempfail",
	    "invalid" };

	printf("{\"stage\": \"sasl\"");
	json_field("status", names[r->status], 1);
	json_field("user", r->user, 1);
	json_field("reason", r->reason, 1);
	json_field("challenge", r->challenge, 1);
	puts("}");
}

static int
run_sasl(int argc, char **argv)
{
	struct sasl_dovecot_spec spec;
	struct sasl_dovecot *c;
	char err[256], line[SASL_DOVECOT_LINE_MAX + 64];

	if (argc == 3 && strcmp(argv[0], "--timeout") == 0) {
		if (sasl_dovecot_spec_init(&spec, argv[2], err, sizeof err) != 0)
			goto usage;
		spec.timeout_ms = (unsigned)atoi(argv[1]);
	} else if (argc != 1 || sasl_dovecot_spec_init(&spec, argv[0], err,
	    sizeof err) != 0) {
		goto usage;
	}
	c = sasl_dovecot_new(&spec);
	while (fgets(line, sizeof line, stdin) != NULL) {
		char *w[8];
		int nw;
		struct sasl_dovecot_result *r = xcalloc(1, sizeof *r);

		line[strcspn(line, "\r\n")] = '\0';
		nw = split(line, w, 8);
		if (nw == 0) {
			free(r);
			continue;
		}
		if (strcmp(w[0], "quit") == 0) {
			free(r);
			break;
		}
		if (strcmp(w[0], "start") == 0 && nw >= 2) {
			struct sasl_dovecot_request rq = {
				.mech = w[1],
				.initial = nw >= 3 && strcmp(w[2], "-") != 0 ? w[2] : NULL,
				.local_ip = "127.0.0.1", .remote_ip = "192.0.2.7",
				.local_port = 587, .remote_port = 40000,
			};

			for (int i = 3; i < nw; i++)
				if (strcmp(w[i], "secured") == 0)
					rq.secured = 1;
			sasl_dovecot_start(c, &rq, r);
			print_sasl(r);
		} else if (strcmp(w[0], "cont") == 0) {
			sasl_dovecot_continue(c, nw >= 2 ? w[1] : "", r);
			print_sasl(r);
		} else if (strcmp(w[0], "cancel") == 0) {
			sasl_dovecot_cancel(c);
			puts("{\"stage\": \"cancel\"}");
		} else if (strcmp(w[0], "mechs") == 0) {
			int rc = sasl_dovecot_connect(c);

			printf("{\"stage\": \"mechs\", \"rc\": %d", rc);
			json_field("mechs", sasl_dovecot_mechs(c), 1);
			puts("}");
		} else {
			fprintf(stderr, "bad script line: %s\n", w[0]);
			return 2;
		}
		free(r);
		fflush(stdout);
	}
	sasl_dovecot_free(&c);
	return 0;
usage:
	fprintf(stderr, "usage: filter_driver sasl [--timeout MS] ENDPOINT: %s\n", err);
	return 2;
}

int
main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	log_set_level(getenv("FILTER_DRIVER_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	if (argc >= 2 && strcmp(argv[1], "milter") == 0)
		return run_milter(argc - 2, argv + 2);
	if (argc >= 3 && strcmp(argv[1], "policy") == 0)
		return run_policy(argc - 2, argv + 2);
	if (argc >= 3 && strcmp(argv[1], "sasl") == 0)
		return run_sasl(argc - 2, argv + 2);
	fprintf(stderr, "usage: filter_driver milter|policy|sasl ...\n");
	return 2;
}
