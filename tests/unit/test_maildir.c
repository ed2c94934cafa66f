/*
 * Unit tests for storage/maildir: directory creation, byte-exact file
 * content (CRLF -> LF, lone CR, 8-bit, NUL, 5 MiB), unique names under 8
 * threads, batches, injected I/O faults (nothing left in tmp/ or new/),
 * hostile user and domain names, a mail_dir that is a file.
 * Every test works in its own directory under /tmp, removed at the end.
 */
#include <CUnit/Basic.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "storage/maildir.h"

#define HOST "mx.example.org"

static char root[256];

/* Bodies are read through readers (lib/body_reader.h) in pieces of
 * test_piece bytes (0: one piece): each reader here is made for one item
 * and kept (reachable) to the end. */
static size_t test_piece;
static pthread_mutex_t readers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct test_reader {
	struct body_reader r;
	struct body_mem m;
	struct test_reader *next;
} *readers;

static const struct body_reader *
reader_of(const char *p, size_t n)
{
	struct test_reader *t = xcalloc(1, sizeof *t);

	body_reader_mem(&t->r, &t->m, p, n, test_piece);
	pthread_mutex_lock(&readers_lock);
	t->next = readers;
	readers = t;
	pthread_mutex_unlock(&readers_lock);
	return &t->r;
}

/* A reader that fails after fail_after pieces. */
struct failing {
	struct body_mem m;
	int left;
};

static int
failing_next(void *arg, const char **p, size_t *n)
{
	struct failing *f = arg;

	if (f->left-- <= 0)
		return -1;
	*p = f->m.p + f->m.off;
	*n = f->m.len - f->m.off < 1000 ? f->m.len - f->m.off : 1000;
	f->m.off += *n;
	return 0;
}

static int
failing_rewind(void *arg)
{
	((struct failing *)arg)->m.off = 0;
	return 0;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
fresh_root(void)
{
	if (root[0] != '\0')
		nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	str_copy(root, "/tmp/test_maildir.XXXXXX", sizeof root);
	CU_ASSERT_FATAL(mkdtemp(root) != NULL);
}

static void
path_of(char *out, size_t size, const char *rel)
{
	int n = snprintf(out, size, "%s/%s", root, rel);
	CU_ASSERT_FATAL(n > 0 && (size_t)n < size);
}

/* Number of entries (not . or ..) in root/rel; -1 if it cannot be read. */
static int
count_entries(const char *rel)
{
	char path[512];
	DIR *d;
	struct dirent *e;
	int n = 0;

	path_of(path, sizeof path, rel);
	d = opendir(path);
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Reads root/rel; returns heap bytes and *len, or NULL. */
static char *
read_all(const char *rel, size_t *len)
{
	char path[1024];
	FILE *f;
	char *data;
	long n;

	path_of(path, sizeof path, rel);
	f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	data = xmalloc((size_t)n + 1);
	if (fread(data, 1, (size_t)n, f) != (size_t)n) {
		free(data);
		data = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return data;
}

static int
is_dir_0700(const char *rel)
{
	char path[512];
	struct stat st;

	path_of(path, sizeof path, rel);
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
	    (st.st_mode & 0777) == 0700;
}

static void
test_creates_dirs(void)
{
	char mail_dir[512], err[MAILDIR_ERROR_MAX];
	const char body[] = "Subject: hi\r\n\r\nhello\r\n";

	fresh_root();
	path_of(mail_dir, sizeof mail_dir, "var/deep/mail");
	CU_ASSERT_EQUAL(maildir_deliver(mail_dir, HOST, "Example.ORG", "Bob",
	    "a@b", "bob@example.org", body, sizeof body - 1, err, sizeof err),
	    MAILDIR_OK);
	CU_ASSERT_STRING_EQUAL(err, "");
	CU_ASSERT(is_dir_0700("var/deep/mail/example.org/bob"));
	CU_ASSERT(is_dir_0700("var/deep/mail/example.org/bob/tmp"));
	CU_ASSERT(is_dir_0700("var/deep/mail/example.org/bob/new"));
	CU_ASSERT(is_dir_0700("var/deep/mail/example.org/bob/cur"));
	CU_ASSERT_EQUAL(count_entries("var/deep/mail/example.org/bob/new"), 1);
	CU_ASSERT_EQUAL(count_entries("var/deep/mail/example.org/bob/tmp"), 0);
	/* A second delivery into the existing Maildir. */
	CU_ASSERT_EQUAL(maildir_deliver(mail_dir, HOST, "example.org", "bob",
	    "", "bob@example.org", body, sizeof body - 1, NULL, 0), MAILDIR_OK);
	CU_ASSERT_EQUAL(count_entries("var/deep/mail/example.org/bob/new"), 2);
}

struct content_case {
	const char *name;
	const char *sender;
	const char *body;
	size_t len;
	const char *want;	/* after the prefix headers */
	size_t want_len;
};

#define S(x) x, sizeof(x) - 1

static const struct content_case content_cases[] = {
	{ "plain", "a@b", S("Received: x\r\n\r\nhello\r\n"),
	    S("Received: x\n\nhello\n") },
	{ "null sender", "", S("X: y\r\n"), S("X: y\n") },
	{ "empty body", "a@b", S(""), S("") },
	{ "lone CR kept", "a@b", S("a\rb\r\n"), S("a\rb\n") },
	{ "CR CR LF", "a@b", S("a\r\r\nb"), S("a\r\nb") },
	{ "trailing CR", "a@b", S("abc\r"), S("abc\r") },
	{ "bare LF kept", "a@b", S("a\n\nb\r\n"), S("a\n\nb\n") },
	{ "LF CR", "a@b", S("a\n\rb"), S("a\n\rb") },
	{ "8-bit", "a@b", S("\xff\xfe\x80 \xc3\xa9\r\n"),
	    S("\xff\xfe\x80 \xc3\xa9\n") },
	{ "NUL kept", "a@b", S("a\0b\r\n\0"), S("a\0b\n\0") },
	{ "only CRLF", "a@b", S("\r\n\r\n\r\n"), S("\n\n\n") },
	{ "dot line", "a@b", S(".\r\n..\r\n"), S(".\n..\n") },
};

static void
check_file(const struct maildir_item *it, const char *want_prefix,
    const char *want, size_t want_len)
{
	char rel[600];
	size_t len, plen = strlen(want_prefix);
	char *data;
	const char *s;

	snprintf(rel, sizeof rel, "mail/%s/%s/new/%s", it->domain, it->user,
	    it->name);
	data = read_all(rel, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(data);
	CU_ASSERT_EQUAL(len, plen + want_len);
	if (len == plen + want_len) {
		CU_ASSERT(memcmp(data, want_prefix, plen) == 0);
		CU_ASSERT(memcmp(data + plen, want, want_len) == 0);
	}
	/* The name carries the file size. */
	s = strstr(it->name, ",S=");
	CU_ASSERT_PTR_NOT_NULL(s);
	if (s != NULL)
		CU_ASSERT_EQUAL(strtoull(s + 3, NULL, 10), len);
	free(data);
}

static void
test_content(void)
{
	char mail_dir[512], prefix[256];

	fresh_root();
	path_of(mail_dir, sizeof mail_dir, "mail");
	/* Whole, and cut into pieces of 1, 2 and 3 bytes: a CRLF split
	 * between two pieces is one line end all the same. */
	for (size_t k = 0; k < 4 * (sizeof content_cases /
	    sizeof content_cases[0]); k++) {
		const struct content_case *c = &content_cases[k / 4];

		test_piece = k % 4;
		struct maildir_item it = {
			.domain = "d.example", .user = "u", .sender = c->sender,
			.recipient = "u@d.example", .body = reader_of(c->body, c->len),
		};
		CU_ASSERT_EQUAL(maildir_deliver_batch(mail_dir, HOST, &it, 1),
		    1);
		CU_ASSERT_EQUAL(it.status, MAILDIR_OK);
		if (it.status != MAILDIR_OK) {
			fprintf(stderr, "case %s: %s\n", c->name, it.error);
			continue;
		}
		snprintf(prefix, sizeof prefix,
		    "Return-Path: <%s>\nDelivered-To: <u@d.example>\n",
		    c->sender);
		check_file(&it, prefix, c->want, c->want_len);
		CU_ASSERT(strstr(it.name, "." HOST ",S=") != NULL);
	}
	test_piece = 0;
}

/* A message its reader cannot read to the end: the delivery defers and
 * leaves no file; items sharing one reader each read it whole. */
static void
test_reader_fails(void)
{
	char mail_dir[512], *body = xmalloc(10000);
	struct failing f;
	struct body_reader r = { failing_next, failing_rewind, &f, 10000 };
	struct maildir_item items[2];

	memset(body, 'a', 10000);
	memcpy(body, "S: x\r\n\r\n", 9);
	fresh_root();
	path_of(mail_dir, sizeof mail_dir, "mail");
	memset(&f, 0, sizeof f);
	f.m.p = body;
	f.m.len = 10000;
	f.left = 5;	/* of 10 pieces */
	memset(items, 0, sizeof items);
	items[0].domain = "d.example";
	items[0].user = "r";
	items[0].sender = "a@b";
	items[0].recipient = "r@d.example";
	items[0].body = &r;
	CU_ASSERT_EQUAL(maildir_deliver_batch(mail_dir, HOST, items, 1), 0);
	CU_ASSERT_EQUAL(items[0].status, MAILDIR_TEMP);
	CU_ASSERT_STRING_EQUAL(items[0].error, "maildir: cannot read the message");
	CU_ASSERT_EQUAL(count_entries("mail/d.example/r/new"), 0);
	CU_ASSERT_EQUAL(count_entries("mail/d.example/r/tmp"), 0);

	f.left = 1000;
	items[1] = items[0];
	items[1].user = "s";
	CU_ASSERT_EQUAL(maildir_deliver_batch(mail_dir, HOST, items, 2), 2);
	CU_ASSERT_EQUAL(count_entries("mail/d.example/r/new"), 1);
	CU_ASSERT_EQUAL(count_entries("mail/d.example/s/new"), 1);
	free(body);
}

/* Reference conversion: every CRLF to LF. */
static char *
crlf_to_lf(const char *in, size_t n, size_t *out_len)
{
	char *out = xmalloc(n + 1);
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n')
			continue;
		out[o++] = in[i];
	}
	*out_len = o;
	return out;
}

static void
test_large(void)
{
	const size_t size = 5 * 1024 * 1024;
	char mail_dir[512];
	char *body = xmalloc(size), *want;
	size_t want_len;
	struct maildir_item it = {
		.domain = "d.example", .user = "big", .sender = "a@b",
		.recipient = "big@d.example",
	};
	unsigned int x = 12345;

	fresh_root();
	path_of(mail_dir, sizeof mail_dir, "mail");
	/* Lines of varied length, all bytes, CRLF pairs across 64 KiB
	 * chunk borders; a lone CR now and then. */
	for (size_t i = 0; i < size; i++) {
		x = x * 1103515245u + 12345u;
		if (i % 77 == 75 || (i % 65536) == 65535) {
			body[i] = '\r';
		} else if (i > 0 && body[i - 1] == '\r' && (x >> 16) % 5 != 0) {
			body[i] = '\n';
		} else {
			body[i] = (char)(x >> 16);
		}
	}
	it.body = reader_of(body, size);
	want = crlf_to_lf(body, size, &want_len);
	CU_ASSERT_EQUAL(maildir_deliver_batch(mail_dir, HOST, &it, 1), 1);
	CU_ASSERT_EQUAL_FATAL(it.status, MAILDIR_OK);
	check_file(&it, "Return-Path: <a@b>\nDelivered-To: <big@d.example>\n",
	    want, want_len);
	free(want);
	free(body);
}

#define THREADS 8
#define PER_THREAD 200

struct thread_arg {
	const char *mail_dir;
	char (*names)[MAILDIR_NAME_MAX];
	int failures;
};

static void *
deliver_thread(void *p)
{
	struct thread_arg *a = p;
	const char body[] = "Subject: t\r\n\r\nbody\r\n";

	for (int i = 0; i < PER_THREAD; i++) {
		struct maildir_item it = {
			.domain = "d.example", .user = "many", .sender = "a@b",
			.recipient = "many@d.example", .body = reader_of(body, sizeof body - 1),
		};
		maildir_deliver_batch(a->mail_dir, HOST, &it, 1);
		if (it.status != MAILDIR_OK)
			a->failures++;
		str_copy(a->names[i], it.name, MAILDIR_NAME_MAX);
	}
	return NULL;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void
test_threads(void)
{
	char mail_dir[512];
	pthread_t th[THREADS];
	struct thread_arg args[THREADS];
	char (*names)[MAILDIR_NAME_MAX] = xcalloc(THREADS * PER_THREAD,
	    MAILDIR_NAME_MAX);
	int failures = 0, dups = 0;

	fresh_root();
	path_of(mail_dir, sizeof mail_dir, "mail");
	for (int t = 0; t < THREADS; t++) {
		args[t].mail_dir = mail_dir;
		args[t].names = names + t * PER_THREAD;
		args[t].failures = 0;
		CU_ASSERT_FATAL(pthread_create(&th[t], NULL, deliver_thread,
		    &args[t]) == 0);
	}
	for (int t = 0; t < THREADS; t++) {
		pthread_join(th[t], NULL);
		failures += args[t].failures;
	}
	CU_ASSERT_EQUAL(failures, 0);
	CU_ASSERT_EQUAL(count_entries("mail/d.example/many/new"),
	    THREADS * PER_THREAD);
	CU_ASSERT_EQUAL(count_entries("mail/d.example/many/tmp"), 0);
	qsort(names, THREADS * PER_THREAD, MAILDIR_NAME_MAX, cmp_names);
	for (int i = 1; i < THREADS * PER_THREAD; i++)
		if (strcmp(names[i - 1], names[i]) == 0)
			dups++;
	CU_ASSERT_EQUAL(dups, 0);
	/* Every name reported is a file in new/. */
	for (int i = 0; i < THREADS * PER_THREAD; i += 97) {
		char rel[600];
		size_t len;
		char *data;
		snprintf(rel, sizeof rel, "mail/d.example/many/new/%s",
		    names[i]);
		data = read_all(rel, &len);
		CU_ASSERT_PTR_NOT_NULL(data);
		free(data);
	}
	free(names);
}

static void
test_batch(void)
{
	char mail_dir[512];
	const char body[] = "X: 1\r\n";
	struct maildir_item items[] = {
		{ .domain = "one.example", .user = "alice" },
		{ .domain = "ONE.example", .user = "Alice" },
		{ .domain = "one.example", .user = "bob" },
		{ .domain = "two.example", .user = "alice" },
		{ .domain = "two.example", .user = "a/b" },	/* PERM */
		{ .domain = "one.example", .user = "bob" },
	};
	size_t n = sizeof items / sizeof items[0];

	fresh_root();
	path_of(mail_dir, sizeof mail_dir, "mail");
	for (size_t i = 0; i < n; i++) {
		items[i].sender = "s@x";
		items[i].recipient = "r@y";
		items[i].body = reader_of(body, sizeof body - 1);
	}
	CU_ASSERT_EQUAL(maildir_deliver_batch(mail_dir, HOST, items, n), n - 1);
	for (size_t i = 0; i < n; i++)
		CU_ASSERT_EQUAL(items[i].status,
		    i == 4 ? MAILDIR_PERM : MAILDIR_OK);
	CU_ASSERT_STRING_EQUAL(items[4].error,
	    "maildir: bad user name for a mailbox");
	CU_ASSERT_EQUAL(count_entries("mail/one.example/alice/new"), 2);
	CU_ASSERT_EQUAL(count_entries("mail/one.example/bob/new"), 2);
	CU_ASSERT_EQUAL(count_entries("mail/two.example/alice/new"), 1);
	CU_ASSERT_EQUAL(count_entries("mail/two.example"), 1);
	CU_ASSERT_EQUAL(maildir_deliver_batch(mail_dir, HOST, items, 0), 0);
}

struct fault_case {
	const char *name;
	enum maildir_fault_op op;
	int nth;
	int err;
	int fresh;	/* Maildir not created yet */
	enum maildir_status want;
	const char *want_error;
};

static const struct fault_case fault_cases[] = {
	{ "write ENOSPC", MAILDIR_FAULT_WRITE, 1, ENOSPC, 0, MAILDIR_TEMP,
	    "maildir: write: No space left on device" },
	{ "write EIO late", MAILDIR_FAULT_WRITE, 3, EIO, 0, MAILDIR_TEMP,
	    "maildir: write: Input/output error" },
	{ "write EDQUOT", MAILDIR_FAULT_WRITE, 2, EDQUOT, 0, MAILDIR_TEMP,
	    "maildir: write: Disk quota exceeded" },
	{ "fsync ENOSPC", MAILDIR_FAULT_FSYNC, 1, ENOSPC, 0, MAILDIR_TEMP,
	    "maildir: fsync: No space left on device" },
	{ "fsync EIO", MAILDIR_FAULT_FSYNC, 1, EIO, 0, MAILDIR_TEMP,
	    "maildir: fsync: Input/output error" },
	{ "rename EIO", MAILDIR_FAULT_RENAME, 1, EIO, 0, MAILDIR_TEMP,
	    "maildir: move into new: Input/output error" },
	{ "rename ENOSPC", MAILDIR_FAULT_RENAME, 1, ENOSPC, 0, MAILDIR_TEMP,
	    "maildir: move into new: No space left on device" },
	{ "open EMFILE", MAILDIR_FAULT_OPEN, 1, EMFILE, 0, MAILDIR_TEMP,
	    "maildir: open tmp file: Too many open files" },
	{ "dir fsync EIO", MAILDIR_FAULT_DIRSYNC, 1, EIO, 0, MAILDIR_TEMP,
	    "maildir: fsync new: Input/output error" },
	{ "mkdir EACCES", MAILDIR_FAULT_MKDIR, 1, EACCES, 1, MAILDIR_TEMP,
	    "maildir: create mailbox: Permission denied" },
	{ "mkdir ENOSPC deep", MAILDIR_FAULT_MKDIR, 3, ENOSPC, 1, MAILDIR_TEMP,
	    "maildir: create mailbox: No space left on device" },
	{ "rename ENOTDIR", MAILDIR_FAULT_RENAME, 1, ENOTDIR, 0, MAILDIR_TEMP,
	    "maildir: move into new: Not a directory" },
	{ "short write", MAILDIR_FAULT_WRITE, 2, 0, 0, MAILDIR_OK, "" },
	/* a file system without O_TMPFILE: the classic tmp/ + rename way */
	{ "no O_TMPFILE", MAILDIR_FAULT_OPEN, 1, EOPNOTSUPP, 0, MAILDIR_OK, "" },
};

static void
test_faults(void)
{
	char mail_dir[512];
	size_t body_len = 300 * 1024, want_len;
	char *body = xmalloc(body_len), *want;

	for (size_t i = 0; i < body_len; i++)
		body[i] = (i % 40 == 38) ? '\r' : (i % 40 == 39) ? '\n' :
		    (char)('a' + i % 26);
	want = crlf_to_lf(body, body_len, &want_len);
	for (size_t i = 0; i < sizeof fault_cases / sizeof fault_cases[0];
	    i++) {
		const struct fault_case *c = &fault_cases[i];
		struct maildir_item it = {
			.domain = "d.example", .user = "f", .sender = "a@b",
			.recipient = "f@d.example", .body = reader_of(body, body_len),
		};
		int before = 0;

		fresh_root();
		path_of(mail_dir, sizeof mail_dir, "mail");
		if (!c->fresh) {
			struct maildir_item first = it;
			maildir_deliver_batch(mail_dir, HOST, &first, 1);
			CU_ASSERT_EQUAL(first.status, MAILDIR_OK);
			before = 1;
		}
		maildir_fault_set(c->op, c->nth, c->err);
		maildir_deliver_batch(mail_dir, HOST, &it, 1);
		maildir_fault_clear();
		CU_ASSERT_EQUAL(it.status, c->want);
		CU_ASSERT_STRING_EQUAL(it.error, c->want_error);
		if (it.status != c->want || strcmp(it.error, c->want_error))
			fprintf(stderr, "case %s: %d %s\n", c->name, it.status,
			    it.error);
		if (c->want == MAILDIR_OK) {
			check_file(&it, "Return-Path: <a@b>\n"
			    "Delivered-To: <f@d.example>\n", want, want_len);
			CU_ASSERT_EQUAL(count_entries("mail/d.example/f/tmp"), 0);
			continue;
		}
		CU_ASSERT_STRING_EQUAL(it.name, "");
		if (!c->fresh) {
			CU_ASSERT_EQUAL(count_entries("mail/d.example/f/tmp"), 0);
			CU_ASSERT_EQUAL(count_entries("mail/d.example/f/new"),
			    before);
		} else {
			CU_ASSERT(count_entries("mail/d.example/f/new") <= 0);
		}
	}
	/* In a batch a fault hits one item only. */
	{
		struct maildir_item items[3];
		memset(items, 0, sizeof items);
		fresh_root();
		path_of(mail_dir, sizeof mail_dir, "mail");
		for (int k = 0; k < 3; k++) {
			items[k].domain = "d.example";
			items[k].user = "f";
			items[k].sender = "a@b";
			items[k].recipient = "f@d.example";
			items[k].body = reader_of("x\r\n", 3);
		}
		maildir_fault_set(MAILDIR_FAULT_FSYNC, 2, ENOSPC);
		CU_ASSERT_EQUAL(maildir_deliver_batch(mail_dir, HOST, items, 3),
		    2);
		maildir_fault_clear();
		CU_ASSERT_EQUAL(items[0].status, MAILDIR_OK);
		CU_ASSERT_EQUAL(items[1].status, MAILDIR_TEMP);
		CU_ASSERT_EQUAL(items[2].status, MAILDIR_OK);
		CU_ASSERT_EQUAL(count_entries("mail/d.example/f/new"), 2);
		CU_ASSERT_EQUAL(count_entries("mail/d.example/f/tmp"), 0);
		/* new/ fsync fails: every item of that directory defers. */
		maildir_fault_set(MAILDIR_FAULT_DIRSYNC, 1, EIO);
		CU_ASSERT_EQUAL(maildir_deliver_batch(mail_dir, HOST, items, 3),
		    0);
		maildir_fault_clear();
		for (int k = 0; k < 3; k++)
			CU_ASSERT_EQUAL(items[k].status, MAILDIR_TEMP);
		CU_ASSERT_EQUAL(count_entries("mail/d.example/f/new"), 2);
		CU_ASSERT_EQUAL(count_entries("mail/d.example/f/tmp"), 0);
	}

	/* The classic way failing at its rename: nothing left in tmp/. */
	{
		struct maildir_item it = {
			.domain = "d.example", .user = "g", .sender = "a@b",
			.recipient = "g@d.example", .body = reader_of(body, body_len),
		};
		fresh_root();
		path_of(mail_dir, sizeof mail_dir, "mail");
		maildir_fault_set(MAILDIR_FAULT_OPEN, 1, EOPNOTSUPP);
		maildir_fault_set(MAILDIR_FAULT_RENAME, 1, ENOSPC);
		maildir_deliver_batch(mail_dir, HOST, &it, 1);
		maildir_fault_clear();
		CU_ASSERT_EQUAL(it.status, MAILDIR_TEMP);
		CU_ASSERT_STRING_EQUAL(it.error,
		    "maildir: move into new: No space left on device");
		CU_ASSERT_EQUAL(count_entries("mail/d.example/g/tmp"), 0);
		CU_ASSERT_EQUAL(count_entries("mail/d.example/g/new"), 0);
	}
	free(want);
	free(body);
}

struct name_case {
	const char *domain;
	const char *user;
	const char *sender;
	const char *want_error;
};

static void
test_bad_names(void)
{
	char mail_dir[512], err[MAILDIR_ERROR_MAX];
	char long_user[300], ok_user[256];
	const struct name_case cases[] = {
		{ "d.example", "../x", "a@b",
		    "maildir: bad user name for a mailbox" },
		{ "d.example", "a/b", "a@b",
		    "maildir: bad user name for a mailbox" },
		{ "d.example", ".hidden", "a@b",
		    "maildir: bad user name for a mailbox" },
		{ "d.example", "..", "a@b",
		    "maildir: bad user name for a mailbox" },
		{ "d.example", "", "a@b",
		    "maildir: bad user name for a mailbox" },
		{ "d.example", NULL, "a@b",
		    "maildir: bad user name for a mailbox" },
		{ "d.example", "ctl\001x", "a@b",
		    "maildir: bad user name for a mailbox" },
		{ "d.example", "tab\tx", "a@b",
		    "maildir: bad user name for a mailbox" },
		{ "d.example", "del\177", "a@b",
		    "maildir: bad user name for a mailbox" },
		{ "d.example", "nl\n", "a@b",
		    "maildir: bad user name for a mailbox" },
		{ "d.example", long_user, "a@b",
		    "maildir: bad user name for a mailbox" },
		{ "../etc", "x", "a@b",
		    "maildir: bad domain name for a mailbox" },
		{ ".", "x", "a@b", "maildir: bad domain name for a mailbox" },
		{ "a/b", "x", "a@b", "maildir: bad domain name for a mailbox" },
		{ "", "x", "a@b", "maildir: bad domain name for a mailbox" },
		{ "d.example", "x", "a@b\r\nX-Evil: 1",
		    "maildir: bad envelope address" },
		{ "d.example", "x", "a@b\n", "maildir: bad envelope address" },
	};

	memset(long_user, 'u', sizeof long_user - 1);
	long_user[sizeof long_user - 1] = '\0';
	fresh_root();
	path_of(mail_dir, sizeof mail_dir, "mail");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		CU_ASSERT_EQUAL(maildir_deliver(mail_dir, HOST, cases[i].domain,
		    cases[i].user, cases[i].sender, "r@d", "x\r\n", 3, err,
		    sizeof err), MAILDIR_PERM);
		CU_ASSERT_STRING_EQUAL(err, cases[i].want_error);
	}
	/* Nothing was created for any of them. */
	CU_ASSERT_EQUAL(count_entries("mail"), -1);
	CU_ASSERT_EQUAL(count_entries(""), 0);
	/* 255 bytes is the longest component, 8-bit and odd bytes are fine. */
	memset(ok_user, 'v', 255);
	ok_user[255] = '\0';
	CU_ASSERT_EQUAL(maildir_deliver(mail_dir, HOST, "d.example", ok_user,
	    "", "r@d", "x", 1, err, sizeof err), MAILDIR_OK);
	CU_ASSERT_EQUAL(maildir_deliver(mail_dir, HOST, "d.example",
	    "j\xc3\xb6rg+tag~=a..b", "", "r@d", "x", 1, err, sizeof err),
	    MAILDIR_OK);
	CU_ASSERT_EQUAL(count_entries("mail/d.example/j\xc3\xb6rg+tag~=a..b/new"),
	    1);
	/* Hostile hostnames are escaped in the file name. */
	{
		struct maildir_item it = {
			.domain = "d.example", .user = "h", .sender = "",
			.recipient = "h@d", .body = reader_of("x", 1),
		};
		maildir_deliver_batch(mail_dir, "evil/host:1,2\\x\n", &it, 1);
		CU_ASSERT_EQUAL(it.status, MAILDIR_OK);
		CU_ASSERT(strstr(it.name,
		    ".evil\\057host\\0721\\0542\\134x\\012,S=") != NULL);
		CU_ASSERT(strchr(it.name, '/') == NULL);
		it.name[0] = '\0';
		maildir_deliver_batch(mail_dir, NULL, &it, 1);
		CU_ASSERT(strstr(it.name, ".localhost,S=") != NULL);
	}
}

static void
test_mail_dir_is_file(void)
{
	char file[512], below[600], err[MAILDIR_ERROR_MAX];
	FILE *f;

	fresh_root();
	path_of(file, sizeof file, "file");
	f = fopen(file, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fclose(f);
	/* A file where a directory belongs: the administrator's to mend, so
	 * the mail waits (MAILDIR_TEMP), as for any mailbox not writable. */
	CU_ASSERT_EQUAL(maildir_deliver(file, HOST, "d.example", "u", "",
	    "u@d", "x", 1, err, sizeof err), MAILDIR_TEMP);
	CU_ASSERT_STRING_EQUAL(err, "maildir: create mailbox: Not a directory");
	snprintf(below, sizeof below, "%s/sub/mail", file);
	CU_ASSERT_EQUAL(maildir_deliver(below, HOST, "d.example", "u", "",
	    "u@d", "x", 1, err, sizeof err), MAILDIR_TEMP);
	CU_ASSERT_EQUAL(maildir_deliver("", HOST, "d.example", "u", "",
	    "u@d", "x", 1, err, sizeof err), MAILDIR_PERM);
	CU_ASSERT_EQUAL(maildir_deliver(NULL, HOST, "d.example", "u", "",
	    "u@d", "x", 1, err, sizeof err), MAILDIR_PERM);

	/* A Maildir whose new/ is a regular file: TEMP, tmp/ left empty. */
	path_of(below, sizeof below, "mail");
	CU_ASSERT_EQUAL(maildir_deliver(below, HOST, "d.example", "w", "",
	    "w@d", "x", 1, err, sizeof err), MAILDIR_OK);
	path_of(file, sizeof file, "mail/d.example/w/new");
	nftw(file, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	f = fopen(file, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fclose(f);
	CU_ASSERT_EQUAL(maildir_deliver(below, HOST, "d.example", "w", "",
	    "w@d", "x", 1, err, sizeof err), MAILDIR_TEMP);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ": Not a directory"));
	CU_ASSERT_EQUAL(count_entries("mail/d.example/w/tmp"), 0);

	/* A mail_dir too long for a path. */
	{
		char *huge = xmalloc(5000);
		memset(huge, 'p', 4999);
		huge[0] = '/';
		huge[4999] = '\0';
		CU_ASSERT_EQUAL(maildir_deliver(huge, HOST, "d.example", "u",
		    "", "u@d", "x", 1, err, sizeof err), MAILDIR_PERM);
		CU_ASSERT_STRING_EQUAL(err,
		    "maildir: mailbox path: File name too long");
		free(huge);
	}
}

static void
test_unwritable(void)
{
	char mail_dir[512], err[MAILDIR_ERROR_MAX];

	if (geteuid() == 0)
		return;	/* root ignores modes */
	fresh_root();
	path_of(mail_dir, sizeof mail_dir, "ro");
	CU_ASSERT_FATAL(mkdir(mail_dir, 0500) == 0);
	CU_ASSERT_EQUAL(maildir_deliver(mail_dir, HOST, "d.example", "u", "",
	    "u@d", "x", 1, err, sizeof err), MAILDIR_TEMP);
	CU_ASSERT_STRING_EQUAL(err, "maildir: create mailbox: Permission denied");
	chmod(mail_dir, 0700);
}

int
main(void)
{
	CU_pSuite s;
	unsigned int failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("maildir", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "creates dirs", test_creates_dirs) == NULL ||
	    CU_add_test(s, "content byte-exact", test_content) == NULL ||
	    CU_add_test(s, "5 MiB body", test_large) == NULL ||
	    CU_add_test(s, "a reader that fails", test_reader_fails) == NULL ||
	    CU_add_test(s, "8 threads x 200", test_threads) == NULL ||
	    CU_add_test(s, "batch", test_batch) == NULL ||
	    CU_add_test(s, "injected faults", test_faults) == NULL ||
	    CU_add_test(s, "bad names", test_bad_names) == NULL ||
	    CU_add_test(s, "mail_dir is a file", test_mail_dir_is_file) == NULL ||
	    CU_add_test(s, "unwritable", test_unwritable) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	if (root[0] != '\0')
		nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return failed == 0 ? 0 : 1;
}
