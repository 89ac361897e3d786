// SPDX-License-Identifier: Apache-2.0
#include "io_helpers.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

void nft_pattern(uint8_t *buf, uint64_t first, size_t n, size_t rb, int compressible)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t x = (first + i) * 0x9E3779B97F4A7C15ull;
        for (size_t j = 0; j < rb; j++) {
            x ^= x >> 29;
            x *= 0xBF58476D1CE4E5B9ull;
            buf[i * rb + j] = compressible ? (uint8_t)((x >> 60) & 3) : (uint8_t)(x >> 56);
        }
    }
}

char *nft_make_dataset(const char *dir, const char *name, size_t rb, uint64_t nrec, int codec,
                       int compressible, uint64_t block_bytes, uint64_t shard_bytes)
{
    char *path;
    assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
    struct numafeed_field f = {"data", "uint8", 1, {rb}};
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.codec = codec;
    o.block_bytes = block_bytes;
    o.shard_bytes = shard_bytes;
    numafeed_writer *w;
    int rc = numafeed_writer_create(path, &f, 1, &o, &w);
    if (rc)
        fail_msg("writer_create: %s", numafeed_last_error());
    enum { CHUNK = 1000 };
    uint8_t *buf = malloc(CHUNK * rb);
    assert_non_null(buf);
    for (uint64_t r = 0; r < nrec; r += CHUNK) {
        size_t n = nrec - r < CHUNK ? (size_t)(nrec - r) : CHUNK;
        nft_pattern(buf, r, n, rb, compressible);
        assert_int_equal(numafeed_writer_append(w, buf, n), 0);
    }
    free(buf);
    rc = numafeed_writer_finish(w);
    if (rc)
        fail_msg("writer_finish: %s", numafeed_last_error());
    numafeed_writer_destroy(w);
    return path;
}

uint8_t *nft_read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *b = malloc((size_t)st.st_size + 1);
    assert_non_null(b);
    assert_int_equal(nf__pread_full(fd, b, (size_t)st.st_size, 0, path), 0);
    close(fd);
    *len = (size_t)st.st_size;
    return b;
}

int nft_memfd(const void *data, size_t len)
{
    int fd = memfd_create("shard", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    return fd;
}

char *nft_shard_path(const char *ds, unsigned shard)
{
    char *p;
    assert_true(asprintf(&p, "%s/shard-%05u.nfs", ds, shard) > 0);
    return p;
}

void nft_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void nft_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t nft_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t nft_get64(const uint8_t *p)
{
    return (uint64_t)nft_get32(p) | (uint64_t)nft_get32(p + 4) << 32;
}

uint64_t nft_footer_offset(const uint8_t *img, size_t len)
{
    return nft_get64(img + len - NF_TRAILER_BYTES);
}

uint8_t *nft_entry(uint8_t *img, size_t len, uint32_t i)
{
    return img + nft_footer_offset(img, len) + NF_FOOTER_HEAD_BYTES + (size_t)i * NF_INDEX_ENTRY_BYTES;
}

void nft_reseal(uint8_t *img, size_t len)
{
    nft_put64(img + 56, XXH3_64bits(img, 56));
    uint64_t foff = nft_footer_offset(img, len);
    uint64_t fsize = nft_get64(img + len - NF_TRAILER_BYTES + 8);
    nft_put64(img + len - NF_TRAILER_BYTES + 16, XXH3_64bits(img + foff, fsize));
}

size_t nft_strip_stored_hashes(uint8_t *img, size_t len)
{
    assert_true(nft_get32(img + 12) & NF_SHARD_FLAG_STORED_HASH);
    uint8_t *t = img + len - NF_TRAILER_BYTES;
    uint64_t foff = nft_get64(t), fsize = nft_get64(t + 8);
    uint64_t table = (uint64_t)nft_get32(img + foff) * NF_STORED_HASH_BYTES;
    assert_true(table < fsize);
    /* the table is the footer's last bytes, right before the trailer */
    memmove(t - table, t, NF_TRAILER_BYTES);
    len -= (size_t)table;
    nft_put64(img + len - NF_TRAILER_BYTES + 8, fsize - table);
    nft_put32(img + 12, nft_get32(img + 12) & ~NF_SHARD_FLAG_STORED_HASH);
    nft_reseal(img, len);
    return len;
}

int nft_load_image(const uint8_t *img, size_t len, struct nf_shard_index *idx)
{
    int fd = nft_memfd(img, len);
    struct nf_where w;
    int rc = nf__shard_load(fd, "image", len, idx, &w);
    close(fd);
    return rc;
}

void nft_rewrite_manifest(const char *dir, const char *after, const char *from, const char *to)
{
    char *m, *out;
    assert_true(asprintf(&m, "%s/" NF_MANIFEST_NAME, dir) > 0);
    size_t len;
    char *text = (char *)nft_read_file(m, &len);
    text[len] = '\0';
    char *hit = after ? strstr(text, after) : text;
    assert_non_null(hit);
    hit = strstr(hit, from);
    assert_non_null(hit);
    assert_true(asprintf(&out, "%.*s%s%s", (int)(hit - text), text, to, hit + strlen(from)) > 0);
    assert_int_equal(nf_write_file(m, out, strlen(out)), 0);
    free(text);
    free(out);
    free(m);
}
