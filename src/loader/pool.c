// SPDX-License-Identifier: Apache-2.0
/*
 * One pool: the node and CPUs it runs on, its ring of batch slots, and its
 * start and stop. The data path the pool's workers run is in worker.c.
 *
 * The ring's memory is placed before anything else touches it, in the
 * order DESIGN.md fixes: map (huge pages where the node has them), bind to
 * the node, first touch by the pool's own pinned workers (each its share,
 * so the faults run in parallel), read the placement back and move
 * strays, and only then page-lock it for the GPU (cudaHostRegister pins
 * pages where they already are).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader/private.h"

/* ---- the ring ----------------------------------------------------------- */

/* Bytes of a slot's data the host keeps, before the record ids (page
 * aligned): all of it when the workers build batches in the slot; GPU
 * decode gathers them on the device, and the host keeps only the variable
 * fields' offsets (which it computes); the direct copy of raw records,
 * nothing. */
static size_t host_data(const struct pool *p)
{
    size_t n = p->gpu ? p->L->fixed_base : p->direct ? 0 : p->slot_bytes;
    return (n + 4095) & ~(size_t)4095;
}

/* Point every slot (memory, ids, field views) into a ring at base. */
static void layout_slots(struct pool *p, void *base)
{
    const struct nf_layout *lay = p->L->layout;
    uint64_t B = p->sampler.batch;
    size_t per = p->slot_stride;
    for (unsigned i = 0; i < p->depth; i++) {
        struct slot *s = &p->slots[i];
        s->mem = (uint8_t *)base + (size_t)i * per;
        s->ids = (uint64_t *)(void *)(s->mem + host_data(p));
        for (unsigned f = 0; f < lay->nfields; f++) {
            const struct nf_field *fd = &lay->fields[f];
            struct loader_field *v = &s->fields[f];
            size_t at = fd->kind == NF_KIND_FIXED ? p->L->fixed_base + fd->offset * B
                                                  : p->L->var_vals[fd->var];
            v->name = fd->name;
            v->dtype = nf__dtype_name(fd->dtype);
            v->ndim = fd->ndim;
            v->shape = fd->shape;
            v->record_bytes = (size_t)fd->bytes;
            v->kind = fd->kind; /* enum nf_kind and loader_field_kind agree */
            v->host = p->direct || p->gpu ? NULL : s->mem + at; /* on the device only */
            v->device = s->dev ? (uint8_t *)s->dev + at : NULL;
            if (fd->kind != NF_KIND_FIXED) {
                v->offsets = nf__slot_offsets(p->L, s, fd->var);
                v->offsets_device = s->dev ? (const int64_t *)(const void *)(
                                                 (uint8_t *)s->dev + p->L->var_offs[fd->var])
                                           : NULL;
            }
        }
    }
}

int nf__ring_alloc(struct pool *p)
{
    /* mapped and bound only: every worker then touches its share of it
     * (nf__ring_touch), and worker 0 reads the placement back and moves
     * any strays (nf__ring_verify) */
    size_t total = p->slot_stride * p->depth; /* checked by nf__pool_init */
    int rc = nf__node_map(p->L->sysfs_root, p->node, total, &p->ring, &p->ring_mapped,
                          &p->placement);
    if (rc)
        return rc;
    layout_slots(p, p->ring);
    return 0;
}

/* Worker i of n faults in its share of the ring, in 2 MiB steps (a huge
 * page is one fault): one thread zeroing 500 MiB of huge pages took 70 to
 * 140 ms of loader_create on the H200 machine, most of the time to the
 * first batch once a CUDA context exists. The pages land on the pool's node
 * either way: mbind's policy, or failing that the workers' own. */
void nf__ring_touch(struct pool *p, unsigned i, unsigned n)
{
    size_t steps = p->ring_mapped / NF_HUGE_2M;
    size_t lo = steps * i / n, hi = steps * (i + 1) / n;
    if (hi > lo)
        nf__node_touch((uint8_t *)p->ring + lo * NF_HUGE_2M, (hi - lo) * NF_HUGE_2M);
}

void nf__ring_verify(struct pool *p)
{
    nf__node_settle(p->ring, p->ring_mapped, p->node, &p->placement);
    if (p->placement.note[0])
        nf__note(p->notes, sizeof(p->notes), "ring: %s", p->placement.note);
}

/*
 * Worker 0, pinned, current device set, ring placed: page-lock the ring in
 * place, then the stream, the device buffers and the events. If the driver
 * refuses the registration (memlock limit, memory it cannot pin) we say so
 * and, unless strict, take a pinned allocation from cudaHostAlloc made by
 * this node-pinned thread under its node-preferring policy, and check where
 * its pages went.
 */
int nf__ring_setup_cuda(struct pool *p)
{
    size_t total = p->slot_stride * p->depth;
    /* one registration per slot: a slot is one copy's source, and a copy
     * may not span two registrations; direct, and GPU decode without
     * variable fields: the host slots hold only ids, which never travel */
    bool travels = p->gpu ? p->L->fixed_base != 0 : !p->direct;
    int rc = travels ? nf__cuda_host_register(p->ring, total, p->slot_stride) : 1;
    if (rc == 1) {
        rc = 0;
    } else if (rc == 0) {
        p->registered = true;
    } else {
        if (p->L->cfg.strict)
            return nf__error_prefix(rc, "ring of pool for GPU %d (strict)", p->ordinal);
        nf__note(p->notes, sizeof(p->notes), "%s; using cudaHostAlloc by a node-%d thread",
                 numafeed_last_error(), p->node);
        rc = nf__cuda_host_alloc(total, &p->pinned);
        if (rc)
            return rc;
        memset(p->pinned, 0, total);
        nf__node_verify(p->pinned, total, p->node, &p->placement);
        p->placement.bound = false;
        p->placement.hugetlb = p->placement.thp = false;
        p->placement.page_size = 4096;
        nf__node_free(p->ring, p->ring_mapped);
        p->ring = NULL;
        p->ring_mapped = 0;
    }
    rc = nf__cuda_stream_create(&p->stream);
    if (!rc)
        rc = nf__cuda_malloc(p->slot_bytes * p->depth, &p->dev_ring);
    for (unsigned i = 0; !rc && i < p->depth; i++) {
        struct slot *s = &p->slots[i];
        s->dev = (uint8_t *)p->dev_ring + (size_t)i * p->slot_bytes;
        rc = nf__cuda_event_create(&s->ready_ev);
        if (!rc)
            rc = nf__cuda_event_create(&s->release_ev);
    }
    if (!rc)
        layout_slots(p, p->pinned ? p->pinned : p->ring);
    return rc;
}

/*
 * Worker 0 of a host pool with pin_memory, ring placed: register the ring
 * with CUDA in place, one registration per slot as for a GPU's ring (on the
 * pool's GPU, else the first; portable to every GPU). Refused (no device,
 * no driver, the memlock limit): the ring stays as it is and the notes say
 * why, or, under strict, the pool fails with the error.
 */
int nf__ring_pin_host(struct pool *p)
{
    int n = nf__cuda_device_count(), rc;
    if (n <= 0)
        rc = n ? n : nf__error(NUMAFEED_ENOCUDA, "no CUDA device");
    else if (!(rc = nf__cuda_set_device(p->ordinal < n ? p->ordinal : 0)))
        rc = nf__cuda_host_register(p->ring, p->slot_stride * p->depth, p->slot_stride);
    if (!rc) {
        p->registered = true;
        return 0;
    }
    if (p->L->cfg.strict)
        return nf__error_prefix(rc, "pin_memory (strict)");
    nf__note(p->notes, sizeof(p->notes), "pin_memory: %s: the ring is not registered",
             numafeed_last_error());
    nf__error_clear();
    return 0;
}

/* ---- where a pool runs -------------------------------------------------- */

/* The pool's node: override, else the GPU's, else (host pool without a
 * GPU) the first online node. */
static int pick_node(struct pool *p, int pos, int ordinal, const numafeed_topo *topo, bool host)
{
    const struct loader_config *c = &p->L->cfg;
    int override = c->node_override ? c->node_override[pos] : -1;
    int ngpu = numafeed_topo_gpu_count(topo);
    if (override >= 0) {
        char tmp[8];
        if (numafeed_topo_node_cpus(topo, override, tmp, sizeof(tmp)) < 0)
            return nf__error(NUMAFEED_ECONFIG, "node_override[%d] = %d: no such online node", pos,
                             override);
        p->node = override;
        p->node_known = true;
    } else if (ordinal < ngpu) {
        struct numafeed_gpu_info gi;
        numafeed_topo_gpu(topo, ordinal, &gi);
        p->node = gi.numa_node;
        p->node_known = gi.node_known;
        if (!gi.node_known)
            nf__note(p->notes, sizeof(p->notes), "GPU %d (%s): NUMA node unknown (sysfs %d), "
                     "using node %d", ordinal, gi.pci_bus_id, gi.numa_node_raw, gi.numa_node);
    } else if (host) {
        p->node = numafeed_topo_node_id(topo, 0);
        p->node_known = false;
        nf__note(p->notes, sizeof(p->notes), "host pool %d runs on node %d, the first online "
                 "node", ordinal, p->node);
    } else {
        return nf__error(NUMAFEED_ECONFIG, "GPU %d is not visible (%d visible)", ordinal, ngpu);
    }
    return 0;
}

/* The pool's CPUs: node & allowed, else allowed (never an empty mask). */
static int pick_cpus(struct pool *p, const numafeed_topo *topo)
{
    struct nf_cpuset node_cpus = {0};
    char list[4096];
    int n = numafeed_topo_node_cpus(topo, p->node, list, sizeof(list));
    int rc = n < 0 ? n : nf__cpuset_parse(&node_cpus, list, (size_t)n, "node cpus");
    if (!rc)
        rc = nf__cpuset_and(&p->cpus, &node_cpus, &topo->allowed);
    nf__cpuset_free(&node_cpus);
    if (rc)
        return rc;
    if (nf__cpuset_empty(&p->cpus)) {
        p->cpus_fallback = true;
        rc = nf__cpuset_copy(&p->cpus, &topo->allowed);
        if (rc)
            return rc;
        nf__note(p->notes, sizeof(p->notes), "no allowed CPU on node %d: pool runs on every "
                 "allowed CPU", p->node);
    }
    return 0;
}

/* ---- the ring's size ---------------------------------------------------- */

/* The sampler for this pool's part of the dataset. */
static int init_sampler(struct pool *p, int pos, uint32_t rank, uint32_t world)
{
    struct numafeed_loader *L = p->L;
    const struct loader_config *c = &L->cfg;
    uint32_t nblocks = nf__dataset_blocks(L->ds);
    uint64_t window = nf__loader_window(L);
    uint64_t nparts = (uint64_t)world * (uint64_t)L->npools;
    int rc = nf__sampler_init(&p->sampler, c->seed, c->shuffle != 0, c->drop_last != 0, window,
                              c->batch_size, (uint64_t)rank * (uint64_t)L->npools + (uint64_t)pos,
                              nparts, nblocks, nf__dataset_block_records(L->ds));
    if (rc)
        return rc == -EINVAL ? NUMAFEED_ECONFIG : rc;
    if (c->start_batch >= p->sampler.nbatches ||
        c->start_epoch > (UINT64_MAX >> 1) / p->sampler.nbatches)
        return nf__error(NUMAFEED_ECONFIG,
                         "start_batch %llu of epoch %llu is out of range (an epoch has %llu "
                         "batches)", (unsigned long long)c->start_batch,
                         (unsigned long long)c->start_epoch,
                         (unsigned long long)p->sampler.nbatches);
    return 0;
}

/* Default per-pool cap on the ring (loader_config.max_ring_bytes). */
#define RING_MAX_DEFAULT (UINT64_C(4) << 30)
/* The default prefetch stays within these: half a GiB of slots, and slots
 * the dataset can fill (two epochs' batches; a ring larger than that only
 * holds copies of the same records). */
#define RING_DEFAULT_BYTES (UINT64_C(512) << 20)
#define RING_DEFAULT_SLOTS 4096u

static void human(char *buf, size_t len, uint64_t bytes)
{
    static const char *unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)bytes;
    unsigned u = 0;
    while (v >= 1024 && u + 1 < NF_ARRAY_SIZE(unit)) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

/* The default depth: every worker's shuffle window in flight. A worker
 * decodes a whole window, then waits for the slots of its batches; while
 * it waits it decodes nothing. So that every worker can have its window in
 * flight, the ring holds the batches of (threads + 2) windows (measured on
 * the H100 machine: 14 threads decoding 8-batch windows into 4 slots
 * reached 0.6x bare decode), at least 4 slots. */
static uint64_t default_depth(const struct pool *p, uint64_t max_slots)
{
    const struct nf_sampler *s = &p->sampler;
    uint64_t per_window = (s->window + s->batch - 1) / s->batch + 1;
    uint64_t d = (p->nworkers + 2) * per_window + 1;
    uint64_t fill = 2 * s->nbatches;
    /* the larger of a slot's host and device parts (direct: the device's) */
    uint64_t cap = RING_DEFAULT_BYTES /
                   (p->slot_stride > p->slot_bytes ? p->slot_stride : p->slot_bytes);
    if (d > fill)
        d = fill;
    if (d > cap)
        d = cap;
    if (d > RING_DEFAULT_SLOTS)
        d = RING_DEFAULT_SLOTS;
    if (d < 4)
        d = 4;
    return d < max_slots ? d : max_slots;
}

/* Slot sizes and the ring's depth, all from the configuration: batch size
 * times record size, within max_ring_bytes. */
static int size_ring(struct pool *p)
{
    const struct loader_config *c = &p->L->cfg;
    const struct nf_layout *lay = p->L->layout;
    uint64_t B = p->sampler.batch;
    uint64_t max = c->max_ring_bytes ? c->max_ring_bytes : RING_MAX_DEFAULT;
    size_t ids;
    char a[32], b[32];
    human(b, sizeof(b), max);
    p->slot_bytes = p->L->slot_end;
    if (!p->L->slot_ok ||
        nf__mul_size((size_t)B, sizeof(uint64_t), &ids) ||
        nf__add_size(host_data(p), (ids + 4095) & ~(size_t)4095, &p->slot_stride) ||
        p->slot_stride > max / 2)
        return nf__error(NUMAFEED_ECONFIG, "a batch of %llu records of %llu bytes%s does not "
                         "fit twice in max_ring_bytes (%s per pool): lower batch_size, or "
                         "raise max_ring_bytes", (unsigned long long)B,
                         (unsigned long long)lay->record_bytes,
                         lay->nvar ? " and the variable fields of the largest records" : "", b);
    uint64_t max_slots = max / (p->slot_stride > p->slot_bytes ? p->slot_stride : p->slot_bytes);
    p->depth = c->prefetch;
    if (!p->depth)
        p->depth = (unsigned)default_depth(p, max_slots);
    if (p->depth > max_slots) {
        human(a, sizeof(a), (uint64_t)p->depth * p->slot_stride);
        return nf__error(NUMAFEED_ECONFIG, "prefetch %u of batches of %llu records of %llu "
                         "bytes takes %s, more than max_ring_bytes (%s per pool): lower "
                         "prefetch or batch_size, or raise max_ring_bytes", p->depth,
                         (unsigned long long)B, (unsigned long long)lay->record_bytes, a, b);
    }
    return 0;
}

/* Slots, their field views, and which batch each holds first. */
static int init_slots(struct pool *p)
{
    const struct loader_config *c = &p->L->cfg;
    unsigned nf = p->L->layout->nfields;
    p->slots = calloc(p->depth, sizeof(*p->slots));
    p->field_views = calloc((size_t)p->depth * nf, sizeof(*p->field_views));
    if (!p->slots || !p->field_views)
        return nf__error(-ENOMEM, "out of memory for %u slots", p->depth);
    /* Start: batch base lives in slot base % depth like every other, so
     * slot i first holds the batch of [base, base + depth) congruent to i,
     * and the first unit is the one holding the start batch's first record. */
    const struct nf_sampler *sm = &p->sampler;
    p->base_seq = c->start_epoch * sm->nbatches + c->start_batch;
    p->next_seq = p->base_seq;
    for (unsigned i = 0; i < p->depth; i++) {
        uint64_t seq = p->base_seq + (i + p->depth - p->base_seq % p->depth) % p->depth;
        p->slots[i].fields = p->field_views + (size_t)i * nf;
        atomic_store(&p->slots[i].seq, seq);
        atomic_store(&p->slots[i].remaining, nf__batch_len(sm, seq % sm->nbatches));
    }
    /* the first unit: the earliest window that can hold the start batch's
     * first record (q / C's or the one before, sampler.h); whichever it is
     * in the start epoch, a unit before it has no record of the batches
     * delivered and is counted and left */
    uint64_t first_pos = sm->start + nf__batch_start(sm, c->start_batch);
    uint64_t first_win = first_pos / sm->window ? first_pos / sm->window - 1 : 0;
    atomic_store(&p->next_unit, c->start_epoch * sm->nwindows + first_win - sm->first_window);
    p->end_unit = p->end_seq = UINT64_MAX;
    if (c->epochs && (__builtin_mul_overflow(c->start_epoch + c->epochs, sm->nwindows,
                                             &p->end_unit) ||
                      __builtin_mul_overflow(c->start_epoch + c->epochs, sm->nbatches,
                                             &p->end_seq)))
        return nf__error(NUMAFEED_ECONFIG, "epochs %llu from epoch %llu: too many",
                         (unsigned long long)c->epochs, (unsigned long long)c->start_epoch);
    return 0;
}

/* decode gpu streams a unit only when every slot it writes is free: the
 * slots must hold the units being built and about as many built before
 * them that the consumer has not taken yet. With fewer, workers wait for
 * slots or take the window path (one batch's gather at a time); on an H200
 * that halved what the tokens got (docs/loader.md): say so, and what would
 * do. */
static void note_gpu_ring(struct pool *p)
{
    uint64_t batch = p->sampler.batch ? p->sampler.batch : 1;
    uint64_t per_unit = nf__loader_window(p->L) / batch + 2; /* partial ends */
    uint64_t want = 2 * per_unit * p->nworkers;
    if (p->depth >= want)
        return;
    nf__note(p->notes, sizeof(p->notes), "decode gpu: %u slots hold %u workers' units of "
             "about %llu batches only in part: prefetch %llu lets every worker stream its "
             "unit", p->depth, p->nworkers, (unsigned long long)per_unit,
             (unsigned long long)want);
}

/* ---- start and stop ----------------------------------------------------- */

int nf__pool_init(struct numafeed_loader *L, struct pool *p, int pos, int ordinal,
                  const numafeed_topo *topo, bool host, uint32_t rank, uint32_t world)
{
    const struct loader_config *c = &L->cfg;
    p->L = L;
    p->ordinal = ordinal;
    p->cuda = !host;
    p->direct = L->direct && p->cuda;
    p->gpu = L->gpu_decode && p->cuda;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->cmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv_work, &ca);
    pthread_cond_init(&p->cv_ready, &ca);
    pthread_cond_init(&p->cv_setup, &ca);
    pthread_condattr_destroy(&ca);
    if (L->host_reason[0])
        nf__note(p->notes, sizeof(p->notes), "%s", L->host_reason);
    if (L->io_why[0])
        nf__note(p->notes, sizeof(p->notes), "io %s", L->io_why);
    if (L->copy_why[0])
        nf__note(p->notes, sizeof(p->notes), "%s", L->copy_why);

    int rc = pick_node(p, pos, ordinal, topo, host);
    if (!rc)
        rc = pick_cpus(p, topo);
    if (!rc)
        rc = init_sampler(p, pos, rank, world);
    if (rc)
        return rc;
    size_t ncpus = nf__cpuset_count(&p->cpus);
    p->nworkers = c->threads ? c->threads : (unsigned)(ncpus < 4 ? ncpus : 4);
    if ((rc = size_ring(p)) || (rc = init_slots(p)))
        return rc;
    if (p->gpu)
        note_gpu_ring(p);
    p->workers = calloc(p->nworkers, sizeof(*p->workers));
    if (!p->workers)
        return nf__error(-ENOMEM, "out of memory");
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->workers[i];
        w->pool = p;
        w->idx = i;
        int e = pthread_create(&w->thread, NULL, nf__worker_main, w);
        if (e)
            return nf__error(-e, "pthread_create (pool %d): %s", ordinal, strerror(e));
        w->started = true;
    }
    return 0;
}

static void print_pool(const struct pool *p)
{
    char cpus[256];
    nf__cpuset_format(&p->cpus, cpus, sizeof(cpus));
    fprintf(stderr,
            "numafeed: %s %d: node %d%s, CPUs %s, %u threads, ring %u x %zu bytes, "
            "pages %zu KiB%s%s, mbind %s, on node %zu/%zu%s, io %s; set up in: CUDA "
            "context %.1f ms, ring %.1f ms, page-lock and device ring %.1f ms%s%s\n",
            p->cuda ? "pool GPU" : "host pool", p->ordinal, p->node,
            p->node_known ? "" : " (unknown)", cpus, p->nworkers, p->depth, p->slot_bytes,
            p->placement.page_size >> 10, p->placement.hugetlb ? " hugetlb" : "",
            p->placement.thp ? " THP" : "", p->placement.bound ? "yes" : "no",
            p->placement.pages_on_node, p->placement.pages,
            p->placement.verified ? "" : " (not verified)", p->io_backend,
            (double)p->setup_ns[0] / 1e6, (double)p->setup_ns[1] / 1e6,
            (double)p->setup_ns[2] / 1e6, p->notes[0] ? "; " : "", p->notes);
}

/* Wait for every worker of a started pool to bind and set up its pipeline,
 * and for its ring. loader_create starts every pool first, then waits:
 * the pools' rings are placed and page-locked at the same time (one after
 * another, four 13-slot image pools took 100-200 ms of create on the
 * 4 x H200 machine with the contexts already made). */
int nf__pool_wait_ready(struct pool *p)
{
    int rc;
    pthread_mutex_lock(&p->mu);
    while (p->ready_workers < p->nworkers)
        pthread_cond_wait(&p->cv_ready, &p->mu);
    rc = p->start_err;
    if (rc)
        nf__error(rc, "%s", p->start_msg);
    /* the decode's reason last, after the ring's and the CUDA setup's: it is
     * the longest (nvCOMP's search path) and the one kept whole elsewhere
     * (decode_why), so it is what a full note cuts */
    if (!rc && p->L->decode_note)
        nf__note(p->notes, sizeof(p->notes), "%s", p->L->decode_why);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    if (!rc && p->L->cfg.verbose)
        print_pool(p);
    return rc;
}

void nf__pool_stop(struct pool *p)
{
    if (!p->workers)
        return;
    atomic_store(&p->stop, true);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv_work);
    pthread_cond_broadcast(&p->cv_ready);
    pthread_cond_broadcast(&p->cv_setup);
    pthread_mutex_unlock(&p->mu);
    /* A consumer woken above (or queued on cmu) sees stop and returns
     * -ECANCELED; it still touches the pool and the loader on its way out,
     * so nothing is freed until the last one has left. */
    while (atomic_load_explicit(&p->inside, memory_order_acquire))
        usleep(100);
    for (unsigned i = 0; i < p->nworkers; i++)
        if (p->workers[i].started) {
            pthread_join(p->workers[i].thread, NULL);
            p->workers[i].started = false; /* stop is called again by nf__pool_free */
        }
}

static void free_worker(struct worker *w)
{
    nf__pipe_destroy(w->pipe); /* its reads may still fill the GPU staging */
    nf__gpu_worker_free(w);
    nf__plan_free(&w->plan);
    free(w->sigma);
    free(w->span);
    free(w->pos_block);
    free(w->pos_in);
    free(w->pos_id);
    free(w->blocks);
    free(w->pos_order);
    free(w->blk_first);
    free(w->bcount);
    free(w->held);
    free(w->block_slot);
    free(w->boffs);
    free(w->sigma2);
    free(w->span2);
    free(w->dma_dst);
    free(w->dma_src);
    free(w->dma_len);
}

static void free_cuda(struct pool *p)
{
    /* nothing may still read the ring: let queued copies finish */
    for (unsigned i = 0; p->slots && i < p->depth; i++)
        if (p->slots[i].copied)
            nf__cuda_event_synchronize(p->slots[i].ready_ev);
    for (unsigned i = 0; p->slots && i < p->depth; i++) {
        nf__cuda_event_destroy(p->slots[i].ready_ev);
        nf__cuda_event_destroy(p->slots[i].release_ev);
    }
    nf__cuda_stream_destroy(p->stream);
    nf__cuda_free(p->dev_ring);
    if (p->registered) /* before munmap */
        nf__cuda_host_unregister(p->ring, p->slot_stride * p->depth, p->slot_stride);
    nf__cuda_host_free(p->pinned);
}

void nf__pool_free(struct pool *p)
{
    if (!p->L)
        return; /* never initialised */
    nf__pool_stop(p);
    for (unsigned i = 0; p->workers && i < p->nworkers; i++)
        free_worker(&p->workers[i]);
    free(p->workers);
    if (p->cuda)
        free_cuda(p);
    else if (p->registered) /* pin_memory; before munmap */
        nf__cuda_host_unregister(p->ring, p->slot_stride * p->depth, p->slot_stride);
    nf__node_free(p->ring, p->ring_mapped);
    free(p->slots);
    free(p->field_views);
    nf__sampler_free(&p->sampler);
    nf__cpuset_free(&p->cpus);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->cmu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_ready);
    pthread_cond_destroy(&p->cv_setup);
}
