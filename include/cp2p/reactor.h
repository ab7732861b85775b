/* Reactors and prioritised channels (seed 004: Tendermint/CometBFT's Switch, Reactor, Peer and
 * MConnection), on the host's libp2p connections.
 *
 * A switch (cp2p_switch) is a service on the host. Reactors register with it before it starts,
 * each declaring its channels (an id byte, a priority, queue capacities, a largest message);
 * two reactors claiming one channel id is a registration error. Once started, every connected
 * peer that runs a switch too (its keepalive stream negotiates) is added to every reactor
 * (add_peer); messages it sends on a channel go to that channel's reactor (receive); when it
 * goes (its last connection closed, it stopped answering pings, a reactor stopped it) every
 * reactor hears remove_peer with the reason.
 *
 * Handshake: before a peer is added, both sides send their node info (cp2p/nodeinfo.h,
 * CometBFT's DefaultNodeInfo) on CP2P_NODEINFO_PROTOCOL; a peer whose node info is malformed,
 * names another peer id, or is not compatible with ours (CometBFT's CompatibleWith: another
 * block protocol version, another network, no channel in common), or does not arrive within
 * handshake_timeout_ms, is rejected: no reactor ever hears of it, the reason is logged and
 * counted (cp2p_switch_stats), and with disconnect_rejected its connection is closed.
 *
 * Wire (docs/CHANNELS.md): one yamux stream per channel each way, protocol
 * /p2p/cometbft/1.0.0/channel/0xNN, uvarint-length-prefixed messages, the stream's write
 * priority set to the channel's; ping/pong on /cp2p/reactor/keepalive/1.0.0.
 *
 * What cp2p does differently from CometBFT (each a reported CometBFT stall):
 *   - receive never runs on the read path: complete messages wait in a bounded queue per
 *     channel and peer; when it is full only that channel stops reading (yamux's window then
 *     pushes back on the sender's send/try_send), never the other channels or the keepalive.
 *     A reactor may run receive on its own worker threads (workers > 0), so even a receive that
 *     sleeps delays only the channels of that reactor that wait for a free worker;
 *   - channels share a peer by priority with messages cut into packets, so a large message
 *     holds a small one of another channel back by at most one packet;
 *   - send and receive rate limits never sleep: sending waits for tokens, reading pauses;
 *   - try_send fails at the channel's own queue capacity; send reports why it failed.
 *
 * Threading: every function is for the host's loop thread, and every callback runs on it,
 * except `receive` of a reactor with workers > 0, which runs on one of the reactor's threads:
 * there it may use only cp2p_reactor_peer_id() and cp2p_reactor_peer_data() (the peer handle
 * stays valid until receive returns, even if the peer is removed meanwhile). Callbacks never
 * run inside the call that caused them. */
#ifndef CP2P_REACTOR_H
#define CP2P_REACTOR_H

#include <stdbool.h>
#include <stdint.h>

#include <cp2p/nodeinfo.h>
#include <cp2p/service.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp2p_switch cp2p_switch;
typedef struct cp2p_reactor cp2p_reactor;
typedef struct cp2p_reactor_peer cp2p_reactor_peer;

#define CP2P_CHANNEL_PROTOCOL_PREFIX "/p2p/cometbft/1.0.0/channel/"
#define CP2P_REACTOR_KEEPALIVE_PROTOCOL "/cp2p/reactor/keepalive/1.0.0"
/* Reactors per switch, channels per reactor, channels per switch (each channel is a protocol
 * handler on the host, whose table holds 256). */
#define CP2P_SWITCH_MAX_REACTORS 16
#define CP2P_REACTOR_MAX_CHANNELS 16
#define CP2P_SWITCH_MAX_CHANNELS 64

/* One channel (CometBFT's ChannelDescriptor). Zero fields take the defaults in parentheses. */
typedef struct cp2p_channel_desc {
    uint8_t id;
    uint8_t priority;              /* 1..16; 0 = 1 */
    uint32_t send_queue_capacity;  /* messages queued per peer besides the one being sent (1) */
    uint32_t recv_queue_capacity;  /* complete messages per peer waiting for receive (16) */
    size_t recv_buffer_capacity;   /* bytes buffered per peer before reading pauses (4,096) */
    size_t recv_message_capacity;  /* largest message, both ways (22,020,096) */
} cp2p_channel_desc;

typedef struct cp2p_reactor_desc {
    const char *name;                  /* for logs and the channels view; copied */
    const cp2p_channel_desc *channels; /* 1..CP2P_REACTOR_MAX_CHANNELS, copied */
    size_t n_channels;
    /* 0: receive runs on the loop. 1..16: on that many threads of the reactor's own, each
     * message of one channel and peer after the previous one returned. */
    uint32_t workers;
    /* Each may be NULL; `ud` is the pointer given to cp2p_switch_add_reactor. The peer handle is
     * valid from add_peer until remove_peer returns (and during a worker's receive). */
    void (*add_peer)(cp2p_reactor *r, cp2p_reactor_peer *p, void *ud);
    /* reason, valid for the call: "pong timeout", "connection closed", "switch stopped",
     * "peer stopped its switch", "peer restarted its switch", "keepalive failed",
     * "keepalive protocol violation", or the reason given to cp2p_reactor_peer_stop. */
    void (*remove_peer)(cp2p_reactor *r, cp2p_reactor_peer *p, const char *reason, void *ud);
    /* One message of channel `ch` from `p`, borrowed for the call. */
    void (*receive)(cp2p_reactor *r, uint8_t ch, cp2p_reactor_peer *p, const uint8_t *msg,
                    size_t len, void *ud);
} cp2p_reactor_desc;

typedef struct cp2p_switch_config {
    /* Per peer, bytes a second sent and received over all channels (keepalive exempt), with
     * the bucket size; 0 = no limit (default; CometBFT's config default is 5,120,000). */
    uint32_t send_rate, recv_rate;
    uint32_t send_burst, recv_burst; /* 0 = one tenth of a second of the rate, >= a packet */
    size_t packet_size;       /* bytes per packet (0: 16 KiB with a send_rate, else 64 KiB) */
    size_t stream_backlog;    /* bytes a channel's stream may hold unwritten (4 packets) */
    uint64_t ping_interval_ms; /* keepalive ping (60 s) */
    uint64_t pong_timeout_ms;  /* a peer whose pong is this late is removed (45 s) */
    uint32_t max_send_waiters; /* cp2p_reactor_peer_send callers waiting per channel (16) */
    uint32_t max_peers;        /* peers tracked; more are ignored and counted (1,024) */
    /* Our node info (copied by cp2p_switch_new; NULL: cp2p_node_info_default()). The switch
     * fills node_id (the host's peer id), channels (its reactors'), and listen_addr when empty
     * (the host's first listen address at start). */
    const cp2p_node_info *node_info;
    uint64_t handshake_timeout_ms; /* the peer's node info must arrive within it (20 s) */
    bool disconnect_rejected;      /* close the connection of a rejected peer (false: the
                                    * host's other services keep it) */
    /* Bytes that may wait below the connection's stream scheduler, where channel priorities
     * no longer act, on the connections to our peers (cp2p_conn_set_send_buffers, for every
     * stream of that connection): 0 (default) leaves the host's caps, which follow each
     * connection's send rate (cp2p_host_config.conn_queue_us: 16 KiB at 64 MB/s). */
    size_t conn_send_buffer;
} cp2p_switch_config;

typedef struct cp2p_switch_stats {
    uint64_t peers;            /* now: peers added to the reactors */
    uint64_t peers_added, peers_removed;
    uint64_t pong_timeouts;    /* peers removed for not answering pings */
    uint64_t peers_refused;    /* over max_peers */
    uint64_t foreign_peers;    /* connected peers without a switch (keepalive refused) */
    uint64_t channel_refused;  /* our channel streams the peer refused (no reactor there) */
    uint64_t inbound_refused;  /* inbound streams reset: unknown or closing peer, a second
                                * keepalive, more than 9 of one channel at once */
    uint64_t inbound_waiting;  /* inbound channel streams that waited for an earlier one of
                                * the same channel and peer to end (read in turn) */
    uint64_t bad_streams;      /* inbound channel streams reset for bad input */
    /* Peers rejected at the node info handshake, by reason (never added to a reactor). */
    uint64_t rejected_network;       /* "incompatible network" */
    uint64_t rejected_block_version; /* "incompatible block version" */
    uint64_t rejected_no_channels;   /* "no common channels" */
    uint64_t rejected_bad_node_info; /* malformed, oversized, cut short, another peer id */
    uint64_t handshake_timeouts;     /* "handshake timeout": no node info in time */
    /* Over current and past peers: channel bytes each way (keepalive excluded), and the time
     * peers spent waiting for send tokens or with reading paused by the receive rate. */
    uint64_t bytes_sent, bytes_received;
    uint64_t send_throttled_ms, recv_throttled_ms;
} cp2p_switch_stats;

/* Per channel, summed over peers, or of one peer (cp2p_reactor_peer_channel_stats). */
typedef struct cp2p_channel_stats {
    uint64_t msgs_sent, bytes_sent;         /* handed to the stream (prefixes included) */
    uint64_t msgs_received, bytes_received;
    uint64_t send_timeouts;                 /* cp2p_reactor_peer_send that timed out */
    uint64_t try_send_refused;              /* cp2p_reactor_peer_try_send on a full queue */
    uint64_t too_large;                     /* sends over the largest message */
    uint64_t send_dropped;                  /* queued messages lost (stream died, refused) */
    uint64_t oversized, malformed, truncated; /* bad inbound streams, reset */
    uint64_t read_pauses;                   /* receive queue full: reading stopped */
    uint64_t send_queued, recv_queued;      /* now: messages waiting each way */
} cp2p_channel_stats;

typedef struct cp2p_reactor_peer_stats {
    uint64_t bytes_sent, bytes_received;
    uint64_t send_throttled_ms, recv_throttled_ms;
    uint64_t pings_sent, pongs_received; /* keepalive */
    uint64_t rtt_ms; /* last keepalive round trip (0 also when under a millisecond) */
} cp2p_reactor_peer_stats;

/* Defaults (above). Any thread. */
CP2P_API void cp2p_switch_config_default(cp2p_switch_config *cfg);
/* Node info defaults: P2P version 8, block version 11 (CometBFT v0.38), network "cp2p",
 * version "cp2p/<version>", moniker "cp2p", the rest empty. Any thread. */
CP2P_API void cp2p_node_info_default(cp2p_node_info *ni);

/* A switch on `h` (cfg NULL: defaults), not started. Returns 0 and *out, CP2P_EINVAL (bad
 * config: ping interval without pong timeout, a burst below a packet, a node info that fails
 * CometBFT's ValidateBasic: docs/CHANNELS.md), CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_switch_new(cp2p_host *h, const cp2p_switch_config *cfg,
                                            cp2p_switch **out);
/* Register a reactor (before start). Returns 0 and *out (valid until the switch is freed),
 * CP2P_EINVAL (bad descriptor: no channel, priority over 16, too many channels or workers),
 * CP2P_ESTATE (a channel id another reactor, or this one, already declared; or the switch
 * started), CP2P_EFULL (CP2P_SWITCH_MAX_REACTORS or CP2P_SWITCH_MAX_CHANNELS), CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_switch_add_reactor(cp2p_switch *sw, const cp2p_reactor_desc *d,
                                                    void *ud, cp2p_reactor **out);
/* Start: register the channels and the keepalive with the host, start the workers; peers
 * connected now and later are added. Returns 0, CP2P_ESTATE (started already or stopped), or
 * cp2p_host_add_service's error (CP2P_ESTATE: a channel protocol already has a handler). */
CP2P_API CP2P_NODISCARD int cp2p_switch_start(cp2p_switch *sw);
/* Started, and neither stopping nor closing (false from cp2p_switch_stop/close on). */
CP2P_API bool cp2p_switch_is_running(const cp2p_switch *sw);
/* Stop (the seed's Service.Stop): from the next loop turn no callback of the switch runs but
 * remove_peer ("switch stopped") for every added peer; its streams are reset, its workers
 * joined (the loop waits for receive calls in progress), its services removed; then `cb` (may
 * be NULL) runs once and the handle is invalid. Sends fail with CP2P_ECLOSED from this call on.
 * Returns 0, CP2P_EINVAL (NULL), CP2P_ECLOSED (closing already, or the host closed it),
 * CP2P_ENOMEM (nothing happened); on an error cb never runs. May be called from the switch's
 * callbacks. When the host closes first it stops the switch the same way (remove_peer from the
 * host's close) and frees it: the handle is then invalid; a close pending at that moment still
 * calls its cb. */
typedef void (*cp2p_switch_close_cb)(void *ud);
CP2P_API CP2P_NODISCARD int cp2p_switch_close(cp2p_switch *sw, cp2p_switch_close_cb cb, void *ud);
/* Stop and keep (the seed's Service.Stop, then Reset to start again): as cp2p_switch_close,
 * but after `cb` the handle stays valid, the reactors registered, the switch stopped: then
 * cp2p_switch_reset() makes it startable, cp2p_switch_close() or cp2p_switch_free() frees it.
 * Returns 0, CP2P_EINVAL (NULL), CP2P_ESTATE (not running), CP2P_ECLOSED (closing already, or
 * the host closed it), CP2P_ENOMEM; on an error cb never runs. When the host closes before the
 * stop completes the stop still completes (cb runs) and the handle stays the application's. A
 * stopped switch is no longer the host's: free it (also after the host closed). */
CP2P_API CP2P_NODISCARD int cp2p_switch_stop(cp2p_switch *sw, cp2p_switch_close_cb cb, void *ud);
/* Reset a stopped switch (Service.Reset): no peers (the stop freed them, with their queues,
 * streams and reactor slots), counters zeroed, reactors and config kept; cp2p_switch_start
 * works again (peers connected then are handshaken afresh; a peer that sees our new node info
 * removes us with "peer restarted its switch" and adds us again). Returns 0, CP2P_EINVAL,
 * CP2P_ESTATE (running, stopping, or never started: nothing to reset), CP2P_ECLOSED (its host
 * closed during the stop). The host must still be open when it starts again (a stopped switch
 * does not hear of its host's close). */
CP2P_API CP2P_NODISCARD int cp2p_switch_reset(cp2p_switch *sw);
/* Wait for the switch to quit (Service.Wait / Quit()): `cb` runs once, from the loop, when it
 * has stopped, however (cp2p_switch_stop, cp2p_switch_close, its host's close), after every
 * remove_peer and before the stop's or close's own callback; the switch handle must not be used
 * in it after a close. At most CP2P_SWITCH_MAX_QUIT_WAITERS at once. Returns 0, CP2P_EINVAL,
 * CP2P_ESTATE (not started, or stopped already: nothing to wait for), CP2P_EFULL. Waiters do
 * not run when the switch is freed with cp2p_switch_free. */
#define CP2P_SWITCH_MAX_QUIT_WAITERS 8
CP2P_API CP2P_NODISCARD int cp2p_switch_on_quit(cp2p_switch *sw, cp2p_switch_close_cb cb,
                                                void *ud);
/* Free a switch that was never started, whose start failed, or that is stopped. (On a running
 * switch it stops it at once, remove_peer running inside this call: use cp2p_switch_close.)
 * NULL is a no-op. */
CP2P_API void cp2p_switch_free(cp2p_switch *sw);

/* Try send to every added peer (CometBFT's Broadcast): returns how many queued it. */
CP2P_API size_t cp2p_switch_broadcast(cp2p_switch *sw, uint8_t ch, const void *msg, size_t len);
CP2P_API void cp2p_switch_stats_get(const cp2p_switch *sw, cp2p_switch_stats *out);
/* Totals of channel `ch` over current and past peers. Returns 0 or CP2P_ENOENT. */
CP2P_API CP2P_NODISCARD int cp2p_switch_channel_stats(const cp2p_switch *sw, uint8_t ch,
                                                      cp2p_channel_stats *out);
/* Added peers: writes up to `max` handles (valid until the next loop turn) and returns their
 * number (it may exceed max). */
CP2P_API size_t cp2p_switch_peers(const cp2p_switch *sw, cp2p_reactor_peer **out, size_t max);
/* The switch started on `h`, or NULL (how the node's HTTP API finds it). */
CP2P_API cp2p_switch *cp2p_host_switch(const cp2p_host *h);
/* The channels view as JSON (appended to out; docs/API.md, /api/v0/channels): the reactors and
 * their channels with totals, and per peer (at most 256, PeersTotal counts all) its bytes,
 * throttled time, keepalive RTT and per-channel queue depths. Returns 0, CP2P_ELIMIT (out's
 * max), CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_switch_channels_json(const cp2p_switch *sw, cp2p_buf *out);
/* The added peer `id`, or NULL (not connected, not added yet, or removed). */
CP2P_API cp2p_reactor_peer *cp2p_switch_find_peer(const cp2p_switch *sw, const cp2p_peer_id *id);
CP2P_API const char *cp2p_reactor_name(const cp2p_reactor *r);
CP2P_API cp2p_switch *cp2p_reactor_switch(const cp2p_reactor *r);

/* Copy the switch's counters into a metrics registry (cp2p/metrics.h): switch-wide
 * cp2p_switch_*, per channel cp2p_channel_* with the label channel="0xNN" (at most
 * CP2P_SWITCH_MAX_CHANNELS values), and per peer cp2p_switch_peer_* with the label peer (at
 * most 64 series a family, the rest summed in peer="_other"): bounded. Names in
 * docs/METRICS.md. The first call passes
 * *state == NULL and registers the families; later calls pass the same state and registry
 * (call it before a scrape, or on a timer). Returns 0, CP2P_EINVAL (NULL argument, another
 * registry), CP2P_ENOMEM, or cp2p_metrics_register's error. Loop thread only. */
typedef struct cp2p_switch_metrics cp2p_switch_metrics;
typedef struct cp2p_metrics cp2p_metrics; /* cp2p/metrics.h (repeated typedef: same type) */
CP2P_API CP2P_NODISCARD int cp2p_switch_metrics_update(cp2p_switch_metrics **state,
                                                       const cp2p_switch *sw, cp2p_metrics *reg);
/* Free the state (the registry keeps its families). NULL is a no-op. */
CP2P_API void cp2p_switch_metrics_free(cp2p_switch_metrics *state);

/* Our node info as sent (after start: with node id, channels, listen address). */
CP2P_API const cp2p_node_info *cp2p_switch_node_info(const cp2p_switch *sw);

/* ---- peers ---- */
CP2P_API const cp2p_peer_id *cp2p_reactor_peer_id(const cp2p_reactor_peer *p);
/* The peer's node info, as received and checked (valid as long as the handle; also from r's
 * workers). */
CP2P_API const cp2p_node_info *cp2p_reactor_peer_node_info(const cp2p_reactor_peer *p);
/* Queue msg[0..len) (copied) on channel `ch` unless its queue for this peer is full
 * (CometBFT's TrySend). Returns 0 (queued), CP2P_EFULL (full: counted), CP2P_ENOENT (no
 * reactor of this switch declared `ch`), CP2P_ELIMIT (len over the channel's
 * recv_message_capacity: counted), CP2P_ENOTSUP (the peer has no reactor on `ch`), CP2P_ECLOSED
 * (the peer is being removed), CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_reactor_peer_try_send(cp2p_reactor_peer *p, uint8_t ch,
                                                      const void *msg, size_t len);
/* Queue msg[0..len) (copied), waiting up to timeout_ms for room (CometBFT's Send). Returns 0,
 * and then `cb` (may be NULL) runs once, from the loop, with 0 (queued), CP2P_ETIMEDOUT (no
 * room in time: counted), CP2P_ECLOSED (the peer was removed first) or CP2P_ENOTSUP (the peer
 * refused the channel); or returns try_send's errors (CP2P_EFULL only when max_send_waiters
 * senders already wait) and `cb` never runs. timeout_ms 0 waits the default 10 s. */
typedef void (*cp2p_reactor_send_cb)(cp2p_reactor_peer *p, uint8_t ch, int status, void *ud);
CP2P_API CP2P_NODISCARD int cp2p_reactor_peer_send(cp2p_reactor_peer *p, uint8_t ch,
                                                  const void *msg, size_t len,
                                                  uint64_t timeout_ms, cp2p_reactor_send_cb cb,
                                                  void *ud);
/* The peer's slot for reactor `r` (CometBFT's peer.Set/Get, one slot per reactor): NULL until
 * set. Setting is loop only; reading also from r's workers. */
CP2P_API void cp2p_reactor_peer_set_data(cp2p_reactor_peer *p, const cp2p_reactor *r, void *data);
CP2P_API void *cp2p_reactor_peer_data(const cp2p_reactor_peer *p, const cp2p_reactor *r);
/* Remove the peer from every reactor with `reason` (copied, at most 63 bytes) and close its
 * connection (CometBFT's StopPeerForError). remove_peer runs from the loop, later. */
CP2P_API void cp2p_reactor_peer_stop(cp2p_reactor_peer *p, const char *reason);
CP2P_API void cp2p_reactor_peer_stats_get(const cp2p_reactor_peer *p,
                                          cp2p_reactor_peer_stats *out);
/* This peer's counters for channel `ch`. Returns 0 or CP2P_ENOENT. */
CP2P_API CP2P_NODISCARD int cp2p_reactor_peer_channel_stats(const cp2p_reactor_peer *p,
                                                           uint8_t ch, cp2p_channel_stats *out);

/* ---- on the thread-safe node API (cp2p/node.h) ----
 * A switch on a node's host, used from any thread but the node's own: each call runs on the
 * node's loop (cp2p_node_call_on_loop) and waits for its answer. The reactors' add_peer and
 * remove_peer run on the loop; receive on the loop (workers 0: it may then use the loop
 * functions above directly) or on the reactor's worker threads, from which these calls are
 * allowed (a reactor answers a message with cp2p_node_switch_send). */
typedef struct cp2p_node cp2p_node; /* cp2p/node.h (repeated typedef: same type) */
typedef struct cp2p_node_switch cp2p_node_switch;
/* Make and start a switch on the node's host with reactors[0..n) (copied; uds[i] is the ud of
 * reactor i, uds may be NULL). Returns 0 and *out, or the errors of cp2p_switch_new,
 * cp2p_switch_add_reactor and cp2p_switch_start, or cp2p_node_call_on_loop's. Stop it with
 * cp2p_node_switch_stop, before cp2p_node_stop. */
CP2P_API CP2P_NODISCARD int cp2p_node_switch_start(cp2p_node *n, const cp2p_switch_config *cfg,
                                                   const cp2p_reactor_desc *reactors,
                                                   size_t n_reactors, void *const *uds,
                                                   cp2p_node_switch **out);
/* cp2p_reactor_peer_try_send to `peer`: CP2P_ENOENT also when the peer is not added. */
CP2P_API CP2P_NODISCARD int cp2p_node_switch_try_send(cp2p_node_switch *ns,
                                                      const cp2p_peer_id *peer, uint8_t ch,
                                                      const void *msg, size_t len);
/* cp2p_reactor_peer_send to `peer`, waiting until the message is queued: 0, CP2P_ETIMEDOUT
 * (no room within timeout_ms, > 0), or try_send's errors. */
CP2P_API CP2P_NODISCARD int cp2p_node_switch_send(cp2p_node_switch *ns, const cp2p_peer_id *peer,
                                                  uint8_t ch, const void *msg, size_t len,
                                                  uint64_t timeout_ms);
/* cp2p_switch_broadcast: *queued (may be NULL) gets the number of peers it queued for. */
CP2P_API CP2P_NODISCARD int cp2p_node_switch_broadcast(cp2p_node_switch *ns, uint8_t ch,
                                                       const void *msg, size_t len,
                                                       size_t *queued);
CP2P_API CP2P_NODISCARD int cp2p_node_switch_stats(cp2p_node_switch *ns, cp2p_switch_stats *out);
/* The seed's Stop, Reset, Start on the node API: cp2p_switch_stop (remove_peer "switch
 * stopped" for every peer), cp2p_switch_reset, cp2p_switch_start, waiting for all three; the
 * reactors stay registered and the peers are added again as they handshake anew. Returns 0,
 * the errors of those calls (CP2P_ESTATE: not running, or a restart in progress),
 * CP2P_ETIMEDOUT or cp2p_node_call_on_loop's. */
CP2P_API CP2P_NODISCARD int cp2p_node_switch_restart(cp2p_node_switch *ns);
/* Stop the switch (cp2p_switch_close on the loop: remove_peer runs for every peer), wait for
 * it and free the handle. The stop waits for receive calls in progress; one blocked in a node
 * call (which needs the loop) waits for that call's timeout. Call it before cp2p_node_stop,
 * which frees the node (and, with its host, the switch): the handle cannot be used after. */
CP2P_API void cp2p_node_switch_stop(cp2p_node_switch *ns);

#ifdef __cplusplus
}
#endif
#endif
