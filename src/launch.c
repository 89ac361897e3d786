// SPDX-License-Identifier: Apache-2.0
/*
 * The launcher's environment, read in one place for the CLI, the loader and
 * Python alike: which GPU of this host a process is for (its local rank)
 * and which part of the data it reads (rank of world size). torchrun, Slurm
 * and Open MPI each spell these their own way. When several are set, one
 * launcher runs inside another's allocation (`srun torchrun`, `mpirun` in
 * an sbatch script), and the innermost one, the one that started this
 * process, is the one that knows: torchrun's, then Open MPI's, then
 * Slurm's. Their values differ legitimately there (SLURM_LOCALID=0 on
 * every torchrun child), so they are not compared; which variable was
 * used is reported. Every variable that is set must still be a number.
 * Knows nothing of NUMA, shards or GPUs.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The largest local rank accepted: far above any host's GPU count, low
 * enough that a stray number is caught. */
#define LOCAL_RANK_MAX 4096

/* innermost launcher first */
static const char *const local_rank_vars[] = {
    "LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID",
};

static const struct {
    const char *rank, *world_size;
} part_vars[] = {
    {"RANK", "WORLD_SIZE"},
    {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
    {"SLURM_PROCID", "SLURM_NTASKS"},
};

/* One kind of value and the variable that gave it. */
struct found {
    long value;
    const char *from; /* NULL until a variable is seen */
};

void numafeed_launch_init(struct numafeed_launch *l)
{
    memset(l, 0, sizeof(*l));
    l->size = sizeof(*l);
    l->local_rank = -1;
    l->rank = -1;
}

/* 1 with *out when name is set to a plain decimal number <= max; 0 when
 * unset; NUMAFEED_ECONFIG naming the variable otherwise. */
static int env_number(const char *name, long max, long *out)
{
    const char *v = getenv(name);
    if (!v)
        return 0;
    long n = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return nf__error(NUMAFEED_ECONFIG, "%s=\"%s\": expected a decimal number", name, v);
        if (n > (max - (*p - '0')) / 10)
            return nf__error(NUMAFEED_ECONFIG, "%s=\"%s\": larger than %ld", name, v, max);
        n = n * 10 + (*p - '0');
    }
    if (!*v)
        return nf__error(NUMAFEED_ECONFIG, "%s is set but empty", name);
    *out = n;
    return 1;
}

/* The first variable set (innermost launcher) gives the value. */
static void keep_first(struct found *f, const char *name, long v)
{
    if (!f->from)
        *f = (struct found){v, name};
}

static int read_local_rank(struct found *local)
{
    for (size_t i = 0; i < NF_ARRAY_SIZE(local_rank_vars); i++) {
        long v;
        int rc = env_number(local_rank_vars[i], LOCAL_RANK_MAX, &v);
        if (rc < 0)
            return rc;
        if (rc)
            keep_first(local, local_rank_vars[i], v);
    }
    return 0;
}

static int read_part(struct found *rank, struct found *world)
{
    for (size_t i = 0; i < NF_ARRAY_SIZE(part_vars); i++) {
        const char *rn = part_vars[i].rank, *wn = part_vars[i].world_size;
        long r = 0, w = 0;
        int has_r = env_number(rn, INT_MAX - 1, &r), has_w;
        if (has_r < 0)
            return has_r;
        if ((has_w = env_number(wn, INT_MAX, &w)) < 0)
            return has_w;
        if (has_r != has_w)
            return nf__error(NUMAFEED_ECONFIG, "%s=%s is set but %s is not: a rank and its "
                             "world size come together", has_r ? rn : wn,
                             getenv(has_r ? rn : wn), has_r ? wn : rn);
        if (!has_r)
            continue;
        if (w < 1)
            return nf__error(NUMAFEED_ECONFIG, "%s=%ld: a world size is at least 1", wn, w);
        if (r >= w)
            return nf__error(NUMAFEED_ECONFIG, "%s=%ld is not below %s=%ld", rn, r, wn, w);
        keep_first(rank, rn, r);
        keep_first(world, wn, w);
    }
    return 0;
}

static void set_from(char *dst, size_t len, const char *name)
{
    snprintf(dst, len, "%s", name ? name : "");
}

int numafeed_launch_env(struct numafeed_launch *out)
{
    struct found local = {0}, rank = {0}, world = {0};
    struct numafeed_launch l;
    numafeed_launch_init(&l);
    int rc = read_local_rank(&local);
    if (rc || (rc = read_part(&rank, &world)))
        return rc;
    if (local.from)
        l.local_rank = (int)local.value;
    if (rank.from) {
        l.rank = (int)rank.value;
        l.world_size = (int)world.value;
    }
    set_from(l.local_rank_from, sizeof(l.local_rank_from), local.from);
    set_from(l.rank_from, sizeof(l.rank_from), rank.from);
    set_from(l.world_size_from, sizeof(l.world_size_from), world.from);
    return nf__copy_out(out, &l, sizeof(l), "numafeed_launch");
}
