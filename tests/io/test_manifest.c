// SPDX-License-Identifier: Apache-2.0
/* manifest.json parsing, writing and the record layout it describes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io_helpers.h"

#define SHARD(file, rec) "{\"file\":\"" file "\",\"records\":" #rec ",\"bytes\":200,\"xxh3\":\"00000000000000ff\"}"
#define GOOD_FIELDS "[{\"name\":\"tokens\",\"dtype\":\"int32\",\"shape\":[2,3]},{\"name\":\"label\",\"dtype\":\"bfloat16\",\"shape\":[]}]"

static char *manifest(const char *version, const char *record_bytes, const char *fields,
                      const char *records, const char *shards)
{
    char *s;
    assert_true(asprintf(&s, "{\"format\":\"numafeed\",\"version\":%s,\"record_bytes\":%s,"
                         "\"fields\":%s,\"records\":%s,\"codec\":\"zstd\",\"block_bytes\":1024,"
                         "\"shards\":%s}", version, record_bytes, fields, records, shards) > 0);
    return s;
}

static int parse(char *text, struct nf_manifest *m)
{
    int rc = nf__manifest_parse(text, strlen(text), "m.json", m, NULL);
    free(text);
    return rc;
}

static void expect_bad(char *text, int code, const char *needle)
{
    struct nf_manifest m;
    int rc = parse(text, &m);
    if (rc != code || !strstr(numafeed_last_error(), needle))
        fail_msg("got %s (%s), expected %s containing '%s'", numafeed_err_name(rc),
                 numafeed_last_error(), numafeed_err_name(code), needle);
    assert_int_equal(m.nshards, 0);
}

static void good(void **state)
{
    (void)state;
    struct nf_manifest m;
    assert_int_equal(parse(manifest("1", "26", GOOD_FIELDS, "30", "[" SHARD("a", 10) "," SHARD("b", 20) "]"), &m), 0);
    assert_int_equal(m.layout.nfields, 2);
    assert_int_equal(m.layout.record_bytes, 26);
    assert_int_equal(m.layout.fields[1].offset, 24);
    assert_string_equal(nf__dtype_name(m.layout.fields[1].dtype), "bfloat16");
    assert_int_equal(m.nshards, 2);
    assert_string_equal(m.shards[1].file, "b");
    assert_int_equal(m.shards[0].xxh3, 0xff);
    assert_string_equal(m.codec, "zstd");
    nf__manifest_free(&m);
}

static void malformed(void **state)
{
    (void)state;
    struct nf_manifest m;
    long long pos;
    const char *text = "{\"format\": \"numafeed\", ";
    assert_int_equal(nf__manifest_parse(text, strlen(text), "m.json", &m, &pos), NUMAFEED_EMANIFEST);
    assert_non_null(strstr(numafeed_last_error(), "invalid JSON"));
    assert_true(pos > 0);
    expect_bad(strdup("[1,2]"), NUMAFEED_EMANIFEST, "not a numafeed manifest");
    expect_bad(strdup("{\"format\":\"x\",\"version\":1}"), NUMAFEED_EMANIFEST, "not a numafeed");
    expect_bad(strdup("{\"format\":\"numafeed\",\"version\":1,\"version\":1}"), NUMAFEED_EMANIFEST,
               "invalid JSON");
}

static void version(void **state)
{
    (void)state;
    expect_bad(manifest("3", "26", GOOD_FIELDS, "10", "[" SHARD("a", 10) "]"), NUMAFEED_EVERSION,
               "format version 3");
    /* version 2 is the format of variable fields: fixed ones alone are 1 */
    expect_bad(manifest("2", "26", GOOD_FIELDS, "10", "[" SHARD("a", 10) "]"),
               NUMAFEED_EMANIFEST, "version 2 without a variable field");
    expect_bad(manifest("\"1\"", "26", GOOD_FIELDS, "10", "[" SHARD("a", 10) "]"),
               NUMAFEED_EMANIFEST, "integer \"version\"");
}

static void counts(void **state)
{
    (void)state;
    expect_bad(manifest("1", "26", GOOD_FIELDS, "31", "[" SHARD("a", 10) "," SHARD("b", 20) "]"),
               NUMAFEED_EMANIFEST, "shards hold 30 records, \"records\" says 31");
    expect_bad(manifest("1", "25", GOOD_FIELDS, "10", "[" SHARD("a", 10) "]"), NUMAFEED_EMANIFEST,
               "fields add up to 26");
    expect_bad(manifest("1", "26", GOOD_FIELDS, "-1", "[" SHARD("a", 10) "]"), NUMAFEED_EMANIFEST,
               "non-negative");
    expect_bad(manifest("1", "26", GOOD_FIELDS, "0", "[" SHARD("a", 0) "]"), NUMAFEED_EMANIFEST,
               "holds no records");
}

static void shard_names(void **state)
{
    (void)state;
    expect_bad(manifest("1", "26", GOOD_FIELDS, "10", "[" SHARD("../x", 10) "]"),
               NUMAFEED_EMANIFEST, "plain file name");
    expect_bad(manifest("1", "26", GOOD_FIELDS, "10", "[" SHARD(".hidden", 10) "]"),
               NUMAFEED_EMANIFEST, "plain file name");
    expect_bad(manifest("1", "26", GOOD_FIELDS, "10", "[" SHARD("manifest.json", 10) "]"),
               NUMAFEED_EMANIFEST, "plain file name");
    expect_bad(manifest("1", "26", GOOD_FIELDS, "20", "[" SHARD("a", 10) "," SHARD("a", 10) "]"),
               NUMAFEED_EMANIFEST, "listed twice");
    expect_bad(manifest("1", "26", GOOD_FIELDS, "10",
                        "[{\"file\":\"a\",\"records\":10,\"bytes\":1,\"xxh3\":\"XYZ\"}]"),
               NUMAFEED_EMANIFEST, "hex digits");
}

static void fields(void **state)
{
    (void)state;
    expect_bad(manifest("1", "4", "[{\"name\":\"x\",\"dtype\":\"complex64\",\"shape\":[1]}]", "10",
                        "[" SHARD("a", 10) "]"), NUMAFEED_EMANIFEST, "unknown dtype 'complex64'");
    expect_bad(manifest("1", "4", "[{\"name\":\"x\",\"dtype\":\"int32\",\"shape\":[0]}]", "10",
                        "[" SHARD("a", 10) "]"), NUMAFEED_EMANIFEST, ">= 1");
    expect_bad(manifest("1", "8", "[{\"name\":\"x\",\"dtype\":\"int32\",\"shape\":[]},"
                        "{\"name\":\"x\",\"dtype\":\"int32\",\"shape\":[]}]", "10",
                        "[" SHARD("a", 10) "]"), NUMAFEED_EMANIFEST, "used twice");
    expect_bad(manifest("1", "4", "[{\"name\":\"9x\",\"dtype\":\"int32\",\"shape\":[]}]", "10",
                        "[" SHARD("a", 10) "]"), NUMAFEED_EMANIFEST, "bad name");
    expect_bad(manifest("1", "4", "[]", "10", "[" SHARD("a", 10) "]"), NUMAFEED_EMANIFEST,
               "list of 1 to");
}

static void field_specs(void **state)
{
    (void)state;
    struct numafeed_field f;
    char a[] = "img:uint8:3x224x224", b[] = "y:float32", c[] = "t:int32:2048,2";
    assert_int_equal(nf__field_parse(a, &f), 0);
    assert_string_equal(f.name, "img");
    assert_string_equal(f.dtype, "uint8");
    assert_int_equal(f.ndim, 3);
    assert_int_equal(f.shape[2], 224);
    assert_int_equal(nf__field_parse(b, &f), 0);
    assert_int_equal(f.ndim, 0);
    assert_int_equal(nf__field_parse(c, &f), 0);
    assert_int_equal(f.ndim, 2);
    char d[] = "nocolon", e[] = "x:int8:3x", g[] = "x:int8:-3", h[] = "x:int8:99999999999999999999";
    assert_int_equal(nf__field_parse(d, &f), -EINVAL);
    assert_int_equal(nf__field_parse(e, &f), -EINVAL);
    assert_int_equal(nf__field_parse(g, &f), -EINVAL);
    assert_int_equal(nf__field_parse(h, &f), -EINVAL);
    struct nf_layout l;
    struct numafeed_field big = {"x", "float64", 2, {1 << 20, 1 << 20}};
    assert_int_equal(nf__layout_build(&big, 1, &l), -EINVAL);
}

static void write_then_load(void **state)
{
    (void)state;
    struct nf_manifest m;
    assert_int_equal(parse(manifest("1", "26", GOOD_FIELDS, "30", "[" SHARD("a", 10) "," SHARD("b", 20) "]"), &m), 0);
    char *dir = nf_tmpdir(), *path;
    assert_true(asprintf(&path, "%s/%s", dir, NF_MANIFEST_NAME) > 0);
    assert_int_equal(nf__manifest_write(path, &m), 0);
    struct nf_manifest back;
    assert_int_equal(nf__manifest_load(dir, &back, NULL), 0);
    assert_int_equal(back.records, 30);
    assert_int_equal(back.layout.fields[0].shape[1], 3);
    assert_int_equal(back.shards[1].xxh3, 0xff);
    nf__manifest_free(&back);
    nf__manifest_free(&m);
    free(path);
    nf_rmtree(dir);
    free(dir);
}

static void missing(void **state)
{
    (void)state;
    char *dir = nf_tmpdir();
    struct nf_manifest m;
    assert_int_equal(nf__manifest_load(dir, &m, NULL), -ENOENT);
    assert_non_null(strstr(numafeed_last_error(), "manifest.json"));
    nf_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good),        cmocka_unit_test(malformed),   cmocka_unit_test(version),
        cmocka_unit_test(counts),      cmocka_unit_test(shard_names), cmocka_unit_test(fields),
        cmocka_unit_test(field_specs), cmocka_unit_test(write_then_load), cmocka_unit_test(missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
