"""Many processes (torchrun): DistributedDataParallel over gloo (CPU) or nccl (CUDA).

The spec's `batch` is the global batch. Every process computes the same seeded permutation (the
trainer loop's) and takes its slice of each global batch: contiguous, sizes differing by at most one,
so an uneven last batch is split too. Each process's loss is weighted by its share of the global batch
(n_r / n), so that DDP's average of the gradients is the gradient of the global batch's mean loss:
world size N computes what world size 1 does. Batchnorm's mean and variance are those of the global
batch (two all-reduces, differentiable, on gloo too: torch's SyncBatchNorm refuses the CPU).
Rank 0 alone writes the run folder (runtime/trainer.py); every process reads a checkpoint to resume.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


class _SumOverProcesses(torch.autograd.Function):
    """y = the sum of x over every process; its gradient is the sum of every process's gradient of y."""

    @staticmethod
    def forward(ctx, x):
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        g = grad.clone()
        dist.all_reduce(g)
        return g


def differentiable_all_reduce(x: torch.Tensor) -> torch.Tensor:
    return _SumOverProcesses.apply(x)


def launched() -> bool:
    """Started by torchrun (or another launcher that sets WORLD_SIZE) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


class Group:
    """This process's place among the training processes, and the collectives the engine needs."""

    def __init__(self, device: torch.device):
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        self.rank = dist.get_rank()
        self.size = dist.get_world_size()
        self.device = device

    def share(self, n: int) -> tuple[int, int]:
        """(start, count) of this process's slice of a global batch of n samples."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return start, base + (1 if self.rank < extra else 0)

    def total(self, value: torch.Tensor) -> torch.Tensor:
        out = value.detach().clone()
        dist.all_reduce(out)
        return out

    def gather_rows(self, local: torch.Tensor, n: int) -> torch.Tensor:
        """Every process's rows of a global batch of n, in batch order (all_gather needs equal sizes:
        padded to the largest share, then trimmed)."""
        width = -(-n // self.size)
        padded = torch.zeros((width,) + tuple(local.shape[1:]), dtype=local.dtype, device=local.device)
        padded[:len(local)] = local
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(parts, padded)
        rows = []
        for r, part in enumerate(parts):
            base, extra = divmod(n, self.size)
            rows.append(part[:base + (1 if r < extra else 0)])
        return torch.cat(rows)

    def gather_strings(self, text: str) -> list[str]:
        out: list = [None] * self.size
        dist.all_gather_object(out, text)
        return out

    def moments(self, x: torch.Tensor, axes: tuple[int, ...], mask=None):
        """Batchnorm's per-channel mean and biased variance over every process's batch, two-pass (over a
        variable-length batch's valid steps: `mask`)."""
        local = (int(mask.sum()) if mask is not None else x.numel() // x.shape[1]) if x.shape[0] else 0
        weight = mask if mask is not None else 1
        sums = differentiable_all_reduce(torch.cat([(x * weight).sum(dim=axes), x.new_tensor([float(local)])]))
        count = int(sums[-1].item())
        mean = sums[:-1] / count
        xc = x - mean.view((1, -1) + (1,) * (x.ndim - 2))
        var = differentiable_all_reduce((xc * xc * weight).sum(dim=axes)) / count
        return mean, var, count

    def close(self) -> None:
        """Every process reaches the end before the group goes (a process leaving early while others
        still hold the group's threads is aborted at exit)."""
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def wrap(self, net: torch.nn.Module) -> torch.nn.Module:
        ids = [self.device.index] if self.device.type == "cuda" else None
        # buffers (batchnorm's running statistics) move alike on every process: nothing to broadcast
        return torch.nn.parallel.DistributedDataParallel(net, device_ids=ids, forward_sync_buffers=False)


def local_device(device: torch.device) -> torch.device:
    """One GPU per process: cuda becomes cuda:LOCAL_RANK."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device
