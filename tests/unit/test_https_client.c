/*
 * Unit tests of the one HTTPS client (policy/https_client.c) against an
 * HTTPS server in the same event loop (evhttp over bufferevent_openssl,
 * a self-signed certificate made here) on 127.0.0.1: what each caller
 * relies on. The report POST (RPT-13) ignores the certificate and drops
 * the answer's body whatever its size; the policy fetch (STS-14, STS-17)
 * requires the certificate, caps the body and has a deadline. Address
 * literals need no resolver; the DNS side is covered by tests/e2e.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "conf/log.h"
#include "policy/https_client.h"

static struct {
	struct event_base	*base;
	SSL_CTX			*server_ctx, *client_ctx;
	struct evhttp		*http;
	unsigned short		 port;
	/* what the server saw last */
	char			 method[8], path[64], content_type[64];
	size_t			 body_len;
	/* what the client got */
	bool			 done;
	struct https_result	 result;
	char			 body[64];
} T;

static SSL_CTX *
server_ctx_new(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1",
	    -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, name);
	X509_NAME_free(name);
	X509_set_pubkey(x, key);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
	X509_free(x);
	EVP_PKEY_free(key);
	return ctx;
}

static struct bufferevent *
server_bev(struct event_base *base, void *arg)
{
	(void)arg;
	return bufferevent_openssl_socket_new(base, -1, SSL_new(T.server_ctx),
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

/* /created: 201; /fail: 500; /big: 1 MiB of body; /small: 100 bytes; /stall: no answer. */
static void
server_request(struct evhttp_request *req, void *arg)
{
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	const char *path = evhttp_request_get_uri(req);
	struct evbuffer *out = evbuffer_new();

	(void)arg;
	snprintf(T.method, sizeof(T.method), "%s",
	    evhttp_request_get_command(req) == EVHTTP_REQ_POST ? "POST" : "GET");
	snprintf(T.path, sizeof(T.path), "%s", path);
	snprintf(T.content_type, sizeof(T.content_type), "%s", ct ? ct : "");
	T.body_len = evbuffer_get_length(evhttp_request_get_input_buffer(req));
	if (strcmp(path, "/stall") == 0) {
		evbuffer_free(out);
		return;		/* never answered; freed with the server */
	}
	if (strcmp(path, "/big") == 0) {
		static char chunk[65536];

		memset(chunk, 'x', sizeof(chunk));
		for (int i = 0; i < 16; i++)
			evbuffer_add(out, chunk, sizeof(chunk));
	} else if (strcmp(path, "/small") == 0) {
		for (int i = 0; i < 10; i++)
			evbuffer_add(out, "0123456789", 10);
	} else
		evbuffer_add_printf(out, "ok");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
	evhttp_send_reply(req, strcmp(path, "/created") == 0 ? 201 : strcmp(path, "/fail") == 0 ?
	    500 : 200, "answer", out);
	evbuffer_free(out);
}

static int
setup(void **state)
{
	struct evhttp_bound_socket *bound;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	(void)state;
	memset(&T, 0, sizeof(T));
	T.base = event_base_new();
	T.server_ctx = server_ctx_new();
	T.client_ctx = SSL_CTX_new(TLS_client_method());
	/* As tls_client_ctx_new(): verification on, an empty trust store here. */
	SSL_CTX_set_verify(T.client_ctx, SSL_VERIFY_PEER, NULL);
	T.http = evhttp_new(T.base);
	evhttp_set_bevcb(T.http, server_bev, NULL);
	evhttp_set_gencb(T.http, server_request, NULL);
	bound = evhttp_bind_socket_with_handle(T.http, "127.0.0.1", 0);
	assert_non_null(bound);
	getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sin, &len);
	T.port = ntohs(sin.sin_port);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	evhttp_free(T.http);
	SSL_CTX_free(T.server_ctx);
	SSL_CTX_free(T.client_ctx);
	tls_session_cache_clear();
	event_base_free(T.base);
	return 0;
}

static void
done(void *arg, const struct https_result *r)
{
	(void)arg;
	assert_false(T.done);		/* exactly once */
	T.done = true;
	T.result = *r;
	snprintf(T.body, sizeof(T.body), "%.*s", (int)r->body_len, r->body);
	/* Pointers into the client die with the callback. */
	T.result.content_type = T.result.location = T.result.body = NULL;
}

/* A request to 127.0.0.1 at the test server, run until the callback. */
static void
run(enum https_method method, const char *path, size_t max_body, enum https_cert_check check,
    unsigned deadline)
{
	static const char *const headers[] = { "Content-Type", "application/tlsrpt+gzip", NULL };
	struct https_request req = {
		.method = method, .host = "127.0.0.1", .port = T.port, .path = path,
		.headers = headers, .body = "report", .body_len = 6, .io_timeout = deadline * 5,
		.deadline = deadline, .max_body = max_body, .max_headers = 8192,
		.cert_check = check, .every_address = false, .log_sub = LOG_SUB_POLICY,
	};

	T.done = false;
	assert_non_null(https_start(T.base, NULL, T.client_ctx, &req, done, NULL));
	for (int i = 0; i < 20000 && !T.done; i++)
		event_base_loop(T.base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(500);
	assert_true(T.done);
}

/* RPT-13: the report POST, certificate ignored, the answer's status counts. */
static void
test_post_certificate_ignored(void **state)
{
	(void)state;
	run(HTTPS_POST, "/created", 0, HTTPS_CERT_IGNORED, 5);
	assert_int_equal(T.result.outcome, HTTPS_RESPONSE);
	assert_int_equal(T.result.status, 201);
	assert_string_equal(T.method, "POST");
	assert_string_equal(T.content_type, "application/tlsrpt+gzip");
	assert_int_equal(T.body_len, 6);
	assert_true(T.result.tls_done);
	assert_string_equal(T.result.address, "127.0.0.1");
	run(HTTPS_POST, "/fail", 0, HTTPS_CERT_IGNORED, 5);
	assert_int_equal(T.result.outcome, HTTPS_RESPONSE);
	assert_int_equal(T.result.status, 500);
}

/* Without max_body the answer is dropped as it arrives, whatever its size. */
static void
test_body_dropped(void **state)
{
	(void)state;
	run(HTTPS_POST, "/big", 0, HTTPS_CERT_IGNORED, 5);
	assert_int_equal(T.result.outcome, HTTPS_RESPONSE);
	assert_int_equal(T.result.status, 200);
	assert_int_equal(T.result.body_len, 0);
}

/* STS-17: a kept body is capped; within the cap it is returned whole. */
static void
test_body_cap(void **state)
{
	(void)state;
	run(HTTPS_GET, "/small", 100, HTTPS_CERT_IGNORED, 5);
	assert_int_equal(T.result.outcome, HTTPS_RESPONSE);
	assert_int_equal(T.result.body_len, 100);
	assert_string_equal(T.method, "GET");
	run(HTTPS_GET, "/small", 99, HTTPS_CERT_IGNORED, 5);
	assert_int_equal(T.result.outcome, HTTPS_TOO_LARGE);
}

/* STS-14: with the certificate required, an untrusted one ends the request. */
static void
test_certificate_required(void **state)
{
	(void)state;
	T.path[0] = '\0';
	run(HTTPS_GET, "/created", 1024, HTTPS_CERT_REQUIRED, 5);
	assert_int_equal(T.result.outcome, HTTPS_TLS_FAILED);
	assert_int_not_equal(T.result.verify_result, X509_V_OK);
	assert_int_equal(T.result.tls_type, RPT_RESULT_CERT_NOT_TRUSTED);
	assert_non_null(strstr(T.result.reason, "certificate"));
	assert_string_equal(T.path, "");	/* no request was sent */
}

/* STS-17: the deadline ends a request the server never answers. */
static void
test_deadline(void **state)
{
	(void)state;
	run(HTTPS_GET, "/stall", 1024, HTTPS_CERT_IGNORED, 1);
	assert_int_equal(T.result.outcome, HTTPS_TIMEOUT);
}

/* A refused connection is a network failure: no address answered, with why. */
static void
test_refused(void **state)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	char want[64];

	(void)state;
	/* A port that was bound and is closed again refuses. */
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	getsockname(fd, (struct sockaddr *)&sin, &len);
	close(fd);
	T.port = ntohs(sin.sin_port);
	run(HTTPS_GET, "/", 1024, HTTPS_CERT_IGNORED, 5);
	assert_int_equal(T.result.outcome, HTTPS_UNREACHABLE);
	snprintf(want, sizeof(want), "127.0.0.1 port %u: ", (unsigned)T.port);
	assert_memory_equal(T.result.reason, want, strlen(want));
}

/* A cancelled request never calls back, and leaves nothing behind (valgrind). */
static void
test_cancel(void **state)
{
	struct https_request req = {
		.method = HTTPS_GET, .host = "127.0.0.1", .port = T.port, .path = "/stall",
		.io_timeout = 5, .deadline = 5, .max_body = 1024, .max_headers = 8192,
		.cert_check = HTTPS_CERT_IGNORED, .log_sub = LOG_SUB_POLICY,
	};
	struct https_client *c;

	(void)state;
	T.done = false;
	c = https_start(T.base, NULL, T.client_ctx, &req, done, NULL);
	for (int i = 0; i < 200; i++)
		event_base_loop(T.base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(500);
	https_cancel(c);
	for (int i = 0; i < 200; i++)
		event_base_loop(T.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_false(T.done);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_post_certificate_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_certificate_required, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
	};

	log_init("test", false, LOG_LEVEL_CRIT);
	return cmocka_run_group_tests_name("https_client", tests, NULL, NULL);
}
