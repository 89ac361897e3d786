// SPDX-License-Identifier: Apache-2.0
/*
 * numafeed_cuda_device_count and numafeed_cuda_init_context on this machine,
 * whatever it has: a count and a context on a GPU host; elsewhere
 * NUMAFEED_ENOCUDA with a reason, never a crash or a guess.
 */
#include "helpers.h"

#include <errno.h>
#include <string.h>

static void test_count(void **state)
{
    (void)state;
    int n = numafeed_cuda_device_count();
    if (!numafeed_has_cuda()) {
        assert_int_equal(n, NUMAFEED_ENOCUDA);
        assert_non_null(strstr(numafeed_last_error(), "not compiled"));
        assert_int_equal(numafeed_cuda_init_context(0), NUMAFEED_ENOCUDA);
        return;
    }
    if (n < 0) {
        assert_int_equal(n, NUMAFEED_ENOCUDA);
        assert_true(strlen(numafeed_last_error()) > 0);
        assert_int_equal(numafeed_cuda_init_context(0), NUMAFEED_ENOCUDA);
        /* the same answer the second time: nothing sticky */
        assert_int_equal(numafeed_cuda_device_count(), NUMAFEED_ENOCUDA);
        return;
    }
    assert_string_equal(numafeed_last_error(), "");
    assert_int_equal(numafeed_cuda_init_context(n), -EINVAL);
    assert_int_equal(numafeed_cuda_init_context(-1), -EINVAL);
    if (n > 0)
        assert_int_equal(numafeed_cuda_init_context(n - 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
