// SPDX-License-Identifier: Apache-2.0
/*
 * The dataset directory as a boundary (src/io/confine.c): links that leave
 * it are refused unless follow_symlinks, links inside work, FIFOs and
 * devices never block or get read, a manifest that is not one is never
 * echoed, shard names cannot carry control characters, and a huge shard
 * list is checked for duplicates in n log n. Run once with openat2 and
 * once with it taken away (--wrap: the fallback for kernels before 5.6).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "io_helpers.h"

static int no_openat2; /* argv[1] == "fallback" */

int __real_nf__openat2(int dirfd, const char *name, int flags, unsigned long long resolve);
int __wrap_nf__openat2(int dirfd, const char *name, int flags, unsigned long long resolve)
{
    if (no_openat2)
        return -ENOSYS;
    return __real_nf__openat2(dirfd, name, flags, resolve);
}

static char *tmp, *ds, *other, *secret;

static int group_setup(void **state)
{
    (void)state;
    tmp = nf_tmpdir();
    other = nft_make_dataset(tmp, "other", 100, 300, NUMAFEED_CODEC_NONE, 0, 0, 0);
    assert_true(asprintf(&secret, "%s/secret", tmp) > 0);
    assert_int_equal(nf_write_file(secret, "SECRETTOKEN 12345\n", 18), 0);
    alarm(120); /* a FIFO that blocks an open would hang here: fail instead */
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    nf_rmtree(tmp);
    free(tmp);
    free(other);
    free(secret);
    return 0;
}

/* A fresh dataset "ds" of 300 records; its shard path in *shard. */
static void fresh(char **shard)
{
    char *d;
    assert_true(asprintf(&d, "%s/ds", tmp) > 0);
    nf_rmtree(d);
    free(d);
    free(ds);
    ds = nft_make_dataset(tmp, "ds", 100, 300, NUMAFEED_CODEC_NONE, 0, 0, 0);
    *shard = nft_shard_path(ds, 0);
}

static int open_ds(int follow)
{
    struct nf_dataset_options o;
    nf__dataset_options_init(&o);
    o.follow_symlinks = follow;
    struct nf_dataset *d = NULL;
    int rc = nf__dataset_open(ds, &o, &d);
    nf__dataset_close(d);
    return rc;
}

static int problems(const char *dir, int follow, uint64_t *file_bytes)
{
    struct nf_check_summary s;
    int n = nf__check_dataset(dir, follow, NULL, NULL, &s);
    *file_bytes = s.file_bytes;
    return n;
}

/* A shard replaced by a link to a file outside: refused by open and by
 * check (which hashes nothing of it), allowed with follow_symlinks. */
static void test_link_out_refused(void **state)
{
    (void)state;
    char *shard;
    fresh(&shard);
    char *far = nft_shard_path(other, 0);
    char *moved;
    assert_true(asprintf(&moved, "%s/elsewhere.nfs", tmp) > 0);
    assert_int_equal(rename(shard, moved), 0); /* the real shard, now outside */
    assert_int_equal(symlink(moved, shard), 0);
    assert_int_equal(open_ds(0), -EXDEV);
    assert_non_null(strstr(numafeed_last_error(), "leaves the dataset directory"));
    assert_non_null(strstr(numafeed_last_error(), "shard-00000.nfs"));
    uint64_t bytes;
    assert_int_equal(problems(ds, 0, &bytes), 1);
    assert_int_equal(bytes, 0); /* nothing of the target was read */
    assert_int_equal(open_ds(1), 0); /* the explicit opt-in */
    assert_int_equal(problems(ds, 1, &bytes), 0);

    /* another dataset's shard under this name: refused (and would not
     * match the manifest if followed) */
    unlink(shard);
    assert_int_equal(symlink(far, shard), 0);
    assert_int_equal(open_ds(0), -EXDEV);
    /* /etc/passwd, say: refused, never hashed or echoed */
    unlink(shard);
    assert_int_equal(symlink(secret, shard), 0);
    assert_int_equal(open_ds(0), -EXDEV);
    assert_null(strstr(numafeed_last_error(), "SECRETTOKEN"));
    free(far);
    free(moved);
    free(shard);
}

/* A link that stays inside the directory works without any opt-in. */
static void test_link_inside_works(void **state)
{
    (void)state;
    char *shard, *sub, *inside;
    fresh(&shard);
    assert_true(asprintf(&sub, "%s/data", ds) > 0);
    assert_true(asprintf(&inside, "%s/data/real.nfs", ds) > 0);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(rename(shard, inside), 0);
    assert_int_equal(symlink("data/real.nfs", shard), 0);
    assert_int_equal(open_ds(0), 0);
    uint64_t bytes;
    assert_int_equal(problems(ds, 0, &bytes), 0);
    /* ../ out and back in is still inside */
    unlink(shard);
    char rel[300];
    snprintf(rel, sizeof(rel), "../ds/data/real.nfs");
    assert_int_equal(symlink(rel, shard), 0);
    assert_int_equal(open_ds(0), no_openat2 ? 0 : -EXDEV); /* openat2 refuses any ".." */
    free(shard);
    free(sub);
    free(inside);
}

/* A FIFO (or a device) as a shard or as the manifest: an error at once,
 * never a blocked open or a read. */
static void test_fifo_and_device(void **state)
{
    (void)state;
    char *shard, *man;
    fresh(&shard);
    unlink(shard);
    assert_int_equal(mkfifo(shard, 0600), 0);
    assert_int_equal(open_ds(0), NUMAFEED_ECORRUPT);
    assert_non_null(strstr(numafeed_last_error(), "a FIFO"));
    assert_true(asprintf(&man, "%s/manifest.json", ds) > 0);
    unlink(man);
    assert_int_equal(mkfifo(man, 0600), 0);
    assert_int_equal(open_ds(0), NUMAFEED_EMANIFEST);
    assert_non_null(strstr(numafeed_last_error(), "a FIFO"));
    uint64_t bytes;
    assert_int_equal(problems(ds, 0, &bytes), 1);
    unlink(man);
    assert_int_equal(symlink("/dev/zero", man), 0);
    assert_int_equal(open_ds(1), NUMAFEED_EMANIFEST); /* followed, still not a file */
    assert_non_null(strstr(numafeed_last_error(), "a device"));
    free(shard);
    free(man);
}

/* A manifest that is a link out, or not JSON at all: its content is never
 * echoed in the error. */
static void test_manifest_never_echoed(void **state)
{
    (void)state;
    char *shard, *man;
    fresh(&shard);
    assert_true(asprintf(&man, "%s/manifest.json", ds) > 0);
    unlink(man);
    assert_int_equal(symlink(secret, man), 0);
    assert_int_equal(open_ds(0), -EXDEV);
    assert_null(strstr(numafeed_last_error(), "SECRETTOKEN"));
    assert_int_equal(open_ds(1), NUMAFEED_EMANIFEST);
    assert_null(strstr(numafeed_last_error(), "SECRETTOKEN"));
    assert_non_null(strstr(numafeed_last_error(), "invalid JSON"));
    free(shard);
    free(man);
}

/* Names with control characters are refused; messages escape them. */
static void test_control_characters(void **state)
{
    (void)state;
    assert_true(nf__shard_name_ok("shard-00000.nfs"));
    assert_false(nf__shard_name_ok("shard\n0"));
    assert_false(nf__shard_name_ok("sh\x1b[2Jard"));
    assert_false(nf__shard_name_ok("sh\xc2\x9b" "31mard")); /* C1 CSI */
    assert_true(nf__shard_name_ok("sh\xc3\xa9rd")); /* é is fine */
    nf__error(-EINVAL, "name '%s'", "a\nresult OK\x1b[0m");
    assert_null(strchr(numafeed_last_error(), '\n'));
    assert_null(strchr(numafeed_last_error(), '\x1b'));
    assert_non_null(strstr(numafeed_last_error(), "a\\x0aresult OK\\x1b[0m"));
}

/* 200k shard entries with one duplicate at the end: found (quadratically
 * this would run for minutes and hit ctest's timeout). */
static void test_many_shards_duplicate(void **state)
{
    (void)state;
    enum { N = 200000 };
    size_t cap = (size_t)N * 96 + 1024, len = 0;
    char *t = malloc(cap);
    len += (size_t)snprintf(t, cap, "{\"format\":\"numafeed\",\"version\":1,\"record_bytes\":1,"
                            "\"fields\":[{\"name\":\"d\",\"dtype\":\"uint8\",\"shape\":[1]}],"
                            "\"records\":%d,\"codec\":\"none\",\"block_bytes\":1,\"shards\":[",
                            N);
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(t + len, cap - len,
                                "%s{\"file\":\"s%07d\",\"records\":1,\"bytes\":1,\"xxh3\":"
                                "\"0000000000000000\"}", i ? "," : "",
                                i == N - 1 ? 17 : i);
    len += (size_t)snprintf(t + len, cap - len, "]}");
    struct nf_manifest m;
    assert_int_equal(nf__manifest_parse(t, len, "big", &m, NULL), NUMAFEED_EMANIFEST);
    assert_non_null(strstr(numafeed_last_error(), "s0000017' is listed twice"));
    free(t);
}

int main(int argc, char **argv)
{
    no_openat2 = argc > 1 && !strcmp(argv[1], "fallback");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_link_out_refused),
        cmocka_unit_test(test_link_inside_works),
        cmocka_unit_test(test_fifo_and_device),
        cmocka_unit_test(test_manifest_never_echoed),
        cmocka_unit_test(test_control_characters),
        cmocka_unit_test(test_many_shards_duplicate),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    free(ds);
    return rc;
}
