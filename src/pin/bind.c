// SPDX-License-Identifier: Apache-2.0
/*
 * Threads and memory on one NUMA node.
 *
 * Order matters and each step has a reason:
 *   1. mmap the buffer (no pages yet);
 *   2. MAP_HUGETLB only when the node's reserved pool has the pages (it
 *      fails with ENOMEM otherwise, the common case), else ask for
 *      transparent huge pages with madvise(MADV_HUGEPAGE): fewer TLB misses
 *      when copying and, later, fewer pages for cudaHostRegister to pin;
 *   3. mbind(MPOL_BIND, node): a policy applies only to pages faulted after
 *      it is set, so it comes before any touch. maxnode must be at least
 *      node + 2 because the kernel decrements it;
 *   4. first touch (a write per page) allocates the pages under the policy;
 *   5. move_pages(nodes = NULL) reads back where each page is. We do not use
 *      get_mempolicy(MPOL_F_NODE|MPOL_F_ADDR) for this: it faults the page
 *      in itself and so proves nothing about an untouched page.
 * cudaHostRegister (the CUDA path) comes after all this: it pins pages where
 * they already are.
 *
 * mbind and set_mempolicy return EPERM under Docker's default seccomp
 * profile without CAP_SYS_NICE. Then the pages come from first touch by a
 * thread pinned to the node, which is local allocation anyway; we say so in
 * the placement report and carry on.
 */
#include <errno.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pin/pin.h"

/* A nodemask with room for node and the maxnode value mbind/set_mempolicy
 * want for it (bits + 1: the kernel uses maxnode - 1 bits). */
struct nodemask {
    unsigned long bits[(NF_CPU_ID_MAX + 1) / (8 * sizeof(unsigned long))];
    unsigned long maxnode;
};

static void nodemask_one(struct nodemask *m, int node)
{
    const unsigned bpw = 8 * sizeof(unsigned long);
    memset(m->bits, 0, sizeof(m->bits));
    m->bits[(unsigned)node / bpw] |= 1UL << ((unsigned)node % bpw);
    m->maxnode = ((unsigned long)node / bpw + 1) * bpw + 1;
}

int nf__bind_thread(const struct nf_cpuset *cpus, int node, struct nf_bind_result *res)
{
    memset(res, 0, sizeof(*res));
    if (node < 0 || node > NF_CPU_ID_MAX)
        return nf__error(-EINVAL, "bind: node %d out of range", node);
    int rc = nf__cpuset_apply_affinity(cpus, 0);
    if (rc)
        return rc;
    res->affinity = true;
    struct nodemask m;
    nodemask_one(&m, node);
    /* PREFERRED, not BIND, for the thread's own allocations: staging and
     * library allocations should land locally, but running out of the
     * node's memory should spill, not OOM-kill the training job. The slots,
     * which carry the bytes to the GPU, are bound strictly with mbind. */
    if (set_mempolicy(MPOL_PREFERRED, m.bits, m.maxnode) == 0) {
        res->mempolicy = true;
    } else {
        int err = errno;
        nf__note(res->note, sizeof(res->note),
             "set_mempolicy(MPOL_PREFERRED, node %d): %s; relying on first touch by a pinned "
             "thread", node, strerror(err));
    }
    return 0;
}

static long free_hugepages(const char *root, int node)
{
    char rel[128];
    long n = 0;
    snprintf(rel, sizeof(rel), "devices/system/node/node%d/hugepages/hugepages-2048kB/free_hugepages",
             node);
    if (nf__sysfs_long(root, rel, &n) != 0 || n < 0)
        return 0; /* no pool, no file, or garbage: do not try hugetlb */
    return n;
}

int nf__node_verify(const void *p, size_t len, int node, struct nf_placement *pl)
{
    const size_t pg = 4096; /* move_pages works on base pages */
    size_t n = (len + pg - 1) / pg;
    /* Sample at most 4096 addresses: enough to see a misplaced huge page
     * or a stripe of 4 KiB pages, bounded cost for big slots. */
    size_t step = n > 4096 ? (n + 4095) / 4096 : 1;
    size_t count = (n + step - 1) / step;
    void **pages = malloc(count * sizeof(*pages));
    int *status = malloc(count * sizeof(*status));
    if (!pages || !status) {
        free(pages);
        free(status);
        return nf__error(-ENOMEM, "move_pages: out of memory");
    }
    for (size_t i = 0; i < count; i++)
        pages[i] = (char *)p + i * step * pg;
    long rc = move_pages(0, count, pages, NULL, status, 0);
    int err = errno;
    pl->verified = false;
    pl->pages = count;
    pl->pages_on_node = 0;
    if (rc == 0) {
        pl->verified = true;
        for (size_t i = 0; i < count; i++) {
            if (status[i] == node)
                pl->pages_on_node++;
            else if (status[i] < 0 && pl->verified) {
                nf__note(pl->note, sizeof(pl->note), "move_pages: page %zu status %s", i * step,
                     strerror(-status[i]));
                pl->verified = false;
            }
        }
        if (pl->verified && pl->pages_on_node != count)
            nf__note(pl->note, sizeof(pl->note), "%zu of %zu sampled pages are not on node %d",
                 count - pl->pages_on_node, count, node);
    } else {
        nf__note(pl->note, sizeof(pl->note), "move_pages: %s; placement not verified", strerror(err));
    }
    free(pages);
    free(status);
    return 0;
}

void nf__node_settle(void *p, size_t len, int node, struct nf_placement *pl)
{
    size_t said = strlen(pl->note);
    nf__node_verify(p, len, node, pl);
    if (!pl->verified || pl->pages_on_node == pl->pages)
        return;
    size_t strays = pl->pages - pl->pages_on_node, count = pl->pages;
    /* Whatever put them there (a policy the kernel refused, a node short of
     * free memory under a preferring policy, or something we have not
     * explained: the QEMU test once found a whole bound ring elsewhere),
     * the pages are still movable: the ring is page-locked only later. */
    struct nodemask m;
    nodemask_one(&m, node);
    int rc = mbind(p, len, MPOL_BIND, m.bits, m.maxnode, MPOL_MF_MOVE | MPOL_MF_STRICT);
    int err = errno;
    pl->note[said] = '\0'; /* what the first check said is replaced by what was done */
    nf__node_verify(p, len, node, pl);
    if (rc == 0)
        pl->bound = true;
    pl->strays = strays;
    if (rc == 0 && pl->verified && pl->pages_on_node == pl->pages)
        nf__note(pl->note, sizeof(pl->note), "%zu of %zu sampled pages were first placed off node "
                  "%d; moved there with mbind(MPOL_MF_MOVE)", strays, count, node);
    else
        nf__note(pl->note, sizeof(pl->note), "%zu of %zu sampled pages were first placed off "
                  "node %d; mbind(MPOL_MF_MOVE): %s", strays, count, node,
                  rc == 0 ? "did not move them all" : strerror(err));
}

int nf__node_map(const char *sysfs_root, int node, size_t len, void **out, size_t *mapped,
                  struct nf_placement *pl)
{
    memset(pl, 0, sizeof(*pl));
    pl->node = node;
    *out = NULL;
    if (len == 0 || node < 0 || node > NF_CPU_ID_MAX)
        return nf__error(-EINVAL, "node buffer: bad length %zu or node %d", len, node);
    size_t size;
    if (nf__add_size(len, NF_HUGE_2M - 1, &size))
        return nf__error(-EOVERFLOW, "node buffer: %zu bytes is too large", len);
    size &= ~(size_t)(NF_HUGE_2M - 1);

    void *p = MAP_FAILED;
    long need = (long)(size / NF_HUGE_2M);
    long avail = free_hugepages(nf__sysfs_root(sysfs_root), node);
    if (avail >= need) {
        p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT), -1, 0);
        if (p != MAP_FAILED) {
            pl->hugetlb = true;
            pl->page_size = NF_HUGE_2M;
        } else {
            nf__note(pl->note, sizeof(pl->note), "MAP_HUGETLB with %ld free 2 MiB pages on node %d: %s",
                 avail, node, strerror(errno));
        }
    } else if (avail > 0) {
        nf__note(pl->note, sizeof(pl->note), "node %d has %ld free 2 MiB huge pages, %ld needed", node,
             avail, need);
    }
    if (p == MAP_FAILED) {
        /* 2 MiB-aligned, so that no transparent huge page of this buffer
         * also holds the end of a neighbouring mapping: the kernel merges
         * adjacent anonymous mappings of the same policy into one, and a
         * huge page across the seam would move with the neighbour's
         * mbind(MPOL_MF_MOVE) (the multi-node VM test saw a whole ring
         * follow a buffer settled to another node). */
        size_t over;
        if (nf__add_size(size, NF_HUGE_2M, &over))
            return nf__error(-EOVERFLOW, "node buffer: %zu bytes is too large", len);
        char *raw = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == MAP_FAILED) {
            int err = errno;
            return nf__error(-err, "mmap(%zu bytes) for node %d: %s", over, node, strerror(err));
        }
        char *aligned = (char *)(((uintptr_t)raw + NF_HUGE_2M - 1) & ~(uintptr_t)(NF_HUGE_2M - 1));
        if (aligned > raw)
            munmap(raw, (size_t)(aligned - raw));
        if (raw + over > aligned + size)
            munmap(aligned + size, (size_t)(raw + over - (aligned + size)));
        p = aligned;
        pl->page_size = 4096;
        if (madvise(p, size, MADV_HUGEPAGE) == 0) {
            pl->thp = true;
            pl->page_size = NF_HUGE_2M;
        } else {
            nf__note(pl->note, sizeof(pl->note), "madvise(MADV_HUGEPAGE): %s", strerror(errno));
        }
    }

    struct nodemask m;
    nodemask_one(&m, node);
    if (mbind(p, size, MPOL_BIND, m.bits, m.maxnode, 0) == 0) {
        pl->bound = true;
    } else {
        nf__note(pl->note, sizeof(pl->note), "mbind(MPOL_BIND, node %d): %s; pages come from first "
             "touch by this thread", node, strerror(errno));
    }

    *out = p;
    *mapped = size;
    return 0;
}

void nf__node_touch(void *p, size_t len)
{
    /* One write per base page faults everything in under the policy the
     * mapping has (a huge page takes the first write of its range). */
    for (size_t off = 0; off < len; off += 4096)
        ((volatile char *)p)[off] = 0;
}

int nf__node_alloc(const char *sysfs_root, int node, size_t len, void **out, size_t *mapped,
                    struct nf_placement *pl)
{
    int rc = nf__node_map(sysfs_root, node, len, out, mapped, pl);
    if (rc)
        return rc;
    nf__node_touch(*out, *mapped);
    nf__node_settle(*out, *mapped, node, pl);
    return 0;
}

void nf__node_free(void *p, size_t mapped)
{
    if (p)
        munmap(p, mapped);
}
