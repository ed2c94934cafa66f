/* dkim_keyring: signing keys by domain (dkim_keyring.h). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/dkim_keyring.h"
#include "lib/util.h"

struct keyring_domain {
	char *name;
	struct dkim_key *keys[DKIM_KEYRING_PER_DOMAIN];
	size_t nkeys;
};

struct dkim_keyring {
	struct keyring_domain *d;
	size_t n;
	atomic_int refs;
};

struct dkim_keyring *
dkim_keyring_new(void)
{
	struct dkim_keyring *kr = xcalloc(1, sizeof *kr);

	atomic_init(&kr->refs, 1);
	return kr;
}

struct dkim_keyring *
dkim_keyring_ref(struct dkim_keyring *kr)
{
	atomic_fetch_add(&kr->refs, 1);
	return kr;
}

/* The domain without a trailing dot equals name (case-insensitive). */
static int
keyring_same(const char *name, const char *domain)
{
	size_t n = strlen(domain);

	if (n > 0 && domain[n - 1] == '.')
		n--;
	return strlen(name) == n && strncasecmp(name, domain, n) == 0;
}

static struct keyring_domain *
keyring_lookup(const struct dkim_keyring *kr, const char *domain)
{
	for (size_t i = 0; i < kr->n; i++)
		if (keyring_same(kr->d[i].name, domain))
			return &kr->d[i];
	return NULL;
}

int
dkim_keyring_add(struct dkim_keyring *kr, const char *domain,
    const char *selector, const char *path, char *err, size_t errsize)
{
	struct keyring_domain *d = keyring_lookup(kr, domain);
	struct dkim_key *key;

	if (d != NULL && d->nkeys >= DKIM_KEYRING_PER_DOMAIN) {
		snprintf(err, errsize, "%s: more than %d keys", domain,
		    DKIM_KEYRING_PER_DOMAIN);
		return -1;
	}
	if (dkim_key_load(path, domain, selector, &key, err, errsize) != 0)
		return -1;
	if (d == NULL) {
		kr->d = xrealloc(kr->d, (kr->n + 1) * sizeof *kr->d);
		d = &kr->d[kr->n++];
		memset(d, 0, sizeof *d);
		d->name = xstrdup(domain);
		for (char *p = d->name; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		if (d->name[0] != '\0' && d->name[strlen(d->name) - 1] == '.')
			d->name[strlen(d->name) - 1] = '\0';
	}
	d->keys[d->nkeys++] = key;
	return 0;
}

size_t
dkim_keyring_find(const struct dkim_keyring *kr, const char *domain,
    struct dkim_key **keys)
{
	const struct keyring_domain *d;

	if (kr == NULL || domain == NULL || (d = keyring_lookup(kr, domain)) == NULL)
		return 0;
	memcpy(keys, d->keys, d->nkeys * sizeof *keys);
	return d->nkeys;
}

size_t
dkim_keyring_count(const struct dkim_keyring *kr)
{
	return kr != NULL ? kr->n : 0;
}

void
dkim_keyring_free(struct dkim_keyring **krp)
{
	struct dkim_keyring *kr = *krp;

	*krp = NULL;
	if (kr == NULL || atomic_fetch_sub(&kr->refs, 1) != 1)
		return;
	for (size_t i = 0; i < kr->n; i++) {
		for (size_t k = 0; k < kr->d[i].nkeys; k++)
			dkim_key_free(&kr->d[i].keys[k]);
		free(kr->d[i].name);
	}
	free(kr->d);
	free(kr);
}
