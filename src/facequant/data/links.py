"""Symbolic links inside dataset.root must stay inside it: a link to a file or folder elsewhere would evaluate data
the root does not hold, so the loaders refuse it unless dataset.follow_symlinks=true."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def link_out(root: Path, paths: Iterable[str | os.PathLike[str]]) -> str | None:
    """Why one of paths (all below root) is refused: a symbolic link on its way down from root resolves outside
    root; else None. Each folder is looked at once, with one lstat (LFW: 5749 folders, 13233 images)."""
    inside, top = os.path.realpath(root), os.path.join(root, "")
    seen: set[str] = set()
    for path in map(os.fspath, paths):
        step = os.fspath(root)
        below = path[len(top) :] if path.startswith(top) else os.path.relpath(path, root)  # relpath is slow
        for part in below.split(os.sep):
            step = f"{step}{os.sep}{part}"
            if step in seen:
                continue
            seen.add(step)
            if os.path.islink(step) and os.path.commonpath([inside, real := os.path.realpath(step)]) != inside:
                return (
                    f"{step} is a symbolic link out of dataset.root={root}, to {real} (it holds {path}). Copy or "
                    "move the data into dataset.root, or set dataset.follow_symlinks=true to read it where it is"
                )
    return None
