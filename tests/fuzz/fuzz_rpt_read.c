/*
 * libFuzzer target: TLS-RPT reports as received (report/rpt_read.c) -
 * JSON, gzip and MIME messages - and their summary (report/rpt_summary.c).
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "report/rpt_read.h"
#include "report/rpt_summary.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rpt_docs docs = { 0 };
	struct rpt_summary *s = rpt_summary_new();
	int valid = rpt_read_input(data, size, &docs);
	size_t counted = 0;
	json_t *doc;

	/* Every input yields at least one document, each valid or with a reason. */
	if (docs.count == 0)
		__builtin_trap();
	for (size_t i = 0; i < docs.count; i++) {
		const struct rpt_doc *d = &docs.items[i];
		char why[256];

		if ((d->report == NULL) == (d->error == NULL))
			__builtin_trap();
		/* A report that was accepted passes validation again. */
		if (d->report != NULL) {
			counted++;
			if (!rpt_report_validate(d->report, NULL, why, sizeof(why)))
				__builtin_trap();
		}
	}
	if ((size_t)valid != counted || docs.count > RPT_READ_MAX_REPORTS + 1)
		__builtin_trap();
	rpt_summary_add(s, "fuzz", &docs);
	doc = rpt_summary_json(s);
	if (doc == NULL || rpt_summary_reports(s) != counted)
		__builtin_trap();
	json_decref(doc);
	rpt_summary_free(s);
	rpt_docs_clear(&docs);
	return 0;
}
