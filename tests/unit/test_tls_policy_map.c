/*
 * test_tls_policy_map: the tls_policy file parser (relay/tls_policy_map.c):
 * good files and lookups by domain and parent domain, every diagnostic
 * with its FILE:LINE, hostile input (long lines, NUL and control bytes,
 * too many names, duplicates), and a file read from disk.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay/tls_policy_map.h"

/* Parses text; the diagnostics land in *errs_r (malloc'd). */
static unsigned
parse(const char *text, size_t len, struct tls_policy_map **m, char **errs_r)
{
	size_t size = 0;
	FILE *f = open_memstream(errs_r, &size);
	unsigned n = tls_policy_map_parse(text, len, "policy", f, m);

	fclose(f);
	return n;
}

static void
test_good(void)
{
	static const char text[] =
	    "# outbound TLS per destination\n"
	    "\n"
	    "example.com      dane-only\n"
	    ".example.com     verify match=mx.example.com:.example.net   # subdomains\n"
	    "EXAMPLE.ORG.\tencrypt\r\n"
	    "plain.test none\n"
	    "   may.test    may\n"
	    "d.test dane\n"
	    ".test verify";
	struct tls_policy_map *m;
	char *errs = NULL;
	const struct tls_policy_entry *e;

	CU_ASSERT_EQUAL_FATAL(parse(text, sizeof text - 1, &m, &errs), 0);
	CU_ASSERT_STRING_EQUAL(errs, "");
	CU_ASSERT_EQUAL(tls_policy_map_count(m), 7);
	e = tls_policy_map_lookup(m, "Example.COM");
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_EQUAL(e->level, TLS_LEVEL_DANE_ONLY);
	CU_ASSERT_EQUAL(e->line, 3);
	e = tls_policy_map_lookup(m, "a.b.example.com");
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_EQUAL(e->level, TLS_LEVEL_VERIFY);
	CU_ASSERT_EQUAL_FATAL(e->nmatch, 2);
	CU_ASSERT_STRING_EQUAL(e->match[0], "mx.example.com");
	CU_ASSERT_STRING_EQUAL(e->match[1], ".example.net");
	CU_ASSERT_EQUAL(tls_policy_map_lookup(m, "example.org")->level, TLS_LEVEL_ENCRYPT);
	CU_ASSERT_EQUAL(tls_policy_map_lookup(m, "plain.test")->level, TLS_LEVEL_NONE);
	CU_ASSERT_EQUAL(tls_policy_map_lookup(m, "may.test")->level, TLS_LEVEL_MAY);
	CU_ASSERT_EQUAL(tls_policy_map_lookup(m, "d.test")->level, TLS_LEVEL_DANE);
	/* The closest parent wins; a ".x" key does not cover x itself. */
	CU_ASSERT_EQUAL(tls_policy_map_lookup(m, "x.plain.test")->level, TLS_LEVEL_VERIFY);
	CU_ASSERT_PTR_NULL(tls_policy_map_lookup(m, "test"));
	CU_ASSERT_PTR_NULL(tls_policy_map_lookup(m, "example.net"));
	CU_ASSERT_PTR_NULL(tls_policy_map_lookup(m, "bad name"));
	CU_ASSERT_PTR_NULL(tls_policy_map_lookup(NULL, "example.com"));
	tls_policy_map_free(&m);
	CU_ASSERT_PTR_NULL(m);
	free(errs);

	CU_ASSERT_EQUAL(parse("", 0, &m, &errs), 0);
	CU_ASSERT_EQUAL(tls_policy_map_count(m), 0);
	CU_ASSERT_PTR_NULL(tls_policy_map_lookup(m, "example.com"));
	tls_policy_map_free(&m);
	free(errs);
}

static void
test_errors(void)
{
	static const struct {
		const char *text;
		const char *err;	/* expected in the diagnostics */
	} t[] = {
		{ "example.com\n", "policy:1: example.com: no level given" },
		{ "a.test may\nexample.com secure\n", "policy:2: unknown level 'secure'" },
		{ "exa mple.com\n", "policy:1: unknown level 'mple.com'" },
		{ "-bad-.com..x may\n", "policy:1: invalid domain '-bad-.com..x'" },
		{ "example.com verify foo=bar\n", "policy:1: unknown attribute 'foo=bar'" },
		{ "example.com may match=a.test\n", "match= applies to the verify level only" },
		{ "example.com verify match=\n", "match= needs at least one name" },
		{ "example.com verify match=:::\n", "match= needs at least one name" },
		{ "example.com verify match=a..b\n", "invalid match name 'a..b'" },
		{ "example.com verify match=a.test match=b.test\n", "match= given twice" },
		{ "example.com verify match=a:b:c:d:e:f:g:h:i:j:k:l:m:n:o:p:q\n",
		  "more than 16 match names" },
		{ "a.test may\n\nA.TEST. encrypt\n", "policy:3: a.test: already given at line 1" },
		{ "a.test may x y z w v u t\n", "too many fields" },
		{ "a.test\x01 may\n", "policy:1: control character in line" },
		{ "a.test may\x02\n", "control character in line" },
		{ "a.test may \x7f\n", "unknown attribute '?'" },
		{ "a.test may \x1b[31m\n", "control character in line" },
		{ "caf\xc3\xa9.test may\n", "invalid domain 'caf??.test'" },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct tls_policy_map *m = (struct tls_policy_map *)1;
		char *errs = NULL;
		unsigned n = parse(t[i].text, strlen(t[i].text), &m, &errs);
		if (n == 0 || strstr(errs, t[i].err) == NULL)
			fprintf(stderr, "\n  case %zu: %u errors: %s", i, n, errs);
		CU_ASSERT(n > 0);
		CU_ASSERT_PTR_NULL(m);
		CU_ASSERT_PTR_NOT_NULL(strstr(errs, t[i].err));
		free(errs);
	}
}

static void
test_hostile(void)
{
	struct tls_policy_map *m;
	char *errs = NULL, *big;
	size_t n = TLS_POLICY_LINE_MAX + 10;

	/* A line over the limit, then a good one: one error, line 1. */
	big = malloc(n + 20);
	memset(big, 'a', n);
	memcpy(big + n, "\nok.test may\n", 13);
	CU_ASSERT_EQUAL(parse(big, n + 13, &m, &errs), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(errs, "policy:1: line longer than 1024 bytes"));
	CU_ASSERT_PTR_NULL(m);
	free(errs);
	free(big);

	CU_ASSERT_EQUAL(parse("a.test may\nb.test\0 may\n", 23, &m, &errs), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(errs, "policy:2: NUL byte in line"));
	free(errs);

	/* Many bad lines: the parse stops reporting after the limit. */
	{
		size_t lines = TLS_POLICY_ERRORS_MAX * 3, len = 0;
		char *text = malloc(lines * 4);
		unsigned nerr;
		for (size_t i = 0; i < lines; i++) {
			memcpy(text + len, "x!\n", 3);
			len += 3;
		}
		nerr = parse(text, len, &m, &errs);
		CU_ASSERT(nerr > TLS_POLICY_ERRORS_MAX);
		CU_ASSERT(nerr <= TLS_POLICY_ERRORS_MAX + 1);
		CU_ASSERT_PTR_NULL(strstr(errs, "policy:150:"));
		free(errs);
		free(text);
	}
	CU_ASSERT(parse("x", TLS_POLICY_FILE_MAX + 1, &m, &errs) > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(errs, "policy:0: file larger"));
	free(errs);
}

static void
test_load(void)
{
	char path[64], *errs = NULL;
	size_t size = 0;
	struct tls_policy_map *m;
	FILE *f, *e;

	snprintf(path, sizeof path, "/tmp/test_tls_policy.%d", (int)getpid());
	f = fopen(path, "w");
	fputs("example.com dane-only\nexample.net verify match=.example.net\n", f);
	fclose(f);
	CU_ASSERT_EQUAL(tls_policy_map_load(path, NULL, &m), 0);
	CU_ASSERT_EQUAL(tls_policy_map_count(m), 2);
	tls_policy_map_free(&m);
	f = fopen(path, "w");
	fputs("example.com dane-only\nexample.net nope\n", f);
	fclose(f);
	e = open_memstream(&errs, &size);
	CU_ASSERT_EQUAL(tls_policy_map_load(path, e, &m), 1);
	fclose(e);
	CU_ASSERT_PTR_NULL(m);
	CU_ASSERT_PTR_NOT_NULL(strstr(errs, ":2: unknown level 'nope'"));
	CU_ASSERT_PTR_NOT_NULL(strstr(errs, path));
	free(errs);
	unlink(path);
	e = open_memstream(&errs, &size);
	CU_ASSERT_EQUAL(tls_policy_map_load(path, e, &m), 1);
	fclose(e);
	CU_ASSERT_PTR_NOT_NULL(strstr(errs, ":0: No such file"));
	free(errs);
	e = open_memstream(&errs, &size);
	CU_ASSERT_EQUAL(tls_policy_map_load("/tmp", e, &m), 1);
	fclose(e);
	free(errs);
}

static void
test_levels(void)
{
	CU_ASSERT_EQUAL(tls_level_parse("dane-only"), TLS_LEVEL_DANE_ONLY);
	CU_ASSERT_EQUAL(tls_level_parse("verify"), TLS_LEVEL_VERIFY);
	CU_ASSERT_EQUAL(tls_level_parse("Verify"), -1);
	CU_ASSERT_EQUAL(tls_level_parse(""), -1);
	CU_ASSERT_STRING_EQUAL(tls_level_str(TLS_LEVEL_ENCRYPT), "encrypt");
	CU_ASSERT_STRING_EQUAL(tls_level_str((enum tls_level)99), "?");
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("tls_policy_map", NULL, NULL);
	CU_add_test(s, "good file and lookups", test_good);
	CU_add_test(s, "diagnostics", test_errors);
	CU_add_test(s, "hostile input", test_hostile);
	CU_add_test(s, "files", test_load);
	CU_add_test(s, "level names", test_levels);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
