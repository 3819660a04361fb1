/* The process collector: the standard process_* metrics of the Prometheus
 * client libraries (same names and HELP texts), read from /proc at render
 * time. A value that cannot be read is left out rather than reported as 0. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "obs/metrics.h"

typedef struct {
    double cpu_seconds;
    double start_time;   /* unix seconds, < 0 when unknown */
    double vsize;        /* bytes */
    double rss;          /* bytes */
} proc_stat;

/* Boot time (unix seconds) from /proc/stat, or -1. */
static double boot_time(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return -1;
    char line[256];
    double bt = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long long v;
        if (sscanf(line, "btime %llu", &v) == 1) {
            bt = (double)v;
            break;
        }
    }
    fclose(f);
    return bt;
}

/* Fields of /proc/self/stat after the command name, which may itself hold
 * spaces and parentheses, so parsing starts after its last ')'. */
static int read_stat(proc_stat *ps)
{
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL)
        return -1;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    /* Field 3 (state) onwards; we need 14 utime, 15 stime, 22 starttime,
     * 23 vsize, 24 rss. */
    unsigned long long v[22] = {0};
    p += 2;
    for (int field = 3; field <= 24; field++) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return -1;
        char *end;
        v[field - 3] = strtoull(p, &end, 10); /* the state letter parses as 0 */
        p = end;
        while (*p && *p != ' ')
            p++;
    }
    double ticks = (double)sysconf(_SC_CLK_TCK);
    double page = (double)sysconf(_SC_PAGESIZE);
    if (ticks <= 0 || page <= 0)
        return -1;
    ps->cpu_seconds = (double)(v[14 - 3] + v[15 - 3]) / ticks;
    double bt = boot_time();
    ps->start_time = bt < 0 ? -1 : bt + (double)v[22 - 3] / ticks;
    ps->vsize = (double)v[23 - 3];
    ps->rss = (double)v[24 - 3] * page;
    return 0;
}

/* Entries of /proc/self/fd, without the one opendir itself uses; -1 when
 * unreadable. */
static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0;
}

static void gauge(hx_metrics_writer *w, const char *name, const char *help, double v)
{
    if (hx_metrics_write_family(w, name, help, HX_METRIC_GAUGE) == 0)
        hx_metrics_write_sample(w, name, NULL, v);
}

void hx_metrics_collect_process(hx_metrics_writer *w, void *ud)
{
    (void)ud;
    proc_stat ps;
    if (read_stat(&ps) == 0) {
        if (hx_metrics_write_family(w, "process_cpu_seconds_total",
                                    "Total user and system CPU time spent in seconds.",
                                    HX_METRIC_COUNTER) == 0)
            hx_metrics_write_sample(w, "process_cpu_seconds_total", NULL, ps.cpu_seconds);
        gauge(w, "process_resident_memory_bytes", "Resident memory size in bytes.", ps.rss);
        gauge(w, "process_virtual_memory_bytes", "Virtual memory size in bytes.", ps.vsize);
        if (ps.start_time >= 0)
            gauge(w, "process_start_time_seconds",
                  "Start time of the process since unix epoch in seconds.", ps.start_time);
    }
    long fds = open_fds();
    if (fds >= 0)
        gauge(w, "process_open_fds", "Number of open file descriptors.", (double)fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        gauge(w, "process_max_fds", "Maximum number of open file descriptors.",
              (double)rl.rlim_cur);
}
