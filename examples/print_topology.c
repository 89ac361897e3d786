// SPDX-License-Identifier: Apache-2.0
/*
 * The smallest numafeed program: which node and CPUs would feed each GPU.
 * Build against an installed numafeed with either
 *   cmake -S examples -B build-ex -DCMAKE_PREFIX_PATH=/usr/local   (find_package)
 *   cc print_topology.c $(pkg-config --cflags --libs numafeed)
 */
#include <stdio.h>

#include <numafeed.h>

int main(void)
{
    numafeed_topo *topo;
    int rc = numafeed_topo_open(NULL, &topo); /* /sys, this process's CPUs */
    if (rc) {
        fprintf(stderr, "numafeed_topo_open: %s: %s\n", numafeed_strerror(rc),
                numafeed_last_error());
        return 1;
    }
    printf("numafeed %s, %d node(s), %d GPU(s)\n", numafeed_version_string(),
           numafeed_topo_node_count(topo), numafeed_topo_gpu_count(topo));
    for (int i = 0; i < numafeed_topo_gpu_count(topo); i++) {
        struct numafeed_gpu_info g;
        char cpus[256];
        int fallback = 0;
        numafeed_topo_gpu(topo, i, &g);
        numafeed_topo_pool_cpus(topo, i, cpus, sizeof(cpus), &fallback);
        printf("GPU %d %s node %d%s pool CPUs %s%s\n", i, g.pci_bus_id, g.numa_node,
               g.node_known ? "" : " (unknown)", cpus, fallback ? " (not on its node)" : "");
    }
    numafeed_topo_close(topo);
    return 0;
}
