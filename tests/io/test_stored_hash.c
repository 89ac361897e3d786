// SPDX-License-Identifier: Apache-2.0
/*
 * Stored-block hashes (header flag NF_SHARD_FLAG_STORED_HASH): every shard
 * the writer makes carries them, in the right place and with the right
 * values; shards without them (flag 0, no table) read and check as they are;
 * the footer's size must count the table exactly; nf__dataset_check_stored_hash
 * and `numafeed check` refuse damaged stored bytes before anything decodes
 * them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>
#include <zstd.h>

#include "io_helpers.h"

static char *tmp;

static int setup(void **state)
{
    (void)state;
    tmp = nf_tmpdir();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nf_rmtree(tmp);
    free(tmp);
    return 0;
}

/* A version 2 dataset: a str key and an int32 run per record, plus a fixed
 * label; compressible runs (zstd blocks) and noise (raw blocks). */
static char *make_v2(const char *name, uint64_t shard_bytes)
{
    char *path;
    assert_true(asprintf(&path, "%s/%s", tmp, name) > 0);
    struct numafeed_field f[3] = {{"key", "str", 0, {0}},
                                  {"label", "int64", 0, {0}},
                                  {"tokens", "int32", 1, {NUMAFEED_VARIABLE}}};
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.block_bytes = 512;
    o.shard_bytes = shard_bytes;
    numafeed_writer *w;
    assert_int_equal(numafeed_writer_create(path, f, 3, &o, &w), 0);
    uint8_t tok[4 * 64];
    for (uint32_t i = 0; i < 60; i++) {
        char key[16];
        int klen = snprintf(key, sizeof(key), "r%u", i);
        int64_t label = i % 3;
        int noise = (i / 20) % 2; /* records 20..39: long runs of noise */
        size_t n = noise ? 64 : i % 17;
        nft_pattern(tok, i, n, 4, !noise);
        const void *d[3] = {key, &label, tok};
        size_t sz[3] = {(size_t)klen, 8, 4 * n};
        assert_int_equal(numafeed_writer_add(w, d, sz), 0);
    }
    assert_int_equal(numafeed_writer_finish(w), 0);
    numafeed_writer_destroy(w);
    return path;
}

/* Every shard of dataset dir: the flag set, the footer's size by the rule
 * with the table, the table last in the footer, and each entry the XXH3 of
 * the block's bytes in the file. Counts the raw and zstd blocks seen. */
static void expect_table(const char *dir, uint32_t *raw, uint32_t *zstd)
{
    struct nf_dataset *ds;
    assert_int_equal(nf__dataset_open(dir, NULL, &ds), 0);
    assert_true(nf__dataset_stored_hashes(ds));
    for (uint32_t s = 0; s < nf__dataset_shard_count(ds); s++) {
        const struct nf_shard_index *idx = nf__dataset_shard_index(ds, s);
        size_t len;
        uint8_t *img = nft_read_file(nf__dataset_shard_path(ds, s), &len);
        assert_int_equal(nft_get32(img + 12), NF_SHARD_FLAG_STORED_HASH);
        assert_true(idx->stored_hashes);
        uint64_t fsize = nft_get64(img + len - NF_TRAILER_BYTES + 8);
        uint64_t nvar = nf__dataset_layout(ds)->nvar;
        assert_int_equal(fsize, 16 + 32 * (uint64_t)idx->nblocks + 4 * idx->records * nvar +
                                    8 * (uint64_t)idx->nblocks);
        const uint8_t *table = img + len - NF_TRAILER_BYTES - 8 * (size_t)idx->nblocks;
        for (uint32_t b = 0; b < idx->nblocks; b++) {
            const struct nf_block_info *bi = &idx->blocks[b];
            uint64_t h = XXH3_64bits(img + bi->offset, bi->stored_size);
            assert_int_equal(bi->stored_xxh3, h);
            assert_int_equal(nft_get64(table + 8 * b), h);
            if (bi->codec == NF_CODEC_RAW) {
                assert_int_equal(bi->stored_xxh3, bi->xxh3);
                (*raw)++;
            } else {
                (*zstd)++;
            }
        }
        free(img);
    }
    nf__dataset_close(ds);
    struct nf_check_summary sum;
    assert_int_equal(nf__check_dataset(dir, 0, NULL, NULL, &sum), 0);
    assert_int_equal(sum.stored_hash_shards, sum.shards);
}

static void writer_writes_table(void **state)
{
    (void)state;
    /* version 1 over several shards, noise (zstd does not shrink it: raw
     * blocks), codec none, and version 2 (the table after the lengths),
     * with zstd and raw blocks */
    char *dirs[4] = {
        nft_make_dataset(tmp, "tokens", 40, 300, NUMAFEED_CODEC_ZSTD, 1, 400, 2000),
        nft_make_dataset(tmp, "noise", 40, 50, NUMAFEED_CODEC_ZSTD, 0, 400, 0),
        nft_make_dataset(tmp, "none", 40, 50, NUMAFEED_CODEC_NONE, 1, 400, 0),
        make_v2("v2", 1500),
    };
    for (int k = 0; k < 4; k++) {
        uint32_t raw = 0, zstd = 0;
        expect_table(dirs[k], &raw, &zstd);
        assert_true(k == 0 ? zstd > 0 : k == 2 ? raw > 0 && zstd == 0 : raw > 0);
        if (k == 3)
            assert_true(zstd > 0);
        free(dirs[k]);
    }
}

/* Shards without the flag: the committed fixtures (v1 and v2) and writer
 * shards with their table cut out. They open, read and check; nothing
 * claims a stored hash for them. */
static void old_shards_read(void **state)
{
    (void)state;
    static const char *const fixtures[] = {"shards/v1", "shards/v2"};
    for (int k = 0; k < 2; k++) {
        const char *dir = nf_fixture(fixtures[k]);
        struct nf_dataset *ds;
        if (nf__dataset_open(dir, NULL, &ds))
            fail_msg("%s: %s", dir, numafeed_last_error());
        assert_false(nf__dataset_stored_hashes(ds));
        for (uint32_t s = 0; s < nf__dataset_shard_count(ds); s++) {
            const struct nf_shard_index *idx = nf__dataset_shard_index(ds, s);
            assert_false(idx->stored_hashes);
            for (uint32_t b = 0; b < idx->nblocks; b++)
                assert_int_equal(idx->blocks[b].stored_xxh3, 0);
        }
        uint8_t dummy[1] = {0};
        assert_int_equal(nf__dataset_check_stored_hash(ds, 0, dummy), -ENOTSUP);
        assert_non_null(strstr(numafeed_last_error(), "shard-00000.nfs: block 0 at offset 64: "
                                                      "the shard keeps no hashes"));
        nf__dataset_close(ds);
        struct nf_check_summary sum;
        assert_int_equal(nf__check_dataset(dir, 0, NULL, NULL, &sum), 0);
        assert_int_equal(sum.stored_hash_shards, 0);
        assert_int_equal(sum.shards, 2);
    }
    /* cut out of writer shards, v1 and v2: they load and every block decodes */
    char *v1 = nft_make_dataset(tmp, "cut1", 40, 100, NUMAFEED_CODEC_ZSTD, 1, 400, 0);
    char *v2 = make_v2("cut2", 0);
    for (int k = 0; k < 2; k++) {
        char *p = nft_shard_path(k ? v2 : v1, 0);
        size_t len;
        uint8_t *img = nft_read_file(p, &len);
        len = nft_strip_stored_hashes(img, len);
        struct nf_shard_index idx;
        if (nft_load_image(img, len, &idx))
            fail_msg("%s without its table: %s", p, numafeed_last_error());
        assert_false(idx.stored_hashes);
        ZSTD_DCtx *dctx = ZSTD_createDCtx();
        uint8_t *out = malloc(idx.max_decoded);
        for (uint32_t b = 0; b < idx.nblocks; b++) {
            assert_int_equal(idx.blocks[b].stored_xxh3, 0);
            assert_int_equal(nf__block_decode(dctx, p, b, &idx.blocks[b], img + idx.blocks[b].offset,
                                              out, idx.max_decoded),
                             0);
        }
        free(out);
        ZSTD_freeDCtx(dctx);
        nf__shard_index_free(&idx);
        free(img);
        free(p);
    }
    free(v1);
    free(v2);
}

/* A dataset whose shards differ (one without the table, as if copied in
 * from another dataset) has stored hashes only where they are: the
 * dataset as a whole does not. */
static void one_shard_without_table(void **state)
{
    (void)state;
    char *d = nft_make_dataset(tmp, "partly", 40, 300, NUMAFEED_CODEC_ZSTD, 1, 400, 2000);
    char *p = nft_shard_path(d, 1);
    size_t len, cut;
    uint8_t *img = nft_read_file(p, &len);
    cut = nft_strip_stored_hashes(img, len);
    assert_int_equal(nf_write_file(p, img, cut), 0);
    char from[64], to[64];
    snprintf(from, sizeof(from), "\"bytes\": %zu", len);
    snprintf(to, sizeof(to), "\"bytes\": %zu", cut);
    nft_rewrite_manifest(d, "shard-00001.nfs", from, to);
    struct nf_dataset *ds;
    if (nf__dataset_open(d, NULL, &ds))
        fail_msg("%s", numafeed_last_error());
    assert_true(nf__dataset_shard_count(ds) > 2);
    assert_false(nf__dataset_stored_hashes(ds));
    assert_true(nf__dataset_shard_index(ds, 0)->stored_hashes);
    assert_false(nf__dataset_shard_index(ds, 1)->stored_hashes);
    assert_true(nf__dataset_shard_index(ds, 2)->stored_hashes);
    nf__dataset_close(ds);
    struct nf_check_summary sum;
    /* the manifest's content hash of shard 1 is stale: one problem, no other */
    assert_int_equal(nf__check_dataset(d, 0, NULL, NULL, &sum), 1);
    assert_int_equal(sum.stored_hash_shards, sum.shards - 1);
    free(img);
    free(p);
    free(d);
}

/* The loader's check: good stored bytes pass, one flipped bit is refused
 * with the shard's path, the block within its shard, its offset and both
 * hashes. */
static void dataset_check_stored_hash(void **state)
{
    (void)state;
    char *d = nft_make_dataset(tmp, "loader", 40, 300, NUMAFEED_CODEC_ZSTD, 1, 400, 2000);
    struct nf_dataset *ds;
    assert_int_equal(nf__dataset_open(d, NULL, &ds), 0);
    uint32_t n = nf__dataset_blocks(ds);
    assert_true(nf__dataset_shard_count(ds) > 1);
    for (uint32_t g = 0; g < n; g++) {
        uint32_t s, blk;
        const struct nf_block_info *b = nf__dataset_block(ds, g, &s, &blk);
        size_t len;
        uint8_t *img = nft_read_file(nf__dataset_shard_path(ds, s), &len);
        uint8_t *stored = malloc(b->stored_size); /* exactly: asan sees an overread */
        memcpy(stored, img + b->offset, b->stored_size);
        assert_int_equal(nf__dataset_check_stored_hash(ds, g, stored), 0);
        for (uint32_t at = 0; at < b->stored_size; at += b->stored_size / 3 + 1) {
            stored[at] ^= 0x08;
            assert_int_equal(nf__dataset_check_stored_hash(ds, g, stored), NUMAFEED_ECHECKSUM);
            char want[512];
            snprintf(want, sizeof(want),
                     "%s: block %u at offset %llu: stored bytes hash to %016llx, the index "
                     "says %016llx",
                     nf__dataset_shard_path(ds, s), blk, (unsigned long long)b->offset,
                     (unsigned long long)XXH3_64bits(stored, b->stored_size),
                     (unsigned long long)b->stored_xxh3);
            assert_string_equal(numafeed_last_error(), want);
            stored[at] ^= 0x08;
        }
        free(stored);
        free(img);
    }
    assert_int_equal(nf__dataset_check_stored_hash(ds, n, "x"), -EINVAL);
    nf__dataset_close(ds);
    free(d);
}

struct problems {
    int n, found;
    int64_t block, offset;
};

static void on_problem(void *user, const struct nf_check_problem *p)
{
    struct problems *pr = user;
    pr->n++;
    if (p->block == pr->block && p->offset == pr->offset && p->code == NUMAFEED_ECHECKSUM &&
        strstr(p->message, "stored bytes hash to") && strstr(p->message, "shard-00000.nfs"))
        pr->found++;
}

/* `numafeed check` finds a flipped byte of a zstd block by its stored
 * hash, before decoding; the whole file's hash is the only other problem. */
static void check_finds_flip(void **state)
{
    (void)state;
    char *d = nft_make_dataset(tmp, "flip", 40, 300, NUMAFEED_CODEC_ZSTD, 1, 400, 0);
    struct nf_dataset *ds;
    assert_int_equal(nf__dataset_open(d, NULL, &ds), 0);
    const struct nf_block_info *b = &nf__dataset_shard_index(ds, 0)->blocks[2];
    assert_int_equal(b->codec, NF_CODEC_ZSTD);
    struct problems pr = {0, 0, 2, (int64_t)b->offset};
    char *p = nft_shard_path(d, 0);
    size_t len;
    uint8_t *img = nft_read_file(p, &len);
    /* in the frame header: a bit zstd alone would not notice everywhere */
    for (uint32_t at = 0; at < b->stored_size; at += 5) {
        img[b->offset + at] ^= 0x10;
        assert_int_equal(nf_write_file(p, img, len), 0);
        pr.n = pr.found = 0;
        struct nf_check_summary sum;
        assert_int_equal(nf__check_dataset(d, 0, on_problem, &pr, &sum), 2);
        assert_int_equal(pr.n, 2);
        if (pr.found != 1)
            fail_msg("byte %u of block 2 flipped: no stored-hash problem", at);
        img[b->offset + at] ^= 0x10;
    }
    nf__dataset_close(ds);
    free(img);
    free(p);
    free(d);
}

static int load(const uint8_t *img, size_t len)
{
    struct nf_shard_index idx;
    int rc = nft_load_image(img, len, &idx);
    if (rc == 0)
        nf__shard_index_free(&idx);
    return rc;
}

static void expect_load(const uint8_t *img, size_t len, int code, const char *needle)
{
    int rc = load(img, len);
    if (rc != code || (needle && !strstr(numafeed_last_error(), needle)))
        fail_msg("got %s (%s), expected %s containing '%s'", numafeed_err_name(rc),
                 numafeed_last_error(), numafeed_err_name(code), needle ? needle : "");
}

/* Move the trailer by delta bytes (the footer grows or shrinks at its
 * end), count the footer accordingly and reseal: only the rule is broken. */
static size_t resize_footer(uint8_t *img, size_t len, long delta)
{
    uint8_t trailer[NF_TRAILER_BYTES];
    memcpy(trailer, img + len - NF_TRAILER_BYTES, NF_TRAILER_BYTES);
    size_t at = len - NF_TRAILER_BYTES;
    if (delta > 0)
        memset(img + at, 0xab, (size_t)delta);
    len = (size_t)((long)len + delta);
    memcpy(img + len - NF_TRAILER_BYTES, trailer, NF_TRAILER_BYTES);
    uint8_t *t = img + len - NF_TRAILER_BYTES;
    nft_put64(t + 8, (uint64_t)((long)nft_get64(t + 8) + delta));
    nft_reseal(img, len);
    return len;
}

/* 16 + 32 x blocks + 4 x records x variable fields + 8 x blocks with the
 * flag, without the last term without it; anything else is refused, and
 * the table is covered by the footer's checksum. */
static void footer_size_rule(void **state)
{
    (void)state;
    char *v1 = nft_make_dataset(tmp, "rule1", 40, 100, NUMAFEED_CODEC_ZSTD, 1, 400, 0);
    char *v2 = make_v2("rule2", 0);
    for (int k = 0; k < 2; k++) {
        char *p = nft_shard_path(k ? v2 : v1, 0);
        size_t len;
        uint8_t *orig = nft_read_file(p, &len);
        uint8_t *img = malloc(len + 64);
        const char *msg = "blocks and";
        /* the flag cleared, the table kept: 8 bytes per block too long */
        memcpy(img, orig, len);
        nft_put32(img + 12, 0);
        nft_reseal(img, len);
        expect_load(img, len, NUMAFEED_ECORRUPT, msg);
        /* the table cut, the flag kept: too short */
        memcpy(img, orig, len);
        size_t cut = nft_strip_stored_hashes(img, len);
        nft_put32(img + 12, NF_SHARD_FLAG_STORED_HASH);
        nft_reseal(img, cut);
        expect_load(img, cut, NUMAFEED_ECORRUPT, msg);
        /* one hash more, one hash less, and some bytes off */
        static const long deltas[] = {8, -8, 1, -1, 4, 16};
        for (size_t i = 0; i < sizeof(deltas) / sizeof(deltas[0]); i++) {
            memcpy(img, orig, len);
            size_t n = resize_footer(img, len, deltas[i]);
            expect_load(img, n, NUMAFEED_ECORRUPT, msg);
        }
        /* as written: fine; a table byte changed without resealing: the
         * footer's checksum */
        memcpy(img, orig, len);
        expect_load(img, len, 0, NULL);
        img[len - NF_TRAILER_BYTES - 3] ^= 1;
        expect_load(img, len, NUMAFEED_ECHECKSUM, "footer at offset");
        /* resealed, the footer is sound and the block's bytes no longer
         * match what the table says */
        nft_reseal(img, len);
        struct nf_shard_index idx;
        assert_int_equal(nft_load_image(img, len, &idx), 0);
        const struct nf_block_info *last = &idx.blocks[idx.nblocks - 1];
        assert_int_equal(nf__block_check_stored_hash(p, idx.nblocks - 1, last, img + last->offset),
                         NUMAFEED_ECHECKSUM);
        nf__shard_index_free(&idx);
        free(img);
        free(orig);
        free(p);
    }
    free(v1);
    free(v2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(writer_writes_table, setup, teardown),
        cmocka_unit_test_setup_teardown(old_shards_read, setup, teardown),
        cmocka_unit_test_setup_teardown(one_shard_without_table, setup, teardown),
        cmocka_unit_test_setup_teardown(dataset_check_stored_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(check_finds_flip, setup, teardown),
        cmocka_unit_test_setup_teardown(footer_size_rule, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
