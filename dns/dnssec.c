/*
 * dnssec: the DNSSEC-aware lookup path of dns/ (dns.h, "DNSSEC-aware
 * lookups"). mailserver does not validate signatures itself: it asks a
 * validating resolver with DO and AD set (RFC 6840 5.7, RFC 3225) and
 * believes the AD bit of the reply only when that resolver is on loopback,
 * where nobody can forge it. DESIGN.md "Outbound TLS" says why.
 *
 * - Answer parsing: mx.c's checks and CNAME walk (dns_answer_open,
 *   dns_answer_chain), keeping the records as raw rdata (TLSA, TXT and MX
 *   are decoded by their users), with the AD bit and the expanded owner.
 * - The network: ldns builds the query and moves the bytes (ldns_udp_send,
 *   ldns_tcp_send: poll() based, so any descriptor number is fine); we
 *   check the reply's ID and QR bit, go to TCP when truncated, and bound
 *   every try and the whole lookup with dns_options' times.
 * - Lookups with CNAMEs followed across packets; the MX view (RFC 7672
 *   2.2.1) and the host address view (RFC 7672 2.2.2) for relay/.
 *
 * Nothing is cached here: the local validating resolver caches.
 * Diagnostics: statuses and detail texts; nothing above debug level.
 * Threads: struct dns_sec is read-only after dns_sec_new (an atomic
 * counter aside); every lookup runs on any thread.
 */
#include "dns/dns_internal.h"

#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/log.h"
#include "lib/util.h"

#define DNS_SEC_MAX_SERVERS	8
#define DNS_SEC_EDNS_SIZE	1232

struct dns_sec_server {
	struct sockaddr_storage sa;
	socklen_t salen;
};

struct dns_sec {
	struct dns_options opts;
	struct dns_sec_server servers[DNS_SEC_MAX_SERVERS];
	size_t nservers;
	int trusted;			/* AD is believed */
	dns_transport_fn transport;
	void *tctx;
};

const char *
dns_sec_state_str(enum dns_sec_state st)
{
	switch (st) {
	case DNS_SEC_SECURE: return "secure";
	case DNS_SEC_INSECURE: return "insecure";
	default: return "bogus";
	}
}

/* ---- answers ---- */

static struct dns_sec_answer *
answer_new(void)
{
	struct dns_sec_answer *a = xcalloc(1, sizeof *a);

	a->kind = DNS_SEC_FAIL;
	return a;
}

static void
answer_clear(struct dns_sec_answer *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->rrs[i].data);
	free(a->rrs);
	a->rrs = NULL;
	a->n = 0;
}

void
dns_sec_answer_free(struct dns_sec_answer **ap)
{
	if (*ap == NULL)
		return;
	answer_clear(*ap);
	free(*ap);
	*ap = NULL;
}

static void
answer_fail(struct dns_sec_answer *a, const char *why)
{
	answer_clear(a);
	a->kind = DNS_SEC_FAIL;
	a->ad = 0;
	a->follow = 0;
	str_format(a->detail, sizeof a->detail, "%s", why);
}

enum dns_sec_state
dns_sec_answer_state(const struct dns_sec_answer *a)
{
	if (a->kind == DNS_SEC_FAIL)
		return DNS_SEC_BOGUS;
	return a->ad ? DNS_SEC_SECURE : DNS_SEC_INSECURE;
}

/* Appends rr's rdata (uncompressed) to the answer; 0, or -1 when it
 * cannot be encoded. */
static int
answer_add(void *ctx, const ldns_rr *rr)
{
	struct dns_sec_answer *a = ctx;
	ldns_buffer *b;
	size_t len;

	if (a->n >= DNS_MAX_RRSET)
		return 0;	/* bounded: the rest is ignored */
	b = ldns_buffer_new(512);
	if (b == NULL)
		abort();
	if (ldns_rr_rdata2buffer_wire(b, rr) != LDNS_STATUS_OK) {
		ldns_buffer_free(b);
		return -1;
	}
	len = ldns_buffer_position(b);
	a->rrs = xrealloc(a->rrs, (a->n + 1) * sizeof *a->rrs);
	a->rrs[a->n].len = len;
	a->rrs[a->n].data = xmalloc(len ? len : 1);
	memcpy(a->rrs[a->n].data, ldns_buffer_begin(b), len);
	a->n++;
	ldns_buffer_free(b);
	return 0;
}

static const char *
rcode_why(int rcode)
{
	switch (rcode) {
	case LDNS_RCODE_SERVFAIL:
		return "SERVFAIL (DNSSEC validation failed, or the resolver "
		    "could not get an answer)";
	case LDNS_RCODE_REFUSED: return "REFUSED";
	case LDNS_RCODE_FORMERR: return "FORMERR";
	case LDNS_RCODE_NOTIMPL: return "NOTIMPL";
	default: return "unexpected rcode";
	}
}

struct dns_sec_answer *
dns_sec_answer_parse(const uint8_t *wire, size_t len, const char *qname,
    uint16_t qtype)
{
	struct dns_sec_answer *a = answer_new();
	struct dns_answer_chain c;
	ldns_pkt *pkt;
	ldns_rdf *qrdf;
	const char *why;
	int rcode;

	if (dns_answer_open(wire, len, qname, qtype, &pkt, &qrdf, &why) != 0) {
		answer_fail(a, why);
		return a;
	}
	rcode = ldns_pkt_get_rcode(pkt);
	if (rcode != LDNS_RCODE_NOERROR && rcode != LDNS_RCODE_NXDOMAIN)
		answer_fail(a, rcode_why(rcode));
	else if (dns_answer_chain(pkt, qrdf, qtype, answer_add, a, &c, &why) != 0)
		answer_fail(a, why);
	else if (dns_wire_name_to_text(ldns_rdf_data(c.end), ldns_rdf_size(c.end),
	    a->owner, sizeof a->owner) != 0)
		answer_fail(a, "invalid name in the CNAME chain");
	else if (c.found && rcode != LDNS_RCODE_NOERROR)
		answer_fail(a, "records in a negative answer");
	else {
		a->ad = ldns_pkt_ad(pkt);
		a->cnames = c.cnames;
		if (c.found) {
			a->kind = DNS_SEC_DATA;
		} else if (rcode == LDNS_RCODE_NXDOMAIN) {
			a->kind = DNS_SEC_NXDOMAIN;
		} else {
			a->kind = DNS_SEC_NODATA;
			if (c.end != qrdf) {
				/* The chain ends without the type asked: ask its end. */
				a->follow = 1;
				str_copy(a->target, a->owner, sizeof a->target);
			}
		}
	}
	ldns_rdf_deep_free(qrdf);
	ldns_pkt_free(pkt);
	return a;
}

/* ---- the network ---- */

static int
sockaddr_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
		    s6->sin6_addr.s6_addr[12] == 127;
	}
	return 0;
}

/* One server address (text, brackets allowed) into out; 0 or -1. */
static int
server_from_text(const char *text, uint16_t port, struct dns_sec_server *out)
{
	char buf[64];
	size_t len = strnlen(text, sizeof buf);
	ldns_rdf *rdf;
	struct sockaddr_storage *ss;
	size_t salen = 0;

	if (len == 0 || len >= sizeof buf)
		return -1;
	if (len >= 2 && text[0] == '[' && text[len - 1] == ']') {
		memcpy(buf, text + 1, len - 2);
		buf[len - 2] = '\0';
	} else {
		memcpy(buf, text, len + 1);
	}
	rdf = ldns_rdf_new_frm_str(strchr(buf, ':') ? LDNS_RDF_TYPE_AAAA :
	    LDNS_RDF_TYPE_A, buf);
	if (rdf == NULL)
		return -1;
	ss = ldns_rdf2native_sockaddr_storage(rdf, port ? port : 53, &salen);
	ldns_rdf_deep_free(rdf);
	if (ss == NULL || salen == 0 || salen > sizeof out->sa) {
		free(ss);
		return -1;
	}
	memset(out, 0, sizeof *out);
	memcpy(&out->sa, ss, salen);
	out->salen = (socklen_t)salen;
	free(ss);
	return 0;
}

static struct timeval
timeval_ms(int64_t ms)
{
	struct timeval tv;

	if (ms < 1)
		ms = 1;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	return tv;
}

/* A reply that answers query id: 0, or -1 (and the reply is freed). */
static int
reply_matches(uint8_t **ans, size_t alen, uint16_t id)
{
	if (*ans != NULL && alen >= 12 && (((*ans)[0] << 8) | (*ans)[1]) == id &&
	    ((*ans)[2] & 0x80))
		return 0;
	free(*ans);
	*ans = NULL;
	return -1;
}

static int
net_transport(void *ctx, const char *qname, uint16_t qtype, int64_t deadline,
    uint8_t **wire_r, size_t *len_r)
{
	struct dns_sec *s = ctx;
	ldns_rdf *d = ldns_dname_new_frm_str(qname);
	ldns_pkt *pkt;
	uint8_t *last_bad = NULL;
	size_t last_bad_len = 0;
	int rc = -1;

	if (d == NULL)
		return -1;
	pkt = ldns_pkt_query_new(d, (ldns_rr_type)qtype, LDNS_RR_CLASS_IN, LDNS_RD);
	if (pkt == NULL)
		return -1;
	ldns_pkt_set_ad(pkt, true);
	ldns_pkt_set_edns_udp_size(pkt, DNS_SEC_EDNS_SIZE);
	ldns_pkt_set_edns_do(pkt, true);
	for (unsigned t = 0; t < s->opts.tries && rc != 0; t++) {
		for (size_t i = 0; i < s->nservers && rc != 0; i++) {
			const struct dns_sec_server *sv = &s->servers[i];
			int64_t left = deadline - time_mono_ms();
			uint16_t id = (uint16_t)dns_random_seed();
			ldns_buffer *q;
			uint8_t *ans = NULL;
			size_t alen = 0;
			ldns_status st;

			if (left <= 0)
				goto out;
			if (left > s->opts.try_timeout_ms)
				left = s->opts.try_timeout_ms;
			ldns_pkt_set_id(pkt, id);
			q = ldns_buffer_new(LDNS_MIN_BUFLEN);
			if (q == NULL || ldns_pkt2buffer_wire(q, pkt) != LDNS_STATUS_OK) {
				ldns_buffer_free(q);
				goto out;
			}
			st = ldns_udp_send(&ans, q, &sv->sa, sv->salen,
			    timeval_ms(left), &alen);
			if (st == LDNS_STATUS_OK && reply_matches(&ans, alen, id) == 0 &&
			    (ans[2] & 0x02)) {
				free(ans);	/* TC: ask again over TCP */
				ans = NULL;
				left = deadline - time_mono_ms();
				if (left > s->opts.try_timeout_ms)
					left = s->opts.try_timeout_ms;
				st = left > 0 ? ldns_tcp_send(&ans, q, &sv->sa,
				    sv->salen, timeval_ms(left), &alen) :
				    LDNS_STATUS_NETWORK_ERR;
				if (st == LDNS_STATUS_OK)
					(void)reply_matches(&ans, alen, id);
			}
			ldns_buffer_free(q);
			if (st != LDNS_STATUS_OK || ans == NULL) {
				free(ans);
				continue;
			}
			/* NOERROR and NXDOMAIN are answers; else: next server. */
			if ((ans[3] & 0x0f) == 0 || (ans[3] & 0x0f) == 3) {
				*wire_r = ans;
				*len_r = alen;
				rc = 0;
			} else {
				free(last_bad);
				last_bad = ans;
				last_bad_len = alen;
			}
		}
	}
out:
	ldns_pkt_free(pkt);
	if (rc != 0 && last_bad != NULL) {
		*wire_r = last_bad;
		*len_r = last_bad_len;
		return 0;
	}
	free(last_bad);
	return rc;
}

/* ---- construction ---- */

static struct dns_sec *
sec_alloc(const struct dns_options *opts)
{
	struct dns_sec *s = xcalloc(1, sizeof *s);

	if (opts != NULL)
		s->opts = *opts;
	else
		dns_options_default(&s->opts);
	s->opts.resolv_conf = NULL;
	if (s->opts.tries < 1)
		s->opts.tries = 1;
	if (s->opts.try_timeout_ms < 1)
		s->opts.try_timeout_ms = 1;
	if (s->opts.total_timeout_ms < 1)
		s->opts.total_timeout_ms = 1;
	return s;
}

static int
servers_from_resolv_conf(struct dns_sec *s, const char *path, char *err,
    size_t errsize)
{
	ldns_resolver *lr = NULL;
	ldns_rdf **ns;
	size_t n;

	if (path == NULL)
		path = "/etc/resolv.conf";
	if (ldns_resolver_new_frm_file(&lr, path) != LDNS_STATUS_OK || lr == NULL) {
		snprintf(err, errsize, "dns: cannot read %s", path);
		return -1;
	}
	ns = ldns_resolver_nameservers(lr);
	n = ldns_resolver_nameserver_count(lr);
	for (size_t i = 0; i < n && s->nservers < DNS_SEC_MAX_SERVERS; i++) {
		size_t salen = 0;
		struct sockaddr_storage *ss =
		    ldns_rdf2native_sockaddr_storage(ns[i], 53, &salen);
		if (ss != NULL && salen > 0 && salen <= sizeof s->servers[0].sa) {
			memcpy(&s->servers[s->nservers].sa, ss, salen);
			s->servers[s->nservers++].salen = (socklen_t)salen;
		}
		free(ss);
	}
	ldns_resolver_deep_free(lr);
	if (s->nservers == 0) {
		snprintf(err, errsize, "dns: no nameserver in %s", path);
		return -1;
	}
	return 0;
}

struct dns_sec *
dns_sec_new(const struct dns_server_addr *servers, size_t n,
    const struct dns_options *opts, char *err, size_t errsize)
{
	char dummy[8];
	struct dns_sec *s;

	if (err == NULL || errsize == 0) {
		err = dummy;
		errsize = sizeof dummy;
	}
	err[0] = '\0';
	if (n > DNS_SEC_MAX_SERVERS) {
		snprintf(err, errsize, "dns: at most %d servers", DNS_SEC_MAX_SERVERS);
		return NULL;
	}
	s = sec_alloc(opts);
	s->transport = net_transport;
	s->tctx = s;
	for (size_t i = 0; i < n; i++) {
		if (server_from_text(servers[i].addr, servers[i].port,
		    &s->servers[s->nservers]) != 0) {
			snprintf(err, errsize, "dns: bad server address \"%.64s\"",
			    servers[i].addr);
			dns_sec_free(&s);
			return NULL;
		}
		s->nservers++;
	}
	if (n == 0 && servers_from_resolv_conf(s, opts ? opts->resolv_conf : NULL,
	    err, errsize) != 0) {
		dns_sec_free(&s);
		return NULL;
	}
	s->trusted = 1;
	for (size_t i = 0; i < s->nservers; i++)
		if (!sockaddr_is_loopback(&s->servers[i].sa))
			s->trusted = 0;
	return s;
}

struct dns_sec *
dns_sec_new_transport(dns_transport_fn transport, void *tctx, int trusted,
    const struct dns_options *opts)
{
	struct dns_sec *s = sec_alloc(opts);

	s->transport = transport;
	s->tctx = tctx;
	s->trusted = trusted != 0;
	return s;
}

void
dns_sec_free(struct dns_sec **sp)
{
	free(*sp);
	*sp = NULL;
}

int
dns_sec_trusted(const struct dns_sec *s)
{
	return s->trusted;
}

int64_t
dns_sec_deadline(const struct dns_sec *s)
{
	return time_mono_ms() + s->opts.total_timeout_ms;
}

/* ---- lookups ---- */

static struct dns_sec_answer *
lookup_one(struct dns_sec *s, const char *name, uint16_t type, int64_t deadline)
{
	struct dns_sec_answer *a;
	uint8_t *wire = NULL;
	size_t len = 0;

	if (time_mono_ms() >= deadline) {
		a = answer_new();
		answer_fail(a, "lookup time exhausted");
		return a;
	}
	if (s->transport(s->tctx, name, type, deadline, &wire, &len) != 0) {
		a = answer_new();
		answer_fail(a, "no answer from the DNS servers");
	} else {
		a = dns_sec_answer_parse(wire, len, name, type);
		free(wire);
	}
	log_debug("dns: %s type %u (dnssec): kind %d ad %d%s%s", name, type,
	    a->kind, a->ad, a->detail[0] ? ": " : "", a->detail);
	return a;
}

struct dns_sec_answer *
dns_sec_lookup(struct dns_sec *s, const char *name, uint16_t type,
    int64_t deadline_ms)
{
	char cur[DNS_NAME_MAX];
	unsigned hops = 0;
	int ad = 1;

	if (str_copy(cur, name, sizeof cur) != 0) {
		struct dns_sec_answer *a = answer_new();
		answer_fail(a, "name too long");
		return a;
	}
	for (;;) {
		struct dns_sec_answer *a = lookup_one(s, cur, type, deadline_ms);
		hops += a->cnames;
		ad = ad && a->ad;
		if (!a->follow) {
			a->cnames = hops;
			a->ad = ad && s->trusted && a->kind != DNS_SEC_FAIL;
			return a;
		}
		if (hops > DNS_MAX_CNAME_HOPS) {
			answer_fail(a, "CNAME chain too long");
			return a;
		}
		str_copy(cur, a->target, sizeof cur);
		dns_sec_answer_free(&a);
	}
}

int
dns_sec_mx_lookup(struct dns_sec *s, const char *domain, struct dns_sec_mx *out)
{
	char name[DNS_NAME_MAX];
	struct dns_sec_answer *a;

	memset(out, 0, sizeof *out);
	out->kind = DNS_SEC_FAIL;
	out->state = DNS_SEC_BOGUS;
	if (dns_name_normalize(domain, name, sizeof name) != 0) {
		str_format(out->detail, sizeof out->detail, "invalid domain name");
		return out->state;
	}
	a = dns_sec_lookup(s, name, DNS_T_MX, dns_sec_deadline(s));
	out->kind = a->kind;
	out->state = dns_sec_answer_state(a);
	if (a->kind == DNS_SEC_FAIL)
		str_format(out->detail, sizeof out->detail, "%s MX: %s", name,
		    a->detail);
	for (size_t i = 0; a->kind == DNS_SEC_DATA && i < a->n &&
	    out->nnames < DNS_MAX_MX_HOSTS; i++) {
		char host[DNS_NAME_MAX];
		/* MX rdata: a 16-bit preference, then an uncompressed name. */
		if (a->rrs[i].len < 3 || dns_wire_name_to_text(a->rrs[i].data + 2,
		    a->rrs[i].len - 2, host, sizeof host) != 0 || host[0] == '\0')
			continue;
		if (!dns_sec_mx_has(out, host))
			str_copy(out->names[out->nnames++], host, DNS_NAME_MAX);
	}
	dns_sec_answer_free(&a);
	return out->state;
}

int
dns_sec_mx_has(const struct dns_sec_mx *mx, const char *host)
{
	char name[DNS_NAME_MAX];

	if (dns_name_normalize(host, name, sizeof name) != 0)
		return 0;
	for (size_t i = 0; i < mx->nnames; i++)
		if (strcmp(mx->names[i], name) == 0)
			return 1;
	return 0;
}

/* The weaker of two states: bogus < insecure < secure. */
static enum dns_sec_state
state_min(enum dns_sec_state a, enum dns_sec_state b)
{
	if (a == DNS_SEC_BOGUS || b == DNS_SEC_BOGUS)
		return DNS_SEC_BOGUS;
	if (a == DNS_SEC_INSECURE || b == DNS_SEC_INSECURE)
		return DNS_SEC_INSECURE;
	return DNS_SEC_SECURE;
}

int
dns_sec_host_lookup(struct dns_sec *s, const char *host, struct dns_sec_host *out)
{
	char name[DNS_NAME_MAX];
	int64_t deadline = dns_sec_deadline(s);
	struct dns_sec_answer *a4, *a6 = NULL;

	memset(out, 0, sizeof *out);
	out->state = out->alias_state = DNS_SEC_BOGUS;
	if (dns_name_normalize(host, name, sizeof name) != 0) {
		str_format(out->detail, sizeof out->detail, "invalid host name");
		return out->state;
	}
	str_copy(out->expanded, name, sizeof out->expanded);
	a4 = dns_sec_lookup(s, name, DNS_T_A, deadline);
	if (s->opts.use_ipv6 && a4->kind != DNS_SEC_NXDOMAIN)
		a6 = dns_sec_lookup(s, name, DNS_T_AAAA, deadline);
	out->state = dns_sec_answer_state(a4);
	if (a6 != NULL)
		out->state = state_min(out->state, dns_sec_answer_state(a6));
	if (a4->kind == DNS_SEC_FAIL || (a6 && a6->kind == DNS_SEC_FAIL))
		str_format(out->detail, sizeof out->detail, "%s: %s", name,
		    a4->kind == DNS_SEC_FAIL ? a4->detail : a6->detail);
	if (a4->kind != DNS_SEC_FAIL) {
		out->alias = a4->cnames > 0;
		str_copy(out->expanded, a4->owner, sizeof out->expanded);
	}
	out->alias_state = out->state;
	if (out->alias && out->state == DNS_SEC_INSECURE) {
		/* Is the alias itself signed? Its own CNAME record says. */
		struct dns_sec_answer *c = dns_sec_lookup(s, name, DNS_T_CNAME,
		    deadline);
		out->alias_state = c->kind == DNS_SEC_DATA ?
		    dns_sec_answer_state(c) : state_min(DNS_SEC_INSECURE,
		    dns_sec_answer_state(c));
		dns_sec_answer_free(&c);
	}
	dns_sec_answer_free(&a4);
	dns_sec_answer_free(&a6);
	return out->state;
}
