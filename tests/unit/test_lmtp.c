/*
 * test_lmtp: the LMTP client (relay/lmtp.h) against a scripted in-process
 * LMTP server on a Unix socket (and one on a loopback TCP port): the
 * commands it sends, the exact message bytes, one result per recipient
 * from the replies after the data, connection reuse, and hostile servers
 * (malformed, overlong, mismatched, missing or out-of-step replies, a 421,
 * a hang, a server that is not there).
 *
 * The server: one thread, one connection at a time; a script of raw
 * replies (NULL: a default) for the greeting, LHLO, MAIL, each RCPT in
 * order, DATA, and the raw bytes sent after the final "." (then it
 * closes the connection when close_after is set, or hangs when hang is
 * set). It records every command line and the data received.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/body_reader.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "relay/lmtp.h"

#define SRV_WAIT_MS	10000

struct srv {
	int lfd;
	char path[108];
	uint16_t port;			/* TCP instead of the socket, when set */
	pthread_t thread;
	/* the script */
	const char *greeting, *lhlo, *mail, *data, *after;
	const char *starttls;		/* reply to STARTTLS; after a 220,
					 * bytes that are no TLS, then close */
	const char *rcpt[8];
	int close_after, hang;
	/* what it saw */
	pthread_mutex_t mu;
	int conns, stop;
	int early;			/* envelope commands read with the next
					 * one already waiting (pipelined) */
	struct buf cmds;		/* command lines, '\n' after each */
	struct buf body;		/* the last data, as received */
};

static void
srv_send(int fd, const char *s)
{
	size_t n = strlen(s), off = 0;

	while (off < n) {
		ssize_t w = send(fd, s + off, n - off, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

/* Reads one line (with LF) into line; 0 at EOF, timeout or stop. */
static size_t
srv_line(struct srv *s, int fd, char *line, size_t max)
{
	size_t n = 0;

	while (n + 1 < max) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char c;

		if (poll(&p, 1, SRV_WAIT_MS) <= 0 || recv(fd, &c, 1, 0) != 1)
			return 0;
		line[n++] = c;
		if (c == '\n')
			break;
	}
	line[n] = '\0';
	(void)s;
	return n;
}

static void
srv_conn(struct srv *s, int fd)
{
	char line[8192];
	size_t n, nrcpt = 0;

	srv_send(fd, s->greeting ? s->greeting : "220 lmtp.test LMTP ready\r\n");
	while ((n = srv_line(s, fd, line, sizeof line)) > 0) {
		pthread_mutex_lock(&s->mu);
		buf_append(&s->cmds, line, n - (n >= 2 && line[n - 2] == '\r' ? 2 : 1));
		buf_append(&s->cmds, "\n", 1);
		if (strncmp(line, "MAIL ", 5) == 0 || strncmp(line, "RCPT ", 5) == 0)
			s->early += recv(fd, &(char){ 0 }, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
		pthread_mutex_unlock(&s->mu);
		if (strncmp(line, "LHLO ", 5) == 0) {
			srv_send(fd, s->lhlo ? s->lhlo : "250-lmtp.test\r\n250-PIPELINING\r\n"
			    "250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n");
		} else if (strncmp(line, "MAIL ", 5) == 0) {
			nrcpt = 0;
			srv_send(fd, s->mail ? s->mail : "250 2.1.0 OK\r\n");
		} else if (strncmp(line, "RCPT ", 5) == 0) {
			const char *r = nrcpt < 8 ? s->rcpt[nrcpt] : NULL;
			nrcpt++;
			srv_send(fd, r ? r : "250 2.1.5 OK\r\n");
		} else if (strncmp(line, "DATA", 4) == 0) {
			const char *d = s->data ? s->data : "354 go ahead\r\n";
			srv_send(fd, d);
			if (strncmp(d, "354", 3) != 0)
				continue;
			pthread_mutex_lock(&s->mu);
			buf_reset(&s->body);
			pthread_mutex_unlock(&s->mu);
			while ((n = srv_line(s, fd, line, sizeof line)) > 0 &&
			    strcmp(line, ".\r\n") != 0) {
				pthread_mutex_lock(&s->mu);
				buf_append(&s->body, line, n);
				pthread_mutex_unlock(&s->mu);
			}
			if (n == 0)
				break;
			if (s->hang) {
				(void)srv_line(s, fd, line, sizeof line);
				break;
			}
			srv_send(fd, s->after ? s->after : "250 2.0.0 saved\r\n");
			if (s->close_after)
				break;
		} else if (strncmp(line, "STARTTLS", 8) == 0) {
			srv_send(fd, s->starttls ? s->starttls : "502 5.5.1 no\r\n");
			if (s->starttls && strncmp(s->starttls, "220", 3) == 0) {
				srv_send(fd, "this is not a TLS record\r\n");
				break;
			}
		} else if (strncmp(line, "RSET", 4) == 0) {
			srv_send(fd, "250 2.0.0 OK\r\n");
		} else if (strncmp(line, "QUIT", 4) == 0) {
			srv_send(fd, "221 2.0.0 bye\r\n");
			break;
		} else {
			srv_send(fd, "500 5.5.1 what\r\n");
		}
	}
	close(fd);
}

static void *
srv_main(void *arg)
{
	struct srv *s = arg;

	for (;;) {
		struct pollfd p = { .fd = s->lfd, .events = POLLIN };
		int fd, stop;

		if (poll(&p, 1, 100) < 0)
			break;
		pthread_mutex_lock(&s->mu);
		stop = s->stop;
		pthread_mutex_unlock(&s->mu);
		if (stop)
			break;
		if (!(p.revents & POLLIN) || (fd = accept(s->lfd, NULL, NULL)) < 0)
			continue;
		pthread_mutex_lock(&s->mu);
		s->conns++;
		pthread_mutex_unlock(&s->mu);
		srv_conn(s, fd);
	}
	return NULL;
}

static char tmpdir[64];

/* Starts a server with the script in *s (the rest zeroed by the caller);
 * tcp: on a loopback port instead of a socket. */
static void
srv_start(struct srv *s, int tcp)
{
	static int seq;

	pthread_mutex_init(&s->mu, NULL);
	buf_init(&s->cmds, 1 << 20);
	buf_init(&s->body, 1 << 22);
	if (tcp) {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		socklen_t len = sizeof sin;

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CU_ASSERT_FATAL(bind(s->lfd, (struct sockaddr *)&sin, sizeof sin) == 0);
		CU_ASSERT_FATAL(getsockname(s->lfd, (struct sockaddr *)&sin, &len) == 0);
		s->port = ntohs(sin.sin_port);
	} else {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };

		snprintf(s->path, sizeof s->path, "%s/lmtp%d", tmpdir, seq++);
		str_copy(sun.sun_path, s->path, sizeof sun.sun_path);
		s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CU_ASSERT_FATAL(bind(s->lfd, (struct sockaddr *)&sun, sizeof sun) == 0);
	}
	CU_ASSERT_FATAL(listen(s->lfd, 8) == 0);
	pthread_create(&s->thread, NULL, srv_main, s);
}

static void
srv_stop(struct srv *s)
{
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	close(s->lfd);
	if (s->path[0])
		unlink(s->path);
	buf_free(&s->cmds);
	buf_free(&s->body);
	pthread_mutex_destroy(&s->mu);
}

/* How often line occurs in the recorded commands. */
static int
srv_count(struct srv *s, const char *prefix)
{
	int n = 0;
	const char *p;

	pthread_mutex_lock(&s->mu);
	buf_append(&s->cmds, "", 1);
	s->cmds.len--;
	for (p = s->cmds.data; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		n += strncmp(p, prefix, strlen(prefix)) == 0;
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* ---- the client side ---- */

static struct lmtp_ctx *
ctx_make(unsigned final_ms)
{
	struct relay_settings st;
	char err[128];
	struct lmtp_ctx *ctx;

	relay_settings_default(&st);
	st.helo_name = "mx.test";
	st.connect_timeout_ms = 2000;
	st.greeting_timeout_ms = 2000;
	st.command_timeout_ms = 2000;
	st.data_init_timeout_ms = 2000;
	st.data_block_timeout_ms = 2000;
	st.data_final_timeout_ms = final_ms ? final_ms : 2000;
	st.attempt_timeout_ms = 10000;
	ctx = lmtp_ctx_new(&st, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
	return ctx;
}

static const char body_text[] =
    "Subject: hi\r\n\r\n.leading dot\r\nbare LF\nend";

/* Delivers body_text from sender to rcpts over ctx to s, in 5-byte
 * pieces (the encoder's state across pieces). */
static void
deliver(struct lmtp_ctx *ctx, struct srv *s, const char *const *rcpts,
    size_t n, struct relay_result *res)
{
	struct lmtp_dest d = { NULL, NULL, 0 };
	struct relay_rcpt rr[8];
	struct relay_msg m;
	struct body_reader br;
	struct body_mem bm;

	if (s->port) {
		d.host = "127.0.0.1";
		d.port = s->port;
	} else {
		d.unix_path = s->path;
	}
	memset(rr, 0, sizeof rr);
	for (size_t i = 0; i < n; i++)
		rr[i].addr = rcpts[i];
	body_reader_mem(&br, &bm, body_text, sizeof body_text - 1, 5);
	memset(&m, 0, sizeof m);
	m.sender = "from@example.org";
	m.body = &br;
	lmtp_deliver(ctx, &d, &m, rr, n, res);
}

static const char *const abc[] = { "a@example.org", "b@example.org", "c@example.org" };

static void
test_per_recipient_replies(void)
{
	struct srv s = { 0 };
	struct lmtp_ctx *ctx;
	struct relay_result res[3];

	s.rcpt[1] = "550 5.1.1 <b@example.org> User doesn't exist\r\n";
	/* One reply per accepted recipient (a and c), in RCPT order. */
	s.after = "250 2.0.0 <a@example.org> Saved\r\n"
	    "452-4.2.2 <c@example.org> Quota exceeded\r\n452 4.2.2 try later\r\n";
	srv_start(&s, 0);
	ctx = ctx_make(0);
	deliver(ctx, &s, abc, 3, res);
	CU_ASSERT_EQUAL(res[0].status, RELAY_SENT);
	CU_ASSERT_STRING_EQUAL(res[0].dsn, "2.0.0");
	CU_ASSERT_EQUAL(res[1].status, RELAY_BOUNCED);
	CU_ASSERT_STRING_EQUAL(res[1].dsn, "5.1.1");
	CU_ASSERT_PTR_NOT_NULL(strstr(res[1].diag, "in reply to RCPT TO"));
	CU_ASSERT_EQUAL(res[2].status, RELAY_DEFERRED);
	CU_ASSERT_STRING_EQUAL(res[2].dsn, "4.2.2");
	CU_ASSERT_PTR_NOT_NULL(strstr(res[2].diag, "Quota exceeded try later"));
	CU_ASSERT_PTR_NOT_NULL(strstr(res[2].diag, "end of DATA"));
	CU_ASSERT_EQUAL(strncmp(res[0].relay, "lmtp:unix:", 10), 0);
	CU_ASSERT_EQUAL(res[0].dsn_passed, 0);
	/* LHLO, never EHLO; one transaction; no DSN parameters. */
	CU_ASSERT_EQUAL(srv_count(&s, "LHLO mx.test"), 1);
	CU_ASSERT_EQUAL(srv_count(&s, "EHLO"), 0);
	CU_ASSERT_EQUAL(srv_count(&s, "MAIL FROM:<from@example.org>"), 1);
	CU_ASSERT_EQUAL(srv_count(&s, "RCPT TO:<"), 3);
	CU_ASSERT_EQUAL(srv_count(&s, "DATA"), 1);
	CU_ASSERT_EQUAL(srv_count(&s, "MAIL FROM:<from@example.org> "), 0);
	/* The data: CRLF, dot-stuffed, a final line end added. */
	CU_ASSERT_EQUAL(s.body.len, strlen("Subject: hi\r\n\r\n..leading dot\r\nbare LF\r\nend\r\n"));
	CU_ASSERT_EQUAL(memcmp(s.body.data, "Subject: hi\r\n\r\n..leading dot\r\nbare LF\r\nend\r\n",
	    s.body.len), 0);
	/* Clean: kept for reuse. */
	CU_ASSERT_EQUAL(lmtp_ctx_idle_count(ctx), 1);
	lmtp_ctx_free(&ctx);
	CU_ASSERT_EQUAL(srv_count(&s, "QUIT"), 1);
	srv_stop(&s);
}

/* With PIPELINING offered the envelope goes in one group: every MAIL
 * and RCPT is read with the next command already there. Without, one at
 * a time: never. */
static void
test_pipelining(void)
{
	struct srv s = { 0 }, t = { 0 };
	struct lmtp_ctx *ctx;
	struct relay_result res[3];

	s.rcpt[1] = "550 5.1.1 <b@example.org> no\r\n";
	s.after = "250 2.0.0 a\r\n250 2.0.0 c\r\n";
	srv_start(&s, 0);
	ctx = ctx_make(0);
	deliver(ctx, &s, abc, 3, res);
	CU_ASSERT_EQUAL(res[0].status, RELAY_SENT);
	CU_ASSERT_EQUAL(res[1].status, RELAY_BOUNCED);
	CU_ASSERT_EQUAL(res[2].status, RELAY_SENT);
	pthread_mutex_lock(&s.mu);
	CU_ASSERT_EQUAL(s.early, 4);	/* MAIL and three RCPTs */
	pthread_mutex_unlock(&s.mu);
	lmtp_ctx_free(&ctx);
	srv_stop(&s);

	t.lhlo = "250-lmtp.test\r\n250 8BITMIME\r\n";
	t.rcpt[0] = "450 4.2.1 <a@example.org> later\r\n";
	t.after = "250 2.0.0 b\r\n250 2.0.0 c\r\n";
	srv_start(&t, 0);
	ctx = ctx_make(0);
	deliver(ctx, &t, abc, 3, res);
	CU_ASSERT_EQUAL(res[0].status, RELAY_DEFERRED);
	CU_ASSERT_EQUAL(res[1].status, RELAY_SENT);
	CU_ASSERT_EQUAL(res[2].status, RELAY_SENT);
	CU_ASSERT_EQUAL(srv_count(&t, "RCPT TO:<"), 3);
	pthread_mutex_lock(&t.mu);
	CU_ASSERT_EQUAL(t.early, 0);
	pthread_mutex_unlock(&t.mu);
	lmtp_ctx_free(&ctx);
	srv_stop(&t);
}

static void
test_reuse(void)
{
	struct srv s = { 0 };
	struct lmtp_ctx *ctx;
	struct relay_result res[2];

	s.after = "250 2.0.0 ok\r\n250 2.0.0 ok\r\n";
	srv_start(&s, 1);
	ctx = ctx_make(0);
	deliver(ctx, &s, abc, 2, res);
	CU_ASSERT_EQUAL(res[1].status, RELAY_SENT);
	deliver(ctx, &s, abc, 2, res);
	CU_ASSERT_EQUAL(res[0].status, RELAY_SENT);
	CU_ASSERT_EQUAL(res[1].status, RELAY_SENT);
	CU_ASSERT_EQUAL(s.conns, 1);
	CU_ASSERT_EQUAL(srv_count(&s, "LHLO"), 1);
	CU_ASSERT_EQUAL(srv_count(&s, "RSET"), 1);
	CU_ASSERT_EQUAL(srv_count(&s, "MAIL FROM"), 2);
	CU_ASSERT(strstr(res[0].relay, "lmtp:[127.0.0.1]:") == res[0].relay);
	lmtp_ctx_free(&ctx);
	srv_stop(&s);
}

/* One hostile reply sequence after the data for two accepted recipients:
 * what each gets, and whether the connection was kept. */
struct hostile {
	const char *after;
	int close_after;
	enum relay_status st0, st1;
	const char *diag1;		/* in the second result */
	size_t idle;
};

static void
test_hostile_replies(void)
{
	char longline[6000];
	static char longreply[6100];
	const struct hostile cases[] = {
		/* garbage in place of the second reply */
		{ "250 2.0.0 ok\r\nXYZ garbage\r\n", 0, RELAY_SENT, RELAY_DEFERRED,
		  "malformed reply", 0 },
		/* fewer replies than recipients, then the connection goes */
		{ "250 2.0.0 ok\r\n", 1, RELAY_SENT, RELAY_DEFERRED,
		  "more than once", 0 },
		/* continuation lines with different codes */
		{ "250-2.0.0 ok\r\n550 5.0.0 no\r\n", 0, RELAY_DEFERRED, RELAY_DEFERRED,
		  "malformed reply", 0 },
		/* a line longer than a reply line may be */
		{ longreply, 0, RELAY_DEFERRED, RELAY_DEFERRED, "malformed reply", 0 },
		/* 421 for the first: neither is delivered, nothing reused */
		{ "421 4.3.2 shutting down\r\n", 1, RELAY_DEFERRED, RELAY_DEFERRED,
		  "421 4.3.2", 0 },
		/* a 3xx where a final reply belongs: out of step */
		{ "354 again\r\n250 2.0.0 ok\r\n", 0, RELAY_DEFERRED, RELAY_SENT, "ok", 0 },
		/* no enhanced code, and a bounce */
		{ "554 no thanks\r\n250 fine\r\n", 0, RELAY_BOUNCED, RELAY_SENT, "fine", 1 },
		/* binary and NUL bytes in the text */
		{ "250 2.0.0 \x01\x7f\xff ok\r\n550 5.7.1 \x1b[31m\r\n", 0, RELAY_SENT,
		  RELAY_BOUNCED, "550 5.7.1 ?[31m", 1 },
	};

	memset(longline, 'x', sizeof longline - 1);
	longline[sizeof longline - 1] = '\0';
	snprintf(longreply, sizeof longreply, "250 %s\r\n250 ok\r\n", longline);
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		struct srv s = { 0 };
		struct lmtp_ctx *ctx;
		struct relay_result res[2];

		s.after = cases[k].after;
		s.close_after = cases[k].close_after;
		srv_start(&s, 0);
		ctx = ctx_make(500);
		deliver(ctx, &s, abc, 2, res);
		CU_ASSERT_EQUAL(res[0].status, cases[k].st0);
		CU_ASSERT_EQUAL(res[1].status, cases[k].st1);
		if (strstr(res[1].diag, cases[k].diag1) == NULL)
			fprintf(stderr, "case %zu: %s\n", k, res[1].diag);
		CU_ASSERT_PTR_NOT_NULL(strstr(res[1].diag, cases[k].diag1));
		for (int i = 0; i < 2; i++)
			for (const char *p = res[i].diag; *p; p++)
				CU_ASSERT((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
		CU_ASSERT_EQUAL(lmtp_ctx_idle_count(ctx), cases[k].idle);
		lmtp_ctx_free(&ctx);
		srv_stop(&s);
	}
}

static void
test_transaction_replies(void)
{
	struct {
		const char *greeting, *lhlo, *mail, *data;
		enum relay_status st;
		const char *dsn, *diag;
	} cases[] = {
		{ NULL, NULL, "550 5.7.1 sender refused\r\n", NULL, RELAY_BOUNCED, "5.7.1",
		  "in reply to MAIL FROM" },
		{ NULL, NULL, "451 4.3.0 later\r\n", NULL, RELAY_DEFERRED, "4.3.0", "later" },
		{ NULL, NULL, NULL, "554 5.3.4 too big\r\n", RELAY_BOUNCED, "5.3.4",
		  "in reply to DATA" },
		{ NULL, NULL, NULL, "250 2.0.0 what\r\n", RELAY_DEFERRED, "4.5.0",
		  "unexpected reply to DATA" },
		{ "554 5.3.2 not now\r\n", NULL, NULL, NULL, RELAY_DEFERRED, "4.3.2",
		  "refused to talk to me" },
		{ NULL, "500 5.5.1 what is LHLO\r\n", NULL, NULL, RELAY_DEFERRED, "4.5.1",
		  "refused to talk to me" },
		{ "garbage\r\n", NULL, NULL, NULL, RELAY_DEFERRED, "4.4.2",
		  "malformed reply" },
	};

	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		struct srv s = { 0 };
		struct lmtp_ctx *ctx;
		struct relay_result res[2];

		s.greeting = cases[k].greeting;
		s.lhlo = cases[k].lhlo;
		s.mail = cases[k].mail;
		s.data = cases[k].data;
		srv_start(&s, 0);
		ctx = ctx_make(0);
		deliver(ctx, &s, abc, 2, res);
		for (int i = 0; i < 2; i++) {
			CU_ASSERT_EQUAL(res[i].status, cases[k].st);
			CU_ASSERT_STRING_EQUAL(res[i].dsn, cases[k].dsn);
			CU_ASSERT_PTR_NOT_NULL(strstr(res[i].diag, cases[k].diag));
		}
		lmtp_ctx_free(&ctx);
		srv_stop(&s);
	}
}

static void
test_unreachable_and_hang(void)
{
	struct lmtp_dest d = { "/nonexistent/lmtp", NULL, 0 };
	struct relay_rcpt rr = { "a@example.org", NULL, 0 };
	struct relay_result res[2];
	struct body_reader br;
	struct body_mem bm;
	struct relay_msg m = { 0 };
	struct lmtp_ctx *ctx = ctx_make(300);
	struct srv s = { 0 };
	int64_t t0;

	body_reader_mem(&br, &bm, body_text, sizeof body_text - 1, 0);
	m.sender = "";
	m.body = &br;
	lmtp_deliver(ctx, &d, &m, &rr, 1, res);
	CU_ASSERT_EQUAL(res[0].status, RELAY_DEFERRED);
	CU_ASSERT_STRING_EQUAL(res[0].dsn, "4.4.1");
	CU_ASSERT_PTR_NOT_NULL(strstr(res[0].diag, "connect to LMTP server unix:/nonexistent/lmtp"));
	/* A server that takes the data and never answers: deferred within
	 * the final reply timeout. */
	s.hang = 1;
	srv_start(&s, 0);
	t0 = time_mono_ms();
	deliver(ctx, &s, abc, 2, res);
	CU_ASSERT(time_mono_ms() - t0 < 3000);
	CU_ASSERT_EQUAL(res[0].status, RELAY_DEFERRED);
	CU_ASSERT_EQUAL(res[1].status, RELAY_DEFERRED);
	CU_ASSERT_PTR_NOT_NULL(strstr(res[0].diag, "timed out"));
	CU_ASSERT_EQUAL(lmtp_ctx_idle_count(ctx), 0);
	lmtp_ctx_free(&ctx);
	srv_stop(&s);
}

static void
test_starttls_may(void)
{
	const char *caps = "250-lmtp.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n";
	struct {
		const char *reply;
		int conns, starttls;
	} cases[] = {
		/* refused: plaintext on the same connection */
		{ "454 4.7.0 TLS not available\r\n", 1, 1 },
		/* a "handshake" that is garbage: once more, in plaintext */
		{ "220 2.0.0 go\r\n", 2, 1 },
	};

	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		struct srv s = { 0 };
		struct lmtp_ctx *ctx;
		struct relay_result res[1];

		s.lhlo = caps;
		s.starttls = cases[k].reply;
		srv_start(&s, 1);
		ctx = ctx_make(0);
		deliver(ctx, &s, abc, 1, res);
		CU_ASSERT_EQUAL(res[0].status, RELAY_SENT);
		CU_ASSERT_STRING_EQUAL(res[0].tls, "plaintext (may)");
		CU_ASSERT_EQUAL(s.conns, cases[k].conns);
		CU_ASSERT_EQUAL(srv_count(&s, "STARTTLS"), cases[k].starttls);
		CU_ASSERT_EQUAL(srv_count(&s, "MAIL FROM"), 1);
		lmtp_ctx_free(&ctx);
		srv_stop(&s);
	}
	/* Never over a Unix socket. */
	{
		struct srv s = { 0 };
		struct lmtp_ctx *ctx;
		struct relay_result res[1];

		s.lhlo = caps;
		s.starttls = "220 2.0.0 go\r\n";
		srv_start(&s, 0);
		ctx = ctx_make(0);
		deliver(ctx, &s, abc, 1, res);
		CU_ASSERT_EQUAL(res[0].status, RELAY_SENT);
		CU_ASSERT_STRING_EQUAL(res[0].tls, "");
		CU_ASSERT_EQUAL(srv_count(&s, "STARTTLS"), 0);
		lmtp_ctx_free(&ctx);
		srv_stop(&s);
	}
}

static void
test_bad_addresses_never_sent(void)
{
	const char *const rcpts[] = { "a@example.org\r\nRSET", "b@example.org",
	    "<c>@example.org" };
	struct srv s = { 0 };
	struct lmtp_ctx *ctx;
	struct relay_result res[3];

	srv_start(&s, 0);
	ctx = ctx_make(0);
	deliver(ctx, &s, rcpts, 3, res);
	CU_ASSERT_EQUAL(res[0].status, RELAY_BOUNCED);
	CU_ASSERT_STRING_EQUAL(res[0].dsn, "5.1.3");
	CU_ASSERT_EQUAL(res[1].status, RELAY_SENT);
	CU_ASSERT_EQUAL(res[2].status, RELAY_BOUNCED);
	CU_ASSERT_EQUAL(srv_count(&s, "RCPT TO:"), 1);
	CU_ASSERT_EQUAL(srv_count(&s, "RSET"), 0);
	lmtp_ctx_free(&ctx);
	srv_stop(&s);
}

int
main(void)
{
	CU_pSuite su;
	unsigned failed;

	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_lmtp.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	su = CU_add_suite("lmtp", NULL, NULL);
	CU_add_test(su, "a reply per recipient after the data", test_per_recipient_replies);
	CU_add_test(su, "the envelope pipelined when offered", test_pipelining);
	CU_add_test(su, "connection reuse over TCP", test_reuse);
	CU_add_test(su, "hostile replies after the data", test_hostile_replies);
	CU_add_test(su, "replies to the greeting, LHLO, MAIL, DATA", test_transaction_replies);
	CU_add_test(su, "server down, server hangs", test_unreachable_and_hang);
	CU_add_test(su, "bad addresses are never sent", test_bad_addresses_never_sent);
	CU_add_test(su, "STARTTLS may over TCP", test_starttls_may);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	rmdir(tmpdir);
	return failed ? 1 : 0;
}
