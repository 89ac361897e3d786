// SPDX-License-Identifier: Apache-2.0
/*
 * An open dataset: the manifest, one descriptor per shard and every
 * shard's block index, validated once at open and read-only afterwards so
 * that any number of readers (threads) can share it without locks.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <unistd.h>

#include "io/hash.h"

#include "internal.h"
#include "io/io.h"
#include "io/private.h"

void nf__dataset_options_init(struct nf_dataset_options *o)
{
    memset(o, 0, sizeof(*o));
    o->size = sizeof(*o);
}

int nf__dataset_map_where(const struct nf_dataset *ds, const void *addr, uint32_t *shard,
                          uint64_t *offset)
{
    for (uint32_t i = 0; i < ds->nshards; i++) {
        const uint8_t *m = ds->shards[i].map;
        if (m && (const uint8_t *)addr >= m &&
            (uintptr_t)((const uint8_t *)addr - m) < ds->shards[i].idx.file_size) {
            *shard = i;
            *offset = (uint64_t)((const uint8_t *)addr - m);
            return 0;
        }
    }
    return -ENOENT;
}

const uint8_t *nf__dataset_shard_map(const struct nf_dataset *ds, uint32_t shard, size_t *len)
{
    if (shard >= ds->nshards || !ds->shards[shard].map)
        return NULL;
    *len = (size_t)ds->shards[shard].idx.file_size;
    return ds->shards[shard].map;
}

int nf__dataset_verified(const struct nf_dataset *ds, uint32_t g)
{
    return ds->verified && g < ds->nblocks && __atomic_load_n(&ds->verified[g], __ATOMIC_ACQUIRE);
}

void nf__dataset_set_verified(const struct nf_dataset *ds, uint32_t g)
{
    if (ds->verified && g < ds->nblocks)
        __atomic_store_n(&ds->verified[g], 1, __ATOMIC_RELEASE);
}

const char *nf__dataset_shard_path(const struct nf_dataset *ds, uint32_t shard)
{
    return shard < ds->nshards ? ds->shards[shard].path : "";
}

int nf__dataset_map(struct nf_dataset *ds)
{
    /* a shard truncated under its mapping is an error, not a signal */
    int rc = nf__guard_install();
    if (rc)
        return rc;
    if (!ds->verified && !(ds->verified = calloc(ds->nblocks ? ds->nblocks : 1, 1)))
        return nf__error(-ENOMEM, "out of memory");
    for (uint32_t i = 0; i < ds->nshards; i++) {
        struct nf_shard *s = &ds->shards[i];
        if (s->map)
            continue;
        void *p = mmap(NULL, (size_t)s->idx.file_size, PROT_READ, MAP_SHARED, s->fd, 0);
        if (p == MAP_FAILED) {
            int err = errno;
            return nf__error(-err, "mmap(%s, %llu bytes): %s", s->path,
                              (unsigned long long)s->idx.file_size, strerror(err));
        }
        s->map = p;
    }
    return 0;
}

/* Pages sampled per dataset by nf__dataset_pick_io: runs of RUN pages at
 * RUNS evenly spaced places over all shards' bytes together. */
#define RESIDENT_RUNS 256u
#define RESIDENT_RUN_PAGES 64u

/* mincore() of one run of shard s at byte offset off: resident pages out
 * of those asked; 0 pages when the mapping or the call fails. */
static void sample_run(const struct nf_shard *s, uint64_t off, size_t page, size_t *res,
                       size_t *asked)
{
    uint64_t size = s->idx.file_size;
    off &= ~(uint64_t)(page - 1);
    size_t len = RESIDENT_RUN_PAGES * page;
    if (off + len > size)
        len = (size_t)(size - off);
    if (!len)
        return;
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, s->fd, (off_t)off);
    if (m == MAP_FAILED)
        return;
    unsigned char vec[RESIDENT_RUN_PAGES];
    size_t n = (len + page - 1) / page;
    if (mincore(m, len, vec) == 0) {
        for (size_t i = 0; i < n; i++)
            *res += vec[i] & 1;
        *asked += n;
    }
    munmap(m, len);
}

int nf__dataset_pick_io(const struct nf_dataset *ds, char *why, size_t why_len)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < ds->nshards; i++)
        total += ds->shards[i].idx.file_size;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), res = 0, asked = 0;
    /* walk the shards once, sampling at every multiple of the stride */
    uint64_t stride = total / RESIDENT_RUNS + 1, at = 0, base = 0;
    for (uint32_t i = 0; i < ds->nshards; i++) {
        uint64_t size = ds->shards[i].idx.file_size;
        for (; at < base + size; at += stride)
            sample_run(&ds->shards[i], at - base, page, &res, &asked);
        base += size;
    }
    bool resident = asked && res * 10 >= asked * 9;
    snprintf(why, why_len, "auto: %zu of %zu sampled shard pages in the page cache: %s", res,
             asked, resident ? "mmap" : "io_uring");
    return resident ? NF_IO_MMAP : NF_IO_AUTO;
}

const uint8_t *nf__dataset_block_map(const struct nf_dataset *ds, uint32_t shard, uint32_t block)
{
    if (shard >= ds->nshards || !ds->shards[shard].map ||
        block >= ds->shards[shard].idx.nblocks)
        return NULL;
    /* the index was validated at open: the block lies inside the file */
    return ds->shards[shard].map + ds->shards[shard].idx.blocks[block].offset;
}

void nf__dataset_close(struct nf_dataset *ds)
{
    if (!ds)
        return;
    for (uint32_t i = 0; i < ds->nshards; i++) {
        struct nf_shard *s = &ds->shards[i];
        if (s->fd >= 0)
            close(s->fd);
        if (s->dfd >= 0)
            close(s->dfd);
        if (s->map)
            munmap((void *)s->map, (size_t)s->idx.file_size);
        free(s->path);
        nf__shard_index_free(&s->idx);
    }
    free(ds->gblock_shard);
    free(ds->gblock_block);
    free(ds->gblock_records);
    free(ds->var_len);
    free(ds->var_max);
    free(ds->rec_off);
    free(ds->verified);
    free(ds->shards);
    nf__manifest_free(&ds->m);
    free(ds);
}

int nf__file_xxh3(int fd, const char *name, uint64_t size, uint64_t *out)
{
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = malloc(CHUNK);
    XXH3_state_t *st = XXH3_createState();
    int rc = 0;
    if (!buf || !st) {
        rc = nf__error(-ENOMEM, "%s: out of memory for hashing", name);
        goto out;
    }
    XXH3_64bits_reset(st);
    for (uint64_t off = 0; off < size && !rc; off += CHUNK) {
        size_t len = size - off < CHUNK ? (size_t)(size - off) : CHUNK;
        if (!(rc = nf__pread_full(fd, buf, len, off, name)))
            XXH3_64bits_update(st, buf, len);
    }
    *out = XXH3_64bits_digest(st);
out:
    XXH3_freeState(st);
    free(buf);
    return rc;
}

static int open_shard(struct nf_dataset *ds, uint32_t i, int dirfd, const char *dir,
                      const struct nf_dataset_options *o)
{
    struct nf_shard *s = &ds->shards[i];
    const struct nf_manifest_shard *ms = &ds->m.shards[i];
    if (asprintf(&s->path, "%s/%s", dir, ms->file) < 0) {
        s->path = NULL;
        return nf__error(-ENOMEM, "out of memory");
    }
    s->name = ms->file;
    uint64_t size;
    int rc = nf__open_beneath(dirfd, dir, ms->file, o->follow_symlinks, 0, &s->fd, &size);
    if (rc)
        return nf__error_prefix(rc, "shard %u listed in the manifest", i);
    if (size != ms->bytes)
        return nf__error(NUMAFEED_ECORRUPT, "%s: %llu bytes, the manifest says %llu (truncated or "
                         "replaced)", s->path, (unsigned long long)size,
                         (unsigned long long)ms->bytes);
    rc = nf__shard_load(s->fd, s->path, ms->bytes, &s->idx, NULL);
    if (rc)
        return rc;
    if (s->idx.records != ms->records)
        return nf__error(NUMAFEED_ECORRUPT, "%s: holds %llu records, the manifest says %llu",
                         s->path, (unsigned long long)s->idx.records,
                         (unsigned long long)ms->records);
    if ((rc = nf__shard_layout_check(&s->idx, &ds->m.layout, s->path)))
        return rc;
    if (o->verify_content) {
        uint64_t h;
        if ((rc = nf__file_xxh3(s->fd, s->path, ms->bytes, &h)))
            return rc;
        if (h != ms->xxh3)
            return nf__error(NUMAFEED_ECHECKSUM, "%s: content hash %016llx, the manifest says "
                             "%016llx", s->path, (unsigned long long)h,
                             (unsigned long long)ms->xxh3);
    }
    if (o->direct && ds->direct &&
        nf__open_beneath(dirfd, dir, ms->file, o->follow_symlinks, O_DIRECT, &s->dfd, &size)) {
        /* tmpfs before 6.6 and some FUSE filesystems refuse O_DIRECT: keep
         * buffered reads and say so rather than fail the open. */
        snprintf(ds->direct_why, sizeof(ds->direct_why), "O_DIRECT refused: %s",
                 numafeed_last_error());
        nf__error_clear();
        s->dfd = -1;
        ds->direct = 0;
    }
    s->first_record = ds->records;
    ds->records += s->idx.records;
    if (s->idx.max_decoded > ds->max_decoded)
        ds->max_decoded = s->idx.max_decoded;
    if (s->idx.max_stored > ds->max_stored)
        ds->max_stored = s->idx.max_stored;
    return 0;
}

/* Version 2: the shards' length tables joined in global record order, each
 * length checked to be whole elements of its field, and each field's
 * largest. The shards' own copies are freed. */
static int build_var_table(struct nf_dataset *ds)
{
    const struct nf_layout *lay = &ds->m.layout;
    unsigned nv = lay->nvar;
    if (!nv)
        return 0;
    size_t elem[NF_MAX_FIELDS];
    for (unsigned f = 0; f < lay->nfields; f++)
        if (lay->fields[f].kind != NF_KIND_FIXED)
            elem[lay->fields[f].var] = nf__dtype_size(lay->fields[f].dtype);
    ds->var_len = malloc(ds->records * nv * sizeof(uint32_t) + 1);
    ds->var_max = calloc(nv, sizeof(uint32_t));
    ds->rec_off = malloc(ds->records * sizeof(uint32_t) + 1);
    if (!ds->var_len || !ds->var_max || !ds->rec_off)
        return nf__error(-ENOMEM, "out of memory for %llu record lengths",
                         (unsigned long long)ds->records);
    uint32_t *out = ds->var_len;
    for (uint32_t i = 0; i < ds->nshards; i++) {
        struct nf_shard *s = &ds->shards[i];
        size_t n = (size_t)s->idx.records * nv;
        for (size_t k = 0; k < n; k++) {
            uint32_t len = s->idx.var_len[k];
            if (len % elem[k % nv])
                return nf__error(NUMAFEED_ECORRUPT, "%s: record %llu: variable field %zu is "
                                 "%u bytes, not whole elements of %zu bytes", s->path,
                                 (unsigned long long)(k / nv), k % nv, len, elem[k % nv]);
            if (len > ds->var_max[k % nv])
                ds->var_max[k % nv] = len;
            *out++ = len;
        }
        free(s->idx.var_len);
        s->idx.var_len = NULL;
    }
    /* offsets inside blocks: the shard checked that each block's records
     * add up to its decoded size (< 2^28), so no offset overflows */
    for (uint32_t i = 0; i < ds->nshards; i++) {
        const struct nf_shard *s = &ds->shards[i];
        for (uint32_t b = 0; b < s->idx.nblocks; b++) {
            uint64_t r = s->first_record + s->idx.blocks[b].first_record, off = 0;
            for (uint32_t k = 0; k < s->idx.blocks[b].records; k++, r++) {
                ds->rec_off[r] = (uint32_t)off;
                off += lay->record_bytes;
                for (unsigned v = 0; v < nv; v++)
                    off += ds->var_len[r * nv + v];
            }
        }
    }
    return 0;
}

/* The global block list (io.h): shard by shard, each shard's blocks in order. */
static int build_block_list(struct nf_dataset *ds)
{
    uint64_t nb = 0;
    for (uint32_t s = 0; s < ds->nshards; s++)
        nb += ds->shards[s].idx.nblocks;
    if (nb > UINT32_MAX)
        return nf__error(NUMAFEED_ECORRUPT, "dataset has %llu blocks, more than 2^32-1",
                         (unsigned long long)nb);
    size_t n = nb ? (size_t)nb : 1;
    ds->gblock_shard = malloc(n * sizeof(uint32_t));
    ds->gblock_block = malloc(n * sizeof(uint32_t));
    ds->gblock_records = malloc(n * sizeof(uint32_t));
    if (!ds->gblock_shard || !ds->gblock_block || !ds->gblock_records)
        return nf__error(-ENOMEM, "out of memory for the list of %llu blocks",
                         (unsigned long long)nb);
    uint32_t g = 0;
    for (uint32_t s = 0; s < ds->nshards; s++)
        for (uint32_t b = 0; b < ds->shards[s].idx.nblocks; b++, g++) {
            ds->gblock_shard[g] = s;
            ds->gblock_block[g] = b;
            ds->gblock_records[g] = ds->shards[s].idx.blocks[b].records;
        }
    ds->nblocks = g;
    return 0;
}

int nf__dataset_open(const char *dir, const struct nf_dataset_options *o, struct nf_dataset **out)
{
    struct nf_dataset_options defaults;
    *out = NULL;
    if (!o) {
        nf__dataset_options_init(&defaults);
        o = &defaults;
    } else if (o->size < sizeof(*o)) {
        return nf__error(NUMAFEED_ECONFIG, "dataset options: size %zu, expected %zu", o->size,
                          sizeof(*o));
    }
    /* the directory is opened once; everything is opened beneath it */
    int dirfd;
    int rc = nf__dir_open(dir, &dirfd);
    if (rc)
        return rc;
    struct nf_dataset *ds = calloc(1, sizeof(*ds));
    if (!ds) {
        close(dirfd);
        return nf__error(-ENOMEM, "out of memory");
    }
    rc = nf__manifest_load_at(dirfd, dir, o->follow_symlinks, &ds->m, NULL);
    if (rc) {
        close(dirfd);
        free(ds);
        return rc;
    }
    ds->shards = calloc(ds->m.nshards ? ds->m.nshards : 1, sizeof(*ds->shards));
    if (!ds->shards) {
        close(dirfd);
        nf__dataset_close(ds);
        return nf__error(-ENOMEM, "out of memory");
    }
    ds->direct = o->direct ? 1 : 0;
    snprintf(ds->direct_why, sizeof(ds->direct_why), "%s",
             o->direct ? "" : "not asked for (dataset opened without direct)");
    for (size_t i = 0; i < ds->m.nshards; i++) {
        ds->shards[i].fd = ds->shards[i].dfd = -1;
        ds->nshards = (uint32_t)i + 1;
        if ((rc = open_shard(ds, (uint32_t)i, dirfd, dir, o))) {
            close(dirfd);
            nf__dataset_close(ds);
            return rc;
        }
    }
    close(dirfd);
    ds->stored_hashes = true;
    for (uint32_t i = 0; i < ds->nshards; i++)
        ds->stored_hashes = ds->stored_hashes && ds->shards[i].idx.stored_hashes;
    if (!ds->direct) {
        for (uint32_t i = 0; i < ds->nshards; i++) {
            if (ds->shards[i].dfd >= 0)
                close(ds->shards[i].dfd);
            ds->shards[i].dfd = -1;
        }
    }
    if ((rc = build_block_list(ds)) || (rc = build_var_table(ds))) {
        nf__dataset_close(ds);
        return rc;
    }
    /* Validated by the manifest (shards sum to records) and by each shard
     * (its records equal the manifest's): the two totals agree. */
    *out = ds;
    return 0;
}

uint32_t nf__dataset_blocks(const struct nf_dataset *ds)
{
    return ds->nblocks;
}

const struct nf_block_info *nf__dataset_block(const struct nf_dataset *ds, uint32_t g,
                                              uint32_t *shard, uint32_t *block)
{
    if (g >= ds->nblocks)
        return NULL;
    if (shard)
        *shard = ds->gblock_shard[g];
    if (block)
        *block = ds->gblock_block[g];
    return &ds->shards[ds->gblock_shard[g]].idx.blocks[ds->gblock_block[g]];
}

const uint32_t *nf__dataset_block_records(const struct nf_dataset *ds)
{
    return ds->gblock_records;
}

const uint32_t *nf__dataset_var_len(const struct nf_dataset *ds)
{
    return ds->var_len;
}

const uint32_t *nf__dataset_rec_off(const struct nf_dataset *ds)
{
    return ds->rec_off;
}

uint32_t nf__dataset_var_max(const struct nf_dataset *ds, unsigned v)
{
    return ds->var_max && v < ds->m.layout.nvar ? ds->var_max[v] : 0;
}

uint64_t nf__dataset_records(const struct nf_dataset *ds)
{
    return ds->records;
}

const struct nf_layout *nf__dataset_layout(const struct nf_dataset *ds)
{
    return &ds->m.layout;
}

uint32_t nf__dataset_shard_count(const struct nf_dataset *ds)
{
    return ds->nshards;
}

const char *nf__dataset_shard_name(const struct nf_dataset *ds, uint32_t shard)
{
    return shard < ds->nshards ? ds->shards[shard].name : NULL;
}

const struct nf_shard_index *nf__dataset_shard_index(const struct nf_dataset *ds, uint32_t shard)
{
    return shard < ds->nshards ? &ds->shards[shard].idx : NULL;
}

uint64_t nf__dataset_shard_first(const struct nf_dataset *ds, uint32_t shard)
{
    return shard < ds->nshards ? ds->shards[shard].first_record : ds->records;
}

uint32_t nf__dataset_max_decoded(const struct nf_dataset *ds)
{
    return ds->max_decoded;
}

uint32_t nf__dataset_max_stored(const struct nf_dataset *ds)
{
    return ds->max_stored;
}

bool nf__dataset_stored_hashes(const struct nf_dataset *ds)
{
    return ds->stored_hashes;
}

int nf__dataset_check_stored_hash(const struct nf_dataset *ds, uint32_t g, const void *stored)
{
    if (g >= ds->nblocks)
        return nf__error(-EINVAL, "block %u: the dataset has %u blocks", g, ds->nblocks);
    const struct nf_shard *s = &ds->shards[ds->gblock_shard[g]];
    uint32_t b = ds->gblock_block[g];
    if (!s->idx.stored_hashes)
        return nf__error(-ENOTSUP, "%s: block %u at offset %llu: the shard keeps no hashes of "
                         "stored blocks (header flag 0x%x clear), so its stored bytes cannot be "
                         "checked before decoding", s->path, b,
                         (unsigned long long)s->idx.blocks[b].offset, NF_SHARD_FLAG_STORED_HASH);
    return nf__block_check_stored_hash(s->path, b, &s->idx.blocks[b], stored);
}

int nf__dataset_direct(const struct nf_dataset *ds, const char **why)
{
    if (why)
        *why = ds->direct_why;
    return ds->direct;
}

/* The last of n entries (n >= 1) whose first record is <= key: entries are
 * `stride` bytes apart, each with a uint64_t first record at `field`, in
 * ascending order and never empty. */
static uint32_t last_at_or_below(const void *base, size_t stride, size_t field, uint32_t n,
                                 uint64_t key)
{
    uint32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        uint64_t first;
        memcpy(&first, (const char *)base + (size_t)mid * stride + field, sizeof(first));
        if (first <= key)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

int nf__dataset_locate(const struct nf_dataset *ds, uint64_t record, struct nf_record_loc *loc)
{
    if (record >= ds->records)
        return nf__error(-ERANGE, "record %llu: the dataset holds %llu",
                          (unsigned long long)record, (unsigned long long)ds->records);
    uint32_t s = last_at_or_below(ds->shards, sizeof(*ds->shards),
                                  offsetof(struct nf_shard, first_record), ds->nshards, record);
    const struct nf_shard_index *idx = &ds->shards[s].idx;
    uint64_t r = record - ds->shards[s].first_record;
    uint32_t b = last_at_or_below(idx->blocks, sizeof(*idx->blocks),
                                  offsetof(struct nf_block_info, first_record), idx->nblocks, r);
    loc->shard = s;
    loc->block = b;
    /* < decoded_size <= NF_BLOCK_CAP: no overflow */
    loc->offset = ds->rec_off ? ds->rec_off[record]
                              : (r - idx->blocks[b].first_record) * idx->record_bytes;
    loc->bytes = nf__dataset_record_size(ds, record);
    return 0;
}

uint64_t nf__dataset_record_size(const struct nf_dataset *ds, uint64_t record)
{
    uint64_t n = ds->m.layout.record_bytes;
    unsigned nv = ds->m.layout.nvar;
    for (unsigned v = 0; v < nv && record < ds->records; v++)
        n += ds->var_len[record * nv + v];
    return n;
}
