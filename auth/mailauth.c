/* mailauth: the receiving MX's verdict on SPF, DKIM and DMARC (mailauth.h). */
#include <stdio.h>
#include <string.h>

#include "auth/authres.h"
#include "auth/header.h"
#include "auth/mailauth.h"
#include "lib/util.h"

/* The explanation as reply text: printable ASCII only, bounded. */
static void
mailauth_clean(const char *in, char *out, size_t outsize)
{
	size_t n = 0;

	for (; *in && n + 1 < outsize && n < 200; in++)
		out[n++] = (*in >= 32 && *in < 127) ? *in : '?';
	out[n] = '\0';
}

int
mailauth_spf_verdict(const struct mailauth_policy *p,
    const struct spf_outcome *spf, char *reply, size_t replysize)
{
	char why[256];

	if (spf->result == SPF_FAIL && p->spf_reject) {
		/* RFC 7208 8.4; RFC 7372 3.2: X.7.23 SPF validation failed */
		mailauth_clean(spf->explanation[0] ? spf->explanation :
		    "SPF check failed", why, sizeof why);
		snprintf(reply, replysize, "550 5.7.23 <%s>: %s (%s)", spf->sender, why,
		    spf->domain);
		return -1;
	}
	if (spf->result == SPF_TEMPERROR && p->tempfail_defer) {
		/* RFC 7208 8.6; RFC 7372 3.2: X.7.24 SPF validation error */
		snprintf(reply, replysize, "451 4.7.24 <%s>: temporary error checking "
		    "SPF of %s; try again later", spf->sender, spf->domain);
		return -1;
	}
	return 0;
}

/* A temporary error that could have changed a DMARC fail into a pass. */
static int
mailauth_temp_input(const struct spf_outcome *spf, const struct dkim_results *d)
{
	if (spf != NULL && spf->result == SPF_TEMPERROR)
		return 1;
	for (size_t i = 0; i < d->n; i++)
		if (d->sig[i].result == DKIM_TEMPERROR)
			return 1;
	return 0;
}

void
mailauth_check_message(const struct auth_dns *dns,
    const struct mailauth_policy *p, struct dkim_verifier *v,
    const struct spf_outcome *spf, unsigned sample, struct mailauth_result *r)
{
	struct dmarc_input in;
	struct authres_input ar;
	const char *h;
	size_t hlen;
	int from;

	memset(r, 0, sizeof *r);
	buf_init(&r->header, 16384);
	dkim_verifier_finish(v, dns, &r->dkim);
	h = dkim_verifier_headers(v, &hlen);
	from = auth_header_from_domain(h, hlen, r->from_domain, sizeof r->from_domain);
	if (from != 0)
		r->from_domain[0] = '\0';
	memset(&in, 0, sizeof in);
	in.from_domain = from == 0 ? r->from_domain : NULL;
	in.from_ambiguous = from == -2;
	in.from_unusable = from == -3 || from == -4;
	in.spf_result = spf != NULL ? spf->result : SPF_NONE;
	in.spf_domain = spf != NULL ? spf->domain : NULL;
	in.dkim = &r->dkim;
	in.sample = sample % 100;
	dmarc_check(dns, &in, &r->dmarc);

	if (r->dmarc.result == DMARC_TEMPERROR && p->tempfail_defer) {
		r->refused = 1;
		snprintf(r->reply, sizeof r->reply, "451 4.7.1 Temporary error "
		    "checking the DMARC policy of %s; try again later", r->from_domain);
	} else if (r->dmarc.result == DMARC_PERMERROR && from == -3 &&
	    p->dmarc_reject) {
		/* A From field with no domain DMARC can find, e.g. an unclosed
		 * '<' or a NUL: readers may still show one (a bypass known
		 * from MUAs). An 8-bit field (EAI, -4) is let through. */
		r->refused = 1;
		snprintf(r->reply, sizeof r->reply, "550 5.7.1 Email rejected: "
		    "no author domain in the From field; DMARC cannot check it");
	} else if (r->dmarc.result == DMARC_PERMERROR && in.from_ambiguous &&
	    p->dmarc_reject) {
		/* Two From fields, or authors in several domains: RFC 5322 3.6
		 * allows one field; RFC 7489 6.6.1 says such mail is typically
		 * rejected. Let through, it would be a DMARC bypass: a reader
		 * sees one author, DMARC could check none or another. */
		r->refused = 1;
		snprintf(r->reply, sizeof r->reply, "550 5.7.1 Email rejected: "
		    "several From fields or authors in several domains; "
		    "DMARC cannot check it");
	} else if (r->dmarc.result == DMARC_FAIL &&
	    r->dmarc.disposition == DMARC_P_REJECT && p->dmarc_reject) {
		r->refused = 1;
		if (p->tempfail_defer && mailauth_temp_input(spf, &r->dkim))
			snprintf(r->reply, sizeof r->reply, "451 4.7.1 DMARC check of "
			    "%s failed with a temporary error; try again later",
			    r->from_domain);
		else
			snprintf(r->reply, sizeof r->reply, "550 5.7.1 Email rejected "
			    "per DMARC policy for %s", r->from_domain);
	}

	memset(&ar, 0, sizeof ar);
	ar.authserv_id = p->authserv_id;
	ar.spf = spf;
	ar.dkim = &r->dkim;
	ar.dmarc = &r->dmarc;
	if (authres_build(&ar, &r->header) != 0) {
		/* Cannot happen with a valid authserv_id and this bound. */
		buf_reset(&r->header);
	}
}

void
mailauth_summary(const struct spf_outcome *spf, const struct mailauth_result *r,
    char *out, size_t outsize)
{
	size_t n;

	n = (size_t)snprintf(out, outsize, "spf=%s", spf != NULL ?
	    spf_result_name(spf->result) : "none");
	if (r->dkim.n == 0 && n < outsize)
		n += (size_t)snprintf(out + n, outsize - n, " dkim=none");
	for (size_t i = 0; i < r->dkim.n && n < outsize; i++)
		n += (size_t)snprintf(out + n, outsize - n, " dkim=%s (%s)",
		    dkim_result_name(r->dkim.sig[i].result), r->dkim.sig[i].domain);
	if (n < outsize)
		snprintf(out + n, outsize - n, " dmarc=%s%s%s", dmarc_result_name(r->dmarc.result),
		    r->dmarc.result == DMARC_FAIL ? " p=" : "",
		    r->dmarc.result == DMARC_FAIL ? dmarc_policy_name(r->dmarc.disposition) : "");
}
