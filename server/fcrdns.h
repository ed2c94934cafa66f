/*
 * fcrdns: the forward-confirmed reverse DNS name of a client: the PTR
 * name of its address whose own addresses (A or AAAA) include that
 * address again. Anything else (no PTR, a name that does not lead back, a
 * lookup that fails) gives no name.
 *
 * The lookups block for up to the resolver's timeouts: call this from an
 * off-loop job (offloop.h), never on an event loop.
 * Threads: any thread; the resolver may be shared (dns.h).
 */
#ifndef SERVER_FCRDNS_H
#define SERVER_FCRDNS_H

#include <stddef.h>
#include <sys/socket.h>

#include "dns/dns.h"

/* Fills name (namesize >= DNS_NAME_MAX) with the confirmed name of sa
 * (AF_INET, AF_INET6, v4-mapped counts as IPv4) and returns 1, or leaves
 * it "" and returns 0. */
int fcrdns_lookup(struct dns_resolver *r, const struct sockaddr *sa,
    char *name, size_t namesize);

#endif
