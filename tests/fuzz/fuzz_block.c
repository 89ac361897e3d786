// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz block checking and decoding, nf__block_decode, for both codecs.
 *
 * Input: a 13-byte descriptor, then the stored bytes.
 *   byte 0     flags: bit 0 codec (0 raw, 1 zstd); bit 1 take the expected
 *              XXH3 from a reference decode instead of bytes 5-12 (random
 *              bytes never match a hash, and without this the success path
 *              would be unreachable); bit 2 give a destination exactly
 *              decoded_size long (ASan then guards its end) instead of one
 *              with a guard tail checked by hand; bit 3 raw only: check in
 *              place (dst == src), as the reader does for raw blocks.
 *   bytes 1-4  decoded size (LE), zstd only, capped at MAX_DECODED so one
 *              input cannot ask for more than the malloc limit allows.
 *   bytes 5-12 the index's XXH3 when bit 1 is clear.
 * The index entry is built the way nf__shard_load guarantees it for the
 * decoder (stored >= 1, raw stored == decoded, zstd stored within
 * ZSTD_compressBound of decoded); inputs outside that contract are skipped,
 * since the decoder is entitled to trust it.
 */
#include <string.h>

#include <xxhash.h>
#include <zstd.h>

#include "fuzz.h"
#include "io/io.h"

#define MAX_DECODED (1u << 20)
#define GUARD 64u
#define GUARD_BYTE 0xa5

static ZSTD_DCtx *dctx, *ref_dctx;
/* Reused across inputs: a fresh megabyte per input, and a fresh context
 * for the reference decode, cost more than the decode under test. */
static uint8_t *ref, *big;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* One context reused across inputs, as a reader reuses its own: a
     * frame that failed half-way must not poison the next one. */
    dctx = ZSTD_createDCtx();
    ref_dctx = ZSTD_createDCtx();
    ref = malloc(MAX_DECODED);
    big = malloc(MAX_DECODED + GUARD);
    if (!dctx || !ref_dctx || !ref || !big)
        abort();
    return 0;
}

/* What the stored bytes are by zstd alone: 1 if exactly decoded_size. */
static int reference(const struct nf_block_info *b, const uint8_t *stored)
{
    size_t got = ZSTD_decompressDCtx(ref_dctx, ref, b->decoded_size, stored, b->stored_size);
    return !ZSTD_isError(got) && got == b->decoded_size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 14)
        return 0;
    unsigned flags = data[0];
    const uint8_t *stored = data + 13;
    size_t stored_len = size - 13;
    if (stored_len > UINT32_MAX)
        return 0;

    struct nf_block_info b = {.offset = 64, .stored_size = (uint32_t)stored_len, .records = 1};
    b.codec = (flags & 1) ? NF_CODEC_ZSTD : NF_CODEC_RAW;
    if (b.codec == NF_CODEC_ZSTD) {
        b.decoded_size = nf_fuzz_le32(data + 1) % (MAX_DECODED + 1);
        if (b.decoded_size == 0 || stored_len > ZSTD_compressBound(b.decoded_size))
            return 0;
    } else {
        b.decoded_size = b.stored_size;
    }
    b.records = b.decoded_size; /* record size 1: any decoded size is whole records */

    /* raw bytes are their own reference; zstd's is decoded when needed */
    int zstd = b.codec == NF_CODEC_ZSTD, ref_done = !zstd, ref_ok = !zstd;
    const uint8_t *expect = zstd ? ref : stored;
    if (flags & 2) {
        if (zstd) {
            ref_ok = reference(&b, stored);
            ref_done = 1;
        }
        b.xxh3 = ref_ok ? XXH3_64bits(expect, b.decoded_size) : 0;
    } else {
        b.xxh3 = nf_fuzz_le64(data + 5);
    }

    /* exact: ASan guards the end; otherwise a hand-checked guard tail */
    int exact = (flags & 4) != 0, in_place = !zstd && (flags & 8);
    size_t dst_len = b.decoded_size + (exact || in_place ? 0 : GUARD);
    uint8_t *dst, *own = NULL;
    const void *src = stored;
    if (in_place) {
        own = malloc(stored_len);
        if (!own)
            abort();
        memcpy(own, stored, stored_len);
        src = dst = own;
    } else if (exact) {
        dst = own = malloc(dst_len);
        if (!own)
            abort();
    } else {
        dst = big;
        memset(dst + b.decoded_size, GUARD_BYTE, GUARD);
    }

    int rc = nf__block_decode(zstd ? dctx : NULL, "fuzz.nfs", 7, &b, src, dst, dst_len);
    if (rc == 0) {
        /* success means exactly decoded_size bytes, equal to what zstd alone
         * makes of the frame, hashing to the index's value */
        if (!ref_done)
            ref_ok = reference(&b, stored);
        NF_FUZZ_CHECK(ref_ok);
        NF_FUZZ_CHECK(memcmp(dst, expect, b.decoded_size) == 0);
        NF_FUZZ_CHECK(XXH3_64bits(dst, b.decoded_size) == b.xxh3);
    } else {
        NF_FUZZ_CHECK(rc == NUMAFEED_ECORRUPT || rc == NUMAFEED_ECHECKSUM);
        /* a raw block's bytes are what they are: only the hash can refuse it */
        if (!zstd)
            NF_FUZZ_CHECK(rc == NUMAFEED_ECHECKSUM);
        /* with the hash taken from a good reference decode, a refusal can
         * only come from the frame not being the one numafeed writes */
        if (zstd && (flags & 2) && ref_ok)
            NF_FUZZ_CHECK(rc == NUMAFEED_ECORRUPT);
    }
    /* nothing written past decoded_size, whatever the outcome */
    if (dst == big)
        for (size_t i = 0; i < GUARD; i++)
            NF_FUZZ_CHECK(big[b.decoded_size + i] == GUARD_BYTE);
    if (in_place)
        NF_FUZZ_CHECK(memcmp(own, stored, stored_len) == 0);
    free(own);
    return 0;
}
