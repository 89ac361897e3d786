// SPDX-License-Identifier: Apache-2.0
#include "bench_common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "numafeed.h"

enum { TOKEN_IDS = 50257 }; /* GPT-2's vocabulary */

static uint64_t next(uint64_t *s)
{
    /* splitmix64: fast, good enough for synthetic data */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void nfb_tokens(int32_t *out, size_t n, uint64_t seed)
{
    double *cdf = malloc(TOKEN_IDS * sizeof(*cdf));
    double sum = 0;
    for (int i = 0; i < TOKEN_IDS; i++)
        cdf[i] = (sum += 1.0 / pow(i + 1, 1.1));
    uint64_t s = seed;
    for (size_t i = 0; i < n;) {
        uint64_t r = next(&s);
        /* one time in eight, copy a 4-32 token span from up to 4096 back */
        if (i > 4096 && (r & 7) == 0) {
            size_t len = 4 + (size_t)((r >> 8) & 31), back = 1 + (size_t)((r >> 16) % 4096);
            for (size_t k = 0; k < len && i < n; k++, i++)
                out[i] = out[i - back];
            continue;
        }
        double u = (double)(next(&s) >> 11) / 9007199254740992.0 * sum;
        size_t lo = 0, hi = TOKEN_IDS - 1;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        out[i++] = (int32_t)lo;
    }
    free(cdf);
}

/* Document lengths: 1024 + (0 .. 2048), an LCG, the last cut to what is left. */
static size_t next_len(uint64_t *x, size_t left)
{
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    size_t len = 1024 + (size_t)((*x >> 33) % 2049);
    return len < left ? len : left;
}

int nfb_pack_tokens(const char *dir, const int32_t *tok, size_t n, size_t record_tokens,
                    int codec, size_t block_bytes)
{
    struct numafeed_field f = {"tokens", "int32", 1,
                               {record_tokens ? record_tokens : NUMAFEED_VARIABLE}};
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.codec = codec;
    if (block_bytes)
        o.block_bytes = block_bytes;
    o.force = 1;
    numafeed_writer *w = NULL;
    int rc = numafeed_writer_create(dir, &f, 1, &o, &w);
    if (!rc && record_tokens)
        rc = numafeed_writer_append(w, tok, n / record_tokens);
    uint64_t x = 7;
    for (size_t at = 0; !rc && !record_tokens && at < n;) {
        size_t len = next_len(&x, n - at);
        const void *d[1] = {tok + at};
        size_t sz[1] = {len * sizeof(*tok)};
        rc = numafeed_writer_add(w, d, sz);
        at += len;
    }
    if (!rc)
        rc = numafeed_writer_finish(w);
    if (rc)
        fprintf(stderr, "writing %s: %s\n", dir, numafeed_last_error());
    numafeed_writer_destroy(w);
    return rc ? 1 : 0;
}

/* One file of nfb_reread's: 0, or 1 with the failing call on stderr. */
static int reread_file(const char *dir, int dfd, const char *name, char *buf, size_t len)
{
    const char *call = "open";
    int err = 0, fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        err = errno;
    } else if (S_ISREG(st.st_mode)) {
        /* the writer synced its files: nothing dirty for DONTNEED to skip */
        call = "posix_fadvise(DONTNEED)";
        err = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        ssize_t n = 0;
        while (!err && (n = read(fd, buf, len)) > 0)
            ;
        if (!err && n < 0) {
            call = "read";
            err = errno;
        }
    }
    if (fd >= 0)
        close(fd);
    if (err)
        fprintf(stderr, "%s/%s: %s: %s\n", dir, name, call, strerror(err));
    return err != 0;
}

int nfb_reread(const char *dir)
{
    enum { CHUNK = 1 << 20 };
    DIR *d = opendir(dir);
    char *buf = malloc(CHUNK);
    if (!d || !buf) {
        fprintf(stderr, "%s: %s\n", dir, d ? "out of memory" : strerror(errno));
        if (d)
            closedir(d);
        free(buf);
        return 1;
    }
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            rc = reread_file(dir, dirfd(d), e->d_name, buf, CHUNK);
    free(buf);
    closedir(d);
    return rc;
}

double nfb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void nfb_machine(char *buf, size_t len)
{
    char model[256] = "unknown CPU", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                snprintf(model, sizeof(model), "%s", c + 2);
                model[strcspn(model, "\n")] = '\0';
            }
            break;
        }
    }
    if (f)
        fclose(f);
    snprintf(buf, len, "%s, %ld CPUs", model, sysconf(_SC_NPROCESSORS_ONLN));
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double nfb_median(const double *v, size_t n)
{
    if (!n)
        return 0;
    double *s = malloc(n * sizeof(*s));
    if (!s) { /* a median that is not one would pass for a result */
        fprintf(stderr, "bench: out of memory for a median of %zu values\n", n);
        exit(1);
    }
    memcpy(s, v, n * sizeof(*s)); /* the caller's rounds stay in their order */
    qsort(s, n, sizeof(*s), cmp);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    free(s);
    return m;
}

int nfb_zstd_blocks(const char *dir, struct nfb_block **out, size_t *nout, size_t *max_decoded)
{
    numafeed_dataset *ds;
    *out = NULL;
    *nout = *max_decoded = 0;
    if (numafeed_dataset_open(dir, &ds)) {
        fprintf(stderr, "%s: %s\n", dir, numafeed_last_error());
        return 1;
    }
    uint32_t n = numafeed_dataset_blocks(ds);
    struct nfb_block *blocks = calloc(n ? n : 1, sizeof(*blocks));
    FILE *f = NULL;
    const char *open_shard = NULL;
    int rc = blocks ? 0 : 1;
    for (uint32_t g = 0; g < n && rc == 0; g++) {
        struct numafeed_block_info bi = {.size = sizeof(bi)};
        numafeed_dataset_block(ds, g, &bi);
        if (bi.codec != NUMAFEED_BLOCK_ZSTD)
            continue;
        if (!open_shard || strcmp(open_shard, bi.shard)) { /* blocks come shard by shard */
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", dir, bi.shard);
            if (f)
                fclose(f);
            open_shard = bi.shard;
            if (!(f = fopen(path, "rb"))) {
                perror(path);
                rc = 1;
                break;
            }
        }
        void *m = malloc(bi.stored_bytes);
        if (!m || fseek(f, (long)bi.offset, SEEK_SET) || fread(m, 1, bi.stored_bytes, f) !=
                                                                 bi.stored_bytes) {
            fprintf(stderr, "%s: reading block %u of %s failed\n", dir, g, bi.shard);
            free(m);
            rc = 1;
            break;
        }
        blocks[(*nout)++] = (struct nfb_block){m, bi.stored_bytes, bi.decoded_bytes};
        if (bi.decoded_bytes > *max_decoded)
            *max_decoded = bi.decoded_bytes;
    }
    if (f)
        fclose(f);
    numafeed_dataset_close(ds);
    *out = blocks;
    return rc;
}
