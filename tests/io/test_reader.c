// SPDX-License-Identifier: Apache-2.0
/*
 * The block reader over one backend, named by the program's argument: ctest
 * runs it once with pread and once with io_uring (the matrix). Where
 * io_uring is refused (containers), the io_uring run exits 77 (skipped).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io_helpers.h"

enum { RB = 100, NREC = 5000, BLOCK = 4000, SHARD = 60000 };

static char *tmp, *zds, *rawds;
static const char *backend;
static int backend_value; /* enum nf_io_backend */

static int group_setup(void **state)
{
    (void)state;
    tmp = nf_tmpdir();
    zds = nft_make_dataset(tmp, "z", RB, NREC, NUMAFEED_CODEC_ZSTD, 1, BLOCK, SHARD);
    rawds = nft_make_dataset(tmp, "raw", RB, NREC, NUMAFEED_CODEC_NONE, 0, BLOCK, SHARD);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    nf_rmtree(tmp);
    free(tmp);
    free(zds);
    free(rawds);
    return 0;
}

static struct nf_dataset *open_ds(const char *path, int direct)
{
    struct nf_dataset_options o;
    nf__dataset_options_init(&o);
    o.direct = direct;
    struct nf_dataset *ds;
    if (nf__dataset_open(path, &o, &ds))
        fail_msg("open %s: %s", path, numafeed_last_error());
    return ds;
}

static struct nf_reader *reader(struct nf_dataset *ds, unsigned depth, int direct, size_t max_op)
{
    struct nf_reader_options o;
    nf__reader_options_init(&o);
    o.queue_depth = depth;
    o.direct = direct;
    o.max_op_bytes = max_op;
    o.backend = backend_value;
    struct nf_reader *r;
    if (nf__reader_create(ds, &o, &r))
        fail_msg("reader: %s", numafeed_last_error());
    assert_string_equal(nf__reader_backend(r), backend);
    return r;
}

/* Block b of shard s holds the expected records? */
static void check_block(struct nf_dataset *ds, uint32_t s, uint32_t b, const uint8_t *got, int compressible)
{
    const struct nf_shard_index *idx = nf__dataset_shard_index(ds, s);
    const struct nf_block_info *bi = &idx->blocks[b];
    uint8_t *want = malloc(bi->decoded_size);
    nft_pattern(want, nf__dataset_shard_first(ds, s) + bi->first_record, bi->records, RB, compressible);
    assert_memory_equal(want, got, bi->decoded_size);
    free(want);
}

static void all_blocks(const char *path, int compressible, int direct, size_t max_op)
{
    struct nf_dataset *ds = open_ds(path, direct);
    struct nf_reader *r = reader(ds, 4, direct, max_op);
    assert_int_equal(nf__dataset_records(ds), NREC);
    assert_true(nf__dataset_shard_count(ds) > 1);
    size_t cap = 2 * BLOCK + 2 * NF_IO_DIRECT_ALIGN;
    uint8_t *buf = NULL, *dst = malloc(BLOCK);
    assert_int_equal(posix_memalign((void **)&buf, NF_IO_DIRECT_ALIGN, cap), 0);
    unsigned blocks = 0;
    for (uint32_t s = 0; s < nf__dataset_shard_count(ds); s++) {
        const struct nf_shard_index *idx = nf__dataset_shard_index(ds, s);
        for (uint32_t b = 0; b < idx->nblocks; b++, blocks++) {
            assert_true(nf__reader_buf_bytes(r, s, b) <= cap);
            if (nf__reader_read_block(r, s, b, buf, cap, dst, BLOCK))
                fail_msg("shard %u block %u: %s", s, b, numafeed_last_error());
            check_block(ds, s, b, dst, compressible);
        }
    }
    assert_int_equal(blocks, (NREC * RB + BLOCK - 1) / BLOCK);
    free(buf);
    free(dst);
    nf__reader_destroy(r);
    nf__dataset_close(ds);
}

static void sync_zstd(void **state) { (void)state; all_blocks(zds, 1, 0, 0); }
static void sync_raw(void **state) { (void)state; all_blocks(rawds, 0, 0, 0); }
static void sync_direct(void **state)
{
    (void)state;
    all_blocks(zds, 1, 1, 0);
    all_blocks(rawds, 0, 1, 0);
}
/* Every read is cut into 7-byte pieces: the path a short read takes. */
static void split_reads(void **state)
{
    (void)state;
    all_blocks(zds, 1, 0, 7);
    all_blocks(rawds, 0, 1, 1000); /* O_DIRECT remainder falls back to buffered */
}

/* Submit up to the queue depth, reap in any order, every block once. */
static void many_in_flight(void **state)
{
    (void)state;
    struct nf_dataset *ds = open_ds(zds, 0);
    enum { DEPTH = 8 };
    struct nf_reader *r = reader(ds, DEPTH, 0, 0);
    assert_int_equal(nf__reader_depth(r), DEPTH);
    const struct nf_shard_index *idx = nf__dataset_shard_index(ds, 0);
    uint32_t n = idx->nblocks;
    uint8_t *bufs = malloc((size_t)n * BLOCK), *dst = malloc(BLOCK), *seen = calloc(n, 1);
    uint32_t next = 0, got = 0;
    while (got < n) {
        while (next < n) {
            int rc = nf__reader_submit(r, 0, next, bufs + (size_t)next * BLOCK, BLOCK, 1000 + next);
            if (rc == -EBUSY)
                break;
            assert_int_equal(rc, 0);
            next++;
        }
        assert_true(nf__reader_inflight(r) <= DEPTH);
        assert_int_equal(nf__reader_flush(r), 0);
        struct nf_read_done done[DEPTH];
        int k = nf__reader_wait(r, 1, done, DEPTH);
        assert_true(k >= 1);
        for (int i = 0; i < k; i++) {
            uint32_t b = (uint32_t)(done[i].tag - 1000);
            assert_int_equal(done[i].result, 0);
            assert_int_equal(done[i].block, b);
            assert_false(seen[b]);
            seen[b] = 1;
            assert_int_equal(nf__reader_decode(r, 0, b, done[i].data, dst, BLOCK), 0);
            check_block(ds, 0, b, dst, 1);
            got++;
        }
    }
    assert_int_equal(nf__reader_inflight(r), 0);
    /* nothing in flight: wait returns at once with nothing */
    struct nf_read_done d;
    assert_int_equal(nf__reader_wait(r, 1, &d, 1), 0);
    free(bufs);
    free(dst);
    free(seen);
    nf__reader_destroy(r);
    nf__dataset_close(ds);
}

static void records(const char *path, int compressible)
{
    struct nf_dataset *ds = open_ds(path, 0);
    struct nf_reader *r = reader(ds, 2, 0, 0);
    uint8_t *buf = malloc(BLOCK), *blk = malloc(nf__dataset_max_decoded(ds)), rec[RB], want[RB];
    for (uint64_t i = 0; i < NREC; i += 7) {
        if (nf__reader_read_record(r, i, buf, BLOCK, blk, nf__dataset_max_decoded(ds), rec))
            fail_msg("record %llu: %s", (unsigned long long)i, numafeed_last_error());
        nft_pattern(want, i, 1, RB, compressible);
        assert_memory_equal(want, rec, RB);
    }
    assert_int_equal(nf__reader_read_record(r, NREC - 1, buf, BLOCK, blk, BLOCK, rec), 0);
    assert_int_equal(nf__reader_read_record(r, NREC, buf, BLOCK, blk, BLOCK, rec), -ERANGE);
    struct nf_record_loc loc;
    assert_int_equal(nf__dataset_locate(ds, 40, &loc), 0);
    assert_int_equal(loc.shard, 0);
    assert_int_equal(loc.block, 1);
    assert_int_equal(loc.offset, 0);
    assert_int_equal(nf__dataset_locate(ds, 41, &loc), 0);
    assert_int_equal(loc.offset, RB);
    free(buf);
    free(blk);
    nf__reader_destroy(r);
    nf__dataset_close(ds);
}

static void records_zstd(void **state) { (void)state; records(zds, 1); }
static void records_raw(void **state) { (void)state; records(rawds, 0); }

static void bad_calls(void **state)
{
    (void)state;
    struct nf_dataset *ds = open_ds(zds, 0);
    struct nf_reader *r = reader(ds, 2, 0, 0);
    uint8_t buf[BLOCK];
    assert_int_equal(nf__reader_submit(r, 0, 9999, buf, sizeof(buf), 0), -EINVAL);
    assert_int_equal(nf__reader_submit(r, 99, 0, buf, sizeof(buf), 0), -EINVAL);
    assert_int_equal(nf__reader_submit(r, 0, 0, buf, 1, 0), -EINVAL);
    assert_int_equal(nf__reader_buf_bytes(r, 0, 9999), 0);
    /* a synchronous read while asynchronous ones are pending is refused */
    assert_int_equal(nf__reader_submit(r, 0, 0, buf, sizeof(buf), 0), 0);
    uint8_t dst[BLOCK];
    assert_int_equal(nf__reader_read_block(r, 0, 1, buf, sizeof(buf), dst, sizeof(dst)), -EBUSY);
    /* drain: the pending read is waited for and dropped */
    assert_int_equal(nf__reader_inflight(r), 1);
    assert_int_equal(nf__reader_drain(r), 0);
    assert_int_equal(nf__reader_inflight(r), 0);
    assert_int_equal(nf__reader_read_block(r, 0, 1, buf, sizeof(buf), dst, sizeof(dst)), 0);
    for (uint32_t b = 0; b < 2; b++)
        assert_int_equal(nf__reader_submit(r, 0, b, b ? dst : buf, sizeof(buf), b), 0);
    assert_int_equal(nf__reader_submit(r, 0, 2, buf, sizeof(buf), 0), -EBUSY); /* depth 2 */
    nf__reader_destroy(r); /* with reads in flight: waits for them */
    struct nf_reader_options o;
    nf__reader_options_init(&o);
    o.queue_depth = NF_IO_MAX_DEPTH + 1;
    assert_int_equal(nf__reader_create(ds, &o, &r), NUMAFEED_ECONFIG);
    nf__reader_options_init(&o);
    o.direct = 1; /* dataset opened without */
    assert_int_equal(nf__reader_create(ds, &o, &r), NUMAFEED_ECONFIG);
    nf__dataset_close(ds);
}

/* The backend is the options' choice alone: mmap is not a reader backend
 * (the pipe maps), an explicit one says so, and no environment variable
 * changes the default. */
static void backend_choice(void **state)
{
    (void)state;
    struct nf_dataset *ds = open_ds(zds, 0);
    struct nf_reader *r;
    struct nf_reader_options o;
    nf__reader_options_init(&o);
    o.backend = NF_IO_MMAP;
    assert_int_equal(nf__reader_create(ds, &o, &r), NUMAFEED_ECONFIG);
    o.backend = NF_IO_PREAD;
    assert_int_equal(nf__reader_create(ds, &o, &r), 0);
    assert_string_equal(nf__reader_backend(r), "pread");
    assert_string_equal(nf__reader_backend_reason(r), "forced by the reader options");
    nf__reader_destroy(r);
    setenv("NUMAFEED_IO", "pread", 1);
    assert_int_equal(nf__reader_create(ds, NULL, &r), 0);
    assert_null(strstr(nf__reader_backend_reason(r), "NUMAFEED_IO"));
    assert_true(!strcmp(nf__reader_backend(r), "io_uring") ||
                strstr(nf__reader_backend_reason(r), "using pread"));
    nf__reader_destroy(r);
    unsetenv("NUMAFEED_IO");
    nf__dataset_close(ds);
}

/* The file shrinks after open: the kernel returns a short read at end of
 * file, which must be an error naming the file and the offset. */
static void short_read_at_eof(void **state)
{
    (void)state;
    char *path = nft_make_dataset(tmp, "shrink", RB, 200, NUMAFEED_CODEC_NONE, 0, BLOCK, 0);
    struct nf_dataset *ds = open_ds(path, 0);
    struct nf_reader *r = reader(ds, 2, 0, 0);
    const struct nf_shard_index *idx = nf__dataset_shard_index(ds, 0);
    const struct nf_block_info *last = &idx->blocks[idx->nblocks - 1];
    char *shard = nft_shard_path(path, 0);
    assert_int_equal(truncate(shard, (off_t)(last->offset + 10)), 0);
    uint8_t buf[BLOCK], dst[BLOCK];
    int rc = nf__reader_read_block(r, 0, idx->nblocks - 1, buf, sizeof(buf), dst, sizeof(dst));
    assert_int_equal(rc, NUMAFEED_ECORRUPT);
    char want[64];
    snprintf(want, sizeof(want), "short read: end of file at offset %llu",
             (unsigned long long)(last->offset + 10));
    if (!strstr(numafeed_last_error(), want) || !strstr(numafeed_last_error(), "shard-00000.nfs"))
        fail_msg("message: %s", numafeed_last_error());
    /* the earlier blocks are intact and still read */
    assert_int_equal(nf__reader_read_block(r, 0, 0, buf, sizeof(buf), dst, sizeof(dst)), 0);
    nf__reader_destroy(r);
    nf__dataset_close(ds);
    free(shard);
    free(path);
}

/* A reader leaves zstd's frame checksum unchecked (the index's XXH3 of
 * the decoded bytes covers them): damage to those 4 bytes alone costs no
 * data, the block still reads right, and `numafeed check` still reports
 * it; damage to the frame's payload is still an error at the reader. */
static void frame_checksum_left_to_index_hash(void **state)
{
    (void)state;
    char *path = nft_make_dataset(tmp, "fcs", RB, 400, NUMAFEED_CODEC_ZSTD, 1, BLOCK, 0);
    char *shard = nft_shard_path(path, 0);
    size_t len;
    uint8_t *img = nft_read_file(shard, &len);
    struct nf_dataset *ds = open_ds(path, 0);
    const struct nf_shard_index *idx = nf__dataset_shard_index(ds, 0);
    uint32_t b = 0;
    while (b < idx->nblocks && idx->blocks[b].codec != NF_CODEC_ZSTD)
        b++;
    assert_true(b < idx->nblocks);
    struct nf_block_info bi = idx->blocks[b];
    nf__dataset_close(ds);
    uint8_t buf[2 * BLOCK], dst[BLOCK];
    for (int where = 0; where < 2; where++) {
        /* 0: the last byte, inside the frame checksum; 1: the middle */
        size_t at = bi.offset + (where == 0 ? bi.stored_size - 1 : bi.stored_size / 2);
        uint8_t *copy = malloc(len);
        memcpy(copy, img, len);
        copy[at] ^= 0x5a;
        FILE *f = fopen(shard, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(copy, 1, len, f), len);
        fclose(f);
        free(copy);
        ds = open_ds(path, 0);
        struct nf_reader *r = reader(ds, 2, 0, 0);
        int rc = nf__reader_read_block(r, 0, b, buf, sizeof(buf), dst, sizeof(dst));
        if (where == 0) {
            if (rc)
                fail_msg("frame checksum damaged: %s", numafeed_last_error());
            check_block(ds, 0, b, dst, 1);
        } else {
            assert_true(rc == NUMAFEED_ECHECKSUM || rc == NUMAFEED_ECORRUPT);
        }
        nf__reader_destroy(r);
        nf__dataset_close(ds);
        char *out = NULL;
        assert_int_not_equal(nf_run(&out, "%s check %s 2>&1", NF_CLI, path), 0);
        if (!strstr(out, "shard-00000.nfs"))
            fail_msg("numafeed check: %s", out);
        free(out);
    }
    free(img);
    free(shard);
    free(path);
}

int main(int argc, char **argv)
{
    backend = argc > 1 ? argv[1] : "";
    if (strcmp(backend, "pread") && strcmp(backend, "io_uring")) {
        fprintf(stderr, "usage: %s pread|io_uring\n", argv[0]);
        return 1;
    }
    backend_value = strcmp(backend, "pread") ? NF_IO_URING : NF_IO_PREAD;
    if (!strcmp(backend, "io_uring")) {
        /* Skip, not fail, where the machine refuses io_uring. */
        char *t = nf_tmpdir();
        char *p = nft_make_dataset(t, "probe", 8, 1, NUMAFEED_CODEC_NONE, 0, 0, 0);
        struct nf_dataset *ds;
        struct nf_reader *r = NULL;
        int rc = nf__dataset_open(p, NULL, &ds);
        struct nf_reader_options o;
        nf__reader_options_init(&o);
        o.backend = NF_IO_URING;
        if (!rc && (rc = nf__reader_create(ds, &o, &r)) && rc != NUMAFEED_ECONFIG) {
            fprintf(stderr, "io_uring unavailable here: %s\n", numafeed_last_error());
            nf__dataset_close(ds);
            nf_rmtree(t);
            return NF_TEST_SKIP;
        }
        nf__reader_destroy(r);
        nf__dataset_close(ds);
        nf_rmtree(t);
        free(t);
        free(p);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sync_zstd),       cmocka_unit_test(sync_raw),
        cmocka_unit_test(sync_direct),     cmocka_unit_test(split_reads),
        cmocka_unit_test(many_in_flight),  cmocka_unit_test(records_zstd),
        cmocka_unit_test(records_raw),     cmocka_unit_test(bad_calls),
        cmocka_unit_test(backend_choice),      cmocka_unit_test(short_read_at_eof),
        cmocka_unit_test(frame_checksum_left_to_index_hash),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
