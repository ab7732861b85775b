/* Fuzz the channel core's receive path (src/reactor/chan.c): the bytes a peer sends on a
 * channel stream (uvarint-length-prefixed messages) and on the keepalive stream.
 *
 * Input: byte 0 picks the channel's largest message (0..255, or 64 KiB when 255) and its
 * queue capacity (1..4); byte 1 the read size (1..256); the rest is the stream, fed in reads of
 * that size as the binding does, draining the queue whenever reading is allowed again. Checks:
 * every delivered message lies within the limit, errors come with a reason and only as
 * CP2P_ELIMIT/CP2P_EPROTO, the buffered level never passes the buffer's bound, and the same
 * bytes on the keepalive stream never crash the keepalive parser. ASan sees any leak. */
#include <stdlib.h>
#include <string.h>

#include <cp2p/codec.h>

#include "reactor/chan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    size_t max = data[0] == 255 ? 65536 : data[0];
    uint32_t cap = (uint32_t)(data[0] & 3) + 1;
    size_t chunk = (size_t)data[1] + 1;
    data += 2;
    size -= 2;
    cp2p__chan_desc d = {.id = 0x20, .priority = 6, .send_cap = 1, .recv_cap = cap,
                         .recv_buffer = 512, .max_msg = max == 0 ? 1 : max};
    cp2p__chan_config cfg = {.chans = &d, .n_chans = 1, .packet = 1024, .stream_backlog = 4096,
                             .max_waiters = 1, .rx_slack = 256, .ping_interval_ms = 10,
                             .pong_timeout_ms = 5};
    cp2p__chan_peer *p;
    if (cp2p__chan_peer_new(&cfg, 0, &p) != 0) {
        return 0;
    }
    size_t bound = (d.recv_buffer > d.max_msg ? d.recv_buffer : d.max_msg) + CP2P_UVARINT_MAX +
                   cfg.rx_slack;
    const char *why;
    for (size_t off = 0; off < size;) {
        size_t n = size - off < chunk ? size - off : chunk;
        int rc = cp2p__chan_recv(p, 0, data + off, n, off, &why);
        if (rc != 0) {
            if ((rc != CP2P_ELIMIT && rc != CP2P_EPROTO) || why == NULL) {
                abort();
            }
            break; /* the binding resets the stream */
        }
        off += n;
        /* Reading stops while the queue is full: drain it, as Receive would. */
        while (!cp2p__chan_read_wanted(p, 0, off)) {
            cp2p_slice m;
            if (cp2p__chan_take(p, 0, &m) != 1 || m.len > d.max_msg) {
                abort();
            }
            cp2p__chan_taken(p, 0);
        }
        cp2p__chan_ch_stats cs;
        cp2p__chan_ch_stats_get(p, 0, &cs);
        if (cs.recv_buffered > bound || cs.recv_queued > cs.msgs_received) {
            abort();
        }
    }
    cp2p__chan_recv_end(p, 0);
    /* The keepalive parser on the same bytes. */
    uint8_t out[CP2P__CHAN_KA_OUT_MAX];
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (cp2p__chan_keepalive_recv(p, data + off, n, off, &why) != 0) {
            if (why == NULL) {
                abort();
            }
            break;
        }
        if (cp2p__chan_keepalive_out(p, out) > sizeof(out)) {
            abort();
        }
        cp2p__chan_on_timeout(p, off);
    }
    cp2p__chan_peer_free(p);
    return 0;
}
