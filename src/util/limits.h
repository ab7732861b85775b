/* Every named limit of cp2p, with where its value comes from (STYLE.md section 1).
 * Sections stand in layer order (docs/ARCHITECTURE.md: util, multiformats, crypto, negotiate,
 * muxer, swarm, protocols, emitter, api); a module adds its limits to its layer's part, each
 * next to its reason. Nothing else defines a numeric limit. */
#ifndef CP2P_UTIL_LIMITS_H
#define CP2P_UTIL_LIMITS_H

/* ---- util ---- */
/* Big-number bases (base58btc, base36) are quadratic; the longest such text we need is a
 * CIDv0/peer ID (~50 chars). Our choice: 256 bytes of binary (about 350 characters) is far
 * above any real use. Encoders and decoders share the bound. */
/* Base36 (multibase 'k') is quadratic like base58: same bound, for the same reason. */
#define CP2P_BASEX_MAX_BYTES 256
/* Log lines are formatted into a stack buffer of this size and truncated past it (our choice). */
#define CP2P_LOG_LINE_MAX 1024
/* Per-module log level overrides (our choice). */
#define CP2P_LOG_MODULE_OVERRIDES 16
/* Most items one keyed hash map may be created for (src/util/hashmap.c; our choice: 16 Mi items,
 * at most 1 GiB of slots, far above the largest table bound, CP2P_PEERSTORE_MAX_PEERS_LIMIT). */
#define CP2P_HASHMAP_MAX_ITEMS (1u << 24)

/* ---- multiformats ---- */
/* Largest binary multiaddr accepted. Our choice: the multiaddr spec sets no limit; real
 * addresses are under 200 bytes (a circuit address with two peer IDs is about 120), and 1024
 * leaves room for webtransport certhashes and unix paths while bounding every copy. */
#define CP2P_MULTIADDR_MAX_BYTES 1024
/* Most components in one multiaddr. Our choice: a relayed webtransport address has about ten. */
#define CP2P_MULTIADDR_MAX_COMPONENTS 32

/* ---- crypto (keys) ---- */
/* Largest protobuf PublicKey/PrivateKey we parse. Our choice: the largest real keys are RSA;
 * a 4096-bit RSA PrivateKey (PKCS#1) encodes to about 2,350 bytes (the spec's test vector) and
 * an 8192-bit RSA PublicKey (go-libp2p's MaxRsaKeyBits) to about 1,070 bytes. */
#define CP2P_KEY_PB_MAX 4096
/* Largest key file cp2p_privkey_load() reads: one PrivateKey message (our choice). */
#define CP2P_KEY_FILE_MAX CP2P_KEY_PB_MAX

/* ---- crypto (noise) ---- */
/* Largest Noise message, the body of one frame: the 2-byte big-endian length prefix cannot say
 * more (libp2p noise spec, "Wire Format"; Noise spec section 3: 65535 bytes). */
#define CP2P_NOISE_MSG_MAX 65535
/* Largest plaintext in one transport frame: the message minus the 16-byte Poly1305 tag (as
 * js-libp2p-noise's NOISE_MSG_MAX_LENGTH_BYTES_WITHOUT_TAG). */
#define CP2P_NOISE_PLAINTEXT_MAX (CP2P_NOISE_MSG_MAX - 16)
/* Default limit on a handshake message (pre-authentication, STYLE.md 6.8). Our choice: real
 * messages carry one identity key, one signature and a few extension strings, a few hundred
 * bytes for Ed25519/secp256k1 (under 2 KiB even for RSA-4096 identities). Configurable up to
 * CP2P_NOISE_MSG_MAX. */
#define CP2P_NOISE_HS_MSG_MAX_DEFAULT 8192
/* Default time for the whole handshake, from the core's creation (our choice; js-libp2p allows
 * 10 s for a whole inbound upgrade, INBOUND_UPGRADE_TIMEOUT). */
#define CP2P_NOISE_HANDSHAKE_TIMEOUT_MS 10000
/* Stream muxers we accept in the remote's early-negotiation list, and the longest name (our
 * choice: real peers list one to three names of about 15 bytes; multistream-select protocol IDs
 * are short too). */
#define CP2P_NOISE_MUXERS_MAX 16
#define CP2P_NOISE_MUXER_NAME_MAX 256
/* Default bounds of the decrypted-plaintext buffer and of the outgoing-ciphertext buffer of one
 * session (our choice: four full frames each, 256 KiB; the minimum is one full frame, enforced
 * by cp2p__noise_new: CP2P_NOISE_PLAINTEXT_MAX in, 2 + CP2P_NOISE_MSG_MAX out). */
#define CP2P_NOISE_RX_BUF_DEFAULT (256 * 1024)
#define CP2P_NOISE_TX_BUF_DEFAULT (256 * 1024)

/* ---- crypto: signed peer records (src/crypto/peer_record.c) ---- */
/* Largest signed envelope opened. Our choice: an Ed25519 envelope with 32 TCP/QUIC addresses
 * is about 1.3 KiB; 4 KiB still fits an RSA-2048 key and signature (about 560 bytes) with
 * them. Checked before anything is decoded. */
#define CP2P_PEER_RECORD_MAX 4096
/* Addresses kept from one record; the rest are dropped and counted (our choice: the
 * peerstore's default per-peer cap, CP2P_PEERSTORE_MAX_ADDRS_DEFAULT, is 32 too). */
#define CP2P_PEER_RECORD_MAX_ADDRS 32

/* ---- negotiate (multistream-select 1.0) ---- */
/* Largest message (length prefix value, newline included). go-multistream and js-libp2p both
 * refuse messages over 1024 bytes; protocol IDs are short paths. */
#define CP2P_MSS_MAX_MSG 1024
/* Proposals a listener answers with "na" before giving up on the stream (our choice: a dialer
 * with more than a handful of alternatives is probing, not negotiating). */
#define CP2P_MSS_MAX_PROPOSALS 16
/* Protocols a dialer may offer in one negotiation (our choice, same bound). */
#define CP2P_MSS_MAX_OFFER 16
/* Protocols a listener may support, i.e. handlers a host may register (our choice). */
#define CP2P_MSS_MAX_SUPPORTED 256
/* Largest "ls" answer we send; the listing is cut there (our choice). */
#define CP2P_MSS_MAX_LS (64 * 1024)

/* ---- muxer (yamux) ---- */
/* A new stream's receive window, which both sides assume without any frame (hashicorp/yamux
 * spec.md "Flow Control": 256KB). A larger configured initial window is granted in the SYN/ACK. */
#define CP2P_YAMUX_SPEC_WINDOW (256 * 1024)
#define CP2P_YAMUX_INITIAL_WINDOW CP2P_YAMUX_SPEC_WINDOW
/* Auto-tuning ceiling of one stream's receive window: go-yamux maxStreamWindow and js-libp2p
 * yamux MAX_STREAM_WINDOW are both 16 MiB. */
#define CP2P_YAMUX_MAX_WINDOW (16 * 1024 * 1024)
/* Peer-opened streams alive at once; past it new SYNs are reset. go-yamux MaxIncomingStreams and
 * js-libp2p yamux maxInboundStreams are both 1000. A stream counts until the app releases it. */
#define CP2P_YAMUX_MAX_INBOUND_STREAMS 1000
/* Our streams alive at once: js-libp2p yamux maxOutboundStreams (1000). */
#define CP2P_YAMUX_MAX_OUTBOUND_STREAMS 1000
/* Peer-opened streams the application has not accepted yet; past it new SYNs are reset.
 * go-yamux AcceptBacklog (256). */
#define CP2P_YAMUX_MAX_UNACKED_INBOUND 256
/* Our SYNs not yet acknowledged: go-yamux blocks OpenStream at AcceptBacklog (256) in-flight
 * SYNs ("synCh"); we return CP2P_EFULL instead. */
#define CP2P_YAMUX_MAX_UNACKED_OUTBOUND 256
/* Largest Data frame we send, header included, so one stream cannot hog the connection
 * (go-yamux MaxMessageSize and js-libp2p yamux maxMessageSize are 64 KiB): one Noise frame's
 * plaintext, so that each Data frame is encrypted in one piece straight from yamux's buffer
 * instead of straddling two Noise frames and being copied to be gathered. */
#define CP2P_YAMUX_MAX_FRAME CP2P_NOISE_PLAINTEXT_MAX
/* Cap on bytes buffered for all streams of one session, and on the sum of their receive windows
 * beyond what auto-tuning may grow: go-libp2p's resource manager gives a connection 32 MiB
 * (ConnBaseLimit.Memory). */
#define CP2P_YAMUX_MAX_SESSION_RECV (32 * 1024 * 1024)
/* write() accepts data while less than this is queued and unsent: go-yamux queues at most 64
 * frames of 64 KiB (sendCh) before Write blocks, i.e. 4 MiB. */
#define CP2P_YAMUX_MAX_OUT_BUFFERED (4 * 1024 * 1024)
/* A ping unanswered this long is reported as timed out: go-yamux waits ConnectionWriteTimeout
 * (10 s) for a ping answer. */
#define CP2P_YAMUX_PING_TIMEOUT_MS 10000
/* Unsent answers to the peer's pings; past it answers are dropped: go-yamux PingBacklog (32). */
#define CP2P_YAMUX_MAX_PONG_BACKLOG 32
/* Abuse budgets (STYLE.md 6.9), token buckets (burst, refill per second). Our choices:
 * - resets of peer-opened streams by the peer: the HTTP/2 "rapid reset" attack (CVE-2023-44487)
 *   and h2o's reset_budget; 256 at once and 32 a second is far above stream cancellation in real
 *   libp2p protocols;
 * - SYNs we must refuse (over a limit, after GoAway): 1024 at once covers a js peer opening its
 *   1000 outbound streams in one burst while we are slow to accept;
 * - pings and unsolicited ping answers: go and js send keepalives every 30 s;
 * - frames with no flags and no bytes (HTTP/2 "empty frames flood", CVE-2019-9518): go-yamux and
 *   js never send them. */
#define CP2P_YAMUX_RESET_BURST 256
#define CP2P_YAMUX_RESET_PER_SEC 32
#define CP2P_YAMUX_REFUSE_BURST 1024
#define CP2P_YAMUX_REFUSE_PER_SEC 128
#define CP2P_YAMUX_PING_BURST 32
#define CP2P_YAMUX_PING_PER_SEC 8
#define CP2P_YAMUX_EMPTY_BURST 1024
#define CP2P_YAMUX_EMPTY_PER_SEC 256
/* Unsent control frames (window updates, answers, resets) past which we stop answering refused
 * SYNs with RST (dropped and counted): a peer that opens streams but never reads could otherwise
 * grow our output without bound. Our choice: 64 KiB, about 5,000 frames. */
#define CP2P_YAMUX_MAX_CTRL_BACKLOG (64 * 1024)
/* Largest value a budget parameter may take (our choice: a million a second is no budget at
 * all; src/util/token_bucket.c itself is exact for any uint32_t). */
#define CP2P_YAMUX_BUDGET_MAX 1000000
/* Stream IDs (per parity) behind the highest one the peer opened for which we remember whether
 * they were opened, to detect ID reuse while tolerating SYNs that arrive out of order (go-yamux
 * allocates IDs before queueing SYNs, so concurrent opens can reorder up to AcceptBacklog = 256
 * of them). Our choice: 4x that, 128 bytes of bitmap. */
#define CP2P_YAMUX_ID_WINDOW 1024

/* ---- swarm (host, connections, streams) ---- */
/* Timeouts of the host (our choices, as go-libp2p: 10 s dial and upgrade, 10 s negotiation). */
#define CP2P_HOST_DIAL_TIMEOUT_MS 10000
#define CP2P_HOST_UPGRADE_TIMEOUT_MS 10000
#define CP2P_HOST_NEGOTIATE_TIMEOUT_MS 10000
/* yamux keepalive ping interval on a connection (go-yamux's KeepAliveInterval: 30 s; we check
 * liveness more often, 15 s, since consensus networks want dead peers found fast). */
#define CP2P_HOST_KEEPALIVE_MS 15000
/* Connections at once, and inbound connections still in their upgrade (our choices; the latter
 * caps what a slow-loris attacker holds: each costs one socket and a few KiB). */
#define CP2P_HOST_MAX_CONNS 256
#define CP2P_HOST_MAX_PENDING_INBOUND 64
#define CP2P_HOST_MAX_LISTENERS 16
/* Bytes one stream may have queued by cp2p_stream_write and not yet taken by yamux. */
#define CP2P_HOST_STREAM_WRITE_BUFFER (8 * 1024 * 1024)
/* Bytes queued by stream writers on one connection, all streams together (our choice: with the
 * yamux receive cap of 32 MiB this bounds a connection's buffered memory each way). */
#define CP2P_HOST_CONN_WRITE_BUFFER (32 * 1024 * 1024)
/* Inbound streams of one protocol open at once on one connection (js-libp2p's registrar
 * defaults to 32 per protocol; go-libp2p's resource manager scales per protocol and peer; our
 * choice: 64). Past it a new stream is reset and counted. */
#define CP2P_HOST_MAX_INBOUND_PER_PROTOCOL 64
/* Socket read buffer of a connection: one read asks for this much (libuv suggests 64 KiB);
 * unconsumed bytes stay below 2 Noise frames plus one read. */
#define CP2P_CONN_READ_CHUNK (64 * 1024)
#define CP2P_CONN_RBUF_MAX (4 * 64 * 1024)
/* Encrypted bytes handed to uv_write and not yet written: past this, yamux output waits, which
 * pushes back on stream writers through yamux. Was 4 MiB; 64 KiB since issue 12: bytes here are
 * past the stream scheduler, so a small message or a high-priority stream waits behind all of
 * them. The kernel's socket buffer holds what is in flight, so this does not bound throughput
 * on long links; TCP_NOTSENT_LOWAT (cp2p_host_config.tcp_notsent_lowat) keeps its unsent part
 * short too. Measured in docs/BENCHMARKS.md, "Stream scheduling". */
#define CP2P_CONN_MAX_WRITE_INFLIGHT (64 * 1024)
/* yamux's max_out_buffered on host connections (the core's default, CP2P_YAMUX_MAX_OUT_BUFFERED,
 * is go-yamux's 4 MiB): one full frame, for the same reason. With 4 MiB here and above, two
 * bulk streams of priorities 1 and 4 shared about 1:1 on loopback and a small message waited
 * 5-10 ms; with 64 KiB each the share is 1:4 and throughput did not drop. */
#define CP2P_CONN_YAMUX_OUT_BUFFERED (64 * 1024)
/* Both caps above are maxima: a connection lowers them to what it sends in
 * CP2P_CONN_QUEUE_US at its measured send rate, never under CP2P_CONN_QUEUE_MIN (as Linux's
 * byte queue limits size a NIC's queue by its drain rate). 250 us: one 16 KiB packet at
 * 64 MB/s, the channel layer's latency target (a vote beside saturated channels waited 3.1x
 * its unloaded p99 with 64 KiB there, 1.9x with 16 KiB); on loopback (300-700 MB/s) the caps
 * stay at 64 KiB, where one stream's throughput needs them. The rate is taken over at least
 * CP2P_CONN_QUEUE_SAMPLE_US of time with writes in flight. */
#define CP2P_CONN_QUEUE_US 250
#define CP2P_CONN_QUEUE_MIN (16 * 1024)
/* While streams share a connection (the scheduler served two different ones less than
 * CP2P_CONN_SHARED_MS apart), each cap is at most CP2P_CONN_QUEUE_SHARED: the two together hold
 * at most one 64 KiB frame, so what a newly ready stream waits for below the scheduler is one
 * frame time, the issue-12 target's allowance. A stream alone keeps the full caps, which one
 * stream's throughput needs on loopback (32 KiB caps cost a bulk stream 15 % there). */
#define CP2P_CONN_QUEUE_SHARED (32 * 1024)
#define CP2P_CONN_SHARED_MS 100
#define CP2P_CONN_QUEUE_SAMPLE_US 4000
/* Write scheduler (src/muxer/sched.c): bytes a stream of priority 1 may push into yamux per
 * round; priority p gets p times this. Our choice: at the default priority 4 a stream gets
 * 16 KiB per turn, a quarter of a full yamux frame (CP2P_YAMUX_MAX_FRAME), so streams
 * interleave finely while a turn still costs one yamux write call per 16 KiB. */
#define CP2P_CONN_SCHED_QUANTUM 4096
/* Write scheduler (src/muxer/sched.c): bytes a stream of priority 1 may push into yamux per
 * round; priority p gets p times this. Our choice: at the default priority 4 a stream gets
 * 16 KiB per turn, a quarter of a full yamux frame (CP2P_YAMUX_MAX_FRAME), so streams
 * interleave finely while a turn still costs one yamux write call per 16 KiB. */
#define CP2P_CONN_SCHED_QUANTUM 4096

/* ---- swarm: peerstore (src/swarm/peerstore.c) ---- */
/* Default peers kept (our choice, after CometBFT's address book, which holds a few thousand
 * addresses in 256 "new" + 64 "old" buckets; go-libp2p's peerstore is unbounded). Configurable
 * up to CP2P_PEERSTORE_MAX_PEERS_LIMIT. */
#define CP2P_PEERSTORE_MAX_PEERS_DEFAULT 10000
#define CP2P_PEERSTORE_MAX_PEERS_LIMIT 1000000
/* Default addresses per peer (our choice: identify keeps CP2P_IDENTIFY_MAX_ADDRS = 64 from one
 * message, but real nodes announce a handful; the address that expires first is dropped). */
#define CP2P_PEERSTORE_MAX_ADDRS_DEFAULT 32
#define CP2P_PEERSTORE_MAX_ADDRS_LIMIT 1024
/* Default protocols per peer: what identify keeps from one message. */
#define CP2P_PEERSTORE_MAX_PROTOCOLS_DEFAULT CP2P_IDENTIFY_MAX_PROTOCOLS
#define CP2P_PEERSTORE_MAX_PROTOCOLS_LIMIT 4096
/* Longest protocol ID: one multistream-select message (newline included) cannot carry more. */
#define CP2P_PEERSTORE_PROTOCOL_MAX CP2P_MSS_MAX_MSG
/* Longest agent version (our choice: real ones are under 100 bytes, e.g.
 * "go-libp2p/0.33.0 kubo/0.27.0"; identify messages are 8 KiB in all). */
#define CP2P_PEERSTORE_AGENT_MAX 1024
/* RTT smoothing: the new sample weighs 1/10 (go-libp2p peerstore LatencyEWMASmoothing = 0.1).
 * Samples are clamped to one minute (our choice: far above any ping timeout) so the integer
 * EWMA cannot overflow. */
#define CP2P_PEERSTORE_RTT_EWMA_DIV 10
#define CP2P_PEERSTORE_RTT_MAX_NS (60ULL * 1000 * 1000 * 1000)
/* Removed peers remembered for the next flush; past this the next flush rewrites the whole file
 * instead (our choice: bounds memory under add/remove churn between flushes). */
#define CP2P_PEERSTORE_PENDING_DELETES_MAX 4096
/* Initial hash buckets (our choice; doubled while peers outnumber buckets). */
#define CP2P_PEERSTORE_BUCKETS_MIN 64

/* ---- swarm: the host's peerstore and the dialer (src/swarm/host_uv.c, dialer_uv.c) ---- */
/* How often the host writes its peerstore to disk and drops expired addresses (our choice:
 * CometBFT's address book saves every 2 minutes; 30 s loses less on a crash and a flush of
 * the few peers that changed costs milliseconds). */
#define CP2P_HOST_PEERSTORE_FLUSH_MS 30000
/* TTL of the addresses a peer announces in identify, and of an address we dialed explicitly
 * and reached (our choice: a day, renewed by every identify and every connection, so a node
 * restarted within a day redials its peers; go-libp2p keeps them while connected, then 15 min,
 * but it has a DHT to find peers again). */
#define CP2P_HOST_IDENTIFY_ADDR_TTL_MS (24ULL * 3600 * 1000)
#define CP2P_HOST_DIALED_ADDR_TTL_MS (24ULL * 3600 * 1000)
/* Addresses of one peer a dial by peer ID considers (the best ones, in peerstore order). */
#define CP2P_DIALER_MAX_ADDRS 16
/* Address dials of one peer dial in flight at once, and the delay before each further one
 * starts while the earlier ones are still pending (go-libp2p's dial ranker for TCP:
 * 250 ms between addresses; it never has more than a handful in flight per peer). */
#define CP2P_DIALER_MAX_PARALLEL 4
#define CP2P_DIALER_STAGGER_MS 250
/* Default overall deadline of one dial by peer ID, all addresses included (our choice:
 * three TCP dial timeouts' worth would be too long for a caller; go-libp2p's
 * DefaultDialTimeout per peer is 15 s plus the upgrade). */
#define CP2P_DIALER_PEER_TIMEOUT_MS 30000
/* Backoff after a failed dial by peer ID: base * 2^(failures-1), capped, with "equal jitter"
 * (a uniform draw in [d/2, d]) so peers that failed together do not retry together
 * (go-libp2p swarm: BackoffBase 5 s, BackoffMax 5 min). An entry is forgotten once it has been
 * expired for the max; at most CP2P_DIALER_MAX_BACKOFFS are kept (the oldest goes first). */
#define CP2P_DIALER_BACKOFF_BASE_MS 5000
#define CP2P_DIALER_BACKOFF_MAX_MS (5ULL * 60 * 1000)
#define CP2P_DIALER_MAX_BACKOFFS 1024
/* Dials by peer ID in flight host-wide (go-libp2p's ConcurrentFdDials is 160 sockets; at
 * CP2P_DIALER_MAX_PARALLEL addresses each, 40 peers make the same 160). */
#define CP2P_DIALER_MAX_DIALS 40

/* ---- swarm: connection manager ---- */
/* Watermarks and grace period (go-libp2p's connmgr defaults: low 160, high 192, grace 1 min;
 * ours are scaled to the host's 256-connection cap). */
#define CP2P_CONNMGR_LOW_WATER 192
#define CP2P_CONNMGR_HIGH_WATER 224
#define CP2P_CONNMGR_GRACE_MS 60000
/* Connections per IP address (CometBFT allows one per IP by default for inbound peers; a
 * handful lets NATed operators share an address; our choice) and accepted inbound connections
 * per second with a burst (our choice). */
#define CP2P_CONNMGR_MAX_PER_IP 8
#define CP2P_CONNMGR_INBOUND_PER_SEC 32
#define CP2P_CONNMGR_INBOUND_BURST 64
/* Open connections to one peer (CometBFT allows one connection per peer; libp2p may briefly
 * have two during a simultaneous dial, when each side dials the other, so 2). */
#define CP2P_CONNMGR_MAX_PER_PEER 2
/* How often the host checks its connection count against the high water mark besides after
 * each upgrade (our choice; go-libp2p's connmgr silence period is 10 s). */
#define CP2P_CONNMGR_CHECK_MS 10000
/* Persistent peers of one host (our choice: the host's default connection cap; CometBFT sets
 * no limit on persistent_peers). */
#define CP2P_HOST_MAX_PERSISTENT_PEERS 256
/* Known peers a starting host redials from its peerstore, most recently connected first
 * (our choice: CometBFT dials from its address book until it has MaxNumOutboundPeers, 10;
 * 32 leaves room below the dialer's CP2P_DIALER_MAX_DIALS for the application's own dials). */
#define CP2P_HOST_RECONNECT_PEERS 32

/* ---- services: framed links (src/protocols/framed/framed_uv.c, cp2p/framed.h) ---- */
/* Largest frame body (our choice: go-libp2p-pubsub's and gossipsub's default maximum RPC is
 * 1 MiB; bigger objects belong in chunks, as the artifact layer does). */
#define CP2P_FRAMED_MAX_FRAME (1024 * 1024)
/* Per-peer queue of frames waiting for the stream (our choice: a few seconds of a busy
 * consensus peer; 4 MiB is four frames of the maximum size). */
#define CP2P_FRAMED_MAX_QUEUE_FRAMES 1024
#define CP2P_FRAMED_MAX_QUEUE_BYTES (4 * 1024 * 1024)
/* Bytes the stream may hold unsent before frames wait in our queue: enough to keep a 1 Gbit/s
 * link with 2 ms RTT busy, small enough that the full policy, not the stream's write buffer,
 * decides what is dropped. */
#define CP2P_FRAMED_STREAM_BACKLOG (256 * 1024)
/* Reopen backoff after an outbound stream dies: go-libp2p's dial backoff starts at 5 s; a
 * stream on a live connection is cheaper, so start at 100 ms and cap at 30 s. */
#define CP2P_FRAMED_BACKOFF_MS 100
#define CP2P_FRAMED_BACKOFF_MAX_MS 30000
/* Peers one helper tracks (as the emitter's candidate table). */
#define CP2P_FRAMED_MAX_PEERS 4096
#define CP2P_FRAMED_MAX_PEERS_LIMIT 1000000
/* Inbound streams of the helper's protocols per connection: one is normal; a peer that
 * reopens after a reset may briefly have two. */
#define CP2P_FRAMED_MAX_INBOUND_PER_CONN 4

/* ---- protocols: ping, perf ---- */
/* Ping payload (libp2p ping spec: 32 random bytes). */
#define CP2P_PING_SIZE 32
#define CP2P_PING_TIMEOUT_MS 10000
/* perf: bytes per write while streaming, and how much one perf stream keeps queued. */
#define CP2P_PERF_CHUNK (64 * 1024)
#define CP2P_PERF_QUEUE (1024 * 1024)

/* ---- protocols: identify ---- */
/* Largest identify message body. js-libp2p's identify refuses messages over 8 KiB
 * (MAX_IDENTIFY_MESSAGE_SIZE); go-libp2p's signed-record-carrying messages fit too. */
#define CP2P_IDENTIFY_MAX_MSG 8192
/* Listen addresses and protocols kept from one message; the rest are dropped and counted
 * (our choice: far above what real nodes announce, and bounded by the message size anyway). */
#define CP2P_IDENTIFY_MAX_ADDRS 64
#define CP2P_IDENTIFY_MAX_PROTOCOLS 256
/* A protocol ID or version string longer than this is dropped (our choice; multistream-select
 * cannot negotiate an ID longer than CP2P_MSS_MAX_MSG anyway). */
#define CP2P_IDENTIFY_MAX_STRING 1023

/* ---- protocols: request-response (src/protocols/reqresp) ---- */
/* Default request and response size caps: rust-libp2p request_response's cbor/json codecs
 * (1 MiB request, 10 MiB response). */
#define CP2P_REQRESP_MAX_REQUEST_BYTES (1024 * 1024)
#define CP2P_REQRESP_MAX_RESPONSE_BYTES (10 * 1024 * 1024)
/* Default per-request timeout, open + write + read: rust-libp2p request_response's 10 s. */
#define CP2P_REQRESP_TIMEOUT_MS 10000
/* Default concurrent inbound requests per connection and protocol (our choice; rust-libp2p
 * allows 100 streams per behaviour, go-libp2p's resource manager a few hundred per peer). */
#define CP2P_REQRESP_MAX_INBOUND_PER_PEER 32
/* Sending a request or response: bytes per cp2p_stream_write, and how many one request keeps
 * queued on its stream (our choice: below the host's per-stream write buffer, so a 10 MiB
 * response is fed as the window admits it). */
#define CP2P_REQRESP_WRITE_CHUNK (64 * 1024)
#define CP2P_REQRESP_WRITE_QUEUE (1024 * 1024)

/* ---- protocols: kad routing table and lookup (src/protocols/kad/kad_rt.c, kad_lookup.c) ---- */
/* Defaults: bucket size k = 20 (the kad-dht spec's replication parameter, go-libp2p-kbucket's
 * bucket size); largest k accepted (our choice: bounds the table at 256 * 64 entries). */
#define CP2P_KAD_K 20
#define CP2P_KAD_MAX_K 64
/* Diversity: peers of one IP group per bucket, and in the whole table. go-libp2p-kbucket's
 * peerdiversity filter as kubo configures it for the public DHT is 2 per cpl and 3 per table
 * (NewRTPeerDiversityFilter(h, 2, 3)), over /16 IPv4 groups (/8 for legacy class A) and IPv6
 * ASNs. Our groups are finer (/24, /48: no ASN database), so the per-bucket value is go's and
 * the table-wide one is our choice: 10 lets a few nodes of one operator's subnet in. */
#define CP2P_KAD_MAX_PER_GROUP_BUCKET 2
#define CP2P_KAD_MAX_PER_GROUP_TABLE 10
/* An entry not seen for this long may be liveness-checked when a newcomer wants its slot
 * (our choice: go-libp2p-kad-dht pings peers not heard from in its 10 min refresh period,
 * "maxLastSuccessfulOutboundThreshold"; 5 min keeps buckets livelier). A check that was asked
 * for and never answered is abandoned after the same time. */
#define CP2P_KAD_STALE_AFTER_MS (5ULL * 60 * 1000)
/* Deepest bucket refreshed, and the tries allowed to generate a key for it: generating a key
 * with cpl c takes about 2^(c+1) SHA-256 (go-libp2p-kbucket also refreshes cpl 0..15, with a
 * precomputed table; we search, 16x the expected 2^16 for c = 15, about 0.5 s worst case). */
#define CP2P_KAD_MAX_REFRESH_CPL 15
#define CP2P_KAD_REFRESH_KEY_TRIES (1UL << 20)
/* Lookup: concurrency alpha (go-libp2p-kad-dht's Concurrency default, 10) and its upper bound
 * (our choice); per-query and whole-lookup timeouts (our choices, as go's 10 s dial/stream
 * timeouts and a one-minute query context). */
#define CP2P_KAD_ALPHA 10
#define CP2P_KAD_MAX_ALPHA 64
#define CP2P_KAD_QUERY_TIMEOUT_MS 10000
#define CP2P_KAD_LOOKUP_TIMEOUT_MS 60000
/* Candidates one lookup keeps (the closest; the farthest not in flight are dropped), and closer
 * peers taken from one response (the closest 2k; the rest are dropped and counted). Our choice:
 * an honest response carries k = 20 peers, and 512 candidates are 25 responses' worth. */
#define CP2P_KAD_LOOKUP_MAX_CANDIDATES 512
#define CP2P_KAD_MAX_CLOSER_PER_RESPONSE 40

/* ---- protocols: kad messages and stores (src/protocols/kad/kad_msg.c, kad_store.c) ---- */
/* Largest message body. go-libp2p-kad-dht and js-libp2p accept 4 MiB (msgio / lp max), rust-
 * libp2p kad 16 KiB by default. Our choice, 1 MiB: the binding reads a whole message into memory
 * per stream and protobuf-c copies every bytes field while unpacking (about twice the size at
 * peak), so a quarter of go's bound; it still holds a maximal value (CP2P_KAD_MAX_VALUE) plus
 * two full peer lists (2 x 64 peers x 32 addresses of ~100 bytes, about 450 KiB). */
#define CP2P_KAD_MAX_MSG (1024 * 1024)
/* Longest message or record key (our choice: real keys are "/pk/" or "/ipns/" + a 34-38 byte
 * multihash, or a CID multihash, under 100 bytes; the specs set no limit). */
#define CP2P_KAD_MAX_KEY 1024
/* Largest record value: rust-libp2p's MemoryStore refuses values over 65 KiB (max_value_bytes);
 * IPNS records are at most 10 KiB (ipns spec), public keys CP2P_KEY_PB_MAX. */
#define CP2P_KAD_MAX_VALUE (64 * 1024)
/* Peers kept from each list (closerPeers, providerPeers) of one message, and addresses kept per
 * peer; the rest are dropped and counted. Our choice: a correct answer carries k = 20 peers
 * (go returns every provider it holds, usually a handful); real peers announce a few addresses
 * (the peerstore keeps CP2P_PEERSTORE_MAX_ADDRS_DEFAULT = 32). */
#define CP2P_KAD_MAX_PEERS_PER_MSG 64
#define CP2P_KAD_MAX_ADDRS_PER_PEER 32
/* A Record's timeReceived (RFC 3339 text, about 30 bytes) longer than this is ignored (ours). */
#define CP2P_KAD_MAX_TIME_RECEIVED 64
/* Record namespaces with a validator, and the longest namespace name (our choice: go and js
 * register two, "pk" and "ipns"). */
#define CP2P_KAD_MAX_NAMESPACES 16
#define CP2P_KAD_MAX_NAMESPACE_LEN 64
/* Store defaults. Records: go-libp2p-kad-dht keeps them MaxRecordAge = 36 h; counts and bytes are
 * our choice (go's datastore is unbounded; rust-libp2p's MemoryStore keeps 1024 records): 10,000
 * records and 64 MiB of values. Providers: go's ProvideValidity is 48 h; rust-libp2p keeps 20
 * providers per key (max_providers_per_key, = k) and our choice of 10,000 keys. */
#define CP2P_KAD_STORE_MAX_RECORDS 10000
#define CP2P_KAD_STORE_MAX_RECORD_BYTES (64 * 1024 * 1024)
#define CP2P_KAD_STORE_RECORD_TTL_MS (36ULL * 3600 * 1000)
#define CP2P_KAD_STORE_MAX_PROVIDER_KEYS 10000
#define CP2P_KAD_STORE_MAX_PROVIDERS_PER_KEY 20
#define CP2P_KAD_STORE_PROVIDER_TTL_MS (48ULL * 3600 * 1000)

/* ---- protocols: kad binding (kad_uv.c) ---- */
/* Refresh every 10 min: go-libp2p-kad-dht's RoutingTableRefreshPeriod (k, alpha and the
 * timeouts are in the lookup section above). */
#define CP2P_KAD_REFRESH_INTERVAL_MS (10 * 60 * 1000)
/* Provider records are announced again every 22 h (go's provider republish interval, under
 * their 48 h validity). */
#define CP2P_KAD_REPUBLISH_INTERVAL_MS (22ULL * 3600 * 1000)
/* Inbound requests per peer: 20/s with a burst of 40 (our choice: a lookup sends one request
 * per peer, a busy client a few per second). Peers tracked for it: the least recently seen
 * slot is reused, so a flood of new peer IDs only resets their own buckets. */
#define CP2P_KAD_REQUESTS_PER_SEC 20
#define CP2P_KAD_REQUESTS_BURST 40
#define CP2P_KAD_RATE_SLOTS 256
/* Addresses learned from DHT answers live in the peerstore for 30 min (our choice: long
 * enough to dial the peers a lookup found; go uses minutes-long temporary TTLs). */
#define CP2P_KAD_ADDR_TTL_MS (30 * 60 * 1000)
/* Pings of one liveness check when they time out on a live connection (our choice: one retry,
 * so a peer busy for one query timeout is not dropped from the table). */
#define CP2P_KAD_CHECK_PINGS 2
/* DHT operations (lookups of every kind) in flight at once; more are refused with CP2P_EFULL
 * and counted (our choice: each may hold alpha queries and their dials). */
#define CP2P_KAD_MAX_OPS 256
/* Liveness checks (dial + ping) in flight at once (our choice). */
#define CP2P_KAD_MAX_CHECKS 16
/* Values a GET collects from different peers before choosing the best (our choice: k). */
#define CP2P_KAD_MAX_VALUES_PER_GET 20
/* Bootstrap peers configured (our choice). */
#define CP2P_KAD_MAX_BOOTSTRAP 64
/* Providers in one GET_PROVIDERS answer and in one find_providers result (our choice: go
 * answers with all it has, bounded by its per-key store; 20 is the store's per-key bound). */
#define CP2P_KAD_MAX_PROVIDERS_ANSWER 20
/* An empty table triggers a new bootstrap at most this often (our choice). */
#define CP2P_KAD_REBOOTSTRAP_MS 10000
/* Table entries not seen for CP2P_KAD_STALE_AFTER_MS are checked (dial + ping) every minute
 * (our choice; go's refresh manager pings idle peers on each refresh). */
#define CP2P_KAD_SWEEP_INTERVAL_MS 60000
/* Store purge and republish check period (our choice). */
#define CP2P_KAD_PURGE_INTERVAL_MS 60000
/* The DHT timer: every 50 ms while lookups run (their time-outs), else every second. */
#define CP2P_KAD_TICK_MS 50
#define CP2P_KAD_IDLE_TICK_MS 1000

/* ---- protocols: gossipsub router and RPC codec (src/protocols/gossipsub/gs_router.c, gs_rpc.c) */
/* Overlay parameters: gossipsub-v1.0/1.1 spec and go-libp2p-pubsub defaults (D 6, D_lo 5,
 * D_hi 12, D_lazy 6, D_score 4, D_out 2, heartbeat 1 s, fanout TTL 60 s, mcache 5 windows of
 * which 3 are gossiped, seen TTL 120 s, prune backoff 60 s, unsubscribe backoff 10 s, graft
 * flood threshold 10 s, prune peers 16, opportunistic graft every 60 heartbeats for 2 peers,
 * gossip factor 0.25, IWANT follow-up 3 s, max IHAVE length 5000, max IHAVE messages 10). */
#define CP2P_GS_D 6
#define CP2P_GS_D_LO 5
#define CP2P_GS_D_HI 12
#define CP2P_GS_D_LAZY 6
#define CP2P_GS_D_SCORE 4
#define CP2P_GS_D_OUT 2
#define CP2P_GS_HEARTBEAT_MS 1000
#define CP2P_GS_FANOUT_TTL_MS 60000
#define CP2P_GS_MCACHE_LEN 5
#define CP2P_GS_MCACHE_GOSSIP 3
#define CP2P_GS_SEEN_TTL_MS 120000
#define CP2P_GS_PRUNE_BACKOFF_MS 60000
#define CP2P_GS_UNSUB_BACKOFF_MS 10000
#define CP2P_GS_GRAFT_FLOOD_MS 10000
#define CP2P_GS_PRUNE_PEERS 16
#define CP2P_GS_OPP_GRAFT_TICKS 60
#define CP2P_GS_OPP_GRAFT_PEERS 2
#define CP2P_GS_GOSSIP_FACTOR 0.25
#define CP2P_GS_IWANT_FOLLOWUP_MS 3000
#define CP2P_GS_MAX_IHAVE_LEN 5000
#define CP2P_GS_MAX_IHAVE_MSGS 10
/* Times one message is sent to one peer in reply to IWANT (go GossipRetransmission 3). */
#define CP2P_GS_GOSSIP_RETRANSMISSION 3
/* v1.2: messages at least this large trigger IDONTWANT (go IDontWantMessageThreshold 1 KiB);
 * IDONTWANT IDs kept per peer (go maxIDontWantMessages 1000) and for how many heartbeats
 * (go IDontWantMessageTTL 3). */
#define CP2P_GS_IDONTWANT_THRESHOLD 1024
#define CP2P_GS_IDONTWANT_MAX 1000
#define CP2P_GS_IDONTWANT_TTL_TICKS 3
/* Largest RPC frame read or written (go DefaultMaxMessageSize 1 MiB; js maxInboundDataLength
 * is 4 MiB, go's 1 MiB is the interoperable bound). */
#define CP2P_GS_MAX_RPC_SIZE (1024 * 1024)
/* Per-RPC decode limits (our choice: go caps nothing per RPC beyond size; js limits
 * subscriptions/messages/ihave/iwant per RPC to Infinity by default, Lodestar uses 5000). */
#define CP2P_GS_MAX_RPC_SUBS 5000
#define CP2P_GS_MAX_RPC_MSGS 5000
#define CP2P_GS_MAX_RPC_CONTROL 5000  /* IDs in all IHAVE/IWANT/IDONTWANT, and GRAFT+PRUNE */
#define CP2P_GS_MAX_PX_PEERS 64       /* peers in one PRUNE (our choice: 4 x prune_peers) */
#define CP2P_GS_MAX_TOPIC_LEN 1024    /* bytes in a topic name (our choice) */
#define CP2P_GS_MAX_MSG_ID 256        /* bytes in a message ID (our choice; go/js ids < 100) */
/* Topics one peer may subscribe to; beyond: ignored, counted, behaviour penalty (our choice,
 * go has no cap; Lodestar's maxSubscriptions is much lower). Topics the router tracks. */
#define CP2P_GS_MAX_PEER_SUBS 1000
#define CP2P_GS_MAX_TOPICS 10000
#define CP2P_GS_MAX_PEERS 4096
/* Seen-cache entries (our choice: 120 s at ~800 msg/s) and mcache entries. */
#define CP2P_GS_SEEN_MAX 100000
#define CP2P_GS_MCACHE_MAX 20000
/* Per-peer outbox: messages waiting (go peerOutboundQueueSize 32 RPCs; ours counts single
 * messages, so larger) and control entries waiting (our choice). */
#define CP2P_GS_OUTBOX_MSGS 1024
#define CP2P_GS_OUTBOX_CONTROL 8192
/* Events waiting for poll_event, validations pending in async mode (go validateQueueSize 32
 * per topic; ours is global), IWANT promises tracked (our choice). */
#define CP2P_GS_EVENT_QUEUE 4096
#define CP2P_GS_MAX_PENDING_VALIDATIONS 1024
#define CP2P_GS_MAX_PROMISES 10000

/* ---- protocols: gossipsub topic table (gs_router.c) ---- */
/* Local topics (ours: subscribed, or published to within the fanout TTL) have their own bound,
 * apart from CP2P_GS_MAX_TOPICS (which bounds remote-only topics), so that peers filling the
 * table never refuse our own subscriptions (our choice; go and js have no cap; Ethereum nodes
 * use about 100 topics). */
#define CP2P_GS_MAX_LOCAL_TOPICS 1024
/* When the remote-topic table is full, a new remote topic may evict one among this many
 * randomly sampled remote-only topics (approximate eviction, as Redis's maxmemory-samples;
 * our choice: O(1) per subscription instead of a scan of the table). */
#define CP2P_GS_TOPIC_EVICT_SAMPLE 16
/* Async validation: a VALIDATE event unanswered for this long is dropped as IGNORE and counted
 * (js-libp2p-gossipsub forgets unvalidated messages when they leave the mcache, after
 * mcache_len heartbeats: 5 s with the defaults). */
#define CP2P_GS_VALIDATION_TIMEOUT_MS 5000

/* ---- protocols: gossipsub peer score (src/protocols/gossipsub/gs_score.c) ---- */
/* Peers tracked at once, connected and retained together; past it add_peer fails with
 * CP2P_EFULL and is counted (our choice: the peerstore's default size; go-libp2p-pubsub's
 * peerStats map is unbounded). */
#define CP2P_GS_SCORE_MAX_PEERS 10000
/* Message delivery records kept; past it the oldest is dropped and counted (our choice:
 * go-libp2p-pubsub keeps every record for TimeCacheDuration, unbounded; 100,000 records hold
 * two minutes at over 800 messages a second). */
#define CP2P_GS_SCORE_MAX_RECORDS 100000
/* How long a delivery record is kept: go-libp2p-pubsub's TimeCacheDuration (120 s), so that late
 * duplicates of an invalid message are still penalised (P4). A topic's P3 window longer than
 * this extends it. */
#define CP2P_GS_SCORE_RECORD_TTL_MS 120000
/* Peers remembered per delivery record (our choice: gossipsub's D_hi is 12 mesh peers; 64 also
 * covers duplicates from gossip replies; more are dropped and counted). */
#define CP2P_GS_SCORE_RECORD_PEERS 64
/* Longest message ID tracked (our choice: go's default ID, from + seqno, is about 50 bytes and
 * hashed IDs are 20-32 bytes); longer IDs are not tracked, and counted. */
#define CP2P_GS_SCORE_MAX_MSG_ID 256
/* Scored topics in one parameter set, hence topic stats per peer (our choice), and the longest
 * topic name (our choice, as the gossipsub router's topic bound). */
#define CP2P_GS_SCORE_MAX_TOPICS 256
#define CP2P_GS_SCORE_MAX_TOPIC_LEN 1024
/* Longest IP text (INET6_ADDRSTRLEN is 46; room for a zone suffix; our choice). */
#define CP2P_GS_SCORE_IP_MAX 64
/* Counters (P4 invalid deliveries, P7 behaviour penalty) saturate here, and every weight, cap
 * and threshold must be within +-CP2P_GS_SCORE_PARAM_MAX, so that the sum of squares times
 * weights over all topics stays a finite double (our choice: far beyond graylisting). */
#define CP2P_GS_SCORE_COUNTER_MAX 1e9
#define CP2P_GS_SCORE_PARAM_MAX 1e12

/* ---- protocols: gossipsub binding (gossipsub_uv.c) ---- */
/* Bytes queued on a peer's outbound pubsub stream past which we stop taking frames for it (our
 * choice: 4 RPCs of the default maximum); the router's bounded outbox then drops and counts. */
#define CP2P_GS_STREAM_BACKLOG (4 * 1024 * 1024)
/* Connection tag of a peer in at least one of our meshes (cp2p_conn_set_tag): the connection
 * manager trims untagged connections first (our choice; any positive value works). */
#define CP2P_GS_MESH_TAG 10
/* TTL of the addresses learned from a PX signed peer record. go-libp2p-pubsub's pxConnect
 * consumes the record with peerstore.TempAddrTTL (2 minutes): long enough for the dial that
 * follows at once, short enough that a replayed old record ages out quickly. */
#define CP2P_GS_PX_ADDR_TTL_MS (2 * 60 * 1000)

/* ---- overlay: routing and reliable delivery (src/overlay/, cp2p/overlay.h) ---- */
/* Wire version of /cp2p/overlay/1.0.0 frames (OvlFrame.version); another is refused. */
#define CP2P_OVL_VERSION 1
/* Largest overlay frame. Our choice: one data message of CP2P_OVL_MAX_PAYLOAD plus its header
 * and path (32 peer IDs of 38 bytes), or a batch of route updates. */
#define CP2P_OVL_MAX_FRAME (64 * 1024)
/* Largest application payload of one overlay message (our choice: fits one frame). */
#define CP2P_OVL_MAX_PAYLOAD (48 * 1024)
/* Entries per frame: route updates (one signature of at most 72 bytes each), seqno requests,
 * link-state advertisements and links per advertisement (our choice: a frame stays under
 * CP2P_OVL_MAX_FRAME with Ed25519 ids). */
#define CP2P_OVL_MAX_ROUTES_PER_FRAME 128
#define CP2P_OVL_MAX_REQS_PER_FRAME 64
#define CP2P_OVL_MAX_LSAS_PER_FRAME 16
#define CP2P_OVL_MAX_LINKS 64
/* Hop limit: the most hops a message may take, and the longest source route (our choice; the
 * seed asks for a hop limit, IPv6 uses 64 for the whole Internet). */
#define CP2P_OVL_MAX_HOPS 32
#define CP2P_OVL_DEFAULT_HOP_LIMIT 16
/* Babel metric meaning unreachable (RFC 8966 section 2.1: 0xFFFF). */
#define CP2P_OVL_INF 0xFFFFu
/* Largest link cost (our choice: leaves room for a path of CP2P_OVL_MAX_HOPS links). */
#define CP2P_OVL_MAX_COST 1024u
/* Seqno requests travel this many hops toward the origin (RFC 8966 3.8.1.2 suggests 64; our
 * overlay is smaller). */
#define CP2P_OVL_REQ_HOPS 16
/* Nodes (route origins, link-state origins, dedup sources) one overlay keeps (our choice). */
#define CP2P_OVL_MAX_NODES 1024
/* Direct neighbours (our choice: a sparse mesh; bounds each LSA at CP2P_OVL_MAX_LINKS). */
#define CP2P_OVL_MAX_NEIGHBOURS CP2P_OVL_MAX_LINKS
/* Babel timers (RFC 8966 appendix B: update interval 4 x hello 4 s = 16 s; route expiry 3.5 x
 * update interval). Our default is faster: overlays are small and links are streams. */
#define CP2P_OVL_UPDATE_INTERVAL_MS 4000
#define CP2P_OVL_LSA_REFRESH_MS 10000
/* Reliable delivery (our choices, after RFC 6298 for the RTO): unacknowledged messages in all
 * and per destination, retransmissions before failure, RTO bounds. */
#define CP2P_OVL_MAX_UNACKED 4096
#define CP2P_OVL_MAX_UNACKED_PER_DST 256
#define CP2P_OVL_RETRY_LIMIT 8
#define CP2P_OVL_RTO_INITIAL_MS 1000
#define CP2P_OVL_RTO_MIN_MS 200
#define CP2P_OVL_RTO_MAX_MS 10000
/* Signature verifications a neighbour may cause (cache misses: a new seqno or LSA), a second
 * and in a burst (STYLE.md 6.9 abuse budget; our choice: a new neighbour's full dump of
 * CP2P_OVL_MAX_NODES routes and LSAs fits the burst; an Ed25519 verification costs ~50 us, so
 * the rate bounds one neighbour at ~10 % of a core). Past it the entries are skipped and
 * counted; periodic updates bring them again. */
#define CP2P_OVL_VERIFY_PER_SEC 2000
#define CP2P_OVL_VERIFY_BURST (2 * CP2P_OVL_MAX_NODES + 256)
/* Receiver dedup: ids remembered per source above its floor (our choice). */
#define CP2P_OVL_DEDUP_WINDOW 1024
/* Id generator: how far the persisted floor runs ahead of the ids handed out (our choice: one
 * write of the floor file per 10 s of ids). */
#define CP2P_OVL_ID_RESERVE_MS 10000

/* ---- emitter: Fabric-style batching emitter (src/emitter/emitter.c) ---- */
/* Defaults from Hyperledger Fabric's gossip config (core.yaml peer.gossip.*: propagateIterations
 * 1, maxPropagationBurstSize 10, maxPropagationBurstLatency 10ms, propagatePeerNum 3). */
#define CP2P_EMITTER_ITERATIONS 1
#define CP2P_EMITTER_BURST_SIZE 10
#define CP2P_EMITTER_MAX_LATENCY_MS 10
#define CP2P_EMITTER_FANOUT 3
/* Queued messages and bytes (data plus per-message bookkeeping); a full queue rejects new
 * messages with CP2P_EFULL, counted (our choice: Fabric's buffer is unbounded; 10,000 is 1,000
 * bursts, and 64 MiB holds them at several KiB each). */
#define CP2P_EMITTER_MAX_BUFFERED 10000
#define CP2P_EMITTER_MAX_BUFFERED_LIMIT 1000000
#define CP2P_EMITTER_MAX_BUFFERED_BYTES (64 * 1024 * 1024)
/* Largest message (our choice: a few Fabric blocks' worth; Fabric's own gRPC limit is 100 MiB). */
#define CP2P_EMITTER_MAX_MSG_BYTES (4 * 1024 * 1024)
/* Upper bounds on the configuration (our choice): iterations and fan-out size each message's
 * record of the peers it went to; kinds are a small fixed set (Fabric has about five). */
#define CP2P_EMITTER_MAX_ITERATIONS 16
#define CP2P_EMITTER_MAX_FANOUT 64
#define CP2P_EMITTER_MAX_KINDS 64
/* Candidate peers one tick accepts (our choice: sizes the tick's scratch arrays). */
#define CP2P_EMITTER_MAX_PEERS 65536

/* ---- emitter: host binding (src/emitter/emitter_uv.c) ---- */
/* Candidate peers tracked (our choice: well above the host's default 256 connections; sizes
 * the per-emission candidate array). */
#define CP2P_HOST_EMITTER_MAX_PEERS 4096
/* Frames waiting for one peer's outbound stream to open (our choice: a few seconds of
 * emissions at Fabric's 10 ms latency), and their bytes (the host's default per-stream write
 * buffer, 8 MiB, which bounds an open stream the same way). */
#define CP2P_HOST_EMITTER_MAX_PENDING_FRAMES 64
#define CP2P_HOST_EMITTER_MAX_PENDING_BYTES (8 * 1024 * 1024)
/* Inbound emitter streams at once over all peers (our choice: the host already caps 64 per
 * protocol per connection; this caps the sum). */
#define CP2P_HOST_EMITTER_MAX_INBOUND 1024
/* Retry delay of an emission that failed for lack of memory (our choice). */
#define CP2P_HOST_EMITTER_RETRY_MS 10

/* ---- flows: artifact gossip (src/flows/art_msg.c, art_core.c; docs/ARTIFACTS.md) ---- */
/* Largest artifact id: one multihash (CP2P_MULTIHASH_MAX of cp2p/multiformats.h: code varint,
 * length byte, 64-byte digest). */
#define CP2P_ART_MAX_ID 74
/* Attributes of one advert, and their sizes (our choice: the Internet Computer's adverts carry
 * a handful of small fields: height, type, integrity hash). */
#define CP2P_ART_MAX_ATTRS 16
#define CP2P_ART_MAX_ATTR_KEY 64
#define CP2P_ART_MAX_ATTR_VALUE 256
/* Chunks of one artifact (our choice: the manifest is 32 bytes a chunk, so 16,384 chunks are a
 * 512 KiB advert; with the default chunk size that is 1 GiB). */
#define CP2P_ART_MAX_CHUNKS 16384
/* Largest chunk size a peer may announce (our choice: one chunk must fit a frame). */
#define CP2P_ART_MAX_CHUNK_SIZE (1024 * 1024)
/* Default chunk size (our choice, docs/ARTIFACTS.md: 64 KiB keeps a 1 MiB artifact spread over
 * 16 requests, enough to use several peers at once, while the 32-byte manifest entry and the
 * request cost stay under 0.1 % of the bytes). */
#define CP2P_ART_CHUNK_SIZE (64 * 1024)
/* Largest frame (one Envelope) either way: the largest chunk or the largest advert with room
 * for the message around it (our choice). */
#define CP2P_ART_MAX_FRAME (CP2P_ART_MAX_CHUNK_SIZE + 64 * 1024)
/* Messages of all kinds in one frame (our choice: 4,096 small adverts of ~100 bytes fill
 * about 400 KiB). */
#define CP2P_ART_MAX_FRAME_MSGS 4096
/* Have indexes in one frame, all Haves together (our choice: four Haves of a whole artifact;
 * bounds the core's work per frame). */
#define CP2P_ART_MAX_FRAME_HAVE_INDEXES (4 * CP2P_ART_MAX_CHUNKS)
/* Pushed whole at or under this size (dfinity/ic rs/p2p consensus_manager: 1,024 bytes). */
#define CP2P_ART_PUSH_THRESHOLD 1024
/* Small artifacts travel a push tree (Plumtree, Leitao et al. 2007): pushed whole to peers
 * that have not pruned us, advertised to the others; an advert of a small artifact waits this
 * long for a push from elsewhere before it is fetched (and the edge grafted back). */
#define CP2P_ART_PUSH_WAIT_MS 50
/* The wait adapts: doubled (up to this) each time a push arrives after we fetched the artifact
 * (the tree was slower than the wait, e.g. validation queues under load), shortened by an
 * eighth (down to CP2P_ART_PUSH_WAIT_MS) each time a push arrives within it. */
#define CP2P_ART_PUSH_WAIT_MAX_MS 2000
/* Largest artifact by default (our choice; configurable up to chunk size x max chunks). */
#define CP2P_ART_MAX_SIZE (256ull * 1024 * 1024)
/* Adverts remembered per peer (dfinity/ic's audit flags unbounded per-peer advert tables; our
 * choice: 10,000 is ten seconds of the Internet Computer's busiest subnets). Past it the
 * peer's oldest advert is forgotten, counted. */
#define CP2P_ART_MAX_ADVERTS_PER_PEER 10000
/* Peers tracked (our choice: above any subnet's size). */
#define CP2P_ART_MAX_PEERS 1024
/* Artifacts being fetched at once, and their bytes (our choice). */
#define CP2P_ART_MAX_FETCHES 256
/* Small artifacts (one chunk, at most the push threshold) being fetched or validated, bounded
 * apart: a burst of pushes must not be dropped (and fetched again) because large fetches hold
 * the slots. At most 4,096 x (1 KiB + bookkeeping), about 8 MiB. */
#define CP2P_ART_MAX_SMALL_FETCHES 256
#define CP2P_ART_MAX_FETCH_BYTES (512ull * 1024 * 1024)
/* Partial sources (peers fetching the same artifact, announcing chunks with Have) of one fetch
 * (our choice: a chunk bitmap of at most 2 KiB each, so at most 256 x 64 x 2 KiB = 32 MiB over
 * every fetch; past it a partial advert is ignored, counted, and the peer is a source once it
 * advertises the whole). */
#define CP2P_ART_MAX_PARTIAL_SOURCES 64
/* Artifacts held (advertised to peers) (our choice). */
#define CP2P_ART_MAX_HELD 100000
/* Chunk requests in flight to one peer: the start and the most (our choice; dfinity/ic
 * state_sync_manager keeps several per peer). A timeout halves a peer's allowance, a chunk in
 * time adds one: slow peers get fewer. */
#define CP2P_ART_INFLIGHT_START 4
#define CP2P_ART_INFLIGHT_MAX 16
/* A chunk not answered in this time is asked of another peer (our choice; dfinity/ic uses
 * seconds). */
#define CP2P_ART_CHUNK_TIMEOUT_MS 5000
/* The gossip timer (dfinity/ic on_gossip_timer: 100 ms). */
#define CP2P_ART_TICK_MS 100
/* Retransmissions answered per peer: one a second, burst 2 (our choice: a reconnecting peer
 * needs one; a flood costs at most this). */
#define CP2P_ART_RETRANS_PER_SEC 1
#define CP2P_ART_RETRANS_BURST 2
/* Chunk requests from one peer being served at once; more are dropped, counted (our choice). */
#define CP2P_ART_MAX_SERVING_PER_PEER 64
/* Bytes waiting in one peer's outbox (our choice: 8 MiB, the host's stream write buffer). */
#define CP2P_ART_MAX_OUTBOX_BYTES (8 * 1024 * 1024)
/* Penalty points a peer may earn (corrupt chunk: 10, timeout: 1) before we stop asking it
 * anything (our choice). */
#define CP2P_ART_PENALTY_BAN 100
/* "later" adverts re-offered to the bouncer per gossip tick (our choice). */
#define CP2P_ART_LATER_PER_TICK 256

/* ---- api: the node (thread-safe client of a loop thread) ---- */
/* Commands waiting for the loop thread; past it a call fails fast or waits, as the caller asks
 * (our choice: far above what a busy application keeps in flight). */
#define CP2P_NODE_COMMAND_QUEUE 1024
/* Handler worker threads and the inbound requests waiting for one (seed 000 sizes its flows'
 * queues at 100..1000; our choice). */
#define CP2P_NODE_WORKERS 2
#define CP2P_NODE_MAX_WORKERS 256
/* Wait for a quick DHT query of the node (the table size) at most this long (our choice). */
#define CP2P_NODE_DHT_QUICK_MS 5000
#define CP2P_NODE_WORKER_QUEUE 1024
/* Addresses a node reports (cp2p_node_addr). */
#define CP2P_NODE_MAX_ADDRS 64
/* How long control calls (registering a handler) wait for the loop. */
#define CP2P_NODE_CONTROL_TIMEOUT_MS 10000
/* Host protocols /metrics looks at for request-response counters, labelled by protocol (a
 * label set bounded by what the application registers; the host's handler table is smaller). */
#define CP2P_NODE_API_REQRESP_METRICS_MAX 256

/* ---- reactor: switch and channels (cp2p/reactor.h) ---- */
/* CometBFT's defaults (p2p/conn/connection.go, config/config.go) where it has one: send queue
 * capacity 1, receive buffer 4,096 bytes, largest message 22,020,096 bytes, ping 60 s, pong
 * timeout 45 s, send timeout 10 s. Ours: 16 KiB packets (CometBFT's 1,024-byte payload costs a
 * yamux frame and a write each here), 16 complete messages waiting per channel and peer
 * (CometBFT has no such queue: Receive runs on its read loop), 16 waiting senders per channel,
 * 1,024 peers, and 16 MiB for what one read may add past a paused channel's buffer (the host's
 * largest yamux receive window bounds one read). */
#define CP2P_SWITCH_PACKET (16 * 1024)
/* Without a send rate limit the core's packets only feed the channels' streams (their
 * backlogs gate the channels, the connection's scheduler interleaves them on the wire by its
 * own quantum), so a packet is one yamux frame: one channel's bulk over loopback went from
 * 0.83-0.86 of a raw stream with 16 KiB packets to 0.94-0.98, vote latency unchanged
 * (docs/BENCHMARKS.md, reactors). Under a rate limit the core's scheduler orders packets and a
 * message waits for at most one packet of another channel: 16 KiB there. */
#define CP2P_SWITCH_PACKET_UNLIMITED (64 * 1024)
#define CP2P_SWITCH_PING_INTERVAL_MS 60000
#define CP2P_SWITCH_PONG_TIMEOUT_MS 45000
#define CP2P_SWITCH_SEND_TIMEOUT_MS 10000
/* CometBFT's HandshakeTimeout (config/config.go): the peer's node info must arrive within it. */
#define CP2P_SWITCH_HANDSHAKE_TIMEOUT_MS 20000
#define CP2P_SWITCH_MAX_SEND_WAITERS 16
#define CP2P_SWITCH_MAX_PEERS 1024
#define CP2P_SWITCH_RX_SLACK (16 * 1024 * 1024)
#define CP2P_CHANNEL_SEND_QUEUE 1
#define CP2P_CHANNEL_RECV_QUEUE 16
#define CP2P_CHANNEL_RECV_BUFFER 4096
#define CP2P_CHANNEL_MAX_MESSAGE 22020096

#endif
