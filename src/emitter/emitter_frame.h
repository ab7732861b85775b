/* The host emitter's wire frame (see cp2p/emitter.h): uvarint count, then count x (uvarint
 * length, bytes). An incremental parser, fed bytes as they arrive, that checks each count and
 * length against its limits before buffering anything and delivers each message through a
 * callback. Pure (no I/O); fuzzed by tests/fuzz/fuzz_emitter_frame.c. */
#ifndef CP2P_EMITTER_EMITTER_FRAME_H
#define CP2P_EMITTER_EMITTER_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/buf.h>
#include <cp2p/codec.h>

typedef void (*cp2p__emitter_msg_fn)(void *ud, const uint8_t *msg, size_t len);

typedef struct cp2p__emitter_parser {
    int st;
    uint8_t vb[CP2P_UVARINT_MAX]; /* uvarint bytes so far */
    size_t vlen;
    uint64_t left;                /* messages left in the current frame */
    size_t need;                  /* body length of the current message */
    cp2p_buf body;                /* the part of the body received so far (split reads only) */
    uint64_t max_msgs;            /* messages in one frame (1..) */
    uint64_t max_bytes;           /* bytes in one message */
    uint64_t frames, msgs;        /* complete frames and messages parsed */
} cp2p__emitter_parser;

void cp2p__emitter_parser_init(cp2p__emitter_parser *p, uint64_t max_msgs, uint64_t max_bytes);
void cp2p__emitter_parser_fini(cp2p__emitter_parser *p);
/* Parse data[0..n); cb gets each complete message (borrowed for the call). Returns 0, or
 * CP2P_EPROTO (non-minimal or over-long uvarint, empty frame) / CP2P_ELIMIT (a count or length
 * over the limits) / CP2P_ENOMEM, with *why set; the parser is then unusable (reset the
 * stream). */
CP2P_NODISCARD int cp2p__emitter_parser_feed(cp2p__emitter_parser *p, const uint8_t *data,
                                             size_t n, cp2p__emitter_msg_fn cb, void *ud,
                                             const char **why);
/* True in the middle of a frame (a stream ending now is truncated). */
bool cp2p__emitter_parser_mid(const cp2p__emitter_parser *p);

#endif
