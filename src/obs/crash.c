#include "obs/crash.h"

#include "obs/log.h"
#include "util/alloc.h"

#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define HX_CRASH_SANITIZED 1
#else
#define HX_CRASH_SANITIZED 0
#endif

#define ALT_STACK_SIZE (64 * 1024)

static const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

/* To the log's sink (logging.file or stderr). */
static void put(const char *s)
{
    ssize_t n = write(hx_log_fd(), s, strlen(s));
    (void)n;
}

static const char *signame(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    default: return "signal";
    }
}

/* Only async-signal-safe calls, plus backtrace (preloaded at install so it
 * does not allocate here). */
static void on_fatal(int sig)
{
    hx_log_crash_flush(); /* the lines queued before the crash come first */
    put("{\"level\":\"error\",\"msg\":\"fatal signal, exiting\",\"event\":\"crash\",\"signal\":\"");
    put(signame(sig));
    put("\"}\n");
    void *frames[64];
    int n = backtrace(frames, 64);
    backtrace_symbols_fd(frames, n, hx_log_fd());
    /* Die of the same signal: default action, unblocked (the handler runs
     * with it blocked), raised again. */
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    _exit(128 + sig);
}

void hx_crash_thread_init(void)
{
    if (HX_CRASH_SANITIZED)
        return;
    stack_t ss = {.ss_size = ALT_STACK_SIZE, .ss_flags = 0};
    ss.ss_sp = hx_malloc(ALT_STACK_SIZE); /* lives as long as the thread; not freed on purpose */
    if (ss.ss_sp)
        sigaltstack(&ss, NULL);
}

void hx_crash_install(void)
{
    if (HX_CRASH_SANITIZED)
        return;
    void *warm[1];
    backtrace(warm, 1); /* loads libgcc now, not inside the handler */
    hx_crash_thread_init();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal;
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
        sigaction(fatal[i], &sa, NULL);
}
