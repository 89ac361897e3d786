// SPDX-License-Identifier: Apache-2.0
/* The module numafeed._numafeed: its exception, lifetimes, small helpers. */
#include "nfpy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

PyObject *nfpy_Error;

PyObject *nfpy_error(int code, const char *msg)
{
    PyObject *exc = PyObject_CallFunction(nfpy_Error, "s", msg);
    if (!exc)
        return NULL;
    PyObject *c = PyLong_FromLong(code), *n = PyUnicode_FromString(numafeed_err_name(code));
    if (!c || !n || PyObject_SetAttrString(exc, "code", c) ||
        PyObject_SetAttrString(exc, "name", n))
        Py_CLEAR(exc);
    Py_XDECREF(c);
    Py_XDECREF(n);
    return exc;
}

PyObject *nfpy_raisef(int code, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    PyObject *exc = nfpy_error(code, msg);
    if (exc) {
        PyErr_SetObject(nfpy_Error, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

PyObject *nfpy_raise(int code, const char *what, const char *detail)
{
    if (!detail || !*detail)
        return nfpy_raisef(code, "%s: %s", what, numafeed_strerror(code));
    /* The library's messages mostly name their call already ("loader_next(host
     * pool 0): ..."); saying it again would only stutter. */
    if (strncmp(detail, what, strlen(what)) == 0)
        return nfpy_raisef(code, "%s", detail);
    return nfpy_raisef(code, "%s: %s", what, detail);
}

/* nfpy_int_arg's check, for the extension's own keywords and for the Python
 * layer's (mod_int_arg): the int on success (a new reference), its 64 bits
 * in *out; none only words the message ("None or an int"), None itself is
 * the caller's to allow. */
static PyObject *int_arg(PyObject *o, const char *name, int none, long long lo,
                         unsigned long long hi, unsigned long long *out)
{
    char want[256];
    snprintf(want, sizeof(want), "%s must be %san int in %lld..%llu", name,
             none ? "None or " : "", lo, hi);
    /* bool is an int subclass; True as a batch size is a mistake, not a 1 */
    if (PyBool_Check(o))
        return PyErr_Format(PyExc_TypeError, "%s, not a bool (%R)", want, o);
    PyObject *i = PyNumber_Index(o);
    if (!i) {
        PyErr_Clear();
        return PyErr_Format(PyExc_TypeError, "%s, not %R", want, o);
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(i, &overflow);
    unsigned long long u = (unsigned long long)v;
    int ok = !PyErr_Occurred();
    if (ok && overflow > 0) { /* above LLONG_MAX: maybe still a uint64 */
        u = PyLong_AsUnsignedLongLong(i);
        ok = !PyErr_Occurred() && u <= hi;
    } else {
        ok = ok && !overflow && v >= lo && (v < 0 || u <= hi);
    }
    if (ok) {
        *out = u;
        return i;
    }
    PyErr_Clear();
    PyErr_Format(PyExc_ValueError, "%s, not %R", want, i);
    Py_DECREF(i);
    return NULL;
}

int nfpy_int_arg(PyObject *o, const char *name, long long lo, unsigned long long hi,
                 unsigned long long *out)
{
    PyObject *i = int_arg(o, name, 0, lo, hi, out);
    if (!i)
        return -1;
    Py_DECREF(i);
    return 0;
}

/* tp_dealloc's end for our heap types: free, then drop the type's reference. */
void nfpy_free_self(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    freefunc f = (freefunc)PyType_GetSlot(tp, Py_tp_free);
    f(self);
    Py_DECREF(tp);
}

int nfpy_check_pid(const struct nfpy_core *core)
{
    if (core->pid == getpid())
        return 0;
    /* ESRCH: the threads this loader needs do not exist in this process */
    nfpy_raisef(-ESRCH,
                "this numafeed loader was created in process %d; its worker threads do not "
                "exist in this forked child (%d). Create a new Loader in the child",
                (int)core->pid, (int)getpid());
    return -1;
}

void nfpy_core_decref(struct nfpy_core *core)
{
    if (atomic_fetch_sub(&core->refs, 1) != 1)
        return;
    /* In a forked child the pools' threads are gone: destroying would wait
     * for them forever. Leave the copy alone. */
    if (core->pid == getpid())
        loader_destroy(core->loader);
    free(core);
}

/* May run on any thread, without the GIL (the DLPack deleter). */
void nfpy_batch_decref(struct nfpy_batch *b)
{
    if (atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    struct nfpy_core *core = b->core;
    if (core->pid == getpid()) {
        int rc = loader_release_on_stream(core->loader, &b->b, atomic_load(&b->stream));
        if (rc)
            fprintf(stderr, "numafeed: releasing batch %llu of epoch %llu failed: %s\n",
                    (unsigned long long)b->b.index, (unsigned long long)b->b.epoch,
                    numafeed_last_error());
    }
    free(b->fields);
    free(b->offsets);
    free(b);
    nfpy_core_decref(core);
}

int nfpy_dtype(const char *name, DLDataType *out)
{
    static const struct {
        const char *name;
        uint8_t code, bits;
    } map[] = {
        {"uint8", kDLUInt, 8},    {"int8", kDLInt, 8},       {"uint16", kDLUInt, 16},
        {"int16", kDLInt, 16},    {"uint32", kDLUInt, 32},   {"int32", kDLInt, 32},
        {"uint64", kDLUInt, 64},  {"int64", kDLInt, 64},     {"float16", kDLFloat, 16},
        {"bfloat16", kDLBfloat, 16}, {"float32", kDLFloat, 32}, {"float64", kDLFloat, 64},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(map[i].name, name) == 0) {
            out->code = map[i].code;
            out->bits = map[i].bits;
            out->lanes = 1;
            return 0;
        }
    return -1;
}

static PyObject *mod_version(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyUnicode_FromString(numafeed_version_string());
}

static PyObject *mod_has_cuda(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyBool_FromLong(numafeed_has_cuda());
}

static PyObject *mod_cuda_device_count(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    int n;
    char msg[1024];
    Py_BEGIN_ALLOW_THREADS /* the first call initialises the CUDA runtime */
    n = numafeed_cuda_device_count();
    if (n < 0)
        snprintf(msg, sizeof(msg), "%s", numafeed_last_error());
    Py_END_ALLOW_THREADS
    if (n < 0)
        return nfpy_raise(n, "numafeed_cuda_device_count", msg);
    return PyLong_FromLong(n);
}

/* v, or None when it is the struct's "not set" value */
static PyObject *int_or_none(int v, int unset)
{
    if (v == unset)
        Py_RETURN_NONE;
    return PyLong_FromLong(v);
}

static PyObject *str_or_none(const char *v)
{
    if (!*v)
        Py_RETURN_NONE;
    return PyUnicode_FromString(v);
}

static PyObject *mod_launch_env(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    struct numafeed_launch l;
    numafeed_launch_init(&l);
    int rc = numafeed_launch_env(&l);
    if (rc)
        return nfpy_raise(rc, "numafeed_launch_env", numafeed_last_error());
    return Py_BuildValue("{sNsNsNsNsNsN}", "local_rank", int_or_none(l.local_rank, -1),
                         "rank", int_or_none(l.rank, -1), "world_size",
                         int_or_none(l.world_size, 0), "local_rank_from",
                         str_or_none(l.local_rank_from), "rank_from", str_or_none(l.rank_from),
                         "world_size_from", str_or_none(l.world_size_from));
}

static PyObject *mod_dataset_manifest(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"path", "follow_symlinks", NULL};
    const char *path;
    int follow = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|$p", kwlist, &path, &follow))
        return NULL;
    char *text = NULL, msg[1024];
    size_t len = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = numafeed_dataset_manifest(path, follow, &text, &len);
    if (rc)
        snprintf(msg, sizeof(msg), "%s", numafeed_last_error());
    Py_END_ALLOW_THREADS
    /* The message names the manifest's path, unless opening the directory
     * itself failed; then it needs saying what was being read. */
    if (rc)
        return strstr(msg, "manifest.json") ? nfpy_raisef(rc, "%s", msg)
                                             : nfpy_raise(rc, "the dataset's manifest.json", msg);
    PyObject *b = PyBytes_FromStringAndSize(text, (Py_ssize_t)len);
    free(text);
    return b;
}

static PyObject *mod_int_arg(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"name", "value", "lo", "hi", "none", NULL};
    const char *name;
    PyObject *value;
    long long lo;
    unsigned long long hi, out;
    int none = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sOLK|$p", kwlist, &name, &value, &lo, &hi,
                                     &none))
        return NULL;
    if (none && value == Py_None)
        Py_RETURN_NONE;
    return int_arg(value, name, none, lo, hi, &out);
}

static PyObject *mod_error(PyObject *self, PyObject *args)
{
    (void)self;
    int code;
    const char *msg;
    if (!PyArg_ParseTuple(args, "is", &code, &msg))
        return NULL;
    return nfpy_error(code, msg);
}

static PyObject *mod_topology(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"sysfs_root", NULL};
    const char *root = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|z", kwlist, &root))
        return NULL;
    struct numafeed_topo_options opt;
    numafeed_topo_options_init(&opt);
    opt.sysfs_root = root;
    numafeed_topo *t = NULL;
    char *json = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = numafeed_topo_open(&opt, &t);
    if (!rc)
        rc = numafeed_topo_json(t, &json);
    numafeed_topo_close(t);
    Py_END_ALLOW_THREADS
    if (rc)
        return nfpy_raise(rc, "numafeed_topo_open", numafeed_last_error());
    PyObject *s = PyUnicode_FromString(json);
    free(json);
    return s;
}

static PyMethodDef mod_methods[] = {
    {"version", mod_version, METH_NOARGS, "version() -> str: the C library's version."},
    {"has_cuda", mod_has_cuda, METH_NOARGS,
     "has_cuda() -> bool: this build was compiled with the CUDA path. It says nothing of this "
     "machine (a build with CUDA serves host batches where there is no GPU): "
     "cuda_available() says whether a GPU is usable now."},
    {"cuda_device_count", mod_cuda_device_count, METH_NOARGS,
     "cuda_device_count() -> int: the GPUs usable in this process (numafeed_cuda_device_count). "
     "NumafeedError NUMAFEED_ENOCUDA says why there are none (not compiled in, no driver, a "
     "driver too old, no device)."},
    {"launch_env", mod_launch_env, METH_NOARGS,
     "launch_env() -> dict: local_rank, rank, world_size (None when unset) and the variable "
     "each came from, as numafeed_launch_env reads the launcher's environment. "
     "NumafeedError NUMAFEED_ECONFIG names a bad variable."},
    {"dataset_manifest", (PyCFunction)(void (*)(void))mod_dataset_manifest,
     METH_VARARGS | METH_KEYWORDS,
     "dataset_manifest(path, *, follow_symlinks=False) -> bytes: PATH/manifest.json as the "
     "loader reads it (numafeed_dataset_manifest): beneath PATH, not a FIFO, at most 64 MiB."},
    {"int_arg", (PyCFunction)(void (*)(void))mod_int_arg, METH_VARARGS | METH_KEYWORDS,
     "int_arg(name, value, lo, hi, *, none=False) -> int or None: value taken exactly as "
     "the extension takes its integer keywords (anything with __index__ but bool, in "
     "lo..hi; None when none allows it); TypeError or ValueError naming the argument "
     "and its range."},
    {"error", mod_error, METH_VARARGS,
     "error(code, message) -> NumafeedError with code and name set, for the Python layer."},
    {"topology_json", (PyCFunction)(void (*)(void))mod_topology, METH_VARARGS | METH_KEYWORDS,
     "topology_json(sysfs_root=None) -> str: `numafeed topo --json` of this machine."},
    {NULL, NULL, 0, NULL},
};

static int add_type(PyObject *m, const char *name, PyObject *type)
{
    if (!type)
        return -1;
    int rc = PyModule_AddObject(m, name, type);
    if (rc)
        Py_DECREF(type);
    return rc;
}

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "numafeed._numafeed",
    "numafeed's C extension; use the numafeed package, not this module.", -1, mod_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__numafeed(void)
{
    PyObject *m = PyModule_Create(&module_def);
    if (!m)
        return NULL;
    nfpy_Error = PyErr_NewExceptionWithDoc(
        "numafeed.NumafeedError",
        "An error from the numafeed library. `code` is the library's negative error code "
        "(-errno or NUMAFEED_E*), `name` its symbolic name; the message names the file, "
        "offset and call where the library knows them.",
        PyExc_RuntimeError, NULL);
    if (!nfpy_Error)
        goto fail;
    Py_INCREF(nfpy_Error);
    if (PyModule_AddObject(m, "NumafeedError", nfpy_Error)) {
        Py_DECREF(nfpy_Error);
        goto fail;
    }
    if (add_type(m, "Loader", nfpy_loader_type(m)) || add_type(m, "Batch", nfpy_batch_type(m)) ||
        add_type(m, "Field", nfpy_field_type(m)) || add_type(m, "Writer", nfpy_writer_type(m)))
        goto fail;
    /* numafeed's own codes, as errno's module names errno values: ECORRUPT, ... */
#define NFPY_X_CONST(name, off, msg)                                                     \
    if (PyModule_AddIntConstant(m, "E" #name, NUMAFEED_E##name))                         \
        goto fail;
    NUMAFEED_ERRNO_MAP(NFPY_X_CONST)
#undef NFPY_X_CONST
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
