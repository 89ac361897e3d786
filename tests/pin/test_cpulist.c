// SPDX-License-Identifier: Apache-2.0
/* The kernel cpulist parser: exact results, strict errors, and agreement
 * with a deliberately simple reference on random inputs. */
#include "helpers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pin/pin.h"

/* Parse text and return the canonical form (static buffer), or NULL on error. */
static const char *canon(const char *text)
{
    static char buf[8192];
    int n = numafeed_cpulist_normalize(text, buf, sizeof(buf));
    return n < 0 ? NULL : buf;
}

static void assert_error(const char *text, const char *needle)
{
    char buf[64];
    int rc = numafeed_cpulist_normalize(text, buf, sizeof(buf));
    if (rc != -EINVAL)
        fail_msg("\"%s\": expected -EINVAL, got %d (%s)", text, rc, rc >= 0 ? buf : "");
    if (needle && !strstr(numafeed_last_error(), needle))
        fail_msg("\"%s\": message \"%s\" lacks \"%s\"", text, numafeed_last_error(), needle);
}

static void test_happy(void **state)
{
    (void)state;
    assert_string_equal(canon("0-3,8-11"), "0-3,8-11");
    assert_string_equal(canon("0,1,2,3"), "0-3");
    assert_string_equal(canon("3,2,1,0"), "0-3");
    assert_string_equal(canon("0-55,112-167\n"), "0-55,112-167");
    assert_string_equal(canon("1,3,5"), "1,3,5");
    assert_string_equal(canon("0-3,2-5"), "0-5"); /* overlap folds */
}

static void test_boundaries(void **state)
{
    (void)state;
    assert_string_equal(canon("0"), "0");
    assert_string_equal(canon("5-5"), "5");
    assert_string_equal(canon(""), "");
    assert_string_equal(canon("\n"), "");
    assert_string_equal(canon("63-64"), "63-64"); /* word boundary */
    assert_string_equal(canon("65535"), "65535");
    assert_string_equal(canon("0-65535"), "0-65535");
}

static void test_whitespace(void **state)
{
    (void)state;
    assert_string_equal(canon("  0-3 \n"), "0-3");
    assert_string_equal(canon("\t7\r\n"), "7");
    assert_error("0 -3", "offset 1");
    assert_error("0, 3", "offset 2");
}

static void test_trailing_comma(void **state)
{
    (void)state;
    /* The bug this guards against: "0-3," must not turn into {0-3} + CPU 0,
     * nor silently into {0-3}. */
    assert_error("0-3,", "trailing comma");
    assert_error("0-3,\n", "trailing comma");
    assert_error(",", NULL);
    assert_error("1,,2", "empty element");
    assert_error(",1", "empty element");
}

static void test_garbage(void **state)
{
    (void)state;
    assert_error("x", "'x' at offset 0");
    assert_error("0-3,a", "offset 4");
    assert_error("0-", "offset 2");
    assert_error("-1", "offset 0");
    assert_error("1-2-3", "offset 3");
    assert_error("0x10", "offset 1");
    assert_error("ff,ffffffff", NULL); /* a cpumask, not a cpulist */
    assert_error("0-7:2/4", NULL);     /* the kernel's input-only stride form */
    assert_error("1\x01", "byte 0x");
}

static void test_reversed(void **state)
{
    (void)state;
    assert_error("3-0", "reversed range 3-0");
    assert_error("0-3,9-8", "reversed range 9-8");
}

static void test_huge_ids(void **state)
{
    (void)state;
    assert_error("65536", "exceeds 65535");
    assert_error("0-99999999999999999999", "exceeds");
    assert_error("18446744073709551616", "exceeds");
}

static void test_ids(void **state)
{
    (void)state;
    int ids[4];
    assert_int_equal(numafeed_cpulist_ids("5,0-2", ids, 4), 4);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[2], 2);
    assert_int_equal(ids[3], 5);
    assert_int_equal(numafeed_cpulist_ids("0-9", ids, 4), 10); /* cut, count kept */
    assert_int_equal(ids[3], 3);
    assert_int_equal(numafeed_cpulist_ids("", ids, 4), 0);
    assert_int_equal(numafeed_cpulist_ids("1,", ids, 4), -EINVAL);
}

static void test_truncated_output(void **state)
{
    (void)state;
    char buf[6];
    int n = numafeed_cpulist_normalize("0-3,8-11,20", buf, sizeof(buf));
    assert_int_equal(n, (int)strlen("0-3,8-11,20")); /* snprintf convention */
    assert_true(strlen(buf) < sizeof(buf));
    assert_string_equal(buf, "0-3");
}

/* Reference: expand into a bool array by the simplest possible means. */
static int ref_parse(const char *s, unsigned char *bits, int max)
{
    memset(bits, 0, (size_t)max);
    if (!*s)
        return 0;
    const char *p = s;
    for (;;) {
        char *e;
        long a = strtol(p, &e, 10), b = a;
        if (e == p)
            return -1;
        p = e;
        if (*p == '-') {
            b = strtol(p + 1, &e, 10);
            if (e == p + 1)
                return -1;
            p = e;
        }
        if (b < a)
            return -1;
        for (long i = a; i <= b; i++)
            bits[i] = 1;
        if (!*p)
            return 0;
        if (*p != ',' || !p[1])
            return -1;
        p++;
    }
}

static void test_random_equivalence(void **state)
{
    (void)state;
    enum { MAXID = 300 };
    unsigned seed = 12345;
    struct nf_cpuset set = {0};
    for (int iter = 0; iter < 20000; iter++) {
        char text[512] = "";
        size_t len = 0;
        int elems = rand_r(&seed) % 6;
        for (int e = 0; e < elems; e++) {
            int a = rand_r(&seed) % MAXID;
            int kind = rand_r(&seed) % 4;
            if (e)
                text[len++] = ',';
            if (kind == 0) { /* range, sometimes reversed */
                int b = rand_r(&seed) % MAXID;
                len += (size_t)snprintf(text + len, sizeof(text) - len, "%d-%d", a, b);
            } else {
                len += (size_t)snprintf(text + len, sizeof(text) - len, "%d", a);
            }
        }
        if (rand_r(&seed) % 10 == 0)
            text[len++] = ','; /* trailing comma now and then */
        text[len] = '\0';

        unsigned char ref[MAXID];
        int rrc = ref_parse(text, ref, MAXID);
        int rc = nf__cpuset_parse(&set, text, len, "random");
        if ((rrc == 0) != (rc == 0))
            fail_msg("\"%s\": reference %d, parser %d (%s)", text, rrc, rc, numafeed_last_error());
        if (rc)
            continue;
        for (unsigned i = 0; i < MAXID; i++)
            if (ref[i] != nf__cpuset_test(&set, i))
                fail_msg("\"%s\": CPU %u differs", text, i);
        /* format -> parse round trip is the identity */
        char out[2048];
        struct nf_cpuset again = {0};
        size_t n = nf__cpuset_format(&set, out, sizeof(out));
        assert_int_equal(nf__cpuset_parse(&again, out, n, "roundtrip"), 0);
        assert_true(nf__cpuset_equal(&set, &again));
        nf__cpuset_free(&again);
    }
    nf__cpuset_free(&set);
}

static void test_set_ops(void **state)
{
    (void)state;
    struct nf_cpuset a = {0}, b = {0}, c = {0};
    assert_int_equal(nf__cpuset_parse(&a, "0-127", 5, "a"), 0);
    assert_int_equal(nf__cpuset_parse(&b, "64-65,200", 9, "b"), 0);
    assert_int_equal(nf__cpuset_and(&c, &a, &b), 0);
    char out[64];
    nf__cpuset_format(&c, out, sizeof(out));
    assert_string_equal(out, "64-65");
    assert_int_equal(nf__cpuset_count(&c), 2);
    assert_int_equal(nf__cpuset_next(&c, 0), 64);
    assert_int_equal(nf__cpuset_next(&c, 66), -1);
    assert_int_equal(nf__cpuset_parse(&b, "200", 3, "b"), 0);
    assert_int_equal(nf__cpuset_and(&c, &a, &b), 0);
    assert_true(nf__cpuset_empty(&c));
    /* applying an empty mask is refused, never passed to the kernel */
    assert_int_equal(nf__cpuset_apply_affinity(&c, 0), -EINVAL);
    nf__cpuset_free(&a);
    nf__cpuset_free(&b);
    nf__cpuset_free(&c);
    /* copying a never-grown set into another (both w NULL): found by
     * fuzz_cpulist as memset(NULL, 0, 0) under UBSan */
    struct nf_cpuset e = {0}, f = {0};
    assert_int_equal(nf__cpuset_copy(&f, &e), 0);
    assert_true(nf__cpuset_empty(&f) && nf__cpuset_equal(&e, &f));
    nf__cpuset_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_happy),          cmocka_unit_test(test_boundaries),
        cmocka_unit_test(test_whitespace),     cmocka_unit_test(test_trailing_comma),
        cmocka_unit_test(test_garbage),        cmocka_unit_test(test_reversed),
        cmocka_unit_test(test_huge_ids),       cmocka_unit_test(test_truncated_output), cmocka_unit_test(test_ids),
        cmocka_unit_test(test_random_equivalence), cmocka_unit_test(test_set_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
