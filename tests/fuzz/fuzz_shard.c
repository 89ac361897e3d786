// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz the shard header / trailer / footer / index parser, nf__shard_load.
 *
 * Input: one flag byte, then the shard file. The header and the footer are
 * guarded by XXH3 checksums that random mutation never gets right, so the
 * flag byte asks the harness to fix them up first (bit 0: the header's,
 * bit 1: the footer's, in the trailer): that is what lets the fuzzer reach
 * the index entries, where the interesting arithmetic is. With the bits
 * clear the checksum refusals themselves are exercised.
 *
 * The file goes through a memfd so the loader reads it with pread as it
 * reads a real shard.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xxhash.h>

#include "fuzz.h"
#include "io/io.h"

static int memfd = -1;
static uint8_t *file;
static size_t file_cap;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    memfd = memfd_create("fuzz_shard", MFD_CLOEXEC);
    if (memfd < 0) {
        perror("memfd_create");
        abort();
    }
    return 0;
}

/* Recompute the checksums the flag byte asks for, where the bytes they
 * cover exist; a trailer pointing outside the file is left for the loader
 * to refuse. */
static void fix_sums(uint8_t *f, size_t n, unsigned flags)
{
    if ((flags & 1) && n >= NF_HEADER_BYTES)
        nf_fuzz_put64(f + 56, XXH3_64bits(f, 56));
    if ((flags & 2) && n >= NF_TRAILER_BYTES) {
        uint8_t *t = f + n - NF_TRAILER_BYTES;
        uint64_t foff = nf_fuzz_le64(t), fsize = nf_fuzz_le64(t + 8);
        if (foff <= n && fsize <= n - foff)
            nf_fuzz_put64(t + 16, XXH3_64bits(f + foff, fsize));
    }
}

/* Version 2: the decoded size a block's records add up to. */
static uint64_t block_sum(const struct nf_shard_index *x, const struct nf_block_info *b)
{
    uint64_t sum = (uint64_t)b->records * x->record_bytes;
    for (uint64_t i = 0; i < (uint64_t)b->records * x->nvar; i++)
        sum += x->var_len[b->first_record * x->nvar + i];
    return sum;
}

static void check_index(const struct nf_shard_index *x, uint64_t file_size)
{
    NF_FUZZ_CHECK(x->file_size == file_size);
    NF_FUZZ_CHECK(x->version == 1 || x->version == 2);
    NF_FUZZ_CHECK((x->version == 1) == (x->nvar == 0));
    NF_FUZZ_CHECK((x->nvar == 0) == (x->var_len == NULL));
    NF_FUZZ_CHECK(x->record_bytes >= (x->nvar ? 0 : 1) && x->record_bytes <= NF_BLOCK_CAP);
    NF_FUZZ_CHECK(x->nblocks >= 1 && x->blocks != NULL);
    /* header, data, footer (head + entries + lengths + stored hashes),
     * trailer: nothing else */
    NF_FUZZ_CHECK(x->footer_offset >= NF_HEADER_BYTES);
    NF_FUZZ_CHECK(x->footer_offset + NF_FOOTER_HEAD_BYTES +
                      (uint64_t)x->nblocks * NF_INDEX_ENTRY_BYTES + 4 * x->records * x->nvar +
                      (x->stored_hashes ? (uint64_t)x->nblocks * NF_STORED_HASH_BYTES : 0) +
                      NF_TRAILER_BYTES ==
                  file_size);
    uint64_t prev_end = NF_HEADER_BYTES, records = 0;
    uint32_t max_stored = 0, max_decoded = 0;
    for (uint32_t i = 0; i < x->nblocks; i++) {
        const struct nf_block_info *b = &x->blocks[i];
        /* inside the data region, ascending, not overlapping */
        NF_FUZZ_CHECK(b->offset >= prev_end);
        NF_FUZZ_CHECK(b->stored_size >= 1);
        NF_FUZZ_CHECK(b->offset + b->stored_size <= x->footer_offset);
        prev_end = b->offset + b->stored_size;
        NF_FUZZ_CHECK(b->codec == NF_CODEC_RAW || b->codec == NF_CODEC_ZSTD);
        NF_FUZZ_CHECK(b->records >= 1);
        NF_FUZZ_CHECK(b->decoded_size <= NF_BLOCK_CAP);
        NF_FUZZ_CHECK((x->nvar ? block_sum(x, b) : (uint64_t)b->records * x->record_bytes) ==
                      b->decoded_size);
        if (b->codec == NF_CODEC_RAW)
            NF_FUZZ_CHECK(b->stored_size == b->decoded_size);
        NF_FUZZ_CHECK(b->first_record == records);
        /* a stored hash only where the footer has the table */
        if (!x->stored_hashes)
            NF_FUZZ_CHECK(b->stored_xxh3 == 0);
        records += b->records;
        if (b->stored_size > max_stored)
            max_stored = b->stored_size;
        if (b->decoded_size > max_decoded)
            max_decoded = b->decoded_size;
    }
    NF_FUZZ_CHECK(records == x->records);
    NF_FUZZ_CHECK(max_stored == x->max_stored);
    NF_FUZZ_CHECK(max_decoded == x->max_decoded);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags = data[0];
    size_t n = size - 1;
    if (n > file_cap) {
        uint8_t *p = realloc(file, n);
        if (!p)
            abort();
        file = p;
        file_cap = n;
    }
    if (n)
        memcpy(file, data + 1, n);
    fix_sums(file, n, flags);
    if (ftruncate(memfd, 0) || (n && pwrite(memfd, file, n, 0) != (ssize_t)n)) {
        perror("fuzz_shard: memfd");
        abort();
    }

    struct nf_shard_index idx;
    struct nf_where where = {.block = -2, .offset = UINT64_MAX};
    int rc = nf__shard_load(memfd, "fuzz.nfs", n, &idx, &where);
    if (rc == 0) {
        check_index(&idx, n);
        nf__shard_index_free(&idx);
        NF_FUZZ_CHECK(idx.blocks == NULL && idx.nblocks == 0);
    } else {
        /* the documented errors only, nothing left allocated, and a
         * position that lies inside the file for `numafeed check` */
        NF_FUZZ_CHECK(rc == NUMAFEED_ECORRUPT || rc == NUMAFEED_ECHECKSUM ||
                      rc == NUMAFEED_EVERSION || rc == -EIO || rc == -ENOMEM);
        NF_FUZZ_CHECK(idx.blocks == NULL);
        if (rc != -ENOMEM) {
            NF_FUZZ_CHECK(where.offset <= n);
            NF_FUZZ_CHECK(where.block >= -1);
        }
    }
    return 0;
}
