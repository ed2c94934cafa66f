/* worker_set: the session workers, resized at reload (worker_set.h). */
#include "server/worker_set.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "server/connlimit.h"

struct worker_set {
	struct committer *committer;
	struct worker_pools pools;
	int next_index;			/* main thread: the next worker's number */

	pthread_mutex_t list_lock;	/* guards all, nall */
	struct worker **all;		/* every worker alive, retired ones too */
	size_t nall, capall;

	pthread_mutex_t hand_lock;	/* guards taking, ntaking, next */
	struct worker **taking;		/* the workers taking connections */
	size_t ntaking, captaking;
	size_t next;
};

static int
worker_set_takes(const struct worker_set *ws, const struct worker *w)
{
	for (size_t i = 0; i < ws->ntaking; i++)
		if (ws->taking[i] == w)
			return 1;
	return 0;
}

/* Starts one more worker taking connections; -1 when it cannot start. */
static int
worker_set_grow(struct worker_set *ws)
{
	struct worker *w = worker_start(ws->next_index, ws->committer, &ws->pools);

	if (w == NULL)
		return -1;
	ws->next_index++;
	pthread_mutex_lock(&ws->list_lock);
	if (ws->nall == ws->capall) {
		ws->capall = ws->capall ? ws->capall * 2 : 16;
		ws->all = xrealloc(ws->all, ws->capall * sizeof *ws->all);
	}
	ws->all[ws->nall++] = w;
	pthread_mutex_lock(&ws->hand_lock);
	if (ws->ntaking == ws->captaking) {
		ws->captaking = ws->captaking ? ws->captaking * 2 : 16;
		ws->taking = xrealloc(ws->taking, ws->captaking * sizeof *ws->taking);
	}
	ws->taking[ws->ntaking++] = w;
	pthread_mutex_unlock(&ws->hand_lock);
	pthread_mutex_unlock(&ws->list_lock);
	return 0;
}

struct worker_set *
worker_set_start(size_t n, struct committer *c, const struct worker_pools *pools)
{
	struct worker_set *ws = xcalloc(1, sizeof *ws);

	ws->committer = c;
	ws->pools = *pools;
	pthread_mutex_init(&ws->list_lock, NULL);
	pthread_mutex_init(&ws->hand_lock, NULL);
	for (size_t i = 0; i < n; i++) {
		if (worker_set_grow(ws) < 0) {
			worker_set_halt(ws);
			worker_set_stop(&ws);
			return NULL;
		}
	}
	return ws;
}

size_t
worker_set_size(const struct worker_set *ws)
{
	return ws->ntaking;
}

int
worker_set_resize(struct worker_set *ws, size_t n)
{
	size_t was = ws->ntaking, retiring = 0;
	struct worker **leaving = xcalloc(was ? was : 1, sizeof *leaving);
	int rc = 0;

	while (ws->ntaking < n)
		if ((rc = worker_set_grow(ws)) < 0)
			break;
	/* Out of the hand-over first: once the lock is let go, the acceptor
	 * gives them nothing more, and they may be retired. */
	pthread_mutex_lock(&ws->hand_lock);
	while (ws->ntaking > n && ws->ntaking > 1)
		leaving[retiring++] = ws->taking[--ws->ntaking];
	ws->next = 0;
	pthread_mutex_unlock(&ws->hand_lock);
	for (size_t i = 0; i < retiring; i++)
		worker_retire(leaving[i]);
	free(leaving);
	if (rc < 0)
		log_error("session_workers %zu: only %zu workers could be started", n,
		    ws->ntaking);
	log_info("session_workers %zu: %zu started, %zu retiring (their sessions "
	    "finish first)", ws->ntaking, ws->ntaking > was ? ws->ntaking - was : 0,
	    retiring);
	return rc;
}

size_t
worker_set_reap(struct worker_set *ws)
{
	struct worker **gone;
	size_t ngone = 0, left = 0, k = 0;

	pthread_mutex_lock(&ws->list_lock);
	gone = xcalloc(ws->nall ? ws->nall : 1, sizeof *gone);
	for (size_t i = 0; i < ws->nall; i++) {
		struct worker *w = ws->all[i];

		/* Only the main thread changes the hand-over: no lock to read. */
		if (worker_set_takes(ws, w))
			ws->all[k++] = w;
		else if (worker_ended(w))
			gone[ngone++] = w;
		else {
			ws->all[k++] = w;
			left++;
		}
	}
	ws->nall = k;
	pthread_mutex_unlock(&ws->list_lock);
	/* Nothing reaches them (worker.h): the committer and the pools may
	 * still run. */
	for (size_t i = 0; i < ngone; i++)
		worker_stop(&gone[i]);
	free(gone);
	return left;
}

void
worker_set_hand(struct worker_set *ws, int fd, const struct sockaddr *peer,
    socklen_t peerlen, enum listen_kind kind)
{
	int handed = 0;

	pthread_mutex_lock(&ws->hand_lock);
	/* Round robin, past any worker whose loop has ended. */
	for (size_t tries = 0; tries < ws->ntaking && !handed; tries++) {
		if (ws->next >= ws->ntaking)
			ws->next = 0;
		handed = worker_add_conn(ws->taking[ws->next++], fd, peer, peerlen,
		    kind) == 0;
	}
	pthread_mutex_unlock(&ws->hand_lock);
	if (!handed) {
		static const char msg[] = "421 4.3.2 Server out of session workers\r\n";
		ssize_t r = send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL);

		(void)r;
		close(fd);
		connlimit_release(peer);
	}
}

size_t
worker_set_describe(struct worker_set *ws, FILE *f, int json)
{
	size_t n = 0;

	pthread_mutex_lock(&ws->list_lock);
	for (size_t i = 0; i < ws->nall; i++)
		n += worker_describe(ws->all[i], f, json, n);
	pthread_mutex_unlock(&ws->list_lock);
	return n;
}

void
worker_set_drain(struct worker_set *ws)
{
	for (size_t i = 0; i < ws->nall; i++)
		worker_drain(ws->all[i]);
}

unsigned
worker_set_sessions(struct worker_set *ws)
{
	unsigned n = 0;

	for (size_t i = 0; i < ws->nall; i++)
		n += worker_sessions(ws->all[i]);
	return n;
}

void
worker_set_halt(struct worker_set *ws)
{
	for (size_t i = 0; i < ws->nall; i++)
		worker_halt(ws->all[i]);
}

void
worker_set_stop(struct worker_set **wsp)
{
	struct worker_set *ws = *wsp;

	*wsp = NULL;
	if (ws == NULL)
		return;
	for (size_t i = 0; i < ws->nall; i++)
		worker_stop(&ws->all[i]);
	free(ws->all);
	free(ws->taking);
	pthread_mutex_destroy(&ws->list_lock);
	pthread_mutex_destroy(&ws->hand_lock);
	free(ws);
}
