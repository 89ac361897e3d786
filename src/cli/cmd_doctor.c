// SPDX-License-Identifier: Apache-2.0
/* numafeed doctor: is this machine set up for numafeed? One line a finding,
 * each with what numafeed will do about it. The checks are the library's
 * (numafeed_doctor); this file only prints them. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void help(void)
{
    printf(
        "Usage: numafeed doctor [--json] [--sysfs-root DIR] [--proc-root DIR]\n"
        "                       [--allowed-cpus LIST]\n"
        "\n"
        "Check whether this machine and this process are set up for numafeed, one\n"
        "finding a line, each with what numafeed will do about it:\n"
        "  nodes            NUMA nodes and their CPUs\n"
        "  gpu N            each GPU's node; 'warn' when sysfs gives none (-1)\n"
        "  gpu N cpus       the CPUs its pool would use; 'warn' when this process's\n"
        "                   cpuset excludes the GPU's node\n"
        "  numa_balancing   'warn' when the kernel migrates pages on its own\n"
        "  memlock          RLIMIT_MEMLOCK; 'warn' below 8 MiB\n"
        "  thp              transparent huge pages; 'warn' when 'never'\n"
        "  hugepages node N free reserved 2 MiB pages\n"
        "  io_uring         whether a ring can be created (seccomp, io_uring_disabled)\n"
        "  mbind            whether binding memory to a node is permitted\n"
        "  cuda             the CUDA runtime, the driver and the devices\n"
        "  gpu decode       whether zstd blocks can be decoded on the GPU (nvCOMP 6,\n"
        "                   found through $NUMAFEED_NVCOMP, beside numafeed's Python\n"
        "                   package, or the loader's path) and why not\n"
        "\n"
        "Options:\n"
        "  --json              print {\"findings\":[{\"check\",\"status\",\"value\",\n"
        "                      \"detail\",\"action\"}],\"warnings\":N} instead.\n"
        "  --sysfs-root DIR    read DIR instead of /sys (default $NUMAFEED_SYSFS_ROOT).\n"
        "  --proc-root DIR     read DIR instead of /proc (default $NUMAFEED_PROC_ROOT).\n"
        "  --allowed-cpus LIST check against this cpulist instead of this process's\n"
        "                      affinity.\n"
        "  -h, --help          show this help.\n"
        "\n"
        "Exit status: 0 nothing would degrade the loader, 1 at least one 'warn' (or\n"
        "the topology could not be read), 2 usage error.\n");
}

int cmd_doctor(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"sysfs-root", required_argument, NULL, 'r'},
        {"proc-root", required_argument, NULL, 'p'},
        {"allowed-cpus", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct numafeed_doctor_options o;
    numafeed_doctor_options_init(&o);
    int as_json = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': as_json = 1; break;
        case 'r': o.sysfs_root = optarg; break;
        case 'p': o.proc_root = optarg; break;
        case 'a': o.allowed_cpus = optarg; break;
        case 'h': help(); return CLI_EXIT_OK;
        default:
            return cli_usage("doctor", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage("doctor", "unexpected argument '%s'", argv[optind]);
    char *doc;
    int warnings = 0;
    int rc = numafeed_doctor(&o, &doc, &warnings);
    if (rc)
        return cli_fail("doctor", "checking this machine", rc);
    if (as_json) {
        printf("%s\n", doc);
    } else {
        json_t *root = json_loads(doc, 0, NULL);
        json_t *f;
        size_t i;
        json_array_foreach(json_object_get(root, "findings"), i, f) {
            printf("%-4s  %-18s %s\n      %s\n      -> %s\n",
                   json_string_value(json_object_get(f, "status")),
                   json_string_value(json_object_get(f, "check")),
                   json_string_value(json_object_get(f, "value")),
                   json_string_value(json_object_get(f, "detail")),
                   json_string_value(json_object_get(f, "action")));
        }
        printf("\n%d finding%s would degrade the loader.\n", warnings, warnings == 1 ? "" : "s");
        json_decref(root);
    }
    free(doc);
    return warnings ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
