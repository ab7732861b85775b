/* Flows: bounded queue + worker threads + in-flight semaphore (see flow.h). Named *_uv.c for
 * the clock (uv_hrtime) it reads to measure latency. */
#include <pthread.h>

#include <uv.h>

#include "flows/flow.h"
#include "util/alloc.h"
#include "util/queue.h"

typedef struct flow_slot {
    void *item;
    uint64_t t0;
} flow_slot;

struct cp2p__flow {
    cp2p__flow_config cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* work queued, a permit freed, or stop */
    cp2p_queue in;            /* flow_slot *, waiting */
    cp2p_queue out;           /* flow_slot *, worked, waiting for drain (<= max_inflight) */
    uint32_t inflight;
    bool stop;
    pthread_t *threads;
    uint32_t n_threads;
    cp2p__flow_stats st;
};

static void *flow_main(void *arg)
{
    cp2p__flow *f = arg;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->stop && (cp2p__queue_len(&f->in) == 0 || f->inflight >= f->cfg.max_inflight)) {
            pthread_cond_wait(&f->cv, &f->mu);
        }
        if (f->stop) {
            break;
        }
        flow_slot *s = cp2p__queue_pop(&f->in);
        f->inflight++;
        pthread_mutex_unlock(&f->mu);
        f->cfg.work(s->item, f->cfg.ud);
        uint64_t lat = uv_hrtime() - s->t0;
        pthread_mutex_lock(&f->mu);
        f->st.processed++;
        f->st.latency_ns_sum += lat;
        if (lat > f->st.latency_ns_max) {
            f->st.latency_ns_max = lat;
        }
        /* out holds at most max_inflight slots (each one holds a permit): cannot be full. */
        int rc = cp2p__queue_push(&f->out, s);
        (void)rc;
        if (f->cfg.wake != NULL) {
            pthread_mutex_unlock(&f->mu);
            f->cfg.wake(f->cfg.ud);
            pthread_mutex_lock(&f->mu);
        }
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

int cp2p__flow_new(const cp2p__flow_config *cfg, cp2p__flow **out)
{
    if (cfg == NULL || out == NULL || cfg->queue_cap == 0 || cfg->workers == 0 ||
        cfg->max_inflight == 0 || cfg->work == NULL || cfg->done == NULL || cfg->drop == NULL) {
        return CP2P_EINVAL;
    }
    cp2p__flow *f = cp2p_calloc(1, sizeof(*f));
    if (f == NULL) {
        return CP2P_ENOMEM;
    }
    f->cfg = *cfg;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    int rc;
    if ((rc = cp2p__queue_init(&f->in, cfg->queue_cap, CP2P_QUEUE_REJECT, NULL, NULL)) != 0 ||
        (rc = cp2p__queue_init(&f->out, cfg->max_inflight, CP2P_QUEUE_REJECT, NULL, NULL)) != 0) {
        goto fail;
    }
    if ((f->threads = cp2p_calloc(cfg->workers, sizeof(pthread_t))) == NULL) {
        rc = CP2P_ENOMEM;
        goto fail;
    }
    for (uint32_t i = 0; i < cfg->workers; i++) {
        if (pthread_create(&f->threads[i], NULL, flow_main, f) != 0) {
            rc = CP2P_EIO;
            goto fail;
        }
        f->n_threads++;
    }
    *out = f;
    return 0;
fail:
    cp2p__flow_free(f);
    return rc;
}

int cp2p__flow_push(cp2p__flow *f, void *item)
{
    flow_slot *s = cp2p_malloc(sizeof(*s));
    if (s == NULL) {
        pthread_mutex_lock(&f->mu);
        f->st.dropped++;
        pthread_mutex_unlock(&f->mu);
        return CP2P_EFULL;
    }
    s->item = item;
    s->t0 = uv_hrtime();
    pthread_mutex_lock(&f->mu);
    int rc = f->stop ? CP2P_EFULL : cp2p__queue_push(&f->in, s);
    if (rc != 0) {
        f->st.dropped++;
    } else {
        f->st.pushed++;
        pthread_cond_signal(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
    if (rc != 0) {
        cp2p_free(s);
        return CP2P_EFULL;
    }
    return 0;
}

size_t cp2p__flow_drain(cp2p__flow *f, size_t max)
{
    size_t n = 0;
    while (max == 0 || n < max) {
        pthread_mutex_lock(&f->mu);
        flow_slot *s = cp2p__queue_pop(&f->out);
        if (s != NULL) {
            f->inflight--;
            pthread_cond_signal(&f->cv); /* a permit is free */
        }
        pthread_mutex_unlock(&f->mu);
        if (s == NULL) {
            break;
        }
        void *item = s->item;
        cp2p_free(s);
        f->cfg.done(item, f->cfg.ud);
        n++;
    }
    return n;
}

void cp2p__flow_stats_get(cp2p__flow *f, cp2p__flow_stats *out)
{
    pthread_mutex_lock(&f->mu);
    *out = f->st;
    out->queued = cp2p__queue_len(&f->in);
    out->inflight = f->inflight;
    pthread_mutex_unlock(&f->mu);
}

static void drop_slot(void *it, void *ud)
{
    cp2p__flow *f = ud;
    flow_slot *s = it;
    f->cfg.drop(s->item, f->cfg.ud);
    cp2p_free(s);
}

void cp2p__flow_free(cp2p__flow *f)
{
    if (f == NULL) {
        return;
    }
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    for (uint32_t i = 0; i < f->n_threads; i++) {
        pthread_join(f->threads[i], NULL);
    }
    cp2p_free(f->threads);
    if (f->in.items != NULL) {
        cp2p__queue_fini(&f->in, drop_slot, f);
    }
    if (f->out.items != NULL) {
        cp2p__queue_fini(&f->out, drop_slot, f);
    }
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    cp2p_free(f);
}
