// SPDX-License-Identifier: Apache-2.0
/* numafeed pack --from files: an ImageFolder tree, ROOT/CLASS/..., one
 * record {key, data, label} per regular file.
 *
 * The walk is relative to directory descriptors (openat, fdopendir), so no
 * path is ever built for the kernel and depth is bounded by open
 * descriptors, not PATH_MAX; the key is built beside it for the record and
 * for messages. Nothing is followed: a symbolic link is reported, not
 * opened (O_NOFOLLOW backs the check against a rename in between), and
 * only what looked like a regular file is opened, with O_NONBLOCK so that
 * one replaced by a FIFO meanwhile cannot block; fstat then has the last
 * word. A file's size is checked against --max-record-bytes before any of
 * it is read. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pack.h"

/* The layout: key and data vary, label is fixed (stored first). */
static const struct numafeed_field layout[] = {
    {"key", "str", 0, {0}},
    {"data", "bytes", 0, {0}},
    {"label", "int64", 0, {0}},
};

struct walk {
    struct pack_job *j;
    char *root;      /* as given, without trailing '/' (for messages) */
    char *key;       /* the path relative to ROOT being visited */
    size_t key_len, key_cap;
    uint8_t *data;   /* the current file's content */
    size_t data_cap;
    int64_t label;   /* the current class */
    uint64_t files, classes;
};

struct entry {
    char *name;
    unsigned char type; /* DT_*; DT_UNKNOWN until asked */
};

static int by_name(const void *x, const void *y)
{
    return strcmp(((const struct entry *)x)->name, ((const struct entry *)y)->name);
}

/* ROOT/key, escaped, for a message. */
static const char *shown(const struct walk *w)
{
    char *p;
    if (asprintf(&p, "%s%s%s", w->root, w->key_len ? "/" : "", w->key) < 0)
        return "(out of memory)";
    const char *s = pack_esc(p, 0);
    free(p);
    return s;
}

/* shown(), as pack_add calls it. */
static const char *record_name(const void *w)
{
    return shown(w);
}

/* Append "/name" (or "name" at the top) to the key; returns the old length
 * to restore with key_pop, or -1 without memory. */
static ssize_t key_push(struct walk *w, const char *name)
{
    size_t old = w->key_len, n = strlen(name), need = old + 1 + n + 1;
    if (need > w->key_cap) {
        char *p = realloc(w->key, need * 2);
        if (!p)
            return -1;
        w->key = p;
        w->key_cap = need * 2;
    }
    if (old)
        w->key[w->key_len++] = '/';
    memcpy(w->key + w->key_len, name, n + 1);
    w->key_len += n;
    return (ssize_t)old;
}

static void key_pop(struct walk *w, size_t old)
{
    w->key_len = old;
    w->key[old] = '\0';
}

static void entries_free(struct entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(e[i].name);
    free(e);
}

/* Every name in d but . and .., sorted by name (byte order). */
static int list_dir(struct walk *w, DIR *d, struct entry **out, size_t *count)
{
    struct entry *e = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    for (errno = 0; (de = readdir(d)); errno = 0) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == cap) {
            struct entry *p = realloc(e, (cap = cap ? 2 * cap : 64) * sizeof(*e));
            if (!p)
                break;
            e = p;
        }
        if (!(e[n].name = strdup(de->d_name)))
            break;
        e[n++].type = de->d_type;
    }
    if (de || errno) {
        int err = de ? ENOMEM : errno;
        entries_free(e, n);
        return pack_error("%s: listing the directory: %s", shown(w), strerror(err));
    }
    if (n)
        qsort(e, n, sizeof(*e), by_name);
    *out = e;
    *count = n;
    return CLI_EXIT_OK;
}

/* d_type where the filesystem gives none (DT_UNKNOWN), from fstatat. */
static int entry_type(struct walk *w, int dfd, struct entry *e)
{
    if (e->type != DT_UNKNOWN)
        return CLI_EXIT_OK;
    struct stat st;
    if (fstatat(dfd, e->name, &st, AT_SYMLINK_NOFOLLOW))
        return pack_error("%s: %s", shown(w), strerror(errno));
    e->type = S_ISLNK(st.st_mode) ? DT_LNK : S_ISDIR(st.st_mode) ? DT_DIR
            : S_ISREG(st.st_mode) ? DT_REG : DT_FIFO; /* any special file */
    return CLI_EXIT_OK;
}

/* Read exactly size bytes of fd into w->data. */
static int read_file(struct walk *w, int fd, size_t size)
{
    if (size > w->data_cap) {
        uint8_t *p = realloc(w->data, size);
        if (!p)
            return pack_error("%s: no memory for %zu bytes", shown(w), size);
        w->data = p;
        w->data_cap = size;
    }
    for (size_t got = 0; got < size;) {
        ssize_t n = pread(fd, w->data + got, size - got, (off_t)got);
        if (n < 0 && errno == EINTR) {
            int st = pack_tick(w->j);
            if (st)
                return st;
            continue;
        }
        if (n < 0)
            return pack_error("%s: reading at offset %zu: %s", shown(w), got, strerror(errno));
        if (n == 0)
            return pack_error("%s: ended at %zu bytes while being read (fstat said %zu)",
                              shown(w), got, size);
        got += (size_t)n;
    }
    return CLI_EXIT_OK;
}

/* Refuse (or, with --skip-too-large, skip) a file whose record would be
 * over --max-record-bytes; 1 in *skip when skipped. */
static int check_size(struct walk *w, uint64_t size, int *skip)
{
    uint64_t max = w->j->a->o.max_record_bytes, record = sizeof(int64_t) + w->key_len + size;
    *skip = 0;
    if (record <= max)
        return CLI_EXIT_OK;
    if (w->j->a->skip_too_large) {
        pack_skip(w->j, PACK_SKIP_TOO_LARGE, shown(w));
        *skip = 1;
        return CLI_EXIT_OK;
    }
    return pack_error("%s: %llu bytes: its record (%llu bytes with key and label) is over "
                      "--max-record-bytes %llu; --skip-too-large leaves such files out",
                      shown(w), (unsigned long long)size, (unsigned long long)record,
                      (unsigned long long)max);
}

/* One regular file of the tree -> one record. */
static int pack_file(struct walk *w, int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 && errno == ELOOP) { /* became a link since it was listed */
        pack_skip(w->j, PACK_SKIP_LINK, shown(w));
        return CLI_EXIT_OK;
    }
    if (fd < 0)
        return pack_error("%s: %s", shown(w), strerror(errno));
    struct stat st;
    int status = CLI_EXIT_OK, skip = 0;
    if (fstat(fd, &st))
        status = pack_error("%s: %s", shown(w), strerror(errno));
    else if (!S_ISREG(st.st_mode)) {
        pack_skip(w->j, PACK_SKIP_SPECIAL, shown(w));
        skip = 1;
    } else
        status = check_size(w, (uint64_t)st.st_size, &skip);
    if (status == CLI_EXIT_OK && !skip)
        status = read_file(w, fd, (size_t)st.st_size);
    close(fd);
    if (status || skip)
        return status;
    const void *data[] = {w->key, w->data, &w->label};
    const size_t sizes[] = {w->key_len, (size_t)st.st_size, sizeof(w->label)};
    status = pack_add(w->j, data, sizes, record_name, w);
    if (status)
        return status;
    w->files++;
    w->j->in_bytes += (uint64_t)st.st_size;
    return pack_tick(w->j);
}

static int walk_dir(struct walk *w, int fd);

/* One entry of a directory: recurse, pack, or skip. top: in ROOT itself,
 * where a directory is a class and a regular file an error. */
static int visit(struct walk *w, int dfd, struct entry *e, int top)
{
    if (e->name[0] == '.') {
        pack_skip(w->j, PACK_SKIP_HIDDEN, shown(w));
        return CLI_EXIT_OK;
    }
    int st = entry_type(w, dfd, e);
    if (st)
        return st;
    switch (e->type) {
    case DT_LNK:
        pack_skip(w->j, PACK_SKIP_LINK, shown(w));
        return CLI_EXIT_OK;
    case DT_REG:
        if (top)
            return pack_error("%s: a file directly in ROOT; ImageFolder takes files only from "
                              "class directories (ROOT/CLASS/...)", shown(w));
        return pack_file(w, dfd, e->name);
    case DT_DIR:
        break;
    default:
        pack_skip(w->j, PACK_SKIP_SPECIAL, shown(w));
        return CLI_EXIT_OK;
    }
    int fd = openat(dfd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ELOOP) {
        pack_skip(w->j, PACK_SKIP_LINK, shown(w));
        return CLI_EXIT_OK;
    }
    if (fd < 0)
        return pack_error("%s: %s%s", shown(w), strerror(errno),
                          errno == EMFILE ? " (the tree is deeper than the open file limit)" : "");
    if (!top)
        return walk_dir(w, fd);
    uint64_t before = w->files;
    if (w->j->a->verbose)
        fprintf(stderr, "numafeed pack: label %lld: %s\n", (long long)w->label, shown(w));
    st = walk_dir(w, fd);
    if (!st && w->files == before)
        fprintf(stderr, "numafeed pack: warning: class %s (label %lld) holds no files\n",
                shown(w), (long long)w->label);
    w->label++;
    w->classes++;
    return st;
}

/* Every entry of the directory open at fd (which this closes), in order. */
static int walk_dir(struct walk *w, int fd)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return pack_error("%s: %s", shown(w), strerror(errno));
    }
    int top = w->key_len == 0, st;
    struct entry *e = NULL;
    size_t n = 0;
    if ((st = list_dir(w, d, &e, &n))) {
        closedir(d);
        return st;
    }
    for (size_t i = 0; i < n && !st; i++) {
        ssize_t old = key_push(w, e[i].name);
        if (old < 0) {
            st = pack_error("%s: no memory for the path", shown(w));
            break;
        }
        st = visit(w, dirfd(d), &e[i], top);
        key_pop(w, (size_t)old);
    }
    entries_free(e, n);
    closedir(d);
    return st;
}

/* Each level of the tree holds a descriptor open: allow as many as the
 * hard limit lets. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int pack_files(struct pack_job *j)
{
    struct walk w = {.j = j};
    size_t len = strlen(j->a->inputs[0]);
    while (len > 1 && j->a->inputs[0][len - 1] == '/')
        len--;
    w.root = strndup(j->a->inputs[0], len);
    if (!w.root || key_push(&w, "") < 0)
        return pack_error("no memory");
    raise_fd_limit();
    int status, fd = open(w.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        status = pack_error("%s: %s", pack_esc(w.root, 0), strerror(errno));
    else if (!(status = pack_open(j, layout, sizeof(layout) / sizeof(layout[0]))))
        status = walk_dir(&w, fd);
    else
        close(fd);
    snprintf(j->source, sizeof(j->source), "from %llu files in %llu classes",
             (unsigned long long)w.files, (unsigned long long)w.classes);
    free(w.root);
    free(w.key);
    free(w.data);
    return status;
}
