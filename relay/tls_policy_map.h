/*
 * tls_policy_map: the per-destination outbound TLS levels (the
 * `tls_policy` file, Postfix's tls_policy(5) in spirit), parsed into an
 * immutable table.
 *
 * The file: one entry per line, `DOMAIN LEVEL [match=NAME[:NAME...]]`,
 * fields separated by spaces or tabs; `#` at the start of a field starts a
 * comment that runs to the end of the line; blank lines are ignored.
 *   - DOMAIN: a domain name ("example.com": that domain only), or a name
 *     with a leading dot (".example.com": every domain below it, not the
 *     domain itself). Case does not matter. Each key at most once.
 *   - LEVEL: none, may, encrypt, verify, dane, dane-only (tls_level).
 *   - match= (verify only): the names the server certificate may match
 *     instead of the MX host name; a NAME with a leading dot matches any
 *     name below that domain. At most TLS_POLICY_MATCH_MAX names.
 * Lookup: the domain itself, then ".parent" entries from the closest
 * parent up ("a.b.example.com" tries a.b.example.com, .b.example.com,
 * .example.com, .com).
 *
 * Limits: lines of TLS_POLICY_LINE_MAX bytes, TLS_POLICY_ENTRIES_MAX
 * entries, file size TLS_POLICY_FILE_MAX. Diagnostics are `FILE:LINE:
 * message` (FILE as given, line 0 for the file as a whole) on the
 * caller's stream, as the config's, for `mailserver -t`; a file with any
 * error gives no table at all (an old table stays the caller's to keep).
 * Text from the file is printed with control bytes replaced.
 *
 * Threads: a table is immutable after parsing: lookups from any number of
 * threads at once. Out of memory aborts.
 */
#ifndef RELAY_TLS_POLICY_MAP_H
#define RELAY_TLS_POLICY_MAP_H

#include <stddef.h>
#include <stdio.h>

#define TLS_POLICY_LINE_MAX	1024
#define TLS_POLICY_ENTRIES_MAX	100000
#define TLS_POLICY_FILE_MAX	(16u << 20)
#define TLS_POLICY_MATCH_MAX	16
#define TLS_POLICY_ERRORS_MAX	100	/* reported; then the parse stops */

/* Outbound TLS security levels (Postfix's names, RFC 7672, RFC 8461). */
enum tls_level {
	TLS_LEVEL_NONE = 0,	/* never STARTTLS */
	TLS_LEVEL_MAY,		/* STARTTLS when offered, no authentication */
	TLS_LEVEL_ENCRYPT,	/* STARTTLS required, no authentication */
	TLS_LEVEL_VERIFY,	/* required; PKIX chain and name verified */
	TLS_LEVEL_DANE,		/* DANE where TLSA is secure, else MTA-STS,
				 * else may */
	TLS_LEVEL_DANE_ONLY,	/* DANE required: no secure TLSA, no mail */
};

/* "none", "may", ... (static). */
const char *tls_level_str(enum tls_level l);
/* The level named s, or -1. */
int tls_level_parse(const char *s);

struct tls_policy_entry {
	enum tls_level level;
	size_t nmatch;			/* verify: names to match, 0 = the MX host */
	char *match[TLS_POLICY_MATCH_MAX];
	unsigned line;			/* where it was defined */
};

struct tls_policy_map;

/*
 * Parses len bytes of text (the file named name in diagnostics). Returns
 * the number of errors (each printed to errs when errs is not NULL); when
 * it is 0, *map_r is the new table (free with tls_policy_map_free), else
 * *map_r is NULL.
 */
unsigned tls_policy_map_parse(const char *text, size_t len, const char *name,
    FILE *errs, struct tls_policy_map **map_r);

/* Reads and parses the file at path (as tls_policy_map_parse); a file
 * that cannot be read is one error, at line 0. */
unsigned tls_policy_map_load(const char *path, FILE *errs,
    struct tls_policy_map **map_r);

void tls_policy_map_free(struct tls_policy_map **mp);

/* The entry for domain (any case, trailing dot allowed) or NULL. The
 * entry lives as long as the table. */
const struct tls_policy_entry *tls_policy_map_lookup(
    const struct tls_policy_map *m, const char *domain);

/* Entries in the table; entries of one level. */
size_t tls_policy_map_count(const struct tls_policy_map *m);
size_t tls_policy_map_count_level(const struct tls_policy_map *m,
    enum tls_level level);

#endif
