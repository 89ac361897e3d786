// SPDX-License-Identifier: Apache-2.0
/*
 * src/io's public calls: the field syntax and layout check, numafeed_check,
 * and the read-only dataset handle. The handle's block numbering must be
 * the dataset's global block list (the one the sampler uses), and every
 * byte it returns must be the writer's.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io_helpers.h"

enum { RB = 100, NREC = 1000, BLOCK = 1000, SHARD = 3000 };

static char *tmp, *zstd_ds, *raw_ds;

static int group_setup(void **state)
{
    (void)state;
    tmp = nf_tmpdir();
    /* 10 records a block, a few blocks a shard: many shards of each codec */
    zstd_ds = nft_make_dataset(tmp, "zstd", RB, NREC, NUMAFEED_CODEC_ZSTD, 1, BLOCK, SHARD);
    raw_ds = nft_make_dataset(tmp, "raw", RB, NREC, NUMAFEED_CODEC_NONE, 0, BLOCK, SHARD);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    nf_rmtree(tmp);
    free(tmp);
    free(zstd_ds);
    free(raw_ds);
    return 0;
}

static void test_field_parse_and_layout(void **state)
{
    (void)state;
    char a[] = "tokens:int32:2048", b[] = "image:uint8:3x224,224", c[] = "label:int64",
         bad[] = "nocolon";
    struct numafeed_field f[3];
    assert_int_equal(numafeed_field_parse(a, &f[0]), 0);
    assert_string_equal(f[0].name, "tokens");
    assert_string_equal(f[0].dtype, "int32");
    assert_int_equal(f[0].ndim, 1);
    assert_int_equal(f[0].shape[0], 2048);
    assert_int_equal(numafeed_field_parse(b, &f[1]), 0);
    assert_int_equal(f[1].ndim, 3);
    assert_int_equal(f[1].shape[2], 224);
    assert_int_equal(numafeed_field_parse(c, &f[2]), 0);
    assert_int_equal(f[2].ndim, 0);
    assert_int_equal(numafeed_field_parse(bad, &f[0]), -EINVAL);
    assert_non_null(strstr(numafeed_last_error(), "nocolon"));
    assert_int_equal(numafeed_field_parse(a, NULL), -EINVAL);

    /* f[0] was overwritten by the failed parse: parse again */
    char a2[] = "tokens:int32:2048";
    assert_int_equal(numafeed_field_parse(a2, &f[0]), 0);
    uint64_t rb = 0;
    assert_int_equal(numafeed_layout_check(f, 3, &rb), 0);
    assert_int_equal(rb, 2048 * 4 + 3 * 224 * 224 + 8);
    assert_int_equal(numafeed_layout_check(f, 3, NULL), 0);
    struct numafeed_field twice[2] = {f[2], f[2]};
    assert_int_equal(numafeed_layout_check(twice, 2, &rb), -EINVAL);
    assert_non_null(strstr(numafeed_last_error(), "twice"));
    struct numafeed_field unknown = {"x", "complex64", 0, {0}};
    assert_int_equal(numafeed_layout_check(&unknown, 1, &rb), -EINVAL);
    struct numafeed_field huge = {"x", "uint8", 1, {NUMAFEED_MAX_BLOCK_BYTES + 1ull}};
    assert_int_equal(numafeed_layout_check(&huge, 1, &rb), -EINVAL);
    assert_int_equal(numafeed_layout_check(f, 0, &rb), -EINVAL);
    assert_int_equal(numafeed_layout_check(f, NUMAFEED_MAX_FIELDS + 1, &rb), -EINVAL);
}

/* Every block and record of one dataset through the handle, against the
 * pattern the writer was given and the internal global block list. */
static void read_everything(const char *path, int codec)
{
    numafeed_dataset *h;
    struct nf_dataset *ds;
    assert_int_equal(numafeed_dataset_open(path, &h), 0);
    assert_int_equal(nf__dataset_open(path, NULL, &ds), 0);
    assert_int_equal(numafeed_dataset_records(h), NREC);
    assert_int_equal(numafeed_dataset_record_bytes(h), RB);
    uint32_t n = numafeed_dataset_blocks(h);
    assert_int_equal(n, nf__dataset_blocks(ds));
    assert_int_equal(n, NREC * RB / BLOCK);
    assert_true(nf__dataset_shard_count(ds) > 1);
    uint8_t *got = malloc(BLOCK), *want = malloc(BLOCK);
    uint64_t next = 0;
    for (uint32_t g = 0; g < n; g++) {
        struct numafeed_block_info bi = {.size = sizeof(bi)};
        uint32_t shard, block;
        const struct nf_block_info *in = nf__dataset_block(ds, g, &shard, &block);
        assert_int_equal(numafeed_dataset_block(h, g, &bi), 0);
        assert_int_equal(bi.size, sizeof(bi));
        assert_string_equal(bi.shard, nf__dataset_shard_name(ds, shard));
        assert_int_equal(bi.offset, in->offset);
        assert_int_equal(bi.stored_bytes, in->stored_size);
        assert_int_equal(bi.decoded_bytes, BLOCK);
        assert_int_equal(bi.records, BLOCK / RB);
        assert_int_equal(bi.codec, codec);
        assert_int_equal(bi.first_record, next); /* global, across shards */
        next += bi.records;
        memset(got, 0xee, BLOCK);
        assert_int_equal(numafeed_dataset_read_block(h, g, got, BLOCK), 0);
        nft_pattern(want, bi.first_record, bi.records, RB, codec == NUMAFEED_BLOCK_ZSTD);
        assert_memory_equal(got, want, BLOCK);
    }
    assert_int_equal(next, NREC);
    for (uint64_t r = 0; r < NREC; r += 37) {
        uint8_t rec[RB];
        assert_int_equal(numafeed_dataset_read_record(h, r, rec, sizeof(rec)), 0);
        nft_pattern(want, r, 1, RB, codec == NUMAFEED_BLOCK_ZSTD);
        assert_memory_equal(rec, want, RB);
    }
    free(got);
    free(want);
    nf__dataset_close(ds);
    numafeed_dataset_close(h);
}

static void test_read_zstd(void **state)
{
    (void)state;
    read_everything(zstd_ds, NUMAFEED_BLOCK_ZSTD);
}

static void test_read_raw(void **state)
{
    (void)state;
    read_everything(raw_ds, NUMAFEED_BLOCK_RAW);
}

static void test_refusals(void **state)
{
    (void)state;
    numafeed_dataset *h = (numafeed_dataset *)1;
    char *missing;
    assert_true(asprintf(&missing, "%s/none", tmp) > 0);
    assert_int_equal(numafeed_dataset_open(missing, &h), -ENOENT);
    assert_null(h);
    free(missing);
    assert_int_equal(numafeed_dataset_open(NULL, &h), -EINVAL);
    assert_int_equal(numafeed_dataset_open(zstd_ds, NULL), -EINVAL);
    numafeed_dataset_close(NULL);

    assert_int_equal(numafeed_dataset_open(zstd_ds, &h), 0);
    uint32_t n = numafeed_dataset_blocks(h);
    uint8_t buf[BLOCK];
    struct numafeed_block_info bi = {.size = sizeof(bi)};
    assert_int_equal(numafeed_dataset_block(h, n, &bi), -ERANGE);
    assert_int_equal(numafeed_dataset_read_block(h, n, buf, sizeof(buf)), -ERANGE);
    assert_int_equal(numafeed_dataset_read_block(h, 0, buf, BLOCK - 1), -EINVAL);
    assert_int_equal(numafeed_dataset_read_block(h, 0, NULL, BLOCK), -EINVAL);
    assert_int_equal(numafeed_dataset_read_record(h, NREC, buf, RB), -ERANGE);
    assert_int_equal(numafeed_dataset_read_record(h, 0, buf, RB - 1), -EINVAL);
    assert_int_equal(numafeed_dataset_block(h, 0, NULL), -EINVAL);
    bi.size = 0;
    assert_int_equal(numafeed_dataset_block(h, 0, &bi), -EINVAL);
    bi.size = sizeof(bi) + 8;
    assert_int_equal(numafeed_dataset_block(h, 0, &bi), -EINVAL);
    /* an older, shorter struct: nothing past its size is written */
    struct {
        struct numafeed_block_info bi;
        uint64_t guard;
    } old;
    memset(&old, 0x5a, sizeof(old));
    old.bi.size = offsetof(struct numafeed_block_info, codec);
    assert_int_equal(numafeed_dataset_block(h, 1, &old.bi), 0);
    assert_int_equal(old.bi.records, BLOCK / RB);
    assert_int_equal(old.bi.size, offsetof(struct numafeed_block_info, codec));
    assert_int_equal(old.bi.first_record, 0x5a5a5a5a5a5a5a5aull);
    numafeed_dataset_close(h);
}

/* A copy of the raw dataset with one byte of block g flipped. */
static char *damaged_copy(uint32_t g, struct numafeed_block_info *bi)
{
    char *copy;
    assert_true(asprintf(&copy, "%s/damaged", tmp) > 0);
    assert_int_equal(nf_run(NULL, "rm -rf '%s' && cp -r '%s' '%s'", copy, raw_ds, copy), 0);
    numafeed_dataset *h;
    assert_int_equal(numafeed_dataset_open(copy, &h), 0);
    bi->size = sizeof(*bi);
    assert_int_equal(numafeed_dataset_block(h, g, bi), 0);
    char *shard;
    assert_true(asprintf(&shard, "%s/%s", copy, bi->shard) > 0);
    bi->shard = NULL; /* belongs to h */
    numafeed_dataset_close(h);
    size_t len;
    uint8_t *img = nft_read_file(shard, &len);
    img[bi->offset + 3] ^= 0x40;
    assert_int_equal(nf_write_file(shard, img, len), 0);
    free(img);
    free(shard);
    return copy;
}

static void test_damage(void **state)
{
    (void)state;
    struct numafeed_block_info bi;
    char *copy = damaged_copy(7, &bi);
    numafeed_dataset *h;
    /* open validates headers and indexes, not block contents */
    assert_int_equal(numafeed_dataset_open(copy, &h), 0);
    uint8_t buf[BLOCK];
    assert_int_equal(numafeed_dataset_read_block(h, 6, buf, sizeof(buf)), 0);
    assert_int_equal(numafeed_dataset_read_block(h, 7, buf, sizeof(buf)), NUMAFEED_ECHECKSUM);
    assert_non_null(strstr(numafeed_last_error(), "hash"));
    assert_int_equal(numafeed_dataset_read_record(h, 7 * BLOCK / RB + 3, buf, RB),
                     NUMAFEED_ECHECKSUM);
    assert_int_equal(numafeed_dataset_read_record(h, 0, buf, RB), 0);
    numafeed_dataset_close(h);
    nf_rmtree(copy);
    free(copy);
}

struct seen {
    int calls, block_problems;
    char last[512]; /* the last problem's message */
};

static void on_problem(void *user, const struct numafeed_check_problem *p)
{
    struct seen *s = user;
    s->calls++;
    snprintf(s->last, sizeof(s->last), "%s", p->message);
    assert_non_null(p->file);
    assert_non_null(p->message);
    if (p->block >= 0) {
        s->block_problems++;
        assert_int_equal(p->code, NUMAFEED_ECHECKSUM);
        assert_true(p->offset > 0);
    }
}

static void test_check(void **state)
{
    (void)state;
    struct numafeed_check_summary sum = {.size = sizeof(sum)};
    struct seen s = {0};
    assert_int_equal(numafeed_check(zstd_ds, 0, on_problem, &s, &sum), 0);
    assert_int_equal(s.calls, 0);
    assert_int_equal(sum.size, sizeof(sum));
    assert_int_equal(sum.records, NREC);
    assert_int_equal(sum.record_bytes, RB);
    assert_int_equal(sum.blocks, NREC * RB / BLOCK);
    assert_int_equal(sum.zstd_blocks, sum.blocks);
    assert_int_equal(sum.decoded_bytes, NREC * RB);
    assert_true(sum.shards > 1);
    assert_int_equal(sum.problems, 0);
    assert_int_equal(numafeed_check(raw_ds, 0, NULL, NULL, NULL), 0);

    struct numafeed_block_info bi;
    char *copy = damaged_copy(4, &bi);
    /* one bad block: its hash, and the whole file's hash in the manifest */
    int n = numafeed_check(copy, 0, on_problem, &s, &sum);
    assert_true(n >= 1);
    assert_int_equal(s.calls, n);
    assert_int_equal(s.block_problems, 1);
    assert_int_equal(sum.problems, (uint64_t)n);
    assert_int_equal(sum.raw_blocks, sum.blocks);
    /* a shorter summary is filled only up to its size */
    struct numafeed_check_summary shortsum;
    memset(&shortsum, 0x5a, sizeof(shortsum));
    shortsum.size = offsetof(struct numafeed_check_summary, problems);
    assert_int_equal(numafeed_check(copy, 0, NULL, NULL, &shortsum), n);
    assert_int_equal(shortsum.blocks, sum.blocks);
    assert_int_equal(shortsum.problems, 0x5a5a5a5a5a5a5a5aull);
    nf_rmtree(copy);
    free(copy);

    sum.size = 0;
    assert_int_equal(numafeed_check(zstd_ds, 0, NULL, NULL, &sum), -EINVAL);
    assert_int_equal(numafeed_check(NULL, 0, NULL, NULL, NULL), -EINVAL);
    /* no manifest: one problem, not an error */
    s = (struct seen){0};
    assert_int_equal(numafeed_check(tmp, 0, on_problem, &s, NULL), 1);
    assert_int_equal(s.calls, 1);
}

/* A manifest listing fewer variable fields than its shards hold, with the
 * shards' own sizes and hashes: open refuses it, and so must check, where
 * every block still decodes and every hash matches. */
static void test_check_layout(void **state)
{
    (void)state;
    char *dir, *mpath;
    assert_true(asprintf(&dir, "%s/nvar", tmp) > 0);
    assert_true(asprintf(&mpath, "%s/" NF_MANIFEST_NAME, dir) > 0);
    struct numafeed_field f[3] = {
        {.name = "a", .dtype = "uint8"}, {.name = "t", .dtype = "bytes"},
        {.name = "u", .dtype = "bytes"},
    };
    numafeed_writer *w;
    assert_int_equal(numafeed_writer_create(dir, f, 3, NULL, &w), 0);
    const void *data[3] = {"x", "hello", "world"};
    size_t sizes[3] = {1, 5, 5};
    for (int i = 0; i < 10; i++)
        assert_int_equal(numafeed_writer_add(w, data, sizes), 0);
    assert_int_equal(numafeed_writer_finish(w), 0);
    numafeed_writer_destroy(w);

    struct nf_manifest m;
    assert_int_equal(nf__manifest_load(dir, &m, NULL), 0);
    nf__layout_free(&m.layout);
    assert_int_equal(nf__layout_build(f, 2, &m.layout), 0);
    assert_int_equal(unlink(mpath), 0);
    assert_int_equal(nf__manifest_write(mpath, &m), 0);
    nf__manifest_free(&m);

    struct nf_dataset *ds;
    assert_int_equal(nf__dataset_open(dir, NULL, &ds), NUMAFEED_ECORRUPT);
    assert_non_null(strstr(numafeed_last_error(), "variable fields"));
    struct seen s = {0};
    assert_int_equal(numafeed_check(dir, 0, on_problem, &s, NULL), 1);
    assert_int_equal(s.block_problems, 0);
    assert_non_null(strstr(s.last, "2 variable fields, the manifest's layout has 1 and 1"));
    free(mpath);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_field_parse_and_layout),
        cmocka_unit_test(test_read_zstd),
        cmocka_unit_test(test_read_raw),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_damage),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_check_layout),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
