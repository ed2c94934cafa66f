/*
 * mailctl_tls: the outbound TLS commands of mailctl (server/mailctl.c):
 *
 *   mailctl tls DOMAIN
 *       what would protect mail to DOMAIN now: its MX set (with
 *       addresses), the DNSSEC state of the MX RRset and of each host's
 *       addresses, the TLSA records, the cached MTA-STS policy, and the
 *       resulting level of each host (relay/tls_policy.h). It asks the
 *       configured dns_server; MTA-STS comes from the cache alone (no
 *       HTTPS fetch).
 *   mailctl tls-report [--json] DOMAIN [--date YYYY-MM-DD]
 *       the day's TLS report aggregate of DOMAIN (RFC 8460), as its JSON
 *       report or as text; the day defaults to today (UTC).
 *   mailctl tls-report --send DOMAIN [--date YYYY-MM-DD]
 *       asks the running daemon (server/control.h) to mail that day's
 *       report to the domain's _smtp._tls rua addresses now, unless it
 *       was sent before (server/tls_rpt_daemon.h); the day defaults to
 *       yesterday (UTC), the last whole day. Prints the daemon's line;
 *       exit 0 when a report was queued, 1 otherwise.
 *
 * The other two open the daemon's TLS store (<queue_dir>/tls/) read-only, so they
 * work whether the daemon runs or not, and change nothing.
 *
 * Errors: 0 done, 1 a runtime failure (a lookup that failed, no TLS
 * store), 2 bad usage; messages go to stderr.
 * Threads: the main thread of mailctl.
 */
#ifndef SERVER_MAILCTL_TLS_H
#define SERVER_MAILCTL_TLS_H

#include <stdio.h>

#include "server/config.h"

int mailctl_tls(const struct config *cfg, const char *domain, FILE *out);

int mailctl_tls_report(const struct config *cfg, const char *domain,
    const char *date, int json, FILE *out);

int mailctl_tls_report_send(const struct config *cfg, const char *domain,
    const char *date, FILE *out);

#endif
