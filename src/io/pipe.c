// SPDX-License-Identifier: Apache-2.0
/*
 * The block pipeline: what the loader asks of src/io. A worker submits
 * global blocks (the dataset's numbering) and gets back, one at a time,
 * each block's verified, decoded bytes; everything about how they got
 * there stays here:
 *
 *   - which backend moves the bytes: io_uring or pread through a reader
 *     (reader.c), or none at all when the shards are mapped (mmap);
 *   - where the stored bytes go: a raw block is read into a buffer and
 *     verified there (no copy); a zstd block is read into a read buffer
 *     and decoded into a staging buffer; a mapped raw block is verified in
 *     the mapping and handed out from there, a mapped zstd block decodes
 *     from the mapping into staging;
 *   - how big the buffers are (the dataset's largest stored and decoded
 *     block, O_DIRECT slack included) and how many: enough for the
 *     configured bytes in flight, or as many as the caller reserves;
 *   - or, for a decoder elsewhere (the GPU), the stored bytes as they are,
 *     read (or copied from the mapping) straight into the caller's
 *     destination, or, mapped, handed out where they are mapped (the GPU
 *     copies them from the page cache), a zstd frame checked but not
 *     decoded: its header and length, then its bytes against the footer's
 *     stored hash, so that a decoder that does not survive damaged input
 *     (nvCOMP's) never gets one.
 *
 * Buffers. A pipe owns n buffers (a decoded one, and a read one for zstd
 * blocks); a submitted block holds one until the caller releases its
 * completion, so the number of buffers bounds the blocks in flight and the
 * caller decides how long it keeps decoded blocks (the loader's streaming
 * path releases each right after scattering it, its window path holds a
 * whole window). Buffers are allocated by the first thread that needs
 * them: the loader's workers are pinned, so they land on the pool's node.
 *
 * A pipe is used by one thread at a time, like the reader it wraps.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "io/io.h"
#include "io/private.h"

struct pbuf {
    uint8_t *dec;  /* decoded bytes of a zstd block */
    uint8_t *rd;   /* stored bytes as read (raw blocks are verified here) */
    uint8_t *to;   /* submitted stored: the caller's destination, else NULL */
    bool in_place; /* submitted stored, mapped: handed out where it is mapped */
    uint64_t tag;  /* the caller's, for the block it holds */
    uint32_t g;    /* that global block */
};

/* A block ready to hand out: read (result, data), or, mapped, submitted
 * and not yet decoded. */
struct ready {
    unsigned buf;
    int result;
    const uint8_t *data; /* stored bytes inside the read buffer */
};

struct nf_pipe {
    const struct nf_dataset *ds;
    struct nf_reader *reader; /* reads, and the zstd context for every mode */
    bool mapped, verify_once;
    size_t dec_bytes, rd_bytes;
    unsigned nbuf, nfree;
    struct pbuf *bufs;
    unsigned *free_list;
    struct ready *q;          /* FIFO of nbuf entries */
    unsigned qhead, qlen;
    unsigned outstanding;     /* submitted and not yet released */
    struct nf_pipe_stats st;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void nf__pipe_options_init(struct nf_pipe_options *o)
{
    memset(o, 0, sizeof(*o));
    o->size = sizeof(*o);
}

/* Grow the buffer table and the FIFO to n entries; the buffers' memory is
 * allocated on first use. */
static int grow(struct nf_pipe *p, unsigned n)
{
    if (n <= p->nbuf)
        return 0;
    struct pbuf *b = realloc(p->bufs, n * sizeof(*b));
    if (!b)
        return nf__error(-ENOMEM, "out of memory for %u block buffers", n);
    p->bufs = b;
    unsigned *fl = realloc(p->free_list, n * sizeof(*fl));
    if (!fl)
        return nf__error(-ENOMEM, "out of memory for %u block buffers", n);
    p->free_list = fl;
    struct ready *q = malloc(n * sizeof(*q));
    if (!q)
        return nf__error(-ENOMEM, "out of memory for %u block buffers", n);
    for (unsigned i = 0; i < p->qlen; i++)
        q[i] = p->q[(p->qhead + i) % p->nbuf];
    free(p->q);
    p->q = q;
    p->qhead = 0;
    /* free_list is a stack: push the new ones below the old ones so that
     * buffers already allocated are used first */
    unsigned add = n - p->nbuf;
    memmove(p->free_list + add, p->free_list, p->nfree * sizeof(*fl));
    for (unsigned i = 0; i < add; i++) {
        p->bufs[p->nbuf + i] = (struct pbuf){0};
        p->free_list[i] = n - 1 - i;
    }
    p->nfree += add;
    p->nbuf = n;
    return 0;
}

int nf__pipe_create(const struct nf_dataset *ds, const struct nf_pipe_options *o,
                    struct nf_pipe **out)
{
    struct nf_pipe_options defaults;
    *out = NULL;
    if (!o) {
        nf__pipe_options_init(&defaults);
        o = &defaults;
    }
    if (o->size < sizeof(*o) || o->io < NF_IO_AUTO || o->io > NF_IO_MMAP)
        return nf__error(NUMAFEED_ECONFIG, "pipe options: size %zu (expected %zu), io %d",
                         o->size, sizeof(*o), o->io);
    bool mapped = o->io == NF_IO_MMAP;
    if (mapped && !nf__dataset_block_map(ds, 0, 0))
        return nf__error(NUMAFEED_ECONFIG, "io mmap: the dataset's shards are not mapped");
    struct nf_pipe *p = calloc(1, sizeof(*p));
    if (!p)
        return nf__error(-ENOMEM, "out of memory");
    p->ds = ds;
    p->mapped = mapped;
    p->verify_once = mapped && o->verify_once;
    struct nf_reader_options ro;
    nf__reader_options_init(&ro);
    /* mapped: the reader only lends its zstd context; pread costs nothing */
    ro.backend = mapped ? NF_IO_PREAD : o->io;
    ro.queue_depth = o->depth;
    ro.max_op_bytes = o->max_op_bytes;
    int rc = nf__reader_create(ds, &ro, &p->reader);
    if (rc) {
        free(p);
        return rc;
    }
    /* Buffer sizes come from the dataset's validated index (no block
     * decodes to more than NF_BLOCK_CAP), the read buffer with room for
     * O_DIRECT's rounding on both ends. A raw block is verified and handed
     * out where it was read: its decoded bytes are its stored bytes (the
     * index is checked for that at open), so the largest stored block
     * bounds those too. */
    size_t a = NF_IO_DIRECT_ALIGN;
    p->dec_bytes = ((size_t)nf__dataset_max_decoded(ds) + a - 1) & ~(a - 1);
    p->rd_bytes = ((size_t)nf__dataset_max_stored(ds) + 2 * a) & ~(a - 1);
    if (!p->dec_bytes)
        p->dec_bytes = a;
    size_t budget = o->staging_bytes ? o->staging_bytes : NF_PIPE_DEFAULT_BYTES;
    size_t n = budget / p->dec_bytes;
    unsigned depth = nf__reader_depth(p->reader);
    if (n > depth)
        n = depth;
    if (n < 2)
        n = 2;
    if ((rc = grow(p, (unsigned)n))) {
        nf__pipe_destroy(p);
        return rc;
    }
    *out = p;
    return 0;
}

void nf__pipe_destroy(struct nf_pipe *p)
{
    if (!p)
        return;
    /* the kernel may still be writing into our buffers: wait first */
    nf__reader_destroy(p->reader);
    for (unsigned i = 0; i < p->nbuf; i++) {
        free(p->bufs[i].dec);
        free(p->bufs[i].rd);
    }
    free(p->bufs);
    free(p->free_list);
    free(p->q);
    free(p);
}

const char *nf__pipe_backend(const struct nf_pipe *p)
{
    return p->mapped ? "mmap" : nf__reader_backend(p->reader);
}

const char *nf__pipe_backend_reason(const struct nf_pipe *p)
{
    return p->mapped ? "default" : nf__reader_backend_reason(p->reader);
}

int nf__pipe_reserve(struct nf_pipe *p, unsigned n)
{
    return grow(p, n);
}

unsigned nf__pipe_room(const struct nf_pipe *p)
{
    unsigned n = p->nfree;
    if (!p->mapped) {
        unsigned room = nf__reader_depth(p->reader) - nf__reader_inflight(p->reader);
        n = n < room ? n : room;
    }
    return n;
}

unsigned nf__pipe_outstanding(const struct nf_pipe *p)
{
    return p->outstanding;
}

void nf__pipe_stats(const struct nf_pipe *p, struct nf_pipe_stats *st)
{
    *st = p->st;
}

/* Allocate what buffer i needs for a block of this codec, once. */
static int buf_ready(struct nf_pipe *p, unsigned i, bool raw)
{
    struct pbuf *b = &p->bufs[i];
    bool need_dec = !raw, need_rd = !p->mapped;
    if (need_dec && !b->dec)
        b->dec = aligned_alloc(NF_IO_DIRECT_ALIGN, p->dec_bytes);
    if (need_rd && !b->rd)
        b->rd = aligned_alloc(NF_IO_DIRECT_ALIGN, p->rd_bytes);
    if ((need_dec && !b->dec) || (need_rd && !b->rd))
        return nf__error(-ENOMEM, "out of memory for a block buffer (%zu bytes)",
                         need_rd ? p->rd_bytes : p->dec_bytes);
    return 0;
}

static void push(struct nf_pipe *p, struct ready e)
{
    p->q[(p->qhead + p->qlen) % p->nbuf] = e;
    p->qlen++;
}

/* nf__pipe_submit_in_place's destination: the mapping itself. */
#define IN_PLACE ((uint8_t *)(uintptr_t)1)

/* Submit block g into buffer slot i's place: read it into dst (or, mapped,
 * queue it; dst is then copied at nf__pipe_next). */
static int submit(struct nf_pipe *p, uint32_t g, uint64_t tag, uint8_t *to, size_t to_len)
{
    uint32_t shard, blk;
    const struct nf_block_info *bi = nf__dataset_block(p->ds, g, &shard, &blk);
    if (!bi)
        return nf__error(-EINVAL, "no global block %u (the dataset has %u)", g,
                         nf__dataset_blocks(p->ds));
    if (to == IN_PLACE && !p->mapped)
        return nf__error(-EINVAL, "nf__pipe_submit_in_place: the shards are not mapped");
    if (to && to != IN_PLACE && to_len < bi->stored_size)
        return nf__error(-EINVAL, "%s: block %u: destination of %zu bytes for %u stored bytes",
                         nf__dataset_shard_path(p->ds, shard), blk, to_len, bi->stored_size);
    if (nf__pipe_room(p) == 0)
        return -EBUSY;
    unsigned i = p->free_list[p->nfree - 1];
    int rc = to ? 0 : buf_ready(p, i, bi->codec == NF_CODEC_RAW);
    if (rc)
        return rc;
    if (p->mapped)
        push(p, (struct ready){.buf = i});
    else if ((rc = nf__reader_submit(p->reader, shard, blk, to ? to : p->bufs[i].rd,
                                     to ? to_len : p->rd_bytes, i)))
        return rc;
    p->bufs[i].in_place = to == IN_PLACE;
    p->bufs[i].to = to == IN_PLACE ? NULL : to;
    p->bufs[i].tag = tag;
    p->bufs[i].g = g;
    p->nfree--;
    p->outstanding++;
    return 0;
}

int nf__pipe_submit(struct nf_pipe *p, uint32_t g, uint64_t tag)
{
    return submit(p, g, tag, NULL, 0);
}

int nf__pipe_submit_stored(struct nf_pipe *p, uint32_t g, uint64_t tag, void *dst,
                           size_t dst_len)
{
    if (!dst)
        return nf__error(-EINVAL, "nf__pipe_submit_stored: no destination");
    return submit(p, g, tag, dst, dst_len);
}

int nf__pipe_submit_in_place(struct nf_pipe *p, uint32_t g, uint64_t tag)
{
    return submit(p, g, tag, IN_PLACE, 0);
}

int nf__pipe_flush(struct nf_pipe *p)
{
    return p->mapped ? 0 : nf__reader_flush(p->reader);
}

/* Reads: wait until at least one read has finished and queue them all. */
static int reap(struct nf_pipe *p)
{
    struct nf_read_done done[64];
    uint64_t t0 = now_ns();
    int n = nf__reader_wait(p->reader, 1, done, (unsigned)NF_ARRAY_SIZE(done));
    p->st.io_ns += now_ns() - t0;
    if (n < 0)
        return n;
    for (int k = 0; k < n; k++)
        push(p, (struct ready){.buf = (unsigned)done[k].tag, .result = done[k].result,
                               .data = done[k].data});
    return 0;
}

struct decode_call {
    struct nf_pipe *p;
    const struct nf_block_info *bi;
    uint32_t g, shard, blk;
    const uint8_t *src;
    uint8_t *dst;
    size_t dst_len;
    int rc;
};

static void decode_block(void *arg)
{
    struct decode_call *c = arg;
    c->rc = nf__reader_decode(c->p->reader, c->shard, c->blk, c->src, c->dst, c->dst_len);
}

/* Stored zstd block g's bytes, in the caller's destination, against the
 * footer's hash of them: on an H200 nvCOMP 6's zstd kernel looped forever
 * on a frame with one byte flipped, and made an illegal memory access (the
 * CUDA context is lost) on the same frame in another call, so no decoder
 * elsewhere gets a frame that is not the one the shard was written with.
 * A mismatch is the CPU decoder's error for the block where it finds one
 * (decode cpu's words), else the mismatch itself. */
static int stored_hash_check(struct nf_pipe *p, uint32_t g, const void *stored)
{
    if (!nf__dataset_check_stored_hash(p->ds, g, stored))
        return 0;
    int rc = nf__pipe_check_stored(p, g, stored);
    return rc ? rc : nf__dataset_check_stored_hash(p->ds, g, stored);
}

/* Stored: the bytes into the caller's destination (mapped: a copy, which
 * may fault on a truncated shard; in place: none, the destination is the
 * mapping), their frame checked, and a zstd frame's bytes against the
 * footer's hash. */
static void stored_block(void *arg)
{
    struct decode_call *c = arg;
    if (c->src != c->dst)
        memcpy(c->dst, c->src, c->bi->stored_size);
    c->rc = nf__block_check_frame(nf__dataset_shard_path(c->p->ds, c->shard), c->blk, c->bi,
                                  c->dst);
    if (!c->rc && c->bi->codec == NF_CODEC_ZSTD)
        c->rc = stored_hash_check(c->p, c->g, c->dst);
}

int nf__pipe_guard(struct nf_pipe *p, void (*fn)(void *arg), void *arg)
{
    if (!p->mapped) {
        fn(arg);
        return 0;
    }
    void *addr;
    if (!nf__guarded(fn, arg, &addr))
        return 0;
    uint32_t shard;
    uint64_t off;
    if (nf__dataset_map_where(p->ds, addr, &shard, &off) == 0)
        return nf__error(NUMAFEED_ECORRUPT, "%s: short read at offset %llu: the mapped shard "
                         "lost its bytes there (truncated or replaced while the loader ran)",
                         nf__dataset_shard_path(p->ds, shard), (unsigned long long)off);
    return nf__error(NUMAFEED_ECORRUPT, "SIGBUS at %p while reading a mapped shard", addr);
}

int nf__pipe_next(struct nf_pipe *p, struct nf_block_done *d)
{
    memset(d, 0, sizeof(*d));
    if (!p->qlen) {
        if (p->outstanding == 0 || p->mapped)
            return nf__error(-EINVAL, "nf__pipe_next: no block in flight");
        int rc = reap(p);
        if (rc)
            return rc;
        if (!p->qlen)
            return nf__error(-EIO, "a read of the pipe did not complete");
    }
    struct ready e = p->q[p->qhead];
    p->qhead = (p->qhead + 1) % p->nbuf;
    p->qlen--;
    struct pbuf *b = &p->bufs[e.buf];
    uint32_t shard, blk;
    const struct nf_block_info *bi = nf__dataset_block(p->ds, b->g, &shard, &blk);
    d->tag = b->tag;
    d->gblock = b->g;
    d->buf_ = e.buf;
    d->records = bi->records;
    d->len = bi->decoded_size;
    if (e.result) {
        nf__pipe_release(p, d);
        d->data = NULL;
        return d->result = e.result;
    }
    const uint8_t *src = p->mapped ? nf__dataset_block_map(p->ds, shard, blk) : e.data;
    bool raw = bi->codec == NF_CODEC_RAW, stored = b->to || b->in_place;
    /* raw: verified where it is (read buffer or mapping), never copied;
     * zstd: decoded into the buffer's staging, then verified; stored: in
     * the caller's destination (in place: the mapping), checked as far as
     * can be without decoding */
    uint8_t *dst = b->to ? b->to : b->in_place || raw ? (uint8_t *)src : b->dec;
    struct decode_call call = {p, bi, b->g, shard, blk, src, dst,
                               raw ? bi->decoded_size : p->dec_bytes, 0};
    uint64_t t0 = now_ns();
    int rc = 0;
    /* verify_once: what is checked where it is mapped, once (a raw block
     * decoded, a zstd frame in place); in place, a raw block is its
     * decoder's to verify, untouched here */
    bool once = p->verify_once && (b->in_place ? !raw : raw && !stored);
    if (stored) {
        d->stored = 1;
        d->len = bi->stored_size;
    }
    if (!(b->in_place && raw) && (!once || !nf__dataset_verified(p->ds, b->g))) {
        rc = nf__pipe_guard(p, stored ? stored_block : decode_block, &call);
        if (!rc)
            rc = call.rc;
        if (!rc && once)
            nf__dataset_set_verified(p->ds, b->g);
    }
    p->st.decode_ns += now_ns() - t0;
    if (rc) {
        nf__pipe_release(p, d);
        return d->result = rc;
    }
    if (!d->stored)
        p->st.blocks++; /* a stored block is verified by its decoder */
    d->data = dst;
    return 0;
}

int nf__pipe_check_stored(struct nf_pipe *p, uint32_t g, const void *src)
{
    uint32_t shard, blk;
    const struct nf_block_info *bi = nf__dataset_block(p->ds, g, &shard, &blk);
    if (!bi)
        return nf__error(-EINVAL, "no global block %u", g);
    uint8_t *scratch = malloc(bi->decoded_size ? bi->decoded_size : 1);
    if (!scratch)
        return nf__error(-ENOMEM, "out of memory for a block of %u bytes", bi->decoded_size);
    /* src may be in the mapping (in place): guarded */
    struct decode_call call = {p, bi, g, shard, blk, src, scratch, bi->decoded_size, 0};
    int rc = nf__pipe_guard(p, decode_block, &call);
    free(scratch);
    return rc ? rc : call.rc;
}

void nf__pipe_release(struct nf_pipe *p, const struct nf_block_done *d)
{
    p->free_list[p->nfree++] = d->buf_;
    p->outstanding--;
}

int nf__pipe_drain(struct nf_pipe *p)
{
    int rc = p->mapped ? 0 : nf__reader_drain(p->reader);
    /* every buffer back: reads finished (or the ring failed, and nothing
     * more will complete), queued blocks dropped */
    p->qlen = p->qhead = 0;
    p->nfree = 0;
    for (unsigned i = 0; i < p->nbuf; i++)
        p->free_list[p->nfree++] = p->nbuf - 1 - i;
    p->outstanding = 0;
    return rc;
}
