/*
 * tls_rpt_daemon: the daemon's side of mailed TLS reports (RFC 8460,
 * relay/tls_rpt_send.h): a sender made from the config (a delivery
 * resolver of its own for the _smtp._tls lookups, tls_report_from,
 * hostname) whose queue function puts each report into the queue through
 * the committer, as the daemon's notices are (queue/msg_writer.h:
 * msg_writer_queue, ENV_NOTICE). Nothing is sent while tls_report_send
 * is no.
 *
 * Threads: the main thread (the daily run) and the control thread
 * (mailctl tls-report --send); relay/tls_rpt_send.c serialises them.
 */
#ifndef SERVER_TLS_RPT_DAEMON_H
#define SERVER_TLS_RPT_DAEMON_H

#include <stdint.h>
#include <stdio.h>

#include "queue/committer.h"
#include "relay/tls_store.h"
#include "server/config.h"

/* The daily run: the reports of the two UTC days before now's that are
 * not done yet (so a lookup that failed is tried again a day later). */
void tls_rpt_daemon_daily(const struct config *cfg, struct tls_store *tls,
    struct committer *c, int64_t now);

/* The control request "tls-report send DOMAIN YYYY-MM-DD" (arg): one
 * line to out, "ok: ..." when a report was queued, else "error: ...". */
void tls_rpt_daemon_request(const struct config *cfg, struct tls_store *tls,
    struct committer *c, const char *arg, FILE *out);

#endif
