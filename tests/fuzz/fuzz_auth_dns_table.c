/*
 * fuzz_auth_dns_table: hostile zone text through the loader of the
 * in-memory DNS of auth/ (auth_dns_table_load), then lookups of every
 * type for names taken from the input, which must answer within the
 * interface's rules. Seeds: tests/fuzz/corpus/auth_dns_table/.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "auth/auth_dns_table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct auth_dns *d = auth_dns_table_new();
	char err[100], name[256];
	size_t pos = 0;

	if (size > 1 << 18) {
		auth_dns_free(&d);
		return 0;
	}
	(void)auth_dns_table_load(d, (const char *)data, size, err, sizeof err);
	for (int line = 0; line < 8 && pos < size; line++) {
		size_t n = 0;
		while (pos < size && data[pos] != ' ' && data[pos] != '\n' &&
		    n < sizeof name - 1)
			name[n++] = (char)data[pos++];
		name[n] = '\0';
		while (pos < size && data[pos++] != '\n')
			;
		for (int t = AUTH_DNS_A; t <= AUTH_DNS_TXT; t++) {
			struct auth_dns_answer a;
			auth_dns_lookup(d, name, (enum auth_dns_type)t, &a);
			if ((a.status == AUTH_DNS_OK) != (a.n > 0))
				__builtin_trap();
			for (size_t i = 0; i < a.n; i++)
				if (t == AUTH_DNS_TXT && a.rr[i].text[a.rr[i].len] != '\0')
					__builtin_trap();
			auth_dns_answer_clear(&a);
		}
	}
	auth_dns_free(&d);
	return 0;
}
