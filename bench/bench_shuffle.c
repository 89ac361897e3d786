// SPDX-License-Identifier: Apache-2.0
/*
 * Shuffle quality: how many distinct blocks a batch draws on, with the
 * default shuffle window and larger ones, against uniform sampling of the
 * same dataset (the expectation for a batch of B records drawn without
 * replacement from all R: the sum over blocks of 1 - C(R - n, B) / C(R, B),
 * n the block's records). A batch drawing on few blocks carries correlated
 * records (a document's neighbours, one class's images packed together).
 * The window's cost is per worker: about 40 bytes of tables per record, and
 * for whole-window units the window's decoded blocks.
 *
 *   bench_shuffle DIR [--batch B] [--epochs E] [--windows W1,W2,...]
 *
 * One line per window (W 0: the loader's default, "default" in the output):
 *   window=W (N records) distinct_mean=D distinct_p10=P uniform=U ratio=D/U
 *   records=R blocks=K batch=B tables_kib_per_worker=T
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numafeed.h"

static void die(const char *what)
{
    fprintf(stderr, "bench_shuffle: %s: %s\n", what, numafeed_last_error());
    exit(1);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Expected distinct blocks of a uniform batch of B records, from the
 * blocks' record counts: log-space for the binomial ratio. */
static double uniform_distinct(const uint32_t *n, uint32_t nb, uint64_t R, uint64_t B)
{
    double sum = 0;
    for (uint32_t g = 0; g < nb; g++) {
        /* C(R - n, B) / C(R, B) = prod_{i<n} (R - B - i) / (R - i) */
        double lp = 0;
        for (uint32_t i = 0; i < n[g] && lp > -50; i++) {
            double num = (double)R - (double)B - i;
            lp += num <= 0 ? -1e9 : log(num) - log((double)R - i);
        }
        sum += 1 - exp(lp);
    }
    return sum;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_shuffle DIR [--batch B] [--epochs E] [--windows W,...]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc % 2)
        return usage();
    const char *dir = argv[1], *windows = "0,1024,4096,16384,65536";
    uint32_t B = 64, epochs = 2;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--batch"))
            B = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--epochs"))
            epochs = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--windows"))
            windows = argv[i + 1];
        else
            return usage();
    }
    if (!B || !epochs)
        return usage();
    numafeed_dataset *ds;
    if (numafeed_dataset_open(dir, &ds))
        die(dir);
    uint64_t R = numafeed_dataset_records(ds);
    uint32_t nb = numafeed_dataset_blocks(ds);
    uint32_t *nrec = malloc(nb * sizeof(*nrec)), *block_of = malloc(R * sizeof(*block_of));
    for (uint32_t g = 0; g < nb; g++) {
        struct numafeed_block_info bi = {.size = sizeof(bi)};
        numafeed_dataset_block(ds, g, &bi);
        nrec[g] = bi.records;
        for (uint32_t k = 0; k < bi.records; k++)
            block_of[bi.first_record + k] = g; /* first_record is global here */
    }
    numafeed_dataset_close(ds);
    double uni = uniform_distinct(nrec, nb, R, B);
    char *list = strdup(windows);
    uint32_t *seen = malloc(B * sizeof(*seen));
    for (char *t = strtok(list, ","); t; t = strtok(NULL, ",")) {
        struct loader_config c;
        loader_config_init(&c);
        c.path = dir;
        c.batch_size = B;
        c.world_size = 1;
        c.device = LOADER_DEVICE_CPU;
        c.shuffle_window = strtoull(t, NULL, 10);
        c.epochs = epochs; /* nothing past the last epoch is read */
        loader_t *L;
        if (loader_create(&c, &L))
            die("loader_create");
        double sum = 0;
        size_t nbatch = 0, cap = 1024;
        double *d = malloc(cap * sizeof(*d));
        struct loader_batch b = LOADER_BATCH_INIT;
        for (uint32_t e = 0; e < epochs; e++) {
            int rc;
            while ((rc = loader_next(L, 0, &b, -1)) == 0) {
                for (uint32_t i = 0; i < b.records; i++)
                    seen[i] = block_of[b.record_ids[i]];
                qsort(seen, b.records, sizeof(*seen), cmp_u32);
                uint32_t distinct = b.records > 0;
                for (uint32_t i = 1; i < b.records; i++)
                    distinct += seen[i] != seen[i - 1];
                if (b.records == B) { /* a short last batch says less */
                    if (nbatch == cap)
                        d = realloc(d, (cap *= 2) * sizeof(*d));
                    d[nbatch++] = distinct;
                    sum += distinct;
                }
                loader_release(L, &b);
            }
            if (rc != NUMAFEED_EEPOCH_END) {
                char msg[1024];
                loader_last_error(L, msg, sizeof(msg));
                fprintf(stderr, "bench_shuffle: loader_next: %s\n", msg);
                return 1;
            }
        }
        if (!nbatch) {
            fprintf(stderr, "bench_shuffle: window %s: no batch of %u records\n", t, B);
            return 1;
        }
        qsort(d, nbatch, sizeof(*d), cmp_double);
        /* the default: 16 blocks' worth of records, at most 65536 (pool.c) */
        uint64_t avg = R / nb ? R / nb : 1, w = c.shuffle_window;
        if (!w)
            w = 16 * avg < 65536 ? 16 * avg : 65536;
        printf("window=%s (%llu records) distinct_mean=%.2f distinct_p10=%.0f uniform=%.2f ratio=%.3f "
               "records=%llu blocks=%u batch=%u tables_kib_per_worker=%.0f\n",
               c.shuffle_window ? t : "default", (unsigned long long)w, sum / (double)nbatch,
               d[nbatch / 10], uni, sum / (double)nbatch / uni,
               (unsigned long long)R, nb, B, (double)w * 40 / 1024);
        free(d);
        loader_destroy(L);
    }
    free(list);
    free(seen);
    free(nrec);
    free(block_of);
    return 0;
}
