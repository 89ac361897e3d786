/* SPDX-License-Identifier: Apache-2.0 */
/*
 * numafeed._numafeed: the CPython extension (limited API, abi3, 3.9+).
 *
 * One .c per Python type (loader.c: Loader, batch.c: Batch and Field,
 * writer.c: Writer) and module.c for the module, its exception and the
 * shared helpers declared here.
 *
 * Lifetimes. A C loader must outlive every batch handed out, and a batch
 * must stay outstanding until every tensor made from it is gone. Tensors
 * are freed by their consumer (torch, numpy) through the DLPack deleter,
 * which may run on any thread without the GIL; so the counts that decide
 * when to release a batch and destroy a loader are plain C atomics in
 * nfpy_core and nfpy_batch, never Python reference counts:
 *   core  (one per C loader): 1 for the Python Loader + 1 per live batch;
 *   batch (one per loader_next): 1 for the Python Batch + 1 per exported
 *         DLPack tensor.
 * The last batch reference releases the slot (an event on the consumer's
 * stream, CUDA path), then drops its core reference; the last core
 * reference destroys the loader. Loader.close() drops the Python Loader's
 * reference: the pools stop once no tensor of theirs is alive.
 *
 * fork(). The pools' threads do not exist in a child. A core remembers the
 * pid that made it; in any other process every call raises and the counts
 * never destroy anything (the child's copy is leaked, never touched).
 */
#ifndef NUMAFEED_PY_H
#define NUMAFEED_PY_H

#define PY_SSIZE_T_CLEAN
#define Py_LIMITED_API 0x03090000
#include <Python.h>

#include <stdatomic.h>
#include <sys/types.h>

#include <dlpack/dlpack.h>
#include <numafeed.h>

struct nfpy_core {
    loader_t *loader;
    atomic_long refs;
    pid_t pid;        /* the process whose threads run the pools */
    int cuda;         /* batches are in device memory */
    int ordinal;      /* CUDA device of the (single) served GPU */
};

/* Per field of a batch: what a DLTensor points at. */
struct nfpy_field {
    int64_t shape[NUMAFEED_FIELD_MAX_DIMS + 1];
    int64_t strides[NUMAFEED_FIELD_MAX_DIMS + 1];
    DLDataType dtype;
    int ndim;
};

struct nfpy_batch {
    struct nfpy_core *core;
    struct loader_batch b;
    atomic_long refs;
    _Atomic(void *) stream; /* the consumer's stream (CUDA path): release records on it */
    struct nfpy_field *fields;  /* b.nfields entries: a fixed field's array, a variable
                                 * field's values */
    struct nfpy_field *offsets; /* b.nfields entries: a variable field's offsets (records
                                 * + 1 int64); unused for a fixed field */
    struct nfpy_field ids;      /* record_ids as a uint64 vector */
};

/* module.c */
extern PyObject *nfpy_Error;
/* A new numafeed.NumafeedError with message msg and its code and name
 * (numafeed_err_name) set, not raised; NULL with an error set on failure.
 * Every NumafeedError is made here, so none lacks its code. */
PyObject *nfpy_error(int code, const char *msg);
/* Raise nfpy_error(code, printf-style message); NULL. */
PyObject *nfpy_raisef(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Raise nfpy_error for the failed call `what` with the library's message
 * detail (numafeed_last_error()), prefixed with what unless detail already
 * begins with it; with no detail, "what: <numafeed_strerror(code)>". NULL. */
PyObject *nfpy_raise(int code, const char *what, const char *detail);
/* An integer argument taken exactly, as PyArg's "I" and "K" do not (they
 * truncate 2**32 + 16 to 16 and wrap -1): anything with __index__ but
 * bool, in lo..hi, stored as its 64 bits in *out (cast back to the field's
 * type, negative values included). A TypeError or ValueError naming the
 * argument and its range otherwise; -1. The Python layer checks its
 * keywords with the same function (module function int_arg). */
int nfpy_int_arg(PyObject *o, const char *name, long long lo, unsigned long long hi,
                 unsigned long long *out);
/* NULL with an error set when the object was made in another process. */
int nfpy_check_pid(const struct nfpy_core *core);
void nfpy_core_decref(struct nfpy_core *core);
void nfpy_free_self(PyObject *self);
void nfpy_batch_decref(struct nfpy_batch *b);
/* Map a dtype name of the format ("int32", "bfloat16", ...) to DLPack's. */
int nfpy_dtype(const char *name, DLDataType *out);

/* loader.c, batch.c, writer.c: create the type (NULL with an error set). */
PyObject *nfpy_loader_type(PyObject *module);
PyObject *nfpy_batch_type(PyObject *module);
PyObject *nfpy_field_type(PyObject *module);
PyObject *nfpy_writer_type(PyObject *module);
/* batch.c: wrap an outstanding batch (takes over one core reference on
 * success; on failure releases the batch and drops that reference). */
PyObject *nfpy_batch_new(struct nfpy_core *core, const struct loader_batch *lb);

#endif
