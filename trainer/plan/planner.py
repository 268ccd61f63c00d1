"""The plan before a run: parameters, tokens, epochs, FLOPs, time, memory, energy, and what looks wrong.

Every figure comes from a named formula or a measurement, and says so:
- parameters, FLOPs a token and bytes of state: trainer.model.formulas.figures_for (the parameter count is
  exact for nanoGPT's GPT), computed once a plan and handed to the size check and the memory model;
- training FLOPs: flops_per_token (6·N + 12·L·H·Q·T, REFERENCE.md section 4) × tokens/iter × max_iters;
- evaluation FLOPs: the forward third of that per token, (6·N + 12·L·H·Q·T) / 3 = 2·N + 4·L·H·Q·T, over
  2 splits × eval_iters × batch_size × block_size tokens, at iteration 0 and every eval_interval
  (max_iters // eval_interval + 1 evaluations, as nanoGPT);
- HellaSwag FLOPs (hellaswag_interval > 0): the same forward FLOPs a position over HELLASWAG_POSITIONS_PER_EXAMPLE
  padded positions (4 rows) × the examples scored (hellaswag_limit, else all 10,042), at every multiple of the
  interval and at max_iters: an estimate on the high side (attention over rows shorter than block_size and the
  head on ending tokens only cost less), and its time at the expected MFU a floor (one (4, T) forward an example
  is latency-bound, below that MFU);
- time: FLOPs ÷ (peak × expected MFU), the peak of the precision the run will use (trainer.model.precision:
  TF32, half the bf16 peak, for fp32 on CUDA), the MFU from this machine's earlier runs of the same model
  and batch shape when there are any (trainer.plan.history), else the default for the device class below;
  checkpoints add their bytes (ModelFigures.checkpoint_bytes: fp32 weights 4·N + AdamW moments 8·N) at
  an assumed 1 GB/s disk;
- memory: trainer.plan.memory.estimate_memory;
- energy: the card's typical board power × time.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from trainer.config import RunConfig
from trainer.data import hellaswag  # the validation split's size (stdlib imports only)
from trainer.model.formulas import ModelFigures, figures_for, format_count
from trainer.observe.hardware import card_spec, resolve_peak
from trainer.observe.metrics import hellaswag_scorings
from trainer.plan.memory import accumulation_for, estimate_memory, largest_fitting_batch
from trainer.plan.history import earlier_runs
from trainer.model.precision import peak_for_precision, resolve_precision

# Expected MFU when no earlier run measured one. Datacenter cards: nanoGPT's GPT-2 124M reaches 37% on an
# A100 and ≈ 33% true MFU on an H100 with torch.compile (REFERENCE.md section 4): 0.35. Other cards
# (GeForce, workstation, L4/L40S): no published nanoGPT figure; 0.30 is our assumption, to be replaced by
# a measurement (the planner prefers earlier runs). Without torch.compile nanoGPT's iteration took 250 ms
# instead of 135 ms (its README): × 0.54.
DATACENTER_MFU = 0.35
OTHER_CARD_MFU = 0.30
NO_COMPILE_FACTOR = 135 / 250
DATACENTER_LABELS = ("A100", "H100", "H200", "B200")
DISK_BYTES_PER_SEC = 1e9  # assumed checkpoint write speed
SIZE_CLAIM_TOLERANCE = 0.10
MANY_EPOCHS = 4.0
FEW_EPOCHS = 0.5
MEMORY_NEAR_LIMIT = 0.90
HELLASWAG_POSITIONS_PER_EXAMPLE = 360.5
"""Mean padded positions of one example's (4, T) batch (trainer.train.hellaswag.example_batch), measured over
the 10,042 validation examples with the GPT-2 BPE at block_size 1024 (359.4 at 128)."""
ASSUMED_SCALING = 0.90  # tokens/s on N GPUs ÷ (N × on one): assumed, the goal; bench/ddp.py measures it


@dataclass(frozen=True, kw_only=True)
class Plan:
    params: int
    """nanoGPT's count (no position embedding)."""
    params_with_embeddings: int
    tokens_per_iter: int
    dataset_tokens: int | None
    """Training tokens of the data, or None when unknown."""
    dataset_tokens_exact: bool
    """True when counted (prepared data, FineWeb's token_count); False for an estimate."""
    epochs: float | None
    """max_iters × tokens_per_iter / dataset_tokens: how many times the run sees each token."""
    total_flops: float
    """Training, evaluation and HellaSwag FLOPs."""
    expected_mfu: float | None
    expected_mfu_source: str
    est_seconds: float | None
    """Training + evaluations + HellaSwag + checkpoints; None when no peak and no earlier run are known."""
    est_memory_bytes: int
    memory_breakdown: dict[str, int]
    device_memory_bytes: int | None
    max_fitting_batch: int | None
    """The largest micro-batch whose estimate fits device_memory_bytes; None when the memory is unknown."""
    energy_kwh: float | None
    cost: float | None
    warnings: list[str]
    # --- the parts behind the totals (added to the contract, all derived above) ---
    flops_per_token: int = 0
    train_flops: float = 0.0
    eval_flops: float = 0.0
    eval_count: int = 0
    checkpoint_count: int = 0
    checkpoint_bytes: int = 0
    train_seconds: float | None = None
    eval_seconds: float | None = None
    hellaswag_flops: float = 0.0
    hellaswag_count: int = 0
    """HellaSwag scorings in the run (hellaswag_interval > 0), each of hellaswag_examples examples."""
    hellaswag_examples: int = 0
    hellaswag_seconds: float | None = None
    checkpoint_seconds: float = 0.0
    device_name: str | None = None
    peak_flops: float | None = None
    peak_source: str = ""
    memory_allocator_bytes: int = 0
    """The estimate less the CUDA context: comparable to torch.cuda.max_memory_reserved()."""
    board_watts: float | None = None
    notes: list[str] = field(default_factory=list)
    """The assumptions behind the figures, one line each."""
    gpus: int = 1
    """GPUs the run is planned on (DDP through torchrun): memory is per GPU, time and energy for all of them."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- size claims in a preset's name or description -------------------------------------------------------

# "125M", "~84M", "124m", "1.5B" as a parameter count: not followed by "tokens"/"iterations", not inside a
# longer word or number.
_SIZE = re.compile(r"(?<![\w.])~?(\d+(?:\.\d+)?)\s?([mMbB])(?![\w])(?!\s*(?:tokens?|tok|iter))")


def size_claims(text: str) -> list[tuple[str, float]]:
    """Every parameter-count claim in `text` as (as written, parameters)."""
    claims = []
    for match in _SIZE.finditer(text):
        scale = 1e6 if match.group(2) in "mM" else 1e9
        claims.append((match.group(0), float(match.group(1)) * scale))
    return claims


def _close(claimed: float, actual: int, tolerance: float) -> bool:
    return abs(claimed - actual) <= tolerance * actual


def size_claim_warnings(config: RunConfig, figures: ModelFigures | None = None) -> list[str]:
    """Warnings for size claims that are off by more than 10% from both exact counts.

    The name is always checked. A description that already states the true count (a figure within 1% of
    it, as our shipped presets do: "they called it ~125M; it is 63.52M") is taken to quote the other
    figures, not claim them; any other description's claims are checked like the name.
    figures: `figures_for(config)` when the caller has it (computed here otherwise).
    """
    count = (figures if figures is not None else figures_for(config)).params
    actual = (count.nanogpt, count.total)

    def off(claimed: float) -> bool:
        return not any(_close(claimed, a, SIZE_CLAIM_TOLERANCE) for a in actual)

    found = [("name", claim) for claim in size_claims(config.name)]
    description = size_claims(config.description)
    if not any(_close(value, a, 0.01) for _, value in description for a in actual):
        found += [("description", claim) for claim in description]
    return [f"{where} says {text.strip()} but the model has {format_count(count.nanogpt)} parameters "
            f"(nanoGPT count; {format_count(count.total)} with position embeddings)"
            for where, (text, value) in found if off(value)]


# --- expected MFU --------------------------------------------------------------------------------------

def default_mfu(device_name: str | None, compiled: bool) -> tuple[float, str]:
    """The stated default MFU for a device class (see the constants above) and its label."""
    spec = card_spec(device_name) if device_name else None
    if spec is not None and spec.label.startswith(DATACENTER_LABELS):
        mfu, why = DATACENTER_MFU, "default for datacenter cards (nanoGPT: 37% A100, ≈ 33% H100)"
    elif spec is not None:
        mfu, why = OTHER_CARD_MFU, "assumed default for GeForce/workstation cards (no earlier run to measure)"
    else:
        mfu, why = OTHER_CARD_MFU, "assumed default for a device not in the table (no earlier run to measure)"
    if not compiled:
        mfu *= NO_COMPILE_FACTOR
        why += ", × 0.54 without torch.compile (nanoGPT: 135 vs 250 ms/iter)"
    return mfu, why


def _on_cuda(config: RunConfig, device_name: str | None) -> bool:
    if config.device in ("cpu", "mps"):
        return False
    return not (device_name or "").lower().startswith(("cpu", "apple"))


# --- the plan -----------------------------------------------------------------------------------------

def make_plan(config: RunConfig, *, dataset_tokens: int | None = None, dataset_tokens_exact: bool = False,
              device_name: str | None = None, device_memory_bytes: int | None = None,
              peak_flops: float | None = None, runs_dir: Path | None = None,
              price_per_kwh: float | None = None, peak_source: str | None = None,
              bf16_supported: bool = True, figures: ModelFigures | None = None) -> Plan:
    """Plan `config` on a device (name, memory, peak FLOP/s; each may be unknown) and a dataset size.

    peak_flops None with a device in the peak table uses the table's figure; peak_source labels a
    measured or user-given peak ("measured bf16 matmul", "--peak-tflops 120"). Either is the bf16 peak:
    the plan holds the run to the peak of the precision it will run in (trainer.model.precision), as the loop
    does. bf16_supported: whether the CUDA card runs bf16 (dtype "auto" is fp16 on one that does not).
    figures: `figures_for(config)` when the caller has it; computed here once otherwise and handed on.
    """
    if figures is None:
        figures = figures_for(config)
    count = figures.params
    warnings = size_claim_warnings(config, figures)
    notes: list[str] = []
    on_cuda = _on_cuda(config, device_name)
    compiled = config.compile if config.compile is not None else on_cuda
    # The loop's own decision (trainer.model.precision), so plan, memory and run agree on what runs.
    precision = resolve_precision(config.dtype, on_cuda=on_cuda, bf16_supported=bf16_supported,
                                  device_name=device_name or "this GPU")

    # tokens and epochs
    tpi = config.tokens_per_iter
    run_tokens = tpi * config.max_iters
    epochs = run_tokens / dataset_tokens if dataset_tokens else None
    if epochs is not None:
        approx = "" if dataset_tokens_exact else "≈ "
        size = f"{approx}{format_count(dataset_tokens)} tokens"
        if epochs > MANY_EPOCHS:
            warnings.append(f"the run sees each token {approx}{epochs:.1f} times ({format_count(run_tokens)} "
                            f"tokens from {size}): expect overfitting; add data or lower max_iters")
        elif epochs < FEW_EPOCHS:
            warnings.append(f"only {approx}{epochs:.0%} of the dataset is seen ({format_count(run_tokens)} "
                            f"of {size}): raise max_iters or use less data")

    # FLOPs
    fpt = figures.flops_per_token
    train_flops = float(fpt) * run_tokens
    eval_count = config.max_iters // config.eval_interval + 1
    eval_tokens = 2 * config.eval_iters * config.batch_size * config.block_size
    eval_flops = float(eval_count * eval_tokens) * fpt / 3
    hellaswag_count, hellaswag_examples, hellaswag_flops = hellaswag_cost(config, fpt)
    total_flops = train_flops + eval_flops + hellaswag_flops
    checkpoint_count = config.max_iters // config.eval_interval + 1
    checkpoint_bytes = figures.checkpoint_bytes
    checkpoint_seconds = checkpoint_count * checkpoint_bytes / DISK_BYTES_PER_SEC
    notes.append(f"evaluations: {eval_count} × 2 splits × {config.eval_iters} batches, forward only "
                 "(2·N + 4·L·H·Q·T FLOPs a token)")
    if hellaswag_count:
        notes.append(f"HellaSwag: {hellaswag_count} × {hellaswag_examples:,} examples × ≈ "
                     f"{HELLASWAG_POSITIONS_PER_EXAMPLE:g} positions, forward only (FLOPs on the high side); its time at "
                     "the expected MFU is a floor: one small forward an example runs below it (bench/hellaswag.py)")
    notes.append(f"checkpoints: {'' if config.always_save_checkpoint else 'at most '}{checkpoint_count} × "
                 f"{checkpoint_bytes / 1e9:.2f} GB at an assumed 1 GB/s")

    # peak and expected MFU
    if peak_flops is None and device_name and not on_cuda:
        peak_source = "unknown: CPUs have no tensor-core peak in the table; pass --peak-tflops"
    elif peak_flops is None and device_name:
        peak_flops, table_source = resolve_peak(device_name)
        peak_source = peak_source or table_source
    elif peak_flops is not None and peak_source is None:
        peak_source = "given"
    peak_source = peak_source or "unknown: no device given"
    peak_flops, peak_source = peak_for_precision(peak_flops, peak_source, precision, on_cuda)
    history = earlier_runs(Path(runs_dir) if runs_dir is not None else Path("runs"), config, device_name,
                           precision, compiled) if device_name else None
    expected_mfu: float | None = None
    achieved: float | None = None  # FLOP/s the run is expected to sustain
    if peak_flops is not None:
        if history is not None and history.median_mfu is not None:
            expected_mfu, mfu_source = history.median_mfu, history.source
        else:
            expected_mfu, mfu_source = default_mfu(device_name, compiled)
        achieved = peak_flops * expected_mfu
    elif history is not None and history.median_flops_per_sec is not None:
        achieved = history.median_flops_per_sec
        mfu_source = (f"unknown (no peak); time from the {achieved / 1e12:.3g} TFLOP/s measured in "
                      + history.source.removeprefix("from "))
    else:
        mfu_source = peak_source if peak_source.startswith("unknown") else "unknown: " + peak_source
    train_seconds = train_flops / achieved if achieved else None
    eval_seconds = eval_flops / achieved if achieved else None
    hellaswag_seconds = hellaswag_flops / achieved if achieved else None
    est_seconds = train_seconds + eval_seconds + hellaswag_seconds + checkpoint_seconds if achieved else None

    # memory
    memory = estimate_memory(config, on_cuda=on_cuda, compiled=compiled, bf16_supported=bf16_supported,
                             figures=figures)
    max_batch = None
    if device_memory_bytes:
        max_batch = largest_fitting_batch(config, device_memory_bytes, on_cuda=on_cuda, compiled=compiled,
                                          bf16_supported=bf16_supported, figures=figures)
        gb_need, gb_have = memory.total_bytes / 1e9, device_memory_bytes / 1e9
        if memory.total_bytes > device_memory_bytes:
            if max_batch == 0:
                fix = "not even a micro-batch of 1 fits: pick a smaller model or block_size"
            else:
                fix = (f"the largest micro-batch that fits is ≈ {max_batch}: --set batch_size={max_batch} "
                       f"gradient_accumulation_steps={accumulation_for(config, max_batch)} keeps ≈ the "
                       "tokens per iteration")
            warnings.append(f"memory ≈ {gb_need:.1f} GB estimated for micro-batch {config.batch_size} exceeds "
                            f"the device's {gb_have:.1f} GB; {fix}")
        elif memory.total_bytes > MEMORY_NEAR_LIMIT * device_memory_bytes:
            warnings.append(f"memory ≈ {gb_need:.1f} GB estimated is {memory.total_bytes / device_memory_bytes:.0%} "
                            f"of the device's {gb_have:.1f} GB: close to the limit; the estimate can be "
                            "off by 15%")
    notes.append(f"memory: {memory.precision}, flash attention {'on' if memory.flash_attention else 'off'}, "
                 f"torch.compile {'on' if memory.compiled else 'off'} (trainer.plan.memory)")

    # energy
    spec = card_spec(device_name) if device_name else None
    watts = spec.board_watts if spec is not None else None
    energy = watts * est_seconds / 3.6e6 if watts is not None and est_seconds is not None else None
    cost = energy * price_per_kwh if energy is not None and price_per_kwh is not None else None
    if energy is not None:
        notes.append(f"energy: the {spec.label}'s typical board power {watts:g} W × the estimated time")

    return Plan(
        params=count.nanogpt, params_with_embeddings=count.total, tokens_per_iter=tpi,
        dataset_tokens=dataset_tokens, dataset_tokens_exact=bool(dataset_tokens_exact and dataset_tokens),
        epochs=epochs, total_flops=total_flops, expected_mfu=expected_mfu, expected_mfu_source=mfu_source,
        est_seconds=est_seconds, est_memory_bytes=memory.total_bytes, memory_breakdown=dict(memory.breakdown),
        device_memory_bytes=device_memory_bytes, max_fitting_batch=max_batch, energy_kwh=energy, cost=cost,
        warnings=warnings, flops_per_token=fpt, train_flops=train_flops, eval_flops=eval_flops,
        eval_count=eval_count, checkpoint_count=checkpoint_count, checkpoint_bytes=checkpoint_bytes,
        train_seconds=train_seconds, eval_seconds=eval_seconds, hellaswag_flops=hellaswag_flops,
        hellaswag_count=hellaswag_count, hellaswag_examples=hellaswag_examples, hellaswag_seconds=hellaswag_seconds,
        checkpoint_seconds=checkpoint_seconds, device_name=device_name,
        peak_flops=peak_flops, peak_source=peak_source, memory_allocator_bytes=memory.allocator_bytes,
        board_watts=watts, notes=notes,
    )


def hellaswag_cost(config: RunConfig, flops_per_token: int) -> tuple[int, int, float]:
    """(scorings, examples each, FLOPs in all) of the run's HellaSwag: every hellaswag_interval iterations and at
    max_iters (trainer.train.hellaswag.HellaSwagAtBoundary.due), forward only, (0, 0, 0.0) when off."""
    count = hellaswag_scorings(config.hellaswag_interval, config.max_iters)
    if count == 0:
        return 0, 0, 0.0
    examples = min(config.hellaswag_limit, hellaswag.EXAMPLES) if config.hellaswag_limit else hellaswag.EXAMPLES
    positions = min(HELLASWAG_POSITIONS_PER_EXAMPLE, 4 * config.block_size)
    return count, examples, count * examples * positions * flops_per_token / 3


def across_gpus(plan: Plan, config: RunConfig, gpus: int) -> Plan:
    """The plan for `gpus` GPUs under DDP (trainer.train.distributed): every GPU holds the whole model, its
    optimizer and one micro-batch's activations, plus DDP's gradient buckets (one fp32 copy of the gradients);
    training time divides by gpus × ASSUMED_SCALING; evaluations and HellaSwag by gpus (each rank runs its
    share of the windows and examples: trainer.train.evaluator, trainer.train.hellaswag), checkpoints (rank 0)
    not; energy counts every card."""
    if gpus <= 1:
        return plan
    warnings, notes = list(plan.warnings), list(plan.notes)
    if config.gradient_accumulation_steps % gpus:
        warnings.append(f"{gpus} GPUs do not divide gradient_accumulation_steps {config.gradient_accumulation_steps}"
                        f"; `fwtui train --gpus {gpus}` refuses it: --set gradient_accumulation_steps="
                        f"{max(1, config.gradient_accumulation_steps // gpus) * gpus}")
    buckets = 4 * plan.params_with_embeddings  # fp32 gradient buckets, bytes
    breakdown = {**plan.memory_breakdown, "ddp_buckets": buckets}
    memory = plan.est_memory_bytes + buckets
    if plan.device_memory_bytes and memory > plan.device_memory_bytes >= plan.est_memory_bytes:
        warnings.append(f"memory ≈ {memory / 1e9:.1f} GB per GPU with DDP's gradient buckets exceeds the "
                        f"device's {plan.device_memory_bytes / 1e9:.1f} GB; lower batch_size")
    train = plan.train_seconds / (gpus * ASSUMED_SCALING) if plan.train_seconds is not None else None
    evals = plan.eval_seconds / gpus if plan.eval_seconds is not None else None  # 1/N of the forwards a rank
    hellaswag = plan.hellaswag_seconds / gpus if plan.hellaswag_seconds is not None else None
    total = (train + (evals or 0.0) + (hellaswag or 0.0) + plan.checkpoint_seconds if train is not None else None)
    energy = plan.energy_kwh * gpus * total / plan.est_seconds if plan.energy_kwh and total else None
    notes.append(f"{gpus} GPUs: memory per GPU (+ DDP's fp32 gradient buckets, {buckets / 1e9:.2f} GB); training "
                 f"time ÷ ({gpus} × an assumed scaling efficiency of {ASSUMED_SCALING:.0%}, not measured: "
                 f"bench/ddp.py measures it); evaluations and HellaSwag split over the GPUs: ÷ {gpus}")
    return replace(plan, gpus=gpus, est_memory_bytes=memory, memory_breakdown=breakdown, train_seconds=train,
                   eval_seconds=evals, hellaswag_seconds=hellaswag, est_seconds=total, energy_kwh=energy,
                   cost=plan.cost * energy / plan.energy_kwh if plan.cost is not None and energy else None,
                   warnings=warnings, notes=notes)
