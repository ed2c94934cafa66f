/*
 * resolver: where questions go. A struct dns_resolver holds an immutable
 * list of server addresses (from the config or, once, from resolv.conf),
 * the options and the shared cache; dns_resolver_lookup asks the cache,
 * then the servers, follows CNAMEs by re-querying, and caches the answer
 * with its AD bit.
 *
 * DNSSEC: every query has the DO and AD bits set (RFC 3225, RFC 6840
 * 5.7), so a validating resolver says whether it validated the answer.
 * That AD bit is believed only when every server is a loopback address
 * (trusted): elsewhere anyone on the path could set it.
 *
 * Network: ldns builds each query and decodes each answer, but the
 * sockets are our own: one UDP socket per query, connected to the server
 * (the kernel drops datagrams from elsewhere), a random 16-bit ID from
 * getrandom checked on the reply, TCP when the answer is truncated, and
 * poll() with the time left (no select(), so descriptor numbers above
 * FD_SETSIZE are fine). Tries: `tries` rounds over all servers, a new
 * query every try_timeout_ms, all bounded by the caller's deadline; the
 * earlier queries stay open, so a server slower than one try is still
 * heard. A server that answers SERVFAIL/REFUSED/... makes us ask the next
 * one at once.
 *
 * Threads: the resolver is read-only after dns_resolver_new except the
 * cache (its own mutex) and an atomic counter, so lookups run on any
 * number of threads at once. No ldns_resolver is shared (or kept).
 */
#include "dns/dns_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

#define DNS_MAX_SERVERS 16	/* as many as the config takes */
#define DNS_EDNS_UDP_SIZE 1232	/* the DNS flag day 2020 value */

struct dns_server {
	struct sockaddr_storage sa;
	socklen_t salen;
};

struct dns_resolver {
	struct dns_options opts;
	struct dns_server servers[DNS_MAX_SERVERS];
	size_t nservers;
	dns_transport_fn transport;
	void *tctx;
	dns_clock_fn clock;
	void *cctx;
	struct dns_cache *cache;	/* NULL when cache_entries == 0 */
	int trusted;			/* the AD bit is believed */
	uint64_t queries;		/* atomic */
};

void
dns_options_default(struct dns_options *o)
{
	memset(o, 0, sizeof *o);
	o->try_timeout_ms = 2000;
	o->tries = 2;
	o->total_timeout_ms = 20000;
	o->cache_entries = 10000;
	o->max_ttl = 3600;
	o->max_negative_ttl = 300;
	o->temp_ttl = 5;
	o->max_addrs = 5;
	o->use_ipv6 = 1;
	o->prefer_ipv6 = 0;
	o->resolv_conf = NULL;
}

static int
options_check(const struct dns_options *o, char *err, size_t errsize)
{
	const char *why = NULL;

	if (o->try_timeout_ms < 1 || o->try_timeout_ms > 60000)
		why = "try_timeout_ms must be 1..60000";
	else if (o->tries < 1 || o->tries > 10)
		why = "tries must be 1..10";
	else if (o->total_timeout_ms < 1 || o->total_timeout_ms > 600000)
		why = "total_timeout_ms must be 1..600000";
	else if (o->max_addrs < 1 || o->max_addrs > DNS_MAX_TARGETS)
		why = "max_addrs out of range";
	else if (o->cache_entries > 10000000)
		why = "cache_entries too large";
	if (why != NULL) {
		snprintf(err, errsize, "dns: %s", why);
		return -1;
	}
	return 0;
}

static int64_t
default_clock(void *ctx)
{
	(void)ctx;
	return time_mono_ms();
}

static struct dns_resolver *
resolver_alloc(const struct dns_options *opts)
{
	struct dns_resolver *r = xcalloc(1, sizeof *r);

	if (opts != NULL)
		r->opts = *opts;
	else
		dns_options_default(&r->opts);
	r->opts.resolv_conf = NULL;	/* not kept: the caller owns the string */
	r->clock = default_clock;
	if (r->opts.cache_entries > 0)
		r->cache = dns_cache_new(r->opts.cache_entries);
	return r;
}

/* Parses a numeric server address ("192.0.2.1", "2001:db8::1", "[::1]"). */
static int
server_parse(const struct dns_server_addr *in, struct dns_server *out)
{
	char buf[64];
	size_t len = strnlen(in->addr, sizeof in->addr);
	uint16_t port = in->port ? in->port : 53;

	if (len == 0 || len >= sizeof in->addr)
		return -1;
	if (len >= 2 && in->addr[0] == '[' && in->addr[len - 1] == ']') {
		memcpy(buf, in->addr + 1, len - 2);
		buf[len - 2] = '\0';
	} else {
		memcpy(buf, in->addr, len + 1);
	}
	memset(out, 0, sizeof *out);
	if (strchr(buf, ':') == NULL) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&out->sa;
		if (inet_pton(AF_INET, buf, &s4->sin_addr) != 1)
			return -1;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		out->salen = sizeof *s4;
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->sa;
		if (inet_pton(AF_INET6, buf, &s6->sin6_addr) != 1)
			return -1;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		out->salen = sizeof *s6;
	}
	return 0;
}

/* Reads the nameservers of a resolv.conf once, with ldns's parser. */
static int
servers_from_resolv_conf(struct dns_resolver *r, const char *path, char *err,
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
	for (size_t i = 0; i < n && r->nservers < DNS_MAX_SERVERS; i++) {
		size_t salen = 0;
		struct sockaddr_storage *ss =
		    ldns_rdf2native_sockaddr_storage(ns[i], 53, &salen);
		if (ss == NULL)
			continue;
		if (salen > 0 && salen <= sizeof r->servers[0].sa) {
			memcpy(&r->servers[r->nservers].sa, ss, salen);
			r->servers[r->nservers++].salen = (socklen_t)salen;
		}
		free(ss);
	}
	ldns_resolver_deep_free(lr);
	if (r->nservers == 0) {
		snprintf(err, errsize, "dns: no nameserver in %s", path);
		return -1;
	}
	return 0;
}

/* ---- the network transport ---- */

static int
poll_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - time_mono_ms();
		struct pollfd p = { .fd = fd, .events = events };
		int n;
		if (left <= 0)
			return -1;
		n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (n > 0)
			return (p.revents & (events | POLLHUP | POLLERR)) ? 0 : -1;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

static uint16_t
wire_id(const uint8_t *w)
{
	return (uint16_t)((w[0] << 8) | w[1]);
}

static int
io_full(int fd, uint8_t *p, size_t n, int writing, int64_t deadline)
{
	while (n > 0) {
		ssize_t k;
		if (poll_fd(fd, writing ? POLLOUT : POLLIN, deadline) != 0)
			return -1;
		k = writing ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* One TCP exchange (RFC 7766 framing): 0 with *ans_r, or -1. */
static int
tcp_exchange(const struct dns_server *s, const uint8_t *q, size_t qlen,
    int64_t deadline, uint8_t **ans_r, size_t *alen_r)
{
	int fd = socket(s->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	uint8_t *msg = NULL, lenb[2];
	int soerr = 0;
	socklen_t sl = sizeof soerr;
	size_t alen;

	if (fd < 0 || qlen > 65535)
		goto fail;
	if (connect(fd, (const struct sockaddr *)&s->sa, s->salen) != 0) {
		if (errno != EINPROGRESS || poll_fd(fd, POLLOUT, deadline) != 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 ||
		    soerr != 0)
			goto fail;
	}
	msg = xmalloc(qlen + 2);
	msg[0] = (uint8_t)(qlen >> 8);
	msg[1] = (uint8_t)qlen;
	memcpy(msg + 2, q, qlen);
	if (io_full(fd, msg, qlen + 2, 1, deadline) != 0 ||
	    io_full(fd, lenb, 2, 0, deadline) != 0)
		goto fail;
	free(msg);
	msg = NULL;
	alen = ((size_t)lenb[0] << 8) | lenb[1];
	if (alen < 12)
		goto fail;
	msg = xmalloc(alen);
	if (io_full(fd, msg, alen, 0, deadline) != 0 ||
	    wire_id(msg) != wire_id(q) || !(msg[2] & 0x80))
		goto fail;
	close(fd);
	*ans_r = msg;
	*alen_r = alen;
	return 0;
fail:
	free(msg);
	if (fd >= 0)
		close(fd);
	return -1;
}

/* A query sent over UDP and not answered yet. */
struct dns_inflight {
	int fd;
	uint16_t id;
	const struct dns_server *server;
	uint8_t *q;		/* the query, for a retry over TCP */
	size_t qlen;
};

/* Sends a new query for pkt to s over a connected UDP socket. */
static int
inflight_send(struct dns_resolver *r, ldns_pkt *pkt, const struct dns_server *s,
    struct dns_inflight *f)
{
	uint16_t id = (uint16_t)dns_random_seed();

	memset(f, 0, sizeof *f);
	f->fd = -1;
	ldns_pkt_set_id(pkt, id);
	if (ldns_pkt2wire(&f->q, pkt, &f->qlen) != LDNS_STATUS_OK)
		return -1;
	f->id = id;
	f->server = s;
	__atomic_add_fetch(&r->queries, 1, __ATOMIC_RELAXED);
	f->fd = socket(s->sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->fd < 0 ||
	    connect(f->fd, (const struct sockaddr *)&s->sa, s->salen) != 0 ||
	    send(f->fd, f->q, f->qlen, MSG_NOSIGNAL) != (ssize_t)f->qlen) {
		if (f->fd >= 0)
			close(f->fd);
		f->fd = -1;
		return -1;
	}
	return 0;
}

static void
inflight_close(struct dns_inflight *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	free(f->q);
	f->q = NULL;
}

/*
 * Asks the servers in turn: a new query every try_timeout_ms, to the next
 * server, `tries` rounds; every query sent stays open, so a late answer to
 * an earlier one is taken as well as an answer to the latest (a server
 * that needs longer than one try to answer is still used). Ends with the
 * first answer that is NOERROR or NXDOMAIN, when the last try's time is
 * over, or at the deadline. A server that refuses (ICMP) or answers with
 * another rcode makes the next query go out at once.
 */
static int
net_transport(void *ctx, const char *qname, uint16_t qtype, int64_t deadline,
    uint8_t **wire_r, size_t *len_r)
{
	struct dns_resolver *r = ctx;
	struct dns_inflight fl[DNS_MAX_SERVERS * 10];
	struct pollfd pfd[DNS_MAX_SERVERS * 10];
	ldns_rdf *d = ldns_dname_new_frm_str(qname);
	ldns_pkt *pkt;
	uint8_t *last_bad = NULL, *buf;
	size_t last_bad_len = 0, nfl = 0, sent = 0;
	size_t total = (size_t)r->opts.tries * r->nservers;
	int64_t next_send = time_mono_ms();
	int rc = -1;

	if (d == NULL)
		return -1;
	pkt = ldns_pkt_query_new(d, (ldns_rr_type)qtype, LDNS_RR_CLASS_IN, LDNS_RD);
	if (pkt == NULL)
		return -1;
	ldns_pkt_set_edns_udp_size(pkt, DNS_EDNS_UDP_SIZE);
	ldns_pkt_set_edns_do(pkt, true);
	ldns_pkt_set_ad(pkt, true);
	if (total > sizeof fl / sizeof fl[0])
		total = sizeof fl / sizeof fl[0];
	buf = xmalloc(DNS_MAX_WIRE);
	while (rc != 0) {
		int64_t now = time_mono_ms(), until;
		size_t np = 0;
		int n;

		if (now >= deadline)
			break;
		if (sent < total && now >= next_send) {
			const struct dns_server *s = &r->servers[sent % r->nservers];
			sent++;
			next_send = now + r->opts.try_timeout_ms;
			if (inflight_send(r, pkt, s, &fl[nfl]) == 0)
				nfl++;
			else
				next_send = now;	/* could not ask it: next */
			continue;
		}
		if (sent == total && now >= next_send)
			break;		/* the last try's time is over */
		until = next_send < deadline ? next_send : deadline;
		for (size_t i = 0; i < nfl; i++)
			if (fl[i].fd >= 0)
				pfd[np++] = (struct pollfd){ .fd = fl[i].fd, .events = POLLIN };
		if (np == 0) {
			/* Nothing in flight: wait for the next try (or go on at
			 * once when every server refused). */
			if (sent < total)
				next_send = now;
			else
				break;
			continue;
		}
		n = poll(pfd, np, until - now > 60000 ? 60000 : (int)(until - now));
		if (n < 0 && errno != EINTR)
			break;
		for (size_t i = 0; i < nfl && n > 0 && rc != 0; i++) {
			struct dns_inflight *f = &fl[i];
			uint8_t *ans = NULL;
			size_t alen = 0;
			ssize_t got;
			size_t k;

			if (f->fd < 0)
				continue;
			for (k = 0; k < np && pfd[k].fd != f->fd; k++)
				;
			if (k == np || pfd[k].revents == 0)
				continue;
			got = recv(f->fd, buf, DNS_MAX_WIRE, 0);
			if (got < 0) {
				if (errno == EAGAIN || errno == EINTR)
					continue;
				inflight_close(f);	/* ECONNREFUSED: nobody there */
				if (sent < total)
					next_send = time_mono_ms();
				continue;
			}
			/* A reply with another ID is not ours: keep waiting. */
			if (got < 12 || wire_id(buf) != f->id || !(buf[2] & 0x80))
				continue;
			if (buf[2] & 0x02) {	/* TC: ask again over TCP */
				int64_t end = time_mono_ms() + r->opts.try_timeout_ms;
				if (tcp_exchange(f->server, f->q, f->qlen,
				    end < deadline ? end : deadline, &ans, &alen) != 0) {
					inflight_close(f);
					continue;
				}
			} else {
				ans = xmalloc((size_t)got);
				memcpy(ans, buf, (size_t)got);
				alen = (size_t)got;
			}
			inflight_close(f);
			/* NOERROR and NXDOMAIN are answers; other rcodes: next
			 * server, at once. */
			if ((ans[3] & 0x0f) == 0 || (ans[3] & 0x0f) == 3) {
				*wire_r = ans;
				*len_r = alen;
				rc = 0;
			} else {
				free(last_bad);
				last_bad = ans;
				last_bad_len = alen;
				if (sent < total)
					next_send = time_mono_ms();
			}
		}
	}
	for (size_t i = 0; i < nfl; i++)
		inflight_close(&fl[i]);
	free(buf);
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

struct dns_resolver *
dns_resolver_new(const struct dns_server_addr *servers, size_t n, char *err,
    size_t errsize)
{
	return dns_resolver_new_opts(servers, n, NULL, err, errsize);
}

struct dns_resolver *
dns_resolver_new_opts(const struct dns_server_addr *servers, size_t n,
    const struct dns_options *opts, char *err, size_t errsize)
{
	struct dns_options def;
	struct dns_resolver *r;
	char dummy[8];

	if (err == NULL || errsize == 0) {
		err = dummy;
		errsize = sizeof dummy;
	}
	err[0] = '\0';
	if (opts == NULL) {
		dns_options_default(&def);
		opts = &def;
	}
	if (options_check(opts, err, errsize) != 0)
		return NULL;
	if (n > DNS_MAX_SERVERS) {
		snprintf(err, errsize, "dns: at most %d servers", DNS_MAX_SERVERS);
		return NULL;
	}
	r = resolver_alloc(opts);
	r->transport = net_transport;
	r->tctx = r;
	for (size_t i = 0; i < n; i++) {
		if (server_parse(&servers[i], &r->servers[r->nservers]) != 0) {
			snprintf(err, errsize, "dns: bad server address \"%.64s\"",
			    servers[i].addr);
			dns_resolver_free(&r);
			return NULL;
		}
		r->nservers++;
	}
	if (n == 0 && servers_from_resolv_conf(r, opts->resolv_conf, err,
	    errsize) != 0) {
		dns_resolver_free(&r);
		return NULL;
	}
	r->trusted = 1;
	for (size_t i = 0; i < r->nservers; i++)
		if (!sockaddr_is_loopback(&r->servers[i].sa))
			r->trusted = 0;
	return r;
}

struct dns_resolver *
dns_resolver_new_transport(dns_transport_fn transport, void *tctx,
    dns_clock_fn clock, void *cctx, const struct dns_options *opts)
{
	struct dns_resolver *r = resolver_alloc(opts);

	r->transport = transport;
	r->tctx = tctx;
	if (clock != NULL) {
		r->clock = clock;
		r->cctx = cctx;
	}
	return r;
}

void
dns_resolver_free(struct dns_resolver **rp)
{
	struct dns_resolver *r = *rp;

	if (r == NULL)
		return;
	dns_cache_free(&r->cache);
	free(r);
	*rp = NULL;
}

void
dns_resolver_set_trusted(struct dns_resolver *r, int trusted)
{
	r->trusted = trusted != 0;
}

int
dns_sec_trusted(const struct dns_resolver *r)
{
	return r->trusted;
}

const struct dns_options *
dns_resolver_options(const struct dns_resolver *r)
{
	return &r->opts;
}

int64_t
dns_resolver_now(struct dns_resolver *r)
{
	return r->clock(r->cctx);
}

uint64_t
dns_resolver_query_count(struct dns_resolver *r)
{
	return __atomic_load_n(&r->queries, __ATOMIC_RELAXED);
}

/* ---- lookups ---- */

static uint32_t
cache_ttl(const struct dns_resolver *r, const struct dns_rrset *rs)
{
	uint32_t cap;

	switch (rs->kind) {
	case DNS_K_DATA:
	case DNS_K_CNAME:
		cap = r->opts.max_ttl;
		break;
	case DNS_K_NODATA:
	case DNS_K_NXDOMAIN:
		cap = r->opts.max_negative_ttl;
		break;
	default:
		return r->opts.temp_ttl;
	}
	return rs->ttl < cap ? rs->ttl : cap;
}

/* One question, from the cache or the transport; a new rrset. */
static struct dns_rrset *
lookup_one(struct dns_resolver *r, const char *name, uint16_t type,
    int64_t deadline)
{
	struct dns_rrset *rs = NULL;
	uint8_t *wire = NULL;
	size_t len = 0;
	int64_t now = r->clock(r->cctx);

	if (r->cache != NULL &&
	    (rs = dns_cache_get(r->cache, name, type, now)) != NULL)
		return rs;
	if (now >= deadline) {
		rs = dns_rrset_new(DNS_K_TEMP, type);
		snprintf(rs->detail, sizeof rs->detail, "lookup time exhausted");
		return rs;	/* our own bound, not the domain's fault: not cached */
	}
	if (r->transport != net_transport)
		__atomic_add_fetch(&r->queries, 1, __ATOMIC_RELAXED);
	if (r->transport(r->tctx, name, type, deadline, &wire, &len) != 0) {
		rs = dns_rrset_new(DNS_K_TEMP, type);
		snprintf(rs->detail, sizeof rs->detail,
		    "no answer from the DNS servers");
		if (r->clock(r->cctx) >= deadline)
			return rs;	/* cut short by our own bound: not cached */
	} else {
		rs = dns_answer_parse(wire, len, name, type);
		free(wire);
	}
	log_debug("dns: %s type %u: kind %d ttl %u ad %d%s%s", name, type,
	    rs->kind, rs->ttl, rs->ad, rs->detail[0] ? ": " : "", rs->detail);
	if (r->cache != NULL)
		dns_cache_put(r->cache, name, type, rs, cache_ttl(r, rs),
		    r->clock(r->cctx));
	return rs;
}

struct dns_rrset *
dns_resolver_lookup(struct dns_resolver *r, const char *name, uint16_t type,
    int64_t deadline_ms)
{
	char cur[DNS_NAME_MAX];
	unsigned hops = 0;
	int ad = 1;

	if (str_copy(cur, name, sizeof cur) != 0) {
		struct dns_rrset *rs = dns_rrset_new(DNS_K_TEMP, type);
		snprintf(rs->detail, sizeof rs->detail, "name too long");
		return rs;
	}
	for (;;) {
		struct dns_rrset *rs = lookup_one(r, cur, type, deadline_ms);
		hops += rs->cnames;
		ad = ad && rs->ad;
		if (rs->kind != DNS_K_CNAME) {
			/* Secure only when every answer of the chain was. */
			rs->cnames = hops;
			rs->ad = ad && r->trusted && rs->kind != DNS_K_TEMP;
			return rs;
		}
		if (hops > DNS_MAX_CNAME_HOPS) {
			dns_rrset_free(&rs);
			rs = dns_rrset_new(DNS_K_TEMP, type);
			snprintf(rs->detail, sizeof rs->detail,
			    "CNAME chain too long");
			return rs;
		}
		str_copy(cur, rs->target, sizeof cur);
		dns_rrset_free(&rs);
	}
}
