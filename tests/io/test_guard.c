// SPDX-License-Identifier: Apache-2.0
/*
 * The SIGBUS guard around mapped shards (src/io/guard.c): a file truncated
 * under a mapping is an error inside a guard, guards nested or not; every
 * other SIGBUS reaches the handler that was installed before numafeed's,
 * or the default action.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"
#include "io/io.h"

static volatile sig_atomic_t prior_calls;

static void prior_handler(int sig)
{
    (void)sig;
    prior_calls++;
}

struct touch {
    const volatile uint8_t *p;
    size_t len;
    unsigned sum;
};

static void touch_all(void *arg)
{
    struct touch *t = arg;
    for (size_t i = 0; i < t->len; i += 4096)
        t->sum += t->p[i];
}

/* A 64 KiB file in a scratch directory, mapped read-only and shared, with
 * the guard installed; unmapped, closed and removed by unmap_file. */
struct mapped {
    char *dir;
    int fd;
    uint8_t *m;
};

static struct mapped map_file(void)
{
    struct mapped f = {nf_tmpdir(), -1, NULL};
    char path[4200];
    snprintf(path, sizeof(path), "%s/f", f.dir);
    f.fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(f.fd >= 0);
    assert_int_equal(ftruncate(f.fd, 65536), 0);
    f.m = mmap(NULL, 65536, PROT_READ, MAP_SHARED, f.fd, 0);
    assert_true(f.m != MAP_FAILED);
    assert_int_equal(nf__guard_install(), 0);
    return f;
}

static void unmap_file(struct mapped *f)
{
    munmap(f->m, 65536);
    close(f->fd);
    nf_rmtree(f->dir);
    free(f->dir);
}

/* Map a 64 KiB file, cut it to 4 KiB: the lost pages fault, inside the
 * guard as an error with the address, and the process goes on. */
static void test_truncated_mapping_is_an_error(void **state)
{
    (void)state;
    struct mapped f = map_file();
    struct touch t = {f.m, 65536, 0};
    void *addr = NULL;
    assert_int_equal(nf__guarded(touch_all, &t, &addr), 0); /* whole: fine */
    assert_int_equal(ftruncate(f.fd, 4096), 0);
    assert_int_equal(nf__guarded(touch_all, &t, &addr), NUMAFEED_ECORRUPT);
    assert_ptr_equal(addr, f.m + 4096); /* the first lost page */
    /* again, and a guard that does not fault still works afterwards */
    assert_int_equal(nf__guarded(touch_all, &t, &addr), NUMAFEED_ECORRUPT);
    t.len = 4096;
    assert_int_equal(nf__guarded(touch_all, &t, &addr), 0);
    unmap_file(&f);
}

/* Guards nest: after an inner guard returns (soundly, or from a fault),
 * the outer one still catches a fault of its own. */
struct nested {
    struct touch whole, first; /* the mapping whole (faults), and its first page */
    int inner_rc;
};

static void inner_then_fault(void *arg)
{
    struct nested *n = arg;
    void *addr;
    n->inner_rc = nf__guarded(touch_all, &n->first, &addr);
    touch_all(&n->whole); /* faults: the outer guard's */
}

static void inner_fault_then_fault(void *arg)
{
    struct nested *n = arg;
    void *addr;
    n->inner_rc = nf__guarded(touch_all, &n->whole, &addr);
    touch_all(&n->whole);
}

static void test_guards_nest(void **state)
{
    (void)state;
    struct mapped f = map_file();
    assert_int_equal(ftruncate(f.fd, 4096), 0);
    struct nested n = {{f.m, 65536, 0}, {f.m, 4096, 0}, -1};
    void *addr = NULL;
    assert_int_equal(nf__guarded(inner_then_fault, &n, &addr), NUMAFEED_ECORRUPT);
    assert_int_equal(n.inner_rc, 0);
    assert_ptr_equal(addr, f.m + 4096);
    n.inner_rc = -1;
    assert_int_equal(nf__guarded(inner_fault_then_fault, &n, &addr), NUMAFEED_ECORRUPT);
    assert_int_equal(n.inner_rc, NUMAFEED_ECORRUPT);
    unmap_file(&f);
}

/* A SIGBUS outside any guard goes to the handler installed before ours. */
static void test_other_sigbus_reaches_prior_handler(void **state)
{
    (void)state;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = prior_handler;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGBUS, &sa, &old), 0);
    assert_int_equal(nf__guard_install(), 0); /* replaces it, chaining */
    prior_calls = 0;
    raise(SIGBUS);
    assert_int_equal(prior_calls, 1);
    assert_int_equal(nf__guard_install(), 0); /* already ours: nothing changes */
    raise(SIGBUS);
    assert_int_equal(prior_calls, 2);
    sigaction(SIGBUS, &old, NULL);
}

/* With the default disposition before ours, an unguarded SIGBUS still
 * kills the process with SIGBUS (in a child). */
static void test_unguarded_sigbus_keeps_default_action(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGBUS, SIG_DFL);
        if (nf__guard_install())
            _exit(3);
        raise(SIGBUS);
        _exit(0); /* survived: wrong */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGBUS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncated_mapping_is_an_error),
        cmocka_unit_test(test_guards_nest),
        cmocka_unit_test(test_other_sigbus_reaches_prior_handler),
        cmocka_unit_test(test_unguarded_sigbus_keeps_default_action),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
