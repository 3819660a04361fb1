/* Internals shared by the registry (metrics.c) and the text writer
 * (metrics_text.c). Not for other modules: they use obs/metrics.h. */
#ifndef HX_OBS_METRICS_INT_H
#define HX_OBS_METRICS_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "obs/metrics.h"

struct hx_metrics_writer {
    hx_buf *out;
    bool failed;          /* out of memory or out full */
    /* names written in this render, to refuse duplicates */
    char **names;
    size_t nnames;
    size_t capnames;
    const char *fam;      /* current family (an entry of names) or NULL */
    hx_metric_type type;
};

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names (metric false): no
 * colon and no leading "__". */
bool hx__metrics_name_ok(const char *s, bool metric);
bool hx__metrics_ends_with(const char *s, const char *suffix);
/* Copies v into out (size HX_METRICS_MAX_VALUE_LEN + 1): invalid UTF-8
 * bytes become '?', long values are cut at a character boundary. */
void hx__metrics_value_clean(const char *v, char *out);
/* Shortest text that reads back as the same double; NaN, +Inf, -Inf. */
void hx__metrics_fmt_double(double v, char *out, size_t size);

/* Writes `name suffix{names[i]="values[i]",...} value`, values cleaned and
 * escaped. Returns 0, or -1 with the writer marked failed. */
int hx__metrics_emit(hx_metrics_writer *w, const char *name, const char *suffix,
                     const char *const *names, const char *const *values, size_t n,
                     const char *value);
/* Marks the writer failed (out full or no memory); returns -1. */
int hx__metrics_writer_fail(hx_metrics_writer *w);
void hx__metrics_writer_fini(hx_metrics_writer *w);

#endif
