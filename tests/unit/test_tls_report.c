/*
 * test_tls_report: the outbound TLS store (relay/tls_store.c) and TLS
 * reporting (relay/tls_report.c): counters that survive a reopen, the
 * RFC 8460 JSON aggregate of a day (policies kept apart, failures by
 * host, days and domains apart, hostile strings escaped), pruning, many
 * threads counting at once, a read-only second opener, a corrupt cached
 * MTA-STS record, and the _smtp._tls TXT parser.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/utf8.h"
#include "relay/mta_sts_cache.h"
#include "relay/tls_report.h"
#include "relay/tls_store.h"

#define DAY 86400
#define T0 1780000000LL		/* 2026-05-28, some time of day */

static char dir[64];

/* An empty directory for the store (a queue_dir). */
static void
fresh_dir(void)
{
	char cmd[256];

	snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
	if (system(cmd) != 0)
		abort();
}

static struct tls_store *
open_store(unsigned flags)
{
	char err[300];
	struct tls_store *s = tls_store_open(dir, flags, err, sizeof err);

	if (s == NULL)
		fprintf(stderr, "\n  %s\n", err);
	return s;
}

static const struct tls_rpt_policy STS = {
	TLS_RPT_POLICY_STS, "Example.COM",
	"version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.example.net\nmax_age: 86400\n",
	"mx1.example.com\n*.example.net",
};
static const struct tls_rpt_policy TLSA = {
	TLS_RPT_POLICY_TLSA, "example.com", "3 1 1 abcd\n2 0 1 ef01", NULL,
};

static void
test_store_basic(void)
{
	struct tls_store *s;
	struct buf v;
	uint64_t n;

	fresh_dir();
	s = open_store(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	buf_init(&v, 1024);
	CU_ASSERT_EQUAL(tls_store_get(s, TLS_STORE_STS, "a", 1, &v), 1);
	CU_ASSERT_EQUAL(tls_store_put(s, TLS_STORE_STS, "a", 1, "xyz", 3, 1), 0);
	CU_ASSERT_EQUAL(tls_store_get(s, TLS_STORE_STS, "a", 1, &v), 0);
	CU_ASSERT_EQUAL(v.len, 3);
	CU_ASSERT_EQUAL(tls_store_add(s, TLS_STORE_RPT, "c", 1, 2), 0);
	CU_ASSERT_EQUAL(tls_store_add(s, TLS_STORE_RPT, "c", 1, 3), 0);
	/* Keys out of bounds are refused. */
	CU_ASSERT_EQUAL(tls_store_put(s, TLS_STORE_STS, "", 0, "x", 1, 0), -1);
	{
		char big[TLS_STORE_KEY_MAX + 1];
		memset(big, 'k', sizeof big);
		CU_ASSERT_EQUAL(tls_store_put(s, TLS_STORE_STS, big, sizeof big, "x", 1, 0), -1);
	}
	tls_store_close(&s);
	CU_ASSERT_PTR_NULL(s);

	/* A second opener reads what the first wrote; read-only cannot write. */
	s = open_store(TLS_STORE_RDONLY);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(tls_store_get(s, TLS_STORE_RPT, "c", 1, &v), 0);
	CU_ASSERT_EQUAL(tls_store_counter(v.data, v.len, &n), 0);
	CU_ASSERT_EQUAL(n, 5);
	CU_ASSERT_EQUAL(tls_store_add(s, TLS_STORE_RPT, "c", 1, 1), -1);
	tls_store_close(&s);
	buf_free(&v);

	/* A read-only open of nothing fails. */
	{
		char err[300], *d = "/nonexistent/queue";
		CU_ASSERT_PTR_NULL(tls_store_open(d, TLS_STORE_RDONLY, err, sizeof err));
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/queue/tls"));
	}
}

static void
record(struct tls_store *s, const struct tls_rpt_policy *p, enum tls_rpt_result r,
    const char *mx, const char *rip, int64_t t, int times)
{
	struct tls_rpt_event e = { r, mx, rip, "192.0.2.1" };

	for (int i = 0; i < times; i++)
		CU_ASSERT_EQUAL(tls_report_record(s, p, &e, t), 0);
}

static void
test_report_json(void)
{
	struct tls_store *s;
	struct buf out;
	struct tls_report_meta meta = { "Example Org", "postmaster@mx.test", NULL };

	fresh_dir();
	s = open_store(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	record(s, &STS, TLS_RPT_SUCCESS, "mx1.example.com", "127.0.0.2", T0, 3);
	record(s, &STS, TLS_RPT_CERT_EXPIRED, "mx1.example.com", "127.0.0.2", T0, 2);
	record(s, &STS, TLS_RPT_CERT_EXPIRED, "mx2.example.net", "127.0.0.3", T0 + 60, 1);
	record(s, &TLSA, TLS_RPT_SUCCESS, "mx1.example.com", "127.0.0.2", T0, 4);
	record(s, &TLSA, TLS_RPT_VALIDATION_FAILURE, "mx1.example.com", "::1", T0, 1);
	/* Another day, another domain: not in this report. */
	record(s, &STS, TLS_RPT_SUCCESS, "mx1.example.com", "127.0.0.2", T0 + DAY, 7);
	{
		struct tls_rpt_policy other = STS;
		other.domain = "example.org";
		record(s, &other, TLS_RPT_SUCCESS, "mx1.example.org", "127.0.0.2", T0, 9);
	}
	tls_store_close(&s);

	/* Reopened: everything is still there. */
	s = open_store(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	buf_init(&out, 1 << 20);
	CU_ASSERT_EQUAL(tls_report_json(s, "example.com", T0, &meta, &out), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "\"organization-name\": \"Example Org\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "\"start-datetime\": \"2026-05-28T00:00:00Z\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "\"end-datetime\": \"2026-05-28T23:59:59Z\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "\"contact-info\": \"postmaster@mx.test\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "\"report-id\": \"2026-05-28T00:00:00Z_example.com\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "\"policy-type\": \"sts\", \"policy-string\": "
	    "[\"version: STSv1\", \"mode: enforce\", \"mx: mx1.example.com\", "
	    "\"mx: *.example.net\", \"max_age: 86400\"], \"policy-domain\": \"example.com\", "
	    "\"mx-host\": [\"mx1.example.com\", \"*.example.net\"]"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "\"total-successful-session-count\": 3, "
	    "\"total-failure-session-count\": 3"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "{\"result-type\": \"certificate-expired\", "
	    "\"sending-mta-ip\": \"192.0.2.1\", \"receiving-mx-hostname\": \"mx1.example.com\", "
	    "\"receiving-ip\": \"127.0.0.2\", \"failed-session-count\": 2}"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "\"receiving-mx-hostname\": \"mx2.example.net\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "\"policy-type\": \"tlsa\", \"policy-string\": "
	    "[\"3 1 1 abcd\", \"2 0 1 ef01\"]"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "\"total-successful-session-count\": 4, "
	    "\"total-failure-session-count\": 1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "\"result-type\": \"validation-failure\""));
	CU_ASSERT_PTR_NULL(strstr(out.data, "example.org"));
	CU_ASSERT_PTR_NULL(strstr(out.data, ": 7,"));

	/* The next day holds one policy; an empty day holds none. */
	buf_reset(&out);
	CU_ASSERT_EQUAL(tls_report_json(s, "example.com", T0 + DAY, &meta, &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "\"total-successful-session-count\": 7"));
	buf_reset(&out);
	CU_ASSERT_EQUAL(tls_report_json(s, "example.com", T0 + 5 * DAY, &meta, &out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "\"policies\": []"));

	/* Text. */
	buf_reset(&out);
	CU_ASSERT_EQUAL(tls_report_text(s, "example.com", T0, &out), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "2026-05-28 example.com policy sts: 3 successful, 3 failed"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "  certificate-expired mx=mx1.example.com "
	    "receiving-ip=127.0.0.2 sending-ip=192.0.2.1: 2"));

	/* A buffer too small for the report: -1, nothing half-written. */
	{
		struct buf tiny;
		buf_init(&tiny, 100);
		CU_ASSERT_EQUAL(tls_report_json(s, "example.com", T0, &meta, &tiny), -1);
		CU_ASSERT_EQUAL(tiny.len, 0);
		buf_free(&tiny);
	}

	/* Pruning drops the first day only. */
	CU_ASSERT(tls_report_prune(s, T0 + DAY) > 0);
	CU_ASSERT_EQUAL(tls_report_prune(s, T0 + DAY), 0);	/* nothing left to drop */
	buf_reset(&out);
	CU_ASSERT_EQUAL(tls_report_json(s, "example.com", T0, &meta, &out), 0);
	buf_reset(&out);
	CU_ASSERT_EQUAL(tls_report_json(s, "example.com", T0 + DAY, &meta, &out), 1);
	buf_free(&out);
	tls_store_close(&s);
}

static void
test_report_hostile(void)
{
	struct tls_store *s;
	struct buf out;
	struct tls_rpt_policy p = { TLS_RPT_POLICY_STS, "example.com",
	    "a \"quoted\" \\ line\x01\nsecond", "x" };
	char longmx[400];
	struct tls_rpt_event e = { TLS_RPT_CERT_NOT_TRUSTED, NULL, "::FFFF:127.0.0.1", "127.0.0.1; DROP" };

	fresh_dir();
	s = open_store(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	memset(longmx, 'm', sizeof longmx - 1);
	longmx[sizeof longmx - 1] = '\0';
	e.mx_host = longmx;
	CU_ASSERT_EQUAL(tls_report_record(s, &p, &e, T0), 0);	/* cut to fit */
	buf_init(&out, 1 << 20);
	CU_ASSERT_EQUAL(tls_report_json(s, "example.com", T0, NULL, &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "\"a \\\"quoted\\\" \\\\ line\\u0001\", \"second\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "\"receiving-ip\": \"::ffff:127.0.0.1\""));
	CU_ASSERT_PTR_NULL(strstr(out.data, "DROP"));
	CU_ASSERT_PTR_NULL(strstr(out.data, "sending-mta-ip"));
	buf_free(&out);
	/* Bad input is refused, not stored. */
	p.domain = "bad domain";
	CU_ASSERT_EQUAL(tls_report_record(s, &p, &e, T0), -1);
	p.domain = "example.com";
	e.result = TLS_RPT_NRESULTS;
	CU_ASSERT_EQUAL(tls_report_record(s, &p, &e, T0), -1);
	CU_ASSERT_EQUAL(tls_report_record(NULL, &p, &e, T0), -1);
	CU_ASSERT_EQUAL(tls_report_json(s, "bad domain", T0, NULL, &out), -1);
	tls_store_close(&s);
}

/* A policy with 8-bit junk, and one whose stored text is cut inside a
 * character: the report is still UTF-8 (RFC 8259 8.1), the junk shown as
 * U+FFFD and a valid character kept. */
static void
test_report_utf8(void)
{
	static char big[20000];
	struct tls_store *s;
	struct buf out;
	struct tls_rpt_policy p = { TLS_RPT_POLICY_STS, "example.com",
	    "version: STSv1\nx-ext: \xff\xfe caf\xc3\xa9\nmx: mx.example.com",
	    "mx.example.com" };
	struct tls_rpt_event e = { TLS_RPT_SUCCESS, NULL, NULL, NULL };

	fresh_dir();
	s = open_store(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(tls_report_record(s, &p, &e, T0), 0);
	memset(big, 'a', sizeof big - 1);
	memcpy(big, "x-ext: ", 7);
	big[16383] = '\xc3';	/* a character across the stored text's end */
	big[16384] = '\xa9';
	p.strings = big;
	CU_ASSERT_EQUAL(tls_report_record(s, &p, &e, T0 + DAY), 0);
	buf_init(&out, 1 << 20);
	CU_ASSERT_EQUAL(tls_report_json(s, "example.com", T0, NULL, &out), 1);
	CU_ASSERT(utf8_valid((const unsigned char *)out.data, out.len));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "x-ext: \\ufffd\\ufffd caf\xc3\xa9"));
	buf_reset(&out);
	CU_ASSERT_EQUAL(tls_report_json(s, "example.com", T0 + DAY, NULL, &out), 1);
	CU_ASSERT(utf8_valid((const unsigned char *)out.data, out.len));
	buf_free(&out);
	tls_store_close(&s);
}

struct worker {
	struct tls_store *s;
	int id;
};

static void *
count_many(void *arg)
{
	struct worker *w = arg;
	struct tls_rpt_event e = { TLS_RPT_SUCCESS, "mx1.example.com", "127.0.0.2", NULL };

	for (int i = 0; i < 250; i++) {
		e.result = (i % 5 == 0) ? TLS_RPT_STARTTLS_NOT_SUPPORTED : TLS_RPT_SUCCESS;
		if (tls_report_record(w->s, &TLSA, &e, T0) != 0)
			return (void *)1;
	}
	return NULL;
}

static void
test_threads(void)
{
	struct tls_store *s;
	pthread_t t[4];
	struct worker w[4];
	struct buf out;
	void *rv;

	fresh_dir();
	s = open_store(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	for (int i = 0; i < 4; i++) {
		w[i].s = s;
		w[i].id = i;
		CU_ASSERT_EQUAL(pthread_create(&t[i], NULL, count_many, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		CU_ASSERT_EQUAL(pthread_join(t[i], &rv), 0);
		CU_ASSERT_PTR_NULL(rv);
	}
	buf_init(&out, 1 << 20);
	CU_ASSERT_EQUAL(tls_report_json(s, "example.com", T0, NULL, &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "\"total-successful-session-count\": 800, "
	    "\"total-failure-session-count\": 200"));
	buf_free(&out);
	tls_store_close(&s);
}

static void
test_sts_cache_record(void)
{
	struct tls_store *s;
	struct mta_sts_state st;

	fresh_dir();
	s = open_store(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(mta_sts_cache_get(s, "example.com", &st), 1);
	/* Garbage where a cached policy should be: ignored, not a crash. */
	CU_ASSERT_EQUAL(tls_store_put(s, TLS_STORE_STS, "example.com", 11, "\1junk", 5, 1), 0);
	CU_ASSERT_EQUAL(mta_sts_cache_get(s, "example.com", &st), -1);
	CU_ASSERT_EQUAL(st.have, 0);
	mta_sts_state_clear(&st);
	{
		/* A well-formed record whose policy text does not parse. */
		uint8_t rec[18 + 2 + 5] = { 1 };
		rec[17] = 2;
		memcpy(rec + 18, "X1", 2);
		memcpy(rec + 20, "hello", 5);
		CU_ASSERT_EQUAL(tls_store_put(s, TLS_STORE_STS, "example.com", 11, rec,
		    sizeof rec, 1), 0);
		CU_ASSERT_EQUAL(mta_sts_cache_get(s, "example.com", &st), -1);
		mta_sts_state_clear(&st);
	}
	tls_store_close(&s);
}

static void
test_rpt_txt(void)
{
	static const struct {
		const char *txt;
		size_t nrua;		/* 0: invalid */
		const char *rua0;
	} t[] = {
		{ "v=TLSRPTv1; rua=mailto:reports@example.com", 1, "mailto:reports@example.com" },
		{ "v=TLSRPTv1;rua=https://reporting.example.com/v1/tlsrpt", 1,
		  "https://reporting.example.com/v1/tlsrpt" },
		{ "v=TLSRPTv1; rua=mailto:a@x.test, https://b.test/r;", 2, "mailto:a@x.test" },
		{ "v=TLSRPTv1; rua=ftp://x.test,mailto:a@x.test", 1, "mailto:a@x.test" },
		{ "v=TLSRPTv1; ext=1; rua=MAILTO:a@x.test", 1, "MAILTO:a@x.test" },
		{ "v=TLSRPTv1; rua=ftp://x.test", 0, NULL },
		{ "v=TLSRPTv1;", 0, NULL },
		{ "v=TLSRPTv1; rua=", 0, NULL },
		{ "v=TLSRPTv1; rua=mailto:a@x.test; rua=mailto:b@x.test", 0, NULL },
		{ "v=TLSRPTv1; rua=mailto:a b@x.test", 0, NULL },
		{ "v=TLSRPTv1; rua=mailto:", 0, NULL },
		{ "v=TLSRPTv2; rua=mailto:a@x.test", 0, NULL },
		{ "rua=mailto:a@x.test; v=TLSRPTv1", 0, NULL },
		{ "v=TLSRPTv1;; rua=mailto:a@x.test", 0, NULL },
		{ "v=TLSRPTv1; rua=mailto:a@x.test; x=\x01", 0, NULL },
		{ "", 0, NULL },
	};
	struct tls_rpt_txt r;

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		int rc = tls_rpt_txt_parse(t[i].txt, &r);
		if (rc != (t[i].nrua ? 0 : -1))
			fprintf(stderr, "\n  tlsrpt \"%s\": %d", t[i].txt, rc);
		CU_ASSERT_EQUAL(rc, t[i].nrua ? 0 : -1);
		if (rc == 0) {
			CU_ASSERT_EQUAL(r.nrua, t[i].nrua);
			CU_ASSERT_STRING_EQUAL(r.rua[0], t[i].rua0);
		}
	}
	{
		char *one[] = { "v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@x.test" };
		char *two[] = { "v=TLSRPTv1; rua=mailto:a@x.test", "v=TLSRPTv1; rua=mailto:b@x.test" };
		char *none[] = { "v=TLSRPTv10; rua=mailto:a@x.test" };
		CU_ASSERT_EQUAL(tls_rpt_txt_select(one, 2, &r), 0);
		CU_ASSERT_EQUAL(tls_rpt_txt_select(two, 2, &r), -1);
		CU_ASSERT_EQUAL(tls_rpt_txt_select(none, 1, &r), -1);
	}
	/* More URIs than kept: the first TLS_RPT_RUA_MAX. */
	{
		char txt[1024];
		size_t len = (size_t)snprintf(txt, sizeof txt, "v=TLSRPTv1; rua=");
		for (int i = 0; i < 12; i++)
			len += (size_t)snprintf(txt + len, sizeof txt - len,
			    "%smailto:r%d@x.test", i ? "," : "", i);
		CU_ASSERT_EQUAL(tls_rpt_txt_parse(txt, &r), 0);
		CU_ASSERT_EQUAL(r.nrua, TLS_RPT_RUA_MAX);
	}
	CU_ASSERT_STRING_EQUAL(tls_rpt_result_str(TLS_RPT_DANE_REQUIRED), "dane-required");
	CU_ASSERT_EQUAL(tls_rpt_result_parse("sts-webpki-invalid"), TLS_RPT_STS_WEBPKI_INVALID);
	CU_ASSERT_EQUAL(tls_rpt_result_parse("nope"), -1);
}

static int
cleanup(void)
{
	char cmd[256];

	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) != 0;
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	snprintf(dir, sizeof dir, "/tmp/test_tls_report.%d", (int)getpid());
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("tls_report", NULL, cleanup);
	CU_add_test(s, "store basics", test_store_basic);
	CU_add_test(s, "daily JSON aggregate", test_report_json);
	CU_add_test(s, "hostile strings", test_report_hostile);
	CU_add_test(s, "UTF-8 out, whatever came in", test_report_utf8);
	CU_add_test(s, "threads", test_threads);
	CU_add_test(s, "corrupt MTA-STS cache record", test_sts_cache_record);
	CU_add_test(s, "_smtp._tls records", test_rpt_txt);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
