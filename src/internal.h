/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What every part of the library shares: the thread-local last-error
 * message and a few checked-arithmetic helpers. Nothing here knows about
 * NUMA, shards or GPUs.
 */
#ifndef NUMAFEED_INTERNAL_H
#define NUMAFEED_INTERNAL_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "numafeed.h"

#define NF_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Record a failure: formats the thread's last-error message and returns err
 * unchanged, so a failing path reads `return nf__error(-EIO, "...", ...)`.
 */
int nf__error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int nf__verror(int err, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Prefix the current last-error message with "<prefix>: ". Returns err. */
int nf__error_prefix(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void nf__error_clear(void);
/*
 * Bytes at c that a terminal would act on: 1 for a C0 control (newlines
 * included) or DEL, 2 for a C1 control (U+0080 to U+009F, 0xc2 then
 * 0x80-0x9f in UTF-8), 0 otherwise. Names from datasets may come from
 * anyone: the last-error message escapes these, and a shard name may not
 * hold them.
 */
static inline size_t nf__control_len(const unsigned char *c)
{
    if (*c < 0x20 || *c == 0x7f)
        return 1;
    return *c == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f ? 2 : 0;
}

/* Append "; <formatted>" (or just it, when buf is empty) to a fixed-size
 * report string such as a placement note. What does not fit is cut, and
 * the string then ends in "..."; notes after that are dropped. */
void nf__note(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Overflow-checked size arithmetic: 0 on success, -EOVERFLOW otherwise. */
static inline int nf__add_size(size_t a, size_t b, size_t *out)
{
    return __builtin_add_overflow(a, b, out) ? -75 /* EOVERFLOW */ : 0;
}
static inline int nf__mul_size(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out) ? -75 /* EOVERFLOW */ : 0;
}

/*
 * Fill a caller's output struct that begins with `size_t size` (set by the
 * caller to the sizeof it was compiled with) from our complete one of
 * full_size bytes: only the caller's size is copied, so a caller built
 * against an older, shorter struct is never written past its end; its
 * size field stays. -EINVAL (naming `what`) when dst is NULL, or its size
 * is below the size field or above what this library knows.
 */
static inline int nf__copy_out(void *dst, const void *full, size_t full_size, const char *what)
{
    size_t size;
    if (!dst)
        return nf__error(-EINVAL, "%s: NULL", what);
    memcpy(&size, dst, sizeof(size));
    if (size < sizeof(size_t) || size > full_size)
        return nf__error(-EINVAL, "%s: size %zu unknown (this library's is %zu)", what, size,
                         full_size);
    memcpy((char *)dst + sizeof(size_t), (const char *)full + sizeof(size_t), size - sizeof(size_t));
    return 0;
}

#endif
