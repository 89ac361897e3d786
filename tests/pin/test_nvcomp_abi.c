// SPDX-License-Identifier: Apache-2.0
/*
 * numafeed declares nvCOMP's entry points itself (src/pin/nvcomp_abi.h);
 * here the compiler compares them with NVIDIA's headers: each function's
 * whole type, and the size and layout of every struct numafeed passes. A
 * difference fails the build of this test. Built only where the headers
 * are found (NUMAFEED_NVCOMP_INCLUDE_DIR: the wheel nvidia-libnvcomp-cu13
 * ships them); running it only says so.
 */
#include <stddef.h>
#include <stdio.h>

#include <nvcomp.h>
#include <nvcomp/zstd.h>

#define NF_NVCOMP_WITH_HEADERS 1
#include "pin/nvcomp_abi.h"

#define SAME_TYPE(ours, fn) \
    _Static_assert(__builtin_types_compatible_p(ours, __typeof__(&fn)), #fn " differs from " #ours)

SAME_TYPE(nf_nvcomp_get_properties_fn, nvcompGetProperties);
SAME_TYPE(nf_nvcomp_status_string_fn, nvcompGetStatusString);
SAME_TYPE(nf_nvcomp_zstd_alignments_fn, nvcompBatchedZstdDecompressGetRequiredAlignments);
SAME_TYPE(nf_nvcomp_zstd_temp_fn, nvcompBatchedZstdDecompressGetTempSize);
SAME_TYPE(nf_nvcomp_zstd_decompress_fn, nvcompBatchedZstdDecompressAsync);

/* What numafeed really passes when built without the headers. */
#define SAME_LAYOUT(ours, theirs)                                                      \
    _Static_assert(sizeof(ours) == sizeof(theirs) && _Alignof(ours) == _Alignof(theirs), \
                   #ours " is not laid out as " #theirs)
SAME_LAYOUT(nf_nvcomp_status_t, nvcompStatus_t);
SAME_LAYOUT(struct nf_nvcomp_properties, nvcompProperties_t);
SAME_LAYOUT(struct nf_nvcomp_alignments, nvcompAlignmentRequirements_t);
SAME_LAYOUT(struct nf_nvcomp_zstd_opts, nvcompBatchedZstdDecompressOpts_t);
_Static_assert(offsetof(struct nf_nvcomp_zstd_opts, reserved) ==
                   offsetof(nvcompBatchedZstdDecompressOpts_t, reserved),
               "the options' reserved bytes");
_Static_assert(offsetof(struct nf_nvcomp_properties, cudart_version) ==
                   offsetof(nvcompProperties_t, cudart_version),
               "the properties' CUDA version");
_Static_assert(offsetof(struct nf_nvcomp_alignments, temp) ==
                   offsetof(nvcompAlignmentRequirements_t, temp),
               "the alignments' temp");
_Static_assert(NVCOMP_VER_MAJOR == NF_NVCOMP_ABI_MAJOR, "the headers are another major version");
_Static_assert(nvcompSuccess == 0, "success is 0");

int main(void)
{
    printf("nvCOMP %d.%d.%d headers: numafeed's declarations match\n", NVCOMP_VER_MAJOR,
           NVCOMP_VER_MINOR, NVCOMP_VER_PATCH);
    return 0;
}
