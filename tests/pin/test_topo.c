// SPDX-License-Identifier: Apache-2.0
/* Topology from fixture sysfs trees of real machine shapes, CUDA ordinal
 * remapping without CUDA, allowed-CPU intersection, and malformed trees. */
#include "helpers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pin/pin.h"

/* Open a fixture tree with a fixed allowed set and no CUDA runtime. */
static numafeed_topo *open_fixture(const char *tree, const char *cvd, const char *allowed)
{
    struct numafeed_topo_options o;
    numafeed_topo_options_init(&o);
    o.sysfs_root = nf_fixture(tree);
    o.cuda_visible_devices = cvd;
    o.allowed_cpus = allowed;
    o.use_cuda = 0;
    numafeed_topo *t = NULL;
    int rc = numafeed_topo_open(&o, &t);
    if (rc)
        fail_msg("%s: %s: %s", tree, numafeed_strerror(rc), numafeed_last_error());
    return t;
}

static int open_rc(const char *root, const char *cvd)
{
    struct numafeed_topo_options o;
    numafeed_topo_options_init(&o);
    o.sysfs_root = root;
    o.cuda_visible_devices = cvd;
    o.allowed_cpus = "0-255";
    o.use_cuda = 0;
    numafeed_topo *t = NULL;
    int rc = numafeed_topo_open(&o, &t);
    numafeed_topo_close(t);
    if (rc == 0)
        assert_non_null(t);
    return rc;
}

static void assert_gpu(numafeed_topo *t, int i, const char *bus, int node, int raw, int known)
{
    struct numafeed_gpu_info g;
    assert_int_equal(numafeed_topo_gpu(t, i, &g), 0);
    assert_int_equal(g.index, i);
    assert_string_equal(g.pci_bus_id, bus);
    assert_int_equal(g.numa_node, node);
    assert_int_equal(g.numa_node_raw, raw);
    assert_int_equal(g.node_known, known);
}

static const char *pool(numafeed_topo *t, int gpu, int *fb)
{
    static char buf[512];
    int n = numafeed_topo_pool_cpus(t, gpu, buf, sizeof(buf), fb);
    assert_true(n >= 0 && (size_t)n < sizeof(buf));
    return buf;
}

static void test_dgx(void **state)
{
    (void)state;
    numafeed_topo *t = open_fixture("sysfs/dgx-h100-2s8g", NULL, "0-223");
    assert_int_equal(numafeed_topo_node_count(t), 2);
    /* 8 GPUs; NVSwitch bridges, NICs and the host bridge are not GPUs */
    assert_int_equal(numafeed_topo_gpu_count(t), 8);
    assert_gpu(t, 0, "0000:18:00.0", 0, 0, 1);
    assert_gpu(t, 3, "0000:5d:00.0", 0, 0, 1);
    assert_gpu(t, 4, "0000:9a:00.0", 1, 1, 1);
    assert_gpu(t, 7, "0000:db:00.0", 1, 1, 1);
    int fb = -1;
    assert_string_equal(pool(t, 0, &fb), "0-55,112-167"); /* SMT siblings kept */
    assert_int_equal(fb, 0);
    assert_string_equal(pool(t, 5, &fb), "56-111,168-223");
    assert_string_equal(numafeed_topo_warnings(t), "");
    numafeed_topo_close(t);
}

/* Captured from the lent H100 machine (scripts/capture-sysfs, 2026-11-26),
 * where nvidia-smi reports bus id 00000000:00:06.0 and sysfs numa_node -1. */
static void test_captured_h100_vm(void **state)
{
    (void)state;
    numafeed_topo *t = open_fixture("sysfs/h100-vm-captured", NULL, "0-15");
    assert_int_equal(numafeed_topo_node_count(t), 1);
    assert_int_equal(numafeed_topo_gpu_count(t), 1);
    assert_gpu(t, 0, "0000:00:06.0", 0, -1, 0);
    int fb;
    assert_string_equal(pool(t, 0, &fb), "0-15");
    numafeed_topo_close(t);
}

static void test_json_shape(void **state)
{
    (void)state;
    numafeed_topo *t = open_fixture("sysfs/vm-1node-minus1", NULL, "0-1");
    char *s = NULL;
    assert_int_equal(numafeed_topo_json(t, &s), 0);
    assert_string_equal(s, "{\"nodes\":[{\"id\":0,\"cpus\":[0,1,2,3,4,5,6,7]}],"
                           "\"gpus\":[{\"index\":0,\"pci_bus_id\":\"0000:00:05.0\","
                           "\"numa_node\":0,\"numa_node_raw\":-1,\"cpus\":[0,1,2,3,4,5,6,7]}],"
                           "\"allowed_cpus\":[0,1]}");
    free(s);
    numafeed_topo_close(t);
}

static void test_vm_minus1(void **state)
{
    (void)state;
    numafeed_topo *t = open_fixture("sysfs/vm-1node-minus1", NULL, "0-7");
    assert_int_equal(numafeed_topo_gpu_count(t), 1);
    /* -1 resolves to node 0, is reported unknown, and never appears as a node */
    assert_gpu(t, 0, "0000:00:05.0", 0, -1, 0);
    assert_non_null(strstr(numafeed_topo_warnings(t), "numa_node is -1"));
    numafeed_topo_close(t);
}

static void test_epyc_order_and_nodes(void **state)
{
    (void)state;
    numafeed_topo *t = open_fixture("sysfs/epyc-nps4-2s", NULL, "0-255");
    assert_int_equal(numafeed_topo_node_count(t), 8);
    assert_int_equal(numafeed_topo_node_id(t, 7), 7);
    assert_int_equal(numafeed_topo_node_id(t, 8), -EINVAL);
    /* PCI bus id order across domains; the audio function is not a GPU */
    assert_int_equal(numafeed_topo_gpu_count(t), 4);
    assert_gpu(t, 0, "0000:41:00.0", 1, 1, 1);
    assert_gpu(t, 1, "0000:61:00.0", 3, 3, 1);
    assert_gpu(t, 2, "0000:c1:00.0", 6, 6, 1);
    assert_gpu(t, 3, "0001:01:00.0", 4, 4, 1);
    int fb;
    assert_string_equal(pool(t, 3, &fb), "64-79,192-207");
    numafeed_topo_close(t);
}

static void test_grace_hopper(void **state)
{
    (void)state;
    numafeed_topo *t = open_fixture("sysfs/grace-hopper", NULL, "0-71");
    assert_int_equal(numafeed_topo_node_count(t), 9);
    char buf[64];
    assert_int_equal(numafeed_topo_node_cpus(t, 1, buf, sizeof(buf)), 0); /* HBM node */
    assert_string_equal(buf, "");
    assert_int_equal(numafeed_topo_gpu_count(t), 1); /* the root port is not a GPU */
    assert_gpu(t, 0, "0009:01:00.0", 0, 0, 1);
    int fb;
    assert_string_equal(pool(t, 0, &fb), "0-71");
    assert_int_equal(fb, 0);
    numafeed_topo_close(t);
}

static void test_no_gpu(void **state)
{
    (void)state;
    numafeed_topo *t = open_fixture("sysfs/no-gpu", NULL, "0-3");
    assert_int_equal(numafeed_topo_gpu_count(t), 0);
    struct numafeed_gpu_info g;
    assert_int_equal(numafeed_topo_gpu(t, 0, &g), -EINVAL);
    numafeed_topo_close(t);
}

static void test_no_numa_kernel(void **state)
{
    (void)state;
    numafeed_topo *t = open_fixture("sysfs/no-numa-kernel", NULL, "0-3");
    assert_int_equal(numafeed_topo_node_count(t), 1);
    char buf[64];
    assert_int_equal(numafeed_topo_node_cpus(t, 0, buf, sizeof(buf)), 3);
    assert_string_equal(buf, "0-3");
    assert_gpu(t, 0, "0000:01:00.0", 0, -1, 0); /* no numa_node file: unknown */
    numafeed_topo_close(t);
}

static void test_cuda_visible_devices(void **state)
{
    (void)state;
    numafeed_topo *t = open_fixture("sysfs/dgx-h100-2s8g", "6,1", "0-223");
    assert_int_equal(numafeed_topo_gpu_count(t), 2);
    assert_gpu(t, 0, "0000:ba:00.0", 1, 1, 1); /* ordinal 0 is physical 6 */
    assert_gpu(t, 1, "0000:2a:00.0", 0, 0, 1);
    numafeed_topo_close(t);

    t = open_fixture("sysfs/dgx-h100-2s8g", " 7 , 0 ", "0-223");
    assert_gpu(t, 0, "0000:db:00.0", 1, 1, 1);
    assert_gpu(t, 1, "0000:18:00.0", 0, 0, 1);
    numafeed_topo_close(t);

    t = open_fixture("sysfs/dgx-h100-2s8g", "", "0-223"); /* hides every GPU */
    assert_int_equal(numafeed_topo_gpu_count(t), 0);
    numafeed_topo_close(t);

    /* like the driver, the list ends at the first index that does not exist */
    t = open_fixture("sysfs/dgx-h100-2s8g", "2,9,3", "0-223");
    assert_int_equal(numafeed_topo_gpu_count(t), 1);
    assert_gpu(t, 0, "0000:3a:00.0", 0, 0, 1);
    assert_non_null(strstr(numafeed_topo_warnings(t), "index 9 does not exist"));
    numafeed_topo_close(t);

    t = open_fixture("sysfs/dgx-h100-2s8g", "-1,2", "0-223");
    assert_int_equal(numafeed_topo_gpu_count(t), 0);
    numafeed_topo_close(t);

    const char *root = nf_fixture("sysfs/dgx-h100-2s8g");
    assert_int_equal(open_rc(root, "GPU-8f2a3b4c-0000-1111-2222-333344445555"), -EINVAL);
    assert_non_null(strstr(numafeed_last_error(), "UUID"));
    assert_int_equal(open_rc(root, "MIG-1234"), -EINVAL);
    assert_int_equal(open_rc(root, "1,1"), -EINVAL);
    assert_non_null(strstr(numafeed_last_error(), "listed twice"));
    assert_int_equal(open_rc(root, "1a"), -EINVAL);
    assert_int_equal(open_rc(root, "1,,2"), -EINVAL);
}

static void test_allowed_intersection(void **state)
{
    (void)state;
    int fb;
    /* a Slurm-style cpuset of half of socket 0 and a few of socket 1 */
    numafeed_topo *t = open_fixture("sysfs/dgx-h100-2s8g", NULL, "0-27,112-139,60-61");
    assert_string_equal(pool(t, 0, &fb), "0-27,112-139");
    assert_int_equal(fb, 0);
    assert_string_equal(pool(t, 4, &fb), "60-61");
    assert_int_equal(fb, 0);
    numafeed_topo_close(t);

    /* empty intersection: the allowed set, flagged; never an empty mask */
    t = open_fixture("sysfs/dgx-h100-2s8g", NULL, "0-3");
    assert_string_equal(pool(t, 4, &fb), "0-3");
    assert_int_equal(fb, 1);
    char buf[64];
    assert_int_equal(numafeed_topo_allowed_cpus(t, buf, sizeof(buf)), 3);
    assert_string_equal(buf, "0-3");
    numafeed_topo_close(t);

    /* the process's real affinity is the default */
    struct numafeed_topo_options o;
    numafeed_topo_options_init(&o);
    o.sysfs_root = nf_fixture("sysfs/no-gpu");
    assert_int_equal(numafeed_topo_open(&o, &t), 0);
    struct nf_cpuset mine = {0};
    assert_int_equal(nf__cpuset_from_affinity(&mine, 0), 0);
    assert_true(nf__cpuset_equal(&mine, &t->allowed));
    nf__cpuset_free(&mine);
    numafeed_topo_close(t);

    /* garbage or empty allowed lists are refused */
    o.allowed_cpus = "0-3,";
    assert_int_equal(numafeed_topo_open(&o, &t), -EINVAL);
    o.allowed_cpus = "";
    assert_int_equal(numafeed_topo_open(&o, &t), -EINVAL);
}

static void test_gpu_on_cpuless_node(void **state)
{
    (void)state;
    char *d = nf_tmpdir();
    char p[4096];
    snprintf(p, sizeof(p), "%s/devices/system/node/online", d);
    assert_int_equal(nf_write_file(p, "0-1\n", 4), 0);
    snprintf(p, sizeof(p), "%s/devices/system/node/node0/cpulist", d);
    assert_int_equal(nf_write_file(p, "0-3\n", 4), 0);
    snprintf(p, sizeof(p), "%s/devices/system/node/node1/cpulist", d);
    assert_int_equal(nf_write_file(p, "\n", 1), 0);
    snprintf(p, sizeof(p), "%s/bus/pci/devices/0000:01:00.0/vendor", d);
    assert_int_equal(nf_write_file(p, "0x10de\n", 7), 0);
    snprintf(p, sizeof(p), "%s/bus/pci/devices/0000:01:00.0/class", d);
    assert_int_equal(nf_write_file(p, "0x030200\n", 9), 0);
    snprintf(p, sizeof(p), "%s/bus/pci/devices/0000:01:00.0/numa_node", d);
    assert_int_equal(nf_write_file(p, "1\n", 2), 0);

    struct numafeed_topo_options o;
    numafeed_topo_options_init(&o);
    o.sysfs_root = d;
    o.allowed_cpus = "0-3";
    o.use_cuda = 0;
    numafeed_topo *t;
    assert_int_equal(numafeed_topo_open(&o, &t), 0);
    assert_gpu(t, 0, "0000:01:00.0", 1, 1, 1);
    int fb;
    assert_string_equal(pool(t, 0, &fb), "0-3"); /* never bind to a CPU-less node */
    assert_int_equal(fb, 1);
    assert_non_null(strstr(numafeed_topo_warnings(t), "has no CPUs"));
    numafeed_topo_close(t);

    /* numa_node naming an offline node: unknown and flagged, not trusted */
    snprintf(p, sizeof(p), "%s/bus/pci/devices/0000:01:00.0/numa_node", d);
    assert_int_equal(nf_write_file(p, "5\n", 2), 0);
    assert_int_equal(numafeed_topo_open(&o, &t), 0);
    assert_gpu(t, 0, "0000:01:00.0", 0, 5, 0);
    assert_non_null(strstr(numafeed_topo_warnings(t), "not online"));
    numafeed_topo_close(t);
    nf_rmtree(d);
    free(d);
}

static void test_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *tree, *file;
    } cases[] = {
        {"cpulist-garbage", "node0/cpulist"},
        {"cpulist-trailing-comma", "node0/cpulist"},
        {"cpulist-reversed", "node0/cpulist"},
        {"cpulist-is-directory", "node0/cpulist"},
        {"online-garbage", "node/online"},
        {"node-dir-missing", "node1/cpulist"},
        {"vendor-garbage", "0000:18:00.0/vendor"},
        {"class-missing", "0000:18:00.0/class"},
        {"numa-node-garbage", "0000:18:00.0/numa_node"},
        {"numa-node-empty", "0000:18:00.0/numa_node"},
        {"numa-node-huge", "0000:18:00.0/numa_node"},
        {"local-cpulist-garbage", "0000:18:00.0/local_cpulist"},
    };
    for (size_t i = 0; i < NF_ARRAY_SIZE(cases); i++) {
        char rel[256];
        snprintf(rel, sizeof(rel), "sysfs/malformed/%s", cases[i].tree);
        int rc = open_rc(nf_fixture(rel), NULL);
        if (rc != NUMAFEED_ESYSFS)
            fail_msg("%s: expected NUMAFEED_ESYSFS, got %s: %s", cases[i].tree,
                     numafeed_err_name(rc), numafeed_last_error());
        if (!strstr(numafeed_last_error(), cases[i].file) ||
            !strstr(numafeed_last_error(), cases[i].tree))
            fail_msg("%s: message does not name the file: %s", cases[i].tree,
                     numafeed_last_error());
    }
    /* not a sysfs tree at all */
    assert_int_equal(open_rc("/nonexistent-numafeed-root", NULL), -ENOENT);

    /* node/online that fails after its first element: the bits parsed so
     * far were leaked (found by fuzz_topo; LeakSanitizer in the asan preset) */
    char *d = nf_tmpdir();
    char p[4096];
    snprintf(p, sizeof(p), "%s/devices/system/node/online", d);
    assert_int_equal(nf_write_file(p, "0-1,x\n", 6), 0);
    assert_int_equal(open_rc(d, NULL), NUMAFEED_ESYSFS);
    nf_rmtree(d);
    free(d);
}

static void test_options(void **state)
{
    (void)state;
    numafeed_topo *t = (numafeed_topo *)&t;
    assert_int_equal(numafeed_topo_open(NULL, NULL), -EINVAL);
    struct numafeed_topo_options o;
    numafeed_topo_options_init(&o);
    assert_int_equal(o.size, sizeof(o));
    assert_int_equal(o.use_cuda, -1);
    o.size = 3; /* not a size this library knows */
    assert_int_equal(numafeed_topo_open(&o, &t), -EINVAL);
    assert_null(t);
    /* the environment variable is the root when no option says otherwise */
    setenv("NUMAFEED_SYSFS_ROOT", nf_fixture("sysfs/epyc-nps4-2s"), 1);
    numafeed_topo_options_init(&o);
    o.use_cuda = 0;
    o.cuda_visible_devices = NULL;
    unsetenv("CUDA_VISIBLE_DEVICES");
    assert_int_equal(numafeed_topo_open(&o, &t), 0);
    assert_int_equal(numafeed_topo_node_count(t), 8);
    numafeed_topo_close(t);
    /* ... and the environment's CUDA_VISIBLE_DEVICES applies */
    setenv("CUDA_VISIBLE_DEVICES", "3", 1);
    assert_int_equal(numafeed_topo_open(&o, &t), 0);
    assert_gpu(t, 0, "0001:01:00.0", 4, 4, 1);
    numafeed_topo_close(t);
    unsetenv("CUDA_VISIBLE_DEVICES");
    unsetenv("NUMAFEED_SYSFS_ROOT");
    numafeed_topo_close(NULL);
}

static void test_busid(void **state)
{
    (void)state;
    char out[NF_BUSID_LEN];
    uint64_t a, b;
    assert_int_equal(nf__busid_normalize("00000000:1A:00.0", out, &a), 0); /* nvidia-smi form */
    assert_string_equal(out, "0000:1a:00.0");
    assert_int_equal(nf__busid_normalize("0000:1a:00.0", out, &b), 0);
    assert_true(a == b);
    assert_int_equal(nf__busid_normalize("10000:00:01.0", out, &a), 0); /* VMD domain */
    assert_string_equal(out, "10000:00:01.0");
    assert_int_equal(nf__busid_normalize("0000:1a:00", out, NULL), -EINVAL);
    assert_int_equal(nf__busid_normalize("0000:1a:20.0", out, NULL), -EINVAL); /* dev > 31 */
    assert_int_equal(nf__busid_normalize("0000:1a:00.8", out, NULL), -EINVAL);
    assert_int_equal(nf__busid_normalize("0000:1a:00.0x", out, NULL), -EINVAL);
    assert_int_equal(nf__busid_normalize("pci0000:00", out, NULL), -EINVAL);
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(numafeed_err_name(NUMAFEED_ESYSFS), "NUMAFEED_ESYSFS");
    assert_string_equal(numafeed_strerror(NUMAFEED_ESYSFS), "malformed system file");
    assert_string_equal(numafeed_err_name(-ENOENT), "ENOENT");
    assert_string_equal(numafeed_strerror(-ENOENT), "No such file or directory");
    assert_string_equal(numafeed_err_name(12345), "UNKNOWN");
    assert_true(NUMAFEED_ECORRUPT < -4096); /* never collides with errno */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dgx),
        cmocka_unit_test(test_captured_h100_vm),
        cmocka_unit_test(test_json_shape),
        cmocka_unit_test(test_vm_minus1),
        cmocka_unit_test(test_epyc_order_and_nodes),
        cmocka_unit_test(test_grace_hopper),
        cmocka_unit_test(test_no_gpu),
        cmocka_unit_test(test_no_numa_kernel),
        cmocka_unit_test(test_cuda_visible_devices),
        cmocka_unit_test(test_allowed_intersection),
        cmocka_unit_test(test_gpu_on_cpuless_node),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_busid),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
