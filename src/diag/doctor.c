// SPDX-License-Identifier: Apache-2.0
/*
 * numafeed_doctor: one pass over everything that decides whether the loader
 * will get what it asks for on this machine, each finding with what numafeed
 * will do about it. Reads below the sysfs root (topology, huge pages, THP)
 * and the proc root (numa_balancing, io_uring_disabled), and probes the
 * things no file tells: creating an io_uring, calling mbind, the driver.
 */
#include <errno.h>
#include <jansson.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "diag/diag.h"
#include "io/io.h"

struct report {
    json_t *findings;
    int warnings;
};

static void add(struct report *r, const char *check, int ok, const char *value, const char *detail,
                const char *action)
{
    json_t *f = json_pack("{s:s,s:s,s:s,s:s,s:s}", "check", check, "status", ok ? "ok" : "warn",
                          "value", value, "detail", detail, "action", action);
    if (f)
        json_array_append_new(r->findings, f);
    if (!ok)
        r->warnings++;
}

void numafeed_doctor_options_init(struct numafeed_doctor_options *opt)
{
    memset(opt, 0, sizeof(*opt));
    opt->size = sizeof(*opt);
    opt->use_cuda = -1;
}

/* A small text file below a root, trimmed; NULL when missing. */
static char *read_text(const char *root, const char *rel)
{
    char *buf;
    size_t len;
    if (nf__sysfs_read(root, rel, &buf, &len))
        return NULL;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
        buf[--len] = '\0';
    return buf;
}

static void check_topology(struct report *r, const numafeed_topo *t)
{
    char v[64], d[1024] = "", cpus[256];
    snprintf(v, sizeof(v), "%d node%s", t->nnodes, t->nnodes == 1 ? "" : "s");
    for (int i = 0; i < t->nnodes; i++) {
        nf__cpuset_format(&t->nodes[i].cpus, cpus, sizeof(cpus));
        nf__note(d, sizeof(d), "node %d: %s", t->nodes[i].id, cpus[0] ? cpus : "no CPUs");
    }
    add(r, "nodes", 1, v, d, "one pool per GPU on the GPU's node; CPU-less nodes get no threads");

    if (t->ngpus == 0)
        add(r, "gpus", 1, "none visible", "no NVIDIA GPU under bus/pci/devices or in "
            "CUDA_VISIBLE_DEVICES", "the loader runs host pools");
    for (int g = 0; g < t->ngpus; g++) {
        const struct nf_gpu *gpu = &t->gpus[g];
        char check[32], val[96], det[320], act[256];
        snprintf(check, sizeof(check), "gpu %d", g);
        snprintf(val, sizeof(val), "%s node %d%s", gpu->bus_id, gpu->node,
                 gpu->known ? "" : " (unknown)");
        snprintf(det, sizeof(det), "sysfs numa_node %d", gpu->node_raw);
        if (gpu->known)
            snprintf(act, sizeof(act), "its pool runs on node %d", gpu->node);
        else
            snprintf(act, sizeof(act), "its pool uses node %d, a guess: set "
                     "loader_config.node_override if the firmware is wrong", gpu->node);
        add(r, check, gpu->known, val, det, act);

        struct nf_cpuset pool = {0};
        bool fb = false;
        if (nf__topo_pool_cpus(t, g, &pool, &fb) == 0) {
            char allowed[200];
            nf__cpuset_format(&pool, cpus, sizeof(cpus));
            nf__cpuset_format(&t->allowed, allowed, sizeof(allowed));
            snprintf(check, sizeof(check), "gpu %d cpus", g);
            snprintf(det, sizeof(det), "allowed CPUs %s", allowed);
            add(r, check, !fb, cpus, det,
                fb ? "no allowed CPU is on the GPU's node (a cpuset excludes it): the pool runs "
                     "on every allowed CPU, off-node"
                   : "the pool's threads are pinned to these CPUs");
        }
        nf__cpuset_free(&pool);
    }
}

/* Whether zstd blocks can be decoded on the GPU (decode gpu), every reason
 * why not, and where nvCOMP was found or looked for. Informational: the
 * CPU decodes them otherwise, as it always could. */
static void check_gpu_decode(struct report *r, int ndev)
{
    char det[2048] = "", lib[1200];
    const char *why;
    if (!numafeed_has_cuda())
        nf__note(det, sizeof(det), "not compiled with CUDA");
    else if (!nf__gpu_kernels(&why))
        nf__note(det, sizeof(det), "%s", why);
    else if (ndev <= 0)
        nf__note(det, sizeof(det), "no CUDA device");
    int missing = nf__nvcomp_load() != 0;
    if (missing)
        snprintf(lib, sizeof(lib), "%s", numafeed_last_error());
    else
        nf__nvcomp_describe(nf__nvcomp(), lib, sizeof(lib));
    int available = !det[0] && !missing;
    nf__note(det, sizeof(det), "%s%s", missing ? "" : "found ", lib);
    add(r, "gpu decode", 1, available ? "available" : "unavailable", det,
        available ? "decode gpu decodes zstd datasets on the GPU with nvCOMP; decode auto "
                    "keeps them on the pools' cores: decode gpu must be asked for "
                    "(docs/loader.md)"
                  : "zstd blocks are decoded by the pools' cores (decode cpu)");
}

static void check_kernel(struct report *r, const char *sysroot, const char *procroot,
                         const numafeed_topo *t)
{
    char *nb = read_text(procroot, "sys/kernel/numa_balancing");
    if (!nb)
        add(r, "numa_balancing", 1, "absent", "no sys/kernel/numa_balancing",
            "nothing moves pages behind numafeed's back");
    else
        add(r, "numa_balancing", !strcmp(nb, "0"), nb,
            !strcmp(nb, "0") ? "automatic NUMA balancing is off"
                             : "the kernel migrates pages and tasks it sees used remotely",
            !strcmp(nb, "0") ? "placement stays as numafeed made it"
                             : "slots are bound with MPOL_BIND and stay, other memory may move; "
                               "sysctl kernel.numa_balancing=0 avoids the scanning cost");
    free(nb);

    struct rlimit rl;
    char v[64];
    getrlimit(RLIMIT_MEMLOCK, &rl);
    if (rl.rlim_cur == RLIM_INFINITY)
        snprintf(v, sizeof(v), "unlimited");
    else
        snprintf(v, sizeof(v), "%llu KiB", (unsigned long long)rl.rlim_cur / 1024);
    int low = rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (8u << 20);
    add(r, "memlock", !low, v, "RLIMIT_MEMLOCK of this process",
        low ? "io_uring rings count against it on kernels before 5.12: if io_uring is refused "
              "the reader falls back to pread"
            : "enough for io_uring rings");

    char *thp = read_text(sysroot, "kernel/mm/transparent_hugepage/enabled");
    int never = thp && strstr(thp, "[never]");
    add(r, "thp", !never, thp ? thp : "absent", "transparent huge pages mode",
        never ? "slots that get no reserved huge pages use 4 KiB pages: more TLB misses and "
                "more pages to pin"
              : "slots are madvise(MADV_HUGEPAGE)'d when no reserved huge pages are free");
    free(thp);

    for (int i = 0; i < t->nnodes; i++) {
        char rel[160], check[48];
        long n = 0;
        snprintf(rel, sizeof(rel),
                 "devices/system/node/node%d/hugepages/hugepages-2048kB/free_hugepages",
                 t->nodes[i].id);
        snprintf(check, sizeof(check), "hugepages node %d", t->nodes[i].id);
        int rc = nf__sysfs_long(sysroot, rel, &n);
        snprintf(v, sizeof(v), rc ? "unknown" : "%ld free 2 MiB pages", n);
        add(r, check, 1, v, rc ? numafeed_last_error() : "the node's reserved hugetlb pool",
            n > 0 ? "slots use MAP_HUGETLB when the pool covers them"
                  : "slots use transparent huge pages (madvise) instead");
    }

    char why[256];
    char *dis = read_text(procroot, "sys/kernel/io_uring_disabled");
    int urc = nf__io_uring_probe(why, sizeof(why));
    char det[384];
    snprintf(det, sizeof(det), "%s; io_uring_disabled=%s", why, dis ? dis : "absent");
    free(dis);
    add(r, "io_uring", urc == 0, urc == 0 ? "available" : "refused", det,
        urc == 0 ? "one ring per worker thread"
                 : "every reader falls back to pread (synchronous, one read at a time)");

    /* mbind on a scratch page: EPERM under Docker's default seccomp profile
     * without CAP_SYS_NICE */
    int node = t->ngpus ? t->gpus[0].node : t->nodes[0].id;
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
        unsigned long mask[(NF_CPU_ID_MAX + 1) / (8 * sizeof(unsigned long))] = {0};
        const unsigned bpw = 8 * sizeof(unsigned long);
        mask[(unsigned)node / bpw] |= 1UL << ((unsigned)node % bpw);
        long mrc = mbind(p, 4096, MPOL_BIND, mask, ((unsigned long)node / bpw + 1) * bpw + 1, 0);
        int err = errno;
        munmap(p, 4096);
        snprintf(det, sizeof(det), "mbind(MPOL_BIND, node %d): %s", node,
                 mrc == 0 ? "permitted" : strerror(err));
        add(r, "mbind", mrc == 0, mrc == 0 ? "permitted" : "refused", det,
            mrc == 0 ? "slots are bound to their node"
                     : "slots are placed by first touch of node-pinned threads, and checked");
    }

    int n = numafeed_has_cuda() ? nf__cuda_device_count() : NUMAFEED_ENOCUDA;
    snprintf(v, sizeof(v), n >= 0 ? "%d device%s" : "unavailable", n, n == 1 ? "" : "s");
    /* without a GPU in sysfs, host mode is what the machine is for */
    add(r, "cuda", n > 0 || t->ngpus == 0, v,
        !numafeed_has_cuda() ? "this build has no CUDA path"
        : n >= 0             ? "the CUDA runtime (static) and the driver answer"
                             : numafeed_last_error(),
        n > 0 ? "batches are copied to each GPU from page-locked node-local slots"
              : "the loader delivers host batches");
    check_gpu_decode(r, n);
}

int nf__doctor_setup(const char *who, const struct numafeed_doctor_options *in,
                     numafeed_topo **topo, const char **proc_root)
{
    struct numafeed_doctor_options opt;
    numafeed_doctor_options_init(&opt);
    if (in) {
        if (in->size < sizeof(size_t) || in->size > sizeof(opt))
            return nf__error(-EINVAL, "%s: options.size %zu unknown", who, in->size);
        memcpy(&opt, in, in->size);
    }
    struct numafeed_topo_options to;
    numafeed_topo_options_init(&to);
    to.sysfs_root = opt.sysfs_root;
    to.cuda_visible_devices = opt.cuda_visible_devices;
    to.allowed_cpus = opt.allowed_cpus;
    to.use_cuda = opt.use_cuda;
    const char *proc = opt.proc_root ? opt.proc_root : getenv("NUMAFEED_PROC_ROOT");
    *proc_root = proc && *proc ? proc : "/proc";
    return numafeed_topo_open(&to, topo);
}

int numafeed_doctor(const struct numafeed_doctor_options *opt_in, char **json, int *warnings)
{
    nf__error_clear();
    if (!json)
        return nf__error(-EINVAL, "numafeed_doctor: json is NULL");
    numafeed_topo *t;
    const char *proc;
    int rc = nf__doctor_setup("numafeed_doctor", opt_in, &t, &proc);
    if (rc)
        return rc;
    struct report r = {json_array(), 0};
    if (!r.findings) {
        numafeed_topo_close(t);
        return nf__error(-ENOMEM, "numafeed_doctor: out of memory");
    }
    check_topology(&r, t);
    check_kernel(&r, t->root, proc, t);
    numafeed_topo_close(t);
    json_t *doc = json_pack("{s:o,s:i}", "findings", r.findings, "warnings", r.warnings);
    *json = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (!*json)
        return nf__error(-ENOMEM, "numafeed_doctor: out of memory");
    if (warnings)
        *warnings = r.warnings;
    nf__error_clear();
    return 0;
}
