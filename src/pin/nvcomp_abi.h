/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The part of nvCOMP 6's C ABI numafeed calls, declared here instead of
 * included from NVIDIA's headers. Why: building numafeed then needs no
 * nvCOMP at all, the library is found and loaded at run time (nvcomp.c,
 * dlopen), and one binary runs with and without it.
 *
 * The price is that these declarations must match the library's, and the
 * compiler cannot see the library. Three guards:
 *   - every declaration below is nvCOMP 6.0's (include/nvcomp/zstd.h and
 *     shared_types.h of the nvidia-libnvcomp-cu13 6.0.0.12 wheel);
 *     nvCOMP 5 named the temp-size call differently and 4 had no options
 *     struct, so the loader refuses any major version but 6, naming it;
 *   - the options struct is passed by value, so its size (64 bytes) and
 *     alignment decide the calling convention: both are asserted here;
 *   - tests/pin/test_nvcomp_abi.c, built wherever NVIDIA's headers are
 *     found (NUMAFEED_NVCOMP_INCLUDE_DIR), checks the sizes, offsets and
 *     each function's type against them, so a difference breaks the build,
 *     not a GPU.
 * Nothing here includes CUDA: streams are void * (cudaStream_t is a
 * pointer to an opaque struct), statuses int32_t (an enum of C, whose
 * values are small and positive).
 */
#ifndef NUMAFEED_PIN_NVCOMP_ABI_H
#define NUMAFEED_PIN_NVCOMP_ABI_H

#include <stddef.h>
#include <stdint.h>

/* The major version whose ABI this file declares. */
#define NF_NVCOMP_ABI_MAJOR 6
/* The library's file name for it (its SONAME). */
#define NF_NVCOMP_SONAME "libnvcomp.so.6"

/* nvcompStatus_t: an enum, 4 bytes; 0 is nvcompSuccess. */
typedef int32_t nf_nvcomp_status_t;

/* nvcompProperties_t */
struct nf_nvcomp_properties {
    uint32_t version;        /* major * 1000 + minor * 100 + patch */
    uint32_t cudart_version; /* the CUDA runtime nvCOMP was built with */
};

/* nvcompAlignmentRequirements_t */
struct nf_nvcomp_alignments {
    size_t input, output, temp;
};

/* nvcompBatchedZstdDecompressOpts_t: the backend (an enum; 0 lets nvCOMP
 * choose between its CUDA decoder and a hardware engine) and 60 reserved
 * bytes that must be zero. Passed by value. */
struct nf_nvcomp_zstd_opts {
    int32_t backend;
    char reserved[60];
};
_Static_assert(sizeof(struct nf_nvcomp_zstd_opts) == 64 &&
                   _Alignof(struct nf_nvcomp_zstd_opts) == 4,
               "nvcompBatchedZstdDecompressOpts_t is 64 bytes, 4-aligned");

/* The types the entry points below are declared with: ours, or, in the
 * test that compares them, NVIDIA's (it defines NF_NVCOMP_WITH_HEADERS
 * after including nvcomp/zstd.h), so that the compiler compares every
 * parameter of every function. */
#ifdef NF_NVCOMP_WITH_HEADERS
typedef nvcompStatus_t nf_nvcomp_status;
typedef cudaStream_t nf_nvcomp_stream;
typedef nvcompProperties_t nf_nvcomp_properties_t;
typedef nvcompAlignmentRequirements_t nf_nvcomp_alignments_t;
typedef nvcompBatchedZstdDecompressOpts_t nf_nvcomp_zstd_opts_t;
#else
typedef nf_nvcomp_status_t nf_nvcomp_status;
typedef void *nf_nvcomp_stream;
typedef struct nf_nvcomp_properties nf_nvcomp_properties_t;
typedef struct nf_nvcomp_alignments nf_nvcomp_alignments_t;
typedef struct nf_nvcomp_zstd_opts nf_nvcomp_zstd_opts_t;
#endif

typedef nf_nvcomp_status (*nf_nvcomp_get_properties_fn)(nf_nvcomp_properties_t *properties);
typedef const char *(*nf_nvcomp_status_string_fn)(nf_nvcomp_status status);
/* nvcompBatchedZstdDecompressGetRequiredAlignments */
typedef nf_nvcomp_status (*nf_nvcomp_zstd_alignments_fn)(nf_nvcomp_zstd_opts_t opts,
                                                         nf_nvcomp_alignments_t *out);
/* nvcompBatchedZstdDecompressGetTempSize (nvCOMP 6: with the stream; it
 * queues nothing) */
typedef nf_nvcomp_status (*nf_nvcomp_zstd_temp_fn)(size_t num_chunks,
                                                   size_t max_uncompressed_chunk_bytes,
                                                   nf_nvcomp_zstd_opts_t opts,
                                                   size_t *temp_bytes,
                                                   size_t max_total_uncompressed_bytes,
                                                   nf_nvcomp_stream stream);
/* nvcompBatchedZstdDecompressAsync */
typedef nf_nvcomp_status (*nf_nvcomp_zstd_decompress_fn)(
    const void *const *device_compressed_chunk_ptrs, const size_t *device_compressed_chunk_bytes,
    const size_t *device_uncompressed_buffer_bytes, size_t *device_uncompressed_chunk_bytes,
    size_t num_chunks, void *const device_temp_ptr, size_t temp_bytes,
    void *const *device_uncompressed_chunk_ptrs, nf_nvcomp_zstd_opts_t opts,
    nf_nvcomp_status *device_statuses, nf_nvcomp_stream stream);

/* The symbols, in the order nvcomp.c resolves them. */
#define NF_NVCOMP_SYMBOLS(X)                                                      \
    X(get_properties, nf_nvcomp_get_properties_fn, "nvcompGetProperties")         \
    X(status_string, nf_nvcomp_status_string_fn, "nvcompGetStatusString")        \
    X(zstd_alignments, nf_nvcomp_zstd_alignments_fn,                              \
      "nvcompBatchedZstdDecompressGetRequiredAlignments")                         \
    X(zstd_temp, nf_nvcomp_zstd_temp_fn, "nvcompBatchedZstdDecompressGetTempSize") \
    X(zstd_decompress, nf_nvcomp_zstd_decompress_fn, "nvcompBatchedZstdDecompressAsync")

#endif
