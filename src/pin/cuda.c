// SPDX-License-Identifier: Apache-2.0
/*
 * The one C file that includes the CUDA headers (the kernels of GPU decode,
 * gpu_kernels.cu, are CUDA C++ by nature). With the CUDA path compiled out
 * every entry point returns NUMAFEED_ENOCUDA; callers treat that exactly
 * like "no driver" and carry on in host mode.
 *
 * cudart is linked statically: it dlopens the driver (libcuda.so.1) at the
 * first call, so a binary built here runs on a machine with no driver and
 * simply reports cudaErrorInsufficientDriver / cudaErrorNoDevice.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pin/pin.h"

#ifdef NUMAFEED_HAVE_CUDA
#include <cuda_runtime_api.h>

int numafeed_has_cuda(void)
{
    return 1;
}

/* Errors meaning "no usable GPU here" rather than "something broke". */
static int no_gpu(cudaError_t e)
{
    return e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver ||
           e == cudaErrorInitializationError || e == cudaErrorCompatNotSupportedOnDevice ||
           e == cudaErrorSystemDriverMismatch || e == cudaErrorDevicesUnavailable ||
           e == cudaErrorInvalidDevice;
}

int nf__cuda_bus_ids(char (**ids)[NF_BUSID_LEN], int *count)
{
    *ids = NULL;
    *count = 0;
    int n = nf__cuda_device_count();
    if (n < 0)
        return n;
    char (*out)[NF_BUSID_LEN] = calloc(n ? (size_t)n : 1, NF_BUSID_LEN);
    if (!out)
        return nf__error(-ENOMEM, "CUDA bus ids: out of memory");
    for (int i = 0; i < n; i++) {
        cudaError_t e = cudaDeviceGetPCIBusId(out[i], NF_BUSID_LEN, i);
        if (e != cudaSuccess) {
            free(out);
            return nf__error(NUMAFEED_ECUDA, "cudaDeviceGetPCIBusId(%d): %s", i,
                              cudaGetErrorString(e));
        }
    }
    *ids = out;
    *count = n;
    return 0;
}

static int cuda_fail(cudaError_t e, const char *call)
{
    int rc = no_gpu(e) ? NUMAFEED_ENOCUDA : NUMAFEED_ECUDA;
    return nf__error(rc, "%s: %s (%s)", call, cudaGetErrorString(e), cudaGetErrorName(e));
}

#define CU(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) return cuda_fail(e_, #call); } while (0)

/* Make dev the calling thread's current device for a call; *prev is the
 * device to give back with leave(), so the caller's stays as it was. */
static int enter(int dev, int *prev)
{
    CU(cudaGetDevice(prev));
    if (*prev != dev)
        CU(cudaSetDevice(dev));
    return 0;
}

static void leave(int dev, int prev)
{
    if (prev != dev)
        cudaSetDevice(prev);
}

/* "13.0" from CUDA's 1000 * major + 10 * minor. */
static void version(char *buf, size_t len, int v)
{
    snprintf(buf, len, "%d.%d", v / 1000, v % 1000 / 10);
}

/*
 * Why cudaGetDeviceCount found nothing to use, in words one can act on: a
 * missing driver and an old one both come back as
 * cudaErrorInsufficientDriver, and only cudaDriverGetVersion (0 when no
 * driver is loaded) tells them apart.
 */
static int no_devices(cudaError_t e)
{
    int drv = 0, rt = 0;
    char dv[16], rv[16];
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    version(dv, sizeof(dv), drv);
    version(rv, sizeof(rv), rt);
    const char *name = cudaGetErrorName(e), *visible = getenv("CUDA_VISIBLE_DEVICES");
    if (drv == 0)
        return nf__error(NUMAFEED_ENOCUDA, "no NVIDIA driver loaded (libcuda.so.1 is missing or "
                         "cannot be loaded; %s)", name);
    if (e == cudaErrorInsufficientDriver)
        return nf__error(NUMAFEED_ENOCUDA, "the NVIDIA driver (CUDA %s) is older than this "
                         "build's CUDA runtime %s: update the driver (%s)", dv, rv, name);
    if (e == cudaErrorNoDevice)
        return nf__error(NUMAFEED_ENOCUDA, "the NVIDIA driver (CUDA %s) sees no GPU%s%s%s (%s)",
                         dv, visible ? " with CUDA_VISIBLE_DEVICES=\"" : "",
                         visible ? visible : "", visible ? "\"" : "", name);
    if (no_gpu(e))
        return nf__error(NUMAFEED_ENOCUDA, "the NVIDIA driver (CUDA %s) is loaded but could not "
                         "initialise a GPU: %s (%s)", dv, cudaGetErrorString(e), name);
    return cuda_fail(e, "cudaGetDeviceCount");
}

int nf__cuda_device_count(void)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky-free error so later calls start clean */
        return no_devices(e);
    }
    return n;
}

int nf__cuda_set_device(int ordinal)
{
    CU(cudaSetDevice(ordinal));
    return 0;
}

int nf__cuda_init_context(int ordinal)
{
    CU(cudaSetDevice(ordinal));
    CU(cudaFree(NULL));
    return 0;
}

int nf__cuda_host_register(void *p, size_t len, size_t chunk)
{
    if (chunk == 0)
        return nf__error(-EINVAL, "cudaHostRegister: chunk size 0");
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        cudaError_t e = cudaHostRegister((char *)p + off, n, cudaHostRegisterPortable);
        if (e != cudaSuccess) {
            cudaGetLastError();
            nf__cuda_host_unregister(p, off, chunk);
            return nf__error(NUMAFEED_ECUDA, "cudaHostRegister(%zu bytes at offset %zu): %s",
                              n, off, cudaGetErrorString(e));
        }
    }
    return 0;
}

void nf__cuda_host_unregister(void *p, size_t len, size_t chunk)
{
    for (size_t off = 0; chunk && off < len; off += chunk)
        cudaHostUnregister((char *)p + off);
}

int nf__cuda_host_alloc(size_t len, void **p)
{
    CU(cudaHostAlloc(p, len, cudaHostAllocPortable));
    return 0;
}

void nf__cuda_host_free(void *p)
{
    if (p)
        cudaFreeHost(p);
}

int nf__cuda_malloc(size_t len, void **p)
{
    CU(cudaMalloc(p, len));
    return 0;
}

void nf__cuda_free(void *p)
{
    if (p)
        cudaFree(p);
}

int nf__cuda_stream_create(void **stream)
{
    cudaStream_t s;
    CU(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    *stream = s;
    return 0;
}

void nf__cuda_stream_destroy(void *stream)
{
    if (stream)
        cudaStreamDestroy((cudaStream_t)stream);
}

int nf__cuda_event_create(void **event)
{
    cudaEvent_t ev;
    /* blocking sync: a worker waiting for a slot's last copy sleeps instead
     * of spinning a core (the direct copy waits on the copy engine a lot) */
    CU(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming | cudaEventBlockingSync));
    *event = ev;
    return 0;
}

void nf__cuda_event_destroy(void *event)
{
    if (event)
        cudaEventDestroy((cudaEvent_t)event);
}

int nf__cuda_memcpy_h2d(void *dst, const void *src, size_t len, void *stream)
{
    CU(cudaMemcpyAsync(dst, src, len, cudaMemcpyHostToDevice, (cudaStream_t)stream));
    return 0;
}

static int host_register_ro(const void *p, size_t len)
{
    /* A PROT_READ mapping can only be registered read-only; the flag needs
     * the device's support (cudaDevAttrHostRegisterReadOnlySupported). */
    cudaError_t e = cudaHostRegister((void *)p, len, cudaHostRegisterReadOnly |
                                                         cudaHostRegisterPortable);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return nf__error(NUMAFEED_ECUDA, "cudaHostRegister(%zu bytes, read-only): %s", len,
                         cudaGetErrorString(e));
    }
    return 0;
}

int nf__cuda_host_register_ro_on(int dev, const void *p, size_t len)
{
    /* registration needs a context; the caller's thread keeps its device */
    int prev, rc = enter(dev, &prev);
    if (rc)
        return rc;
    rc = host_register_ro(p, len);
    leave(dev, prev);
    return rc;
}

void nf__cuda_host_unregister_one(const void *p)
{
    if (p)
        cudaHostUnregister((void *)p);
}

int nf__cuda_memcpy_batch_h2d(void *const *dst, const void *const *src, const size_t *len,
                              size_t n, void *stream)
{
    if (!n)
        return 0;
    /* one call for the batch's records: the copy engine takes them back to
     * back (one cudaMemcpyAsync per 150 KB record reached 23 GB/s of 54) */
    struct cudaMemcpyAttributes attr;
    memset(&attr, 0, sizeof(attr));
    attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
    attr.srcLocHint.type = cudaMemLocationTypeHost;
    attr.dstLocHint.type = cudaMemLocationTypeDevice;
    size_t idx = 0;
    cudaError_t e = cudaMemcpyBatchAsync(dst, src, len, n, &attr, &idx, 1, (cudaStream_t)stream);
    if (e == cudaErrorNotSupported) { /* an older driver: one copy each */
        cudaGetLastError();
        for (size_t i = 0; i < n; i++)
            CU(cudaMemcpyAsync(dst[i], src[i], len[i], cudaMemcpyHostToDevice,
                               (cudaStream_t)stream));
        return 0;
    }
    if (e != cudaSuccess)
        return cuda_fail(e, "cudaMemcpyBatchAsync");
    return 0;
}

int nf__cuda_event_record(void *event, void *stream)
{
    CU(cudaEventRecord((cudaEvent_t)event, (cudaStream_t)stream));
    return 0;
}

int nf__cuda_stream_synchronize(void *stream)
{
    CU(cudaStreamSynchronize((cudaStream_t)stream));
    return 0;
}

int nf__cuda_event_synchronize(void *event)
{
    CU(cudaEventSynchronize((cudaEvent_t)event));
    return 0;
}

/* Run op with `dev` current when the stream is the legacy default stream
 * (which is per device), restoring the caller's device after. */
static int on_device(int dev, void *stream, void *event, int record)
{
    int prev = dev, rc;
    if (!stream && (rc = enter(dev, &prev)))
        return rc;
    cudaError_t e = record ? cudaEventRecord((cudaEvent_t)event, (cudaStream_t)stream)
                           : cudaStreamWaitEvent((cudaStream_t)stream, (cudaEvent_t)event, 0);
    leave(dev, prev);
    if (e != cudaSuccess)
        return cuda_fail(e, record ? "cudaEventRecord(release, consumer stream)"
                                   : "cudaStreamWaitEvent(consumer stream, ready)");
    return 0;
}

int nf__cuda_event_record_on(int dev, void *event, void *stream)
{
    return on_device(dev, stream, event, 1);
}

int nf__cuda_stream_wait_event_on(int dev, void *stream, void *event)
{
    return on_device(dev, stream, event, 0);
}

/* ---- GPU decode ---- */

int nf__cuda_event_create_timed(void **event)
{
    cudaEvent_t ev;
    CU(cudaEventCreateWithFlags(&ev, cudaEventBlockingSync));
    *event = ev;
    return 0;
}

int nf__cuda_event_elapsed_ns(void *start, void *end, uint64_t *ns)
{
    float ms = 0;
    CU(cudaEventElapsedTime(&ms, (cudaEvent_t)start, (cudaEvent_t)end));
    *ns = ms > 0 ? (uint64_t)((double)ms * 1e6) : 0;
    return 0;
}

int nf__cuda_memcpy_d2h(void *dst, const void *src, size_t len, void *stream)
{
    CU(cudaMemcpyAsync(dst, src, len, cudaMemcpyDeviceToHost, (cudaStream_t)stream));
    return 0;
}

int nf__cuda_on_device(int dev, int (*fn)(void *arg), void *arg)
{
    int prev, rc = enter(dev, &prev);
    if (rc)
        return rc;
    rc = fn(arg);
    leave(dev, prev);
    return rc;
}

int nf__cuda_copy_to_host(int dev, void *dst, const void *src, size_t len)
{
    int prev, rc = enter(dev, &prev);
    if (rc)
        return rc;
    cudaError_t e = cudaMemcpy(dst, src, len, cudaMemcpyDeviceToHost);
    leave(dev, prev);
    return e == cudaSuccess ? 0 : cuda_fail(e, "cudaMemcpy(device to host)");
}

#ifdef NUMAFEED_HAVE_GPU_KERNELS
int nf__gpu_kernels(const char **why)
{
    *why = "";
    return 1;
}

/* A launch's cudaGetLastError(), named. */
static int launched(int e, const char *what)
{
    return e ? cuda_fail((cudaError_t)e, what) : 0;
}

int nf__gpu_verify(const struct nf_gpu_block *blocks, uint32_t n, struct nf_gpu_result *res,
                   void *stream)
{
    return launched(nf__gpu_verify_launch(blocks, n, res, stream), "verify kernel launch");
}

int nf__gpu_gather(const struct nf_gpu_copy *copies, uint32_t n, void *stream)
{
    return launched(nf__gpu_gather_launch(copies, n, stream), "gather kernel launch");
}

int nf__gpu_screen(const struct nf_gpu_screen *screens, uint32_t n, void *stream)
{
    return launched(nf__gpu_screen_launch(screens, n, stream), "screen kernel launch");
}

int nf__gpu_busy(int dev, uint64_t ns, void *stream, int wait)
{
    int prev, rc = enter(dev, &prev);
    if (rc)
        return rc;
    rc = ns ? launched(nf__gpu_busy_launch(ns, stream), "busy kernel launch") : 0;
    if (!rc && wait) {
        cudaError_t e = cudaStreamSynchronize((cudaStream_t)stream);
        rc = e == cudaSuccess ? 0 : cuda_fail(e, "cudaStreamSynchronize");
    }
    leave(dev, prev);
    return rc;
}
#else
static const char no_kernels[] = "the GPU decode kernels are not compiled into this build "
                                 "(nvcc was not found when it was built)";
int nf__gpu_kernels(const char **why)
{
    *why = no_kernels;
    return 0;
}
int nf__gpu_verify(const struct nf_gpu_block *b, uint32_t n, struct nf_gpu_result *r, void *s)
{
    (void)b; (void)n; (void)r; (void)s;
    return nf__error(NUMAFEED_ENOCUDA, "%s", no_kernels);
}
int nf__gpu_gather(const struct nf_gpu_copy *c, uint32_t n, void *s)
{
    (void)c; (void)n; (void)s;
    return nf__error(NUMAFEED_ENOCUDA, "%s", no_kernels);
}
int nf__gpu_screen(const struct nf_gpu_screen *c, uint32_t n, void *s)
{
    (void)c; (void)n; (void)s;
    return nf__error(NUMAFEED_ENOCUDA, "%s", no_kernels);
}
int nf__gpu_busy(int dev, uint64_t ns, void *s, int wait)
{
    (void)dev; (void)ns; (void)s; (void)wait;
    return nf__error(NUMAFEED_ENOCUDA, "%s", no_kernels);
}
#endif

#else /* host-only build */

int numafeed_has_cuda(void)
{
    return 0;
}

int nf__cuda_bus_ids(char (**ids)[NF_BUSID_LEN], int *count)
{
    *ids = NULL;
    *count = 0;
    return NUMAFEED_ENOCUDA;
}

/* Same API, compiled out: every call says so. */
static int off(void)
{
    return nf__error(NUMAFEED_ENOCUDA, "the CUDA path is not compiled into this build");
}
int nf__cuda_device_count(void) { return off(); }
int nf__cuda_set_device(int ordinal) { (void)ordinal; return off(); }
int nf__cuda_init_context(int ordinal) { (void)ordinal; return off(); }
int nf__cuda_host_register(void *p, size_t len, size_t chunk)
{
    (void)p; (void)len; (void)chunk;
    return off();
}
void nf__cuda_host_unregister(void *p, size_t len, size_t chunk)
{
    (void)p; (void)len; (void)chunk;
}
int nf__cuda_host_alloc(size_t len, void **p) { (void)len; *p = NULL; return off(); }
void nf__cuda_host_free(void *p) { (void)p; }
int nf__cuda_malloc(size_t len, void **p) { (void)len; *p = NULL; return off(); }
void nf__cuda_free(void *p) { (void)p; }
int nf__cuda_stream_create(void **s) { *s = NULL; return off(); }
void nf__cuda_stream_destroy(void *s) { (void)s; }
int nf__cuda_event_create(void **e) { *e = NULL; return off(); }
void nf__cuda_event_destroy(void *e) { (void)e; }
int nf__cuda_memcpy_h2d(void *d, const void *s, size_t n, void *st)
{
    (void)d; (void)s; (void)n; (void)st;
    return off();
}
int nf__cuda_event_record(void *e, void *s) { (void)e; (void)s; return off(); }
int nf__cuda_stream_synchronize(void *s) { (void)s; return off(); }
int nf__cuda_host_register_ro_on(int dev, const void *p, size_t len)
{
    (void)dev; (void)p; (void)len;
    return off();
}
void nf__cuda_host_unregister_one(const void *p) { (void)p; }
int nf__cuda_memcpy_batch_h2d(void *const *d, const void *const *s, const size_t *l, size_t n,
                              void *st)
{
    (void)d; (void)s; (void)l; (void)n; (void)st;
    return off();
}
int nf__cuda_event_synchronize(void *e) { (void)e; return off(); }
int nf__cuda_event_record_on(int d, void *e, void *s) { (void)d; (void)e; (void)s; return off(); }
int nf__cuda_stream_wait_event_on(int d, void *s, void *e)
{
    (void)d; (void)s; (void)e;
    return off();
}
int nf__gpu_kernels(const char **why)
{
    *why = "the CUDA path is not compiled into this build";
    return 0;
}
int nf__cuda_event_create_timed(void **e) { *e = NULL; return off(); }
int nf__cuda_event_elapsed_ns(void *a, void *b, uint64_t *ns)
{
    (void)a; (void)b; *ns = 0;
    return off();
}
int nf__cuda_memcpy_d2h(void *d, const void *s, size_t n, void *st)
{
    (void)d; (void)s; (void)n; (void)st;
    return off();
}
int nf__cuda_copy_to_host(int dev, void *d, const void *s, size_t n)
{
    (void)dev; (void)d; (void)s; (void)n;
    return off();
}
int nf__cuda_on_device(int dev, int (*fn)(void *arg), void *arg)
{
    (void)dev; (void)fn; (void)arg;
    return off();
}
int nf__gpu_verify(const struct nf_gpu_block *b, uint32_t n, struct nf_gpu_result *r, void *s)
{
    (void)b; (void)n; (void)r; (void)s;
    return off();
}
int nf__gpu_gather(const struct nf_gpu_copy *c, uint32_t n, void *s)
{
    (void)c; (void)n; (void)s;
    return off();
}
int nf__gpu_screen(const struct nf_gpu_screen *c, uint32_t n, void *s)
{
    (void)c; (void)n; (void)s;
    return off();
}
int nf__gpu_busy(int dev, uint64_t ns, void *s, int wait)
{
    (void)dev; (void)ns; (void)s; (void)wait;
    return off();
}

#endif

/* ---- the public calls: the same whether CUDA is compiled in or not ---- */

int numafeed_cuda_device_count(void)
{
    int n = nf__cuda_device_count();
    if (n >= 0)
        nf__error_clear();
    return n;
}

/* 0 when ordinal names a usable GPU; counting first gives the reason in
 * words when there is none. */
static int usable(int ordinal)
{
    int n = nf__cuda_device_count();
    if (n < 0)
        return n;
    if (ordinal < 0 || ordinal >= n)
        return nf__error(-EINVAL, "CUDA ordinal %d: %d GPU%s visible", ordinal, n,
                         n == 1 ? " is" : "s are");
    return 0;
}

int numafeed_cuda_spin(int ordinal, uint64_t ns, void *stream, int wait)
{
    int rc = usable(ordinal);
    return rc ? rc : nf__gpu_busy(ordinal, ns, stream, wait);
}

int numafeed_cuda_init_context(int ordinal)
{
    int rc = usable(ordinal);
    return rc ? rc : nf__cuda_init_context(ordinal);
}
