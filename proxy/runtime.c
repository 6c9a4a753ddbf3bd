#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/log.h"
#include "policy/tls.h"
#include "proxy/runtime.h"

struct runtime *
runtime_new(const struct conf *conf)
{
	struct runtime *rt = xcalloc(1, sizeof(*rt));
	char *err = NULL;

	rt->conf = conf;
	if (conf->hostname[0] != '\0')
		snprintf(rt->hostname, sizeof(rt->hostname), "%s", conf->hostname);
	else if (gethostname(rt->hostname, sizeof(rt->hostname)) != 0 || rt->hostname[0] == '\0')
		snprintf(rt->hostname, sizeof(rt->hostname), "localhost.localdomain");
	/* Bufferevents enable and disable their events many times per reply;
	 * the changelist folds those into one epoll_ctl per fd per loop turn. */
	{
		struct event_config *cfg = event_config_new();

		if (cfg != NULL) {
			event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
			rt->base = event_base_new_with_config(cfg);
			event_config_free(cfg);
		}
	}
	if (rt->base == NULL && (rt->base = event_base_new()) == NULL) {
		log_err("event=startup_failed reason=\"cannot create the event loop\"");
		goto fail;
	}
	if ((rt->resolver = resolver_new(rt->base, conf, &err)) == NULL) {
		log_err("event=startup_failed reason=%s", log_quote(err));
		goto fail;
	}
	if ((rt->ssl_ctx = tls_client_ctx_new(conf, &err)) == NULL) {
		log_err("event=startup_failed reason=%s", log_quote(err));
		goto fail;
	}
	rt->cache = policy_cache_open(conf, rt->base);
	rt->engine = policy_engine_new(rt->base, conf, rt->resolver, rt->ssl_ctx, rt->cache);
	return rt;
fail:
	free(err);
	runtime_free(rt);
	return NULL;
}

void
runtime_free(struct runtime *rt)
{
	if (rt == NULL)
		return;
	policy_engine_free(rt->engine);
	policy_cache_close(rt->cache);
	resolver_free(rt->resolver);
	tls_session_cache_clear();
	if (rt->ssl_ctx)
		SSL_CTX_free(rt->ssl_ctx);
	if (rt->base)
		event_base_free(rt->base);
	free(rt);
}
