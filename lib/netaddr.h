/*
 * netaddr: IPv4/IPv6 networks (CIDR), socket address text, and the
 * address literals of mail addresses (RFC 5321 4.1.3).
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

/* One IP address: AF_INET (the first 4 bytes) or AF_INET6. A v4-mapped
 * IPv6 address is always held as AF_INET, so that equal addresses have
 * equal records. */
struct ip_addr {
	int family;
	uint8_t addr[16];
};

/* The address of sa (AF_INET, AF_INET6) into out. Returns 0, or -1 for
 * another family. */
int ip_addr_from_sockaddr(const struct sockaddr *sa, struct ip_addr *out);

/* Is a one of the n addresses of set (same family and bytes)? 1 or 0. */
int ip_addr_in(const struct ip_addr *a, const struct ip_addr *set, size_t n);

/* Parses the domain of a mail address when it is an address literal,
 * "[192.0.2.1]" or "[IPv6:2001:db8::1]" (the tag in any case), into out.
 * Returns 0, or -1 when domain is a name, a general literal
 * ("[tag:content]"), malformed, or NULL. */
int ip_literal_parse(const char *domain, struct ip_addr *out);

/* Is domain an address literal of one of the n addresses of set? 1 or 0
 * (0 for a name). */
int ip_literal_in(const char *domain, const struct ip_addr *set, size_t n);

#endif
