/* pregreet: the greeting test's whitelist, an addrtable of expiry times
 * (see pregreet.h). */
#include "server/pregreet.h"

#include <stdlib.h>
#include <sys/socket.h>

#include "lib/util.h"
#include "server/addrtable.h"
#include "server/connlimit.h"

struct pregreet {
	struct addrtable *clients;
};

struct pregreet_entry {
	int64_t until;			/* ms */
};

/* The client's key (connlimit_key, as every per-address limit); -1 for
 * families other than IPv4 and IPv6. */
static int
pregreet_key(const struct sockaddr *sa, uint8_t key[ADDRTABLE_KEY_SIZE])
{
	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return -1;
	connlimit_key(sa, key);
	return 0;
}

struct pregreet *
pregreet_new(size_t max_clients)
{
	struct pregreet *p = xcalloc(1, sizeof *p);

	p->clients = addrtable_new(max_clients, sizeof(struct pregreet_entry), NULL);
	return p;
}

void
pregreet_free(struct pregreet **pp)
{
	if (*pp == NULL)
		return;
	addrtable_free(&(*pp)->clients);
	free(*pp);
	*pp = NULL;
}

static int
pregreet_set(void *value, int created, void *arg)
{
	struct pregreet_entry *e = value;
	int64_t until = *(int64_t *)arg;

	(void)created;
	if (until > e->until)
		e->until = until;
	return ADDRTABLE_KEEP;
}

void
pregreet_pass(struct pregreet *p, const struct sockaddr *sa, int64_t now_ms,
    unsigned ttl_s)
{
	uint8_t key[ADDRTABLE_KEY_SIZE];
	int64_t until = now_ms + (int64_t)ttl_s * 1000;

	if (ttl_s == 0 || pregreet_key(sa, key) != 0)
		return;
	addrtable_update(p->clients, key, pregreet_set, &until);
}

struct pregreet_check {
	int64_t now;
	int known;
};

static int
pregreet_check(void *value, int created, void *arg)
{
	const struct pregreet_entry *e = value;
	struct pregreet_check *c = arg;

	(void)created;
	c->known = c->now < e->until;
	return c->known ? ADDRTABLE_KEEP : ADDRTABLE_REMOVE;
}

int
pregreet_known(struct pregreet *p, const struct sockaddr *sa, int64_t now_ms)
{
	uint8_t key[ADDRTABLE_KEY_SIZE];
	struct pregreet_check c = { now_ms, 0 };

	if (pregreet_key(sa, key) != 0)
		return 0;
	addrtable_find(p->clients, key, pregreet_check, &c);
	return c.known;
}

void
pregreet_forget(struct pregreet *p, const struct sockaddr *sa)
{
	uint8_t key[ADDRTABLE_KEY_SIZE];

	if (pregreet_key(sa, key) == 0)
		addrtable_remove(p->clients, key);
}

size_t
pregreet_count(struct pregreet *p)
{
	return addrtable_count(p->clients);
}
