/* SPDX-License-Identifier: Apache-2.0 */
/*
 * numafeed: NUMA-local data loading for GPU training.
 *
 * This header is the whole public C API and its reference.
 *
 * Conventions
 *   - Functions return 0 on success or a negative error code: either a
 *     negated errno value (-ENOENT, -EINVAL, ...) or one of numafeed's own
 *     codes below (NUMAFEED_E*), which live in a reserved range far below
 *     any errno. numafeed_strerror() names both kinds.
 *   - When a call fails, a message with the details (which file, which
 *     offset, which system call) is kept per thread and returned by
 *     numafeed_last_error(). Objects that outlive a call keep their own
 *     message too (see the loader section, once it exists).
 *   - Handles are opaque; every create or open call has a destroy or close call
 *     that accepts NULL.
 *   - Not thread-safe except where a function says otherwise. Different
 *     handles may be used from different threads at once.
 *   - The library never calls exit() or abort() and installs no signal
 *     handlers.
 */
#ifndef NUMAFEED_H
#define NUMAFEED_H

#include <stddef.h>
#include <stdint.h>

#include "numafeed_version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(NUMAFEED_BUILDING)
#define NUMAFEED_API __attribute__((visibility("default")))
#else
#define NUMAFEED_API
#endif

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * numafeed's own error codes. One table generates the enum, the names and
 * the messages. Codes are stable across releases; new ones are appended.
 *   X(NAME, offset, message)   ->   NUMAFEED_E<NAME> = NUMAFEED_ERRNO_BASE - offset
 */
#define NUMAFEED_ERRNO_BASE (-10000)
#define NUMAFEED_ERRNO_MAP(X)                                                     \
    X(CORRUPT, 1, "corrupt data")                                                 \
    X(CHECKSUM, 2, "checksum mismatch")                                           \
    X(VERSION, 3, "unsupported format version")                                   \
    X(SYSFS, 4, "malformed system file")                                          \
    X(MANIFEST, 5, "malformed dataset manifest")                                  \
    X(EPOCH_END, 6, "end of epoch")                                               \
    X(CUDA, 7, "CUDA runtime failure")                                            \
    X(NOCUDA, 8, "CUDA runtime not compiled in or no driver")                     \
    X(CONFIG, 9, "invalid configuration")

enum numafeed_errno {
#define NUMAFEED_X_ENUM(name, off, msg) NUMAFEED_E##name = NUMAFEED_ERRNO_BASE - (off),
    NUMAFEED_ERRNO_MAP(NUMAFEED_X_ENUM)
#undef NUMAFEED_X_ENUM
};

/*
 * A static, human-readable description of any code this library returns:
 * numafeed's own codes and negated errno values alike. Never NULL.
 * Thread-safe.
 */
NUMAFEED_API const char *numafeed_strerror(int err);

/*
 * The symbolic name of a code: "NUMAFEED_ECORRUPT", "ENOENT", ...; for an
 * unknown code "UNKNOWN". Never NULL. Thread-safe.
 */
NUMAFEED_API const char *numafeed_err_name(int err);

/*
 * The detailed message of the last failed numafeed call on this thread
 * (which file, offset and system call). "" when there is none. The pointer
 * stays valid until the next numafeed call on this thread. Thread-safe
 * (each thread has its own message).
 */
NUMAFEED_API const char *numafeed_last_error(void);

/* The library's version as NUMAFEED_VERSION_NUMBER encodes it. Thread-safe. */
NUMAFEED_API unsigned numafeed_version(void);
/* The library's version as a string, "0.1.0". Thread-safe. */
NUMAFEED_API const char *numafeed_version_string(void);
/*
 * Whether this build has the CUDA path compiled in (1) or is host-only (0).
 * A build with CUDA still runs on a machine with no driver or no GPU.
 * Thread-safe.
 */
NUMAFEED_API int numafeed_has_cuda(void);

/* ------------------------------------------------------------------------ */
/* Topology: NUMA nodes, GPUs, allowed CPUs                                  */
/* ------------------------------------------------------------------------ */

/*
 * A snapshot of the machine's topology, read once from sysfs when it is
 * opened. numafeed reads only these files below the sysfs root:
 *   devices/system/node/online, devices/system/node/node<N>/cpulist,
 *   devices/system/cpu/online (only when the kernel has no node directory),
 *   bus/pci/devices/<bdf>/{vendor,class,numa_node,local_cpulist}.
 * GPUs are NVIDIA display controllers (vendor 0x10de, class 0x0300xx or
 * 0x0302xx). A GPU whose numa_node is -1 or missing has an unknown node:
 * it resolves to node 0 (or the lowest online node) and is flagged unknown;
 * -1 is never used as a node.
 *
 * GPU index: the CUDA ordinal. When the CUDA runtime is compiled in, the
 * driver answers and the sysfs root is the real /sys, ordinals are mapped to
 * PCI bus ids with cudaDeviceGetPCIBusId (honouring CUDA_VISIBLE_DEVICES and
 * CUDA_DEVICE_ORDER). Otherwise CUDA_VISIBLE_DEVICES (a comma list of
 * indices) is applied over the PCI-bus-id order, as the driver would with
 * CUDA_DEVICE_ORDER=PCI_BUS_ID; like the driver, the list ends at the first
 * index that does not exist. A UUID entry without the CUDA runtime is an
 * error (-EINVAL), never a guess.
 */
typedef struct numafeed_topo numafeed_topo;

struct numafeed_topo_options {
    /* sizeof(struct numafeed_topo_options); set by numafeed_topo_options_init. */
    size_t size;
    /*
     * Directory standing in for /sys. NULL (the default) means the
     * environment variable NUMAFEED_SYSFS_ROOT if set, else "/sys".
     */
    const char *sysfs_root;
    /*
     * Value standing in for the CUDA_VISIBLE_DEVICES environment variable.
     * NULL (the default) means read the environment.
     */
    const char *cuda_visible_devices;
    /*
     * Whether to ask the CUDA runtime for bus ids: -1 auto (the default: only
     * when the sysfs root is "/sys"), 0 never, 1 always when compiled in.
     */
    int use_cuda;
    /*
     * Allowed CPUs as a kernel cpulist ("0-3,8"); NULL (the default) means
     * the calling thread's inherited affinity (sched_getaffinity).
     */
    const char *allowed_cpus;
};

/* Fill *opt with the defaults documented above. */
NUMAFEED_API void numafeed_topo_options_init(struct numafeed_topo_options *opt);

/*
 * Read the topology. opt may be NULL for the defaults. On success *out is a
 * new handle to release with numafeed_topo_close(). Errors: -EINVAL (bad
 * option, UUID in CUDA_VISIBLE_DEVICES without CUDA), -ENOENT (no node
 * information under the root), NUMAFEED_ESYSFS (a malformed file: the
 * message names it), -ENOMEM, other negated errno from reading sysfs.
 */
NUMAFEED_API int numafeed_topo_open(const struct numafeed_topo_options *opt,
                                    numafeed_topo **out);
/* Release a topology. NULL is allowed. */
NUMAFEED_API void numafeed_topo_close(numafeed_topo *topo);

/* Number of online NUMA nodes (>= 1). */
NUMAFEED_API int numafeed_topo_node_count(const numafeed_topo *topo);
/* The id of the i-th online node, in increasing order; -EINVAL if out of range. */
NUMAFEED_API int numafeed_topo_node_id(const numafeed_topo *topo, int i);
/* Number of visible GPUs (after CUDA_VISIBLE_DEVICES), possibly 0. */
NUMAFEED_API int numafeed_topo_gpu_count(const numafeed_topo *topo);

/* What the topology knows of one visible GPU. */
struct numafeed_gpu_info {
    int index;            /* CUDA ordinal */
    char pci_bus_id[32];  /* normalised "dddd:bb:dd.f", lower case */
    int numa_node;        /* resolved node, never -1 */
    int numa_node_raw;    /* what sysfs said; -1 when unknown or missing */
    int node_known;       /* 1 when numa_node_raw named an online node */
};

/* Fill *info for GPU index gpu. -EINVAL if gpu is out of range. */
NUMAFEED_API int numafeed_topo_gpu(const numafeed_topo *topo, int gpu,
                                   struct numafeed_gpu_info *info);

/*
 * CPU sets are returned as kernel cpulist strings ("0-3,8-11") written to
 * buf (always NUL-terminated when bufsize > 0). The return value is the
 * string's length (like snprintf: a value >= bufsize means it was cut), or
 * a negative error.
 *   numafeed_topo_node_cpus: the CPUs of node id `node` (may be "" for a
 *     CPU-less node such as Grace's GPU memory);
 *   numafeed_topo_gpu_cpus: the CPUs of the GPU's resolved node;
 *   numafeed_topo_allowed_cpus: the allowed CPUs the topology was read with;
 *   numafeed_topo_pool_cpus: the CPUs a pool for this GPU runs on:
 *     node CPUs intersected with the allowed CPUs, or the allowed CPUs when
 *     that intersection is empty (*fallback is then set to 1). Never empty.
 */
NUMAFEED_API int numafeed_topo_node_cpus(const numafeed_topo *topo, int node,
                                         char *buf, size_t bufsize);
NUMAFEED_API int numafeed_topo_gpu_cpus(const numafeed_topo *topo, int gpu,
                                        char *buf, size_t bufsize);
NUMAFEED_API int numafeed_topo_allowed_cpus(const numafeed_topo *topo,
                                            char *buf, size_t bufsize);
NUMAFEED_API int numafeed_topo_pool_cpus(const numafeed_topo *topo, int gpu,
                                         char *buf, size_t bufsize, int *fallback);

/*
 * The topology as JSON, exactly the shape `numafeed topo --json` prints:
 * {"nodes":[{"id":0,"cpus":[0,1]}],
 *  "gpus":[{"index":0,"pci_bus_id":"0000:18:00.0","numa_node":0,
 *           "numa_node_raw":0,"cpus":[0,1]}],
 *  "allowed_cpus":[0,1]}
 * On success *out is a malloc'd NUL-terminated string the caller frees.
 */
NUMAFEED_API int numafeed_topo_json(const numafeed_topo *topo, char **out);

/*
 * Warnings collected while reading (unknown GPU nodes, a CUDA_VISIBLE_DEVICES
 * list cut short, ...), one per line; "" when there are none. Valid until
 * numafeed_topo_close().
 */
NUMAFEED_API const char *numafeed_topo_warnings(const numafeed_topo *topo);

/*
 * Parse a kernel cpulist ("0-3,8,10-11\n") and write it back in canonical
 * form to buf (same return convention as numafeed_topo_node_cpus). Errors:
 * -EINVAL with a message for garbage, reversed ranges, empty elements
 * (a trailing comma), ids above 65535. Useful to validate user input.
 * Thread-safe.
 */
NUMAFEED_API int numafeed_cpulist_normalize(const char *text, char *buf, size_t bufsize);

/* @@WRITER@@ the dataset writer and reader API (src/io) goes here. */

#ifdef __cplusplus
}
#endif

#endif /* NUMAFEED_H */
