/* 0-RTT anti-replay (src/tls/antireplay.c) with real TLS 1.3: a GnuTLS
 * server that accepts early data and a client that resumes a session and
 * sends early data, over in-memory pipes. The register is the state store
 * (src/state/store.h), as the gateway wires it. GnuTLS registers each
 * ClientHello's PSK binder (RFC 8446 8.2): a recorded first flight sent
 * again (the replay an attacker on the path can make) is answered but its
 * early data is not taken; a failing register refuses early data too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "state/store.h"
#include "tls/antireplay.h"
#include "tls_certs.h"

typedef struct {
    unsigned char d[64 * 1024];
    size_t len;
} pipe_buf;

typedef struct {
    gnutls_session_t s;
    pipe_buf *in, *out;
} end;

static ssize_t push(gnutls_transport_ptr_t t, const void *d, size_t n)
{
    end *e = t;
    if (n > sizeof e->out->d - e->out->len)
        return -1;
    memcpy(e->out->d + e->out->len, d, n);
    e->out->len += n;
    return (ssize_t)n;
}

static ssize_t pull(gnutls_transport_ptr_t t, void *d, size_t n)
{
    end *e = t;
    if (e->in->len == 0) {
        gnutls_transport_set_errno(e->s, EAGAIN);
        return -1;
    }
    size_t k = n < e->in->len ? n : e->in->len;
    memcpy(d, e->in->d, k);
    memmove(e->in->d, e->in->d + k, e->in->len - k);
    e->in->len -= k;
    return (ssize_t)k;
}

static void wire(end *e, pipe_buf *in, pipe_buf *out)
{
    e->in = in;
    e->out = out;
    gnutls_transport_set_ptr(e->s, e);
    gnutls_transport_set_push_function(e->s, push);
    gnutls_transport_set_pull_function(e->s, pull);
}

/* ---- the register: the in-process state store, or one that fails ---- */

static hx_store *store;
static bool register_fails;

static void on_reply(void *ud, const hx_store_reply *r)
{
    *(hx_store_rc *)ud = r->rc;
}

static hx_replay_rc store_add(void *ud, const char *key, int64_t ttl_ms)
{
    (void)ud;
    if (register_fails)
        return HX_REPLAY_ERROR;
    hx_store_rc rc = HX_STORE_UNAVAILABLE;
    if (store->vt->add_once(store, key, ttl_ms, on_reply, &rc) != 0)
        return HX_REPLAY_ERROR;
    return rc == HX_STORE_OK ? HX_REPLAY_NEW : rc == HX_STORE_EXISTS ? HX_REPLAY_SEEN : HX_REPLAY_ERROR;
}

/* ---- a server and a client ---- */

static gnutls_certificate_credentials_t scred, ccred;
static gnutls_datum_t ticket_key;
static hx_antireplay *ar;

static int setup(void **state)
{
    if (tls_certs_setup(state) != 0)
        return -1;
    assert_int_equal(gnutls_certificate_allocate_credentials(&scred), 0);
    assert_int_equal(gnutls_certificate_set_x509_key_file(scred, tls_at("server.pem"), tls_at("server.key"),
                                                          GNUTLS_X509_FMT_PEM),
                     0);
    assert_int_equal(gnutls_certificate_allocate_credentials(&ccred), 0);
    assert_true(gnutls_certificate_set_x509_trust_file(ccred, tls_at("ca.pem"), GNUTLS_X509_FMT_PEM) > 0);
    assert_int_equal(gnutls_session_ticket_key_generate(&ticket_key), 0);
    hx_store_limits lim = {1000, 1 << 20};
    store = hx_store_memory_new(&lim);
    assert_non_null(store);
    ar = hx_antireplay_new(10000, store_add, NULL);
    assert_non_null(ar);
    return 0;
}

static int teardown(void **state)
{
    hx_antireplay_free(ar);
    store->vt->destroy(store);
    gnutls_free(ticket_key.data);
    gnutls_certificate_free_credentials(scred);
    gnutls_certificate_free_credentials(ccred);
    return tls_certs_teardown(state);
}

#define EARLY "POST /v1/chat/completions"

typedef struct {
    pipe_buf flight;       /* the client's first flight (ClientHello and early data) */
    bool early_accepted;   /* the server's session says so */
    char early[64];        /* what the server read as early data */
    bool resumed;
    gnutls_datum_t ticket; /* the client's session data after the handshake */
} outcome;

/* A server session that takes early data through the register, on in/out. */
static void server_open(end *srv, pipe_buf *in, pipe_buf *out)
{
    assert_int_equal(gnutls_init(&srv->s, GNUTLS_SERVER | GNUTLS_ENABLE_EARLY_DATA | GNUTLS_NONBLOCK), 0);
    assert_int_equal(gnutls_priority_set_direct(srv->s, "NORMAL:-VERS-ALL:+VERS-TLS1.3", NULL), 0);
    assert_int_equal(gnutls_credentials_set(srv->s, GNUTLS_CRD_CERTIFICATE, scred), 0);
    assert_int_equal(gnutls_session_ticket_enable_server(srv->s, &ticket_key), 0);
    assert_int_equal(gnutls_record_set_max_early_data_size(srv->s, 16384), 0);
    hx_antireplay_enable(ar, srv->s);
    wire(srv, in, out);
}

/* One connection: resume (and send early data) when `resume` is given. */
static void connect_once(const gnutls_datum_t *resume, outcome *o)
{
    pipe_buf c2s = {.len = 0}, s2c = {.len = 0};
    static pipe_buf c2s_s, s2c_s;
    c2s_s = c2s;
    s2c_s = s2c;
    end srv, cli;
    memset(o, 0, sizeof *o);
    server_open(&srv, &c2s_s, &s2c_s);

    assert_int_equal(gnutls_init(&cli.s, GNUTLS_CLIENT | GNUTLS_ENABLE_EARLY_DATA | GNUTLS_NONBLOCK), 0);
    assert_int_equal(gnutls_priority_set_direct(cli.s, "NORMAL:-VERS-ALL:+VERS-TLS1.3", NULL), 0);
    assert_int_equal(gnutls_credentials_set(cli.s, GNUTLS_CRD_CERTIFICATE, ccred), 0);
    assert_int_equal(gnutls_server_name_set(cli.s, GNUTLS_NAME_DNS, "a.test", 6), 0);
    gnutls_session_set_verify_cert(cli.s, "a.test", 0);
    wire(&cli, &s2c_s, &c2s_s);
    if (resume) {
        assert_int_equal(gnutls_session_set_data(cli.s, resume->data, resume->size), 0);
        assert_true(gnutls_record_send_early_data(cli.s, EARLY, strlen(EARLY)) >= 0); /* buffered: 0 */
    }
    int crc = GNUTLS_E_AGAIN, src = GNUTLS_E_AGAIN;
    for (int round = 0; round < 32 && (crc != 0 || src != 0); round++) {
        if (crc != 0) {
            crc = gnutls_handshake(cli.s);
            if (round == 0)
                o->flight = c2s_s; /* as an attacker on the path records it */
        }
        if (src != 0)
            src = gnutls_handshake(srv.s);
        if (src == 0 && (gnutls_session_get_flags(srv.s) & GNUTLS_SFLAGS_EARLY_DATA) && o->early[0] == '\0') {
            ssize_t n = gnutls_record_recv_early_data(srv.s, o->early, sizeof o->early - 1);
            if (n > 0)
                o->early[n] = '\0';
        }
        if (!(crc == 0 || crc == GNUTLS_E_AGAIN || crc == GNUTLS_E_INTERRUPTED))
            fail_msg("client handshake: %s", gnutls_strerror(crc));
        if (!(src == 0 || src == GNUTLS_E_AGAIN || src == GNUTLS_E_INTERRUPTED))
            fail_msg("server handshake: %s", gnutls_strerror(src));
    }
    assert_int_equal(crc, 0);
    assert_int_equal(src, 0);
    o->early_accepted = (gnutls_session_get_flags(srv.s) & GNUTLS_SFLAGS_EARLY_DATA) != 0;
    o->resumed = gnutls_session_is_resumed(cli.s) != 0;
    /* The server's ticket arrives after the handshake: the client reads it. */
    char buf[64];
    assert_int_equal(gnutls_record_send(srv.s, "x", 1), 1);
    ssize_t got = GNUTLS_E_AGAIN;
    for (int i = 0; i < 8 && (got == GNUTLS_E_AGAIN || got == GNUTLS_E_INTERRUPTED); i++)
        got = gnutls_record_recv(cli.s, buf, sizeof buf); /* the ticket first, then "x" */
    assert_int_equal(got, 1);
    assert_int_equal(gnutls_session_get_data2(cli.s, &o->ticket), 0);
    gnutls_deinit(cli.s);
    gnutls_deinit(srv.s);
}

/* An attacker sends a recorded first flight again to a fresh server: the
 * server answers, but does it take the early data? */
static bool replay_accepted(const pipe_buf *flight, char *early, size_t cap)
{
    static pipe_buf in, out;
    in = *flight;
    out.len = 0;
    end srv;
    server_open(&srv, &in, &out);
    int rc = gnutls_handshake(srv.s); /* waits for a Finished that never comes */
    assert_true(rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED);
    assert_true(out.len > 0); /* the server did answer the ClientHello */
    ssize_t n = gnutls_record_recv_early_data(srv.s, early, cap - 1);
    early[n > 0 ? n : 0] = '\0';
    gnutls_deinit(srv.s);
    return n > 0;
}

static void test_early_data_once_per_ticket(void **state)
{
    (void)state;
    register_fails = false;
    outcome first, second, third;
    connect_once(NULL, &first); /* a full handshake: the ticket */
    assert_false(first.resumed);
    connect_once(&first.ticket, &second); /* resumed with early data: accepted */
    assert_true(second.resumed);
    assert_true(second.early_accepted);
    assert_string_equal(second.early, EARLY);
    hx_antireplay_stats st;
    hx_antireplay_get_stats(ar, &st);
    assert_int_equal(st.registered, 1);
    /* The recorded flight sent again: the early data is not taken twice. */
    char early[64];
    assert_false(replay_accepted(&second.flight, early, sizeof early));
    assert_string_equal(early, "");
    assert_false(replay_accepted(&second.flight, early, sizeof early));
    hx_antireplay_get_stats(ar, &st);
    assert_int_equal(st.registered, 1);
    assert_int_equal(st.replays, 2);
    assert_int_equal(st.errors, 0);
    /* The client itself resuming again makes a new ClientHello (a new
     * binder, which only the holder of the ticket's secret can make): its
     * early data is its own, registered anew. */
    connect_once(&first.ticket, &third);
    assert_true(third.resumed);
    assert_true(third.early_accepted);
    hx_antireplay_get_stats(ar, &st);
    assert_int_equal(st.registered, 2);
    gnutls_free(first.ticket.data);
    gnutls_free(second.ticket.data);
    gnutls_free(third.ticket.data);
}

/* The register cannot answer (a shared store down): no early data. */
static void test_failing_register_refuses(void **state)
{
    (void)state;
    register_fails = false;
    outcome first, second;
    connect_once(NULL, &first);
    register_fails = true;
    hx_antireplay_stats before, after;
    hx_antireplay_get_stats(ar, &before);
    connect_once(&first.ticket, &second);
    register_fails = false;
    assert_true(second.resumed);
    assert_false(second.early_accepted);
    hx_antireplay_get_stats(ar, &after);
    assert_int_equal(after.errors, before.errors + 1);
    gnutls_free(first.ticket.data);
    gnutls_free(second.ticket.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_early_data_once_per_ticket),
        cmocka_unit_test(test_failing_register_refuses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
