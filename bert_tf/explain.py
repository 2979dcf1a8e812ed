"""Which tokens a fine-tuned classifier's prediction rests on.

Two views of one prediction:
  * integrated gradients (Sundararajan et al. 2017) on the embedding output,
    the LayerNorm'd sum of word, position and segment embeddings. The
    baseline is the same sequence with every token except [CLS] and [SEP]
    replaced by [PAD] (positions and segments kept), so only word identity
    is attributed. The path integral uses Gauss-Legendre nodes (or the
    trapezoid rule), all steps in one batch; attributions sum, up to the
    quadrature error, to logit(input) - logit(baseline), which every
    explanation reports as its completeness check;
  * attention rollout (Abnar & Zuidema 2020): per layer, heads averaged,
    identity added for the residual path, rows renormalised; the layers
    multiplied from the bottom up; the [CLS] row says how much each input
    position flowed into the pooled token. Cheap: one forward pass.
"""

from __future__ import annotations

import dataclasses
import html
import random

import numpy as np
import tensorflow as tf

from bert_tf import feature_extraction, modeling, text_files, tokenization

SPECIAL_TOKENS = ("[CLS]", "[SEP]")


def path_nodes(steps: int, method: str = "gauss_legendre") -> tuple[np.ndarray, np.ndarray]:
    """Interpolation points alpha in [0, 1] and their quadrature weights."""
    if steps < 1:
        raise ValueError(f"ig_steps must be at least 1, got {steps}")
    if method == "gauss_legendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1) / 2, weights / 2
    if method == "trapezoid":
        alphas = np.linspace(0.0, 1.0, steps + 1)
        weights = np.full(steps + 1, 1.0 / steps)
        weights[[0, -1]] /= 2
        return alphas, weights
    raise ValueError(f"unknown integration method {method!r}: gauss_legendre or trapezoid")


def attention_rollout(attention_probs: list[np.ndarray]) -> np.ndarray:
    """Per-layer `[heads, seq, seq]` attention to the `[seq, seq]` rollout matrix."""
    rollout = None
    for probs in attention_probs:
        mixed = probs.mean(0) + np.eye(probs.shape[-1])
        mixed /= mixed.sum(-1, keepdims=True)
        rollout = mixed if rollout is None else mixed @ rollout
    return rollout


@dataclasses.dataclass
class Explanation:
    tokens: list[str]
    attributions: list[float]
    rollout: list[float]
    probabilities: list[float]
    labels: list[str]
    predicted: int
    target: int
    logit_input: float
    logit_baseline: float

    @property
    def attribution_sum(self) -> float:
        return float(sum(self.attributions))

    @property
    def completeness_error(self) -> float:
        """|sum of attributions - logit difference|, relative to the difference."""
        delta = self.logit_input - self.logit_baseline
        return abs(self.attribution_sum - delta) / max(abs(delta), 1e-6)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["predicted_label"] = self.labels[self.predicted]
        values["target_label"] = self.labels[self.target]
        values["completeness"] = {
            "attribution_sum": self.attribution_sum,
            "logit_difference": self.logit_input - self.logit_baseline,
            "relative_error": self.completeness_error,
        }
        return values


class Explainer:
    """Explains the predictions of a `BertClassifier`.

    With a fine-tuned classifier and its tokenizer (`load_classifier`)::

        explainer = Explainer(classifier, tokenizer)
        explainer.explain("a gorgeous , witty movie").tokens
        # ['[CLS]', 'a', 'gorgeous', ',', 'witty', 'movie', '[SEP]']
    """

    def __init__(self, classifier: modeling.BertClassifier, tokenizer: tokenization.FullTokenizer,
                 max_seq_length: int = 128, ig_steps: int = 50, method: str = "gauss_legendre",
                 labels: list[str] | None = None):
        self.classifier = classifier
        self.encoder = classifier.encoder
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.alphas, self.weights = path_nodes(ig_steps, method)
        self.labels = labels or [str(i) for i in range(classifier.num_labels)]
        if len(self.labels) != classifier.num_labels:
            raise ValueError(f"{len(self.labels)} label names for a classifier with "
                             f"{classifier.num_labels} outputs")
        if "[PAD]" not in tokenizer.vocab:
            raise ValueError("the vocabulary has no [PAD] token for the baseline")
        self.pad_id = tokenizer.vocab["[PAD]"]
        ids = tf.TensorSpec([None, None], tf.int32)
        embeddings = tf.TensorSpec([None, None, classifier.encoder.config.hidden_size],
                                   tf.float32)
        self._embed = tf.function(self._embed_fn, input_signature=[ids, ids])
        self._logits = tf.function(self._logits_fn, input_signature=[embeddings, ids])
        self._gradients = tf.function(
            self._gradients_fn,
            input_signature=[embeddings, ids, tf.TensorSpec([], tf.int32)])
        self._attention = tf.function(self._attention_fn, input_signature=[ids, ids, ids])

    # --- graph pieces -------------------------------------------------------

    def _embed_fn(self, word_ids, type_ids):
        return self.encoder.embeddings(word_ids, type_ids, training=False)

    def _logits_fn(self, embedding_output, mask):
        pooled = self.encoder.encode_embeddings(embedding_output, mask)["pooled_output"]
        return tf.cast(self.classifier.head(pooled), tf.float32)

    def _gradients_fn(self, embedding_output, mask, target):
        with tf.GradientTape() as tape:
            tape.watch(embedding_output)
            logit = self._logits_fn(embedding_output, mask)[:, target]
        return tape.gradient(logit, embedding_output)

    def _attention_fn(self, word_ids, mask, type_ids):
        outputs = self.encoder({"input_word_ids": word_ids, "input_mask": mask,
                                "input_type_ids": type_ids}, output_attentions=True)
        return outputs["attention_probs"]

    # --- inputs ---------------------------------------------------------------

    def features(self, text: str, text_b: str | None = None) -> feature_extraction.Features:
        return next(feature_extraction.to_features([(0, text, text_b)], self.tokenizer,
                                                   self.max_seq_length))

    def baseline_ids(self, feature: feature_extraction.Features) -> list[int]:
        return [i if token in SPECIAL_TOKENS else self.pad_id
                for token, i in zip(feature.tokens, feature.input_ids)]

    def predict_ids(self, sequences: list[tuple[list[int], list[int]]]) -> np.ndarray:
        """Softmax probabilities for (input ids, type ids) pairs, padded as one batch."""
        batch = feature_extraction.pad_batch([
            feature_extraction.Features(i, [], ids, types) for i, (ids, types) in enumerate(sequences)])
        embedded = self._embed(batch["input_word_ids"], batch["input_type_ids"])
        return tf.nn.softmax(self._logits(embedded, batch["input_mask"])).numpy()

    # --- the two views --------------------------------------------------------

    def integrated_gradients(self, feature: feature_extraction.Features, target: int,
                             ) -> tuple[np.ndarray, float, float]:
        """Per-token attributions to logit `target`, logit(input), logit(baseline)."""
        types = np.array([feature.input_type_ids], np.int32)
        x = self._embed(np.array([feature.input_ids], np.int32), types)
        x_base = self._embed(np.array([self.baseline_ids(feature)], np.int32), types)
        mask = np.ones_like(types)
        alphas = tf.constant(self.alphas, tf.float32)[:, tf.newaxis, tf.newaxis]
        path = x_base + alphas * (x - x_base)
        grads = self._gradients(path, np.repeat(mask, len(self.alphas), 0), target).numpy()
        average = np.tensordot(self.weights, grads.astype(np.float64), axes=1)
        difference = (x - x_base).numpy()[0].astype(np.float64)
        attributions = (difference * average).sum(-1)
        ends = self._logits(tf.concat([x, x_base], 0), np.repeat(mask, 2, 0)).numpy()
        return attributions, float(ends[0, target]), float(ends[1, target])

    def rollout(self, feature: feature_extraction.Features) -> np.ndarray:
        """The [CLS] row of the attention rollout, one weight per token."""
        ids = np.array([feature.input_ids], np.int32)
        probs = self._attention(ids, np.ones_like(ids), np.array([feature.input_type_ids],
                                                                 np.int32))
        return attention_rollout([p.numpy()[0].astype(np.float64) for p in probs])[0]

    def explain(self, text: str, text_b: str | None = None,
                target: int | None = None) -> Explanation:
        """Both views for one text (or pair); `target` defaults to the predicted class."""
        feature = self.features(text, text_b)
        probabilities = self.predict_ids([(feature.input_ids, feature.input_type_ids)])[0]
        predicted = int(probabilities.argmax())
        target = predicted if target is None else target
        if not 0 <= target < len(self.labels):
            raise ValueError(f"target class {target} is out of range for "
                             f"{len(self.labels)} labels")
        attributions, logit_input, logit_baseline = self.integrated_gradients(feature, target)
        return Explanation(
            tokens=feature.tokens, attributions=attributions.tolist(),
            rollout=self.rollout(feature).tolist(), probabilities=probabilities.tolist(),
            labels=list(self.labels), predicted=predicted, target=target,
            logit_input=logit_input, logit_baseline=logit_baseline)


def deletion_test(explainer: Explainer, texts: list[str], k: int = 3, min_tokens: int = 4,
                  seed: int = 12345) -> dict:
    """Deletes the k most positively attributed wordpieces, or k random ones,
    and counts how often the originally predicted class loses probability or
    the prediction flips. Texts with fewer than `min_tokens` wordpieces are
    skipped."""
    rng = random.Random(seed)
    counts = {"top": {"lowered": 0, "flipped": 0, "drop": 0.0},
              "random": {"lowered": 0, "flipped": 0, "drop": 0.0}}
    used = 0
    for text in texts:
        feature = explainer.features(text)
        words = [i for i, t in enumerate(feature.tokens) if t not in SPECIAL_TOKENS]
        if len(words) < min_tokens:
            continue
        used += 1
        probabilities = explainer.predict_ids([(feature.input_ids, feature.input_type_ids)])[0]
        predicted = int(probabilities.argmax())
        attributions, _, _ = explainer.integrated_gradients(feature, predicted)
        top = sorted(words, key=lambda i: -attributions[i])[:k]
        chosen = {"top": set(top), "random": set(rng.sample(words, k))}
        variants = []
        for name in ("top", "random"):
            keep = [i for i in range(len(feature.tokens)) if i not in chosen[name]]
            variants.append(([feature.input_ids[i] for i in keep],
                             [feature.input_type_ids[i] for i in keep]))
        after = explainer.predict_ids(variants)
        for name, row in zip(("top", "random"), after):
            counts[name]["lowered"] += int(row[predicted] < probabilities[predicted])
            counts[name]["flipped"] += int(row.argmax() != predicted)
            counts[name]["drop"] += float(probabilities[predicted] - row[predicted])
    report = {"sentences": used, "k": k}
    for name, c in counts.items():
        report[name] = {"lowered_rate": c["lowered"] / max(used, 1),
                        "flip_rate": c["flipped"] / max(used, 1),
                        "mean_probability_drop": c["drop"] / max(used, 1)}
    return report


# --- HTML ---------------------------------------------------------------------

def _cells(tokens: list[str], scores: list[float]) -> str:
    """Tokens as coloured spans: green for positive, red for negative, opacity
    by magnitude relative to the largest word in the row ([CLS] often takes
    most of the rollout and would wash the words out)."""
    words = [abs(s) for t, s in zip(tokens, scores) if t not in SPECIAL_TOKENS]
    scale = max(words, default=0.0) or 1.0
    spans = []
    for token, score in zip(tokens, scores):
        alpha = min(1.0, abs(score) / scale)
        colour = "0,160,60" if score >= 0 else "220,30,30"
        joined = token.startswith("##")
        text = token[2:] if joined else token
        spans.append(
            f'{"" if joined else " "}<span class="tok" title="{score:+.4f}" '
            f'style="background: rgba({colour},{alpha:.3f})">{html.escape(text)}</span>')
    return "".join(spans).strip()


def to_html(explanations: list[Explanation], title: str = "BERT prediction explanations") -> str:
    """One self-contained page: per text, the prediction and both heat maps."""
    rows = []
    for e in explanations:
        probs = ", ".join(f"{html.escape(label)}: {p:.3f}"
                          for label, p in zip(e.labels, e.probabilities))
        rows.append(
            "<section>"
            f"<p class=\"meta\">predicted <b>{html.escape(e.labels[e.predicted])}</b> ({probs}); "
            f"attributions to <b>{html.escape(e.labels[e.target])}</b>, sum "
            f"{e.attribution_sum:+.4f} vs logit difference "
            f"{e.logit_input - e.logit_baseline:+.4f}</p>"
            f"<p><span class=\"label\">integrated gradients</span> "
            f"{_cells(e.tokens, e.attributions)}</p>"
            f"<p><span class=\"label\">attention rollout</span> "
            f"{_cells(e.tokens, e.rollout)}</p>"
            "</section>")
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "section{border-bottom:1px solid #ddd;padding:.5em 0}"
        ".tok{padding:1px 2px;border-radius:3px}.meta{color:#444;font-size:90%}"
        ".label{display:inline-block;width:12em;color:#666;font-size:85%}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        "<p>Green: pushes towards the explained class; red: pushes away. "
        "Hover a token for its score.</p>"
        + "".join(rows) + "</body></html>\n")


# --- loading --------------------------------------------------------------------

def read_run_identity(output_dir: str) -> dict:
    """`run_identity.json` of a `run_classifier.py` output folder (task, labels, length)."""
    import os

    path = os.path.join(output_dir, "run_identity.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"--output_dir {output_dir!r} holds no run_identity.json: "
                                "is it a run_classifier.py output folder?")
    return text_files.read_json(path)


def load_classifier(source, output_dir: str | None = None,
                    num_labels: int | None = None) -> tuple[modeling.BertClassifier, dict]:
    """A classifier from a `run_classifier.py` output folder (its latest
    checkpoint; `run_identity.json` gives num_labels), or from the pretrained
    `source` with a fresh head of `num_labels`. Returns it with the run
    identity ({} without an output folder)."""
    from bert_tf import checkpoints

    identity = read_run_identity(output_dir) if output_dir else {}
    if identity:
        num_labels = identity["num_labels"]
    if not num_labels or num_labels < 1:
        raise ValueError("pass --num_labels (or an --output_dir of run_classifier.py)")
    classifier = modeling.BertClassifier(modeling.BertEncoder(source.config), num_labels)
    if output_dir:
        latest = tf.train.latest_checkpoint(output_dir)
        if not latest:
            raise FileNotFoundError(f"--output_dir {output_dir!r} holds no checkpoint")
        checkpoints.load_checkpoint(classifier, latest)
    else:
        source.restore(classifier)
    return classifier, identity
