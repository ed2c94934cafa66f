/*
 * mta_sts_cache: MTA-STS policy discovery and its durable cache
 * (relay/mta_sts_cache.h).
 *
 * A cached record, key = the domain (lower case, no trailing dot):
 *   version 1 | fetched (8, big-endian Unix time) | expires (8) |
 *   id length (1) | id | the policy text as fetched
 */
#include "relay/mta_sts_cache.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"

#define REC_VERSION 1
#define REC_HEAD (1 + 8 + 8 + 1)

/* ---- failed fetches, remembered for MTA_STS_RETRY_S ---- */

struct failed_fetch {
	char domain[DNS_NAME_MAX];	/* "" : a free slot */
	char id[MTA_STS_ID_MAX + 1];
	int64_t at;			/* Unix time of the fetch */
	enum mta_sts_failure failure;
	char detail[sizeof ((struct mta_sts_state *)0)->detail];
};

struct mta_sts_failed {
	pthread_mutex_t lock;
	struct failed_fetch slot[MTA_STS_FAILED_MAX];
};

struct mta_sts_failed *
mta_sts_failed_new(void)
{
	struct mta_sts_failed *f = xcalloc(1, sizeof *f);

	pthread_mutex_init(&f->lock, NULL);
	return f;
}

void
mta_sts_failed_free(struct mta_sts_failed **fp)
{
	if (*fp == NULL)
		return;
	pthread_mutex_destroy(&(*fp)->lock);
	free(*fp);
	*fp = NULL;
}

/* FNV-1a: the slot of a domain (lower case). A sender who picks colliding
 * domains only makes fetches as they were without the table. */
static struct failed_fetch *
failed_slot(struct mta_sts_failed *f, const char *domain)
{
	uint32_t h = 2166136261u;

	for (const char *p = domain; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return &f->slot[h % MTA_STS_FAILED_MAX];
}

/* Did the fetch of domain's policy id fail less than MTA_STS_RETRY_S
 * ago? Then 1 with out's failure and detail filled. */
static int
failed_recent(struct mta_sts_failed *f, const char *domain, const char *id,
    int64_t now, struct mta_sts_state *out)
{
	struct failed_fetch *e;
	int hit;

	if (f == NULL)
		return 0;
	pthread_mutex_lock(&f->lock);
	e = failed_slot(f, domain);
	hit = strcmp(e->domain, domain) == 0 && strcmp(e->id, id) == 0 &&
	    now >= e->at && now - e->at < MTA_STS_RETRY_S;
	if (hit) {
		out->failure = e->failure;
		str_format(out->detail, sizeof out->detail, "%s (%" PRId64
		    " s ago; next fetch in %" PRId64 " s)", e->detail, now - e->at,
		    MTA_STS_RETRY_S - (now - e->at));
	}
	pthread_mutex_unlock(&f->lock);
	return hit;
}

/* Remembers the failed fetch out describes, or (failure NONE) forgets
 * domain's. */
static void
failed_note(struct mta_sts_failed *f, const char *domain, const char *id,
    int64_t now, const struct mta_sts_state *out)
{
	struct failed_fetch *e;

	if (f == NULL)
		return;
	pthread_mutex_lock(&f->lock);
	e = failed_slot(f, domain);
	if (out->failure != MTA_STS_FAIL_NONE) {
		str_copy(e->domain, domain, sizeof e->domain);
		str_copy(e->id, id, sizeof e->id);
		e->at = now;
		e->failure = out->failure;
		str_copy(e->detail, out->detail, sizeof e->detail);
	} else if (strcmp(e->domain, domain) == 0) {
		e->domain[0] = '\0';
	}
	pthread_mutex_unlock(&f->lock);
}

const char *
mta_sts_failure_result_type(enum mta_sts_failure f)
{
	switch (f) {
	case MTA_STS_FAIL_FETCH: return "sts-policy-fetch-error";
	case MTA_STS_FAIL_WEBPKI: return "sts-webpki-invalid";
	case MTA_STS_FAIL_INVALID: return "sts-policy-invalid";
	default: return NULL;
	}
}

void
mta_sts_state_clear(struct mta_sts_state *st)
{
	free(st->text);
	memset(st, 0, sizeof *st);
}

static void
put64(uint8_t *p, int64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
}

static int64_t
get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return (int64_t)v;
}

/* Decodes a record into out (text copied); 0 or -1. */
static int
rec_decode(const uint8_t *p, size_t n, struct mta_sts_state *out)
{
	size_t idlen, tlen;
	char why[200];

	if (n < REC_HEAD || p[0] != REC_VERSION)
		return -1;
	idlen = p[17];
	if (idlen == 0 || idlen > MTA_STS_ID_MAX || REC_HEAD + idlen > n)
		return -1;
	tlen = n - REC_HEAD - idlen;
	memcpy(out->id, p + REC_HEAD, idlen);
	out->id[idlen] = '\0';
	out->fetched = get64(p + 1);
	out->expires = get64(p + 9);
	out->text = xmalloc(tlen + 1);
	memcpy(out->text, p + REC_HEAD + idlen, tlen);
	out->text[tlen] = '\0';
	if (mta_sts_policy_parse(out->text, tlen, &out->policy, why, sizeof why) != 0) {
		free(out->text);
		out->text = NULL;
		return -1;
	}
	return 0;
}

int
mta_sts_cache_get(struct tls_store *s, const char *domain,
    struct mta_sts_state *out)
{
	char name[DNS_NAME_MAX];
	struct buf v;
	int rc;

	memset(out, 0, sizeof *out);
	if (s == NULL || dns_name_normalize(domain, name, sizeof name) != 0)
		return 1;
	buf_init(&v, REC_HEAD + MTA_STS_ID_MAX + MTA_STS_POLICY_MAX);
	rc = tls_store_get(s, TLS_STORE_STS, name, strlen(name), &v);
	if (rc == 0 && rec_decode((const uint8_t *)v.data, v.len, out) != 0) {
		log_warn("mta-sts: cached policy of %s does not decode; ignored", name);
		rc = -1;
	}
	buf_free(&v);
	if (rc == 0)
		out->have = 1;
	return rc;
}

static void
cache_put(struct tls_store *s, const char *domain, const struct mta_sts_state *st)
{
	size_t idlen = strlen(st->id), tlen = strlen(st->text);
	uint8_t *rec = xmalloc(REC_HEAD + idlen + tlen);

	rec[0] = REC_VERSION;
	put64(rec + 1, st->fetched);
	put64(rec + 9, st->expires);
	rec[17] = (uint8_t)idlen;
	memcpy(rec + REC_HEAD, st->id, idlen);
	memcpy(rec + REC_HEAD + idlen, st->text, tlen);
	if (tls_store_put(s, TLS_STORE_STS, domain, strlen(domain), rec,
	    REC_HEAD + idlen + tlen, 1) != 0)
		log_warn("mta-sts: policy of %s not cached", domain);
	free(rec);
}

/* The _mta-sts record's id: 0 with id, -1 when there is none to use. */
static int
txt_id(struct dns_resolver *dns, const char *domain, char *id, char *why,
    size_t whysize)
{
	char q[DNS_NAME_MAX + 16];
	char *txts[MTA_STS_TXT_MAX];
	struct dns_records *t;
	size_t n = 0;
	int rc = -1;

	snprintf(q, sizeof q, "_mta-sts.%s", domain);
	dns_txt_lookup(dns, q, &t);
	/* A record holding a NUL is no text record of ours. */
	for (size_t i = 0; i < t->n && n < MTA_STS_TXT_MAX; i++)
		if (t->rr[i].text != NULL && strlen(t->rr[i].text) == t->rr[i].textlen)
			txts[n++] = t->rr[i].text;
	if (t->status == DNS_REC_TEMP || t->status == DNS_REC_BAD_NAME)
		str_format(why, whysize, "%s TXT lookup failed: %s", q, t->detail);
	else if (t->status != DNS_REC_DATA)
		str_format(why, whysize, "no %s TXT record", q);
	else if ((rc = mta_sts_txt_select(txts, n, id)) != 0)
		str_format(why, whysize, "no single valid STSv1 record at %s", q);
	dns_records_free(&t);
	return rc;
}

/* Fetches and parses; on success *fresh holds the new policy. */
static void
fetch_policy(const struct mta_sts_env *env, const char *domain, const char *id,
    int64_t now, struct mta_sts_state *out, struct mta_sts_state *fresh)
{
	struct buf body;
	char why[200];
	enum mta_sts_fetch_status st;
	size_t max = env->fetch.max_size ? env->fetch.max_size : MTA_STS_POLICY_MAX;

	buf_init(&body, max);
	out->fetch_tried = 1;
	st = mta_sts_fetch(env->resolver, domain, &env->fetch, &body, why, sizeof why);
	if (st != MTA_STS_FETCH_OK) {
		out->failure = st == MTA_STS_FETCH_TLS ? MTA_STS_FAIL_WEBPKI :
		    MTA_STS_FAIL_FETCH;
		str_format(out->detail, sizeof out->detail, "policy fetch failed: %s", why);
	} else if (mta_sts_policy_parse(body.data ? body.data : "", body.len,
	    &fresh->policy, why, sizeof why) != 0) {
		out->failure = MTA_STS_FAIL_INVALID;
		str_format(out->detail, sizeof out->detail, "invalid policy: %s", why);
	} else {
		fresh->have = 1;
		str_copy(fresh->id, id, sizeof fresh->id);
		fresh->fetched = now;
		fresh->expires = now + (int64_t)fresh->policy.max_age;
		fresh->text = buf_steal(&body, NULL);
		if (fresh->text == NULL)
			fresh->text = xstrdup("");
	}
	buf_free(&body);
}

void
mta_sts_cache_lookup(const struct mta_sts_env *env, const char *domain,
    int64_t now, struct mta_sts_state *out)
{
	char name[DNS_NAME_MAX], id[MTA_STS_ID_MAX + 1], why[300] = "";
	struct mta_sts_state cached, fresh;
	int valid, have_id;

	memset(out, 0, sizeof *out);
	memset(&fresh, 0, sizeof fresh);
	if (dns_name_normalize(domain, name, sizeof name) != 0) {
		str_format(out->detail, sizeof out->detail, "invalid domain");
		return;
	}
	valid = mta_sts_cache_get(env->store, name, &cached) == 0 &&
	    now < cached.expires;
	have_id = txt_id(env->resolver, name, id, why, sizeof why) == 0;
	if (have_id && (!valid || strcmp(id, cached.id) != 0 ||
	    now - cached.fetched >= MTA_STS_REFRESH_S)) {
		if (env->no_fetch) {
			str_format(why, sizeof why, "policy %s not fetched yet", id);
		} else if (!failed_recent(env->failed, name, id, now, out)) {
			fetch_policy(env, name, id, now, out, &fresh);
			failed_note(env->failed, name, id, now, out);
		}
	}
	if (fresh.have) {
		if (env->store != NULL)
			cache_put(env->store, name, &fresh);
		fresh.fetch_tried = 1;
		str_format(fresh.detail, sizeof fresh.detail, "policy %s fetched", id);
		mta_sts_state_clear(&cached);
		*out = fresh;
		return;
	}
	if (valid) {
		enum mta_sts_failure f = out->failure;
		int tried = out->fetch_tried;
		char detail[sizeof out->detail];
		str_format(detail, sizeof detail, "cached policy %s%s%s", cached.id,
		    out->detail[0] || why[0] ? " used; " : "",
		    out->detail[0] ? out->detail : why);
		*out = cached;
		out->from_cache = 1;
		out->failure = f;
		out->fetch_tried = tried;
		str_copy(out->detail, detail, sizeof out->detail);
		return;
	}
	mta_sts_state_clear(&cached);
	if (out->detail[0] == '\0')
		str_format(out->detail, sizeof out->detail, "no policy: %s",
		    why[0] ? why : "cached policy expired");
}
