// SPDX-License-Identifier: Apache-2.0
/* The sampler (see sampler.h for the order it defines). Everything here is a
 * pure function of its arguments: no state survives a call but the plan the
 * caller owns, so the order cannot depend on threads or timing. */
#include "loader/sampler.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "internal.h"

/* splitmix64: a tiny, well-studied generator; its state is one counter, so
 * a stream is fully determined by its 64-bit key. */
static uint64_t mix_next(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Unbiased integer in [0, n) (Lemire's multiply-and-reject). */
static uint64_t below(uint64_t *state, uint64_t n)
{
    unsigned __int128 m = (unsigned __int128)mix_next(state) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t t = -n % n;
        while (lo < t) {
            m = (unsigned __int128)mix_next(state) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

/* The key of one stream: XXH3 of (purpose, epoch, index) under the seed. */
static uint64_t stream_key(uint64_t seed, uint64_t purpose, uint64_t epoch, uint64_t index)
{
    uint64_t in[3] = {purpose, epoch, index};
    return XXH3_64bits_withSeed(in, sizeof(in), seed);
}

int nf__sampler_init(struct nf_sampler *s, uint64_t seed, bool shuffle, bool drop_last,
                      uint64_t window, uint64_t batch, uint64_t part, uint64_t nparts,
                      uint32_t nblocks, const uint32_t *block_records)
{
    memset(s, 0, sizeof(*s));
    if (batch == 0 || window == 0 || window > UINT32_MAX / 2) /* 2C - 1 fits 32 bits */
        return nf__error(-EINVAL, "sampler: batch size %llu and window %llu must be >= 1 (window "
                          "<= 2^31-1)", (unsigned long long)batch, (unsigned long long)window);
    if (nparts == 0 || part >= nparts)
        return nf__error(-EINVAL, "sampler: part %llu of %llu", (unsigned long long)part,
                          (unsigned long long)nparts);
    s->seed = seed;
    s->shuffle = shuffle;
    s->drop_last = drop_last;
    s->window = window;
    s->batch = batch;
    s->part = part;
    s->nparts = nparts;
    s->nblocks = nblocks;
    s->block_records = malloc((nblocks ? nblocks : 1) * sizeof(uint32_t));
    s->block_first = malloc((nblocks ? nblocks : 1) * sizeof(uint64_t));
    if (!s->block_records || !s->block_first) {
        nf__sampler_free(s);
        return nf__error(-ENOMEM, "sampler: out of memory");
    }
    for (uint32_t i = 0; i < nblocks; i++) {
        s->block_records[i] = block_records[i];
        s->block_first[i] = s->records;
        s->records += block_records[i];
        if (block_records[i] > s->max_block)
            s->max_block = block_records[i];
    }
    uint64_t R = s->records, P = nparts, B = batch;
    if (R < P) {
        nf__sampler_free(s);
        return nf__error(-EINVAL, "sampler: %llu records cannot be split over %llu parts (ranks "
                          "x GPUs)", (unsigned long long)R, (unsigned long long)P);
    }
    if (drop_last) {
        uint64_t per = R / P;
        s->nbatches = per / B;
        s->len = s->nbatches * B;
        s->start = part * per;
        if (s->nbatches == 0) {
            nf__sampler_free(s);
            return nf__error(-EINVAL, "sampler: with drop_last each of %llu parts gets %llu "
                              "records, less than one batch of %llu", (unsigned long long)P,
                              (unsigned long long)(R / P), (unsigned long long)B);
        }
        s->last_start = (s->nbatches - 1) * B;
    } else {
        /* Records as even as possible: the first R % P parts get one more.
         * Every part has nb = ceil(ceil(R/P) / B) batches. A part one record
         * short of a part whose share is a multiple of B plus one would
         * come out one batch short: its last two batches become B-1 and 1
         * records instead, so batch counts stay equal and none is empty. */
        uint64_t q = R / P, rem = R % P;
        s->len = q + (part < rem);
        s->start = part * q + (part < rem ? part : rem);
        uint64_t maxshare = q + (rem != 0);
        s->nbatches = (maxshare + B - 1) / B;
        s->last_start = (s->nbatches - 1) * B;
        if (s->len <= s->last_start) {
            if (B == 1) {
                nf__sampler_free(s);
                return nf__error(-EINVAL, "sampler: %llu records over %llu parts with batch size "
                                  "1 cannot give every part the same number of batches; use "
                                  "drop_last", (unsigned long long)R, (unsigned long long)P);
            }
            s->last_start = s->len - 1;
        }
    }
    /* The window holding position q is q / C's or the one before, whatever
     * the epoch's block order (window w starts in [w x C, (w + 1) x C)). */
    s->first_window = s->start / window ? s->start / window - 1 : 0;
    s->nwindows = s->len ? (s->start + s->len - 1) / window - s->first_window + 1 : 0;
    return 0;
}

void nf__sampler_free(struct nf_sampler *s)
{
    free(s->block_records);
    free(s->block_first);
    s->block_records = NULL;
    s->block_first = NULL;
}

int nf__plan_make(const struct nf_sampler *s, uint64_t epoch, struct nf_epoch_plan *p)
{
    if (!p->perm) {
        p->perm = malloc((s->nblocks ? s->nblocks : 1) * sizeof(*p->perm));
        p->prefix = malloc(((size_t)s->nblocks + 1) * sizeof(*p->prefix));
        if (!p->perm || !p->prefix) {
            nf__plan_free(p);
            return nf__error(-ENOMEM, "sampler: out of memory for an epoch plan");
        }
    }
    for (uint32_t i = 0; i < s->nblocks; i++)
        p->perm[i] = i;
    if (s->shuffle && s->nblocks > 1) {
        uint64_t st = stream_key(s->seed, 1, epoch, 0);
        for (uint32_t i = s->nblocks - 1; i > 0; i--) {
            uint32_t j = (uint32_t)below(&st, (uint64_t)i + 1);
            uint32_t t = p->perm[i];
            p->perm[i] = p->perm[j];
            p->perm[j] = t;
        }
    }
    p->prefix[0] = 0;
    for (uint32_t i = 0; i < s->nblocks; i++)
        p->prefix[i + 1] = p->prefix[i] + s->block_records[p->perm[i]];
    p->epoch = epoch;
    p->valid = true;
    return 0;
}

void nf__plan_free(struct nf_epoch_plan *p)
{
    free(p->perm);
    free(p->prefix);
    memset(p, 0, sizeof(*p));
}

/* The plan index of the block holding block-order position pos: the last
 * i with prefix[i] <= pos (blocks with 0 records are skipped). */
static uint32_t plan_index(const struct nf_sampler *s, const struct nf_epoch_plan *p, uint64_t pos)
{
    uint32_t lo = 0, hi = s->nblocks; /* prefix[lo] <= pos < prefix[hi] */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (p->prefix[mid] <= pos)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

uint64_t nf__window_start(const struct nf_sampler *s, const struct nf_epoch_plan *p, uint64_t w)
{
    if (w >= (s->records + s->window - 1) / s->window)
        return s->records;
    /* the first block boundary at or after q: q itself, or the end of the
     * block holding it */
    uint64_t q = w * s->window;
    uint32_t i = plan_index(s, p, q);
    uint64_t b = p->prefix[i] == q ? q : p->prefix[i + 1];
    return b - q < s->window ? b : q; /* inside a block larger than a window: at q */
}

uint64_t nf__window_len(const struct nf_sampler *s, const struct nf_epoch_plan *p, uint64_t w)
{
    return nf__window_start(s, p, w + 1) - nf__window_start(s, p, w);
}

uint64_t nf__window_bound(uint64_t window, uint64_t max_block, uint64_t records)
{
    /* a window's start lies in [w x C, (w + 1) x C), and its end is the
     * next one's: past (w + 1) x C by less than a block no larger than C */
    uint64_t big = max_block < window ? max_block : window;
    uint64_t m = window + (big ? big - 1 : 0);
    return m < records ? m : (records ? records : 1);
}

uint64_t nf__window_max(const struct nf_sampler *s)
{
    return nf__window_bound(s->window, s->max_block, s->records);
}

void nf__window_perm(const struct nf_sampler *s, uint64_t epoch, uint64_t w, uint32_t *sigma,
                      uint64_t len)
{
    for (uint64_t j = 0; j < len; j++)
        sigma[j] = (uint32_t)j;
    if (!s->shuffle || len < 2)
        return;
    uint64_t st = stream_key(s->seed, 2, epoch, w);
    for (uint64_t i = len - 1; i > 0; i--) {
        uint64_t j = below(&st, i + 1);
        uint32_t t = sigma[i];
        sigma[i] = sigma[j];
        sigma[j] = t;
    }
}

uint64_t nf__window_of(const struct nf_sampler *s, const struct nf_epoch_plan *p, uint64_t pos)
{
    /* window w starts in [w x C, (w + 1) x C): pos is in pos / C's window,
     * or, before that one's start, in the one before */
    uint64_t w = pos / s->window;
    return nf__window_start(s, p, w) <= pos ? w : w - 1;
}

uint64_t nf__plan_record(const struct nf_sampler *s, const struct nf_epoch_plan *p, uint64_t pos,
                          uint32_t *block, uint32_t *in_block)
{
    uint32_t b, k;
    uint64_t id = nf__plan_record_at(s, p, plan_index(s, p, pos), pos, &b, &k);
    if (block)
        *block = b;
    if (in_block)
        *in_block = k;
    return id;
}

void nf__plan_span(const struct nf_sampler *s, const struct nf_epoch_plan *p, uint64_t pos0,
                    uint64_t len, uint32_t *idx)
{
    if (!len)
        return;
    uint32_t lo = plan_index(s, p, pos0);
    /* positions stay below prefix[nblocks] (the record count), so lo + 1
     * never passes the last block; empty blocks are stepped over */
    for (uint64_t j = 0; j < len; j++) {
        while (p->prefix[lo + 1] <= pos0 + j)
            lo++;
        idx[j] = lo;
    }
}

uint64_t nf__batch_start(const struct nf_sampler *s, uint64_t b)
{
    if (b >= s->nbatches)
        return s->len;
    return b + 1 == s->nbatches ? s->last_start : b * s->batch;
}

uint64_t nf__batch_len(const struct nf_sampler *s, uint64_t b)
{
    return nf__batch_start(s, b + 1) - nf__batch_start(s, b);
}

void nf__batch_of(const struct nf_sampler *s, uint64_t q, uint64_t *b, uint64_t *i)
{
    uint64_t k = q / s->batch;
    if (k + 1 >= s->nbatches || q >= s->last_start)
        k = s->nbatches - 1;
    *b = k;
    *i = q - nf__batch_start(s, k);
}

int nf__sampler_epoch_order(const struct nf_sampler *s, uint64_t epoch, uint64_t *out)
{
    struct nf_epoch_plan plan = {0};
    int rc = nf__plan_make(s, epoch, &plan);
    if (rc)
        return rc;
    uint32_t *sigma = malloc(nf__window_max(s) * sizeof(*sigma));
    if (!sigma) {
        nf__plan_free(&plan);
        return nf__error(-ENOMEM, "sampler: out of memory");
    }
    for (uint64_t w = s->first_window; w < s->first_window + s->nwindows; w++) {
        uint64_t wlen = nf__window_len(s, &plan, w), w0 = nf__window_start(s, &plan, w);
        nf__window_perm(s, epoch, w, sigma, wlen);
        uint64_t a = w0 > s->start ? w0 : s->start;
        uint64_t e = w0 + wlen < s->start + s->len ? w0 + wlen : s->start + s->len;
        for (uint64_t p = a; p < e; p++)
            out[p - s->start] = nf__plan_record(s, &plan, w0 + sigma[p - w0], NULL, NULL);
    }
    free(sigma);
    nf__plan_free(&plan);
    return 0;
}
