// SPDX-License-Identifier: Apache-2.0
/*
 * The io_uring backend: one ring per reader (so per worker thread), no
 * locks, no SQPOLL. The ring is created with IORING_SETUP_SINGLE_ISSUER |
 * IORING_SETUP_DEFER_TASKRUN: one thread submits and reaps, and completion
 * work runs when that thread waits instead of interrupting it; kernels
 * before 6.1 reject these flags with EINVAL and get a plain ring.
 *
 * SINGLE_ISSUER ties the ring to the thread that created it: a reader must
 * be created by the thread that uses it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "io/private.h"

static int uring_init(struct nf_reader *r, unsigned depth, char *why, size_t why_len)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int rc = io_uring_queue_init_params(depth, &r->ring, &p);
    if (rc == -EINVAL) {
        memset(&p, 0, sizeof(p));
        rc = io_uring_queue_init_params(depth, &r->ring, &p);
    }
    if (rc < 0) {
        if (why)
            snprintf(why, why_len, "io_uring_queue_init: %s (%s)", strerror(-rc),
                     numafeed_err_name(rc));
        return rc;
    }
    r->ring_ok = 1;
    return 0;
}

int nf__io_uring_probe(char *why, size_t why_len)
{
    /* the same setup a reader does, on a throwaway ring of 2 entries */
    struct io_uring ring;
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    int rc = io_uring_queue_init_params(2, &ring, &p);
    if (rc < 0) {
        snprintf(why, why_len, "io_uring_queue_init: %s (%s)", strerror(-rc),
                 numafeed_err_name(rc));
        return rc;
    }
    io_uring_queue_exit(&ring);
    snprintf(why, why_len, "io_uring_queue_init succeeded");
    return 0;
}

static void uring_fini(struct nf_reader *r)
{
    if (r->ring_ok)
        io_uring_queue_exit(&r->ring);
    r->ring_ok = 0;
}

static int uring_queue(struct nf_reader *r, unsigned slot)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe) {
        /* The SQ has depth entries and a slot has one read at most: only
         * possible if unsubmitted entries pile up, so push them and retry. */
        io_uring_submit(&r->ring);
        sqe = io_uring_get_sqe(&r->ring);
        if (!sqe)
            return nf__error(-EBUSY, "io_uring submission queue full");
    }
    struct nf_slot *s = &r->slots[slot];
    io_uring_prep_read(sqe, s->fd, s->buf + s->done, (unsigned)nf__io_op_len(r, s),
                       s->base + s->done);
    io_uring_sqe_set_data64(sqe, slot);
    return 0;
}

static int uring_flush(struct nf_reader *r)
{
    if (!io_uring_sq_ready(&r->ring))
        return 0;
    int rc = io_uring_submit(&r->ring);
    return rc < 0 ? nf__error(rc, "io_uring_submit: %s", strerror(-rc)) : 0;
}

/* Hand every available completion to the reader; returns how many. */
static unsigned drain(struct nf_reader *r)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&r->ring, head, cqe) {
        nf__io_progress(r, (unsigned)io_uring_cqe_get_data64(cqe), cqe->res);
        n++;
    }
    io_uring_cq_advance(&r->ring, n);
    return n;
}

static int uring_reap(struct nf_reader *r, unsigned min)
{
    unsigned target = r->nready + min;
    int rc;
    if (min == 0) {
        /* Poll: submit and run deferred completion work without sleeping. */
        if ((rc = uring_flush(r)))
            return rc;
        io_uring_get_events(&r->ring);
        drain(r);
        return uring_flush(r);
    }
    while (r->nready < target && r->inflight > 0) {
        rc = io_uring_submit_and_wait(&r->ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
            return nf__error(rc, "io_uring_submit_and_wait: %s", strerror(-rc));
        drain(r);
    }
    /* Short reads may have queued follow-ups: start them now. */
    return uring_flush(r);
}

const struct nf_io_ops nf__io_uring_ops = {
    .name = "io_uring",
    .init = uring_init,
    .fini = uring_fini,
    .queue = uring_queue,
    .flush = uring_flush,
    .reap = uring_reap,
};
