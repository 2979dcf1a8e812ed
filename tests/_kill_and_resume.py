"""Killing a training script for real and comparing what it leaves behind.

A stage's resume test starts its script, SIGKILLs it once a complete
checkpoint exists (no handler runs, no file is finished off: what a power cut
or an out-of-memory kill leaves), runs the same command again and compares
the final checkpoint with one of an uninterrupted run, tensor by tensor.
"""

import signal
import subprocess
import tempfile
import time

import numpy as np
import tensorflow as tf


def sigkill_after_first_checkpoint(command, checkpoint_dir, *, env=None, cwd=None,
                                   timeout=300, poll_seconds=0.02) -> str:
    """Runs `command` until `checkpoint_dir` holds a complete checkpoint, then
    SIGKILLs it; returns the newest checkpoint prefix left there.

    "Complete" is what `tf.train.latest_checkpoint` sees: the 'checkpoint'
    state file is rewritten only after the data files are in place. Fails if
    the command ends by itself first (it was not cut short) or no checkpoint
    appears within `timeout` seconds.
    """
    # A file, not a pipe: a pipe nobody reads would fill and stall the run.
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                                   stderr=stderr, text=True)
        try:
            deadline = time.time() + timeout
            while not tf.train.latest_checkpoint(str(checkpoint_dir)):
                if process.poll() is not None:
                    stderr.seek(0)
                    raise AssertionError("the run ended before its first checkpoint:\n"
                                         + stderr.read()[-3000:])
                if time.time() > deadline:
                    raise AssertionError(f"no checkpoint in {checkpoint_dir} after {timeout} s")
                time.sleep(poll_seconds)
            process.send_signal(signal.SIGKILL)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=60)
    if process.returncode != -signal.SIGKILL:
        raise AssertionError(f"the run ended by itself (exit status {process.returncode}) "
                             "before the kill reached it")
    return tf.train.latest_checkpoint(str(checkpoint_dir))


def checkpoint_step(prefix: str) -> int:
    """The step a trainer checkpoint `.../ckpt-N` was written at."""
    return int(str(prefix).rsplit("-", 1)[1])


def checkpoint_tensors(prefix) -> dict[str, np.ndarray]:
    """Every numeric tensor a checkpoint stores (weights, optimizer slots,
    step counters, random-generator states), by its stored name."""
    reader = tf.train.load_checkpoint(str(prefix))
    dtypes = reader.get_variable_to_dtype_map()
    return {name: reader.get_tensor(name) for name, dtype in dtypes.items()
            if dtype != tf.string}


def assert_same_tensors(expected_prefix, actual_prefix, atol=1e-6) -> int:
    """The two checkpoints store the same names with equal values; returns
    how many tensors were compared."""
    expected, actual = checkpoint_tensors(expected_prefix), checkpoint_tensors(actual_prefix)
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, atol=atol, rtol=0, err_msg=name)
    return len(expected)
