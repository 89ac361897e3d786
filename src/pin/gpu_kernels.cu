// SPDX-License-Identifier: Apache-2.0
/*
 * The kernels of GPU decode, beside cuda.c the only code that sees CUDA:
 *
 *   screen  one warp per stored zstd frame, before nvCOMP reads it: XXH3-64
 *           of its bytes against the hash it was written with; a frame
 *           that differs is swapped, in nvCOMP's input arrays, for a sound
 *           frame of nothing, and the finding is kept for verify;
 *   verify  one warp per decoded block: the screen's finding, nvCOMP's
 *           status and size for it
 *           (when it was decompressed), then XXH3-64 of its bytes
 *           (xxh3_lanes.h: 8 accumulators x 4 interleaved stripe groups,
 *           the groups' sums added with shuffles before each scramble),
 *           compared with the index's hash;
 *   gather  one thread block per copy: records from the decoded blocks to
 *           their places in the batches, 16 bytes at a time where source
 *           and destination share their alignment, bytewise elsewhere
 *           (variable-length values start anywhere);
 *   busy    a synthetic training step for the benchmark.
 *
 * The launchers only queue work and return cudaGetLastError(); cuda.c
 * names the failures.
 */
#include <cuda_runtime.h>

#include "pin/gpu_kernels.h"
#include "pin/xxh3_lanes.h"

namespace {

/* Lane l of a warp: accumulator j = l % 8, stripe group g = l / 8. */
__device__ uint64_t warp_xxh3(const uint8_t *in, uint64_t len, unsigned l)
{
    if (len <= NF_XXH3_MIDSIZE)
        return l == 0 ? nf_xxh3_short(in, len) : 0;
    const unsigned j = l & 7, g = l >> 3;
    uint64_t acc = nf_xxh3_acc_init(j);
    const uint64_t nb = nf_xxh3_blocks(len);
    for (uint64_t n = 0; n < nb; n++) {
        uint64_t part = nf_xxh3_lane_sum(in + n * NF_XXH3_BLOCK, j, g, 16, 4);
        part += __shfl_xor_sync(0xffffffffu, part, 8);
        part += __shfl_xor_sync(0xffffffffu, part, 16);
        acc = nf_xxh3_scramble(acc + part, j);
    }
    uint64_t part = nf_xxh3_lane_sum(in + nb * NF_XXH3_BLOCK, j, g, nf_xxh3_tail_stripes(len), 4);
    part += __shfl_xor_sync(0xffffffffu, part, 8);
    part += __shfl_xor_sync(0xffffffffu, part, 16);
    acc += part + nf_xxh3_last(in, len, j);
    uint64_t a[8];
    for (unsigned k = 0; k < 8; k++)
        a[k] = __shfl_sync(0xffffffffu, acc, k);
    return nf_xxh3_merge(a, len);
}

__global__ void verify_kernel(const nf_gpu_block *blocks, uint32_t n, nf_gpu_result *res)
{
    const unsigned warps = blockDim.x / 32, l = threadIdx.x & 31;
    const uint32_t k = blockIdx.x * warps + threadIdx.x / 32;
    if (k >= n)
        return; /* a whole warp leaves together: the shuffles see only full warps */
    const nf_gpu_block b = blocks[k];
    int32_t code = NF_GPU_OK;
    uint64_t value = 0;
    if (b.screened && *b.screened != 0) {
        code = NF_GPU_STORED;
        value = *b.screened;
    } else if (b.status && *b.status != 0) {
        code = NF_GPU_STATUS;
        value = (uint64_t)(uint32_t)*b.status;
    } else if (b.actual && *b.actual != b.len) {
        code = NF_GPU_SIZE;
        value = *b.actual;
    }
    if (code == NF_GPU_OK) { /* the same answer in every lane: no divergence */
        uint64_t h = warp_xxh3(b.data, b.len, l);
        if (l == 0 && h != b.xxh3) {
            code = NF_GPU_HASH;
            value = h;
        }
    }
    if (l == 0)
        res[k] = nf_gpu_result{code, 0, value};
}

__global__ void screen_kernel(const nf_gpu_screen *screens, uint32_t n)
{
    const unsigned warps = blockDim.x / 32, l = threadIdx.x & 31;
    const uint32_t k = blockIdx.x * warps + threadIdx.x / 32;
    if (k >= n)
        return;
    const nf_gpu_screen s = screens[k];
    uint64_t h = warp_xxh3(s.data, s.len, l);
    if (l != 0)
        return;
    if (h == s.xxh3) {
        *s.found = 0;
        return;
    }
    *s.in_ptr = s.safe;
    *s.in_bytes = s.safe_len;
    *s.found = h ? h : 1;
}

__global__ void gather_kernel(const nf_gpu_copy *copies)
{
    const nf_gpu_copy c = copies[blockIdx.x];
    const uint8_t *s = c.src;
    uint8_t *d = c.dst;
    uint64_t len = c.len;
    if ((((uintptr_t)s ^ (uintptr_t)d) & 15) == 0) {
        /* the bytes before the first 16-byte boundary, then whole vectors */
        uint64_t head = (16 - ((uintptr_t)d & 15)) & 15;
        if (head > len)
            head = len;
        if (threadIdx.x < head)
            d[threadIdx.x] = s[threadIdx.x];
        s += head;
        d += head;
        len -= head;
        const uint64_t vecs = len / 16;
        const uint4 *sv = (const uint4 *)(const void *)s;
        uint4 *dv = (uint4 *)(void *)d;
        for (uint64_t i = threadIdx.x; i < vecs; i += blockDim.x)
            dv[i] = sv[i];
        s += vecs * 16;
        d += vecs * 16;
        len -= vecs * 16;
    }
    for (uint64_t i = threadIdx.x; i < len; i += blockDim.x)
        d[i] = s[i];
}

__global__ void busy_kernel(uint64_t ns)
{
    uint64_t t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    float x = (float)threadIdx.x;
    do {
        for (int i = 0; i < 256; i++)
            x = x * 0.999f + 1.0f; /* FMA work, as a matmul's inner loop keeps the SM busy */
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    } while (t - t0 < ns);
    if (x == 0.0f) /* never: keeps the loop from being optimised away */
        asm volatile("trap;");
}

} // namespace

extern "C" int nf__gpu_verify_launch(const struct nf_gpu_block *blocks, uint32_t n,
                                     struct nf_gpu_result *res, void *stream)
{
    if (!n)
        return 0;
    const unsigned per = 4; /* warps per thread block */
    verify_kernel<<<(n + per - 1) / per, 32 * per, 0, (cudaStream_t)stream>>>(blocks, n, res);
    return (int)cudaGetLastError();
}

extern "C" int nf__gpu_screen_launch(const struct nf_gpu_screen *s, uint32_t n, void *stream)
{
    if (!n)
        return 0;
    const unsigned per = 4; /* warps per thread block */
    screen_kernel<<<(n + per - 1) / per, 32 * per, 0, (cudaStream_t)stream>>>(s, n);
    return (int)cudaGetLastError();
}

extern "C" int nf__gpu_gather_launch(const struct nf_gpu_copy *copies, uint32_t n, void *stream)
{
    if (!n)
        return 0;
    gather_kernel<<<n, 256, 0, (cudaStream_t)stream>>>(copies);
    return (int)cudaGetLastError();
}

extern "C" int nf__gpu_busy_launch(uint64_t ns, void *stream)
{
    int dev = 0, sms = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    busy_kernel<<<(unsigned)(sms > 0 ? 2 * sms : 264), 512, 0, (cudaStream_t)stream>>>(ns);
    return (int)cudaGetLastError();
}
