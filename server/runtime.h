/*
 * runtime: one consistent snapshot of what the config decides: the parsed
 * config, the users and aliases, the TLS credentials, the resolver of
 * the sessions, the mail authentication resolver and signing keys,
 * the filter daemons they ask (Dovecot's auth service, policy services,
 * with their idle connections), the outbound tls_policy map and the
 * addresses this server answers on. SIGHUP builds a
 * new snapshot and swaps it in; sessions and threads keep the snapshot they
 * started with (by reference) until they finish.
 *
 * Errors: runtime_load prints `FILE:LINE: message` lines to errs and
 * returns NULL when any part fails; the caller keeps the old snapshot.
 * Threads: runtime_current and runtime_swap may be called from any
 * thread; a snapshot is immutable.
 */
#ifndef SERVER_RUNTIME_H
#define SERVER_RUNTIME_H

#include <stdio.h>

#include "auth/auth_dns.h"
#include "auth/dkim_keyring.h"
#include "dns/dns.h"
#include "relay/tls_policy_map.h"
#include "server/config.h"
#include "server/smtp_auth_dovecot.h"
#include "filter/milter.h"
#include "server/smtp_policy.h"
#include "server/dnsbl.h"
#include "server/tls.h"
#include "storage/userdb.h"

struct runtime {
	struct config *cfg;
	struct userdb *udb;
	struct tls_creds *tls;	/* NULL when no certificate is configured */
	struct dns_resolver *dns;	/* the sessions' lookups (client names),
					 * bounded by client_dns_timeout; NULL
					 * when that is 0 */
	struct tls_policy_map *tls_map;	/* tls_policy; NULL when unset */
	struct auth_dovecot *dovecot;	/* auth_service = dovecot:...; NULL
					 * when users_file checks passwords */
	struct smtp_policy_services *policy;	/* policy_services; NULL: none */
	struct milter_spec *milters;	/* milters, in order (the defaults of
					 * the milter_* keys filled in) */
	size_t nmilters;
	struct dns_resolver *auth_resolver;	/* SPF, DKIM and DMARC lookups
					 * (dns_timeout, dns_attempts); NULL
					 * without auth_checks */
	struct auth_dns *auth_dns;	/* auth/'s view of it */
	struct dkim_keyring *dkim_keys;	/* dkim_sign; NULL: none */
	struct dnsbl *dnsbl;		/* the `dnsbl` lists, or NULL */
	struct dns_resolver *dnsbl_dns;	/* their lookups: dns_timeout per
					 * query, dns_attempts rounds */
	struct ip_addr *own_addrs;	/* where this server listens: every
					 * listen address, and for a wildcard
					 * listener (0.0.0.0, ::) the addresses
					 * of that family of the host's
					 * interfaces when loaded; an address
					 * literal of one is a local domain */
	size_t nown_addrs;
	int refs;		/* atomic; runtime_ref / runtime_unref */
};

/*
 * Loads config file path and everything it names (a tls_policy map and
 * the trust anchors of tls_ca_file and mta_sts_ca_file are checked: their
 * problems are `FILE:LINE: message` too). prev (NULL at start) is
 * the snapshot in use: when the TLS files are the same as its own and can
 * no longer be opened for lack of permission (a root-only key, read at
 * start before the privileges were dropped), its credentials are kept,
 * with a warning in the log, and the rest of the config is reloaded.
 */
struct runtime *runtime_load(const char *path, FILE *errs,
    const struct runtime *prev);

struct runtime *runtime_ref(struct runtime *rt);
void runtime_unref(struct runtime **rtp);

/* A new reference to the current snapshot (NULL before the first swap). */
struct runtime *runtime_current(void);

/* Makes rt current (takes over the caller's reference) and drops the
 * process's reference to the previous one. */
void runtime_swap(struct runtime *rt);

#endif
