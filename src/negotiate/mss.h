/* multistream-select 1.0 (github.com/multiformats/multistream-select), sans-I/O.
 *
 * Every message is <uvarint length><text>'\n', the length counting the newline. Both sides
 * start with the header "/multistream/1.0.0". The dialer proposes protocols one at a time; the
 * listener echoes the one it accepts or answers "na". "ls" asks the listener for its list.
 *
 * Contract (STYLE.md section 7): feed received bytes to cp2p__mss_recv(), send what
 * cp2p__mss_out() returns, and watch cp2p__mss_state(). Once DONE, any bytes that follow the
 * last consumed message belong to the negotiated protocol: recv never consumes them.
 * Loop thread of the owning connection only; no allocation after init except the output. */
#ifndef CP2P_NEGOTIATE_MSS_H
#define CP2P_NEGOTIATE_MSS_H

#include <stdbool.h>

#include <cp2p/buf.h>

#define CP2P_MSS_PROTOCOL "/multistream/1.0.0"

typedef enum {
    MSS_EXPECT_HEADER,   /* waiting for the remote's "/multistream/1.0.0" */
    MSS_EXPECT_REPLY,    /* dialer: proposed a protocol, waiting for its echo or "na" */
    MSS_EXPECT_PROPOSAL, /* listener: waiting for a protocol (or "ls") */
    MSS_DONE,            /* terminal: a protocol is agreed */
    MSS_FAILED,          /* terminal: no protocol in common, or a protocol error */
} cp2p__mss_state;

typedef struct cp2p__mss {
    cp2p__mss_state state;
    bool dialer;
    bool lazy;           /* dialer: the single protocol counts as selected before the echo */
    bool got_header;
    const char *const *protos; /* borrowed: dialer's offer, in order, or listener's support */
    size_t nprotos;
    size_t next;         /* dialer: index of the protocol being proposed */
    size_t selected;     /* index into protos once DONE */
    unsigned proposals;  /* listener: proposals seen */
    bool (*accept)(void *ud, size_t idx); /* listener: optional filter over protos */
    void *accept_ud;
    cp2p_buf out;
} cp2p__mss;

/* Start a dialer offering protos[0..n) in order (borrowed; they must outlive the mss). With
 * `lazy` and a single protocol, the dialer may write protocol data at once after
 * cp2p__mss_out() (cp2p__mss_writable() is true) while the echo is still outstanding; a later
 * "na" fails the negotiation. Returns 0, CP2P_EINVAL (n == 0, n > CP2P_MSS_MAX_OFFER, or a
 * protocol that is empty, lacks the leading '/', contains '\n', or is too long), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__mss_init_dialer(cp2p__mss *m, const char *const *protos, size_t n,
                                         bool lazy);
/* Start a listener that accepts any of protos[0..n) (borrowed; n <= CP2P_MSS_MAX_SUPPORTED) for
 * which accept(ud, index) is true (accept may be NULL: all). Same errors as the dialer. The
 * listener sends its header at once. A host passes its handler table and uses `accept` to skip
 * removed handlers. */
CP2P_NODISCARD int cp2p__mss_init_listener(cp2p__mss *m, const char *const *protos, size_t n);
CP2P_NODISCARD int cp2p__mss_init_listener_filtered(cp2p__mss *m, const char *const *protos,
                                                   size_t n, bool (*accept)(void *ud, size_t idx),
                                                   void *ud);
/* Index of the agreed protocol in protos (valid once DONE). */
static inline size_t cp2p__mss_selected_index(const cp2p__mss *m) { return m->selected; }
void cp2p__mss_fini(cp2p__mss *m);

/* Consume whole messages from in[0..len). Returns bytes consumed (possibly 0 when a message is
 * incomplete: keep the bytes and call again with more), or a negative cp2p_err with *why set:
 * CP2P_EPROTO (malformed, wrong header, unexpected message), CP2P_ELIMIT (message too long,
 * too many proposals), CP2P_ENOTSUP (the listener refused every protocol we offer).
 * After DONE it consumes nothing more. */
CP2P_NODISCARD ptrdiff_t cp2p__mss_recv(cp2p__mss *m, const uint8_t *in, size_t len,
                                        const char **why);
/* Bytes waiting to be sent (empty slice when none) and how many were sent. */
cp2p_slice cp2p__mss_out(const cp2p__mss *m);
void cp2p__mss_out_done(cp2p__mss *m, size_t n);

static inline cp2p__mss_state cp2p__mss_state_get(const cp2p__mss *m) { return m->state; }
/* The agreed protocol (a pointer into protos), or NULL before DONE. */
const char *cp2p__mss_selected(const cp2p__mss *m);
/* True when the caller may write protocol data after cp2p__mss_out(): DONE, or a lazy dialer
 * whose single proposal is in flight. */
bool cp2p__mss_writable(const cp2p__mss *m);

/* Append one multistream message (length prefix, text, newline) to b. For tests and for the
 * protocols that reuse the framing. Returns 0 or buf errors, CP2P_EINVAL when too long. */
CP2P_NODISCARD int cp2p__mss_write_msg(cp2p_buf *b, const char *text, size_t len);

#endif
