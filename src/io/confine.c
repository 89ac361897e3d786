// SPDX-License-Identifier: Apache-2.0
/*
 * The dataset directory is a boundary. A dataset is often downloaded from
 * somewhere else, so its files are opened the way a hostile one cannot
 * turn into a read of something else:
 *
 *   - the directory is opened once (O_DIRECTORY) and every file beneath it
 *     relative to that descriptor, by a plain name the manifest's checks
 *     already vetted (no '/', no leading '.');
 *   - resolution may not leave the directory: openat2 with RESOLVE_BENEATH
 *     (and no magic links), so a symbolic link that stays inside works and
 *     one that points outside (to /etc/shadow, to another dataset's shard)
 *     is refused; where the kernel lacks openat2 (before 5.6) or a seccomp
 *     filter refuses it, the link is opened and the file it reached is
 *     checked to lie beneath the directory (/proc/self/fd), else refused;
 *     follow_symlinks is the explicit opt-in that lets links leave;
 *   - O_NONBLOCK, so a FIFO or a device never blocks the open, then fstat
 *     before anything is read: only regular files are accepted.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "io/io.h"

int nf__dir_open(const char *dir, int *out)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return nf__error(-e, "%s: %s%s", dir, strerror(e),
                         e == ENOTDIR ? " (a dataset is a directory)" : "");
    }
    *out = fd;
    return 0;
}

/* Where an open descriptor's file is, as the kernel resolved it. */
static int fd_path(int fd, char *buf, size_t len)
{
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, len - 1);
    if (n < 0 || (size_t)n >= len - 1)
        return -1;
    buf[n] = '\0';
    return 0;
}

/* Without openat2: open, following a final symbolic link, and accept the
 * file only if it lies beneath the directory. */
static int open_checked(int dirfd, const char *name, int flags)
{
    int fd = openat(dirfd, name, flags | O_NOFOLLOW);
    if (fd >= 0 || errno != ELOOP)
        return fd < 0 ? -errno : fd;
    fd = openat(dirfd, name, flags);
    if (fd < 0)
        return -errno;
    char d[PATH_MAX], f[PATH_MAX];
    size_t n;
    if (fd_path(dirfd, d, sizeof(d)) || fd_path(fd, f, sizeof(f)) || (n = strlen(d)) == 0 ||
        strncmp(f, d, n) != 0 || (f[n] != '/' && strcmp(d, "/") != 0)) {
        close(fd);
        return -EXDEV;
    }
    return fd;
}

int nf__open_beneath(int dirfd, const char *dir, const char *name, int follow, int extra_flags,
                     int *out, uint64_t *size)
{
    int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | extra_flags;
    int fd;
    if (follow) {
        fd = openat(dirfd, name, flags);
        fd = fd < 0 ? -errno : fd;
    } else {
        fd = nf__openat2(dirfd, name, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
        if (fd == -ENOSYS || fd == -EPERM)
            fd = open_checked(dirfd, name, flags);
    }
    if (fd == -EXDEV || fd == -ELOOP)
        return nf__error(fd, "%s/%s: a symbolic link that leaves the dataset directory "
                         "(refused unless follow_symlinks is set)", dir, name);
    if (fd < 0)
        return nf__error(fd, "%s/%s: %s", dir, name, strerror(-fd));
    struct stat st;
    if (fstat(fd, &st)) {
        int e = errno;
        close(fd);
        return nf__error(-e, "%s/%s: fstat: %s", dir, name, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return nf__error(NUMAFEED_ECORRUPT, "%s/%s: not a regular file (%s)", dir, name,
                         S_ISDIR(st.st_mode)    ? "a directory"
                         : S_ISFIFO(st.st_mode) ? "a FIFO"
                         : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                         : S_ISSOCK(st.st_mode) ? "a socket"
                                                : "not a file");
    }
    /* reads of a regular file never block; O_NONBLOCK was for the open */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    *out = fd;
    *size = (uint64_t)st.st_size;
    return 0;
}
