/*
 * userdb: loads users_file and aliases_file into read-only hash tables keyed
 * by the lower-cased address, answers lookups, checks passwords with
 * crypt_r, and expands aliases (contract in storage/userdb.h).
 *
 * File syntax (both files): one entry per line, at most 4096 bytes a line
 * (a trailing CR is ignored); blank lines and lines whose first non-blank
 * character is `#` are skipped; at most 100000 entries and 1000000 lines
 * per file. A NUL byte or a control character in an address is an error; a
 * local part may be UTF-8 (RFC 6531), a domain is ASCII.
 *   users_file:   `user@domain:HASH`; HASH may be empty (no login) and has
 *                 no blanks. A duplicate user is an error.
 *   aliases_file: `alias@domain: target, target ...`; targets are separated
 *                 by commas and/or blanks, at least one is required, and
 *                 each must be a full address `local@domain` (a bare local
 *                 part is refused: the domain it would mean is ambiguous).
 *                 A duplicate alias is an error.
 * An address is `local@domain` split at the last `@`: local part 1..64
 * bytes of printable ASCII without blanks and `<>,:;"()[]\`, or UTF-8
 * (no C1 controls); domain 1..253
 * characters of letters, digits, `-`, `.`, `_`, not starting with `.`.
 *
 * Expansion rule (userdb_expand): a depth-first walk. A target that is an
 * alias is expanded in turn (at most 20 nested aliases); any other target
 * is final. An alias expanded once in a walk adds nothing new when met
 * again (its results are already collected). A target equal to an alias
 * that is still being expanded (a back reference) is taken as final
 * delivery to that address when it is deliverable by itself: a remote
 * address, a listed user, or any local address when there is no users
 * file (so `a@x: a@x, b@x` keeps a copy in a@x's own mailbox). Otherwise
 * the back reference adds nothing; if the whole walk then ends with no
 * final address at all, it was a pure loop and the result is -1.
 *
 * Passwords: crypt_r with its state on the heap, the result compared in
 * constant time; passwords over 1024 bytes are refused. An unknown user
 * or one with an empty hash is checked against another user's hash (or a
 * fixed $6$ one) and refused, so timing does not reveal who exists.
 *
 * Errors in files are printed as `FILE:LINE: message` (at most 50, then a
 * summary); a file that cannot be opened as `FILE: cannot open: reason`.
 * Loading fails if there was any.
 */
#include <crypt.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/utf8.h"
#include "lib/util.h"
#include "storage/userdb.h"

#define UD_LINE_MAX 4096
#define UD_ENTRIES_MAX 100000
#define UD_LINES_MAX 1000000
#define UD_ERRORS_MAX 50
#define UD_LOCAL_MAX 64
#define UD_DOMAIN_MAX 253
#define UD_PASSWORD_MAX 1024
#define UD_EXPAND_DEPTH 20
#define UD_EXPAND_MAX 1000
/* For timing when no user has a hash: SHA-512 crypt, default rounds. */
#define UD_DUMMY_HASH "$6$ud0mmys4ltv4lue$"

struct ud_entry {
	char *key;	/* lower-cased address; NULL = empty slot */
	char *hash;	/* users: crypt hash ("" = no login) */
	char **targets;	/* aliases: targets as written */
	int ntargets;
	int flags;	/* expansion walk state (UD_SEEN_*) */
};

struct ud_table {
	struct ud_entry *slots;
	size_t cap;	/* power of two */
	size_t count;
};

struct userdb {
	int has_users;
	struct ud_table users;
	struct ud_table aliases;
	char *dummy_hash;	/* a hash with the cost of a real one */
};

/* --- hash table -------------------------------------------------------- */

static uint64_t
ud_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static struct ud_entry *
ud_table_find(const struct ud_table *t, const char *key)
{
	size_t i;

	if (t->cap == 0)
		return NULL;
	for (i = ud_hash(key) & (t->cap - 1); t->slots[i].key != NULL;
	    i = (i + 1) & (t->cap - 1))
		if (strcmp(t->slots[i].key, key) == 0)
			return &t->slots[i];
	return NULL;
}

static void
ud_table_grow(struct ud_table *t)
{
	struct ud_entry *old = t->slots;
	size_t oldcap = t->cap;

	t->cap = oldcap ? oldcap * 2 : 64;
	t->slots = xcalloc(t->cap, sizeof *t->slots);
	for (size_t j = 0; j < oldcap; j++) {
		size_t i;
		if (old[j].key == NULL)
			continue;
		for (i = ud_hash(old[j].key) & (t->cap - 1);
		    t->slots[i].key != NULL; i = (i + 1) & (t->cap - 1))
			;
		t->slots[i] = old[j];
	}
	free(old);
}

/* Inserts key (taking ownership); the key must not be present. */
static struct ud_entry *
ud_table_add(struct ud_table *t, char *key)
{
	size_t i;

	if ((t->count + 1) * 2 > t->cap)
		ud_table_grow(t);
	for (i = ud_hash(key) & (t->cap - 1); t->slots[i].key != NULL;
	    i = (i + 1) & (t->cap - 1))
		;
	t->slots[i].key = key;
	t->count++;
	return &t->slots[i];
}

static void
ud_table_free(struct ud_table *t)
{
	for (size_t i = 0; i < t->cap; i++) {
		struct ud_entry *e = &t->slots[i];
		if (e->key == NULL)
			continue;
		free(e->key);
		free(e->hash);
		for (int k = 0; k < e->ntargets; k++)
			free(e->targets[k]);
		free(e->targets);
	}
	free(t->slots);
	memset(t, 0, sizeof *t);
}

/* --- syntax ------------------------------------------------------------ */

static int
ud_is_blank(int c)
{
	return c == ' ' || c == '\t';
}

/* Checks an address of n bytes; returns NULL or the problem. */
static const char *
ud_address_problem(const char *s, size_t n)
{
	const char *at = NULL;
	size_t local_len, domain_len;

	for (size_t i = 0; i < n; i++)
		if (s[i] == '@')
			at = s + i;
	if (at == NULL)
		return "address without @";
	local_len = (size_t)(at - s);
	domain_len = n - local_len - 1;
	if (local_len == 0)
		return "empty local part";
	if (local_len > UD_LOCAL_MAX)
		return "local part too long";
	if (domain_len == 0)
		return "empty domain";
	if (domain_len > UD_DOMAIN_MAX)
		return "domain too long";
	for (size_t i = 0; i < local_len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c == 0x7f || (c < 0x80 && strchr("<>,:;\"()[]\\", c) != NULL))
			return "bad character in local part";
	}
	/* RFC 6531 mailboxes: a UTF-8 local part is fine, broken UTF-8 not. */
	if (!utf8_valid((const unsigned char *)s, local_len) ||
	    utf8_has_c1((const unsigned char *)s, local_len))
		return "local part is not valid UTF-8";
	if (at[1] == '.')
		return "bad domain";
	for (size_t i = 1; i <= domain_len; i++) {
		unsigned char c = (unsigned char)at[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
			return "bad character in domain";
	}
	return NULL;
}

static char *
ud_key(const char *s, size_t n)
{
	return str_lower(xstrndup(s, n));
}

/* --- loading ----------------------------------------------------------- */

struct ud_reader {
	FILE *f;
	const char *path;
	FILE *errs;
	unsigned long lineno;
	int errors;
	int eof;
};

static void ud_error(struct ud_reader *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
ud_error(struct ud_reader *r, const char *fmt, ...)
{
	va_list ap;

	r->errors++;
	if (r->errs == NULL || r->errors > UD_ERRORS_MAX)
		return;
	fprintf(r->errs, "%s:%lu: ", r->path, r->lineno);
	va_start(ap, fmt);
	vfprintf(r->errs, fmt, ap);
	va_end(ap);
	fputc('\n', r->errs);
}

/*
 * Reads one line into line[UD_LINE_MAX + 1] without its end. Returns 1 for
 * a line, 0 at the end of the file, -1 for a line that was reported (too
 * long, NUL byte) and skipped.
 */
static int
ud_read_line(struct ud_reader *r, char *line, size_t *len_r)
{
	size_t n = 0;
	int c, too_long = 0, nul = 0;

	if (r->eof)
		return 0;
	for (;;) {
		c = getc_unlocked(r->f);
		if (c == EOF) {
			r->eof = 1;
			if (n == 0 && !too_long && !nul)
				return 0;
			break;
		}
		if (c == '\n')
			break;
		if (c == '\0')
			nul = 1;
		if (n < UD_LINE_MAX + 1)
			line[n++] = (char)c;
		else
			too_long = 1;
	}
	r->lineno++;
	if (n > 0 && line[n - 1] == '\r')
		n--;
	if (too_long || n > UD_LINE_MAX) {
		ud_error(r, "line too long (max %d bytes)", UD_LINE_MAX);
		return -1;
	}
	if (nul) {
		ud_error(r, "%s", "NUL byte in line");
		return -1;
	}
	line[n] = '\0';
	*len_r = n;
	return 1;
}

/* Trims blanks; returns NULL for a blank or comment line. */
static char *
ud_trim(char *line, size_t *len)
{
	char *p = line;
	size_t n = *len;

	while (n > 0 && ud_is_blank(*p)) {
		p++;
		n--;
	}
	while (n > 0 && ud_is_blank(p[n - 1]))
		n--;
	p[n] = '\0';
	*len = n;
	if (n == 0 || *p == '#')
		return NULL;
	return p;
}

static void
ud_parse_user(struct userdb *db, struct ud_reader *r, char *p, size_t n)
{
	char *colon = memchr(p, ':', n);
	const char *problem, *hash;
	size_t alen;
	char *key;
	struct ud_entry *e;

	if (colon == NULL) {
		ud_error(r, "%s", "expected user@domain:HASH");
		return;
	}
	alen = (size_t)(colon - p);
	while (alen > 0 && ud_is_blank(p[alen - 1]))
		alen--;
	if ((problem = ud_address_problem(p, alen)) != NULL) {
		ud_error(r, "%s", problem);
		return;
	}
	hash = colon + 1;
	while (ud_is_blank(*hash))
		hash++;
	for (const char *h = hash; *h; h++)
		if ((unsigned char)*h <= ' ' || (unsigned char)*h >= 0x7f) {
			ud_error(r, "%s", "bad character in hash");
			return;
		}
	key = ud_key(p, alen);
	if (ud_table_find(&db->users, key) != NULL) {
		ud_error(r, "duplicate user %s", key);
		free(key);
		return;
	}
	e = ud_table_add(&db->users, key);
	e->hash = xstrdup(hash);
}

static void
ud_parse_alias(struct userdb *db, struct ud_reader *r, char *p, size_t n)
{
	char *colon = memchr(p, ':', n);
	const char *problem;
	char **targets = NULL;
	int ntargets = 0, cap = 0;
	size_t alen;
	char *key, *s;
	struct ud_entry *e;

	if (colon == NULL) {
		ud_error(r, "%s", "expected alias@domain: target, ...");
		return;
	}
	alen = (size_t)(colon - p);
	while (alen > 0 && ud_is_blank(p[alen - 1]))
		alen--;
	if ((problem = ud_address_problem(p, alen)) != NULL) {
		ud_error(r, "%s", problem);
		return;
	}
	for (s = colon + 1; *s != '\0';) {
		size_t tlen;
		while (*s == ',' || ud_is_blank(*s))
			s++;
		if (*s == '\0')
			break;
		tlen = strcspn(s, ", \t");
		if ((problem = ud_address_problem(s, tlen)) != NULL) {
			ud_error(r, "target: %s", problem);
			goto fail;
		}
		if (ntargets == cap) {
			cap = cap ? cap * 2 : 4;
			targets = xrealloc(targets, (size_t)cap * sizeof *targets);
		}
		targets[ntargets++] = xstrndup(s, tlen);
		s += tlen;
	}
	if (ntargets == 0) {
		ud_error(r, "%s", "alias without targets");
		goto fail;
	}
	key = ud_key(p, alen);
	if (ud_table_find(&db->aliases, key) != NULL) {
		ud_error(r, "duplicate alias %s", key);
		free(key);
		goto fail;
	}
	e = ud_table_add(&db->aliases, key);
	e->targets = targets;
	e->ntargets = ntargets;
	return;
fail:
	for (int k = 0; k < ntargets; k++)
		free(targets[k]);
	free(targets);
}

/* Loads one file into db; returns the number of errors reported. */
static int
ud_load_file(struct userdb *db, const char *path, int users, FILE *errs)
{
	struct ud_reader r = { .path = path, .errs = errs };
	struct ud_table *t = users ? &db->users : &db->aliases;
	char *line = xmalloc(UD_LINE_MAX + 2);
	size_t len;
	int rc;

	r.f = fopen(path, "re");
	if (r.f == NULL) {
		if (errs != NULL)
			fprintf(errs, "%s: cannot open: %s\n", path,
			    strerror(errno));
		free(line);
		return 1;
	}
	while ((rc = ud_read_line(&r, line, &len)) != 0) {
		char *p;
		if (r.lineno > UD_LINES_MAX) {
			ud_error(&r, "too many lines (max %d)", UD_LINES_MAX);
			break;
		}
		if (rc < 0 || (p = ud_trim(line, &len)) == NULL)
			continue;
		if (t->count >= UD_ENTRIES_MAX) {
			ud_error(&r, "too many entries (max %d)", UD_ENTRIES_MAX);
			break;
		}
		if (users)
			ud_parse_user(db, &r, p, len);
		else
			ud_parse_alias(db, &r, p, len);
	}
	if (ferror(r.f)) {
		r.errors++;
		if (errs != NULL)
			fprintf(errs, "%s: read error\n", path);
	}
	if (r.errors > UD_ERRORS_MAX && errs != NULL)
		fprintf(errs, "%s: %d errors in all\n", path, r.errors);
	fclose(r.f);
	free(line);
	return r.errors;
}

/*
 * The hash that a check for a missing user (or one without a hash) is
 * computed against: a real user's hash, so that it costs the same as a
 * real check (same scheme, rounds and salt length), and the answer is "no"
 * whatever the result. Nothing is computed here: loading stays cheap.
 */
static char *
ud_pick_dummy(const struct userdb *db)
{
	for (size_t i = 0; i < db->users.cap; i++) {
		const struct ud_entry *e = &db->users.slots[i];
		if (e->key != NULL && e->hash[0] == '$')
			return xstrdup(e->hash);
	}
	return xstrdup(UD_DUMMY_HASH);
}

struct userdb *
userdb_load(const char *users_file, const char *aliases_file, FILE *errs)
{
	struct userdb *db = xcalloc(1, sizeof *db);
	int errors = 0;

	if (users_file != NULL) {
		db->has_users = 1;
		errors += ud_load_file(db, users_file, 1, errs);
	}
	if (aliases_file != NULL)
		errors += ud_load_file(db, aliases_file, 0, errs);
	if (errors > 0) {
		userdb_free(&db);
		return NULL;
	}
	db->dummy_hash = ud_pick_dummy(db);
	return db;
}

void
userdb_free(struct userdb **dbp)
{
	struct userdb *db;

	if (dbp == NULL || (db = *dbp) == NULL)
		return;
	ud_table_free(&db->users);
	ud_table_free(&db->aliases);
	free(db->dummy_hash);
	free(db);
	*dbp = NULL;
}

void
userdb_foreach_user(const struct userdb *db, void (*fn)(const char *user, void *arg),
    void *arg)
{
	for (size_t i = 0; db != NULL && i < db->users.cap; i++)
		if (db->users.slots[i].key != NULL)
			fn(db->users.slots[i].key, arg);
}

int
userdb_has_users(const struct userdb *db)
{
	return db != NULL && db->has_users;
}

/* Lower-cased copy of addr in key[size]; -1 if too long or NULL. */
static int
ud_key_buf(const char *addr, char *key, size_t size)
{
	if (addr == NULL || str_copy(key, addr, size) != 0)
		return -1;
	str_lower(key);
	return 0;
}

enum userdb_kind
userdb_lookup(const struct userdb *db, const char *addr)
{
	char key[UD_LOCAL_MAX + UD_DOMAIN_MAX + 2];

	if (db == NULL || ud_key_buf(addr, key, sizeof key) != 0 ||
	    strchr(key, '@') == NULL)
		return USERDB_NONE;
	if (ud_table_find(&db->aliases, key) != NULL)
		return USERDB_ALIAS;
	if (!db->has_users || ud_table_find(&db->users, key) != NULL)
		return USERDB_USER;
	return USERDB_NONE;
}

/* Compares two strings in time that depends only on their lengths. */
static int
ud_equal_ct(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t n = la > lb ? la : lb;
	unsigned char diff = (unsigned char)(la != lb);

	for (size_t i = 0; i < n; i++) {
		unsigned char ca = i < la ? (unsigned char)a[i] : 0;
		unsigned char cb = i < lb ? (unsigned char)b[i] : 0;
		diff |= ca ^ cb;
	}
	return diff == 0;
}

int
userdb_check_password(const struct userdb *db, const char *user,
    const char *password)
{
	char key[UD_LOCAL_MAX + UD_DOMAIN_MAX + 2];
	const struct ud_entry *e = NULL;
	const char *hash;
	struct crypt_data *cd;
	char *res;
	int ok;

	if (db == NULL || password == NULL ||
	    strnlen(password, UD_PASSWORD_MAX + 1) > UD_PASSWORD_MAX)
		return 0;
	if (ud_key_buf(user, key, sizeof key) == 0)
		e = ud_table_find(&db->users, key);
	/* No user, or no hash: spend the same time on the dummy hash, so that
	 * timing does not tell which users exist. */
	hash = (e != NULL && e->hash[0] != '\0') ? e->hash : db->dummy_hash;
	cd = xcalloc(1, sizeof *cd);
	res = crypt_r(password, hash, cd);
	ok = res != NULL && res[0] != '*' && ud_equal_ct(res, hash);
	free(cd);
	/* A match against the dummy is still "no": it is not this user's. */
	return ok && hash != db->dummy_hash;
}

int
userdb_sender_owned(const struct userdb *db, const char *user,
    const char *sender)
{
	char ukey[UD_LOCAL_MAX + UD_DOMAIN_MAX + 2];
	char skey[UD_LOCAL_MAX + UD_DOMAIN_MAX + 2];
	char **list;
	int n, owned = 0;

	if (db == NULL || ud_key_buf(user, ukey, sizeof ukey) != 0 ||
	    ud_key_buf(sender, skey, sizeof skey) != 0)
		return 0;
	if (strcmp(ukey, skey) == 0)
		return 1;
	if (ud_table_find(&db->aliases, skey) == NULL)
		return 0;
	if ((n = userdb_expand(db, skey, NULL, NULL, &list)) < 0)
		return 0;
	for (int i = 0; i < n && !owned; i++)
		owned = strcasecmp(list[i], ukey) == 0;
	userdb_list_free(list, n);
	return owned;
}

/* --- expansion --------------------------------------------------------- */

enum { UD_SEEN_FINAL = 1, UD_SEEN_ACTIVE = 2, UD_SEEN_DONE = 4 };

struct ud_walk {
	const struct userdb *db;
	int (*is_local)(const char *domain, void *arg);
	void *arg;
	struct ud_table seen;	/* key -> flags */
	char **out;
	int nout, capout;
	int loop;
	int failed;
};

static struct ud_entry *
ud_seen(struct ud_walk *w, const char *key)
{
	struct ud_entry *e = ud_table_find(&w->seen, key);

	if (e == NULL)
		e = ud_table_add(&w->seen, xstrdup(key));
	return e;
}

static int
ud_deliverable(const struct ud_walk *w, const char *key)
{
	const char *at = strrchr(key, '@');
	int local = w->is_local == NULL || (at != NULL &&
	    w->is_local(at + 1, w->arg));

	if (!local)
		return 1;
	return !w->db->has_users || ud_table_find(&w->db->users, key) != NULL;
}

static void
ud_add_final(struct ud_walk *w, struct ud_entry *s, const char *addr)
{
	if (s->flags & UD_SEEN_FINAL)
		return;
	if (w->nout >= UD_EXPAND_MAX) {
		w->failed = 1;
		return;
	}
	s->flags |= UD_SEEN_FINAL;
	if (w->nout == w->capout) {
		w->capout = w->capout ? w->capout * 2 : 8;
		w->out = xrealloc(w->out, (size_t)w->capout * sizeof *w->out);
	}
	w->out[w->nout++] = xstrdup(addr);
}

static void
ud_walk(struct ud_walk *w, const char *addr, int depth)
{
	char *key = str_lower(xstrdup(addr));
	const struct ud_entry *alias;
	struct ud_entry *s;

	if (w->failed)
		goto out;
	alias = ud_table_find(&w->db->aliases, key);
	s = ud_seen(w, key);
	if (alias == NULL) {
		ud_add_final(w, s, addr);
		goto out;
	}
	if (s->flags & UD_SEEN_DONE)
		goto out;
	if (s->flags & UD_SEEN_ACTIVE) {
		if (ud_deliverable(w, key))
			ud_add_final(w, s, addr);
		else
			w->loop = 1;
		goto out;
	}
	if (depth >= UD_EXPAND_DEPTH) {
		w->failed = 1;
		goto out;
	}
	s->flags |= UD_SEEN_ACTIVE;
	for (int i = 0; i < alias->ntargets && !w->failed; i++)
		ud_walk(w, alias->targets[i], depth + 1);
	/* The table may have grown meanwhile: look the entry up again. */
	s = ud_table_find(&w->seen, key);
	s->flags = (s->flags & ~UD_SEEN_ACTIVE) | UD_SEEN_DONE;
out:
	free(key);
}

int
userdb_expand(const struct userdb *db, const char *addr,
    int (*is_local)(const char *domain, void *arg), void *arg,
    char ***out_r)
{
	struct ud_walk w = { .db = db, .is_local = is_local, .arg = arg };

	*out_r = NULL;
	if (db == NULL || addr == NULL)
		return -1;
	ud_walk(&w, addr, 0);
	ud_table_free(&w.seen);
	if (w.failed || (w.nout == 0 && w.loop)) {
		userdb_list_free(w.out, w.nout);
		return -1;
	}
	*out_r = w.out;
	return w.nout;
}

void
userdb_list_free(char **list, int n)
{
	if (list == NULL)
		return;
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
}
