// SPDX-License-Identifier: Apache-2.0
/*
 * numafeed_launch_env: every launcher's variables alone, together when they
 * nest (the innermost launcher wins), and every malformed value refused with
 * the variable named.
 */
#include "helpers.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const all_vars[] = {
    "LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK",
    "RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS",
    "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
};

/* Start from an empty launcher environment, then set "NAME=VALUE" pairs. */
static void env(const char *const *pairs, size_t n)
{
    for (size_t i = 0; i < sizeof(all_vars) / sizeof(all_vars[0]); i++)
        unsetenv(all_vars[i]);
    for (size_t i = 0; i < n; i++) {
        char name[64];
        const char *eq = strchr(pairs[i], '=');
        snprintf(name, sizeof(name), "%.*s", (int)(eq - pairs[i]), pairs[i]);
        setenv(name, eq + 1, 1);
    }
}
#define ENV(...)                                                                  \
    do {                                                                          \
        const char *const p_[] = {__VA_ARGS__};                                   \
        env(p_, sizeof(p_) / sizeof(p_[0]));                                      \
    } while (0)

static struct numafeed_launch read_ok(void)
{
    struct numafeed_launch l;
    numafeed_launch_init(&l);
    int rc = numafeed_launch_env(&l);
    if (rc)
        fail_msg("numafeed_launch_env: %s", numafeed_last_error());
    return l;
}

/* Refused with NUMAFEED_ECONFIG and a message holding each of want[];
 * *out untouched. */
static void refused(const char *want1, const char *want2)
{
    struct numafeed_launch l;
    numafeed_launch_init(&l);
    l.local_rank = 99;
    assert_int_equal(numafeed_launch_env(&l), NUMAFEED_ECONFIG);
    const char *msg = numafeed_last_error();
    if (!strstr(msg, want1) || (want2 && !strstr(msg, want2)))
        fail_msg("message \"%s\" lacks \"%s\" or \"%s\"", msg, want1, want2 ? want2 : "");
    assert_int_equal(l.local_rank, 99);
}

static void test_nothing_set(void **state)
{
    (void)state;
    env(NULL, 0);
    struct numafeed_launch l = read_ok();
    assert_int_equal(l.size, sizeof(l));
    assert_int_equal(l.local_rank, -1);
    assert_int_equal(l.rank, -1);
    assert_int_equal(l.world_size, 0);
    assert_string_equal(l.local_rank_from, "");
    assert_string_equal(l.rank_from, "");
    assert_string_equal(l.world_size_from, "");
}

static void test_each_source(void **state)
{
    (void)state;
    static const char *const local[] = {"LOCAL_RANK", "SLURM_LOCALID",
                                        "OMPI_COMM_WORLD_LOCAL_RANK"};
    for (int i = 0; i < 3; i++) {
        char kv[64];
        snprintf(kv, sizeof(kv), "%s=%d", local[i], i + 3);
        ENV(kv);
        struct numafeed_launch l = read_ok();
        assert_int_equal(l.local_rank, i + 3);
        assert_string_equal(l.local_rank_from, local[i]);
        assert_int_equal(l.rank, -1);
    }
    static const char *const part[][2] = {{"RANK", "WORLD_SIZE"},
                                          {"SLURM_PROCID", "SLURM_NTASKS"},
                                          {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"}};
    for (int i = 0; i < 3; i++) {
        char r[64], w[64];
        snprintf(r, sizeof(r), "%s=%d", part[i][0], i + 1);
        snprintf(w, sizeof(w), "%s=%d", part[i][1], 2 * i + 4);
        ENV(r, w);
        struct numafeed_launch l = read_ok();
        assert_int_equal(l.rank, i + 1);
        assert_int_equal(l.world_size, 2 * i + 4);
        assert_string_equal(l.rank_from, part[i][0]);
        assert_string_equal(l.world_size_from, part[i][1]);
        assert_int_equal(l.local_rank, -1);
    }
}

static void test_agreement(void **state)
{
    (void)state;
    /* torchrun's names come first */
    ENV("SLURM_LOCALID=2", "LOCAL_RANK=2", "OMPI_COMM_WORLD_LOCAL_RANK=2", "RANK=5",
        "WORLD_SIZE=8", "SLURM_PROCID=5", "SLURM_NTASKS=8", "OMPI_COMM_WORLD_RANK=05");
    setenv("OMPI_COMM_WORLD_SIZE", "8", 1);
    struct numafeed_launch l = read_ok();
    assert_int_equal(l.local_rank, 2);
    assert_string_equal(l.local_rank_from, "LOCAL_RANK");
    assert_int_equal(l.rank, 5);
    assert_int_equal(l.world_size, 8);
    assert_string_equal(l.rank_from, "RANK");
    /* Slurm when torchrun's are absent; Open MPI's before Slurm's */
    ENV("SLURM_LOCALID=1", "OMPI_COMM_WORLD_LOCAL_RANK=1", "SLURM_PROCID=0", "SLURM_NTASKS=1");
    l = read_ok();
    assert_string_equal(l.local_rank_from, "OMPI_COMM_WORLD_LOCAL_RANK");
    assert_string_equal(l.world_size_from, "SLURM_NTASKS");
    assert_int_equal(l.world_size, 1);
}

/* One launcher inside another's allocation: the innermost wins, and the
 * outer one's different values are no error. */
static void test_nested_launchers(void **state)
{
    (void)state;
    /* srun starting torchrun: one Slurm task per node, torchrun's children */
    ENV("LOCAL_RANK=3", "SLURM_LOCALID=0", "RANK=11", "WORLD_SIZE=16", "SLURM_PROCID=1",
        "SLURM_NTASKS=2");
    struct numafeed_launch l = read_ok();
    assert_int_equal(l.local_rank, 3);
    assert_string_equal(l.local_rank_from, "LOCAL_RANK");
    assert_int_equal(l.rank, 11);
    assert_int_equal(l.world_size, 16);
    assert_string_equal(l.rank_from, "RANK");
    /* mpirun inside an sbatch script: Open MPI's over the batch step's */
    ENV("OMPI_COMM_WORLD_LOCAL_RANK=1", "SLURM_LOCALID=0", "OMPI_COMM_WORLD_RANK=5",
        "SLURM_PROCID=0", "SLURM_NTASKS=1");
    setenv("OMPI_COMM_WORLD_SIZE", "8", 1);
    l = read_ok();
    assert_int_equal(l.local_rank, 1);
    assert_string_equal(l.local_rank_from, "OMPI_COMM_WORLD_LOCAL_RANK");
    assert_int_equal(l.rank, 5);
    assert_int_equal(l.world_size, 8);
    assert_string_equal(l.world_size_from, "OMPI_COMM_WORLD_SIZE");
    /* an outer variable that is set must still be a number */
    ENV("LOCAL_RANK=1", "SLURM_LOCALID=x");
    refused("SLURM_LOCALID", "decimal");
}

static void test_garbage(void **state)
{
    (void)state;
    static const char *const bad[] = {"x", "-1", "+1", " 1", "1 ", "1x", "0x1", "1.0", "1e3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char kv[64];
        snprintf(kv, sizeof(kv), "LOCAL_RANK=%s", bad[i]);
        ENV(kv);
        refused("LOCAL_RANK", "decimal");
        snprintf(kv, sizeof(kv), "SLURM_NTASKS=%s", bad[i]);
        ENV("SLURM_PROCID=0", kv);
        refused("SLURM_NTASKS", NULL);
    }
    ENV("RANK=", "WORLD_SIZE=2");
    refused("RANK", "empty");
}

static void test_ranges_and_overflow(void **state)
{
    (void)state;
    ENV("LOCAL_RANK=4096");
    assert_int_equal(read_ok().local_rank, 4096);
    ENV("LOCAL_RANK=4097");
    refused("LOCAL_RANK=\"4097\"", "4096");
    ENV("SLURM_LOCALID=99999999999999999999999");
    refused("SLURM_LOCALID", "larger");
    ENV("RANK=2147483646", "WORLD_SIZE=2147483647");
    assert_int_equal(read_ok().world_size, 2147483647);
    ENV("RANK=0", "WORLD_SIZE=2147483648");
    refused("WORLD_SIZE", "larger");
    ENV("RANK=18446744073709551617", "WORLD_SIZE=2");
    refused("RANK", "larger");
    ENV("RANK=0", "WORLD_SIZE=0");
    refused("WORLD_SIZE=0", "at least 1");
    ENV("RANK=4", "WORLD_SIZE=4");
    refused("RANK=4", "WORLD_SIZE=4");
}

static void test_missing_world_size(void **state)
{
    (void)state;
    ENV("RANK=0");
    refused("RANK=0", "WORLD_SIZE is not");
    ENV("SLURM_NTASKS=4");
    refused("SLURM_NTASKS=4", "SLURM_PROCID is not");
    ENV("RANK=1", "WORLD_SIZE=2", "OMPI_COMM_WORLD_RANK=1");
    refused("OMPI_COMM_WORLD_RANK=1", "OMPI_COMM_WORLD_SIZE");
}

static void test_sizes(void **state)
{
    (void)state;
    ENV("LOCAL_RANK=3", "RANK=1", "WORLD_SIZE=2");
    struct numafeed_launch l;
    numafeed_launch_init(&l);
    l.size = 0;
    assert_int_equal(numafeed_launch_env(&l), -EINVAL);
    assert_int_equal(numafeed_launch_env(NULL), -EINVAL);
    l.size = sizeof(l) + 1;
    assert_int_equal(numafeed_launch_env(&l), -EINVAL);
    /* an older, shorter struct: nothing past its size is written */
    numafeed_launch_init(&l);
    l.size = offsetof(struct numafeed_launch, local_rank_from);
    assert_int_equal(numafeed_launch_env(&l), 0);
    assert_int_equal(l.local_rank, 3);
    assert_int_equal(l.world_size, 2);
    assert_string_equal(l.local_rank_from, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_set),
        cmocka_unit_test(test_each_source),
        cmocka_unit_test(test_agreement),
        cmocka_unit_test(test_nested_launchers),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_ranges_and_overflow),
        cmocka_unit_test(test_missing_world_size),
        cmocka_unit_test(test_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
