// SPDX-License-Identifier: Apache-2.0
/* Error codes, names, messages and the per-thread last-error string. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Large enough for a path, an offset and a system call's message. */
#define NF_ERRMSG_MAX 1024

static _Thread_local char last_error[NF_ERRMSG_MAX];

/*
 * Copy a message into out, escaping what a terminal would act on: C0
 * controls (newlines included) and DEL as \xHH, C1 controls (U+0080 to
 * U+009F, two bytes in UTF-8) as \u00HH. Messages carry names from
 * datasets, which may come from anyone; an escape sequence or a newline
 * in a shard name must not repaint a terminal or forge a line of output.
 */
static void escape_into(char *out, size_t size, const char *in)
{
    size_t o = 0;
    for (const unsigned char *c = (const unsigned char *)in; *c && o + 1 < size; c++) {
        char esc[8];
        size_t n = 0, ctl = nf__control_len(c);
        if (ctl == 1)
            n = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", *c);
        else if (ctl == 2)
            n = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", *++c);
        if (!n) {
            out[o++] = (char)*c;
            continue;
        }
        if (o + n + 1 > size)
            break;
        memcpy(out + o, esc, n);
        o += n;
    }
    out[o] = '\0';
}

int nf__verror(int err, const char *fmt, va_list ap)
{
    char raw[NF_ERRMSG_MAX];
    vsnprintf(raw, sizeof(raw), fmt, ap);
    escape_into(last_error, sizeof(last_error), raw);
    return err;
}

int nf__error(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nf__verror(err, fmt, ap);
    va_end(ap);
    return err;
}

int nf__error_prefix(int err, const char *fmt, ...)
{
    char raw[256], prefix[256];
    char old[NF_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    escape_into(prefix, sizeof(prefix), raw);
    memcpy(old, last_error, sizeof(old));
    size_t n = strlen(prefix);
    memcpy(last_error, prefix, n);
    if (n + 2 < sizeof(last_error)) {
        memcpy(last_error + n, ": ", 2);
        n += 2;
    }
    size_t rest = strnlen(old, sizeof(last_error) - 1 - n);
    memcpy(last_error + n, old, rest);
    last_error[n + rest] = '\0';
    return err;
}

void nf__error_clear(void)
{
    last_error[0] = '\0';
}

void nf__note(char *buf, size_t size, const char *fmt, ...)
{
    static const char cut[] = "...";
    size_t n = strlen(buf);
    if (size < sizeof(cut) + 3 || n + 3 >= size)
        return; /* full: it ends in cut already */
    if (n)
        n += (size_t)snprintf(buf + n, size - n, "; ");
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + n, size - n, fmt, ap);
    va_end(ap);
    if (k >= 0 && (size_t)k >= size - n) /* cut: say so */
        memcpy(buf + size - sizeof(cut), cut, sizeof(cut));
}

const char *numafeed_last_error(void)
{
    return last_error;
}

const char *numafeed_strerror(int err)
{
    switch (err) {
#define NF_X_MSG(name, off, msg) \
    case NUMAFEED_E##name:       \
        return msg;
        NUMAFEED_ERRNO_MAP(NF_X_MSG)
#undef NF_X_MSG
    case 0:
        return "success";
    default:
        break;
    }
    if (err < 0 && err > -4096) {
        /* strerror's buffer is static per glibc for known errno values;
         * strerrordesc_np is thread-safe and never allocates. */
        const char *s = strerrordesc_np(-err);
        if (s)
            return s;
    }
    return "unknown error";
}

const char *numafeed_err_name(int err)
{
    switch (err) {
#define NF_X_NAME(name, off, msg) \
    case NUMAFEED_E##name:        \
        return "NUMAFEED_E" #name;
        NUMAFEED_ERRNO_MAP(NF_X_NAME)
#undef NF_X_NAME
    default:
        break;
    }
    if (err < 0 && err > -4096) {
        const char *s = strerrorname_np(-err);
        if (s)
            return s;
    }
    return "UNKNOWN";
}

unsigned numafeed_version(void)
{
    return NUMAFEED_VERSION_NUMBER;
}

const char *numafeed_version_string(void)
{
    return NUMAFEED_VERSION_STRING;
}
