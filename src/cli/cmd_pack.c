// SPDX-License-Identifier: Apache-2.0
/* numafeed pack: the command line. Records come from one of four sources
 * (pack_raw.c, pack_files.c, pack_tar.c, pack_tokens.c); pack_job.c holds
 * what they share. Everything is written through the public writer API. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pack.h"

static void help_sources(void)
{
    printf(
        "Usage: numafeed pack --out DIR [--from raw] (--record-bytes N | --field SPEC...)\n"
        "                     [OPTIONS] FILE|-\n"
        "       numafeed pack --out DIR --from files [--skip-too-large] [OPTIONS] ROOT\n"
        "       numafeed pack --out DIR --from tar [--skip-incomplete] [--skip-too-large]\n"
        "                     [OPTIONS] SHARD...\n"
        "       numafeed pack --out DIR --from tokens --dtype uint16|uint32|int32\n"
        "                     --seq-len N [--stride S] [OPTIONS] FILE|-\n"
        "\n"
        "Pack records into the dataset directory DIR: a manifest.json and shard files\n"
        "of checksummed blocks (docs/format.md, docs/pack.md). Where the records come\n"
        "from is --from's choice:\n"
        "\n"
        "raw (the default)\n"
        "    FILE (or standard input for '-') is a flat sequence of fixed-size records,\n"
        "    described by --record-bytes or --field. Its size must be a whole number of\n"
        "    records.\n"
        "\n"
        "files\n"
        "    ROOT is a directory tree as torchvision's ImageFolder sees it,\n"
        "    ROOT/CLASS/... One record per regular file, with three fields:\n"
        "      key    str    the path relative to ROOT, '/'-separated (cat/0001.jpg)\n"
        "      data   bytes  the file's content, as it is (images are not decoded)\n"
        "      label  int64  the index of the file's CLASS among ROOT's directories\n"
        "                    sorted by name (byte order), counting from 0\n"
        "    Directories and files are visited depth first, sorted by name at each\n"
        "    level, so the same tree always gives the same records in the same order.\n"
        "    Symbolic links are not followed (to files or directories): they are\n"
        "    skipped and reported, as are FIFOs, sockets and devices (never opened).\n"
        "    Names starting with '.' are skipped. Empty files are records with empty\n"
        "    data. A regular file directly in ROOT is an error (ImageFolder would not\n"
        "    see it), and so is a name that is not UTF-8 (key is a string).\n"
        "\n");
    printf(
        "tar\n"
        "    Each SHARD is a WebDataset tar file (gzip, bzip2, xz and zstd\n"
        "    compression are recognised; '-' is standard input), read in the order\n"
        "    given. Members are grouped into samples by key, the member's path up to\n"
        "    the first '.' of its base name (train/0001.seg.png has key train/0001\n"
        "    and extension seg.png); the members of one sample must follow each\n"
        "    other, and a key that appears again later in the same shard is an error.\n"
        "    A sample is one record: field key (str), then one field per extension,\n"
        "    in sorted order, named after it with every character outside\n"
        "    [A-Za-z0-9_] made '_' (seg.png: seg_png). Types: cls is int64 (the\n"
        "    member's text as a decimal integer; surrounding white space is allowed,\n"
        "    anything else is an error), txt and json are str (they must be UTF-8),\n"
        "    every other extension is bytes. The first sample fixes the fields; a\n"
        "    later sample with a field missing or an extra one is an error naming the\n"
        "    sample and the field, unless --skip-incomplete. Directory members are\n"
        "    ignored; link members, special files and members not named KEY.EXT are\n"
        "    skipped and reported.\n"
        "\n"
        "tokens\n"
        "    FILE (or '-') is a flat array of little-endian tokens of --dtype, as\n"
        "    nanoGPT's prepare scripts write them (train.bin). It is cut into windows\n"
        "    of N+1 tokens (--seq-len N: the inputs and, shifted by one, the targets)\n"
        "    starting at tokens 0, S, 2S, ... while a whole window fits; the tokens\n"
        "    after the last whole window are left out. One field: tokens, of --dtype\n"
        "    and shape [N+1]. The file size must be a multiple of the dtype's size.\n"
        "\n"
        "The pack is atomic: it is written into a hidden temporary directory next to DIR\n"
        "(.DIR.tmp-PID-XXXXXX), every file is fsync'd, and only a complete dataset is\n"
        "renamed to DIR. A failed or interrupted pack leaves no DIR (an interrupt by\n"
        "SIGINT, SIGTERM or SIGHUP also removes the temporary; after SIGKILL or a crash\n"
        "it stays, holds no manifest, and may be deleted).\n"
        "\n");
}

static void help_options(void)
{
    printf(
        "Options:\n"
        "  -o, --out DIR          the dataset directory to create. It must not exist\n"
        "                         unless --force is given.\n"
        "      --from SOURCE      raw (default), files, tar or tokens; see above.\n"
        "  -r, --record-bytes N   raw: the record size in bytes. Without --field the\n"
        "                         layout is one field 'data' of dtype uint8 and shape\n"
        "                         [N]. With --field it may be left out; if given it\n"
        "                         must equal the fields' total.\n"
        "  -f, --field NAME:DTYPE[:SHAPE]\n"
        "                         raw: one field of the record, in order; repeat for\n"
        "                         more. DTYPE: uint8 int8 uint16 int16 uint32 int32\n"
        "                         uint64 int64 float16 bfloat16 float32 float64.\n"
        "                         SHAPE: dimensions joined by 'x' or ',' (2048,\n"
        "                         3x224x224); left out for a scalar.\n"
        "      --dtype DTYPE      tokens: uint16, uint32 or int32.\n"
        "      --seq-len N        tokens: a window is N+1 tokens.\n"
        "      --stride S         tokens: tokens from one window's start to the next\n"
        "                         (default N: consecutive windows share one token).\n"
        "      --max-record-bytes M\n"
        "                         files, tar: the largest record, all its fields\n"
        "                         together (default 64M, at most 256M). A file or tar\n"
        "                         member that would make a larger record is an error\n"
        "                         naming it and its size, found before it is read.\n"
        "                         The loader sizes batch slots from the largest\n"
        "                         records, so this bounds a batch too.\n"
        "      --skip-too-large   files, tar: skip such records instead, and count them.\n"
        "      --skip-incomplete  tar: skip samples whose fields are not the first\n"
        "                         sample's instead, and count them.\n"
        "  -c, --codec CODEC      zstd (default): one zstd frame per block, stored raw\n"
        "                         when it does not shrink; none: every block raw.\n"
        "  -l, --level L          zstd level, -7 to 22 (default 3). Higher packs\n"
        "                         smaller and slower; decoding speed barely changes.\n"
        "  -b, --block-bytes B    decoded bytes per block (default 256K, at most 256M):\n"
        "                         fixed records: rounded down to whole records, at\n"
        "                         least one; records of variable length: a block ends\n"
        "                         with the record that reaches B. Reading one record\n"
        "                         decodes its whole block: for images of ~100K, 1M\n"
        "                         keeps about ten per block.\n"
        "  -s, --shard-bytes S    target shard file size (default 1G): a shard ends\n"
        "                         after the block that reaches S.\n"
        "      --force            replace DIR if it is an existing numafeed dataset or\n"
        "                         an empty directory (atomically with renameat2's\n"
        "                         RENAME_EXCHANGE where the filesystem supports it);\n"
        "                         anything else at DIR is still refused.\n"
        "      --progress         report progress on stderr: input read, records,\n"
        "                         shards, bytes written, input rate (default: only\n"
        "                         when stderr is a terminal).\n"
        "  -q, --quiet            no progress and no summary (warnings about skipped\n"
        "                         inputs are still printed).\n"
        "  -v, --verbose          name every skipped input as it is met, and print the\n"
        "                         class of each label (files).\n"
        "  -h, --help             show this help.\n"
        "\n");
}

static void help(void)
{
    help_sources();
    help_options();
    printf(
        "Sizes are bytes, or a number followed by K, M or G (powers of 1024; KiB,\n"
        "MiB, GiB are accepted too).\n"
        "\n"
        "At the end one line on standard output says what was written: records,\n"
        "shards, bytes stored and the ratio, bytes read, and how many inputs of each\n"
        "kind were skipped; a warning on stderr names the first few of each kind.\n"
        "\n"
        "Exit status: 0 the dataset was written, 1 packing failed (DIR was not created\n"
        "or replaced), 2 usage error, 128+N interrupted by signal N.\n"
        "\n"
        "Examples:\n"
        "  2048 int32 tokens per record, from a pipe:\n"
        "    cat tokens.bin | numafeed pack --out data/train --field tokens:int32:2048 -\n"
        "  An ImageFolder tree, about ten JPEGs per block:\n"
        "    numafeed pack --out data/imagenet-train --from files --block-bytes 1M \\\n"
        "        imagenet/train\n"
        "  WebDataset shards, in order, leaving out samples that lack a field:\n"
        "    numafeed pack --out data/wds --from tar --skip-incomplete \\\n"
        "        shards/train-000000.tar shards/train-000001.tar\n"
        "  nanoGPT's train.bin (GPT-2 tokens, uint16), 1024-token contexts:\n"
        "    numafeed pack --out data/owt --from tokens --dtype uint16 --seq-len 1024 \\\n"
        "        train.bin\n");
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

/* A positive decimal count (no suffix). */
static int parse_count(const char *s, uint64_t *out)
{
    uint64_t v;
    if (cli_parse_u64(s, &v) || v == 0)
        return -EINVAL;
    *out = v;
    return 0;
}

enum {
    OPT_FORCE = 1000, OPT_PROGRESS, OPT_FROM, OPT_DTYPE, OPT_SEQ_LEN, OPT_STRIDE,
    OPT_MAX_RECORD, OPT_SKIP_LARGE, OPT_SKIP_INCOMPLETE,
};

#define FROM(s) (1u << PACK_FROM_##s)

/* The options that belong to some sources only: given with another source
 * they are a usage error rather than silently ignored. */
static const struct {
    int opt;
    const char *name;
    unsigned sources;
    const char *which;
} scoped[] = {
    {'r', "--record-bytes", FROM(RAW), "raw"},
    {'f', "--field", FROM(RAW), "raw"},
    {OPT_DTYPE, "--dtype", FROM(TOKENS), "tokens"},
    {OPT_SEQ_LEN, "--seq-len", FROM(TOKENS), "tokens"},
    {OPT_STRIDE, "--stride", FROM(TOKENS), "tokens"},
    {OPT_MAX_RECORD, "--max-record-bytes", FROM(FILES) | FROM(TAR), "files and tar"},
    {OPT_SKIP_LARGE, "--skip-too-large", FROM(FILES) | FROM(TAR), "files and tar"},
    {OPT_SKIP_INCOMPLETE, "--skip-incomplete", FROM(TAR), "tar"},
};

static int parse_from(struct pack_args *a, const char *arg)
{
    static const char *const names[] = {"raw", "files", "tar", "tokens"};
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(arg, names[i])) {
            a->from = (enum pack_from)i;
            return CLI_EXIT_OK;
        }
    return cli_usage("pack", "--from '%s': expected raw, files, tar or tokens", arg);
}

/* Options that shape the records; CLI_EXIT_OK, a usage status, or -1 for
 * an option this function does not know. */
static int parse_record_option(struct pack_args *a, int c, char *arg)
{
    switch (c) {
    case OPT_FROM: return parse_from(a, arg);
    case 'r':
        if (cli_parse_size(arg, &a->record_bytes))
            return cli_usage("pack", "--record-bytes '%s': expected a positive size", arg);
        if (a->record_bytes > NUMAFEED_MAX_BLOCK_BYTES)
            return cli_usage("pack", "--record-bytes '%s': at most 256M", arg);
        return CLI_EXIT_OK;
    case 'f':
        if (a->nfields == NUMAFEED_MAX_FIELDS)
            return cli_usage("pack", "more than %u --field options", NUMAFEED_MAX_FIELDS);
        /* dtypes and names are checked with the whole layout later */
        if (numafeed_field_parse(arg, &a->fields[a->nfields]))
            return cli_usage("pack", "--field: %s", numafeed_last_error());
        a->nfields++;
        return CLI_EXIT_OK;
    case OPT_DTYPE:
        if (strcmp(arg, "uint16") && strcmp(arg, "uint32") && strcmp(arg, "int32"))
            return cli_usage("pack", "--dtype '%s': expected uint16, uint32 or int32", arg);
        a->dtype = arg;
        return CLI_EXIT_OK;
    case OPT_SEQ_LEN:
        if (parse_count(arg, &a->seq_len))
            return cli_usage("pack", "--seq-len '%s': expected a positive integer", arg);
        return CLI_EXIT_OK;
    case OPT_STRIDE:
        if (parse_count(arg, &a->stride))
            return cli_usage("pack", "--stride '%s': expected a positive integer", arg);
        return CLI_EXIT_OK;
    case OPT_MAX_RECORD:
        if (cli_parse_size(arg, &a->o.max_record_bytes) ||
            a->o.max_record_bytes > NUMAFEED_MAX_BLOCK_BYTES)
            return cli_usage("pack", "--max-record-bytes '%s': expected a size from 1 to 256M",
                             arg);
        return CLI_EXIT_OK;
    case OPT_SKIP_LARGE: a->skip_too_large = 1; return CLI_EXIT_OK;
    case OPT_SKIP_INCOMPLETE: a->skip_incomplete = 1; return CLI_EXIT_OK;
    default: return -1;
    }
}

/* Options of the writer and of the output. */
static int parse_output_option(struct pack_args *a, int c, const char *arg)
{
    switch (c) {
    case 'o': a->out = arg; return CLI_EXIT_OK;
    case 'c':
        if (!strcmp(arg, "zstd"))
            a->o.codec = NUMAFEED_CODEC_ZSTD;
        else if (!strcmp(arg, "none"))
            a->o.codec = NUMAFEED_CODEC_NONE;
        else
            return cli_usage("pack", "--codec '%s': expected zstd or none", arg);
        return CLI_EXIT_OK;
    case 'l':
        if (parse_int(arg, &a->o.level) || a->o.level == 0)
            return cli_usage("pack", "--level '%s': expected a zstd level", arg);
        return CLI_EXIT_OK;
    case 'b':
        if (cli_parse_size(arg, &a->o.block_bytes) || a->o.block_bytes > NUMAFEED_MAX_BLOCK_BYTES)
            return cli_usage("pack", "--block-bytes '%s': expected a size from 1 to 256M", arg);
        return CLI_EXIT_OK;
    case 's':
        if (cli_parse_size(arg, &a->o.shard_bytes))
            return cli_usage("pack", "--shard-bytes '%s': expected a positive size", arg);
        return CLI_EXIT_OK;
    case OPT_FORCE: a->o.force = 1; return CLI_EXIT_OK;
    case OPT_PROGRESS: a->show_progress = 1; return CLI_EXIT_OK;
    case 'q': a->quiet = 1; return CLI_EXIT_OK;
    case 'v': a->verbose = 1; return CLI_EXIT_OK;
    default: return -1;
    }
}

/* getopt over argv into *a; -1 after --help, else a status. seen gets a
 * bit per entry of scoped[] that was given. */
static int parse_args(int argc, char **argv, struct pack_args *a, unsigned *seen)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"from", required_argument, NULL, OPT_FROM},
        {"record-bytes", required_argument, NULL, 'r'},
        {"field", required_argument, NULL, 'f'},
        {"dtype", required_argument, NULL, OPT_DTYPE},
        {"seq-len", required_argument, NULL, OPT_SEQ_LEN},
        {"stride", required_argument, NULL, OPT_STRIDE},
        {"max-record-bytes", required_argument, NULL, OPT_MAX_RECORD},
        {"skip-too-large", no_argument, NULL, OPT_SKIP_LARGE},
        {"skip-incomplete", no_argument, NULL, OPT_SKIP_INCOMPLETE},
        {"codec", required_argument, NULL, 'c'},
        {"level", required_argument, NULL, 'l'},
        {"block-bytes", required_argument, NULL, 'b'},
        {"shard-bytes", required_argument, NULL, 's'},
        {"force", no_argument, NULL, OPT_FORCE},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    opterr = 0;
    optind = 1;
    *seen = 0;
    while ((c = getopt_long(argc, argv, "o:r:f:c:l:b:s:qvh", opts, NULL)) != -1) {
        if (c == 'h') {
            help();
            return -1;
        }
        for (unsigned i = 0; i < sizeof(scoped) / sizeof(scoped[0]); i++)
            if (scoped[i].opt == c)
                *seen |= 1u << i;
        int st = parse_record_option(a, c, optarg);
        if (st < 0)
            st = parse_output_option(a, c, optarg);
        if (st < 0)
            return cli_usage("pack", "unknown or incomplete option '%s'", argv[optind - 1]);
        if (st)
            return st;
    }
    a->inputs = argv + optind;
    a->ninputs = argc - optind;
    return CLI_EXIT_OK;
}

/* The raw layout from --record-bytes and --field, checked before anything
 * touches the disk. */
static int check_raw(struct pack_args *a)
{
    if (!a->record_bytes && !a->nfields)
        return cli_usage("pack", "--record-bytes N or at least one --field is required");
    if (!a->nfields) {
        a->fields[0] = (struct numafeed_field){"data", "uint8", 1, {a->record_bytes}};
        a->nfields = 1;
    }
    uint64_t total;
    if (numafeed_layout_check(a->fields, a->nfields, &total))
        return cli_usage("pack", "bad record layout: %s", numafeed_last_error());
    if (a->record_bytes && a->record_bytes != total)
        return cli_usage("pack", "--record-bytes %llu, but the fields add up to %llu bytes",
                         (unsigned long long)a->record_bytes, (unsigned long long)total);
    return CLI_EXIT_OK;
}

/* What the chosen source needs: its operands and its options. */
static int check_args(struct pack_args *a, unsigned seen)
{
    if (!a->out)
        return cli_usage("pack", "--out DIR is required");
    for (unsigned i = 0; i < sizeof(scoped) / sizeof(scoped[0]); i++)
        if ((seen & (1u << i)) && !(scoped[i].sources & (1u << a->from)))
            return cli_usage("pack", "%s is an option of --from %s only", scoped[i].name,
                             scoped[i].which);
    if (a->o.level && a->o.codec == NUMAFEED_CODEC_NONE)
        return cli_usage("pack", "--level has no meaning with --codec none");
    if (a->from == PACK_FROM_RAW) {
        int st = check_raw(a);
        if (st)
            return st;
    }
    if (a->from == PACK_FROM_TOKENS && (!a->dtype || !a->seq_len))
        return cli_usage("pack", "--from tokens needs --dtype and --seq-len");
    if (a->from == PACK_FROM_TOKENS && !a->stride)
        a->stride = a->seq_len;
    if (a->ninputs == 0)
        return cli_usage("pack", a->from == PACK_FROM_TAR ? "no input: give one or more SHARDs"
                                 : a->from == PACK_FROM_FILES ? "no input: give ROOT"
                                 : "no input: give FILE or '-' for stdin");
    if (a->ninputs > 1 && a->from != PACK_FROM_TAR)
        return cli_usage("pack", "more than one input");
    return CLI_EXIT_OK;
}

int cmd_pack(int argc, char **argv)
{
    static struct pack_args a; /* the fields table is large for the stack */
    memset(&a, 0, sizeof(a));
    numafeed_writer_options_init(&a.o);
    unsigned seen;
    int st = parse_args(argc, argv, &a, &seen);
    if (st)
        return st < 0 ? CLI_EXIT_OK : st;
    if ((st = check_args(&a, seen)))
        return st;
    if (!a.o.max_record_bytes)
        a.o.max_record_bytes = PACK_MAX_RECORD_DEFAULT;
    static int (*const sources[])(struct pack_job *) = {
        [PACK_FROM_RAW] = pack_raw, [PACK_FROM_FILES] = pack_files,
        [PACK_FROM_TAR] = pack_tar, [PACK_FROM_TOKENS] = pack_tokens,
    };
    struct pack_job j;
    pack_job_init(&j, &a);
    return pack_job_end(&j, sources[a.from](&j));
}
