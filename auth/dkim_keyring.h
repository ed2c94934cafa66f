/*
 * dkim_keyring: the signing keys of the dkim_sign lines, by domain. A
 * domain may have up to DKIM_KEYRING_PER_DOMAIN keys (an RSA and an
 * Ed25519 key: dual signing, RFC 8463 5); all of them sign its mail.
 *
 * Domains are matched exactly (ASCII case-insensitive, no trailing dot):
 * the From: domain picks the keys, so the signature aligns with it for
 * DMARC in strict mode too.
 *
 * Errors: dkim_keyring_add returns -1 with a message in err (a key that
 * does not load or fails its check, too many keys for a domain).
 * Threads: built on one thread; afterwards read-only, and its keys may
 * sign on any number of threads (dkim.h). References (dkim_keyring_ref,
 * dkim_keyring_free) may be taken and dropped on any thread.
 */
#ifndef AUTH_DKIM_KEYRING_H
#define AUTH_DKIM_KEYRING_H

#include <stddef.h>

#include "auth/dkim.h"

#define DKIM_KEYRING_PER_DOMAIN 4

struct dkim_keyring;

struct dkim_keyring *dkim_keyring_new(void);

/* Loads the key in path to sign for domain with selector (dkim_key_load).
 * Returns 0, or -1 with err. */
int dkim_keyring_add(struct dkim_keyring *kr, const char *domain,
    const char *selector, const char *path, char *err, size_t errsize);

/* The keys of domain, in the order added, into keys (room for
 * DKIM_KEYRING_PER_DOMAIN); returns how many (0: none). */
size_t dkim_keyring_find(const struct dkim_keyring *kr, const char *domain,
    struct dkim_key **keys);

/* Domains with keys. */
size_t dkim_keyring_count(const struct dkim_keyring *kr);

/* Another reference to kr (a runtime reloaded keeps the keys it could
 * not read again); returns kr. */
struct dkim_keyring *dkim_keyring_ref(struct dkim_keyring *kr);

/* Drops a reference; the last frees the keys. Sets *krp to NULL; NULL is
 * fine. */
void dkim_keyring_free(struct dkim_keyring **krp);

#endif
