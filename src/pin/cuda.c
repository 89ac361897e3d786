// SPDX-License-Identifier: Apache-2.0
/*
 * The one file that includes the CUDA headers. With the CUDA path compiled
 * out every entry point returns NUMAFEED_ENOCUDA; callers treat that exactly
 * like "no driver" and carry on in host mode.
 *
 * cudart is linked statically: it dlopens the driver (libcuda.so.1) at the
 * first call, so a binary built here runs on a machine with no driver and
 * simply reports cudaErrorInsufficientDriver / cudaErrorNoDevice.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pin/pin.h"

#ifdef NUMAFEED_HAVE_CUDA
#include <cuda_runtime_api.h>

int numafeed_has_cuda(void)
{
    return 1;
}

/* Errors meaning "no usable GPU here" rather than "something broke". */
static int no_gpu(cudaError_t e)
{
    return e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver ||
           e == cudaErrorInitializationError || e == cudaErrorCompatNotSupportedOnDevice ||
           e == cudaErrorSystemDriverMismatch || e == cudaErrorDevicesUnavailable ||
           e == cudaErrorInvalidDevice;
}

int __nf_cuda_bus_ids(char (**ids)[NF_BUSID_LEN], int *count)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    *ids = NULL;
    *count = 0;
    if (e != cudaSuccess) {
        int rc = no_gpu(e) ? NUMAFEED_ENOCUDA : NUMAFEED_ECUDA;
        return __nf_error(rc, "cudaGetDeviceCount: %s (%s)", cudaGetErrorString(e),
                          cudaGetErrorName(e));
    }
    char (*out)[NF_BUSID_LEN] = calloc(n ? (size_t)n : 1, NF_BUSID_LEN);
    if (!out)
        return __nf_error(-ENOMEM, "CUDA bus ids: out of memory");
    for (int i = 0; i < n; i++) {
        e = cudaDeviceGetPCIBusId(out[i], NF_BUSID_LEN, i);
        if (e != cudaSuccess) {
            free(out);
            return __nf_error(NUMAFEED_ECUDA, "cudaDeviceGetPCIBusId(%d): %s", i,
                              cudaGetErrorString(e));
        }
    }
    *ids = out;
    *count = n;
    return 0;
}

#else /* host-only build */

int numafeed_has_cuda(void)
{
    return 0;
}

int __nf_cuda_bus_ids(char (**ids)[NF_BUSID_LEN], int *count)
{
    *ids = NULL;
    *count = 0;
    return NUMAFEED_ENOCUDA;
}

#endif
