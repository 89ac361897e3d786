/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the libFuzzer targets share. A target checks the invariants the
 * header of the code under test promises and aborts when one is broken, so
 * that the fuzzer reports logic errors as crashes, not only memory errors.
 */
#ifndef NF_FUZZ_H
#define NF_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The condition, its line and the library's last error: enough to tell a
 * broken invariant from a sanitizer report in the fuzzer's crash log. */
#define NF_FUZZ_CHECK(cond)                                                                  \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: invariant broken: %s\n  last error: %s\n", __FILE__,     \
                    __LINE__, #cond, numafeed_last_error());                                 \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

static inline uint32_t nf_fuzz_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t nf_fuzz_le64(const uint8_t *p)
{
    return (uint64_t)nf_fuzz_le32(p) | (uint64_t)nf_fuzz_le32(p + 4) << 32;
}

static inline void nf_fuzz_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
