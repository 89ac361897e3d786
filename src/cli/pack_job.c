// SPDX-License-Identifier: Apache-2.0
/* What every numafeed pack source shares: the writer, the progress line,
 * the count of what was skipped and why, the stop signal, and the
 * summary. A source only reads its input and calls pack_add. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pack.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

/* Without SA_RESTART, so a blocking read of stdin returns EINTR. */
static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int pack_error(const char *fmt, ...)
{
    /* formatted first, written once: packs run side by side share stderr */
    char msg[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "numafeed pack: %s\n", msg);
    return CLI_EXIT_FAIL;
}

const char *pack_esc(const char *s, int high)
{
    /* four buffers, so that one message can name a few things */
    static char *ring[4];
    static size_t cap[4];
    static unsigned next;
    unsigned k = next++ % 4;
    size_t need = 4 * strlen(s) + 1;
    if (need > cap[k]) {
        char *p = realloc(ring[k], need);
        if (!p)
            return "(out of memory)";
        ring[k] = p;
        cap[k] = need;
    }
    char *o = ring[k];
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || (high && *p >= 0x80))
            o += sprintf(o, "\\x%02x", *p);
        else
            *o++ = (char)*p;
    }
    *o = '\0';
    return ring[k];
}

/* ---- the progress line ---- */

static void progress(const struct pack_job *j, int last)
{
    char pct[16] = "";
    if (j->in_total)
        snprintf(pct, sizeof(pct), " (%3.0f%%)", 100.0 * (double)j->in_bytes / (double)j->in_total);
    double secs = now() - j->started;
    uint64_t recs = j->w ? numafeed_writer_records(j->w) : 0;
    fprintf(stderr, "%snumafeed pack: %.1f MiB read%s, %llu records, %u shards, %.1f MiB "
            "written, %.1f MiB/s%s", j->tty ? "\r" : "", j->in_bytes / 1048576.0, pct,
            (unsigned long long)recs, j->w ? numafeed_writer_shards(j->w) : 0,
            (j->w ? numafeed_writer_bytes_written(j->w) : 0) / 1048576.0,
            secs > 0 ? j->in_bytes / 1048576.0 / secs : 0.0, j->tty && !last ? "" : "\n");
}

int pack_tick(struct pack_job *j)
{
    if (stop_signal) {
        if (j->show && j->tty)
            fputc('\n', stderr);
        fprintf(stderr, "numafeed pack: interrupted by signal %d; %s was not written\n",
                (int)stop_signal, j->a->out);
        return 128 + stop_signal;
    }
    if (j->show) {
        double t = now();
        if (t >= j->next) {
            progress(j, 0);
            j->next = t + (j->tty ? 0.5 : 2.0);
        }
    }
    return CLI_EXIT_OK;
}

int pack_read(struct pack_job *j, int fd, const char *name, uint64_t at, uint8_t *buf,
              size_t cap, size_t *got)
{
    *got = 0;
    while (*got < cap) {
        int st = pack_tick(j);
        if (st)
            return st;
        ssize_t n = read(fd, buf + *got, cap - *got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return pack_error("%s: reading at offset %llu: %s", name,
                              (unsigned long long)(at + *got), strerror(errno));
        if (n == 0)
            break;
        *got += (size_t)n;
    }
    return CLI_EXIT_OK;
}

/* ---- the writer ---- */

int pack_open(struct pack_job *j, const struct numafeed_field *fields, size_t nfields)
{
    int rc = numafeed_writer_create(j->a->out, fields, nfields, &j->a->o, &j->w);
    if (rc) {
        j->w = NULL;
        return cli_fail("pack", "creating the dataset", rc);
    }
    j->nfields = nfields;
    return CLI_EXIT_OK;
}

int pack_add(struct pack_job *j, const void *const *data, const size_t *sizes,
             pack_name_fn *name, const void *ctx)
{
    int rc = numafeed_writer_add(j->w, data, sizes);
    /* -EINVAL is often a str field that is not UTF-8: the name may be it */
    if (rc == -EINVAL || rc == -EFBIG)
        return pack_error("%s: refused: %s", pack_esc(name(ctx), rc == -EINVAL),
                          numafeed_last_error());
    if (rc)
        return cli_fail("pack", "writing", rc);
    for (size_t f = 0; f < j->nfields; f++) /* fixed fields were checked at their size */
        j->record_bytes += sizes[f];
    return CLI_EXIT_OK;
}

int pack_append(struct pack_job *j, const void *records, size_t count)
{
    int rc = numafeed_writer_append(j->w, records, count);
    if (rc)
        return cli_fail("pack", "writing", rc);
    j->record_bytes += (uint64_t)count * numafeed_writer_record_bytes(j->w);
    return CLI_EXIT_OK;
}

/* ---- what was left out ---- */

static const struct {
    const char *one, *many, *why;
    int warn; /* say so at the end; hidden names are left out by design */
} skips[PACK_SKIP_KINDS] = {
    [PACK_SKIP_LINK] = {"link", "links", "a symbolic or hard link, not followed", 1},
    [PACK_SKIP_SPECIAL] = {"special file", "special files", "not a regular file (a FIFO, "
                           "socket or device)", 1},
    [PACK_SKIP_HIDDEN] = {"hidden name", "hidden names", "a name starting with '.'", 0},
    [PACK_SKIP_NOT_SAMPLE] = {"member not named KEY.EXT", "members not named KEY.EXT",
                              "no extension after the base name", 1},
    [PACK_SKIP_TOO_LARGE] = {"record over --max-record-bytes",
                             "records over --max-record-bytes",
                             "its record would be over --max-record-bytes", 1},
    [PACK_SKIP_INCOMPLETE] = {"incomplete sample", "incomplete samples",
                              "its fields are not the first sample's", 1},
};

void pack_skip(struct pack_job *j, enum pack_skip why, const char *name)
{
    uint64_t n = j->skipped[why]++;
    if (j->a->verbose)
        fprintf(stderr, "numafeed pack: skipping %s: %s\n", name, skips[why].why);
    else if (n < PACK_SKIP_LISTED)
        j->listed[why][n] = strdup(name); /* NULL is only a shorter warning */
}

/* One line per kind of input left out, naming the first few. */
static void warn_skipped(const struct pack_job *j)
{
    for (int k = 0; k < PACK_SKIP_KINDS; k++) {
        uint64_t n = j->skipped[k];
        if (!n || !skips[k].warn)
            continue;
        char names[4096] = "";
        size_t len = 0;
        for (uint64_t i = 0; i < n && i < PACK_SKIP_LISTED && j->listed[k][i]; i++)
            len += (size_t)snprintf(names + len, len < sizeof(names) ? sizeof(names) - len : 0,
                                    "%s%s", i ? ", " : ": ", j->listed[k][i]);
        char more[64] = "";
        if (j->a->verbose)
            snprintf(more, sizeof(more), " (named above)");
        else if (n > PACK_SKIP_LISTED)
            snprintf(more, sizeof(more), " and %llu more (--verbose names them)",
                     (unsigned long long)(n - PACK_SKIP_LISTED));
        fprintf(stderr, "numafeed pack: warning: skipped %llu %s%s%s\n", (unsigned long long)n,
                n == 1 ? skips[k].one : skips[k].many, j->a->verbose ? "" : names, more);
    }
}

/* "; skipped 2 links, 1 hidden name", or "". */
static void skipped_text(const struct pack_job *j, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int k = 0; k < PACK_SKIP_KINDS && len < cap; k++)
        if (j->skipped[k])
            len += (size_t)snprintf(buf + len, cap - len, "%s %llu %s", len ? "," : "; skipped",
                                    (unsigned long long)j->skipped[k],
                                    j->skipped[k] == 1 ? skips[k].one : skips[k].many);
}

/* One line on stdout: records, shards, bytes in and out, what was skipped. */
static void summary(const struct pack_job *j)
{
    uint64_t recs = numafeed_writer_records(j->w), out = numafeed_writer_bytes_written(j->w);
    unsigned shards = numafeed_writer_shards(j->w);
    char size[48], skipped[512];
    if (j->a->from == PACK_FROM_RAW || j->a->from == PACK_FROM_TOKENS)
        snprintf(size, sizeof(size), " of %zu bytes", numafeed_writer_record_bytes(j->w));
    else
        snprintf(size, sizeof(size), " (%llu bytes)", (unsigned long long)j->record_bytes);
    skipped_text(j, skipped, sizeof(skipped));
    printf("%s: %llu records%s in %u shard%s, %llu bytes stored (ratio %.2f); read %llu bytes "
           "%s%s\n", j->a->out, (unsigned long long)recs, size, shards, shards == 1 ? "" : "s",
           (unsigned long long)out, out ? (double)j->record_bytes / (double)out : 0.0,
           (unsigned long long)j->in_bytes, j->source, skipped);
}

void pack_job_init(struct pack_job *j, const struct pack_args *a)
{
    memset(j, 0, sizeof(*j));
    j->a = a;
    j->tty = isatty(STDERR_FILENO);
    j->show = !a->quiet && (a->show_progress || j->tty);
    j->started = now();
    j->next = j->started + 0.5;
    catch_signals();
}

int pack_job_end(struct pack_job *j, int status)
{
    if (status == CLI_EXIT_OK && !j->w)
        status = pack_error("%s: no records to pack", j->a->out);
    int rc;
    if (status == CLI_EXIT_OK && (rc = numafeed_writer_finish(j->w)))
        status = cli_fail("pack", "finishing the dataset", rc);
    if (status == CLI_EXIT_OK) { /* after a failure only the failure matters */
        if (j->show)
            progress(j, 1);
        warn_skipped(j);
        if (!j->a->quiet)
            summary(j);
    }
    numafeed_writer_destroy(j->w); /* removes the temporary unless finished */
    for (int k = 0; k < PACK_SKIP_KINDS; k++)
        for (int i = 0; i < PACK_SKIP_LISTED; i++)
            free(j->listed[k][i]);
    memset(j, 0, sizeof(*j));
    return status;
}
