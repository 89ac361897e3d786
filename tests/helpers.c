// SPDX-License-Identifier: Apache-2.0
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loader/private.h"

const char *nf_fixture(const char *rel)
{
    static _Thread_local char buf[4][PATH_MAX];
    static _Thread_local int next;
    char *b = buf[next++ % 4];
    snprintf(b, PATH_MAX, "%s/%s", NF_FIXTURES, rel);
    return b;
}

int nf_scratch(char **base, char **dir)
{
    *base = nf_tmpdir();
    *dir = NULL;
    if (!*base || asprintf(dir, "%s/ds", *base) < 0)
        return -1;
    return 0;
}

void nf_scratch_free(char *base, char *dir)
{
    if (base)
        nf_rmtree(base);
    free(base);
    free(dir);
}

int nf_pack(const char *dir, const struct numafeed_field *fields, size_t nfields,
            const struct numafeed_writer_options *o, const void *records, size_t n)
{
    numafeed_writer *w;
    int rc = numafeed_writer_create(dir, fields, nfields, o, &w);
    if (rc)
        return rc;
    rc = numafeed_writer_append(w, records, n);
    if (!rc)
        rc = numafeed_writer_finish(w);
    numafeed_writer_destroy(w);
    return rc;
}

uint64_t nf_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

char *nf_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *p;
    if (asprintf(&p, "%s/numafeed-test-XXXXXX", base && *base ? base : "/tmp") < 0)
        return NULL;
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

void nf_rmtree(const char *path)
{
    char *cmd;
    if (asprintf(&cmd, "rm -rf '%s'", path) >= 0) {
        if (system(cmd) != 0)
            fprintf(stderr, "warning: could not remove %s\n", path);
        free(cmd);
    }
}

static int mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc && errno != EEXIST)
            return -1;
    }
    return 0;
}

int nf_write_file(const char *path, const void *data, size_t len)
{
    char *dup = strdup(path);
    if (!dup || mkdirs(dup)) {
        free(dup);
        return -1;
    }
    free(dup);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

int nf_run(char **out, const char *fmt, ...)
{
    char *cmd;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&cmd, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p)
        return -1;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += r;
        if (cap - len < 2) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int st = pclose(p);
    if (buf)
        buf[len] = '\0';
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

const char *nf_loader_error(const loader_t *L)
{
    static _Thread_local char buf[1024];
    loader_last_error(L, buf, sizeof(buf));
    return buf;
}

int nf_test_io(void)
{
    const char *v = getenv("NF_TEST_IO");
    if (!v || !*v || !strcmp(v, "auto"))
        return LOADER_IO_AUTO;
    if (!strcmp(v, "io_uring"))
        return LOADER_IO_URING;
    if (!strcmp(v, "pread"))
        return LOADER_IO_PREAD;
    if (!strcmp(v, "mmap"))
        return LOADER_IO_MMAP;
    fprintf(stderr, "NF_TEST_IO=%s: expected auto, io_uring, pread or mmap\n", v);
    exit(2);
}

int nf_test_io_reads(void)
{
    int io = nf_test_io();
    return io == LOADER_IO_URING ? io : LOADER_IO_PREAD;
}

void nf_evict(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    closedir(d);
}

int nf_flip_byte(const char *path, uint64_t at)
{
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return -1;
    uint8_t c;
    int rc = pread(fd, &c, 1, (off_t)at) == 1 ? 0 : -1;
    c ^= 0x5a;
    if (!rc && pwrite(fd, &c, 1, (off_t)at) != 1)
        rc = -1;
    close(fd);
    return rc;
}

static size_t nt_min_default;
static int nt_min_saved;

void nf_stream_small_copies(void)
{
    if (!nt_min_saved) {
        nt_min_default = nf__nt_min_bytes;
        nt_min_saved = 1;
    }
    nf__nt_min_bytes = 256;
}

int nf_restore_copies(void **state)
{
    (void)state;
    if (nt_min_saved)
        nf__nt_min_bytes = nt_min_default;
    return 0;
}
