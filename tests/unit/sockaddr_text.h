/*
 * sockaddr_text: a socket address from numeric text ("192.0.2.1",
 * "2001:db8::1"; ':' means IPv6), port 0, for the unit tests of the
 * per-client tables. Text that does not parse is a bug of the test: it
 * aborts (callable outside a CUnit test, e.g. in a suite's init).
 */
#ifndef TESTS_UNIT_SOCKADDR_TEXT_H
#define TESTS_UNIT_SOCKADDR_TEXT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static inline struct sockaddr *
sockaddr_text(struct sockaddr_storage *ss, const char *text)
{
	memset(ss, 0, sizeof *ss);
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
		s->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, text, &s->sin6_addr) != 1)
			abort();
	} else {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;
		s->sin_family = AF_INET;
		if (inet_pton(AF_INET, text, &s->sin_addr) != 1)
			abort();
	}
	return (struct sockaddr *)ss;
}

#endif
