/*
 * auth_dns_table: an in-memory zone behind the struct auth_dns interface,
 * for unit tests, the RFC 7208 suite, the test tools and fuzz targets.
 * Answers follow the rules of a real server: a name with some record but
 * none of the type asked is NODATA, an unknown name NXDOMAIN, CNAMEs are
 * followed (8 at most; a loop is a temporary failure), and an explicit
 * TEMP entry makes a (name, type) fail temporarily, as a timeout would.
 *
 * Text form (auth_dns_table_load), one record per line, '#' comments:
 *   NAME TXT "string" ["string"...]   strings joined; \" \\ \DDD escapes;
 *                                     "" is an empty record
 *   NAME TXT text to the end of line  one string, taken as written
 *   NAME A 192.0.2.1 | NAME AAAA 2001:db8::1
 *   NAME MX PREF EXCHANGE             "." is the root (a null MX)
 *   NAME PTR TARGET | NAME CNAME TARGET
 *   NAME TEMP [TYPE]                  every type when TYPE is missing
 * Names are case-insensitive; a trailing dot is ignored.
 *
 * Limits: AUTH_DNS_TABLE_MAX records, names of 1 KiB, TXT of 64 KiB.
 * Threads: build on one thread; lookups on any number afterwards (the
 * query counter is atomic).
 */
#ifndef AUTH_AUTH_DNS_TABLE_H
#define AUTH_AUTH_DNS_TABLE_H

#include <stddef.h>

#include "auth/auth_dns.h"

#define AUTH_DNS_TABLE_MAX	100000

/* An empty table; free with auth_dns_free. */
struct auth_dns *auth_dns_table_new(void);

/*
 * Adds one record to a table made by auth_dns_table_new. type is "A",
 * "AAAA", "MX", "PTR", "TXT", "CNAME" or "TEMP" (any case); value is the
 * text after the type as in the text form, except that a TXT value is
 * the raw bytes of one string (len bytes, NULs allowed). Returns 0, or
 * -1 when the type or value is invalid or the table is full.
 */
int auth_dns_table_add(struct auth_dns *d, const char *name, const char *type,
    const char *value, size_t len);

/*
 * Adds every record of text (len bytes, in the text form above). Returns
 * 0, or -1 with "line N: why" in err (errsize > 0) at the first bad line;
 * the records before it stay.
 */
int auth_dns_table_load(struct auth_dns *d, const char *text, size_t len,
    char *err, size_t errsize);

/* Lookups answered so far (each CNAME hop is not counted again). */
unsigned long auth_dns_table_queries(const struct auth_dns *d);

#endif
