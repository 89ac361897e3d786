// SPDX-License-Identifier: Apache-2.0
/*
 * The pool end to end in host mode: exactly-once delivery of the right bytes
 * for many thread counts and ring depths, the same order regardless of
 * either, epochs, ranks, persistence, timeouts, destroy while busy, and a
 * corrupt shard surfacing at loader_next. The reader's wait is wrapped
 * (--wrap=nf__reader_wait) so a test can hold workers "in I/O".
 */
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "io/io.h"

/* ---- reader wait hook: hold workers inside I/O on demand ---- */
static atomic_int hold_io;      /* 1: every wait sleeps until cleared */
static atomic_int held;         /* workers currently held */
int __real_nf__reader_wait(struct nf_reader *r, unsigned min, struct nf_read_done *done,
                            unsigned max);
int __wrap_nf__reader_wait(struct nf_reader *r, unsigned min, struct nf_read_done *done,
                            unsigned max)
{
    if (atomic_load(&hold_io)) {
        atomic_fetch_add(&held, 1);
        while (atomic_load(&hold_io))
            usleep(1000);
        atomic_fetch_sub(&held, 1);
    }
    return __real_nf__reader_wait(r, min, done, max);
}

/* ---- a dataset of known records ---- */
/* 67 tokens: the tokens field (268 bytes) lands at offsets that are not
 * multiples of 16 in the slots, for the non-temporal copy's head and tail
 * (test_streamed_copies) */
enum { NREC = 1000, TOK = 67, REC = TOK * 4 + 8 };
static char *dir_zstd, *dir_raw;
static uint8_t *source; /* NREC * REC */

static void record_bytes(uint64_t i, uint8_t *out)
{
    /* token-like and compressible, different per record */
    int32_t *t = (int32_t *)(void *)out;
    for (int k = 0; k < TOK; k++)
        t[k] = (int32_t)((i * 7 + (uint64_t)k * (i % 13)) % 5000);
    /* every byte of the field's last token differs between records, so a
     * copy that drops a field's last bytes cannot pass on stale slot bytes */
    t[TOK - 1] = (int32_t)(uint32_t)(i * 2654435761u);
    uint64_t tag = i * 0x9e3779b97f4a7c15ull;
    memcpy(out + TOK * 4, &tag, 8);
}

static char *pack(int codec, uint64_t block_bytes, uint64_t shard_bytes)
{
    char *base = nf_tmpdir(), *dir;
    assert_non_null(base);
    assert_true(asprintf(&dir, "%s/ds", base) > 0);
    free(base);
    struct numafeed_field f[2] = {
        {.name = "tokens", .dtype = "int32", .ndim = 1, .shape = {TOK}},
        {.name = "tag", .dtype = "uint64", .ndim = 0},
    };
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.codec = codec;
    o.block_bytes = block_bytes;
    o.shard_bytes = shard_bytes;
    numafeed_writer *w;
    if (numafeed_writer_create(dir, f, 2, &o, &w))
        fail_msg("writer_create: %s", numafeed_last_error());
    assert_int_equal(numafeed_writer_append(w, source, NREC), 0);
    assert_int_equal(numafeed_writer_finish(w), 0);
    numafeed_writer_destroy(w);
    return dir;
}

/* ctest runs this program once per io (NF_TEST_IO: the matrix) */
static int io_backend = LOADER_IO_AUTO;

static int setup(void **state)
{
    (void)state;
    io_backend = nf_test_io();
    source = malloc((size_t)NREC * REC);
    for (uint64_t i = 0; i < NREC; i++)
        record_bytes(i, source + i * REC);
    /* small blocks and shards: many blocks, several shards, short tails */
    dir_zstd = pack(NUMAFEED_CODEC_ZSTD, 10 * REC, 300 * REC);
    dir_raw = pack(NUMAFEED_CODEC_NONE, 7 * REC, 1 << 30);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (char **d = (char *[]){dir_zstd, dir_raw, NULL}; *d; d++) {
        char *slash = strrchr(*d, '/');
        *slash = '\0';
        nf_rmtree(*d);
        free(*d);
    }
    free(source);
    return 0;
}


static loader_t *make(const char *dir, uint32_t threads, uint32_t depth, int shuffle,
                      uint64_t seed, uint32_t batch)
{
    struct loader_config c;
    loader_config_init(&c);
    c.io = io_backend;
    c.path = dir;
    c.threads = threads;
    c.prefetch = depth;
    c.shuffle = shuffle;
    c.seed = seed;
    c.batch_size = batch;
    c.world_size = 1;
    loader_t *L = NULL;
    int rc = loader_create(&c, &L);
    if (rc)
        fail_msg("loader_create: %s: %s", numafeed_strerror(rc), numafeed_last_error());
    return L;
}

/* Run one epoch; check bytes against the source; ids in delivery order. */
static uint64_t run_epoch(loader_t *L, int gpu, uint64_t *ids, uint64_t expect_epoch)
{
    uint64_t n = 0, index = 0;
    for (;;) {
        struct loader_batch b = LOADER_BATCH_INIT;
        int rc = loader_next(L, gpu, &b, 10000);
        if (rc == NUMAFEED_EEPOCH_END)
            break;
        if (rc)
            fail_msg("loader_next: %s: %s", numafeed_strerror(rc), nf_loader_error(L));
        assert_int_equal(b.epoch, expect_epoch);
        assert_int_equal(b.index, index++);
        assert_int_equal(b.nfields, 2);
        assert_string_equal(b.fields[0].name, "tokens");
        assert_string_equal(b.fields[0].dtype, "int32");
        assert_int_equal(b.fields[1].record_bytes, 8);
        for (uint32_t i = 0; i < b.records; i++) {
            uint64_t id = b.record_ids[i];
            assert_true(id < NREC);
            const uint8_t *src = source + id * REC;
            if (memcmp((uint8_t *)b.fields[0].host + (size_t)i * TOK * 4, src, TOK * 4) ||
                memcmp((uint8_t *)b.fields[1].host + (size_t)i * 8, src + TOK * 4, 8))
                fail_msg("record %llu: bytes differ from the source", (unsigned long long)id);
            ids[n++] = id;
        }
        assert_int_equal(loader_release(L, &b), 0);
    }
    return n;
}

static void assert_permutation(const uint64_t *ids, uint64_t n)
{
    assert_int_equal(n, NREC);
    unsigned char seen[NREC] = {0};
    for (uint64_t i = 0; i < n; i++) {
        if (seen[ids[i]])
            fail_msg("record %llu delivered twice", (unsigned long long)ids[i]);
        seen[ids[i]] = 1;
    }
}

static void test_exactly_once_any_threads(void **state)
{
    (void)state;
    uint64_t ref[3][NREC], ids[NREC];
    /* 2, 3: too small for a unit's batches (window at a time); 8: some units
     * stream, some not; 0: the default ring, every unit streams */
    static const uint32_t depths[] = {2, 3, 8, 0};
    for (int ds = 0; ds < 2; ds++) {
        const char *dir = ds ? dir_raw : dir_zstd;
        for (uint32_t t = 1; t <= 8; t++) {
            for (size_t d = 0; d < NF_ARRAY_SIZE(depths); d++) {
                loader_t *L = make(dir, t, depths[d], 1, 11, 24);
                for (uint64_t e = 0; e < 3; e++) {
                    uint64_t n = run_epoch(L, 0, ids, e);
                    assert_permutation(ids, n);
                    if (t == 1 && d == 0)
                        memcpy(ref[e], ids, sizeof(ids));
                    else if (memcmp(ref[e], ids, sizeof(ids)))
                        fail_msg("%s: order differs with %u threads, depth %u, epoch %llu",
                                 ds ? "raw" : "zstd", t, depths[d], (unsigned long long)e);
                }
                loader_destroy(L);
            }
        }
        /* shuffled: each epoch its own order */
        assert_memory_not_equal(ref[0], ref[1], sizeof(ref[0]));
        assert_memory_not_equal(ref[1], ref[2], sizeof(ref[0]));
    }
}

/* The records here (268 and 8 bytes) are copied into slots with memcpy;
 * copied with non-temporal stores (from 256 bytes), whose heads and tails
 * land mid-line at these offsets, every byte is still where it belongs,
 * streamed and a window at a time, at 1 and 3 threads. */
static void test_streamed_copies(void **state)
{
    (void)state;
    nf_stream_small_copies();
    uint64_t ids[NREC];
    for (int ds = 0; ds < 2; ds++)
        for (uint32_t t = 1; t <= 3; t += 2)
            for (uint32_t depth = 0; depth <= 2; depth += 2) {
                loader_t *L = make(ds ? dir_raw : dir_zstd, t, depth, 1, 11, 24);
                assert_permutation(ids, run_epoch(L, 0, ids, 0));
                loader_destroy(L);
            }
}

/* A caller may hold ring_depth - 1 batches while it waits for the next.
 * Streaming units touch several batches at once; one that waited for all
 * of their slots would wait for a batch the caller holds while the caller
 * waits for that unit (seen as a hang in the Python suite, threads 1,
 * prefetch 2). Every depth, holding depth - 1 batches, one epoch, exactly
 * once. */
static void test_hold_depth_minus_one(void **state)
{
    (void)state;
    static const uint32_t depths[] = {2, 3, 4, 6};
    for (int ds = 0; ds < 2; ds++) {
        for (size_t d = 0; d < NF_ARRAY_SIZE(depths); d++) {
            uint32_t depth = depths[d];
            for (uint32_t t = 1; t <= 3; t += 2) {
                loader_t *L = make(ds ? dir_raw : dir_zstd, t, depth, 1, 3, 77);
                struct loader_batch kept[8];
                for (int k = 0; k < 8; k++)
                    kept[k] = (struct loader_batch)LOADER_BATCH_INIT;
                unsigned nheld = 0;
                uint64_t ids[NREC], n = 0;
                for (;;) {
                    if (nheld == depth - 1) {
                        assert_int_equal(loader_release(L, &kept[0]), 0);
                        memmove(kept, kept + 1, --nheld * sizeof(kept[0]));
                    }
                    int rc = loader_next(L, 0, &kept[nheld], 10000);
                    if (rc == NUMAFEED_EEPOCH_END)
                        break;
                    if (rc)
                        fail_msg("depth %u, %u threads, holding %u: loader_next: %s: %s", depth,
                                 t, nheld, numafeed_strerror(rc), nf_loader_error(L));
                    for (uint32_t i = 0; i < kept[nheld].records; i++)
                        ids[n++] = kept[nheld].record_ids[i];
                    nheld++;
                }
                while (nheld)
                    assert_int_equal(loader_release(L, &kept[--nheld]), 0);
                assert_permutation(ids, n);
                loader_destroy(L);
            }
        }
    }
}

/* The same exactly-once, same-bytes, same-order checks reading in place
 * from the mapping (LOADER_IO_MMAP), against pread's order. */
static void test_mmap_same_as_reads(void **state)
{
    (void)state;
    uint64_t a[NREC], b[NREC];
    for (int ds = 0; ds < 2; ds++) {
        const char *dir = ds ? dir_raw : dir_zstd;
        for (uint32_t t = 1; t <= 4; t += 3) {
            io_backend = LOADER_IO_PREAD;
            loader_t *L = make(dir, t, 0, 1, 21, 16);
            run_epoch(L, 0, a, 0);
            loader_destroy(L);
            io_backend = LOADER_IO_MMAP;
            L = make(dir, t, 0, 1, 21, 16);
            struct loader_pool_info pi = {.size = sizeof(pi)};
            assert_int_equal(loader_pool_info(L, 0, &pi), 0);
            assert_string_equal(pi.io_backend, "mmap");
            for (uint64_t e = 0; e < 2; e++) {
                assert_int_equal(run_epoch(L, 0, b, e), NREC);
                assert_permutation(b, NREC);
                if (e == 0)
                    assert_memory_equal(a, b, sizeof(a));
            }
            loader_destroy(L);
        }
    }
    io_backend = nf_test_io();
}

static void test_seed_and_no_shuffle(void **state)
{
    (void)state;
    uint64_t a[NREC], b[NREC];
    loader_t *L = make(dir_zstd, 2, 4, 1, 5, 32);
    run_epoch(L, 0, a, 0);
    loader_destroy(L);
    L = make(dir_zstd, 3, 5, 1, 5, 32);
    run_epoch(L, 0, b, 0);
    loader_destroy(L);
    assert_memory_equal(a, b, sizeof(a)); /* same seed: same order */
    L = make(dir_zstd, 2, 4, 1, 6, 32);
    run_epoch(L, 0, b, 0);
    loader_destroy(L);
    assert_memory_not_equal(a, b, sizeof(a));
    L = make(dir_zstd, 2, 4, 0, 6, 32);
    for (uint64_t e = 0; e < 2; e++) {
        assert_int_equal(run_epoch(L, 0, a, e), NREC);
        for (uint64_t i = 0; i < NREC; i++)
            assert_int_equal(a[i], i); /* dataset order */
    }
    loader_destroy(L);
}

static void test_ranks(void **state)
{
    (void)state;
    enum { W = 3 };
    unsigned char seen[NREC] = {0};
    uint64_t total = 0, nb = 0;
    for (uint32_t r = 0; r < W; r++) {
        struct loader_config c;
        loader_config_init(&c);
        c.path = dir_zstd;
        c.rank = r;
        c.world_size = W;
        c.batch_size = 50;
        c.seed = 3;
        loader_t *L;
        assert_int_equal(loader_create(&c, &L), 0);
        if (r == 0)
            nb = loader_epoch_batches(L);
        assert_int_equal(loader_epoch_batches(L), nb); /* equal batch counts */
        uint64_t ids[NREC], batches = 0;
        struct loader_batch b = LOADER_BATCH_INIT;
        uint64_t n = 0;
        int rc;
        while ((rc = loader_next(L, 0, &b, 10000)) == 0) {
            for (uint32_t i = 0; i < b.records; i++)
                ids[n++] = b.record_ids[i];
            batches++;
            loader_release(L, &b);
        }
        assert_int_equal(rc, NUMAFEED_EEPOCH_END);
        assert_int_equal(batches, nb);
        for (uint64_t i = 0; i < n; i++) {
            assert_false(seen[ids[i]]); /* disjoint */
            seen[ids[i]] = 1;
        }
        total += n;
        loader_destroy(L);
    }
    assert_int_equal(total, NREC); /* complete */
}

static void test_persistence(void **state)
{
    (void)state;
    loader_t *L = make(dir_zstd, 3, 3, 1, 1, 40);
    struct loader_pool_info before = {.size = sizeof(before)}, after = {.size = sizeof(after)};
    assert_int_equal(loader_pool_info(L, 0, &before), 0);
    assert_int_equal(before.threads, 3);
    for (unsigned i = 0; i < 3; i++)
        assert_true(before.tids[i] > 0);
    void *slots[64];
    int nslots = 0;
    uint64_t ids[NREC];
    for (uint64_t e = 0; e < 4; e++) {
        struct loader_batch b = LOADER_BATCH_INIT;
        int rc;
        uint64_t n = 0;
        while ((rc = loader_next(L, 0, &b, 10000)) == 0) {
            int known = 0;
            for (int i = 0; i < nslots; i++)
                known |= slots[i] == b.fields[0].host;
            if (!known) {
                assert_true(nslots < 64);
                slots[nslots++] = b.fields[0].host;
            }
            for (uint32_t i = 0; i < b.records; i++)
                ids[n++] = b.record_ids[i];
            loader_release(L, &b);
        }
        assert_int_equal(rc, NUMAFEED_EEPOCH_END);
        assert_permutation(ids, n);
    }
    assert_int_equal(nslots, 3); /* the same ring, epoch after epoch */
    assert_int_equal(loader_pool_info(L, 0, &after), 0);
    assert_memory_equal(before.tids, after.tids, sizeof(before.tids)); /* the same threads */
    assert_true(after.mbind || after.notes[0]);
    assert_int_equal(after.node, 0);
    struct loader_stats st = {.size = sizeof(st)};
    assert_int_equal(loader_stats(L, 0, &st), 0);
    assert_int_equal(st.records, 4 * NREC);
    assert_true(st.wait_p99_ns >= st.wait_p50_ns);
    assert_true(st.wait_max_ns >= st.wait_p99_ns);
    loader_destroy(L);
}

/* The ring's first touch is shared by the workers: with a ring of many
 * 2 MiB steps and several workers, every sampled page must be resident and
 * on the node when loader_create returns (a share left untouched would be
 * reported by move_pages as not present), and the batches must be intact. */
static void test_ring_touched_by_every_worker(void **state)
{
    (void)state;
    for (uint32_t threads = 1; threads <= 5; threads += 2) {
        /* 64 slots of 512 records: about 9 MiB, five 2 MiB steps or more */
        loader_t *L = make(dir_raw, threads, 64, 1, 3, 512);
        struct loader_pool_info pi = {.size = sizeof(pi)};
        assert_int_equal(loader_pool_info(L, 0, &pi), 0);
        assert_true((size_t)pi.prefetch * pi.slot_bytes >= (size_t)8 << 20);
        /* a page not present makes the placement unverified with its
         * move_pages status in the notes; only a refused move_pages
         * (seccomp) may leave it unverified here */
        if (!pi.verified)
            assert_non_null(strstr(pi.notes, "placement not verified"));
        else
            assert_int_equal(pi.pages_on_node, pi.pages);
        assert_int_equal(pi.pages_strayed, 0); /* one node: nothing to move */
        assert_true(pi.pages > 0);
        /* a caller built before pages_strayed existed gets its struct
         * filled up to its own size and nothing past it */
        struct {
            struct loader_pool_info pi;
            unsigned char guard[64];
        } old;
        memset(&old, 0xa5, sizeof(old));
        old.pi.size = offsetof(struct loader_pool_info, pages_strayed);
        assert_int_equal(loader_pool_info(L, 0, &old.pi), 0);
        assert_int_equal(old.pi.pages, pi.pages);
        const unsigned char *past = (const unsigned char *)&old.pi + old.pi.size;
        for (size_t k = 0; k < sizeof(old) - old.pi.size; k++)
            assert_int_equal(past[k], 0xa5);
        assert_true(pi.setup_ring_us > 0);
        uint64_t ids[NREC];
        assert_int_equal(run_epoch(L, 0, ids, 0), NREC);
        assert_permutation(ids, NREC);
        loader_destroy(L);
    }
}

/* Collect (epoch, index, ids) of every batch until epoch `until` ends. */
static uint64_t collect(loader_t *L, uint64_t until, uint64_t *out, uint64_t *heads)
{
    uint64_t n = 0, nb = 0;
    for (;;) {
        struct loader_batch b = LOADER_BATCH_INIT;
        int rc = loader_next(L, 0, &b, 10000);
        if (rc == NUMAFEED_EEPOCH_END)
            continue;
        if (rc)
            fail_msg("loader_next: %s: %s", numafeed_strerror(rc), nf_loader_error(L));
        heads[nb++] = b.epoch << 32 | b.index;
        for (uint32_t i = 0; i < b.records; i++)
            out[n++] = b.record_ids[i];
        int last = b.last_in_epoch && b.epoch == until;
        assert_int_equal(loader_release(L, &b), 0);
        if (last)
            return n;
    }
}

/* A loader started at (epoch, batch) delivers exactly what an uninterrupted
 * one delivers from there on: the mid-epoch resume of the Python layer. */
static void test_start_position(void **state)
{
    (void)state;
    enum { EPOCHS = 3 };
    uint64_t *ref = malloc(EPOCHS * NREC * sizeof(*ref)), *got = malloc(EPOCHS * NREC * sizeof(*got));
    uint64_t ref_heads[EPOCHS * 64], got_heads[EPOCHS * 64];
    loader_t *L = make(dir_zstd, 3, 5, 1, 9, 37);
    uint64_t nb = loader_epoch_batches(L);
    assert_true(nb > 8 && nb <= 64);
    uint64_t nref = collect(L, EPOCHS - 1, ref, ref_heads);
    loader_destroy(L);
    assert_int_equal(nref, EPOCHS * NREC);

    const uint64_t starts[][2] = {{0, 0}, {0, 1}, {0, 7}, {1, 0}, {1, 5}, {2, nb - 1}};
    for (size_t k = 0; k < NF_ARRAY_SIZE(starts); k++) {
        struct loader_config c;
        loader_config_init(&c);
        c.io = io_backend;
        c.path = dir_zstd;
        c.threads = 1 + (unsigned)k % 4; /* any thread count, any depth */
        c.prefetch = 2 + (unsigned)k;
        c.seed = 9;
        c.batch_size = 37;
        c.world_size = 1;
        c.start_epoch = starts[k][0];
        c.start_batch = starts[k][1];
        assert_int_equal(loader_create(&c, &L), 0);
        uint64_t skip_b = starts[k][0] * nb + starts[k][1], skip_r = 0;
        for (uint64_t i = 0; i < skip_b; i++)
            skip_r += i % nb == nb - 1 ? NREC - 37 * (nb - 1) : 37;
        uint64_t n = collect(L, EPOCHS - 1, got, got_heads);
        loader_destroy(L);
        assert_int_equal(n, nref - skip_r);
        assert_memory_equal(got, ref + skip_r, n * sizeof(*got));
        assert_memory_equal(got_heads, ref_heads + skip_b, (EPOCHS * nb - skip_b) * sizeof(uint64_t));
    }

    /* out of range: named */
    struct loader_config c;
    loader_config_init(&c);
    c.path = dir_zstd;
    c.batch_size = 37;
    c.world_size = 1;
    c.start_batch = nb;
    assert_int_equal(loader_create(&c, &L), NUMAFEED_ECONFIG);
    assert_non_null(strstr(numafeed_last_error(), "start_batch"));
    free(ref);
    free(got);
}

static void test_hold_all_slots_and_timeout(void **state)
{
    (void)state;
    io_backend = nf_test_io_reads(); /* the hold is in the reads */
    loader_t *L = make(dir_zstd, 2, 2, 1, 0, 16);
    io_backend = nf_test_io();
    struct loader_batch a = LOADER_BATCH_INIT, b = LOADER_BATCH_INIT, c = LOADER_BATCH_INIT;
    assert_int_equal(loader_next(L, 0, &a, 10000), 0);
    assert_int_equal(loader_next(L, 0, &b, 10000), 0);
    assert_int_equal(loader_next(L, 0, &c, 10000), -EDEADLK); /* never a silent hang */
    assert_non_null(strstr(numafeed_last_error(), "release one first"));
    /* out-of-order release works */
    assert_int_equal(loader_release(L, &b), 0);
    assert_int_equal(loader_release(L, &b), -EINVAL); /* twice */
    assert_int_equal(loader_release(L, &a), 0);

    /* workers held in I/O: once what they built is consumed, the next batch
     * cannot be ready and the wait ends with -ETIMEDOUT */
    atomic_store(&hold_io, 1);
    int rc = 0;
    double ms = 0;
    for (int i = 0; i < 1000; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = loader_next(L, 0, &c, 100);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (rc)
            break;
        loader_release(L, &c);
    }
    assert_int_equal(rc, -ETIMEDOUT);
    assert_true(ms >= 90); /* it did wait; the upper bound is the scheduler's */
    assert_int_equal(loader_next(L, 0, &c, 0), -ETIMEDOUT);
    atomic_store(&hold_io, 0);
    assert_int_equal(loader_next(L, 0, &c, 10000), 0);
    loader_release(L, &c);
    loader_destroy(L);
}

static double destroy_ms(loader_t *L)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    loader_destroy(L);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
}

static void *release_io_later(void *arg)
{
    (void)arg;
    usleep(200 * 1000);
    atomic_store(&hold_io, 0);
    return NULL;
}

static void test_destroy_while_busy(void **state)
{
    (void)state;
    /* workers blocked on a full ring, one batch held by the consumer */
    loader_t *L = make(dir_zstd, 4, 2, 1, 0, 8);
    struct loader_batch b = LOADER_BATCH_INIT;
    assert_int_equal(loader_next(L, 0, &b, 10000), 0);
    usleep(50 * 1000);
    assert_true(destroy_ms(L) < 2000);

    /* right after create, before anything was consumed */
    L = make(dir_raw, 8, 8, 1, 0, 8);
    assert_true(destroy_ms(L) < 2000);

    /* workers inside I/O: destroy waits for the reads, no longer */
    io_backend = nf_test_io_reads();
    L = make(dir_zstd, 3, 4, 1, 0, 8);
    io_backend = nf_test_io();
    atomic_store(&hold_io, 1);
    for (int i = 0; i < 200 && atomic_load(&held) == 0; i++)
        usleep(1000);
    pthread_t th;
    pthread_create(&th, NULL, release_io_later, NULL);
    assert_true(destroy_ms(L) < 3000);
    pthread_join(th, NULL);

    /* a consumer waiting in loader_next while another thread destroys:
     * test_shutdown.c; destroy(NULL) is fine */
    loader_destroy(NULL);
}

/* Flip one byte of the block holding `record` in dataset d: at the record's
 * own offset (a raw block), or in the middle of the block's stored bytes.
 * The index and trailer stay valid, so only reading that block fails. */
static void damage_block(const char *d, uint64_t record, int middle)
{
    struct nf_dataset *ds;
    assert_int_equal(nf__dataset_open(d, NULL, &ds), 0);
    struct nf_record_loc loc;
    assert_int_equal(nf__dataset_locate(ds, record, &loc), 0);
    const struct nf_block_info *bi = &nf__dataset_shard_index(ds, loc.shard)->blocks[loc.block];
    uint64_t off = bi->offset + (middle ? bi->stored_size / 2 : loc.offset);
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", d, nf__dataset_shard_name(ds, loc.shard));
    nf__dataset_close(ds);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, (long)off, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, (long)off, SEEK_SET);
    fputc(ch ^ 0x40, f);
    fclose(f);
}

/* One field, one record per block (images): every byte, every record once,
 * reads and mmap, and a damaged block surfacing as its error with nothing
 * published from it. */
static char *pack_blobs(int codec, char **base)
{
    char *d;
    *base = nf_tmpdir();
    assert_non_null(*base);
    assert_true(asprintf(&d, "%s/ds", *base) > 0);
    struct numafeed_field f = {.name = "blob", .dtype = "uint8", .ndim = 1, .shape = {REC}};
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.codec = codec;
    o.block_bytes = REC; /* one record per block */
    numafeed_writer *w;
    if (numafeed_writer_create(d, &f, 1, &o, &w))
        fail_msg("writer_create: %s", numafeed_last_error());
    assert_int_equal(numafeed_writer_append(w, source, NREC), 0);
    assert_int_equal(numafeed_writer_finish(w), 0);
    numafeed_writer_destroy(w);
    return d;
}

static uint64_t blob_epoch(loader_t *L, uint64_t *ids, int *rc_out)
{
    uint64_t n = 0;
    struct loader_batch b = LOADER_BATCH_INIT;
    int rc;
    while ((rc = loader_next(L, 0, &b, 10000)) == 0) {
        assert_int_equal(b.nfields, 1);
        for (uint32_t i = 0; i < b.records; i++) {
            uint64_t id = b.record_ids[i];
            assert_true(id < NREC);
            if (memcmp((uint8_t *)b.fields[0].host + (size_t)i * REC, source + id * REC, REC))
                fail_msg("record %llu: bytes differ from the source", (unsigned long long)id);
            ids[n++] = id;
        }
        assert_int_equal(loader_release(L, &b), 0);
    }
    *rc_out = rc;
    return n;
}

/* mode 1: mmap, 0: the matrix's io */
static void one_record_mode(int mode)
{
    io_backend = mode & 1 ? LOADER_IO_MMAP : nf_test_io();
}

static void test_one_record_blocks(void **state)
{
    (void)state;
    for (int codec = 0; codec < 2; codec++) {
        char *base, *d = pack_blobs(codec ? NUMAFEED_CODEC_ZSTD : NUMAFEED_CODEC_NONE, &base);
        for (int mode = 0; mode < 2; mode++) { /* reads, mmap */
            one_record_mode(mode);
            for (uint32_t t = 1; t <= 3; t += 2) {
                loader_t *L = make(d, t, 0, 1, 5, 24);
                for (uint64_t e = 0; e < 2; e++) {
                    uint64_t ids[NREC];
                    int rc;
                    assert_int_equal(blob_epoch(L, ids, &rc), NREC);
                    assert_int_equal(rc, NUMAFEED_EEPOCH_END);
                    assert_permutation(ids, NREC);
                }
                loader_destroy(L);
            }
        }
        one_record_mode(0);

        /* damage record 505's block in the middle of its bytes */
        damage_block(d, 505, 1);
        for (int mode = 0; mode < 2; mode++) { /* reads, mmap */
            one_record_mode(mode);
            loader_t *L = make(d, 3, 0, 0, 0, 25); /* in order: 500 records come first */
            uint64_t ids[NREC];
            int rc;
            uint64_t n = blob_epoch(L, ids, &rc); /* every delivered byte checked */
            assert_true(rc == NUMAFEED_ECHECKSUM || rc == NUMAFEED_ECORRUPT);
            assert_true(n >= 475 && n <= 500);
            assert_non_null(strstr(nf_loader_error(L), "block"));
            loader_destroy(L);
        }
        one_record_mode(0);
        nf_rmtree(base);
        free(base);
        free(d);
    }
}

static void test_corrupt_shard(void **state)
{
    (void)state;
    char *d = pack(NUMAFEED_CODEC_NONE, 10 * REC, 1 << 30);
    /* flip one byte inside the data of a block in the middle (record 505):
     * the index and trailer stay valid, so only reading that block fails */
    damage_block(d, 505, 0);

    for (int mapped = 0; mapped < 2; mapped++) {
        struct loader_config c;
        loader_config_init(&c);
        c.path = d;
        c.shuffle = 0;
        c.batch_size = 25;
        c.threads = 3;
        c.world_size = 1;
        c.io = mapped ? LOADER_IO_MMAP : nf_test_io_reads();
        loader_t *L;
        assert_int_equal(loader_create(&c, &L), 0);
        struct loader_batch b = LOADER_BATCH_INIT;
        int rc;
        uint64_t delivered = 0;
        while ((rc = loader_next(L, 0, &b, 10000)) == 0) {
            delivered += b.records;
            loader_release(L, &b);
        }
        /* batches before the bad block arrive; then the error, named */
        assert_int_equal(rc, NUMAFEED_ECHECKSUM);
        assert_true(delivered <= 500 && delivered >= 475);
        assert_non_null(strstr(nf_loader_error(L), "block"));
        assert_int_equal(loader_next(L, 0, &b, 1000), NUMAFEED_ECHECKSUM); /* sticky */
        loader_destroy(L);
    }
    char *slash = strrchr(d, '/');
    *slash = '\0';
    nf_rmtree(d);
    free(d);
}

/* A unit that spans more batches than the ring has slots is built a
 * window at a time: every block decoded and held, then batch by batch.
 * Forced here by a two-slot ring and windows of 16 batches. */
static void test_window_path(void **state)
{
    (void)state;
    uint64_t b[NREC];
    for (int ds = 0; ds < 2; ds++) {
        const char *dir = ds ? dir_raw : dir_zstd;
        for (uint32_t t = 1; t <= 3; t++) {
            struct loader_config c;
            loader_config_init(&c);
            c.io = io_backend;
            c.path = dir;
            c.threads = t;
            c.prefetch = 2;
            c.seed = 9;
            c.batch_size = 16;
            c.world_size = 1;
            c.shuffle_window = 256;
            loader_t *W;
            assert_int_equal(loader_create(&c, &W), 0);
            for (uint64_t e = 0; e < 2; e++) {
                assert_int_equal(run_epoch(W, 0, b, e), NREC);
                assert_permutation(b, NREC);
            }
            struct loader_stats st = {.size = sizeof(st)};
            assert_int_equal(loader_stats(W, 0, &st), 0);
            assert_true(st.units_windowed > 0);
            loader_destroy(W);
        }
    }
}

static void test_config_errors(void **state)
{
    (void)state;
    struct loader_config c;
    loader_t *L = (loader_t *)&c;
    loader_config_init(&c);
    assert_int_equal(loader_create(&c, &L), NUMAFEED_ECONFIG); /* no path */
    assert_null(L);
    c.path = "/nonexistent/numafeed";
    assert_int_equal(loader_create(&c, &L), -ENOENT);
    c.path = dir_zstd;
    c.prefetch = 1;
    assert_int_equal(loader_create(&c, &L), NUMAFEED_ECONFIG);
    c.prefetch = 0;
    c.rank = 2;
    c.world_size = 2;
    assert_int_equal(loader_create(&c, &L), NUMAFEED_ECONFIG);
    c.rank = 0;
    c.world_size = 0;
    setenv("RANK", "1", 1); /* RANK without WORLD_SIZE is inconsistent */
    assert_int_equal(loader_create(&c, &L), NUMAFEED_ECONFIG);
    assert_non_null(strstr(numafeed_last_error(), "WORLD_SIZE"));
    setenv("WORLD_SIZE", "2", 1);
    assert_int_equal(loader_create(&c, &L), 0);
    loader_destroy(L);
    unsetenv("RANK");
    unsetenv("WORLD_SIZE");
    c.batch_size = 0;
    assert_int_equal(loader_create(&c, &L), NUMAFEED_ECONFIG);
    c.batch_size = 4;
    int node[1] = {7};
    c.node_override = node;
    assert_int_equal(loader_create(&c, &L), NUMAFEED_ECONFIG);
    assert_non_null(strstr(numafeed_last_error(), "node_override"));
    c.node_override = NULL;
    assert_int_equal(loader_create(&c, &L), 0);
    struct loader_batch b = LOADER_BATCH_INIT;
    assert_int_equal(loader_next(L, 1, &b, 0), -EINVAL); /* no such GPU */
    loader_destroy(L);
}

/* pin_memory registers a host pool's ring with CUDA where a GPU is usable;
 * elsewhere the ring stays as it is and the notes say why, or, under
 * strict, create fails with the reason. Batches arrive the same either way. */
static void test_pin_memory(void **state)
{
    (void)state;
    struct loader_config c;
    loader_t *L;
    loader_config_init(&c);
    c.path = dir_zstd;
    c.batch_size = 16;
    c.device = LOADER_DEVICE_CPU;
    c.pin_memory = 2;
    assert_int_equal(loader_create(&c, &L), NUMAFEED_ECONFIG);
    assert_non_null(strstr(numafeed_last_error(), "pin_memory 2"));
    c.pin_memory = 1;
    assert_int_equal(loader_create(&c, &L), 0);
    struct loader_pool_info pi = {.size = sizeof(pi)};
    assert_int_equal(loader_pool_info(L, 0, &pi), 0);
    bool gpu = numafeed_cuda_device_count() > 0;
    print_message("# pin_memory: registered %d; notes: %s\n", pi.registered, pi.notes);
    assert_int_equal(pi.registered, gpu);
    assert_true((strstr(pi.notes, "pin_memory: ") != NULL) == !gpu);
    assert_true(!strstr(pi.notes, "pin_memory: ") ||
                strstr(pi.notes, ": the ring is not registered"));
    uint64_t ids[NREC];
    assert_permutation(ids, run_epoch(L, 0, ids, 0)); /* every byte against the source */
    loader_destroy(L);
    c.strict = 1; /* no GPU: the reason is the error */
    int rc = loader_create(&c, &L);
    if (gpu) {
        assert_int_equal(rc, 0);
        loader_destroy(L);
    } else {
        assert_true(rc == NUMAFEED_ENOCUDA || rc == NUMAFEED_ECUDA);
        assert_non_null(strstr(numafeed_last_error(), "pin_memory (strict)"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exactly_once_any_threads),
        cmocka_unit_test_teardown(test_streamed_copies, nf_restore_copies),
        cmocka_unit_test(test_hold_depth_minus_one),
        cmocka_unit_test(test_mmap_same_as_reads),
        cmocka_unit_test(test_seed_and_no_shuffle),
        cmocka_unit_test(test_ranks),
        cmocka_unit_test(test_persistence),
        cmocka_unit_test(test_ring_touched_by_every_worker),
        cmocka_unit_test(test_start_position),
        cmocka_unit_test(test_hold_all_slots_and_timeout),
        cmocka_unit_test(test_destroy_while_busy),
        cmocka_unit_test(test_corrupt_shard),
        cmocka_unit_test(test_one_record_blocks),
        cmocka_unit_test(test_window_path),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_pin_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
