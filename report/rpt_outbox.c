#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_REPORT

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "conf/clock.h"
#include "conf/log.h"
#include "report/rpt_outbox.h"

/* The keys earlier versions used; kept so their outboxes carry on. */
#define OUTBOX_PREFIX	"~out\x1f"
#define PLAN_PREFIX	"~plan\x1f"

static const char *const state_names[] = {
	[RPT_OUTBOX_NEW] = "new",
	[RPT_OUTBOX_PENDING] = "pending",
	[RPT_OUTBOX_DELIVERED] = "delivered",
	[RPT_OUTBOX_EXPIRED] = "expired",
};

static const char *const by_names[] = {
	[RPT_BY_DAEMON] = "daemon",
	[RPT_BY_COMMAND] = "report send",
};

const char *
rpt_outbox_state_name(enum rpt_outbox_state state)
{
	return (unsigned)state < sizeof(state_names) / sizeof(state_names[0]) ?
	    state_names[state] : "?";
}

const char *
rpt_sender_kind_name(enum rpt_sender_kind by)
{
	return (unsigned)by < sizeof(by_names) / sizeof(by_names[0]) ? by_names[by] : "?";
}

/* LMDB refuses keys over 511 bytes (mdb_env_get_maxkeysize). */
#define MAX_KEY_LEN	480

/*
 * The key of an entry: the day, domain and rua, so that a walk comes in
 * that order. A key that would be too long for LMDB names the rua by its
 * SHA-256 instead; the record holds the whole rua, checked on every read.
 */
const char *
rpt_outbox_delivered_text(const struct rpt_outbox_entry *e, char *buf, size_t len)
{
	char when[32];

	snprintf(buf, len, "delivered on %s by %s", clock_format(e->delivered_at, when,
	    sizeof(when)), rpt_sender_kind_name(e->delivered_by));
	return buf;
}

static char *
entry_key(const char *day, const char *domain, const char *rua)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char hex[2 * SHA256_DIGEST_LENGTH + 1];
	char *key = xasprintf("%s%s\x1f%s\x1f%s", OUTBOX_PREFIX, day, domain, rua);

	if (strlen(key) <= MAX_KEY_LEN)
		return key;
	free(key);
	SHA256((const unsigned char *)rua, strlen(rua), md);
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return xasprintf("%s%.10s\x1f%.255s\x1f#sha256:%s", OUTBOX_PREFIX, day, domain, hex);
}

static bool
copy_field(char *dst, size_t len, const char *src)
{
	if (src == NULL || strlen(src) >= len)
		return false;
	memcpy(dst, src, strlen(src) + 1);
	return true;
}

int
rpt_outbox_entry_init(struct rpt_outbox_entry *e, const char *day, const char *domain,
    const char *rua)
{
	memset(e, 0, sizeof(*e));
	e->state = RPT_OUTBOX_NEW;
	if (!copy_field(e->day, sizeof(e->day), day) ||
	    !copy_field(e->domain, sizeof(e->domain), domain) ||
	    !copy_field(e->rua, sizeof(e->rua), rua) || e->day[0] == '\0' ||
	    e->domain[0] == '\0' || e->rua[0] == '\0')
		return -1;
	return 0;
}

/* ---- the JSON form, decoded strictly --------------------------------------- */

/* An optional non-negative integer member; false if present with another type. */
static bool
get_time(json_t *doc, const char *name, time_t *out)
{
	json_t *v = json_object_get(doc, name);

	*out = 0;
	if (v == NULL)
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (time_t)json_integer_value(v);
	return true;
}

static int
name_index(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; s != NULL && i < n; i++)
		if (strcmp(names[i], s) == 0)
			return (int)i;
	return -1;
}

/* doc into e; the reason when it is not a whole entry. */
static bool
entry_decode(json_t *doc, struct rpt_outbox_entry *e, const char **why)
{
	json_t *claim = json_object_get(doc, "claim"), *by = json_object_get(doc, "by");
	json_t *error = json_object_get(doc, "error");
	int state;
	time_t attempts, pid;

	if (!json_is_object(doc) ||
	    rpt_outbox_entry_init(e, json_string_value(json_object_get(doc, "day")),
	    json_string_value(json_object_get(doc, "domain")),
	    json_string_value(json_object_get(doc, "rua"))) < 0) {
		*why = "day, domain or rua missing or too long";
		return false;
	}
	state = name_index(state_names, sizeof(state_names) / sizeof(state_names[0]),
	    json_string_value(json_object_get(doc, "state")));
	if (state < 0) {
		*why = "no known state";
		return false;
	}
	e->state = (enum rpt_outbox_state)state;
	if (!get_time(doc, "attempts", &attempts) || !get_time(doc, "first", &e->first) ||
	    !get_time(doc, "next", &e->next) || !get_time(doc, "delivered_at", &e->delivered_at) ||
	    attempts > 1000000) {
		*why = "attempts, first, next or delivered_at is not a count";
		return false;
	}
	e->attempts = (unsigned)attempts;
	if (by != NULL) {
		int i = name_index(by_names, sizeof(by_names) / sizeof(by_names[0]),
		    json_string_value(by));

		if (i < 0) {
			*why = "by names no known sender";
			return false;
		}
		e->delivered_by = (enum rpt_sender_kind)i;
	}
	if (error != NULL && (!json_is_string(error) ||
	    !copy_field(e->error, sizeof(e->error), json_string_value(error)))) {
		*why = "error is not a string";
		return false;
	}
	if (claim != NULL && (!json_is_object(claim) || !get_time(claim, "pid", &pid) ||
	    !get_time(claim, "until", &e->claim_until) || pid <= 0)) {
		*why = "claim is not a process and a time";
		return false;
	}
	e->claim_pid = claim != NULL ? (pid_t)pid : 0;
	return true;
}

static json_t *
entry_encode(const struct rpt_outbox_entry *e)
{
	json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "day", e->day,
	    "domain", e->domain, "rua", e->rua, "state", rpt_outbox_state_name(e->state),
	    "attempts", (json_int_t)e->attempts, "first", (json_int_t)e->first,
	    "next", (json_int_t)e->next);

	if (e->state == RPT_OUTBOX_DELIVERED) {
		json_object_set_new(doc, "delivered_at", json_integer(e->delivered_at));
		json_object_set_new(doc, "by", json_string(rpt_sender_kind_name(e->delivered_by)));
	}
	if (e->error[0] != '\0')
		json_object_set_new(doc, "error", json_string(e->error));
	if (e->claim_pid != 0)
		json_object_set_new(doc, "claim", json_pack("{s:I, s:I}", "pid",
		    (json_int_t)e->claim_pid, "until", (json_int_t)e->claim_until));
	return doc;
}

/* A record under the key of (day, domain, rua) must be about them. */
static bool
entry_decode_for(json_t *doc, const char *key, const char *day, const char *domain,
    const char *rua, struct rpt_outbox_entry *e)
{
	const char *why = NULL;

	if (!entry_decode(doc, e, &why) || strcmp(e->day, day) != 0 ||
	    strcmp(e->domain, domain) != 0 || strcmp(e->rua, rua) != 0) {
		log_err("event=report_outbox_corrupt key=%s reason=%s", log_quote(key),
		    log_quote(why ? why : "the record is about another destination"));
		return false;
	}
	return true;
}

bool
rpt_outbox_claimed(const struct rpt_outbox_entry *e, time_t now)
{
	if (e->claim_pid == 0 || now > e->claim_until)
		return false;
	/* A claim of a process that is gone lapses at once (same host: the
	 * database lives in state_dir). */
	return !(kill(e->claim_pid, 0) < 0 && errno == ESRCH);
}

/* ---- entries --------------------------------------------------------------- */

int
rpt_outbox_get(struct rpt_store *store, const char *day, const char *domain, const char *rua,
    struct rpt_outbox_entry *out)
{
	char *key = entry_key(day, domain, rua);
	json_t *doc;
	int rc = rpt_store_meta_get(store, key, &doc);

	if (rc == 1 && !entry_decode_for(doc, key, day, domain, rua, out))
		rc = -1;
	json_decref(doc);
	free(key);
	return rc;
}

int
rpt_outbox_put(struct rpt_store *store, const struct rpt_outbox_entry *e)
{
	struct rpt_outbox_entry copy = *e;
	char *key = entry_key(e->day, e->domain, e->rua);
	json_t *doc;
	int rc;

	copy.claim_pid = 0;
	copy.claim_until = 0;
	doc = entry_encode(&copy);
	rc = rpt_store_meta_put(store, key, doc);
	json_decref(doc);
	free(key);
	return rc;
}

/* One read-modify-write of an entry: change() sees the entry (a fresh NEW
 * one when there is none) and says whether to write it back. */
struct change {
	const char		*key, *day, *domain, *rua;
	bool			(*change)(struct change *c, struct rpt_outbox_entry *e, bool existed);
	struct rpt_outbox_entry	 entry;		/* as it is after the change */
	bool			 corrupt;
	/* the change's own inputs and verdict */
	time_t			 now;
	bool			 force;
	enum rpt_claim		 claim;
};

static json_t *
change_update(void *arg, json_t *current)
{
	struct change *c = arg;
	bool existed = current != NULL;

	if (existed) {
		if (!entry_decode_for(current, c->key, c->day, c->domain, c->rua, &c->entry)) {
			c->corrupt = true;
			return NULL;
		}
	} else if (rpt_outbox_entry_init(&c->entry, c->day, c->domain, c->rua) < 0) {
		c->corrupt = true;
		log_err("event=report_outbox_failed key=%s reason=\"domain or destination too long\"",
		    log_quote(c->key));
		return NULL;
	}
	return c->change(c, &c->entry, existed) ? entry_encode(&c->entry) : NULL;
}

static int
change_run(struct rpt_store *store, struct change *c)
{
	char *key = entry_key(c->day, c->domain, c->rua);
	int rc;

	c->key = key;
	rc = rpt_store_meta_update(store, key, change_update, c);
	free(key);
	c->key = NULL;
	return rc < 0 || c->corrupt ? -1 : 0;
}

static bool
plan_change(struct change *c, struct rpt_outbox_entry *e, bool existed)
{
	if (existed && e->state != RPT_OUTBOX_NEW)
		return false;
	e->state = RPT_OUTBOX_PENDING;
	e->next = c->now;
	return true;
}

int
rpt_outbox_plan(struct rpt_store *store, const char *day, const char *domain, const char *rua,
    time_t now, struct rpt_outbox_entry *out)
{
	struct change c = { .day = day, .domain = domain, .rua = rua, .change = plan_change,
	    .now = now };
	int rc = change_run(store, &c);

	if (rc == 0 && out != NULL)
		*out = c.entry;
	return rc;
}

static bool
claim_change(struct change *c, struct rpt_outbox_entry *e, bool existed)
{
	(void)existed;
	if (e->state == RPT_OUTBOX_DELIVERED && !c->force) {
		c->claim = RPT_CLAIM_DELIVERED;
		return false;
	}
	if (rpt_outbox_claimed(e, c->now)) {
		c->claim = RPT_CLAIM_BUSY;
		return false;
	}
	c->claim = RPT_CLAIM_TAKEN;
	e->claim_pid = getpid();
	e->claim_until = c->now + RPT_OUTBOX_CLAIM_LEASE;
	return true;
}

enum rpt_claim
rpt_outbox_claim(struct rpt_store *store, const char *day, const char *domain, const char *rua,
    bool force, struct rpt_outbox_entry *out)
{
	struct change c = { .day = day, .domain = domain, .rua = rua, .change = claim_change,
	    .now = time(NULL), .force = force, .claim = RPT_CLAIM_ERROR };

	if (change_run(store, &c) < 0)
		return RPT_CLAIM_ERROR;
	*out = c.entry;
	return c.claim;
}

static bool
release_change(struct change *c, struct rpt_outbox_entry *e, bool existed)
{
	(void)c;
	if (!existed || e->claim_pid != getpid())
		return false;
	e->claim_pid = 0;
	e->claim_until = 0;
	return true;
}

int
rpt_outbox_release(struct rpt_store *store, const char *day, const char *domain,
    const char *rua)
{
	struct change c = { .day = day, .domain = domain, .rua = rua, .change = release_change };

	return change_run(store, &c);
}

struct visit {
	void	(*visit)(void *arg, const struct rpt_outbox_entry *e);
	void	 *arg;
};

static void
visit_entry(void *arg, const char *key, json_t *doc)
{
	struct visit *v = arg;
	struct rpt_outbox_entry e;
	const char *why = NULL;

	if (!entry_decode(doc, &e, &why)) {
		log_err("event=report_outbox_corrupt key=%s reason=%s", log_quote(key),
		    log_quote(why));
		return;
	}
	v->visit(v->arg, &e);
}

long
rpt_outbox_foreach(struct rpt_store *store,
    void (*visit)(void *arg, const struct rpt_outbox_entry *e), void *arg)
{
	struct visit v = { visit, arg };

	return rpt_store_meta_foreach(store, OUTBOX_PREFIX, visit_entry, &v);
}

/* ---- the daily plan ---------------------------------------------------------- */

int
rpt_plan_get(struct rpt_store *store, const char *day, struct rpt_plan *out)
{
	char *key = xasprintf("%s%s", PLAN_PREFIX, day);
	const char *state;
	json_t *doc;
	time_t send_at;
	int rc = rpt_store_meta_get(store, key, &doc);

	if (rc == 1) {
		state = json_string_value(json_object_get(doc, "state"));
		if (state == NULL || (strcmp(state, "waiting") != 0 && strcmp(state, "planned") != 0) ||
		    json_object_get(doc, "send_at") == NULL || !get_time(doc, "send_at", &send_at)) {
			log_err("event=report_outbox_corrupt key=%s reason=\"a plan needs a state "
			    "(waiting or planned) and send_at\"", log_quote(key));
			rc = -1;
		} else {
			out->state = strcmp(state, "waiting") == 0 ? RPT_PLAN_WAITING : RPT_PLAN_PLANNED;
			out->send_at = send_at;
		}
	}
	json_decref(doc);
	free(key);
	return rc;
}

int
rpt_plan_put(struct rpt_store *store, const char *day, const struct rpt_plan *plan)
{
	char *key = xasprintf("%s%s", PLAN_PREFIX, day);
	json_t *doc = json_pack("{s:s, s:I}", "state",
	    plan->state == RPT_PLAN_WAITING ? "waiting" : "planned", "send_at",
	    (json_int_t)plan->send_at);
	int rc = rpt_store_meta_put(store, key, doc);

	json_decref(doc);
	free(key);
	return rc;
}
