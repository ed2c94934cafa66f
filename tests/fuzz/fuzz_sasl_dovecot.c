/*
 * Fuzz target for what a hostile Dovecot auth service sends
 * (server/sasl_dovecot.h): the input is split into lines; the lines go to
 * the handshake parser until it is done or refuses, the rest to the answer
 * parser for request 1. Checks what the SMTP session relies on: the
 * mechanism list is short names separated by single spaces; an answer's
 * user and reason are printable; a challenge is base64 that fits a 334
 * line's buffer. Any violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/sasl_dovecot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

static void
printable(const char *s)
{
	for (; *s != '\0'; s++)
		FUZZ_CHECK((unsigned char)*s >= 0x20 && (unsigned char)*s != 0x7f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *line, *save = NULL;
	struct sasl_dovecot_handshake hs;
	struct sasl_dovecot_result *res = malloc(sizeof *res);
	int in_handshake = 1;

	memcpy(text, data, size);
	text[size] = '\0';
	memset(&hs, 0, sizeof hs);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		const char *why = NULL;

		if (in_handshake) {
			if (sasl_dovecot_handshake_line(&hs, line, &why) != 0) {
				FUZZ_CHECK(why != NULL);
				in_handshake = 0;
			} else if (hs.done) {
				in_handshake = 0;
			}
			FUZZ_CHECK(hs.nmechs <= SASL_DOVECOT_MECHS_MAX);
			FUZZ_CHECK(strlen(hs.mechlist) < sizeof hs.mechlist);
			FUZZ_CHECK(strstr(hs.mechlist, "  ") == NULL);
			for (const char *p = hs.mechlist; *p != '\0'; p++)
				FUZZ_CHECK(*p == ' ' || *p == '-' || *p == '_' ||
				    (*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') ||
				    (*p >= 'a' && *p <= 'z'));
			continue;
		}
		switch (sasl_dovecot_reply_line(line, 1, res, &why)) {
		case 1:
			FUZZ_CHECK(res->status == SASL_DOVECOT_OK ||
			    res->status == SASL_DOVECOT_CONTINUE ||
			    res->status == SASL_DOVECOT_FAIL ||
			    res->status == SASL_DOVECOT_TEMPFAIL);
			printable(res->user);
			printable(res->reason);
			FUZZ_CHECK(sasl_dovecot_base64_ok(res->challenge));
			if (res->status == SASL_DOVECOT_OK)
				FUZZ_CHECK(res->user[0] != '\0');
			break;
		case -1:
			FUZZ_CHECK(why != NULL);
			break;
		default:
			break;
		}
	}
	free(res);
	free(text);
	return 0;
}
