// SPDX-License-Identifier: Apache-2.0
/* The shard format: each kind of bad input is its own error, with the
 * offending bytes named, and block decoding refuses lying sizes and bombs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>
#include <zstd.h>

#include "io_helpers.h"

struct fx {
    char *tmp, *ds;
    uint8_t *img;
    size_t len;
};

/* Three shards' worth of blocks in one: 40 records of 100 bytes, 10 per
 * block, so there are 4 blocks, zstd-compressed. */
static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->tmp = nf_tmpdir();
    f->ds = nft_make_dataset(f->tmp, "ds", 100, 40, NUMAFEED_CODEC_ZSTD, 1, 1000, 0);
    char *p = nft_shard_path(f->ds, 0);
    f->img = nft_read_file(p, &f->len);
    free(p);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    nf_rmtree(f->tmp);
    free(f->tmp);
    free(f->ds);
    free(f->img);
    free(f);
    return 0;
}

static int load(struct fx *f)
{
    struct nf_shard_index idx;
    int rc = nft_load_image(f->img, f->len, &idx);
    if (rc == 0)
        nf__shard_index_free(&idx);
    return rc;
}

static void expect(struct fx *f, int code, const char *needle)
{
    int rc = load(f);
    if (rc != code || !strstr(numafeed_last_error(), needle))
        fail_msg("got %s (%s), expected %s containing '%s'", numafeed_err_name(rc),
                 numafeed_last_error(), numafeed_err_name(code), needle);
}

static void good_shard_loads(void **state)
{
    struct fx *f = *state;
    struct nf_shard_index idx;
    assert_int_equal(nft_load_image(f->img, f->len, &idx), 0);
    assert_int_equal(idx.nblocks, 4);
    assert_int_equal(idx.records, 40);
    assert_int_equal(idx.record_bytes, 100);
    assert_int_equal(idx.blocks[0].offset, NF_HEADER_BYTES);
    assert_int_equal(idx.blocks[3].first_record, 30);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(idx.blocks[i].codec, NF_CODEC_ZSTD);
        assert_int_equal(idx.blocks[i].decoded_size, 1000);
    }
    nf__shard_index_free(&idx);
}

static void truncated(void **state)
{
    struct fx *f = *state;
    size_t len = f->len;
    f->len = 50;
    expect(f, NUMAFEED_ECORRUPT, "truncated");
    f->len = len - 1;
    expect(f, NUMAFEED_ECORRUPT, "no valid trailer");
    f->len = len;
}

static void bad_magic(void **state)
{
    struct fx *f = *state;
    f->img[1] = 'X';
    expect(f, NUMAFEED_ECORRUPT, "bad magic");
}

static void unknown_version(void **state)
{
    struct fx *f = *state;
    nft_put32(f->img + 8, 3);
    nft_reseal(f->img, f->len);
    expect(f, NUMAFEED_EVERSION, "format version 3");
}

/* Flag bit 0 is NF_SHARD_FLAG_STORED_HASH; every other bit is refused,
 * with the flag set or not. */
static void reserved_bits(void **state)
{
    struct fx *f = *state;
    assert_int_equal(nft_get32(f->img + 12), NF_SHARD_FLAG_STORED_HASH);
    static const uint32_t bad[] = {0x2, 0x80, 0x80000000u, 0xfffffffeu};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[64];
        snprintf(want, sizeof(want), "reserved flag bits set (0x%08x)", bad[i]);
        nft_put32(f->img + 12, bad[i] | NF_SHARD_FLAG_STORED_HASH);
        nft_reseal(f->img, f->len);
        expect(f, NUMAFEED_ECORRUPT, want);
        nft_put32(f->img + 12, bad[i]);
        nft_reseal(f->img, f->len);
        expect(f, NUMAFEED_ECORRUPT, want);
    }
    nft_put32(f->img + 12, 0);
    nft_put64(f->img + 40, 1);
    nft_reseal(f->img, f->len);
    expect(f, NUMAFEED_ECORRUPT, "reserved fields");
}

static void header_checksum(void **state)
{
    struct fx *f = *state;
    f->img[24] ^= 1; /* record size, not resealed */
    expect(f, NUMAFEED_ECHECKSUM, "header at offset 56");
}

static void footer_checksum(void **state)
{
    struct fx *f = *state;
    nft_entry(f->img, f->len, 2)[20] ^= 1;
    expect(f, NUMAFEED_ECHECKSUM, "footer at offset");
}

static void trailer_footer_range(void **state)
{
    struct fx *f = *state;
    uint8_t *t = f->img + f->len - NF_TRAILER_BYTES;
    nft_put64(t, nft_get64(t) + 32); /* footer offset moved */
    expect(f, NUMAFEED_ECORRUPT, "does not end where the trailer starts");
}

static void offset_outside(void **state)
{
    struct fx *f = *state;
    uint8_t *e = nft_entry(f->img, f->len, 3);
    nft_put64(e, nft_footer_offset(f->img, f->len) - 1);
    nft_reseal(f->img, f->len);
    expect(f, NUMAFEED_ECORRUPT, "block 3");
    expect(f, NUMAFEED_ECORRUPT, "past the data region");
    nft_put64(e, 10);
    nft_reseal(f->img, f->len);
    expect(f, NUMAFEED_ECORRUPT, "inside the header");
}

static void overlapping(void **state)
{
    struct fx *f = *state;
    uint8_t *e1 = nft_entry(f->img, f->len, 1);
    nft_put64(e1, nft_get64(e1) - 1);
    nft_reseal(f->img, f->len);
    expect(f, NUMAFEED_ECORRUPT, "block 1");
    expect(f, NUMAFEED_ECORRUPT, "overlaps the previous one");
}

static void decoded_above_cap(void **state)
{
    struct fx *f = *state;
    uint8_t *e = nft_entry(f->img, f->len, 0);
    nft_put32(e + 12, NF_BLOCK_CAP + 100);
    nft_reseal(f->img, f->len);
    expect(f, NUMAFEED_ECORRUPT, "block cap");
}

static void decoded_not_records(void **state)
{
    struct fx *f = *state;
    uint8_t *e = nft_entry(f->img, f->len, 0);
    nft_put32(e + 12, 999);
    nft_reseal(f->img, f->len);
    expect(f, NUMAFEED_ECORRUPT, "records times record size");
}

static void record_count_footer(void **state)
{
    struct fx *f = *state;
    uint8_t *head = f->img + nft_footer_offset(f->img, f->len);
    nft_put64(head + 8, 41);
    nft_reseal(f->img, f->len);
    expect(f, NUMAFEED_ECORRUPT, "blocks hold 40 records, footer says 41");
}

static void unknown_codec(void **state)
{
    struct fx *f = *state;
    nft_put32(nft_entry(f->img, f->len, 1) + 20, 7);
    nft_reseal(f->img, f->len);
    expect(f, NUMAFEED_ECORRUPT, "unknown codec");
}

static void raw_stored_differs(void **state)
{
    struct fx *f = *state;
    nft_put32(nft_entry(f->img, f->len, 0) + 20, NF_CODEC_RAW);
    nft_reseal(f->img, f->len);
    expect(f, NUMAFEED_ECORRUPT, "raw block whose stored size differs");
}

static void short_pread_at_eof(void **state)
{
    (void)state;
    int fd = nft_memfd("abc", 3);
    char buf[8];
    assert_int_equal(nf__pread_full(fd, buf, 8, 0, "tiny"), NUMAFEED_ECORRUPT);
    assert_non_null(strstr(numafeed_last_error(), "tiny: short read at offset 3"));
    close(fd);
}

/* ---- block decoding ---- */

static size_t compress(void *dst, size_t cap, const void *src, size_t len, int content_size)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, content_size);
    size_t n = ZSTD_compress2(c, dst, cap, src, len);
    ZSTD_freeCCtx(c);
    assert_false(ZSTD_isError(n));
    return n;
}

static void decode_ok_and_lies(void **state)
{
    (void)state;
    enum { N = 4096 };
    uint8_t *src = calloc(1, N), *dst = malloc(N), *z = malloc(ZSTD_compressBound(N));
    nft_pattern(src, 0, N / 16, 16, 1);
    size_t zn = compress(z, ZSTD_compressBound(N), src, N, 1);
    struct nf_block_info b = {64, (uint32_t)zn, N, N / 16, NF_CODEC_ZSTD, XXH3_64bits(src, N), 0, 0};
    ZSTD_DCtx *d = ZSTD_createDCtx();
    assert_int_equal(nf__block_decode(d, "s", 0, &b, z, dst, N), 0);
    assert_memory_equal(src, dst, N);

    /* the index claims fewer bytes than the frame declares */
    struct nf_block_info lie = b;
    lie.decoded_size = N - 16;
    assert_int_equal(nf__block_decode(d, "s", 5, &lie, z, dst, N), NUMAFEED_ECORRUPT);
    assert_non_null(strstr(numafeed_last_error(), "s: block 5 at offset 64: zstd frame declares 4096"));

    /* stored size disagreeing with the frame's length */
    lie = b;
    lie.stored_size = (uint32_t)zn - 1;
    assert_int_equal(nf__block_decode(d, "s", 0, &lie, z, dst, N), NUMAFEED_ECORRUPT);

    /* wrong hash in the index */
    lie = b;
    lie.xxh3 ^= 1;
    assert_int_equal(nf__block_decode(d, "s", 0, &lie, z, dst, N), NUMAFEED_ECHECKSUM);

    /* zstd's own frame checksum (the last 4 bytes) */
    z[zn - 1] ^= 0x55;
    assert_int_equal(nf__block_decode(d, "s", 0, &b, z, dst, N), NUMAFEED_ECHECKSUM);
    assert_non_null(strstr(numafeed_last_error(), "zstd"));

    /* raw block verified in place */
    struct nf_block_info raw = {64, N, N, N / 16, NF_CODEC_RAW, XXH3_64bits(src, N), 0, 0};
    assert_int_equal(nf__block_decode(NULL, "s", 0, &raw, src, src, N), 0);
    src[7] ^= 1;
    assert_int_equal(nf__block_decode(NULL, "s", 0, &raw, src, src, N), NUMAFEED_ECHECKSUM);

    /* destination smaller than the index says */
    assert_int_equal(nf__block_decode(d, "s", 0, &b, z, dst, N - 1), -EINVAL);
    ZSTD_freeDCtx(d);
    free(src);
    free(dst);
    free(z);
}

/* A frame that expands far beyond the index, with no declared size or a
 * declared one: refused, and the destination (exactly the index's size)
 * is never overrun (asan). */
static void decode_bomb(void **state)
{
    (void)state;
    enum { BIG = 1 << 20, SMALL = 4096 };
    uint8_t *zeros = calloc(1, BIG), *z = malloc(ZSTD_compressBound(BIG));
    size_t zn = compress(z, ZSTD_compressBound(BIG), zeros, BIG, 0);
    assert_int_equal(ZSTD_getFrameContentSize(z, zn), ZSTD_CONTENTSIZE_UNKNOWN);
    uint8_t *dst = malloc(SMALL);
    struct nf_block_info b = {4096, (uint32_t)zn, SMALL, SMALL, NF_CODEC_ZSTD,
                              XXH3_64bits(zeros, SMALL), 0, 0};
    ZSTD_DCtx *d = ZSTD_createDCtx();
    assert_int_equal(nf__block_decode(d, "bomb", 2, &b, z, dst, SMALL), NUMAFEED_ECORRUPT);
    assert_non_null(strstr(numafeed_last_error(), "bomb: block 2 at offset 4096"));
    /* the same bomb declaring its true size is refused as a lie */
    zn = compress(z, ZSTD_compressBound(BIG), zeros, BIG, 1);
    b.stored_size = (uint32_t)zn;
    assert_int_equal(nf__block_decode(d, "bomb", 2, &b, z, dst, SMALL), NUMAFEED_ECORRUPT);
    assert_non_null(strstr(numafeed_last_error(), "declares 1048576 bytes"));
    ZSTD_freeDCtx(d);
    free(zeros);
    free(z);
    free(dst);
}

/* A version 1 dataset written by numafeed 0.1 and committed: if the format changes
 * without a version bump, this stops reading. Record i holds
 * uint32 a[2] = {i, 2i} and float32 b[2] = {i + 0.5, -i}. */
static void committed_fixture(void **state)
{
    (void)state;
    struct nf_dataset *ds;
    if (nf__dataset_open(nf_fixture("shards/v1"), NULL, &ds))
        fail_msg("%s", numafeed_last_error());
    assert_int_equal(nf__dataset_records(ds), 40);
    assert_int_equal(nf__dataset_shard_count(ds), 2);
    const struct nf_layout *l = nf__dataset_layout(ds);
    assert_int_equal(l->nfields, 2);
    assert_string_equal(l->fields[1].name, "b");
    assert_string_equal(nf__dtype_name(l->fields[1].dtype), "float32");
    struct nf_reader *r;
    assert_int_equal(nf__reader_create(ds, NULL, &r), 0);
    uint8_t buf[256], blk[256], rec[16];
    for (uint32_t i = 0; i < 40; i++) {
        assert_int_equal(nf__reader_read_record(r, i, buf, sizeof(buf), blk, sizeof(blk), rec), 0);
        uint32_t a[2];
        float b[2];
        memcpy(a, rec, 8);
        memcpy(b, rec + 8, 8);
        assert_int_equal(a[0], i);
        assert_int_equal(a[1], 2 * i);
        assert_true(b[0] == (float)i + 0.5f && b[1] == -(float)i);
    }
    nf__reader_destroy(r);
    nf__dataset_close(ds);
    struct nf_check_summary sum;
    assert_int_equal(nf__check_dataset(nf_fixture("shards/v1"), 0, NULL, NULL, &sum), 0);
    assert_int_equal(sum.blocks, 5);
}

/* File k (0..11) of the tree packed into shards/v2: 37k bytes, noise from
 * an LCG when k % 4 == 3 (its block stays raw), else runs of 8 equal bytes. */
static void v2_file(unsigned k, uint8_t *out)
{
    uint32_t x = k;
    for (unsigned j = 0; j < 37 * k; j++) {
        x = (x * 1103515245u + 12345u) & 0x7fffffffu;
        out[j] = k % 4 == 3 ? (uint8_t)(x >> 16) : (uint8_t)(k * 31 + j / 8);
    }
}

/* A version 2 dataset written with header flags 0 (no stored-block
 * hashes) and committed: `numafeed pack --from files --block-bytes 256 --shard-bytes
 * 700` of a tree a/00..a/05, b/06..b/11 whose file k is v2_file(k). Two
 * shards, zstd and raw blocks, a length table, flags 0. */
static void committed_fixture_v2(void **state)
{
    (void)state;
    struct nf_dataset *ds;
    if (nf__dataset_open(nf_fixture("shards/v2"), NULL, &ds))
        fail_msg("%s", numafeed_last_error());
    assert_int_equal(nf__dataset_records(ds), 12);
    assert_int_equal(nf__dataset_shard_count(ds), 2);
    const struct nf_layout *l = nf__dataset_layout(ds);
    assert_int_equal(l->nvar, 2);
    const uint32_t *len = nf__dataset_var_len(ds);
    struct nf_reader *r;
    assert_int_equal(nf__reader_create(ds, NULL, &r), 0);
    uint8_t buf[1024], blk[1024], rec[1024], want[512];
    for (uint32_t k = 0; k < 12; k++) {
        assert_int_equal(nf__dataset_record_size(ds, k), 8 + len[2 * k] + len[2 * k + 1]);
        assert_int_equal(nf__reader_read_record(r, k, buf, sizeof(buf), blk, sizeof(blk), rec), 0);
        int64_t label;
        memcpy(&label, rec, 8);
        assert_int_equal(label, k / 6);
        char key[8];
        snprintf(key, sizeof(key), "%c/%02u", "ab"[k / 6], k);
        assert_int_equal(len[2 * k], strlen(key));
        assert_memory_equal(rec + 8, key, strlen(key));
        assert_int_equal(len[2 * k + 1], 37 * k);
        v2_file(k, want);
        assert_memory_equal(rec + 8 + len[2 * k], want, 37 * k);
    }
    nf__reader_destroy(r);
    nf__dataset_close(ds);
    struct nf_check_summary sum;
    assert_int_equal(nf__check_dataset(nf_fixture("shards/v2"), 0, NULL, NULL, &sum), 0);
    assert_int_equal(sum.blocks, 10);
    assert_true(sum.zstd_blocks > 0 && sum.raw_blocks > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(good_shard_loads, setup, teardown),
        cmocka_unit_test_setup_teardown(truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_magic, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_version, setup, teardown),
        cmocka_unit_test_setup_teardown(reserved_bits, setup, teardown),
        cmocka_unit_test_setup_teardown(header_checksum, setup, teardown),
        cmocka_unit_test_setup_teardown(footer_checksum, setup, teardown),
        cmocka_unit_test_setup_teardown(trailer_footer_range, setup, teardown),
        cmocka_unit_test_setup_teardown(offset_outside, setup, teardown),
        cmocka_unit_test_setup_teardown(overlapping, setup, teardown),
        cmocka_unit_test_setup_teardown(decoded_above_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(decoded_not_records, setup, teardown),
        cmocka_unit_test_setup_teardown(record_count_footer, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_codec, setup, teardown),
        cmocka_unit_test_setup_teardown(raw_stored_differs, setup, teardown),
        cmocka_unit_test(short_pread_at_eof),
        cmocka_unit_test(decode_ok_and_lies),
        cmocka_unit_test(decode_bomb),
        cmocka_unit_test(committed_fixture),
        cmocka_unit_test(committed_fixture_v2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
