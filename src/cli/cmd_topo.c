// SPDX-License-Identifier: Apache-2.0
/* numafeed topo: the GPU -> NUMA node -> CPU map, as the loader will use it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void help(void)
{
    printf(
        "Usage: numafeed topo [--json] [--sysfs-root DIR] [--allowed-cpus LIST]\n"
        "\n"
        "Show the machine's NUMA nodes, its NVIDIA GPUs in CUDA ordinal order, the\n"
        "node each GPU hangs off and the CPUs a numafeed pool for that GPU would run\n"
        "on (the node's CPUs intersected with the CPUs this process may use).\n"
        "\n"
        "GPUs come from sysfs PCI devices with vendor 0x10de and class 0x0300xx or\n"
        "0x0302xx. Ordinals follow CUDA: the CUDA runtime's answer when it is\n"
        "compiled in and a driver answers (only with the real /sys), otherwise\n"
        "CUDA_VISIBLE_DEVICES applied over PCI bus id order. A GPU whose sysfs\n"
        "numa_node is -1 or missing is shown as 'unknown' and its pool would use\n"
        "the lowest online node.\n"
        "\n"
        "Options:\n"
        "  --json              print one JSON object:\n"
        "                      {\"nodes\":[{\"id\":N,\"cpus\":[...]}],\n"
        "                       \"gpus\":[{\"index\":I,\"pci_bus_id\":\"dddd:bb:dd.f\",\n"
        "                               \"numa_node\":N,\"numa_node_raw\":R,\"cpus\":[...]}],\n"
        "                       \"allowed_cpus\":[...]}\n"
        "                      numa_node_raw is what sysfs said (-1: unknown or missing);\n"
        "                      a GPU's cpus are its resolved node's CPUs.\n"
        "  --sysfs-root DIR    read DIR instead of /sys (default: $NUMAFEED_SYSFS_ROOT,\n"
        "                      else /sys). The CUDA runtime is not asked then.\n"
        "  --allowed-cpus LIST use this cpulist as the allowed CPUs instead of this\n"
        "                      process's affinity (to preview a taskset or cpuset).\n"
        "  -h, --help          show this help.\n"
        "\n"
        "Warnings (unknown nodes, CPU-less nodes, a CUDA_VISIBLE_DEVICES list cut\n"
        "short) go to stderr. Exit status: 0 success, 1 the topology could not be\n"
        "read (the message names the file), 2 usage error.\n");
}

/* "0-3,8" or "-" for an empty set, into a fixed buffer with "..." if cut. */
static const char *shorten(char *buf, size_t size, int n)
{
    if (n < 0)
        return "?";
    if (n == 0)
        return "-";
    if ((size_t)n >= size && size > 4)
        memcpy(buf + size - 4, "...", 4);
    return buf;
}

static void print_table(const numafeed_topo *t)
{
    char cpus[256], pool[256];
    int ngpu = numafeed_topo_gpu_count(t);
    if (ngpu == 0) {
        printf("No NVIDIA GPU visible.\n");
    } else {
        printf("%-5s %-14s %-14s %-24s %s\n", "GPU", "PCI bus id", "NUMA Affinity",
               "CPU Affinity", "Pool CPUs (node & allowed)");
        for (int i = 0; i < ngpu; i++) {
            struct numafeed_gpu_info g;
            numafeed_topo_gpu(t, i, &g);
            char node[32];
            if (g.node_known)
                snprintf(node, sizeof(node), "%d", g.numa_node);
            else
                snprintf(node, sizeof(node), "%d (unknown)", g.numa_node);
            int n = numafeed_topo_gpu_cpus(t, i, cpus, sizeof(cpus));
            int fb = 0;
            int m = numafeed_topo_pool_cpus(t, i, pool, sizeof(pool), &fb);
            printf("GPU%-2d %-14s %-14s %-24s %s%s\n", i, g.pci_bus_id, node,
                   shorten(cpus, sizeof(cpus), n), shorten(pool, sizeof(pool), m),
                   fb ? "  (no allowed CPU on the node: all allowed)" : "");
        }
    }
    printf("\n%-6s %s\n", "Node", "CPUs");
    for (int i = 0; i < numafeed_topo_node_count(t); i++) {
        int id = numafeed_topo_node_id(t, i);
        int n = numafeed_topo_node_cpus(t, id, cpus, sizeof(cpus));
        printf("%-6d %s%s\n", id, shorten(cpus, sizeof(cpus), n), n == 0 ? " (no CPUs)" : "");
    }
    int n = numafeed_topo_allowed_cpus(t, cpus, sizeof(cpus));
    printf("\nAllowed CPUs (this process): %s\n", shorten(cpus, sizeof(cpus), n));
}

int cmd_topo(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"sysfs-root", required_argument, NULL, 'r'},
        {"allowed-cpus", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct numafeed_topo_options o;
    numafeed_topo_options_init(&o);
    int json = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'r': o.sysfs_root = optarg; break;
        case 'a': o.allowed_cpus = optarg; break;
        case 'h': help(); return CLI_EXIT_OK;
        default:
            return cli_usage("topo", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage("topo", "unexpected argument '%s'", argv[optind]);
    numafeed_topo *t;
    int rc = numafeed_topo_open(&o, &t);
    if (rc)
        return cli_fail("topo", "reading the topology", rc);
    /* one "warning:" line per finding, so scripts can grep them */
    for (const char *w = numafeed_topo_warnings(t); *w;) {
        const char *nl = strchr(w, '\n');
        int len = nl ? (int)(nl - w) : (int)strlen(w);
        fprintf(stderr, "numafeed topo: warning: %.*s\n", len, w);
        w += len + (nl != NULL);
    }
    if (json) {
        char *s;
        rc = numafeed_topo_json(t, &s);
        if (rc) {
            numafeed_topo_close(t);
            return cli_fail("topo", "encoding JSON", rc);
        }
        printf("%s\n", s);
        free(s);
    } else {
        print_table(t);
    }
    numafeed_topo_close(t);
    return CLI_EXIT_OK;
}
