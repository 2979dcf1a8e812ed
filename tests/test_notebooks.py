"""The notebooks in notebooks/ open in Colab and run top to bottom, as a user runs them.

Colab opens a notebook alone, from GitHub: so each one installs the project in
its first cell and reads only files of the repository (which it clones there).
The static checks below hold the notebooks to that; the run executes each one
with nbclient, from its own folder, as Jupyter does, while an audit hook in the
kernel records every file it opens beside the repository rather than in it.
"""

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NAMES = ["chinese_gpt2.ipynb", "finetune_with_tfhub_encoder.ipynb", "node2vec_cora.ipynb",
         "pretraining_quickstart.ipynb", "squad_question_answering.ipynb"]
REPO_URL = "https://github.com/bert-tf/bert_tf"

# A notebook whose defaults are a real-size run takes its settings from one
# cell tagged "parameters" (papermill's convention); the run here places this
# cell after it, so that the whole notebook runs in well under a minute.
CI_PARAMETERS = {
    "chinese_gpt2.ipynb": """\
MAX_DOCUMENTS, HELD_OUT_DOCUMENTS = 24, 2
N_CTX, N_LAYER, N_EMBD, N_HEAD = 32, 2, 32, 2
TRAIN_BATCH_SIZE, EVAL_BATCH_SIZE = 8, 64
NUM_TRAIN_STEPS, NUM_WARMUP_STEPS, LEARNING_RATE = 20, 2, 2e-3
LOG_STEPS, SAVE_CHECKPOINTS_STEPS = 10, 10
SAMPLE_LENGTH = 8""",
}


def read(name):
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_every_notebook_is_checked():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs(name):
    for cell in code_cells(read(name)):
        assert not cell.outputs and cell.execution_count is None, \
            f"{name} cell {cell.id} is committed with outputs; clear them"


@pytest.mark.parametrize("name", NAMES)
def test_colab_metadata(name):
    metadata = read(name).metadata
    assert metadata.colab.provenance == []
    assert metadata.colab.name == name
    assert metadata.kernelspec.name == "python3"
    assert metadata.kernelspec.language == "python"


@pytest.mark.parametrize("name", NAMES)
def test_first_code_cell_installs_the_project(name):
    notebook = read(name)
    first = code_cells(notebook)[0].source
    # One place for the URL, overridable, in the first cell.
    assert f'REPO_URL = os.environ.get("BERT_TF_REPO_URL", "{REPO_URL}")' in first
    assert sum(cell.source.count("github.com/bert-tf/bert_tf") for cell in notebook.cells) == 1
    assert '"google.colab" in sys.modules' in first
    assert re.search(r'"git", "clone".*REPO_URL', first)
    assert re.search(r'"-m", "pip", "install".*str\(REPO\)', first)
    assert '"setup.py"' in first and "os.chdir(REPO)" in first
    for cell in code_cells(notebook)[1:]:
        assert "pip install" not in cell.source and "REPO_URL" not in cell.source


# Climbing out of the repository, reaching a sibling of it, editing the import
# path, or any absolute path but Colab's /content folder.
FORBIDDEN = {
    "sys.path": re.compile(r"sys\.path"),
    "a '..' path": re.compile(r"(^|[\s\"'/=({])\.\.([/\\\"'\s)]|$)", re.M),
    "shared/": re.compile(r"shared/"),
    "an absolute path": re.compile(r"[\"'=\s]/(?!content/)[A-Za-z_]"),
}


@pytest.mark.parametrize("name", NAMES)
def test_no_cell_edits_sys_path_or_leaves_the_repository(name):
    for cell in code_cells(read(name)):
        for what, pattern in FORBIDDEN.items():
            assert not pattern.search(cell.source), f"{name} cell {cell.id} uses {what}"


def test_forbidden_patterns_catch_the_old_ways():
    old = ['sys.path.insert(0, os.path.abspath(".."))',
           'WIKI = os.path.join("..", "..", "shared", "data", "corpora", "en", "wiki.txt")',
           'read_sst2("../data/sst2/train.tsv")',
           '!{PYTHON} ../run_pretraining.py --input_file={records}',
           'open("/work/shared/data/corpora/en/wiki.txt")']
    for source in old:
        assert any(p.search(source) for p in FORBIDDEN.values()), source
    assert not any(p.search('REPO = Path("/content/bert_tf")') for p in FORBIDDEN.values())


@pytest.mark.parametrize("name", NAMES)
def test_tensorboard_inline_where_training_happens(name):
    sources = [cell.source for cell in code_cells(read(name))]
    load = next(i for i, s in enumerate(sources) if "%load_ext tensorboard" in s)
    show = next(i for i, s in enumerate(sources) if "%tensorboard --logdir" in s)
    train = next(i for i, s in enumerate(sources)
                 if ".fit(" in s or "run_pretraining.py" in s or "run_squad(" in s
                 or "run_lm(" in s or "train_skipgram(" in s)
    assert load < show < train  # the panel is up before training starts


def parameters_cell_index(notebook):
    tagged = [i for i, cell in enumerate(notebook.cells)
              if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{len(tagged)} cells tagged 'parameters'"
    return tagged[0]


def assigned_names(source):
    import ast

    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


@pytest.mark.parametrize("name", sorted(CI_PARAMETERS))
def test_ci_parameters_override_only_what_the_parameters_cell_sets(name):
    notebook = read(name)
    parameters = notebook.cells[parameters_cell_index(notebook)]
    assert parameters.cell_type == "code"
    overridden = assigned_names(CI_PARAMETERS[name])
    assert overridden and overridden <= assigned_names(parameters.source)


def test_shipped_corpus_is_the_one_data_readme_describes():
    corpus = REPO / "data" / "corpora" / "wiki_sample.txt"
    row = next(line for line in (REPO / "data" / "README.md").read_text(encoding="utf-8").splitlines()
               if line.startswith("| `corpora/wiki_sample.txt`"))
    cells = [c.strip().strip("`").replace(",", "") for c in row.strip("|").split("|")]
    data = corpus.read_bytes()
    assert cells[-1] == hashlib.sha256(data).hexdigest()
    assert int(cells[-2]) == len(data) < 500_000
    assert int(cells[1]) == data.decode("utf-8").count("\n\n") + 1  # documents


AUDIT_CELL = """\
import os as _os, sys as _sys, tempfile as _tempfile
from tensorboard import manager as _tensorboard_manager
_servers_before = {{info.pid for info in _tensorboard_manager.get_all()}}
_repo = {repo!r}
_beside = _os.path.dirname(_repo) + _os.sep
# Python's own files, temporary folders, and caches in hidden folders of the home folder.
_allowed = tuple({{_os.path.join(p, "") for p in (_sys.prefix, _sys.base_prefix, _tempfile.gettempdir())}})
_allowed += (_os.path.join(_os.path.expanduser("~"), "."),)
_outside_reads = []
def _audit(event, args):
    if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes)):
        path = _os.path.abspath(_os.fsdecode(args[0]))
        inside = path == _repo or path.startswith(_repo + _os.sep)
        if ((path + _os.sep).startswith(_beside) and not inside
                and not path.startswith(_allowed)):
            _outside_reads.append(path)
_sys.addaudithook(_audit)"""

# A TensorBoard server started by the notebook outlives the kernel for a while;
# the check stops it, then fails.
CHECK_CELL = """\
_servers = [info.pid for info in _tensorboard_manager.get_all() if info.pid not in _servers_before]
for _pid in _servers:
    _os.kill(_pid, 15)
assert not _servers, "the notebook started a TensorBoard server in a headless run"
assert not _outside_reads, sorted(set(_outside_reads))"""


def test_audit_cell_records_reads_beside_the_repository(tmp_path):
    repo, tmp = tmp_path / "repo", tmp_path / "tmp"
    for folder in (repo / "data", tmp):
        folder.mkdir(parents=True)
    (repo / "data" / "inside.txt").write_text("in")
    (tmp_path / "sibling.txt").write_text("out")

    def run(reads):
        script = "\n".join([AUDIT_CELL.format(repo=str(repo)), reads, CHECK_CELL])
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env={**os.environ, "TMPDIR": str(tmp)}, cwd=repo)

    assert run("open('data/inside.txt').read(); open('../repo/data/inside.txt').read()"
               ).returncode == 0
    beside = run("open('../sibling.txt').read()")
    assert beside.returncode != 0 and str(tmp_path / "sibling.txt") in beside.stderr
    assert run(f"import os; os.listdir({str(tmp_path)!r})").returncode != 0


def test_check_cell_stops_and_reports_a_tensorboard_server(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(AUDIT_CELL.format(repo=str(tmp_path / "repo"))),
                      nbformat.v4.new_code_cell(f"%load_ext tensorboard\n"
                                                f"%tensorboard --logdir {tmp_path / 'logs'}"),
                      nbformat.v4.new_code_cell(CHECK_CELL)]
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="TensorBoard server"):
        client.execute()


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, monkeypatch):
    # No TensorBoard server in a run nobody watches; the notebooks honour this
    # and the last cell checks it.
    monkeypatch.setenv("BERT_TF_HEADLESS", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    # Where the kernel will find bert_tf: from this checkout, the first cell
    # skips the install; from anywhere else it would pip-install the checkout
    # into this environment, which a test run must not do.
    found = subprocess.run([sys.executable, "-c", "import importlib.util as u; "
                            "print(u.find_spec('bert_tf').origin)"], cwd=NOTEBOOKS,
                           capture_output=True, text=True).stdout.strip()
    if not found or not Path(found).resolve().is_relative_to(REPO):
        pytest.fail(f"bert_tf imports from {found or 'nowhere'}, not from {REPO}: install this "
                    "checkout first (pip install -e .) or set PYTHONPATH to it")
    notebook = read(name)
    if name in CI_PARAMETERS:
        override = nbformat.v4.new_code_cell(CI_PARAMETERS[name])
        notebook.cells.insert(parameters_cell_index(notebook) + 1, override)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(AUDIT_CELL.format(repo=str(REPO))))
    notebook.cells.append(nbformat.v4.new_code_cell(CHECK_CELL))
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on failure
    install_output = "".join(out.get("text", "") for out in code_cells(notebook)[1].outputs)
    assert install_output.rstrip().endswith(f"| working folder {REPO}")
