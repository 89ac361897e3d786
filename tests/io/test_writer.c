// SPDX-License-Identifier: Apache-2.0
/* The public writer API: layouts, block and shard sizes, codecs, and the
 * promise that nothing dataset-like appears until finish succeeds. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static char *path_in(const char *name)
{
    char *p;
    assert_true(asprintf(&p, "%s/%s", tmp, name) > 0);
    return p;
}

static int exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

/* Entries of tmp other than . and .. */
static int entries(void)
{
    DIR *d = opendir(tmp);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static void layout_and_sizes(void **state)
{
    (void)state;
    struct numafeed_field f[2] = {{"tokens", "int32", 1, {10}}, {"label", "uint16", 0, {0}}};
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.block_bytes = 1000; /* 23 records of 42 bytes: 966 */
    o.shard_bytes = 3000;
    char *out = path_in("ds");
    numafeed_writer *w;
    assert_int_equal(numafeed_writer_create(out, f, 2, &o, &w), 0);
    assert_int_equal(numafeed_writer_record_bytes(w), 42);
    uint8_t rec[42 * 100];
    nft_pattern(rec, 0, 100, 42, 1);
    for (int i = 0; i < 10; i++)
        assert_int_equal(numafeed_writer_append(w, rec, 100), 0);
    assert_false(exists(out)); /* not before finish */
    assert_int_equal(numafeed_writer_finish(w), 0);
    assert_int_equal(numafeed_writer_records(w), 1000);
    assert_true(numafeed_writer_shards(w) > 1);
    numafeed_writer_destroy(w);
    assert_int_equal(entries(), 1); /* the dataset, no temporary left */

    struct nf_dataset *ds;
    assert_int_equal(nf__dataset_open(out, NULL, &ds), 0);
    assert_int_equal(nf__dataset_records(ds), 1000);
    const struct nf_layout *l = nf__dataset_layout(ds);
    assert_int_equal(l->nfields, 2);
    assert_int_equal(l->fields[1].offset, 40);
    const struct nf_shard_index *idx = nf__dataset_shard_index(ds, 0);
    assert_int_equal(idx->blocks[0].records, 23);
    assert_int_equal(nf__dataset_max_decoded(ds), 966);
    nf__dataset_close(ds);
    struct nf_check_summary s;
    assert_int_equal(nf__check_dataset(out, 0, NULL, NULL, &s), 0);
    assert_int_equal(s.records, 1000);
    free(out);
}

static void incompressible_stays_raw(void **state)
{
    (void)state;
    char *out = nft_make_dataset(tmp, "noise", 64, 500, NUMAFEED_CODEC_ZSTD, 0, 4096, 0);
    struct nf_check_summary s;
    assert_int_equal(nf__check_dataset(out, 0, NULL, NULL, &s), 0);
    assert_int_equal(s.zstd_blocks, 0);
    assert_true(s.raw_blocks > 0);
    free(out);
    out = nft_make_dataset(tmp, "tokens", 64, 500, NUMAFEED_CODEC_ZSTD, 1, 4096, 0);
    assert_int_equal(nf__check_dataset(out, 0, NULL, NULL, &s), 0);
    assert_int_equal(s.raw_blocks, 0);
    assert_true(s.file_bytes < s.decoded_bytes / 2);
    free(out);
}

static void record_larger_than_block(void **state)
{
    (void)state;
    /* block_bytes below one record still makes one-record blocks */
    char *out = nft_make_dataset(tmp, "big", 5000, 3, NUMAFEED_CODEC_NONE, 0, 100, 0);
    struct nf_dataset *ds;
    assert_int_equal(nf__dataset_open(out, NULL, &ds), 0);
    assert_int_equal(nf__dataset_shard_index(ds, 0)->nblocks, 3);
    nf__dataset_close(ds);
    free(out);
}

static void refuses_existing(void **state)
{
    (void)state;
    struct numafeed_field f = {"data", "uint8", 1, {8}};
    char *out = path_in("exists");
    assert_int_equal(mkdir(out, 0755), 0);
    char *keep;
    assert_true(asprintf(&keep, "%s/precious.txt", out) > 0);
    assert_int_equal(nf_write_file(keep, "x", 1), 0);
    numafeed_writer *w;
    assert_int_equal(numafeed_writer_create(out, &f, 1, NULL, &w), -EEXIST);
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.force = 1; /* not a dataset: still refused */
    assert_int_equal(numafeed_writer_create(out, &f, 1, &o, &w), -EEXIST);
    assert_non_null(strstr(numafeed_last_error(), "refusing to replace"));
    assert_true(exists(keep));
    free(keep);
    free(out);
}

static void force_replaces_dataset(void **state)
{
    (void)state;
    char *a = nft_make_dataset(tmp, "ds", 8, 100, NUMAFEED_CODEC_ZSTD, 1, 0, 0);
    struct numafeed_field f = {"data", "uint8", 1, {8}};
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.force = 1;
    numafeed_writer *w;
    assert_int_equal(numafeed_writer_create(a, &f, 1, &o, &w), 0);
    uint8_t rec[8 * 7];
    nft_pattern(rec, 0, 7, 8, 1);
    assert_int_equal(numafeed_writer_append(w, rec, 7), 0);
    assert_int_equal(numafeed_writer_finish(w), 0);
    numafeed_writer_destroy(w);
    struct nf_dataset *ds;
    assert_int_equal(nf__dataset_open(a, NULL, &ds), 0);
    assert_int_equal(nf__dataset_records(ds), 7);
    nf__dataset_close(ds);
    assert_int_equal(entries(), 1); /* old dataset gone, no temporary */
    free(a);
}

static void destroy_without_finish(void **state)
{
    (void)state;
    struct numafeed_field f = {"data", "uint8", 1, {8}};
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.block_bytes = 64;
    char *out = path_in("abandoned");
    numafeed_writer *w;
    assert_int_equal(numafeed_writer_create(out, &f, 1, &o, &w), 0);
    uint8_t rec[8 * 100] = {0};
    assert_int_equal(numafeed_writer_append(w, rec, 100), 0); /* blocks on disk */
    assert_int_equal(entries(), 1);                         /* the temporary */
    numafeed_writer_destroy(w);
    assert_int_equal(entries(), 0);
    assert_false(exists(out));
    free(out);
}

static void bad_arguments(void **state)
{
    (void)state;
    char *out = path_in("bad");
    numafeed_writer *w;
    struct numafeed_field f = {"data", "uint8", 1, {8}};
    struct numafeed_field bad = {"x y", "uint8", 0, {0}};
    struct numafeed_writer_options o;
    assert_int_equal(numafeed_writer_create(out, &bad, 1, NULL, &w), -EINVAL);
    assert_int_equal(numafeed_writer_create(out, &f, 0, NULL, &w), -EINVAL);
    numafeed_writer_options_init(&o);
    o.level = 99;
    assert_int_equal(numafeed_writer_create(out, &f, 1, &o, &w), -EINVAL);
    numafeed_writer_options_init(&o);
    o.block_bytes = (uint64_t)NF_BLOCK_CAP + 1;
    assert_int_equal(numafeed_writer_create(out, &f, 1, &o, &w), -EINVAL);
    numafeed_writer_options_init(&o);
    o.codec = 42;
    assert_int_equal(numafeed_writer_create(out, &f, 1, &o, &w), -EINVAL);
    o.size = 4;
    assert_int_equal(numafeed_writer_create(out, &f, 1, &o, &w), -EINVAL);
    assert_int_equal(numafeed_writer_create("/nonexistent-dir/x", &f, 1, NULL, &w), -ENOENT);
    assert_int_equal(numafeed_writer_create(out, &f, 1, NULL, &w), 0);
    assert_int_equal(numafeed_writer_finish(w), -EINVAL); /* no records */
    assert_int_equal(numafeed_writer_append(w, "12345678", 1), -EINVAL); /* failed once */
    numafeed_writer_destroy(w);
    numafeed_writer_destroy(NULL);
    assert_int_equal(entries(), 0);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(layout_and_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(incompressible_stays_raw, setup, teardown),
        cmocka_unit_test_setup_teardown(record_larger_than_block, setup, teardown),
        cmocka_unit_test_setup_teardown(refuses_existing, setup, teardown),
        cmocka_unit_test_setup_teardown(force_replaces_dataset, setup, teardown),
        cmocka_unit_test_setup_teardown(destroy_without_finish, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
