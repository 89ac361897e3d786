// SPDX-License-Identifier: Apache-2.0
/* numafeed pack --from tar: WebDataset shards, one record per sample.
 *
 * libarchive reads the tar (and its compression); this file groups the
 * members into samples. A sample is the run of consecutive members whose
 * paths share a key, the path up to the first '.' of the base name; the
 * rest of the base name is the extension, which names the field. The
 * first sample fixes the layout (key, then its extensions in sorted
 * order) and the writer is created only then. Every member's size comes
 * from its header, which may claim anything: it is checked against
 * --max-record-bytes, with the sample's other fields, before a byte of it
 * is read. Keys seen in the current shard are kept in a hash set to catch
 * a sample whose members are not consecutive.
 *
 * Built without libarchive (NUMAFEED_HAVE_LIBARCHIVE unset), the source is
 * a stub at the end of this file that says so. */
#include "pack.h"

#ifdef NUMAFEED_HAVE_LIBARCHIVE
#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

/* One member of the sample being gathered; buffers are reused. */
struct member {
    char *ext;
    uint8_t *data;
    size_t size, cap;
};

struct sample {
    char *key;
    size_t key_cap;
    struct member *m;
    size_t n, cap;
    uint64_t record;  /* the record's size so far, for --max-record-bytes */
    int skipped;      /* too large and skipped: its other members are passed over */
};

/* Keys of the current shard: open addressing over XXH3 hashes. */
struct keyset {
    char **key;
    uint64_t *hash;
    size_t cap, n;
};

struct tar {
    struct pack_job *j;
    const char *shard; /* escaped, for messages */
    struct archive *ar;
    uint64_t done_bytes; /* input bytes of the shards before this one */
    struct sample s;
    struct keyset seen;
    /* the layout, fixed by the first sample: fields[0] is key */
    struct numafeed_field fields[NUMAFEED_MAX_FIELDS];
    char *exts[NUMAFEED_MAX_FIELDS];
    size_t nfields;
    char *first; /* the first sample's key, escaped, for messages */
    int64_t cls[NUMAFEED_MAX_FIELDS]; /* parsed cls values, by field */
    uint64_t samples;
};

/* ---- the key set ---- */

/* 1 if key was in the set, 0 once added, -ENOMEM. */
static int keyset_add(struct keyset *k, const char *key)
{
    if (2 * (k->n + 1) > k->cap) {
        struct keyset bigger = {.cap = k->cap ? 2 * k->cap : 1024};
        bigger.key = calloc(bigger.cap, sizeof(char *));
        bigger.hash = calloc(bigger.cap, sizeof(uint64_t));
        if (!bigger.key || !bigger.hash) {
            free(bigger.key);
            free(bigger.hash);
            return -ENOMEM;
        }
        for (size_t i = 0; i < k->cap; i++) {
            if (!k->key[i])
                continue;
            size_t at = k->hash[i] & (bigger.cap - 1);
            while (bigger.key[at])
                at = (at + 1) & (bigger.cap - 1);
            bigger.key[at] = k->key[i];
            bigger.hash[at] = k->hash[i];
        }
        free(k->key);
        free(k->hash);
        bigger.n = k->n;
        *k = bigger;
    }
    uint64_t h = XXH3_64bits(key, strlen(key));
    size_t at = h & (k->cap - 1);
    for (; k->key[at]; at = (at + 1) & (k->cap - 1))
        if (k->hash[at] == h && !strcmp(k->key[at], key))
            return 1;
    if (!(k->key[at] = strdup(key)))
        return -ENOMEM;
    k->hash[at] = h;
    k->n++;
    return 0;
}

static void keyset_clear(struct keyset *k)
{
    for (size_t i = 0; i < k->cap; i++)
        free(k->key[i]);
    free(k->key);
    free(k->hash);
    memset(k, 0, sizeof(*k));
}

/* ---- fields ---- */

/* A field's name from an extension: [A-Za-z0-9_] kept, the rest '_'. */
static void field_name(const char *ext, char *out, size_t cap)
{
    size_t i = 0;
    for (; ext[i] && i + 1 < cap; i++)
        out[i] = isalnum((unsigned char)ext[i]) && !((unsigned char)ext[i] & 0x80) ? ext[i] : '_';
    out[i] = '\0';
}

static const char *field_dtype(const char *ext)
{
    if (!strcmp(ext, "cls"))
        return "int64";
    /* text a person or a tokenizer reads: str, so UTF-8 is checked at pack
     * time rather than at training time */
    if (!strcmp(ext, "txt") || !strcmp(ext, "json"))
        return "str";
    return "bytes";
}

/* cls: a decimal integer with optional white space around it. */
static int parse_cls(const uint8_t *p, size_t n, int64_t *out)
{
    size_t i = 0;
    while (i < n && isspace(p[i]))
        i++;
    int neg = i < n && p[i] == '-';
    i += i < n && (p[i] == '-' || p[i] == '+');
    size_t first = i;
    uint64_t v = 0;
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++)
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, p[i] - '0', &v))
            return -ERANGE;
    if (i == first || v > (uint64_t)INT64_MAX + (uint64_t)neg)
        return -EINVAL;
    while (i < n && isspace(p[i]))
        i++;
    if (i != n)
        return -EINVAL;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static int by_ext(const void *x, const void *y)
{
    return strcmp(((const struct member *)x)->ext, ((const struct member *)y)->ext);
}

/* "shard: sample 'key'", for messages. */
static const char *where(const struct tar *t)
{
    static char buf[8192];
    snprintf(buf, sizeof(buf), "%s: sample '%s'", t->shard, pack_esc(t->s.key, 0));
    return buf;
}

/* where(), as pack_add calls it. */
static const char *sample_name(const void *t)
{
    return where(t);
}

/* The first sample's extensions, sorted, become the layout; checked as the
 * writer will check it, then the writer is created. */
static int lay_out(struct tar *t)
{
    struct sample *s = &t->s;
    qsort(s->m, s->n, sizeof(*s->m), by_ext);
    t->fields[0] = (struct numafeed_field){"key", "str", 0, {0}};
    t->nfields = 1;
    if (asprintf(&t->first, "'%s' in %s", pack_esc(s->key, 0), t->shard) < 0) {
        t->first = NULL;
        return pack_error("no memory");
    }
    for (size_t i = 0; i < s->n; i++) {
        char name[256];
        field_name(s->m[i].ext, name, sizeof(name));
        if (name[0] >= '0' && name[0] <= '9')
            return pack_error("%s: extension '%s' would name a field '%s', which starts with a "
                              "digit", where(t), pack_esc(s->m[i].ext, 0), name);
        for (size_t f = 0; f < t->nfields; f++)
            if (!strcmp(t->fields[f].name, name))
                return pack_error("%s: extension '%s' would name a field '%s', as %s does",
                                  where(t), pack_esc(s->m[i].ext, 0), name,
                                  f ? pack_esc(t->exts[f], 0) : "the sample's key");
        if (t->nfields == NUMAFEED_MAX_FIELDS)
            return pack_error("%s: more than %d extensions", where(t), NUMAFEED_MAX_FIELDS - 1);
        char *copy = strdup(name), *ext = strdup(s->m[i].ext);
        t->fields[t->nfields] = (struct numafeed_field){copy, field_dtype(ext), 0, {0}};
        t->exts[t->nfields++] = ext;
        if (!copy || !ext)
            return pack_error("no memory");
    }
    if (numafeed_layout_check(t->fields, t->nfields, NULL))
        return pack_error("%s: its fields make no valid layout: %s", where(t),
                          numafeed_last_error());
    return pack_open(t->j, t->fields, t->nfields);
}

/* The index of the sample's member with this extension, or s->n. */
static size_t member_of(const struct sample *s, const char *ext)
{
    size_t i = 0;
    while (i < s->n && strcmp(s->m[i].ext, ext))
        i++;
    return i;
}

/* The index of the layout's field for this extension, or t->nfields. */
static size_t field_of(const struct tar *t, const char *ext)
{
    size_t f = 1;
    while (f < t->nfields && strcmp(t->exts[f], ext))
        f++;
    return f;
}

/* Why the sample does not fit the layout, or NULL when it does; with
 * data[] and sizes[] filled in the layout's order when it does. */
static const char *match(struct tar *t, const void **data, size_t *sizes, char *why, size_t cap)
{
    struct sample *s = &t->s;
    data[0] = s->key;
    sizes[0] = strlen(s->key);
    for (size_t f = 1; f < t->nfields; f++) {
        size_t i = member_of(s, t->exts[f]);
        if (i == s->n) {
            snprintf(why, cap, "has no '%s' member, which the first sample (%s) has",
                     pack_esc(t->exts[f], 0), t->first);
            return why;
        }
        data[f] = s->m[i].data;
        sizes[f] = s->m[i].size;
    }
    if (s->n == t->nfields - 1)
        return NULL;
    /* every field was found and extensions are unique: one member is extra */
    size_t i = 0;
    while (i + 1 < s->n && field_of(t, s->m[i].ext) < t->nfields)
        i++;
    snprintf(why, cap, "has a '%s' member, which the first sample (%s) has not",
             pack_esc(s->m[i].ext, 0), t->first);
    return why;
}

/* cls members: their text becomes the int64 the field holds. */
static int parse_fixed(struct tar *t, const void **data, size_t *sizes)
{
    for (size_t f = 1; f < t->nfields; f++) {
        if (strcmp(t->fields[f].dtype, "int64"))
            continue;
        if (parse_cls(data[f], sizes[f], &t->cls[f]))
            return pack_error("%s: member '%s.%s' is not a decimal integer (a cls member holds "
                              "the class as text, such as \"7\")", where(t),
                              pack_esc(t->s.key, 0), pack_esc(t->exts[f], 0));
        data[f] = &t->cls[f];
        sizes[f] = sizeof(int64_t);
    }
    return CLI_EXIT_OK;
}

/* The gathered sample -> one record (or a skip). */
static int emit(struct tar *t)
{
    struct sample *s = &t->s;
    if (!s->key || s->skipped || !s->n)
        return CLI_EXIT_OK;
    int st;
    if (!t->j->w && (st = lay_out(t)))
        return st;
    const void *data[NUMAFEED_MAX_FIELDS];
    size_t sizes[NUMAFEED_MAX_FIELDS];
    char why[16384];
    if (match(t, data, sizes, why, sizeof(why))) {
        if (!t->j->a->skip_incomplete)
            return pack_error("%s %s; --skip-incomplete leaves such samples out", where(t), why);
        pack_skip(t->j, PACK_SKIP_INCOMPLETE, where(t));
        return CLI_EXIT_OK;
    }
    if ((st = parse_fixed(t, data, sizes)) || (st = pack_add(t->j, data, sizes, sample_name, t)))
        return st;
    t->samples++;
    return pack_tick(t->j);
}

/* ---- members ---- */

/* The extension of a member path (after the first '.' of its base name)
 * and the key's length; NULL when the path is not KEY.EXT. */
static const char *split(const char *path, size_t *key_len)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strchr(base, '.');
    if (!dot || dot == base || !dot[1])
        return NULL;
    *key_len = (size_t)(dot - path);
    return dot + 1;
}

/* A member with a new key: the gathered sample is emitted, the key must
 * not have been seen in this shard, and a new sample begins. */
static int start_sample(struct tar *t, const char *path, size_t key_len)
{
    int st = emit(t);
    if (st)
        return st;
    struct sample *s = &t->s;
    if (key_len + 1 > s->key_cap) {
        char *p = realloc(s->key, key_len + 1);
        if (!p)
            return pack_error("no memory");
        s->key = p;
        s->key_cap = key_len + 1;
    }
    memcpy(s->key, path, key_len);
    s->key[key_len] = '\0';
    s->n = 0;
    s->record = key_len;
    s->skipped = 0;
    int seen = keyset_add(&t->seen, s->key);
    if (seen < 0)
        return pack_error("no memory");
    if (seen)
        return pack_error("%s: key appears again after other samples; the members of a sample "
                          "must follow each other in the tar", where(t));
    return CLI_EXIT_OK;
}

/* Refuse or skip a member that would take the record over the limit;
 * called before it is read. *skip is 1 when the sample is skipped. */
static int check_size(struct tar *t, const char *path, la_int64_t size, int is_cls, int *skip)
{
    struct sample *s = &t->s;
    uint64_t max = t->j->a->o.max_record_bytes;
    *skip = 0;
    if (size < 0)
        return pack_error("%s: member '%s' has no size in its header", t->shard,
                          pack_esc(path, 0));
    uint64_t record = s->record + (is_cls ? sizeof(int64_t) : (uint64_t)size);
    if ((uint64_t)size <= max && record <= max) {
        s->record = record;
        return CLI_EXIT_OK;
    }
    if (!t->j->a->skip_too_large)
        return pack_error("%s: member '%s' is %llu bytes: the sample's record would be %llu "
                          "bytes or more, over --max-record-bytes %llu; --skip-too-large "
                          "leaves such samples out", t->shard, pack_esc(path, 0),
                          (unsigned long long)size,
                          (unsigned long long)(s->record + (uint64_t)size),
                          (unsigned long long)max);
    pack_skip(t->j, PACK_SKIP_TOO_LARGE, where(t));
    s->skipped = *skip = 1;
    return CLI_EXIT_OK;
}

/* A slot for one more member of the sample, its extension set. */
static struct member *new_member(struct tar *t, const char *path, const char *ext)
{
    struct sample *s = &t->s;
    if (member_of(s, ext) < s->n) {
        pack_error("%s: a second '%s' member ('%s')", where(t), pack_esc(ext, 0),
                   pack_esc(path, 0));
        return NULL;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        struct member *p = realloc(s->m, cap * sizeof(*p));
        if (!p)
            goto nomem;
        memset(p + s->cap, 0, (cap - s->cap) * sizeof(*p));
        s->m = p;
        s->cap = cap;
    }
    struct member *m = &s->m[s->n];
    free(m->ext);
    if (!(m->ext = strdup(ext)))
        goto nomem;
    s->n++;
    return m;
nomem:
    pack_error("no memory");
    return NULL;
}

/* Read a member's bytes, size already checked. */
static int read_member(struct tar *t, struct member *m, const char *path, size_t size)
{
    if (size > m->cap) {
        uint8_t *p = realloc(m->data, size);
        if (!p)
            return pack_error("%s: no memory for member '%s' (%zu bytes)", t->shard,
                              pack_esc(path, 0), size);
        m->data = p;
        m->cap = size;
    }
    for (m->size = 0; m->size < size;) {
        la_ssize_t n = archive_read_data(t->ar, m->data + m->size, size - m->size);
        if (n < 0)
            return pack_error("%s: reading member '%s': %s", t->shard, pack_esc(path, 0),
                              archive_error_string(t->ar));
        if (n == 0)
            return pack_error("%s: member '%s' ends after %zu of its %zu bytes", t->shard,
                              pack_esc(path, 0), m->size, size);
        m->size += (size_t)n;
    }
    return CLI_EXIT_OK;
}

/* One regular member: a new sample when its key changes, then its bytes. */
static int add_member(struct tar *t, struct archive_entry *e, const char *path)
{
    size_t key_len;
    const char *ext = split(path, &key_len);
    if (!ext) {
        char name[8192];
        snprintf(name, sizeof(name), "%s: member '%s'", t->shard, pack_esc(path, 0));
        pack_skip(t->j, PACK_SKIP_NOT_SAMPLE, name);
        return CLI_EXIT_OK;
    }
    struct sample *s = &t->s;
    int st = CLI_EXIT_OK, skip;
    if (!s->key || strlen(s->key) != key_len || memcmp(s->key, path, key_len))
        st = start_sample(t, path, key_len);
    if (st || s->skipped)
        return st;
    la_int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
    if ((st = check_size(t, path, size, !strcmp(ext, "cls"), &skip)) || skip)
        return st;
    struct member *m = new_member(t, path, ext);
    if (!m)
        return CLI_EXIT_FAIL;
    return read_member(t, m, path, (size_t)size);
}

/* ---- shards ---- */

/* Any member: regular files join samples; directories are structure;
 * links and special files are skipped and reported. */
static int next_member(struct tar *t, struct archive_entry *e)
{
    const char *path = archive_entry_pathname(e);
    if (!path)
        return pack_error("%s: a member without a path", t->shard);
    mode_t type = archive_entry_filetype(e);
    if (type == AE_IFDIR && !archive_entry_hardlink(e))
        return CLI_EXIT_OK;
    if (type == AE_IFREG && !archive_entry_hardlink(e))
        return add_member(t, e, path);
    char name[8192];
    snprintf(name, sizeof(name), "%s: member '%s'", t->shard, pack_esc(path, 0));
    pack_skip(t->j, type == AE_IFLNK || archive_entry_hardlink(e) ? PACK_SKIP_LINK
                                                                   : PACK_SKIP_SPECIAL, name);
    return CLI_EXIT_OK;
}

/* Every member of the open archive, then its last sample. */
static int read_members(struct tar *t)
{
    struct archive_entry *e;
    int st = CLI_EXIT_OK, r;
    while (!st && (r = archive_read_next_header(t->ar, &e)) != ARCHIVE_EOF) {
        if (r == ARCHIVE_WARN && t->j->a->verbose) /* a name not in this locale's charset */
            fprintf(stderr, "numafeed pack: %s: %s\n", t->shard, archive_error_string(t->ar));
        if (r < ARCHIVE_WARN)
            return pack_error("%s: %s", t->shard, archive_error_string(t->ar));
        st = next_member(t, e);
        t->j->in_bytes = t->done_bytes + (uint64_t)archive_filter_bytes(t->ar, -1);
        if (!st)
            st = pack_tick(t->j);
    }
    return st ? st : emit(t);
}

/* A reader of tar in the compressions shards come in. A filter built
 * without its library answers ARCHIVE_WARN (it runs the external program
 * instead): still usable. */
static int open_archive(struct tar *t, int fd)
{
    static int (*const support[])(struct archive *) = {
        archive_read_support_format_tar, archive_read_support_filter_gzip,
        archive_read_support_filter_bzip2, archive_read_support_filter_xz,
        archive_read_support_filter_zstd,
    };
    if (!(t->ar = archive_read_new()))
        return pack_error("no memory");
    for (size_t i = 0; i < sizeof(support) / sizeof(support[0]); i++)
        if (support[i](t->ar) < ARCHIVE_WARN)
            return pack_error("%s: %s", t->shard, archive_error_string(t->ar));
    if (archive_read_open_fd(t->ar, fd, 1 << 20) != ARCHIVE_OK)
        return pack_error("%s: %s", t->shard, archive_error_string(t->ar));
    return CLI_EXIT_OK;
}

/* One shard, start to end; samples do not continue into the next. */
static int read_shard(struct tar *t, const char *path)
{
    int fd = STDIN_FILENO;
    char shard[4096]; /* pack_esc's ring would reuse its buffer */
    snprintf(shard, sizeof(shard), "%s", pack_esc(strcmp(path, "-") ? path : "(standard input)", 0));
    t->shard = shard;
    if (strcmp(path, "-") && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return pack_error("%s: %s", shard, strerror(errno));
    int st = open_archive(t, fd);
    if (!st)
        st = read_members(t);
    if (t->ar)
        t->done_bytes += (uint64_t)archive_filter_bytes(t->ar, -1);
    archive_read_free(t->ar);
    t->ar = NULL;
    if (fd != STDIN_FILENO)
        close(fd);
    free(t->s.key); /* the next shard starts a new sample */
    t->s.key = NULL;
    t->s.key_cap = 0;
    keyset_clear(&t->seen);
    t->shard = NULL;
    return st;
}

static void tar_free(struct tar *t)
{
    for (size_t i = 0; i < t->s.cap; i++) {
        free(t->s.m[i].ext);
        free(t->s.m[i].data);
    }
    free(t->s.m);
    free(t->s.key);
    for (size_t f = 1; f < t->nfields; f++) {
        free((char *)t->fields[f].name);
        free(t->exts[f]);
    }
    keyset_clear(&t->seen);
    free(t->first);
    free(t);
}

int pack_tar(struct pack_job *j)
{
    struct tar *t = calloc(1, sizeof(*t));
    if (!t)
        return pack_error("no memory");
    t->j = j;
    for (int i = 0; i < j->a->ninputs; i++) {
        struct stat st;
        if (stat(j->a->inputs[i], &st) || !S_ISREG(st.st_mode)) {
            j->in_total = 0; /* a pipe or an error: no percentage */
            break;
        }
        j->in_total += (uint64_t)st.st_size;
    }
    int status = CLI_EXIT_OK, shards = 0;
    for (; shards < j->a->ninputs && status == CLI_EXIT_OK; shards++)
        status = read_shard(t, j->a->inputs[shards]);
    snprintf(j->source, sizeof(j->source), "from %llu samples in %d tar shard%s",
             (unsigned long long)t->samples, shards, shards == 1 ? "" : "s");
    tar_free(t);
    return status;
}

#else

int pack_tar(struct pack_job *j)
{
    (void)j;
    return pack_error("--from tar: this numafeed was built without libarchive (install it, "
                      "Debian's libarchive-dev, and rebuild)");
}

#endif
