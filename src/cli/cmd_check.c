// SPDX-License-Identifier: Apache-2.0
/* numafeed check: verify a dataset end to end and name every problem. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void help(void)
{
    printf(
        "Usage: numafeed check [--quiet] [--follow-symlinks] DIR\n"
        "\n"
        "Verify the dataset directory DIR completely: the manifest (JSON, version,\n"
        "record layout, counts), then for every shard its size and content hash\n"
        "(XXH3 of the whole file) against the manifest, its header (magic, version,\n"
        "reserved bits, checksum), trailer and footer (checksum, every index entry:\n"
        "offsets ascending and inside the data region, sizes within the 256 MiB block\n"
        "cap), its record count, and every block: read, its stored bytes' XXH3\n"
        "compared with the footer's where the shard keeps one (before decoding),\n"
        "zstd-decoded with the frame checksum on, decoded size and XXH3 compared with\n"
        "the index. Every byte of every shard is read.\n"
        "\n"
        "Each problem is one line on standard output:\n"
        "  FILE: [block B at offset O: | offset O: ]ERROR_NAME: details\n"
        "with the block (of FILE) and the byte offset in FILE where they are known.\n"
        "A summary follows: shards, records, blocks per codec, the shards that keep\n"
        "hashes of stored blocks, decoded and stored bytes and their ratio (only the\n"
        "result when DIR is not a readable dataset).\n"
        "\n"
        "The manifest and every shard are opened beneath DIR, as the loader opens\n"
        "them: a symbolic link that leads outside DIR is reported, not followed, and\n"
        "nothing that is not a regular file (a FIFO, a device) is read.\n"
        "\n"
        "Options:\n"
        "  -q, --quiet         print the problem lines only, no summary.\n"
        "      --follow-symlinks\n"
        "                      follow symbolic links that leave DIR (a shard kept\n"
        "                      elsewhere on purpose).\n"
        "  -h, --help          show this help.\n"
        "\n"
        "Exit status: 0 the dataset is intact, 1 problems were found (or DIR could not\n"
        "be read), 2 usage error.\n"
        "\n"
        "Example:\n"
        "  numafeed check data/train || echo 're-pack the shards named above'\n");
}

static void on_problem(void *user, const struct numafeed_check_problem *p)
{
    (void)user;
    /* say where only as far as it is known */
    char where[64] = "";
    if (p->block >= 0 && p->offset >= 0)
        snprintf(where, sizeof(where), "block %lld at offset %lld: ", (long long)p->block,
                 (long long)p->offset);
    else if (p->block >= 0)
        snprintf(where, sizeof(where), "block %lld: ", (long long)p->block);
    else if (p->offset >= 0)
        snprintf(where, sizeof(where), "offset %lld: ", (long long)p->offset);
    printf("%s: %s%s: %s\n", p->file, where, numafeed_err_name(p->code), p->message);
}

int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"quiet", no_argument, NULL, 'q'},
        {"follow-symlinks", no_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int quiet = 0, follow = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case 'q': quiet = 1; break;
        case 'F': follow = 1; break;
        case 'h': help(); return CLI_EXIT_OK;
        default:
            return cli_usage("check", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return cli_usage("check", optind == argc ? "no dataset directory given"
                                                      : "more than one dataset directory");
    const char *dir = argv[optind];
    struct numafeed_check_summary s = {.size = sizeof(s)};
    int n = numafeed_check(dir, follow, on_problem, NULL, &s);
    if (n < 0)
        return cli_fail("check", dir, n);
    if (!quiet && s.shards == 0 && n) {
        printf("result   %d problem%s: %s is not a readable dataset\n", n, n == 1 ? "" : "s",
               dir);
    } else if (!quiet) {
        const char *codec = s.zstd_blocks && s.raw_blocks ? "zstd and raw"
                            : s.zstd_blocks               ? "zstd"
                            : s.raw_blocks                ? "raw"
                                                          : "-";
        printf("dataset  %s\n", dir);
        printf("shards   %u\n", s.shards);
        printf("records  %llu of %llu bytes\n", (unsigned long long)s.records,
               (unsigned long long)s.record_bytes);
        printf("blocks   %llu (zstd %llu, raw %llu)\n", (unsigned long long)s.blocks,
               (unsigned long long)s.zstd_blocks, (unsigned long long)s.raw_blocks);
        printf("codec    %s\n", codec);
        printf("hashes   of stored blocks in %u of %u shards\n", s.stored_hash_shards, s.shards);
        printf("bytes    %llu decoded, %llu in shard files (ratio %.2f)\n",
               (unsigned long long)s.decoded_bytes, (unsigned long long)s.file_bytes,
               s.file_bytes ? (double)s.decoded_bytes / (double)s.file_bytes : 0.0);
        if (n)
            printf("result   %d problem%s\n", n, n == 1 ? "" : "s");
        else
            printf("result   OK\n");
    }
    return n ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
