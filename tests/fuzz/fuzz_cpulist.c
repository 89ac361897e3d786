// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz the kernel cpulist parser (nf__cpuset_parse, with the formatter and
 * the public numafeed_cpulist_normalize that wrap it) and the PCI bus-id
 * normaliser (nf__busid_normalize). Input: the text, used whole for both;
 * the parser gets it unterminated, the bus-id code (which takes a C
 * string) a terminated copy.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "pin/pin.h"

static char *format(const struct nf_cpuset *s, size_t *len)
{
    size_t n = nf__cpuset_format(s, NULL, 0);
    char *buf = malloc(n + 1);
    NF_FUZZ_CHECK(buf != NULL);
    NF_FUZZ_CHECK(nf__cpuset_format(s, buf, n + 1) == n);
    NF_FUZZ_CHECK(strlen(buf) == n);
    *len = n;
    return buf;
}

static void check_cpuset(const struct nf_cpuset *s, const char *text, size_t size)
{
    /* every id in range, and count agrees with iteration */
    size_t count = 0;
    long last = -1;
    for (long id = nf__cpuset_next(s, 0); id >= 0; id = nf__cpuset_next(s, (unsigned)id + 1)) {
        NF_FUZZ_CHECK(id > last && id <= NF_CPU_ID_MAX);
        NF_FUZZ_CHECK(nf__cpuset_test(s, (unsigned)id));
        last = id;
        count++;
    }
    NF_FUZZ_CHECK(count == nf__cpuset_count(s));
    NF_FUZZ_CHECK((count == 0) == nf__cpuset_empty(s));

    /* the canonical form parses back to the same set and is a fixed point */
    size_t n;
    char *canon = format(s, &n);
    struct nf_cpuset back = {0};
    NF_FUZZ_CHECK(nf__cpuset_parse(&back, canon, n, "canonical") == 0);
    NF_FUZZ_CHECK(nf__cpuset_equal(s, &back));
    size_t n2;
    char *again = format(&back, &n2);
    NF_FUZZ_CHECK(n2 == n && !memcmp(again, canon, n));
    nf__cpuset_free(&back);
    free(again);

    /* a buffer too small holds a terminated prefix of the canonical form */
    for (size_t cap = 1; cap <= n; cap = cap * 2 + 1) {
        char *small = malloc(cap);
        NF_FUZZ_CHECK(small != NULL);
        NF_FUZZ_CHECK(nf__cpuset_format(s, small, cap) == n);
        size_t k = strnlen(small, cap);
        NF_FUZZ_CHECK(k < cap && !memcmp(small, canon, k));
        free(small);
    }

    /* copy, and with itself, are the identity */
    struct nf_cpuset c = {0}, a = {0};
    NF_FUZZ_CHECK(nf__cpuset_copy(&c, s) == 0 && nf__cpuset_equal(&c, s));
    NF_FUZZ_CHECK(nf__cpuset_and(&a, s, &c) == 0 && nf__cpuset_equal(&a, s));
    nf__cpuset_free(&c);
    nf__cpuset_free(&a);

    /* the public wrapper says the same, when the text is a C string */
    if (!memchr(text, '\0', size)) {
        char *z = malloc(size + 1), *out = malloc(n + 1);
        NF_FUZZ_CHECK(z && out);
        memcpy(z, text, size);
        z[size] = '\0';
        NF_FUZZ_CHECK(numafeed_cpulist_normalize(z, out, n + 1) == (int)n);
        NF_FUZZ_CHECK(!memcmp(out, canon, n + 1));
        free(z);
        free(out);
    }
    free(canon);
}

static void check_busid(const uint8_t *data, size_t size)
{
    char in[64], out[NF_BUSID_LEN], out2[NF_BUSID_LEN];
    if (size >= sizeof(in))
        return; /* longer than any bus id: the first bytes are covered below */
    memcpy(in, data, size);
    in[size] = '\0';
    uint64_t key = 0, key2 = 0;
    if (nf__busid_normalize(in, out, &key))
        return;
    /* normalised form is lower-case, fixed separators, and a fixed point */
    size_t n = strlen(out);
    NF_FUZZ_CHECK(n >= 12 && n <= 16);
    NF_FUZZ_CHECK(out[n - 2] == '.' && out[n - 5] == ':' && out[n - 8] == ':');
    NF_FUZZ_CHECK(nf__busid_normalize(out, out2, &key2) == 0);
    NF_FUZZ_CHECK(!strcmp(out, out2) && key == key2);
    /* the key orders like (domain, bus, device, function) and encodes them */
    char rebuilt[NF_BUSID_LEN];
    snprintf(rebuilt, sizeof(rebuilt), "%04llx:%02llx:%02llx.%llx",
             (unsigned long long)(key >> 16), (unsigned long long)((key >> 8) & 0xff),
             (unsigned long long)((key >> 3) & 0x1f), (unsigned long long)(key & 7));
    NF_FUZZ_CHECK(!strcmp(rebuilt, out));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct nf_cpuset s = {0};
    int rc = nf__cpuset_parse(&s, text, size, "fuzz");
    if (rc == 0)
        check_cpuset(&s, text, size);
    else
        NF_FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM);
    nf__cpuset_free(&s);
    check_busid(data, size);
    return 0;
}
