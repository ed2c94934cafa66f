/*
 * mailctl_selftest: `mailctl selftest [--json]`, the table of the checks
 * of server/selftest.h with the fix for each failure.
 */
#include <stdio.h>

#include "relay/mta_sts_fetch.h"
#include "server/config.h"
#include "server/mailctl_int.h"
#include "server/selftest.h"

static const char *const verdicts[] = {
	[SELFTEST_PASS] = "pass", [SELFTEST_FAIL] = "FAIL", [SELFTEST_SKIP] = "skip",
};

int
mailctl_selftest(struct mailctl *mc)
{
	struct selftest_report rep = { 0 };
	size_t failures;

	/* The MTA-STS check fetches policies with libcurl. */
	if (mta_sts_fetch_global_init() != 0) {
		fprintf(stderr, "mailctl: libcurl cannot start\n");
		return 1;
	}
	selftest_run(mc->cfg, &rep);
	failures = selftest_failures(&rep);
	if (mc->json)
		fputs("{\"checks\":[", mc->out);
	else
		fprintf(mc->out, "%-16s %-24s %-5s %s\n", "CHECK", "TARGET", "", "WHAT");
	for (size_t i = 0; i < rep.n; i++) {
		const struct selftest_result *r = &rep.r[i];

		if (mc->json) {
			fprintf(mc->out, "%s{\"check\":\"%s\",\"target\":", i ? "," : "", r->check);
			json_str(mc->out, r->target);
			fprintf(mc->out, ",\"result\":\"%s\",\"detail\":",
			    r->verdict == SELFTEST_PASS ? "pass" :
			    r->verdict == SELFTEST_FAIL ? "fail" : "skip");
			json_str(mc->out, r->detail);
			fputs(",\"fix\":", mc->out);
			json_str(mc->out, r->verdict == SELFTEST_FAIL ? r->fix : NULL);
			fputc('}', mc->out);
			continue;
		}
		fprintf(mc->out, "%-16s %-24s %-5s ", r->check, r->target, verdicts[r->verdict]);
		text_str(mc->out, r->detail);
		fputc('\n', mc->out);
		if (r->verdict == SELFTEST_FAIL && r->fix[0] != '\0') {
			fprintf(mc->out, "%-16s %-24s %-5s fix: ", "", "", "");
			text_str(mc->out, r->fix);
			fputc('\n', mc->out);
		}
	}
	if (mc->json)
		fprintf(mc->out, "],\"failures\":%zu}\n", failures);
	else
		fprintf(mc->out, "%zu checks, %zu failed\n", rep.n, failures);
	selftest_report_free(&rep);
	return failures ? 1 : 0;
}
