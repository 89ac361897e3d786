// SPDX-License-Identifier: Apache-2.0
/*
 * The topology: online NUMA nodes and their CPUs, NVIDIA GPUs and the node
 * each hangs off, and the CPUs this process may run on.
 *
 * GPU ordinal -> PCI bus id -> sysfs numa_node. The ordinal is CUDA's: with
 * the runtime compiled in and a driver answering, cudaDeviceGetPCIBusId
 * gives the bus id of each ordinal after CUDA_VISIBLE_DEVICES and
 * CUDA_DEVICE_ORDER. Without it we apply CUDA_VISIBLE_DEVICES ourselves over
 * PCI-bus-id order. NVML's indices and CUDA's default (fastest-first) order
 * are not PCI order, which is why nothing here maps by index alone.
 *
 * A numa_node of -1 (firmware gave no locality, common in VMs) or a missing
 * file leaves the node unknown. We resolve it to the lowest online node so
 * that a pool still has somewhere to run, and flag it everywhere it is
 * shown; -1 never leaks out as a node id.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pin/pin.h"

static void warn(struct numafeed_topo *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void warn(struct numafeed_topo *t, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t k = strlen(line);
    char *w = realloc(t->warnings, t->warnings_len + k + 2);
    if (!w)
        return; /* a lost warning is better than a failed open */
    memcpy(w + t->warnings_len, line, k);
    w[t->warnings_len + k] = '\n';
    w[t->warnings_len + k + 1] = '\0';
    t->warnings = w;
    t->warnings_len += k + 1;
}

void numafeed_topo_options_init(struct numafeed_topo_options *opt)
{
    memset(opt, 0, sizeof(*opt));
    opt->size = sizeof(*opt);
    opt->use_cuda = -1;
}

const struct nf_node *nf__topo_node(const struct numafeed_topo *t, int id)
{
    for (int i = 0; i < t->nnodes; i++)
        if (t->nodes[i].id == id)
            return &t->nodes[i];
    return NULL;
}

/* A file the tree must have: missing means malformed, not absent hardware. */
static int required(struct numafeed_topo *t, const char *rel, int rc)
{
    if (rc == -ENOENT)
        return nf__error(NUMAFEED_ESYSFS, "%s/%s: missing (the rest of the tree is there)",
                          t->root, rel);
    return rc;
}

static int read_nodes(struct numafeed_topo *t)
{
    struct nf_cpuset online = {0};
    int rc = nf__sysfs_cpulist(t->root, "devices/system/node/online", &online);
    if (rc == -ENOENT) {
        /* A kernel without CONFIG_NUMA has no node directory at all: one
         * node 0 holding every online CPU. A node directory without
         * `online` is a broken tree, not a non-NUMA kernel. */
        char path[4096];
        snprintf(path, sizeof(path), "%s/devices/system/node", t->root);
        DIR *d = opendir(path);
        if (d) {
            closedir(d);
            return nf__error(NUMAFEED_ESYSFS, "%s/online: missing", path);
        }
        t->nodes = calloc(1, sizeof(*t->nodes));
        if (!t->nodes)
            return nf__error(-ENOMEM, "topology: out of memory");
        t->nnodes = 1;
        rc = nf__sysfs_cpulist(t->root, "devices/system/cpu/online", &t->nodes[0].cpus);
        if (rc == -ENOENT)
            return nf__error(-ENOENT, "%s: neither devices/system/node/online nor "
                              "devices/system/cpu/online exists; is this a sysfs tree?", t->root);
        if (rc == 0)
            warn(t, "no NUMA node directory under %s: treating the machine as one node", t->root);
        return rc;
    }
    if (rc) {
        /* a list that fails part-way ("0-1,x") has already set bits */
        nf__cpuset_free(&online);
        return rc;
    }
    size_t n = nf__cpuset_count(&online);
    if (n == 0) {
        nf__cpuset_free(&online);
        return nf__error(NUMAFEED_ESYSFS, "%s/devices/system/node/online: no node online",
                          t->root);
    }
    t->nodes = calloc(n, sizeof(*t->nodes));
    if (!t->nodes) {
        nf__cpuset_free(&online);
        return nf__error(-ENOMEM, "topology: out of memory");
    }
    for (long id = nf__cpuset_next(&online, 0); id >= 0 && rc == 0;
         id = nf__cpuset_next(&online, (unsigned)id + 1)) {
        char rel[128];
        snprintf(rel, sizeof(rel), "devices/system/node/node%ld/cpulist", id);
        struct nf_node *node = &t->nodes[t->nnodes++];
        node->id = (int)id;
        rc = required(t, rel, nf__sysfs_cpulist(t->root, rel, &node->cpus));
    }
    nf__cpuset_free(&online);
    return rc;
}

static int cmp_gpu(const void *a, const void *b)
{
    const struct nf_gpu *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key;
}

static void free_gpus(struct nf_gpu *g, int n)
{
    for (int i = 0; i < n; i++)
        nf__cpuset_free(&g[i].local_cpus);
    free(g);
}

/* Fill node, node_raw, known and local_cpus of g from its sysfs directory. */
static int read_gpu_locality(struct numafeed_topo *t, struct nf_gpu *g, const char *dirname)
{
    char rel[512];
    long raw = -1;
    snprintf(rel, sizeof(rel), "bus/pci/devices/%s/numa_node", dirname);
    int rc = nf__sysfs_long(t->root, rel, &raw);
    if (rc && rc != -ENOENT)
        return rc;
    if (rc == 0 && (raw < -1 || raw > NF_CPU_ID_MAX))
        return nf__error(NUMAFEED_ESYSFS, "%s/%s: %ld is not a node id", t->root, rel, raw);
    g->node_raw = (int)raw;
    g->known = raw >= 0 && nf__topo_node(t, (int)raw) != NULL;
    g->node = g->known ? (int)raw : t->nodes[0].id;
    if (rc == -ENOENT)
        warn(t, "GPU %s: no numa_node file; node unknown, using node %d", g->bus_id, g->node);
    else if (raw == -1)
        warn(t, "GPU %s: numa_node is -1 (firmware gave no locality); node unknown, using node %d",
             g->bus_id, g->node);
    else if (!g->known)
        warn(t, "GPU %s: numa_node says %ld but that node is not online; node unknown, using "
             "node %d", g->bus_id, raw, g->node);

    snprintf(rel, sizeof(rel), "bus/pci/devices/%s/local_cpulist", dirname);
    rc = nf__sysfs_cpulist(t->root, rel, &g->local_cpus);
    if (rc == 0)
        g->has_local_cpus = true;
    else if (rc != -ENOENT)
        return rc;
    return 0;
}

/* Every NVIDIA display/3D controller under bus/pci/devices, in bus-id order. */
static int read_pci_gpus(struct numafeed_topo *t, struct nf_gpu **out, int *count)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/bus/pci/devices", t->root);
    *out = NULL;
    *count = 0;
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT)
            return 0; /* no PCI bus (some VMs, containers with a partial /sys) */
        int err = errno;
        return nf__error(-err, "opendir(%s): %s", path, strerror(err));
    }
    struct nf_gpu *gpus = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char busid[NF_BUSID_LEN];
        uint64_t key;
        if (nf__busid_normalize(de->d_name, busid, &key)) {
            warn(t, "%s/%s: not a PCI address, skipped", path, de->d_name);
            continue;
        }
        char rel[512];
        unsigned long vendor, cls;
        snprintf(rel, sizeof(rel), "bus/pci/devices/%s/vendor", de->d_name);
        rc = required(t, rel, nf__sysfs_hex(t->root, rel, &vendor));
        if (rc)
            break;
        if (vendor != 0x10de)
            continue;
        snprintf(rel, sizeof(rel), "bus/pci/devices/%s/class", de->d_name);
        rc = required(t, rel, nf__sysfs_hex(t->root, rel, &cls));
        if (rc)
            break;
        /* 0x0300xx VGA controller, 0x0302xx 3D controller (data-centre parts);
         * NVIDIA's audio and USB functions share the vendor id. */
        if ((cls >> 8) != 0x0300 && (cls >> 8) != 0x0302)
            continue;
        if (n == cap) {
            int ncap = cap ? cap * 2 : 8;
            struct nf_gpu *g = realloc(gpus, (size_t)ncap * sizeof(*g));
            if (!g) {
                rc = nf__error(-ENOMEM, "topology: out of memory");
                break;
            }
            gpus = g;
            cap = ncap;
        }
        struct nf_gpu *g = &gpus[n++];
        memset(g, 0, sizeof(*g));
        memcpy(g->bus_id, busid, sizeof(busid));
        g->key = key;
        rc = read_gpu_locality(t, g, de->d_name);
    }
    closedir(d);
    if (rc) {
        free_gpus(gpus, n);
        return rc;
    }
    if (n)
        qsort(gpus, (size_t)n, sizeof(*gpus), cmp_gpu);
    *out = gpus;
    *count = n;
    return 0;
}

static int copy_gpu(struct nf_gpu *dst, const struct nf_gpu *src)
{
    *dst = *src;
    memset(&dst->local_cpus, 0, sizeof(dst->local_cpus));
    return src->has_local_cpus ? nf__cpuset_copy(&dst->local_cpus, &src->local_cpus) : 0;
}

/*
 * CUDA_VISIBLE_DEVICES over PCI order, without the CUDA runtime. Like the
 * driver, enumeration stops at the first index that does not exist; an
 * index listed twice or a UUID is an error because we cannot know what the
 * driver would make of it.
 */
static int apply_visible(struct numafeed_topo *t, const char *cvd, const struct nf_gpu *all,
                         int nall)
{
    t->gpus = calloc(nall ? (size_t)nall : 1, sizeof(*t->gpus));
    if (!t->gpus)
        return nf__error(-ENOMEM, "topology: out of memory");
    if (!cvd) {
        for (int i = 0; i < nall; i++) {
            int rc = copy_gpu(&t->gpus[t->ngpus++], &all[i]);
            if (rc)
                return rc;
        }
        return 0;
    }
    const char *p = cvd;
    bool used[1024] = {0};
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char tok[128];
        if (len >= sizeof(tok))
            return nf__error(-EINVAL, "CUDA_VISIBLE_DEVICES=\"%s\": entry too long", cvd);
        memcpy(tok, p, len);
        tok[len] = '\0';
        char *s = tok, *e = tok + len;
        while (*s == ' ' || *s == '\t')
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        if (!strncmp(s, "GPU-", 4) || !strncmp(s, "MIG-", 4))
            return nf__error(-EINVAL, "CUDA_VISIBLE_DEVICES=\"%s\": \"%s\" is a UUID; mapping "
                              "UUIDs to bus ids needs the CUDA runtime and a driver, which %s",
                              cvd, s,
                              numafeed_has_cuda() ? "did not answer" : "this build lacks");
        char *end;
        errno = 0;
        long idx = strtol(s, &end, 10);
        if (s == e || *end != '\0' || errno)
            return nf__error(-EINVAL, "CUDA_VISIBLE_DEVICES=\"%s\": \"%s\" is not a device index",
                              cvd, s);
        if (idx < 0 || idx >= nall) {
            warn(t, "CUDA_VISIBLE_DEVICES=\"%s\": index %ld does not exist (%d GPU%s); like the "
                 "driver, the list ends there", cvd, idx, nall, nall == 1 ? "" : "s");
            return 0;
        }
        if (idx < (long)NF_ARRAY_SIZE(used) && used[idx])
            return nf__error(-EINVAL, "CUDA_VISIBLE_DEVICES=\"%s\": index %ld listed twice", cvd,
                              idx);
        if (idx < (long)NF_ARRAY_SIZE(used))
            used[idx] = true;
        int rc = copy_gpu(&t->gpus[t->ngpus++], &all[idx]);
        if (rc)
            return rc;
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

/* Ordinals from the CUDA runtime, matched to sysfs by bus id. */
static int apply_cuda(struct numafeed_topo *t, char (*ids)[NF_BUSID_LEN], int nids,
                      const struct nf_gpu *all, int nall)
{
    t->gpus = calloc(nids ? (size_t)nids : 1, sizeof(*t->gpus));
    if (!t->gpus)
        return nf__error(-ENOMEM, "topology: out of memory");
    for (int i = 0; i < nids; i++) {
        char norm[NF_BUSID_LEN];
        uint64_t key;
        if (nf__busid_normalize(ids[i], norm, &key))
            return nf__error(NUMAFEED_ECUDA, "cudaDeviceGetPCIBusId(%d) returned \"%s\"", i,
                              ids[i]);
        const struct nf_gpu *match = NULL;
        for (int j = 0; j < nall && !match; j++)
            if (all[j].key == key)
                match = &all[j];
        struct nf_gpu *g = &t->gpus[t->ngpus++];
        if (match) {
            int rc = copy_gpu(g, match);
            if (rc)
                return rc;
        } else {
            memset(g, 0, sizeof(*g));
            memcpy(g->bus_id, norm, sizeof(norm));
            g->key = key;
            g->node_raw = -1;
            g->node = t->nodes[0].id;
            warn(t, "GPU %d (%s): the CUDA runtime lists it but %s/bus/pci/devices does not; node "
                 "unknown, using node %d", i, norm, t->root, g->node);
        }
    }
    return 0;
}

void numafeed_topo_close(numafeed_topo *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->nnodes; i++)
        nf__cpuset_free(&t->nodes[i].cpus);
    free(t->nodes);
    free_gpus(t->gpus, t->ngpus);
    nf__cpuset_free(&t->allowed);
    free(t->warnings);
    free(t->root);
    free(t);
}

int numafeed_topo_open(const struct numafeed_topo_options *opt_in, numafeed_topo **out)
{
    struct numafeed_topo_options opt;
    numafeed_topo_options_init(&opt);
    nf__error_clear();
    if (!out)
        return nf__error(-EINVAL, "numafeed_topo_open: out is NULL");
    *out = NULL;
    if (opt_in) {
        /* Honour only the fields the caller's struct has (its size first). */
        if (opt_in->size < offsetof(struct numafeed_topo_options, sysfs_root) ||
            opt_in->size > sizeof(opt))
            return nf__error(-EINVAL, "numafeed_topo_open: options.size %zu is not one this "
                              "library knows; call numafeed_topo_options_init", opt_in->size);
        memcpy(&opt, opt_in, opt_in->size);
    }
    struct numafeed_topo *t = calloc(1, sizeof(*t));
    if (!t)
        return nf__error(-ENOMEM, "topology: out of memory");
    const char *root = nf__sysfs_root(opt.sysfs_root);
    t->root = strdup(root);
    struct nf_gpu *all = NULL;
    int nall = 0;
    int rc = t->root ? 0 : nf__error(-ENOMEM, "topology: out of memory");
    if (rc == 0)
        rc = read_nodes(t);
    if (rc == 0) {
        rc = opt.allowed_cpus
                 ? nf__cpuset_parse(&t->allowed, opt.allowed_cpus, strlen(opt.allowed_cpus),
                                     "allowed CPUs")
                 : nf__cpuset_from_affinity(&t->allowed, 0);
        if (rc == 0 && nf__cpuset_empty(&t->allowed))
            rc = nf__error(-EINVAL, "allowed CPUs: the set is empty");
    }
    if (rc == 0)
        rc = read_pci_gpus(t, &all, &nall);

    bool try_cuda = opt.use_cuda > 0 || (opt.use_cuda < 0 && strcmp(t->root, "/sys") == 0);
    if (rc == 0 && try_cuda && numafeed_has_cuda()) {
        char (*ids)[NF_BUSID_LEN] = NULL;
        int nids = 0;
        int crc = nf__cuda_bus_ids(&ids, &nids);
        if (crc == 0) {
            t->used_cuda = true;
            rc = apply_cuda(t, ids, nids, all, nall);
        } else if (crc != NUMAFEED_ENOCUDA) {
            rc = crc;
        }
        free(ids);
    }
    if (rc == 0 && !t->used_cuda) {
        const char *cvd = opt.cuda_visible_devices ? opt.cuda_visible_devices
                                                   : getenv("CUDA_VISIBLE_DEVICES");
        rc = apply_visible(t, cvd, all, nall);
    }
    free_gpus(all, nall);
    if (rc == 0) {
        for (int i = 0; i < t->ngpus; i++) {
            const struct nf_gpu *g = &t->gpus[i];
            const struct nf_node *node = nf__topo_node(t, g->node);
            if (node && nf__cpuset_empty(&node->cpus))
                warn(t, "GPU %d (%s): node %d has no CPUs; its pool runs on the allowed CPUs", i,
                     g->bus_id, g->node);
            if (g->known && g->has_local_cpus && node &&
                !nf__cpuset_equal(&g->local_cpus, &node->cpus))
                warn(t, "GPU %d (%s): local_cpulist differs from node %d's cpulist; numafeed "
                     "uses the node's", i, g->bus_id, g->node);
        }
    }
    if (rc) {
        numafeed_topo_close(t);
        return rc;
    }
    if (!t->warnings)
        t->warnings = strdup("");
    *out = t;
    return 0;
}

int numafeed_topo_node_count(const numafeed_topo *t)
{
    return t->nnodes;
}

int numafeed_topo_node_id(const numafeed_topo *t, int i)
{
    if (i < 0 || i >= t->nnodes)
        return nf__error(-EINVAL, "node index %d out of range (%d nodes)", i, t->nnodes);
    return t->nodes[i].id;
}

int numafeed_topo_gpu_count(const numafeed_topo *t)
{
    return t->ngpus;
}

static int check_gpu(const numafeed_topo *t, int gpu)
{
    if (gpu < 0 || gpu >= t->ngpus)
        return nf__error(-EINVAL, "GPU %d out of range (%d visible)", gpu, t->ngpus);
    return 0;
}

int numafeed_topo_gpu(const numafeed_topo *t, int gpu, struct numafeed_gpu_info *info)
{
    int rc = check_gpu(t, gpu);
    if (rc)
        return rc;
    const struct nf_gpu *g = &t->gpus[gpu];
    memset(info, 0, sizeof(*info));
    info->index = gpu;
    snprintf(info->pci_bus_id, sizeof(info->pci_bus_id), "%s", g->bus_id);
    info->numa_node = g->node;
    info->numa_node_raw = g->node_raw;
    info->node_known = g->known;
    return 0;
}

static int format_ret(const struct nf_cpuset *s, char *buf, size_t bufsize)
{
    size_t n = nf__cpuset_format(s, buf, bufsize);
    return n > INT32_MAX ? -EOVERFLOW : (int)n;
}

int numafeed_topo_node_cpus(const numafeed_topo *t, int node, char *buf, size_t bufsize)
{
    const struct nf_node *n = nf__topo_node(t, node);
    if (!n)
        return nf__error(-EINVAL, "node %d is not online", node);
    return format_ret(&n->cpus, buf, bufsize);
}

int numafeed_topo_gpu_cpus(const numafeed_topo *t, int gpu, char *buf, size_t bufsize)
{
    int rc = check_gpu(t, gpu);
    if (rc)
        return rc;
    return format_ret(&nf__topo_node(t, t->gpus[gpu].node)->cpus, buf, bufsize);
}

int numafeed_topo_allowed_cpus(const numafeed_topo *t, char *buf, size_t bufsize)
{
    return format_ret(&t->allowed, buf, bufsize);
}

int nf__topo_pool_cpus(const struct numafeed_topo *t, int gpu, struct nf_cpuset *out,
                        bool *fallback)
{
    int rc = check_gpu(t, gpu);
    if (rc)
        return rc;
    const struct nf_node *n = nf__topo_node(t, t->gpus[gpu].node);
    rc = nf__cpuset_and(out, &n->cpus, &t->allowed);
    if (rc)
        return rc;
    *fallback = nf__cpuset_empty(out);
    if (*fallback)
        rc = nf__cpuset_copy(out, &t->allowed);
    return rc;
}

int numafeed_topo_pool_cpus(const numafeed_topo *t, int gpu, char *buf, size_t bufsize,
                            int *fallback)
{
    struct nf_cpuset s = {0};
    bool fb = false;
    int rc = nf__topo_pool_cpus(t, gpu, &s, &fb);
    if (rc == 0) {
        rc = format_ret(&s, buf, bufsize);
        if (fallback)
            *fallback = fb;
    }
    nf__cpuset_free(&s);
    return rc;
}

const char *numafeed_topo_warnings(const numafeed_topo *t)
{
    return t->warnings ? t->warnings : "";
}

static json_t *cpus_json(const struct nf_cpuset *s)
{
    json_t *a = json_array();
    for (long c = nf__cpuset_next(s, 0); a && c >= 0; c = nf__cpuset_next(s, (unsigned)c + 1))
        if (json_array_append_new(a, json_integer(c))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

int numafeed_topo_json(const numafeed_topo *t, char **out)
{
    json_t *root = json_object(), *nodes = json_array(), *gpus = json_array();
    int bad = !root || !nodes || !gpus;
    for (int i = 0; !bad && i < t->nnodes; i++)
        bad = json_array_append_new(nodes, json_pack("{s:i,s:o*}", "id", t->nodes[i].id, "cpus",
                                                     cpus_json(&t->nodes[i].cpus))) != 0;
    for (int i = 0; !bad && i < t->ngpus; i++) {
        const struct nf_gpu *g = &t->gpus[i];
        bad = json_array_append_new(
                  gpus, json_pack("{s:i,s:s,s:i,s:i,s:o*}", "index", i, "pci_bus_id", g->bus_id,
                                  "numa_node", g->node, "numa_node_raw", g->node_raw, "cpus",
                                  cpus_json(&nf__topo_node(t, g->node)->cpus))) != 0;
    }
    if (!bad) {
        bad = json_object_set_new(root, "nodes", nodes) ||
              json_object_set_new(root, "gpus", gpus) ||
              json_object_set_new(root, "allowed_cpus", cpus_json(&t->allowed));
        nodes = gpus = NULL;
    }
    char *s = bad ? NULL : json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    json_decref(nodes);
    json_decref(gpus);
    if (!s)
        return nf__error(-ENOMEM, "topology: JSON encoding failed (out of memory)");
    *out = s;
    return 0;
}
