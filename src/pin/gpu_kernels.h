/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CUDA kernels of GPU decode (gpu_kernels.cu), as C-callable launchers:
 * the only interface between the kernels and the rest of numafeed, shared
 * by C and CUDA C++. Nothing here knows about shards or batches: a block is
 * bytes with an expected hash, a copy is source, destination and length.
 * The launchers return a cudaError_t value (0: queued); cuda.c turns it
 * into numafeed's errors (pin.h's nf__gpu_verify, nf__gpu_gather).
 */
#ifndef NUMAFEED_PIN_GPU_KERNELS_H
#define NUMAFEED_PIN_GPU_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One decoded buffer to check, in device memory. status and actual are
 * the decompressor's outputs for it (nvCOMP's per-chunk status and
 * decompressed size), NULL for bytes that were not decompressed. */
struct nf_gpu_block {
    const uint8_t *data;
    uint64_t len;          /* the size the index gives */
    uint64_t xxh3;         /* XXH3-64 (seed 0) the index gives */
    const int32_t *status; /* 0 is success */
    const uint64_t *actual;
    /* the screen's finding for its stored bytes (struct nf_gpu_screen):
     * 0, or the hash they had; NULL where they were not screened */
    const uint64_t *screened;
};

/* One stored (compressed) buffer to screen before the decompressor reads
 * it, in device memory: its bytes against the hash they were written with.
 * On a mismatch the decompressor's input for it (*in_ptr, *in_bytes) is
 * replaced by a sound frame of nothing (safe, safe_len), so that it never
 * reads bytes that are not the ones written (nvCOMP's decoder can hang on
 * a damaged frame), and *found gets their hash (never 0: 1 stands for 0);
 * *found is 0 otherwise. */
struct nf_gpu_screen {
    const uint8_t *data;
    uint64_t len;
    uint64_t xxh3;
    const void **in_ptr;
    uint64_t *in_bytes;
    const uint8_t *safe;
    uint64_t safe_len;
    uint64_t *found;
};

/* What the check found, one per block. */
enum nf_gpu_verdict {
    NF_GPU_OK = 0,
    NF_GPU_STATUS = 1, /* the decompressor failed: value is its status */
    NF_GPU_SIZE = 2,   /* it produced value bytes, not len */
    NF_GPU_HASH = 3,   /* the bytes hash to value */
    NF_GPU_STORED = 4, /* the stored bytes the GPU had hash to value: not decoded */
};

struct nf_gpu_result {
    int32_t code; /* enum nf_gpu_verdict */
    int32_t pad;
    uint64_t value;
};

/* One copy of a gather, device memory to device memory. */
struct nf_gpu_copy {
    const uint8_t *src;
    uint8_t *dst;
    uint64_t len;
};

/* n blocks (array in device memory) checked in one launch, results into
 * res (device memory, n entries); one warp per block. */
int nf__gpu_verify_launch(const struct nf_gpu_block *blocks, uint32_t n,
                          struct nf_gpu_result *res, void *stream);
/* n stored buffers (array in device memory) screened in one launch; one
 * warp per buffer. */
int nf__gpu_screen_launch(const struct nf_gpu_screen *s, uint32_t n, void *stream);
/* n copies (array in device memory) in one launch. */
int nf__gpu_gather_launch(const struct nf_gpu_copy *copies, uint32_t n, void *stream);
/* Keep every SM busy for about ns nanoseconds: the stand-in for a training
 * step in `numafeed bench --gpu-step-us`. */
int nf__gpu_busy_launch(uint64_t ns, void *stream);

#ifdef __cplusplus
}
#endif

#endif
