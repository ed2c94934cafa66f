/*
 * fuzz_dmarc_record: hostile DMARC records through auth/dmarc: the
 * record parser, and a whole check where the input is the record at the
 * From domain and at its organizational domain, with and without aligned
 * passes. The input also goes through the From: domain parser as a
 * header field value. Seeds: tests/fuzz/corpus/dmarc_record/.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "auth/auth_dns_table.h"
#include "auth/dmarc.h"
#include "auth/header.h"
#include "lib/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dmarc_record r;
	struct dmarc_outcome out;
	struct dkim_results dk;
	struct dmarc_input in = { .from_domain = "sub.example.com",
	    .spf_result = SPF_PASS, .spf_domain = "example.com" };
	struct auth_dns *dns;
	struct buf h;
	char dom[256];

	if (size > 65536)
		return 0;
	if (dmarc_record_parse((const char *)data, size, &r) == 0 &&
	    (r.pct > 100 || strlen(r.rua) >= sizeof r.rua))
		__builtin_trap();
	dns = auth_dns_table_new();
	auth_dns_table_add(dns, "_dmarc.sub.example.com", "TXT",
	    (const char *)data, size);
	auth_dns_table_add(dns, "_dmarc.example.com", "TXT", (const char *)data,
	    size);
	for (unsigned sample = 0; sample < 100; sample += 33) {
		in.sample = sample;
		dmarc_check(dns, &in, &out);
		if (out.result == DMARC_PASS && out.disposition != DMARC_P_NONE)
			__builtin_trap();
	}
	memset(&dk, 0, sizeof dk);
	in.dkim = &dk;
	in.spf_result = SPF_FAIL;
	in.from_domain = "example.com";
	dmarc_check(dns, &in, &out);
	if (out.result == DMARC_PASS)
		__builtin_trap();
	auth_dns_free(&dns);

	buf_init(&h, size + 16);
	buf_puts(&h, "From:");
	buf_append(&h, data, size);
	buf_puts(&h, "\r\n");
	(void)auth_header_from_domain(h.data, h.len, dom, sizeof dom);
	buf_free(&h);
	return 0;
}
