/*
 * large_client: large messages over SMTP, plain or STARTTLS, from S
 * concurrent sessions, with the server's memory sampled meanwhile. The
 * client of bench/large (built there with cc at start), the same for
 * mailserver and Postfix, and light enough that over TLS the figures are
 * the servers' rather than the client's.
 *
 *   large_client PORT SESSIONS COUNT SIZE RCPT [--tls] [--rate BYTES/S]
 *                [--pids-of PID]
 *
 * Each session (one thread) connects to 127.0.0.1:PORT (EHLO; with --tls
 * STARTTLS and EHLO again) and sends its share of COUNT messages of SIZE
 * bytes (CRLF text, no dot-stuffing needed; built once, shared) one after
 * the other on the same connection, in 256 KiB writes (GnuTLS cuts them
 * into 16 KiB records), the final "." with the last one. --rate caps each
 * session's send rate (a slow client, in 16 KiB pieces). --pids-of PID: a
 * sampler thread sums RssAnon (and VmHWM) over PID and all its
 * descendants (Postfix's master and its smtpd and cleanup processes;
 * mailserver is one process) every 50 ms and keeps the peaks.
 *
 * Output: one line of key=value on stdout: secs (from the first session's
 * start to the last one's end), ok, failed, mib_s and msgs_s (of the
 * messages accepted), peak_anon_kib, peak_hwm_kib, procs. A session that
 * cannot be set up counts its whole share as failed; a message that fails
 * counts once and ends its session. Diagnostics ("session: ...",
 * "message: ...") go to stderr. Exit 0 after a run, 2 for a bad command
 * line, 1 when the client itself cannot start.
 *
 * Bounds: every socket has 300 s send and receive timeouts (SO_SNDTIMEO,
 * SO_RCVTIMEO; connect too) and a timeout is an error, never a retry; a
 * reply line is at most REPLY_LINE_MAX octets and a reply at most
 * REPLY_LINES_MAX lines; EINTR and soft TLS errors are retried at most
 * RETRY_MAX times in a row. The run as a whole is bounded by the caller
 * (timeout(1)). The server's certificate is not verified (the benches use
 * throwaway ones).
 */
#define _GNU_SOURCE	/* memmem */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#define IO_TIMEOUT_SECS	300
#define PIECE_FAST	(256 * 1024)	/* one write of message data */
#define PIECE_SLOW	(16 * 1024)	/* a paced client: a slow link's pieces */
#define REPLY_LINE_MAX	4096
#define REPLY_LINES_MAX	100
#define RETRY_MAX	16
#define ERR_MAX		256
#define SAMPLE_MS	50
#define STATUS_MAX	(64 * 1024)	/* /proc/PID/status read, at most */
#define THREAD_STACK	(512 * 1024)

static const char msg_head[] =
    "From: sender@bench.test\r\nTo: rcpt\r\nSubject: large\r\n\r\n";
static const char msg_line[] =
    "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_=+0123456789\r\n";

struct run_config {
	uint16_t port;
	long sessions;
	long count;
	long size;
	const char *rcpt;
	int tls;
	long rate;	/* bytes/s per session; 0: as fast as it goes */
	long pid;	/* 0: no memory sampling */
};

/* Read-only after main() set it up, except ok and failed (under lock). */
struct run_shared {
	const struct run_config *cfg;
	const char *data;	/* the message and ".\r\n" */
	size_t data_len;
	size_t body_len;	/* the message alone */
	gnutls_certificate_credentials_t cred;
	pthread_mutex_t lock;
	long ok;
	long failed;
};

/* One SMTP session; owned by its worker thread. */
struct session {
	int fd;
	gnutls_session_t tls;	/* NULL until STARTTLS */
	char in[REPLY_LINE_MAX];
	size_t in_len;
	char err[ERR_MAX];
};

struct worker {
	struct run_shared *sh;
	long share;
	pthread_t thread;
	int started;
};

/* Owned by the sampler thread until it is joined. */
struct sampler {
	long root;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;		/* under lock */
	long long peak_anon;
	long long peak_hwm;
	long peak_procs;
	long (*procs)[2];	/* pid, ppid of every process, reused */
	size_t procs_len;
	size_t procs_cap;
	long *tree;		/* root and its descendants, reused */
	size_t tree_cap;
	char *status;		/* a /proc/PID/status, reused */
};

static void
session_fail(struct session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(s->err, sizeof s->err, fmt, ap) < 0)
		s->err[0] = '\0';
	va_end(ap);
}

static double
now_secs(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- session I/O -------------------------------------------------------- */

/*
 * Whether a GnuTLS call that began at t0 and failed with err may be
 * retried: a warning alert, an interruption, or GNUTLS_E_AGAIN that is not
 * the socket's timeout. GnuTLS returns GNUTLS_E_AGAIN on a blocking socket
 * too, after a TLS 1.3 post-handshake message (a session ticket) with no
 * data behind it; SO_RCVTIMEO and SO_SNDTIMEO expiring give the same code,
 * told apart by the time the call took.
 */
static int
tls_soft_error(int err, double t0)
{
	if (err == GNUTLS_E_AGAIN)
		return now_secs() - t0 < IO_TIMEOUT_SECS - 1;
	return !gnutls_error_is_fatal(err);
}

/* Sends all n octets (over TLS once STARTTLS is done). 0, or -1 with err. */
static int
session_send(struct session *s, const char *p, size_t n)
{
	int retries = 0;

	while (n > 0) {
		ssize_t w;

		if (s->tls != NULL) {
			double t0 = now_secs();

			w = gnutls_record_send(s->tls, p, n);
			if (w < 0) {
				if (tls_soft_error((int)w, t0) && ++retries < RETRY_MAX)
					continue;
				session_fail(s, "TLS send: %s", w == GNUTLS_E_AGAIN ?
				    "timed out" : gnutls_strerror((int)w));
				return -1;
			}
		} else {
			w = send(s->fd, p, n, MSG_NOSIGNAL);
			if (w < 0) {
				if (errno == EINTR && ++retries < RETRY_MAX)
					continue;
				session_fail(s, "send: %s", errno == EAGAIN ||
				    errno == EWOULDBLOCK ? "timed out" : strerror(errno));
				return -1;
			}
		}
		if (w == 0) {
			session_fail(s, "send: nothing written");
			return -1;
		}
		retries = 0;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads what is there, up to n octets: > 0, or -1 with err (EOF included). */
static ssize_t
session_recv(struct session *s, char *p, size_t n)
{
	int retries = 0;

	for (;;) {
		ssize_t r;

		if (s->tls != NULL) {
			double t0 = now_secs();

			r = gnutls_record_recv(s->tls, p, n);
			if (r > 0)
				return r;
			if (r == 0 || r == GNUTLS_E_PREMATURE_TERMINATION) {
				session_fail(s, "connection closed");
				return -1;
			}
			if (tls_soft_error((int)r, t0) && ++retries < RETRY_MAX)
				continue;
			session_fail(s, "TLS receive: %s", r == GNUTLS_E_AGAIN ?
			    "timed out" : gnutls_strerror((int)r));
			return -1;
		}
		r = recv(s->fd, p, n, 0);
		if (r > 0)
			return r;
		if (r == 0) {
			session_fail(s, "connection closed");
			return -1;
		}
		if (errno == EINTR && ++retries < RETRY_MAX)
			continue;
		session_fail(s, "receive: %s", errno == EAGAIN || errno == EWOULDBLOCK ?
		    "timed out" : strerror(errno));
		return -1;
	}
}

/*
 * Reads one reply (every line up to the one without '-' after the code)
 * and sets *code_r to its code. Its last line stays in s->err for a
 * caller that did not expect that code. 0, or -1 with err.
 */
static int
session_reply(struct session *s, int *code_r)
{
	int lines;

	for (lines = 0; lines < REPLY_LINES_MAX; lines++) {
		char *eol;
		size_t len;

		/* Each read adds at least one octet to a bounded buffer. */
		while ((eol = memmem(s->in, s->in_len, "\r\n", 2)) == NULL) {
			ssize_t r;

			if (s->in_len == sizeof s->in) {
				session_fail(s, "reply line over %d octets", REPLY_LINE_MAX);
				return -1;
			}
			r = session_recv(s, s->in + s->in_len, sizeof s->in - s->in_len);
			if (r < 0)
				return -1;
			s->in_len += (size_t)r;
		}
		len = (size_t)(eol - s->in);
		if (len < 3 || s->in[0] < '0' || s->in[0] > '9' || s->in[1] < '0' ||
		    s->in[1] > '9' || s->in[2] < '0' || s->in[2] > '9') {
			session_fail(s, "not a reply: %.*s", (int)(len > 80 ? 80 : len), s->in);
			return -1;
		}
		if (len < 4 || s->in[3] != '-') {
			*code_r = (s->in[0] - '0') * 100 + (s->in[1] - '0') * 10 + (s->in[2] - '0');
			session_fail(s, "%.*s", (int)(len > 200 ? 200 : len), s->in);
			memmove(s->in, eol + 2, s->in_len - len - 2);
			s->in_len -= len + 2;
			return 0;
		}
		memmove(s->in, eol + 2, s->in_len - len - 2);
		s->in_len -= len + 2;
	}
	session_fail(s, "reply of over %d lines", REPLY_LINES_MAX);
	return -1;
}

static int
session_expect(struct session *s, int want)
{
	char line[ERR_MAX];
	int code;

	if (session_reply(s, &code) != 0)
		return -1;
	if (code != want) {
		memcpy(line, s->err, sizeof line);
		session_fail(s, "expected %d, got %s", want, line);
		return -1;
	}
	return 0;
}

/* Sends the command text and CRLF, then expects a reply with code want. */
static int
session_cmd(struct session *s, const char *text, int want)
{
	char line[1024];
	int n = snprintf(line, sizeof line, "%s\r\n", text);

	if (n < 0 || (size_t)n >= sizeof line) {
		session_fail(s, "command too long");
		return -1;
	}
	if (session_send(s, line, (size_t)n) != 0)
		return -1;
	return session_expect(s, want);
}

static int
session_starttls(struct session *s, gnutls_certificate_credentials_t cred)
{
	int r, retries;

	/* Whatever came before the handshake must not be read as if after it. */
	if (s->in_len != 0) {
		session_fail(s, "data after the 220 to STARTTLS");
		return -1;
	}
	if ((r = gnutls_init(&s->tls, GNUTLS_CLIENT)) != GNUTLS_E_SUCCESS) {
		s->tls = NULL;
		session_fail(s, "gnutls_init: %s", gnutls_strerror(r));
		return -1;
	}
	if ((r = gnutls_set_default_priority(s->tls)) != GNUTLS_E_SUCCESS ||
	    (r = gnutls_credentials_set(s->tls, GNUTLS_CRD_CERTIFICATE, cred)) !=
	    GNUTLS_E_SUCCESS) {
		session_fail(s, "TLS setup: %s", gnutls_strerror(r));
		return -1;
	}
	gnutls_transport_set_int(s->tls, s->fd);
	gnutls_handshake_set_timeout(s->tls, IO_TIMEOUT_SECS * 1000);
	for (retries = 0; retries < RETRY_MAX; retries++) {
		double t0 = now_secs();

		r = gnutls_handshake(s->tls);
		if (r == GNUTLS_E_SUCCESS)
			return 0;
		if (!tls_soft_error(r, t0))
			break;
	}
	session_fail(s, "TLS handshake: %s", r == GNUTLS_E_AGAIN ? "timed out" :
	    gnutls_strerror(r));
	return -1;
}

/* Connects and greets; s->fd is -1 or an open socket afterwards either way. */
static int
session_open(struct session *s, const struct run_shared *sh)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_SECS, .tv_usec = 0 };
	struct sockaddr_in sin;

	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		session_fail(s, "socket: %s", strerror(errno));
		return -1;
	}
	/* SO_SNDTIMEO bounds connect() as well (Linux). */
	if (setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
		session_fail(s, "setsockopt: %s", strerror(errno));
		return -1;
	}
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(sh->cfg->port);
	if (connect(s->fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
		session_fail(s, "connect: %s", errno == EINPROGRESS ? "timed out" :
		    strerror(errno));
		return -1;
	}
	if (session_expect(s, 220) != 0 || session_cmd(s, "EHLO client.bench.test", 250) != 0)
		return -1;
	if (!sh->cfg->tls)
		return 0;
	if (session_cmd(s, "STARTTLS", 220) != 0 || session_starttls(s, sh->cred) != 0)
		return -1;
	return session_cmd(s, "EHLO client.bench.test", 250);
}

static void
sleep_secs(double secs)
{
	struct timespec ts, rem;
	int i;

	ts.tv_sec = (time_t)secs;
	ts.tv_nsec = (long)((secs - (double)ts.tv_sec) * 1e9);
	if (ts.tv_nsec >= 1000000000L)
		ts.tv_nsec = 999999999L;
	for (i = 0; i < RETRY_MAX && nanosleep(&ts, &rem) != 0 && errno == EINTR; i++)
		ts = rem;
}

/* One transaction: MAIL, RCPT, DATA, the message, "." and its 250. */
static int
session_send_message(struct session *s, const struct run_shared *sh)
{
	const struct run_config *cfg = sh->cfg;
	size_t piece = cfg->rate > 0 ? PIECE_SLOW : PIECE_FAST, off;
	char cmd[1024];
	double t0;
	int n;

	n = snprintf(cmd, sizeof cmd, "MAIL FROM:<sender@bench.test> SIZE=%zu", sh->body_len);
	if (n < 0 || (size_t)n >= sizeof cmd || session_cmd(s, cmd, 250) != 0)
		return -1;
	n = snprintf(cmd, sizeof cmd, "RCPT TO:<%s>", cfg->rcpt);
	if (n < 0 || (size_t)n >= sizeof cmd) {
		session_fail(s, "recipient too long");
		return -1;
	}
	if (session_cmd(s, cmd, 250) != 0 || session_cmd(s, "DATA", 354) != 0)
		return -1;
	/* The final ".\r\n" goes with the last piece of the message. */
	t0 = now_secs();
	for (off = 0; off < sh->data_len; off += piece) {
		size_t len = sh->data_len - off < piece ? sh->data_len - off : piece;

		if (session_send(s, sh->data + off, len) != 0)
			return -1;
		if (cfg->rate > 0) {
			double ahead = (double)(off + piece) / (double)cfg->rate -
			    (now_secs() - t0);

			if (ahead > 0)
				sleep_secs(ahead);
		}
	}
	return session_expect(s, 250);
}

/* Ends the session: QUIT (its reply not awaited) if quit, then the socket. */
static void
session_close(struct session *s, int quit)
{
	if (quit && s->fd >= 0)
		(void)session_send(s, "QUIT\r\n", 6);
	if (s->tls != NULL)
		gnutls_deinit(s->tls);
	s->tls = NULL;
	if (s->fd >= 0)
		(void)close(s->fd);
	s->fd = -1;
}

static void
run_count(struct run_shared *sh, long ok, long failed)
{
	if (pthread_mutex_lock(&sh->lock) != 0)
		abort();	/* a bug: the mutex is initialised and not held */
	sh->ok += ok;
	sh->failed += failed;
	if (pthread_mutex_unlock(&sh->lock) != 0)
		abort();
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct session *s = calloc(1, sizeof *s);
	long i;

	if (s == NULL) {
		fprintf(stderr, "session: out of memory\n");
		run_count(w->sh, 0, w->share);
		return NULL;
	}
	s->fd = -1;
	if (session_open(s, w->sh) != 0) {
		fprintf(stderr, "session: %s\n", s->err);
		run_count(w->sh, 0, w->share);
		session_close(s, 0);
		free(s);
		return NULL;
	}
	for (i = 0; i < w->share; i++) {
		if (session_send_message(s, w->sh) != 0) {
			fprintf(stderr, "message: %s\n", s->err);
			run_count(w->sh, 0, 1);
			break;
		}
		run_count(w->sh, 1, 0);
	}
	session_close(s, 1);
	free(s);
	return NULL;
}

/* ---- memory sampler ----------------------------------------------------- */

/* Reads up to cap - 1 octets of path into buf, NUL-terminated: length or -1. */
static ssize_t
read_small_file(const char *path, char *buf, size_t cap)
{
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), retries = 0;

	if (fd < 0)
		return -1;
	while (len < cap - 1) {
		ssize_t r = read(fd, buf + len, cap - 1 - len);

		if (r < 0 && errno == EINTR && ++retries < RETRY_MAX)
			continue;
		if (r < 0) {
			(void)close(fd);
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	(void)close(fd);
	buf[len] = '\0';
	return (ssize_t)len;
}

/* Every process's pid and ppid into sm->procs. 0, or -1 (out of memory, no /proc). */
static int
sampler_scan(struct sampler *sm)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	char path[64], stat[1024];

	if (d == NULL)
		return -1;
	sm->procs_len = 0;
	while ((e = readdir(d)) != NULL) {
		char *end, *paren;
		long pid = strtol(e->d_name, &end, 10), ppid;
		int n;

		if (e->d_name[0] < '0' || e->d_name[0] > '9' || *end != '\0' || pid <= 0)
			continue;
		n = snprintf(path, sizeof path, "/proc/%ld/stat", pid);
		if (n < 0 || (size_t)n >= sizeof path ||
		    read_small_file(path, stat, sizeof stat) < 0)
			continue;	/* gone meanwhile */
		/* "pid (comm) state ppid ...": comm may hold anything but the last ')' */
		if ((paren = strrchr(stat, ')')) == NULL ||
		    sscanf(paren + 1, " %*c %ld", &ppid) != 1)
			continue;
		if (sm->procs_len == sm->procs_cap) {
			size_t cap = sm->procs_cap ? sm->procs_cap * 2 : 1024;
			long (*p)[2] = realloc(sm->procs, cap * sizeof *p);

			if (p == NULL) {
				(void)closedir(d);
				return -1;
			}
			sm->procs = p;
			sm->procs_cap = cap;
		}
		sm->procs[sm->procs_len][0] = pid;
		sm->procs[sm->procs_len][1] = ppid;
		sm->procs_len++;
	}
	(void)closedir(d);
	return 0;
}

static int
by_ppid(const void *a, const void *b)
{
	const long *x = a, *y = b;

	return (x[1] > y[1]) - (x[1] < y[1]);
}

/* The value in kB of the "\nKEY:" line of a status text, or 0. */
static long long
status_kib(const char *status, const char *key)
{
	const char *p = strstr(status, key);

	return p != NULL ? strtoll(p + strlen(key), NULL, 10) : 0;
}

/* One sample: sums over the root and its descendants, peaks kept. */
static void
sampler_sample(struct sampler *sm)
{
	long long anon = 0, hwm = 0;
	size_t n = 0, i;

	if (sampler_scan(sm) != 0)
		return;
	if (sm->tree_cap < sm->procs_len + 1) {
		long *t = realloc(sm->tree, (sm->procs_len + 1) * sizeof *t);

		if (t == NULL)
			return;
		sm->tree = t;
		sm->tree_cap = sm->procs_len + 1;
	}
	qsort(sm->procs, sm->procs_len, sizeof *sm->procs, by_ppid);
	/* Breadth first; each process has one parent, so each enters once,
	 * and the tree never outgrows the processes seen plus the root. */
	sm->tree[n++] = sm->root;
	for (i = 0; i < n; i++) {
		size_t lo = 0, hi = sm->procs_len;

		while (lo < hi) {	/* the first entry with ppid >= tree[i] */
			size_t mid = lo + (hi - lo) / 2;

			if (sm->procs[mid][1] < sm->tree[i])
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < sm->procs_len && sm->procs[lo][1] == sm->tree[i] &&
		    n < sm->tree_cap; lo++)
			sm->tree[n++] = sm->procs[lo][0];
	}
	for (i = 0; i < n; i++) {
		char path[64];
		int k = snprintf(path, sizeof path, "/proc/%ld/status", sm->tree[i]);

		/* A leading newline, so that every key is found as "\nKEY:". */
		sm->status[0] = '\n';
		if (k < 0 || (size_t)k >= sizeof path ||
		    read_small_file(path, sm->status + 1, STATUS_MAX - 1) < 0)
			continue;	/* gone meanwhile */
		anon += status_kib(sm->status, "\nRssAnon:");
		hwm += status_kib(sm->status, "\nVmHWM:");
	}
	if (anon > sm->peak_anon)
		sm->peak_anon = anon;
	if (hwm > sm->peak_hwm)
		sm->peak_hwm = hwm;
	if ((long)n > sm->peak_procs)
		sm->peak_procs = (long)n;
}

static void *
sampler_main(void *arg)
{
	struct sampler *sm = arg;
	int done = 0;

	/* Each turn waits SAMPLE_MS at most; main() sets done after the run. */
	while (!done) {
		struct timespec until;

		sampler_sample(sm);
		if (clock_gettime(CLOCK_MONOTONIC, &until) != 0)
			abort();	/* CLOCK_MONOTONIC always exists */
		until.tv_nsec += SAMPLE_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if (pthread_mutex_lock(&sm->lock) != 0)
			abort();
		while (!sm->done &&
		    pthread_cond_timedwait(&sm->cond, &sm->lock, &until) == 0)
			;	/* woken early: a spurious wakeup or done */
		done = sm->done;
		if (pthread_mutex_unlock(&sm->lock) != 0)
			abort();
	}
	return NULL;
}

static int
sampler_init(struct sampler *sm, long root)
{
	pthread_condattr_t ca;

	memset(sm, 0, sizeof *sm);
	sm->root = root;
	if ((sm->status = malloc(STATUS_MAX)) == NULL)
		return -1;
	if (pthread_condattr_init(&ca) != 0)
		return -1;
	if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&sm->cond, &ca) != 0) {
		(void)pthread_condattr_destroy(&ca);
		return -1;
	}
	(void)pthread_condattr_destroy(&ca);
	if (pthread_mutex_init(&sm->lock, NULL) != 0)
		return -1;
	return 0;
}

/* Ends the sampler thread t (at most one SAMPLE_MS wait and one sample
 * later) and frees its buffers; the peaks stay readable. */
static void
sampler_stop(struct sampler *sm, pthread_t t)
{
	if (pthread_mutex_lock(&sm->lock) != 0)
		abort();
	sm->done = 1;
	if (pthread_cond_signal(&sm->cond) != 0 || pthread_mutex_unlock(&sm->lock) != 0)
		abort();
	if (pthread_join(t, NULL) != 0)
		abort();
	free(sm->procs);
	free(sm->tree);
	free(sm->status);
	sm->procs = NULL;
	sm->tree = NULL;
	sm->status = NULL;
}

/* ---- command line and run ----------------------------------------------- */

static int
parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int
usage(void)
{
	fprintf(stderr, "usage: large_client PORT SESSIONS COUNT SIZE RCPT [--tls] "
	    "[--rate BYTES/S] [--pids-of PID]\n");
	return 2;
}

/* The message: the head, then whole lines up to SIZE octets, then ".\r\n". */
static char *
message_build(long size, size_t *body_len_r, size_t *data_len_r)
{
	size_t head = sizeof msg_head - 1, line = sizeof msg_line - 1;
	size_t lines = (size_t)size > head ? ((size_t)size - head) / line : 0;
	size_t body = head + lines * line, i;
	char *p = malloc(body + 3), *w;

	if (p == NULL)
		return NULL;
	memcpy(p, msg_head, head);
	for (i = 0, w = p + head; i < lines; i++, w += line)
		memcpy(w, msg_line, line);
	memcpy(w, ".\r\n", 3);
	*body_len_r = body;
	*data_len_r = body + 3;
	return p;
}

int
main(int argc, char **argv)
{
	struct run_config cfg = { 0 };
	struct run_shared sh;
	struct sampler sm;
	struct worker *workers;
	pthread_attr_t attr;
	pthread_t st;
	const char *pos[5];
	long port = 0, i;
	int npos = 0, r, sampling = 0;
	double t0, secs, mib;
	char *data;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--tls") == 0)
			cfg.tls = 1;
		else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc) {
			if (parse_long(argv[++i], 0, 1L << 40, &cfg.rate) != 0)
				return usage();
		} else if (strcmp(argv[i], "--pids-of") == 0 && i + 1 < argc) {
			if (parse_long(argv[++i], 0, 1L << 30, &cfg.pid) != 0)
				return usage();
		} else if (strncmp(argv[i], "--", 2) == 0 || npos == 5)
			return usage();
		else
			pos[npos++] = argv[i];
	}
	if (npos != 5 || parse_long(pos[0], 1, 65535, &port) != 0 ||
	    parse_long(pos[1], 1, 100000, &cfg.sessions) != 0 ||
	    parse_long(pos[2], 0, 1L << 30, &cfg.count) != 0 ||
	    parse_long(pos[3], 0, 1L << 32, &cfg.size) != 0)
		return usage();
	cfg.port = (uint16_t)port;
	cfg.rcpt = pos[4];

	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		perror("large_client: signal");
		return 1;
	}
	memset(&sh, 0, sizeof sh);
	sh.cfg = &cfg;
	if ((data = message_build(cfg.size, &sh.body_len, &sh.data_len)) == NULL) {
		fprintf(stderr, "large_client: out of memory for the message\n");
		return 1;
	}
	sh.data = data;
	if ((r = gnutls_certificate_allocate_credentials(&sh.cred)) != GNUTLS_E_SUCCESS) {
		fprintf(stderr, "large_client: credentials: %s\n", gnutls_strerror(r));
		return 1;
	}
	if (pthread_mutex_init(&sh.lock, NULL) != 0 ||
	    (workers = calloc((size_t)cfg.sessions, sizeof *workers)) == NULL ||
	    pthread_attr_init(&attr) != 0 ||
	    pthread_attr_setstacksize(&attr, THREAD_STACK) != 0) {
		fprintf(stderr, "large_client: cannot set up the sessions\n");
		return 1;
	}
	if (cfg.pid > 0) {
		if (sampler_init(&sm, cfg.pid) != 0 ||
		    pthread_create(&st, &attr, sampler_main, &sm) != 0) {
			fprintf(stderr, "large_client: cannot start the sampler\n");
			return 1;
		}
		sampling = 1;
	}

	t0 = now_secs();
	for (i = 0; i < cfg.sessions; i++) {
		struct worker *w = &workers[i];

		w->sh = &sh;
		w->share = cfg.count / cfg.sessions + (i < cfg.count % cfg.sessions ? 1 : 0);
		if (w->share == 0)
			continue;
		if ((r = pthread_create(&w->thread, &attr, worker_main, w)) != 0) {
			fprintf(stderr, "session: thread: %s\n", strerror(r));
			run_count(&sh, 0, w->share);
			continue;
		}
		w->started = 1;
	}
	for (i = 0; i < cfg.sessions; i++)
		if (workers[i].started && pthread_join(workers[i].thread, NULL) != 0)
			abort();	/* a bug: the thread is joinable */
	secs = now_secs() - t0;
	if (sampling)
		sampler_stop(&sm, st);

	mib = (double)sh.ok * (double)sh.body_len / (1 << 20);
	printf("secs=%.3f ok=%ld failed=%ld mib_s=%.1f msgs_s=%.2f peak_anon_kib=%lld "
	    "peak_hwm_kib=%lld procs=%ld\n", secs, sh.ok, sh.failed,
	    secs > 0 ? mib / secs : 0, secs > 0 ? (double)sh.ok / secs : 0,
	    sampling ? sm.peak_anon : 0, sampling ? sm.peak_hwm : 0,
	    sampling ? sm.peak_procs : 0);
	if (fflush(stdout) != 0) {
		perror("large_client: stdout");
		return 1;
	}
	gnutls_certificate_free_credentials(sh.cred);
	free(workers);
	free(data);
	return 0;
}
