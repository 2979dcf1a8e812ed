"""run_squad.py end to end on a tiny model and the shipped SQuAD slice:
train + predict + eval in a subprocess with Google's output files, a
SIGKILLed run that resumes with the same command to the same weights,
prediction-only commands that train nothing, --init_checkpoint from our
output folder, a Google-format checkpoint and a Hugging Face
BertForQuestionAnswering folder (whose logits are the reference), Google's
flags and defaults, and bad input named in one line."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import bert_tf
from bert_tf import checkpoints, modeling, pretrained, squad, squad_data, trainer
from conftest import TEST_DATA, UNCASED_VOCAB

REPO = Path(__file__).resolve().parents[1]
SLICE = TEST_DATA / "squad" / "dev-v1.1-slice.json"
CONFIG = modeling.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                             num_attention_heads=4, intermediate_size=64,
                             max_position_embeddings=128, type_vocab_size=2)


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def _command(*args):
    return [sys.executable, str(REPO / "run_squad.py"), *args]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny random BERT in Google's layout; the slice's first article to
    train on, its second to predict."""
    folder = tmp_path_factory.mktemp("squad_run")
    model = folder / "tiny"
    model.mkdir()
    CONFIG.to_json_file(str(model / "bert_config.json"))
    (model / "vocab.txt").write_bytes(UNCASED_VOCAB.read_bytes())
    checkpoints.save_google_checkpoint(modeling.BertEncoder(CONFIG), str(model / "bert_model.ckpt"))
    squad = json.loads(SLICE.read_text(encoding="utf-8"))
    for name, articles in (("train.json", squad["data"][:1]), ("dev.json", squad["data"][1:2])):
        (folder / name).write_text(json.dumps({"data": articles, "version": "1.1"}))
    return folder


def _train_args(data, output_dir, *extra):
    """Google's README command, with a tiny model's lengths and a few steps."""
    model = data / "tiny"
    return _command(f"--vocab_file={model}/vocab.txt",
                    f"--bert_config_file={model}/bert_config.json",
                    f"--init_checkpoint={model}/bert_model.ckpt", "--do_train=True",
                    f"--train_file={data}/train.json", "--train_batch_size=16",
                    "--learning_rate=1e-3", "--num_train_epochs=2.0", "--max_seq_length=128",
                    "--doc_stride=64", "--save_checkpoints_steps=3", "--iterations_per_loop=1",
                    f"--output_dir={output_dir}", *extra)


STEPS = int(108 / 16 * 2.0)  # Google's count: questions / batch * epochs


@pytest.fixture(scope="module")
def trained(data):
    """Google's train + predict command (plus --do_eval), SIGKILLed after its
    first checkpoint and then run again, unchanged, to the end."""
    out = data / "out"
    args = _train_args(data, out, "--do_predict=True", f"--predict_file={data}/dev.json",
                       "--do_eval")
    process = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not tf.train.latest_checkpoint(str(out)) and time.time() < deadline:
        if process.poll() is not None:
            pytest.fail("the run ended before its first checkpoint")
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    killed_at = tf.train.latest_checkpoint(str(out))
    result = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result, killed_at


def _weights(folder):
    model = squad.BertSpanLabeler(modeling.BertEncoder(CONFIG))
    checkpoints.load_checkpoint(model, tf.train.latest_checkpoint(str(folder)))
    return {name: v.numpy() for name, v in model.checkpoint_map().items()}


def test_train_predict_eval_writes_googles_files(trained, data):
    out, result, _ = trained
    assert (out / f"ckpt-{STEPS}.index").exists()
    predictions = json.loads((out / "predictions.json").read_text())
    nbest = json.loads((out / "nbest_predictions.json").read_text())
    dev = json.loads((data / "dev.json").read_text())
    ids = [qa["id"] for a in dev["data"] for p in a["paragraphs"] for qa in p["qas"]]
    assert list(predictions) == ids and list(nbest) == ids
    assert all(set(e) == {"text", "probability", "start_logit", "end_logit"}
               for entries in nbest.values() for e in entries)
    assert all(predictions[q] == nbest[q][0]["text"] for q in ids)
    assert not (out / "null_odds.json").exists()
    results = dict(line.split(" = ") for line in (out / "eval_results.txt").read_text().splitlines())
    assert set(results) == {"exact_match", "f1", "global_step"}
    assert int(results["global_step"]) == STEPS
    assert "***** Eval results (104 questions) *****" in result.stdout
    assert f"train questions 108, 225 windows; 2 epoch(s) = {STEPS} steps of batch 16" in result.stderr


def test_sigkilled_run_resumes_with_the_same_command_to_the_same_weights(trained, data, tmp_path):
    out, result, killed_at = trained
    assert killed_at and not killed_at.endswith(f"ckpt-{STEPS}")  # it really was cut short
    assert f"Restored {killed_at}" in result.stderr
    # The same training, uninterrupted (in this process: the same code and seeds).
    source = pretrained.resolve(str(data / "tiny/bert_model.ckpt"),
                                str(data / "tiny/bert_config.json"), str(data / "tiny/vocab.txt"),
                                True)
    squad.run_squad(squad.SquadSettings(
        output_dir=str(tmp_path / "straight"), source=source, do_train=True,
        train_file=str(data / "train.json"), train_batch_size=16, learning_rate=1e-3,
        num_train_epochs=2.0, max_seq_length=128, doc_stride=64,
        training=trainer.TrainingOptions(steps_per_loop=1, save_checkpoints_steps=3)))
    expected, actual = _weights(tmp_path / "straight"), _weights(out)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], atol=1e-6, err_msg=name)


def _settings(output_dir, source, **kwargs):
    values = dict(output_dir=str(output_dir), source=source, max_seq_length=128, doc_stride=64,
                  training=trainer.TrainingOptions(seed=1))
    values.update(kwargs)
    return squad.SquadSettings(**values)


def test_prediction_only_from_our_output_folder_trains_nothing(trained, data, tmp_path):
    out = trained[0]
    # The output folder carries its config, vocabulary and case.
    source = pretrained.resolve(str(out))
    before = sorted(p.name for p in out.iterdir())
    squad.run_squad(_settings(tmp_path / "again", source, do_predict=True,
                              predict_file=str(data / "dev.json")))
    assert not list((tmp_path / "again").glob("ckpt-*"))  # nothing trained or saved
    assert sorted(p.name for p in out.iterdir()) == before
    assert (json.loads((tmp_path / "again/nbest_predictions.json").read_text())
            == json.loads((out / "nbest_predictions.json").read_text()))


def test_google_format_checkpoint_with_the_squad_layer_restores_the_same_model(trained, data,
                                                                               tmp_path):
    out = trained[0]
    model = squad.BertSpanLabeler(modeling.BertEncoder(CONFIG))
    checkpoints.load_checkpoint(model, tf.train.latest_checkpoint(str(out)))
    google = tmp_path / "google"
    checkpoints.save_google_checkpoint(model, str(google / "model.ckpt-9"), global_step=9)
    names = dict(tf.train.list_variables(str(google / "model.ckpt-9")))
    assert names["cls/squad/output_weights"] == [2, 32] and names["cls/squad/output_bias"] == [2]
    source = pretrained.resolve(str(google / "model.ckpt-9"), str(data / "tiny/bert_config.json"),
                                str(UNCASED_VOCAB), True)
    task = squad.SpanTask(source.config, source)
    again = task.build_model()
    task.initialize(again)
    inputs = modeling.dummy_inputs(batch_size=2, seq_length=16)
    inputs["input_word_ids"] = tf.constant(np.arange(32).reshape(2, 16) + 1000, tf.int32)
    for name in ("start_logits", "end_logits"):
        np.testing.assert_allclose(again(inputs)[name], model(inputs)[name], atol=1e-6)


def test_hugging_face_question_answering_folder_gives_its_logits(tmp_path):
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    torch.manual_seed(0)
    hf = BertForQuestionAnswering(BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=128)).eval()
    hf.save_pretrained(tmp_path / "hf")
    (tmp_path / "hf/vocab.txt").write_bytes(UNCASED_VOCAB.read_bytes())
    source = pretrained.resolve(str(tmp_path / "hf"))
    task = squad.SpanTask(source.config, source)
    model = task.build_model()
    task.initialize(model)
    ids = np.array([[101, 2054, 2003, 102, 1996, 4937, 2938, 102, 0, 0]], np.int32)
    mask, types = (ids > 0).astype(np.int32), np.array([[0] * 4 + [1] * 4 + [0] * 2], np.int32)
    ours = model({"input_word_ids": ids, "input_mask": mask, "input_type_ids": types})
    with torch.no_grad():
        theirs = hf(input_ids=torch.tensor(ids, dtype=torch.long),
                    attention_mask=torch.tensor(mask, dtype=torch.long),
                    token_type_ids=torch.tensor(types, dtype=torch.long))
    real = mask[0] == 1
    np.testing.assert_allclose(ours["start_logits"].numpy()[0][real],
                               theirs.start_logits.numpy()[0][real], atol=1e-4)
    np.testing.assert_allclose(ours["end_logits"].numpy()[0][real],
                               theirs.end_logits.numpy()[0][real], atol=1e-4)


def test_googles_flags_and_defaults():
    probe = ("import json, run_squad; from absl import flags; "
             "print(json.dumps({n: flags.FLAGS[n].default for n in flags.FLAGS}))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env=_env(), cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    ours = json.loads(result.stdout.strip().splitlines()[-1])
    # Every flag of google-research/bert's run_squad.py, with its default there.
    google = {
        "bert_config_file": None, "vocab_file": None, "output_dir": None, "train_file": None,
        "predict_file": None, "init_checkpoint": None, "do_lower_case": True,
        "max_seq_length": 384, "doc_stride": 128, "max_query_length": 64, "do_train": False,
        "do_predict": False, "train_batch_size": 32, "predict_batch_size": 8,
        "learning_rate": 5e-5, "num_train_epochs": 3.0, "warmup_proportion": 0.1,
        "save_checkpoints_steps": 1000, "iterations_per_loop": 1000, "n_best_size": 20,
        "max_answer_length": 30, "use_tpu": False, "tpu_name": None, "tpu_zone": None,
        "gcp_project": None, "master": None, "num_tpu_cores": 8, "verbose_logging": False,
        "version_2_with_negative": False, "null_score_diff_threshold": 0.0}
    assert {n: ours.get(n, "(missing)") for n in google} == google


@pytest.mark.parametrize("change, message", [
    ({"max_seq_length": 256}, "--max_seq_length 256 exceeds the model's max_position_embeddings 128"),
    ({"max_query_length": 125}, "--max_seq_length (128) must be greater than --max_query_length (125) + 3"),
    ({"do_train": True}, "--do_train needs --train_file"),
    ({}, "At least one of --do_train, --do_predict, --do_eval or --export_dir"),
])
def test_bad_settings_are_refused_in_one_line_naming_the_flags(data, tmp_path, change, message):
    source = pretrained.resolve(str(data / "tiny"))
    if change:
        change = {"do_predict": True, "predict_file": str(data / "dev.json"), **change}
    with pytest.raises(ValueError) as error:
        squad.run_squad(_settings(tmp_path / "out", source, **change))
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_bad_training_file_fails_before_anything_is_written(data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.json").write_text("{}\n")  # an earlier run's
    bad = tmp_path / "train.json"
    bad.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": "Some text.", "qas": [{"id": "q-no-answers", "question": "What?"}]}]}]}))
    source = pretrained.resolve(str(data / "tiny"))
    with pytest.raises(squad_data.SquadDataError, match=r"train.json: question id 'q-no-answers'"):
        squad.run_squad(_settings(out, source, do_train=True, train_file=str(bad), do_predict=True,
                                  predict_file=str(data / "dev.json")))
    assert sorted(p.name for p in out.iterdir()) == ["predictions.json"]
    assert (out / "predictions.json").read_text() == "{}\n"


def test_squad_2_training_and_null_threshold(data, tmp_path):
    """Unanswerable questions made from the 1.1 slice: the second article's
    questions asked about the first article's paragraphs."""
    squad_json = json.loads(SLICE.read_text(encoding="utf-8"))
    first, second = squad_json["data"][0], squad_json["data"][1]
    paragraphs = [{"context": p["context"], "qas": [dict(qa, answers=qa["answers"][:1],
                                                         is_impossible=False) for qa in p["qas"]]}
                  for p in first["paragraphs"][:3]]
    for p, q in zip(first["paragraphs"][:3], second["paragraphs"]):
        paragraphs.append({"context": p["context"], "qas": [
            {"id": "x" + qa["id"], "question": qa["question"], "answers": [],
             "is_impossible": True} for qa in q["qas"]]})
    train = tmp_path / "train-v2.json"
    train.write_text(json.dumps({"version": "v2.0", "data": [{"title": "t",
                                                              "paragraphs": paragraphs}]}))
    # One layer: this test is about the data and the null decision, not depth.
    one_layer = tmp_path / "one_layer"
    one_layer.mkdir()
    config = modeling.BertConfig(**{**CONFIG.to_dict(), "num_hidden_layers": 1})
    config.to_json_file(str(one_layer / "bert_config.json"))
    (one_layer / "vocab.txt").write_bytes(UNCASED_VOCAB.read_bytes())
    source = pretrained.resolve(None, str(one_layer / "bert_config.json"),
                                str(one_layer / "vocab.txt"))
    settings = _settings(tmp_path / "v2", source, do_train=True, train_file=str(train),
                         do_eval=True, predict_file=str(train), version_2_with_negative=True,
                         train_batch_size=8, num_train_epochs=1.0, learning_rate=1e-3)
    results = squad.run_squad(settings)
    odds = json.loads((tmp_path / "v2/null_odds.json").read_text())
    predictions = json.loads((tmp_path / "v2/predictions.json").read_text())
    assert set(odds) == set(predictions)
    # The null-score decision at threshold 0.0: "" exactly where odds > 0.
    assert all((predictions[q] == "") == (odds[q] > 0.0) for q in odds
               if odds[q] != 1000000.0)
    for key in ("exact", "f1", "HasAns_exact", "NoAns_exact", "best_f1", "best_f1_thresh"):
        assert key in results
    written = dict(line.split(" = ") for line in
                   (tmp_path / "v2/eval_results.txt").read_text().splitlines())
    assert float(written["best_f1_thresh"]) == pytest.approx(results["best_f1_thresh"])


def test_export_dir_hands_the_model_and_every_setting_to_the_serving_export(data, tmp_path,
                                                                            monkeypatch):
    import types

    calls = []
    fake = types.ModuleType("bert_tf.squad_serving")
    fake.export_squad_answerer = lambda model, export_dir, **kwargs: calls.append(
        (model, export_dir, kwargs))
    # Both the module table and the package attribute: an earlier test may
    # have imported the real module, and `from bert_tf import ...` reads the
    # attribute first.
    monkeypatch.setitem(sys.modules, "bert_tf.squad_serving", fake)
    monkeypatch.setattr(bert_tf, "squad_serving", fake, raising=False)
    source = pretrained.resolve(str(data / "tiny"))
    squad.run_squad(_settings(tmp_path / "out", source, export_dir=str(tmp_path / "export"),
                              version_2_with_negative=True, null_score_diff_threshold=-1.5))
    (model, export_dir, kwargs), = calls
    assert isinstance(model, squad.BertSpanLabeler) and export_dir == str(tmp_path / "export")
    assert kwargs == {"vocab_file": source.vocab_file, "do_lower_case": True,
                      "max_seq_length": 128, "doc_stride": 64, "max_query_length": 64,
                      "max_answer_length": 30, "n_best_size": 20,
                      "version_2_with_negative": True, "null_score_diff_threshold": -1.5,
                      "control_chars": "google"}


def test_malformed_predict_file_is_one_line_and_nothing_is_lost(data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.json").write_text("{}\n")  # an earlier run's
    bad = tmp_path / "dev.json"
    bad.write_text('{"version": "1.1", "data": [{"title": "t", "paragraphs": [\n{"context": "x",')
    result = subprocess.run(_command(f"--init_checkpoint={data / 'tiny'}", "--do_predict",
                                     f"--predict_file={bad}", f"--output_dir={out}",
                                     "--max_seq_length=128"),
                            capture_output=True, text=True, env=_env(), timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"error: {bad}:2: not valid JSON" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["predictions.json"]


def test_do_eval_without_reference_answers_is_refused_before_training(data, tmp_path):
    unanswered = tmp_path / "test.json"
    unanswered.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": "Some text.", "qas": [{"id": "q-test", "question": "What?"}]}]}]}))
    source = pretrained.resolve(str(data / "tiny"))
    with pytest.raises(squad_data.SquadDataError,
                       match=r"test.json: question id 'q-test' has no reference \"answers\""):
        squad.run_squad(_settings(tmp_path / "out", source, do_train=True,
                                  train_file=str(data / "train.json"), do_eval=True,
                                  predict_file=str(unanswered)))
    assert not (tmp_path / "out").exists()
