// SPDX-License-Identifier: Apache-2.0
/*
 * The pread backend: the same slot interface as io_uring, done with one
 * synchronous pread per queued read when the reader waits. It exists for
 * machines that refuse io_uring (seccomp, kernel.io_uring_disabled, old
 * kernels) and for tests (NUMAFEED_IO=pread); it never fails to start.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"
#include "io/private.h"

static int pread_init(struct nf_reader *r, unsigned depth, char *why, size_t why_len)
{
    (void)why;
    (void)why_len;
    /* Each slot is pending at most once, so depth entries always suffice. */
    r->pending = calloc(depth, sizeof(*r->pending));
    r->npending = 0;
    return r->pending ? 0 : nf__error(-ENOMEM, "out of memory");
}

static void pread_fini(struct nf_reader *r)
{
    free(r->pending);
    r->pending = NULL;
}

static int pread_queue(struct nf_reader *r, unsigned slot)
{
    r->pending[r->npending++] = slot;
    return 0;
}

static int pread_flush(struct nf_reader *r)
{
    (void)r;
    return 0; /* reads happen in reap: there is no kernel queue to feed */
}

static int pread_reap(struct nf_reader *r, unsigned min)
{
    (void)min; /* everything queued is done synchronously, more than min */
    /* Slots queued again by nf__io_progress (short reads) land at the end
     * and are picked up by the same loop. */
    while (r->npending) {
        unsigned i = r->pending[0];
        r->npending--;
        for (unsigned k = 0; k < r->npending; k++)
            r->pending[k] = r->pending[k + 1];
        struct nf_slot *s = &r->slots[i];
        ssize_t n = pread(s->fd, s->buf + s->done, nf__io_op_len(r, s), (off_t)(s->base + s->done));
        nf__io_progress(r, i, n < 0 ? -(long)errno : (long)n);
    }
    return 0;
}

const struct nf_io_ops nf__io_pread_ops = {
    .name = "pread",
    .init = pread_init,
    .fini = pread_fini,
    .queue = pread_queue,
    .flush = pread_flush,
    .reap = pread_reap,
};
