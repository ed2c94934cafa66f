/*
 * hold: the hold rules and the account ages they need (hold.h).
 */
#include "server/hold.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/util.h"
#include "server/config.h"
#include "storage/userdb.h"

#define HOLD_LINE_MAX 512		/* bytes of one line of the accounts file */

struct hold_account {
	char *name;			/* lower case */
	int64_t seen;			/* unix s; 0: before the file existed */
};

struct hold_accounts {
	char *path;
	int fresh;			/* the file did not exist at open */
	int dirty;			/* to be written */
	pthread_mutex_t lock;		/* guards v, n */
	struct hold_account *v;		/* sorted by name */
	size_t n, cap;
};

static int
account_cmp(const void *a, const void *b)
{
	return strcmp(((const struct hold_account *)a)->name,
	    ((const struct hold_account *)b)->name);
}

/* The entry of name (lower case) among the first n (sorted), or NULL.
 * Locked. */
static struct hold_account *
account_find(struct hold_accounts *a, size_t n, const char *name)
{
	struct hold_account key = { (char *)name, 0 };

	return n ? bsearch(&key, a->v, n, sizeof *a->v, account_cmp) : NULL;
}

/* Appends without sorting. Locked. */
static void
account_add(struct hold_accounts *a, const char *name, int64_t seen)
{
	if (a->n >= HOLD_ACCOUNTS_MAX)
		return;
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 64;
		a->v = xrealloc(a->v, a->cap * sizeof *a->v);
	}
	a->v[a->n].name = xstrdup(name);
	a->v[a->n++].seen = seen;
}

/* Sorts, and drops repeated names (the first one stays). Locked. */
static void
accounts_sort(struct hold_accounts *a)
{
	size_t k = 0;

	if (a->n == 0)
		return;
	qsort(a->v, a->n, sizeof *a->v, account_cmp);
	for (size_t i = 1; i < a->n; i++) {
		if (strcmp(a->v[i].name, a->v[k].name) == 0) {
			free(a->v[i].name);
			continue;
		}
		a->v[++k] = a->v[i];
	}
	a->n = k + 1;
}

static void
accounts_load(struct hold_accounts *a, FILE *f)
{
	char line[HOLD_LINE_MAX + 2];
	unsigned lineno = 0;

	while (fgets(line, sizeof line, f) != NULL) {
		char name[HOLD_LINE_MAX + 1];
		long long seen;
		size_t len = strlen(line);

		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		else if (!feof(f)) {
			int ch;
			while ((ch = fgetc(f)) != EOF && ch != '\n')
				;
			log_warn("%s:%u: line too long; skipped", a->path, lineno);
			continue;
		}
		if (sscanf(line, "%512s %lld", name, &seen) != 2 || seen < 0 ||
		    strchr(name, '@') == NULL) {
			log_warn("%s:%u: not 'user@domain SECONDS'; skipped", a->path, lineno);
			continue;
		}
		account_add(a, str_lower(name), seen);
	}
	accounts_sort(a);
}

struct hold_accounts *
hold_accounts_open(const char *queue_dir, char *err, size_t errsize)
{
	struct hold_accounts *a = xcalloc(1, sizeof *a);
	char path[4096];
	FILE *f;

	if ((size_t)snprintf(path, sizeof path, "%s/accounts", queue_dir) >= sizeof path) {
		snprintf(err, errsize, "%s/accounts: path too long", queue_dir);
		free(a);
		return NULL;
	}
	a->path = xstrdup(path);
	pthread_mutex_init(&a->lock, NULL);
	if ((f = fopen(path, "re")) != NULL) {
		accounts_load(a, f);
		fclose(f);
	} else if (errno == ENOENT) {
		a->fresh = 1;
	} else {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		hold_accounts_free(&a);
		return NULL;
	}
	return a;
}

void
hold_accounts_free(struct hold_accounts **ap)
{
	struct hold_accounts *a = *ap;

	*ap = NULL;
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i].name);
	free(a->v);
	free(a->path);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

/* Writes the file whole: a temporary file, synced, renamed into place,
 * the directory synced. Main thread (the only writer). */
static int
accounts_write(struct hold_accounts *a)
{
	char tmp[4200], dir[4096], *slash;
	FILE *f;
	int fd, ok;

	snprintf(tmp, sizeof tmp, "%s.new", a->path);
	if ((f = fopen(tmp, "we")) == NULL)
		return -1;
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < a->n; i++)
		fprintf(f, "%s %" PRId64 "\n", a->v[i].name, a->v[i].seen);
	pthread_mutex_unlock(&a->lock);
	ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, a->path) != 0) {
		unlink(tmp);
		return -1;
	}
	str_copy(dir, a->path, sizeof dir);
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

struct update_walk {
	struct hold_accounts *a;
	size_t sorted;			/* a->v[0..sorted) is sorted */
	int64_t seen;
	size_t added;
};

/* userdb's users are distinct: only the sorted part needs a look. */
static void
update_one(const char *user, void *arg)
{
	struct update_walk *w = arg;

	if (account_find(w->a, w->sorted, user) != NULL)
		return;
	account_add(w->a, user, w->seen);
	w->added++;
}

void
hold_accounts_update(struct hold_accounts *a, const struct userdb *udb, int64_t now)
{
	struct update_walk w = { a, 0, a->fresh ? 0 : now, 0 };

	pthread_mutex_lock(&a->lock);
	w.sorted = a->n;
	userdb_foreach_user(udb, update_one, &w);
	if (a->n != w.sorted)
		accounts_sort(a);
	pthread_mutex_unlock(&a->lock);
	if (w.added > 0 || a->fresh)
		a->dirty = 1;
	if (w.added > 0 && !a->fresh)
		log_info("hold: %zu new accounts seen", w.added);
	if (a->dirty) {
		if (accounts_write(a) == 0) {
			a->dirty = 0;
			a->fresh = 0;
		} else {
			log_warn("hold: cannot write %s: %s; the account ages stay in memory",
			    a->path, strerror(errno));
		}
	}
}

int64_t
hold_accounts_age(struct hold_accounts *a, const char *account, int64_t now)
{
	char name[HOLD_LINE_MAX + 1];
	const struct hold_account *e;
	int64_t age = -1;

	if (a == NULL || str_copy(name, account, sizeof name) != 0)
		return -1;
	str_lower(name);
	pthread_mutex_lock(&a->lock);
	if ((e = account_find(a, a->n, name)) != NULL)
		age = e->seen == 0 ? INT64_MAX : now - e->seen;
	pthread_mutex_unlock(&a->lock);
	return age;
}

/* Does addr ("" for <>) match one of the patterns (lower case)? */
static const char *
hold_address_listed(char *const *list, size_t n, const char *addr)
{
	const char *at = strrchr(addr, '@');

	for (size_t i = 0; i < n; i++) {
		const char *pat = list[i];

		if (strcmp(pat, "<>") == 0 ? addr[0] == '\0' :
		    pat[0] == '@' ? at != NULL && strcasecmp(at, pat) == 0 :
		    strcasecmp(addr, pat) == 0)
			return pat;
	}
	return NULL;
}

int
hold_match(const struct config *cfg, struct hold_accounts *accounts,
    const struct hold_msg *m, int64_t now, char *why, size_t whysize)
{
	const char *pat;
	char client[64];
	int auth = m->auth_user != NULL && m->auth_user[0] != '\0';
	int64_t age;

	if ((pat = hold_address_listed(cfg->hold_senders, cfg->nhold_senders,
	    m->sender)) != NULL) {
		snprintf(why, whysize, "hold_senders %s matches <%s>", pat, m->sender);
		return 1;
	}
	for (size_t i = 0; i < m->nrcpts; i++) {
		if ((pat = hold_address_listed(cfg->hold_recipients,
		    cfg->nhold_recipients, m->rcpts[i])) != NULL) {
			snprintf(why, whysize, "hold_recipients %s matches <%s>", pat,
			    m->rcpts[i]);
			return 1;
		}
	}
	for (size_t i = 0; m->client != NULL && i < cfg->nhold_clients; i++) {
		if (cidr_match(&cfg->hold_clients[i], m->client)) {
			sockaddr_ntop(m->client, client, sizeof client);
			snprintf(why, whysize, "hold_clients matches [%s]", client);
			return 1;
		}
	}
	if (auth && (pat = hold_address_listed(cfg->hold_users, cfg->nhold_users,
	    m->auth_user)) != NULL) {
		snprintf(why, whysize, "hold_users matches sasl_username=%s", m->auth_user);
		return 1;
	}
	if (auth && cfg->hold_new_accounts > 0 &&
	    (age = hold_accounts_age(accounts, m->auth_user, now)) >= 0 &&
	    age < (int64_t)cfg->hold_new_accounts) {
		snprintf(why, whysize, "hold_new_accounts: sasl_username=%s is %" PRId64
		    " s old", m->auth_user, age);
		return 1;
	}
	return 0;
}
