"""The plain files every stage reads and writes, each handled once.

UTF-8 line files whose bad lines are named `file:line`, comma-separated
globs, JSON configs, and `eval_results.txt`. Nothing here imports
TensorFlow (data workers use these), except to glob a `gs://`-style URL.

>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> with open(os.path.join(folder, "a.txt"), "wb") as f:
...     _ = f.write(b"caf\\xc3\\xa9\\nbad \\xe9 byte\\n")
>>> lines = read_lines(os.path.join(folder, "a.txt"))
>>> next(lines)
(1, 'café\\n')
>>> next(lines)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
bert_tf.text_files.LineError: .../a.txt:2: invalid UTF-8 at byte 4 of the line (b'bad \\xe9 byte\\n')
>>> [os.path.basename(p) for p in expand_globs(os.path.join(folder, "*.txt"))]
['a.txt']
>>> text = write_eval_results(os.path.join(folder, "eval_results.txt"), {"loss": 0.5, "global_step": 3})
>>> print(open(os.path.join(folder, "eval_results.txt")).read(), end="")
global_step = 3
loss = 0.5
"""

from __future__ import annotations

import glob
import json
import os
from typing import Any, Callable, Iterator, Sequence

from bert_tf import atomic_io


class LineError(ValueError):
    """A bad line of a text file; the message starts with `file:line:`."""

    def __init__(self, path, line: int | None, message: str):
        self.path, self.line = str(path), line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


def read_lines(path, error: Callable[[str, int, str], Exception] = LineError,
               on_invalid: Callable[[int], None] | None = None) -> Iterator[tuple[int, str]]:
    """Yields (line number from 1, line with its ending) of a UTF-8 file.

    Decoding line by line is what lets a bad byte be reported by its line.
    A leading byte-order mark is dropped (MRPC's files start with one).
    A line that is not UTF-8 raises `error(path, line_number, message)`; with
    `on_invalid`, it is passed the line number instead and the line reads as
    an empty one ("\\n"), which keeps the numbers of the lines after it.
    """
    with open(path, "rb") as file:
        for number, raw in enumerate(file, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                if on_invalid is None:
                    context = raw[max(0, e.start - 10):e.start + 10]
                    raise error(path, number, f"invalid UTF-8 at byte {e.start} of the "
                                f"line ({context!r})") from None
                on_invalid(number)
                yield number, "\n"


def expand_globs(patterns: str | Sequence[str], flag: str | None = None) -> list[str]:
    """The files each pattern matches, sorted, pattern after pattern.

    `patterns` is a list or one string of comma-separated patterns, as
    Google's `--input_file`. A pattern that matches nothing is an error
    naming it (and `flag`, when given): a typo must not train on less data.
    """
    if isinstance(patterns, str):
        patterns = patterns.split(",")
    files = []
    for pattern in (p.strip() for p in patterns):
        if not pattern:
            continue
        if "://" in pattern:  # gs:// and other remote file systems
            import tensorflow as tf

            matches = sorted(tf.io.gfile.glob(pattern))
        else:
            matches = sorted(glob.glob(pattern))
        if not matches:
            where = f"{flag}: " if flag else ""
            raise FileNotFoundError(f"{where}no file matches the pattern {pattern!r}")
        files.extend(matches)
    return files


def read_json(path, what: str = "JSON file",
              error: Callable[[str], Exception] = ValueError) -> Any:
    """The value in a JSON file; a missing file or bad JSON is one clear error.

    `what` names the file in the not-found message ("BERT config file");
    invalid JSON raises `error("<path>: not valid JSON (line N: reason)")`.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None


def write_eval_results(path, results: dict) -> str:
    """Writes `key = value` lines, sorted by key, as Google's scripts write
    eval_results.txt; returns the text."""
    text = "".join(f"{key} = {value}\n" for key, value in sorted(results.items()))
    atomic_io.write_text(os.fspath(path), text)
    return text
