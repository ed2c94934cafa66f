/*
 * fuzz_dns_sec_answer: hostile DNS answers, with their AD bit, through
 * the parser of dns/ (dns_answer_parse for the types DANE and MTA-STS
 * ask) and every lookup built on it (TLSA, TXT, MX view, host view) on a
 * trusted resolver whose transport answers each question with the input.
 * Nothing touches the network. Checks that what comes out is bounded and
 * that no failure is ever "secure".
 * Seeds: tests/fuzz/corpus/dns_sec_answer/ (answers made with ldns).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "dns/dns_internal.h"
#include "lib/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct input {
	const uint8_t *data;
	size_t size;
};

static int
input_transport(void *ctx, const char *qname, uint16_t qtype, int64_t deadline,
    uint8_t **wire_r, size_t *len_r)
{
	const struct input *in = ctx;

	(void)qname;
	(void)qtype;
	(void)deadline;
	*wire_r = xmalloc(in->size ? in->size : 1);
	memcpy(*wire_r, in->data, in->size);
	*len_r = in->size;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint16_t types[] = { DNS_T_TLSA, DNS_T_TXT, DNS_T_MX, DNS_T_A,
	    DNS_T_CNAME };
	struct input in = { data, size };
	struct dns_resolver *s;
	struct dns_tlsa_result *tr;
	struct dns_records *xr;
	struct dns_sec_mx mx;
	struct dns_sec_host h;

	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		struct dns_rrset *a = dns_answer_parse(data, size,
		    "_25._tcp.example.test", types[i]);
		if (a->n > DNS_MAX_RRSET || (a->kind != DNS_K_DATA && a->n != 0))
			__builtin_trap();
		if (a->kind == DNS_K_TEMP && a->ad)
			__builtin_trap();
		for (size_t j = 0; j < a->n; j++)
			if (types[i] == DNS_T_TLSA && (a->rrs[j].raw == NULL ||
			    a->rrs[j].rawlen < 3))
				__builtin_trap();
		dns_rrset_free(&a);
	}
	s = dns_resolver_new_transport(input_transport, &in, NULL, NULL, NULL);
	dns_resolver_set_trusted(s, 1);
	dns_tlsa_lookup(s, "example.test", 25, &tr);
	if (tr->n > DNS_MAX_TLSA || (tr->kind != DNS_SEC_DATA && tr->n != 0))
		__builtin_trap();
	if (tr->kind == DNS_SEC_FAIL && tr->state != DNS_SEC_BOGUS)
		__builtin_trap();
	dns_tlsa_result_free(&tr);
	dns_txt_lookup(s, "_mta-sts.example.test", &xr);
	if (xr->n > DNS_MAX_RRSET || (xr->status == DNS_REC_TEMP && xr->sec != DNS_SEC_BOGUS))
		__builtin_trap();
	dns_records_free(&xr);
	dns_sec_mx_lookup(s, "example.test", &mx);
	if (mx.nnames > DNS_MAX_MX_HOSTS || (mx.kind == DNS_SEC_FAIL &&
	    mx.state != DNS_SEC_BOGUS))
		__builtin_trap();
	dns_sec_host_lookup(s, "example.test", &h);
	dns_resolver_free(&s);
	return 0;
}
