/*
 * sdnotify: tells systemd how the daemon is doing (sd_notify(3)'s
 * protocol, without libsystemd): one datagram of `KEY=VALUE` lines to the
 * Unix socket named by $NOTIFY_SOCKET (a path, or "@name" for the
 * abstract namespace). contrib/mailserver.service runs the daemon with
 * Type=notify, so systemd counts it started only after READY=1.
 *
 * When $NOTIFY_SOCKET is unset (not started by systemd) every call does
 * nothing and returns 0. A status text is one line of at most
 * SDNOTIFY_STATUS_MAX bytes: control bytes become spaces, so a status can
 * never add a line such as READY=1.
 *
 * Errors: -1 when the variable is malformed or the datagram cannot be
 * sent (the caller logs a warning; mail goes on).
 * Threads: any thread, as long as nothing changes the environment at the
 * same time (the daemon never does).
 */
#ifndef SERVER_SDNOTIFY_H
#define SERVER_SDNOTIFY_H

#include <stddef.h>

#define SDNOTIFY_STATUS_MAX 200

/* Sends state ("READY=1\nSTATUS=..." as it is). Returns 1 (sent), 0 (no
 * $NOTIFY_SOCKET) or -1. */
int sdnotify_send(const char *state);

/* READY=1 and STATUS=status (NULL: no status): the daemon serves. */
int sdnotify_ready(const char *status);

/* RELOADING=1 with MONOTONIC_USEC (a SIGHUP reload begins); send
 * sdnotify_ready when it is done. */
int sdnotify_reloading(void);

/* STOPPING=1 and STATUS=status (NULL: none): a graceful stop begins. */
int sdnotify_stopping(const char *status);

/* STATUS=... from a printf format: what `systemctl status` shows. */
int sdnotify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
