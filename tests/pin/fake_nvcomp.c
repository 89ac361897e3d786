// SPDX-License-Identifier: Apache-2.0
/*
 * A stand-in for libnvcomp.so.6 that runs without a GPU, for
 * test_nvcomp_load: it reports FAKE_VERSION, checks that the options
 * arrive zeroed (the by-value struct crossed the call intact), and its
 * "decompressor" copies each input to its output, so that the order of
 * every argument nvcomp.c passes is checked on the CPU. FAKE_NO_DECOMPRESS
 * leaves out the decompressor's symbol, as a library of another ABI would.
 */
#include <string.h>

#include "pin/nvcomp_abi.h"

#define EXPORT __attribute__((visibility("default")))

static int zeroed(nf_nvcomp_zstd_opts_t o)
{
    for (size_t i = 0; i < sizeof(o.reserved); i++)
        if (o.reserved[i])
            return 0;
    return o.backend == 0;
}

EXPORT nf_nvcomp_status nvcompGetProperties(nf_nvcomp_properties_t *p)
{
    p->version = FAKE_VERSION;
    p->cudart_version = 13000;
    return 0;
}

EXPORT const char *nvcompGetStatusString(nf_nvcomp_status s)
{
    return s == 12 ? "fake: cannot decompress" : "fake: other";
}

EXPORT nf_nvcomp_status nvcompBatchedZstdDecompressGetRequiredAlignments(
    nf_nvcomp_zstd_opts_t o, nf_nvcomp_alignments_t *a)
{
    a->input = 8;
    a->output = 16;
    a->temp = 32;
    return zeroed(o) ? 0 : 10;
}

EXPORT nf_nvcomp_status nvcompBatchedZstdDecompressGetTempSize(size_t n, size_t max_chunk,
                                                               nf_nvcomp_zstd_opts_t o,
                                                               size_t *temp, size_t max_total,
                                                               nf_nvcomp_stream stream)
{
    *temp = n * max_chunk + max_total;
    return zeroed(o) && !stream ? 0 : 10;
}

#ifndef FAKE_NO_DECOMPRESS
EXPORT nf_nvcomp_status nvcompBatchedZstdDecompressAsync(
    const void *const *in, const size_t *in_bytes, const size_t *out_cap, size_t *actual,
    size_t n, void *const temp, size_t temp_bytes, void *const *out, nf_nvcomp_zstd_opts_t o,
    nf_nvcomp_status *statuses, nf_nvcomp_stream stream)
{
    (void)stream;
    if (!zeroed(o) || (temp_bytes && !temp))
        return 10;
    for (size_t i = 0; i < n; i++) {
        statuses[i] = in_bytes[i] > out_cap[i] ? 12 : 0;
        actual[i] = statuses[i] ? 0 : in_bytes[i];
        if (!statuses[i])
            memcpy(out[i], in[i], in_bytes[i]);
    }
    return 0;
}
#endif
