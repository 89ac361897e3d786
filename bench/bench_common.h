/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the benchmarks: synthetic token data, clocks, the machine. */
#ifndef NF_BENCH_COMMON_H
#define NF_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

/*
 * n int32 token ids drawn from a Zipf(1.1) distribution over a 50257-entry
 * vocabulary (GPT-2's size), in runs that repeat earlier spans now and then
 * the way text repeats phrases. Deterministic for a seed. A stand-in for a
 * tokenised corpus: close in entropy (~10 bits per token), so zstd's ratio
 * and speed on it are of the same order as on real token shards.
 */
void nfb_tokens(int32_t *out, size_t n, uint64_t seed);

/*
 * Pack n of those tokens into the dataset dir, replacing it: one int32
 * field "tokens", either records of record_tokens tokens each (the n /
 * record_tokens whole ones) or, with record_tokens 0, documents of 1024 to
 * 3072 tokens (mean 2048, the same lengths every time) in a variable
 * field. codec: enum numafeed_codec; block_bytes 0: the writer's default.
 * 0, or 1 with a message on stderr.
 */
int nfb_pack_tokens(const char *dir, const int32_t *tok, size_t n, size_t record_tokens,
                    int codec, size_t block_bytes);

/*
 * Drop every file of the dataset dir from the page cache and read it back
 * sequentially, so that two datasets compared are cached alike: the way a
 * dataset read from disk is (kernel readahead, in large folios where the
 * file system has them), not as the writer left it. Pages written in
 * pieces can stay in small folios that a mapping then takes 4 KiB at a
 * time: on the 2-core VM (Linux 6.18, ext4) a host run over a freshly
 * packed dataset spent about 6% more CPU time than over the same file
 * read back, and which of two freshly packed datasets had been reread
 * moved their ratio by more than that. 0, or 1 with a message on stderr.
 */
int nfb_reread(const char *dir);

/* Monotonic seconds. */
double nfb_now(void);

/* "model name" of the first CPU, number of online CPUs. */
void nfb_machine(char *buf, size_t len);

/* Median of n doubles (0 when n is 0); v is left as it was. */
double nfb_median(const double *v, size_t n);

/* One zstd block of a dataset, its stored bytes in memory. */
struct nfb_block {
    const void *src;
    size_t stored, decoded;
};

/*
 * Every zstd block of the dataset dir, its stored bytes read into memory
 * (where each is comes from numafeed_dataset_block), in the dataset's
 * order: *blocks (malloc'd, the caller frees it and each src), *n, and the
 * largest decoded size. 0, or 1 with a message on stderr.
 */
int nfb_zstd_blocks(const char *dir, struct nfb_block **blocks, size_t *n, size_t *max_decoded);

#endif
