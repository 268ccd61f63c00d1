"""Several processes through torchrun and DistributedDataParallel: everything distributed, in one place.

torchrun starts one process per GPU (or per CPU slot, for tests) and sets RANK, LOCAL_RANK and WORLD_SIZE.
Each process runs the same Trainer; what differs is here:

- `Dist.from_env()` reads torchrun's environment; `Dist.start()` joins the process group (nccl on CUDA,
  gloo on CPU) with a timeout and picks one device per local rank. World size 1 = no process group, and
  every method below is then a no-op, so the one-process path is unchanged.
- `wrap(model)`: DDP over the (compiled) model; `set_sync(model, last)`: gradients are all-reduced on the
  last micro-step only (set before the forward, which reads the flag too, as nanoGPT does).
- `split_accumulation`: each rank runs gradient_accumulation_steps / world_size micro-steps, so tokens per
  iteration stay the preset's (refused in one line when it does not divide).
- `mean`: SUM then divide (gloo's ReduceOp.AVG is missing or wrong in some torch versions); `sum` for
  the evaluation's and HellaSwag's per-rank sums and counts (each rank scores its share of the windows
  or examples: rank r takes r, r+N, r+2N, ...).
- `SharedControls`: at the boundaries `agreement_due` names (the start, log points, evaluations,
  HellaSwag, the end: not every step, whose host read would stall the device's queue) one small
  all_gather carries rank 0's decisions (stop, pause,
  evaluate, checkpoint, hellaswag, number of samples) and every rank's data position, so every rank does
  the same thing at the same boundary and none waits forever. A stop asked of any rank (SIGTERM from
  torchrun reaches them all) stops every rank.
"""

from __future__ import annotations

import datetime
import inspect
import os
import typing
from dataclasses import dataclass, field, fields

import torch
import torch.distributed as dist

from trainer.errors import ConfigError, FwtuiError
from trainer.train.controls import Controls, Requests, SampleRequest

TIMEOUT_ENV = "FWTUI_DIST_TIMEOUT"
"""Seconds a collective may wait for the other ranks (default 1800: data preparation on rank 0 fits)."""


class RankStartError(FwtuiError):
    """A rank could not join the process group (NCCL error, busy port, a peer that never came)."""


@dataclass
class Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: str = "cpu"
    """This rank's torch device ("cuda:LOCAL_RANK" or "cpu"), set by start()."""
    device_names: list[str] = field(default_factory=list)
    """Every rank's device name, rank order (gathered once by gather_names)."""
    owns_group: bool = False
    """True when start() made the process group (and stop() then destroys it)."""

    @classmethod
    def from_env(cls) -> "Dist":
        """torchrun's RANK, LOCAL_RANK, WORLD_SIZE; absent = one process."""
        try:
            return cls(rank=int(os.environ.get("RANK", 0)), local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                       world_size=int(os.environ.get("WORLD_SIZE", 1)))
        except ValueError as err:
            raise ConfigError(f"RANK/LOCAL_RANK/WORLD_SIZE are not integers ({err}); start with torchrun") from None

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def start(self, requested_device: str) -> str:
        """Join the process group; returns this rank's device ("cuda:LOCAL_RANK" or "cpu")."""
        cuda = requested_device != "cpu" and torch.cuda.is_available()
        self.device = f"cuda:{self.local_rank}" if cuda else "cpu"
        if not self.active:
            return self.device if cuda and requested_device.startswith("cuda") else requested_device
        if cuda:
            if self.local_rank >= torch.cuda.device_count():
                raise RankStartError(f"rank {self.rank}: LOCAL_RANK {self.local_rank} but only "
                                     f"{torch.cuda.device_count()} CUDA device(s) visible; lower --nproc_per_node")
            torch.cuda.set_device(self.local_rank)  # before anything touches the GPU
        if dist.is_initialized():  # a program that set the group up itself (bench/ddp.py) keeps it
            return self.device
        timeout = datetime.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, 1800)))
        self.owns_group = True
        try:
            dist.init_process_group("nccl" if cuda else "gloo", rank=self.rank, world_size=self.world_size,
                                    timeout=timeout,
                                    device_id=torch.device(self.device) if cuda else None)
        except Exception as err:  # noqa: BLE001 - one line naming the rank and the cause
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            raise RankStartError(f"rank {self.rank} of {self.world_size} could not join the process group: "
                                 f"{first} (a busy --master_port? another job on the GPU?)") from None
        return self.device

    def stop(self) -> None:
        """Leave the process group that start() made (one made by the caller stays)."""
        if self.active and dist.is_initialized() and self.owns_group:
            dist.destroy_process_group()
            self.owns_group = False

    def dropout_seed(self, seed: int, iter_num: int) -> int | None:
        """The torch seed this rank draws dropout from after the model is built (at iteration 0) or resumed
        (at iter_num), so the ranks' masks differ (nanoGPT seeds 1337 + rank); None for one process, which
        keeps the seed it built the model with. Distinct for every (rank, iteration) pair."""
        if not self.active:
            return None
        return seed + self.rank + self.world_size * iter_num

    # --- the model ---------------------------------------------------------------------------------------
    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """DDP over the (compiled) model; without a process group the model itself."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.local_rank] if self.device.startswith("cuda") else None
        # No buffer sync in the forward: the GPT's buffers are constants, and a forward with no collective
        # in it cannot hang when the ranks evaluate at a boundary. (torch renamed the argument.)
        no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DDP).parameters
                   else {"broadcast_buffers": False})
        return DDP(model, device_ids=ids, **no_sync)

    @staticmethod
    def set_sync(model: torch.nn.Module, last_micro_step: bool) -> None:
        """All-reduce gradients in this backward only on the last micro-step (call before the forward)."""
        if hasattr(model, "require_backward_grad_sync"):
            model.require_backward_grad_sync = last_micro_step

    def split_accumulation(self, accumulation: int) -> int:
        """Micro-steps per rank for the preset's gradient_accumulation_steps (same tokens per iteration)."""
        if accumulation % self.world_size:
            raise ConfigError(f"gradient_accumulation_steps {accumulation} does not divide over {self.world_size} "
                              f"processes; use a count that divides it, or --set gradient_accumulation_steps="
                              f"{max(1, accumulation // self.world_size) * self.world_size}")
        return accumulation // self.world_size

    # --- reductions --------------------------------------------------------------------------------------
    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean over ranks of a tensor (SUM, then divide)."""
        if not self.active:
            return value
        total = value.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total / self.world_size

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of a small tensor (one all_reduce; the tensor itself for one process). The
        evaluation and HellaSwag add their per-rank sums and counts with it, then divide."""
        if not self.active:
            return value
        total = value.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    def gather_names(self, name: str) -> list[str]:
        """Every rank's device name (a one-time object gather at the start)."""
        if not self.active:
            self.device_names = [name]
            return self.device_names
        names: list[str | None] = [None] * self.world_size
        dist.all_gather_object(names, name)
        self.device_names = [str(n) for n in names]
        return self.device_names

    def tell_others(self, news) -> None:
        """Rank 0: hand the other ranks its news (a picklable value) or its failure (an exception), so a
        rank waiting in hear_rank0 never hangs on a rank 0 that failed. No-op for one process."""
        if not self.active or not self.is_main:
            return
        box = [("error", f"{type(news).__name__}: {news}" if not isinstance(news, FwtuiError) else str(news))
               if isinstance(news, BaseException) else ("ok", news)]
        dist.broadcast_object_list(box, src=0)

    def hear_rank0(self, what: str):
        """The other ranks: wait for rank 0's news; rank 0's failure is raised here as one line."""
        box: list = [None]
        dist.broadcast_object_list(box, src=0)
        status, payload = box[0]
        if status != "ok":
            raise FwtuiError(f"rank 0 failed while {what}: {payload}")
        return payload


REQUEST_FLAGS = tuple(f.name for f in fields(Requests) if f.type in (bool, "bool"))
"""The yes/no requests of a boundary (evaluate, checkpoint, hellaswag, ...), carried to every rank."""


class SharedControls:
    """The Controls one rank's Trainer reads: rank 0's decisions, agreed by `sync()` at the boundaries
    `agreement_due` names.

    Rank 0 wraps the run's real Controls (the app, the control channel, signals feed it); the other ranks
    wrap their own (only signals feed them). Samples are written by rank 0 alone (its unwrapped model);
    the others wait for it at the next collective."""

    def __init__(self, controls: Controls, rank_dist: Dist) -> None:
        self.inner = controls
        self.dist = rank_dist
        self._agreed = Requests()
        self._paused = False
        self._stop = False
        self.positions: list[int] = []
        """Every rank's data position at the last sync (rank order): what a checkpoint saves."""

    @property
    def stop_reason(self) -> str:
        return self.inner.stop_reason or "stop requested on another rank"

    @property
    def stop_requested(self) -> bool:
        return self._stop

    @property
    def paused(self) -> bool:
        return self._paused

    def stop(self, reason: str = "stop requested") -> None:
        self.inner.stop(reason)

    def agree_stop(self) -> None:
        """Every rank learned in one collective that a rank was stopping (an evaluation cut on some rank,
        trainer.train.evaluator): the stop is agreed here, as a sync would agree it."""
        self._stop = True

    def sync(self, position: int) -> None:
        """The boundary's one collective: an all_gather of (world, 4 + F) int64 rows [stop, paused, samples,
        data position, then Requests' F flags (evaluate, checkpoint, ...)]; rank 0's row decides, any stop
        stops."""
        mine = self.inner.take() if self.dist.is_main else Requests()
        if not self.dist.is_main:
            self.inner.take()  # a rank's own requests (none but signals) are rank 0's business
        row = torch.tensor([int(self.inner.stop_requested), int(self.inner.paused), len(mine.samples), position,
                            *(int(getattr(mine, flag)) for flag in REQUEST_FLAGS)], dtype=torch.int64,
                           device=self.dist.device)
        rows = [torch.zeros_like(row) for _ in range(self.dist.world_size)]
        dist.all_gather(rows, row)
        table = torch.stack(rows).cpu().tolist()
        head = table[0]
        self._stop = self._stop or any(r[0] for r in table)
        self._paused = bool(head[1])
        samples: list[SampleRequest] = mine.samples if self.dist.is_main else []
        agreed = {flag: getattr(self._agreed, flag) or bool(value) for flag, value in zip(REQUEST_FLAGS, head[4:])}
        self._agreed = Requests(**agreed, samples=self._agreed.samples + samples)
        self.positions = [int(r[3]) for r in table]

    def take(self) -> Requests:
        agreed, self._agreed = self._agreed, Requests()
        return agreed

    def wait_while_paused(self, timeout: float = 0.2) -> bool:
        """Rank 0 waits on its own controls; every rank then syncs, so the others follow rank 0's pause."""
        if self.dist.is_main:
            self.inner.wait_while_paused(timeout)
        self.sync(self.positions[self.dist.rank] if self.positions else 0)
        return self._paused and not self._stop


def agreement_due(it: int, config, start_iter: int) -> bool:
    """Whether the ranks agree on the controls at boundary `it`: at the start, log points, evaluations,
    HellaSwag scorings and the end, where the host waits for the device anyway. Not at every step: the
    agreement's all_gather is read on the host, a wait for the device that would stall each step's queue.
    A stop, pause or request is then acted on within log_interval steps."""
    return (it == start_iter or it % config.log_interval == 0 or it % config.eval_interval == 0
            or it >= config.max_iters or bool(config.hellaswag_interval and it % config.hellaswag_interval == 0))


def shared_controls(controls: Controls, rank_dist: Dist) -> Controls | SharedControls:
    """The controls a Trainer reads: the given ones for one process, SharedControls for several."""
    return SharedControls(controls, rank_dist) if rank_dist.active else controls


def end_rank_process(code: int | None) -> typing.NoReturn:
    """End this process with exit status CODE: a torchrun rank (RANK set) without the interpreter's teardown,
    one process through sys.exit as usual. Call it last, once the rank's work is done and its files closed.

    Why: after destroy_process_group a rank's teardown sometimes aborts in C++ ("terminate called without
    an active exception", SIGABRT, after the exit handlers, with no Python frame left: a native thread, gloo's
    or pyarrow's, still joinable when the interpreter finalizes): 3 in 163 two-rank CPU runs at load 2 to 4
    on the 2-core box. torchrun then reports a rank killed and the run failed although its
    work and checkpoint were complete. So a rank runs the exit handlers itself while the interpreter is whole
    (logging's flush, torch.compile's worker pool), flushes stdout and stderr, and leaves with os._exit.
    """
    import atexit
    import sys

    code = 0 if code is None else code
    if "RANK" not in os.environ:
        sys.exit(code)
    if not isinstance(code, int):  # sys.exit("message") prints it and exits 1
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()  # noqa: SLF001 - what normal exit runs first; only the teardown after it is skipped
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            pass
    os._exit(code)
