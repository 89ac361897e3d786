// SPDX-License-Identifier: Apache-2.0
/*
 * The block pipeline's stored mode, what GPU decode reads through: every
 * block's stored bytes land in the caller's buffer exactly as they are in
 * the shard (zstd frames and raw blocks), over pread, io_uring and the
 * mappings, with several in flight; nothing is decoded or counted as
 * verified; a damaged frame header is the typed error naming shard and
 * block before any decoder sees it; so is a damaged frame body (through
 * the shard's stored hash), in the words the CPU decoder gives for it;
 * handed out in place, a mapped block is the mapping itself, checked the
 * same way (once, with verify_once); and a shard without stored hashes
 * cannot hand out a zstd block unchecked.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io_helpers.h"

static char *base;

static struct nf_dataset *open_ds(const char *path, int io)
{
    struct nf_dataset *ds;
    assert_int_equal(nf__dataset_open(path, NULL, &ds), 0);
    if (io == NF_IO_MMAP)
        assert_int_equal(nf__dataset_map(ds), 0);
    return ds;
}

/* Block g's stored bytes at data are the file's. */
static void same_as_file(const struct nf_dataset *ds, uint32_t g, const uint8_t *data)
{
    uint32_t shard;
    const struct nf_block_info *bi = nf__dataset_block(ds, g, &shard, NULL);
    size_t flen;
    uint8_t *file = nft_read_file(nf__dataset_shard_path(ds, shard), &flen);
    assert_true(bi->offset + bi->stored_size <= flen);
    assert_memory_equal(data, file + bi->offset, bi->stored_size);
    free(file);
}

/* Read every block stored through a pipe of io; compare with the file. */
static void every_block(const char *path, int io)
{
    struct nf_dataset *ds = open_ds(path, io);
    struct nf_pipe_options o;
    nf__pipe_options_init(&o);
    o.io = io;
    struct nf_pipe *p;
    if (nf__pipe_create(ds, &o, &p)) {
        nf__dataset_close(ds);
        skip(); /* io_uring refused here */
    }
    uint32_t nb = nf__dataset_blocks(ds);
    assert_int_equal(nf__pipe_reserve(p, 8), 0);
    uint8_t **dst = calloc(nb, sizeof(*dst));
    uint32_t next = 0, done = 0, zstd = 0;
    while (done < nb) {
        while (next < nb && nf__pipe_room(p)) {
            const struct nf_block_info *bi = nf__dataset_block(ds, next, NULL, NULL);
            dst[next] = malloc(bi->stored_size);
            assert_int_equal(nf__pipe_submit_stored(p, next, next, dst[next], bi->stored_size), 0);
            next++;
        }
        assert_int_equal(nf__pipe_flush(p), 0);
        struct nf_block_done d;
        assert_int_equal(nf__pipe_next(p, &d), 0);
        const struct nf_block_info *bi = nf__dataset_block(ds, (uint32_t)d.tag, NULL, NULL);
        assert_int_equal(d.stored, 1);
        assert_int_equal(d.len, bi->stored_size);
        assert_ptr_equal(d.data, dst[d.tag]);
        same_as_file(ds, (uint32_t)d.tag, d.data);
        zstd += bi->codec == NF_CODEC_ZSTD;
        nf__pipe_release(p, &d);
        done++;
    }
    struct nf_pipe_stats st;
    nf__pipe_stats(p, &st);
    assert_int_equal(st.blocks, 0); /* nothing verified here: the decoder does it */
    printf("# %s: %u blocks, %u zstd\n", nf__pipe_backend(p), nb, zstd);
    for (uint32_t g = 0; g < nb; g++)
        free(dst[g]);
    free(dst);
    nf__pipe_destroy(p);
    nf__dataset_close(ds);
}

static void each_io(const char *path)
{
    every_block(path, NF_IO_PREAD);
    every_block(path, NF_IO_MMAP);
    every_block(path, NF_IO_URING);
}

static void test_zstd(void **state)
{
    (void)state;
    char *ds = nft_make_dataset(base, "z", 1000, 3000, NUMAFEED_CODEC_ZSTD, 1, 16 << 10, 1 << 20);
    each_io(ds);
    free(ds);
}

static void test_raw_blocks_of_a_zstd_dataset(void **state)
{
    (void)state;
    /* noise does not compress: the writer stores those blocks raw */
    char *ds = nft_make_dataset(base, "n", 1000, 500, NUMAFEED_CODEC_ZSTD, 0, 16 << 10, 0);
    each_io(ds);
    free(ds);
}

static void test_damaged_frame(void **state)
{
    (void)state;
    char *ds = nft_make_dataset(base, "d", 1000, 200, NUMAFEED_CODEC_ZSTD, 1, 16 << 10, 0);
    struct nf_dataset *d = open_ds(ds, NF_IO_PREAD);
    const struct nf_block_info *bi = nf__dataset_block(d, 1, NULL, NULL);
    uint64_t off = bi->offset;
    uint32_t stored = bi->stored_size;
    nf__dataset_close(d);
    char *shard = nft_shard_path(ds, 0);
    size_t len;
    uint8_t *img = nft_read_file(shard, &len);
    memset(img + off, 0, 4); /* the frame's magic */
    assert_int_equal(nf_write_file(shard, img, len), 0);
    free(img);
    for (int io = NF_IO_PREAD; io <= NF_IO_MMAP; io += NF_IO_MMAP - NF_IO_PREAD) {
        d = open_ds(ds, io);
        struct nf_pipe_options o;
        nf__pipe_options_init(&o);
        o.io = io;
        struct nf_pipe *p;
        assert_int_equal(nf__pipe_create(d, &o, &p), 0);
        uint8_t *buf = malloc(stored);
        assert_int_equal(nf__pipe_submit_stored(p, 1, 0, buf, stored - 1), -EINVAL);
        assert_int_equal(nf__pipe_submit_stored(p, 1, 0, buf, stored), 0);
        struct nf_block_done done;
        assert_int_equal(nf__pipe_flush(p), 0);
        assert_int_equal(nf__pipe_next(p, &done), NUMAFEED_ECORRUPT);
        assert_non_null(strstr(numafeed_last_error(), "shard-00000.nfs: block 1 at offset"));
        assert_non_null(strstr(numafeed_last_error(), "not a zstd frame"));
        assert_int_equal(nf__pipe_outstanding(p), 0); /* released with the error */
        free(buf);
        nf__pipe_destroy(p);
        nf__dataset_close(d);
    }
    free(shard);
    free(ds);
}

enum { DECODED, STORED, IN_PLACE };

/* One block through a fresh pipe of io, decoded, stored or in place: its
 * result, and the message in msg. */
static int one_block_as(const char *path, int io, uint32_t g, int how, char *msg, size_t len)
{
    struct nf_dataset *d = open_ds(path, io);
    struct nf_pipe_options o;
    nf__pipe_options_init(&o);
    o.io = io;
    struct nf_pipe *p;
    assert_int_equal(nf__pipe_create(d, &o, &p), 0);
    const struct nf_block_info *bi = nf__dataset_block(d, g, NULL, NULL);
    uint8_t *buf = malloc(bi->stored_size);
    assert_int_equal(how == STORED     ? nf__pipe_submit_stored(p, g, 0, buf, bi->stored_size)
                     : how == IN_PLACE ? nf__pipe_submit_in_place(p, g, 0)
                                       : nf__pipe_submit(p, g, 0), 0);
    assert_int_equal(nf__pipe_flush(p), 0);
    struct nf_block_done done;
    int rc = nf__pipe_next(p, &done);
    snprintf(msg, len, "%s", rc ? numafeed_last_error() : "");
    if (!rc)
        nf__pipe_release(p, &done);
    assert_int_equal(nf__pipe_outstanding(p), 0);
    free(buf);
    nf__pipe_destroy(p);
    nf__dataset_close(d);
    return rc;
}

static int one_block(const char *path, int io, uint32_t g, bool stored, char *msg, size_t len)
{
    return one_block_as(path, io, g, stored ? STORED : DECODED, msg, len);
}

static void test_damaged_body(void **state)
{
    (void)state;
    char *ds = nft_make_dataset(base, "b", 1000, 200, NUMAFEED_CODEC_ZSTD, 1, 16 << 10, 0);
    struct nf_dataset *d = open_ds(ds, NF_IO_PREAD);
    const struct nf_block_info *bi = nf__dataset_block(d, 1, NULL, NULL);
    assert_int_equal(bi->codec, NF_CODEC_ZSTD);
    uint64_t at = bi->offset + bi->stored_size / 2;
    nf__dataset_close(d);
    char *shard = nft_shard_path(ds, 0);
    assert_int_equal(nf_flip_byte(shard, at), 0); /* inside the frame: its header still checks */
    for (int io = NF_IO_PREAD; io <= NF_IO_MMAP; io += NF_IO_MMAP - NF_IO_PREAD) {
        char ms[1024], mc[1024];
        int rs = one_block(ds, io, 1, true, ms, sizeof(ms));
        int rc = one_block(ds, io, 1, false, mc, sizeof(mc));
        printf("# stored: %s\n# decoded: %s\n", ms, mc);
        assert_true(rc == NUMAFEED_ECORRUPT || rc == NUMAFEED_ECHECKSUM);
        assert_int_equal(rs, rc); /* the CPU decoder's verdict, word for word */
        assert_string_equal(ms, mc);
        assert_non_null(strstr(ms, "shard-00000.nfs: block 1 at offset"));
        assert_int_equal(one_block(ds, io, 0, true, ms, sizeof(ms)), 0); /* its neighbour */
        if (io == NF_IO_MMAP) { /* in the mapping: the same words */
            assert_int_equal(one_block_as(ds, io, 1, IN_PLACE, ms, sizeof(ms)), rc);
            assert_string_equal(ms, mc);
        }
    }
    free(shard);
    free(ds);
}

/* In place: each block handed out where it is mapped, its stored bytes
 * as in the file; only a mapped pipe does it; with verify_once a frame is
 * checked the first time it is handed out only (its pages stay as they
 * were checked: the loader page-locks them), without it every time. */
static void test_in_place(void **state)
{
    (void)state;
    char *ds = nft_make_dataset(base, "m", 1000, 500, NUMAFEED_CODEC_ZSTD, 1, 16 << 10, 0);
    struct nf_dataset *d = open_ds(ds, NF_IO_MMAP);
    struct nf_pipe_options o;
    nf__pipe_options_init(&o);
    o.io = NF_IO_MMAP;
    o.verify_once = 1;
    struct nf_pipe *p, *every;
    assert_int_equal(nf__pipe_create(d, &o, &p), 0);
    o.verify_once = 0;
    assert_int_equal(nf__pipe_create(d, &o, &every), 0);
    uint32_t nb = nf__dataset_blocks(d), zg = UINT32_MAX;
    for (uint32_t g = 0; g < nb; g++) {
        uint32_t shard, blk;
        const struct nf_block_info *bi = nf__dataset_block(d, g, &shard, &blk);
        assert_int_equal(nf__pipe_submit_in_place(p, g, g), 0);
        struct nf_block_done done;
        assert_int_equal(nf__pipe_next(p, &done), 0);
        assert_int_equal(done.stored, 1);
        assert_int_equal(done.len, bi->stored_size);
        assert_ptr_equal(done.data, nf__dataset_block_map(d, shard, blk));
        same_as_file(d, g, done.data);
        nf__pipe_release(p, &done);
        if (bi->codec == NF_CODEC_ZSTD && zg == UINT32_MAX)
            zg = g;
    }
    assert_true(zg != UINT32_MAX);
    /* the frame changes in the page cache after its check */
    uint32_t shard;
    const struct nf_block_info *bi = nf__dataset_block(d, zg, &shard, NULL);
    char *path = nft_shard_path(ds, shard);
    assert_int_equal(nf_flip_byte(path, bi->offset + bi->stored_size / 2), 0);
    struct nf_block_done done;
    assert_int_equal(nf__pipe_submit_in_place(p, zg, 0), 0);
    assert_int_equal(nf__pipe_next(p, &done), 0); /* checked once already */
    nf__pipe_release(p, &done);
    assert_int_equal(nf__pipe_submit_in_place(every, zg, 0), 0);
    int rc = nf__pipe_next(every, &done);
    assert_true(rc == NUMAFEED_ECORRUPT || rc == NUMAFEED_ECHECKSUM);
    assert_non_null(strstr(numafeed_last_error(), "shard-0000"));
    nf__pipe_destroy(p);
    nf__pipe_destroy(every);
    nf__dataset_close(d);
    /* a pipe that reads cannot hand out the mapping */
    d = open_ds(ds, NF_IO_PREAD);
    o.io = NF_IO_PREAD;
    assert_int_equal(nf__pipe_create(d, &o, &p), 0);
    assert_int_equal(nf__pipe_submit_in_place(p, 0, 0), -EINVAL);
    assert_int_equal(nf__pipe_outstanding(p), 0);
    nf__pipe_destroy(p);
    nf__dataset_close(d);
    free(path);
    free(ds);
}

static void test_no_stored_hashes(void **state)
{
    (void)state;
    /* written before shards kept stored hashes: a zstd block is refused
     * stored (nothing could check it), and still decodes on the CPU */
    const char *ds = NF_FIXTURES "/shards/v2";
    struct nf_dataset *d = open_ds(ds, NF_IO_PREAD);
    uint32_t g = 0;
    while (nf__dataset_block(d, g, NULL, NULL)->codec != NF_CODEC_ZSTD)
        g++;
    nf__dataset_close(d);
    char msg[1024];
    assert_int_equal(one_block(ds, NF_IO_PREAD, g, true, msg, sizeof(msg)), -ENOTSUP);
    assert_non_null(strstr(msg, "keeps no hashes of stored blocks"));
    assert_int_equal(one_block(ds, NF_IO_PREAD, g, false, msg, sizeof(msg)), 0);
}

static int setup(void **state)
{
    (void)state;
    base = nf_tmpdir();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nf_rmtree(base);
    free(base);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zstd),
        cmocka_unit_test(test_raw_blocks_of_a_zstd_dataset),
        cmocka_unit_test(test_damaged_frame),
        cmocka_unit_test(test_damaged_body),
        cmocka_unit_test(test_in_place),
        cmocka_unit_test(test_no_stored_hashes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
