"""The files in tests/data are the ones its README describes.

The README is the record of where each file came from and how it was cut; a
file edited by accident (or a new file with no provenance) would silently
change what every other test checks, so the sizes and sha256 sums listed there
are checked here, and the corpus slices against the format of their sources.
"""

import hashlib
import re

import pytest

from conftest import TEST_DATA

# A table row: | `path` | ... | size | `sha256` |
ROW = re.compile(r"^\| `(?P<path>[^`]+)` \|.*\| (?P<size>[\d,]+) \| `(?P<sha>[0-9a-f]{64})` \|$")


def listed_files():
    rows = [ROW.match(line) for line in
            (TEST_DATA / "README.md").read_text(encoding="utf-8").splitlines()]
    return {m["path"]: (int(m["size"].replace(",", "")), m["sha"]) for m in rows if m}


def test_every_file_is_listed_once_and_nothing_listed_is_missing():
    shipped = sorted(str(p.relative_to(TEST_DATA)) for p in TEST_DATA.rglob("*")
                     if p.is_file() and p.name != "README.md")
    assert sorted(listed_files()) == shipped


@pytest.mark.parametrize("path", sorted(listed_files()))
def test_size_and_sha256_match_the_readme(path):
    size, sha = listed_files()[path]
    data = (TEST_DATA / path).read_bytes()
    assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha)


@pytest.mark.parametrize("path", sorted(p for p in listed_files() if p.startswith("corpora/")))
def test_corpus_slices_keep_the_pretraining_input_format(path):
    text = (TEST_DATA / path).read_text(encoding="utf-8")
    # One sentence per line, exactly one empty line between documents.
    assert text.endswith("\n") and not text.endswith("\n\n") and not text.startswith("\n")
    assert "\n\n\n" not in text and "\r" not in text
    assert all(line == line.strip() for line in text.splitlines())


def test_chinese_slices_are_the_same_documents_segmented_and_not():
    plain = (TEST_DATA / "corpora/zh/peoples_daily_1998.txt").read_text(encoding="utf-8")
    segmented = (TEST_DATA / "corpora/zh/peoples_daily_1998.seg.txt").read_text(encoding="utf-8")
    assert segmented.replace(" ", "") == plain
    assert segmented.count(" ") > 100_000
