/*
 * test_spf_suite: the RFC 7208 test suite (the openspf.org suite of
 * pyspf, tests/data/spf/rfc7208-tests.yml) through auth/spf. The YAML is
 * converted at test time by tests/tools/spf_suite.py (Debian's python3
 * with python3-yaml); each scenario's zone goes into an auth_dns_table,
 * and every test case's result must be one the suite accepts, its
 * explanation the one it names ("DEFAULT": no exp= text).
 *
 * Every case passes; there is no exception list.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_dns_table.h"
#include "auth/spf.h"
#include "lib/util.h"

#define SUITE_CMD "/usr/bin/python3 tests/tools/spf_suite.py " \
	"tests/data/spf/rfc7208-tests.yml"
#define SUITE_CASES 203		/* test cases in the 2014.04 release */
#define FIELDS_MAX 10

/* Undoes the %XX escapes of the converter, in place; returns the length. */
static size_t
unescape(char *s)
{
	size_t o = 0;

	for (size_t i = 0; s[i] != '\0'; i++) {
		if (s[i] == '%' && isxdigit((unsigned char)s[i + 1]) &&
		    isxdigit((unsigned char)s[i + 2])) {
			char hex[3] = { s[i + 1], s[i + 2], '\0' };
			s[o++] = (char)strtol(hex, NULL, 16);
			i += 2;
		} else {
			s[o++] = s[i];
		}
	}
	s[o] = '\0';
	return o;
}

static size_t
split(char *line, char **f, size_t *len)
{
	size_t n = 0;
	char *p = line;

	for (;;) {
		char *tab = strchr(p, '\t');
		if (tab != NULL)
			*tab = '\0';
		if (n < FIELDS_MAX) {
			f[n] = p;
			len[n] = unescape(p);
			n++;
		}
		if (tab == NULL)
			break;
		p = tab + 1;
	}
	return n;
}

static int
result_accepted(const char *list, enum spf_result r)
{
	char copy[200];
	char *save = NULL;

	str_copy(copy, list, sizeof copy);
	for (char *t = strtok_r(copy, ",", &save); t != NULL;
	    t = strtok_r(NULL, ",", &save))
		if (strcmp(t, spf_result_name(r)) == 0)
			return 1;
	return 0;
}

static void
test_rfc7208_suite(void)
{
	FILE *p = popen(SUITE_CMD, "r");
	struct auth_dns *dns = NULL;
	char *line = NULL;
	size_t cap = 0, cases = 0, failed = 0;
	ssize_t got;

	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	while ((got = getline(&line, &cap, p)) > 0) {
		char *f[FIELDS_MAX];
		size_t len[FIELDS_MAX], n;
		if (line[got - 1] == '\n')
			line[--got] = '\0';
		n = split(line, f, len);
		if (strcmp(f[0], "S") == 0) {
			auth_dns_free(&dns);
			dns = auth_dns_table_new();
		} else if (strcmp(f[0], "Z") == 0 && n == 4) {
			if (auth_dns_table_add(dns, f[1], f[2], f[3], len[3]) != 0) {
				printf("\nbad zone line: %s %s\n", f[1], f[2]);
				failed++;
			}
		} else if (strcmp(f[0], "T") == 0 && (n == 7 || n == 8)) {
			struct spf_request req = { .helo = f[4], .sender = f[5],
			    .receiver = "receiver.example" };
			struct spf_outcome out;
			int ok;
			cases++;
			if (auth_ip_parse(f[3], &req.ip) != 0) {
				printf("\n%s: bad host %s\n", f[1], f[3]);
				failed++;
				continue;
			}
			spf_check_mailfrom(dns, &req, NULL, &out);
			ok = result_accepted(f[6], out.result);
			if (ok && n == 8)
				ok = strcmp(f[7], "DEFAULT") == 0 ?
				    out.explanation[0] == '\0' :
				    strcmp(f[7], out.explanation) == 0;
			if (!ok) {
				failed++;
				printf("\nFAILED %s (%s): got %s expl \"%s\" (%s), "
				    "want %s%s%s\n", f[1], f[2],
				    spf_result_name(out.result), out.explanation,
				    out.problem, f[6], n == 8 ? " expl " : "",
				    n == 8 ? f[7] : "");
			}
		} else {
			printf("\nunexpected line from the converter: %s\n", f[0]);
			failed++;
		}
	}
	free(line);
	auth_dns_free(&dns);
	CU_ASSERT_EQUAL(pclose(p), 0);
	printf("\nRFC 7208 suite: %zu cases, %zu failed\n", cases, failed);
	CU_ASSERT_EQUAL(cases, SUITE_CASES);
	CU_ASSERT_EQUAL(failed, 0);
}

int
main(void)
{
	CU_pSuite s;
	unsigned nfail;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("spf_suite", NULL, NULL);
	CU_add_test(s, "RFC 7208 test suite", test_rfc7208_suite);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	nfail = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return nfail ? 1 : 0;
}
