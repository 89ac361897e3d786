// SPDX-License-Identifier: Apache-2.0
/*
 * What a hostile dataset or a careless caller can make loader_create do:
 * every refused GPU list frees what create made and returns the error (no
 * crash in destroy), and the ring's memory follows the configuration
 * (batch size x record size x prefetch, within max_ring_bytes), never
 * counts from the dataset's headers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static char *base, *dir;

static int setup(void **state)
{
    (void)state;
    if (nf_scratch(&base, &dir))
        return -1;
    static uint8_t rec[64 * 100];
    for (size_t i = 0; i < sizeof(rec); i++)
        rec[i] = (uint8_t)i;
    struct numafeed_field f = {.name = "x", .dtype = "uint8", .ndim = 1, .shape = {64}};
    return nf_pack(dir, &f, 1, NULL, rec, 100) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    nf_scratch_free(base, dir);
    return 0;
}

static void config(struct loader_config *c, const char *path)
{
    loader_config_init(c);
    c->path = path;
    c->world_size = 1;
    c->device = LOADER_DEVICE_CPU;
    c->batch_size = 8;
}

/* Each shape of a refused GPU list: an error, nothing left behind (ASan
 * and valgrind see the rest). The same GPU twice once crashed destroy. */
static void test_refused_gpu_lists(void **state)
{
    (void)state;
    static const int lists[][3] = {{0, 0, 0}, {-1, 0, 0}, {0, -1, 0}, {1, 0, 1}, {2, 2, 0}};
    static const int counts[] = {2, 1, 2, 3, 2};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        struct loader_config c;
        config(&c, dir);
        c.gpus = lists[i];
        c.ngpus = counts[i];
        loader_t *L = (loader_t *)&c;
        assert_int_equal(loader_create(&c, &L), NUMAFEED_ECONFIG);
        assert_null(L);
        assert_non_null(strstr(numafeed_last_error(), "gpus["));
    }
    /* CUDA asked for where there is none (this machine): an error, not host */
    struct loader_config c;
    config(&c, dir);
    c.device = LOADER_DEVICE_CUDA;
    loader_t *L = NULL;
    int rc = loader_create(&c, &L);
    if (rc == 0) { /* a machine with a GPU */
        loader_destroy(L);
        return;
    }
    assert_int_equal(rc, NUMAFEED_ENOCUDA);
    assert_null(L);
}

/* A batch that cannot fit twice in max_ring_bytes, and a prefetch that
 * does not fit: errors naming the numbers and the knob. */
static void test_ring_cap(void **state)
{
    (void)state;
    struct loader_config c;
    config(&c, dir);
    c.max_ring_bytes = 8 << 10; /* one slot is 8 KiB (data and ids pages) */
    loader_t *L;
    assert_int_equal(loader_create(&c, &L), NUMAFEED_ECONFIG);
    assert_non_null(strstr(numafeed_last_error(), "max_ring_bytes"));
    assert_non_null(strstr(numafeed_last_error(), "8 records of 64 bytes"));
    c.max_ring_bytes = 64 << 10;
    c.prefetch = 9;
    assert_int_equal(loader_create(&c, &L), NUMAFEED_ECONFIG);
    assert_non_null(strstr(numafeed_last_error(), "prefetch 9"));
    c.prefetch = 0; /* the default fits itself under the cap */
    assert_int_equal(loader_create(&c, &L), 0);
    struct loader_pool_info pi = {.size = sizeof(pi)};
    assert_int_equal(loader_pool_info(L, 0, &pi), 0);
    assert_true(pi.prefetch >= 2 && pi.prefetch <= 8);
    loader_destroy(L);
}

/* The default ring is sized by what the dataset can fill: 100 records in
 * batches of 8 are 13 batches an epoch, so at most 26 slots, not the
 * hundreds the window formula asks for. */
static void test_ring_fits_dataset(void **state)
{
    (void)state;
    struct loader_config c;
    config(&c, dir);
    c.threads = 8;
    c.shuffle_window = 100;
    loader_t *L;
    assert_int_equal(loader_create(&c, &L), 0);
    struct loader_pool_info pi = {.size = sizeof(pi)};
    assert_int_equal(loader_pool_info(L, 0, &pi), 0);
    assert_true(pi.prefetch <= 26);
    loader_destroy(L);
}

/* Records of 1 byte, 2^24 of them, 2 KiB on disk: the ring and the
 * workers' tables stay small (a million-slot ring before). */
static void test_tiny_records(void **state)
{
    (void)state;
    char *b2, *d2;
    assert_int_equal(nf_scratch(&b2, &d2), 0);
    enum { N = 1 << 24 };
    uint8_t *zeros = calloc(N, 1);
    struct numafeed_field f = {.name = "b", .dtype = "uint8", .ndim = 0};
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.codec = NUMAFEED_CODEC_ZSTD;
    o.block_bytes = 4u << 20;
    assert_int_equal(nf_pack(d2, &f, 1, &o, zeros, N), 0);
    free(zeros);
    struct loader_config c;
    config(&c, d2);
    c.batch_size = 64;
    loader_t *L;
    assert_int_equal(loader_create(&c, &L), 0);
    struct loader_pool_info pi = {.size = sizeof(pi)};
    assert_int_equal(loader_pool_info(L, 0, &pi), 0);
    assert_true(pi.prefetch <= 4096);
    struct loader_batch b = LOADER_BATCH_INIT;
    assert_int_equal(loader_next(L, 0, &b, 10000), 0);
    assert_int_equal(b.records, 64);
    loader_release(L, &b);
    loader_destroy(L);
    nf_scratch_free(b2, d2);
}

/* Records of 16 MiB in batches of 256 (4 GiB a slot: a few KiB on disk
 * when they compress): refused before anything is allocated. */
static void test_huge_records_refused(void **state)
{
    (void)state;
    char *b2, *d2;
    assert_int_equal(nf_scratch(&b2, &d2), 0);
    enum { RB = 16 << 20 };
    uint8_t *zeros = calloc(RB, 1);
    struct numafeed_field f = {.name = "big", .dtype = "uint8", .ndim = 1, .shape = {RB}};
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.codec = NUMAFEED_CODEC_ZSTD;
    assert_int_equal(nf_pack(d2, &f, 1, &o, zeros, 1), 0);
    free(zeros);
    struct loader_config c;
    config(&c, d2);
    c.batch_size = 256;
    c.drop_last = 0;
    loader_t *L;
    assert_int_equal(loader_create(&c, &L), NUMAFEED_ECONFIG);
    assert_non_null(strstr(numafeed_last_error(), "256 records of 16777216 bytes"));
    assert_non_null(strstr(numafeed_last_error(), "max_ring_bytes"));
    nf_scratch_free(b2, d2);
}

/* The direct copy needs the GPU path: asked for on host batches it is an
 * error naming why; auto is quietly the host's own; a copy out of range
 * is refused. */
static void test_copy_choice(void **state)
{
    (void)state;
    struct loader_config c;
    config(&c, dir);
    c.copy = LOADER_COPY_DIRECT;
    loader_t *L;
    assert_int_equal(loader_create(&c, &L), NUMAFEED_ECONFIG);
    assert_non_null(strstr(numafeed_last_error(), "copy direct: batches stay on the host"));
    c.copy = 7;
    assert_int_equal(loader_create(&c, &L), NUMAFEED_ECONFIG);
    c.copy = LOADER_COPY_AUTO;
    assert_int_equal(loader_create(&c, &L), 0);
    struct loader_pool_info pi = {.size = sizeof(pi)};
    assert_int_equal(loader_pool_info(L, 0, &pi), 0);
    assert_string_equal(pi.copy, "host");
    assert_null(strstr(pi.notes, "copy"));
    loader_destroy(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_gpu_lists),
        cmocka_unit_test(test_ring_cap),
        cmocka_unit_test(test_ring_fits_dataset),
        cmocka_unit_test(test_tiny_records),
        cmocka_unit_test(test_huge_records_refused),
        cmocka_unit_test(test_copy_choice),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
