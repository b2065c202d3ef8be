#!/usr/bin/env python3
"""Byte/FLOP model of the CUDA backend's kernels for one MolT5-small training step.

Prints the Markdown tables of docs/KERNELS.md: one row per backend call at the training shapes
(kernel launches, bytes moved, FLOPs, arithmetic intensity, the best time an H100 SXM could
reach = max(bytes / bandwidth, FLOPs / peak)), then the per-step totals by family, GEMMs
included.

Bytes are the global-memory traffic of the kernels *as the engine launches them*: each input
read once, each output written once (a read-modify-write or an atomic counts twice), for the
launches the backend makes (e.g. the RMSNorm backward is three kernels, two of which read x and
dout; a GEMM operand that is not a registered bf16 weight copy is first cast to bf16 by its own
kernel). Re-reads that the kernel's structure makes and that cannot stay in L1 are counted too:
attention loads K/V once per query tile (forward) and Q/dO once per key tile (backward), and
the fused loss reads each 128 KB logits row twice. L2 may serve those re-reads, so for these
rows the memory time is an upper estimate (docs/KERNELS.md gives the compulsory figure). FLOPs:
2 per multiply-add; pointwise and reduction kernels count their arithmetic roughly (it never
limits them). The attention kernels compute in fp32 on CUDA cores, so their FLOPs are held
against the fp32 peak; everything else against the dense bf16 tensor peak.

Beyond the kernels an op launches, the step carries what the autograd tape and the optimizer
add around them, and these are counted too: the copies of gradients the tape must make
(engine/autograd/tape.cc, accumulate_grad: only a gradient sent to two inputs; a fresh one is
taken over), the zero fills of the gradient buckets and of the bias tables' gradients, and the
dW GEMMs' read of the gradient slot they accumulate into. Gradient clipping costs no pass: AdamW
reads each gradient times the clipping coefficient. A launch is never free: every kernel or
copy costs at least --min-launch-us of device time (the gap between dependent back-to-back
launches plus the ramp of a short kernel), and without CUDA graphs the host must issue each
launch (--host-launch-us); the step bound is the larger of the device time and the host issue
time.

    python3 scripts/kernel_model.py [--batch 16] [--source 256] [--target 256]
                                    [--min-launch-us 2.0] [--host-launch-us 2.5]
"""
import argparse

D, F, H, DK, V = 512, 1024, 6, 64, 32128
I = H * DK  # 384
ENC_LAYERS = DEC_LAYERS = 8
NUM_BUCKETS = 32
PARAMS = 76961152
# Parameter tensors: per encoder block q, k, v, o, wi_0, wi_1, wo + 2 norms; per decoder block
# 4 + 4 attention, 3 FFN + 3 norms; final norm and bias table per stack; shared embedding, lm_head.
PARAM_TENSORS = (9 * ENC_LAYERS + 2) + (14 * DEC_LAYERS + 2) + 2  # 190
# The multi-tensor kernels take a table of this many buffers per launch (kernels/reduce.cuh
# kSumOfSquaresSpansPerLaunch, kernels/adamw.cuh kAdamWTensorsPerLaunch): the gradient norm and
# the AdamW step each launch ceil(190 / 32) = 6 times per step, not once per tensor.
SUMSQ_SPANS_PER_LAUNCH = 32
ADAMW_TENSORS_PER_LAUNCH = 32
BW = 3.35e12  # H100 SXM HBM3, bytes/s
PEAK = 989e12  # H100 SXM dense bf16 tensor, FLOP/s
FP32_PEAK = 67e12  # H100 SXM fp32 on CUDA cores (the attention kernels), FLOP/s
FP32 = 4
ACT = 4  # bytes per activation element: 4 (training.activations f32) or 2 (bf16), set by --activations

MIN_LAUNCH_S = 2.0e-6  # set by --min-launch-us
BUCKET_BYTES = 25 * 1024 * 1024  # training.dist_bucket_mb (gradient buckets, one fill each per step)

# kernels/attention.cuh launch configuration (128 threads, 48 KB of shared memory per block).
ATT_WARPS, ATT_KEY_TILE, ATT_MAX_ROWS_PER_WARP, ATT_SHARED = 4, 32, 4, 48 * 1024
RMS_DWEIGHT_ROWS = 64  # kRmsNormDweightRowsPerChunk


class Kernel:
    def __init__(self, family, name, shape, nbytes, flops, launches=1, peak=PEAK):
        self.family, self.name, self.shape, self.launches = family, name, shape, launches
        self.bytes, self.flops, self.peak = float(nbytes), float(flops), peak

    def bound_s(self):
        """Roofline time of the call, and never less than its launches' floor."""
        return max(self.bytes / BW, self.flops / self.peak, self.launches * MIN_LAUNCH_S)

    def limiter(self):
        if self.launches * MIN_LAUNCH_S >= max(self.bytes / BW, self.flops / self.peak):
            return "launch"
        return "compute" if self.flops / self.peak > self.bytes / BW else "memory"


def attention_forward_rows(d, nb):
    """Br of attention_forward_tiles (0: does not fit)."""
    rpw = ATT_MAX_ROWS_PER_WARP
    while rpw >= 1:
        rows = rpw * ATT_WARPS
        floats = nb + rows * d + ATT_KEY_TILE * (d + 1) + ATT_KEY_TILE * d + rows * ATT_KEY_TILE + rows * d + 3 * rows
        if floats * FP32 <= ATT_SHARED:
            return rows
        rpw //= 2
    return 0


def attention_backward_tiles(d, nb):
    """(Bc, Br) of attention_backward_tiles."""
    for keys, rows in [(32, 16), (16, 16), (16, 8), (8, 8), (8, 4)]:
        floats = 2 * nb + 2 * keys * (d + 1) + 2 * rows * d + 2 * rows * keys + 2 * keys * d + 2 * rows
        if floats * FP32 <= ATT_SHARED:
            return keys, rows
    return 0, 0


def ceil_div(a, b):
    return -(-a // b)


def model(batch, source, target):
    ts, tt = batch * source, batch * target  # tokens
    k = {}

    def add(key, *args, **kw):
        k[key] = Kernel(*args, **kw)

    n, nf = ts * D, ts * F
    # Activations (and their gradients) move ACT bytes per element; weights, statistics and
    # parameter gradients FP32.
    add("axpy", "pointwise", "axpy (gradient accumulation)", f"{ts}x{D}", 3 * n * ACT, 2 * n)
    add("dropout", "pointwise", "dropout_forward p=0.1", f"{ts}x{D}", 2 * n * ACT, n)
    add("dropout_ff", "pointwise", "dropout_forward p=0.1 (FFN hidden)", f"{ts}x{F}", 2 * nf * ACT, nf)
    add("ggelu", "pointwise", "gated_gelu_forward", f"{ts}x{F}", 3 * nf * ACT, 20 * nf)
    add("ggelu_bwd", "pointwise", "gated_gelu_backward", f"{ts}x{F}", 5 * nf * ACT, 40 * nf)
    add("rms", "rmsnorm", "rmsnorm_forward (first norm of a stack)", f"{ts}x{D}", 2 * n * ACT + (D + ts) * FP32,
        4 * n)
    add("add_rms", "rmsnorm", "add_rmsnorm_forward (fused residual add)", f"{ts}x{D}",
        4 * n * ACT + (D + ts) * FP32, 5 * n)
    chunks = ceil_div(ts, RMS_DWEIGHT_ROWS)
    add("rms_bwd", "rmsnorm", "rmsnorm_backward (dx, dweight partials, reduce)", f"{ts}x{D}",
        5 * n * ACT + (3 * D + 2 * ts + 2 * chunks * D) * FP32, 8 * n, launches=3)
    rows = batch * H * source
    add("softmax", "softmax", "softmax_forward (not in the step)", f"{rows}x{source}", 2 * rows * source * ACT,
        4 * rows * source)
    add("softmax_bwd", "softmax", "softmax_backward (not in the step)", f"{rows}x{source}", 3 * rows * source * ACT,
        3 * rows * source)
    add("emb", "embedding", "embedding_forward", f"{ts}x{D}", n * FP32 + n * ACT + ts * 8, 0)
    add("emb_bwd", "embedding", "embedding_backward (atomics)", f"{ts}x{D}", n * ACT + 2 * n * FP32 + ts * 8, n)
    nl = tt * V
    # Mode mean (the trainer's default): count tokens, then one pass per token row that
    # computes the online lse and writes dlogits (the row is read twice: lse, then gradient).
    add("cap_fused", "caption loss", "caption_mean_fused (log p + dlogits)", f"{tt}x{V}",
        3 * nl * ACT + tt * (8 + 4), 8 * nl)
    groups = batch  # mode mean: one caption per group
    add("cap_small", "caption loss", "count tokens + combine + final + dlogits scale", f"{tt}",
        tt * 8 + tt * (4 + 8) + groups * batch * 8 + groups * 16 + 1024 * FP32, 4 * tt, launches=4)
    add("ce", "cross_entropy", "cross_entropy_forward (not in the step)", f"{tt}x{V}", nl * ACT + tt * 16, 4 * nl)
    add("ce_bwd", "cross_entropy", "cross_entropy_backward (not in the step)", f"{tt}x{V}", 2 * nl * ACT + tt * 16,
        4 * nl)

    def attention(key, name, q_len, k_len, causal, bias, key_mask):
        nb = NUM_BUCKETS if bias else 0
        bh = batch * H
        row = DK * ACT  # one head's row of q, k, v, out, dO, dK, dV
        mask_bytes = k_len * 4 if key_mask else 0
        # Forward: one block per Br query rows; it loads the 32-key K/V tiles up to its last
        # visible key (causal) and stops there.
        br = attention_forward_rows(DK, nb)
        fwd_tiles = 0  # (query tile, key tile) pairs visited per (batch, head)
        fwd_bytes = 0.0
        for q0 in range(0, q_len, br):
            rows_here = min(br, q_len - q0)
            key_end = min(q0 + rows_here, k_len) if causal else k_len
            tiles = ceil_div(key_end, ATT_KEY_TILE)
            fwd_tiles += tiles
            fwd_bytes += (2 * rows_here * row + rows_here * FP32 + nb * FP32 + mask_bytes +
                          2 * min(tiles * ATT_KEY_TILE, k_len) * row)
        fwd_flops = bh * fwd_tiles * br * ATT_KEY_TILE * 4 * DK
        # Backward: fill dq, D = rowsum(dO * O), then one block per Bc keys looping over the
        # query tiles of Br rows (causal: from its first visible one); dq by atomics.
        bc, brb = attention_backward_tiles(DK, nb)
        bwd_tiles = 0
        bwd_bytes = q_len * row + 2 * q_len * row + q_len * FP32  # fill dq; row_dot reads dO, O, writes D
        for k0 in range(0, k_len, bc):
            keys_here = min(bc, k_len - k0)
            bwd_bytes += 4 * keys_here * row + 2 * nb * FP32 + nb * FP32 + mask_bytes  # K, V in; dK, dV out; bias
            for q0 in range(0, q_len, brb):
                rows_here = min(brb, q_len - q0)
                if causal and q0 + rows_here - 1 < k0:
                    continue
                bwd_tiles += 1
                # Q, dO tiles, lse, D, and the dq atomics (read + write).
                bwd_bytes += 2 * rows_here * row + 2 * rows_here * FP32 + rows_here * DK * 8
        bwd_flops = bh * bwd_tiles * brb * bc * 10 * DK
        shape = f"{batch}x{q_len}x{k_len}x{H}x{DK}"
        add(key, "attention", f"attention_forward {name}", shape, bh * fwd_bytes, fwd_flops, peak=FP32_PEAK)
        add(key + "_bwd", "attention", f"attention_backward {name} (fill dq, row_dot, kernel)", shape,
            bh * bwd_bytes, bwd_flops, launches=3, peak=FP32_PEAK)

    attention("att_enc", "encoder self", source, source, False, True, True)
    attention("att_dec", "decoder self causal", target, target, True, True, False)
    attention("att_cross", "cross", target, source, False, False, True)
    add("cast_act", "bf16 cast", "convert f32 -> bf16 (activation operand; none with bf16 activations)", f"{ts}x{D}",
        6 * n, 0)
    # Both read a table of up to 32 tensors per launch (each block finds its tensor), so a launch
    # covers many small tensors; the partials (8 bytes per block) are negligible.
    sumsq_launches = ceil_div(PARAM_TENSORS, SUMSQ_SPANS_PER_LAUNCH)
    adamw_launches = ceil_div(PARAM_TENSORS, ADAMW_TENSORS_PER_LAUNCH)
    add("sumsq", "reduce", f"sum_of_squares over {PARAM_TENSORS} tensors ({SUMSQ_SPANS_PER_LAUNCH} per launch)",
        f"{PARAMS}", PARAMS * FP32, 2 * PARAMS, launches=sumsq_launches)
    add("adamw", "pointwise",
        f"adamw_step_multi + bf16 weight copy over {PARAM_TENSORS} tensors ({ADAMW_TENSORS_PER_LAUNCH} per launch)",
        f"{PARAMS}", (7 * FP32 + 2) * PARAMS, 15 * PARAMS, launches=adamw_launches)

    # What the tape adds. A first contribution to a gradient is taken over without a copy
    # when nothing else references it (engine/autograd/tape.cc, accumulate_grad); the one
    # gradient the add of a fused add_rmsnorm sends to both its inputs is copied once (a
    # device-to-device read + write of [tokens, d_model]): 2 adds per encoder block, 3 per
    # decoder block.
    add_copies = 2 * ENC_LAYERS + 3 * DEC_LAYERS
    tape_elements = (2 * ENC_LAYERS * ts + 3 * DEC_LAYERS * tt) * D
    add("tape_copy", "tape", "copy of the gradient an add passes to both inputs (D2D)", f"{add_copies} tensors",
        2 * ACT * tape_elements, 0, launches=add_copies)
    # Weight gradients go straight into their bucket slots: the dW GEMMs accumulate (beta = 1,
    # counted with the GEMMs as a read of C), embedding_backward and the RMSNorm dweight
    # reduction add into the slot. Only the relative-position bias tables still get a zeroed
    # buffer added afterwards (attention_backward accumulates into a fresh one).
    add("small_grad", "gradient accumulation", "zero + axpy of the relative-position bias tables",
        f"{ENC_LAYERS + DEC_LAYERS}x{NUM_BUCKETS}x{H}", (ENC_LAYERS + DEC_LAYERS) * NUM_BUCKETS * H * 4 * FP32, 0,
        launches=2 * (ENC_LAYERS + DEC_LAYERS))
    buckets = ceil_div(PARAMS * FP32, BUCKET_BYTES)
    add("bucket_zero", "zero fill", "fill 0 of the gradient buckets", f"{PARAMS}", PARAMS * FP32, 0, launches=buckets)

    def gemm(m, n_, k_, c_bytes=ACT):  # bf16 operands read, C written as an activation (f32 for dW)
        return 2 * (m * k_ + n_ * k_) + c_bytes * m * n_, 2.0 * m * n_ * k_

    for key, (tokens, din, dout) in {"g_qkv": (ts, D, I), "g_o": (ts, I, D), "g_wi": (ts, D, F), "g_wo": (ts, F, D),
                                     "g_lm": (tt, D, V)}.items():
        b, f = gemm(tokens, dout, din)
        add(key, "gemm", f"gemm {tokens}x{din} -> {dout} (cuBLASLt, bf16 in, {'f32' if ACT == 4 else 'bf16'} out)",
            f"{tokens}x{din}x{dout}", b, f)

    # One training step: (kernel, count) per call site, forward then backward.
    steps = []

    def use(key, count):
        steps.append((k[key], count))

    # Forward. Every residual add is fused into the norm after it (ops::add_rmsnorm); only the
    # first norm of each stack is a plain rmsnorm.
    use("emb", 2)
    use("dropout", (1 + 2 * ENC_LAYERS + 1) + (1 + 3 * DEC_LAYERS + 1))
    use("dropout_ff", ENC_LAYERS + DEC_LAYERS)
    use("rms", 2)
    use("add_rms", 2 * ENC_LAYERS + 3 * DEC_LAYERS)
    use("ggelu", ENC_LAYERS + DEC_LAYERS)
    use("att_enc", ENC_LAYERS)
    use("att_dec", DEC_LAYERS)
    use("att_cross", DEC_LAYERS)
    use("cap_fused", 1)
    use("cap_small", 1)
    # Backward (the fused add's gradient passes through: no kernel).
    use("dropout", (1 + 2 * ENC_LAYERS + 1) + (1 + 3 * DEC_LAYERS + 1))
    use("dropout_ff", ENC_LAYERS + DEC_LAYERS)
    use("rms_bwd", (2 * ENC_LAYERS + 1) + (3 * DEC_LAYERS + 1))
    # Tape accumulation (axpy from the second contribution on): the residual stream feeding a
    # norm and the next add (2 per encoder block, 3 per decoder block); the self-attention
    # input read by q, k and v (2); the FFN input read by wi_0 and wi_1 (1); the encoder output
    # read by the 16 cross-attention k/v linears (15).
    use("axpy", (2 * ENC_LAYERS + 3 * DEC_LAYERS) + 2 * (ENC_LAYERS + DEC_LAYERS) + (ENC_LAYERS + DEC_LAYERS) +
        (2 * DEC_LAYERS - 1))
    use("ggelu_bwd", ENC_LAYERS + DEC_LAYERS)
    use("att_enc_bwd", ENC_LAYERS)
    use("att_dec_bwd", DEC_LAYERS)
    use("att_cross_bwd", DEC_LAYERS)
    use("emb_bwd", 2)
    use("tape_copy", 1)
    use("small_grad", 1)
    use("bucket_zero", 1)
    use("sumsq", 1)
    use("adamw", 1)

    # GEMMs: forward y = x W^T, backward dx = dy W and dW = dy^T x (same FLOPs and operand
    # sizes up to the transposes). Weights are read from the bf16 copies AdamW writes. With f32
    # activations every other operand (x in the forward and dW, dy in dx and dW) is cast by its
    # own kernel (6 bytes per element: read f32, write bf16); bf16 activations are read as they
    # are. dW is written in f32 (the gradient slot).
    linears = []  # (tokens, in, out, count)
    linears += [(ts, D, I, 3 * ENC_LAYERS), (ts, I, D, ENC_LAYERS), (ts, D, F, 2 * ENC_LAYERS), (ts, F, D, ENC_LAYERS)]
    linears += [(tt, D, I, 3 * DEC_LAYERS), (tt, I, D, DEC_LAYERS)]  # decoder self attention
    linears += [(tt, D, I, DEC_LAYERS), (ts, D, I, 2 * DEC_LAYERS), (tt, I, D, DEC_LAYERS)]  # cross attention
    linears += [(tt, D, F, 2 * DEC_LAYERS), (tt, F, D, DEC_LAYERS), (tt, D, V, 1)]
    gemm_bytes = gemm_flops = cast_bytes = gemm_time = cast_time = 0.0
    gemm_calls = cast_calls = 0
    for tokens, din, dout, count in linears:
        for m, n_, k_, casts in [
                (tokens, dout, din, [tokens * din]),  # forward: x cast, W from its copy
                (tokens, din, dout, [tokens * dout]),  # dx: dy cast, W from its copy
                (dout, din, tokens, [tokens * dout, tokens * din])]:  # dW: dy and x cast
            weight_gradient = m == dout and k_ == tokens
            b, f = gemm(m, n_, k_, FP32 if weight_gradient else ACT)
            if weight_gradient:
                b += FP32 * m * n_  # dW accumulates into the gradient slot: C is read too (beta = 1)
            if ACT == 2:
                casts = []  # the activation operands are bf16 already
            gemm_bytes += count * b
            gemm_flops += count * f
            gemm_time += count * max(b / BW, f / PEAK, MIN_LAUNCH_S)
            cast_bytes += count * 6 * sum(casts)
            cast_time += count * sum(max(6 * c / BW, MIN_LAUNCH_S) for c in casts)
            cast_calls += count * len(casts)
            gemm_calls += count
    return k, steps, (gemm_bytes, gemm_flops, gemm_calls, gemm_time), (cast_bytes, cast_calls, cast_time)


def fmt_bytes(b):
    return f"{b / 1e9:.3f} GB" if b >= 1e8 else f"{b / 1e6:.2f} MB"


def fmt_time(s):
    return f"{s * 1e6:.1f}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--source", type=int, default=256)
    parser.add_argument("--target", type=int, default=256)
    parser.add_argument("--min-launch-us", type=float, default=2.0,
                        help="device time of the shortest launch, gap included (default 2.0)")
    parser.add_argument("--host-launch-us", type=float, default=2.5,
                        help="host time to issue one launch without CUDA graphs (default 2.5)")
    parser.add_argument("--activations", choices=["f32", "bf16"], default="f32",
                        help="training.activations: bytes per activation element (default f32)")
    a = parser.parse_args()
    global MIN_LAUNCH_S, ACT
    MIN_LAUNCH_S = a.min_launch_us * 1e-6
    ACT = 2 if a.activations == "bf16" else 4
    kernels, steps, (g_bytes, g_flops, g_calls, gemm_time), (cast_bytes, cast_calls, cast_time) = model(
        a.batch, a.source, a.target)

    print(f"MolT5-small, batch {a.batch}, source {a.source}, target {a.target}, {a.activations} activations; H100 SXM: "
          f"{BW / 1e12:.2f} TB/s, {PEAK / 1e12:.0f} TFLOP/s dense bf16 ({FP32_PEAK / 1e12:.0f} fp32 for attention)\n")
    print("| family | call | launches | shape | bytes | FLOPs | FLOP/byte | H100 bound (us) | limited by |")
    print("|---|---|---:|---|---:|---:|---:|---:|---|")
    for kern in kernels.values():
        ai = kern.flops / kern.bytes if kern.bytes else 0
        print(f"| {kern.family} | {kern.name} | {kern.launches} | {kern.shape} | {fmt_bytes(kern.bytes)} | "
              f"{kern.flops / 1e9:.3f} G | {ai:.2f} | {fmt_time(kern.bound_s())} | {kern.limiter()} |")

    families = {}
    for kern, count in steps:
        fam = families.setdefault(kern.family, [0, 0.0, 0.0, 0.0])
        fam[0] += count * kern.launches
        fam[1] += count * kern.bytes
        fam[2] += count * kern.flops
        fam[3] += count * kern.bound_s()
    families["bf16 cast"] = [cast_calls, cast_bytes, 0.0, cast_time]
    families["gemm (cuBLASLt)"] = [g_calls, g_bytes, g_flops, gemm_time]
    total_time = sum(f[3] for f in families.values())
    print("\nPer training step (forward + backward + gradient norm + AdamW), summing each call's bound:\n")
    print("| family | launches | bytes | FLOPs | H100 bound (ms) | share |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (count, nbytes, flops, t) in sorted(families.items(), key=lambda item: -item[1][3]):
        print(f"| {name} | {count} | {fmt_bytes(nbytes)} | {flops / 1e12:.4f} T | {t * 1e3:.3f} | {100 * t / total_time:.1f}% |")
    total_bytes = sum(f[1] for f in families.values())
    total_flops = sum(f[2] for f in families.values())
    print(f"| **total** | {sum(f[0] for f in families.values())} | {fmt_bytes(total_bytes)} | {total_flops / 1e12:.4f} T | "
          f"{total_time * 1e3:.3f} | 100% |")
    launches = sum(f[0] for f in families.values())
    host_time = launches * a.host_launch_us * 1e-6
    print(f"\nDevice time {total_time * 1e3:.3f} ms ({launches} launches, each at least {a.min_launch_us} us); "
          f"host issue time without CUDA graphs {host_time * 1e3:.3f} ms ({a.host_launch_us} us per launch). "
          f"**Step bound: {max(total_time, host_time) * 1e3:.3f} ms** "
          f"({'host' if host_time > total_time else 'device'}-bound). "
          f"FLOPs alone at the bf16 peak: {total_flops / PEAK * 1e3:.3f} ms.")
    print(f"\nGEMMs: {g_calls} calls, {g_flops / 1e12:.3f} TFLOP ({g_flops / PEAK * 1e3:.3f} ms at peak), "
          f"{fmt_bytes(g_bytes)}; summed per-call bound {gemm_time * 1e3:.3f} ms = {100 * gemm_time / total_time:.1f}% "
          f"of the step bound; with their {cast_calls} bf16 casts "
          f"{100 * (gemm_time + cast_bytes / BW) / total_time:.1f}%.")


if __name__ == "__main__":
    main()
