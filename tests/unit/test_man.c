/*
 * test_man: the manual pages under man/ against the code. The keys under
 * KEYS in mailserver.conf(5) (each a `.TP` followed by a `.B key` line)
 * must be exactly the keys of the config parser's table (config_keys in
 * server/config.c, read as source text); every signal the daemon waits
 * for (sigaddset in server/main.c) must be under SIGNALS in
 * mailserver(8); and groff must format every page without a warning.
 * Run from the repository root, as `make unit` does.
 */
#include <CUnit/Basic.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAMES_MAX 256
#define NAME_LEN 64

struct names {
	size_t n;
	char name[NAMES_MAX][NAME_LEN];
};

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	text = calloc(1, (size_t)n + 1);
	if (text != NULL && fread(text, 1, (size_t)n, f) != (size_t)n) {
		free(text);
		text = NULL;
	}
	fclose(f);
	return text;
}

static void
names_add(struct names *ns, const char *s, size_t len)
{
	if (ns->n < NAMES_MAX && len > 0 && len < NAME_LEN) {
		memcpy(ns->name[ns->n], s, len);
		ns->name[ns->n++][len] = '\0';
	}
}

static int
names_has(const struct names *ns, const char *name)
{
	for (size_t i = 0; i < ns->n; i++)
		if (strcmp(ns->name[i], name) == 0)
			return 1;
	return 0;
}

/* The "name" of every `{ "name", ...` line of config_keys[]. */
static void
parser_keys(struct names *ns)
{
	char *src = slurp("server/config.c"), *p, *end;

	CU_ASSERT_PTR_NOT_NULL_FATAL(src);
	p = strstr(src, "config_keys[] = {");
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	end = strstr(p, "\n};");
	CU_ASSERT_PTR_NOT_NULL_FATAL(end);
	*end = '\0';
	while ((p = strstr(p, "{ \"")) != NULL) {
		char *q = strchr(p + 3, '"');
		if (q == NULL)
			break;
		names_add(ns, p + 3, (size_t)(q - p - 3));
		p = q;
	}
	free(src);
}

/* The text of section `.SH name` of a page, up to the next .SH. */
static char *
man_section(const char *page, const char *name)
{
	char *text = slurp(page), *start, *end, head[64];

	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	snprintf(head, sizeof head, "\n.SH %s\n", name);
	start = strstr(text, head);
	if (start == NULL) {
		free(text);
		return NULL;
	}
	start += strlen(head);
	end = strstr(start, "\n.SH ");
	if (end != NULL)
		*end = '\0';
	memmove(text, start, strlen(start) + 1);
	return text;
}

/* The first word of every `.B word` line right after a `.TP` line. */
static void
man_keys(const char *section, struct names *ns)
{
	const char *p = section;

	while ((p = strstr(p, ".TP\n.B ")) != NULL) {
		size_t len = 0;
		p += 7;
		while (p[len] != '\0' && !isspace((unsigned char)p[len]))
			len++;
		names_add(ns, p, len);
	}
}

static void
test_conf_keys_match_parser(void)
{
	static struct names parser, man;
	char *keys = man_section("man/mailserver.conf.5", "KEYS");

	parser_keys(&parser);
	CU_ASSERT(parser.n >= 30);	/* the table was found and read */
	CU_ASSERT_PTR_NOT_NULL_FATAL(keys);
	man_keys(keys, &man);
	free(keys);
	for (size_t i = 0; i < parser.n; i++)
		if (!names_has(&man, parser.name[i])) {
			fprintf(stderr, "\n  key %s of server/config.c is not documented "
			    "in man/mailserver.conf.5 (add a .TP/.B entry under KEYS)",
			    parser.name[i]);
			CU_FAIL("a key is missing from mailserver.conf(5)");
		}
	for (size_t i = 0; i < man.n; i++)
		if (!names_has(&parser, man.name[i])) {
			fprintf(stderr, "\n  man/mailserver.conf.5 documents %s, which "
			    "server/config.c does not know", man.name[i]);
			CU_FAIL("mailserver.conf(5) documents an unknown key");
		}
	CU_ASSERT_EQUAL(man.n, parser.n);	/* and none twice */
}

static void
test_signals_documented(void)
{
	char *src = slurp("server/main.c"), *p;
	char *sigs = man_section("man/mailserver.8", "SIGNALS");
	int found = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(src);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sigs);
	for (p = src; (p = strstr(p, "sigaddset(")) != NULL; p++) {
		char *comma = strchr(p, ','), name[NAME_LEN];
		size_t len = 0;
		if (comma == NULL)
			break;
		comma++;
		while (*comma == ' ')
			comma++;
		while (len + 1 < sizeof name && (isupper((unsigned char)comma[len]) ||
		    isdigit((unsigned char)comma[len])))
			len++;
		memcpy(name, comma, len);
		name[len] = '\0';
		if (strncmp(name, "SIG", 3) != 0)
			continue;
		found++;
		if (strstr(sigs, name) == NULL) {
			fprintf(stderr, "\n  %s (server/main.c) is not under SIGNALS in "
			    "man/mailserver.8", name);
			CU_FAIL("a signal is not documented");
		}
	}
	CU_ASSERT(found >= 5);
	free(src);
	free(sigs);
}

static void
test_pages_format_cleanly(void)
{
	static const char *const pages[] = {
		"man/mailserver.8", "man/mailserver.conf.5", "man/mailctl.8",
	};
	static const char *const sections[] = { "NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO" };

	for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
		char cmd[256], out[4096];
		size_t n;
		FILE *p;
		int status;

		snprintf(cmd, sizeof cmd, "groff -man -ww -z -Tutf8 %s 2>&1", pages[i]);
		p = popen(cmd, "r");
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		n = fread(out, 1, sizeof out - 1, p);
		out[n] = '\0';
		status = pclose(p);
		if (status != 0 || n != 0)
			fprintf(stderr, "\n  %s: %s", pages[i], out);
		CU_ASSERT_EQUAL(status, 0);
		CU_ASSERT_EQUAL(n, 0);
		for (size_t j = 0; j < sizeof sections / sizeof sections[0]; j++) {
			char *s = man_section(pages[i], sections[j]);
			CU_ASSERT_PTR_NOT_NULL(s);
			free(s);
		}
	}
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("man", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "mailserver.conf(5) keys are the parser's", test_conf_keys_match_parser) == NULL ||
	    CU_add_test(s, "mailserver(8) names every signal", test_signals_documented) == NULL ||
	    CU_add_test(s, "pages format without warnings", test_pages_format_cleanly) == NULL) {
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
