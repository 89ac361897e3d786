// SPDX-License-Identifier: Apache-2.0
/*
 * CPU sets and the kernel's cpulist format ("0-3,8,10-11\n", see
 * Documentation/admin-guide/cputopology.rst and bitmap_print_to_pagebuf).
 * The parser is strict: the kernel never writes an empty element, a
 * reversed range or a stray character, so any of those means the file is
 * not what we think it is.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pin/pin.h"

void nf__cpuset_free(struct nf_cpuset *s)
{
    free(s->w);
    s->w = NULL;
    s->nwords = 0;
}

static int grow(struct nf_cpuset *s, size_t nwords)
{
    if (nwords <= s->nwords)
        return 0;
    uint64_t *w = realloc(s->w, nwords * sizeof(*w));
    if (!w)
        return nf__error(-ENOMEM, "cpuset: out of memory");
    memset(w + s->nwords, 0, (nwords - s->nwords) * sizeof(*w));
    s->w = w;
    s->nwords = nwords;
    return 0;
}

int nf__cpuset_set(struct nf_cpuset *s, unsigned id)
{
    int rc = grow(s, id / 64 + 1);
    if (rc)
        return rc;
    s->w[id / 64] |= UINT64_C(1) << (id % 64);
    return 0;
}

bool nf__cpuset_test(const struct nf_cpuset *s, unsigned id)
{
    if (id / 64 >= s->nwords)
        return false;
    return (s->w[id / 64] >> (id % 64)) & 1;
}

size_t nf__cpuset_count(const struct nf_cpuset *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nwords; i++)
        n += (size_t)__builtin_popcountll(s->w[i]);
    return n;
}

bool nf__cpuset_empty(const struct nf_cpuset *s)
{
    for (size_t i = 0; i < s->nwords; i++)
        if (s->w[i])
            return false;
    return true;
}

bool nf__cpuset_equal(const struct nf_cpuset *a, const struct nf_cpuset *b)
{
    size_t n = a->nwords > b->nwords ? a->nwords : b->nwords;
    for (size_t i = 0; i < n; i++) {
        uint64_t x = i < a->nwords ? a->w[i] : 0;
        uint64_t y = i < b->nwords ? b->w[i] : 0;
        if (x != y)
            return false;
    }
    return true;
}

int nf__cpuset_copy(struct nf_cpuset *dst, const struct nf_cpuset *src)
{
    int rc = grow(dst, src->nwords);
    if (rc)
        return rc;
    /* both empty: w is NULL, and memset(NULL, 0, 0) is undefined */
    if (dst->nwords)
        memset(dst->w, 0, dst->nwords * sizeof(*dst->w));
    if (src->nwords)
        memcpy(dst->w, src->w, src->nwords * sizeof(*src->w));
    return 0;
}

int nf__cpuset_and(struct nf_cpuset *dst, const struct nf_cpuset *a, const struct nf_cpuset *b)
{
    size_t n = a->nwords < b->nwords ? a->nwords : b->nwords;
    int rc = grow(dst, n ? n : 1);
    if (rc)
        return rc;
    memset(dst->w, 0, dst->nwords * sizeof(*dst->w));
    for (size_t i = 0; i < n; i++)
        dst->w[i] = a->w[i] & b->w[i];
    return 0;
}

long nf__cpuset_next(const struct nf_cpuset *s, unsigned from)
{
    for (size_t i = from / 64; i < s->nwords; i++) {
        uint64_t word = s->w[i];
        if (i == from / 64)
            word &= ~UINT64_C(0) << (from % 64);
        if (word)
            return (long)(i * 64 + (size_t)__builtin_ctzll(word));
    }
    return -1;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Parse an unsigned decimal id at text[*pos]; advances *pos. */
static int parse_id(const char *text, size_t len, size_t *pos, unsigned *out, const char *what)
{
    size_t start = *pos;
    unsigned long v = 0;
    while (*pos < len && text[*pos] >= '0' && text[*pos] <= '9') {
        v = v * 10 + (unsigned long)(text[*pos] - '0');
        if (v > NF_CPU_ID_MAX)
            return nf__error(-EINVAL, "%s: id at offset %zu exceeds %d", what, start,
                              NF_CPU_ID_MAX);
        (*pos)++;
    }
    if (*pos == start) {
        if (*pos >= len || text[*pos] == ',')
            return nf__error(-EINVAL, "%s: empty element at offset %zu (stray comma?)", what,
                              start);
        unsigned char c = (unsigned char)text[*pos];
        return nf__error(-EINVAL, "%s: unexpected %s%c%s at offset %zu, expected a number",
                          what, isprint(c) ? "'" : "byte 0x", isprint(c) ? c : '?',
                          isprint(c) ? "'" : "", start);
    }
    *out = (unsigned)v;
    return 0;
}

int nf__cpuset_parse(struct nf_cpuset *s, const char *text, size_t len, const char *what)
{
    if (s->nwords)
        memset(s->w, 0, s->nwords * sizeof(*s->w));
    size_t b = 0, e = len;
    while (b < e && is_space(text[b]))
        b++;
    while (e > b && is_space(text[e - 1]))
        e--;
    if (b == e)
        return 0; /* an empty list is valid: a CPU-less node */

    size_t pos = b;
    for (;;) {
        unsigned lo, hi;
        int rc = parse_id(text, e, &pos, &lo, what);
        if (rc)
            return rc;
        hi = lo;
        if (pos < e && text[pos] == '-') {
            pos++;
            size_t hi_at = pos;
            rc = parse_id(text, e, &pos, &hi, what);
            if (rc)
                return rc;
            if (hi < lo)
                return nf__error(-EINVAL, "%s: reversed range %u-%u at offset %zu", what, lo,
                                  hi, hi_at);
        }
        rc = grow(s, hi / 64 + 1);
        if (rc)
            return rc;
        for (unsigned id = lo; id <= hi; id++)
            s->w[id / 64] |= UINT64_C(1) << (id % 64);
        if (pos == e)
            return 0;
        if (text[pos] != ',') {
            unsigned char c = (unsigned char)text[pos];
            return nf__error(-EINVAL, "%s: unexpected %s%c%s at offset %zu, expected ',' or '-'",
                              what, isprint(c) ? "'" : "byte 0x", isprint(c) ? c : '?',
                              isprint(c) ? "'" : "", pos);
        }
        pos++;
        if (pos == e)
            return nf__error(-EINVAL, "%s: trailing comma at offset %zu", what, pos - 1);
    }
}

size_t nf__cpuset_format(const struct nf_cpuset *s, char *buf, size_t bufsize)
{
    size_t n = 0;
    if (bufsize)
        buf[0] = '\0';
    long id = nf__cpuset_next(s, 0);
    while (id >= 0) {
        long end = id;
        while (nf__cpuset_test(s, (unsigned)(end + 1)))
            end++;
        char tmp[32];
        int k = end > id ? snprintf(tmp, sizeof(tmp), "%s%ld-%ld", n ? "," : "", id, end)
                         : snprintf(tmp, sizeof(tmp), "%s%ld", n ? "," : "", id);
        if (n + (size_t)k < bufsize)
            memcpy(buf + n, tmp, (size_t)k + 1);
        else if (bufsize && n < bufsize)
            buf[n] = '\0';
        n += (size_t)k;
        id = nf__cpuset_next(s, (unsigned)end + 1);
    }
    return n;
}

int nf__cpuset_from_affinity(struct nf_cpuset *s, pid_t tid)
{
    /* The kernel's mask may be wider than CPU_SETSIZE: grow until it fits. */
    for (int ncpus = 1024; ncpus <= NF_CPU_ID_MAX + 1; ncpus *= 2) {
        cpu_set_t *m = CPU_ALLOC((size_t)ncpus);
        if (!m)
            return nf__error(-ENOMEM, "sched_getaffinity: out of memory");
        size_t sz = CPU_ALLOC_SIZE((size_t)ncpus);
        if (sched_getaffinity(tid, sz, m) == 0) {
            if (s->nwords)
                memset(s->w, 0, s->nwords * sizeof(*s->w));
            int rc = 0;
            for (int c = 0; c < ncpus && !rc; c++)
                if (CPU_ISSET_S((size_t)c, sz, m))
                    rc = nf__cpuset_set(s, (unsigned)c);
            CPU_FREE(m);
            return rc;
        }
        int err = errno;
        CPU_FREE(m);
        if (err != EINVAL)
            return nf__error(-err, "sched_getaffinity(%d): %s", (int)tid, strerror(err));
    }
    return nf__error(-EINVAL, "sched_getaffinity: mask wider than %d CPUs", NF_CPU_ID_MAX + 1);
}

int nf__cpuset_apply_affinity(const struct nf_cpuset *s, pid_t tid)
{
    if (nf__cpuset_empty(s))
        return nf__error(-EINVAL, "sched_setaffinity(%d): refusing an empty CPU mask", (int)tid);
    size_t ncpus = s->nwords * 64;
    cpu_set_t *m = CPU_ALLOC(ncpus);
    if (!m)
        return nf__error(-ENOMEM, "sched_setaffinity: out of memory");
    size_t sz = CPU_ALLOC_SIZE(ncpus);
    CPU_ZERO_S(sz, m);
    for (long c = nf__cpuset_next(s, 0); c >= 0; c = nf__cpuset_next(s, (unsigned)c + 1))
        CPU_SET_S((size_t)c, sz, m);
    int rc = sched_setaffinity(tid, sz, m);
    int err = errno;
    CPU_FREE(m);
    if (rc) {
        char list[256];
        nf__cpuset_format(s, list, sizeof(list));
        return nf__error(-err, "sched_setaffinity(%d, %s): %s", (int)tid, list, strerror(err));
    }
    return 0;
}

int numafeed_cpulist_ids(const char *text, int *ids, size_t max)
{
    struct nf_cpuset s = {0};
    nf__error_clear();
    if (!text)
        return nf__error(-EINVAL, "cpulist: NULL text");
    int rc = nf__cpuset_parse(&s, text, strlen(text), "cpulist");
    int n = 0;
    for (long c = rc ? -1 : nf__cpuset_next(&s, 0); c >= 0;
         c = nf__cpuset_next(&s, (unsigned)c + 1), n++)
        if ((size_t)n < max)
            ids[n] = (int)c;
    nf__cpuset_free(&s);
    return rc ? rc : n;
}

int numafeed_cpulist_normalize(const char *text, char *buf, size_t bufsize)
{
    struct nf_cpuset s = {0};
    nf__error_clear();
    if (!text)
        return nf__error(-EINVAL, "cpulist: NULL text");
    int rc = nf__cpuset_parse(&s, text, strlen(text), "cpulist");
    if (rc == 0) {
        size_t n = nf__cpuset_format(&s, buf, bufsize);
        rc = n > INT32_MAX ? -EOVERFLOW : (int)n;
    }
    nf__cpuset_free(&s);
    return rc;
}
