"""Every example script and notebook runs top to bottom (with small parameters)."""

import glob
import json
import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")
NOTEBOOKS = sorted(glob.glob(os.path.join(EXAMPLES, "*.ipynb")))
# multi_worker.py needs a cluster: tests/test_multi_worker.py runs it with two workers.
SCRIPTS = {
    "quickstart.py": ["--epochs", "1"],
    # The real ImageNet weights where ../shared has them (see conftest), random ones elsewhere.
    "transfer_then_distill.py": [
        "--weights", "imagenet" if os.environ.get("KERASDISTILL_WEIGHTS_DIR") else "none",
        "--epochs", "1", "--labels", "200", "--unlabeled", "1000",
    ],
    "export_int8.py": ["--epochs", "1", "--qat-epochs", "1"],
}


def test_every_example_script_is_run_by_a_test():
    scripts = {os.path.basename(p) for p in glob.glob(os.path.join(EXAMPLES, "*.py"))}
    assert scripts == set(SCRIPTS) | {"multi_worker.py"}


# The two longest (about a minute each on 2 cores) run with `-m slow`, which .ci/run runs too.
SLOW = {"transfer_then_distill.py", "methods_and_tuning.ipynb"}


def marked(names):
    return [pytest.param(n, marks=pytest.mark.slow, id=os.path.basename(n)) if os.path.basename(n) in SLOW else pytest.param(n, id=os.path.basename(n)) for n in names]


@pytest.mark.parametrize("script", marked(sorted(SCRIPTS)))
def test_example_script_runs(script, tmp_path):
    arguments = SCRIPTS[script] + (["--output", str(tmp_path / "out")] if script == "export_int8.py" else [])
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, script), *arguments],
        cwd=tmp_path,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("path", marked(NOTEBOOKS))
def test_notebook_is_stored_with_its_results_and_runs(path, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    with open(path, encoding="utf-8") as handle:
        raw = json.load(handle)
    code = [cell for cell in raw["cells"] if cell["cell_type"] == "code"]
    # Stored executed, top to bottom, so a reader on GitHub sees the results; small enough to review.
    assert code and [cell["execution_count"] for cell in code] == list(range(1, len(code) + 1)), "store an executed run"
    stored = [output for cell in code for output in cell["outputs"]]
    assert stored and not [output for output in stored if output["output_type"] == "error"]
    assert os.path.getsize(path) < 400_000
    assert "google.colab" in "".join(code[0]["source"]), "the first cell installs the package in Colab"
    assert "colab-badge.svg" in "".join(raw["cells"][0]["source"]), "an Open in Colab badge"
    monkeypatch.setenv("KERASDISTILL_EPOCHS", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
