/*
 * hold: the hold rules of the config, applied to a message at the end of
 * its data: one that a rule matches is committed on hold (ENV_HELD) and
 * waits for an administrator (mailctl release, bounce, delete). The
 * rules, any of which holds:
 *   hold_senders     the envelope sender: `user@domain`, `@domain`, `<>`
 *   hold_recipients  any recipient, written the same way
 *   hold_clients     the client's address is in one of these networks
 *   hold_users       the authenticated account is one of these
 *   hold_new_accounts  the authenticated account is newer than this
 *
 * An account's age counts from when this server first saw it in
 * users_file: kept in <queue_dir>/accounts (`user@domain SECONDS` lines,
 * rewritten whole, synced, renamed into place), brought up to date at
 * start and at each reload. When that file does not exist yet, the
 * accounts already listed count as old (a new server, or one that had no
 * such rule before, does not hold everyone's mail). Accounts not in
 * users_file have no known age and are not held by this rule.
 *
 * Errors: hold_accounts_open fails with a message (the directory cannot be
 * read); a file that cannot be written is logged and retried at the next
 * update (the ages stay in memory). Bad lines are logged and skipped.
 * Threads: hold_accounts_update on the main thread; hold_match and
 * hold_accounts_age on any thread (one mutex, held for a lookup).
 */
#ifndef SERVER_HOLD_H
#define SERVER_HOLD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct config;
struct userdb;
struct hold_accounts;

#define HOLD_ACCOUNTS_MAX 1000000	/* accounts remembered */

/* Loads <queue_dir>/accounts (absent: empty, and its accounts count as
 * old at the first update). NULL with a message in err. */
struct hold_accounts *hold_accounts_open(const char *queue_dir, char *err,
    size_t errsize);
void hold_accounts_free(struct hold_accounts **ap);

/* Every user of udb not seen before is seen now (at 0: long ago, when
 * the file did not exist). Writes the file when anything changed. */
void hold_accounts_update(struct hold_accounts *a, const struct userdb *udb,
    int64_t now);

/* Seconds since account (any case) was first seen at now, or -1 when it
 * is not known. */
int64_t hold_accounts_age(struct hold_accounts *a, const char *account, int64_t now);

/* A message at the end of its data. */
struct hold_msg {
	const char *sender;		/* "" for <> */
	const char *const *rcpts;
	size_t nrcpts;
	const struct sockaddr *client;
	const char *auth_user;		/* NULL or "" when not authenticated */
};

/* Does a rule of cfg hold m (accounts may be NULL: no ages known)? 1 with
 * the rule and what it matched in why ("hold_senders <a@b.example>"),
 * else 0. */
int hold_match(const struct config *cfg, struct hold_accounts *accounts,
    const struct hold_msg *m, int64_t now, char *why, size_t whysize);

#endif
