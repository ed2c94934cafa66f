/* acceptor: listening sockets, and the accept loop with connection limits. */
#include "server/acceptor.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/util.h"
#include "server/connlimit.h"
#include "server/runtime.h"
#include "server/worker_set.h"

/* Out of descriptors: accepting pauses this long, doubling up to the max. */
#define ACCEPT_PAUSE_MIN_MS 50
#define ACCEPT_PAUSE_MAX_MS 1000
#define ACCEPT_LOG_EVERY_MS 1000	/* accept errors logged at most this often */

struct acceptor {
	pthread_t thread;
	int epfd;
	int evfd;
	struct worker_set *workers;

	/* acceptor thread only */
	int reserve_fd;			/* /dev/null, given up to refuse one client */
	int64_t paused_until;		/* 0: accepting; else monotonic ms */
	int64_t pause_ms;		/* the next pause */
	int64_t log_next;		/* accept errors may be logged again then */
	unsigned log_suppressed;	/* errors not logged since the last line */

	pthread_mutex_t lock;	/* guards the fields below */
	pthread_cond_t cond;
	struct listener_set pending;	/* a new set to take, if have_pending */
	int have_pending;
	int stop;

	struct listener_set cur;	/* acceptor thread only */
};

static int
listener_bind(const struct listen_spec *spec, char *err, size_t errsize)
{
	int fd, one = 1;

	fd = socket(spec->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (spec->sa.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, (const struct sockaddr *)&spec->sa, spec->salen) < 0 ||
	    listen(fd, 4096) < 0)
		goto fail;
	return fd;
fail:
	snprintf(err, errsize, "listen %s: %s", spec->text, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static const struct listener *
listener_find(const struct listener_set *set, const struct listen_spec *spec)
{
	for (size_t i = 0; set && i < set->n; i++)
		if (set->v[i].spec.salen == spec->salen &&
		    memcmp(&set->v[i].spec.sa, &spec->sa, spec->salen) == 0)
			return &set->v[i];
	return NULL;
}

int
listener_set_open(const struct config *cfg, const struct listener_set *old,
    struct listener_set *set_r, char *err, size_t errsize)
{
	struct listener_set set = { xcalloc(cfg->nlistens, sizeof *set.v), 0 };

	for (size_t i = 0; i < cfg->nlistens; i++) {
		const struct listener *o = listener_find(old, &cfg->listens[i]);
		struct listener *l = &set.v[set.n];

		l->spec = cfg->listens[i];
		if (listener_find(&set, &cfg->listens[i]))
			continue;	/* the same address twice */
		l->fd = o ? o->fd : listener_bind(&cfg->listens[i], err, errsize);
		if (l->fd < 0) {
			for (size_t j = 0; j < set.n; j++)
				if (!listener_find(old, &set.v[j].spec))
					close(set.v[j].fd);
			free(set.v);
			return -1;
		}
		set.n++;
	}
	*set_r = set;
	return 0;
}

void
listener_set_retire(struct listener_set *old, const struct listener_set *set)
{
	for (size_t i = 0; i < old->n; i++)
		if (!listener_find(set, &old->v[i].spec))
			close(old->v[i].fd);
	free(old->v);
	old->v = NULL;
	old->n = 0;
}

static void
acceptor_copy(struct listener_set *dst, const struct listener_set *src)
{
	dst->n = src->n;
	dst->v = xcalloc(src->n ? src->n : 1, sizeof *dst->v);
	memcpy(dst->v, src->v, src->n * sizeof *dst->v);
}

static void
acceptor_watch(struct acceptor *a, const struct listener_set *set, int op)
{
	for (size_t i = 0; i < set->n; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &set->v[i] };
		epoll_ctl(a->epfd, op, set->v[i].fd, &ev);
	}
}

/* One line a second at most, with how many were left out. */
static void
acceptor_log_error(struct acceptor *a, const struct listener *l, int err, int64_t now)
{
	if (now < a->log_next) {
		a->log_suppressed++;
		return;
	}
	if (err == EMFILE || err == ENFILE)
		log_warn("accept on %s: %s: pausing; %u more since the last report",
		    l->spec.text, strerror(err), a->log_suppressed);
	else
		log_warn("accept on %s: %s; %u more since the last report", l->spec.text,
		    strerror(err), a->log_suppressed);
	a->log_suppressed = 0;
	a->log_next = now + ACCEPT_LOG_EVERY_MS;
}

/*
 * Out of descriptors: the connections waiting (up to a batch) are taken
 * one after the other in the slot of the reserve descriptor and told to
 * come back, so clients do not hang in the backlog; then accepting pauses
 * (a listener stays readable, and would make the loop spin) until
 * sessions have ended.
 */
static void
acceptor_out_of_fds(struct acceptor *a, const struct listener *l, int64_t now)
{
	static const char msg[] = "421 4.3.2 Server out of resources, try again later\r\n";

	if (a->reserve_fd >= 0) {
		int fd;

		close(a->reserve_fd);
		a->reserve_fd = -1;
		for (int i = 0; i < 64 &&
		    (fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0; i++) {
			ssize_t r = send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL);
			(void)r;
			close(fd);
		}
		a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	acceptor_watch(a, &a->cur, EPOLL_CTL_DEL);
	a->paused_until = now + a->pause_ms;
	a->pause_ms = a->pause_ms * 2 > ACCEPT_PAUSE_MAX_MS ? ACCEPT_PAUSE_MAX_MS :
	    a->pause_ms * 2;
}

static void
acceptor_accept(struct acceptor *a, const struct listener *l)
{
	for (int i = 0; i < 64 && a->paused_until == 0; i++) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof peer;
		struct runtime *rt;
		int fd, ok;

		fd = accept4(l->fd, (struct sockaddr *)&peer, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			int err = errno;
			int64_t now;

			if (err == EAGAIN || err == EINTR || err == ECONNABORTED)
				return;
			now = time_mono_ms();
			acceptor_log_error(a, l, err, now);
			if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
				acceptor_out_of_fds(a, l, now);
			return;
		}
		a->pause_ms = ACCEPT_PAUSE_MIN_MS;
		metrics_inc(M_CONNECTIONS);
		rt = runtime_current();
		ok = connlimit_acquire((struct sockaddr *)&peer,
		    rt->cfg->max_connections, rt->cfg->max_connections_per_ip) == 0;
		runtime_unref(&rt);
		if (!ok) {
			static const char msg[] = "421 4.7.0 Error: too many connections\r\n";
			ssize_t r = send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL);

			metrics_inc_label(M_REJECTIONS, MR_CONNECTION_LIMIT);
			(void)r;
			close(fd);
			continue;
		}
		worker_set_hand(a->workers, fd, (struct sockaddr *)&peer, len,
		    l->spec.kind);
	}
}

static void *
acceptor_main(void *arg)
{
	struct acceptor *a = arg;
	struct epoll_event evs[64];

	pthread_setname_np(pthread_self(), "acceptor");
	for (;;) {
		int timeout = -1, n;

		if (a->paused_until != 0) {
			int64_t now = time_mono_ms();

			if (now >= a->paused_until) {
				a->paused_until = 0;
				if (a->reserve_fd < 0)
					a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
				acceptor_watch(a, &a->cur, EPOLL_CTL_ADD);
			} else {
				timeout = (int)(a->paused_until - now);
			}
		}
		n = epoll_wait(a->epfd, evs, 64, timeout);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == a) {
				uint64_t v;
				ssize_t r = read(a->evfd, &v, sizeof v);
				(void)r;
				continue;
			}
			acceptor_accept(a, evs[i].data.ptr);
		}
		pthread_mutex_lock(&a->lock);
		if (a->have_pending) {
			if (a->paused_until == 0)
				acceptor_watch(a, &a->cur, EPOLL_CTL_DEL);
			free(a->cur.v);
			a->cur = a->pending;
			a->have_pending = 0;
			if (a->paused_until == 0)
				acceptor_watch(a, &a->cur, EPOLL_CTL_ADD);
			pthread_cond_broadcast(&a->cond);
		}
		if (a->stop) {
			pthread_mutex_unlock(&a->lock);
			break;
		}
		pthread_mutex_unlock(&a->lock);
	}
	if (a->paused_until == 0)
		acceptor_watch(a, &a->cur, EPOLL_CTL_DEL);
	return NULL;
}

struct acceptor *
acceptor_start(const struct listener_set *set, struct worker_set *workers)
{
	struct acceptor *a = xcalloc(1, sizeof *a);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = a };

	a->workers = workers;
	a->pause_ms = ACCEPT_PAUSE_MIN_MS;
	a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	a->epfd = epoll_create1(EPOLL_CLOEXEC);
	a->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->evfd, &ev);
	acceptor_copy(&a->cur, set);
	acceptor_watch(a, &a->cur, EPOLL_CTL_ADD);
	if (pthread_create(&a->thread, NULL, acceptor_main, a) != 0) {
		log_error("acceptor: cannot start thread");
		close(a->epfd);
		close(a->evfd);
		free(a->cur.v);
		free(a);
		return NULL;
	}
	return a;
}

static void
acceptor_wake(struct acceptor *a)
{
	uint64_t one = 1;
	ssize_t r = write(a->evfd, &one, sizeof one);
	(void)r;
}

void
acceptor_update(struct acceptor *a, const struct listener_set *set)
{
	pthread_mutex_lock(&a->lock);
	acceptor_copy(&a->pending, set);
	a->have_pending = 1;
	acceptor_wake(a);
	while (a->have_pending)
		pthread_cond_wait(&a->cond, &a->lock);
	pthread_mutex_unlock(&a->lock);
}

void
acceptor_stop(struct acceptor **ap)
{
	struct acceptor *a = *ap;

	*ap = NULL;
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = 1;
	pthread_mutex_unlock(&a->lock);
	acceptor_wake(a);
	pthread_join(a->thread, NULL);
	close(a->epfd);
	close(a->evfd);
	if (a->reserve_fd >= 0)
		close(a->reserve_fd);
	free(a->cur.v);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	free(a);
}
