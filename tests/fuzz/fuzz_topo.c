// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz the sysfs topology reader through the public numafeed_topo_open,
 * on a small tree written from the input into a scratch directory.
 *
 * Input: pieces separated by the byte 0xff (never in a sysfs attribute, so
 * it costs the fuzzer nothing). Piece i, when present, becomes file i:
 *   0  devices/system/node/online
 *   1  devices/system/node/node0/cpulist
 *   2  devices/system/node/node1/cpulist
 *   3  bus/pci/devices/0000:3b:00.0/vendor
 *   4  bus/pci/devices/0000:3b:00.0/class
 *   5  bus/pci/devices/0000:3b:00.0/numa_node
 *   6  bus/pci/devices/0000:3b:00.0/local_cpulist
 *   7  the allowed_cpus option (up to its first NUL)
 *   8  the cuda_visible_devices option (up to its first NUL)
 *   9  the name of a second PCI device directory, an NVIDIA 3D controller
 *      whose numa_node is piece 5 too (exercises bus-id parsing via readdir)
 *   10 devices/system/cpu/online (read when there is no node directory)
 * A piece that is the single byte 0xfe, or is beyond the end of the input,
 * is a missing file; with piece 0 missing (and pieces 1, 2) the node
 * directory is not created at all (a kernel without CONFIG_NUMA). The CUDA
 * runtime is never asked and allowed_cpus defaults to "0", so the result
 * depends on the input alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "pin/pin.h"

#define NPIECES 11
#define SEP 0xff
#define ABSENT 0xfe

static char base[64];  /* the scratch directory, made once */
static char root[128]; /* base/t: the tree, rebuilt for every input */

static const char *const files[] = {
    "devices/system/node/online",
    "devices/system/node/node0/cpulist",
    "devices/system/node/node1/cpulist",
    "bus/pci/devices/0000:3b:00.0/vendor",
    "bus/pci/devices/0000:3b:00.0/class",
    "bus/pci/devices/0000:3b:00.0/numa_node",
    "bus/pci/devices/0000:3b:00.0/local_cpulist",
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* tmpfs where there is one: every input rewrites the whole tree */
    snprintf(base, sizeof(base), "/dev/shm/nf-fuzz-topo-XXXXXX");
    if (!mkdtemp(base)) {
        snprintf(base, sizeof(base), "/tmp/nf-fuzz-topo-XXXXXX");
        if (!mkdtemp(base))
            abort();
    }
    snprintf(root, sizeof(root), "%s/t", base);
    unsetenv("CUDA_VISIBLE_DEVICES");
    unsetenv("NUMAFEED_SYSFS_ROOT");
    return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* mkdir -p of the directories above rel, then write the file. */
static void put(const char *rel, const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    for (char *s = path + strlen(root) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        if (mkdir(path, 0755) && errno != EEXIST)
            abort();
        *s = '/';
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || (n && write(fd, p, n) != (ssize_t)n))
        abort();
    close(fd);
}

static void check_topo(const numafeed_topo *t, size_t npci)
{
    NF_FUZZ_CHECK(t->nnodes >= 1 && t->nodes);
    for (int i = 0; i < t->nnodes; i++) {
        NF_FUZZ_CHECK(t->nodes[i].id >= 0 && t->nodes[i].id <= NF_CPU_ID_MAX);
        if (i)
            NF_FUZZ_CHECK(t->nodes[i].id > t->nodes[i - 1].id);
        NF_FUZZ_CHECK(numafeed_topo_node_id(t, i) == t->nodes[i].id);
    }
    NF_FUZZ_CHECK(!nf__cpuset_empty(&t->allowed));
    NF_FUZZ_CHECK(t->ngpus >= 0 && (size_t)t->ngpus <= npci);
    NF_FUZZ_CHECK(numafeed_topo_gpu_count(t) == t->ngpus);
    for (int g = 0; g < t->ngpus; g++) {
        const struct nf_gpu *gpu = &t->gpus[g];
        /* -1 never leaks out as a node: the resolved node is online */
        NF_FUZZ_CHECK(nf__topo_node(t, gpu->node) != NULL);
        NF_FUZZ_CHECK(gpu->node_raw >= -1 && gpu->node_raw <= NF_CPU_ID_MAX);
        if (gpu->known)
            NF_FUZZ_CHECK(gpu->node == gpu->node_raw);
        char norm[NF_BUSID_LEN];
        uint64_t key;
        NF_FUZZ_CHECK(nf__busid_normalize(gpu->bus_id, norm, &key) == 0);
        NF_FUZZ_CHECK(!strcmp(norm, gpu->bus_id) && key == gpu->key);

        struct numafeed_gpu_info info;
        NF_FUZZ_CHECK(numafeed_topo_gpu(t, g, &info) == 0 && info.numa_node == gpu->node);
        /* the pool is node & allowed, or all of allowed: never empty and
         * never outside allowed */
        struct nf_cpuset pool = {0};
        bool fallback = false;
        NF_FUZZ_CHECK(nf__topo_pool_cpus(t, g, &pool, &fallback) == 0);
        NF_FUZZ_CHECK(!nf__cpuset_empty(&pool));
        for (long c = nf__cpuset_next(&pool, 0); c >= 0;
             c = nf__cpuset_next(&pool, (unsigned)c + 1))
            NF_FUZZ_CHECK(nf__cpuset_test(&t->allowed, (unsigned)c));
        nf__cpuset_free(&pool);
        char buf[64];
        NF_FUZZ_CHECK(numafeed_topo_gpu_cpus(t, g, buf, sizeof(buf)) >= 0);
    }
    const char *w = numafeed_topo_warnings(t);
    NF_FUZZ_CHECK(w != NULL);
    /* the JSON form is valid JSON with one entry per node and per GPU */
    char *js = NULL;
    int rc = numafeed_topo_json(t, &js);
    if (rc == -ENOMEM)
        return;
    NF_FUZZ_CHECK(rc == 0 && js);
    json_t *j = json_loads(js, 0, NULL);
    NF_FUZZ_CHECK(j != NULL);
    NF_FUZZ_CHECK(json_array_size(json_object_get(j, "nodes")) == (size_t)t->nnodes);
    NF_FUZZ_CHECK(json_array_size(json_object_get(j, "gpus")) == (size_t)t->ngpus);
    json_decref(j);
    free(js);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *piece[NPIECES] = {0};
    size_t len[NPIECES] = {0};
    size_t np = 0, start = 0;
    for (size_t i = 0; i <= size && np < NPIECES; i++) {
        if (i == size || data[i] == SEP) {
            piece[np] = data + start;
            len[np++] = i - start;
            start = i + 1;
        }
    }

    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    if (mkdir(root, 0755))
        abort();
    for (size_t i = 0; i < np; i++)
        if (len[i] == 1 && piece[i][0] == ABSENT)
            piece[i] = NULL;
    size_t npci = 0;
    for (size_t i = 0; i < 7 && i < np; i++) {
        if (!piece[i])
            continue;
        put(files[i], piece[i], len[i]);
        if (i >= 3)
            npci = 1; /* the first PCI device exists */
    }
    if (np > 10 && piece[10])
        put("devices/system/cpu/online", piece[10], len[10]);
    if (np > 9 && piece[9] && len[9] >= 1 && len[9] < 64 && !memchr(piece[9], '/', len[9]) &&
        !memchr(piece[9], '\0', len[9]) && piece[9][0] != '.') {
        char rel[128];
        int k = snprintf(rel, sizeof(rel), "bus/pci/devices/%.*s/", (int)len[9],
                         (const char *)piece[9]);
        if (strcmp(rel, "bus/pci/devices/0000:3b:00.0/")) {
            snprintf(rel + k, sizeof(rel) - (size_t)k, "vendor");
            put(rel, (const uint8_t *)"0x10de\n", 7);
            snprintf(rel + k, sizeof(rel) - (size_t)k, "class");
            put(rel, (const uint8_t *)"0x030200\n", 9);
            if (np > 5 && piece[5]) {
                snprintf(rel + k, sizeof(rel) - (size_t)k, "numa_node");
                put(rel, piece[5], len[5]);
            }
            npci++;
        }
    }

    char allowed[128] = "0", cvd[128];
    if (np > 7 && piece[7])
        snprintf(allowed, sizeof(allowed), "%.*s", (int)len[7], (const char *)piece[7]);
    struct numafeed_topo_options opt;
    numafeed_topo_options_init(&opt);
    opt.sysfs_root = root;
    opt.use_cuda = 0;
    opt.allowed_cpus = allowed;
    if (np > 8 && piece[8]) {
        snprintf(cvd, sizeof(cvd), "%.*s", (int)len[8], (const char *)piece[8]);
        opt.cuda_visible_devices = cvd;
    }

    numafeed_topo *t = (numafeed_topo *)0x1;
    int rc = numafeed_topo_open(&opt, &t);
    if (rc == 0) {
        NF_FUZZ_CHECK(t != NULL);
        check_topo(t, npci);
        numafeed_topo_close(t);
    } else {
        NF_FUZZ_CHECK(rc < 0 && t == NULL);
        NF_FUZZ_CHECK(numafeed_last_error()[0] != '\0');
    }
    return 0;
}
