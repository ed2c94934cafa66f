/*
 * milter_mods: the changes milters ask for at the end of a message, as a
 * list for the SMTP session to carry out on the queued message and its
 * envelope before it answers 250.
 *
 * Every entry was checked when it arrived: header names are field names
 * (printable ASCII but ':'), header values are what follows the colon with
 * folded lines as CRLF + SP/HTAB (no bare CR or LF, no other control byte,
 * no trailing line break, so no value can end the header section or start
 * another header), addresses have no angle brackets and no control byte,
 * ESMTP arguments are printable ASCII. The list is bounded:
 * MILTER_MODS_MAX entries holding at most MILTER_MODS_BYTES_MAX bytes of
 * names, values, addresses and texts, and the replacement body by the
 * limit given.
 *
 * Applying them (the session's job; milter_mods_apply_header does the
 * header part), in list order:
 *  - ADD_HEADER: append "name:value" after the last header.
 *  - INSERT_HEADER: insert before the index-th header of the message (0 =
 *    before the first; an index past the end appends).
 *  - CHANGE_HEADER: replace the value of the index-th (1-based) header of
 *    that name (case-insensitive); no such header: append one.
 *  - DELETE_HEADER: delete the index-th header of that name; none: no-op.
 *  - REPLACE_BODY: the body (everything after the empty line) is
 *    mods->body (CRLF line ends as the filter sent them).
 *  - CHANGE_FROM: the envelope sender becomes addr ("" = null sender),
 *    with args (ESMTP MAIL parameters, NULL = none).
 *  - ADD_RCPT: add the envelope recipient addr (args: RCPT parameters).
 *  - DELETE_RCPT: remove the recipient equal to addr (case-insensitive).
 *  - QUARANTINE: hold the message (reason in text).
 * Header indexes count the headers as the message was fed to the chain
 * (milter_chain_message), changed by the entries before in the list.
 *
 * Errors: adding returns -1 when a limit would be passed (nothing added).
 * Threads: a list belongs to one thread at a time.
 */
#ifndef FILTER_MILTER_MODS_H
#define FILTER_MILTER_MODS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define MILTER_MODS_MAX		10000	/* entries in one message's list */
#define MILTER_MODS_BYTES_MAX	(1024 * 1024)	/* their strings, in all */
#define MILTER_HEADER_NAME_MAX	256
#define MILTER_HEADER_VALUE_MAX	(64 * 1024)
#define MILTER_ADDR_MAX		1000	/* an address a filter names */
#define MILTER_ARGS_MAX		2000	/* ESMTP parameters a filter names */

enum milter_mod_kind {
	MILTER_MOD_ADD_HEADER,
	MILTER_MOD_INSERT_HEADER,
	MILTER_MOD_CHANGE_HEADER,
	MILTER_MOD_DELETE_HEADER,
	MILTER_MOD_REPLACE_BODY,	/* the body is in mods->body */
	MILTER_MOD_CHANGE_FROM,
	MILTER_MOD_ADD_RCPT,
	MILTER_MOD_DELETE_RCPT,
	MILTER_MOD_QUARANTINE,
};

struct milter_mod {
	enum milter_mod_kind kind;
	size_t milter;		/* index of the milter in the chain */
	uint32_t index;		/* INSERT (0-based), CHANGE/DELETE (1-based) */
	char *name;		/* header name */
	char *value;		/* header value: text after the colon */
	char *addr;		/* sender or recipient, no angle brackets */
	char *args;		/* ESMTP parameters, or NULL */
	char *text;		/* QUARANTINE reason */
};

struct milter_mods {
	struct milter_mod *v;
	size_t n, cap;
	size_t bytes;		/* of the strings in v */
	int body_replaced;	/* a REPLACE_BODY entry is in v */
	struct buf body;	/* the last replacement body */
	char *quarantine;	/* the last QUARANTINE reason, or NULL */
	/* what the milter at work has sent so far, until it finishes */
	size_t committed;	/* entries of milters that finished */
	int pending_body;	/* it is replacing the body */
	struct buf pending;	/* its replacement body so far */
};

/* An empty list whose replacement body may hold up to body_max bytes. */
void milter_mods_init(struct milter_mods *m, size_t body_max);
/* Frees everything; the list is empty and may be reused. */
void milter_mods_free(struct milter_mods *m);
/* Empties the list (keeps body_max). */
void milter_mods_reset(struct milter_mods *m);

/* Adds a header change (kind ADD, INSERT, CHANGE or DELETE): name and the
 * value exactly as the filter sent it; leadspc says whether the filter
 * negotiated SMFIP_HDR_LEADSPC (else one space goes after the colon). An
 * empty value with CHANGE becomes DELETE. Returns 0, or -1 with a static
 * reason (bad name or value, list full). */
int milter_mods_header(struct milter_mods *m, size_t milter,
    enum milter_mod_kind kind, uint32_t index, const char *name,
    const char *value, int leadspc, const char **why_r);

/* Adds CHANGE_FROM, ADD_RCPT or DELETE_RCPT: addr with or without angle
 * brackets, args NULL or ESMTP parameters. Returns 0 or -1 (reason). */
int milter_mods_addr(struct milter_mods *m, size_t milter,
    enum milter_mod_kind kind, const char *addr, const char *args,
    const char **why_r);

/* Appends a piece of replacement body; the first piece of a milter's
 * replacement (first = 1) starts it and adds REPLACE_BODY. The body
 * becomes mods->body at milter_mods_commit. Returns 0, or -1 when the body
 * would pass body_max. */
int milter_mods_body(struct milter_mods *m, size_t milter, int first,
    const void *data, size_t len, const char **why_r);

/* Adds QUARANTINE with reason (control bytes become '?'). */
int milter_mods_quarantine(struct milter_mods *m, size_t milter,
    const char *reason, const char **why_r);

/* The milter at work finished its end of body: what it sent stays (its
 * replacement body becomes mods->body). */
void milter_mods_commit(struct milter_mods *m);
/* The milter at work failed: what it sent since the last commit is
 * dropped, so no half-done change is applied. */
void milter_mods_rollback(struct milter_mods *m);

/* Is s a header field name (1..MILTER_HEADER_NAME_MAX bytes of 33..126
 * except ':')? */
int milter_header_name_ok(const char *s);

/*
 * Formats a header value for the message: leadspc 0 puts one space before
 * it; LF or CRLF becomes CRLF and must be followed by SP or HTAB; no bare
 * CR, no other control byte but HTAB, no line break at the end. Appends
 * to out; returns 0 or -1 (reason; out may hold part).
 */
int milter_header_value_format(const char *v, int leadspc, struct buf *out,
    const char **why_r);

/*
 * Carries out the header changes of m (ADD, INSERT, CHANGE, DELETE, in
 * list order, as above) on a message's header section hdr[0..len-1] (its
 * header lines with their line ends, without the empty line after them)
 * and appends the new header section to out, with CRLF line ends for the
 * lines it makes and the bytes of the others as they were. Returns 0, or
 * -1 when out's maximum would be passed (out may hold part). A line that
 * is not a header field stays where it is and is never matched.
 */
int milter_mods_apply_header(const struct milter_mods *m, const char *hdr,
    size_t len, struct buf *out);

/* The kind's name for logs and the test driver ("add_header"). */
const char *milter_mod_kind_name(enum milter_mod_kind k);

#endif
