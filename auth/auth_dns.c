/*
 * auth_dns: the DNS interface of auth/ (auth_dns.h), its adapter to the
 * server's ldns resolver (dns/txt.c's raw record sets), and IP address
 * helpers shared by SPF and the tables.
 *
 * Threads: everything here is reentrant; the adapter holds only a pointer
 * to the (thread-safe) resolver.
 */
#include "auth/auth_dns.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "lib/util.h"

void
auth_dns_lookup(const struct auth_dns *dns, const char *name,
    enum auth_dns_type type, struct auth_dns_answer *ans)
{
	memset(ans, 0, sizeof *ans);
	dns->ops->lookup(dns->ctx, name, type, ans);
	if (ans->status == AUTH_DNS_OK && ans->n == 0)
		ans->status = AUTH_DNS_NODATA;
}

void
auth_dns_answer_clear(struct auth_dns_answer *ans)
{
	for (size_t i = 0; i < ans->n; i++) {
		free(ans->rr[i].name);
		free(ans->rr[i].text);
	}
	free(ans->rr);
	memset(ans, 0, sizeof *ans);
}

const char *
auth_dns_status_str(enum auth_dns_status s)
{
	switch (s) {
	case AUTH_DNS_OK: return "ok";
	case AUTH_DNS_NODATA: return "NODATA";
	case AUTH_DNS_NXDOMAIN: return "NXDOMAIN";
	default: return "temporary failure";
	}
}

void
auth_dns_free(struct auth_dns **dp)
{
	struct auth_dns *d = *dp;

	if (d == NULL)
		return;
	if (d->ops->free != NULL)
		d->ops->free(d->ctx);
	free(d);
	*dp = NULL;
}

/* ---- the adapter to dns/ ---- */

static void
resolver_lookup(void *ctx, const char *name, enum auth_dns_type type,
    struct auth_dns_answer *ans)
{
	static const enum dns_rtype rtype[] = {
		[AUTH_DNS_A] = DNS_RTYPE_A, [AUTH_DNS_AAAA] = DNS_RTYPE_AAAA,
		[AUTH_DNS_MX] = DNS_RTYPE_MX, [AUTH_DNS_PTR] = DNS_RTYPE_PTR,
		[AUTH_DNS_TXT] = DNS_RTYPE_TXT,
	};
	struct dns_records *res = NULL;

	dns_records_lookup(ctx, name, rtype[type], &res);
	switch (res->status) {
	case DNS_REC_DATA:
		ans->status = AUTH_DNS_OK;
		break;
	case DNS_REC_NODATA:
		ans->status = AUTH_DNS_NODATA;
		break;
	case DNS_REC_NXDOMAIN:
	case DNS_REC_BAD_NAME:
		ans->status = AUTH_DNS_NXDOMAIN;
		break;
	default:
		ans->status = AUTH_DNS_TEMP;
		str_copy(ans->detail, res->detail, sizeof ans->detail);
		break;
	}
	if (ans->status == AUTH_DNS_OK) {
		ans->rr = xcalloc(res->n, sizeof *ans->rr);
		for (size_t i = 0; i < res->n; i++) {
			struct auth_dns_rr *o = &ans->rr[i];
			struct dns_record *r = &res->rr[i];
			o->pref = r->pref;
			o->ip.family = r->addr.family;
			memcpy(o->ip.b, r->addr.bytes, sizeof o->ip.b);
			o->name = r->name;
			o->text = r->text;
			o->len = r->textlen;
			r->name = r->text = NULL;
		}
		ans->n = res->n;
	}
	dns_records_free(&res);
}

static const struct auth_dns_ops resolver_ops = {
	.lookup = resolver_lookup,
	.free = NULL,
};

struct auth_dns *
auth_dns_resolver_new(struct dns_resolver *r)
{
	struct auth_dns *d = xcalloc(1, sizeof *d);

	d->ops = &resolver_ops;
	d->ctx = r;
	return d;
}

/* ---- addresses ---- */

static void
ip_unmap(struct auth_ip *ip)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };

	if (ip->family == AF_INET6 && memcmp(ip->b, mapped, 12) == 0) {
		memmove(ip->b, ip->b + 12, 4);
		memset(ip->b + 4, 0, 12);
		ip->family = AF_INET;
	}
}

int
auth_ip_from_sockaddr(const struct sockaddr *sa, struct auth_ip *ip)
{
	memset(ip, 0, sizeof *ip);
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		ip->family = AF_INET;
		memcpy(ip->b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		ip->family = AF_INET6;
		memcpy(ip->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		ip_unmap(ip);
	} else {
		return -1;
	}
	return 0;
}

int
auth_ip_parse(const char *text, struct auth_ip *ip)
{
	memset(ip, 0, sizeof *ip);
	if (text == NULL)
		return -1;
	if (inet_pton(AF_INET, text, ip->b) == 1) {
		ip->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, ip->b) == 1) {
		ip->family = AF_INET6;
		ip_unmap(ip);
		return 0;
	}
	return -1;
}

char *
auth_ip_text(const struct auth_ip *ip, char *out, size_t outsize)
{
	if (inet_ntop(ip->family, ip->b, out, (socklen_t)outsize) == NULL)
		str_copy(out, "?", outsize);
	return out;
}

int
auth_ip_match(const struct auth_ip *a, const struct auth_ip *b, int prefix)
{
	int full = a->family == AF_INET ? 32 : 128;
	int bytes, bits;

	if (a->family != b->family || prefix < 0 || prefix > full)
		return 0;
	bytes = prefix / 8;
	bits = prefix % 8;
	if (memcmp(a->b, b->b, (size_t)bytes) != 0)
		return 0;
	if (bits == 0)
		return 1;
	return ((a->b[bytes] ^ b->b[bytes]) & (0xff << (8 - bits)) & 0xff) == 0;
}

int
auth_ip_reverse_name(const struct auth_ip *ip, char *out, size_t outsize)
{
	static const char hex[] = "0123456789abcdef";
	int n;

	if (ip->family == AF_INET6) {
		size_t o = 0;
		if (outsize < 64 + 9 + 1)
			return -1;
		for (int i = 15; i >= 0; i--) {
			out[o++] = hex[ip->b[i] & 0xf];
			out[o++] = '.';
			out[o++] = hex[ip->b[i] >> 4];
			out[o++] = '.';
		}
		return str_copy(out + o, "ip6.arpa", outsize - o);
	}
	if (ip->family != AF_INET)
		return -1;
	n = snprintf(out, outsize, "%u.%u.%u.%u.in-addr.arpa", ip->b[3],
	    ip->b[2], ip->b[1], ip->b[0]);
	return n > 0 && (size_t)n < outsize ? 0 : -1;
}
