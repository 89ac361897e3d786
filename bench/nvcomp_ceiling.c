// SPDX-License-Identifier: Apache-2.0
/*
 * The ceiling decode gpu is measured against: nvCOMP's bare batched zstd
 * decode of a dataset's own blocks, already in GPU memory, BLOCKS blocks
 * per nvcompBatchedZstdDecompressAsync call, one stream, back to back. No
 * reading, no copy to the GPU, no verifying, no gather: what is left when
 * numafeed's work is taken away. Every buffer (the stored blocks, each
 * call's pointer arrays, the outputs, nvCOMP's scratch) is allocated before
 * the clock starts; the first call's statuses and sizes are checked.
 *
 * nvCOMP is loaded as numafeed loads it (dlopen, never linked): the
 * library named by --lib or $NUMAFEED_NVCOMP (the file, or a directory
 * holding it, as the wheel unpacks), else libnvcomp.so.6 on the loader's
 * path. Its headers (the wheel's include/) give the functions' types.
 *
 * Usage: nvcomp_ceiling DATASET_DIR BLOCKS_PER_CALL [SECONDS] [--lib PATH] [--gpu N]
 * Prints "ceiling nvcomp blocks B gbps X" (decoded bytes per second), the
 * last line, after a line saying what ran.
 */
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <nvcomp.h>
#include <nvcomp/zstd.h>

#include "bench_common.h"

static __typeof__(&nvcompGetProperties) get_properties;
static __typeof__(&nvcompBatchedZstdDecompressGetTempSize) get_temp;
static __typeof__(&nvcompBatchedZstdDecompressAsync) decompress;

#define CUDA_OK(call)                                                                      \
    do {                                                                                   \
        cudaError_t e_ = (call);                                                           \
        if (e_ != cudaSuccess) {                                                           \
            fprintf(stderr, "nvcomp_ceiling: %s: %s\n", #call, cudaGetErrorString(e_));   \
            return 1;                                                                      \
        }                                                                                  \
    } while (0)

/* dlopen nvCOMP: path is the library, or a directory holding it. */
static int load(const char *path)
{
    char buf[4096];
    struct stat st;
    if (path && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        const char *rel[] = {"nvidia/libnvcomp/lib64", "lib64", "lib", "."};
        for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
            snprintf(buf, sizeof(buf), "%s/%s/libnvcomp.so.6", path, rel[i]);
            if (stat(buf, &st) == 0)
                break;
        }
        path = buf;
    }
    void *h = dlopen(path ? path : "libnvcomp.so.6", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "nvcomp_ceiling: %s\n", dlerror());
        return 1;
    }
    get_properties = (__typeof__(get_properties))dlsym(h, "nvcompGetProperties");
    get_temp = (__typeof__(get_temp))dlsym(h, "nvcompBatchedZstdDecompressGetTempSize");
    decompress = (__typeof__(decompress))dlsym(h, "nvcompBatchedZstdDecompressAsync");
    nvcompProperties_t pr = {0, 0};
    if (!get_properties || !get_temp || !decompress || get_properties(&pr) ||
        pr.version / 1000 != NVCOMP_VER_MAJOR) {
        fprintf(stderr, "nvcomp_ceiling: %s is not nvCOMP %d (version %u)\n",
                path ? path : "libnvcomp.so.6", NVCOMP_VER_MAJOR, pr.version);
        return 1;
    }
    printf("nvCOMP %u.%u.%u from %s\n", pr.version / 1000, pr.version % 1000 / 100,
           pr.version % 100, path ? path : "libnvcomp.so.6");
    return 0;
}

/* A call's device arrays: input pointers and sizes, output capacities and
 * pointers, actual sizes, statuses. */
struct call {
    void **in, **out;
    size_t *in_bytes, *out_bytes, *actual;
    nvcompStatus_t *status;
    size_t decoded;
};

static int run(const struct nfb_block *b, size_t nb, size_t max_dec, size_t per, double secs)
{
    /* every stored block on the GPU once; as many calls as it takes to
     * cover them (the last wraps around), each with its own arrays */
    size_t total = 0, ncalls = (nb + per - 1) / per;
    for (size_t i = 0; i < nb; i++)
        total += (b[i].stored + 15) & ~(size_t)15;
    uint8_t *stored, *outs, *temp;
    CUDA_OK(cudaMalloc((void **)&stored, total));
    size_t *offs = malloc(nb * sizeof(*offs)), at = 0;
    for (size_t i = 0; i < nb; i++) {
        offs[i] = at;
        CUDA_OK(cudaMemcpy(stored + at, b[i].src, b[i].stored, cudaMemcpyHostToDevice));
        at += (b[i].stored + 15) & ~(size_t)15;
    }
    size_t out_stride = (max_dec + 255) & ~(size_t)255, temp_bytes = 0;
    CUDA_OK(cudaMalloc((void **)&outs, out_stride * per));
    if (get_temp(per, max_dec, nvcompBatchedZstdDecompressDefaultOpts, &temp_bytes,
                 out_stride * per, 0)) {
        fprintf(stderr, "nvcomp_ceiling: nvcompBatchedZstdDecompressGetTempSize failed\n");
        return 1;
    }
    CUDA_OK(cudaMalloc((void **)&temp, temp_bytes ? temp_bytes : 1));
    struct call *calls = calloc(ncalls, sizeof(*calls));
    void **hin = malloc(per * sizeof(void *)), **hout = malloc(per * sizeof(void *));
    size_t *hib = malloc(per * sizeof(size_t)), *hob = malloc(per * sizeof(size_t));
    for (size_t c = 0; c < ncalls; c++) {
        struct call *k = &calls[c];
        for (size_t j = 0; j < per; j++) {
            size_t i = (c * per + j) % nb;
            hin[j] = stored + offs[i];
            hib[j] = b[i].stored;
            hout[j] = outs + j * out_stride;
            hob[j] = b[i].decoded;
            k->decoded += b[i].decoded;
        }
        CUDA_OK(cudaMalloc((void **)&k->in, per * sizeof(void *)));
        CUDA_OK(cudaMalloc((void **)&k->out, per * sizeof(void *)));
        CUDA_OK(cudaMalloc((void **)&k->in_bytes, per * sizeof(size_t)));
        CUDA_OK(cudaMalloc((void **)&k->out_bytes, per * sizeof(size_t)));
        CUDA_OK(cudaMalloc((void **)&k->actual, per * sizeof(size_t)));
        CUDA_OK(cudaMalloc((void **)&k->status, per * sizeof(nvcompStatus_t)));
        CUDA_OK(cudaMemcpy(k->in, hin, per * sizeof(void *), cudaMemcpyHostToDevice));
        CUDA_OK(cudaMemcpy(k->out, hout, per * sizeof(void *), cudaMemcpyHostToDevice));
        CUDA_OK(cudaMemcpy(k->in_bytes, hib, per * sizeof(size_t), cudaMemcpyHostToDevice));
        CUDA_OK(cudaMemcpy(k->out_bytes, hob, per * sizeof(size_t), cudaMemcpyHostToDevice));
    }
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
#define CALL(k)                                                                             \
    decompress((const void *const *)(k)->in, (k)->in_bytes, (k)->out_bytes, (k)->actual, per, \
               temp, temp_bytes, (void *const *)(k)->out,                                   \
               nvcompBatchedZstdDecompressDefaultOpts, (k)->status, s)
    /* the first call, checked: every status success, every size the index's */
    if (CALL(&calls[0])) {
        fprintf(stderr, "nvcomp_ceiling: nvcompBatchedZstdDecompressAsync refused the call\n");
        return 1;
    }
    CUDA_OK(cudaStreamSynchronize(s));
    nvcompStatus_t *st = malloc(per * sizeof(*st));
    CUDA_OK(cudaMemcpy(st, calls[0].status, per * sizeof(*st), cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(hib, calls[0].actual, per * sizeof(size_t), cudaMemcpyDeviceToHost));
    for (size_t j = 0; j < per; j++)
        if (st[j] != nvcompSuccess || hib[j] != b[j % nb].decoded) {
            fprintf(stderr, "nvcomp_ceiling: block %zu: status %d, %zu bytes of %zu\n", j,
                    (int)st[j], hib[j], b[j % nb].decoded);
            return 1;
        }
    cudaEvent_t e0, e1;
    CUDA_OK(cudaEventCreate(&e0));
    CUDA_OK(cudaEventCreate(&e1));
    double bytes = 0, t = 0, t0 = nfb_now();
    size_t c = 0, calls_made = 0;
    CUDA_OK(cudaEventRecord(e0, s));
    do { /* rounds of 8 calls, the clock read between them */
        for (int r = 0; r < 8; r++, c = (c + 1) % ncalls, calls_made++) {
            if (CALL(&calls[c]))
                return 1;
            bytes += (double)calls[c].decoded;
        }
        CUDA_OK(cudaStreamSynchronize(s));
    } while (nfb_now() - t0 < secs);
    CUDA_OK(cudaEventRecord(e1, s));
    CUDA_OK(cudaEventSynchronize(e1));
    float ms = 0;
    CUDA_OK(cudaEventElapsedTime(&ms, e0, e1));
    t = ms / 1e3;
    printf("%zu calls of %zu blocks (%zu distinct zstd blocks, largest %zu bytes), scratch "
           "%zu bytes: %.3f s on the GPU\n", calls_made, per, nb, max_dec, temp_bytes, t);
    printf("ceiling nvcomp blocks %zu gbps %.2f\n", per, bytes / t / 1e9);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *lib = getenv("NUMAFEED_NVCOMP");
    long per = 0, gpu = 0;
    double secs = 3;
    int pos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--lib") && i + 1 < argc)
            lib = argv[++i];
        else if (!strcmp(argv[i], "--gpu") && i + 1 < argc)
            gpu = strtol(argv[++i], NULL, 10);
        else if (pos == 0 && ++pos)
            dir = argv[i];
        else if (pos == 1 && ++pos)
            per = strtol(argv[i], NULL, 10);
        else if (pos == 2 && ++pos)
            secs = strtod(argv[i], NULL);
    }
    if (!dir || per <= 0 || secs <= 0) {
        fprintf(stderr, "usage: nvcomp_ceiling DATASET_DIR BLOCKS_PER_CALL [SECONDS] "
                        "[--lib PATH] [--gpu N]\n");
        return 2;
    }
    struct nfb_block *blocks;
    size_t nb, max_dec;
    if (load(lib) || nfb_zstd_blocks(dir, &blocks, &nb, &max_dec))
        return 1;
    if (!nb) {
        printf("ceiling nvcomp blocks %ld gbps nan (no zstd block in %s)\n", per, dir);
        return 0;
    }
    CUDA_OK(cudaSetDevice((int)gpu));
    return run(blocks, nb, max_dec, (size_t)per, secs);
}
