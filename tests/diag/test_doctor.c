// SPDX-License-Identifier: Apache-2.0
/* numafeed_doctor on made-up machines: each finding that should warn does,
 * the rest do not, and the count matches. */
#include "helpers.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>

#include "internal.h"

static char *root;

static void put(const char *rel, const char *text)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    assert_int_equal(nf_write_file(p, text, strlen(text)), 0);
}

/* status of the finding named check, or NULL */
static const char *status(json_t *doc, const char *check)
{
    json_t *f;
    size_t i;
    json_array_foreach(json_object_get(doc, "findings"), i, f) {
        if (!strcmp(json_string_value(json_object_get(f, "check")), check))
            return json_string_value(json_object_get(f, "status"));
    }
    return NULL;
}

static json_t *run(const char *allowed, int *warnings)
{
    struct numafeed_doctor_options o;
    numafeed_doctor_options_init(&o);
    char sys[4096], proc[4096];
    snprintf(sys, sizeof(sys), "%s/sys", root);
    snprintf(proc, sizeof(proc), "%s/proc", root);
    o.sysfs_root = sys;
    o.proc_root = proc;
    o.allowed_cpus = allowed;
    o.use_cuda = 0;
    char *text = NULL;
    int rc = numafeed_doctor(&o, &text, warnings);
    if (rc)
        fail_msg("numafeed_doctor: %s", numafeed_last_error());
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(doc, "warnings")), *warnings);
    free(text);
    return doc;
}

static void test_findings(void **state)
{
    (void)state;
    root = nf_tmpdir();
    put("sys/devices/system/node/online", "0-1\n");
    put("sys/devices/system/node/node0/cpulist", "0-3\n");
    put("sys/devices/system/node/node1/cpulist", "4-7\n");
    put("sys/devices/system/node/node1/hugepages/hugepages-2048kB/free_hugepages", "64\n");
    put("sys/bus/pci/devices/0000:18:00.0/vendor", "0x10de\n");
    put("sys/bus/pci/devices/0000:18:00.0/class", "0x030200\n");
    put("sys/bus/pci/devices/0000:18:00.0/numa_node", "0\n");
    put("sys/bus/pci/devices/0000:3b:00.0/vendor", "0x10de\n");
    put("sys/bus/pci/devices/0000:3b:00.0/class", "0x030200\n");
    put("sys/bus/pci/devices/0000:3b:00.0/numa_node", "-1\n");
    put("sys/kernel/mm/transparent_hugepage/enabled", "always madvise [never]\n");
    put("proc/sys/kernel/numa_balancing", "1\n");
    put("proc/sys/kernel/io_uring_disabled", "0\n");

    int w = 0;
    json_t *doc = run("4-7", &w); /* a cpuset that excludes node 0 */
    assert_string_equal(status(doc, "nodes"), "ok");
    assert_string_equal(status(doc, "gpu 0"), "ok");
    assert_string_equal(status(doc, "gpu 0 cpus"), "warn"); /* node 0 not allowed */
    assert_string_equal(status(doc, "gpu 1"), "warn");      /* numa_node -1 */
    assert_string_equal(status(doc, "gpu 1 cpus"), "warn"); /* resolved to node 0 too */
    assert_string_equal(status(doc, "numa_balancing"), "warn");
    assert_string_equal(status(doc, "thp"), "warn");
    assert_string_equal(status(doc, "hugepages node 1"), "ok");
    assert_non_null(status(doc, "io_uring"));
    assert_non_null(status(doc, "mbind"));
    assert_non_null(status(doc, "memlock"));
    /* GPUs in sysfs but no CUDA runtime answering (use_cuda 0 does not stop
     * the device query): whether that warns depends on this machine */
    assert_non_null(status(doc, "cuda"));
    /* informational: the CPU decodes otherwise */
    assert_string_equal(status(doc, "gpu decode"), "ok");
    json_decref(doc);

    /* fix what a fixture can fix: five warnings fewer */
    int w2 = 0;
    put("sys/kernel/mm/transparent_hugepage/enabled", "always [madvise] never\n");
    put("proc/sys/kernel/numa_balancing", "0\n");
    put("sys/bus/pci/devices/0000:3b:00.0/numa_node", "1\n");
    doc = run("0-7", &w2);
    assert_string_equal(status(doc, "gpu 0 cpus"), "ok");
    assert_string_equal(status(doc, "gpu 1"), "ok");
    assert_string_equal(status(doc, "numa_balancing"), "ok");
    assert_string_equal(status(doc, "thp"), "ok");
    assert_string_equal(status(doc, "gpu 1 cpus"), "ok");
    assert_int_equal(w2, w - 5);
    json_decref(doc);

    /* a malformed tree is an error naming the file, not a finding */
    put("sys/devices/system/node/node1/cpulist", "4-\n");
    struct numafeed_doctor_options o;
    numafeed_doctor_options_init(&o);
    char sys[4096];
    snprintf(sys, sizeof(sys), "%s/sys", root);
    o.sysfs_root = sys;
    char *text = NULL;
    assert_int_equal(numafeed_doctor(&o, &text, NULL), NUMAFEED_ESYSFS);
    assert_non_null(strstr(numafeed_last_error(), "node1/cpulist"));
    o.size = 1;
    assert_int_equal(numafeed_doctor(&o, &text, NULL), -EINVAL);
    nf_rmtree(root);
    free(root);
}

static void test_cli(void **state)
{
    (void)state;
    char *out = NULL;
    assert_int_equal(nf_run(&out, "%s doctor --help", NF_CLI), 0);
    assert_non_null(strstr(out, "Usage: numafeed doctor"));
    free(out);
    assert_int_equal(nf_run(NULL, "%s doctor --bogus 2>/dev/null", NF_CLI), 2);
    /* the VM fixture: its GPU's node is unknown, so at least one warning */
    assert_int_equal(nf_run(&out, "%s doctor --json --sysfs-root %s", NF_CLI,
                            nf_fixture("sysfs/vm-1node-minus1")), 1);
    assert_non_null(strstr(out, "\"check\":\"gpu 0\",\"status\":\"warn\""));
    free(out);
    assert_int_equal(nf_run(NULL, "%s doctor --sysfs-root %s 2>/dev/null", NF_CLI,
                            nf_fixture("sysfs/malformed/vendor-garbage")), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_findings),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
