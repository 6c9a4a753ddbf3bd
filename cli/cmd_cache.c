#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "conf/clock.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "proxy/runtime.h"

static const char *
entry_state(const struct policy_cache_entry *e, time_t now)
{
	if (e->policy == NULL)
		return "no-policy";
	return policy_cache_entry_live(e, now) ? "live" : "expired";
}

static void
list_one(const struct policy_cache_entry *e, void *arg)
{
	time_t now = *(const time_t *)arg;
	char t1[32], t2[32];

	printf("%-32s %-32s %-8s %-9s %-20s %-20s %s\n", e->domain, e->id ? e->id : "-",
	    e->policy ? sts_mode_name(e->policy->mode) : "-", entry_state(e, now),
	    format_time(e->fetched_at, t1, sizeof(t1)), format_time(e->expires_at, t2, sizeof(t2)),
	    e->fail_id ? rpt_result_type_name(e->fail_type) : "-");
}

static void
show_entry(const struct policy_cache_entry *e, time_t now)
{
	char t[32];

	printf("domain:      %s\n", e->domain);
	printf("state:       %s\n", entry_state(e, now));
	if (e->policy != NULL) {
		printf("id:          %s\n", e->id);
		printf("mode:        %s\n", sts_mode_name(e->policy->mode));
		printf("max_age:     %lu\n", e->policy->max_age);
		printf("fetched_at:  %s\n", format_time(e->fetched_at, t, sizeof(t)));
		printf("expires_at:  %s\n", format_time(e->expires_at, t, sizeof(t)));
		for (size_t i = 0; i < e->policy->mx.count; i++)
			printf("mx:          %s\n", e->policy->mx.items[i]);
		printf("policy text:\n");
		for (size_t i = 0; i < e->policy->lines.count; i++)
			printf("  | %s\n", e->policy->lines.items[i]);
	}
	if (e->fail_id != NULL) {
		printf("last failure: id=%s at=%s type=%s count=%u\n", e->fail_id,
		    format_time(e->fail_at, t, sizeof(t)), rpt_result_type_name(e->fail_type),
		    e->fail_count);
		printf("  reason:    %s\n", e->fail_reason);
	}
}

struct refresh_state {
	struct runtime	*rt;
	long		 ok, failed;
};

static void
refresh_all_done(void *arg, long ok, long failed)
{
	struct refresh_state *st = arg;

	st->ok = ok;
	st->failed = failed;
	event_base_loopexit(st->rt->base, NULL);
}

static void
refresh_one_done(void *arg, const struct policy_result *r)
{
	struct refresh_state *st = arg;

	if (r->source == POLICY_SOURCE_FRESH)
		st->ok++;
	else
		st->failed++;
	printf("%s: %s\n", r->domain, r->note ? r->note : "");
	event_base_loopexit(st->rt->base, NULL);
}

void
cmd_cache_usage(FILE *out)
{
	fprintf(out, "usage: stsproxy cache list\n"
	    "       stsproxy cache show DOMAIN\n"
	    "       stsproxy cache purge DOMAIN | --all\n"
	    "       stsproxy cache refresh [DOMAIN]\n"
	    "\n"
	    "The policy cache in state_dir/policy.mdb, shared with the running relay:\n"
	    "list every entry, show one with its policy text, forget one or all, or fetch\n"
	    "again every policy older than [policy] refresh_interval (or DOMAIN now).\n");
}

int
cmd_cache(const struct conf *conf, const char *path, int argc, char **argv)
{
	struct runtime *rt;
	time_t now = clock_now();
	int rc = 0;

	if (argc < 2 || argc > 3) {
		cmd_cache_usage(stderr);
		return EXIT_ERROR;
	}
	if ((rt = runtime_new(conf)) == NULL)
		return EXIT_ERROR;
	if (!policy_cache_enabled(rt->cache)) {
		fprintf(stderr, "stsproxy: the policy cache %s cannot be used (see the log above)\n",
		    policy_cache_path(rt->cache));
		runtime_free(rt);
		return EXIT_ERROR;
	}
	/* What was read comes with where from; purge and refresh say what they did. */
	if (strcmp(argv[1], "list") == 0 || strcmp(argv[1], "show") == 0)
		format_config_header(stdout, conf, path);
	if (strcmp(argv[1], "list") == 0 && argc == 2) {
		printf("%-32s %-32s %-8s %-9s %-20s %-20s %s\n", "DOMAIN", "ID", "MODE", "STATE",
		    "FETCHED", "EXPIRES", "LAST-FAILURE");
		if (policy_cache_foreach(rt->cache, list_one, &now) < 0)
			rc = EXIT_ERROR;
	} else if (strcmp(argv[1], "show") == 0 && argc == 3) {
		char *d = domain_normalize(argv[2]);
		struct policy_cache_entry *e = d ? policy_cache_lookup(rt->cache, d) : NULL;

		if (e == NULL) {
			fprintf(stderr, "stsproxy: %s is not in the cache\n", argv[2]);
			rc = EXIT_NO_POLICY;
		} else {
			show_entry(e, now);
		}
		policy_cache_entry_free(e);
		free(d);
	} else if (strcmp(argv[1], "purge") == 0 && argc == 3) {
		if (strcmp(argv[2], "--all") == 0) {
			long n = policy_cache_purge_all(rt->cache);

			if (n < 0)
				rc = EXIT_ERROR;
			else
				printf("purged %ld entr%s\n", n, n == 1 ? "y" : "ies");
		} else {
			char *d = domain_normalize(argv[2]);

			if (d == NULL || policy_cache_remove(rt->cache, d) < 0) {
				fprintf(stderr, "stsproxy: %s is not in the cache\n", argv[2]);
				rc = EXIT_NO_POLICY;
			} else {
				printf("purged %s\n", d);
			}
			free(d);
		}
	} else if (strcmp(argv[1], "refresh") == 0) {
		struct refresh_state st = { .rt = rt };

		if (argc == 3) {
			policy_engine_resolve(rt->engine, argv[2], POLICY_F_REFRESH, refresh_one_done, &st);
			event_base_dispatch(rt->base);
		} else if (policy_engine_refresh_due(rt->engine, refresh_all_done, &st) > 0) {
			event_base_dispatch(rt->base);
		}
		printf("refreshed %ld, failed %ld\n", st.ok, st.failed);
		rc = st.failed > 0 ? EXIT_NO_POLICY : 0;
	} else {
		cmd_cache_usage(stderr);
		rc = EXIT_ERROR;
	}
	runtime_free(rt);
	return rc;
}
