// SPDX-License-Identifier: Apache-2.0
/*
 * Runs inside the NUMA VM (tests/numa-vm/run.sh), statically linked: one host
 * pool per NUMA node (node overrides, since the VM has no GPU), three epochs
 * of a packed dataset, and then asks the kernel, not numafeed, where things
 * are: every pool thread's allowed CPUs and last CPU from
 * /proc/self/task/<tid>/{status,stat}, every slot page's node from
 * move_pages. Checks the digest of delivered records against the raw file.
 * Also puts a buffer on the last node on purpose and has nf__node_settle
 * move it to node 0, which the kernel must then confirm page by page.
 * Prints one JSON report; exit 0 when everything is where it belongs.
 *
 *   vm_check DATASET RAWFILE
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <numaif.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include <numafeed.h>

#include "pin/pin.h"

#define MAXN 16

#define MAXCPU 1024

/* A cpulist ("0-1,4") as a membership array of MAXCPU entries. */
static void expand(const char *list, unsigned char *set)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", list);
    memset(set, 0, MAXCPU);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long a, b;
        if (sscanf(tok, "%ld-%ld", &a, &b) != 2)
            a = b = atol(tok);
        for (long c = a; c <= b && c < MAXCPU; c++)
            if (c >= 0)
                set[c] = 1;
    }
}

static int in_list(const char *list, long cpu)
{
    unsigned char set[MAXCPU];
    expand(list, set);
    return cpu >= 0 && cpu < MAXCPU && set[cpu];
}

/* every CPU of `sub` is in `super` */
static int subset(const char *sub, const char *super)
{
    unsigned char a[MAXCPU], b[MAXCPU];
    expand(sub, a);
    expand(super, b);
    for (int c = 0; c < MAXCPU; c++)
        if (a[c] && !b[c])
            return 0;
    return 1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *b = calloc(1, 8192);
    size_t n = fread(b, 1, 8191, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

static int check_threads(int npools, char pool_cpus[][256], int *bad)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    int seen = 0;
    printf("\"threads\":[");
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char p[300];
        snprintf(p, sizeof(p), "/proc/self/task/%s/comm", de->d_name);
        char *comm = slurp(p);
        int g;
        unsigned k;
        if (!comm || sscanf(comm, "numafeed-g%d-%u", &g, &k) != 2 || g < 0 || g >= npools) {
            free(comm);
            continue;
        }
        snprintf(p, sizeof(p), "/proc/self/task/%s/status", de->d_name);
        char *st = slurp(p);
        snprintf(p, sizeof(p), "/proc/self/task/%s/stat", de->d_name);
        char *stat = slurp(p);
        char allowed[256] = "?";
        const char *cl = st ? strstr(st, "Cpus_allowed_list:") : NULL;
        if (cl)
            sscanf(cl + strlen("Cpus_allowed_list:"), " %255s", allowed);
        long last = -1;
        const char *q = stat ? strrchr(stat, ')') : NULL;
        if (q) { /* field 39 */
            q++;
            for (int field = 3; q && field < 39; field++)
                q = strchr(q + 1, ' ');
            if (q)
                last = atol(q + 1);
        }
        int ok = subset(allowed, pool_cpus[g]) && in_list(pool_cpus[g], last);
        *bad += !ok;
        printf("%s{\"tid\":%s,\"pool\":%d,\"cpus\":\"%s\",\"last_cpu\":%ld,\"expected\":\"%s\","
               "\"ok\":%s}", seen++ ? "," : "", de->d_name, g, allowed, last, pool_cpus[g],
               ok ? "true" : "false");
        free(comm);
        free(st);
        free(stat);
    }
    if (d)
        closedir(d);
    printf("],");
    return seen;
}

/* The kernel's answer for every base page of [p, p+len): how many are on
 * node, of how many it gave an answer for. */
static void kernel_pages(const void *p, size_t len, int node, long *on, long *total)
{
    *on = *total = 0;
    for (size_t off = 0; off < len; off += 4096) {
        void *page = (char *)p + off;
        int status = -1;
        if (move_pages(0, 1, &page, NULL, &status, 0) == 0) {
            (*total)++;
            *on += status == node;
        }
    }
}

/* A 4 MiB buffer bound to and touched on the last node, then settled to
 * node 0: the migration numafeed does when first touch left ring pages on
 * the wrong node. */
static void check_settle(int last, int *bad)
{
    if (last < 1)
        return;
    void *p;
    size_t mapped;
    struct nf_placement pl;
    if (nf__node_map(NULL, last, 4u << 20, &p, &mapped, &pl)) {
        printf("\"settle\":{\"error\":\"map\"},");
        (*bad)++;
        return;
    }
    nf__node_touch(p, mapped);
    long before, on, total;
    kernel_pages(p, mapped, 0, &before, &total);
    nf__node_settle(p, mapped, 0, &pl);
    kernel_pages(p, mapped, 0, &on, &total);
    int ok = before == 0 && total > 0 && on == total && pl.strays == pl.pages &&
             pl.pages_on_node == pl.pages;
    *bad += !ok;
    printf("\"settle\":{\"from\":%d,\"on_node0_before\":%ld,\"strays\":%zu,\"on_node0_after\":%ld,"
           "\"pages\":%ld,\"note\":\"%s\",\"ok\":%s},",
           last, before, pl.strays, on, total, pl.note, ok ? "true" : "false");
    nf__node_free(p, mapped);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: vm_check DATASET RAWFILE\n");
        return 2;
    }
    numafeed_topo *t;
    if (numafeed_topo_open(NULL, &t)) {
        fprintf(stderr, "topo: %s\n", numafeed_last_error());
        return 1;
    }
    int nn = numafeed_topo_node_count(t);
    int gpus[MAXN], nodes[MAXN], npools = 0;
    char pool_cpus[MAXN][256];
    char allowed[256];
    numafeed_topo_allowed_cpus(t, allowed, sizeof(allowed));
    for (int i = 0; i < nn && npools < MAXN; i++) {
        int id = numafeed_topo_node_id(t, i);
        char c[256];
        if (numafeed_topo_node_cpus(t, id, c, sizeof(c)) <= 0)
            continue; /* CPU-less node */
        /* expected: node CPUs & allowed (the loader's rule) */
        unsigned char node_set[MAXCPU], allowed_set[MAXCPU];
        expand(c, node_set);
        expand(allowed, allowed_set);
        char inter[256] = "";
        size_t n = 0;
        for (int x = 0; x < MAXCPU; x++)
            if (node_set[x] && allowed_set[x])
                n += (size_t)snprintf(inter + n, sizeof(inter) - n, "%s%d", n ? "," : "", x);
        if (!n)
            continue; /* the cpuset excludes this node entirely */
        gpus[npools] = npools;
        nodes[npools] = id;
        snprintf(pool_cpus[npools], sizeof(pool_cpus[npools]), "%s", inter);
        npools++;
    }
    numafeed_topo_close(t);

    struct loader_config cfg;
    loader_config_init(&cfg);
    cfg.path = argv[1];
    cfg.gpus = gpus;
    cfg.ngpus = npools;
    cfg.node_override = nodes;
    cfg.device = LOADER_DEVICE_CPU;
    cfg.threads = 2;
    cfg.batch_size = 16;
    cfg.world_size = 1;
    loader_t *L;
    if (loader_create(&cfg, &L)) {
        fprintf(stderr, "loader_create: %s\n", numafeed_last_error());
        return 1;
    }
    /* expected digest from the raw file */
    FILE *f = fopen(argv[2], "rb");
    struct loader_batch b = LOADER_BATCH_INIT;
    if (!f || loader_next(L, 0, &b, 60000)) {
        fprintf(stderr, "no raw file or no first batch\n");
        return 1;
    }
    size_t rb = 0;
    for (unsigned i = 0; i < b.nfields; i++)
        rb += b.fields[i].record_bytes;
    loader_release(L, &b);
    unsigned char *rec = malloc(rb);
    uint64_t want = 0, nrec = 0;
    while (fread(rec, 1, rb, f) == rb) {
        want += XXH64(rec, rb, 0);
        nrec++;
    }
    fclose(f);

    int bad = 0;
    printf("{\"nodes\":%d,\"allowed\":\"%s\",\"pools\":%d,", nn, allowed, npools);
    int threads_seen = check_threads(npools, pool_cpus, &bad);
    check_settle(nodes[npools - 1], &bad);
    printf("\"slots\":[");
    /* every pool: epochs with digests, and its slot pages' nodes */
    printf("");
    int first_pool = 1;
    uint64_t got[3] = {0}, cnt[3] = {0};
    for (int g = 0; g < npools; g++) {
        long on = 0, total = 0;
        /* where the pages that are not on the pool's node are: counts per
         * node, and per negative status (move_pages' errno for the page) */
        long where[MAXN] = {0}, errs = 0, first_err = 0;
        for (int e = 0; e < 3; e++) {
            int rc;
            while ((rc = loader_next(L, g, &b, 60000)) == 0) {
                if (e == 0 && b.index == 0 && g == 0)
                    ; /* consumed above */
                for (uint32_t i = 0; i < b.records; i++) {
                    XXH64_state_t *s = XXH64_createState();
                    XXH64_reset(s, 0);
                    for (unsigned k = 0; k < b.nfields; k++)
                        XXH64_update(s, (char *)b.fields[k].host + i * b.fields[k].record_bytes,
                                     b.fields[k].record_bytes);
                    got[e] += XXH64_digest(s);
                    XXH64_freeState(s);
                }
                cnt[e] += b.records;
                /* where the kernel says the slot's pages are */
                size_t bytes = b.records * rb;
                long pg = sysconf(_SC_PAGESIZE);
                for (size_t off = 0; off < bytes; off += (size_t)pg) {
                    void *page = (char *)b.fields[0].host + off;
                    int status = -1;
                    if (move_pages(0, 1, &page, NULL, &status, 0) == 0) {
                        total++;
                        on += status == nodes[g];
                        if (status >= 0 && status < MAXN)
                            where[status]++;
                        else if (status < 0 && !errs++)
                            first_err = status;
                    }
                }
                loader_release(L, &b);
            }
            if (rc != NUMAFEED_EEPOCH_END) {
                char msg[1024];
                loader_last_error(L, msg, sizeof(msg));
                fprintf(stderr, "loader_next: %s\n", msg);
                return 1;
            }
        }
        bad += on != total || total == 0;
        /* the loader's own view of its ring (its notes say when pages had
         * to be moved), to tell a placement that failed from one that
         * moved afterwards */
        struct loader_pool_info pi;
        memset(&pi, 0, sizeof(pi));
        pi.size = sizeof(pi);
        loader_pool_info(L, g, &pi);
        for (char *c = pi.notes; *c; c++)
            if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
                *c = '\'';
        printf("%s{\"pool\":%d,\"node\":%d,\"pages_on_node\":%ld,\"pages\":%ld,\"strayed\":%zu,"
               "\"notes\":\"%s\"",
               first_pool ? "" : ",", g, nodes[g], on, total, pi.pages_strayed, pi.notes);
        if (on != total) {
            printf(",\"by_node\":[");
            for (int n = 0; n < MAXN && n < nn; n++)
                printf("%s%ld", n ? "," : "", where[n]);
            printf("],\"errors\":%ld,\"first_error\":%ld,\"loader\":{\"mbind\":%d,"
                   "\"verified\":%d,\"thp\":%d,\"page_size\":%zu,\"pages_on_node\":%zu,"
                   "\"pages\":%zu}",
                   errs, first_err, pi.mbind, pi.verified, pi.thp, pi.page_size, pi.pages_on_node,
                   pi.pages);
        }
        printf("}");
        first_pool = 0;
    }
    printf("],\"epochs\":[");
    /* epoch 0 of pool 0 lost its first batch to the size probe: skip it */
    for (int e = 1; e < 3; e++) {
        int ok = got[e] == want && cnt[e] == nrec;
        bad += !ok;
        printf("%s{\"epoch\":%d,\"records\":%llu,\"digest_ok\":%s}", e > 1 ? "," : "", e,
               (unsigned long long)cnt[e], ok ? "true" : "false");
    }
    bad += threads_seen == 0;
    printf("],\"ok\":%s}\n", bad ? "false" : "true");
    loader_destroy(L);
    free(rec);
    return bad ? 1 : 0;
}
