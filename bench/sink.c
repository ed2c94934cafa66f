/*
 * sink: the SMTP server at the end of bench/relay. It takes every message
 * and keeps nothing, with one thread per connection, so that the sink is
 * not what limits an end-to-end run (Postfix's smtp-sink is one process
 * on one core). It speaks just enough ESMTP for both relays: EHLO with
 * PIPELINING, 8BITMIME and SIZE; MAIL, RCPT, RSET, NOOP answered 250;
 * DATA read to its end; QUIT. The count of messages so far is written as
 * "mesg=N\r" every 50 ms, as smtp-sink -c does (bench/common.sh reads it).
 *
 *   sink PORT        listens on 127.0.0.1:PORT until killed
 *
 * Loopback only; bounded: lines of at most 64 KiB, 4,096 connections.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SINK_BUF (256 * 1024)
#define SINK_LINE_MAX (64 * 1024)
#define SINK_CONNS_MAX 4096

static atomic_ulong messages;
static atomic_int conns;

/* Replies wait in out[] until the input read so far is done with, and go
 * in one write (RFC 2920 3.2: a pipelining server answers a group at
 * once); a write per reply would meet Nagle and the client's delayed ACK. */
struct out {
	int fd;
	size_t n;
	char buf[4096];
};

static int
flush_out(struct out *o)
{
	const char *s = o->buf;

	while (o->n > 0) {
		ssize_t w = write(o->fd, s, o->n);

		if (w <= 0)
			return -1;
		s += w;
		o->n -= (size_t)w;
	}
	return 0;
}

static int
say(struct out *o, const char *s)
{
	size_t n = strlen(s);

	if (o->n + n > sizeof o->buf && flush_out(o) != 0)
		return -1;
	memcpy(o->buf + o->n, s, n);
	o->n += n;
	return 0;
}

/* One command line (without CRLF); 1 to enter DATA, -1 to end. */
static int
command(struct out *o, const char *line)
{
	if (strncasecmp(line, "EHLO", 4) == 0)
		return say(o, "250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
		    "250 SIZE 104857600\r\n");
	if (strncasecmp(line, "HELO", 4) == 0)
		return say(o, "250 sink\r\n");
	if (strncasecmp(line, "DATA", 4) == 0)
		return say(o, "354 go on\r\n") == 0 ? 1 : -1;
	if (strncasecmp(line, "QUIT", 4) == 0) {
		(void)say(o, "221 bye\r\n");
		(void)flush_out(o);
		return -1;
	}
	if (strncasecmp(line, "MAIL", 4) == 0 || strncasecmp(line, "RCPT", 4) == 0 ||
	    strncasecmp(line, "RSET", 4) == 0 || strncasecmp(line, "NOOP", 4) == 0)
		return say(o, "250 ok\r\n");
	return say(o, "502 not here\r\n");
}

/* The end of data ("\r\n.\r\n") in the bytes p[0..n), which follow the
 * nprev (<= 4) bytes prev: 1 with *off just past it in p, else 0. */
static int
find_end(const char *prev, size_t nprev, const char *p, size_t n, size_t *off)
{
	static const char end[] = "\r\n.\r\n";
	char win[8];
	size_t take = n < 4 ? n : 4;
	const char *m;

	memcpy(win, prev, nprev);
	memcpy(win + nprev, p, take);
	m = memmem(win, nprev + take, end, 5);
	if (m != NULL && (size_t)(m - win) + 5 > nprev) {
		*off = (size_t)(m - win) + 5 - nprev;
		return 1;
	}
	if ((m = memmem(p, n, end, 5)) != NULL) {
		*off = (size_t)(m - p) + 5;
		return 1;
	}
	return 0;
}

/* prev (nprev <= 4 bytes) becomes the last 4 bytes of prev and p[0..n). */
static void
keep_last(char *prev, size_t *nprev, const char *p, size_t n)
{
	char win[8];
	size_t w;

	if (n >= 4) {
		memcpy(prev, p + n - 4, 4);
		*nprev = 4;
		return;
	}
	memcpy(win, prev, *nprev);
	memcpy(win + *nprev, p, n);
	w = *nprev + n;
	*nprev = w < 4 ? w : 4;
	memcpy(prev, win + w - *nprev, *nprev);
}

static void *
session(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char *buf = malloc(SINK_BUF);
	size_t have = 0, line_start = 0, nprev = 0;
	int in_data = 0;
	char prev[4];		/* in DATA: the last bytes before buf[i] */
	struct out o = { .fd = fd };

	if (buf == NULL || say(&o, "220 sink ESMTP\r\n") != 0 || flush_out(&o) != 0)
		goto out;
	for (;;) {
		ssize_t r = read(fd, buf + have, SINK_BUF - have);
		size_t i, off;

		if (r <= 0)
			break;
		have += (size_t)r;
		i = line_start;
		while (i < have) {
			if (in_data) {
				if (!find_end(prev, nprev, buf + i, have - i, &off)) {
					keep_last(prev, &nprev, buf + i, have - i);
					i = have;
					break;
				}
				i += off;
				in_data = 0;
				atomic_fetch_add(&messages, 1);
				if (say(&o, "250 taken\r\n") != 0)
					goto out;
				line_start = i;
				continue;
			}
			if (buf[i] != '\n') {
				i++;
				continue;
			}
			buf[i] = '\0';
			if (i > line_start && buf[i - 1] == '\r')
				buf[i - 1] = '\0';
			switch (command(&o, buf + line_start)) {
			case 1:
				in_data = 1;
				memcpy(prev, "\r\n", 2);	/* as after a CRLF */
				nprev = 2;
				break;
			case -1:
				goto out;
			}
			line_start = ++i;
		}
		if (flush_out(&o) != 0)
			break;
		if (in_data) {
			/* data bytes are done with at once */
			have = 0;
			line_start = 0;
		} else {
			memmove(buf, buf + line_start, have - line_start);
			have -= line_start;
			line_start = 0;
			if (have >= SINK_LINE_MAX)
				break;	/* no line that long */
		}
	}
out:
	free(buf);
	close(fd);
	atomic_fetch_sub(&conns, 1);
	return NULL;
}

static void *
counter(void *arg)
{
	struct timespec ts = { 0, 50 * 1000 * 1000 };

	(void)arg;
	for (;;) {
		printf("mesg=%lu\r", atomic_load(&messages));
		fflush(stdout);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	pthread_attr_t attr;
	pthread_t th;
	int lfd, one = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: sink PORT\n");
		return 2;
	}
	sin.sin_port = htons((uint16_t)atoi(argv[1]));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
	    listen(lfd, 1024) != 0) {
		perror("sink: listen");
		return 1;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	pthread_create(&th, &attr, counter, NULL);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			continue;
		if (atomic_load(&conns) >= SINK_CONNS_MAX ||
		    (atomic_fetch_add(&conns, 1),
		    pthread_create(&th, &attr, session, (void *)(intptr_t)fd) != 0)) {
			close(fd);
			continue;
		}
	}
}
