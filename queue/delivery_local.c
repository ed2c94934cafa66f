/*
 * delivery_local: local jobs. A recipient that is an alias is not
 * delivered here: it is marked for expansion, and its final targets
 * become recipients of the message of their own (delivery.h). Every other
 * recipient is one Maildir item (user@[our address]: that of user at the
 * policy's literal_domain); unknown local users bounce (5.1.1), and a
 * Maildir that cannot be written now defers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/netaddr.h"
#include "lib/util.h"
#include "queue/delivery_internal.h"
#include "storage/userdb.h"

static void
local_items_add(struct local_items *li, struct job_ctx *jc, struct outcome *o,
    const char *user, const char *domain)
{
	struct maildir_item *it;
	size_t len = strlen(user) + strlen(domain) + 2;

	if (li->n == li->cap) {
		li->cap = li->cap ? li->cap * 2 : 16;
		li->items = xrealloc(li->items, li->cap * sizeof *li->items);
		li->out = xrealloc(li->out, li->cap * sizeof *li->out);
		li->targets = xrealloc(li->targets, li->cap * sizeof *li->targets);
	}
	it = &li->items[li->n];
	memset(it, 0, sizeof *it);
	/* "user@domain", then "user" and "domain" for the Maildir path */
	li->targets[li->n] = xmalloc(2 * len);
	snprintf(li->targets[li->n], 2 * len, "%s@%s%c%s%c%s", user, domain, '\0',
	    user, '\0', domain);
	it->recipient = li->targets[li->n];
	it->user = it->recipient + len;
	it->domain = it->user + strlen(user) + 1;
	it->sender = jc->msg.env.sender;
	it->body = &jc->reader;
	li->out[li->n] = o;
	li->n++;
}

void
local_items_free(struct local_items *li)
{
	for (size_t k = 0; k < li->n; k++)
		free(li->targets[k]);
	free(li->items);
	free(li->out);
	free(li->targets);
	memset(li, 0, sizeof *li);
}

void
local_address(const struct delivery_policy *pol, const struct queue_rcpt *r,
    char *out, size_t outsize)
{
	const char *at = strrchr(r->addr, '@');

	if (at == NULL)
		str_format(out, outsize, "%s@%s", r->addr,
		    pol->nlocal_domains ? pol->local_domains[0] : "localhost");
	else if (ip_literal_in(at + 1, pol->own_addrs, pol->nown_addrs))
		str_format(out, outsize, "%.*s@%s", (int)(at - r->addr), r->addr,
		    pol->literal_domain ? pol->literal_domain : "localhost");
	else
		str_copy(out, r->addr, outsize);
}

void
local_prepare(struct job_ctx *jc, struct local_items *li)
{
	struct delivery_policy *pol = jc->pol;

	for (size_t i = 0; i < jc->nout; i++) {
		struct outcome *o = &jc->out[i];
		char addr[600], *at, **list = NULL;
		int n;

		str_copy(o->relay, "local", sizeof o->relay);
		local_address(pol, o->r, addr, sizeof addr);
		if (!(o->r->flags & RCPT_F_ALIAS_TARGET)) {
			n = userdb_expand(pol->udb, addr, policy_is_local, pol, &list);
			if (n < 0) {
				o->fact = 1;
				outcome_set(o, RCPT_BOUNCED, "5.4.6", "alias expansion "
				    "of <%s> loops or has too many targets", addr);
				continue;
			}
			if (n != 1 || strcasecmp(list[0], addr) != 0) {
				/* An alias: its targets are recipients of their
				 * own once expanded. */
				o->expand = 1;
				o->targets = list;
				o->ntargets = n;
				outcome_set(o, RCPT_EXPANDED, "2.0.0",
				    "alias expanded to %d recipient(s)", n);
				continue;
			}
			userdb_list_free(list, n);
		}
		o->fact = 1;
		if (pol->local_lmtp != NULL) {
			/* The LMTP server knows its users (delivery_lmtp.c). */
			o->lmtp = 1;
			continue;
		}
		at = strrchr(addr, '@');
		if (userdb_lookup(pol->udb, addr) == USERDB_NONE &&
		    strncasecmp(addr, "postmaster@", 11) != 0) {
			outcome_set(o, RCPT_BOUNCED, "5.1.1", "unknown user: \"%s\"",
			    addr);
			continue;
		}
		*at = '\0';
		outcome_set(o, RCPT_SENT, "2.0.0", "delivered to maildir");
		local_items_add(li, jc, o, addr, at + 1);
	}
}

/* A Maildir that cannot be written now defers (README); only what can
 * never be written bounces. */
void
local_finish(struct local_items *li)
{
	for (size_t k = 0; k < li->n; k++) {
		struct outcome *o = li->out[k];
		struct maildir_item *it = &li->items[k];

		if (it->status == MAILDIR_TEMP)
			outcome_set(o, RCPT_DEFERRED, "4.2.0", "%s", it->error);
		else if (it->status != MAILDIR_OK)
			outcome_set(o, RCPT_BOUNCED, "5.2.0", "%s", it->error);
	}
}
