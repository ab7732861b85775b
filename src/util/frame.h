/* The one reader of uvarint-length-prefixed frames, the framing of every libp2p protocol that
 * sends protobufs over a stream (request-response in length-prefixed mode, Kademlia, gossipsub,
 * identify): one multiformats unsigned varint (at most 9 bytes, minimal encoding) giving the body
 * length, then the body. It is rust-libp2p's length-delimited codec and go-libp2p's msgio varint
 * reader. A pure decoder over bytes (STYLE.md 6.1: no libuv, no clock, no state; the caller keeps
 * the bytes), fuzzed by tests/fuzz/fuzz_frame.c. */
#ifndef CP2P_UTIL_FRAME_H
#define CP2P_UTIL_FRAME_H

#include <stddef.h>

#include <cp2p/common.h>

/* Decode one frame from in[0..len). Returns the bytes the frame uses (prefix + body, >= 1) with
 * *body pointing into `in`; 0 if more input is needed; CP2P_EPROTO (bad varint: non-minimal or
 * over 9 bytes) or CP2P_ELIMIT (declared length > max, found before the body arrives), with
 * *why set. Bytes after the frame are not looked at. Any thread. */
CP2P_NODISCARD ptrdiff_t cp2p__frame_decode(const uint8_t *in, size_t len, size_t max,
                                            cp2p_slice *body, const char **why);

#endif
