// SPDX-License-Identifier: Apache-2.0
/*
 * nvCOMP, found and loaded at run time, never linked: one numafeed binary
 * runs with it (decode gpu) and without it (decode cpu, saying why). The
 * entry points are declared in nvcomp_abi.h, which says why and how they
 * are kept honest.
 *
 * Where it is looked for, in this order (the first that loads wins):
 *   1. $NUMAFEED_NVCOMP: the library file itself, or a directory holding
 *      it (DIR/libnvcomp.so.6, DIR/lib64/..., DIR/lib/..., or the wheel's
 *      layout DIR/nvidia/libnvcomp/lib64/...). When the variable is set,
 *      nothing else is tried: a wrong setting is reported, not papered
 *      over by another copy.
 *   2. Beside numafeed's Python package: pip's nvidia-libnvcomp-cu13 wheel
 *      installs site-packages/nvidia/libnvcomp/lib64/libnvcomp.so.6, and
 *      numafeed's code sits in site-packages/numafeed/ (the extension),
 *      site-packages/numafeed.libs/ (a grafted library) or the
 *      environment's bin/ (the numafeed command, whose site-packages is
 *      ../lib/python3.X/site-packages). The directory of the object
 *      holding this code comes from dladdr.
 *   3. The dynamic loader's own search (LD_LIBRARY_PATH, the cache of
 *      ldconfig: a system install) for libnvcomp.so.6.
 * A library that loads is checked before use: nvcompGetProperties must
 * report major version 6 (the ABI declared here), and every entry point
 * must resolve. The answer, and every place tried, is kept for the
 * process: doctor, the pool's notes and decode gpu's error say it.
 */
#include <dlfcn.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pin/pin.h"

/* Paths relative to a directory where the wheel's library may sit. */
static const char *const wheel_rel[] = {
    NF_NVCOMP_SONAME,
    "lib64/" NF_NVCOMP_SONAME,
    "lib/" NF_NVCOMP_SONAME,
    "nvidia/libnvcomp/lib64/" NF_NVCOMP_SONAME,
};

/* Append the path a + b + c as candidate n; a path too long is none. */
static int add(char (*out)[NF_NVCOMP_PATH], int n, int max, const char *a, const char *b,
               const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    if (n >= max || la + lb + lc >= NF_NVCOMP_PATH)
        return n;
    memcpy(out[n], a, la);
    memcpy(out[n] + la, b, lb);
    memcpy(out[n] + la + lb, c, lc + 1);
    return n + 1;
}

/* A message into a fixed buffer, cut if it must be. */
__attribute__((format(printf, 3, 4))) static void say(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

int nf__nvcomp_candidates(const char *env, const char *self, char (*out)[NF_NVCOMP_PATH],
                          int max)
{
    int n = 0;
    if (env && *env) {
        struct stat st;
        if (stat(env, &st) == 0 && S_ISDIR(st.st_mode)) {
            for (size_t i = 0; i < NF_ARRAY_SIZE(wheel_rel); i++)
                n = add(out, n, max, env, "/", wheel_rel[i]);
        } else {
            n = add(out, n, max, env, "", "");
        }
        return n;
    }
    const char *slash = self ? strrchr(self, '/') : NULL;
    if (slash && (size_t)(slash - self) < NF_NVCOMP_PATH) {
        char dir[NF_NVCOMP_PATH], pat[NF_NVCOMP_PATH];
        memcpy(dir, self, (size_t)(slash - self));
        dir[slash - self] = '\0';
        /* site-packages/numafeed/ or site-packages/numafeed.libs/ */
        n = add(out, n, max, dir, "/../nvidia/libnvcomp/lib64/", NF_NVCOMP_SONAME);
        /* an environment's bin/: its site-packages, whichever Python */
        glob_t g;
        if (add(&pat, 0, 1, dir, "/../lib*/python3*/site-packages/nvidia/libnvcomp/lib64/",
                NF_NVCOMP_SONAME) && glob(pat, 0, NULL, &g) == 0) {
            for (size_t i = 0; i < g.gl_pathc; i++)
                n = add(out, n, max, g.gl_pathv[i], "", "");
            globfree(&g);
        }
    }
    return add(out, n, max, NF_NVCOMP_SONAME, "", ""); /* the loader's search */
}

/* The file this code was loaded from (the shared library, the Python
 * extension or the executable), for the search beside it. */
static const char *self_path(void)
{
    Dl_info info;
    if (dladdr((void *)&nf__nvcomp_candidates, &info) && info.dli_fname)
        return info.dli_fname;
    return NULL;
}

/* Load one candidate and check it: 0, or -1 with why. */
static int try_one(const char *path, struct nf_nvcomp *lib, char *why, size_t len)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        say(why, len, "%s", e ? e : "dlopen failed");
        return -1;
    }
    memset(lib, 0, sizeof(*lib));
#define NF_X_SYM(field, type, name)                                                   \
    if (!(lib->field = (type)dlsym(h, name))) {                                      \
        say(why, len, "%s: no symbol %s (not nvCOMP %d?)", path, name,                \
                 NF_NVCOMP_ABI_MAJOR);                                                \
        dlclose(h);                                                                   \
        return -1;                                                                    \
    }
    NF_NVCOMP_SYMBOLS(NF_X_SYM)
#undef NF_X_SYM
    struct nf_nvcomp_properties pr = {0, 0};
    if (lib->get_properties(&pr) != 0 || pr.version / 1000 != NF_NVCOMP_ABI_MAJOR) {
        say(why, len, "%s is nvCOMP %u.%u.%u; this build calls the ABI of nvCOMP %d", path,
                 pr.version / 1000, pr.version % 1000 / 100, pr.version % 100,
                 NF_NVCOMP_ABI_MAJOR);
        dlclose(h);
        return -1;
    }
    lib->handle = h;
    lib->version = pr.version;
    lib->cudart_version = pr.cudart_version;
    /* what dlopen resolved, for messages (a bare SONAME found on the
     * loader's path says where it came from) */
    Dl_info info;
    const char *real = dladdr((void *)lib->get_properties, &info) && info.dli_fname
                           ? info.dli_fname : path;
    say(lib->path, sizeof(lib->path), "%s", real);
    return 0;
}

int nf__nvcomp_open(const char *env, const char *self, struct nf_nvcomp *lib)
{
    static char cand[16][NF_NVCOMP_PATH];
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    char tried[1024] = "", why[NF_NVCOMP_PATH + 160];
    pthread_mutex_lock(&mu); /* the candidate table is static: large for a stack */
    int n = nf__nvcomp_candidates(env, self, cand, (int)NF_ARRAY_SIZE(cand));
    for (int i = 0; i < n; i++) {
        if (try_one(cand[i], lib, why, sizeof(why)) == 0) {
            pthread_mutex_unlock(&mu);
            return 0;
        }
        nf__note(tried, sizeof(tried), "%s", why);
    }
    pthread_mutex_unlock(&mu);
    return nf__error(NUMAFEED_ENVCOMP, "nvCOMP %d not found%s%s (install the wheel "
                     "nvidia-libnvcomp-cu13, pip install numafeed[gpu], or set %s to "
                     "its %s): %s", NF_NVCOMP_ABI_MAJOR, env && *env ? " at $" : "",
                     env && *env ? NF_NVCOMP_ENV : "", NF_NVCOMP_ENV, NF_NVCOMP_SONAME,
                     tried[0] ? tried : "no place to look");
}

void nf__nvcomp_close(struct nf_nvcomp *lib)
{
    if (lib && lib->handle)
        dlclose(lib->handle);
    if (lib)
        memset(lib, 0, sizeof(*lib));
}

/* ---- the process's nvCOMP ----------------------------------------------- */

static struct nf_nvcomp proc_lib;
static int proc_rc;
static char proc_msg[1024];
static pthread_once_t proc_once = PTHREAD_ONCE_INIT;

static void load_once(void)
{
    proc_rc = nf__nvcomp_open(getenv(NF_NVCOMP_ENV), self_path(), &proc_lib);
    say(proc_msg, sizeof(proc_msg), "%s", proc_rc ? numafeed_last_error() : "");
}

int nf__nvcomp_load(void)
{
    pthread_once(&proc_once, load_once);
    if (proc_rc)
        return nf__error(proc_rc, "%s", proc_msg);
    return 0;
}

const struct nf_nvcomp *nf__nvcomp(void)
{
    return nf__nvcomp_load() ? NULL : &proc_lib;
}

void nf__nvcomp_describe(const struct nf_nvcomp *lib, char *buf, size_t len)
{
    snprintf(buf, len, "nvCOMP %u.%u.%u (CUDA runtime %u) from %s", lib->version / 1000,
             lib->version % 1000 / 100, lib->version % 100, lib->cudart_version, lib->path);
}

/* nvCOMP's own words for a status. */
static int fail(const struct nf_nvcomp *lib, nf_nvcomp_status s, const char *call)
{
    return nf__error(NUMAFEED_ECUDA, "%s: %s (nvCOMP status %d)", call,
                     nf__nvcomp_status_string(lib, s), s);
}

int nf__nvcomp_zstd_alignments(const struct nf_nvcomp *lib, struct nf_nvcomp_alignments *out)
{
    struct nf_nvcomp_zstd_opts o;
    memset(&o, 0, sizeof(o));
    nf_nvcomp_status s = lib->zstd_alignments(o, out);
    return s ? fail(lib, s, "nvcompBatchedZstdDecompressGetRequiredAlignments") : 0;
}

int nf__nvcomp_zstd_temp(const struct nf_nvcomp *lib, size_t chunks, size_t max_chunk,
                         size_t max_total, size_t *temp)
{
    struct nf_nvcomp_zstd_opts o;
    memset(&o, 0, sizeof(o));
    nf_nvcomp_status s = lib->zstd_temp(chunks, max_chunk, o, temp, max_total, NULL);
    return s ? fail(lib, s, "nvcompBatchedZstdDecompressGetTempSize") : 0;
}

int nf__nvcomp_zstd_decompress(const struct nf_nvcomp *lib, const struct nf_nvcomp_batch *b,
                               void *stream)
{
    struct nf_nvcomp_zstd_opts o;
    memset(&o, 0, sizeof(o));
    nf_nvcomp_status s = lib->zstd_decompress(b->in_ptrs, b->in_bytes, b->out_bytes, b->actual,
                                              b->n, b->temp, b->temp_bytes, b->out_ptrs, o,
                                              b->statuses, stream);
    return s ? fail(lib, s, "nvcompBatchedZstdDecompressAsync") : 0;
}

const char *nf__nvcomp_status_string(const struct nf_nvcomp *lib, int status)
{
    const char *s = lib->status_string((nf_nvcomp_status)status);
    return s ? s : "unknown status";
}
