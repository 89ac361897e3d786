// SPDX-License-Identifier: Apache-2.0
/*
 * `numafeed check`: verify a dataset completely and report every problem
 * instead of stopping at the first, so one run tells the user which shards
 * to re-create. Unlike nf__dataset_open it re-hashes every shard file and
 * decodes every block; it uses plain preads since it reads each byte once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "internal.h"
#include "io/io.h"
#include "io/private.h"

struct check {
    void (*cb)(void *user, const struct nf_check_problem *p);
    void *user;
    struct nf_check_summary *sum;
    int follow; /* symbolic links may leave the dataset directory */
};

/* Report the problem whose message is numafeed_last_error(). */
static void report(struct check *c, const char *file, int64_t block, int64_t offset, int code)
{
    struct nf_check_problem p = {file, block, offset, code, numafeed_last_error()};
    c->sum->problems++;
    if (c->cb)
        c->cb(c->user, &p);
}

/* Decode every block, after checking its stored bytes where the shard keeps
 * their hash (a block that fails that is known damaged and is not decoded:
 * one problem per block); returns -ENOMEM only, block problems are
 * reported. */
static int check_blocks(struct check *c, int fd, const char *path, const char *file,
                        const struct nf_shard_index *idx, ZSTD_DCtx *dctx)
{
    uint8_t *in = malloc(idx->max_stored ? idx->max_stored : 1);
    uint8_t *out = malloc(idx->max_decoded ? idx->max_decoded : 1);
    if (!in || !out) {
        free(in);
        free(out);
        return nf__error(-ENOMEM, "%s: out of memory for a %u-byte block", path, idx->max_decoded);
    }
    for (uint32_t i = 0; i < idx->nblocks; i++) {
        const struct nf_block_info *b = &idx->blocks[i];
        int rc = nf__pread_full(fd, in, b->stored_size, b->offset, path);
        if (!rc && idx->stored_hashes)
            rc = nf__block_check_stored_hash(path, i, b, in);
        if (!rc)
            rc = nf__block_decode(dctx, path, i, b, in, out, idx->max_decoded);
        if (rc)
            report(c, file, i, (int64_t)b->offset, rc);
        c->sum->blocks++;
        c->sum->decoded_bytes += b->decoded_size;
        if (b->codec == NF_CODEC_ZSTD)
            c->sum->zstd_blocks++;
        else
            c->sum->raw_blocks++;
    }
    free(in);
    free(out);
    return 0;
}

static int check_shard(struct check *c, int dirfd, const char *dir, const struct nf_manifest *m,
                       size_t i, ZSTD_DCtx *dctx)
{
    const struct nf_manifest_shard *ms = &m->shards[i];
    char *path;
    if (asprintf(&path, "%s/%s", dir, ms->file) < 0)
        return nf__error(-ENOMEM, "out of memory");
    int fd;
    uint64_t size, h;
    int rc = nf__open_beneath(dirfd, dir, ms->file, c->follow, 0, &fd, &size);
    if (rc) {
        report(c, ms->file, -1, -1, rc);
        free(path);
        return 0;
    }
    c->sum->file_bytes += size;
    /* A size that disagrees is reported and the content hash skipped: it
     * cannot match, and the file may be anything (a huge sparse one). */
    if (size != ms->bytes)
        report(c, ms->file, -1, (int64_t)(size < ms->bytes ? size : ms->bytes),
               nf__error(NUMAFEED_ECORRUPT, "%s: %llu bytes, the manifest says %llu%s", path,
                          (unsigned long long)size, (unsigned long long)ms->bytes,
                          size < ms->bytes ? " (truncated)" : ""));
    else if ((rc = nf__file_xxh3(fd, path, size, &h)) == -ENOMEM)
        goto out;
    else if (rc)
        report(c, ms->file, -1, -1, rc);
    else if (h != ms->xxh3)
        report(c, ms->file, -1, -1,
               nf__error(NUMAFEED_ECHECKSUM, "%s: content hash %016llx, the manifest says %016llx",
                          path, (unsigned long long)h, (unsigned long long)ms->xxh3));
    struct nf_shard_index idx;
    struct nf_where where = {-1, 0};
    rc = nf__shard_load(fd, path, size, &idx, &where);
    if (rc == -ENOMEM)
        goto out;
    if (rc) {
        report(c, ms->file, where.block, (int64_t)where.offset, rc);
        rc = 0;
        goto out;
    }
    c->sum->records += idx.records;
    c->sum->stored_hash_shards += idx.stored_hashes;
    if (idx.records != ms->records)
        report(c, ms->file, -1, (int64_t)idx.footer_offset + 8,
               nf__error(NUMAFEED_ECORRUPT, "%s: holds %llu records, the manifest says %llu", path,
                          (unsigned long long)idx.records, (unsigned long long)ms->records));
    if ((rc = nf__shard_layout_check(&idx, &m->layout, path)))
        report(c, ms->file, -1, idx.record_bytes != m->layout.record_bytes ? 24 : 20, rc);
    rc = check_blocks(c, fd, path, ms->file, &idx, dctx);
    nf__shard_index_free(&idx);
out:
    close(fd);
    free(path);
    return rc;
}

int nf__check_dataset(const char *dir, int follow,
                       void (*problem)(void *user, const struct nf_check_problem *p),
                       void *user, struct nf_check_summary *sum)
{
    struct check c = {problem, user, sum, follow};
    memset(sum, 0, sizeof(*sum));
    struct nf_manifest m;
    long long pos = -1;
    int dirfd;
    int rc = nf__dir_open(dir, &dirfd);
    if (!rc && (rc = nf__manifest_load_at(dirfd, dir, follow, &m, &pos)))
        close(dirfd);
    if (rc) {
        if (rc == -ENOMEM)
            return rc;
        report(&c, NF_MANIFEST_NAME, -1, pos, rc);
        return (int)sum->problems;
    }
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (!dctx) {
        close(dirfd);
        nf__manifest_free(&m);
        return nf__error(-ENOMEM, "out of memory");
    }
    sum->shards = (uint32_t)m.nshards;
    sum->record_bytes = m.layout.record_bytes;
    for (size_t i = 0; i < m.nshards && rc == 0; i++)
        rc = check_shard(&c, dirfd, dir, &m, i, dctx);
    close(dirfd);
    /* A count the shards contradict was reported per shard; the manifest's
     * own total was checked against its shard list when it was parsed. */
    ZSTD_freeDCtx(dctx);
    nf__manifest_free(&m);
    if (rc)
        return rc;
    return sum->problems > (uint64_t)INT32_MAX ? INT32_MAX : (int)sum->problems;
}
