/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared between the files of src/io only (the rest of numafeed uses
 * io/io.h): the dataset and reader structs and the backend table.
 */
#ifndef NUMAFEED_IO_PRIVATE_H
#define NUMAFEED_IO_PRIVATE_H

#include <liburing.h>
#include <zstd.h>

#include "io/io.h"

struct nf_shard {
    const char *name; /* the manifest's file name (owned by the manifest) */
    char *path;       /* dir/name */
    int fd;           /* buffered reads */
    int dfd;          /* O_DIRECT, or -1 */
    const uint8_t *map; /* read-only mapping of the whole file, or NULL */
    uint64_t first_record;
    struct nf_shard_index idx;
};

struct nf_dataset {
    struct nf_manifest m;
    uint32_t nshards;
    struct nf_shard *shards;
    uint64_t records;
    uint32_t max_decoded, max_stored;
    bool stored_hashes;    /* every shard's index has them */
    int direct;            /* every shard has a dfd */
    char direct_why[320];  /* why not, when direct is 0 */
    /* the global block list, shard by shard: block g is block gblock_block[g]
     * of shard gblock_shard[g], and holds gblock_records[g] records */
    uint32_t nblocks;
    uint32_t *gblock_shard, *gblock_block, *gblock_records;
    /* version 2: every record's variable lengths, records x nvar, in global
     * record order (the shards' tables, joined), and each variable field's
     * largest length */
    uint32_t *var_len;
    uint32_t *var_max;
    uint32_t *rec_off;  /* version 2: each record's byte offset in its block */
    /* mapped: 1 once a block's bytes in the mapping were verified (pipes
     * with verify_once), read and written with atomics by any reader */
    uint8_t *verified;
};

/* XXH3_64bits of a whole file, read in 1 MiB pieces. */
int nf__file_xxh3(int fd, const char *name, uint64_t size, uint64_t *out);

/*
 * One read in flight: the block's extent [base, base + want) goes to buf.
 * With O_DIRECT base and want are rounded out to NF_IO_DIRECT_ALIGN and the
 * block's bytes start at buf + (block offset - base); need is the length up
 * to the block's end, which is all that must arrive (a rounded-up length may
 * run past end of file).
 */
struct nf_slot {
    uint64_t tag;
    uint32_t shard, block;
    uint8_t *buf;
    int fd;
    int in_use;
    int direct;   /* fd is the O_DIRECT descriptor */
    uint64_t base;
    size_t want, need, done;
    unsigned retries;
};

struct nf_reader;

/*
 * A backend moves bytes and nothing else: queue() asks for the slot's
 * missing bytes [done, want) (possibly capped by max_op_bytes), reap()
 * hands every finished kernel read to nf__io_progress(), which decides
 * whether the slot is complete or needs another queue(). The short-read,
 * EOF and error policy lives once, in reader.c.
 */
struct nf_io_ops {
    const char *name;
    /* 0, or a negative errno that explains the refusal in why[]. */
    int (*init)(struct nf_reader *r, unsigned depth, char *why, size_t why_len);
    void (*fini)(struct nf_reader *r);
    int (*queue)(struct nf_reader *r, unsigned slot);
    int (*flush)(struct nf_reader *r);
    /* Progress until at least `min` slots have become complete since the
     * call began, or nothing is in flight. */
    int (*reap)(struct nf_reader *r, unsigned min);
};

extern const struct nf_io_ops nf__io_uring_ops;
extern const struct nf_io_ops nf__io_pread_ops;

struct nf_reader {
    const struct nf_dataset *ds;
    const struct nf_io_ops *ops;
    char reason[192];
    unsigned depth;
    int direct;
    size_t max_op_bytes;
    ZSTD_DCtx *dctx;
    struct nf_slot *slots;
    unsigned *free_list, nfree;  /* slots not in use */
    unsigned *ready, nready;     /* complete slots, not yet returned by wait */
    int *ready_rc;
    unsigned inflight;           /* in use and not complete */
    /* backend state */
    struct io_uring ring;
    int ring_ok;
    unsigned *pending, npending; /* pread: queued slots */
};

/* Account for one finished kernel read of `res` bytes (or -errno). */
void nf__io_progress(struct nf_reader *r, unsigned slot, long res);
/* Bytes the next kernel read of this slot asks for, at most max_op_bytes. */
size_t nf__io_op_len(const struct nf_reader *r, const struct nf_slot *s);

#endif
