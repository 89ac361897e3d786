// SPDX-License-Identifier: Apache-2.0
/* `numafeed bench --digest` proves exactly-once delivery and the order:
 * its digests must equal ones computed here from the source records. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <xxhash.h>

enum { N = 777, RB = 1000 };
static char *base, *dir;
static uint8_t *src;

static int setup(void **state)
{
    (void)state;
    base = nf_tmpdir();
    if (asprintf(&dir, "%s/ds", base) < 0)
        return -1;
    src = malloc((size_t)N * RB);
    for (size_t i = 0; i < (size_t)N * RB; i++)
        src[i] = (uint8_t)((i * 2654435761u) >> 13);
    char *raw;
    if (asprintf(&raw, "%s/raw.bin", base) < 0 || nf_write_file(raw, src, (size_t)N * RB))
        return -1;
    int rc = nf_run(NULL, "%s pack --quiet --out %s --record-bytes %d --block-bytes 9000 "
                    "--shard-bytes 100000 %s", NF_CLI, dir, RB, raw);
    free(raw);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    nf_rmtree(base);
    free(base);
    free(dir);
    free(src);
    return 0;
}

static void test_digest_matches_source(void **state)
{
    (void)state;
    uint64_t d = 0;
    XXH64_state_t *st = XXH64_createState();
    XXH64_reset(st, 0);
    for (uint64_t i = 0; i < N; i++) {
        d += XXH64(src + i * RB, RB, 0);
        uint8_t le[8];
        for (int j = 0; j < 8; j++)
            le[j] = (uint8_t)(i >> (8 * j));
        XXH64_update(st, le, 8);
    }
    char want[256];
    snprintf(want, sizeof(want), "epoch 1 records %d digest %016llx order %016llx\n", N,
             (unsigned long long)d, (unsigned long long)XXH64_digest(st));
    XXH64_freeState(st);
    for (int t = 1; t <= 4; t += 3) {
        char *out = NULL;
        int rc = nf_run(&out, "%s bench %s --no-shuffle --digest --epochs 2 --threads %d "
                        "--batch-size 10", NF_CLI, dir, t);
        assert_int_equal(rc, 0);
        if (!strstr(out, want))
            fail_msg("threads %d: want \"%s\" in:\n%s", t, want, out);
        free(out);
    }
}

static void test_shuffled_same_for_any_threads(void **state)
{
    (void)state;
    char *a = NULL, *b = NULL;
    assert_int_equal(nf_run(&a, "%s bench %s --digest --epochs 2 --threads 1 --seed 9 | grep "
                            "'^epoch'", NF_CLI, dir), 0);
    assert_int_equal(nf_run(&b, "%s bench %s --digest --epochs 2 --threads 3 --ring-depth 7 "
                            "--seed 9 | grep '^epoch'", NF_CLI, dir), 0);
    assert_string_equal(a, b);
    assert_non_null(strstr(a, "epoch 1 records 777"));
    free(a);
    free(b);
}

static void test_usage(void **state)
{
    (void)state;
    char *out = NULL;
    assert_int_equal(nf_run(&out, "%s bench --help", NF_CLI), 0);
    assert_non_null(strstr(out, "Usage: numafeed bench"));
    assert_non_null(strstr(out, "--digest"));
    free(out);
    assert_int_equal(nf_run(NULL, "%s bench 2>/dev/null", NF_CLI), 2);
    assert_int_equal(nf_run(NULL, "%s bench %s --epochs 0 2>/dev/null", NF_CLI, dir), 2);
    /* a usage error naming the range, not "out of memory" */
    assert_int_equal(nf_run(&out, "%s bench %s --epochs 18446744073709551615 2>&1", NF_CLI, dir),
                     2);
    assert_non_null(strstr(out, "--epochs (1 to 1000000)"));
    free(out);
    assert_int_equal(nf_run(NULL, "%s bench %s --ring-depth 1 2>/dev/null", NF_CLI, dir), 2);
    assert_int_equal(nf_run(NULL, "%s bench %s --gpus 1, 2>/dev/null", NF_CLI, dir), 2);
    assert_int_equal(nf_run(NULL, "%s bench %s --io nope 2>/dev/null", NF_CLI, dir), 2);
    assert_int_equal(nf_run(NULL, "%s bench /nonexistent 2>/dev/null", NF_CLI), 1);
}

/* The deprecated spellings still work, say so on stderr, and mean exactly
 * what their replacements mean. */
static void test_deprecated_aliases(void **state)
{
    (void)state;
    char *now = NULL, *old = NULL, *help = NULL;
    assert_int_equal(nf_run(&now, "%s bench %s --digest --threads 2 --prefetch 5 --device cpu "
                            "--seed 3 2>&1 | grep -E '^epoch|deprecated'", NF_CLI, dir), 0);
    assert_null(strstr(now, "deprecated"));
    assert_int_equal(nf_run(&old, "%s bench %s --digest --threads 2 --ring-depth 5 --host "
                            "--seed 3 2>&1 | grep -E '^epoch|deprecated'", NF_CLI, dir), 0);
    assert_non_null(strstr(old, "--ring-depth is deprecated; use --prefetch"));
    assert_non_null(strstr(old, "--host is deprecated; use --device cpu"));
    assert_non_null(strstr(old, strstr(now, "epoch 0")));
    assert_int_equal(nf_run(&help, "%s bench --help", NF_CLI), 0);
    assert_non_null(strstr(help, "--ring-depth D    the same as --prefetch D."));
    assert_non_null(strstr(help, "--host            the same as --device cpu."));
    free(now);
    free(old);
    free(help);
}

/* --shuffle-window reaches the loader (another order, the same records),
 * and --device cuda refuses to fall back to host batches. */
static void test_window_and_device(void **state)
{
    (void)state;
    char *a = NULL, *b = NULL;
    assert_int_equal(nf_run(&a, "%s bench %s --digest --seed 4 | grep '^epoch'", NF_CLI, dir), 0);
    assert_int_equal(nf_run(&b, "%s bench %s --digest --seed 4 --shuffle-window 3 | grep "
                            "'^epoch'", NF_CLI, dir), 0);
    assert_memory_equal(a, b, strlen("epoch 0 records 777 digest 0123456789abcdef"));
    assert_string_not_equal(a, b);
    free(a);
    free(b);
    int gpus = numafeed_cuda_device_count();
    assert_int_equal(nf_run(NULL, "%s bench %s --device cuda >/dev/null 2>&1", NF_CLI, dir),
                     gpus > 0 ? 0 : 1);
    assert_int_equal(nf_run(NULL, "%s bench %s --device gpu 2>/dev/null", NF_CLI, dir), 2);
    assert_int_equal(nf_run(NULL, "%s bench %s --prefetch 1 2>/dev/null", NF_CLI, dir), 2);
    /* the C field's range, not the default's cap (decode gpu's notes can ask
     * for more than 4096 slots): the loader, not the parser, bounds the ring */
    char *big = NULL;
    assert_int_equal(nf_run(&big, "%s bench %s --device cpu --prefetch 5000 --max-ring-bytes 1M "
                            "2>&1", NF_CLI, dir), 1);
    assert_non_null(strstr(big, "prefetch 5000"));
    assert_non_null(strstr(big, "max_ring_bytes"));
    free(big);
    assert_int_equal(nf_run(NULL, "%s bench %s --prefetch 4294967296 2>/dev/null", NF_CLI, dir),
                     2);
    assert_int_equal(nf_run(NULL, "%s bench %s --shuffle-window 0 2>/dev/null", NF_CLI, dir), 2);
}

/* --decode: cpu gives the default's digests; gpu either gives them too (a
 * GPU with nvCOMP) or fails saying why (here: no GPU); bad values are
 * usage errors. */
static void test_decode(void **state)
{
    (void)state;
    char *a = NULL, *b = NULL, *err = NULL;
    assert_int_equal(nf_run(&a, "%s bench %s --digest | grep '^epoch'", NF_CLI, dir), 0);
    assert_int_equal(nf_run(&b, "%s bench %s --digest --decode cpu | grep '^epoch'", NF_CLI,
                            dir), 0);
    assert_string_equal(a, b);
    free(b);
    int rc = nf_run(&b, "%s bench %s --digest --decode gpu 2>&1", NF_CLI, dir);
    if (rc == 0) {
        assert_non_null(strstr(b, a));
    } else {
        assert_int_equal(rc, 1);
        assert_non_null(strstr(b, "decode gpu: "));
        printf("# %s", b);
    }
    assert_int_equal(nf_run(&err, "%s bench %s --decode auto --verbose", NF_CLI, dir), 0);
    assert_non_null(strstr(err, "decode "));
    free(a);
    free(b);
    free(err);
    assert_int_equal(nf_run(NULL, "%s bench %s --decode nope 2>/dev/null", NF_CLI, dir), 2);
    assert_int_equal(nf_run(NULL, "%s bench %s --max-gpu-decode-bytes 0 2>/dev/null", NF_CLI,
                            dir), 2);
    assert_int_equal(nf_run(NULL, "%s bench %s --gpu-step-us x 2>/dev/null", NF_CLI, dir), 2);
}

/* The blocks a run decodes are the plan's, whatever the io: with whole
 * blocks per window (equal blocks, no shuffle) an epoch is every block
 * once, and no epoch past the last is read ahead. Before the loader knew
 * its epochs, io_uring and pread read 64 and 32 blocks of an epoch never
 * delivered. */
static void test_blocks_equal_the_plan(void **state)
{
    (void)state;
    char *d2;
    assert_true(asprintf(&d2, "%s/aligned", base) > 0);
    assert_int_equal(nf_run(NULL, "head -c 1048576 /dev/zero | %s pack --quiet --out %s "
                            "--record-bytes 256 --block-bytes 4096 --codec none -", NF_CLI, d2),
                     0);
    static const char *const io[] = {"io_uring", "pread", "mmap"};
    for (int i = 0; i < 3; i++) {
        char *out;
        assert_int_equal(nf_run(&out, "%s bench %s --device cpu --io %s --epochs 3 --threads 2 "
                                "--no-shuffle --verbose 2>/dev/null", NF_CLI, d2, io[i]), 0);
        if (!strstr(out, "| blocks 768\n"))
            fail_msg("--io %s: not 3 x 256 blocks:\n%s", io[i], out);
        free(out);
    }
    free(d2);
}

/* The summary comes first and says what a reader wants; the internals only
 * with --verbose; a host run never says GPU. */
static void test_summary(void **state)
{
    (void)state;
    char *out;
    assert_int_equal(nf_run(&out, "%s bench %s --device cpu --epochs 2", NF_CLI, dir), 0);
    assert_true(strncmp(out, "numafeed bench ", 15) == 0);
    assert_non_null(strstr(out, "  throughput  "));
    assert_non_null(strstr(out, "  host pool 0  node "));
    assert_null(strstr(out, "GPU 0"));
    assert_null(strstr(out, "stages (worker-seconds"));
    assert_non_null(strstr(out, "\ntotal: "));
    free(out);
    assert_int_equal(nf_run(&out, "%s bench %s --device cpu --verbose 2>/dev/null", NF_CLI, dir),
                     0);
    assert_non_null(strstr(out, "stages (worker-seconds"));
    free(out);
}

/* --json FILE writes the run as one object that agrees with the text:
 * the records, each epoch's digest, a host pool with no GPU; --json -
 * replaces the text on standard output. */
static void test_json(void **state)
{
    (void)state;
    char *path, *out;
    assert_true(asprintf(&path, "%s/run.json", base) > 0);
    assert_int_equal(nf_run(&out, "%s bench %s --device cpu --no-shuffle --digest --epochs 2 "
                            "--threads 2 --batch-size 10 --json %s", NF_CLI, dir, path), 0);
    json_error_t err;
    json_t *o = json_load_file(path, 0, &err);
    if (!o)
        fail_msg("%s: %s (line %d)", path, err.text, err.line);
    assert_int_equal(json_integer_value(json_object_get(o, "records")), 2 * N);
    assert_int_equal(json_integer_value(json_object_get(o, "bytes")), 2 * N * RB);
    assert_true(json_real_value(json_object_get(o, "gbps")) > 0);
    json_t *d1 = json_array_get(json_object_get(o, "digests"), 1);
    char want[128];
    snprintf(want, sizeof(want), "epoch 1 records %d digest %s order %s\n", N,
             json_string_value(json_object_get(d1, "digest")),
             json_string_value(json_object_get(d1, "order")));
    if (!strstr(out, want))
        fail_msg("the JSON's epoch 1 (%s) is not the text's:\n%s", want, out);
    json_t *p0 = json_array_get(json_object_get(o, "pools"), 0);
    assert_true(json_is_null(json_object_get(p0, "gpu")));
    assert_string_equal(json_string_value(json_object_get(p0, "mode")), "host");
    assert_true(json_integer_value(json_object_get(p0, "blocks")) > 0);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(p0, "after_first"), "batches")) + 1,
                     2 * ((N + 9) / 10));
    json_decref(o);
    free(out);
    assert_int_equal(nf_run(&out, "%s bench %s --device cpu --json -", NF_CLI, dir), 0);
    o = json_loads(out, 0, &err);
    if (!o)
        fail_msg("--json -: %s in:\n%s", err.text, out);
    assert_null(strstr(out, "throughput"));
    json_decref(o);
    free(out);
    assert_int_not_equal(nf_run(NULL, "%s bench %s --device cpu --json %s/no/such/dir.json "
                                "2>/dev/null", NF_CLI, dir, base), 0);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_matches_source),
        cmocka_unit_test(test_shuffled_same_for_any_threads),
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_deprecated_aliases),
        cmocka_unit_test(test_window_and_device),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_blocks_equal_the_plan),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
