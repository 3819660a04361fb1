/* The TLS context: what every server session of one config shares. */
#include "tls/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/x509.h>

#include "obs/log.h"
#include "tls/tls_int.h"
#include "util/alloc.h"
#include "util/fdread.h"

/* Modern defaults: TLS 1.2 and 1.3 only, AEAD ciphers, forward-secret
 * key exchange (no RSA key transport, no CBC, no SHA-1 signatures); the
 * server's cipher order wins. */
#define HX_TLS_DEFAULT_PRIORITY                                                                             \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305:" \
    "-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-SIGN-RSA-SHA1:-SIGN-ECDSA-SHA1:%SERVER_PRECEDENCE"
/* Appended to any priority: min_version holds whatever the string says. */
#define HX_TLS_NO_OLD ":-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1:-VERS-DTLS-ALL"
#define HX_TLS_NO_12 ":-VERS-TLS1.2"
#define HX_TLS_PRIORITY_MAX 2048

typedef enum { CLIENT_NONE, CLIENT_OPTIONAL, CLIENT_REQUIRE } client_mode;

/* What a file looked like when the context read it. */
typedef struct {
    char *path;
    bool present;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} file_stamp;

struct hx_tls_ctx {
    atomic_int refs;
    gnutls_certificate_credentials_t creds;
    gnutls_priority_t prio;
    gnutls_datum_t alpn[2];
    unsigned n_alpn;
    bool tickets;
    unsigned char ticket_key[HX_TLS_TICKET_KEY_LEN];
    client_mode client;
    file_stamp *files;
    size_t n_files;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- the process ticket key ---- */

/* Without ticket_key_file every context of this process shares one random
 * key, so a reload does not invalidate the tickets clients hold. */
static pthread_mutex_t key_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char process_key[HX_TLS_TICKET_KEY_LEN];
static bool process_key_set;

static int process_ticket_key(unsigned char out[HX_TLS_TICKET_KEY_LEN])
{
    int rc = 0;
    pthread_mutex_lock(&key_lock);
    if (!process_key_set) {
        gnutls_datum_t k = {NULL, 0};
        rc = gnutls_session_ticket_key_generate(&k);
        if (rc == 0 && k.size == HX_TLS_TICKET_KEY_LEN) {
            memcpy(process_key, k.data, HX_TLS_TICKET_KEY_LEN);
            process_key_set = true;
        } else if (rc == 0) {
            rc = GNUTLS_E_INTERNAL_ERROR;
        }
        if (k.data) {
            gnutls_memset(k.data, 0, k.size);
            gnutls_free(k.data);
        }
    }
    if (rc == 0)
        memcpy(out, process_key, HX_TLS_TICKET_KEY_LEN);
    pthread_mutex_unlock(&key_lock);
    return rc;
}

/* Exactly HX_TLS_TICKET_KEY_LEN bytes, never more read. */
static int read_ticket_key(const char *path, unsigned char out[HX_TLS_TICKET_KEY_LEN], char *err,
                           size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not hang us */
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_err(err, errlen, "server.tls.ticket_key_file: cannot read %s: %s", path,
                fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    unsigned char tmp[HX_TLS_TICKET_KEY_LEN + 1];
    size_t got = hx_read_upto(fd, tmp, sizeof tmp);
    close(fd);
    int rc = 0;
    if (got != HX_TLS_TICKET_KEY_LEN) {
        set_err(err, errlen, "server.tls.ticket_key_file: %s must hold exactly %d bytes", path,
                HX_TLS_TICKET_KEY_LEN);
        rc = -1;
    } else {
        memcpy(out, tmp, HX_TLS_TICKET_KEY_LEN);
    }
    gnutls_memset(tmp, 0, sizeof tmp);
    return rc;
}

/* ---- the files it was built from ---- */

static void stamp_take(file_stamp *f)
{
    struct stat st;
    f->present = stat(f->path, &st) == 0;
    if (!f->present)
        return;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->size = st.st_size;
    f->mtime = st.st_mtim;
}

static int stamp_add(hx_tls_ctx *c, const char *path)
{
    if (*path == '\0')
        return 0;
    file_stamp *f = &c->files[c->n_files];
    f->path = hx_strdup(path);
    if (f->path == NULL)
        return -1;
    c->n_files++;
    stamp_take(f);
    return 0;
}

/* Taken before loading: a file replaced while it is read shows as changed. */
static int stamps_take(hx_tls_ctx *c, const hx_cfg_tls *t)
{
    c->files = hx_calloc(2 * t->n_certificates + 4, sizeof *c->files);
    if (c->files == NULL)
        return -1;
    if (stamp_add(c, t->cert_file) || stamp_add(c, t->key_file))
        return -1;
    for (size_t i = 0; i < t->n_certificates; i++)
        if (stamp_add(c, t->certificates[i].cert_file) || stamp_add(c, t->certificates[i].key_file))
            return -1;
    if (strcmp(t->client_auth, "none") != 0 && stamp_add(c, t->client_ca_file))
        return -1;
    if (t->session_tickets && stamp_add(c, t->ticket_key_file))
        return -1;
    return 0;
}

bool hx_tls_ctx_files_changed(const hx_tls_ctx *c)
{
    for (size_t i = 0; i < c->n_files; i++) {
        const file_stamp *was = &c->files[i];
        file_stamp now = {.path = was->path};
        stamp_take(&now);
        if (now.present != was->present)
            return true;
        if (now.present && (now.dev != was->dev || now.ino != was->ino || now.size != was->size ||
                            now.mtime.tv_sec != was->mtime.tv_sec || now.mtime.tv_nsec != was->mtime.tv_nsec))
            return true;
    }
    return false;
}

/* ---- building ---- */

static int add_cert(hx_tls_ctx *c, const char *at, const char *cert, const char *key, char *err,
                    size_t errlen)
{
    int rc = gnutls_certificate_set_x509_key_file2(c->creds, cert, key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0) {
        set_err(err, errlen, "%s: cannot load %s with key %s: %s", at, cert, key, gnutls_strerror(rc));
        return -1;
    }
    return 0;
}

static int load_certs(hx_tls_ctx *c, const hx_cfg_tls *t, char *err, size_t errlen)
{
    size_t loaded = 0;
    if (*t->cert_file) {
        if (add_cert(c, "server.tls", t->cert_file, t->key_file, err, errlen) != 0)
            return -1;
        loaded++;
    }
    for (size_t i = 0; i < t->n_certificates; i++) {
        char at[64];
        snprintf(at, sizeof at, "server.tls.certificates[%zu]", i);
        if (add_cert(c, at, t->certificates[i].cert_file, t->certificates[i].key_file, err, errlen) != 0)
            return -1;
        loaded++;
    }
    if (loaded == 0) {
        set_err(err, errlen, "server.tls: no certificate (set cert_file and key_file or certificates)");
        return -1;
    }
    return 0;
}

static int load_priority(hx_tls_ctx *c, const hx_cfg_tls *t, char *err, size_t errlen)
{
    char p[HX_TLS_PRIORITY_MAX];
    int n = snprintf(p, sizeof p, "%s%s%s", *t->priority ? t->priority : HX_TLS_DEFAULT_PRIORITY,
                     HX_TLS_NO_OLD, strcmp(t->min_version, "1.3") == 0 ? HX_TLS_NO_12 : "");
    if (n < 0 || (size_t)n >= sizeof p) {
        set_err(err, errlen, "server.tls.priority: longer than %d characters", HX_TLS_PRIORITY_MAX - 64);
        return -1;
    }
    const char *pos = NULL;
    int rc = gnutls_priority_init(&c->prio, p, &pos);
    if (rc < 0) {
        c->prio = NULL;
        set_err(err, errlen, "server.tls.priority: %s at \"%.32s\"", gnutls_strerror(rc), pos ? pos : "");
        return -1;
    }
    return 0;
}

int hx__tls_verify_client(gnutls_session_t s)
{
    unsigned n = 0;
    if (gnutls_certificate_get_peers(s, &n) == NULL || n == 0)
        return 0; /* none sent: GNUTLS_CERT_REQUIRE already refused that */
    /* Signed by client_ca_file, in its dates, and meant for a client. */
    gnutls_typed_vdata_st purpose = {GNUTLS_DT_KEY_PURPOSE_OID, (unsigned char *)(uintptr_t)GNUTLS_KP_TLS_WWW_CLIENT,
                                     0};
    unsigned status = 0;
    if (gnutls_certificate_verify_peers(s, &purpose, 1, &status) != 0 || status != 0)
        return -1;
    return 0;
}

static int verify_client(gnutls_session_t s)
{
    return hx__tls_verify_client(s) == 0 ? 0 : GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
}

static int load_client_ca(hx_tls_ctx *c, const hx_cfg_tls *t, char *err, size_t errlen)
{
    if (strcmp(t->client_auth, "none") == 0)
        return 0;
    c->client = strcmp(t->client_auth, "require") == 0 ? CLIENT_REQUIRE : CLIENT_OPTIONAL;
    int rc = gnutls_certificate_set_x509_trust_file(c->creds, t->client_ca_file, GNUTLS_X509_FMT_PEM);
    gnutls_certificate_set_verify_function(c->creds, verify_client);
    if (rc <= 0) {
        set_err(err, errlen, "server.tls.client_ca_file: no CA certificate loaded from %s%s%s", t->client_ca_file,
                rc < 0 ? ": " : "", rc < 0 ? gnutls_strerror(rc) : "");
        return -1;
    }
    return 0;
}

static void set_alpn(hx_tls_ctx *c, const hx_cfg_tls *t)
{
    for (size_t i = 0; i < t->alpn.n && c->n_alpn < 2; i++) {
        /* Static strings: the config may be freed before the context. */
        const char *p = strcmp(t->alpn.items[i], "h2") == 0   ? "h2"
                        : strcmp(t->alpn.items[i], "h3") == 0 ? "h3"
                                                              : "http/1.1";
        c->alpn[c->n_alpn++] = (gnutls_datum_t){(unsigned char *)(uintptr_t)p, (unsigned)strlen(p)};
    }
}

hx_tls_ctx *hx_tls_ctx_new(const hx_cfg_tls *t, char *err, size_t errlen)
{
    hx_tls_ctx *c = hx_calloc(1, sizeof *c);
    if (c == NULL) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&c->refs, 1);
    int rc = gnutls_certificate_allocate_credentials(&c->creds);
    if (rc < 0) {
        c->creds = NULL;
        set_err(err, errlen, "server.tls: %s", gnutls_strerror(rc));
        goto fail;
    }
    if (stamps_take(c, t) != 0) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    hx_tls_warn_key_modes(t);
    if (load_certs(c, t, err, errlen) != 0 || load_priority(c, t, err, errlen) != 0 ||
        load_client_ca(c, t, err, errlen) != 0)
        goto fail;
    set_alpn(c, t);
    c->tickets = t->session_tickets;
    if (c->tickets) {
        if (*t->ticket_key_file) {
            if (read_ticket_key(t->ticket_key_file, c->ticket_key, err, errlen) != 0)
                goto fail;
        } else if ((rc = process_ticket_key(c->ticket_key)) != 0) {
            set_err(err, errlen, "server.tls: cannot make a session ticket key: %s", gnutls_strerror(rc));
            goto fail;
        }
    }
    return c;
fail:
    hx_tls_ctx_unref(c);
    return NULL;
}

hx_tls_ctx *hx_tls_ctx_ref(hx_tls_ctx *c)
{
    if (c)
        atomic_fetch_add(&c->refs, 1);
    return c;
}

void hx_tls_ctx_unref(hx_tls_ctx *c)
{
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    if (c->prio)
        gnutls_priority_deinit(c->prio);
    if (c->creds)
        gnutls_certificate_free_credentials(c->creds);
    gnutls_memset(c->ticket_key, 0, sizeof c->ticket_key);
    for (size_t i = 0; i < c->n_files; i++)
        hx_free(c->files[i].path);
    hx_free(c->files);
    hx_free(c);
}

int hx_tls_ctx_session_setup(hx_tls_ctx *c, gnutls_session_t s)
{
    int rc = gnutls_priority_set(s, c->prio);
    if (rc == 0)
        rc = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, c->creds);
    if (rc == 0 && c->n_alpn)
        rc = gnutls_alpn_set_protocols(s, c->alpn, c->n_alpn, GNUTLS_ALPN_SERVER_PRECEDENCE);
    if (rc == 0 && c->tickets) {
        /* GnuTLS derives the ticket encryption keys from this master key
         * and the time (lib/stek.c), so they rotate by themselves:
         * instances sharing the file (and a clock) accept each other's
         * tickets. */
        const gnutls_datum_t k = {c->ticket_key, HX_TLS_TICKET_KEY_LEN};
        rc = gnutls_session_ticket_enable_server(s, &k);
    }
    if (rc == 0 && c->client != CLIENT_NONE) {
        /* Verified during the handshake (verify_client, set on the
         * credentials): an untrusted certificate fails it. */
        gnutls_certificate_server_set_request(s, c->client == CLIENT_REQUIRE ? GNUTLS_CERT_REQUIRE
                                                                             : GNUTLS_CERT_REQUEST);
    }
    return rc;
}

/* ---- the published context ---- */

static pthread_mutex_t pub_lock = PTHREAD_MUTEX_INITIALIZER;
static hx_tls_ctx *published;

void hx_tls_ctx_publish(hx_tls_ctx *c)
{
    hx_tls_ctx_ref(c);
    pthread_mutex_lock(&pub_lock);
    hx_tls_ctx *old = published;
    published = c;
    pthread_mutex_unlock(&pub_lock);
    hx_tls_ctx_unref(old);
}

hx_tls_ctx *hx_tls_ctx_current(void)
{
    pthread_mutex_lock(&pub_lock);
    hx_tls_ctx *c = hx_tls_ctx_ref(published);
    pthread_mutex_unlock(&pub_lock);
    return c;
}

/* ---- key file modes ---- */

static int warn_mode(const char *setting, const char *path)
{
    struct stat st;
    if (*path == '\0' || stat(path, &st) != 0 || !(st.st_mode & (S_IRGRP | S_IROTH)))
        return 0;
    HX_LOG_WARN("a TLS secret file is readable by other users: chmod 600 it",
                HX_F_STR("event", "security"), HX_F_STR("setting", setting), HX_F_STR("file", path),
                HX_F_STR("mode", (st.st_mode & S_IROTH) ? "world-readable" : "group-readable"));
    return 1;
}

int hx_tls_warn_key_modes(const hx_cfg_tls *t)
{
    int n = warn_mode("server.tls.key_file", t->key_file);
    for (size_t i = 0; i < t->n_certificates; i++)
        n += warn_mode("server.tls.certificates[].key_file", t->certificates[i].key_file);
    if (t->session_tickets)
        n += warn_mode("server.tls.ticket_key_file", t->ticket_key_file);
    return n;
}
