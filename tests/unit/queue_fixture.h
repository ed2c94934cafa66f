/*
 * queue_fixture: what the queue's unit tests share: a fresh directory
 * under /tmp per test, a store opened there, deterministic bodies and
 * envelopes, a message written directly, a record overwritten with LMDB
 * as a disk fault or an old program would have left it.
 */
#ifndef TESTS_UNIT_QUEUE_FIXTURE_H
#define TESTS_UNIT_QUEUE_FIXTURE_H

#include <CUnit/Basic.h>
#include <ftw.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lib/util.h"
#include "queue/envelope.h"
#include "queue/store.h"

static inline int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static inline char *
tmpdir_make(void)
{
	char tmpl[] = "/tmp/test_queue.XXXXXX";
	char *d = mkdtemp(tmpl);

	CU_ASSERT_FATAL(d != NULL);
	return xstrdup(d);
}

static inline void
tmpdir_remove(char **dp)
{
	nftw(*dp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(*dp);
	*dp = NULL;
}

static inline struct queue_store *
open_store(const char *dir, size_t map, unsigned flags)
{
	char err[256];
	struct queue_store *s = store_open(dir, map, flags, err, sizeof err);

	if (s == NULL)
		fprintf(stderr, "store_open: %s\n", err);
	CU_ASSERT_FATAL(s != NULL);
	return s;
}

/* Deterministic body bytes for (seed, len). */
static inline char *
gen_body(uint64_t seed, size_t len)
{
	char *b = xmalloc(len + 1);
	uint64_t x = seed * 6364136223846793005ull + 1442695040888963407ull;

	for (size_t i = 0; i < len; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		b[i] = (char)(x >> 56);
	}
	b[len] = '\0';
	return b;
}

static inline void
make_env(struct envelope *env, queue_id_t id, const char *sender, size_t nrcpts)
{
	memset(env, 0, sizeof *env);
	env->id = id;
	env->arrival = time(NULL);
	env->sender = xstrdup(sender);
	env->helo = xstrdup("client.example");
	env->client_addr = xstrdup("192.0.2.1");
	env->ret = 1;
	env->flags = ENV_8BITMIME;
	env->nrcpts = nrcpts;
	env->rcpts = xcalloc(nrcpts, sizeof *env->rcpts);
	for (size_t i = 0; i < nrcpts; i++) {
		char a[64];
		snprintf(a, sizeof a, "rcpt%zu@example.org", i);
		env->rcpts[i].addr = xstrdup(a);
		env->rcpts[i].notify = i == 0 ? 4 : 0;
		if (i == 1)
			env->rcpts[i].orcpt = xstrdup("rfc822;orig@example.org");
	}
}

/* Writes one message directly with a store write txn. */
static inline queue_id_t
put_direct(struct queue_store *s, size_t nrcpts, size_t body_len)
{
	struct envelope env;
	struct store_wtxn *t;
	char *body;
	queue_id_t id = queue_id_next();

	make_env(&env, id, "sender@example.com", nrcpts);
	body = gen_body(id, body_len);
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT(store_put_msg(t, &env, body, body_len) == STORE_OK);
	CU_ASSERT(store_wtxn_commit(&t) == STORE_OK);
	envelope_free(&env);
	free(body);
	return id;
}

/* Opens db of the queue in dir directly with LMDB, in one transaction
 * (read-only when rdonly). */
static inline void
raw_open(const char *dir, const char *db, int rdonly, MDB_env **env,
    MDB_txn **txn, MDB_dbi *dbi)
{
	CU_ASSERT_FATAL(mdb_env_create(env) == 0);
	mdb_env_set_maxdbs(*env, 12);
	mdb_env_set_mapsize(*env, STORE_MAP_SIZE_DEFAULT);
	CU_ASSERT_FATAL(mdb_env_open(*env, dir, MDB_NOTLS |
	    (rdonly ? MDB_RDONLY : 0), 0600) == 0);
	CU_ASSERT_FATAL(mdb_txn_begin(*env, NULL, rdonly ? MDB_RDONLY : 0, txn) == 0);
	CU_ASSERT_FATAL(mdb_dbi_open(*txn, db, 0, dbi) == 0);
}

/* Overwrites (or adds) a record directly with LMDB, as a disk fault or an
 * old program might have left it. */
static inline void
raw_put(const char *dir, const char *db, const void *key, size_t klen,
    const void *val, size_t vlen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };

	raw_open(dir, db, 0, &env, &txn, &dbi);
	CU_ASSERT(mdb_put(txn, dbi, &k, &v, 0) == 0);
	CU_ASSERT(mdb_txn_commit(txn) == 0);
	mdb_env_close(env);
}

/* Does db hold key with exactly the value val? Read directly with LMDB. */
static inline int
raw_equals(const char *dir, const char *db, const void *key, size_t klen,
    const void *val, size_t vlen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { klen, (void *)key }, v;
	int same;

	raw_open(dir, db, 1, &env, &txn, &dbi);
	same = mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == vlen &&
	    memcmp(v.mv_data, val, vlen) == 0;
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return same;
}

#endif
