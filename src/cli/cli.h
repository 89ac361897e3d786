/* SPDX-License-Identifier: Apache-2.0 */
/* The numafeed command's internal interface: one entry per subcommand. */
#ifndef NUMAFEED_CLI_H
#define NUMAFEED_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "numafeed.h"

/* Exit statuses shared by every subcommand. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAIL = 1,   /* the operation failed or found problems */
    CLI_EXIT_USAGE = 2,  /* bad arguments */
};

struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
};

int cmd_topo(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_pack(int, char **);
int cmd_check(int, char **);

/* Print "numafeed <cmd>: <what>: <last error>" to stderr; returns CLI_EXIT_FAIL. */
int cli_fail(const char *cmd, const char *what, int err);
/* Print a usage error and the hint to run --help; returns CLI_EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The numbers options take, for every subcommand alike. 0, or -EINVAL or
 * -ERANGE with *out unchanged. */
/* A decimal integer, digits only (no sign, no space, no suffix). */
int cli_parse_u64(const char *s, uint64_t *out);
/* Bytes, with an optional K, M or G suffix (powers of 1024; KiB, MiB, GiB
 * too); 0 is refused. */
int cli_parse_size(const char *s, uint64_t *out);

#endif
