#!/usr/bin/env python3
"""Byte/FLOP model of the CUDA backend's kernels for one MolT5-small training step.

Prints the Markdown tables of docs/KERNELS.md: one row per kernel at the training shapes
(bytes moved, FLOPs, arithmetic intensity, the best time an H100 SXM could reach =
max(bytes / bandwidth, FLOPs / peak)), then the per-step totals by family, GEMMs included.

Bytes are the compulsory DRAM traffic of the kernel *as the engine calls it*: each input read
once, each output written once (a read-modify-write counts twice), for the launches the backend
makes (e.g. the RMSNorm backward is two kernels that both read x and dout; every GEMM operand
is first cast to bf16 by its own kernel). Caches could not do better than this; the current
kernels often do worse (see docs/KERNELS.md). FLOPs: 2 per multiply-add; pointwise and
reduction kernels count their arithmetic roughly (it never limits them).

    python3 scripts/kernel_model.py [--batch 16] [--source 256] [--target 256]
"""
import argparse

D, F, H, DK, V = 512, 1024, 6, 64, 32128
I = H * DK  # 384
ENC_LAYERS = DEC_LAYERS = 8
PARAMS = 76961152
BW = 3.35e12  # H100 SXM HBM3, bytes/s
PEAK = 989e12  # H100 SXM dense bf16 tensor, FLOP/s
FP32 = 4


class Kernel:
    def __init__(self, family, name, shape, nbytes, flops, note=""):
        self.family, self.name, self.shape = family, name, shape
        self.bytes, self.flops, self.note = float(nbytes), float(flops), note

    def bound_s(self):
        return max(self.bytes / BW, self.flops / PEAK)

    def limiter(self):
        return "compute" if self.flops / PEAK > self.bytes / BW else "memory"


def model(batch, source, target):
    ts, tt = batch * source, batch * target  # tokens
    k = {}

    def add(key, *args, **kw):
        k[key] = Kernel(*args, **kw)

    n, nf = ts * D, ts * F
    add("add", "pointwise", "add_forward (residual)", f"{ts}x{D}", 3 * n * FP32, n)
    add("add_bwd", "pointwise", "add_backward (da copy + db +=)", f"{ts}x{D}", 5 * n * FP32, n)
    add("axpy", "pointwise", "axpy (gradient accumulation)", f"{ts}x{D}", 3 * n * FP32, 2 * n)
    add("dropout", "pointwise", "dropout_forward p=0.1", f"{ts}x{D}", 2 * n * FP32, n)
    add("dropout_ff", "pointwise", "dropout_forward p=0.1 (FFN hidden)", f"{ts}x{F}", 2 * nf * FP32, nf)
    add("ggelu", "pointwise", "gated_gelu_forward", f"{ts}x{F}", 3 * nf * FP32, 20 * nf)
    add("ggelu_bwd", "pointwise", "gated_gelu_backward", f"{ts}x{F}", 5 * nf * FP32, 40 * nf)
    add("rms", "rmsnorm", "rmsnorm_forward", f"{ts}x{D}", (2 * n + D + ts) * FP32, 4 * n)
    add("rms_bwd", "rmsnorm", "rmsnorm_backward (dx + dweight kernels)", f"{ts}x{D}", (5 * n + D + 2 * ts) * FP32, 8 * n)
    rows = batch * H * source
    add("softmax", "softmax", "softmax_forward (not in the step)", f"{rows}x{source}", 2 * rows * source * FP32,
        4 * rows * source)
    add("softmax_bwd", "softmax", "softmax_backward (not in the step)", f"{rows}x{source}", 3 * rows * source * FP32,
        3 * rows * source)
    add("emb", "embedding", "embedding_forward", f"{ts}x{D}", 2 * n * FP32 + ts * 8, 0)
    add("emb_bwd", "embedding", "embedding_backward (atomics)", f"{ts}x{D}", 3 * n * FP32 + ts * 8, n)
    nl = tt * V
    add("ce", "cross_entropy", "cross_entropy_forward", f"{tt}x{V}", nl * FP32 + tt * 16, 4 * nl)
    add("ce_bwd", "cross_entropy", "cross_entropy_backward", f"{tt}x{V}", 2 * nl * FP32 + tt * 16, 4 * nl)

    def attention(key, name, q_tokens, k_tokens, q_len, k_len, causal):
        core = batch * H * q_len * k_len * DK * (0.5 if causal else 1.0)
        fwd_bytes = (2 * q_tokens + 2 * k_tokens) * I * FP32 + batch * H * q_len * FP32
        bwd_bytes = (3 * q_tokens + 4 * k_tokens) * I * FP32 + batch * H * q_len * FP32
        add(key, "attention", f"attention_forward {name}", f"{batch}x{q_len}x{k_len}x{H}x{DK}", fwd_bytes, 4 * core)
        add(key + "_bwd", "attention", f"attention_backward {name}", f"{batch}x{q_len}x{k_len}x{H}x{DK}", bwd_bytes,
            10 * core)

    attention("att_enc", "encoder self", ts, ts, source, source, False)
    attention("att_dec", "decoder self causal", tt, tt, target, target, True)
    attention("att_cross", "cross", tt, ts, target, source, False)
    add("cast_act", "bf16 cast", "cast_f32_to_bf16 (activation operand)", f"{ts}x{D}", 6 * n, 0)
    add("sumsq", "reduce", "sum_of_squares (gradient norm)", f"{PARAMS}", PARAMS * FP32, 2 * PARAMS)
    add("adamw", "pointwise", "adamw_step (all parameters)", f"{PARAMS}", 7 * PARAMS * FP32, 15 * PARAMS)

    def gemm(m, n_, k_):
        return 2 * (m * k_ + n_ * k_) + 4 * m * n_, 2.0 * m * n_ * k_

    for key, (tokens, din, dout) in {"g_qkv": (ts, D, I), "g_o": (ts, I, D), "g_wi": (ts, D, F), "g_wo": (ts, F, D),
                                     "g_lm": (tt, D, V)}.items():
        b, f = gemm(tokens, dout, din)
        add(key, "gemm", f"gemm {tokens}x{din} -> {dout} (cuBLASLt, bf16 in, f32 out)", f"{tokens}x{din}x{dout}", b, f)

    # One training step: (kernel, count) per launch site, forward then backward.
    steps = []

    def use(key, count):
        steps.append((k[key], count))

    # Forward.
    use("emb", 2)
    use("dropout", (1 + 2 * ENC_LAYERS + 1) + (1 + 3 * DEC_LAYERS + 1))
    use("dropout_ff", ENC_LAYERS + DEC_LAYERS)
    use("rms", (2 * ENC_LAYERS + 1) + (3 * DEC_LAYERS + 1))
    use("add", 2 * ENC_LAYERS + 3 * DEC_LAYERS)
    use("ggelu", ENC_LAYERS + DEC_LAYERS)
    use("att_enc", ENC_LAYERS)
    use("att_dec", DEC_LAYERS)
    use("att_cross", DEC_LAYERS)
    use("ce", 1)
    # Backward.
    use("ce_bwd", 1)
    use("dropout", (1 + 2 * ENC_LAYERS + 1) + (1 + 3 * DEC_LAYERS + 1))
    use("dropout_ff", ENC_LAYERS + DEC_LAYERS)
    use("rms_bwd", (2 * ENC_LAYERS + 1) + (3 * DEC_LAYERS + 1))
    use("add_bwd", 2 * ENC_LAYERS + 3 * DEC_LAYERS)
    # residual forks (hidden -> norm and add) and the encoder output read by 16 cross k/v linears
    use("axpy", 2 * ENC_LAYERS + 3 * DEC_LAYERS + (2 * DEC_LAYERS - 1))
    use("ggelu_bwd", ENC_LAYERS + DEC_LAYERS)
    use("att_enc_bwd", ENC_LAYERS)
    use("att_dec_bwd", DEC_LAYERS)
    use("att_cross_bwd", DEC_LAYERS)
    use("emb_bwd", 2)
    use("sumsq", 1)
    use("adamw", 1)

    # GEMMs: forward y = x W^T, backward dx = dy W and dW = dy^T x (same FLOPs and operand
    # sizes up to the transposes). Every GEMM call casts both operands to bf16 (6 bytes per
    # element: read f32, write bf16).
    linears = []  # (tokens, in, out, count)
    linears += [(ts, D, I, 3 * ENC_LAYERS), (ts, I, D, ENC_LAYERS), (ts, D, F, 2 * ENC_LAYERS), (ts, F, D, ENC_LAYERS)]
    linears += [(tt, D, I, 3 * DEC_LAYERS), (tt, I, D, DEC_LAYERS)]  # decoder self attention
    linears += [(tt, D, I, DEC_LAYERS), (ts, D, I, 2 * DEC_LAYERS), (tt, I, D, DEC_LAYERS)]  # cross attention
    linears += [(tt, D, F, 2 * DEC_LAYERS), (tt, F, D, DEC_LAYERS), (tt, D, V, 1)]
    gemm_bytes = gemm_flops = cast_bytes = gemm_time = 0.0
    gemm_calls = 0
    for tokens, din, dout, count in linears:
        for m, n_, k_, a_elems, b_elems in [
                (tokens, dout, din, tokens * din, dout * din),  # forward
                (tokens, din, dout, tokens * dout, dout * din),  # dx
                (dout, din, tokens, tokens * dout, tokens * din)]:  # dW
            b, f = gemm(m, n_, k_)
            gemm_bytes += count * b
            gemm_flops += count * f
            gemm_time += count * max(b / BW, f / PEAK)
            cast_bytes += count * 6 * (a_elems + b_elems)
            gemm_calls += count
    return k, steps, (gemm_bytes, gemm_flops, gemm_calls, gemm_time), cast_bytes


def fmt_bytes(b):
    return f"{b / 1e9:.3f} GB" if b >= 1e8 else f"{b / 1e6:.2f} MB"


def fmt_time(s):
    return f"{s * 1e6:.1f}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--source", type=int, default=256)
    parser.add_argument("--target", type=int, default=256)
    a = parser.parse_args()
    kernels, steps, (g_bytes, g_flops, g_calls, gemm_time), cast_bytes = model(a.batch, a.source, a.target)

    print(f"MolT5-small, batch {a.batch}, source {a.source}, target {a.target}; H100 SXM: "
          f"{BW / 1e12:.2f} TB/s, {PEAK / 1e12:.0f} TFLOP/s dense bf16\n")
    print("| family | kernel | shape | bytes | FLOPs | FLOP/byte | H100 bound (us) | limited by |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for kern in kernels.values():
        ai = kern.flops / kern.bytes if kern.bytes else 0
        print(f"| {kern.family} | {kern.name} | {kern.shape} | {fmt_bytes(kern.bytes)} | {kern.flops / 1e9:.3f} G | "
              f"{ai:.2f} | {fmt_time(kern.bound_s())} | {kern.limiter()} |")

    families = {}
    for kern, count in steps:
        fam = families.setdefault(kern.family, [0, 0.0, 0.0, 0.0])
        fam[0] += count
        fam[1] += count * kern.bytes
        fam[2] += count * kern.flops
        fam[3] += count * kern.bound_s()
    families["bf16 cast"] = [2 * g_calls, cast_bytes, 0.0, cast_bytes / BW]
    families["gemm (cuBLASLt)"] = [g_calls, g_bytes, g_flops, gemm_time]
    total_time = sum(f[3] for f in families.values())
    print("\nPer training step (forward + backward + AdamW), summing each launch's bound:\n")
    print("| family | launches | bytes | FLOPs | H100 bound (ms) | share |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (count, nbytes, flops, t) in sorted(families.items(), key=lambda item: -item[1][3]):
        print(f"| {name} | {count} | {fmt_bytes(nbytes)} | {flops / 1e12:.4f} T | {t * 1e3:.3f} | {100 * t / total_time:.1f}% |")
    total_bytes = sum(f[1] for f in families.values())
    total_flops = sum(f[2] for f in families.values())
    print(f"| **total** | {sum(f[0] for f in families.values())} | {fmt_bytes(total_bytes)} | {total_flops / 1e12:.4f} T | "
          f"{total_time * 1e3:.3f} | 100% |")
    print(f"\nGEMMs: {g_calls} calls, {g_flops / 1e12:.3f} TFLOP ({g_flops / PEAK * 1e3:.3f} ms at peak), "
          f"{fmt_bytes(g_bytes)}; summed per-call bound {gemm_time * 1e3:.3f} ms = {100 * gemm_time / total_time:.1f}% "
          f"of the step bound; with their bf16 casts "
          f"{100 * (gemm_time + cast_bytes / BW) / total_time:.1f}%.")


if __name__ == "__main__":
    main()
