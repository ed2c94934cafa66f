/*
 * userdb: the local users (users_file) and aliases (aliases_file).
 *
 * users_file lines: `user@domain:HASH` (crypt(3) hash, or empty: the user
 * exists but cannot log in). aliases_file lines:
 * `alias@domain: target, target` (targets local or remote addresses).
 * `#` comments and blank lines are allowed in both. A local part may be
 * UTF-8 (RFC 6531). Addresses compare case-insensitively in the domain;
 * local parts compare case-insensitively too (as most sites expect) for
 * ASCII letters, other UTF-8 characters byte for byte.
 *
 * A loaded userdb never changes; SIGHUP loads a new one. Errors in a file
 * are reported as `FILE:LINE: message` and loading fails.
 * Threads: a loaded userdb may be read from any thread; password checks
 * use crypt_r and are thread-safe.
 */
#ifndef STORAGE_USERDB_H
#define STORAGE_USERDB_H

#include <stddef.h>
#include <stdio.h>

struct userdb;

/* Either path may be NULL (then: no users file = any local part exists;
 * no aliases). Returns NULL after printing problems to errs (may be NULL). */
struct userdb *userdb_load(const char *users_file, const char *aliases_file,
    FILE *errs);
void userdb_free(struct userdb **dbp);

/* Calls fn with each user of the users file (lower-cased user@domain),
 * in no particular order. */
void userdb_foreach_user(const struct userdb *db, void (*fn)(const char *user,
    void *arg), void *arg);

/* Does a users file exist (so that unknown local parts are rejected)? */
int userdb_has_users(const struct userdb *db);

enum userdb_kind { USERDB_NONE = 0, USERDB_USER = 1, USERDB_ALIAS = 2 };

/* What addr (user@domain, a local domain) is: a user, an alias, or none.
 * Without a users file every address of a local domain is a user, unless
 * it is an alias. */
enum userdb_kind userdb_lookup(const struct userdb *db, const char *addr);

/* May authenticated user (user@domain) send as sender? 1 when sender is
 * the user itself (any case) or an alias whose expansion reaches the
 * user (aliases of aliases too); 0 otherwise. */
int userdb_sender_owned(const struct userdb *db, const char *user,
    const char *sender);

/* 1 when user (user@domain) exists, has a hash, and password matches. */
int userdb_check_password(const struct userdb *db, const char *user,
    const char *password);

/*
 * Expands addr through the aliases, recursively (an alias may name other
 * aliases), into final addresses (users or remote addresses), each once.
 * is_local(domain, arg) tells which domains are local. Returns the number
 * of addresses stored in *out_r (an array of heap strings; free with
 * userdb_list_free), or -1 when a loop or more than 1000 targets or depth
 * 20 is found (*out_r is NULL then). An address that is not an alias
 * expands to itself.
 */
int userdb_expand(const struct userdb *db, const char *addr,
    int (*is_local)(const char *domain, void *arg), void *arg,
    char ***out_r);
void userdb_list_free(char **list, int n);

#endif
