// SPDX-License-Identifier: Apache-2.0
/*
 * GPU decode of one unit, and the worker's resources for it. worker.c's
 * opening essay says where this sits in the data path; gpu_plan.c does the
 * arithmetic. In order, for a unit:
 *
 *   1. place its blocks (staging offsets, arena offsets) and, streaming,
 *      wait until every slot it writes is free;
 *   2. read every block as stored into the page-locked staging (the
 *      pipeline's stored mode: io_uring, pread or the mapping; the zstd
 *      frame's size, length and stored hash checked on the way: nvCOMP
 *      never sees a frame that is not the one the dataset was written
 *      with); with copy direct, leave it where it is mapped (the shards
 *      are page-locked, and each frame checked there the first time only);
 *   3. write the header (descriptors, nvCOMP's arrays, the gather list and,
 *      on the host side, the batches' record ids and offsets);
 *   4. on the worker's stream: one copy of header and blocks (copy
 *      direct: the header, then one batched copy of the blocks from the
 *      page cache, and the screen kernel: each frame's bytes on the GPU
 *      against its stored hash, a frame that changed since the host
 *      checked it swapped for a sound one, so that nvCOMP never reads it),
 *      nvCOMP's batched zstd decode into the arena, the verify kernel, the
 *      gather kernel, the verdicts back; wait for them;
 *   5. a verdict that is not OK fails the unit with the CPU path's typed
 *      error for that block (the CPU checks the block once more to say
 *      it); otherwise count the records (publishing the batches they
 *      complete).
 * The window path does 1-4 without the gather, then gathers batch by batch,
 * each after its slot is free.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "loader/private.h"

/* ---- the worker's resources --------------------------------------------- */

/* The staging: node-local pages page-locked in place, or where the driver
 * refuses, a pinned allocation made by this node-pinned thread. */
static int staging_alloc(struct worker *w, struct gpu_worker *g)
{
    struct pool *p = w->pool;
    struct nf_placement pl;
    size_t len = g->sz.host_bytes;
    int rc = nf__node_alloc(p->L->sysfs_root, p->node, len, (void **)&g->host, &g->host_mapped,
                            &pl);
    if (!rc && !(rc = nf__cuda_host_register(g->host, g->host_mapped, g->host_mapped))) {
        g->host_registered = true;
        return 0;
    }
    if (g->host)
        nf__node_free(g->host, g->host_mapped);
    g->host = NULL;
    g->host_mapped = 0;
    pthread_mutex_lock(&p->mu);
    nf__note(p->notes, sizeof(p->notes), "worker %u: GPU decode staging: %s; using "
             "cudaHostAlloc", w->idx, numafeed_last_error());
    pthread_mutex_unlock(&p->mu);
    return nf__cuda_host_alloc(len, (void **)&g->host);
}

/* The screen's stand-in for a frame it refuses (copy direct): a zstd
 * frame of nothing, as libzstd writes it, on the device. */
static int safe_frame(struct gpu_worker *g)
{
    uint8_t frame[NF_GSAFE_MAX];
    size_t n = ZSTD_compress(frame, sizeof(frame), "", 0, 1);
    if (ZSTD_isError(n))
        return nf__error(-EINVAL, "GPU decode: an empty zstd frame: %s", ZSTD_getErrorName(n));
    g->sz.safe_len = n;
    int rc = nf__cuda_memcpy_h2d(g->dev + g->sz.dev_safe_off, frame, n, g->stream);
    return rc ? rc : nf__cuda_stream_synchronize(g->stream); /* frame is on this stack */
}

int nf__gpu_worker_init(struct worker *w)
{
    struct pool *p = w->pool;
    struct numafeed_loader *L = p->L;
    const struct nf_nvcomp *nv = nf__nvcomp();
    if (!nv)
        return nf__nvcomp_load();
    struct gpu_worker *g = calloc(1, sizeof(*g));
    if (!g)
        return nf__error(-ENOMEM, "GPU decode: out of memory");
    w->gpu = g;
    g->sz = L->gsz;
    /* nvCOMP's scratch depends on the GPU: asked on this worker's device */
    struct nf_nvcomp_alignments al;
    size_t temp = 0;
    int rc = nf__nvcomp_zstd_alignments(nv, &al);
    if (!rc && (al.input > NF_GALIGN || al.output > NF_GALIGN || al.temp > NF_GALIGN))
        rc = nf__error(NUMAFEED_ENVCOMP, "nvCOMP asks for alignments of %zu, %zu and %zu bytes; "
                       "numafeed aligns to %u", al.input, al.output, al.temp, NF_GALIGN);
    if (!rc)
        rc = nf__nvcomp_zstd_temp(nv, g->sz.max_blocks, nf__dataset_max_decoded(L->ds),
                                  g->sz.arena, &temp);
    if (!rc && nf__gplan_size(&g->sz, temp))
        rc = nf__error(NUMAFEED_ECONFIG, "GPU decode: its memory does not fit a size_t");
    uint64_t budget = L->cfg.max_gpu_decode_bytes; /* its default set at create */
    if (!rc && (uint64_t)g->sz.dev_bytes * p->nworkers > budget)
        rc = nf__error(NUMAFEED_ECONFIG, "decode gpu: %u workers x %zu bytes of GPU memory "
                       "(nvCOMP's scratch %zu) exceed max_gpu_decode_bytes (%llu): lower "
                       "shuffle_window or threads, or raise max_gpu_decode_bytes", p->nworkers,
                       g->sz.dev_bytes, temp, (unsigned long long)budget);
    if (!rc)
        rc = nf__cuda_stream_create(&g->stream);
    if (!rc)
        rc = nf__cuda_event_create_timed(&g->ev_start);
    if (!rc)
        rc = nf__cuda_event_create_timed(&g->ev_end);
    if (!rc)
        rc = nf__cuda_event_create_timed(&g->ev_done);
    if (!rc)
        rc = staging_alloc(w, g);
    if (!rc)
        rc = nf__cuda_malloc(g->sz.dev_bytes, (void **)&g->dev);
    if (!rc && p->direct)
        rc = safe_frame(g);
    if (!rc) {
        size_t n = g->sz.max_blocks;
        g->blk = calloc(n, sizeof(*g->blk));
        g->bi = calloc(n, sizeof(*g->bi));
        g->mapped = p->direct ? calloc(n, sizeof(*g->mapped)) : NULL;
        if (!g->blk || !g->bi || (p->direct && !g->mapped))
            rc = nf__error(-ENOMEM, "GPU decode: out of memory for %u blocks", g->sz.max_blocks);
    }
    /* stored blocks take no pipe buffer: as many reads in flight as io_depth */
    if (!rc)
        rc = nf__pipe_reserve(w->pipe, L->cfg.io_depth ? L->cfg.io_depth : NF_IO_DEFAULT_DEPTH);
    return rc;
}

void nf__gpu_worker_free(struct worker *w)
{
    struct gpu_worker *g = w->gpu;
    if (!g)
        return;
    if (g->stream) /* a unit that failed midway may have left work queued */
        nf__cuda_stream_synchronize(g->stream);
    nf__cuda_free(g->dev);
    if (g->host_registered)
        nf__cuda_host_unregister(g->host, g->sz.host_bytes, g->sz.host_bytes);
    if (g->host_mapped)
        nf__node_free(g->host, g->host_mapped);
    else
        nf__cuda_host_free(g->host);
    nf__cuda_event_destroy(g->ev_start);
    nf__cuda_event_destroy(g->ev_end);
    nf__cuda_event_destroy(g->ev_done);
    nf__cuda_stream_destroy(g->stream);
    free(g->blk);
    free(g->bi);
    free(g->mapped);
    free(g);
    w->gpu = NULL;
}

/* ---- one unit ----------------------------------------------------------- */

/* The gather list of the unit's positions [q0, q1) (rank positions), and
 * on the host side each record's id and, for a batch's first record, the
 * batch's offsets; counts the records per batch into w->bcount. */
static uint64_t list_copies(struct worker *w, const struct unit *un, const struct nf_gunit *u,
                            uint64_t q0, uint64_t q1)
{
    struct pool *p = w->pool;
    const struct numafeed_loader *L = p->L;
    const struct nf_sampler *s = &p->sampler;
    struct gpu_worker *g = w->gpu;
    struct nf_gpu_copy *copies = (struct nf_gpu_copy *)(void *)(g->host + u->copies_off);
    const struct nf_gslot gs = {L->layout, s->batch, L->fixed_base, L->var_vals};
    uint64_t n = 0;
    for (uint64_t q = q0; q < q1; q++) {
        size_t k = (size_t)(q - un->a);
        uint64_t b, i, id = w->pos_id[k];
        nf__batch_of(s, q - s->start, &b, &i);
        struct slot *slot = nf__slot_of(p, un->epoch, b);
        const struct nf_gblk *blk = &g->blk[w->block_slot[w->pos_block[k]]];
        const uint8_t *rec = nf__gplan_decoded(blk, u, &g->sz, g->dev) +
                             nf__rec_offset(L, id, w->pos_in[k]);
        const int64_t *bo = nf__batch_offsets(w, un, b);
        n += nf__gplan_record(&gs, slot->dev, i, rec, bo, copies + n);
        nf__slot_put_id(L, slot, s->batch, i, id, bo);
        w->bcount[b - un->b_lo]++;
    }
    return n;
}

/* A block the GPU found bad. Its stored bytes are still in the staging:
 * the CPU decodes and verifies them once more, so that the error is
 * exactly decode cpu's (code and words: nvCOMP may turn a damaged frame
 * into wrong bytes where zstd reports the damage). Should the CPU find
 * them sound, the GPU's verdict stands, said as such. */
static int block_error(struct worker *w, const struct nf_gunit *u, uint32_t k,
                       const struct nf_gpu_result *r)
{
    const struct numafeed_loader *L = w->pool->L;
    struct gpu_worker *g = w->gpu;
    /* copy direct: in the mapping (the pipe guards the read) */
    int rc = nf__pipe_check_stored(w->pipe, w->blocks[k],
                                   g->mapped ? g->mapped[k]
                                             : g->host + u->stored_off + g->blk[k].in_off);
    if (rc)
        return rc;
    uint32_t shard, blk;
    const struct nf_block_info *bi = nf__dataset_block(L->ds, w->blocks[k], &shard, &blk);
    const char *path = nf__dataset_shard_path(L->ds, shard);
    unsigned long long off = (unsigned long long)bi->offset;
    if (r->code == NF_GPU_STORED)
        return nf__error(NUMAFEED_ECHECKSUM, "%s: block %u at offset %llu: the stored bytes the "
                         "GPU copied from the page cache hash to %016llx, the shard's footer says "
                         "%016llx: they changed under the loader (not decoded; the page cache "
                         "holds sound bytes now)", path, blk, off, (unsigned long long)r->value,
                         (unsigned long long)bi->stored_xxh3);
    if (r->code == NF_GPU_HASH)
        return nf__error(NUMAFEED_ECHECKSUM, "%s: block %u at offset %llu: decoded on the GPU, "
                         "its bytes hash to %016llx, the index says %016llx (the CPU decodes "
                         "it soundly)", path, blk, off, (unsigned long long)r->value,
                         (unsigned long long)bi->xxh3);
    if (r->code == NF_GPU_SIZE)
        return nf__error(NUMAFEED_ECORRUPT, "%s: block %u at offset %llu: nvCOMP produced %llu "
                         "bytes, the index says %u (the CPU decodes it soundly)", path, blk, off,
                         (unsigned long long)r->value, bi->decoded_size);
    return nf__error(NUMAFEED_ECORRUPT, "%s: block %u at offset %llu: nvCOMP could not decode "
                     "the zstd frame: %s (status %d; the CPU decodes it soundly)", path, blk, off,
                     nf__nvcomp_status_string(nf__nvcomp(), (int)r->value), (int)r->value);
}

/* Wait for the worker's stream up to ev_done, and add its GPU time. */
static int finish(struct worker *w)
{
    struct gpu_worker *g = w->gpu;
    uint64_t ns = 0;
    int rc = nf__cuda_event_synchronize(g->ev_done);
    if (!rc)
        rc = nf__cuda_event_elapsed_ns(g->ev_start, g->ev_end, &ns);
    atomic_fetch_add_explicit(&w->pool->st_gpu_ns, ns, memory_order_relaxed);
    return rc;
}

/* Header and blocks to the device: one copy from the staging, or (copy
 * direct) the header from it and each block from the page cache, issued
 * together. */
static int to_device(struct worker *w, const struct nf_gunit *u)
{
    struct gpu_worker *g = w->gpu;
    void *st = g->stream;
    if (!g->mapped)
        return nf__cuda_memcpy_h2d(g->dev, g->host, u->end, st);
    int rc = nf__cuda_memcpy_h2d(g->dev, g->host, u->stored_off, st);
    size_t n = 0;
    for (uint32_t k = 0; k < u->nb; k++) {
        if (!g->bi[k]->stored_size)
            continue;
        w->dma_dst[n] = g->dev + u->stored_off + g->blk[k].in_off;
        w->dma_src[n] = g->mapped[k];
        w->dma_len[n++] = g->bi[k]->stored_size;
    }
    return rc ? rc : nf__cuda_memcpy_batch_h2d(w->dma_dst, w->dma_src, w->dma_len, n, st);
}

/* Header and blocks to the device, decode, verify, and gather ncopies
 * listed copies; wait; then the verdicts. */
static int decode(struct worker *w, const struct nf_gunit *u, uint64_t ncopies)
{
    struct gpu_worker *g = w->gpu;
    const struct nf_gplan_sizes *s = &g->sz;
    void *st = g->stream;
    uint8_t *dev = g->dev;
    int rc = to_device(w, u);
    if (!rc)
        rc = nf__cuda_event_record(g->ev_start, st);
    if (!rc && g->mapped) /* before nvCOMP reads a frame: the bytes it will read */
        rc = nf__gpu_screen((const struct nf_gpu_screen *)(const void *)(dev + u->screens_off),
                            u->nz, st);
    if (!rc && u->nz) {
        struct nf_nvcomp_batch b = {
            .in_ptrs = (const void *const *)(const void *)(dev + u->in_ptrs_off),
            .in_bytes = (const size_t *)(const void *)(dev + u->in_bytes_off),
            .out_bytes = (const size_t *)(const void *)(dev + u->out_bytes_off),
            .actual = (size_t *)(void *)(dev + s->dev_actual_off),
            .out_ptrs = (void *const *)(void *)(dev + u->out_ptrs_off),
            .statuses = (nf_nvcomp_status *)(void *)(dev + s->dev_status_off),
            .n = u->nz,
            .temp = dev + s->dev_temp_off,
            .temp_bytes = s->temp,
        };
        rc = nf__nvcomp_zstd_decompress(nf__nvcomp(), &b, st);
    }
    struct nf_gpu_result *res = (struct nf_gpu_result *)(void *)(dev + s->dev_res_off);
    if (!rc)
        rc = nf__gpu_verify((const struct nf_gpu_block *)(const void *)(dev + u->blocks_off),
                            u->nb, res, st);
    if (!rc && ncopies)
        rc = nf__gpu_gather((const struct nf_gpu_copy *)(const void *)(dev + u->copies_off),
                            (uint32_t)ncopies, st);
    if (!rc)
        rc = nf__cuda_event_record(g->ev_end, st);
    if (!rc)
        rc = nf__cuda_memcpy_d2h(g->host + s->host_res_off, res, u->nb * sizeof(*res), st);
    if (!rc)
        rc = nf__cuda_event_record(g->ev_done, st);
    if (!rc)
        rc = finish(w);
    const struct nf_gpu_result *v = (const struct nf_gpu_result *)(void *)(g->host +
                                                                          s->host_res_off);
    for (uint32_t k = 0; !rc && k < u->nb; k++)
        if (v[k].code != NF_GPU_OK)
            rc = block_error(w, u, k, &v[k]);
    if (!rc)
        atomic_fetch_add_explicit(&w->pool->st_blocks, u->nb, memory_order_relaxed);
    return rc;
}

/* The window path's gather of one batch: its copies to the device, the
 * kernel, and the wait. */
static int gather(struct worker *w, const struct nf_gunit *u, uint64_t ncopies)
{
    struct gpu_worker *g = w->gpu;
    void *st = g->stream;
    int rc = nf__cuda_memcpy_h2d(g->dev + u->copies_off, g->host + u->copies_off,
                                 ncopies * sizeof(struct nf_gpu_copy), st);
    if (!rc)
        rc = nf__cuda_event_record(g->ev_start, st);
    if (!rc)
        rc = nf__gpu_gather((const struct nf_gpu_copy *)(const void *)(g->dev + u->copies_off),
                            (uint32_t)ncopies, st);
    if (!rc)
        rc = nf__cuda_event_record(g->ev_end, st);
    if (!rc)
        rc = nf__cuda_event_record(g->ev_done, st);
    return rc ? rc : finish(w);
}

int nf__gpu_unit(struct worker *w, const struct unit *un, bool stream)
{
    struct pool *p = w->pool;
    const struct numafeed_loader *L = p->L;
    const struct nf_sampler *s = &p->sampler;
    struct gpu_worker *g = w->gpu;
    for (uint32_t k = 0; k < un->nb; k++)
        g->bi[k] = nf__dataset_block(L->ds, w->blocks[k], NULL, NULL);
    struct nf_gunit u;
    int rc = nf__gplan_place(g->bi, un->nb, (un->e - un->a) * L->layout->nfields, &g->sz, g->blk,
                             &u);
    if (rc)
        return rc;
    memset(w->bcount, 0, (size_t)(un->b_hi - un->b_lo + 1) * sizeof(*w->bcount));
    /* streaming: every slot was seen free; this also waits for their last
     * copies and the consumer's release events */
    for (uint64_t b = un->b_lo; stream && b <= un->b_hi; b++)
        if (!nf__wait_slot(p, un->epoch, b))
            return 0; /* stopping */
    if ((rc = nf__pump_blocks(w, un, false, g->host + u.stored_off)))
        return rc;
    nf__gplan_header(g->bi, g->blk, &u, &g->sz, g->host, g->dev, g->mapped != NULL);
    uint64_t ncopies = stream ? list_copies(w, un, &u, un->a, un->e) : 0;
    if ((rc = decode(w, &u, ncopies)))
        return rc;
    nf__unit_done(w, !stream); /* counted before its batches are */
    for (uint64_t b = un->b_lo; b <= un->b_hi && !atomic_load(&p->stop); b++) {
        struct slot *slot = nf__slot_of(p, un->epoch, b);
        if (!stream) {
            uint64_t q0 = s->start + nf__batch_start(s, b), q1 = s->start + nf__batch_start(s, b + 1);
            q0 = q0 > un->a ? q0 : un->a;
            q1 = q1 < un->e ? q1 : un->e;
            if (!nf__wait_slot(p, un->epoch, b))
                return 0; /* stopping */
            if ((rc = gather(w, &u, list_copies(w, un, &u, q0, q1))))
                return rc;
        }
        nf__count_written(p, slot, w->bcount[b - un->b_lo]);
    }
    return 0;
}
