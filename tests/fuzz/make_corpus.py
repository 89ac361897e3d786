#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Regenerate the fuzz seed corpora under tests/fuzz/corpus/<target>/.

Shards, manifests and blocks come from real datasets packed by the numafeed
CLI, so every seed starts on the accepted path and the fuzzer mutates from
there; the rest are small hand-written inputs, each covering a branch that
the packer never produces (a raw block, a non-NUMA kernel, a -1 numa_node).
The corpora are committed; this documents how they were made:

    python3 tests/fuzz/make_corpus.py build/release/src/cli/numafeed

The input formats are described at the top of each tests/fuzz/fuzz_*.c.
"""
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def records(n, size, compressible):
    """n records of size bytes: counters (compress well) or an LCG (do not)."""
    out = bytearray()
    x = 12345
    for i in range(n * size):
        if compressible:
            out.append((i // size) & 0xff)
        else:
            x = (x * 1103515245 + 12345) & 0x7fffffff
            out.append((x >> 16) & 0xff)
    return bytes(out)


def pack(cli, tmp, name, data, args):
    src = os.path.join(tmp, name + ".bin")
    with open(src, "wb") as f:
        f.write(data)
    out = os.path.join(tmp, name)
    subprocess.run([cli, "pack", "--quiet", "--out", out] + args + [src], check=True)
    return out


def index(shard):
    """The block index of a shard (docs/format.md): (offset, stored, decoded, codec, xxh3)."""
    foff, fsize = struct.unpack_from("<QQ", shard, len(shard) - 32)
    n = struct.unpack_from("<I", shard, foff)[0]
    entries = []
    for i in range(n):
        off, stored, decoded, _recs, codec, xxh = struct.unpack_from("<QIIIIQ", shard,
                                                                     foff + 16 + 32 * i)
        entries.append((off, stored, decoded, codec, xxh))
    return entries


def without_stored_hashes(shard):
    """The shard without stored-block hashes (header flag bit 0): the flag
    cleared and the footer's last table, 8 bytes per block, cut out.
    Its checksums are stale: seed it with the harness's fix-up bits."""
    foff, fsize = struct.unpack_from("<QQ", shard, len(shard) - 32)
    n = struct.unpack_from("<I", shard, foff)[0]
    flags = struct.unpack_from("<I", shard, 12)[0]
    assert flags & 1, "the packer sets the stored-hash flag"
    head = bytearray(shard[:len(shard) - 32 - 8 * n])
    struct.pack_into("<I", head, 12, flags & ~1)
    trailer = bytearray(shard[len(shard) - 32:])
    struct.pack_into("<Q", trailer, 8, fsize - 8 * n)
    return bytes(head + trailer)


def shards_and_blocks(cli, tmp):
    sets = [
        ("zstd", records(48, 16, True), ["--record-bytes", "16", "--block-bytes", "256"]),
        ("none", records(20, 8, True), ["--record-bytes", "8", "--codec", "none",
                                        "--block-bytes", "64"]),
        # incompressible: the packer stores these blocks raw despite --codec zstd
        ("mixed", records(16, 32, False) + records(16, 32, True),
         ["--record-bytes", "32", "--block-bytes", "512"]),
        ("fields", records(30, 16, True),
         ["--field", "a:uint32:2", "--field", "b:float32:2", "--block-bytes", "128",
          "--shard-bytes", "300"]),
    ]
    nblock = 0
    for name, data, args in sets:
        d = pack(cli, tmp, name, data, args)
        with open(os.path.join(d, "manifest.json"), "rb") as f:
            manifest = f.read()
        put("fuzz_manifest", name + ".json", manifest)
        if name == "zstd":  # one shard: a whole dataset for fuzz_dataset
            with open(os.path.join(d, "shard-00000.nfs"), "rb") as f:
                put("fuzz_dataset", "valid-stored-hash",
                    struct.pack("<I", len(manifest)) + manifest + f.read())
        for fn in sorted(os.listdir(d)):
            if not fn.endswith(".nfs"):
                continue
            with open(os.path.join(d, fn), "rb") as f:
                shard = f.read()
            stem = f"{name}-{fn[:-4]}"
            put("fuzz_shard", stem, b"\x00" + shard)        # checksums as written
            put("fuzz_shard", stem + "-fix", b"\x03" + shard)  # harness recomputes them
            put("fuzz_shard", stem + "-nohash-fix", b"\x03" + without_stored_hashes(shard))
            for off, stored, decoded, codec, xxh in index(shard)[:3]:
                body = shard[off:off + stored]
                desc = struct.pack("<IQ", decoded, xxh)
                flags = 1 if codec == 1 else 0
                put("fuzz_block", f"b{nblock:02d}-{name}", bytes([flags]) + desc + body)
                put("fuzz_block", f"b{nblock:02d}-{name}-ref", bytes([flags | 2 | 4]) + desc + body)
                nblock += 1
    # a raw block checked in place
    put("fuzz_block", "raw-inplace", bytes([2 | 8]) + bytes(12) + b"in place")


def manifests():
    put("fuzz_manifest", "codec-none.json",
        '{"format":"numafeed","version":1,"record_bytes":4,"fields":[{"name":"x",'
        '"dtype":"float32","shape":[]}],"records":0,"codec":"none","block_bytes":4096,'
        '"shards":[]}')
    put("fuzz_manifest", "version-2.json", '{"format":"numafeed","version":2}')
    put("fuzz_manifest", "bad-json.json", '{"format":"numafeed",')


def cpulists():
    for i, s in enumerate(["0-3\n", "0-63,128-191\n", "0,2,4,6", " 1-1 \n", "",
                           "65535", "0-3,", "3-0", "4-7,0-3", "1,1,1-2"]):
        put("fuzz_cpulist", f"list{i}", s)
    for i, s in enumerate(["0000:3b:00.0", "0000:3B:1F.7", "ffffffff:ff:1f.7", "1:2:3.4"]):
        put("fuzz_cpulist", f"busid{i}", s)


def topo_trees():
    SEP, ABSENT = b"\xff", b"\xfe"

    def tree(name, pieces):
        put("fuzz_topo", name, SEP.join(p.encode() if isinstance(p, str) else p for p in pieces))

    # online, node0, node1, vendor, class, numa_node, local_cpulist, allowed,
    # CUDA_VISIBLE_DEVICES, second device, cpu/online
    tree("two-nodes-gpu", ["0-1\n", "0-3\n", "4-7\n", "0x10de\n", "0x030200\n", "1\n",
                           "4-7\n", "0-7", ABSENT, "0000:86:00.0", ABSENT])
    tree("vm-minus1", ["0\n", "0-1\n", ABSENT, "0x10de\n", "0x030200\n", "-1\n", ABSENT,
                       "0-1", "1,0", ABSENT])
    tree("no-numa", [ABSENT, ABSENT, ABSENT, "0x10de\n", "0x030000\n", ABSENT, ABSENT, "0-3",
                     ABSENT, ABSENT, "0-3\n"])
    tree("audio", ["0\n", "0-1\n", ABSENT, "0x10de\n", "0x040300\n", "0\n", ABSENT, "0"])
    tree("cpuless-node", ["0-1\n", "0-3\n", "\n", "0x10de\n", "0x030200\n", "1\n"])


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_corpus.py PATH/TO/numafeed")
    cli = os.path.abspath(sys.argv[1])
    # the seeds made here are overwritten; those added by hand beside them
    # (var-fields.json, most of fuzz_dataset's) are left as they are
    with tempfile.TemporaryDirectory() as tmp:
        shards_and_blocks(cli, tmp)
    manifests()
    cpulists()
    topo_trees()


if __name__ == "__main__":
    main()
