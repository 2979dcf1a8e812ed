"""From start/end logits to answers, as Google's `write_predictions`.

For each question, every window proposes its `n_best_size` best starts and
ends; a pair is kept when both lie in the window's context, the start is a
token the window has maximal context for, the end is not before the start
and the span is at most `max_answer_length` wordpieces. Pairs are ranked by
start + end logit, mapped back to the paragraph's words, and trimmed to the
characters of the predicted wordpieces (`get_final_text`). SQuAD 2.0 adds
the null answer (the [CLS] scores of the window where they are smallest)
and answers "" when it beats the best span by more than
`null_score_diff_threshold`.

Two cases where Google's code has no answer: without any valid span it
writes the placeholder "empty" (here the answer is ""), and with SQuAD 2.0
it fails (its best non-null entry is None); here the answer is "" and
null_odds.json records NO_SPAN_ODDS, Google's own "large and positive"
sentinel, since there is no span score to subtract.
"""

from __future__ import annotations

import collections
import json
import math
import os
from typing import Sequence

import numpy as np
from absl import logging

from bert_tf import atomic_io, tokenization

# null_odds.json's value for a question with no valid span at all.
NO_SPAN_ODDS = 1000000.0

Candidate = collections.namedtuple("Candidate", "feature_index start end start_logit end_logit")


def best_indexes(logits: Sequence[float], n_best_size: int) -> list[int]:
    """Positions of the n largest logits, largest first, earlier first on ties.

    >>> best_indexes([0.1, 0.7, 0.3, 0.7], 3)
    [1, 3, 2]
    """
    order = np.argsort(-np.asarray(logits, dtype=np.float64), kind="stable")
    return [int(i) for i in order[:n_best_size]]


def softmax(scores: Sequence[float]) -> list[float]:
    """Probabilities of the scores, in Python floats as Google computes them."""
    if not scores:
        return []
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def _without_spaces(text: str) -> tuple[str, dict[int, int]]:
    kept, positions = [], {}
    for i, char in enumerate(text):
        if char != " ":
            positions[len(kept)] = i
            kept.append(char)
    return "".join(kept), positions


def get_final_text(pred_text: str, orig_text: str, do_lower_case: bool,
                   verbose_logging: bool = False,
                   control_chars: str = tokenization.DEFAULT_CONTROL_CHARS) -> str:
    """The part of `orig_text` (the span's words) that `pred_text` (its wordpieces,
    detokenized) stands for.

    `orig_text` may hold more than the prediction ("Steve Smith's" for
    "steve smith"), and `pred_text` is normalised (lower-cased, accents
    stripped), so neither is the answer. Basic-tokenizing `orig_text` and
    dropping spaces from both gives a character alignment when the lengths
    agree; the prediction's characters are mapped back through it. When the
    alignment fails, the whole `orig_text` is the answer.

    >>> get_final_text("steve smith", "Steve Smith's", do_lower_case=True)
    'Steve Smith'
    """
    tokenizer = tokenization.BasicTokenizer(do_lower_case=do_lower_case,
                                            control_chars=control_chars)
    tok_text = " ".join(tokenizer.tokenize(orig_text))
    start = tok_text.find(pred_text)
    if start == -1:
        if verbose_logging:
            logging.info("Unable to find text: %r in %r", pred_text, orig_text)
        return orig_text
    end = start + len(pred_text) - 1
    orig_chars, orig_map = _without_spaces(orig_text)
    tok_chars, tok_map = _without_spaces(tok_text)
    if len(orig_chars) != len(tok_chars):
        if verbose_logging:
            logging.info("Length not equal after stripping spaces: %r vs %r", orig_chars,
                         tok_chars)
        return orig_text
    tok_to_stripped = {spaced: stripped for stripped, spaced in tok_map.items()}
    orig_start = orig_map.get(tok_to_stripped.get(start, -1))
    orig_end = orig_map.get(tok_to_stripped.get(end, -1))
    if orig_start is None or orig_end is None:
        if verbose_logging:
            logging.info("Couldn't map the %s position", "start" if orig_start is None else "end")
        return orig_text
    return orig_text[orig_start:orig_end + 1]


def candidates(features, start_logits, end_logits, n_best_size, max_answer_length,
                version_2_with_negative):
    """Valid spans of all windows of one question, and its null candidate."""
    spans = []
    null = None  # (score, feature_index, start logit, end logit) of the smallest [CLS] score
    for index, (feature, starts, ends) in enumerate(zip(features, start_logits, end_logits)):
        if version_2_with_negative:
            score = starts[0] + ends[0]
            if null is None or score < null[0]:
                null = (score, index, starts[0], ends[0])
        num_tokens = len(feature.tokens)
        context = feature.token_to_orig_map
        for start in best_indexes(starts, n_best_size):
            for end in best_indexes(ends, n_best_size):
                if start >= num_tokens or end >= num_tokens:
                    continue
                if start not in context or end not in context:
                    continue
                if not feature.token_is_max_context.get(start, False):
                    continue
                if end < start or end - start + 1 > max_answer_length:
                    continue
                spans.append(Candidate(index, start, end, starts[start], ends[end]))
    return spans, null


def span_text(example, feature, start, end, do_lower_case, verbose_logging, control_chars):
    pieces = " ".join(feature.tokens[start:end + 1])
    # Join the wordpieces split off a word back onto it.
    pieces = pieces.replace(" ##", "").replace("##", "")
    pieces = " ".join(pieces.strip().split())
    first, last = feature.token_to_orig_map[start], feature.token_to_orig_map[end]
    words = " ".join(example.doc_tokens[first:last + 1])
    return get_final_text(pieces, words, do_lower_case, verbose_logging, control_chars)


def compute_predictions(examples, features, start_logits, end_logits, n_best_size: int = 20,
                        max_answer_length: int = 30, do_lower_case: bool = True,
                        version_2_with_negative: bool = False,
                        null_score_diff_threshold: float = 0.0, verbose_logging: bool = False,
                        control_chars: str = tokenization.DEFAULT_CONTROL_CHARS):
    """Answers, n-best lists and (SQuAD 2.0) null odds, keyed by question id.

    `start_logits`/`end_logits` hold one row per feature, in the order of
    `features`. Returns (predictions, nbest, null_odds) as ordered dicts in
    the order of `examples`; null_odds is None without
    `version_2_with_negative`.
    """
    by_example = collections.defaultdict(list)
    for index, feature in enumerate(features):
        by_example[feature.example_index].append(index)
    predictions, all_nbest = collections.OrderedDict(), collections.OrderedDict()
    null_odds = collections.OrderedDict() if version_2_with_negative else None

    for example_index, example in enumerate(examples):
        rows = by_example.get(example_index, [])
        own = [features[i] for i in rows]
        # Python floats, so that sums and comparisons are Google's.
        starts = [[float(x) for x in start_logits[i]] for i in rows]
        ends = [[float(x) for x in end_logits[i]] for i in rows]
        spans, null = candidates(own, starts, ends, n_best_size, max_answer_length,
                                  version_2_with_negative)
        if version_2_with_negative:
            # A question with no windows has no null score either: Google's
            # initial values (a large score, logits 0) stand in.
            score_null, null_index, null_start, null_end = null or (NO_SPAN_ODDS, 0, 0.0, 0.0)
            spans.append(Candidate(null_index, 0, 0, null_start, null_end))
        spans.sort(key=lambda c: c.start_logit + c.end_logit, reverse=True)

        nbest, seen = [], set()
        for candidate in spans:
            if len(nbest) >= n_best_size:
                break
            if candidate.start > 0:
                text = span_text(example, own[candidate.feature_index], candidate.start,
                                  candidate.end, do_lower_case, verbose_logging, control_chars)
                if text in seen:
                    continue
            else:
                text = ""
            seen.add(text)
            nbest.append((text, candidate.start_logit, candidate.end_logit))
        if version_2_with_negative and "" not in seen:
            nbest.append(("", null_start, null_end))
        if not nbest:
            nbest.append(("", 0.0, 0.0))

        probabilities = softmax([s + e for _, s, e in nbest])
        all_nbest[example.qas_id] = [
            collections.OrderedDict(text=text, probability=p, start_logit=s, end_logit=e)
            for (text, s, e), p in zip(nbest, probabilities)]
        best_span = next(((text, s, e) for text, s, e in nbest if text), None)
        if not version_2_with_negative:
            predictions[example.qas_id] = nbest[0][0]
        elif best_span is None:
            # Nothing but the null answer: Google's code fails here.
            null_odds[example.qas_id] = NO_SPAN_ODDS
            predictions[example.qas_id] = ""
        else:
            diff = score_null - best_span[1] - best_span[2]
            null_odds[example.qas_id] = diff
            predictions[example.qas_id] = "" if diff > null_score_diff_threshold else best_span[0]
    return predictions, all_nbest, null_odds


PREDICTION_FILES = ("predictions.json", "nbest_predictions.json", "null_odds.json")


def write_predictions(output_dir: str, predictions, nbest, null_odds=None) -> list[str]:
    """Writes predictions.json, nbest_predictions.json and (SQuAD 2.0)
    null_odds.json in Google's layout (JSON, 4-space indent), each atomically.
    Returns the paths written."""
    paths = []
    for name, value in zip(PREDICTION_FILES, (predictions, nbest, null_odds)):
        if value is None:
            continue
        path = os.path.join(output_dir, name)
        atomic_io.write_text(path, json.dumps(value, indent=4) + "\n")
        paths.append(path)
    return paths
