// SPDX-License-Identifier: Apache-2.0
/*
 * Reading a mapped shard safely. A file that shrinks (or is replaced by a
 * shorter one, or sits on storage that fails) under a MAP_SHARED mapping
 * makes the next access to the lost pages raise SIGBUS, which would kill a
 * training process. Every access numafeed makes to a shard mapping runs
 * inside a guard: the thread's sigsetjmp point is published in a
 * thread-local, and a SIGBUS handler jumps back to it when the faulting
 * thread is inside a guard; the access then fails with the same typed
 * error a short read gives.
 *
 * The handler is process-wide, so it is installed with care:
 *   - once, when the first dataset is mapped, and again at a later mapping
 *     if someone replaced it meanwhile (Python's faulthandler, say);
 *   - a SIGBUS outside a guard (another thread's, or this thread's own bug)
 *     goes to the handler that was installed before ours, exactly as if
 *     ours were not there: a function handler is called with the same
 *     arguments; otherwise the default is restored and the signal raised
 *     again, so the default action (a core dump) happens;
 *   - SA_NODEFER, so the jump out of the handler leaves SIGBUS unblocked
 *     (sigsetjmp is told not to save the mask: a syscall per block saved).
 *
 * What a jump out of an access leaves behind: a half-written destination
 * (a batch that is never published: the pool fails at it) and a zstd
 * context mid-frame, which its next ZSTD_decompressDCtx resets. Nothing
 * allocates inside a guard.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>

#include "internal.h"
#include "io/io.h"

struct guard {
    sigjmp_buf env;
    void *volatile addr; /* the faulting address, set by the handler */
};

static _Thread_local struct guard *volatile active;
static struct sigaction previous;
static pthread_mutex_t install_mu = PTHREAD_MUTEX_INITIALIZER;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    struct guard *g = active;
    if (g) {
        active = NULL;
        g->addr = si ? si->si_addr : NULL;
        siglongjmp(g->env, 1);
    }
    /* not ours: as if the previous disposition were still in place */
    if (previous.sa_flags & SA_SIGINFO) {
        if (previous.sa_sigaction) {
            previous.sa_sigaction(sig, si, uc);
            return;
        }
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(sig);
        return;
    }
    /* default (or ignored, which a fault cannot be): put it back and raise
     * again, which SA_NODEFER delivers at once: the default action, for a
     * fault and for a kill(2) alike */
    signal(SIGBUS, SIG_DFL);
    raise(SIGBUS);
}

int nf__guard_install(void)
{
    pthread_mutex_lock(&install_mu);
    struct sigaction now;
    int rc = 0;
    if (sigaction(SIGBUS, NULL, &now) == 0 &&
        !((now.sa_flags & SA_SIGINFO) && now.sa_sigaction == on_sigbus)) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_sigbus;
        sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGBUS, &sa, &previous))
            rc = nf__error(-errno, "sigaction(SIGBUS): %s", strerror(errno));
    }
    pthread_mutex_unlock(&install_mu);
    return rc;
}

int nf__guarded(void (*fn)(void *arg), void *arg, void **fault_addr)
{
    struct guard g;
    /* guards nest (a guarded check may call another guarded one): the
     * outer one is back in force when the inner returns, either way */
    struct guard *volatile outer = active;
    g.addr = NULL;
    if (sigsetjmp(g.env, 0)) {
        active = outer;
        /* a runtime that wraps handlers (ThreadSanitizer's) may have left
         * SIGBUS blocked; a blocked fault signal would kill at the next one */
        sigset_t bus;
        sigemptyset(&bus);
        sigaddset(&bus, SIGBUS);
        pthread_sigmask(SIG_UNBLOCK, &bus, NULL);
        *fault_addr = g.addr;
        return NUMAFEED_ECORRUPT;
    }
    active = &g;
    fn(arg);
    active = outer;
    return 0;
}
