/* llm.cache.type: file. One file per entry in llm.cache.dir, named by
 * its key; an index in memory (sizes, recency) keeps the count within
 * max_size and the bytes within HX_CACHE_FILE_BYTES_MAX, and is rebuilt
 * from the directory at start (oldest files first). Reads and writes run
 * on libuv's thread pool, never on a worker's loop: a write goes to a
 * temporary file, is fsynced and renamed over the entry, so a reader sees
 * a whole entry or none. Until its file is written, an entry is served
 * from a copy the index holds, so it is found as soon as it is put. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "cache/cache_int.h"
#include "obs/log.h"
#include "util/alloc.h"

#define PATH_MAX_LEN 4096
#define TMP_PREFIX ".tmp."
/* The largest file an entry makes: envelope, content type, body. */
#define FILE_MAX (HX_CACHE_ENTRY_MAX + 16 + HX_CACHE_CTYPE_MAX)

typedef struct {
    hx_cache_backend base;
    pthread_mutex_t mu;
    hx_cache_lru *lru;
    char *dir;
    atomic_uint tmp_seq;
} file_cache;

typedef struct {
    uv_work_t w;
    file_cache *f;
    bool write;
    char key[HX_CACHE_KEY_HEX + 1];
    void *blob;
    size_t len;
    const void *pending;                /* write: the index's copy, released once written */
    bool expired;                       /* read: the file held an expired entry (removed) */
    char (*gone)[HX_CACHE_KEY_HEX + 1]; /* write: evicted entries whose files go */
    size_t ngone, capgone;
    hx_cache_blob_cb cb;
    void *ud;
} job;

static bool is_key_name(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    return n == HX_CACHE_KEY_HEX;
}

static void path_of(const file_cache *f, const char *name, char out[PATH_MAX_LEN])
{
    snprintf(out, PATH_MAX_LEN, "%s/%s", f->dir, name);
}

/* The whole file, bounded; NULL when missing, too large or unreadable. */
static void *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) != 0 || st.st_size <= 0 || (size_t)st.st_size > FILE_MAX)
        goto fail;
    size_t n = (size_t)st.st_size, got = 0;
    if ((buf = hx_malloc(n)) == NULL)
        goto fail;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto fail;
        got += (size_t)r;
    }
    close(fd);
    *len = n;
    return buf;
fail:
    hx_free(buf);
    close(fd);
    return NULL;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Temporary file, fsync, rename: the entry appears whole or not at all. */
static void write_entry(file_cache *f, const char *key, const void *blob, size_t len)
{
    char tmp[PATH_MAX_LEN], dst[PATH_MAX_LEN], name[HX_CACHE_KEY_HEX + 32];
    snprintf(name, sizeof name, TMP_PREFIX "%s.%u", key, atomic_fetch_add(&f->tmp_seq, 1));
    path_of(f, name, tmp);
    path_of(f, key, dst);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    int rc = write_all(fd, blob, len);
    rc = rc || fsync(fd) != 0;
    rc = close(fd) != 0 || rc;
    if (rc || rename(tmp, dst) != 0)
        unlink(tmp);
}

static void work(uv_work_t *w)
{
    job *j = w->data;
    char path[PATH_MAX_LEN];
    if (j->write) {
        write_entry(j->f, j->key, j->blob, j->len);
        for (size_t i = 0; i < j->ngone; i++) {
            path_of(j->f, j->gone[i], path);
            unlink(path);
        }
        return;
    }
    path_of(j->f, j->key, path);
    j->blob = read_file(path, &j->len);
    hx_cache_entry e;
    char ctype[HX_CACHE_CTYPE_MAX + 1];
    if (j->blob && hx_cache_decode(j->blob, j->len, hx_cache_clock(), &e, ctype) != 0) {
        unlink(path); /* expired (or not an entry): a miss from now on */
        j->expired = true;
        hx_free(j->blob);
        j->blob = NULL;
    }
}

static void after(uv_work_t *w, int status)
{
    (void)status;
    job *j = w->data;
    if (j->write || j->expired) {
        pthread_mutex_lock(&j->f->mu);
        if (j->write)
            hx_cache_lru_release(j->f->lru, j->key, j->pending);
        else
            hx_cache_lru_remove(j->f->lru, j->key);
        pthread_mutex_unlock(&j->f->mu);
    }
    if (!j->write)
        j->cb(j->ud, j->blob, j->len);
    hx_free(j->blob);
    hx_free(j->gone);
    hx_free(j);
}

/* On the loop's thread pool; inline without a loop (tests, start). */
static void run(void *loop, job *j)
{
    j->w.data = j;
    if (loop == NULL || uv_queue_work(loop, &j->w, work, after) != 0) {
        work(&j->w);
        after(&j->w, 0);
    }
}

static int file_get(hx_cache_backend *b, void *loop, const char *key, hx_cache_blob_cb cb, void *ud)
{
    file_cache *f = (file_cache *)b;
    size_t n = 0;
    pthread_mutex_lock(&f->mu);
    const void *d = is_key_name(key) ? hx_cache_lru_find(f->lru, key, &n) : NULL;
    bool pending = d && hx_cache_lru_has_data(f->lru, key);
    void *copy = pending ? hx_malloc(n) : NULL;
    if (copy)
        memcpy(copy, d, n);
    pthread_mutex_unlock(&f->mu);
    if (pending && copy == NULL)
        return -1;
    if (d == NULL || copy) { /* absent, or not on disk yet: answered now */
        cb(ud, copy, n);
        hx_free(copy);
        return 0;
    }
    job *j = hx_calloc(1, sizeof *j);
    if (j == NULL)
        return -1;
    *j = (job){.f = f, .cb = cb, .ud = ud};
    memcpy(j->key, key, HX_CACHE_KEY_HEX + 1);
    run(loop, j);
    return 0;
}

static void note_gone(void *ud, const char *key, void *data)
{
    (void)data;
    job *j = ud;
    if (j->ngone == j->capgone) {
        size_t cap = j->capgone ? j->capgone * 2 : 4;
        void *g = hx_realloc(j->gone, cap * sizeof *j->gone);
        if (g == NULL)
            return; /* its file stays until a restart's scan */
        j->gone = g;
        j->capgone = cap;
    }
    memcpy(j->gone[j->ngone++], key, HX_CACHE_KEY_HEX + 1);
}

static void file_put(hx_cache_backend *b, void *loop, const char *key, void *blob, size_t len, int64_t ttl_ms)
{
    (void)ttl_ms; /* in the envelope */
    file_cache *f = (file_cache *)b;
    job *j = is_key_name(key) ? hx_calloc(1, sizeof *j) : NULL;
    if (j == NULL) {
        hx_free(blob);
        return;
    }
    *j = (job){.f = f, .write = true, .blob = blob, .len = len};
    memcpy(j->key, key, HX_CACHE_KEY_HEX + 1);
    void *copy = hx_malloc(len); /* without it the entry is found once written */
    if (copy)
        memcpy(copy, blob, len);
    j->pending = copy;
    pthread_mutex_lock(&f->mu);
    int rc = hx_cache_lru_put(f->lru, key, copy, len, note_gone, j);
    pthread_mutex_unlock(&f->mu);
    if (rc != 0) {
        hx_free(blob);
        hx_free(j->gone);
        hx_free(j);
        return;
    }
    run(loop, j);
}

static bool file_usage(hx_cache_backend *b, size_t *entries, size_t *bytes)
{
    file_cache *f = (file_cache *)b;
    pthread_mutex_lock(&f->mu);
    hx_cache_lru_usage(f->lru, entries, bytes);
    pthread_mutex_unlock(&f->mu);
    return true;
}

static void file_destroy(hx_cache_backend *b)
{
    file_cache *f = (file_cache *)b;
    hx_cache_lru_free(f->lru);
    pthread_mutex_destroy(&f->mu);
    hx_free(f->dir);
    hx_free(f);
}

static const hx_cache_backend_vt file_vt = {
    .name = "file", .get = file_get, .put = file_put, .usage = file_usage, .destroy = file_destroy};

typedef struct {
    char key[HX_CACHE_KEY_HEX + 1];
    int64_t mtime_ns;
    size_t size;
} found;

static int by_mtime(const void *a, const void *b)
{
    const found *x = a, *y = b;
    return x->mtime_ns < y->mtime_ns ? -1 : x->mtime_ns > y->mtime_ns;
}

static void unlink_evicted(void *ud, const char *key, void *data)
{
    (void)data;
    char path[PATH_MAX_LEN];
    path_of(ud, key, path);
    unlink(path);
}

/* The entries already in dir, oldest first into the index (whatever is
 * past the bounds is removed); leftover temporary files go. */
static int scan(file_cache *f)
{
    DIR *d = opendir(f->dir);
    if (d == NULL)
        return -1;
    found *list = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    char path[PATH_MAX_LEN];
    struct stat st;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        path_of(f, de->d_name, path);
        if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0)
            unlink(path);
        if (!is_key_name(de->d_name) || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            found *g = hx_realloc(list, cap * sizeof *list);
            if (g == NULL) {
                rc = -1;
                break;
            }
            list = g;
        }
        memcpy(list[n].key, de->d_name, HX_CACHE_KEY_HEX + 1);
        list[n].mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        list[n++].size = (size_t)st.st_size;
    }
    closedir(d);
    if (rc == 0 && n)
        qsort(list, n, sizeof *list, by_mtime);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (hx_cache_lru_put(f->lru, list[i].key, NULL, list[i].size, unlink_evicted, f) != 0)
            unlink_evicted(f, list[i].key, NULL); /* larger than the whole bound */
    hx_free(list);
    return rc;
}

hx_cache_backend *hx_cache_file_new(const char *dir, size_t max_entries, size_t max_bytes)
{
    file_cache *f = hx_calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->base.vt = &file_vt;
    pthread_mutex_init(&f->mu, NULL);
    if ((f->dir = hx_strdup(dir)) == NULL || (f->lru = hx_cache_lru_new(max_entries, max_bytes)) == NULL)
        goto fail;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        HX_LOG_ERROR("cannot create llm.cache.dir", HX_F_STR("dir", dir), HX_F_STR("error", strerror(errno)));
        goto fail;
    }
    if (scan(f) != 0) {
        HX_LOG_ERROR("cannot read llm.cache.dir", HX_F_STR("dir", dir), HX_F_STR("error", strerror(errno)));
        goto fail;
    }
    return &f->base;
fail:
    file_destroy(&f->base);
    return NULL;
}
