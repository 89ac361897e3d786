/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the test programs: fixture paths, temp dirs, running the CLI. */
#ifndef NF_TEST_HELPERS_H
#define NF_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "numafeed.h"

/* Exit status telling ctest the test was skipped (SKIP_RETURN_CODE). */
#define NF_TEST_SKIP 77

/* Path of a fixture below tests/fixtures, in a static buffer per call site. */
const char *nf_fixture(const char *rel);
/* Create a fresh temporary directory; returns a malloc'd path. */
char *nf_tmpdir(void);
/* A fresh temporary directory in *base and the path "<base>/ds" (not
 * created) in *dir, both malloc'd; 0 on success. nf_scratch_free removes
 * the tree and frees both. */
int nf_scratch(char **base, char **dir);
void nf_scratch_free(char *base, char *dir);
/* Write a dataset of n records to dir in one go (create, append, finish,
 * destroy); o may be NULL. 0, or the writer's error (message in
 * numafeed_last_error()). */
int nf_pack(const char *dir, const struct numafeed_field *fields, size_t nfields,
            const struct numafeed_writer_options *o, const void *records, size_t n);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t nf_now_ns(void);
/* The io the loader tests run with (enum loader_io): NF_TEST_IO=auto,
 * io_uring, pread or mmap (ctest runs them as a matrix); default auto.
 * nf_test_io_reads: the same when it reads (io_uring, pread), else pread. */
int nf_test_io(void);
/* Drop the page-cache pages of every file in dir (posix_fadvise
 * DONTNEED; the files are clean): io auto then sees a cold dataset. */
void nf_evict(const char *dir);
int nf_test_io_reads(void);
/* loader_last_error(L) copied into a per-thread buffer, for messages. */
const char *nf_loader_error(const loader_t *L);
/* rm -rf a directory tree (tests only). */
void nf_rmtree(const char *path);
/* Write len bytes to path, creating parent directories; 0 on success. */
int nf_write_file(const char *path, const void *data, size_t len);
/* Run a shell command; capture stdout in a malloc'd string if out != NULL.
 * Returns the exit status (or -1). */
int nf_run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* XOR the byte at offset `at` of the file with 0x5a, in place (pwrite:
 * a mapping of the file sees it); 0 on success. */
int nf_flip_byte(const char *path, uint64_t at);
/* Have the loaders created next copy records of 256 bytes and more into
 * slots with non-temporal stores (normally only long ones), and the
 * teardown that restores the default, also after a failure. */
void nf_stream_small_copies(void);
int nf_restore_copies(void **state);

#endif
