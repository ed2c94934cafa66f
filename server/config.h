/*
 * config: mailserver.conf, parsed and validated into an immutable,
 * reference-counted struct config.
 *
 * Syntax (CONTRACT.md): `key = value` per line, `#` starts a comment,
 * lists separated by spaces or commas, `listen` (and `dns_server`) may
 * repeat. Sizes take K, M, G (powers of 1024); durations take s, m, h, d
 * (a bare number is seconds). Every problem is reported as
 * `FILE:LINE: message` (FILE as given), and loading fails if there was any.
 *
 * A loaded config never changes. SIGHUP loads a new one and swaps it in;
 * holders of the old one keep it alive with config_ref/config_unref.
 *
 * Threads: config_load may run on any thread; a loaded config may be read
 * from any thread without locks. config_ref/unref are atomic.
 */
#ifndef SERVER_CONFIG_H
#define SERVER_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "lib/netaddr.h"

struct dnsbl_zone;

enum listen_kind { LISTEN_SMTP, LISTEN_SUBMISSION, LISTEN_SMTPS };
/* Outbound TLS levels, in the order of enum tls_level (relay/tls_policy_map.h). */
enum tls_outbound { TLS_OUT_NONE, TLS_OUT_MAY, TLS_OUT_ENCRYPT, TLS_OUT_VERIFY,
	TLS_OUT_DANE, TLS_OUT_DANE_ONLY };

struct listen_spec {
	struct sockaddr_storage sa;	/* address and port to bind */
	socklen_t salen;
	enum listen_kind kind;
	char text[80];			/* as written, e.g. "[::1]:2525" */
};

/* A host and port: "[host]:port", "host:port" or "host" (port default). */
struct hostport {
	char host[256];
	uint16_t port;
};

/* An LMTP server (RFC 2033): "lmtp:unix:/path" or "lmtp:[ADDR]:PORT"
 * (an IP literal; port 24 by default). */
struct lmtp_target {
	int on;				/* 0: not LMTP */
	char unix_path[108];		/* "" for TCP */
	struct hostport tcp;		/* TCP: the literal, without brackets */
};

struct route {
	char domain[256];		/* lower case */
	struct hostport dest;		/* SMTP (lmtp.on == 0) */
	struct lmtp_target lmtp;	/* routes = domain=lmtp:... */
};

/* When the policy services are asked (policy_stages). */
#define CONFIG_POLICY_RCPT	0x1	/* each RCPT TO */
#define CONFIG_POLICY_EOM	0x2	/* the end of data (END-OF-MESSAGE) */

struct config {
	char *path;			/* the file as given */
	char hostname[256];
	struct listen_spec *listens;
	size_t nlistens;
	char *queue_dir;
	char *mail_dir;
	struct lmtp_target local_transport;	/* local_domains over LMTP;
					 * .on == 0: Maildirs in mail_dir */
	char **local_domains;		/* lower case */
	size_t nlocal_domains;
	char *users_file;		/* NULL when unset */
	char *aliases_file;		/* NULL when unset */
	struct cidr *relay_networks;
	size_t nrelay_networks;
	char **relay_domains;		/* lower case */
	size_t nrelay_domains;
	struct route *routes;
	size_t nroutes;
	int has_relayhost;
	struct hostport relayhost;	/* valid when has_relayhost */
	struct hostport *dns_servers;	/* port defaults to 53; none = resolv.conf */
	size_t ndns_servers;
	uint16_t smtp_port;
	int session_workers;		/* resolved: never 0 after load */
	int delivery_threads;
	unsigned max_connections;
	unsigned max_connections_per_ip;
	size_t max_message_size;
	unsigned max_recipients;
	char *tls_cert_file;		/* NULL when unset */
	char *tls_key_file;
	enum tls_outbound tls_outbound;
	unsigned retry_min;		/* seconds */
	unsigned retry_max;
	unsigned queue_lifetime;
	unsigned delay_warning;		/* 0 = off */
	unsigned shutdown_timeout;
	char *log_file;			/* NULL = stderr, or a path, or "syslog" */
	int log_level;			/* enum log_level */
	char *user;			/* NULL when unset */

	/* Keys beyond the CONTRACT table (documented in README.md). */
	size_t queue_map_size;		/* LMDB map size, default 8G */
	unsigned command_timeout;	/* inbound, waiting for a command: 5m */
	unsigned data_timeout;		/* inbound, between DATA blocks: 3m */
	unsigned max_errors;		/* bad commands before 421: 10 */
	unsigned greeting_delay;	/* pause before the 220 to catch clients
					 * that talk first: 0 (off) */
	unsigned connect_timeout;	/* outbound TCP connect: 30s */
	unsigned relay_command_timeout;	/* outbound replies to commands: 5m */
	unsigned relay_data_timeout;	/* outbound reply after end of data: 10m */
	unsigned max_per_destination;	/* outbound concurrent connections per domain: 20 */
	unsigned relay_attempt_timeout;	/* one outbound attempt, all MX hosts: 30m */
	unsigned dns_timeout;		/* one DNS query to one server: 2s */
	unsigned dns_attempts;		/* rounds over the DNS servers: 2 */
	size_t queue_map_max;		/* the LMDB map grows up to this: 64G
					 * (never below queue_map_size) */

	/* Inbound hardening (README "Configuration"). */
	struct cidr *auth_plaintext_networks;	/* AUTH without TLS from these: none */
	size_t nauth_plaintext_networks;
	unsigned auth_fail_delay;	/* answer to a first failed login waits: 1s */
	unsigned auth_fail_limit;	/* failed logins per address that block it: 10 */
	unsigned auth_block_time;	/* how long: 10m */
	char **auth_any_sender;		/* accounts that may send as anyone: none */
	size_t nauth_any_sender;
	size_t min_data_rate;		/* bytes/s a message averages after
					 * data_timeout: 1K (0 = off) */
	unsigned max_junk_commands;	/* NOOP, RSET... without mail: 100 */
	unsigned max_unknown_recipients; /* refused RCPTs before 421: 20 */
	char *tls_priority;		/* GnuTLS priority string; NULL: tls.h default */
	unsigned client_dns_timeout;	/* client name lookups, and the wait
					 * for them at DATA: 5s (0 = none) */

	/* Outbound TLS (README "Outbound TLS"). */
	char *tls_policy_file;		/* tls_policy: per-domain levels; NULL */
	char *tls_ca_file;		/* verify's trust anchors; NULL: system */
	int mta_sts;			/* the dane level uses MTA-STS: 1 */
	char *mta_sts_ca_file;		/* policy hosts' trust anchors; NULL: system */
	uint16_t mta_sts_port;		/* of the policy hosts: 443 */
	unsigned tls_report_keep;	/* TLS report counters kept: 14d */
	int tls_report_send;		/* mail daily reports to rua: 0 */
	char tls_report_from[320];	/* their sender: postmaster@hostname */
	/* Filter daemons (README "Filter daemons"). */
	char *auth_dovecot;		/* auth_service = dovecot:ENDPOINT: the
					 * endpoint ("unix:/path", "inet:h:p");
					 * NULL: users_file checks passwords */
	unsigned auth_service_timeout;	/* each wait on Dovecot: 30s */
	char **policy_services;		/* endpoints, asked in order: none */
	size_t npolicy_services;
	char *policy_default_action;	/* service down or broken: Postfix's
					 * "451 4.3.5 Server configuration problem" */
	unsigned policy_timeout;	/* request to answer: 100s */
	unsigned policy_stages;		/* CONFIG_POLICY_* bits: RCPT */
	struct config_milter {
		char *endpoint;		/* "unix:/path", "inet:host:port" */
		int default_action;	/* enum milter_default; -1: the key's */
		unsigned connect_timeout, command_timeout, eom_timeout;
					/* seconds; 0: the milter_* keys' */
	} *milters;			/* milters, applied in order: none */
	size_t nmilters;
	int milter_default_action;	/* enum milter_default: tempfail */
	unsigned milter_connect_timeout;	/* 30s */
	unsigned milter_command_timeout;	/* 30s */
	unsigned milter_eom_timeout;		/* the end of the message: 5m */
	/* Bounded memory (DESIGN.md, the queue). */
	size_t max_inflight_data;	/* message buffers of every session
					 * together: 256M; over it a new
					 * DATA/BDAT gets 451 4.3.2 */

	/* Mail authentication (README "Mail authentication"). */
	int auth_checks;		/* SPF, DKIM and DMARC on mail from
					 * outside (not relay_networks, not
					 * authenticated): yes */
	char authserv_id[256];		/* in Authentication-Results: hostname */
	int spf_reject;			/* SPF fail: 550 at MAIL FROM: yes */
	int dmarc_reject;		/* DMARC reject: 550 at the end: yes */
	int auth_tempfail_defer;	/* auth_tempfail = defer: 451; accept */
	struct config_dkim_sign {
		char *domain, *selector, *key_file;
	} *dkim_sign;			/* signing keys: none */
	size_t ndkim_sign;
	/* Operations and abuse control (README "Operations"). */
	char *metrics_listen;		/* "ADDR:PORT" of the metrics endpoint; NULL: off */
	unsigned rate_window;		/* seconds of the client rates: 1m */
	unsigned max_connection_rate;	/* per client and rate_window: 0 (off) */
	unsigned max_message_rate;	/* MAILs per client and rate_window: 0 */
	unsigned max_recipient_rate;	/* RCPTs per client and rate_window: 0 */
	unsigned max_unknown_recipient_rate; /* 550 5.1.1 per client and window: 0 */
	unsigned account_max_messages;	/* per authenticated account and day: 1000 */
	unsigned account_max_recipients; /* distinct, per account and day: 1000 */
	struct dnsbl_zone *dnsbl;	/* lists asked at connect: none */
	size_t ndnsbl;
	int dnsbl_threshold;		/* refuse at this score: 1 */
	unsigned pregreet_ttl;		/* a client that waited for the greeting
					 * is not delayed again for: 1d */
	char **hold_senders;		/* hold rules (server/hold.h), lower case: */
	size_t nhold_senders;		/* user@domain, @domain or <> */
	char **hold_recipients;
	size_t nhold_recipients;
	struct cidr *hold_clients;
	size_t nhold_clients;
	char **hold_users;		/* accounts, lower case */
	size_t nhold_users;
	unsigned hold_new_accounts;	/* seconds; 0: off */
	unsigned trace_retention;	/* a message's trace is kept this long
					 * after it left the queue: 7d */

	int refs;			/* atomic; managed by config_ref/unref */
};

/*
 * Reads and validates path. Problems are printed to errs (may be NULL)
 * as `path:LINE: message`, one per line. Returns a config with one
 * reference, or NULL if there was any problem (or the file cannot be read:
 * `path:0: message`). Defaults apply for absent keys (CONTRACT.md).
 */
struct config *config_load(const char *path, FILE *errs);

/* Takes another reference; returns cfg. */
struct config *config_ref(struct config *cfg);

/* Drops a reference; frees at zero and sets *cfgp to NULL. */
void config_unref(struct config **cfgp);

/* Is domain (any case) one of local_domains / relay_domains? */
int config_is_local_domain(const struct config *cfg, const char *domain);
int config_is_relay_domain(const struct config *cfg, const char *domain);

/* The local domain whose mailboxes an address literal of this server
 * stands for (user@[our address] is user@ this domain): hostname when it
 * is one of local_domains (as that entry), else the first of them, else
 * "localhost" (where a bare <postmaster> goes then too). Never NULL;
 * the string lives as long as cfg. */
const char *config_literal_domain(const struct config *cfg);

/* May this client address relay to any domain (relay_networks)? */
int config_client_may_relay(const struct config *cfg, const struct sockaddr *sa);

/* May authenticated account user (any case) use any sender address
 * (auth_any_sender)? */
int config_user_may_send_any(const struct config *cfg, const char *user);

/* May this client authenticate without TLS (auth_plaintext_networks)? */
int config_client_may_auth_plaintext(const struct config *cfg,
    const struct sockaddr *sa);

/* Parses "lmtp:unix:/path" or "lmtp:[ADDR]:PORT" into out. Returns NULL,
 * or why not. */
const char *config_parse_lmtp(const char *s, struct lmtp_target *out);

/* The route for domain (any case), or NULL. */
const struct route *config_route_for(const struct config *cfg, const char *domain);

#endif
