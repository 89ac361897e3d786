// SPDX-License-Identifier: Apache-2.0
/*
 * Why there is no GPU, in words: the CUDA runtime's answers are injected
 * (--wrap of cudaGetDeviceCount, cudaDriverGetVersion, cudaRuntimeGetVersion,
 * cudaSetDevice, cudaFree), so every case runs on any machine with the CUDA
 * path compiled in. A missing driver and an old one give the same error
 * code; the message must tell them apart.
 */
#include "helpers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

static cudaError_t count_err;
static int count_n, driver_version, set_device_calls, last_device;

cudaError_t __wrap_cudaGetDeviceCount(int *n);
cudaError_t __wrap_cudaDriverGetVersion(int *v);
cudaError_t __wrap_cudaRuntimeGetVersion(int *v);
cudaError_t __wrap_cudaSetDevice(int d);
cudaError_t __wrap_cudaFree(void *p);

cudaError_t __wrap_cudaGetDeviceCount(int *n)
{
    *n = count_err == cudaSuccess ? count_n : 0;
    return count_err;
}

cudaError_t __wrap_cudaDriverGetVersion(int *v)
{
    *v = driver_version;
    return cudaSuccess;
}

cudaError_t __wrap_cudaRuntimeGetVersion(int *v)
{
    *v = 13000;
    return cudaSuccess;
}

cudaError_t __wrap_cudaSetDevice(int d)
{
    set_device_calls++;
    last_device = d;
    return cudaSuccess;
}

cudaError_t __wrap_cudaFree(void *p)
{
    (void)p;
    return cudaSuccess;
}

/* The count's result and message for one injected answer. */
static int count_with(cudaError_t e, int driver)
{
    count_err = e;
    driver_version = driver;
    return numafeed_cuda_device_count();
}

static void test_reasons(void **state)
{
    (void)state;
    unsetenv("CUDA_VISIBLE_DEVICES");
    assert_int_equal(count_with(cudaErrorInsufficientDriver, 0), NUMAFEED_ENOCUDA);
    assert_non_null(strstr(numafeed_last_error(), "no NVIDIA driver loaded"));

    assert_int_equal(count_with(cudaErrorInsufficientDriver, 12040), NUMAFEED_ENOCUDA);
    assert_non_null(strstr(numafeed_last_error(), "driver (CUDA 12.4) is older than this "
                                                  "build's CUDA runtime 13.0"));

    assert_int_equal(count_with(cudaErrorNoDevice, 13000), NUMAFEED_ENOCUDA);
    assert_non_null(strstr(numafeed_last_error(), "sees no GPU"));
    setenv("CUDA_VISIBLE_DEVICES", "", 1);
    assert_int_equal(count_with(cudaErrorNoDevice, 13000), NUMAFEED_ENOCUDA);
    assert_non_null(strstr(numafeed_last_error(), "with CUDA_VISIBLE_DEVICES=\"\""));
    unsetenv("CUDA_VISIBLE_DEVICES");

    assert_int_equal(count_with(cudaErrorInitializationError, 13000), NUMAFEED_ENOCUDA);
    assert_non_null(strstr(numafeed_last_error(), "could not initialise"));
    assert_non_null(strstr(numafeed_last_error(), "cudaErrorInitializationError"));

    assert_int_equal(count_with(cudaErrorSystemDriverMismatch, 13000), NUMAFEED_ENOCUDA);
    assert_non_null(strstr(numafeed_last_error(), "cudaErrorSystemDriverMismatch"));

    /* anything else is a CUDA failure, not "no GPU" */
    assert_int_equal(count_with(cudaErrorMemoryAllocation, 13000), NUMAFEED_ECUDA);
    assert_non_null(strstr(numafeed_last_error(), "cudaGetDeviceCount"));
}

static void test_count_and_context(void **state)
{
    (void)state;
    count_n = 2;
    assert_int_equal(count_with(cudaSuccess, 13000), 2);
    assert_string_equal(numafeed_last_error(), "");
    set_device_calls = 0;
    assert_int_equal(numafeed_cuda_init_context(1), 0);
    assert_int_equal(set_device_calls, 1);
    assert_int_equal(last_device, 1);
    assert_int_equal(numafeed_cuda_init_context(2), -EINVAL);
    assert_non_null(strstr(numafeed_last_error(), "2 GPUs are visible"));
    assert_int_equal(numafeed_cuda_init_context(-1), -EINVAL);
    assert_int_equal(set_device_calls, 1);
    /* no GPU: the count's reason, and no device is touched */
    assert_int_equal(count_with(cudaErrorInsufficientDriver, 0), NUMAFEED_ENOCUDA);
    assert_int_equal(numafeed_cuda_init_context(0), NUMAFEED_ENOCUDA);
    assert_non_null(strstr(numafeed_last_error(), "no NVIDIA driver loaded"));
    assert_int_equal(set_device_calls, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_count_and_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
