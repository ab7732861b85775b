/* Fuzz the host emitter's frame parser: every split of the input must parse the same way (the
 * same messages, the same verdict) as the input fed in one piece. */
#include <stdlib.h>
#include <string.h>

#include "emitter/emitter_frame.h"

typedef struct {
    uint64_t n, bytes, hash;
} seen;

static void on_msg(void *ud, const uint8_t *msg, size_t len)
{
    seen *s = ud;
    s->n++;
    s->bytes += len;
    for (size_t i = 0; i < len; i++) {
        s->hash = s->hash * 131 + msg[i];
    }
}

static int run(const uint8_t *data, size_t size, size_t split, seen *s)
{
    cp2p__emitter_parser p;
    const char *why = NULL;
    int rc;
    cp2p__emitter_parser_init(&p, 64, 4096);
    rc = cp2p__emitter_parser_feed(&p, data, split, on_msg, s, &why);
    if (rc == 0) {
        rc = cp2p__emitter_parser_feed(&p, data + split, size - split, on_msg, s, &why);
    }
    if (rc != 0 && why == NULL) {
        abort();
    }
    cp2p__emitter_parser_fini(&p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    seen whole = {0}, parts = {0};
    int a = run(data, size, size, &whole);
    int b = run(data, size, size / 2, &parts);
    if (a != b || whole.n != parts.n || whole.bytes != parts.bytes || whole.hash != parts.hash) {
        abort();
    }
    return 0;
}
