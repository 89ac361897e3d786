// SPDX-License-Identifier: Apache-2.0
/*
 * The dataset writer (public: numafeed_writer_*), used by `numafeed pack`.
 *
 * Records accumulate in one block buffer; a full block is compressed (or
 * stored raw when zstd does not shrink it), appended to the current shard
 * and described in that shard's index. Shard files are written front to
 * back only, so the content hash the manifest keeps is computed as the
 * bytes go out, never by reading the file again.
 *
 * Atomicity: everything lives in a hidden temporary directory next to the
 * output until finish() has fsync'd each shard, the manifest and the
 * directory; only then is it renamed into place (renameat2 with
 * RENAME_NOREPLACE, or RENAME_EXCHANGE to replace with force) and the
 * parent fsync'd so the rename itself survives a crash.
 */
#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/hash.h"
#include <zstd.h>

#include "internal.h"
#include "io/io.h"

struct numafeed_writer {
    char *out_dir;  /* as given */
    char *tmp_dir;  /* parent/.name.tmp-PID-XXXXXX */
    char *parent;   /* directory holding both */
    struct nf_manifest m; /* layout, codec, shards written so far */
    size_t shards_cap;
    int codec;      /* enum numafeed_codec, resolved */
    int force;
    uint64_t shard_bytes;
    size_t block_cap;                /* the block buffer's bytes; fixed layouts: a full block */
    size_t block_target;             /* variable layouts: bytes a block closes at */
    uint64_t max_record;             /* variable layouts: largest record accepted */
    ZSTD_CCtx *cctx;
    uint8_t *block;  /* block_cap bytes (variable layouts: grown as needed) */
    size_t block_fill, block_nrec; /* bytes and records in it */
    /* variable layouts: the shard's length table so far, records x nvar */
    uint32_t *lens;
    size_t nlens, lens_cap;
    uint8_t *cbuf;   /* ZSTD_compressBound(block_cap) bytes */
    size_t cbuf_cap;
    /* the shard being written, fd < 0 when none */
    int fd;
    char *shard_path;
    uint64_t shard_off, shard_records;
    XXH3_state_t *hash;
    struct nf_block_info *index;
    size_t nindex, index_cap;
    /* totals */
    uint64_t bytes_written;
    int failed, finished;
};

void numafeed_writer_options_init(struct numafeed_writer_options *opt)
{
    memset(opt, 0, sizeof(*opt));
    opt->size = sizeof(*opt);
}

size_t numafeed_writer_record_bytes(const numafeed_writer *w)
{
    return (size_t)w->m.layout.record_bytes;
}

uint64_t numafeed_writer_records(const numafeed_writer *w)
{
    return w->m.records;
}

uint64_t numafeed_writer_bytes_written(const numafeed_writer *w)
{
    return w->bytes_written;
}

unsigned numafeed_writer_shards(const numafeed_writer *w)
{
    return (unsigned)w->m.nshards + (w->fd >= 0);
}

/* Remove a directory we created and the plain files in it (no recursion:
 * the writer creates nothing deeper). */
static void remove_dir(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    rmdir(path);
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nf__error(-errno, "%s: open for fsync: %s", path, strerror(errno));
    int rc = fsync(fd) ? nf__error(-errno, "%s: fsync: %s", path, strerror(errno)) : 0;
    close(fd);
    return rc;
}

static int write_all(numafeed_writer *w, const void *p, size_t len)
{
    const uint8_t *b = p;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(w->fd, b + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            return nf__error(-e, "%s: write of %zu bytes at offset %llu: %s", w->shard_path,
                              len - done, (unsigned long long)(w->shard_off + done), strerror(e));
        }
        done += (size_t)n;
    }
    XXH3_64bits_update(w->hash, p, len);
    w->shard_off += len;
    w->bytes_written += len;
    return 0;
}

static int open_shard(numafeed_writer *w)
{
    char name[32];
    snprintf(name, sizeof(name), "shard-%05zu.nfs", w->m.nshards);
    free(w->shard_path);
    if (asprintf(&w->shard_path, "%s/%s", w->tmp_dir, name) < 0) {
        w->shard_path = NULL;
        return nf__error(-ENOMEM, "out of memory");
    }
    w->fd = open(w->shard_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->fd < 0)
        return nf__error(-errno, "%s: create: %s", w->shard_path, strerror(errno));
    w->shard_off = 0;
    w->shard_records = 0;
    w->nindex = 0;
    XXH3_64bits_reset(w->hash);
    uint8_t h[NF_HEADER_BYTES];
    nf__header_encode(h, w->m.layout.record_bytes, w->m.layout.nvar, NF_SHARD_FLAG_STORED_HASH);
    return write_all(w, h, sizeof(h));
}

static int close_shard(numafeed_writer *w)
{
    /* version 2: the length table of every record of the shard follows the
     * entries (the shard closes right after a block: no record is pending);
     * the blocks' stored hashes come last */
    size_t entries = NF_FOOTER_HEAD_BYTES + w->nindex * NF_INDEX_ENTRY_BYTES;
    size_t lens_end = entries + w->nlens * sizeof(uint32_t);
    size_t fsize = lens_end + w->nindex * NF_STORED_HASH_BYTES;
    uint8_t *footer = malloc(fsize);
    if (!footer)
        return nf__error(-ENOMEM, "out of memory for a footer of %zu bytes", fsize);
    nf__footer_head_encode(footer, (uint32_t)w->nindex, w->shard_records);
    for (size_t i = 0; i < w->nindex; i++)
        nf__index_entry_encode(footer + NF_FOOTER_HEAD_BYTES + i * NF_INDEX_ENTRY_BYTES,
                                &w->index[i]);
    nf__var_len_encode(footer + entries, w->lens, w->nlens);
    nf__stored_hash_encode(footer + lens_end, w->index, w->nindex);
    w->nlens = 0;
    uint8_t t[NF_TRAILER_BYTES];
    nf__trailer_encode(t, w->shard_off, fsize, XXH3_64bits(footer, fsize));
    int rc = write_all(w, footer, fsize);
    free(footer);
    if (!rc)
        rc = write_all(w, t, sizeof(t));
    if (!rc && fsync(w->fd))
        rc = nf__error(-errno, "%s: fsync: %s", w->shard_path, strerror(errno));
    if (close(w->fd) && !rc)
        rc = nf__error(-errno, "%s: close: %s", w->shard_path, strerror(errno));
    w->fd = -1;
    if (rc)
        return rc;
    if (w->m.nshards == w->shards_cap) {
        size_t cap = w->shards_cap ? 2 * w->shards_cap : 16;
        struct nf_manifest_shard *s = realloc(w->m.shards, cap * sizeof(*s));
        if (!s)
            return nf__error(-ENOMEM, "out of memory");
        w->m.shards = s;
        w->shards_cap = cap;
    }
    struct nf_manifest_shard *s = &w->m.shards[w->m.nshards];
    if (!(s->file = strdup(strrchr(w->shard_path, '/') + 1)))
        return nf__error(-ENOMEM, "out of memory");
    s->records = w->shard_records;
    s->bytes = w->shard_off;
    s->xxh3 = XXH3_64bits_digest(w->hash);
    w->m.nshards++;
    return 0;
}

/* Compress (or not) the filled part of the block buffer and write it. */
static int flush_block(numafeed_writer *w)
{
    if (w->block_fill == 0)
        return 0;
    int rc;
    if (w->fd < 0 && (rc = open_shard(w)))
        return rc;
    if (w->nindex == w->index_cap) {
        /* A shard's index is bounded by the footer's 32-bit block count. */
        if (w->index_cap >= UINT32_MAX / 2)
            return nf__error(-EFBIG, "%s: too many blocks in one shard", w->shard_path);
        size_t cap = w->index_cap ? 2 * w->index_cap : 256;
        struct nf_block_info *ix = realloc(w->index, cap * sizeof(*ix));
        if (!ix)
            return nf__error(-ENOMEM, "out of memory");
        w->index = ix;
        w->index_cap = cap;
    }
    struct nf_block_info *b = &w->index[w->nindex];
    memset(b, 0, sizeof(*b));
    b->offset = w->shard_off;
    b->decoded_size = (uint32_t)w->block_fill;
    b->records = (uint32_t)w->block_nrec;
    b->xxh3 = XXH3_64bits(w->block, w->block_fill);
    b->first_record = w->shard_records;
    const void *out = w->block;
    size_t out_len = w->block_fill;
    b->codec = NF_CODEC_RAW;
    if (w->codec == NUMAFEED_CODEC_ZSTD) {
        size_t n = ZSTD_compress2(w->cctx, w->cbuf, w->cbuf_cap, w->block, w->block_fill);
        if (ZSTD_isError(n))
            return nf__error(-EIO, "%s: zstd: %s", w->shard_path, ZSTD_getErrorName(n));
        if (n < w->block_fill) { /* incompressible blocks stay raw: cheaper to read */
            out = w->cbuf;
            out_len = n;
            b->codec = NF_CODEC_ZSTD;
        }
    }
    b->stored_size = (uint32_t)out_len;
    /* a raw block's stored bytes are its decoded bytes, already hashed */
    b->stored_xxh3 = b->codec == NF_CODEC_RAW ? b->xxh3 : XXH3_64bits(out, out_len);
    if ((rc = write_all(w, out, out_len)))
        return rc;
    w->nindex++;
    w->shard_records += b->records;
    w->block_fill = 0;
    w->block_nrec = 0;
    if (w->shard_off >= w->shard_bytes)
        return close_shard(w);
    return 0;
}

static int is_empty_or_dataset(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0, manifest = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        n++;
        manifest |= !strcmp(e->d_name, NF_MANIFEST_NAME);
    }
    closedir(d);
    return n == 0 || manifest;
}

/* Refuse an existing output unless force may replace it. */
static int check_out(const char *out_dir, int force)
{
    struct stat st;
    if (lstat(out_dir, &st)) {
        if (errno == ENOENT)
            return 0;
        return nf__error(-errno, "%s: %s", out_dir, strerror(errno));
    }
    if (!force)
        return nf__error(-EEXIST, "%s already exists (remove it, or use force to replace a "
                          "dataset)", out_dir);
    if (!S_ISDIR(st.st_mode) || !is_empty_or_dataset(out_dir))
        return nf__error(-EEXIST, "%s exists and is neither a numafeed dataset nor an empty "
                          "directory: refusing to replace it", out_dir);
    return 0;
}

/* The compression buffer holds any block of up to n bytes. */
static int grow_cbuf(numafeed_writer *w, size_t n)
{
    size_t need = ZSTD_compressBound(n);
    if (need <= w->cbuf_cap)
        return 0;
    uint8_t *p = realloc(w->cbuf, need);
    if (!p)
        return nf__error(-ENOMEM, "out of memory for a %zu-byte compression buffer", need);
    w->cbuf = p;
    w->cbuf_cap = need;
    return 0;
}

static int resolve_options(numafeed_writer *w, const struct numafeed_writer_options *o)
{
    w->codec = o->codec == NUMAFEED_CODEC_DEFAULT ? NUMAFEED_CODEC_ZSTD : o->codec;
    if (w->codec != NUMAFEED_CODEC_NONE && w->codec != NUMAFEED_CODEC_ZSTD)
        return nf__error(-EINVAL, "unknown codec %d", o->codec);
    int level = o->level ? o->level : 3;
    if (w->codec == NUMAFEED_CODEC_ZSTD && (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()))
        return nf__error(-EINVAL, "zstd level %d: allowed %d to %d", level, ZSTD_minCLevel(),
                          ZSTD_maxCLevel());
    uint64_t bb = o->block_bytes ? o->block_bytes : NF_DEFAULT_BLOCK_BYTES;
    uint64_t rb = w->m.layout.record_bytes;
    if (bb > NF_BLOCK_CAP)
        return nf__error(-EINVAL, "block size %llu bytes: at most %u", (unsigned long long)bb,
                          NF_BLOCK_CAP);
    w->max_record = o->max_record_bytes ? o->max_record_bytes : NF_DEFAULT_MAX_RECORD;
    if (w->max_record > NF_BLOCK_CAP)
        return nf__error(-EINVAL, "max_record_bytes %llu: at most %u (the block cap)",
                         (unsigned long long)w->max_record, NF_BLOCK_CAP);
    if (w->m.layout.nvar) {
        /* variable records: a block closes once it reaches bb; a record
         * larger than that has a block of its own; the buffer grows */
        w->block_target = (size_t)bb;
        w->block_cap = (size_t)bb;
    } else {
        size_t records = (size_t)(bb / rb ? bb / rb : 1); /* at least one record */
        w->block_cap = records * (size_t)rb;             /* <= NF_BLOCK_CAP */
    }
    w->shard_bytes = o->shard_bytes ? o->shard_bytes : NF_DEFAULT_SHARD_BYTES;
    w->force = o->force ? 1 : 0;
    w->m.block_bytes = w->block_cap;
    snprintf(w->m.codec, sizeof(w->m.codec), "%s", w->codec == NUMAFEED_CODEC_ZSTD ? "zstd" : "none");
    if (w->codec == NUMAFEED_CODEC_ZSTD) {
        w->cctx = ZSTD_createCCtx();
        if (!w->cctx || grow_cbuf(w, w->block_cap))
            return nf__error(-ENOMEM, "out of memory for zstd");
        /* The frame checksum lets zstd itself catch corruption; the content
         * size in the frame is what the reader cross-checks with the index. */
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level);
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_contentSizeFlag, 1);
    }
    w->block = malloc(w->block_cap);
    w->hash = XXH3_createState();
    if (!w->block || !w->hash)
        return nf__error(-ENOMEM, "out of memory for a %zu-byte block", w->block_cap);
    return 0;
}

/* parent/.name.tmp-PID-XXXXXX: hidden, next to the output so the final
 * rename stays within one filesystem. */
static int make_tmp(numafeed_writer *w)
{
    char *a = strdup(w->out_dir), *b = strdup(w->out_dir);
    int rc = 0;
    if (!a || !b) {
        rc = nf__error(-ENOMEM, "out of memory");
        goto out;
    }
    size_t len = strlen(b);
    while (len > 1 && b[len - 1] == '/')
        b[--len] = '\0';
    const char *base = basename(b);
    if (!*base || !strcmp(base, ".") || !strcmp(base, "..") || !strcmp(base, "/")) {
        rc = nf__error(-EINVAL, "'%s' is not usable as an output directory name", w->out_dir);
        goto out;
    }
    w->parent = strdup(dirname(a));
    if (!w->parent) {
        rc = nf__error(-ENOMEM, "out of memory");
        goto out;
    }
    /* Not mkdtemp: its 0700 would become the dataset's mode. mkdir with
     * 0777 lets the umask decide, as for any directory the user creates. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned salt = (unsigned)ts.tv_nsec ^ ((unsigned)getpid() << 16);
    for (int tries = 0; tries < 100; tries++) {
        free(w->tmp_dir);
        if (asprintf(&w->tmp_dir, "%s/.%s.tmp-%ld-%06x", w->parent, base, (long)getpid(),
                     (salt + (unsigned)tries * 2654435761u) & 0xffffffu) < 0) {
            w->tmp_dir = NULL;
            rc = nf__error(-ENOMEM, "out of memory");
            goto out;
        }
        if (mkdir(w->tmp_dir, 0777) == 0)
            goto out;
        if (errno != EEXIST)
            break;
    }
    rc = nf__error(-errno, "%s: cannot create a temporary directory there: %s", w->parent,
                    strerror(errno));
    free(w->tmp_dir);
    w->tmp_dir = NULL;
out:
    free(a);
    free(b);
    return rc;
}

int numafeed_writer_create(const char *out_dir, const struct numafeed_field *fields,
                           size_t nfields, const struct numafeed_writer_options *opt,
                           numafeed_writer **out)
{
    struct numafeed_writer_options o;
    *out = NULL;
    numafeed_writer_options_init(&o);
    if (opt) {
        /* an older caller's smaller struct leaves the later fields at their
         * defaults */
        if (opt->size < offsetof(struct numafeed_writer_options, codec) || opt->size > sizeof(o))
            return nf__error(-EINVAL, "writer options: size %zu is not one this library "
                             "knows (call numafeed_writer_options_init)", opt->size);
        memcpy(&o, opt, opt->size);
    }
    opt = &o;
    if (!out_dir || !*out_dir)
        return nf__error(-EINVAL, "no output directory");
    numafeed_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return nf__error(-ENOMEM, "out of memory");
    w->fd = -1;
    int rc;
    if (!(w->out_dir = strdup(out_dir)))
        rc = nf__error(-ENOMEM, "out of memory");
    else if (!(rc = nf__layout_build(fields, nfields, &w->m.layout)) &&
             !(rc = resolve_options(w, opt)) && !(rc = check_out(out_dir, opt->force)))
        rc = make_tmp(w);
    if (rc) {
        numafeed_writer_destroy(w);
        return rc;
    }
    *out = w;
    return 0;
}

int numafeed_writer_append(numafeed_writer *w, const void *records, size_t count)
{
    if (w->failed || w->finished)
        return nf__error(-EINVAL, "writer for %s: %s", w->out_dir,
                          w->finished ? "already finished" : "an earlier call failed");
    if (w->m.layout.nvar)
        return nf__error(-EINVAL, "writer for %s: the layout has variable fields: add records "
                         "one at a time with numafeed_writer_add", w->out_dir);
    const uint8_t *p = records;
    size_t rb = (size_t)w->m.layout.record_bytes;
    while (count) {
        size_t room = (w->block_cap - w->block_fill) / rb;
        size_t n = count < room ? count : room;
        memcpy(w->block + w->block_fill, p, n * rb);
        w->block_fill += n * rb;
        w->block_nrec += n;
        w->m.records += n;
        p += n * rb;
        count -= n;
        if (w->block_fill == w->block_cap) {
            int rc = flush_block(w);
            if (rc) {
                w->failed = 1;
                return rc;
            }
        }
    }
    return 0;
}

/* Well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, at most
 * U+10FFFF); the offset of the first bad byte, or len. */
static size_t utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!n || i + n > len)
            return i;
        uint32_t cp = n == 1 ? c : c & (0x7f >> n);
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += n;
    }
    return len;
}

/* One record's fields against the layout; its stored size in *total.
 * Nothing of the writer changes: a refused record leaves it usable. */
static int check_record(const numafeed_writer *w, const void *const *data, const size_t *sizes,
                        uint64_t *total)
{
    const struct nf_layout *lay = &w->m.layout;
    uint64_t rec = w->m.records, t = lay->record_bytes;
    for (unsigned f = 0; f < lay->nfields; f++) {
        const struct nf_field *fd = &lay->fields[f];
        if (sizes[f] && !data[f])
            return nf__error(-EINVAL, "record %llu, field '%s': no data for %zu bytes",
                             (unsigned long long)rec, fd->name, sizes[f]);
        if (fd->kind == NF_KIND_FIXED) {
            if (sizes[f] != fd->bytes)
                return nf__error(-EINVAL, "record %llu, field '%s': %zu bytes, the layout has "
                                 "%llu", (unsigned long long)rec, fd->name, sizes[f],
                                 (unsigned long long)fd->bytes);
            continue;
        }
        size_t elem = nf__dtype_size(fd->dtype);
        if (sizes[f] % elem)
            return nf__error(-EINVAL, "record %llu, field '%s': %zu bytes is not a whole number "
                             "of %s elements", (unsigned long long)rec, fd->name, sizes[f],
                             nf__dtype_name(fd->dtype));
        size_t bad;
        if (fd->kind == NF_KIND_STR && (bad = utf8_valid(data[f], sizes[f])) != sizes[f])
            return nf__error(-EINVAL, "record %llu, field '%s': not UTF-8 at byte %zu",
                             (unsigned long long)rec, fd->name, bad);
        if (sizes[f] > w->max_record || __builtin_add_overflow(t, sizes[f], &t))
            t = UINT64_MAX;
    }
    if (!lay->nvar) /* a fixed record's size was accepted with the layout */
        t = lay->record_bytes;
    else if (t == UINT64_MAX)
        return nf__error(-EFBIG, "record %llu: more bytes than max_record_bytes (%llu)",
                         (unsigned long long)rec, (unsigned long long)w->max_record);
    else if (t > w->max_record)
        return nf__error(-EFBIG, "record %llu: %llu bytes, more than max_record_bytes (%llu)",
                         (unsigned long long)rec, (unsigned long long)t,
                         (unsigned long long)w->max_record);
    *total = t;
    return 0;
}

/* Room for n more bytes in the block buffer (variable layouts). */
static int block_room(numafeed_writer *w, size_t n)
{
    if (w->block_fill + n <= w->block_cap)
        return 0;
    size_t cap = w->block_fill + n;
    uint8_t *p = realloc(w->block, cap);
    if (!p)
        return nf__error(-ENOMEM, "out of memory for a %zu-byte block", cap);
    w->block = p;
    w->block_cap = cap;
    return w->codec == NUMAFEED_CODEC_ZSTD ? grow_cbuf(w, cap) : 0;
}

/* The record's variable lengths, appended to the shard's table. */
static int push_lens(numafeed_writer *w, const size_t *sizes)
{
    const struct nf_layout *lay = &w->m.layout;
    if (w->nlens + lay->nvar > w->lens_cap) {
        size_t cap = w->lens_cap ? 2 * w->lens_cap : 4096;
        uint32_t *p = realloc(w->lens, cap * sizeof(*p));
        if (!p)
            return nf__error(-ENOMEM, "out of memory for the record lengths");
        w->lens = p;
        w->lens_cap = cap;
    }
    for (unsigned f = 0; f < lay->nfields; f++)
        if (lay->fields[f].kind != NF_KIND_FIXED)
            w->lens[w->nlens++] = (uint32_t)sizes[f]; /* <= max_record <= NF_BLOCK_CAP */
    return 0;
}

int numafeed_writer_add(numafeed_writer *w, const void *const *data, const size_t *sizes)
{
    if (w->failed || w->finished)
        return nf__error(-EINVAL, "writer for %s: %s", w->out_dir,
                          w->finished ? "already finished" : "an earlier call failed");
    if (!data || !sizes)
        return nf__error(-EINVAL, "numafeed_writer_add: data or sizes is NULL");
    const struct nf_layout *lay = &w->m.layout;
    uint64_t total = 0;
    int rc = check_record(w, data, sizes, &total);
    if (rc)
        return rc;
    /* a block closes before a record that would take it past the target */
    if (lay->nvar && w->block_nrec && w->block_fill + total > w->block_target &&
        (rc = flush_block(w)))
        goto fail;
    if (lay->nvar && ((rc = block_room(w, (size_t)total)) || (rc = push_lens(w, sizes))))
        goto fail;
    /* stored as: the fixed fields at their offsets, then each variable
     * field's bytes in field order */
    uint8_t *rec = w->block + w->block_fill, *var = rec + lay->record_bytes;
    for (unsigned f = 0; f < lay->nfields; f++) {
        const struct nf_field *fd = &lay->fields[f];
        uint8_t *to = fd->kind == NF_KIND_FIXED ? rec + fd->offset : var;
        if (sizes[f])
            memcpy(to, data[f], sizes[f]);
        if (fd->kind != NF_KIND_FIXED)
            var += sizes[f];
    }
    w->block_fill += (size_t)total;
    w->block_nrec++;
    w->m.records++;
    if (!lay->nvar && w->block_fill == w->block_cap && (rc = flush_block(w)))
        goto fail;
    return 0;
fail:
    w->failed = 1;
    return rc;
}

/* Swap the finished temporary into place. */
static int publish(numafeed_writer *w)
{
    int rc = check_out(w->out_dir, w->force);
    if (rc)
        return rc;
    if (renameat2(AT_FDCWD, w->tmp_dir, AT_FDCWD, w->out_dir, RENAME_NOREPLACE) == 0)
        goto done;
    if (errno != EEXIST && errno != ENOTEMPTY && errno != EINVAL)
        return nf__error(-errno, "rename %s -> %s: %s", w->tmp_dir, w->out_dir, strerror(errno));
    if (errno == EINVAL) {
        /* The filesystem has no renameat2 flags: check_out just ran, so a
         * plain rename only races with someone creating out_dir now. */
        struct stat st;
        if (!w->force && lstat(w->out_dir, &st) == 0)
            return nf__error(-EEXIST, "%s appeared while packing", w->out_dir);
        if (rename(w->tmp_dir, w->out_dir) == 0)
            goto done;
        if (!w->force || (errno != EEXIST && errno != ENOTEMPTY))
            return nf__error(-errno, "rename %s -> %s: %s", w->tmp_dir, w->out_dir,
                              strerror(errno));
    } else if (!w->force) {
        return nf__error(-EEXIST, "%s appeared while packing", w->out_dir);
    }
    /* Replace: atomic exchange where supported, else move the old aside. */
    if (renameat2(AT_FDCWD, w->tmp_dir, AT_FDCWD, w->out_dir, RENAME_EXCHANGE) == 0) {
        remove_dir(w->tmp_dir); /* now holds the old dataset */
        goto done;
    }
    char *aside;
    if (asprintf(&aside, "%s.old", w->tmp_dir) < 0)
        return nf__error(-ENOMEM, "out of memory");
    if (rename(w->out_dir, aside) || rename(w->tmp_dir, w->out_dir)) {
        rc = nf__error(-errno, "replacing %s: %s", w->out_dir, strerror(errno));
        rename(aside, w->out_dir); /* put the old one back if it was moved */
        free(aside);
        return rc;
    }
    remove_dir(aside);
    free(aside);
done:
    free(w->tmp_dir);
    w->tmp_dir = NULL;
    return fsync_path(w->parent, O_DIRECTORY);
}

int numafeed_writer_finish(numafeed_writer *w)
{
    if (w->failed || w->finished)
        return nf__error(-EINVAL, "writer for %s: %s", w->out_dir,
                          w->finished ? "already finished" : "an earlier call failed");
    /* records that are all empty leave nothing for a block to hold (a
     * block has at least one byte): only possible when every record is */
    int rc = w->block_nrec && !w->block_fill
                 ? nf__error(-EINVAL, "%s: every record is 0 bytes: a dataset holds at least "
                             "one byte", w->out_dir)
                 : flush_block(w);
    if (!rc && w->fd >= 0)
        rc = close_shard(w);
    if (!rc && w->m.records == 0)
        rc = nf__error(-EINVAL, "%s: no records were written", w->out_dir);
    char *mpath = NULL;
    if (!rc && asprintf(&mpath, "%s/%s", w->tmp_dir, NF_MANIFEST_NAME) < 0) {
        mpath = NULL;
        rc = nf__error(-ENOMEM, "out of memory");
    }
    if (!rc)
        rc = nf__manifest_write(mpath, &w->m);
    free(mpath);
    if (!rc)
        rc = fsync_path(w->tmp_dir, O_DIRECTORY);
    if (!rc)
        rc = publish(w);
    if (rc)
        w->failed = 1;
    else
        w->finished = 1;
    return rc;
}

void numafeed_writer_destroy(numafeed_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp_dir)
        remove_dir(w->tmp_dir);
    free(w->tmp_dir);
    free(w->parent);
    free(w->out_dir);
    free(w->shard_path);
    free(w->index);
    free(w->lens);
    free(w->block);
    free(w->cbuf);
    ZSTD_freeCCtx(w->cctx);
    XXH3_freeState(w->hash);
    nf__manifest_free(&w->m);
    free(w);
}
