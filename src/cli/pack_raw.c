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
        if ((status = pack_read(j, fd, name, j->in_bytes, buf, chunk, &fill)))
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
    const char *in = j->a->inputs[0];
    char name[4096]; /* escaped, for messages */
    snprintf(name, sizeof(name), "%s", strcmp(in, "-") ? pack_esc(in, 0) : "standard input");
    int fd = STDIN_FILENO;
    if (strcmp(in, "-")) {
        fd = open(in, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return pack_error("%s: %s", name, strerror(errno));
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
            j->in_total = (uint64_t)st.st_size;
    }
    snprintf(j->source, sizeof(j->source), "from %.200s", name);
    int status = pack_open(j, j->a->fields, j->a->nfields);
    if (status == CLI_EXIT_OK)
        status = pump(j, fd, name);
    if (fd != STDIN_FILENO)
        close(fd);
    return status;
}
