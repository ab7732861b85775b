/* Artifact gossip on a node with a pool kept in a directory (cp2p/artifact.h, "on a node").
 * The pool's index is locked: store and serve run on the layer's flow workers, put/get/ls on
 * the caller's threads. Purges the size bound causes are handed to the loop by a timer (the
 * layer is loop-only); named *_uv.c for that timer. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include <cp2p/artifact.h>
#include <cp2p/codec.h>
#include <cp2p/node.h>

#include "api/node_internal.h"
#include "util/alloc.h"
#include "util/hashmap.h"

#define PURGE_TICK_MS 1000
#define DIR_MAX_ENTRIES (1u << 20) /* index bound (our choice: far above max_held) */

typedef struct entry {
    uint8_t id[CP2P_ARTIFACT_ID_MAX];
    size_t id_len;
    uint64_t size;
    int64_t mtime;
    struct entry *prev, *next; /* oldest first */
} entry;

typedef struct purge_id {
    uint8_t id[CP2P_ARTIFACT_ID_MAX];
    size_t id_len;
    struct purge_id *next;
} purge_id;

struct cp2p_node_artifacts {
    cp2p_node *node;
    char *dir;
    uint64_t max_bytes;
    pthread_mutex_t mu;
    cp2p_hashmap index; /* entry by id */
    entry *first, *last;
    uint64_t bytes;
    purge_id *purges; /* evicted, not yet purged from the layer */
    cp2p_artifact *a; /* loop thread only */
    uv_timer_t *timer;
};

static cp2p_slice entry_key(const void *it)
{
    const entry *e = it;
    return (cp2p_slice){e->id, e->id_len};
}

/* ---- ids as text ---- */

static int id_to_str(const uint8_t *id, size_t len, char out[CP2P_NODE_ARTIFACT_ID_STR_MAX])
{
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_NODE_ARTIFACT_ID_STR_MAX - 1);
    int rc = cp2p_base58btc_encode(&b, id, len);
    if (rc == 0) {
        memcpy(out, b.ptr, b.len);
        out[b.len] = '\0';
    }
    cp2p_buf_fini(&b);
    return rc;
}

static int id_from_str(const char *s, uint8_t id[CP2P_ARTIFACT_ID_MAX], size_t *len)
{
    cp2p_buf b;
    size_t n = strlen(s);
    if (n == 0 || n >= CP2P_NODE_ARTIFACT_ID_STR_MAX) {
        return CP2P_EINVAL;
    }
    cp2p_buf_init(&b, CP2P_ARTIFACT_ID_MAX);
    int rc = cp2p_base58btc_decode(&b, s, n);
    /* The layer's ids: the sha2-256 multihash. */
    if (rc == 0 && (b.len != 34 || b.ptr[0] != 0x12 || b.ptr[1] != 0x20)) {
        rc = CP2P_EINVAL;
    }
    if (rc == 0) {
        memcpy(id, b.ptr, b.len);
        *len = b.len;
    }
    cp2p_buf_fini(&b);
    return rc != 0 ? CP2P_EINVAL : 0;
}

static int path_of(const cp2p_node_artifacts *x, const uint8_t *id, size_t len, bool tmp,
                   char *out, size_t outlen)
{
    char s[CP2P_NODE_ARTIFACT_ID_STR_MAX];
    if (id_to_str(id, len, s) != 0) {
        return CP2P_EINVAL;
    }
    int n = snprintf(out, outlen, "%s/%s%s", x->dir, tmp ? ".tmp-" : "", s);
    return n > 0 && (size_t)n < outlen ? 0 : CP2P_EINVAL;
}

/* ---- the index (x->mu held) ---- */

static void entry_unlink(cp2p_node_artifacts *x, entry *e)
{
    if (e->prev != NULL) {
        e->prev->next = e->next;
    } else {
        x->first = e->next;
    }
    if (e->next != NULL) {
        e->next->prev = e->prev;
    } else {
        x->last = e->prev;
    }
    (void)cp2p__hashmap_remove(&x->index, e);
    x->bytes -= e->size;
}

static int entry_add(cp2p_node_artifacts *x, const uint8_t *id, size_t id_len, uint64_t size)
{
    entry *e = cp2p_calloc(1, sizeof(*e));
    if (e == NULL) {
        return CP2P_ENOMEM;
    }
    memcpy(e->id, id, id_len);
    e->id_len = id_len;
    e->size = size;
    int rc = cp2p__hashmap_insert(&x->index, e);
    if (rc != 0) {
        cp2p_free(e);
        return rc;
    }
    e->prev = x->last;
    if (x->last != NULL) {
        x->last->next = e;
    } else {
        x->first = e;
    }
    x->last = e;
    x->bytes += size;
    return 0;
}

/* Remove the oldest artifacts (never `keep`) while the pool is over its bound. */
static void evict(cp2p_node_artifacts *x, const entry *keep)
{
    while (x->bytes > x->max_bytes && x->first != NULL && x->first != keep) {
        entry *e = x->first;
        char path[4096];
        if (path_of(x, e->id, e->id_len, false, path, sizeof(path)) == 0) {
            (void)unlink(path);
        }
        purge_id *p = cp2p_calloc(1, sizeof(*p));
        if (p != NULL) {
            memcpy(p->id, e->id, e->id_len);
            p->id_len = e->id_len;
            p->next = x->purges;
            x->purges = p;
        }
        entry_unlink(x, e);
        cp2p_free(e);
    }
}

static int write_file(const char *tmp, const char *path, const uint8_t *data, size_t len)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        return CP2P_EIO;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            close(fd);
            (void)unlink(tmp);
            return CP2P_EIO;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        (void)unlink(tmp);
        return CP2P_EIO;
    }
    return 0;
}

/* Store into the directory and the index (any thread). 0, or CP2P_EIO / CP2P_ENOMEM /
 * CP2P_ESTATE (already held: nothing written). */
static int pool_put(cp2p_node_artifacts *x, const uint8_t *id, size_t id_len,
                    const uint8_t *data, size_t len)
{
    char path[4096], tmp[4096];
    if (path_of(x, id, id_len, false, path, sizeof(path)) != 0 ||
        path_of(x, id, id_len, true, tmp, sizeof(tmp)) != 0) {
        return CP2P_EINVAL;
    }
    pthread_mutex_lock(&x->mu);
    bool have = cp2p__hashmap_find(&x->index, id, id_len) != NULL;
    pthread_mutex_unlock(&x->mu);
    if (have) {
        return CP2P_ESTATE;
    }
    int rc = write_file(tmp, path, data, len);
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&x->mu);
    if (cp2p__hashmap_find(&x->index, id, id_len) == NULL &&
        (rc = entry_add(x, id, id_len, len)) == 0) {
        evict(x, x->last);
    }
    pthread_mutex_unlock(&x->mu);
    return rc;
}

/* ---- the layer's pool callbacks (flow workers) ---- */

static int cb_store(const uint8_t *id, size_t id_len, const uint8_t *data, size_t len, void *ud)
{
    int rc = pool_put(ud, id, id_len, data, len);
    return rc == CP2P_ESTATE ? 0 : rc;
}

/* Read exactly len bytes at off. 0 or CP2P_EIO (short file, read error). */
static int read_at(int fd, uint64_t off, uint8_t *out, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, out + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return CP2P_EIO;
        }
        got += (size_t)r;
    }
    return 0;
}

static int cb_serve(const uint8_t *id, size_t id_len, uint64_t off, uint8_t *out, size_t len,
                    void *ud)
{
    cp2p_node_artifacts *x = ud;
    char path[4096];
    if (path_of(x, id, id_len, false, path, sizeof(path)) != 0) {
        return CP2P_EINVAL;
    }
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        return CP2P_ENOENT;
    }
    int rc = read_at(fd, off, out, len);
    close(fd);
    return rc;
}

static void cb_purge(const uint8_t *id, size_t id_len, void *ud)
{
    (void)id, (void)id_len, (void)ud; /* the file went when the index let it go */
}

static void on_timer_closed(uv_handle_t *h);

/* The host closed the layer (loop thread). */
static void cb_closed(void *ud)
{
    cp2p_node_artifacts *x = ud;
    x->a = NULL;
    if (x->timer != NULL) {
        uv_timer_stop(x->timer);
        uv_close((uv_handle_t *)x->timer, on_timer_closed);
        x->timer = NULL;
    }
}

/* ---- on the loop ---- */

static void on_purge_tick(uv_timer_t *t)
{
    cp2p_node_artifacts *x = t->data;
    pthread_mutex_lock(&x->mu);
    purge_id *p = x->purges;
    x->purges = NULL;
    pthread_mutex_unlock(&x->mu);
    while (p != NULL) {
        purge_id *next = p->next;
        if (cp2p_artifact_purge(x->a, p->id, p->id_len) != 0) {
            /* CP2P_ENOENT: the layer never held it (stored as the layer closed) */
        }
        cp2p_free(p);
        p = next;
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    cp2p_free(h);
}

static int open_on_loop(cp2p_node_artifacts *x, cp2p_host *h)
{
    cp2p_artifact_config cfg;
    cp2p_artifact_config_default(&cfg);
    cfg.pool.store = cb_store;
    cfg.pool.serve = cb_serve;
    cfg.pool.purge = cb_purge;
    cfg.pool.closed = cb_closed;
    cfg.pool_ud = x;
    int rc = cp2p_artifact_new(h, &cfg, &x->a);
    if (rc == 0 && (rc = cp2p_artifact_start(x->a)) == 0) {
        if ((x->timer = cp2p_calloc(1, sizeof(*x->timer))) == NULL) {
            rc = CP2P_ENOMEM;
        } else {
            (void)uv_timer_init(cp2p_host_loop(h), x->timer);
            x->timer->data = x;
            (void)uv_timer_start(x->timer, on_purge_tick, PURGE_TICK_MS, PURGE_TICK_MS);
        }
    }
    if (rc != 0 && x->a != NULL) {
        cp2p_artifact_close(x->a);
        x->a = NULL;
    }
    return rc;
}

static void loop_open(cp2p_node_call *call, cp2p_host *h, void *ud)
{
    cp2p_node_call_done(call, open_on_loop(ud, h));
}

static void close_on_loop(cp2p_node_artifacts *x)
{
    if (x->timer != NULL) {
        uv_timer_stop(x->timer);
        uv_close((uv_handle_t *)x->timer, on_timer_closed);
        x->timer = NULL;
    }
    cp2p_artifact_close(x->a); /* waits for callbacks running on the flows; NULL is fine */
    x->a = NULL;
}

static void loop_close(cp2p_node_call *call, cp2p_host *h, void *ud)
{
    (void)h;
    close_on_loop(ud);
    cp2p_node_call_done(call, 0);
}

typedef struct pub_call {
    cp2p_node_artifacts *x;
    uint8_t *data; /* owned: a timed-out call may still run after the caller left */
    size_t len;
} pub_call;

static void loop_publish(cp2p_node_call *call, cp2p_host *h, void *ud);

static void pub_call_free(void *ud)
{
    pub_call *p = ud;
    cp2p_free(p->data);
    cp2p_free(p);
}

/* Publish on the loop, waiting for the layer's answer. Takes data (cp2p_malloc'd). */
static int publish_wait(cp2p_node_artifacts *x, uint8_t *data, size_t len, uint64_t timeout_ms)
{
    pub_call *p = cp2p_calloc(1, sizeof(*p));
    if (p == NULL) {
        cp2p_free(data);
        return CP2P_ENOMEM;
    }
    *p = (pub_call){.x = x, .data = data, .len = len};
    int rc = cp2p_node_call_on_loop(x->node, loop_publish, p, pub_call_free, timeout_ms);
    if (rc == 0) {
        pub_call_free(p);
    }
    return rc;
}

static void on_published(cp2p_artifact *a, int status, const uint8_t *id, size_t id_len,
                         void *ud)
{
    cp2p_node_call *call = ud;
    (void)a, (void)id, (void)id_len;
    cp2p_node_call_done(call, status == CP2P_ESTATE ? 0 : status);
}

static void loop_publish(cp2p_node_call *call, cp2p_host *h, void *ud)
{
    pub_call *p = ud;
    (void)h;
    if (p->x->a == NULL) {
        cp2p_node_call_done(call, CP2P_ECLOSED);
        return;
    }
    int rc = cp2p_artifact_publish(p->x->a, NULL, 0, p->data, p->len, NULL, 0, on_published,
                                   call);
    if (rc != 0) {
        cp2p_node_call_done(call, rc);
    }
}

typedef struct stat_call {
    cp2p_node_artifacts *x;
    uint8_t id[CP2P_ARTIFACT_ID_MAX];
    size_t id_len;
    cp2p_node_artifact_stat st;
    cp2p_artifact_stats all;
} stat_call;

static void loop_stat(cp2p_node_call *call, cp2p_host *h, void *ud)
{
    stat_call *s = ud;
    (void)h;
    if (s->x->a == NULL) {
        cp2p_node_call_done(call, CP2P_ECLOSED);
        return;
    }
    if (s->id_len == 0) {
        cp2p_artifact_stats_get(s->x->a, &s->all);
    } else if (cp2p_artifact_progress(s->x->a, s->id, s->id_len, &s->st.chunks_done,
                                      &s->st.chunks_total, &s->st.peers) == 0) {
        s->st.fetching = true;
    }
    cp2p_node_call_done(call, 0);
}

/* ---- opening: the directory as it is ---- */

typedef struct found {
    uint8_t id[CP2P_ARTIFACT_ID_MAX];
    size_t id_len;
    uint64_t size;
    int64_t mtime;
} found;

static int by_mtime(const void *a, const void *b)
{
    const found *x = a, *y = b;
    return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

static int read_all(const char *path, uint64_t size, uint8_t **out)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        return CP2P_EIO;
    }
    uint8_t *d = cp2p_malloc(size > 0 ? size : 1);
    int rc = d == NULL ? CP2P_ENOMEM : read_at(fd, 0, d, (size_t)size);
    close(fd);
    if (rc != 0) {
        cp2p_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

/* Index the files whose bytes match their names, oldest first; others are left alone. */
static int scan(cp2p_node_artifacts *x, found **out, size_t *n_out)
{
    DIR *d = opendir(x->dir);
    if (d == NULL) {
        return CP2P_EIO;
    }
    found *f = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < DIR_MAX_ENTRIES) {
        found one;
        char path[4096];
        struct stat st;
        if (de->d_name[0] == '.' || id_from_str(de->d_name, one.id, &one.id_len) != 0 ||
            snprintf(path, sizeof(path), "%s/%s", x->dir, de->d_name) >= (int)sizeof(path) ||
            stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
            continue;
        }
        one.size = (uint64_t)st.st_size;
        one.mtime = (int64_t)st.st_mtime;
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 64;
            found *nf = cp2p_malloc(nc * sizeof(*nf));
            if (nf == NULL) {
                break;
            }
            if (n > 0) {
                memcpy(nf, f, n * sizeof(*nf));
            }
            cp2p_free(f);
            f = nf;
            cap = nc;
        }
        f[n++] = one;
    }
    closedir(d);
    if (n > 0) {
        qsort(f, n, sizeof(*f), by_mtime);
    }
    *out = f;
    *n_out = n;
    return 0;
}

static void artifacts_free(cp2p_node_artifacts *x)
{
    while (x->first != NULL) {
        entry *e = x->first;
        entry_unlink(x, e);
        cp2p_free(e);
    }
    while (x->purges != NULL) {
        purge_id *p = x->purges;
        x->purges = p->next;
        cp2p_free(p);
    }
    cp2p__hashmap_fini(&x->index, NULL, NULL);
    pthread_mutex_destroy(&x->mu);
    cp2p_free(x->dir);
    cp2p_free(x);
}

static void artifacts_free_ud(void *ud)
{
    artifacts_free(ud);
}

/* Open on the loop (h != NULL: we are on it) or from another thread. */
static int artifacts_open(cp2p_node *n, cp2p_host *h, const char *dir, uint64_t max_bytes,
                          cp2p_node_artifacts **out)
{
    if (n == NULL || dir == NULL || dir[0] == '\0' || max_bytes == 0 || out == NULL) {
        return CP2P_EINVAL;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        return CP2P_EIO;
    }
    cp2p_node_artifacts *x = cp2p_calloc(1, sizeof(*x));
    if (x == NULL) {
        return CP2P_ENOMEM;
    }
    pthread_mutex_init(&x->mu, NULL);
    x->node = n;
    x->max_bytes = max_bytes;
    int rc;
    if ((x->dir = cp2p__memdup(dir, strlen(dir) + 1)) == NULL) {
        rc = CP2P_ENOMEM;
        goto fail;
    }
    if ((rc = cp2p__hashmap_init(&x->index, DIR_MAX_ENTRIES, entry_key)) != 0) {
        goto fail;
    }
    found *f = NULL;
    size_t nf = 0;
    if ((rc = scan(x, &f, &nf)) != 0) {
        goto fail;
    }
    rc = h != NULL ? open_on_loop(x, h) : cp2p_node_call_on_loop(n, loop_open, x, NULL, 10000);
    if (rc != 0) {
        cp2p_free(f);
        goto fail;
    }
    /* What the directory holds: checked against its name, indexed, published. */
    for (size_t i = 0; i < nf; i++) {
        char path[4096];
        uint8_t *data = NULL, d[32];
        if (path_of(x, f[i].id, f[i].id_len, false, path, sizeof(path)) != 0 ||
            read_all(path, f[i].size, &data) != 0) {
            continue;
        }
        crypto_hash_sha256(d, data, f[i].size);
        bool ok = memcmp(d, f[i].id + 2, 32) == 0;
        if (ok) {
            pthread_mutex_lock(&x->mu);
            ok = entry_add(x, f[i].id, f[i].id_len, f[i].size) == 0;
            if (ok) {
                evict(x, x->last);
            }
            pthread_mutex_unlock(&x->mu);
        }
        if (ok && h != NULL) {
            if (cp2p_artifact_publish(x->a, NULL, 0, data, f[i].size, NULL, 0, NULL, NULL)) {
                cp2p_free(data);
                break; /* the broadcaster or the advert flow is full: the rest unpublished */
            }
        } else if (ok) {
            if (publish_wait(x, data, f[i].size, 60000) != 0) {
                break; /* node stopping, or the advert flow full: the rest unpublished */
            }
            continue;
        }
        cp2p_free(data);
    }
    cp2p_free(f);
    *out = x;
    return 0;
fail:
    artifacts_free(x);
    return rc;
}

int cp2p_node_artifacts_open(cp2p_node *n, const char *dir, uint64_t max_bytes,
                             cp2p_node_artifacts **out)
{
    return artifacts_open(n, NULL, dir, max_bytes, out);
}

int cp2p_node_artifacts_attach(cp2p_node *n, cp2p_host *h, const char *dir, uint64_t max_bytes,
                               cp2p_node_artifacts **out)
{
    if (h == NULL) {
        return CP2P_EINVAL;
    }
    return artifacts_open(n, h, dir, max_bytes, out);
}

void cp2p_node_artifacts_detach(cp2p_node_artifacts *x)
{
    if (x == NULL) {
        return;
    }
    close_on_loop(x);
    artifacts_free(x);
}

void cp2p_node_artifacts_close(cp2p_node_artifacts *x)
{
    if (x == NULL) {
        return;
    }
    /* On an error (the node stopping) the node frees x once loop_close can no longer run. */
    if (cp2p_node_call_on_loop(x->node, loop_close, x, artifacts_free_ud, 30000) == 0) {
        artifacts_free(x);
    }
}

int cp2p_node_artifact_put(cp2p_node_artifacts *x, const uint8_t *data, size_t len,
                           uint64_t timeout_ms, char id_out[CP2P_NODE_ARTIFACT_ID_STR_MAX])
{
    uint8_t id[34] = {0x12, 0x20};
    if (data == NULL || len == 0) {
        return CP2P_EINVAL;
    }
    crypto_hash_sha256(id + 2, data, len);
    int rc = pool_put(x, id, sizeof(id), data, len);
    if (rc != 0 && rc != CP2P_ESTATE) {
        return rc;
    }
    uint8_t *copy = cp2p__memdup(data, len);
    if (copy == NULL) {
        return CP2P_ENOMEM;
    }
    if ((rc = publish_wait(x, copy, len, timeout_ms)) != 0) {
        return rc;
    }
    return id_to_str(id, sizeof(id), id_out);
}

int cp2p_node_artifact_get(cp2p_node_artifacts *x, const char *id_str, uint8_t **data,
                           size_t *len)
{
    uint8_t id[CP2P_ARTIFACT_ID_MAX];
    size_t id_len;
    char path[4096];
    if (id_from_str(id_str, id, &id_len) != 0) {
        return CP2P_EINVAL;
    }
    pthread_mutex_lock(&x->mu);
    entry *e = cp2p__hashmap_find(&x->index, id, id_len);
    uint64_t size = e != NULL ? e->size : 0;
    pthread_mutex_unlock(&x->mu);
    if (e == NULL) {
        return CP2P_ENOENT;
    }
    if (path_of(x, id, id_len, false, path, sizeof(path)) != 0) {
        return CP2P_EINVAL;
    }
    int rc = read_all(path, size, data);
    if (rc == 0) {
        *len = (size_t)size;
    }
    return rc == CP2P_EIO ? CP2P_ENOENT : rc; /* evicted meanwhile */
}

size_t cp2p_node_artifact_ls(cp2p_node_artifacts *x,
                             void (*cb)(const char *id, uint64_t size, void *ud), void *ud)
{
    size_t n = 0;
    pthread_mutex_lock(&x->mu);
    for (entry *e = x->first; e != NULL; e = e->next, n++) {
        char s[CP2P_NODE_ARTIFACT_ID_STR_MAX];
        if (cb != NULL && id_to_str(e->id, e->id_len, s) == 0) {
            cb(s, e->size, ud);
        }
    }
    pthread_mutex_unlock(&x->mu);
    return n;
}

int cp2p_node_artifact_stat_get(cp2p_node_artifacts *x, const char *id_str,
                                uint64_t timeout_ms, cp2p_node_artifact_stat *out)
{
    stat_call *s = cp2p_calloc(1, sizeof(*s));
    if (s == NULL) {
        return CP2P_ENOMEM;
    }
    s->x = x;
    if (id_from_str(id_str, s->id, &s->id_len) != 0) {
        cp2p_free(s);
        return CP2P_EINVAL;
    }
    pthread_mutex_lock(&x->mu);
    entry *e = cp2p__hashmap_find(&x->index, s->id, s->id_len);
    s->st.held = e != NULL;
    s->st.size = e != NULL ? e->size : 0;
    pthread_mutex_unlock(&x->mu);
    int rc = cp2p_node_call_on_loop(x->node, loop_stat, s, cp2p_free, timeout_ms);
    if (rc != 0) {
        return rc; /* s is the node's to free now */
    }
    *out = s->st;
    cp2p_free(s);
    return out->held || out->fetching ? 0 : CP2P_ENOENT;
}

int cp2p_node_artifacts_stats(cp2p_node_artifacts *x, uint64_t timeout_ms,
                              cp2p_artifact_stats *out)
{
    stat_call *s = cp2p_calloc(1, sizeof(*s));
    if (s == NULL) {
        return CP2P_ENOMEM;
    }
    s->x = x;
    int rc = cp2p_node_call_on_loop(x->node, loop_stat, s, cp2p_free, timeout_ms);
    if (rc != 0) {
        return rc;
    }
    *out = s->all;
    cp2p_free(s);
    return 0;
}

int cp2p__node_artifacts_metrics_update(cp2p_node_artifacts *x, cp2p_metrics *reg)
{
    return x->a != NULL ? cp2p_artifact_metrics_update(x->a, reg) : 0;
}
