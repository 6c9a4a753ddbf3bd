/* libFuzzer target: the policy file parser, with lint diagnostics. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "policy/sts_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy_diags diags = { 0 };
	char *reason = NULL;
	struct sts_policy *pol = sts_policy_parse((const char *)data, size, 65536, &diags, &reason);

	/* Invariants: a valid policy has a capped max_age and mx unless none. */
	if (pol != NULL && (pol->max_age > STS_MAX_AGE_LIMIT ||
	    (pol->mode != STS_MODE_NONE && pol->mx.count == 0)))
		__builtin_trap();
	if (pol == NULL && reason == NULL)
		__builtin_trap();
	/* Sender leniency never hides a real error: a valid policy carries
	 * only tolerated errors, an invalid one at least one that is not. */
	if ((pol != NULL) != (policy_diags_count(&diags, POLICY_DIAG_ERROR) ==
	    policy_diags_tolerated(&diags)))
		__builtin_trap();
	sts_policy_free(pol);
	free(reason);
	policy_diags_clear(&diags);
	return 0;
}
