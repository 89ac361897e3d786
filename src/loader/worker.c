// SPDX-License-Identifier: Apache-2.0
/*
 * The data path, top to bottom: workers, units, the ring of slots, epochs.
 *
 * Threads. A loader has one pool per served GPU; a pool has T worker
 * threads. Each worker first pins itself to the pool's CPUs (the GPU node's
 * CPUs intersected with the inherited allowed CPUs) and sets a preferred
 * memory policy for the node, and only then allocates anything: its block
 * pipeline (io_uring + zstd context + buffers). Worker 0 also maps the
 * pool's ring, and every worker faults in its share of it, so the ring's
 * first touch, too, happens on the node.
 *
 * Work. The sampler cuts each epoch of the pool's part into "units", the
 * windows of the global order that overlap the part (sampler.h). A worker
 * claims the next unit with one atomic increment of the pool's unit
 * counter; units run on across epochs, so the next epoch's first batches
 * are built while the current epoch's last batches are consumed. For its
 * unit a worker lists the distinct blocks it needs, hands them to its
 * block pipeline (src/io: several reads in flight on its own io_uring, or
 * the shards' mappings), and gets each back verified and decoded; it
 * copies every record into the slot of the batch it belongs to, at its
 * place. The pipeline decides codecs, buffers and alignment; this file
 * decides only which block's records go where.
 *
 * Two ways to build a unit. Streaming (the usual one): every slot the unit
 * writes is free, so each block is scattered into its batches as soon as
 * it is decoded, while its bytes are still in this core's cache, and the
 * pipeline keeps only about 1 MiB of blocks in flight. Whole window (when
 * the unit spans more batches than the ring has slots, or some of its
 * slots are still held by the consumer): every block of the unit is
 * decoded first and held, then batches are filled one at a time, each
 * waiting for its slot.
 *
 * Slots. Batch s (s counts batches across epochs) lives in slot s % D. A
 * slot's seq says which batch it holds; the consumer's release moves it to
 * s + D. A batch may take records from two units (windows are not aligned
 * to batches), so a slot counts the records still missing; whoever writes
 * the last one publishes the batch. Workers take units in order and fill
 * batches in increasing order, so the batch the consumer waits for always
 * has every contributor able to make progress: no deadlock as long as the
 * consumer releases what it took.
 *
 * Locks. The hot path (claim, read, decode, copy, count) takes no lock. A
 * pool mutex and two condition variables are used only to sleep: a worker
 * whose slot is still held by the consumer, and a consumer whose batch is
 * not ready; and to publish a batch or release a slot (once per batch).
 * No lock is shared between pools.
 *
 * Errors. A worker that fails (corrupt block, I/O error) records the error
 * against the first batch its unit feeds; that batch never completes, and
 * the consumer gets the error, with the worker's message, when it reaches
 * it, and on every call after. Earlier batches are delivered normally.
 *
 * CUDA path. After the ring is placed (mmap, mbind, first touch, verify)
 * worker 0 page-locks it in place with cudaHostRegister; registration pins
 * pages where they are, so placement must come first (pool.c). Each slot
 * has a device buffer, a ready event and a release event; the pool has one
 * non-blocking stream. The worker that completes a batch queues the
 * host-to-device copy of the slot on that stream and records the ready
 * event; loader_next_on_stream makes the caller's stream wait on it, so the
 * consumer never blocks the host on a copy. Release records the release
 * event on the consumer's stream. A worker about to refill a slot waits
 * (in the worker, never in the consumer) for that slot's previous copy and
 * release events: only then are its host memory and device buffer free.
 *
 * GPU decode (decode gpu). Units, slots and publishing stay as above; what
 * changes is how a unit's records reach its batches. The worker reads its
 * unit's blocks as stored (the same pipeline, stored mode) into its own
 * page-locked, node-local staging, behind a header it writes there: each
 * block's place, size and hash, nvCOMP's arrays, and, when streaming, the
 * gather list (one copy per record and field, the bytes put_record would
 * write). One host-to-device copy takes header and blocks to the worker's
 * device region; on the worker's own stream nvCOMP decodes the zstd
 * blocks into the arena, a kernel checks every block (nvCOMP's status and
 * size, then the XXH3 of its bytes against the index), and a kernel
 * gathers the records into the batches' device buffers. The worker waits
 * for its stream, reads the verdicts and only then counts its records: a
 * batch is published after every byte in it was verified, and a bad block
 * fails the pool at the unit's first batch, as on the CPU. Each worker has
 * its own stream so that one's copy overlaps another's decode; the ready
 * event is still recorded on the pool's stream by whoever completes the
 * batch, after the gathers it follows have finished. The window path
 * decodes and verifies the whole unit, then gathers batch by batch, each
 * after its slot is free. All the memory is sized when the worker starts,
 * from the configuration's bounds (gpu_plan.h); nothing is allocated per
 * unit.
 *
 * Shutdown. loader_destroy sets stop, wakes every sleeper and joins. A
 * worker in I/O lets its reads finish (page cache or device, bounded)
 * before it returns.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#if defined(__x86_64__) && defined(__SSE2__)
#include <emmintrin.h>
#define NF_HAVE_NT 1
#endif

#include "loader/private.h"

/* ---- failing, waiting for a slot, publishing ---------------------------- */

void nf__pool_fail(struct pool *p, int err, uint64_t seq)
{
    pthread_mutex_lock(&p->mu);
    if (!p->err || seq < p->err_seq) {
        p->err = err;
        p->err_seq = seq;
        snprintf(p->errmsg, sizeof(p->errmsg), "%s", numafeed_last_error());
    }
    pthread_cond_broadcast(&p->cv_ready);
    pthread_mutex_unlock(&p->mu);
}

/* Wait until the slot of batch b of epoch holds it (its previous batch
 * was released). */
bool nf__wait_slot(struct pool *p, uint64_t epoch, uint64_t b)
{
    struct slot *s = nf__slot_of(p, epoch, b);
    uint64_t seq = epoch * p->sampler.nbatches + b;
    if (atomic_load_explicit(&s->seq, memory_order_acquire) != seq) {
        uint64_t t0 = nf__now_ns();
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&s->seq, memory_order_acquire) != seq &&
               !atomic_load(&p->stop))
            pthread_cond_wait(&p->cv_work, &p->mu);
        pthread_mutex_unlock(&p->mu);
        atomic_fetch_add_explicit(&p->st_stall_ns, nf__now_ns() - t0, memory_order_relaxed);
    }
    if (atomic_load(&p->stop))
        return false;
    if (p->cuda && seq >= p->depth) {
        /* The slot's last batch: its copy must have left the host memory and
         * the consumer's work must be done with the device buffer. Usually
         * long complete; waited for here, in the worker. */
        uint64_t t0 = nf__now_ns();
        if ((s->copied && nf__cuda_event_synchronize(s->ready_ev)) ||
            (s->released_gpu && nf__cuda_event_synchronize(s->release_ev))) {
            nf__pool_fail(p, NUMAFEED_ECUDA, seq);
            return false;
        }
        atomic_fetch_add_explicit(&p->st_stall_ns, nf__now_ns() - t0, memory_order_relaxed);
    }
    return true;
}

/* Each field's bytes in this batch (a variable field's from its offsets,
 * which the batch's first record's writer put there). */
static void set_sizes(struct pool *p, struct slot *s, uint64_t records)
{
    const struct nf_layout *lay = p->L->layout;
    for (unsigned f = 0; f < lay->nfields; f++) {
        const struct nf_field *fd = &lay->fields[f];
        s->fields[f].values_bytes =
            fd->kind == NF_KIND_FIXED
                ? records * fd->bytes
                : (uint64_t)nf__slot_offsets(p->L, s, fd->var)[records] * nf__dtype_size(fd->dtype);
    }
}

/* Unused slot bytes between two parts of a batch up to which one H2D copy
 * takes both, gap and all: on the H200 host a cudaMemcpyAsync from
 * page-locked memory cost about 3 us beyond its bytes (4 KiB in 3.0 us,
 * 1 MiB in 22.3, 4 MiB in 79.1: 55 GB/s between those two), the time the
 * copy moves some 170 KB in (docs/loader.md). Tests set it to 0 and
 * SIZE_MAX. */
size_t nf__h2d_merge_gap = 128u << 10;

/* The slot's H2D copy: without variable fields the whole data region (a
 * short batch copies some stale bytes past its records rather than one
 * copy per field); with them, the offsets and fixed fields, then each
 * field's values as far as this batch uses them, parts closer together
 * than nf__h2d_merge_gap in one copy (with one variable field, always
 * one: its values start where the fixed fields end). GPU decode gathered
 * the records on the device: only the offsets travel (direct: nothing). */
static int copy_slot(struct pool *p, struct slot *s)
{
    const struct numafeed_loader *L = p->L;
    if (p->gpu)
        return L->fixed_base ? nf__cuda_memcpy_h2d(s->dev, s->mem, L->fixed_base, p->stream) : 0;
    if (p->direct)
        return 0;
    if (!L->layout->nvar)
        return nf__cuda_memcpy_h2d(s->dev, s->mem, p->slot_bytes, p->stream);
    uint8_t *dev = s->dev;
    size_t lo = 0, hi = L->slot_head; /* the part not copied yet */
    int rc = 0;
    for (unsigned f = 0; !rc && f < L->layout->nfields; f++) {
        const struct loader_field *v = &s->fields[f];
        if (v->kind == LOADER_FIELD_FIXED || !v->values_bytes)
            continue;
        /* variable fields' values lie in field order, each past the last */
        size_t at = (size_t)((const uint8_t *)v->host - s->mem);
        if (at - hi > nf__h2d_merge_gap) {
            rc = nf__cuda_memcpy_h2d(dev + lo, s->mem + lo, hi - lo, p->stream);
            lo = at;
        }
        hi = at + (size_t)v->values_bytes;
    }
    return rc ? rc : nf__cuda_memcpy_h2d(dev + lo, s->mem + lo, hi - lo, p->stream);
}

static void publish(struct pool *p, struct slot *s)
{
    uint64_t seq = atomic_load(&s->seq);
    set_sizes(p, s, nf__batch_len(&p->sampler, seq % p->sampler.nbatches));
    if (p->cuda) {
        /* direct: the workers' copies are on the stream already; GPU
         * decode: its gathers are complete (the worker waited for them) */
        if (copy_slot(p, s) || nf__cuda_event_record(s->ready_ev, p->stream)) {
            nf__pool_fail(p, NUMAFEED_ECUDA, seq);
            return;
        }
        s->copied = true;
    }
    pthread_mutex_lock(&p->mu);
    s->ready = true;
    pthread_cond_broadcast(&p->cv_ready);
    pthread_mutex_unlock(&p->mu);
}

/* n more records of slot s are written; the last writer publishes it. */
void nf__count_written(struct pool *p, struct slot *s, uint64_t n)
{
    if (n && atomic_fetch_sub_explicit(&s->remaining, n, memory_order_acq_rel) == n)
        publish(p, s);
}

/* ---- copying records into slots ----------------------------------------- */

#ifdef NF_HAVE_NT
/* Ask for p's line in a state this core can write without another round
 * trip: a plain prefetch (what __builtin_prefetch emits without -mprfchw)
 * gets a line shared when another core wrote it last, as the other workers
 * of the pool do, and the store then waits to own it all the same.
 * Every x86-64 executes prefetchw; those without PRFCHW as a no-op. */
static inline void prefetch_write(const void *p)
{
    __asm__ volatile("prefetchw %0" : : "m"(*(const char *)p));
}
#endif

/* The ends of a block's copies, written after every streamed line of the
 * block (copy_out); a full list is written and started again. */
struct copy_end {
    uint8_t *d;
    const uint8_t *s;
    size_t len;
};
struct copy_ends {
    unsigned n;
    struct copy_end e[128];
};

static void write_ends(struct copy_ends *ce)
{
    for (unsigned k = 0; k < ce->n; k++)
        memcpy(ce->e[k].d, ce->e[k].s, ce->e[k].len);
    ce->n = 0;
}

/* Copies of nf__nt_min_bytes and more go into slots with non-temporal
 * stores (copy_out), shorter ones with memcpy. Measured on an H200 host at
 * 14 threads (numafeed bench, host batches, raw records, 2026-11-30):
 * records of 16, 32 and 64 KiB went at 48-52 GB/s streamed against 53-60
 * with memcpy, records of 128 KiB at 51 streamed against 39-43 with memcpy
 * (147 KiB: 58-59 against 48-53); at 4 threads the two were within noise,
 * and on the 2-core VM memcpy was the quicker for 8 KiB (docs/loader.md). */
size_t nf__nt_min_bytes = 128u << 10;

/* Copy into a batch slot, which the CPU does not read again (the DMA or the
 * consumer does). Copies of nf__nt_min_bytes and more use non-temporal
 * stores: no read of each destination line first, and the cache is left to
 * the decoder. Only whole cache lines are streamed (a partly written line
 * leaves the write-combining buffer as several partial writes: variable
 * records start anywhere, and streaming from their first byte took a third
 * off the copy); the ends of a copy use plain stores. Those need their
 * lines read first, and a store waiting for its line holds up every store
 * behind it, the streamed ones included: so both end lines are asked for
 * (prefetch for writing) before the lines between are streamed, and
 * written after them; with ce, later still, when the caller writes ce's
 * list (write_ends), after the rest of its records' lines (variable
 * records end mid-line in the slot, and with their ends written between
 * copies a host run over raw variable records spent a fifth more time
 * copying than over fixed ones of the same bytes). The caller fences
 * (nt_fence) before publishing. */
static inline void copy_out(void *dst, const void *src, size_t n, struct copy_ends *ce)
{
#ifdef NF_HAVE_NT
    if (n >= nf__nt_min_bytes) {
        uint8_t *d = dst;
        const uint8_t *s = src;
        size_t head = (64 - ((uintptr_t)d & 63)) & 63;
        size_t m = (n - head) & ~(size_t)63, tail = n - head - m;
        if (head)
            prefetch_write(d);
        if (tail)
            prefetch_write(d + head + m);
        for (size_t i = head; i < head + m; i += 64) {
            __m128i x0 = _mm_loadu_si128((const __m128i *)(s + i));
            __m128i x1 = _mm_loadu_si128((const __m128i *)(s + i + 16));
            __m128i x2 = _mm_loadu_si128((const __m128i *)(s + i + 32));
            __m128i x3 = _mm_loadu_si128((const __m128i *)(s + i + 48));
            _mm_stream_si128((__m128i *)(d + i), x0);
            _mm_stream_si128((__m128i *)(d + i + 16), x1);
            _mm_stream_si128((__m128i *)(d + i + 32), x2);
            _mm_stream_si128((__m128i *)(d + i + 48), x3);
        }
        if (ce && ce->n + 2 > NF_ARRAY_SIZE(ce->e))
            write_ends(ce);
        if (ce) {
            if (head)
                ce->e[ce->n++] = (struct copy_end){d, s, head};
            if (tail)
                ce->e[ce->n++] = (struct copy_end){d + head + m, s + head + m, tail};
            return;
        }
        memcpy(d, s, head);
        memcpy(d + head + m, s + head + m, tail);
        return;
    }
#endif
    (void)ce;
    memcpy(dst, src, n);
}

static inline void nt_fence(void)
{
#ifdef NF_HAVE_NT
    _mm_sfence();
#endif
}

/* Record `rec` (as stored: its fixed fields, then its variable ones) into
 * place i of slot s. bo: the batch's element offsets, nvar x (B + 1); the
 * writer of a batch's first record also puts them into the slot. ce: where
 * to list the copies' ends (copy_out), or NULL to write them at once. */
static void put_record(struct worker *w, uint64_t B, struct slot *s, uint64_t i,
                       const uint8_t *rec, uint64_t id, const int64_t *bo,
                       struct copy_ends *ce)
{
    const struct numafeed_loader *L = w->pool->L;
    const struct nf_layout *lay = L->layout;
    const uint8_t *var = rec + lay->record_bytes;
    if (w->pool->direct) {
        /* the copy engine takes each field from the page cache: only the
         * copies are listed here, and issued together (flush_dma) */
        for (unsigned f = 0; f < lay->nfields; f++) {
            const struct nf_field *fd = &lay->fields[f];
            w->dma_dst[w->ndma] = (uint8_t *)s->dev + L->fixed_base + fd->offset * B +
                                  i * fd->bytes;
            w->dma_src[w->ndma] = rec + fd->offset;
            w->dma_len[w->ndma++] = (size_t)fd->bytes;
        }
        nf__slot_put_id(L, s, B, i, id, bo); /* no offsets: copy direct has no variable field */
        return;
    }
    for (unsigned f = 0; f < lay->nfields; f++) {
        const struct nf_field *fd = &lay->fields[f];
        if (fd->kind == NF_KIND_FIXED) {
            copy_out(s->mem + L->fixed_base + fd->offset * B + i * fd->bytes, rec + fd->offset,
                     fd->bytes, ce);
            continue;
        }
        size_t elem = nf__dtype_size(fd->dtype);
        const int64_t *o = bo + fd->var * (B + 1);
        size_t n = (size_t)(o[i + 1] - o[i]) * elem;
        copy_out(s->mem + L->var_vals[fd->var] + (size_t)o[i] * elem, var, n, ce);
        var += n;
    }
    nf__slot_put_id(L, s, B, i, id, bo);
}

/* ---- one unit: which records, from which blocks ------------------------- */

/* Make room for a window's positions and distinct blocks (once per worker). */
static int worker_reserve(struct worker *w)
{
    const struct nf_sampler *s = &w->pool->sampler;
    if (w->sigma)
        return 0;
    size_t c = (size_t)nf__window_max(s);
    w->sigma = malloc(c * sizeof(*w->sigma));
    w->span = malloc(c * sizeof(*w->span));
    w->pos_block = malloc(c * sizeof(*w->pos_block));
    w->pos_in = malloc(c * sizeof(*w->pos_in));
    w->pos_id = malloc(c * sizeof(*w->pos_id));
    w->blocks = malloc(c * sizeof(*w->blocks));
    w->pos_order = malloc(c * sizeof(*w->pos_order));
    w->blk_first = malloc((c + 1) * sizeof(*w->blk_first));
    w->bcount = malloc((c + 2) * sizeof(*w->bcount));
    w->held = malloc(c * sizeof(*w->held));
    w->block_slot = malloc((size_t)s->nblocks * sizeof(*w->block_slot));
    if (w->pool->direct) { /* decode gpu lists a unit's blocks here: fewer than c */
        size_t n = c * w->pool->L->layout->nfields;
        w->dma_dst = malloc(n * sizeof(*w->dma_dst));
        w->dma_src = malloc(n * sizeof(*w->dma_src));
        w->dma_len = malloc(n * sizeof(*w->dma_len));
        if (!w->dma_dst || !w->dma_src || !w->dma_len)
            return nf__error(-ENOMEM, "worker: out of memory for %zu copies", n);
    }
    if (w->pool->L->layout->nvar) {
        w->sigma2 = malloc(c * sizeof(*w->sigma2));
        w->span2 = malloc(c * sizeof(*w->span2));
        if (!w->sigma2 || !w->span2)
            return nf__error(-ENOMEM, "worker: out of memory for a window of %zu records", c);
    }
    if (!w->sigma || !w->span || !w->pos_block || !w->pos_in || !w->pos_id || !w->blocks ||
        !w->pos_order || !w->blk_first || !w->bcount || !w->held || !w->block_slot)
        return nf__error(-ENOMEM, "worker: out of memory for a window of %zu records", c);
    for (uint32_t i = 0; i < s->nblocks; i++)
        w->block_slot[i] = UINT32_MAX;
    return 0;
}

/* Fill the worker's per-position tables for unit u (window `win` of
 * `epoch`) and list its distinct blocks. */
static int plan_unit(struct worker *w, uint64_t u, struct unit *un)
{
    struct pool *p = w->pool;
    const struct nf_sampler *s = &p->sampler;
    uint64_t epoch = u / s->nwindows;
    uint64_t win = s->first_window + u % s->nwindows;
    int rc = worker_reserve(w);
    if (!rc && (!w->plan.valid || w->plan.epoch != epoch))
        rc = nf__plan_make(s, epoch, &w->plan);
    if (rc) {
        *un = (struct unit){.epoch = epoch, .first_seq = epoch * s->nbatches};
        return rc;
    }
    /* the window's ends are block boundaries of this epoch's block order */
    uint64_t w0 = nf__window_start(s, &w->plan, win), wlen = nf__window_len(s, &w->plan, win);
    uint64_t a = w0 > s->start ? w0 : s->start;
    uint64_t e = w0 + wlen < s->start + s->len ? w0 + wlen : s->start + s->len;
    uint64_t bfirst, ib;
    nf__batch_of(s, a - s->start, &bfirst, &ib);
    uint64_t first_seq = epoch * s->nbatches + bfirst;
    if (first_seq < p->base_seq) {
        /* the unit holding the start batch: the records of earlier batches
         * are neither read nor delivered */
        a = s->start + nf__batch_start(s, p->base_seq - epoch * s->nbatches);
        first_seq = p->base_seq;
    }
    *un = (struct unit){.epoch = epoch, .a = a, .e = e, .first_seq = first_seq};
    if (a >= e)
        return 0; /* none of the part's records (or an empty window) */
    nf__window_perm(s, epoch, win, w->sigma, wlen);
    nf__plan_span(s, &w->plan, w0, wlen, w->span);
    uint32_t nb = 0;
    for (uint64_t q = a; q < e; q++) {
        uint32_t blk, in, j = w->sigma[q - w0];
        uint64_t id = nf__plan_record_at(s, &w->plan, w->span[j], w0 + j, &blk, &in);
        size_t k = (size_t)(q - a);
        w->pos_block[k] = blk;
        w->pos_in[k] = in;
        w->pos_id[k] = id;
        if (w->block_slot[blk] == UINT32_MAX) {
            w->block_slot[blk] = nb;
            w->blocks[nb++] = blk;
        }
    }
    un->nb = nb;
    if (a < e) {
        nf__batch_of(s, a - s->start, &un->b_lo, &ib);
        nf__batch_of(s, e - 1 - s->start, &un->b_hi, &ib);
    }
    return 0;
}

/* The unit is done with its blocks: forget their indices. */
static void forget_blocks(struct worker *w, const struct unit *un)
{
    for (uint32_t i = 0; i < un->nb; i++)
        w->block_slot[w->blocks[i]] = UINT32_MAX;
}

/* The global record at global-order position gp of the unit's epoch: from
 * the unit's own tables when it is one of the unit's, else from gp's
 * window, whose permutation is computed here (a batch may take records
 * from the unit before or after; one window is cached, and known by its
 * range, so a position in it costs no search for its window). */
static uint64_t id_at(struct worker *w, const struct unit *un, uint64_t gp)
{
    if (gp >= un->a && gp < un->e)
        return w->pos_id[gp - un->a];
    const struct nf_sampler *s = &w->pool->sampler;
    if (!w->win2_ok || w->win2_epoch != un->epoch || gp - w->win2_w0 >= w->win2_len) {
        uint64_t win = nf__window_of(s, &w->plan, gp);
        w->win2_w0 = nf__window_start(s, &w->plan, win);
        w->win2_len = nf__window_len(s, &w->plan, win);
        nf__window_perm(s, un->epoch, win, w->sigma2, w->win2_len);
        nf__plan_span(s, &w->plan, w->win2_w0, w->win2_len, w->span2);
        w->win2_epoch = un->epoch;
        w->win2_ok = true;
    }
    uint32_t blk, in, j = w->sigma2[gp - w->win2_w0];
    return nf__plan_record_at(s, &w->plan, w->span2[j], w->win2_w0 + j, &blk, &in);
}

/* Variable fields: the element offsets of every batch the unit writes
 * into, from the lengths of all the batch's records in batch order. Every
 * worker that writes into a batch computes the same offsets, so each
 * writes its records' values in place without waiting for the others. */
static int unit_offsets(struct worker *w, const struct unit *un)
{
    const struct numafeed_loader *L = w->pool->L;
    const struct nf_sampler *s = &w->pool->sampler;
    unsigned nv = L->layout->nvar;
    if (!nv || un->a >= un->e)
        return 0;
    size_t stride = (size_t)(s->batch + 1) * nv, nb = (size_t)(un->b_hi - un->b_lo + 1);
    if (nb * stride > w->boffs_cap) {
        int64_t *o = realloc(w->boffs, nb * stride * sizeof(*o));
        if (!o)
            return nf__error(-ENOMEM, "worker: out of memory for %zu batches' offsets", nb);
        w->boffs = o;
        w->boffs_cap = nb * stride;
    }
    /* lengths in bytes to elements: every dtype's size is a power of two,
     * so a shift (a division per record was most of this loop's time) */
    unsigned shift[LOADER_MAX_FIELDS];
    for (unsigned f = 0; f < L->layout->nfields; f++) {
        const struct nf_field *fd = &L->layout->fields[f];
        size_t elem = nf__dtype_size(fd->dtype);
        if (fd->kind == NF_KIND_FIXED)
            continue;
        if (!elem || (elem & (elem - 1)))
            return nf__error(-EINVAL, "field %s: elements of %zu bytes", fd->name, elem);
        shift[fd->var] = (unsigned)__builtin_ctzll(elem);
    }
    const uint32_t *len = nf__dataset_var_len(L->ds);
    for (size_t bi = 0; bi < nb; bi++) {
        uint64_t b = un->b_lo + bi, blen = nf__batch_len(s, b);
        uint64_t gp0 = s->start + nf__batch_start(s, b);
        int64_t *o = w->boffs + bi * stride;
        for (unsigned v = 0; v < nv; v++)
            o[v * (s->batch + 1)] = 0;
        for (uint64_t i = 0; i < blen; i++) {
            uint64_t id = id_at(w, un, gp0 + i);
            for (unsigned v = 0; v < nv; v++) {
                int64_t *ov = o + v * (s->batch + 1);
                ov[i + 1] = ov[i] + (int64_t)(len[id * nv + v] >> shift[v]);
            }
        }
    }
    return 0;
}

/* Add what the pipeline measured since last time to the pool's counters. */
static void fold_pipe_stats(struct worker *w)
{
    struct pool *p = w->pool;
    struct nf_pipe_stats now;
    nf__pipe_stats(w->pipe, &now);
    atomic_fetch_add_explicit(&p->st_io_ns, now.io_ns - w->seen.io_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->st_decode_ns, now.decode_ns - w->seen.decode_ns,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&p->st_blocks, now.blocks - w->seen.blocks, memory_order_relaxed);
    w->seen = now;
}

/* A unit has all its blocks: count it, and its blocks, before it publishes
 * any batch. */
void nf__unit_done(struct worker *w, bool windowed)
{
    struct pool *p = w->pool;
    fold_pipe_stats(w);
    atomic_fetch_add_explicit(&p->st_units, 1, memory_order_relaxed);
    if (windowed)
        atomic_fetch_add_explicit(&p->st_windowed, 1, memory_order_relaxed);
}

/* ---- streaming: each block goes into its batches as soon as it is
 * verified and decoded, while its bytes are still in this core's cache. ---- */

/* Group the unit's positions by block: a counting sort on the block index. */
static void group_by_block(struct worker *w, const struct unit *un)
{
    uint32_t n = (uint32_t)(un->e - un->a), nb = un->nb;
    memset(w->blk_first, 0, (nb + 1) * sizeof(*w->blk_first));
    for (uint32_t k = 0; k < n; k++)
        w->blk_first[w->block_slot[w->pos_block[k]] + 1]++;
    for (uint32_t k = 0; k < nb; k++)
        w->blk_first[k + 1] += w->blk_first[k];
    for (uint32_t k = 0; k < n; k++)
        w->pos_order[w->blk_first[w->block_slot[w->pos_block[k]]]++] = k;
    /* the fill advanced every start to the next block's: shift back */
    memmove(w->blk_first + 1, w->blk_first, nb * sizeof(*w->blk_first));
    w->blk_first[0] = 0;
}

/* Put block k's records of this unit into their slots. */
static void scatter_block(struct worker *w, const struct unit *un, uint32_t k,
                          const uint8_t *data)
{
    struct pool *p = w->pool;
    const struct nf_sampler *s = &p->sampler;
    struct copy_ends ce;
    ce.n = 0;
    for (uint32_t j = w->blk_first[k]; j < w->blk_first[k + 1]; j++) {
        uint32_t pos = w->pos_order[j];
        uint64_t b, i;
        nf__batch_of(s, un->a + pos - s->start, &b, &i);
        put_record(w, s->batch, nf__slot_of(p, un->epoch, b), i,
                   data + nf__rec_offset(p->L, w->pos_id[pos], w->pos_in[pos]), w->pos_id[pos],
                   nf__batch_offsets(w, un, b), &ce);
        w->bcount[b - un->b_lo]++;
    }
    write_ends(&ce); /* while the block's bytes are guarded */
}

/* scatter_block as the pipeline's guard calls it: a block read from a
 * shard mapping may lose its bytes under the copy (pipe.c). */
struct scatter_call {
    struct worker *w;
    const struct unit *un;
    uint32_t k;
    const uint8_t *data;
};

static void scatter_cb(void *arg)
{
    struct scatter_call *c = arg;
    scatter_block(c->w, c->un, c->k, c->data);
}

/* Block k of the unit to the pipeline: to be verified and decoded there,
 * or (stored: GPU decode's staging for the unit) read as stored into its
 * place in the staging. */
static int submit_block(struct worker *w, uint32_t k, uint8_t *stored)
{
    if (!stored)
        return nf__pipe_submit(w->pipe, w->blocks[k], k);
    const struct gpu_worker *g = w->gpu;
    if (g->mapped) /* copy direct: the GPU copies it from the page cache */
        return nf__pipe_submit_in_place(w->pipe, w->blocks[k], k);
    return nf__pipe_submit_stored(w->pipe, w->blocks[k], k, stored + g->blk[k].in_off,
                                  g->bi[k]->stored_size);
}

int nf__pump_blocks(struct worker *w, const struct unit *un, bool hold, uint8_t *stored)
{
    struct pool *p = w->pool;
    uint32_t next = 0, finished = 0;
    uint64_t t_copy = 0;
    int rc = hold ? nf__pipe_reserve(w->pipe, un->nb) : 0;
    while (!rc && finished < un->nb) {
        if (atomic_load_explicit(&p->stop, memory_order_relaxed)) {
            rc = nf__error(-ECANCELED, "loader is being destroyed");
            break;
        }
        while (next < un->nb && nf__pipe_room(w->pipe) && !(rc = submit_block(w, next, stored)))
            next++;
        struct nf_block_done d;
        if (rc || (rc = nf__pipe_flush(w->pipe)) || (rc = nf__pipe_next(w->pipe, &d)))
            break;
        finished++;
        if (hold) {
            w->held[d.tag] = d;
            continue;
        }
        if (!stored) {
            uint64_t t0 = nf__now_ns();
            struct scatter_call call = {w, un, (uint32_t)d.tag, d.data};
            rc = nf__pipe_guard(w->pipe, scatter_cb, &call);
            t_copy += nf__now_ns() - t0;
        } else if (w->gpu->mapped) {
            w->gpu->mapped[d.tag] = d.data;
        }
        nf__pipe_release(w->pipe, &d);
    }
    if (rc)
        nf__pipe_drain(w->pipe); /* reads in flight finish into our buffers (or the
                                  * staging) first */
    atomic_fetch_add_explicit(&p->st_copy_ns, t_copy, memory_order_relaxed);
    return rc;
}

/* Direct copy: issue the listed record copies on the pool's stream, before
 * the batches they fill are counted (the last writer's ready event then
 * follows every copy of the batch in stream order). */
static int flush_dma(struct worker *w)
{
    struct pool *p = w->pool;
    if (!w->ndma)
        return 0;
    int rc = nf__cuda_memcpy_batch_h2d(w->dma_dst, w->dma_src, w->dma_len, w->ndma, p->stream);
    w->ndma = 0;
    return rc;
}

static int stream_unit(struct worker *w, const struct unit *un)
{
    struct pool *p = w->pool;
    group_by_block(w, un);
    memset(w->bcount, 0, (size_t)(un->b_hi - un->b_lo + 1) * sizeof(*w->bcount));
    /* every slot was seen free by run_unit; this also waits for their last
     * GPU copies and the consumer's release events */
    for (uint64_t b = un->b_lo; b <= un->b_hi; b++)
        if (!nf__wait_slot(p, un->epoch, b))
            return 0; /* stopping */
    int rc = nf__pump_blocks(w, un, false, NULL);
    if (!rc)
        rc = flush_dma(w);
    if (rc)
        return rc;
    nf__unit_done(w, false); /* counted before its batches are: a consumer that has
                          * every batch sees every block counted */
    nt_fence();
    for (uint64_t b = un->b_lo; b <= un->b_hi && !atomic_load(&p->stop); b++)
        nf__count_written(p, nf__slot_of(p, un->epoch, b), w->bcount[b - un->b_lo]);
    return 0;
}

/* ---- whole window: decode every block of the unit, then fill batches
 * one at a time, waiting for each one's slot. ---- */

struct put_call {
    struct worker *w;
    uint64_t B, i, id;
    struct slot *slot;
    const uint8_t *rec;
    const int64_t *bo;
};

static void put_cb(void *arg)
{
    struct put_call *c = arg;
    put_record(c->w, c->B, c->slot, c->i, c->rec, c->id, c->bo, NULL);
}

static int window_unit(struct worker *w, const struct unit *un)
{
    struct pool *p = w->pool;
    const struct nf_sampler *s = &p->sampler;
    /* Timed without the waits for slots (those are worker_stall). */
    uint64_t t_copy = nf__now_ns();
    uint64_t stall0 = atomic_load_explicit(&p->st_stall_ns, memory_order_relaxed);
    uint64_t cur_b = UINT64_MAX, written = 0;
    struct slot *slot = NULL;
    int rc = 0;
    for (uint64_t q = un->a; q < un->e; q++) {
        uint64_t b, i;
        nf__batch_of(s, q - s->start, &b, &i);
        if (b != cur_b) {
            if (slot) {
                nt_fence();
                if ((rc = flush_dma(w)))
                    break;
                nf__count_written(p, slot, written);
            }
            slot = nf__slot_of(p, un->epoch, b);
            if (!nf__wait_slot(p, un->epoch, b)) {
                slot = NULL;
                break; /* stopping */
            }
            cur_b = b;
            written = 0;
        }
        size_t k = (size_t)(q - un->a);
        const uint8_t *blk = w->held[w->block_slot[w->pos_block[k]]].data;
        struct put_call call = {w, s->batch, i, w->pos_id[k], slot,
                                blk + nf__rec_offset(p->L, w->pos_id[k], w->pos_in[k]),
                                nf__batch_offsets(w, un, b)};
        if ((rc = nf__pipe_guard(w->pipe, put_cb, &call))) {
            slot = NULL; /* never published: the pool fails at this unit */
            break;
        }
        written++;
    }
    if (slot && !rc && !atomic_load(&p->stop)) {
        nt_fence();
        if (!(rc = flush_dma(w)))
            nf__count_written(p, slot, written);
    }
    w->ndma = 0; /* listed copies of a batch never published */
    for (uint32_t k = 0; k < un->nb; k++)
        nf__pipe_release(w->pipe, &w->held[k]);
    /* other workers' stalls in between are subtracted too: an estimate, as
     * stage timers are, good enough to see which stage dominates */
    uint64_t stalled = atomic_load_explicit(&p->st_stall_ns, memory_order_relaxed) - stall0;
    uint64_t spent = nf__now_ns() - t_copy;
    atomic_fetch_add_explicit(&p->st_copy_ns, spent > stalled ? spent - stalled : 0,
                              memory_order_relaxed);
    return rc;
}

/* ---- a unit, start to end ----------------------------------------------- */

/* Whether the unit can stream: it writes every batch it touches at once, so
 * it needs all their slots free before it reads a block. Waiting for any
 * slot but the first could deadlock: its previous batch may be one the
 * consumer holds while it waits for this unit's first batch (a caller may
 * hold up to prefetch - 1 batches). So: wait for the first slot, as the
 * window path does, and stream only when the others are already free. */
static int can_stream(struct pool *p, const struct unit *un)
{
    const struct nf_sampler *s = &p->sampler;
    if (un->a >= un->e || un->b_hi - un->b_lo >= p->depth)
        return 0;
    if (!nf__wait_slot(p, un->epoch, un->b_lo))
        return -1; /* stopping */
    for (uint64_t b = un->b_lo + 1; b <= un->b_hi; b++) {
        uint64_t seq = un->epoch * s->nbatches + b;
        if (atomic_load_explicit(&nf__slot_of(p, un->epoch, b)->seq, memory_order_acquire) != seq)
            return 0;
    }
    return 1;
}

/* Build this worker's share of unit u. Returns 0, or an error (recorded). */
static int run_unit(struct worker *w, uint64_t u)
{
    struct pool *p = w->pool;
    struct unit un;
    int rc = plan_unit(w, u, &un);
    if (!rc)
        rc = unit_offsets(w, &un);
    if (rc) {
        nf__pool_fail(p, rc, un.first_seq);
        return rc;
    }
    if (un.a >= un.e) { /* none of the part's records: counted, and left */
        nf__unit_done(w, false);
        return 0;
    }
    int stream = can_stream(p, &un);
    if (p->gpu && stream >= 0) {
        rc = nf__gpu_unit(w, &un, stream > 0);
    } else if (stream > 0) {
        rc = stream_unit(w, &un);
    } else if (stream == 0) {
        rc = nf__pump_blocks(w, &un, true, NULL);
        if (!rc) {
            nf__unit_done(w, true);
            rc = window_unit(w, &un);
        }
    }
    forget_blocks(w, &un);
    fold_pipe_stats(w); /* a failed unit's blocks too */
    if (rc) {
        if (!atomic_load(&p->stop))
            nf__pool_fail(p, rc, un.first_seq);
        return rc;
    }
    return 0;
}

/* ---- a worker's life ---------------------------------------------------- */

/* Worker 0 maps the ring; every worker touches its share; worker 0 then
 * verifies it and sets up the CUDA side. Returns worker 0's error. */
static int share_ring(struct worker *w, int rc)
{
    struct pool *p = w->pool;
    uint64_t t1 = nf__now_ns();
    if (w->idx == 0) {
        if (!rc)
            rc = nf__ring_alloc(p);
        pthread_mutex_lock(&p->mu);
        p->ring_state = rc ? -1 : 1;
        pthread_cond_broadcast(&p->cv_setup);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_lock(&p->mu);
    while (!p->ring_state && !atomic_load(&p->stop))
        pthread_cond_wait(&p->cv_setup, &p->mu);
    bool touch = p->ring_state > 0;
    pthread_mutex_unlock(&p->mu);
    if (touch)
        nf__ring_touch(p, w->idx, p->nworkers);
    pthread_mutex_lock(&p->mu);
    p->ring_touched++;
    pthread_cond_broadcast(&p->cv_setup);
    if (w->idx == 0)
        while (p->ring_touched < p->nworkers && !atomic_load(&p->stop))
            pthread_cond_wait(&p->cv_setup, &p->mu);
    pthread_mutex_unlock(&p->mu);
    if (w->idx != 0)
        return rc;
    if (!rc)
        nf__ring_verify(p);
    uint64_t t2 = nf__now_ns();
    if (!rc && p->cuda)
        rc = nf__ring_setup_cuda(p);
    else if (!rc && p->L->cfg.pin_memory)
        rc = nf__ring_pin_host(p);
    p->setup_ns[1] = t2 - t1; /* read by create after every worker is ready */
    p->setup_ns[2] = nf__now_ns() - t2;
    return rc;
}

/* Report this worker's start-up to the pool and wait until every worker is
 * ready (or the pool failed or stops). Returns whether to run. */
static bool start_handshake(struct worker *w, int rc)
{
    struct pool *p = w->pool;
    pthread_mutex_lock(&p->mu);
    if (rc && !p->start_err) {
        p->start_err = rc;
        snprintf(p->start_msg, sizeof(p->start_msg), "pool for %s %d, worker %u: %s",
                 p->cuda ? "GPU" : "host pool", p->ordinal, w->idx, numafeed_last_error());
    }
    if (!rc) {
        if (w->idx == 0)
            snprintf(p->io_backend, sizeof(p->io_backend), "%s", nf__pipe_backend(w->pipe));
        if (w->bind.note[0])
            nf__note(p->notes, sizeof(p->notes), "worker %u: %s", w->idx, w->bind.note);
        if (w->idx == 0 && strcmp(nf__pipe_backend_reason(w->pipe), "default") != 0)
            nf__note(p->notes, sizeof(p->notes), "io: %s (%s)", nf__pipe_backend(w->pipe),
                     nf__pipe_backend_reason(w->pipe));
    }
    p->ready_workers++;
    pthread_cond_broadcast(&p->cv_ready);
    /* Nobody starts work until every worker (and the ring) is ready. */
    while (!atomic_load(&p->stop) && (p->ready_workers < p->nworkers || p->start_err))
        pthread_cond_wait(&p->cv_work, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return !rc && !atomic_load(&p->stop);
}

void *nf__worker_main(void *arg)
{
    struct worker *w = arg;
    struct pool *p = w->pool;
    struct numafeed_loader *L = p->L;
    atomic_store(&w->tid, (int)syscall(SYS_gettid));
    char name[16];
    snprintf(name, sizeof(name), "numafeed-g%d-%u", p->ordinal, w->idx);
    pthread_setname_np(pthread_self(), name);

    /* Pin and set the memory policy before allocating anything. */
    int rc = nf__bind_thread(&p->cpus, p->node, &w->bind);
    /* the current device is per thread: set it in every pool thread */
    uint64_t t0 = nf__now_ns();
    if (!rc && p->cuda)
        rc = nf__cuda_set_device(p->ordinal);
    if (w->idx == 0)
        p->setup_ns[0] = nf__now_ns() - t0;
    rc = share_ring(w, rc);
    if (!rc) {
        struct nf_pipe_options po;
        nf__pipe_options_init(&po);
        po.io = L->io;
        po.depth = L->cfg.io_depth;
        po.verify_once = p->direct; /* the shards are page-locked: verified bytes stay */
        rc = nf__pipe_create(L->ds, &po, &w->pipe);
    }
    if (!rc && p->gpu)
        rc = nf__gpu_worker_init(w);
    if (!start_handshake(w, rc))
        return NULL;
    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        uint64_t u = atomic_fetch_add_explicit(&p->next_unit, 1, memory_order_relaxed);
        if (u >= p->end_unit)
            break; /* every configured epoch is built: nothing past it is read */
        if (run_unit(w, u))
            break; /* the error is recorded; this worker has nothing sound to add */
    }
    return NULL;
}
