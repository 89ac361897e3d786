#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""numafeed on any machine, no GPU and no torch needed: pack documents of
different lengths with a label each, read them back in shuffled batches of
numpy arrays for two epochs, and check that every document arrived exactly
once per epoch.

    python3 examples/quickstart_cpu.py [DIR]        default /tmp/numafeed-quickstart
"""
import sys

import numpy as np

import numafeed


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/numafeed-quickstart"
    rng = np.random.default_rng(0)
    docs = [{"tokens": rng.integers(0, 50257, size=int(rng.integers(16, 512)), dtype=np.int32),
             "label": i % 10}
            for i in range(5000)]
    # fields inferred from the first sample: tokens a variable-length int32
    # array, label an int64; written atomically, zstd-compressed blocks
    numafeed.pack(path, docs, force=True, progress=False)

    want = sum(int(d["tokens"].sum()) for d in docs)
    with numafeed.Loader(path, batch_size=256, device="cpu", output="numpy", epochs=2,
                         return_ids=True) as loader:
        seen, total = [], 0
        for batch, ids in loader:       # return_ids: each record's index in the dataset
            tokens = batch["tokens"]     # numafeed.Ragged: len(tokens) documents
            labels = batch["label"]      # int64 [records]
            first = tokens[0]            # the first document's tokens, a view
            assert len(tokens) == len(labels) and first.dtype == np.int32
            padded, lengths = tokens.pad(value=0, to=128)  # dense [records, 128]
            seen.extend(int(i) for i in ids)
            total += int(tokens.values.sum())
        # two epochs: each document exactly twice, every token summed twice
        assert sorted(seen) == sorted(list(range(len(docs))) * 2), "a document went missing"
        assert total == 2 * want
        st = loader.stats()
    print(f"numafeed: {len(docs)} documents x 2 epochs in batches of 256, each exactly once "
          f"per epoch; last batch padded to {padded.shape}; pool on node {st['pool']['node']} "
          f"with {st['pool']['threads']} threads, io {st['pool']['io_backend']}")


if __name__ == "__main__":
    main()
