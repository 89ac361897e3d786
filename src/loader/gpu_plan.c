// SPDX-License-Identifier: Apache-2.0
/*
 * GPU decode's arithmetic (gpu_plan.h says what and why apart). Every size
 * is overflow-checked; nothing here reads a block's bytes.
 *
 * The bounds. A unit's records are some of one window's, and a window is a
 * run of at most `window` consecutive records of the block-shuffled order
 * (sampler.h), so the blocks a unit touches are among the window's: whole
 * blocks inside the run plus at most two cut at its ends. Their decoded
 * bytes are at most the window's records' bytes plus two of the largest
 * block, and there are at most min(window, blocks) of them (each gives the
 * unit a record). A block's stored size is at most zstd's bound of its
 * decoded size (the index is checked against it at open), below
 * decoded + decoded / 256 + 64.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "loader/gpu_plan.h"

/* *at rounded up to NF_GALIGN, then n more bytes: the start of that run. */
static int take(size_t *at, size_t n, size_t *start)
{
    size_t a;
    if (nf__add_size(*at, NF_GALIGN - 1, &a))
        return -EOVERFLOW;
    a &= ~(size_t)(NF_GALIGN - 1);
    if (start)
        *start = a;
    return nf__add_size(a, n, at);
}

/* n items of size each, taken at *at. */
static int take_n(size_t *at, uint64_t n, size_t size, size_t *start)
{
    size_t bytes;
    if (n > SIZE_MAX || nf__mul_size((size_t)n, size, &bytes))
        return -EOVERFLOW;
    return take(at, bytes, start);
}

int nf__gplan_bounds(const struct nf_gplan_input *in, struct nf_gplan_sizes *s)
{
    memset(s, 0, sizeof(*s));
    uint64_t mb = in->window < in->nblocks ? in->window : in->nblocks;
    if (!mb || mb > UINT32_MAX || in->records_bytes > SIZE_MAX || in->max_decoded > SIZE_MAX)
        return -EOVERFLOW;
    s->max_blocks = (uint32_t)mb;
    size_t dec, pad, stored, copies;
    /* decoded bytes of the touched blocks, and each one's alignment */
    if (nf__mul_size((size_t)in->max_decoded, 2, &dec) ||
        nf__add_size(dec, (size_t)in->records_bytes, &dec) ||
        nf__mul_size((size_t)mb, NF_GALIGN, &pad) || nf__add_size(dec, pad, &s->arena))
        return -EOVERFLOW;
    /* their stored bytes: zstd's bound, block by block */
    if (nf__mul_size((size_t)mb, 64 + NF_GALIGN, &pad) || nf__add_size(dec, dec / 256, &stored) ||
        nf__add_size(stored, pad, &s->stored))
        return -EOVERFLOW;
    /* the header: descriptors, nvCOMP's four arrays, the largest gather
     * (a unit's records, each field once) */
    /* one thread block per copy: a launch takes at most 2^31 - 1 */
    if (nf__mul_size((size_t)in->window, in->nfields, &copies) || copies > INT32_MAX)
        return -EOVERFLOW;
    s->max_copies = copies;
    size_t at = 0;
    if (take_n(&at, mb, sizeof(struct nf_gpu_block), NULL))
        return -EOVERFLOW;
    for (int a = 0; a < 4; a++) /* laid out as nf__gplan_place does */
        if (take_n(&at, mb, sizeof(uint64_t), NULL))
            return -EOVERFLOW;
    if (take_n(&at, mb, sizeof(struct nf_gpu_screen), NULL))
        return -EOVERFLOW;
    if (take_n(&at, copies, sizeof(struct nf_gpu_copy), NULL) || take(&at, 0, NULL))
        return -EOVERFLOW;
    s->header = at;
    return 0;
}

int nf__gplan_size(struct nf_gplan_sizes *s, size_t temp)
{
    size_t mb = s->max_blocks, at = s->header;
    s->temp = temp;
    if (take(&at, s->stored, NULL))
        return -EOVERFLOW;
    size_t dev = at; /* the device's copy of the staging ends here too */
    if (take_n(&at, mb, sizeof(struct nf_gpu_result), &s->host_res_off) || take(&at, 0, NULL))
        return -EOVERFLOW;
    s->host_bytes = at;
    if (take(&dev, s->arena, &s->dev_arena_off) ||
        take_n(&dev, mb, sizeof(int32_t), &s->dev_status_off) ||
        take_n(&dev, mb, sizeof(uint64_t), &s->dev_actual_off) ||
        take_n(&dev, mb, sizeof(struct nf_gpu_result), &s->dev_res_off) ||
        take_n(&dev, mb, sizeof(uint64_t), &s->dev_found_off) ||
        take(&dev, NF_GSAFE_MAX, &s->dev_safe_off) ||
        take(&dev, temp, &s->dev_temp_off) || take(&dev, 0, NULL))
        return -EOVERFLOW;
    s->dev_bytes = dev;
    return 0;
}

int nf__gplan_place(const struct nf_block_info *const *bi, uint32_t nb, uint64_t ncopies,
                    const struct nf_gplan_sizes *s, struct nf_gblk *blk, struct nf_gunit *u)
{
    memset(u, 0, sizeof(*u));
    if (nb > s->max_blocks || ncopies > s->max_copies)
        return nf__error(-ENOSPC, "GPU decode: a unit of %u blocks and %llu copies, room for "
                         "%u and %llu", nb, (unsigned long long)ncopies, s->max_blocks,
                         (unsigned long long)s->max_copies);
    u->nb = nb;
    size_t in = 0, arena = 0;
    for (uint32_t k = 0; k < nb; k++) {
        int zstd = bi[k]->codec == NF_CODEC_ZSTD;
        blk[k].zi = zstd ? u->nz++ : UINT32_MAX;
        blk[k].out_off = SIZE_MAX;
        if (take(&in, bi[k]->stored_size, &blk[k].in_off) ||
            (zstd && take(&arena, bi[k]->decoded_size, &blk[k].out_off)))
            return nf__error(-EOVERFLOW, "GPU decode: a unit's sizes overflow");
    }
    size_t at = 0;
    u->blocks_off = 0;
    if (take_n(&at, nb, sizeof(struct nf_gpu_block), NULL) ||
        take_n(&at, u->nz, sizeof(void *), &u->in_ptrs_off) ||
        take_n(&at, u->nz, sizeof(size_t), &u->in_bytes_off) ||
        take_n(&at, u->nz, sizeof(size_t), &u->out_bytes_off) ||
        take_n(&at, u->nz, sizeof(void *), &u->out_ptrs_off) ||
        take_n(&at, u->nz, sizeof(struct nf_gpu_screen), &u->screens_off) ||
        take_n(&at, ncopies, sizeof(struct nf_gpu_copy), &u->copies_off) ||
        take(&at, in, &u->stored_off))
        return nf__error(-EOVERFLOW, "GPU decode: a unit's sizes overflow");
    u->end = at;
    if (in > s->stored || arena > s->arena || u->stored_off > s->header)
        return nf__error(-ENOSPC, "GPU decode: a unit of %u blocks needs %zu stored and %zu "
                         "decoded bytes, room for %zu and %zu", nb, in, arena, s->stored,
                         s->arena);
    return 0;
}

void nf__gplan_header(const struct nf_block_info *const *bi, const struct nf_gblk *blk,
                      const struct nf_gunit *u, const struct nf_gplan_sizes *s, uint8_t *host,
                      uint8_t *dev, bool screen)
{
    struct nf_gpu_screen *sc = (struct nf_gpu_screen *)(void *)(host + u->screens_off);
    uint64_t *found = (uint64_t *)(void *)(dev + s->dev_found_off);
    struct nf_gpu_block *d = (struct nf_gpu_block *)(void *)(host + u->blocks_off);
    const void **in_ptrs = (const void **)(void *)(host + u->in_ptrs_off);
    size_t *in_bytes = (size_t *)(void *)(host + u->in_bytes_off);
    size_t *out_bytes = (size_t *)(void *)(host + u->out_bytes_off);
    void **out_ptrs = (void **)(void *)(host + u->out_ptrs_off);
    for (uint32_t k = 0; k < u->nb; k++) {
        const struct nf_gblk *b = &blk[k];
        uint32_t z = b->zi;
        d[k] = (struct nf_gpu_block){
            .data = nf__gplan_decoded(b, u, s, dev),
            .len = bi[k]->decoded_size,
            .xxh3 = bi[k]->xxh3,
            .status = z == UINT32_MAX ? NULL
                                      : (const int32_t *)(const void *)(dev + s->dev_status_off) + z,
            .actual = z == UINT32_MAX ? NULL
                                      : (const uint64_t *)(const void *)(dev + s->dev_actual_off) + z,
        };
        if (z == UINT32_MAX)
            continue;
        in_ptrs[z] = dev + u->stored_off + b->in_off;
        in_bytes[z] = bi[k]->stored_size;
        out_bytes[z] = bi[k]->decoded_size;
        out_ptrs[z] = dev + s->dev_arena_off + b->out_off;
        if (!screen)
            continue;
        sc[z] = (struct nf_gpu_screen){
            .data = dev + u->stored_off + b->in_off,
            .len = bi[k]->stored_size,
            .xxh3 = bi[k]->stored_xxh3,
            .in_ptr = (const void **)(void *)(dev + u->in_ptrs_off) + z,
            .in_bytes = (uint64_t *)(void *)(dev + u->in_bytes_off) + z,
            .safe = dev + s->dev_safe_off,
            .safe_len = s->safe_len,
            .found = found + z,
        };
        d[k].screened = found + z;
    }
}

unsigned nf__gplan_record(const struct nf_gslot *g, uint8_t *slot, uint64_t i,
                          const uint8_t *rec, const int64_t *bo, struct nf_gpu_copy *out)
{
    const struct nf_layout *lay = g->layout;
    const uint64_t B = g->batch;
    const uint8_t *var = rec + lay->record_bytes;
    unsigned n = 0;
    for (unsigned f = 0; f < lay->nfields; f++) {
        const struct nf_field *fd = &lay->fields[f];
        if (fd->kind == NF_KIND_FIXED) {
            out[n++] = (struct nf_gpu_copy){rec + fd->offset,
                                            slot + g->fixed_base + fd->offset * B + i * fd->bytes,
                                            fd->bytes};
            continue;
        }
        size_t elem = nf__dtype_size(fd->dtype);
        const int64_t *o = bo + fd->var * (B + 1);
        size_t len = (size_t)(o[i + 1] - o[i]) * elem;
        if (len)
            out[n++] = (struct nf_gpu_copy){var, slot + g->var_vals[fd->var] + (size_t)o[i] * elem,
                                            len};
        var += len;
    }
    return n;
}
