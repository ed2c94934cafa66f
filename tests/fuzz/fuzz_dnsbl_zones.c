/*
 * Fuzz target for server/dnsbl's `dnsbl` value parser: the input, up to
 * its first NUL, is the value. On success every zone must be a valid,
 * lower-case name within DNSBL_ZONE_MAX with a weight in range, no zone
 * twice, and query names for an IPv4 and an IPv6 client must fit in
 * DNS_NAME_MAX and pass dns_name_normalize; on failure a printable
 * message. Any violation aborts.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "server/dnsbl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dnsbl_zone zones[DNSBL_MAX_ZONES];
	struct sockaddr_in s4 = { .sin_family = AF_INET };
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
	char err[256] = "", qname[DNS_NAME_MAX], norm[DNS_NAME_MAX];
	char *text;
	size_t n;

	if (size > 2 * DNSBL_VALUE_MAX)
		return 0;
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	s4.sin_addr.s_addr = htonl(0x7f000002);
	memset(&s6.sin6_addr, 0xab, sizeof s6.sin6_addr);
	if (dnsbl_zones_parse(text, zones, DNSBL_MAX_ZONES, &n, err, sizeof err) != 0) {
		FUZZ_CHECK(err[0] != '\0');
		for (const char *p = err; *p; p++)
			FUZZ_CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
		free(text);
		return 0;
	}
	FUZZ_CHECK(n <= DNSBL_MAX_ZONES);
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(strlen(zones[i].name) <= DNSBL_ZONE_MAX);
		FUZZ_CHECK(dns_name_normalize(zones[i].name, norm, sizeof norm) == 0);
		FUZZ_CHECK(strcmp(norm, zones[i].name) == 0);
		FUZZ_CHECK(zones[i].weight >= DNSBL_WEIGHT_MIN &&
		    zones[i].weight <= DNSBL_WEIGHT_MAX);
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(zones[i].name, zones[j].name) != 0);
		FUZZ_CHECK(dnsbl_query_name((struct sockaddr *)&s4, zones[i].name, qname,
		    sizeof qname) == 0);
		FUZZ_CHECK(dns_name_normalize(qname, norm, sizeof norm) == 0);
		FUZZ_CHECK(dnsbl_query_name((struct sockaddr *)&s6, zones[i].name, qname,
		    sizeof qname) == 0);
		FUZZ_CHECK(dns_name_normalize(qname, norm, sizeof norm) == 0);
	}
	free(text);
	return 0;
}
