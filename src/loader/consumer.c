// SPDX-License-Identifier: Apache-2.0
/*
 * The consumer's side of a pool: loader_next hands out batch s once its
 * slot is published (worker.c), release gives the slot back for batch
 * s + depth; and the counters and the placement report.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader/private.h"

static struct pool *get_pool(struct numafeed_loader *L, int gpu)
{
    if (!L || gpu < 0 || gpu >= L->npools) {
        nf__error(-EINVAL, "pool index %d out of range (%d served)", gpu, L ? L->npools : 0);
        return NULL;
    }
    return &L->pools[gpu];
}

/* "GPU 3" or "host pool 0": what a pool is, in messages. */
static const char *pool_kind(const struct pool *p)
{
    return p->cuda ? "GPU" : "host pool";
}

static unsigned wait_bucket(uint64_t ns)
{
    /* quarter octaves: bucket = 4 * log2(ns) + the next two mantissa bits */
    if (ns < 4)
        return (unsigned)ns;
    unsigned lg = 63u - (unsigned)__builtin_clzll(ns);
    unsigned b = 4 * lg + (unsigned)((ns >> (lg - 2)) & 3);
    return b < WAIT_BUCKETS ? b : WAIT_BUCKETS - 1;
}

static uint64_t bucket_value(unsigned b)
{
    if (b < 4)
        return b;
    unsigned lg = b / 4;
    return (UINT64_C(1) << lg) + ((uint64_t)(b % 4) << (lg - 2));
}

static void deadline_in(struct timespec *d, int timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, d);
    d->tv_sec += timeout_ms / 1000;
    d->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (d->tv_nsec >= 1000000000L) {
        d->tv_sec++;
        d->tv_nsec -= 1000000000L;
    }
}

/* Under p->mu: wait until batch seq is ready in slot s, an error reaches
 * it, the loader stops or the timeout passes. */
static int wait_ready(struct pool *p, struct slot *s, uint64_t seq, int timeout_ms)
{
    struct timespec deadline;
    if (timeout_ms > 0)
        deadline_in(&deadline, timeout_ms);
    for (;;) {
        if (p->err && p->err_seq <= seq)
            return nf__error(p->err, "%s", p->errmsg);
        if (atomic_load(&s->seq) == seq && s->ready)
            return 0;
        if (atomic_load(&p->stop))
            return nf__error(-ECANCELED, "loader is being destroyed");
        if (timeout_ms < 0) {
            pthread_cond_wait(&p->cv_ready, &p->mu);
            continue;
        }
        if (timeout_ms > 0 && pthread_cond_timedwait(&p->cv_ready, &p->mu, &deadline) !=
                                  ETIMEDOUT)
            continue;
        if (atomic_load(&s->seq) == seq && s->ready)
            return 0;
        return nf__error(-ETIMEDOUT, "loader_next(%s %d): batch %llu not ready within %d ms",
                         pool_kind(p), p->ordinal, (unsigned long long)seq, timeout_ms);
    }
}

static void fill_batch(struct numafeed_loader *L, struct pool *p, int gpu, uint64_t seq,
                       struct loader_batch *batch)
{
    const struct nf_sampler *sm = &p->sampler;
    struct slot *s = &p->slots[seq % p->depth];
    struct loader_batch b;
    memset(&b, 0, sizeof(b));
    b.size = batch->size;
    b.gpu = gpu;
    b.epoch = seq / sm->nbatches;
    b.index = seq % sm->nbatches;
    b.records = (uint32_t)nf__batch_len(sm, b.index);
    b.last_in_epoch = b.index + 1 == sm->nbatches;
    b.record_ids = s->ids;
    b.nfields = L->layout->nfields;
    b.fields = s->fields;
    b.ready_event = p->cuda ? s->ready_ev : NULL;
    b.seq_ = seq;
    memcpy(batch, &b, batch->size);
}

/* Batch seq, in slot s, was handed out after waiting `waited` ns. */
static void count_wait(struct pool *p, const struct slot *s, uint64_t seq, uint64_t waited)
{
    uint64_t bytes = 0;
    for (unsigned f = 0; f < p->L->layout->nfields; f++)
        bytes += s->fields[f].values_bytes;
    atomic_fetch_add_explicit(&p->st_batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->st_records,
                              nf__batch_len(&p->sampler, seq % p->sampler.nbatches),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&p->st_bytes, bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->st_wait_ns, waited, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->wait_hist[wait_bucket(waited)], 1, memory_order_relaxed);
    uint64_t mx = atomic_load_explicit(&p->st_wait_max, memory_order_relaxed);
    while (waited > mx &&
           !atomic_compare_exchange_weak_explicit(&p->st_wait_max, &mx, waited,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

static int next_batch(loader_t *L, struct pool *p, int gpu, struct loader_batch *batch,
                      int timeout_ms)
{
    uint64_t t0 = nf__now_ns();
    pthread_mutex_lock(&p->cmu);
    if (p->epoch_end_pending) {
        p->epoch_end_pending = false;
        pthread_mutex_unlock(&p->cmu);
        return NUMAFEED_EEPOCH_END;
    }
    uint64_t seq = p->next_seq;
    if (seq >= p->end_seq) {
        pthread_mutex_unlock(&p->cmu);
        return nf__error(NUMAFEED_EDONE, "loader_next(%s %d): all %llu configured epochs were "
                         "delivered", pool_kind(p), p->ordinal,
                         (unsigned long long)L->cfg.epochs);
    }
    struct slot *s = &p->slots[seq % p->depth];
    int rc;
    pthread_mutex_lock(&p->mu);
    if (p->outstanding >= p->depth)
        rc = nf__error(-EDEADLK, "loader_next(%s %d): all %u slots are held by batches not "
                       "yet released; release one first", pool_kind(p), p->ordinal, p->depth);
    else
        rc = wait_ready(p, s, seq, timeout_ms);
    if (!rc) {
        s->out = true;
        p->outstanding++;
    }
    pthread_mutex_unlock(&p->mu);
    if (rc) {
        if (rc != -ETIMEDOUT && rc != -EDEADLK)
            nf__loader_set_error(L, numafeed_last_error());
        pthread_mutex_unlock(&p->cmu);
        return rc;
    }
    fill_batch(L, p, gpu, seq, batch);
    p->next_seq = seq + 1;
    p->epoch_end_pending = (seq % p->sampler.nbatches) + 1 == p->sampler.nbatches;
    pthread_mutex_unlock(&p->cmu);
    count_wait(p, s, seq, nf__now_ns() - t0);
    return 0;
}

/* The smallest batch struct this library accepts: everything up to seq_. */
#define BATCH_MIN_SIZE (offsetof(struct loader_batch, seq_) + sizeof(uint64_t))

int loader_next(loader_t *L, int gpu, struct loader_batch *batch, int timeout_ms)
{
    struct pool *p = get_pool(L, gpu);
    if (!p)
        return -EINVAL;
    if (!batch || batch->size < BATCH_MIN_SIZE || batch->size > sizeof(*batch))
        return nf__error(-EINVAL, "loader_next: batch is NULL or batch->size %zu is not one "
                         "this library knows (set it with LOADER_BATCH_INIT)",
                         batch ? batch->size : 0);
    atomic_fetch_add_explicit(&p->inside, 1, memory_order_relaxed);
    int rc = next_batch(L, p, gpu, batch, timeout_ms);
    atomic_fetch_sub_explicit(&p->inside, 1, memory_order_release); /* last touch */
    return rc;
}

int loader_field_to_host(loader_t *L, const struct loader_batch *batch, unsigned field,
                         void *dst, size_t len)
{
    struct pool *p = get_pool(L, batch ? batch->gpu : -1);
    if (!p)
        return -EINVAL;
    struct slot *s = &p->slots[batch->seq_ % p->depth];
    pthread_mutex_lock(&p->mu);
    bool out = s->out && atomic_load(&s->seq) == batch->seq_;
    pthread_mutex_unlock(&p->mu);
    if (!out || field >= L->layout->nfields || !dst)
        return nf__error(-EINVAL, "loader_field_to_host: batch %llu of %s %d is not "
                         "outstanding, or field %u of %u, or no destination",
                         (unsigned long long)batch->seq_, pool_kind(p), p->ordinal, field,
                         L->layout->nfields);
    const struct loader_field *v = &s->fields[field];
    if (len < v->values_bytes)
        return nf__error(-EINVAL, "loader_field_to_host: field %s has %llu bytes, the "
                         "destination %zu", v->name, (unsigned long long)v->values_bytes, len);
    if (!p->cuda) {
        memcpy(dst, v->host, (size_t)v->values_bytes);
        return 0;
    }
    int rc = nf__cuda_event_synchronize(s->ready_ev);
    return rc ? rc : nf__cuda_copy_to_host(p->ordinal, dst, v->device, (size_t)v->values_bytes);
}

int loader_release(loader_t *L, struct loader_batch *batch)
{
    return loader_release_on_stream(L, batch, NULL);
}

int loader_release_on_stream(loader_t *L, struct loader_batch *batch, void *stream)
{
    struct pool *p = get_pool(L, batch ? batch->gpu : -1);
    if (!p)
        return -EINVAL;
    uint64_t seq = batch->seq_;
    struct slot *s = &p->slots[seq % p->depth];
    pthread_mutex_lock(&p->mu);
    if (!s->out || atomic_load(&s->seq) != seq) {
        pthread_mutex_unlock(&p->mu);
        return nf__error(-EINVAL, "loader_release: batch %llu of %s %d is not outstanding",
                         (unsigned long long)seq, pool_kind(p), p->ordinal);
    }
    if (p->cuda) {
        int rc = nf__cuda_event_record_on(p->ordinal, s->release_ev, stream);
        if (rc) {
            pthread_mutex_unlock(&p->mu);
            return rc;
        }
        s->released_gpu = true;
    }
    uint64_t next = seq + p->depth;
    s->out = false;
    s->ready = false;
    p->outstanding--;
    atomic_store_explicit(&s->remaining,
                          nf__batch_len(&p->sampler, next % p->sampler.nbatches),
                          memory_order_relaxed);
    atomic_store_explicit(&s->seq, next, memory_order_release);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

int loader_next_on_stream(loader_t *L, int gpu, struct loader_batch *batch, int timeout_ms,
                          void *stream)
{
    struct pool *p = get_pool(L, gpu);
    if (!p)
        return -EINVAL;
    atomic_fetch_add_explicit(&p->inside, 1, memory_order_relaxed);
    int rc = loader_next(L, gpu, batch, timeout_ms);
    if (rc == 0) {
        rc = loader_batch_wait(L, batch, stream);
        if (rc)
            loader_release(L, batch);
    }
    atomic_fetch_sub_explicit(&p->inside, 1, memory_order_release);
    return rc;
}

int loader_batch_wait(loader_t *L, const struct loader_batch *batch, void *stream)
{
    struct pool *p = get_pool(L, batch ? batch->gpu : -1);
    if (!p)
        return -EINVAL;
    if (!batch->ready_event)
        return 0;
    int rc = nf__cuda_stream_wait_event_on(p->ordinal, stream, batch->ready_event);
    if (rc)
        nf__loader_set_error(L, numafeed_last_error());
    return rc;
}

int loader_sync(loader_t *L, int gpu)
{
    struct pool *p = get_pool(L, gpu);
    if (!p)
        return -EINVAL;
    return p->cuda ? nf__cuda_stream_synchronize(p->stream) : 0;
}

int loader_stats(loader_t *L, int gpu, struct loader_stats *st)
{
    struct pool *p = get_pool(L, gpu);
    if (!p)
        return -EINVAL;
    struct loader_stats v = {.size = sizeof(v)};
    v.batches = atomic_load(&p->st_batches);
    v.records = atomic_load(&p->st_records);
    v.bytes = atomic_load(&p->st_bytes);
    v.wait_ns_total = atomic_load(&p->st_wait_ns);
    v.wait_max_ns = atomic_load(&p->st_wait_max);
    v.worker_stall_ns = atomic_load(&p->st_stall_ns);
    v.blocks_decoded = atomic_load(&p->st_blocks);
    v.io_wait_ns = atomic_load(&p->st_io_ns);
    v.decode_ns = atomic_load(&p->st_decode_ns);
    v.copy_ns = atomic_load(&p->st_copy_ns);
    v.units = atomic_load(&p->st_units);
    v.units_windowed = atomic_load(&p->st_windowed);
    v.gpu_decode_ns = atomic_load(&p->st_gpu_ns);
    uint64_t hist[WAIT_BUCKETS], total = 0;
    for (unsigned i = 0; i < WAIT_BUCKETS; i++)
        total += hist[i] = atomic_load_explicit(&p->wait_hist[i], memory_order_relaxed);
    uint64_t acc = 0;
    for (unsigned i = 0; i < WAIT_BUCKETS && total; i++) {
        acc += hist[i];
        /* report each quantile as its bucket's upper edge: never optimistic */
        if (!v.wait_p50_ns && acc * 2 >= total)
            v.wait_p50_ns = bucket_value(i + 1);
        if (!v.wait_p99_ns && acc * 100 >= total * 99)
            v.wait_p99_ns = bucket_value(i + 1);
    }
    /* an upper edge past the largest wait seen says nothing more: cap it */
    if (v.wait_p50_ns > v.wait_max_ns)
        v.wait_p50_ns = v.wait_max_ns;
    if (v.wait_p99_ns > v.wait_max_ns)
        v.wait_p99_ns = v.wait_max_ns;
    return nf__copy_out(st, &v, sizeof(v), "loader_stats");
}

int loader_pool_info(loader_t *L, int gpu, struct loader_pool_info *info)
{
    struct pool *p = get_pool(L, gpu);
    if (!p)
        return -EINVAL;
    struct loader_pool_info v;
    memset(&v, 0, sizeof(v));
    v.cuda_ordinal = p->ordinal;
    v.node = p->node;
    v.node_known = p->node_known;
    nf__cpuset_format(&p->cpus, v.cpus, sizeof(v.cpus));
    v.cpus_fallback = p->cpus_fallback;
    v.threads = p->nworkers;
    for (unsigned i = 0; i < p->nworkers && i < NF_ARRAY_SIZE(v.tids); i++)
        v.tids[i] = atomic_load(&p->workers[i].tid);
    v.slot_bytes = p->slot_bytes;
    v.prefetch = p->depth;
    v.page_size = p->placement.page_size;
    v.hugetlb = p->placement.hugetlb;
    v.thp = p->placement.thp;
    v.mbind = p->placement.bound;
    v.verified = p->placement.verified;
    v.pages = p->placement.pages;
    v.pages_on_node = p->placement.pages_on_node;
    v.pages_strayed = p->placement.strays;
    pthread_mutex_lock(&p->mu);
    snprintf(v.io_backend, sizeof(v.io_backend), "%s", p->io_backend);
    snprintf(v.notes, sizeof(v.notes), "%s", p->notes);
    v.setup_context_us = p->setup_ns[0] / 1000;
    v.setup_ring_us = p->setup_ns[1] / 1000;
    v.setup_cuda_us = p->setup_ns[2] / 1000;
    pthread_mutex_unlock(&p->mu);
    v.cuda = p->cuda;
    v.registered = p->registered;
    snprintf(v.copy, sizeof(v.copy), "%s", !p->cuda ? "host" : p->direct ? "direct"
                                           : p->gpu ? "gathered" : "staged");
    snprintf(v.decode, sizeof(v.decode), "%s", p->gpu ? "gpu" : "cpu");
    snprintf(v.decode_why, sizeof(v.decode_why), "%s", p->L->decode_why);
    for (unsigned i = 0; p->gpu && i < p->nworkers; i++)
        v.gpu_decode_bytes += p->workers[i].gpu ? p->workers[i].gpu->sz.dev_bytes : 0;
    return nf__copy_out(info, &v, sizeof(v), "loader_pool_info");
}

size_t loader_last_error(const loader_t *L, char *buf, size_t len)
{
    if (!L) {
        if (len)
            buf[0] = '\0';
        return 0;
    }
    struct numafeed_loader *M = (struct numafeed_loader *)L; /* the lock, not the message */
    pthread_mutex_lock(&M->errmu);
    size_t n = strlen(M->errmsg);
    if (len) {
        size_t c = n < len - 1 ? n : len - 1;
        memcpy(buf, M->errmsg, c);
        buf[c] = '\0';
    }
    pthread_mutex_unlock(&M->errmu);
    return n;
}
