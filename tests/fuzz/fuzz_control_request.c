/*
 * Fuzz target for the control socket's request parser
 * (control_parse_request): any input gives one of the known requests or
 * CONTROL_BAD, and a known request is exactly one of the request texts
 * with at most its line end, or "tls-report send " and an argument of
 * two words of name characters that control_parse_arg hands out whole.
 * Any violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	enum control_request r = control_parse_request(p, size);
	size_t n = size;
	char arg[CONTROL_ARG_MAX];

	control_parse_arg(p, size, arg);
	FUZZ_CHECK(r == CONTROL_BAD || r == CONTROL_SESSIONS || r == CONTROL_SESSIONS_JSON ||
	    r == CONTROL_TLS_REPORT_SEND);
	FUZZ_CHECK((arg[0] != '\0') == (r == CONTROL_TLS_REPORT_SEND));
	if (r == CONTROL_BAD)
		return 0;
	if (n > 0 && p[n - 1] == '\n')
		n--;
	if (n > 0 && p[n - 1] == '\r')
		n--;
	FUZZ_CHECK(memchr(p, '\0', size) == NULL);
	FUZZ_CHECK(memchr(p, '\n', n) == NULL);
	if (r == CONTROL_TLS_REPORT_SEND) {
		const char *sp = strchr(arg, ' ');
		FUZZ_CHECK(n == 16 + strlen(arg) && memcmp(p, "tls-report send ", 16) == 0 &&
		    memcmp(p + 16, arg, strlen(arg)) == 0);
		FUZZ_CHECK(sp != NULL && sp != arg && sp[1] != '\0' && strchr(sp + 1, ' ') == NULL);
		FUZZ_CHECK(strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "0123456789.-_ ") == strlen(arg));
		return 0;
	}
	FUZZ_CHECK((r == CONTROL_SESSIONS && n == 8 && memcmp(p, "sessions", 8) == 0) ||
	    (r == CONTROL_SESSIONS_JSON && n == 13 && memcmp(p, "sessions json", 13) == 0));
	return 0;
}
