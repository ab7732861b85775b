/* An in-memory network: hosts in one process, on one libuv loop, connected through links that
 * can be given latency, bandwidth, loss and partitions, deterministically from a seed. For
 * tests and simulations of many nodes; it carries the same libp2p connections as TCP (the
 * same Noise, yamux and protocols run over it).
 *
 *     cp2p_memnet *net;
 *     cp2p_memnet_new(loop, 42, &net);
 *     cfg.memnet = net;                        // cp2p_host_config: the host joins the network
 *     cp2p_host_new(loop, &cfg, &h);
 *     cp2p_host_listen(h, "/memory/alice");    // registers the name "alice"
 *     ...  other hosts dial /memory/alice/p2p/<id>
 *     cp2p_memnet_link_set(net, "alice", "bob", &(cp2p_memnet_link){.latency_ms = 20});
 *     cp2p_memnet_cut(net, "alice", "bob");    // partition; cp2p_memnet_heal() ends it
 *
 * Addresses are `/memory/NAME`, as js-libp2p's @libp2p/memory writes them (multiaddr code 777,
 * a UTF-8 name). Listening on `/memory/NAME` registers NAME on the network (CP2P_EIO, "address
 * in use", when another listener has it); listening on `/memory/0` picks a fresh name
 * ("mem-1", "mem-2", ...) that cp2p_host_listen_addr reports. Dialing a name nobody listens on
 * fails at once with CP2P_EIO, as a refused TCP connection does.
 *
 * The model (what a TCP connection over that link would see):
 * - A link joins two hosts (found through any name they listen on) and has, per direction, a
 *   one-way latency, a bandwidth (bytes are serialised FIFO: a segment leaves when the link is
 *   free, and takes len/bandwidth) and a loss probability. A lost segment (1460 bytes, TCP's
 *   usual MSS) is not dropped: it arrives after a retransmission timeout, max(200 ms, 3 x RTT),
 *   and every byte behind it on the same connection waits for it (head-of-line blocking,
 *   order kept), as TCP delivers. Links nobody configured use the default link (no latency,
 *   unlimited bandwidth, no loss unless cp2p_memnet_set_default_link says otherwise).
 * - A cut holds every byte not yet delivered across the link, and every byte sent while it
 *   lasts (counted in bytes_held); a dial across a cut waits and fails with CP2P_ETIMEDOUT after
 *   the host's dial timeout. A heal sends the held bytes again, in order, as from that moment.
 *   Connections themselves never break: yamux keepalive or the protocols' own timeouts decide.
 * - A write completes when its bytes are accepted into the connection's queue toward the
 *   peer; the queue holds at most CP2P_MEMNET_QUEUE_MAX bytes in flight or unread (the TCP send
 *   and receive buffers together), and further writes wait for the peer to read: a peer that
 *   does not read pushes back through yamux as on TCP. On a link with a bandwidth, a write is
 *   also held while the link's unsent backlog in that direction (bytes waiting for the
 *   serialiser) is at or over the host's TCP_NOTSENT_LOWAT (cp2p_host_config.tcp_notsent_lowat,
 *   16 KiB by default), as a socket with that option reports itself writable: what waits for
 *   the link then stays above, in the host's stream scheduler, where priorities apply.
 * - Establishing a connection takes one RTT for the dialer, one way for the listener.
 *
 * Determinism: every random draw (loss) comes from one PRNG seeded by `seed`, and every time
 * is computed from the loop time (uv_now) at which the calls are made. Two runs that make the
 * same calls at the same loop times deliver the same bytes at the same loop times. The loop's
 * millisecond clock is the assumption: a run on a busier machine makes its calls at other
 * times, and then differs as two TCP runs would. Times below a millisecond (serialisation at
 * high bandwidth) are kept in nanoseconds and rounded up to the loop's milliseconds.
 *
 * Delivery runs from the network's own handles on the loop (a timer, and a check handle right
 * after the loop's poll), never inside the call that wrote.
 * Loop thread only, for every function. */
#ifndef CP2P_MEMNET_H
#define CP2P_MEMNET_H

#include <stdint.h>

#include <uv.h>

#include <cp2p/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp2p_memnet cp2p_memnet;

/* Bytes queued per connection and direction before writes wait (the send + receive buffers of
 * a Linux TCP connection at its default sizes are of this order). */
#define CP2P_MEMNET_QUEUE_MAX (256 * 1024)
/* Segment size of the loss model (bytes): TCP's usual MSS over Ethernet. */
#define CP2P_MEMNET_SEGMENT 1460
/* Minimum retransmission timeout of the loss model: RFC 6298's 1 s is what the RFC asks,
 * Linux uses 200 ms (TCP_RTO_MIN), which is what peers of cp2p see. */
#define CP2P_MEMNET_RTO_MIN_MS 200

/* A link's properties, the same in both directions. */
typedef struct cp2p_memnet_link {
    uint32_t latency_ms;     /* one way */
    uint64_t bandwidth_bps;  /* bytes per second; 0 = unlimited */
    double loss;             /* probability that a segment is lost (then retransmitted), 0..1 */
} cp2p_memnet_link;

/* Counters, over the whole network or one link. */
typedef struct cp2p_memnet_stats {
    uint64_t bytes_sent;        /* accepted from writers */
    uint64_t bytes_delivered;   /* read by the receiving ends */
    uint64_t segments;          /* segments scheduled (one per write on a plain link) */
    uint64_t segments_delayed;  /* segments lost once and delivered after a retransmission */
    uint64_t bytes_held;        /* bytes held by a cut (counted once per cut) */
    uint64_t conns;             /* connections established */
    uint64_t dials_refused;     /* dials to a name nobody listens on */
    uint64_t dials_timed_out;   /* dials that found the link cut until their timeout */
} cp2p_memnet_stats;

/* A network on `loop`; `seed` drives every random draw. Returns 0, CP2P_EINVAL (NULL
 * argument) or CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_memnet_new(uv_loop_t *loop, uint64_t seed, cp2p_memnet **out);
/* Close the network; `cb` (may be NULL) runs from the loop once its timer is closed and its
 * memory freed. Every host on it must have finished closing first: returns CP2P_ESTATE (and
 * nothing happens) while a host still uses it, else 0. */
typedef void (*cp2p_memnet_close_cb)(void *ud);
CP2P_API CP2P_NODISCARD int cp2p_memnet_close(cp2p_memnet *net, cp2p_memnet_close_cb cb,
                                              void *ud);

/* The link used between hosts whose link was never set with cp2p_memnet_link_set: for the
 * bytes sent from now on, on open connections too. */
CP2P_API void cp2p_memnet_set_default_link(cp2p_memnet *net, const cp2p_memnet_link *link);
/* Set the link between the hosts listening on names `a` and `b` (its open connections use it
 * for the bytes sent from now on). Returns 0, CP2P_ENOENT (a name nobody listens on),
 * CP2P_EINVAL (the same host, or loss outside 0..1), CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_memnet_link_set(cp2p_memnet *net, const char *a, const char *b,
                                                 const cp2p_memnet_link *link);
/* Partition the hosts of names `a` and `b` from each other, or end the partition. Returns 0,
 * CP2P_ENOENT, CP2P_EINVAL, CP2P_ENOMEM as cp2p_memnet_link_set. */
CP2P_API CP2P_NODISCARD int cp2p_memnet_cut(cp2p_memnet *net, const char *a, const char *b);
CP2P_API CP2P_NODISCARD int cp2p_memnet_heal(cp2p_memnet *net, const char *a, const char *b);

/* Counters of the whole network. */
CP2P_API void cp2p_memnet_stats_get(const cp2p_memnet *net, cp2p_memnet_stats *out);
/* Counters of the link between the hosts of `a` and `b`: 0, or CP2P_ENOENT when either name
 * is unknown or the two hosts never had a link (no connection and no setting). */
CP2P_API CP2P_NODISCARD int cp2p_memnet_link_stats(const cp2p_memnet *net, const char *a,
                                                   const char *b, cp2p_memnet_stats *out);

#ifdef __cplusplus
}
#endif
#endif
