// SPDX-License-Identifier: Apache-2.0
/* numafeed exec: bind this process's CPUs and memory to its GPU's node, then
 * exec the command. The plan comes from the library's topology; the binding
 * is sched_setaffinity + set_mempolicy, which the exec'd program inherits. */
#include <errno.h>
#include <getopt.h>
#include <numaif.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void help(void)
{
    printf(
        "Usage: numafeed exec [--gpus N | --local-rank auto] [--membind | --preferred]\n"
        "                     [--dry-run] [--sysfs-root DIR] -- CMD [ARGS...]\n"
        "\n"
        "Bind this process's CPUs and memory to the NUMA node of its GPU and exec CMD,\n"
        "which inherits the binding: the CPUs become the node's CPUs intersected with\n"
        "the CPUs this process may already use (a Slurm or Kubernetes cpuset is\n"
        "narrowed, never widened), and the memory policy binds (or prefers) the node.\n"
        "\n"
        "The GPU is --gpus N (one CUDA ordinal, after CUDA_VISIBLE_DEVICES), or with\n"
        "--local-rank auto (the default) the first of LOCAL_RANK (torchrun),\n"
        "OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID that is set: the innermost\n"
        "launcher's, when one runs inside another's allocation (srun torchrun).\n"
        "Every one that is set must be a number, as must the ranks and world sizes\n"
        "the loader reads (RANK and WORLD_SIZE, OMPI_COMM_WORLD_RANK and\n"
        "OMPI_COMM_WORLD_SIZE, SLURM_PROCID and SLURM_NTASKS, in that order).\n"
        "A GPU whose node is unknown\n"
        "(sysfs numa_node -1) is launched unbound, with a warning, rather than bound\n"
        "to a guess.\n"
        "\n"
        "Options:\n"
        "  --gpus N           bind for CUDA ordinal N (exec binds one GPU).\n"
        "  --local-rank auto  take the ordinal from the launcher's environment.\n"
        "  --membind          memory policy MPOL_BIND to the node (default): allocations\n"
        "                     fail rather than leave it.\n"
        "  --preferred        MPOL_PREFERRED: the node first, others when it is full.\n"
        "  --dry-run          print the plan and exit without binding or running.\n"
        "  --sysfs-root DIR   topology from DIR instead of /sys.\n"
        "  -h, --help         show this help.\n"
        "\n"
        "Deprecated spelling, accepted for one more release:\n"
        "  --gpu N            the same as --gpus N.\n"
        "\n"
        "Exit status: CMD's own when it runs (exec replaces this process); 1 when the\n"
        "binding or the exec fails; 2 usage error, or an inconsistent environment.\n"
        "\n"
        "Example (torch 1.x spells them --nproc_per_node and --no_python):\n"
        "  torchrun --nproc-per-node 8 --no-python numafeed exec -- python3 train.py\n");
}

/* The GPU from the launcher's environment (numafeed_launch_env): an
 * inconsistent environment is a usage error, like a bad --gpus. */
static int local_rank(int *out)
{
    struct numafeed_launch l;
    numafeed_launch_init(&l);
    if (numafeed_launch_env(&l))
        return cli_usage("exec", "%s", numafeed_last_error());
    if (l.local_rank < 0)
        return cli_usage("exec", "no GPU: give --gpus N, or run under a launcher that sets "
                              "LOCAL_RANK, OMPI_COMM_WORLD_LOCAL_RANK or SLURM_LOCALID");
    *out = l.local_rank;
    return CLI_EXIT_OK;
}

/* --gpus for exec: one ordinal; -2 for a list of several, -1 for garbage. */
static int one_gpu(const char *arg)
{
    int ids[2];
    int n = numafeed_cpulist_ids(arg, ids, 2);
    if (n > 1)
        return -2;
    return n == 1 ? ids[0] : -1;
}

int cmd_exec(int argc, char **argv)
{
    enum { O_GPUS = 256, O_GPU, O_LR, O_MEMBIND, O_PREF, O_DRY, O_SYSFS };
    static const struct option opts[] = {
        {"gpus", required_argument, NULL, O_GPUS},
        {"gpu", required_argument, NULL, O_GPU},
        {"local-rank", required_argument, NULL, O_LR},
        {"membind", no_argument, NULL, O_MEMBIND},
        {"preferred", no_argument, NULL, O_PREF},
        {"dry-run", no_argument, NULL, O_DRY},
        {"sysfs-root", required_argument, NULL, O_SYSFS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int gpu = -1, preferred = 0, dry = 0, c;
    const char *sysfs = NULL;
    opterr = 0;
    optind = 1;
    /* '+': stop at the first non-option, the command */
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case O_GPU:
            fprintf(stderr, "numafeed exec: --gpu is deprecated; use --gpus\n");
            /* fall through */
        case O_GPUS:
            if ((gpu = one_gpu(optarg)) < 0)
                return gpu == -2 ? cli_usage("exec", "--gpus '%s': exec binds one GPU: give "
                                             "one CUDA ordinal", optarg)
                                 : cli_usage("exec", "--gpus: invalid value '%s'", optarg);
            break;
        case O_LR:
            if (strcmp(optarg, "auto"))
                return cli_usage("exec", "--local-rank takes 'auto'");
            gpu = -1;
            break;
        case O_MEMBIND: preferred = 0; break;
        case O_PREF: preferred = 1; break;
        case O_DRY: dry = 1; break;
        case O_SYSFS: sysfs = optarg; break;
        case 'h': help(); return CLI_EXIT_OK;
        default:
            return cli_usage("exec", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cli_usage("exec", "missing the command to run (after --)");
    if (gpu < 0) {
        int rc = local_rank(&gpu);
        if (rc)
            return rc;
    }
    struct numafeed_topo_options o;
    numafeed_topo_options_init(&o);
    o.sysfs_root = sysfs;
    numafeed_topo *t;
    int rc = numafeed_topo_open(&o, &t);
    if (rc)
        return cli_fail("exec", "reading the topology", rc);
    if (gpu >= numafeed_topo_gpu_count(t)) {
        int n = numafeed_topo_gpu_count(t);
        numafeed_topo_close(t);
        return cli_usage("exec", "GPU %d is not visible (%d visible after "
                              "CUDA_VISIBLE_DEVICES)", gpu, n);
    }
    struct numafeed_gpu_info g;
    numafeed_topo_gpu(t, gpu, &g);
    char cpus[4096];
    int fallback = 0;
    numafeed_topo_pool_cpus(t, gpu, cpus, sizeof(cpus), &fallback);
    numafeed_topo_close(t);
    int bind = g.node_known && !fallback;
    /* one write per line: ranks launched together share stderr */
    if (bind)
        fprintf(stderr, "numafeed exec: GPU %d (%s) node %d: CPUs %s, memory %s node %d\n", gpu,
                g.pci_bus_id, g.numa_node, cpus, preferred ? "preferred on" : "bound to",
                g.numa_node);
    else
        fprintf(stderr, "numafeed exec: GPU %d (%s) node %d%s: %s; launching unbound\n", gpu,
                g.pci_bus_id, g.numa_node, g.node_known ? "" : " (unknown)",
                !g.node_known ? "warning: sysfs gives no node for this GPU"
                              : "warning: no CPU this process may use is on that node");
    if (dry) {
        printf("gpu %d pci_bus_id %s node %d%s cpus %s memory %s\n", gpu, g.pci_bus_id,
               g.numa_node, g.node_known ? "" : " unknown", bind ? cpus : "unchanged",
               bind ? (preferred ? "preferred" : "membind") : "unchanged");
        for (int i = optind; i < argc; i++)
            printf("%s%s", i > optind ? " " : "exec ", argv[i]);
        printf("\n");
        return CLI_EXIT_OK;
    }
    if (bind) {
        static int ids[65536];
        int n = numafeed_cpulist_ids(cpus, ids, 65536);
        cpu_set_t *m = CPU_ALLOC(65536);
        size_t sz = CPU_ALLOC_SIZE(65536);
        CPU_ZERO_S(sz, m);
        for (int i = 0; i < n && i < 65536; i++)
            CPU_SET_S((size_t)ids[i], sz, m);
        if (sched_setaffinity(0, sz, m)) {
            fprintf(stderr, "numafeed exec: sched_setaffinity: %s\n", strerror(errno));
            CPU_FREE(m);
            return CLI_EXIT_FAIL;
        }
        CPU_FREE(m);
        unsigned long mask[1024] = {0};
        const unsigned bpw = 8 * sizeof(unsigned long);
        mask[(unsigned)g.numa_node / bpw] |= 1UL << ((unsigned)g.numa_node % bpw);
        if (set_mempolicy(preferred ? MPOL_PREFERRED : MPOL_BIND, mask,
                          ((unsigned long)g.numa_node / bpw + 1) * bpw + 1)) {
            /* EPERM under a container's seccomp profile: CPUs are bound, and
             * first touch by threads on those CPUs keeps memory local */
            fprintf(stderr, "numafeed exec: warning: set_mempolicy: %s; memory follows first "
                    "touch\n", strerror(errno));
        }
    }
    execvp(argv[optind], &argv[optind]);
    fprintf(stderr, "numafeed exec: %s: %s\n", argv[optind], strerror(errno));
    return CLI_EXIT_FAIL;
}
