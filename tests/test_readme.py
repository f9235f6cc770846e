"""Every Python block of README.md runs as written: the narrative ones top to bottom in one session, a block
that picks another Keras backend in a process of its own."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
# A block that sets KERAS_BACKEND must run before Keras is imported: a session of its own.
ALONE = [block for block in BLOCKS if "KERAS_BACKEND" in block]
SESSION = [block for block in BLOCKS if block not in ALONE]


def run(code, cwd):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("KERAS_BACKEND", None)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_the_readme_has_its_blocks():
    assert len(SESSION) >= 6 and len(ALONE) == 1
    # Names a block uses come from the README itself, never from the reader's own session.
    assert SESSION[0].lstrip().startswith("import keras")


@pytest.mark.slow
def test_the_readme_session_runs_as_written(tmp_path):
    result = run("\n".join(SESSION), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for made in ("student.keras", "tuned_student.keras", "export/student_int8.tflite",
                 "export/student_int8_classifier.tflite", "export/student_qat_int8.tflite", "teacher-cache",
                 "teacher-shards/manifest.json"):
        assert (tmp_path / made).exists(), made
    assert "student_int8.tflite" in result.stdout  # the comparison table was printed


@pytest.mark.slow
def test_the_readme_backend_block_runs_on_jax(tmp_path):
    pytest.importorskip("jax")
    result = run(ALONE[0], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "'accuracy'" in result.stdout
