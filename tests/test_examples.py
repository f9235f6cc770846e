"""Every example script and notebook runs top to bottom (with small parameters)."""

import glob
import json
import os
import re
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")
NOTEBOOKS = sorted(glob.glob(os.path.join(EXAMPLES, "*.ipynb")))
# multi_worker.py needs a cluster: tests/test_multi_worker.py runs it with two workers.
SCRIPTS = {
    "quickstart.py": ["--epochs", "2"],
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


# Every script and notebook is a fresh Python and TensorFlow process (a kernel for a notebook): they run with
# `-m slow`, which .ci/run runs too; the default layer tests the same code in-process.
SLOW = {"quickstart.py", "export_int8.py", "transfer_then_distill.py", "methods_and_tuning.ipynb", "few_labels.ipynb", "quickstart.ipynb"}


def marked(names):
    return [pytest.param(n, marks=pytest.mark.slow, id=os.path.basename(n)) if os.path.basename(n) in SLOW else pytest.param(n, id=os.path.basename(n)) for n in names]


NUMBER = r"([0-9][0-9,]*\.?[0-9]*)"


def printed(pattern, text):
    """The numbers `pattern` (with NUMBER groups) captures in `text`, as floats; fails naming what is missing."""
    found = re.search(pattern, text)
    assert found, f"the example no longer prints {pattern!r}; its output ends:\n{text[-2000:]}"
    return [float(group.replace(",", "")) for group in found.groups()]


def compare_rows(text):
    """`{model: (size KiB, accuracy, agreement)}` from the tables `export.compare` printed."""
    rows = {}
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 7 and re.fullmatch(r"[0-9.]+", cells[1]) and re.fullmatch(r"[0-9.]+", cells[-1]):
            rows[cells[0]] = (float(cells[1]), float(cells[2]), float(cells[-1]))
    assert rows, f"no export.compare table in the output:\n{text[-2000:]}"
    return rows


def check_files_against_keras(text, smaller=3.0):
    """The .tflite files of the printed tables: converted ones agree with their Keras model, int8 ones are
    `smaller` times smaller; a QAT file was trained further, so it must only score no worse."""
    rows = compare_rows(text)
    keras_size, keras_accuracy, _ = next(row for name, row in rows.items() if name.startswith("keras"))
    files = {name: row for name, row in rows.items() if name.endswith(".tflite")}
    assert files, rows
    for name, (size, accuracy, agreement) in files.items():
        if "qat" in name:
            assert accuracy > keras_accuracy - 0.03, (name, rows)
        else:
            assert agreement >= 0.95 and abs(accuracy - keras_accuracy) < 0.03, (name, rows)
        if "int8" in name:
            assert size < keras_size / smaller, (name, rows)


def check_quickstart_py(out):
    teacher_params, teacher_accuracy = printed(f"teacher: {NUMBER} parameters, test accuracy {NUMBER}", out)
    student_params, scratch_accuracy = printed(f"student alone: {NUMBER} parameters, test accuracy {NUMBER}", out)
    distilled_params, distilled_accuracy = printed(f"student distilled: {NUMBER} parameters, test accuracy {NUMBER}", out)
    # A 16x smaller student, two epochs on 500 labels (+ 3,000 unlabeled for the distilled one); chance is 0.10.
    assert teacher_params >= 10 * student_params and student_params == distilled_params
    assert teacher_accuracy > 0.85 and scratch_accuracy > 0.6, (teacher_accuracy, scratch_accuracy)
    # Measured +0.7 points after 2 epochs, +2.7 after 10: never below its twin by more than a tenth of the noise.
    assert distilled_accuracy >= scratch_accuracy - 0.01, (distilled_accuracy, scratch_accuracy)


def check_export_int8_py(out):
    check_files_against_keras(out)
    assert {"student_float32.tflite", "student_int8.tflite", "student_qat_int8.tflite"} <= set(compare_rows(out))
    value = f"(?:np.float64\\()?{NUMBER}"
    accuracy, agreement = printed(f"'accuracy': {value}.*'agreement': {value}", out)
    assert accuracy > 0.8 and agreement >= 0.95, (accuracy, agreement)


def check_transfer_then_distill_py(out):
    distilled = printed(f"student distilled +: {NUMBER}", out)[0]
    int8 = printed(f"student distilled, int8 .tflite .*: {NUMBER}", out)[0]
    assert 0.1 < distilled <= 1.0 and abs(int8 - distilled) < 0.03, (distilled, int8)


def check_quickstart_ipynb(out):
    check_files_against_keras(out)


def check_few_labels_ipynb(out):
    teacher, labels_only, distilled = printed(
        f"teacher +{NUMBER}\\s+student, labels only +{NUMBER}\\s+student, distilled +{NUMBER}", out
    )
    consistent = printed(f"student, distilled on 2 consistent views: {NUMBER}", out)[0]
    # One epoch each on 500 labels (measured 0.91, 0.87, 0.86, 0.79; chance is 0.10).
    students = {"labels only": labels_only, "distilled": distilled, "consistent views": consistent}
    assert teacher > 0.8 and min(students.values()) > 0.65, (teacher, students)
    check_files_against_keras(out)


def check_methods_and_tuning_ipynb(out):
    methods = re.findall(f"(soft targets|soft targets \\+ hint|attention|DKD): validation accuracy {NUMBER}", out)
    assert len(methods) == 4 and all(float(value) > 0.5 for _, value in methods), methods
    best, scratch = printed(f"Tuning \\(validation split\\): .*?{NUMBER} vs {NUMBER}", out)
    assert min(best, scratch) > 0.5, (best, scratch)


CHECKS = {
    "quickstart.py": check_quickstart_py,
    "export_int8.py": check_export_int8_py,
    "transfer_then_distill.py": check_transfer_then_distill_py,
    "quickstart.ipynb": check_quickstart_ipynb,
    "few_labels.ipynb": check_few_labels_ipynb,
    "methods_and_tuning.ipynb": check_methods_and_tuning_ipynb,
}


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
    CHECKS[script](result.stdout)


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
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    CHECKS[os.path.basename(path)]("".join(o.get("text", "") for o in outputs if o.output_type == "stream"))
