// SPDX-License-Identifier: Apache-2.0
/*
 * numafeed_verify: the acid test. Reads what the kernel says about a process
 * (its threads' allowed and last CPUs, its pages per node) and compares it
 * with where numafeed's pools should be. It trusts nothing numafeed itself
 * recorded: only /proc.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag/diag.h"

/* The CPU a task last ran on: field 39 of its stat line, counted after the
 * command name, whose parentheses may themselves hold spaces or ')'. */
static long last_cpu(const char *stat)
{
    const char *p = strrchr(stat, ')');
    if (!p)
        return -1;
    p++;
    for (int field = 3; field < 39; field++) { /* p is at the space before field 3 */
        p = strchr(p + 1, ' ');
        if (!p)
            return -1;
    }
    char *end;
    long v = strtol(p + 1, &end, 10);
    return end == p + 1 ? -1 : v;
}

/* Sum "N<node>=<pages>" of every mapping, times its kernelpagesize_kB. */
static int node_bytes(const char *maps, json_t *out, int expected, uint64_t *off)
{
    uint64_t per[1024] = {0};
    const char *line = maps;
    while (line && *line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        uint64_t kb = 4;
        const char *k = strstr(line, "kernelpagesize_kB=");
        if (k && (size_t)(k - line) < len)
            kb = strtoull(k + 18, NULL, 10);
        for (const char *q = line; q && q < line + len; q = strchr(q + 1, ' ')) {
            const char *t = *q == ' ' ? q + 1 : q;
            unsigned node;
            unsigned long long pages;
            if (t < line + len && sscanf(t, "N%u=%llu", &node, &pages) == 2 && node < 1024)
                per[node] += pages * kb * 1024;
        }
        line = nl ? nl + 1 : NULL;
    }
    for (unsigned n = 0; n < 1024; n++) {
        if (!per[n])
            continue;
        char key[16];
        snprintf(key, sizeof(key), "%u", n);
        json_object_set_new(out, key, json_integer((json_int_t)per[n]));
        if (expected >= 0 && (int)n != expected)
            *off += per[n];
    }
    return 0;
}

int numafeed_verify(int pid, int gpu, const struct numafeed_doctor_options *opt_in, char **json,
                    int *problems)
{
    nf__error_clear();
    if (!json || pid <= 0)
        return nf__error(-EINVAL, "numafeed_verify: bad pid %d or NULL json", pid);
    numafeed_topo *t;
    const char *proc;
    int rc = nf__doctor_setup("numafeed_verify", opt_in, &t, &proc);
    if (rc)
        return rc;
    if (gpu >= t->ngpus) {
        numafeed_topo_close(t);
        return nf__error(-EINVAL, "numafeed_verify: GPU %d is not visible (%d visible)", gpu,
                          t->ngpus);
    }
    char rel[600];
    snprintf(rel, sizeof(rel), "%s/%d/task", proc, pid);
    DIR *d = opendir(rel);
    if (!d) {
        int err = errno;
        numafeed_topo_close(t);
        return nf__error(err == ENOENT ? -ESRCH : -err, "opendir(%s): %s", rel, strerror(err));
    }
    int expected_node = gpu >= 0 ? t->gpus[gpu].node : -1;
    json_t *threads = json_array();
    int bad = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char *status = NULL, *stat = NULL, *comm = NULL;
        size_t len;
        snprintf(rel, sizeof(rel), "%d/task/%s/status", pid, de->d_name);
        if (nf__sysfs_read(proc, rel, &status, &len))
            continue; /* the thread exited meanwhile */
        snprintf(rel, sizeof(rel), "%d/task/%s/stat", pid, de->d_name);
        nf__sysfs_read(proc, rel, &stat, &len);
        snprintf(rel, sizeof(rel), "%d/task/%s/comm", pid, de->d_name);
        nf__sysfs_read(proc, rel, &comm, &len);
        if (comm && len && comm[len - 1] == '\n')
            comm[len - 1] = '\0';
        const char *cl = strstr(status, "Cpus_allowed_list:");
        struct nf_cpuset cpus = {0};
        char cpubuf[256] = "?";
        if (cl) {
            cl += strlen("Cpus_allowed_list:");
            size_t n = strcspn(cl, "\n");
            if (nf__cpuset_parse(&cpus, cl, n, "Cpus_allowed_list") == 0)
                nf__cpuset_format(&cpus, cpubuf, sizeof(cpubuf));
        }
        long lc = stat ? last_cpu(stat) : -1;
        int pool_gpu = -1;
        unsigned idx;
        if (comm && sscanf(comm, "numafeed-g%d-%u", &pool_gpu, &idx) != 2)
            pool_gpu = -1;
        int check_gpu = pool_gpu >= 0 ? pool_gpu : gpu;
        int ok = 1;
        char expbuf[256] = "";
        if (check_gpu >= 0 && check_gpu < t->ngpus) {
            struct nf_cpuset want = {0};
            bool fb;
            if (nf__topo_pool_cpus(t, check_gpu, &want, &fb) == 0) {
                nf__cpuset_format(&want, expbuf, sizeof(expbuf));
                /* allowed CPUs inside the pool's, and it last ran there */
                struct nf_cpuset both = {0};
                nf__cpuset_and(&both, &cpus, &want);
                ok = nf__cpuset_equal(&both, &cpus) && !nf__cpuset_empty(&cpus) &&
                     (lc < 0 || nf__cpuset_test(&want, (unsigned)lc));
                nf__cpuset_free(&both);
            }
            nf__cpuset_free(&want);
        }
        bad += !ok;
        json_array_append_new(threads,
                              json_pack("{s:s,s:s,s:s,s:I,s:i,s:s,s:b}", "tid", de->d_name, "name",
                                        comm ? comm : "", "cpus", cpubuf, "last_cpu",
                                        (json_int_t)lc, "pool_gpu", pool_gpu, "expected_cpus",
                                        expbuf, "ok", ok));
        nf__cpuset_free(&cpus);
        free(status);
        free(stat);
        free(comm);
    }
    closedir(d);

    json_t *nodes = json_object();
    uint64_t off = 0;
    char *maps = NULL;
    size_t mlen;
    snprintf(rel, sizeof(rel), "%d/numa_maps", pid);
    /* numa_maps can be large: read it whole, not through the sysfs cap */
    char path[1200];
    snprintf(path, sizeof(path), "%s/%s", proc, rel);
    FILE *f = fopen(path, "r");
    if (f) {
        size_t cap = 1 << 16;
        maps = malloc(cap);
        mlen = 0;
        size_t r;
        while (maps && (r = fread(maps + mlen, 1, cap - mlen - 1, f)) > 0) {
            mlen += r;
            if (cap - mlen < 2) {
                char *m = realloc(maps, cap * 2);
                if (!m)
                    break;
                maps = m;
                cap *= 2;
            }
        }
        fclose(f);
        if (maps) {
            maps[mlen] = '\0';
            node_bytes(maps, nodes, expected_node, &off);
        }
        free(maps);
    }
    int total = bad + (off > 0);
    json_t *doc = json_pack("{s:i,s:i,s:o,s:o,s:i,s:I,s:i}", "pid", pid, "gpu", gpu, "threads",
                            threads, "node_bytes", nodes, "expected_node", expected_node,
                            "off_node_bytes", (json_int_t)off, "problems", total);
    numafeed_topo_close(t);
    *json = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (!*json)
        return nf__error(-ENOMEM, "numafeed_verify: out of memory");
    if (problems)
        *problems = total;
    return 0;
}
