// SPDX-License-Identifier: Apache-2.0
/* numafeed: the command-line front end. Every subcommand is a thin layer
 * over the library; nothing here holds logic the library lacks. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct cli_command commands[] = {
    {"topo", "show NUMA nodes, GPUs and the CPUs each GPU's pool would use", cmd_topo},
    {"doctor", "check that this machine and process are set up for numafeed", cmd_doctor},
    {"verify", "show where a process's threads and pages really are", cmd_verify},
    {"exec", "bind CPUs and memory to a GPU's node, then run a command", cmd_exec},
    {"pack", "pack raw records, an image tree, WebDataset tars or tokens into a dataset",
     cmd_pack},
    {"check", "verify a dataset: manifest, headers, indexes, every block's checksum",
     cmd_check},
    {"bench", "run the loader over a dataset: throughput, waits, placement, digests",
     cmd_bench},
};

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: numafeed [--version] [--help] COMMAND [ARGS...]\n"
            "\n"
            "numafeed feeds each GPU from its own NUMA node: one producer pool per GPU,\n"
            "threads pinned to the GPU's node, node-local page-locked batch buffers.\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\n"
            "Run 'numafeed COMMAND --help' for a command's options.\n"
            "\n"
            "Environment:\n"
            "  NUMAFEED_SYSFS_ROOT   directory standing in for /sys (tests, other machines)\n"
            "  NUMAFEED_PROC_ROOT    directory standing in for /proc (doctor, verify)\n"
            "  CUDA_VISIBLE_DEVICES  which GPUs are visible, as for CUDA itself\n"
            "  LOCAL_RANK, OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID\n"
            "                        exec's GPU when --gpus is not given (the first set:\n"
            "                        the innermost launcher's)\n"
            "  RANK and WORLD_SIZE, OMPI_COMM_WORLD_RANK and OMPI_COMM_WORLD_SIZE,\n"
            "  SLURM_PROCID and SLURM_NTASKS\n"
            "                        the loader's part of the dataset (the first pair set)\n"
            "\n"
            "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

int cli_fail(const char *cmd, const char *what, int err)
{
    /* the library's message names the file and says what happened: say it
     * once, with what was being done when it does not name that already */
    const char *detail = numafeed_last_error();
    if (!detail || !*detail)
        fprintf(stderr, "numafeed %s: %s: %s", cmd, what, numafeed_strerror(err));
    else if (strstr(detail, what))
        fprintf(stderr, "numafeed %s: %s", cmd, detail);
    else
        fprintf(stderr, "numafeed %s: %s: %s", cmd, what, detail);
    fprintf(stderr, " (%s)\n", numafeed_err_name(err));
    return CLI_EXIT_FAIL;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    /* formatted first, written once: ranks launched together share stderr */
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "numafeed %s: %s\nTry 'numafeed %s --help'.\n", cmd, msg, cmd);
    return CLI_EXIT_USAGE;
}

int cli_parse_u64(const char *s, uint64_t *out)
{
    /* strtoull alone would take a sign or leading space ("-1" as 2^64 - 1) */
    if (*s < '0' || *s > '9')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -errno;
    if (*end)
        return -EINVAL;
    *out = v;
    return 0;
}

int cli_parse_size(const char *s, uint64_t *out)
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

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("numafeed %s (CUDA path %s)\n", numafeed_version_string(),
               numafeed_has_cuda() ? "compiled in" : "not compiled in");
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "numafeed: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
