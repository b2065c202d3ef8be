#!/usr/bin/env python3
"""Golden files from Hugging Face transformers for the C++ T5 tests.

Reference tool only: needs PyPI torch and the pinned transformers below; the product
itself depends on neither. Builds tiny random T5ForConditionalGeneration models of both
variants (v1.0: relu FFN, tied LM head; v1.1/MolT5: gated-GELU, untied) with odd sizes
so nothing can silently assume the released ones, and writes for each, under
tests/golden/<variant>/:

  config.json, model.safetensors   the model, as save_pretrained writes it
  expected.safetensors              inputs (input_ids, attention_mask, labels), logits,
                                    loss, grad.<param> for every parameter, and
                                    step<k>.loss / final.<param> after 3 AdamW steps
  generate.json                     generate() outputs (greedy and beam search, several
                                    option sets): sequences and sequence scores

Dropout is 0 so the numbers are deterministic.

    pip install torch transformers==4.46.3 safetensors
    python3 scripts/make_golden.py            # writes tests/golden/
    python3 scripts/make_golden.py --check-export DIR --variant t5_v1_1
        # DIR: a golden model re-saved by our save_t5_checkpoint (the checkpoint test
        # writes one to $TMPDIR/la3_ckpt_<variant>); loads it in transformers and compares logits
"""
import argparse
import json
import pathlib
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import T5Config, T5ForConditionalGeneration

PINNED_TRANSFORMERS = "4.46.3"
ROOT = pathlib.Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"

COMMON = dict(
    vocab_size=41,
    d_model=20,
    d_kv=7,          # heads * d_kv = 21 != d_model
    d_ff=26,
    num_layers=2,
    num_decoder_layers=3,  # unequal depths
    num_heads=3,
    relative_attention_num_buckets=10,
    relative_attention_max_distance=14,
    dropout_rate=0.0,
    layer_norm_epsilon=1e-6,
    pad_token_id=0,
    eos_token_id=1,
    decoder_start_token_id=0,
)
VARIANTS = {
    "t5_v1_0": dict(feed_forward_proj="relu", tie_word_embeddings=True),
    "t5_v1_1": dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False),
}
ADAMW = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
ADAMW_STEPS = 3


def make_batch(vocab):
    g = torch.Generator().manual_seed(7)
    batch, src_len, tgt_len = 3, 19, 11
    input_ids = torch.randint(2, vocab, (batch, src_len), generator=g)
    attention_mask = torch.ones(batch, src_len, dtype=torch.int64)
    # Row 1 padded after 12 tokens, row 2 after 5: masked keys and padded queries.
    for row, length in ((1, 12), (2, 5)):
        input_ids[row, length:] = 0
        attention_mask[row, length:] = 0
    for row, length in ((0, src_len), (1, 12), (2, 5)):
        input_ids[row, length - 1] = 1  # eos
    labels = torch.randint(2, vocab, (batch, tgt_len), generator=g)
    labels[0, -1] = 1
    labels[1, 7] = 1
    labels[1, 8:] = -100
    labels[2, 3] = 1
    labels[2, 4:] = -100
    return input_ids, attention_mask, labels


def build(variant):
    torch.manual_seed(1234 + len(variant))
    config = T5Config(**COMMON, **VARIANTS[variant])
    model = T5ForConditionalGeneration(config)
    # Non-trivial layer norm weights so their gradients and effect are tested.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    return model


def write_variant(variant):
    out = GOLDEN / variant
    out.mkdir(parents=True, exist_ok=True)
    model = build(variant)
    model.save_pretrained(out, safe_serialization=True)
    input_ids, attention_mask, labels = make_batch(model.config.vocab_size)

    expected = {
        "input_ids": input_ids.clone(),
        "attention_mask": attention_mask.clone(),
        "labels": labels.clone(),
    }
    model.train()  # dropout is 0: train mode only matters for parity with our trainer
    result = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    result.loss.backward()
    expected["logits"] = result.logits.detach().clone()
    expected["loss"] = result.loss.detach().reshape(())
    names = dict(model.named_parameters())
    for name, p in names.items():
        expected["grad." + name] = p.grad.detach().clone()

    optimizer = torch.optim.AdamW(model.parameters(), **ADAMW)
    model.zero_grad()
    for step in range(ADAMW_STEPS):
        optimizer.zero_grad()
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        expected[f"step{step}.loss"] = loss.detach().reshape(())
    for name, p in model.named_parameters():
        expected["final." + name] = p.detach().clone()

    save_file({k: v.contiguous() for k, v in expected.items()}, str(out / "expected.safetensors"),
              metadata={"transformers": transformers.__version__, "torch": torch.__version__,
                        "adamw": json.dumps(ADAMW), "adamw_steps": str(ADAMW_STEPS)})
    print(f"{variant}: loss {result.loss.item():.6f}, {len(names)} parameters -> {out}")
    write_generation(variant, build(variant))


GENERATION_CASES = [
    dict(name="greedy", num_beams=1, max_new_tokens=12),
    dict(name="greedy_no_repeat", num_beams=1, max_new_tokens=12, no_repeat_ngram_size=2, repetition_penalty=1.5),
    dict(name="beam4", num_beams=4, max_new_tokens=12, num_return_sequences=2),
    dict(name="beam5_lp06_early", num_beams=5, max_new_tokens=12, length_penalty=0.6, early_stopping=True),
    dict(name="beam4_lp2_never_ngram", num_beams=4, max_new_tokens=10, length_penalty=2.0, early_stopping="never",
         no_repeat_ngram_size=2, min_length=5, num_return_sequences=4),
    dict(name="beam4_lp_neg_repetition", num_beams=4, max_new_tokens=12, length_penalty=-0.5,
         repetition_penalty=1.3, num_return_sequences=3),
]


def write_generation(variant, model):
    """generate() outputs of the golden model on the golden inputs: token ids and scores."""
    input_ids, attention_mask, _ = make_batch(model.config.vocab_size)
    model.eval()
    cases = []
    for case in GENERATION_CASES:
        options = {k: v for k, v in case.items() if k != "name"}
        with torch.no_grad():
            out = model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=False,
                                 return_dict_in_generate=True, output_scores=True, **options)
        record = {"name": case["name"], "options": options, "sequences": out.sequences.tolist()}
        if options["num_beams"] > 1:
            record["sequence_scores"] = out.sequences_scores.tolist()
        cases.append(record)
    path = GOLDEN / variant / "generate.json"
    path.write_text(json.dumps({"transformers": transformers.__version__, "cases": cases}, indent=1) + "\n")


def check_export(directory, variant):
    """Loads a checkpoint we exported (e.g. a golden model saved by save_t5_checkpoint) with
    from_pretrained and compares its logits on the golden batch with the golden logits."""
    from safetensors.torch import load_file
    model = T5ForConditionalGeneration.from_pretrained(directory)
    model.eval()
    expected = load_file(str(GOLDEN / variant / "expected.safetensors"))
    with torch.no_grad():
        logits = model(input_ids=expected["input_ids"], attention_mask=expected["attention_mask"],
                       labels=expected["labels"]).logits
    difference = (logits - expected["logits"]).abs().max().item()
    print(json.dumps({"directory": str(directory), "variant": variant, "max_abs_logits_difference": difference}))
    if difference > 1e-5:
        sys.exit(f"exported checkpoint {directory} does not reproduce the {variant} golden logits")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check-export", metavar="DIR", help="a checkpoint directory we exported")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="t5_v1_1",
                        help="which golden model DIR was exported from (with --check-export)")
    args = parser.parse_args()
    if transformers.__version__ != PINNED_TRANSFORMERS:
        sys.exit(f"transformers {transformers.__version__} found; the golden files pin {PINNED_TRANSFORMERS}")
    torch.use_deterministic_algorithms(True)
    if args.check_export:
        check_export(args.check_export, args.variant)
        return
    for variant in VARIANTS:
        write_variant(variant)


if __name__ == "__main__":
    main()
