// SPDX-License-Identifier: Apache-2.0
/*
 * loader_create and loader_destroy: check the configuration, open the
 * dataset, read the topology, decide the device and how shards are read,
 * then start every pool (pool.c) and wait for all of them. The data path
 * itself is in worker.c, the consumer's calls in consumer.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader/private.h"

_Static_assert((int)LOADER_FIELD_FIXED == (int)NF_KIND_FIXED &&
                   (int)LOADER_FIELD_BYTES == (int)NF_KIND_BYTES &&
                   (int)LOADER_FIELD_STR == (int)NF_KIND_STR &&
                   (int)LOADER_FIELD_ARRAY == (int)NF_KIND_ARRAY,
               "field kinds");

void nf__loader_set_error(struct numafeed_loader *L, const char *msg)
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

/* The caller's config, copied honouring its size, and every field checked
 * that can be checked without the dataset; a default that is the same for
 * every pool (max_gpu_decode_bytes) set in place of 0. */
static int copy_config(const struct loader_config *in, struct loader_config *cfg)
{
    if (!in)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: config is NULL");
    loader_config_init(cfg);
    if (in->size < offsetof(struct loader_config, batch_size) || in->size > sizeof(*cfg))
        return nf__error(NUMAFEED_ECONFIG, "loader_create: config.size %zu is not one this "
                         "library knows; call loader_config_init", in->size);
    memcpy(cfg, in, in->size);
    if (!cfg->path || !*cfg->path)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: config.path is not set");
    if (cfg->batch_size == 0)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: batch_size must be >= 1");
    if (cfg->prefetch == 1)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: prefetch must be >= 2 (or 0)");
    if (cfg->ngpus < 0 || cfg->ngpus > LOADER_MAX_GPUS || (cfg->ngpus && !cfg->gpus))
        return nf__error(NUMAFEED_ECONFIG, "loader_create: ngpus %d out of range (0 to %d, "
                         "with gpus set)", cfg->ngpus, LOADER_MAX_GPUS);
    if (cfg->threads > 256)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: threads %u > 256", cfg->threads);
    if (cfg->io < LOADER_IO_AUTO || cfg->io > LOADER_IO_MMAP)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: io %d unknown", cfg->io);
    if (cfg->pin_memory < 0 || cfg->pin_memory > 1)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: pin_memory %d is not 0 or 1",
                         cfg->pin_memory);
    if (cfg->io_depth > NF_IO_MAX_DEPTH)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: io_depth %u > %u", cfg->io_depth,
                         NF_IO_MAX_DEPTH);
    if (cfg->epochs > (UINT64_MAX >> 2) - cfg->start_epoch)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: epochs %llu from epoch %llu: too "
                         "many", (unsigned long long)cfg->epochs,
                         (unsigned long long)cfg->start_epoch);
    if (cfg->shuffle_window > LOADER_MAX_SHUFFLE_WINDOW)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: shuffle_window %llu > %u records",
                         (unsigned long long)cfg->shuffle_window, LOADER_MAX_SHUFFLE_WINDOW);
    if (cfg->copy < LOADER_COPY_AUTO || cfg->copy > LOADER_COPY_DIRECT)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: copy %d unknown", cfg->copy);
    if (cfg->device < LOADER_DEVICE_AUTO || cfg->device > LOADER_DEVICE_CUDA)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: device %d unknown", cfg->device);
    if (cfg->decode < LOADER_DECODE_AUTO || cfg->decode > LOADER_DECODE_GPU)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: decode %d unknown", cfg->decode);
    if (!cfg->max_gpu_decode_bytes)
        cfg->max_gpu_decode_bytes = NF_GPU_DECODE_DEFAULT_BYTES;
    return 0;
}

/* This process's part: the config's, else the launcher's, else 0 of 1. */
static int resolve_ranks(const struct loader_config *cfg, uint32_t *rank, uint32_t *world)
{
    *rank = cfg->rank;
    *world = cfg->world_size;
    if (*world == 0) {
        struct numafeed_launch l;
        numafeed_launch_init(&l);
        int rc = numafeed_launch_env(&l);
        if (rc)
            return rc;
        *rank = l.world_size ? (uint32_t)l.rank : 0;
        *world = l.world_size ? (uint32_t)l.world_size : 1;
    }
    if (*world == 0 || *rank >= *world)
        return nf__error(NUMAFEED_ECONFIG, "rank %u is not below world size %u", *rank, *world);
    return 0;
}

static int var_layout(struct numafeed_loader *L);
static int slot_layout(struct numafeed_loader *L, size_t *head, size_t *end);

/* The dataset, and how to read it (io auto decides per dataset). */
static int open_dataset(struct numafeed_loader *L)
{
    struct nf_dataset_options o;
    nf__dataset_options_init(&o);
    o.follow_symlinks = L->cfg.follow_symlinks != 0;
    int rc = nf__dataset_open(L->path, &o, &L->ds);
    if (rc)
        return rc;
    L->layout = nf__dataset_layout(L->ds);
    L->rec_off = nf__dataset_rec_off(L->ds); /* read for every record */
    if (L->layout->nfields > LOADER_MAX_FIELDS)
        return nf__error(NUMAFEED_ECONFIG, "dataset has more than %d fields", LOADER_MAX_FIELDS);
    L->io = L->cfg.io;
    if (L->io == LOADER_IO_AUTO && nf__dataset_pick_io(L->ds, L->io_why, sizeof(L->io_why)) ==
                                       NF_IO_MMAP)
        L->io = LOADER_IO_MMAP;
    if (L->io == LOADER_IO_MMAP && (rc = nf__dataset_map(L->ds)))
        return rc;
    if ((rc = var_layout(L)))
        return rc;
    L->slot_ok = slot_layout(L, &L->slot_head, &L->slot_end) == 0;
    return 0;
}

/* Quarter octaves of a length: an upper edge within 19% of any length in
 * the bucket. */
#define LEN_BUCKETS 136
static unsigned len_bucket(uint32_t n)
{
    if (n < 4)
        return n;
    unsigned lg = 31u - (unsigned)__builtin_clz(n);
    return 4 * lg + ((n >> (lg - 2)) & 3);
}

static uint64_t len_upper(unsigned b)
{
    if (b < 8) /* 4 to 7 hold no length: len_bucket gives 4 to 7 buckets 8 to 11 */
        return b < 4 ? b : 4;
    unsigned lg = b / 4;
    return (UINT64_C(1) << lg) + ((uint64_t)(b % 4 + 1) << (lg - 2));
}

/* An upper bound of the bytes variable field v takes in any `count`
 * records: the count largest lengths, each rounded up to its
 * quarter-octave bucket's edge (from the field's histogram, var_hist;
 * within 19% of the exact bound), and never more than count x the
 * largest. Saturates: a bound past what any ring may hold fails in the
 * ring's size check with the numbers named. */
static uint64_t var_bound(const struct numafeed_loader *L, unsigned v, uint64_t count)
{
    const uint64_t *hist = L->var_hist + (size_t)v * LEN_BUCKETS;
    uint64_t left = count, cap = 0, t, exact;
    for (unsigned b = LEN_BUCKETS; b-- > 0 && left;) {
        if (!hist[b])
            continue;
        uint64_t take = hist[b] < left ? hist[b] : left;
        if (__builtin_mul_overflow(take, len_upper(b), &t) ||
            __builtin_add_overflow(cap, t, &cap))
            cap = UINT64_MAX;
        left -= take;
    }
    if (__builtin_mul_overflow((uint64_t)nf__dataset_var_max(L->ds, v), count, &exact))
        exact = UINT64_MAX;
    return cap < exact ? cap : exact;
}

/* For each variable field, the histogram of its lengths (one pass over
 * the length table, which var_bound reads for any count), an upper bound
 * of the bytes batch_size records can take, and room for where each one's
 * offsets and values sit in a slot. No batch can need more, whatever the
 * order. */
static int var_layout(struct numafeed_loader *L)
{
    unsigned nv = L->layout->nvar;
    if (!nv)
        return 0;
    L->var_cap = calloc(nv, sizeof(*L->var_cap));
    L->var_offs = calloc(nv, sizeof(*L->var_offs));
    L->var_vals = calloc(nv, sizeof(*L->var_vals));
    L->var_hist = calloc((size_t)nv * LEN_BUCKETS, sizeof(*L->var_hist));
    if (!L->var_cap || !L->var_offs || !L->var_vals || !L->var_hist)
        return nf__error(-ENOMEM, "out of memory");
    uint64_t R = nf__dataset_records(L->ds);
    const uint32_t *len = nf__dataset_var_len(L->ds);
    for (uint64_t r = 0; r < R; r++)
        for (unsigned v = 0; v < nv; v++)
            L->var_hist[(size_t)v * LEN_BUCKETS + len_bucket(len[r * nv + v])]++;
    for (unsigned v = 0; v < nv; v++)
        L->var_cap[v] = var_bound(L, v, L->cfg.batch_size);
    return 0;
}

/* Where each variable field's offsets and values sit in a slot: the
 * offsets first (so that a slot whose data stays on the device, GPU
 * decode's, keeps them at its start on the host), then the fixed fields,
 * then the values, each 64-byte aligned (a values array of any dtype
 * starts aligned); *end is where the slot's data ends. -EOVERFLOW if it
 * cannot be addressed at all (the ring's size check names the numbers). */
static int slot_layout(struct numafeed_loader *L, size_t *head, size_t *end)
{
    const struct nf_layout *lay = L->layout;
    size_t B = L->cfg.batch_size, at = 0, n;
    for (unsigned v = 0; v < lay->nvar; v++) {
        L->var_offs[v] = at;
        if (nf__mul_size(B + 1, 8, &n) || nf__add_size(at, n, &at) || at > SIZE_MAX - 64)
            return -EOVERFLOW;
        at = (at + 63) & ~(size_t)63;
    }
    L->fixed_base = at;
    if (nf__mul_size((size_t)lay->record_bytes, B, &n) || nf__add_size(at, n, &at) ||
        at > SIZE_MAX - 64)
        return -EOVERFLOW;
    *head = (at + 63) & ~(size_t)63;
    for (unsigned v = 0; v < lay->nvar; v++) {
        L->var_vals[v] = at = (at + 63) & ~(size_t)63;
        if (L->var_cap[v] > SIZE_MAX || nf__add_size(at, (size_t)L->var_cap[v], &at) ||
            at > SIZE_MAX - 64)
            return -EOVERFLOW;
    }
    *end = at;
    return 0;
}

/* The default window is 16 blocks' worth of records, at most this many:
 * each worker keeps about 40 bytes of tables per record of its window. */
#define DEFAULT_WINDOW_MAX 65536u
/* Blocks per nvCOMP call below which decode gpu ran slower than the host's
 * 14 threads on an H200 (docs/loader.md has the figures). */
#define NF_GPU_GOOD_CALL_BLOCKS 128u

uint64_t nf__loader_window(const struct numafeed_loader *L)
{
    if (L->cfg.shuffle_window)
        return L->cfg.shuffle_window;
    uint32_t nblocks = nf__dataset_blocks(L->ds);
    uint64_t avg = nf__dataset_records(L->ds) / (nblocks ? nblocks : 1);
    uint64_t window = 16 * (avg ? avg : 1);
    return window > DEFAULT_WINDOW_MAX ? DEFAULT_WINDOW_MAX : window;
}

/* The most records one unit can hold: its window's bound (sampler.h). */
static uint64_t unit_records(const struct numafeed_loader *L)
{
    const uint32_t *br = nf__dataset_block_records(L->ds);
    uint64_t max = 0;
    for (uint32_t g = 0; g < nf__dataset_blocks(L->ds); g++)
        max = br[g] > max ? br[g] : max;
    return nf__window_bound(nf__loader_window(L), max, nf__dataset_records(L->ds));
}

/* Host or CUDA: what the config asks for, and what the machine has. */
static int pick_device(struct numafeed_loader *L, bool *host, int *ndev)
{
    *host = L->cfg.device == LOADER_DEVICE_CPU;
    *ndev = 0;
    if (*host)
        return 0;
    *ndev = nf__cuda_device_count();
    if (*ndev > 0)
        return 0;
    if (L->cfg.device == LOADER_DEVICE_CUDA)
        return *ndev == 0 ? nf__error(NUMAFEED_ENOCUDA, "device cuda: no CUDA device")
                          : nf__error_prefix(*ndev, "device cuda");
    *host = true;
    snprintf(L->host_reason, sizeof(L->host_reason), "host mode: %s",
             *ndev == 0 ? "no CUDA device" : numafeed_last_error());
    nf__error_clear();
    return 0;
}

/* Auto copies directly only records at least this large: the copy engine
 * takes one copy per record (and per field), and on an H200 8 KiB records
 * came at 3.6 GB/s direct against 20 staged, 150 KB images at the link's
 * rate (docs/loader.md). */
#define DIRECT_MIN_RECORD (64u << 10)

/* Why a choice that needs a GPU does not apply in host mode. */
static const char *host_why(const struct numafeed_loader *L)
{
    return L->host_reason[0] ? "batches stay on the host (no CUDA device)"
                             : "batches stay on the host (device cpu)";
}

/* Why the direct copy cannot serve this loader, or NULL when it can. */
static const char *direct_blocked(struct numafeed_loader *L, bool host, char *buf, size_t len)
{
    if (host)
        return host_why(L);
    if (L->io != LOADER_IO_MMAP)
        return "the shards are read with io_uring or pread, not mapped (io auto maps only "
               "a dataset resident in the page cache)";
    /* raw records go one copy each, from blocks as stored; decode gpu
     * copies whole stored blocks and gathers every kind of field itself */
    if (!L->gpu_decode) {
        if (L->layout->nvar)
            return "the dataset has variable fields";
        if (L->layout->record_bytes < DIRECT_MIN_RECORD && L->cfg.copy != LOADER_COPY_DIRECT)
            return "records are smaller than 64 KiB (one copy each: staged is faster there)";
        for (uint32_t g = 0; g < nf__dataset_blocks(L->ds); g++)
            if (nf__dataset_block(L->ds, g, NULL, NULL)->codec != NF_CODEC_RAW)
                return "zstd blocks are decoded by the pool's cores";
    }
    uint64_t total = 0;
    for (uint32_t sh = 0; sh < nf__dataset_shard_count(L->ds); sh++) {
        size_t n = 0;
        nf__dataset_shard_map(L->ds, sh, &n);
        total += n;
    }
    uint64_t budget = L->cfg.max_pinned_bytes;
    if (!budget) {
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        budget = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 4 : 0;
    }
    if (total > budget) {
        snprintf(buf, len, "the shards (%llu bytes) exceed max_pinned_bytes (%llu)",
                 (unsigned long long)total, (unsigned long long)budget);
        return buf;
    }
    return NULL;
}

/* The copy to the GPU: direct (the shards page-locked read-only, once,
 * for every pool: portable registrations) where it applies and is asked
 * for or automatic; staged otherwise, saying why. Chosen after the decode:
 * under decode gpu, direct sends the stored blocks to the GPU from the
 * page cache, where staged reads them into each worker's staging. */
static int pick_copy(struct numafeed_loader *L, bool host, int first_gpu)
{
    char buf[160];
    const char *why = L->cfg.copy == LOADER_COPY_STAGED ? NULL
                                                        : direct_blocked(L, host, buf, sizeof(buf));
    if (why && L->cfg.copy == LOADER_COPY_DIRECT)
        return nf__error(NUMAFEED_ECONFIG, "copy direct: %s", why);
    if (why && !host)
        snprintf(L->copy_why, sizeof(L->copy_why), "copy staged: %s", why);
    if (why || L->cfg.copy == LOADER_COPY_STAGED)
        return 0;
    uint32_t n = nf__dataset_shard_count(L->ds);
    L->pinned_maps = calloc(n ? n : 1, sizeof(*L->pinned_maps));
    if (!L->pinned_maps)
        return nf__error(-ENOMEM, "out of memory");
    for (uint32_t sh = 0; sh < n; sh++) {
        size_t len = 0;
        const uint8_t *m = nf__dataset_shard_map(L->ds, sh, &len);
        int rc = nf__cuda_host_register_ro_on(first_gpu, m, len);
        if (rc) {
            if (L->cfg.copy == LOADER_COPY_DIRECT)
                return nf__error_prefix(rc, "copy direct: page-locking %s",
                                        nf__dataset_shard_path(L->ds, sh));
            snprintf(L->copy_why, sizeof(L->copy_why), "copy staged: %s", numafeed_last_error());
            nf__error_clear();
            return 0; /* destroy unregisters the ones done */
        }
        L->pinned_maps[L->npinned++] = m;
    }
    L->direct = true;
    /* Raw records: a batch is ready when every copy queued before its
     * event has landed, later batches' included. With windows smaller than
     * a batch, every batch is filled by several units, and each is ready
     * only when the copies queued for the batches after it are: on an H200
     * that held 150 KB images at 0.93 of the link's rate, against 0.99
     * with a window of a batch or more (docs/loader.md). */
    uint64_t window = nf__loader_window(L);
    if (!L->gpu_decode && window < L->cfg.batch_size)
        snprintf(L->copy_why, sizeof(L->copy_why), "copy direct: a shuffle window of %llu "
                 "records, under a batch of %u, fills each batch from several units; a window "
                 "of a batch or more lets batches land in their copies' order",
                 (unsigned long long)window, L->cfg.batch_size);
    return 0;
}

/* ---- where zstd blocks are decoded --------------------------------------- */

/* GPU decode's bounds for one worker (gpu_plan.h), nvCOMP's scratch as
 * estimated on the first served GPU. */
struct temp_call {
    const struct nf_gplan_sizes *s;
    uint64_t max_decoded;
    size_t temp;
};

static int temp_on_device(void *arg)
{
    struct temp_call *c = arg;
    return nf__nvcomp_zstd_temp(nf__nvcomp(), c->s->max_blocks, (size_t)c->max_decoded,
                                c->s->arena, &c->temp);
}

static int gpu_bounds(struct numafeed_loader *L, int first_gpu)
{
    const struct nf_layout *lay = L->layout;
    uint64_t window = unit_records(L), bytes, t;
    if (__builtin_mul_overflow(window, lay->record_bytes, &bytes))
        bytes = UINT64_MAX;
    for (unsigned v = 0; v < lay->nvar; v++)
        if (__builtin_add_overflow(bytes, var_bound(L, v, window), &t) ||
            (bytes = t) == UINT64_MAX)
            bytes = UINT64_MAX;
    struct nf_gplan_input in = {window, bytes, nf__dataset_max_decoded(L->ds),
                                nf__dataset_blocks(L->ds), lay->nfields};
    struct temp_call c = {&L->gsz, in.max_decoded, 0};
    if (nf__gplan_bounds(&in, &L->gsz) ||
        nf__cuda_on_device(first_gpu, temp_on_device, &c) || nf__gplan_size(&L->gsz, c.temp))
        return nf__error(NUMAFEED_ECONFIG, "%s", numafeed_last_error()[0] ? numafeed_last_error()
                         : "its memory does not fit a size_t");
    return 0;
}

/* Why the GPU cannot decode this loader's blocks, or NULL when it can;
 * *code is the error decode gpu then fails with. */
static const char *gpu_blocked(struct numafeed_loader *L, bool host, int first_gpu, int *code,
                               char *buf, size_t len)
{
    const char *why;
    *code = NUMAFEED_ENOCUDA;
    if (!numafeed_has_cuda())
        return "not compiled with CUDA";
    if (!nf__gpu_kernels(&why))
        return why;
    if (host)
        return host_why(L);
    *code = NUMAFEED_ECONFIG;
    uint32_t nb = nf__dataset_blocks(L->ds), nz = 0;
    for (uint32_t g = 0; g < nb; g++)
        nz += nf__dataset_block(L->ds, g, NULL, NULL)->codec == NF_CODEC_ZSTD;
    if (!nz)
        return "no block of the dataset is zstd-compressed: there is nothing to decode";
    if (!nf__dataset_stored_hashes(L->ds))
        return "the dataset's shards keep no hashes of their stored blocks (written before "
               "they did): repack it to decode it on the GPU (docs/format.md)";
    if (L->cfg.decode == LOADER_DECODE_AUTO && nz * 2 < nb) {
        snprintf(buf, len, "only %u of the dataset's %u blocks are zstd-compressed", nz, nb);
        return buf;
    }
    *code = NUMAFEED_ENVCOMP;
    if (nf__nvcomp_load()) {
        snprintf(buf, len, "%s", numafeed_last_error());
        return buf;
    }
    *code = NUMAFEED_ECONFIG;
    if (gpu_bounds(L, first_gpu)) {
        snprintf(buf, len, "%s", numafeed_last_error());
        return buf;
    }
    /* the default thread count is at most 4 (pools check their own) */
    uint64_t workers = L->cfg.threads ? L->cfg.threads : 4, need;
    uint64_t budget = L->cfg.max_gpu_decode_bytes; /* its default set by copy_config */
    if (__builtin_mul_overflow(workers, (uint64_t)L->gsz.dev_bytes, &need) || need > budget) {
        snprintf(buf, len, "%llu workers x %zu bytes of GPU memory (a shuffle window of %llu "
                 "records, nvCOMP's scratch %zu) exceed max_gpu_decode_bytes (%llu)",
                 (unsigned long long)workers, L->gsz.dev_bytes,
                 (unsigned long long)nf__loader_window(L), L->gsz.temp,
                 (unsigned long long)budget);
        return buf;
    }
    return NULL;
}

/* decode: the GPU where it applies and is asked for or automatic, the
 * pool's cores otherwise; either way decode_why says what and why. */
static int pick_decode(struct numafeed_loader *L, bool host, int first_gpu)
{
    char buf[sizeof(L->decode_why) - 32];
    int code;
    if (L->cfg.decode == LOADER_DECODE_CPU) {
        snprintf(L->decode_why, sizeof(L->decode_why), "decode cpu: as configured");
        return 0;
    }
    const char *why = gpu_blocked(L, host, first_gpu, &code, buf, sizeof(buf));
    if (why && L->cfg.decode == LOADER_DECODE_GPU)
        return nf__error(code, "decode gpu: %s", why);
    if (why) {
        snprintf(L->decode_why, sizeof(L->decode_why), "decode cpu: %s", why);
        /* the notes say it where a GPU takes the batches: host mode says
         * enough on its own */
        L->decode_note = !host;
        nf__error_clear();
        return 0;
    }
    char d[sizeof(L->decode_why) - 200];
    nf__nvcomp_describe(nf__nvcomp(), d, sizeof(d));
    if (L->cfg.decode == LOADER_DECODE_AUTO) {
        /* Measured on an H200 (docs/loader.md): nvCOMP's decoder hung or
         * faulted on a damaged frame, and at the default window's calls of
         * tens of blocks it is slower than the host. A dataset from
         * anywhere stays on the host unless decode gpu is asked for. */
        snprintf(L->decode_why, sizeof(L->decode_why),
                 "decode cpu: auto keeps zstd on the pool's cores; decode gpu must be asked "
                 "for (docs/loader.md says why; available: %s)", d);
        nf__error_clear();
        return 0;
    }
    /* nvCOMP needs calls of hundreds of blocks: say so where a unit (one
     * call) has fewer */
    uint64_t per_block = nf__dataset_records(L->ds) / nf__dataset_blocks(L->ds);
    uint64_t unit_blocks = nf__loader_window(L) / (per_block ? per_block : 1) + 1;
    if (unit_blocks < NF_GPU_GOOD_CALL_BLOCKS)
        snprintf(L->decode_why, sizeof(L->decode_why), "decode gpu: %s; about %llu blocks per "
                 "nvCOMP call: it needs %u or more to beat the host (raise shuffle_window)", d,
                 (unsigned long long)unit_blocks, NF_GPU_GOOD_CALL_BLOCKS);
    else
        snprintf(L->decode_why, sizeof(L->decode_why), "decode gpu: %s", d);
    L->gpu_decode = L->decode_note = true;
    return 0;
}

/* The served ordinals: each once, non-negative, and visible unless host. */
static int pick_gpus(struct numafeed_loader *L, const numafeed_topo *topo, bool host, int ndev,
                     const struct loader_config *in, int *ordinals)
{
    int nvis = numafeed_topo_gpu_count(topo);
    int n = in->ngpus ? in->ngpus : (nvis ? nvis : 1);
    for (int i = 0; i < n; i++) {
        ordinals[i] = in->ngpus ? in->gpus[i] : i;
        if (ordinals[i] < 0)
            return nf__error(NUMAFEED_ECONFIG, "gpus[%d] = %d is negative", i, ordinals[i]);
        if (!host && ordinals[i] >= ndev)
            return nf__error(NUMAFEED_ECONFIG, "gpus[%d] = %d: the CUDA runtime sees %d "
                             "device(s)", i, ordinals[i], ndev);
        for (int j = 0; j < i; j++)
            if (ordinals[j] == ordinals[i])
                return nf__error(NUMAFEED_ECONFIG, "gpus[%d] = %d: listed twice", i,
                                 ordinals[i]);
    }
    L->npools = n;
    return 0;
}

/* Start every pool, then wait for all of them (pool.c says why). */
static int start_pools(struct numafeed_loader *L, const numafeed_topo *topo, bool host,
                       const int *ordinals, uint32_t rank, uint32_t world)
{
    L->pools = calloc((size_t)L->npools, sizeof(*L->pools));
    if (!L->pools)
        return nf__error(-ENOMEM, "out of memory");
    int rc = 0;
    for (int i = 0; !rc && i < L->npools; i++)
        rc = nf__pool_init(L, &L->pools[i], i, ordinals[i], topo, host, rank, world);
    for (int i = 0; !rc && i < L->npools; i++)
        rc = nf__pool_wait_ready(&L->pools[i]);
    return rc;
}

int loader_create(const struct loader_config *cfg_in, loader_t **out)
{
    nf__error_clear();
    if (!out)
        return nf__error(NUMAFEED_ECONFIG, "loader_create: out is NULL");
    *out = NULL;
    struct loader_config cfg;
    uint32_t rank, world;
    int rc = copy_config(cfg_in, &cfg);
    if (!rc)
        rc = resolve_ranks(&cfg, &rank, &world);
    if (rc)
        return rc;
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
    /* node overrides are copied (by position) before the caller's array
     * goes out of scope; the pools read them during start-up only */
    int overrides[LOADER_MAX_GPUS], ordinals[LOADER_MAX_GPUS];
    L->cfg.node_override = NULL;
    numafeed_topo *topo = NULL;
    bool host = false;
    int ndev = 0;
    if (!L->path || (cfg.sysfs_root && !L->sysfs_root))
        rc = nf__error(-ENOMEM, "out of memory");
    if (!rc)
        rc = open_dataset(L);
    if (!rc) {
        struct numafeed_topo_options to;
        numafeed_topo_options_init(&to);
        to.sysfs_root = L->sysfs_root;
        rc = numafeed_topo_open(&to, &topo);
    }
    if (!rc)
        rc = pick_device(L, &host, &ndev);
    L->cuda = !host;
    if (!rc)
        rc = pick_gpus(L, topo, host, ndev, &cfg, ordinals);
    if (!rc)
        rc = pick_decode(L, host, ordinals[0]);
    if (!rc)
        rc = pick_copy(L, host, ordinals[0]);
    if (!rc) {
        for (int i = 0; i < L->npools; i++)
            overrides[i] = cfg.node_override ? cfg.node_override[i] : -1;
        L->cfg.node_override = overrides;
        rc = start_pools(L, topo, host, ordinals, rank, world);
        L->cfg.node_override = NULL;
    }
    numafeed_topo_close(topo);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s", numafeed_last_error());
        loader_destroy(L);
        return nf__error(rc, "%s", msg);
    }
    *out = L;
    return 0;
}

void loader_destroy(loader_t *L)
{
    if (!L)
        return;
    /* pools may be missing (create failed before allocating them) or only
     * partly initialised (create failed in one of them) */
    for (int i = 0; L->pools && i < L->npools; i++)
        if (L->pools[i].L)
            nf__pool_stop(&L->pools[i]); /* stop them all first: destroy stays prompt */
    for (int i = 0; L->pools && i < L->npools; i++)
        nf__pool_free(&L->pools[i]);
    free(L->pools);
    /* every copy from them has finished: the pools waited for their events */
    for (uint32_t i = 0; i < L->npinned; i++)
        nf__cuda_host_unregister_one(L->pinned_maps[i]);
    free(L->pinned_maps);
    nf__dataset_close(L->ds);
    free(L->var_cap);
    free(L->var_hist);
    free(L->var_offs);
    free(L->var_vals);
    free(L->path);
    free(L->sysfs_root);
    pthread_mutex_destroy(&L->errmu);
    free(L);
}

int loader_gpu_count(const loader_t *L)
{
    return L ? L->npools : 0;
}

uint64_t loader_epoch_batches(const loader_t *L)
{
    return L && L->pools && L->npools ? L->pools[0].sampler.nbatches : 0;
}
