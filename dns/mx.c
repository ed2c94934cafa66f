/*
 * mx: the mail rules of DNS, apart from the network.
 *
 * - Answer parsing: a wire answer (from the network, the cache's source, a
 *   unit test or a fuzzer) becomes a struct dns_rrset. Packets are hostile:
 *   ldns decodes them (bounded: compression pointers, counts, lengths), and
 *   then only records that belong to the question asked, or to the CNAME
 *   chain that starts there, are used; names must be plain host names.
 * - MX selection (RFC 5321 5.1, RFC 7505): preference order, equal
 *   preferences shuffled, the implicit MX, null MX, bounds.
 * - The public lookups dns_mx_lookup, dns_addr_lookup, dns_ptr_lookup,
 *   built on dns_resolver_lookup (resolver.c: cache, CNAME re-queries,
 *   network).
 *
 * Diagnostics: every failure ends in a status and a detail text; nothing is
 * logged above debug level.
 * Threads: everything here is reentrant; randomness is a per-call state.
 */
#include "dns/dns_internal.h"

#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"

/* snprintf for diagnostics, where cutting a long text short is fine. */
static void detail_set(char *dst, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
detail_set(char *dst, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, size, fmt, ap);
	va_end(ap);
}

/* ---- names ---- */

static int
name_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int
dns_name_normalize(const char *name, char *out, size_t outsize)
{
	size_t len, label = 0;

	if (name == NULL || outsize == 0)
		return -1;
	len = strnlen(name, DNS_NAME_MAX + 1);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > 253 || len + 1 > outsize)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (name_char_ok(c)) {
			if (++label > 63)
				return -1;
		} else {
			return -1;
		}
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : (char)c;
	}
	if (label == 0)
		return -1;
	out[len] = '\0';
	return 0;
}

int
dns_wire_name_to_text(const uint8_t *wire, size_t len, char *out,
    size_t outsize)
{
	size_t pos = 0, o = 0;

	if (wire == NULL || len == 0 || len > 255 || outsize == 0)
		return -1;
	for (;;) {
		size_t l;
		if (pos >= len)
			return -1;
		l = wire[pos++];
		if (l == 0)
			break;
		if (l > 63 || pos + l > len)
			return -1;
		if (o + l + (o > 0) > 253 || o + l + (o > 0) + 1 > outsize)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (size_t i = 0; i < l; i++) {
			unsigned char c = wire[pos + i];
			if (!name_char_ok(c))
				return -1;
			out[o++] = (c >= 'A' && c <= 'Z') ?
			    (char)(c - 'A' + 'a') : (char)c;
		}
		pos += l;
	}
	if (pos != len)
		return -1;
	out[o] = '\0';
	return 0;
}

static int
rdf_name_text(const ldns_rdf *rdf, char *out, size_t outsize)
{
	if (rdf == NULL || ldns_rdf_get_type(rdf) != LDNS_RDF_TYPE_DNAME)
		return -1;
	return dns_wire_name_to_text(ldns_rdf_data(rdf), ldns_rdf_size(rdf),
	    out, outsize);
}

/* ---- randomness ---- */

uint64_t
dns_random_seed(void)
{
	uint64_t s = 0;

	if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s || s == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		s = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
		    (uint64_t)(uintptr_t)&ts;
	}
	return s ? s : 0x9e3779b97f4a7c15ULL;
}

uint32_t
dns_random_below(uint64_t *state, uint32_t bound)
{
	uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ULL;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return bound ? (uint32_t)((x >> 11) % bound) : 0;
}

/* ---- rrsets ---- */

struct dns_rrset *
dns_rrset_new(enum dns_kind kind, uint16_t type)
{
	struct dns_rrset *rs = xcalloc(1, sizeof *rs);

	rs->kind = kind;
	rs->type = type;
	return rs;
}

struct dns_rrset *
dns_rrset_copy(const struct dns_rrset *rs)
{
	struct dns_rrset *c = xmalloc(sizeof *c);

	*c = *rs;
	c->rrs = NULL;
	if (rs->n > 0) {
		c->rrs = xcalloc(rs->n, sizeof *c->rrs);
		for (size_t i = 0; i < rs->n; i++) {
			c->rrs[i] = rs->rrs[i];
			if (rs->rrs[i].name)
				c->rrs[i].name = xstrdup(rs->rrs[i].name);
			if (rs->rrs[i].text) {
				c->rrs[i].text = xmalloc(rs->rrs[i].textlen + 1);
				memcpy(c->rrs[i].text, rs->rrs[i].text,
				    rs->rrs[i].textlen + 1);
			}
			if (rs->rrs[i].raw) {
				c->rrs[i].raw = xmalloc(rs->rrs[i].rawlen + 1);
				memcpy(c->rrs[i].raw, rs->rrs[i].raw,
				    rs->rrs[i].rawlen);
			}
		}
	}
	return c;
}

static void
rrset_clear(struct dns_rrset *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		free(rs->rrs[i].name);
		free(rs->rrs[i].text);
		free(rs->rrs[i].raw);
	}
	free(rs->rrs);
	rs->rrs = NULL;
	rs->n = 0;
}

void
dns_rrset_free(struct dns_rrset **rsp)
{
	struct dns_rrset *rs = *rsp;

	if (rs == NULL)
		return;
	rrset_clear(rs);
	free(rs);
	*rsp = NULL;
}

static void
rrset_fail(struct dns_rrset *rs, const char *why)
{
	rrset_clear(rs);
	rs->kind = DNS_K_TEMP;
	rs->ttl = 0;
	rs->ad = 0;
	rs->owner[0] = '\0';
	detail_set(rs->detail, sizeof rs->detail, "%s", why);
}

/* The rdata of rr in uncompressed wire form into one->raw; 0 or -1. */
static int
rr_raw(const ldns_rr *rr, struct dns_rr *one)
{
	ldns_buffer *b = ldns_buffer_new(512);
	size_t len;

	if (b == NULL)
		abort();
	if (ldns_rr_rdata2buffer_wire(b, rr) != LDNS_STATUS_OK) {
		ldns_buffer_free(b);
		return -1;
	}
	len = ldns_buffer_position(b);
	one->raw = xmalloc(len + 1);
	memcpy(one->raw, ldns_buffer_begin(b), len);
	one->rawlen = len;
	ldns_buffer_free(b);
	return 0;
}

/* RFC 2181 8: a TTL with the top bit set means zero. */
static uint32_t
rr_ttl(const ldns_rr *rr)
{
	uint32_t t = ldns_rr_ttl(rr);

	return t > 0x7fffffffU ? 0 : t;
}

/* Decodes one record of the wanted type into rs; counts invalid ones. */
static void
rrset_add(struct dns_rrset *rs, const ldns_rr *rr)
{
	struct dns_rr one;
	char name[DNS_NAME_MAX];
	const ldns_rdf *rd;

	memset(&one, 0, sizeof one);
	switch (rs->type) {
	case DNS_T_MX:
		if (ldns_rr_rd_count(rr) != 2 ||
		    (rd = ldns_rr_rdf(rr, 0)) == NULL || ldns_rdf_size(rd) != 2 ||
		    rdf_name_text(ldns_rr_rdf(rr, 1), name, sizeof name) != 0)
			goto bad;
		one.pref = ldns_rdf2native_int16(rd);
		one.name = xstrdup(name);
		break;
	case DNS_T_PTR:
	case DNS_T_CNAME:
		if (ldns_rr_rd_count(rr) != 1 ||
		    rdf_name_text(ldns_rr_rdf(rr, 0), name, sizeof name) != 0 ||
		    name[0] == '\0')
			goto bad;
		one.name = xstrdup(name);
		break;
	case DNS_T_A:
	case DNS_T_AAAA: {
		size_t want = rs->type == DNS_T_A ? 4 : 16;
		if (ldns_rr_rd_count(rr) != 1 ||
		    (rd = ldns_rr_rdf(rr, 0)) == NULL || ldns_rdf_size(rd) != want)
			goto bad;
		memcpy(one.addr, ldns_rdf_data(rd), want);
		break;
	}
	case DNS_T_TXT:
		if (dns_txt_rdata_join(rr, &one) != 0)
			goto bad;
		break;
	case DNS_T_TLSA:
		/* usage, selector, matching type, then the data (RFC 6698 2.1);
		 * which records are usable is relay/'s decision. */
		if (rr_raw(rr, &one) != 0 || one.rawlen < 3) {
			free(one.raw);
			goto bad;
		}
		break;
	default:
		goto bad;
	}
	if (rs->n >= DNS_MAX_RRSET) {
		free(one.name);
		free(one.text);
		free(one.raw);
		rs->nbad++;
		return;
	}
	rs->rrs = xrealloc(rs->rrs, (rs->n + 1) * sizeof *rs->rrs);
	rs->rrs[rs->n++] = one;
	return;
bad:
	rs->nbad++;
}

/* The TTL of a negative answer: min(SOA TTL, SOA minimum) (RFC 2308 5). */
static uint32_t
negative_ttl(const ldns_pkt *pkt)
{
	const ldns_rr_list *auth = ldns_pkt_authority(pkt);
	size_t n = auth ? ldns_rr_list_rr_count(auth) : 0;

	for (size_t i = 0; i < n; i++) {
		const ldns_rr *rr = ldns_rr_list_rr(auth, i);
		const ldns_rdf *min;
		uint32_t t, m;
		if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_SOA ||
		    ldns_rr_rd_count(rr) != 7)
			continue;
		min = ldns_rr_rdf(rr, 6);
		if (min == NULL || ldns_rdf_size(min) != 4)
			continue;
		t = rr_ttl(rr);
		m = ldns_rdf2native_int32(min);
		if (m > 0x7fffffffU)
			m = 0;
		return t < m ? t : m;
	}
	return DNS_DEFAULT_NEG_TTL;
}

static const char *
rcode_text(int rcode)
{
	switch (rcode) {
	case LDNS_RCODE_FORMERR: return "FORMERR";
	case LDNS_RCODE_SERVFAIL: return "SERVFAIL";
	case LDNS_RCODE_NOTIMPL: return "NOTIMPL";
	case LDNS_RCODE_REFUSED: return "REFUSED";
	default: return "unexpected rcode";
	}
}

int
dns_answer_chain(const ldns_pkt *pkt, const ldns_rdf *qrdf, uint16_t qtype,
    dns_answer_each_fn *each, void *ctx, struct dns_answer_chain *c,
    const char **why_r)
{
	const ldns_rr_list *ans = ldns_pkt_answer(pkt);
	size_t nans = ans ? ldns_rr_list_rr_count(ans) : 0;
	const ldns_rdf *cur = qrdf;

	memset(c, 0, sizeof *c);
	c->ttl = UINT32_MAX;
	for (;;) {
		const ldns_rdf *next = NULL;

		for (size_t i = 0; i < nans; i++) {
			const ldns_rr *rr = ldns_rr_list_rr(ans, i);
			if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN ||
			    ldns_dname_compare(ldns_rr_owner(rr), cur) != 0)
				continue;
			if (ldns_rr_get_type(rr) == qtype) {
				c->found = 1;
				if (rr_ttl(rr) < c->ttl)
					c->ttl = rr_ttl(rr);
				if (each(ctx, rr) != 0) {
					*why_r = "malformed record";
					return -1;
				}
			} else if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME) {
				const ldns_rdf *t = ldns_rr_rd_count(rr) == 1 ?
				    ldns_rr_rdf(rr, 0) : NULL;
				if (t == NULL ||
				    ldns_rdf_get_type(t) != LDNS_RDF_TYPE_DNAME) {
					*why_r = "malformed CNAME record";
					return -1;
				}
				if (next != NULL && ldns_dname_compare(next, t) != 0) {
					*why_r = "conflicting CNAME records";
					return -1;
				}
				next = t;
				if (rr_ttl(rr) < c->ttl)
					c->ttl = rr_ttl(rr);
			}
		}
		if (c->found || next == NULL)
			break;
		if (++c->cnames > DNS_MAX_CNAME_HOPS) {
			*why_r = "CNAME chain too long";
			return -1;
		}
		cur = next;
	}
	c->end = cur;
	return 0;
}

static int
rrset_each(void *ctx, const ldns_rr *rr)
{
	rrset_add(ctx, rr);	/* invalid records are counted, not fatal */
	return 0;
}

/* Fills rs from the answer section, along the CNAMEs from qrdf. */
static void
parse_sections(const ldns_pkt *pkt, const ldns_rdf *qrdf, struct dns_rrset *rs)
{
	int rcode = ldns_pkt_get_rcode(pkt);
	struct dns_answer_chain c;
	const char *why;

	if (dns_answer_chain(pkt, qrdf, rs->type, rrset_each, rs, &c, &why) != 0) {
		rrset_fail(rs, why);
		return;
	}
	rs->cnames = c.cnames;
	rs->ad = ldns_pkt_ad(pkt);
	/* Where the chain ended; "" when that name is not a plain host name
	 * (such a name is no TLSA base domain, but its records still count). */
	if ((c.found || rcode == LDNS_RCODE_NXDOMAIN || c.end == qrdf) &&
	    rdf_name_text(c.end, rs->owner, sizeof rs->owner) != 0)
		rs->owner[0] = '\0';
	if (c.found) {
		if (rcode != LDNS_RCODE_NOERROR) {
			rrset_fail(rs, "records in a negative answer");
			return;
		}
		rs->kind = DNS_K_DATA;
		rs->ttl = c.ttl;
		return;
	}
	if (rcode == LDNS_RCODE_NXDOMAIN || c.end == qrdf) {
		uint32_t neg = negative_ttl(pkt);
		rs->kind = rcode == LDNS_RCODE_NXDOMAIN ? DNS_K_NXDOMAIN : DNS_K_NODATA;
		rs->ttl = neg < c.ttl ? neg : c.ttl;
		return;
	}
	/* A chain that ends without the type asked: the target is asked next. */
	if (rdf_name_text(c.end, rs->target, sizeof rs->target) != 0 ||
	    rs->target[0] == '\0') {
		rrset_fail(rs, "invalid CNAME target");
		return;
	}
	rs->kind = DNS_K_CNAME;
	rs->ttl = c.ttl;
}

int
dns_answer_open(const uint8_t *wire, size_t len, const char *qname,
    uint16_t qtype, ldns_pkt **pkt_r, ldns_rdf **qrdf_r, const char **why_r)
{
	ldns_pkt *pkt = NULL;
	ldns_rdf *qrdf = NULL;
	const ldns_rr_list *ql;
	const ldns_rr *q;

	*pkt_r = NULL;
	*qrdf_r = NULL;
	if (wire == NULL || len < 12 || len > DNS_MAX_WIRE) {
		*why_r = "answer too short or too long";
		return -1;
	}
	if (ldns_wire2pkt(&pkt, wire, len) != LDNS_STATUS_OK || pkt == NULL) {
		*why_r = "malformed answer";
		return -1;
	}
	if (!ldns_pkt_qr(pkt) || ldns_pkt_get_opcode(pkt) != LDNS_PACKET_QUERY) {
		*why_r = "not an answer to a query";
		goto fail;
	}
	if (ldns_pkt_tc(pkt)) {
		*why_r = "truncated answer";
		goto fail;
	}
	ql = ldns_pkt_question(pkt);
	qrdf = ldns_dname_new_frm_str(qname);
	if (qrdf == NULL) {
		*why_r = "invalid query name";
		goto fail;
	}
	if (ldns_pkt_qdcount(pkt) != 1 || ql == NULL ||
	    ldns_rr_list_rr_count(ql) != 1 || (q = ldns_rr_list_rr(ql, 0)) == NULL ||
	    ldns_rr_get_type(q) != qtype ||
	    ldns_rr_get_class(q) != LDNS_RR_CLASS_IN ||
	    ldns_dname_compare(ldns_rr_owner(q), qrdf) != 0) {
		*why_r = "answer to another question";
		goto fail;
	}
	*pkt_r = pkt;
	*qrdf_r = qrdf;
	return 0;
fail:
	ldns_rdf_deep_free(qrdf);
	ldns_pkt_free(pkt);
	return -1;
}

struct dns_rrset *
dns_answer_parse(const uint8_t *wire, size_t len, const char *qname,
    uint16_t qtype)
{
	struct dns_rrset *rs = dns_rrset_new(DNS_K_TEMP, qtype);
	ldns_pkt *pkt;
	ldns_rdf *qrdf;
	const char *why;
	int rcode;

	if (dns_answer_open(wire, len, qname, qtype, &pkt, &qrdf, &why) != 0) {
		rrset_fail(rs, why);
		return rs;
	}
	rcode = ldns_pkt_get_rcode(pkt);
	if (rcode != LDNS_RCODE_NOERROR && rcode != LDNS_RCODE_NXDOMAIN)
		rrset_fail(rs, rcode_text(rcode));
	else
		parse_sections(pkt, qrdf, rs);
	ldns_rdf_deep_free(qrdf);
	ldns_pkt_free(pkt);
	return rs;
}

/* ---- MX selection ---- */

int
dns_mx_select(const struct dns_rrset *mx, uint64_t *rnd,
    struct dns_mx_result *res)
{
	const struct dns_rr *v[DNS_MAX_RRSET];
	size_t n = 0, roots = 0, out = 0;

	res->nhosts = 0;
	res->ntargets = 0;
	for (size_t i = 0; i < mx->n && n < DNS_MAX_RRSET; i++) {
		if (mx->rrs[i].name == NULL)
			continue;
		if (mx->rrs[i].name[0] == '\0') {
			roots++;
			continue;
		}
		v[n++] = &mx->rrs[i];
	}
	if (n == 0) {
		if (roots > 0) {
			res->status = DNS_NULL_MX;
			detail_set(res->detail, sizeof res->detail,
			    "%s: domain does not accept mail (null MX)", res->domain);
		} else {
			res->status = DNS_NO_ADDRESS;
			detail_set(res->detail, sizeof res->detail,
			    "%s: no valid MX host name (%u invalid)", res->domain,
			    mx->nbad);
		}
		return res->status;
	}
	/* Stable insertion sort by preference (n <= DNS_MAX_RRSET). */
	for (size_t i = 1; i < n; i++) {
		const struct dns_rr *x = v[i];
		size_t j = i;
		while (j > 0 && v[j - 1]->pref > x->pref) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
	/* Drop repeated names; the first (best preference) stays. */
	for (size_t i = 0; i < n; i++) {
		int dup = 0;
		for (size_t j = 0; j < out && !dup; j++)
			dup = strcmp(v[j]->name, v[i]->name) == 0;
		if (!dup)
			v[out++] = v[i];
	}
	n = out;
	/* Shuffle each run of equal preference (Fisher-Yates). */
	for (size_t s = 0; s < n;) {
		size_t e = s + 1;
		while (e < n && v[e]->pref == v[s]->pref)
			e++;
		for (size_t i = e - 1; i > s; i--) {
			size_t j = s + dns_random_below(rnd, (uint32_t)(i - s + 1));
			const struct dns_rr *t = v[i];
			v[i] = v[j];
			v[j] = t;
		}
		s = e;
	}
	if (n > DNS_MAX_MX_HOSTS)
		n = DNS_MAX_MX_HOSTS;
	for (size_t i = 0; i < n; i++) {
		struct dns_mx_host *h = &res->hosts[i];
		memset(h, 0, sizeof *h);
		str_copy(h->name, v[i]->name, sizeof h->name);
		h->pref = v[i]->pref;
	}
	res->nhosts = n;
	res->status = DNS_OK;
	return DNS_OK;
}

static struct dns_mx_result *
mx_result_new(const char *domain)
{
	struct dns_mx_result *res = xcalloc(1, sizeof *res);

	res->status = DNS_TEMP;
	if (domain != NULL)
		str_copy(res->domain, domain, sizeof res->domain);
	return res;
}

static int
mx_result_from_rrset(const struct dns_rrset *rs, uint64_t *rnd,
    struct dns_mx_result *res)
{
	switch (rs->kind) {
	case DNS_K_DATA:
		return dns_mx_select(rs, rnd, res);
	case DNS_K_NXDOMAIN:
		res->status = DNS_NXDOMAIN;
		detail_set(res->detail, sizeof res->detail,
		    "%s: no such domain (NXDOMAIN)", res->domain);
		break;
	case DNS_K_NODATA:
		/* No MX: the implicit MX, the domain itself (RFC 5321 5.1). */
		res->implicit = 1;
		res->nhosts = 1;
		str_copy(res->hosts[0].name, res->domain, sizeof res->hosts[0].name);
		res->hosts[0].pref = 0;
		res->status = DNS_OK;
		break;
	case DNS_K_CNAME:
	case DNS_K_TEMP:
	default:
		res->status = DNS_TEMP;
		detail_set(res->detail, sizeof res->detail, "%s: MX lookup failed: %s",
		    res->domain, rs->kind == DNS_K_CNAME ? "CNAME not followed" :
		    rs->detail);
		break;
	}
	return res->status;
}

int
dns_parse_mx_answer(const uint8_t *wire, size_t len, const char *qname,
    uint64_t seed, struct dns_mx_result **res_r)
{
	char name[DNS_NAME_MAX];
	struct dns_mx_result *res;
	struct dns_rrset *rs;
	uint64_t rnd = seed ? seed : 1;

	if (dns_name_normalize(qname, name, sizeof name) != 0) {
		res = mx_result_new(NULL);
		res->status = DNS_BAD_NAME;
		detail_set(res->detail, sizeof res->detail, "invalid domain name");
		*res_r = res;
		return res->status;
	}
	res = mx_result_new(name);
	rs = dns_answer_parse(wire, len, name, DNS_T_MX);
	mx_result_from_rrset(rs, &rnd, res);
	if (res->status == DNS_OK && res->implicit)
		res->status = DNS_NO_ADDRESS;	/* addresses are not looked up here */
	dns_rrset_free(&rs);
	*res_r = res;
	return res->status;
}

void
dns_mx_result_free(struct dns_mx_result **resp)
{
	free(*resp);
	*resp = NULL;
}

void
dns_addr_result_free(struct dns_addr_result **resp)
{
	free(*resp);
	*resp = NULL;
}

/* ---- addresses ---- */

/* Unspecified, broadcast and multicast addresses cannot be mail hosts;
 * loopback is allowed (tests and local relays use it). */
static int
addr_usable(int family, const uint8_t *b)
{
	static const uint8_t zero[16];

	if (family == AF_INET)
		return memcmp(b, zero, 4) != 0 && b[0] < 224;
	return memcmp(b, zero, 16) != 0 && b[0] != 0xff;
}

static void
addr_fill(struct dns_addr *a, int family, const uint8_t *b)
{
	memset(a, 0, sizeof *a);
	a->family = family;
	memcpy(a->bytes, b, family == AF_INET ? 4 : 16);
	if (inet_ntop(family, a->bytes, a->text, sizeof a->text) == NULL)
		str_copy(a->text, "?", sizeof a->text);
}

struct host_addrs {
	size_t n;
	struct dns_addr a[DNS_MAX_HOST_ADDRS];
	int temp;		/* a family failed temporarily */
	int nxdomain;		/* the name does not exist */
	char why[160];
};

/* Appends the addresses of one family, shuffled, duplicates dropped. */
static void
host_add_family(struct host_addrs *ha, const struct dns_rrset *rs, int family,
    uint64_t *rnd)
{
	size_t start = ha->n;

	switch (rs->kind) {
	case DNS_K_DATA:
		break;
	case DNS_K_NXDOMAIN:
		ha->nxdomain = 1;
		return;
	case DNS_K_NODATA:
		return;
	default:
		ha->temp = 1;
		detail_set(ha->why, sizeof ha->why, "%s lookup: %s",
		    family == AF_INET ? "A" : "AAAA", rs->detail);
		return;
	}
	for (size_t i = 0; i < rs->n && ha->n < DNS_MAX_HOST_ADDRS; i++) {
		size_t blen = family == AF_INET ? 4 : 16;
		int dup = 0;
		if (!addr_usable(family, rs->rrs[i].addr))
			continue;
		for (size_t j = start; j < ha->n && !dup; j++)
			dup = memcmp(ha->a[j].bytes, rs->rrs[i].addr, blen) == 0;
		if (!dup)
			addr_fill(&ha->a[ha->n++], family, rs->rrs[i].addr);
	}
	for (size_t i = ha->n; i > start + 1; i--) {
		size_t j = start + dns_random_below(rnd, (uint32_t)(i - start));
		struct dns_addr t = ha->a[i - 1];
		ha->a[i - 1] = ha->a[j];
		ha->a[j] = t;
	}
}

static void
host_lookup(struct dns_resolver *r, const char *name, int64_t deadline,
    uint64_t *rnd, struct host_addrs *ha)
{
	const struct dns_options *o = dns_resolver_options(r);
	struct dns_rrset *rs4, *rs6 = NULL;

	memset(ha, 0, sizeof *ha);
	rs4 = dns_resolver_lookup(r, name, DNS_T_A, deadline);
	/* NXDOMAIN is about the name: no need to ask for AAAA. */
	if (o->use_ipv6 && rs4->kind != DNS_K_NXDOMAIN)
		rs6 = dns_resolver_lookup(r, name, DNS_T_AAAA, deadline);
	if (o->prefer_ipv6 && rs6 != NULL)
		host_add_family(ha, rs6, AF_INET6, rnd);
	host_add_family(ha, rs4, AF_INET, rnd);
	if (!o->prefer_ipv6 && rs6 != NULL)
		host_add_family(ha, rs6, AF_INET6, rnd);
	if (ha->n > 0)
		ha->temp = ha->nxdomain = 0;
	dns_rrset_free(&rs4);
	dns_rrset_free(&rs6);
}

int
dns_mx_lookup(struct dns_resolver *r, const char *domain,
    struct dns_mx_result **res_r)
{
	const struct dns_options *o = dns_resolver_options(r);
	char name[DNS_NAME_MAX];
	struct dns_mx_result *res;
	struct dns_rrset *rs;
	struct host_addrs ha;
	uint64_t rnd = dns_random_seed();
	int64_t deadline = dns_resolver_now(r) + o->total_timeout_ms;
	size_t total = 0, kept = 0, ntemp = 0;
	char last_why[160] = "";

	if (dns_name_normalize(domain, name, sizeof name) != 0) {
		res = mx_result_new(NULL);
		res->status = DNS_BAD_NAME;
		detail_set(res->detail, sizeof res->detail, "invalid domain name");
		*res_r = res;
		return res->status;
	}
	res = mx_result_new(name);
	*res_r = res;
	rs = dns_resolver_lookup(r, name, DNS_T_MX, deadline);
	mx_result_from_rrset(rs, &rnd, res);
	dns_rrset_free(&rs);
	if (res->status != DNS_OK)
		return res->status;

	for (size_t i = 0; i < res->nhosts && total < o->max_addrs; i++) {
		struct dns_mx_host *h = &res->hosts[i];
		host_lookup(r, h->name, deadline, &rnd, &ha);
		if (ha.n == 0) {
			struct dns_mx_dropped *d = &res->dropped[res->ndropped++];
			str_copy(d->name, h->name, sizeof d->name);
			d->pref = h->pref;
			d->temp = ha.temp;
			if (ha.temp)
				ntemp++;
			detail_set(last_why, sizeof last_why, "%s: %s", h->name,
			    ha.temp ? ha.why : ha.nxdomain ? "no such host" :
			    "no address");
			log_debug("dns: MX %s of %s skipped: %s", h->name, name,
			    last_why);
			continue;
		}
		if (kept != i)
			res->hosts[kept] = *h;
		h = &res->hosts[kept++];
		h->naddrs = ha.n;
		memcpy(h->addrs, ha.a, ha.n * sizeof ha.a[0]);
		total += ha.n;
	}
	res->nhosts = kept;
	for (size_t i = 0; i < kept && res->ntargets < o->max_addrs; i++)
		for (size_t j = 0; j < res->hosts[i].naddrs &&
		    res->ntargets < o->max_addrs; j++) {
			res->targets[res->ntargets].host = i;
			res->targets[res->ntargets++].addr = res->hosts[i].addrs[j];
		}
	if (kept > 0) {
		res->status = DNS_OK;
		res->detail[0] = '\0';
	} else {
		res->status = ntemp > 0 ? DNS_TEMP : DNS_NO_ADDRESS;
		detail_set(res->detail, sizeof res->detail, "%s: %s", name,
		    res->implicit ? "no MX and no address" :
		    "no MX host has an address");
		if (last_why[0] != '\0') {
			size_t l = strlen(res->detail);
			detail_set(res->detail + l, sizeof res->detail - l, " (%s)",
			    last_why);
		}
	}
	return res->status;
}

/* Parses "1.2.3.4", "::1" or "[...]" into a; 0 or -1. */
static int
addr_literal(const char *s, struct dns_addr *a)
{
	char buf[64];
	uint8_t b[16];
	size_t len = strnlen(s, sizeof buf);

	if (len >= sizeof buf)
		return -1;
	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		memcpy(buf, s + 1, len - 2);
		buf[len - 2] = '\0';
	} else {
		memcpy(buf, s, len + 1);
	}
	if (strncasecmp(buf, "IPv6:", 5) == 0)
		memmove(buf, buf + 5, strlen(buf + 5) + 1);
	if (inet_pton(AF_INET, buf, b) == 1) {
		addr_fill(a, AF_INET, b);
		return 0;
	}
	if (inet_pton(AF_INET6, buf, b) == 1) {
		addr_fill(a, AF_INET6, b);
		return 0;
	}
	return -1;
}

int
dns_addr_lookup(struct dns_resolver *r, const char *host,
    struct dns_addr_result **res_r)
{
	const struct dns_options *o = dns_resolver_options(r);
	struct dns_addr_result *res = xcalloc(1, sizeof *res);
	char name[DNS_NAME_MAX];
	struct host_addrs ha;
	uint64_t rnd = dns_random_seed();

	*res_r = res;
	if (host != NULL && addr_literal(host, &res->addrs[0]) == 0) {
		res->naddrs = 1;
		res->status = DNS_OK;
		return DNS_OK;
	}
	if (dns_name_normalize(host, name, sizeof name) != 0) {
		res->status = DNS_BAD_NAME;
		detail_set(res->detail, sizeof res->detail, "invalid host name");
		return res->status;
	}
	host_lookup(r, name, dns_resolver_now(r) + o->total_timeout_ms, &rnd, &ha);
	res->naddrs = ha.n;
	memcpy(res->addrs, ha.a, ha.n * sizeof ha.a[0]);
	if (ha.n > 0)
		res->status = DNS_OK;
	else if (ha.temp)
		res->status = DNS_TEMP;
	else if (ha.nxdomain)
		res->status = DNS_NXDOMAIN;
	else
		res->status = DNS_NO_ADDRESS;
	if (res->status != DNS_OK)
		detail_set(res->detail, sizeof res->detail, "%s: %s", name,
		    ha.temp ? ha.why : ha.nxdomain ? "no such host (NXDOMAIN)" :
		    "no address");
	return res->status;
}

/* The in-addr.arpa or ip6.arpa name of sa; 0 or -1. */
static int
reverse_name(const struct sockaddr *sa, char *out, size_t outsize)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *b;
	int n;

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		b = s6->sin6_addr.s6_addr;
		if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			size_t o = 0;
			if (outsize < 64 + 9 + 1)
				return -1;
			for (int i = 15; i >= 0; i--) {
				out[o++] = hex[b[i] & 0xf];
				out[o++] = '.';
				out[o++] = hex[b[i] >> 4];
				out[o++] = '.';
			}
			return str_copy(out + o, "ip6.arpa", outsize - o);
		}
		b += 12;
	} else if (sa->sa_family == AF_INET) {
		b = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else {
		return -1;
	}
	n = snprintf(out, outsize, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1],
	    b[0]);
	return n > 0 && (size_t)n < outsize ? 0 : -1;
}

int
dns_ptr_lookup(struct dns_resolver *r, const struct sockaddr *sa, char *name,
    size_t namesize)
{
	const struct dns_options *o = dns_resolver_options(r);
	char q[DNS_NAME_MAX];
	struct dns_rrset *rs;
	int status;

	if (namesize > 0)
		name[0] = '\0';
	if (sa == NULL || namesize == 0 || reverse_name(sa, q, sizeof q) != 0)
		return DNS_BAD_NAME;
	rs = dns_resolver_lookup(r, q, DNS_T_PTR,
	    dns_resolver_now(r) + o->total_timeout_ms);
	switch (rs->kind) {
	case DNS_K_DATA:
		status = DNS_NXDOMAIN;	/* every PTR name was invalid */
		for (size_t i = 0; i < rs->n; i++)
			if (rs->rrs[i].name && rs->rrs[i].name[0] &&
			    str_copy(name, rs->rrs[i].name, namesize) == 0) {
				status = DNS_OK;
				break;
			}
		if (status != DNS_OK)
			name[0] = '\0';
		break;
	case DNS_K_NXDOMAIN:
	case DNS_K_NODATA:
		status = DNS_NXDOMAIN;
		break;
	default:
		status = DNS_TEMP;
		break;
	}
	dns_rrset_free(&rs);
	return status;
}

/* ---- status ---- */

const char *
dns_status_str(int status)
{
	switch (status) {
	case DNS_OK: return "ok";
	case DNS_NULL_MX: return "null MX";
	case DNS_NXDOMAIN: return "no such domain";
	case DNS_NO_ADDRESS: return "no address";
	case DNS_TEMP: return "temporary DNS failure";
	case DNS_BAD_NAME: return "invalid name";
	default: return "unknown DNS status";
	}
}

int
dns_status_is_permanent(int status)
{
	return status == DNS_NULL_MX || status == DNS_NXDOMAIN ||
	    status == DNS_BAD_NAME;
}

const char *
dns_status_dsn(int status)
{
	switch (status) {
	case DNS_OK: return "2.0.0";
	case DNS_NULL_MX: return "5.1.10";
	case DNS_NXDOMAIN:
	case DNS_BAD_NAME: return "5.1.2";
	case DNS_NO_ADDRESS: return "4.4.4";
	default: return "4.4.3";
	}
}
