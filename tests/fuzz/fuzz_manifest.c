// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz the manifest parser, nf__manifest_parse (jansson underneath, then
 * numafeed's own validation). Input: the manifest text, not NUL-terminated,
 * so reading past its length shows up under ASan.
 *
 * A manifest that parses must satisfy what the rest of src/io trusts
 * without checking again (counts add up, names are plain and unique, the
 * layout is contiguous and within the block cap), and must survive a round
 * trip through nf__manifest_write unchanged.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "io/io.h"

static char path[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* tmpfs where there is one: the round trip writes and fsyncs a file */
    char dir[] = "/dev/shm/nf-fuzz-manifest-XXXXXX", dir2[] = "/tmp/nf-fuzz-manifest-XXXXXX";
    const char *d = mkdtemp(dir);
    if (!d)
        d = mkdtemp(dir2);
    if (!d)
        abort();
    snprintf(path, sizeof(path), "%s/manifest.json", d);
    return 0;
}

static void check_manifest(const struct nf_manifest *m)
{
    NF_FUZZ_CHECK(m->version == NF_FORMAT_VERSION_FIXED || m->version == NF_FORMAT_VERSION);
    NF_FUZZ_CHECK(!strcmp(m->codec, "zstd") || !strcmp(m->codec, "none"));
    const struct nf_layout *l = &m->layout;
    NF_FUZZ_CHECK(l->nfields >= 1 && l->nfields <= NF_MAX_FIELDS && l->fields);
    /* version 2 exactly when a field's length varies; only then may the
     * fixed part be empty */
    NF_FUZZ_CHECK((m->version == NF_FORMAT_VERSION) == (l->nvar > 0));
    NF_FUZZ_CHECK(l->record_bytes >= (l->nvar ? 0 : 1) && l->record_bytes <= NF_BLOCK_CAP);
    uint64_t off = 0;
    unsigned nvar = 0;
    for (unsigned i = 0; i < l->nfields; i++) {
        const struct nf_field *f = &l->fields[i];
        NF_FUZZ_CHECK(nf__dtype_name(f->dtype) != NULL);
        if (f->kind != NF_KIND_FIXED) {
            NF_FUZZ_CHECK(f->kind == NF_KIND_BYTES || f->kind == NF_KIND_STR ||
                          f->kind == NF_KIND_ARRAY);
            NF_FUZZ_CHECK(f->ndim == 1 && f->shape[0] == NUMAFEED_VARIABLE && f->bytes == 0);
            NF_FUZZ_CHECK(f->var == nvar++);
            continue;
        }
        NF_FUZZ_CHECK(f->offset == off);
        NF_FUZZ_CHECK(f->ndim <= NF_MAX_DIMS);
        uint64_t bytes = nf__dtype_size(f->dtype);
        for (unsigned d = 0; d < f->ndim; d++) {
            NF_FUZZ_CHECK(f->shape[d] >= 1);
            bytes *= f->shape[d]; /* the layout promises each prefix <= cap */
            NF_FUZZ_CHECK(bytes <= NF_BLOCK_CAP);
        }
        NF_FUZZ_CHECK(bytes == f->bytes);
        size_t nlen = strnlen(f->name, sizeof(f->name));
        NF_FUZZ_CHECK(nlen >= 1 && nlen <= NF_NAME_MAX);
        for (unsigned j = 0; j < i; j++)
            NF_FUZZ_CHECK(strcmp(l->fields[j].name, f->name) != 0);
        off += f->bytes;
    }
    NF_FUZZ_CHECK(off == l->record_bytes);
    NF_FUZZ_CHECK(nvar == l->nvar);
    uint64_t total = 0;
    NF_FUZZ_CHECK(m->shards != NULL || m->nshards == 0);
    for (size_t i = 0; i < m->nshards; i++) {
        const struct nf_manifest_shard *s = &m->shards[i];
        NF_FUZZ_CHECK(s->file && nf__shard_name_ok(s->file));
        NF_FUZZ_CHECK(s->records >= 1);
        NF_FUZZ_CHECK(!__builtin_add_overflow(total, s->records, &total));
        for (size_t j = 0; j < i; j++)
            NF_FUZZ_CHECK(strcmp(m->shards[j].file, s->file) != 0);
    }
    NF_FUZZ_CHECK(total == m->records);
}

static void check_same(const struct nf_manifest *a, const struct nf_manifest *b)
{
    NF_FUZZ_CHECK(a->records == b->records && a->block_bytes == b->block_bytes);
    NF_FUZZ_CHECK(!strcmp(a->codec, b->codec));
    NF_FUZZ_CHECK(a->layout.nfields == b->layout.nfields);
    NF_FUZZ_CHECK(a->layout.record_bytes == b->layout.record_bytes);
    for (unsigned i = 0; i < a->layout.nfields; i++) {
        const struct nf_field *x = &a->layout.fields[i], *y = &b->layout.fields[i];
        NF_FUZZ_CHECK(!strcmp(x->name, y->name) && x->dtype == y->dtype && x->ndim == y->ndim &&
                      x->kind == y->kind);
        NF_FUZZ_CHECK(!memcmp(x->shape, y->shape, sizeof(x->shape)));
    }
    NF_FUZZ_CHECK(a->nshards == b->nshards);
    for (size_t i = 0; i < a->nshards; i++) {
        const struct nf_manifest_shard *x = &a->shards[i], *y = &b->shards[i];
        NF_FUZZ_CHECK(!strcmp(x->file, y->file));
        NF_FUZZ_CHECK(x->records == y->records && x->bytes == y->bytes && x->xxh3 == y->xxh3);
    }
}

/* Write m with the writer the packer uses and parse the file back. */
static void round_trip(const struct nf_manifest *m)
{
    unlink(path);
    int rc = nf__manifest_write(path, m);
    if (rc == -ENOMEM)
        return;
    NF_FUZZ_CHECK(rc == 0);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    NF_FUZZ_CHECK(fd >= 0);
    struct stat st;
    NF_FUZZ_CHECK(fstat(fd, &st) == 0);
    size_t len = (size_t)st.st_size;
    char *text = malloc(len ? len : 1);
    NF_FUZZ_CHECK(text != NULL);
    NF_FUZZ_CHECK(read(fd, text, len) == (ssize_t)len);
    close(fd);
    struct nf_manifest back;
    rc = nf__manifest_parse(text, len, "round trip", &back, NULL);
    free(text);
    if (rc == -ENOMEM)
        return;
    NF_FUZZ_CHECK(rc == 0);
    check_same(m, &back);
    nf__manifest_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nf_manifest m;
    long long pos = -2;
    int rc = nf__manifest_parse((const char *)data, size, "fuzz.json", &m, &pos);
    if (rc == 0) {
        NF_FUZZ_CHECK(pos == -1);
        check_manifest(&m);
        round_trip(&m);
        nf__manifest_free(&m);
    } else {
        NF_FUZZ_CHECK(rc == NUMAFEED_EMANIFEST || rc == NUMAFEED_EVERSION || rc == -ENOMEM);
        /* "on error *m is left empty" */
        NF_FUZZ_CHECK(m.nshards == 0 && m.shards == NULL && m.layout.fields == NULL);
        NF_FUZZ_CHECK(pos >= -1 && pos <= (long long)size);
    }
    return 0;
}
