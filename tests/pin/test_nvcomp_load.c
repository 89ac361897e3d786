// SPDX-License-Identifier: Apache-2.0
/*
 * Finding and loading nvCOMP (src/pin/nvcomp.c) without a GPU: the search
 * order ($NUMAFEED_NVCOMP, beside numafeed's Python package, the loader's
 * path), stand-in libraries built by the tests (fake_nvcomp.c) of the
 * right version, of another major version and missing an entry point,
 * each refusal naming what it found; and every argument of the calls
 * through the loaded table, checked by the stand-in.
 */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pin/pin.h"

static char cand[16][NF_NVCOMP_PATH];

static void test_order_env(void **state)
{
    (void)state;
    /* a file: only it, whatever else exists */
    int n = nf__nvcomp_candidates("/opt/x/libnvcomp.so.6", "/a/site-packages/numafeed/m.so",
                                  cand, 16);
    assert_int_equal(n, 1);
    assert_string_equal(cand[0], "/opt/x/libnvcomp.so.6");
    /* a directory: the layouts a wheel or an install has */
    n = nf__nvcomp_candidates(NF_FAKE_NVCOMP6, NULL, cand, 16);
    assert_int_equal(n, 4);
    assert_string_equal(cand[0], NF_FAKE_NVCOMP6 "/libnvcomp.so.6");
    assert_string_equal(cand[1], NF_FAKE_NVCOMP6 "/lib64/libnvcomp.so.6");
    assert_string_equal(cand[2], NF_FAKE_NVCOMP6 "/lib/libnvcomp.so.6");
    assert_string_equal(cand[3], NF_FAKE_NVCOMP6 "/nvidia/libnvcomp/lib64/libnvcomp.so.6");
}

static void test_order_package(void **state)
{
    (void)state;
    /* the extension in site-packages/numafeed/: the wheel beside it, then
     * the loader's path */
    int n = nf__nvcomp_candidates("", "/v/lib/python3.11/site-packages/numafeed/_numafeed.so",
                                  cand, 16);
    assert_int_equal(n, 2);
    assert_string_equal(cand[0], "/v/lib/python3.11/site-packages/numafeed/../nvidia/libnvcomp/"
                                 "lib64/libnvcomp.so.6");
    assert_string_equal(cand[1], "libnvcomp.so.6");
    /* the command in an environment's bin/: its site-packages, found */
    char *base = nf_tmpdir(), path[4096], self[4096];
    snprintf(path, sizeof(path), "%s/lib/python3.12/site-packages/nvidia/libnvcomp/lib64/"
             "libnvcomp.so.6", base);
    assert_int_equal(nf_write_file(path, "", 0), 0);
    snprintf(self, sizeof(self), "%s/bin/numafeed", base);
    assert_int_equal(nf_write_file(self, "", 0), 0);
    n = nf__nvcomp_candidates(NULL, self, cand, 16);
    assert_int_equal(n, 3);
    char want[4096];
    snprintf(want, sizeof(want), "%s/bin/../lib/python3.12/site-packages/nvidia/libnvcomp/lib64/"
             "libnvcomp.so.6", base);
    assert_string_equal(cand[1], want);
    assert_string_equal(cand[2], "libnvcomp.so.6");
    /* nothing known about ourselves: the loader's path alone */
    assert_int_equal(nf__nvcomp_candidates(NULL, NULL, cand, 16), 1);
    nf_rmtree(base);
    free(base);
}

static void test_open_fake(void **state)
{
    (void)state;
    struct nf_nvcomp lib;
    assert_int_equal(nf__nvcomp_open(NF_FAKE_NVCOMP6, NULL, &lib), 0);
    assert_int_equal(lib.version, 6000);
    assert_non_null(strstr(lib.path, "lib64/libnvcomp.so.6"));
    char d[NF_NVCOMP_PATH + 64];
    nf__nvcomp_describe(&lib, d, sizeof(d));
    assert_non_null(strstr(d, "nvCOMP 6.0.0 (CUDA runtime 13000) from "));

    /* the calls through the table, checked by the stand-in */
    struct nf_nvcomp_alignments al;
    assert_int_equal(nf__nvcomp_zstd_alignments(&lib, &al), 0);
    assert_int_equal(al.input, 8);
    assert_int_equal(al.output, 16);
    assert_int_equal(al.temp, 32);
    size_t temp = 0;
    assert_int_equal(nf__nvcomp_zstd_temp(&lib, 3, 100, 250, &temp), 0);
    assert_int_equal(temp, 3 * 100 + 250);
    char in0[] = "first", in1[] = "second!", out0[8] = {0}, out1[4] = {0}, scratch[8];
    const void *in[] = {in0, in1};
    void *out[] = {out0, out1};
    size_t in_bytes[] = {5, 7}, cap[] = {8, 4}, actual[2] = {99, 99};
    nf_nvcomp_status st[2] = {-1, -1};
    struct nf_nvcomp_batch b = {in, in_bytes, cap, actual, out, st, 2, scratch, sizeof(scratch)};
    assert_int_equal(nf__nvcomp_zstd_decompress(&lib, &b, NULL), 0);
    assert_int_equal(st[0], 0);
    assert_int_equal(actual[0], 5);
    assert_memory_equal(out0, "first", 5);
    assert_int_equal(st[1], 12); /* 7 bytes do not fit 4 */
    assert_string_equal(nf__nvcomp_status_string(&lib, st[1]), "fake: cannot decompress");
    nf__nvcomp_close(&lib);
}

static void test_refusals(void **state)
{
    (void)state;
    struct nf_nvcomp lib;
    assert_int_equal(nf__nvcomp_open(NF_FAKE_NVCOMP5, NULL, &lib), NUMAFEED_ENVCOMP);
    printf("# %s\n", numafeed_last_error());
    assert_non_null(strstr(numafeed_last_error(), "is nvCOMP 5.1.0; this build calls the ABI of "
                                                  "nvCOMP 6"));
    assert_non_null(strstr(numafeed_last_error(), "$NUMAFEED_NVCOMP"));
    assert_int_equal(nf__nvcomp_open(NF_FAKE_NVCOMP_BROKEN, NULL, &lib), NUMAFEED_ENVCOMP);
    assert_non_null(strstr(numafeed_last_error(), "no symbol nvcompBatchedZstdDecompressAsync"));
    assert_int_equal(nf__nvcomp_open("/nonexistent/libnvcomp.so.6", NULL, &lib),
                     NUMAFEED_ENVCOMP);
    assert_non_null(strstr(numafeed_last_error(), "/nonexistent/libnvcomp.so.6"));
    assert_non_null(strstr(numafeed_last_error(), "nvidia-libnvcomp-cu13"));
}

/* The wheel's layout beside a Python package, found without the variable. */
static void test_beside_package(void **state)
{
    (void)state;
    char *base = nf_tmpdir(), dir[4096], link[4200], self[4096];
    snprintf(dir, sizeof(dir), "%s/site-packages/nvidia/libnvcomp/lib64", base);
    assert_int_equal(nf_run(NULL, "mkdir -p '%s' '%s/site-packages/numafeed'", dir, base), 0);
    snprintf(link, sizeof(link), "%s/libnvcomp.so.6", dir);
    assert_int_equal(symlink(NF_FAKE_NVCOMP6 "/lib64/libnvcomp.so.6", link), 0);
    snprintf(self, sizeof(self), "%s/site-packages/numafeed/_numafeed.abi3.so", base);
    struct nf_nvcomp lib;
    assert_int_equal(nf__nvcomp_open(NULL, self, &lib), 0);
    assert_int_equal(lib.version, 6000);
    nf__nvcomp_close(&lib);
    nf_rmtree(base);
    free(base);
}

/* The process's copy: loaded once, the same answer every time. */
static void test_process_load(void **state)
{
    (void)state;
    assert_int_equal(setenv(NF_NVCOMP_ENV, NF_FAKE_NVCOMP6, 1), 0);
    assert_int_equal(nf__nvcomp_load(), 0);
    assert_non_null(nf__nvcomp());
    assert_int_equal(nf__nvcomp()->version, 6000);
    assert_int_equal(setenv(NF_NVCOMP_ENV, "/elsewhere", 1), 0);
    assert_int_equal(nf__nvcomp_load(), 0); /* loaded already */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_env),     cmocka_unit_test(test_order_package),
        cmocka_unit_test(test_open_fake),     cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_beside_package), cmocka_unit_test(test_process_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
