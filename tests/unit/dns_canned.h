/*
 * dns_canned: canned DNS answers for unit tests of dns/'s DNSSEC-aware
 * path and its users: packets built with ldns (with or without the AD
 * bit), and a transport that answers from a table of (name, type) rows.
 * Header-only, for tests; everything aborts on bad test data.
 */
#ifndef TESTS_UNIT_DNS_CANNED_H
#define TESTS_UNIT_DNS_CANNED_H

#include <ldns/ldns.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns/dns_internal.h"

#define F_AD 1
#define F_TC 2

static inline uint8_t *
build_pkt(const char *qname, uint16_t qtype, int rcode, int flags,
    const char *const *ans, size_t *len_r)
{
	ldns_pkt *p = ldns_pkt_new();
	ldns_rr *rr;
	uint8_t *w = NULL;
	char qs[600];
	char *ts = ldns_rr_type2str((ldns_rr_type)qtype);

	ldns_pkt_set_id(p, 7);
	ldns_pkt_set_qr(p, true);
	ldns_pkt_set_ad(p, (flags & F_AD) != 0);
	ldns_pkt_set_tc(p, (flags & F_TC) != 0);
	ldns_pkt_set_rcode(p, (uint8_t)rcode);
	snprintf(qs, sizeof qs, "%s. IN %s", qname, ts);
	free(ts);
	if (ldns_rr_new_question_frm_str(&rr, qs, NULL, NULL) != LDNS_STATUS_OK)
		abort();
	ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, rr);
	for (size_t i = 0; ans && ans[i]; i++) {
		if (ldns_rr_new_frm_str(&rr, ans[i], 300, NULL, NULL) != LDNS_STATUS_OK) {
			fprintf(stderr, "bad test RR: %s\n", ans[i]);
			abort();
		}
		ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
	}
	if (ldns_pkt2wire(&w, p, len_r) != LDNS_STATUS_OK)
		abort();
	ldns_pkt_free(p);
	return w;
}

#define L(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NO_ANSWER (-1)

struct canned {
	const char *name;
	uint16_t type;		/* 0: any */
	int rcode;		/* or NO_ANSWER */
	int flags;
	const char *const *ans;
};

struct canned_world {
	const struct canned *tab;
	size_t n;
	unsigned queries;
};

static inline int
canned_transport(void *ctx, const char *qname, uint16_t qtype, int64_t deadline,
    uint8_t **wire_r, size_t *len_r)
{
	struct canned_world *w = ctx;

	(void)deadline;
	w->queries++;
	for (size_t i = 0; i < w->n; i++) {
		const struct canned *c = &w->tab[i];
		if (strcasecmp(c->name, qname) == 0 && (c->type == 0 || c->type == qtype)) {
			if (c->rcode == NO_ANSWER)
				return -1;
			*wire_r = build_pkt(qname, qtype, c->rcode, c->flags, c->ans, len_r);
			return 0;
		}
	}
	*wire_r = build_pkt(qname, qtype, LDNS_RCODE_NXDOMAIN, F_AD, NULL, len_r);
	return 0;
}

#endif
