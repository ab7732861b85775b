/* The in-memory network's model, sans-I/O: nodes (one per host), names, links, connections
 * made of two endpoints, each with a FIFO of segments that become readable at a delivery time.
 * Time is passed in (nanoseconds); random draws come from a seeded PRNG; nothing here reads a
 * clock or touches libuv. memnet_uv.c runs it on a loop timer and turns its events into the
 * transport interface's callbacks (cp2p/memnet.h describes the model).
 *
 * Events, drained with cp2p__mn_next_event() in the order they happened, are nodes embedded in
 * the objects they concern, so producing one never allocates and never fails. An endpoint is
 * freed only by cp2p__mn_ep_free() after its CLOSED event was drained, so every event before
 * it still points at live memory. */
#ifndef CP2P_TRANSPORT_MEMNET_H
#define CP2P_TRANSPORT_MEMNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/common.h>
#include <cp2p/memnet.h>

#define CP2P__MN_NS_PER_MS UINT64_C(1000000)
#define CP2P__MN_NAME_MAX 128 /* our choice: memory names are short labels */

typedef struct cp2p__mn cp2p__mn;
typedef struct cp2p__mn_node cp2p__mn_node;
typedef struct cp2p__mn_listener cp2p__mn_listener;
typedef struct cp2p__mn_ep cp2p__mn_ep;
typedef struct cp2p__mn_dial cp2p__mn_dial;
typedef struct cp2p__mn_link cp2p__mn_link;

typedef enum {
    CP2P__MN_EV_ACCEPT,       /* ep: a new inbound endpoint for its listener */
    CP2P__MN_EV_DIAL_DONE,    /* dial: status 0 with dial->ep, or an error */
    CP2P__MN_EV_READABLE,     /* ep: bytes (or the end) are due and the endpoint reads */
    CP2P__MN_EV_WRITE_DONE,   /* wreq: accepted (0) or canceled by a close */
    CP2P__MN_EV_SHUTDOWN_DONE, /* ep: every write before the shutdown was accepted */
    CP2P__MN_EV_CLOSED,       /* ep: closed; the last event of the endpoint */
} cp2p__mn_ev_type;

typedef struct cp2p__mn_evnode {
    struct cp2p__mn_evnode *next;
    uint8_t type;
    bool queued;
} cp2p__mn_evnode;

/* A timer entry of the model's min-heap (due time, then insertion order). */
typedef struct cp2p__mn_tmr {
    uint64_t due, seq;
    size_t idx; /* position in the heap, SIZE_MAX when not armed */
    uint8_t kind;
} cp2p__mn_tmr;

/* A write: the iovec's memory stays the writer's until WRITE_DONE. */
#define CP2P__MN_WRITE_IOV 8
typedef struct cp2p__mn_wreq {
    cp2p__mn_evnode ev;
    struct cp2p__mn_wreq *next;
    cp2p__mn_ep *ep;
    cp2p_slice iov[CP2P__MN_WRITE_IOV];
    size_t n;
    int status;
    void *ud;
} cp2p__mn_wreq;

typedef struct cp2p__mn_seg {
    struct cp2p__mn_seg *next;
    uint64_t due;  /* UINT64_MAX while held by a cut */
    uint32_t len, off;
    bool fin;      /* the end of the peer's bytes */
    uint8_t data[];
} cp2p__mn_seg;

struct cp2p__mn_ep {
    cp2p__mn *net;
    cp2p__mn_node *node;
    cp2p__mn_ep *peer;          /* NULL once the peer is freed */
    cp2p__mn_link *link;
    cp2p__mn_ep *link_next, *link_prev; /* the link's endpoints */
    bool dir;                   /* direction index of our sending side on the link */
    bool inbound;
    bool reading, closed, shut, fin_read;
    char local[CP2P__MN_NAME_MAX + 1], remote[CP2P__MN_NAME_MAX + 1];
    cp2p__mn_listener *listener; /* inbound: who accepts it */
    /* Bytes toward us: segments in order, their bytes (queued = in flight or unread). */
    cp2p__mn_seg *head, *tail;
    size_t queued;
    uint64_t last_due;          /* head-of-line: no segment is due before the previous one */
    cp2p__mn_tmr tmr;           /* the head segment's due time */
    cp2p__mn_tmr wtmr;          /* writes waiting for the backlog to fall under the lowat */
    /* Our writes waiting for room in the peer's queue, oldest first. */
    cp2p__mn_wreq *wq_head, *wq_tail;
    cp2p__mn_evnode ev_accept, ev_readable, ev_shutdown, ev_closed;
    bool shutdown_pending;
    void *ud;                   /* the binding's */
};

struct cp2p__mn_dial {
    cp2p__mn_node *node;
    char name[CP2P__MN_NAME_MAX + 1];
    cp2p__mn_link *link;
    cp2p__mn_dial *link_next, *link_prev; /* dials waiting behind a cut */
    cp2p__mn_tmr tmr, timeout;
    uint8_t stage;              /* SYN in flight, waiting for the heal, connected */
    cp2p__mn_ep *ep;            /* our end, once the listener accepted */
    cp2p__mn_evnode ev;
    int status;
    bool canceled;
    void *ud;
};

struct cp2p__mn_listener {
    cp2p__mn_node *node;
    cp2p__mn_listener *next;    /* the node's listeners */
    char name[CP2P__MN_NAME_MAX + 1];
    bool open;
    void *ud;
};

/* ---- the network ---- */
CP2P_NODISCARD int cp2p__mn_new(uint64_t seed, cp2p__mn **out);
/* Free the network: every node must be freed first. */
void cp2p__mn_free(cp2p__mn *net);
size_t cp2p__mn_nodes(const cp2p__mn *net);
/* The next time something becomes due (UINT64_MAX: nothing), and running every due item. */
uint64_t cp2p__mn_deadline(const cp2p__mn *net);
void cp2p__mn_advance(cp2p__mn *net, uint64_t now);
/* The next event (NULL when none); its object by type: cp2p__mn_ev_ep, _dial, _wreq. */
cp2p__mn_evnode *cp2p__mn_next_event(cp2p__mn *net);
bool cp2p__mn_next_event_pending(const cp2p__mn *net);
cp2p__mn_ep *cp2p__mn_ev_ep(cp2p__mn_evnode *ev);
cp2p__mn_dial *cp2p__mn_ev_dial(cp2p__mn_evnode *ev);
cp2p__mn_wreq *cp2p__mn_ev_wreq(cp2p__mn_evnode *ev);

void cp2p__mn_set_default_link(cp2p__mn *net, const cp2p_memnet_link *link);
/* By names (see cp2p/memnet.h for the errors). */
CP2P_NODISCARD int cp2p__mn_link_set(cp2p__mn *net, const char *a, const char *b,
                                     const cp2p_memnet_link *link, uint64_t now);
CP2P_NODISCARD int cp2p__mn_cut(cp2p__mn *net, const char *a, const char *b, bool cut,
                                uint64_t now);
void cp2p__mn_stats(const cp2p__mn *net, cp2p_memnet_stats *out);
CP2P_NODISCARD int cp2p__mn_link_stats(const cp2p__mn *net, const char *a, const char *b,
                                       cp2p_memnet_stats *out);

/* ---- nodes and listeners ---- */
CP2P_NODISCARD int cp2p__mn_node_new(cp2p__mn *net, cp2p__mn_node **out);
/* TCP_NOTSENT_LOWAT for the node's connections (bytes; 0, the default, = none): a write is
 * accepted only while the link's unsent backlog in the writer's direction (bytes waiting for
 * the serialiser, on links with a bandwidth) is under it, as a socket with that option reports
 * itself writable. It applies to every write pumped after the call. */
void cp2p__mn_node_set_notsent_lowat(cp2p__mn_node *node, uint32_t lowat);
/* Free a node: its endpoints must be freed and its dials done; its listeners and links go. */
void cp2p__mn_node_free(cp2p__mn_node *node);
/* Register `name` ("0" picks a fresh one). Returns 0, CP2P_EIO (*why "address in use"),
 * CP2P_EINVAL (empty or too long), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__mn_listen(cp2p__mn_node *node, const char *name, void *ud,
                                   cp2p__mn_listener **out, const char **why);
/* Unregister; the listener's memory goes with its node (pending accepts see !open). */
void cp2p__mn_listener_close(cp2p__mn_listener *l);

/* ---- dials ---- */
/* Dial `name`. Returns 0 and a DIAL_DONE event follows (CP2P_EIO at once for an unknown name,
 * CP2P_ETIMEDOUT after timeout_ns across a cut), or CP2P_ENOMEM/CP2P_EINVAL. */
CP2P_NODISCARD int cp2p__mn_dial_start(cp2p__mn_node *node, const char *name, uint64_t timeout_ns,
                                 uint64_t now, void *ud, cp2p__mn_dial **out);
/* Cancel: the caller reports CP2P_ECANCELED itself, now; no DIAL_DONE of this dial is seen
 * (a queued one is skipped: its `canceled` is set, and draining it releases the dial). */
void cp2p__mn_dial_cancel(cp2p__mn_dial *d, uint64_t now);
/* After a DIAL_DONE event has been handled (or drained with `canceled` set). */
void cp2p__mn_dial_release(cp2p__mn_dial *d);

/* ---- endpoints ---- */
void cp2p__mn_read_start(cp2p__mn_ep *ep, uint64_t now);
void cp2p__mn_read_stop(cp2p__mn_ep *ep);
/* Copy up to `cap` due bytes into buf: > 0 bytes, 0 nothing due, CP2P_ECLOSED the end. */
ptrdiff_t cp2p__mn_read(cp2p__mn_ep *ep, uint64_t now, uint8_t *buf, size_t cap);
/* Queue a write (n <= CP2P__MN_WRITE_IOV); WRITE_DONE follows. CP2P_ECLOSED after shutdown or
 * close, CP2P_EINVAL, CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__mn_write(cp2p__mn_ep *ep, cp2p__mn_wreq *w, const cp2p_slice *iov,
                                  size_t n, uint64_t now);
/* End our bytes after the queued writes (the peer reads the end); SHUTDOWN_DONE follows. */
CP2P_NODISCARD int cp2p__mn_shutdown(cp2p__mn_ep *ep, uint64_t now);
/* Close: pending writes complete with CP2P_ECANCELED, the peer reads the end after our
 * bytes, then CLOSED. */
void cp2p__mn_close(cp2p__mn_ep *ep, uint64_t now);
/* After the CLOSED event. */
void cp2p__mn_ep_free(cp2p__mn_ep *ep);

#endif
