// SPDX-License-Identifier: Apache-2.0
/*
 * The CUDA path on a real GPU: every byte that reaches device memory equals
 * the source record, for several shuffled epochs, small zstd records and
 * large raw ones; the consumer's stream waits on the ready event and
 * releases with an event, never synchronising the host before reuse. Skips
 * (77) without a CUDA device. Also run under compute-sanitizer on the GPU
 * machine (memcheck, racecheck, synccheck).
 */
#include "helpers.h"

#include <cuda_runtime_api.h>
#include <numafeed.h>

#include "internal.h"
#include "loader/private.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *base;

/* Registration refused on demand (memlock limits, memory the driver cannot
 * pin): the loader must fall back to a pinned allocation, or fail in strict
 * mode. --wrap reaches the library's call because the test links it
 * statically. */
static int refuse_register;
int __real_nf__cuda_host_register(void *p, size_t len, size_t chunk);
int __wrap_nf__cuda_host_register(void *p, size_t len, size_t chunk)
{
    if (refuse_register)
        return nf__error(NUMAFEED_ECUDA, "cudaHostRegister: refused by the test");
    return __real_nf__cuda_host_register(p, len, chunk);
}

static char *pack(const char *name, size_t rb, size_t n, int codec, uint8_t **src_out)
{
    uint8_t *src = malloc(rb * n);
    for (size_t i = 0; i < rb * n; i++)
        src[i] = (uint8_t)(((i / rb) * 131 + (i % rb) / 7) & 0xff); /* compressible, per record */
    for (size_t r = 0; r < n; r++)
        memcpy(src + r * rb, &r, sizeof(r)); /* unique */
    char *dir;
    assert_true(asprintf(&dir, "%s/%s", base, name) > 0);
    struct numafeed_field f = {.name = "data", .dtype = "uint8", .ndim = 1, .shape = {rb}};
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    o.codec = codec;
    numafeed_writer *w;
    assert_int_equal(numafeed_writer_create(dir, &f, 1, &o, &w), 0);
    assert_int_equal(numafeed_writer_append(w, src, n), 0);
    assert_int_equal(numafeed_writer_finish(w), 0);
    numafeed_writer_destroy(w);
    *src_out = src;
    return dir;
}

static int copy_mode = LOADER_COPY_AUTO; /* run()'s loader_config.copy */

static void run(const char *dir, const uint8_t *src, size_t rb, size_t n, uint32_t batch,
                int epochs, uint32_t depth)
{
    struct loader_config c;
    loader_config_init(&c);
    c.copy = copy_mode;
    c.path = dir;
    c.batch_size = batch;
    c.threads = 4;
    c.prefetch = depth;
    int gpu0 = 0; /* one pool, whatever the machine has: it gets every record */
    c.gpus = &gpu0;
    c.ngpus = 1;
    c.seed = 17;
    c.world_size = 1;
    loader_t *L;
    int rc = loader_create(&c, &L);
    if (rc)
        fail_msg("loader_create: %s", numafeed_last_error());
    struct loader_pool_info pi = {.size = sizeof(pi)};
    assert_int_equal(loader_pool_info(L, 0, &pi), 0);
    assert_int_equal(pi.cuda, 1);
    printf("# pool: node %d, registered %d, copy %s, notes: %s\n", pi.node, pi.registered,
           pi.copy, pi.notes);
    if (copy_mode == LOADER_COPY_DIRECT)
        assert_string_equal(pi.copy, "direct");
    if (copy_mode == LOADER_COPY_STAGED)
        assert_string_equal(pi.copy, "staged");

    cudaStream_t s;
    assert_int_equal(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
    uint8_t *back;
    assert_int_equal(cudaMallocHost((void **)&back, rb * batch), cudaSuccess);
    unsigned char *seen = malloc(n);
    uint64_t *ids = malloc(batch * sizeof(*ids));
    for (int e = 0; e < epochs; e++) {
        memset(seen, 0, n);
        size_t got = 0;
        struct loader_batch b = LOADER_BATCH_INIT;
        while ((rc = loader_next_on_stream(L, 0, &b, 30000, s)) == 0) {
            assert_non_null(b.fields[0].device);
            assert_non_null(b.ready_event);
            /* ordered after the ready event by loader_next_on_stream */
            assert_int_equal(cudaMemcpyAsync(back, b.fields[0].device, (size_t)b.records * rb,
                                             cudaMemcpyDeviceToHost, s), cudaSuccess);
            /* host data (record_ids) is valid until release: keep a copy */
            memcpy(ids, b.record_ids, b.records * sizeof(*ids));
            /* release right away: reuse of the device buffer waits for this
             * event (after our copy-back), not for the host */
            assert_int_equal(loader_release_on_stream(L, &b, s), 0);
            assert_int_equal(cudaStreamSynchronize(s), cudaSuccess); /* the test's own check */
            for (uint32_t i = 0; i < b.records; i++) {
                uint64_t id = ids[i];
                assert_true(id < n);
                assert_false(seen[id]);
                seen[id] = 1;
                if (memcmp(back + (size_t)i * rb, src + id * rb, rb))
                    fail_msg("epoch %d batch %llu record %llu: device bytes differ", e,
                             (unsigned long long)b.index, (unsigned long long)id);
            }
            got += b.records;
        }
        assert_int_equal(rc, NUMAFEED_EEPOCH_END);
        assert_int_equal(got, n);
    }
    free(seen);
    free(ids);
    cudaFreeHost(back);
    cudaStreamDestroy(s);
    loader_destroy(L);
}

static void test_small_zstd(void **state)
{
    (void)state;
    uint8_t *src;
    char *d = pack("small", 1024, 20000, NUMAFEED_CODEC_ZSTD, &src);
    run(d, src, 1024, 20000, 4096, 3, 4);
    free(src);
    free(d);
}

static void test_large_raw(void **state)
{
    (void)state;
    uint8_t *src;
    char *d = pack("images", 3 * 224 * 224, 700, NUMAFEED_CODEC_NONE, &src);
    run(d, src, 3 * 224 * 224, 700, 64, 3, 4);
    /* a ring larger than one registration chunk used to be: 8 x 38.5 MB
     * slots; every copy must come from one registered slot */
    run(d, src, 3 * 224 * 224, 700, 256, 2, 8);
    free(src);
    free(d);
}

/* Raw records copied by the GPU from the page-locked page cache (direct)
 * and through the slots (staged): the same bytes, every record once; a
 * zstd dataset cannot be direct (an error naming why); and a shard cut
 * short under a direct loader is a typed error or its last verified bytes,
 * never a crash. */
static void test_direct_and_staged(void **state)
{
    (void)state;
    uint8_t *src;
    enum { RB = 3 * 224 * 224, N = 600 };
    char *d = pack("direct", RB, N, NUMAFEED_CODEC_NONE, &src);
    for (copy_mode = LOADER_COPY_STAGED; copy_mode <= LOADER_COPY_DIRECT; copy_mode++)
        run(d, src, RB, N, 64, 3, 0);
    copy_mode = LOADER_COPY_AUTO;
    struct loader_config c;
    loader_config_init(&c);
    int gpu0 = 0;
    c.gpus = &gpu0;
    c.ngpus = 1;
    c.world_size = 1;
    c.copy = LOADER_COPY_DIRECT;
    uint8_t *zsrc;
    char *z = pack("direct-zstd", 4096, 1000, NUMAFEED_CODEC_ZSTD, &zsrc);
    c.path = z;
    loader_t *L;
    assert_int_equal(loader_create(&c, &L), NUMAFEED_ECONFIG);
    assert_non_null(strstr(numafeed_last_error(), "zstd"));
    c.path = d;
    c.batch_size = 32;
    assert_int_equal(loader_create(&c, &L), 0);
    char shard[4200];
    snprintf(shard, sizeof(shard), "%s/shard-00000.nfs", d);
    assert_int_equal(truncate(shard, 64), 0);
    struct loader_batch b = LOADER_BATCH_INIT;
    int rc;
    while ((rc = loader_next_on_stream(L, 0, &b, 30000, NULL)) == 0)
        loader_release(L, &b);
    assert_true(rc == NUMAFEED_EEPOCH_END || rc == NUMAFEED_ECORRUPT);
    printf("# truncated under a direct loader: %s\n", numafeed_err_name(rc));
    loader_destroy(L);
    free(src);
    free(d);
    free(zsrc);
    free(z);
}

/* Variable fields on the GPU: each batch's values and offsets arrive
 * beside the fixed fields, made ready by the same event, and equal what
 * was written; with two variable fields, whether the slot's parts go in
 * one copy (the gap between them copied too) or one copy each. */
static void check_variable_fields(size_t merge_gap)
{
    enum { N = 3000 };
    char *d;
    assert_true(asprintf(&d, "%s/var-%s", base, merge_gap ? "one" : "each") > 0);
    struct numafeed_field f[3] = {{.name = "label", .dtype = "int64"},
                                  {.name = "data", .dtype = "bytes"},
                                  {.name = "toks", .dtype = "int32", .ndim = 1, .shape = {NUMAFEED_VARIABLE}}};
    numafeed_writer *w;
    assert_int_equal(numafeed_writer_create(d, f, 3, NULL, &w), 0);
    static uint8_t buf[5000];
    static int32_t tok[300];
    for (uint64_t i = 0; i < N; i++) {
        size_t len = (i * 7919) % 5000, ntok = (i * 31) % 300;
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)(i + k);
        for (size_t k = 0; k < ntok; k++)
            tok[k] = (int32_t)(i * 1000 + k);
        int64_t label = (int64_t)i;
        const void *data[3] = {&label, buf, tok};
        size_t sizes[3] = {8, len, ntok * 4};
        assert_int_equal(numafeed_writer_add(w, data, sizes), 0);
    }
    assert_int_equal(numafeed_writer_finish(w), 0);
    numafeed_writer_destroy(w);
    size_t gap_default = nf__h2d_merge_gap;
    nf__h2d_merge_gap = merge_gap;
    struct loader_config c;
    loader_config_init(&c);
    c.path = d;
    c.batch_size = 100;
    c.world_size = 1;
    int gpu0 = 0;
    c.gpus = &gpu0;
    c.ngpus = 1;
    loader_t *L;
    assert_int_equal(loader_create(&c, &L), 0);
    struct loader_batch b = LOADER_BATCH_INIT;
    static uint8_t vals[100 * 5000];
    static int32_t toks[100 * 300];
    int64_t offs[101], toffs[101], labels[100];
    unsigned char *seen = calloc(N, 1);
    int rc;
    while ((rc = loader_next_on_stream(L, 0, &b, 30000, NULL)) == 0) {
        const struct loader_field *lf = &b.fields[0], *vf = &b.fields[1], *tf = &b.fields[2];
        assert_int_equal(vf->kind, LOADER_FIELD_BYTES);
        assert_int_equal(cudaMemcpy(labels, lf->device, b.records * 8, cudaMemcpyDeviceToHost),
                         cudaSuccess);
        assert_int_equal(cudaMemcpy(offs, vf->offsets_device, (b.records + 1) * 8,
                                    cudaMemcpyDeviceToHost), cudaSuccess);
        assert_int_equal(cudaMemcpy(vals, vf->device, vf->values_bytes, cudaMemcpyDeviceToHost),
                         cudaSuccess);
        assert_int_equal(cudaMemcpy(toffs, tf->offsets_device, (b.records + 1) * 8,
                                    cudaMemcpyDeviceToHost), cudaSuccess);
        assert_int_equal(cudaMemcpy(toks, tf->device, tf->values_bytes, cudaMemcpyDeviceToHost),
                         cudaSuccess);
        for (uint32_t i = 0; i < b.records; i++) {
            uint64_t id = b.record_ids[i];
            assert_int_equal(labels[i], (int64_t)id);
            assert_false(seen[id]);
            seen[id] = 1;
            size_t len = (id * 7919) % 5000, ntok = (id * 31) % 300;
            assert_int_equal(offs[i + 1] - offs[i], (int64_t)len);
            for (size_t k = 0; k < len; k++)
                if (vals[offs[i] + (int64_t)k] != (uint8_t)(id + k))
                    fail_msg("record %llu byte %zu differs on the device", (unsigned long long)id,
                             k);
            assert_int_equal(toffs[i + 1] - toffs[i], (int64_t)ntok);
            for (size_t k = 0; k < ntok; k++)
                if (toks[toffs[i] + (int64_t)k] != (int32_t)(id * 1000 + k))
                    fail_msg("record %llu token %zu differs on the device",
                             (unsigned long long)id, k);
        }
        assert_int_equal(loader_release_on_stream(L, &b, NULL), 0);
    }
    assert_int_equal(rc, NUMAFEED_EEPOCH_END);
    for (uint64_t i = 0; i < N; i++)
        assert_true(seen[i]);
    loader_destroy(L);
    nf__h2d_merge_gap = gap_default;
    free(seen);
    free(d);
}

static void test_variable_fields_one_copy(void **state)
{
    (void)state;
    check_variable_fields(SIZE_MAX);
}

static void test_variable_fields_copy_each(void **state)
{
    (void)state;
    check_variable_fields(0);
}

static void test_register_refused(void **state)
{
    (void)state;
    uint8_t *src;
    char *d = pack("refused", 2048, 3000, NUMAFEED_CODEC_ZSTD, &src);
    refuse_register = 1;
    /* fallback: cudaHostAlloc by the pool thread, noted, bytes still right */
    run(d, src, 2048, 3000, 256, 2, 4);
    struct loader_config c;
    loader_config_init(&c);
    c.path = d;
    c.world_size = 1;
    int gpu0 = 0;
    c.gpus = &gpu0;
    c.ngpus = 1;
    loader_t *L;
    assert_int_equal(loader_create(&c, &L), 0);
    struct loader_pool_info pi = {.size = sizeof(pi)};
    assert_int_equal(loader_pool_info(L, 0, &pi), 0);
    assert_int_equal(pi.cuda, 1);
    assert_int_equal(pi.registered, 0);
    assert_non_null(strstr(pi.notes, "cudaHostAlloc"));
    loader_destroy(L);
    /* strict: the refusal is an error */
    c.strict = 1;
    assert_int_equal(loader_create(&c, &L), NUMAFEED_ECUDA);
    assert_non_null(strstr(numafeed_last_error(), "strict"));
    refuse_register = 0;
    free(src);
    free(d);
}

static void test_forced_host_mode(void **state)
{
    (void)state;
    uint8_t *src;
    char *d = pack("host", 512, 1000, NUMAFEED_CODEC_ZSTD, &src);
    struct loader_config c;
    loader_config_init(&c);
    c.path = d;
    c.device = LOADER_DEVICE_CPU;
    c.world_size = 1;
    loader_t *L;
    assert_int_equal(loader_create(&c, &L), 0);
    struct loader_batch b = LOADER_BATCH_INIT;
    assert_int_equal(loader_next_on_stream(L, 0, &b, 30000, NULL), 0);
    assert_null(b.fields[0].device);
    assert_null(b.ready_event);
    assert_memory_equal(b.fields[0].host, src + b.record_ids[0] * 512, 512);
    assert_int_equal(loader_release(L, &b), 0);
    loader_destroy(L);
    free(src);
    free(d);
}

/* Two GPUs served by one loader: one pool each, disjoint parts, every
 * record once, every device byte right; the legacy default stream (NULL)
 * of each batch's GPU is used whatever this thread's current device is. */
static void test_two_gpus(void **state)
{
    (void)state;
    int n = 0;
    cudaGetDeviceCount(&n);
    if (n < 2)
        skip();
    enum { RB = 4096, N = 5000 };
    uint8_t *src;
    char *d = pack("two", RB, N, NUMAFEED_CODEC_ZSTD, &src);
    struct loader_config c;
    loader_config_init(&c);
    c.path = d;
    c.batch_size = 128;
    c.threads = 4;
    c.world_size = 1;
    int gpus[2] = {0, 1};
    c.gpus = gpus;
    c.ngpus = 2;
    loader_t *L;
    assert_int_equal(loader_create(&c, &L), 0);
    assert_int_equal(loader_gpu_count(L), 2);
    unsigned char *seen = calloc(N, 1);
    uint8_t *back = malloc((size_t)RB * 128);
    uint64_t ids[128];
    size_t total = 0;
    for (int g = 0; g < 2; g++) {
        struct loader_pool_info pi = {.size = sizeof(pi)};
        assert_int_equal(loader_pool_info(L, g, &pi), 0);
        assert_int_equal(pi.cuda_ordinal, g);
        cudaSetDevice(0); /* deliberately not the pool's device */
        struct loader_batch b = LOADER_BATCH_INIT;
        int rc;
        while ((rc = loader_next_on_stream(L, g, &b, 30000, NULL)) == 0) {
            memcpy(ids, b.record_ids, b.records * sizeof(ids[0]));
            cudaSetDevice(g);
            assert_int_equal(cudaMemcpy(back, b.fields[0].device, (size_t)b.records * RB,
                                        cudaMemcpyDeviceToHost), cudaSuccess);
            cudaSetDevice(0);
            assert_int_equal(loader_release_on_stream(L, &b, NULL), 0);
            for (uint32_t i = 0; i < b.records; i++) {
                assert_false(seen[ids[i]]);
                seen[ids[i]] = 1;
                assert_memory_equal(back + (size_t)i * RB, src + ids[i] * RB, RB);
            }
            total += b.records;
        }
        assert_int_equal(rc, NUMAFEED_EEPOCH_END);
    }
    assert_int_equal(total, N);
    loader_destroy(L);
    free(seen);
    free(back);
    free(src);
    free(d);
}

int main(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        printf("no CUDA device: skipped\n");
        return NF_TEST_SKIP;
    }
    base = nf_tmpdir();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_zstd),
        cmocka_unit_test(test_large_raw),
        cmocka_unit_test(test_direct_and_staged),
        cmocka_unit_test(test_variable_fields_one_copy),
        cmocka_unit_test(test_variable_fields_copy_each),
        cmocka_unit_test(test_forced_host_mode),
        cmocka_unit_test(test_register_refused),
        cmocka_unit_test(test_two_gpus),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    nf_rmtree(base);
    free(base);
    return rc;
}
