// SPDX-License-Identifier: Apache-2.0
/*
 * decode gpu end to end, built twice from this file:
 *
 *   test_gpu_decode    on a real GPU with nvCOMP 6 (label gpu; skips, 77,
 *                      without a device, or without nvCOMP unless
 *                      $NUMAFEED_NVCOMP is set, when its absence fails);
 *                      also run under compute-sanitizer memcheck and
 *                      racecheck (NF_GPU_TEST_QUICK=1 makes it short);
 *   test_gpu_emulated  anywhere: the CUDA runtime, the kernels and nvCOMP
 *                      replaced at link time (--wrap) by host stand-ins
 *                      (device memory is host memory, a copy is memcpy,
 *                      every stream runs each call at once, nvCOMP is
 *                      libzstd, the verify kernel libxxhash). Every line of
 *                      the loader's GPU path runs as on a GPU; what only a
 *                      GPU has (streams overlapping, the kernels
 *                      themselves) is the real build's to show.
 *
 * Checked: batch for batch, every record id, offset and value byte equals
 * host-mode decode cpu's, for fixed and variable fields, both worker paths,
 * several thread counts, pread and mmap; decode cpu on the CUDA path too; a
 * damaged zstd block and a damaged raw block give exactly decode cpu's
 * typed error (code and message, naming shard and block) at the same
 * batch, and (emulated) the damaged frame never reaches nvCOMP: its stored
 * hash stops it on the host; and the choice: auto keeps the CPU, saying
 * whether the GPU would apply, and decode gpu fails, saying why, for host
 * batches, a raw dataset, over max_gpu_decode_bytes, and (emulated) without
 * stored hashes or nvCOMP.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "helpers.h"
#include "internal.h"
#include "io/io.h"
#include "pin/pin.h"

#ifdef NF_GPU_EMULATED
enum { EMULATED = 1 };
#else
#include <cuda_runtime_api.h>
enum { EMULATED = 0 };
#endif

static int no_nvcomp; /* emulated: nf__nvcomp_load fails, as without the library */
static int no_stored_hashes; /* emulated: the shards keep no hashes of stored blocks */

#ifdef NF_GPU_EMULATED
/* ---- the stand-ins ------------------------------------------------------ */

static int dummy_handle;
static struct nf_nvcomp fake_lib = {.version = 6000, .cudart_version = 13000,
                                    .path = "/emulated/libnvcomp.so.6"};

int __wrap_numafeed_has_cuda(void) { return 1; }
int __wrap_nf__cuda_device_count(void) { return 1; }
int __wrap_nf__cuda_set_device(int o) { (void)o; return 0; }
int __wrap_nf__cuda_host_register(void *p, size_t l, size_t c) { (void)p; (void)l; (void)c; return 0; }
void __wrap_nf__cuda_host_unregister(void *p, size_t l, size_t c) { (void)p; (void)l; (void)c; }
int __wrap_nf__cuda_host_alloc(size_t len, void **p)
{
    *p = aligned_alloc(4096, (len + 4095) & ~(size_t)4095);
    return *p ? 0 : -ENOMEM;
}
void __wrap_nf__cuda_host_free(void *p) { free(p); }
int __wrap_nf__cuda_malloc(size_t len, void **p)
{
    *p = aligned_alloc(256, (len + 255) & ~(size_t)255);
    return *p ? 0 : -ENOMEM;
}
void __wrap_nf__cuda_free(void *p) { free(p); }
int __wrap_nf__cuda_stream_create(void **s) { *s = &dummy_handle; return 0; }
void __wrap_nf__cuda_stream_destroy(void *s) { (void)s; }
int __wrap_nf__cuda_event_create(void **e) { *e = &dummy_handle; return 0; }
int __wrap_nf__cuda_event_create_timed(void **e) { *e = &dummy_handle; return 0; }
void __wrap_nf__cuda_event_destroy(void *e) { (void)e; }
int __wrap_nf__cuda_event_record(void *e, void *s) { (void)e; (void)s; return 0; }
int __wrap_nf__cuda_event_record_on(int d, void *e, void *s) { (void)d; (void)e; (void)s; return 0; }
int __wrap_nf__cuda_stream_wait_event_on(int d, void *s, void *e) { (void)d; (void)s; (void)e; return 0; }
int __wrap_nf__cuda_event_synchronize(void *e) { (void)e; return 0; }
int __wrap_nf__cuda_stream_synchronize(void *s) { (void)s; return 0; }
int __wrap_nf__cuda_event_elapsed_ns(void *a, void *b, uint64_t *ns)
{
    (void)a; (void)b;
    *ns = 1000;
    return 0;
}
int __wrap_nf__cuda_memcpy_h2d(void *d, const void *s, size_t n, void *st)
{
    (void)st;
    memcpy(d, s, n);
    return 0;
}
int __wrap_nf__cuda_memcpy_d2h(void *d, const void *s, size_t n, void *st)
{
    (void)st;
    memcpy(d, s, n);
    return 0;
}
int __wrap_nf__cuda_copy_to_host(int dev, void *d, const void *s, size_t n)
{
    (void)dev;
    memcpy(d, s, n);
    return 0;
}
int __wrap_nf__cuda_on_device(int dev, int (*fn)(void *), void *arg)
{
    (void)dev;
    return fn(arg);
}
/* copy direct: the shards "page-locked", each block copied from the
 * mapping; registrations counted, to see every one undone */
static atomic_int ro_registered;
int __wrap_nf__cuda_host_register_ro_on(int dev, const void *p, size_t len)
{
    (void)dev; (void)p; (void)len;
    atomic_fetch_add(&ro_registered, 1);
    return 0;
}
void __wrap_nf__cuda_host_unregister_one(const void *p)
{
    (void)p;
    atomic_fetch_sub(&ro_registered, 1);
}
int __wrap_nf__cuda_memcpy_batch_h2d(void *const *d, const void *const *s, const size_t *l,
                                     size_t n, void *st)
{
    (void)st;
    for (size_t i = 0; i < n; i++)
        memcpy(d[i], s[i], l[i]);
    return 0;
}
int __wrap_nf__gpu_kernels(const char **why) { *why = ""; return 1; }

/* The verify kernel: nvCOMP's status and size, then the hash. */
int __wrap_nf__gpu_verify(const struct nf_gpu_block *b, uint32_t n, struct nf_gpu_result *r,
                          void *s)
{
    (void)s;
    for (uint32_t k = 0; k < n; k++) {
        r[k] = (struct nf_gpu_result){NF_GPU_OK, 0, 0};
        if (b[k].screened && *b[k].screened)
            r[k] = (struct nf_gpu_result){NF_GPU_STORED, 0, *b[k].screened};
        else if (b[k].status && *b[k].status)
            r[k] = (struct nf_gpu_result){NF_GPU_STATUS, 0, (uint64_t)*b[k].status};
        else if (b[k].actual && *b[k].actual != b[k].len)
            r[k] = (struct nf_gpu_result){NF_GPU_SIZE, 0, *b[k].actual};
        else if (XXH3_64bits(b[k].data, b[k].len) != b[k].xxh3)
            r[k] = (struct nf_gpu_result){NF_GPU_HASH, 0, XXH3_64bits(b[k].data, b[k].len)};
    }
    return 0;
}

/* The screen kernel: a frame that is not the one written is swapped for
 * the stand-in before nvCOMP's turn. */
static atomic_uint frames_screened_out;
int __wrap_nf__gpu_screen(const struct nf_gpu_screen *c, uint32_t n, void *s)
{
    (void)s;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t h = XXH3_64bits(c[i].data, c[i].len);
        *c[i].found = 0;
        if (h == c[i].xxh3)
            continue;
        *c[i].in_ptr = c[i].safe;
        *c[i].in_bytes = c[i].safe_len;
        *c[i].found = h ? h : 1;
        atomic_fetch_add(&frames_screened_out, 1);
    }
    return 0;
}

int __wrap_nf__gpu_gather(const struct nf_gpu_copy *c, uint32_t n, void *s)
{
    (void)s;
    for (uint32_t i = 0; i < n; i++)
        memcpy(c[i].dst, c[i].src, c[i].len);
    return 0;
}

int __wrap_nf__nvcomp_load(void)
{
    return no_nvcomp ? nf__error(NUMAFEED_ENVCOMP, "nvCOMP 6 not found (emulated)") : 0;
}
const struct nf_nvcomp *__wrap_nf__nvcomp(void) { return no_nvcomp ? NULL : &fake_lib; }
int __wrap_nf__nvcomp_zstd_alignments(const struct nf_nvcomp *l, struct nf_nvcomp_alignments *a)
{
    (void)l;
    *a = (struct nf_nvcomp_alignments){1, 1, 8};
    return 0;
}
int __wrap_nf__nvcomp_zstd_temp(const struct nf_nvcomp *l, size_t c, size_t m, size_t t,
                                size_t *temp)
{
    (void)l; (void)t;
    *temp = c * m / 4; /* some scratch, to be carved and never touched */
    return 0;
}
/* nvCOMP: each frame decoded by libzstd into a buffer of its capacity;
 * frames it could not decode, or that decode to another size than the
 * block's, are counted (the real one may hang on them): all but the
 * screen's stand-in, which decodes soundly to nothing. */
static atomic_uint bad_frames_seen; /* the workers call it at once */
/* The screen's stand-in: libzstd's frame of nothing, byte for byte. */
static bool stand_in(const void *in, size_t len)
{
    uint8_t empty[64];
    size_t n = ZSTD_compress(empty, sizeof(empty), "", 0, 1);
    return !ZSTD_isError(n) && len == n && !memcmp(in, empty, n);
}
int __wrap_nf__nvcomp_zstd_decompress(const struct nf_nvcomp *l, const struct nf_nvcomp_batch *b,
                                      void *s)
{
    (void)l; (void)s;
    for (size_t i = 0; i < b->n; i++) {
        size_t got = ZSTD_decompress(b->out_ptrs[i], b->out_bytes[i], b->in_ptrs[i],
                                     b->in_bytes[i]);
        if (ZSTD_isError(got) || (got != b->out_bytes[i] && !stand_in(b->in_ptrs[i],
                                                                      b->in_bytes[i])))
            atomic_fetch_add(&bad_frames_seen, 1);
        b->statuses[i] = ZSTD_isError(got) ? 12 : 0;
        b->actual[i] = ZSTD_isError(got) ? 0 : got;
    }
    return 0;
}
bool __real_nf__dataset_stored_hashes(const struct nf_dataset *ds);
bool __wrap_nf__dataset_stored_hashes(const struct nf_dataset *ds)
{
    return !no_stored_hashes && __real_nf__dataset_stored_hashes(ds);
}
const char *__wrap_nf__nvcomp_status_string(const struct nf_nvcomp *l, int s)
{
    (void)l; (void)s;
    return "emulated: cannot decompress";
}
#endif /* NF_GPU_EMULATED */

/* ---- datasets ----------------------------------------------------------- */

static char *base, *fixed_ds, *var_ds, *raw_ds;

enum { RB = 1024 };
static int quick; /* NF_GPU_TEST_QUICK: one small run of each kind, for the sanitizers */
/* records: the real GPU gets more blocks, so that several workers' units
 * overlap, unless quick */
static uint64_t nfix, nvar;

/* Records compress, except those of every fifth 16-record stretch:
 * noise, which the writer stores raw, so blocks of both codecs meet. */
static void fixed_record(uint64_t i, uint8_t *r)
{
    uint64_t x = i * 0x9E3779B97F4A7C15ull;
    for (size_t k = 0; k < RB; k++) {
        if ((i / 16) % 5 == 4) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            r[k] = (uint8_t)x;
        } else {
            r[k] = (uint8_t)((i + k / 16) & 0x3f);
        }
    }
    memcpy(r, &i, sizeof(i));
}

static char *pack_fixed(const char *name, int codec)
{
    char *dir;
    assert_true(asprintf(&dir, "%s/%s", base, name) > 0);
    struct numafeed_field f = {.name = "tokens", .dtype = "int32", .ndim = 1, .shape = {RB / 4}};
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.codec = codec;
    o.block_bytes = 16 << 10;
    o.shard_bytes = 1 << 20;
    numafeed_writer *w;
    assert_int_equal(numafeed_writer_create(dir, &f, 1, &o, &w), 0);
    uint8_t r[RB];
    for (uint64_t i = 0; i < nfix; i++) {
        fixed_record(i, r);
        assert_int_equal(numafeed_writer_append(w, r, 1), 0);
    }
    assert_int_equal(numafeed_writer_finish(w), 0);
    numafeed_writer_destroy(w);
    return dir;
}

static char *pack_var(void)
{
    static const struct numafeed_field fields[] = {
        {.name = "key", .dtype = "str"},
        {.name = "data", .dtype = "bytes"},
        {.name = "label", .dtype = "int64"},
        {.name = "tokens", .dtype = "int32", .ndim = 1, .shape = {NUMAFEED_VARIABLE}},
    };
    char *dir;
    assert_true(asprintf(&dir, "%s/var", base) > 0);
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.block_bytes = 4096;
    o.shard_bytes = 64 << 10;
    numafeed_writer *w;
    assert_int_equal(numafeed_writer_create(dir, fields, 4, &o, &w), 0);
    uint8_t data[700];
    int32_t tok[50];
    for (uint64_t i = 0; i < nvar; i++) {
        char key[64];
        size_t klen = (size_t)sprintf(key, "rec-%llu", (unsigned long long)i);
        size_t dl = (size_t)((i * 37) % 700), nt = (size_t)((i * 13) % 50);
        for (size_t k = 0; k < dl; k++)
            data[k] = (uint8_t)(i * 31 + k * 7);
        for (size_t k = 0; k < nt; k++)
            tok[k] = (int32_t)(i * 1000 + k);
        int64_t label = (int64_t)i * 3;
        const void *d[4] = {key, data, &label, tok};
        size_t sz[4] = {klen, dl, 8, nt * 4};
        assert_int_equal(numafeed_writer_add(w, d, sz), 0);
    }
    assert_int_equal(numafeed_writer_finish(w), 0);
    numafeed_writer_destroy(w);
    return dir;
}

/* ---- loaders ------------------------------------------------------------ */

struct run {
    const char *dir;
    int device, decode, io;
    uint32_t threads, prefetch, batch;
    uint64_t window, max_gpu;
    uint64_t start_batch; /* resume mid-epoch */
    int copy;             /* enum loader_copy (0: auto) */
};

static int create(const struct run *r, loader_t **L)
{
    struct loader_config c;
    loader_config_init(&c);
    c.path = r->dir;
    c.device = r->device;
    c.decode = r->decode;
    c.io = r->io;
    c.threads = r->threads;
    c.prefetch = r->prefetch;
    c.batch_size = r->batch ? r->batch : 64;
    c.shuffle_window = r->window;
    c.max_gpu_decode_bytes = r->max_gpu;
    c.start_batch = r->start_batch;
    c.copy = r->copy;
    c.seed = 9;
    c.world_size = 1;
    int zero = 0, node = 0;
    c.gpus = &zero;
    c.ngpus = 1;
    if (EMULATED)
        c.node_override = &node; /* no GPU in this machine's sysfs */
    return loader_create(&c, L);
}

static loader_t *make(const struct run *r)
{
    loader_t *L;
    if (create(r, &L))
        fail_msg("loader_create: %s", numafeed_last_error());
    return L;
}

/* Field f's values on the host: the slot's, or a copy from the device
 * (decode gpu keeps none on the host), into *buf (freed by the caller). */
static const uint8_t *values(loader_t *L, const struct loader_batch *b, unsigned f,
                             uint8_t **buf)
{
    const struct loader_field *v = &b->fields[f];
    *buf = NULL;
    if (v->host)
        return v->host;
    *buf = malloc(v->values_bytes ? (size_t)v->values_bytes : 1);
    assert_int_equal(loader_field_to_host(L, b, f, *buf, (size_t)v->values_bytes), 0);
    return *buf;
}

/* A variable field's offsets as the device has them. */
static void device_offsets(const struct loader_field *v, int64_t *out, size_t n)
{
#ifdef NF_GPU_EMULATED
    memcpy(out, v->offsets_device, n);
#else
    assert_int_equal(cudaMemcpy(out, v->offsets_device, n, cudaMemcpyDeviceToHost), cudaSuccess);
#endif
}

/* Batch for batch: ids, offsets (host and device) and value bytes. */
static void same_batch(loader_t *A, const struct loader_batch *a, loader_t *B,
                       const struct loader_batch *b)
{
    assert_int_equal(a->records, b->records);
    assert_int_equal(a->index, b->index);
    assert_memory_equal(a->record_ids, b->record_ids, a->records * sizeof(uint64_t));
    assert_int_equal(a->nfields, b->nfields);
    for (unsigned f = 0; f < a->nfields; f++) {
        const struct loader_field *x = &a->fields[f], *y = &b->fields[f];
        assert_int_equal(x->values_bytes, y->values_bytes);
        uint8_t *bx, *by;
        const uint8_t *vx = values(A, a, f, &bx), *vy = values(B, b, f, &by);
        if (memcmp(vx, vy, (size_t)x->values_bytes))
            fail_msg("batch %llu field %s: values differ", (unsigned long long)a->index, x->name);
        free(bx);
        free(by);
        if (x->kind != LOADER_FIELD_FIXED) {
            size_t n = (a->records + 1) * sizeof(int64_t);
            assert_memory_equal(x->offsets, y->offsets, n);
            if (y->offsets_device) {
                int64_t *dev = malloc(n);
                device_offsets(y, dev, n);
                assert_memory_equal(x->offsets, dev, n);
                free(dev);
            }
        }
    }
}

/* Two loaders in lockstep for `epochs` epochs: the same batches. Returns
 * the second's units built by the window path. */
static uint64_t lockstep(const struct run *ref, const struct run *got, int epochs)
{
    loader_t *A = make(ref), *B = make(got);
    struct loader_pool_info pi = {.size = sizeof(pi)};
    assert_int_equal(loader_pool_info(B, 0, &pi), 0);
    if (got->decode == LOADER_DECODE_GPU) {
        /* mapped: copy auto sends the stored blocks from the page cache */
        bool direct = got->copy == LOADER_COPY_DIRECT ||
                      (got->copy == LOADER_COPY_AUTO && got->io == LOADER_IO_MMAP);
        assert_string_equal(pi.decode, "gpu");
        assert_string_equal(pi.copy, direct ? "direct" : "gathered");
        assert_true(pi.gpu_decode_bytes > 0);
    }
    for (int e = 0; e < epochs; e++) {
        struct loader_batch a = LOADER_BATCH_INIT, b = LOADER_BATCH_INIT;
        int ra, rb;
        while ((ra = loader_next(A, 0, &a, 30000)) == 0) {
            rb = loader_next(B, 0, &b, 30000);
            if (rb)
                fail_msg("loader_next: %s: %s", numafeed_err_name(rb), nf_loader_error(B));
            same_batch(A, &a, B, &b);
            if (got->decode == LOADER_DECODE_GPU)
                assert_null(b.fields[0].host);
            assert_int_equal(loader_release(A, &a), 0);
            assert_int_equal(loader_release(B, &b), 0);
        }
        assert_int_equal(ra, NUMAFEED_EEPOCH_END);
        assert_int_equal(loader_next(B, 0, &b, 30000), NUMAFEED_EEPOCH_END);
    }
    struct loader_stats st = {.size = sizeof(st)};
    assert_int_equal(loader_stats(B, 0, &st), 0);
    if (got->decode == LOADER_DECODE_GPU) {
        assert_true(st.gpu_decode_ns > 0);
        assert_true(st.blocks_decoded > 0);
    } else {
        assert_int_equal(st.gpu_decode_ns, 0);
    }
    loader_destroy(A);
    loader_destroy(B);
#ifdef NF_GPU_EMULATED
    assert_int_equal(atomic_load(&ro_registered), 0); /* every shard unregistered */
#endif
    return st.units_windowed;
}

static void matrix(const char *dir, uint64_t big_window)
{
    /* pread: staged; mmap: copy auto, so direct (each block from the
     * page-locked mapping) */
    int ios[] = {LOADER_IO_PREAD, LOADER_IO_MMAP};
    uint32_t threads[] = {1, 3, 8};
    for (int i = 0; i < 2; i++)
        for (int ti = quick ? 1 : 0; ti < (quick ? 2 : EMULATED ? 2 : 3); ti++)
            for (int path = 0; path < 2; path++) {
                uint32_t t = threads[ti];
                /* path 1: a two-slot ring and large windows, every unit
                 * built batch by batch (the window path) */
                struct run ref = {dir, LOADER_DEVICE_CPU, LOADER_DECODE_CPU, ios[i], t,
                                  path ? 2 : 0, 0, path ? big_window : 0, 0, 0, 0};
                struct run gpu = ref;
                gpu.device = LOADER_DEVICE_CUDA;
                gpu.decode = LOADER_DECODE_GPU;
                uint64_t windowed = lockstep(&ref, &gpu, quick ? 1 : 2);
                if (path)
                    assert_true(windowed > 0);
                if (path == 0) { /* resumed mid-epoch: the same batches from there */
                    struct run r0 = ref, r1 = gpu;
                    r0.start_batch = r1.start_batch = 7;
                    lockstep(&r0, &r1, 1);
                }
                if (i == 0 && path == 0 && !quick) { /* decode cpu on the CUDA path, staged */
                    struct run staged = ref;
                    staged.device = LOADER_DEVICE_CUDA;
                    lockstep(&ref, &staged, 1);
                }
                if (i == 1 && path == 0) {
                    struct run staged = gpu; /* mapped, and copy staged asked for */
                    staged.copy = LOADER_COPY_STAGED;
                    lockstep(&ref, &staged, 1);
                }
            }
}

static void test_fixed(void **state)
{
    (void)state;
    matrix(fixed_ds, 700);
}

static void test_variable(void **state)
{
    (void)state;
    matrix(var_ds, 300);
}

/* ---- damage ------------------------------------------------------------- */

/* The first block of codec want_codec from the middle of dir on: its
 * shard's path (into shard) and the offset of the middle of its stored
 * bytes. */
static void middle_of_block(const char *dir, int want_codec, char *shard, size_t len,
                            uint64_t *at)
{
    numafeed_dataset *ds;
    assert_int_equal(numafeed_dataset_open(dir, &ds), 0);
    struct numafeed_block_info bi = {.size = sizeof(bi)};
    uint32_t g = numafeed_dataset_blocks(ds) / 2;
    for (;; g++) {
        assert_int_equal(numafeed_dataset_block(ds, g, &bi), 0);
        if (bi.codec == want_codec)
            break;
    }
    snprintf(shard, len, "%s/%s", dir, bi.shard);
    *at = bi.offset + bi.stored_bytes / 2;
    numafeed_dataset_close(ds);
}

/* A fresh copy of dataset dir under base, named name. */
static char *copy_of(const char *dir, const char *name)
{
    char *out;
    assert_true(asprintf(&out, "%s/%s", base, name) > 0);
    assert_int_equal(nf_run(NULL, "rm -rf '%s' && cp -r '%s' '%s'", out, dir, out), 0);
    return out;
}

/* A copy of dir with one byte in the middle of the stored bytes of a
 * block of codec want_codec flipped. */
static char *damaged(const char *dir, const char *name, int want_codec)
{
    char *out = copy_of(dir, name), shard[4200];
    uint64_t at;
    middle_of_block(out, want_codec, shard, sizeof(shard), &at);
    assert_int_equal(nf_flip_byte(shard, at), 0);
    return out;
}

/* Take and release batches until loader_next fails: its code (*batches
 * delivered before it, when batches is not NULL). */
static int drain(loader_t *L, uint64_t *batches)
{
    struct loader_batch b = LOADER_BATCH_INIT;
    int rc;
    while ((rc = loader_next(L, 0, &b, 30000)) == 0) {
        if (batches)
            (*batches)++;
        loader_release(L, &b);
    }
    return rc;
}

/* Batches delivered before the error, the error and its message. */
static int until_error(const struct run *r, uint64_t *batches, char *msg, size_t len)
{
    loader_t *L = make(r);
    *batches = 0;
    int rc = drain(L, batches);
    loader_last_error(L, msg, len);
    loader_destroy(L);
    return rc;
}

static void damage(int codec)
{
    char *d = damaged(fixed_ds, codec == NUMAFEED_BLOCK_ZSTD ? "dz" : "dr", codec);
#ifdef NF_GPU_EMULATED
    atomic_store(&bad_frames_seen, 0);
#endif
    for (uint32_t t = quick ? 3 : 1; t <= 3; t += 2) {
        struct run cpu = {d, LOADER_DEVICE_CPU, LOADER_DECODE_CPU, LOADER_IO_PREAD, t, 0, 0, 0, 0, 0, 0};
        struct run gpu = cpu;
        gpu.device = LOADER_DEVICE_CUDA;
        gpu.decode = LOADER_DECODE_GPU;
        char mc[1024], mg[1024];
        uint64_t bc, bg;
        int rc = until_error(&cpu, &bc, mc, sizeof(mc));
        assert_true(rc == NUMAFEED_ECORRUPT || rc == NUMAFEED_ECHECKSUM);
        assert_non_null(strstr(mc, "shard-"));
        assert_non_null(strstr(mc, ": block "));
        for (int io = 0; io < 2; io++) { /* staged, then direct from the mapping */
            gpu.io = io ? LOADER_IO_MMAP : LOADER_IO_PREAD;
            int rg = until_error(&gpu, &bg, mg, sizeof(mg));
            printf("# cpu: %s after %llu batches: %s\n# gpu (%s): %s after %llu batches: %s\n",
                   numafeed_err_name(rc), (unsigned long long)bc, mc, io ? "mmap" : "pread",
                   numafeed_err_name(rg), (unsigned long long)bg, mg);
            assert_int_equal(rg, rc);
            assert_int_equal(bg, bc);
            /* the very same words: shard, block, offset and what was wrong */
            assert_string_equal(mg, mc);
        }
#ifdef NF_GPU_EMULATED
        /* the damaged frame was caught by its stored hash on the host:
         * nvCOMP (on a GPU it can hang on one) never had it */
        assert_int_equal(atomic_load(&bad_frames_seen), 0);
#endif
    }
    nf_rmtree(d);
    free(d);
}

static void test_damaged_zstd_block(void **state)
{
    (void)state;
    damage(NUMAFEED_BLOCK_ZSTD);
}

static void test_damaged_raw_block(void **state)
{
    (void)state;
    damage(NUMAFEED_BLOCK_RAW);
}

/* A shard cut short under decode gpu's direct copy: the host's check of a
 * frame it has not checked yet is a typed error naming the shard; a frame
 * checked before reaches the GPU from its page-locked pages (which the cut
 * cannot take away) and decodes as it was. Never a crash. Not emulated:
 * the stand-in's copy reads the mapping as the host would, unguarded; not
 * quick: host-side, nothing for the GPU's sanitizers, and slow under them. */
static void test_truncated_direct(void **state)
{
    (void)state;
    if (EMULATED || quick)
        skip();
    char *d = copy_of(fixed_ds, "cut");
    struct run r = {d, LOADER_DEVICE_CUDA, LOADER_DECODE_GPU, LOADER_IO_MMAP, 3, 0, 0, 0, 0, 0,
                    LOADER_COPY_DIRECT};
    loader_t *L = make(&r);
    char shard[4200];
    snprintf(shard, sizeof(shard), "%s/shard-00000.nfs", d);
    assert_int_equal(truncate(shard, 64), 0);
    int rc = drain(L, NULL);
    if (rc == NUMAFEED_EEPOCH_END)
        rc = drain(L, NULL);
    const char *msg = nf_loader_error(L);
    printf("# truncated under decode gpu, copy direct: %s: %s\n", numafeed_err_name(rc), msg);
    assert_true(rc == NUMAFEED_EEPOCH_END || rc == NUMAFEED_ECORRUPT);
    if (rc == NUMAFEED_ECORRUPT)
        assert_non_null(strstr(msg, "shard-00000.nfs"));
    loader_destroy(L);
    nf_rmtree(d);
    free(d);
}

/* A frame changed in the page cache after the host checked it (copy
 * direct checks a frame the first time only): the screen finds it on the
 * GPU before nvCOMP's turn, nvCOMP never reads it, and the batch it
 * affects fails with a typed error naming shard and block. */
static void test_changed_under_direct(void **state)
{
    (void)state;
    char *d = copy_of(fixed_ds, "changed");
    char shard[4200];
    uint64_t at;
    middle_of_block(d, NUMAFEED_BLOCK_ZSTD, shard, sizeof(shard), &at);
    struct run r = {d, LOADER_DEVICE_CUDA, LOADER_DECODE_GPU, LOADER_IO_MMAP, 2, 0, 0, 0, 0, 0,
                    LOADER_COPY_DIRECT};
    loader_t *L = make(&r);
    assert_int_equal(drain(L, NULL), NUMAFEED_EEPOCH_END); /* every frame checked once */
#ifdef NF_GPU_EMULATED
    atomic_store(&bad_frames_seen, 0);
    atomic_store(&frames_screened_out, 0);
#endif
    assert_int_equal(nf_flip_byte(shard, at), 0);
    int rc = drain(L, NULL);
    const char *msg = nf_loader_error(L);
    printf("# changed under decode gpu, copy direct: %s: %s\n", numafeed_err_name(rc), msg);
    assert_true(rc == NUMAFEED_ECORRUPT || rc == NUMAFEED_ECHECKSUM);
    assert_non_null(strstr(msg, strrchr(shard, '/') + 1));
    assert_non_null(strstr(msg, ": block "));
#ifdef NF_GPU_EMULATED
    assert_true(atomic_load(&frames_screened_out) > 0);
    assert_int_equal(atomic_load(&bad_frames_seen), 0); /* nvCOMP never had it */
#endif
    loader_destroy(L);
    nf_rmtree(d);
    free(d);
}

/* ---- the choice --------------------------------------------------------- */

static void info(const struct run *r, struct loader_pool_info *pi)
{
    loader_t *L = make(r);
    pi->size = sizeof(*pi);
    assert_int_equal(loader_pool_info(L, 0, pi), 0);
    printf("# decode %s: %s\n", pi->decode, pi->decode_why);
    loader_destroy(L);
}

/* r's dataset and machine: decode auto falls back to the CPU, its why
 * holding why, and decode gpu fails with code, its message holding msg
 * (NULL: not looked at); *pi is auto's pool. */
static void falls_back(struct run r, const char *why, int code, const char *msg,
                       struct loader_pool_info *pi)
{
    loader_t *L;
    r.decode = LOADER_DECODE_AUTO;
    info(&r, pi);
    assert_string_equal(pi->decode, "cpu");
    assert_non_null(strstr(pi->decode_why, why));
    r.decode = LOADER_DECODE_GPU;
    assert_int_equal(create(&r, &L), code);
    if (msg)
        assert_non_null(strstr(numafeed_last_error(), msg));
}

static void test_choice(void **state)
{
    (void)state;
    struct loader_pool_info pi;
    struct run r = {fixed_ds, LOADER_DEVICE_AUTO, LOADER_DECODE_AUTO, 0, 2, 0, 0, 0, 0, 0, 0};
    info(&r, &pi); /* everything there: auto still decodes on the CPU, and says why */
    assert_string_equal(pi.decode, "cpu");
    assert_non_null(strstr(pi.decode_why, "decode gpu must be asked for"));
    assert_non_null(strstr(pi.decode_why, "available: nvCOMP 6.0.0"));

    r.decode = LOADER_DECODE_GPU; /* asked for: the GPU */
    info(&r, &pi);
    assert_string_equal(pi.decode, "gpu");
    assert_non_null(strstr(pi.decode_why, "decode gpu: nvCOMP 6.0.0"));
    assert_non_null(strstr(pi.notes, "decode gpu"));
    /* io auto reads this dataset (made just now, so in the page cache) from
     * its mapping: copy auto sends its blocks from there */
    assert_string_equal(pi.copy, "direct");
    assert_null(strstr(pi.notes, "copy staged"));
    r.io = LOADER_IO_PREAD; /* read into the staging: the notes say why */
    info(&r, &pi);
    assert_string_equal(pi.copy, "gathered");
    assert_non_null(strstr(pi.notes, "copy staged: the shards are read with io_uring or pread"));
    r.copy = LOADER_COPY_DIRECT; /* asked for: refused, saying why */
    loader_t *Ld;
    assert_int_equal(create(&r, &Ld), NUMAFEED_ECONFIG);
    assert_non_null(strstr(numafeed_last_error(), "copy direct: the shards are read with"));
    r.io = LOADER_IO_AUTO;
    r.copy = LOADER_COPY_AUTO;

    /* a ring too small for the workers' units to stream: the notes say so.
     * Units of 256 records span 256 / 64 + 2 batches, so 2 workers streaming
     * theirs while as many wait for the consumer take 2 x 2 x 6 = 24 slots.
     * (The default ring holds threads + 2 windows, less than that: its
     * note depends on the dataset's size, which caps the default.) */
    r.window = 256;
    r.prefetch = 24;
    info(&r, &pi);
    assert_null(strstr(pi.notes, "lets every worker stream"));
    r.prefetch = 23;
    info(&r, &pi);
    assert_non_null(strstr(pi.notes, "decode gpu: 23 slots hold 2 workers' units of about 6 "
                                     "batches only in part: prefetch 24 lets every worker "
                                     "stream its unit"));
    r.prefetch = 0;
    r.window = 0;

    r.decode = LOADER_DECODE_CPU;
    info(&r, &pi);
    assert_string_equal(pi.decode, "cpu");
    assert_string_equal(pi.copy, "staged");

    r.decode = LOADER_DECODE_AUTO;
    r.device = LOADER_DEVICE_CPU; /* host batches: nothing for a GPU to do */
    falls_back(r, "batches stay on the host", NUMAFEED_ENOCUDA,
               "decode gpu: batches stay on the host", &pi);
    assert_null(strstr(pi.notes, "decode")); /* host mode says enough in the notes */

    r = (struct run){raw_ds, LOADER_DEVICE_AUTO, LOADER_DECODE_AUTO, 0, 2, 0, 0, 0, 0, 0, 0};
    falls_back(r, "no block of the dataset is zstd-compressed", NUMAFEED_ECONFIG, NULL, &pi);
    assert_non_null(strstr(pi.notes, "decode cpu: no block"));

    /* raw records copied direct, in windows smaller than a batch: the notes
     * say that batches then land out of their copies' order */
    r = (struct run){raw_ds, LOADER_DEVICE_CUDA, LOADER_DECODE_CPU, LOADER_IO_MMAP, 2, 0, 512, 0,
                     0, 0, LOADER_COPY_DIRECT};
    info(&r, &pi);
    assert_string_equal(pi.copy, "direct");
    /* (the default window, 16 x the mean block, follows the dataset's size) */
    assert_non_null(strstr(pi.notes, "copy direct: a shuffle window of "));
    assert_non_null(strstr(pi.notes, " records, under a batch of 512, fills each batch from "
                                     "several units"));
    r.window = 512;
    info(&r, &pi);
    assert_string_equal(pi.copy, "direct");
    assert_null(strstr(pi.notes, "copy direct"));

    r = (struct run){fixed_ds, LOADER_DEVICE_AUTO, LOADER_DECODE_AUTO, 0, 2, 0, 0, 0, 4096, 0, 0};
    falls_back(r, "exceed max_gpu_decode_bytes (4096)", NUMAFEED_ECONFIG, "max_gpu_decode_bytes",
               &pi);

    if (EMULATED) {
        r = (struct run){fixed_ds, LOADER_DEVICE_AUTO, LOADER_DECODE_AUTO, 0, 2, 0, 0, 0, 0, 0, 0};
        no_stored_hashes = 1; /* shards written before they kept stored hashes */
        falls_back(r, "keep no hashes of their stored blocks", NUMAFEED_ECONFIG, "repack it", &pi);
        no_stored_hashes = 0;
        no_nvcomp = 1;
        falls_back(r, "nvCOMP 6 not found", NUMAFEED_ENVCOMP, NULL, &pi);
        no_nvcomp = 0;
    }

    loader_t *L;
    struct loader_config c;
    loader_config_init(&c);
    c.path = fixed_ds;
    c.decode = 3;
    assert_int_equal(loader_create(&c, &L), NUMAFEED_ECONFIG);
    assert_non_null(strstr(numafeed_last_error(), "decode 3 unknown"));
}

static int setup(void **state)
{
    (void)state;
    base = nf_tmpdir();
    fixed_ds = pack_fixed("fixed", NUMAFEED_CODEC_ZSTD);
    raw_ds = pack_fixed("raw", NUMAFEED_CODEC_NONE);
    var_ds = pack_var();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nf_rmtree(base);
    free(base);
    free(fixed_ds);
    free(raw_ds);
    free(var_ds);
    return 0;
}

int main(void)
{
    quick = getenv("NF_GPU_TEST_QUICK") != NULL;
    nfix = EMULATED || quick ? 3000 : 20000;
    nvar = EMULATED || quick ? 1500 : 6000;
    if (!EMULATED) {
        int n = numafeed_cuda_device_count();
        if (n <= 0) {
            printf("# skipped: no GPU: %s\n", numafeed_last_error());
            return NF_TEST_SKIP;
        }
        if (nf__nvcomp_load()) {
            printf("# %s: %s\n", getenv(NF_NVCOMP_ENV) ? "failed" : "skipped",
                   numafeed_last_error());
            return getenv(NF_NVCOMP_ENV) ? 1 : NF_TEST_SKIP;
        }
        char d[NF_NVCOMP_PATH + 64];
        nf__nvcomp_describe(nf__nvcomp(), d, sizeof(d));
        printf("# %s\n", d);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed),
        cmocka_unit_test(test_variable),
        cmocka_unit_test(test_damaged_zstd_block),
        cmocka_unit_test(test_damaged_raw_block),
        cmocka_unit_test(test_truncated_direct),
        cmocka_unit_test(test_changed_under_direct),
        cmocka_unit_test(test_choice),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
