/* The state file: section registry, atomic save, restore, periodic timer. */
#include "state/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "obs/log.h"
#include "util/alloc.h"

/* Temp files are "<file>.tmp-<pid>-<seq>": same directory as the real file,
 * so the rename is atomic (same filesystem). */
#define TMP_PREFIX HX_SNAPSHOT_FILE ".tmp-"
#define CORRUPT_PREFIX HX_SNAPSHOT_FILE ".corrupt-"

typedef struct {
    char *name;
    hx_snapshot_save_fn save;
    hx_snapshot_restore_fn restore;
    void *ud;
} section;

/* The registry and every file operation are serialised by one mutex: saves
 * are rare, and two saves must not race on the same rename. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static section sections[HX_SNAPSHOT_MAX_SECTIONS];
static size_t nsections;
static unsigned tmp_seq;

static struct {
    uv_timer_t timer;
    bool started;
    bool timer_open;
    char *dir;
} periodic;

/* ---- registry --------------------------------------------------------- */

static section *find_locked(const char *name)
{
    for (size_t i = 0; i < nsections; i++)
        if (strcmp(sections[i].name, name) == 0)
            return &sections[i];
    return NULL;
}

int hx_snapshot_register(const char *name, hx_snapshot_save_fn save, hx_snapshot_restore_fn restore,
                         void *ud)
{
    if (name == NULL || name[0] == '\0' || save == NULL || restore == NULL ||
        strcmp(name, "version") == 0 || strcmp(name, "saved_at_unix_ms") == 0)
        return -1;
    int rc = -1;
    pthread_mutex_lock(&mu);
    section *s = find_locked(name);
    if (s == NULL && nsections < HX_SNAPSHOT_MAX_SECTIONS) {
        char *copy = hx_strdup(name);
        if (copy != NULL) {
            s = &sections[nsections++];
            s->name = copy;
        }
    }
    if (s != NULL) {
        s->save = save;
        s->restore = restore;
        s->ud = ud;
        rc = 0;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

void hx_snapshot_unregister(const char *name)
{
    pthread_mutex_lock(&mu);
    section *s = name ? find_locked(name) : NULL;
    if (s != NULL) {
        hx_free(s->name);
        *s = sections[--nsections];
    }
    pthread_mutex_unlock(&mu);
}

/* ---- file helpers ----------------------------------------------------- */

static int path_join(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* mkdir -p; directories we create get 0755 whatever the umask. */
static int mkdir_p(const char *dir)
{
    char p[PATH_MAX];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof p)
        return -1;
    memcpy(p, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) == 0) {
            if (chmod(p, 0755) != 0)
                return -1;
        } else if (errno != EEXIST) {
            return -1;
        }
        p[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Makes the rename itself durable. */
static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- save ------------------------------------------------------------- */

/* The whole document, or NULL when a section fails (the save is then
 * abandoned rather than written without that section). */
static json_object *build_locked(void)
{
    json_object *root = json_object_new_object();
    if (root == NULL)
        return NULL;
    if (json_object_object_add(root, "version", json_object_new_int(HX_SNAPSHOT_VERSION)) != 0 ||
        json_object_object_add(root, "saved_at_unix_ms", json_object_new_int64(unix_ms())) != 0)
        goto fail;
    for (size_t i = 0; i < nsections; i++) {
        json_object *obj = json_object_new_object();
        if (obj == NULL)
            goto fail;
        if (sections[i].save(obj, sections[i].ud) != 0) {
            HX_LOG_WARN("state section failed to save", HX_F_STR("event", "state_save"),
                        HX_F_STR("section", sections[i].name));
            json_object_put(obj);
            goto fail;
        }
        if (json_object_object_add(root, sections[i].name, obj) != 0) {
            json_object_put(obj);
            goto fail;
        }
    }
    return root;
fail:
    json_object_put(root);
    return NULL;
}

/* Creates a fresh temp file (O_EXCL: never reuses one). */
static int open_tmp_locked(const char *dir, char *path, size_t size)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        char name[96];
        snprintf(name, sizeof name, TMP_PREFIX "%ld-%u", (long)getpid(), tmp_seq++);
        if (path_join(path, size, dir, name) != 0) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, HX_SNAPSHOT_MODE);
        if (fd >= 0) {
            /* The file holds client IPs and key names: owner only, whatever
             * the umask (a permissive one must not widen it). */
            if (fchmod(fd, HX_SNAPSHOT_MODE) != 0) {
                close(fd);
                unlink(path);
                return -1;
            }
            return fd;
        }
        if (errno != EEXIST)
            return -1;
    }
    return -1;
}

static int write_file_locked(const char *dir, const char *text, const char **what)
{
    char tmp[PATH_MAX], final[PATH_MAX];
    *what = "path";
    if (path_join(final, sizeof final, dir, HX_SNAPSHOT_FILE) != 0)
        return -1;
    *what = "create temp file";
    int fd = open_tmp_locked(dir, tmp, sizeof tmp);
    if (fd < 0 && errno == ENOENT) {
        /* The directory is made (0755) only when it is missing, not on
         * every periodic save. */
        *what = "mkdir";
        if (mkdir_p(dir) != 0)
            return -1;
        *what = "create temp file";
        fd = open_tmp_locked(dir, tmp, sizeof tmp);
    }
    if (fd < 0)
        return -1;
    *what = "write";
    if (write_all(fd, text, strlen(text)) != 0 || write_all(fd, "\n", 1) != 0)
        goto fail;
    *what = "fsync";
    if (fsync(fd) != 0)
        goto fail;
    *what = "close";
    int rc = close(fd);
    fd = -1;
    if (rc != 0)
        goto fail;
    *what = "rename";
    if (rename(tmp, final) != 0)
        goto fail;
    *what = "fsync directory";
    return fsync_dir(dir);
fail:;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = saved;
    return -1;
}

int hx_snapshot_save(const char *dir)
{
    if (dir == NULL || dir[0] == '\0')
        return -1;
    pthread_mutex_lock(&mu);
    int rc = -1;
    const char *what = "build";
    int err = ENOMEM;
    json_object *root = build_locked();
    const char *text = root ? json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN) : NULL;
    if (text != NULL) {
        rc = write_file_locked(dir, text, &what);
        err = errno;
    }
    pthread_mutex_unlock(&mu);
    json_object_put(root);
    if (rc != 0)
        HX_LOG_WARN("cannot save state file", HX_F_STR("event", "state_save"), HX_F_STR("dir", dir),
                    HX_F_STR("step", what), HX_F_STR("error", strerror(err)));
    return rc;
}

/* ---- restore ---------------------------------------------------------- */

/* Temp files of a save that never reached its rename (kill -9, power cut).
 * One process owns a state directory, so every temp file is stale here. */
static void remove_stale_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0)
            continue;
        char p[PATH_MAX];
        if (path_join(p, sizeof p, dir, e->d_name) == 0 && unlink(p) == 0)
            HX_LOG_INFO("removed stale state temp file", HX_F_STR("path", p));
    }
    closedir(d);
}

/* Reads the file into a NUL-terminated heap buffer. Returns 0, 1 when it
 * does not exist, 2 when too large, -1 on error. */
static int read_file(const char *path, char **out, size_t *outlen)
{
    /* O_NONBLOCK: a FIFO in the file's place must not hang start-up; it
     * fails the S_ISREG check below and is kept aside as corrupt. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT ? 1 : -1;
    struct stat st;
    char *buf = NULL;
    int rc = -1;
    if (fstat(fd, &st) != 0)
        goto done;
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > HX_SNAPSHOT_MAX_BYTES) {
        rc = 2;
        goto done;
    }
    size_t cap = (size_t)st.st_size, len = 0;
    buf = hx_malloc(cap + 1);
    if (buf == NULL)
        goto done;
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto done;
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    buf = NULL;
    rc = 0;
done:
    hx_free(buf);
    close(fd);
    return rc;
}

/* The parsed document when it is one complete JSON object of our version
 * whose registered sections are objects; NULL otherwise. */
static json_object *parse_state(const char *text, size_t len)
{
    if (strlen(text) != len) /* an embedded NUL: not ours */
        return NULL;
    json_tokener *tok = json_tokener_new();
    if (tok == NULL)
        return NULL;
    json_object *root = json_tokener_parse_ex(tok, text, (int)len);
    bool ok = root != NULL && json_tokener_get_error(tok) == json_tokener_success;
    for (size_t i = ok ? json_tokener_get_parse_end(tok) : len; i < len; i++)
        ok = ok && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t');
    json_tokener_free(tok);
    json_object *v;
    ok = ok && json_object_is_type(root, json_type_object) &&
         json_object_object_get_ex(root, "version", &v) && json_object_is_type(v, json_type_int) &&
         json_object_get_int64(v) == HX_SNAPSHOT_VERSION &&
         json_object_object_get_ex(root, "saved_at_unix_ms", &v) && json_object_is_type(v, json_type_int);
    for (size_t i = 0; ok && i < nsections; i++)
        if (json_object_object_get_ex(root, sections[i].name, &v))
            ok = json_object_is_type(v, json_type_object);
    if (!ok) {
        json_object_put(root);
        return NULL;
    }
    return root;
}

/* Keeps a corrupt file for inspection under a name nothing overwrites. */
static void keep_aside(const char *dir, const char *path)
{
    long now = (long)time(NULL);
    for (int i = 0; i < 100; i++) {
        char name[96], dst[PATH_MAX];
        if (i == 0)
            snprintf(name, sizeof name, CORRUPT_PREFIX "%ld", now);
        else
            snprintf(name, sizeof name, CORRUPT_PREFIX "%ld-%d", now, i);
        struct stat st;
        if (path_join(dst, sizeof dst, dir, name) != 0)
            break;
        if (lstat(dst, &st) == 0)
            continue;
        if (rename(path, dst) == 0) {
            HX_LOG_WARN("corrupt state file kept aside", HX_F_STR("event", "state_restore"),
                        HX_F_STR("path", dst));
            fsync_dir(dir);
            return;
        }
        break;
    }
    HX_LOG_WARN("cannot keep the corrupt state file aside", HX_F_STR("event", "state_restore"),
                HX_F_STR("path", path), HX_F_STR("error", strerror(errno)));
}

static void restore_sections_locked(json_object *root)
{
    for (size_t i = 0; i < nsections; i++) {
        json_object *v;
        if (!json_object_object_get_ex(root, sections[i].name, &v))
            continue;
        if (sections[i].restore(v, sections[i].ud) != 0)
            HX_LOG_WARN("state section not restored, starting it from configuration",
                        HX_F_STR("event", "state_restore"), HX_F_STR("section", sections[i].name));
    }
}

int hx_snapshot_restore(const char *dir)
{
    char path[PATH_MAX];
    if (dir == NULL || dir[0] == '\0' || path_join(path, sizeof path, dir, HX_SNAPSHOT_FILE) != 0)
        return -1;
    pthread_mutex_lock(&mu);
    remove_stale_tmp(dir);
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, &text, &len);
    json_object *root = NULL;
    if (rc == 1) {
        HX_LOG_WARN("no state file, starting from configuration", HX_F_STR("event", "state_restore"),
                    HX_F_STR("path", path));
    } else if (rc < 0) {
        HX_LOG_WARN("cannot read state file, starting from configuration", HX_F_STR("event", "state_restore"),
                    HX_F_STR("path", path), HX_F_STR("error", strerror(errno)));
    } else {
        root = rc == 0 ? parse_state(text, len) : NULL;
        if (root == NULL) {
            HX_LOG_WARN("corrupt state file, starting from configuration", HX_F_STR("event", "state_restore"),
                        HX_F_STR("path", path));
            keep_aside(dir, path);
            rc = 1;
        } else {
            restore_sections_locked(root);
            HX_LOG_INFO("state restored", HX_F_STR("event", "state_restore"), HX_F_STR("path", path));
        }
    }
    pthread_mutex_unlock(&mu);
    json_object_put(root);
    hx_free(text);
    return rc;
}

/* ---- periodic save ---------------------------------------------------- */

/* The save runs synchronously on the main thread's loop: that loop serves
 * no requests (workers have their own loops), the file is small, and
 * staying on one thread keeps stop simple (no work item to wait for). */
static void on_timer(uv_timer_t *t)
{
    (void)t;
    hx_snapshot_save(periodic.dir);
}

int hx_snapshot_start(uv_loop_t *loop, const char *dir, int64_t interval_ms)
{
    if (dir == NULL || dir[0] == '\0')
        return 0;
    if (periodic.started || loop == NULL)
        return -1;
    periodic.dir = hx_strdup(dir);
    if (periodic.dir == NULL)
        return -1;
    if (mkdir_p(dir) != 0)
        HX_LOG_WARN("cannot create state directory", HX_F_STR("event", "state_save"), HX_F_STR("dir", dir),
                    HX_F_STR("error", strerror(errno)));
    if (interval_ms > 0) {
        if (uv_timer_init(loop, &periodic.timer) != 0)
            goto fail;
        periodic.timer_open = true;
        if (uv_timer_start(&periodic.timer, on_timer, (uint64_t)interval_ms, (uint64_t)interval_ms) != 0)
            goto fail;
        /* The timer alone must not keep the main loop running. */
        uv_unref((uv_handle_t *)&periodic.timer);
    }
    periodic.started = true;
    return 0;
fail:
    if (periodic.timer_open)
        uv_close((uv_handle_t *)&periodic.timer, NULL);
    periodic.timer_open = false;
    hx_free(periodic.dir);
    periodic.dir = NULL;
    return -1;
}

void hx_snapshot_stop(void)
{
    if (!periodic.started)
        return;
    if (periodic.timer_open) {
        uv_timer_stop(&periodic.timer);
        uv_close((uv_handle_t *)&periodic.timer, NULL);
        periodic.timer_open = false;
    }
    hx_snapshot_save(periodic.dir);
    hx_free(periodic.dir);
    periodic.dir = NULL;
    periodic.started = false;
}
