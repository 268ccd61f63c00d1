"""What a save cut off by a kill leaves in a run directory, dealt with at the next start, before loading.

trainer.train.checkpoint's save writes `ckpt.pt.tmp-PID-NS`, fsyncs it, links ckpt.pt to
`ckpt.prev.pt.tmp-PID` and renames that over ckpt.prev.pt, then renames the temp over ckpt.pt. A kill
between any two of these leaves one of:

- a temp file cut short (no zip directory at its end): an orphan, removed;
- a staging link of ckpt.prev.pt: removed (ckpt.pt, or the file it names, still holds that content);
- a complete temp file, newer than ckpt.pt (killed after its fsync, before its rename): it is the newest
  checkpoint, so it becomes ckpt.pt (the current ckpt.pt, when sound and not already ckpt.prev.pt, is
  kept as ckpt.prev.pt first). Removing it as an orphan would throw away the last save;
- a complete temp file that is not newer than ckpt.pt: kept aside as `ckpt.iterN.pt`, never deleted.

Each thing done is one line for the run's warnings. The run lock is held: no save of this run is under way.
"""

from __future__ import annotations

import os
from pathlib import Path

from trainer.train.checkpoint import (CKPT_FILE, PREV_FILE, TEMP_MARK, _fsync_dir, _link_previous,
                                      checkpoint_iter)


def recover_temps(directory: str | Path) -> list[str]:
    """Deal with the temp files of interrupted saves in `directory`; returns a line for each thing done."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    said: list[str] = []
    complete: list[tuple[int, float, Path]] = []  # (iter, mtime, path) of whole temp checkpoints
    for item in sorted(directory.iterdir()):
        if item.name.startswith(PREV_FILE + TEMP_MARK):
            _remove(item, said, "a staging link of an interrupted save")
        elif item.name.startswith(CKPT_FILE + TEMP_MARK):
            it = checkpoint_iter(item)
            if it is None:
                _remove(item, said, "a checkpoint save that was interrupted (the file is incomplete)")
            else:
                complete.append((it, item.stat().st_mtime, item))
    if not complete:
        return said
    complete.sort()
    newest_iter, _, newest = complete[-1]
    path = directory / CKPT_FILE
    current = checkpoint_iter(path) if path.exists() else None
    aside = complete[:-1]
    if current is None or newest_iter > current:
        if current is not None:
            _link_previous(path, directory / PREV_FILE)  # the sound ckpt.pt becomes the previous one
        damaged = current is None and path.exists()
        os.replace(newest, path)
        _fsync_dir(directory)
        was = f" in place of a damaged {CKPT_FILE}" if damaged else ""
        said.append(f"{newest.name} is a complete checkpoint (iter {newest_iter}) that a save cut off before its "
                    f"rename had written; it is now {CKPT_FILE}{was}")
    else:
        aside.append(complete[-1])
    for it, _, item in aside:
        target = directory / f"ckpt.iter{it}.pt"
        if target.exists():
            target = directory / f"ckpt.iter{it}.{item.name.rsplit(TEMP_MARK, 1)[-1]}.pt"
        os.replace(item, target)
        said.append(f"{item.name} is a complete checkpoint (iter {it}) not newer than {CKPT_FILE}; kept aside as "
                    f"{target.name} (remove it when you do not need it)")
    return said


def _remove(item: Path, said: list[str], what: str) -> None:
    try:
        item.unlink()
    except OSError:
        return
    said.append(f"removed {item.name}, left by {what}")
