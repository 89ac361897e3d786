/* SPDX-License-Identifier: Apache-2.0 */
/* numafeed pack's internal interface: the command line (cmd_pack.c) fills
 * a pack_args, and one source (pack_raw.c, pack_files.c, pack_tar.c,
 * pack_tokens.c) turns its input into records through a pack_job, which
 * owns the writer, the progress line, the skip counts and the stop signal. */
#ifndef NUMAFEED_CLI_PACK_H
#define NUMAFEED_CLI_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"

enum pack_from { PACK_FROM_RAW, PACK_FROM_FILES, PACK_FROM_TAR, PACK_FROM_TOKENS };

/* The writer's documented default for max_record_bytes, passed explicitly
 * so that the sources' checks before reading and the writer's agree. */
#define PACK_MAX_RECORD_DEFAULT (64ull << 20)

struct pack_args {
    const char *out;
    enum pack_from from;
    char **inputs; /* argv's operands: FILE, ROOT or SHARD... */
    int ninputs;
    int show_progress, quiet, verbose;
    int skip_too_large, skip_incomplete;
    /* raw */
    uint64_t record_bytes;
    struct numafeed_field fields[NUMAFEED_MAX_FIELDS];
    size_t nfields;
    /* tokens */
    const char *dtype;
    uint64_t seq_len, stride;
    /* o.max_record_bytes is always set (PACK_MAX_RECORD_DEFAULT or the
     * option) */
    struct numafeed_writer_options o;
};

/* Why an input was left out: the summary counts each. */
enum pack_skip {
    PACK_SKIP_LINK,       /* a symbolic or hard link, not followed */
    PACK_SKIP_SPECIAL,    /* a FIFO, socket or device */
    PACK_SKIP_HIDDEN,     /* a name starting with '.' */
    PACK_SKIP_NOT_SAMPLE, /* a tar member not named KEY.EXT */
    PACK_SKIP_TOO_LARGE,  /* over --max-record-bytes, with --skip-too-large */
    PACK_SKIP_INCOMPLETE, /* fields unlike the first sample's, with --skip-incomplete */
    PACK_SKIP_KINDS
};

/* Names of skipped inputs kept for the warning, per kind. */
#define PACK_SKIP_LISTED 3

struct pack_job {
    const struct pack_args *a;
    numafeed_writer *w;      /* NULL until the source knows its layout */
    size_t nfields;          /* the writer's */
    uint64_t in_bytes;       /* input bytes consumed so far */
    uint64_t in_total;       /* the input's size when known (the percentage), else 0 */
    uint64_t record_bytes;   /* bytes of the records written (fixed and variable) */
    char source[256];        /* "from 12 files in 3 classes", for the summary */
    uint64_t skipped[PACK_SKIP_KINDS];
    /* the first few names of each kind, for the warning at the end */
    char *listed[PACK_SKIP_KINDS][PACK_SKIP_LISTED];
    int show, tty;
    double started, next;
};

/* Start a job: progress set up from the args, signals caught. */
void pack_job_init(struct pack_job *j, const struct pack_args *a);
/* End it: with status CLI_EXIT_OK finish the writer (no records is an
 * error), then report what was skipped and, unless --quiet, print the
 * summary; destroy the writer (removing the temporary unless finished).
 * Returns the final status. */
int pack_job_end(struct pack_job *j, int status);
/* Create the writer with this layout (the job's args give the options).
 * Returns CLI_EXIT_OK or, after a message, CLI_EXIT_FAIL. */
int pack_open(struct pack_job *j, const struct numafeed_field *fields, size_t nfields);
/* Names a record in a message (a path, "shard.tar: sample 'x'"; control
 * characters already escaped). */
typedef const char *pack_name_fn(const void *ctx);
/* numafeed_writer_add, counting the record. name(ctx) is called only when
 * the writer refuses it, so that a source formats no name per record; its
 * bytes >= 0x80 are escaped here when the refusal is -EINVAL, which may be
 * a name that is not UTF-8. Returns CLI_EXIT_OK or CLI_EXIT_FAIL after a
 * message. */
int pack_add(struct pack_job *j, const void *const *data, const size_t *sizes,
             pack_name_fn *name, const void *ctx);
/* numafeed_writer_append of count fixed records; errors as pack_add. */
int pack_append(struct pack_job *j, const void *records, size_t count);
/* Call between records: prints the progress line when it is due and
 * returns 128 + the signal after SIGINT, SIGTERM or SIGHUP (with a
 * message), else CLI_EXIT_OK. */
int pack_tick(struct pack_job *j);
/* Read fd into buf until cap bytes or the end of the input; *got is how
 * many, fewer than cap only at the end. pack_tick runs before each read.
 * name (escaped) and at, the input offset of buf[0], are for the message.
 * Returns CLI_EXIT_OK, or a failing status (a read error, a signal) after
 * a message. */
int pack_read(struct pack_job *j, int fd, const char *name, uint64_t at, uint8_t *buf,
              size_t cap, size_t *got);
/* Count an input left out; name it now under --verbose, else keep the
 * first few for the warning at the end. */
void pack_skip(struct pack_job *j, enum pack_skip why, const char *name);
/* Print "numafeed pack: <message>" on stderr; returns CLI_EXIT_FAIL. */
int pack_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* s with control characters (and, if high, bytes >= 0x80) as \xNN, for a
 * message; the result lives until the fourth call after this one. */
const char *pack_esc(const char *s, int high);

/* The sources. Each returns CLI_EXIT_OK with every record added (the
 * caller finishes the writer), or a failing status after a message. */
int pack_raw(struct pack_job *j);
int pack_files(struct pack_job *j);
int pack_tar(struct pack_job *j);
int pack_tokens(struct pack_job *j);

#endif
