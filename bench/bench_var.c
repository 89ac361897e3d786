// SPDX-License-Identifier: Apache-2.0
/*
 * Variable-length records against fixed ones of the same total bytes: the
 * same token stream packed twice, once as records of exactly 2048 int32
 * tokens (format version 1) and once as documents of 1024 to 3072 tokens
 * (mean 2048, version 2, one variable int32 field), read through the
 * loader with the same configuration for E epochs each (timed from the
 * first batch to the last copy), the two alternating round by round. A
 * timed run should last a second or more: at 50 GB/s, 5 epochs of 1 GiB
 * took 0.1 s, and rounds of the same configuration differed by 20%.
 * What the variable path adds is the lengths table, each batch's offsets
 * and one copy per record per variable field; the target is >= 0.9x.
 *
 *   bench_var [--mib N] [--reps R] [--epochs E] [--threads T] [--batch B]
 *             [--codec zstd|none]
 *             [--device cpu|cuda] [--dir DIR] [--reuse 1] [--reread 0]
 *             [--json FILE]
 *
 * One machine-readable line per round (the means of its two runs of each)
 * and a summary (the medians of the rounds' GB/s, and of their ratios):
 *   bench=var round=R fixed_gbps=F var_gbps=V ratio=V/F
 * and with --json the same as one JSON object.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "bench_common.h"
#include "numafeed.h"

enum { TOK = 2048, MAX_REPS = 64 };

static size_t mib = 256;
static int reps = 5, n_epochs = 5, device = LOADER_DEVICE_CPU, codec = NUMAFEED_CODEC_ZSTD;
static unsigned threads = 2, batch = 64;
static int reuse; /* --reuse 1: keep datasets packed by an earlier run (profiling) */
static int reread = 1; /* --reread 0: leave the page cache as it is (nfb_reread) */
static const char *json_out; /* --json FILE */

static void die(const char *what)
{
    fprintf(stderr, "bench_var: %s: %s\n", what, numafeed_last_error());
    exit(1);
}

static loader_t *open_loader(const char *path, int epochs)
{
    struct loader_config c;
    loader_config_init(&c);
    c.path = path;
    c.batch_size = batch;
    c.threads = threads;
    c.world_size = 1;
    c.device = device;
    c.epochs = (uint64_t)epochs; /* nothing past the last epoch is read */
    loader_t *L;
    if (loader_create(&c, &L))
        die(path);
    return L;
}

/* A fresh loader over path for `epochs` epochs: GB/s of record bytes
 * delivered after the first batch, from its arrival until the last copy
 * has landed (a loader kept across rounds would start each timed epoch
 * with a ring it filled meanwhile; create, which differs by layout, and
 * the first batch, which waits for the pipeline to fill, are not timed). */
static double run_gbps(const char *path, int epochs)
{
    loader_t *L = open_loader(path, epochs);
    struct loader_batch b = LOADER_BATCH_INIT;
    uint64_t bytes = 0;
    double t0 = 0;
    for (int e = 0; e < epochs; e++) {
        int rc;
        while ((rc = loader_next_on_stream(L, 0, &b, -1, NULL)) == 0) {
            if (t0 == 0)
                t0 = nfb_now();
            else
                for (unsigned f = 0; f < b.nfields; f++)
                    bytes += b.fields[f].values_bytes;
            loader_release(L, &b);
        }
        if (rc != NUMAFEED_EEPOCH_END)
            die("loader_next");
    }
    loader_sync(L, 0);
    double gbps = (double)bytes / (nfb_now() - t0) / 1e9;
    loader_destroy(L);
    return gbps;
}

static void args(int argc, char **argv, const char **dir)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--mib"))
            mib = (size_t)atol(v);
        else if (!strcmp(k, "--reps"))
            reps = atoi(v);
        else if (!strcmp(k, "--epochs"))
            n_epochs = atoi(v);
        else if (!strcmp(k, "--threads"))
            threads = (unsigned)atoi(v);
        else if (!strcmp(k, "--batch"))
            batch = (unsigned)atoi(v);
        else if (!strcmp(k, "--codec"))
            codec = strcmp(v, "none") ? NUMAFEED_CODEC_ZSTD : NUMAFEED_CODEC_NONE;
        else if (!strcmp(k, "--device"))
            device = strcmp(v, "cuda") ? LOADER_DEVICE_CPU : LOADER_DEVICE_CUDA;
        else if (!strcmp(k, "--dir"))
            *dir = v;
        else if (!strcmp(k, "--reuse"))
            reuse = atoi(v);
        else if (!strcmp(k, "--reread"))
            reread = atoi(v);
        else if (!strcmp(k, "--json"))
            json_out = v;
        else {
            fprintf(stderr, "bench_var: unknown option %s\n", k);
            exit(2);
        }
    }
    if (reps < 1 || reps > MAX_REPS || n_epochs < 1 || !mib || !threads || !batch) {
        fprintf(stderr, "bench_var: bad --reps (1 to %d), --epochs, --mib, --threads or --batch\n",
                MAX_REPS);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    const char *dir = "/tmp";
    args(argc, argv, &dir);
    size_t n = mib * (1u << 20) / 4 / TOK * TOK; /* whole fixed records */
    char fixed[4096], var[4096], machine[256];
    snprintf(fixed, sizeof(fixed), "%s/nf-bench-var-fixed", dir);
    snprintf(var, sizeof(var), "%s/nf-bench-var-var", dir);
    if (!reuse) {
        int32_t *tok = malloc(n * sizeof(*tok));
        if (!tok)
            die("out of memory");
        nfb_tokens(tok, n, 1);
        if (nfb_pack_tokens(fixed, tok, n, TOK, codec, 0) ||
            nfb_pack_tokens(var, tok, n, 0, codec, 0))
            exit(1);
        free(tok);
    }
    if (reread && (nfb_reread(fixed) || nfb_reread(var))) /* cached alike */
        exit(1);
    run_gbps(fixed, 1); /* warm: the loader's first touches */
    run_gbps(var, 1);
    double f[MAX_REPS], v[MAX_REPS], q[MAX_REPS];
    for (int r = 0; r < reps; r++) {
        /* fixed, var, var, fixed: a drift of the machine's speed across the
         * round, or speeds that alternate from run to run (the VM's did),
         * weigh on both alike */
        double f1 = run_gbps(fixed, n_epochs), v1 = run_gbps(var, n_epochs);
        double v2 = run_gbps(var, n_epochs), f2 = run_gbps(fixed, n_epochs);
        f[r] = (f1 + f2) / 2;
        v[r] = (v1 + v2) / 2;
        q[r] = v[r] / f[r];
        printf("bench=var round=%d fixed_gbps=%.3f var_gbps=%.3f ratio=%.3f\n", r, f[r], v[r],
               q[r]);
    }
    nfb_machine(machine, sizeof(machine));
    /* the ratio: the median of each round's own (the runs of a round are next
     * to each other, so the machine's drift between rounds cancels) */
    double mf = nfb_median(f, (size_t)reps), mv = nfb_median(v, (size_t)reps);
    double mq = nfb_median(q, (size_t)reps);
    printf("bench=var summary machine=\"%s\" mib=%zu epochs=%d threads=%u batch=%u codec=%s "
           "device=%s reread=%d fixed_gbps=%.3f var_gbps=%.3f ratio=%.3f\n", machine, mib, n_epochs,
           threads, batch, codec == NUMAFEED_CODEC_ZSTD ? "zstd" : "none",
           device == LOADER_DEVICE_CUDA ? "cuda" : "cpu", reread, mf, mv, mq);
    if (json_out) {
        json_t *rounds = json_array();
        for (int r = 0; r < reps; r++)
            json_array_append_new(rounds, json_pack("{s:f, s:f, s:f}", "fixed_gbps", f[r],
                                                    "var_gbps", v[r], "ratio", q[r]));
        json_t *o = json_pack("{s:s, s:I, s:i, s:i, s:i, s:s, s:s, s:b, s:f, s:f, s:f, s:o}",
                              "machine", machine, "mib", (json_int_t)mib, "epochs", n_epochs,
                              "threads",
                              (int)threads, "batch", (int)batch, "codec",
                              codec == NUMAFEED_CODEC_ZSTD ? "zstd" : "none", "device",
                              device == LOADER_DEVICE_CUDA ? "cuda" : "cpu", "reread",
                              reread, "fixed_gbps", mf,
                              "var_gbps", mv, "ratio", mq, "rounds", rounds);
        if (!o || json_dump_file(o, json_out, JSON_INDENT(1))) {
            fprintf(stderr, "bench_var: cannot write %s\n", json_out);
            return 1;
        }
        json_decref(o);
    }
    return 0;
}
