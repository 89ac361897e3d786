/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GPU decode's arithmetic, apart from the GPU so that tests check it on
 * any machine: how much memory a worker's decode of one unit can need at
 * most (from the configuration and the dataset's validated index, never
 * from a block's bytes), where each block of a unit goes (its stored bytes
 * in the staging and the device copy of it, its decoded bytes in the
 * arena), the header the GPU reads (block descriptors, nvCOMP's arrays,
 * the gather list), and one record's copies into a batch: the same bytes
 * the CPU path's put_record writes, as (source, destination, length).
 * Private to src/loader (gpu_unit.c runs it); pointers here are device
 * addresses computed on the host and never dereferenced.
 */
#ifndef NUMAFEED_LOADER_GPU_PLAN_H
#define NUMAFEED_LOADER_GPU_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/io.h"
#include "pin/pin.h"

/* Every region and array starts at a multiple of this: above nvCOMP's
 * required alignments (checked at start-up), and a cache line. */
#define NF_GALIGN 64u
/* Room for the screen's stand-in frame (a zstd frame of nothing: 9 bytes
 * as libzstd writes it). */
#define NF_GSAFE_MAX 64u

/* What bounds a worker's unit, from the configuration and the index. */
struct nf_gplan_input {
    uint64_t window;        /* records of a unit at most (its window: the shuffle window
                             * plus all but one record of the largest block) */
    uint64_t records_bytes; /* bytes `window` records take at most */
    uint64_t max_decoded;   /* the dataset's largest decoded block */
    uint32_t nblocks;       /* the dataset's blocks */
    uint32_t nfields;
};

/* A worker's regions, each sized for the largest unit. The staging (host,
 * page-locked) holds a unit's header then its stored bytes, and the
 * verdicts copied back; the device holds the same header and stored bytes
 * (one copy), then the arena of decoded zstd blocks, nvCOMP's outputs,
 * the verdicts and nvCOMP's scratch. */
struct nf_gplan_sizes {
    uint32_t max_blocks;   /* distinct blocks of a unit at most */
    uint64_t max_copies;   /* copies of one gather at most */
    size_t header, stored; /* the bound of each part of the staging */
    size_t arena;          /* decoded zstd blocks */
    size_t host_bytes;     /* header + stored, then verdicts: the staging */
    size_t host_res_off;   /* where the verdicts come back */
    size_t dev_arena_off, dev_status_off, dev_actual_off, dev_res_off, dev_temp_off;
    /* the screen (copy direct): its findings, and the sound frame of
     * nothing that stands in for a frame it refuses (NF_GSAFE_MAX bytes at
     * most; safe_len set by the caller, who writes the frame there) */
    size_t dev_found_off, dev_safe_off, safe_len;
    size_t temp;           /* nvCOMP's scratch (set before nf__gplan_size) */
    size_t dev_bytes;      /* everything on the device */
};

/* Size a worker's regions for in, with nvCOMP's scratch `temp` (for
 * max_blocks chunks of max_decoded bytes, arena bytes in all): call
 * nf__gplan_bounds first for the figures nvCOMP is asked with. Returns 0
 * or -EOVERFLOW. */
int nf__gplan_bounds(const struct nf_gplan_input *in, struct nf_gplan_sizes *s);
int nf__gplan_size(struct nf_gplan_sizes *s, size_t temp);

/* One block of a unit: where its stored bytes sit (offset in the staging,
 * and in the device copy of it) and where it decodes to (zstd: offset in
 * the arena; raw: it is verified and gathered where it was copied). */
struct nf_gblk {
    size_t in_off;
    size_t out_off; /* SIZE_MAX for a raw block */
    uint32_t zi;    /* its index among the unit's zstd blocks; UINT32_MAX raw */
};

/* A unit's header layout (offsets into the staging and the device copy). */
struct nf_gunit {
    uint32_t nb, nz;        /* blocks; of them zstd */
    size_t blocks_off;      /* struct nf_gpu_block[nb] */
    size_t in_ptrs_off, in_bytes_off, out_bytes_off, out_ptrs_off; /* nvCOMP's [nz] */
    size_t screens_off;     /* struct nf_gpu_screen[nz] (written when screened) */
    size_t copies_off;      /* struct nf_gpu_copy[ncopies] */
    size_t stored_off;      /* the blocks' stored bytes, at stored_off + in_off */
    size_t end;             /* bytes to copy to the device */
};

/* Lay out a unit of nb blocks (bi[k]: block k's index entry) with room
 * for ncopies copies: fills blk[k] and *u. -ENOSPC (with a message) when
 * it does not fit s, which the bounds rule out for any unit the sampler
 * makes. */
int nf__gplan_place(const struct nf_block_info *const *bi, uint32_t nb, uint64_t ncopies,
                    const struct nf_gplan_sizes *s, struct nf_gblk *blk, struct nf_gunit *u);

/* Write the unit's header into the staging at host: block descriptors
 * (expected sizes and hashes from bi, nvCOMP's status and size for zstd
 * ones) and nvCOMP's four arrays, every address one of the device's,
 * whose regions start at dev; with screen, each zstd block's screen entry
 * too (its stored bytes against bi's stored hash), which its descriptor
 * then consults. */
void nf__gplan_header(const struct nf_block_info *const *bi, const struct nf_gblk *blk,
                      const struct nf_gunit *u, const struct nf_gplan_sizes *s, uint8_t *host,
                      uint8_t *dev, bool screen);

/* Where a decoded block's bytes are on the device. */
static inline const uint8_t *nf__gplan_decoded(const struct nf_gblk *b, const struct nf_gunit *u,
                                               const struct nf_gplan_sizes *s, uint8_t *dev)
{
    return b->zi == UINT32_MAX ? dev + u->stored_off + b->in_off
                               : dev + s->dev_arena_off + b->out_off;
}

/* A slot's layout, as loader.c lays it out (private.h: fixed_base). */
struct nf_gslot {
    const struct nf_layout *layout;
    uint64_t batch;             /* B */
    size_t fixed_base;          /* where the fixed fields start */
    const size_t *var_vals;     /* where each variable field's values start */
};

/* The copies that put record `rec` (device address of its stored bytes:
 * fixed part, then its variable fields) at place i of the batch whose
 * device slot starts at slot: one per fixed field, one per variable field
 * with bytes (bo: the batch's element offsets, nvar x (B + 1)). Returns
 * how many were written to out (at most nfields). */
unsigned nf__gplan_record(const struct nf_gslot *g, uint8_t *slot, uint64_t i,
                          const uint8_t *rec, const int64_t *bo, struct nf_gpu_copy *out);

#endif
