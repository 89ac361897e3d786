// SPDX-License-Identifier: Apache-2.0
/*
 * One shard made 100x slower than the others: every record still
 * arrives exactly once, the epoch still finishes at a stated floor of
 * throughput, and the loader's counters show where the time went.
 *
 * The slowness is injected at the reader (--wrap=nf__reader_wait): after
 * the real wait, the worker that collected a finished read of shard 0
 * sleeps SLOW_NS for it, inside the window the loader times as io_wait.
 * That is a device that serves shard 0 one block at a time per reader,
 * SLOW_NS a block. SLOW_NS is 100 times what a block of the other shards
 * costs a worker (read + decode, measured by an unslowed run just before),
 * but at least 5 ms, so that the sleeps dominate the CPU work (which a
 * loaded 2-core VM or a sanitizer can multiply), and at most 20 ms, so
 * that the test stays short under valgrind (where that cap makes it about
 * 25x).
 *
 * The floor. With T workers and shard 0 holding B0 blocks, the sleeps of
 * one epoch add up to B0 x SLOW_NS. Each sleep stalls only the worker that
 * took it, so spread over T workers the slow shard costs an epoch about
 * B0 x SLOW_NS / T (here T = 4: a quarter) on top of the unslowed epoch.
 * A loader in which one slow read held up the whole pool would pay the
 * full B0 x SLOW_NS. The test asserts
 *     t_slow <= t_base + 0.75 x B0 x SLOW_NS,
 * i.e. throughput >= records / (t_base + 0.75 x B0 x SLOW_NS): three times
 * the ideal extra time (room for a loaded machine and sanitizers), yet a
 * pool serialised behind shard 0 fails it (built with -DSLOW_THREADS=1,
 * the same assertion fails: the extra is the full B0 x SLOW_NS).
 */
#include "helpers.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "io/io.h"

#ifndef SLOW_THREADS
#define SLOW_THREADS 4
#endif

/* Sleep at least ns (absolute deadline: EINTR cannot shorten it). */
static void sleep_ns(uint64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t t = (uint64_t)ts.tv_nsec + ns;
    ts.tv_sec += (time_t)(t / 1000000000u);
    ts.tv_nsec = (long)(t % 1000000000u);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* ---- the slow shard, at the reader ---- */
static _Atomic uint64_t slow_ns;     /* 0: no slowdown */
static _Atomic uint64_t slow_blocks; /* shard-0 reads slowed so far */
int __real_nf__reader_wait(struct nf_reader *r, unsigned min, struct nf_read_done *done,
                            unsigned max);
int __wrap_nf__reader_wait(struct nf_reader *r, unsigned min, struct nf_read_done *done,
                            unsigned max)
{
    int n = __real_nf__reader_wait(r, min, done, max);
    uint64_t d = atomic_load(&slow_ns);
    for (int i = 0; d && i < n; i++)
        if (done[i].shard == 0 && done[i].result == 0) {
            sleep_ns(d);
            atomic_fetch_add(&slow_blocks, 1);
        }
    return n;
}

/* ---- a dataset of several shards; each record names itself ---- */
enum { N = 6400, TOK = 30, REC = TOK * 4 + 8, BLOCK_RECORDS = 16 };
static char *base, *dir;
static uint32_t nshards, b0; /* shards, and blocks of shard 0 */

static void record_bytes(uint64_t i, uint8_t *out)
{
    int32_t *t = (int32_t *)(void *)out;
    for (int k = 0; k < TOK; k++)
        t[k] = (int32_t)((i * 31 + (uint64_t)k * (i % 7)) % 3000);
    memcpy(out + TOK * 4, &i, 8);
}

static int setup(void **state)
{
    (void)state;
    if (nf_scratch(&base, &dir))
        return -1;
    uint8_t *src = malloc((size_t)N * REC);
    if (!src)
        return -1;
    for (uint64_t i = 0; i < N; i++)
        record_bytes(i, src + i * REC);
    struct numafeed_field f[2] = {
        {.name = "tokens", .dtype = "int32", .ndim = 1, .shape = {TOK}},
        {.name = "id", .dtype = "uint64", .ndim = 0},
    };
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.block_bytes = BLOCK_RECORDS * REC;
    o.shard_bytes = 96 * 1024; /* zstd: 4 shards of about 110 blocks */
    int rc = nf_pack(dir, f, 2, &o, src, N);
    free(src);
    if (rc) {
        fprintf(stderr, "pack: %s\n", numafeed_last_error());
        return -1;
    }
    struct nf_dataset *ds;
    if (nf__dataset_open(dir, NULL, &ds))
        return -1;
    nshards = nf__dataset_shard_count(ds);
    b0 = nf__dataset_shard_index(ds, 0)->nblocks;
    nf__dataset_close(ds);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nf_scratch_free(base, dir);
    return 0;
}

struct run {
    uint64_t ns;              /* wall time of the epoch, create to EPOCH_END */
    struct loader_stats st;   /* after the epoch */
};

/* Create a loader, take one epoch checking every record's bytes and that
 * each arrives exactly once, then destroy it. */
static void run_epoch(struct run *out)
{
    struct loader_config c;
    loader_config_init(&c);
    c.path = dir;
    c.threads = SLOW_THREADS;
    c.batch_size = 64;
    c.world_size = 1;
    c.device = LOADER_DEVICE_CPU;
    c.seed = 8;
    /* the slowdown lives in nf__reader_wait, which the mapped path skips */
    c.io = nf_test_io_reads();
    static unsigned char seen[N];
    memset(seen, 0, sizeof(seen));
    uint64_t t0 = nf_now_ns(), got = 0;
    loader_t *L = NULL;
    int rc = loader_create(&c, &L);
    if (rc)
        fail_msg("loader_create: %s: %s", numafeed_strerror(rc), numafeed_last_error());
    struct loader_batch b = LOADER_BATCH_INIT;
    /* 60 s per batch: a stuck pool fails here rather than at ctest's timeout */
    while ((rc = loader_next(L, 0, &b, 60000)) == 0) {
        const uint8_t *tok = b.fields[0].host, *ids = b.fields[1].host;
        for (uint32_t i = 0; i < b.records; i++) {
            uint64_t id = b.record_ids[i], tag;
            memcpy(&tag, ids + (size_t)i * 8, 8);
            if (id >= N || tag != id)
                fail_msg("record %llu carries id %llu", (unsigned long long)id,
                         (unsigned long long)tag);
            uint8_t want[REC];
            record_bytes(id, want);
            if (memcmp(tok + (size_t)i * TOK * 4, want, TOK * 4))
                fail_msg("record %llu: bytes differ from the source", (unsigned long long)id);
            if (seen[id]++)
                fail_msg("record %llu delivered twice", (unsigned long long)id);
            got++;
        }
        assert_int_equal(loader_release(L, &b), 0);
    }
    out->ns = nf_now_ns() - t0;
    if (rc != NUMAFEED_EEPOCH_END)
        fail_msg("loader_next: %s: %s", numafeed_strerror(rc), nf_loader_error(L));
    assert_int_equal(got, N); /* N distinct ids: each record exactly once */
    out->st.size = sizeof(out->st);
    assert_int_equal(loader_stats(L, 0, &out->st), 0);
    loader_destroy(L);
}

static void print_run(const char *name, const struct run *r)
{
    const struct loader_stats *s = &r->st;
    printf("# %-4s epoch %8.1f ms  %9.0f rec/s  io_wait %8.1f ms  decode %6.1f ms  "
           "stall %7.1f ms  wait total %8.1f ms p50 %7.3f p99 %7.3f max %7.3f ms  blocks %llu\n",
           name, (double)r->ns / 1e6, N / ((double)r->ns / 1e9), (double)s->io_wait_ns / 1e6,
           (double)s->decode_ns / 1e6, (double)s->worker_stall_ns / 1e6,
           (double)s->wait_ns_total / 1e6, (double)s->wait_p50_ns / 1e6,
           (double)s->wait_p99_ns / 1e6, (double)s->wait_max_ns / 1e6,
           (unsigned long long)s->blocks_decoded);
}

static void test_one_slow_shard(void **state)
{
    (void)state;
    /* enough shards that shard 0 is a minority, enough blocks for a floor */
    printf("# %u shards, shard 0 has %u blocks, %u threads\n", nshards, b0, SLOW_THREADS);
    assert_true(nshards >= 3);
    assert_true(b0 >= 40);

    struct run fast, slow;
    atomic_store(&slow_ns, 0);
    run_epoch(&fast);
    print_run("base", &fast);
    assert_true(fast.st.blocks_decoded > 0);
    uint64_t per_block = (fast.st.io_wait_ns + fast.st.decode_ns) / fast.st.blocks_decoded;
    uint64_t d = 100 * per_block;
    if (d < 5000000)
        d = 5000000;
    if (d > 20000000)
        d = 20000000;
    printf("# a block of the other shards costs a worker %.1f us (read + decode); shard 0: "
           "%.2f ms a block (%.0fx)\n", (double)per_block / 1e3, (double)d / 1e6,
           (double)d / (double)(per_block ? per_block : 1));

    atomic_store(&slow_blocks, 0);
    atomic_store(&slow_ns, d);
    run_epoch(&slow);
    atomic_store(&slow_ns, 0);
    print_run("slow", &slow);

    uint64_t serial = (uint64_t)b0 * d; /* shard 0 read one block after another */
    uint64_t extra = slow.ns > fast.ns ? slow.ns - fast.ns : 0;
    uint64_t floor_ns = fast.ns + serial * 3 / 4;
    printf("# shard 0 serially %.1f ms; the slow shard added %.1f ms (%.2f of serial; "
           "ideal %.2f); floor %.0f rec/s, measured %.0f rec/s\n",
           (double)serial / 1e6, (double)extra / 1e6, (double)extra / (double)serial,
           1.0 / SLOW_THREADS, N / ((double)floor_ns / 1e9), N / ((double)slow.ns / 1e9));

    /* every shard-0 block of the epoch went through the slow path */
    assert_true(atomic_load(&slow_blocks) >= b0);
    /* the floor */
    assert_true(slow.ns <= floor_ns);
    /* the counters show it. Workers: every slowed read was timed as
     * io_wait, so at least B0 x d. (Not compared with the base run's: under
     * valgrind d hits its 20 ms cap and the base run's io_wait can come
     * near half of B0 x d, so such a ratio would test the machine's load.) */
    assert_true(slow.st.io_wait_ns >= serial);
    /* Consumer: the epoch cannot end before the slowed reads, spread over
     * T workers, are done, and the consumer spends it inside loader_next
     * (halved: its own checks of the records take time too). Its worst
     * wait holds at least one slowed read of the first window. */
    assert_true(slow.st.wait_ns_total >= serial / SLOW_THREADS / 2);
    assert_true(slow.st.wait_max_ns >= d / 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_slow_shard),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
