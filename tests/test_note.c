// SPDX-License-Identifier: Apache-2.0
/*
 * nf__note, which builds the pools' notes and placement reports in fixed
 * buffers: notes are joined with "; ", one that does not fit is cut and
 * the buffer then ends in "...", and later notes are dropped, the buffer
 * always NUL-terminated inside its size.
 */
#include "helpers.h"

#include <string.h>

#include "internal.h"

static void test_joined(void **state)
{
    (void)state;
    char buf[64] = "";
    nf__note(buf, sizeof(buf), "ring: %s", "hugetlb");
    nf__note(buf, sizeof(buf), "io %s", "mmap");
    assert_string_equal(buf, "ring: hugetlb; io mmap");
}

static void test_cut_says_so(void **state)
{
    (void)state;
    char buf[32];
    memset(buf, 'x', sizeof(buf));
    buf[0] = '\0';
    nf__note(buf, sizeof(buf), "first");
    nf__note(buf, sizeof(buf), "%s", "a note far longer than what is left of the buffer");
    assert_int_equal(strlen(buf), sizeof(buf) - 1);
    assert_string_equal(buf, "first; a note far longer tha...");
    nf__note(buf, sizeof(buf), "dropped"); /* full: unchanged */
    assert_string_equal(buf, "first; a note far longer tha...");
    /* exactly filling the buffer is not a cut */
    char fit[8] = "";
    nf__note(fit, sizeof(fit), "%s", "1234567");
    assert_string_equal(fit, "1234567");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_joined),
        cmocka_unit_test(test_cut_says_so),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
