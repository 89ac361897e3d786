// SPDX-License-Identifier: Apache-2.0
/* `numafeed pack` and `numafeed check` as a user runs them (NF_CLI). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io_helpers.h"

enum { RB = 32, NREC = 3000 };

static char *tmp, *input;

static int setup(void **state)
{
    (void)state;
    tmp = nf_tmpdir();
    assert_true(asprintf(&input, "%s/input.bin", tmp) > 0);
    uint8_t *data = malloc((size_t)RB * NREC);
    nft_pattern(data, 0, NREC, RB, 1);
    assert_int_equal(nf_write_file(input, data, (size_t)RB * NREC), 0);
    free(data);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nf_rmtree(tmp);
    free(tmp);
    free(input);
    return 0;
}

static int exists(const char *name)
{
    char p[4096];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", tmp, name);
    return lstat(p, &st) == 0;
}

/* Names in tmp starting with prefix. */
static int count_prefix(const char *prefix)
{
    DIR *d = opendir(tmp);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += !strncmp(e->d_name, prefix, strlen(prefix));
    closedir(d);
    return n;
}

static int run(char **out, const char *args)
{
    return nf_run(out, "cd '%s' && %s %s 2>&1", tmp, NF_CLI, args);
}

static void expect(int status, const char *args, const char *needle)
{
    char *out = NULL;
    int rc = run(&out, args);
    if (rc != status || (needle && !strstr(out ? out : "", needle)))
        fail_msg("'%s': exit %d (expected %d), output:\n%s\n(expected '%s')", args, rc, status,
                 out ? out : "", needle ? needle : "");
    free(out);
}

static void help_and_usage(void **state)
{
    (void)state;
    expect(0, "pack --help", "Exit status");
    expect(0, "pack -h", "Example");
    expect(0, "check --help", "Exit status");
    expect(0, "--help", "pack");
    expect(2, "pack input.bin", "--out DIR is required");
    expect(2, "pack --out d input.bin", "--record-bytes N or at least one --field");
    expect(2, "pack --out d --record-bytes 12Q input.bin", "--record-bytes '12Q'");
    expect(2, "pack --out d --record-bytes 99999999999999999999 input.bin", "--record-bytes");
    expect(2, "pack --out d --record-bytes 17179869184G input.bin", "--record-bytes");
    expect(2, "pack --out d --record-bytes 0 input.bin", "positive");
    expect(2, "pack --out d --record-bytes 32 --block-bytes 1T input.bin", "--block-bytes");
    expect(2, "pack --out d --record-bytes 32 --block-bytes 512M input.bin", "256M");
    expect(2, "pack --out d --record-bytes 32 --codec lz4 input.bin", "--codec 'lz4'");
    expect(2, "pack --out d --record-bytes 32 --level fast input.bin", "--level");
    expect(2, "pack --out d --record-bytes 32 --codec none --level 5 input.bin", "--level");
    expect(2, "pack --out d --field tokens:int33:4 input.bin", "unknown dtype");
    expect(2, "pack --out d --field 'a b:int8' input.bin", "bad name");
    expect(2, "pack --out d --field x:int32:4 --record-bytes 15 input.bin", "add up to 16");
    expect(2, "pack --out d --record-bytes 32", "no input");
    expect(2, "pack --out d --record-bytes 32 a b", "more than one input");
    expect(2, "pack --bogus", "unknown or incomplete option");
    expect(2, "check", "no dataset directory");
    expect(2, "check a b", "more than one");
    assert_int_equal(count_prefix("d"), 0);
    assert_int_equal(count_prefix(".d"), 0);
}

static void pack_file_and_check(void **state)
{
    (void)state;
    expect(0, "pack --out ds --record-bytes 32 --block-bytes 4K --shard-bytes 8K input.bin",
           "ds: 3000 records of 32 bytes in");
    expect(0, "check ds", "records  3000 of 32 bytes");
    expect(0, "check ds", "result   OK");
    expect(0, "check --quiet ds", NULL);
    struct nf_dataset *ds;
    char *p;
    assert_true(asprintf(&p, "%s/ds", tmp) > 0);
    assert_int_equal(nf__dataset_open(p, NULL, &ds), 0);
    assert_true(nf__dataset_shard_count(ds) > 1);
    const struct nf_layout *l = nf__dataset_layout(ds);
    assert_string_equal(l->fields[0].name, "data");
    assert_string_equal(nf__dtype_name(l->fields[0].dtype), "uint8");
    assert_int_equal(l->fields[0].shape[0], RB);
    /* every shard the packer writes keeps its stored blocks' hashes; the
     * committed fixture's have none */
    char line[80];
    snprintf(line, sizeof(line), "hashes   of stored blocks in %u of %u shards",
             nf__dataset_shard_count(ds), nf__dataset_shard_count(ds));
    expect(0, "check ds", line);
    char fixture[4200];
    snprintf(fixture, sizeof(fixture), "check '%s'", nf_fixture("shards/v1"));
    expect(0, fixture, "hashes   of stored blocks in 0 of 2 shards");
    nf__dataset_close(ds);
    free(p);
    /* again: refused, then replaced with --force */
    expect(1, "pack --out ds --record-bytes 32 input.bin", "already exists");
    expect(0, "pack --quiet --force --out ds --codec none --record-bytes 32 input.bin", NULL);
    expect(0, "check ds", "codec    raw");
    assert_int_equal(count_prefix(".ds"), 0);
}

static void pack_stdin_with_fields(void **state)
{
    (void)state;
    expect(0, "pack --out f --field tokens:int32:4 --field id:uint64 --field w:bfloat16:2x4 "
              "--progress - < input.bin", "numafeed pack: 0.1 MiB read");
    char *p;
    assert_true(asprintf(&p, "%s/f", tmp) > 0);
    struct nf_dataset *ds;
    assert_int_equal(nf__dataset_open(p, NULL, &ds), 0);
    assert_int_equal(nf__dataset_layout(ds)->record_bytes, 16 + 8 + 16);
    assert_int_equal(nf__dataset_records(ds), NREC * RB / 40);
    /* the bytes come back as they went in */
    struct nf_reader *r;
    assert_int_equal(nf__reader_create(ds, NULL, &r), 0);
    uint8_t *buf = malloc(1 << 20), *blk = malloc(nf__dataset_max_decoded(ds)), rec[40];
    uint8_t *want = malloc((size_t)RB * NREC);
    nft_pattern(want, 0, NREC, RB, 1);
    assert_int_equal(nf__reader_read_record(r, 1234, buf, 1 << 20, blk,
                                             nf__dataset_max_decoded(ds), rec), 0);
    assert_memory_equal(rec, want + 1234 * 40, 40);
    free(buf);
    free(blk);
    free(want);
    nf__reader_destroy(r);
    nf__dataset_close(ds);
    free(p);
}

static void partial_record_leaves_nothing(void **state)
{
    (void)state;
    expect(1, "pack --out p --record-bytes 7 input.bin", "not a multiple of the record size 7");
    expect(1, "pack --out p --record-bytes 7 - < input.bin", "partial record");
    assert_int_equal(count_prefix("p"), 0);
    assert_int_equal(count_prefix(".p"), 0);
    expect(1, "pack --out p --record-bytes 8 missing.bin", "missing.bin");
    expect(1, "pack --out p --record-bytes 8 - < /dev/null", "no records");
    assert_int_equal(count_prefix(".p"), 0);
}

/* A pack stopped half-way: SIGTERM cleans up, SIGKILL leaves only the hidden
 * temporary, which has no manifest and fails check. */
static void interrupted(void **state)
{
    (void)state;
    char *out = NULL;
    int rc = nf_run(&out, "cd '%s' && { (cat input.bin; sleep 2) | %s pack --out k --record-bytes 32 "
                    "--block-bytes 1K - 2>/dev/null & p=$!; sleep 0.5; kill -TERM $p; wait $p; "
                    "echo \"status $?\"; }", tmp, NF_CLI);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "status 143"));
    free(out);
    assert_int_equal(count_prefix("k"), 0);
    assert_int_equal(count_prefix(".k"), 0);
    rc = nf_run(&out, "cd '%s' && { (cat input.bin; sleep 2) | %s pack --out k --record-bytes 32 "
                "--block-bytes 1K - 2>/dev/null & p=$!; sleep 0.5; kill -KILL $p; wait $p; "
                "echo \"status $?\"; }", tmp, NF_CLI);
    assert_non_null(strstr(out, "status 137"));
    free(out);
    assert_false(exists("k"));
    assert_int_equal(count_prefix(".k.tmp-"), 1);
    expect(1, "check .k.tmp-*", "manifest.json");
    assert_int_equal(nf_run(NULL, "cd '%s' && ls .k.tmp-*/manifest.json 2>/dev/null", tmp) != 0, 1);
}

static void check_names_problems(void **state)
{
    (void)state;
    expect(0, "pack --quiet --out c --record-bytes 32 --block-bytes 2K input.bin", NULL);
    char *p, *s;
    assert_true(asprintf(&p, "%s/c", tmp) > 0);
    s = nft_shard_path(p, 0);
    struct nf_dataset *ds;
    assert_int_equal(nf__dataset_open(p, NULL, &ds), 0);
    const struct nf_block_info *b = &nf__dataset_shard_index(ds, 0)->blocks[5];
    assert_int_equal(b->codec, NF_CODEC_ZSTD);
    unsigned long long off = b->offset;
    /* the stored bytes' hash refuses the block before zstd sees it */
    char line[128];
    snprintf(line, sizeof(line), "shard-00000.nfs: block 5 at offset %llu: NUMAFEED_ECHECKSUM: ",
             off);
    size_t len;
    uint8_t *img = nft_read_file(s, &len);
    img[b->offset + b->stored_size / 2] ^= 0x10;
    assert_int_equal(nf_write_file(s, img, len), 0);
    nf__dataset_close(ds);
    expect(1, "check c", line);
    snprintf(line, sizeof(line), "c/shard-00000.nfs: block 5 at offset %llu: stored bytes hash to ",
             off);
    expect(1, "check c", line);
    expect(1, "check c", "content hash");
    expect(1, "check c", "result   2 problems");
    /* a truncated shard: no block to blame, the size and trailer are */
    assert_int_equal(nf_write_file(s, img, len - 5), 0);
    expect(1, "check c", "shard-00000.nfs: offset ");
    expect(1, "check c", "truncated");
    /* no dataset at all: one line saying so, no block or offset to make up,
     * no summary of zeros */
    expect(1, "check nowhere", "manifest.json: ENOENT: nowhere: No such file or directory");
    expect(1, "check nowhere", "result   1 problem: nowhere is not a readable dataset");
    expect(1, "bench nowhere", "numafeed bench: nowhere: No such file or directory (ENOENT)");
    free(img);
    free(s);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(help_and_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(pack_file_and_check, setup, teardown),
        cmocka_unit_test_setup_teardown(pack_stdin_with_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(partial_record_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(interrupted, setup, teardown),
        cmocka_unit_test_setup_teardown(check_names_problems, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
