/*
 * selftest: `mailctl selftest [--json]` checks the running server as an
 * outsider would, and the DNS its domains need, and says how to fix each
 * failure (README "Self-test").
 *
 * The SMTP probes (selftest_smtp.c) connect to every listener of the
 * config (a wildcard address through loopback) from a loopback source
 * address that is in neither relay_networks nor auth_plaintext_networks,
 * so that the server treats the probe as a stranger; when every loopback
 * address is trusted, the probes that need a stranger are skipped. They
 * never queue a message: a probe that reaches DATA hangs up before the
 * end of the data. Checks:
 *   open_relay       a foreign recipient, also with address tricks
 *                    (source route, a second @, an address literal, a
 *                    trailing dot), must be refused;
 *   smtp_smuggling   a bare-LF or bare-CR end of data ("\n.\n", "\r\n.\n",
 *                    "\n.\r\n", "\r.\r\n", "\r\n.\r") must not end the data;
 *   starttls_inject  commands sent after STARTTLS in the same packet must
 *                    not be answered inside TLS;
 *   auth_plaintext   AUTH must not be offered before TLS;
 *   tls_version      TLS 1.0 and 1.1 must be refused;
 *   tls_cert         the certificate must be valid for 14 days more.
 * The config is checked for networks that trust everybody (relay_networks,
 * auth_plaintext_networks holding a stranger's address).
 * The DNS checks (selftest.c), per local domain, through dns_server: an
 * MX naming our hostname, one SPF record, a DMARC record. The records of
 * our keys, policy and certificate (selftest_records.c):
 *   dns_dkim         per dkim_sign key: SELECTOR._domainkey.DOMAIN has a
 *                    DKIM1 TXT record whose p= (and k=) is the key's;
 *   dns_mta_sts      per local domain with an _mta-sts TXT record: the
 *                    record is valid, the policy fetched over HTTPS
 *                    (mta_sts_port, mta_sts_ca_file) parses and lists
 *                    every MX host of the domain (skip: no record);
 *   dns_tlsa         _25._tcp.HOSTNAME: when TLSA records exist, they
 *                    come from a DNSSEC-validated answer and match the
 *                    certificate our first smtp listener shows (GnuTLS
 *                    DANE, as relay/tls_dane; skip: no records).
 *
 * Errors: a probe that cannot connect or times out is a failure of its
 * check, with the reason. Bounded: every wait is at most
 * SELFTEST_TIMEOUT_MS.
 * Threads: one; the report is plain data.
 */
#ifndef SERVER_SELFTEST_H
#define SERVER_SELFTEST_H

#include <stddef.h>

#include <gnutls/gnutls.h>

#include "dns/dns.h"
#include "server/config.h"

#define SELFTEST_TIMEOUT_MS 3000
#define SELFTEST_QUIET_MS 1000		/* no answer within this counts as none */
#define SELFTEST_CERT_DAYS 14

enum selftest_verdict { SELFTEST_PASS, SELFTEST_FAIL, SELFTEST_SKIP };

struct selftest_result {
	char check[32];			/* "open_relay", ... */
	char target[96];		/* "127.0.0.1:25", "example.org" */
	enum selftest_verdict verdict;
	char detail[256];		/* what was seen */
	char fix[1024];			/* for a failure: what to change (a
					 * whole DKIM key record fits) */
};

struct selftest_report {
	struct selftest_result *r;
	size_t n, cap;
};

/* Adds a result (printf-style detail; fix may be NULL). */
void selftest_add(struct selftest_report *rep, const char *check, const char *target,
    enum selftest_verdict v, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* Runs every check for cfg into rep. */
void selftest_run(const struct config *cfg, struct selftest_report *rep);

/* The SMTP probes of one listener (selftest_smtp.c). */
void selftest_listener(const struct config *cfg, const struct listen_spec *ls,
    struct selftest_report *rep);

/* The certificates listener ls shows (after STARTTLS on an smtp or
 * submission listener), DER, its own first, copied into *chain_r (free
 * with selftest_chain_free). Returns 0, or -1 with err. */
int selftest_peer_chain(const struct listen_spec *ls, gnutls_datum_t **chain_r,
    unsigned *n_r, char *err, size_t errsize);
void selftest_chain_free(gnutls_datum_t *chain, unsigned n);

/* The checks of selftest_records.c (above), through r. mx is the MX
 * answer of domain (its hosts are what the policy must list). */
void selftest_dkim(const struct config *cfg, struct dns_resolver *r,
    struct selftest_report *rep);
void selftest_mta_sts(const struct config *cfg, struct dns_resolver *r,
    const char *domain, const struct dns_records *mx, struct selftest_report *rep);
void selftest_tlsa(const struct config *cfg, struct dns_resolver *r,
    struct selftest_report *rep);

/* Failures in rep. */
size_t selftest_failures(const struct selftest_report *rep);

void selftest_report_free(struct selftest_report *rep);

#endif
