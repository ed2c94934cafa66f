/*
 * mailserver: the daemon's main thread. It reads the config, binds the
 * listeners, drops privileges, opens the queue and starts the other
 * threads (committer, session workers, acceptor, delivery), then waits for
 * signals with sigwait: it is the only place a signal acts (DESIGN.md).
 *
 * Exit codes: 0 clean stop, 1 runtime failure, 2 bad config or arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "filter/endpoint.h"
#include "lib/log.h"
#include "lib/util.h"
#include "queue/committer.h"
#include "queue/delivery.h"
#include "queue/results.h"
#include "queue/scheduler.h"
#include "queue/store.h"
#include "relay/mta_sts_fetch.h"
#include "relay/tls_report.h"
#include "relay/tls_store.h"
#include "queue/trace.h"
#include "server/acceptor.h"
#include "server/connlimit.h"
#include "server/control.h"
#include "server/daemon_metrics.h"
#include "server/hold.h"
#include "server/offloop.h"
#include "server/policy.h"
#include "server/pregreet.h"
#include "server/ratelimit.h"
#include "server/runtime.h"
#include "server/sdnotify.h"
#include "server/tls_rpt_daemon.h"
#include "server/worker.h"
#include "server/worker_set.h"

#define DAEMON_PASSWORD_QUEUE 1024	/* logins waiting for a hasher */
/* The lookup and filter pools grow while every thread waits on a slow
 * answer (offloop.h), so that one slow DNS server or filter holds up only
 * the sessions that wait for it. */
#define DAEMON_LOOKUP_THREADS 16
#define DAEMON_LOOKUP_THREADS_MAX 256
#define DAEMON_LOOKUP_QUEUE 8192
#define DAEMON_FILTER_THREADS 32	/* each waits on one filter daemon's answer */
#define DAEMON_FILTER_THREADS_MAX 1024
#define DAEMON_FILTER_QUEUE 8192
#define DAEMON_RATE_CLIENTS 100000	/* clients the rate limits remember */
#define DAEMON_RATE_ACCOUNTS 10000	/* accounts the quotas remember */
#define DAEMON_GREETED_CLIENTS 100000	/* the greeting test's whitelist */
#define DAEMON_DELIVERY_THREADS_MAX 1024	/* delivery_threads' maximum */

struct daemon {
	const char *config_path;
	struct queue_store *store;
	struct tls_store *tls;		/* outbound TLS state: MTA-STS, reports */
	int64_t tls_pruned;		/* monotonic ms of the last prune, 0: none */
	struct committer *committer;
	struct scheduler *scheduler;
	struct delivery *delivery;
	struct worker_set *workers;	/* the session workers */
	struct worker_pools pools;
	struct acceptor *acceptor;
	struct listener_set listeners;
	struct daemon_metrics *metrics;
	struct control *control;	/* <queue_dir>/control (mailctl sessions) */
	unsigned delivery_threads;	/* the pool's size now */
};

static void
usage(void)
{
	fprintf(stderr, "usage: mailserver [-t] [-c FILE]\n");
	exit(2);
}

/* mkdir -p with mode 0700 for the directories we create. */
static int
make_dirs(const char *path)
{
	char tmp[4096];

	if (str_copy(tmp, path, sizeof tmp) < 0)
		return -1;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

static int
drop_privileges(const char *user)
{
	struct passwd *pw = getpwnam(user);

	if (pw == NULL) {
		log_error("user %s: no such user", user);
		return -1;
	}
	if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		log_error("cannot become user %s: %s", user, strerror(errno));
		return -1;
	}
	return 0;
}

/* Makes path belong to user (and its group). */
static int
give_to_user(const char *path, const char *user)
{
	struct passwd *pw = getpwnam(user);

	if (pw == NULL) {
		errno = ENOENT;
		return -1;
	}
	return chown(path, pw->pw_uid, pw->pw_gid);
}

/* Is a log_file value a path (not stderr or syslog)? */
static int
log_is_file(const char *target)
{
	return target != NULL && target[0] != '\0' && strcmp(target, "syslog") != 0;
}

/* Descriptors beyond one per session: listeners, queue, logs, event
 * loops, deliveries (a socket or a file each, and a directory), lookups. */
#define FD_OVERHEAD 64

/* Every session is a descriptor: take all the descriptors we may (the
 * soft limit up to the hard one), and say so when max_connections cannot
 * fit. */
static void
raise_fd_limit(const struct config *cfg)
{
	struct rlimit rl;
	unsigned long long need = (unsigned long long)cfg->max_connections +
	    2ULL * (unsigned)cfg->delivery_threads + 2ULL * (unsigned)cfg->session_workers +
	    FD_OVERHEAD;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit want = rl;

		want.rlim_cur = rl.rlim_max;
		/* An unlimited hard limit is still bounded by the kernel. */
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			rl = want;
		else if (rl.rlim_cur < need && need < rl.rlim_max) {
			want.rlim_cur = need;
			if (setrlimit(RLIMIT_NOFILE, &want) == 0)
				rl = want;
		}
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		log_warn("max_connections %u does not fit in the descriptor limit %llu "
		    "(about %llu needed): raise the hard limit (ulimit -Hn, LimitNOFILE=)",
		    cfg->max_connections, (unsigned long long)rl.rlim_cur, need);
}


/* The control socket's answers (on its thread; worker_set_describe keeps
 * the workers from a reload's changes meanwhile). */
static void
daemon_control(enum control_request req, const char *reqarg, FILE *out, void *arg)
{
	struct daemon *d = arg;
	int json = req == CONTROL_SESSIONS_JSON;

	if (req == CONTROL_TLS_REPORT_SEND) {
		struct runtime *rt = runtime_current();
		tls_rpt_daemon_request(rt->cfg, d->tls, d->committer, reqarg, out);
		runtime_unref(&rt);
		return;
	}
	if (json)
		fputs("{\"sessions\":[", out);
	else
		fprintf(out, "%-39s %-10s %-9s %8s %10s %4s  %s  %s  %s\n", "CLIENT",
		    "LISTENER", "STATE", "AGE", "BYTES", "MSGS", "TLS", "USER", "HELO");
	worker_set_describe(d->workers, out, json);
	if (json)
		fputs("]}\n", out);
}

/* A failed notice to systemd is worth a warning, never a stop. */
static void
daemon_notify(int rc)
{
	if (rc < 0)
		log_warn("sd_notify: cannot reach $NOTIFY_SOCKET");
}

/* READY=1 with a status line: the daemon serves (at start, and after a
 * reload). */
static void
daemon_notify_ready(struct daemon *d)
{
	char status[SDNOTIFY_STATUS_MAX];

	snprintf(status, sizeof status, "serving: %zu listeners, %zu session workers",
	    d->listeners.n, worker_set_size(d->workers));
	daemon_notify(sdnotify_ready(status));
}

/* The rate limits of cfg. */
static void
rate_limits_of(const struct config *cfg, struct ratelimit_limits *l)
{
	memset(l, 0, sizeof *l);
	l->window = cfg->rate_window;
	l->connections = cfg->max_connection_rate;
	l->messages = cfg->max_message_rate;
	l->recipients = cfg->max_recipient_rate;
	l->unknown_recipients = cfg->max_unknown_recipient_rate;
	l->account_messages = cfg->account_max_messages;
	l->account_recipients = cfg->account_max_recipients;
}

/* Loads the config again; on any problem logs it and keeps the old one. */
static void
daemon_reload(struct daemon *d)
{
	char *errtext = NULL, err[512];
	size_t errlen = 0;
	FILE *errs = open_memstream(&errtext, &errlen);
	struct runtime *cur = runtime_current();
	struct runtime *rt = runtime_load(d->config_path, errs, cur);
	struct delivery_policy *policy;
	struct ratelimit_limits limits;
	struct listener_set set;

	fclose(errs);
	runtime_unref(&cur);
	if (rt == NULL) {
		for (char *line = strtok(errtext, "\n"); line; line = strtok(NULL, "\n"))
			log_error("reload: %s", line);
		log_error("reload failed: keeping the old configuration");
		free(errtext);
		return;
	}
	free(errtext);
	if (listener_set_open(rt->cfg, &d->listeners, &set, err, sizeof err) < 0) {
		log_error("reload: %s; keeping the old configuration", err);
		runtime_unref(&rt);
		return;
	}
	if ((policy = policy_from_runtime(rt, d->tls)) == NULL) {
		log_error("reload: delivery settings unusable; keeping the old configuration");
		listener_set_retire(&set, &d->listeners);
		runtime_unref(&rt);
		return;
	}
	acceptor_update(d->acceptor, &set);
	listener_set_retire(&d->listeners, &set);
	d->listeners = set;
	if (daemon_metrics_listen(d->metrics, rt->cfg->metrics_listen, err, sizeof err) < 0)
		log_error("reload: metrics_listen: %s; the endpoint stays as it was", err);
	if (log_open(rt->cfg->log_file) < 0)
		log_error("reload: log_file %s: %s", rt->cfg->log_file, strerror(errno));
	log_set_level(rt->cfg->log_level);
	if ((unsigned)rt->cfg->delivery_threads != d->delivery_threads) {
		d->delivery_threads = (unsigned)rt->cfg->delivery_threads;
		delivery_resize(d->delivery, d->delivery_threads);
	}
	if ((size_t)rt->cfg->session_workers != worker_set_size(d->workers))
		worker_set_resize(d->workers, (size_t)rt->cfg->session_workers);
	scheduler_set_limit(d->scheduler, rt->cfg->max_per_destination);
	trace_set_retention(rt->cfg->trace_retention);
	rate_limits_of(rt->cfg, &limits);
	ratelimit_set_limits(d->pools.rates, &limits);
	delivery_set_policy(d->delivery, policy);
	runtime_swap(rt);
	/* New accounts are seen once they may log in (the process keeps a
	 * reference to the snapshot just made current). */
	hold_accounts_update(d->pools.accounts, rt->udb, time(NULL));
	log_info("reloaded %s", d->config_path);
}

static void
daemon_log_stats(struct daemon *d)
{
	struct store_stats st;

	if (store_stats_get(d->store, &st) != STORE_OK)
		return;
	log_info("stats: received=%llu delivered=%llu deferred=%llu bounced=%llu "
	    "rejected=%llu queue=%llu messages, %llu recipients, sessions=%u",
	    (unsigned long long)st.received, (unsigned long long)st.delivered,
	    (unsigned long long)st.deferred, (unsigned long long)st.bounced,
	    (unsigned long long)st.rejected, (unsigned long long)st.messages,
	    (unsigned long long)st.recipients, connlimit_total());
}

/* SIGUSR1: every deferred recipient is due now (a full queue too). */
static void
daemon_flush(struct daemon *d)
{
	uint64_t n = 0;
	int r = store_flush_all(d->store, time(NULL), &n);

	if (r != STORE_OK)
		log_error("flush: %s", store_status_text(r));
	else
		log_info("flush: %llu deferred recipients due now", (unsigned long long)n);
	scheduler_rescan(d->scheduler);
}

/* Daily, and at start: TLS report counters older than tls_report_keep go
 * (a report covers one day; they are statistics, not mail), and with
 * tls_report_send the day before's reports are mailed. */
static void
daemon_tls_upkeep(struct daemon *d)
{
	int64_t now = time_mono_ms();
	struct runtime *rt;
	long n;

	if (d->tls_pruned != 0 && now - d->tls_pruned < 86400 * 1000LL)
		return;
	d->tls_pruned = now;
	rt = runtime_current();
	n = tls_report_prune(d->tls, (int64_t)time(NULL) -
	    (int64_t)rt->cfg->tls_report_keep);
	if (n < 0)
		log_warn("tls reports: old counters could not be pruned");
	else if (n > 0)
		log_info("tls reports: %ld counters older than %u days pruned", n,
		    rt->cfg->tls_report_keep / 86400);
	tls_rpt_daemon_daily(rt->cfg, d->tls, d->committer, (int64_t)time(NULL));
	runtime_unref(&rt);
}

static void
daemon_wake_scheduler(void *arg)
{
	scheduler_wake(arg);
}

/* MDB_PANIC: the queue cannot be used any more by this process. Exit so
 * that a supervisor restarts the server (every acknowledged message is
 * durable; deliveries in flight are tried again). */
static void
daemon_queue_panic(void *arg)
{
	(void)arg;
	log_error("queue: the LMDB environment is broken (MDB_PANIC); exiting "
	    "with status 1 so that the server is restarted");
	_exit(1);
}

/* Graceful stop: no new sessions, idle ones get 421, messages in DATA
 * finish (up to shutdown_timeout), every pending commit completes. */
static void
daemon_stop(struct daemon *d, unsigned timeout)
{
	int64_t deadline = time_mono_ms() + (int64_t)timeout * 1000, now;
	struct listener_set none = { NULL, 0 };
	sigset_t set;
	struct timespec tick = { 0, 50 * 1000 * 1000 };

	acceptor_stop(&d->acceptor);
	control_stop(&d->control);
	listener_set_retire(&d->listeners, &none);
	daemon_metrics_stop(&d->metrics);
	worker_set_drain(d->workers);
	/* Wait for the sessions to end; a second SIGTERM or SIGINT cuts the
	 * wait short. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	while (time_mono_ms() < deadline) {
		if (worker_set_sessions(d->workers) == 0 || sigtimedwait(&set, NULL, &tick) > 0)
			break;
	}
	/* Deliveries in flight finish and record their results; jobs not
	 * started stay due in the queue. */
	scheduler_shutdown(d->scheduler);
	now = time_mono_ms();
	if (delivery_stop(&d->delivery, deadline > now ?
	    (unsigned)((deadline - now + 999) / 1000) : 1) < 0) {
		/* Deliveries hang on remote servers. Everything acknowledged
		 * is already durable and those recipients are still queued. */
		scheduler_join(d->scheduler);
		trace_stop();
		log_info("stopped");
		_exit(0);
	}
	/* No session runs from here on, so none submits a commit or a job to
	 * what stops next; their last results wait in the workers' mailboxes. */
	worker_set_halt(d->workers);
	/* Their sessions are gone: no job waits out a hung filter daemon. */
	filter_stop_all();
	offloop_stop(&d->pools.passwords);
	offloop_stop(&d->pools.lookups);
	offloop_stop(&d->pools.filters);
	ratelimit_free(&d->pools.rates);
	pregreet_free(&d->pools.greeted);
	hold_accounts_free(&d->pools.accounts);
	committer_stop(&d->committer);
	worker_set_stop(&d->workers);
	scheduler_free(&d->scheduler);
	store_close(&d->store);
	tls_store_close(&d->tls);
	trace_stop();
}

/* What the sessions share: the off-loop pools (password hashing is CPU
 * work, one thread per core at most; lookups mostly wait, so more of
 * them; filter daemons have a pool of their own, so a slow one never
 * holds up the client lookups), and the tables of abuse control, which
 * outlive reloads. */
static int
daemon_start_pools(struct daemon *d, const struct config *cfg)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned hashers = cores < 1 ? 1 : cores > 8 ? 8 : (unsigned)cores;
	struct ratelimit_limits limits;

	rate_limits_of(cfg, &limits);
	d->pools.rates = ratelimit_new(DAEMON_RATE_CLIENTS, DAEMON_RATE_ACCOUNTS, &limits);
	d->pools.greeted = pregreet_new(DAEMON_GREETED_CLIENTS);
	d->pools.store = d->store;

	d->pools.passwords = offloop_start("password", hashers, hashers,
	    DAEMON_PASSWORD_QUEUE);
	d->pools.lookups = offloop_start("lookup", DAEMON_LOOKUP_THREADS,
	    DAEMON_LOOKUP_THREADS_MAX, DAEMON_LOOKUP_QUEUE);
	d->pools.filters = offloop_start("filter", DAEMON_FILTER_THREADS,
	    DAEMON_FILTER_THREADS_MAX, DAEMON_FILTER_QUEUE);
	return d->pools.passwords && d->pools.lookups && d->pools.filters ? 0 : -1;
}

int
main(int argc, char **argv)
{
	struct daemon d = { .config_path = "mailserver.conf" };
	struct runtime *rt;
	const struct config *cfg;
	sigset_t sigs;
	char err[512];
	int opt, check_only = 0, sig, log_created;

	while ((opt = getopt(argc, argv, "c:th")) != -1) {
		switch (opt) {
		case 'c': d.config_path = optarg; break;
		case 't': check_only = 1; break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	if (fd_std_ensure() < 0)
		return 1;

	/* Every thread inherits this mask; only sigwait below takes them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((rt = runtime_load(d.config_path, stderr, NULL)) == NULL)
		return 2;
	if (check_only) {
		runtime_unref(&rt);
		return 0;
	}
	cfg = rt->cfg;
	log_created = log_is_file(cfg->log_file) && access(cfg->log_file, F_OK) != 0;
	if (log_open(cfg->log_file) < 0) {
		fprintf(stderr, "%s: log_file %s: %s\n", d.config_path, cfg->log_file,
		    strerror(errno));
		return 1;
	}
	/* A log file made now, as root, belongs to user: after the drop the
	 * daemon must still reopen it (SIGHUP, SIGUSR2). */
	if (log_created && cfg->user && give_to_user(cfg->log_file, cfg->user) < 0)
		log_warn("log_file %s: cannot give it to %s: %s", cfg->log_file,
		    cfg->user, strerror(errno));
	log_set_level(cfg->log_level);
	raise_fd_limit(cfg);
	if (listener_set_open(cfg, NULL, &d.listeners, err, sizeof err) < 0) {
		log_error("%s", err);
		return 1;
	}
	if (cfg->user && drop_privileges(cfg->user) < 0)
		return 1;
	if (make_dirs(cfg->mail_dir) < 0) {
		log_error("mail_dir %s: %s", cfg->mail_dir, strerror(errno));
		return 1;
	}
	{
		/* One reader slot per thread that reads the queue: the
		 * delivery threads for the largest pool a reload may make, the
		 * filter pool at its largest (milters read staged records),
		 * and room for the daemon's own threads and mailctl. */
		struct store_limits lim = {
			.map_size = cfg->queue_map_size,
			.map_max = cfg->queue_map_max,
			.max_readers = delivery_local_threads(DAEMON_DELIVERY_THREADS_MAX) +
			    delivery_remote_threads(DAEMON_DELIVERY_THREADS_MAX) +
			    DAEMON_FILTER_THREADS_MAX + 72,
		};
		d.store = store_open_limits(cfg->queue_dir, &lim, STORE_EXCLUSIVE,
		    err, sizeof err);
	}
	if (d.store == NULL) {
		log_error("queue %s: %s", cfg->queue_dir, err);
		return 1;
	}
	/* Outbound TLS state, beside the queue and as durable: the MTA-STS
	 * policy cache and the TLS report counters (relay/tls_store.h). */
	if (mta_sts_fetch_global_init() != 0) {
		log_error("libcurl cannot start");
		return 1;
	}
	if ((d.tls = tls_store_open(cfg->queue_dir, 0, err, sizeof err)) == NULL) {
		log_error("queue %s: %s", cfg->queue_dir, err);
		return 1;
	}
	if (trace_start(cfg->queue_dir, cfg->trace_retention, err, sizeof err) < 0) {
		log_error("%s", err);
		return 1;
	}
	if ((d.pools.accounts = hold_accounts_open(cfg->queue_dir, err, sizeof err)) == NULL) {
		log_error("hold: %s", err);
		return 1;
	}
	hold_accounts_update(d.pools.accounts, rt->udb, time(NULL));
	if ((d.committer = committer_start(d.store)) == NULL)
		return 1;
	committer_set_panic(d.committer, daemon_queue_panic, NULL);
	if ((d.scheduler = scheduler_start(d.store, cfg->max_per_destination)) == NULL)
		return 1;
	committer_set_notify(d.committer, daemon_wake_scheduler, d.scheduler);
	{
		struct delivery_policy *policy = policy_from_runtime(rt, d.tls);
		if (policy == NULL)
			return 1;
		d.delivery_threads = (unsigned)cfg->delivery_threads;
		d.delivery = delivery_start(d.store, d.committer, d.scheduler, policy,
		    d.delivery_threads);
	}
	runtime_swap(runtime_ref(rt));
	d.metrics = daemon_metrics_start(d.store, d.scheduler);
	if (daemon_metrics_listen(d.metrics, cfg->metrics_listen, err, sizeof err) < 0) {
		log_error("metrics_listen: %s", err);
		return 1;
	}
	if (daemon_start_pools(&d, cfg) < 0)
		return 1;
	if ((d.workers = worker_set_start((size_t)cfg->session_workers, d.committer,
	    &d.pools)) == NULL)
		return 1;
	if ((d.control = control_start(cfg->queue_dir, daemon_control, &d, err,
	    sizeof err)) == NULL) {
		log_error("%s", err);
		return 1;
	}
	if ((d.acceptor = acceptor_start(&d.listeners, d.workers)) == NULL)
		return 1;
	log_info("mailserver started: %zu listeners, %zu session workers, hostname %s",
	    d.listeners.n, worker_set_size(d.workers), cfg->hostname);
	daemon_notify_ready(&d);

	daemon_tls_upkeep(&d);
	for (;;) {
		struct timespec tick = { 1, 0 };

		/* The housekeeping of the main thread runs about once a
		 * second, between signals; the TLS upkeep is daily. */
		sig = sigtimedwait(&sigs, NULL, &tick);
		tls_store_sync_pending(d.tls);
		daemon_tls_upkeep(&d);
		worker_set_reap(d.workers);
		if (sig < 0) {
			daemon_metrics_tick(d.metrics);
			continue;
		}
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGHUP) {
			daemon_notify(sdnotify_reloading());
			daemon_reload(&d);
			daemon_notify_ready(&d);
		} else if (sig == SIGUSR2) {
			log_reopen();
			daemon_log_stats(&d);
		} else if (sig == SIGUSR1) {
			daemon_flush(&d);
		}
	}
	log_info("stopping (signal %d)", sig);
	daemon_notify(sdnotify_stopping("stopping: finishing sessions and deliveries"));
	{
		struct runtime *cur = runtime_current();
		unsigned timeout = cur->cfg->shutdown_timeout;
		runtime_unref(&cur);
		daemon_stop(&d, timeout);
	}
	runtime_unref(&rt);
	runtime_swap(NULL);
	log_info("stopped");
	return 0;
}
