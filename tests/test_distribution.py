"""Strategy construction. Multi-replica training itself is tested in test_trainer.py."""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
import tensorflow as tf

from bert_tf import distribution


def test_unknown_strategy_names_the_choices():
    with pytest.raises(ValueError, match="multi_worker_mirrored"):
        distribution.get_strategy("horovod")


def test_one_device_uses_the_cpu_without_gpus():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible")
    strategy = distribution.get_strategy("one_device")
    assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
    assert strategy.num_replicas_in_sync == 1
    assert "CPU" in strategy.extended.worker_devices[0].upper()


def test_mirrored_without_gpus_spans_the_logical_cpus():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible")
    strategy = distribution.get_strategy("mirrored")
    assert strategy.num_replicas_in_sync == len(tf.config.list_logical_devices("CPU"))


def test_mirrored_rejects_more_gpus_than_visible():
    visible = len(tf.config.list_logical_devices("GPU"))
    with pytest.raises(ValueError, match=f"num_gpus={visible + 1}"):
        distribution.get_strategy("mirrored", num_gpus=visible + 1)


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribution.get_strategy("multi_worker_mirrored")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        distribution.get_strategy("multi_worker_mirrored")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {}}))
    with pytest.raises(ValueError, match="'task'"):
        distribution.get_strategy("multi_worker_mirrored")


def test_tpu_unavailable_is_a_clear_error():
    with pytest.raises(ValueError, match="no TPU reachable"):
        distribution.get_strategy("tpu")


def test_google_flags_map_onto_strategies(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if len(tf.config.list_logical_devices("GPU")) <= 1:
        assert isinstance(distribution.strategy_from_flags(), tf.distribute.OneDeviceStrategy)
    with pytest.raises(ValueError, match="--use_tpu conflicts"):
        distribution.strategy_from_flags(use_tpu=True, distribution_strategy="mirrored")
    with pytest.raises(ValueError, match="no TPU reachable"):
        distribution.strategy_from_flags(use_tpu=True)


def test_split_cpu_after_initialisation_explains_itself():
    existing = len(tf.config.list_logical_devices("CPU"))
    assert len(distribution.split_cpu(existing)) == existing  # idempotent
    with pytest.raises(RuntimeError, match="before TensorFlow initialises"):
        distribution.split_cpu(existing + 1)
    with pytest.raises(ValueError, match="num_devices"):
        distribution.split_cpu(0)
