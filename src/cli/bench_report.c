// SPDX-License-Identifier: Apache-2.0
/* numafeed bench's report: the summary a reader wants first, each pool's
 * internals under --verbose, --digest's lines, and --json's object. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include <xxhash.h>

#include "bench.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *sorted, size_t n, double q)
{
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

/* A pool's consumer-side timing over the batches after the first: waits in
 * loader_next, intervals between batches inside epochs, and the largest gap
 * across an epoch boundary. All in nanoseconds. */
struct timing {
    size_t batches;
    uint64_t wait_p50, wait_p99, wait_max;
    uint64_t ival_median, ival_mean, ival_p99_inside, ival_max_inside, epoch_gap;
};

static int compute_timing(const struct consumer *k, uint64_t epochs, struct timing *t)
{
    size_t n = k->nsamples;
    memset(t, 0, sizeof(*t));
    if (n < 3)
        return -1;
    uint64_t *w = malloc((n - 1) * sizeof(*w)), *in = malloc((n - 1) * sizeof(*in));
    char *edge = calloc(n, 1);
    int rc = -1;
    if (!w || !in || !edge)
        goto out;
    for (size_t j = 1; j < n; j++)
        w[j - 1] = k->samples[j].wait;
    qsort(w, n - 1, sizeof(*w), cmp_u64);
    t->batches = n - 1;
    t->wait_p50 = pct(w, n - 1, 0.5);
    t->wait_p99 = pct(w, n - 1, 0.99);
    t->wait_max = w[n - 2];
    uint64_t sum = 0;
    for (uint64_t e = 1; e < epochs; e++)
        if (k->boundary[e] > 0) {
            edge[k->boundary[e]] = 1;
            uint64_t g = k->samples[k->boundary[e]].at - k->samples[k->boundary[e] - 1].at;
            t->epoch_gap = g > t->epoch_gap ? g : t->epoch_gap;
        }
    size_t m = 0;
    for (size_t j = 1; j < n; j++) {
        w[j - 1] = k->samples[j].at - k->samples[j - 1].at;
        sum += w[j - 1];
        if (!edge[j])
            in[m++] = w[j - 1];
    }
    qsort(w, n - 1, sizeof(*w), cmp_u64);
    qsort(in, m, sizeof(*in), cmp_u64);
    t->ival_median = pct(w, n - 1, 0.5);
    t->ival_mean = sum / (n - 1);
    t->ival_p99_inside = m ? pct(in, m, 0.99) : 0;
    t->ival_max_inside = m ? in[m - 1] : 0;
    rc = 0;
out:
    free(w);
    free(in);
    free(edge);
    return rc;
}

static void print_timing(int pool, const struct timing *t)
{
    printf("pool %d waits after the first batch (%zu batches): p50 %.1f us, p99 %.1f us, max "
           "%.1f us\n", pool, t->batches, (double)t->wait_p50 / 1e3, (double)t->wait_p99 / 1e3,
           (double)t->wait_max / 1e3);
    printf("pool %d intervals: median %.1f us, mean %.1f us, p99 inside epochs %.1f us, largest "
           "inside epochs %.1f us, largest epoch-boundary gap %.1f us\n", pool,
           (double)t->ival_median / 1e3, (double)t->ival_mean / 1e3,
           (double)t->ival_p99_inside / 1e3, (double)t->ival_max_inside / 1e3,
           (double)t->epoch_gap / 1e3);
}

/* Epoch e's record count, digest D and order O (the --digest line). */
static void epoch_digest(const struct consumer *cons, int n, uint64_t e, uint64_t *records,
                         uint64_t *digest, uint64_t *order)
{
    uint64_t d = 0, r = 0;
    XXH64_state_t *st = XXH64_createState();
    XXH64_reset(st, 0);
    for (int i = 0; i < n; i++) {
        d += cons[i].dsum[e];
        r += cons[i].records[e];
        for (size_t k = 0; k < cons[i].nids[e]; k++) {
            uint64_t id = cons[i].ids[e][k];
            uint8_t le[8];
            for (int j = 0; j < 8; j++)
                le[j] = (uint8_t)(id >> (8 * j));
            XXH64_update(st, le, 8);
        }
    }
    *records = r;
    *digest = d;
    *order = XXH64_digest(st);
    XXH64_freeState(st);
}

static void print_digests(const struct consumer *cons, int n, uint64_t epochs)
{
    for (uint64_t e = 0; e < epochs; e++) {
        uint64_t r, d, o;
        epoch_digest(cons, n, e, &r, &d, &o);
        printf("epoch %llu records %llu digest %016llx order %016llx\n", (unsigned long long)e,
               (unsigned long long)r, (unsigned long long)d, (unsigned long long)o);
    }
}

static void print_pool(loader_t *L, int i, double secs, const struct loader_stats *s)
{
    struct loader_pool_info pi = {.size = sizeof(pi)};
    loader_pool_info(L, i, &pi);
    printf("pool %d: %s GPU %d node %d%s cpus %s threads %u io %s ring %ux%zu B pages "
           "%zu KiB%s%s mbind %s on-node %zu/%zu%s%s | wait p50 %.1f us p99 %.1f us max "
           "%.1f us | worker stall %.3f s | blocks %llu\n",
           i, pi.cuda ? (!strcmp(pi.copy, "direct") ? "cuda(direct)"
                         : pi.registered ? "cuda(registered)" : "cuda(pinned-alloc)") : "host",
           pi.cuda_ordinal, pi.node, pi.node_known ? "" : " (unknown)", pi.cpus,
           pi.threads, pi.io_backend, pi.prefetch, pi.slot_bytes, pi.page_size >> 10,
           pi.hugetlb ? " hugetlb" : "", pi.thp ? " THP" : "", pi.mbind ? "yes" : "no",
           pi.pages_on_node, pi.pages, pi.verified ? "" : " (unverified)",
           pi.pages_strayed ? " (after moving strays)" : "",
           (double)s->wait_p50_ns / 1e3, (double)s->wait_p99_ns / 1e3,
           (double)s->wait_max_ns / 1e3, (double)s->worker_stall_ns / 1e9,
           (unsigned long long)s->blocks_decoded);
    if (pi.notes[0])
        printf("pool %d notes: %s\n", i, pi.notes);
    printf("pool %d setup: CUDA context %.1f ms, ring %.1f ms, page-lock and device ring "
           "%.1f ms\n", i, (double)pi.setup_context_us / 1e3,
           (double)pi.setup_ring_us / 1e3, (double)pi.setup_cuda_us / 1e3);
    printf("pool %d stages (worker-seconds over %.3f s x %u threads): io wait %.3f, "
           "verify+decode %.3f, copy %.3f, slot wait %.3f; %llu windows (%llu whole, "
           "the rest streamed)\n",
           i, secs, pi.threads, (double)s->io_wait_ns / 1e9, (double)s->decode_ns / 1e9,
           (double)s->copy_ns / 1e9, (double)s->worker_stall_ns / 1e9,
           (unsigned long long)s->units, (unsigned long long)s->units_windowed);
}


const char *bench_human(char *buf, size_t len, double bytes)
{
    static const char *unit[] = {"B", "kB", "MB", "GB", "TB", "PB"};
    unsigned u = 0;
    while (bytes >= 1000 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
        bytes /= 1000;
        u++;
    }
    snprintf(buf, len, u ? "%.2f %s" : "%.0f %s", bytes, unit[u]);
    return buf;
}

/* The summary a reader wants first: what ran, how fast, how long the
 * consumer waited, where each pool ran and what it could not do. */
static void print_summary(loader_t *L, const struct bench_args *a, const struct consumer *cons,
                          uint64_t bytes, uint64_t recs, double secs, double first_ms)
{
    char b1[32];
    int n = loader_gpu_count(L);
    struct loader_pool_info p0 = {.size = sizeof(p0)};
    loader_pool_info(L, 0, &p0);
    printf("numafeed bench %s: %llu epoch%s, batches of %u, %d pool%s (%s)\n", a->cfg.path,
           (unsigned long long)a->epochs, a->epochs == 1 ? "" : "s", a->cfg.batch_size, n,
           n == 1 ? "" : "s", p0.cuda ? "batches copied to the GPU" : "host batches");
    printf("  throughput  %.2f GB/s, %.0f records/s (%s in %.3f s)\n",
           (double)bytes / 1e9 / secs, (double)recs / secs, bench_human(b1, sizeof(b1), (double)bytes),
           secs);
    for (int i = 0; i < n; i++) {
        struct loader_pool_info pi = {.size = sizeof(pi)};
        struct loader_stats st = {.size = sizeof(st)};
        loader_pool_info(L, i, &pi);
        loader_stats(L, i, &st);
        char ring[32];
        bench_human(ring, sizeof(ring), (double)pi.prefetch * (double)pi.slot_bytes);
        printf("  %s %d  node %d%s, CPUs %s, %u threads, io %s; ring %u batches (%s), %zu of "
               "%zu sampled pages on the node%s; waits p50 %.1f us, p99 %.1f us\n",
               pi.cuda ? "GPU" : "host pool", pi.cuda_ordinal, pi.node,
               pi.node_known ? "" : " (unknown)", pi.cpus, pi.threads, pi.io_backend,
               pi.prefetch, ring, pi.pages_on_node, pi.pages,
               pi.cuda ? (!strcmp(pi.copy, "direct") ? ", copied direct from the page cache"
                          : pi.registered ? ", page-locked" : ", pinned allocation")
                       : "",
               (double)st.wait_p50_ns / 1e3, (double)st.wait_p99_ns / 1e3);
        if (pi.notes[0])
            printf("    notes: %s\n", pi.notes);
        if (!strcmp(pi.decode, "gpu"))
            printf("    decode gpu: %.1f us of GPU time per batch (decode, verify, gather), %s "
                   "of GPU memory\n", st.batches ? (double)st.gpu_decode_ns / 1e3 /
                                                     (double)st.batches : 0.0,
                   bench_human(ring, sizeof(ring), (double)pi.gpu_decode_bytes));
        if (cons[i].steps)
            printf("    GPU step of %llu us: %.1f us per step with the loader beside it (%llu "
                   "steps)\n", (unsigned long long)a->gpu_step_us,
                   (double)cons[i].step_total_ns / 1e3 / (double)cons[i].steps,
                   (unsigned long long)cons[i].steps);
    }
    printf("  first batch %.1f ms after loader_create was called; %.2f cores busy in this "
           "process while it ran\n", first_ms, a->cores);
}

/* The run's totals over every pool: bytes and records delivered, and the
 * first batch's time after create was called and after it returned. */
struct totals {
    uint64_t bytes, records, first, first_ready; /* UINT64_MAX: no batch */
};

static struct totals run_totals(loader_t *L, const struct consumer *cons, const struct clocks *t)
{
    struct totals r = {0, 0, UINT64_MAX, UINT64_MAX};
    for (int i = 0; i < loader_gpu_count(L); i++) {
        struct loader_stats s = {.size = sizeof(s)};
        loader_stats(L, i, &s);
        r.bytes += s.bytes;
        r.records += s.records;
        if (cons[i].first_ns && cons[i].first_ns - t->create < r.first) {
            r.first = cons[i].first_ns - t->create;
            r.first_ready = cons[i].first_ns - t->ready;
        }
    }
    return r;
}

static void print_report(loader_t *L, const struct bench_args *a, const struct consumer *cons,
                         const struct clocks *t)
{
    struct totals tot = run_totals(L, cons, t);
    uint64_t bytes = tot.bytes, recs = tot.records, first = tot.first;
    uint64_t first_ready = tot.first_ready;
    double secs = (double)(t->end - t->start) / 1e9;
    int n = loader_gpu_count(L);
    for (int i = 0; i < n && a->cfg.verbose; i++) {
        struct loader_stats s = {.size = sizeof(s)};
        loader_stats(L, i, &s);
        print_pool(L, i, secs, &s);
        /* Exact waits after the first batch (the first waits for the
         * pipeline to fill, whatever its design); batch intervals: median,
         * mean, p99 and largest inside epochs, and the largest gap across
         * an epoch boundary (last batch of one epoch to first of the next). */
        struct timing tm;
        if (!compute_timing(&cons[i], a->epochs, &tm))
            print_timing(i, &tm);
    }
    double first_ms = first == UINT64_MAX ? -1.0 : (double)first / 1e6;
    print_summary(L, a, cons, bytes, recs, secs, first_ms);
    char b1[32];
    /* one machine-readable line, last, for the scripts under bench/ */
    printf("total: %llu records, %s in %.3f s: %.3f GB/s, %.0f samples/s; create %.1f ms, "
           "first batch %.1f ms after create (%.1f ms after it returned)\n",
           (unsigned long long)recs, bench_human(b1, sizeof(b1), (double)bytes), secs,
           (double)bytes / 1e9 / secs, (double)recs / secs, (double)(t->ready - t->create) / 1e6,
           first_ms, first == UINT64_MAX ? -1.0 : (double)first_ready / 1e6);
}

/* --json: the run as one object. Numbers are plain (seconds, GB/s,
 * microseconds, milliseconds: the key says which); 64-bit digests are hex
 * strings, as in the text. */
static json_t *report_json(loader_t *L, const struct bench_args *a, const struct consumer *cons,
                           const struct clocks *t)
{
    json_t *o = json_object(), *pools = json_array(), *cmd = json_array();
    if (!o || !pools || !cmd) {
        json_decref(o);
        json_decref(pools);
        json_decref(cmd);
        return NULL;
    }
    for (int i = 0; i < a->argc; i++)
        json_array_append_new(cmd, json_string(a->argv[i]));
    char date[32];
    time_t now = time(NULL);
    struct tm tmv;
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tmv));
    double secs = (double)(t->end - t->start) / 1e9;
    struct totals tot = run_totals(L, cons, t);
    uint64_t bytes = tot.bytes, recs = tot.records, first = tot.first;
    uint64_t first_ready = tot.first_ready;
    int n = loader_gpu_count(L);
    for (int i = 0; i < n; i++) {
        struct loader_stats s = {.size = sizeof(s)};
        struct loader_pool_info pi = {.size = sizeof(pi)};
        loader_stats(L, i, &s);
        loader_pool_info(L, i, &pi);
        json_t *p = json_pack(
            "{s:i, s:s, s:s, s:i, s:b, s:s, s:i, s:s, s:i, s:I, s:I, s:b, s:b, s:b, s:I, s:I,"
            " s:b, s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:I, s:I, s:I,"
            " s:{s:f, s:f, s:f, s:f}, s:{s:f, s:f, s:f}}",
            "gpu", pi.cuda_ordinal, "mode", pi.cuda ? "cuda" : "host", "copy", pi.copy,
            "node", pi.node, "node_known", pi.node_known, "cpus", pi.cpus,
            "threads", (int)pi.threads, "io", pi.io_backend, "prefetch", (int)pi.prefetch,
            "slot_bytes", (json_int_t)pi.slot_bytes, "page_size", (json_int_t)pi.page_size,
            "hugetlb", pi.hugetlb, "thp", pi.thp, "mbind", pi.mbind,
            "pages", (json_int_t)pi.pages, "pages_on_node", (json_int_t)pi.pages_on_node,
            "registered", pi.registered, "notes", pi.notes,
            "records", (json_int_t)s.records, "bytes", (json_int_t)s.bytes,
            "wait_p50_us", (double)s.wait_p50_ns / 1e3, "wait_p99_us", (double)s.wait_p99_ns / 1e3,
            "wait_max_us", (double)s.wait_max_ns / 1e3,
            "worker_stall_s", (double)s.worker_stall_ns / 1e9,
            "blocks", (json_int_t)s.blocks_decoded, "units", (json_int_t)s.units,
            "units_windowed", (json_int_t)s.units_windowed,
            "stages_s", "io_wait", (double)s.io_wait_ns / 1e9, "decode", (double)s.decode_ns / 1e9,
            "copy", (double)s.copy_ns / 1e9, "slot_wait", (double)s.worker_stall_ns / 1e9,
            "setup_ms", "context", (double)pi.setup_context_us / 1e3,
            "ring", (double)pi.setup_ring_us / 1e3, "cuda", (double)pi.setup_cuda_us / 1e3);
        if (p && !pi.cuda)
            json_object_set_new(p, "gpu", json_null()); /* a host pool serves no GPU */
        struct timing tm;
        if (p && !compute_timing(&cons[i], a->epochs, &tm))
            json_object_set_new(p, "after_first", json_pack(
                "{s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "batches",
                (json_int_t)tm.batches, "wait_p50_us", (double)tm.wait_p50 / 1e3,
                "wait_p99_us", (double)tm.wait_p99 / 1e3, "wait_max_us", (double)tm.wait_max / 1e3,
                "interval_median_us", (double)tm.ival_median / 1e3,
                "interval_mean_us", (double)tm.ival_mean / 1e3,
                "interval_p99_inside_us", (double)tm.ival_p99_inside / 1e3,
                "interval_max_inside_us", (double)tm.ival_max_inside / 1e3,
                "epoch_gap_us", (double)tm.epoch_gap / 1e3));
        json_array_append_new(pools, p ? p : json_null());
    }
    json_object_set_new(o, "command", cmd);
    json_object_set_new(o, "date", json_string(date));
    json_object_set_new(o, "path", json_string(a->cfg.path));
    json_object_set_new(o, "epochs", json_integer((json_int_t)a->epochs));
    json_object_set_new(o, "batch_size", json_integer(a->cfg.batch_size));
    json_object_set_new(o, "records", json_integer((json_int_t)recs));
    json_object_set_new(o, "bytes", json_integer((json_int_t)bytes));
    json_object_set_new(o, "seconds", json_real(secs));
    json_object_set_new(o, "gbps", json_real((double)bytes / 1e9 / secs));
    json_object_set_new(o, "records_per_s", json_real((double)recs / secs));
    json_object_set_new(o, "create_ms", json_real((double)(t->ready - t->create) / 1e6));
    json_object_set_new(o, "first_batch_ms",
                        first == UINT64_MAX ? json_null() : json_real((double)first / 1e6));
    json_object_set_new(o, "first_batch_after_create_ms",
                        first == UINT64_MAX ? json_null() : json_real((double)first_ready / 1e6));
    json_object_set_new(o, "cores_busy", json_real(a->cores));
    json_object_set_new(o, "cuda_context_before_ms",
                        a->cuda_ctx ? json_real(a->ctx_ms) : json_null());
    json_object_set_new(o, "pools", pools);
    if (a->digest) {
        json_t *ds = json_array();
        for (uint64_t e = 0; ds && e < a->epochs; e++) {
            uint64_t r, d, ord;
            char dh[17], oh[17];
            epoch_digest(cons, n, e, &r, &d, &ord);
            snprintf(dh, sizeof(dh), "%016llx", (unsigned long long)d);
            snprintf(oh, sizeof(oh), "%016llx", (unsigned long long)ord);
            json_array_append_new(ds, json_pack("{s:I, s:I, s:s, s:s}", "epoch", (json_int_t)e,
                                                "records", (json_int_t)r, "digest", dh,
                                                "order", oh));
        }
        json_object_set_new(o, "digests", ds ? ds : json_null());
    }
    return o;
}

static int write_json(const struct bench_args *a, json_t *o)
{
    int rc = -1;
    if (!o)
        fprintf(stderr, "numafeed bench: --json: out of memory\n");
    else if (!strcmp(a->json, "-"))
        rc = json_dumpf(o, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(6)) || puts("") < 0;
    else if (json_dump_file(o, a->json, JSON_INDENT(1) | JSON_REAL_PRECISION(6)))
        fprintf(stderr, "numafeed bench: --json: cannot write %s: %s\n", a->json,
                strerror(errno));
    else
        rc = 0;
    json_decref(o);
    return rc;
}

int bench_report(loader_t *L, const struct bench_args *a, const struct consumer *cons,
                 const struct clocks *t)
{
    int n = loader_gpu_count(L);
    int text = !a->json || strcmp(a->json, "-");
    if (a->digest && text)
        print_digests(cons, n, a->epochs);
    if (text)
        print_report(L, a, cons, t);
    return a->json ? write_json(a, report_json(L, a, cons, t)) : 0;
}
