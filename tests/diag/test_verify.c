// SPDX-License-Identifier: Apache-2.0
/* numafeed_verify: a made-up /proc with pool threads on and off their node,
 * and this very process running a loader, read from the real /proc. */
#include "helpers.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static char *root;

static void put(const char *rel, const char *text)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    assert_int_equal(nf_write_file(p, text, strlen(text)), 0);
}

static void task(int tid, const char *name, const char *cpus, int last)
{
    char rel[256], text[512];
    snprintf(rel, sizeof(rel), "proc/4242/task/%d/comm", tid);
    snprintf(text, sizeof(text), "%s\n", name);
    put(rel, text);
    snprintf(rel, sizeof(rel), "proc/4242/task/%d/status", tid);
    snprintf(text, sizeof(text), "Name:\t%s\nCpus_allowed_list:\t%s\n", name, cpus);
    put(rel, text);
    /* a stat line whose comm holds a space and a ')' to test the parsing */
    snprintf(rel, sizeof(rel), "proc/4242/task/%d/stat", tid);
    snprintf(text, sizeof(text), "%d (we ird) S) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 "
             "0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 %d 0 0 0 0 0\n", tid, last);
    put(rel, text);
}

static json_t *verify(int pid, int gpu, int *problems)
{
    struct numafeed_doctor_options o;
    numafeed_doctor_options_init(&o);
    o.sysfs_root = nf_fixture("sysfs/dgx-h100-2s8g");
    char proc[4096];
    snprintf(proc, sizeof(proc), "%s/proc", root);
    o.proc_root = proc;
    o.allowed_cpus = "0-223";
    o.use_cuda = 0;
    char *text;
    int rc = numafeed_verify(pid, gpu, &o, &text, problems);
    if (rc)
        fail_msg("numafeed_verify: %s", numafeed_last_error());
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    return doc;
}

static int thread_ok(json_t *doc, const char *tid)
{
    json_t *t;
    size_t i;
    json_array_foreach(json_object_get(doc, "threads"), i, t) {
        if (!strcmp(json_string_value(json_object_get(t, "tid")), tid))
            return json_is_true(json_object_get(t, "ok"));
    }
    fail_msg("thread %s missing", tid);
    return -1;
}

static void test_fake_proc(void **state)
{
    (void)state;
    root = nf_tmpdir();
    /* GPU 4 of the DGX fixture is on node 1: CPUs 56-111,168-223 */
    task(10, "python3", "0-223", 3);
    task(11, "numafeed-g4-0", "56-111,168-223", 60);  /* right */
    task(12, "numafeed-g4-1", "0-223", 60);           /* allowed too widely */
    task(13, "numafeed-g4-2", "56-111,168-223", 3);   /* impossible last CPU: flagged */
    task(14, "numafeed-g0-0", "0-55,112-167", 112);   /* GPU 0's pool, right */
    put("proc/4242/numa_maps", "7f0000000000 default anon=10 dirty=10 N0=6 N1=4 "
        "kernelpagesize_kB=4\n7f0000400000 bind:1 anon=2 N1=2 kernelpagesize_kB=2048\n");
    int problems = -1;
    json_t *doc = verify(4242, -1, &problems);
    assert_true(thread_ok(doc, "10"));
    assert_true(thread_ok(doc, "11"));
    assert_false(thread_ok(doc, "12"));
    assert_false(thread_ok(doc, "13"));
    assert_true(thread_ok(doc, "14"));
    assert_int_equal(problems, 2);
    json_t *nb = json_object_get(doc, "node_bytes");
    assert_int_equal(json_integer_value(json_object_get(nb, "0")), 6 * 4096);
    assert_int_equal(json_integer_value(json_object_get(nb, "1")), 4 * 4096 + 2 * 2048 * 1024);
    json_decref(doc);

    /* with --gpu 4, node 0's pages and the python thread are off too */
    doc = verify(4242, 4, &problems);
    assert_false(thread_ok(doc, "10"));
    assert_int_equal(json_integer_value(json_object_get(doc, "off_node_bytes")), 6 * 4096);
    assert_int_equal(problems, 2 + 1 + 1);
    json_decref(doc);

    struct numafeed_doctor_options o;
    numafeed_doctor_options_init(&o);
    char proc[4096];
    snprintf(proc, sizeof(proc), "%s/proc", root);
    o.proc_root = proc;
    char *text;
    assert_int_equal(numafeed_verify(99999, -1, &o, &text, NULL), -ESRCH);
    assert_int_equal(numafeed_verify(0, -1, &o, &text, NULL), -EINVAL);
    nf_rmtree(root);
    free(root);
}

static void test_self_with_loader(void **state)
{
    (void)state;
    /* a real loader in this process: its pool threads must check out */
    char *base = nf_tmpdir(), *dir;
    assert_true(asprintf(&dir, "%s/ds", base) > 0);
    struct numafeed_field f = {.name = "x", .dtype = "uint8", .ndim = 1, .shape = {100}};
    numafeed_writer *w;
    assert_int_equal(numafeed_writer_create(dir, &f, 1, NULL, &w), 0);
    uint8_t rec[100 * 50];
    memset(rec, 7, sizeof(rec));
    assert_int_equal(numafeed_writer_append(w, rec, 50), 0);
    assert_int_equal(numafeed_writer_finish(w), 0);
    numafeed_writer_destroy(w);
    struct loader_config c;
    loader_config_init(&c);
    c.path = dir;
    c.threads = 2;
    c.batch_size = 10;
    c.world_size = 1;
    c.device = LOADER_DEVICE_CPU;
    loader_t *L;
    assert_int_equal(loader_create(&c, &L), 0);
    struct loader_batch b = LOADER_BATCH_INIT;
    assert_int_equal(loader_next(L, 0, &b, 10000), 0);
    struct numafeed_doctor_options o;
    numafeed_doctor_options_init(&o);
    o.use_cuda = 0;
    char *text;
    int problems = -1;
    assert_int_equal(numafeed_verify((int)getpid(), -1, &o, &text, &problems), 0);
    assert_non_null(strstr(text, "\"name\":\"numafeed-g0-0\""));
    assert_non_null(strstr(text, "\"name\":\"numafeed-g0-1\""));
    assert_int_equal(problems, 0);
    free(text);
    loader_release(L, &b);
    loader_destroy(L);
    nf_rmtree(base);
    free(base);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fake_proc),
        cmocka_unit_test(test_self_with_loader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
