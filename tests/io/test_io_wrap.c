// SPDX-License-Identifier: Apache-2.0
/*
 * Failures this machine does not produce on demand, injected with the
 * linker's --wrap: short reads and EINTR from pread, EIO, and io_uring
 * refused (EPERM as under seccomp or kernel.io_uring_disabled, ENOSYS as on
 * old kernels, EINVAL for the setup flags before Linux 6.1).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <liburing.h>

#include "io_helpers.h"

enum { RB = 64, NREC = 2000, BLOCK = 2048 };

/* ---- pread ---- */
enum { PR_REAL, PR_SHORT, PR_EINTR, PR_EIO };
static int pread_mode;
static unsigned pread_calls;
ssize_t __real_pread(int fd, void *buf, size_t n, off_t off);
ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t off)
{
    pread_calls++;
    switch (pread_mode) {
    case PR_SHORT: /* never more than 5 bytes: every read is short */
        return __real_pread(fd, buf, n > 5 ? 5 : n, off);
    case PR_EINTR:
        if (pread_calls % 2) {
            errno = EINTR;
            return -1;
        }
        break;
    case PR_EIO:
        errno = EIO;
        return -1;
    default:
        break;
    }
    return __real_pread(fd, buf, n, off);
}

/* ---- io_uring_queue_init_params ---- */
enum { UR_REAL, UR_EPERM, UR_ENOSYS, UR_FLAGS_EINVAL };
static int uring_mode;
static unsigned uring_calls;
int __real_io_uring_queue_init_params(unsigned entries, struct io_uring *ring, struct io_uring_params *p);
int __wrap_io_uring_queue_init_params(unsigned entries, struct io_uring *ring, struct io_uring_params *p)
{
    uring_calls++;
    switch (uring_mode) {
    case UR_EPERM: return -EPERM;
    case UR_ENOSYS: return -ENOSYS;
    case UR_FLAGS_EINVAL:
        if (p->flags & (IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN))
            return -EINVAL;
        break;
    default: break;
    }
    return __real_io_uring_queue_init_params(entries, ring, p);
}

static char *tmp, *ds_path;

static int group_setup(void **state)
{
    (void)state;
    tmp = nf_tmpdir();
    ds_path = nft_make_dataset(tmp, "ds", RB, NREC, NUMAFEED_CODEC_ZSTD, 1, BLOCK, 0);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    nf_rmtree(tmp);
    free(tmp);
    free(ds_path);
    return 0;
}

static int reset(void **state)
{
    (void)state;
    pread_mode = PR_REAL;
    uring_mode = UR_REAL;
    pread_calls = uring_calls = 0;
    return 0;
}

static struct nf_reader *pread_reader(struct nf_dataset *ds)
{
    struct nf_reader_options o;
    nf__reader_options_init(&o);
    o.backend = NF_IO_PREAD;
    struct nf_reader *r;
    assert_int_equal(nf__reader_create(ds, &o, &r), 0);
    return r;
}

static void read_all(struct nf_reader *r, struct nf_dataset *ds)
{
    const struct nf_shard_index *idx = nf__dataset_shard_index(ds, 0);
    uint8_t buf[BLOCK], dst[BLOCK], want[BLOCK];
    for (uint32_t b = 0; b < idx->nblocks; b++) {
        if (nf__reader_read_block(r, 0, b, buf, sizeof(buf), dst, sizeof(dst)))
            fail_msg("block %u: %s", b, numafeed_last_error());
        nft_pattern(want, idx->blocks[b].first_record, idx->blocks[b].records, RB, 1);
        assert_memory_equal(want, dst, idx->blocks[b].decoded_size);
    }
}

static void short_reads_continue(void **state)
{
    (void)state;
    pread_mode = PR_SHORT; /* also while opening: header, footer, manifest */
    struct nf_dataset *ds;
    if (nf__dataset_open(ds_path, NULL, &ds))
        fail_msg("open: %s", numafeed_last_error());
    struct nf_reader *r = pread_reader(ds);
    unsigned before = pread_calls;
    read_all(r, ds);
    const struct nf_shard_index *idx = nf__dataset_shard_index(ds, 0);
    assert_true(pread_calls - before > 2 * idx->nblocks); /* several reads per block */
    nf__reader_destroy(r);
    nf__dataset_close(ds);
}

static void eintr_retried(void **state)
{
    (void)state;
    pread_mode = PR_EINTR;
    struct nf_dataset *ds;
    assert_int_equal(nf__dataset_open(ds_path, NULL, &ds), 0);
    struct nf_reader *r = pread_reader(ds);
    read_all(r, ds);
    nf__reader_destroy(r);
    nf__dataset_close(ds);
}

static void eio_reported(void **state)
{
    (void)state;
    struct nf_dataset *ds;
    assert_int_equal(nf__dataset_open(ds_path, NULL, &ds), 0);
    struct nf_reader *r = pread_reader(ds);
    pread_mode = PR_EIO;
    uint8_t buf[BLOCK], dst[BLOCK];
    const struct nf_block_info *b = &nf__dataset_shard_index(ds, 0)->blocks[1];
    assert_int_equal(nf__reader_read_block(r, 0, 1, buf, sizeof(buf), dst, sizeof(dst)), -EIO);
    char want[64];
    snprintf(want, sizeof(want), "block 1: read at offset %llu", (unsigned long long)b->offset);
    if (!strstr(numafeed_last_error(), want))
        fail_msg("message: %s", numafeed_last_error());
    /* and opening reports it too, naming the file */
    struct nf_dataset *ds2;
    assert_int_equal(nf__dataset_open(ds_path, NULL, &ds2), -EIO);
    nf__reader_destroy(r);
    nf__dataset_close(ds);
}

static void refused(int mode, const char *name)
{
    uring_mode = mode;
    struct nf_dataset *ds;
    assert_int_equal(nf__dataset_open(ds_path, NULL, &ds), 0);
    struct nf_reader *r;
    assert_int_equal(nf__reader_create(ds, NULL, &r), 0);
    assert_string_equal(nf__reader_backend(r), "pread");
    if (!strstr(nf__reader_backend_reason(r), name) ||
        !strstr(nf__reader_backend_reason(r), "using pread"))
        fail_msg("reason: %s", nf__reader_backend_reason(r));
    read_all(r, ds);
    nf__reader_destroy(r);

    /* forced by option: a loud error, no fallback */
    struct nf_reader_options o;
    nf__reader_options_init(&o);
    o.backend = NF_IO_URING;
    assert_int_equal(nf__reader_create(ds, &o, &r), mode == UR_EPERM ? -EPERM : -ENOSYS);
    assert_non_null(strstr(numafeed_last_error(), "io_uring was asked for"));
    nf__dataset_close(ds);
}

static void uring_eperm(void **state) { (void)state; refused(UR_EPERM, "EPERM"); }
static void uring_enosys(void **state) { (void)state; refused(UR_ENOSYS, "ENOSYS"); }

static void uring_flags_retried(void **state)
{
    (void)state;
    uring_mode = UR_FLAGS_EINVAL;
    struct nf_dataset *ds;
    assert_int_equal(nf__dataset_open(ds_path, NULL, &ds), 0);
    struct nf_reader *r;
    assert_int_equal(nf__reader_create(ds, NULL, &r), 0);
    assert_int_equal(uring_calls, 2);
    if (strcmp(nf__reader_backend(r), "io_uring"))
        skip(); /* the real io_uring is refused here too: nothing more to learn */
    assert_string_equal(nf__reader_backend_reason(r), "default");
    read_all(r, ds);
    nf__reader_destroy(r);
    nf__dataset_close(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(short_reads_continue, reset),
        cmocka_unit_test_setup(eintr_retried, reset),
        cmocka_unit_test_setup(eio_reported, reset),
        cmocka_unit_test_setup(uring_eperm, reset),
        cmocka_unit_test_setup(uring_enosys, reset),
        cmocka_unit_test_setup(uring_flags_retried, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
