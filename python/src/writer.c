// SPDX-License-Identifier: Apache-2.0
/*
 * Writer: numafeed_writer for numafeed.pack (numafeed/_pack.py). The Python
 * layer lays fixed records out (fields interleaved, as the C writer takes
 * them) for append, or gives a record field by field for add (any layout,
 * the only way for one with variable fields); either way each piece is
 * bytes or the address of a C-contiguous numpy buffer it keeps alive for
 * the call. append, add and finish release the GIL.
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
    size_t nfields;
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

/* fields: a tuple of (name, dtype, shape) tuples; dtype "bytes" or "str"
 * with shape (), a 1-D array whose length varies with shape (-1,), the
 * manifest's spelling. Names and dtypes point into its strings: the caller
 * holds it until numafeed_writer_create has copied them. */
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
            if (v == -1 && nd == 1 && !PyErr_Occurred()) {
                f[i].shape[d] = NUMAFEED_VARIABLE;
                continue;
            }
            if (v < 1) {
                Py_DECREF(st);
                if (!PyErr_Occurred())
                    PyErr_Format(PyExc_ValueError, "field %s: dimension %zd is %lld, not >= 1 "
                                 "(-1 only as the one dimension of a 1-D field whose length "
                                 "varies)", f[i].name, d, v);
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
                             "shard_bytes", "force", "max_record_bytes", NULL};
    const char *out_dir, *codec = "zstd";
    PyObject *fields_obj, *o_level = NULL, *o_block = NULL, *o_shard = NULL, *o_max = NULL;
    int force = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sO|$sOOOpO", kwlist, &out_dir, &fields_obj,
                                     &codec, &o_level, &o_block, &o_shard, &force, &o_max))
        return -1;
    if (wo->w) {
        PyErr_SetString(PyExc_RuntimeError, "Writer.__init__ called twice");
        return -1;
    }
    unsigned long long level = 0, block = 0, shard = 0, max_record = 0;
    if ((o_level && nfpy_int_arg(o_level, "level", INT_MIN, INT_MAX, &level)) ||
        (o_block && nfpy_int_arg(o_block, "block_bytes", 0, UINT64_MAX, &block)) ||
        (o_shard && nfpy_int_arg(o_shard, "shard_bytes", 0, UINT64_MAX, &shard)) ||
        (o_max && nfpy_int_arg(o_max, "max_record_bytes", 0, UINT64_MAX, &max_record)))
        return -1;
    struct numafeed_writer_options o;
    numafeed_writer_options_init(&o);
    if (parse_codec(codec, &o.codec))
        return -1;
    o.level = (int)(long long)level;
    o.block_bytes = block;
    o.shard_bytes = shard;
    o.force = force;
    o.max_record_bytes = max_record;
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
    wo->nfields = nf;
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

/* One piece of a record: bytes, or (address, size) of a buffer the caller
 * keeps alive for the call. */
static int piece(PyObject *p, size_t i, const void **data, size_t *size)
{
    if (PyBytes_Check(p)) {
        *data = PyBytes_AsString(p);
        *size = (size_t)PyBytes_Size(p);
        return *data ? 0 : -1;
    }
    unsigned long long n;
    if (!PyTuple_Check(p) || PyTuple_Size(p) != 2) {
        PyErr_Format(PyExc_TypeError, "add: field %zu must be bytes or (address, size)", i);
        return -1;
    }
    *data = PyLong_AsVoidPtr(PyTuple_GetItem(p, 0)); /* numafeed.pack's own buffers only */
    if (PyErr_Occurred() || nfpy_int_arg(PyTuple_GetItem(p, 1), "add: size", 0, SIZE_MAX, &n))
        return -1;
    *size = (size_t)n;
    return 0;
}

static PyObject *writer_add(PyObject *self, PyObject *arg)
{
    WriterObject *wo = (WriterObject *)self;
    if (!open_writer(wo))
        return NULL;
    PyObject *parts = PySequence_Tuple(arg); /* holds every bytes piece for the call */
    if (!parts)
        return NULL;
    size_t n = (size_t)PyTuple_Size(parts);
    const void **data = calloc(n ? n : 1, sizeof(*data));
    size_t *sizes = calloc(n ? n : 1, sizeof(*sizes));
    PyObject *ret = NULL;
    if (!data || !sizes)
        PyErr_NoMemory();
    else if (n != wo->nfields)
        PyErr_Format(PyExc_ValueError, "add: %zu pieces for a layout of %zu fields", n,
                     wo->nfields);
    else {
        size_t i = 0;
        while (i < n && !piece(PyTuple_GetItem(parts, (Py_ssize_t)i), i, &data[i], &sizes[i]))
            i++;
        if (i == n) {
            int rc;
            char msg[1024];
            Py_BEGIN_ALLOW_THREADS
            rc = numafeed_writer_add(wo->w, data, sizes);
            if (rc)
                snprintf(msg, sizeof(msg), "%s", numafeed_last_error());
            Py_END_ALLOW_THREADS
            if (rc)
                nfpy_raise(rc, "numafeed_writer_add", msg);
            else {
                Py_INCREF(Py_None);
                ret = Py_None;
            }
        }
    }
    free(data);
    free(sizes);
    Py_DECREF(parts);
    return ret;
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
    {"add", writer_add, METH_O,
     "add(pieces): one record, one piece per field in the layout's order, each bytes or "
     "(address, size) of a buffer the caller keeps alive. A refused record (a size, UTF-8, "
     "over max_record_bytes) raises and leaves the writer usable."},
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
                "shard_bytes=0, force=False, max_record_bytes=0). Use numafeed.pack, which "
                "wraps this."},
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
