/* SPDX-License-Identifier: Apache-2.0 */
/*
 * XXH3-64 (seed 0, default secret) split into the pieces a GPU warp
 * computes in parallel, compiled both as C (the tests check every piece
 * against libxxhash's XXH3_64bits on the CPU) and as CUDA device code (the
 * verify kernel in gpu_kernels.cu). The index of every block holds this
 * hash of its decoded bytes (docs/format.md), so a block decoded on the
 * GPU is verified there without coming back to the host.
 *
 * Why written here: no library hashes on the GPU, and libxxhash's
 * functions cannot be called from device code. The algorithm and its
 * constants are XXH3's specification (xxHash's doc/xxhash_spec.md); the
 * code is ours.
 *
 * Inputs of at most 240 bytes have one-shot formulas (nf_xxh3_short).
 * Longer ones run 8 accumulators over 64-byte stripes: accumulator j takes,
 * for every stripe, the stripe's 64-bit word j^1 plus the 32x32 product of
 * word j xor a secret word; every 16 stripes (1024 bytes) each accumulator
 * is scrambled. Between scrambles the additions commute, so lane j's sum
 * over a 1024-byte block can be cut into interleaved pieces (stripes g,
 * g + G, g + 2G, ...) computed by G threads and added up: a warp is 8 lanes
 * x 4 groups. Only the scrambles are sequential.
 */
#ifndef NUMAFEED_PIN_XXH3_LANES_H
#define NUMAFEED_PIN_XXH3_LANES_H

#include <stddef.h>
#include <stdint.h>

/* In CUDA, device functions reading the secret from global memory: the
 * 8 lanes of a warp read 8 different words of it at once, which constant
 * memory would serialise. */
#ifdef __CUDACC__
#define NF_HD static __device__ __forceinline__
#define NF_CONST static __device__ const __align__(8)
#else
#define NF_HD static inline
#define NF_CONST static const _Alignas(8)
#endif

#define NF_XXH3_STRIPE 64u
#define NF_XXH3_BLOCK 1024u  /* 16 stripes between scrambles (default secret) */
#define NF_XXH3_MIDSIZE 240u /* longest input with a one-shot formula */

/* The default secret of XXH3 (192 bytes), a constant of the algorithm. */
NF_CONST uint8_t nf_xxh3_secret[192] = {
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
    0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
    0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
    0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
    0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
    0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
    0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
    0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
    0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
};

#define NF_P32_1 UINT64_C(0x9E3779B1)
#define NF_P32_2 UINT64_C(0x85EBCA77)
#define NF_P32_3 UINT64_C(0xC2B2AE3D)
#define NF_P64_1 UINT64_C(0x9E3779B185EBCA87)
#define NF_P64_2 UINT64_C(0xC2B2AE3D27D4EB4F)
#define NF_P64_3 UINT64_C(0x165667B19E3779F9)
#define NF_P64_4 UINT64_C(0x85EBCA77C2B2AE63)
#define NF_P64_5 UINT64_C(0x27D4EB2F165667C5)

/* Little-endian loads at any address (the last stripe of a block, and the
 * short formulas, start anywhere). Every machine numafeed runs on, and
 * every GPU, is little-endian. */
NF_HD uint64_t nf_xxh3_rd64(const uint8_t *p)
{
    if (!((uintptr_t)p & 7))
        return *(const uint64_t *)(const void *)p;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

NF_HD uint32_t nf_xxh3_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The low and high 64 bits of a 64 x 64 product, xored. */
NF_HD uint64_t nf_xxh3_fold(uint64_t a, uint64_t b)
{
#ifdef __CUDA_ARCH__
    return (a * b) ^ __umul64hi(a, b);
#else
    unsigned __int128 p = (unsigned __int128)a * b;
    return (uint64_t)p ^ (uint64_t)(p >> 64);
#endif
}

NF_HD uint64_t nf_xxh3_rotl(uint64_t v, int r)
{
    return (v << r) | (v >> (64 - r));
}

NF_HD uint64_t nf_xxh3_avalanche(uint64_t h)
{
    h ^= h >> 37;
    h *= UINT64_C(0x165667919E3779F9);
    return h ^ (h >> 32);
}

/* XXH64's final mix, which XXH3 uses for inputs of 0 to 3 bytes. */
NF_HD uint64_t nf_xxh3_avalanche64(uint64_t h)
{
    h ^= h >> 33;
    h *= NF_P64_2;
    h ^= h >> 29;
    h *= NF_P64_3;
    return h ^ (h >> 32);
}

NF_HD uint64_t nf_xxh3_mix16(const uint8_t *in, unsigned s)
{
    return nf_xxh3_fold(nf_xxh3_rd64(in) ^ nf_xxh3_rd64(nf_xxh3_secret + s),
                        nf_xxh3_rd64(in + 8) ^ nf_xxh3_rd64(nf_xxh3_secret + s + 8));
}

/* The whole hash of an input of at most 240 bytes. */
NF_HD uint64_t nf_xxh3_short(const uint8_t *in, size_t len)
{
    const uint8_t *k = nf_xxh3_secret;
    if (len == 0)
        return nf_xxh3_avalanche64(nf_xxh3_rd64(k + 56) ^ nf_xxh3_rd64(k + 64));
    if (len <= 3) {
        uint32_t c = (uint32_t)in[0] << 16 | (uint32_t)in[len >> 1] << 24 | in[len - 1] |
                     (uint32_t)len << 8;
        return nf_xxh3_avalanche64((uint64_t)c ^ (nf_xxh3_rd32(k) ^ nf_xxh3_rd32(k + 4)));
    }
    if (len <= 8) {
        uint64_t v = (uint64_t)nf_xxh3_rd32(in + len - 4) + ((uint64_t)nf_xxh3_rd32(in) << 32);
        uint64_t h = v ^ (nf_xxh3_rd64(k + 8) ^ nf_xxh3_rd64(k + 16));
        /* rrmxmx: a stronger final mix for unmixed input */
        h ^= nf_xxh3_rotl(h, 49) ^ nf_xxh3_rotl(h, 24);
        h *= UINT64_C(0x9FB21C651E98DF25);
        h ^= (h >> 35) + len;
        h *= UINT64_C(0x9FB21C651E98DF25);
        return h ^ (h >> 28);
    }
    if (len <= 16) {
        uint64_t lo = nf_xxh3_rd64(in) ^ (nf_xxh3_rd64(k + 24) ^ nf_xxh3_rd64(k + 32));
        uint64_t hi = nf_xxh3_rd64(in + len - 8) ^ (nf_xxh3_rd64(k + 40) ^ nf_xxh3_rd64(k + 48));
#ifdef __CUDA_ARCH__
        uint64_t swapped = __byte_perm((uint32_t)(lo >> 32), 0, 0x0123) |
                           (uint64_t)__byte_perm((uint32_t)lo, 0, 0x0123) << 32;
#else
        uint64_t swapped = __builtin_bswap64(lo);
#endif
        return nf_xxh3_avalanche(len + swapped + hi + nf_xxh3_fold(lo, hi));
    }
    uint64_t acc = len * NF_P64_1;
    if (len <= 128) {
        /* pairs of 16-byte pieces from both ends, as far as they reach */
        unsigned pairs = (unsigned)((len - 1) / 32) + 1;
        for (unsigned i = 0; i < pairs; i++) {
            acc += nf_xxh3_mix16(in + 16 * i, 32 * i);
            acc += nf_xxh3_mix16(in + len - 16 * (i + 1), 32 * i + 16);
        }
        return nf_xxh3_avalanche(acc);
    }
    for (unsigned i = 0; i < 8; i++)
        acc += nf_xxh3_mix16(in + 16 * i, 16 * i);
    acc = nf_xxh3_avalanche(acc);
    for (unsigned i = 8; i < len / 16; i++)
        acc += nf_xxh3_mix16(in + 16 * i, 16 * (i - 8) + 3);
    acc += nf_xxh3_mix16(in + len - 16, 136 - 17);
    return nf_xxh3_avalanche(acc);
}

/* ---- inputs longer than 240 bytes: lane by lane ---- */

/* Accumulator j's starting value. */
NF_HD uint64_t nf_xxh3_acc_init(unsigned j)
{
    switch (j) {
    case 0: return NF_P32_3;
    case 1: return NF_P64_1;
    case 2: return NF_P64_2;
    case 3: return NF_P64_3;
    case 4: return NF_P64_4;
    case 5: return NF_P32_2;
    case 6: return NF_P64_5;
    default: return NF_P32_1;
    }
}

/* One stripe's addition to accumulator j, with the secret at offset s. */
NF_HD uint64_t nf_xxh3_stripe(const uint8_t *stripe, unsigned j, unsigned s)
{
    uint64_t key = nf_xxh3_rd64(stripe + 8 * j) ^ nf_xxh3_rd64(nf_xxh3_secret + s + 8 * j);
    return nf_xxh3_rd64(stripe + 8 * (j ^ 1)) + (key & 0xFFFFFFFFu) * (key >> 32);
}

/* Accumulator j's sum over stripes first, first + step, ... below n of
 * the run of stripes at in (stripe t uses the secret at 8 t). */
NF_HD uint64_t nf_xxh3_lane_sum(const uint8_t *in, unsigned j, unsigned first, unsigned n,
                                unsigned step)
{
    uint64_t sum = 0;
    for (unsigned t = first; t < n; t += step)
        sum += nf_xxh3_stripe(in + (size_t)NF_XXH3_STRIPE * t, j, 8 * t);
    return sum;
}

/* The scramble after each 1024-byte block. */
NF_HD uint64_t nf_xxh3_scramble(uint64_t acc, unsigned j)
{
    acc ^= acc >> 47;
    acc ^= nf_xxh3_rd64(nf_xxh3_secret + 128 + 8 * j);
    return acc * NF_P32_1;
}

/* Full 1024-byte blocks before the tail, and full stripes in the tail
 * (the last stripe, which may overlap them, is added separately). */
NF_HD size_t nf_xxh3_blocks(size_t len)
{
    return (len - 1) / NF_XXH3_BLOCK;
}

NF_HD unsigned nf_xxh3_tail_stripes(size_t len)
{
    return (unsigned)(((len - 1) % NF_XXH3_BLOCK) / NF_XXH3_STRIPE);
}

/* The last 64 bytes' addition to accumulator j (secret at 192 - 64 - 7). */
NF_HD uint64_t nf_xxh3_last(const uint8_t *in, size_t len, unsigned j)
{
    return nf_xxh3_stripe(in + len - NF_XXH3_STRIPE, j, 121);
}

/* The hash from the 8 finished accumulators. */
NF_HD uint64_t nf_xxh3_merge(const uint64_t acc[8], size_t len)
{
    uint64_t h = len * NF_P64_1;
    for (unsigned i = 0; i < 4; i++)
        h += nf_xxh3_fold(acc[2 * i] ^ nf_xxh3_rd64(nf_xxh3_secret + 11 + 16 * i),
                          acc[2 * i + 1] ^ nf_xxh3_rd64(nf_xxh3_secret + 11 + 16 * i + 8));
    return nf_xxh3_avalanche(h);
}

#endif
