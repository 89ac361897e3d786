// SPDX-License-Identifier: Apache-2.0
/*
 * What block size should `numafeed pack` default to? Decode speed rises
 * with block size (fewer frame setups, longer matches), while shuffle
 * granularity and the cost of reading one random record get worse (a
 * record costs decoding its whole block). This measures the first on
 * token-like int32 data, in memory, one thread, and prints the second.
 *
 *   bench_blocksize [--mib N] [--level L] [--reps R]
 *
 * One line per block size:
 *   bench=blocksize block_bytes=B ratio=R decode_gbps=G decode_verify_gbps=V
 *   us_per_block=U records_per_block=K (K for 8 KiB records: 2048 tokens)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>
#include <zstd.h>
/* libxxhash's run-time CPU dispatch (AVX2/AVX-512) where it exists, as the
 * library's reader has it: the verify figure is then the reader's. */
#if defined(__x86_64__) && defined(__has_include)
#if __has_include(<xxh_x86dispatch.h>)
#include <xxh_x86dispatch.h>
#endif
#endif

#include "bench_common.h"

int main(int argc, char **argv)
{
    size_t mib = 64;
    int level = 3, reps = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mib"))
            mib = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--level"))
            level = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
    }
    if (mib == 0 || reps < 1 || reps > 100) {
        fprintf(stderr, "usage: bench_blocksize [--mib N] [--level L] [--reps R]\n");
        return 2;
    }
    size_t total = mib << 20;
    int32_t *tok = malloc(total);
    nfb_tokens(tok, total / 4, 42);
    char machine[300];
    nfb_machine(machine, sizeof(machine));
    printf("# machine: %s; zstd %s level %d; %zu MiB of int32 tokens; median of %d\n", machine,
           ZSTD_versionString(), level, mib, reps);
    enum { NSIZES = 4 };
    static const size_t sizes[NSIZES] = {64 << 10, 256 << 10, 1 << 20, 4 << 20};
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_DCtx *d = ZSTD_createDCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    struct set {
        size_t bs, n, bound, stored;
        uint8_t *z;
        size_t *zlen;
        uint64_t *h;
        double t_dec[100], t_ver[100];
    } sets[NSIZES];
    uint8_t *dst = malloc(sizes[NSIZES - 1]);
    for (int s = 0; s < NSIZES; s++) {
        struct set *e = &sets[s];
        e->bs = sizes[s];
        e->n = total / e->bs;
        e->bound = ZSTD_compressBound(e->bs);
        e->z = malloc(e->n * e->bound);
        e->zlen = malloc(e->n * sizeof(*e->zlen));
        e->h = malloc(e->n * sizeof(*e->h));
        e->stored = 0;
        for (size_t b = 0; b < e->n; b++) {
            const uint8_t *src = (const uint8_t *)tok + b * e->bs;
            e->zlen[b] = ZSTD_compress2(c, e->z + b * e->bound, e->bound, src, e->bs);
            e->h[b] = XXH3_64bits(src, e->bs);
            e->stored += e->zlen[b];
        }
    }
    /* Round-robin over the sizes in every repetition so that the VM's
     * drifting speed affects all of them alike; the median is reported. */
    for (int r = 0; r < reps; r++) {
        for (int s = 0; s < NSIZES; s++) {
            struct set *e = &sets[s];
            double t0 = nfb_now();
            for (size_t b = 0; b < e->n; b++)
                ZSTD_decompressDCtx(d, dst, e->bs, e->z + b * e->bound, e->zlen[b]);
            double t1 = nfb_now();
            size_t bad = 0;
            for (size_t b = 0; b < e->n; b++) {
                ZSTD_decompressDCtx(d, dst, e->bs, e->z + b * e->bound, e->zlen[b]);
                bad += XXH3_64bits(dst, e->bs) != e->h[b];
            }
            double t2 = nfb_now();
            if (bad)
                fprintf(stderr, "hash mismatch\n");
            e->t_dec[r] = t1 - t0;
            e->t_ver[r] = t2 - t1;
        }
    }
    for (int s = 0; s < NSIZES; s++) {
        struct set *e = &sets[s];
        double dec = nfb_median(e->t_dec, (size_t)reps), ver = nfb_median(e->t_ver, (size_t)reps);
        double bytes = (double)e->n * (double)e->bs;
        printf("bench=blocksize block_bytes=%zu ratio=%.3f decode_gbps=%.3f decode_verify_gbps=%.3f "
               "us_per_block=%.1f records_per_block=%zu\n",
               e->bs, bytes / (double)e->stored, bytes / dec / 1e9, bytes / ver / 1e9,
               dec / (double)e->n * 1e6, e->bs / 8192);
        free(e->z);
        free(e->zlen);
        free(e->h);
    }
    free(dst);
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
    free(tok);
    return 0;
}
