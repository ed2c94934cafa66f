/*
 * fuzz_tlsrpt_txt: hostile _smtp._tls TXT records (RFC 8460 3) through
 * tls_rpt_txt_parse and tls_rpt_txt_select (the input split at newlines
 * into several records). What comes out is bounded and every URI kept is
 * a mailto: or https: one without spaces, commas or semicolons.
 * Seeds: tests/fuzz/corpus/tlsrpt_txt/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "relay/tls_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const struct tls_rpt_txt *r)
{
	if (r->nrua == 0 || r->nrua > TLS_RPT_RUA_MAX)
		__builtin_trap();
	for (size_t i = 0; i < r->nrua; i++) {
		const char *u = r->rua[i];
		if (strlen(u) >= TLS_RPT_URI_MAX || strpbrk(u, " \t,;") != NULL ||
		    (strncasecmp(u, "mailto:", 7) != 0 && strncasecmp(u, "https:", 6) != 0))
			__builtin_trap();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tls_rpt_txt r;
	char *text = malloc(size + 1), *recs[16];
	size_t n = 0;

	memcpy(text, data, size);
	text[size] = '\0';
	if (tls_rpt_txt_parse(text, &r) == 0)
		check(&r);
	for (char *p = text; n < 16;) {
		char *nl = strchr(p, '\n');
		recs[n++] = p;
		if (nl == NULL)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	if (tls_rpt_txt_select(recs, n, &r) == 0)
		check(&r);
	free(text);
	return 0;
}
