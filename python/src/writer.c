// SPDX-License-Identifier: Apache-2.0
/*
 * Writer: numafeed_writer for numafeed.pack (numafeed/_pack.py). The Python
 * layer lays records out (fields interleaved, as the C writer takes them)
 * and passes either bytes or the address of a C-contiguous numpy buffer it
 * keeps alive for the call. append and finish release the GIL.
 */
#include "nfpy.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    numafeed_writer *w;
    char *out_dir;
} WriterObject;

static int parse_codec(const char *name, int *out)
{
    if (strcmp(name, "zstd") == 0)
        *out = NUMAFEED_CODEC_ZSTD;
    else if (strcmp(name, "none") == 0)
        *out = NUMAFEED_CODEC_NONE;
    else {
        PyErr_Format(PyExc_ValueError, "codec must be \"zstd\" or \"none\", not \"%s\"", name);
        return -1;
    }
    return 0;
}

/* fields: a tuple of (name, dtype, shape) tuples. Names and dtypes point
 * into its strings: the caller holds it until numafeed_writer_create has
 * copied them. */
static int parse_fields(PyObject *fields, struct numafeed_field **out, size_t *n)
{
    Py_ssize_t nf = PyTuple_Size(fields);
    struct numafeed_field *f = nf > 0 ? calloc((size_t)nf, sizeof(*f)) : NULL;
    if (nf <= 0 || !f) {
        free(f);
        if (nf <= 0)
            PyErr_SetString(PyExc_ValueError, "a dataset needs at least one field");
        else
            PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < nf; i++) {
        PyObject *shape;
        if (!PyArg_ParseTuple(PyTuple_GetItem(fields, i), "ssO;a field is (name, dtype, shape)",
                              &f[i].name, &f[i].dtype, &shape))
            goto fail;
        PyObject *st = PySequence_Tuple(shape);
        if (!st)
            goto fail;
        Py_ssize_t nd = PyTuple_Size(st);
        if (nd > NUMAFEED_FIELD_MAX_DIMS) {
            Py_DECREF(st);
            PyErr_Format(PyExc_ValueError, "field %s: %zd dimensions, at most %d", f[i].name, nd,
                         NUMAFEED_FIELD_MAX_DIMS);
            goto fail;
        }
        f[i].ndim = (unsigned)nd;
        for (Py_ssize_t d = 0; d < nd; d++) {
            long long v = PyLong_AsLongLong(PyTuple_GetItem(st, d));
            if (v < 1) {
                Py_DECREF(st);
                if (!PyErr_Occurred())
                    PyErr_Format(PyExc_ValueError, "field %s: dimension %zd is %lld, not >= 1",
                                 f[i].name, d, v);
                goto fail;
            }
            f[i].shape[d] = (uint64_t)v;
        }
        Py_DECREF(st);
    }
    *out = f;
    *n = (size_t)nf;
    return 0;
fail:
    free(f);
    return -1;
}

static int writer_init(PyObject *self, PyObject *args, PyObject *kw)
{
    WriterObject *wo = (WriterObject *)self;
    static char *kwlist[] = {"out_dir", "fields", "codec", "level", "block_bytes",
                             "shard_bytes", "force", NULL};
    const char *out_dir, *codec = "zstd";
    PyObject *fields_obj, *o_level = NULL, *o_block = NULL, *o_shard = NULL;
    int force = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sO|$sOOOp", kwlist, &out_dir, &fields_obj,
                                     &codec, &o_level, &o_block, &o_shard, &force))
        return -1;
    if (wo->w) {
        PyErr_SetString(PyExc_RuntimeError, "Writer.__init__ called twice");
        return -1;
    }
    unsigned long long level = 0, block = 0, shard = 0;
    if ((o_level && nfpy_int_arg(o_level, "level", INT_MIN, INT_MAX, &level)) ||
        (o_block && nfpy_int_arg(o_block, "block_bytes", 0, UINT64_MAX, &block)) ||
        (o_shard && nfpy_int_arg(o_shard, "shard_bytes", 0, UINT64_MAX, &shard)))
        return -1;
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    if (parse_codec(codec, &o.codec))
        return -1;
    o.level = (int)(long long)level;
    o.block_bytes = block;
    o.shard_bytes = shard;
    o.force = force;
    /* hold the field tuple while the C writer copies names and dtypes */
    PyObject *keep = PySequence_Tuple(fields_obj);
    if (!keep)
        return -1;
    struct numafeed_field *f;
    size_t nf;
    if (parse_fields(keep, &f, &nf)) {
        Py_DECREF(keep);
        return -1;
    }
    numafeed_writer *w = NULL;
    int rc = numafeed_writer_create(out_dir, f, nf, &o, &w);
    free(f);
    Py_DECREF(keep);
    if (rc) {
        char what[600];
        snprintf(what, sizeof(what), "numafeed_writer_create(%s)", out_dir);
        nfpy_raise(rc, what, numafeed_last_error());
        return -1;
    }
    wo->w = w;
    wo->out_dir = strdup(out_dir);
    return 0;
}

static numafeed_writer *open_writer(WriterObject *wo)
{
    if (!wo->w)
        nfpy_raisef(-EBADF, "the writer is closed");
    return wo->w;
}

static PyObject *writer_append(PyObject *self, PyObject *args)
{
    WriterObject *wo = (WriterObject *)self;
    PyObject *data, *o_count;
    unsigned long long count;
    if (!PyArg_ParseTuple(args, "OO", &data, &o_count) ||
        nfpy_int_arg(o_count, "count", 0, SIZE_MAX, &count) || !open_writer(wo))
        return NULL;
    size_t rb = numafeed_writer_record_bytes(wo->w);
    const void *ptr;
    if (PyBytes_Check(data)) {
        unsigned long long have = (unsigned long long)PyBytes_Size(data);
        if (rb && (count > have / rb || have != count * rb))
            return PyErr_Format(PyExc_ValueError, "append: %zd bytes for %llu records of %zu",
                                PyBytes_Size(data), count, rb);
        ptr = PyBytes_AsString(data);
    } else if (PyLong_Check(data)) {
        ptr = PyLong_AsVoidPtr(data); /* numafeed.pack's own buffers only */
        if (!ptr && PyErr_Occurred())
            return NULL;
    } else {
        PyErr_SetString(PyExc_TypeError, "append: data must be bytes or a buffer address");
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = numafeed_writer_append(wo->w, ptr, (size_t)count);
    Py_END_ALLOW_THREADS
    if (rc)
        return nfpy_raise(rc, "numafeed_writer_append", numafeed_last_error());
    Py_RETURN_NONE;
}

static PyObject *writer_finish(PyObject *self, PyObject *unused)
{
    (void)unused;
    WriterObject *wo = (WriterObject *)self;
    if (!open_writer(wo))
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = numafeed_writer_finish(wo->w);
    Py_END_ALLOW_THREADS
    if (rc)
        return nfpy_raise(rc, "numafeed_writer_finish", numafeed_last_error());
    Py_RETURN_NONE;
}

static PyObject *writer_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    WriterObject *wo = (WriterObject *)self;
    numafeed_writer *w = wo->w;
    wo->w = NULL;
    Py_BEGIN_ALLOW_THREADS
    numafeed_writer_destroy(w);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static void writer_dealloc(PyObject *self)
{
    WriterObject *wo = (WriterObject *)self;
    numafeed_writer_destroy(wo->w);
    free(wo->out_dir);
    nfpy_free_self(self);
}

#define WRITER_U64(attr, call)                                                           \
    static PyObject *writer_get_##attr(PyObject *self, void *c)                          \
    {                                                                                    \
        (void)c;                                                                         \
        numafeed_writer *w = open_writer((WriterObject *)self);                          \
        return w ? PyLong_FromUnsignedLongLong((unsigned long long)call(w)) : NULL;      \
    }
WRITER_U64(record_bytes, numafeed_writer_record_bytes)
WRITER_U64(records, numafeed_writer_records)
WRITER_U64(bytes_written, numafeed_writer_bytes_written)
WRITER_U64(shards, numafeed_writer_shards)

static PyMethodDef writer_methods[] = {
    {"append", writer_append, METH_VARARGS,
     "append(data, count): count records, field-interleaved, as bytes (or the address of a "
     "buffer the caller keeps alive)."},
    {"finish", writer_finish, METH_NOARGS,
     "finish(): write the last block, footers and manifest; rename into place."},
    {"close", writer_close, METH_NOARGS,
     "close(): free the writer; without a successful finish nothing is left behind."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef writer_getset[] = {
    {"record_bytes", writer_get_record_bytes, NULL, "bytes per record", NULL},
    {"records", writer_get_records, NULL, "records appended so far", NULL},
    {"bytes_written", writer_get_bytes_written, NULL, "bytes written to shards so far", NULL},
    {"shards", writer_get_shards, NULL, "shard files started so far", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot writer_slots[] = {
    {Py_tp_init, writer_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, writer_dealloc},
    {Py_tp_methods, writer_methods},
    {Py_tp_getset, writer_getset},
    {Py_tp_doc, "Writer(out_dir, fields, *, codec='zstd', level=0, block_bytes=0, "
                "shard_bytes=0, force=False). Use numafeed.pack, which wraps this."},
    {0, NULL},
};

static PyType_Spec writer_spec = {
    "numafeed._numafeed.Writer", sizeof(WriterObject), 0, Py_TPFLAGS_DEFAULT, writer_slots,
};

PyObject *nfpy_writer_type(PyObject *module)
{
    (void)module;
    return PyType_FromSpec(&writer_spec);
}
