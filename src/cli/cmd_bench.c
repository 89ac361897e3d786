// SPDX-License-Identifier: Apache-2.0
/* numafeed bench: run the loader over a dataset and report what it delivered:
 * throughput, consumer waits, placement, and with --digest proof of
 * exactly-once delivery and of the order. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "bench.h"

static void help(void)
{
    printf(
        "Usage: numafeed bench DIR [--device auto|cpu|cuda] [--gpus LIST] [--epochs E]\n"
        "                      [--batch-size B] [--threads T] [--prefetch D] [--seed S]\n"
        "                      [--no-shuffle] [--shuffle-window N] [--drop-last]\n"
        "                      [--rank R --world-size W] [--io BACKEND] [--digest]\n"
        "                      [--copy MODE] [--decode WHERE] [--max-gpu-decode-bytes N]\n"
        "                      [--max-ring-bytes N] [--pin-memory] [--follow-symlinks]\n"
        "                      [--step-us N] [--gpu-step-us N] [--cuda-context] [--json FILE]\n"
        "                      [--verbose]\n"
        "\n"
        "Load the dataset DIR (made by 'numafeed pack') through numafeed's pools for E\n"
        "epochs, releasing each batch as soon as it arrives, and report per run:\n"
        "throughput (GB/s of record bytes and samples/s), the time to the first batch\n"
        "after the loader was created and where loader_create's time went, the\n"
        "consumer's wait inside loader_next (p50, p99, max; also exactly, over the\n"
        "batches after the first, which no pipeline can have ready in advance), the\n"
        "intervals between batches and across epoch boundaries, and per pool the node,\n"
        "CPUs, threads and where its ring's pages are.\n"
        "With several GPUs, one consumer thread per GPU.\n"
        "\n"
        "Options:\n"
        "      --device DEVICE   where batches are delivered: auto (default: copied to\n"
        "                        each GPU when the CUDA runtime, a driver and the GPU\n"
        "                        are there, host memory otherwise), cpu (host batches\n"
        "                        even where a GPU could take them) or cuda (fail unless\n"
        "                        every pool copies to its GPU).\n"
        "      --gpus LIST       CUDA ordinals to serve, a cpulist-style list (0,2-3);\n"
        "                        default: every visible GPU, or one host pool.\n"
        "  -e, --epochs E        epochs to run, 1 to 1000000 (default 1).\n"
        "  -b, --batch-size B    records per batch (default 64).\n"
        "  -t, --threads T       worker threads per pool (default min(4, pool CPUs)).\n"
        "      --prefetch D      batch slots per pool, the batches built ahead of the\n"
        "                        consumer (default: the batches of threads + 2 shuffle\n"
        "                        windows, at least 4, at most two epochs' batches, 4096\n"
        "                        slots and 512 MiB). Given: 2 to 4294967295, within\n"
        "                        --max-ring-bytes.\n"
        "      --seed S          shuffle seed (default 0).\n"
        "      --no-shuffle      deliver records in dataset order.\n"
        "      --shuffle-window N\n"
        "                        records mixed together by the within-window shuffle,\n"
        "                        1 to 16777216 (default: 16 blocks' worth, at most\n"
        "                        65536). Larger windows mix more blocks into each batch\n"
        "                        (docs/loader.md) for about 40 bytes per record per\n"
        "                        worker.\n"
        "      --copy MODE       how batches reach the GPU: auto (default: direct where\n"
        "                        it applies, else staged), staged (the pool's cores copy\n"
        "                        every record into its node-local slot, then one copy\n"
        "                        per batch to the GPU; with --decode gpu, the stored\n"
        "                        blocks into node-local staging) or direct (the GPU\n"
        "                        copies from the page-locked page cache: raw records of\n"
        "                        mapped, raw, fixed-field datasets, or with --decode gpu\n"
        "                        the stored blocks of any mapped dataset;\n"
        "                        docs/loader.md).\n"
        "      --decode WHERE    where zstd blocks are decoded: auto (default: the pool's\n"
        "                        cores; gpu must be asked for; the pool's notes say\n"
        "                        whether it would apply), cpu, or gpu\n"
        "                        (nvCOMP decodes on the GPU, every block verified there,\n"
        "                        records gathered into the batch on the GPU; an error\n"
        "                        saying why where it cannot: docs/loader.md).\n"
        "      --max-gpu-decode-bytes N\n"
        "                        the most GPU memory one pool's GPU decode may take\n"
        "                        (default 2G).\n"
        "      --max-ring-bytes N\n"
        "                        the most memory one pool's ring of batch slots may take\n"
        "                        (default 4G); a batch that does not fit twice is an\n"
        "                        error.\n"
        "      --pin-memory      host batches (--device cpu): register each pool's ring\n"
        "                        with CUDA, so a copy of a batch to a GPU is DMA from\n"
        "                        page-locked memory; without a usable GPU the ring stays\n"
        "                        unregistered and the pool's notes say why.\n"
        "      --follow-symlinks let symbolic links in DIR lead outside it (refused by\n"
        "                        default: docs/security.md).\n"
        "      --drop-last       drop each part's short last batch.\n"
        "      --rank R, --world-size W\n"
        "                        this process's part of W (default: $RANK/$WORLD_SIZE,\n"
        "                        else 0 of 1).\n"
        "      --io BACKEND      how shards are read: auto (the default: mmap when the\n"
        "                        dataset is in the page cache, else io_uring, pread where\n"
        "                        io_uring is refused), io_uring, pread or mmap.\n"
        "                        mmap verifies and copies blocks in place in a read-only\n"
        "                        mapping: fastest for page-cache-resident data, which\n"
        "                        auto picks it for; a shard truncated meanwhile is an\n"
        "                        error naming it, not a signal.\n"
        "      --sysfs-root DIR  read DIR instead of /sys.\n"
        "      --digest          print one line per epoch (batches without a host copy,\n"
        "                        decode gpu's and copy direct's, are copied back from\n"
        "                        the GPU for it):\n"
        "                          epoch E records R digest D order O\n"
        "                        D: sum mod 2^64 of XXH64(record, seed 0) over the\n"
        "                        records delivered that epoch (independent of order),\n"
        "                        where a record is its bytes when every field is fixed,\n"
        "                        and with variable fields every field in order as its\n"
        "                        byte length (little-endian uint64) then its bytes;\n"
        "                        O: XXH64 (seed 0) of their dataset record indices as\n"
        "                        little-endian uint64, in delivery order (GPU by GPU).\n"
        "                        D and O in hex. Costs a hash of every byte.\n"
        "      --step-us N       after each batch, spin N microseconds, as a training step\n"
        "                        would take (default 0); with a step longer than a batch\n"
        "                        takes to build, the waits show a pipeline that is ahead.\n"
        "      --gpu-step-us N   after each batch, a training step on its GPU: a kernel\n"
        "                        keeping every SM busy for N microseconds on the default\n"
        "                        stream (which also waits for the batch), released on\n"
        "                        that stream, and waited for; prints the step time. Shows\n"
        "                        what the loader's GPU work (decode gpu) costs a step.\n"
        "      --cuda-context    create each served GPU's CUDA context before the clock\n"
        "                        starts, as torch has done before a training job builds\n"
        "                        its loader; without it, create includes the context.\n"
        "      --json FILE       also write the results as one JSON object to FILE ('-':\n"
        "                        standard output, instead of the text): the command,\n"
        "                        date, configuration, throughput, waits, intervals,\n"
        "                        stages, digests and every pool's placement and notes\n"
        "                        (the scripts under bench/ read it).\n"
        "  -v, --verbose         print each pool's placement as it starts, then each\n"
        "                        pool's internals before the summary.\n"
        "  -h, --help            show this help.\n"
        "\n"
        "Sizes are bytes, or a number followed by K, M or G (powers of 1024; KiB,\n"
        "MiB, GiB are accepted too), as for numafeed pack.\n"
        "\n"
        "Deprecated spellings, accepted for one more release:\n"
        "      --ring-depth D    the same as --prefetch D.\n"
        "      --host            the same as --device cpu.\n"
        "\n"
        "Exit status: 0 success, 1 the loader failed (the message names the shard and\n"
        "offset), 2 usage error.\n"
        "\n"
        "Example:\n"
        "  numafeed bench data/tokens --epochs 3 --batch-size 64 --digest\n");
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Adds to *sum the XXH64 (seed 0) of each record of a batch, reassembled
 * from its fields (field-major slot): the record's bytes when every field
 * is fixed; with a variable field, every field in order as its byte length
 * (little-endian uint64) then its bytes (docs/format.md). The layout is
 * read and the hash state made once per batch, not per record. 0 or
 * -ENOMEM. */
static int batch_digest(const struct loader_batch *b, const uint8_t *const *vals, uint64_t *sum)
{
    int var = 0;
    size_t elem[LOADER_MAX_FIELDS];
    for (unsigned f = 0; f < b->nfields; f++) {
        var |= b->fields[f].kind != LOADER_FIELD_FIXED;
        elem[f] = numafeed_dtype_size(b->fields[f].dtype);
    }
    XXH64_state_t *st = XXH64_createState();
    if (!st)
        return -ENOMEM;
    for (uint32_t i = 0; i < b->records; i++) {
        XXH64_reset(st, 0);
        for (unsigned f = 0; f < b->nfields; f++) {
            const struct loader_field *fd = &b->fields[f];
            const uint8_t *p = vals[f] + (size_t)i * fd->record_bytes;
            uint64_t n = fd->record_bytes;
            if (fd->kind != LOADER_FIELD_FIXED) {
                p = vals[f] + (size_t)fd->offsets[i] * elem[f];
                n = (uint64_t)(fd->offsets[i + 1] - fd->offsets[i]) * elem[f];
            }
            if (var) {
                uint8_t len[8];
                for (int k = 0; k < 8; k++)
                    len[k] = (uint8_t)(n >> (8 * k));
                XXH64_update(st, len, sizeof(len));
            }
            XXH64_update(st, p, (size_t)n);
        }
        *sum += XXH64_digest(st);
    }
    XXH64_freeState(st);
    return 0;
}

/* Each field's values on the host: the slot's, or a copy from the GPU
 * where the batch has none (decode gpu, copy direct). 0 or the loader's
 * error. */
static int host_values(struct consumer *c, const struct loader_batch *b, const uint8_t **vals)
{
    for (unsigned f = 0; f < b->nfields; f++) {
        const struct loader_field *fd = &b->fields[f];
        if (fd->host) {
            vals[f] = fd->host;
            continue;
        }
        size_t n = (size_t)fd->values_bytes;
        if (n > c->back_cap[f]) {
            uint8_t *m = realloc(c->back[f], n);
            if (!m)
                return -ENOMEM;
            c->back[f] = m;
            c->back_cap[f] = n;
        }
        int rc = loader_field_to_host(c->L, b, f, c->back[f], n);
        if (rc)
            return rc;
        vals[f] = c->back[f];
    }
    return 0;
}

/* --digest: the batch's records added to epoch e's digest, their ids kept
 * in delivery order for its order hash. 0, or an error in c->rc and
 * c->msg. */
static int digest_batch(struct consumer *c, uint64_t e, const struct loader_batch *b)
{
    if (c->nids[e] + b->records > c->capids[e]) {
        size_t cap = (c->capids[e] + b->records) * 2;
        uint64_t *n = realloc(c->ids[e], cap * sizeof(*n));
        if (!n)
            goto nomem;
        c->ids[e] = n;
        c->capids[e] = cap;
    }
    const uint8_t *vals[LOADER_MAX_FIELDS];
    if ((c->rc = host_values(c, b, vals))) {
        loader_last_error(c->L, c->msg, sizeof(c->msg));
        return c->rc;
    }
    if (batch_digest(b, vals, &c->dsum[e]))
        goto nomem;
    memcpy(c->ids[e] + c->nids[e], b->record_ids, b->records * sizeof(uint64_t));
    c->nids[e] += b->records;
    return 0;
nomem:
    snprintf(c->msg, sizeof(c->msg), "out of memory");
    return c->rc = -ENOMEM;
}

/* --gpu-step-us: the step on the default stream, after the batch; the
 * batch is released on that stream, then the host waits for the step. */
static int gpu_step(struct consumer *c, struct loader_batch *b)
{
    uint64_t t0 = now_ns();
    int rc = numafeed_cuda_spin(c->ordinal, c->gpu_step_ns, NULL, 0);
    if (!rc)
        rc = loader_release_on_stream(c->L, b, NULL);
    if (!rc)
        rc = numafeed_cuda_spin(c->ordinal, 0, NULL, 1);
    c->steps++;
    c->step_total_ns += now_ns() - t0;
    return rc;
}

static void *consume(void *arg)
{
    struct consumer *c = arg;
    for (uint64_t e = 0; e < c->epochs; e++) {
        for (;;) {
            struct loader_batch b = LOADER_BATCH_INIT;
            uint64_t tw = now_ns();
            /* on the CUDA path, the legacy default stream waits for each copy */
            int rc = loader_next_on_stream(c->L, c->gpu, &b, -1, NULL);
            if (rc == NUMAFEED_EEPOCH_END)
                break;
            if (rc) {
                c->rc = rc;
                loader_last_error(c->L, c->msg, sizeof(c->msg));
                return NULL;
            }
            uint64_t t = now_ns();
            if (!c->first_ns)
                c->first_ns = t;
            if (c->nsamples == c->capsamples) {
                size_t cap = c->capsamples ? c->capsamples * 2 : 1024;
                struct sample *n = realloc(c->samples, cap * sizeof(*n));
                if (n) {
                    c->samples = n;
                    c->capsamples = cap;
                }
            }
            if (c->nsamples < c->capsamples) {
                if (b.index == 0)
                    c->boundary[e] = c->nsamples;
                c->samples[c->nsamples++] = (struct sample){.at = t, .wait = t - tw};
            }
            c->records[e] += b.records;
            if (c->digest && digest_batch(c, e, &b))
                return NULL;
            if (c->gpu_step_ns) {
                if ((rc = gpu_step(c, &b))) {
                    c->rc = rc;
                    snprintf(c->msg, sizeof(c->msg), "--gpu-step-us: %s", numafeed_last_error());
                    return NULL;
                }
                continue;
            }
            loader_release_on_stream(c->L, &b, NULL);
            if (c->step_ns) { /* a training step that takes this long */
                uint64_t until = now_ns() + c->step_ns;
                while (now_ns() < until)
                    ;
            }
        }
    }
    return NULL;
}

/* A deprecated spelling still works, with a note naming its replacement. */
static void deprecated(const char *old, const char *now)
{
    fprintf(stderr, "numafeed bench: %s is deprecated; use %s\n", old, now);
}

#define EPOCHS_MAX 1000000u

/* A numeric option into *a: NULL, or the option's name when the value is bad. */
static const char *parse_value(struct bench_args *a, int c, const char *arg)
{
    uint64_t v;
    struct loader_config *cfg = &a->cfg;
    switch (c) {
    case 'e':
        /* a million epochs of per-epoch counters are a few tens of MB */
        return cli_parse_u64(arg, &a->epochs) || a->epochs == 0 || a->epochs > EPOCHS_MAX
                   ? "--epochs (1 to 1000000)" : NULL;
    case 'b':
        if (cli_parse_u64(arg, &v) || v == 0 || v > UINT32_MAX)
            return "--batch-size";
        cfg->batch_size = (uint32_t)v;
        return NULL;
    case 't':
        if (cli_parse_u64(arg, &v) || v == 0 || v > 256)
            return "--threads";
        cfg->threads = (uint32_t)v;
        return NULL;
    case 'p':
        if (cli_parse_u64(arg, &v) || v < 2 || v > UINT32_MAX)
            return "--prefetch";
        cfg->prefetch = (uint32_t)v;
        return NULL;
    case 'w':
        return cli_parse_u64(arg, &cfg->shuffle_window) || !cfg->shuffle_window ||
                       cfg->shuffle_window > LOADER_MAX_SHUFFLE_WINDOW
                   ? "--shuffle-window (1 to 16777216)" : NULL;
    case 'm':
        return cli_parse_size(arg, &cfg->max_ring_bytes) ? "--max-ring-bytes" : NULL;
    case 's': return cli_parse_u64(arg, &cfg->seed) ? "--seed" : NULL;
    case 'r':
        if (cli_parse_u64(arg, &v) || v > UINT32_MAX)
            return "--rank";
        cfg->rank = (uint32_t)v;
        return NULL;
    case 'W':
        if (cli_parse_u64(arg, &v) || v == 0 || v > UINT32_MAX)
            return "--world-size";
        cfg->world_size = (uint32_t)v;
        return NULL;
    case 'u': return cli_parse_u64(arg, &a->step_us) || a->step_us > 10000000 ? "--step-us" : NULL;
    case 'G':
        return cli_parse_u64(arg, &a->gpu_step_us) || a->gpu_step_us > 10000000 ? "--gpu-step-us"
                                                                           : NULL;
    case 'M':
        return cli_parse_size(arg, &cfg->max_gpu_decode_bytes) ? "--max-gpu-decode-bytes" : NULL;
    default: return "?";
    }
}

/* --device, --copy, --decode or --io: NULL, or the option's name when the
 * value is none of its words. */
static const char *parse_choice(struct bench_args *a, int c, const char *arg)
{
    /* each list in its enum's order: the index is the value */
    static const char *const devices[] = {"auto", "cpu", "cuda"};
    static const char *const copies[] = {"auto", "staged", "direct"};
    static const char *const decodes[] = {"auto", "cpu", "gpu"};
    static const struct { const char *name; int io; } ios[] = {
        {"auto", LOADER_IO_AUTO}, {"io_uring", LOADER_IO_URING},
        {"pread", LOADER_IO_PREAD}, {"mmap", LOADER_IO_MMAP},
    };
    if (c == 'd' || c == 'c' || c == 'D') {
        const char *const *words = c == 'd' ? devices : c == 'c' ? copies : decodes;
        int *out = c == 'd' ? &a->cfg.device : c == 'c' ? &a->cfg.copy : &a->cfg.decode;
        for (int i = 0; i < 3; i++) {
            if (!strcmp(arg, words[i])) {
                *out = i;
                return NULL;
            }
        }
        return c == 'd' ? "--device" : c == 'c' ? "--copy" : "--decode";
    }
    for (size_t i = 0; i < sizeof(ios) / sizeof(ios[0]); i++) {
        if (!strcmp(arg, ios[i].name)) {
            a->cfg.io = ios[i].io;
            return NULL;
        }
    }
    return "--io";
}

/* -1: go on; otherwise the exit status (after --help or a usage error). */
static int parse_args(int argc, char **argv, struct bench_args *a)
{
    enum { O_HOST = 256, O_GPUS, O_RING, O_NOSHUF, O_DROP, O_SYSFS, O_DIGEST, O_CTX, O_FOLLOW,
           O_JSON, O_PIN };
    static const struct option opts[] = {
        {"device", required_argument, NULL, 'd'}, {"gpus", required_argument, NULL, O_GPUS},
        {"epochs", required_argument, NULL, 'e'}, {"batch-size", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'}, {"prefetch", required_argument, NULL, 'p'},
        {"seed", required_argument, NULL, 's'}, {"no-shuffle", no_argument, NULL, O_NOSHUF},
        {"shuffle-window", required_argument, NULL, 'w'},
        {"max-ring-bytes", required_argument, NULL, 'm'},
        {"copy", required_argument, NULL, 'c'}, {"decode", required_argument, NULL, 'D'},
        {"max-gpu-decode-bytes", required_argument, NULL, 'M'},
        {"gpu-step-us", required_argument, NULL, 'G'},
        {"follow-symlinks", no_argument, NULL, O_FOLLOW}, {"pin-memory", no_argument, NULL, O_PIN},
        {"drop-last", no_argument, NULL, O_DROP}, {"rank", required_argument, NULL, 'r'},
        {"world-size", required_argument, NULL, 'W'}, {"io", required_argument, NULL, 'i'},
        {"sysfs-root", required_argument, NULL, O_SYSFS},
        {"digest", no_argument, NULL, O_DIGEST}, {"step-us", required_argument, NULL, 'u'},
        {"cuda-context", no_argument, NULL, O_CTX}, {"verbose", no_argument, NULL, 'v'},
        {"json", required_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        {"ring-depth", required_argument, NULL, O_RING}, {"host", no_argument, NULL, O_HOST},
        {NULL, 0, NULL, 0},
    };
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "e:b:t:vh", opts, NULL)) != -1) {
        const char *bad = NULL;
        switch (c) {
        case O_HOST:
            deprecated("--host", "--device cpu");
            a->cfg.device = LOADER_DEVICE_CPU;
            break;
        case O_RING:
            deprecated("--ring-depth", "--prefetch");
            bad = parse_value(a, 'p', optarg);
            break;
        case O_GPUS: {
            int n = numafeed_cpulist_ids(optarg, a->gpus, LOADER_MAX_GPUS);
            if (n <= 0)
                return cli_usage("bench", "--gpus '%s': %s", optarg,
                                 n == 0 ? "empty list" : numafeed_last_error());
            if (n > LOADER_MAX_GPUS)
                return cli_usage("bench", "--gpus: more than %d GPUs", LOADER_MAX_GPUS);
            a->cfg.gpus = a->gpus;
            a->cfg.ngpus = n;
            break;
        }
        case 'd': case 'i': case 'c': case 'D': bad = parse_choice(a, c, optarg); break;
        case O_NOSHUF: a->cfg.shuffle = 0; break;
        case O_DROP: a->cfg.drop_last = 1; break;
        case O_SYSFS: a->cfg.sysfs_root = optarg; break;
        case O_DIGEST: a->digest = 1; break;
        case O_CTX: a->cuda_ctx = 1; break;
        case O_FOLLOW: a->cfg.follow_symlinks = 1; break;
        case O_PIN: a->cfg.pin_memory = 1; break;
        case O_JSON:
            if (!optarg[0])
                return cli_usage("bench", "--json: empty file name");
            a->json = optarg;
            break;
        case 'v': a->cfg.verbose = 1; break;
        case 'h': help(); return CLI_EXIT_OK;
        case 'e': case 'b': case 't': case 'p': case 'w': case 'm': case 's': case 'r': case 'W':
        case 'u': case 'G': case 'M':
            bad = parse_value(a, c, optarg);
            break;
        default:
            return cli_usage("bench", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
        if (bad)
            return cli_usage("bench", "%s: invalid value '%s'", bad, optarg);
    }
    if (optind + 1 != argc)
        return cli_usage("bench", optind == argc ? "missing the dataset directory"
                                                 : "more than one dataset directory");
    if (a->cfg.rank && !a->cfg.world_size)
        return cli_usage("bench", "--rank needs --world-size");
    a->cfg.path = argv[optind];
    a->argc = argc;
    a->argv = argv;
    return -1;
}

/* What a training job's process already has when it builds the loader. */
static void make_contexts(struct bench_args *a)
{
    int text = !a->json || strcmp(a->json, "-"); /* --json -: stdout is the JSON's */
    int nd = a->cfg.ngpus ? a->cfg.ngpus : numafeed_cuda_device_count();
    for (int i = 0; i < nd; i++) {
        int gpu = a->cfg.ngpus ? a->cfg.gpus[i] : i;
        uint64_t t = now_ns();
        if (numafeed_cuda_init_context(gpu)) {
            fprintf(stderr, "numafeed bench: --cuda-context: %s; create is timed without it\n",
                    numafeed_last_error());
            break;
        }
        double ms = (double)(now_ns() - t) / 1e6;
        a->ctx_ms += ms;
        if (text)
            printf("CUDA context of GPU %d created before the clock in %.1f ms\n", gpu, ms);
    }
    if (nd < 0)
        fprintf(stderr, "numafeed bench: --cuda-context: %s\n", numafeed_last_error());
}

static void consumers_free(struct consumer *cons, int n)
{
    for (int i = 0; cons && i < n; i++) {
        for (uint64_t e = 0; cons[i].ids && e < cons[i].epochs; e++)
            free(cons[i].ids[e]);
        free(cons[i].ids);
        free(cons[i].dsum);
        free(cons[i].records);
        free(cons[i].nids);
        free(cons[i].capids);
        free(cons[i].boundary);
        free(cons[i].samples);
        for (unsigned f = 0; f < LOADER_MAX_FIELDS; f++)
            free(cons[i].back[f]);
    }
    free(cons);
}

static struct consumer *consumers_alloc(loader_t *L, int n, const struct bench_args *a)
{
    struct consumer *cons = calloc((size_t)n, sizeof(*cons));
    int ok = cons != NULL;
    for (int i = 0; ok && i < n; i++) {
        struct consumer *k = &cons[i];
        k->L = L;
        k->gpu = i;
        k->epochs = a->epochs;
        k->digest = a->digest;
        k->dsum = calloc(a->epochs, sizeof(uint64_t));
        k->records = calloc(a->epochs, sizeof(uint64_t));
        k->ids = calloc(a->epochs, sizeof(uint64_t *));
        k->nids = calloc(a->epochs, sizeof(size_t));
        k->capids = calloc(a->epochs, sizeof(size_t));
        k->boundary = calloc(a->epochs, sizeof(uint64_t));
        k->step_ns = a->step_us * 1000;
        k->gpu_step_ns = a->gpu_step_us * 1000;
        struct loader_pool_info pi = {.size = sizeof(pi)};
        loader_pool_info(L, i, &pi);
        k->ordinal = pi.cuda_ordinal;
        ok = k->dsum && k->records && k->ids && k->nids && k->capids && k->boundary;
    }
    if (!ok) {
        consumers_free(cons, n);
        return NULL;
    }
    return cons;
}

static double cpu_secs(const struct rusage *r)
{
    return (double)r->ru_utime.tv_sec + (double)r->ru_utime.tv_usec / 1e6 +
           (double)r->ru_stime.tv_sec + (double)r->ru_stime.tv_usec / 1e6;
}

/* Progress on stderr for runs longer than a few seconds, when stderr is a
 * terminal: the share of the batches delivered and the rate so far. */
struct progress {
    loader_t *L;
    uint64_t total_batches;
    atomic_int done;
};

static void *progress_main(void *arg)
{
    struct progress *pr = arg;
    uint64_t t0 = now_ns();
    int shown = 0;
    while (!atomic_load(&pr->done)) {
        usleep(100 * 1000);
        double secs = (double)(now_ns() - t0) / 1e9;
        if (secs < 3 || ((uint64_t)(secs * 10) % 10))
            continue;
        uint64_t batches = 0, bytes = 0;
        for (int i = 0; i < loader_gpu_count(pr->L); i++) {
            struct loader_stats s = {.size = sizeof(s)};
            loader_stats(pr->L, i, &s);
            batches += s.batches;
            bytes += s.bytes;
        }
        char b[32];
        fprintf(stderr, "\rnumafeed bench: %3.0f%% of the batches, %s, %.2f GB/s   ",
                100.0 * (double)batches / (double)(pr->total_batches ? pr->total_batches : 1),
                bench_human(b, sizeof(b), (double)bytes), (double)bytes / 1e9 / secs);
        shown = 1;
    }
    if (shown)
        fprintf(stderr, "\r%70s\r", "");
    return NULL;
}

int cmd_bench(int argc, char **argv)
{
    static struct bench_args a; /* the GPU list is large for the stack */
    memset(&a, 0, sizeof(a));
    loader_config_init(&a.cfg);
    a.epochs = 1;
    int status = parse_args(argc, argv, &a);
    if (status >= 0)
        return status;
    a.cfg.epochs = a.epochs; /* nothing past the last epoch is read */
    if (a.cuda_ctx && a.cfg.device != LOADER_DEVICE_CPU)
        make_contexts(&a);
    struct clocks t = {.create = now_ns()};
    loader_t *L;
    int rc = loader_create(&a.cfg, &L);
    if (rc)
        return cli_fail("bench", a.cfg.path, rc);
    t.ready = now_ns();
    int n = loader_gpu_count(L);
    struct consumer *cons = consumers_alloc(L, n, &a);
    pthread_t *th = calloc((size_t)n, sizeof(*th));
    if (!cons || !th) {
        fprintf(stderr, "numafeed bench: out of memory\n");
        consumers_free(cons, n);
        free(th);
        loader_destroy(L);
        return CLI_EXIT_FAIL;
    }
    struct progress pr = {L, loader_epoch_batches(L) * a.epochs * (uint64_t)n, 0};
    pthread_t prog;
    int show = isatty(STDERR_FILENO) && pthread_create(&prog, NULL, progress_main, &pr) == 0;
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    t.start = now_ns();
    for (int i = 0; i < n; i++)
        pthread_create(&th[i], NULL, consume, &cons[i]);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < n; i++)
        loader_sync(L, i); /* the clock stops when the last copy has landed */
    t.end = now_ns();
    getrusage(RUSAGE_SELF, &r1);
    a.cores = (cpu_secs(&r1) - cpu_secs(&r0)) / ((double)(t.end - t.start) / 1e9);
    atomic_store(&pr.done, 1);
    if (show)
        pthread_join(prog, NULL);
    status = CLI_EXIT_OK;
    for (int i = 0; i < n; i++)
        if (cons[i].rc) {
            fprintf(stderr, "numafeed bench: %s (%s)\n", cons[i].msg,
                    numafeed_err_name(cons[i].rc));
            status = CLI_EXIT_FAIL;
        }
    if (status == CLI_EXIT_OK && bench_report(L, &a, cons, &t))
        status = CLI_EXIT_FAIL;
    consumers_free(cons, n);
    free(th);
    loader_destroy(L);
    return status;
}
