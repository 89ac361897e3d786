// SPDX-License-Identifier: Apache-2.0
/* numafeed pack: a raw file of fixed-size records -> a dataset directory,
 * through the public writer API (numafeed_writer_*). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static void help(void)
{
    printf(
        "Usage: numafeed pack --out DIR --record-bytes N [--field NAME:DTYPE[:SHAPE]]...\n"
        "                     [--codec zstd|none] [--level L] [--block-bytes B]\n"
        "                     [--shard-bytes S] [--force] [--progress | --quiet] FILE|-\n"
        "\n"
        "Pack FILE (or standard input for '-'), a flat sequence of fixed-size records,\n"
        "into the dataset directory DIR: a manifest.json and shard files of checksummed\n"
        "blocks (docs/format.md). The input size must be a whole number of records.\n"
        "\n"
        "The pack is atomic: it is written into a hidden temporary directory next to DIR\n"
        "(.DIR.tmp-PID-XXXXXX), every file is fsync'd, and only a complete dataset is\n"
        "renamed to DIR. A failed or interrupted pack leaves no DIR (an interrupt by\n"
        "SIGINT, SIGTERM or SIGHUP also removes the temporary; after SIGKILL or a crash\n"
        "it stays, holds no manifest, and may be deleted).\n"
        "\n"
        "Options:\n"
        "  -o, --out DIR          the dataset directory to create. It must not exist\n"
        "                         unless --force is given.\n"
        "  -r, --record-bytes N   record size in bytes. Without --field the layout is\n"
        "                         one field 'data' of dtype uint8 and shape [N]. With\n"
        "                         --field it may be left out; if given it must equal\n"
        "                         the fields' total.\n"
        "  -f, --field NAME:DTYPE[:SHAPE]\n"
        "                         one field of the record, in order; repeat for more.\n"
        "                         DTYPE: uint8 int8 uint16 int16 uint32 int32 uint64\n"
        "                         int64 float16 bfloat16 float32 float64. SHAPE:\n"
        "                         dimensions joined by 'x' or ',' (2048, 3x224x224);\n"
        "                         left out for a scalar.\n"
        "  -c, --codec CODEC      zstd (default): one zstd frame per block, stored raw\n"
        "                         when it does not shrink; none: every block raw.\n"
        "  -l, --level L          zstd level, -7 to 22 (default 3). Higher packs\n"
        "                         smaller and slower; decoding speed barely changes.\n"
        "  -b, --block-bytes B    decoded bytes per block (default 256K): rounded down\n"
        "                         to whole records, at least one record, at most 256M.\n"
        "                         Reading one record decodes its whole block.\n"
        "  -s, --shard-bytes S    target shard file size (default 1G): a shard ends\n"
        "                         after the block that reaches S.\n"
        "      --force            replace DIR if it is an existing numafeed dataset or\n"
        "                         an empty directory (atomically with renameat2's\n"
        "                         RENAME_EXCHANGE where the filesystem supports it);\n"
        "                         anything else at DIR is still refused.\n"
        "      --progress         report progress on stderr (default: only when stderr\n"
        "                         is a terminal).\n"
        "  -q, --quiet            no progress and no summary.\n"
        "  -h, --help             show this help.\n"
        "\n"
        "Sizes are bytes, or a number followed by K, M or G (powers of 1024; KiB,\n"
        "MiB, GiB are accepted too).\n"
        "\n"
        "Exit status: 0 the dataset was written, 1 packing failed (DIR was not created\n"
        "or replaced), 2 usage error.\n"
        "\n"
        "Example: 2048 int32 tokens per record, from a pipe:\n"
        "  cat tokens.bin | numafeed pack --out data/train --field tokens:int32:2048 -\n");
}

/* Bytes, with an optional K/M/G suffix (powers of 1024). 0 is refused. */
static int parse_size(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++)
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
            return -ERANGE;
    unsigned shift = 0;
    switch (*p) {
    case 'k': case 'K': shift = 10; p++; break;
    case 'm': case 'M': shift = 20; p++; break;
    case 'g': case 'G': shift = 30; p++; break;
    default: break;
    }
    if (shift && !strcmp(p, "iB"))
        p += 2;
    if (*p)
        return -EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return -ERANGE;
    v <<= shift;
    if (v == 0)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_int(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < -1000 || v > 1000)
        return -EINVAL;
    *out = (int)v;
    return 0;
}

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

/* Without SA_RESTART, so a blocking read of stdin returns EINTR. */
static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void progress(const numafeed_writer *w, uint64_t in, uint64_t total, int tty, int last)
{
    char pct[16] = "";
    if (total)
        snprintf(pct, sizeof(pct), " (%3.0f%%)", 100.0 * (double)in / (double)total);
    fprintf(stderr, "%snumafeed pack: %.1f MiB read%s, %llu records, %u shards, %.1f MiB written%s",
            tty ? "\r" : "", in / 1048576.0, pct,
            (unsigned long long)numafeed_writer_records(w), numafeed_writer_shards(w),
            numafeed_writer_bytes_written(w) / 1048576.0, tty && !last ? "" : "\n");
}

struct pack_args {
    const char *out, *input;
    uint64_t record_bytes;
    int show_progress, quiet;
    struct numafeed_field fields[NUMAFEED_MAX_FIELDS];
    size_t nfields;
    struct numafeed_writer_options o;
};

/* Read whole records from fd into the writer until EOF. */
static int pump(numafeed_writer *w, int fd, const struct pack_args *a, uint64_t total)
{
    size_t rb = numafeed_writer_record_bytes(w);
    /* About 4 MiB per append: large enough that the syscalls vanish next to
     * compression, small enough to keep progress smooth. */
    size_t chunk = (4u << 20) / rb ? ((4u << 20) / rb) * rb : rb;
    uint8_t *buf = malloc(chunk);
    if (!buf)
        return cli_fail("pack", "allocating the input buffer", -ENOMEM);
    int tty = isatty(STDERR_FILENO), show = !a->quiet && (a->show_progress || tty);
    double next = now() + 0.5;
    uint64_t in = 0;
    int status = CLI_EXIT_OK;
    for (;;) {
        size_t fill = 0;
        while (fill < chunk && !stop_signal) {
            ssize_t n = read(fd, buf + fill, chunk - fill);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                fprintf(stderr, "numafeed pack: reading %s at offset %llu: %s\n", a->input,
                        (unsigned long long)(in + fill), strerror(errno));
                status = CLI_EXIT_FAIL;
                goto out;
            }
            if (n == 0)
                break;
            fill += (size_t)n;
        }
        if (stop_signal) {
            if (show)
                fputc('\n', stderr);
            fprintf(stderr, "numafeed pack: interrupted by signal %d; %s was not written\n",
                    (int)stop_signal, a->out);
            status = 128 + stop_signal;
            goto out;
        }
        if (fill % rb) {
            fprintf(stderr, "numafeed pack: %s ends with a partial record: %llu bytes is not a "
                    "multiple of the record size %zu\n", a->input,
                    (unsigned long long)(in + fill), rb);
            status = CLI_EXIT_FAIL;
            goto out;
        }
        int rc = fill ? numafeed_writer_append(w, buf, fill / rb) : 0;
        if (rc) {
            status = cli_fail("pack", "writing", rc);
            goto out;
        }
        in += fill;
        if (show && (fill < chunk || now() >= next)) {
            progress(w, in, total, tty, fill < chunk);
            next = now() + (tty ? 0.5 : 2.0);
        }
        if (fill < chunk)
            break;
    }
out:
    free(buf);
    return status;
}

static int run(const struct pack_args *a)
{
    int fd = STDIN_FILENO;
    uint64_t total = 0;
    if (strcmp(a->input, "-")) {
        fd = open(a->input, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fprintf(stderr, "numafeed pack: %s: %s\n", a->input, strerror(errno));
            return CLI_EXIT_FAIL;
        }
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
            total = (uint64_t)st.st_size;
    }
    numafeed_writer *w;
    int rc = numafeed_writer_create(a->out, a->fields, a->nfields, &a->o, &w);
    if (rc) {
        if (fd != STDIN_FILENO)
            close(fd);
        return cli_fail("pack", "creating the dataset", rc);
    }
    catch_signals();
    int status = pump(w, fd, a, total);
    if (fd != STDIN_FILENO)
        close(fd);
    if (status == CLI_EXIT_OK && (rc = numafeed_writer_finish(w)))
        status = cli_fail("pack", "finishing the dataset", rc);
    if (status == CLI_EXIT_OK && !a->quiet) {
        uint64_t recs = numafeed_writer_records(w), out = numafeed_writer_bytes_written(w);
        double in = (double)recs * (double)numafeed_writer_record_bytes(w);
        printf("%s: %llu records of %zu bytes in %u shards, %llu bytes stored (ratio %.2f)\n",
               a->out, (unsigned long long)recs, numafeed_writer_record_bytes(w),
               numafeed_writer_shards(w), (unsigned long long)out, out ? in / (double)out : 0.0);
    }
    numafeed_writer_destroy(w); /* removes the temporary unless finished */
    return status;
}

int cmd_pack(int argc, char **argv)
{
    enum { OPT_FORCE = 1000, OPT_PROGRESS };
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"record-bytes", required_argument, NULL, 'r'},
        {"field", required_argument, NULL, 'f'},
        {"codec", required_argument, NULL, 'c'},
        {"level", required_argument, NULL, 'l'},
        {"block-bytes", required_argument, NULL, 'b'},
        {"shard-bytes", required_argument, NULL, 's'},
        {"force", no_argument, NULL, OPT_FORCE},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static struct pack_args a; /* the fields table is large for the stack */
    memset(&a, 0, sizeof(a));
    numafeed_writer_options_init(&a.o);
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:r:f:c:l:b:s:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': a.out = optarg; break;
        case 'r':
            if (parse_size(optarg, &a.record_bytes))
                return cli_usage("pack", "--record-bytes '%s': expected a positive size", optarg);
            if (a.record_bytes > NUMAFEED_MAX_BLOCK_BYTES)
                return cli_usage("pack", "--record-bytes '%s': at most 256M", optarg);
            break;
        case 'f':
            if (a.nfields == NUMAFEED_MAX_FIELDS)
                return cli_usage("pack", "more than %u --field options", NUMAFEED_MAX_FIELDS);
            /* dtypes and names are checked with the whole layout below */
            if (numafeed_field_parse(optarg, &a.fields[a.nfields]))
                return cli_usage("pack", "--field: %s", numafeed_last_error());
            a.nfields++;
            break;
        case 'c':
            if (!strcmp(optarg, "zstd"))
                a.o.codec = NUMAFEED_CODEC_ZSTD;
            else if (!strcmp(optarg, "none"))
                a.o.codec = NUMAFEED_CODEC_NONE;
            else
                return cli_usage("pack", "--codec '%s': expected zstd or none", optarg);
            break;
        case 'l':
            if (parse_int(optarg, &a.o.level) || a.o.level == 0)
                return cli_usage("pack", "--level '%s': expected a zstd level", optarg);
            break;
        case 'b':
            if (parse_size(optarg, &a.o.block_bytes) || a.o.block_bytes > NUMAFEED_MAX_BLOCK_BYTES)
                return cli_usage("pack", "--block-bytes '%s': expected a size from 1 to 256M",
                                      optarg);
            break;
        case 's':
            if (parse_size(optarg, &a.o.shard_bytes))
                return cli_usage("pack", "--shard-bytes '%s': expected a positive size", optarg);
            break;
        case OPT_FORCE: a.o.force = 1; break;
        case OPT_PROGRESS: a.show_progress = 1; break;
        case 'q': a.quiet = 1; break;
        case 'h': help(); return CLI_EXIT_OK;
        default:
            return cli_usage("pack", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (!a.out)
        return cli_usage("pack", "--out DIR is required");
    if (!a.record_bytes && !a.nfields)
        return cli_usage("pack", "--record-bytes N or at least one --field is required");
    if (optind != argc - 1)
        return cli_usage("pack", optind == argc ? "no input: give FILE or '-' for stdin"
                                                     : "more than one input");
    a.input = argv[optind];
    if (!a.nfields) {
        a.fields[0].name = "data";
        a.fields[0].dtype = "uint8";
        a.fields[0].ndim = 1;
        a.fields[0].shape[0] = a.record_bytes;
        a.nfields = 1;
    }
    if (a.o.level && a.o.codec == NUMAFEED_CODEC_NONE)
        return cli_usage("pack", "--level has no meaning with --codec none");
    /* Layout problems are usage errors: check them before touching the disk. */
    uint64_t total;
    if (numafeed_layout_check(a.fields, a.nfields, &total))
        return cli_usage("pack", "bad record layout: %s", numafeed_last_error());
    if (a.record_bytes && a.record_bytes != total)
        return cli_usage("pack", "--record-bytes %llu, but the fields add up to %llu bytes",
                              (unsigned long long)a.record_bytes, (unsigned long long)total);
    return run(&a);
}
