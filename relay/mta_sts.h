/*
 * mta_sts: the text formats of MTA-STS (RFC 8461), apart from the network:
 * the `_mta-sts` TXT record (3.1), the policy file (3.2), and the match
 * of an MX host name against the policy's patterns (4.1).
 *
 * Parsing is strict where the RFC is: a TXT record is one `v=STSv1`
 * record with a valid `id`; a policy has exactly one version (STSv1), one
 * mode (enforce, testing, none) and one max_age (digits, at most
 * 31557600: larger values are cut to it, as 3.2 bounds it), and at least
 * one mx pattern unless the mode is none; unknown fields are ignored when
 * they are well-formed, as 3.2 asks. Lines end in LF or CRLF; blank lines
 * are ignored. Anything else makes the whole record or policy invalid
 * (a policy that does not parse is no policy: RFC 8461 3.3).
 *
 * Limits: a policy of MTA_STS_POLICY_MAX bytes (3.3: 64 KiB),
 * MTA_STS_MX_MAX patterns, lines of MTA_STS_LINE_MAX bytes.
 * Errors: functions return 0 or -1 with a reason; nothing is logged.
 * Threads: everything is reentrant.
 */
#ifndef RELAY_MTA_STS_H
#define RELAY_MTA_STS_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"

#define MTA_STS_ID_MAX		32		/* characters of a TXT id */
#define MTA_STS_MX_MAX		64
#define MTA_STS_POLICY_MAX	65536
#define MTA_STS_LINE_MAX	1024
#define MTA_STS_MAX_AGE_MAX	31557600u	/* one year, RFC 8461 3.2 */

enum mta_sts_mode {
	MTA_STS_MODE_NONE = 0,
	MTA_STS_MODE_TESTING,
	MTA_STS_MODE_ENFORCE,
};

/* "none", "testing", "enforce" (static). */
const char *mta_sts_mode_str(enum mta_sts_mode m);

struct mta_sts_policy {
	enum mta_sts_mode mode;
	uint32_t max_age;			/* seconds */
	size_t nmx;
	char mx[MTA_STS_MX_MAX][DNS_NAME_MAX + 2];	/* lower case, maybe "*.x" */
};

/*
 * Parses one TXT record. 0 with the id (NUL-terminated, at most
 * MTA_STS_ID_MAX characters) in id, or -1 when it is not a valid
 * STSv1 record.
 */
int mta_sts_txt_parse(const char *txt, char id[MTA_STS_ID_MAX + 1]);

/*
 * Chooses among the TXT records of _mta-sts.<domain> (3.1): records that
 * do not start with "v=STSv1" are ignored; there must be exactly one
 * left, and it must be valid. 0 with its id, or -1.
 */
int mta_sts_txt_select(char *const *txts, size_t n, char id[MTA_STS_ID_MAX + 1]);

/* Parses a policy of len bytes into *p. 0, or -1 with why filled. */
int mta_sts_policy_parse(const char *text, size_t len, struct mta_sts_policy *p,
    char *why, size_t whysize);

/*
 * Does MX host name host match a pattern of p (4.1)? A pattern matches
 * the same name (any case, trailing dot ignored); "*.example.com"
 * matches exactly one more label in front ("mx.example.com", not
 * "example.com" nor "a.mx.example.com"). 1 or 0.
 */
int mta_sts_mx_match(const struct mta_sts_policy *p, const char *host);

#endif
