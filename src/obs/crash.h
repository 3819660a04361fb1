/* Fatal signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT): write one JSON
 * line naming the signal and a backtrace to stderr, then die of the same
 * signal (so exit status and core dumps stay what they would have been).
 * Not installed in sanitizer builds, whose own reports are better. */
#ifndef HX_OBS_CRASH_H
#define HX_OBS_CRASH_H

/* Process-wide, once, before threads start. Also sets up the calling
 * thread's alternate signal stack (a stack overflow still reports). */
void hx_crash_install(void);
/* Each other thread: its own alternate signal stack. */
void hx_crash_thread_init(void);

#endif
