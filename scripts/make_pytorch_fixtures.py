#!/usr/bin/env python3
"""Writes tests/fixtures/pytorch/: checkpoints in the layouts the hub serves MolT5 in.

Reference tool only (PyPI: torch, the pinned transformers, safetensors); the product reads
these files without either. The C++ tests tests/model/torch_checkpoint_test.cc and
tests/engine/torch_pickle_test.cc load them and compare with the golden safetensors models.

  t5_v1_0_bin/, t5_v1_1_bin/          save_pretrained(safe_serialization=False) of the golden
                                      models in tests/golden (pytorch_model.bin; v1.0 has tied
                                      weights: four names, one storage)
  t5_v1_0_bin_sharded/                the same, max_shard_size small: pytorch_model.bin.index.json
  t5_v1_1_safetensors_sharded/        safe_serialization=True, sharded: model.safetensors.index.json
  t5_v1_0_f16_state_dict/             torch.save(model.half().state_dict()): the OrderedDict with
                                      _metadata that older transformers wrote, in float16;
                                      reference_f16.safetensors holds the same tensors
  t5_v1_1_bf16_state_dict/            torch.save of the bfloat16 state dict
  sample_vocab_bin/, sample_vocab_safetensors/
                                      one small random MolT5-shaped model (vocab 356 = the sample
                                      tokenizer's) in both formats: `engine generate` and
                                      init_checkpoint are run on the .bin end to end
  views.bin, views_protocol4.bin      non-contiguous views, storage offsets, a 0-d and an empty
                                      tensor, f16; views_reference.safetensors holds them dense
  malicious/*.bin                     state dicts whose pickle calls os.system, builtins.eval,
                                      subprocess.Popen or torch.serialization.load when a real
                                      unpickler loads them (the command would create
                                      /tmp/la3_pwned_by_fixture; writing them runs nothing)
  malicious/checkpoint/               config.json + the os.system pytorch_model.bin
  unsupported/int64.bin, float64.bin  storages of dtypes T5 weights never use
  unsupported/legacy.bin              the pre-1.6 format (_use_new_zipfile_serialization=False)

    pip install torch transformers==4.46.3 safetensors
    python3 scripts/make_pytorch_fixtures.py
"""
import os
import pathlib
import shutil
import subprocess

import torch
import transformers
from safetensors.torch import save_file
from transformers import T5Config, T5ForConditionalGeneration

PINNED_TRANSFORMERS = "4.46.3"
ROOT = pathlib.Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
OUT = ROOT / "tests" / "fixtures" / "pytorch"
PWNED = "/tmp/la3_pwned_by_fixture"


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def load_golden(variant):
    return T5ForConditionalGeneration.from_pretrained(GOLDEN / variant).eval()


def save_pretrained(model, name, **kwargs):
    out = fresh(OUT / name)
    model.save_pretrained(out, **kwargs)
    (out / "generation_config.json").unlink(missing_ok=True)  # not read by the tests
    return out


def save_state_dict(model, name, dtype):
    out = fresh(OUT / name)
    model.config.save_pretrained(out)
    state = model.to(dtype).state_dict()
    assert hasattr(state, "_metadata"), "expected the OrderedDict with _metadata"
    torch.save(state, out / "pytorch_model.bin")
    return out, state


class Payload:
    """Pickles as a call of `function(*arguments)`; pickling it calls nothing."""

    def __init__(self, function, arguments):
        self.function, self.arguments = function, arguments

    def __reduce__(self):
        return self.function, self.arguments


def main():
    if transformers.__version__ != PINNED_TRANSFORMERS:
        raise SystemExit(f"needs transformers=={PINNED_TRANSFORMERS}, found {transformers.__version__}")
    torch.manual_seed(0)
    fresh(OUT)

    # The golden models, as save_pretrained writes them without safetensors.
    v10, v11 = load_golden("t5_v1_0"), load_golden("t5_v1_1")
    save_pretrained(v10, "t5_v1_0_bin", safe_serialization=False)
    save_pretrained(v11, "t5_v1_1_bin", safe_serialization=False)
    save_pretrained(v10, "t5_v1_0_bin_sharded", safe_serialization=False, max_shard_size="30KB")
    save_pretrained(v11, "t5_v1_1_safetensors_sharded", safe_serialization=True, max_shard_size="30KB")

    # Older transformers (as MolT5's files were written) torch.save the state dict itself.
    _, half = save_state_dict(load_golden("t5_v1_0"), "t5_v1_0_f16_state_dict", torch.float16)
    save_file({name: tensor.clone() for name, tensor in half.items()}, str(OUT / "reference_f16.safetensors"))
    save_state_dict(load_golden("t5_v1_1"), "t5_v1_1_bf16_state_dict", torch.bfloat16)

    # A small model over the sample tokenizer (256 pieces + 100 sentinels), for the CLI end to end.
    sample = T5ForConditionalGeneration(T5Config(
        vocab_size=356, d_model=16, d_kv=4, d_ff=24, num_layers=1, num_decoder_layers=1, num_heads=2,
        relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0,
        feed_forward_proj="gated-gelu", tie_word_embeddings=False, pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0)).eval()
    save_pretrained(sample, "sample_vocab_bin", safe_serialization=False)
    save_pretrained(sample, "sample_vocab_safetensors", safe_serialization=True)

    # Views of shared storages: every way a saved tensor can sit in its storage.
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) * 0.25 - 1.0
    views = {
        "whole": base,
        "transposed": base.t(),
        "row": base[1],
        "column": base[:, 2],
        "every_other": base[:, ::2],
        "scalar": base[2, 3],
        "empty": torch.zeros(0, 3),
        "half_transposed": base.half().t(),
        "bf16_row": base.bfloat16()[2],
    }
    torch.save(views, OUT / "views.bin")
    torch.save(views, OUT / "views_protocol4.bin", pickle_protocol=4)
    save_file({name: tensor.contiguous().clone() for name, tensor in views.items()},
              str(OUT / "views_reference.safetensors"))

    # Hostile pickles. torch.save only records the calls; nothing here runs them.
    weight = torch.ones(2, 2)
    command = f"touch {PWNED}"
    malicious = {
        "os_system": Payload(os.system, (command,)),
        "builtins_eval": Payload(eval, (f"__import__('os').system('{command}')",)),
        "subprocess_popen": Payload(subprocess.Popen, ((["touch", PWNED]),)),
        "torch_load": Payload(torch.load, (PWNED,)),
    }
    fresh(OUT / "malicious")
    for name, payload in malicious.items():
        torch.save({"shared.weight": weight, "payload": payload}, OUT / "malicious" / f"{name}.bin")
    checkpoint = fresh(OUT / "malicious" / "checkpoint")
    shutil.copy(GOLDEN / "t5_v1_1" / "config.json", checkpoint / "config.json")
    shutil.copy(OUT / "malicious" / "os_system.bin", checkpoint / "pytorch_model.bin")

    fresh(OUT / "unsupported")
    torch.save({"ids": torch.arange(3)}, OUT / "unsupported" / "int64.bin")
    torch.save({"weight": torch.ones(3, dtype=torch.float64)}, OUT / "unsupported" / "float64.bin")
    torch.save({"weight": torch.ones(3)}, OUT / "unsupported" / "legacy.bin", _use_new_zipfile_serialization=False)

    assert not os.path.exists(PWNED)
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({total} bytes) with torch {torch.__version__}, transformers {transformers.__version__}")


if __name__ == "__main__":
    main()
