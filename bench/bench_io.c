// SPDX-License-Identifier: Apache-2.0
/*
 * The reader against its baselines, on the same blocks, one thread, with
 * the shards resident in the page cache (so this measures CPU cost, not
 * the disk):
 *
 *   zstd_read_verify_decode: read + verify + decode every block, vs bare
 *       ZSTD_decompressDCtx over the same frames already in memory.
 *   raw_read_verify: read + XXH3-verify every raw block, vs a plain pread
 *       of each block into one buffer.
 *
 * Each case runs two ways:
 *   path=dataset  numafeed_dataset_read_block, block after block (pread);
 *   path=loader   the real pipeline: a host-mode loader with one worker,
 *                 io_uring, pread or mmap (loader_config.io), no
 *                 shuffle, one block per batch, over one epoch; its time
 *                 includes copying every record into the batch slots.
 * Target: >= 0.9x the baseline. The baselines find the blocks with
 * numafeed_dataset_block, so both sides read exactly the same bytes.
 *
 *   bench_io [--mib N] [--block-bytes B] [--depth D] [--reps R] [--dir DIR]
 *
 * One machine-readable line per case:
 *   bench=io case=C path=P backend=B block_bytes=N depth=D gbps=G
 *   baseline_gbps=H ratio=G/H
 * (depth: reads in flight per thread; a backend this machine refuses gives
 * a line with skipped="why" instead of the figures).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "bench_common.h"
#include "numafeed.h"

enum { MAX_REPS = 100, RECORD_BYTES = 8192 };

static size_t block_bytes = 256 << 10;
static unsigned depth = 8;
static int reps = 5;

static void die(const char *what)
{
    fprintf(stderr, "bench_io: %s: %s\n", what, numafeed_last_error());
    exit(1);
}

static char *make_dataset(const char *dir, const char *name, int codec, const int32_t *tok,
                          size_t bytes)
{
    char *path;
    if (asprintf(&path, "%s/%s", dir, name) < 0 ||
        nfb_pack_tokens(path, tok, bytes / 4, RECORD_BYTES / 4, codec, block_bytes))
        exit(1);
    return path;
}

/* ---- one dataset: its blocks, and its shard files for the baselines ---- */

struct data {
    char *path;
    numafeed_dataset *h;
    uint32_t n;                      /* blocks */
    struct numafeed_block_info *bi;  /* per block */
    int *fd;                         /* per block: its shard file */
    uint64_t decoded;                /* bytes of every block, decoded */
    size_t max_decoded;
};

static void data_open(struct data *d)
{
    if (numafeed_dataset_open(d->path, &d->h))
        die(d->path);
    d->n = numafeed_dataset_blocks(d->h);
    d->bi = calloc(d->n, sizeof(*d->bi));
    d->fd = calloc(d->n, sizeof(*d->fd));
    for (uint32_t g = 0; g < d->n; g++) {
        d->bi[g].size = sizeof(d->bi[g]);
        if (numafeed_dataset_block(d->h, g, &d->bi[g]))
            die("numafeed_dataset_block");
        d->decoded += d->bi[g].decoded_bytes;
        if (d->bi[g].decoded_bytes > d->max_decoded)
            d->max_decoded = d->bi[g].decoded_bytes;
        /* blocks come shard by shard: a new name starts a new file */
        if (g > 0 && !strcmp(d->bi[g].shard, d->bi[g - 1].shard)) {
            d->fd[g] = d->fd[g - 1];
            continue;
        }
        char file[4096];
        snprintf(file, sizeof(file), "%s/%s", d->path, d->bi[g].shard);
        if ((d->fd[g] = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
            perror(file);
            exit(1);
        }
    }
}

static void data_close(struct data *d)
{
    for (uint32_t g = 0; g < d->n; g++)
        if (g == 0 || d->fd[g] != d->fd[g - 1])
            close(d->fd[g]);
    free(d->bi);
    free(d->fd);
    numafeed_dataset_close(d->h);
}

/* ---- the baselines ------------------------------------------------------ */

/* Plain pread of every block into the same buffer. */
static double bare_pread_pass(const struct data *d, uint8_t *buf)
{
    double t0 = nfb_now();
    for (uint32_t g = 0; g < d->n; g++) {
        const struct numafeed_block_info *b = &d->bi[g];
        if (pread(d->fd[g], buf, b->stored_bytes, (off_t)b->offset) != (ssize_t)b->stored_bytes) {
            fprintf(stderr, "bench_io: pread of %s failed\n", b->shard);
            exit(1);
        }
    }
    return nfb_now() - t0;
}

/* Bare zstd: every frame already in memory (nfb_zstd_blocks), decoded into
 * one buffer. */
struct bare_zstd {
    struct nfb_block *blocks;
    size_t n, max_decoded;
    uint8_t *dst;
    ZSTD_DCtx *dctx;
};

static void bare_zstd_init(struct bare_zstd *z, const struct data *d)
{
    if (nfb_zstd_blocks(d->path, &z->blocks, &z->n, &z->max_decoded))
        exit(1);
    z->dst = malloc(z->max_decoded ? z->max_decoded : 1);
    z->dctx = ZSTD_createDCtx();
}

static double bare_zstd_pass(struct bare_zstd *z)
{
    double t0 = nfb_now();
    for (size_t g = 0; g < z->n; g++) {
        size_t n = ZSTD_decompressDCtx(z->dctx, z->dst, z->blocks[g].decoded, z->blocks[g].src,
                                       z->blocks[g].stored);
        if (ZSTD_isError(n)) {
            fprintf(stderr, "bench_io: zstd: %s\n", ZSTD_getErrorName(n));
            exit(1);
        }
    }
    return nfb_now() - t0;
}

static void bare_zstd_free(struct bare_zstd *z)
{
    ZSTD_freeDCtx(z->dctx);
    for (size_t g = 0; g < z->n; g++)
        free((void *)z->blocks[g].src);
    free(z->blocks);
    free(z->dst);
}

/* ---- the contenders ----------------------------------------------------- */

static double dataset_pass(struct data *d, uint8_t *dst)
{
    double t0 = nfb_now();
    for (uint32_t g = 0; g < d->n; g++)
        if (numafeed_dataset_read_block(d->h, g, dst, d->max_decoded))
            die("numafeed_dataset_read_block");
    return nfb_now() - t0;
}

/*
 * One host-mode pool, one worker, no shuffle, one block per batch and per
 * shuffle window, and the smallest ring (2 slots): between two timed epochs
 * it can build at most those 2 batches of the next one ahead, 2/N of the
 * blocks, which the bigger default --mib keeps small.
 */
static loader_t *loader_open(const struct data *d, int io, char *backend, size_t len)
{
    struct loader_config cfg;
    loader_config_init(&cfg);
    cfg.path = d->path;
    cfg.batch_size = d->bi[0].records;
    cfg.threads = 1;
    cfg.prefetch = 2;
    cfg.shuffle = 0;
    cfg.shuffle_window = d->bi[0].records;
    cfg.rank = 0;
    cfg.world_size = 1;
    cfg.io = io;
    cfg.io_depth = depth;
    cfg.device = LOADER_DEVICE_CPU;
    loader_t *L;
    if (loader_create(&cfg, &L)) {
        snprintf(backend, len, "%s", numafeed_last_error());
        return NULL;
    }
    struct loader_pool_info pi = {.size = sizeof(pi)};
    loader_pool_info(L, 0, &pi);
    snprintf(backend, len, "%s", pi.io_backend);
    return L;
}

static double loader_pass(loader_t *L)
{
    double t0 = nfb_now();
    struct loader_batch b = LOADER_BATCH_INIT;
    int rc;
    while ((rc = loader_next(L, 0, &b, -1)) == 0)
        loader_release(L, &b);
    if (rc != NUMAFEED_EEPOCH_END) {
        char msg[1024];
        loader_last_error(L, msg, sizeof(msg));
        fprintf(stderr, "bench_io: loader_next: %s\n", msg);
        exit(1);
    }
    return nfb_now() - t0;
}

struct contender {
    const char *what, *path;  /* case, and dataset or loader */
    struct data *d;
    const double *base;       /* the baseline's times */
    int io;                   /* the loader's enum loader_io */
    const char *io_name;
    loader_t *L;              /* path=loader; NULL when refused */
    char backend[256];        /* the backend, or why it was refused */
    uint8_t *dst;             /* path=dataset */
    double t[MAX_REPS];
};

static double contender_pass(struct contender *c)
{
    return c->L ? loader_pass(c->L) : dataset_pass(c->d, c->dst);
}

static void contender_init(struct contender *c)
{
    if (!strcmp(c->path, "loader")) {
        if (!(c->L = loader_open(c->d, c->io, c->backend, sizeof(c->backend))))
            return;
    } else {
        snprintf(c->backend, sizeof(c->backend), "pread");
        c->dst = malloc(c->d->max_decoded);
    }
    contender_pass(c); /* warm */
}

static int contender_ready(const struct contender *c)
{
    return c->L || c->dst;
}

static void contender_report(struct contender *c)
{
    if (!contender_ready(c)) {
        printf("bench=io case=%s path=%s backend=%s skipped=\"%s\"\n", c->what, c->path,
               c->io_name, c->backend);
        return;
    }
    double s = nfb_median(c->t, (size_t)reps);
    double bs = nfb_median(c->base, (size_t)reps);
    double gb = (double)c->d->decoded / 1e9;
    printf("bench=io case=%s path=%s backend=%s block_bytes=%zu depth=%u gbps=%.3f "
           "baseline_gbps=%.3f ratio=%.3f\n", c->what, c->path, c->backend, block_bytes,
           c->L ? depth : 1u, gb / s, gb / bs, bs / s);
    loader_destroy(c->L);
    free(c->dst);
}

/* ---- main --------------------------------------------------------------- */

static int parse(int argc, char **argv, size_t *mib, const char **dir)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mib"))
            *mib = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--block-bytes"))
            block_bytes = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--depth"))
            depth = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir"))
            *dir = argv[i + 1];
        else
            return -1;
    }
    if (argc % 2 == 0 || !*mib || *mib > (SIZE_MAX >> 21) || block_bytes < RECORD_BYTES ||
        block_bytes > NUMAFEED_MAX_BLOCK_BYTES || !depth || depth > 256 || reps < 1 ||
        reps > MAX_REPS)
        return -1;
    return 0;
}

/* Every contender runs once per round, right after its baseline, so a noisy
 * neighbour or a clock change on the VM hits both alike. */
static void run(struct data *zd, struct data *rd)
{
    static const int ios[3] = {LOADER_IO_URING, LOADER_IO_PREAD, LOADER_IO_MMAP};
    static const char *const io_names[3] = {"io_uring", "pread", "mmap"};
    static double tz[MAX_REPS], tp[MAX_REPS];
    static struct contender c[8];
    for (int i = 0; i < 8; i++) {
        int raw = i >= 4;
        c[i] = (struct contender){
            .what = raw ? "raw_read_verify" : "zstd_read_verify_decode",
            .path = i % 4 ? "loader" : "dataset", .d = raw ? rd : zd, .base = raw ? tp : tz,
            .io = i % 4 ? ios[i % 4 - 1] : LOADER_IO_PREAD,
            .io_name = i % 4 ? io_names[i % 4 - 1] : "pread",
        };
        contender_init(&c[i]);
    }
    struct bare_zstd bz;
    bare_zstd_init(&bz, zd);
    uint8_t *pbuf = malloc(rd->max_decoded);
    bare_zstd_pass(&bz);
    bare_pread_pass(rd, pbuf);
    for (int r = 0; r < reps; r++) {
        tz[r] = bare_zstd_pass(&bz);
        tp[r] = bare_pread_pass(rd, pbuf);
        for (int i = 0; i < 8; i++)
            if (contender_ready(&c[i]))
                c[i].t[r] = contender_pass(&c[i]);
    }
    for (int i = 0; i < 8; i++)
        contender_report(&c[i]);
    bare_zstd_free(&bz);
    free(pbuf);
}

int main(int argc, char **argv)
{
    size_t mib = 256;
    const char *dir = NULL;
    if (parse(argc, argv, &mib, &dir)) {
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
    size_t bytes = (mib << 20) / RECORD_BYTES * RECORD_BYTES;
    int32_t *tok = malloc(bytes);
    nfb_tokens(tok, bytes / 4, 7);
    struct data zd = {.path = make_dataset(base, "zstd", NUMAFEED_CODEC_ZSTD, tok, bytes)};
    struct data rd = {.path = make_dataset(base, "raw", NUMAFEED_CODEC_NONE, tok, bytes)};
    free(tok);
    char machine[300];
    nfb_machine(machine, sizeof(machine));
    printf("# machine: %s; zstd %s; %zu MiB decoded per dataset; page-cache resident; "
           "median of %d\n", machine, ZSTD_versionString(), mib, reps);
    data_open(&zd);
    data_open(&rd);
    run(&zd, &rd);
    data_close(&zd);
    data_close(&rd);
    if (!dir) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
        if (system(cmd))
            fprintf(stderr, "could not remove %s\n", base);
    }
    free(zd.path);
    free(rd.path);
    return 0;
}
