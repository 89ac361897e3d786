// SPDX-License-Identifier: Apache-2.0
/* numafeed pack --from tokens: a flat little-endian token file cut into
 * windows of seq_len + 1 tokens every stride tokens. The file is read in
 * large pieces into a buffer that always holds the next whole window, so
 * a window costs one copy into the writer and nothing per token; the same
 * loop serves a pipe. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pack.h"

struct tokens {
    struct pack_job *j;
    const char *name; /* escaped */
    int fd, eof;
    size_t dsize;
    uint64_t window, stride; /* in bytes */
    uint8_t *buf;
    size_t cap, fill;
    const uint8_t *window_at; /* the current window, inside buf */
    uint64_t buf_at; /* the input offset of buf[0] */
};

/* Read until buf holds cap bytes or the input ends. */
static int refill(struct tokens *t)
{
    if (t->eof)
        return CLI_EXIT_OK;
    size_t want = t->cap - t->fill, n;
    int st = pack_read(t->j, t->fd, t->name, t->buf_at + t->fill, t->buf + t->fill, want, &n);
    t->fill += n;
    t->j->in_bytes += (uint64_t)n;
    t->eof = n < want;
    return st;
}

/* Point t->window_at at the window starting at input offset `at`, reading
 * more of the input when the buffer does not hold all of it; *have is 0
 * once the input has no whole window there. The buffer is compacted only
 * then, so a window costs no more than its copy into the writer. */
static int seek_window(struct tokens *t, uint64_t at, int *have)
{
    int st = CLI_EXIT_OK;
    while (at >= t->buf_at + t->fill && !t->eof && !st) { /* a stride past the buffer */
        t->buf_at += t->fill;
        t->fill = 0;
        st = refill(t);
    }
    if (!st && at + t->window > t->buf_at + t->fill && !t->eof) {
        size_t off = (size_t)(at - t->buf_at), keep = t->fill - off;
        memmove(t->buf, t->buf + off, keep);
        t->buf_at = at;
        t->fill = keep;
        st = refill(t);
    }
    *have = at >= t->buf_at && at + t->window <= t->buf_at + t->fill;
    t->window_at = *have ? t->buf + (at - t->buf_at) : NULL;
    return st;
}

/* Every whole window, in order. */
static int cut(struct tokens *t)
{
    uint64_t at = 0;
    for (;;) {
        int have, st = seek_window(t, at, &have);
        if (st)
            return st;
        if (!have)
            break;
        if ((st = pack_append(t->j, t->window_at, 1)))
            return st;
        if (__builtin_add_overflow(at, t->stride, &at))
            break;
    }
    while (!t->eof) { /* the rest: only its length matters */
        t->buf_at += t->fill;
        t->fill = 0;
        int st = refill(t);
        if (st)
            return st;
    }
    uint64_t total = t->buf_at + t->fill;
    if (total % t->dsize)
        return pack_error("%s: %llu bytes is not a multiple of the %s size (%zu bytes)", t->name,
                          (unsigned long long)total, t->j->a->dtype, t->dsize);
    if (!numafeed_writer_records(t->j->w))
        return pack_error("%s: %llu tokens, fewer than one window of %llu (--seq-len + 1)",
                          t->name, (unsigned long long)(total / t->dsize),
                          (unsigned long long)(t->j->a->seq_len + 1));
    return CLI_EXIT_OK;
}

/* The layout, checked; the input opened and its size checked when known. */
static int prepare(struct tokens *t, struct numafeed_field *f)
{
    const struct pack_args *a = t->j->a;
    *f = (struct numafeed_field){"tokens", a->dtype, 1, {a->seq_len + 1}};
    uint64_t bytes;
    if (a->seq_len == UINT64_MAX || numafeed_layout_check(f, 1, &bytes))
        return pack_error("--seq-len %llu: %s", (unsigned long long)a->seq_len,
                          numafeed_last_error());
    t->window = bytes;
    if (__builtin_mul_overflow(a->stride, t->dsize, &t->stride))
        t->stride = UINT64_MAX;
    t->fd = STDIN_FILENO;
    if (!strcmp(a->inputs[0], "-"))
        return CLI_EXIT_OK;
    if ((t->fd = open(a->inputs[0], O_RDONLY | O_CLOEXEC)) < 0)
        return pack_error("%s: %s", t->name, strerror(errno));
    struct stat st;
    if (fstat(t->fd, &st) == 0 && S_ISREG(st.st_mode)) {
        t->j->in_total = (uint64_t)st.st_size;
        if (t->j->in_total % t->dsize)
            return pack_error("%s: %llu bytes is not a multiple of the %s size (%zu bytes)",
                              t->name, (unsigned long long)t->j->in_total, a->dtype, t->dsize);
    }
    return CLI_EXIT_OK;
}

int pack_tokens(struct pack_job *j)
{
    const char *in = j->a->inputs[0];
    struct tokens t = {.j = j, .fd = -1, .dsize = numafeed_dtype_size(j->a->dtype)};
    char name[4096];
    snprintf(name, sizeof(name), "%s", strcmp(in, "-") ? pack_esc(in, 0) : "standard input");
    t.name = name;
    struct numafeed_field f;
    int st = prepare(&t, &f);
    if (!st) {
        /* 16 MiB pieces, and room for two windows of any size */
        t.cap = t.window > (8u << 20) ? 2 * (size_t)t.window : (16u << 20);
        if (!(t.buf = malloc(t.cap)))
            st = pack_error("no memory for a %zu-byte buffer", t.cap);
    }
    if (!st && !(st = pack_open(j, &f, 1)))
        st = cut(&t);
    snprintf(j->source, sizeof(j->source), "from %.200s", name);
    free(t.buf);
    if (t.fd > STDIN_FILENO)
        close(t.fd);
    return st;
}
