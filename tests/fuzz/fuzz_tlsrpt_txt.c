/*
 * fuzz_tlsrpt_txt: hostile _smtp._tls TXT records (RFC 8460 3) through
 * tls_rpt_txt_parse and tls_rpt_txt_select (the input split at newlines
 * into several records), and each URI kept, and the input itself,
 * through tls_rpt_mailto_parse. What comes out is bounded, every URI kept
 * is a mailto: or https: one without spaces, commas or semicolons, and
 * an address taken from a mailto: is a plain one (printable, one '@',
 * tls_rpt_addr_valid): nothing that could break a header line.
 * Seeds: tests/fuzz/corpus/tlsrpt_txt/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "relay/tls_report.h"
#include "relay/tls_rpt_mail.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_mailto(const char *uri)
{
	char addr[TLS_RPT_ADDR_MAX];

	if (tls_rpt_mailto_parse(uri, addr) != 0) {
		if (addr[0] != '\0')
			__builtin_trap();
		return;
	}
	if (!tls_rpt_addr_valid(addr) || strchr(addr, '@') != strrchr(addr, '@'))
		__builtin_trap();
	for (const char *c = addr; *c; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || *c == ',')
			__builtin_trap();
}

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
		check_mailto(u);
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
	check_mailto(text);
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
