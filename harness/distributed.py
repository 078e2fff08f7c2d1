"""Data-parallel training of one trial on several GPUs, launched by torchrun or `accelerate launch`.

    torchrun --nproc_per_node 4 -m harness.cli trial trial.yaml
    accelerate launch --num_processes 4 -m harness.cli trial trial.yaml

Both start N processes with RANK / WORLD_SIZE / LOCAL_RANK set; `init()` joins them with
torch.distributed (NCCL on GPUs, gloo on CPU) and pins each to cuda:LOCAL_RANK. Every rank holds
the whole model (projector + LoRA trained, the rest frozen: an 8B in bf16 is ~17 GB, so sharding
with FSDP is not needed on 80 GB cards). Each step's prompts are split across ranks (whole
groups, so group advantages are unchanged), and the trainable parameters' gradients are averaged
with one all-reduce per dtype bucket before clipping, as DDP's reducer does. DDP's wrapper itself
is not used because a GRPO step reuses the prompts' encoder output across the sampling pass and
several log-prob passes (micro-batches), which DDP's one-forward-per-backward contract forbids.
Greedy validation and test decoding is sharded too (rank r decodes every N-th example; the
hypotheses and NLL sums are gathered on every rank, so all ranks select the same checkpoint);
sampled evaluation passes run on every rank in full. Only rank 0 logs and prints.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["World", "average_gradients", "gather_objects", "gather_ordered", "init", "shard", "world"]


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init() -> World:
    """Join the process group if launched with WORLD_SIZE > 1 (idempotent); else a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        # Leave the group before the interpreter exits: a gloo group still alive at exit can abort
        # the process ("terminate called without an active exception") after the trial has finished.
        atexit.register(dist.destroy_process_group)
    return World(dist.get_rank(), dist.get_world_size())


def world() -> World:
    return World(dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else World()


def shard(indices: list[int], w: World) -> list[int]:
    """This rank's share of a global batch (every rank draws the same batch from the same seed)."""
    if w.size > 1 and len(indices) < w.size:
        raise ValueError(
            f"train.batch_size {len(indices)} is smaller than the {w.size} processes. "
            f"Fix: set train.batch_size to a multiple of the number of GPUs."
        )
    return indices[w.rank :: w.size]


def average_gradients(model: torch.nn.Module) -> None:
    """Mean of each trainable parameter's gradient over all ranks (no-op for a world of one)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    # Parameters no rank used (e.g. the encoder's CTC head) keep grad None, so the optimiser skips
    # them as on one GPU; one used on some rank only takes part with zeros elsewhere.
    used = torch.tensor(
        [p.grad is not None for p in params], dtype=torch.float32, device=params[0].device if params else "cpu"
    )
    dist.all_reduce(used)
    params = [p for p, u in zip(params, used.tolist()) if u > 0]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    buckets: dict[torch.dtype, list[torch.Tensor]] = {}
    for p in params:
        buckets.setdefault(p.grad.dtype, []).append(p.grad)
    size = dist.get_world_size()
    for grads in buckets.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def mean_over_processes(value: float) -> float:
    """The mean of a number over all ranks (the number itself in a world of one)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=_device())
    dist.all_reduce(t)
    return float(t) / dist.get_world_size()


def any_process(flag: bool) -> bool:
    """Whether `flag` is true on some rank (every rank gets the same answer)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _device() -> torch.device:
    """Where a collective's tensor lives: this rank's GPU under NCCL, the CPU under gloo."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def gather_objects(obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_ordered(indices: list[int], values: list, n: int) -> list:
    """Every rank's (indices, values) shard put back in index order, on every rank."""
    out: list = [None] * n
    for idx, vals in gather_objects((indices, values)):
        for i, v in zip(idx, vals):
            out[i] = v
    return out
