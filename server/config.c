/*
 * config: reads mailserver.conf into an immutable struct config.
 *
 * The file is read line by line through a fixed buffer (a line longer than
 * CONFIG_LINE_MAX is an error, never a bigger allocation). Each line is
 * `key = value`; the key is looked up in config_keys, a table of name,
 * handler and bounds, and its handler parses and validates the value into
 * the struct. Handlers report problems through config_error and go on, so
 * one run shows every problem in the file; checks that involve several
 * keys (TLS pair, retry bounds, connection limits) run after the last line.
 *
 * Diagnostics: `FILE:LINE: message` on the caller's stream; line 0 for the
 * file as a whole. Text from the file is shown with control bytes replaced.
 */
#include "server/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "filter/endpoint.h"
#include "filter/milter.h"
#include "filter/policy.h"
#include "relay/tls_rpt_mail.h"
#include "server/dnsbl.h"
#include "server/ratelimit.h"
#include "server/metrics_http.h"
#include "server/tls.h"

#define CONFIG_LINE_MAX 4096		/* bytes per line, without the newline */
#define CONFIG_ERRORS_MAX 100		/* then stop reading: hostile input */
#define CONFIG_LISTEN_MAX 256
#define CONFIG_DNS_SERVERS_MAX 16
#define CONFIG_LIST_MAX 4096		/* entries in one list key */
#define CONFIG_DOMAIN_MAX 255
#define CONFIG_SHOW_MAX 64		/* bytes of file text quoted in a message */
#define CONFIG_POLICY_SERVICES_MAX 16
#define CONFIG_MILTERS_MAX 16

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define TIB (GIB * 1024)
#define MINUTE 60u
#define HOUR (60u * MINUTE)
#define DAY (24u * HOUR)

struct config_key;

/* The state of one config_load. */
struct config_parse {
	const char *path;
	FILE *errs;
	struct config *cfg;
	unsigned lineno;		/* line being parsed */
	unsigned nerrors;
	unsigned key_line[128];		/* per config_keys entry: first line set, 0 = never */
};

typedef void config_key_fn(struct config_parse *p, const struct config_key *k, char *value);

struct config_key {
	const char *name;
	config_key_fn *parse;
	size_t offset;			/* of the field in struct config, for generic handlers */
	uint64_t min, max;		/* bounds for numbers, sizes and durations */
	unsigned flags;
};

#define KEY_REPEAT 0x1			/* may appear on several lines; each adds */
#define KEY_EMPTY_OK 0x2		/* an empty value is allowed (empty list) */

static void config_error(struct config_parse *p, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
config_error(struct config_parse *p, unsigned line, const char *fmt, ...)
{
	va_list ap;

	p->nerrors++;
	if (p->errs == NULL || p->nerrors > CONFIG_ERRORS_MAX)
		return;
	flockfile(p->errs);
	fprintf(p->errs, "%s:%u: ", p->path, line);
	va_start(ap, fmt);
	vfprintf(p->errs, fmt, ap);
	va_end(ap);
	fputc('\n', p->errs);
	funlockfile(p->errs);
}

/* s made safe to print inside quotes: control bytes, quotes and non-ASCII
 * become '?', long text is cut with "...". Returns out. */
static const char *
config_show(const char *s, char *out, size_t outsize)
{
	size_t i, n = 0;

	for (i = 0; s[i] != '\0' && n + 4 < outsize; i++) {
		unsigned char ch = (unsigned char)s[i];
		out[n++] = (ch < 0x20 || ch >= 0x7f || ch == '\'') ? '?' : (char)ch;
	}
	if (s[i] != '\0') {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

#define SHOW(s) config_show((s), (char[CONFIG_SHOW_MAX + 4]){ 0 }, CONFIG_SHOW_MAX + 4)

static int
config_is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* Trims s in place; returns the first non-blank byte. */
static char *
config_trim(char *s)
{
	size_t len;

	while (config_is_space(*s))
		s++;
	len = strlen(s);
	while (len > 0 && config_is_space(s[len - 1]))
		s[--len] = '\0';
	return s;
}

/* Next list element of *cursor (separated by blanks or commas), or NULL. */
static char *
config_next_item(char **cursor)
{
	char *s = *cursor, *start;

	while (*s != '\0' && (config_is_space(*s) || *s == ','))
		s++;
	if (*s == '\0') {
		*cursor = s;
		return NULL;
	}
	start = s;
	while (*s != '\0' && !config_is_space(*s) && *s != ',')
		s++;
	if (*s != '\0')
		*s++ = '\0';
	*cursor = s;
	return start;
}

/* Letters, digits, '-' and '.', labels of 1..63 not starting or ending
 * with '-', at most CONFIG_DOMAIN_MAX in all. */
static int
config_valid_domain(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > CONFIG_DOMAIN_MAX)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		char ch = s[i];
		if (ch == '.' || ch == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return 0;
			label = 0;
		} else if (isalnum((unsigned char)ch) || ch == '-') {
			if (label == 0 && ch == '-')
				return 0;
			label++;
		} else {
			return 0;
		}
	}
	return 1;
}

/* A decimal number without sign; -1 on junk or overflow. */
static int
config_parse_digits(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned d;
		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* A number with an optional one-letter unit suffix from units (matched
 * exactly) whose multipliers are mults. */
static int
config_parse_scaled(const char *s, const char *units, const uint64_t *mults, uint64_t *out)
{
	size_t n = strlen(s);
	uint64_t v, mult = 1;
	const char *u;

	if (n > 0 && (s[n - 1] < '0' || s[n - 1] > '9')) {
		u = strchr(units, s[n - 1]);
		if (u == NULL)
			return -1;
		mult = mults[u - units];
		n--;
	}
	if (config_parse_digits(s, n, &v) != 0)
		return -1;
	if (v != 0 && mult > UINT64_MAX / v)
		return -1;
	*out = v * mult;
	return 0;
}

static int
config_parse_size(const char *s, uint64_t *out)
{
	static const uint64_t mults[] = { KIB, MIB, GIB, KIB, MIB, GIB };
	return config_parse_scaled(s, "KMGkmg", mults, out);
}

static int
config_parse_duration(const char *s, uint64_t *out)
{
	static const uint64_t mults[] = { 1, MINUTE, HOUR, DAY };
	return config_parse_scaled(s, "smhd", mults, out);
}

/* "1..65535"; 0 is not a port. */
static int
config_parse_port(const char *s, uint16_t *out)
{
	uint64_t v;

	if (config_parse_digits(s, strlen(s), &v) != 0 || v < 1 || v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

/* v as "8G", "90s"... when it is a whole number of the largest unit. */
static const char *
config_format_scaled(uint64_t v, const char *units, const uint64_t *mults, size_t nunits,
    char *out, size_t outsize)
{
	size_t i = nunits;
	int n;

	while (i > 0 && (v == 0 || v % mults[i - 1] != 0))
		i--;
	if (i > 0)
		n = snprintf(out, outsize, "%llu%c", (unsigned long long)(v / mults[i - 1]),
		    units[i - 1]);
	else
		n = snprintf(out, outsize, "%llu", (unsigned long long)v);
	if (n < 0 || (size_t)n >= outsize)
		str_copy(out, "?", outsize);
	return out;
}

static const char *
config_format_size(uint64_t v, char *out, size_t outsize)
{
	static const uint64_t mults[] = { KIB, MIB, GIB, TIB };
	return config_format_scaled(v, "KMGT", mults, 4, out, outsize);
}

static const char *
config_format_duration(uint64_t v, char *out, size_t outsize)
{
	static const uint64_t mults[] = { 1, MINUTE, HOUR, DAY };
	return config_format_scaled(v, "smhd", mults, 4, out, outsize);
}

#define FIELD(p, k, type) ((type *)(void *)((char *)(p)->cfg + (k)->offset))

/* ---- generic handlers ---- */

static void
key_path(struct config_parse *p, const struct config_key *k, char *value)
{
	*FIELD(p, k, char *) = xstrdup(value);
}

/* A path that must name a regular file now. It is not opened here: the
 * daemon reads it (maybe before dropping privileges), and tools that use
 * the config (mailctl) need not be able to; a file this process may not
 * even look at passes, the daemon reports it when it reads it. */
static void
key_readable_file(struct config_parse *p, const struct config_key *k, char *value)
{
	struct stat st;
	char ebuf[128];

	if (stat(value, &st) != 0 && errno == EACCES) {
		*FIELD(p, k, char *) = xstrdup(value);
		return;
	}
	if (stat(value, &st) != 0) {
		config_error(p, p->lineno, "%s: cannot read '%s': %s", k->name, SHOW(value),
		    strerror_r(errno, ebuf, sizeof ebuf));
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		config_error(p, p->lineno, "%s: '%s' is not a regular file", k->name, SHOW(value));
		return;
	}
	*FIELD(p, k, char *) = xstrdup(value);
}

static void
key_tls_priority(struct config_parse *p, const struct config_key *k, char *value)
{
	char why[256];

	if (tls_priority_check(value, why, sizeof why) < 0) {
		config_error(p, p->lineno, "%s: %s", k->name, why);
		return;
	}
	p->cfg->tls_priority = xstrdup(value);
}

static int
config_check_range(struct config_parse *p, const struct config_key *k, uint64_t v,
    const char *(*format)(uint64_t, char *, size_t))
{
	char lo[32], hi[32];

	if (v >= k->min && v <= k->max)
		return 0;
	config_error(p, p->lineno, "%s: out of range (%s..%s)", k->name,
	    format(k->min, lo, sizeof lo), format(k->max, hi, sizeof hi));
	return -1;
}

static const char *
config_format_plain(uint64_t v, char *out, size_t outsize)
{
	int n = snprintf(out, outsize, "%llu", (unsigned long long)v);
	if (n < 0 || (size_t)n >= outsize)
		str_copy(out, "?", outsize);
	return out;
}

static void
key_unsigned(struct config_parse *p, const struct config_key *k, char *value)
{
	uint64_t v;

	if (config_parse_digits(value, strlen(value), &v) != 0) {
		config_error(p, p->lineno, "%s: '%s' is not a number", k->name, SHOW(value));
		return;
	}
	if (config_check_range(p, k, v, config_format_plain) == 0)
		*FIELD(p, k, unsigned) = (unsigned)v;
}

static void
key_int(struct config_parse *p, const struct config_key *k, char *value)
{
	uint64_t v;

	if (config_parse_digits(value, strlen(value), &v) != 0) {
		config_error(p, p->lineno, "%s: '%s' is not a number", k->name, SHOW(value));
		return;
	}
	if (config_check_range(p, k, v, config_format_plain) == 0)
		*FIELD(p, k, int) = (int)v;
}

static void
key_size(struct config_parse *p, const struct config_key *k, char *value)
{
	uint64_t v;

	if (config_parse_size(value, &v) != 0) {
		config_error(p, p->lineno, "%s: '%s' is not a size (a number with optional K, M or G)",
		    k->name, SHOW(value));
		return;
	}
	if (config_check_range(p, k, v, config_format_size) == 0)
		*FIELD(p, k, size_t) = (size_t)v;
}

static void
key_duration(struct config_parse *p, const struct config_key *k, char *value)
{
	uint64_t v;

	if (config_parse_duration(value, &v) != 0) {
		config_error(p, p->lineno,
		    "%s: '%s' is not a duration (a number with optional s, m, h or d)",
		    k->name, SHOW(value));
		return;
	}
	if (config_check_range(p, k, v, config_format_duration) == 0)
		*FIELD(p, k, unsigned) = (unsigned)v;
}

static void
key_port(struct config_parse *p, const struct config_key *k, char *value)
{
	uint16_t port;

	if (config_parse_port(value, &port) != 0) {
		config_error(p, p->lineno, "%s: '%s' is not a port (1..65535)", k->name, SHOW(value));
		return;
	}
	*FIELD(p, k, uint16_t) = port;
}

/* ---- special handlers ---- */

static void
key_hostname(struct config_parse *p, const struct config_key *k, char *value)
{
	if (!config_valid_domain(value)) {
		config_error(p, p->lineno, "%s: '%s' is not a valid domain name", k->name, SHOW(value));
		return;
	}
	str_copy(p->cfg->hostname, value, sizeof p->cfg->hostname);
}

/* Parses "ADDR:PORT", "[V6]:PORT", "*:PORT" into ls; returns an error text or NULL. */
static const char *
config_parse_listen_addr(char *s, struct listen_spec *ls)
{
	char *host, *port_text, *end;
	uint16_t port;

	if (str_copy(ls->text, s, sizeof ls->text) != 0)
		return "address too long";
	if (s[0] == '[') {
		host = s + 1;
		end = strchr(host, ']');
		if (end == NULL)
			return "missing ']'";
		*end = '\0';
		if (end[1] != ':')
			return "expected ':PORT' after ']'";
		port_text = end + 2;
		if (strchr(host, ':') == NULL)
			return "only IPv6 addresses go in brackets";
	} else {
		port_text = strrchr(s, ':');
		if (port_text == NULL)
			return "expected ADDR:PORT";
		*port_text++ = '\0';
		host = s;
		if (strchr(host, ':') != NULL)
			return "an IPv6 address must be in brackets, e.g. [::1]:2525";
	}
	if (config_parse_port(port_text, &port) != 0)
		return "bad port (1..65535)";
	memset(&ls->sa, 0, sizeof ls->sa);
	if (strchr(host, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)&ls->sa;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return "not a numeric IPv6 address";
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		ls->salen = sizeof *sin6;
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)(void *)&ls->sa;
		if (strcmp(host, "*") == 0)
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return "not a numeric IPv4 address";
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		ls->salen = sizeof *sin;
	}
	return NULL;
}

static int
config_same_sockaddr(const struct listen_spec *a, const struct listen_spec *b)
{
	return a->salen == b->salen && memcmp(&a->sa, &b->sa, a->salen) == 0;
}

static void
key_listen(struct config_parse *p, const struct config_key *k, char *value)
{
	static const struct { const char *name; enum listen_kind kind; } kinds[] = {
		{ "smtp", LISTEN_SMTP },
		{ "submission", LISTEN_SUBMISSION },
		{ "smtps", LISTEN_SMTPS },
	};
	struct config *cfg = p->cfg;
	struct listen_spec ls;
	char *cursor = value, *addr, *kind, *extra;
	const char *why;
	size_t i;

	memset(&ls, 0, sizeof ls);
	ls.kind = LISTEN_SMTP;
	/* Blanks only: a comma would make "addr kind" ambiguous. */
	addr = strtok_r(cursor, " \t", &cursor);
	kind = addr ? strtok_r(NULL, " \t", &cursor) : NULL;
	extra = kind ? strtok_r(NULL, " \t", &cursor) : NULL;
	if (addr == NULL) {
		config_error(p, p->lineno, "%s: missing value", k->name);
		return;
	}
	if (extra != NULL) {
		config_error(p, p->lineno, "%s: unexpected '%s' (one ADDR:PORT [KIND] per line)",
		    k->name, SHOW(extra));
		return;
	}
	if (kind != NULL) {
		for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
			if (strcasecmp(kind, kinds[i].name) == 0)
				break;
		if (i == sizeof kinds / sizeof kinds[0]) {
			config_error(p, p->lineno, "%s: unknown kind '%s' (smtp, submission, smtps)",
			    k->name, SHOW(kind));
			return;
		}
		ls.kind = kinds[i].kind;
	}
	why = config_parse_listen_addr(addr, &ls);
	if (why != NULL) {
		config_error(p, p->lineno, "%s: '%s': %s", k->name, SHOW(ls.text), why);
		return;
	}
	for (i = 0; i < cfg->nlistens; i++) {
		if (config_same_sockaddr(&cfg->listens[i], &ls)) {
			config_error(p, p->lineno, "%s: '%s' is already listed", k->name, SHOW(ls.text));
			return;
		}
	}
	if (cfg->nlistens >= CONFIG_LISTEN_MAX) {
		config_error(p, p->lineno, "%s: too many (at most %d)", k->name, CONFIG_LISTEN_MAX);
		return;
	}
	cfg->listens = xrealloc(cfg->listens, (cfg->nlistens + 1) * sizeof *cfg->listens);
	cfg->listens[cfg->nlistens++] = ls;
}

/* A list of domains, lower-cased, into *listp / *np. */
static void
config_domain_list(struct config_parse *p, const struct config_key *k, char *value,
    char ***listp, size_t *np)
{
	char *cursor = value, *item;

	while ((item = config_next_item(&cursor)) != NULL) {
		if (!config_valid_domain(item)) {
			config_error(p, p->lineno, "%s: '%s' is not a valid domain name", k->name,
			    SHOW(item));
			continue;
		}
		if (*np >= CONFIG_LIST_MAX) {
			config_error(p, p->lineno, "%s: too many entries (at most %d)", k->name,
			    CONFIG_LIST_MAX);
			return;
		}
		*listp = xrealloc(*listp, (*np + 1) * sizeof **listp);
		(*listp)[(*np)++] = str_lower(xstrdup(item));
	}
}

static void
key_local_domains(struct config_parse *p, const struct config_key *k, char *value)
{
	config_domain_list(p, k, value, &p->cfg->local_domains, &p->cfg->nlocal_domains);
}

static void
key_relay_domains(struct config_parse *p, const struct config_key *k, char *value)
{
	config_domain_list(p, k, value, &p->cfg->relay_domains, &p->cfg->nrelay_domains);
}

/* A list of networks into *listp / *np. */
static void
config_network_list(struct config_parse *p, const struct config_key *k, char *value,
    struct cidr **listp, size_t *np)
{
	char *cursor = value, *item;
	struct cidr c;

	while ((item = config_next_item(&cursor)) != NULL) {
		if (cidr_parse(item, &c) != 0) {
			config_error(p, p->lineno, "%s: '%s' is not a network (ADDR or ADDR/PREFIX)",
			    k->name, SHOW(item));
			continue;
		}
		if (*np >= CONFIG_LIST_MAX) {
			config_error(p, p->lineno, "%s: too many entries (at most %d)", k->name,
			    CONFIG_LIST_MAX);
			return;
		}
		*listp = xrealloc(*listp, (*np + 1) * sizeof **listp);
		(*listp)[(*np)++] = c;
	}
}

static void
key_relay_networks(struct config_parse *p, const struct config_key *k, char *value)
{
	config_network_list(p, k, value, &p->cfg->relay_networks, &p->cfg->nrelay_networks);
}

static void
key_auth_plaintext_networks(struct config_parse *p, const struct config_key *k, char *value)
{
	config_network_list(p, k, value, &p->cfg->auth_plaintext_networks,
	    &p->cfg->nauth_plaintext_networks);
}

/* Addresses into *listp / *np, lower-cased: user@domain; with patterns,
 * @domain (every address there) and <> (the null sender) too. */
static void
config_address_list(struct config_parse *p, const struct config_key *k, char *value,
    int patterns, char ***listp, size_t *np)
{
	char *cursor = value, *item, *at;

	while ((item = config_next_item(&cursor)) != NULL) {
		at = strrchr(item, '@');
		if (!(patterns && strcmp(item, "<>") == 0) &&
		    (at == NULL || (at == item && !patterns) || strlen(item) > 320 ||
		    !config_valid_domain(at + 1))) {
			config_error(p, p->lineno, patterns ?
			    "%s: '%s' is not user@domain, @domain or <>" :
			    "%s: '%s' is not an account (user@domain)", k->name, SHOW(item));
			continue;
		}
		if (*np >= CONFIG_LIST_MAX) {
			config_error(p, p->lineno, "%s: too many entries (at most %d)", k->name,
			    CONFIG_LIST_MAX);
			return;
		}
		*listp = xrealloc(*listp, (*np + 1) * sizeof **listp);
		(*listp)[(*np)++] = str_lower(xstrdup(item));
	}
}

/* Accounts (user@domain), lower-cased. */
static void
key_auth_any_sender(struct config_parse *p, const struct config_key *k, char *value)
{
	config_address_list(p, k, value, 0, &p->cfg->auth_any_sender,
	    &p->cfg->nauth_any_sender);
}

static void
key_hold_senders(struct config_parse *p, const struct config_key *k, char *value)
{
	config_address_list(p, k, value, 1, &p->cfg->hold_senders, &p->cfg->nhold_senders);
}

static void
key_hold_recipients(struct config_parse *p, const struct config_key *k, char *value)
{
	config_address_list(p, k, value, 1, &p->cfg->hold_recipients,
	    &p->cfg->nhold_recipients);
}

static void
key_hold_users(struct config_parse *p, const struct config_key *k, char *value)
{
	config_address_list(p, k, value, 0, &p->cfg->hold_users, &p->cfg->nhold_users);
}

static void
key_hold_clients(struct config_parse *p, const struct config_key *k, char *value)
{
	config_network_list(p, k, value, &p->cfg->hold_clients, &p->cfg->nhold_clients);
}

/* "[host]:port", "host:port", "[host]" or "host"; the host a domain name or
 * a numeric address (IPv6 only in brackets). Returns an error text or NULL. */
static const char *
config_parse_hostport(char *s, uint16_t default_port, struct hostport *out)
{
	char *host = s, *port_text = NULL, *end;
	unsigned char addr[16];

	if (s[0] == '[') {
		host = s + 1;
		end = strchr(host, ']');
		if (end == NULL)
			return "missing ']'";
		*end = '\0';
		if (end[1] == ':')
			port_text = end + 2;
		else if (end[1] != '\0')
			return "expected ':PORT' after ']'";
		if (strchr(host, ':') != NULL) {
			if (inet_pton(AF_INET6, host, addr) != 1)
				return "not a valid IPv6 address";
		} else if (!config_valid_domain(host)) {
			return "not a valid host name";
		}
	} else {
		port_text = strchr(s, ':');
		if (port_text != NULL) {
			*port_text++ = '\0';
			if (strchr(port_text, ':') != NULL)
				return "an IPv6 address must be in brackets";
		}
		if (!config_valid_domain(host))
			return "not a valid host name";
	}
	out->port = default_port;
	if (port_text != NULL && config_parse_port(port_text, &out->port) != 0)
		return "bad port (1..65535)";
	if (str_copy(out->host, host, sizeof out->host) != 0)
		return "host name too long";
	return NULL;
}

static void
key_relayhost(struct config_parse *p, const struct config_key *k, char *value)
{
	char buf[CONFIG_LINE_MAX + 1];
	const char *why;

	str_copy(buf, value, sizeof buf);
	why = config_parse_hostport(buf, 25, &p->cfg->relayhost);
	if (why != NULL) {
		config_error(p, p->lineno, "%s: '%s': %s (expected [host]:port)", k->name,
		    SHOW(value), why);
		return;
	}
	p->cfg->has_relayhost = 1;
}

const char *
config_parse_lmtp(const char *s, struct lmtp_target *out)
{
	char buf[CONFIG_LINE_MAX + 1];
	unsigned char addr[16];
	const char *why;

	memset(out, 0, sizeof *out);
	if (strncmp(s, "lmtp:", 5) != 0)
		return "expected lmtp:unix:/path or lmtp:[address]:port";
	s += 5;
	if (strncmp(s, "unix:", 5) == 0) {
		if (s[5] != '/')
			return "unix: needs an absolute path";
		if (str_copy(out->unix_path, s + 5, sizeof out->unix_path) != 0)
			return "socket path too long";
		out->on = 1;
		return NULL;
	}
	if (str_copy(buf, s, sizeof buf) != 0)
		return "too long";
	if ((why = config_parse_hostport(buf, 24, &out->tcp)) != NULL)
		return why;
	/* No name: an LMTP server is found without DNS. */
	if (inet_pton(AF_INET, out->tcp.host, addr) != 1 &&
	    inet_pton(AF_INET6, out->tcp.host, addr) != 1)
		return "the LMTP host must be an IP address ([127.0.0.1]:24)";
	out->on = 1;
	return NULL;
}

static void
key_local_transport(struct config_parse *p, const struct config_key *k, char *value)
{
	const char *why;

	if (strcmp(value, "maildir") == 0) {
		memset(&p->cfg->local_transport, 0, sizeof p->cfg->local_transport);
		return;
	}
	if ((why = config_parse_lmtp(value, &p->cfg->local_transport)) != NULL)
		config_error(p, p->lineno, "%s: '%s': %s (expected maildir, "
		    "lmtp:unix:/path or lmtp:[address]:port)", k->name, SHOW(value), why);
}

static void
key_routes(struct config_parse *p, const struct config_key *k, char *value)
{
	struct config *cfg = p->cfg;
	char *cursor = value, *item, *eq;
	char shown[CONFIG_SHOW_MAX + 4];
	struct route r;
	const char *why;

	while ((item = config_next_item(&cursor)) != NULL) {
		config_show(item, shown, sizeof shown);
		memset(&r, 0, sizeof r);
		eq = strchr(item, '=');
		if (eq == NULL) {
			config_error(p, p->lineno, "%s: '%s': expected domain=[host]:port", k->name,
			    shown);
			continue;
		}
		*eq = '\0';
		if (!config_valid_domain(item)) {
			config_error(p, p->lineno, "%s: '%s': not a valid domain name", k->name, shown);
			continue;
		}
		str_copy(r.domain, item, sizeof r.domain);
		str_lower(r.domain);
		if (strncmp(eq + 1, "lmtp:", 5) == 0)
			why = config_parse_lmtp(eq + 1, &r.lmtp);
		else
			why = config_parse_hostport(eq + 1, 25, &r.dest);
		if (why != NULL) {
			config_error(p, p->lineno, "%s: '%s': %s", k->name, shown, why);
			continue;
		}
		if (config_route_for(cfg, r.domain) != NULL) {
			config_error(p, p->lineno, "%s: '%s': domain already routed", k->name, shown);
			continue;
		}
		if (cfg->nroutes >= CONFIG_LIST_MAX) {
			config_error(p, p->lineno, "%s: too many entries (at most %d)", k->name,
			    CONFIG_LIST_MAX);
			return;
		}
		cfg->routes = xrealloc(cfg->routes, (cfg->nroutes + 1) * sizeof *cfg->routes);
		cfg->routes[cfg->nroutes++] = r;
	}
}

/* "ADDR", "ADDR:PORT", "[V6]:PORT", "[V6]" or a bare IPv6 address. */
static const char *
config_parse_dns_server(char *s, struct hostport *out)
{
	char *host = s, *port_text = NULL, *end;
	unsigned char addr[16];

	if (s[0] == '[') {
		host = s + 1;
		end = strchr(host, ']');
		if (end == NULL)
			return "missing ']'";
		*end = '\0';
		if (end[1] == ':')
			port_text = end + 2;
		else if (end[1] != '\0')
			return "expected ':PORT' after ']'";
		if (inet_pton(AF_INET6, host, addr) != 1)
			return "not a numeric IPv6 address";
	} else if (strchr(s, ':') != NULL && strchr(s, ':') != strrchr(s, ':')) {
		if (inet_pton(AF_INET6, host, addr) != 1)
			return "not a numeric IPv6 address (write [ADDR]:PORT for a port)";
	} else {
		port_text = strchr(s, ':');
		if (port_text != NULL)
			*port_text++ = '\0';
		if (inet_pton(AF_INET, host, addr) != 1)
			return "not a numeric IPv4 address";
	}
	out->port = 53;
	if (port_text != NULL && config_parse_port(port_text, &out->port) != 0)
		return "bad port (1..65535)";
	if (str_copy(out->host, host, sizeof out->host) != 0)
		return "address too long";
	return NULL;
}

static void
key_dns_server(struct config_parse *p, const struct config_key *k, char *value)
{
	struct config *cfg = p->cfg;
	char *cursor = value, *item;
	char shown[CONFIG_SHOW_MAX + 4];
	struct hostport hp;
	const char *why;

	while ((item = config_next_item(&cursor)) != NULL) {
		config_show(item, shown, sizeof shown);
		memset(&hp, 0, sizeof hp);
		why = config_parse_dns_server(item, &hp);
		if (why != NULL) {
			config_error(p, p->lineno, "%s: '%s': %s", k->name, shown, why);
			continue;
		}
		if (cfg->ndns_servers >= CONFIG_DNS_SERVERS_MAX) {
			config_error(p, p->lineno, "%s: too many (at most %d)", k->name,
			    CONFIG_DNS_SERVERS_MAX);
			return;
		}
		cfg->dns_servers = xrealloc(cfg->dns_servers,
		    (cfg->ndns_servers + 1) * sizeof *cfg->dns_servers);
		cfg->dns_servers[cfg->ndns_servers++] = hp;
	}
}

static void
key_tls_outbound(struct config_parse *p, const struct config_key *k, char *value)
{
	static const char *const names[] = { "none", "may", "encrypt", "verify",
	    "dane", "dane-only" };

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(value, names[i]) == 0) {
			p->cfg->tls_outbound = (enum tls_outbound)i;
			return;
		}
	config_error(p, p->lineno, "%s: '%s' is not none, may, encrypt, verify, dane "
	    "or dane-only", k->name, SHOW(value));
}

/* yes or no. */
static void
key_bool(struct config_parse *p, const struct config_key *k, char *value)
{
	if (strcmp(value, "yes") == 0)
		*FIELD(p, k, int) = 1;
	else if (strcmp(value, "no") == 0)
		*FIELD(p, k, int) = 0;
	else
		config_error(p, p->lineno, "%s: '%s' is not yes or no", k->name, SHOW(value));
}

static void
key_log_level(struct config_parse *p, const struct config_key *k, char *value)
{
	int level = log_level_parse(value);

	if (level < 0) {
		config_error(p, p->lineno, "%s: '%s' is not debug, info, warn or error", k->name,
		    SHOW(value));
		return;
	}
	p->cfg->log_level = level;
}

static void
key_user(struct config_parse *p, const struct config_key *k, char *value)
{
	struct passwd pw, *res = NULL;
	long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t size = hint > 0 ? (size_t)hint : 4096;
	char *buf = NULL;
	char ebuf[128];
	int r;

	for (;;) {
		buf = xrealloc(buf, size);
		r = getpwnam_r(value, &pw, buf, size, &res);
		if (r != ERANGE || size >= 1024 * 1024)
			break;
		size *= 2;
	}
	free(buf);
	if (res == NULL) {
		if (r == 0 || r == ENOENT || r == ESRCH)
			config_error(p, p->lineno, "%s: no such user '%s'", k->name, SHOW(value));
		else
			config_error(p, p->lineno, "%s: cannot look up '%s': %s", k->name,
			    SHOW(value), strerror_r(r, ebuf, sizeof ebuf));
		return;
	}
	p->cfg->user = xstrdup(value);
}

static void
key_log_file(struct config_parse *p, const struct config_key *k, char *value)
{
	(void)k;
	/* "syslog" is a target name, anything else a path opened by the log. */
	p->cfg->log_file = xstrdup(value);
}

/* "users_file", or "dovecot:" and the endpoint of Dovecot's auth-client
 * socket. */
static void
key_auth_service(struct config_parse *p, const struct config_key *k, char *value)
{
	struct filter_endpoint ep;
	char why[256];

	if (strcmp(value, "users_file") == 0)
		return;
	if (strncmp(value, "dovecot:", 8) != 0) {
		config_error(p, p->lineno, "%s: '%s' is not users_file or "
		    "dovecot:unix:/path or dovecot:inet:host:port", k->name, SHOW(value));
		return;
	}
	if (filter_endpoint_parse(value + 8, &ep, why, sizeof why) != 0) {
		config_error(p, p->lineno, "%s: %s", k->name, SHOW(why));
		return;
	}
	p->cfg->auth_dovecot = xstrdup(value + 8);
}

static void
key_policy_services(struct config_parse *p, const struct config_key *k, char *value)
{
	struct config *cfg = p->cfg;
	char *cursor = value, *item, why[256];
	struct filter_endpoint ep;

	while ((item = config_next_item(&cursor)) != NULL) {
		if (filter_endpoint_parse(item, &ep, why, sizeof why) != 0) {
			config_error(p, p->lineno, "%s: %s", k->name, SHOW(why));
			continue;
		}
		if (cfg->npolicy_services >= CONFIG_POLICY_SERVICES_MAX) {
			config_error(p, p->lineno, "%s: too many (at most %d)", k->name,
			    CONFIG_POLICY_SERVICES_MAX);
			return;
		}
		cfg->policy_services = xrealloc(cfg->policy_services,
		    (cfg->npolicy_services + 1) * sizeof *cfg->policy_services);
		cfg->policy_services[cfg->npolicy_services++] = xstrdup(item);
	}
}

/* A duration of a milter option, 1s to 1d; 0 on error (reported). */
static unsigned
config_milter_duration(struct config_parse *p, const char *key, const char *v)
{
	uint64_t d;

	if (config_parse_duration(v, &d) != 0 || d < 1 || d > DAY) {
		config_error(p, p->lineno, "milters: %s='%s' is not a duration of 1s to 1d",
		    key, SHOW(v));
		return 0;
	}
	return (unsigned)d;
}

/* One milter: "ENDPOINT [default_action=X] [connect_timeout=T]
 * [command_timeout=T] [eom_timeout=T]". */
static void
config_milter_add(struct config_parse *p, char *text)
{
	struct config *cfg = p->cfg;
	struct config_milter m = { .default_action = -1 };
	struct filter_endpoint ep;
	char *cursor = text, *item, *eq, why[256];
	unsigned *t;
	enum milter_default d;

	if ((item = config_next_item(&cursor)) == NULL)
		return;
	if (filter_endpoint_parse(item, &ep, why, sizeof why) != 0) {
		config_error(p, p->lineno, "milters: %s", SHOW(why));
		return;
	}
	if (cfg->nmilters >= CONFIG_MILTERS_MAX) {
		config_error(p, p->lineno, "milters: too many (at most %d)",
		    CONFIG_MILTERS_MAX);
		return;
	}
	m.endpoint = item;
	while ((item = config_next_item(&cursor)) != NULL) {
		if ((eq = strchr(item, '=')) == NULL) {
			config_error(p, p->lineno, "milters: '%s' is not NAME=VALUE", SHOW(item));
			return;
		}
		*eq++ = '\0';
		t = NULL;
		if (strcmp(item, "default_action") == 0) {
			if (milter_default_parse(eq, &d) != 0) {
				config_error(p, p->lineno, "milters: default_action='%s' is "
				    "not accept, tempfail or reject", SHOW(eq));
				return;
			}
			m.default_action = (int)d;
		} else if (strcmp(item, "connect_timeout") == 0) {
			t = &m.connect_timeout;
		} else if (strcmp(item, "command_timeout") == 0) {
			t = &m.command_timeout;
		} else if (strcmp(item, "eom_timeout") == 0) {
			t = &m.eom_timeout;
		} else {
			config_error(p, p->lineno, "milters: unknown option '%s'", SHOW(item));
			return;
		}
		if (t != NULL && (*t = config_milter_duration(p, item, eq)) == 0)
			return;
	}
	m.endpoint = xstrdup(m.endpoint);
	cfg->milters = xrealloc(cfg->milters, (cfg->nmilters + 1) * sizeof *cfg->milters);
	cfg->milters[cfg->nmilters++] = m;
}

/* Milters separated by commas, each with its options after spaces. */
static void
key_milters(struct config_parse *p, const struct config_key *k, char *value)
{
	char *save = NULL, *one;

	(void)k;
	for (one = strtok_r(value, ",", &save); one != NULL;
	    one = strtok_r(NULL, ",", &save))
		config_milter_add(p, one);
}

static void
key_milter_default_action(struct config_parse *p, const struct config_key *k,
    char *value)
{
	enum milter_default d;

	if (milter_default_parse(value, &d) != 0) {
		config_error(p, p->lineno, "%s: '%s' is not accept, tempfail or reject",
		    k->name, SHOW(value));
		return;
	}
	p->cfg->milter_default_action = (int)d;
}

/* An action as a policy service would answer it (filter/policy.h). */
static void
key_policy_default_action(struct config_parse *p, const struct config_key *k, char *value)
{
	struct policy_verdict v;
	const char *why;

	if (strlen(value) > POLICY_ACTION_MAX || policy_action_parse(value, &v, &why) != 0) {
		config_error(p, p->lineno, "%s: '%s' is not a policy action (DUNNO, "
		    "DEFER text, 450 4.7.1 text, ...)", k->name, SHOW(value));
		return;
	}
	p->cfg->policy_default_action = xstrdup(value);
}

static void
key_policy_stages(struct config_parse *p, const struct config_key *k, char *value)
{
	char *cursor = value, *item;

	p->cfg->policy_stages = 0;
	while ((item = config_next_item(&cursor)) != NULL) {
		if (strcmp(item, "rcpt") == 0)
			p->cfg->policy_stages |= CONFIG_POLICY_RCPT;
		else if (strcmp(item, "end_of_data") == 0)
			p->cfg->policy_stages |= CONFIG_POLICY_EOM;
		else
			config_error(p, p->lineno, "%s: '%s' is not rcpt or end_of_data",
			    k->name, SHOW(item));
	}
}

static void
key_authserv_id(struct config_parse *p, const struct config_key *k, char *value)
{
	/* RFC 8601 2.5: a token; a domain name in practice. */
	if (strlen(value) >= sizeof p->cfg->authserv_id ||
	    strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789.-_") != strlen(value)) {
		config_error(p, p->lineno, "%s: '%s' is not a host name", k->name,
		    SHOW(value));
		return;
	}
	str_copy(p->cfg->authserv_id, value, sizeof p->cfg->authserv_id);
}

static void
key_tls_report_from(struct config_parse *p, const struct config_key *k, char *value)
{
	if (!tls_rpt_addr_valid(value) || strlen(value) >= sizeof p->cfg->tls_report_from) {
		config_error(p, p->lineno, "%s: '%s' is not a plain address "
		    "(local@domain)", k->name, SHOW(value));
		return;
	}
	str_copy(p->cfg->tls_report_from, value, sizeof p->cfg->tls_report_from);
}

static void
key_auth_tempfail(struct config_parse *p, const struct config_key *k, char *value)
{
	if (strcmp(value, "defer") == 0)
		p->cfg->auth_tempfail_defer = 1;
	else if (strcmp(value, "accept") == 0)
		p->cfg->auth_tempfail_defer = 0;
	else
		config_error(p, p->lineno, "%s: '%s' is not defer or accept", k->name,
		    SHOW(value));
}

/* dkim_sign = DOMAIN SELECTOR KEYFILE; the key is loaded with the
 * runtime (runtime.c), so that -t and SIGHUP check it. */
static void
key_dkim_sign(struct config_parse *p, const struct config_key *k, char *value)
{
	struct config *cfg = p->cfg;
	char *cursor = value, *item[4];
	size_t n = 0;

	while (n < 4 && (item[n] = config_next_item(&cursor)) != NULL)
		n++;
	if (n != 3) {
		config_error(p, p->lineno, "%s: want DOMAIN SELECTOR KEYFILE", k->name);
		return;
	}
	if (!config_valid_domain(item[0]) || !config_valid_domain(item[1]) ||
	    strchr(item[0], '.') == NULL) {
		config_error(p, p->lineno, "%s: '%s' '%s' is not a domain and a selector",
		    k->name, SHOW(item[0]), SHOW(item[1]));
		return;
	}
	/* A key we may not read (root's, read at start before the drop of
	 * privileges) is left to the daemon, which loads the keys: mailctl
	 * needs none of them. */
	if (access(item[2], R_OK) != 0 && errno != EACCES && errno != EPERM) {
		config_error(p, p->lineno, "%s: %s: %s", k->name, SHOW(item[2]),
		    strerror(errno));
		return;
	}
	cfg->dkim_sign = xrealloc(cfg->dkim_sign, (cfg->ndkim_sign + 1) *
	    sizeof *cfg->dkim_sign);
	cfg->dkim_sign[cfg->ndkim_sign].domain = xstrdup(item[0]);
	cfg->dkim_sign[cfg->ndkim_sign].selector = xstrdup(item[1]);
	cfg->dkim_sign[cfg->ndkim_sign].key_file = xstrdup(item[2]);
	cfg->ndkim_sign++;
}

/* "ADDR:PORT" or "[ADDR]:PORT", numeric (metrics_http_parse_addr). */
static void
key_metrics_listen(struct config_parse *p, const struct config_key *k, char *value)
{
	struct sockaddr_storage sa;
	socklen_t salen;
	char why[128];

	if (metrics_http_parse_addr(value, &sa, &salen, why, sizeof why) < 0) {
		config_error(p, p->lineno, "%s: '%s': %s", k->name, SHOW(value), why);
		return;
	}
	p->cfg->metrics_listen = xstrdup(value);
}

/* "zone[=weight] ..." (dnsbl_zones_parse). */
static void
key_dnsbl(struct config_parse *p, const struct config_key *k, char *value)
{
	struct dnsbl_zone *zones = xcalloc(DNSBL_MAX_ZONES, sizeof *zones);
	char why[256];
	size_t n = 0;

	if (dnsbl_zones_parse(value, zones, DNSBL_MAX_ZONES, &n, why, sizeof why) < 0) {
		config_error(p, p->lineno, "%s: %s", k->name, why);
		free(zones);
		return;
	}
	p->cfg->dnsbl = zones;
	p->cfg->ndnsbl = n;
}

#define OFF(field) offsetof(struct config, field)

static const struct config_key config_keys[] = {
	{ "hostname", key_hostname, 0, 0, 0, 0 },
	{ "listen", key_listen, 0, 0, 0, KEY_REPEAT },
	{ "queue_dir", key_path, OFF(queue_dir), 0, 0, 0 },
	{ "mail_dir", key_path, OFF(mail_dir), 0, 0, 0 },
	{ "local_domains", key_local_domains, 0, 0, 0, KEY_EMPTY_OK },
	{ "local_transport", key_local_transport, 0, 0, 0, 0 },
	{ "users_file", key_readable_file, OFF(users_file), 0, 0, 0 },
	{ "aliases_file", key_readable_file, OFF(aliases_file), 0, 0, 0 },
	{ "relay_networks", key_relay_networks, 0, 0, 0, KEY_EMPTY_OK },
	{ "relay_domains", key_relay_domains, 0, 0, 0, KEY_EMPTY_OK },
	{ "routes", key_routes, 0, 0, 0, KEY_EMPTY_OK },
	{ "relayhost", key_relayhost, 0, 0, 0, 0 },
	{ "dns_server", key_dns_server, 0, 0, 0, KEY_REPEAT },
	{ "smtp_port", key_port, OFF(smtp_port), 0, 0, 0 },
	{ "session_workers", key_int, OFF(session_workers), 0, 256, 0 },
	{ "delivery_threads", key_int, OFF(delivery_threads), 1, 1024, 0 },
	{ "max_connections", key_unsigned, OFF(max_connections), 1, 1000000, 0 },
	{ "max_connections_per_ip", key_unsigned, OFF(max_connections_per_ip), 1, 1000000, 0 },
	{ "max_message_size", key_size, OFF(max_message_size), KIB, 2 * GIB, 0 },
	{ "max_recipients", key_unsigned, OFF(max_recipients), 1, 100000, 0 },
	{ "tls_cert_file", key_readable_file, OFF(tls_cert_file), 0, 0, 0 },
	{ "tls_key_file", key_readable_file, OFF(tls_key_file), 0, 0, 0 },
	{ "tls_outbound", key_tls_outbound, 0, 0, 0, 0 },
	{ "retry_min", key_duration, OFF(retry_min), 1, 30 * DAY, 0 },
	{ "retry_max", key_duration, OFF(retry_max), 1, 30 * DAY, 0 },
	{ "queue_lifetime", key_duration, OFF(queue_lifetime), 1, 365 * DAY, 0 },
	{ "delay_warning", key_duration, OFF(delay_warning), 0, 365 * DAY, 0 },
	{ "shutdown_timeout", key_duration, OFF(shutdown_timeout), 0, DAY, 0 },
	{ "log_file", key_log_file, 0, 0, 0, 0 },
	{ "log_level", key_log_level, 0, 0, 0, 0 },
	{ "user", key_user, 0, 0, 0, 0 },
	{ "queue_map_size", key_size, OFF(queue_map_size), MIB, TIB, 0 },
	{ "command_timeout", key_duration, OFF(command_timeout), 1, DAY, 0 },
	{ "data_timeout", key_duration, OFF(data_timeout), 1, DAY, 0 },
	{ "max_errors", key_unsigned, OFF(max_errors), 1, 1000, 0 },
	{ "greeting_delay", key_duration, OFF(greeting_delay), 0, 5 * MINUTE, 0 },
	{ "connect_timeout", key_duration, OFF(connect_timeout), 1, DAY, 0 },
	{ "relay_command_timeout", key_duration, OFF(relay_command_timeout), 1, DAY, 0 },
	{ "relay_data_timeout", key_duration, OFF(relay_data_timeout), 1, DAY, 0 },
	{ "max_per_destination", key_unsigned, OFF(max_per_destination), 1, 100000, 0 },
	{ "relay_attempt_timeout", key_duration, OFF(relay_attempt_timeout), 1, DAY, 0 },
	{ "dns_timeout", key_duration, OFF(dns_timeout), 1, MINUTE, 0 },
	{ "dns_attempts", key_unsigned, OFF(dns_attempts), 1, 10, 0 },
	{ "auth_plaintext_networks", key_auth_plaintext_networks, 0, 0, 0, KEY_EMPTY_OK },
	{ "auth_fail_delay", key_duration, OFF(auth_fail_delay), 0, MINUTE, 0 },
	{ "auth_fail_limit", key_unsigned, OFF(auth_fail_limit), 0, 100000, 0 },
	{ "auth_block_time", key_duration, OFF(auth_block_time), 0, DAY, 0 },
	{ "auth_any_sender", key_auth_any_sender, 0, 0, 0, KEY_EMPTY_OK },
	{ "queue_map_max", key_size, OFF(queue_map_max), MIB, TIB, 0 },
	{ "min_data_rate", key_size, OFF(min_data_rate), 0, GIB, 0 },
	{ "max_junk_commands", key_unsigned, OFF(max_junk_commands), 1, 1000000, 0 },
	{ "max_unknown_recipients", key_unsigned, OFF(max_unknown_recipients), 1, 1000000, 0 },
	{ "tls_priority", key_tls_priority, 0, 0, 0, 0 },
	{ "client_dns_timeout", key_duration, OFF(client_dns_timeout), 0, MINUTE, 0 },
	{ "tls_policy", key_readable_file, OFF(tls_policy_file), 0, 0, 0 },
	{ "tls_ca_file", key_readable_file, OFF(tls_ca_file), 0, 0, 0 },
	{ "mta_sts", key_bool, OFF(mta_sts), 0, 0, 0 },
	{ "mta_sts_ca_file", key_readable_file, OFF(mta_sts_ca_file), 0, 0, 0 },
	{ "mta_sts_port", key_port, OFF(mta_sts_port), 0, 0, 0 },
	{ "tls_report_keep", key_duration, OFF(tls_report_keep), DAY, 366 * DAY, 0 },
	{ "tls_report_send", key_bool, OFF(tls_report_send), 0, 0, 0 },
	{ "tls_report_from", key_tls_report_from, 0, 0, 0, 0 },
	{ "auth_service", key_auth_service, 0, 0, 0, 0 },
	{ "auth_service_timeout", key_duration, OFF(auth_service_timeout), 1, 10 * MINUTE, 0 },
	{ "policy_services", key_policy_services, 0, 0, 0, KEY_REPEAT | KEY_EMPTY_OK },
	{ "milters", key_milters, 0, 0, 0, KEY_REPEAT | KEY_EMPTY_OK },
	{ "milter_default_action", key_milter_default_action, 0, 0, 0, 0 },
	{ "milter_connect_timeout", key_duration, OFF(milter_connect_timeout), 1, DAY, 0 },
	{ "milter_command_timeout", key_duration, OFF(milter_command_timeout), 1, DAY, 0 },
	{ "milter_eom_timeout", key_duration, OFF(milter_eom_timeout), 1, DAY, 0 },
	{ "policy_default_action", key_policy_default_action, 0, 0, 0, 0 },
	{ "policy_timeout", key_duration, OFF(policy_timeout), 1, HOUR, 0 },
	{ "policy_stages", key_policy_stages, 0, 0, 0, 0 },
	{ "max_inflight_data", key_size, OFF(max_inflight_data), MIB, TIB, 0 },
	{ "auth_checks", key_bool, OFF(auth_checks), 0, 0, 0 },
	{ "authserv_id", key_authserv_id, 0, 0, 0, 0 },
	{ "spf_reject", key_bool, OFF(spf_reject), 0, 0, 0 },
	{ "dmarc_reject", key_bool, OFF(dmarc_reject), 0, 0, 0 },
	{ "auth_tempfail", key_auth_tempfail, 0, 0, 0, 0 },
	{ "dkim_sign", key_dkim_sign, 0, 0, 0, KEY_REPEAT },
	{ "metrics_listen", key_metrics_listen, 0, 0, 0, 0 },
	{ "rate_window", key_duration, OFF(rate_window), 1, DAY, 0 },
	{ "max_connection_rate", key_unsigned, OFF(max_connection_rate), 0, 100000000, 0 },
	{ "max_message_rate", key_unsigned, OFF(max_message_rate), 0, 100000000, 0 },
	{ "max_recipient_rate", key_unsigned, OFF(max_recipient_rate), 0, 100000000, 0 },
	{ "max_unknown_recipient_rate", key_unsigned, OFF(max_unknown_recipient_rate), 0,
	    100000000, 0 },
	{ "account_max_messages", key_unsigned, OFF(account_max_messages), 0, 100000000, 0 },
	{ "account_max_recipients", key_unsigned, OFF(account_max_recipients), 0,
	    RATELIMIT_ACCOUNT_RECIPIENTS_MAX, 0 },
	{ "dnsbl", key_dnsbl, 0, 0, 0, KEY_EMPTY_OK },
	{ "dnsbl_threshold", key_int, OFF(dnsbl_threshold), 1, 10000, 0 },
	{ "pregreet_ttl", key_duration, OFF(pregreet_ttl), 0, 30 * DAY, 0 },
	{ "hold_senders", key_hold_senders, 0, 0, 0, KEY_EMPTY_OK },
	{ "hold_recipients", key_hold_recipients, 0, 0, 0, KEY_EMPTY_OK },
	{ "hold_clients", key_hold_clients, 0, 0, 0, KEY_EMPTY_OK },
	{ "hold_users", key_hold_users, 0, 0, 0, KEY_EMPTY_OK },
	{ "hold_new_accounts", key_duration, OFF(hold_new_accounts), 0, 365 * DAY, 0 },
	{ "trace_retention", key_duration, OFF(trace_retention), 0, 365 * DAY, 0 },
};

#define CONFIG_NKEYS (sizeof config_keys / sizeof config_keys[0])

_Static_assert(CONFIG_NKEYS <= sizeof ((struct config_parse *)0)->key_line /
    sizeof ((struct config_parse *)0)->key_line[0], "key_line too small");

/* The line a key was set on, 0 if never. */
static unsigned
config_key_line(const struct config_parse *p, const char *name)
{
	for (size_t i = 0; i < CONFIG_NKEYS; i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return p->key_line[i];
	return 0;
}

static void
config_parse_line(struct config_parse *p, char *line)
{
	char *hash, *eq, *key, *value;
	size_t i;

	hash = strchr(line, '#');
	if (hash != NULL)
		*hash = '\0';
	line = config_trim(line);
	if (*line == '\0')
		return;
	eq = strchr(line, '=');
	if (eq == NULL) {
		config_error(p, p->lineno, "expected 'key = value', got '%s'", SHOW(line));
		return;
	}
	*eq = '\0';
	key = config_trim(line);
	value = config_trim(eq + 1);
	if (*key == '\0') {
		config_error(p, p->lineno, "missing key before '='");
		return;
	}
	for (i = 0; i < CONFIG_NKEYS; i++)
		if (strcmp(config_keys[i].name, key) == 0)
			break;
	if (i == CONFIG_NKEYS) {
		config_error(p, p->lineno, "unknown key '%s'", SHOW(key));
		return;
	}
	if (p->key_line[i] != 0 && !(config_keys[i].flags & KEY_REPEAT)) {
		config_error(p, p->lineno, "duplicate key '%s' (first set on line %u)",
		    config_keys[i].name, p->key_line[i]);
		return;
	}
	if (p->key_line[i] == 0)
		p->key_line[i] = p->lineno;
	if (*value == '\0' && !(config_keys[i].flags & KEY_EMPTY_OK)) {
		config_error(p, p->lineno, "%s: missing value", config_keys[i].name);
		return;
	}
	config_keys[i].parse(p, &config_keys[i], value);
}

/* Reads and parses every line of f. */
static void
config_read(struct config_parse *p, FILE *f)
{
	char *line = xmalloc(CONFIG_LINE_MAX + 1);
	size_t len = 0;
	int ch, too_long = 0, has_nul = 0, pending = 0;

	p->lineno = 1;
	while (p->nerrors <= CONFIG_ERRORS_MAX) {
		ch = getc_unlocked(f);
		if (ch == EOF && !pending)
			break;
		if (ch != EOF && ch != '\n') {
			pending = 1;
			if (ch == '\0')
				has_nul = 1;
			if (len < CONFIG_LINE_MAX)
				line[len++] = (char)ch;
			else
				too_long = 1;
			continue;
		}
		line[len] = '\0';
		if (too_long)
			config_error(p, p->lineno, "line longer than %d bytes", CONFIG_LINE_MAX);
		else if (has_nul)
			config_error(p, p->lineno, "line contains a NUL byte");
		else
			config_parse_line(p, line);
		if (ch == EOF)
			break;
		p->lineno++;
		len = 0;
		too_long = has_nul = pending = 0;
	}
	if (p->nerrors > CONFIG_ERRORS_MAX && p->errs != NULL)
		fprintf(p->errs, "%s:%u: too many errors, giving up\n", p->path, p->lineno);
	free(line);
}

static void
config_set_defaults(struct config *cfg)
{
	cfg->queue_dir = NULL;
	cfg->smtp_port = 25;
	cfg->session_workers = 0;
	cfg->delivery_threads = 32;
	cfg->max_connections = 10000;
	cfg->max_connections_per_ip = 50;
	cfg->max_message_size = 25 * MIB;
	cfg->max_inflight_data = (size_t)256 * MIB;
	cfg->max_recipients = 1000;
	cfg->tls_outbound = TLS_OUT_DANE;
	cfg->retry_min = 5 * MINUTE;
	cfg->retry_max = HOUR;
	cfg->queue_lifetime = 5 * DAY;
	cfg->delay_warning = 4 * HOUR;
	cfg->shutdown_timeout = 30;
	cfg->log_level = LOG_LVL_INFO;
	cfg->queue_map_size = (size_t)(8 * GIB);
	cfg->command_timeout = 5 * MINUTE;
	cfg->data_timeout = 3 * MINUTE;
	cfg->max_errors = 10;
	cfg->connect_timeout = 30;
	cfg->relay_command_timeout = 5 * MINUTE;
	cfg->relay_data_timeout = 10 * MINUTE;
	cfg->max_per_destination = 20;
	cfg->relay_attempt_timeout = 30 * MINUTE;
	cfg->dns_timeout = 2;
	cfg->dns_attempts = 2;
	cfg->auth_fail_delay = 1;
	cfg->auth_fail_limit = 10;
	cfg->auth_block_time = 10 * MINUTE;
	cfg->queue_map_max = (size_t)(64 * GIB);
	cfg->min_data_rate = KIB;
	cfg->max_junk_commands = 100;
	cfg->max_unknown_recipients = 20;
	cfg->client_dns_timeout = 5;
	cfg->mta_sts = 1;
	cfg->mta_sts_port = 443;
	cfg->tls_report_keep = 14 * DAY;
	cfg->auth_service_timeout = 30;
	cfg->policy_timeout = 100;
	cfg->policy_stages = CONFIG_POLICY_RCPT;
	cfg->milter_default_action = MILTER_DEFAULT_TEMPFAIL;
	cfg->milter_connect_timeout = 30;
	cfg->milter_command_timeout = 30;
	cfg->milter_eom_timeout = 5 * MINUTE;
	cfg->auth_checks = 1;
	cfg->spf_reject = 1;
	cfg->dmarc_reject = 1;
	cfg->rate_window = MINUTE;
	cfg->account_max_messages = 1000;
	cfg->account_max_recipients = 1000;
	cfg->dnsbl_threshold = 1;
	cfg->pregreet_ttl = DAY;
	cfg->trace_retention = 7 * DAY;
}

/* Defaults of list keys (applied only when the key never appeared) and
 * the checks that involve several keys. */
static void
config_finish(struct config_parse *p)
{
	struct config *cfg = p->cfg;
	unsigned l1, l2;

	if (config_key_line(p, "hostname") == 0) {
		char name[256];
		if (gethostname(name, sizeof name) != 0)
			str_copy(name, "localhost", sizeof name);
		name[sizeof name - 1] = '\0';
		if (config_valid_domain(name))
			str_copy(cfg->hostname, name, sizeof cfg->hostname);
		else
			config_error(p, 0, "hostname: the system's name '%s' is not a valid "
			    "domain name; set hostname", SHOW(name));
	}
	if (cfg->authserv_id[0] == '\0')
		str_copy(cfg->authserv_id, cfg->hostname, sizeof cfg->authserv_id);
	if (cfg->tls_report_from[0] == '\0')
		str_format(cfg->tls_report_from, sizeof cfg->tls_report_from,
		    "postmaster@%s", cfg->hostname);
	if (config_key_line(p, "listen") == 0) {
		char text[] = "127.0.0.1:2525";
		struct listen_spec ls;
		memset(&ls, 0, sizeof ls);
		(void)config_parse_listen_addr(text, &ls);
		ls.kind = LISTEN_SMTP;
		cfg->listens = xmalloc(sizeof *cfg->listens);
		cfg->listens[0] = ls;
		cfg->nlistens = 1;
	}
	if (cfg->queue_dir == NULL)
		cfg->queue_dir = xstrdup("./var/queue");
	if (cfg->mail_dir == NULL)
		cfg->mail_dir = xstrdup("./var/mail");
	if (config_key_line(p, "local_domains") == 0) {
		cfg->local_domains = xmalloc(sizeof *cfg->local_domains);
		cfg->local_domains[0] = xstrdup("localhost");
		cfg->nlocal_domains = 1;
	}
	if (config_key_line(p, "relay_networks") == 0) {
		cfg->relay_networks = xcalloc(2, sizeof *cfg->relay_networks);
		(void)cidr_parse("127.0.0.0/8", &cfg->relay_networks[0]);
		(void)cidr_parse("::1/128", &cfg->relay_networks[1]);
		cfg->nrelay_networks = 2;
	}

	l1 = config_key_line(p, "tls_cert_file");
	l2 = config_key_line(p, "tls_key_file");
	if (l1 != 0 && l2 == 0)
		config_error(p, l1, "tls_cert_file is set but tls_key_file is not");
	if (l2 != 0 && l1 == 0)
		config_error(p, l2, "tls_key_file is set but tls_cert_file is not");

	l1 = config_key_line(p, "retry_min");
	l2 = config_key_line(p, "retry_max");
	if (cfg->retry_min > cfg->retry_max)
		config_error(p, l1 > l2 ? l1 : l2, "retry_min is longer than retry_max");

	l1 = config_key_line(p, "max_connections");
	l2 = config_key_line(p, "max_connections_per_ip");
	if (cfg->max_connections_per_ip > cfg->max_connections)
		config_error(p, l1 > l2 ? l1 : l2,
		    "max_connections_per_ip is larger than max_connections");

	if (cfg->session_workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		cfg->session_workers = n < 1 ? 1 : n > 256 ? 256 : (int)n;
	}
}

static void
config_free_list(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

static void
config_free(struct config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	free(cfg->path);
	free(cfg->listens);
	free(cfg->queue_dir);
	free(cfg->mail_dir);
	for (i = 0; i < cfg->nlocal_domains; i++)
		free(cfg->local_domains[i]);
	free(cfg->local_domains);
	free(cfg->users_file);
	free(cfg->aliases_file);
	free(cfg->relay_networks);
	free(cfg->auth_plaintext_networks);
	free(cfg->tls_priority);
	free(cfg->metrics_listen);
	free(cfg->dnsbl);
	config_free_list(cfg->hold_senders, cfg->nhold_senders);
	config_free_list(cfg->hold_recipients, cfg->nhold_recipients);
	config_free_list(cfg->hold_users, cfg->nhold_users);
	free(cfg->hold_clients);
	for (i = 0; i < cfg->nauth_any_sender; i++)
		free(cfg->auth_any_sender[i]);
	free(cfg->auth_any_sender);
	free(cfg->auth_dovecot);
	for (i = 0; i < cfg->nmilters; i++)
		free(cfg->milters[i].endpoint);
	free(cfg->milters);
	for (i = 0; i < cfg->npolicy_services; i++)
		free(cfg->policy_services[i]);
	free(cfg->policy_services);
	free(cfg->policy_default_action);
	for (i = 0; i < cfg->ndkim_sign; i++) {
		free(cfg->dkim_sign[i].domain);
		free(cfg->dkim_sign[i].selector);
		free(cfg->dkim_sign[i].key_file);
	}
	free(cfg->dkim_sign);
	for (i = 0; i < cfg->nrelay_domains; i++)
		free(cfg->relay_domains[i]);
	free(cfg->relay_domains);
	free(cfg->routes);
	free(cfg->dns_servers);
	free(cfg->tls_cert_file);
	free(cfg->tls_key_file);
	free(cfg->tls_policy_file);
	free(cfg->tls_ca_file);
	free(cfg->mta_sts_ca_file);
	free(cfg->log_file);
	free(cfg->user);
	free(cfg);
}

struct config *
config_load(const char *path, FILE *errs)
{
	struct config_parse p;
	char ebuf[128];
	FILE *f;

	memset(&p, 0, sizeof p);
	p.path = path != NULL ? path : "(null)";
	p.errs = errs;
	if (path == NULL || (f = fopen(path, "re")) == NULL) {
		config_error(&p, 0, "cannot read: %s",
		    strerror_r(path == NULL ? EINVAL : errno, ebuf, sizeof ebuf));
		return NULL;
	}
	p.cfg = xcalloc(1, sizeof *p.cfg);
	p.cfg->path = xstrdup(path);
	config_set_defaults(p.cfg);
	config_read(&p, f);
	if (ferror(f))
		config_error(&p, 0, "cannot read: %s", strerror_r(errno, ebuf, sizeof ebuf));
	fclose(f);
	if (p.nerrors <= CONFIG_ERRORS_MAX)
		config_finish(&p);
	if (p.nerrors != 0) {
		config_free(p.cfg);
		return NULL;
	}
	__atomic_store_n(&p.cfg->refs, 1, __ATOMIC_RELEASE);
	return p.cfg;
}

struct config *
config_ref(struct config *cfg)
{
	if (cfg != NULL)
		__atomic_add_fetch(&cfg->refs, 1, __ATOMIC_RELAXED);
	return cfg;
}

void
config_unref(struct config **cfgp)
{
	struct config *cfg;

	if (cfgp == NULL || *cfgp == NULL)
		return;
	cfg = *cfgp;
	*cfgp = NULL;
	if (__atomic_sub_fetch(&cfg->refs, 1, __ATOMIC_ACQ_REL) == 0)
		config_free(cfg);
}

/* Does name equal domain, ignoring case and one trailing dot on domain? */
static int
config_domain_equal(const char *name, const char *domain, size_t dlen)
{
	return strlen(name) == dlen && strncasecmp(name, domain, dlen) == 0;
}

static size_t
config_domain_len(const char *domain)
{
	size_t len = strlen(domain);

	if (len > 0 && domain[len - 1] == '.')
		len--;
	return len;
}

static int
config_domain_in(char *const *list, size_t n, const char *domain)
{
	size_t len;

	if (domain == NULL)
		return 0;
	len = config_domain_len(domain);
	if (len == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (config_domain_equal(list[i], domain, len))
			return 1;
	return 0;
}

int
config_is_local_domain(const struct config *cfg, const char *domain)
{
	return cfg != NULL && config_domain_in(cfg->local_domains, cfg->nlocal_domains, domain);
}

const char *
config_literal_domain(const struct config *cfg)
{
	size_t len = config_domain_len(cfg->hostname);

	for (size_t i = 0; i < cfg->nlocal_domains && len > 0; i++)
		if (config_domain_equal(cfg->local_domains[i], cfg->hostname, len))
			return cfg->local_domains[i];
	return cfg->nlocal_domains > 0 ? cfg->local_domains[0] : "localhost";
}

int
config_is_relay_domain(const struct config *cfg, const char *domain)
{
	return cfg != NULL && config_domain_in(cfg->relay_domains, cfg->nrelay_domains, domain);
}

int
config_client_may_relay(const struct config *cfg, const struct sockaddr *sa)
{
	if (cfg == NULL || sa == NULL)
		return 0;
	for (size_t i = 0; i < cfg->nrelay_networks; i++)
		if (cidr_match(&cfg->relay_networks[i], sa))
			return 1;
	return 0;
}

int
config_user_may_send_any(const struct config *cfg, const char *user)
{
	for (size_t i = 0; cfg != NULL && user != NULL && i < cfg->nauth_any_sender; i++)
		if (strcasecmp(cfg->auth_any_sender[i], user) == 0)
			return 1;
	return 0;
}

int
config_client_may_auth_plaintext(const struct config *cfg, const struct sockaddr *sa)
{
	if (cfg == NULL || sa == NULL)
		return 0;
	for (size_t i = 0; i < cfg->nauth_plaintext_networks; i++)
		if (cidr_match(&cfg->auth_plaintext_networks[i], sa))
			return 1;
	return 0;
}

const struct route *
config_route_for(const struct config *cfg, const char *domain)
{
	size_t len;

	if (cfg == NULL || domain == NULL)
		return NULL;
	len = config_domain_len(domain);
	if (len == 0)
		return NULL;
	for (size_t i = 0; i < cfg->nroutes; i++)
		if (config_domain_equal(cfg->routes[i].domain, domain, len))
			return &cfg->routes[i];
	return NULL;
}
