/*
 * dnsbl: zone list parsing, RFC 5782 query names, lookups through
 * dns_addr_lookup, the weighted score and the verdict cache (see
 * dnsbl.h).
 */
#include "server/dnsbl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/netaddr.h"
#include "lib/util.h"
#include "server/addrtable.h"

struct dnsbl {
	struct dnsbl_zone zones[DNSBL_MAX_ZONES];
	size_t nzones;
	struct dnsbl_options opts;
	struct addrtable *cache;	/* NULL without a cache */
};

struct dnsbl_cached {
	int64_t until;
	struct dnsbl_verdict v;
};

static void err_set(char *err, size_t errsize, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
err_set(char *err, size_t errsize, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errsize, fmt, ap);
	va_end(ap);
}

/* Quoted text of the config for a message: at most 64 printable bytes. */
static const char *
dnsbl_show(const char *s, size_t n, char *out, size_t outsize)
{
	size_t o = 0;

	for (size_t i = 0; i < n && s[i] != '\0' && o + 4 < outsize && i < 64; i++)
		out[o++] = (unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f ?
		    '?' : s[i];
	out[o] = '\0';
	return out;
}

int
dnsbl_zone_parse(const char *item, struct dnsbl_zone *z, char *err, size_t errsize)
{
	char name[DNSBL_ITEM_MAX], norm[DNS_NAME_MAX], show[72];
	const char *eq;
	size_t len = strnlen(item, DNSBL_ITEM_MAX);

	memset(z, 0, sizeof *z);
	z->weight = 1;
	if (len >= DNSBL_ITEM_MAX) {
		err_set(err, errsize, "dnsbl item too long");
		return -1;
	}
	eq = memchr(item, '=', len);
	if (eq != NULL) {
		const char *w = eq + 1;
		int sign = 1;
		long v = 0;

		if (*w == '-' || *w == '+')
			sign = *w++ == '-' ? -1 : 1;
		if (*w == '\0') {
			err_set(err, errsize, "dnsbl '%s': weight missing",
			    dnsbl_show(item, len, show, sizeof show));
			return -1;
		}
		for (; *w != '\0'; w++) {
			if (*w < '0' || *w > '9' || v > DNSBL_WEIGHT_MAX) {
				err_set(err, errsize, "dnsbl '%s': weight must be an integer "
				    "from %d to %d", dnsbl_show(item, len, show, sizeof show),
				    DNSBL_WEIGHT_MIN, DNSBL_WEIGHT_MAX);
				return -1;
			}
			v = v * 10 + (*w - '0');
		}
		v *= sign;
		if (v < DNSBL_WEIGHT_MIN || v > DNSBL_WEIGHT_MAX) {
			err_set(err, errsize, "dnsbl '%s': weight must be an integer "
			    "from %d to %d", dnsbl_show(item, len, show, sizeof show),
			    DNSBL_WEIGHT_MIN, DNSBL_WEIGHT_MAX);
			return -1;
		}
		z->weight = (int)v;
		len = (size_t)(eq - item);
	}
	memcpy(name, item, len);
	name[len] = '\0';
	if (dns_name_normalize(name, norm, sizeof norm) != 0) {
		err_set(err, errsize, "dnsbl '%s': not a valid zone name",
		    dnsbl_show(name, len, show, sizeof show));
		return -1;
	}
	if (strlen(norm) > DNSBL_ZONE_MAX) {
		err_set(err, errsize, "dnsbl '%s': zone name longer than %d characters",
		    dnsbl_show(name, len, show, sizeof show), DNSBL_ZONE_MAX);
		return -1;
	}
	memcpy(z->name, norm, strlen(norm) + 1);
	return 0;
}

int
dnsbl_zones_parse(const char *value, struct dnsbl_zone *zones, size_t max,
    size_t *n_r, char *err, size_t errsize)
{
	size_t len = strnlen(value, DNSBL_VALUE_MAX + 1), i = 0, n = 0;
	char item[DNSBL_ITEM_MAX], show[72];

	*n_r = 0;
	if (max > DNSBL_MAX_ZONES)
		max = DNSBL_MAX_ZONES;
	if (len > DNSBL_VALUE_MAX) {
		err_set(err, errsize, "dnsbl value too long");
		return -1;
	}
	while (i < len) {
		size_t start, ilen;

		while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
			i++;
		start = i;
		while (i < len && value[i] != ' ' && value[i] != '\t' && value[i] != ',')
			i++;
		ilen = i - start;
		if (ilen == 0)
			break;
		if (ilen >= sizeof item) {
			err_set(err, errsize, "dnsbl '%s...': item too long",
			    dnsbl_show(value + start, ilen, show, sizeof show));
			return -1;
		}
		if (n == max) {
			err_set(err, errsize, "dnsbl: more than %zu zones", max);
			return -1;
		}
		memcpy(item, value + start, ilen);
		item[ilen] = '\0';
		if (dnsbl_zone_parse(item, &zones[n], err, errsize) != 0)
			return -1;
		for (size_t j = 0; j < n; j++)
			if (strcmp(zones[j].name, zones[n].name) == 0) {
				err_set(err, errsize, "dnsbl: zone %s given twice", zones[n].name);
				return -1;
			}
		n++;
	}
	*n_r = n;
	return 0;
}

int
dnsbl_query_name(const struct sockaddr *sa, const char *zone, char *out,
    size_t outsize)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *b;
	int n;

	if (sa->sa_family == AF_INET6 &&
	    !IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)sa)->sin6_addr)) {
		size_t o = 0, zlen = strlen(zone);
		b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (outsize < 64 + zlen + 1)
			return -1;
		for (int i = 15; i >= 0; i--) {
			out[o++] = hex[b[i] & 0xf];
			out[o++] = '.';
			out[o++] = hex[b[i] >> 4];
			out[o++] = '.';
		}
		memcpy(out + o, zone, zlen + 1);
		return 0;
	}
	if (sa->sa_family == AF_INET)
		b = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr + 12;
	else
		return -1;
	n = snprintf(out, outsize, "%u.%u.%u.%u.%s", b[3], b[2], b[1], b[0], zone);
	return n < 0 || (size_t)n >= outsize ? -1 : 0;
}

void
dnsbl_options_default(struct dnsbl_options *o)
{
	o->threshold = 1;
	o->cache_ttl = 300;
	o->cache_entries = 10000;
}

struct dnsbl *
dnsbl_new(const struct dnsbl_zone *zones, size_t n, const struct dnsbl_options *o)
{
	struct dnsbl *d = xcalloc(1, sizeof *d);

	if (n > DNSBL_MAX_ZONES)
		n = DNSBL_MAX_ZONES;
	if (n > 0)
		memcpy(d->zones, zones, n * sizeof *zones);
	d->nzones = n;
	if (o != NULL)
		d->opts = *o;
	else
		dnsbl_options_default(&d->opts);
	if (d->opts.cache_ttl > 0 && d->opts.cache_entries > 0)
		d->cache = addrtable_new(d->opts.cache_entries, sizeof(struct dnsbl_cached),
		    NULL);
	return d;
}

void
dnsbl_free(struct dnsbl **dp)
{
	if (*dp == NULL)
		return;
	addrtable_free(&(*dp)->cache);
	free(*dp);
	*dp = NULL;
}

/* An A record of a list: a listing, or the list's way of saying no. */
static enum dnsbl_answer
dnsbl_classify(const uint8_t a[4])
{
	if (a[0] != 127)
		return DNSBL_ERROR_CODE;
	if (a[1] == 255 && a[2] == 255)
		return DNSBL_ERROR_CODE;
	if (a[1] == 0 && a[2] == 0 && a[3] == 1)
		return DNSBL_ERROR_CODE;
	return DNSBL_LISTED;
}

/* Asks zone z about sa; fills v->zone[i]. */
static void
dnsbl_ask(const struct dnsbl_zone *z, struct dns_resolver *r,
    const struct sockaddr *sa, struct dnsbl_verdict *v, size_t i)
{
	char qname[DNS_NAME_MAX];
	struct dns_addr_result *res;
	int st;

	v->zone[i].answer = DNSBL_NOT_LISTED;
	if (dnsbl_query_name(sa, z->name, qname, sizeof qname) != 0)
		return;
	st = dns_addr_lookup(r, qname, &res);
	if (st == DNS_TEMP || st == DNS_BAD_NAME) {
		v->zone[i].answer = DNSBL_TEMP;
	} else if (st == DNS_OK) {
		for (size_t k = 0; k < res->naddrs; k++) {
			enum dnsbl_answer a;
			if (res->addrs[k].family != AF_INET)
				continue;
			a = dnsbl_classify(res->addrs[k].bytes);
			/* A listing beats an error code; the first of each kind is kept. */
			if (a == DNSBL_LISTED && v->zone[i].answer != DNSBL_LISTED) {
				v->zone[i].answer = DNSBL_LISTED;
				memcpy(v->zone[i].addr, res->addrs[k].bytes, 4);
			} else if (a == DNSBL_ERROR_CODE &&
			    v->zone[i].answer == DNSBL_NOT_LISTED) {
				v->zone[i].answer = DNSBL_ERROR_CODE;
				memcpy(v->zone[i].addr, res->addrs[k].bytes, 4);
			}
		}
	}
	dns_addr_result_free(&res);
}

struct dnsbl_cache_op {
	int64_t now;
	int64_t until;			/* put: the entry's end */
	struct dnsbl_verdict *v;
	int hit;			/* get: found alive */
};

static int
dnsbl_cache_get(void *value, int created, void *arg)
{
	struct dnsbl_cached *c = value;
	struct dnsbl_cache_op *op = arg;

	(void)created;
	if (op->now >= c->until)
		return ADDRTABLE_REMOVE;
	*op->v = c->v;
	op->hit = 1;
	return ADDRTABLE_KEEP;
}

static int
dnsbl_cache_put(void *value, int created, void *arg)
{
	struct dnsbl_cached *c = value;
	struct dnsbl_cache_op *op = arg;

	(void)created;
	c->until = op->until;
	c->v = *op->v;
	return ADDRTABLE_KEEP;
}

/* The cache key: the exact address (lists list addresses, not networks),
 * IPv4 as v4-mapped IPv6; -1 for other families. */
static int
dnsbl_client_key(const struct sockaddr *sa, uint8_t key[ADDRTABLE_KEY_SIZE])
{
	memset(key, 0, ADDRTABLE_KEY_SIZE);
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	} else {
		return -1;
	}
	return 0;
}

int
dnsbl_check(struct dnsbl *d, struct dns_resolver *r, const struct sockaddr *sa,
    int64_t now_ms, struct dnsbl_verdict *v)
{
	uint8_t key[ADDRTABLE_KEY_SIZE];
	struct dnsbl_cache_op op = { now_ms, 0, v, 0 };

	memset(v, 0, sizeof *v);
	v->nzones = d->nzones;
	if (dnsbl_client_key(sa, key) != 0)
		return 0;
	if (d->cache != NULL) {
		addrtable_find(d->cache, key, dnsbl_cache_get, &op);
		if (op.hit) {
			v->cached = 1;
			return v->listed;
		}
	}
	for (size_t i = 0; i < d->nzones; i++) {
		dnsbl_ask(&d->zones[i], r, sa, v, i);
		if (v->zone[i].answer == DNSBL_LISTED)
			v->score += d->zones[i].weight;
		else if (v->zone[i].answer == DNSBL_TEMP)
			v->temp = 1;
	}
	v->listed = d->nzones > 0 && v->score >= d->opts.threshold;
	if (d->cache != NULL && !v->temp) {
		op.until = now_ms + (int64_t)d->opts.cache_ttl * 1000;
		addrtable_update(d->cache, key, dnsbl_cache_put, &op);
	}
	return v->listed;
}

char *
dnsbl_verdict_text(const struct dnsbl *d, const struct dnsbl_verdict *v,
    char *out, size_t outsize)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < v->nzones && i < d->nzones; i++) {
		const uint8_t *a = v->zone[i].addr;
		int n;
		if (v->zone[i].answer != DNSBL_LISTED)
			continue;
		n = snprintf(out + o, outsize - o, "%s%s=%u.%u.%u.%u", o ? " " : "",
		    d->zones[i].name, a[0], a[1], a[2], a[3]);
		if (n < 0 || (size_t)n >= outsize - o) {
			out[o] = '\0';
			break;
		}
		o += (size_t)n;
	}
	return out;
}

char *
dnsbl_reply(const struct dnsbl *d, const struct dnsbl_verdict *v,
    const struct sockaddr *sa, char *out, size_t outsize)
{
	const char *zone = NULL;
	int best = 0;
	char addr[64];

	for (size_t i = 0; i < v->nzones && i < d->nzones; i++)
		if (v->zone[i].answer == DNSBL_LISTED &&
		    (zone == NULL || d->zones[i].weight > best)) {
			zone = d->zones[i].name;
			best = d->zones[i].weight;
		}
	snprintf(out, outsize, "554 5.7.1 Service unavailable; client [%s] blocked%s%s",
	    sockaddr_ntop(sa, addr, sizeof addr), zone ? " using " : "", zone ? zone : "");
	return out;
}

size_t
dnsbl_nzones(const struct dnsbl *d)
{
	return d->nzones;
}

const char *
dnsbl_zone_name(const struct dnsbl *d, size_t i)
{
	return i < d->nzones ? d->zones[i].name : "";
}
