/*
 * Fuzz target for server/metrics_http's address parser: the input, up to
 * its first NUL, is a metrics_listen value. On success the result must be
 * an AF_INET or AF_INET6 address of the matching length that prints back
 * to text which parses to the same address; on failure a message. Any
 * violation aborts.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/metrics_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_storage sa, again;
	socklen_t salen, againlen;
	char text[256], err[128] = "", host[INET6_ADDRSTRLEN], back[128];

	if (size >= sizeof text)
		size = sizeof text - 1;
	memcpy(text, data, size);
	text[size] = '\0';
	if (metrics_http_parse_addr(text, &sa, &salen, err, sizeof err) != 0) {
		FUZZ_CHECK(err[0] != '\0');
		return 0;
	}
	if (sa.ss_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
		FUZZ_CHECK(salen == sizeof *s4);
		FUZZ_CHECK(inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host) != NULL);
		snprintf(back, sizeof back, "%s:%u", host, (unsigned)ntohs(s4->sin_port));
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
		FUZZ_CHECK(sa.ss_family == AF_INET6 && salen == sizeof *s6);
		FUZZ_CHECK(inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host) != NULL);
		snprintf(back, sizeof back, "[%s]:%u", host, (unsigned)ntohs(s6->sin6_port));
	}
	FUZZ_CHECK(metrics_http_parse_addr(back, &again, &againlen, err, sizeof err) == 0);
	FUZZ_CHECK(againlen == salen && memcmp(&again, &sa, salen) == 0);
	return 0;
}
