/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared between the files of src/loader only; the rest of numafeed sees
 * the loader through include/numafeed.h (loader_*). The files:
 *
 *   worker.c    the data path, top to bottom, and its design essay:
 *               workers, units, streaming and whole-window building,
 *               publishing a batch (the GPU copy)
 *   pool.c      one pool: its node and CPUs, its ring of slots (placed on
 *               the node, page-locked, the device ring), start and stop
 *   loader.c    loader_create / loader_destroy: the configuration, the
 *               dataset, the topology, the pools
 *   consumer.c  loader_next, release, the stats and the pool report
 *   sampler.c   which record goes where (sampler.h)
 *   gpu_unit.c  GPU decode of a unit: its worker's stream, staging and
 *               device memory, reading, nvCOMP, verify, gather
 *   gpu_plan.c  GPU decode's arithmetic: bounds, placement, gather lists
 *               (gpu_plan.h)
 */
#ifndef NUMAFEED_LOADER_PRIVATE_H
#define NUMAFEED_LOADER_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"
#include "io/io.h"
#include "loader/gpu_plan.h"
#include "loader/sampler.h"
#include "pin/pin.h"

#define WAIT_BUCKETS 256 /* quarter-octave histogram of consumer waits, in ns */
/* loader_config.max_gpu_decode_bytes's default, per pool */
#define NF_GPU_DECODE_DEFAULT_BYTES (UINT64_C(2) << 30)

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
    struct loader_field *fields; /* the layout's nfields views into mem and dev */
};

struct pool;

/* GPU decode: what one worker owns (gpu_unit.c), made once at start-up on
 * its node and device, sized by the loader's bounds (gpu_plan.h). */
struct gpu_worker {
    void *stream;             /* the worker's own: units of several workers overlap */
    void *ev_start, *ev_end;  /* around the GPU work of a unit (timed) */
    void *ev_done;            /* after its verdicts came back */
    uint8_t *host;            /* staging, page-locked, node-local (or pinned alloc) */
    size_t host_mapped;       /* nf__node_alloc's mapping (0: cudaHostAlloc) */
    bool host_registered;
    uint8_t *dev;             /* header, stored, arena, verdicts, nvCOMP scratch */
    struct nf_gplan_sizes sz;
    struct nf_gblk *blk;      /* per block of a unit */
    const struct nf_block_info **bi;
    /* copy direct: each block's stored bytes in the page-locked mapping
     * (their copies to the device are listed in the worker's dma_*) */
    const uint8_t **mapped;
};

struct worker {
    struct pool *pool;
    unsigned idx;
    pthread_t thread;
    bool started;
    _Atomic int tid;
    struct nf_pipe *pipe;
    struct nf_pipe_stats seen; /* the pipe's counters already added to the pool's */
    struct nf_epoch_plan plan;
    uint32_t *sigma;
    uint32_t *span;      /* plan index of each block-order position of the window */
    /* per unit: the records needed, and the decoded blocks they come from */
    uint32_t *pos_block; /* global block of each position */
    uint32_t *pos_in;    /* record index inside that block */
    uint64_t *pos_id;    /* global record id */
    uint32_t *blocks;    /* distinct blocks of the unit */
    uint32_t *pos_order; /* streaming: the unit's positions grouped by block */
    uint32_t *blk_first; /* streaming: where block k's positions start in pos_order */
    uint32_t *bcount;    /* streaming: records written into each batch of the unit */
    uint32_t *block_slot;/* index in blocks[] of each global block, or UINT32_MAX */
    struct nf_block_done *held; /* window path: the unit's decoded blocks */
    /* variable fields: the element offsets of every batch the unit
     * touches, (b - b_lo) x nvar x (batch + 1); and the permutation of a
     * neighbouring window, for a batch's records outside the unit */
    int64_t *boffs;
    size_t boffs_cap;
    uint32_t *sigma2, *span2;
    uint64_t win2_w0, win2_len, win2_epoch; /* that window's range */
    bool win2_ok;
    struct nf_bind_result bind;
    /* direct copy: the unit's (or batch's) record copies, or under decode
     * gpu its blocks' copies, issued together */
    void **dma_dst;
    const void **dma_src;
    size_t *dma_len;
    size_t ndma;
    struct gpu_worker *gpu;   /* GPU decode; NULL otherwise */
};

struct pool {
    struct numafeed_loader *L;
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
    struct loader_field *field_views; /* depth x nfields, slots point in here */
    void *ring;
    /* a slot's data as the loader lays it out (numafeed_loader's
     * slot_end: slot_bytes), then the record ids, page aligned; slot_stride
     * apart in the ring */
    size_t ring_mapped, slot_bytes, slot_stride;
    struct nf_placement placement;
    _Atomic uint64_t next_unit;
    uint64_t base_seq;          /* the first batch delivered (config start) */
    uint64_t end_unit, end_seq; /* config epochs: the first unit and batch not
                                 * delivered; UINT64_MAX without an end */
    atomic_bool stop;

    pthread_mutex_t mu;
    pthread_cond_t cv_work;     /* a slot was released, or stop */
    pthread_cond_t cv_ready;    /* a batch was published, an error, or stop */
    int err;                    /* under mu: first worker error */
    uint64_t err_seq;           /* under mu: the batch it affects */
    char errmsg[1024];          /* under mu */
    unsigned ready_workers;     /* under mu: start-up handshake */
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
        st_windowed,            /* units built by the window path */
        st_gpu_ns;              /* GPU decode: GPU time of decode, verify, gather */
    _Atomic uint64_t wait_hist[WAIT_BUCKETS];

    unsigned nworkers;
    struct worker *workers;
    char io_backend[16];
    char notes[512];            /* under mu */
    /* CUDA path (cuda == false: host mode) */
    bool cuda;
    bool direct;                /* records are copied to the GPU from the page cache */
    bool gpu;                   /* blocks are decoded and gathered on the GPU */
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
    const uint32_t *rec_off;    /* nf__dataset_rec_off: NULL without variable fields */
    int npools;                 /* pools allocated (and initialised, in part or whole) */
    struct pool *pools;
    char errmsg[1024];          /* under errmu */
    pthread_mutex_t errmu;
    bool cuda;                  /* batches go to the GPU */
    /* variable fields: bytes any batch of batch_size records can take of
     * each (an upper bound of its batch_size largest values), and where
     * each one's offsets and values sit in a slot (same for every pool) */
    uint64_t *var_cap;
    size_t *var_offs, *var_vals;
    uint64_t *var_hist;         /* each one's record lengths, counted by
                                 * quarter-octave bucket (loader.c's var_bound) */
    int io;                     /* enum loader_io after auto: never AUTO */
    bool direct;                /* LOADER_COPY_DIRECT in effect: shards page-locked */
    bool gpu_decode;            /* LOADER_DECODE_GPU in effect */
    char decode_why[256];       /* what decodes and why */
    bool decode_note;           /* the pool's notes say decode_why too */
    struct nf_gplan_sizes gsz;  /* GPU decode: a worker's regions, nvCOMP's scratch
                                 * as estimated at create (each worker asks again) */
    /* a slot's data, laid out once at create (loader.c's slot_layout) for
     * every pool: each variable field's offsets (var_offs), the fixed
     * fields from fixed_base (0 without variable fields), the values
     * from slot_head (var_vals), the end at slot_end; slot_ok 0 when that
     * does not fit a size_t (the ring's size check names the numbers) */
    size_t fixed_base, slot_head, slot_end;
    bool slot_ok;
    char copy_why[200];         /* why auto copies staged */
    const uint8_t **pinned_maps;/* the shard mappings page-locked for it */
    uint32_t npinned;
    char io_why[160];           /* how auto chose it */
    char host_reason[256];      /* why host mode, when it is automatic */
};

static inline uint64_t nf__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* worker.c */
void *nf__worker_main(void *arg);
/* Record a worker's failure against batch seq; the consumer reports it. */
void nf__pool_fail(struct pool *p, int err, uint64_t seq);

/* A unit: records [a, e) of the part's slice in epoch `epoch`, feeding
 * batches b_lo..b_hi; nb distinct blocks (the worker's blocks[]). */
struct unit {
    uint64_t epoch, a, e, b_lo, b_hi, first_seq;
    uint32_t nb;
};
/* What worker.c's two paths share with the GPU's (gpu_unit.c): wait until
 * batch b of epoch may be written into its slot (false: stopping); n more
 * records of s are written (the last writer publishes it); a unit has all
 * its blocks. */
bool nf__wait_slot(struct pool *p, uint64_t epoch, uint64_t b);
void nf__count_written(struct pool *p, struct slot *s, uint64_t n);
void nf__unit_done(struct worker *w, bool windowed);
/* Submit every block of the unit to the worker's pipeline, keeping as
 * many in flight as it has room for, and take each back as it is ready:
 * streaming scatters it into its batches and lets its buffer go at once;
 * the window path (hold) keeps it until the whole window is copied; GPU
 * decode (stored: its staging for the unit) has it read as stored into
 * its place there. A failure drains the pipeline before it returns. */
int nf__pump_blocks(struct worker *w, const struct unit *un, bool hold, uint8_t *stored);
/* Copies into slots of this many bytes and more use non-temporal stores
 * (worker.c says where the default comes from); tests lower it to run
 * that copy over small records. Set before loader_create. */
extern size_t nf__nt_min_bytes;
/* A staged slot's parts closer than this go to the GPU in one copy
 * (worker.c); tests set 0 and SIZE_MAX. Set before loader_create. */
extern size_t nf__h2d_merge_gap;

static inline struct slot *nf__slot_of(struct pool *p, uint64_t epoch, uint64_t b)
{
    return &p->slots[(epoch * p->sampler.nbatches + b) % p->depth];
}

/* Where record id sits in its decoded block: its offset there. */
static inline size_t nf__rec_offset(const struct numafeed_loader *L, uint64_t id,
                                    uint32_t in_block)
{
    return L->rec_off ? L->rec_off[id] : (size_t)in_block * L->layout->record_bytes;
}

/* The element offsets of batch b of the unit (variable fields: nvar x
 * (batch + 1), made by the unit's plan); NULL without variable fields. */
static inline const int64_t *nf__batch_offsets(const struct worker *w, const struct unit *un,
                                               uint64_t b)
{
    const struct nf_sampler *s = &w->pool->sampler;
    unsigned nv = w->pool->L->layout->nvar;
    return nv ? w->boffs + (size_t)(b - un->b_lo) * (size_t)(s->batch + 1) * nv : NULL;
}

/* gpu_unit.c: a worker's GPU decode resources (made by the pinned worker,
 * its device current), their release, and one unit with records of the
 * part through the GPU (run_unit counts the others): streaming (every slot
 * of the unit free) or batch by batch. */
int nf__gpu_worker_init(struct worker *w);
void nf__gpu_worker_free(struct worker *w);
int nf__gpu_unit(struct worker *w, const struct unit *un, bool stream);

/* pool.c */
int nf__pool_init(struct numafeed_loader *L, struct pool *p, int pos, int ordinal,
                  const numafeed_topo *topo, bool host, uint32_t rank, uint32_t world);
int nf__pool_wait_ready(struct pool *p);
void nf__pool_stop(struct pool *p);
void nf__pool_free(struct pool *p);
/* Worker 0's part of start-up, in order: map and bind the ring; after
 * every worker has touched its share (nf__ring_touch), verify it; then the
 * CUDA side (page-lock, device ring, stream, events). */
int nf__ring_alloc(struct pool *p);
void nf__ring_touch(struct pool *p, unsigned i, unsigned n);
void nf__ring_verify(struct pool *p);
int nf__ring_setup_cuda(struct pool *p);
int nf__ring_pin_host(struct pool *p);

/* loader.c */
void nf__loader_set_error(struct numafeed_loader *L, const char *msg);
/* The shuffle window every pool's sampler uses, in records. */
uint64_t nf__loader_window(const struct numafeed_loader *L);
/* Variable field v's element offsets in slot s: batch + 1 entries. */
static inline int64_t *nf__slot_offsets(const struct numafeed_loader *L, const struct slot *s,
                                        unsigned v)
{
    return (int64_t *)(void *)(s->mem + L->var_offs[v]);
}

/* The host's part of record id at place i of slot s, whoever copies its
 * bytes: its id and, with the batch's first record, the batch's element
 * offsets (bo, as nf__batch_offsets gives them; B: the batch size). */
static inline void nf__slot_put_id(const struct numafeed_loader *L, struct slot *s, uint64_t B,
                                   uint64_t i, uint64_t id, const int64_t *bo)
{
    s->ids[i] = id;
    if (i == 0)
        for (unsigned v = 0; v < L->layout->nvar; v++)
            memcpy(nf__slot_offsets(L, s, v), bo + v * (B + 1), (B + 1) * sizeof(*bo));
}

#endif
