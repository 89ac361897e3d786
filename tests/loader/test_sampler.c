// SPDX-License-Identifier: Apache-2.0
/* The sampler: exactly once across parts, equal batch counts, determinism,
 * shuffle that changes with the epoch, drop_last. */
#include "helpers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "loader/sampler.h"

/* Blocks of 7 records with a short one at each "shard" end, like real data. */
static uint32_t *make_blocks(uint32_t nblocks, uint32_t per)
{
    uint32_t *b = malloc(nblocks * sizeof(*b));
    for (uint32_t i = 0; i < nblocks; i++)
        b[i] = (i % 5 == 4) ? per / 2 + 1 : per;
    return b;
}

static void check_partition(uint32_t nblocks, uint64_t window, uint64_t batch, uint64_t parts,
                            bool shuffle, bool drop_last, uint64_t epoch)
{
    uint32_t *blocks = make_blocks(nblocks, 7);
    uint64_t R = 0;
    for (uint32_t i = 0; i < nblocks; i++)
        R += blocks[i];
    unsigned char *seen = calloc(R, 1);
    uint64_t nb = 0, total = 0;
    for (uint64_t k = 0; k < parts; k++) {
        struct nf_sampler s;
        int rc = nf__sampler_init(&s, 42, shuffle, drop_last, window, batch, k, parts, nblocks,
                                   blocks);
        if (rc)
            fail_msg("init R=%llu B=%llu P=%llu: %s", (unsigned long long)R,
                     (unsigned long long)batch, (unsigned long long)parts, numafeed_last_error());
        if (k == 0)
            nb = s.nbatches;
        assert_int_equal(s.nbatches, nb); /* equal batch counts on every part */
        uint64_t *order = malloc((s.len ? s.len : 1) * sizeof(*order));
        assert_int_equal(nf__sampler_epoch_order(&s, epoch, order), 0);
        for (uint64_t i = 0; i < s.len; i++) {
            assert_true(order[i] < R);
            if (seen[order[i]])
                fail_msg("record %llu delivered twice", (unsigned long long)order[i]);
            seen[order[i]] = 1;
        }
        total += s.len;
        /* batches: none empty, none over B, they tile the slice, only the
         * last (or, in the edge case, the last two) short */
        uint64_t sum = 0;
        for (uint64_t b = 0; b < s.nbatches; b++) {
            uint64_t l = nf__batch_len(&s, b);
            assert_true(l >= 1 && l <= batch);
            if (drop_last)
                assert_int_equal(l, batch);
            if (l < batch && b + 2 < s.nbatches)
                fail_msg("batch %llu of %llu is short", (unsigned long long)b,
                         (unsigned long long)s.nbatches);
            for (uint64_t q = nf__batch_start(&s, b); q < nf__batch_start(&s, b + 1); q++) {
                uint64_t bb, ii;
                nf__batch_of(&s, q, &bb, &ii);
                assert_int_equal(bb, b);
                assert_int_equal(ii, q - nf__batch_start(&s, b));
            }
            sum += l;
        }
        assert_int_equal(sum, s.len);
        free(order);
        nf__sampler_free(&s);
    }
    if (!drop_last) {
        assert_int_equal(total, R); /* every record exactly once */
    } else {
        assert_true(total <= R && R - total < parts * batch + parts);
    }
    free(seen);
    free(blocks);
}

static void test_exactly_once(void **state)
{
    (void)state;
    static const uint64_t batches[] = {2, 3, 7, 16, 64};
    static const uint64_t parts[] = {1, 2, 3, 4, 8};
    static const uint64_t windows[] = {1, 5, 64, 1000};
    for (size_t b = 0; b < NF_ARRAY_SIZE(batches); b++)
        for (size_t p = 0; p < NF_ARRAY_SIZE(parts); p++)
            for (size_t w = 0; w < NF_ARRAY_SIZE(windows); w++)
                for (int shuffle = 0; shuffle < 2; shuffle++) {
                    check_partition(37, windows[w], batches[b], parts[p], shuffle, false, 3);
                    if (37u * 6 / parts[p] >= batches[b])
                        check_partition(37, windows[w], batches[b], parts[p], shuffle, true, 3);
                }
}

static void test_edge_equal_counts(void **state)
{
    (void)state;
    /* R = 9, P = 2, B = 4: shares 5 and 4; 2 batches each, the second part
     * as 3 + 1 rather than 4 + nothing. */
    uint32_t blocks[] = {9};
    struct nf_sampler a, b;
    assert_int_equal(nf__sampler_init(&a, 0, false, false, 9, 4, 0, 2, 1, blocks), 0);
    assert_int_equal(nf__sampler_init(&b, 0, false, false, 9, 4, 1, 2, 1, blocks), 0);
    assert_int_equal(a.nbatches, 2);
    assert_int_equal(b.nbatches, 2);
    assert_int_equal(nf__batch_len(&a, 0), 4);
    assert_int_equal(nf__batch_len(&a, 1), 1);
    assert_int_equal(nf__batch_len(&b, 0), 3);
    assert_int_equal(nf__batch_len(&b, 1), 1);
    nf__sampler_free(&a);
    nf__sampler_free(&b);
    /* the same with batch 1 is impossible: refused with a reason */
    assert_int_equal(nf__sampler_init(&a, 0, false, false, 9, 1, 1, 2, 1, blocks), -EINVAL);
    assert_non_null(strstr(numafeed_last_error(), "drop_last"));
    /* fewer records than parts */
    assert_int_equal(nf__sampler_init(&a, 0, false, false, 9, 1, 0, 10, 1, blocks), -EINVAL);
    assert_int_equal(nf__sampler_init(&a, 0, false, false, 9, 0, 0, 1, 1, blocks), -EINVAL);
    assert_int_equal(nf__sampler_init(&a, 0, false, false, 9, 1, 2, 2, 1, blocks), -EINVAL);
}

static void test_determinism_and_epochs(void **state)
{
    (void)state;
    uint32_t *blocks = make_blocks(50, 16);
    struct nf_sampler s, t;
    assert_int_equal(nf__sampler_init(&s, 7, true, false, 64, 10, 0, 1, 50, blocks), 0);
    assert_int_equal(nf__sampler_init(&t, 7, true, false, 64, 10, 0, 1, 50, blocks), 0);
    uint64_t *a = malloc(s.len * 8), *b = malloc(s.len * 8), *c = malloc(s.len * 8);
    assert_int_equal(nf__sampler_epoch_order(&s, 5, a), 0);
    assert_int_equal(nf__sampler_epoch_order(&t, 5, b), 0);
    assert_memory_equal(a, b, s.len * 8); /* same seed, same epoch: same order */
    assert_int_equal(nf__sampler_epoch_order(&s, 6, c), 0);
    assert_memory_not_equal(a, c, s.len * 8); /* next epoch: another order */
    nf__sampler_free(&t);
    assert_int_equal(nf__sampler_init(&t, 8, true, false, 64, 10, 0, 1, 50, blocks), 0);
    assert_int_equal(nf__sampler_epoch_order(&t, 5, b), 0);
    assert_memory_not_equal(a, b, s.len * 8); /* another seed: another order */
    nf__sampler_free(&t);
    /* no shuffle: the dataset's own order, every epoch */
    assert_int_equal(nf__sampler_init(&t, 8, false, false, 64, 10, 0, 1, 50, blocks), 0);
    assert_int_equal(nf__sampler_epoch_order(&t, 9, b), 0);
    for (uint64_t i = 0; i < t.len; i++)
        assert_int_equal(b[i], i);
    /* shuffling moves records between blocks' neighbourhoods: the first
     * 64 positions should not all come from the first blocks */
    uint64_t far = 0;
    for (uint64_t i = 0; i < 64; i++)
        far += a[i] >= 64;
    assert_true(far > 32);
    nf__sampler_free(&t);
    nf__sampler_free(&s);
    free(a);
    free(b);
    free(c);
    free(blocks);
}

/* The walk of nf__plan_span gives every position of every range the
 * block and index the binary search of nf__plan_record gives, with empty
 * blocks (stepped over) at the start, inside and at the end, ranges that
 * cut blocks, and shuffled and unshuffled plans. */
static void test_plan_span_matches_search(void **state)
{
    (void)state;
    enum { NB = 41 };
    uint32_t blocks[NB];
    for (uint32_t i = 0; i < NB; i++)
        blocks[i] = (i % 6 == 0 || i == NB - 1) ? 0 : 1 + (i * 7) % 13;
    uint64_t R = 0;
    for (uint32_t i = 0; i < NB; i++)
        R += blocks[i];
    for (int shuffle = 0; shuffle < 2; shuffle++) {
        for (uint64_t window = 1; window <= 64; window += 9) {
            struct nf_sampler s;
            assert_int_equal(nf__sampler_init(&s, 7, shuffle, false, window, 4, 0, 1, NB, blocks), 0);
            for (uint64_t epoch = 0; epoch < 3; epoch++) {
                struct nf_epoch_plan p = {0};
                assert_int_equal(nf__plan_make(&s, epoch, &p), 0);
                uint32_t *idx = malloc(window * sizeof(*idx));
                uint64_t checked = 0;
                for (uint64_t w = 0; w * window < R; w++) {
                    uint64_t w0 = w * window, len = R - w0 < window ? R - w0 : window;
                    nf__plan_span(&s, &p, w0, len, idx);
                    for (uint64_t j = 0; j < len; j++) {
                        uint32_t b1, i1, b2, i2;
                        uint64_t r1 = nf__plan_record(&s, &p, w0 + j, &b1, &i1);
                        uint64_t r2 = nf__plan_record_at(&s, &p, idx[j], w0 + j, &b2, &i2);
                        if (r1 != r2 || b1 != b2 || i1 != i2)
                            fail_msg("window %llu, position %llu: search gives record %llu (block %u, "
                                     "%u), the span %llu (block %u, %u)", (unsigned long long)w,
                                     (unsigned long long)(w0 + j), (unsigned long long)r1, b1, i1,
                                     (unsigned long long)r2, b2, i2);
                        assert_true(blocks[b2] > 0 && i2 < blocks[b2]);
                        checked++;
                    }
                }
                assert_int_equal(checked, R);
                free(idx);
                nf__plan_free(&p);
            }
            nf__sampler_free(&s);
        }
    }
}

/* Window w starts in [w x C, (w + 1) x C): at the first block boundary at
 * or after w x C when there is one before (w + 1) x C, else at w x C. So
 * where no block holds more than C records, the windows are whole blocks;
 * nf__window_of agrees with the starts; no window holds more than
 * nf__window_max (under 2C); with equal blocks and C a multiple of their
 * records, every window holds exactly C (as windows cut at every C
 * records). */
static void test_windows_are_whole_blocks(void **state)
{
    (void)state;
    enum { NB = 53 };
    uint32_t blocks[NB], equal[NB];
    uint64_t R = 0;
    for (uint32_t i = 0; i < NB; i++) {
        blocks[i] = (i % 7 == 3) ? 0 : 1 + (i * 11) % 29; /* empty ones too */
        equal[i] = 8;
        R += blocks[i];
    }
    static const uint64_t windows[] = {1, 5, 16, 40, 100, 5000};
    for (int shuffle = 0; shuffle < 2; shuffle++)
        for (size_t wi = 0; wi < NF_ARRAY_SIZE(windows); wi++) {
            uint64_t C = windows[wi];
            struct nf_sampler s;
            assert_int_equal(nf__sampler_init(&s, 3, shuffle, false, C, 4, 0, 1, NB, blocks), 0);
            assert_true(nf__window_max(&s) < 2 * C); /* tables follow the configuration */
            for (uint64_t epoch = 0; epoch < 3; epoch++) {
                struct nf_epoch_plan p = {0};
                assert_int_equal(nf__plan_make(&s, epoch, &p), 0);
                uint64_t nwin = (R + C - 1) / C, total = 0;
                assert_int_equal(nf__window_start(&s, &p, 0), 0);
                assert_int_equal(nf__window_start(&s, &p, nwin), R);
                for (uint64_t w = 0; w < nwin; w++) {
                    uint64_t w0 = nf__window_start(&s, &p, w), len = nf__window_len(&s, &p, w);
                    assert_true(w0 >= w * C && (w0 < (w + 1) * C || w0 == R));
                    assert_true(len <= nf__window_max(&s));
                    total += len;
                    bool boundary = false; /* w0 is where some block starts */
                    for (uint32_t i = 0; i <= NB && !boundary; i++)
                        boundary = p.prefix[i] == w0;
                    assert_true(boundary || s.max_block > C);
                    if (!boundary) /* inside a block larger than a window */
                        assert_int_equal(w0, w * C);
                    /* the first boundary at or after w x C; none before
                     * (w + 1) x C when it is not at one */
                    uint64_t none_below = boundary ? w0 : (w + 1) * C;
                    for (uint32_t i = 0; i <= NB; i++)
                        assert_false(p.prefix[i] >= w * C && p.prefix[i] < none_below);
                    for (uint64_t q = w0; q < w0 + len; q++)
                        assert_int_equal(nf__window_of(&s, &p, q), w);
                }
                assert_int_equal(total, R);
                nf__plan_free(&p);
            }
            nf__sampler_free(&s);
            /* equal blocks of 8 records, C a multiple of 8: windows of exactly C */
            if (C % 8)
                continue;
            assert_int_equal(nf__sampler_init(&s, 3, shuffle, false, C, 4, 0, 1, NB, equal), 0);
            struct nf_epoch_plan p = {0};
            assert_int_equal(nf__plan_make(&s, 1, &p), 0);
            for (uint64_t w = 0; w * C < 8 * NB; w++)
                assert_int_equal(nf__window_start(&s, &p, w), w * C);
            nf__plan_free(&p);
            nf__sampler_free(&s);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exactly_once),
        cmocka_unit_test(test_edge_equal_counts),
        cmocka_unit_test(test_determinism_and_epochs),
        cmocka_unit_test(test_plan_span_matches_search),
        cmocka_unit_test(test_windows_are_whole_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
