// SPDX-License-Identifier: Apache-2.0
/*
 * Node-local buffers and thread binding, on this machine's real kernel, with
 * the failures it cannot produce (EPERM from mbind and set_mempolicy under a
 * container's seccomp profile, ENOSYS from move_pages, ENOMEM from hugetlb)
 * injected through the linker's --wrap.
 */
#include "helpers.h"

#include <errno.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "pin/pin.h"

static int fail_mbind, fail_mempolicy, fail_move_pages;
/* > 0: that many placement queries answer "node 1" for every page, as if
 * first touch had put the buffer on another node */
static int fake_elsewhere;
static int mbind_calls, mbind_last_flags;
static unsigned long last_maxnode;
/* a copy of the last nodemask: the caller's lives on its stack, gone by
 * the time the test reads it */
static unsigned long last_mask[4];

long __real_mbind(void *addr, unsigned long len, int mode, const unsigned long *nodemask,
                  unsigned long maxnode, unsigned flags);
long __wrap_mbind(void *addr, unsigned long len, int mode, const unsigned long *nodemask,
                  unsigned long maxnode, unsigned flags)
{
    last_maxnode = maxnode;
    memset(last_mask, 0, sizeof(last_mask));
    const unsigned bpw = 8 * sizeof(unsigned long);
    for (unsigned long w = 0; nodemask && w < NF_ARRAY_SIZE(last_mask) && w * bpw < maxnode; w++)
        last_mask[w] = nodemask[w];
    mbind_calls++;
    mbind_last_flags = (int)flags;
    if (fail_mbind) {
        errno = fail_mbind;
        return -1;
    }
    return __real_mbind(addr, len, mode, nodemask, maxnode, flags);
}

long __real_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode);
long __wrap_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode)
{
    if (fail_mempolicy) {
        errno = fail_mempolicy;
        return -1;
    }
    return __real_set_mempolicy(mode, nodemask, maxnode);
}

long __real_move_pages(int pid, unsigned long count, void **pages, const int *nodes, int *status,
                       int flags);
long __wrap_move_pages(int pid, unsigned long count, void **pages, const int *nodes, int *status,
                       int flags)
{
    if (fail_move_pages) {
        errno = fail_move_pages;
        return -1;
    }
    if (fake_elsewhere > 0 && !nodes) {
        fake_elsewhere--;
        for (unsigned long i = 0; i < count; i++)
            status[i] = 1;
        return 0;
    }
    return __real_move_pages(pid, count, pages, nodes, status, flags);
}

static int reset(void **state)
{
    (void)state;
    fail_mbind = fail_mempolicy = fail_move_pages = fake_elsewhere = 0;
    mbind_calls = mbind_last_flags = 0;
    return 0;
}

static void test_alloc_node0(void **state)
{
    (void)state;
    void *p;
    size_t mapped;
    struct nf_placement pl;
    assert_int_equal(nf__node_alloc(NULL, 0, 5u << 20, &p, &mapped, &pl), 0);
    assert_int_equal(mapped, 6u << 20); /* rounded to 2 MiB */
    assert_true(pl.bound);
    assert_true(pl.verified);
    assert_int_equal(pl.pages_on_node, pl.pages);
    assert_int_equal(pl.pages, mapped / 4096);
    assert_int_equal(pl.node, 0);
    assert_true(pl.page_size == 4096 || pl.page_size == (2u << 20));
    memset(p, 0xab, 5u << 20); /* usable */
    /* mbind was told about node 0 with room for the kernel's decrement */
    assert_true(last_maxnode >= 2);
    assert_int_equal(last_mask[0] & 1, 1);
    nf__node_free(p, mapped);
}

static void test_maxnode_pitfall(void **state)
{
    (void)state;
    /* maxnode must be at least node + 2; check at word boundaries. Nodes
     * 63 and 64 do not exist here, so mbind fails, which is reported. */
    static const int nodes[] = {0, 1, 62, 63, 64, 127};
    for (size_t i = 0; i < NF_ARRAY_SIZE(nodes); i++) {
        void *p;
        size_t mapped;
        struct nf_placement pl;
        assert_int_equal(nf__node_alloc(NULL, nodes[i], 4096, &p, &mapped, &pl), 0);
        if (last_maxnode < (unsigned long)nodes[i] + 2)
            fail_msg("node %d: maxnode %lu", nodes[i], last_maxnode);
        const unsigned bpw = 8 * sizeof(unsigned long);
        assert_true((last_mask[nodes[i] / bpw] >> (nodes[i] % bpw)) & 1);
        if (nodes[i] > 0) {
            assert_false(pl.bound); /* no such node on this machine */
            assert_non_null(strstr(pl.note, "mbind"));
        }
        nf__node_free(p, mapped);
    }
}

static void test_mbind_eperm(void **state)
{
    (void)state;
    fail_mbind = EPERM; /* Docker's default seccomp without CAP_SYS_NICE */
    void *p;
    size_t mapped;
    struct nf_placement pl;
    assert_int_equal(nf__node_alloc(NULL, 0, 1u << 20, &p, &mapped, &pl), 0);
    assert_false(pl.bound);
    assert_non_null(strstr(pl.note, "mbind(MPOL_BIND, node 0): Operation not permitted"));
    assert_true(pl.verified); /* first touch still placed it, and we checked */
    nf__node_free(p, mapped);
}

static void test_move_pages_refused(void **state)
{
    (void)state;
    fail_move_pages = ENOSYS;
    void *p;
    size_t mapped;
    struct nf_placement pl;
    assert_int_equal(nf__node_alloc(NULL, 0, 1u << 20, &p, &mapped, &pl), 0);
    assert_false(pl.verified);
    assert_non_null(strstr(pl.note, "placement not verified"));
    nf__node_free(p, mapped);
}

/* First touch put the pages elsewhere (the first placement query says node
 * 1): they are moved with mbind(MPOL_MF_MOVE) and checked again, and the
 * note says what happened instead of "not on node". */
static void test_strays_moved(void **state)
{
    (void)state;
    fake_elsewhere = 1;
    void *p;
    size_t mapped;
    struct nf_placement pl;
    assert_int_equal(nf__node_alloc(NULL, 0, 4u << 20, &p, &mapped, &pl), 0);
    assert_int_equal(mbind_calls, 2); /* the bind, then the move */
    assert_int_equal(mbind_last_flags, MPOL_MF_MOVE | MPOL_MF_STRICT);
    assert_true(pl.verified);
    assert_int_equal(pl.strays, pl.pages);
    assert_int_equal(pl.pages_on_node, pl.pages);
    assert_non_null(strstr(pl.note, "1024 of 1024 sampled pages were first placed off node 0; "
                                    "moved there with mbind(MPOL_MF_MOVE)"));
    assert_null(strstr(pl.note, "not on node"));
    nf__node_free(p, mapped);

    /* placed right the first time: no move, no note */
    assert_int_equal(nf__node_alloc(NULL, 0, 4u << 20, &p, &mapped, &pl), 0);
    assert_int_equal(mbind_calls, 3);
    assert_int_equal(pl.strays, 0);
    assert_string_equal(pl.note, "");
    nf__node_free(p, mapped);
}

/* The move refused (a container without CAP_SYS_NICE refuses mbind): the
 * note keeps both what was found and why it stayed. */
static void test_strays_move_refused(void **state)
{
    (void)state;
    fake_elsewhere = 2; /* the check after the refused move sees them elsewhere too */
    void *p;
    size_t mapped;
    struct nf_placement pl;
    assert_int_equal(nf__node_map(NULL, 0, 2u << 20, &p, &mapped, &pl), 0);
    nf__node_touch(p, mapped);
    fail_mbind = EPERM;
    nf__node_settle(p, mapped, 0, &pl);
    assert_true(pl.verified);
    assert_int_equal(pl.strays, 512);
    assert_int_equal(pl.pages_on_node, 0);
    assert_non_null(strstr(pl.note, "512 of 512 sampled pages are not on node 0; 512 of 512 "
                                    "sampled pages were first placed off node 0; "
                                    "mbind(MPOL_MF_MOVE): Operation not permitted"));
    nf__node_free(p, mapped);
}

static void test_hugetlb_without_pool(void **state)
{
    (void)state;
    /* A fixture says node 0 has free huge pages; this kernel's pool is what
     * it is. Either MAP_HUGETLB works (a reserved pool) or it fails and we
     * fall back to THP with the reason noted. Never a failed allocation. */
    char *d = nf_tmpdir();
    char path[4096];
    snprintf(path, sizeof(path),
             "%s/devices/system/node/node0/hugepages/hugepages-2048kB/free_hugepages", d);
    assert_int_equal(nf_write_file(path, "16\n", 3), 0);
    void *p;
    size_t mapped;
    struct nf_placement pl;
    assert_int_equal(nf__node_alloc(d, 0, 3u << 20, &p, &mapped, &pl), 0);
    assert_int_equal(mapped, 4u << 20);
    if (!pl.hugetlb)
        assert_non_null(strstr(pl.note, "MAP_HUGETLB with 16 free 2 MiB pages on node 0"));
    else
        assert_int_equal(pl.page_size, 2u << 20);
    nf__node_free(p, mapped);
    /* garbage in free_hugepages: hugetlb is not tried */
    assert_int_equal(nf_write_file(path, "lots\n", 5), 0);
    assert_int_equal(nf__node_alloc(d, 0, 1u << 20, &p, &mapped, &pl), 0);
    assert_false(pl.hugetlb);
    nf__node_free(p, mapped);
    nf_rmtree(d);
    free(d);
}

static void test_bad_args(void **state)
{
    (void)state;
    void *p;
    size_t mapped;
    struct nf_placement pl;
    assert_int_equal(nf__node_alloc(NULL, 0, 0, &p, &mapped, &pl), -EINVAL);
    assert_int_equal(nf__node_alloc(NULL, -1, 4096, &p, &mapped, &pl), -EINVAL);
    assert_int_equal(nf__node_alloc(NULL, 0, SIZE_MAX - 10, &p, &mapped, &pl), -EOVERFLOW);
}

static void test_bind_thread(void **state)
{
    (void)state;
    struct nf_cpuset before = {0}, cpus = {0}, after = {0};
    assert_int_equal(nf__cpuset_from_affinity(&before, 0), 0);
    /* bind to the first allowed CPU, then check the kernel agrees */
    long first = nf__cpuset_next(&before, 0);
    assert_true(first >= 0);
    assert_int_equal(nf__cpuset_set(&cpus, (unsigned)first), 0);
    struct nf_bind_result res;
    assert_int_equal(nf__bind_thread(&cpus, 0, &res), 0);
    assert_true(res.affinity);
    assert_true(res.mempolicy);
    assert_string_equal(res.note, "");
    assert_int_equal(nf__cpuset_from_affinity(&after, 0), 0);
    assert_true(nf__cpuset_equal(&after, &cpus));
    int mode = -1;
    assert_int_equal(get_mempolicy(&mode, NULL, 0, NULL, 0), 0);
    assert_int_equal(mode, MPOL_PREFERRED);

    fail_mempolicy = EPERM;
    assert_int_equal(nf__bind_thread(&cpus, 0, &res), 0);
    assert_false(res.mempolicy);
    assert_non_null(strstr(res.note, "Operation not permitted"));

    struct nf_cpuset empty = {0};
    assert_int_equal(nf__bind_thread(&empty, 0, &res), -EINVAL); /* never an empty mask */
    assert_int_equal(nf__cpuset_apply_affinity(&before, 0), 0);
    set_mempolicy(MPOL_DEFAULT, NULL, 0);
    nf__cpuset_free(&before);
    nf__cpuset_free(&cpus);
    nf__cpuset_free(&after);
    nf__cpuset_free(&empty);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_alloc_node0, reset),
        cmocka_unit_test_setup(test_maxnode_pitfall, reset),
        cmocka_unit_test_setup(test_mbind_eperm, reset),
        cmocka_unit_test_setup(test_move_pages_refused, reset),
        cmocka_unit_test_setup(test_strays_moved, reset),
        cmocka_unit_test_setup(test_strays_move_refused, reset),
        cmocka_unit_test_setup(test_hugetlb_without_pool, reset),
        cmocka_unit_test_setup(test_bad_args, reset),
        cmocka_unit_test_setup(test_bind_thread, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
