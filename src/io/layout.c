// SPDX-License-Identifier: Apache-2.0
/* Record layouts: the fixed dtype table, field validation, field specs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "io/io.h"

/* The order is part of nothing on disk (the manifest stores names), but the
 * list itself is: docs/format.md documents exactly these names. */
static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    {"uint8", 1},  {"int8", 1},  {"uint16", 2},  {"int16", 2},   {"uint32", 4},  {"int32", 4},
    {"uint64", 8}, {"int64", 8}, {"float16", 2}, {"bfloat16", 2}, {"float32", 4}, {"float64", 8},
};

int nf__dtype_lookup(const char *name)
{
    for (size_t i = 0; name && i < NF_ARRAY_SIZE(dtypes); i++)
        if (!strcmp(name, dtypes[i].name))
            return (int)i;
    return -EINVAL;
}

const char *nf__dtype_name(int dtype)
{
    return dtype >= 0 && (size_t)dtype < NF_ARRAY_SIZE(dtypes) ? dtypes[dtype].name : NULL;
}

size_t nf__dtype_size(int dtype)
{
    return dtype >= 0 && (size_t)dtype < NF_ARRAY_SIZE(dtypes) ? dtypes[dtype].size : 0;
}

static int name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > NF_NAME_MAX || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

void nf__layout_free(struct nf_layout *l)
{
    if (!l)
        return;
    free(l->fields);
    memset(l, 0, sizeof(*l));
}

/* The kind and dtype of a field description; -EINVAL with a message. */
static int field_kind(const struct numafeed_field *in, int *kind, int *dt)
{
    int is_bytes = in->dtype && !strcmp(in->dtype, "bytes");
    if (is_bytes || (in->dtype && !strcmp(in->dtype, "str"))) {
        if (in->ndim != 0)
            return nf__error(-EINVAL, "field '%s': a %s field has no shape (its length "
                             "varies per record)", in->name, in->dtype);
        *kind = is_bytes ? NF_KIND_BYTES : NF_KIND_STR;
        *dt = nf__dtype_lookup("uint8");
        return 0;
    }
    *dt = nf__dtype_lookup(in->dtype);
    if (*dt < 0)
        return nf__error(-EINVAL, "field '%s': unknown dtype '%s' (one of uint8, int8, "
                         "uint16, int16, uint32, int32, uint64, int64, float16, "
                         "bfloat16, float32, float64; or bytes, str)",
                         in->name, in->dtype ? in->dtype : "(null)");
    if (in->ndim > NF_MAX_DIMS)
        return nf__error(-EINVAL, "field '%s': %u dimensions, at most %u", in->name, in->ndim,
                         NF_MAX_DIMS);
    *kind = in->ndim == 1 && in->shape[0] == NUMAFEED_VARIABLE ? NF_KIND_ARRAY : NF_KIND_FIXED;
    return 0;
}

/* One field into f: kind, dtype, shape, size. */
static int build_field(const struct numafeed_field *in, struct nf_field *f)
{
    int rc = field_kind(in, &f->kind, &f->dtype);
    if (rc)
        return rc;
    memcpy(f->name, in->name, strlen(in->name) + 1);
    if (f->kind != NF_KIND_FIXED) {
        f->ndim = 1;
        f->shape[0] = NUMAFEED_VARIABLE;
        return 0;
    }
    uint64_t bytes = nf__dtype_size(f->dtype);
    for (unsigned d = 0; d < in->ndim; d++) {
        if (in->shape[d] == 0 || __builtin_mul_overflow(bytes, in->shape[d], &bytes) ||
            bytes > NF_BLOCK_CAP)
            return nf__error(-EINVAL, "field '%s': dimension %u is %llu: each must be "
                             ">= 1 (a variable length only as the one dimension of a 1-D "
                             "field) and a record at most %u bytes",
                             in->name, d, (unsigned long long)in->shape[d], NF_BLOCK_CAP);
        f->shape[d] = in->shape[d];
    }
    f->ndim = in->ndim;
    f->bytes = bytes;
    return 0;
}

int nf__layout_build(const struct numafeed_field *fields, size_t n, struct nf_layout *out)
{
    memset(out, 0, sizeof(*out));
    if (!fields || n == 0)
        return nf__error(-EINVAL, "a record layout needs at least one field");
    if (n > NF_MAX_FIELDS)
        return nf__error(-EINVAL, "%zu fields: at most %u are allowed", n, NF_MAX_FIELDS);
    struct nf_field *f = calloc(n, sizeof(*f));
    if (!f)
        return nf__error(-ENOMEM, "out of memory for %zu fields", n);
    uint64_t off = 0;
    unsigned nvar = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const struct numafeed_field *in = &fields[i];
        if (!name_ok(in->name)) {
            rc = nf__error(-EINVAL, "field %zu: bad name '%s' (1-%u characters of "
                           "[A-Za-z0-9_], not starting with a digit)",
                           i, in->name ? in->name : "(null)", NF_NAME_MAX);
            break;
        }
        for (size_t j = 0; j < i && !rc; j++)
            if (!strcmp(f[j].name, in->name))
                rc = nf__error(-EINVAL, "field name '%s' is used twice", in->name);
        if (rc || (rc = build_field(in, &f[i])))
            break;
        if (f[i].kind != NF_KIND_FIXED) {
            f[i].var = nvar++;
            continue;
        }
        f[i].offset = off;
        off += f[i].bytes; /* both <= NF_BLOCK_CAP, n <= NF_MAX_FIELDS: no overflow */
        if (off > NF_BLOCK_CAP)
            rc = nf__error(-EINVAL, "record size %llu bytes exceeds the block cap of %u",
                           (unsigned long long)off, NF_BLOCK_CAP);
    }
    if (rc) {
        free(f);
        return rc;
    }
    out->fields = f;
    out->nfields = (unsigned)n;
    out->record_bytes = off;
    out->nvar = nvar;
    return 0;
}

/* One decimal dimension, >= 1, no sign, no garbage. */
static int parse_dim(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
            return -EINVAL;
    }
    if (v == 0)
        return -EINVAL;
    *out = v;
    return 0;
}

int nf__field_parse(char *spec, struct numafeed_field *out)
{
    memset(out, 0, sizeof(*out));
    char *c1 = spec ? strchr(spec, ':') : NULL;
    if (!c1)
        return nf__error(-EINVAL, "field '%s': expected name:dtype[:shape]", spec ? spec : "");
    *c1 = '\0';
    char *dtype = c1 + 1;
    char *shape = strchr(dtype, ':');
    if (shape)
        *shape++ = '\0';
    out->name = spec;
    out->dtype = dtype;
    if (!shape || !*shape)
        return 0; /* a scalar, or bytes / str */
    if (!strcmp(shape, "*")) { /* a 1-D field whose length varies */
        out->ndim = 1;
        out->shape[0] = NUMAFEED_VARIABLE;
        return 0;
    }
    const char *p = shape;
    for (;;) {
        size_t len = strcspn(p, "x,");
        if (out->ndim == NF_MAX_DIMS)
            return nf__error(-EINVAL, "field '%s': more than %u dimensions", spec, NF_MAX_DIMS);
        if (parse_dim(p, len, &out->shape[out->ndim]))
            return nf__error(-EINVAL, "field '%s': bad dimension '%.*s' in shape '%s' "
                              "(positive integers separated by 'x' or ',')",
                              spec, (int)len, p, shape);
        out->ndim++;
        if (!p[len])
            break;
        p += len + 1;
    }
    return 0;
}
