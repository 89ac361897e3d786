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
    static const size_t sizes[] = {64 << 10, 256 << 10, 1 << 20, 4 << 20};
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_DCtx *d = ZSTD_createDCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t bs = sizes[s], n = total / bs, bound = ZSTD_compressBound(bs);
        uint8_t *z = malloc(n * bound), *dst = malloc(bs);
        size_t *zlen = malloc(n * sizeof(*zlen)), stored = 0;
        uint64_t *h = malloc(n * sizeof(*h));
        for (size_t b = 0; b < n; b++) {
            const uint8_t *src = (const uint8_t *)tok + b * bs;
            zlen[b] = ZSTD_compress2(c, z + b * bound, bound, src, bs);
            h[b] = XXH3_64bits(src, bs);
            stored += zlen[b];
        }
        double t_dec[100], t_ver[100];
        for (int r = 0; r < reps; r++) {
            double t0 = nfb_now();
            for (size_t b = 0; b < n; b++)
                ZSTD_decompressDCtx(d, dst, bs, z + b * bound, zlen[b]);
            double t1 = nfb_now();
            size_t bad = 0;
            for (size_t b = 0; b < n; b++) {
                ZSTD_decompressDCtx(d, dst, bs, z + b * bound, zlen[b]);
                bad += XXH3_64bits(dst, bs) != h[b];
            }
            double t2 = nfb_now();
            if (bad)
                fprintf(stderr, "hash mismatch\n");
            t_dec[r] = t1 - t0;
            t_ver[r] = t2 - t1;
        }
        double dec = nfb_median(t_dec, (size_t)reps), ver = nfb_median(t_ver, (size_t)reps);
        double bytes = (double)n * (double)bs;
        printf("bench=blocksize block_bytes=%zu ratio=%.3f decode_gbps=%.3f decode_verify_gbps=%.3f "
               "us_per_block=%.1f records_per_block=%zu\n",
               bs, bytes / (double)stored, bytes / dec / 1e9, bytes / ver / 1e9, dec / (double)n * 1e6,
               bs / 8192);
        free(z);
        free(dst);
        free(zlen);
        free(h);
    }
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
    free(tok);
    return 0;
}
