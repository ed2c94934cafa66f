/* fcrdns: PTR, then the name's addresses, then the comparison. */
#include "server/fcrdns.h"

#include <netinet/in.h>
#include <string.h>

/* The address of sa as (family, bytes), v4-mapped IPv6 as IPv4. */
static int
fcrdns_addr(const struct sockaddr *sa, int *family, unsigned char bytes[16])
{
	static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (sa->sa_family == AF_INET) {
		*family = AF_INET;
		memcpy(bytes, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const unsigned char *a =
		    ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;

		if (memcmp(a, v4mapped, 12) == 0) {
			*family = AF_INET;
			memcpy(bytes, a + 12, 4);
		} else {
			*family = AF_INET6;
			memcpy(bytes, a, 16);
		}
		return 0;
	}
	return -1;
}

int
fcrdns_lookup(struct dns_resolver *r, const struct sockaddr *sa, char *name,
    size_t namesize)
{
	struct dns_addr_result *res = NULL;
	unsigned char bytes[16];
	int family, confirmed = 0;

	name[0] = '\0';
	if (r == NULL || fcrdns_addr(sa, &family, bytes) < 0)
		return 0;
	if (dns_ptr_lookup(r, sa, name, namesize) != DNS_OK || name[0] == '\0') {
		name[0] = '\0';
		return 0;
	}
	if (dns_addr_lookup(r, name, &res) == DNS_OK) {
		for (size_t i = 0; i < res->naddrs && !confirmed; i++)
			confirmed = res->addrs[i].family == family &&
			    memcmp(res->addrs[i].bytes, bytes, family == AF_INET ? 4 : 16) == 0;
	}
	dns_addr_result_free(&res);
	if (!confirmed)
		name[0] = '\0';
	return confirmed;
}
