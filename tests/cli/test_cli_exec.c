// SPDX-License-Identifier: Apache-2.0
/* numafeed exec: the plan (dry run), launcher variables, refusals, and a
 * real exec whose child reports the binding the kernel gave it. The DGX
 * fixture's node 0 is this machine's node 0, so the binding is real here. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *dgx(void)
{
    return nf_fixture("sysfs/dgx-h100-2s8g");
}

static void test_plan(void **state)
{
    (void)state;
    char *out = NULL;
    /* launcher variables pick the GPU; the innermost launcher's win */
    assert_int_equal(nf_run(&out, "LOCAL_RANK=3 SLURM_LOCALID=3 %s exec --dry-run --sysfs-root "
                            "%s -- echo hi 2>/dev/null", NF_CLI, dgx()), 0);
    assert_non_null(strstr(out, "gpu 3 pci_bus_id 0000:5d:00.0 node 0"));
    assert_non_null(strstr(out, "exec echo hi"));
    free(out);
    assert_int_equal(nf_run(&out, "LOCAL_RANK=1 SLURM_LOCALID=0 %s exec --dry-run --sysfs-root "
                            "%s -- true 2>/dev/null", NF_CLI, dgx()), 0);
    assert_non_null(strstr(out, "gpu 1 "));
    free(out);
    assert_int_equal(nf_run(NULL, "LOCAL_RANK=x %s exec --dry-run --sysfs-root %s -- true "
                            "2>/dev/null", NF_CLI, dgx()), 2);
    assert_int_equal(nf_run(NULL, "env -u LOCAL_RANK -u SLURM_LOCALID -u "
                            "OMPI_COMM_WORLD_LOCAL_RANK %s exec --sysfs-root %s -- true "
                            "2>/dev/null", NF_CLI, dgx()), 2);
    /* CUDA_VISIBLE_DEVICES: ordinal 0 is physical GPU 7 */
    assert_int_equal(nf_run(&out, "CUDA_VISIBLE_DEVICES=7 %s exec --dry-run --gpu 0 --sysfs-root "
                            "%s -- true 2>/dev/null", NF_CLI, dgx()), 0);
    assert_non_null(strstr(out, "0000:db:00.0 node 1"));
    free(out);
    assert_int_equal(nf_run(NULL, "%s exec --gpu 8 --sysfs-root %s -- true 2>/dev/null", NF_CLI,
                            dgx()), 2);
    /* unknown node: launched unbound, with a warning, not bound to a guess */
    assert_int_equal(nf_run(&out, "%s exec --dry-run --gpu 0 --sysfs-root %s -- true 2>&1",
                            NF_CLI, nf_fixture("sysfs/vm-1node-minus1")), 0);
    assert_non_null(strstr(out, "launching unbound"));
    assert_non_null(strstr(out, "cpus unchanged memory unchanged"));
    free(out);
    assert_int_equal(nf_run(NULL, "%s exec --help >/dev/null", NF_CLI), 0);
    assert_int_equal(nf_run(NULL, "%s exec --gpu 0 2>/dev/null", NF_CLI), 2);
    assert_int_equal(nf_run(NULL, "%s exec --gpu 0 --sysfs-root %s -- /nonexistent/cmd "
                            "2>/dev/null", NF_CLI, dgx()), 1);
}

/* --gpus takes one ordinal; --gpu, its deprecated spelling, still works. */
static void test_gpus_and_alias(void **state)
{
    (void)state;
    char *now = NULL, *old = NULL;
    assert_int_equal(nf_run(&now, "%s exec --dry-run --gpus 5 --sysfs-root %s -- true 2>&1",
                            NF_CLI, dgx()), 0);
    assert_int_equal(nf_run(&old, "%s exec --dry-run --gpu 5 --sysfs-root %s -- true 2>&1",
                            NF_CLI, dgx()), 0);
    assert_non_null(strstr(old, "--gpu is deprecated; use --gpus"));
    assert_null(strstr(now, "deprecated"));
    assert_non_null(strstr(old, strstr(now, "gpu 5 pci_bus_id")));
    free(now);
    free(old);
    assert_int_equal(nf_run(&now, "%s exec --dry-run --gpus 0,1 --sysfs-root %s -- true 2>&1",
                            NF_CLI, dgx()), 2);
    assert_non_null(strstr(now, "exec binds one GPU"));
    free(now);
    assert_int_equal(nf_run(&now, "%s exec --help", NF_CLI), 0);
    assert_non_null(strstr(now, "--gpu N            the same as --gpus N."));
    free(now);
}

static void test_real_binding(void **state)
{
    (void)state;
    char *out = NULL;
    /* the child inherits the CPUs (node 0's intersected with ours) and the
     * memory policy; taskset narrows what it may use and exec keeps it */
    assert_int_equal(nf_run(&out, "taskset -c 0 %s exec --gpu 0 --sysfs-root %s -- sh -c "
                            "'grep Cpus_allowed_list /proc/self/status; head -1 "
                            "/proc/self/numa_maps' 2>/dev/null", NF_CLI, dgx()), 0);
    assert_non_null(strstr(out, "Cpus_allowed_list:\t0\n"));
    assert_non_null(strstr(out, "bind:0"));
    free(out);
    assert_int_equal(nf_run(&out, "%s exec --preferred --gpu 0 --sysfs-root %s -- head -1 "
                            "/proc/self/numa_maps 2>/dev/null", NF_CLI, dgx()), 0);
    assert_non_null(strstr(out, "prefer:0"));
    free(out);
    /* the exit status is the command's own */
    assert_int_equal(nf_run(NULL, "%s exec --gpu 0 --sysfs-root %s -- sh -c 'exit 7' "
                            "2>/dev/null", NF_CLI, dgx()), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_gpus_and_alias),
        cmocka_unit_test(test_real_binding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
