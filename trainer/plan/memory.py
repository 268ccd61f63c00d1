"""The VRAM a training step needs, from the config alone (no torch): REFERENCE.md section 5, term by term.

Peak memory of one optimizer step (nanoGPT's loop, AdamW, autocast) is reached at the start of the
backward pass, when every saved activation and the logits are still alive. The terms, in bytes:

- weights fp32 4·N, gradients fp32 4·N, AdamW's two fp32 moments 8·N: 16 bytes per parameter (N counts
  the position embedding too: it is trained). Gradients are allocated during backward; counting them in
  full overstates the peak by at most 4·N (small next to activations at the presets' batch sizes).
  The modern recipe: an untied head is V·C more parameters with all of these terms; Muon keeps one fp32
  momentum buffer, 4·M for its M block matrices instead of AdamW's 8·M (ModelFigures.optimizer_bytes).
- under 16-bit autocast, the bf16/fp16 copy of each matmul weight that autograd keeps for backward: 2·N.
- activations, per layer, with flash attention in 16-bit: ≈ 34·s·b·h (Korthikanti et al. 2022, table 2;
  s block, b micro-batch, h n_embd). Without flash attention (CPU, fp32) the T×T scores are kept too:
  + 5·a·s²·b (a heads). In fp32 every activation takes twice the bytes, so both terms double.
- the logits, (b, s, V): our forward computes lm_head on every position and the loss upcasts them with
  `.float()`. Eager: bf16 logits 2 (the caller holds them) + fp32 log-softmax saved for backward 4 + fp32
  gradients made at the start of backward 4 + 4 = 14 bytes an element at the peak. Compiled
  (torch.compile fuses the upcast, softmax and loss): bf16 logits 2 + bf16 gradient 2 = 4. fp32 eager: 16.
- the modern recipe's optimizer step on a GPU (MuonWithAdamW's sync-free skip of a non-finite step): each
  group updates copies of its weights and state and `torch.where` keeps either, so while a group steps
  its copies and temporaries live beside everything persistent: ≈ 16 bytes a Muon matrix parameter
  (weight and momentum copies, the Nesterov update, the stacked orthogonalisation input) and ≈ 20 an
  AdamW one (weight, step, two moments, and the update's two temporaries), one group at a time. The
  activations and logits are gone by then, so only the step's excess over them counts
  ("optimizer_step", usually 0: it shows at small micro-batches). The fused AdamW skips in its kernel.
- the caching allocator's fragmentation: a margin of 10% over the tensors above.
- the CUDA context (kernels, cuBLAS and cuDNN handles), ≈ 0.4 GB, outside `max_memory_reserved()`.

`allocator_bytes` is the figure to compare with `torch.cuda.max_memory_reserved()`; `total_bytes` (with
the context) is the one to compare with the card. The constants are first estimates from the formulas:
bench/calibrate.py measures them on a GPU. The per-parameter terms come from the config's ModelFigures
(trainer.model.formulas), which a caller that has them hands in, so nothing here recounts the parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainer.config import RunConfig
# The per-parameter byte counts live with the figures they make (trainer.model.formulas).
from trainer.model.formulas import ModelFigures, figures_for
from trainer.model.precision import bytes_per_activation, resolve_precision

ACTIVATION_BYTES_PER_SBH = 34  # per layer, 16-bit, flash attention (Korthikanti et al. 2022)
ATTENTION_SCORE_BYTES_PER_ASSB = 5  # per layer without flash attention: scores, softmax, mask
LOGIT_BYTES_EAGER_16BIT = 14  # bf16 logits 2 + fp32 log-softmax 4 + fp32 gradients 4 + 4
LOGIT_BYTES_COMPILED_16BIT = 4  # bf16 logits 2 + bf16 gradient 2 (upcast and loss fused)
LOGIT_BYTES_FP32 = 16  # fp32 logits 4 + log-softmax 4 + gradients 4 + 4
FRAGMENTATION_MARGIN = 0.10  # caching allocator: reserved over allocated
SKIP_COPY_BYTES_MUON = 16  # a Muon matrix parameter's step copies and temporaries (see above)
SKIP_COPY_BYTES_ADAMW = 20  # an AdamW parameter's, in MuonWithAdamW
CUDA_CONTEXT_BYTES = 400 * 1024**2  # ≈ 0.3–0.5 GB on recent drivers (REFERENCE.md section 5)


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    total_bytes: int
    """What the run needs on the device: tensors, fragmentation margin and the CUDA context."""
    allocator_bytes: int
    """Tensors plus the fragmentation margin: the figure comparable to torch.cuda.max_memory_reserved()."""
    breakdown: dict[str, int]
    """Bytes per term, in the order above; the terms sum to total_bytes."""
    precision: str
    """"bfloat16", "float16" or "float32": the precision the training loop would run in
    (trainer.model.precision.resolve_precision, the loop's own decision)."""
    flash_attention: bool
    compiled: bool


def estimate_memory(config: RunConfig, *, batch_size: int | None = None, on_cuda: bool = True,
                    compiled: bool | None = None, bf16_supported: bool = True,
                    figures: ModelFigures | None = None) -> MemoryEstimate:
    """Peak training memory for `config` at micro-batch `batch_size` (default the config's).

    on_cuda: the run is on a CUDA device (flash attention in 16-bit, a CUDA context); compiled defaults
    to the config's `compile`, which is on for CUDA and off elsewhere when left to "auto".
    bf16_supported: whether the card runs bf16 (dtype "auto" is fp16 on one that does not, as in the loop).
    figures: `figures_for(config)` when the caller has it (computed here otherwise).
    """
    b = config.batch_size if batch_size is None else batch_size
    s, h, a, v = config.block_size, config.n_embd, config.n_head, config.vocab_size
    precision = resolve_precision(config.dtype, on_cuda=on_cuda, bf16_supported=bf16_supported)
    activation_bytes = bytes_per_activation(precision)  # 2 under 16-bit autocast, 4 in fp32
    half = activation_bytes == 2
    flash = on_cuda and half
    if compiled is None:
        compiled = config.compile if config.compile is not None else on_cuda
    if figures is None:
        figures = figures_for(config)

    per_layer = ACTIVATION_BYTES_PER_SBH * s * b * h
    if not flash:
        per_layer += ATTENTION_SCORE_BYTES_PER_ASSB * a * s * s * b
    # The constants above count 16-bit tensors (2 bytes a value); fp32 saves every tensor in 4.
    per_layer = per_layer * activation_bytes // 2
    if half:
        logit_bytes = LOGIT_BYTES_COMPILED_16BIT if compiled else LOGIT_BYTES_EAGER_16BIT
    else:
        logit_bytes = LOGIT_BYTES_FP32

    breakdown = {
        "weights": figures.weight_bytes,
        "gradients": figures.gradient_bytes,
        "optimizer": figures.optimizer_bytes,
        "autocast_weights": figures.autocast_copy_bytes if half else 0,
        "activations": config.n_layer * per_layer,
        "logits": logit_bytes * b * s * v,
    }
    # Muon's step copies (CUDA only: on the CPU the skip is decided on the host and nothing is copied)
    step_copies = (max(SKIP_COPY_BYTES_MUON * figures.params.muon,
                       SKIP_COPY_BYTES_ADAMW * (figures.params.total - figures.params.muon))
                   if on_cuda and figures.params.muon else 0)
    breakdown["optimizer_step"] = max(0, step_copies - breakdown["activations"] - breakdown["logits"])
    tensors = sum(breakdown.values())
    breakdown["fragmentation"] = int(FRAGMENTATION_MARGIN * tensors)
    allocator = tensors + breakdown["fragmentation"]
    breakdown["cuda_context"] = CUDA_CONTEXT_BYTES if on_cuda else 0
    return MemoryEstimate(total_bytes=allocator + breakdown["cuda_context"], allocator_bytes=allocator,
                          breakdown=breakdown, precision=precision, flash_attention=flash, compiled=compiled)


def largest_fitting_batch(config: RunConfig, memory_bytes: int, *, on_cuda: bool = True,
                          compiled: bool | None = None, bf16_supported: bool = True, limit: int = 4096,
                          figures: ModelFigures | None = None) -> int:
    """The largest micro-batch whose estimate fits in `memory_bytes`; 0 when even 1 sequence does not.

    The estimate grows with the batch, so a binary search over 1..limit finds it; the batch changes no
    figure of the model, so one ModelFigures serves every size tried.
    """
    if figures is None:
        figures = figures_for(config)

    def fits(b: int) -> bool:
        estimate = estimate_memory(config, batch_size=b, on_cuda=on_cuda, compiled=compiled,
                                   bf16_supported=bf16_supported, figures=figures)
        return estimate.total_bytes <= memory_bytes

    if not fits(1):
        return 0
    lo, hi = 1, limit  # fits(lo) holds; find the last b in [lo, hi] that fits
    if fits(hi):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def accumulation_for(config: RunConfig, batch_size: int) -> int:
    """Gradient accumulation steps that keep the config's tokens per iteration at micro-batch `batch_size`
    (rounded to the nearest whole step, at least 1)."""
    sequences = config.batch_size * config.gradient_accumulation_steps  # sequences per optimizer step
    return max(1, round(sequences / batch_size))
