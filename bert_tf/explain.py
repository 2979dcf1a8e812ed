"""Which tokens a fine-tuned model's prediction rests on.

A classifier's prediction (`Explainer`), or a span labeler's chosen answer
start and end (`SpanExplainer`, for `run_squad.py` models). Two views:
  * integrated gradients (Sundararajan et al. 2017) on the embedding output,
    the LayerNorm'd sum of word, position and segment embeddings. The
    baseline is the same sequence with every token except [CLS] and [SEP]
    replaced by [PAD] (positions and segments kept), so only word identity
    is attributed. The path integral uses Gauss-Legendre nodes (or the
    trapezoid rule), all steps in one batch; attributions sum, up to the
    quadrature error, to logit(input) - logit(baseline), which every
    explanation reports as its completeness check. One implementation
    (`IntegratedGradients`) serves both models: what differs is only the
    scalar explained, a class logit or the logit of one start or end position;
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

# Keys of run_identity.json's task_name that mark a span-extraction run.
SPAN_TASKS = ("squad",)

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


class IntegratedGradients:
    """Integrated gradients of one output score of a BERT model, per token.

    `outputs(embedding_output, input_mask)` maps the encoder's embedding
    output `[batch, seq, hidden]` to float32 scores `[batch, n]`; calling the
    object attributes score `target` of one sequence to its tokens, against
    a baseline sequence of the same length, positions and segments.

    >>> encoder = modeling.BertEncoder(modeling.BertConfig(vocab_size=30,
    ...     hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16))
    >>> first = lambda x, mask: encoder.encode_embeddings(x, mask)["sequence_output"][:, :, 0]
    >>> ig = IntegratedGradients(encoder, first, steps=20)
    >>> scores, f_x, f_base = ig([2, 7, 9, 3], [0, 0, 0, 0], [2, 0, 0, 3], target=1)
    >>> bool(abs(scores.sum() - (f_x - f_base)) < 0.05 * abs(f_x - f_base))
    True
    """

    def __init__(self, encoder, outputs, steps: int = 50, method: str = "gauss_legendre"):
        self.encoder = encoder
        self.alphas, self.weights = path_nodes(steps, method)
        self._outputs_fn = outputs
        ids = tf.TensorSpec([None, None], tf.int32)
        embeddings = tf.TensorSpec([None, None, encoder.config.hidden_size], tf.float32)
        self.embed = tf.function(self._embed_fn, input_signature=[ids, ids])
        self.outputs = tf.function(outputs, input_signature=[embeddings, ids])
        self._gradients = tf.function(
            self._gradients_fn, input_signature=[embeddings, ids, tf.TensorSpec([], tf.int32)])

    def _embed_fn(self, word_ids, type_ids):
        return self.encoder.embeddings(word_ids, type_ids, training=False)

    def _gradients_fn(self, embedding_output, mask, target):
        with tf.GradientTape() as tape:
            tape.watch(embedding_output)
            score = self._outputs_fn(embedding_output, mask)[:, target]
        return tape.gradient(score, embedding_output)

    def __call__(self, input_ids, type_ids, baseline_ids, target: int,
                 ) -> tuple[np.ndarray, float, float]:
        """Per-token attributions to score `target`, score(input), score(baseline)."""
        types = np.array([type_ids], np.int32)
        x = self.embed(np.array([input_ids], np.int32), types)
        x_base = self.embed(np.array([baseline_ids], np.int32), types)
        mask = np.ones_like(types)
        alphas = tf.constant(self.alphas, tf.float32)[:, tf.newaxis, tf.newaxis]
        path = x_base + alphas * (x - x_base)
        grads = self._gradients(path, np.repeat(mask, len(self.alphas), 0), target).numpy()
        average = np.tensordot(self.weights, grads.astype(np.float64), axes=1)
        difference = (x - x_base).numpy()[0].astype(np.float64)
        attributions = (difference * average).sum(-1)
        ends = self.outputs(tf.concat([x, x_base], 0), np.repeat(mask, 2, 0)).numpy()
        return attributions, float(ends[0, target]), float(ends[1, target])


def _baseline_ids(tokens: list[str], ids: list[int], pad_id: int) -> list[int]:
    """Every token but [CLS] and [SEP] replaced by [PAD]."""
    return [i if token in SPECIAL_TOKENS else pad_id for token, i in zip(tokens, ids)]


def _pad_id(tokenizer) -> int:
    if "[PAD]" not in tokenizer.vocab:
        raise ValueError("the vocabulary has no [PAD] token for the baseline")
    return tokenizer.vocab["[PAD]"]


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
        self.labels = labels or [str(i) for i in range(classifier.num_labels)]
        if len(self.labels) != classifier.num_labels:
            raise ValueError(f"{len(self.labels)} label names for a classifier with "
                             f"{classifier.num_labels} outputs")
        self.pad_id = _pad_id(tokenizer)
        self.ig = IntegratedGradients(self.encoder, self._logits_fn, ig_steps, method)
        self.alphas, self.weights = self.ig.alphas, self.ig.weights
        self._embed, self._logits = self.ig.embed, self.ig.outputs
        ids = tf.TensorSpec([None, None], tf.int32)
        self._attention = tf.function(self._attention_fn, input_signature=[ids, ids, ids])

    # --- graph pieces -------------------------------------------------------

    def _logits_fn(self, embedding_output, mask):
        pooled = self.encoder.encode_embeddings(embedding_output, mask)["pooled_output"]
        return tf.cast(self.classifier.head(pooled), tf.float32)

    def _attention_fn(self, word_ids, mask, type_ids):
        outputs = self.encoder({"input_word_ids": word_ids, "input_mask": mask,
                                "input_type_ids": type_ids}, output_attentions=True)
        return outputs["attention_probs"]

    # --- inputs ---------------------------------------------------------------

    def features(self, text: str, text_b: str | None = None) -> feature_extraction.Features:
        return next(feature_extraction.to_features([(0, text, text_b)], self.tokenizer,
                                                   self.max_seq_length))

    def baseline_ids(self, feature: feature_extraction.Features) -> list[int]:
        return _baseline_ids(feature.tokens, feature.input_ids, self.pad_id)

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
        return self.ig(feature.input_ids, feature.input_type_ids, self.baseline_ids(feature),
                       target)

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


# --- span extraction (run_squad.py models) ------------------------------------

@dataclasses.dataclass
class SpanExplanation:
    """Integrated gradients for the chosen answer of a span labeler.

    `tokens` is the window the answer was chosen from (`[CLS] question [SEP]
    context [SEP]`, `segment_ids` 0 then 1); `answer_start`/`answer_end` are
    positions in it (both 0, [CLS], when no valid span exists). The start
    attributions explain the start logit at `answer_start`, the end ones the
    end logit at `answer_end`.
    """

    question: str
    answer: str
    tokens: list[str]
    segment_ids: list[int]
    window: int
    windows: int
    answer_start: int
    answer_end: int
    start_attributions: list[float]
    end_attributions: list[float]
    start_logit: float
    start_logit_baseline: float
    end_logit: float
    end_logit_baseline: float

    def completeness_error(self, which: str) -> float:
        """|sum of `which` ("start"/"end") attributions - logit difference|, relative."""
        values = getattr(self, f"{which}_attributions")
        delta = getattr(self, f"{which}_logit") - getattr(self, f"{which}_logit_baseline")
        return abs(sum(values) - delta) / max(abs(delta), 1e-6)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["answer_tokens"] = self.tokens[self.answer_start:self.answer_end + 1]
        values["completeness"] = {
            which: {"attribution_sum": float(sum(getattr(self, f"{which}_attributions"))),
                    "logit_difference": (getattr(self, f"{which}_logit")
                                         - getattr(self, f"{which}_logit_baseline")),
                    "relative_error": self.completeness_error(which)}
            for which in ("start", "end")}
        return values


class SpanExplainer:
    """Explains the answer a `squad.BertSpanLabeler` picks for a question.

    The context is windowed and the answer chosen as `run_squad.py` does
    (Google's windows, max-context rule, n-best start/end pairs of at most
    `max_answer_length` wordpieces); the window holding the best span is
    attributed twice, once for its start logit and once for its end logit::

        explainer = SpanExplainer(model, tokenizer, max_seq_length=384)
        e = explainer.explain("Who wrote it?", "It was written by John Smith.")
        e.answer, e.tokens[e.answer_start:e.answer_end + 1]
    """

    def __init__(self, model, tokenizer: tokenization.FullTokenizer, max_seq_length: int = 384,
                 doc_stride: int = 128, max_query_length: int = 64, n_best_size: int = 20,
                 max_answer_length: int = 30, ig_steps: int = 50,
                 method: str = "gauss_legendre"):
        self.model = model
        self.encoder = model.encoder
        self.tokenizer = tokenizer
        self.max_seq_length, self.doc_stride = max_seq_length, doc_stride
        self.max_query_length = max_query_length
        self.n_best_size, self.max_answer_length = n_best_size, max_answer_length
        self.pad_id = _pad_id(tokenizer)
        self.ig = IntegratedGradients(self.encoder, self._span_logits_fn, ig_steps, method)

    def _span_logits_fn(self, embedding_output, mask):
        """Start logits then end logits, `[batch, 2 * seq]`: score i < seq is
        the start logit of token i, score seq + i its end logit."""
        sequence = self.encoder.encode_embeddings(embedding_output, mask)["sequence_output"]
        logits = tf.cast(self.model.span_head(sequence), tf.float32)  # [batch, seq, 2]
        return tf.concat([logits[:, :, 0], logits[:, :, 1]], axis=1)

    def windows(self, question: str, context: str):
        """The example and its windows, as `run_squad.py --do_predict` builds them."""
        from bert_tf import squad_data

        words, char_to_word = squad_data.split_context(context)
        if not words:
            raise ValueError("the context is empty")
        if not self.tokenizer.tokenize(question):
            raise ValueError(f"the question {question!r} has no tokens")
        example = squad_data.SquadExample(
            qas_id="explained", question_text=question, doc_tokens=words,
            context_text=context, char_to_word_offset=char_to_word)
        features = squad_data.convert_examples_to_features(
            [example], self.tokenizer, self.max_seq_length, self.doc_stride,
            self.max_query_length, is_training=False)
        return example, features

    def span_logits(self, features) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Start and end logits of each window, at its real tokens."""
        length = max(len(f.input_ids) for f in features)
        ids = np.zeros((len(features), length), np.int32)
        types, mask = np.zeros_like(ids), np.zeros_like(ids)
        for row, f in enumerate(features):
            n = len(f.input_ids)
            ids[row, :n], types[row, :n], mask[row, :n] = f.input_ids, f.segment_ids, 1
        scores = self.ig.outputs(self.ig.embed(ids, types), mask).numpy()
        starts = [scores[row, :len(f.input_ids)] for row, f in enumerate(features)]
        ends = [scores[row, length:length + len(f.input_ids)] for row, f in enumerate(features)]
        return starts, ends

    def explain(self, question: str, context: str) -> SpanExplanation:
        from bert_tf import squad_postprocess

        example, features = self.windows(question, context)
        starts, ends = self.span_logits(features)
        spans, _ = squad_postprocess.candidates(
            features, [list(map(float, s)) for s in starts], [list(map(float, e)) for e in ends],
            self.n_best_size, self.max_answer_length, False)
        if spans:
            best = max(spans, key=lambda c: c.start_logit + c.end_logit)
            window, start, end = best.feature_index, best.start, best.end
            feature = features[window]
            answer = squad_postprocess.span_text(
                example, feature, start, end, self.tokenizer.do_lower_case, False,
                self.tokenizer.control_chars)
        else:
            # No valid span in any window (Google answers "empty"): explain [CLS].
            window, start, end, answer = 0, 0, 0, ""
            feature = features[0]
        baseline = _baseline_ids(feature.tokens, feature.input_ids, self.pad_id)
        n = len(feature.input_ids)
        start_scores, start_x, start_base = self.ig(feature.input_ids, feature.segment_ids,
                                                    baseline, start)
        end_scores, end_x, end_base = self.ig(feature.input_ids, feature.segment_ids,
                                              baseline, n + end)
        return SpanExplanation(
            question=question, answer=answer, tokens=list(feature.tokens),
            segment_ids=list(feature.segment_ids), window=window, windows=len(features),
            answer_start=start, answer_end=end, start_attributions=start_scores.tolist(),
            end_attributions=end_scores.tolist(), start_logit=start_x,
            start_logit_baseline=start_base, end_logit=end_x, end_logit_baseline=end_base)


# --- HTML ---------------------------------------------------------------------

def _cells(tokens: list[str], scores: list[float], answer: range = range(0)) -> str:
    """Tokens as coloured spans: green for positive, red for negative, opacity
    by magnitude relative to the largest word in the row ([CLS] often takes
    most of the rollout and would wash the words out). Tokens at positions in
    `answer` are outlined (class "answer")."""
    words = [abs(s) for t, s in zip(tokens, scores) if t not in SPECIAL_TOKENS]
    scale = max(words, default=0.0) or 1.0
    spans = []
    for position, (token, score) in enumerate(zip(tokens, scores)):
        alpha = min(1.0, abs(score) / scale)
        colour = "0,160,60" if score >= 0 else "220,30,30"
        joined = token.startswith("##")
        text = token[2:] if joined else token
        spans.append(
            f'{"" if joined else " "}<span class="{"tok answer" if position in answer else "tok"}" '
            f'title="{score:+.4f}" '
            f'style="background: rgba({colour},{alpha:.3f})">{html.escape(text)}</span>')
    return "".join(spans).strip()


def _section(e) -> str:
    if isinstance(e, SpanExplanation):
        answer = range(e.answer_start, e.answer_end + 1) if e.answer_end > 0 else range(0)
        rows = []
        for which in ("start", "end"):
            logit = getattr(e, f"{which}_logit")
            scores = getattr(e, f"{which}_attributions")
            position = getattr(e, f"answer_{which}")
            rows.append(
                f"<p><span class=\"label\">{which}: {html.escape(e.tokens[position])} "
                f"({position})</span> {_cells(e.tokens, scores, answer)}</p>"
                f"<p class=\"meta\">{which} logit {logit:+.4f}, sum {sum(scores):+.4f} vs "
                f"logit difference {logit - getattr(e, f'{which}_logit_baseline'):+.4f}</p>")
        return ("<section>"
                f"<p class=\"meta\">question <b>{html.escape(e.question)}</b>; answer "
                f"<b class=\"answer\">{html.escape(e.answer) or '(none)'}</b> "
                f"(window {e.window + 1} of {e.windows}); integrated gradients of the "
                "start and of the end logit</p>" + "".join(rows) + "</section>")
    probs = ", ".join(f"{html.escape(label)}: {p:.3f}"
                      for label, p in zip(e.labels, e.probabilities))
    return (
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


def to_html(explanations: list, title: str = "BERT prediction explanations") -> str:
    """One self-contained page: per text, the prediction and its heat maps
    (a classifier's two views; a span labeler's start and end attributions,
    the answer outlined)."""
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "section{border-bottom:1px solid #ddd;padding:.5em 0}"
        ".tok{padding:1px 2px;border-radius:3px}.meta{color:#444;font-size:90%}"
        ".tok.answer{outline:2px solid #246;outline-offset:-1px}"
        ".label{display:inline-block;width:12em;color:#666;font-size:85%}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        "<p>Green: pushes towards the explained output; red: pushes away. "
        "Hover a token for its score.</p>"
        + "".join(_section(e) for e in explanations) + "</body></html>\n")


# --- loading --------------------------------------------------------------------

def read_run_identity(output_dir: str) -> dict:
    """`run_identity.json` of a `run_classifier.py` or `run_squad.py` output
    folder (task, labels, length)."""
    import os

    path = os.path.join(output_dir, "run_identity.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"--output_dir {output_dir!r} holds no run_identity.json: "
                                "is it a run_classifier.py or run_squad.py output folder?")
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


def is_span_run(identity: dict) -> bool:
    """True for the identity of a `run_squad.py` output folder."""
    return identity.get("task_name") in SPAN_TASKS


def load_span_labeler(source, output_dir: str | None = None):
    """A `squad.BertSpanLabeler` from a `run_squad.py` output folder (its
    latest checkpoint), or from the pretrained `source` (a Google SQuAD
    checkpoint's `cls/squad` or a Hugging Face `qa_outputs` layer restores;
    otherwise the span layer is new, useful only for testing). Returns it
    with the run identity ({} without an output folder)."""
    from bert_tf import checkpoints, squad

    identity = read_run_identity(output_dir) if output_dir else {}
    if identity and not is_span_run(identity):
        raise ValueError(f"--output_dir {output_dir!r} is a {identity.get('task_name')!r} "
                         "classifier run, not a run_squad.py one")
    model = squad.BertSpanLabeler(modeling.BertEncoder(source.config))
    if output_dir:
        latest = tf.train.latest_checkpoint(output_dir)
        if not latest:
            raise FileNotFoundError(f"--output_dir {output_dir!r} holds no checkpoint")
        checkpoints.load_checkpoint(model, latest)
    else:
        squad.SpanTask(source.config, source).initialize(model)
    return model, identity
