"""Writing files and folders so that readers never see them half-written.

Everything the project writes for others (configs, results, features,
vocabularies, SavedModels) goes through here: the content is written next
to its destination under a temporary name and renamed into place, so a
crash leaves either the old version or the new one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator, TextIO


@contextlib.contextmanager
def open_for_write(path: str | os.PathLike, encoding: str = "utf-8") -> Iterator[TextIO]:
    """A text file that appears at `path` only if the `with` block succeeds."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="\n") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with open_for_write(path) as f:
        f.write(text)


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike) -> Iterator[str]:
    """A fresh folder to fill; it replaces `target` when the block succeeds.

    The previous `target`, if any, is kept until the new one is in place.
    """
    target = os.fspath(target)
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(target)}.")
    try:
        yield staging
        if os.path.exists(target):
            old = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(target)}.old.")
            os.rename(target, os.path.join(old, "previous"))
            os.rename(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
