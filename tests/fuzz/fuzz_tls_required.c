/*
 * fuzz_tls_required: hostile message headers through the check for the
 * `TLS-Required: No` header field (relay/relay_proto.h,
 * relay_header_tls_optional, RFC 8689 5). Checks that the answer is 0 or
 * 1, that it never depends on bytes past the header section, and that a
 * message cut at any point reads no byte beyond its length (the
 * sanitizers see that).
 * Seeds: tests/fuzz/corpus/tls_required/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/relay_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1);
	int r, r2;

	if (copy == NULL)
		abort();
	memcpy(copy, data, size);
	r = relay_header_tls_optional(copy, size);
	if (r != 0 && r != 1)
		abort();
	/* A body after the header section changes nothing. */
	for (size_t i = 0; i + 1 < size; i++) {
		if (copy[i] == '\n' && copy[i + 1] == '\n') {
			r2 = relay_header_tls_optional(copy, i + 2);
			if (r2 != r)
				abort();
			break;
		}
		if (copy[i] == '\n' && i + 2 < size && copy[i + 1] == '\r' &&
		    copy[i + 2] == '\n')
			break;
	}
	free(copy);
	return 0;
}
