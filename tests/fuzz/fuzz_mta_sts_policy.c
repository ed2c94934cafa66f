/*
 * fuzz_mta_sts_policy: hostile MTA-STS policy files (RFC 8461 3.2) through
 * mta_sts_policy_parse, then the MX match of names made from the input.
 * A parsed policy is bounded and every pattern is a valid (wildcard)
 * name that matches itself (a wildcard: one more label in front).
 * Seeds: tests/fuzz/corpus/mta_sts_policy/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "relay/mta_sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mta_sts_policy p;
	char why[200], name[DNS_NAME_MAX + 8];

	if (mta_sts_policy_parse((const char *)data, size, &p, why, sizeof why) != 0) {
		if (why[0] == '\0')
			__builtin_trap();
		return 0;
	}
	if (p.nmx > MTA_STS_MX_MAX || p.max_age > MTA_STS_MAX_AGE_MAX ||
	    (p.nmx == 0 && p.mode != MTA_STS_MODE_NONE))
		__builtin_trap();
	for (size_t i = 0; i < p.nmx; i++) {
		const char *pat = p.mx[i];
		if (pat[0] == '*') {
			snprintf(name, sizeof name, "x.%s", pat + 2);
			if (strlen(pat + 2) < 250 && !mta_sts_mx_match(&p, name))
				__builtin_trap();
		} else if (!mta_sts_mx_match(&p, pat)) {
			__builtin_trap();
		}
	}
	return 0;
}
