/*
 * fuzz_dns_txt: hostile DNS answers to a TXT question through the answer
 * parser of dns/ (dns_answer_parse with the TXT decoding of dns/txt.c) and
 * the rrset copy the cache makes. Every record kept must carry its text
 * with the stated length and a NUL after it, and a copy must be equal.
 * Seeds: tests/fuzz/corpus/dns_txt/ (TXT answers, good and broken).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dns/dns.h"
#include "dns/dns_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_rrset *rs = dns_answer_parse(data, size, "example.test",
	    DNS_T_TXT);
	struct dns_rrset *copy = dns_rrset_copy(rs);

	if (rs->n > DNS_MAX_RRSET || copy->n != rs->n)
		__builtin_trap();
	for (size_t i = 0; i < rs->n; i++) {
		const struct dns_rr *a = &rs->rrs[i], *b = &copy->rrs[i];
		if (a->text == NULL || a->textlen > DNS_MAX_WIRE ||
		    a->text[a->textlen] != '\0' || b->textlen != a->textlen ||
		    memcmp(a->text, b->text, a->textlen + 1) != 0)
			__builtin_trap();
	}
	dns_rrset_free(&copy);
	dns_rrset_free(&rs);
	return 0;
}
