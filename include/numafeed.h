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
 *   - The library never calls exit() or abort(). It installs one signal
 *     handler, and only when a loader reads shards through mmap: a SIGBUS
 *     handler that turns a fault inside numafeed's own guarded reads of a
 *     shard mapping (a shard truncated meanwhile) into an error, and passes
 *     every other SIGBUS to the handler installed before it
 *     (docs/security.md).
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
    X(CONFIG, 9, "invalid configuration")                                         \
    X(DONE, 10, "every configured epoch was delivered")                           \
    X(NVCOMP, 11, "nvCOMP missing or unusable")

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
 * It says nothing about this machine: a build with CUDA still runs where
 * there is no driver or no GPU (and then serves host batches). Ask
 * numafeed_cuda_device_count() whether GPUs are usable here. Thread-safe.
 */
NUMAFEED_API int numafeed_has_cuda(void);

/* ------------------------------------------------------------------------ */
/* CUDA devices                                                             */
/* ------------------------------------------------------------------------ */

/*
 * The number of GPUs the CUDA runtime can use in this process (after
 * CUDA_VISIBLE_DEVICES), >= 0, or NUMAFEED_ENOCUDA when there are none to
 * use, with the reason in numafeed_last_error(), one of:
 *   - the CUDA runtime is not compiled into this build (numafeed_has_cuda()
 *     is 0);
 *   - no NVIDIA driver is loaded (libcuda.so.1 is missing or unloadable);
 *   - the driver is older than the CUDA runtime this build links (the
 *     message gives both versions);
 *   - the driver is loaded but sees no GPU, or failed to initialise one.
 * NUMAFEED_ECUDA for any other CUDA failure. The first call initialises the
 * CUDA runtime in this process. Thread-safe.
 */
NUMAFEED_API int numafeed_cuda_device_count(void);

/*
 * Make CUDA ordinal `ordinal` the calling thread's current device and
 * create its primary context, as a framework such as torch has done before
 * a training job builds its loader (so that loader_create is not charged
 * for it). Returns 0; NUMAFEED_ENOCUDA and NUMAFEED_ECUDA as
 * numafeed_cuda_device_count(); -EINVAL for an ordinal that is negative or
 * not below that count; NUMAFEED_ECUDA when creating the context fails.
 * Thread-safe.
 */
NUMAFEED_API int numafeed_cuda_init_context(int ordinal);

/*
 * A benchmark's stand-in for a training step: queue on `stream` (a
 * cudaStream_t; NULL for the legacy default stream of GPU `ordinal`) a
 * kernel that keeps every SM of that GPU busy for about ns nanoseconds
 * (ns 0 queues nothing); then, when wait is 1, block until everything
 * queued on that stream has run. The calling thread's current device is
 * left as it was. Returns 0; NUMAFEED_ENOCUDA as
 * numafeed_cuda_device_count() (also when this build has no GPU kernels);
 * NUMAFEED_ECUDA. Thread-safe. `numafeed bench --gpu-step-us` uses it.
 */
NUMAFEED_API int numafeed_cuda_spin(int ordinal, uint64_t ns, void *stream, int wait);

/* ------------------------------------------------------------------------ */
/* The launcher: which GPU and which part of the data                       */
/* ------------------------------------------------------------------------ */

/*
 * What the job's launcher told this process through its environment:
 *   local rank (the GPU on this host):   LOCAL_RANK (torchrun),
 *                                        OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID
 *   rank and world size (the data part): RANK and WORLD_SIZE (torchrun),
 *                                        OMPI_COMM_WORLD_RANK and OMPI_COMM_WORLD_SIZE,
 *                                        SLURM_PROCID and SLURM_NTASKS
 * Later releases may append fields.
 */
struct numafeed_launch {
    size_t size;            /* sizeof(struct numafeed_launch); set by numafeed_launch_init */
    int local_rank;         /* 0 .. 4096; -1 when no variable sets it */
    int rank;               /* 0 .. world_size - 1; -1 when none is set */
    int world_size;         /* >= 1; 0 when none is set */
    /* The variable each value came from (the first set, in the order
     * above: the innermost launcher), "" when none. */
    char local_rank_from[32], rank_from[32], world_size_from[32];
};

/* Fill *l with "nothing set": size, -1, -1, 0 and empty names. */
NUMAFEED_API void numafeed_launch_init(struct numafeed_launch *l);

/*
 * Read the variables above into *out (up to out->size bytes; call
 * numafeed_launch_init first). Each value must be a plain decimal number:
 * no sign, no spaces, no trailing characters, no overflow; a local rank is
 * at most 4096, a world size at least 1 and a rank below its world size,
 * and a rank comes with its world size and the other way round. When
 * several launchers' variables are set (one runs inside another's
 * allocation: `srun torchrun`, `mpirun` in an sbatch script) the innermost
 * launcher's win, in the order above, and the others are not compared
 * with them (SLURM_LOCALID is 0 on every torchrun child of one task).
 * Nothing set is not an error: the fields keep their "none" values.
 * Returns 0; NUMAFEED_ECONFIG naming the variables and their values (on
 * any error *out is left as it was); -EINVAL when out or out->size is bad.
 * Thread-safe as long as no thread changes the environment meanwhile.
 */
NUMAFEED_API int numafeed_launch_env(struct numafeed_launch *out);

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

/* ------------------------------------------------------------------------ */
/* Machine check (`numafeed doctor`)                                        */
/* ------------------------------------------------------------------------ */

struct numafeed_doctor_options {
    size_t size;                       /* sizeof; set by numafeed_doctor_options_init */
    /* As in struct numafeed_topo_options (NULL: the defaults there). */
    const char *sysfs_root;
    const char *cuda_visible_devices;
    const char *allowed_cpus;
    int use_cuda;                      /* -1 auto (default), 0 never, 1 always */
    /* Directory standing in for /proc (NULL: $NUMAFEED_PROC_ROOT, else
     * "/proc"); only sys/kernel/numa_balancing and sys/kernel/io_uring_disabled
     * are read below it. */
    const char *proc_root;
};

NUMAFEED_API void numafeed_doctor_options_init(struct numafeed_doctor_options *opt);

/*
 * Check whether this machine and process are set up for numafeed: NUMA nodes
 * and CPUs, each GPU's node (flagging -1), the allowed CPUs against each
 * GPU's node, numa_balancing, the memlock limit, free huge pages per node,
 * the THP mode, whether io_uring may be created, whether mbind is permitted,
 * the CUDA runtime and driver. On success *json is a malloc'd document
 *   {"findings":[{"check":"...","status":"ok"|"warn","value":"...",
 *                 "detail":"...","action":"..."}],"warnings":N}
 * where action says what numafeed will do about it, and *warnings (may be
 * NULL) is N, the number of findings that would degrade the loader. Errors:
 * those of numafeed_topo_open (the topology could not be read), -ENOMEM.
 */
NUMAFEED_API int numafeed_doctor(const struct numafeed_doctor_options *opt, char **json,
                                 int *warnings);

/*
 * Where a process's threads and pages really are (`numafeed verify`). For
 * every thread of pid: its allowed CPUs (Cpus_allowed_list) and the CPU it
 * last ran on (from /proc/PID/task/TID/stat); numafeed pool threads are
 * recognised by their names ("numafeed-g<ordinal>-<n>") and checked against
 * that GPU's pool CPUs. For the whole process: bytes of resident pages per
 * node (from /proc/PID/numa_maps). With gpu >= 0, every thread and every
 * page is expected on that GPU's node. opt: sysfs_root, proc_root,
 * allowed_cpus (the pool CPUs are computed with this process's affinity
 * unless given), use_cuda as in numafeed_doctor_options. On success *json
 * is a malloc'd document {"pid","gpu","threads":[{"tid","name","cpus",
 * "last_cpu","pool_gpu","expected_cpus","ok"}],"node_bytes":{"N":bytes},
 * "expected_node","off_node_bytes","problems"}; *problems (may be NULL) is
 * the number of threads off their CPUs plus 1 if any page is off the
 * expected node. Errors: -ESRCH (no such process), the topology's errors.
 */
NUMAFEED_API int numafeed_verify(int pid, int gpu, const struct numafeed_doctor_options *opt,
                                 char **json, int *problems);

/*
 * Parse a kernel cpulist ("0-3,8,10-11\n") and write it back in canonical
 * form to buf (same return convention as numafeed_topo_node_cpus). Errors:
 * -EINVAL with a message for garbage, reversed ranges, empty elements
 * (a trailing comma), ids above 65535. Useful to validate user input.
 * Thread-safe.
 */
NUMAFEED_API int numafeed_cpulist_normalize(const char *text, char *buf, size_t bufsize);

/*
 * Parse a kernel cpulist and write its ids in increasing order to ids (at
 * most max of them). Returns how many the list holds (more than max means
 * ids was cut), or -EINVAL as numafeed_cpulist_normalize. Thread-safe.
 */
NUMAFEED_API int numafeed_cpulist_ids(const char *text, int *ids, size_t max);

/* ------------------------------------------------------------------------ */
/* Datasets: writing (the format is described in docs/format.md)            */
/* ------------------------------------------------------------------------ */

/*
 * A dataset is a directory holding manifest.json and shard files of
 * fixed-size records. A record is a sequence of named fields, each an array
 * of one dtype with a fixed shape; the record size is the sum of the fields'
 * sizes. The writer turns a stream of records into such a directory:
 *
 *     numafeed_writer *w;
 *     struct numafeed_field f = {"tokens", "int32", 1, {2048}};
 *     if (numafeed_writer_create("out", &f, 1, NULL, &w) == 0) {
 *         rc = numafeed_writer_append(w, records, count);   // any number of times
 *         rc = rc ? rc : numafeed_writer_finish(w);
 *         numafeed_writer_destroy(w);                       // always
 *     }
 *
 * Writing is atomic: everything goes into a hidden temporary directory next
 * to the output (".NAME.tmp-PID-XXXXXX"), each file and the directory are
 * fsync'd, and only numafeed_writer_finish() renames it into place. A writer
 * destroyed without a successful finish, or a process killed mid-way, never
 * leaves a directory that looks like a dataset under the output name (a
 * killed process can leave the hidden temporary behind; it holds no
 * manifest and may be deleted).
 */
typedef struct numafeed_writer numafeed_writer;

#define NUMAFEED_FIELD_MAX_DIMS 8
/* At most this many fields per record. */
#define NUMAFEED_MAX_FIELDS 256
/* The largest decoded block, and so the largest record, in bytes (256 MiB). */
#define NUMAFEED_MAX_BLOCK_BYTES (256u << 20)

/*
 * One field of the record layout. dtype is one of: "uint8", "int8",
 * "uint16", "int16", "uint32", "int32", "uint64", "int64", "float16",
 * "bfloat16", "float32", "float64". name: 1 to 63 characters of
 * [A-Za-z0-9_], not starting with a digit, unique within the layout.
 * ndim 0 is a scalar; every dimension is >= 1. Fields are laid out in the
 * order given, packed (no padding), little-endian as the caller wrote them.
 */
struct numafeed_field {
    const char *name;
    /* A dtype of the table in docs/format.md ("int32", "bfloat16", ...), or
     * "bytes" / "str" (UTF-8) for a variable-length field (ndim 0). */
    const char *dtype;
    unsigned ndim;
    /* Each >= 1; a 1-D field whose length varies from record to record has
     * ndim 1 and shape[0] = NUMAFEED_VARIABLE. */
    uint64_t shape[NUMAFEED_FIELD_MAX_DIMS];
};

/* shape[0] of a 1-D field whose length varies per record. */
#define NUMAFEED_VARIABLE 0

/* Bytes of one element of a dtype of the table ("bfloat16": 2); 0 for a
 * name that is not one (bytes and str are not dtypes: their elements are
 * uint8). Thread-safe. */
NUMAFEED_API size_t numafeed_dtype_size(const char *dtype);

/*
 * Parse one field description "NAME:DTYPE[:SHAPE]", the syntax of `numafeed
 * pack --field`: SHAPE is the dimensions joined by 'x' or ',' ("2048",
 * "3x224x224"), left out for a scalar. spec is modified in place and
 * out->name and out->dtype point into it, so spec must outlive *out. The
 * name and dtype are checked with the whole layout (numafeed_layout_check),
 * not here. Returns 0, or -EINVAL (no ':', a bad or zero dimension, more
 * than NUMAFEED_FIELD_MAX_DIMS) with a message. Thread-safe.
 */
NUMAFEED_API int numafeed_field_parse(char *spec, struct numafeed_field *out);

/*
 * Check a record layout exactly as numafeed_writer_create() will: 1 to
 * NUMAFEED_MAX_FIELDS fields, names valid and unique, dtypes known, every
 * dimension >= 1, record size at most NUMAFEED_MAX_BLOCK_BYTES, no
 * overflow. On success *record_bytes (may be NULL) is the record size.
 * Returns 0 or -EINVAL with the offending field named in the message.
 * Nothing is written anywhere. Thread-safe.
 */
NUMAFEED_API int numafeed_layout_check(const struct numafeed_field *fields, size_t nfields,
                                       uint64_t *record_bytes);

enum numafeed_codec {
    NUMAFEED_CODEC_DEFAULT = 0, /* zstd */
    NUMAFEED_CODEC_NONE = 1,    /* blocks stored raw */
    NUMAFEED_CODEC_ZSTD = 2,    /* one zstd frame per block; a block that does
                                 * not shrink is stored raw */
};

struct numafeed_writer_options {
    /* sizeof(struct numafeed_writer_options); set by numafeed_writer_options_init. */
    size_t size;
    /* enum numafeed_codec; 0 (the default) means zstd. */
    int codec;
    /* zstd compression level, from ZSTD_minCLevel() to ZSTD_maxCLevel();
     * 0 (the default) means 3. Ignored without zstd. */
    int level;
    /* Decoded bytes per block, in bytes: rounded down to whole records, at
     * least one record, at most 256 MiB. 0 (the default) means 256 KiB. A
     * block is the unit of reading, checking and decoding: reading one record
     * decodes its whole block. */
    uint64_t block_bytes;
    /* Target shard file size, in bytes: a shard is closed after the first
     * block that brings it to this size or beyond. 0 (the default) means
     * 1 GiB. */
    uint64_t shard_bytes;
    /* 0 (the default): fail with -EEXIST if the output exists. 1: replace an
     * existing output that is a numafeed dataset (has a manifest.json) or an
     * empty directory; anything else is still refused with -EEXIST. The swap
     * uses renameat2(RENAME_EXCHANGE), atomic on filesystems that support it
     * (ext4, xfs, btrfs, tmpfs); elsewhere the old directory is renamed aside
     * first, leaving a moment with no output. The old dataset is then
     * removed. */
    int force;
    /* The largest record numafeed_writer_add accepts, in bytes (its fixed
     * and variable fields together); a larger one is refused with -EFBIG,
     * naming the record, and the writer stays usable. 0 (the default): 64
     * MiB; at most 256 MiB (the block cap). The loader sizes a batch's
     * variable fields from the largest records, so this also bounds a
     * batch. */
    uint64_t max_record_bytes;
};

/* Fill *opt with the defaults documented above. */
NUMAFEED_API void numafeed_writer_options_init(struct numafeed_writer_options *opt);

/*
 * Start writing a dataset to the directory out_dir with the given record
 * layout (nfields >= 1 fields, copied: the caller's array and strings may
 * go once this returns). opt may be NULL for the defaults. Creates the
 * temporary directory. On success *out is a new writer to release with
 * numafeed_writer_destroy(). Errors: -EINVAL (bad layout or option, named
 * in the message), -EEXIST (out_dir exists, see force), -ENOENT (the
 * parent directory does not exist), -ENOMEM, other -errno from mkdir.
 */
NUMAFEED_API int numafeed_writer_create(const char *out_dir, const struct numafeed_field *fields,
                                        size_t nfields, const struct numafeed_writer_options *opt,
                                        numafeed_writer **out);

/*
 * Append count whole records (count * record size bytes at records) in
 * order. Compresses and writes full blocks as they fill; may write nothing.
 * Errors: -EIO, -ENOSPC, other -errno from write, -EINVAL after a failure or
 * after finish (a writer that failed once refuses everything but destroy).
 */
NUMAFEED_API int numafeed_writer_append(numafeed_writer *w, const void *records, size_t count);

/*
 * Append one record given field by field, in the layout's order: data[f]
 * points at sizes[f] bytes of field f. A fixed field's size must be its
 * size in the layout; a variable field's a whole number of its elements
 * (any number, 0 included), and a "str" field's valid UTF-8. Works for any
 * layout; a layout with a variable field must use it (numafeed_writer_append
 * takes fixed records only). Errors that refuse the record and leave the
 * writer usable: -EINVAL (a size, UTF-8 or NULL data, named with the record
 * number and field), -EFBIG (over max_record_bytes). Errors from writing
 * (-EIO, -ENOSPC, ...) fail the writer as for append.
 */
NUMAFEED_API int numafeed_writer_add(numafeed_writer *w, const void *const *data,
                                     const size_t *sizes);

/*
 * Write the last block, every shard's footer, the manifest, fsync them and
 * rename the temporary directory to out_dir. After success the writer only
 * answers the query functions and destroy. Errors: -EINVAL when no record
 * was appended, -EEXIST when out_dir appeared meanwhile (and force is 0),
 * -errno from writing, fsync or rename (the temporary is then removed by
 * destroy, and an existing dataset is left as it was).
 */
NUMAFEED_API int numafeed_writer_finish(numafeed_writer *w);

/*
 * Free the writer. Without a successful finish it removes the temporary
 * directory and everything in it. NULL is allowed.
 */
NUMAFEED_API void numafeed_writer_destroy(numafeed_writer *w);

/* The record size in bytes (the sum of the fields' sizes); with variable
 * fields, the size of a record's fixed fields. */
NUMAFEED_API size_t numafeed_writer_record_bytes(const numafeed_writer *w);
/* Records appended so far. */
NUMAFEED_API uint64_t numafeed_writer_records(const numafeed_writer *w);
/* Bytes written to shard files so far (headers, blocks, footers). */
NUMAFEED_API uint64_t numafeed_writer_bytes_written(const numafeed_writer *w);
/* Shard files started so far. */
NUMAFEED_API unsigned numafeed_writer_shards(const numafeed_writer *w);

/*
 * The bytes of DIR/manifest.json as the loader reads them: opened beneath
 * DIR (a symbolic link that leaves it is refused unless follow_symlinks),
 * never blocking on a FIFO, a regular file of at most 64 MiB (checked
 * before anything is read). Not parsed. On success *text is a malloc'd
 * buffer of *len bytes (not NUL-terminated) the caller frees. Errors:
 * -ENOENT, -EXDEV (a link out), NUMAFEED_EMANIFEST (not a regular file,
 * too large), other -errno; the message names the file. Thread-safe.
 */
NUMAFEED_API int numafeed_dataset_manifest(const char *dir, int follow_symlinks, char **text,
                                           size_t *len);

/* ------------------------------------------------------------------------ */
/* Datasets: checking and reading                                          */
/* ------------------------------------------------------------------------ */

/* One problem found by numafeed_check(); valid only during the callback. */
struct numafeed_check_problem {
    const char *file;    /* shard file name, or "manifest.json" */
    int64_t block;       /* the shard's block number; -1 when not in one block */
    int64_t offset;      /* byte offset in the file; -1 when unknown */
    int code;            /* what numafeed_strerror() names: NUMAFEED_ECORRUPT, ... */
    const char *message; /* the full message (also names file, block, offset) */
};

/* What numafeed_check() saw. Later releases may append fields. */
struct numafeed_check_summary {
    size_t size;             /* set by the caller: sizeof(struct numafeed_check_summary) */
    uint32_t shards;
    uint64_t records;
    uint64_t record_bytes;
    uint64_t blocks, zstd_blocks, raw_blocks;
    uint64_t file_bytes;     /* sum of the shard files' sizes */
    uint64_t decoded_bytes;  /* sum of the blocks' decoded sizes */
    uint64_t problems;       /* as many as problem() was called */
    uint32_t stored_hash_shards; /* shards that keep a hash of every block's stored
                                  * bytes (docs/format.md), each checked before
                                  * its block is decoded */
};

/*
 * Verify the dataset directory dir completely, as `numafeed check` does:
 * the manifest, every shard's size and content hash (XXH3 of the whole
 * file), header, trailer, footer and index, its record count, and every
 * block (read, the XXH3 of its stored bytes where the shard keeps one, zstd
 * frame with its checksum, decoded size and XXH3). Every byte of every
 * shard is read, with plain preads on the calling thread.
 * It does not stop at the first problem: problem (may be NULL) is called
 * once per problem, on the calling thread, with user passed through.
 * sum (may be NULL) is filled up to sum->size bytes, which the caller sets.
 * Files are opened beneath dir as the loader opens them: a symbolic link
 * that leaves the directory is one problem unless follow_symlinks is 1.
 * Returns the number of problems (0: intact; a missing or unreadable
 * manifest is one problem), or a negative error only when the check itself
 * could not run: -ENOMEM, -EINVAL (dir NULL, sum->size too small).
 * Thread-safe.
 */
NUMAFEED_API int numafeed_check(const char *dir, int follow_symlinks,
                                void (*problem)(void *user, const struct numafeed_check_problem *p),
                                void *user, struct numafeed_check_summary *sum);

/*
 * A read-only view of a dataset, for tools and benchmarks: its blocks, where
 * each is stored, and synchronous reads of one block or one record, checked
 * exactly as the loader checks them. Training reads through the loader.
 *
 * Blocks are numbered globally, 0 .. numafeed_dataset_blocks() - 1: every
 * block of every shard, shard by shard (manifest order), in file order, the
 * numbering the loader's sampler uses.
 *
 * Thread-safety: numafeed_dataset_records, _record_bytes, _blocks and _block
 * may be called from any thread at once; the read calls use a buffer and
 * a reader owned by the handle and are not thread-safe per handle (open one
 * handle per thread to read in parallel).
 */
typedef struct numafeed_dataset numafeed_dataset;

/*
 * Open the dataset directory dir: parse the manifest, open every shard and
 * validate its header, footer and index (shard contents are hashed only by
 * numafeed_check). On success *out is a new handle to release with
 * numafeed_dataset_close(). Errors: -EINVAL (NULL argument), -ENOENT (no
 * manifest, or a missing shard, named), NUMAFEED_EMANIFEST,
 * NUMAFEED_EVERSION, NUMAFEED_ECORRUPT, NUMAFEED_ECHECKSUM, -ENOMEM, other
 * -errno from opening or reading.
 */
NUMAFEED_API int numafeed_dataset_open(const char *dir, numafeed_dataset **out);
/* Close the shards and free everything. NULL is allowed. */
NUMAFEED_API void numafeed_dataset_close(numafeed_dataset *ds);

/* Records in the dataset; bytes of a record's fixed fields (the whole
 * record without variable fields); blocks (the global count). */
NUMAFEED_API uint64_t numafeed_dataset_records(const numafeed_dataset *ds);
NUMAFEED_API size_t numafeed_dataset_record_bytes(const numafeed_dataset *ds);
NUMAFEED_API uint32_t numafeed_dataset_blocks(const numafeed_dataset *ds);

/* How one block is stored (struct numafeed_block_info's codec). */
enum numafeed_block_codec {
    NUMAFEED_BLOCK_RAW = 0,  /* stored as decoded */
    NUMAFEED_BLOCK_ZSTD = 1, /* one zstd frame */
};

/* Where a block is and what it holds. Later releases may append fields. */
struct numafeed_block_info {
    size_t size;            /* set by the caller: sizeof(struct numafeed_block_info) */
    const char *shard;      /* shard file name inside the dataset directory; valid
                             * until numafeed_dataset_close() */
    uint64_t offset;        /* byte offset of the stored bytes in the shard file */
    uint32_t stored_bytes;  /* bytes in the file */
    uint32_t decoded_bytes; /* bytes after decoding: records x record bytes */
    uint32_t records;
    int codec;              /* enum numafeed_block_codec */
    uint64_t first_record;  /* dataset index of the block's first record */
};

/*
 * Describe global block `block`: fills info up to info->size bytes, which
 * the caller sets. Returns 0, -ERANGE when block >= numafeed_dataset_blocks(),
 * -EINVAL (NULL, or info->size too small to hold the size itself).
 */
NUMAFEED_API int numafeed_dataset_block(const numafeed_dataset *ds, uint32_t block,
                                        struct numafeed_block_info *info);

/*
 * Read global block `block` (pread), decode it into dst and verify it:
 * a zstd frame must declare the index's decoded size and produce exactly
 * that, and the decoded bytes must hash (XXH3-64) to the index's value; a
 * raw block is read straight into dst and hashed there. Writes exactly
 * decoded_bytes bytes to dst. Returns 0; -ERANGE (no such block), -EINVAL
 * (dst NULL or dst_len < decoded_bytes); NUMAFEED_ECORRUPT,
 * NUMAFEED_ECHECKSUM, -EIO and other -errno, naming shard, block and offset;
 * -ENOMEM. dst's contents are unspecified after a failure.
 */
NUMAFEED_API int numafeed_dataset_read_block(numafeed_dataset *ds, uint32_t block, void *dst,
                                             size_t dst_len);

/*
 * Record `record`'s stored size in bytes: numafeed_dataset_record_bytes()
 * (its fixed fields), plus, in a dataset with variable fields, their
 * lengths. 0 for no such record.
 */
NUMAFEED_API uint64_t numafeed_dataset_record_size(const numafeed_dataset *ds, uint64_t record);

/*
 * Copy record `record` (0 .. numafeed_dataset_records() - 1) to dst as it
 * is stored, numafeed_dataset_record_size() bytes (its fixed fields at
 * their offsets, then each variable field's bytes in field order: see
 * docs/format.md), reading, decoding and verifying
 * its whole block as numafeed_dataset_read_block does. Returns 0; -ERANGE
 * (no such record), -EINVAL (dst NULL or dst_len too small); the read
 * errors of numafeed_dataset_read_block.
 */
NUMAFEED_API int numafeed_dataset_read_record(numafeed_dataset *ds, uint64_t record, void *dst,
                                              size_t dst_len);

/* ------------------------------------------------------------------------ */
/* The loader: one producer pool per GPU                                    */
/* ------------------------------------------------------------------------ */

/*
 * A loader serves batches of a dataset to one or more GPUs. Each served GPU
 * has its own pool: worker threads pinned to the GPU's NUMA node (its CPUs
 * intersected with this process's allowed CPUs), a ring of batch slots bound
 * to that node, one io_uring and one zstd context per thread. The pools
 * live as long as the loader: epochs follow each other without restarting
 * anything, and the next epoch's first batches are built while the current
 * epoch's last ones are consumed. docs/loader.md describes the design.
 *
 * Thread-safety: loader_next() for different GPUs may be called from
 * different threads at once; loader_release() may be called from any
 * thread; loader_stats() and loader_pool_info() from any thread. Everything
 * else is not thread-safe.
 */
typedef struct numafeed_loader loader_t;

/* How a pool's workers read shards (loader_config.io). */
enum loader_io {
    /* Chosen per dataset and machine when the loader is created: mmap when
     * the shards are resident in the page cache (measured by sampling them
     * with mincore), io_uring otherwise (pread where io_uring is refused).
     * docs/loader.md has the rule and the measurements behind it;
     * loader_pool_info().io_backend says what was chosen and why. */
    LOADER_IO_AUTO = 0,
    LOADER_IO_URING = 1, /* io_uring or fail */
    LOADER_IO_PREAD = 2, /* pread */
    /* Map each shard read-only and verify and copy blocks in place: one pass
     * fewer over page-cache-resident data. Cold pages are faulted in
     * synchronously. A shard truncated or replaced by someone else while
     * the loader runs is the same typed error as a short read
     * (NUMAFEED_ECORRUPT, naming shard and offset) at the batch it affects,
     * never a signal: docs/loader.md says how. */
    LOADER_IO_MMAP = 3,
};
/* Deprecated spelling of enum loader_io, for one release. */
#define loader_io_backend loader_io

/* Where batches are delivered (loader_config.device). */
enum loader_device {
    /* The GPUs when the CUDA runtime, a driver and a device are there,
     * host batches otherwise (the reason is in loader_pool_info().notes). */
    LOADER_DEVICE_AUTO = 0,
    LOADER_DEVICE_CPU = 1,  /* host batches only, even where a GPU could take them */
    LOADER_DEVICE_CUDA = 2, /* the GPUs, or loader_create fails (NUMAFEED_ENOCUDA) */
};

/* How batches reach the GPU (loader_config.copy). */
enum loader_copy {
    /* Direct where it applies, staged otherwise; the pool's notes say why
     * when it does not apply. */
    LOADER_COPY_AUTO = 0,
    /* Every byte is copied by the pool's workers into the batch's slot in
     * node-local page-locked memory, then one host-to-device copy per batch
     * takes the slot to the GPU. */
    LOADER_COPY_STAGED = 1,
    /* The GPU's copy engine gathers each batch's records straight from the
     * shards' page cache: no CPU copy at all. Applies on the CUDA path,
     * with io mmap (auto picks it for a page-cache-resident dataset), when
     * every block is stored raw, every field is fixed and the shards fit
     * max_pinned_bytes; they are page-locked read-only once at create
     * (cudaHostRegister) and stay so until destroy. Each block is verified
     * (XXH3 of its bytes in the page cache) the first time it is used:
     * page-locked pages cannot be evicted and re-read, so the bytes the
     * GPU copies later are the ones verified (docs/loader.md). A batch's
     * fields have no host copy (loader_field.host is NULL). Give it a
     * shuffle_window of at least batch_size records: with smaller windows
     * several units fill each batch and batches land out of their copies'
     * order (0.93 of the link's rate against 0.99 on an H200; the notes
     * say so). With decode
     * gpu, direct applies to any mapped dataset whose shards fit
     * max_pinned_bytes (compressed, raw, variable fields alike): each
     * unit's stored blocks go to the GPU in one batched copy from the page
     * cache instead of through a worker's staging, and a zstd frame's
     * stored bytes are checked against the footer's hash by the host the
     * first time it is used and by the GPU every time, before nvCOMP reads
     * them (docs/loader.md: a shard changed under the loader is an error,
     * never a frame nvCOMP was not written to read). Where
     * it does not apply, loader_create fails with NUMAFEED_ECONFIG naming
     * why. */
    LOADER_COPY_DIRECT = 2,
};

/* Where zstd blocks are decoded (loader_config.decode). */
enum loader_decode {
    /* The pool's cores, in this release: decode gpu beats the host only
     * with shuffle windows of hundreds of blocks, which change the order,
     * and nvCOMP does not survive a frame forged to hang it
     * (docs/loader.md). loader_pool_info().decode and
     * decode_why say what was chosen and why, and whether decode gpu would
     * apply: when batches go to a GPU (the CUDA path), the GPU decode
     * kernels are compiled in, NVIDIA's nvCOMP 6 is found at run time, at
     * least half of the dataset's blocks are zstd, and its memory fits
     * max_gpu_decode_bytes. */
    LOADER_DECODE_AUTO = 0,
    /* The pool's cores: verify and zstd-decode into node-local staging,
     * copy records into the slot, one copy of the slot to the GPU. */
    LOADER_DECODE_CPU = 1,
    /* The GPU: each worker reads its unit's blocks as stored into
     * node-local page-locked staging and copies them to the GPU in one
     * copy (copy direct: the GPU copies them from the page-locked page
     * cache); nvCOMP decodes the zstd blocks there, every block is verified
     * there (nvCOMP's status and size, then the XXH3-64 of its decoded
     * bytes against the index, as on the CPU: docs/format.md), and a
     * kernel gathers the records into the batch's device buffers. The
     * order, the batches and the errors are those of decode cpu (a bad
     * block is the same typed error naming shard and block, at the batch
     * it affects); a batch's fields have no host copy
     * (loader_field.host is NULL; loader_field_to_host copies one back).
     * Where it does not apply, loader_create fails: NUMAFEED_ENOCUDA (not
     * compiled with CUDA, no kernels, or host batches), NUMAFEED_ENVCOMP
     * (nvCOMP missing or unusable: the message names every place tried),
     * NUMAFEED_ECONFIG (no zstd block, memory over
     * max_gpu_decode_bytes). */
    LOADER_DECODE_GPU = 2,
};

#define LOADER_MAX_GPUS 64
#define LOADER_MAX_SHUFFLE_WINDOW (1u << 24)

/*
 * The loader's configuration. One vocabulary across C, the numafeed command
 * and Python: each field below is spelled the same as the command's option
 * (--batch-size, --prefetch, --io, --device, --gpus, ...) and the Python
 * keyword (batch_size=, prefetch=, io=, device=, ...); docs/loader.md has
 * the table.
 */
struct loader_config {
    /* sizeof(struct loader_config); set by loader_config_init. */
    size_t size;
    /* The dataset directory (numafeed pack's --out). Required. */
    const char *path;
    /* Records per batch. Default 64. */
    uint32_t batch_size;
    /* CUDA ordinals to serve, ngpus entries; ngpus 0 (default) serves every
     * visible GPU, or one host pool ("host pool 0") when none is visible.
     * With device CPU, ordinals need not exist: each is a host pool on its
     * node override (or node 0). Each ordinal at most once. At most
     * LOADER_MAX_GPUS. */
    const int *gpus;
    int ngpus;
    /* Per served GPU (same order as gpus, or ordinals 0..n-1 when gpus is
     * NULL): the NUMA node to use instead of the one sysfs reports, for
     * firmware that lies; -1 for none. NULL (default): no overrides. */
    const int *node_override;
    /* Worker threads per pool, 1 to 256. 0 (default): min(4, CPUs of the
     * pool). */
    uint32_t threads;
    /* Batches in flight per pool: the ring's slots, including the batches
     * the consumer holds. 0 (default): enough for every worker to have a
     * shuffle window in flight (the batches of threads + 2 windows), at
     * least 4, and at most two epochs' batches, 4096 slots, 512 MiB of
     * slots (unless 4 slots need more) and max_ring_bytes. Otherwise >= 2.
     * ring_depth is its deprecated name, for one release. */
    union {
        uint32_t prefetch;
        uint32_t ring_depth;
    };
    /* Shuffle (default 1) with this seed (default 0). The order is a pure
     * function of (seed, epoch, dataset, rank, world size, GPUs served). */
    int shuffle;
    uint64_t seed;
    /* Records mixed together by the within-window shuffle, on top of the
     * block-level shuffle. 0 (default): 16 blocks' worth, at most 65536
     * records; at most LOADER_MAX_SHUFFLE_WINDOW (2^24). A window is whole
     * blocks where no block holds more records than it: it starts at the
     * first block boundary at or after its multiple of shuffle_window, if
     * one comes before the next multiple, so it holds fewer than twice
     * shuffle_window records (docs/loader.md). Each worker keeps about 40
     * bytes of tables per record of the window; docs/loader.md measures what
     * larger windows buy.
     * Blocks stream through about 1 MiB of staging per worker; only a ring
     * smaller than one window's batches makes a worker hold the window
     * decoded. */
    uint64_t shuffle_window;
    /* Drop each part's incomplete last batch (default 0: keep it short). */
    int drop_last;
    /* This process's rank and the number of ranks. world_size 0 (default):
     * what the launcher set (numafeed_launch_env: RANK/WORLD_SIZE,
     * SLURM_PROCID/SLURM_NTASKS, OMPI_COMM_WORLD_RANK/OMPI_COMM_WORLD_SIZE),
     * else 0 and 1. The records are split over world_size x (GPUs served)
     * parts. */
    uint32_t rank, world_size;
    /* How shards are read: enum loader_io (default AUTO). io_backend is its
     * deprecated name, for one release. */
    union {
        int io;
        int io_backend;
    };
    /* Reads in flight per thread (0: 32; at most 4096). */
    uint32_t io_depth;
    /* Where batches go: enum loader_device (default AUTO). host_mode is its
     * deprecated name, for one release (host_mode = 1 is LOADER_DEVICE_CPU). */
    union {
        int device;
        int host_mode;
    };
    /* Directory standing in for /sys (NULL: $NUMAFEED_SYSFS_ROOT or /sys). */
    const char *sysfs_root;
    /* 1: print what each pool achieved (CPUs, memory placement) to stderr. */
    int verbose;
    /* 1: fail loader_create when the ring cannot be page-locked in place with
     * cudaHostRegister, instead of falling back (with a note) to a pinned
     * allocation made by the node's pool thread. Default 0. */
    int strict;
    /* Where delivery starts: batch start_batch (0 .. loader_epoch_batches
     * - 1) of epoch start_epoch (default 0 and 0). The batches before it are
     * never built; the ones from it on are exactly those an uninterrupted
     * loader with the same configuration delivers there, which is how a
     * job resumes mid-epoch. */
    uint64_t start_epoch, start_batch;
    /* 1: let symbolic links in the dataset directory lead outside it (a
     * shard kept elsewhere on purpose). Default 0: the manifest and every
     * shard are opened beneath the directory, and a link that leaves it is
     * refused with an error naming it (docs/security.md). */
    int follow_symlinks;
    /* The most bytes one pool's ring of batch slots may take: slots x (batch
     * bytes + record ids, each rounded up to 4 KiB). 0 (default): 4 GiB.
     * The default prefetch stays below it; an explicit prefetch, or a single
     * batch, that does not fit is a NUMAFEED_ECONFIG error naming the batch
     * size, the record size and this field. */
    uint64_t max_ring_bytes;
    /* Epochs to deliver, counted from start_epoch's; 0 (default): no end.
     * After the last one's NUMAFEED_EEPOCH_END, loader_next returns
     * NUMAFEED_EDONE; the pools build nothing past it (no block of an
     * epoch that will not be delivered is read). */
    uint64_t epochs;
    /* How batches reach the GPU: enum loader_copy (default AUTO). */
    int copy;
    /* The shard bytes the direct copy may page-lock (all the shards or
     * none). 0 (default): a quarter of the machine's memory. */
    uint64_t max_pinned_bytes;
    /* Where zstd blocks are decoded: enum loader_decode (default AUTO). */
    int decode;
    /* decode gpu: the most GPU memory one pool's workers may take for it,
     * in bytes. 0 (default): 2 GiB. Each worker holds one shuffle window's
     * blocks on the GPU at a time: their stored bytes, their decoded bytes
     * and NVIDIA's nvCOMP scratch (about three times the decoded bytes),
     * sized from shuffle_window, the record sizes and the dataset's
     * largest block (docs/loader.md), and page-locked host staging of the
     * stored bytes. A configuration that needs more is NUMAFEED_ECONFIG
     * under decode gpu and decodes on the CPU under auto. */
    uint64_t max_gpu_decode_bytes;
    /* Host batches (device cpu, or host mode for want of a GPU): 1 registers
     * the ring with CUDA once at create (cudaHostRegister, portable to every
     * GPU), so a copy of a batch to a GPU - torch's .to("cuda",
     * non_blocking=True), nvJPEG reading JPEG bytes - is DMA from page-locked
     * memory instead of a staged copy through the driver's own buffer.
     * Without a usable CUDA device the ring stays unregistered and the
     * pool's notes say why (the error itself under strict). 0 (default):
     * host batches are not registered. Batches delivered to a GPU come from
     * a registered ring either way. */
    int pin_memory;
};

/* Fill *cfg with the defaults above. */
NUMAFEED_API void loader_config_init(struct loader_config *cfg);

/*
 * Create a loader: open the dataset, read the topology, start every pool and
 * allocate its ring before returning. Errors: NUMAFEED_ECONFIG (a bad
 * field, named in the message), the dataset's errors (-ENOENT,
 * NUMAFEED_EMANIFEST, NUMAFEED_ECORRUPT, ...), the topology's, -ENOMEM.
 * The message is in numafeed_last_error() (there is no loader yet).
 */
NUMAFEED_API int loader_create(const struct loader_config *cfg, loader_t **out);

/* Destroy a loader: stops and joins every thread, even ones blocked on a
 * full ring or in I/O, and frees everything. Batches not released become
 * invalid. Threads waiting in loader_next meanwhile return -ECANCELED, and
 * destroy returns only after they have left; calling anything on the loader
 * after destroy has begun is an error. NULL is allowed. */
NUMAFEED_API void loader_destroy(loader_t *loader);

/* One field of a batch: a contiguous [records, shape...] array. */
/* What a field of a batch holds (loader_field.kind). */
enum loader_field_kind {
    LOADER_FIELD_FIXED = 0, /* a [records, shape...] array */
    LOADER_FIELD_BYTES = 1, /* variable: values (uint8) + offsets */
    LOADER_FIELD_STR = 2,   /* variable: UTF-8 values (uint8) + offsets */
    LOADER_FIELD_ARRAY = 3, /* variable: values of dtype + offsets */
};

/*
 * One field of a batch, in the batch's slot (host) and its device copy.
 * A fixed field is one contiguous [records, shape...] array. A variable
 * field (bytes, str, a 1-D array whose length varies) is one values array
 * and records + 1 int64 offsets, in elements of dtype: record i is
 * values[offsets[i] .. offsets[i+1]), offsets[0] = 0 (the jagged layout of
 * torch's nested tensors). Values and offsets travel in the same copy and
 * are made ready by the same event as the fixed fields. Everything is
 * valid until the batch is released.
 */
struct loader_field {
    const char *name;
    const char *dtype;      /* "uint8", "int32", "float32", ... (docs/format.md);
                             * the element's for a variable field (uint8 for bytes, str) */
    unsigned ndim;          /* of one record's field; 1 for a variable field */
    const uint64_t *shape;  /* ndim entries; a variable field's is {NUMAFEED_VARIABLE} */
    size_t record_bytes;    /* bytes of one record's field; 0 for a variable field */
    void *host;             /* fixed: records * record_bytes bytes; variable: the values */
    void *device;           /* the device copy (CUDA path); NULL in host mode */
    int kind;               /* enum loader_field_kind */
    const int64_t *offsets; /* variable: records + 1 element offsets (host); else NULL */
    const int64_t *offsets_device; /* variable, CUDA path: their device copy */
    uint64_t values_bytes;  /* variable: bytes of values in this batch (offsets[records]
                             * elements); fixed: records * record_bytes */
};

#define LOADER_MAX_FIELDS 256

/*
 * One batch, filled by loader_next. The caller sets size (the struct may
 * grow: fields are only ever appended, and a library never writes past the
 * size the caller gives); LOADER_BATCH_INIT does it:
 *     struct loader_batch b = LOADER_BATCH_INIT;
 */
struct loader_batch {
    size_t size;                 /* set by the caller: sizeof(struct loader_batch) */
    int gpu;                     /* the index passed to loader_next */
    uint64_t epoch;              /* from 0 */
    uint64_t index;              /* batch index within the epoch, from 0 */
    uint32_t records;            /* <= batch_size; short only at an epoch's end */
    int last_in_epoch;           /* 1 on the epoch's last batch */
    const uint64_t *record_ids;  /* records entries: each record's index in the dataset */
    unsigned nfields;
    const struct loader_field *fields; /* nfields entries, valid until release */
    void *ready_event;           /* CUDA path: a cudaEvent_t; NULL in host mode */
    uint64_t seq_;               /* the library's: which slot to release */
};
#define LOADER_BATCH_INIT {.size = sizeof(struct loader_batch)}

/*
 * The next batch for the gpu-th served GPU (0 .. loader_gpu_count - 1), in
 * order. Waits at most timeout_ms (-1: forever, 0: do not wait).
 * batch->size must be set (LOADER_BATCH_INIT); -EINVAL otherwise.
 * Returns 0 with *batch filled; NUMAFEED_EEPOCH_END once after an epoch's
 * last batch (call again for the next epoch); NUMAFEED_EDONE after the last
 * of config.epochs epochs, on every call;
 * last batch (call again for the next epoch); -ETIMEDOUT; -EDEADLK when
 * every slot of the ring is held by batches not yet released; an error
 * from a worker (NUMAFEED_ECORRUPT, NUMAFEED_ECHECKSUM, -EIO, ...) at the
 * batch it affects, with the shard and offset in loader_last_error(); the
 * same error on every later call. Thread-safe across different gpu.
 */
NUMAFEED_API int loader_next(loader_t *loader, int gpu, struct loader_batch *batch,
                             int timeout_ms);

/*
 * CUDA path: loader_next, then make `stream` (a cudaStream_t; NULL for the
 * legacy default stream of the batch's GPU, whatever the calling thread's
 * current device) wait on the batch's ready event with
 * cudaStreamWaitEvent, so work queued on it after this call sees the batch
 * in device memory; the host never waits for the copy. In host mode the
 * same as loader_next.
 */
NUMAFEED_API int loader_next_on_stream(loader_t *loader, int gpu, struct loader_batch *batch,
                                       int timeout_ms, void *stream);

/*
 * CUDA path: make `stream` (as for loader_next_on_stream; NULL for the
 * legacy default stream) wait on an outstanding batch's ready event, for a
 * consumer that learns its stream only after loader_next (DLPack's
 * __dlpack__(stream=...)). May be called any number of times, from any
 * thread, while the batch is outstanding. 0 and nothing done in host mode.
 */
NUMAFEED_API int loader_batch_wait(loader_t *loader, const struct loader_batch *batch,
                                   void *stream);

/*
 * Copy field `field` of an outstanding batch into host memory: its
 * values_bytes bytes (records x record_bytes for a fixed field), from its
 * device copy on the CUDA path (after the batch's ready event), from its
 * slot in host mode. For checking batches whose fields have no host copy
 * (decode gpu, copy direct: loader_field.host is NULL); a variable
 * field's offsets are on the host already (loader_field.offsets). Blocks
 * the calling thread. Returns 0; -EINVAL (not outstanding, field out of
 * range, len below values_bytes); NUMAFEED_ECUDA. Thread-safe.
 */
NUMAFEED_API int loader_field_to_host(loader_t *loader, const struct loader_batch *batch,
                                      unsigned field, void *dst, size_t len);

/* Give a batch's slot back to its pool. Any order, any thread. -EINVAL for
 * a batch that is not outstanding. CUDA path: the same as
 * loader_release_on_stream(loader, batch, NULL). */
NUMAFEED_API int loader_release(loader_t *loader, struct loader_batch *batch);
/*
 * CUDA path: record an event on `stream` (the stream whose work used the
 * batch; NULL for the legacy default stream of the batch's GPU) and give
 * the slot back; the
 * pool reuses the slot's device buffer and host memory only after that
 * event has completed, so release may be called right after queuing the
 * work, without synchronising. In host mode the same as loader_release.
 */
NUMAFEED_API int loader_release_on_stream(loader_t *loader, struct loader_batch *batch,
                                          void *stream);

/*
 * Wait until every copy to the GPU the gpu-th pool has queued so far is
 * complete (its stream synchronised): for a benchmark's clock, or before
 * tearing down what reads device batches outside stream order. Blocks the
 * calling thread; nothing else waits for it. 0 and nothing done in host
 * mode. Thread-safe.
 */
NUMAFEED_API int loader_sync(loader_t *loader, int gpu);

/* Number of GPUs (pools) served; batches per epoch of each (equal for all
 * pools and ranks). */
NUMAFEED_API int loader_gpu_count(const loader_t *loader);
NUMAFEED_API uint64_t loader_epoch_batches(const loader_t *loader);

struct loader_stats {
    size_t size;                 /* set by the caller: sizeof(struct loader_stats) */
    uint64_t batches, records, bytes; /* delivered by loader_next */
    uint64_t wait_ns_total;      /* time callers spent inside loader_next */
    uint64_t wait_p50_ns, wait_p99_ns, wait_max_ns;
    uint64_t worker_stall_ns;    /* time workers waited for a free slot (summed over workers) */
    uint64_t blocks_decoded;
    /* Per-stage worker time, summed over workers (wall time x threads is
     * the total): waiting for reads, verifying + decoding blocks, copying
     * records into slots (and queuing the GPU copy). Estimates from
     * monotonic clocks around each stage. With decode gpu, decode_ns is
     * the host's checks of the zstd frames only. */
    uint64_t io_wait_ns, decode_ns, copy_ns;
    uint64_t units;              /* shuffle windows processed */
    /* of those, built a whole window at a time instead of streamed (the
     * ring could not hold their batches, or those slots were still held
     * when the unit started; docs/loader.md) */
    uint64_t units_windowed;
    /* decode gpu: GPU time of nvCOMP's decode, the verify kernel and the
     * gather, summed over units (CUDA events on each worker's stream;
     * workers' streams overlap, so this can exceed wall time). Divided by
     * batches, the GPU time a batch cost. 0 with decode cpu. */
    uint64_t gpu_decode_ns;
};

/* Counters of one pool since creation. Thread-safe. */
NUMAFEED_API int loader_stats(loader_t *loader, int gpu, struct loader_stats *st);

struct loader_pool_info {
    size_t size;                 /* set by the caller */
    int cuda_ordinal;
    int node;                    /* the node the pool runs on */
    int node_known;              /* 0: sysfs gave no locality (-1) and no override */
    char cpus[256];              /* the pool's CPUs, a cpulist */
    int cpus_fallback;           /* 1: no allowed CPU on the node; using all allowed */
    unsigned threads;
    int tids[256];               /* kernel thread ids of the workers */
    size_t slot_bytes;
    union {                      /* the ring's slots (ring_depth: deprecated name) */
        unsigned prefetch;
        unsigned ring_depth;
    };
    size_t page_size;            /* of the ring */
    int hugetlb, thp, mbind, verified; /* what the ring's placement achieved */
    size_t pages, pages_on_node; /* sampled by move_pages */
    char io_backend[16];         /* "io_uring", "pread" or "mmap" (the notes say why,
                                  * when it was not the first choice) */
    char notes[512];             /* every shortfall and its reason; "" if none */
    int cuda;                    /* 1: batches are copied to the GPU; 0: host mode */
    int registered;              /* 1: the ring is page-locked in place (cudaHostRegister);
                                  * 0 with cuda: the cudaHostAlloc fallback */
    /* Where loader_create's time for this pool went, in microseconds: the
     * first CUDA call on the pool's device (creates the process's context
     * for it unless the caller, or torch, already did), placing the ring
     * (map, bind, first touch, move_pages check), and page-locking it plus
     * the device ring, stream and events. 0 for what did not run. */
    uint64_t setup_context_us, setup_ring_us, setup_cuda_us;
    /* Sampled ring pages that first touch left on another node; the pool
     * then moved the ring there (mbind MPOL_MF_MOVE) before page-locking
     * it, and pages_on_node is the count after the move. 0 normally; the
     * notes say whether the move worked. */
    size_t pages_strayed;
    /* How batches reach the GPU: "staged", "direct" (the GPU copies from
     * the page cache: records, or under decode gpu stored blocks),
     * "gathered" (decode gpu, blocks staged by the workers), or "host" in
     * host mode (enum loader_copy's choice; the notes say why auto
     * staged). */
    char copy[16];
    /* Where zstd blocks are decoded: "cpu" or "gpu" (enum loader_decode's
     * choice), and why: the reason the GPU does not apply, or the nvCOMP
     * used ("decode gpu: nvCOMP 6.0.0 (CUDA runtime ...) from PATH"). */
    char decode[8];
    char decode_why[320];
    /* decode gpu: GPU memory its workers hold for it, in bytes. */
    uint64_t gpu_decode_bytes;
};

/* What a pool achieved. Thread-safe. */
NUMAFEED_API int loader_pool_info(loader_t *loader, int gpu, struct loader_pool_info *info);

/*
 * The loader's last error message (worker errors included, which name the
 * shard, block and offset), copied into buf (always NUL-terminated when
 * len > 0); "" if none. Returns the message's length, like snprintf: a
 * value >= len means it was cut. Thread-safe: the copy is made under the
 * loader's lock, so a loader_next failing meanwhile on another GPU's pool
 * cannot tear it.
 */
NUMAFEED_API size_t loader_last_error(const loader_t *loader, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* NUMAFEED_H */
