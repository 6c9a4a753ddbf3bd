#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "conf/log.h"
#include "conf/metrics.h"
#include "conf/netaddr.h"
#include "proxy/metrics_http.h"

struct metrics_http {
	struct evhttp		*http;
	metrics_health_cb	 health;
	void			*arg;
};

static void
serve_metrics(struct evhttp_request *req, void *arg)
{
	struct evbuffer *out = evbuffer_new();
	struct strbuf sb;

	(void)arg;
	strbuf_init(&sb);
	metrics_render(&sb);
	evbuffer_add(out, sb.data, sb.len);
	strbuf_free(&sb);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

static void
serve_health(struct evhttp_request *req, void *arg)
{
	struct metrics_http *m = arg;
	struct evbuffer *out = evbuffer_new();
	bool degraded = false;
	const char *why = m->health ? m->health(m->arg, &degraded) : NULL;
	bool down = why != NULL && !degraded;

	evbuffer_add_printf(out, "%s%s\n", why && degraded ? "degraded: " : "", why ? why : "ok");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
	evhttp_send_reply(req, down ? 503 : 200, down ? "Service Unavailable" : "OK", out);
	evbuffer_free(out);
}

static void
serve_other(struct evhttp_request *req, void *arg)
{
	(void)arg;
	evhttp_send_error(req, 404, "only /metrics and /healthz");
}

struct metrics_http *
metrics_http_new(struct event_base *base, const char *addr, metrics_health_cb health, void *arg,
    char **err)
{
	struct metrics_http *m = xcalloc(1, sizeof(*m));
	struct sockaddr_storage ss;
	socklen_t len;
	char host[64];
	const char *colon = strrchr(addr, ':');
	int port;

	if (netaddr_parse_hostport(addr, &ss, &len) != NULL || colon == NULL) {
		*err = xasprintf("metrics_listen: bad address %s", addr);
		free(m);
		return NULL;
	}
	netaddr_ntop((struct sockaddr *)&ss, host, sizeof(host));
	port = atoi(colon + 1);
	m->http = evhttp_new(base);
	m->health = health;
	m->arg = arg;
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_cb(m->http, "/metrics", serve_metrics, m);
	evhttp_set_cb(m->http, "/healthz", serve_health, m);
	evhttp_set_gencb(m->http, serve_other, m);
	evhttp_set_timeout(m->http, 10);
	if (evhttp_bind_socket(m->http, host, (ev_uint16_t)port) != 0) {
		*err = xasprintf("metrics_listen: cannot listen on %s", addr);
		evhttp_free(m->http);
		free(m);
		return NULL;
	}
	log_notice("event=metrics_listening address=%s", addr);
	return m;
}

void
metrics_http_free(struct metrics_http *m)
{
	if (m == NULL)
		return;
	evhttp_free(m->http);
	free(m);
}
