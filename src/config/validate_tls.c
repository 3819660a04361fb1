/* server.tls validation ("certificate paths must be valid"): every file is
 * read and parsed at start and at each reload, so a missing, unreadable,
 * expired, not yet valid, misordered or mismatched certificate or key is
 * a config error naming the file and the dates, not a failed handshake
 * later. GnuTLS parses (the library src/tls/ serves with). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "config/validate_int.h"
#include "util/alloc.h"
#include "util/fdread.h"

#define TLS_FILE_MAX (1024 * 1024) /* a PEM bundle; real ones are a few KiB */
#define TLS_TICKET_KEY_LEN 64      /* gnutls_session_ticket_key_generate's size */
#define TLS_PATH_MAX 96
#define TLS_DATE_MAX 32
#define TLS_KEYID_MAX 64

/* The whole file, at most TLS_FILE_MAX bytes. 0, or -1 with the error
 * reported at `at`. */
static int read_bounded(hx_vctx *v, const char *at, const char *path, gnutls_datum_t *out)
{
    out->data = NULL;
    out->size = 0;
    /* O_NONBLOCK: a FIFO named by mistake must not hang the start. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        hx__verr(v, at, "cannot read %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > TLS_FILE_MAX) {
        hx__verr(v, at, "%s is %s", path, S_ISREG(st.st_mode) ? "larger than 1 MiB" : "not a regular file");
        close(fd);
        return -1;
    }
    unsigned char *buf = hx_malloc((size_t)st.st_size + 1);
    size_t got = buf ? hx_read_upto(fd, buf, (size_t)st.st_size) : 0;
    close(fd);
    if (buf == NULL) {
        hx__verr(v, at, "out of memory reading %s", path);
        return -1;
    }
    buf[got] = '\0';
    out->data = buf;
    out->size = (unsigned)got;
    return 0;
}

static void datum_free(gnutls_datum_t *d)
{
    if (d->data) {
        memset(d->data, 0, d->size); /* may hold a private key */
        hx_free(d->data);
    }
    d->data = NULL;
}

static const char *fmt_time(time_t t, char out[TLS_DATE_MAX])
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, TLS_DATE_MAX, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(out, TLS_DATE_MAX, "%lld", (long long)t);
    return out;
}

/* Dates of every certificate of the chain: the leaf's matter most, but an
 * expired intermediate fails clients just the same. */
static void check_dates(hx_vctx *v, const char *at, const char *path, gnutls_x509_crt_t *crts, unsigned n)
{
    time_t now = time(NULL);
    char a[TLS_DATE_MAX], b[TLS_DATE_MAX];
    for (unsigned i = 0; i < n; i++) {
        time_t from = gnutls_x509_crt_get_activation_time(crts[i]);
        time_t until = gnutls_x509_crt_get_expiration_time(crts[i]);
        const char *which = i == 0 ? "the certificate" : "a chain certificate";
        if (until != (time_t)-1 && until < now)
            hx__verr(v, at, "%s in %s expired on %s (valid from %s)", which, path, fmt_time(until, a),
                     fmt_time(from, b));
        else if (from != (time_t)-1 && from > now)
            hx__verr(v, at, "%s in %s is not valid before %s (until %s)", which, path, fmt_time(from, a),
                     fmt_time(until, b));
    }
}

/* The certificate's public key id, or 0 bytes. */
static size_t crt_key_id(gnutls_x509_crt_t crt, unsigned char out[TLS_KEYID_MAX])
{
    size_t n = TLS_KEYID_MAX;
    return gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, out, &n) == 0 ? n : 0;
}

static void check_key(hx_vctx *v, const char *at, const char *key_path, const char *cert_path,
                      gnutls_x509_crt_t leaf)
{
    gnutls_datum_t d;
    if (read_bounded(v, at, key_path, &d) != 0)
        return;
    gnutls_x509_privkey_t key = NULL;
    if (gnutls_x509_privkey_init(&key) != 0) {
        hx__verr(v, at, "out of memory reading %s", key_path);
        goto done;
    }
    int rc = gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc == GNUTLS_E_DECRYPTION_FAILED) {
        hx__verr(v, at, "%s is encrypted: give an unencrypted key (chmod 600)", key_path);
        goto done;
    }
    if (rc != 0) {
        hx__verr(v, at, "%s holds no PEM private key (%s)", key_path, gnutls_strerror(rc));
        goto done;
    }
    if (leaf == NULL)
        goto done;
    unsigned char kid[TLS_KEYID_MAX], cid[TLS_KEYID_MAX];
    size_t kn = sizeof kid;
    size_t cn = crt_key_id(leaf, cid);
    if (gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, kid, &kn) != 0 || cn == 0 || kn != cn ||
        memcmp(kid, cid, kn) != 0)
        hx__verr(v, at, "%s does not match the certificate in %s", key_path, cert_path);
done:
    if (key)
        gnutls_x509_privkey_deinit(key);
    datum_free(&d);
}

/* Parses a PEM certificate list; *leaf gets the first one (caller deinits). */
static void check_cert(hx_vctx *v, const char *at, const char *path, gnutls_x509_crt_t *leaf)
{
    *leaf = NULL;
    gnutls_datum_t d;
    if (read_bounded(v, at, path, &d) != 0)
        return;
    gnutls_x509_crt_t *crts = NULL;
    unsigned n = 0;
    int rc = gnutls_x509_crt_list_import2(&crts, &n, &d, GNUTLS_X509_FMT_PEM,
                                          GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED);
    if (rc == GNUTLS_E_CERTIFICATE_LIST_UNSORTED)
        hx__verr(v, at, "the certificates in %s are out of order: the server certificate first, then "
                        "the certificate that signed it, and so on towards the root", path);
    else if (rc < 0 || n == 0)
        hx__verr(v, at, "%s holds no PEM certificate%s%s", path, rc < 0 ? ": " : "",
                 rc < 0 ? gnutls_strerror(rc) : "");
    else
        check_dates(v, at, path, crts, n);
    for (unsigned i = 0; rc >= 0 && i < n; i++) {
        if (i == 0)
            *leaf = crts[0];
        else
            gnutls_x509_crt_deinit(crts[i]);
    }
    gnutls_free(crts);
    datum_free(&d);
}

static void check_pair(hx_vctx *v, const char *at, const char *cert, const char *key)
{
    char pc[TLS_PATH_MAX], pk[TLS_PATH_MAX];
    snprintf(pc, sizeof pc, "%s.cert_file", at);
    snprintf(pk, sizeof pk, "%s.key_file", at);
    if (!*cert && !*key) {
        hx__verr(v, at, "cert_file and key_file are required");
        return;
    }
    if (!*cert || !*key) {
        hx__verr(v, *cert ? pk : pc, "%s is required with %s", *cert ? "key_file" : "cert_file",
                 *cert ? "cert_file" : "key_file");
        return;
    }
    gnutls_x509_crt_t leaf;
    check_cert(v, pc, cert, &leaf);
    check_key(v, pk, key, cert, leaf);
    if (leaf)
        gnutls_x509_crt_deinit(leaf);
}

static void check_ca(hx_vctx *v, const hx_cfg_tls *t)
{
    if (strcmp(t->client_auth, "none") != 0 && !*t->client_ca_file) {
        hx__verr(v, "server.tls.client_auth", "client_auth: %s needs client_ca_file (the CA that signs "
                                              "client certificates)", t->client_auth);
        return;
    }
    if (!*t->client_ca_file)
        return;
    gnutls_datum_t d;
    if (read_bounded(v, "server.tls.client_ca_file", t->client_ca_file, &d) != 0)
        return;
    gnutls_x509_crt_t *crts = NULL;
    unsigned n = 0;
    int rc = gnutls_x509_crt_list_import2(&crts, &n, &d, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || n == 0)
        hx__verr(v, "server.tls.client_ca_file", "%s holds no PEM certificate", t->client_ca_file);
    for (unsigned i = 0; rc >= 0 && i < n; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    datum_free(&d);
}

static void check_ticket_key(hx_vctx *v, const hx_cfg_tls *t)
{
    if (!t->session_tickets || !*t->ticket_key_file)
        return;
    struct stat st;
    if (stat(t->ticket_key_file, &st) != 0 || access(t->ticket_key_file, R_OK) != 0)
        hx__verr(v, "server.tls.ticket_key_file", "cannot read %s: %s", t->ticket_key_file, strerror(errno));
    else if (st.st_size != TLS_TICKET_KEY_LEN)
        hx__verr(v, "server.tls.ticket_key_file",
                 "%s must hold exactly %d bytes (head -c %d /dev/urandom > FILE), not %lld", t->ticket_key_file,
                 TLS_TICKET_KEY_LEN, TLS_TICKET_KEY_LEN, (long long)st.st_size);
}

static void check_priority(hx_vctx *v, const hx_cfg_tls *t)
{
    if (!*t->priority)
        return;
    gnutls_priority_t p = NULL;
    const char *pos = NULL;
    int rc = gnutls_priority_init(&p, t->priority, &pos);
    if (rc < 0)
        hx__verr(v, "server.tls.priority", "not a GnuTLS priority string: %s at \"%.32s\"", gnutls_strerror(rc),
                 pos ? pos : "");
    else
        gnutls_priority_deinit(p);
}

void hx__check_tls(hx_vctx *v)
{
    const hx_config *cfg = hx__vctx_cfg(v);
    const hx_cfg_tls *t = &cfg->server.tls;
    if (!t->enabled)
        return;
    if (!*t->cert_file && !*t->key_file && t->n_certificates == 0)
        hx__verr(v, "server.tls", "no certificate: set cert_file and key_file (or certificates)");
    else if (*t->cert_file || *t->key_file)
        check_pair(v, "server.tls", t->cert_file, t->key_file);
    char at[TLS_PATH_MAX];
    for (size_t i = 0; i < t->n_certificates; i++) {
        snprintf(at, sizeof at, "server.tls.certificates[%zu]", i);
        check_pair(v, at, t->certificates[i].cert_file, t->certificates[i].key_file);
    }
    if (t->alpn.n == 0)
        hx__verr(v, "server.tls.alpn", "at least one protocol (h2, http/1.1)");
    if (t->redirect_http && t->port == cfg->server.port)
        hx__verr(v, "server.tls.redirect_http",
                 "TLS is on server.port itself (port %lld): there is no plain port to redirect from",
                 (long long)t->port);
    check_ca(v, t);
    check_ticket_key(v, t);
    check_priority(v, t);
}
