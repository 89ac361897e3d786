// SPDX-License-Identifier: Apache-2.0
/* `numafeed pack --from raw|files|tar|tokens` as a user runs it (NF_CLI):
 * every record read back through the public read-only dataset API and
 * compared byte for byte with what went in, every refusal named, and
 * `numafeed check` clean on every dataset written. */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmp;

static int setup(void **state)
{
    (void)state;
    tmp = nf_tmpdir();
    /* a FIFO or a lost wait must fail the test, not hang it */
    alarm(240);
    return tmp ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    alarm(0);
    nf_rmtree(tmp);
    free(tmp);
    return 0;
}

/* ---- running the command ---- */

/* Run "cd tmp && numafeed ARGS 2>&1"; fail unless it exits with status
 * and its output holds every needle (NULL-terminated list). */
static void expect(int status, const char *args, ...)
{
    char *out = NULL;
    int rc = nf_run(&out, "cd '%s' && %s %s 2>&1", tmp, NF_CLI, args);
    const char *text = out ? out : "", *missing = NULL;
    va_list ap;
    va_start(ap, args);
    for (const char *needle; !missing && (needle = va_arg(ap, const char *));)
        if (!strstr(text, needle))
            missing = needle;
    va_end(ap);
    if (missing)
        print_error("'%s': no '%s' in its output:\n%s\n", args, missing, text);
    else if (rc != status)
        print_error("'%s': exit %d, expected %d; output:\n%s\n", args, rc, status, text);
    free(out); /* before fail(), which does not return */
    if (missing || rc != status)
        fail();
}

static void check_ok(const char *dir)
{
    char args[4096];
    snprintf(args, sizeof(args), "check %s", dir);
    expect(0, args, "result   OK", NULL);
}

/* ---- building inputs ---- */

/* Write len bytes to tmp/rel, creating directories on the way with
 * mkdirat/openat, so that paths longer than PATH_MAX work too. */
static void put(const char *rel, const void *data, size_t len)
{
    char *copy = strdup(rel), *save = NULL;
    int dfd = open(tmp, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    char *part = strtok_r(copy, "/", &save), *next;
    for (; (next = strtok_r(NULL, "/", &save)); part = next) {
        if (mkdirat(dfd, part, 0755) && errno != EEXIST)
            fail_msg("mkdir %s: %s", part, strerror(errno));
        int sub = openat(dfd, part, O_RDONLY | O_DIRECTORY);
        assert_true(sub >= 0);
        close(dfd);
        dfd = sub;
    }
    int fd = openat(dfd, part, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    close(dfd);
    free(copy);
}

static void put_text(const char *rel, const char *text)
{
    put(rel, text, strlen(text));
}

/* Deterministic bytes that differ per seed. */
static uint8_t *pattern(size_t len, unsigned seed)
{
    uint8_t *p = malloc(len ? len : 1);
    uint32_t x = 2463534242u ^ seed * 2654435761u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        p[i] = (uint8_t)x;
    }
    return p;
}

/* Run a shell command that must succeed. */
static void shell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void shell(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (nf_run(NULL, "%s", cmd))
        fail_msg("'%s' failed", cmd);
}

/* ---- reading back ---- */

/* A record as the dataset API returns it: fixed fields, then each
 * variable field's bytes in field order. */
struct want {
    uint8_t *p;
    size_t n;
};

static void want_add(struct want *w, const void *data, size_t n)
{
    w->p = realloc(w->p, w->n + n + 1);
    memcpy(w->p + w->n, data, n);
    w->n += n;
}

static void want_i64(struct want *w, int64_t v)
{
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)((uint64_t)v >> (8 * i));
    want_add(w, le, 8);
}

static numafeed_dataset *open_ds(const char *rel)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", tmp, rel);
    numafeed_dataset *ds;
    if (numafeed_dataset_open(path, &ds))
        fail_msg("open %s: %s", path, numafeed_last_error());
    return ds;
}

/* Record i of ds equals want (then freed). */
static void assert_record(numafeed_dataset *ds, uint64_t i, struct want *w)
{
    uint64_t size = numafeed_dataset_record_size(ds, i);
    uint8_t *got = malloc(size ? size : 1);
    assert_int_equal(numafeed_dataset_read_record(ds, i, got, size), 0);
    if (size != w->n || memcmp(got, w->p, size))
        fail_msg("record %llu: %llu bytes, expected %zu, or other bytes", (unsigned long long)i,
                 (unsigned long long)size, w->n);
    free(got);
    free(w->p);
    memset(w, 0, sizeof(*w));
}

/* The dataset's manifest holds needle (field names and types). */
static void manifest_has(const char *rel, const char *needle)
{
    char path[4096], *text;
    size_t len;
    snprintf(path, sizeof(path), "%s/%s", tmp, rel);
    assert_int_equal(numafeed_dataset_manifest(path, 0, &text, &len), 0);
    char *z = strndup(text, len);
    if (!strstr(z, needle))
        fail_msg("%s/manifest.json has no '%s':\n%s", rel, needle, z);
    free(z);
    free(text);
}

/* ---- --from files ---- */

struct tree_file {
    const char *key;
    int64_t label;
    size_t len;
};

/* A path deeper than PATH_MAX: 30 directories of 150 characters. */
static char *deep_key(void)
{
    char *k = malloc(8192);
    size_t n = (size_t)sprintf(k, "c_class");
    for (int i = 0; i < 30; i++) {
        k[n++] = '/';
        memset(k + n, 'a' + i % 26, 150);
        n += 150;
    }
    strcpy(k + n, "/leaf.bin");
    return k;
}

static void files_round_trip(void **state)
{
    (void)state;
    char *deep = deep_key();
    const struct tree_file files[] = { /* in the order of the walk */
        {"C_upper/one", 0, 10},        /* 'C' sorts before 'a' (byte order) */
        {"a_class/x1", 1, 1000},
        {"a_class/x2", 1, 0},          /* an empty file is a record */
        {"b_class/a/inner/f", 2, 33},  /* depth first: a/ before empty */
        {"b_class/empty", 2, 0},
        {"b_class/z.bin", 2, 70000},
        {"b_class/\xc3\xbcn\xc3\xaf-\xe5\x90\x8d.dat", 2, 5}, /* 0xc3 sorts after 'z' */
        {deep, 3, 12},
    };
    const size_t n = sizeof(files) / sizeof(files[0]);
    char rel[8192];
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = pattern(files[i].len, (unsigned)i);
        snprintf(rel, sizeof(rel), "root/%s", files[i].key);
        put(rel, p, files[i].len);
        free(p);
    }
    put_text("root/.hidden_class/f", "not a class");
    put_text("root/a_class/.DS_Store", "hidden");
    shell("cd '%s/root/a_class' && ln -s x1 link_file && ln -s ../b_class link_dir", tmp);
    expect(0, "pack --out ds --from files --block-bytes 64K root", "ds: 8 records (",
           "from 8 files in 4 classes", "skipped 2 links, 2 hidden names",
           "warning: skipped 2 links: root/a_class/link_dir, root/a_class/link_file", NULL);
    check_ok("ds");
    manifest_has("ds", "\"label\"");
    numafeed_dataset *ds = open_ds("ds");
    assert_int_equal(numafeed_dataset_records(ds), n);
    assert_int_equal(numafeed_dataset_record_bytes(ds), 8); /* label, the fixed part */
    for (size_t i = 0; i < n; i++) {
        struct want w = {0};
        uint8_t *p = pattern(files[i].len, (unsigned)i);
        want_i64(&w, files[i].label);
        want_add(&w, files[i].key, strlen(files[i].key));
        want_add(&w, p, files[i].len);
        free(p);
        assert_record(ds, i, &w);
    }
    numafeed_dataset_close(ds);
    /* the loader serves variable fields: bench reads every record */
    expect(0, "bench ds --digest --epochs 1 --batch-size 3", "epoch 0 records 8", NULL);
    free(deep);
}

static void files_refusals(void **state)
{
    (void)state;
    put_text("stray/cls/ok", "fine");
    put_text("stray/loose.jpg", "ImageFolder would not see this");
    expect(1, "pack --out ds --from files stray", "stray/loose.jpg: a file directly in ROOT",
           NULL);
    expect(1, "pack --out ds --from files nowhere", "nowhere: No such file", NULL);
    assert_int_equal(nf_run(NULL, "cd '%s' && ls -a | grep -q ds", tmp) != 0, 1);
    put_text("bad/cls/bad\xff.bin", "a name that is not UTF-8");
    expect(1, "pack --out ds --from files bad", "bad/cls/bad\\xff.bin", "'key': not UTF-8",
           NULL);
    shell("mkdir -p '%s/empty/cls'", tmp);
    expect(1, "pack --out ds --from files empty", "no records", "holds no files", NULL);
}

static void files_too_large(void **state)
{
    (void)state;
    uint8_t *big = pattern(2000, 1), *small = pattern(10, 2);
    put("big/a/big", big, 2000);
    put("big/a/small", small, 10);
    expect(1, "pack --out ds --from files --max-record-bytes 1K big", "big/a/big: 2000 bytes",
           "--max-record-bytes 1024", NULL);
    expect(0, "pack --out ds --from files --max-record-bytes 1K --skip-too-large big",
           "ds: 1 records", "skipped 1 record over --max-record-bytes: big/a/big", NULL);
    check_ok("ds");
    numafeed_dataset *ds = open_ds("ds");
    assert_int_equal(numafeed_dataset_records(ds), 1);
    struct want w = {0};
    want_i64(&w, 0);
    want_add(&w, "a/small", 7);
    want_add(&w, small, 10);
    assert_record(ds, 0, &w);
    numafeed_dataset_close(ds);
    free(big);
    free(small);
}

/* A FIFO is never opened (it would block); the alarm set up in setup()
 * fails the test if it were. */
static void files_fifo(void **state)
{
    (void)state;
    put_text("fifo/a/file", "x");
    shell("mkfifo '%s/fifo/a/pipe'", tmp);
    expect(0, "pack --out ds --from files --verbose fifo", "ds: 1 records",
           "skipping fifo/a/pipe: not a regular file", "label 0: fifo/a",
           "skipped 1 special file", NULL);
    check_ok("ds");
}

/* ---- --from tar ---- */

/* A numafeed built without libarchive has no --from tar: skip. */
static void need_tar(void)
{
    char *out = NULL;
    nf_run(&out, "%s pack --out '%s/none' --from tar /dev/null 2>&1", NF_CLI, tmp);
    int missing = out && strstr(out, "built without libarchive");
    free(out);
    if (missing)
        skip();
}

/* tar -cf tmp/NAME the members of tmp/stage, in the order given, no
 * recursion (a directory member is only itself). */
static void make_tar(const char *name, const char *members)
{
    if (nf_run(NULL, "cd '%s/stage' && tar --no-recursion -cf '../%s' %s", tmp, name, members))
        fail_msg("tar %s failed", name);
}

static void sample_files(const char *key, int cls, unsigned seed)
{
    char rel[512], text[256];
    snprintf(rel, sizeof(rel), "stage/%s.cls", key);
    snprintf(text, sizeof(text), "  %d\n", cls);
    put_text(rel, text);
    uint8_t *p = pattern(300 + seed, seed);
    snprintf(rel, sizeof(rel), "stage/%s.jpg", key);
    put(rel, p, 300 + seed);
    free(p);
    p = pattern(40, seed + 100);
    snprintf(rel, sizeof(rel), "stage/%s.seg.png", key);
    put(rel, p, 40);
    free(p);
    snprintf(rel, sizeof(rel), "stage/%s.txt", key);
    snprintf(text, sizeof(text), "caption \xc3\xa9 %s", key);
    put_text(rel, text);
}

/* What a sample of sample_files reads back as: cls (the fixed part), then
 * key, jpg, seg_png, txt. */
static void want_sample(struct want *w, const char *key, int cls, unsigned seed)
{
    char text[256];
    want_i64(w, cls);
    want_add(w, key, strlen(key));
    uint8_t *p = pattern(300 + seed, seed);
    want_add(w, p, 300 + seed);
    free(p);
    p = pattern(40, seed + 100);
    want_add(w, p, 40);
    free(p);
    snprintf(text, sizeof(text), "caption \xc3\xa9 %s", key);
    want_add(w, text, strlen(text));
}

static void tar_round_trip(void **state)
{
    (void)state;
    need_tar();
    const char *keys[] = {"train/000", "train/001", "train/002", "val/100", "val/101"};
    for (unsigned i = 0; i < 5; i++)
        sample_files(keys[i], (int)i * 7 - 3, i);
    shell("ln -s 100.jpg '%s/stage/val/link.jpg'", tmp);
    /* a directory member, and members of a sample in any order */
    make_tar("s0.tar", "train train/000.cls train/000.jpg train/000.seg.png train/000.txt "
                       "train/001.txt train/001.seg.png train/001.jpg train/001.cls "
                       "train/002.jpg train/002.cls train/002.txt train/002.seg.png");
    make_tar("s1.tar", "val/100.cls val/100.jpg val/100.seg.png val/100.txt val/link.jpg "
                       "val/101.cls val/101.jpg val/101.seg.png val/101.txt");
    shell("gzip -k '%s/s1.tar'", tmp);
    expect(0, "pack --out wds --from tar --block-bytes 1K s0.tar s1.tar.gz", "wds: 5 records (",
           "from 5 samples in 2 tar shards", "skipped 1 link: s1.tar.gz: member 'val/link.jpg'",
           NULL);
    check_ok("wds");
    manifest_has("wds", "\"seg_png\"");
    numafeed_dataset *ds = open_ds("wds");
    assert_int_equal(numafeed_dataset_records(ds), 5);
    for (unsigned i = 0; i < 5; i++) {
        struct want w = {0};
        want_sample(&w, keys[i], (int)i * 7 - 3, i);
        assert_record(ds, i, &w);
    }
    numafeed_dataset_close(ds);
    expect(0, "bench wds --digest --epochs 1 --batch-size 2", "epoch 0 records 5", NULL);
}

static void tar_incomplete(void **state)
{
    (void)state;
    need_tar();
    const char *keys[] = {"a", "b", "c"};
    for (unsigned i = 0; i < 3; i++)
        sample_files(keys[i], (int)i, i);
    put_text("stage/c.json", "{}");
    make_tar("miss.tar", "a.cls a.jpg a.seg.png a.txt b.cls b.jpg b.seg.png c.cls c.jpg "
                         "c.seg.png c.txt");
    expect(1, "pack --out ds --from tar miss.tar", "miss.tar: sample 'b' has no 'txt' member",
           "'a' in miss.tar", NULL);
    expect(0, "pack --out ds --from tar --skip-incomplete miss.tar", "ds: 2 records",
           "skipped 1 incomplete sample: miss.tar: sample 'b'", NULL);
    check_ok("ds");
    numafeed_dataset *ds = open_ds("ds");
    struct want w = {0};
    want_sample(&w, "c", 2, 2);
    assert_record(ds, 1, &w);
    numafeed_dataset_close(ds);
    make_tar("extra.tar", "a.cls a.jpg a.seg.png a.txt c.cls c.jpg c.json c.seg.png c.txt");
    expect(1, "pack --out ds2 --from tar extra.tar", "sample 'c' has a 'json' member", NULL);
}

/* tmp/NAME: one ustar member `member` whose header claims `size` bytes,
 * followed by `body` bytes of data and the end-of-archive blocks: a header
 * that lies. */
static void lying_tar(const char *name, const char *member, uint64_t size, size_t body)
{
    uint8_t h[512] = {0};
    snprintf((char *)h, 100, "%s", member);
    memcpy(h + 100, "0000644", 8);
    memcpy(h + 108, "0000000", 8);
    memcpy(h + 116, "0000000", 8);
    snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
    memcpy(h + 136, "00000000000", 12);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    size_t len = 512 + (body + 511) / 512 * 512 + 1024;
    uint8_t *img = calloc(1, len);
    memcpy(img, h, 512);
    memset(img + 512, 'x', body);
    put(name, img, len);
    free(img);
}

static void tar_refusals(void **state)
{
    (void)state;
    need_tar();
    put_text("stage/a.cls", "1");
    put_text("stage/b.cls", " seven\n");
    put_text("stage/a.jpg", "jpeg");
    put_text("stage/b.jpg", "jpeg");
    make_tar("cls.tar", "a.cls a.jpg b.cls b.jpg");
    expect(1, "pack --out ds --from tar cls.tar",
           "cls.tar: sample 'b': member 'b.cls' is not a decimal integer", NULL);
    make_tar("again.tar", "a.jpg b.jpg a.cls");
    expect(1, "pack --out ds --from tar again.tar", "sample 'a': key appears again", NULL);
    /* the same path twice (from another directory: tar would make the
     * second a hard link to the first) */
    make_tar("dup.tar", "a.jpg");
    put_text("stage2/a.jpg", "other");
    shell("cd '%s/stage2' && tar -rf ../dup.tar a.jpg", tmp);
    expect(1, "pack --out ds --from tar dup.tar", "sample 'a': a second 'jpg' member", NULL);
    put_text("stage/d.1", "one");
    make_tar("digit.tar", "d.1");
    expect(1, "pack --out ds --from tar digit.tar", "extension '1'", "starts with a digit",
           NULL);
    uint8_t *big = pattern(3000, 9);
    put("stage/big.jpg", big, 3000);
    free(big);
    make_tar("big.tar", "a.jpg big.jpg b.jpg");
    expect(1, "pack --out ds --from tar --max-record-bytes 2K big.tar",
           "big.tar: member 'big.jpg' is 3000 bytes", "--max-record-bytes 2048", NULL);
    expect(0, "pack --out ds --from tar --max-record-bytes 2K --skip-too-large big.tar",
           "ds: 2 records", "skipped 1 record over --max-record-bytes: big.tar: sample 'big'",
           NULL);
    check_ok("ds");
    /* sizes from headers are checked before anything is read */
    lying_tar("huge.tar", "h.jpg", 077777777777ull, 0);
    expect(1, "pack --out ds --from tar huge.tar", "huge.tar: member 'h.jpg' is 8589934591 "
           "bytes", NULL);
    lying_tar("short.tar", "s.jpg", 5000, 512);
    expect(1, "pack --out ds --from tar short.tar", "short.tar: ", "'s.jpg'", NULL);
    put_text("notar", "this is not a tar file");
    expect(1, "pack --out ds2 --from tar notar", "notar: ", NULL);
    expect(1, "pack --out ds2 --from tar missing.tar", "missing.tar: No such file", NULL);
}

/* ---- --from tokens ---- */

/* n tokens of `size` bytes, token i = i * 7919 + 1 (mod the dtype), LE. */
static uint8_t *tokens(size_t n, size_t size)
{
    uint8_t *p = malloc(n * size);
    for (size_t i = 0; i < n; i++) {
        uint64_t v = i * 7919 + 1;
        for (size_t b = 0; b < size; b++)
            p[i * size + b] = (uint8_t)(v >> (8 * b));
    }
    return p;
}

/* tmp/tk holds exactly the windows of seq + 1 of n tokens of `size` bytes
 * every stride tokens; it is checked, then removed. */
static void windows(size_t n, size_t size, uint64_t seq, uint64_t stride, uint64_t expect_windows)
{
    uint8_t *t = tokens(n, size);
    numafeed_dataset *ds = open_ds("tk");
    assert_int_equal(numafeed_dataset_records(ds), expect_windows);
    assert_int_equal(numafeed_dataset_record_bytes(ds), (seq + 1) * size);
    for (uint64_t i = 0; i < expect_windows; i++) {
        struct want w = {0};
        want_add(&w, t + i * stride * size, (seq + 1) * size);
        assert_record(ds, i, &w);
    }
    numafeed_dataset_close(ds);
    check_ok("tk");
    nf_run(NULL, "rm -rf '%s/tk'", tmp);
    free(t);
}

static void put_tokens(const char *name, size_t n, size_t size)
{
    uint8_t *t = tokens(n, size);
    put(name, t, n * size);
    free(t);
}

static void tokens_windows(void **state)
{
    (void)state;
    put_tokens("t16.bin", 100, 2);
    /* default stride N: windows of 9 at 0, 8, ..., 88; 12 in all */
    expect(0, "pack --out tk --from tokens --dtype uint16 --seq-len 8 t16.bin",
           "tk: 12 records of 18 bytes", NULL);
    manifest_has("tk", "\"uint16\"");
    windows(100, 2, 8, 8, 12);
    put_tokens("t32.bin", 100, 4);
    /* stride 20, windows of 26: 0, 20, 40, 60; the one at 80 is partial */
    expect(0, "pack --out tk --from tokens --dtype uint32 --seq-len 25 --stride 20 t32.bin",
           "tk: 4 records of 104 bytes", NULL);
    windows(100, 4, 25, 20, 4);
    /* overlapping windows, from a pipe */
    expect(0, "pack --out tk --from tokens --dtype int32 --seq-len 4 --stride 3 - < t32.bin",
           "tk: 32 records", "from standard input", NULL);
    windows(100, 4, 4, 3, 32);
    /* more than the 16 MiB read buffer: windows across its refills */
    put_tokens("big.bin", 9u << 20, 2);
    expect(0, "pack --out tk --from tokens --dtype uint16 --seq-len 1023 --stride 1000 "
              "--codec none --block-bytes 16K big.bin", NULL);
    windows(9u << 20, 2, 1023, 1000, ((9u << 20) - 1024) / 1000 + 1);
}

static void tokens_refusals(void **state)
{
    (void)state;
    put_tokens("odd.bin", 100, 2);
    shell("printf x >> '%s/odd.bin'", tmp);
    expect(1, "pack --out tk --from tokens --dtype uint16 --seq-len 8 odd.bin",
           "odd.bin: 201 bytes is not a multiple of the uint16 size (2 bytes)", NULL);
    expect(1, "pack --out tk --from tokens --dtype uint16 --seq-len 8 - < odd.bin",
           "standard input: 201 bytes is not a multiple of the uint16 size", NULL);
    put_tokens("short.bin", 50, 4);
    expect(1, "pack --out tk --from tokens --dtype uint32 --seq-len 60 short.bin",
           "short.bin: 50 tokens, fewer than one window of 61", NULL);
    assert_int_equal(nf_run(NULL, "cd '%s' && ls -a | grep -q tk", tmp) != 0, 1);
}

/* ---- raw, the default, and the command line ---- */

static void raw_unchanged(void **state)
{
    (void)state;
    uint8_t *p = pattern(16 * 500, 5);
    put("in.bin", p, 16 * 500);
    expect(0, "pack --out r1 --record-bytes 16 in.bin", "r1: 500 records of 16 bytes in 1 shard",
           NULL);
    expect(0, "pack --out r2 --from raw --field a:int32:2 --field b:uint64 in.bin",
           "r2: 500 records of 16 bytes", NULL);
    for (int d = 0; d < 2; d++) {
        numafeed_dataset *ds = open_ds(d ? "r2" : "r1");
        for (uint64_t i = 0; i < 500; i += 37) {
            struct want w = {0};
            want_add(&w, p + i * 16, 16);
            assert_record(ds, i, &w);
        }
        numafeed_dataset_close(ds);
    }
    check_ok("r1");
    free(p);
}

static void usage(void **state)
{
    (void)state;
    expect(0, "pack --help", "--from SOURCE", "--from files", "--from tar", "--from tokens",
           "--skip-too-large", "--skip-incomplete", "--max-record-bytes", "--seq-len",
           "--stride", "--dtype", "ImageFolder", "WebDataset", "Examples", "Exit status", NULL);
    expect(2, "pack --out d --from zip x", "--from 'zip'", NULL);
    expect(2, "pack --out d --from files --dtype uint16 x", "--dtype is an option of --from "
           "tokens only", NULL);
    expect(2, "pack --out d --from tokens --record-bytes 4 x", "--record-bytes", NULL);
    expect(2, "pack --out d --skip-too-large --record-bytes 4 x", "--skip-too-large", NULL);
    expect(2, "pack --out d --from files --skip-incomplete x", "--skip-incomplete", NULL);
    expect(2, "pack --out d --from tokens --dtype uint16 x", "needs --dtype and --seq-len",
           NULL);
    expect(2, "pack --out d --from tokens --dtype int8 --seq-len 3 x", "--dtype 'int8'", NULL);
    expect(2, "pack --out d --from tokens --dtype int32 --seq-len 0 x", "--seq-len '0'", NULL);
    expect(2, "pack --out d --from tar", "give one or more SHARDs", NULL);
    expect(2, "pack --out d --from files a b", "more than one input", NULL);
    expect(2, "pack --out d --from files --max-record-bytes 1G a", "--max-record-bytes", NULL);
}

/* SIGTERM while reading a pipe: status 143 and nothing left behind. */
static void interrupted(void **state)
{
    (void)state;
    put_tokens("t.bin", 1000, 2);
    char *out = NULL;
    int rc = nf_run(&out, "cd '%s' && { (cat t.bin; sleep 3) | %s pack --out k --from tokens "
                    "--dtype uint16 --seq-len 8 - 2>/dev/null & p=$!; sleep 0.5; kill -TERM $p; "
                    "wait $p; echo \"status $?\"; }", tmp, NF_CLI);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "status 143"));
    free(out);
    assert_int_equal(nf_run(NULL, "cd '%s' && ls -a | grep -q k", tmp) != 0, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(files_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(files_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(files_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(files_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(tar_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(tar_incomplete, setup, teardown),
        cmocka_unit_test_setup_teardown(tar_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(tokens_windows, setup, teardown),
        cmocka_unit_test_setup_teardown(tokens_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(raw_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(usage, setup, teardown),
        cmocka_unit_test_setup_teardown(interrupted, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
