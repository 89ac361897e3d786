// SPDX-License-Identifier: Apache-2.0
/* numafeed verify PID: where a process's threads and pages really are,
 * from /proc, against where numafeed's pools should be. */
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void help(void)
{
    printf(
        "Usage: numafeed verify PID [--gpu G] [--json] [--sysfs-root DIR] [--proc-root DIR]\n"
        "\n"
        "Show, from the kernel's own accounts (/proc/PID/task/*/status and stat,\n"
        "/proc/PID/numa_maps), each thread's allowed CPUs and the CPU it last ran on,\n"
        "and the process's resident memory per NUMA node; flag what is off its node:\n"
        "  - numafeed pool threads (named numafeed-g<GPU>-<n>) whose allowed CPUs or\n"
        "    last CPU are outside that GPU's pool CPUs (node CPUs & allowed CPUs);\n"
        "  - with --gpu G, every thread outside G's pool CPUs and every byte of memory\n"
        "    on another node than G's (as after 'numafeed exec --gpu G').\n"
        "\n"
        "Options:\n"
        "  --gpu G             expect the whole process on GPU G's node (CUDA ordinal).\n"
        "  --json              print the report as JSON (see numafeed_verify in\n"
        "                      numafeed.h).\n"
        "  --sysfs-root DIR    topology from DIR instead of /sys.\n"
        "  --proc-root DIR     read DIR instead of /proc.\n"
        "  -h, --help          show this help.\n"
        "\n"
        "Exit status: 0 everything where it should be, 1 something off its node (or\n"
        "the process or topology could not be read), 2 usage error.\n"
        "\n"
        "Example:\n"
        "  numafeed verify $(pgrep -f train.py) --gpu 0\n");
}

int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"gpu", required_argument, NULL, 'g'},
        {"json", no_argument, NULL, 'j'},
        {"sysfs-root", required_argument, NULL, 'r'},
        {"proc-root", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct numafeed_doctor_options o;
    numafeed_doctor_options_init(&o);
    int as_json = 0, gpu = -1, c;
    uint64_t num;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'g':
            if (cli_parse_u64(optarg, &num) || num > INT_MAX)
                return cli_usage("verify", "--gpu: invalid value '%s'", optarg);
            gpu = (int)num;
            break;
        case 'j': as_json = 1; break;
        case 'r': o.sysfs_root = optarg; break;
        case 'p': o.proc_root = optarg; break;
        case 'h': help(); return CLI_EXIT_OK;
        default:
            return cli_usage("verify", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc)
        return cli_usage("verify", "expected one PID");
    if (cli_parse_u64(argv[optind], &num) || num == 0 || num > INT_MAX)
        return cli_usage("verify", "'%s' is not a process id", argv[optind]);
    int pid = (int)num;
    char *doc;
    int problems = 0;
    int rc = numafeed_verify(pid, gpu, &o, &doc, &problems);
    if (rc)
        return cli_fail("verify", argv[optind], rc);
    if (as_json) {
        printf("%s\n", doc);
    } else {
        json_t *root = json_loads(doc, 0, NULL), *th;
        size_t i;
        printf("%-8s %-16s %-14s %-8s %s\n", "TID", "NAME", "ALLOWED CPUS", "LAST CPU",
               "EXPECTED");
        json_array_foreach(json_object_get(root, "threads"), i, th) {
            const char *exp = json_string_value(json_object_get(th, "expected_cpus"));
            printf("%-8s %-16s %-14s %-8lld %s%s\n",
                   json_string_value(json_object_get(th, "tid")),
                   json_string_value(json_object_get(th, "name")),
                   json_string_value(json_object_get(th, "cpus")),
                   (long long)json_integer_value(json_object_get(th, "last_cpu")),
                   exp && *exp ? exp : "-",
                   json_is_true(json_object_get(th, "ok")) ? "" : "   <-- OFF ITS NODE");
        }
        printf("\nResident memory per node:");
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(root, "node_bytes"), k, v)
            printf("  node %s %.1f MiB", k, (double)json_integer_value(v) / 1048576.0);
        printf("\n");
        if (gpu >= 0)
            printf("Expected node %lld: %.1f MiB elsewhere\n",
                   (long long)json_integer_value(json_object_get(root, "expected_node")),
                   (double)json_integer_value(json_object_get(root, "off_node_bytes")) / 1048576.0);
        printf("%d problem%s.\n", problems, problems == 1 ? "" : "s");
        json_decref(root);
    }
    free(doc);
    return problems ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
