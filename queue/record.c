/*
 * record: encode and decode of the queue's stored records (see record.h
 * for the layout). The reader keeps a cursor and a sticky error flag, so
 * each field read is bounded and a short record fails once, cleanly.
 */
#include "queue/record.h"

#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

#define ENV_FLAGS_KNOWN 0x11Fu	/* enum envelope_flag */
#define RET_MAX 2		/* enum dsn_ret */
#define NOTIFY_KNOWN 0x0Fu	/* enum dsn_notify */

/* --- writing --- */

static void
rec_put_u8(struct buf *b, int *err, unsigned v)
{
	uint8_t c = (uint8_t)v;

	if (buf_append(b, &c, 1) != 0)
		*err = 1;
}

static void
rec_put_u32(struct buf *b, int *err, uint32_t v)
{
	uint8_t c[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16),
	    (uint8_t)(v >> 8), (uint8_t)v };

	if (buf_append(b, c, sizeof c) != 0)
		*err = 1;
}

static void
rec_put_u64(struct buf *b, int *err, uint64_t v)
{
	uint8_t c[8];

	for (int i = 0; i < 8; i++)
		c[i] = (uint8_t)(v >> (56 - 8 * i));
	if (buf_append(b, c, sizeof c) != 0)
		*err = 1;
}

static void
rec_put_str(struct buf *b, int *err, const char *s, size_t max)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n > max || n > 0xFFFF) {
		*err = 1;
		return;
	}
	rec_put_u8(b, err, (unsigned)(n >> 8));
	rec_put_u8(b, err, (unsigned)(n & 0xFF));
	if (n > 0 && buf_append(b, s, n) != 0)
		*err = 1;
}

static void
rec_put_ostr(struct buf *b, int *err, const char *s, size_t max)
{
	rec_put_u8(b, err, s != NULL);
	if (s != NULL)
		rec_put_str(b, err, s, max);
}

/* --- reading --- */

struct rec_reader {
	const uint8_t *p;
	size_t left;
	int err;
};

static const uint8_t *
rec_take(struct rec_reader *r, size_t n)
{
	const uint8_t *p;

	if (r->err || r->left < n) {
		r->err = 1;
		return NULL;
	}
	p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

static unsigned
rec_get_u8(struct rec_reader *r)
{
	const uint8_t *p = rec_take(r, 1);

	return p != NULL ? p[0] : 0;
}

static uint32_t
rec_get_u32(struct rec_reader *r)
{
	const uint8_t *p = rec_take(r, 4);

	if (p == NULL)
		return 0;
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
rec_get_u64(struct rec_reader *r)
{
	const uint8_t *p = rec_take(r, 8);
	uint64_t v = 0;

	if (p == NULL)
		return 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* A heap copy of the next string, or NULL (error flag set) when it is too
 * long, truncated or holds a NUL byte. */
static char *
rec_get_str(struct rec_reader *r, size_t max)
{
	size_t n = rec_get_u8(r) << 8;
	const uint8_t *p;

	n |= rec_get_u8(r);
	if (r->err || n > max) {
		r->err = 1;
		return NULL;
	}
	p = rec_take(r, n);
	if (p == NULL)
		return NULL;
	if (n > 0 && memchr(p, '\0', n) != NULL) {
		r->err = 1;
		return NULL;
	}
	return xstrndup((const char *)p, n);
}

/* As rec_get_str, after a presence byte; NULL is then also a valid
 * result (absent), so errors show only in r->err. */
static char *
rec_get_ostr(struct rec_reader *r, size_t max)
{
	unsigned present = rec_get_u8(r);

	if (r->err)
		return NULL;
	if (present > 1) {
		r->err = 1;
		return NULL;
	}
	return present ? rec_get_str(r, max) : NULL;
}

uint32_t
record_body_chunks(uint64_t size)
{
	return (uint32_t)((size + RECORD_CHUNK_SIZE - 1) / RECORD_CHUNK_SIZE);
}

static uint32_t
record_v1_chunks(uint64_t size)
{
	return (uint32_t)((size + RECORD_V1_CHUNK_SIZE - 1) / RECORD_V1_CHUNK_SIZE);
}

/* Can nchunks records of version 2 hold exactly size bytes? */
static int
record_v2_layout_ok(uint64_t size, uint32_t nchunks)
{
	return size <= RECORD_SIZE_MAX && nchunks <= size &&
	    size <= (uint64_t)nchunks * RECORD_CHUNK_MAX;
}

int
record_msg_encode(const struct envelope *env, const struct record_body *body,
    struct buf *out)
{
	size_t mark = out->len;
	int err = 0;

	if (env->nrcpts == 0 || env->nrcpts > RECORD_RCPTS_MAX ||
	    body->fixed != 0 || !record_v2_layout_ok(body->size, body->nchunks) ||
	    env->ret < 0 || env->ret > RET_MAX ||
	    (env->flags & ~ENV_FLAGS_KNOWN) != 0 || env->arrival < 0)
		return -1;
	rec_put_u8(out, &err, RECORD_VERSION);
	rec_put_u8(out, &err, (unsigned)env->ret);
	rec_put_u32(out, &err, env->flags);
	rec_put_u64(out, &err, (uint64_t)env->arrival);
	rec_put_u64(out, &err, body->size);
	rec_put_u32(out, &err, body->nchunks);
	rec_put_u32(out, &err, (uint32_t)env->nrcpts);
	rec_put_str(out, &err, env->sender, RECORD_STR_MAX);
	rec_put_str(out, &err, env->helo, RECORD_STR_MAX);
	rec_put_str(out, &err, env->client_addr, RECORD_STR_MAX);
	rec_put_ostr(out, &err, env->auth_user, RECORD_STR_MAX);
	rec_put_ostr(out, &err, env->envid, RECORD_STR_MAX);
	if (err) {
		out->len = mark;
		if (out->data != NULL)
			out->data[mark] = '\0';
		return -1;
	}
	return 0;
}

int
record_msg_peek(const void *p, size_t n, int64_t *arrival_r, uint64_t *size_r,
    unsigned *flags_r)
{
	struct rec_reader r = { p, n, 0 };
	uint64_t arrival, size;
	unsigned ret, flags, version;

	version = rec_get_u8(&r);
	if (version != 1 && version != RECORD_VERSION)
		return -1;
	ret = rec_get_u8(&r);
	flags = rec_get_u32(&r);
	arrival = rec_get_u64(&r);
	size = rec_get_u64(&r);
	if (r.err || ret > RET_MAX || (flags & ~ENV_FLAGS_KNOWN) != 0 ||
	    arrival > INT64_MAX || size > RECORD_SIZE_MAX)
		return -1;
	if (arrival_r != NULL)
		*arrival_r = (int64_t)arrival;
	if (size_r != NULL)
		*size_r = size;
	if (flags_r != NULL)
		*flags_r = flags;
	return 0;
}

int
record_msg_set_flags(void *p, size_t n, unsigned flags)
{
	uint8_t *b = p;

	/* version (1 byte), ret (1 byte), then the flags: the same in both */
	if (n < 6 || (b[0] != 1 && b[0] != RECORD_VERSION) ||
	    (flags & ~ENV_FLAGS_KNOWN) != 0)
		return -1;
	b[2] = (uint8_t)(flags >> 24);
	b[3] = (uint8_t)(flags >> 16);
	b[4] = (uint8_t)(flags >> 8);
	b[5] = (uint8_t)flags;
	return 0;
}

int
record_msg_decode(const void *p, size_t n, struct envelope *env_r,
    struct record_body *body_r)
{
	struct rec_reader r = { p, n, 0 };
	struct envelope env;
	uint64_t arrival, size;
	uint32_t nchunks, nrcpts;
	unsigned version;
	int layout_ok;

	memset(&env, 0, sizeof env);
	version = rec_get_u8(&r);
	if (version != 1 && version != RECORD_VERSION)
		return -1;
	env.ret = (int)rec_get_u8(&r);
	env.flags = rec_get_u32(&r);
	arrival = rec_get_u64(&r);
	size = rec_get_u64(&r);
	nchunks = rec_get_u32(&r);
	nrcpts = rec_get_u32(&r);
	layout_ok = version == 1 ? size <= RECORD_SIZE_MAX &&
	    nchunks == record_v1_chunks(size) : record_v2_layout_ok(size, nchunks);
	if (r.err || env.ret > RET_MAX || (env.flags & ~ENV_FLAGS_KNOWN) != 0 ||
	    arrival > INT64_MAX || !layout_ok ||
	    nrcpts == 0 || nrcpts > RECORD_RCPTS_MAX)
		return -1;
	env.arrival = (int64_t)arrival;
	env.nrcpts = nrcpts;
	env.sender = rec_get_str(&r, RECORD_STR_MAX);
	env.helo = rec_get_str(&r, RECORD_STR_MAX);
	env.client_addr = rec_get_str(&r, RECORD_STR_MAX);
	env.auth_user = rec_get_ostr(&r, RECORD_STR_MAX);
	env.envid = rec_get_ostr(&r, RECORD_STR_MAX);
	if (r.err || r.left != 0) {
		env.nrcpts = 0;	/* rcpts is NULL: nothing to free there */
		envelope_free(&env);
		return -1;
	}
	*env_r = env;
	body_r->size = size;
	body_r->nchunks = nchunks;
	body_r->fixed = version == 1 ? RECORD_V1_CHUNK_SIZE : 0;
	return 0;
}

int
record_rcpt_encode(const struct queue_rcpt *rc, struct buf *out)
{
	size_t mark = out->len;
	int err = 0;

	if (rc->addr == NULL || rc->addr[0] == '\0' ||
	    (unsigned)rc->state > RCPT_EXPANDED ||
	    (rc->flags & ~RCPT_F_ALL) != 0 ||
	    (rc->notify & ~NOTIFY_KNOWN) != 0 ||
	    rc->next_try < 0 || rc->last_try < 0)
		return -1;
	rec_put_u8(out, &err, RECORD_RCPT_VERSION);
	rec_put_u8(out, &err, (unsigned)rc->state);
	rec_put_u8(out, &err, rc->flags);
	rec_put_u32(out, &err, rc->notify);
	rec_put_u32(out, &err, rc->attempts);
	rec_put_u64(out, &err, (uint64_t)rc->next_try);
	rec_put_u64(out, &err, (uint64_t)rc->last_try);
	rec_put_str(out, &err, rc->addr, RECORD_STR_MAX);
	rec_put_ostr(out, &err, rc->orcpt, RECORD_STR_MAX);
	rec_put_str(out, &err, rc->diag, RECORD_DIAG_MAX);
	rec_put_str(out, &err, rc->status, RECORD_STATUS_MAX);
	rec_put_ostr(out, &err, rc->remote_mta, RECORD_STR_MAX);
	if (err) {
		out->len = mark;
		if (out->data != NULL)
			out->data[mark] = '\0';
		return -1;
	}
	return 0;
}

int
record_rcpt_decode(const void *p, size_t n, struct queue_rcpt *r_r)
{
	struct rec_reader r = { p, n, 0 };
	struct queue_rcpt rc;
	unsigned state, version;
	uint64_t next_try, last_try;

	memset(&rc, 0, sizeof rc);
	version = rec_get_u8(&r);
	if (version != 1 && version != RECORD_RCPT_VERSION)
		return -1;
	state = rec_get_u8(&r);
	rc.flags = rec_get_u8(&r);
	rc.notify = rec_get_u32(&r);
	rc.attempts = rec_get_u32(&r);
	next_try = rec_get_u64(&r);
	last_try = rec_get_u64(&r);
	if (r.err || state > RCPT_EXPANDED || (rc.flags & ~RCPT_F_ALL) != 0 ||
	    (rc.notify & ~NOTIFY_KNOWN) != 0 ||
	    next_try > INT64_MAX || last_try > INT64_MAX)
		return -1;
	rc.state = (enum rcpt_state)state;
	rc.next_try = (int64_t)next_try;
	rc.last_try = (int64_t)last_try;
	rc.addr = rec_get_str(&r, RECORD_STR_MAX);
	rc.orcpt = rec_get_ostr(&r, RECORD_STR_MAX);
	rc.diag = rec_get_str(&r, RECORD_DIAG_MAX);
	if (version == 1) {
		rc.status = xstrdup("");
	} else {
		rc.status = rec_get_str(&r, RECORD_STATUS_MAX);
		rc.remote_mta = rec_get_ostr(&r, RECORD_STR_MAX);
	}
	if (r.err || r.left != 0 || rc.addr == NULL || rc.addr[0] == '\0' ||
	    rc.diag == NULL || rc.status == NULL) {
		queue_rcpt_clear(&rc);
		return -1;
	}
	*r_r = rc;
	return 0;
}

void
queue_rcpt_clear(struct queue_rcpt *r)
{
	if (r == NULL)
		return;
	free(r->addr);
	free(r->orcpt);
	free(r->diag);
	free(r->status);
	free(r->remote_mta);
	memset(r, 0, sizeof *r);
}

void
queue_msg_free(struct queue_msg *m)
{
	if (m == NULL)
		return;
	envelope_free(&m->env);	/* env.rcpts is NULL: nrcpts is ignored */
	for (size_t i = 0; i < m->nrcpts && m->rcpts != NULL; i++)
		queue_rcpt_clear(&m->rcpts[i]);
	free(m->rcpts);
	memset(m, 0, sizeof *m);
}

const char *
rcpt_state_name(enum rcpt_state state)
{
	switch (state) {
	case RCPT_QUEUED:
		return "queued";
	case RCPT_DEFERRED:
		return "deferred";
	case RCPT_SENT:
		return "sent";
	case RCPT_BOUNCED:
		return "bounced";
	case RCPT_EXPANDED:
		return "expanded";
	}
	return "unknown";
}
