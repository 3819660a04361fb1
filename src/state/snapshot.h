/* The state file: what must survive a restart (queue sizing and counters,
 * rate-limit buckets, provider breaker and health state), written as one
 * JSON object to <dir>/hapax-state.json:
 *
 *   {"version":1,"saved_at_unix_ms":1764277419123,"queue":{...},"ratelimit":{...}}
 *
 * Each module registers a named section with a save and a restore callback.
 * A save never leaves a half-written file: it writes a temp file in the same
 * directory (mode 0600: it holds client IPs and key names), fsyncs it,
 * renames it over the state file and fsyncs the directory. A kill -9 at any point leaves either the old or the
 * new file; a stray temp file is removed by the next hx_snapshot_restore.
 *
 * Threads: register/unregister/save/restore may be called from any thread
 * (one mutex); start/stop belong to the thread that runs `loop`. The save
 * callbacks run on the saving thread and must lock their own state. */
#ifndef HX_STATE_SNAPSHOT_H
#define HX_STATE_SNAPSHOT_H

#include <stdint.h>

#include <json-c/json.h>
#include <uv.h>

#define HX_SNAPSHOT_FILE "hapax-state.json"
#define HX_SNAPSHOT_VERSION 1
#define HX_SNAPSHOT_MAX_SECTIONS 16
/* The state file and its temp file: owner read/write only. */
#define HX_SNAPSHOT_MODE 0600
/* A state file larger than this is treated as corrupt. */
#define HX_SNAPSHOT_MAX_BYTES (64u * 1024u * 1024u)

/* Fills `out` (an empty JSON object) with the section's state. Returns 0,
 * or -1 to abandon this save (the previous file stays in place). */
typedef int (*hx_snapshot_save_fn)(json_object *out, void *ud);
/* Applies a saved section (`in` is a JSON object). Returns 0, or -1 when
 * the section is unusable (a warning is logged; the other sections are
 * still restored). */
typedef int (*hx_snapshot_restore_fn)(json_object *in, void *ud);

/* Registers section `name` (copied; not "version" or "saved_at_unix_ms").
 * Registering a name again replaces its callbacks. Returns 0, or -1 (bad
 * name, table full, out of memory). */
int hx_snapshot_register(const char *name, hx_snapshot_save_fn save, hx_snapshot_restore_fn restore,
                         void *ud);
/* Removes a section (no-op when absent). */
void hx_snapshot_unregister(const char *name);

/* Reads <dir>/hapax-state.json and calls each registered section's restore
 * with its object (absent sections are skipped). Removes stale temp files
 * left by an interrupted save first. Returns:
 *    0  state restored;
 *    1  starting from the configuration: the file is missing, or it is
 *       corrupt (unparsable, wrong shape or version) and was renamed to
 *       hapax-state.json.corrupt-<unix time> (a warning is logged);
 *   -1  the file could not be read (warning logged; start from config). */
int hx_snapshot_restore(const char *dir);

/* Writes the state file now (creates `dir` with 0755 when missing).
 * Synchronous: returns 0, or -1 with the reason logged. */
int hx_snapshot_save(const char *dir);

/* Saves every `interval_ms` (<= 0: only the final save at stop) with a
 * timer on `loop`, which must not be a worker loop. `dir` NULL or ""
 * disables persistence (returns 0, does nothing). Returns 0 or -1. */
int hx_snapshot_start(uv_loop_t *loop, const char *dir, int64_t interval_ms);
/* Stops the timer and does a final save. Call on the loop's thread while
 * the loop still exists; the loop must run once more (as for any closed
 * handle) before uv_loop_close. No-op when not started. */
void hx_snapshot_stop(void);

#endif
