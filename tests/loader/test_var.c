// SPDX-License-Identifier: Apache-2.0
/*
 * Records with variable-length fields (format version 2) through the
 * writer, the reader and the loader: every record exactly once per epoch
 * for 1 to 4 threads, with each field's bytes equal to what was written
 * (empty values included), the offsets of every batch right, the same
 * order for any thread count, both worker paths (streaming and whole
 * window), and resuming mid-epoch. Run per io like test_loader.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "internal.h"
#include "io/io.h"

enum { N = 1500 };
static char *base, *dir;
static char *main_dir, *base2, *dir2; /* setup's dataset; a test's own */
static int io;

/* Record i: key "rec-<i>" (every 7th with a two-byte character), data of
 * (i * 37) % 700 bytes (some empty), label 3i, tokens (i * 13) % 50 int32. */
static size_t key_of(uint64_t i, char *buf)
{
    return (size_t)sprintf(buf, i % 7 ? "rec-%llu" : "r\xc3\xa9" "c-%llu", (unsigned long long)i);
}
static size_t data_len(uint64_t i)
{
    return (size_t)((i * 37) % 700);
}
static uint8_t data_byte(uint64_t i, size_t k)
{
    return (uint8_t)(i * 31 + k * 7);
}
static size_t ntok(uint64_t i)
{
    return (size_t)((i * 13) % 50);
}

static const struct numafeed_field fields[] = {
    {.name = "key", .dtype = "str"},
    {.name = "data", .dtype = "bytes"},
    {.name = "label", .dtype = "int64"},
    {.name = "tokens", .dtype = "int32", .ndim = 1, .shape = {NUMAFEED_VARIABLE}},
};

static int pack(const char *out, uint64_t block_bytes)
{
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.block_bytes = block_bytes;
    o.shard_bytes = 64 << 10; /* several shards */
    numafeed_writer *w;
    int rc = numafeed_writer_create(out, fields, 4, &o, &w);
    uint8_t data[700];
    int32_t tok[50];
    for (uint64_t i = 0; !rc && i < N; i++) {
        char key[64];
        size_t klen = key_of(i, key), dl = data_len(i);
        for (size_t k = 0; k < dl; k++)
            data[k] = data_byte(i, k);
        for (size_t k = 0; k < ntok(i); k++)
            tok[k] = (int32_t)(i * 1000 + k);
        int64_t label = (int64_t)i * 3;
        const void *d[4] = {key, data, &label, tok};
        size_t sz[4] = {klen, dl, 8, ntok(i) * 4};
        rc = numafeed_writer_add(w, d, sz);
    }
    if (!rc)
        rc = numafeed_writer_finish(w);
    numafeed_writer_destroy(w);
    return rc;
}

static int setup(void **state)
{
    (void)state;
    io = nf_test_io();
    if (nf_scratch(&base, &dir))
        return -1;
    main_dir = dir;
    return pack(dir, 4096) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    nf_scratch_free(base, dir);
    return 0;
}

/* Every field of position k of batch b against record id's. */
static void check_record(const struct loader_batch *b, uint32_t k)
{
    uint64_t id = b->record_ids[k];
    assert_true(id < N);
    const struct loader_field *f = b->fields;
    char key[64];
    size_t klen = key_of(id, key);
    assert_int_equal(f[0].kind, LOADER_FIELD_STR);
    assert_int_equal(f[0].offsets[k + 1] - f[0].offsets[k], (int64_t)klen);
    assert_memory_equal((const char *)f[0].host + f[0].offsets[k], key, klen);
    assert_int_equal(f[1].kind, LOADER_FIELD_BYTES);
    size_t dl = data_len(id);
    assert_int_equal(f[1].offsets[k + 1] - f[1].offsets[k], (int64_t)dl);
    for (size_t j = 0; j < dl; j++)
        if (((const uint8_t *)f[1].host)[f[1].offsets[k] + (int64_t)j] != data_byte(id, j))
            fail_msg("record %llu: data byte %zu differs", (unsigned long long)id, j);
    assert_int_equal(f[2].kind, LOADER_FIELD_FIXED);
    assert_int_equal(((const int64_t *)f[2].host)[k], (int64_t)id * 3);
    assert_int_equal(f[3].kind, LOADER_FIELD_ARRAY);
    assert_int_equal(f[3].offsets[k + 1] - f[3].offsets[k], (int64_t)ntok(id));
    for (size_t j = 0; j < ntok(id); j++)
        assert_int_equal(((const int32_t *)f[3].host)[f[3].offsets[k] + (int64_t)j],
                         (int32_t)(id * 1000 + j));
}

/* One epoch: ids in delivery order; every field checked. */
static uint64_t epoch(loader_t *L, uint64_t *ids)
{
    uint64_t n = 0;
    struct loader_batch b = LOADER_BATCH_INIT;
    int rc;
    while ((rc = loader_next(L, 0, &b, 20000)) == 0) {
        assert_int_equal(b.nfields, 4);
        for (unsigned f = 0; f < 4; f++)
            if (b.fields[f].kind != LOADER_FIELD_FIXED) {
                assert_int_equal(b.fields[f].offsets[0], 0);
                assert_int_equal(b.fields[f].values_bytes,
                                 (uint64_t)b.fields[f].offsets[b.records] *
                                     numafeed_dtype_size(b.fields[f].dtype));
            }
        for (uint32_t k = 0; k < b.records; k++) {
            check_record(&b, k);
            ids[n++] = b.record_ids[k];
        }
        assert_int_equal(loader_release(L, &b), 0);
    }
    if (rc != NUMAFEED_EEPOCH_END)
        fail_msg("loader_next: %s: %s", numafeed_strerror(rc), nf_loader_error(L));
    return n;
}

static uint64_t make_epochs; /* loader_config.epochs of the next make (0: no end) */

/* A test that changed what make() opens puts it back, also after a
 * failure: setup's dataset, no end, the usual copies. */
static int restore_make(void **state)
{
    make_epochs = 0;
    dir = main_dir;
    if (base2)
        nf_scratch_free(base2, dir2);
    base2 = dir2 = NULL;
    return nf_restore_copies(state);
}

static loader_t *make(uint32_t threads, uint32_t prefetch, uint64_t window, uint64_t start)
{
    struct loader_config c;
    loader_config_init(&c);
    c.epochs = make_epochs;
    c.path = dir;
    c.io = io;
    c.threads = threads;
    c.prefetch = prefetch;
    c.batch_size = 32;
    c.seed = 5;
    c.world_size = 1;
    c.device = LOADER_DEVICE_CPU;
    c.shuffle_window = window;
    c.start_batch = start;
    loader_t *L;
    if (loader_create(&c, &L))
        fail_msg("loader_create: %s", numafeed_last_error());
    return L;
}

static void assert_once(const uint64_t *ids, uint64_t n)
{
    static unsigned char seen[N];
    memset(seen, 0, sizeof(seen));
    assert_int_equal(n, N);
    for (uint64_t i = 0; i < n; i++) {
        assert_false(seen[ids[i]]);
        seen[ids[i]] = 1;
    }
}

/* 1 to 4 threads, the default ring (streaming) and a two-slot ring with
 * large windows (every unit a whole window): same order, every field. */
static void test_exactly_once_any_path(void **state)
{
    (void)state;
    static uint64_t ref[N], got[N];
    loader_t *L = make(1, 0, 0, 0);
    assert_int_equal(epoch(L, ref), N);
    assert_once(ref, N);
    loader_destroy(L);
    for (uint32_t t = 1; t <= 4; t++) {
        for (int path = 0; path < 2; path++) {
            L = make(t, path ? 2 : 0, path ? 300 : 0, 0);
            for (int e = 0; e < 2; e++) {
                assert_int_equal(epoch(L, got), N);
                assert_once(got, N);
            }
            loader_destroy(L);
        }
        L = make(t, 0, 0, 0);
        assert_int_equal(epoch(L, got), N);
        assert_memory_equal(ref, got, sizeof(ref)); /* order: a function of the seed */
        loader_destroy(L);
    }
}

/* A window is whole blocks, so each block is read once an epoch: the
 * blocks' record counts vary here, and windows cut at every C records
 * would cut one at each end, which both neighbouring windows' workers
 * would read. Any thread count and window, streamed or whole-window. */
static void test_each_block_read_once(void **state)
{
    (void)state;
    numafeed_dataset *ds;
    assert_int_equal(numafeed_dataset_open(dir, &ds), 0);
    uint64_t nblocks = numafeed_dataset_blocks(ds);
    numafeed_dataset_close(ds);
    assert_true(nblocks > 4);
    static uint64_t got[N];
    static const uint64_t windows[] = {0, 37, 300};
    make_epochs = 2; /* nothing past them is read */
    for (uint32_t t = 1; t <= 3; t++)
        for (size_t w = 0; w < NF_ARRAY_SIZE(windows); w++)
            for (int path = 0; path < 2; path++) {
                loader_t *L = make(t, path ? 2 : 0, windows[w], 0);
                for (int e = 0; e < 2; e++) {
                    assert_int_equal(epoch(L, got), N);
                    assert_once(got, N);
                }
                struct loader_stats st = {.size = sizeof(st)};
                assert_int_equal(loader_stats(L, 0, &st), 0);
                loader_destroy(L);
                if (st.blocks_decoded != 2 * nblocks)
                    fail_msg("threads %u, window %llu, %s: %llu blocks read in 2 epochs of %llu",
                             t, (unsigned long long)windows[w], path ? "2 slots" : "streamed",
                             (unsigned long long)st.blocks_decoded,
                             (unsigned long long)nblocks);
            }
}

/* Large blocks, streamed with non-temporal stores (from 256 bytes here,
 * so that this dataset's records take that copy): a block's records are
 * copied one after another and the ends of their copies (the parts of a
 * destination line that are not whole lines) are written after them, in
 * lists that fill up several times in a block of hundreds of records:
 * every byte still lands where it belongs, at 1 and 2 threads. */
static void test_large_blocks_streamed(void **state)
{
    (void)state;
    nf_stream_small_copies();
    assert_int_equal(nf_scratch(&base2, &dir2), 0);
    assert_int_equal(pack(dir2, 128 << 10), 0);
    numafeed_dataset *ds;
    assert_int_equal(numafeed_dataset_open(dir2, &ds), 0);
    uint64_t nblocks = numafeed_dataset_blocks(ds);
    numafeed_dataset_close(ds);
    assert_true(nblocks < N / 200); /* hundreds of records a block */
    dir = dir2;
    static uint64_t got[N];
    make_epochs = 1; /* the ring is empty when each unit starts: streamed */
    for (uint32_t t = 1; t <= 2; t++) {
        loader_t *L = make(t, 64, 0, 0);
        assert_int_equal(epoch(L, got), N);
        assert_once(got, N);
        struct loader_stats st = {.size = sizeof(st)};
        assert_int_equal(loader_stats(L, 0, &st), 0);
        loader_destroy(L);
        assert_true(st.units > 0);
        assert_int_equal(st.units_windowed, 0);
    }
}

/* Starting at batch 17 gives exactly what an uninterrupted loader gives
 * from there. */
static void test_resume(void **state)
{
    (void)state;
    static uint64_t ref[N], got[N];
    loader_t *L = make(3, 0, 0, 0);
    assert_int_equal(epoch(L, ref), N);
    loader_destroy(L);
    L = make(2, 0, 0, 17);
    uint64_t n = epoch(L, got);
    assert_int_equal(n, N - 17 * 32);
    assert_memory_equal(ref + 17 * 32, got, n * sizeof(*got));
    loader_destroy(L);
}

/* The stored records read back one by one; the length table, refused
 * when it lies. */
static void test_reader_and_lying_lengths(void **state)
{
    (void)state;
    struct nf_dataset *ds;
    assert_int_equal(nf__dataset_open(dir, NULL, &ds), 0);
    assert_int_equal(nf__dataset_layout(ds)->nvar, 3);
    assert_int_equal(nf__dataset_layout(ds)->record_bytes, 8);
    struct nf_reader *r;
    assert_int_equal(nf__reader_create(ds, NULL, &r), 0);
    size_t st = nf__dataset_max_stored(ds) + 8192, dec = nf__dataset_max_decoded(ds);
    uint8_t *buf = malloc(st), *blk = malloc(dec), rec[2048];
    for (uint64_t i = 0; i < N; i += 97) {
        uint64_t sz = nf__dataset_record_size(ds, i);
        char key[64];
        size_t klen = key_of(i, key);
        assert_int_equal(sz, 8 + klen + data_len(i) + 4 * ntok(i));
        assert_int_equal(nf__reader_read_record(r, i, buf, st, blk, dec, rec), 0);
        assert_int_equal(*(int64_t *)(void *)rec, (int64_t)i * 3); /* fixed part first */
        assert_memory_equal(rec + 8, key, klen);                   /* then in field order */
    }
    nf__reader_destroy(r);
    nf__dataset_close(ds);
    free(buf);
    free(blk);
    struct nf_check_summary sum;
    assert_int_equal(nf__check_dataset(dir, 0, NULL, NULL, &sum), 0);
    assert_int_equal(sum.records, N);
}

/* Writer refusals that leave it usable: a record over max_record_bytes,
 * bad UTF-8, a fixed field of the wrong size; v1 for fixed layouts. */
static void test_writer_refusals(void **state)
{
    (void)state;
    char *b2, *d2;
    assert_int_equal(nf_scratch(&b2, &d2), 0);
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.max_record_bytes = 100;
    numafeed_writer *w;
    assert_int_equal(numafeed_writer_create(d2, fields, 4, &o, &w), 0);
    static uint8_t big[200];
    int64_t label = 1;
    const void *d[4] = {"k", big, &label, big};
    size_t sz[4] = {1, 200, 8, 0};
    assert_int_equal(numafeed_writer_add(w, d, sz), -EFBIG);
    assert_non_null(strstr(numafeed_last_error(), "max_record_bytes"));
    d[0] = "\xff\xfe";
    sz[0] = 2;
    sz[1] = 10;
    assert_int_equal(numafeed_writer_add(w, d, sz), -EINVAL);
    assert_non_null(strstr(numafeed_last_error(), "UTF-8"));
    d[0] = "ok";
    sz[2] = 4;
    assert_int_equal(numafeed_writer_add(w, d, sz), -EINVAL);
    sz[2] = 8;
    sz[3] = 6; /* not whole int32 elements */
    assert_int_equal(numafeed_writer_add(w, d, sz), -EINVAL);
    sz[3] = 0;
    assert_int_equal(numafeed_writer_add(w, d, sz), 0); /* still usable */
    assert_int_equal(numafeed_writer_append(w, big, 1), -EINVAL); /* fixed records only */
    assert_int_equal(numafeed_writer_finish(w), 0);
    numafeed_writer_destroy(w);
    char *man;
    assert_true(asprintf(&man, "%s/manifest.json", d2) > 0);
    char *out = NULL;
    assert_int_equal(nf_run(&out, "grep -c '\"version\": 2' %s", man), 0);
    free(out);
    free(man);
    nf_scratch_free(b2, d2);
}

/* Records shorter than 8 bytes in a batch larger than the count of longer
 * ones: the slot bound reads the short lengths' buckets (an undefined
 * shift under UBSan before), and every byte arrives. A dataset whose
 * records are all empty is refused at finish, not written without blocks. */
static void test_short_records(void **state)
{
    (void)state;
    char *b2, *d2;
    assert_int_equal(nf_scratch(&b2, &d2), 0);
    static const struct numafeed_field one[] = {{.name = "data", .dtype = "bytes"}};
    numafeed_writer *w;
    assert_int_equal(numafeed_writer_create(d2, one, 1, NULL, &w), 0);
    static const uint8_t bytes[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint64_t total = 0;
    for (size_t i = 0; i < 40; i++) {
        const void *d[1] = {bytes};
        size_t sz[1] = {i % 8};
        total += sz[0];
        assert_int_equal(numafeed_writer_add(w, d, sz), 0);
    }
    assert_int_equal(numafeed_writer_finish(w), 0);
    numafeed_writer_destroy(w);
    struct loader_config cfg;
    loader_config_init(&cfg);
    cfg.path = d2;
    cfg.batch_size = 64;
    cfg.device = LOADER_DEVICE_CPU;
    cfg.io = io;
    loader_t *L;
    assert_int_equal(loader_create(&cfg, &L), 0);
    struct loader_batch b = LOADER_BATCH_INIT;
    assert_int_equal(loader_next(L, 0, &b, -1), 0);
    assert_int_equal(b.records, 40);
    assert_int_equal(b.fields[0].offsets[40], (int64_t)total);
    loader_release(L, &b);
    loader_destroy(L);
    nf_scratch_free(b2, d2);

    assert_int_equal(nf_scratch(&b2, &d2), 0);
    assert_int_equal(numafeed_writer_create(d2, one, 1, NULL, &w), 0);
    for (int i = 0; i < 3; i++) {
        const void *d[1] = {bytes};
        size_t sz[1] = {0};
        assert_int_equal(numafeed_writer_add(w, d, sz), 0);
    }
    assert_int_equal(numafeed_writer_finish(w), -EINVAL);
    assert_non_null(strstr(numafeed_last_error(), "every record is 0 bytes"));
    numafeed_writer_destroy(w);
    nf_scratch_free(b2, d2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exactly_once_any_path),
        cmocka_unit_test_teardown(test_each_block_read_once, restore_make),
        cmocka_unit_test_teardown(test_large_blocks_streamed, restore_make),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_reader_and_lying_lengths),
        cmocka_unit_test(test_writer_refusals),
        cmocka_unit_test(test_short_records),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
