// SPDX-License-Identifier: Apache-2.0
/*
 * manifest.json: the dataset's table of contents, read and written with
 * jansson. Everything in it is validated here, once, so the rest of src/io
 * can trust the struct: counts add up, file names cannot leave the dataset
 * directory, the layout is one nf__layout_build accepts.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "internal.h"
#include "io/io.h"

void nf__manifest_free(struct nf_manifest *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nshards; i++)
        free(m->shards[i].file);
    free(m->shards);
    nf__layout_free(&m->layout);
    memset(m, 0, sizeof(*m));
}

int nf__shard_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    /* No '/', no leading '.': the name can only denote a plain entry of the
     * dataset directory, never "..", a hidden temporary or the manifest. */
    if (n == 0 || n > 255 || s[0] == '.' || strchr(s, '/') || !strcmp(s, NF_MANIFEST_NAME))
        return 0;
    /* No control characters: a name is printed by check and in errors,
     * and must not drive the terminal it lands on. */
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (nf__control_len(c))
            return 0;
    return 1;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(**(char *const *const *)a, **(char *const *const *)b);
}

/* Every shard file listed once: sort pointers to the names, compare
 * neighbours (a dataset of a million shards is checked in a second). */
static int check_unique(const struct nf_manifest *m, const char *what)
{
    if (m->nshards < 2)
        return 0;
    char *const **v = malloc(m->nshards * sizeof(*v));
    if (!v)
        return nf__error(-ENOMEM, "%s: out of memory", what);
    for (size_t i = 0; i < m->nshards; i++)
        v[i] = &m->shards[i].file;
    qsort(v, m->nshards, sizeof(*v), cmp_name);
    int rc = 0;
    for (size_t i = 1; i < m->nshards && !rc; i++)
        if (!strcmp(*v[i - 1], *v[i]))
            rc = nf__error(NUMAFEED_EMANIFEST, "%s: shard file '%s' is listed twice", what,
                           *v[i]);
    free(v);
    return rc;
}

/* A non-negative JSON integer member. */
static int get_count(json_t *obj, const char *key, const char *what, const char *ctx, uint64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return nf__error(NUMAFEED_EMANIFEST, "%s: %s\"%s\" must be a non-negative integer", what,
                          ctx, key);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* One field of "fields" into f: {"name", "dtype", "shape"}, where version 2
 * also has "dtype": "bytes" or "str" without a shape, and "shape": [-1] for
 * a 1-D array whose length varies. */
static int parse_field(json_t *o, size_t i, const char *what, unsigned version,
                       struct numafeed_field *f)
{
    json_t *shape = json_object_get(o, "shape");
    f->name = json_string_value(json_object_get(o, "name"));
    f->dtype = json_string_value(json_object_get(o, "dtype"));
    int var_kind = f->dtype && (!strcmp(f->dtype, "bytes") || !strcmp(f->dtype, "str"));
    if (!json_is_object(o) || !f->name || !f->dtype ||
        (var_kind ? shape && json_array_size(shape) != 0
                  : !json_is_array(shape) || json_array_size(shape) > NF_MAX_DIMS))
        return nf__error(NUMAFEED_EMANIFEST, "%s: field %zu needs \"name\", \"dtype\" (strings) "
                         "and \"shape\" (a list of at most %u integers; none for bytes and "
                         "str)", what, i, NF_MAX_DIMS);
    if (var_kind && version < 2)
        return nf__error(NUMAFEED_EMANIFEST, "%s: field %zu: a %s field needs format version 2",
                         what, i, f->dtype);
    f->ndim = var_kind ? 0 : (unsigned)json_array_size(shape);
    for (unsigned d = 0; d < f->ndim; d++) {
        json_t *dim = json_array_get(shape, d);
        json_int_t v = json_is_integer(dim) ? json_integer_value(dim) : 0;
        if (v == -1 && f->ndim == 1 && version >= 2) {
            f->shape[0] = NUMAFEED_VARIABLE;
            continue;
        }
        if (v < 1)
            return nf__error(NUMAFEED_EMANIFEST, "%s: field %zu: shape entries must be "
                             "integers >= 1 (or [-1], a variable length, in version 2)", what,
                             i);
        f->shape[d] = (uint64_t)v;
    }
    return 0;
}

static int parse_fields(json_t *arr, const char *what, unsigned version, struct nf_layout *layout)
{
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n == 0 || n > NF_MAX_FIELDS)
        return nf__error(NUMAFEED_EMANIFEST, "%s: \"fields\" must be a list of 1 to %u fields",
                          what, NF_MAX_FIELDS);
    struct numafeed_field *f = calloc(n, sizeof(*f));
    if (!f)
        return nf__error(-ENOMEM, "%s: out of memory", what);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = parse_field(json_array_get(arr, i), i, what, version, &f[i]);
    if (!rc && (rc = nf__layout_build(f, n, layout)))
        rc = nf__error_prefix(NUMAFEED_EMANIFEST, "%s", what);
    if (!rc && version >= 2 && layout->nvar == 0)
        rc = nf__error(NUMAFEED_EMANIFEST, "%s: format version 2 without a variable field "
                       "(version 1 is the format of fixed records)", what);
    free(f);
    return rc;
}

static int parse_shards(json_t *arr, const char *what, struct nf_manifest *m)
{
    if (!json_is_array(arr))
        return nf__error(NUMAFEED_EMANIFEST, "%s: \"shards\" must be a list", what);
    size_t n = json_array_size(arr);
    if (n > NF_MANIFEST_MAX_SHARDS)
        return nf__error(NUMAFEED_EMANIFEST, "%s: %zu shards, more than the %u this numafeed "
                         "opens", what, n, NF_MANIFEST_MAX_SHARDS);
    m->shards = calloc(n ? n : 1, sizeof(*m->shards));
    if (!m->shards)
        return nf__error(-ENOMEM, "%s: out of memory for %zu shards", what, n);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        struct nf_manifest_shard *s = &m->shards[i];
        char ctx[48];
        snprintf(ctx, sizeof(ctx), "shard %zu: ", i);
        const char *file = json_string_value(json_object_get(o, "file"));
        const char *hex = json_string_value(json_object_get(o, "xxh3"));
        if (!json_is_object(o) || !file || !nf__shard_name_ok(file))
            return nf__error(NUMAFEED_EMANIFEST, "%s: %s\"file\" must be a plain file name "
                              "(no '/', not starting with '.', no control characters)", what,
                              ctx);
        int rc;
        if ((rc = get_count(o, "records", what, ctx, &s->records)) ||
            (rc = get_count(o, "bytes", what, ctx, &s->bytes)))
            return rc;
        char *end = NULL;
        if (!hex || strlen(hex) != 16 || strspn(hex, "0123456789abcdef") != 16)
            return nf__error(NUMAFEED_EMANIFEST, "%s: %s\"xxh3\" must be 16 lower-case hex digits",
                              what, ctx);
        s->xxh3 = strtoull(hex, &end, 16);
        if (!(s->file = strdup(file)))
            return nf__error(-ENOMEM, "%s: out of memory", what);
        m->nshards = i + 1;
        if (s->records == 0)
            return nf__error(NUMAFEED_EMANIFEST, "%s: shard '%s' holds no records", what, file);
        if (__builtin_add_overflow(total, s->records, &total))
            return nf__error(NUMAFEED_EMANIFEST, "%s: shard record counts overflow", what);
    }
    if (total != m->records)
        return nf__error(NUMAFEED_EMANIFEST, "%s: shards hold %llu records, \"records\" says %llu",
                          what, (unsigned long long)total, (unsigned long long)m->records);
    return check_unique(m, what);
}

int nf__manifest_parse(const char *text, size_t len, const char *what, struct nf_manifest *m,
                        long long *err_pos)
{
    memset(m, 0, sizeof(*m));
    if (err_pos)
        *err_pos = -1;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (err_pos)
            *err_pos = jerr.position;
        /* jansson quotes the text it stopped at ("... near 'xyz'"): cut it,
         * so a file that is not a manifest is never echoed */
        char *near = strstr(jerr.text, " near ");
        if (near)
            *near = '\0';
        return nf__error(NUMAFEED_EMANIFEST, "%s: invalid JSON at line %d, column %d (byte %d): %s",
                          what, jerr.line, jerr.column, jerr.position, jerr.text);
    }
    int rc = 0;
    json_t *ver = json_object_get(root, "version");
    const char *format = json_string_value(json_object_get(root, "format"));
    const char *codec = json_string_value(json_object_get(root, "codec"));
    uint64_t rb = 0;
    if (!json_is_object(root) || !format || strcmp(format, "numafeed") || !json_is_integer(ver)) {
        rc = nf__error(NUMAFEED_EMANIFEST, "%s: not a numafeed manifest (needs \"format\": "
                        "\"numafeed\" and an integer \"version\")", what);
    } else if (json_integer_value(ver) < NF_FORMAT_VERSION_FIXED ||
               json_integer_value(ver) > NF_FORMAT_VERSION) {
        rc = nf__error(NUMAFEED_EVERSION, "%s: format version %lld, this numafeed reads versions "
                        "%u and %u", what, (long long)json_integer_value(ver),
                        NF_FORMAT_VERSION_FIXED, NF_FORMAT_VERSION);
    } else if (!codec || (strcmp(codec, "zstd") && strcmp(codec, "none"))) {
        rc = nf__error(NUMAFEED_EMANIFEST, "%s: \"codec\" must be \"zstd\" or \"none\"", what);
    } else if (!(rc = get_count(root, "records", what, "", &m->records)) &&
               !(rc = get_count(root, "record_bytes", what, "", &rb)) &&
               !(rc = get_count(root, "block_bytes", what, "", &m->block_bytes)) &&
               !(rc = parse_fields(json_object_get(root, "fields"), what,
                                   (unsigned)json_integer_value(ver), &m->layout)) &&
               !(rc = parse_shards(json_object_get(root, "shards"), what, m))) {
        if (rb != m->layout.record_bytes)
            rc = nf__error(NUMAFEED_EMANIFEST, "%s: \"record_bytes\" is %llu, the fields add up "
                            "to %llu", what, (unsigned long long)rb,
                            (unsigned long long)m->layout.record_bytes);
    }
    if (!rc) {
        m->version = (unsigned)json_integer_value(ver);
        snprintf(m->codec, sizeof(m->codec), "%s", codec);
    }
    json_decref(root);
    if (rc)
        nf__manifest_free(m);
    return rc;
}

/* The manifest's bytes, opened beneath the directory, size capped before
 * anything is allocated. *text is malloc'd (not terminated). */
static int read_text(int dirfd, const char *dir, int follow, char **text, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, NF_MANIFEST_NAME);
    int fd;
    uint64_t size;
    int rc = nf__open_beneath(dirfd, dir, NF_MANIFEST_NAME, follow, 0, &fd, &size);
    if (rc == -ENOENT)
        return nf__error(rc, "%s: no such file (not a numafeed dataset, or an unfinished "
                         "pack)", path);
    if (rc == NUMAFEED_ECORRUPT) /* not a regular file: the message names it and what it is */
        rc = NUMAFEED_EMANIFEST;
    if (rc)
        return rc;
    if (size > NF_MANIFEST_MAX_BYTES) {
        close(fd);
        return nf__error(NUMAFEED_EMANIFEST, "%s: %llu bytes, more than the %u a manifest may "
                         "have", path, (unsigned long long)size, NF_MANIFEST_MAX_BYTES);
    }
    *len = (size_t)size;
    *text = malloc(*len ? *len : 1);
    if (!*text) {
        close(fd);
        return nf__error(-ENOMEM, "%s: out of memory", path);
    }
    rc = nf__pread_full(fd, *text, *len, 0, path);
    close(fd);
    if (rc) {
        free(*text);
        *text = NULL;
    }
    return rc;
}

int nf__manifest_load_at(int dirfd, const char *dir, int follow, struct nf_manifest *m,
                         long long *err_pos)
{
    memset(m, 0, sizeof(*m));
    if (err_pos)
        *err_pos = -1;
    char *text;
    size_t len;
    int rc = read_text(dirfd, dir, follow, &text, &len);
    if (rc)
        return rc;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, NF_MANIFEST_NAME);
    rc = nf__manifest_parse(text, len, path, m, err_pos);
    free(text);
    return rc;
}

int numafeed_dataset_manifest(const char *dir, int follow_symlinks, char **text, size_t *len)
{
    nf__error_clear();
    if (!dir || !text || !len)
        return nf__error(-EINVAL, "numafeed_dataset_manifest: NULL argument");
    *text = NULL;
    *len = 0;
    int dirfd;
    int rc = nf__dir_open(dir, &dirfd);
    if (rc)
        return rc;
    rc = read_text(dirfd, dir, follow_symlinks, text, len);
    close(dirfd);
    return rc;
}

int nf__manifest_load(const char *dir, struct nf_manifest *m, long long *err_pos)
{
    int dirfd;
    memset(m, 0, sizeof(*m));
    if (err_pos)
        *err_pos = -1;
    int rc = nf__dir_open(dir, &dirfd);
    if (rc)
        return rc;
    rc = nf__manifest_load_at(dirfd, dir, 0, m, err_pos);
    close(dirfd);
    return rc;
}

static json_t *build(const struct nf_manifest *m)
{
    json_t *fields = json_array(), *shards = json_array();
    for (unsigned i = 0; fields && i < m->layout.nfields; i++) {
        const struct nf_field *f = &m->layout.fields[i];
        if (f->kind == NF_KIND_BYTES || f->kind == NF_KIND_STR) {
            json_array_append_new(fields, json_pack("{s:s, s:s}", "name", f->name, "dtype",
                                                    f->kind == NF_KIND_BYTES ? "bytes" : "str"));
            continue;
        }
        json_t *shape = json_array();
        for (unsigned d = 0; shape && d < f->ndim; d++)
            json_array_append_new(shape, json_integer(f->kind == NF_KIND_ARRAY
                                                          ? -1 : (json_int_t)f->shape[d]));
        json_array_append_new(fields, json_pack("{s:s, s:s, s:o*}", "name", f->name, "dtype",
                                                nf__dtype_name(f->dtype), "shape", shape));
    }
    for (size_t i = 0; shards && i < m->nshards; i++) {
        const struct nf_manifest_shard *s = &m->shards[i];
        char hex[17];
        snprintf(hex, sizeof(hex), "%016" PRIx64, s->xxh3);
        json_array_append_new(shards, json_pack("{s:s, s:I, s:I, s:s}", "file", s->file, "records",
                                                (json_int_t)s->records, "bytes",
                                                (json_int_t)s->bytes, "xxh3", hex));
    }
    /* json_pack's "o*" steals the references, also on failure. */
    unsigned version = m->layout.nvar ? NF_FORMAT_VERSION : NF_FORMAT_VERSION_FIXED;
    return json_pack("{s:s, s:i, s:I, s:o*, s:I, s:s, s:I, s:o*}", "format", "numafeed", "version",
                     (int)version, "record_bytes", (json_int_t)m->layout.record_bytes,
                     "fields", fields, "records", (json_int_t)m->records, "codec", m->codec,
                     "block_bytes", (json_int_t)m->block_bytes, "shards", shards);
}

int nf__manifest_write(const char *path, const struct nf_manifest *m)
{
    json_t *root = build(m);
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (!text)
        return nf__error(-ENOMEM, "%s: could not encode the manifest", path);
    size_t len = strlen(text);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    int rc = 0;
    if (fd < 0) {
        rc = nf__error(-errno, "%s: create: %s", path, strerror(errno));
    } else {
        size_t done = 0;
        while (done < len && !rc) {
            ssize_t w = write(fd, text + done, len - done);
            if (w < 0 && errno != EINTR)
                rc = nf__error(-errno, "%s: write: %s", path, strerror(errno));
            else if (w > 0)
                done += (size_t)w;
        }
        if (!rc && (write(fd, "\n", 1) != 1 || fsync(fd)))
            rc = nf__error(-errno, "%s: write/fsync: %s", path, strerror(errno));
        if (close(fd) && !rc)
            rc = nf__error(-errno, "%s: close: %s", path, strerror(errno));
    }
    free(text);
    return rc;
}
