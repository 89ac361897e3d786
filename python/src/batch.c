// SPDX-License-Identifier: Apache-2.0
/*
 * Batch (one loader_next) and Field (one array of it, exported with DLPack).
 *
 * A fixed field is one Field, its [records, shape...] array. A variable
 * field (bytes, str, a 1-D array whose length varies) is a Field of its
 * values, whose `offsets` is a second Field of the records + 1 int64 offsets
 * on the same device, and whose `host_offsets` is the same offsets in the
 * slot's host memory (where the Python layer reads record bounds without
 * waiting for a device); str and bytes values also come out as Python
 * objects (tolist), decoded from the slot's host values, which are there
 * on the CUDA path too.
 *
 * DLPack (dmlc/dlpack, the array API's __dlpack__): __dlpack__ returns a
 * capsule named "dltensor" holding a DLManagedTensor that points into the
 * batch's slot (host) or its device buffer (CUDA path); the tensor holds
 * one batch reference, dropped by its deleter, which needs no GIL. A
 * consumer that takes the tensor renames the capsule "used_dltensor" and
 * owns the deleter; a capsule never consumed runs it when collected.
 * Streams (CUDA path): the consumer's stream is made to wait on the
 * batch's ready event (cudaStreamWaitEvent; the host never waits) and is
 * remembered: the release when the last tensor goes records an event on
 * it, and the pool reuses the slot only after that event completes.
 */
#include "nfpy.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    struct nfpy_batch *nb;
    PyObject *fields; /* tuple of Field */
    PyObject *ids;    /* Field of the record ids */
} BatchObject;

/* Which array of a field a Field object exports. */
enum part {
    PART_VALUES,       /* a fixed field's array, a variable field's values */
    PART_OFFSETS,      /* a variable field's offsets, where its values are */
    PART_HOST_OFFSETS, /* the same offsets in the slot's host memory */
};

/* A Field holds its own batch reference (a C count, not a reference to
 * the Batch object: the Batch holds its Fields, and a cycle would need the
 * garbage collector to free a slot). */
typedef struct {
    PyObject_HEAD
    struct nfpy_batch *nb;
    int idx;         /* field index; -1: the record ids */
    int part;        /* enum part */
} FieldObject;

static PyTypeObject *batch_type, *field_type;

static PyObject *alloc_obj(PyTypeObject *tp)
{
    allocfunc a = (allocfunc)PyType_GetSlot(tp, Py_tp_alloc);
    return a(tp, 0);
}

/* ---- Field ---------------------------------------------------------------- */

static struct nfpy_field *field_desc(FieldObject *f, const struct nfpy_batch **nbp)
{
    const struct nfpy_batch *nb = f->nb;
    *nbp = nb;
    if (f->idx < 0)
        return (struct nfpy_field *)&nb->ids;
    return f->part == PART_VALUES ? &nb->fields[f->idx] : &nb->offsets[f->idx];
}

static void *field_data(FieldObject *f, int *on_device)
{
    const struct nfpy_batch *nb = f->nb;
    *on_device = 0;
    if (f->idx < 0)
        return (void *)nb->b.record_ids;
    const struct loader_field *lf = &nb->b.fields[f->idx];
    if (f->part == PART_HOST_OFFSETS)
        return (void *)lf->offsets;
    if (f->part == PART_OFFSETS) {
        *on_device = lf->offsets_device != NULL;
        return (void *)(lf->offsets_device ? lf->offsets_device : lf->offsets);
    }
    *on_device = lf->device != NULL;
    return lf->device ? lf->device : lf->host;
}

static void dl_deleter(DLManagedTensor *mt)
{
    struct nfpy_batch *nb = mt->manager_ctx;
    free(mt);
    nfpy_batch_decref(nb);
}

static void capsule_destructor(PyObject *cap)
{
    const char *name = PyCapsule_GetName(cap);
    if (!name || strcmp(name, "dltensor") != 0) {
        PyErr_Clear();
        return; /* consumed ("used_dltensor"): the consumer owns the deleter */
    }
    DLManagedTensor *mt = PyCapsule_GetPointer(cap, "dltensor");
    if (mt && mt->deleter)
        mt->deleter(mt);
    PyErr_Clear();
}

/* DLPack's stream argument (CUDA): None or 1 the legacy default stream, 2
 * the per-thread default stream, -1 no synchronisation, other values a
 * cudaStream_t; 0 is ambiguous and refused (array API standard). */
static int parse_stream(PyObject *obj, void **stream, int *sync)
{
    *stream = NULL;
    *sync = 1;
    if (!obj || obj == Py_None)
        return 0;
    if (!PyLong_Check(obj)) {
        PyErr_SetString(PyExc_TypeError, "__dlpack__: stream must be an int or None");
        return -1;
    }
    long long v = PyLong_AsLongLong(obj);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        uintptr_t u = (uintptr_t)PyLong_AsUnsignedLongLong(obj);
        if (PyErr_Occurred())
            return -1;
        *stream = (void *)u;
        return 0;
    }
    if (v == -1) {
        *sync = 0;
        return 0;
    }
    if (v == 0) {
        PyErr_SetString(PyExc_ValueError,
                        "__dlpack__: stream=0 is ambiguous for CUDA; use 1 (legacy default), 2 "
                        "(per-thread default) or a cudaStream_t");
        return -1;
    }
    *stream = v == 1 ? NULL : (void *)(uintptr_t)v;
    return 0;
}

static PyObject *field_dlpack(PyObject *self, PyObject *args, PyObject *kw)
{
    FieldObject *f = (FieldObject *)self;
    static char *kwlist[] = {"stream", "max_version", "dl_device", "copy", NULL};
    PyObject *stream_obj = NULL, *max_version = NULL, *dl_device = NULL, *copy = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|$OOOO", kwlist, &stream_obj, &max_version,
                                     &dl_device, &copy))
        return NULL;
    (void)max_version; /* we export the unversioned capsule, which every consumer reads */
    const struct nfpy_batch *cnb;
    struct nfpy_field *desc = field_desc(f, &cnb);
    struct nfpy_batch *nb = (struct nfpy_batch *)cnb;
    if (nfpy_check_pid(nb->core))
        return NULL;
    int on_device;
    void *data = field_data(f, &on_device);
    DLDevice dev = {on_device ? kDLCUDA : kDLCPU, on_device ? nb->core->ordinal : 0};
    if (copy && PyObject_IsTrue(copy) == 1) {
        PyErr_SetString(PyExc_BufferError,
                        "__dlpack__: numafeed batches are exported without a copy (copy=True "
                        "is not supported)");
        return NULL;
    }
    if (dl_device && dl_device != Py_None) {
        long t = -1, id = -1;
        if (!PyArg_ParseTuple(dl_device, "ll;dl_device must be (device_type, device_id)", &t, &id))
            return NULL;
        if (t != dev.device_type || id != dev.device_id) {
            PyErr_Format(PyExc_BufferError,
                         "__dlpack__: the batch is on device (%d, %d), not (%ld, %ld); numafeed "
                         "does not copy between devices", (int)dev.device_type,
                         (int)dev.device_id, t, id);
            return NULL;
        }
    }
    if (on_device) {
        void *stream;
        int sync;
        if (parse_stream(stream_obj, &stream, &sync))
            return NULL;
        if (sync) {
            int rc = loader_batch_wait(nb->core->loader, &nb->b, stream);
            if (rc) {
                char msg[1024];
                loader_last_error(nb->core->loader, msg, sizeof(msg));
                return nfpy_raise(rc, "__dlpack__: making the consumer's stream wait", msg);
            }
            atomic_store(&nb->stream, stream);
        }
    }
    DLManagedTensor *mt = calloc(1, sizeof(*mt));
    if (!mt)
        return PyErr_NoMemory();
    mt->dl_tensor.data = data;
    mt->dl_tensor.device = dev;
    mt->dl_tensor.ndim = desc->ndim;
    mt->dl_tensor.dtype = desc->dtype;
    mt->dl_tensor.shape = desc->shape;
    mt->dl_tensor.strides = desc->strides;
    mt->dl_tensor.byte_offset = 0;
    mt->manager_ctx = nb;
    mt->deleter = dl_deleter;
    atomic_fetch_add(&nb->refs, 1);
    PyObject *cap = PyCapsule_New(mt, "dltensor", capsule_destructor);
    if (!cap)
        dl_deleter(mt);
    return cap;
}

static PyObject *field_dlpack_device(PyObject *self, PyObject *unused)
{
    (void)unused;
    FieldObject *f = (FieldObject *)self;
    const struct nfpy_batch *nb;
    (void)field_desc(f, &nb);
    int on_device;
    (void)field_data(f, &on_device);
    return Py_BuildValue("(ii)", on_device ? (int)kDLCUDA : (int)kDLCPU,
                         on_device ? nb->core->ordinal : 0);
}

static PyObject *field_get_name(PyObject *self, void *c)
{
    (void)c;
    FieldObject *f = (FieldObject *)self;
    const struct nfpy_batch *nb = f->nb;
    return PyUnicode_FromString(f->idx < 0 ? "record_ids" : nb->b.fields[f->idx].name);
}

static PyObject *field_get_dtype(PyObject *self, void *c)
{
    (void)c;
    FieldObject *f = (FieldObject *)self;
    const struct nfpy_batch *nb = f->nb;
    int int64 = f->idx < 0 || f->part != PART_VALUES;
    return PyUnicode_FromString(int64 ? "int64" : nb->b.fields[f->idx].dtype);
}

static PyObject *field_get_shape(PyObject *self, void *c)
{
    (void)c;
    const struct nfpy_batch *nb;
    struct nfpy_field *d = field_desc((FieldObject *)self, &nb);
    PyObject *t = PyTuple_New(d->ndim);
    for (int i = 0; t && i < d->ndim; i++) {
        PyObject *v = PyLong_FromLongLong(d->shape[i]);
        if (!v || PyTuple_SetItem(t, i, v)) {
            Py_CLEAR(t);
            break;
        }
    }
    return t;
}

/* The loader_field a Field's values belong to; NULL for the record ids. */
static const struct loader_field *field_of(const FieldObject *f)
{
    return f->idx < 0 ? NULL : &f->nb->b.fields[f->idx];
}

static PyObject *field_get_kind(PyObject *self, void *c)
{
    (void)c;
    FieldObject *f = (FieldObject *)self;
    const struct loader_field *lf = field_of(f);
    if (f->part != PART_VALUES)
        return PyUnicode_FromString("offsets");
    static const char *names[] = {"fixed", "bytes", "str", "array"};
    int k = lf ? lf->kind : LOADER_FIELD_FIXED;
    return PyUnicode_FromString(k >= 0 && k < 4 ? names[k] : "unknown");
}

static PyObject *new_field(struct nfpy_batch *nb, int idx, int part);

/* A variable field's offsets as a Field of `part`; None for a fixed one. */
static PyObject *offsets_field(PyObject *self, int part)
{
    FieldObject *f = (FieldObject *)self;
    const struct loader_field *lf = field_of(f);
    if (!lf || f->part != PART_VALUES || lf->kind == LOADER_FIELD_FIXED)
        Py_RETURN_NONE;
    return new_field(f->nb, f->idx, part);
}

static PyObject *field_get_offsets(PyObject *self, void *c)
{
    (void)c;
    return offsets_field(self, PART_OFFSETS);
}

static PyObject *field_get_host_offsets(PyObject *self, void *c)
{
    (void)c;
    return offsets_field(self, PART_HOST_OFFSETS);
}

/* NumafeedError NUMAFEED_ECORRUPT for record i of the batch, naming it by
 * its id; reason ends the message. NULL. */
static PyObject *record_error(const struct nfpy_batch *nb, const struct loader_field *lf,
                              uint32_t i, const char *reason)
{
    return nfpy_raisef(NUMAFEED_ECORRUPT,
                       "field %s, record %llu (batch %llu of epoch %llu): %s", lf->name,
                       (unsigned long long)nb->b.record_ids[i], (unsigned long long)nb->b.index,
                       (unsigned long long)nb->b.epoch, reason);
}

/* One str record as a Python str; a NumafeedError naming the record when
 * its bytes are not UTF-8 (the writer refuses such a record, so only a
 * dataset written otherwise, or whose manifest was changed, has one). */
static PyObject *decode_str(const struct nfpy_batch *nb, const struct loader_field *lf,
                            uint32_t i, const char *s, Py_ssize_t n)
{
    PyObject *u = PyUnicode_DecodeUTF8(s, n, "strict");
    if (u || !PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
        return u;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *why = value ? PyObject_Str(value) : NULL;
    PyObject *why8 = why ? PyUnicode_AsUTF8String(why) : NULL;
    const char *w = why8 ? PyBytes_AsString(why8) : NULL;
    char reason[512];
    snprintf(reason, sizeof(reason),
             "not UTF-8 (%s); numafeed's writer refuses such a str, so the dataset was "
             "written otherwise or its manifest changed: repack it, or read the field's bytes "
             "with output='dlpack'", w ? w : "invalid UTF-8");
    Py_XDECREF(why8);
    Py_XDECREF(why);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    PyErr_Clear();
    return record_error(nb, lf, i, reason);
}

static PyObject *field_tolist(PyObject *self, PyObject *unused)
{
    (void)unused;
    FieldObject *f = (FieldObject *)self;
    const struct nfpy_batch *nb = f->nb;
    const struct loader_field *lf = field_of(f);
    int is_str = lf && lf->kind == LOADER_FIELD_STR;
    if (!lf || f->part != PART_VALUES || (!is_str && lf->kind != LOADER_FIELD_BYTES))
        return PyErr_Format(PyExc_TypeError,
                            "tolist: only a bytes or str field becomes a list; export this "
                            "one with __dlpack__ (torch.from_dlpack, numpy.from_dlpack)");
    if (nfpy_check_pid(nb->core))
        return NULL;
    /* the loader made these offsets from lengths it checked at open; a
     * bound outside the values is still refused rather than read */
    const int64_t *o = lf->offsets;
    const char *v = lf->host;
    uint32_t n = nb->b.records;
    PyObject *list = PyList_New(n);
    for (uint32_t i = 0; list && i < n; i++) {
        PyObject *item;
        if (o[i] < 0 || o[i] > o[i + 1] || (uint64_t)o[i + 1] > lf->values_bytes)
            item = record_error(nb, lf, i, "offsets outside the batch's values");
        else if (is_str)
            item = decode_str(nb, lf, i, v + o[i], (Py_ssize_t)(o[i + 1] - o[i]));
        else
            item = PyBytes_FromStringAndSize(v + o[i], (Py_ssize_t)(o[i + 1] - o[i]));
        if (!item || PyList_SetItem(list, (Py_ssize_t)i, item))
            Py_CLEAR(list);
    }
    return list;
}

static void field_dealloc(PyObject *self)
{
    FieldObject *f = (FieldObject *)self;
    if (f->nb)
        nfpy_batch_decref(f->nb);
    nfpy_free_self(self);
}

static PyMethodDef field_methods[] = {
    {"__dlpack__", (PyCFunction)(void (*)(void))field_dlpack, METH_VARARGS | METH_KEYWORDS,
     "__dlpack__(*, stream=None, max_version=None, dl_device=None, copy=None): a DLPack "
     "capsule of this array, without a copy (array API standard)."},
    {"__dlpack_device__", field_dlpack_device, METH_NOARGS,
     "__dlpack_device__() -> (device_type, device_id): (1, 0) host, (2, N) CUDA device N."},
    {"tolist", field_tolist, METH_NOARGS,
     "tolist() -> list: a bytes field's records as bytes, a str field's as str (copies, "
     "from the slot's host values). NumafeedError NUMAFEED_ECORRUPT names a record that "
     "is not UTF-8."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef field_getset[] = {
    {"name", field_get_name, NULL, "the field's name", NULL},
    {"dtype", field_get_dtype, NULL,
     "the dtype's name (\"int32\", \"bfloat16\", ...): the elements' for a variable field "
     "(uint8 for bytes and str), int64 for offsets", NULL},
    {"shape", field_get_shape, NULL,
     "(records, *field shape); a variable field's values: (elements,); offsets: (records + 1,)",
     NULL},
    {"kind", field_get_kind, NULL,
     "\"fixed\", or a variable field's \"bytes\", \"str\" or \"array\"; \"offsets\" for "
     "its offsets", NULL},
    {"offsets", field_get_offsets, NULL,
     "a variable field's records + 1 int64 offsets into its values (record i is "
     "values[offsets[i]:offsets[i + 1]]), a Field on the values' device; None for a fixed "
     "field", NULL},
    {"host_offsets", field_get_host_offsets, NULL,
     "the same offsets in host memory (the batch's slot), also when the values are on a GPU; "
     "None for a fixed field", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot field_slots[] = {
    {Py_tp_dealloc, field_dealloc},
    {Py_tp_methods, field_methods},
    {Py_tp_getset, field_getset},
    {Py_tp_doc, "One array of a batch, exported zero-copy with DLPack "
                "(torch.from_dlpack, numpy.from_dlpack)."},
    {0, NULL},
};

static PyType_Spec field_spec = {
    "numafeed._numafeed.Field", sizeof(FieldObject), 0, Py_TPFLAGS_DEFAULT, field_slots,
};

PyObject *nfpy_field_type(PyObject *module)
{
    (void)module;
    field_type = (PyTypeObject *)PyType_FromSpec(&field_spec);
    Py_XINCREF(field_type); /* one for the module, one kept here */
    return (PyObject *)field_type;
}

/* ---- Batch ---------------------------------------------------------------- */

static PyObject *new_field(struct nfpy_batch *nb, int idx, int part)
{
    FieldObject *f = (FieldObject *)alloc_obj(field_type);
    if (!f)
        return NULL;
    atomic_fetch_add(&nb->refs, 1);
    f->nb = nb;
    f->idx = idx;
    f->part = part;
    return (PyObject *)f;
}

/* A C-contiguous array of shape {lead, shape...}. */
static void describe(struct nfpy_field *d, uint64_t lead, unsigned ndim, const uint64_t *shape)
{
    d->ndim = (int)ndim + 1;
    d->shape[0] = (int64_t)lead;
    for (unsigned i = 0; i < ndim; i++)
        d->shape[i + 1] = (int64_t)shape[i];
    int64_t stride = 1;
    for (int i = d->ndim - 1; i >= 0; i--) {
        d->strides[i] = stride;
        stride *= d->shape[i];
    }
}

/* Field i's DLPack descriptions; -1 with an error set. A variable field's
 * values are one vector of offsets[records] elements. */
static int describe_field(struct nfpy_batch *nb, unsigned i)
{
    const struct loader_field *lf = &nb->b.fields[i];
    uint32_t records = nb->b.records;
    if (nfpy_dtype(lf->dtype, &nb->fields[i].dtype)) {
        nfpy_raisef(-ENOTSUP, "field %s has dtype %s, unknown to DLPack", lf->name, lf->dtype);
        return -1;
    }
    if (lf->kind == LOADER_FIELD_FIXED) {
        describe(&nb->fields[i], records, lf->ndim, lf->shape);
        return 0;
    }
    const int64_t *o = lf->offsets;
    uint64_t elem = nb->fields[i].dtype.bits / 8;
    if (!o || o[0] != 0 || o[records] < 0 || (uint64_t)o[records] * elem != lf->values_bytes) {
        nfpy_raisef(NUMAFEED_ECORRUPT, "field %s of batch %llu: its offsets end at %lld "
                    "elements, not at its %llu bytes of values", lf->name,
                    (unsigned long long)nb->b.index, o ? (long long)o[records] : -1LL,
                    (unsigned long long)lf->values_bytes);
        return -1;
    }
    describe(&nb->fields[i], (uint64_t)o[records], 0, NULL);
    describe(&nb->offsets[i], (uint64_t)records + 1, 0, NULL);
    nb->offsets[i].dtype = (DLDataType){kDLInt, 64, 1};
    return 0;
}

PyObject *nfpy_batch_new(struct nfpy_core *core, const struct loader_batch *lb)
{
    struct nfpy_batch *nb = calloc(1, sizeof(*nb));
    size_t n = lb->nfields ? lb->nfields : 1;
    if (nb) {
        nb->fields = calloc(n, sizeof(*nb->fields));
        nb->offsets = calloc(n, sizeof(*nb->offsets));
    }
    if (!nb || !nb->fields || !nb->offsets) {
        if (nb) {
            free(nb->fields);
            free(nb->offsets);
        }
        free(nb);
        loader_release(core->loader, (struct loader_batch *)lb);
        nfpy_core_decref(core);
        return PyErr_NoMemory();
    }
    nb->core = core;
    nb->b = *lb;
    atomic_init(&nb->refs, 1);
    atomic_init(&nb->stream, NULL);
    describe(&nb->ids, lb->records, 0, NULL);
    nb->ids.dtype = (DLDataType){kDLInt, 64, 1}; /* int64: every torch reads it */
    for (unsigned i = 0; i < lb->nfields; i++)
        if (describe_field(nb, i)) {
            nfpy_batch_decref(nb);
            return NULL;
        }
    BatchObject *b = (BatchObject *)alloc_obj(batch_type);
    if (!b) {
        nfpy_batch_decref(nb);
        return NULL;
    }
    b->nb = nb;
    b->fields = PyTuple_New(lb->nfields);
    b->ids = b->fields ? new_field(nb, -1, PART_VALUES) : NULL;
    if (!b->ids) {
        Py_DECREF(b);
        return NULL;
    }
    for (unsigned i = 0; i < lb->nfields; i++) {
        PyObject *f = new_field(nb, (int)i, PART_VALUES);
        if (!f || PyTuple_SetItem(b->fields, i, f)) {
            Py_DECREF(b);
            return NULL;
        }
    }
    return (PyObject *)b;
}

static void batch_dealloc(PyObject *self)
{
    BatchObject *b = (BatchObject *)self;
    Py_CLEAR(b->fields);
    Py_CLEAR(b->ids);
    if (b->nb)
        nfpy_batch_decref(b->nb);
    nfpy_free_self(self);
}

#define BATCH_U64(attr, expr)                                                            \
    static PyObject *batch_get_##attr(PyObject *self, void *c)                           \
    {                                                                                    \
        (void)c;                                                                         \
        const struct loader_batch *lb = &((BatchObject *)self)->nb->b;                   \
        return PyLong_FromUnsignedLongLong((unsigned long long)(expr));                  \
    }
BATCH_U64(epoch, lb->epoch)
BATCH_U64(index, lb->index)
BATCH_U64(records, lb->records)

static PyObject *batch_get_last(PyObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(((BatchObject *)self)->nb->b.last_in_epoch);
}

static PyObject *batch_get_fields(PyObject *self, void *c)
{
    (void)c;
    PyObject *t = ((BatchObject *)self)->fields;
    Py_INCREF(t);
    return t;
}

static PyObject *batch_get_ids(PyObject *self, void *c)
{
    (void)c;
    PyObject *t = ((BatchObject *)self)->ids;
    Py_INCREF(t);
    return t;
}

static PyGetSetDef batch_getset[] = {
    {"epoch", batch_get_epoch, NULL, "the epoch, from 0", NULL},
    {"index", batch_get_index, NULL, "the batch's index within its epoch, from 0", NULL},
    {"records", batch_get_records, NULL, "records in the batch (short only at an epoch's end)",
     NULL},
    {"last_in_epoch", batch_get_last, NULL, "True on the epoch's last batch", NULL},
    {"fields", batch_get_fields, NULL, "tuple of Field, in the dataset's field order", NULL},
    {"record_ids", batch_get_ids, NULL,
     "Field (int64, host) of each record's index in the dataset", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot batch_slots[] = {
    {Py_tp_dealloc, batch_dealloc},
    {Py_tp_getset, batch_getset},
    {Py_tp_doc, "One batch from Loader.next(). Its slot goes back to the pool when this "
                "object and every array exported from it are gone."},
    {0, NULL},
};

static PyType_Spec batch_spec = {
    "numafeed._numafeed.Batch", sizeof(BatchObject), 0, Py_TPFLAGS_DEFAULT, batch_slots,
};

PyObject *nfpy_batch_type(PyObject *module)
{
    (void)module;
    batch_type = (PyTypeObject *)PyType_FromSpec(&batch_spec);
    Py_XINCREF(batch_type);
    return (PyObject *)batch_type;
}
