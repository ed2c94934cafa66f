/*
 * addrtable: a bounded, thread-safe table of small fixed-size records
 * keyed by 16 bytes (a client's connlimit_key, an exact address, or a
 * keyed hash of a name), with least-recently-used eviction. The per-client state of abuse
 * control lives in such tables: ratelimit's counters, the pregreet
 * whitelist, dnsbl's verdict cache.
 *
 * Memory is fixed at creation: max_entries records of value_size bytes
 * and their index, allocated once. When the table is full, a new key
 * takes the place of the least recently used one (its drop function runs
 * first). An attacker with many addresses can therefore push others out;
 * callers size the tables so that this takes more addresses than a
 * window's worth of real clients.
 *
 * Buckets are chosen with SipHash under a random per-table key, so keys
 * chosen by clients (IPv6 networks are plentiful) cannot pile up in one
 * chain. The table is split in shards, each with its own mutex, so
 * threads touching different keys rarely wait for each other.
 *
 * Errors: out of memory aborts (lib/util.h); nothing else fails.
 * Threads: every function may be called from any thread, except
 * addrtable_free (no other call may run). Callbacks run with the key's
 * shard locked: they must be short, must not block, and must not call
 * back into the same table.
 */
#ifndef SERVER_ADDRTABLE_H
#define SERVER_ADDRTABLE_H

#include <stddef.h>
#include <stdint.h>

#define ADDRTABLE_KEY_SIZE 16
#define ADDRTABLE_MAX_ENTRIES (1u << 24)

struct addrtable;

/* Called with the record's value (value_size bytes, zeroed when the
 * record was just created); returns ADDRTABLE_KEEP or ADDRTABLE_REMOVE
 * (the record is then removed, and drop called on it). */
enum { ADDRTABLE_KEEP = 0, ADDRTABLE_REMOVE = 1 };
typedef int addrtable_fn(void *value, int created, void *arg);

/* Frees what a value owns (called on eviction, removal and free). */
typedef void addrtable_drop_fn(void *value);

/*
 * A table of at most max_entries (1..ADDRTABLE_MAX_ENTRIES) records of
 * value_size bytes (1..4096, aligned for any scalar type). drop may be
 * NULL.
 */
struct addrtable *addrtable_new(size_t max_entries, size_t value_size,
    addrtable_drop_fn *drop);

/* Drops every record and frees the table; sets *tp to NULL. NULL is fine. */
void addrtable_free(struct addrtable **tp);

/* Finds key's record, creating it when absent (evicting the least
 * recently used record of its shard when full), marks it most recently
 * used, and calls fn on it. Returns 1 when the record was created, 0 when
 * it existed. */
int addrtable_update(struct addrtable *t, const uint8_t key[ADDRTABLE_KEY_SIZE],
    addrtable_fn *fn, void *arg);

/* Calls fn on key's record if there is one (created = 0) and marks it
 * most recently used; never creates one. Returns 1 when found, 0 when
 * absent. */
int addrtable_find(struct addrtable *t, const uint8_t key[ADDRTABLE_KEY_SIZE],
    addrtable_fn *fn, void *arg);

/* Removes key's record (drop called). Returns 1 when it was there. */
int addrtable_remove(struct addrtable *t, const uint8_t key[ADDRTABLE_KEY_SIZE]);

/* Records held now. */
size_t addrtable_count(struct addrtable *t);

/* The capacity (max_entries rounded up to a multiple of the shards). */
size_t addrtable_capacity(const struct addrtable *t);

/* The key of a name (an account): 128 bits of SipHash under t's key,
 * over the name's bytes as given (callers normalise case first). */
void addrtable_key_name(const struct addrtable *t, const char *name,
    uint8_t key[ADDRTABLE_KEY_SIZE]);

#endif
