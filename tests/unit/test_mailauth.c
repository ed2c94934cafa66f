/*
 * test_mailauth: auth/mailauth, the receiving MX's verdict: SPF fail and
 * temperror at MAIL FROM under spf_reject and auth_tempfail; DMARC at the
 * end of data against an auth_dns_table (reject, quarantine, pct=0, a
 * temporary error, a reject a temporary error may have caused), with
 * dmarc_reject on and off; several From fields or author domains
 * (refused, RFC 7489 6.6.1) and a From field without an author domain
 * (refused unless 8-bit); the Authentication-Results field; and a From
 * field that could inject text into the reply or the field.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_dns_table.h"
#include "auth/mailauth.h"
#include "lib/util.h"

static struct mailauth_policy policy = {
	.authserv_id = "mx.example", .spf_reject = 1, .dmarc_reject = 1,
	.tempfail_defer = 0,
};

static void
spf(struct spf_outcome *o, enum spf_result r, const char *domain)
{
	memset(o, 0, sizeof *o);
	o->result = r;
	snprintf(o->sender, sizeof o->sender, "a@%s", domain);
	str_copy(o->domain, domain, sizeof o->domain);
}

static void
test_spf_verdict(void)
{
	struct mailauth_policy p = policy;
	struct spf_outcome o;
	char reply[MAILAUTH_REPLY_MAX];

	spf(&o, SPF_FAIL, "fail.example");
	CU_ASSERT_EQUAL(mailauth_spf_verdict(&p, &o, reply, sizeof reply), -1);
	CU_ASSERT(strncmp(reply, "550 5.7.23 <a@fail.example>", 27) == 0);
	/* exp= text from the sender's DNS: no CR, LF or 8-bit in the reply */
	str_copy(o.explanation, "go away\r\n250 ok\xff", sizeof o.explanation);
	CU_ASSERT_EQUAL(mailauth_spf_verdict(&p, &o, reply, sizeof reply), -1);
	CU_ASSERT(strchr(reply, '\r') == NULL && strchr(reply, '\n') == NULL);
	CU_ASSERT(strstr(reply, "go away??250 ok?") != NULL);
	p.spf_reject = 0;
	CU_ASSERT_EQUAL(mailauth_spf_verdict(&p, &o, reply, sizeof reply), 0);
	spf(&o, SPF_SOFTFAIL, "x.example");
	CU_ASSERT_EQUAL(mailauth_spf_verdict(&policy, &o, reply, sizeof reply), 0);
	spf(&o, SPF_TEMPERROR, "x.example");
	CU_ASSERT_EQUAL(mailauth_spf_verdict(&policy, &o, reply, sizeof reply), 0);
	p.tempfail_defer = 1;
	CU_ASSERT_EQUAL(mailauth_spf_verdict(&p, &o, reply, sizeof reply), -1);
	CU_ASSERT(strncmp(reply, "451 4.7.24 ", 11) == 0);
	spf(&o, SPF_PERMERROR, "x.example");
	CU_ASSERT_EQUAL(mailauth_spf_verdict(&p, &o, reply, sizeof reply), 0);
}

static struct auth_dns *
zone(void)
{
	static const struct { const char *name, *type, *value; } recs[] = {
		{ "_dmarc.reject.example", "TXT", "v=DMARC1; p=reject" },
		{ "_dmarc.quar.example", "TXT", "v=DMARC1; p=quarantine" },
		{ "_dmarc.pct.example", "TXT", "v=DMARC1; p=reject; pct=0" },
		{ "_dmarc.temp.example", "TEMP", "" },
	};
	struct auth_dns *d = auth_dns_table_new();

	for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++)
		auth_dns_table_add(d, recs[i].name, recs[i].type, recs[i].value,
		    strlen(recs[i].value));
	return d;
}

/* Checks msg with p and the SPF outcome s (NULL: not checked). */
static void
check(const struct mailauth_policy *p, const char *msg,
    const struct spf_outcome *s, struct mailauth_result *r)
{
	struct auth_dns *d = zone();
	struct dkim_verifier *v = dkim_verifier_new(NULL);

	dkim_verifier_update(v, msg, strlen(msg));
	mailauth_check_message(d, p, v, s, 50, r);
	dkim_verifier_free(&v);
	auth_dns_free(&d);
}

static void
test_dmarc_verdict(void)
{
	struct mailauth_policy p = policy;
	struct mailauth_result r;
	struct spf_outcome o;

	/* aligned SPF pass */
	spf(&o, SPF_PASS, "reject.example");
	check(&p, "From: x@reject.example\r\n\r\nhi\r\n", &o, &r);
	CU_ASSERT_EQUAL(r.refused, 0);
	CU_ASSERT_EQUAL(r.dmarc.result, DMARC_PASS);
	CU_ASSERT_STRING_EQUAL(r.from_domain, "reject.example");
	CU_ASSERT(strncmp(r.header.data, "Authentication-Results: mx.example;", 35) == 0);
	CU_ASSERT(strstr(r.header.data, "dmarc=pass") != NULL);
	CU_ASSERT(strstr(r.header.data, "\r\n") == r.header.data + r.header.len - 2 ||
	    strstr(r.header.data, "\r\n\t") != NULL);
	buf_free(&r.header);

	/* misaligned: refused, or only the header */
	spf(&o, SPF_PASS, "other.example");
	check(&p, "From: x@reject.example\r\n\r\nhi\r\n", &o, &r);
	CU_ASSERT_EQUAL(r.refused, 1);
	CU_ASSERT(strncmp(r.reply, "550 5.7.1 ", 10) == 0);
	CU_ASSERT(strstr(r.reply, "reject.example") != NULL);
	buf_free(&r.header);
	p.dmarc_reject = 0;
	check(&p, "From: x@reject.example\r\n\r\nhi\r\n", &o, &r);
	CU_ASSERT_EQUAL(r.refused, 0);
	CU_ASSERT(strstr(r.header.data, "dmarc=fail") != NULL);
	buf_free(&r.header);
	p.dmarc_reject = 1;

	/* quarantine and pct=0 are accepted with the result in the header */
	check(&p, "From: x@quar.example\r\n\r\nhi\r\n", &o, &r);
	CU_ASSERT_EQUAL(r.refused, 0);
	CU_ASSERT_EQUAL(r.dmarc.disposition, DMARC_P_QUARANTINE);
	CU_ASSERT(strstr(r.header.data, "quarantine") != NULL);
	buf_free(&r.header);
	check(&p, "From: x@pct.example\r\n\r\nhi\r\n", &o, &r);
	CU_ASSERT_EQUAL(r.refused, 0);
	CU_ASSERT_EQUAL(r.dmarc.result, DMARC_FAIL);
	buf_free(&r.header);

	/* a temporary error: accepted, or deferred */
	check(&p, "From: x@temp.example\r\n\r\nhi\r\n", &o, &r);
	CU_ASSERT_EQUAL(r.refused, 0);
	CU_ASSERT_EQUAL(r.dmarc.result, DMARC_TEMPERROR);
	buf_free(&r.header);
	p.tempfail_defer = 1;
	check(&p, "From: x@temp.example\r\n\r\nhi\r\n", &o, &r);
	CU_ASSERT_EQUAL(r.refused, 1);
	CU_ASSERT(strncmp(r.reply, "451 4.7.1 ", 10) == 0);
	buf_free(&r.header);
	/* a reject an SPF temperror may have caused: deferred */
	spf(&o, SPF_TEMPERROR, "reject.example");
	check(&p, "From: x@reject.example\r\n\r\nhi\r\n", &o, &r);
	CU_ASSERT_EQUAL(r.refused, 1);
	CU_ASSERT(strncmp(r.reply, "451 ", 4) == 0);
	buf_free(&r.header);
	p.tempfail_defer = 0;
	check(&p, "From: x@reject.example\r\n\r\nhi\r\n", &o, &r);
	CU_ASSERT(strncmp(r.reply, "550 ", 4) == 0);
	buf_free(&r.header);

	/* no From domain, two From fields, no SPF: none or permerror */
	check(&p, "Subject: x\r\n\r\nhi\r\n", NULL, &r);
	CU_ASSERT_EQUAL(r.refused, 0);
	CU_ASSERT_STRING_EQUAL(r.from_domain, "");
	CU_ASSERT(strstr(r.header.data, "spf=") == NULL);	/* not checked */
	buf_free(&r.header);
	check(&p, "From: a@reject.example\r\nFrom: b@other.example\r\n\r\nhi\r\n",
	    NULL, &r);
	CU_ASSERT_EQUAL(r.dmarc.result, DMARC_PERMERROR);
	CU_ASSERT_EQUAL(r.refused, 1);
	CU_ASSERT(strncmp(r.reply, "550 5.7.1 ", 10) == 0);
	buf_free(&r.header);
	/* the same domain twice, and one field with two authors' domains:
	 * refused too; only the header with dmarc_reject = no */
	check(&p, "From: a@pass.example\r\nFrom: a@pass.example\r\n\r\nhi\r\n",
	    NULL, &r);
	CU_ASSERT_EQUAL(r.refused, 1);
	buf_free(&r.header);
	check(&p, "From: a@pass.example, \"x\" <b@reject.example>\r\n\r\nhi\r\n",
	    NULL, &r);
	CU_ASSERT_EQUAL(r.refused, 1);
	buf_free(&r.header);
	check(&p, "From: a@reject.example, b@REJECT.example.\r\n\r\nhi\r\n",
	    &o, &r);
	CU_ASSERT_EQUAL(r.dmarc.result, DMARC_FAIL);	/* one author domain */
	CU_ASSERT_STRING_EQUAL(r.from_domain, "reject.example");
	buf_free(&r.header);
	/* a From field with no author domain DMARC can find (readers may
	 * still show one): refused; an 8-bit (EAI) one only noted */
	check(&p, "From: Bank <ceo@reject.example\r\n\r\nhi\r\n", NULL, &r);
	CU_ASSERT_EQUAL(r.dmarc.result, DMARC_PERMERROR);
	CU_ASSERT_EQUAL(r.refused, 1);
	CU_ASSERT(strncmp(r.reply, "550 5.7.1 ", 10) == 0);
	buf_free(&r.header);
	check(&p, "From: =?utf-8?b?Y2VvQHJlamVjdC5leGFtcGxl?=\r\n\r\nhi\r\n",
	    NULL, &r);
	CU_ASSERT_EQUAL(r.refused, 1);
	buf_free(&r.header);
	check(&p, "From: <a@b\xc3\xbc" "cher.example>\r\n\r\nhi\r\n", NULL, &r);
	CU_ASSERT_EQUAL(r.dmarc.result, DMARC_PERMERROR);
	CU_ASSERT_EQUAL(r.refused, 0);
	CU_ASSERT(strstr(r.header.data, "no author domain") != NULL);
	buf_free(&r.header);
	p.dmarc_reject = 0;
	check(&p, "From: a@reject.example\r\nFrom: b@other.example\r\n\r\nhi\r\n",
	    NULL, &r);
	CU_ASSERT_EQUAL(r.refused, 0);
	CU_ASSERT(strstr(r.header.data, "dmarc=permerror") != NULL);
	buf_free(&r.header);
	check(&p, "From: Bank <ceo@reject.example\r\n\r\nhi\r\n", NULL, &r);
	CU_ASSERT_EQUAL(r.refused, 0);
	CU_ASSERT(strstr(r.header.data, "dmarc=permerror") != NULL);
	buf_free(&r.header);
	p.dmarc_reject = 1;
	/* a hostile From cannot break out of the field */
	check(&p, "From: x@\"quar.example\r\nX-Evil: 1\"\r\n\r\nhi\r\n", NULL, &r);
	CU_ASSERT(strstr(r.header.data, "X-Evil") == NULL);
	buf_free(&r.header);
}

static void
test_summary(void)
{
	struct mailauth_result r;
	struct spf_outcome o;
	char line[512];

	spf(&o, SPF_PASS, "reject.example");
	check(&policy, "From: x@reject.example\r\n\r\nhi\r\n", &o, &r);
	mailauth_summary(&o, &r, line, sizeof line);
	CU_ASSERT_STRING_EQUAL(line, "spf=pass dkim=none dmarc=pass");
	mailauth_summary(NULL, &r, line, 8);
	CU_ASSERT_EQUAL(strlen(line), 7);
	buf_free(&r.header);
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("mailauth", NULL, NULL);
	CU_add_test(s, "SPF at MAIL FROM", test_spf_verdict);
	CU_add_test(s, "DMARC at the end of data", test_dmarc_verdict);
	CU_add_test(s, "log summary", test_summary);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
