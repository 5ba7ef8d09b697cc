"""Host syncs (the CPU waiting for the GPU), caught on either device.

The training step must not sync with the host: a sync stalls the CPU until the
GPU has drained its queue, so the next step's kernels are not queued ahead and
the GPU idles while Python runs (nanoGPT / airbench keep one per log interval;
so does `tricks.step`). On CUDA torch itself can say where one happens:
`torch.cuda.set_sync_debug_mode("error")` raises at every synchronizing call.
On the CPU nothing ever waits, so `no_host_sync` watches the calls instead
(a TorchFunctionMode) and raises `HostSyncError` at those that sync on CUDA:

- reading a value on the host: `.item()`, `.tolist()`, `bool`/`int`/`float` of a
  tensor (an `if` on a tensor), printing or formatting one, `.numpy()`, `.cpu()`,
  `torch.equal` / `allclose` / `is_nonzero`;
- outputs whose shape depends on values: `nonzero`, `argwhere`, `masked_select`,
  `unique`, indexing with a boolean mask;
- tensors made from host data (`torch.tensor([...])`, `as_tensor`): a copy to the
  device from pageable memory, which waits for the stream.

The CPU check sees what Python calls, not what a kernel does inside (CUDA's
mode also catches those): it is the same code path, checked before a GPU is at
hand. `count_host_syncs` records the same calls instead of raising.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

READS = {
    "item",
    "tolist",
    "__bool__",
    "__int__",
    "__float__",
    "__index__",
    "__repr__",
    "__str__",
    "__format__",
    "numpy",
    "cpu",
    "equal",
    "allclose",
    "is_nonzero",
}
VALUE_SHAPED = {"nonzero", "argwhere", "masked_select", "unique", "unique_consecutive"}
FROM_HOST = {"tensor", "as_tensor"}
INDEXING = {"__getitem__", "__setitem__", "index_put", "index_put_"}


class HostSyncError(RuntimeError):
    """A call that would make the host wait for the device."""


def sync_reason(name: str, args: tuple) -> str | None:
    """Why the call `name(*args)` syncs on CUDA (None: it does not)."""
    if name in READS:
        return "reads a value on the host"
    if name in VALUE_SHAPED:
        return "its output's shape depends on the values"
    if name in FROM_HOST and args and not isinstance(args[0], torch.Tensor):
        return "copies host data to the device"
    if name in INDEXING and len(args) > 1 and _has_bool_index(args[1]):
        return "indexes with a boolean mask (a nonzero)"
    return None


def _has_bool_index(index: Any) -> bool:
    items = index if isinstance(index, tuple | list) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


class _Watch(TorchFunctionMode):
    def __init__(self, record: list[str] | None) -> None:
        super().__init__()
        self.record = record

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = getattr(func, "__name__", "")
        why = sync_reason(name, args)
        if why is not None:
            if self.record is None:
                raise HostSyncError(f"{name}: {why} (a host sync on CUDA)")
            self.record.append(name)
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def no_host_sync(device: torch.device) -> Iterator[None]:
    """Raise at any host sync inside: torch's sync debug mode on CUDA, `_Watch` on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # what was queued before is not this block's doing
        torch.cuda.set_sync_debug_mode("error")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode("default")
    else:
        with _Watch(None):
            yield


@contextlib.contextmanager
def count_host_syncs() -> Iterator[list[str]]:
    """The names of the calls inside that sync on CUDA, in order (watched as on the CPU)."""
    seen: list[str] = []
    with _Watch(seen):
        yield seen
