// SPDX-License-Identifier: Apache-2.0
/*
 * The GPU's XXH3-64 (src/pin/xxh3_lanes.h) on the CPU, against libxxhash:
 * every length from 0 to 3 KiB and random longer ones, at every alignment
 * of the input, computed the way the verify kernel does (8 lanes x 4
 * interleaved stripe groups summed, then scrambled) and with one group, so
 * the kernel's arithmetic is right before a GPU ever runs it.
 */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "internal.h"

#include "pin/xxh3_lanes.h"

/* What one warp of the verify kernel computes, thread by thread: lane j of
 * group g sums stripes g, g + groups, ...; the groups' sums are added
 * (the kernel's shuffles), then the scramble. */
static uint64_t warp_hash(const uint8_t *in, size_t len, unsigned groups)
{
    if (len <= NF_XXH3_MIDSIZE)
        return nf_xxh3_short(in, len);
    uint64_t acc[8];
    size_t nb = nf_xxh3_blocks(len);
    for (unsigned j = 0; j < 8; j++)
        acc[j] = nf_xxh3_acc_init(j);
    for (size_t n = 0; n < nb; n++)
        for (unsigned j = 0; j < 8; j++) {
            uint64_t sum = 0;
            for (unsigned g = 0; g < groups; g++)
                sum += nf_xxh3_lane_sum(in + n * NF_XXH3_BLOCK, j, g, 16, groups);
            acc[j] = nf_xxh3_scramble(acc[j] + sum, j);
        }
    unsigned tail = nf_xxh3_tail_stripes(len);
    for (unsigned j = 0; j < 8; j++) {
        for (unsigned g = 0; g < groups; g++)
            acc[j] += nf_xxh3_lane_sum(in + nb * NF_XXH3_BLOCK, j, g, tail, groups);
        acc[j] += nf_xxh3_last(in, len, j);
    }
    return nf_xxh3_merge(acc, len);
}

static void check(const uint8_t *in, size_t len)
{
    uint64_t want = XXH3_64bits(in, len);
    uint64_t g4 = warp_hash(in, len, 4), g1 = warp_hash(in, len, 1);
    if (g4 != want || g1 != want)
        fail_msg("length %zu at %p: XXH3 %016llx, lanes x4 %016llx, x1 %016llx", len,
                 (const void *)in, (unsigned long long)want, (unsigned long long)g4,
                 (unsigned long long)g1);
}

static void test_every_length(void **state)
{
    (void)state;
    enum { MAX = 3 << 10 };
    uint8_t *buf = malloc(MAX + 8);
    srand(7);
    for (size_t i = 0; i < MAX + 8; i++)
        buf[i] = (uint8_t)rand();
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len <= MAX; len++)
            check(buf + off, len);
    free(buf);
}

static void test_long_inputs(void **state)
{
    (void)state;
    enum { MAX = 600 << 10 };
    uint8_t *buf = malloc(MAX + 8);
    srand(11);
    for (size_t i = 0; i < MAX + 8; i++)
        buf[i] = (uint8_t)(rand() >> 3);
    size_t lens[] = {4096, 4097, 65536, 65535, 150528, 262144, 262143, 262145, MAX};
    for (size_t i = 0; i < NF_ARRAY_SIZE(lens); i++)
        check(buf + (i % 8), lens[i]);
    for (int k = 0; k < 40; k++)
        check(buf + (size_t)(rand() % 8), (size_t)rand() % MAX);
    /* runs of zeros and of one value: the multiply-by-zero corners */
    memset(buf, 0, MAX);
    check(buf, MAX);
    memset(buf, 0xff, 5000);
    check(buf, 5000);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_length),
        cmocka_unit_test(test_long_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
