// SPDX-License-Identifier: Apache-2.0
/*
 * The physical ceilings the GPU benchmark compares numafeed against, measured
 * in the same run on the same machine:
 *   h2d   pinned host -> device cudaMemcpyAsync, one stream, the batch size
 *         as the copy size (what numafeed issues per batch);
 *   zstd  bare multi-thread zstd decode of the dataset's own blocks, already
 *         in memory: T threads, one ZSTD_DCtx each, ZSTD_decompressDCtx
 *         block after block, no hashing of ours, no copying out; zstd
 *         checks each frame's checksum (libzstd's default) unless "nocheck"
 *         is given, which leaves the pure decode (numafeed's readers skip
 *         the frame checksum: their XXH3 of the decoded bytes covers them);
 *   memcpy host memory bandwidth: T threads, each copying its own buffers
 *         (first touched by that thread) with memcpy, over and over; the
 *         figure is bytes copied per second (each byte is read once and
 *         written once, so DRAM moves at least twice that).
 * Usage: gpu_ceiling h2d BATCH_BYTES [SECONDS]
 *        gpu_ceiling zstd DATASET_DIR THREADS [SECONDS [nocheck]]
 *        gpu_ceiling memcpy THREADS [MIB_PER_THREAD] [SECONDS]
 * Prints one line: "ceiling h2d bytes B gbps X", "ceiling zstd[-nocheck]
 * threads T gbps X" or "ceiling memcpy threads T gbps X".
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_d_forceIgnoreChecksum */
#include <cuda_runtime_api.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "bench_common.h"
#include "numafeed.h"

static int h2d(size_t bytes, double secs)
{
    void *host, *dev;
    cudaStream_t s;
    if (cudaHostAlloc(&host, bytes, cudaHostAllocDefault) || cudaMalloc(&dev, 4 * bytes) ||
        cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)) {
        fprintf(stderr, "gpu_ceiling: CUDA setup failed\n");
        return 1;
    }
    memset(host, 1, bytes);
    size_t done = 0;
    double t0 = nfb_now(), t;
    int k = 0;
    do {
        for (int i = 0; i < 16; i++, k++)
            cudaMemcpyAsync((char *)dev + (size_t)(k % 4) * bytes, host, bytes,
                            cudaMemcpyHostToDevice, s);
        done += 16 * bytes;
        cudaStreamSynchronize(s);
        t = nfb_now() - t0;
    } while (t < secs);
    printf("ceiling h2d bytes %zu gbps %.2f\n", bytes, (double)done / t / 1e9);
    return 0;
}

static struct nfb_block *blocks;
static size_t nblocks, max_decoded;
static atomic_size_t next_block;
static atomic_ullong decoded_total;
static int ignore_checksum;

/* The clock covers the workers' loops only: each makes its buffers (first
 * touch faults every page in) and its context before timed_begin, and
 * frees them after timed_end; run_threads reads the clock between the two
 * barriers. A 64 MiB memcpy buffer pair takes tens of milliseconds to
 * fault in, which counted against a 2 s run's copying. */
static pthread_barrier_t start, stop;
static double secs_each;

/* Wait for every worker to be set up; the time this worker's loop ends. */
static double timed_begin(void)
{
    pthread_barrier_wait(&start);
    return nfb_now() + secs_each;
}

static void timed_end(void)
{
    pthread_barrier_wait(&stop);
}

/* Run fn on `threads` threads for `secs`; the seconds their loops took. */
static double run_threads(int threads, void *(*fn)(void *), double secs)
{
    pthread_t th[1024];
    secs_each = secs;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&stop, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, fn, NULL);
    pthread_barrier_wait(&start);
    double t0 = nfb_now();
    pthread_barrier_wait(&stop);
    double t = nfb_now() - t0;
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    pthread_barrier_destroy(&stop);
    return t;
}

static void *decoder(void *arg)
{
    (void)arg;
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (ignore_checksum)
        ZSTD_DCtx_setParameter(d, ZSTD_d_forceIgnoreChecksum, ZSTD_d_ignoreChecksum);
    void *dst = malloc(max_decoded);
    unsigned long long mine = 0;
    for (double deadline = timed_begin(); nfb_now() < deadline;) {
        size_t i = atomic_fetch_add(&next_block, 1) % nblocks;
        size_t r = ZSTD_decompressDCtx(d, dst, max_decoded, blocks[i].src, blocks[i].stored);
        if (ZSTD_isError(r)) {
            fprintf(stderr, "gpu_ceiling: %s\n", ZSTD_getErrorName(r));
            break;
        }
        mine += r;
    }
    timed_end();
    atomic_fetch_add(&decoded_total, mine);
    free(dst);
    ZSTD_freeDCtx(d);
    return NULL;
}

static int zstd_ceiling(const char *dir, int threads, double secs)
{
    if (nfb_zstd_blocks(dir, &blocks, &nblocks, &max_decoded))
        return 1;
    if (!nblocks) { /* every block was stored raw: there is no decode to bound */
        printf("ceiling zstd threads %d gbps nan (no zstd block in %s)\n", threads, dir);
        return 0;
    }
    double t = run_threads(threads, decoder, secs);
    printf("ceiling zstd%s threads %d gbps %.2f\n", ignore_checksum ? "-nocheck" : "", threads,
           (double)atomic_load(&decoded_total) / t / 1e9);
    return 0;
}

static size_t copy_bytes;
static atomic_ullong copied_total;

static void *copier(void *arg)
{
    (void)arg;
    char *src = malloc(copy_bytes), *dst = malloc(copy_bytes);
    if (src && dst) {
        memset(src, 1, copy_bytes);
        memset(dst, 2, copy_bytes);
    } else {
        fprintf(stderr, "gpu_ceiling: out of memory\n");
    }
    unsigned long long mine = 0;
    for (double deadline = timed_begin(); src && dst && nfb_now() < deadline;) {
        memcpy(dst, src, copy_bytes);
        mine += copy_bytes;
    }
    timed_end();
    atomic_fetch_add(&copied_total, mine);
    free(src);
    free(dst);
    return NULL;
}

static int memcpy_ceiling(int threads, size_t mib, double secs)
{
    if (!mib)
        return fprintf(stderr, "gpu_ceiling memcpy: MiB per thread must be > 0\n"), 2;
    copy_bytes = mib << 20;
    double t = run_threads(threads, copier, secs);
    printf("ceiling memcpy threads %d gbps %.2f\n", threads,
           (double)atomic_load(&copied_total) / t / 1e9);
    return 0;
}

int main(int argc, char **argv)
{
    int threads = argc >= 4 && !strcmp(argv[1], "zstd")     ? atoi(argv[3])
                  : argc >= 3 && !strcmp(argv[1], "memcpy") ? atoi(argv[2])
                                                            : 1;
    if (threads < 1 || threads > 1024)
        return fprintf(stderr, "gpu_ceiling: THREADS must be 1..1024\n"), 2;
    if (argc >= 3 && !strcmp(argv[1], "h2d"))
        return h2d(strtoull(argv[2], NULL, 10), argc > 3 ? atof(argv[3]) : 2.0);
    if (argc >= 4 && !strcmp(argv[1], "zstd")) {
        ignore_checksum = argc > 5 && !strcmp(argv[5], "nocheck");
        return zstd_ceiling(argv[2], atoi(argv[3]), argc > 4 ? atof(argv[4]) : 2.0);
    }
    if (argc >= 3 && !strcmp(argv[1], "memcpy"))
        return memcpy_ceiling(atoi(argv[2]), argc > 3 ? strtoull(argv[3], NULL, 10) : 64,
                              argc > 4 ? atof(argv[4]) : 2.0);
    fprintf(stderr, "usage: gpu_ceiling h2d BATCH_BYTES [SECONDS]\n"
                    "       gpu_ceiling zstd DIR THREADS [SECONDS [nocheck]]\n"
                    "       gpu_ceiling memcpy THREADS [MIB_PER_THREAD] [SECONDS]\n");
    return 2;
}
