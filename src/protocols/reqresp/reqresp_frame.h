/* The length-prefixed framing of request-response: a pure decoder over bytes (no libuv, no
 * clock), fuzzed by tests/fuzz/fuzz_reqresp_frame.c. */
#ifndef CP2P_PROTOCOLS_REQRESP_FRAME_H
#define CP2P_PROTOCOLS_REQRESP_FRAME_H

#include <stddef.h>

#include <cp2p/common.h>

/* Decode one message framed as uvarint length + body from in[0..len) (sans-I/O: no state, the
 * caller keeps the bytes). Returns the bytes the frame uses (prefix + body, >= 1) with *body
 * pointing into `in`; 0 if more input is needed; CP2P_EPROTO (bad varint: non-minimal or over 9
 * bytes) or CP2P_ELIMIT (declared length > max), with *why set. Bytes after the frame are not
 * looked at. Any thread. */
CP2P_NODISCARD ptrdiff_t cp2p__reqresp_frame_decode(const uint8_t *in, size_t len, size_t max,
                                                    cp2p_slice *body, const char **why);

#endif
