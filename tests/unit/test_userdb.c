/*
 * Unit tests for storage/userdb: good and bad users and aliases files
 * (error lines compared exactly), lookups, password checks against a real
 * $6$ hash, alias expansion (nesting, remote targets, dedup, loops, depth
 * and size limits) and hostile input (long lines, NUL bytes, junk).
 */
#include <CUnit/Basic.h>
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "storage/userdb.h"

/* Temporary files made by the tests, removed at the end. */
static char tmp_paths[16][64];
static int ntmp;

/* Writes len bytes to a new temporary file; returns its path. */
static const char *
write_tmp(const char *data, size_t len)
{
	char *path;
	int fd;

	CU_ASSERT_FATAL(ntmp < 16);
	path = tmp_paths[ntmp++];
	str_copy(path, "/tmp/test_userdb.XXXXXX", 64);
	fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(write(fd, data, len) == (ssize_t)len);
	close(fd);
	return path;
}

static void
remove_tmps(void)
{
	for (int i = 0; i < ntmp; i++)
		unlink(tmp_paths[i]);
	ntmp = 0;
}

/* Loads; the error text goes to *errs_r (heap, caller frees). */
static struct userdb *
load(const char *users, size_t ulen, const char *aliases, size_t alen,
    char **errs_r, const char **upath_r, const char **apath_r)
{
	const char *up = users ? write_tmp(users, ulen) : NULL;
	const char *ap = aliases ? write_tmp(aliases, alen) : NULL;
	size_t size;
	FILE *errs = open_memstream(errs_r, &size);
	struct userdb *db;

	CU_ASSERT_PTR_NOT_NULL_FATAL(errs);
	db = userdb_load(up, ap, errs);
	fclose(errs);
	if (upath_r)
		*upath_r = up;
	if (apath_r)
		*apath_r = ap;
	return db;
}

struct good_case {
	const char *users;
	const char *aliases;
	int has_users;
};

static void
test_load_good(void)
{
	static const struct good_case cases[] = {
		{ NULL, NULL, 0 },
		{ "", "", 1 },
		{ "# comment\n\n   \n\t# indented comment\n", NULL, 1 },
		{ "u@x:$6$salt$hash\n", NULL, 1 },
		{ "u@x:\n", NULL, 1 },
		{ "u@x:", NULL, 1 },	/* no final newline */
		{ "  U@X.Example  :  $1$abc$def  \r\n", NULL, 1 },
		{ "u@x:h\r\nv@x:h\r\n", "a@x: u@x\r\n", 1 },
		{ NULL, "a@x: b@y, c@z d@w\t,e@v,,,\n", 0 },
		{ NULL, "a@x:b@y\n# c@x: d\nb@y: a@x\n", 0 },
		{ "weird+tag.name-1_=~!#$%&'*/?^`{|}@sub-1.ex_ample.org:h\n",
		    NULL, 1 },
		/* UTF-8 local parts (RFC 6531) */
		{ "j\xc3\xb6rg@x:h\n\xe7\x94\xb0\xe4\xb8\xad@x:\n",
		    "\xc3\xb6@x: j\xc3\xb6rg@x, \xe7\x94\xb0\xe4\xb8\xad@x\n", 1 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct good_case *c = &cases[i];
		char *errs = NULL;
		struct userdb *db = load(c->users,
		    c->users ? strlen(c->users) : 0, c->aliases,
		    c->aliases ? strlen(c->aliases) : 0, &errs, NULL, NULL);
		CU_ASSERT_PTR_NOT_NULL(db);
		if (db == NULL)
			fprintf(stderr, "good case %zu: %s\n", i, errs);
		CU_ASSERT_STRING_EQUAL(errs, "");
		CU_ASSERT_EQUAL(userdb_has_users(db), c->has_users);
		userdb_free(&db);
		CU_ASSERT_PTR_NULL(db);
		free(errs);
		remove_tmps();
	}
	userdb_free(NULL);
}

struct bad_case {
	int aliases;	/* the text goes to the aliases file */
	const char *text;
	size_t len;	/* 0: strlen */
	const char *want;	/* "%s" stands for the file's path */
};

static const struct bad_case bad_cases[] = {
	{ 0, "nocolon@x\n", 0, "%s:1: expected user@domain:HASH\n" },
	{ 0, "userx:h\n", 0, "%s:1: address without @\n" },
	{ 0, "@x:h\n", 0, "%s:1: empty local part\n" },
	{ 0, "u@:h\n", 0, "%s:1: empty domain\n" },
	{ 0, ":h\n", 0, "%s:1: address without @\n" },
	{ 0, "u@.x:h\n", 0, "%s:1: bad domain\n" },
	{ 0, "u@x y:h\n", 0, "%s:1: bad character in domain\n" },
	{ 0, "u@x/../y:h\n", 0, "%s:1: bad character in domain\n" },
	{ 0, "u v@x:h\n", 0, "%s:1: bad character in local part\n" },
	{ 0, "u<v@x:h\n", 0, "%s:1: bad character in local part\n" },
	{ 0, "\xc3@x:h\n", 0, "%s:1: local part is not valid UTF-8\n" },
	{ 0, "a\xc2\x85@x:h\n", 0, "%s:1: local part is not valid UTF-8\n" },
	{ 0, "\xed\xa0\x80@x:h\n", 0, "%s:1: local part is not valid UTF-8\n" },
	{ 0, "u@\xc3\xa9.x:h\n", 0, "%s:1: bad character in domain\n" },
	{ 1, "a@x: j\xc3rg@y\n", 0, "%s:1: target: local part is not valid UTF-8\n" },
	{ 0, "u\x01@x:h\n", 0, "%s:1: bad character in local part\n" },
	{ 0, "u@x:has h\n", 0, "%s:1: bad character in hash\n" },
	{ 0, "u@x:h\x7f\n", 0, "%s:1: bad character in hash\n" },
	{ 0, "u@x:h\n\nU@X:h2\n", 0, "%s:3: duplicate user u@x\n" },
	{ 0, "u@x:h\0\n", 7, "%s:1: NUL byte in line\n" },
	{ 0, "bad\nu@x:h\n# ok\nbad2:\n", 0,
	    "%s:1: expected user@domain:HASH\n%s:4: address without @\n" },
	{ 0, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "@x:h\n", 0, "%s:1: local part too long\n" },
	{ 1, "a@x\n", 0, "%s:1: expected alias@domain: target, ...\n" },
	{ 1, "a@x:\n", 0, "%s:1: alias without targets\n" },
	{ 1, "a@x: , ,\t\n", 0, "%s:1: alias without targets\n" },
	{ 1, "a@x: b\n", 0, "%s:1: target: address without @\n" },
	{ 1, "a@x: b@y, @z\n", 0, "%s:1: target: empty local part\n" },
	{ 1, "a@x: b@y <c@z>\n", 0, "%s:1: target: bad character in local part\n" },
	{ 1, "a@x: b@y\nA@X: c@y\n", 0, "%s:2: duplicate alias a@x\n" },
	{ 1, "x: b@y\n", 0, "%s:1: address without @\n" },
	{ 1, "a@x: b@y\r\n\0\r\n", 12, "%s:2: NUL byte in line\n" },
};

/* Copies tmpl to out with each "%s" replaced by path. */
static void
subst_path(char *out, size_t size, const char *tmpl, const char *path)
{
	struct buf b;

	buf_init(&b, size - 1);
	for (const char *p = tmpl; *p; p++) {
		if (p[0] == '%' && p[1] == 's') {
			buf_puts(&b, path);
			p++;
		} else {
			buf_append(&b, p, 1);
		}
	}
	str_copy(out, b.data ? b.data : "", size);
	buf_free(&b);
}

static void
test_load_bad(void)
{
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		const struct bad_case *c = &bad_cases[i];
		size_t len = c->len ? c->len : strlen(c->text);
		const char *up = NULL, *ap = NULL;
		char *errs = NULL, want[1024];
		struct userdb *db;

		if (c->aliases)
			db = load(NULL, 0, c->text, len, &errs, &up, &ap);
		else
			db = load(c->text, len, NULL, 0, &errs, &up, &ap);
		CU_ASSERT_PTR_NULL(db);
		subst_path(want, sizeof want, c->want, c->aliases ? ap : up);
		CU_ASSERT_STRING_EQUAL(errs, want);
		if (strcmp(errs, want) != 0)
			fprintf(stderr, "bad case %zu: got [%s] want [%s]\n", i,
			    errs, want);
		userdb_free(&db);
		free(errs);
		remove_tmps();
	}
}

static void
test_load_limits(void)
{
	struct buf b;
	char *errs = NULL, want[256];
	const char *up;
	struct userdb *db;
	FILE *errf;
	size_t size;

	/* A line of 4096 bytes is fine, 4097 is not; the next line is read. */
	buf_init(&b, 1 << 20);
	buf_puts(&b, "u@x:");
	while (b.len < 4096)
		buf_puts(&b, "h");
	buf_puts(&b, "\nv@x:");
	while (b.len < 4096 + 1 + 4097)
		buf_puts(&b, "h");
	buf_puts(&b, "\nw@x:\nbad\n");
	db = load(b.data, b.len, NULL, 0, &errs, &up, NULL);
	CU_ASSERT_PTR_NULL(db);
	snprintf(want, sizeof want, "%s:2: line too long (max 4096 bytes)\n"
	    "%s:4: expected user@domain:HASH\n", up, up);
	CU_ASSERT_STRING_EQUAL(errs, want);
	free(errs);
	remove_tmps();

	/* A 1 MiB line with no newline at all. */
	buf_reset(&b);
	while (b.len < (1 << 20) - 8)
		buf_puts(&b, "xxxxxxxx");
	db = load(NULL, 0, b.data, b.len, &errs, NULL, &up);
	CU_ASSERT_PTR_NULL(db);
	snprintf(want, sizeof want, "%s:1: line too long (max 4096 bytes)\n",
	    up);
	CU_ASSERT_STRING_EQUAL(errs, want);
	free(errs);
	remove_tmps();

	/* 100000 entries load; one more is refused. */
	buf_free(&b);
	buf_init(&b, 8 << 20);
	for (int i = 0; i < 100000; i++)
		buf_printf(&b, "user%d@x.example:\n", i);
	db = load(b.data, b.len, NULL, 0, &errs, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL(db);
	CU_ASSERT_EQUAL(userdb_lookup(db, "USER99999@x.example"), USERDB_USER);
	CU_ASSERT_EQUAL(userdb_lookup(db, "user100000@x.example"),
	    USERDB_NONE);
	userdb_free(&db);
	free(errs);
	remove_tmps();
	buf_puts(&b, "one-more@x.example:\n");
	db = load(b.data, b.len, NULL, 0, &errs, &up, NULL);
	CU_ASSERT_PTR_NULL(db);
	snprintf(want, sizeof want, "%s:100001: too many entries (max 100000)\n",
	    up);
	CU_ASSERT_STRING_EQUAL(errs, want);
	free(errs);
	remove_tmps();

	/* Many errors: the first 50 are printed, then a count. */
	buf_reset(&b);
	for (int i = 0; i < 70; i++)
		buf_puts(&b, "junk\n");
	db = load(b.data, b.len, NULL, 0, &errs, &up, NULL);
	CU_ASSERT_PTR_NULL(db);
	{
		int lines = 0;
		char tail[128];
		for (char *p = errs; *p; p++)
			lines += *p == '\n';
		CU_ASSERT_EQUAL(lines, 51);
		snprintf(tail, sizeof tail, "%s: 70 errors in all\n", up);
		CU_ASSERT(strlen(errs) > strlen(tail) &&
		    strcmp(errs + strlen(errs) - strlen(tail), tail) == 0);
	}
	free(errs);
	remove_tmps();
	buf_free(&b);

	/* A missing file. */
	errf = open_memstream(&errs, &size);
	db = userdb_load("/nonexistent/users", NULL, errf);
	fclose(errf);
	CU_ASSERT_PTR_NULL(db);
	CU_ASSERT_STRING_EQUAL(errs,
	    "/nonexistent/users: cannot open: No such file or directory\n");
	free(errs);
	/* Errors may go nowhere. */
	CU_ASSERT_PTR_NULL(userdb_load(NULL, "/nonexistent/aliases", NULL));
	/* A directory is not a file. */
	errf = open_memstream(&errs, &size);
	db = userdb_load("/tmp", NULL, errf);
	fclose(errf);
	CU_ASSERT_PTR_NULL(db);
	free(errs);
}

static void
test_hostile(void)
{
	unsigned char junk[8192];
	unsigned int x = 7;

	for (int round = 0; round < 20; round++) {
		char *errs = NULL;
		struct userdb *db;
		for (size_t i = 0; i < sizeof junk; i++) {
			x = x * 1103515245u + 12345u;
			junk[i] = (unsigned char)(x >> 16);
			/* Some rounds are mostly printable with line breaks. */
			if (round % 2 && junk[i] >= 0x80)
				junk[i] = (junk[i] & 1) ? '\n' : ':';
		}
		db = load((char *)junk, sizeof junk, (char *)junk, sizeof junk,
		    &errs, NULL, NULL);
		/* Junk is refused with diagnostics, never a crash. */
		CU_ASSERT_PTR_NULL(db);
		CU_ASSERT(strlen(errs) > 0);
		userdb_free(&db);
		free(errs);
		remove_tmps();
	}
	/* Only blank lines, CRs and comments: an empty but valid db. */
	{
		char *errs = NULL;
		const char text[] = "\r\n\n\r\n#\n# x: y\n \t \r\n";
		struct userdb *db = load(text, sizeof text - 1, text,
		    sizeof text - 1, &errs, NULL, NULL);
		CU_ASSERT_PTR_NOT_NULL(db);
		CU_ASSERT_EQUAL(userdb_lookup(db, "a@x"), USERDB_NONE);
		userdb_free(&db);
		free(errs);
		remove_tmps();
	}
}

struct lookup_case {
	const char *addr;
	enum userdb_kind with_users;
	enum userdb_kind without_users;
};

static void
test_lookup(void)
{
	static const char users[] = "alice@x.example:\nBob@X.Example:h\n"
	    "both@x.example:\n";
	static const char aliases[] = "postmaster@x.example: alice@x.example\n"
	    "both@x.example: alice@x.example\n";
	static const struct lookup_case cases[] = {
		{ "alice@x.example", USERDB_USER, USERDB_USER },
		{ "ALICE@X.EXAMPLE", USERDB_USER, USERDB_USER },
		{ "bob@x.example", USERDB_USER, USERDB_USER },
		{ "postmaster@x.example", USERDB_ALIAS, USERDB_ALIAS },
		{ "PostMaster@x.Example", USERDB_ALIAS, USERDB_ALIAS },
		{ "both@x.example", USERDB_ALIAS, USERDB_ALIAS },
		{ "carol@x.example", USERDB_NONE, USERDB_USER },
		{ "alice@y.example", USERDB_NONE, USERDB_USER },
		{ "alice", USERDB_NONE, USERDB_NONE },
		{ "", USERDB_NONE, USERDB_NONE },
		{ NULL, USERDB_NONE, USERDB_NONE },
	};
	char *errs = NULL, *errs2 = NULL;
	struct userdb *db = load(users, sizeof users - 1, aliases,
	    sizeof aliases - 1, &errs, NULL, NULL);
	struct userdb *db2 = load(NULL, 0, aliases, sizeof aliases - 1, &errs2,
	    NULL, NULL);
	char huge[2000];

	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	CU_ASSERT_PTR_NOT_NULL_FATAL(db2);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		CU_ASSERT_EQUAL(userdb_lookup(db, cases[i].addr),
		    cases[i].with_users);
		CU_ASSERT_EQUAL(userdb_lookup(db2, cases[i].addr),
		    cases[i].without_users);
	}
	memset(huge, 'a', sizeof huge - 1);
	huge[sizeof huge - 1] = '\0';
	huge[5] = '@';
	CU_ASSERT_EQUAL(userdb_lookup(db, huge), USERDB_NONE);
	CU_ASSERT_EQUAL(userdb_lookup(NULL, "alice@x.example"), USERDB_NONE);
	CU_ASSERT_EQUAL(userdb_has_users(db2), 0);
	CU_ASSERT_EQUAL(userdb_has_users(NULL), 0);
	userdb_free(&db);
	userdb_free(&db2);
	free(errs);
	free(errs2);
	remove_tmps();
}

static void
test_password(void)
{
	struct crypt_data *cd = xcalloc(1, sizeof *cd);
	const char *hash = crypt_r("s3cret pass", "$6$fixedsaltABCD$", cd);
	struct buf users;
	char *errs = NULL, longpw[1100];
	struct userdb *db;

	CU_ASSERT_PTR_NOT_NULL_FATAL(hash);
	CU_ASSERT_FATAL(strncmp(hash, "$6$fixedsaltABCD$", 17) == 0);
	buf_init(&users, 4096);
	buf_printf(&users, "user@x.example:%s\nnohash@x.example:\n"
	    "locked@x.example:*\nbang@x.example:!%s\n", hash, hash);
	db = load(users.data, users.len, NULL, 0, &errs, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	memset(longpw, 'p', sizeof longpw - 1);
	longpw[sizeof longpw - 1] = '\0';

	CU_ASSERT_EQUAL(userdb_check_password(db, "user@x.example",
	    "s3cret pass"), 1);
	CU_ASSERT_EQUAL(userdb_check_password(db, "USER@X.Example",
	    "s3cret pass"), 1);
	CU_ASSERT_EQUAL(userdb_check_password(db, "user@x.example",
	    "s3cret pasS"), 0);
	CU_ASSERT_EQUAL(userdb_check_password(db, "user@x.example",
	    "s3cret pass "), 0);
	CU_ASSERT_EQUAL(userdb_check_password(db, "user@x.example", ""), 0);
	CU_ASSERT_EQUAL(userdb_check_password(db, "user@x.example", NULL), 0);
	CU_ASSERT_EQUAL(userdb_check_password(db, "user@x.example", longpw),
	    0);
	CU_ASSERT_EQUAL(userdb_check_password(db, "user", "s3cret pass"), 0);
	CU_ASSERT_EQUAL(userdb_check_password(db, NULL, "s3cret pass"), 0);
	CU_ASSERT_EQUAL(userdb_check_password(db, "nohash@x.example", ""), 0);
	CU_ASSERT_EQUAL(userdb_check_password(db, "nohash@x.example", "x"), 0);
	CU_ASSERT_EQUAL(userdb_check_password(db, "locked@x.example", "*"), 0);
	CU_ASSERT_EQUAL(userdb_check_password(db, "bang@x.example",
	    "s3cret pass"), 0);
	CU_ASSERT_EQUAL(userdb_check_password(db, "other@x.example",
	    "s3cret pass"), 0);
	/* The dummy hash is not a password of anyone. */
	CU_ASSERT_EQUAL(userdb_check_password(db, "other@x.example",
	    "not-a-password"), 0);
	CU_ASSERT_EQUAL(userdb_check_password(NULL, "user@x.example",
	    "s3cret pass"), 0);


	userdb_free(&db);
	free(errs);
	remove_tmps();
	buf_free(&users);
	free(cd);
}

static int
is_local_x(const char *domain, void *arg)
{
	(*(int *)arg)++;
	return strcasecmp(domain, "x") == 0;
}

struct expand_case {
	const char *addr;
	int want;	/* count, or -1 */
	const char *list;	/* the results joined by ' ', in order */
};

static void
test_expand(void)
{
	static const char users[] = "a@x:\nb@x:\nc@x:\nself@x:\n";
	struct buf al;
	char *errs = NULL;
	struct userdb *db;
	int calls = 0;
	static const struct expand_case cases[] = {
		{ "a@x", 1, "a@x" },
		{ "Someone@Else.org", 1, "Someone@Else.org" },
		{ "unknown@x", 1, "unknown@x" },
		{ "list@x", 3, "a@x b@x ext@remote.org" },
		{ "LIST@X", 3, "a@x b@x ext@remote.org" },
		{ "nested@x", 4, "a@x b@x ext@remote.org c@x" },
		{ "dup@x", 3, "a@x b@x ext@remote.org" },
		{ "self@x", 2, "self@x b@x" },
		{ "loop1@x", -1, NULL },
		{ "noself@x", -1, NULL },
		{ "loopout@x", 1, "a@x" },
		{ "r@remote.org", 2, "r@remote.org a@x" },
		{ "diamond@x", 2, "a@x b@x" },
		{ "p1@x", 1, "a@x" },
		{ "q1@x", -1, NULL },
		{ "ok1000@x", 1000, NULL },
		{ "too1001@x", -1, NULL },
		{ "wide@x", 1, "a@x" },
	};

	buf_init(&al, 1 << 20);
	buf_puts(&al,
	    "list@x: a@x, b@x, ext@remote.org\n"
	    "nested@x: list@x, c@x, B@X\n"
	    "dup@x: a@x, A@X, list@x, a@x, EXT@remote.org\n"
	    "self@x: self@x, b@x\n"
	    "loop1@x: loop2@x\n"
	    "loop2@x: loop1@x\n"
	    "noself@x: noself@x\n"
	    "loopout@x: loop3@x, a@x\n"
	    "loop3@x: loopout@x\n"
	    "r@remote.org: r@remote.org, a@x\n"
	    "diamond@x: d2a@x, d2b@x\n"
	    "d2a@x: d3@x\nd2b@x: d3@x\nd3@x: a@x, b@x\n"
	    /* Twenty aliases over fifty times the same target. */
	    "wide@x: w2@x w2@x w2@x w2@x w2@x w2@x w2@x w2@x w2@x w2@x\n"
	    "w2@x: w3@x w3@x w3@x w3@x w3@x w3@x w3@x w3@x w3@x w3@x\n"
	    "w3@x: a@x a@x a@x a@x a@x a@x a@x a@x a@x a@x a@x a@x\n");
	/* A chain of 20 aliases is fine, 21 is too deep. */
	for (int i = 1; i < 20; i++)
		buf_printf(&al, "p%d@x: p%d@x\n", i, i + 1);
	buf_puts(&al, "p20@x: a@x\n");
	for (int i = 1; i < 21; i++)
		buf_printf(&al, "q%d@x: q%d@x\n", i, i + 1);
	buf_puts(&al, "q21@x: a@x\n");
	/* 10 groups of 100 distinct targets = 1000; 11 groups = 1100. */
	buf_puts(&al, "ok1000@x:");
	for (int g = 0; g < 10; g++)
		buf_printf(&al, " g%d@x", g);
	buf_puts(&al, "\ntoo1001@x: ok1000@x, one-more@remote.org\n");
	for (int g = 0; g < 10; g++) {
		buf_printf(&al, "g%d@x:", g);
		for (int k = 0; k < 100; k++)
			buf_printf(&al, " m%d.%d@remote.org", g, k);
		buf_puts(&al, "\n");
	}
	db = load(users, sizeof users - 1, al.data, al.len, &errs, NULL, NULL);
	CU_ASSERT_STRING_EQUAL(errs, "");
	CU_ASSERT_PTR_NOT_NULL_FATAL(db);

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct expand_case *c = &cases[i];
		char **list = (char **)1;
		int n = userdb_expand(db, c->addr, is_local_x, &calls, &list);
		struct buf got;

		CU_ASSERT_EQUAL(n, c->want);
		if (n < 0) {
			CU_ASSERT_PTR_NULL(list);
			if (c->want >= 0)
				fprintf(stderr, "expand %s: -1\n", c->addr);
			continue;
		}
		buf_init(&got, 1 << 20);
		for (int k = 0; k < n; k++)
			buf_printf(&got, "%s%s", k ? " " : "", list[k]);
		if (c->list != NULL) {
			CU_ASSERT_STRING_EQUAL(got.data ? got.data : "",
			    c->list);
			if (strcmp(got.data ? got.data : "", c->list) != 0)
				fprintf(stderr, "expand %s: [%s]\n", c->addr,
				    got.data);
		}
		buf_free(&got);
		userdb_list_free(list, n);
	}
	CU_ASSERT(calls > 0);
	userdb_list_free(NULL, 0);
	{
		char **list = NULL;
		CU_ASSERT_EQUAL(userdb_expand(NULL, "a@x", is_local_x, &calls,
		    &list), -1);
		CU_ASSERT_EQUAL(userdb_expand(db, NULL, is_local_x, &calls,
		    &list), -1);
	}
	userdb_free(&db);
	free(errs);
	remove_tmps();

	/* Without a users file every local address is deliverable, so a
	 * self-reference keeps a copy; is_local NULL means all local. */
	{
		const char text[] = "noself@x: noself@x\nm@x: m@x, o@y\n";
		db = load(NULL, 0, text, sizeof text - 1, &errs, NULL, NULL);
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	{
		char **list = NULL;
		int n = userdb_expand(db, "noself@x", NULL, NULL, &list);
		CU_ASSERT_EQUAL(n, 1);
		if (n == 1)
			CU_ASSERT_STRING_EQUAL(list[0], "noself@x");
		userdb_list_free(list, n);
		n = userdb_expand(db, "M@X", NULL, NULL, &list);
		CU_ASSERT_EQUAL(n, 2);
		if (n == 2) {
			CU_ASSERT_STRING_EQUAL(list[0], "m@x");
			CU_ASSERT_STRING_EQUAL(list[1], "o@y");
		}
		userdb_list_free(list, n);
	}
	userdb_free(&db);
	free(errs);
	remove_tmps();
	buf_free(&al);
}

/* Who may send as what: the user itself, the aliases that reach it,
 * through other aliases too; nothing else. */
static void
test_sender_owned(void)
{
	static const char users[] = "carol@x.test:\ndave@x.test:\n";
	static const char aliases[] =
	    "c@x.test: carol@x.test\n"
	    "team@x.test: c@x.test, dave@x.test\n"
	    "out@x.test: someone@remote.example\n"
	    "loop1@x.test: loop2@x.test\nloop2@x.test: loop1@x.test\n";
	char *errs = NULL;
	struct userdb *db = load(users, sizeof users - 1, aliases, sizeof aliases - 1,
	    &errs, NULL, NULL);

	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	CU_ASSERT(userdb_sender_owned(db, "carol@x.test", "carol@x.test"));
	CU_ASSERT(userdb_sender_owned(db, "carol@x.test", "Carol@X.TEST"));
	CU_ASSERT(userdb_sender_owned(db, "CAROL@x.test", "carol@x.test"));
	CU_ASSERT(userdb_sender_owned(db, "carol@x.test", "c@x.test"));
	CU_ASSERT(userdb_sender_owned(db, "carol@x.test", "team@x.test"));
	CU_ASSERT(userdb_sender_owned(db, "dave@x.test", "team@x.test"));
	CU_ASSERT(!userdb_sender_owned(db, "dave@x.test", "c@x.test"));
	CU_ASSERT(!userdb_sender_owned(db, "carol@x.test", "dave@x.test"));
	CU_ASSERT(!userdb_sender_owned(db, "carol@x.test", "out@x.test"));
	CU_ASSERT(!userdb_sender_owned(db, "carol@x.test", "loop1@x.test"));
	CU_ASSERT(!userdb_sender_owned(db, "carol@x.test", "someone@remote.example"));
	CU_ASSERT(!userdb_sender_owned(db, "carol@x.test", "carol@x.test.evil"));
	CU_ASSERT(!userdb_sender_owned(db, "carol@x.test", ""));
	CU_ASSERT(!userdb_sender_owned(NULL, "carol@x.test", "carol@x.test"));
	userdb_free(&db);
	free(errs);
	errs = NULL;
	{
		static const char u8[] = "j\xc3\xb6rg@x.test:\n";
		static const char a8[] = "\xc3\xb6@x.test: J\xc3\xb6rg@X.test\n";

		db = load(u8, sizeof u8 - 1, a8, sizeof a8 - 1, &errs, NULL, NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(db);
		CU_ASSERT_EQUAL(userdb_lookup(db, "j\xc3\xb6rg@x.test"), USERDB_USER);
		CU_ASSERT_EQUAL(userdb_lookup(db, "J\xc3\xb6RG@X.TEST"), USERDB_USER);
		CU_ASSERT_EQUAL(userdb_lookup(db, "j\xc3\x96rg@x.test"), USERDB_NONE);
		CU_ASSERT_EQUAL(userdb_lookup(db, "\xc3\xb6@x.test"), USERDB_ALIAS);
		CU_ASSERT(userdb_sender_owned(db, "j\xc3\xb6rg@x.test", "\xc3\xb6@x.test"));
	}
	userdb_free(&db);
	free(errs);
	remove_tmps();
}

int
main(void)
{
	CU_pSuite s;
	unsigned int failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("userdb", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "load good", test_load_good) == NULL ||
	    CU_add_test(s, "load bad", test_load_bad) == NULL ||
	    CU_add_test(s, "load limits", test_load_limits) == NULL ||
	    CU_add_test(s, "hostile", test_hostile) == NULL ||
	    CU_add_test(s, "lookup", test_lookup) == NULL ||
	    CU_add_test(s, "password", test_password) == NULL ||
	    CU_add_test(s, "expand", test_expand) == NULL ||
	    CU_add_test(s, "sender owned", test_sender_owned) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	remove_tmps();
	return failed == 0 ? 0 : 1;
}
