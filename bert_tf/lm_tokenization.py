"""The tokenizers a language model is trained and sampled with, behind one interface.

A causal LM needs four things from its tokenizer: `encode` text to ids,
`decode` ids to text, `document_ids` (one document's ids with the markers
that separate documents in the training stream) and `vocab_size`. Two
implementations:

  * `bpe.ByteLevelBPE`, GPT-2's English tokenizer: documents end with
    `<|endoftext|>`.
  * `ChineseWordPiece`, the way GPT2-Chinese tokenizes: Hugging Face's
    BertTokenizer over a BERT vocabulary (one token per Chinese character).
    A newline inside a document becomes `[SEP]`, a document starts with
    `[MASK]` and ends with `[CLS]`, and decoding undoes that.

    >>> import os, tempfile
    >>> vocab_file = os.path.join(tempfile.mkdtemp(), "vocab.txt")
    >>> with open(vocab_file, "w", encoding="utf-8") as f:
    ...     _ = f.write("\\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    ...                            "中", "文", "gp", "##t", "，"]) + "\\n")
    >>> tokenizer = ChineseWordPiece(vocab_file)
    >>> tokenizer.tokenize("中文，GPT\\n中")
    ['中', '文', '，', 'gp', '##t', '[SEP]', '中']
    >>> tokenizer.decode(tokenizer.document_ids("中文\\n文"))
    '中文\\n文'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

from bert_tf import tokenization


class LMTokenizer(Protocol):
    vocab_size: int

    def encode(self, text: str) -> list[int]:
        ...

    def decode(self, ids: Iterable[int]) -> str:
        ...

    def document_ids(self, text: str) -> list[int]:
        ...


class ChineseWordPiece:
    """GPT2-Chinese's tokenization: BERT WordPiece with its document markers.

    GPT2-Chinese uses a copy of Hugging Face's BertTokenizer (transformers
    2.1), which differs from Google's FullTokenizer in three ways kept here:
    the special tokens written in the text (`[SEP]` ...) stay whole, every
    C* character is deleted (the older control-character rule), and a word
    longer than 100 characters (not 200) is `[UNK]`.
    """

    SPECIAL_TOKENS = ("[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]")
    MAX_CHARS_PER_WORD = 100

    def __init__(self, vocab_file: str, do_lower_case: bool = True):
        self.full_tokenizer = tokenization.FullTokenizer(
            vocab_file, do_lower_case=do_lower_case, control_chars="huggingface")
        self.full_tokenizer.wordpiece_tokenizer = tokenization.WordpieceTokenizer(
            self.full_tokenizer.vocab, max_input_chars_per_word=self.MAX_CHARS_PER_WORD)
        self.vocab = self.full_tokenizer.vocab
        missing = [t for t in self.SPECIAL_TOKENS if t not in self.vocab]
        if missing:
            raise ValueError(f"{vocab_file}: lacks {', '.join(missing)}, which GPT2-Chinese's "
                             "document markers need")
        self._special = re.compile("(" + "|".join(map(re.escape, self.SPECIAL_TOKENS)) + ")")
        self.vocab_size = max(self.vocab.values()) + 1
        self.sep_id, self.cls_id, self.mask_id = (
            self.vocab[t] for t in ("[SEP]", "[CLS]", "[MASK]"))

    def tokenize(self, text: str) -> list[str]:
        """Tokens of `text`; a newline is `[SEP]`, as GPT2-Chinese writes it."""
        tokens = []
        for piece in self._special.split(text.replace("\n", " [SEP] ")):
            if piece in self.SPECIAL_TOKENS:
                tokens.append(piece)
            elif piece.strip():
                tokens.extend(self.full_tokenizer.tokenize(piece))
        return tokens

    def encode(self, text: str) -> list[int]:
        return self.full_tokenizer.convert_tokens_to_ids(self.tokenize(text))

    def document_ids(self, text: str) -> list[int]:
        """`[MASK]`, the document's ids, `[CLS]`: GPT2-Chinese's training stream."""
        return [self.mask_id] + self.encode(text) + [self.cls_id]

    def decode(self, ids: Iterable[int]) -> str:
        """Text as GPT2-Chinese's generate.py prints it: tokens joined, a space
        between two Latin words, `[MASK]` dropped, `[CLS]` a blank line,
        `[SEP]` a newline, `##` removed, outer whitespace stripped."""
        tokens = self.full_tokenizer.convert_ids_to_tokens(int(i) for i in ids)
        is_word = [bool(re.fullmatch("[a-z]+", t)) for t in tokens]
        text = []
        for i, token in enumerate(tokens):
            if token == "[MASK]":
                token = ""
            elif token == "[CLS]":
                token = "\n\n"
            elif token == "[SEP]":
                token = "\n"
            elif is_word[i] and i + 1 < len(tokens) and is_word[i + 1]:
                token += " "
            text.append(token)
        return "".join(text).replace("##", "").strip()

