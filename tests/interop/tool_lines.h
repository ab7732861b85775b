/* The interop tools' stdin: bytes split into command lines, queued until the tool is ready
 * for the next one. Lines longer than TOOL_LINE_MAX are cut; past TOOL_LINES_MAX queued lines
 * new ones are dropped (a test driver never sends that many ahead). */
#ifndef CP2P_TESTS_INTEROP_TOOL_LINES_H
#define CP2P_TESTS_INTEROP_TOOL_LINES_H

#include <stdlib.h>
#include <string.h>

#include <uv.h>

#define TOOL_LINE_MAX 65536
#define TOOL_LINES_MAX 256

typedef struct {
    char line[TOOL_LINE_MAX];
    size_t len;
    char *queued[TOOL_LINES_MAX];
    size_t n;
} tool_lines;

static inline void tool_lines_feed(tool_lines *t, const char *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (data[i] != '\n') {
            if (t->len < sizeof(t->line) - 1) {
                t->line[t->len++] = data[i];
            }
            continue;
        }
        t->line[t->len] = 0;
        t->len = 0;
        if (t->n < TOOL_LINES_MAX) {
            t->queued[t->n++] = strdup(t->line);
        }
    }
}

/* The oldest queued line (the caller frees it), or NULL. */
static inline char *tool_lines_pop(tool_lines *t)
{
    if (t->n == 0) {
        return NULL;
    }
    char *l = t->queued[0];
    memmove(t->queued, t->queued + 1, --t->n * sizeof(char *));
    return l;
}

static inline void tool_on_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    static char buf[4096];
    (void)h;
    (void)s;
    *b = uv_buf_init(buf, sizeof(buf));
}

#endif
