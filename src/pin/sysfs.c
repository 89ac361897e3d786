// SPDX-License-Identifier: Apache-2.0
/*
 * Every sysfs read numafeed makes goes through here, relative to one root
 * that defaults to /sys. Tests point the root at fixture trees captured
 * from real servers (tests/fixtures/sysfs/), the way hwloc's HWLOC_FSROOT
 * does, so no code path needs the machine it describes.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pin/pin.h"

const char *nf__sysfs_root(const char *explicit_root)
{
    if (explicit_root && *explicit_root)
        return explicit_root;
    const char *env = getenv("NUMAFEED_SYSFS_ROOT");
    if (env && *env)
        return env;
    return "/sys";
}

int nf__sysfs_read(const char *root, const char *rel, char **out, size_t *len)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s", root, rel);
    if (n < 0 || (size_t)n >= sizeof(path))
        return nf__error(-ENAMETOOLONG, "%s/%s: path too long", root, rel);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        return nf__error(-err, "open(%s): %s", path, strerror(err));
    }
    char *buf = malloc(NF_SYSFS_MAX + 1);
    if (!buf) {
        close(fd);
        return nf__error(-ENOMEM, "%s: out of memory", path);
    }
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, NF_SYSFS_MAX + 1 - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            free(buf);
            close(fd);
            /* EISDIR and friends: the tree does not have the shape we read */
            return nf__error(err == EISDIR ? NUMAFEED_ESYSFS : -err, "read(%s): %s", path,
                              strerror(err));
        }
        if (r == 0)
            break;
        got += (size_t)r;
        if (got > NF_SYSFS_MAX) {
            free(buf);
            close(fd);
            return nf__error(NUMAFEED_ESYSFS, "%s: larger than %d bytes, not a sysfs attribute",
                              path, NF_SYSFS_MAX);
        }
    }
    close(fd);
    if (memchr(buf, '\0', got)) {
        free(buf);
        return nf__error(NUMAFEED_ESYSFS, "%s: contains a NUL byte", path);
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

int nf__sysfs_cpulist(const char *root, const char *rel, struct nf_cpuset *s)
{
    char *buf;
    size_t len;
    int rc = nf__sysfs_read(root, rel, &buf, &len);
    if (rc)
        return rc;
    char what[4096];
    snprintf(what, sizeof(what), "%s/%s", root, rel);
    rc = nf__cpuset_parse(s, buf, len, what);
    free(buf);
    return rc == -EINVAL ? NUMAFEED_ESYSFS : rc;
}

/* Trimmed view of buf, or NULL if it is empty after trimming. */
static char *trim(char *buf)
{
    while (isspace((unsigned char)*buf))
        buf++;
    size_t n = strlen(buf);
    while (n && isspace((unsigned char)buf[n - 1]))
        buf[--n] = '\0';
    return n ? buf : NULL;
}

static int read_number(const char *root, const char *rel, int base, long *sval,
                       unsigned long *uval)
{
    char *buf;
    size_t len;
    int rc = nf__sysfs_read(root, rel, &buf, &len);
    if (rc)
        return rc;
    char *t = trim(buf);
    char *end = NULL;
    errno = 0;
    bool ok = t != NULL;
    if (ok && base == 10) {
        *sval = strtol(t, &end, 10);
    } else if (ok) {
        /* hex: strtoul would accept a sign; sysfs never writes one */
        ok = isxdigit((unsigned char)t[0]) != 0;
        if (ok)
            *uval = strtoul(t, &end, 16);
    }
    ok = ok && errno == 0 && end && *end == '\0' && end != t;
    if (!ok) {
        rc = nf__error(NUMAFEED_ESYSFS, "%s/%s: expected a %s number, read \"%.40s\"", root, rel,
                        base == 10 ? "decimal" : "hexadecimal", t ? t : "");
    }
    free(buf);
    return rc;
}

int nf__sysfs_long(const char *root, const char *rel, long *out)
{
    return read_number(root, rel, 10, out, NULL);
}

int nf__sysfs_hex(const char *root, const char *rel, unsigned long *out)
{
    return read_number(root, rel, 16, NULL, out);
}

int nf__busid_normalize(const char *in, char out[NF_BUSID_LEN], uint64_t *key)
{
    unsigned long v[4];
    const char *p = in;
    /* domain:bus:device.function, separators fixed, each field hex */
    static const char seps[4] = {':', ':', '.', '\0'};
    static const unsigned long max[4] = {0xffffffffUL, 0xff, 0x1f, 0x7};
    static const int maxdigits[4] = {8, 2, 2, 1};
    for (int i = 0; i < 4; i++) {
        int nd = 0;
        v[i] = 0;
        while (isxdigit((unsigned char)*p)) {
            if (++nd > maxdigits[i])
                return -EINVAL;
            char c = (char)tolower((unsigned char)*p);
            v[i] = v[i] * 16 + (unsigned long)(c <= '9' ? c - '0' : c - 'a' + 10);
            p++;
        }
        if (nd == 0 || v[i] > max[i] || *p != seps[i])
            return -EINVAL;
        if (seps[i])
            p++;
    }
    snprintf(out, NF_BUSID_LEN, "%04lx:%02lx:%02lx.%lx", v[0], v[1], v[2], v[3]);
    if (key)
        *key = ((uint64_t)v[0] << 16) | (v[1] << 8) | (v[2] << 3) | v[3];
    return 0;
}
