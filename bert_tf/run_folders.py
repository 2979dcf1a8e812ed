"""An output_dir belongs to one run: its identity, and results never replaced silently.

Every fine-tuning stage (`classification`, `squad`) writes its checkpoints,
results and exports into one `--output_dir`. Resuming the same run there is
the point of the folder; mixing another model's checkpoints into it would
silently continue the wrong weights. So the first run that really starts
records what must stay the same (`run_identity.json`), and a later command
with a different model, task or sequence length is refused.

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> check_output_dir(folder, {"task_name": "mrpc", "max_seq_length": 128}, ("max_seq_length",))
True
>>> write_identity(folder, {"task_name": "mrpc", "max_seq_length": 128})
>>> check_output_dir(folder, {"task_name": "mrpc", "max_seq_length": 128}, ("max_seq_length",))
False
>>> check_output_dir(folder, {"task_name": "mrpc", "max_seq_length": 64}, ("max_seq_length",))
Traceback (most recent call last):
...
FileExistsError: --output_dir '...' holds a run with different max_seq_length (.../run_identity.json); use a new --output_dir rather than mixing checkpoints
"""

from __future__ import annotations

import json
import os
from typing import Sequence

from absl import logging

from bert_tf import atomic_io, text_files

IDENTITY_FILE = "run_identity.json"


def check_output_dir(output_dir: str, identity: dict, keys: Sequence[str]) -> bool:
    """Refuses to mix runs in one output_dir; resuming the same run is fine.

    `keys` are the entries of `identity` that must equal the recorded ones.
    Returns True when the folder holds no identity yet: the caller writes it
    (`write_identity`) only once the run has really started, so that a
    command refused for a wrong checkpoint or config does not lock the folder
    against the corrected one.
    """
    path = os.path.join(output_dir, IDENTITY_FILE)
    if not os.path.exists(path):
        return True
    previous = text_files.read_json(path)
    changed = [k for k in keys if previous.get(k) != identity.get(k)]
    if changed:
        raise FileExistsError(
            f"--output_dir {output_dir!r} holds a run with different "
            f"{', '.join(changed)} ({path}); use a new --output_dir rather than "
            "mixing checkpoints")
    # The tokenizer's rule changes some texts' tokens but not the weights'
    # shapes, so a change is worth a warning, not a refusal. Folders written
    # before the rule was recorded carry none: nothing to compare.
    earlier_rule = previous.get("control_chars")
    if earlier_rule not in (None, identity.get("control_chars")):
        logging.warning("%s: the run there tokenized with --control_chars=%s, this one "
                        "with --control_chars=%s; texts with unassigned or private-use "
                        "characters get other tokens", path, earlier_rule,
                        identity.get("control_chars"))
    return False


def write_identity(output_dir: str, identity: dict) -> None:
    atomic_io.write_text(os.path.join(output_dir, IDENTITY_FILE),
                         json.dumps(identity, indent=2, sort_keys=True) + "\n")


def note_replacing(path: str) -> None:
    """Results of an earlier run are replaced, never silently."""
    if os.path.exists(path):
        logging.warning("Replacing %s, written by an earlier run in this --output_dir", path)


def model_description(source, encoder_factory=None) -> str:
    """Where a run's starting weights come from, and the model's shape, for its log."""
    config = source.config
    shape = (f"{config.num_hidden_layers} layers, hidden {config.hidden_size}, "
             f"vocab {config.vocab_size}")
    if encoder_factory is not None:
        return f"a TF-Hub-format encoder ({shape})"
    if source.checkpoint:
        return f"{source.checkpoint} ({shape})"
    return f"random initialisation, no --init_checkpoint ({shape})"
