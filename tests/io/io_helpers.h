/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the tests of src/io: deterministic datasets and shard surgery. */
#ifndef NF_TEST_IO_HELPERS_H
#define NF_TEST_IO_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include "helpers.h"
#include "io/io.h"

/* Record `first + i` for i < n, rb bytes each, into buf: compressible
 * (small token-like numbers) or not (hash noise). Same input, same bytes. */
void nft_pattern(uint8_t *buf, uint64_t first, size_t n, size_t rb, int compressible);

/* Write dir/name with the writer: nrec records of rb bytes (one uint8
 * field "data"), codec NUMAFEED_CODEC_*, sizes in bytes (0: default).
 * Returns the malloc'd dataset path; fails the test on error. */
char *nft_make_dataset(const char *dir, const char *name, size_t rb, uint64_t nrec, int codec,
                       int compressible, uint64_t block_bytes, uint64_t shard_bytes);

/* Whole file into a malloc'd buffer (fails the test on error). */
uint8_t *nft_read_file(const char *path, size_t *len);
/* An anonymous file holding len bytes of data, for nf__shard_load. */
int nft_memfd(const void *data, size_t len);
/* Path of the first shard of a dataset (malloc'd). */
char *nft_shard_path(const char *ds, unsigned shard);

/* Shard image surgery: offsets of the footer and of index entry i, and
 * recomputing the header and footer checksums after a deliberate edit so
 * that only the edit is wrong. */
uint64_t nft_footer_offset(const uint8_t *img, size_t len);
uint8_t *nft_entry(uint8_t *img, size_t len, uint32_t i);
void nft_reseal(uint8_t *img, size_t len);
void nft_put32(uint8_t *p, uint32_t v);
void nft_put64(uint8_t *p, uint64_t v);
uint32_t nft_get32(const uint8_t *p);
uint64_t nft_get64(const uint8_t *p);

/* Make a shard image without NF_SHARD_FLAG_STORED_HASH's table: the flag
 * cleared, the footer's stored-hash table cut out (the trailer moves up and
 * counts a smaller footer), both checksums recomputed. Returns the new
 * length; the image must carry the table. */
size_t nft_strip_stored_hashes(uint8_t *img, size_t len);

/* Replace the first occurrence of from in dir's manifest by to: the first
 * after the first occurrence of after, where after is not NULL. */
void nft_rewrite_manifest(const char *dir, const char *after, const char *from, const char *to);

/* Load an image through nf__shard_load; returns its result. */
int nft_load_image(const uint8_t *img, size_t len, struct nf_shard_index *idx);

#endif
