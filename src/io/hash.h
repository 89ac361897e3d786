/* SPDX-License-Identifier: Apache-2.0 */
/*
 * XXH3_64bits for src/io, with libxxhash's run-time CPU dispatch where it
 * exists (x86-64): the same hash values, computed with AVX2/AVX-512 when
 * the CPU has them instead of the SSE2 baseline the library is compiled
 * for. On a 2-core EPYC VM that is ~31 GB/s instead of ~10 GB/s, which is
 * what keeps verifying a raw block cheap next to reading it.
 */
#ifndef NUMAFEED_IO_HASH_H
#define NUMAFEED_IO_HASH_H

#include <xxhash.h>

/* NUMAFEED_NO_XXH_DISPATCH: for fully static builds (the NUMA VM test):
 * Debian's libxxhash.a has no dispatcher, only the shared library does. */
#if defined(__x86_64__) && defined(__has_include) && !defined(NUMAFEED_NO_XXH_DISPATCH)
#if __has_include(<xxh_x86dispatch.h>)
#include <xxh_x86dispatch.h> /* redefines XXH3_64bits{,_update} to the dispatchers */
#endif
#endif

#endif
