#!/usr/bin/env python3
"""Device memory of one T5 training step in LA3 Engine, tensor by tensor (docs/MEMORY.md).

The model follows what the code allocates, not a textbook formula:
  - persistent: fp32 master weights, their gradients (the trainer's flat gradient buckets),
    AdamW's two moments, bf16 weight copies (CUDA devices with bf16 GEMMs), the GEMM
    workspace (32 MiB, held by the GEMM engine on cuda and cuda-emu alike);
  - saved activations: what each op's backward closure captures on the tape (engine/ops/*.cc),
    per T5 block as model/t5_model.cc builds it; attention saves either the probabilities
    [batch, heads, q, k] ("probs", what the CPU backend keeps) or only the row log-sum-exp
    ("lse", what the CUDA backends keep: Backend::attention_saved_elements);
  - the transient peak: the LM-head logits and the loss's saved dlogits [rows, tgt, vocab] are
    both alive when the loss is computed (the end of the forward), which is the step's peak.
With --recompute attention (training.recompute), the inside of each attention sublayer (q, k,
v, context, attention state) is not kept but rebuilt during the backward, one at a time; with
--recompute block each T5 block keeps only its inputs and is rebuilt whole, one at a time.

Sizes are rounded as the caching allocator rounds them (512-byte classes below 1 MiB, 2 MiB
classes above), since that is what the device must hold.

  scripts/memory_model.py                                  # MolT5-small, 16 x (512 + 512)
  scripts/memory_model.py --attention lse --recompute attention
  scripts/memory_model.py --json --vocab 1000 --d-model 128 ...   (one JSON object, for tests)
"""
import argparse
import json
import sys

MIB = 1 << 20
GEMM_WORKSPACE = 32 * MIB
F32, BF16, I32, I64 = 4, 2, 4, 8

PRESETS = {
    # model/t5_config.cc
    "molt5-small": dict(d_model=512, d_kv=64, d_ff=1024, num_heads=6, num_layers=8, num_decoder_layers=8,
                        vocab=32128, gated=True, tied=False, num_buckets=32),
    "molt5-base": dict(d_model=768, d_kv=64, d_ff=2048, num_heads=12, num_layers=12, num_decoder_layers=12,
                       vocab=32128, gated=True, tied=False, num_buckets=32),
    "tiny": dict(d_model=64, d_kv=16, d_ff=128, num_heads=4, num_layers=2, num_decoder_layers=2,
                 vocab=32128, gated=True, tied=False, num_buckets=32),
}


def rounded(nbytes):
    """engine/cuda/caching_allocator.cc: the size class a request occupies."""
    if nbytes <= 0:
        return 512
    if nbytes < MIB:
        return (nbytes + 511) // 512 * 512
    return (nbytes + 2 * MIB - 1) // (2 * MIB) * (2 * MIB)


def parameter_shapes(m):
    """model/t5_model.cc's parameters (HF names), as shapes."""
    d, hk, f, v = m["d_model"], m["num_heads"] * m["d_kv"], m["d_ff"], m["vocab"]
    shapes = [(v, d)]  # shared
    if not m["tied"]:
        shapes.append((v, d))  # lm_head
    ffn = [(f, d), (f, d), (d, f)] if m["gated"] else [(f, d), (d, f)]
    for _ in range(m["num_layers"]):
        shapes += [(hk, d)] * 3 + [(d, hk)] + ffn + [(d,), (d,)]
    for _ in range(m["num_decoder_layers"]):
        shapes += [(hk, d)] * 3 + [(d, hk)] + [(hk, d)] * 3 + [(d, hk)] + ffn + [(d,)] * 3
    shapes += [(m["num_buckets"], m["num_heads"])] * 2 + [(d,), (d,)]  # bias tables, final norms
    return shapes


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def attention_inside(m, rows, q_len, kv_len, attention):
    """What ops inside one attention sublayer keep: q, k, v, the context and the attention state."""
    hk, h = m["num_heads"] * m["d_kv"], m["num_heads"]
    t = [rows * q_len * hk * F32, rows * kv_len * hk * F32, rows * kv_len * hk * F32, rows * q_len * hk * F32,
         rows * h * q_len * (kv_len if attention == "probs" else 1) * F32]
    return sum(rounded(x) for x in t)


def block_saved(m, rows, q_len, k_len, cross, attention, dropout, recompute="none"):
    """Bytes one T5 block leaves on the tape until the backward (sizes rounded).

    The tape keeps more than the backward closures capture: each node holds its inputs and
    its output (engine/autograd/tape.h, Tape::Node), so every tensor a recorded op produced
    stays alive until the backward reaches it. Per sublayer of model/t5_model.cc that is:
      attention: the q, k, v projections, the context, the saved attention state (probs or
        lse), the output projection, its dropout output, then the fused residual add +
        RMSNorm's sum, normed output and [rows * len] rstd;
      feed-forward: wi_0 and wi_1 (gated-GELU; relu: wi and relu), the activation, its dropout
        output, wo's output and its dropout output, the sum, normed output and rstd.
    A decoder block adds cross-attention: q and context over the target, k and v over the
    source. With recompute "attention" (training.recompute) the inside of each attention
    sublayer is rebuilt in the backward instead. Reshapes are views (no storage); dropout saves no mask (Philox replay) but its
    output is a new tensor when the rate is not 0.
    """
    d, hk, f, h = m["d_model"], m["num_heads"] * m["d_kv"], m["d_ff"], m["num_heads"]
    act = rows * q_len
    drop = 1 if dropout > 0 else 0
    t = []
    if recompute == "block":
        # One tape node per block keeps its inputs (the previous block's outputs, counted there);
        # the block leaves its residual sum (the node's output) and the norm after it, outside
        # the node: normed output and rstd.
        return sum(rounded(x) for x in [act * d * F32, act * d * F32, act * F32])

    def attention_sublayer(kv_len):
        if recompute == "none":  # with recompute attention only the output projection stays
            t.extend([act * hk * F32, rows * kv_len * hk * F32, rows * kv_len * hk * F32, act * hk * F32])
            t.append(rows * h * q_len * (kv_len if attention == "probs" else 1) * F32)
        t.extend([act * d * F32] * (1 + drop))        # output projection (+ dropout)
        t.extend([act * d * F32] * 2 + [act * F32])   # sum, normed, rstd

    attention_sublayer(q_len)
    if cross:
        attention_sublayer(k_len)
    t.extend([act * f * F32] * ((3 if m["gated"] else 2) + drop))  # wi_0, wi_1, gelu (+ dropout)
    t.extend([act * d * F32] * (1 + drop))                         # wo (+ dropout)
    t.extend([act * d * F32] * 2 + [act * F32])                    # sum, normed, rstd
    return sum(rounded(x) for x in t)


def model(args):
    m = dict(PRESETS[args.preset])
    for key in ("d_model", "d_kv", "d_ff", "num_heads", "num_layers", "num_decoder_layers", "vocab"):
        value = getattr(args, key)
        if value is not None:
            m[key] = value
    rows, s, tl = args.rows, args.source, args.target
    d, v = m["d_model"], m["vocab"]
    shapes = parameter_shapes(m)
    params = sum(numel(x) for x in shapes)
    out = {"config": m, "rows": rows, "source": s, "target": tl, "attention": args.attention,
           "recompute": args.recompute, "parameters": params}

    weights = sum(rounded(numel(x) * F32) for x in shapes)
    # gradient buckets: flat buffers of <= bucket_mb each, together every parameter
    grads = params * F32
    grads = sum(rounded(min(args.bucket_mb * MIB, grads - i)) for i in range(0, grads, args.bucket_mb * MIB))
    moments = 2 * weights
    bf16 = sum(rounded(numel(x) * BF16) for x in shapes) if args.bf16_copies else 0
    persistent = {"weights_fp32": weights, "gradients": grads, "adamw_moments": moments,
                  "bf16_weight_copies": bf16, "gemm_workspace": GEMM_WORKSPACE}

    enc_block = block_saved(m, rows, s, s, False, args.attention, args.dropout, args.recompute)
    dec_block = block_saved(m, rows, tl, s, True, args.attention, args.dropout, args.recompute)
    drop = 1 if args.dropout > 0 else 0
    # per stack: the embedding output (+ dropout), the first RMSNorm's output and rstd
    stack_inputs = ((2 + drop) * rounded(rows * s * d * F32) + rounded(rows * s * F32) +
                    (2 + drop) * rounded(rows * tl * d * F32) + rounded(rows * tl * F32))
    # ids, attention flags, labels, decoder inputs, group ids (the tape holds them as inputs)
    ids = (rounded(rows * s * I64) + rounded(rows * s * I32) + 2 * rounded(rows * tl * I64) + rounded(rows * I64))
    encoder_out = drop * rounded(rows * s * d * F32)  # the dropped encoder output (cross k/v input)
    head_input = drop * rounded(rows * tl * d * F32)  # the dropped decoder output (LM head input)
    logits = rounded(rows * tl * v * F32)
    activations = (m["num_layers"] * enc_block + m["num_decoder_layers"] * dec_block + stack_inputs + ids +
                   encoder_out + head_input)
    # With recompute, the backward rebuilds one attention sublayer (attention) or one block
    # (block) at a time, the widest.
    transient_backward = 0
    if args.recompute == "attention":
        transient_backward = max(attention_inside(m, rows, s, s, args.attention),
                                 attention_inside(m, rows, tl, tl, args.attention),
                                 attention_inside(m, rows, tl, s, args.attention))
    elif args.recompute == "block":
        transient_backward = max(block_saved(m, rows, s, s, False, args.attention, args.dropout),
                                 block_saved(m, rows, tl, s, True, args.attention, args.dropout))
    saved = {"encoder_block": enc_block, "decoder_block": dec_block, "activations": activations}
    # End of the forward: every saved activation, the logits (the loss node's input) and the
    # loss's dlogits (mean mode computes the gradient in the forward; the mixture modes keep
    # the logits, lse and weights and make dlogits in the backward: the same two
    # [rows, tgt, vocab] tensors at the backward's start).
    loss_peak = activations + 2 * logits
    # The LM head's backward: the logits are gone with the loss node; dlogits, its bf16 cast
    # for the GEMMs and the hidden states' gradient are alive.
    backward_peak = activations - logits + logits + (rounded(rows * tl * v * BF16) if args.bf16_copies else 0) + \
        rounded(rows * tl * d * F32) + transient_backward
    step_peak = max(loss_peak, backward_peak)
    out["persistent"] = persistent
    out["persistent_total"] = sum(persistent.values())
    out["saved"] = saved
    out["logits"] = logits
    out["loss_peak_extra"] = 2 * logits
    out["predicted_peak"] = out["persistent_total"] + step_peak
    return out


# The shape --check trains on cuda-emu: small enough for the emulation (one step of the full
# MolT5-small shape would take hours there), large enough that activations, not the 32 MiB GEMM
# workspace, decide the peak. Every example is longer than the limits, so every batch is
# exactly rows x (length + length) tokens.
CHECK_MODEL = dict(d_model=128, d_kv=32, d_ff=256, num_heads=4, num_layers=2, num_decoder_layers=2)
CHECK_ROWS, CHECK_LENGTH, CHECK_DROPOUT = 8, 64, 0.1


def check(engine, tokenizer, workdir):
    """Trains one step with LA3_EMU_DEVICE_BYTES 10% above the predicted peak (must succeed)
    and 10% below it (must fail with the allocator's out-of-memory error). Exit status 0 = both."""
    import os
    import re
    import subprocess
    os.makedirs(workdir, exist_ok=True)
    data = os.path.join(workdir, "train.jsonl")
    with open(data, "w") as f:
        for i in range(2 * CHECK_ROWS):
            caption = " ".join(f"The molecule {i} is a long chain ester with many carbon atoms, part {j}." for j in range(12))
            f.write(json.dumps({"cid": f"m{i}", "smiles": "CC(=O)O" * 40, "original": caption, "rewrites": []}) + "\n")
    model_yaml = "".join(f"  {k}: {v}\n" for k, v in CHECK_MODEL.items())

    def config_for(recompute):
        config = os.path.join(workdir, f"run_{recompute}.yaml")
        with open(config, "w") as f:
            f.write(f"model:\n  preset: tiny\n{model_yaml}  dropout_rate: {CHECK_DROPOUT}\n"
                    f"data:\n  train: {data}\n  tokenizer: {tokenizer}\n"
                    f"  max_source_length: {CHECK_LENGTH}\n  max_target_length: {CHECK_LENGTH}\n"
                    f"training:\n  batch_size: {CHECK_ROWS}\n  max_steps: 1\n  eval_every: 0\n  checkpoint_every: 0\n"
                    f"  log_every: 1\n  device: cuda-emu\n  gemm_precision: bf16\n  recompute: {recompute}\n")
        return config

    def start(recompute, capacity):
        env = dict(os.environ, LA3_EMU_DEVICE_BYTES=str(capacity))
        out = os.path.join(workdir, f"run_{recompute}_{capacity}")
        return subprocess.Popen([engine, "train", "--config", config_for(recompute), "--output-dir", out, "--overwrite"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def finish(process):
        log, _ = process.communicate()
        return process.returncode, log

    # The vocabulary is the tokenizer's: learn it from a run with room to spare, and check that
    # the engine built the model this script describes (same parameter count).
    code, log = finish(start("none", 8 << 30))
    found = re.search(r"model: (\d+) parameters \(.*vocab (\d+)\)", log)
    if code != 0 or found is None:
        print(f"FAIL: the unconstrained run failed or did not report its model:\n{log}")
        return 1
    failures = 0
    for recompute in ("none", "attention", "block"):
        args = argparse.Namespace(preset="tiny", vocab=int(found.group(2)), rows=CHECK_ROWS, source=CHECK_LENGTH,
                                  target=CHECK_LENGTH, attention="lse", recompute=recompute, dropout=CHECK_DROPOUT,
                                  bucket_mb=25, bf16_copies=True, **CHECK_MODEL)
        predicted = model(args)
        if predicted["parameters"] != int(found.group(1)):
            print(f"FAIL: the engine's model has {found.group(1)} parameters, this model {predicted['parameters']}")
            return 1
        peak = predicted["predicted_peak"]
        above, below = int(peak * 1.1), int(peak * 0.9)
        runs = start(recompute, above), start(recompute, below)  # side by side
        (code_above, log_above), (code_below, log_below) = finish(runs[0]), finish(runs[1])
        print(f"recompute {recompute}: predicted peak {peak} bytes; capacity {above} (+10%): exit {code_above}; "
              f"capacity {below} (-10%): exit {code_below}")
        if code_above != 0:
            print(f"FAIL: one step should fit in {above} bytes:\n{log_above}")
            failures += 1
        if code_below == 0 or "cuda-emu: out of memory allocating" not in log_below:
            print(f"FAIL: one step should run out of memory in {below} bytes with the allocator's error:\n{log_below}")
            failures += 1
    return 1 if failures else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="molt5-small", choices=sorted(PRESETS))
    for key in ("d_model", "d_kv", "d_ff", "num_heads", "num_layers", "num_decoder_layers", "vocab"):
        p.add_argument("--" + key.replace("_", "-"), dest=key, type=int)
    p.add_argument("--rows", type=int, default=16, help="rows of a micro-batch (token_mixture k=2: 3 per group)")
    p.add_argument("--source", type=int, default=512)
    p.add_argument("--target", type=int, default=512)
    p.add_argument("--attention", choices=["probs", "lse"], default="lse",
                   help="what attention saves: lse (the CUDA backends, default) or probs (the CPU backend)")
    p.add_argument("--recompute", choices=["none", "attention", "block"], default="none",
                   help="training.recompute: attention rebuilds each attention sublayer in the backward, block "
                        "each T5 block")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--bucket-mb", type=int, default=25)
    p.add_argument("--no-bf16-copies", dest="bf16_copies", action="store_false")
    p.add_argument("--json", action="store_true")
    p.add_argument("--check", metavar="ENGINE", help="check the model on cuda-emu with this engine binary (docs/MEMORY.md)")
    p.add_argument("--tokenizer", help="with --check: the SentencePiece model (data/sample/spiece.model)")
    p.add_argument("--workdir", default="memory_model_check", help="with --check: scratch directory")
    args = p.parse_args()
    if args.check:
        if not args.tokenizer:
            p.error("--check needs --tokenizer")
        sys.exit(check(args.check, args.tokenizer, args.workdir))
    r = model(args)
    if args.json:
        json.dump(r, sys.stdout)
        print()
        return
    g = 1e9
    print(f"{args.preset}: {r['parameters']:,} parameters; {args.rows} rows x ({args.source} + {args.target}) tokens;"
          f" attention saves {args.attention}; recompute {args.recompute}")
    for k, val in r["persistent"].items():
        print(f"  {k:<22} {val / g:8.3f} GB")
    print(f"  {'saved per enc block':<22} {r['saved']['encoder_block'] / g:8.3f} GB")
    print(f"  {'saved per dec block':<22} {r['saved']['decoder_block'] / g:8.3f} GB")
    print(f"  {'saved activations':<22} {r['saved']['activations'] / g:8.3f} GB")
    print(f"  {'logits + dlogits':<22} {r['loss_peak_extra'] / g:8.3f} GB")
    print(f"  {'predicted peak':<22} {r['predicted_peak'] / g:8.3f} GB")


if __name__ == "__main__":
    main()
