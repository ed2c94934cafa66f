/*
 * reply: the check of an SMTP reply that a filter daemon gives the session
 * to send (a milter's SMFIR_REPLYCODE, a policy service's "4NN text" or
 * "5NN text"), so that nothing a filter says can break the SMTP stream.
 *
 * Errors: -1 with a static reason. Threads: reentrant.
 */
#ifndef FILTER_REPLY_H
#define FILTER_REPLY_H

#include <stddef.h>

/* A reply after normalisation, lines joined by CRLF. */
#define FILTER_REPLY_MAX	2048
#define FILTER_REPLY_LINE_MAX	512

/* Sendmail took milter replies as printf formats: "%%" stands for '%'
 * and a single '%' is dropped. */
#define FILTER_REPLY_PERCENT	1

/*
 * Checks and normalises text: one or more lines separated by CRLF, no
 * CRLF at the end; every line "DDD-text" except the last "DDD text", D1 4
 * or 5, D2 0..5, the same code on every line, printable ASCII only, lines
 * at most FILTER_REPLY_LINE_MAX. An enhanced status code that starts a
 * line must be "C.x.y" with C the reply's class; a line without one gets
 * the default C.7.1. flags: FILTER_REPLY_PERCENT or 0. Writes the result
 * (at most FILTER_REPLY_MAX bytes) to out (outsize > FILTER_REPLY_MAX)
 * and returns the code, or -1 with a static reason.
 */
int filter_reply_check(const char *text, int flags, char *out, size_t outsize,
    const char **why_r);

#endif
