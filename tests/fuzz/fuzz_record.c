/*
 * fuzz_record: feeds arbitrary bytes to the queue's record decoders
 * (queue/record.c). Decoding must never crash or leak, and whatever
 * decodes must encode back to exactly the same bytes (the layout is
 * canonical; a recipient or envelope record of version 1 comes back as
 * version 2, which then is), so a record cannot change meaning across a
 * rewrite.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "queue/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope env;
	struct queue_rcpt r;
	struct buf b;
	struct record_body lay, back;

	buf_init(&b, 1 << 20);
	if (record_msg_decode(data, size, &env, &lay) == 0) {
		/* A version 1 envelope is written back as version 2 (same
		 * fields, records of any size): that form is canonical. */
		int v1 = lay.fixed != 0;

		lay.fixed = 0;
		if (record_msg_encode(&env, &lay, &b) != 0 ||
		    (!v1 && (b.len != size || memcmp(b.data, data, size) != 0)))
			abort();
		envelope_free(&env);
		if (v1) {
			if (record_msg_decode(b.data, b.len, &env, &back) != 0 ||
			    back.size != lay.size || back.nchunks != lay.nchunks ||
			    back.fixed != 0)
				abort();
			envelope_free(&env);
		}
	}
	buf_reset(&b);
	if (record_rcpt_decode(data, size, &r) == 0) {
		/* A version 1 record is written back as version 2: that form
		 * must then be canonical. */
		if (record_rcpt_encode(&r, &b) != 0)
			abort();
		queue_rcpt_clear(&r);
		if (data[0] == RECORD_RCPT_VERSION &&
		    (b.len != size || memcmp(b.data, data, size) != 0))
			abort();
		if (data[0] != RECORD_RCPT_VERSION) {
			struct buf b2;
			buf_init(&b2, 1 << 20);
			if (record_rcpt_decode(b.data, b.len, &r) != 0 ||
			    record_rcpt_encode(&r, &b2) != 0 || b2.len != b.len ||
			    memcmp(b2.data, b.data, b.len) != 0)
				abort();
			queue_rcpt_clear(&r);
			buf_free(&b2);
		}
	}
	buf_free(&b);
	return 0;
}
