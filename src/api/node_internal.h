/* What the node API's per-subsystem files (node_dht.c, ...) need of the node itself: they run
 * their work on the loop through cp2p_node_call_on_loop (cp2p/node.h) and reach the node's
 * subsystems with these accessors. Loop thread only. */
#ifndef CP2P_API_NODE_INTERNAL_H
#define CP2P_API_NODE_INTERNAL_H

#include <stddef.h>

#include <cp2p/kad.h>
#include <cp2p/metrics.h>
#include <cp2p/node.h>
#include <cp2p/overlay.h>
#include <cp2p/pubsub.h>

#include "metrics/stats_table.h"

/* The node's DHT and pubsub, or NULL when it runs none. */
cp2p_kad *cp2p__node_kad(cp2p_node *n);
cp2p_pubsub *cp2p__node_pubsub(cp2p_node *n);
/* Worker threads of the node (0: handlers can only run on the loop). Any thread. */
uint32_t cp2p__node_workers(const cp2p_node *n);

/* ---- the worker pool ----
 * A job is a struct that starts with a cp2p__node_job. `work` runs on a worker thread and
 * returns true when the job has an answer for the loop; `answer` (may be NULL) then runs on the
 * loop thread, with canceled = true instead when the node stopped before a worker took the job;
 * `free` runs last, on whichever thread finished with it. */
typedef struct cp2p__node_job cp2p__node_job;
typedef struct cp2p__node_job_ops {
    bool (*work)(cp2p__node_job *j);
    void (*answer)(cp2p_node *n, cp2p__node_job *j, bool canceled);
    void (*free)(cp2p__node_job *j);
} cp2p__node_job_ops;
struct cp2p__node_job {
    const cp2p__node_job_ops *ops;
};
/* Queue j for the workers (the node takes it) and, under the same lock, add 1 to the counter
 * of cp2p_node_stats at `offset` (so no worker can act on the job before it is counted).
 * Returns 0, or CP2P_EFULL when the job queue is full or the workers are stopping (j stays the
 * caller's, nothing counted). Loop thread. */
CP2P_NODISCARD int cp2p__node_job_submit(cp2p_node *n, cp2p__node_job *j, size_t offset);
#define CP2P__NODE_SUBMIT(n, j, field)                                                         \
    cp2p__node_job_submit((n), (j), offsetof(cp2p_node_stats, field))

/* Loop thread: a job's answer (or its cancellation), then its free. For a job that ran on the
 * loop itself (handler on the loop) as well as for those that come back from a worker. */
void cp2p__node_job_finish(cp2p_node *n, cp2p__node_job *j, bool canceled);

/* The node's host (NULL once it closed). Loop thread. */
cp2p_host *cp2p__node_host(cp2p_node *n);
/* The node's configuration (fixed after start). Any thread. */
const cp2p_node_config *cp2p__node_config(const cp2p_node *n);

/* Add 1 to a counter of cp2p_node_stats under the node's lock. Any thread. */
void cp2p__node_count(cp2p_node *n, size_t offset);
#define CP2P__NODE_COUNT(n, field) cp2p__node_count((n), offsetof(cp2p_node_stats, field))

/* ---- node_artifact_uv.c ---- */
/* Copy the artifact layer's counters and flow metrics into reg (loop thread; 0 when the layer
 * is gone). */
struct cp2p_node_artifacts;
CP2P_NODISCARD int cp2p__node_artifacts_metrics_update(struct cp2p_node_artifacts *x,
                                                       cp2p_metrics *reg);

/* ---- node_req.c ---- */
typedef struct cp2p__node_req cp2p__node_req;
/* Where the node keeps node_req.c's state (its request handlers; NULL until first used). */
cp2p__node_req **cp2p__node_req_slot(cp2p_node *n);
/* The node stops or detaches: unregister every request handler from its host. */
void cp2p__node_req_unregister(cp2p_node *n, cp2p__node_req *st);
/* The node is freed. NULL is fine. */
void cp2p__node_req_free(cp2p__node_req *st);

/* ---- node_pubsub.c ---- */
typedef struct cp2p__node_ps cp2p__node_ps;
/* Where the node keeps node_pubsub.c's state (NULL until first used). Loop thread. */
cp2p__node_ps **cp2p__node_ps_slot(cp2p_node *n);
/* The node created its pubsub: validate every message through the node's validator. */
void cp2p__node_pubsub_attach(cp2p_node *n, cp2p_pubsub *ps);
/* The node is freed (its pubsub is closed). NULL is fine. */
void cp2p__node_pubsub_free(cp2p__node_ps *st);

/* ---- node_overlay.c ---- */
typedef struct cp2p__node_ovl cp2p__node_ovl;
/* Where the node keeps node_overlay.c's state (NULL: no overlay). Loop thread. */
cp2p__node_ovl **cp2p__node_ovl_slot(cp2p_node *n);
/* Create the overlay on h, its callbacks wrapped (cfg's run too, with ud). Loop thread. */
CP2P_NODISCARD int cp2p__node_overlay_open(cp2p_host *h, const cp2p_overlay_config *cfg, void *ud,
                                           cp2p__node_ovl **slot);
/* Close the overlay (before its host closes): waiting sends complete with CP2P_ECANCELED. */
void cp2p__node_overlay_close(cp2p__node_ovl *st);
/* Close if needed and free. NULL is fine. */
void cp2p__node_overlay_free(cp2p__node_ovl *st);
/* The node's overlay, or NULL. Loop thread. */
cp2p_overlay *cp2p__node_overlay(cp2p_node *n);

/* Observe the latency of each answered cp2p_node_request (from the call to the response,
 * queueing and dial included, in seconds) into histogram h; NULL stops it. The caller keeps h
 * valid until it sets NULL. Any thread. */
void cp2p__node_set_request_latency(cp2p_node *n, cp2p_metric *h);
/* node_req.c: one answered request took `seconds` (into that histogram, if any). Any thread. */
void cp2p__node_observe_request(cp2p_node *n, double seconds);

/* node_metrics.c: a protocol's stats copied into a metrics registry (names in
 * docs/METRICS.md). The first call passes *state == NULL and registers the families; later
 * calls pass the same state and registry. Returns 0, CP2P_ENOMEM, CP2P_EINVAL (another
 * registry), or cp2p_metrics_register's error. Loop thread only. */
CP2P_NODISCARD int cp2p__pubsub_metrics_update(cp2p__stats_metrics **state,
                                               const cp2p_pubsub *ps, cp2p_metrics *reg);
CP2P_NODISCARD int cp2p__kad_metrics_update(cp2p__stats_metrics **state, const cp2p_kad *kad,
                                            cp2p_metrics *reg);
CP2P_NODISCARD int cp2p__node_metrics_update(cp2p__stats_metrics **state, cp2p_node *node,
                                             cp2p_metrics *reg);
/* The counters of h's request-response registration of `protocol` (cp2p_reqresp_stats_get)
 * into the registry, labelled protocol="..." (families registered at the first call; a
 * protocol no longer registered is skipped). Returns 0, CP2P_ENOMEM, CP2P_EINVAL (another
 * registry), or the registry's error. Loop thread only. */
typedef struct cp2p__reqresp_metrics cp2p__reqresp_metrics;
CP2P_NODISCARD int cp2p__reqresp_metrics_update(cp2p__reqresp_metrics **state, cp2p_host *h,
                                                const char *protocol, cp2p_metrics *reg);
void cp2p__reqresp_metrics_free(cp2p__reqresp_metrics *m);

#endif
