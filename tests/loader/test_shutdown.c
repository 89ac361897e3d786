// SPDX-License-Identifier: Apache-2.0
/*
 * The shutdown matrix: loader_destroy while the workers are
 * reading, while they are decoding, while they are blocked on a full ring,
 * and while a consumer waits inside loader_next. Each state is reached
 * deterministically and confirmed before destroy is called:
 *
 *   reading   --wrap=nf__reader_wait holds every worker inside the wait;
 *   decoding  --wrap=nf__reader_decode holds every worker inside decode;
 *   full ring nobody consumes; --wrap=pthread_cond_wait counts the workers
 *             that have read and now sleep on a condition, which in a
 *             worker is only wait_slot (the startup handshake comes before
 *             any read);
 *   consumer  workers held in reads, a thread inside loader_next(-1): the
 *             same wrap sees it go to sleep on the pool's condition.
 *
 * loader.c says a worker in I/O finishes its reads before it is joined. A
 * held read or decode models that I/O: it finishes IO_MS after destroy
 * begins. The bound: destroy returns within IO_MS + BOUND_MS (BOUND_MS =
 * 2 s, generous for sanitizers on a loaded 2-core VM; unloaded it takes a
 * few ms past IO_MS), and no sooner than IO_MS (it did wait for the I/O).
 *
 * The consumer case. loader_next sees stop and returns -ECANCELED ("loader
 * is being destroyed"). The woken consumer still touches the pool and the
 * loader on its way out (loader_set_error, the consumer mutex), so
 * loader_destroy waits for every caller to leave loader_next before it
 * frees anything. test_destroy_races_waking_consumer delays the woken
 * consumer inside loader_next and checks that destroy waited for it (it was
 * a use-after-free under ASan before destroy counted its callers).
 */
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "io/io.h"

enum { IO_MS = 100, BOUND_MS = 2000, THREADS = 3 };

/* ---- hold points ---- */
static atomic_int hold_read, hold_decode;  /* 1: hold workers there */
static atomic_int in_read, in_decode;      /* workers held there now */
static _Atomic uint64_t io_done_at;        /* held I/O finishes at this time; 0: never */
static _Thread_local bool has_read;        /* this thread is a worker that has read */
static _Thread_local bool is_consumer;     /* this thread is the test's consumer */
static atomic_int workers_sleeping, consumers_sleeping; /* on a condition variable */

static void hold(atomic_int *flag, atomic_int *count)
{
    if (!atomic_load(flag))
        return;
    atomic_fetch_add(count, 1);
    for (;;) {
        uint64_t t = atomic_load(&io_done_at);
        if (!atomic_load(flag) || (t && nf_now_ns() >= t))
            break;
        usleep(1000);
    }
    atomic_fetch_sub(count, 1);
}

int __real_nf__reader_wait(struct nf_reader *r, unsigned min, struct nf_read_done *done,
                            unsigned max);
int __wrap_nf__reader_wait(struct nf_reader *r, unsigned min, struct nf_read_done *done,
                            unsigned max)
{
    has_read = true;
    hold(&hold_read, &in_read);
    return __real_nf__reader_wait(r, min, done, max);
}

int __real_nf__reader_decode(struct nf_reader *r, uint32_t shard, uint32_t block,
                              const void *stored, void *dst, size_t dst_len);
int __wrap_nf__reader_decode(struct nf_reader *r, uint32_t shard, uint32_t block,
                              const void *stored, void *dst, size_t dst_len)
{
    hold(&hold_decode, &in_decode);
    return __real_nf__reader_decode(r, shard, block, stored, dst, dst_len);
}

int __real_pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m);
int __wrap_pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    /* counted before the real wait: the caller holds the mutex until the
     * wait releases it, so a destroy that sets stop and then takes the
     * mutex to broadcast cannot slip in between and be missed */
    atomic_int *n = is_consumer ? &consumers_sleeping : has_read ? &workers_sleeping : NULL;
    if (n)
        atomic_fetch_add(n, 1);
    int rc = __real_pthread_cond_wait(c, m);
    if (n)
        atomic_fetch_sub(n, 1);
    return rc;
}

/* The reproducer's delay: a consumer woken by destroy lingers in loader_next
 * (loader_next calls numafeed_last_error after dropping the pool mutex). */
static atomic_int linger_ms, lingering;
const char *__real_numafeed_last_error(void);
const char *__wrap_numafeed_last_error(void)
{
    int ms = atomic_load(&linger_ms);
    if (is_consumer && ms) {
        atomic_store(&lingering, 1);
        usleep((useconds_t)ms * 1000);
    }
    return __real_numafeed_last_error();
}

/* Poll until *v >= want or ms pass. */
static bool wait_for(atomic_int *v, int want, int ms)
{
    for (int i = 0; i < ms && atomic_load(v) < want; i++)
        usleep(1000);
    return atomic_load(v) >= want;
}

/* ---- a dataset ---- */
enum { N = 2000, REC = 256 };
static char *base, *dir;

static int setup(void **state)
{
    (void)state;
    if (nf_scratch(&base, &dir))
        return -1;
    uint8_t *src = malloc((size_t)N * REC);
    if (!src)
        return -1;
    for (size_t i = 0; i < (size_t)N * REC; i++)
        src[i] = (uint8_t)((i * 7 + i / REC) & 0xff);
    struct numafeed_field f = {.name = "x", .dtype = "uint8", .ndim = 1, .shape = {REC}};
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.block_bytes = 16 * REC;
    o.shard_bytes = 64 * 1024;
    int rc = nf_pack(dir, &f, 1, &o, src, N);
    free(src);
    return rc ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    nf_scratch_free(base, dir);
    return 0;
}

static loader_t *make(uint32_t depth)
{
    struct loader_config c;
    loader_config_init(&c);
    c.path = dir;
    c.threads = THREADS;
    c.prefetch = depth;
    c.batch_size = 16;
    c.world_size = 1;
    c.device = LOADER_DEVICE_CPU;
    /* the hold points are in the buffered path; mmap reads no blocks */
    c.io = nf_test_io_reads();
    loader_t *L = NULL;
    int rc = loader_create(&c, &L);
    if (rc)
        fail_msg("loader_create: %s: %s", numafeed_strerror(rc), numafeed_last_error());
    return L;
}

/* Destroy, timed. With held_io, held reads and decodes finish IO_MS after
 * destroy begins. */
static double destroy_ms(loader_t *L, bool held_io)
{
    uint64_t t0 = nf_now_ns();
    if (held_io)
        atomic_store(&io_done_at, t0 + (uint64_t)IO_MS * 1000000u);
    loader_destroy(L);
    double ms = (double)(nf_now_ns() - t0) / 1e6;
    atomic_store(&io_done_at, 0);
    atomic_store(&hold_read, 0);
    atomic_store(&hold_decode, 0);
    return ms;
}

static void test_destroy_while_reading(void **state)
{
    (void)state;
    atomic_store(&hold_read, 1);
    loader_t *L = make(0);
    /* every worker is inside a read of its first window */
    assert_true(wait_for(&in_read, THREADS, 10000));
    double ms = destroy_ms(L, true);
    printf("# reading: destroy %.1f ms (I/O finishes %d ms after it begins)\n", ms, IO_MS);
    assert_true(ms >= IO_MS); /* it waited for the reads */
    assert_true(ms < IO_MS + BOUND_MS);
    assert_int_equal(atomic_load(&in_read), 0);
}

static void test_destroy_while_decoding(void **state)
{
    (void)state;
    atomic_store(&hold_decode, 1);
    loader_t *L = make(0);
    assert_true(wait_for(&in_decode, THREADS, 10000));
    double ms = destroy_ms(L, true);
    printf("# decoding: destroy %.1f ms (decode finishes %d ms after it begins)\n", ms, IO_MS);
    assert_true(ms >= IO_MS);
    assert_true(ms < IO_MS + BOUND_MS);
    assert_int_equal(atomic_load(&in_decode), 0);
}

static void test_destroy_on_full_ring(void **state)
{
    (void)state;
    loader_t *L = make(4);
    /* one batch taken and never released: destroy must not wait for it */
    struct loader_batch b = LOADER_BATCH_INIT;
    assert_int_equal(loader_next(L, 0, &b, 10000), 0);
    /* every worker has built what fits and sleeps waiting for a slot */
    assert_true(wait_for(&workers_sleeping, THREADS, 10000));
    double ms = destroy_ms(L, false);
    printf("# full ring: destroy %.1f ms\n", ms);
    assert_true(ms < BOUND_MS);
    assert_int_equal(atomic_load(&workers_sleeping), 0);
}

struct consumer {
    loader_t *L;
    int rc;
    uint64_t returned_at;
    char msg[256];
    atomic_int done;
};

static void *consume(void *arg)
{
    struct consumer *c = arg;
    struct loader_batch b = LOADER_BATCH_INIT;
    is_consumer = true;
    c->rc = loader_next(c->L, 0, &b, -1);
    c->returned_at = nf_now_ns();
    is_consumer = false;
    snprintf(c->msg, sizeof(c->msg), "%s", numafeed_last_error());
    atomic_store(&c->done, 1);
    return NULL;
}

/* Release the held reads once the consumer is out of loader_next. */
static void *release_after_consumer(void *arg)
{
    struct consumer *c = arg;
    while (!atomic_load(&c->done))
        usleep(1000);
    atomic_store(&hold_read, 0);
    return NULL;
}

static void test_destroy_while_consumer_waits(void **state)
{
    (void)state;
    atomic_store(&hold_read, 1);
    struct consumer c = {.L = make(0)};
    assert_true(wait_for(&in_read, THREADS, 10000)); /* nothing can be published */
    pthread_t tc, tr;
    assert_int_equal(pthread_create(&tc, NULL, consume, &c), 0);
    assert_true(wait_for(&consumers_sleeping, 1, 10000));
    assert_int_equal(pthread_create(&tr, NULL, release_after_consumer, &c), 0);
    uint64_t t0 = nf_now_ns();
    double ms = destroy_ms(c.L, false);
    pthread_join(tr, NULL);
    pthread_join(tc, NULL);
    double woke = (double)(c.returned_at - t0) / 1e6;
    printf("# consumer waiting: loader_next returned %s after %.1f ms, destroy %.1f ms\n",
           numafeed_err_name(c.rc), woke, ms);
    assert_int_equal(c.rc, -ECANCELED);
    assert_non_null(strstr(c.msg, "being destroyed"));
    assert_true(woke < BOUND_MS);
    assert_true(ms < BOUND_MS);
}

/* The woken consumer lingers 300 ms inside loader_next; the reads finish
 * at once; destroy must wait for the consumer to leave before freeing (under
 * ASan, a use-after-free in loader_set_error otherwise). */
static void test_destroy_races_waking_consumer(void **state)
{
    (void)state;
    atomic_store(&hold_read, 1);
    struct consumer c = {.L = make(0)};
    assert_true(wait_for(&in_read, THREADS, 10000));
    pthread_t tc;
    assert_int_equal(pthread_create(&tc, NULL, consume, &c), 0);
    assert_true(wait_for(&consumers_sleeping, 1, 10000));
    atomic_store(&linger_ms, 300);
    double ms = destroy_ms(c.L, true);
    printf("# destroy %.1f ms, waiting for a consumer that lingered 300 ms\n", ms);
    pthread_join(tc, NULL);
    atomic_store(&linger_ms, 0);
    assert_int_equal(c.rc, -ECANCELED);
    assert_true(atomic_load(&lingering));
    assert_true(ms >= 300); /* it waited for the consumer to leave */
    assert_true(ms < 300 + BOUND_MS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_destroy_while_reading),
        cmocka_unit_test(test_destroy_while_decoding),
        cmocka_unit_test(test_destroy_on_full_ring),
        cmocka_unit_test(test_destroy_while_consumer_waits),
        cmocka_unit_test(test_destroy_races_waking_consumer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
