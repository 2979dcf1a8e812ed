"""Builds the tf.distribute strategy a run trains under.

Strategies, by name:
  one_device             the first GPU if there is one, else the CPU.
  mirrored               synchronous data parallelism over the local GPUs
                         (`num_gpus` of them, default all), or over the logical
                         CPUs made by `split_cpu` when there is no GPU.
  multi_worker_mirrored  mirrored across machines. Each worker reads the
                         cluster from the TF_CONFIG environment variable, e.g.
                         {"cluster": {"worker": ["host0:2222", "host1:2222"]},
                          "task": {"type": "worker", "index": 0}}
                         and every worker runs the same command.
  tpu                    a Cloud TPU found by name/address, zone and project.

Google's TPU flags map onto `strategy_from_flags`: --use_tpu picks 'tpu',
--tpu_name (or --master) is the address, --tpu_zone and --gcp_project locate
it. --num_tpu_cores is checked against the cores found.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored", "tpu")


def split_cpu(num_devices: int) -> list:
    """Splits the physical CPU into `num_devices` logical devices.

    Lets MirroredStrategy run several replicas on a CPU-only machine (tests,
    debugging). Must run before TensorFlow initialises its devices, i.e.
    before any op, tensor or strategy is created in the process.
    """
    if num_devices < 1:
        raise ValueError(f"num_devices must be >= 1, got {num_devices}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError as err:
        existing = tf.config.list_logical_devices("CPU")
        if len(existing) == num_devices:
            return existing
        raise RuntimeError(
            f"split_cpu({num_devices}) must run before TensorFlow initialises its "
            f"devices; this process already has {len(existing)} logical CPU(s)") from err
    return tf.config.list_logical_devices("CPU")


def _check_tf_config() -> None:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError("multi_worker_mirrored needs the TF_CONFIG environment variable "
                         "(cluster and task of this worker); it is not set")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON: {err}") from err
    if "cluster" not in config or "task" not in config:
        raise ValueError(f"TF_CONFIG needs 'cluster' and 'task' entries, got keys {sorted(config)}")


def _tpu_strategy(tpu_address, tpu_zone, gcp_project, num_tpu_cores):
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=tpu_address, zone=tpu_zone, project=gcp_project)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, OSError, tf.errors.OpError) as err:
        raise ValueError(
            f"no TPU reachable at tpu_address={tpu_address!r} zone={tpu_zone!r} "
            f"project={gcp_project!r}: {err}") from err
    strategy = tf.distribute.TPUStrategy(resolver)
    if num_tpu_cores and strategy.num_replicas_in_sync != num_tpu_cores:
        raise ValueError(f"num_tpu_cores={num_tpu_cores} but the TPU has "
                         f"{strategy.num_replicas_in_sync} cores")
    return strategy


def _mirrored_devices(num_gpus):
    gpus = tf.config.list_logical_devices("GPU")
    if num_gpus is not None and num_gpus > len(gpus):
        raise ValueError(f"num_gpus={num_gpus} but only {len(gpus)} GPU(s) are visible")
    if gpus:
        return [d.name for d in gpus[:num_gpus]]
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def get_strategy(
    name: str = "one_device",
    tpu_address: str | None = None,
    num_gpus: int | None = None,
    tpu_zone: str | None = None,
    gcp_project: str | None = None,
    num_tpu_cores: int | None = None,
) -> tf.distribute.Strategy:
    """Returns the strategy called `name` (see the module docstring)."""
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=_mirrored_devices(num_gpus))
    if name == "multi_worker_mirrored":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        return _tpu_strategy(tpu_address, tpu_zone, gcp_project, num_tpu_cores)
    raise ValueError(f"distribution strategy must be one of {STRATEGIES}, got {name!r}")


def strategy_from_flags(
    use_tpu: bool = False,
    tpu_name: str | None = None,
    tpu_zone: str | None = None,
    gcp_project: str | None = None,
    master: str | None = None,
    num_tpu_cores: int | None = None,
    distribution_strategy: str | None = None,
    num_gpus: int | None = None,
) -> tf.distribute.Strategy:
    """Maps Google's TPU flags (plus --distribution_strategy) to a strategy.

    Without --use_tpu or --distribution_strategy: multi_worker_mirrored when
    TF_CONFIG is set, mirrored when several GPUs are visible, else one_device.
    """
    if use_tpu:
        if distribution_strategy not in (None, "tpu"):
            raise ValueError(f"--use_tpu conflicts with --distribution_strategy={distribution_strategy}")
        return get_strategy("tpu", tpu_address=tpu_name or master, tpu_zone=tpu_zone,
                            gcp_project=gcp_project, num_tpu_cores=num_tpu_cores)
    if distribution_strategy is None:
        if os.environ.get("TF_CONFIG"):
            distribution_strategy = "multi_worker_mirrored"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            distribution_strategy = "mirrored"
        else:
            distribution_strategy = "one_device"
    return get_strategy(distribution_strategy, tpu_address=tpu_name or master, num_gpus=num_gpus,
                        tpu_zone=tpu_zone, gcp_project=gcp_project, num_tpu_cores=num_tpu_cores)
