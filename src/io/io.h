/* SPDX-License-Identifier: Apache-2.0 */
/*
 * src/io: the dataset format (manifest + shard files), the writer, the
 * checker and the per-thread block reader. This header is the whole
 * interface of src/io to the rest of numafeed; docs/format.md is the byte
 * level reference of what is on disk.
 *
 * Nothing here knows about threads or GPUs. The intended use:
 *   1. once per process: nf__dataset_open() parses the manifest, opens
 *      every shard, validates header, footer and trailer and keeps the block
 *      index in memory. The dataset is read-only afterwards, so any number of
 *      threads may use it at once.
 *   2. once per worker thread: nf__reader_create() makes a reader with its
 *      own io_uring (or the pread backend) and its own ZSTD_DCtx. A reader
 *      is used by one thread at a time.
 *   3. per block: nf__reader_submit() up to the queue depth, then
 *      nf__reader_wait() for completions and nf__reader_decode() each one
 *      (hash check and zstd decode into a destination the caller sized from
 *      the index); or nf__reader_read_block() / nf__reader_read_record()
 *      for one synchronous block.
 *
 * Errors are 0 or a negative code (negated errno or NUMAFEED_E*), with the
 * details (shard file, block, byte offset) in numafeed_last_error().
 */
#ifndef NUMAFEED_IO_H
#define NUMAFEED_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "numafeed.h"

/* ---- on-disk constants (docs/format.md) --------------------------------- */

/* Version 1: fixed-size records. Version 2: records with variable-length
 * fields beside fixed ones (docs/format.md); a writer writes 1 whenever the
 * layout has no variable field, so such datasets read everywhere. */
#define NF_FORMAT_VERSION 2u
#define NF_FORMAT_VERSION_FIXED 1u
#define NF_MANIFEST_NAME "manifest.json"
/* A manifest larger than this is refused before it is read (a million shards
 * fit in far less). */
#define NF_MANIFEST_MAX_BYTES (64u << 20)
/* Shards a manifest may list: far more than any dataset needs (a million
 * 1 GiB shards is a petabyte), few enough that their index fits. */
#define NF_MANIFEST_MAX_SHARDS 1000000u
#define NF_HEADER_BYTES 64u
#define NF_FOOTER_HEAD_BYTES 16u
#define NF_INDEX_ENTRY_BYTES 32u
#define NF_TRAILER_BYTES 32u
/* Header flag bit 0 (offset 12): the footer ends with a table of one XXH3-64
 * per block of its stored bytes, as on disk, so that they can be checked
 * before a decoder that does not survive damaged input (nvCOMP's zstd on the
 * GPU) sees them. Every other bit is reserved. */
#define NF_SHARD_FLAG_STORED_HASH 1u
#define NF_STORED_HASH_BYTES 8u
/* The largest decoded block the reader accepts: bounds every allocation a
 * lying index could ask for. */
#define NF_BLOCK_CAP (256u << 20)
/* Default decoded bytes per block; docs/format.md has the measurements. */
#define NF_DEFAULT_BLOCK_BYTES (256u << 10)
#define NF_DEFAULT_SHARD_BYTES (1ull << 30)
/* The largest record a writer accepts by default (numafeed_writer_options
 * max_record_bytes): far above any image or document, far below the block
 * cap, so that a batch of them still fits a loader's ring. */
#define NF_DEFAULT_MAX_RECORD (64ull << 20)
#define NF_MAX_DIMS 8u
#define NF_MAX_FIELDS 256u
#define NF_NAME_MAX 63u

enum nf_codec { NF_CODEC_RAW = 0, NF_CODEC_ZSTD = 1 };

/* ---- record layout ------------------------------------------------------ */

/* Index into the fixed dtype table; the order is the one docs/format.md lists. */
int nf__dtype_lookup(const char *name);           /* index or -EINVAL */
const char *nf__dtype_name(int dtype);           /* NULL if out of range */
size_t nf__dtype_size(int dtype);                /* bytes; 0 if out of range */

/* What a field holds: a fixed array, or a variable-length 1-D run of
 * elements (bytes, a UTF-8 string, an array of a numeric dtype). */
enum nf_kind { NF_KIND_FIXED = 0, NF_KIND_BYTES = 1, NF_KIND_STR = 2, NF_KIND_ARRAY = 3 };

struct nf_field {
    char name[NF_NAME_MAX + 1];
    int kind;        /* enum nf_kind */
    int dtype;       /* the element's: uint8 for bytes and str */
    unsigned ndim;   /* fixed: its shape's; variable: 1 */
    uint64_t shape[NF_MAX_DIMS];
    uint64_t offset; /* fixed: byte offset within a record's fixed part */
    uint64_t bytes;  /* fixed: dtype size times the product of shape; variable: 0 */
    unsigned var;    /* variable: its index among the variable fields */
};

struct nf_layout {
    unsigned nfields;
    struct nf_field *fields; /* malloc'd */
    /* Bytes of a record's fixed fields: the whole record without variable
     * fields (>= 1 then); 0 and more with them. A stored record is its
     * fixed part, then each variable field's bytes in field order. */
    uint64_t record_bytes;
    unsigned nvar;           /* variable fields */
};

/* Validate public field descriptions and build a layout (names unique and
 * [A-Za-z_][A-Za-z0-9_]*, dtypes known, dimensions >= 1 or, for a 1-D
 * variable field, NUMAFEED_VARIABLE; "bytes" and "str" variable fields;
 * sizes overflow checked, fixed part <= NF_BLOCK_CAP, at least one byte
 * when nothing is variable). -EINVAL with a message. */
int nf__layout_build(const struct numafeed_field *fields, size_t n, struct nf_layout *out);
void nf__layout_free(struct nf_layout *l);
/* Parse "name:dtype[:D1xD2...]" (',' also separates dimensions; "*" is a
 * variable length: "tokens:int32:*"; "name:bytes", "name:str"). spec is
 * modified in place and out->name / out->dtype point into it. -EINVAL. */
int nf__field_parse(char *spec, struct numafeed_field *out);

/* ---- the dataset directory as a boundary (confine.c) --------------------- */

/* Open a dataset directory (O_DIRECTORY): -errno naming it. */
int nf__dir_open(const char *dir, int *fd);
/*
 * Open the plain name beneath the directory dirfd (dir names it in
 * messages) for reading, plus extra_flags (O_DIRECT): resolution may not
 * leave the directory unless follow (openat2 RESOLVE_BENEATH, or a check of
 * where a final symbolic link led); O_NONBLOCK so that a FIFO cannot block;
 * only a regular file is accepted (fstat), and *size is its size. Errors:
 * -ENOENT and other -errno naming the file, -EXDEV for a link that leaves,
 * NUMAFEED_ECORRUPT for something that is not a regular file.
 */
int nf__open_beneath(int dirfd, const char *dir, const char *name, int follow, int extra_flags,
                     int *fd, uint64_t *size);
/* openat2(2), or -ENOSYS where the headers lack it; its own function so
 * that tests can take it away (--wrap) and see the fallback. */
int nf__openat2(int dirfd, const char *name, int flags, unsigned long long resolve);

/* ---- manifest ----------------------------------------------------------- */

struct nf_manifest_shard {
    char *file;       /* plain file name inside the dataset directory */
    uint64_t records;
    uint64_t bytes;   /* file size */
    uint64_t xxh3;    /* XXH3_64bits of the whole file */
};

struct nf_manifest {
    unsigned version;
    struct nf_layout layout;
    uint64_t records;
    char codec[8];        /* "zstd" or "none": what the writer was asked for */
    uint64_t block_bytes; /* the writer's target, informational */
    size_t nshards;
    struct nf_manifest_shard *shards;
};

/* Parse manifest text. `what` names it in messages. NUMAFEED_EMANIFEST for
 * bad JSON, missing/mistyped keys, counts that disagree, unsafe file names;
 * NUMAFEED_EVERSION for an unknown version. On error *m is left empty.
 * *err_pos (may be NULL) gets the byte offset jansson stopped at, or -1. */
int nf__manifest_parse(const char *text, size_t len, const char *what,
                        struct nf_manifest *m, long long *err_pos);
/* Read DIR/manifest.json (-ENOENT with a message when missing), opened
 * beneath the directory (confine.c); _at with the directory already open,
 * dir naming it in messages, follow letting a symbolic link leave it. */
int nf__manifest_load(const char *dir, struct nf_manifest *m, long long *err_pos);
int nf__manifest_load_at(int dirfd, const char *dir, int follow, struct nf_manifest *m,
                         long long *err_pos);
/* Write m as JSON to path (created, fsync'd). */
int nf__manifest_write(const char *path, const struct nf_manifest *m);
void nf__manifest_free(struct nf_manifest *m);
/* 1 if s is a safe shard file name: 1..255 bytes, no '/', no leading '.',
 * not the manifest's, no control characters. */
int nf__shard_name_ok(const char *s);

/* ---- one shard file ----------------------------------------------------- */

struct nf_block_info {
    uint64_t offset;       /* file offset of the stored bytes */
    uint32_t stored_size;  /* bytes on disk */
    uint32_t decoded_size; /* bytes after decoding; records * record_bytes */
    uint32_t records;
    uint32_t codec;        /* enum nf_codec */
    uint64_t xxh3;         /* XXH3_64bits of the decoded bytes */
    uint64_t first_record; /* index of its first record within the shard */
    /* XXH3_64bits of the stored bytes, exactly as on disk, from the footer's
     * table; 0 and meaningless when the shard has none (its index's
     * stored_hashes is false) */
    uint64_t stored_xxh3;
};

struct nf_shard_index {
    uint64_t file_size;
    unsigned version;             /* 1, or 2 with variable fields */
    uint64_t record_bytes;        /* of a record's fixed part (version 2: may be 0) */
    unsigned nvar;                /* variable fields (version 2), 0 in version 1 */
    uint64_t records;
    uint64_t footer_offset;
    uint32_t nblocks;
    struct nf_block_info *blocks; /* malloc'd */
    /* header flag NF_SHARD_FLAG_STORED_HASH: every block's stored_xxh3 was
     * read from the footer (false: a shard written without the table) */
    bool stored_hashes;
    /* version 2: records x nvar byte lengths, record by record (malloc'd;
     * NULL in version 1): record r's variable field v has var_len[r * nvar
     * + v] bytes. Each block's decoded size is its records' fixed parts
     * plus these. */
    uint32_t *var_len;
    uint32_t max_stored;          /* largest stored_size */
    uint32_t max_decoded;         /* largest decoded_size */
};

/* Where a problem is: the block (-1: none) and the file offset of the bad
 * bytes. Filled by the loaders below when they fail, for `numafeed check`. */
struct nf_where {
    int64_t block;
    uint64_t offset;
};

/* Encoders used by the writer (little-endian, docs/format.md). flags: the
 * header's, NF_SHARD_FLAG_* (the writer sets NF_SHARD_FLAG_STORED_HASH). */
void nf__header_encode(uint8_t out[NF_HEADER_BYTES], uint64_t record_bytes, unsigned nvar,
                       uint32_t flags);
void nf__index_entry_encode(uint8_t out[NF_INDEX_ENTRY_BYTES], const struct nf_block_info *b);
void nf__footer_head_encode(uint8_t out[NF_FOOTER_HEAD_BYTES], uint32_t nblocks, uint64_t records);
/* Version 2: the footer's length table, n lengths of 4 bytes each. */
void nf__var_len_encode(uint8_t *out, const uint32_t *len, size_t n);
/* NF_SHARD_FLAG_STORED_HASH: the footer's last table, the stored_xxh3 of
 * n blocks, NF_STORED_HASH_BYTES each. */
void nf__stored_hash_encode(uint8_t *out, const struct nf_block_info *b, size_t n);
void nf__trailer_encode(uint8_t out[NF_TRAILER_BYTES], uint64_t footer_offset,
                         uint64_t footer_size, uint64_t footer_xxh3);

/*
 * Read and validate a shard's header, trailer and footer from fd (file_size
 * bytes long): magic, version, reserved bits, checksums, every index entry
 * (ascending, non-overlapping, inside the data region, codec known,
 * decoded size <= NF_BLOCK_CAP and == its records' sizes: records *
 * record_bytes, plus in version 2 their variable lengths from the footer's
 * length table; raw stored == decoded) and the record count; with
 * NF_SHARD_FLAG_STORED_HASH, each block's stored_xxh3 from the footer's
 * last table (a footer's size must count it). `name` is used in messages.
 * Errors:
 * NUMAFEED_ECORRUPT, NUMAFEED_ECHECKSUM, NUMAFEED_EVERSION, -EIO, -ENOMEM.
 */
int nf__shard_load(int fd, const char *name, uint64_t file_size, struct nf_shard_index *out,
                    struct nf_where *where);
void nf__shard_index_free(struct nf_shard_index *idx);
/* A loaded shard's records against a manifest's layout: the fixed part's
 * size and the number of variable fields (header offsets 24 and 20).
 * NUMAFEED_ECORRUPT naming `name` when either differs. */
int nf__shard_layout_check(const struct nf_shard_index *idx, const struct nf_layout *layout,
                           const char *name);

/* pread exactly len bytes at off, retrying short reads and EINTR; a short
 * read at end of file is NUMAFEED_ECORRUPT naming `name` and the offset. */
int nf__pread_full(int fd, void *buf, size_t len, uint64_t off, const char *name);

/*
 * Check and decode one block's stored bytes into dst (dst_len must be at
 * least b->decoded_size; exactly that much is written). zstd: one frame of
 * exactly stored_size bytes that declares a content size equal to the
 * index's decoded size; the frame checksum is checked by zstd unless dctx
 * was told to ignore it (a reader's is: the XXH3 below covers the same
 * bytes; `numafeed check` keeps both). Every codec: XXH3 of the decoded
 * bytes equals the index. A raw block may be
 * checked in place with dst == src. Errors name shard, block and offset:
 * NUMAFEED_ECORRUPT (bad frame, size mismatch, bomb), NUMAFEED_ECHECKSUM.
 * dctx may be NULL for raw blocks.
 */
struct ZSTD_DCtx_s;
/* The checks nf__block_decode makes before zstd writes anything, for a
 * decoder elsewhere (the GPU): a zstd block must be one frame of exactly
 * stored_size bytes declaring the index's decoded size; a raw block passes;
 * another codec is NUMAFEED_ECORRUPT. The decoded bytes still need their
 * XXH3 checked. */
int nf__block_check_frame(const char *shard, uint32_t block_no, const struct nf_block_info *b,
                          const void *src);
/* XXH3-64 of the b->stored_size stored bytes at src against b->stored_xxh3:
 * 0, or NUMAFEED_ECHECKSUM "SHARD: block B at offset O: stored bytes hash to
 * X, the index says Y". Only meaningful for a shard whose index has
 * stored_hashes (the caller knows); nf__dataset_check_stored_hash is the
 * form that checks that too. */
int nf__block_check_stored_hash(const char *shard, uint32_t block_no,
                                const struct nf_block_info *b, const void *src);
int nf__block_decode(struct ZSTD_DCtx_s *dctx, const char *shard, uint32_t block_no,
                      const struct nf_block_info *b, const void *src, void *dst, size_t dst_len);

/* ---- a dataset ---------------------------------------------------------- */

struct nf_dataset;

struct nf_dataset_options {
    size_t size;  /* sizeof(struct nf_dataset_options) */
    int direct;   /* also open every shard with O_DIRECT (readers may then ask for it);
                   * default 0. Filesystems that refuse O_DIRECT fall back to
                   * buffered reads, see nf__dataset_direct(). */
    int verify_content; /* re-hash every shard file at open against the
                         * manifest (slow: reads everything); default 0 */
    int follow_symlinks; /* let symbolic links in the dataset directory lead
                          * outside it; default 0: refused (confine.c) */
};

void nf__dataset_options_init(struct nf_dataset_options *o);
/* Open a dataset directory (see step 1 at the top). Errors: -ENOENT (no
 * manifest or a missing shard file, named), NUMAFEED_EMANIFEST,
 * NUMAFEED_EVERSION, NUMAFEED_ECORRUPT (size or count disagreeing with the
 * manifest, bad shard), NUMAFEED_ECHECKSUM, -ENOMEM, other -errno. */
int nf__dataset_open(const char *dir, const struct nf_dataset_options *o, struct nf_dataset **out);
void nf__dataset_close(struct nf_dataset *ds);

uint64_t nf__dataset_records(const struct nf_dataset *ds);
const struct nf_layout *nf__dataset_layout(const struct nf_dataset *ds);
uint32_t nf__dataset_shard_count(const struct nf_dataset *ds);
const char *nf__dataset_shard_name(const struct nf_dataset *ds, uint32_t shard);
/* The shard's index (blocks, counts); NULL if shard is out of range. */
const struct nf_shard_index *nf__dataset_shard_index(const struct nf_dataset *ds, uint32_t shard);
/* First global record index of a shard. */
uint64_t nf__dataset_shard_first(const struct nf_dataset *ds, uint32_t shard);
/* Largest decoded block over the whole dataset: the size of a destination
 * buffer that fits any block. */
uint32_t nf__dataset_max_decoded(const struct nf_dataset *ds);
/* Largest stored block: what a read buffer must hold. */
uint32_t nf__dataset_max_stored(const struct nf_dataset *ds);
/* Whether every shard carries the hashes of its blocks' stored bytes
 * (NF_SHARD_FLAG_STORED_HASH), so that every block's stored bytes can be
 * checked before they are decoded: what a decoder that is not robust to
 * damaged input (nvCOMP's) needs. False when any shard lacks the flag. */
bool nf__dataset_stored_hashes(const struct nf_dataset *ds);
/*
 * Check global block g's stored bytes at stored (its stored size, as read
 * from the shard) against the hash its shard's footer keeps for them. Any
 * thread; reads nothing from disk. Returns 0 when they match;
 * NUMAFEED_ECHECKSUM when not, the message naming the shard's path, the
 * block (within its shard), its file offset and both hashes: "PATH: block
 * B at offset O: stored bytes hash to X, the index says Y"; -ENOTSUP when
 * that shard has no stored hashes (nothing was checked: never taken for a
 * pass); -EINVAL when g is out of range.
 */
int nf__dataset_check_stored_hash(const struct nf_dataset *ds, uint32_t g, const void *stored);
/*
 * Map every shard read-only (PROT_READ, MAP_SHARED) so blocks can be
 * verified and copied in place, without a read into a buffer: one pass
 * fewer over page-cache-resident data. Idempotent; call before the dataset
 * is shared between threads. The price: a shard truncated by someone else
 * while mapped raises SIGBUS in the reading thread, and cold pages are
 * faulted in synchronously. Errors: -errno from mmap (message names the file).
 */
int nf__dataset_map(struct nf_dataset *ds);
/*
 * How to read this dataset when the caller lets io decide: NF_IO_MMAP when
 * at least 90% of its pages (sampled with mincore, a few thousand pages
 * spread over every shard) are in the page cache, where mapping saves a
 * copy per byte; NF_IO_AUTO (io_uring, pread where refused) otherwise,
 * where mmap would fault the cold pages in one at a time. why gets a line
 * saying what was seen. docs/loader.md has the measurements.
 */
int nf__dataset_pick_io(const struct nf_dataset *ds, char *why, size_t why_len);
/* Which shard's mapping holds addr, and at which file offset: 0, or
 * -ENOENT when no mapping does. */
int nf__dataset_map_where(const struct nf_dataset *ds, const void *addr, uint32_t *shard,
                          uint64_t *offset);
/* A shard's whole mapping and its length; NULL when not mapped. */
const uint8_t *nf__dataset_shard_map(const struct nf_dataset *ds, uint32_t shard, size_t *len);
/* Mapped datasets: whether global block g's mapped bytes were verified,
 * and marking it so (any thread; pipes with verify_once use them). */
int nf__dataset_verified(const struct nf_dataset *ds, uint32_t g);
void nf__dataset_set_verified(const struct nf_dataset *ds, uint32_t g);
/* The shard's path as opened (dir/name), for messages; "" out of range. */
const char *nf__dataset_shard_path(const struct nf_dataset *ds, uint32_t shard);
/*
 * SIGBUS safety for mappings (guard.c). nf__guard_install installs the
 * process's SIGBUS handler, once and again if someone replaced it; it
 * passes every fault outside a guard to the handler it replaced.
 * nf__guarded runs fn(arg) and returns 0, or NUMAFEED_ECORRUPT with the
 * faulting address in *fault_addr when fn hit a SIGBUS (fn is cut short).
 */
int nf__guard_install(void);
int nf__guarded(void (*fn)(void *arg), void *arg, void **fault_addr);
/* A block's stored bytes inside the mapping; NULL when not mapped or out
 * of range. */
const uint8_t *nf__dataset_block_map(const struct nf_dataset *ds, uint32_t shard, uint32_t block);

/*
 * The global block list: every block of every shard, shard by shard, in
 * file order; the numbering the sampler and the loader use. Built once at
 * open. nf__dataset_block fills *shard and *block (either may be NULL) and
 * returns the block's index entry, or NULL when g is out of range.
 * nf__dataset_block_records is the records of each global block
 * (nf__dataset_blocks entries).
 */
uint32_t nf__dataset_blocks(const struct nf_dataset *ds);
const struct nf_block_info *nf__dataset_block(const struct nf_dataset *ds, uint32_t g,
                                              uint32_t *shard, uint32_t *block);
const uint32_t *nf__dataset_block_records(const struct nf_dataset *ds);

/* Version 2: every record's variable lengths in bytes, records x nvar in
 * global record order (record r's variable field v: [r * nvar + v]); NULL
 * without variable fields. Each is whole elements of its field. And the
 * largest length of variable field v over the dataset. */
const uint32_t *nf__dataset_var_len(const struct nf_dataset *ds);
/* Version 2: each record's byte offset inside its block's decoded bytes
 * (global record order); NULL without variable fields, where record k of a
 * block is at k * record_bytes. */
const uint32_t *nf__dataset_rec_off(const struct nf_dataset *ds);
uint32_t nf__dataset_var_max(const struct nf_dataset *ds, unsigned v);

/* 1 when shards have O_DIRECT descriptors; 0 with the reason in *why. */
int nf__dataset_direct(const struct nf_dataset *ds, const char **why);

struct nf_record_loc {
    uint32_t shard;
    uint32_t block;
    uint64_t offset; /* byte offset of the record in the decoded block */
    uint64_t bytes;  /* its stored size: fixed part, then its variable fields */
};
/* Map a global record index to its block. -ERANGE past the end. O(log n). */
int nf__dataset_locate(const struct nf_dataset *ds, uint64_t record, struct nf_record_loc *loc);
/* A record's stored size (record_bytes plus its variable lengths). */
uint64_t nf__dataset_record_size(const struct nf_dataset *ds, uint64_t record);

/* ---- a per-thread reader ------------------------------------------------ */

/* The values of loader_config.io (enum loader_io), so the loader passes it through. */
enum nf_io_backend { NF_IO_AUTO = 0, NF_IO_URING = 1, NF_IO_PREAD = 2, NF_IO_MMAP = 3 };

#define NF_IO_DEFAULT_DEPTH 32u
#define NF_IO_MAX_DEPTH 4096u
/* O_DIRECT alignment of buffers, offsets and lengths: covers logical block
 * sizes up to 4 KiB. */
#define NF_IO_DIRECT_ALIGN 4096u

struct nf_reader_options {
    size_t size;          /* sizeof(struct nf_reader_options) */
    int backend;          /* enum nf_io_backend, not MMAP (see the pipe). AUTO
                           * (default): io_uring, falling back to pread when
                           * refused. URING fails instead of falling back. */
    unsigned queue_depth; /* reads in flight at once; 0 = NF_IO_DEFAULT_DEPTH;
                           * at most NF_IO_MAX_DEPTH */
    int direct;           /* 1: read through the dataset's O_DIRECT descriptors
                           * (buffers must be NF_IO_DIRECT_ALIGN aligned and
                           * sized by nf__reader_buf_bytes). default 0 */
    size_t max_op_bytes;  /* test hook: cap every single kernel read at this
                           * many bytes so that each block takes several
                           * reads, as after a short read. 0 (default): no cap */
};

struct nf_reader;

/* One finished read. */
struct nf_read_done {
    uint64_t tag;        /* what the caller passed to submit */
    uint32_t shard, block;
    int result;          /* 0, or the error (message in numafeed_last_error()
                          * of the waiting thread, last failure wins) */
    const uint8_t *data; /* the block's stored bytes inside the caller's buffer
                          * (an O_DIRECT read starts before the block) */
};

void nf__reader_options_init(struct nf_reader_options *o);
/* Errors: NUMAFEED_ECONFIG (bad option), the io_uring
 * error when io_uring was forced and is refused, -ENOMEM. */
int nf__reader_create(const struct nf_dataset *ds, const struct nf_reader_options *o,
                       struct nf_reader **out);
/* Waits for reads still in flight (their buffers may be freed afterwards),
 * then frees the reader. NULL is allowed. */
void nf__reader_destroy(struct nf_reader *r);
/* "io_uring" or "pread". */
const char *nf__reader_backend(const struct nf_reader *r);
/* Why that backend: "default", "forced by the reader options", "io_uring_queue_init:
 * Operation not permitted", ... Valid for the reader's life. */
const char *nf__reader_backend_reason(const struct nf_reader *r);
unsigned nf__reader_depth(const struct nf_reader *r);
unsigned nf__reader_inflight(const struct nf_reader *r);
/* Bytes a read buffer needs for this block (stored size, plus alignment
 * slack with O_DIRECT); 0 if shard/block is out of range. */
size_t nf__reader_buf_bytes(const struct nf_reader *r, uint32_t shard, uint32_t block);

/* Start reading one block's stored bytes into buf. -EBUSY when queue_depth
 * reads are already in flight (wait first), -EINVAL for a bad block or a
 * buffer too small or misaligned. Reads are handed to the kernel at the
 * latest by the next nf__reader_flush() or nf__reader_wait(). */
int nf__reader_submit(struct nf_reader *r, uint32_t shard, uint32_t block, void *buf,
                       size_t buf_len, uint64_t tag);
/* Hand queued reads to the kernel without waiting. */
int nf__reader_flush(struct nf_reader *r);
/* Wait until at least min reads have finished (min is clamped to those in
 * flight), then return up to max of them in done[]. Returns the count or a
 * negative error of the ring itself; a failed read is a done[] entry with
 * result < 0. Short reads are continued; a read that hits end of file early
 * fails with NUMAFEED_ECORRUPT naming file and offset. */
int nf__reader_wait(struct nf_reader *r, unsigned min, struct nf_read_done *done, unsigned max);
/* Wait for every read in flight and discard all pending completions (after
 * a failed batch, say), so the reader starts clean and no buffer handed to
 * submit is still being written. Returns 0 or an error of the ring. */
int nf__reader_drain(struct nf_reader *r);
/* nf__block_decode with this reader's DCtx; dst_len >= the decoded size. */
int nf__reader_decode(struct nf_reader *r, uint32_t shard, uint32_t block, const void *stored,
                       void *dst, size_t dst_len);
/* Read, check and decode one block synchronously. buf is the read buffer
 * (>= nf__reader_buf_bytes), dst the destination (>= decoded size). */
int nf__reader_read_block(struct nf_reader *r, uint32_t shard, uint32_t block, void *buf,
                           size_t buf_len, void *dst, size_t dst_len);
/* Copy global record `record` to dst (nf__dataset_record_size bytes: its
 * fixed part, then its variable fields), decoding exactly
 * one block: buf as for read_block, block_buf >= that block's decoded size
 * (nf__dataset_max_decoded fits all). */
int nf__reader_read_record(struct nf_reader *r, uint64_t record, void *buf, size_t buf_len,
                            void *block_buf, size_t block_len, void *dst);

/* ---- the block pipeline (pipe.c): what the loader asks of src/io ------- */

/*
 * Submit global blocks, get back their verified, decoded bytes. The pipe
 * decides everything below that: the backend (io_uring, pread, or the
 * shards' mappings), the buffers and their sizes, raw blocks verified where
 * they were read, zstd blocks decoded into staging. One thread at a time.
 *
 *   nf__pipe_submit(p, g, tag)   up to nf__pipe_room(p) blocks (else -EBUSY)
 *   nf__pipe_next(p, &done)      one finished block (waits for a read);
 *                                done.data: done.len verified decoded bytes
 *   nf__pipe_release(p, &done)   its buffer may be reused
 *
 * A block whose read or check fails comes back from nf__pipe_next with
 * done.result (also returned) set and its buffer already released; the
 * message names shard, block and offset.
 */
struct nf_pipe;

/* Decoded bytes a pipe keeps in flight by default: a few blocks that stay
 * in a core's cache between decode and scatter. */
#define NF_PIPE_DEFAULT_BYTES ((size_t)1 << 20)

struct nf_pipe_options {
    size_t size;          /* sizeof(struct nf_pipe_options) */
    int io;               /* enum nf_io_backend; MMAP needs nf__dataset_map first */
    unsigned depth;       /* reads in flight at most (0: NF_IO_DEFAULT_DEPTH) */
    size_t staging_bytes; /* decoded bytes in flight (0: NF_PIPE_DEFAULT_BYTES);
                           * at least 2 blocks, at most depth blocks */
    size_t max_op_bytes;  /* test hook, as in nf_reader_options */
    /* mapped: hash a raw block's bytes (or, submitted in place, a zstd
     * frame's stored bytes) only the first time any pipe of the dataset
     * hands it out (its pages must stay resident and unchanged:
     * page-locked, as the loader's direct copy keeps them); default 0,
     * every time */
    int verify_once;
};

struct nf_block_done {
    uint64_t tag;         /* the caller's, from submit */
    uint32_t gblock;
    uint32_t records;
    uint32_t len;         /* decoded bytes = records x record bytes; stored: stored bytes */
    int result;           /* 0, or the error */
    const uint8_t *data;  /* verified decoded bytes; valid until release. stored: the
                           * caller's destination, holding the stored bytes */
    int stored;           /* 1: submitted with nf__pipe_submit_stored */
    unsigned buf_;        /* the pipe's */
};

/* Worker time spent inside the pipe, since creation. */
struct nf_pipe_stats {
    uint64_t io_ns;       /* waiting for reads */
    uint64_t decode_ns;   /* verifying and decoding */
    uint64_t blocks;      /* delivered verified */
};

void nf__pipe_options_init(struct nf_pipe_options *o);
/* Errors: those of nf__reader_create, NUMAFEED_ECONFIG, -ENOMEM. */
int nf__pipe_create(const struct nf_dataset *ds, const struct nf_pipe_options *o,
                    struct nf_pipe **out);
/* Waits for reads in flight, then frees everything. NULL is allowed. */
void nf__pipe_destroy(struct nf_pipe *p);
/* "io_uring", "pread" or "mmap", and why (as nf__reader_backend_reason). */
const char *nf__pipe_backend(const struct nf_pipe *p);
const char *nf__pipe_backend_reason(const struct nf_pipe *p);
/* Have at least n buffers, so that n blocks can be held at once. */
int nf__pipe_reserve(struct nf_pipe *p, unsigned n);
/* Blocks that can be submitted now; submitted and not yet released. */
unsigned nf__pipe_room(const struct nf_pipe *p);
unsigned nf__pipe_outstanding(const struct nf_pipe *p);
int nf__pipe_submit(struct nf_pipe *p, uint32_t gblock, uint64_t tag);
/* Submit a block whose stored bytes are wanted as they are, for a decoder
 * elsewhere (the GPU): they are read (or, mapped, copied) into dst, which
 * must hold the block's stored size, and nf__pipe_next hands the block out
 * with done.stored set, not decoded: a zstd block after
 * nf__block_check_frame and nf__dataset_check_stored_hash (a mismatch is
 * nf__pipe_check_stored's error where the CPU finds one, else the
 * mismatch; a shard without stored hashes is -ENOTSUP); a raw block as it
 * is. The caller verifies the decoded bytes. Takes a place in the pipe
 * (room) but none of its buffers. */
int nf__pipe_submit_stored(struct nf_pipe *p, uint32_t gblock, uint64_t tag, void *dst,
                           size_t dst_len);
/* The same, on a mapped pipe, without a copy: done.data points into the
 * mapping (valid while the dataset stays mapped). A zstd frame is checked
 * as above there, every read of it guarded (a truncated shard is the
 * guard's error); with verify_once only the first time any pipe of the
 * dataset hands it out. A raw block is handed out unread. -EINVAL on a
 * pipe that does not map. */
int nf__pipe_submit_in_place(struct nf_pipe *p, uint32_t gblock, uint64_t tag);
/* Hand submitted reads to the kernel without waiting. */
int nf__pipe_flush(struct nf_pipe *p);
/* Decode and verify block gblock's stored bytes at src (as
 * nf__pipe_submit_stored delivered them) with this pipe's CPU decoder, into
 * scratch memory: 0 when they are sound, else exactly the error (code and
 * message) the CPU path gives for them. For a decoder elsewhere that found
 * the block bad: its verdict in the CPU path's words. src may be in a
 * mapped pipe's mapping (read guarded). */
int nf__pipe_check_stored(struct nf_pipe *p, uint32_t gblock, const void *src);
/* The next finished block, in completion order (reads) or submission order
 * (mapped). -EINVAL when nothing is in flight. */
int nf__pipe_next(struct nf_pipe *p, struct nf_block_done *done);
void nf__pipe_release(struct nf_pipe *p, const struct nf_block_done *done);
/*
 * Run fn(arg), which reads a block's bytes from done.data (the loader's
 * copy into slots), so that a shard truncated under a mapping is an error,
 * not a signal: NUMAFEED_ECORRUPT naming the shard and offset, with fn cut
 * short somewhere (what it wrote is garbage). Without a mapping just calls
 * fn and returns 0. Blocks the pipe verifies and decodes are guarded
 * inside it already.
 */
int nf__pipe_guard(struct nf_pipe *p, void (*fn)(void *arg), void *arg);
/* Wait for every read in flight and forget every submitted block (after a
 * failure, or when stopping): every buffer is free afterwards, and no
 * completion handed out earlier may still be used. */
int nf__pipe_drain(struct nf_pipe *p);
void nf__pipe_stats(const struct nf_pipe *p, struct nf_pipe_stats *st);

/* Whether this process may create an io_uring (seccomp, io_uring_disabled,
 * an old kernel refuse it): 0, or the negated errno with the reason in why. */
int nf__io_uring_probe(char *why, size_t why_len);

/* ---- checking a dataset ------------------------------------------------- */

struct nf_check_problem {
    const char *file;    /* shard file name or "manifest.json" */
    int64_t block;       /* -1 when the problem is not in one block */
    int64_t offset;      /* byte offset in the file, -1 when unknown */
    int code;
    const char *message; /* full message (also names file, block, offset) */
};

struct nf_check_summary {
    uint32_t shards;
    uint64_t records;
    uint64_t blocks, zstd_blocks, raw_blocks;
    uint64_t file_bytes;    /* sum of shard file sizes */
    uint64_t decoded_bytes; /* sum of decoded block sizes */
    uint64_t record_bytes;
    uint64_t problems;
    uint32_t stored_hash_shards; /* shards whose footer has stored-block hashes */
};

/* Verify everything `numafeed check` promises: manifest, every shard's size
 * and content hash, header, footer, trailer, every block's hash and frame,
 * and its stored bytes' hash, before it is decoded, where the shard has one.
 * Files are opened beneath dir as nf__open_beneath does (follow_symlinks:
 * its follow).
 * Calls problem() once per problem and goes on. Returns the number of
 * problems (>= 0), or a negative error only for -ENOMEM. */
int nf__check_dataset(const char *dir, int follow_symlinks,
                       void (*problem)(void *user, const struct nf_check_problem *p),
                       void *user, struct nf_check_summary *sum);

#endif
