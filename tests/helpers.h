/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the test programs: fixture paths, temp dirs, running the CLI. */
#ifndef NF_TEST_HELPERS_H
#define NF_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Exit status telling ctest the test was skipped (SKIP_RETURN_CODE). */
#define NF_TEST_SKIP 77

/* Path of a fixture below tests/fixtures, in a static buffer per call site. */
const char *nf_fixture(const char *rel);
/* Create a fresh temporary directory; returns a malloc'd path. */
char *nf_tmpdir(void);
/* rm -rf a directory tree (tests only). */
void nf_rmtree(const char *path);
/* Write len bytes to path, creating parent directories; 0 on success. */
int nf_write_file(const char *path, const void *data, size_t len);
/* Run a shell command; capture stdout in a malloc'd string if out != NULL.
 * Returns the exit status (or -1). */
int nf_run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
