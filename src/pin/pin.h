/* SPDX-License-Identifier: Apache-2.0 */
/*
 * src/pin's interface to the rest of the library: CPU sets, sysfs reads
 * relative to one root, the topology, the CUDA runtime, and GPU decode's
 * machinery (its kernels, nvCOMP loaded at run time). Nothing here knows
 * about shards or batches.
 */
#ifndef NUMAFEED_PIN_H
#define NUMAFEED_PIN_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "pin/gpu_kernels.h"
#include "pin/nvcomp_abi.h"

/* Highest CPU or node id accepted from sysfs or users; the kernel's NR_CPUS
 * tops out at 8192 today, so anything above this is garbage, not a CPU. */
#define NF_CPU_ID_MAX 65535

/* ---- CPU sets (cpuset.c) ---- */

/* A growable bitmap of CPU (or node) ids. Zero-initialise, then use. */
struct nf_cpuset {
    size_t nwords;  /* words allocated in w */
    uint64_t *w;
};

void nf__cpuset_free(struct nf_cpuset *s);
int nf__cpuset_set(struct nf_cpuset *s, unsigned id);
bool nf__cpuset_test(const struct nf_cpuset *s, unsigned id);
size_t nf__cpuset_count(const struct nf_cpuset *s);
bool nf__cpuset_empty(const struct nf_cpuset *s);
bool nf__cpuset_equal(const struct nf_cpuset *a, const struct nf_cpuset *b);
int nf__cpuset_copy(struct nf_cpuset *dst, const struct nf_cpuset *src);
/* dst = a & b (dst may alias neither) */
int nf__cpuset_and(struct nf_cpuset *dst, const struct nf_cpuset *a, const struct nf_cpuset *b);
/* Next id >= from that is set, or -1. */
long nf__cpuset_next(const struct nf_cpuset *s, unsigned from);
/*
 * Parse a kernel cpulist of len bytes (need not be NUL-terminated) into *s
 * (which is cleared first). `what` names the source in error messages (a
 * file path, "--allowed-cpus"). Errors: -EINVAL with the offset, -ENOMEM.
 */
int nf__cpuset_parse(struct nf_cpuset *s, const char *text, size_t len, const char *what);
/* Canonical cpulist into buf; returns the full length like snprintf. */
size_t nf__cpuset_format(const struct nf_cpuset *s, char *buf, size_t bufsize);
/* Conversions to and from the kernel's affinity masks. */
int nf__cpuset_from_affinity(struct nf_cpuset *s, pid_t tid);
int nf__cpuset_apply_affinity(const struct nf_cpuset *s, pid_t tid);

/* ---- sysfs (sysfs.c) ---- */

/* Largest sysfs file we read: a cpulist of 8192 single CPUs fits. */
#define NF_SYSFS_MAX (64 * 1024)

/*
 * Read root/rel into a malloc'd NUL-terminated buffer (*out, *len without
 * the NUL). Errors: -ENOENT when missing (message set too), NUMAFEED_ESYSFS
 * when larger than NF_SYSFS_MAX or not readable as a file (a directory),
 * other negated errno. Every message names the full path.
 */
int nf__sysfs_read(const char *root, const char *rel, char **out, size_t *len);
/* Read and parse a cpulist file. */
int nf__sysfs_cpulist(const char *root, const char *rel, struct nf_cpuset *s);
/* Read a decimal integer (optional sign, surrounding whitespace). */
int nf__sysfs_long(const char *root, const char *rel, long *out);
/* Read a hexadecimal integer with optional 0x prefix. */
int nf__sysfs_hex(const char *root, const char *rel, unsigned long *out);
/* The effective root: explicit, else $NUMAFEED_SYSFS_ROOT, else "/sys". */
const char *nf__sysfs_root(const char *explicit_root);

/* ---- PCI bus ids ---- */

#define NF_BUSID_LEN 32
/* Parse "dddd:bb:dd.f" (any case, domain of 1-8 hex digits) into a sort key
 * and the normalised lower-case "%04x:%02x:%02x.%x". -EINVAL if malformed. */
int nf__busid_normalize(const char *in, char out[NF_BUSID_LEN], uint64_t *key);

/* ---- topology (topo.c) ---- */

struct nf_node {
    int id;
    struct nf_cpuset cpus;
};

struct nf_gpu {
    char bus_id[NF_BUSID_LEN];
    uint64_t key;          /* sort key from the bus id */
    int node;              /* resolved, never -1 */
    int node_raw;          /* sysfs numa_node, -1 unknown/missing */
    bool known;
    bool has_local_cpus;
    struct nf_cpuset local_cpus;  /* sysfs local_cpulist, if present */
};

struct numafeed_topo {
    char *root;
    int nnodes;
    struct nf_node *nodes;     /* increasing id */
    int ngpus;
    struct nf_gpu *gpus;       /* visible GPUs by CUDA ordinal */
    struct nf_cpuset allowed;
    char *warnings;            /* newline-separated, "" if none */
    size_t warnings_len;
    bool used_cuda;            /* ordinals came from the CUDA runtime */
};

const struct nf_node *nf__topo_node(const struct numafeed_topo *t, int id);
/* Pool CPUs for a GPU: node CPUs & allowed, else allowed (*fallback = true). */
int nf__topo_pool_cpus(const struct numafeed_topo *t, int gpu, struct nf_cpuset *out,
                        bool *fallback);

/* ---- threads and memory on a node (bind.c) ---- */

/* What binding a thread achieved; never silently degraded: every field that
 * did not come out as asked carries its reason in note. */
struct nf_bind_result {
    bool affinity;      /* sched_setaffinity succeeded */
    bool mempolicy;     /* set_mempolicy(MPOL_PREFERRED, node) succeeded */
    char note[160];     /* "" when both succeeded */
};

/*
 * Bind the calling thread: CPU affinity to cpus (never empty), then a
 * preferred memory policy for node so that everything it allocates from
 * now on (staging, zstd contexts, io_uring rings) lands on the node when
 * the node has room. Failures of the memory policy (EPERM under Docker's
 * default seccomp profile without CAP_SYS_NICE) are reported in *res and
 * are not errors: first touch by a pinned thread already allocates locally.
 * A failed sched_setaffinity is an error.
 */
int nf__bind_thread(const struct nf_cpuset *cpus, int node, struct nf_bind_result *res);

/* What a node-local buffer achieved. */
struct nf_placement {
    size_t page_size;       /* 2 MiB hugetlb, 2 MiB THP-advised, or 4 KiB */
    bool hugetlb;           /* backed by the node's reserved huge pages */
    bool thp;               /* madvise(MADV_HUGEPAGE) accepted */
    bool bound;             /* mbind(MPOL_BIND, node) succeeded */
    bool verified;          /* move_pages said where every page is */
    size_t pages, pages_on_node;
    size_t strays;          /* sampled pages found elsewhere, then moved (nf__node_settle) */
    int node;               /* the node asked for */
    char note[200];         /* reasons for anything not achieved */
};

/*
 * Allocate len bytes on node, in this order (each step's reason is in
 * DESIGN.md): mmap; MAP_HUGETLB when the node's free_hugepages (read below
 * sysfs_root) cover the size, else madvise(MADV_HUGEPAGE); mbind(MPOL_BIND)
 * to the node; first touch (write) of every page by the calling thread;
 * placement read back with move_pages. *mapped is the mapping's length (len
 * rounded up to the page size) for nf__node_free. Errors: -ENOMEM (mmap),
 * -EINVAL; a refused mbind or move_pages is reported in *pl, not an error.
 */
int nf__node_alloc(const char *sysfs_root, int node, size_t len, void **out, size_t *mapped,
                    struct nf_placement *pl);
#define NF_HUGE_2M (2u << 20) /* buffers are sized and touched in these */
/* The same in three steps, so that several threads can share the first
 * touch of a big buffer: nf__node_map does everything before the touch
 * (nothing is resident yet; *pl has the page size, hugetlb/THP and mbind
 * outcome), nf__node_touch writes one byte per base page of [p, p+len),
 * nf__node_verify reads the placement back. */
int nf__node_map(const char *sysfs_root, int node, size_t len, void **out, size_t *mapped,
                  struct nf_placement *pl);
void nf__node_touch(void *p, size_t len);
void nf__node_free(void *p, size_t mapped);
/* Re-read where the pages of [p, p+len) are (move_pages) into *pl. */
int nf__node_verify(const void *p, size_t len, int node, struct nf_placement *pl);
/* nf__node_verify, and when sampled pages of [p, p+len) are on other
 * nodes, move every page of the range that is not on node there (mbind
 * with MPOL_MF_MOVE | MPOL_MF_STRICT, which also binds the range) and
 * verify again. *pl then describes the result, pl->strays counts the
 * sampled pages that had been elsewhere and the note says what was done or
 * why it could not be. Not for page-locked memory: it cannot move. */
void nf__node_settle(void *p, size_t len, int node, struct nf_placement *pl);

/* ---- CUDA runtime (cuda.c: the only file that includes CUDA headers) ---- */

/*
 * Bus ids of the devices the CUDA runtime enumerates, by ordinal, as a
 * malloc'd array of NF_BUSID_LEN strings. NUMAFEED_ENOCUDA when the runtime
 * is compiled out or no driver/device answers; NUMAFEED_ECUDA otherwise.
 */
int nf__cuda_bus_ids(char (**ids)[NF_BUSID_LEN], int *count);

/*
 * The runtime calls the loader's CUDA path needs, as opaque pointers so no
 * other file sees a CUDA type. Each returns 0, NUMAFEED_ENOCUDA (compiled
 * out, no driver, no device) or NUMAFEED_ECUDA with the call and CUDA's
 * message in the last error. Streams are created non-blocking and events
 * without timing.
 */
int nf__cuda_device_count(void);  /* >= 0, or NUMAFEED_ENOCUDA */
int nf__cuda_set_device(int ordinal);
/* Make ordinal current and its primary context exist (cudaFree(0)), as a
 * framework such as torch has done before a training job builds its
 * loader: lets a benchmark time loader_create without the context. */
int nf__cuda_init_context(int ordinal);
/* Page-lock [p, p+len) as separate registrations of `chunk` bytes (very
 * large single registrations fail on recent drivers, and one async copy
 * must not span two registrations: the driver refuses it, so callers make
 * each chunk one copy source, e.g. one ring slot). Portable, so any context
 * may copy from it. On failure nothing stays registered. */
int nf__cuda_host_register(void *p, size_t len, size_t chunk);
void nf__cuda_host_unregister(void *p, size_t len, size_t chunk);
int nf__cuda_host_alloc(size_t len, void **p);
void nf__cuda_host_free(void *p);
int nf__cuda_malloc(size_t len, void **p);
void nf__cuda_free(void *p);
int nf__cuda_stream_create(void **stream);
void nf__cuda_stream_destroy(void *stream);
int nf__cuda_event_create(void **event);
void nf__cuda_event_destroy(void *event);
int nf__cuda_memcpy_h2d(void *dst, const void *src, size_t len, void *stream);
int nf__cuda_event_record(void *event, void *stream);
/* Page-lock a read-only mapping (a shard's) in one registration, read-only
 * and portable, with device dev current for the call (the calling thread's
 * current device is left as it was); nf__cuda_host_unregister_one undoes
 * it. */
int nf__cuda_host_register_ro_on(int dev, const void *p, size_t len);
void nf__cuda_host_unregister_one(const void *p);
/* n host-to-device copies in one call (cudaMemcpyBatchAsync; one
 * cudaMemcpyAsync each where the driver lacks it), in stream order. */
int nf__cuda_memcpy_batch_h2d(void *const *dst, const void *const *src, const size_t *len,
                              size_t n, void *stream);
/* Record event on, or make stream wait for it, for a caller's stream;
 * stream NULL means the legacy default stream of device `dev` (the batch's
 * GPU, which need not be the calling thread's current device: the current
 * device is left as it was). */
int nf__cuda_event_record_on(int dev, void *event, void *stream);
int nf__cuda_stream_wait_event_on(int dev, void *stream, void *event);
int nf__cuda_event_synchronize(void *event);
int nf__cuda_stream_synchronize(void *stream);

/* ---- GPU decode's CUDA side (cuda.c; kernels in gpu_kernels.cu) ---- */

/* 1 when the kernels are compiled in (nvcc was there at build time);
 * else 0 and why in *why. */
int nf__gpu_kernels(const char **why);
/* An event that can time (cudaEventElapsedTime) and that a waiting host
 * thread sleeps on; and the milliseconds between two of them. */
int nf__cuda_event_create_timed(void **event);
int nf__cuda_event_elapsed_ns(void *start, void *end, uint64_t *ns);
int nf__cuda_memcpy_d2h(void *dst, const void *src, size_t len, void *stream);
/* fn(arg) with device dev current, the caller's current device restored
 * after: fn's result, or the CUDA error of switching. */
int nf__cuda_on_device(int dev, int (*fn)(void *arg), void *arg);
/* Synchronous copy from device memory on device dev, the caller's current
 * device left as it was (the public loader_field_to_host). */
int nf__cuda_copy_to_host(int dev, void *dst, const void *src, size_t len);
/* The kernels (gpu_kernels.h), queued on stream; NUMAFEED_ECUDA naming the
 * launch when it cannot be queued. */
int nf__gpu_verify(const struct nf_gpu_block *blocks, uint32_t n, struct nf_gpu_result *res,
                   void *stream);
int nf__gpu_gather(const struct nf_gpu_copy *copies, uint32_t n, void *stream);
int nf__gpu_screen(const struct nf_gpu_screen *screens, uint32_t n, void *stream);
/* The training-step stand-in (numafeed_cuda_spin): on device dev, queue
 * the busy kernel for ns (0: nothing), then with wait block for stream. */
int nf__gpu_busy(int dev, uint64_t ns, void *stream, int wait);

/* ---- nvCOMP, loaded at run time (nvcomp.c; nvcomp_abi.h) ---- */

#define NF_NVCOMP_ENV "NUMAFEED_NVCOMP"
#define NF_NVCOMP_PATH 4096

struct nf_nvcomp {
    void *handle;
    unsigned version, cudart_version; /* major * 1000 + minor * 100 + patch */
    char path[NF_NVCOMP_PATH];        /* the file loaded */
#define NF_X_FIELD(field, type, name) type field;
    NF_NVCOMP_SYMBOLS(NF_X_FIELD)
#undef NF_X_FIELD
};

/* Where nvCOMP is looked for, in order (nvcomp.c's opening comment): env
 * is $NUMAFEED_NVCOMP's value (NULL or "" when unset), self the file
 * numafeed's code was loaded from. At most max paths into out; returns
 * how many. */
int nf__nvcomp_candidates(const char *env, const char *self, char (*out)[NF_NVCOMP_PATH],
                          int max);
/* Load the first candidate that is nvCOMP 6 with every entry point. 0, or
 * NUMAFEED_ENVCOMP naming each place tried and why it failed. */
int nf__nvcomp_open(const char *env, const char *self, struct nf_nvcomp *lib);
void nf__nvcomp_close(struct nf_nvcomp *lib);
/* The process's nvCOMP, loaded once (thread-safe): 0 or NUMAFEED_ENVCOMP
 * (the same answer every time); nf__nvcomp is the library or NULL. */
int nf__nvcomp_load(void);
const struct nf_nvcomp *nf__nvcomp(void);
/* "nvCOMP 6.0.0 (CUDA runtime 13040) from PATH" */
void nf__nvcomp_describe(const struct nf_nvcomp *lib, char *buf, size_t len);

/* One batched zstd decompression, every pointer device memory (nvCOMP's
 * argument names in nvcomp_abi.h). */
struct nf_nvcomp_batch {
    const void *const *in_ptrs;
    const size_t *in_bytes;
    const size_t *out_bytes; /* each output buffer's capacity */
    size_t *actual;          /* written: bytes each produced */
    void *const *out_ptrs;
    nf_nvcomp_status *statuses;
    size_t n;
    void *temp;
    size_t temp_bytes;
};
/* nvCOMP's calls; errors are NUMAFEED_ECUDA with nvCOMP's words. The temp
 * size depends on the GPU: call with its device current. */
int nf__nvcomp_zstd_alignments(const struct nf_nvcomp *lib, struct nf_nvcomp_alignments *out);
int nf__nvcomp_zstd_temp(const struct nf_nvcomp *lib, size_t chunks, size_t max_chunk,
                         size_t max_total, size_t *temp);
int nf__nvcomp_zstd_decompress(const struct nf_nvcomp *lib, const struct nf_nvcomp_batch *b,
                               void *stream);
const char *nf__nvcomp_status_string(const struct nf_nvcomp *lib, int status);

#endif
