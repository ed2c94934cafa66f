/*
 * test_relay: the outbound SMTP client (relay/relay.h) against scripted
 * in-process SMTP peers, and its pure parts (relay/relay_proto.h) table
 * by table and byte by byte.
 *
 * Each peer is a thread listening on its own 127.0.0.x address (all on the
 * same port), one thread per connection, with a script (greeting, EHLO
 * capabilities, STARTTLS with a self-signed GnuTLS certificate made at
 * start, replies to RCPT by local part, to DATA and to the end of data,
 * hangs and drops) and a recorder of every command line and of the exact
 * message bytes received.
 *
 * MX tests ask ldns-testns, started here on a loopback port with
 * tests/integration/dns/relay.data (skipped, with a note, when ldns-testns
 * or the file is missing). The program re-runs itself in a private network
 * namespace (unshare --net, lo up) when it can, so nothing leaves the
 * machine; otherwise it runs on the host's loopback.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "dns/dns.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xtext.h"
#include "relay/relay.h"
#include "relay/relay_proto.h"

/* ------------------------------------------------------------------ */
/* Peers                                                              */
/* ------------------------------------------------------------------ */

#define PEER_MAX_CONNS	16
#define PEER_IN_MAX	(1 << 20)
#define PEER_WAIT_MS	20000	/* a peer never waits longer for input */

struct peer_cfg {
	const char *greeting;	/* NULL: "220 peer ESMTP" */
	int hang_greeting;	/* say nothing after accept */
	const char *ehlo;	/* EHLO reply, NULL: PIPELINING SIZE 8BITMIME DSN */
	const char *ehlo_tls;	/* after TLS, NULL: same as plaintext */
	int ehlo_5xx;		/* 502 to EHLO: HELO fallback */
	int tls;		/* 1: handshake after STARTTLS; 0: 502 */
	int tls_inject;		/* "220 go ahead\r\n250 fake\r\n" at once */
	int tls_garbage;	/* 220, then junk instead of TLS */
	int pipeline_strict;	/* answer MAIL only once DATA is buffered */
	int nopipe_strict;	/* count commands sent without waiting */
	const char *mail_reply;	/* NULL: "250 2.1.0 Ok" */
	const char *data_reply;	/* NULL: "354 End data with <CR><LF>.<CR><LF>" */
	const char *final_reply;/* NULL: "250 2.0.0 Ok: queued as TEST" */
	int drop_mid_data;	/* close after the first data bytes */
	int hang_final;		/* no reply to "." */
	int rcpt_max;		/* RCPTs taken per transaction, 0 = all */
	const char *rcpt_over;	/* the reply past rcpt_max */
	const char *rcpt_reply;	/* NULL: by local part (see pc_session) */
};

struct peer {
	struct peer_cfg cfg;
	char ip[32];
	uint16_t port;
	int lfd;
	pthread_t listener;
	pthread_t conns[PEER_MAX_CONNS];
	int nconns;		/* listener thread only, read after join */
	int stop;		/* __atomic */
	pthread_mutex_t mu;	/* guards the recorder below */
	int accepts;
	int messages;
	int violations;
	int tls_sessions;
	struct buf log;		/* "CONNECT", each command line, "TLS" */
	struct buf data;	/* the bytes after 354 of the last message */
};

struct pconn {
	struct peer *p;
	int fd;
	gnutls_session_t tls;
	struct buf in;
};

static gnutls_certificate_credentials_t peer_cred;
static uint16_t peer_port;

static int
peer_stopping(struct peer *p)
{
	return __atomic_load_n(&p->stop, __ATOMIC_SEQ_CST);
}

static void
peer_record(struct peer *p, const char *s, size_t n)
{
	pthread_mutex_lock(&p->mu);
	buf_append(&p->log, s, n);
	buf_append(&p->log, "\n", 1);
	pthread_mutex_unlock(&p->mu);
}

/* Sends s; after a 421 the peer closes, as a server does: -1 then. */
static int
pc_send(struct pconn *c, const char *s)
{
	size_t n = strlen(s), off = 0;
	int closing = strncmp(s, "421", 3) == 0;

	while (off < n) {
		ssize_t w;
		if (c->tls != NULL) {
			w = gnutls_record_send(c->tls, s + off, n - off);
			if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED)
				continue;
		} else {
			w = send(c->fd, s + off, n - off, MSG_NOSIGNAL);
		}
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	return closing ? -1 : 0;
}

/* Reads more input: 1 got bytes, 0 EOF, error, stop or deadline. */
static int
pc_fill(struct pconn *c, int64_t deadline)
{
	char tmp[16384];

	while (!peer_stopping(c->p) && time_mono_ms() < deadline) {
		ssize_t r;
		if (c->tls != NULL) {
			r = gnutls_record_recv(c->tls, tmp, sizeof tmp);
			if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
				continue;
		} else {
			r = recv(c->fd, tmp, sizeof tmp, 0);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
		}
		if (r <= 0)
			return 0;
		return buf_append(&c->in, tmp, (size_t)r) == 0;
	}
	return 0;
}

/* One line without its CRLF into line; -1 at EOF/stop. */
static int
pc_line(struct pconn *c, char *line, size_t size)
{
	int64_t deadline = time_mono_ms() + PEER_WAIT_MS;

	for (;;) {
		char *lf = c->in.len ? memchr(c->in.data, '\n', c->in.len) : NULL;
		if (lf != NULL) {
			size_t n = (size_t)(lf - c->in.data);
			size_t k = n > 0 && c->in.data[n - 1] == '\r' ? n - 1 : n;
			if (k >= size)
				k = size - 1;
			memcpy(line, c->in.data, k);
			line[k] = '\0';
			buf_consume(&c->in, n + 1);
			return (int)k;
		}
		if (!pc_fill(c, deadline))
			return -1;
	}
}

/* Waits until nothing happens but a stop (a hanging peer). */
static void
pc_hang(struct pconn *c)
{
	int64_t deadline = time_mono_ms() + PEER_WAIT_MS;

	while (pc_fill(c, deadline))
		buf_reset(&c->in);
}

static int
pc_starttls(struct pconn *c)
{
	gnutls_session_t s;
	int64_t deadline = time_mono_ms() + 10000;
	int rc;

	gnutls_init(&s, GNUTLS_SERVER);
	gnutls_set_default_priority(s);
	gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, peer_cred);
	gnutls_transport_set_int(s, c->fd);
	do {
		rc = gnutls_handshake(s);
	} while (rc < 0 && !gnutls_error_is_fatal(rc) &&
	    time_mono_ms() < deadline && !peer_stopping(c->p));
	if (rc < 0) {
		gnutls_deinit(s);
		return -1;
	}
	c->tls = s;
	return 0;
}

static int
has_prefix(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* The DATA phase: up to and including "\r\n.\r\n". 0, or -1 to close. */
static int
pc_data(struct pconn *c)
{
	struct peer *p = c->p;
	int64_t deadline = time_mono_ms() + PEER_WAIT_MS;
	size_t end = 0;

	for (;;) {
		if (p->cfg.drop_mid_data && c->in.len > 0)
			return -1;
		if (c->in.len >= 3 && memcmp(c->in.data, ".\r\n", 3) == 0) {
			end = 3;
			break;
		}
		char *e = c->in.len ? memmem(c->in.data, c->in.len,
		    "\r\n.\r\n", 5) : NULL;
		if (e != NULL) {
			end = (size_t)(e - c->in.data) + 5;
			break;
		}
		if (!pc_fill(c, deadline))
			return -1;
	}
	pthread_mutex_lock(&p->mu);
	buf_reset(&p->data);
	buf_append(&p->data, c->in.data, end);
	p->messages++;
	pthread_mutex_unlock(&p->mu);
	buf_consume(&c->in, end);
	if (p->cfg.hang_final) {
		pc_hang(c);
		return -1;
	}
	return pc_send(c, p->cfg.final_reply ? p->cfg.final_reply :
	    "250 2.0.0 Ok: queued as TEST\r\n");
}

static const char default_ehlo[] =
    "250-peer.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
    "250-8BITMIME\r\n250 DSN\r\n";

static void
pc_session(struct pconn *c)
{
	struct peer *p = c->p;
	const struct peer_cfg *cfg = &p->cfg;
	char line[4096];
	int rcpts = 0;

	if (cfg->hang_greeting) {
		pc_hang(c);
		return;
	}
	if (pc_send(c, cfg->greeting ? cfg->greeting : "220 peer ESMTP\r\n") < 0)
		return;
	for (int cmds = 0; cmds < 10000; cmds++) {
		if (pc_line(c, line, sizeof line) < 0)
			return;
		peer_record(p, line, strlen(line));
		if (cfg->nopipe_strict && c->in.len > 0 &&
		    (has_prefix(line, "MAIL") || has_prefix(line, "RCPT"))) {
			pthread_mutex_lock(&p->mu);
			p->violations++;
			pthread_mutex_unlock(&p->mu);
		}
		if (has_prefix(line, "EHLO")) {
			const char *r = cfg->ehlo ? cfg->ehlo : default_ehlo;
			if (c->tls != NULL && cfg->ehlo_tls != NULL)
				r = cfg->ehlo_tls;
			if (cfg->ehlo_5xx)
				r = "502 5.5.2 Error: command not recognized\r\n";
			if (pc_send(c, r) < 0)
				return;
		} else if (has_prefix(line, "HELO")) {
			if (pc_send(c, "250 peer.test\r\n") < 0)
				return;
		} else if (has_prefix(line, "STARTTLS")) {
			if (!cfg->tls || c->tls != NULL) {
				if (pc_send(c, "502 5.5.1 no TLS here\r\n") < 0)
					return;
				continue;
			}
			if (cfg->tls_inject) {
				if (pc_send(c, "220 go ahead\r\n250 fake\r\n") < 0)
					return;
			} else if (pc_send(c, "220 2.0.0 Ready to start TLS\r\n") < 0)
				return;
			if (cfg->tls_garbage) {
				pc_send(c, "this is not a TLS server hello at all\r\n");
				return;
			}
			buf_reset(&c->in);
			if (pc_starttls(c) < 0)
				return;
			peer_record(p, "TLS", 3);
			pthread_mutex_lock(&p->mu);
			p->tls_sessions++;
			pthread_mutex_unlock(&p->mu);
		} else if (has_prefix(line, "MAIL")) {
			if (cfg->pipeline_strict) {
				int64_t dl = time_mono_ms() + 3000;
				while (!(c->in.len >= 6 && memmem(c->in.data,
				    c->in.len, "DATA\r\n", 6) != NULL)) {
					if (!pc_fill(c, dl)) {
						pthread_mutex_lock(&p->mu);
						p->violations++;
						pthread_mutex_unlock(&p->mu);
						break;
					}
				}
			}
			rcpts = 0;
			if (pc_send(c, cfg->mail_reply ? cfg->mail_reply :
			    "250 2.1.0 Ok\r\n") < 0)
				return;
		} else if (has_prefix(line, "RCPT")) {
			char r[600];
			const char *a = strchr(line, '<');
			a = a ? a + 1 : line;
			if (cfg->rcpt_reply != NULL)
				snprintf(r, sizeof r, "%s", cfg->rcpt_reply);
			else if (cfg->rcpt_max > 0 && rcpts >= cfg->rcpt_max)
				snprintf(r, sizeof r, "%s", cfg->rcpt_over);
			else if (has_prefix(a, "bounce"))
				snprintf(r, sizeof r, "550 5.1.1 <%.*s: Recipient "
				    "address rejected\r\n",
				    (int)strcspn(a, " ") , a);
			else if (has_prefix(a, "defer"))
				snprintf(r, sizeof r, "451 4.3.0 <%.*s: try "
				    "again later\r\n", (int)strcspn(a, " "), a);
			else
				snprintf(r, sizeof r, "250 2.1.5 Ok\r\n");
			if (r[0] == '2')
				rcpts++;
			if (pc_send(c, r) < 0)
				return;
		} else if (has_prefix(line, "DATA")) {
			const char *r = cfg->data_reply ? cfg->data_reply :
			    "354 End data with <CR><LF>.<CR><LF>\r\n";
			if (pc_send(c, r) < 0)
				return;
			if (r[0] == '3' && pc_data(c) < 0)
				return;
		} else if (has_prefix(line, "RSET") || has_prefix(line, "NOOP")) {
			if (pc_send(c, "250 2.0.0 Ok\r\n") < 0)
				return;
		} else if (has_prefix(line, "QUIT")) {
			pc_send(c, "221 2.0.0 Bye\r\n");
			return;
		} else if (pc_send(c, "502 5.5.2 Error: command not "
		    "recognized\r\n") < 0) {
			return;
		}
	}
}

static void *
peer_conn_main(void *arg)
{
	struct pconn *c = arg;

	pc_session(c);
	if (c->tls != NULL) {
		gnutls_bye(c->tls, GNUTLS_SHUT_WR);
		gnutls_deinit(c->tls);
	}
	close(c->fd);
	buf_free(&c->in);
	free(c);
	return NULL;
}

static void *
peer_listen_main(void *arg)
{
	struct peer *p = arg;

	while (!peer_stopping(p)) {
		struct pollfd pfd = { .fd = p->lfd, .events = POLLIN };
		struct timeval tv = { 0, 100000 };
		struct pconn *c;
		int fd;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		fd = accept(p->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		if (p->nconns == PEER_MAX_CONNS) {
			close(fd);
			continue;
		}
		/* Short receive timeouts: the session checks stop often. */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		c = xcalloc(1, sizeof *c);
		c->p = p;
		c->fd = fd;
		buf_init(&c->in, PEER_IN_MAX);
		pthread_mutex_lock(&p->mu);
		p->accepts++;
		buf_puts(&p->log, "CONNECT\n");
		pthread_mutex_unlock(&p->mu);
		pthread_create(&p->conns[p->nconns++], NULL, peer_conn_main, c);
	}
	return NULL;
}

/* Listens on ip:peer_port (peer_port chosen by the first peer). */
static struct peer *
peer_start(const char *ip, const struct peer_cfg *cfg)
{
	struct peer *p = xcalloc(1, sizeof *p);
	struct sockaddr_in sin;
	socklen_t slen = sizeof sin;
	int one = 1;

	if (cfg != NULL)
		p->cfg = *cfg;
	str_copy(p->ip, ip, sizeof p->ip);
	pthread_mutex_init(&p->mu, NULL);
	buf_init(&p->log, 1 << 20);
	buf_init(&p->data, 4 << 20);
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(peer_port);
	inet_pton(AF_INET, ip, &sin.sin_addr);
	if (bind(p->lfd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
	    listen(p->lfd, 16) < 0) {
		fprintf(stderr, "peer %s:%u: %s\n", ip, peer_port, strerror(errno));
		abort();
	}
	getsockname(p->lfd, (struct sockaddr *)&sin, &slen);
	if (peer_port == 0)
		peer_port = ntohs(sin.sin_port);
	p->port = peer_port;
	pthread_create(&p->listener, NULL, peer_listen_main, p);
	return p;
}

/* Stops the peer and waits for its threads; the recorder stays. */
static void
peer_stop(struct peer *p)
{
	__atomic_store_n(&p->stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(p->listener, NULL);
	for (int i = 0; i < p->nconns; i++)
		pthread_join(p->conns[i], NULL);
	close(p->lfd);
}

static void
peer_free(struct peer *p)
{
	if (!peer_stopping(p))
		peer_stop(p);
	buf_free(&p->log);
	buf_free(&p->data);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* Does the peer's log hold s? (Call after peer_stop, or racy reads.) */
static int
peer_saw(struct peer *p, const char *s)
{
	int r;

	pthread_mutex_lock(&p->mu);
	r = p->log.len > 0 && strstr(p->log.data, s) != NULL;
	pthread_mutex_unlock(&p->mu);
	return r;
}

static void
make_peer_cred(void)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	unsigned char serial[4] = { 1, 2, 3, 4 };
	time_t now = time(NULL);

	gnutls_x509_privkey_init(&key);
	gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
	    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
	gnutls_x509_crt_init(&crt);
	gnutls_x509_crt_set_version(crt, 3);
	gnutls_x509_crt_set_serial(crt, serial, sizeof serial);
	gnutls_x509_crt_set_activation_time(crt, now - 3600);
	gnutls_x509_crt_set_expiration_time(crt, now + 86400);
	gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
	    "peer.test", 9);
	gnutls_x509_crt_set_key(crt, key);
	gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0);
	gnutls_certificate_allocate_credentials(&peer_cred);
	if (gnutls_certificate_set_x509_key(peer_cred, &crt, 1, key) < 0)
		abort();
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
}

/* ------------------------------------------------------------------ */
/* The DNS server                                                     */
/* ------------------------------------------------------------------ */

static pid_t testns_pid = -1;
static struct dns_resolver *resolver;

static uint16_t
free_udp_port(void)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof sin;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	uint16_t port = 0;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &slen) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/* Is a UDP port taken on 127.0.0.1 (ldns-testns bound it)? */
static int
udp_port_taken(uint16_t port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_DGRAM, 0), taken;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	taken = bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0;
	close(fd);
	return taken;
}

static const char relay_data_file[] = "tests/integration/dns/relay.data";

static void
dns_start(void)
{
	struct stat stt;
	struct dns_server_addr sv;
	struct dns_options o;
	char err[200], portstr[16];
	uint16_t port;
	pid_t pid;

	if (stat(relay_data_file, &stt) < 0 ||
	    system("command -v ldns-testns >/dev/null 2>&1") != 0) {
		printf("\nnote: MX tests skipped (no ldns-testns or %s)\n",
		    relay_data_file);
		return;
	}
	port = free_udp_port();
	snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
	pid = fork();
	if (pid == 0) {
		int dn = open("/dev/null", O_WRONLY);
		dup2(dn, 1);
		dup2(dn, 2);
		execlp("ldns-testns", "ldns-testns", "-p", portstr,
		    relay_data_file, (char *)NULL);
		_exit(127);
	}
	if (pid < 0)
		return;
	testns_pid = pid;
	for (int i = 0; i < 100 && !udp_port_taken(port); i++)
		usleep(50000);
	dns_options_default(&o);
	o.use_ipv6 = 0;
	o.try_timeout_ms = 500;
	o.total_timeout_ms = 3000;
	str_copy(sv.addr, "127.0.0.1", sizeof sv.addr);
	sv.port = port;
	resolver = dns_resolver_new_opts(&sv, 1, &o, err, sizeof err);
	if (resolver == NULL)
		fprintf(stderr, "resolver: %s\n", err);
}

static void
dns_stop(void)
{
	dns_resolver_free(&resolver);
	if (testns_pid > 0) {
		kill(testns_pid, SIGTERM);
		waitpid(testns_pid, NULL, 0);
		testns_pid = -1;
	}
}

/* ------------------------------------------------------------------ */
/* Helpers                                                            */
/* ------------------------------------------------------------------ */

static void
test_settings(struct relay_settings *st)
{
	relay_settings_default(st);
	st->helo_name = "client.test";
	st->smtp_port = peer_port;
	st->tls_outbound = RELAY_TLS_NONE;
	st->connect_timeout_ms = 2000;
	st->greeting_timeout_ms = 5000;
	st->command_timeout_ms = 5000;
	st->data_init_timeout_ms = 5000;
	st->data_block_timeout_ms = 5000;
	st->data_final_timeout_ms = 5000;
	st->dest_wait_ms = 2000;
}

static struct relay_ctx *
ctx_with(const struct relay_settings *st)
{
	char err[200];
	struct relay_ctx *ctx = relay_ctx_new(st, resolver, err, sizeof err);

	if (ctx == NULL)
		fprintf(stderr, "relay_ctx_new: %s\n", err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
	return ctx;
}

static struct relay_ctx *
ctx_tls(int level)
{
	struct relay_settings st;

	test_settings(&st);
	st.tls_outbound = level;
	return ctx_with(&st);
}

static const char simple_body[] =
    "From: a@client.test\r\nTo: b@x.test\r\nSubject: hi\r\n\r\nhello\r\n";

/* Bodies are read through a reader in pieces of MSG_PIECE bytes, so
 * that the encoder's state (line ends, dot-stuffing, folding) crosses
 * piece boundaries everywhere; readers are kept (reachable) to the end
 * (the list is shared by the threads of the concurrent test). */
#define MSG_PIECE 5
static struct msg_reader {
	struct body_reader r;
	struct body_mem m;
	struct msg_reader *next;
} *msg_readers;
static pthread_mutex_t msg_readers_lock = PTHREAD_MUTEX_INITIALIZER;

static void
msg_init(struct relay_msg *m, const char *body)
{
	struct msg_reader *mr = xcalloc(1, sizeof *mr);

	body_reader_mem(&mr->r, &mr->m, body, strlen(body), MSG_PIECE);
	pthread_mutex_lock(&msg_readers_lock);
	mr->next = msg_readers;
	msg_readers = mr;
	pthread_mutex_unlock(&msg_readers_lock);
	memset(m, 0, sizeof *m);
	m->sender = "sender@client.test";
	m->body = &mr->r;
}

/* Delivers to the peer at ip through a fixed destination "[ip]". */
static void
deliver_to(struct relay_ctx *ctx, const char *ip, const struct relay_msg *m,
    const struct relay_rcpt *r, size_t n, struct relay_result *res)
{
	char dest[64];

	snprintf(dest, sizeof dest, "[%s]", ip);
	relay_deliver(ctx, "x.test", dest, peer_port, m, r, n, res);
}

static void
show(const struct relay_result *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (getenv("RELAY_TEST_VERBOSE"))
			fprintf(stderr, "\n  [%zu] %s %s %s (%s)\n", i,
			    relay_status_str(r[i].status), r[i].dsn, r[i].relay,
			    r[i].diag);
}

/* One recipient, default message, to a peer with cfg; returns the result
 * and leaves the stopped peer in *pp (peer_free it). */
static struct relay_result
one_shot(struct relay_ctx *ctx, const char *ip, const struct peer_cfg *cfg,
    const struct relay_msg *m, struct peer **pp)
{
	struct relay_rcpt r = { "user@x.test", NULL, 0 };
	struct relay_result res;
	struct relay_msg dm;
	struct peer *p = peer_start(ip, cfg);

	if (m == NULL) {
		msg_init(&dm, simple_body);
		m = &dm;
	}
	memset(&res, 0, sizeof res);
	deliver_to(ctx, ip, m, &r, 1, &res);
	show(&res, 1);
	peer_stop(p);
	*pp = p;
	return res;
}

/* ------------------------------------------------------------------ */
/* relay_proto                                                        */
/* ------------------------------------------------------------------ */

static void
test_reply_parse(void)
{
	static const struct {
		const char *in;
		int rc;
		int code;
		const char *esc;
		const char *text;
		size_t rest;	/* bytes left after DONE */
	} t[] = {
		{ "250 ok\r\n", RELAY_REPLY_DONE, 250, "", "ok", 0 },
		{ "250\r\n", RELAY_REPLY_DONE, 250, "", "", 0 },
		{ "250-a\r\n250-b\r\n250 c\r\n", RELAY_REPLY_DONE, 250, "", "a\nb\nc", 0 },
		{ "550 5.1.1 <x@y>: no\r\n", RELAY_REPLY_DONE, 550, "5.1.1", "5.1.1 <x@y>: no", 0 },
		{ "451 4.3.0\r\n", RELAY_REPLY_DONE, 451, "4.3.0", "4.3.0", 0 },
		{ "550 4.1.1 wrong class\r\n", RELAY_REPLY_DONE, 550, "", "4.1.1 wrong class", 0 },
		{ "550 5.1.1234 long\r\n", RELAY_REPLY_DONE, 550, "", "5.1.1234 long", 0 },
		{ "250 ok\n", RELAY_REPLY_DONE, 250, "", "ok", 0 },
		{ "250 ok\r\n354 go\r\n", RELAY_REPLY_DONE, 250, "", "ok", 8 },
		{ "250 a\x01\xff\r\n", RELAY_REPLY_DONE, 250, "", "a??", 0 },
		{ "250-a\r\n", RELAY_REPLY_MORE, 250, "", "a", 0 },
		{ "250 partial", RELAY_REPLY_MORE, 0, "", "", 0 },
		{ "", RELAY_REPLY_MORE, 0, "", "", 0 },
		{ "25 ok\r\n", RELAY_REPLY_ERROR, 0, "", "", 0 },
		{ "2x0 ok\r\n", RELAY_REPLY_ERROR, 0, "", "", 0 },
		{ "150 ok\r\n", RELAY_REPLY_ERROR, 0, "", "", 0 },
		{ "650 ok\r\n", RELAY_REPLY_ERROR, 0, "", "", 0 },
		{ "260 ok\r\n", RELAY_REPLY_ERROR, 0, "", "", 0 },
		{ "250x\r\n", RELAY_REPLY_ERROR, 0, "", "", 0 },
		{ "250-a\r\n251 b\r\n", RELAY_REPLY_ERROR, 250, "", "a", 0 },
		{ "\r\n", RELAY_REPLY_ERROR, 0, "", "", 0 },
		{ "hello world\r\n", RELAY_REPLY_ERROR, 0, "", "", 0 },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct relay_reply r;
		size_t len = strlen(t[i].in), used = 0, off = 0;
		int rc;

		/* In one block. */
		relay_reply_init(&r);
		rc = relay_reply_feed(&r, t[i].in, len, &used);
		if (rc != t[i].rc)
			fprintf(stderr, "\n  case %zu: rc %d\n", i, rc);
		CU_ASSERT_EQUAL(rc, t[i].rc);
		if (rc == RELAY_REPLY_DONE) {
			CU_ASSERT_EQUAL(r.code, t[i].code);
			CU_ASSERT_STRING_EQUAL(r.esc, t[i].esc);
			CU_ASSERT_STRING_EQUAL(r.text, t[i].text);
			CU_ASSERT_EQUAL(len - used, t[i].rest);
		}
		/* One byte at a time, keeping what was not consumed. */
		relay_reply_init(&r);
		rc = RELAY_REPLY_MORE;
		char pend[64];
		size_t plen = 0;
		while (off < len && rc == RELAY_REPLY_MORE) {
			pend[plen++] = t[i].in[off++];
			rc = relay_reply_feed(&r, pend, plen, &used);
			memmove(pend, pend + used, plen - used);
			plen -= used;
		}
		CU_ASSERT_EQUAL(rc, t[i].rc);
		if (rc == RELAY_REPLY_DONE) {
			CU_ASSERT_EQUAL(r.code, t[i].code);
			CU_ASSERT_STRING_EQUAL(r.text, t[i].text);
			CU_ASSERT_EQUAL(len - off, t[i].rest);
		}
	}
}

static void
test_reply_limits(void)
{
	struct relay_reply r;
	struct buf b;
	size_t used;

	/* A line of exactly RELAY_REPLY_LINE_MAX is fine, one more is not. */
	buf_init(&b, 1 << 20);
	buf_puts(&b, "250 ");
	for (size_t i = 4; i < RELAY_REPLY_LINE_MAX; i++)
		buf_append(&b, "x", 1);
	buf_puts(&b, "\r\n");
	relay_reply_init(&r);
	CU_ASSERT_EQUAL(relay_reply_feed(&r, b.data, b.len, &used), RELAY_REPLY_DONE);
	buf_reset(&b);
	buf_puts(&b, "250 ");
	for (size_t i = 4; i < RELAY_REPLY_LINE_MAX + 1; i++)
		buf_append(&b, "x", 1);
	buf_puts(&b, "\r\n");
	relay_reply_init(&r);
	CU_ASSERT_EQUAL(relay_reply_feed(&r, b.data, b.len, &used), RELAY_REPLY_ERROR);
	/* No line end within the limit: an error without waiting for more. */
	buf_reset(&b);
	for (size_t i = 0; i < RELAY_REPLY_LINE_MAX + 10; i++)
		buf_append(&b, "2", 1);
	relay_reply_init(&r);
	CU_ASSERT_EQUAL(relay_reply_feed(&r, b.data, b.len, &used), RELAY_REPLY_ERROR);
	/* 100 lines are fine, 101 are not. */
	for (int lines = 100; lines <= 101; lines++) {
		buf_reset(&b);
		for (int i = 0; i < lines - 1; i++)
			buf_puts(&b, "250-line\r\n");
		buf_puts(&b, "250 end\r\n");
		relay_reply_init(&r);
		CU_ASSERT_EQUAL(relay_reply_feed(&r, b.data, b.len, &used),
		    lines == 100 ? RELAY_REPLY_DONE : RELAY_REPLY_ERROR);
	}
	buf_free(&b);
}

static void
test_reply_oneline(void)
{
	struct relay_reply r;
	char out[128], small[12];
	size_t used;
	const char *in = "550-5.1.1 The account does not\r\n"
	    "550-5.1.1 exist.\r\n550 5.1.1 Bye\r\n";

	relay_reply_init(&r);
	CU_ASSERT_EQUAL(relay_reply_feed(&r, in, strlen(in), &used), RELAY_REPLY_DONE);
	CU_ASSERT_STRING_EQUAL(relay_reply_oneline(&r, out, sizeof out),
	    "550 5.1.1 The account does not exist. Bye");
	relay_reply_oneline(&r, small, sizeof small);
	CU_ASSERT_EQUAL(strlen(small), sizeof small - 1);
}

static void
test_caps(void)
{
	struct relay_reply r;
	struct relay_caps caps;
	size_t used;
	const char *in = "250-peer.test PIPELINING SIZE 5 (greeting text)\r\n"
	    "250-pipelining\r\n250-SIZE 1000\r\n250-8BITMIME\r\n"
	    "250-SMTPUTF8\r\n250-DSN\r\n250-STARTTLS\r\n250-AUTH PLAIN\r\n"
	    "250 ENHANCEDSTATUSCODES\r\n";

	relay_reply_init(&r);
	CU_ASSERT_EQUAL(relay_reply_feed(&r, in, strlen(in), &used), RELAY_REPLY_DONE);
	relay_caps_parse(&r, &caps);
	CU_ASSERT_EQUAL(caps.flags, RELAY_CAP_PIPELINING | RELAY_CAP_SIZE |
	    RELAY_CAP_8BITMIME | RELAY_CAP_SMTPUTF8 | RELAY_CAP_DSN |
	    RELAY_CAP_STARTTLS);
	CU_ASSERT_EQUAL(caps.size_max, 1000);
	in = "250-peer.test\r\n250 SIZE\r\n";
	relay_reply_init(&r);
	relay_reply_feed(&r, in, strlen(in), &used);
	relay_caps_parse(&r, &caps);
	CU_ASSERT_EQUAL(caps.flags, RELAY_CAP_SIZE);
	CU_ASSERT_EQUAL(caps.size_max, 0);
	/* RFC 8689: REQUIRETLS. */
	in = "250-peer.test\r\n250-REQUIRETLS\r\n250 STARTTLS\r\n";
	relay_reply_init(&r);
	relay_reply_feed(&r, in, strlen(in), &used);
	relay_caps_parse(&r, &caps);
	CU_ASSERT_EQUAL(caps.flags, RELAY_CAP_REQUIRETLS | RELAY_CAP_STARTTLS);
	/* The greeting line alone: no capabilities even if it names some. */
	in = "250 peer.test STARTTLS\r\n";
	relay_reply_init(&r);
	relay_reply_feed(&r, in, strlen(in), &used);
	relay_caps_parse(&r, &caps);
	CU_ASSERT_EQUAL(caps.flags, 0);
}

/* RFC 8689 5: the TLS-Required header field, and hostile headers. */
static void
test_tls_required_header(void)
{
	static const struct {
		const char *msg;
		int optional;
	} cases[] = {
		{ "TLS-Required: No\r\n\r\nbody\r\n", 1 },
		{ "Subject: x\r\ntls-required:no\r\n\r\n", 1 },
		{ "Subject: x\nTLS-Required :  NO \n\n", 1 },
		{ "TLS-Required:\r\n No\r\n\r\n", 1 },		/* folded */
		{ "TLS-Required: Yes\r\n\r\n", 0 },
		{ "TLS-Required: No thanks\r\n\r\n", 0 },
		{ "X-TLS-Required: No\r\n\r\n", 0 },
		{ "Subject: TLS-Required: No\r\n\r\n", 0 },
		{ "Subject: x\r\n TLS-Required: No\r\n\r\n", 0 },	/* a continuation */
		{ "Subject: x\r\n\r\nTLS-Required: No\r\n", 0 },	/* in the body */
		{ "\r\nTLS-Required: No\r\n", 0 },
		{ "TLS-Required: No", 1 },				/* no line end */
		{ "TLS-Required", 0 },
		{ ":", 0 },
		{ "", 0 },
	};
	char *big;
	size_t n = RELAY_HEADER_SCAN_MAX + 100;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		CU_ASSERT_EQUAL(relay_header_tls_optional(cases[i].msg,
		    strlen(cases[i].msg)), cases[i].optional);
	/* Past the scan bound it is not looked for. */
	big = xmalloc(n);
	memset(big, 'x', n);
	memcpy(big, "X-Big: ", 7);
	memcpy(big + RELAY_HEADER_SCAN_MAX + 10, "\nTLS-Required: No\n", 19);
	CU_ASSERT_EQUAL(relay_header_tls_optional(big, n), 0);
	free(big);
}

static void
encode_all(const char *in, size_t len, size_t piece, struct buf *out)
{
	struct relay_data_enc e;

	relay_data_enc_init(&e);
	for (size_t off = 0; off < len; off += piece) {
		size_t n = len - off < piece ? len - off : piece;
		CU_ASSERT_EQUAL(relay_data_enc_feed(&e, in + off, n, out), 0);
	}
	CU_ASSERT_EQUAL(relay_data_enc_finish(&e, out), 0);
}

static void
test_data_encode(void)
{
	static const struct {
		const char *in;
		const char *out;
	} t[] = {
		{ "", ".\r\n" },
		{ "a\r\n", "a\r\n.\r\n" },
		{ "a", "a\r\n.\r\n" },
		{ ".\r\n", "..\r\n.\r\n" },
		{ "H: v\r\n\r\n.x\r\n..y\r\nz.\r\n", "H: v\r\n\r\n..x\r\n...y\r\nz.\r\n.\r\n" },
		{ "a\nb\n", "a\r\nb\r\n.\r\n" },
		{ "a\rb\r", "a\r\nb\r\n.\r\n" },
		{ "a\r\r\nb", "a\r\n\r\nb\r\n.\r\n" },
		{ "\n.\n", "\r\n..\r\n.\r\n" },
		{ "x\r\n.", "x\r\n..\r\n.\r\n" },
	};

	/* byte by byte, in odd pieces, whole (the plain runs copied at once) */
	static const size_t pieces[] = { 1, 3, 1000 };

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
			size_t piece = pieces[k];
			struct buf out;
			buf_init(&out, 1 << 16);
			encode_all(t[i].in, strlen(t[i].in), piece, &out);
			if (strcmp(out.data, t[i].out) != 0)
				fprintf(stderr, "\n  case %zu piece %zu: [%s]\n", i,
				    piece, out.data);
			CU_ASSERT_STRING_EQUAL(out.data, t[i].out);
			buf_free(&out);
		}
	}
}

/* Checks every output line: CRLF-ended, at most 998 octets. */
static int
lines_ok(const char *s, size_t n)
{
	size_t start = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' && (i + 1 >= n || s[i + 1] != '\n'))
			return 0;
		if (s[i] == '\n') {
			if (i == 0 || s[i - 1] != '\r' || i - 1 - start > 998)
				return 0;
			start = i + 1;
		}
	}
	return start == n;
}

static void
test_data_fold(void)
{
	struct buf in, out;
	size_t piece;

	/* A 2500-octet header line and a 2500-octet body line starting
	 * with a dot. */
	buf_init(&in, 1 << 16);
	buf_puts(&in, "X-Long: ");
	for (int i = 0; i < 2492; i++)
		buf_append(&in, "h", 1);
	buf_puts(&in, "\r\n\r\n");
	for (int i = 0; i < 2500; i++)
		buf_append(&in, i % 998 == 0 ? "." : "b", 1);
	buf_puts(&in, "\r\n");
	for (piece = 1; piece <= 4096; piece *= 64) {
		buf_init(&out, 1 << 16);
		encode_all(in.data, in.len, piece, &out);
		CU_ASSERT(lines_ok(out.data, out.len));
		/* Header: 998, then " " + 997, then " " + rest. */
		CU_ASSERT_EQUAL(memcmp(out.data + 998, "\r\n h", 4), 0);
		CU_ASSERT_EQUAL(memcmp(out.data + 998 + 2 + 998, "\r\n h", 4), 0);
		/* Body: the first line starts with a doubled dot. */
		const char *body = strstr(out.data, "\r\n\r\n") + 4;
		CU_ASSERT_EQUAL(memcmp(body, "..b", 3), 0);
		CU_ASSERT_EQUAL(memcmp(body + 998, "\r\nb", 3), 0);
		buf_free(&out);
	}
	buf_free(&in);
}

/* Random messages of the bytes that matter (CR, LF, '.', long and empty
 * lines, a header section or none): whole, in pieces and byte by byte
 * (which never takes the whole-line path) the output is the same. */
static void
test_data_encode_paths(void)
{
	static const char alphabet[] = "\r\n..ab :\t";
	unsigned seed = 77;

	for (int round = 0; round < 400; round++) {
		struct buf in, whole, pieces, bytes;
		size_t nlines = 1 + (size_t)(rand_r(&seed) % 40);

		buf_init(&in, 1 << 20);
		for (size_t l = 0; l < nlines; l++) {
			unsigned kind = (unsigned)rand_r(&seed) % 8;
			size_t len = kind == 0 ? 0 : kind == 1 ? 996 + (size_t)(rand_r(&seed) % 5) :
			    (size_t)(rand_r(&seed) % 80);

			for (size_t k = 0; k < len; k++) {
				/* long lines of plain bytes, at the fold's edge */
				char c = kind != 1 && rand_r(&seed) % 6 == 0 ?
				    alphabet[rand_r(&seed) % (sizeof alphabet - 1)] : 'x';
				if (k == 0 && rand_r(&seed) % 3 == 0)
					c = '.';	/* stuffed */
				buf_append(&in, &c, 1);
			}
			buf_puts(&in, rand_r(&seed) % 10 == 0 ? "\n" : "\r\n");
		}
		buf_init(&whole, 1 << 21);
		buf_init(&pieces, 1 << 21);
		buf_init(&bytes, 1 << 21);
		encode_all(in.data, in.len, in.len + 1, &whole);
		encode_all(in.data, in.len, 1 + (size_t)(round % 97), &pieces);
		encode_all(in.data, in.len, 1, &bytes);
		CU_ASSERT(whole.len == bytes.len && memcmp(whole.data, bytes.data, bytes.len) == 0);
		CU_ASSERT(pieces.len == bytes.len && memcmp(pieces.data, bytes.data, bytes.len) == 0);
		CU_ASSERT(lines_ok(whole.data, whole.len));
		buf_free(&in);
		buf_free(&whole);
		buf_free(&pieces);
		buf_free(&bytes);
	}
}

static void
test_xtext_addr(void)
{
	char out[64];
	int eight;

	CU_ASSERT_EQUAL(xtext_encode("a+b=c d\r\n", out, sizeof out), 0);
	CU_ASSERT_STRING_EQUAL(out, "a+2Bb+3Dc+20d+0D+0A");
	CU_ASSERT_EQUAL(xtext_encode("abcdef", out, 4), -1);
	CU_ASSERT_STRING_EQUAL(out, "abc");	/* a prefix, never unterminated */
	CU_ASSERT(relay_addr_ok("a@b.test", 100, &eight));
	CU_ASSERT_EQUAL(eight, 0);
	CU_ASSERT(relay_addr_ok("j\xc3\xb6rg@b.test", 100, &eight));
	CU_ASSERT_EQUAL(eight, 1);
	CU_ASSERT(!relay_addr_ok("a@b\r\nRCPT TO:<c@d>", 100, NULL));
	CU_ASSERT(!relay_addr_ok("a@b\n", 100, NULL));
	CU_ASSERT(!relay_addr_ok("a>@b SIZE=1", 100, NULL));
	CU_ASSERT(!relay_addr_ok("a\x7f@b", 100, NULL));
	CU_ASSERT(!relay_addr_ok("abcdef", 5, NULL));
	CU_ASSERT(relay_addr_ok("abcde", 5, NULL));
	CU_ASSERT(!relay_addr_ok(NULL, 5, NULL));
}

/* ------------------------------------------------------------------ */
/* Deliveries                                                         */
/* ------------------------------------------------------------------ */

static void
test_pipelined_exact_bytes(void)
{
	struct peer_cfg cfg = { .pipeline_strict = 1 };
	struct relay_ctx *ctx = ctx_tls(RELAY_TLS_NONE);
	struct peer *p = peer_start("127.0.0.2", &cfg);
	struct relay_rcpt r[3] = {
		{ "one@x.test", "rfc822;one+tag=x@x.test", 4 | 8 },
		{ "two@x.test", NULL, 1 },
		/* RFC 6533: its 7-bit form, "\x{HEX}" per code point */
		{ "three@x.test", "utf-8;tr\xc3\xa9s+\xe2\x82\xac\\@x.test", 0 },
	};
	struct relay_result res[3];
	struct relay_msg m;
	struct buf body, want;
	char mailcmd[200];

	buf_init(&body, 1 << 16);
	buf_init(&want, 1 << 16);
	buf_puts(&body, "Subject: t\r\n\r\n.dot line\r\nbare\nlf\rcr\r\n");
	for (int i = 0; i < 1200; i++)
		buf_append(&body, "L", 1);
	buf_puts(&body, "\r\n.\r\nend");
	buf_puts(&want, "Subject: t\r\n\r\n..dot line\r\nbare\r\nlf\r\ncr\r\n");
	for (int i = 0; i < 1200; i++) {
		if (i == 998)
			buf_puts(&want, "\r\n");
		buf_append(&want, "L", 1);
	}
	buf_puts(&want, "\r\n..\r\nend\r\n.\r\n");

	msg_init(&m, body.data);
	m.eightbit = 1;
	m.ret = 2;
	m.envid = "env id+1";
	deliver_to(ctx, "127.0.0.2", &m, r, 3, res);
	show(res, 3);
	peer_stop(p);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(res[i].status, RELAY_SENT);
		CU_ASSERT_STRING_EQUAL(res[i].dsn, "2.0.0");
		CU_ASSERT_STRING_EQUAL(res[i].diag, "250 2.0.0 Ok: queued as TEST");
	}
	snprintf(mailcmd, sizeof mailcmd, "127.0.0.2[127.0.0.2]:%u", peer_port);
	CU_ASSERT_STRING_EQUAL(res[0].relay, mailcmd);
	CU_ASSERT_EQUAL(p->violations, 0);
	CU_ASSERT_EQUAL(p->messages, 1);
	CU_ASSERT_EQUAL(p->data.len, want.len);
	CU_ASSERT(p->data.len == want.len &&
	    memcmp(p->data.data, want.data, want.len) == 0);
	CU_ASSERT(lines_ok(p->data.data, p->data.len));
	CU_ASSERT(peer_saw(p, "EHLO client.test\n"));
	snprintf(mailcmd, sizeof mailcmd, "MAIL FROM:<sender@client.test> "
	    "SIZE=%llu BODY=8BITMIME RET=HDRS ENVID=env+20id+2B1\n",
	    (unsigned long long)m.body->size);
	CU_ASSERT(peer_saw(p, mailcmd));
	CU_ASSERT(peer_saw(p, "RCPT TO:<one@x.test> NOTIFY=FAILURE,DELAY "
	    "ORCPT=rfc822;one+2Btag+3Dx@x.test\n"));
	CU_ASSERT(peer_saw(p, "RCPT TO:<two@x.test> NOTIFY=NEVER\n"));
	CU_ASSERT(peer_saw(p, "RCPT TO:<three@x.test> "
	    "ORCPT=utf-8;tr\\x{E9}s\\x{2B}\\x{20AC}\\x{5C}@x.test\n"));
	/* The connection was kept for reuse, not ended with QUIT. */
	CU_ASSERT(!peer_saw(p, "QUIT"));
	CU_ASSERT_EQUAL(relay_ctx_idle_count(ctx), 1);
	relay_ctx_free(&ctx);
	CU_ASSERT_PTR_NULL(ctx);
	peer_free(p);
	buf_free(&body);
	buf_free(&want);
}

static void
test_no_pipelining(void)
{
	struct peer_cfg cfg = { .nopipe_strict = 1,
	    .ehlo = "250-peer.test\r\n250 8BITMIME\r\n" };
	struct relay_ctx *ctx = ctx_tls(RELAY_TLS_NONE);
	struct peer *p = peer_start("127.0.0.2", &cfg);
	struct relay_rcpt r[3] = { { "a@x.test", "rfc822;a@x.test", 2 },
	    { "b@x.test", NULL, 0 }, { "c@x.test", NULL, 0 } };
	struct relay_result res[3];
	struct relay_msg m;

	msg_init(&m, simple_body);
	m.ret = 1;
	m.envid = "id";
	deliver_to(ctx, "127.0.0.2", &m, r, 3, res);
	show(res, 3);
	peer_stop(p);
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(res[i].status, RELAY_SENT);
	CU_ASSERT_EQUAL(p->violations, 0);
	/* No DSN or SIZE offered: plain commands. */
	CU_ASSERT(peer_saw(p, "MAIL FROM:<sender@client.test>\n"));
	CU_ASSERT(peer_saw(p, "RCPT TO:<a@x.test>\n"));
	CU_ASSERT_EQUAL(p->data.len, strlen(simple_body) + 3);
	relay_ctx_free(&ctx);
	peer_free(p);
}

/* A reader that fails after left pieces of 4096 bytes. */
struct failing_body {
	const char *p;
	size_t len, off;
	int left;
};

static int
failing_next(void *arg, const char **p, size_t *n)
{
	struct failing_body *f = arg;

	if (f->left-- <= 0)
		return -1;
	*n = f->len - f->off < 4096 ? f->len - f->off : 4096;
	*p = f->p + f->off;
	f->off += *n;
	return 0;
}

static int
failing_rewind(void *arg)
{
	struct failing_body *f = arg;

	f->off = 0;
	return f->left > 0 ? 0 : -1;
}

/* A message that cannot be read to its end is never delivered half: no
 * final ".", the connection dropped, the recipients deferred; one that
 * cannot be read at all is not sent. */
static void
test_body_unreadable(void)
{
	struct relay_ctx *ctx = ctx_tls(RELAY_TLS_NONE);
	struct peer *p = peer_start("127.0.0.2", NULL);
	struct relay_rcpt r = { "a@x.test", NULL, 0 };
	struct relay_result res;
	struct relay_msg m;
	struct buf body;
	struct failing_body f;
	struct body_reader rd = { failing_next, failing_rewind, &f, 0 };

	buf_init(&body, 1 << 20);
	buf_puts(&body, "Subject: big\r\n\r\n");
	while (body.len < 200 * 1024)
		buf_puts(&body, "0123456789012345678901234567890123456789\r\n");
	memset(&f, 0, sizeof f);
	f.p = body.data;
	f.len = body.len;
	f.left = 10;
	rd.size = body.len;
	msg_init(&m, simple_body);
	m.body = &rd;
	deliver_to(ctx, "127.0.0.2", &m, &r, 1, &res);
	show(&res, 1);
	CU_ASSERT_EQUAL(res.status, RELAY_DEFERRED);
	CU_ASSERT_STRING_EQUAL(res.dsn, "4.3.0");
	CU_ASSERT_STRING_EQUAL(res.diag, "cannot read the message from the queue");
	/* SMTPUTF8 needs the header section first: nothing is sent. */
	f.left = 0;
	m.smtputf8 = 1;
	deliver_to(ctx, "127.0.0.2", &m, &r, 1, &res);
	CU_ASSERT_EQUAL(res.status, RELAY_DEFERRED);
	CU_ASSERT_STRING_EQUAL(res.dsn, "4.3.0");
	peer_stop(p);
	CU_ASSERT_EQUAL(p->messages, 0);
	CU_ASSERT_EQUAL(p->accepts, 1);
	relay_ctx_free(&ctx);
	peer_free(p);
	buf_free(&body);
}

static void
test_helo_fallback(void)
{
	struct peer_cfg cfg = { .ehlo_5xx = 1 };
	struct relay_ctx *ctx = ctx_tls(RELAY_TLS_MAY);
	struct relay_msg m;
	struct peer *p;
	struct relay_result res;

	msg_init(&m, simple_body);
	m.eightbit = 1;
	res = one_shot(ctx, "127.0.0.2", &cfg, &m, &p);
	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	CU_ASSERT(peer_saw(p, "HELO client.test\n"));
	CU_ASSERT(peer_saw(p, "MAIL FROM:<sender@client.test>\n"));
	CU_ASSERT(!peer_saw(p, "STARTTLS"));
	relay_ctx_free(&ctx);
	peer_free(p);
}

static void
test_partial_rcpt(void)
{
	static const int strict[2] = { 1, 0 };

	for (int k = 0; k < 2; k++) {
		struct peer_cfg cfg = { .pipeline_strict = strict[k] };
		struct relay_ctx *ctx = ctx_tls(RELAY_TLS_NONE);
		struct peer *p;
		struct relay_rcpt r[3] = { { "bounce1@x.test", NULL, 0 },
		    { "defer1@x.test", NULL, 0 }, { "ok1@x.test", NULL, 0 } };
		struct relay_result res[3];
		struct relay_msg m;

		if (!strict[k])
			cfg.ehlo = "250-peer.test\r\n250 SIZE\r\n";
		p = peer_start("127.0.0.3", &cfg);
		msg_init(&m, simple_body);
		deliver_to(ctx, "127.0.0.3", &m, r, 3, res);
		show(res, 3);
		peer_stop(p);
		CU_ASSERT_EQUAL(res[0].status, RELAY_BOUNCED);
		CU_ASSERT_STRING_EQUAL(res[0].dsn, "5.1.1");
		CU_ASSERT_STRING_EQUAL(res[0].diag, "host 127.0.0.3[127.0.0.3] "
		    "said: 550 5.1.1 <bounce1@x.test>: Recipient address "
		    "rejected (in reply to RCPT TO command)");
		CU_ASSERT_EQUAL(res[1].status, RELAY_DEFERRED);
		CU_ASSERT_STRING_EQUAL(res[1].dsn, "4.3.0");
		CU_ASSERT_EQUAL(res[2].status, RELAY_SENT);
		CU_ASSERT_EQUAL(p->messages, 1);
		CU_ASSERT_EQUAL(p->violations, 0);
		relay_ctx_free(&ctx);
		peer_free(p);
	}
}

static void
test_all_rcpt_rejected(void)
{
	for (int pipelining = 0; pipelining < 2; pipelining++) {
		struct peer_cfg cfg = { .ehlo = pipelining ? NULL :
		    "250 peer.test\r\n" };
		struct relay_ctx *ctx = ctx_tls(RELAY_TLS_NONE);
		struct peer *p = peer_start("127.0.0.2", &cfg);
		struct relay_rcpt r[2] = { { "bounce@x.test", NULL, 0 },
		    { "defer@x.test", NULL, 0 } };
		struct relay_result res[2];
		struct relay_msg m;

		msg_init(&m, simple_body);
		deliver_to(ctx, "127.0.0.2", &m, r, 2, res);
		show(res, 2);
		peer_stop(p);
		CU_ASSERT_EQUAL(res[0].status, RELAY_BOUNCED);
		CU_ASSERT_EQUAL(res[1].status, RELAY_DEFERRED);
		/* Pipelined, DATA went with the group (and got 354, so it
		 * was ended with an empty message); otherwise never sent. */
		CU_ASSERT_EQUAL(peer_saw(p, "DATA"), pipelining);
		CU_ASSERT_EQUAL(p->messages, pipelining);
		if (pipelining)
			CU_ASSERT_EQUAL(p->data.len, 3);
		relay_ctx_free(&ctx);
		peer_free(p);
	}
}

static void
test_data_replies(void)
{
	static const struct {
		struct peer_cfg cfg;
		enum relay_status st;
		const char *dsn;
		const char *diag_part;
	} t[] = {
		{ { .final_reply = "451 4.3.0 queue full\r\n" }, RELAY_DEFERRED,
		  "4.3.0", "said: 451 4.3.0 queue full (in reply to end of DATA command)" },
		{ { .final_reply = "554 5.7.1 spam\r\n" }, RELAY_BOUNCED,
		  "5.7.1", "said: 554 5.7.1 spam (in reply to end of DATA command)" },
		{ { .final_reply = "550 no code\r\n" }, RELAY_BOUNCED,
		  "5.0.0", "550 no code" },
		{ { .data_reply = "451 4.3.1 no room\r\n" }, RELAY_DEFERRED,
		  "4.3.1", "(in reply to DATA command)" },
		{ { .data_reply = "554 5.5.1 no valid recipients\r\n" },
		  RELAY_BOUNCED, "5.5.1", "(in reply to DATA command)" },
		{ { .mail_reply = "553 5.1.8 bad sender\r\n" }, RELAY_BOUNCED,
		  "5.1.8", "(in reply to MAIL FROM command)" },
		{ { .mail_reply = "452 4.3.1 later\r\n" }, RELAY_DEFERRED,
		  "4.3.1", "(in reply to MAIL FROM command)" },
		{ { .drop_mid_data = 1 }, RELAY_DEFERRED, "4.4.2",
		  "lost connection with 127.0.0.2[127.0.0.2] while sending" },
		{ { .greeting = "554 5.7.1 go away\r\n" }, RELAY_DEFERRED,
		  "4.7.1", "refused to talk to me: 554 5.7.1 go away" },
		{ { .greeting = "hello there\r\n" }, RELAY_DEFERRED, "4.5.0",
		  "malformed reply from 127.0.0.2[127.0.0.2] while receiving the "
		  "initial server greeting" },
		{ { .ehlo = "250-peer\r\n250-SIZE 10\r\n" "251 x\r\n" },
		  RELAY_DEFERRED, "4.5.0", "reply code changed" },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct relay_ctx *ctx = ctx_tls(RELAY_TLS_NONE);
		struct peer *p;
		struct relay_result res = one_shot(ctx, "127.0.0.2", &t[i].cfg,
		    NULL, &p);

		if (res.status != t[i].st || strcmp(res.dsn, t[i].dsn) != 0 ||
		    strstr(res.diag, t[i].diag_part) == NULL)
			fprintf(stderr, "\n  case %zu: %s %s (%s)\n", i,
			    relay_status_str(res.status), res.dsn, res.diag);
		CU_ASSERT_EQUAL(res.status, t[i].st);
		CU_ASSERT_STRING_EQUAL(res.dsn, t[i].dsn);
		CU_ASSERT_PTR_NOT_NULL(strstr(res.diag, t[i].diag_part));
		relay_ctx_free(&ctx);
		peer_free(p);
	}
}

static void
test_timeouts(void)
{
	struct relay_settings st;
	struct relay_ctx *ctx;
	struct peer *p;
	struct relay_result res;
	struct peer_cfg hang_greet = { .hang_greeting = 1 };
	struct peer_cfg hang_final = { .hang_final = 1 };
	int64_t t0;

	test_settings(&st);
	st.greeting_timeout_ms = 400;
	st.data_final_timeout_ms = 400;
	ctx = ctx_with(&st);
	t0 = time_mono_ms();
	res = one_shot(ctx, "127.0.0.2", &hang_greet, NULL, &p);
	CU_ASSERT(time_mono_ms() - t0 < 3000);
	CU_ASSERT_EQUAL(res.status, RELAY_DEFERRED);
	CU_ASSERT_STRING_EQUAL(res.dsn, "4.4.2");
	CU_ASSERT_PTR_NOT_NULL(strstr(res.diag, "timed out while receiving "
	    "the initial server greeting"));
	peer_free(p);

	res = one_shot(ctx, "127.0.0.2", &hang_final, NULL, &p);
	CU_ASSERT_EQUAL(res.status, RELAY_DEFERRED);
	CU_ASSERT_PTR_NOT_NULL(strstr(res.diag, "timed out while sending end "
	    "of data -- message may be sent more than once"));
	CU_ASSERT_EQUAL(p->messages, 1);
	CU_ASSERT_EQUAL(relay_ctx_idle_count(ctx), 0);
	peer_free(p);
	relay_ctx_free(&ctx);
}

static void
test_tls_may(void)
{
	/* Offered: used, and EHLO is sent again over TLS. */
	struct peer_cfg cfg = { .tls = 1,
	    .ehlo = "250-peer.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n" };
	struct relay_ctx *ctx = ctx_tls(RELAY_TLS_MAY);
	struct peer *p;
	struct relay_result res = one_shot(ctx, "127.0.0.2", &cfg, NULL, &p);

	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	CU_ASSERT_EQUAL(p->tls_sessions, 1);
	CU_ASSERT(peer_saw(p, "STARTTLS\nTLS\nEHLO client.test\nMAIL FROM"));
	CU_ASSERT_EQUAL(p->messages, 1);
	peer_free(p);

	/* Not offered: plaintext. */
	struct peer_cfg plain = { 0 };
	res = one_shot(ctx, "127.0.0.3", &plain, NULL, &p);
	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	CU_ASSERT(!peer_saw(p, "STARTTLS"));
	peer_free(p);

	/* Refused: plaintext on the same connection. */
	struct peer_cfg refused = { .tls = 0,
	    .ehlo = "250-peer.test\r\n250 STARTTLS\r\n" };
	res = one_shot(ctx, "127.0.0.4", &refused, NULL, &p);
	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	CU_ASSERT_EQUAL(p->accepts, 1);
	peer_free(p);

	/* The handshake fails: once more in plaintext, new connection. */
	struct peer_cfg broken = { .tls = 1, .tls_garbage = 1,
	    .ehlo = "250-peer.test\r\n250 STARTTLS\r\n" };
	res = one_shot(ctx, "127.0.0.5", &broken, NULL, &p);
	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	CU_ASSERT_EQUAL(p->accepts, 2);
	CU_ASSERT_EQUAL(p->messages, 1);
	peer_free(p);
	relay_ctx_free(&ctx);
}

static void
test_tls_encrypt(void)
{
	struct relay_ctx *ctx = ctx_tls(RELAY_TLS_ENCRYPT);
	struct peer *p;
	struct relay_result res;

	/* Not offered: deferred, nothing of the message sent. */
	struct peer_cfg plain = { 0 };
	res = one_shot(ctx, "127.0.0.2", &plain, NULL, &p);
	CU_ASSERT_EQUAL(res.status, RELAY_DEFERRED);
	CU_ASSERT_STRING_EQUAL(res.dsn, "4.7.4");
	CU_ASSERT_PTR_NOT_NULL(strstr(res.diag, "TLS is required, but was not "
	    "offered by host 127.0.0.2[127.0.0.2]"));
	CU_ASSERT(!peer_saw(p, "MAIL"));
	CU_ASSERT(!peer_saw(p, "RCPT"));
	CU_ASSERT_EQUAL(p->messages, 0);
	peer_free(p);

	/* Handshake failure: deferred, never plaintext. */
	struct peer_cfg broken = { .tls = 1, .tls_garbage = 1,
	    .ehlo = "250-peer.test\r\n250 STARTTLS\r\n" };
	res = one_shot(ctx, "127.0.0.3", &broken, NULL, &p);
	CU_ASSERT_EQUAL(res.status, RELAY_DEFERRED);
	CU_ASSERT_STRING_EQUAL(res.dsn, "4.7.5");
	CU_ASSERT_EQUAL(p->accepts, 1);
	CU_ASSERT(!peer_saw(p, "MAIL"));
	peer_free(p);

	/* Offered and working. */
	struct peer_cfg good = { .tls = 1,
	    .ehlo = "250-peer.test\r\n250 STARTTLS\r\n" };
	res = one_shot(ctx, "127.0.0.4", &good, NULL, &p);
	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	CU_ASSERT_EQUAL(p->tls_sessions, 1);
	peer_free(p);
	relay_ctx_free(&ctx);
}

static void
test_tls_injection(void)
{
	/* The server sends "250 fake" right after the 220 to STARTTLS; the
	 * client must drop it and use only the EHLO reply given over TLS,
	 * whose SIZE 20 then bounces the message. */
	struct peer_cfg cfg = { .tls = 1, .tls_inject = 1,
	    .ehlo = "250-peer.test\r\n250 STARTTLS\r\n",
	    .ehlo_tls = "250-peer.test\r\n250 SIZE 20\r\n" };
	struct relay_ctx *ctx = ctx_tls(RELAY_TLS_MAY);
	struct peer *p;
	struct relay_result res = one_shot(ctx, "127.0.0.2", &cfg, NULL, &p);

	CU_ASSERT_EQUAL(res.status, RELAY_BOUNCED);
	CU_ASSERT_STRING_EQUAL(res.dsn, "5.3.4");
	CU_ASSERT_EQUAL(p->tls_sessions, 1);
	CU_ASSERT(peer_saw(p, "TLS\nEHLO client.test\n"));
	CU_ASSERT(!peer_saw(p, "MAIL"));
	peer_free(p);

	/* The same with a working server: delivered over TLS. */
	cfg.ehlo_tls = "250-peer.test\r\n250 PIPELINING\r\n";
	res = one_shot(ctx, "127.0.0.3", &cfg, NULL, &p);
	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	CU_ASSERT_EQUAL(p->messages, 1);
	CU_ASSERT(peer_saw(p, "TLS\nEHLO client.test\nMAIL FROM"));
	peer_free(p);
	relay_ctx_free(&ctx);
}

static void
test_size_and_utf8(void)
{
	struct relay_ctx *ctx = ctx_tls(RELAY_TLS_NONE);
	struct peer *p;
	struct relay_result res;
	struct relay_msg m;

	struct peer_cfg small = { .ehlo = "250-peer.test\r\n250 SIZE 20\r\n" };
	res = one_shot(ctx, "127.0.0.2", &small, NULL, &p);
	CU_ASSERT_EQUAL(res.status, RELAY_BOUNCED);
	CU_ASSERT_STRING_EQUAL(res.dsn, "5.3.4");
	CU_ASSERT_PTR_NOT_NULL(strstr(res.diag, "exceeds size limit 20 of "
	    "server 127.0.0.2[127.0.0.2]"));
	CU_ASSERT(!peer_saw(p, "MAIL"));
	peer_free(p);

	/* SMTPUTF8 given, but addresses and header are ASCII: it goes as
	 * plain mail to a server without SMTPUTF8 (RFC 6531 3.4). */
	msg_init(&m, simple_body);
	m.smtputf8 = 1;
	struct peer_cfg no8 = { 0 };
	res = one_shot(ctx, "127.0.0.3", &no8, &m, &p);
	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	CU_ASSERT(peer_saw(p, "MAIL FROM:<sender@client.test> SIZE="));
	CU_ASSERT(!peer_saw(p, "SMTPUTF8"));
	peer_free(p);

	/* A non-ASCII header needs it. */
	msg_init(&m, "Subject: gr\xc3\xbc\xc3\x9f\r\n\r\nhi\r\n");
	m.smtputf8 = 1;
	res = one_shot(ctx, "127.0.0.3", &no8, &m, &p);
	CU_ASSERT_EQUAL(res.status, RELAY_BOUNCED);
	CU_ASSERT_STRING_EQUAL(res.dsn, "5.6.7");
	CU_ASSERT(!peer_saw(p, "MAIL"));
	peer_free(p);

	/* Non-ASCII bytes in the body only do not. */
	msg_init(&m, "Subject: plain\r\n\r\ngr\xc3\xbc\xc3\x9f\r\n");
	m.smtputf8 = 1;
	res = one_shot(ctx, "127.0.0.3", &no8, &m, &p);
	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	peer_free(p);

	/* A non-ASCII sender needs SMTPUTF8 even without the flag. */
	m.smtputf8 = 0;
	m.sender = "j\xc3\xb6rg@client.test";
	res = one_shot(ctx, "127.0.0.3", &no8, &m, &p);
	CU_ASSERT_EQUAL(res.status, RELAY_BOUNCED);
	CU_ASSERT_STRING_EQUAL(res.dsn, "5.6.7");
	peer_free(p);

	struct peer_cfg utf8 = { .ehlo = "250-peer.test\r\n250 SMTPUTF8\r\n" };
	res = one_shot(ctx, "127.0.0.4", &utf8, &m, &p);
	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	CU_ASSERT(peer_saw(p, "MAIL FROM:<j\xc3\xb6rg@client.test> SMTPUTF8\n"));
	peer_free(p);

	/* Given SMTPUTF8 and offered: passed on though not needed. */
	msg_init(&m, simple_body);
	m.smtputf8 = 1;
	res = one_shot(ctx, "127.0.0.4", &utf8, &m, &p);
	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	CU_ASSERT(peer_saw(p, "MAIL FROM:<sender@client.test> SMTPUTF8\n"));
	peer_free(p);
	relay_ctx_free(&ctx);
}

static void
test_crlf_never_sent(void)
{
	struct relay_ctx *ctx = ctx_tls(RELAY_TLS_NONE);
	struct peer *p = peer_start("127.0.0.2", NULL);
	struct relay_rcpt r[4] = {
		{ "evil@x.test>\r\nRCPT TO:<injected@x.test", NULL, 0 },
		{ "lf@x.test\nDATA", NULL, 0 },
		{ "good@x.test", "rfc822;o@x\r\nQUIT", 4 },
		{ "", NULL, 0 },
	};
	struct relay_result res[4];
	struct relay_msg m;

	msg_init(&m, simple_body);
	m.envid = "e\r\nRSET";
	deliver_to(ctx, "127.0.0.2", &m, r, 4, res);
	show(res, 4);
	CU_ASSERT_EQUAL(res[0].status, RELAY_BOUNCED);
	CU_ASSERT_STRING_EQUAL(res[0].dsn, "5.1.3");
	CU_ASSERT_STRING_EQUAL(res[0].relay, "none");
	CU_ASSERT_EQUAL(res[1].status, RELAY_BOUNCED);
	CU_ASSERT_EQUAL(res[2].status, RELAY_SENT);
	CU_ASSERT_EQUAL(res[3].status, RELAY_BOUNCED);

	/* A bad sender: nothing at all is sent. */
	struct relay_rcpt ok = { "good@x.test", NULL, 0 };
	struct relay_result r1;
	m.sender = "s@x.test\r\nRCPT TO:<other@x.test>";
	relay_ctx_free(&ctx);
	ctx = ctx_tls(RELAY_TLS_NONE);
	deliver_to(ctx, "127.0.0.2", &m, &ok, 1, &r1);
	CU_ASSERT_EQUAL(r1.status, RELAY_BOUNCED);
	CU_ASSERT_STRING_EQUAL(r1.dsn, "5.1.7");
	peer_stop(p);
	CU_ASSERT_EQUAL(p->accepts, 1);
	CU_ASSERT(!peer_saw(p, "injected"));
	CU_ASSERT(!peer_saw(p, "evil"));
	CU_ASSERT(!peer_saw(p, "lf@"));
	CU_ASSERT(!peer_saw(p, "other@"));
	CU_ASSERT(!peer_saw(p, "\nRSET\n"));
	CU_ASSERT(peer_saw(p, " ENVID=e+0D+0ARSET"));
	CU_ASSERT(peer_saw(p, "RCPT TO:<good@x.test> NOTIFY=FAILURE "
	    "ORCPT=rfc822;o@x+0D+0AQUIT\n"));
	relay_ctx_free(&ctx);
	peer_free(p);
}

static void
test_reuse(void)
{
	struct relay_ctx *ctx = ctx_tls(RELAY_TLS_NONE);
	struct peer *p = peer_start("127.0.0.2", NULL);
	struct relay_rcpt r = { "user@x.test", NULL, 0 };
	struct relay_result res[3];
	struct relay_msg m;

	msg_init(&m, simple_body);
	for (int i = 0; i < 3; i++) {
		deliver_to(ctx, "127.0.0.2", &m, &r, 1, &res[i]);
		CU_ASSERT_EQUAL(res[i].status, RELAY_SENT);
		CU_ASSERT_EQUAL(relay_ctx_idle_count(ctx), 1);
	}
	relay_ctx_free(&ctx);	/* QUITs the idle connection */
	peer_stop(p);
	CU_ASSERT_EQUAL(p->accepts, 1);
	CU_ASSERT_EQUAL(p->messages, 3);
	CU_ASSERT(peer_saw(p, "RSET\nMAIL FROM"));
	CU_ASSERT(peer_saw(p, "QUIT"));
	peer_free(p);

	/* An idle connection the server closed is not used; a new one is. */
	struct relay_settings st;
	test_settings(&st);
	ctx = ctx_with(&st);
	p = peer_start("127.0.0.3", NULL);
	deliver_to(ctx, "127.0.0.3", &m, &r, 1, &res[0]);
	peer_stop(p);
	peer_free(p);
	p = peer_start("127.0.0.3", NULL);
	deliver_to(ctx, "127.0.0.3", &m, &r, 1, &res[1]);
	peer_stop(p);
	CU_ASSERT_EQUAL(res[0].status, RELAY_SENT);
	CU_ASSERT_EQUAL(res[1].status, RELAY_SENT);
	CU_ASSERT_EQUAL(p->accepts, 1);
	relay_ctx_free(&ctx);
	peer_free(p);

	/* Reuse off, and idle expiry. */
	st.max_idle = RELAY_NO_REUSE;
	ctx = ctx_with(&st);
	p = peer_start("127.0.0.4", NULL);
	deliver_to(ctx, "127.0.0.4", &m, &r, 1, &res[0]);
	deliver_to(ctx, "127.0.0.4", &m, &r, 1, &res[1]);
	CU_ASSERT_EQUAL(relay_ctx_idle_count(ctx), 0);
	relay_ctx_free(&ctx);
	st.max_idle = 0;
	st.idle_ms = 100;
	ctx = ctx_with(&st);
	deliver_to(ctx, "127.0.0.4", &m, &r, 1, &res[2]);
	CU_ASSERT_EQUAL(relay_ctx_idle_count(ctx), 1);
	usleep(200000);
	relay_ctx_expire_idle(ctx);
	CU_ASSERT_EQUAL(relay_ctx_idle_count(ctx), 0);
	relay_ctx_free(&ctx);
	peer_stop(p);
	CU_ASSERT_EQUAL(p->accepts, 3);
	CU_ASSERT_EQUAL(p->messages, 3);
	peer_free(p);
}

struct bg_delivery {
	struct relay_ctx *ctx;
	const char *ip;
	int count;
	int sent;
};

static void *
bg_deliver_main(void *arg)
{
	struct bg_delivery *b = arg;
	struct relay_rcpt r = { "user@x.test", NULL, 0 };
	struct relay_msg m;

	msg_init(&m, simple_body);
	for (int i = 0; i < b->count; i++) {
		struct relay_result res;
		deliver_to(b->ctx, b->ip, &m, &r, 1, &res);
		if (res.status == RELAY_SENT)
			b->sent++;
	}
	return NULL;
}

static void
test_dest_limit(void)
{
	struct relay_settings st;
	struct relay_ctx *ctx;
	struct peer_cfg slow = { .hang_greeting = 1 };
	struct peer *p = peer_start("127.0.0.2", &slow);
	struct bg_delivery b;
	pthread_t t;
	struct relay_rcpt r = { "user@x.test", NULL, 0 };
	struct relay_result res;
	struct relay_msg m;

	test_settings(&st);
	st.max_per_destination = 1;
	st.dest_wait_ms = 100;
	st.greeting_timeout_ms = 1500;
	ctx = ctx_with(&st);
	b = (struct bg_delivery){ ctx, "127.0.0.2", 1, 0 };
	pthread_create(&t, NULL, bg_deliver_main, &b);
	/* Wait until the background delivery holds the slot. */
	for (int i = 0; i < 200; i++) {
		pthread_mutex_lock(&p->mu);
		int a = p->accepts;
		pthread_mutex_unlock(&p->mu);
		if (a > 0)
			break;
		usleep(10000);
	}
	msg_init(&m, simple_body);
	deliver_to(ctx, "127.0.0.2", &m, &r, 1, &res);
	CU_ASSERT_EQUAL(res.status, RELAY_DEFERRED);
	CU_ASSERT_STRING_EQUAL(res.dsn, "4.4.5");
	CU_ASSERT_PTR_NOT_NULL(strstr(res.diag, "too many connections"));
	pthread_join(t, NULL);
	peer_stop(p);
	CU_ASSERT_EQUAL(p->accepts, 1);
	relay_ctx_free(&ctx);
	peer_free(p);
}

static void
test_concurrent(void)
{
	struct relay_settings st;
	struct relay_ctx *ctx;
	struct peer *p = peer_start("127.0.0.2", NULL);
	struct bg_delivery b[4];
	pthread_t t[4];
	int sent = 0;

	test_settings(&st);
	st.max_per_destination = 2;
	st.dest_wait_ms = 10000;
	ctx = ctx_with(&st);
	for (int i = 0; i < 4; i++) {
		b[i] = (struct bg_delivery){ ctx, "127.0.0.2", 5, 0 };
		pthread_create(&t[i], NULL, bg_deliver_main, &b[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		sent += b[i].sent;
	}
	CU_ASSERT_EQUAL(sent, 20);
	CU_ASSERT(relay_ctx_idle_count(ctx) <= 2);
	relay_ctx_free(&ctx);
	peer_stop(p);
	CU_ASSERT_EQUAL(p->messages, 20);
	/* Connections were reused: far fewer than deliveries. */
	CU_ASSERT(p->accepts >= 1 && p->accepts <= 8);
	peer_free(p);
}

/* ---- through DNS (ldns-testns) ---- */

#define NEED_DNS() do { if (resolver == NULL) { \
	printf("(skipped: no DNS) "); return; } } while (0)

static void
mx_deliver(struct relay_ctx *ctx, const char *domain, struct relay_result *res)
{
	struct relay_rcpt r = { "user@relay.test", NULL, 0 };
	struct relay_msg m;

	msg_init(&m, simple_body);
	memset(res, 0, sizeof *res);
	relay_deliver(ctx, domain, NULL, 0, &m, &r, 1, res);
	show(res, 1);
}

static void
test_mx_order(void)
{
	struct relay_ctx *ctx;
	struct relay_result res;
	struct peer *p1, *p2;
	char want[100];

	NEED_DNS();
	ctx = ctx_tls(RELAY_TLS_NONE);
	/* mx1 (127.0.0.2) refuses connections: mx2 takes it. */
	p2 = peer_start("127.0.0.3", NULL);
	mx_deliver(ctx, "relay.test", &res);
	peer_stop(p2);
	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	snprintf(want, sizeof want, "mx2.relay.test[127.0.0.3]:%u", peer_port);
	CU_ASSERT_STRING_EQUAL(res.relay, want);
	CU_ASSERT_EQUAL(p2->messages, 1);
	peer_free(p2);
	relay_ctx_free(&ctx);

	/* mx1 works: it is used, mx2 is not touched. */
	ctx = ctx_tls(RELAY_TLS_NONE);
	p1 = peer_start("127.0.0.2", NULL);
	p2 = peer_start("127.0.0.3", NULL);
	mx_deliver(ctx, "relay.test", &res);
	peer_stop(p1);
	peer_stop(p2);
	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	CU_ASSERT_EQUAL(p1->messages, 1);
	CU_ASSERT_EQUAL(p2->accepts, 0);
	peer_free(p1);
	peer_free(p2);
	relay_ctx_free(&ctx);

	/* 5xx greeting, a 421 greeting, a 421 to EHLO, then 4xx to MAIL at
	 * mx1: mx2 takes it each time. */
	static const struct peer_cfg bad1[4] = {
		{ .greeting = "554 5.3.2 not now\r\n" },
		{ .greeting = "421 4.3.2 busy\r\n" },
		{ .ehlo = "421 4.3.2 closing\r\n" },
		{ .mail_reply = "421 4.3.2 shutting down\r\n" },
	};
	for (int k = 0; k < 4; k++) {
		ctx = ctx_tls(RELAY_TLS_NONE);
		p1 = peer_start("127.0.0.2", &bad1[k]);
		p2 = peer_start("127.0.0.3", NULL);
		mx_deliver(ctx, "relay.test", &res);
		peer_stop(p1);
		peer_stop(p2);
		CU_ASSERT_EQUAL(res.status, RELAY_SENT);
		CU_ASSERT_EQUAL(p1->accepts, 1);
		CU_ASSERT_EQUAL(p1->messages, 0);
		CU_ASSERT_EQUAL(p2->messages, 1);
		peer_free(p1);
		peer_free(p2);
		relay_ctx_free(&ctx);
	}

	/* Nobody listens: deferred with the last error. */
	ctx = ctx_tls(RELAY_TLS_NONE);
	mx_deliver(ctx, "relay.test", &res);
	CU_ASSERT_EQUAL(res.status, RELAY_DEFERRED);
	CU_ASSERT_STRING_EQUAL(res.dsn, "4.4.1");
	CU_ASSERT_STRING_EQUAL(res.relay, "none");
	snprintf(want, sizeof want, "connect to mx2.relay.test[127.0.0.3]:%u: "
	    "Connection refused", peer_port);
	CU_ASSERT_STRING_EQUAL(res.diag, want);
	relay_ctx_free(&ctx);
}

static void
test_mx_dns_failures(void)
{
	static const struct {
		const char *domain;
		enum relay_status st;
		const char *dsn;
	} t[] = {
		{ "nullmx.relay.test", RELAY_BOUNCED, "5.1.10" },
		{ "nx.relay.test", RELAY_BOUNCED, "5.1.2" },
		{ "fail.relay.test", RELAY_DEFERRED, "4.4.3" },
	};
	struct relay_ctx *ctx;

	NEED_DNS();
	ctx = ctx_tls(RELAY_TLS_NONE);
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct relay_result res;
		mx_deliver(ctx, t[i].domain, &res);
		CU_ASSERT_EQUAL(res.status, t[i].st);
		CU_ASSERT_STRING_EQUAL(res.dsn, t[i].dsn);
		CU_ASSERT_STRING_EQUAL(res.relay, "none");
	}
	relay_ctx_free(&ctx);
}

static void
test_fixed_dest(void)
{
	struct relay_ctx *ctx = ctx_tls(RELAY_TLS_NONE);
	struct peer *p = peer_start("127.0.0.3", NULL);
	struct relay_rcpt r = { "user@routed.test", NULL, 0 };
	struct relay_result res;
	struct relay_msg m;
	char want[100];

	/* An IP literal route: no DNS at all. */
	msg_init(&m, simple_body);
	relay_deliver(ctx, "routed.test", "[127.0.0.3]", peer_port, &m, &r, 1,
	    &res);
	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	snprintf(want, sizeof want, "127.0.0.3[127.0.0.3]:%u", peer_port);
	CU_ASSERT_STRING_EQUAL(res.relay, want);
	relay_ctx_free(&ctx);

	if (resolver != NULL) {
		/* A host name: A lookup, no MX. */
		ctx = ctx_tls(RELAY_TLS_NONE);
		relay_deliver(ctx, "routed.test", "host.relay.test", peer_port,
		    &m, &r, 1, &res);
		CU_ASSERT_EQUAL(res.status, RELAY_SENT);
		snprintf(want, sizeof want, "host.relay.test[127.0.0.3]:%u",
		    peer_port);
		CU_ASSERT_STRING_EQUAL(res.relay, want);
		relay_deliver(ctx, "routed.test", "[nohost.relay.test]",
		    peer_port, &m, &r, 1, &res);
		CU_ASSERT_EQUAL(res.status, RELAY_BOUNCED);
		CU_ASSERT_STRING_EQUAL(res.dsn, "5.1.2");
		relay_ctx_free(&ctx);
	}
	peer_stop(p);
	CU_ASSERT_EQUAL(p->messages, resolver != NULL ? 2 : 1);
	peer_free(p);
}


/* Recipients refused as too many (452, and 552 taken as 452) go again in
 * a new transaction on the same connection; a 552 is never a bounce. */
static void
test_too_many_rcpts(void)
{
	static const char *const over[2] = {
		"452 4.5.3 Error: too many recipients\r\n",
		"552 5.5.3 Error: too many recipients\r\n",
	};

	for (int k = 0; k < 2; k++) {
		struct peer_cfg cfg = { .rcpt_max = 2, .rcpt_over = over[k] };
		struct relay_ctx *ctx = ctx_tls(RELAY_TLS_NONE);
		struct peer *p = peer_start("127.0.0.2", &cfg);
		struct relay_rcpt r[5] = { { "a@x.test", NULL, 0 },
		    { "b@x.test", NULL, 0 }, { "c@x.test", NULL, 0 },
		    { "d@x.test", NULL, 0 }, { "e@x.test", NULL, 0 } };
		struct relay_result res[5];
		struct relay_msg m;

		msg_init(&m, simple_body);
		deliver_to(ctx, "127.0.0.2", &m, r, 5, res);
		show(res, 5);
		peer_stop(p);
		for (int i = 0; i < 5; i++)
			CU_ASSERT_EQUAL(res[i].status, RELAY_SENT);
		CU_ASSERT_EQUAL(p->messages, 3);
		CU_ASSERT_EQUAL(p->accepts, 1);
		relay_ctx_free(&ctx);
		peer_free(p);
	}

	/* A server that takes none: deferred (4.x.x), not bounced. */
	{
		struct peer_cfg cfg = { .rcpt_reply =
		    "552 5.5.3 Error: too many recipients\r\n" };
		struct relay_ctx *ctx = ctx_tls(RELAY_TLS_NONE);
		struct peer *p;
		struct relay_result res = one_shot(ctx, "127.0.0.2", &cfg, NULL,
		    &p);

		CU_ASSERT_EQUAL(res.status, RELAY_DEFERRED);
		CU_ASSERT_STRING_EQUAL(res.dsn, "4.5.3");
		relay_ctx_free(&ctx);
		peer_free(p);
	}
}

/* The NOTIFY of a recipient sent to a server with DSN is its business. */
static void
test_dsn_passed(void)
{
	struct relay_ctx *ctx = ctx_tls(RELAY_TLS_NONE);
	struct peer *p;
	struct relay_result res;
	struct peer_cfg nodsn = { .ehlo = "250-peer.test\r\n250 PIPELINING\r\n" };

	res = one_shot(ctx, "127.0.0.2", NULL, NULL, &p);
	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	CU_ASSERT_EQUAL(res.dsn_passed, 1);
	peer_free(p);
	res = one_shot(ctx, "127.0.0.3", &nodsn, NULL, &p);
	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	CU_ASSERT_EQUAL(res.dsn_passed, 0);
	peer_free(p);
	relay_ctx_free(&ctx);
}

/* A 421 at RCPT, at DATA or at the end of data: the next MX gets it. */
static void
test_421_next_mx(void)
{
	static const struct peer_cfg bad[3] = {
		{ .rcpt_reply = "421 4.3.2 closing\r\n" },
		{ .data_reply = "421 4.3.2 closing\r\n" },
		{ .final_reply = "421 4.3.2 closing\r\n" },
	};

	NEED_DNS();
	for (int k = 0; k < 3; k++) {
		struct relay_ctx *ctx = ctx_tls(RELAY_TLS_NONE);
		struct peer *p1 = peer_start("127.0.0.2", &bad[k]);
		struct peer *p2 = peer_start("127.0.0.3", NULL);
		struct relay_result res;

		mx_deliver(ctx, "relay.test", &res);
		peer_stop(p1);
		peer_stop(p2);
		CU_ASSERT_EQUAL(res.status, RELAY_SENT);
		CU_ASSERT_EQUAL(p1->accepts, 1);
		CU_ASSERT_EQUAL(p2->messages, 1);
		relay_ctx_free(&ctx);
		peer_free(p1);
		peer_free(p2);
	}
}

/* A server without SMTPUTF8 or with a small SIZE is skipped: the next MX
 * takes the message; it bounces only when every MX lacks it. */
static void
test_extension_next_mx(void)
{
	struct peer_cfg no8 = { .ehlo = "250-peer.test\r\n250 8BITMIME\r\n" };
	struct peer_cfg utf8 = { .ehlo = "250-peer.test\r\n250 SMTPUTF8\r\n" };
	struct peer_cfg small = { .ehlo = "250-peer.test\r\n250 SIZE 20\r\n" };
	struct relay_rcpt r = { "user@relay.test", NULL, 0 };
	struct relay_ctx *ctx;
	struct relay_result res;
	struct relay_msg m;
	struct peer *p1, *p2;

	NEED_DNS();
	msg_init(&m, simple_body);
	m.sender = "j\xc3\xb6rg@client.test";
	ctx = ctx_tls(RELAY_TLS_NONE);
	p1 = peer_start("127.0.0.2", &no8);
	p2 = peer_start("127.0.0.3", &utf8);
	relay_deliver(ctx, "relay.test", NULL, 0, &m, &r, 1, &res);
	peer_stop(p1);
	peer_stop(p2);
	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	CU_ASSERT_EQUAL(p2->messages, 1);
	peer_free(p1);
	peer_free(p2);
	relay_ctx_free(&ctx);

	ctx = ctx_tls(RELAY_TLS_NONE);
	p1 = peer_start("127.0.0.2", &no8);
	p2 = peer_start("127.0.0.3", &no8);
	relay_deliver(ctx, "relay.test", NULL, 0, &m, &r, 1, &res);
	peer_stop(p1);
	peer_stop(p2);
	CU_ASSERT_EQUAL(res.status, RELAY_BOUNCED);
	CU_ASSERT_STRING_EQUAL(res.dsn, "5.6.7");
	CU_ASSERT_EQUAL(p1->accepts, 1);
	CU_ASSERT_EQUAL(p2->accepts, 1);
	peer_free(p1);
	peer_free(p2);
	relay_ctx_free(&ctx);

	/* One lacks, the other is down: deferred, it may come back. */
	ctx = ctx_tls(RELAY_TLS_NONE);
	p1 = peer_start("127.0.0.2", &no8);
	relay_deliver(ctx, "relay.test", NULL, 0, &m, &r, 1, &res);
	peer_stop(p1);
	CU_ASSERT_EQUAL(res.status, RELAY_DEFERRED);
	peer_free(p1);
	relay_ctx_free(&ctx);

	msg_init(&m, simple_body);
	ctx = ctx_tls(RELAY_TLS_NONE);
	p1 = peer_start("127.0.0.2", &small);
	p2 = peer_start("127.0.0.3", NULL);
	relay_deliver(ctx, "relay.test", NULL, 0, &m, &r, 1, &res);
	peer_stop(p1);
	peer_stop(p2);
	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	CU_ASSERT_EQUAL(p2->messages, 1);
	peer_free(p1);
	peer_free(p2);
	relay_ctx_free(&ctx);
}

/* One call has one time limit over all of its addresses. */
static void
test_attempt_time_limit(void)
{
	struct peer_cfg hang = { .hang_greeting = 1 };
	struct relay_settings st;
	struct relay_ctx *ctx;
	struct relay_result res;
	struct peer *p1, *p2;
	int64_t t0;

	NEED_DNS();
	test_settings(&st);
	st.greeting_timeout_ms = 2000;
	st.attempt_timeout_ms = 1200;
	ctx = ctx_with(&st);
	p1 = peer_start("127.0.0.2", &hang);
	p2 = peer_start("127.0.0.3", &hang);
	t0 = time_mono_ms();
	mx_deliver(ctx, "relay.test", &res);
	CU_ASSERT(time_mono_ms() - t0 < 1900);
	peer_stop(p1);
	peer_stop(p2);
	CU_ASSERT_EQUAL(res.status, RELAY_DEFERRED);
	CU_ASSERT_EQUAL(p1->accepts, 1);
	CU_ASSERT_EQUAL(p2->accepts, 0);
	peer_free(p1);
	peer_free(p2);
	relay_ctx_free(&ctx);
}

/* An MX host at an address this server listens on is this server. */
static void
test_self_by_address(void)
{
	struct relay_settings st;
	struct relay_self_addr self;
	struct sockaddr_in *sin = (struct sockaddr_in *)&self.sa;
	struct relay_ctx *ctx;
	struct relay_result res;
	struct peer *p1, *p2;

	NEED_DNS();
	memset(&self, 0, sizeof self);
	sin->sin_family = AF_INET;
	sin->sin_port = htons(peer_port);
	self.salen = sizeof *sin;
	test_settings(&st);
	st.self = &self;
	st.nself = 1;

	/* The best MX (127.0.0.2) is us: nothing to try, it would loop. */
	inet_pton(AF_INET, "127.0.0.2", &sin->sin_addr);
	ctx = ctx_with(&st);
	p1 = peer_start("127.0.0.2", NULL);
	p2 = peer_start("127.0.0.3", NULL);
	mx_deliver(ctx, "relay.test", &res);
	peer_stop(p1);
	peer_stop(p2);
	CU_ASSERT_EQUAL(res.status, RELAY_BOUNCED);
	CU_ASSERT_STRING_EQUAL(res.dsn, "5.4.6");
	CU_ASSERT_EQUAL(p1->accepts + p2->accepts, 0);
	peer_free(p1);
	peer_free(p2);
	relay_ctx_free(&ctx);

	/* We are the second MX: only the first may be tried. */
	inet_pton(AF_INET, "127.0.0.3", &sin->sin_addr);
	ctx = ctx_with(&st);
	p2 = peer_start("127.0.0.3", NULL);
	mx_deliver(ctx, "relay.test", &res);
	peer_stop(p2);
	CU_ASSERT_EQUAL(res.status, RELAY_DEFERRED);
	CU_ASSERT_EQUAL(p2->accepts, 0);
	peer_free(p2);
	relay_ctx_free(&ctx);

	/* Another port is another server. */
	sin->sin_port = htons((uint16_t)(peer_port + 1));
	inet_pton(AF_INET, "127.0.0.2", &sin->sin_addr);
	ctx = ctx_with(&st);
	p1 = peer_start("127.0.0.2", NULL);
	mx_deliver(ctx, "relay.test", &res);
	peer_stop(p1);
	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	peer_free(p1);
	relay_ctx_free(&ctx);

	/* A wildcard listener at the port: every local address is us. */
	sin->sin_port = htons(peer_port);
	sin->sin_addr.s_addr = htonl(INADDR_ANY);
	ctx = ctx_with(&st);
	mx_deliver(ctx, "relay.test", &res);
	CU_ASSERT_EQUAL(res.status, RELAY_BOUNCED);
	CU_ASSERT_STRING_EQUAL(res.dsn, "5.4.6");
	relay_ctx_free(&ctx);
}

/* A fixed next hop (an address literal, a route, the relayhost) at an
 * address this server listens on, at that port, is this server: never
 * connected to, the mail bounces as a loop. */
static void
test_self_fixed_hop(void)
{
	struct relay_settings st;
	struct relay_self_addr self;
	struct sockaddr_in *sin = (struct sockaddr_in *)&self.sa;
	struct relay_rcpt r = { "user@[127.0.0.2]", NULL, 0 };
	struct relay_ctx *ctx;
	struct relay_result res;
	struct relay_msg m;
	struct peer *p;

	memset(&self, 0, sizeof self);
	sin->sin_family = AF_INET;
	sin->sin_port = htons(peer_port);
	inet_pton(AF_INET, "127.0.0.2", &sin->sin_addr);
	self.salen = sizeof *sin;
	test_settings(&st);
	st.self = &self;
	st.nself = 1;
	msg_init(&m, simple_body);
	p = peer_start("127.0.0.2", NULL);

	ctx = ctx_with(&st);
	relay_deliver(ctx, "[127.0.0.2]", "[127.0.0.2]", peer_port, &m, &r, 1, &res);
	CU_ASSERT_EQUAL(res.status, RELAY_BOUNCED);
	CU_ASSERT_STRING_EQUAL(res.dsn, "5.4.6");
	CU_ASSERT_PTR_NOT_NULL(strstr(res.diag, "mail for [127.0.0.2] loops back to myself"));
	relay_ctx_free(&ctx);

	/* a wildcard listener at the port: any address of this host */
	sin->sin_addr.s_addr = htonl(INADDR_ANY);
	ctx = ctx_with(&st);
	relay_deliver(ctx, "routed.test", "[127.0.0.2]", peer_port, &m, &r, 1, &res);
	CU_ASSERT_EQUAL(res.status, RELAY_BOUNCED);
	CU_ASSERT_STRING_EQUAL(res.dsn, "5.4.6");
	relay_ctx_free(&ctx);

	/* another port is another server */
	sin->sin_port = htons((uint16_t)(peer_port + 1));
	ctx = ctx_with(&st);
	relay_deliver(ctx, "[127.0.0.2]", "[127.0.0.2]", peer_port, &m, &r, 1, &res);
	CU_ASSERT_EQUAL(res.status, RELAY_SENT);
	relay_ctx_free(&ctx);
	peer_stop(p);
	CU_ASSERT_EQUAL(p->messages, 1);
	peer_free(p);
}

/* ------------------------------------------------------------------ */

/* Re-runs this program in a private network namespace when possible. */
static void
enter_netns(int argc, char **argv)
{
	char **nargv;
	int k = 0;

	if (getenv("MS_IN_NETNS") != NULL)
		return;
	if (system("unshare --net true >/dev/null 2>&1") != 0) {
		fprintf(stderr, "note: no private network namespace; using the "
		    "host's loopback\n");
		return;
	}
	nargv = xcalloc((size_t)argc + 8, sizeof *nargv);
	nargv[k++] = "unshare";
	nargv[k++] = "--net";
	nargv[k++] = "env";
	nargv[k++] = "MS_IN_NETNS=1";
	nargv[k++] = "sh";
	nargv[k++] = "-c";
	nargv[k++] = "ip link set lo up && exec \"$0\" \"$@\"";
	for (int i = 0; i < argc; i++)
		nargv[k++] = argv[i];
	nargv[k] = NULL;
	execvp("unshare", nargv);
	fprintf(stderr, "note: exec unshare failed: %s\n", strerror(errno));
	free(nargv);
}

int
main(int argc, char **argv)
{
	CU_pSuite s;
	unsigned failed;

	enter_netns(argc, argv);
	if (getenv("RELAY_TEST_VERBOSE"))
		log_set_level(LOG_LVL_DEBUG);
	signal(SIGPIPE, SIG_IGN);
	/* The first peer picks the port all peers share. */
	{
		struct peer *p0 = peer_start("127.0.0.1", NULL);
		peer_stop(p0);
		peer_free(p0);
	}
	make_peer_cred();
	dns_start();

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("relay", NULL, NULL);
	CU_add_test(s, "reply parser", test_reply_parse);
	CU_add_test(s, "reply limits", test_reply_limits);
	CU_add_test(s, "reply one line", test_reply_oneline);
	CU_add_test(s, "EHLO capabilities", test_caps);
	CU_add_test(s, "TLS-Required header field", test_tls_required_header);
	CU_add_test(s, "DATA encoding", test_data_encode);
	CU_add_test(s, "DATA encoding: whole lines and bytes alike", test_data_encode_paths);
	CU_add_test(s, "DATA line folding", test_data_fold);
	CU_add_test(s, "xtext and address checks", test_xtext_addr);
	CU_add_test(s, "pipelined, exact bytes", test_pipelined_exact_bytes);
	CU_add_test(s, "without pipelining", test_no_pipelining);
	CU_add_test(s, "a body that cannot be read", test_body_unreadable);
	CU_add_test(s, "HELO fallback", test_helo_fallback);
	CU_add_test(s, "partial recipient failures", test_partial_rcpt);
	CU_add_test(s, "every recipient rejected", test_all_rcpt_rejected);
	CU_add_test(s, "replies to MAIL, DATA, end of data", test_data_replies);
	CU_add_test(s, "timeouts", test_timeouts);
	CU_add_test(s, "STARTTLS may", test_tls_may);
	CU_add_test(s, "STARTTLS encrypt", test_tls_encrypt);
	CU_add_test(s, "STARTTLS response injection", test_tls_injection);
	CU_add_test(s, "SIZE and SMTPUTF8", test_size_and_utf8);
	CU_add_test(s, "CR/LF never sent", test_crlf_never_sent);
	CU_add_test(s, "connection reuse", test_reuse);
	CU_add_test(s, "per-destination limit", test_dest_limit);
	CU_add_test(s, "concurrent deliveries", test_concurrent);
	CU_add_test(s, "MX order and fallback", test_mx_order);
	CU_add_test(s, "MX DNS failures", test_mx_dns_failures);
	CU_add_test(s, "fixed destination", test_fixed_dest);
	CU_add_test(s, "too many recipients: 452, 552", test_too_many_rcpts);
	CU_add_test(s, "DSN passed on", test_dsn_passed);
	CU_add_test(s, "421 moves on to the next MX", test_421_next_mx);
	CU_add_test(s, "missing extension: next MX first",
	    test_extension_next_mx);
	CU_add_test(s, "time limit over all addresses", test_attempt_time_limit);
	CU_add_test(s, "MX host at our own address", test_self_by_address);
	CU_add_test(s, "fixed next hop at our own address", test_self_fixed_hop);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	dns_stop();
	gnutls_certificate_free_credentials(peer_cred);
	return failed ? 1 : 0;
}
