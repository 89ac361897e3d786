// SPDX-License-Identifier: Apache-2.0
/*
 * Read a dataset (made by `numafeed pack`) in shuffled batches for a few
 * epochs: on each GPU's pool where there is a GPU, in host memory where
 * there is none. Prints each epoch's record count and the first batch's
 * fields.
 *
 *   read_batches DIR [EPOCHS [BATCH]]
 */
#include <stdio.h>
#include <stdlib.h>

#include <numafeed.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [EPOCHS [BATCH]]\n", argv[0]);
        return 2;
    }
    struct loader_config cfg;
    loader_config_init(&cfg);           /* every default: see numafeed.h */
    cfg.path = argv[1];
    cfg.epochs = argc > 2 ? strtoull(argv[2], NULL, 10) : 2;
    cfg.batch_size = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 64;
    loader_t *loader;
    int rc = loader_create(&cfg, &loader);
    if (rc) {
        fprintf(stderr, "loader_create: %s (%s)\n", numafeed_last_error(), numafeed_err_name(rc));
        return 1;
    }
    for (uint64_t epoch = 0; epoch < cfg.epochs; epoch++) {
        uint64_t records = 0;
        struct loader_batch b = LOADER_BATCH_INIT;
        while ((rc = loader_next(loader, 0, &b, -1)) == 0) { /* pool 0: GPU 0, or the host */
            if (epoch == 0 && b.index == 0)
                for (unsigned f = 0; f < b.nfields; f++)
                    printf("field %s: %s, %llu bytes in this batch, %s\n", b.fields[f].name,
                           b.fields[f].dtype, (unsigned long long)b.fields[f].values_bytes,
                           b.fields[f].device ? "on the GPU" : "in host memory");
            records += b.records;        /* b.fields[f].host / .device: [records, shape...] */
            loader_release(loader, &b);  /* the slot goes back to the pool */
        }
        if (rc != NUMAFEED_EEPOCH_END) {
            char msg[512];
            loader_last_error(loader, msg, sizeof(msg)); /* names the shard and offset */
            fprintf(stderr, "loader_next: %s (%s)\n", msg, numafeed_err_name(rc));
            loader_destroy(loader);
            return 1;
        }
        printf("epoch %llu: %llu records\n", (unsigned long long)epoch,
               (unsigned long long)records);
    }
    loader_destroy(loader);
    return 0;
}
