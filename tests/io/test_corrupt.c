// SPDX-License-Identifier: Apache-2.0
/*
 * Damage, systematically: a small shard cut at every byte offset, and every
 * bit of its header, index, trailer and blocks flipped one at a time. Each
 * case must end in an error from opening or from reading a block: never a
 * crash, never an out-of-bounds read (the asan preset runs this), never
 * success. Twice: the shard as the writer makes it (with the footer's
 * stored-block hashes) and the same shard without them (header flag 0,
 * no table). Then damage at the dataset level: manifest, missing
 * shards, counts and sizes that disagree.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "io_helpers.h"

enum { RB = 16, NREC = 24, BLOCK = 128 };

static char *tmp, *ds_path;
static ZSTD_DCtx *dctx;

/* The shard under test: the writer's, or its twin without stored hashes. */
struct image {
    uint8_t *img;
    size_t len;
};
static struct image with_hashes, without_hashes;
static const uint8_t *img;
static size_t img_len;

static int use(void **state)
{
    const struct image *i = *state;
    img = i->img;
    img_len = i->len;
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    tmp = nf_tmpdir();
    ds_path = nft_make_dataset(tmp, "ds", RB, NREC, NUMAFEED_CODEC_ZSTD, 1, BLOCK, 0);
    char *p = nft_shard_path(ds_path, 0);
    with_hashes.img = nft_read_file(p, &with_hashes.len);
    without_hashes.img = nft_read_file(p, &without_hashes.len);
    without_hashes.len = nft_strip_stored_hashes(without_hashes.img, without_hashes.len);
    free(p);
    img = with_hashes.img;
    img_len = with_hashes.len;
    dctx = ZSTD_createDCtx();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    nf_rmtree(tmp);
    free(tmp);
    free(ds_path);
    free(with_hashes.img);
    free(without_hashes.img);
    ZSTD_freeDCtx(dctx);
    return 0;
}

/* Open the image and read every block: 0 only if all of it is fine.
 * stored_first: check a block's stored bytes against the footer's hash
 * before decoding them, where the shard has one (as before a GPU decode);
 * else decode them as the CPU readers do. */
static int open_and_read(const uint8_t *data, size_t len, int stored_first)
{
    int fd = nft_memfd(data, len);
    struct nf_shard_index idx;
    struct nf_where w;
    int rc = nf__shard_load(fd, "cut", len, &idx, &w);
    for (uint32_t b = 0; rc == 0 && b < idx.nblocks; b++) {
        const struct nf_block_info *bi = &idx.blocks[b];
        /* exactly sized buffers so asan sees any overrun */
        uint8_t *in = malloc(bi->stored_size), *out = malloc(bi->decoded_size);
        rc = nf__pread_full(fd, in, bi->stored_size, bi->offset, "cut");
        if (!rc && stored_first && idx.stored_hashes)
            rc = nf__block_check_stored_hash("cut", b, bi, in);
        if (!rc)
            rc = nf__block_decode(dctx, "cut", b, bi, in, out, bi->decoded_size);
        free(in);
        free(out);
    }
    if (fd >= 0)
        close(fd);
    if (idx.blocks)
        nf__shard_index_free(&idx);
    return rc;
}

static void fixture_is_mixed(void **state)
{
    struct nf_shard_index idx;
    assert_int_equal(nft_load_image(img, img_len, &idx), 0);
    assert_int_equal(idx.stored_hashes, *state == &with_hashes);
    assert_int_equal(idx.nblocks, NREC * RB / BLOCK);
    int zstd = 0;
    for (uint32_t b = 0; b < idx.nblocks; b++)
        zstd += idx.blocks[b].codec == NF_CODEC_ZSTD;
    assert_true(zstd > 0); /* the cases below cover zstd frames, not just raw bytes */
    nf__shard_index_free(&idx);
    assert_int_equal(open_and_read(img, img_len, 0), 0);
    assert_int_equal(open_and_read(img, img_len, 1), 0);
}

static void truncate_every_offset(void **state)
{
    (void)state;
    for (size_t len = 0; len < img_len; len++) {
        int rc = open_and_read(img, len, 0);
        if (rc == 0)
            fail_msg("cut at %zu of %zu bytes was accepted", len, img_len);
        assert_true(rc == NUMAFEED_ECORRUPT || rc == NUMAFEED_ECHECKSUM);
    }
}

static void flip_bits(size_t from, size_t to, const char *what, int stored_first,
                      int (*harmless)(size_t, int))
{
    uint8_t *copy = malloc(img_len);
    for (size_t byte = from; byte < to; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, img, img_len);
            copy[byte] ^= (uint8_t)(1u << bit);
            int rc = open_and_read(copy, img_len, stored_first);
            if (rc == 0 && harmless && harmless(byte, bit))
                continue;
            if (rc == 0)
                fail_msg("%s: bit %d of byte %zu flipped, accepted", what, bit, byte);
            assert_true(rc == NUMAFEED_ECORRUPT || rc == NUMAFEED_ECHECKSUM ||
                        rc == NUMAFEED_EVERSION);
        }
    }
    free(copy);
}

static void flip_header(void **state)
{
    (void)state;
    flip_bits(0, NF_HEADER_BYTES, "header", 0, NULL);
}

static void flip_index(void **state)
{
    (void)state;
    flip_bits(nft_footer_offset(img, img_len), img_len - NF_TRAILER_BYTES, "index", 0, NULL);
}

static void flip_trailer(void **state)
{
    (void)state;
    flip_bits(img_len - NF_TRAILER_BYTES, img_len, "trailer", 0, NULL);
}

/* A flipped bit inside a zstd frame sometimes still decodes to the very
 * same bytes (the frame header's "unused" bit, bits of an entropy table no
 * symbol reaches). Success then means the index hash matched: the bytes
 * delivered are right, and the shard's content hash (numafeed check) still
 * sees the change. What must never happen is a crash or an overrun. With
 * the stored bytes checked first, no flipped bit gets as far as a decoder. */
static int decodes_same(size_t byte, int bit)
{
    (void)byte;
    (void)bit;
    return 1;
}

static void flip_blocks(void **state)
{
    (void)state;
    flip_bits(NF_HEADER_BYTES, nft_footer_offset(img, img_len), "block data", 0, decodes_same);
}

static void flip_blocks_stored_first(void **state)
{
    uint64_t end = nft_footer_offset(img, img_len);
    if (*state == &with_hashes)
        flip_bits(NF_HEADER_BYTES, end, "block data, stored hash first", 1, NULL);
    else /* nothing to check first: as flip_blocks */
        flip_bits(NF_HEADER_BYTES, end, "block data", 1, decodes_same);
}

/* ---- dataset level ---- */

static char *copy_dataset(const char *name)
{
    char *dst;
    assert_true(asprintf(&dst, "%s/%s", tmp, name) > 0);
    assert_int_equal(nf_run(NULL, "cp -r '%s' '%s'", ds_path, dst), 0);
    return dst;
}

static void expect_open(const char *path, int code, const char *needle)
{
    struct nf_dataset_options o;
    nf__dataset_options_init(&o);
    o.verify_content = 1;
    struct nf_dataset *ds = NULL;
    int rc = nf__dataset_open(path, &o, &ds);
    if (rc != code || !strstr(numafeed_last_error(), needle))
        fail_msg("got %s (%s), expected %s containing '%s'", numafeed_err_name(rc),
                 numafeed_last_error(), numafeed_err_name(code), needle);
    assert_null(ds);
}

static void records_disagree(void **state)
{
    (void)state;
    char *d = copy_dataset("counts");
    /* both the total and the shard's entry: the manifest stays consistent
     * with itself and only the shard contradicts it */
    nft_rewrite_manifest(d, NULL, "\"records\": 24", "\"records\": 23");
    nft_rewrite_manifest(d, NULL, "\"records\": 24", "\"records\": 23");
    expect_open(d, NUMAFEED_ECORRUPT, "holds 24 records, the manifest says 23");
    nft_rewrite_manifest(d, NULL, "\"records\": 23", "\"records\": 25");
    expect_open(d, NUMAFEED_EMANIFEST, "shards hold 23 records");
    free(d);
}

static void missing_shard(void **state)
{
    (void)state;
    char *d = copy_dataset("missing"), *s = nft_shard_path(d, 0);
    assert_int_equal(unlink(s), 0);
    expect_open(d, -ENOENT, "shard-00000.nfs");
    free(s);
    free(d);
}

static void manifest_damage(void **state)
{
    (void)state;
    char *d = copy_dataset("manifest"), *m;
    assert_true(asprintf(&m, "%s/" NF_MANIFEST_NAME, d) > 0);
    assert_int_equal(nf_write_file(m, "{\"format\":\"numafeed\",", 21), 0);
    expect_open(d, NUMAFEED_EMANIFEST, "invalid JSON");
    assert_int_equal(unlink(m), 0);
    expect_open(d, -ENOENT, "manifest.json");
    free(m);
    free(d);
}

static void size_and_content(void **state)
{
    (void)state;
    /* the dataset's own shard, as written */
    const uint8_t *shard = with_hashes.img;
    size_t len = with_hashes.len;
    char *d = copy_dataset("size"), *s = nft_shard_path(d, 0);
    int fd = open(s, O_WRONLY | O_APPEND);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
    expect_open(d, NUMAFEED_ECORRUPT, "the manifest says");
    assert_int_equal(truncate(s, (off_t)len - 1), 0);
    expect_open(d, NUMAFEED_ECORRUPT, "truncated");
    /* same size, one byte of a block changed: only the content hash sees it
     * at open (blocks are checked when read) */
    uint8_t *bad = malloc(len);
    memcpy(bad, shard, len);
    bad[NF_HEADER_BYTES + 3] ^= 0x40;
    assert_int_equal(nf_write_file(s, bad, len), 0);
    expect_open(d, NUMAFEED_ECHECKSUM, "content hash");
    free(bad);
    free(s);
    free(d);
}

int main(void)
{
#define BOTH(f)                                                                            \
    cmocka_unit_test_prestate_setup_teardown(f, use, NULL, &with_hashes),                  \
        cmocka_unit_test_prestate_setup_teardown(f, use, NULL, &without_hashes)
    const struct CMUnitTest tests[] = {
        BOTH(fixture_is_mixed),
        BOTH(truncate_every_offset),
        BOTH(flip_header),
        BOTH(flip_index),
        BOTH(flip_trailer),
        BOTH(flip_blocks),
        BOTH(flip_blocks_stored_first),
        cmocka_unit_test(records_disagree),
        cmocka_unit_test(missing_shard),
        cmocka_unit_test(manifest_damage),
        cmocka_unit_test(size_and_content),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
