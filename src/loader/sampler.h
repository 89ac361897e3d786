/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sampler: which record goes where, as a pure function of (seed, epoch,
 * dataset block structure, part, number of parts, batch size, window).
 * Private to src/loader (the loader's one interface header is loader.h;
 * this is its sampler's, kept apart so the tests can reach it).
 *
 * Order of an epoch (docs/loader.md has the why):
 *   1. the dataset's blocks, in a permutation of (seed, epoch) (identity
 *      without shuffle), give the "block order" of all R records;
 *   2. the block order is cut into windows: window w starts at the first
 *      block boundary at or after record w x C if one comes before
 *      (w + 1) x C, else at w x C. So where no block holds more than C
 *      records the windows are whole blocks (a block lies in one window,
 *      and one unit of work reads it), about C records each, at most
 *      C + the largest block - 1; a larger block is cut as before, and no
 *      window holds 2C records; where C is a multiple of equal blocks'
 *      records the windows are exactly C. Window w's records are permuted
 *      by (seed, epoch, w); the result is the epoch's global order;
 *   3. part k of P (rank * gpus + gpu of ranks * gpus) takes a contiguous
 *      slice of the global order, and cuts it into its batches.
 */
#ifndef NUMAFEED_SAMPLER_H
#define NUMAFEED_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

struct nf_sampler {
    /* configuration */
    uint64_t seed;
    bool shuffle;
    bool drop_last;
    uint64_t window;       /* C, records */
    uint64_t batch;        /* B */
    uint64_t part, nparts; /* k of P */
    /* dataset */
    uint64_t records;      /* R */
    uint32_t nblocks;
    uint32_t *block_records; /* per global block */
    uint32_t max_block;      /* the most records of one block */
    uint64_t *block_first;   /* global record index of each block's first record */
    /* this part */
    uint64_t start, len;   /* slice of the global order */
    uint64_t nbatches;     /* per epoch, equal for every part */
    uint64_t last_start;   /* rank position where the last batch starts */
    uint64_t first_window, nwindows; /* windows that can overlap the slice, in
                                      * any epoch (some are empty in some) */
};

/* One epoch's block order: perm[i] is the block at position i; prefix[i]
 * the records before it (nblocks + 1 entries). Owned by one thread. */
struct nf_epoch_plan {
    uint64_t epoch;
    bool valid;
    uint32_t *perm;
    uint64_t *prefix;
};

/*
 * Set up a sampler. block_records (nblocks entries) are copied. Errors
 * (-EINVAL with a message naming the numbers): no records, batch 0,
 * window 0, part >= nparts, fewer records than parts, or a configuration
 * where equal batch counts per part are impossible without drop_last
 * (batch size 1 and records not divisible by parts).
 */
int nf__sampler_init(struct nf_sampler *s, uint64_t seed, bool shuffle, bool drop_last,
                      uint64_t window, uint64_t batch, uint64_t part, uint64_t nparts,
                      uint32_t nblocks, const uint32_t *block_records);
void nf__sampler_free(struct nf_sampler *s);

int nf__plan_make(const struct nf_sampler *s, uint64_t epoch, struct nf_epoch_plan *p);
void nf__plan_free(struct nf_epoch_plan *p);

/* Window w of the plan's epoch: its first block-order position, and its
 * records (0 for an empty window). */
uint64_t nf__window_start(const struct nf_sampler *s, const struct nf_epoch_plan *p, uint64_t w);
uint64_t nf__window_len(const struct nf_sampler *s, const struct nf_epoch_plan *p, uint64_t w);
/* The window holding block-order position pos in the plan's epoch. */
uint64_t nf__window_of(const struct nf_sampler *s, const struct nf_epoch_plan *p, uint64_t pos);
/* The most records a window can hold: what per-window tables are sized by.
 * nf__window_bound is the same for a window, the largest block's records
 * and the dataset's records, before any sampler exists. */
uint64_t nf__window_max(const struct nf_sampler *s);
uint64_t nf__window_bound(uint64_t window, uint64_t max_block, uint64_t records);
/* sigma[j] for j < len: the block-order offset inside window w of the
 * record at final offset j. Identity without shuffle. */
void nf__window_perm(const struct nf_sampler *s, uint64_t epoch, uint64_t w, uint32_t *sigma,
                      uint64_t len);
/* Global record index at block-order position pos of the plan's epoch;
 * *block gets the global block holding it, *in_block its index there. */
uint64_t nf__plan_record(const struct nf_sampler *s, const struct nf_epoch_plan *p,
                          uint64_t pos, uint32_t *block, uint32_t *in_block);

/* idx[j] for j < len: the plan index (into perm and prefix) of the block
 * holding block-order position pos0 + j; one binary search for the first,
 * then a walk, where nf__plan_record searches once per position. */
void nf__plan_span(const struct nf_sampler *s, const struct nf_epoch_plan *p, uint64_t pos0,
                    uint64_t len, uint32_t *idx);
/* nf__plan_record for a position whose plan index i is known (from
 * nf__plan_span); block and in_block must not be NULL. */
static inline uint64_t nf__plan_record_at(const struct nf_sampler *s,
                                           const struct nf_epoch_plan *p, uint32_t i,
                                           uint64_t pos, uint32_t *block, uint32_t *in_block)
{
    uint32_t b = p->perm[i];
    uint32_t k = (uint32_t)(pos - p->prefix[i]);
    *block = b;
    *in_block = k;
    return s->block_first[b] + k;
}

/* Batch of a rank position q, and q's index in it. */
void nf__batch_of(const struct nf_sampler *s, uint64_t q, uint64_t *b, uint64_t *i);
/* First rank position of batch b (b == nbatches gives len). */
uint64_t nf__batch_start(const struct nf_sampler *s, uint64_t b);
uint64_t nf__batch_len(const struct nf_sampler *s, uint64_t b);

/* The whole epoch for this part in delivery order (len entries): tests and
 * `numafeed bench --digest` checks. */
int nf__sampler_epoch_order(const struct nf_sampler *s, uint64_t epoch, uint64_t *out);

#endif
