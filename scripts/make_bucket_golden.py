#!/usr/bin/env python3
"""Expected T5 relative-position buckets from transformers (reference tool only).

Writes tests/fixtures/relative_position_buckets.json: for several (bidirectional,
num_buckets, max_distance) configurations, the bucket of every relative position
(key - query) in [-1000, 1000] as transformers' T5Attention._relative_position_bucket
computes it in float32. The C++ test compares kernels/relative_position.cuh with all of it.

    python3 scripts/make_bucket_golden.py
"""
import json
import pathlib

import torch
import transformers
from transformers.models.t5.modeling_t5 import T5Attention

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "relative_position_buckets.json"
CONFIGS = [(True, 32, 128), (False, 32, 128), (True, 16, 64), (False, 16, 64), (True, 10, 14), (False, 10, 14),
           (True, 64, 256)]
LOW, HIGH = -1000, 1000


def main():
    positions = torch.arange(LOW, HIGH + 1)
    tables = []
    for bidirectional, buckets, distance in CONFIGS:
        values = T5Attention._relative_position_bucket(positions, bidirectional=bidirectional, num_buckets=buckets,
                                                       max_distance=distance)
        tables.append({"bidirectional": bidirectional, "num_buckets": buckets, "max_distance": distance,
                       "buckets": values.tolist()})
    OUT.write_text(json.dumps({"transformers": transformers.__version__, "torch": torch.__version__,
                               "first_position": LOW, "tables": tables}, separators=(",", ":")) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
