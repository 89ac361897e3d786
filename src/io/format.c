// SPDX-License-Identifier: Apache-2.0
/*
 * The shard file format: encoding the fixed parts, validating everything a
 * reader takes from disk before it is used, and checking + decoding blocks.
 *
 * Every number read from a shard is untrusted. The order of the checks is
 * deliberate: sizes are validated before anything is allocated or read
 * (so a flipped bit cannot ask for gigabytes), the footer's checksum is
 * verified before its entries are interpreted, and a block's decoded size is
 * capped and cross-checked with the zstd frame before zstd writes a byte.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/hash.h"
#include <zstd.h>
#include <zstd_errors.h>

#include "internal.h"
#include "io/io.h"

/* 0x89 first so a text-mode transfer or a stray text file cannot match;
 * the trailer magic differs so header and trailer are never confused. */
static const uint8_t header_magic[8] = {0x89, 'N', 'F', 'S', 'H', 'R', 'D', '\n'};
static const uint8_t trailer_magic[8] = {'N', 'F', 'T', 'R', 'A', 'I', 'L', '\n'};

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void where_set(struct nf_where *w, int64_t block, uint64_t off)
{
    if (w) {
        w->block = block;
        w->offset = off;
    }
}

void nf__header_encode(uint8_t out[NF_HEADER_BYTES], uint64_t record_bytes, unsigned nvar,
                       uint32_t flags)
{
    memset(out, 0, NF_HEADER_BYTES);
    memcpy(out, header_magic, 8);
    put32(out + 8, nvar ? NF_FORMAT_VERSION : NF_FORMAT_VERSION_FIXED);
    put32(out + 12, flags);
    put32(out + 16, NF_HEADER_BYTES);
    put32(out + 20, nvar); /* version 2: variable fields per record */
    put64(out + 24, record_bytes);
    put64(out + 56, XXH3_64bits(out, 56));
}

void nf__index_entry_encode(uint8_t out[NF_INDEX_ENTRY_BYTES], const struct nf_block_info *b)
{
    put64(out, b->offset);
    put32(out + 8, b->stored_size);
    put32(out + 12, b->decoded_size);
    put32(out + 16, b->records);
    put32(out + 20, b->codec);
    put64(out + 24, b->xxh3);
}

void nf__footer_head_encode(uint8_t out[NF_FOOTER_HEAD_BYTES], uint32_t nblocks, uint64_t records)
{
    put32(out, nblocks);
    put32(out + 4, 0);
    put64(out + 8, records);
}

void nf__var_len_encode(uint8_t *out, const uint32_t *len, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put32(out + 4 * i, len[i]);
}

void nf__stored_hash_encode(uint8_t *out, const struct nf_block_info *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put64(out + NF_STORED_HASH_BYTES * i, b[i].stored_xxh3);
}

void nf__trailer_encode(uint8_t out[NF_TRAILER_BYTES], uint64_t footer_offset,
                         uint64_t footer_size, uint64_t footer_xxh3)
{
    put64(out, footer_offset);
    put64(out + 8, footer_size);
    put64(out + 16, footer_xxh3);
    memcpy(out + 24, trailer_magic, 8);
}

int nf__pread_full(int fd, void *buf, size_t len, uint64_t off, const char *name)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            return nf__error(-e, "%s: read of %zu bytes at offset %llu: %s", name, len - done,
                              (unsigned long long)(off + done), strerror(e));
        }
        if (r == 0)
            return nf__error(NUMAFEED_ECORRUPT,
                              "%s: short read at offset %llu: end of file after %zu of %zu bytes",
                              name, (unsigned long long)(off + done), done, len);
        done += (size_t)r;
    }
    return 0;
}

/* Header: magic, then version (before the checksum, so that a file from a
 * newer numafeed is reported as a version problem rather than as damage),
 * then checksum, then the fields the checksum vouches for. */
static int header_decode(const uint8_t *h, const char *name, struct nf_shard_index *x,
                         struct nf_where *w)
{
    if (memcmp(h, header_magic, 8)) {
        where_set(w, -1, 0);
        return nf__error(NUMAFEED_ECORRUPT, "%s: header at offset 0: bad magic (not a numafeed shard)",
                          name);
    }
    uint32_t version = get32(h + 8);
    if (version < NF_FORMAT_VERSION_FIXED || version > NF_FORMAT_VERSION) {
        where_set(w, -1, 8);
        return nf__error(NUMAFEED_EVERSION, "%s: header at offset 8: format version %u, this "
                          "numafeed reads versions %u and %u", name, version,
                          NF_FORMAT_VERSION_FIXED, NF_FORMAT_VERSION);
    }
    uint64_t sum = get64(h + 56), want = XXH3_64bits(h, 56);
    if (sum != want) {
        where_set(w, -1, 56);
        return nf__error(NUMAFEED_ECHECKSUM, "%s: header at offset 56: checksum %016llx, "
                          "computed %016llx", name, (unsigned long long)sum, (unsigned long long)want);
    }
    uint32_t flags = get32(h + 12);
    if (flags & ~NF_SHARD_FLAG_STORED_HASH) {
        where_set(w, -1, 12);
        return nf__error(NUMAFEED_ECORRUPT, "%s: header at offset 12: reserved flag bits set "
                          "(0x%08x)", name, flags & ~NF_SHARD_FLAG_STORED_HASH);
    }
    x->stored_hashes = (flags & NF_SHARD_FLAG_STORED_HASH) != 0;
    if (get32(h + 16) != NF_HEADER_BYTES) {
        where_set(w, -1, 16);
        return nf__error(NUMAFEED_ECORRUPT, "%s: header at offset 16: header size %u, expected %u",
                          name, get32(h + 16), NF_HEADER_BYTES);
    }
    if ((version == 1 && get32(h + 20)) || get64(h + 32) || get64(h + 40) || get64(h + 48)) {
        where_set(w, -1, 20);
        return nf__error(NUMAFEED_ECORRUPT, "%s: header: reserved fields are not zero", name);
    }
    x->version = version;
    x->nvar = version == 1 ? 0 : get32(h + 20);
    if (version == 2 && (x->nvar == 0 || x->nvar > NF_MAX_FIELDS)) {
        where_set(w, -1, 20);
        return nf__error(NUMAFEED_ECORRUPT, "%s: header at offset 20: %u variable fields (1 to "
                          "%u in version 2)", name, x->nvar, NF_MAX_FIELDS);
    }
    x->record_bytes = get64(h + 24);
    if ((x->nvar == 0 && x->record_bytes == 0) || x->record_bytes > NF_BLOCK_CAP) {
        where_set(w, -1, 24);
        return nf__error(NUMAFEED_ECORRUPT, "%s: header at offset 24: record size %llu bytes "
                          "(%u to %u allowed)", name, (unsigned long long)x->record_bytes,
                          x->nvar ? 0 : 1, NF_BLOCK_CAP);
    }
    return 0;
}

/* Version 2: the decoded size block b must have, from its records' fixed
 * parts and their variable lengths in the table. */
static uint64_t block_bytes_v2(const struct nf_shard_index *x, const struct nf_block_info *b)
{
    /* the table holds x->records entries per field and the caller checked
     * first_record + records against that; lengths < 2^32, < 2^38 of them
     * in a file: sums below 2^70 would overflow, so saturate instead */
    uint64_t sum = (uint64_t)b->records * x->record_bytes;
    const uint32_t *l = x->var_len + b->first_record * x->nvar;
    for (uint64_t i = 0; i < (uint64_t)b->records * x->nvar; i++)
        if (__builtin_add_overflow(sum, l[i], &sum))
            return UINT64_MAX;
    return sum;
}

/* One index entry against everything known so far; *prev_end is the end of
 * the previous block (or the header), advanced on success. */
static int entry_check(const struct nf_block_info *b, uint32_t i, const char *name,
                       const struct nf_shard_index *x, uint64_t footer_offset,
                       uint64_t entry_off, uint64_t *prev_end, struct nf_where *w)
{
    where_set(w, i, entry_off);
    const char *bad = NULL;
    uint64_t want = 0;
    if (b->codec != NF_CODEC_RAW && b->codec != NF_CODEC_ZSTD)
        bad = "unknown codec";
    else if (b->records == 0 || b->stored_size == 0)
        bad = "empty block";
    else if (b->decoded_size > NF_BLOCK_CAP)
        bad = "decoded size above the 256 MiB block cap";
    else if (b->first_record + b->records > x->records)
        bad = "more records than the footer holds";
    else if (x->nvar ? block_bytes_v2(x, b) != b->decoded_size
                     : __builtin_mul_overflow((uint64_t)b->records, x->record_bytes, &want) ||
                           want != b->decoded_size)
        bad = x->nvar ? "decoded size is not its records' fixed parts plus their variable "
                        "lengths"
                      : "decoded size is not records times record size";
    else if (b->codec == NF_CODEC_RAW && b->stored_size != b->decoded_size)
        bad = "raw block whose stored size differs from its decoded size";
    else if (b->codec == NF_CODEC_ZSTD && b->stored_size > ZSTD_compressBound(b->decoded_size))
        bad = "zstd block larger than zstd's bound for its decoded size";
    else if (b->offset < *prev_end)
        bad = b->offset < NF_HEADER_BYTES ? "block offset inside the header"
                                          : "block overlaps the previous one (offsets must ascend)";
    else if (b->offset > footer_offset || b->stored_size > footer_offset - b->offset)
        bad = "block extends past the data region into the footer";
    if (bad)
        return nf__error(NUMAFEED_ECORRUPT, "%s: block %u (index entry at offset %llu): %s "
                          "(offset %llu, stored %u, decoded %u, records %u, codec %u)",
                          name, i, (unsigned long long)entry_off, bad,
                          (unsigned long long)b->offset, b->stored_size, b->decoded_size,
                          b->records, b->codec);
    *prev_end = b->offset + b->stored_size;
    return 0;
}

void nf__shard_index_free(struct nf_shard_index *idx)
{
    if (!idx)
        return;
    free(idx->blocks);
    free(idx->var_len);
    memset(idx, 0, sizeof(*idx));
}

/* Header and trailer: *foff and *fsize locate the footer, which ends where
 * the trailer starts. */
static int load_ends(int fd, const char *name, uint64_t file_size, struct nf_shard_index *out,
                     uint64_t *foff, uint64_t *fsize, uint64_t *fsum, struct nf_where *w)
{
    const uint64_t min_size = NF_HEADER_BYTES + NF_FOOTER_HEAD_BYTES + NF_TRAILER_BYTES;
    if (file_size < min_size) {
        where_set(w, -1, file_size);
        return nf__error(NUMAFEED_ECORRUPT, "%s: truncated: %llu bytes, a shard has at least %llu",
                          name, (unsigned long long)file_size, (unsigned long long)min_size);
    }
    uint8_t h[NF_HEADER_BYTES], t[NF_TRAILER_BYTES];
    int rc = nf__pread_full(fd, h, sizeof(h), 0, name);
    if (rc)
        return where_set(w, -1, 0), rc;
    if ((rc = header_decode(h, name, out, w)))
        return rc;
    uint64_t toff = file_size - NF_TRAILER_BYTES, fend;
    if ((rc = nf__pread_full(fd, t, sizeof(t), toff, name)))
        return where_set(w, -1, toff), rc;
    if (memcmp(t + 24, trailer_magic, 8)) {
        where_set(w, -1, toff + 24);
        return nf__error(NUMAFEED_ECORRUPT, "%s: no valid trailer at offset %llu (bad magic): "
                          "the file is truncated or not a shard", name, (unsigned long long)toff);
    }
    *foff = get64(t), *fsize = get64(t + 8), *fsum = get64(t + 16);
    if (*foff < NF_HEADER_BYTES || *fsize < NF_FOOTER_HEAD_BYTES ||
        __builtin_add_overflow(*foff, *fsize, &fend) || fend != toff) {
        where_set(w, -1, toff);
        return nf__error(NUMAFEED_ECORRUPT, "%s: trailer at offset %llu: footer at %llu of %llu "
                          "bytes does not end where the trailer starts (file truncated or damaged)",
                          name, (unsigned long long)toff, (unsigned long long)*foff,
                          (unsigned long long)*fsize);
    }
    return 0;
}

/* The footer's size is exactly its head, n entries, (version 2) the
 * length table of records x nvar entries and (NF_SHARD_FLAG_STORED_HASH)
 * n stored hashes: computed without overflow. */
static int footer_size_ok(const struct nf_shard_index *x, uint32_t n, uint64_t records,
                          uint64_t fsize)
{
    uint64_t want = NF_FOOTER_HEAD_BYTES + (uint64_t)n * NF_INDEX_ENTRY_BYTES, table;
    if (__builtin_mul_overflow(records, (uint64_t)x->nvar * 4u, &table) ||
        __builtin_add_overflow(want, table, &want))
        return 0;
    if (x->stored_hashes &&
        __builtin_add_overflow(want, (uint64_t)n * NF_STORED_HASH_BYTES, &want))
        return 0;
    return n > 0 && want == fsize;
}

/* Every index entry, checked; *out gets blocks and the maxima. stored:
 * the footer's table of stored hashes, NULL when it has none. */
static int load_entries(const uint8_t *footer, uint32_t n, const uint8_t *stored,
                        const char *name, uint64_t foff, struct nf_shard_index *out,
                        struct nf_where *w)
{
    struct nf_block_info *b = calloc(n, sizeof(*b));
    if (!b)
        return nf__error(-ENOMEM, "%s: out of memory for %u index entries", name, n);
    uint64_t prev_end = NF_HEADER_BYTES, sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = footer + NF_FOOTER_HEAD_BYTES + (size_t)i * NF_INDEX_ENTRY_BYTES;
        b[i].offset = get64(e);
        b[i].stored_size = get32(e + 8);
        b[i].decoded_size = get32(e + 12);
        b[i].records = get32(e + 16);
        b[i].codec = get32(e + 20);
        b[i].xxh3 = get64(e + 24);
        b[i].stored_xxh3 = stored ? get64(stored + (size_t)i * NF_STORED_HASH_BYTES) : 0;
        b[i].first_record = sum;
        uint64_t eoff = foff + (uint64_t)(e - footer);
        int rc = entry_check(&b[i], i, name, out, foff, eoff, &prev_end, w);
        if (rc) {
            free(b);
            return rc;
        }
        sum += b[i].records; /* n < 2^32 entries of < 2^32 records: no overflow */
        if (b[i].stored_size > out->max_stored)
            out->max_stored = b[i].stored_size;
        if (b[i].decoded_size > out->max_decoded)
            out->max_decoded = b[i].decoded_size;
    }
    if (sum != out->records) {
        free(b);
        where_set(w, -1, foff + 8);
        return nf__error(NUMAFEED_ECORRUPT, "%s: footer at offset %llu: blocks hold %llu records, "
                          "footer says %llu", name, (unsigned long long)foff,
                          (unsigned long long)sum, (unsigned long long)out->records);
    }
    out->blocks = b;
    out->nblocks = n;
    return 0;
}

int nf__shard_load(int fd, const char *name, uint64_t file_size, struct nf_shard_index *out,
                    struct nf_where *w)
{
    memset(out, 0, sizeof(*out));
    uint64_t foff = 0, fsize = 0, fsum = 0;
    int rc = load_ends(fd, name, file_size, out, &foff, &fsize, &fsum, w);
    if (rc)
        return rc;
    /* fsize < file_size here, so the allocation is bounded by the file. */
    uint8_t *footer = malloc(fsize);
    if (!footer)
        return nf__error(-ENOMEM, "%s: out of memory for a %llu-byte footer", name,
                          (unsigned long long)fsize);
    if ((rc = nf__pread_full(fd, footer, fsize, foff, name))) {
        free(footer);
        return where_set(w, -1, foff), rc;
    }
    uint64_t got = XXH3_64bits(footer, fsize);
    uint32_t n = get32(footer);
    out->records = get64(footer + 8);
    if (got != fsum)
        rc = nf__error(NUMAFEED_ECHECKSUM, "%s: footer at offset %llu: checksum %016llx, "
                       "trailer says %016llx", name, (unsigned long long)foff,
                       (unsigned long long)got, (unsigned long long)fsum);
    else if (get32(footer + 4) || !footer_size_ok(out, n, out->records, fsize))
        rc = nf__error(NUMAFEED_ECORRUPT, "%s: footer at offset %llu: %u blocks and %llu "
                       "records in a footer of %llu bytes, or reserved field set", name,
                       (unsigned long long)foff, n, (unsigned long long)out->records,
                       (unsigned long long)fsize);
    if (rc) {
        free(footer);
        where_set(w, -1, foff);
        return rc;
    }
    /* the length table follows the entries, the stored hashes follow it;
     * the footer's size was just checked to be exactly these */
    const uint8_t *t = footer + NF_FOOTER_HEAD_BYTES + (size_t)n * NF_INDEX_ENTRY_BYTES;
    const uint8_t *stored = out->stored_hashes ? t + (size_t)out->records * out->nvar * 4u : NULL;
    if (out->nvar) {
        size_t cnt = (size_t)out->records * out->nvar;
        out->var_len = malloc(cnt ? cnt * sizeof(uint32_t) : 1);
        if (!out->var_len) {
            free(footer);
            return nf__error(-ENOMEM, "%s: out of memory for %zu record lengths", name, cnt);
        }
        for (size_t i = 0; i < cnt; i++)
            out->var_len[i] = get32(t + 4 * i);
    }
    rc = load_entries(footer, n, stored, name, foff, out, w);
    free(footer);
    if (rc) {
        nf__shard_index_free(out);
        return rc;
    }
    out->file_size = file_size;
    out->footer_offset = foff;
    return 0;
}

int nf__shard_layout_check(const struct nf_shard_index *idx, const struct nf_layout *layout,
                           const char *name)
{
    if (idx->record_bytes == layout->record_bytes && idx->nvar == layout->nvar)
        return 0;
    return nf__error(NUMAFEED_ECORRUPT, "%s: records of %llu fixed bytes and %u variable fields, "
                     "the manifest's layout has %llu and %u", name,
                     (unsigned long long)idx->record_bytes, idx->nvar,
                     (unsigned long long)layout->record_bytes, layout->nvar);
}

int nf__block_check_frame(const char *shard, uint32_t block_no, const struct nf_block_info *b,
                          const void *src)
{
    const unsigned long long off = (unsigned long long)b->offset;
    if (b->codec == NF_CODEC_RAW)
        return 0;
    if (b->codec != NF_CODEC_ZSTD)
        return nf__error(NUMAFEED_ECORRUPT, "%s: block %u at offset %llu: unknown codec %u",
                          shard, block_no, off, b->codec);
    /* Both checks before decoding: a frame that claims a different size,
     * or that is followed by more data, is refused whatever it holds. */
    unsigned long long csize = ZSTD_getFrameContentSize(src, b->stored_size);
    if (csize == ZSTD_CONTENTSIZE_ERROR)
        return nf__error(NUMAFEED_ECORRUPT, "%s: block %u at offset %llu: not a zstd frame",
                          shard, block_no, off);
    /* Our writer always records the size; a frame without one was not
     * written by numafeed (or had its header damaged into a valid one). */
    if (csize == ZSTD_CONTENTSIZE_UNKNOWN)
        return nf__error(NUMAFEED_ECORRUPT, "%s: block %u at offset %llu: zstd frame does "
                          "not declare its content size", shard, block_no, off);
    if (csize != b->decoded_size)
        return nf__error(NUMAFEED_ECORRUPT, "%s: block %u at offset %llu: zstd frame declares "
                          "%llu bytes, the index says %u", shard, block_no, off, csize,
                          b->decoded_size);
    size_t fsize = ZSTD_findFrameCompressedSize(src, b->stored_size);
    if (ZSTD_isError(fsize) || fsize != b->stored_size)
        return nf__error(NUMAFEED_ECORRUPT, "%s: block %u at offset %llu: zstd frame is "
                          "%s, the index says %u stored bytes", shard, block_no, off,
                          ZSTD_isError(fsize) ? ZSTD_getErrorName(fsize) : "a different size",
                          b->stored_size);
    return 0;
}

int nf__block_check_stored_hash(const char *shard, uint32_t block_no,
                                const struct nf_block_info *b, const void *src)
{
    uint64_t h = XXH3_64bits(src, b->stored_size);
    if (h != b->stored_xxh3)
        return nf__error(NUMAFEED_ECHECKSUM, "%s: block %u at offset %llu: stored bytes hash to "
                          "%016llx, the index says %016llx", shard, block_no,
                          (unsigned long long)b->offset, (unsigned long long)h,
                          (unsigned long long)b->stored_xxh3);
    return 0;
}

int nf__block_decode(struct ZSTD_DCtx_s *dctx, const char *shard, uint32_t block_no,
                      const struct nf_block_info *b, const void *src, void *dst, size_t dst_len)
{
    const unsigned long long off = (unsigned long long)b->offset;
    if (dst_len < b->decoded_size)
        return nf__error(-EINVAL, "%s: block %u at offset %llu: destination of %zu bytes for "
                          "%u decoded bytes", shard, block_no, off, dst_len, b->decoded_size);
    int rc = nf__block_check_frame(shard, block_no, b, src);
    if (rc)
        return rc;
    if (b->codec == NF_CODEC_ZSTD) {
        if (!dctx)
            return nf__error(-EINVAL, "%s: block %u: no zstd context", shard, block_no);
        /* Capacity exactly the index's size: a frame that would produce more
         * (a bomb, a lying index) fails inside zstd instead of overflowing. */
        size_t got = ZSTD_decompressDCtx(dctx, dst, b->decoded_size, src, b->stored_size);
        if (ZSTD_isError(got)) {
            int code = ZSTD_getErrorCode(got) == ZSTD_error_checksum_wrong ? NUMAFEED_ECHECKSUM
                                                                           : NUMAFEED_ECORRUPT;
            return nf__error(code, "%s: block %u at offset %llu: zstd: %s", shard, block_no, off,
                              ZSTD_getErrorName(got));
        }
        if (got != b->decoded_size)
            return nf__error(NUMAFEED_ECORRUPT, "%s: block %u at offset %llu: zstd produced %zu "
                              "bytes, the index says %u", shard, block_no, off, got,
                              b->decoded_size);
    } else if (dst != src) {
        memcpy(dst, src, b->decoded_size);
    }
    uint64_t h = XXH3_64bits(dst, b->decoded_size);
    if (h != b->xxh3)
        return nf__error(NUMAFEED_ECHECKSUM, "%s: block %u at offset %llu: decoded bytes hash to "
                          "%016llx, the index says %016llx", shard, block_no, off,
                          (unsigned long long)h, (unsigned long long)b->xxh3);
    return 0;
}
