/* SPDX-License-Identifier: Apache-2.0 */
/*
 * src/loader's interface to the rest of numafeed. The loader's API is public
 * (include/numafeed.h, loader_*); the CLI and the Python binding use only
 * that. Internals shared between loader files (the sampler) have their own
 * private header, sampler.h.
 */
#ifndef NUMAFEED_LOADER_H
#define NUMAFEED_LOADER_H

#include "numafeed.h"

#endif
