/*
 * selftest_records: the DNS records that our own keys, policy and
 * certificate need: DKIM selectors, MTA-STS, TLSA (selftest.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "auth/dkim.h"
#include "auth/taglist.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "relay/mta_sts.h"
#include "relay/mta_sts_fetch.h"
#include "relay/tls_dane.h"
#include "server/selftest.h"

#define DKIM_P_MAX 2048			/* base64 of an RSA 8192-bit key fits */

/* ---- DKIM selectors ---- */

/* The compact p= and the k= (default rsa) of a DKIM key record; -1 when
 * it is not one (why says so). */
static int
dkim_record_key(const char *txt, size_t len, char *p, size_t psize, char *k,
    size_t ksize, char *why, size_t whysize)
{
	struct taglist tl;
	const struct tag *t;

	if (taglist_parse(txt, len, 0, &tl, why, whysize) < 0)
		return -1;
	if ((t = taglist_get(&tl, "v")) != NULL && !tag_value_is(t, "DKIM1", 0)) {
		snprintf(why, whysize, "v= is not DKIM1");
		return -1;
	}
	if ((t = taglist_get(&tl, "p")) == NULL) {
		snprintf(why, whysize, "no p= tag");
		return -1;
	}
	if (tag_value_compact(t, p, psize) < 0) {
		snprintf(why, whysize, "p= too long");
		return -1;
	}
	t = taglist_get(&tl, "k");
	if (t == NULL)
		str_copy(k, "rsa", ksize);
	else if ((size_t)snprintf(k, ksize, "%.*s", (int)t->valuelen, t->value) >= ksize)
		k[0] = '\0';
	return 0;
}

/* One dkim_sign key: SELECTOR._domainkey.DOMAIN publishes it. */
static void
selftest_dkim_key(const struct config_dkim_sign *ks, struct dns_resolver *r,
    struct selftest_report *rep)
{
	char name[300], err[256], fix[1024], why[128];
	char ours_p[DKIM_P_MAX], ours_k[16], p[DKIM_P_MAX], k[16];
	struct dkim_key *key = NULL;
	struct dns_records *res;
	struct buf txt;
	int st, records = 0, revoked = 0, malformed = 0;

	snprintf(name, sizeof name, "%s._domainkey.%s", ks->selector, ks->domain);
	if (dkim_key_load(ks->key_file, ks->domain, ks->selector, &key, err, sizeof err) < 0) {
		selftest_add(rep, "dns_dkim", name, SELFTEST_FAIL,
		    "check dkim_sign (mailserver -t) and run selftest as the daemon's user",
		    "%s", err);
		return;
	}
	buf_init(&txt, 4096);
	if (dkim_key_txt_record(key, &txt) < 0 ||
	    dkim_record_key(txt.data, txt.len, ours_p, sizeof ours_p, ours_k, sizeof ours_k,
	    why, sizeof why) < 0) {
		selftest_add(rep, "dns_dkim", name, SELFTEST_FAIL, NULL,
		    "the public key of %s cannot be written", ks->key_file);
		goto out;
	}
	snprintf(fix, sizeof fix, "publish \"%s. TXT \\\"%s\\\"\"", name, txt.data);
	st = dns_txt_lookup(r, name, &res);
	for (size_t i = 0; st == DNS_REC_DATA && i < res->n; i++) {
		const struct dns_record *rr = &res->rr[i];

		records++;
		if (dkim_record_key(rr->text, rr->textlen, p, sizeof p, k, sizeof k, why,
		    sizeof why) < 0) {
			malformed++;
			continue;
		}
		if (p[0] == '\0') {
			revoked++;
			continue;
		}
		if (strcmp(p, ours_p) == 0 && strcasecmp(k, ours_k) == 0) {
			selftest_add(rep, "dns_dkim", name, SELFTEST_PASS, NULL,
			    "k=%s p= is the key of %s", ours_k, ks->key_file);
			dns_records_free(&res);
			goto out;
		}
	}
	if (st == DNS_REC_TEMP || st == DNS_REC_BAD_NAME)
		selftest_add(rep, "dns_dkim", name, SELFTEST_FAIL, "check dns_server",
		    "the TXT lookup failed: %s", res->detail);
	else if (records == 0)
		selftest_add(rep, "dns_dkim", name, SELFTEST_FAIL, fix,
		    "no DKIM key record: verifiers find no key for s=%s", ks->selector);
	else if (revoked > 0 && revoked + malformed == records)
		selftest_add(rep, "dns_dkim", name, SELFTEST_FAIL, fix,
		    "the key is revoked (empty p=)");
	else if (malformed == records)
		selftest_add(rep, "dns_dkim", name, SELFTEST_FAIL, fix,
		    "not a DKIM key record: %s", why);
	else
		selftest_add(rep, "dns_dkim", name, SELFTEST_FAIL, fix,
		    "p= is not the key of %s (another or an old key is published)",
		    ks->key_file);
	dns_records_free(&res);
out:
	buf_free(&txt);
	dkim_key_free(&key);
}

void
selftest_dkim(const struct config *cfg, struct dns_resolver *r, struct selftest_report *rep)
{
	for (size_t i = 0; i < cfg->ndkim_sign; i++)
		selftest_dkim_key(&cfg->dkim_sign[i], r, rep);
}

/* ---- MTA-STS ---- */

/* The MX hosts of mx that p does not list, joined into out. */
static size_t
mta_sts_unlisted(const struct mta_sts_policy *p, const struct dns_records *mx,
    const char *hostname, char *out, size_t outsize)
{
	/* No MX found: the one that should be there, ours. */
	int have_mx = mx->status == DNS_REC_DATA && mx->n > 0;
	size_t n = 0, used = 0, nhosts = have_mx ? mx->n : 1;

	out[0] = '\0';
	for (size_t i = 0; i < nhosts; i++) {
		const char *host = have_mx ? mx->rr[i].name : hostname;

		if (host == NULL || host[0] == '\0' || mta_sts_mx_match(p, host))
			continue;
		if (used < outsize)
			used += (size_t)snprintf(out + used, outsize - used, "%s%s",
			    n ? ", " : "", host);
		n++;
	}
	return n;
}

void
selftest_mta_sts(const struct config *cfg, struct dns_resolver *r, const char *domain,
    const struct dns_records *mx, struct selftest_report *rep)
{
	struct mta_sts_fetch_opts o = {
		.ca_file = cfg->mta_sts_ca_file,
		.port = cfg->mta_sts_port,
		.timeout_ms = SELFTEST_TIMEOUT_MS,
	};
	char name[300], id[MTA_STS_ID_MAX + 1], why[256], fix[512], missing[200];
	char *txts[16];
	struct mta_sts_policy policy;
	struct dns_records *res;
	struct buf body;
	size_t ntxt = 0, unlisted;
	int st;

	snprintf(name, sizeof name, "_mta-sts.%s", domain);
	st = dns_txt_lookup(r, name, &res);
	if (st == DNS_REC_TEMP || st == DNS_REC_BAD_NAME) {
		selftest_add(rep, "dns_mta_sts", domain, SELFTEST_FAIL, "check dns_server",
		    "the TXT lookup of %s failed: %s", name, res->detail);
		dns_records_free(&res);
		return;
	}
	for (size_t i = 0; st == DNS_REC_DATA && i < res->n && ntxt < 16; i++)
		if (strncmp(res->rr[i].text, "v=STSv1", 7) == 0)
			txts[ntxt++] = res->rr[i].text;
	if (ntxt == 0) {
		selftest_add(rep, "dns_mta_sts", domain, SELFTEST_SKIP, NULL,
		    "no %s record: MTA-STS not published", name);
		dns_records_free(&res);
		return;
	}
	snprintf(fix, sizeof fix, "publish one \"%.200s. TXT \\\"v=STSv1; id=YYYYMMDDnn\\\"\"",
	    name);
	if (mta_sts_txt_select(txts, ntxt, id) < 0) {
		if (ntxt > 1)
			selftest_add(rep, "dns_mta_sts", domain, SELFTEST_FAIL, fix,
			    "%zu STSv1 records at %s (RFC 8461 3.1: exactly one)", ntxt, name);
		else
			selftest_add(rep, "dns_mta_sts", domain, SELFTEST_FAIL, fix,
			    "the %s record is not valid: %.150s", name, txts[0]);
		dns_records_free(&res);
		return;
	}
	dns_records_free(&res);

	buf_init(&body, MTA_STS_POLICY_MAX);
	snprintf(fix, sizeof fix, "serve the policy at https://mta-sts.%.150s/.well-known/"
	    "mta-sts.txt (text/plain, a certificate valid for mta-sts.%.150s)", domain, domain);
	if (mta_sts_fetch(r, domain, &o, &body, why, sizeof why) != MTA_STS_FETCH_OK) {
		selftest_add(rep, "dns_mta_sts", domain, SELFTEST_FAIL, fix,
		    "id=%s, but the policy cannot be fetched: %s", id, why);
	} else if (mta_sts_policy_parse(body.data, body.len, &policy, why, sizeof why) < 0) {
		selftest_add(rep, "dns_mta_sts", domain, SELFTEST_FAIL,
		    "write version: STSv1, mode, max_age and mx lines (RFC 8461 3.2), then "
		    "change the id", "the policy is not valid: %s", why);
	} else if (policy.mode == MTA_STS_MODE_NONE) {
		selftest_add(rep, "dns_mta_sts", domain, SELFTEST_PASS, NULL,
		    "id=%s, mode none: senders do not use the policy", id);
	} else if ((unlisted = mta_sts_unlisted(&policy, mx, cfg->hostname, missing,
	    sizeof missing)) > 0) {
		snprintf(fix, sizeof fix, "add \"mx: %s\" to the policy, then change the id "
		    "of %s", missing, name);
		selftest_add(rep, "dns_mta_sts", domain, SELFTEST_FAIL, fix,
		    "mode %s, but the policy does not list the MX host%s %s: senders %s",
		    mta_sts_mode_str(policy.mode), unlisted > 1 ? "s" : "", missing,
		    policy.mode == MTA_STS_MODE_ENFORCE ? "refuse to deliver there" :
		    "report failures");
	} else {
		selftest_add(rep, "dns_mta_sts", domain, SELFTEST_PASS, NULL,
		    "id=%s, mode %s, max_age %u, every MX host listed", id,
		    mta_sts_mode_str(policy.mode), (unsigned)policy.max_age);
	}
	buf_free(&body);
}

/* ---- TLSA ---- */

/* "3 1 1 HEX": a DANE-EE record of the SHA-256 of cert's public key;
 * "" when it cannot be made. */
static void
tlsa_record_of(const gnutls_datum_t *cert, char *out, size_t outsize)
{
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t spki = { NULL, 0 };
	unsigned char hash[32];
	size_t used;

	out[0] = '\0';
	if (gnutls_pubkey_init(&pub) < 0)
		return;
	if (gnutls_pubkey_import_x509_raw(pub, cert, GNUTLS_X509_FMT_DER, 0) == 0 &&
	    gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki) == 0 &&
	    gnutls_hash_fast(GNUTLS_DIG_SHA256, spki.data, spki.size, hash) == 0) {
		used = (size_t)snprintf(out, outsize, "3 1 1 ");
		for (size_t i = 0; i < sizeof hash && used + 2 < outsize; i++)
			used += (size_t)snprintf(out + used, outsize - used, "%02x", hash[i]);
	}
	gnutls_free(spki.data);
	gnutls_pubkey_deinit(pub);
}

/* The listener whose certificate the MX name stands for: the first smtp
 * one (port 25 in production), or NULL. */
static const struct listen_spec *
tlsa_listener(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->nlistens; i++)
		if (cfg->listens[i].kind == LISTEN_SMTP)
			return &cfg->listens[i];
	return NULL;
}

void
selftest_tlsa(const struct config *cfg, struct dns_resolver *r, struct selftest_report *rep)
{
	const struct listen_spec *ls = tlsa_listener(cfg);
	const char *names[1] = { cfg->hostname };
	char target[96], err[256], ours[80], fix[512], first[160];
	struct dns_tlsa_result *res;
	gnutls_datum_t *chain = NULL;
	unsigned nchain = 0;
	struct tls_dane *dane;
	enum tls_dane_result dr;

	snprintf(target, sizeof target, "_25._tcp.%.80s", cfg->hostname);
	dns_tlsa_lookup(r, cfg->hostname, 25, &res);
	if (res->kind == DNS_SEC_FAIL) {
		selftest_add(rep, "dns_tlsa", target, SELFTEST_FAIL, "check dns_server",
		    "the TLSA lookup failed: %s", res->detail);
		goto out;
	}
	if (res->kind != DNS_SEC_DATA || res->n == 0) {
		selftest_add(rep, "dns_tlsa", target, SELFTEST_SKIP, NULL,
		    "no TLSA records: DANE not published");
		goto out;
	}
	tls_dane_rr_text(&res->rrs[0], first, sizeof first);
	if (ls == NULL) {
		selftest_add(rep, "dns_tlsa", target, SELFTEST_SKIP, NULL,
		    "no smtp listener shows a certificate to match");
		goto out;
	}
	if (selftest_peer_chain(ls, &chain, &nchain, err, sizeof err) < 0) {
		selftest_add(rep, "dns_tlsa", target, SELFTEST_FAIL,
		    "give the smtp listener STARTTLS (tls_cert_file, tls_key_file), or "
		    "remove the TLSA records", "TLSA records are published (%s), but our "
		    "certificate cannot be read: %s", first, err);
		goto out;
	}
	tlsa_record_of(&chain[0], ours, sizeof ours);
	snprintf(fix, sizeof fix, "publish \"%s. TLSA %s\" (our certificate's key), and "
	    "remove records that match no key in use once their TTL passed", target, ours);
	if (res->state != DNS_SEC_SECURE) {
		selftest_add(rep, "dns_tlsa", target, SELFTEST_FAIL,
		    "sign the zone with DNSSEC (and let dns_server validate): senders use "
		    "TLSA records only from a validated answer",
		    "%zu TLSA records, not DNSSEC-validated", res->n);
		goto out;
	}
	if (tls_dane_usable(res->rrs, res->n) == 0) {
		selftest_add(rep, "dns_tlsa", target, SELFTEST_FAIL, fix,
		    "no usable TLSA record for SMTP (only DANE-TA(2) and DANE-EE(3) "
		    "count, RFC 7672 3.1): %s", first);
		goto out;
	}
	if ((dane = tls_dane_new(err, sizeof err)) == NULL) {
		selftest_add(rep, "dns_tlsa", target, SELFTEST_FAIL, NULL, "%s", err);
		goto out;
	}
	dr = tls_dane_check(dane, chain, nchain, res->rrs, res->n, names, 1, err,
	    sizeof err);
	tls_dane_free(&dane);
	if (dr == TLS_DANE_MATCH_EE || dr == TLS_DANE_MATCH_TA)
		selftest_add(rep, "dns_tlsa", target, SELFTEST_PASS, NULL,
		    "%s: the certificate of %s matches (%zu records)", tls_dane_result_str(dr),
		    ls->text, res->n);
	else
		selftest_add(rep, "dns_tlsa", target, SELFTEST_FAIL, fix,
		    "the certificate of %s matches no TLSA record (%s): DANE senders "
		    "will not deliver", ls->text, err);
out:
	selftest_chain_free(chain, nchain);
	dns_tlsa_result_free(&res);
}
