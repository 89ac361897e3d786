// SPDX-License-Identifier: Apache-2.0
/*
 * GPU decode's arithmetic (src/loader/gpu_plan.c) on the CPU: the bounds
 * hold for every unit the sampler makes (random block structures, windows,
 * epochs, parts), overflow is refused, a unit's blocks are placed aligned
 * and apart, the header points where the data will be, and one record's
 * copies put every field where the CPU path puts it (fixed and variable
 * fields, applied to host buffers standing in for device memory).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "internal.h"
#include "loader/gpu_plan.h"
#include "loader/sampler.h"

static uint64_t rnd_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* Every unit of every part for a few epochs: blocks touched and their
 * decoded bytes within the bounds for `window` records. */
static void test_bounds_hold(void **state)
{
    (void)state;
    for (int round = 0; round < 60; round++) {
        uint32_t nblocks = 1 + (uint32_t)(rnd() % 200);
        uint32_t *recs = malloc(nblocks * sizeof(*recs));
        uint64_t rb = 1 + rnd() % 300, max_dec = 0, total = 0, max_recs = 0;
        for (uint32_t b = 0; b < nblocks; b++) {
            recs[b] = 1 + (uint32_t)(rnd() % 40);
            max_dec = recs[b] * rb > max_dec ? recs[b] * rb : max_dec;
            max_recs = recs[b] > max_recs ? recs[b] : max_recs;
            total += recs[b];
        }
        uint64_t window = 1 + rnd() % (total + 20), parts = 1 + rnd() % 3;
        if (total < parts)
            parts = 1;
        /* a unit's records: its window's, which ends at a block boundary
         * unless that block is larger than a window */
        uint64_t big = max_recs < window ? max_recs : window;
        uint64_t unit = window + big - 1 < total ? window + big - 1 : total;
        struct nf_gplan_input in = {unit, unit * rb, max_dec, nblocks, 1};
        struct nf_gplan_sizes sz;
        assert_int_equal(nf__gplan_bounds(&in, &sz), 0);
        assert_int_equal(nf__gplan_size(&sz, 1000), 0);
        for (uint64_t part = 0; part < parts; part++) {
            struct nf_sampler s;
            assert_int_equal(nf__sampler_init(&s, rnd(), true, true, window, 8, part, parts,
                                              nblocks, recs), 0);
            struct nf_epoch_plan plan = {0};
            uint8_t *seen = calloc(nblocks, 1);
            uint32_t *sigma = malloc(nf__window_max(&s) * sizeof(*sigma));
            for (uint64_t epoch = 0; epoch < 3; epoch++) {
                assert_int_equal(nf__plan_make(&s, epoch, &plan), 0);
                for (uint64_t w = s.first_window; w < s.first_window + s.nwindows; w++) {
                    uint64_t w0 = nf__window_start(&s, &plan, w), wl = nf__window_len(&s, &plan, w);
                    uint64_t a = w0 > s.start ? w0 : s.start;
                    uint64_t e = w0 + wl < s.start + s.len ? w0 + wl : s.start + s.len;
                    uint32_t nb = 0;
                    uint64_t dec = 0;
                    memset(seen, 0, nblocks);
                    /* as the worker's plan_unit: final position q holds
                     * the record at block-order position w0 + sigma[q - w0]
                     * (a unit cut by its part is a subset of its window) */
                    nf__window_perm(&s, epoch, w, sigma, wl);
                    for (uint64_t q = a; q < e; q++) {
                        uint32_t blk, k;
                        nf__plan_record(&s, &plan, w0 + sigma[q - w0], &blk, &k);
                        if (!seen[blk]) {
                            seen[blk] = 1;
                            nb++;
                            dec += recs[blk] * rb;
                        }
                    }
                    assert_true(nb <= sz.max_blocks);
                    assert_true(dec + nb * NF_GALIGN <= sz.arena);
                    assert_true(a >= e || e - a <= unit);
                }
            }
            free(seen);
            free(sigma);
            nf__plan_free(&plan);
            nf__sampler_free(&s);
        }
        free(recs);
    }
}

static void test_overflow(void **state)
{
    (void)state;
    struct nf_gplan_sizes sz;
    struct nf_gplan_input in = {UINT64_C(1) << 40, UINT64_MAX - 100, 256u << 20, 1u << 30, 256};
    assert_int_equal(nf__gplan_bounds(&in, &sz), -EOVERFLOW);
    in.records_bytes = 1000;
    in.nfields = 256;
    in.window = UINT64_C(1) << 60; /* its gather list */
    assert_int_equal(nf__gplan_bounds(&in, &sz), -EOVERFLOW);
    in = (struct nf_gplan_input){1000, 1000, 4096, 10, 1};
    assert_int_equal(nf__gplan_bounds(&in, &sz), 0);
    assert_int_equal(sz.max_blocks, 10);
    assert_int_equal(sz.max_copies, 1000);
    assert_int_equal(nf__gplan_size(&sz, SIZE_MAX - 10), -EOVERFLOW);
}

/* Blocks of a unit: aligned, apart, zstd ones numbered, raw ones in place. */
static void test_place_and_header(void **state)
{
    (void)state;
    struct nf_block_info b[5] = {
        {.stored_size = 100, .decoded_size = 400, .codec = NF_CODEC_ZSTD, .xxh3 = 1},
        {.stored_size = 77, .decoded_size = 77, .codec = NF_CODEC_RAW, .xxh3 = 2},
        {.stored_size = 1, .decoded_size = 5000, .codec = NF_CODEC_ZSTD, .xxh3 = 3,
         .stored_xxh3 = 33},
        {.stored_size = 300, .decoded_size = 300, .codec = NF_CODEC_RAW, .xxh3 = 4},
        {.stored_size = 65, .decoded_size = 64, .codec = NF_CODEC_ZSTD, .xxh3 = 5},
    };
    const struct nf_block_info *bi[5] = {&b[0], &b[1], &b[2], &b[3], &b[4]};
    struct nf_gplan_input in = {100, 100 * 64, 5000, 5, 2};
    struct nf_gplan_sizes sz;
    assert_int_equal(nf__gplan_bounds(&in, &sz), 0);
    assert_int_equal(nf__gplan_size(&sz, 4096), 0);
    struct nf_gblk blk[5];
    struct nf_gunit u;
    assert_int_equal(nf__gplan_place(bi, 5, 40, &sz, blk, &u), 0);
    assert_int_equal(u.nz, 3);
    uint32_t zi[5] = {0, UINT32_MAX, 1, UINT32_MAX, 2};
    for (int k = 0; k < 5; k++) {
        assert_int_equal(blk[k].zi, zi[k]);
        assert_int_equal(blk[k].in_off % NF_GALIGN, 0);
        if (k)
            assert_true(blk[k].in_off >= blk[k - 1].in_off + b[k - 1].stored_size);
        if (zi[k] == UINT32_MAX)
            assert_int_equal(blk[k].out_off, SIZE_MAX);
        else
            assert_int_equal(blk[k].out_off % NF_GALIGN, 0);
    }
    assert_true(blk[2].out_off >= blk[0].out_off + 400);
    assert_true(blk[4].out_off >= blk[2].out_off + 5000);
    assert_int_equal(u.end, u.stored_off + blk[4].in_off + 65);
    assert_true(u.copies_off + 40 * sizeof(struct nf_gpu_copy) <= u.stored_off);
    assert_true(u.end <= sz.host_res_off && sz.host_res_off + 5 * 16 <= sz.host_bytes);
    assert_true(sz.dev_temp_off + 4096 <= sz.dev_bytes);

    uint8_t *host = calloc(1, sz.host_bytes), *dev = (uint8_t *)(uintptr_t)0x7f0000000000ull;
    nf__gplan_header(bi, blk, &u, &sz, host, dev, false);
    const struct nf_gpu_block *d = (const void *)(host + u.blocks_off);
    assert_null(d[2].screened); /* staged: the host checked the stored bytes */
    assert_ptr_equal(d[1].data, dev + u.stored_off + blk[1].in_off); /* raw: in place */
    assert_null(d[1].status);
    assert_ptr_equal(d[2].data, dev + sz.dev_arena_off + blk[2].out_off);
    assert_int_equal(d[2].len, 5000);
    assert_int_equal(d[2].xxh3, 3);
    assert_ptr_equal(d[2].status, (const int32_t *)(const void *)(dev + sz.dev_status_off) + 1);
    assert_ptr_equal(d[4].actual, (const uint64_t *)(const void *)(dev + sz.dev_actual_off) + 2);
    const void *const *in_ptrs = (const void *)(host + u.in_ptrs_off);
    const size_t *in_bytes = (const void *)(host + u.in_bytes_off);
    const size_t *out_bytes = (const void *)(host + u.out_bytes_off);
    assert_ptr_equal(in_ptrs[1], dev + u.stored_off + blk[2].in_off);
    assert_int_equal(in_bytes[1], 1);
    assert_int_equal(out_bytes[2], 64);
    /* screened (copy direct): each zstd block's stored bytes, its stored
     * hash, nvCOMP's input slots for it, the stand-in and its finding,
     * which the block's descriptor consults; raw blocks are not screened */
    sz.safe_len = 9;
    nf__gplan_header(bi, blk, &u, &sz, host, dev, true);
    const struct nf_gpu_screen *sc = (const void *)(host + u.screens_off);
    assert_true(u.screens_off + 3 * sizeof(*sc) <= u.copies_off);
    assert_ptr_equal(sc[1].data, dev + u.stored_off + blk[2].in_off);
    assert_int_equal(sc[1].len, 1);
    assert_int_equal(sc[1].xxh3, 33);
    assert_ptr_equal(sc[1].in_ptr, (const void **)(void *)(dev + u.in_ptrs_off) + 1);
    assert_ptr_equal(sc[1].in_bytes, (uint64_t *)(void *)(dev + u.in_bytes_off) + 1);
    assert_ptr_equal(sc[1].safe, dev + sz.dev_safe_off);
    assert_int_equal(sc[1].safe_len, 9);
    assert_ptr_equal(sc[1].found, (uint64_t *)(void *)(dev + sz.dev_found_off) + 1);
    assert_ptr_equal(d[2].screened, sc[1].found);
    assert_null(d[1].screened);
    assert_true(sz.dev_safe_off + NF_GSAFE_MAX <= sz.dev_temp_off);
    free(host);

    /* more blocks or copies than the bounds: refused, never overrun */
    assert_int_equal(nf__gplan_place(bi, 5, sz.max_copies + 1, &sz, blk, &u), -ENOSPC);
    sz.max_blocks = 4;
    assert_int_equal(nf__gplan_place(bi, 5, 1, &sz, blk, &u), -ENOSPC);
}

/* One record's copies, applied to host buffers: fields where the CPU path
 * puts them (field-major fixed fields from fixed_base, variable values at
 * their offsets). */
static void test_record_copies(void **state)
{
    (void)state;
    struct numafeed_field f[4] = {
        {.name = "a", .dtype = "int32", .ndim = 1, .shape = {3}},
        {.name = "s", .dtype = "str"},
        {.name = "b", .dtype = "uint8"},
        {.name = "t", .dtype = "int16", .ndim = 1, .shape = {NUMAFEED_VARIABLE}},
    };
    struct nf_layout lay;
    assert_int_equal(nf__layout_build(f, 4, &lay), 0);
    assert_int_equal(lay.record_bytes, 13);
    enum { B = 4 };
    size_t var_vals[2] = {512, 1024};
    struct nf_gslot g = {&lay, B, 128, var_vals};
    /* the batch's offsets: s has 3, 0, 5, 1 bytes; t 2, 1, 0, 4 elements */
    int64_t bo[2 * (B + 1)] = {0, 3, 3, 8, 9, 0, 2, 3, 3, 7};
    uint8_t rec[13 + 5 + 6], slot[2048];
    for (size_t i = 0; i < sizeof(rec); i++)
        rec[i] = (uint8_t)(i + 1);
    memset(slot, 0, sizeof(slot));
    struct nf_gpu_copy c[4];
    /* record at place 2: s has 5 bytes, t none */
    unsigned n = nf__gplan_record(&g, slot, 2, rec, bo, c);
    assert_int_equal(n, 3); /* t is empty: no copy */
    for (unsigned k = 0; k < n; k++)
        memcpy(c[k].dst, c[k].src, c[k].len);
    assert_memory_equal(slot + 128 + 0 * B + 2 * 12, rec, 12);       /* a */
    assert_int_equal(slot[128 + 12 * B + 2], rec[12]);               /* b */
    assert_memory_equal(slot + 512 + 3, rec + 13, 5);                 /* s */
    /* record at place 3: s 1 byte, t 4 elements (8 bytes) */
    n = nf__gplan_record(&g, slot, 3, rec, bo, c);
    assert_int_equal(n, 4);
    assert_ptr_equal(c[1].src, rec + 13);
    assert_int_equal(c[1].len, 1);
    assert_ptr_equal(c[3].src, rec + 14);
    assert_ptr_equal(c[3].dst, slot + 1024 + 3 * 2);
    assert_int_equal(c[3].len, 8);
    nf__layout_free(&lay);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds_hold),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_place_and_header),
        cmocka_unit_test(test_record_copies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
