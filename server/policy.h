/*
 * policy: builds the delivery stage's view of a runtime snapshot (local
 * domains, users and aliases, retry settings, routes, relayhost), with its
 * own DNS resolver, outbound TLS policy context (tls_outbound, the
 * tls_policy map, trust anchors, MTA-STS; it warns when DANE is asked for
 * but the resolver is not on loopback) and relay client, so a reload
 * swaps all of it at once.
 *
 * Threads: main thread.
 */
#ifndef SERVER_POLICY_H
#define SERVER_POLICY_H

#include "queue/delivery.h"
#include "relay/tls_store.h"
#include "server/runtime.h"

/* A new policy holding a reference to rt (released with the policy),
 * with tls (the process's TLS store: MTA-STS cache, report counters;
 * borrowed, may be NULL) under its TLS policy. NULL (logged) when the
 * resolver, TLS policy or relay client cannot be set up. */
struct delivery_policy *policy_from_runtime(struct runtime *rt,
    struct tls_store *tls);

/* The delivery resolver of cfg (dns_server, dns_timeout, dns_attempts;
 * a bound for a whole lookup of several rounds). NULL with err filled. */
struct dns_resolver *policy_resolver(const struct config *cfg, char *err,
    size_t errsize);

/* The outbound TLS policy context of cfg with map (may be NULL), over dns
 * and store (both borrowed; store may be NULL); sts_no_fetch: MTA-STS from
 * the cache alone. Warns (log) when DANE is asked for and dns is not
 * trusted. NULL with err filled (trust anchors that cannot be read). */
struct tls_policy_ctx *policy_tls(const struct config *cfg,
    const struct tls_policy_map *map, struct dns_resolver *dns,
    struct tls_store *store, int sts_no_fetch, char *err, size_t errsize);

#endif
