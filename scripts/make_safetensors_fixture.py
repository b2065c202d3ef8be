#!/usr/bin/env python3
"""Writes tests/fixtures/reference.safetensors with the reference implementation.

Reference tool only (PyPI: torch, safetensors); the product does not depend on it.
The C++ test tests/engine/safetensors_test.cc reads the file and checks the values below.

    python3 scripts/make_safetensors_fixture.py
"""
import pathlib

import torch
from safetensors.torch import save_file

out = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "reference.safetensors"
tensors = {
    # f32 [2, 3]: 0.5 * (i - 2)
    "weights.f32": (torch.arange(6, dtype=torch.float32).reshape(2, 3) - 2) * 0.5,
    # bf16 [3]: values exactly representable in bf16
    "weights.bf16": torch.tensor([1.0, -2.5, 3.140625], dtype=torch.bfloat16),
    # f16 [2]: loaded as f32
    "weights.f16": torch.tensor([0.333251953125, -65504.0], dtype=torch.float16),
    # i64 [4]
    "ids.i64": torch.tensor([0, 1, 32127, -100], dtype=torch.int64),
    # i32 [1, 1]
    "count.i32": torch.tensor([[7]], dtype=torch.int32),
}
save_file(tensors, str(out), metadata={"format": "pt", "producer": "make_safetensors_fixture.py"})
print(f"wrote {out} ({out.stat().st_size} bytes) with torch {torch.__version__}")
