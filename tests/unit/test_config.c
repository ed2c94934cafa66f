/*
 * test_config: the config parser against good and bad lines for every key
 * (each bad line must fail the load with exactly `FILE:LINE:`), defaults,
 * several errors in one file, lists, listen variants, cross-key checks,
 * the lookups, the shipped mailserver.conf, and hostile files (long lines,
 * NUL bytes, binary junk). Files are written under /tmp and removed.
 */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "server/config.h"

/* A file under /tmp holding len bytes of data; path receives its name. */
static void
write_temp(const void *data, size_t len, char *path, size_t pathsize)
{
	int fd;

	CU_ASSERT_FATAL(str_copy(path, "/tmp/test_config.XXXXXX", pathsize) == 0);
	fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(write(fd, data, len) == (ssize_t)len);
	close(fd);
}

/* Loads len bytes of config text. *errs_r gets what was printed (free it),
 * path the temporary name (already removed). */
static struct config *
load_bytes(const void *data, size_t len, char **errs_r, char *path, size_t pathsize)
{
	struct config *cfg;
	size_t errlen = 0;
	FILE *errs;

	write_temp(data, len, path, pathsize);
	*errs_r = NULL;
	errs = open_memstream(errs_r, &errlen);
	CU_ASSERT_FATAL(errs != NULL);
	cfg = config_load(path, errs);
	fclose(errs);
	unlink(path);
	return cfg;
}

static struct config *
load_text(const char *text, char **errs_r, char *path, size_t pathsize)
{
	return load_bytes(text, strlen(text), errs_r, path, pathsize);
}

/* Does errs start with "path:line: "? */
static int
starts_with_location(const char *errs, const char *path, unsigned line)
{
	char want[256];
	int n = snprintf(want, sizeof want, "%s:%u: ", path, line);

	CU_ASSERT_FATAL(n > 0 && (size_t)n < sizeof want);
	return errs != NULL && strncmp(errs, want, (size_t)n) == 0;
}

static size_t
count_lines(const char *s)
{
	size_t n = 0;

	for (; s != NULL && *s != '\0'; s++)
		if (*s == '\n')
			n++;
	return n;
}

/* Readable regular files for the TLS and users keys, made once. */
static char cert_path[64], key_path[64];

static int
suite_init(void)
{
	int fd;

	str_copy(cert_path, "/tmp/test_config_cert.XXXXXX", sizeof cert_path);
	str_copy(key_path, "/tmp/test_config_key.XXXXXX", sizeof key_path);
	if ((fd = mkstemp(cert_path)) < 0)
		return -1;
	close(fd);
	if ((fd = mkstemp(key_path)) < 0)
		return -1;
	close(fd);
	return 0;
}

static int
suite_clean(void)
{
	unlink(cert_path);
	unlink(key_path);
	return 0;
}

static void
test_defaults(void)
{
	char path[64], *errs;
	struct config *cfg = load_text("", &errs, path, sizeof path);
	const struct sockaddr_in *sin;

	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_STRING_EQUAL(errs, "");
	CU_ASSERT_STRING_EQUAL(cfg->path, path);
	CU_ASSERT(cfg->hostname[0] != '\0');
	CU_ASSERT_EQUAL_FATAL(cfg->nlistens, 1);
	sin = (const struct sockaddr_in *)&cfg->listens[0].sa;
	CU_ASSERT_EQUAL(sin->sin_family, AF_INET);
	CU_ASSERT_EQUAL(ntohs(sin->sin_port), 2525);
	CU_ASSERT_EQUAL(ntohl(sin->sin_addr.s_addr), 0x7f000001);
	CU_ASSERT_EQUAL(cfg->listens[0].salen, sizeof(struct sockaddr_in));
	CU_ASSERT_EQUAL(cfg->listens[0].kind, LISTEN_SMTP);
	CU_ASSERT_STRING_EQUAL(cfg->listens[0].text, "127.0.0.1:2525");
	CU_ASSERT_STRING_EQUAL(cfg->queue_dir, "./var/queue");
	CU_ASSERT_STRING_EQUAL(cfg->mail_dir, "./var/mail");
	CU_ASSERT_EQUAL_FATAL(cfg->nlocal_domains, 1);
	CU_ASSERT_STRING_EQUAL(cfg->local_domains[0], "localhost");
	CU_ASSERT_PTR_NULL(cfg->users_file);
	CU_ASSERT_PTR_NULL(cfg->aliases_file);
	CU_ASSERT_EQUAL(cfg->nrelay_networks, 2);
	CU_ASSERT_EQUAL(cfg->nrelay_domains, 0);
	CU_ASSERT_EQUAL(cfg->nroutes, 0);
	CU_ASSERT_EQUAL(cfg->has_relayhost, 0);
	CU_ASSERT_EQUAL(cfg->ndns_servers, 0);
	CU_ASSERT_EQUAL(cfg->smtp_port, 25);
	CU_ASSERT(cfg->session_workers >= 1 && cfg->session_workers <= 256);
	CU_ASSERT_EQUAL(cfg->delivery_threads, 32);
	CU_ASSERT_EQUAL(cfg->max_connections, 10000);
	CU_ASSERT_EQUAL(cfg->max_connections_per_ip, 50);
	CU_ASSERT_EQUAL(cfg->max_message_size, 25u * 1024 * 1024);
	CU_ASSERT_EQUAL(cfg->max_recipients, 1000);
	CU_ASSERT_EQUAL(cfg->nauth_plaintext_networks, 0);
	CU_ASSERT_EQUAL(cfg->auth_fail_delay, 1);
	CU_ASSERT_EQUAL(cfg->auth_fail_limit, 10);
	CU_ASSERT_EQUAL(cfg->auth_block_time, 600);
	CU_ASSERT_EQUAL(cfg->min_data_rate, 1024);
	CU_ASSERT_EQUAL(cfg->max_junk_commands, 100);
	CU_ASSERT_EQUAL(cfg->max_unknown_recipients, 20);
	CU_ASSERT_PTR_NULL(cfg->tls_priority);
	CU_ASSERT_EQUAL(cfg->client_dns_timeout, 5);
	CU_ASSERT_PTR_NULL(cfg->tls_cert_file);
	CU_ASSERT_PTR_NULL(cfg->tls_key_file);
	CU_ASSERT_EQUAL(cfg->tls_outbound, TLS_OUT_DANE);
	CU_ASSERT_PTR_NULL(cfg->tls_policy_file);
	CU_ASSERT_PTR_NULL(cfg->tls_ca_file);
	CU_ASSERT_PTR_NULL(cfg->mta_sts_ca_file);
	CU_ASSERT_EQUAL(cfg->mta_sts, 1);
	CU_ASSERT_EQUAL(cfg->mta_sts_port, 443);
	CU_ASSERT_EQUAL(cfg->tls_report_keep, 14 * 86400);
	CU_ASSERT_EQUAL(cfg->retry_min, 300);
	CU_ASSERT_EQUAL(cfg->retry_max, 3600);
	CU_ASSERT_EQUAL(cfg->queue_lifetime, 5 * 86400);
	CU_ASSERT_EQUAL(cfg->delay_warning, 4 * 3600);
	CU_ASSERT_EQUAL(cfg->shutdown_timeout, 30);
	CU_ASSERT_PTR_NULL(cfg->log_file);
	CU_ASSERT_EQUAL(cfg->log_level, LOG_LVL_INFO);
	CU_ASSERT_PTR_NULL(cfg->user);
	CU_ASSERT_EQUAL(cfg->queue_map_size, (size_t)8 << 30);
	CU_ASSERT_EQUAL(cfg->command_timeout, 300);
	CU_ASSERT_EQUAL(cfg->data_timeout, 180);
	CU_ASSERT_EQUAL(cfg->max_errors, 10);
	CU_ASSERT_EQUAL(cfg->connect_timeout, 30);
	CU_ASSERT_EQUAL(cfg->relay_command_timeout, 300);
	CU_ASSERT_EQUAL(cfg->relay_data_timeout, 600);
	CU_ASSERT_EQUAL(cfg->max_per_destination, 20);
	free(errs);
	config_unref(&cfg);
	CU_ASSERT_PTR_NULL(cfg);
}

/* ---- good lines: each loads, and its check sees the value ---- */

typedef int good_check(const struct config *cfg);

static int chk_hostname(const struct config *c) { return strcmp(c->hostname, "Mail-1.Example.ORG") == 0; }
static int chk_queue_dir(const struct config *c) { return strcmp(c->queue_dir, "/var/spool/ms queue") == 0; }
static int chk_mail_dir(const struct config *c) { return strcmp(c->mail_dir, "/srv/mail") == 0; }
static int chk_local_domains(const struct config *c)
{
	return c->nlocal_domains == 3 && strcmp(c->local_domains[0], "example.org") == 0 &&
	    strcmp(c->local_domains[1], "example.net") == 0 &&
	    strcmp(c->local_domains[2], "a-b.example") == 0;
}
static int chk_no_local_domains(const struct config *c) { return c->nlocal_domains == 0; }
static int chk_users_file(const struct config *c) { return strcmp(c->users_file, cert_path) == 0; }
static int chk_aliases_file(const struct config *c) { return strcmp(c->aliases_file, key_path) == 0; }
static int chk_relay_networks(const struct config *c)
{
	return c->nrelay_networks == 3 && c->relay_networks[0].family == AF_INET &&
	    c->relay_networks[0].prefix == 24 && c->relay_networks[1].family == AF_INET6 &&
	    c->relay_networks[1].prefix == 32 && c->relay_networks[2].prefix == 32;
}
static int chk_no_relay_networks(const struct config *c) { return c->nrelay_networks == 0; }
static int chk_relay_domains(const struct config *c)
{
	return c->nrelay_domains == 2 && strcmp(c->relay_domains[0], "backup.example") == 0 &&
	    strcmp(c->relay_domains[1], "gw.example") == 0;
}
static int chk_routes(const struct config *c)
{
	return c->nroutes == 4 &&
	    strcmp(c->routes[0].domain, "example.com") == 0 &&
	    strcmp(c->routes[0].dest.host, "10.0.0.2") == 0 && c->routes[0].dest.port == 2525 &&
	    strcmp(c->routes[1].dest.host, "mx.example.net") == 0 && c->routes[1].dest.port == 25 &&
	    strcmp(c->routes[2].dest.host, "relay.example") == 0 && c->routes[2].dest.port == 587 &&
	    strcmp(c->routes[3].dest.host, "2001:db8::25") == 0 && c->routes[3].dest.port == 26;
}
static int
chk_lmtp(const struct config *c)
{
	return c->local_transport.on &&
	    strcmp(c->local_transport.unix_path, "/run/dovecot/lmtp") == 0 &&
	    c->nroutes == 3 && !c->routes[0].lmtp.on &&
	    c->routes[1].lmtp.on && c->routes[1].lmtp.unix_path[0] == '\0' &&
	    strcmp(c->routes[1].lmtp.tcp.host, "127.0.0.1") == 0 &&
	    c->routes[1].lmtp.tcp.port == 24 &&
	    c->routes[2].lmtp.on && strcmp(c->routes[2].lmtp.tcp.host, "::1") == 0 &&
	    c->routes[2].lmtp.tcp.port == 2424;
}
static int chk_maildir(const struct config *c) { return !c->local_transport.on; }
static int chk_relayhost(const struct config *c)
{
	return c->has_relayhost && strcmp(c->relayhost.host, "smtp.example.org") == 0 &&
	    c->relayhost.port == 587;
}
static int chk_relayhost_bare(const struct config *c)
{
	return c->has_relayhost && strcmp(c->relayhost.host, "smarthost") == 0 &&
	    c->relayhost.port == 25;
}
static int chk_relayhost_v6(const struct config *c)
{
	return c->has_relayhost && strcmp(c->relayhost.host, "::1") == 0 && c->relayhost.port == 25;
}
static int chk_dns(const struct config *c)
{
	return c->ndns_servers == 4 &&
	    strcmp(c->dns_servers[0].host, "127.0.0.1") == 0 && c->dns_servers[0].port == 53 &&
	    strcmp(c->dns_servers[1].host, "10.0.0.1") == 0 && c->dns_servers[1].port == 5353 &&
	    strcmp(c->dns_servers[2].host, "::1") == 0 && c->dns_servers[2].port == 5300 &&
	    strcmp(c->dns_servers[3].host, "2001:db8::53") == 0 && c->dns_servers[3].port == 53;
}
static int chk_smtp_port(const struct config *c) { return c->smtp_port == 2526; }
static int chk_workers(const struct config *c) { return c->session_workers == 3; }
static int chk_workers0(const struct config *c) { return c->session_workers >= 1; }
static int chk_delivery(const struct config *c) { return c->delivery_threads == 1024; }
static int chk_maxconn(const struct config *c) { return c->max_connections == 1000000; }
static int chk_perip(const struct config *c) { return c->max_connections_per_ip == 10000; }
static int chk_size_k(const struct config *c) { return c->max_message_size == 1024; }
static int chk_size_g(const struct config *c) { return c->max_message_size == (size_t)2 << 30; }
static int chk_size_bare(const struct config *c) { return c->max_message_size == 123456; }
static int chk_rcpts(const struct config *c) { return c->max_recipients == 1; }
static int chk_tls(const struct config *c)
{
	return strcmp(c->tls_cert_file, cert_path) == 0 && strcmp(c->tls_key_file, key_path) == 0;
}
static int chk_tls_none(const struct config *c) { return c->tls_outbound == TLS_OUT_NONE; }
static int chk_tls_encrypt(const struct config *c) { return c->tls_outbound == TLS_OUT_ENCRYPT; }
static int chk_tls_verify(const struct config *c) { return c->tls_outbound == TLS_OUT_VERIFY; }
static int chk_tls_dane_only(const struct config *c) { return c->tls_outbound == TLS_OUT_DANE_ONLY; }
static int chk_tls_policy(const struct config *c)
{
	return strcmp(c->tls_policy_file, cert_path) == 0 && strcmp(c->tls_ca_file, cert_path) == 0 &&
	    strcmp(c->mta_sts_ca_file, key_path) == 0;
}
static int chk_mta_sts(const struct config *c)
{
	return c->mta_sts == 0 && c->mta_sts_port == 8443 && c->tls_report_keep == 30 * 86400;
}
static int chk_retry(const struct config *c) { return c->retry_min == 90 && c->retry_max == 2 * 3600; }
static int chk_retry_eq(const struct config *c) { return c->retry_min == 60 && c->retry_max == 60; }
static int chk_lifetime(const struct config *c) { return c->queue_lifetime == 7 * 86400; }
static int chk_delay0(const struct config *c) { return c->delay_warning == 0; }
static int chk_shutdown(const struct config *c) { return c->shutdown_timeout == 45; }
static int chk_log_file(const struct config *c) { return strcmp(c->log_file, "/var/log/ms.log") == 0; }
static int chk_syslog(const struct config *c) { return strcmp(c->log_file, "syslog") == 0; }
static int chk_debug(const struct config *c) { return c->log_level == LOG_LVL_DEBUG; }
static int chk_error(const struct config *c) { return c->log_level == LOG_LVL_ERROR; }
static int chk_user(const struct config *c) { return strcmp(c->user, "root") == 0; }
static int chk_map(const struct config *c) { return c->queue_map_size == (size_t)64 << 20; }
static int chk_timeouts(const struct config *c)
{
	return c->command_timeout == 600 && c->data_timeout == 60 && c->connect_timeout == 5 &&
	    c->relay_command_timeout == 120 && c->relay_data_timeout == 86400;
}
static int chk_max_errors(const struct config *c) { return c->max_errors == 3; }
static int chk_per_dest(const struct config *c) { return c->max_per_destination == 1; }
static int chk_comment(const struct config *c) { return c->max_recipients == 7; }
static int chk_cdns(const struct config *c) { return c->client_dns_timeout == 0; }
static int
chk_filters_default(const struct config *c)
{
	return c->auth_dovecot == NULL && c->auth_service_timeout == 30 &&
	    c->npolicy_services == 0 && c->policy_default_action == NULL &&
	    c->policy_timeout == 100 && c->policy_stages == CONFIG_POLICY_RCPT;
}
static int
chk_dovecot(const struct config *c)
{
	return c->auth_dovecot != NULL && strcmp(c->auth_dovecot, "unix:/run/dovecot/auth-client") == 0 &&
	    c->auth_service_timeout == 5;
}
static int
chk_policy(const struct config *c)
{
	return c->npolicy_services == 3 &&
	    strcmp(c->policy_services[0], "inet:127.0.0.1:10023") == 0 &&
	    strcmp(c->policy_services[1], "unix:/run/spf.sock") == 0 &&
	    strcmp(c->policy_services[2], "inet:[::1]:9998") == 0 &&
	    strcmp(c->policy_default_action, "DEFER policy down") == 0 &&
	    c->policy_timeout == 20 &&
	    c->policy_stages == (CONFIG_POLICY_RCPT | CONFIG_POLICY_EOM);
}
static int chk_policy_eom(const struct config *c) { return c->policy_stages == CONFIG_POLICY_EOM; }
static int
chk_milters_default(const struct config *c)
{
	return c->nmilters == 0 && c->milter_default_action == 1 &&
	    c->milter_connect_timeout == 30 && c->milter_command_timeout == 30 &&
	    c->milter_eom_timeout == 300;
}
static int
chk_milters(const struct config *c)
{
	return c->nmilters == 3 &&
	    strcmp(c->milters[0].endpoint, "inet:127.0.0.1:11332") == 0 &&
	    c->milters[0].default_action == 0 && c->milters[0].command_timeout == 5 &&
	    c->milters[0].eom_timeout == 0 &&
	    strcmp(c->milters[1].endpoint, "unix:/run/o.sock") == 0 &&
	    c->milters[1].default_action == -1 &&
	    strcmp(c->milters[2].endpoint, "inet:[::1]:8891") == 0 &&
	    c->milters[2].eom_timeout == 60 && c->milters[2].connect_timeout == 2 &&
	    c->milter_default_action == 2 && c->milter_command_timeout == 7;
}
static int
chk_mailauth_default(const struct config *c)
{
	return c->auth_checks == 1 && c->spf_reject == 1 && c->dmarc_reject == 1 &&
	    c->auth_tempfail_defer == 0 && c->ndkim_sign == 0 &&
	    strcmp(c->authserv_id, c->hostname) == 0;
}
static int
chk_mailauth(const struct config *c)
{
	return c->auth_checks == 0 && c->spf_reject == 0 && c->dmarc_reject == 0 &&
	    c->auth_tempfail_defer == 1 && strcmp(c->authserv_id, "auth.example.org") == 0 &&
	    c->ndkim_sign == 2 && strcmp(c->dkim_sign[1].domain, "example.org") == 0 &&
	    strcmp(c->dkim_sign[1].selector, "ed") == 0 &&
	    strcmp(c->dkim_sign[1].key_file, "/dev/null") == 0;
}
static int chk_users_file_service(const struct config *c) { return c->auth_dovecot == NULL; }
static int chk_prio(const struct config *c) { return c->tls_priority != NULL &&
    strcmp(c->tls_priority, "NORMAL:-VERS-TLS1.0") == 0; }
static int
chk_slow(const struct config *c)
{
	return c->min_data_rate == 0 && c->max_junk_commands == 7 &&
	    c->max_unknown_recipients == 1000;
}
static int
chk_auth(const struct config *c)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct sockaddr_in b = { .sin_family = AF_INET };

	a.sin_addr.s_addr = htonl(0x0a000001);
	b.sin_addr.s_addr = htonl(0x0b000001);
	return c->nauth_plaintext_networks == 2 && c->auth_fail_delay == 2 &&
	    c->nauth_any_sender == 2 && config_user_may_send_any(c, "Boss@Example.ORG") &&
	    !config_user_may_send_any(c, "boss@example.net") &&
	    c->auth_fail_limit == 0 && c->auth_block_time == 3600 &&
	    config_client_may_auth_plaintext(c, (struct sockaddr *)&a) &&
	    !config_client_may_auth_plaintext(c, (struct sockaddr *)&b);
}

static void
test_good_lines(void)
{
	/* "%C" / "%K" stand for the readable cert and key files */
	static const struct {
		const char *text;
		good_check *check;
	} cases[] = {
		{ "hostname = Mail-1.Example.ORG", chk_hostname },
		{ "queue_dir = /var/spool/ms queue", chk_queue_dir },
		{ "mail_dir=/srv/mail", chk_mail_dir },
		{ "local_domains = Example.ORG, example.net  A-B.example", chk_local_domains },
		{ "local_domains =", chk_no_local_domains },
		{ "users_file = %C", chk_users_file },
		{ "aliases_file = %K", chk_aliases_file },
		{ "relay_networks = 192.168.1.0/24,2001:db8::/32 , 10.0.0.1/32", chk_relay_networks },
		{ "relay_networks =", chk_no_relay_networks },
		{ "relay_domains = BACKUP.example,gw.example", chk_relay_domains },
		{ "routes = example.com=[10.0.0.2]:2525, Example.NET=[mx.example.net] "
		  "x.example=relay.example:587,v6.example=[2001:db8::25]:26", chk_routes },
		{ "local_transport = lmtp:unix:/run/dovecot/lmtp\n"
		  "routes = a.example=[10.0.0.2], b.example=lmtp:[127.0.0.1] "
		  "c.example=lmtp:[::1]:2424", chk_lmtp },
		{ "local_transport = maildir", chk_maildir },
		{ "max_errors = 3", chk_maildir },
		{ "relayhost = [smtp.example.org]:587", chk_relayhost },
		{ "relayhost = smarthost", chk_relayhost_bare },
		{ "relayhost = [::1]", chk_relayhost_v6 },
		{ "dns_server = 127.0.0.1\ndns_server = 10.0.0.1:5353, [::1]:5300 2001:db8::53", chk_dns },
		{ "smtp_port = 2526", chk_smtp_port },
		{ "session_workers = 3", chk_workers },
		{ "session_workers = 0", chk_workers0 },
		{ "delivery_threads = 1024", chk_delivery },
		{ "max_connections = 1000000", chk_maxconn },
		{ "max_connections_per_ip = 10000", chk_perip },
		{ "max_message_size = 1K", chk_size_k },
		{ "max_message_size = 2g", chk_size_g },
		{ "max_message_size = 123456", chk_size_bare },
		{ "max_recipients = 1", chk_rcpts },
		{ "tls_cert_file = %C\ntls_key_file = %K", chk_tls },
		{ "tls_outbound = none", chk_tls_none },
		{ "tls_outbound = encrypt", chk_tls_encrypt },
		{ "tls_outbound = verify", chk_tls_verify },
		{ "tls_outbound = dane-only", chk_tls_dane_only },
		{ "tls_policy = %C\ntls_ca_file = %C\nmta_sts_ca_file = %K", chk_tls_policy },
		{ "mta_sts = no\nmta_sts_port = 8443\ntls_report_keep = 30d", chk_mta_sts },
		{ "retry_min = 90\nretry_max = 2h", chk_retry },
		{ "retry_min = 1m\nretry_max = 60s", chk_retry_eq },
		{ "queue_lifetime = 7d", chk_lifetime },
		{ "delay_warning = 0", chk_delay0 },
		{ "shutdown_timeout = 45s", chk_shutdown },
		{ "log_file = /var/log/ms.log", chk_log_file },
		{ "log_file = syslog", chk_syslog },
		{ "log_level = debug", chk_debug },
		{ "log_level = error", chk_error },
		{ "user = root", chk_user },
		{ "queue_map_size = 64M", chk_map },
		{ "command_timeout = 10m\ndata_timeout = 1m\nconnect_timeout = 5\n"
		  "relay_command_timeout = 2m\nrelay_data_timeout = 1d", chk_timeouts },
		{ "max_errors = 3", chk_max_errors },
		{ "max_per_destination = 1", chk_per_dest },
		{ "auth_plaintext_networks = 10.0.0.0/8 ::1\nauth_fail_delay = 2s\n"
		  "auth_fail_limit = 0\nauth_block_time = 1h\n"
		  "auth_any_sender = boss@example.org, relay@example.org", chk_auth },
		{ "min_data_rate = 0\nmax_junk_commands = 7\nmax_unknown_recipients = 1000",
		  chk_slow },
		{ "tls_priority = NORMAL:-VERS-TLS1.0", chk_prio },
		{ "client_dns_timeout = 0", chk_cdns },
		{ "max_errors = 3", chk_filters_default },
		{ "auth_service = dovecot:unix:/run/dovecot/auth-client\nauth_service_timeout = 5",
		  chk_dovecot },
		{ "auth_service = users_file", chk_users_file_service },
		{ "policy_services = inet:127.0.0.1:10023, unix:/run/spf.sock\n"
		  "policy_services = inet:[::1]:9998\npolicy_default_action = DEFER policy down\n"
		  "policy_timeout = 20s\npolicy_stages = rcpt end_of_data", chk_policy },
		{ "policy_stages = end_of_data", chk_policy_eom },
		{ "max_errors = 3", chk_milters_default },
		{ "milters = inet:127.0.0.1:11332 default_action=accept command_timeout=5s, "
		  "unix:/run/o.sock\nmilters = inet:[::1]:8891 eom_timeout=1m connect_timeout=2s\n"
		  "milter_default_action = reject\nmilter_command_timeout = 7s", chk_milters },
		{ "max_errors = 3", chk_mailauth_default },
		{ "auth_checks = no\nspf_reject = no\ndmarc_reject = no\nauth_tempfail = defer\n"
		  "authserv_id = auth.example.org\ndkim_sign = example.org rsa /dev/null\n"
		  "dkim_sign = example.org ed /dev/null", chk_mailauth },
		{ "  \t max_recipients\t=\t7   # seven\r\n# = nothing\n\n   \n#", chk_comment },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[1024], path[64], *errs;
		size_t n = 0;
		struct config *cfg;

		/* expand %C and %K */
		for (const char *s = cases[i].text; *s != '\0' && n + 70 < sizeof text; s++) {
			if (s[0] == '%' && (s[1] == 'C' || s[1] == 'K')) {
				const char *f = s[1] == 'C' ? cert_path : key_path;
				n += (size_t)snprintf(text + n, sizeof text - n, "%s", f);
				s++;
			} else {
				text[n++] = *s;
			}
		}
		text[n] = '\0';
		cfg = load_text(text, &errs, path, sizeof path);
		if (cfg == NULL || !cases[i].check(cfg)) {
			CU_FAIL("good line");
			fprintf(stderr, "good case %zu '%s' failed: %s\n", i, text, errs);
		}
		CU_ASSERT_STRING_EQUAL(errs, "");
		config_unref(&cfg);
		free(errs);
	}
}

/* ---- bad lines: each fails at exactly its line ---- */

static void
test_bad_lines(void)
{
	static const struct {
		const char *line;
		const char *message;	/* a part of the expected (first) message */
		size_t nerrors;		/* lines printed */
	} cases[] = {
		{ "nosuchkey = 1", "unknown key 'nosuchkey'", 1 },
		{ "Hostname = x", "unknown key 'Hostname'", 1 },
		{ "just some words", "expected 'key = value'", 1 },
		{ "= value", "missing key", 1 },
		{ "hostname =", "missing value", 1 },
		{ "hostname = bad_name.example", "not a valid domain", 1 },
		{ "hostname = -lead.example", "not a valid domain", 1 },
		{ "hostname = trail-.example", "not a valid domain", 1 },
		{ "hostname = a..b", "not a valid domain", 1 },
		{ "hostname = .a", "not a valid domain", 1 },
		{ "hostname = a b", "not a valid domain", 1 },
		{ "hostname = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example",
		  "not a valid domain", 1 },
		{ "listen = 127.0.0.1", "expected ADDR:PORT", 1 },
		{ "listen = 127.0.0.1:0", "bad port", 1 },
		{ "listen = 127.0.0.1:65536", "bad port", 1 },
		{ "listen = 127.0.0.1:25x", "bad port", 1 },
		{ "listen = 127.0.0.1:", "bad port", 1 },
		{ "listen = localhost:25", "not a numeric IPv4", 1 },
		{ "listen = 127.1:25", "not a numeric IPv4", 1 },
		{ "listen = ::1:25", "brackets", 1 },
		{ "listen = [::1:25", "missing ']'", 1 },
		{ "listen = [::1]25", "expected ':PORT'", 1 },
		{ "listen = [::1]", "expected ':PORT'", 1 },
		{ "listen = [127.0.0.1]:25", "only IPv6", 1 },
		{ "listen = [::g]:25", "not a numeric IPv6", 1 },
		{ "listen = 127.0.0.1:25 lmtp", "unknown kind", 1 },
		{ "listen = 127.0.0.1:25 smtp extra", "unexpected 'extra'", 1 },
		{ "listen = 127.0.0.1:25,smtp", "bad port", 1 },
		{ "queue_dir =", "missing value", 1 },
		{ "mail_dir = ", "missing value", 1 },
		{ "local_domains = example.org, bad_domain", "not a valid domain", 1 },
		{ "users_file = /nonexistent/users", "cannot read", 1 },
		{ "aliases_file = /tmp", "not a regular file", 1 },
		{ "relay_networks = 10.0.0.0/33", "not a network", 1 },
		{ "relay_networks = 127.0.0.0/8 bogus", "not a network", 1 },
		{ "relay_domains = ok.example,,-no.example", "not a valid domain", 1 },
		{ "routes = example.com", "expected domain=[host]:port", 1 },
		{ "routes = =[10.0.0.1]:25", "not a valid domain", 1 },
		{ "routes = example.com=[10.0.0.1]:0", "bad port", 1 },
		{ "routes = example.com=[10.0.0.1", "missing ']'", 1 },
		{ "routes = example.com=", "not a valid host", 1 },
		{ "routes = example.com=::1:25", "brackets", 1 },
		{ "routes = a.example=[h1], A.example=[h2]", "already routed", 1 },
		{ "local_transport = smtp", "expected maildir", 1 },
		{ "local_transport = lmtp:", "not a valid host", 1 },
		{ "local_transport = lmtp:unix:run/lmtp", "absolute path", 1 },
		{ "local_transport = lmtp:unix:/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "socket path too long", 1 },
		{ "local_transport = lmtp:[dovecot.example]:24", "must be an IP", 1 },
		{ "local_transport = lmtp:[127.0.0.1]:0", "bad port", 1 },
		{ "local_transport = lmtp:[127.0.0.1]:24\x01", "bad port", 1 },
		{ "routes = x.example=lmtp:localhost:24", "must be an IP", 1 },
		{ "routes = x.example=lmtp:unix:", "absolute path", 1 },
		{ "relayhost = [smtp.example.org]:x", "bad port", 1 },
		{ "relayhost = [smtp.example.org]x", "expected ':PORT'", 1 },
		{ "relayhost = bad_host:25", "not a valid host", 1 },
		{ "relayhost = [fe80::zz]", "not a valid IPv6", 1 },
		{ "dns_server = resolver.example", "not a numeric IPv4", 1 },
		{ "dns_server = 127.0.0.1:0", "bad port", 1 },
		{ "dns_server = [127.0.0.1]:53", "not a numeric IPv6", 1 },
		{ "dns_server = [::1]53", "expected ':PORT'", 1 },
		{ "dns_server = ::1:zz", "not a numeric IPv6", 1 },
		{ "dns_server =", "missing value", 1 },
		{ "smtp_port = 0", "not a port", 1 },
		{ "auth_plaintext_networks = 10.0.0.0/33", "not a network", 1 },
		{ "auth_fail_delay = 2m", "out of range", 1 },
		{ "auth_any_sender = nobody", "not an account", 1 },
		{ "min_data_rate = fast", "not a size", 1 },
		{ "tls_priority = NORMAL:+BOGUS", "tls_priority: ", 1 },
		{ "client_dns_timeout = 2m", "out of range", 1 },
		{ "auth_service = dovecot", "is not users_file or dovecot:", 1 },
		{ "auth_service = ldap:x", "is not users_file or dovecot:", 1 },
		{ "auth_service = dovecot:unix:relative/path", "auth_service: ", 1 },
		{ "auth_service = dovecot:inet:mail.example:12345", "auth_service: ", 1 },
		{ "auth_service_timeout = 0", "out of range", 1 },
		{ "policy_services = inet:127.0.0.1", "policy_services: ", 1 },
		{ "policy_services = tcp:127.0.0.1:10023", "policy_services: ", 1 },
		{ "policy_services = inet:127.0.0.1:1 inet:127.0.0.1:2 inet:127.0.0.1:3 "
		  "inet:127.0.0.1:4 inet:127.0.0.1:5 inet:127.0.0.1:6 inet:127.0.0.1:7 "
		  "inet:127.0.0.1:8 inet:127.0.0.1:9 inet:127.0.0.1:10 inet:127.0.0.1:11 "
		  "inet:127.0.0.1:12 inet:127.0.0.1:13 inet:127.0.0.1:14 inet:127.0.0.1:15 "
		  "inet:127.0.0.1:16 inet:127.0.0.1:17", "too many", 1 },
		{ "policy_default_action = FILTER smtp:[127.0.0.1]:10025", "not a policy action", 1 },
		{ "policy_default_action = 650 no", "not a policy action", 1 },
		{ "policy_default_action =", "missing value", 1 },
		{ "policy_stages = rcpt data", "is not rcpt or end_of_data", 1 },
		{ "milters = tcp:127.0.0.1:1", "milters: ", 1 },
		{ "milters = inet:127.0.0.1:1 default_action=maybe", "not accept, tempfail", 1 },
		{ "milters = inet:127.0.0.1:1 eom_timeout=0", "not a duration", 1 },
		{ "milters = inet:127.0.0.1:1 eom_timeout=2d", "not a duration", 1 },
		{ "milters = inet:127.0.0.1:1 speed=fast", "unknown option", 1 },
		{ "milters = inet:127.0.0.1:1 accept", "not NAME=VALUE", 1 },
		{ "milter_default_action = discard", "not accept, tempfail or reject", 1 },
		{ "milter_eom_timeout = soon", "is not a duration", 1 },
		{ "auth_checks = maybe", "is not yes or no", 1 },
		{ "spf_reject = 1", "is not yes or no", 1 },
		{ "auth_tempfail = later", "is not defer or accept", 1 },
		{ "authserv_id = a;b", "is not a host name", 1 },
		{ "dkim_sign = example.org sel", "want DOMAIN SELECTOR KEYFILE", 1 },
		{ "dkim_sign = example.org sel /dev/null extra", "want DOMAIN SELECTOR KEYFILE", 1 },
		{ "dkim_sign = localhost sel /dev/null", "is not a domain and a selector", 1 },
		{ "dkim_sign = example.org sel /nonexistent/key.pem", "No such file", 1 },
		{ "policy_timeout = 2h", "out of range", 1 },
		{ "max_junk_commands = 0", "out of range", 1 },
		{ "max_unknown_recipients = 0", "out of range", 1 },
		{ "auth_any_sender = a@b@", "not an account", 1 },
		{ "auth_block_time = 2d", "out of range", 1 },
		{ "smtp_port = 70000", "not a port", 1 },
		{ "smtp_port = -25", "not a port", 1 },
		{ "session_workers = 257", "out of range", 1 },
		{ "session_workers = -1", "not a number", 1 },
		{ "delivery_threads = 0", "out of range", 1 },
		{ "delivery_threads = 1025", "out of range", 1 },
		{ "delivery_threads = 4 threads", "not a number", 1 },
		{ "max_connections = 0", "out of range", 1 },
		{ "max_connections = 1000001", "out of range", 1 },
		{ "max_connections = 99999999999999999999999", "not a number", 1 },
		{ "max_connections_per_ip = 0", "out of range", 1 },
		{ "max_message_size = 1023", "out of range (1K..2G)", 1 },
		{ "max_message_size = 3G", "out of range", 1 },
		{ "max_message_size = 25MB", "not a size", 1 },
		{ "max_message_size = 25T", "not a size", 1 },
		{ "max_message_size = M", "not a size", 1 },
		{ "max_message_size = 1.5M", "not a size", 1 },
		{ "max_message_size = 17179869184G", "not a size", 1 },	/* overflows 64 bits */
		{ "max_message_size = 18446744073709551616", "not a size", 1 },
		{ "max_message_size = +1M", "not a size", 1 },
		{ "max_recipients = 0", "out of range", 1 },
		{ "max_recipients = 100001", "out of range", 1 },
		/* ...and the other half is missing too */
		{ "tls_cert_file = /nonexistent/cert.pem", "cannot read", 2 },
		{ "tls_key_file = /nonexistent/key.pem", "cannot read", 2 },
		{ "tls_outbound = yes", "not none, may, encrypt, verify, dane or dane-only", 1 },
		{ "tls_outbound = MAY", "not none, may, encrypt, verify, dane or dane-only", 1 },
		{ "tls_outbound = dane_only", "not none, may, encrypt, verify, dane or dane-only", 1 },
		{ "tls_policy = /nonexistent/policy", "cannot read", 1 },
		{ "tls_ca_file = /nonexistent/ca.pem", "cannot read", 1 },
		{ "mta_sts = 1", "is not yes or no", 1 },
		{ "mta_sts_port = 0", "not a port", 1 },
		{ "tls_report_keep = 1h", "out of range", 1 },
		{ "retry_min = 0", "out of range", 1 },
		{ "retry_max = 0s", "out of range", 1 },
		{ "retry_min = 5 m", "not a duration", 1 },
		{ "retry_min = 5w", "not a duration", 1 },
		{ "retry_min = 5M", "not a duration", 1 },
		{ "retry_min = 2h", "retry_min is longer than retry_max", 1 },
		{ "retry_max = 1m", "retry_min is longer than retry_max", 1 },
		{ "queue_lifetime = 0", "out of range", 1 },
		{ "queue_lifetime = 9999999999999999999d", "not a duration", 1 },
		{ "queue_lifetime = 400d", "out of range", 1 },
		{ "delay_warning = forever", "not a duration", 1 },
		{ "shutdown_timeout = 2d", "out of range", 1 },
		{ "log_file =", "missing value", 1 },
		{ "log_level = verbose", "not debug, info, warn or error", 1 },
		{ "log_level = INFO", "not debug, info, warn or error", 1 },
		{ "user = no-such-user-zz9", "no such user", 1 },
		{ "queue_map_size = 1K", "out of range", 1 },
		{ "queue_map_size = 2T", "not a size", 1 },
		{ "command_timeout = 0", "out of range", 1 },
		{ "data_timeout = 2d", "out of range", 1 },
		{ "max_errors = 0", "out of range", 1 },
		{ "connect_timeout = x", "not a duration", 1 },
		{ "relay_command_timeout = 0", "out of range", 1 },
		{ "relay_data_timeout = -1", "not a duration", 1 },
		{ "max_per_destination = 0", "out of range", 1 },
		{ "max_connections_per_ip = 20000", "larger than max_connections", 1 },
		{ "max_connections = 10", "larger than max_connections", 1 },
		{ "tls_cert_file = %C", "tls_key_file is not", 1 },
		{ "tls_key_file = %K", "tls_cert_file is not", 1 },
		{ "max_recipients = 5\x01", "not a number", 1 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[1024], path[64], *errs;
		struct config *cfg;
		const char *line = cases[i].line, *file = NULL;
		int n;

		if (strstr(line, "%C") != NULL)
			file = cert_path;
		else if (strstr(line, "%K") != NULL)
			file = key_path;
		/* the bad line is line 3, after a comment and a blank line */
		if (file != NULL)
			n = snprintf(text, sizeof text, "# bad line follows\n\n%.*s%s\n# end\n",
			    (int)(strchr(line, '%') - line), line, file);
		else
			n = snprintf(text, sizeof text, "# bad line follows\n\n%s\n# end\n",
			    line);
		CU_ASSERT_FATAL(n > 0 && (size_t)n < sizeof text);
		cfg = load_text(text, &errs, path, sizeof path);
		if (cfg != NULL || !starts_with_location(errs, path, 3) ||
		    strstr(errs, cases[i].message) == NULL ||
		    count_lines(errs) != cases[i].nerrors) {
			CU_FAIL("bad line");
			fprintf(stderr, "bad case '%s': got %s: %s", line,
			    cfg ? "a config" : "NULL", errs);
		}
		config_unref(&cfg);
		free(errs);
	}
}

static void
test_duplicates(void)
{
	static const char *const keys[] = {
		"hostname = a.example", "queue_dir = /q", "mail_dir = /m", "local_domains = a",
		"relay_networks = 10.0.0.0/8", "relay_domains = a", "routes = a=[b]",
		"relayhost = [h]", "smtp_port = 25", "session_workers = 1", "delivery_threads = 1",
		"max_connections = 10", "max_connections_per_ip = 1", "max_message_size = 1M",
		"max_recipients = 1", "tls_outbound = may", "retry_min = 1m", "retry_max = 1h",
		"queue_lifetime = 1d", "delay_warning = 1h", "shutdown_timeout = 1s",
		"log_file = syslog", "log_level = info", "user = root", "queue_map_size = 1G",
		"command_timeout = 1m", "data_timeout = 1m", "max_errors = 1",
		"connect_timeout = 1s", "relay_command_timeout = 1m", "relay_data_timeout = 1m",
		"max_per_destination = 1",
	};

	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		char text[256], path[64], *errs;
		struct config *cfg;
		int n = snprintf(text, sizeof text, "%s\n#\n%s\n", keys[i], keys[i]);

		CU_ASSERT_FATAL(n > 0 && (size_t)n < sizeof text);
		cfg = load_text(text, &errs, path, sizeof path);
		if (cfg != NULL || !starts_with_location(errs, path, 3) ||
		    strstr(errs, "duplicate key") == NULL || strstr(errs, "line 1") == NULL) {
			CU_FAIL("duplicate accepted");
			fprintf(stderr, "duplicate '%s': %s", keys[i], errs ? errs : "");
		}
		config_unref(&cfg);
		free(errs);
	}
}

static void
test_multiple_errors(void)
{
	static const char text[] =
	    "hostname = ok.example\n"		/* 1 */
	    "bogus = 1\n"			/* 2 */
	    "max_recipients = lots\n"		/* 3 */
	    "# fine\n"				/* 4 */
	    "listen = 127.0.0.1:99999\n"	/* 5 */
	    "local_domains = a.example, b_b, c_c\n" /* 6: two errors */
	    "hostname = again.example\n"	/* 7 */
	    "log_level = info";			/* 8: no newline at the end */
	static const unsigned want[] = { 2, 3, 5, 6, 6, 7 };
	char path[64], *errs, *line;
	struct config *cfg = load_text(text, &errs, path, sizeof path);
	size_t i = 0;

	CU_ASSERT_PTR_NULL(cfg);
	CU_ASSERT_EQUAL(count_lines(errs), sizeof want / sizeof want[0]);
	line = errs;
	for (i = 0; i < sizeof want / sizeof want[0] && line != NULL && *line != '\0'; i++) {
		CU_ASSERT(starts_with_location(line, path, want[i]));
		line = strchr(line, '\n');
		if (line != NULL)
			line++;
	}
	free(errs);
}

static void
test_listen_variants(void)
{
	static const struct {
		const char *value;
		int family;
		const char *addr;
		uint16_t port;
		enum listen_kind kind;
	} cases[] = {
		{ "127.0.0.1:2525", AF_INET, "127.0.0.1", 2525, LISTEN_SMTP },
		{ "0.0.0.0:25 smtp", AF_INET, "0.0.0.0", 25, LISTEN_SMTP },
		{ "*:587 submission", AF_INET, "0.0.0.0", 587, LISTEN_SUBMISSION },
		{ "[::1]:465 smtps", AF_INET6, "::1", 465, LISTEN_SMTPS },
		{ "[::]:25", AF_INET6, "::", 25, LISTEN_SMTP },
		{ "[2001:db8::5]:65535 SUBMISSION", AF_INET6, "2001:db8::5", 65535, LISTEN_SUBMISSION },
		{ "192.0.2.1:1\tsmtps", AF_INET, "192.0.2.1", 1, LISTEN_SMTPS },
	};
	char text[1024], path[64], *errs, addr[64];
	size_t n = 0;
	struct config *cfg;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		n += (size_t)snprintf(text + n, sizeof text - n, "listen = %s\n", cases[i].value);
	CU_ASSERT_FATAL(n < sizeof text);
	cfg = load_text(text, &errs, path, sizeof path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_STRING_EQUAL(errs, "");
	CU_ASSERT_EQUAL_FATAL(cfg->nlistens, sizeof cases / sizeof cases[0]);
	for (size_t i = 0; i < cfg->nlistens; i++) {
		const struct listen_spec *ls = &cfg->listens[i];
		const struct sockaddr *sa = (const struct sockaddr *)&ls->sa;
		char want_text[80];
		size_t len = strcspn(cases[i].value, " \t");

		CU_ASSERT_EQUAL(sa->sa_family, cases[i].family);
		CU_ASSERT_EQUAL(ls->salen, cases[i].family == AF_INET ?
		    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
		CU_ASSERT_STRING_EQUAL(sockaddr_ntop(sa, addr, sizeof addr), cases[i].addr);
		CU_ASSERT_EQUAL(sockaddr_port(sa), cases[i].port);
		CU_ASSERT_EQUAL(ls->kind, cases[i].kind);
		snprintf(want_text, sizeof want_text, "%.*s", (int)len, cases[i].value);
		CU_ASSERT_STRING_EQUAL(ls->text, want_text);
	}
	config_unref(&cfg);
	free(errs);

	/* the same address twice; "*" and 0.0.0.0 are the same address */
	cfg = load_text("listen = *:25\nlisten = 0.0.0.0:25 submission\n", &errs, path, sizeof path);
	CU_ASSERT_PTR_NULL(cfg);
	CU_ASSERT(starts_with_location(errs, path, 2));
	free(errs);
}

static void
test_cross_key_lines(void)
{
	char text[512], path[64], *errs;
	struct config *cfg;

	/* the later of the two lines is blamed */
	cfg = load_text("retry_max = 10m\n\nretry_min = 1h\n", &errs, path, sizeof path);
	CU_ASSERT_PTR_NULL(cfg);
	CU_ASSERT(starts_with_location(errs, path, 3));
	free(errs);
	cfg = load_text("max_connections_per_ip = 100\nmax_connections = 99\n", &errs, path,
	    sizeof path);
	CU_ASSERT_PTR_NULL(cfg);
	CU_ASSERT(starts_with_location(errs, path, 2));
	free(errs);
	/* the pair present: fine; an unreadable half: its own line */
	snprintf(text, sizeof text, "tls_key_file = %s\ntls_cert_file = /nonexistent\n", key_path);
	cfg = load_text(text, &errs, path, sizeof path);
	CU_ASSERT_PTR_NULL(cfg);
	CU_ASSERT(starts_with_location(errs, path, 2));
	CU_ASSERT_EQUAL(count_lines(errs), 1);
	free(errs);
}

/* The domain of user@[our address] (README "Recipient policy"). */
static void
test_literal_domain(void)
{
	static const struct {
		const char *text;
		const char *domain;
	} cases[] = {
		{ "hostname = mx.example.org\nlocal_domains = example.org, MX.Example.ORG\n",
		    "mx.example.org" },
		{ "hostname = MX.example.org\nlocal_domains = example.org mx.example.org\n",
		    "mx.example.org" },
		{ "hostname = mx.example.org\nlocal_domains = example.org example.net\n",
		    "example.org" },
		{ "hostname = mx.example.org\n", "localhost" },	/* the default list */
		{ "hostname = mx.example.org\nlocal_domains =\n", "localhost" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char path[64], *errs;
		struct config *cfg = load_text(cases[i].text, &errs, path, sizeof path);

		CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
		CU_ASSERT_STRING_EQUAL(config_literal_domain(cfg), cases[i].domain);
		config_unref(&cfg);
		free(errs);
	}
}

static void
test_lookups(void)
{
	static const char text[] =
	    "local_domains = Example.ORG localhost\n"
	    "relay_domains = backup.example\n"
	    "relay_networks = 192.0.2.0/24, 2001:db8::/32\n"
	    "routes = Routed.Example=[10.1.1.1]:2525\n";
	static const struct {
		const char *domain;
		int local, relay, routed;
	} domains[] = {
		{ "example.org", 1, 0, 0 },
		{ "EXAMPLE.org", 1, 0, 0 },
		{ "example.org.", 1, 0, 0 },
		{ "example.org..", 0, 0, 0 },
		{ "sub.example.org", 0, 0, 0 },
		{ "xample.org", 0, 0, 0 },
		{ "example.or", 0, 0, 0 },
		{ "LOCALHOST", 1, 0, 0 },
		{ "backup.example", 0, 1, 0 },
		{ "Backup.Example.", 0, 1, 0 },
		{ "routed.example", 0, 0, 1 },
		{ "ROUTED.EXAMPLE.", 0, 0, 1 },
		{ "", 0, 0, 0 },
		{ ".", 0, 0, 0 },
	};
	static const struct {
		const char *addr;
		int may;
	} clients[] = {
		{ "192.0.2.55", 1 }, { "192.0.3.1", 0 }, { "127.0.0.1", 0 },
		{ "::ffff:192.0.2.1", 1 }, { "2001:db8:1::1", 1 }, { "::1", 0 },
	};
	char path[64], *errs;
	struct config *cfg = load_text(text, &errs, path, sizeof path);

	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	for (size_t i = 0; i < sizeof domains / sizeof domains[0]; i++) {
		const struct route *r = config_route_for(cfg, domains[i].domain);
		CU_ASSERT_EQUAL(config_is_local_domain(cfg, domains[i].domain), domains[i].local);
		CU_ASSERT_EQUAL(config_is_relay_domain(cfg, domains[i].domain), domains[i].relay);
		CU_ASSERT_EQUAL(r != NULL, domains[i].routed);
		if (r != NULL) {
			CU_ASSERT_STRING_EQUAL(r->domain, "routed.example");
			CU_ASSERT_STRING_EQUAL(r->dest.host, "10.1.1.1");
			CU_ASSERT_EQUAL(r->dest.port, 2525);
		}
	}
	CU_ASSERT_EQUAL(config_is_local_domain(cfg, NULL), 0);
	CU_ASSERT_PTR_NULL(config_route_for(cfg, NULL));
	for (size_t i = 0; i < sizeof clients / sizeof clients[0]; i++) {
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof ss);
		if (strchr(clients[i].addr, ':') != NULL) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
			sin6->sin6_family = AF_INET6;
			CU_ASSERT_FATAL(inet_pton(AF_INET6, clients[i].addr, &sin6->sin6_addr) == 1);
		} else {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
			sin->sin_family = AF_INET;
			CU_ASSERT_FATAL(inet_pton(AF_INET, clients[i].addr, &sin->sin_addr) == 1);
		}
		CU_ASSERT_EQUAL(config_client_may_relay(cfg, (struct sockaddr *)&ss), clients[i].may);
	}
	config_unref(&cfg);
	free(errs);

	/* the default relay_networks: loopback only */
	cfg = load_text("", &errs, path, sizeof path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	{
		struct sockaddr_in sin;
		memset(&sin, 0, sizeof sin);
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(0x7f000002);
		CU_ASSERT_EQUAL(config_client_may_relay(cfg, (struct sockaddr *)&sin), 1);
		sin.sin_addr.s_addr = htonl(0x0a000001);
		CU_ASSERT_EQUAL(config_client_may_relay(cfg, (struct sockaddr *)&sin), 0);
	}
	config_unref(&cfg);
	free(errs);
}

static void
test_refcount(void)
{
	char path[64], *errs;
	struct config *cfg = load_text("max_errors = 2\n", &errs, path, sizeof path);
	struct config *other;

	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	other = config_ref(cfg);
	CU_ASSERT_PTR_EQUAL(other, cfg);
	config_unref(&cfg);
	CU_ASSERT_PTR_NULL(cfg);
	CU_ASSERT_EQUAL(other->max_errors, 2);	/* still alive: ASan would see otherwise */
	config_unref(&other);
	CU_ASSERT_PTR_NULL(other);
	config_unref(&other);			/* harmless on NULL */
	config_unref(NULL);
	free(errs);
}

static void
test_shipped_config(void)
{
	char *errs = NULL;
	size_t errlen = 0;
	FILE *f = open_memstream(&errs, &errlen);
	struct config *cfg;

	CU_ASSERT_FATAL(f != NULL);
	cfg = config_load("mailserver.conf", f);
	fclose(f);
	CU_ASSERT_PTR_NOT_NULL(cfg);
	CU_ASSERT_STRING_EQUAL(errs, "");
	if (cfg != NULL) {
		CU_ASSERT_EQUAL(cfg->nlistens, 1);
		CU_ASSERT_EQUAL(sockaddr_port((struct sockaddr *)&cfg->listens[0].sa), 2525);
		CU_ASSERT_STRING_EQUAL(cfg->queue_dir, "./var/queue");
		CU_ASSERT_STRING_EQUAL(cfg->mail_dir, "./var/mail");
		CU_ASSERT(config_is_local_domain(cfg, "localhost"));
		CU_ASSERT_PTR_NULL(cfg->log_file);
		CU_ASSERT_PTR_NULL(cfg->user);
	}
	config_unref(&cfg);
	free(errs);
}

static void
test_shipped_config_mentions_every_key(void)
{
	static const char *const keys[] = {
		"hostname", "listen", "queue_dir", "mail_dir", "local_domains", "users_file",
		"aliases_file", "relay_networks", "relay_domains", "routes", "relayhost",
		"dns_server", "smtp_port", "session_workers", "delivery_threads",
		"max_connections", "max_connections_per_ip", "max_message_size",
		"max_recipients", "tls_cert_file", "tls_key_file", "tls_outbound", "retry_min",
		"retry_max", "queue_lifetime", "delay_warning", "shutdown_timeout", "log_file",
		"log_level", "user", "queue_map_size", "command_timeout", "data_timeout",
		"max_errors", "connect_timeout", "relay_command_timeout", "relay_data_timeout",
		"max_per_destination", "auth_plaintext_networks", "auth_fail_delay",
		"auth_fail_limit", "auth_block_time", "auth_any_sender", "min_data_rate",
		"max_junk_commands", "max_unknown_recipients", "tls_priority",
		"client_dns_timeout", "tls_policy", "tls_ca_file", "mta_sts", "mta_sts_ca_file",
		"tls_report_keep", "auth_service", "auth_service_timeout", "policy_services",
		"policy_stages", "policy_default_action", "policy_timeout",
	};
	char line[4200];
	FILE *f = fopen("mailserver.conf", "r");
	int seen[sizeof keys / sizeof keys[0]] = { 0 };

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	while (fgets(line, sizeof line, f) != NULL) {
		const char *s = line[0] == '#' ? line + 1 : line;
		for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
			size_t n = strlen(keys[i]);
			if (strncmp(s, keys[i], n) == 0 && (s[n] == ' ' || s[n] == '='))
				seen[i] = 1;
		}
	}
	fclose(f);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		if (!seen[i]) {
			CU_FAIL("key missing from mailserver.conf");
			fprintf(stderr, "missing: %s\n", keys[i]);
		}
	}
}

static void
test_missing_file(void)
{
	char *errs = NULL;
	size_t errlen = 0;
	FILE *f = open_memstream(&errs, &errlen);
	struct config *cfg;

	CU_ASSERT_FATAL(f != NULL);
	cfg = config_load("/nonexistent/dir/ms.conf", f);
	CU_ASSERT_PTR_NULL(cfg);
	cfg = config_load("/tmp", f);
	CU_ASSERT_PTR_NULL(cfg);
	cfg = config_load(NULL, NULL);
	CU_ASSERT_PTR_NULL(cfg);
	fclose(f);
	CU_ASSERT_PTR_NOT_NULL_FATAL(errs);
	CU_ASSERT(strncmp(errs, "/nonexistent/dir/ms.conf:0: cannot read: ", 41) == 0);
	CU_ASSERT(strstr(errs, "\n/tmp:0: cannot read: ") != NULL);
	CU_ASSERT_EQUAL(count_lines(errs), 2);
	free(errs);
}

static void
test_hostile(void)
{
	char path[64], *errs, *big;
	struct config *cfg;
	size_t n;

	/* exactly 4096 bytes (a comment padded with blanks) is a line; 4097 is not */
	big = malloc(3 * 4200);
	CU_ASSERT_FATAL(big != NULL);
	n = 0;
	memcpy(big, "max_errors = 4 #", 16);
	memset(big + 16, 'x', 4096 - 16);
	n = 4096;
	big[n++] = '\n';
	cfg = load_bytes(big, n, &errs, path, sizeof path);
	CU_ASSERT_PTR_NOT_NULL(cfg);
	if (cfg != NULL)
		CU_ASSERT_EQUAL(cfg->max_errors, 4);
	config_unref(&cfg);
	free(errs);

	memcpy(big, "# ok\n", 5);
	memset(big + 5, 'x', 4097);
	big[5 + 4097] = '\n';
	memcpy(big + 5 + 4098, "bogus = 1\n", 10);
	cfg = load_bytes(big, 5 + 4098 + 10, &errs, path, sizeof path);
	CU_ASSERT_PTR_NULL(cfg);
	CU_ASSERT(starts_with_location(errs, path, 2));
	CU_ASSERT(strstr(errs, "longer than 4096") != NULL);
	CU_ASSERT(strstr(errs, ":3: unknown key 'bogus'") != NULL);
	CU_ASSERT_EQUAL(count_lines(errs), 2);
	free(errs);

	/* a line of 12000 bytes with no newline at all */
	memset(big, 'a', 3 * 4200);
	cfg = load_bytes(big, 3 * 4200, &errs, path, sizeof path);
	CU_ASSERT_PTR_NULL(cfg);
	CU_ASSERT(starts_with_location(errs, path, 1));
	CU_ASSERT_EQUAL(count_lines(errs), 1);
	free(errs);
	free(big);

	/* NUL bytes: a key cut short must not be read as a good line */
	static const char nul[] = "max_errors = 4\nlog_level = info\0junk\nmax_recipients = 9\n";
	cfg = load_bytes(nul, sizeof nul - 1, &errs, path, sizeof path);
	CU_ASSERT_PTR_NULL(cfg);
	CU_ASSERT(starts_with_location(errs, path, 2));
	CU_ASSERT(strstr(errs, "NUL") != NULL);
	CU_ASSERT_EQUAL(count_lines(errs), 1);
	free(errs);

	/* binary junk: fails, output printable, bounded */
	{
		unsigned char junk[20000];
		unsigned x = 12345;
		for (size_t i = 0; i < sizeof junk; i++) {
			x = x * 1103515245u + 12345u;
			junk[i] = (unsigned char)(x >> 16);
		}
		cfg = load_bytes(junk, sizeof junk, &errs, path, sizeof path);
		CU_ASSERT_PTR_NULL(cfg);
		CU_ASSERT(count_lines(errs) >= 1 && count_lines(errs) <= 101);
		for (const char *s = errs; s != NULL && *s != '\0'; s++)
			if (*s != '\n' && ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)) {
				CU_FAIL("unprintable byte in a message");
				break;
			}
		free(errs);
	}

	/* a flood of bad lines: reporting stops at a bound */
	{
		size_t len = 5000 * 8;
		char *flood = malloc(len);
		CU_ASSERT_FATAL(flood != NULL);
		for (size_t i = 0; i < len; i += 8)
			memcpy(flood + i, "zzzzzzz\n", 8);
		cfg = load_bytes(flood, len, &errs, path, sizeof path);
		CU_ASSERT_PTR_NULL(cfg);
		CU_ASSERT(count_lines(errs) <= 101);
		CU_ASSERT(strstr(errs, "too many errors") != NULL);
		free(errs);
		free(flood);
	}

	/* a control byte in an unknown key is shown as '?' */
	cfg = load_text("ab\x1b[2Jcd = 1\n", &errs, path, sizeof path);
	CU_ASSERT_PTR_NULL(cfg);
	CU_ASSERT(strstr(errs, "unknown key 'ab?[2Jcd'") != NULL);
	free(errs);

	/* CRLF files and a missing final newline are fine */
	cfg = load_text("max_errors = 5\r\nlog_level = warn\r\nmax_recipients = 6", &errs, path,
	    sizeof path);
	CU_ASSERT_PTR_NOT_NULL(cfg);
	if (cfg != NULL) {
		CU_ASSERT_EQUAL(cfg->max_errors, 5);
		CU_ASSERT_EQUAL(cfg->log_level, LOG_LVL_WARN);
		CU_ASSERT_EQUAL(cfg->max_recipients, 6);
	}
	config_unref(&cfg);
	free(errs);

	/* too many listen lines */
	{
		size_t cap = 300 * 40, off = 0;
		char *many = malloc(cap);
		CU_ASSERT_FATAL(many != NULL);
		for (int i = 0; i < 300; i++)
			off += (size_t)snprintf(many + off, cap - off, "listen = 127.0.0.1:%d\n", 1000 + i);
		cfg = load_bytes(many, off, &errs, path, sizeof path);
		CU_ASSERT_PTR_NULL(cfg);
		CU_ASSERT(starts_with_location(errs, path, 257));
		free(errs);
		free(many);
	}
}

int
main(void)
{
	static const struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{ "defaults of an empty file", test_defaults },
		{ "good lines, every key", test_good_lines },
		{ "bad lines, every key", test_bad_lines },
		{ "duplicate keys", test_duplicates },
		{ "every error reported", test_multiple_errors },
		{ "listen variants", test_listen_variants },
		{ "checks across keys", test_cross_key_lines },
		{ "domain, route and relay lookups", test_lookups },
		{ "the domain of our address literals", test_literal_domain },
		{ "ref and unref", test_refcount },
		{ "shipped mailserver.conf loads", test_shipped_config },
		{ "shipped mailserver.conf lists every key", test_shipped_config_mentions_every_key },
		{ "unreadable file", test_missing_file },
		{ "hostile files", test_hostile },
	};
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("config", suite_init, suite_clean);
	if (s == NULL) {
		CU_cleanup_registry();
		return 2;
	}
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
		if (CU_add_test(s, tests[i].name, tests[i].fn) == NULL) {
			CU_cleanup_registry();
			return 2;
		}
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
	    CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failed != 0 ? 1 : 0;
}
