/*
 * smtp_args: parsing of the arguments of MAIL FROM and RCPT TO: the path
 * (RFC 5321 4.1.2, with SMTPUTF8 addresses per RFC 6531) and the ESMTP
 * parameters of SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531),
 * RET/ENVID/NOTIFY/ORCPT (RFC 3461, xtext decoded; an ORCPT address may
 * be UTF-8, in xtext or in RFC 6533's utf-8 form), AUTH= (RFC 4954) and
 * REQUIRETLS (RFC 8689; whether the session may use it is the caller's
 * check).
 *
 * Errors: each function returns 0, or -1 with a reply code and text
 * ready to send (e.g. "501 5.5.4 Syntax: MAIL FROM:<address>") in err.
 * Threads: reentrant.
 */
#ifndef SERVER_SMTP_ARGS_H
#define SERVER_SMTP_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include "queue/envelope.h"	/* enum dsn_notify, enum dsn_ret */

#define SMTP_PATH_MAX 256	/* RFC 5321 4.5.3.1.3 path, incl. <> */
/* The local part has no limit of its own within the path: 64 octets is
 * what RFC 5321 4.5.3.1.1 says a server must take at least, and the
 * addresses of VERP bounces and SRS forwarders are often longer (Postfix
 * and Exim take them too). */
#define SMTP_DOMAIN_MAX 255
#define SMTP_ORCPT_MAX 500	/* RFC 3461 4.2: the original recipient */
#define SMTP_ADDR_TYPE_MAX 32	/* ORCPT's addr-type ("rfc822", "utf-8") */

enum smtp_body { SMTP_BODY_UNSET = 0, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };

struct smtp_mail_args {
	char addr[SMTP_PATH_MAX];	/* without <>; "" for the null path */
	uint64_t size;			/* SIZE=, 0 when absent */
	enum smtp_body body;
	int smtputf8;			/* SMTPUTF8 given */
	int requiretls;			/* REQUIRETLS given */
	enum dsn_ret ret;
	char envid[101];		/* xtext-decoded ENVID, "" when absent */
	char auth[SMTP_PATH_MAX];	/* AUTH= value (xtext decoded), "" absent */
};

struct smtp_rcpt_args {
	char addr[SMTP_PATH_MAX];	/* without <>; never empty */
	unsigned notify;		/* enum dsn_notify bits, 0 when absent */
	/* "type;addr" with addr decoded, "" absent */
	char orcpt[SMTP_ADDR_TYPE_MAX + 1 + SMTP_ORCPT_MAX + 1];
};

/* arg is what follows "MAIL FROM:". Source routes (@a,@b:) are accepted
 * and dropped. Bytes >= 0x80 in the address are allowed only with
 * SMTPUTF8 (then the address must be valid UTF-8). Unknown parameters get
 * "555 5.5.4". */
int smtp_parse_mail(const char *arg, struct smtp_mail_args *out,
    char *err, size_t errsize);

/* arg is what follows "RCPT TO:". "<postmaster>" (any case) is accepted
 * without a domain. utf8_ok: the transaction gave SMTPUTF8. */
int smtp_parse_rcpt(const char *arg, int utf8_ok, struct smtp_rcpt_args *out,
    char *err, size_t errsize);

/* Splits addr at its last '@' into local part and domain (lower-cased
 * into domain_r). Returns 0, or -1 when there is no '@'. */
int smtp_addr_split(const char *addr, char *local_r, size_t localsize,
    char *domain_r, size_t domainsize);


#endif
