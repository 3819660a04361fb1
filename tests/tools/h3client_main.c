/* h3client (test-only HTTP/3 client, see h3client.c): command line, JSON
 * output, statistics and the session file. */
#include "h3client.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <unistd.h>

options opt;
statistics stats;

static void usage(FILE *f)
{
    fputs("usage: h3client [options] HOST PORT URL...\n"
          "  -m METHOD          request method (default GET; POST when -d is given)\n"
          "  -H 'name: value'   request header (repeatable; names lowercased)\n"
          "  -d FILE            request body from FILE (adds content-length)\n"
          "  -n N               total requests (URLs cycled; default: number of URLs)\n"
          "  -c CONNS           connections (default 1); each runs its share of requests\n"
          "  -s STREAMS         concurrent streams per connection (default 1)\n"
          "  --session FILE     TLS ticket + server transport parameters: resumed (0-RTT)\n"
          "                     when FILE exists, rewritten with the newest ticket\n"
          "  --no-early         with --session: resume but send nothing in 0-RTT\n"
          "  --timeout SECONDS  overall deadline (default 20; exit 3 when reached)\n"
          "  --window BYTES     the client's receive window per stream (default 4 MiB; >= 1024)\n"
          "  --duration SECONDS start no request after it (-n is then the upper bound)\n"
          "  --quiet            no per-response output\n"
          "  --bench            benchmark summary (requests, rps, latency percentiles)\n"
          "URLs look like https://localhost:PORT/path; HOST PORT is where to connect.\n"
          "Exit: 0 every request answered, 1 errors, 2 usage, 3 deadline.\n"
          "The server certificate is NOT verified (tests only).\n",
          f);
}

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p == NULL) {
        fputs("h3client: out of memory\n", stderr);
        exit(1);
    }
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int buf_add(buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (q == NULL)
            return -1;
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

int is_numeric_host(const char *h)
{
    unsigned char a[16];
    return inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1;
}

/* Length of the valid UTF-8 sequence at s, 0 if invalid. */
static size_t utf8_len(const uint8_t *s, size_t n)
{
    size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
    if (s[0] < 0xc2 || s[0] > 0xf4 || n < len)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) || (s[0] == 0xf0 && s[1] < 0x90) ||
        (s[0] == 0xf4 && s[1] > 0x8f))
        return 0; /* overlong, surrogate, beyond U+10FFFF */
    return len;
}

/* A JSON string; invalid UTF-8 bytes become U+FFFD. */
static void json_str(FILE *f, const void *p, size_t n)
{
    const uint8_t *s = p;
    putc('"', f);
    for (size_t i = 0; i < n;) {
        uint8_t b = s[i];
        if (b >= 0x80) {
            size_t len = utf8_len(s + i, n - i);
            if (len == 0) {
                fputs("\xef\xbf\xbd", f);
                i++;
            } else {
                fwrite(s + i, 1, len, f);
                i += len;
            }
            continue;
        }
        if (b == '"' || b == '\\')
            fprintf(f, "\\%c", b);
        else if (b == '\n')
            fputs("\\n", f);
        else if (b == '\r')
            fputs("\\r", f);
        else if (b == '\t')
            fputs("\\t", f);
        else if (b < 0x20 || b == 0x7f)
            fprintf(f, "\\u%04x", b);
        else
            putc(b, f);
        i++;
    }
    putc('"', f);
}

void record_response(int k, int64_t id, int status, const hdr *h, size_t nh, const buf *body, size_t body_len,
                     uint64_t ns)
{
    stats.responses++;
    if (status >= 200 && status < 300)
        stats.ok2xx++;
    if (stats.nlat < (size_t)opt.requests)
        stats.lat_ms[stats.nlat++] = (double)ns / 1e6;
    if (opt.quiet)
        return;
    printf("{\"stream\":%" PRId64 ",\"conn\":%d,\"status\":%d,\"headers\":{", id, k, status);
    for (size_t i = 0; i < nh; i++) {
        if (i)
            putchar(',');
        json_str(stdout, h[i].name, strlen(h[i].name));
        putchar(':');
        json_str(stdout, h[i].value, strlen(h[i].value));
    }
    fputs("},\"body\":", stdout);
    json_str(stdout, body->p ? body->p : "", body->len);
    printf(",\"body_len\":%zu}\n", body_len);
    fflush(stdout);
}

/* ---- session file ---- */

static uint64_t *tp_field(ngtcp2_transport_params *tp, int i)
{
    switch (i) {
    case 0: return &tp->initial_max_streams_bidi;
    case 1: return &tp->initial_max_streams_uni;
    case 2: return &tp->initial_max_stream_data_bidi_local;
    case 3: return &tp->initial_max_stream_data_bidi_remote;
    case 4: return &tp->initial_max_stream_data_uni;
    case 5: return &tp->initial_max_data;
    case 6: return &tp->active_connection_id_limit;
    case 7: return &tp->max_datagram_frame_size;
    case 8: return &tp->max_idle_timeout;
    default: return &tp->max_udp_payload_size;
    }
}

void session_tp_apply(const session_data *s, ngtcp2_transport_params *tp)
{
    for (int i = 0; i < TP_COUNT - 1; i++)
        *tp_field(tp, i) = s->tp[i];
    tp->disable_active_migration = s->tp[TP_COUNT - 1] != 0;
}

int session_write(const char *path, const ngtcp2_transport_params *tp, const uint8_t *ticket, size_t len)
{
    char tmp[4096];
    ngtcp2_transport_params copy = *tp;
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fputs("h3client-session 1\ntp", f);
    for (int i = 0; i < TP_COUNT - 1; i++)
        fprintf(f, " %" PRIu64, *tp_field(&copy, i));
    fprintf(f, " %d\nticket ", copy.disable_active_migration ? 1 : 0);
    for (size_t i = 0; i < len; i++)
        fprintf(f, "%02x", ticket[i]);
    fputc('\n', f);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int hexval(int ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

int session_read(const char *path, session_data *s)
{
    char text[65536];
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return errno == ENOENT ? 0 : -1;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *p = text, *prefix = "h3client-session 1\ntp ";
    if (strncmp(p, prefix, strlen(prefix)) != 0)
        return -1;
    p += strlen(prefix);
    for (int i = 0; i < TP_COUNT; i++) {
        char *end;
        errno = 0;
        s->tp[i] = strtoull(p, &end, 10);
        if (end == p || errno)
            return -1;
        p = end;
    }
    if (strncmp(p, "\nticket ", 8) != 0)
        return -1;
    p += 8;
    size_t hexlen = strcspn(p, "\n");
    if (hexlen == 0 || hexlen % 2)
        return -1;
    s->ticket = malloc(hexlen / 2);
    if (s->ticket == NULL)
        return -1;
    for (size_t i = 0; i < hexlen / 2; i++) {
        int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(s->ticket);
            s->ticket = NULL;
            return -1;
        }
        s->ticket[i] = (uint8_t)(hi << 4 | lo);
    }
    s->ticket_len = hexlen / 2;
    return 1;
}

/* ---- command line ---- */

static int parse_url(const char *s, url *u)
{
    if (strncmp(s, "https://", 8) != 0)
        return -1;
    s += 8;
    size_t alen = strcspn(s, "/?#");
    if (alen == 0)
        return -1;
    u->authority = xstrndup(s, alen);
    u->path = xstrndup(s[alen] == '/' ? s + alen : "/", s[alen] == '/' ? strlen(s + alen) : 1);
    if (u->authority[0] == '[') {
        size_t e = strcspn(u->authority, "]");
        u->host = xstrndup(u->authority + 1, e > 0 ? e - 1 : 0);
    } else {
        u->host = xstrndup(u->authority, strcspn(u->authority, ":"));
    }
    return 0;
}

static int parse_header(const char *s)
{
    const char *colon = strchr(s, ':');
    if (colon == NULL || colon == s || opt.nheaders == MAX_HEADERS)
        return -1;
    hdr *h = &opt.headers[opt.nheaders++];
    h->name = xstrndup(s, (size_t)(colon - s));
    for (char *q = h->name; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    colon++;
    while (*colon == ' ' || *colon == '\t')
        colon++;
    size_t vlen = strlen(colon);
    while (vlen && (colon[vlen - 1] == ' ' || colon[vlen - 1] == '\t'))
        vlen--;
    h->value = xstrndup(colon, vlen);
    if (strcmp(h->name, "content-length") == 0)
        opt.has_clen = 1;
    return 0;
}

static int read_body(const char *path)
{
    FILE *f = fopen(path, "rb");
    buf b = {0};
    char chunk[65536];
    size_t n;
    if (f == NULL) {
        fprintf(stderr, "h3client: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (buf_add(&b, chunk, n) != 0)
            break;
    int bad = ferror(f) || n > 0;
    fclose(f);
    if (bad || buf_add(&b, "", 1) != 0) {
        fprintf(stderr, "h3client: cannot read %s\n", path);
        return -1;
    }
    opt.body = (uint8_t *)b.p;
    opt.body_len = b.len - 1;
    return 0;
}

static long num_arg(const char *s, long min)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return (end == s || *end || errno || v < min) ? -1 : v;
}

static int parse_args(int argc, char **argv)
{
    enum { O_SESSION = 256, O_NO_EARLY, O_TIMEOUT, O_QUIET, O_BENCH, O_HELP, O_WINDOW, O_DURATION };
    static const struct option longs[] = {
        {"session", required_argument, NULL, O_SESSION}, {"no-early", no_argument, NULL, O_NO_EARLY},
        {"timeout", required_argument, NULL, O_TIMEOUT}, {"quiet", no_argument, NULL, O_QUIET},
        {"bench", no_argument, NULL, O_BENCH},           {"help", no_argument, NULL, O_HELP},
        {"window", required_argument, NULL, O_WINDOW},   {"duration", required_argument, NULL, O_DURATION},
        {NULL, 0, NULL, 0},
    };
    int ch;
    char *end;
    opt.conns = opt.streams = 1;
    opt.timeout = 20;
    while ((ch = getopt_long(argc, argv, "m:H:d:n:c:s:", longs, NULL)) != -1) {
        switch (ch) {
        case 'm': opt.method = optarg; break;
        case 'H':
            if (parse_header(optarg) != 0) {
                fprintf(stderr, "h3client: bad header '%s'\n", optarg);
                return -1;
            }
            break;
        case 'd':
            if (read_body(optarg) != 0)
                return -1;
            break;
        case 'n': opt.requests = num_arg(optarg, 1); if (opt.requests < 0) return -1; break;
        case 'c': opt.conns = (int)num_arg(optarg, 1); if (opt.conns < 0 || opt.conns > 1000) return -1; break;
        case 's': opt.streams = (int)num_arg(optarg, 1); if (opt.streams < 0 || opt.streams > 1000) return -1; break;
        case O_SESSION: opt.session_file = optarg; break;
        case O_NO_EARLY: opt.no_early = 1; break;
        case O_TIMEOUT:
            opt.timeout = strtod(optarg, &end);
            if (end == optarg || *end || !(opt.timeout > 0))
                return -1;
            break;
        case O_WINDOW:
            opt.window = num_arg(optarg, 1024);
            if (opt.window < 0)
                return -1;
            break;
        case O_DURATION:
            opt.duration = strtod(optarg, &end);
            if (end == optarg || *end || !(opt.duration > 0))
                return -1;
            break;
        case O_QUIET: opt.quiet = 1; break;
        case O_BENCH: opt.bench = 1; break;
        case O_HELP: usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (argc - optind < 3)
        return -1;
    opt.host = argv[optind];
    opt.port = argv[optind + 1];
    opt.nurls = (size_t)(argc - optind - 2);
    opt.urls = calloc(opt.nurls, sizeof *opt.urls);
    if (opt.urls == NULL)
        return -1;
    for (size_t i = 0; i < opt.nurls; i++)
        if (parse_url(argv[optind + 2 + (int)i], &opt.urls[i]) != 0) {
            fprintf(stderr, "h3client: bad URL '%s' (https://host[:port]/path)\n", argv[optind + 2 + (int)i]);
            return -1;
        }
    if (opt.method == NULL)
        opt.method = opt.body ? "POST" : "GET";
    if (opt.requests == 0)
        opt.requests = (long)opt.nurls;
    if (opt.conns > opt.requests)
        opt.conns = (int)opt.requests;
    return 0;
}

/* ---- summary ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)n + 0.999999);
    return v[i == 0 ? 0 : i - 1];
}

static void summary(void)
{
    double secs = (double)(stats.t_end - stats.t_start) / 1e9, hs[1000];
    size_t nhs = 0;
    for (int k = 0; k < opt.conns; k++)
        if (stats.hs_ms[k] >= 0)
            hs[nhs++] = stats.hs_ms[k];
    qsort(stats.lat_ms, stats.nlat, sizeof(double), cmp_double);
    qsort(hs, nhs, sizeof(double), cmp_double);
    const char *early = stats.early_attempted == 0 ? "none" : stats.early_rejected ? "rejected" : "accepted";
    printf("{\"summary\":true,\"early_data\":\"%s\",\"handshake_ms\":", early);
    if (stats.hs_ms[0] >= 0)
        printf("%.3f", stats.hs_ms[0]);
    else
        fputs("null", stdout);
    printf(",\"resumed\":%s,\"requests\":%ld,\"responses\":%ld,\"ok2xx\":%ld,\"errors\":%ld,\"seconds\":%.3f,"
           "\"rps\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"handshake_ms_p50\":%.3f,\"first_response_ms\":%.3f,"
           "\"peer_cert_sha256\":\"%s\"}\n",
           stats.resumed == opt.conns ? "true" : "false", opt.requests, stats.responses, stats.ok2xx, stats.errors,
           secs, secs > 0 ? (double)stats.responses / secs : 0.0, pct(stats.lat_ms, stats.nlat, 0.50),
           pct(stats.lat_ms, stats.nlat, 0.99), pct(hs, nhs, 0.50),
           stats.t_first ? (double)(stats.t_first - stats.t_start) / 1e6 : 0.0, stats.peer_sha256);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) != 0) {
        fputs("usage: h3client [options] HOST PORT URL... (h3client --help lists the options)\n", stderr);
        return 2;
    }
    stats.lat_ms = calloc((size_t)opt.requests, sizeof(double));
    stats.hs_ms = calloc((size_t)opt.conns, sizeof(double));
    if (stats.lat_ms == NULL || stats.hs_ms == NULL)
        return 1;
    for (int k = 0; k < opt.conns; k++)
        stats.hs_ms[k] = -1;
    int rc = run_connections();
    if (rc < 0)
        return 1;
    if (stats.t_end == 0)
        stats.t_end = now_ns();
    summary();
    if (rc == 3) {
        fprintf(stderr, "h3client: deadline reached (%.1fs): %ld of %ld requests answered\n", opt.timeout,
                stats.responses, opt.requests);
        return 3;
    }
    if (stats.errors || stats.conn_errors || stats.responses < opt.requests) {
        fprintf(stderr, "h3client: %ld of %ld requests answered, %ld errors\n", stats.responses, opt.requests,
                stats.errors);
        return 1;
    }
    return 0;
}
