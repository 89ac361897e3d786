// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz a whole dataset directory: nf__dataset_open and nf__check_dataset
 * over a manifest and a shard the fuzzer writes, in a directory that also
 * holds what a hostile dataset would plant: a symbolic link to a file
 * outside it (link.nfs), one inside it (inside.nfs, to the shard), a FIFO
 * (fifo.nfs) and a subdirectory (dir.nfs).
 *
 * Input: [u32 LE manifest length][manifest text][shard-00000.nfs bytes].
 *
 * Invariants: a FIFO never blocks (the run would time out); a dataset that
 * opens lists none of link.nfs, fifo.nfs, dir.nfs as a shard (they may not
 * be opened, inside.nfs may); every block it opened reads back through a
 * reader without a memory error, and check agrees that it is intact
 * enough to open.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "io/io.h"

static char dir[64], manifest[128], shard[128];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char d1[] = "/dev/shm/nf-fuzz-dataset-XXXXXX", d2[] = "/tmp/nf-fuzz-dataset-XXXXXX";
    const char *d = mkdtemp(d1);
    if (!d)
        d = mkdtemp(d2);
    if (!d)
        abort();
    snprintf(dir, sizeof(dir), "%s", d);
    snprintf(manifest, sizeof(manifest), "%s/manifest.json", d);
    snprintf(shard, sizeof(shard), "%s/shard-00000.nfs", d);
    char p[160];
    snprintf(p, sizeof(p), "%s/link.nfs", d);
    if (symlink("/etc/hostname", p))
        abort();
    snprintf(p, sizeof(p), "%s/inside.nfs", d);
    if (symlink("shard-00000.nfs", p))
        abort();
    snprintf(p, sizeof(p), "%s/fifo.nfs", d);
    if (mkfifo(p, 0600))
        abort();
    snprintf(p, sizeof(p), "%s/dir.nfs", d);
    if (mkdir(p, 0700))
        abort();
    return 0;
}

static void put(const char *path, const uint8_t *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (len && write(fd, data, len) != (ssize_t)len))
        abort();
    close(fd);
}

static void read_all(const struct nf_dataset *ds)
{
    struct nf_reader *r;
    struct nf_reader_options o;
    nf__reader_options_init(&o);
    o.backend = NF_IO_PREAD;
    if (nf__reader_create(ds, &o, &r))
        return;
    size_t dec = nf__dataset_max_decoded(ds), st = nf__dataset_max_stored(ds);
    uint8_t *buf = malloc(st ? st : 1), *out = malloc(dec ? dec : 1);
    for (uint32_t g = 0; buf && out && g < nf__dataset_blocks(ds); g++) {
        uint32_t s, b;
        const struct nf_block_info *bi = nf__dataset_block(ds, g, &s, &b);
        NF_FUZZ_CHECK(bi != NULL);
        nf__reader_read_block(r, s, b, buf, st, out, dec);
        /* the stored bytes as on disk through the check made before a GPU
         * decode: a verdict where the shard keeps hashes, a refusal to
         * vouch where it does not */
        int fd = open(nf__dataset_shard_path(ds, s), O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && nf__pread_full(fd, buf, bi->stored_size, bi->offset, "fuzz") == 0) {
            int h = nf__dataset_check_stored_hash(ds, g, buf);
            NF_FUZZ_CHECK(nf__dataset_shard_index(ds, s)->stored_hashes
                              ? h == 0 || h == NUMAFEED_ECHECKSUM
                              : h == -ENOTSUP && !nf__dataset_stored_hashes(ds));
        }
        if (fd >= 0)
            close(fd);
    }
    free(buf);
    free(out);
    nf__reader_destroy(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    size_t mlen = nf_fuzz_le32(data);
    if (mlen > size - 4)
        mlen = size - 4;
    put(manifest, data + 4, mlen);
    put(shard, data + 4 + mlen, size - 4 - mlen);

    struct nf_dataset *ds = NULL;
    int rc = nf__dataset_open(dir, NULL, &ds);
    if (rc == 0) {
        for (uint32_t i = 0; i < nf__dataset_shard_count(ds); i++) {
            const char *n = nf__dataset_shard_name(ds, i);
            NF_FUZZ_CHECK(strcmp(n, "link.nfs") && strcmp(n, "fifo.nfs") &&
                          strcmp(n, "dir.nfs"));
        }
        read_all(ds);
        nf__dataset_close(ds);
    }
    struct nf_check_summary sum;
    int problems = nf__check_dataset(dir, 0, NULL, NULL, &sum);
    NF_FUZZ_CHECK(problems >= 0 || problems == -ENOMEM);
    /* a dataset with no problem at all also opens */
    NF_FUZZ_CHECK(problems != 0 || rc == 0);
    return 0;
}
