"""The generating SavedModel and its in-graph tokenizers.

In-graph tokenization against Hugging Face: the byte-level BPE's ids equal
`GPT2TokenizerFast`'s on corpus lines and on strings that exercise GPT-2's
pattern (whitespace runs before words, newlines, contractions, digits,
emoji, accents, CJK), its decoding equals Hugging Face's on random ids
(characters cut in the middle included); the Chinese WordPiece's ids equal
`BertTokenizer`'s, the way GPT2-Chinese tokenizes.

The SavedModels of two tiny random GPT-2s (English BPE, Chinese WordPiece)
are loaded in a fresh process that imports TensorFlow and tensorflow-text
only; their text equals the library's `generate_text` greedy and sampled,
for batches of prompts of different lengths, with a stop token, an
unconditional prompt and a prompt cut to fit n_ctx; bad settings fail in
the graph with a message naming them.
"""

import json
import random
import subprocess
import sys

import pytest
import tensorflow as tf

from _gpt2_fixtures import corpus_lines, learn_tokenizer
from bert_tf import bpe_graph, generation, generation_serving, gpt2, lm_tokenization
from conftest import CHINESE_VOCAB

N_CTX = 32
NEW = 10

TRICKY = [
    "", " ", "  ", "\n", "a  b", "a   b", "a \n b", "a\n\nb", "a\r\n\r\nb", "tab\t\tx",
    "  's", "a  's x", "don't  't", "I'm He'll We've They'd you're", "''s", "'S 'T",
    " 123  4567 ", "1,000,000.50", "emoji 🙂🙂  🙂!", "naïve café Ångström", "Cafe\u0301",
    "東京は日本の首都です。", "中文  字", "x\u3000\u3000y", "a\u00a0 b", "x\x1c\x1cy", "end  ",
    "trailing\n\n", "  leading", "!!  ??", "e.g.  x=y+z;", "nul\x00 \x00\x00x\x01",
    "<|endoftext|> plain",
]


@pytest.fixture(scope="module")
def tokenizer():
    return learn_tokenizer(600)


@pytest.fixture(scope="module")
def hf_tokenizer(tokenizer, tmp_path_factory):
    import transformers
    folder = tmp_path_factory.mktemp("hf_bpe")
    tokenizer.save(str(folder), "vocab.json", "merges.txt")
    return transformers.GPT2TokenizerFast.from_pretrained(str(folder))


def test_graph_bpe_ids_equal_hugging_face(tokenizer, hf_tokenizer):
    graph = bpe_graph.GraphByteLevelBPE(tokenizer)
    encode = tf.function(graph.encode, input_signature=[tf.TensorSpec([None], tf.string)])
    # Every line of the KJV sample, every 8th of the others (all 35,150
    # lines agree too, in about a minute).
    lines = (corpus_lines("en/kjv.txt") + corpus_lines("en/wiki.txt")[::8]
             + corpus_lines("en/brown.txt")[::8])
    # Hugging Face reads <|endoftext|> as the special token; GPT-2's
    # encoder (and ours) as text.
    plain = [s for s in TRICKY if "<|endoftext|>" not in s]
    for first in range(0, len(lines), 2048):
        chunk = lines[first:first + 2048]
        assert encode(tf.constant(chunk)).to_list() == hf_tokenizer(chunk)["input_ids"]
    assert encode(tf.constant(plain)).to_list() == hf_tokenizer(plain)["input_ids"]
    assert encode(tf.constant(["<|endoftext|> plain"])).to_list() == [
        tokenizer.encode("<|endoftext|> plain")]


def test_graph_bpe_decoding_equals_hugging_face(tokenizer, hf_tokenizer):
    graph = bpe_graph.GraphByteLevelBPE(tokenizer)
    rng = random.Random(0)
    rows = [[rng.randrange(tokenizer.vocab_size) for _ in range(rng.randrange(0, 24))]
            for _ in range(1000)]
    # Characters cut after 1, 2 or 3 of their bytes.
    rows += [tokenizer.encode(text)[:cut] for text in ("é🙂日", "a🙂", "日本") for cut in range(6)]
    got = graph.decode(tf.ragged.constant(rows, tf.int32, ragged_rank=1, inner_shape=()))
    expected = [hf_tokenizer.decode(r, clean_up_tokenization_spaces=False) for r in rows]
    assert [s.decode("utf-8") for s in got.numpy()] == expected
    assert "\ufffd" in "".join(expected)


ZH_TRICKY = ["中文，GPT\n中", "第一行\n\n第二行[SEP]第三行[CLS]", "[sep] [MASK]文", "Hello 世界 ABC",
             "控\x00制\u200b字\ufeff符", "ｆｕｌｌ－ｗｉｄｔｈ　１２３", "一" * 120 + " " + "a" * 101,
             "x" * 99 + " ok", "", "   ", "Ünïcödé déjà-vu 12.5% ", "😀 emoji"]


def test_graph_chinese_wordpiece_equals_gpt2_chinese_tokenization():
    import transformers
    hf = transformers.BertTokenizer(str(CHINESE_VOCAB))
    ours = lm_tokenization.ChineseWordPiece(str(CHINESE_VOCAB))
    graph = generation_serving.GraphChineseWordPiece(ours)
    lines = corpus_lines("zh/peoples_daily_1998.txt")[::5] + ZH_TRICKY
    # GPT2-Chinese writes a newline as " [SEP] " before BertTokenizer sees it.
    expected = [hf.encode(line.replace("\n", " [SEP] "), add_special_tokens=False)
                for line in lines]
    assert graph.encode(tf.constant(lines)).to_list() == expected
    rng = random.Random(1)
    specials = [ours.vocab[t] for t in ("[SEP]", "[CLS]", "[MASK]", "a", "b", "##c", "中")]
    rows = [[rng.choice(specials) if rng.random() < 0.4 else rng.randrange(ours.vocab_size)
             for _ in range(rng.randrange(0, 16))] for _ in range(500)]
    got = graph.decode(tf.ragged.constant(rows, tf.int32, ragged_rank=1, inner_shape=()))
    assert [s.decode("utf-8") for s in got.numpy()] == [ours.decode(r) for r in rows]


# --- the SavedModel in a fresh process -------------------------------------

CLIENT = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
requests = json.load(open(sys.argv[1], encoding="utf-8"))
models, results = {}, []
for r in requests:
    if r["model"] not in models:
        models[r["model"]] = tf.saved_model.load(r["model"])
    generate = models[r["model"]].signatures["generate"]
    try:
        out = generate(prompt=tf.constant(r["prompts"], tf.string),
                       max_new_tokens=tf.constant(r["max_new_tokens"], tf.int32),
                       temperature=tf.constant(r["temperature"], tf.float32),
                       top_k=tf.constant(r["top_k"], tf.int32),
                       top_p=tf.constant(r["top_p"], tf.float32),
                       seed=tf.constant(r["seed"], tf.int32))
        results.append({"text": [t.decode("utf-8") for t in out["text"].numpy()],
                        "lengths": out["lengths"].numpy().tolist(),
                        "prompt_tokens": out["prompt_tokens"].numpy().tolist(),
                        "stopped": out["stopped"].numpy().tolist()})
    except tf.errors.InvalidArgumentError as e:
        results.append({"error": e.message})
loaded = [name for name in ("bert_tf", "transformers", "torch") if name in sys.modules]
json.dump({"results": results, "loaded": loaded}, open(sys.argv[2], "w", encoding="utf-8"))
"""

SAMPLING = [dict(top_k=1, top_p=1.0, temperature=1.0, seed=0),
            dict(top_k=20, top_p=0.9, temperature=0.7, seed=5),
            dict(top_k=0, top_p=0.8, temperature=1.3, seed=6)]


def _tiny_model(n_vocab, seed):
    tf.keras.utils.set_random_seed(seed)
    return gpt2.GPT2LM(gpt2.GPT2Config(n_vocab=n_vocab, n_ctx=N_CTX, n_embd=16, n_head=2,
                                       n_layer=1))


def _cases(model, tok, prompts, export_dir):
    """Library samples and the requests that should give the same text.

    A stop token is one that greedy decoding of the first prompt emits
    early, so that greedy and most samples meet it."""
    # The library's eager, uncached decoding: a reference that shares no
    # traced code with the SavedModel's loop (and costs no tracing here).
    greedy = generation.generate_text(model, tok, prompts, NEW, top_k=1, stop_tokens=(),
                                      batch_size=len(prompts), use_cache=False)
    first = tok.encode(prompts[0])
    new = generation.generate(model, [first[-(N_CTX - NEW):]], NEW, top_k=1, use_cache=False)[0]
    stop = [t for t, i in (getattr(tok, "encoder", None) or tok.vocab).items() if i == new[3]]
    requests, expected = [], []
    for settings in SAMPLING:
        seed = settings["seed"]
        samples = generation.generate_text(
            model, tok, prompts, NEW, batch_size=len(prompts), stop_tokens=stop,
            use_cache=False, **settings)
        requests.append({"model": export_dir, "prompts": [p or "" for p in prompts],
                         "max_new_tokens": NEW,
                         **{**settings, "seed": generation.sample_seed(seed, 0, 0)}})
        expected.append(samples)
    return greedy, stop, requests, expected


@pytest.fixture(scope="module")
def served(tokenizer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("generation_serving")
    long_text = " ".join(corpus_lines("en/kjv.txt", 40)[20:40])
    english = dict(tok=tokenizer, model=_tiny_model(tokenizer.vocab_size, 1),
                   prompts=["In the beginning", "And God said, Let there be light:  and",
                            None, long_text, "naïve  🙂\n"])
    chinese_tok = lm_tokenization.ChineseWordPiece(str(CHINESE_VOCAB))
    chinese = dict(tok=chinese_tok, model=_tiny_model(chinese_tok.vocab_size, 2),
                   prompts=[corpus_lines("zh/peoples_daily_1998.txt", 3)[1][:12], "中文\nGPT",
                            None, "".join(corpus_lines("zh/peoples_daily_1998.txt", 8))])
    cases, requests = {}, []
    for name, case in (("en", english), ("zh", chinese)):
        export_dir = str(folder / name)
        greedy, stop, reqs, expected = _cases(case["model"], case["tok"], case["prompts"],
                                              export_dir)
        generation_serving.export_generator(case["model"], case["tok"], export_dir,
                                            stop_tokens=stop)
        cases[name] = dict(case, greedy=greedy, stop=stop, expected=expected,
                           first=len(requests), count=len(reqs))
        requests += reqs
    bad = [dict(temperature=0.0), dict(top_p=0.0), dict(top_p=1.5), dict(top_k=-1),
           dict(max_new_tokens=0), dict(max_new_tokens=N_CTX), dict(prompts=[])]
    base = {"model": str(folder / "en"), "prompts": ["a"], "max_new_tokens": 3,
            "temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 1}
    requests += [{**base, **b} for b in bad]
    (folder / "requests.json").write_text(json.dumps(requests), encoding="utf-8")
    client = folder / "client.py"
    client.write_text(CLIENT, encoding="utf-8")
    subprocess.run([sys.executable, str(client), str(folder / "requests.json"),
                    str(folder / "results.json")], check=True, timeout=300, cwd=str(folder))
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    return cases, results, len(requests) - len(bad)


def test_client_process_imports_tensorflow_only(served):
    _, results, _ = served
    assert results["loaded"] == []


@pytest.mark.parametrize("name", ["en", "zh"])
def test_served_text_equals_generate_text(served, name):
    cases, results, _ = served
    case = cases[name]
    got = results["results"][case["first"]:case["first"] + case["count"]]
    for settings, samples, out in zip(SAMPLING, case["expected"], got):
        assert out["text"] == [s.text for s in samples], settings
        assert out["lengths"] == [s.new_tokens for s in samples]
        assert out["prompt_tokens"] == [s.prompt_tokens for s in samples]
        assert out["stopped"] == [s.stopped for s in samples]
    # The cases are what they claim: a stop token met, the long prompt cut,
    # prompts of different lengths, samples that differ from greedy ones.
    greedy, sampled = case["expected"][0], case["expected"][1]
    assert greedy[0].stopped and greedy[0].new_tokens <= 3
    assert max(s.prompt_tokens for s in greedy) == N_CTX - NEW
    assert len({s.prompt_tokens for s in greedy}) >= 3
    assert [s.text for s in sampled] != [s.text for s in greedy]
    assert [s.text for s in case["greedy"]] != [s.text for s in greedy]  # the stop token cut


def test_bad_settings_fail_in_the_graph(served):
    _, results, first_bad = served
    errors = [r.get("error", "") for r in results["results"][first_bad:]]
    for error, message in zip(errors, [
            "temperature must be > 0", r"top_p must be in (0, 1]", r"top_p must be in (0, 1]",
            "top_k must be >= 0", f"max_new_tokens must be in [1, n_ctx - 1] = [1, {N_CTX - 1}]",
            f"max_new_tokens must be in [1, n_ctx - 1] = [1, {N_CTX - 1}]",
            "no prompts given"]):
        assert message in error
