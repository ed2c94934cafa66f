/*
 * netaddr: IPv4/IPv6 networks (CIDR) and socket address text.
 *
 * Threads: all functions are reentrant.
 */
#ifndef LIB_NETADDR_H
#define LIB_NETADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];	/* network bytes; 4 used for AF_INET */
	int prefix;		/* 0..32 or 0..128 */
};

/* Parses "1.2.3.0/24", "::1/128" or a bare address (full prefix).
 * Returns 0, or -1 on bad syntax or a prefix out of range. */
int cidr_parse(const char *s, struct cidr *out);

/* Is sa (AF_INET, AF_INET6; v4-mapped v6 counts as v4) inside c? */
int cidr_match(const struct cidr *c, const struct sockaddr *sa);

/* The numeric address of sa without port ("127.0.0.1", "::1") into out.
 * Returns out ("?" for unknown families). */
char *sockaddr_ntop(const struct sockaddr *sa, char *out, size_t outsize);

/* The port of sa in host order (0 for unknown families). */
uint16_t sockaddr_port(const struct sockaddr *sa);

#endif
