// SPDX-License-Identifier: Apache-2.0
/*
 * Loader: one C loader serving one GPU (or one host pool), for the Python
 * layer (numafeed/_loader.py), which resolves devices, ranks and epochs and
 * passes everything explicitly. Every call that can block (create, next,
 * close) releases the GIL. next() waits in slices of at most 100 ms and
 * checks for signals between them, so Ctrl-C interrupts a wait.
 */
#include "nfpy.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    PyObject_HEAD
    struct nfpy_core *core; /* NULL once closed */
    /* A thread is inside next(). Read and set with the GIL held, before it
     * is released for the wait: loader_next is not safe for one pool from
     * two threads, and the second caller must hear so, not wait behind the
     * first or interleave with it. */
    int in_next;
} LoaderObject;

/* A word keyword into its enum value: the word's index in names (both
 * enums list their values in that order). */
static int parse_word(const char *what, const char *word, const char *const *names, int n,
                      const char *choices, int *out)
{
    for (int i = 0; i < n; i++)
        if (strcmp(word, names[i]) == 0) {
            *out = i;
            return 0;
        }
    PyErr_Format(PyExc_ValueError, "%s must be one of %s; not %s", what, choices, word);
    return -1;
}

static int parse_io(const char *io, int *out)
{
    static const char *const names[] = {"auto", "io_uring", "pread", "mmap"}; /* enum loader_io */
    return parse_word("io", io, names, 4, "auto, io_uring, pread, mmap", out);
}

static int parse_decode(const char *decode, int *out)
{
    static const char *const names[] = {"auto", "cpu", "gpu"}; /* enum loader_decode */
    return parse_word("decode", decode, names, 3, "auto, cpu, gpu", out);
}

/* One integer keyword of Loader(): its object (NULL: not given), range and
 * where its value goes. */
struct int_kw {
    PyObject *o;
    const char *name;
    long long lo;
    unsigned long long hi;
    unsigned long long *v;
};

static int loader_init(PyObject *self, PyObject *args, PyObject *kw)
{
    LoaderObject *lo = (LoaderObject *)self;
    static char *kwlist[] = {"path", "batch_size", "gpu", "device", "shuffle", "seed",
                             "drop_last", "threads", "prefetch", "rank", "world_size",
                             "start_epoch", "start_batch", "io", "node", "verbose", "strict",
                             "shuffle_window", "follow_symlinks", "max_ring_bytes", "sysfs_root",
                             "decode", "pin_memory", NULL};
    const char *path, *io = "auto", *sysfs_root = NULL, *decode = "auto";
    PyObject *o_batch, *o_gpu = NULL, *o_device = NULL, *o_seed = NULL, *o_threads = NULL,
             *o_prefetch = NULL, *o_rank = NULL, *o_world = NULL, *o_epoch = NULL,
             *o_start = NULL, *o_node = NULL, *o_window = NULL, *o_ring = NULL;
    int shuffle = 1, drop_last = 0, verbose = 0, strict = 0, follow = 0, pin = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sO|$OOpOpOOOOOOsOppOpOzsp", kwlist, &path,
                                     &o_batch, &o_gpu, &o_device, &shuffle, &o_seed,
                                     &drop_last, &o_threads, &o_prefetch, &o_rank, &o_world,
                                     &o_epoch, &o_start, &io, &o_node, &verbose, &strict,
                                     &o_window, &follow, &o_ring, &sysfs_root, &decode, &pin))
        return -1;
    if (lo->core) {
        PyErr_SetString(PyExc_RuntimeError, "Loader.__init__ called twice");
        return -1;
    }
    /* The defaults are loader_config_init's, but for world_size: the Python
     * layer resolves the launcher's ranks itself and always passes them. */
    unsigned long long batch_size, gpu = 0, device = LOADER_DEVICE_AUTO, seed = 0, threads = 0,
                       prefetch = 0, rank = 0, world_size = 1, start_epoch = 0,
                       start_batch = 0, node = (unsigned long long)-1, window = 0, ring = 0;
    const struct int_kw ints[] = {
        {o_batch, "batch_size", 1, UINT32_MAX, &batch_size},
        {o_gpu, "gpu", 0, INT_MAX, &gpu},
        {o_device, "device", LOADER_DEVICE_AUTO, LOADER_DEVICE_CUDA, &device},
        {o_seed, "seed", 0, UINT64_MAX, &seed},
        {o_threads, "threads", 0, 256, &threads},
        {o_prefetch, "prefetch", 0, UINT32_MAX, &prefetch},
        {o_rank, "rank", 0, UINT32_MAX, &rank},
        {o_world, "world_size", 0, UINT32_MAX, &world_size},
        {o_epoch, "start_epoch", 0, UINT64_MAX, &start_epoch},
        {o_start, "start_batch", 0, UINT64_MAX, &start_batch},
        {o_node, "node", -1, INT_MAX, &node},
        {o_window, "shuffle_window", 0, 1u << 24, &window},
        {o_ring, "max_ring_bytes", 0, UINT64_MAX, &ring},
    };
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        if (ints[i].o && nfpy_int_arg(ints[i].o, ints[i].name, ints[i].lo, ints[i].hi, ints[i].v))
            return -1;
    struct loader_config c;
    loader_config_init(&c);
    if (parse_io(io, &c.io) || parse_decode(decode, &c.decode))
        return -1;
    int gpus[1] = {(int)gpu}, overrides[1] = {(int)(long long)node};
    c.path = path;
    c.batch_size = (uint32_t)batch_size;
    c.gpus = gpus;
    c.ngpus = 1;
    c.node_override = overrides[0] >= 0 ? overrides : NULL;
    c.device = (int)device;
    c.shuffle = shuffle;
    c.seed = seed;
    c.drop_last = drop_last;
    c.threads = (uint32_t)threads;
    c.prefetch = (uint32_t)prefetch;
    c.rank = (uint32_t)rank;
    c.world_size = (uint32_t)world_size;
    c.start_epoch = start_epoch;
    c.start_batch = start_batch;
    c.verbose = verbose;
    c.strict = strict;
    c.shuffle_window = window;
    c.follow_symlinks = follow;
    c.pin_memory = pin;
    c.max_ring_bytes = ring;
    c.sysfs_root = sysfs_root;

    loader_t *L = NULL;
    int rc;
    char msg[1024];
    Py_BEGIN_ALLOW_THREADS
    rc = loader_create(&c, &L);
    if (rc)
        snprintf(msg, sizeof(msg), "%s", numafeed_last_error());
    Py_END_ALLOW_THREADS
    if (rc) {
        nfpy_raise(rc, "loader_create", msg);
        return -1;
    }
    struct nfpy_core *core = calloc(1, sizeof(*core));
    if (!core) {
        loader_destroy(L);
        PyErr_NoMemory();
        return -1;
    }
    struct loader_pool_info info = {.size = sizeof(info)};
    loader_pool_info(L, 0, &info);
    core->loader = L;
    atomic_init(&core->refs, 1);
    core->pid = getpid();
    core->cuda = info.cuda;
    core->ordinal = info.cuda_ordinal;
    lo->core = core;
    return 0;
}

static struct nfpy_core *open_core(LoaderObject *lo)
{
    if (!lo->core) {
        nfpy_raisef(-EBADF, "the loader is closed");
        return NULL;
    }
    if (nfpy_check_pid(lo->core))
        return NULL;
    return lo->core;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* One loader_next, waiting in slices so that signals are seen. */
static PyObject *next_batch(struct nfpy_core *core, double timeout)
{
    /* negative, or beyond what a millisecond clock can add: wait forever */
    uint64_t deadline = timeout < 0 || timeout > 1e9 ? UINT64_MAX
                                                     : now_ms() + (uint64_t)(timeout * 1000.0);
    struct loader_batch b = LOADER_BATCH_INIT;
    int rc;
    char msg[1024];
    for (;;) {
        uint64_t now = now_ms();
        int slice = deadline == UINT64_MAX ? 100
                    : now >= deadline      ? 0
                    : deadline - now > 100 ? 100
                                           : (int)(deadline - now);
        Py_BEGIN_ALLOW_THREADS
        rc = loader_next(core->loader, 0, &b, slice);
        if (rc && rc != -ETIMEDOUT && rc != NUMAFEED_EEPOCH_END)
            snprintf(msg, sizeof(msg), "%s", numafeed_last_error());
        Py_END_ALLOW_THREADS
        if (rc != -ETIMEDOUT)
            break;
        if (PyErr_CheckSignals())
            return NULL;
        if (now_ms() >= deadline) {
            char what[128]; /* PyErr_Format has no %f */
            snprintf(what, sizeof(what), "Loader.next: no batch within %.3f s", timeout);
            PyErr_SetString(PyExc_TimeoutError, what);
            return NULL;
        }
    }
    if (rc == NUMAFEED_EEPOCH_END)
        Py_RETURN_NONE;
    if (rc)
        return nfpy_raise(rc, "loader_next", msg);
    atomic_fetch_add(&core->refs, 1); /* the batch's */
    return nfpy_batch_new(core, &b);
}

static PyObject *loader_next_py(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"timeout", NULL};
    double timeout = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|d", kwlist, &timeout))
        return NULL;
    if (timeout != timeout)
        return PyErr_Format(PyExc_ValueError, "timeout must be a number of seconds, not nan");
    LoaderObject *lo = (LoaderObject *)self;
    struct nfpy_core *core = open_core(lo);
    if (!core)
        return NULL;
    if (lo->in_next)
        return PyErr_Format(PyExc_RuntimeError,
                            "numafeed.Loader: another thread is inside next() on this loader; "
                            "a Loader is used by one thread at a time: create one Loader per "
                            "thread");
    lo->in_next = 1;
    atomic_fetch_add(&core->refs, 1); /* a close() meanwhile must not free it under us */
    PyObject *batch = next_batch(core, timeout);
    nfpy_core_decref(core);
    lo->in_next = 0;
    return batch;
}

static PyObject *loader_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    LoaderObject *lo = (LoaderObject *)self;
    struct nfpy_core *core = lo->core;
    lo->core = NULL;
    if (core) {
        Py_BEGIN_ALLOW_THREADS
        nfpy_core_decref(core);
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

static void loader_dealloc(PyObject *self)
{
    LoaderObject *lo = (LoaderObject *)self;
    if (lo->core)
        nfpy_core_decref(lo->core);
    nfpy_free_self(self);
}

static int set_u64(PyObject *d, const char *k, unsigned long long v)
{
    PyObject *o = PyLong_FromUnsignedLongLong(v);
    int rc = o ? PyDict_SetItemString(d, k, o) : -1;
    Py_XDECREF(o);
    return rc;
}

static int set_str(PyObject *d, const char *k, const char *v)
{
    PyObject *o = PyUnicode_FromString(v);
    int rc = o ? PyDict_SetItemString(d, k, o) : -1;
    Py_XDECREF(o);
    return rc;
}

static PyObject *loader_stats_py(PyObject *self, PyObject *unused)
{
    (void)unused;
    struct nfpy_core *core = open_core((LoaderObject *)self);
    if (!core)
        return NULL;
    struct loader_stats st = {.size = sizeof(st)};
    int rc = loader_stats(core->loader, 0, &st);
    if (rc)
        return nfpy_raise(rc, "loader_stats", numafeed_last_error());
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
#define U(f)                                                                             \
    if (set_u64(d, #f, st.f))                                                            \
        goto fail;
    U(batches) U(records) U(bytes) U(wait_ns_total) U(wait_p50_ns) U(wait_p99_ns)
    U(wait_max_ns) U(worker_stall_ns) U(blocks_decoded) U(io_wait_ns) U(decode_ns) U(copy_ns)
    U(units) U(units_windowed) U(gpu_decode_ns)
#undef U
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

static PyObject *loader_pool_info_py(PyObject *self, PyObject *unused)
{
    (void)unused;
    struct nfpy_core *core = open_core((LoaderObject *)self);
    if (!core)
        return NULL;
    struct loader_pool_info in = {.size = sizeof(in)};
    int rc = loader_pool_info(core->loader, 0, &in);
    if (rc)
        return nfpy_raise(rc, "loader_pool_info", numafeed_last_error());
    PyObject *d = PyDict_New(), *tids = PyList_New(0);
    if (!d || !tids)
        goto fail;
    for (unsigned i = 0; i < in.threads && i < 256; i++) {
        PyObject *t = PyLong_FromLong(in.tids[i]);
        if (!t || PyList_Append(tids, t)) {
            Py_XDECREF(t);
            goto fail;
        }
        Py_DECREF(t);
    }
    if (PyDict_SetItemString(d, "tids", tids))
        goto fail;
    Py_CLEAR(tids);
#define I(f)                                                                             \
    if (set_u64(d, #f, (unsigned long long)(long long)in.f))                             \
        goto fail;
    I(cuda_ordinal) I(node) I(node_known) I(cpus_fallback) I(threads) I(slot_bytes)
    I(prefetch) I(page_size) I(hugetlb) I(thp) I(mbind) I(verified) I(pages)
    I(pages_on_node) I(cuda) I(registered) I(setup_context_us) I(setup_ring_us)
    I(setup_cuda_us) I(pages_strayed) I(gpu_decode_bytes)
#undef I
    if (set_str(d, "cpus", in.cpus) || set_str(d, "io_backend", in.io_backend) ||
        set_str(d, "notes", in.notes) || set_str(d, "copy", in.copy) ||
        set_str(d, "decode", in.decode) || set_str(d, "decode_why", in.decode_why))
        goto fail;
    return d;
fail:
    Py_XDECREF(tids);
    Py_XDECREF(d);
    return NULL;
}

static PyObject *loader_get_epoch_batches(PyObject *self, void *c)
{
    (void)c;
    struct nfpy_core *core = open_core((LoaderObject *)self);
    return core ? PyLong_FromUnsignedLongLong(loader_epoch_batches(core->loader)) : NULL;
}

static PyObject *loader_get_cuda(PyObject *self, void *c)
{
    (void)c;
    struct nfpy_core *core = open_core((LoaderObject *)self);
    return core ? PyBool_FromLong(core->cuda) : NULL;
}

static PyObject *loader_get_closed(PyObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(((LoaderObject *)self)->core == NULL);
}

static PyMethodDef loader_methods[] = {
    {"next", (PyCFunction)(void (*)(void))loader_next_py, METH_VARARGS | METH_KEYWORDS,
     "next(timeout=None) -> Batch | None: the next batch in order, None once after an "
     "epoch's last batch. Raises TimeoutError after timeout seconds, NumafeedError on a "
     "worker's error (corrupt shard, I/O error: named) or when every slot is held."},
    {"stats", loader_stats_py, METH_NOARGS, "stats() -> dict: the pool's counters."},
    {"pool_info", loader_pool_info_py, METH_NOARGS,
     "pool_info() -> dict: CPUs, node, threads, ring placement, io backend, notes, "
     "start-up time per phase (setup_*_us)."},
    {"close", loader_close, METH_NOARGS,
     "close(): drop this object's hold on the pool; it stops once no batch is alive."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef loader_getset[] = {
    {"epoch_batches", loader_get_epoch_batches, NULL, "batches per epoch", NULL},
    {"cuda", loader_get_cuda, NULL, "True when batches are copied to the GPU", NULL},
    {"closed", loader_get_closed, NULL, "True after close()", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot loader_slots[] = {
    {Py_tp_init, loader_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, loader_dealloc},
    {Py_tp_methods, loader_methods},
    {Py_tp_getset, loader_getset},
    {Py_tp_doc, "Loader(path, batch_size, *, gpu=0, device=0, ..., decode='auto'): one numafeed pool serving "
                "CUDA ordinal gpu (loader_config.gpus[0]); the other keywords are "
                "loader_config's fields. Use numafeed.Loader, which wraps this."},
    {0, NULL},
};

static PyType_Spec loader_spec = {
    "numafeed._numafeed.Loader", sizeof(LoaderObject), 0, Py_TPFLAGS_DEFAULT, loader_slots,
};

PyObject *nfpy_loader_type(PyObject *module)
{
    (void)module;
    return PyType_FromSpec(&loader_spec);
}
