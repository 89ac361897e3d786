// SPDX-License-Identifier: Apache-2.0
/*
 * Faults a machine here does not produce by itself, made real or injected:
 * io_uring refused by a seccomp filter (as Docker >= 25's default profile
 * does), an I/O error from the kernel (injected at the reader with --wrap),
 * a tiny memlock limit, kill -9 mid-epoch and a restart, and a soak of 100
 * epochs with heap bytes in use, descriptors and threads flat.
 */
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "internal.h"
#include "io/io.h"

/* ---- I/O error injection at the reader ---- */
static atomic_int inject_eio;
int __real_nf__reader_wait(struct nf_reader *r, unsigned min, struct nf_read_done *done,
                            unsigned max);
int __wrap_nf__reader_wait(struct nf_reader *r, unsigned min, struct nf_read_done *done,
                            unsigned max)
{
    int n = __real_nf__reader_wait(r, min, done, max);
    if (n > 0 && atomic_load(&inject_eio)) {
        done[0].result = nf__error(-EIO, "read(shard %u, block %u): Input/output error "
                                    "(injected)", done[0].shard, done[0].block);
    }
    return n;
}

enum { N = 3000, RB = 512 };
static char *base, *dir;
static uint8_t *src;
static uint64_t want; /* sum of XXH64 of every record */

static int setup(void **state)
{
    (void)state;
    if (nf_scratch(&base, &dir))
        return -1;
    src = malloc((size_t)N * RB);
    for (size_t i = 0; i < (size_t)N * RB; i++)
        src[i] = (uint8_t)((i * 7 + i / RB) & 0xff);
    for (uint64_t i = 0; i < N; i++)
        want += XXH64(src + i * RB, RB, 0);
    struct numafeed_field f = {.name = "x", .dtype = "uint8", .ndim = 1, .shape = {RB}};
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.block_bytes = 16 * RB;
    return nf_pack(dir, &f, 1, &o, src, N) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    nf_scratch_free(base, dir);
    free(src);
    return 0;
}

/* io: enum loader_io; the faults are injected into reads, so by default
 * the matrix's reading io (never mmap). */
static loader_t *make_io(int threads, int io)
{
    struct loader_config c;
    loader_config_init(&c);
    c.path = dir;
    c.threads = (uint32_t)threads;
    c.batch_size = 50;
    c.world_size = 1;
    c.device = LOADER_DEVICE_CPU;
    c.io = io;
    loader_t *L = NULL;
    if (loader_create(&c, &L))
        fail_msg("loader_create: %s", numafeed_last_error());
    return L;
}

static loader_t *make(int threads)
{
    return make_io(threads, nf_test_io_reads());
}

/* One epoch: the content digest, or 0 with *rc set on an error. */
static uint64_t epoch_digest(loader_t *L, int *rc_out)
{
    uint64_t d = 0;
    struct loader_batch b = LOADER_BATCH_INIT;
    int rc;
    while ((rc = loader_next(L, 0, &b, 20000)) == 0) {
        for (uint32_t i = 0; i < b.records; i++)
            d += XXH64((uint8_t *)b.fields[0].host + (size_t)i * RB, RB, 0);
        loader_release(L, &b);
    }
    *rc_out = rc;
    return d;
}

static void test_seccomp_refuses_io_uring(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* what Docker >= 25's default profile does: io_uring_setup -> EPERM */
        struct sock_filter filter[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
            _exit(3);
        /* io auto on shards not in the page cache: io_uring, refused, so pread */
        nf_evict(dir);
        loader_t *L = make_io(2, LOADER_IO_AUTO);
        struct loader_pool_info pi = {.size = sizeof(pi)};
        loader_pool_info(L, 0, &pi);
        int rc;
        uint64_t d = epoch_digest(L, &rc);
        loader_destroy(L);
        if (strcmp(pi.io_backend, "pread") || !strstr(pi.notes, "Operation not permitted"))
            _exit(4);
        _exit(rc == NUMAFEED_EEPOCH_END && d == want ? 0 : 5);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0); /* fell back to pread, same digest */
}

static void test_io_error_surfaces(void **state)
{
    (void)state;
    loader_t *L = make(3);
    int rc;
    assert_int_equal(epoch_digest(L, &rc), want);
    assert_int_equal(rc, NUMAFEED_EEPOCH_END);
    atomic_store(&inject_eio, 1);
    /* the next reads fail: the error reaches loader_next, named, within the
     * batches already prefetched (at most the ring); nothing hangs (the 20 s
     * timeout would say so) */
    for (int e = 0; e < 3; e++) {
        epoch_digest(L, &rc);
        if (rc != NUMAFEED_EEPOCH_END)
            break;
    }
    assert_int_equal(rc, -EIO);
    assert_non_null(strstr(nf_loader_error(L), "Input/output error"));
    assert_non_null(strstr(nf_loader_error(L), "block"));
    atomic_store(&inject_eio, 0);
    loader_destroy(L);
}

static void test_memlock_and_kill9(void **state)
{
    (void)state;
    char *out = NULL;
    /* ulimit -l 64 KiB: nothing numafeed needs counts against it here */
    assert_int_equal(nf_run(&out, "ulimit -l 64 && %s bench %s --epochs 2 --digest 2>&1", NF_CLI,
                            dir), 0);
    char line[128];
    snprintf(line, sizeof(line), "records %d digest %016llx", N, (unsigned long long)want);
    assert_non_null(strstr(out, line));
    free(out);
    /* kill -9 in the middle of an epoch, then at once again: starts clean */
    assert_int_equal(nf_run(NULL, "%s bench %s --epochs 100000 --step-us 100 >/dev/null 2>&1 & "
                            "sleep 0.3; kill -9 $!; wait $! 2>/dev/null; true", NF_CLI, dir), 0);
    assert_int_equal(nf_run(&out, "%s bench %s --epochs 1 --digest 2>&1", NF_CLI, dir), 0);
    assert_non_null(strstr(out, line));
    free(out);
}

static long status_field(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char l[256];
    long v = -1;
    while (f && fgets(l, sizeof(l), f))
        if (!strncmp(l, key, strlen(key)))
            v = atol(l + strlen(key));
    if (f)
        fclose(f);
    return v;
}

/* Descriptors open in this process, counted in place: a shell pipeline
 * (popen) would add its own pipe and race with its child's descriptors. */
static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own */
}

/* Heap bytes the program holds: exact, unlike resident memory, which moves
 * by hundreds of KiB with the sanitizers' allocator caches and quarantine
 * (a CI run saw +1.15% with no allocation made after the first epoch).
 * Under ASan or TSan the sanitizer's own allocator counts; otherwise
 * glibc's (small chunks plus mmap'd ones). */
size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));
static long heap_in_use(void)
{
    if (__sanitizer_get_current_allocated_bytes)
        return (long)__sanitizer_get_current_allocated_bytes();
    struct mallinfo2 mi = mallinfo2();
    return (long)(mi.uordblks + mi.hblkhd);
}

static void test_soak_100_epochs(void **state)
{
    (void)state;
    loader_t *L = make(2);
    long rss10 = 0, heap10 = 0, fds10 = 0, thr10 = 0;
    for (int e = 1; e <= 100; e++) {
        int rc;
        assert_int_equal(epoch_digest(L, &rc), want);
        assert_int_equal(rc, NUMAFEED_EEPOCH_END);
        if (e == 10) {
            rss10 = status_field("VmRSS:");
            heap10 = heap_in_use();
            fds10 = open_fds();
            thr10 = status_field("Threads:");
        }
    }
    long rss = status_field("VmRSS:"), heap = heap_in_use();
    long fds = open_fds(), thr = status_field("Threads:");
    printf("# soak: epochs 10 -> 100: heap %ld -> %ld B, RSS %ld -> %ld KiB, fds %ld -> %ld, "
           "threads %ld -> %ld\n", heap10, heap, rss10, rss, fds10, fds, thr10, thr);
    /* The workers allocate only while their first units grow their arrays,
     * and stdio keeps its buffers: a leak of even one 4 KiB buffer per
     * epoch (360 KiB) fails, slack for one-off growth does not. */
    assert_true(labs(heap - heap10) <= 64 * 1024);
    /* Resident memory only as a gross check: 4 MiB is 45 KiB per epoch. */
    assert_true(labs(rss - rss10) <= 4096);
    assert_int_equal(fds, fds10);
    assert_int_equal(thr, thr10);
    loader_destroy(L);
}

/* A shard cut short under the loader's mapping (io mmap): a typed error at
 * the batch it affects, naming the shard and "short read", never SIGBUS.
 * Both codecs, both of the worker's paths (prefetch 2 with the default
 * window: whole-window units; a large ring: streaming). */
static void test_mmap_shard_truncated(void **state)
{
    (void)state;
    for (int codec = 0; codec < 2; codec++) {
        for (int stream = 0; stream < 2; stream++) {
            char *b2, *d2;
            assert_int_equal(nf_scratch(&b2, &d2), 0);
            struct numafeed_field f = {.name = "x", .dtype = "uint8", .ndim = 1, .shape = {RB}};
            struct numafeed_writer_options o;
            numafeed_writer_options_init(&o);
            o.block_bytes = 16 * RB;
            o.codec = codec ? NUMAFEED_CODEC_ZSTD : NUMAFEED_CODEC_NONE;
            assert_int_equal(nf_pack(d2, &f, 1, &o, src, N), 0);
            struct loader_config c;
            loader_config_init(&c);
            c.path = d2;
            c.threads = 1;
            c.batch_size = 16;
            c.prefetch = stream ? 8 : 2;
            c.world_size = 1;
            c.device = LOADER_DEVICE_CPU;
            c.io = LOADER_IO_MMAP;
            c.shuffle = 0;
            loader_t *L;
            assert_int_equal(loader_create(&c, &L), 0);
            struct loader_batch b = LOADER_BATCH_INIT;
            assert_int_equal(loader_next(L, 0, &b, 10000), 0);
            char shard[4200];
            snprintf(shard, sizeof(shard), "%s/shard-00000.nfs", d2);
            assert_int_equal(truncate(shard, 64), 0); /* the header is all that is left */
            assert_int_equal(loader_release(L, &b), 0);
            int rc;
            uint64_t got = 1;
            while ((rc = loader_next(L, 0, &b, 10000)) == 0 || rc == NUMAFEED_EEPOCH_END) {
                if (rc == 0) {
                    loader_release(L, &b);
                    got++;
                }
                assert_true(got < 4 * N / 16); /* within a few epochs at most */
            }
            assert_int_equal(rc, NUMAFEED_ECORRUPT);
            if (!strstr(nf_loader_error(L), "short read"))
                fail_msg("codec %d stream %d: %s", codec, stream, nf_loader_error(L));
            assert_non_null(strstr(nf_loader_error(L), "shard-00000.nfs"));
            loader_destroy(L);
            nf_scratch_free(b2, d2);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mmap_shard_truncated),
        cmocka_unit_test(test_seccomp_refuses_io_uring),
        cmocka_unit_test(test_io_error_surfaces),
        cmocka_unit_test(test_memlock_and_kill9),
        cmocka_unit_test(test_soak_100_epochs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
