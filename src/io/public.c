// SPDX-License-Identifier: Apache-2.0
/*
 * src/io's public face for tools and benchmarks (include/numafeed.h):
 * the field syntax, the layout check, numafeed_check and the read-only
 * dataset handle. Each is a thin layer over io/io.h; public structs are
 * filled field by field from the internal ones, so either side may change
 * its layout without breaking the other.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "io/io.h"

/* The public limits and codes are the format's own, spelled twice. */
_Static_assert(NUMAFEED_MAX_FIELDS == NF_MAX_FIELDS, "field limit");
_Static_assert(NUMAFEED_MAX_BLOCK_BYTES == NF_BLOCK_CAP, "block cap");
_Static_assert(NUMAFEED_FIELD_MAX_DIMS == NF_MAX_DIMS, "dimension limit");
_Static_assert((int)NUMAFEED_BLOCK_RAW == (int)NF_CODEC_RAW &&
               (int)NUMAFEED_BLOCK_ZSTD == (int)NF_CODEC_ZSTD, "block codecs");

/* ---- record layout ------------------------------------------------------ */

size_t numafeed_dtype_size(const char *dtype)
{
    return nf__dtype_size(nf__dtype_lookup(dtype));
}

int numafeed_field_parse(char *spec, struct numafeed_field *out)
{
    if (!out)
        return nf__error(-EINVAL, "numafeed_field_parse: out is NULL");
    return nf__field_parse(spec, out);
}

int numafeed_layout_check(const struct numafeed_field *fields, size_t nfields,
                          uint64_t *record_bytes)
{
    struct nf_layout l;
    int rc = nf__layout_build(fields, nfields, &l);
    if (rc)
        return rc;
    if (record_bytes)
        *record_bytes = l.record_bytes;
    nf__layout_free(&l);
    return 0;
}

/* ---- numafeed_check ----------------------------------------------------- */

struct relay {
    void (*problem)(void *user, const struct numafeed_check_problem *p);
    void *user;
};

static void relay_problem(void *user, const struct nf_check_problem *p)
{
    const struct relay *r = user;
    struct numafeed_check_problem q = {
        .file = p->file, .block = p->block, .offset = p->offset, .code = p->code,
        .message = p->message,
    };
    r->problem(r->user, &q);
}

int numafeed_check(const char *dir, int follow_symlinks,
                   void (*problem)(void *user, const struct numafeed_check_problem *p),
                   void *user, struct numafeed_check_summary *sum)
{
    if (!dir)
        return nf__error(-EINVAL, "numafeed_check: dir is NULL");
    struct numafeed_check_summary full = {.size = sizeof(full)};
    /* refuse a bad size before reading every byte of the dataset */
    if (sum && nf__copy_out(sum, &full, sizeof(full), "numafeed_check_summary"))
        return -EINVAL;
    struct relay r = {problem, user};
    struct nf_check_summary s;
    int n = nf__check_dataset(dir, follow_symlinks, problem ? relay_problem : NULL, &r, &s);
    if (n < 0 || !sum)
        return n;
    full.shards = s.shards;
    full.records = s.records;
    full.record_bytes = s.record_bytes;
    full.blocks = s.blocks;
    full.zstd_blocks = s.zstd_blocks;
    full.raw_blocks = s.raw_blocks;
    full.file_bytes = s.file_bytes;
    full.decoded_bytes = s.decoded_bytes;
    full.problems = s.problems;
    full.stored_hash_shards = s.stored_hash_shards;
    nf__copy_out(sum, &full, sizeof(full), "numafeed_check_summary");
    return n;
}

/* ---- the read-only dataset handle --------------------------------------- */

struct numafeed_dataset {
    struct nf_dataset *ds;
    /* pread: one synchronous read at a time needs no ring; buffered, so a
     * block's read buffer is its stored size (nf__dataset_max_stored fits all) */
    struct nf_reader *reader;
    uint8_t *stored, *decoded;  /* read and decode buffers, allocated at first use */
};

int numafeed_dataset_open(const char *dir, numafeed_dataset **out)
{
    if (!out || !dir)
        return nf__error(-EINVAL, "numafeed_dataset_open: NULL %s", out ? "dir" : "out");
    *out = NULL;
    numafeed_dataset *h = calloc(1, sizeof(*h));
    if (!h)
        return nf__error(-ENOMEM, "%s: out of memory", dir);
    int rc = nf__dataset_open(dir, NULL, &h->ds);
    if (rc == 0) {
        struct nf_reader_options o;
        nf__reader_options_init(&o);
        o.backend = NF_IO_PREAD;
        o.queue_depth = 1;
        rc = nf__reader_create(h->ds, &o, &h->reader);
    }
    if (rc) {
        numafeed_dataset_close(h);
        return rc;
    }
    *out = h;
    return 0;
}

void numafeed_dataset_close(numafeed_dataset *h)
{
    if (!h)
        return;
    nf__reader_destroy(h->reader);
    nf__dataset_close(h->ds);
    free(h->stored);
    free(h->decoded);
    free(h);
}

uint64_t numafeed_dataset_records(const numafeed_dataset *h)
{
    return nf__dataset_records(h->ds);
}

size_t numafeed_dataset_record_bytes(const numafeed_dataset *h)
{
    return (size_t)nf__dataset_layout(h->ds)->record_bytes;
}

uint32_t numafeed_dataset_blocks(const numafeed_dataset *h)
{
    return nf__dataset_blocks(h->ds);
}

/* Global block g, or -ERANGE naming the count. */
static int locate_block(const numafeed_dataset *h, uint32_t g, uint32_t *shard, uint32_t *block,
                        const struct nf_block_info **b)
{
    *b = nf__dataset_block(h->ds, g, shard, block);
    if (!*b)
        return nf__error(-ERANGE, "block %u: the dataset has %u blocks", g,
                         nf__dataset_blocks(h->ds));
    return 0;
}

int numafeed_dataset_block(const numafeed_dataset *h, uint32_t g, struct numafeed_block_info *info)
{
    uint32_t shard, block;
    const struct nf_block_info *b;
    if (!h)
        return nf__error(-EINVAL, "numafeed_dataset_block: NULL dataset");
    int rc = locate_block(h, g, &shard, &block, &b);
    if (rc)
        return rc;
    struct numafeed_block_info full = {
        .size = sizeof(full),
        .shard = nf__dataset_shard_name(h->ds, shard),
        .offset = b->offset,
        .stored_bytes = b->stored_size,
        .decoded_bytes = b->decoded_size,
        .records = b->records,
        .codec = (int)b->codec,
        .first_record = nf__dataset_shard_first(h->ds, shard) + b->first_record,
    };
    return nf__copy_out(info, &full, sizeof(full), "numafeed_block_info");
}

/* Allocate a buffer of len bytes the first time it is needed. */
static int buffer(uint8_t **p, size_t len)
{
    if (!*p && !(*p = malloc(len ? len : 1)))
        return nf__error(-ENOMEM, "out of memory for a %zu-byte block buffer", len);
    return 0;
}

int numafeed_dataset_read_block(numafeed_dataset *h, uint32_t g, void *dst, size_t dst_len)
{
    uint32_t shard, block;
    const struct nf_block_info *b;
    if (!h || !dst)
        return nf__error(-EINVAL, "numafeed_dataset_read_block: NULL %s", h ? "dst" : "dataset");
    int rc = locate_block(h, g, &shard, &block, &b);
    if (rc)
        return rc;
    if (dst_len < b->decoded_size)
        return nf__error(-EINVAL, "%s: block %u: destination of %zu bytes for %u decoded bytes",
                         nf__dataset_shard_name(h->ds, shard), block, dst_len, b->decoded_size);
    /* A raw block is read where it belongs and hashed there: no copy. */
    if (b->codec == NF_CODEC_RAW)
        return nf__reader_read_block(h->reader, shard, block, dst, dst_len, dst, dst_len);
    size_t max_stored = nf__dataset_max_stored(h->ds);
    if ((rc = buffer(&h->stored, max_stored)))
        return rc;
    return nf__reader_read_block(h->reader, shard, block, h->stored, max_stored, dst, dst_len);
}

uint64_t numafeed_dataset_record_size(const numafeed_dataset *h, uint64_t record)
{
    return h && record < nf__dataset_records(h->ds) ? nf__dataset_record_size(h->ds, record) : 0;
}

int numafeed_dataset_read_record(numafeed_dataset *h, uint64_t record, void *dst, size_t dst_len)
{
    if (!h || !dst)
        return nf__error(-EINVAL, "numafeed_dataset_read_record: NULL %s", h ? "dst" : "dataset");
    if (record >= nf__dataset_records(h->ds))
        return nf__error(-ERANGE, "record %llu: the dataset holds %llu",
                         (unsigned long long)record,
                         (unsigned long long)nf__dataset_records(h->ds));
    size_t rb = (size_t)nf__dataset_record_size(h->ds, record);
    size_t max_stored = nf__dataset_max_stored(h->ds), max_decoded = nf__dataset_max_decoded(h->ds);
    if (dst_len < rb)
        return nf__error(-EINVAL, "record %llu: destination of %zu bytes for a %zu-byte record",
                         (unsigned long long)record, dst_len, rb);
    int rc = buffer(&h->stored, max_stored);
    if (!rc)
        rc = buffer(&h->decoded, max_decoded);
    return rc ? rc : nf__reader_read_record(h->reader, record, h->stored, max_stored,
                                            h->decoded, max_decoded, dst);
}
