/* The host emitter's frame parser (see emitter_frame.h). */
#include "emitter/emitter_frame.h"

#include <cp2p/common.h>

enum { IN_COUNT, IN_LEN, IN_BODY };

void cp2p__emitter_parser_init(cp2p__emitter_parser *p, uint64_t max_msgs, uint64_t max_bytes)
{
    *p = (cp2p__emitter_parser){.st = IN_COUNT, .max_msgs = max_msgs, .max_bytes = max_bytes};
    cp2p_buf_init(&p->body, 0);
}

void cp2p__emitter_parser_fini(cp2p__emitter_parser *p)
{
    cp2p_buf_fini(&p->body);
}

bool cp2p__emitter_parser_mid(const cp2p__emitter_parser *p)
{
    return p->st != IN_COUNT || p->vlen > 0;
}

static void deliver(cp2p__emitter_parser *p, const uint8_t *msg, size_t len,
                    cp2p__emitter_msg_fn cb, void *ud)
{
    p->msgs++;
    cb(ud, msg, len);
    if (--p->left == 0) {
        p->frames++;
        p->st = IN_COUNT;
    } else {
        p->st = IN_LEN;
    }
}

int cp2p__emitter_parser_feed(cp2p__emitter_parser *p, const uint8_t *data, size_t n,
                              cp2p__emitter_msg_fn cb, void *ud, const char **why)
{
    size_t i = 0;
    while (i < n) {
        if (p->st == IN_BODY) {
            size_t want = p->need - p->body.len;
            size_t k = n - i < want ? n - i : want;
            if (p->body.len == 0 && k == p->need) {
                deliver(p, data + i, k, cb, ud); /* whole message in this read: no copy */
            } else {
                int rc = cp2p_buf_append(&p->body, data + i, k);
                if (rc != 0) {
                    *why = "no memory for a message body";
                    return rc;
                }
                if (p->body.len == p->need) {
                    deliver(p, p->body.ptr, p->body.len, cb, ud);
                    cp2p_buf_fini(&p->body); /* keep no large buffer between messages */
                    cp2p_buf_init(&p->body, 0);
                }
            }
            i += k;
            continue;
        }
        /* A uvarint, byte by byte: count or length. */
        uint8_t b = data[i++];
        uint64_t v;
        p->vb[p->vlen++] = b;
        if (b & 0x80) {
            if (p->vlen == CP2P_UVARINT_MAX) {
                *why = "uvarint over 9 bytes";
                return CP2P_EPROTO;
            }
            continue;
        }
        ptrdiff_t u = cp2p_uvarint_decode(p->vb, p->vlen, &v);
        p->vlen = 0;
        if (u <= 0) {
            *why = "non-minimal uvarint";
            return CP2P_EPROTO;
        }
        if (p->st == IN_COUNT) {
            if (v == 0) {
                *why = "empty frame";
                return CP2P_EPROTO;
            }
            if (v > p->max_msgs) {
                *why = "too many messages in a frame";
                return CP2P_ELIMIT;
            }
            p->left = v;
            p->st = IN_LEN;
            continue;
        }
        if (v > p->max_bytes) { /* before buffering any of it */
            *why = "message over the size limit";
            return CP2P_ELIMIT;
        }
        p->need = (size_t)v;
        cp2p_buf_fini(&p->body);
        cp2p_buf_init(&p->body, p->need);
        p->st = IN_BODY;
        if (v == 0) {
            deliver(p, NULL, 0, cb, ud);
        }
    }
    return 0;
}
