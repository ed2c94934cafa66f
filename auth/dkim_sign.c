/*
 * dkim_sign: DKIM signing (RFC 6376 5), relaxed/relaxed, one signature
 * per key over the same header section and body hash.
 *
 * The signed header fields are those of RFC 6376 5.4.1 that a message
 * carries, every instance; From, To, Subject, Date and Message-ID are
 * listed once more than they occur (8.15: an attacker cannot add one).
 * The signature field is folded at 78 columns; b= comes last, so the
 * text signed is exactly the field as it will be sent with the b= value
 * left out (3.7).
 */
#include "auth/dkim_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/header.h"
#include "lib/util.h"

#define SIGN_MAX_KEYS	4
#define FOLD_AT		76

struct dkim_signer {
	struct dkim_sign_opts o;
	struct auth_split split;
	struct buf hdr;
	struct dkim_bodyhash *bh;
};

/* What is signed, in this order; 1: oversigned. */
static const struct {
	const char *name;
	int over;
} sign_fields[] = {
	{ "From", 1 }, { "To", 1 }, { "Subject", 1 }, { "Date", 1 },
	{ "Message-ID", 1 }, { "Cc", 0 }, { "Reply-To", 0 },
	{ "In-Reply-To", 0 }, { "References", 0 }, { "Sender", 0 },
	{ "MIME-Version", 0 }, { "Content-Type", 0 },
	{ "Content-Transfer-Encoding", 0 }, { "Content-Disposition", 0 },
	{ "Content-ID", 0 }, { "Content-Description", 0 },
	{ "Resent-Date", 0 }, { "Resent-From", 0 }, { "Resent-Sender", 0 },
	{ "Resent-To", 0 }, { "Resent-Cc", 0 }, { "Resent-Message-ID", 0 },
	{ "List-Id", 0 }, { "List-Help", 0 }, { "List-Unsubscribe", 0 },
	{ "List-Unsubscribe-Post", 0 }, { "List-Subscribe", 0 },
	{ "List-Post", 0 }, { "List-Owner", 0 }, { "List-Archive", 0 },
};

struct dkim_signer *
dkim_signer_new(const struct dkim_sign_opts *opts)
{
	struct dkim_signer *s = xcalloc(1, sizeof *s);

	if (opts != NULL)
		s->o = *opts;
	if (s->o.max_header_bytes == 0)
		s->o.max_header_bytes = DKIM_HEADER_DEFAULT;
	auth_split_init(&s->split);
	buf_init(&s->hdr, s->o.max_header_bytes);
	s->bh = dkim_bodyhash_new(DKIM_CANON_RELAXED, -1);
	return s;
}

const char *
dkim_signer_headers(const struct dkim_signer *s, size_t *len)
{
	*len = s->hdr.len;
	return s->hdr.data ? s->hdr.data : "";
}

void
dkim_signer_update(struct dkim_signer *s, const void *p, size_t n)
{
	size_t k = 0;

	if (!s->split.in_body)
		k = auth_split_feed(&s->split, p, n, &s->hdr);
	if (s->split.in_body && k < n)
		dkim_bodyhash_update(s->bh, (const char *)p + k, n - k);
}

void
dkim_signer_add_fields(struct dkim_signer *s, const char *fields, size_t n)
{
	auth_split_end(&s->split, &s->hdr);
	if (!s->split.overflow && buf_append(&s->hdr, fields, n) != 0)
		s->split.overflow = 1;
}

/* Appends text to a field being folded; col is the current column. */
static int
fold_put(struct buf *f, size_t *col, const char *text, size_t n, int breakable)
{
	if (breakable && *col + n > FOLD_AT && *col > 1) {
		if (buf_puts(f, "\r\n\t") != 0)
			return -1;
		*col = 1;
		if (n > 0 && text[0] == ' ') {	/* the fold is the space */
			text++;
			n--;
		}
	}
	*col += n;
	return buf_append(f, text, n);
}

/* The h= names for this header section, lower case. */
static int
header_names(const char *h, size_t len, struct buf *names,
    struct dkim_hname *list, size_t *nlist)
{
	size_t nfrom = 0;

	*nlist = 0;
	for (size_t i = 0; i < sizeof sign_fields / sizeof sign_fields[0]; i++) {
		struct auth_field f;
		size_t pos = 0, count = 0;
		while (auth_header_next(h, len, &pos, &f))
			if (auth_field_is(&f, sign_fields[i].name))
				count++;
		if (i == 0)
			nfrom = count;
		count += (size_t)sign_fields[i].over;
		for (size_t k = 0; k < count && *nlist < DKIM_MAX_HNAMES; k++) {
			list[(*nlist)].name = sign_fields[i].name;
			list[(*nlist)++].len = strlen(sign_fields[i].name);
		}
	}
	buf_reset(names);
	for (size_t i = 0; i < *nlist; i++) {
		for (size_t k = 0; k < list[i].len; k++) {
			char c = (char)tolower((unsigned char)list[i].name[k]);
			if (buf_append(names, &c, 1) != 0)
				return -1;
		}
		if (i + 1 < *nlist && buf_append(names, ":", 1) != 0)
			return -1;
	}
	return nfrom > 0 ? 0 : -1;
}

/* Builds the field up to "b=" for key into f. */
static int
field_start(const struct dkim_signer *s, const struct dkim_key *key, const char *bh,
    const struct buf *names, struct buf *f)
{
	char tmp[600];
	size_t col;
	time_t now = s->o.now ? s->o.now : time(NULL);
	const char *p = names->data;
	int rc;

	buf_reset(f);
	rc = buf_printf(f, "DKIM-Signature: v=1; a=%s; c=relaxed/relaxed;",
	    dkim_alg_name(dkim_key_alg(key)));
	col = f->len;
	snprintf(tmp, sizeof tmp, " d=%s;", dkim_key_domain(key));
	rc |= fold_put(f, &col, tmp, strlen(tmp), 1);
	snprintf(tmp, sizeof tmp, " s=%s;", dkim_key_selector(key));
	rc |= fold_put(f, &col, tmp, strlen(tmp), 1);
	snprintf(tmp, sizeof tmp, " t=%lld;", (long long)now);
	rc |= fold_put(f, &col, tmp, strlen(tmp), 1);
	if (s->o.expire_s > 0) {
		snprintf(tmp, sizeof tmp, " x=%lld;",
		    (long long)now + s->o.expire_s);
		rc |= fold_put(f, &col, tmp, strlen(tmp), 1);
	}
	rc |= fold_put(f, &col, " h=", 3, 1);
	while (rc == 0 && p != NULL && *p != '\0') {
		const char *colon = strchr(p, ':');
		size_t n = colon ? (size_t)(colon - p) + 1 : strlen(p);
		rc |= fold_put(f, &col, p, n, 1);
		p += n;
	}
	rc |= fold_put(f, &col, ";", 1, 0);
	snprintf(tmp, sizeof tmp, " bh=%s;", bh);
	rc |= fold_put(f, &col, tmp, strlen(tmp), 1);
	rc |= fold_put(f, &col, " b=", 3, 1);
	return rc ? -1 : 0;
}

int
dkim_signer_finish(struct dkim_signer *s, struct dkim_key *const *keys,
    size_t nkeys, struct buf *out, char *err, size_t errsize)
{
	struct dkim_hname list[DKIM_MAX_HNAMES];
	struct buf names, f, input, b64, bh;
	uint8_t hash[32];
	size_t nlist;
	int rc = 0;

	auth_split_end(&s->split, &s->hdr);
	dkim_bodyhash_final(s->bh, hash, NULL);
	if (nkeys == 0 || nkeys > SIGN_MAX_KEYS) {
		snprintf(err, errsize, "%zu keys: 1 to %d can sign a message",
		    nkeys, SIGN_MAX_KEYS);
		return -1;
	}
	if (s->split.overflow) {
		snprintf(err, errsize, "header section larger than %zu bytes",
		    s->o.max_header_bytes);
		return -1;
	}
	buf_init(&names, 8192);
	buf_init(&f, DKIM_MAX_FIELD);
	buf_init(&input, s->o.max_header_bytes + DKIM_MAX_FIELD);
	buf_init(&b64, 4096);
	buf_init(&bh, 128);
	if (header_names(s->hdr.data ? s->hdr.data : "", s->hdr.len, &names,
	    list, &nlist) != 0) {
		snprintf(err, errsize, "no From field to sign");
		rc = -1;
	} else if (dkim_base64_encode(hash, sizeof hash, &bh) != 0) {
		snprintf(err, errsize, "body hash");
		rc = -1;
	}
	for (size_t i = 0; rc == 0 && i < nkeys; i++) {
		size_t col;
		buf_reset(&input);
		buf_reset(&b64);
		if (field_start(s, keys[i], bh.data, &names, &f) != 0 ||
		    dkim_header_input(s->hdr.data ? s->hdr.data : "", s->hdr.len,
		    DKIM_CANON_RELAXED, list, nlist, NULL, f.data, f.len,
		    &input) != 0 ||
		    dkim_key_sign(keys[i], input.data, input.len, &b64) != 0) {
			snprintf(err, errsize, "signing with %s._domainkey.%s failed",
			    dkim_key_selector(keys[i]),
			    dkim_key_domain(keys[i]));
			rc = -1;
			break;
		}
		/* The b= value, folded; the last line ends the field. */
		col = FOLD_AT;	/* start it on a line of its own */
		for (size_t k = 0; k < b64.len && rc == 0; k += 64) {
			size_t n = b64.len - k < 64 ? b64.len - k : 64;
			rc = fold_put(&f, &col, b64.data + k, n, 1);
		}
		if (rc == 0)
			rc = buf_puts(&f, "\r\n");
		if (rc == 0)
			rc = buf_append(out, f.data, f.len);
		if (rc != 0)
			snprintf(err, errsize, "signature field too long");
	}
	buf_free(&names);
	buf_free(&f);
	buf_free(&input);
	buf_free(&b64);
	buf_free(&bh);
	return rc;
}

void
dkim_signer_free(struct dkim_signer **sp)
{
	struct dkim_signer *s = *sp;

	if (s == NULL)
		return;
	dkim_bodyhash_free(&s->bh);
	buf_free(&s->hdr);
	free(s);
	*sp = NULL;
}
