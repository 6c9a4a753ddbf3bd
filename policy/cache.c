/*
 * cache.c - the policy cache every caller sees: the entry and its JSON
 * form, the merge of two writers, and the dispatch to the backend conf
 * chose (policy/cache_backend.h).
 */
#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_POLICY

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "conf/log.h"
#include "policy/cache_backend.h"

#define CACHE_FORMAT	1

struct policy_cache {
	const struct policy_cache_backend *ops;
	void			*be;
	struct event_base	*base;
};

struct policy_cache_read {
	struct policy_cache	*cache;
	policy_cache_read_cb	 cb;
	void			*arg;
	void			*job;		/* the backend's read in flight */
	struct event		*ev;		/* synchronous backends: the deferred answer */
	struct policy_cache_entry *entry;	/* ... and what it carries */
};

struct policy_cache *
policy_cache_open(const struct conf *conf, struct event_base *base)
{
	struct policy_cache *c = xcalloc(1, sizeof(*c));
	void *local = policy_cache_lmdb_open(conf);

	c->base = base;
	if (conf->store_share_policies) {
		c->ops = &policy_cache_pg;
		c->be = policy_cache_pg_open(conf, base, local);
	} else {
		c->ops = &policy_cache_lmdb;
		c->be = local;
	}
	return c;
}

void
policy_cache_close(struct policy_cache *c)
{
	if (c == NULL)
		return;
	c->ops->close(c->be);
	free(c);
}

bool
policy_cache_enabled(const struct policy_cache *c)
{
	return c->ops->enabled(c->be);
}

const char *
policy_cache_path(const struct policy_cache *c)
{
	return c->ops->where(c->be);
}

const char *
policy_cache_health(struct policy_cache *c)
{
	return c->ops->health(c->be);
}

struct policy_cache_entry *
policy_cache_lookup(struct policy_cache *c, const char *domain)
{
	return c->ops->lookup(c->be, domain);
}

int
policy_cache_store(struct policy_cache *c, const struct policy_cache_entry *e)
{
	if (c->ops->store_async != NULL && c->base != NULL) {
		c->ops->store_async(c->be, e);
		return 0;
	}
	return c->ops->store(c->be, e);
}

int
policy_cache_remove(struct policy_cache *c, const char *domain)
{
	return c->ops->remove(c->be, domain);
}

long
policy_cache_purge_all(struct policy_cache *c)
{
	return c->ops->purge_all(c->be);
}

long
policy_cache_foreach(struct policy_cache *c,
    void (*fn)(const struct policy_cache_entry *entry, void *arg), void *arg)
{
	return c->ops->foreach(c->be, fn, arg);
}

/* ---- reads from the loop ------------------------------------------------------ */

static void
read_free(struct policy_cache_read *r)
{
	if (r->ev != NULL)
		event_free(r->ev);
	policy_cache_entry_free(r->entry);
	free(r);
}

void
policy_cache_read_done(struct policy_cache_read *r, struct policy_cache_entry *entry)
{
	r->job = NULL;
	r->cb(r->arg, entry);
	read_free(r);
}

static void
read_deferred(evutil_socket_t fd, short what, void *arg)
{
	struct policy_cache_read *r = arg;
	struct policy_cache_entry *e = r->entry;

	(void)fd;
	(void)what;
	r->entry = NULL;
	policy_cache_read_done(r, e);
}

struct policy_cache_read *
policy_cache_read_start(struct policy_cache *c, const char *domain, policy_cache_read_cb cb,
    void *arg)
{
	struct policy_cache_read *r = xcalloc(1, sizeof(*r));

	if (c->base == NULL)
		fatalx("policy_cache_read_start: the cache was opened without a loop");
	r->cache = c;
	r->cb = cb;
	r->arg = arg;
	if (c->ops->read_start != NULL) {
		r->job = c->ops->read_start(c->be, r, domain);
		return r;
	}
	/* A local read is quick: made now, answered from the loop like the others. */
	r->entry = c->ops->lookup(c->be, domain);
	r->ev = event_new(c->base, -1, 0, read_deferred, r);
	event_active(r->ev, EV_TIMEOUT, 1);
	return r;
}

void
policy_cache_read_cancel(struct policy_cache_read *r)
{
	if (r == NULL)
		return;
	if (r->job != NULL)
		r->cache->ops->read_cancel(r->job);
	read_free(r);
}

/* ---- entries ---------------------------------------------------------------------- */

struct policy_cache_entry *
policy_cache_entry_new(const char *domain)
{
	struct policy_cache_entry *e = xcalloc(1, sizeof(*e));

	e->domain = xstrdup(domain);
	return e;
}

struct policy_cache_entry *
policy_cache_entry_dup(const struct policy_cache_entry *src)
{
	struct policy_cache_entry *e = policy_cache_entry_new(src->domain);

	e->id = src->id ? xstrdup(src->id) : NULL;
	e->policy = src->policy ? sts_policy_dup(src->policy) : NULL;
	e->fetched_at = src->fetched_at;
	e->expires_at = src->expires_at;
	e->fail_id = src->fail_id ? xstrdup(src->fail_id) : NULL;
	e->fail_at = src->fail_at;
	e->fail_type = src->fail_type;
	e->fail_reason = src->fail_reason ? xstrdup(src->fail_reason) : NULL;
	e->fail_count = src->fail_count;
	return e;
}

void
policy_cache_entry_free(struct policy_cache_entry *e)
{
	if (e == NULL)
		return;
	free(e->domain);
	free(e->id);
	sts_policy_free(e->policy);
	free(e->fail_id);
	free(e->fail_reason);
	free(e);
}

bool
policy_cache_entry_live(const struct policy_cache_entry *e, time_t now)
{
	return e != NULL && e->policy != NULL && now < e->expires_at;
}

static json_t *
strlist_to_json(const struct strlist *l)
{
	json_t *a = json_array();

	for (size_t i = 0; i < l->count; i++)
		json_array_append_new(a, json_string(l->items[i]));
	return a;
}

char *
policy_cache_entry_encode(const struct policy_cache_entry *e)
{
	json_t *o = json_object();
	char *s;

	json_object_set_new(o, "format", json_integer(CACHE_FORMAT));
	json_object_set_new(o, "domain", json_string(e->domain));
	if (e->policy != NULL) {
		json_t *p = json_object();

		json_object_set_new(p, "id", json_string(e->id ? e->id : ""));
		json_object_set_new(p, "mode", json_string(sts_mode_name(e->policy->mode)));
		json_object_set_new(p, "max_age", json_integer((json_int_t)e->policy->max_age));
		json_object_set_new(p, "mx", strlist_to_json(&e->policy->mx));
		json_object_set_new(p, "lines", strlist_to_json(&e->policy->lines));
		json_object_set_new(p, "fetched_at", json_integer(e->fetched_at));
		json_object_set_new(p, "expires_at", json_integer(e->expires_at));
		json_object_set_new(o, "policy", p);
	}
	if (e->fail_id != NULL) {
		json_t *f = json_object();

		json_object_set_new(f, "id", json_string(e->fail_id));
		json_object_set_new(f, "at", json_integer(e->fail_at));
		json_object_set_new(f, "type", json_string(rpt_result_type_name(e->fail_type)));
		json_object_set_new(f, "reason", json_string(e->fail_reason ? e->fail_reason : ""));
		json_object_set_new(f, "count", json_integer(e->fail_count));
		json_object_set_new(o, "failure", f);
	}
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	if (s == NULL)
		fatalx("cannot encode a cache entry");
	return s;
}

static int
json_to_strlist(json_t *a, struct strlist *l, size_t max)
{
	size_t i;
	json_t *v;

	if (!json_is_array(a) || json_array_size(a) > max)
		return -1;
	json_array_foreach(a, i, v) {
		if (!json_is_string(v))
			return -1;
		strlist_add(l, json_string_value(v));
	}
	return 0;
}

struct policy_cache_entry *
policy_cache_entry_decode(const char *json, size_t len)
{
	json_error_t jerr;
	json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr), *p, *f;
	struct policy_cache_entry *e = NULL;
	const char *domain;

	if (o == NULL)
		return NULL;
	if (json_integer_value(json_object_get(o, "format")) != CACHE_FORMAT ||
	    (domain = json_string_value(json_object_get(o, "domain"))) == NULL)
		goto bad;
	e = policy_cache_entry_new(domain);
	if ((p = json_object_get(o, "policy")) != NULL) {
		const char *id = json_string_value(json_object_get(p, "id"));
		const char *mode = json_string_value(json_object_get(p, "mode"));
		int m = mode ? sts_mode_parse(mode) : -1;

		if (id == NULL || m < 0)
			goto bad;
		e->id = xstrdup(id);
		e->policy = xcalloc(1, sizeof(*e->policy));
		e->policy->mode = (enum sts_mode)m;
		e->policy->max_age = (unsigned long)json_integer_value(json_object_get(p, "max_age"));
		if (json_to_strlist(json_object_get(p, "mx"), &e->policy->mx, 1024) < 0 ||
		    json_to_strlist(json_object_get(p, "lines"), &e->policy->lines, 4096) < 0)
			goto bad;
		e->fetched_at = (time_t)json_integer_value(json_object_get(p, "fetched_at"));
		e->expires_at = (time_t)json_integer_value(json_object_get(p, "expires_at"));
	}
	if ((f = json_object_get(o, "failure")) != NULL) {
		const char *id = json_string_value(json_object_get(f, "id"));
		const char *type = json_string_value(json_object_get(f, "type"));
		const char *reason = json_string_value(json_object_get(f, "reason"));
		int t = type ? rpt_result_type_parse(type) : -1;

		if (id == NULL || t < 0)
			goto bad;
		e->fail_id = xstrdup(id);
		e->fail_at = (time_t)json_integer_value(json_object_get(f, "at"));
		e->fail_type = (enum rpt_result_type)t;
		e->fail_reason = xstrdup(reason ? reason : "");
		e->fail_count = (unsigned)json_integer_value(json_object_get(f, "count"));
	}
	json_decref(o);
	return e;
bad:
	json_decref(o);
	policy_cache_entry_free(e);
	return NULL;
}

struct policy_cache_entry *
policy_cache_entry_merge(const struct policy_cache_entry *a, const struct policy_cache_entry *b)
{
	const struct policy_cache_entry *pol, *fail;
	struct policy_cache_entry *e;

	if (a == NULL || b == NULL)
		return policy_cache_entry_dup(a != NULL ? a : b);
	/* b wins ties: it is the write that came last. */
	pol = b->policy != NULL && (a->policy == NULL || b->fetched_at >= a->fetched_at) ? b : a;
	fail = b->fail_id != NULL && (a->fail_id == NULL || b->fail_at >= a->fail_at) ? b : a;
	e = policy_cache_entry_new(b->domain);
	if (pol->policy != NULL) {
		e->id = xstrdup(pol->id);
		e->policy = sts_policy_dup(pol->policy);
		e->fetched_at = pol->fetched_at;
		e->expires_at = pol->expires_at;
	}
	/* A fetch that succeeded after the failure ended it (the engine clears it). */
	if (fail->fail_id != NULL && !(e->policy != NULL && e->fetched_at > fail->fail_at)) {
		e->fail_id = xstrdup(fail->fail_id);
		e->fail_at = fail->fail_at;
		e->fail_type = fail->fail_type;
		e->fail_reason = xstrdup(fail->fail_reason ? fail->fail_reason : "");
		e->fail_count = fail->fail_count;
	}
	return e;
}

bool
policy_cache_entry_equal(const struct policy_cache_entry *a, const struct policy_cache_entry *b)
{
	char *ja, *jb;
	bool same;

	if (a == NULL || b == NULL)
		return a == b;
	ja = policy_cache_entry_encode(a);
	jb = policy_cache_entry_encode(b);
	same = strcmp(ja, jb) == 0;
	free(ja);
	free(jb);
	return same;
}
