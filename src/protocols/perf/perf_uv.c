/* /perf/1.0.0 (libp2p/specs perf/perf.md): the client writes the number of bytes it wants back
 * (u64, big-endian), then its upload, then closes its side; the server reads the count,
 * discards the upload until EOF, writes that many bytes and closes. */
#include <string.h>

#include <cp2p/service.h>

#include "protocols/builtin.h"
#include "util/alloc.h"
#include "util/bytes.h"
#include "util/limits.h"

static const uint8_t ZEROS[CP2P_PERF_CHUNK];

/* Streams `total` bytes of zeros with at most CP2P_PERF_QUEUE queued, then `on_done`. */
typedef struct {
    cp2p_stream *s;
    uint64_t total, queued_total;
    unsigned pending; /* write callbacks to come */
    int err;
} sender;

static void send_more(sender *snd, cp2p_write_cb cb, void *ud)
{
    while (snd->err == 0 && snd->queued_total < snd->total &&
           cp2p_stream_write_queued(snd->s) < CP2P_PERF_QUEUE) {
        uint64_t left = snd->total - snd->queued_total;
        size_t n = left < CP2P_PERF_CHUNK ? (size_t)left : CP2P_PERF_CHUNK;
        int rc = cp2p_stream_write_ref(snd->s, ZEROS, n, cb, ud); /* static bytes */
        if (rc != 0) {
            snd->err = rc;
            return;
        }
        snd->queued_total += n;
        snd->pending++;
    }
}

static bool send_done(const sender *snd)
{
    return snd->queued_total == snd->total && snd->pending == 0;
}

/* ---- server ---- */

typedef struct {
    sender snd;
    uint8_t hdr[8];
    size_t have;
    bool sending;
} perf_srv;

static void srv_written(cp2p_stream *s, int status, void *ud)
{
    perf_srv *p = ud;
    p->snd.pending--;
    if (status != 0 && p->snd.err == 0) {
        p->snd.err = status;
    }
    if (p->snd.err != 0) {
        if (p->snd.pending == 0) {
            cp2p_free(p);
        }
        return;
    }
    send_more(&p->snd, srv_written, p);
    if (p->snd.err != 0) {
        cp2p_stream_reset(s);
        if (p->snd.pending == 0) {
            cp2p_free(p);
        }
    } else if (send_done(&p->snd)) {
        cp2p_stream_close(s); /* FIN once the last bytes are out */
        cp2p_free(p);
    }
}

static void srv_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    perf_srv *p = ud;
    if (n == CP2P_EOF && p->have == sizeof(p->hdr)) {
        p->snd.s = s;
        p->snd.total = cp2p_load_be64(p->hdr);
        p->sending = true;
        if (p->snd.total == 0) {
            cp2p_stream_close(s);
            cp2p_free(p);
            return;
        }
        send_more(&p->snd, srv_written, p);
        if (p->snd.err != 0 && p->snd.pending == 0) {
            cp2p_stream_reset(s);
            cp2p_free(p);
        }
        return;
    }
    if (n < 0) {
        cp2p_stream_reset(s); /* reset, or EOF before the 8-byte header */
        cp2p_free(p);
        return;
    }
    size_t k = (size_t)n < sizeof(p->hdr) - p->have ? (size_t)n : sizeof(p->hdr) - p->have;
    memcpy(p->hdr + p->have, data, k);
    p->have += k; /* the rest of the upload is discarded */
}

static void perf_handler(cp2p_service *svc, cp2p_stream *s, void *ud)
{
    (void)svc;
    perf_srv *p = cp2p_calloc(1, sizeof(*p));
    (void)ud;
    if (p == NULL || cp2p_stream_read_start(s, srv_read, p) != 0) {
        cp2p_free(p);
        cp2p_stream_reset(s);
    }
}

/* ---- client ---- */

typedef struct {
    cp2p_conn *conn;
    cp2p_perf_cb cb;
    void *ud;
    sender snd;
    uint64_t download, received;
    uint64_t t0, t_up;
    bool upload_done, finished;
    cp2p_perf_result r;
} perf_req;

static void cli_finish(perf_req *p, int status)
{
    if (p->finished) {
        return;
    }
    p->finished = true;
    if (p->snd.s != NULL) {
        cp2p_stream_read_stop(p->snd.s);
        if (status == 0) {
            cp2p_stream_close(p->snd.s);
        } else {
            cp2p_stream_reset(p->snd.s);
        }
    }
    p->cb(p->conn, status, status == 0 ? &p->r : NULL, p->ud);
    if (p->snd.pending == 0) {
        cp2p_free(p);
    }
}

static void cli_written(cp2p_stream *s, int status, void *ud)
{
    perf_req *p = ud;
    p->snd.pending--;
    if (p->finished) {
        if (p->snd.pending == 0) {
            cp2p_free(p);
        }
        return;
    }
    if (status != 0) {
        cli_finish(p, status);
        return;
    }
    send_more(&p->snd, cli_written, p);
    if (p->snd.err != 0) {
        cli_finish(p, p->snd.err);
    } else if (send_done(&p->snd) && !p->upload_done) {
        p->upload_done = true;
        p->t_up = uv_hrtime();
        p->r.upload_ns = p->t_up - p->t0;
        if (cp2p_stream_close_write(s) != 0) {
            cli_finish(p, CP2P_ECLOSED);
        }
    }
}

static void cli_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    perf_req *p = ud;
    (void)s;
    (void)data;
    if (n == CP2P_EOF) {
        uint64_t t = uv_hrtime();
        p->r.download_bytes = p->received;
        p->r.download_ns = p->upload_done ? t - p->t_up : 0;
        p->r.total_ns = t - p->t0;
        cli_finish(p, p->received == p->download && p->upload_done ? 0 : CP2P_EPROTO);
        return;
    }
    if (n < 0) {
        cli_finish(p, (int)n);
        return;
    }
    p->received += (uint64_t)n;
    if (p->received > p->download) {
        cli_finish(p, CP2P_EPROTO); /* more than we asked for */
    }
}

static void cli_open(cp2p_stream *s, int status, void *ud)
{
    perf_req *p = ud;
    uint8_t hdr[8];
    if (status != 0) {
        cli_finish(p, status);
        return;
    }
    p->snd.s = s;
    p->t0 = uv_hrtime();
    cp2p_store_be64(hdr, p->download);
    if (cp2p_stream_read_start(s, cli_read, p) != 0 ||
        cp2p_stream_write(s, hdr, sizeof(hdr), cli_written, p) != 0) {
        cli_finish(p, CP2P_ECLOSED);
        return;
    }
    p->snd.pending++;
    send_more(&p->snd, cli_written, p);
    if (p->snd.err != 0) {
        cli_finish(p, p->snd.err);
    }
}

int cp2p_perf(cp2p_conn *c, uint64_t upload, uint64_t download, cp2p_perf_cb cb, void *ud)
{
    static const char *const protos[] = {CP2P_PERF_PROTOCOL};
    perf_req *p = cp2p_calloc(1, sizeof(*p));
    if (p == NULL) {
        return CP2P_ENOMEM;
    }
    p->conn = c;
    p->cb = cb;
    p->ud = ud;
    p->snd.total = upload;
    p->download = download;
    p->r.upload_bytes = upload;
    int rc = cp2p_conn_open_stream(c, protos, 1, cli_open, p);
    if (rc != 0) {
        cp2p_free(p);
    }
    return rc;
}

int cp2p__perf_register(cp2p_host *h)
{
    return cp2p__builtin_serve(h, "perf", CP2P_PERF_PROTOCOL, perf_handler);
}
