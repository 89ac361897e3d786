// SPDX-License-Identifier: Apache-2.0
/* numafeed pack --from raw: a flat file (or stdin) of fixed-size records,
 * appended in large pieces. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pack.h"

/* Fill buf from fd up to cap bytes or EOF; *fill is how much. Returns
 * CLI_EXIT_OK, or a failing status (read error or signal) after a message. */
static int fill_buffer(struct pack_job *j, int fd, const char *name, uint8_t *buf, size_t cap,
                       size_t *fill)
{
    *fill = 0;
    while (*fill < cap) {
        int st = pack_tick(j);
        if (st)
            return st;
        ssize_t n = read(fd, buf + *fill, cap - *fill);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return pack_error("reading %s at offset %llu: %s", name,
                              (unsigned long long)(j->in_bytes + *fill), strerror(errno));
        if (n == 0)
            break;
        *fill += (size_t)n;
    }
    return CLI_EXIT_OK;
}

/* Read whole records from fd into the writer until EOF. */
static int pump(struct pack_job *j, int fd, const char *name)
{
    size_t rb = numafeed_writer_record_bytes(j->w);
    /* About 4 MiB per append: large enough that the syscalls vanish next to
     * compression, small enough to keep progress smooth. */
    size_t chunk = (4u << 20) / rb ? ((4u << 20) / rb) * rb : rb;
    uint8_t *buf = malloc(chunk);
    if (!buf)
        return cli_fail("pack", "allocating the input buffer", -ENOMEM);
    int status;
    for (;;) {
        size_t fill;
        if ((status = fill_buffer(j, fd, name, buf, chunk, &fill)))
            break;
        if (fill % rb) {
            status = pack_error("%s ends with a partial record: %llu bytes is not a multiple of "
                                "the record size %zu", name,
                                (unsigned long long)(j->in_bytes + fill), rb);
            break;
        }
        if (fill && (status = pack_append(j, buf, fill / rb)))
            break;
        j->in_bytes += fill;
        if (fill < chunk)
            break;
    }
    free(buf);
    return status;
}

int pack_raw(struct pack_job *j)
{
    const char *name = j->a->inputs[0];
    int fd = STDIN_FILENO;
    if (strcmp(name, "-")) {
        fd = open(name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return pack_error("%s: %s", pack_esc(name, 0), strerror(errno));
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
            j->in_total = (uint64_t)st.st_size;
    }
    snprintf(j->source, sizeof(j->source), "from %.200s",
             fd == STDIN_FILENO ? "standard input" : pack_esc(name, 0));
    int status = pack_open(j, j->a->fields, j->a->nfields);
    if (status == CLI_EXIT_OK)
        status = pump(j, fd, name);
    if (fd != STDIN_FILENO)
        close(fd);
    return status;
}
