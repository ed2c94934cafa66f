/*
 * policy: builds the delivery stage's view of a runtime snapshot (local
 * domains, users and aliases, retry settings, routes, relayhost), with its
 * own DNS resolver and relay client, so a reload swaps all of it at once.
 *
 * Threads: main thread.
 */
#ifndef SERVER_POLICY_H
#define SERVER_POLICY_H

#include "queue/delivery.h"
#include "server/runtime.h"

/* A new policy holding a reference to rt (released with the policy).
 * NULL (logged) when the resolver or relay client cannot be set up. */
struct delivery_policy *policy_from_runtime(struct runtime *rt);

#endif
