// SPDX-License-Identifier: Apache-2.0
/*
 * The data path, top to bottom: pools, workers, the ring of slots, epochs.
 *
 * Threads. A loader has one pool per served GPU; a pool has T worker
 * threads. Each worker first pins itself to the pool's CPUs (the GPU node's
 * CPUs intersected with the inherited allowed CPUs) and sets a preferred
 * memory policy for the node, and only then allocates anything: its reader
 * (io_uring + zstd context), its staging buffers. Worker 0 also allocates
 * the pool's ring, so the ring's first touch, too, happens on the node.
 *
 * Work. The sampler cuts each epoch of the pool's part into "units", the
 * windows of the global order that overlap the part (sampler.h). A worker
 * claims the next unit with one atomic increment of the pool's unit
 * counter; units run on across epochs, so the next epoch's first batches
 * are built while the current epoch's last batches are consumed. For its
 * unit a worker reads the blocks it needs (several in flight on its own
 * io_uring), verifies and decodes each once into its staging, and copies
 * every record into the slot of the batch it belongs to, at its place.
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
 * pages where they are, so placement must come first. Each slot has a
 * device buffer, a ready event and a release event; the pool has one
 * non-blocking stream. The worker that completes a batch queues the
 * host-to-device copy of the slot on that stream and records the ready
 * event; loader_next_on_stream makes the caller's stream wait on it, so the
 * consumer never blocks the host on a copy. Release records the release
 * event on the consumer's stream. A worker about to refill a slot waits
 * (in the worker, never in the consumer) for that slot's previous copy and
 * release events: only then are its host memory and device buffer free.
 *
 * Shutdown. loader_destroy sets stop, wakes every sleeper and joins. A
 * worker in I/O finishes its reads (page cache or device, bounded) first.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>
#if defined(__x86_64__) && defined(__SSE2__)
#include <emmintrin.h>
#define NF_HAVE_NT 1
#endif

#include "internal.h"
#include "io/io.h"
#include "loader/loader.h"
#include "loader/sampler.h"
#include "pin/pin.h"

#define WAIT_BUCKETS 256 /* quarter-octave histogram of consumer waits, in ns */

struct slot {
    _Atomic uint64_t seq;       /* the batch this slot holds or is being filled for */
    _Atomic uint64_t remaining; /* records of that batch not yet written */
    bool ready;                 /* under pool.mu */
    bool out;                   /* handed to the consumer, not released; under pool.mu */
    uint8_t *mem;               /* field-major: field f at mem + offset_f * batch */
    uint64_t *ids;              /* record ids, batch entries */
    void *dev;                  /* CUDA path: the slot's device buffer */
    void *ready_ev;             /* recorded on the pool stream after the copy */
    void *release_ev;           /* recorded on the consumer's stream at release */
    bool copied, released_gpu;  /* those events were recorded (for the next reuse) */
    struct loader_field fields[LOADER_MAX_FIELDS];
};

struct pool;

struct worker {
    struct pool *pool;
    unsigned idx;
    pthread_t thread;
    bool started;
    _Atomic int tid;
    struct nf_reader *reader;
    struct nf_epoch_plan plan;
    uint32_t *sigma;
    uint32_t *span;      /* plan index of each block-order position of the window */
    /* per unit: the records needed, and the decoded blocks they come from */
    uint64_t *pos_block; /* global block of each position */
    uint32_t *pos_in;    /* record index inside that block */
    uint64_t *pos_id;    /* global record id */
    uint32_t *blocks;    /* distinct blocks of the unit */
    uint32_t *pos_order; /* streaming: the unit's positions grouped by block */
    uint32_t *blk_first; /* streaming: where block k's positions start in pos_order */
    uint32_t *bcount;    /* streaming: records written into each batch of the unit */
    uint32_t *block_slot;/* staging index of each global block, or UINT32_MAX */
    uint8_t **staging;   /* decoded blocks */
    uint8_t **readbuf;   /* stored bytes (zstd) */
    uint32_t *free_buf;  /* streaming: staging/readbuf indices not in flight */
    const uint8_t **block_data; /* decoded bytes of each unit block: staging or the mapping */
    size_t nstaging;
    struct nf_bind_result bind;
};

struct pool {
    struct numafeed_loader *L;
    int gpu_index;  /* position in the served list */
    int ordinal;
    int node;
    bool node_known;
    struct nf_cpuset cpus;
    bool cpus_fallback;
    struct nf_sampler sampler;
    uint64_t setup_ns[3]; /* worker 0: CUDA device/context, ring, page-lock */
    /* start-up, under mu: the ring is mapped (1) or failed (-1); workers
     * that have touched their share of it */
    int ring_state;
    unsigned ring_touched;
    pthread_cond_t cv_setup;
    unsigned depth;
    struct slot *slots;
    void *ring;
    size_t ring_mapped, slot_bytes, slot_stride;
    struct nf_placement placement;
    _Atomic uint64_t next_unit;
    uint64_t base_seq;          /* the first batch delivered (config start) */
    atomic_bool stop;

    pthread_mutex_t mu;
    pthread_cond_t cv_work;     /* a slot was released, or stop */
    pthread_cond_t cv_ready;    /* a batch was published, an error, or stop */
    int err;                    /* under mu: first worker error */
    uint64_t err_seq;           /* under mu: the batch it affects */
    char errmsg[1024];          /* under mu */
    unsigned started, ready_workers; /* under mu: start-up handshake */
    int start_err;              /* under mu */
    char start_msg[1024];       /* under mu */

    /* consumer side: under cmu (loader_next for one gpu is one caller at a
     * time; the lock makes two callers on one gpu safe rather than fast) */
    pthread_mutex_t cmu;
    uint64_t next_seq;
    bool epoch_end_pending;
    unsigned outstanding;       /* under mu */
    _Atomic unsigned inside;    /* callers inside loader_next(_on_stream): destroy waits */

    /* stats */
    _Atomic uint64_t st_batches, st_records, st_bytes, st_wait_ns, st_wait_max, st_stall_ns,
        st_blocks, st_io_ns, st_decode_ns, st_copy_ns, st_units,
        st_windowed;            /* units built by the window path */
    _Atomic uint64_t wait_hist[WAIT_BUCKETS];

    unsigned nworkers;
    struct worker *workers;
    char io_backend[16];
    char notes[512];            /* under mu */
    /* CUDA path (cuda == false: host mode) */
    bool cuda;
    bool registered;            /* ring page-locked in place */
    void *pinned;               /* the cudaHostAlloc fallback ring, if used */
    void *stream;
    void *dev_ring;
};

struct numafeed_loader {
    struct loader_config cfg;
    char *path;
    char *sysfs_root;
    struct nf_dataset *ds;
    const struct nf_layout *layout;
    uint32_t nblocks;
    uint32_t *gblock_shard, *gblock_block; /* global block -> (shard, block) */
    int npools;
    struct pool *pools;
    char errmsg[1024];
    pthread_mutex_t errmu;
    bool cuda;                  /* batches go to the GPU */
    bool mapped;                /* LOADER_IO_MMAP: blocks are read in place */
    bool stream;                /* scatter each block as it is decoded (NUMAFEED_STREAM) */
    size_t stream_bytes;        /* staging bytes a streaming worker keeps in flight */
    bool nt_copy;               /* streaming: non-temporal stores into slots (NUMAFEED_NT) */
    bool in_place;              /* streaming: one-record zstd blocks decode into
                                 * their slot (NUMAFEED_IN_PLACE) */
    bool raw_direct;            /* streaming reads: one-record raw blocks are read
                                 * into their slot (NUMAFEED_RAW_DIRECT) */
    char host_reason[256];      /* why host mode, when it is automatic */
};

/* ------------------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}


static void loader_set_error(struct numafeed_loader *L, const char *msg)
{
    pthread_mutex_lock(&L->errmu);
    snprintf(L->errmsg, sizeof(L->errmsg), "%s", msg);
    pthread_mutex_unlock(&L->errmu);
}

void loader_config_init(struct loader_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->size = sizeof(*cfg);
    cfg->batch_size = 64;
    cfg->shuffle = 1;
}

/* ---- workers ------------------------------------------------------------ */

/* Record a worker's failure against batch seq; the consumer reports it. */
static void pool_fail(struct pool *p, int err, uint64_t seq)
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

/* Wait until slot s holds batch seq (its previous batch was released). */
static bool wait_slot(struct pool *p, struct slot *s, uint64_t seq)
{
    if (atomic_load_explicit(&s->seq, memory_order_acquire) != seq) {
        uint64_t t0 = now_ns();
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&s->seq, memory_order_acquire) != seq &&
               !atomic_load(&p->stop))
            pthread_cond_wait(&p->cv_work, &p->mu);
        pthread_mutex_unlock(&p->mu);
        atomic_fetch_add_explicit(&p->st_stall_ns, now_ns() - t0, memory_order_relaxed);
    }
    if (atomic_load(&p->stop))
        return false;
    if (p->cuda && seq >= p->depth) {
        /* The slot's last batch: its copy must have left the host memory and
         * the consumer's work must be done with the device buffer. Usually
         * long complete; waited for here, in the worker. */
        uint64_t t0 = now_ns();
        if ((s->copied && nf__cuda_event_synchronize(s->ready_ev)) ||
            (s->released_gpu && nf__cuda_event_synchronize(s->release_ev))) {
            pool_fail(p, NUMAFEED_ECUDA, seq);
            return false;
        }
        atomic_fetch_add_explicit(&p->st_stall_ns, now_ns() - t0, memory_order_relaxed);
    }
    return true;
}

static void publish(struct pool *p, struct slot *s)
{
    if (p->cuda) {
        /* the whole data region: a short batch copies some stale bytes past
         * its records rather than one copy per field */
        uint64_t seq = atomic_load(&s->seq);
        if (nf__cuda_memcpy_h2d(s->dev, s->mem, p->slot_bytes, p->stream) ||
            nf__cuda_event_record(s->ready_ev, p->stream)) {
            pool_fail(p, NUMAFEED_ECUDA, seq);
            return;
        }
        s->copied = true;
    }
    pthread_mutex_lock(&p->mu);
    s->ready = true;
    pthread_cond_broadcast(&p->cv_ready);
    pthread_mutex_unlock(&p->mu);
}

/* Make room for a window's positions and distinct blocks (once per worker). */
static int worker_reserve(struct worker *w)
{
    const struct nf_sampler *s = &w->pool->sampler;
    if (!w->sigma) {
        size_t c = (size_t)s->window;
        w->sigma = malloc(c * sizeof(*w->sigma));
        w->span = malloc(c * sizeof(*w->span));
        w->pos_block = malloc(c * sizeof(*w->pos_block));
        w->pos_in = malloc(c * sizeof(*w->pos_in));
        w->pos_id = malloc(c * sizeof(*w->pos_id));
        w->blocks = malloc(c * sizeof(*w->blocks));
        w->pos_order = malloc(c * sizeof(*w->pos_order));
        w->blk_first = malloc((c + 1) * sizeof(*w->blk_first));
        w->bcount = malloc((c + 2) * sizeof(*w->bcount));
        w->block_slot = malloc((size_t)s->nblocks * sizeof(*w->block_slot));
        if (!w->sigma || !w->span || !w->pos_block || !w->pos_in || !w->pos_id || !w->blocks ||
            !w->pos_order || !w->blk_first || !w->bcount || !w->block_slot)
            return nf__error(-ENOMEM, "worker: out of memory for a window of %zu records", c);
        for (uint32_t i = 0; i < s->nblocks; i++)
            w->block_slot[i] = UINT32_MAX;
    }
    return 0;
}

static int ensure_staging(struct worker *w, size_t count)
{
    if (count <= w->nstaging)
        return 0;
    const struct numafeed_loader *L = w->pool->L;
    size_t cap = nf__dataset_max_decoded(L->ds);
    uint8_t **st = realloc(w->staging, count * sizeof(*st));
    if (!st)
        return nf__error(-ENOMEM, "worker: out of memory");
    w->staging = st;
    uint8_t **rb = realloc(w->readbuf, count * sizeof(*rb));
    if (!rb)
        return nf__error(-ENOMEM, "worker: out of memory");
    w->readbuf = rb;
    const uint8_t **bd = realloc(w->block_data, count * sizeof(*bd));
    if (!bd)
        return nf__error(-ENOMEM, "worker: out of memory");
    w->block_data = bd;
    uint32_t *fb = realloc(w->free_buf, count * sizeof(*fb));
    if (!fb)
        return nf__error(-ENOMEM, "worker: out of memory");
    w->free_buf = fb;
    for (size_t i = w->nstaging; i < count; i++) {
        w->staging[i] = NULL;
        w->readbuf[i] = NULL;
    }
    for (size_t i = w->nstaging; i < count; i++) {
        /* allocated by this (pinned, node-preferring) thread: node-local */
        w->staging[i] = aligned_alloc(NF_IO_DIRECT_ALIGN,
                                      (cap + NF_IO_DIRECT_ALIGN - 1) & ~(size_t)(NF_IO_DIRECT_ALIGN - 1));
        w->readbuf[i] = aligned_alloc(NF_IO_DIRECT_ALIGN,
                                      (cap + 2 * NF_IO_DIRECT_ALIGN) & ~(size_t)(NF_IO_DIRECT_ALIGN - 1));
        if (!w->staging[i] || !w->readbuf[i]) {
            w->nstaging = i + 1;
            return nf__error(-ENOMEM, "worker: out of memory for staging (%zu bytes)", cap);
        }
    }
    w->nstaging = count;
    return 0;
}

/* Verify and decode the unit's block k from the mapping (LOADER_IO_MMAP):
 * a raw block is only hashed where it is mapped (never written) and *out
 * points there; a zstd block decodes into dst (dst_len bytes: staging, or
 * the record's slot run) and *out points at it. */
static int decode_mapped(struct worker *w, uint32_t k, uint8_t *dst, size_t dst_len,
                         const uint8_t **out)
{
    const struct numafeed_loader *L = w->pool->L;
    uint32_t g = w->blocks[k];
    uint32_t shard = L->gblock_shard[g], blk = L->gblock_block[g];
    const struct nf_block_info *bi = &nf__dataset_shard_index(L->ds, shard)->blocks[blk];
    const uint8_t *src = nf__dataset_block_map(L->ds, shard, blk);
    if (bi->codec == NF_CODEC_RAW) {
        dst = (uint8_t *)src;
        dst_len = bi->decoded_size;
    }
    *out = dst;
    return nf__reader_decode(w->reader, shard, blk, src, dst, dst_len);
}

/* Read, verify and decode the unit's distinct blocks into staging. */
static int load_blocks(struct worker *w, uint32_t nblocks)
{
    struct numafeed_loader *L = w->pool->L;
    struct nf_reader *r = w->reader;
    size_t cap = nf__dataset_max_decoded(L->ds);
    int rc = ensure_staging(w, nblocks);
    if (rc)
        return rc;
    if (L->mapped) {
        /* In place: a raw block is verified where it is mapped and its
         * records are copied from there; a zstd block decodes from the
         * mapping into staging. No read into a buffer. */
        uint64_t t0 = now_ns();
        for (uint32_t k = 0; k < nblocks; k++) {
            rc = decode_mapped(w, k, w->staging[k], cap, &w->block_data[k]);
            if (rc)
                return rc;
        }
        atomic_fetch_add_explicit(&w->pool->st_decode_ns, now_ns() - t0, memory_order_relaxed);
        atomic_fetch_add_explicit(&w->pool->st_blocks, nblocks, memory_order_relaxed);
        return 0;
    }
    for (uint32_t k = 0; k < nblocks; k++)
        w->block_data[k] = w->staging[k];
    unsigned depth = nf__reader_depth(r);
    struct nf_read_done done[64];
    uint32_t next = 0, finished = 0;
    while (finished < nblocks) {
        /* Stopping: submit nothing more, reap what is in flight (its
         * buffers are ours until then), decode nothing. Destroy then waits
         * for the reads in flight, not for the rest of the window. */
        bool stopping = atomic_load_explicit(&w->pool->stop, memory_order_relaxed);
        if (stopping && nf__reader_inflight(r) == 0)
            return nf__error(-ECANCELED, "loader is being destroyed");
        while (!stopping && next < nblocks && nf__reader_inflight(r) < depth) {
            uint32_t g = w->blocks[next];
            uint32_t shard = L->gblock_shard[g], blk = L->gblock_block[g];
            const struct nf_block_info *bi = &nf__dataset_shard_index(L->ds, shard)->blocks[blk];
            /* raw blocks are read straight into staging and checked there */
            void *buf = bi->codec == NF_CODEC_RAW ? w->staging[next] : w->readbuf[next];
            size_t len = bi->codec == NF_CODEC_RAW ? cap : cap + NF_IO_DIRECT_ALIGN;
            rc = nf__reader_submit(r, shard, blk, buf, len, next);
            if (rc == -EBUSY)
                break;
            if (rc)
                return rc;
            next++;
        }
        uint64_t t0 = now_ns();
        int n = nf__reader_wait(r, 1, done, (unsigned)NF_ARRAY_SIZE(done));
        uint64_t t1 = now_ns();
        atomic_fetch_add_explicit(&w->pool->st_io_ns, t1 - t0, memory_order_relaxed);
        if (n < 0)
            return n;
        for (int i = 0; i < n; i++) {
            if (stopping) {
                finished++;
                continue;
            }
            if (done[i].result)
                return done[i].result;
            uint32_t k = (uint32_t)done[i].tag;
            rc = nf__reader_decode(r, done[i].shard, done[i].block, done[i].data, w->staging[k],
                                    cap);
            if (rc)
                return rc;
            finished++;
        }
        atomic_fetch_add_explicit(&w->pool->st_decode_ns, now_ns() - t1, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&w->pool->st_blocks, nblocks, memory_order_relaxed);
    return 0;
}

/* The unit is done with its blocks: forget their staging indices. */
static void release_blocks(struct worker *w, uint32_t nb)
{
    for (uint32_t i = 0; i < nb; i++)
        w->block_slot[w->blocks[i]] = UINT32_MAX;
}

/* ---- streaming: each block goes into its batches as soon as it is
 * verified and decoded, while its bytes are still in this core's cache.
 * Every slot the unit touches must be free before the first block is read
 * (run_unit decides; stream_unit waits, which also waits for their last
 * GPU copies). ---- */

/* Copy into a batch slot, which the CPU does not read again (the DMA or the
 * consumer does). With nt, copies of 256 bytes and more use non-temporal
 * stores: no read of each destination line first, and the cache is left to
 * the decoder. The caller fences (nt_fence) before publishing. */
static inline void copy_out(void *dst, const void *src, size_t n, bool nt)
{
#ifdef NF_HAVE_NT
    if (nt && n >= 256) {
        uint8_t *d = dst;
        const uint8_t *s = src;
        size_t head = (16 - ((uintptr_t)d & 15)) & 15;
        memcpy(d, s, head);
        d += head;
        s += head;
        n -= head;
        size_t m = n & ~(size_t)63;
        for (size_t i = 0; i < m; i += 64) {
            __m128i x0 = _mm_loadu_si128((const __m128i *)(s + i));
            __m128i x1 = _mm_loadu_si128((const __m128i *)(s + i + 16));
            __m128i x2 = _mm_loadu_si128((const __m128i *)(s + i + 32));
            __m128i x3 = _mm_loadu_si128((const __m128i *)(s + i + 48));
            _mm_stream_si128((__m128i *)(d + i), x0);
            _mm_stream_si128((__m128i *)(d + i + 16), x1);
            _mm_stream_si128((__m128i *)(d + i + 32), x2);
            _mm_stream_si128((__m128i *)(d + i + 48), x3);
        }
        memcpy(d + m, s + m, n - m);
        return;
    }
#endif
    (void)nt;
    memcpy(dst, src, n);
}

static inline void nt_fence(bool nt)
{
#ifdef NF_HAVE_NT
    if (nt)
        _mm_sfence();
#endif
    (void)nt;
}

struct unit_pos {
    uint64_t epoch, a, b_lo;
};

/* Put block k's records of this unit into their slots; data NULL: the
 * block's one record is already there (in_place_dst), only its id and the
 * batch's count are left. */
static void scatter_block(struct worker *w, const struct unit_pos *u, uint32_t k,
                          const uint8_t *data)
{
    struct pool *p = w->pool;
    const struct nf_sampler *s = &p->sampler;
    const struct nf_layout *lay = p->L->layout;
    uint64_t B = s->batch;
    bool nt = p->L->nt_copy;
    for (uint32_t j = w->blk_first[k]; j < w->blk_first[k + 1]; j++) {
        uint32_t pos = w->pos_order[j];
        uint64_t b, i;
        nf__batch_of(s, u->a + pos - s->start, &b, &i);
        struct slot *slot = &p->slots[(u->epoch * s->nbatches + b) % p->depth];
        if (data) {
            const uint8_t *rec = data + (size_t)w->pos_in[pos] * lay->record_bytes;
            for (unsigned f = 0; f < lay->nfields; f++) {
                const struct nf_field *fd = &lay->fields[f];
                copy_out(slot->mem + fd->offset * B + i * fd->bytes, rec + fd->offset,
                         fd->bytes, nt);
            }
        }
        slot->ids[i] = w->pos_id[pos];
        w->bcount[b - u->b_lo]++;
    }
}

/* The slot run of block k's record where block k holds exactly one record,
 * wanted once by this unit, in a layout of one field (so the record is one
 * contiguous run of its slot); NULL otherwise. */
static uint8_t *one_record_slot(struct worker *w, const struct unit_pos *u, uint32_t k)
{
    struct pool *p = w->pool;
    const struct numafeed_loader *L = p->L;
    if (L->layout->nfields != 1 || w->blk_first[k + 1] - w->blk_first[k] != 1)
        return NULL;
    uint32_t g = w->blocks[k];
    const struct nf_block_info *bi =
        &nf__dataset_shard_index(L->ds, L->gblock_shard[g])->blocks[L->gblock_block[g]];
    if (bi->records != 1 || bi->decoded_size != L->layout->record_bytes)
        return NULL;
    const struct nf_sampler *s = &p->sampler;
    uint64_t b, i;
    nf__batch_of(s, u->a + w->pos_order[w->blk_first[k]] - s->start, &b, &i);
    struct slot *slot = &p->slots[(u->epoch * s->nbatches + b) % p->depth];
    return slot->mem + i * L->layout->record_bytes;
}

/* Where a one-record zstd block decodes straight into its slot, verified
 * there; NULL otherwise. Opt-in (NUMAFEED_IN_PLACE=1): 2-3% faster than
 * decoding into staging and copying on the 2-core VM, but 1-5% slower on
 * the H200 hosts at 14 threads, where the decoder's plain stores read every
 * slot line first and the non-temporal copy out of a cached staging buffer
 * does not. A block that fails verification leaves garbage in a batch that
 * is never published (the pool fails at that batch). */
static uint8_t *in_place_dst(struct worker *w, const struct unit_pos *u, uint32_t k)
{
    return w->pool->L->in_place ? one_record_slot(w, u, k) : NULL;
}

/* Where a raw one-record block is read straight into its slot by the
 * reader (io_uring or pread) and verified there, instead of into a read
 * buffer and then copied: NUMAFEED_RAW_DIRECT=1; NULL otherwise, and for
 * any block whose read would not be exactly the record (O_DIRECT). */
static uint8_t *raw_direct_dst(struct worker *w, const struct unit_pos *u, uint32_t k)
{
    const struct numafeed_loader *L = w->pool->L;
    if (!L->raw_direct)
        return NULL;
    uint32_t g = w->blocks[k];
    uint32_t sh = L->gblock_shard[g], blk = L->gblock_block[g];
    if (nf__dataset_shard_index(L->ds, sh)->blocks[blk].codec != NF_CODEC_RAW ||
        nf__reader_buf_bytes(w->reader, sh, blk) != L->layout->record_bytes)
        return NULL;
    return one_record_slot(w, u, k);
}

/* Read, verify, decode and scatter the unit's blocks, a few buffers at a
 * time (stream_bytes), so staging stays in cache instead of holding the
 * whole window. */
static int stream_blocks(struct worker *w, const struct unit_pos *u, uint32_t nblocks)
{
    struct pool *p = w->pool;
    struct numafeed_loader *L = p->L;
    struct nf_reader *r = w->reader;
    size_t cap = nf__dataset_max_decoded(L->ds);
    uint64_t t_io = 0, t_dec = 0, t_copy = 0;
    int rc = 0;
    if (L->mapped) {
        rc = ensure_staging(w, 1);
        for (uint32_t k = 0; !rc && k < nblocks; k++) {
            const uint8_t *dst;
            /* a zstd block of one record may decode straight into its slot
             * (opt-in); a raw one is hashed in the mapping and copied once */
            uint8_t *into = in_place_dst(w, u, k);
            uint64_t t0 = now_ns();
            rc = decode_mapped(w, k, into ? into : w->staging[0],
                               into ? L->layout->record_bytes : cap, &dst);
            uint64_t t1 = now_ns();
            if (!rc)
                scatter_block(w, u, k, dst == into ? NULL : dst);
            t_dec += t1 - t0;
            t_copy += now_ns() - t1;
        }
        goto out;
    }
    size_t nbuf = L->stream_bytes / (cap ? cap : 1);
    unsigned depth = nf__reader_depth(r);
    if (nbuf < 2)
        nbuf = 2;
    if (nbuf > depth)
        nbuf = depth;
    if (nbuf > nblocks)
        nbuf = nblocks;
    rc = ensure_staging(w, nbuf);
    if (rc)
        goto out;
    uint32_t nfree = (uint32_t)nbuf;
    for (uint32_t i = 0; i < nfree; i++)
        w->free_buf[i] = nfree - 1 - i;
    struct nf_read_done done[64];
    uint32_t next = 0, finished = 0;
    while (finished < nblocks) {
        /* Stopping: as in load_blocks, reap what is in flight and no more. */
        bool stopping = atomic_load_explicit(&p->stop, memory_order_relaxed);
        if (stopping && nf__reader_inflight(r) == 0) {
            rc = nf__error(-ECANCELED, "loader is being destroyed");
            goto out;
        }
        while (!stopping && next < nblocks && nfree && nf__reader_inflight(r) < depth) {
            uint32_t g = w->blocks[next];
            uint32_t bi = w->free_buf[nfree - 1];
            /* a raw one-record block may go straight to its slot; it still
             * takes a buffer index, which bounds the reads in flight */
            uint8_t *to = raw_direct_dst(w, u, next);
            rc = nf__reader_submit(r, L->gblock_shard[g], L->gblock_block[g],
                                    to ? to : w->readbuf[bi],
                                    to ? L->layout->record_bytes : cap + NF_IO_DIRECT_ALIGN,
                                    (uint64_t)next << 32 | (uint64_t)(to != NULL) << 31 | bi);
            if (rc == -EBUSY) {
                rc = 0;
                break;
            }
            if (rc)
                goto out;
            nfree--;
            next++;
        }
        uint64_t t0 = now_ns();
        int n = nf__reader_wait(r, 1, done, (unsigned)NF_ARRAY_SIZE(done));
        t_io += now_ns() - t0;
        if (n < 0) {
            rc = n;
            goto out;
        }
        for (int i = 0; i < n; i++) {
            uint32_t bi = (uint32_t)done[i].tag & 0x7fffffffu, k = (uint32_t)(done[i].tag >> 32);
            bool in_slot = (done[i].tag >> 31) & 1;
            w->free_buf[nfree++] = bi;
            finished++;
            if (stopping)
                continue;
            if (done[i].result) {
                rc = done[i].result;
                goto out;
            }
            const struct nf_block_info *info =
                &nf__dataset_shard_index(L->ds, done[i].shard)->blocks[done[i].block];
            /* into: the block's bytes end in its slot (read there, or a
             * zstd block decoded there, both opt-in), nothing to scatter.
             * Else a raw block is verified where it was read, a zstd one
             * decoded into staging; then scattered. */
            bool raw = info->codec == NF_CODEC_RAW;
            uint8_t *data = (uint8_t *)done[i].data;
            uint8_t *into = in_slot ? data : raw ? NULL : in_place_dst(w, u, k);
            uint8_t *dst = into ? into : raw ? data : w->staging[bi];
            uint64_t t1 = now_ns();
            rc = nf__reader_decode(r, done[i].shard, done[i].block, done[i].data, dst,
                                    dst == into ? L->layout->record_bytes : cap);
            uint64_t t2 = now_ns();
            t_dec += t2 - t1;
            if (rc)
                goto out;
            scatter_block(w, u, k, dst == into ? NULL : dst);
            t_copy += now_ns() - t2;
        }
    }
out:
    atomic_fetch_add_explicit(&p->st_io_ns, t_io, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->st_decode_ns, t_dec, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->st_copy_ns, t_copy, memory_order_relaxed);
    if (!rc)
        atomic_fetch_add_explicit(&p->st_blocks, nblocks, memory_order_relaxed);
    return rc;
}

/* Unit [a, e) of epoch, touching batches b_lo..b_hi, nb distinct blocks. */
static int stream_unit(struct worker *w, uint64_t epoch, uint64_t a, uint64_t e, uint64_t b_lo,
                       uint64_t b_hi, uint32_t nb, uint64_t first_seq)
{
    struct pool *p = w->pool;
    const struct nf_sampler *s = &p->sampler;
    /* positions grouped by block: a counting sort on the staging index */
    uint32_t n = (uint32_t)(e - a);
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
    memset(w->bcount, 0, (size_t)(b_hi - b_lo + 1) * sizeof(*w->bcount));

    for (uint64_t b = b_lo; b <= b_hi; b++) {
        uint64_t seq = epoch * s->nbatches + b;
        if (!wait_slot(p, &p->slots[seq % p->depth], seq)) {
            release_blocks(w, nb);
            return 0; /* stopping */
        }
    }
    struct unit_pos u = {.epoch = epoch, .a = a, .b_lo = b_lo};
    int rc = stream_blocks(w, &u, nb);
    release_blocks(w, nb);
    if (rc) {
        pool_fail(p, rc, first_seq);
        return rc;
    }
    nt_fence(p->L->nt_copy);
    for (uint64_t b = b_lo; b <= b_hi && !atomic_load(&p->stop); b++) {
        uint32_t c = w->bcount[b - b_lo];
        struct slot *slot = &p->slots[(epoch * s->nbatches + b) % p->depth];
        if (c && atomic_fetch_sub_explicit(&slot->remaining, c, memory_order_acq_rel) == c)
            publish(p, slot);
    }
    atomic_fetch_add_explicit(&p->st_units, 1, memory_order_relaxed);
    return 0;
}

/* Build this worker's share of unit u. Returns 0, or an error (recorded). */
static int run_unit(struct worker *w, uint64_t u)
{
    struct pool *p = w->pool;
    struct numafeed_loader *L = p->L;
    const struct nf_sampler *s = &p->sampler;
    uint64_t epoch = u / s->nwindows;
    uint64_t win = s->first_window + u % s->nwindows;
    uint64_t w0 = win * s->window, wlen = nf__window_len(s, win);
    uint64_t a = w0 > s->start ? w0 : s->start;
    uint64_t e = w0 + wlen < s->start + s->len ? w0 + wlen : s->start + s->len;
    uint64_t bfirst, ifirst;
    nf__batch_of(s, a - s->start, &bfirst, &ifirst);
    uint64_t first_seq = epoch * s->nbatches + bfirst;
    if (first_seq < p->base_seq) {
        /* the unit holding the start batch: the records of earlier batches
         * are neither read nor delivered */
        a = s->start + nf__batch_start(s, p->base_seq - epoch * s->nbatches);
        first_seq = p->base_seq;
    }

    int rc = worker_reserve(w);
    if (!rc && (!w->plan.valid || w->plan.epoch != epoch))
        rc = nf__plan_make(s, epoch, &w->plan);
    if (rc) {
        pool_fail(p, rc, first_seq);
        return rc;
    }
    nf__window_perm(s, epoch, win, w->sigma, wlen);
    nf__plan_span(s, &w->plan, w0, wlen, w->span);

    /* Which records, from which blocks; each distinct block once. */
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
    /* Streaming writes every batch the unit touches at once, so it needs
     * all their slots free before it reads a block. Waiting for any slot
     * but the first could deadlock: its previous batch may be one the
     * consumer holds while it waits for this unit's first batch (a caller
     * may hold up to ring_depth - 1 batches). So: wait for the first slot,
     * as the window path does, and stream only when the others are
     * already free; otherwise this unit takes the window-at-a-time path,
     * which fills one batch at a time. */
    uint64_t b_lo = 0, b_hi = 0, ib;
    if (a < e) {
        nf__batch_of(s, a - s->start, &b_lo, &ib);
        nf__batch_of(s, e - 1 - s->start, &b_hi, &ib);
    }
    if (L->stream && a < e && b_hi - b_lo < p->depth) {
        uint64_t seq = epoch * s->nbatches + b_lo;
        if (!wait_slot(p, &p->slots[seq % p->depth], seq)) {
            release_blocks(w, nb);
            return 0; /* stopping */
        }
        bool all_free = true;
        for (uint64_t b = b_lo + 1; all_free && b <= b_hi; b++) {
            seq = epoch * s->nbatches + b;
            all_free = atomic_load_explicit(&p->slots[seq % p->depth].seq,
                                            memory_order_acquire) == seq;
        }
        if (all_free)
            return stream_unit(w, epoch, a, e, b_lo, b_hi, nb, first_seq);
    }
    atomic_fetch_add_explicit(&p->st_windowed, 1, memory_order_relaxed);

    rc = load_blocks(w, nb);
    if (rc) {
        release_blocks(w, nb);
        pool_fail(p, rc, first_seq);
        return rc;
    }

    /* Copy each record to its batch, field by field (slots are field-major
     * so that every field is one contiguous array). Timed without the waits
     * for slots (those are worker_stall). */
    uint64_t t_copy = now_ns(), stall0 = atomic_load_explicit(&p->st_stall_ns,
                                                              memory_order_relaxed);
    const struct nf_layout *lay = L->layout;
    uint64_t B = s->batch;
    uint64_t cur_b = UINT64_MAX, written = 0;
    struct slot *slot = NULL;
    for (uint64_t q = a; q < e; q++) {
        uint64_t b, i;
        nf__batch_of(s, q - s->start, &b, &i);
        if (b != cur_b) {
            if (slot && written &&
                atomic_fetch_sub_explicit(&slot->remaining, written, memory_order_acq_rel) ==
                    written)
                publish(p, slot);
            uint64_t seq = epoch * s->nbatches + b;
            slot = &p->slots[seq % p->depth];
            if (!wait_slot(p, slot, seq))
                break; /* stopping */
            cur_b = b;
            written = 0;
        }
        size_t k = (size_t)(q - a);
        const uint8_t *rec = w->block_data[w->block_slot[w->pos_block[k]]] +
                             (size_t)w->pos_in[k] * lay->record_bytes;
        for (unsigned f = 0; f < lay->nfields; f++) {
            const struct nf_field *fd = &lay->fields[f];
            memcpy(slot->mem + fd->offset * B + i * fd->bytes, rec + fd->offset, fd->bytes);
        }
        slot->ids[i] = w->pos_id[k];
        written++;
    }
    if (slot && written && !atomic_load(&p->stop) &&
        atomic_fetch_sub_explicit(&slot->remaining, written, memory_order_acq_rel) == written)
        publish(p, slot);
    /* other workers' stalls in between are subtracted too: an estimate, as
     * stage timers are, good enough to see which stage dominates */
    uint64_t stalled = atomic_load_explicit(&p->st_stall_ns, memory_order_relaxed) - stall0;
    uint64_t spent = now_ns() - t_copy;
    atomic_fetch_add_explicit(&p->st_copy_ns, spent > stalled ? spent - stalled : 0,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&p->st_units, 1, memory_order_relaxed);
    release_blocks(w, nb);
    return 0;
}

static int alloc_ring(struct pool *p);
static void touch_ring(struct pool *p, unsigned i, unsigned n);
static void verify_ring(struct pool *p);
static int setup_cuda(struct pool *p);
static void layout_slots(struct pool *p, void *base);

static void *worker_main(void *arg)
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
    uint64_t t0 = now_ns();
    if (!rc && p->cuda)
        rc = nf__cuda_set_device(p->ordinal);
    uint64_t t1 = now_ns();
    if (w->idx == 0) {
        if (!rc)
            rc = alloc_ring(p);
        pthread_mutex_lock(&p->mu);
        p->ring_state = rc ? -1 : 1;
        pthread_cond_broadcast(&p->cv_setup);
        pthread_mutex_unlock(&p->mu);
    }
    /* the ring's first touch, shared by every worker */
    pthread_mutex_lock(&p->mu);
    while (!p->ring_state && !atomic_load(&p->stop))
        pthread_cond_wait(&p->cv_setup, &p->mu);
    bool touch = p->ring_state > 0;
    pthread_mutex_unlock(&p->mu);
    if (touch)
        touch_ring(p, w->idx, p->nworkers);
    pthread_mutex_lock(&p->mu);
    p->ring_touched++;
    pthread_cond_broadcast(&p->cv_setup);
    if (w->idx == 0)
        while (p->ring_touched < p->nworkers && !atomic_load(&p->stop))
            pthread_cond_wait(&p->cv_setup, &p->mu);
    pthread_mutex_unlock(&p->mu);
    if (!rc && w->idx == 0)
        verify_ring(p);
    uint64_t t2 = now_ns();
    if (!rc && w->idx == 0 && p->cuda)
        rc = setup_cuda(p);
    if (w->idx == 0) { /* read by create after every worker is ready */
        p->setup_ns[0] = t1 - t0;
        p->setup_ns[1] = t2 - t1;
        p->setup_ns[2] = now_ns() - t2;
    }
    if (!rc) {
        struct nf_reader_options ro;
        nf__reader_options_init(&ro);
        /* mapped: the reader is only the zstd context; pread costs nothing */
        ro.backend = L->mapped ? LOADER_IO_PREAD : L->cfg.io_backend;
        ro.queue_depth = L->cfg.io_depth;
        rc = nf__reader_create(L->ds, &ro, &w->reader);
    }
    pthread_mutex_lock(&p->mu);
    if (rc && !p->start_err) {
        p->start_err = rc;
        snprintf(p->start_msg, sizeof(p->start_msg), "pool for GPU %d, worker %u: %s",
                 p->ordinal, w->idx, numafeed_last_error());
    }
    if (!rc) {
        if (w->idx == 0)
            snprintf(p->io_backend, sizeof(p->io_backend), "%s",
                     L->mapped ? "mmap" : nf__reader_backend(w->reader));
        if (w->bind.note[0])
            nf__note(p->notes, sizeof(p->notes), "worker %u: %s", w->idx, w->bind.note);
        if (w->idx == 0 && !L->mapped &&
            strcmp(nf__reader_backend_reason(w->reader), "default") != 0)
            nf__note(p->notes, sizeof(p->notes), "io: %s (%s)", nf__reader_backend(w->reader),
                     nf__reader_backend_reason(w->reader));
    }
    p->ready_workers++;
    pthread_cond_broadcast(&p->cv_ready);
    /* Nobody starts work until every worker (and the ring) is ready. */
    while (!atomic_load(&p->stop) && (p->ready_workers < p->nworkers || p->start_err))
        pthread_cond_wait(&p->cv_work, &p->mu);
    pthread_mutex_unlock(&p->mu);
    if (rc || atomic_load(&p->stop))
        return NULL;

    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        uint64_t u = atomic_fetch_add_explicit(&p->next_unit, 1, memory_order_relaxed);
        if (run_unit(w, u))
            break; /* the error is recorded; this worker has nothing sound to add */
    }
    return NULL;
}

/* ---- the ring ----------------------------------------------------------- */

static int alloc_ring(struct pool *p)
{
    struct numafeed_loader *L = p->L;
    const struct nf_layout *lay = L->layout;
    uint64_t B = p->sampler.batch;
    size_t data, ids, per;
    if (nf__mul_size((size_t)lay->record_bytes, (size_t)B, &data) ||
        nf__mul_size((size_t)B, sizeof(uint64_t), &ids) ||
        nf__add_size((data + 4095) & ~(size_t)4095, (ids + 4095) & ~(size_t)4095, &per))
        return nf__error(NUMAFEED_ECONFIG, "batch of %llu records of %llu bytes is too large",
                          (unsigned long long)B, (unsigned long long)lay->record_bytes);
    size_t total;
    if (nf__mul_size(per, p->depth, &total))
        return nf__error(NUMAFEED_ECONFIG, "ring of %u slots of %zu bytes is too large",
                          p->depth, per);
    /* mapped and bound only: every worker then touches its share of it
     * (touch_ring), and worker 0 reads the placement back and moves any
     * strays (verify_ring) */
    int rc = nf__node_map(L->sysfs_root, p->node, total, &p->ring, &p->ring_mapped,
                           &p->placement);
    if (rc)
        return rc;
    p->slot_bytes = data;
    p->slot_stride = per;
    layout_slots(p, p->ring);
    return 0;
}

/* Worker i of n faults in its share of the ring, in 2 MiB steps (a huge
 * page is one fault): one thread zeroing 500 MiB of huge pages took 70 to
 * 140 ms of loader_create on the H200 machine, most of the time to the
 * first batch once a CUDA context exists. The pages land on the pool's node
 * either way: mbind's policy, or failing that the workers' own. */
static void touch_ring(struct pool *p, unsigned i, unsigned n)
{
    size_t steps = p->ring_mapped / NF_HUGE_2M;
    size_t lo = steps * i / n, hi = steps * (i + 1) / n;
    if (hi > lo)
        nf__node_touch((uint8_t *)p->ring + lo * NF_HUGE_2M, (hi - lo) * NF_HUGE_2M);
}

static void verify_ring(struct pool *p)
{
    nf__node_settle(p->ring, p->ring_mapped, p->node, &p->placement);
    if (p->placement.note[0])
        nf__note(p->notes, sizeof(p->notes), "ring: %s", p->placement.note);
}

/* Point every slot (memory, ids, field views) into a ring at base. */
static void layout_slots(struct pool *p, void *base)
{
    const struct nf_layout *lay = p->L->layout;
    uint64_t B = p->sampler.batch;
    size_t data = p->slot_bytes, per = p->slot_stride;
    for (unsigned i = 0; i < p->depth; i++) {
        struct slot *s = &p->slots[i];
        s->mem = (uint8_t *)base + (size_t)i * per;
        s->ids = (uint64_t *)(void *)(s->mem + ((data + 4095) & ~(size_t)4095));
        for (unsigned f = 0; f < lay->nfields; f++) {
            const struct nf_field *fd = &lay->fields[f];
            s->fields[f].name = fd->name;
            s->fields[f].dtype = nf__dtype_name(fd->dtype);
            s->fields[f].ndim = fd->ndim;
            s->fields[f].shape = fd->shape;
            s->fields[f].record_bytes = (size_t)fd->bytes;
            s->fields[f].host = s->mem + fd->offset * B;
            s->fields[f].device = s->dev ? (uint8_t *)s->dev + fd->offset * B : NULL;
        }
    }
}

/*
 * Worker 0, pinned, current device set, ring placed: page-lock the ring in
 * place, then the stream, the device buffers and the events. If the driver
 * refuses the registration (memlock limit, memory it cannot pin) we say so
 * and, unless strict, take a pinned allocation from cudaHostAlloc made by
 * this node-pinned thread under its node-preferring policy, and check where
 * its pages went.
 */
static int setup_cuda(struct pool *p)
{
    size_t total = p->slot_stride * p->depth;
    /* one registration per slot: a slot is one copy's source, and a copy
     * may not span two registrations */
    int rc = nf__cuda_host_register(p->ring, total, p->slot_stride);
    if (rc == 0) {
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

/* ---- create / destroy --------------------------------------------------- */

static void pool_stop(struct pool *p)
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
            p->workers[i].started = false; /* stop is called again by pool_free */
        }
}

static void pool_free(struct pool *p)
{
    pool_stop(p);
    for (unsigned i = 0; p->workers && i < p->nworkers; i++) {
        struct worker *w = &p->workers[i];
        nf__reader_destroy(w->reader);
        nf__plan_free(&w->plan);
        for (size_t k = 0; k < w->nstaging; k++) {
            free(w->staging[k]);
            free(w->readbuf[k]);
        }
        free(w->staging);
        free(w->readbuf);
        free(w->free_buf);
        free(w->block_data);
        free(w->sigma);
        free(w->span);
        free(w->pos_block);
        free(w->pos_in);
        free(w->pos_id);
        free(w->blocks);
        free(w->pos_order);
        free(w->blk_first);
        free(w->bcount);
        free(w->block_slot);
    }
    free(p->workers);
    if (p->cuda) {
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
        if (p->registered)
            nf__cuda_host_unregister(p->ring, p->slot_stride * p->depth,
                                      p->slot_stride); /* before munmap */
        nf__cuda_host_free(p->pinned);
    }
    nf__node_free(p->ring, p->ring_mapped);
    free(p->slots);
    nf__sampler_free(&p->sampler);
    nf__cpuset_free(&p->cpus);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->cmu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_ready);
    pthread_cond_destroy(&p->cv_setup);
}

void loader_destroy(loader_t *L)
{
    if (!L)
        return;
    for (int i = 0; i < L->npools; i++)
        pool_stop(&L->pools[i]); /* stop them all first: destroy stays prompt */
    for (int i = 0; i < L->npools; i++)
        pool_free(&L->pools[i]);
    free(L->pools);
    free(L->gblock_shard);
    free(L->gblock_block);
    nf__dataset_close(L->ds);
    free(L->path);
    free(L->sysfs_root);
    pthread_mutex_destroy(&L->errmu);
    free(L);
}

static int env_u32(const char *name, uint32_t *out, bool *set)
{
    const char *v = getenv(name);
    *set = false;
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (errno || *end || x > UINT32_MAX || v[0] == '-')
        return nf__error(NUMAFEED_ECONFIG, "environment %s=\"%s\" is not a count", name, v);
    *out = (uint32_t)x;
    *set = true;
    return 0;
}

static int pool_init(struct numafeed_loader *L, struct pool *p, int pos, int ordinal,
                     const numafeed_topo *topo, bool host, uint32_t rank, uint32_t world,
                     const uint32_t *block_records)
{
    const struct loader_config *c = &L->cfg;
    p->L = L;
    p->gpu_index = pos;
    p->ordinal = ordinal;
    p->cuda = !host;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->cmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv_work, &ca);
    pthread_cond_init(&p->cv_ready, &ca);
    pthread_cond_init(&p->cv_setup, &ca);
    pthread_condattr_destroy(&ca);

    /* node: override, else the GPU's, else (host pool without a GPU) the first */
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
        nf__note(p->notes, sizeof(p->notes), "host pool %d has no GPU: using node %d", ordinal,
                 p->node);
    } else {
        return nf__error(NUMAFEED_ECONFIG, "GPU %d is not visible (%d visible)", ordinal, ngpu);
    }

    /* CPUs: node & allowed, else allowed (never an empty mask) */
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

    uint64_t window = c->shuffle_window;
    if (!window) {
        uint64_t avg = nf__dataset_records(L->ds) / (L->nblocks ? L->nblocks : 1);
        window = 16 * (avg ? avg : 1);
    }
    if (window > (1u << 24))
        window = 1u << 24;
    uint64_t nparts = (uint64_t)world * (uint64_t)L->npools;
    rc = nf__sampler_init(&p->sampler, c->seed, c->shuffle != 0, c->drop_last != 0, window,
                           c->batch_size, (uint64_t)rank * (uint64_t)L->npools + (uint64_t)pos,
                           nparts, L->nblocks, block_records);
    if (rc)
        return rc == -EINVAL ? NUMAFEED_ECONFIG : rc;
    if (c->start_batch >= p->sampler.nbatches ||
        c->start_epoch > (UINT64_MAX >> 1) / p->sampler.nbatches)
        return nf__error(NUMAFEED_ECONFIG,
                          "start_batch %llu of epoch %llu is out of range (an epoch has %llu "
                          "batches)", (unsigned long long)c->start_batch,
                          (unsigned long long)c->start_epoch,
                          (unsigned long long)p->sampler.nbatches);

    size_t ncpus = nf__cpuset_count(&p->cpus);
    p->nworkers = c->threads ? c->threads : (unsigned)(ncpus < 4 ? ncpus : 4);
    p->depth = c->ring_depth;
    if (!p->depth) {
        /* A worker decodes a whole window, then waits for the slots of its
         * batches; while it waits it decodes nothing. So that every worker
         * can have its window in flight, the ring holds the batches of
         * (threads + 2) windows (measured on the H100 machine: 14 threads
         * decoding 8-batch windows into 4 slots reached 0.6x bare decode),
         * at least 4 slots, at most 512 MiB unless 4 slots need more. */
        uint64_t per_window = (window + c->batch_size - 1) / c->batch_size + 1;
        uint64_t d = (p->nworkers + 2) * per_window + 1;
        uint64_t bytes = (uint64_t)c->batch_size * L->layout->record_bytes;
        uint64_t cap = bytes ? (UINT64_C(512) << 20) / bytes : d;
        if (d > cap)
            d = cap;
        p->depth = d < 4 ? 4 : (unsigned)d;
    }
    p->slots = calloc(p->depth, sizeof(*p->slots));
    if (!p->slots)
        return nf__error(-ENOMEM, "out of memory");
    /* Start: batch base lives in slot base % depth like every other, so
     * slot i first holds the batch of [base, base + depth) congruent to i,
     * and the first unit is the one holding the start batch's first record. */
    const struct nf_sampler *sm = &p->sampler;
    p->base_seq = c->start_epoch * sm->nbatches + c->start_batch;
    p->next_seq = p->base_seq;
    for (unsigned i = 0; i < p->depth; i++) {
        uint64_t seq = p->base_seq + (i + p->depth - p->base_seq % p->depth) % p->depth;
        atomic_store(&p->slots[i].seq, seq);
        atomic_store(&p->slots[i].remaining, nf__batch_len(sm, seq % sm->nbatches));
    }
    uint64_t first_pos = sm->start + nf__batch_start(sm, c->start_batch);
    atomic_store(&p->next_unit,
                 c->start_epoch * sm->nwindows + first_pos / sm->window - sm->first_window);

    p->workers = calloc(p->nworkers, sizeof(*p->workers));
    if (!p->workers)
        return nf__error(-ENOMEM, "out of memory");
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->workers[i];
        w->pool = p;
        w->idx = i;
        int e = pthread_create(&w->thread, NULL, worker_main, w);
        if (e)
            return nf__error(-e, "pthread_create (pool for GPU %d): %s", ordinal, strerror(e));
        w->started = true;
    }
    return 0;
}

/* Wait for every worker of a started pool to bind and set up its reader,
 * and for its ring. loader_create starts every pool first, then waits:
 * the pools' rings are placed and page-locked at the same time (one after
 * another, four 13-slot image pools took 100-200 ms of create on the
 * 4 x H200 machine with the contexts already made). */
static int pool_wait_ready(struct pool *p)
{
    int rc;
    pthread_mutex_lock(&p->mu);
    while (p->ready_workers < p->nworkers)
        pthread_cond_wait(&p->cv_ready, &p->mu);
    rc = p->start_err;
    if (rc)
        nf__error(rc, "%s", p->start_msg);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    if (!rc && p->L->cfg.verbose) {
        char cpus[256];
        nf__cpuset_format(&p->cpus, cpus, sizeof(cpus));
        fprintf(stderr,
                "numafeed: pool GPU %d: node %d%s, CPUs %s, %u threads, ring %u x %zu bytes, "
                "pages %zu KiB%s%s, mbind %s, on node %zu/%zu%s, io %s; set up in: CUDA "
                "context %.1f ms, ring %.1f ms, page-lock and device ring %.1f ms%s%s\n",
                p->ordinal, p->node, p->node_known ? "" : " (unknown)", cpus, p->nworkers,
                p->depth,
                p->slot_bytes, p->placement.page_size >> 10,
                p->placement.hugetlb ? " hugetlb" : "", p->placement.thp ? " THP" : "",
                p->placement.bound ? "yes" : "no", p->placement.pages_on_node,
                p->placement.pages, p->placement.verified ? "" : " (not verified)",
                p->io_backend, (double)p->setup_ns[0] / 1e6, (double)p->setup_ns[1] / 1e6,
                (double)p->setup_ns[2] / 1e6, p->notes[0] ? "; " : "", p->notes);
    }
    return rc;
}

/* A data-path switch for comparisons: is the variable set to exactly val? */
static bool env_is(const char *name, const char *val)
{
    const char *v = getenv(name);
    return v && !strcmp(v, val);
}

int loader_create(const struct loader_config *cfg_in, loader_t **out)
{
    nf__error_clear();
    if (!cfg_in || !out)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: NULL argument");
    *out = NULL;
    struct loader_config cfg;
    loader_config_init(&cfg);
    if (cfg_in->size < offsetof(struct loader_config, batch_size) || cfg_in->size > sizeof(cfg))
        return nf__error(NUMAFEED_ECONFIG, "loader_create: config.size %zu is not one this "
                          "library knows; call loader_config_init", cfg_in->size);
    memcpy(&cfg, cfg_in, cfg_in->size);
    if (!cfg.path || !*cfg.path)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: config.path is not set");
    if (cfg.batch_size == 0)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: batch_size must be >= 1");
    if (cfg.ring_depth == 1)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: ring_depth must be >= 2 (or 0)");
    if (cfg.ngpus < 0 || cfg.ngpus > LOADER_MAX_GPUS || (cfg.ngpus && !cfg.gpus))
        return nf__error(NUMAFEED_ECONFIG, "loader_create: ngpus %d out of range", cfg.ngpus);
    if (cfg.threads > 256)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: threads %u > 256", cfg.threads);
    if (cfg.io_backend < LOADER_IO_AUTO || cfg.io_backend > LOADER_IO_MMAP)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: io_backend %d unknown",
                          cfg.io_backend);

    uint32_t rank = cfg.rank, world = cfg.world_size;
    if (world == 0) {
        bool rs, ws;
        int rc = env_u32("RANK", &rank, &rs);
        if (!rc)
            rc = env_u32("WORLD_SIZE", &world, &ws);
        if (rc)
            return rc;
        if (rs != ws)
            return nf__error(NUMAFEED_ECONFIG, "environment has %s but not %s",
                              rs ? "RANK" : "WORLD_SIZE", rs ? "WORLD_SIZE" : "RANK");
        if (!ws) {
            rank = 0;
            world = 1;
        }
    }
    if (world == 0 || rank >= world)
        return nf__error(NUMAFEED_ECONFIG, "rank %u is not below world size %u", rank, world);

    struct numafeed_loader *L = calloc(1, sizeof(*L));
    if (!L)
        return nf__error(-ENOMEM, "loader_create: out of memory");
    pthread_mutex_init(&L->errmu, NULL);
    L->cfg = cfg;
    L->path = strdup(cfg.path);
    L->sysfs_root = cfg.sysfs_root ? strdup(cfg.sysfs_root) : NULL;
    L->cfg.path = L->path;
    L->cfg.sysfs_root = L->sysfs_root;
    L->cfg.gpus = NULL;
    L->cfg.node_override = NULL;

    numafeed_topo *topo = NULL;
    uint32_t *block_records = NULL;
    int overrides[LOADER_MAX_GPUS];
    int ordinals[LOADER_MAX_GPUS];
    int rc = L->path ? 0 : nf__error(-ENOMEM, "out of memory");
    if (!rc)
        rc = nf__dataset_open(L->path, NULL, &L->ds);
    if (!rc && cfg.io_backend == LOADER_IO_AUTO) {
        const char *env = getenv("NUMAFEED_IO");
        if (env && !strcmp(env, "mmap"))
            L->cfg.io_backend = LOADER_IO_MMAP;
    }
    /* Streaming is the default; NUMAFEED_STREAM=0 builds whole windows
     * first (the earlier path, kept for comparison), NUMAFEED_STREAM_BYTES
     * sets the staging a streaming worker keeps in flight (default 1 MiB). */
    L->stream = !env_is("NUMAFEED_STREAM", "0");
    L->nt_copy = !env_is("NUMAFEED_NT", "0");
    L->in_place = env_is("NUMAFEED_IN_PLACE", "1"); /* opt-in: slower on the GPU hosts */
    L->raw_direct = env_is("NUMAFEED_RAW_DIRECT", "1");
    L->stream_bytes = (size_t)1 << 20;
    {
        const char *env = getenv("NUMAFEED_STREAM_BYTES");
        if (env && *env) {
            char *end;
            unsigned long long v = strtoull(env, &end, 10);
            if (*end || !v)
                rc = rc ? rc : nf__error(NUMAFEED_ECONFIG, "NUMAFEED_STREAM_BYTES='%s': expected "
                                          "a positive number of bytes", env);
            else
                L->stream_bytes = (size_t)v;
        }
    }
    if (!rc && L->cfg.io_backend == LOADER_IO_MMAP) {
        rc = nf__dataset_map(L->ds);
        L->mapped = rc == 0;
    }
    if (!rc) {
        struct numafeed_topo_options to;
        numafeed_topo_options_init(&to);
        to.sysfs_root = L->sysfs_root;
        rc = numafeed_topo_open(&to, &topo);
    }
    bool host = cfg.host_mode != 0;
    int ndev = 0;
    if (!rc && !host) {
        /* host mode by itself when there is no CUDA runtime, driver or GPU */
        ndev = nf__cuda_device_count();
        if (ndev <= 0) {
            host = true;
            snprintf(L->host_reason, sizeof(L->host_reason), "host mode: %s",
                     ndev == 0 ? "no CUDA device" : numafeed_last_error());
            nf__error_clear();
        }
    }
    L->cuda = !host;
    if (!rc) {
        L->layout = nf__dataset_layout(L->ds);
        int nvis = numafeed_topo_gpu_count(topo);
        L->npools = cfg.ngpus ? cfg.ngpus : (nvis ? nvis : 1);
        for (int i = 0; i < L->npools; i++) {
            ordinals[i] = cfg.ngpus ? cfg.gpus[i] : i;
            overrides[i] = cfg.node_override ? cfg.node_override[i] : -1;
            if (ordinals[i] < 0)
                rc = nf__error(NUMAFEED_ECONFIG, "gpus[%d] = %d is negative", i, ordinals[i]);
            else if (!host && ordinals[i] >= ndev)
                rc = nf__error(NUMAFEED_ECONFIG, "gpus[%d] = %d: the CUDA runtime sees %d "
                                "device(s)", i, ordinals[i], ndev);
            for (int j = 0; j < i && !rc; j++)
                if (ordinals[j] == ordinals[i])
                    rc = nf__error(NUMAFEED_ECONFIG, "GPU %d listed twice", ordinals[i]);
        }
        L->cfg.node_override = overrides;
        if (!rc && nf__dataset_layout(L->ds)->nfields > LOADER_MAX_FIELDS)
            rc = nf__error(NUMAFEED_ECONFIG, "dataset has more than %d fields",
                            LOADER_MAX_FIELDS);
    }
    if (!rc) {
        /* the global block list: shard by shard */
        uint32_t nshards = nf__dataset_shard_count(L->ds);
        uint64_t nb = 0;
        for (uint32_t s = 0; s < nshards; s++)
            nb += nf__dataset_shard_index(L->ds, s)->nblocks;
        if (nb > UINT32_MAX)
            rc = nf__error(NUMAFEED_ECONFIG, "dataset has %llu blocks, more than 2^32-1",
                            (unsigned long long)nb);
        L->nblocks = (uint32_t)nb;
        L->gblock_shard = malloc((nb ? nb : 1) * sizeof(uint32_t));
        L->gblock_block = malloc((nb ? nb : 1) * sizeof(uint32_t));
        block_records = malloc((nb ? nb : 1) * sizeof(uint32_t));
        if (!rc && (!L->gblock_shard || !L->gblock_block || !block_records))
            rc = nf__error(-ENOMEM, "out of memory");
        for (uint32_t s = 0, g = 0; !rc && s < nshards; s++) {
            const struct nf_shard_index *ix = nf__dataset_shard_index(L->ds, s);
            for (uint32_t b = 0; b < ix->nblocks; b++, g++) {
                L->gblock_shard[g] = s;
                L->gblock_block[g] = b;
                block_records[g] = ix->blocks[b].records;
            }
        }
    }
    if (!rc) {
        L->pools = calloc((size_t)L->npools, sizeof(*L->pools));
        if (!L->pools)
            rc = nf__error(-ENOMEM, "out of memory");
    }
    for (int i = 0; !rc && i < L->npools; i++) {
        if (L->host_reason[0])
            nf__note(L->pools[i].notes, sizeof(L->pools[i].notes), "%s", L->host_reason);
        rc = pool_init(L, &L->pools[i], i, ordinals[i], topo, host, rank, world, block_records);
    }
    for (int i = 0; !rc && i < L->npools; i++)
        rc = pool_wait_ready(&L->pools[i]);
    L->cfg.node_override = NULL;
    free(block_records);
    numafeed_topo_close(topo);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s", numafeed_last_error());
        loader_destroy(L);
        nf__error(rc, "%s", msg);
        return rc;
    }
    *out = L;
    return 0;
}

/* ---- the consumer ------------------------------------------------------- */

static struct pool *get_pool(struct numafeed_loader *L, int gpu)
{
    if (!L || gpu < 0 || gpu >= L->npools) {
        nf__error(-EINVAL, "GPU index %d out of range (%d served)", gpu, L ? L->npools : 0);
        return NULL;
    }
    return &L->pools[gpu];
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

static int next_batch(loader_t *L, struct pool *p, int gpu, struct loader_batch *batch,
                      int timeout_ms)
{
    uint64_t t0 = now_ns();
    pthread_mutex_lock(&p->cmu);
    if (p->epoch_end_pending) {
        p->epoch_end_pending = false;
        pthread_mutex_unlock(&p->cmu);
        return NUMAFEED_EEPOCH_END;
    }
    uint64_t seq = p->next_seq;
    struct slot *s = &p->slots[seq % p->depth];
    struct timespec deadline;
    if (timeout_ms > 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    if (p->outstanding >= p->depth) {
        pthread_mutex_unlock(&p->mu);
        pthread_mutex_unlock(&p->cmu);
        return nf__error(-EDEADLK, "loader_next(GPU %d): all %u slots are held by batches not "
                          "yet released; release one first", gpu, p->depth);
    }
    for (;;) {
        if (p->err && p->err_seq <= seq) {
            rc = p->err;
            nf__error(rc, "%s", p->errmsg);
            break;
        }
        if (atomic_load(&s->seq) == seq && s->ready)
            break;
        if (atomic_load(&p->stop)) {
            rc = nf__error(-ECANCELED, "loader is being destroyed");
            break;
        }
        if (timeout_ms == 0) {
            rc = -ETIMEDOUT;
        } else if (timeout_ms < 0) {
            pthread_cond_wait(&p->cv_ready, &p->mu);
            continue;
        } else {
            int e = pthread_cond_timedwait(&p->cv_ready, &p->mu, &deadline);
            if (e != ETIMEDOUT)
                continue;
            rc = -ETIMEDOUT;
        }
        if (atomic_load(&s->seq) == seq && s->ready)
            rc = 0;
        else
            nf__error(rc, "loader_next(GPU %d): batch %llu not ready within %d ms", gpu,
                       (unsigned long long)seq, timeout_ms);
        break;
    }
    if (!rc) {
        s->out = true;
        p->outstanding++;
    }
    pthread_mutex_unlock(&p->mu);
    if (rc) {
        if (rc != -ETIMEDOUT)
            loader_set_error(L, numafeed_last_error());
        pthread_mutex_unlock(&p->cmu);
        return rc;
    }
    const struct nf_sampler *sm = &p->sampler;
    memset(batch, 0, sizeof(*batch));
    batch->gpu = gpu;
    batch->epoch = seq / sm->nbatches;
    batch->index = seq % sm->nbatches;
    batch->records = (uint32_t)nf__batch_len(sm, batch->index);
    batch->last_in_epoch = batch->index + 1 == sm->nbatches;
    batch->record_ids = s->ids;
    batch->nfields = L->layout->nfields;
    batch->fields = s->fields;
    batch->ready_event = p->cuda ? s->ready_ev : NULL;
    batch->seq_ = seq;
    p->next_seq = seq + 1;
    p->epoch_end_pending = batch->last_in_epoch;
    pthread_mutex_unlock(&p->cmu);

    uint64_t waited = now_ns() - t0;
    atomic_fetch_add_explicit(&p->st_batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->st_records, batch->records, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->st_bytes, (uint64_t)batch->records * L->layout->record_bytes,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&p->st_wait_ns, waited, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->wait_hist[wait_bucket(waited)], 1, memory_order_relaxed);
    uint64_t mx = atomic_load_explicit(&p->st_wait_max, memory_order_relaxed);
    while (waited > mx &&
           !atomic_compare_exchange_weak_explicit(&p->st_wait_max, &mx, waited,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
    return 0;
}

int loader_next(loader_t *L, int gpu, struct loader_batch *batch, int timeout_ms)
{
    struct pool *p = get_pool(L, gpu);
    if (!p || !batch)
        return p ? nf__error(-EINVAL, "loader_next: batch is NULL") : -EINVAL;
    atomic_fetch_add_explicit(&p->inside, 1, memory_order_relaxed);
    int rc = next_batch(L, p, gpu, batch, timeout_ms);
    atomic_fetch_sub_explicit(&p->inside, 1, memory_order_release); /* last touch */
    return rc;
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
        return nf__error(-EINVAL, "loader_release: batch %llu of GPU %d is not outstanding",
                          (unsigned long long)seq, batch->gpu);
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
        loader_set_error(L, numafeed_last_error());
    return rc;
}

int loader_gpu_count(const loader_t *L)
{
    return L ? L->npools : 0;
}

uint64_t loader_epoch_batches(const loader_t *L)
{
    return L && L->npools ? L->pools[0].sampler.nbatches : 0;
}

int loader_stats(loader_t *L, int gpu, struct loader_stats *st)
{
    struct pool *p = get_pool(L, gpu);
    if (!p || !st)
        return -EINVAL;
    if (st->size < sizeof(size_t) || st->size > sizeof(*st))
        return nf__error(-EINVAL, "loader_stats: size %zu unknown", st->size);
    struct loader_stats v = {.size = st->size};
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
    memcpy(st, &v, st->size);
    return 0;
}

int loader_pool_info(loader_t *L, int gpu, struct loader_pool_info *info)
{
    struct pool *p = get_pool(L, gpu);
    if (!p || !info)
        return -EINVAL;
    if (info->size < sizeof(size_t) || info->size > sizeof(*info))
        return nf__error(-EINVAL, "loader_pool_info: size %zu unknown", info->size);
    struct loader_pool_info v;
    memset(&v, 0, sizeof(v));
    v.size = info->size;
    v.cuda_ordinal = p->ordinal;
    v.node = p->node;
    v.node_known = p->node_known;
    nf__cpuset_format(&p->cpus, v.cpus, sizeof(v.cpus));
    v.cpus_fallback = p->cpus_fallback;
    v.threads = p->nworkers;
    for (unsigned i = 0; i < p->nworkers && i < NF_ARRAY_SIZE(v.tids); i++)
        v.tids[i] = atomic_load(&p->workers[i].tid);
    v.slot_bytes = p->slot_bytes;
    v.ring_depth = p->depth;
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
    memcpy(info, &v, info->size);
    return 0;
}

const char *loader_last_error(const loader_t *L)
{
    return L ? L->errmsg : "";
}
