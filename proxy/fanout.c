#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_SMTP

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "conf/log.h"
#include "conf/metrics.h"
#include "proxy/fanout.h"

#define FANOUT_STATES(X)					\
	X(FANOUT_S_RCPTS)	/* recipients come */		\
	X(FANOUT_S_DATA)	/* DATA sent: the verdict waits for every route */ \
	X(FANOUT_S_BODY)	/* the body streams to the routes */	\
	X(FANOUT_S_EOM)		/* end of data sent: final replies come */ \
	X(FANOUT_S_DONE)

#define ROUTE_STATES(X)						\
	X(ROUTE_S_OPENING)	/* MX, policy, connection: RCPTs wait */ \
	X(ROUTE_S_IDLE)		/* MAIL accepted upstream, no RCPT out */ \
	X(ROUTE_S_RCPT)		/* one RCPT awaits its reply */	\
	X(ROUTE_S_DATA)		/* DATA sent */				\
	X(ROUTE_S_BODY)		/* 354: the body streams to it */	\
	X(ROUTE_S_EOM)		/* end of data sent */			\
	X(ROUTE_S_DONE)		/* final: its recipients' end-of-data reply */ \
	X(ROUTE_S_FAILED)	/* failed or lost: final answers everything */ \
	X(ROUTE_S_UNUSED)	/* no recipient accepted: let go at DATA */

#define STATE_ENUM(s) s,
enum fanout_state { FANOUT_STATES(STATE_ENUM) };
enum route_state { ROUTE_STATES(STATE_ENUM) };
#undef STATE_ENUM
#define STATE_NAME(s) #s,
static const char *const fanout_state_names[] = { FANOUT_STATES(STATE_NAME) };
static const char *const route_state_names[] = { ROUTE_STATES(STATE_NAME) };
#undef STATE_NAME

/* The fan-out's own 354 when the routes that took DATA disagree (verdict()). */
#define OWN_354_TEXT	"End data with <CR><LF>.<CR><LF>"

struct fanout_route;

/*
 * One RCPT of the transaction, in the order the client sent it. What the
 * upstream needs of it is kept compact (not a struct smtp_path of ~9 KB)
 * until it is sent: a slow domain may have many recipients waiting.
 */
struct fanout_rcpt {
	char			*address;	/* as the client wrote it */
	char			*domain;	/* A-label; NULL for a local reply */
	struct fanout_route	*route;		/* NULL: answered without one */
	char			*path_domain;	/* the domain as written (for the path) */
	char			*notify, *orcpt; /* DSN parameters, or NULL */
	bool			 utf8;
	struct fanout_rcpt	*next_unsent;	/* the route's queue */
	bool			 answered;	/* reply is the RCPT reply */
	bool			 accepted;
	bool			 local;
	const char		*note;		/* why stsproxy answered itself */
	struct smtp_reply	 reply;
};

/* One recipient domain and its upstream transaction. */
struct fanout_route {
	struct fanout		*f;
	char			*domain;	/* A-label */
	struct upstream		*up;		/* NULL once let go */
	enum route_state	 state;
	char			 mx[256];	/* the MX host that answered last */
	struct fanout_rcpt	*unsent_head, *unsent_tail;
	struct fanout_rcpt	*inflight;	/* ROUTE_S_RCPT: whose reply is due */
	unsigned		 accepted;
	struct smtp_reply	 data_reply;	/* its 354 */
	struct smtp_reply	 final;		/* DONE, FAILED: see route states */
};

struct fanout {
	struct runtime			*rt;
	const struct upstream_ops	*ops;
	char				 session[17];
	struct smtp_path		 mail;
	unsigned			 max_domains;
	fanout_cb			 cb;
	void				*arg;
	enum fanout_state		 state;
	bool				 detached;	/* fanout_free() called */
	bool				 want_writable;	/* fanout_body_full() said true */

	struct fanout_route		**routes;	/* in the order of their first RCPT */
	size_t				 nroutes;
	struct fanout_rcpt		**rcpts;	/* in RCPT order */
	size_t				 nrcpts;
	size_t				 rcpt_out;	/* RCPT replies handed out */
	size_t				 final_out;	/* recipients past in the final replies */
	unsigned			 accepted;

	struct smtp_reply		 verdict;	/* the DATA reply */
	struct event			*pump;		/* hands out what is ready, in order */
	struct event			*reaper;
};

static void fanout_enter_state(struct fanout *f, enum fanout_state next);
static void route_enter_state(struct fanout_route *route, enum route_state next);

static void
schedule(struct fanout *f)
{
	if (!f->detached)
		event_active(f->pump, EV_TIMEOUT, 0);
}

/* The MX host the route's upstream speaks to now, kept for the logs after it is gone. */
static void
note_mx(struct fanout_route *route)
{
	const char *mx;

	if (route->up != NULL && (mx = route->f->ops->mx_host(route->up)) != NULL && *mx != '\0')
		snprintf(route->mx, sizeof(route->mx), "%s", mx);
}

static void
answer(struct fanout_rcpt *r, const struct smtp_reply *reply)
{
	smtp_reply_copy(&r->reply, reply);
	r->answered = true;
	if (smtp_reply_class(reply) == 2 && r->route != NULL) {
		r->accepted = true;
		r->route->accepted++;
		r->route->f->accepted++;
	}
}

static void
rcpt_forget_path(struct fanout_rcpt *r)
{
	free(r->path_domain);
	free(r->notify);
	free(r->orcpt);
	r->path_domain = r->notify = r->orcpt = NULL;
}

/* The path upstream_rcpt() needs, rebuilt from what was kept. */
static void
rcpt_path(const struct fanout_rcpt *r, struct smtp_path *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->address, sizeof(p->address), "%s", r->address);
	snprintf(p->domain, sizeof(p->domain), "%s", r->path_domain ? r->path_domain : "");
	p->utf8 = r->utf8;
	if (r->notify != NULL) {
		snprintf(p->params[p->nparams].key, sizeof(p->params[0].key), "NOTIFY");
		snprintf(p->params[p->nparams].value, sizeof(p->params[0].value), "%s", r->notify);
		p->params[p->nparams++].has_value = true;
	}
	if (r->orcpt != NULL) {
		snprintf(p->params[p->nparams].key, sizeof(p->params[0].key), "ORCPT");
		snprintf(p->params[p->nparams].value, sizeof(p->params[0].value), "%s", r->orcpt);
		p->params[p->nparams++].has_value = true;
	}
}

static struct fanout_rcpt *
rcpt_add(struct fanout *f, const char *address)
{
	struct fanout_rcpt *r = xcalloc(1, sizeof(*r));

	r->address = xstrdup(address);
	smtp_reply_init(&r->reply);
	f->rcpts = xrealloc(f->rcpts, (f->nrcpts + 1) * sizeof(*f->rcpts));
	f->rcpts[f->nrcpts++] = r;
	return r;
}

/* The upstream of a route speaks. */
static void
route_event(void *arg, enum upstream_event ev, const struct smtp_reply *reply)
{
	struct fanout_route *route = arg;
	struct fanout *f = route->f;

	switch (ev) {
	case UPSTREAM_EV_READY:
		route_enter_state(route, ROUTE_S_IDLE);
		break;
	case UPSTREAM_EV_FAILED:
	case UPSTREAM_EV_LOST:
		note_mx(route);
		smtp_reply_copy(&route->final, reply);
		if (ev == UPSTREAM_EV_FAILED) {
			char *flat = smtp_reply_flatten(reply);

			log_info("session=%s event=domain_failed domain=%s reply=%s note=\"the "
			    "transaction goes on for the other domains\"", f->session, route->domain,
			    log_quote(flat));
			free(flat);
		}
		route_enter_state(route, ROUTE_S_FAILED);
		break;
	case UPSTREAM_EV_REPLY:
		note_mx(route);
		switch (route->state) {
		case ROUTE_S_RCPT:
			answer(route->inflight, reply);
			route->inflight = NULL;
			route_enter_state(route, ROUTE_S_IDLE);
			break;
		case ROUTE_S_DATA:
			if (reply->code == 354) {
				smtp_reply_copy(&route->data_reply, reply);
				route_enter_state(route, ROUTE_S_BODY);
			} else {
				/* DATA refused: that is the final word for its recipients. */
				smtp_reply_copy(&route->final, reply);
				route_enter_state(route, ROUTE_S_DONE);
			}
			break;
		case ROUTE_S_EOM:
			smtp_reply_copy(&route->final, reply);
			route_enter_state(route, ROUTE_S_DONE);
			break;
		default:
			log_warnx("session=%s event=unexpected_upstream_reply domain=%s state=%s",
			    f->session, route->domain, route_state_names[route->state]);
			return;
		}
		break;
	case UPSTREAM_EV_WRITABLE:
		break;
	}
	schedule(f);
}

static void
route_enter_state(struct fanout_route *route, enum route_state next)
{
	struct fanout *f = route->f;

	log_debug("session=%s domain=%s route state=%s -> %s", f->session, route->domain,
	    route_state_names[route->state], route_state_names[next]);
	route->state = next;
	switch (next) {
	case ROUTE_S_IDLE:
		if (route->unsent_head != NULL)
			route_enter_state(route, ROUTE_S_RCPT);
		break;
	case ROUTE_S_RCPT: {
		struct fanout_rcpt *r = route->unsent_head;
		struct smtp_path path;

		route->unsent_head = r->next_unsent;
		if (route->unsent_head == NULL)
			route->unsent_tail = NULL;
		route->inflight = r;
		rcpt_path(r, &path);
		rcpt_forget_path(r);
		/* The upstream is READY (or has this RCPT pipelined behind MAIL). */
		if (f->ops->rcpt(route->up, &path) < 0)
			fatalx("upstream refused RCPT when ready");
		break;
	}
	case ROUTE_S_DATA:
		if (f->ops->data(route->up) < 0)
			fatalx("upstream refused DATA when ready");
		break;
	case ROUTE_S_EOM:
		if (f->ops->body_end(route->up) < 0)
			fatalx("upstream refused the end of data in the body");
		break;
	case ROUTE_S_FAILED:
		/* Whatever of it still waits gets the same reply, with its real reason. */
		if (route->inflight != NULL)
			answer(route->inflight, &route->final);
		route->inflight = NULL;
		for (struct fanout_rcpt *r = route->unsent_head; r != NULL; r = r->next_unsent) {
			answer(r, &route->final);
			rcpt_forget_path(r);
		}
		route->unsent_head = route->unsent_tail = NULL;
		/* FALLTHROUGH */
	case ROUTE_S_DONE:
	case ROUTE_S_UNUSED:
		/* After a final reply the upstream parks its connection for the
		 * next transaction; mid-body (too big) it is cut, so the MX
		 * discards the message. Frees later, never on this stack. */
		f->ops->free(route->up);
		route->up = NULL;
		break;
	default:
		break;
	}
}

static struct fanout_route *
route_find(struct fanout *f, const char *domain)
{
	for (size_t i = 0; i < f->nroutes; i++)
		if (strcmp(f->routes[i]->domain, domain) == 0)
			return f->routes[i];
	return NULL;
}

static struct fanout_route *
route_open(struct fanout *f, const char *domain, const struct smtp_path *first)
{
	struct fanout_route *route = xcalloc(1, sizeof(*route));

	route->f = f;
	route->domain = xstrdup(domain);
	route->state = ROUTE_S_OPENING;
	smtp_reply_init(&route->data_reply);
	smtp_reply_init(&route->final);
	f->routes = xrealloc(f->routes, (f->nroutes + 1) * sizeof(*f->routes));
	f->routes[f->nroutes++] = route;
	log_debug("session=%s event=lmtp_route action=open domain=%s domains=%zu", f->session,
	    domain, f->nroutes);
	route->up = f->ops->open(f->rt, f->session, domain, &f->mail, route_event, route);
	if (f->ops->first_rcpt != NULL)
		f->ops->first_rcpt(route->up, first);
	return route;
}

void
fanout_rcpt(struct fanout *f, const struct smtp_path *rcpt, const char *domain)
{
	struct fanout_route *route = route_find(f, domain);
	struct fanout_rcpt *r;
	const struct smtp_param *p;

	if (f->state != FANOUT_S_RCPTS)
		fatalx("fanout_rcpt after DATA");
	r = rcpt_add(f, rcpt->address);
	r->domain = xstrdup(domain);
	if (route == NULL && f->nroutes >= f->max_domains) {
		/* SMTP-8: an implementation limit is a 452; the client sends
		 * these recipients again in a new transaction. */
		smtp_reply_own(&r->reply, f->session, 452, "4.5.3", "Too many recipient domains in "
		    "one transaction (at most %u); send %s in a new transaction", f->max_domains,
		    domain);
		r->answered = true;
		r->note = "[server] lmtp_max_domains reached";
		schedule(f);
		return;
	}
	if (route == NULL)
		route = route_open(f, domain, rcpt);
	r->route = route;
	if (route->state == ROUTE_S_FAILED) {
		/* The domain failed earlier in this transaction: the same reply. */
		answer(r, &route->final);
		r->note = "the domain failed earlier in this transaction";
		schedule(f);
		return;
	}
	r->path_domain = xstrdup(rcpt->domain);
	r->utf8 = rcpt->utf8;
	if ((p = smtp_path_param(rcpt, "NOTIFY")) != NULL)
		r->notify = xstrdup(p->value);
	if ((p = smtp_path_param(rcpt, "ORCPT")) != NULL)
		r->orcpt = xstrdup(p->value);
	if (route->unsent_tail != NULL)
		route->unsent_tail->next_unsent = r;
	else
		route->unsent_head = r;
	route->unsent_tail = r;
	if (route->state == ROUTE_S_IDLE)
		route_enter_state(route, ROUTE_S_RCPT);
}

void
fanout_rcpt_local(struct fanout *f, const struct smtp_reply *reply)
{
	struct fanout_rcpt *r = rcpt_add(f, "");

	smtp_reply_copy(&r->reply, reply);
	r->answered = true;
	r->local = true;
	schedule(f);
}

bool
fanout_rcpts_pending(const struct fanout *f)
{
	return f->rcpt_out < f->nrcpts;
}

unsigned
fanout_accepted(const struct fanout *f)
{
	return f->accepted;
}

unsigned
fanout_domains(const struct fanout *f)
{
	return (unsigned)f->nroutes;
}

int
fanout_data(struct fanout *f)
{
	if (f->state != FANOUT_S_RCPTS || fanout_rcpts_pending(f) || f->accepted == 0)
		return -1;
	fanout_enter_state(f, FANOUT_S_DATA);
	return 0;
}

void
fanout_body_write(struct fanout *f, struct evbuffer *chunk)
{
	size_t len = evbuffer_get_length(chunk), live = 0;
	struct evbuffer *only = NULL;
	unsigned char *data;

	for (size_t i = 0; i < f->nroutes; i++) {
		struct evbuffer *body;

		if (f->routes[i]->state == ROUTE_S_BODY &&
		    (body = f->ops->body(f->routes[i]->up)) != NULL) {
			only = body;
			live++;
		}
	}
	if (len == 0 || live == 0) {
		evbuffer_drain(chunk, len);
		return;
	}
	if (live == 1) {
		/* One domain: the bytes move, no copy. */
		evbuffer_add_buffer(only, chunk);
		return;
	}
	/* The filter ran once; each upstream gets its copy of its output. */
	data = evbuffer_pullup(chunk, -1);
	for (size_t i = 0; i < f->nroutes; i++) {
		struct evbuffer *body;

		if (f->routes[i]->state == ROUTE_S_BODY &&
		    (body = f->ops->body(f->routes[i]->up)) != NULL)
			evbuffer_add(body, data, len);
	}
	evbuffer_drain(chunk, len);
}

/* Some route's body buffer is above its mark; asks every route, which arms each one's EV_WRITABLE. */
static bool
any_route_full(struct fanout *f)
{
	bool full = false;

	for (size_t i = 0; i < f->nroutes; i++)
		if (f->routes[i]->state == ROUTE_S_BODY && f->ops->body_full(f->routes[i]->up))
			full = true;
	return full;
}

bool
fanout_body_full(struct fanout *f)
{
	if (f->state != FANOUT_S_BODY || !any_route_full(f))
		return false;
	f->want_writable = true;
	return true;
}

void
fanout_body_abort(struct fanout *f, const struct smtp_reply *reply)
{
	for (size_t i = 0; i < f->nroutes; i++) {
		struct fanout_route *route = f->routes[i];

		if (route->state == ROUTE_S_BODY) {
			smtp_reply_copy(&route->final, reply);
			route_enter_state(route, ROUTE_S_DONE);
		}
	}
	/* The client is read again, to the end of its body. */
	schedule(f);
}

void
fanout_body_end(struct fanout *f)
{
	if (f->state != FANOUT_S_BODY)
		fatalx("fanout_body_end outside the body");
	fanout_enter_state(f, FANOUT_S_EOM);
}

/*
 * Every route that took DATA answered: the one reply the client gets to
 * DATA. A 354 when any route takes the body; when none does and all
 * refusals are of one class, the first recipient's refusal (right for
 * every recipient); when they differ, stsproxy's own 354, and after the
 * body each recipient hears its own domain's refusal (LMTP-3), so a 5xx
 * never bounces a recipient whose domain only deferred it.
 */
static void
verdict(struct fanout *f)
{
	struct fanout_route *first = NULL, *body = NULL;
	bool mixed = false;

	for (size_t i = 0; i < f->nrcpts && first == NULL; i++)
		if (f->rcpts[i]->accepted)
			first = f->rcpts[i]->route;
	for (size_t i = 0; i < f->nroutes; i++) {
		struct fanout_route *route = f->routes[i];

		if (route->accepted == 0)
			continue;
		if (route->state == ROUTE_S_BODY && body == NULL)
			body = route;
		else if (route->state != ROUTE_S_BODY &&
		    smtp_reply_class(&route->final) != smtp_reply_class(&first->final))
			mixed = true;
	}
	if (body != NULL) {
		smtp_reply_copy(&f->verdict, first->state == ROUTE_S_BODY ? &first->data_reply :
		    &body->data_reply);
		fanout_enter_state(f, FANOUT_S_BODY);
	} else if (mixed) {
		smtp_reply_set(&f->verdict, 354, NULL, "%s", OWN_354_TEXT);
		fanout_enter_state(f, FANOUT_S_BODY);
	} else {
		smtp_reply_copy(&f->verdict, &first->final);
		fanout_enter_state(f, FANOUT_S_DONE);
	}
}

static bool
routes_in(const struct fanout *f, enum route_state state)
{
	for (size_t i = 0; i < f->nroutes; i++)
		if (f->routes[i]->state == state)
			return true;
	return false;
}

static void
emit(struct fanout *f, enum fanout_event ev, const struct fanout_answer *a)
{
	if (f->cb != NULL)
		f->cb(f->arg, ev, a);
}

/* Hand out the next thing that is ready, in order; false when nothing is. */
static bool
pump_one(struct fanout *f)
{
	struct fanout_answer a;

	memset(&a, 0, sizeof(a));
	if (f->rcpt_out < f->nrcpts && f->rcpts[f->rcpt_out]->answered) {
		struct fanout_rcpt *r = f->rcpts[f->rcpt_out++];

		a.address = r->address;
		a.domain = r->domain ? r->domain : "";
		a.mx = r->route ? r->route->mx : "";
		a.reply = &r->reply;
		a.note = r->note;
		a.local = r->local;
		a.accepted = r->accepted;
		emit(f, FANOUT_EV_RCPT, &a);
		return true;
	}
	switch (f->state) {
	case FANOUT_S_DATA:
		if (routes_in(f, ROUTE_S_DATA))
			return false;
		verdict(f);
		a.reply = &f->verdict;
		emit(f, FANOUT_EV_DATA, &a);
		return true;
	case FANOUT_S_BODY:
		if (!f->want_writable || any_route_full(f))
			return false;
		f->want_writable = false;
		emit(f, FANOUT_EV_WRITABLE, &a);
		return true;
	case FANOUT_S_EOM:
		while (f->final_out < f->nrcpts && !f->rcpts[f->final_out]->accepted)
			f->final_out++;
		if (f->final_out == f->nrcpts) {
			fanout_enter_state(f, FANOUT_S_DONE);
			emit(f, FANOUT_EV_DONE, &a);
			return true;
		} else {
			struct fanout_rcpt *r = f->rcpts[f->final_out];
			struct fanout_route *route = r->route;

			if (route->state != ROUTE_S_DONE && route->state != ROUTE_S_FAILED)
				return false;	/* in RCPT order: the later ones wait */
			f->final_out++;
			a.address = r->address;
			a.domain = route->domain;
			a.mx = route->mx;
			a.reply = &route->final;
			a.domain_rcpts = route->accepted;
			emit(f, FANOUT_EV_FINAL, &a);
			return true;
		}
	default:
		return false;
	}
}

static void
pump_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fanout *f = arg;

	(void)fd;
	(void)what;
	/* The callback may free f (fanout_free() defers the memory). */
	while (!f->detached && pump_one(f))
		;
}

static const char *
domains_label(size_t n)
{
	return n <= 1 ? "domains=\"1\"" : n <= 3 ? "domains=\"2-3\"" : n <= 10 ? "domains=\"4-10\"" :
	    n <= 50 ? "domains=\"11-50\"" : "domains=\"51+\"";
}

static void
fanout_enter_state(struct fanout *f, enum fanout_state next)
{
	enum fanout_state prev = f->state;

	log_debug("session=%s fanout state=%s -> %s", f->session, fanout_state_names[f->state],
	    fanout_state_names[next]);
	f->state = next;
	switch (next) {
	case FANOUT_S_DATA:
		for (size_t i = 0; i < f->nroutes; i++) {
			struct fanout_route *route = f->routes[i];

			if (route->state != ROUTE_S_IDLE)
				continue;	/* failed or lost: its final reply is known */
			route_enter_state(route, route->accepted > 0 ? ROUTE_S_DATA : ROUTE_S_UNUSED);
		}
		schedule(f);	/* with no route in DATA the verdict is ready */
		break;
	case FANOUT_S_EOM:
		for (size_t i = 0; i < f->nroutes; i++)
			if (f->routes[i]->state == ROUTE_S_BODY)
				route_enter_state(f->routes[i], ROUTE_S_EOM);
		schedule(f);
		break;
	case FANOUT_S_DONE:
		if (prev != FANOUT_S_EOM)
			break;
		/* One message per domain reached the end of data. */
		metrics_add("stsproxy_lmtp_transactions_total", domains_label(f->nroutes), 1);
		metrics_add("stsproxy_lmtp_domains_total", "", (double)f->nroutes);
		for (size_t i = 0; i < f->nroutes; i++) {
			int cls = smtp_reply_class(&f->routes[i]->final);

			if (f->routes[i]->accepted == 0)
				continue;
			metrics_add("stsproxy_messages_total", cls == 2 ? "reply=\"2xx\"" :
			    cls == 4 ? "reply=\"4xx\"" : "reply=\"5xx\"", 1);
		}
		break;
	default:
		break;
	}
}

struct fanout *
fanout_new(struct runtime *rt, const struct upstream_ops *ops, const char *session,
    const struct smtp_path *mail, unsigned max_domains, fanout_cb cb, void *arg)
{
	struct fanout *f = xcalloc(1, sizeof(*f));

	f->rt = rt;
	f->ops = ops;
	snprintf(f->session, sizeof(f->session), "%s", session);
	f->mail = *mail;
	f->max_domains = max_domains;
	f->cb = cb;
	f->arg = arg;
	f->state = FANOUT_S_RCPTS;
	smtp_reply_init(&f->verdict);
	f->pump = event_new(rt->base, -1, 0, pump_cb, f);
	return f;
}

static void
reap(evutil_socket_t fd, short what, void *arg)
{
	struct fanout *f = arg;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < f->nroutes; i++) {
		struct fanout_route *route = f->routes[i];

		free(route->domain);
		smtp_reply_clear(&route->data_reply);
		smtp_reply_clear(&route->final);
		free(route);
	}
	for (size_t i = 0; i < f->nrcpts; i++) {
		struct fanout_rcpt *r = f->rcpts[i];

		free(r->address);
		free(r->domain);
		rcpt_forget_path(r);
		smtp_reply_clear(&r->reply);
		free(r);
	}
	free(f->routes);
	free(f->rcpts);
	smtp_reply_clear(&f->verdict);
	event_free(f->pump);
	event_free(f->reaper);
	free(f);
}

void
fanout_free(struct fanout *f)
{
	if (f == NULL || f->detached)
		return;
	f->detached = true;
	f->cb = NULL;
	event_del(f->pump);
	/* The upstreams go now (they free themselves later): mid-body they
	 * are cut, so no MX takes a message the client was not told about. */
	for (size_t i = 0; i < f->nroutes; i++) {
		f->ops->free(f->routes[i]->up);
		f->routes[i]->up = NULL;
	}
	f->reaper = event_new(f->rt->base, -1, 0, reap, f);
	event_active(f->reaper, EV_TIMEOUT, 0);
}
