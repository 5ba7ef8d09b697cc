"""Names of per-epoch ("pinned") checkpoints, without torch: the API checks they exist.

With training.keep_checkpoints = "epochs", every checkpoint written at the end of
an epoch is also linked as `<checkpoint_dir>/epochs/epoch-00003.pt` (the state
after 3 epochs, at step 3·steps_per_epoch). The rolling "keep the last 2" set in
`<checkpoint_dir>` is unchanged; pinned files are hard links, so a pinned
checkpoint that is also among the last 2 costs no extra disk. POST
/jobs/{id}/fork starts a new job from one of them.
"""

from __future__ import annotations

from pathlib import Path

PINNED_DIR = "epochs"


def pinned_path(checkpoint_dir: Path, epochs_done: int) -> Path:
    return Path(checkpoint_dir) / PINNED_DIR / f"epoch-{epochs_done:05d}.pt"
