// SPDX-License-Identifier: Apache-2.0
/*
 * The reader against its baselines, on the same data and the same thread,
 * with the shards resident in the page cache (so this measures CPU cost,
 * not the disk):
 *
 *   zstd: read + verify + decode every block through the reader (both
 *         backends, queue depth --depth) vs bare ZSTD_decompressDCtx over
 *         the same frames already in memory. Target: >= 0.9x.
 *   raw:  read every block through the reader (both backends) vs a plain
 *         pread of each block into the same buffer. Target: >= 0.9x. Also
 *         read + verify (XXH3 of each block), which the loader does.
 *
 *   bench_io [--mib N] [--block-bytes B] [--depth D] [--reps R] [--dir DIR]
 *
 * One machine-readable line per case:
 *   bench=io case=C backend=B block_bytes=N gbps=G baseline_gbps=H ratio=G/H
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "bench_common.h"
#include "io/io.h"
#include "io/private.h"

static size_t block_bytes = 256 << 10;
static unsigned depth = 8;
static int reps = 5;

static char *make_dataset(const char *dir, const char *name, int codec, const int32_t *tok,
                          size_t bytes)
{
    char *path;
    if (asprintf(&path, "%s/%s", dir, name) < 0)
        return NULL;
    struct numafeed_field f = {"tokens", "int32", 1, {2048}};
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.codec = codec;
    o.block_bytes = block_bytes;
    o.force = 1;
    numafeed_writer *w;
    if (numafeed_writer_create(path, &f, 1, &o, &w) ||
        numafeed_writer_append(w, tok, bytes / 8192) || numafeed_writer_finish(w)) {
        fprintf(stderr, "bench_io: writing %s: %s\n", path, numafeed_last_error());
        exit(1);
    }
    numafeed_writer_destroy(w);
    return path;
}

struct blocks {
    uint32_t n;
    uint32_t *shard, *block;
    uint64_t decoded;
};

static struct blocks list_blocks(const struct nf_dataset *ds)
{
    struct blocks b = {0};
    for (uint32_t s = 0; s < nf__dataset_shard_count(ds); s++)
        b.n += nf__dataset_shard_index(ds, s)->nblocks;
    b.shard = malloc(b.n * sizeof(uint32_t));
    b.block = malloc(b.n * sizeof(uint32_t));
    uint32_t k = 0;
    for (uint32_t s = 0; s < nf__dataset_shard_count(ds); s++) {
        const struct nf_shard_index *idx = nf__dataset_shard_index(ds, s);
        for (uint32_t i = 0; i < idx->nblocks; i++, k++) {
            b.shard[k] = s;
            b.block[k] = i;
            b.decoded += idx->blocks[i].decoded_size;
        }
    }
    return b;
}

/* One pass of the reader over every block, depth reads in flight; decode
 * 0: read only, 1: verify + decode into dst, 2: verify a raw block where it
 * was read (what the loader does with raw blocks: no copy). */
static double reader_pass(struct nf_reader *r, const struct blocks *b, uint8_t **bufs,
                          size_t buf_len, uint8_t *dst, size_t dst_len, int decode)
{
    unsigned *free_bufs = malloc(depth * sizeof(unsigned)), nfree = depth;
    for (unsigned i = 0; i < depth; i++)
        free_bufs[i] = i;
    struct nf_read_done *done = malloc(depth * sizeof(*done));
    double t0 = nfb_now();
    uint32_t next = 0, got = 0;
    while (got < b->n) {
        while (next < b->n && nfree) {
            unsigned bi = free_bufs[--nfree];
            if (nf__reader_submit(r, b->shard[next], b->block[next], bufs[bi], buf_len, bi)) {
                fprintf(stderr, "submit: %s\n", numafeed_last_error());
                exit(1);
            }
            next++;
        }
        int k = nf__reader_wait(r, 1, done, depth);
        for (int i = 0; i < k; i++) {
            if (done[i].result ||
                (decode && nf__reader_decode(r, done[i].shard, done[i].block, done[i].data,
                                              decode == 2 ? (void *)done[i].data : dst,
                                              decode == 2 ? buf_len : dst_len))) {
                fprintf(stderr, "read: %s\n", numafeed_last_error());
                exit(1);
            }
            free_bufs[nfree++] = (unsigned)done[i].tag;
            got++;
        }
    }
    double t = nfb_now() - t0;
    free(free_bufs);
    free(done);
    return t;
}

struct contender {
    const char *what;
    struct nf_dataset *ds;
    const struct blocks *b;
    int decode; /* see reader_pass; 2: raw verified in place */
    struct nf_reader *r;
    uint8_t **bufs, *dst;
    size_t buf_len, dst_len;
    double t[100];
};

static int contender_init(struct contender *c, int backend)
{
    struct nf_reader_options o;
    nf__reader_options_init(&o);
    o.backend = backend;
    o.queue_depth = depth;
    if (nf__reader_create(c->ds, &o, &c->r)) {
        printf("bench=io case=%s backend=%s skipped=\"%s\"\n", c->what,
               backend == NF_IO_URING ? "io_uring" : "pread", numafeed_last_error());
        c->r = NULL;
        return -1;
    }
    c->buf_len = block_bytes + 4096;
    c->dst_len = nf__dataset_max_decoded(c->ds);
    c->bufs = malloc(depth * sizeof(*c->bufs));
    c->dst = malloc(c->dst_len);
    for (unsigned i = 0; i < depth; i++)
        c->bufs[i] = malloc(c->buf_len);
    reader_pass(c->r, c->b, c->bufs, c->buf_len, c->dst, c->dst_len, c->decode); /* warm */
    return 0;
}

static void contender_report(struct contender *c, double *base)
{
    if (!c->r)
        return;
    double s = nfb_median(c->t, (size_t)reps), bs = nfb_median(base, (size_t)reps);
    double gb = (double)c->b->decoded / 1e9;
    printf("bench=io case=%s backend=%s block_bytes=%zu depth=%u gbps=%.3f baseline_gbps=%.3f "
           "ratio=%.3f\n", c->what, nf__reader_backend(c->r), block_bytes, depth, gb / s,
           gb / bs, bs / s);
    for (unsigned i = 0; i < depth; i++)
        free(c->bufs[i]);
    free(c->bufs);
    free(c->dst);
    nf__reader_destroy(c->r);
}

/* Bare zstd: every frame already in memory, decoded into one buffer. */
struct bare_zstd {
    const struct blocks *b;
    uint8_t **frames;
    const struct nf_block_info **info;
    uint8_t *dst;
    ZSTD_DCtx *d;
};

static void bare_zstd_init(struct bare_zstd *z, struct nf_dataset *ds, const struct blocks *b)
{
    z->b = b;
    z->frames = malloc(b->n * sizeof(*z->frames));
    z->info = malloc(b->n * sizeof(*z->info));
    for (uint32_t i = 0; i < b->n; i++) {
        z->info[i] = &nf__dataset_shard_index(ds, b->shard[i])->blocks[b->block[i]];
        z->frames[i] = malloc(z->info[i]->stored_size);
        if (nf__pread_full(ds->shards[b->shard[i]].fd, z->frames[i], z->info[i]->stored_size,
                            z->info[i]->offset, "shard")) {
            fprintf(stderr, "read: %s\n", numafeed_last_error());
            exit(1);
        }
    }
    z->dst = malloc(nf__dataset_max_decoded(ds));
    z->d = ZSTD_createDCtx();
}

static double bare_zstd_pass(struct bare_zstd *z)
{
    double t0 = nfb_now();
    for (uint32_t i = 0; i < z->b->n; i++) {
        size_t n = ZSTD_decompressDCtx(z->d, z->dst, z->info[i]->decoded_size, z->frames[i],
                                       z->info[i]->stored_size);
        if (ZSTD_isError(n)) {
            fprintf(stderr, "zstd: %s\n", ZSTD_getErrorName(n));
            exit(1);
        }
    }
    return nfb_now() - t0;
}

static void bare_zstd_free(struct bare_zstd *z)
{
    ZSTD_freeDCtx(z->d);
    for (uint32_t i = 0; i < z->b->n; i++)
        free(z->frames[i]);
    free(z->frames);
    free(z->info);
    free(z->dst);
}

/* Plain pread of every block into the same buffer. */
static double bare_pread_pass(struct nf_dataset *ds, const struct blocks *b, uint8_t *buf)
{
    double t0 = nfb_now();
    for (uint32_t i = 0; i < b->n; i++) {
        const struct nf_block_info *bi =
            &nf__dataset_shard_index(ds, b->shard[i])->blocks[b->block[i]];
        if (pread(ds->shards[b->shard[i]].fd, buf, bi->stored_size, (off_t)bi->offset) !=
            (ssize_t)bi->stored_size) {
            fprintf(stderr, "pread failed\n");
            exit(1);
        }
    }
    return nfb_now() - t0;
}

int main(int argc, char **argv)
{
    size_t mib = 256;
    const char *dir = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mib"))
            mib = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--block-bytes"))
            block_bytes = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--depth"))
            depth = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else
            break;
    }
    if (!mib || block_bytes < 8192 || block_bytes > NF_BLOCK_CAP || !depth || depth > 256 ||
        reps < 1 || reps > 100) {
        fprintf(stderr, "usage: bench_io [--mib N] [--block-bytes B] [--depth D] [--reps R] "
                        "[--dir DIR]\n");
        return 2;
    }
    char tmpl[] = "/tmp/numafeed-bench-XXXXXX";
    const char *base = dir ? dir : mkdtemp(tmpl);
    if (!base) {
        perror("mkdtemp");
        return 1;
    }
    size_t bytes = (mib << 20) / 8192 * 8192;
    int32_t *tok = malloc(bytes);
    nfb_tokens(tok, bytes / 4, 7);
    char *zpath = make_dataset(base, "zstd", NUMAFEED_CODEC_ZSTD, tok, bytes);
    char *rpath = make_dataset(base, "raw", NUMAFEED_CODEC_NONE, tok, bytes);
    free(tok);
    char machine[300];
    nfb_machine(machine, sizeof(machine));
    printf("# machine: %s; zstd %s; %zu MiB decoded per dataset; page-cache resident; "
           "median of %d\n", machine, ZSTD_versionString(), mib, reps);

    struct nf_dataset *zds, *rds;
    if (nf__dataset_open(zpath, NULL, &zds) || nf__dataset_open(rpath, NULL, &rds)) {
        fprintf(stderr, "open: %s\n", numafeed_last_error());
        return 1;
    }
    struct blocks zb = list_blocks(zds), rb = list_blocks(rds);
    struct bare_zstd bz;
    bare_zstd_init(&bz, zds, &zb);
    uint8_t *pbuf = malloc(block_bytes + 4096);
    double tz[100], tp[100];
    bare_zstd_pass(&bz);
    bare_pread_pass(rds, &rb, pbuf);
    /* Every contender runs once per round, right after its baseline, so a
     * noisy neighbour or a clock change on the VM hits both alike. */
    struct contender c[6];
    memset(c, 0, sizeof(c));
    static const char *const names[3] = {"zstd_read_verify_decode", "raw_read", "raw_read_verify"};
    for (int i = 0; i < 6; i++) {
        c[i].what = names[i % 3];
        c[i].ds = i % 3 ? rds : zds;
        c[i].b = i % 3 ? &rb : &zb;
        c[i].decode = i % 3 == 0 ? 1 : i % 3 == 1 ? 0 : 2;
    }
    for (int i = 0; i < 6; i++)
        contender_init(&c[i], i < 3 ? NF_IO_URING : NF_IO_PREAD);
    for (int r = 0; r < reps; r++) {
        tz[r] = bare_zstd_pass(&bz);
        tp[r] = bare_pread_pass(rds, &rb, pbuf);
        for (int i = 0; i < 6; i++)
            if (c[i].r)
                c[i].t[r] = reader_pass(c[i].r, c[i].b, c[i].bufs, c[i].buf_len, c[i].dst,
                                        c[i].dst_len, c[i].decode);
    }
    for (int i = 0; i < 6; i++)
        contender_report(&c[i], c[i].ds == zds ? tz : tp);
    bare_zstd_free(&bz);
    free(pbuf);
    nf__dataset_close(zds);
    nf__dataset_close(rds);
    free(zb.shard);
    free(zb.block);
    free(rb.shard);
    free(rb.block);
    if (!dir) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
        if (system(cmd))
            fprintf(stderr, "could not remove %s\n", base);
    }
    free(zpath);
    free(rpath);
    return 0;
}
