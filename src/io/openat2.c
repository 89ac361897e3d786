// SPDX-License-Identifier: Apache-2.0
/* openat2(2) alone in its file, so that a test can take it away with the
 * linker's --wrap and see confine.c's fallback for kernels before 5.6. */
#include <errno.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "io/io.h"

int nf__openat2(int dirfd, const char *name, int flags, unsigned long long resolve)
{
#ifdef SYS_openat2
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = (unsigned long long)flags;
    how.resolve = resolve;
    long fd = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
    return fd < 0 ? -errno : (int)fd;
#else
    (void)dirfd, (void)name, (void)flags, (void)resolve;
    return -ENOSYS;
#endif
}

