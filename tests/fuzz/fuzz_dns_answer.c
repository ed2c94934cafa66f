/*
 * fuzz_dns_answer: hostile DNS answers through the parser and the MX
 * selection of dns/ (dns_answer_parse, dns_parse_mx_answer), for the
 * question "example.test" of every type the server asks (MX, A, AAAA,
 * PTR), and the input as a wire-format name. Nothing touches the network.
 * Seeds: tests/fuzz/corpus/dns_answer/ (canned answers, good and broken).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dns/dns.h"
#include "dns/dns_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_rrset(const struct dns_rrset *rs)
{
	char norm[DNS_NAME_MAX];

	/* What comes out is bounded and every name is a valid host name. */
	if (rs->n > DNS_MAX_RRSET)
		__builtin_trap();
	for (size_t i = 0; i < rs->n; i++)
		if (rs->rrs[i].name != NULL && rs->rrs[i].name[0] != '\0' &&
		    dns_name_normalize(rs->rrs[i].name, norm, sizeof norm) != 0)
			__builtin_trap();
	if (rs->kind == DNS_K_CNAME &&
	    dns_name_normalize(rs->target, norm, sizeof norm) != 0)
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint16_t types[] = { DNS_T_MX, DNS_T_A, DNS_T_AAAA, DNS_T_PTR };
	struct dns_mx_result *res = NULL;
	char name[DNS_NAME_MAX];
	uint64_t seed = 1;

	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		struct dns_rrset *rs = dns_answer_parse(data, size, "example.test",
		    types[i]);
		struct dns_rrset *copy = dns_rrset_copy(rs);
		check_rrset(rs);
		if (copy->n != rs->n)
			__builtin_trap();
		dns_rrset_free(&copy);
		dns_rrset_free(&rs);
	}
	for (size_t i = 0; i < size && i < 8; i++)
		seed = seed * 131 + data[i];
	dns_parse_mx_answer(data, size, "example.test", seed, &res);
	if (res == NULL || res->nhosts > DNS_MAX_MX_HOSTS)
		__builtin_trap();
	for (size_t i = 0; i < res->nhosts; i++) {
		char norm[DNS_NAME_MAX];
		if (dns_name_normalize(res->hosts[i].name, norm, sizeof norm) != 0)
			__builtin_trap();
		if (i > 0 && res->hosts[i].pref < res->hosts[i - 1].pref)
			__builtin_trap();
	}
	dns_mx_result_free(&res);
	dns_wire_name_to_text(data, size, name, sizeof name);
	return 0;
}
