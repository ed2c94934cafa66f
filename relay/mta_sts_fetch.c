/*
 * mta_sts_fetch: the MTA-STS policy fetch over HTTPS with libcurl
 * (relay/mta_sts_fetch.h).
 */
#include "relay/mta_sts_fetch.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/util.h"
#include "relay/mta_sts.h"

#define FETCH_TIMEOUT_MS 30000

int
mta_sts_fetch_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

const char *
mta_sts_fetch_status_str(enum mta_sts_fetch_status st)
{
	switch (st) {
	case MTA_STS_FETCH_OK: return "ok";
	case MTA_STS_FETCH_DNS: return "no address for the policy host";
	case MTA_STS_FETCH_TLS: return "policy host certificate not valid";
	default: return "policy fetch failed";
	}
}

struct sink {
	struct buf *body;
	size_t max;
	int too_big;
};

static size_t
sink_write(char *p, size_t size, size_t n, void *ctx)
{
	struct sink *s = ctx;
	size_t len = size * n;

	if (s->body->len + len > s->max || buf_append(s->body, p, len) != 0) {
		s->too_big = 1;
		return 0;	/* libcurl stops with CURLE_WRITE_ERROR */
	}
	return len;
}

/* Refuses every name lookup libcurl would start itself. */
static int
no_resolver(void *resolver_state, void *reserved, void *ctx)
{
	(void)resolver_state;
	(void)reserved;
	(void)ctx;
	return 1;
}

/* "host:port:a1,[a2],..." for CURLOPT_RESOLVE; 0 or -1. */
static int
resolve_entry(const char *host, uint16_t port, const struct dns_addr_result *a,
    struct buf *out)
{
	if (buf_printf(out, "%s:%u:", host, port) != 0)
		return -1;
	for (size_t i = 0; i < a->naddrs; i++)
		if (buf_printf(out, a->addrs[i].family == AF_INET6 ? "%s[%s]" : "%s%s",
		    i ? "," : "", a->addrs[i].text) != 0)
			return -1;
	return 0;
}

static int
is_text_plain(const char *ct)
{
	if (ct == NULL || strncasecmp(ct, "text/plain", 10) != 0)
		return 0;
	return ct[10] == '\0' || ct[10] == ';' || ct[10] == ' ';
}

static enum mta_sts_fetch_status
curl_status(CURLcode rc)
{
	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		return MTA_STS_FETCH_TLS;
	default:
		return MTA_STS_FETCH_HTTP;
	}
}

enum mta_sts_fetch_status
mta_sts_fetch(struct dns_resolver *r, const char *domain,
    const struct mta_sts_fetch_opts *o, struct buf *body, char *why,
    size_t whysize)
{
	char name[DNS_NAME_MAX], host[DNS_NAME_MAX + 8], url[DNS_NAME_MAX + 64];
	char cerr[CURL_ERROR_SIZE] = "";
	struct dns_addr_result *addrs = NULL;
	struct curl_slist *resolve = NULL;
	struct buf entry;
	struct sink sink;
	uint16_t port = o && o->port ? o->port : 443;
	unsigned timeout = o && o->timeout_ms ? o->timeout_ms : FETCH_TIMEOUT_MS;
	enum mta_sts_fetch_status st = MTA_STS_FETCH_HTTP;
	long code = 0;
	char *ct = NULL;
	CURLcode rc;
	CURL *c;

	buf_reset(body);
	if (whysize > 0)
		why[0] = '\0';
	if (dns_name_normalize(domain, name, sizeof name) != 0 ||
	    snprintf(host, sizeof host, "mta-sts.%s", name) >= (int)sizeof host ||
	    strlen(host) > 253) {
		snprintf(why, whysize, "invalid domain");
		return MTA_STS_FETCH_DNS;
	}
	if (dns_addr_lookup(r, host, &addrs) != DNS_OK) {
		snprintf(why, whysize, "%s", addrs->detail);
		dns_addr_result_free(&addrs);
		return MTA_STS_FETCH_DNS;
	}
	buf_init(&entry, 4096);
	if (resolve_entry(host, port, addrs, &entry) != 0)
		abort();	/* 16 addresses fit */
	dns_addr_result_free(&addrs);
	if (port == 443)
		snprintf(url, sizeof url, "https://%s/.well-known/mta-sts.txt", host);
	else
		snprintf(url, sizeof url, "https://%s:%u/.well-known/mta-sts.txt",
		    host, port);
	sink.body = body;
	sink.max = o && o->max_size ? o->max_size : MTA_STS_POLICY_MAX;
	sink.too_big = 0;
	if ((c = curl_easy_init()) == NULL)
		abort();
	resolve = curl_slist_append(NULL, entry.data);
	if (resolve == NULL)
		abort();
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
	curl_easy_setopt(c, CURLOPT_RESOLVER_START_FUNCTION, no_resolver);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (o && o->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)sink.max);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "mailserver MTA-STS");
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
		if (code != 200)
			snprintf(why, whysize, "%s: HTTP status %ld", host, code);
		else if (!is_text_plain(ct))
			snprintf(why, whysize, "%s: media type %.40s, not text/plain",
			    host, ct ? ct : "(none)");
		else
			st = MTA_STS_FETCH_OK;
	} else if (sink.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
		snprintf(why, whysize, "%s: policy larger than %zu bytes", host,
		    sink.max);
	} else {
		st = curl_status(rc);
		snprintf(why, whysize, "%s: %s", host, cerr[0] ? cerr :
		    curl_easy_strerror(rc));
	}
	log_debug("mta-sts: GET %s: %s%s%s", url, mta_sts_fetch_status_str(st),
	    why[0] ? ": " : "", why);
	curl_easy_cleanup(c);
	curl_slist_free_all(resolve);
	buf_free(&entry);
	if (st != MTA_STS_FETCH_OK)
		buf_reset(body);
	return st;
}
