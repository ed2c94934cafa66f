/*
 * fuzz_tls_policy_map: hostile tls_policy files through the parser
 * (relay/tls_policy_map.c), then lookups of names taken from the input.
 * A table comes out only without errors, and every entry found has a
 * known level and bounded match names.
 * Seeds: tests/fuzz/corpus/tls_policy_map/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "relay/tls_policy_map.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tls_policy_map *m = NULL;
	FILE *devnull = fopen("/dev/null", "w");
	unsigned n = tls_policy_map_parse((const char *)data, size, "fuzz", devnull, &m);
	char name[300];

	if (devnull != NULL)
		fclose(devnull);
	if ((n == 0) != (m != NULL))
		__builtin_trap();
	if (m == NULL)
		return 0;
	/* Look up each first word of a line, and its subdomain. */
	for (size_t pos = 0; pos < size;) {
		const char *line = (const char *)data + pos;
		const char *nl = memchr(line, '\n', size - pos);
		size_t l = nl ? (size_t)(nl - line) : size - pos, w = 0;
		while (w < l && w < 250 && line[w] != ' ' && line[w] != '\t')
			w++;
		snprintf(name, sizeof name, "x.%.*s", (int)w, line);
		for (int k = 0; k < 2; k++) {
			const struct tls_policy_entry *e =
			    tls_policy_map_lookup(m, name + (k ? 0 : 2));
			if (e != NULL && (e->level > TLS_LEVEL_DANE_ONLY ||
			    e->nmatch > TLS_POLICY_MATCH_MAX))
				__builtin_trap();
		}
		pos += l + 1;
	}
	tls_policy_map_free(&m);
	return 0;
}
