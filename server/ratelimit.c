/*
 * ratelimit: sliding-window client counters and daily account quotas on
 * two addrtables (see ratelimit.h).
 */
#include "server/ratelimit.h"

#include <stdatomic.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

#include "lib/metrics.h"
#include "lib/siphash.h"
#include "lib/util.h"
#include "server/addrtable.h"
#include "server/connlimit.h"

#define RATELIMIT_DAY_MS (24 * 3600 * (int64_t)1000)

enum rl_kind { RL_CONN, RL_MSG, RL_RCPT, RL_UNKNOWN, RL_KINDS };

/* One client's windows: cur counts since start, prev the window before. */
struct rl_client {
	int64_t start;
	uint32_t cur[RL_KINDS];
	uint32_t prev[RL_KINDS];
};

/* One account's day: messages, and the set of recipient hashes (open
 * addressing, 0 = empty slot, at most half full). */
struct rl_account {
	int64_t start;
	uint32_t messages;
	uint32_t nrcpts;
	uint32_t cap;
	uint64_t *set;
};

struct ratelimit {
	_Atomic unsigned window_ms;
	_Atomic unsigned limit[RL_KINDS];
	_Atomic unsigned account_messages;
	_Atomic unsigned account_recipients;
	uint8_t rcpt_key[16];		/* SipHash key of recipient hashes */
	struct addrtable *clients;
	struct addrtable *accounts;
};

static void
rl_account_drop(void *value)
{
	struct rl_account *a = value;

	free(a->set);
	a->set = NULL;
}

void
ratelimit_set_limits(struct ratelimit *r, const struct ratelimit_limits *l)
{
	unsigned window = l->window < 1 ? 1 : l->window > 86400 ? 86400 : l->window;

	atomic_store(&r->window_ms, window * 1000u);
	atomic_store(&r->limit[RL_CONN], l->connections);
	atomic_store(&r->limit[RL_MSG], l->messages);
	atomic_store(&r->limit[RL_RCPT], l->recipients);
	atomic_store(&r->limit[RL_UNKNOWN], l->unknown_recipients);
	atomic_store(&r->account_messages, l->account_messages);
	atomic_store(&r->account_recipients,
	    l->account_recipients > RATELIMIT_ACCOUNT_RECIPIENTS_MAX ?
	    RATELIMIT_ACCOUNT_RECIPIENTS_MAX : l->account_recipients);
}

struct ratelimit *
ratelimit_new(size_t max_clients, size_t max_accounts, const struct ratelimit_limits *l)
{
	struct ratelimit *r = xcalloc(1, sizeof *r);

	ratelimit_set_limits(r, l);
	r->clients = addrtable_new(max_clients, sizeof(struct rl_client), NULL);
	r->accounts = addrtable_new(max_accounts, sizeof(struct rl_account),
	    rl_account_drop);
	/* A name key of the accounts table serves as the recipient key. */
	addrtable_key_name(r->accounts, "ratelimit recipients", r->rcpt_key);
	return r;
}

void
ratelimit_free(struct ratelimit **rp)
{
	struct ratelimit *r = *rp;

	if (r == NULL)
		return;
	addrtable_free(&r->clients);
	addrtable_free(&r->accounts);
	free(r);
	*rp = NULL;
}

/* ---- clients ---- */

struct rl_client_op {
	int64_t now;
	unsigned window;		/* ms */
	enum rl_kind count;		/* the event counted, or RL_KINDS: none */
	uint64_t rate[RL_KINDS];	/* out: the sliding counts */
};

static int
rl_client_update(void *value, int created, void *arg)
{
	struct rl_client *c = value;
	struct rl_client_op *op = arg;
	int64_t into;

	if (created || op->now < c->start || op->now - c->start >= 2 * (int64_t)op->window) {
		memset(c, 0, sizeof *c);
		c->start = op->now;
	} else if (op->now - c->start >= op->window) {
		memcpy(c->prev, c->cur, sizeof c->prev);
		memset(c->cur, 0, sizeof c->cur);
		c->start += op->window;
	}
	if (op->count < RL_KINDS && c->cur[op->count] < UINT32_MAX)
		c->cur[op->count]++;
	into = op->now - c->start;
	for (int k = 0; k < RL_KINDS; k++)
		op->rate[k] = c->cur[k] + (uint64_t)c->prev[k] *
		    (uint64_t)(op->window - into) / op->window;
	return ADDRTABLE_KEEP;
}

/* Counts event kind of sa (RL_KINDS: counts nothing) and fills op->rate;
 * -1 when sa's family has no key. */
static int
rl_client_event(struct ratelimit *r, const struct sockaddr *sa, enum rl_kind kind,
    int64_t now, struct rl_client_op *op)
{
	uint8_t key[ADDRTABLE_KEY_SIZE];

	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return -1;
	connlimit_key(sa, key);		/* the key of every per-address limit */
	op->now = now;
	op->window = atomic_load_explicit(&r->window_ms, memory_order_relaxed);
	op->count = kind;
	addrtable_update(r->clients, key, rl_client_update, op);
	return 0;
}

static int
rl_over(struct ratelimit *r, const struct rl_client_op *op, enum rl_kind kind)
{
	unsigned limit = atomic_load_explicit(&r->limit[kind], memory_order_relaxed);

	return limit != 0 && op->rate[kind] > limit;
}

/* A client at its unknown-recipient limit (the next RCPT is refused). */
static int
rl_unknown_used_up(struct ratelimit *r, const struct rl_client_op *op)
{
	unsigned limit = atomic_load_explicit(&r->limit[RL_UNKNOWN], memory_order_relaxed);

	return limit != 0 && op->rate[RL_UNKNOWN] >= limit;
}

int
ratelimit_connect(struct ratelimit *r, const struct sockaddr *sa, int64_t now_ms)
{
	struct rl_client_op op;

	if (rl_client_event(r, sa, RL_CONN, now_ms, &op) != 0)
		return RATELIMIT_OK;
	return rl_over(r, &op, RL_CONN) ? RATELIMIT_CONNECTIONS : RATELIMIT_OK;
}

int
ratelimit_message(struct ratelimit *r, const struct sockaddr *sa, int64_t now_ms)
{
	struct rl_client_op op;

	if (rl_client_event(r, sa, RL_MSG, now_ms, &op) != 0)
		return RATELIMIT_OK;
	return rl_over(r, &op, RL_MSG) ? RATELIMIT_MESSAGES : RATELIMIT_OK;
}

int
ratelimit_recipient(struct ratelimit *r, const struct sockaddr *sa, int64_t now_ms)
{
	struct rl_client_op op;

	if (rl_client_event(r, sa, RL_RCPT, now_ms, &op) != 0)
		return RATELIMIT_OK;
	if (rl_unknown_used_up(r, &op))
		return RATELIMIT_UNKNOWN_RECIPIENTS;
	return rl_over(r, &op, RL_RCPT) ? RATELIMIT_RECIPIENTS : RATELIMIT_OK;
}

int
ratelimit_unknown_recipient(struct ratelimit *r, const struct sockaddr *sa,
    int64_t now_ms)
{
	struct rl_client_op op;

	if (rl_client_event(r, sa, RL_UNKNOWN, now_ms, &op) != 0)
		return RATELIMIT_OK;
	return rl_unknown_used_up(r, &op) ? RATELIMIT_UNKNOWN_RECIPIENTS : RATELIMIT_OK;
}

/* ---- accounts ---- */

struct rl_account_op {
	int64_t now;
	unsigned limit;
	uint64_t rcpt;			/* recipient hash, 0 for a message */
	int verdict;
};

static void
rl_account_day(struct rl_account *a, int created, int64_t now)
{
	if (created || now < a->start || now - a->start >= RATELIMIT_DAY_MS) {
		a->start = now;
		a->messages = 0;
		a->nrcpts = 0;
		if (a->set != NULL)
			memset(a->set, 0, a->cap * sizeof *a->set);
	}
}

static int
rl_account_message(void *value, int created, void *arg)
{
	struct rl_account *a = value;
	struct rl_account_op *op = arg;

	rl_account_day(a, created, op->now);
	if (a->messages >= op->limit)
		op->verdict = RATELIMIT_ACCOUNT_MESSAGES;
	else
		a->messages++;
	return ADDRTABLE_KEEP;
}

/* The slot of h in a set of cap (a power of 2) slots: h's or an empty one. */
static uint32_t
rl_set_slot(const uint64_t *set, uint32_t cap, uint64_t h)
{
	uint32_t i = (uint32_t)h & (cap - 1);

	while (set[i] != 0 && set[i] != h)
		i = (i + 1) & (cap - 1);
	return i;
}

static void
rl_set_grow(struct rl_account *a)
{
	uint32_t cap = a->cap ? a->cap * 2 : 16;
	uint64_t *set = xcalloc(cap, sizeof *set);

	for (uint32_t i = 0; i < a->cap; i++)
		if (a->set[i] != 0)
			set[rl_set_slot(set, cap, a->set[i])] = a->set[i];
	free(a->set);
	a->set = set;
	a->cap = cap;
}

static int
rl_account_recipient(void *value, int created, void *arg)
{
	struct rl_account *a = value;
	struct rl_account_op *op = arg;

	rl_account_day(a, created, op->now);
	if (a->set != NULL && a->set[rl_set_slot(a->set, a->cap, op->rcpt)] == op->rcpt)
		return ADDRTABLE_KEEP;		/* already one of today's */
	if (a->nrcpts >= op->limit) {
		op->verdict = RATELIMIT_ACCOUNT_RECIPIENTS;
		return ADDRTABLE_KEEP;
	}
	if ((uint64_t)(a->nrcpts + 1) * 2 > a->cap)
		rl_set_grow(a);
	a->set[rl_set_slot(a->set, a->cap, op->rcpt)] = op->rcpt;
	a->nrcpts++;
	return ADDRTABLE_KEEP;
}

static void
rl_account_key(struct ratelimit *r, const char *account, uint8_t key[ADDRTABLE_KEY_SIZE])
{
	char name[RATELIMIT_NAME_MAX + 1];

	str_copy(name, account, sizeof name);
	addrtable_key_name(r->accounts, name, key);
}

int
ratelimit_account_message(struct ratelimit *r, const char *account, int64_t now_ms)
{
	struct rl_account_op op = { now_ms, 0, 0, RATELIMIT_OK };
	uint8_t key[ADDRTABLE_KEY_SIZE];

	op.limit = atomic_load_explicit(&r->account_messages, memory_order_relaxed);
	if (op.limit == 0)
		return RATELIMIT_OK;	/* no quota: nothing to count */
	rl_account_key(r, account, key);
	addrtable_update(r->accounts, key, rl_account_message, &op);
	return op.verdict;
}

int
ratelimit_account_recipient(struct ratelimit *r, const char *account,
    const char *rcpt, int64_t now_ms)
{
	struct rl_account_op op = { now_ms, 0, 0, RATELIMIT_OK };
	uint8_t key[ADDRTABLE_KEY_SIZE];

	op.limit = atomic_load_explicit(&r->account_recipients, memory_order_relaxed);
	if (op.limit == 0)
		return RATELIMIT_OK;	/* no quota: nothing to remember */
	op.rcpt = siphash24(r->rcpt_key, rcpt, strnlen(rcpt, RATELIMIT_NAME_MAX));
	if (op.rcpt == 0)
		op.rcpt = 1;		/* 0 marks an empty slot */
	rl_account_key(r, account, key);
	addrtable_update(r->accounts, key, rl_account_recipient, &op);
	return op.verdict;
}

size_t
ratelimit_clients(struct ratelimit *r)
{
	return addrtable_count(r->clients);
}

size_t
ratelimit_accounts(struct ratelimit *r)
{
	return addrtable_count(r->accounts);
}

/* ---- texts ---- */

static const struct {
	const char *text;
	const char *reply;
	unsigned reason;
} rl_verdicts[] = {
	[RATELIMIT_OK] = { "ok", "", MR_OTHER },
	[RATELIMIT_CONNECTIONS] = { "connection rate",
	    "421 4.7.0 Too many connections from your address, try again later",
	    MR_CONNECTION_RATE },
	[RATELIMIT_MESSAGES] = { "message rate",
	    "451 4.7.1 Too many messages from your address, try again later",
	    MR_MESSAGE_RATE },
	[RATELIMIT_RECIPIENTS] = { "recipient rate",
	    "452 4.7.1 Too many recipients from your address, try again later",
	    MR_RECIPIENT_RATE },
	[RATELIMIT_UNKNOWN_RECIPIENTS] = { "unknown recipient rate",
	    "450 4.7.1 Too many unknown recipients from your address, try again later",
	    MR_UNKNOWN_RECIPIENT_RATE },
	[RATELIMIT_ACCOUNT_MESSAGES] = { "account daily messages",
	    "451 4.7.1 This account has sent its messages for today, try again later",
	    MR_ACCOUNT_QUOTA },
	[RATELIMIT_ACCOUNT_RECIPIENTS] = { "account daily recipients",
	    "452 4.7.1 This account has reached its recipients for today, try again later",
	    MR_ACCOUNT_QUOTA },
};

#define RL_NVERDICTS (sizeof rl_verdicts / sizeof rl_verdicts[0])

const char *
ratelimit_verdict_text(int verdict)
{
	return verdict >= 0 && (size_t)verdict < RL_NVERDICTS ?
	    rl_verdicts[verdict].text : "?";
}

const char *
ratelimit_reply(int verdict)
{
	return verdict >= 0 && (size_t)verdict < RL_NVERDICTS ?
	    rl_verdicts[verdict].reply : "";
}

unsigned
ratelimit_metric_reason(int verdict)
{
	return verdict >= 0 && (size_t)verdict < RL_NVERDICTS ?
	    rl_verdicts[verdict].reason : MR_OTHER;
}
