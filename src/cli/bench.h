// SPDX-License-Identifier: Apache-2.0
/* numafeed bench's parts: cmd_bench.c parses, runs the consumers and times
 * the run; bench_report.c says what it measured, as text and as JSON. */
#ifndef NUMAFEED_CLI_BENCH_H
#define NUMAFEED_CLI_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"

/* One consumer thread: a served GPU's (or the host pool's) batches. */
struct consumer {
    loader_t *L;
    int gpu;
    int ordinal;              /* the pool's CUDA ordinal */
    uint64_t epochs;
    int digest;
    int rc;
    char msg[1024];
    uint64_t first_ns;        /* arrival of its first batch */
    /* per epoch: digest sum, record count, ids in delivery order */
    uint64_t *dsum, *records;
    uint64_t **ids;
    size_t *nids, *capids;
    uint64_t step_ns;         /* simulated consumer work per batch */
    uint64_t gpu_step_ns;     /* a GPU kernel per batch, waited for */
    uint64_t steps, step_total_ns; /* --gpu-step-us: steps and their time */
    uint8_t *back[LOADER_MAX_FIELDS]; /* --digest: fields copied from the GPU */
    size_t back_cap[LOADER_MAX_FIELDS];
    struct sample {
        uint64_t at;          /* arrival time of the batch */
        uint64_t wait;        /* time inside loader_next for it */
    } *samples;
    size_t nsamples, capsamples;
    uint64_t *boundary;       /* per epoch: index in samples of its first batch */
};

/* The command line, and what the run learned about itself. Options the
 * loader takes are parsed into cfg itself. */
struct bench_args {
    struct loader_config cfg;
    double cores; /* CPU seconds of the process per second of the run */
    uint64_t epochs, step_us, gpu_step_us;
    int digest, cuda_ctx;
    int gpus[LOADER_MAX_GPUS]; /* --gpus' ordinals, cfg.gpus's storage */
    const char *json;  /* --json FILE, or NULL */
    double ctx_ms;     /* --cuda-context: the contexts' time, before the clock */
    int argc;
    char **argv;
};

/* Clock points of a run: create called, create returned, consumers started
 * and joined. */
struct clocks {
    uint64_t create, ready, start, end;
};

/* Bytes in decimal units (the rates are GB/s, as the ceilings are). */
const char *bench_human(char *buf, size_t len, double bytes);

/* The run's report: --digest's lines and the text (unless --json -), and
 * the JSON object when --json is given. 0, or -1 when the JSON could not
 * be written (said on stderr). */
int bench_report(loader_t *L, const struct bench_args *a, const struct consumer *cons,
                 const struct clocks *t);

#endif
