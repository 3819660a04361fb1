#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "http/request.h"
#include "middleware/ctx.h"
#include "middleware/auth.h"
#include "middleware/middleware.h"
#include "obs/log.h"
#include "util/alloc.h"

#include "capture.h"

#define KEY_ALPHA "sk-alpha-secret-0001"
#define KEY_BETA "sk-beta-secret-0002"   /* configured as key_sha256 */
#define KEY_GAMMA "sk-gamma-secret-0003"
#define KEY_DELTA "sk-delta-secret-0004"
#define KEY_EPS "sk-eps-secret-0005"
#define KEY_WRONG "sk-wrong-secret-9999"
#define N_KEYS 5

static void ok_handler(hx_req *r)
{
    hx_res_send(r, 200, "text/plain", "ok", 2);
}

/* ---- fixtures ---------------------------------------------------------- */

static FILE *logf_;

static char *captured_log(void)
{
    static char buf[65536];
    fflush(logf_);
    rewind(logf_);
    size_t got = fread(buf, 1, sizeof buf - 1, logf_);
    buf[got] = '\0';
    rewind(logf_);
    (void)!ftruncate(fileno(logf_), 0);
    return buf;
}

static void sha_hex(const char *s, char out[65])
{
    unsigned char d[32];
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, s, strlen(s), d), 0);
    for (size_t i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02X", d[i]); /* upper case: decoding ignores case */
}

static hx_config *load(const char *yaml)
{
    hx_config_errors errs = {0};
    hx_config *c = hx_config_load_string(yaml, strlen(yaml), "auth.yaml", &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.items[i]);
    hx_config_errors_free(&errs);
    assert_non_null(c);
    return c;
}

static hx_config *load_keys(bool metrics_require_auth, bool enabled)
{
    char hex[65], yaml[2048];
    sha_hex(KEY_BETA, hex);
    snprintf(yaml, sizeof yaml,
             "server:\n  middleware: [auth]\n"
             "auth:\n  enabled: %s\n  metrics_require_auth: %s\n  keys:\n"
             "    - {name: alpha, key: " KEY_ALPHA ", metrics: true}\n"
             "    - {name: beta, key_sha256: \"%s\", models: [gpt-4o, llama3]}\n"
             "    - {name: gamma, key: " KEY_GAMMA "}\n"
             "    - {name: delta, key: " KEY_DELTA "}\n"
             "    - {name: eps, key: " KEY_EPS "}\n",
             enabled ? "true" : "false", metrics_require_auth ? "true" : "false", hex);
    return load(yaml);
}

static hx_config *cfg;

static int setup(void **state)
{
    (void)state;
    logf_ = tmpfile();
    hx_log_set_fd(fileno(logf_));
    hx_log_set_level(HX_LOG_INFO);
    hx_log_set_json(true);
    cfg = load_keys(true, true);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hx_auth_cache_flush();
    hx_config_unref(cfg);
    hx_log_set_fd(-1);
    fclose(logf_);
    return 0;
}

/* A request on cfg c with one header (name NULL = none). */
static hx_req *new_req(hx_config *c, hx_test_capture *cp, const char *hname, const char *hvalue)
{
    cap_init(cp);
    hx_req *r = hx_req_new(&cap_tp, cp, c);
    assert_non_null(r);
    r->method = "POST";
    r->path = hx_strdup("/v1/chat/completions");
    snprintf(r->peer_ip, sizeof r->peer_ip, "198.51.100.7");
    hx_req_assign_id(r, false);
    if (hname)
        assert_int_equal(hx_headers_add(&r->headers, hname, hvalue), 0);
    r->steps[0] = hx_mw_auth;
    r->nsteps = 1;
    r->method_ok = true;
    r->handler = ok_handler;
    return r;
}

/* Runs the auth step; returns the status, copies the key name out. */
static int run_auth(const char *hname, const char *hvalue, hx_test_capture *cp, char name[64])
{
    hx_req *r = new_req(cfg, cp, hname, hvalue);
    hx_req_next(r);
    if (name)
        snprintf(name, 64, "%s", hx_auth_key(r) ? hx_auth_key(r)->name : "");
    int st = cp->status;
    hx_req_unref(r);
    return st;
}

static void assert_no_key_text(const char *text)
{
    const char *keys[] = {KEY_ALPHA, KEY_BETA, KEY_GAMMA, KEY_DELTA, KEY_EPS, KEY_WRONG};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_null(strstr(text, keys[i]));
}

/* ---- tests ------------------------------------------------------------- */

static void test_good_key_both_headers(void **state)
{
    (void)state;
    hx_test_capture c;
    char name[64];
    assert_int_equal(run_auth("Authorization", "Bearer " KEY_ALPHA, &c, name), 200);
    assert_string_equal(name, "alpha");
    cap_free(&c);
    assert_int_equal(run_auth("X-API-Key", KEY_GAMMA, &c, name), 200);
    assert_string_equal(name, "gamma");
    cap_free(&c);
    /* scheme is case-insensitive, blanks around the key are ignored */
    assert_int_equal(run_auth("authorization", "bearer   " KEY_EPS "  ", &c, name), 200);
    assert_string_equal(name, "eps");
    cap_free(&c);
    assert_string_equal(captured_log(), "");
}

#define FP_ONE "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define FP_TWO "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

/* auth.keys[].client_cert: a client certificate the transport verified
 * (hx_req.peer_cert_*) identifies the client like a key. */
static void test_client_cert(void **state)
{
    (void)state;
    hx_config *c = load("server:\n  middleware: [auth]\n"
                        "auth:\n  enabled: true\n  keys:\n"
                        "    - {name: alpha, key: " KEY_ALPHA "}\n"
                        "    - {name: by-fp, client_cert: \"sha256:" FP_ONE "\", models: [gpt-4o]}\n"
                        "    - {name: by-dn, client_cert: \"subject:CN=client-two,O=Example\"}\n");
    struct {
        const char *fp, *dn, *hname, *hvalue;
        int status;
        const char *name;
    } cases[] = {
        {FP_ONE, "CN=whoever", NULL, NULL, 200, "by-fp"},
        /* fingerprints compare without case */
        {"0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF", "", NULL, NULL, 200, "by-fp"},
        {FP_TWO, "CN=client-two,O=Example", NULL, NULL, 200, "by-dn"},
        /* a certificate first: it was proven by the handshake */
        {FP_ONE, "", "Authorization", "Bearer " KEY_ALPHA, 200, "by-fp"},
        /* an unnamed certificate falls back to the bearer key */
        {FP_TWO, "CN=other", "Authorization", "Bearer " KEY_ALPHA, 200, "alpha"},
        {FP_TWO, "CN=other", NULL, NULL, 401, ""},
        /* a subject is matched whole, not as a prefix */
        {"", "CN=client-two", NULL, NULL, 401, ""},
        {"", "CN=client-two,O=Example,C=XX", NULL, NULL, 401, ""},
        {"", "", NULL, NULL, 401, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hx_test_capture cp;
        hx_req *r = new_req(c, &cp, cases[i].hname, cases[i].hvalue);
        snprintf(r->peer_cert_sha256, sizeof r->peer_cert_sha256, "%s", cases[i].fp);
        snprintf(r->peer_cert_subject, sizeof r->peer_cert_subject, "%s", cases[i].dn);
        hx_req_next(r);
        if (cp.status != cases[i].status)
            fail_msg("case %zu: status %d", i, cp.status);
        assert_string_equal(hx_auth_key(r) ? hx_auth_key(r)->name : "", cases[i].name);
        if (i == 0) /* the key's model list applies as for a secret key */
            assert_false(hx_auth_model_allowed(hx_auth_key(r), "llama3"));
        hx_req_unref(r);
        cap_free(&cp);
    }
    /* a key with client_cert has no secret: no bearer value matches it */
    hx_test_capture cp;
    hx_req *r = new_req(c, &cp, "Authorization", "Bearer ");
    hx_req_next(r);
    assert_int_equal(cp.status, 401);
    hx_req_unref(r);
    cap_free(&cp);
    (void)captured_log();
    hx_auth_cache_flush();
    hx_config_unref(c);
}

static void test_key_sha256_form(void **state)
{
    (void)state;
    hx_test_capture c;
    char name[64];
    assert_int_equal(run_auth("Authorization", "Bearer " KEY_BETA, &c, name), 200);
    assert_string_equal(name, "beta");
    cap_free(&c);
}

static void assert_401(hx_test_capture *c)
{
    assert_int_equal(c->status, 401);
    assert_string_equal(hx_headers_get(&c->headers, "WWW-Authenticate"), "Bearer realm=\"hapax\"");
    assert_non_null(strstr(cap_text(c), "\"invalid_api_key\""));
    assert_no_key_text(cap_text(c));
}

static void test_bad_key(void **state)
{
    (void)state;
    hx_test_capture c;
    char name[64];
    assert_int_equal(run_auth("Authorization", "Bearer " KEY_WRONG, &c, name), 401);
    assert_string_equal(name, "");
    assert_401(&c);
    cap_free(&c);
    /* a prefix of a good key is not a good key */
    assert_int_equal(run_auth("X-API-Key", "sk-alpha-secret-000", &c, NULL), 401);
    cap_free(&c);
    char *log = captured_log();
    assert_non_null(strstr(log, "\"event\":\"auth_failure\""));
    assert_non_null(strstr(log, "\"reason\":\"invalid_key\""));
    assert_non_null(strstr(log, "\"client_ip\":\"198.51.100.7\""));
    assert_non_null(strstr(log, "\"path\":\"\\/v1\\/chat\\/completions\"") ||
                    strstr(log, "\"path\":\"/v1/chat/completions\""));
    assert_non_null(strstr(log, "\"request_id\":\""));
    assert_no_key_text(log);
    assert_null(strstr(log, "sk-alpha"));
}

static void test_missing_key(void **state)
{
    (void)state;
    hx_test_capture c;
    assert_int_equal(run_auth(NULL, NULL, &c, NULL), 401);
    assert_401(&c);
    cap_free(&c);
    /* another scheme, or an empty bearer, is no key */
    assert_int_equal(run_auth("Authorization", "Basic " KEY_ALPHA, &c, NULL), 401);
    assert_401(&c);
    cap_free(&c);
    assert_int_equal(run_auth("Authorization", "Bearer   ", &c, NULL), 401);
    cap_free(&c);
    char *log = captured_log();
    assert_non_null(strstr(log, "\"reason\":\"missing_key\""));
    assert_null(strstr(log, "invalid_key"));
    assert_no_key_text(log);
}

static void test_identify_why_and_cache(void **state)
{
    (void)state;
    hx_test_capture c;
    int why = -1;
    hx_req *r = new_req(cfg, &c, "X-API-Key", KEY_DELTA);
    unsigned long before = hx_auth_test_compare_count();
    const hx_cfg_auth_key *k = hx_auth_identify(r, &why);
    assert_non_null(k);
    assert_int_equal(why, HX_AUTH_OK);
    assert_string_equal(hx_auth_key_name(r), "delta");
    assert_ptr_equal(hx_auth_key(r), k);
    /* second call: remembered, no comparisons */
    unsigned long mid = hx_auth_test_compare_count();
    assert_ptr_equal(hx_auth_identify(r, NULL), k);
    assert_int_equal(hx_auth_test_compare_count(), mid);
    assert_int_equal(mid - before, N_KEYS);
    hx_req_unref(r);
    cap_free(&c);

    r = new_req(cfg, &c, NULL, NULL);
    assert_null(hx_auth_identify(r, &why));
    assert_int_equal(why, HX_AUTH_MISSING);
    hx_req_unref(r);
    cap_free(&c);
    r = new_req(cfg, &c, "X-API-Key", KEY_WRONG);
    assert_null(hx_auth_identify(r, &why));
    assert_int_equal(why, HX_AUTH_INVALID);
    hx_req_unref(r);
    cap_free(&c);
}

/* Whatever key is presented (first, last, none matching), every configured
 * digest is compared: an early exit would make this fail. */
static void test_compares_every_key(void **state)
{
    (void)state;
    const char *keys[] = {KEY_ALPHA, KEY_EPS, KEY_BETA, KEY_WRONG, "x"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        hx_test_capture c;
        hx_req *r = new_req(cfg, &c, "X-API-Key", keys[i]);
        unsigned long before = hx_auth_test_compare_count();
        hx_auth_identify(r, NULL);
        assert_int_equal(hx_auth_test_compare_count() - before, N_KEYS);
        hx_req_unref(r);
        cap_free(&c);
    }
}

static void test_models(void **state)
{
    (void)state;
    const hx_cfg_auth_key *alpha = &cfg->auth.keys[0], *beta = &cfg->auth.keys[1];
    assert_true(hx_auth_model_allowed(NULL, "anything"));
    assert_true(hx_auth_model_allowed(alpha, "anything"));
    assert_true(hx_auth_model_allowed(beta, "gpt-4o"));
    assert_true(hx_auth_model_allowed(beta, "llama3"));
    assert_false(hx_auth_model_allowed(beta, "gpt-4o-mini"));
    assert_false(hx_auth_model_allowed(beta, "GPT-4O"));
    assert_false(hx_auth_model_allowed(beta, ""));
    assert_false(hx_auth_model_allowed(beta, NULL));

    hx_test_capture c;
    hx_req *r = new_req(cfg, &c, "Authorization", "Bearer " KEY_BETA);
    assert_non_null(hx_auth_identify(r, NULL));
    hx_auth_deny_model(r, "gpt-4o-mini");
    assert_int_equal(c.status, 403);
    assert_non_null(strstr(cap_text(&c), "gpt-4o-mini"));
    assert_non_null(strstr(cap_text(&c), "\"permission_error\""));
    assert_no_key_text(cap_text(&c));
    hx_req_unref(r);
    cap_free(&c);
    char *log = captured_log();
    assert_non_null(strstr(log, "\"reason\":\"forbidden_model\""));
    assert_non_null(strstr(log, "\"key_name\":\"beta\""));
    assert_non_null(strstr(log, "\"model\":\"gpt-4o-mini\""));
    assert_no_key_text(log);
}

/* Metrics check on config c with one header; returns the denial status or
 * 0 when allowed. */
static int metrics_status_from(hx_config *c, const char *peer, const char *hname, const char *hvalue)
{
    hx_test_capture cp;
    hx_req *r = new_req(c, &cp, hname, hvalue);
    if (peer)
        snprintf(r->peer_ip, sizeof r->peer_ip, "%s", peer);
    int st = 0;
    if (!hx_auth_metrics_allowed(r)) {
        hx_auth_deny_metrics(r);
        st = cp.status;
        if (st == 401)
            assert_non_null(hx_headers_get(&cp.headers, "WWW-Authenticate"));
        assert_no_key_text(cap_text(&cp));
    }
    hx_req_unref(r);
    cap_free(&cp);
    return st;
}

static int metrics_status(hx_config *c, const char *hname, const char *hvalue)
{
    return metrics_status_from(c, NULL, hname, hvalue);
}

static void test_metrics(void **state)
{
    (void)state;
    assert_int_equal(metrics_status(cfg, "X-API-Key", KEY_ALPHA), 0);
    assert_int_equal(metrics_status(cfg, "X-API-Key", KEY_GAMMA), 403);
    assert_int_equal(metrics_status(cfg, NULL, NULL), 401);
    assert_int_equal(metrics_status(cfg, "X-API-Key", KEY_WRONG), 401);
    char *log = captured_log();
    assert_non_null(strstr(log, "\"reason\":\"metrics_forbidden\""));
    assert_non_null(strstr(log, "\"key_name\":\"gamma\""));
    assert_no_key_text(log);

    hx_config *open_metrics = load_keys(false, true);
    assert_int_equal(metrics_status(open_metrics, NULL, NULL), 0);
    hx_config_unref(open_metrics);
    /* Auth off: this machine only (secure defaults), unless opted in. */
    hx_config *no_auth = load_keys(true, false);
    assert_int_equal(metrics_status(no_auth, NULL, NULL), 403); /* peer 198.51.100.7 */
    assert_int_equal(metrics_status_from(no_auth, "127.0.0.1", NULL, NULL), 0);
    assert_int_equal(metrics_status_from(no_auth, "::1", NULL, NULL), 0);
    assert_int_equal(metrics_status_from(no_auth, "10.1.2.3", NULL, NULL), 403);
    assert_non_null(strstr(captured_log(), "\"reason\":\"metrics_not_loopback\""));
    hx_config_unref(no_auth);
    hx_config *opted_in = load("server:\n  allow_unauthenticated: true\n");
    assert_int_equal(metrics_status(opted_in, NULL, NULL), 0);
    hx_config_unref(opted_in);
}

/* A reload: the new config's keys apply to its requests, the old digests
 * are not reused, and configs outliving the cache slots are rebuilt. */
static void test_reload_and_cache_slots(void **state)
{
    (void)state;
    hx_config *a = load("server:\n  middleware: [auth]\nauth:\n  enabled: true\n  keys:\n"
                        "    - {name: one, key: first-key}\n");
    hx_test_capture c;
    hx_req *r = new_req(a, &c, "X-API-Key", "first-key");
    assert_non_null(hx_auth_identify(r, NULL));
    hx_req_unref(r);
    cap_free(&c);
    hx_config_unref(a); /* only the cache holds it now */

    hx_config *b = load("server:\n  middleware: [auth]\nauth:\n  enabled: true\n  keys:\n"
                        "    - {name: one, key: second-key}\n");
    r = new_req(b, &c, "X-API-Key", "first-key");
    assert_null(hx_auth_identify(r, NULL));
    hx_req_unref(r);
    cap_free(&c);
    r = new_req(b, &c, "X-API-Key", "second-key");
    assert_non_null(hx_auth_identify(r, NULL));
    hx_req_unref(r);
    cap_free(&c);

    /* more live configs than cache slots: each still answers right */
    hx_config *many[7];
    for (size_t i = 0; i < 7; i++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml,
                 "server:\n  middleware: [auth]\nauth:\n  enabled: true\n  keys:\n"
                 "    - {name: k%zu, key: key-number-%zu}\n", i, i);
        many[i] = load(yaml);
    }
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < 7; i++) {
            char key[32];
            snprintf(key, sizeof key, "key-number-%zu", i);
            r = new_req(many[i], &c, "X-API-Key", key);
            assert_non_null(hx_auth_identify(r, NULL));
            hx_req_unref(r);
            cap_free(&c);
            r = new_req(many[i], &c, "X-API-Key", "key-number-9");
            assert_null(hx_auth_identify(r, NULL));
            hx_req_unref(r);
            cap_free(&c);
        }
    }
    /* the cache holds a reference while it keeps a config's digests */
    int held = atomic_load(&many[6]->refs);
    assert_int_equal(held, 2);
    hx_auth_cache_flush();
    assert_int_equal(atomic_load(&many[6]->refs), 1);
    for (size_t i = 0; i < 7; i++)
        hx_config_unref(many[i]);
    hx_config_unref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_key_both_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_sha256_form, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identify_why_and_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compares_every_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_models, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_and_cache_slots, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
