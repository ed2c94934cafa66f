/*
 * fuzz_mta_sts_txt: hostile _mta-sts TXT records (RFC 8461 3.1) through
 * mta_sts_txt_parse and mta_sts_txt_select (the input split at newlines
 * into several records). An id that comes out is 1..32 letters/digits.
 * Seeds: tests/fuzz/corpus/mta_sts_txt/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/mta_sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_id(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > MTA_STS_ID_MAX ||
	    strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != n)
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char id[MTA_STS_ID_MAX + 1];
	char *text = malloc(size + 1), *recs[16];
	size_t n = 0;

	memcpy(text, data, size);
	text[size] = '\0';
	if (mta_sts_txt_parse(text, id) == 0)
		check_id(id);
	for (char *p = text; n < 16;) {
		char *nl = strchr(p, '\n');
		recs[n++] = p;
		if (nl == NULL)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	if (mta_sts_txt_select(recs, n, id) == 0)
		check_id(id);
	free(text);
	return 0;
}
