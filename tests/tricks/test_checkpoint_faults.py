"""A full disk at a checkpoint or model write, and the leftovers of torn writes.

The full disk is a real one: a small tmpfs (mount needs root or CAP_SYS_ADMIN; the
test is skipped without it), so ENOSPC comes from the kernel, not from a mock.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tricks import checkpoint as ckpt


def mount_tmpfs(path: Path, size_bytes: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
        capture_output=True,
    )
    return res.returncode == 0


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 256 KiB filesystem."""
    d = tmp_path / "disk"
    if not mount_tmpfs(d, 256 * 1024):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def test_checkpoint_on_a_full_disk_raises_disk_full_naming_file_size_and_space(small_disk):
    state = {"model": {"w": torch.zeros(100_000)}}  # 400 kB of tensors: more than the disk
    with pytest.raises(ckpt.DiskFull) as info:
        ckpt.save_checkpoint(state, small_disk, 90)
    e = info.value
    assert e.errno == errno.ENOSPC and isinstance(e, OSError)
    assert e.what == "ckpt-000000090.pt"
    assert e.size == 400_000
    assert e.free is not None and 0 < e.free <= 256 * 1024  # the temporary file was removed
    msg = str(e)
    assert msg.startswith("no space left writing ckpt-000000090.pt (400.0 kB)"), msg
    assert str(small_disk) not in msg and "/" not in msg
    assert list(small_disk.iterdir()) == []  # nothing left behind


def test_model_on_a_full_disk_raises_disk_full(small_disk):
    with pytest.raises(ckpt.DiskFull) as info:
        ckpt.save_model({"w": torch.zeros(100_000)}, small_disk / "model.safetensors")
    assert info.value.what == "model.safetensors"
    assert info.value.size is not None and info.value.size > 400_000  # tensors + header
    assert list(small_disk.iterdir()) == []


def test_human_bytes():
    assert ckpt.human_bytes(0) == "0 B"
    assert ckpt.human_bytes(999) == "999 B"
    assert ckpt.human_bytes(12_300_000) == "12.3 MB"
    assert ckpt.human_bytes(1_500_000_000) == "1.5 GB"


def test_torn_writes_are_cleaned_when_a_run_starts(tmp_path):
    good = ckpt.save_checkpoint({"model": {"w": torch.ones(3)}}, tmp_path, 10)
    (tmp_path / "epochs").mkdir()
    torn = [
        tmp_path / ".ckpt-000000020.pt.4242.tmp",  # a killed save_checkpoint
        tmp_path / "epochs" / ".epoch-0002.pt.4242.tmp",  # a killed pin_epoch
    ]
    for p in torn:
        p.write_bytes(b"PK\x03\x04 half a zip")
    other = tmp_path / "notes.tmp"  # not ours: kept
    other.write_text("x")
    path, state = ckpt.load_latest(tmp_path)
    assert path == good and torch.equal(state["model"]["w"], torch.ones(3))
    assert not any(p.exists() for p in torn)
    assert other.exists()
