/*
 * bounce: builds delivery status notifications (see bounce.h).
 *
 * The report is a multipart/report (RFC 6522) with report-type
 * delivery-status: a readable text part, a message/delivery-status part
 * (RFC 3464; message/global-delivery-status for SMTPUTF8 originals, RFC
 * 6533) and the original, whole (message/rfc822 or message/global) only for
 * a failure with RET=FULL that fits BOUNCE_FULL_MAX, else its header section
 * (text/rfc822-headers or message/global-headers), as RFC 3461 asks.
 *
 * Every value taken from the input (sender, addresses, ORCPT, ENVID,
 * diagnostics, even the hostname) is cleaned before it goes into a header
 * field or the text: control characters become spaces (so CR and LF can
 * never start a new field), other bytes that do not belong become '?', runs
 * of spaces collapse, and the length is capped. Generated lines are folded
 * or wrapped so that none passes 998 octets (RFC 5322 2.1.1); the original
 * is copied byte for byte. The MIME boundary is checked against every part
 * and changed until it appears in none: the generated parts are in
 * memory, the original is scanned as it is read (a first pass over what
 * is returned of it, which also finds its header section and whether it
 * holds 8-bit bytes), then copied in a second pass.
 *
 * Bugs: a word longer than a line is split with a fold, which adds a space
 * when the field is unfolded; only pathological input has such words.
 */
#include "queue/bounce.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "lib/xtext.h"

/* Value of DSN_RET_FULL (server/smtp_args.h); the queue layer does not
 * include the server's headers, test_bounce checks they agree. */
#define BOUNCE_RET_FULL 1

#define BOUNCE_HEADERS_MAX (1u * 1024 * 1024)	/* header section cap */
#define BOUNCE_LINE_MAX 998			/* RFC 5322 2.1.1 */
#define BOUNCE_FOLD_AT 78			/* preferred line length */
#define BOUNCE_ADDR_MAX 512			/* cleaned address cap */
#define BOUNCE_DIAG_MAX 2048			/* cleaned diagnostic cap */
#define BOUNCE_RCPTS_MAX 10000			/* recipients reported */
#define BOUNCE_BOUNDARY_TRIES 1000
#define BOUNCE_BUF_MAX ((size_t)1 << 30)	/* never reached: inputs capped */

/* Makes boundaries and Message-IDs of one process distinct even within
 * one microsecond; atomic, so reentrant. */
static _Atomic unsigned long bounce_seq;

/* Length of the UTF-8 sequence starting at p (at most n bytes), or 0 when
 * it is not well formed (overlong forms and surrogates included). */
static size_t
bounce_utf8_len(const unsigned char *p, size_t n)
{
	size_t len, i;
	unsigned long cp;

	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/*
 * Appends s cleaned to b: control characters as one space, no leading,
 * trailing or repeated spaces, bytes >= 0x80 kept only when utf8 is set
 * and they form valid UTF-8 (else one '?' per character or stray byte),
 * and at most cap octets ("..."
 * marks a cut). NULL appends nothing.
 */
static void
bounce_clean(struct buf *b, const char *s, size_t cap, int utf8)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n, out = 0, k;
	int pending_space = 0, keep;

	if (s == NULL)
		return;
	n = strlen(s);
	while (n > 0) {
		if (*p <= 0x20 || *p == 0x7f) {
			pending_space = out > 0;
			p++;
			n--;
			continue;
		}
		k = 1;
		keep = 1;
		if (*p >= 0x80) {
			/* one '?' stands for a whole character */
			k = bounce_utf8_len(p, n);
			keep = utf8 && k > 0;
			if (k == 0)
				k = 1;
		}
		if (out + pending_space + (keep ? k : 1) > cap) {
			buf_puts(b, "...");
			return;
		}
		if (pending_space) {
			buf_append(b, " ", 1);
			out++;
			pending_space = 0;
		}
		if (keep) {
			buf_append(b, p, k);
			out += k;
		} else {
			buf_append(b, "?", 1);
			out++;
		}
		p += k;
		n -= k;
	}
}

/* Cleaned copy of s as a heap string (free it). */
static char *
bounce_cleaned(const char *s, size_t cap, int utf8)
{
	struct buf b;

	buf_init(&b, BOUNCE_BUF_MAX);
	bounce_clean(&b, s, cap, utf8);
	return buf_steal(&b, NULL);
}

/*
 * Appends first, then the cleaned text (single spaces, no CR or LF),
 * wrapped at spaces near BOUNCE_FOLD_AT; each new line starts with cont
 * (" " folds a header field, "    " indents text). A word that does not
 * fit in BOUNCE_LINE_MAX is split. Ends with CRLF.
 */
static void
bounce_wrap(struct buf *b, const char *first, const char *text,
    const char *cont)
{
	size_t col, wl, room, k, contlen = strlen(cont);
	const char *p = text;

	buf_puts(b, first);
	col = strlen(first);
	while (*p != '\0') {
		int ws = *p == ' ';

		wl = strcspn(p + ws, " ");
		if (ws && col + 1 + wl > BOUNCE_FOLD_AT && col > contlen) {
			buf_puts(b, "\r\n");
			buf_puts(b, cont);
			col = contlen;
			p++;
		} else if (ws) {
			buf_append(b, " ", 1);
			col++;
			p++;
		}
		while (wl > 0) {
			room = col < BOUNCE_LINE_MAX ? BOUNCE_LINE_MAX - col : 0;
			if (room == 0) {
				buf_puts(b, "\r\n");
				buf_puts(b, cont);
				col = contlen;
				continue;
			}
			k = wl < room ? wl : room;
			buf_append(b, p, k);
			col += k;
			p += k;
			wl -= k;
		}
	}
	buf_puts(b, "\r\n");
}

/* A header field "Name: value" with value cleaned and folded. */
static void
bounce_field(struct buf *b, const char *name, const char *value, size_t cap,
    int utf8)
{
	char first[64];
	char *clean = bounce_cleaned(value, cap, utf8);
	int n = snprintf(first, sizeof first, "%s:%s", name,
	    clean[0] != '\0' ? " " : "");

	if (n < 0 || (size_t)n >= sizeof first)
		abort();	/* names are constants of this file */
	bounce_wrap(b, first, clean, " ");
	free(clean);
}

static int
bounce_has_8bit(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

/* "X.Y.Z" with 1-3 digit subject and detail and class 2, 4 or 5. */
static int
bounce_status_ok(const char *s)
{
	size_t i, digits;
	int part;

	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return 0;
	s += 2;
	for (part = 0; part < 2; part++) {
		for (i = 0, digits = 0; s[i] >= '0' && s[i] <= '9'; i++)
			digits++;
		if (digits < 1 || digits > 3)
			return 0;
		s += i;
		if (part == 0 && *s++ != '.')
			return 0;
	}
	return *s == '\0';
}

/* True when s starts with a diagnostic type ("smtp;", "X-Unix;"). */
static int
bounce_has_type(const char *s)
{
	size_t i = 0;

	if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
		return 0;
	while ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
	    (s[i] >= '0' && s[i] <= '9') || s[i] == '-')
		i++;
	while (s[i] == ' ')
		i++;
	return s[i] == ';';
}

/*
 * The header section of the original, found as it is read: up to and
 * including the line end before the first empty line; without an empty
 * line, the whole (capped at the last line end within BOUNCE_HEADERS_MAX).
 */
struct bounce_hdrscan {
	uint64_t off;		/* bytes seen */
	uint64_t line_start;	/* of the line being read */
	int bol;		/* at a line start */
	int bol_cr;		/* a CR at a line start: CRLF is the empty line */
	int lend_cr;		/* the line end before line_start was CRLF */
	int prev_cr;		/* the last byte seen was a CR */
	int done;
	uint64_t len;		/* the result, once done */
};

static void
bounce_hdrscan_feed(struct bounce_hdrscan *h, const char *p, size_t n)
{
	for (size_t i = 0; i < n && !h->done; i++, h->off++) {
		char c = p[i];

		if ((h->bol_cr || h->bol) && c == '\n') {
			h->done = 1;
			h->len = h->line_start;
			return;
		}
		h->bol_cr = h->bol && c == '\r';
		h->bol = 0;
		if (c != '\n') {
			h->prev_cr = c == '\r';
			continue;
		}
		if (h->off + 1 > BOUNCE_HEADERS_MAX) {
			h->done = 1;
			h->len = h->line_start;
			return;
		}
		h->line_start = h->off + 1;
		h->lend_cr = h->prev_cr;
		h->prev_cr = 0;
		h->bol = 1;
	}
}

/* At the end of the original, when no empty line came. */
static uint64_t
bounce_hdrscan_end(const struct bounce_hdrscan *h)
{
	if (h->done)
		return h->len;
	return h->off <= BOUNCE_HEADERS_MAX ? h->off : h->line_start;
}

/* A search for needle in text that comes in pieces. */
struct bounce_find {
	const char *needle;
	size_t nlen;		/* 1..sizeof carry */
	char carry[128];	/* the last nlen - 1 bytes seen */
	size_t ncarry;
	int found;
};

static void
bounce_find_init(struct bounce_find *f, const char *needle)
{
	memset(f, 0, sizeof *f);
	f->needle = needle;
	f->nlen = strlen(needle);
	if (f->nlen == 0 || f->nlen > sizeof f->carry)
		abort();	/* boundaries are short constants of this file */
}

static void
bounce_find_feed(struct bounce_find *f, const char *p, size_t n)
{
	char join[2 * sizeof f->carry];
	size_t k, keep;

	if (f->found || n == 0)
		return;
	/* Across the seam: the carry and the start of this piece. */
	k = n < f->nlen - 1 ? n : f->nlen - 1;
	memcpy(join, f->carry, f->ncarry);
	memcpy(join + f->ncarry, p, k);
	if (memmem(join, f->ncarry + k, f->needle, f->nlen) != NULL ||
	    memmem(p, n, f->needle, f->nlen) != NULL) {
		f->found = 1;
		return;
	}
	keep = f->nlen - 1;
	if (n >= keep) {
		memcpy(f->carry, p + n - keep, keep);
		f->ncarry = keep;
	} else {
		size_t old = f->ncarry + n > keep ? keep - n : f->ncarry;
		memmove(f->carry, f->carry + f->ncarry - old, old);
		memcpy(f->carry + old, p, n);
		f->ncarry = old + n;
	}
}

static const char *
bounce_action(enum bounce_kind kind)
{
	switch (kind) {
	case BOUNCE_FAILED:
		return "failed";
	case BOUNCE_DELAYED:
		return "delayed";
	case BOUNCE_DELIVERED:
		return "delivered";
	case BOUNCE_RELAYED:
		return "relayed";
	case BOUNCE_EXPANDED:
		return "expanded";
	}
	return "failed";
}

static const char *
bounce_subject(enum bounce_kind kind)
{
	switch (kind) {
	case BOUNCE_FAILED:
		return "Undelivered Mail Returned to Sender";
	case BOUNCE_DELAYED:
		return "Delayed Mail (still being retried)";
	case BOUNCE_DELIVERED:
		return "Successful Mail Delivery Report";
	case BOUNCE_RELAYED:
		return "Successful Mail Relay Report";
	case BOUNCE_EXPANDED:
		return "Successful Mail Expansion Report";
	}
	return "Undelivered Mail Returned to Sender";
}

static const char *
bounce_default_status(enum bounce_kind kind)
{
	switch (kind) {
	case BOUNCE_FAILED:
		return "5.0.0";
	case BOUNCE_DELAYED:
		return "4.0.0";
	case BOUNCE_DELIVERED:
	case BOUNCE_RELAYED:
	case BOUNCE_EXPANDED:
		return "2.0.0";
	}
	return "5.0.0";
}

/* The readable part. */
static void
bounce_text_part(struct buf *t, enum bounce_kind kind, const char *host,
    const struct bounce_orig *orig, const struct bounce_rcpt *rcpts,
    size_t n, size_t shown, int64_t retry_until, int full_too_big)
{
	char date[64], *addr, *diag, *line;
	struct buf lb;
	size_t i;
	int utf8 = orig->smtputf8 != 0;

	buf_printf(t, "This is the mail system at host %s.\r\n\r\n", host);
	switch (kind) {
	case BOUNCE_FAILED:
		bounce_wrap(t, "", "I'm sorry to have to inform you that your "
		    "message could not be delivered to one or more "
		    "recipients. The reasons are given below; the message "
		    "itself, or its headers, is attached.", "");
		break;
	case BOUNCE_DELAYED:
		bounce_wrap(t, "", "Your message could not be delivered yet to "
		    "one or more recipients. The mail system will keep "
		    "trying; you do not need to send it again.", "");
		if (retry_until > 0) {
			time_rfc5322((time_t)retry_until, date, sizeof date);
			buf_printf(t, "It will give up after %s.\r\n", date);
		}
		break;
	case BOUNCE_DELIVERED:
		bounce_wrap(t, "", "Your message was successfully delivered to "
		    "the destinations listed below, as you asked.", "");
		break;
	case BOUNCE_RELAYED:
		bounce_wrap(t, "", "Your message was successfully passed on to "
		    "the destinations listed below. Their servers do not "
		    "confirm delivery, so no further notice will come.", "");
		break;
	case BOUNCE_EXPANDED:
		bounce_wrap(t, "", "Your message was delivered to the addresses "
		    "listed below, which forward it to several recipients "
		    "each. No further notice of success will come for "
		    "them.", "");
		break;
	}
	if (full_too_big)
		bounce_wrap(t, "", "The message was too large to return in "
		    "full; only its headers are attached.", "");
	buf_puts(t, "\r\n");
	buf_init(&lb, BOUNCE_BUF_MAX);
	for (i = 0; i < shown; i++) {
		addr = bounce_cleaned(rcpts[i].addr, BOUNCE_ADDR_MAX, utf8);
		diag = bounce_cleaned(rcpts[i].diag, BOUNCE_DIAG_MAX, 0);
		buf_reset(&lb);
		buf_printf(&lb, "<%s>: ", addr);
		if (diag[0] != '\0')
			buf_puts(&lb, diag);
		else
			buf_printf(&lb, "%s (%s)", bounce_action(kind),
			    bounce_status_ok(rcpts[i].status) ?
			    rcpts[i].status : bounce_default_status(kind));
		line = lb.data;
		bounce_wrap(t, "", line, "    ");
		free(addr);
		free(diag);
	}
	buf_free(&lb);
	if (shown < n)
		buf_printf(t, "... and %zu more recipients.\r\n", n - shown);
}

/* The machine-readable part. */
static void
bounce_status_part(struct buf *d, enum bounce_kind kind, const char *host,
    const struct bounce_orig *orig, const struct bounce_rcpt *rcpts,
    size_t shown, int64_t retry_until)
{
	char date[64], *clean;
	struct buf v;
	size_t i;
	int utf8 = orig->smtputf8 != 0;
	const struct bounce_rcpt *r;

	buf_init(&v, BOUNCE_BUF_MAX);
	buf_printf(d, "Reporting-MTA: dns; %s\r\n", host);
	bounce_field(d, "X-Mailserver-Queue-ID", orig->queue_id, 64, 0);
	if (orig->envid != NULL && orig->envid[0] != '\0')
		bounce_field(d, "Original-Envelope-Id", orig->envid, 200, 0);
	if (orig->arrival > 0)
		buf_printf(d, "Arrival-Date: %s\r\n",
		    time_rfc5322((time_t)orig->arrival, date, sizeof date));
	for (i = 0; i < shown; i++) {
		r = &rcpts[i];
		buf_puts(d, "\r\n");

		clean = bounce_cleaned(r->addr, BOUNCE_ADDR_MAX, utf8);
		buf_reset(&v);
		buf_printf(&v, "%s; %s",
		    bounce_has_8bit(clean, strlen(clean)) ? "utf-8" : "rfc822",
		    clean);
		bounce_field(d, "Final-Recipient", v.data, BOUNCE_ADDR_MAX + 16,
		    utf8);
		free(clean);

		if (r->orcpt != NULL && r->orcpt[0] != '\0') {
			char enc[BOUNCE_ADDR_MAX * 6 + 1];

			buf_reset(&v);
			if (strchr(r->orcpt, ';') == NULL)
				buf_puts(&v, "rfc822; ");
			if (!utf8 && strncasecmp(r->orcpt, "utf-8;", 6) == 0 &&
			    bounce_has_8bit(r->orcpt, strlen(r->orcpt)) &&
			    xtext_encode_utf8_addr(r->orcpt + 6, enc, sizeof enc) == 0) {
				/* RFC 6533 3: 7-bit in message/delivery-status */
				buf_puts(&v, "utf-8;");
				buf_puts(&v, enc);
			} else {
				buf_puts(&v, r->orcpt);
			}
			bounce_field(d, "Original-Recipient", v.data,
			    BOUNCE_ADDR_MAX + 16, utf8);
		}
		buf_printf(d, "Action: %s\r\n", bounce_action(kind));
		buf_printf(d, "Status: %s\r\n", bounce_status_ok(r->status) ?
		    r->status : bounce_default_status(kind));
		if (r->remote_mta != NULL && r->remote_mta[0] != '\0') {
			buf_reset(&v);
			buf_puts(&v, "dns; ");
			buf_puts(&v, r->remote_mta);
			bounce_field(d, "Remote-MTA", v.data, 300, 0);
		}
		if (r->diag != NULL && r->diag[0] != '\0') {
			buf_reset(&v);
			clean = bounce_cleaned(r->diag, BOUNCE_DIAG_MAX, 0);
			if (!bounce_has_type(clean))
				buf_puts(&v, "smtp; ");
			buf_puts(&v, clean);
			free(clean);
			bounce_field(d, "Diagnostic-Code", v.data,
			    BOUNCE_DIAG_MAX + 16, 0);
		}
		if (r->last_attempt > 0)
			buf_printf(d, "Last-Attempt-Date: %s\r\n",
			    time_rfc5322((time_t)r->last_attempt, date,
			    sizeof date));
		if (kind == BOUNCE_DELAYED && retry_until > 0)
			buf_printf(d, "Will-Retry-Until: %s\r\n",
			    time_rfc5322((time_t)retry_until, date,
			    sizeof date));
	}
	buf_free(&v);
}

/*
 * Boundary candidate number attempt into out. The first is derived from
 * the queue id and arrival alone (the same message gives the same one);
 * later ones add the attempt, a process-wide sequence number and 64
 * random bits, so that an original cannot hold them by design.
 */
static void
bounce_make_boundary(char *out, size_t size, const char *qid,
    int64_t arrival, int attempt)
{
	unsigned long long rnd = 0;
	int n;

	if (attempt == 0) {
		n = snprintf(out, size, "=_%.16s.%llx/rpt", qid,
		    (unsigned long long)arrival);
	} else {
		if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != sizeof rnd)
			rnd = (unsigned long long)time(NULL) * 2654435761u;
		n = snprintf(out, size, "=_%.16s.%llx.%d.%lx.%llx/rpt", qid,
		    (unsigned long long)arrival, attempt,
		    atomic_fetch_add(&bounce_seq, 1), rnd);
	}
	/* RFC 2046 5.1.1: at most 70 characters; this is at most 70 */
	if (n < 0 || (size_t)n >= size || n > 70)
		abort();
}

static int
bounce_contains(const char *hay, size_t len, const char *s)
{
	return len > 0 && memmem(hay, len, s, strlen(s)) != NULL;
}

/* What the first pass learned of the original. */
struct bounce_scan {
	uint64_t inc_len;	/* bytes of it the report returns */
	int eightbit;		/* those hold a byte >= 0x80 */
	int ends_crlf;		/* and end with CRLF */
	int collides;		/* and hold the boundary looked for */
};

/* Reads what the report returns of the original (all of it when full,
 * else its header section) and checks it for boundary. Returns 0, or -1
 * when it cannot be read. */
static int
bounce_scan_orig(const struct body_reader *r, int full, const char *boundary,
    struct bounce_scan *sc)
{
	struct bounce_hdrscan h = { .bol = 1 };
	struct bounce_find f;
	uint64_t seen = 0;
	char last[2] = { 0, 0 };

	memset(sc, 0, sizeof *sc);
	if (r == NULL)
		return 0;
	bounce_find_init(&f, boundary);
	if (r->rewind(r->arg) != 0)
		return -1;
	for (;;) {
		const char *p;
		size_t n;

		if (r->next(r->arg, &p, &n) != 0)
			return -1;
		if (n == 0)
			break;
		if (!full) {
			bounce_hdrscan_feed(&h, p, n);
			if (h.done)	/* the rest is body */
				n = h.len > seen ? (size_t)(h.len - seen) : 0;
		}
		bounce_find_feed(&f, p, n);
		if (!sc->eightbit && bounce_has_8bit(p, n))
			sc->eightbit = 1;
		if (n >= 2) {
			last[0] = p[n - 2];
			last[1] = p[n - 1];
		} else if (n == 1) {
			last[0] = last[1];
			last[1] = p[0];
		}
		seen += n;
		if (!full && h.done)
			break;
	}
	sc->inc_len = full ? seen : bounce_hdrscan_end(&h);
	if (!full && sc->inc_len == h.line_start)
		sc->ends_crlf = sc->inc_len >= 2 && h.lend_cr;	/* at a line end */
	else
		sc->ends_crlf = sc->inc_len >= 2 && last[0] == '\r' &&
		    last[1] == '\n';
	sc->collides = f.found;
	return 0;
}

/* Copies the first len bytes of the original to out. */
static int
bounce_copy_orig(const struct body_reader *r, uint64_t len,
    const struct bounce_sink *out)
{
	if (len == 0)
		return 0;
	if (r->rewind(r->arg) != 0)
		return -1;
	while (len > 0) {
		const char *p;
		size_t n;

		if (r->next(r->arg, &p, &n) != 0 || n == 0)
			return -1;	/* shorter than it was a moment ago */
		if (n > len)
			n = (size_t)len;
		if (out->write(out->arg, p, n) != 0)
			return -1;
		len -= n;
	}
	return 0;
}

static int
bounce_put(const struct bounce_sink *out, const struct buf *b)
{
	return b->len == 0 ? 0 : out->write(out->arg, b->data, b->len);
}

int
bounce_build(enum bounce_kind kind, const char *hostname,
    const struct bounce_orig *orig, const struct bounce_rcpt *rcpts, size_t n,
    int64_t retry_until, const struct bounce_sink *sink, int *eightbit_r)
{
	struct buf out, text, dsn, tmp;
	struct bounce_scan sc;
	char *host, *sender, *qid, boundary[128], date[64];
	const struct body_reader *body = orig->body;
	uint64_t body_len = body != NULL ? body->size : 0;
	size_t shown, i;
	int full, full_too_big = 0, eightbit, tries, rc = -1;
	int utf8 = orig->smtputf8 != 0;
	struct timespec ts;

	shown = n < BOUNCE_RCPTS_MAX ? n : BOUNCE_RCPTS_MAX;
	host = bounce_cleaned(hostname, 255, 0);
	if (host[0] == '\0' || strchr(host, ' ') != NULL) {
		free(host);
		host = xstrdup("localhost");
	}
	sender = bounce_cleaned(orig->sender, BOUNCE_ADDR_MAX, utf8);
	/* the queue id goes into a boundary and a Message-ID: alnum only */
	qid = bounce_cleaned(orig->queue_id, 32, 0);
	for (i = 0; qid[i] != '\0'; i++)
		if (!((qid[i] >= '0' && qid[i] <= '9') ||
		    (qid[i] >= 'A' && qid[i] <= 'Z') ||
		    (qid[i] >= 'a' && qid[i] <= 'z')))
			qid[i] = 'X';

	/* RET=FULL is for failures only (RFC 3461 4.3), and within bounds */
	full = kind == BOUNCE_FAILED && orig->ret == BOUNCE_RET_FULL;
	if (full && body_len > BOUNCE_FULL_MAX) {
		full = 0;
		full_too_big = 1;
	}

	buf_init(&text, BOUNCE_BUF_MAX);
	buf_init(&dsn, BOUNCE_BUF_MAX);
	buf_init(&out, BOUNCE_BUF_MAX);
	bounce_text_part(&text, kind, host, orig, rcpts, n, shown, retry_until,
	    full_too_big);
	bounce_status_part(&dsn, kind, host, orig, rcpts, shown, retry_until);

	/* a boundary that occurs in no part (the original could hold ours):
	 * each candidate costs a pass over what is returned of it */
	for (tries = 0;; tries++) {
		bounce_make_boundary(boundary, sizeof boundary, qid,
		    orig->arrival, tries);
		if (bounce_contains(text.data, text.len, boundary) ||
		    bounce_contains(dsn.data, dsn.len, boundary))
			continue;
		if (bounce_scan_orig(body, full, boundary, &sc) != 0)
			goto out;
		if (!sc.collides)
			break;
		if (tries >= BOUNCE_BOUNDARY_TRIES)
			abort();	/* every candidate is fresh: a bug */
	}
	eightbit = utf8 || sc.eightbit;

	buf_printf(&out, "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n",
	    host);
	buf_init(&tmp, BOUNCE_BUF_MAX);
	buf_printf(&tmp, "<%s>", sender);
	bounce_wrap(&out, "To: ", tmp.data, " ");
	buf_free(&tmp);
	buf_printf(&out, "Subject: %s\r\n", bounce_subject(kind));
	clock_gettime(CLOCK_REALTIME, &ts);
	buf_printf(&out, "Date: %s\r\n",
	    time_rfc5322(ts.tv_sec, date, sizeof date));
	buf_printf(&out, "Message-ID: <%s.%lld%06ld.%lu.bounce@%s>\r\n", qid,
	    (long long)ts.tv_sec, ts.tv_nsec / 1000,
	    atomic_fetch_add(&bounce_seq, 1), host);
	buf_puts(&out, "Auto-Submitted: auto-replied\r\n");
	buf_puts(&out, "MIME-Version: 1.0\r\n");
	buf_puts(&out, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n");
	buf_printf(&out, "\tboundary=\"%s\"\r\n", boundary);
	if (eightbit)
		buf_puts(&out, "Content-Transfer-Encoding: 8bit\r\n");
	buf_puts(&out, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

	buf_printf(&out, "--%s\r\n", boundary);
	buf_puts(&out, "Content-Description: Notification\r\n");
	buf_printf(&out, "Content-Type: text/plain; charset=%s\r\n",
	    utf8 ? "utf-8" : "us-ascii");
	if (utf8)
		buf_puts(&out, "Content-Transfer-Encoding: 8bit\r\n");
	buf_puts(&out, "\r\n");
	buf_append(&out, text.data, text.len);

	buf_printf(&out, "\r\n--%s\r\n", boundary);
	buf_puts(&out, "Content-Description: Delivery report\r\n");
	buf_printf(&out, "Content-Type: message/%sdelivery-status\r\n",
	    utf8 ? "global-" : "");
	if (utf8)
		buf_puts(&out, "Content-Transfer-Encoding: 8bit\r\n");
	buf_puts(&out, "\r\n");
	buf_append(&out, dsn.data, dsn.len);

	buf_printf(&out, "\r\n--%s\r\n", boundary);
	if (full) {
		buf_puts(&out, "Content-Description: Undelivered Message\r\n");
		buf_puts(&out, utf8 ? "Content-Type: message/global\r\n" :
		    "Content-Type: message/rfc822\r\n");
	} else {
		buf_printf(&out, "Content-Description: %s Message Headers\r\n",
		    kind == BOUNCE_FAILED ? "Undelivered" :
		    kind == BOUNCE_DELAYED ? "Delayed" : "Delivered");
		buf_puts(&out, utf8 ? "Content-Type: message/global-headers\r\n" :
		    "Content-Type: text/rfc822-headers\r\n");
	}
	if (eightbit)
		buf_puts(&out, "Content-Transfer-Encoding: 8bit\r\n");
	buf_puts(&out, "\r\n");
	if (bounce_put(sink, &out) != 0 ||
	    (sc.inc_len > 0 && bounce_copy_orig(body, sc.inc_len, sink) != 0))
		goto out;
	buf_reset(&out);
	if (sc.inc_len > 0 && !sc.ends_crlf)
		buf_puts(&out, "\r\n");
	buf_printf(&out, "\r\n--%s--\r\n", boundary);
	if (bounce_put(sink, &out) != 0)
		goto out;
	if (eightbit_r != NULL)
		*eightbit_r = eightbit;
	rc = 0;
out:
	buf_free(&out);
	buf_free(&text);
	buf_free(&dsn);
	free(host);
	free(sender);
	free(qid);
	return rc;
}
