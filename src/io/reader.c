// SPDX-License-Identifier: Apache-2.0
/*
 * The per-thread block reader.
 *
 * A reader owns a fixed table of `depth` slots, one per read in flight, a
 * backend (io_uring or pread, a table of functions chosen at creation) and
 * one ZSTD_DCtx reused for every block. Nothing is shared with other
 * readers except the read-only dataset, so there are no locks: the loader
 * gives each worker thread its own reader.
 *
 * Backend choice: an explicit option; otherwise io_uring, and pread when
 * io_uring_queue_init is refused (ENOSYS on old
 * kernels, EPERM under seccomp or kernel.io_uring_disabled, ENOMEM under a
 * small RLIMIT_MEMLOCK on kernels before 5.12). The fallback is quiet but
 * recorded: nf__reader_backend_reason() says what happened.
 *
 * Short reads: the kernel may return fewer bytes than asked (signals,
 * network filesystems, a file truncated under us). The slot then asks again
 * for the rest; only a read that returns 0 before the block's last byte is
 * an error, naming the file and the offset where the data ended.
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_d_forceIgnoreChecksum */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "io/io.h"
#include "io/private.h"

/* EINTR/EAGAIN retries per slot before the read is failed: a storm of
 * signals should not turn into a livelock. */
#define NF_IO_MAX_RETRIES 64u

void nf__reader_options_init(struct nf_reader_options *o)
{
    memset(o, 0, sizeof(*o));
    o->size = sizeof(*o);
}

static uint64_t align_down(uint64_t v)
{
    return v & ~(uint64_t)(NF_IO_DIRECT_ALIGN - 1);
}

static uint64_t align_up(uint64_t v)
{
    return align_down(v + NF_IO_DIRECT_ALIGN - 1);
}

static const struct nf_block_info *block_of(const struct nf_reader *r, uint32_t shard,
                                            uint32_t block)
{
    if (shard >= r->ds->nshards || block >= r->ds->shards[shard].idx.nblocks)
        return NULL;
    return &r->ds->shards[shard].idx.blocks[block];
}

size_t nf__reader_buf_bytes(const struct nf_reader *r, uint32_t shard, uint32_t block)
{
    const struct nf_block_info *b = block_of(r, shard, block);
    if (!b)
        return 0;
    if (!r->direct)
        return b->stored_size;
    return (size_t)(align_up(b->offset + b->stored_size) - align_down(b->offset));
}

/* Choose the backend; fills r->ops and r->reason. */
static int pick_backend(struct nf_reader *r, int want)
{
    int forced = want != NF_IO_AUTO;
    snprintf(r->reason, sizeof(r->reason), "%s",
             forced ? "forced by the reader options" : "default");
    if (want == NF_IO_PREAD) {
        r->ops = &nf__io_pread_ops;
        return r->ops->init(r, r->depth, NULL, 0);
    }
    char why[128] = "";
    int rc = nf__io_uring_ops.init(r, r->depth, why, sizeof(why));
    if (rc == 0) {
        r->ops = &nf__io_uring_ops;
        return 0;
    }
    if (forced)
        return nf__error(rc, "io_uring was asked for but is unavailable: %s", why);
    snprintf(r->reason, sizeof(r->reason), "%s; using pread", why);
    r->ops = &nf__io_pread_ops;
    return r->ops->init(r, r->depth, NULL, 0);
}

int nf__reader_create(const struct nf_dataset *ds, const struct nf_reader_options *o,
                       struct nf_reader **out)
{
    struct nf_reader_options defaults;
    *out = NULL;
    if (!o) {
        nf__reader_options_init(&defaults);
        o = &defaults;
    }
    if (o->size < sizeof(*o) || o->queue_depth > NF_IO_MAX_DEPTH || o->backend < NF_IO_AUTO ||
        o->backend > NF_IO_PREAD)
        return nf__error(NUMAFEED_ECONFIG, "reader options: size %zu (expected %zu), queue "
                          "depth %u (at most %u), backend %d", o->size, sizeof(*o),
                          o->queue_depth, NF_IO_MAX_DEPTH, o->backend);
    const char *why;
    if (o->direct && !nf__dataset_direct(ds, &why))
        return nf__error(NUMAFEED_ECONFIG, "O_DIRECT asked for but unavailable: %s", why);
    struct nf_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return nf__error(-ENOMEM, "out of memory");
    r->ds = ds;
    r->depth = o->queue_depth ? o->queue_depth : NF_IO_DEFAULT_DEPTH;
    r->direct = o->direct ? 1 : 0;
    r->max_op_bytes = o->max_op_bytes;
    r->slots = calloc(r->depth, sizeof(*r->slots));
    r->free_list = calloc(r->depth, sizeof(unsigned));
    r->ready = calloc(r->depth, sizeof(unsigned));
    r->ready_rc = calloc(r->depth, sizeof(int));
    r->dctx = ZSTD_createDCtx();
    if (!r->slots || !r->free_list || !r->ready || !r->ready_rc || !r->dctx) {
        nf__reader_destroy(r);
        return nf__error(-ENOMEM, "out of memory for a reader of depth %u", r->depth);
    }
    /* Every decoded byte is checked against its block's XXH3-64 in the
     * index (nf__block_decode); zstd's frame checksum, an XXH64 of the same
     * bytes, would hash them a second time on the hot path (3-6% of a
     * decode-bound pipeline). The writer still writes it and `numafeed
     * check` still verifies it. A libzstd older than 1.4.7 refuses the
     * parameter and keeps checking: slower, nothing else. */
    ZSTD_DCtx_setParameter(r->dctx, ZSTD_d_forceIgnoreChecksum, ZSTD_d_ignoreChecksum);
    for (unsigned i = 0; i < r->depth; i++)
        r->free_list[i] = r->depth - 1 - i;
    r->nfree = r->depth;
    int rc = pick_backend(r, o->backend);
    if (rc) {
        r->ops = NULL;
        nf__reader_destroy(r);
        return rc;
    }
    *out = r;
    return 0;
}

void nf__reader_destroy(struct nf_reader *r)
{
    if (!r)
        return;
    if (r->ops) {
        /* The kernel may still be writing into the caller's buffers: let it
         * finish before the caller frees them. */
        nf__reader_drain(r);
        r->ops->fini(r);
    }
    ZSTD_freeDCtx(r->dctx);
    free(r->slots);
    free(r->free_list);
    free(r->ready);
    free(r->ready_rc);
    free(r);
}

const char *nf__reader_backend(const struct nf_reader *r)
{
    return r->ops->name;
}

const char *nf__reader_backend_reason(const struct nf_reader *r)
{
    return r->reason;
}

unsigned nf__reader_depth(const struct nf_reader *r)
{
    return r->depth;
}

unsigned nf__reader_inflight(const struct nf_reader *r)
{
    return r->inflight + r->nready;
}

size_t nf__io_op_len(const struct nf_reader *r, const struct nf_slot *s)
{
    size_t len = s->want - s->done;
    if (r->max_op_bytes && len > r->max_op_bytes) {
        len = r->max_op_bytes;
        /* O_DIRECT lengths must stay multiples of the alignment */
        if (s->direct)
            len = len < NF_IO_DIRECT_ALIGN ? NF_IO_DIRECT_ALIGN : (size_t)align_down(len);
    }
    return len;
}

static void complete(struct nf_reader *r, unsigned i, int rc)
{
    r->ready[r->nready] = i;
    r->ready_rc[r->nready] = rc;
    r->nready++;
    r->inflight--;
}

static void requeue(struct nf_reader *r, unsigned i)
{
    struct nf_slot *s = &r->slots[i];
    const struct nf_shard *sh = &r->ds->shards[s->shard];
    /* O_DIRECT needs aligned offsets and addresses: if a short read left the
     * remainder unaligned, finish it with a buffered read. */
    if (s->direct && ((s->base + s->done) % NF_IO_DIRECT_ALIGN ||
                      (uintptr_t)(s->buf + s->done) % NF_IO_DIRECT_ALIGN)) {
        s->fd = sh->fd;
        s->direct = 0;
    }
    int rc = r->ops->queue(r, i);
    if (rc)
        complete(r, i, rc);
}

void nf__io_progress(struct nf_reader *r, unsigned i, long res)
{
    struct nf_slot *s = &r->slots[i];
    const char *path = r->ds->shards[s->shard].path;
    if (res < 0) {
        if ((res == -EINTR || res == -EAGAIN) && s->retries++ < NF_IO_MAX_RETRIES) {
            requeue(r, i);
            return;
        }
        complete(r, i, nf__error((int)res, "%s: block %u: read at offset %llu: %s", path,
                                  s->block, (unsigned long long)(s->base + s->done),
                                  strerror((int)-res)));
        return;
    }
    if (res == 0 && s->done < s->need) {
        complete(r, i, nf__error(NUMAFEED_ECORRUPT, "%s: block %u: short read: end of file at "
                                  "offset %llu, the block ends at %llu", path, s->block,
                                  (unsigned long long)(s->base + s->done),
                                  (unsigned long long)(s->base + s->need)));
        return;
    }
    size_t left = s->want - s->done;
    s->done += (size_t)res > left ? left : (size_t)res;
    if (s->done >= s->need)
        complete(r, i, 0);
    else
        requeue(r, i);
}

int nf__reader_submit(struct nf_reader *r, uint32_t shard, uint32_t block, void *buf,
                       size_t buf_len, uint64_t tag)
{
    const struct nf_block_info *b = block_of(r, shard, block);
    if (!b)
        return nf__error(-EINVAL, "no block %u in shard %u", block, shard);
    if (r->nfree == 0)
        return nf__error(-EBUSY, "%u reads in flight: wait before submitting more", r->depth);
    size_t need_buf = nf__reader_buf_bytes(r, shard, block);
    if (!buf || buf_len < need_buf || (r->direct && (uintptr_t)buf % NF_IO_DIRECT_ALIGN))
        return nf__error(-EINVAL, "%s: block %u: read buffer of %zu bytes at %p, %zu bytes%s "
                          "needed", r->ds->shards[shard].path, block, buf_len, buf, need_buf,
                          r->direct ? " aligned to 4096" : "");
    unsigned i = r->free_list[--r->nfree];
    struct nf_slot *s = &r->slots[i];
    const struct nf_shard *sh = &r->ds->shards[shard];
    memset(s, 0, sizeof(*s));
    s->tag = tag;
    s->shard = shard;
    s->block = block;
    s->buf = buf;
    s->in_use = 1;
    if (r->direct) {
        s->fd = sh->dfd;
        s->direct = 1;
        s->base = align_down(b->offset);
        s->want = need_buf;
    } else {
        s->fd = sh->fd;
        s->base = b->offset;
        s->want = b->stored_size;
    }
    s->need = (size_t)(b->offset + b->stored_size - s->base);
    r->inflight++;
    int rc = r->ops->queue(r, i);
    if (rc) {
        s->in_use = 0;
        r->inflight--;
        r->free_list[r->nfree++] = i;
        return rc;
    }
    return 0;
}

int nf__reader_flush(struct nf_reader *r)
{
    return r->ops->flush(r);
}

int nf__reader_wait(struct nf_reader *r, unsigned min, struct nf_read_done *done, unsigned max)
{
    if (min > r->inflight + r->nready)
        min = r->inflight + r->nready;
    if (min > max)
        min = max;
    if (r->nready < min || r->nready == 0) {
        int rc = r->ops->reap(r, min > r->nready ? min - r->nready : 0);
        if (rc)
            return rc;
    }
    unsigned n = r->nready < max ? r->nready : max;
    for (unsigned k = 0; k < n; k++) {
        unsigned i = r->ready[k];
        struct nf_slot *s = &r->slots[i];
        const struct nf_block_info *b = block_of(r, s->shard, s->block);
        done[k].tag = s->tag;
        done[k].shard = s->shard;
        done[k].block = s->block;
        done[k].result = r->ready_rc[k];
        done[k].data = s->buf + (b->offset - s->base);
        s->in_use = 0;
        r->free_list[r->nfree++] = i;
    }
    /* Few entries (<= depth) and usually all taken: a move is cheap. */
    memmove(r->ready, r->ready + n, (r->nready - n) * sizeof(*r->ready));
    memmove(r->ready_rc, r->ready_rc + n, (r->nready - n) * sizeof(*r->ready_rc));
    r->nready -= n;
    return (int)n;
}

int nf__reader_drain(struct nf_reader *r)
{
    int rc = 0;
    while (r->inflight && !rc)
        rc = r->ops->reap(r, r->inflight);
    if (rc) /* the ring itself failed: nothing more will complete */
        return rc;
    while (r->nready) {
        unsigned i = r->ready[--r->nready];
        r->slots[i].in_use = 0;
        r->free_list[r->nfree++] = i;
    }
    return 0;
}

int nf__reader_decode(struct nf_reader *r, uint32_t shard, uint32_t block, const void *stored,
                       void *dst, size_t dst_len)
{
    const struct nf_block_info *b = block_of(r, shard, block);
    if (!b)
        return nf__error(-EINVAL, "no block %u in shard %u", block, shard);
    return nf__block_decode(r->dctx, r->ds->shards[shard].path, block, b, stored, dst, dst_len);
}

/* Read one block synchronously; *data points at its stored bytes in buf. */
static int read_sync(struct nf_reader *r, uint32_t shard, uint32_t block, void *buf,
                     size_t buf_len, const uint8_t **data)
{
    if (r->inflight || r->nready)
        return nf__error(-EBUSY, "synchronous read while %u asynchronous reads are pending",
                          r->inflight + r->nready);
    int rc = nf__reader_submit(r, shard, block, buf, buf_len, 0);
    if (rc)
        return rc;
    struct nf_read_done d;
    int n = nf__reader_wait(r, 1, &d, 1);
    if (n < 0)
        return n;
    if (n != 1)
        return nf__error(-EIO, "read of block %u in shard %u did not complete", block, shard);
    *data = d.data;
    return d.result;
}

int nf__reader_read_block(struct nf_reader *r, uint32_t shard, uint32_t block, void *buf,
                           size_t buf_len, void *dst, size_t dst_len)
{
    const uint8_t *data;
    int rc = read_sync(r, shard, block, buf, buf_len, &data);
    return rc ? rc : nf__reader_decode(r, shard, block, data, dst, dst_len);
}

int nf__reader_read_record(struct nf_reader *r, uint64_t record, void *buf, size_t buf_len,
                            void *block_buf, size_t block_len, void *dst)
{
    struct nf_record_loc loc;
    int rc = nf__dataset_locate(r->ds, record, &loc);
    if (rc)
        return rc;
    const struct nf_block_info *b = block_of(r, loc.shard, loc.block);
    const uint8_t *data;
    if ((rc = read_sync(r, loc.shard, loc.block, buf, buf_len, &data)))
        return rc;
    const uint8_t *from;
    if (b->codec == NF_CODEC_RAW) {
        /* Verified where it was read: no copy of the whole block. */
        rc = nf__reader_decode(r, loc.shard, loc.block, data, (void *)data, b->decoded_size);
        from = data;
    } else {
        rc = nf__reader_decode(r, loc.shard, loc.block, data, block_buf, block_len);
        from = block_buf;
    }
    if (rc)
        return rc;
    memcpy(dst, from + loc.offset, (size_t)loc.bytes);
    return 0;
}
