/*
 * fast_milter: the smallest useful mail filter for bench/milter. It speaks
 * the milter protocol (version 6) on a loopback TCP port, asks for every
 * event (no steps skipped, a reply to each) and answers continue to all of
 * them, so the MTA pays the whole protocol cost and the filter none of its
 * own. One thread per connection (the MTA opens one per SMTP session).
 *
 *   fast_milter PORT
 *
 * SIGUSR1 prints "eom=N" (end-of-message events answered so far) on
 * stdout; SIGTERM prints it and exits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PACKET_MAX (1024 * 1024)	/* libmilter's own ceiling is larger;
					 * MTAs send body chunks of 64 KiB */

static unsigned long fast_eoms;
static pthread_mutex_t fast_lock = PTHREAD_MUTEX_INITIALIZER;

static int
read_full(int fd, void *p, size_t n)
{
	char *c = p;

	while (n > 0) {
		ssize_t r = read(fd, c, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

static int
write_full(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t r = write(fd, c, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

/* One reply packet: cmd and len bytes of data. */
static int
reply(int fd, char cmd, const void *data, uint32_t len)
{
	unsigned char hdr[5];
	uint32_t n = htonl(len + 1);

	memcpy(hdr, &n, 4);
	hdr[4] = (unsigned char)cmd;
	if (write_full(fd, hdr, 5) != 0)
		return -1;
	return len > 0 ? write_full(fd, data, len) : 0;
}

static void *
serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char *buf = malloc(PACKET_MAX);
	uint32_t n;
	uint32_t optneg[3] = { htonl(6), 0, 0 };	/* version 6, no actions, every step */

	while (buf != NULL && read_full(fd, &n, 4) == 0) {
		n = ntohl(n);
		if (n < 1 || n > PACKET_MAX || read_full(fd, buf, n) != 0)
			break;
		switch (buf[0]) {
		case 'O':
			if (reply(fd, 'O', optneg, sizeof optneg) != 0)
				goto out;
			break;
		case 'D': case 'A': case 'K':		/* no reply */
			break;
		case 'Q':
			goto out;
		case 'E':
			pthread_mutex_lock(&fast_lock);
			fast_eoms++;
			pthread_mutex_unlock(&fast_lock);
			/* FALLTHROUGH */
		default:
			if (reply(fd, 'c', NULL, 0) != 0)
				goto out;
			break;
		}
	}
out:
	free(buf);
	close(fd);
	return NULL;
}

static void *
signals(void *arg)
{
	sigset_t *set = arg;
	int sig;

	for (;;) {
		if (sigwait(set, &sig) != 0)
			continue;
		pthread_mutex_lock(&fast_lock);
		printf("eom=%lu\n", fast_eoms);
		pthread_mutex_unlock(&fast_lock);
		fflush(stdout);
		if (sig == SIGTERM)
			exit(0);
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sin;
	static sigset_t set;
	pthread_attr_t attr;
	pthread_t t;
	int lfd, one = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: fast_milter PORT\n");
		return 2;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	if (pthread_create(&t, &attr, signals, &set) != 0)
		return 1;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)atoi(argv[1]));
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(lfd, 1024) != 0) {
		perror("fast_milter: listen");
		return 1;
	}
	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0) {
			if (errno == EMFILE)
				usleep(10000);	/* sessions end and free some */
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
				continue;
			perror("fast_milter: accept");
			return 1;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (pthread_create(&t, &attr, serve, (void *)(intptr_t)fd) != 0)
			close(fd);
	}
}
