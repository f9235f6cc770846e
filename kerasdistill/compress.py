"""`compress`: the smallest student that keeps the accuracy, searched against a budget.

From a trained teacher and the data, every candidate student
(`candidates.py`: built-in CNNs, MobileNetV2 widths, slimmed copies of the
teacher) is measured where it costs nothing first — its int8 file's size
and latency need no training, so candidates that cannot meet a size or
latency budget are dropped untrained — then distilled from one shared pass
of teacher outputs, with successive halving on validation: after each rung
of epochs, the candidates on the best Pareto fronts (accuracy against size)
go on, the others stop. The survivors are exported (int8 and float16) and
measured on the file through LiteRT: accuracy, size, latency. The smallest
file that meets the budget is chosen; when none does, the closest, said so.

Everything is recorded in the output folder as it happens (`state.json`,
each candidate's weights after each rung), so a killed search started again
with the same arguments loses at most the candidate in training.
"""

import dataclasses
import hashlib
import json
import math
import numbers
import os
import time

import numpy as np

from kerasdistill import candidates as candidates_lib
from kerasdistill import data as data_lib
from kerasdistill.backend import keras
from kerasdistill.defaults import ALPHA, LEARNING_RATE, QUANTIZATIONS, TEMPERATURE
from kerasdistill.defaults import COMPRESS_RUNGS as RUNGS
from kerasdistill.cache import cache_teacher_outputs, teacher_fingerprint, teachers_and_kinds
from kerasdistill.distiller import Distiller
from kerasdistill.export.interpreter import TFLiteModel
from kerasdistill.export.tflite import import_quantizer, to_tflite
from kerasdistill.files import atomic_path, write_json
from kerasdistill.metrics import accuracy, class_indices
from kerasdistill.shards import score_to_shards, sharded_transfer_set
from kerasdistill.streams import is_stream

STATE = "state.json"
# The sub-folder where a compressed file of unlabeled images is decompressed to be streamed.
UNPACKED = "unpacked"
# Latency estimated before training drops a candidate only above this many times the budget.
LATENCY_MARGIN = 1.5
REPORT = "report.json"
PARETO = "pareto.png"


@dataclasses.dataclass(frozen=True)
class Budget:
    """What the chosen file must meet: any of an accuracy drop, a file size and a latency.

    Args:
        max_drop: most points of validation accuracy below the teacher's.
        max_size_kib: largest file, KiB.
        max_latency_ms: slowest median latency per image (batch of one,
            LiteRT, the search's threads), ms.

    Example:

    ```python
    Budget(max_drop=1.0)                     # within 1 point of the teacher
    Budget(max_size_kib=100, max_drop=2.0)   # both
    ```
    """

    max_drop: float = None
    max_size_kib: float = None
    max_latency_ms: float = None

    def __post_init__(self):
        values = dataclasses.asdict(self)
        if all(value is None for value in values.values()):
            raise ValueError("Give a budget: max_drop (points of accuracy), max_size_kib or max_latency_ms (any of them).")
        for name, value in values.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0 or math.isinf(value)):
                raise ValueError(f"{name} must be a finite number >= 0 (or None); got {value!r}.")

    def __str__(self):
        return _described(self)

    def misses(self, size_kib, latency_ms, drop_points=None):
        """What `size_kib`, `latency_ms` and `drop_points` (None: not known yet) miss of the budget, as words."""
        missed = []
        # What is printed is what is judged: a drop of 2.0000000000000018 points meets a budget of 2.
        size_kib, latency_ms = round(size_kib, 6), round(latency_ms, 6)
        drop_points = None if drop_points is None else round(drop_points, 6)
        if self.max_size_kib is not None and size_kib > self.max_size_kib:
            missed.append(f"{size_kib:.1f} KiB > {self.max_size_kib:.1f} KiB")
        if self.max_latency_ms is not None and latency_ms > self.max_latency_ms:
            missed.append(f"{latency_ms:.3f} ms > {self.max_latency_ms:g} ms")
        if self.max_drop is not None and drop_points is not None and drop_points > self.max_drop:
            missed.append(f"{drop_points:.2f} points below the teacher > {self.max_drop:g}")
        return missed


def compress(
    teacher,
    splits,
    output,
    budget,
    families=candidates_lib.FAMILIES,
    rungs=RUNGS,
    quantizations=("int8", "float16"),
    batch_size=64,
    labeled_share=0.25,
    alpha=ALPHA,
    temperature=TEMPERATURE,
    learning_rate=LEARNING_RATE,
    seed=0,
    threads=1,
    candidates=None,
    verbose=True,
):
    """Searches the smallest student of `families` that meets `budget`, distilled from `teacher`.

    Args:
        teacher: a trained Keras model of logits (or probabilities).
        splits: `data.Splits` (train, val, test, and the unlabeled transfer
            set: an array, a stream or None).
        output: the search's folder (created; a search killed there resumes
            when started again with the same teacher, data and settings).
        budget: a `Budget`.
        families: candidate families (`candidates.FAMILIES`).
        rungs: cumulative epochs at which candidates are compared; about
            half stop at each rung but the last.
        quantizations: files made of each finalist (`"int8"`, `"float16"`;
            `"int4"`, weight-only, with `ai-edge-quantizer` installed).
        batch_size, labeled_share, alpha, temperature, learning_rate, seed:
            distillation settings, the same for every candidate.
        threads: LiteRT threads for the latency measurements.
        candidates: names of the candidates to try (e.g.
            `["convnet-w8-d2", "slim-0.25"]`); default all of `families`.
        verbose: print the table as it fills in.

    Returns:
        The report (also `output/report.json`): the teacher, every
        candidate with its measurements and why it stopped, every file,
        the Pareto front and the chosen file.

    Example:

    ```python
    report = compress(teacher, splits, "compress-out", Budget(max_drop=1.0))
    print(report["chosen"]["file"])
    ```
    """
    settings = _check_settings(families, rungs, quantizations, batch_size, threads)
    if os.path.exists(output) and not os.path.isdir(output):
        raise NotADirectoryError(f"The output {output} is a file; give a folder for the search (new, or one it resumes).")
    if candidates is not None and (isinstance(candidates, str) or not hasattr(candidates, "__iter__")):
        raise ValueError(f"candidates must be a list of names (e.g. ['convnet-w8-d2', 'slim-0.25']); got {candidates!r}.")
    if not isinstance(budget, Budget):
        raise TypeError(f"budget must be a compress.Budget, e.g. Budget(max_drop=1.0); got {type(budget).__name__}.")
    shape, classes = tuple(splits.train.x.shape[1:]), int(splits.num_classes)
    if tuple(teacher.input_shape[1:]) != shape or int(teacher.output_shape[-1]) != classes:
        raise ValueError(
            f"The teacher takes {tuple(teacher.input_shape[1:])} and gives {teacher.output_shape[-1]} outputs, but the data has "
            f"images of {shape} and {classes} classes. Give the teacher trained on this data."
        )
    search = _Search(teacher, splits, os.fspath(output), budget, settings, verbose)
    search.open(
        dict(settings, alpha=alpha, temperature=temperature, learning_rate=learning_rate, seed=seed, labeled_share=labeled_share,
             candidates=None if candidates is None else sorted(candidates))
    )  # fmt: skip
    search.measure_teacher()
    search.estimate()
    search.distill_rungs()
    search.finals()
    return search.report()


def _check_settings(families, rungs, quantizations, batch_size, threads):
    for name, value in (("families", families), ("rungs", rungs), ("quantizations", quantizations)):
        if isinstance(value, (str, int)) or not hasattr(value, "__iter__"):
            raise ValueError(f"{name} must be a list (e.g. {list(RUNGS) if name == 'rungs' else ['int8']}); got {value!r}.")
    families = list(families)
    unknown = [name for name in families if name not in candidates_lib.FAMILIES]
    if not families or unknown:
        raise ValueError(f"families must name some of {', '.join(candidates_lib.FAMILIES)}; got {families}.")
    rungs = [int(rung) for rung in rungs]
    if not rungs or any(rung < 1 for rung in rungs) or rungs != sorted(set(rungs)):
        raise ValueError(f"rungs are increasing epoch counts >= 1, e.g. {list(RUNGS)}; got {rungs}.")
    quantizations = list(quantizations)
    if not quantizations or any(q not in QUANTIZATIONS for q in quantizations):
        raise ValueError(f"quantizations are some of {', '.join(QUANTIZATIONS)}; got {quantizations}.")
    if "int4" in quantizations:
        import_quantizer()
    for name, value in (("batch_size", batch_size), ("threads", threads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1; got {value!r}.")
    return {"families": families, "rungs": rungs, "quantizations": quantizations, "batch_size": batch_size, "threads": threads}


def unpack_folder(output):
    """Where a search in `output` decompresses a compressed file of unlabeled images to stream it: `output/unpacked`
    when `output` is new, empty or holds a search; None when it holds other files (the search refuses it, and
    nothing is written there)."""
    if os.path.exists(output) and not os.path.isdir(output):
        return None
    entries = set(os.listdir(output)) if os.path.isdir(output) else set()
    return os.path.join(output, UNPACKED) if STATE in entries or not entries - {UNPACKED} else None


class _Search:
    """The search's steps over one state file; each step skips what the state says is done."""

    def __init__(self, teacher, splits, output, budget, settings, verbose):
        self.teacher, self.splits, self.output, self.budget, self.verbose = teacher, splits, output, budget, verbose
        self.settings = settings
        self.shape, self.classes = tuple(splits.train.x.shape[1:]), int(splits.num_classes)
        self.state, self.cached = None, None
        self.candidates = {}

    def say(self, text):
        if self.verbose:
            print(text, flush=True)

    def save(self):
        write_json(os.path.join(self.output, STATE), self.state)

    def open(self, settings):
        """Starts the state, or resumes it when the folder holds a search of the same teacher, data and settings."""
        self.settings = settings
        notes = self._find_candidates()
        key = {
            "teacher": teacher_fingerprint(*teachers_and_kinds(self.teacher, "auto")),
            "data": _splits_digest(self.splits),
            "budget": dataclasses.asdict(self.budget),
            "settings": settings,
        }
        path = os.path.join(self.output, STATE)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                state = json.load(handle)
            changed = sorted(name for name in key if state.get("key", {}).get(name) != key[name])
            if changed:
                raise ValueError(
                    f"{self.output} holds another search (its {', '.join(changed)} differ): its files are kept. Give "
                    "another output folder, or the same arguments to resume it."
                )
            self.state = state
            self.say(f"Resuming the search in {self.output}.")
            return
        if os.path.isdir(self.output) and set(os.listdir(self.output)) - {UNPACKED}:
            raise FileExistsError(f"{self.output} already holds files but no search ({STATE}); give a new or empty output folder.")
        os.makedirs(os.path.join(self.output, "candidates"), exist_ok=True)
        self.state = {"key": key, "teacher": None, "candidates": {}, "halved": 0, "notes": notes}
        self.save()

    def _find_candidates(self):
        """The candidates of the settings' families (only those named, when names are given); returns the notes on
        families that gave none."""
        notes = []
        for family in self.settings["families"]:
            found, said = candidates_lib.family(family, self.teacher, self.shape, self.classes)
            self.candidates.update({candidate.name: candidate for candidate in found})
            notes += said
        wanted = self.settings["candidates"]
        if wanted is not None:
            unknown = sorted(set(wanted) - set(self.candidates))
            if unknown:
                raise ValueError(
                    f"Unknown candidate(s) {', '.join(unknown)} in families {', '.join(self.settings['families'])}; known: "
                    f"{', '.join(self.candidates)}."
                )
            self.candidates = {name: self.candidates[name] for name in wanted}
        if not self.candidates:
            raise ValueError(f"The families {', '.join(self.settings['families'])} give no candidate for this teacher: {'; '.join(notes)}.")
        return notes

    def measure_file(self, model, name, quantization, scored=True):
        """The model as a `.tflite` file in the output folder: size, latency, and (`scored`) validation and test
        accuracy."""
        path = os.path.join(self.output, f"{name}_{quantization}.tflite")
        to_tflite(model, path, quantization, representative_data=self.splits.train.x[:200], calibration_steps=200)
        runtime = TFLiteModel(path, num_threads=self.settings["threads"])
        scores = {part: accuracy_of(runtime, getattr(self.splits, part)) if scored else None for part in ("val", "test")}
        return {
            "file": os.path.basename(path),
            "quantization": quantization,
            "size_kib": os.path.getsize(path) / 1024,
            "latency_ms": runtime.latency_ms(self.splits.test.x[:1]),
            "val_accuracy": scores["val"],
            "test_accuracy": scores["test"],
        }

    def measure_teacher(self):
        if self.state["teacher"] is None:
            record = {
                "params": int(self.teacher.count_params()),
                "val_accuracy": accuracy(self.teacher, *self.splits.val),
                "test_accuracy": accuracy(self.teacher, *self.splits.test),
                "int8": self.measure_file(self.teacher, "teacher", "int8"),
            }
            self.state["teacher"] = record
            self.save()
        record = self.state["teacher"]
        self.say(
            f"Teacher: {record['params']:,} parameters, validation {record['val_accuracy']:.4f}, test {record['test_accuracy']:.4f}; "
            f"its int8 file {record['int8']['size_kib']:.1f} KiB, {record['int8']['latency_ms']:.3f} ms/image."
        )
        for note in self.state["notes"]:
            self.say(f"  {note}")

    def estimate(self):
        """Size and latency of every candidate's int8 file before training; drops those that cannot meet the budget."""
        teacher_kib = self.state["teacher"]["int8"]["size_kib"]
        for name, candidate in self.candidates.items():
            if name in self.state["candidates"]:
                continue
            keras.utils.set_random_seed(self.settings["seed"])
            model = candidate.build(self.shape, self.classes)
            measured = self.measure_file(model, f"candidates/{name}-untrained", "int8", scored=False)
            os.remove(os.path.join(self.output, "candidates", f"{name}-untrained_int8.tflite"))
            record = {
                "family": candidate.family,
                "note": candidate.note,
                "params": int(model.count_params()),
                # A slimmed teacher of probabilities gives probabilities too: its files output what it outputs.
                "outputs": teachers_and_kinds(model, "auto")[1][0],
                "estimate": {"int8_kib": measured["size_kib"], "latency_ms": measured["latency_ms"]},
                "rungs": [],
                "status": "training",
            }
            # An untrained file's latency is one noisy median: it drops a candidate only when well over the budget.
            missed = self.budget.misses(measured["size_kib"], measured["latency_ms"] / LATENCY_MARGIN)
            if measured["size_kib"] >= teacher_kib or record["params"] >= self.state["teacher"]["params"]:
                missed.append(f"not smaller than the teacher ({self.state['teacher']['params']:,} parameters, int8 file {teacher_kib:.1f} KiB)")
            if missed:
                record["status"] = "dropped before training: " + "; ".join(missed)
            self.state["candidates"][name] = record
            self.save()
        self.say(f"\n{'candidate':<20} {'params':>9} {'int8 KiB':>9} {'ms/image':>9}  status")
        for name, record in sorted(self.state["candidates"].items(), key=lambda item: item[1]["estimate"]["int8_kib"]):
            estimate = record["estimate"]
            self.say(f"{name:<20} {record['params']:>9,} {estimate['int8_kib']:>9.1f} {estimate['latency_ms']:>9.3f}  {record['status']}")

    def batches(self, distiller, done):
        """The distillation batches and steps an epoch: teacher outputs computed once, shared by every candidate
        (in memory, or as shards on disk for a streamed transfer set; labeled images streamed without one are
        scored by the teacher as each candidate trains). Each call shuffles afresh from a seed of its own (the
        search's seed and the epochs done), so a candidate sees the same data order whatever trained before it,
        and a resumed search the order of an unbroken one."""
        train, unlabeled, batch_size, share = self.splits.train, self.splits.unlabeled, self.settings["batch_size"], self.settings["labeled_share"]
        seed = self.settings["seed"] + 1000 * done
        if is_stream(unlabeled):
            if self.cached is None:
                self.cached = score_to_shards(distiller, unlabeled, os.path.join(self.output, "teacher-shards"), verbose=False)
            batches = sharded_transfer_set(train, unlabeled, self.cached, distiller, batch_size, share, seed=seed)
            return batches.repeat(), int(batches.cardinality())
        if is_stream(train.x) and unlabeled is None:
            # Streamed labeled images are not cached in memory: the teacher scores each batch as a candidate trains.
            return data_lib.to_dataset(train.x, train.y, batch_size, shuffle=True, seed=seed).repeat(), -(-len(train.x) // batch_size)
        if self.cached is None:
            if unlabeled is None:
                source, steps = (train.x, train.y), -(-len(train.x) // batch_size)
            else:
                source = data_lib.transfer_set(train, unlabeled, batch_size, share, shuffle=False)
                steps = int(source.cardinality())
            self.cached = (cache_teacher_outputs(self.teacher, source, batch_size=batch_size).unbatch(), steps)
        rows, steps = self.cached
        return rows.shuffle(steps * batch_size, seed=seed, reshuffle_each_iteration=True).batch(batch_size).repeat(), steps

    def train(self, name, epochs):
        """Distills candidate `name` from its last rung's weights up to `epochs`; records its validation accuracy."""
        record = self.state["candidates"][name]
        done = record["rungs"][-1]["epochs"] if record["rungs"] else 0
        keras.utils.set_random_seed(self.settings["seed"])
        student = self.candidates[name].build(self.shape, self.classes)
        if done:
            student.load_weights(self.weights_path(name, done))
        distiller = Distiller(self.teacher, student)
        distiller.compile(
            optimizer=keras.optimizers.Adam(self.settings["learning_rate"]), alpha=self.settings["alpha"], temperature=self.settings["temperature"]
        )
        batches, steps = self.batches(distiller, done)
        start = time.perf_counter()
        distiller.fit(batches, epochs=epochs - done, steps_per_epoch=steps, verbose=0, shuffle=False)
        # Named by the epochs they hold: a kill before the state is saved leaves them beside, never in place of,
        # the weights the state names.
        with atomic_path(self.weights_path(name, epochs)) as temporary:
            student.save_weights(temporary)
        record["rungs"].append({"epochs": epochs, "val_accuracy": accuracy(student, *self.splits.val), "seconds": time.perf_counter() - start})
        self.save()
        if done:
            os.remove(self.weights_path(name, done))
        return record["rungs"][-1]["val_accuracy"]

    def weights_path(self, name, epochs):
        return os.path.join(self.output, "candidates", f"{name}-e{epochs}.weights.h5")

    def distill_rungs(self):
        rungs = self.settings["rungs"]
        for number, epochs in enumerate(rungs):
            alive = [name for name, record in self.state["candidates"].items() if record["status"] == "training"]
            todo = [name for name in alive if not any(rung["epochs"] == epochs for rung in self.state["candidates"][name]["rungs"])]
            if todo:
                self.say(f"\nRung {number + 1}/{len(rungs)}: {len(todo)} candidate(s) distilled to {epochs} epochs")
            for name in todo:
                self.train(name, epochs)
                self.say(f"  {name:<20} validation {self.state['candidates'][name]['rungs'][-1]['val_accuracy']:.4f}")
            # A resumed search does not halve a rung again: who went on is in the state.
            if number + 1 < len(rungs) and number + 1 > self.state["halved"]:
                self._halve(alive, number + 1)

    def _halve(self, alive, rung):
        """Keeps about half of `alive`: the best Pareto fronts of (int8 size, validation accuracy), then accuracy."""
        records = self.state["candidates"]
        points = {name: (records[name]["estimate"]["int8_kib"], records[name]["rungs"][-1]["val_accuracy"]) for name in alive}
        ranks = pareto_ranks(points)
        keep = set(sorted(alive, key=lambda name: (ranks[name], -points[name][1]))[: max(1, math.ceil(len(alive) / 2))])
        for name in alive:
            if name not in keep:
                records[name]["status"] = (
                    f"stopped after rung {rung}: not in the best half (ranked by Pareto front of int8 size and validation "
                    f"accuracy, then accuracy: front {ranks[name] + 1}, validation {points[name][1]:.4f})"
                )
                self.say(f"  stops: {name} ({records[name]['status']})")
        self.state["halved"] = rung
        self.save()

    def finals(self):
        """Exports and measures every candidate that finished the last rung."""
        records = self.state["candidates"]
        for name, record in records.items():
            if record["status"] != "training":
                continue
            student = self.candidates[name].build(self.shape, self.classes)
            student.load_weights(self.weights_path(name, record["rungs"][-1]["epochs"]))
            record.setdefault("files", [])
            for quantization in self.settings["quantizations"]:
                if any(file["quantization"] == quantization for file in record["files"]):
                    continue
                record["files"].append(self.measure_file(student, name, quantization))
                self.save()
            record["status"] = "finalist"
            self.save()

    def report(self):
        teacher = self.state["teacher"]
        files = [
            dict(file, candidate=name, outputs=record["outputs"]) for name, record in self.state["candidates"].items() for file in record.get("files", [])
        ]
        chosen, meets, verdict = choose(files, self.budget, teacher)
        fronts = {key: pareto_front({file["file"]: (file[key], file["test_accuracy"]) for file in files}) for key in ("size_kib", "latency_ms")}
        report = {
            "budget": dataclasses.asdict(self.budget),
            "teacher": teacher,
            "candidates": self.state["candidates"],
            "files": files,
            "pareto_front": fronts["size_kib"],
            "latency_front": fronts["latency_ms"],
            "chosen": chosen,
            "meets_budget": meets,
            "verdict": verdict,
            "notes": self.state["notes"],
        }
        write_json(os.path.join(self.output, REPORT), report)
        from kerasdistill.plots import pareto_plot

        pareto_plot(os.path.join(self.output, PARETO), files, fronts, chosen, teacher)
        self._print_files(files, fronts["size_kib"], chosen)
        self.say(f"\n{verdict}")
        return report

    def _print_files(self, files, front, chosen):
        self.say(f"\n{'file':<34} {'KiB':>7} {'ms/image':>9} {'val':>7} {'test':>7} {'drop':>6}  budget")
        for file in sorted(files, key=lambda file: file["size_kib"]):
            marks = ("  <- chosen" if chosen is not None and file["file"] == chosen["file"] else "") + ("  (front)" if file["file"] in front else "")
            met = "met" if not file["misses"] else "; ".join(file["misses"])
            self.say(
                f"{file['file']:<34} {file['size_kib']:>7.1f} {file['latency_ms']:>9.3f} {file['val_accuracy']:>7.4f} "
                f"{file['test_accuracy']:>7.4f} {file['drop_points']:>6.2f}  {met}{marks}"
            )


def choose(files, budget, teacher):
    """The smallest measured file that meets `budget` (or, when none does, the closest), and the verdict in words.

    Args:
        files: measured files (`size_kib`, `latency_ms`, `val_accuracy`,
            `test_accuracy`, `file`), e.g. a search report's `"files"`.
        budget: a `Budget` (a file is judged on its validation accuracy:
            the test split only reports).
        teacher: the teacher's record (`val_accuracy`, `test_accuracy`, `int8`).

    Returns:
        `(chosen, meets, verdict)`; each file gets its `drop_points` and `misses`.
    """
    for file in files:
        file["drop_points"] = 100 * (teacher["val_accuracy"] - file["val_accuracy"])
        file["misses"] = budget.misses(file["size_kib"], file["latency_ms"], file["drop_points"])
    meeting = [file for file in files if not file["misses"]]
    chosen = min(meeting, key=lambda file: (file["size_kib"], -file["val_accuracy"])) if meeting else _closest(files)
    return chosen, bool(meeting), _verdict(chosen, bool(meeting), teacher, budget)


def accuracy_of(runtime, split):
    """Top-1 accuracy of a `.tflite` file's runtime on a split (labels sparse or one-hot)."""
    return float(np.mean(np.argmax(runtime.predict(split.x), axis=-1) == class_indices(split.y)))


def pareto_ranks(points):
    """Non-dominated sorting of `{name: (size, accuracy)}` (smaller and more accurate is better): 0 is the front."""
    ranks, left, rank = {}, dict(points), 0
    while left:
        front = pareto_front(left)
        for name in front:
            ranks[name] = rank
            del left[name]
        rank += 1
    return ranks


def pareto_front(points):
    """The names in `{name: (size, accuracy)}` that no other point beats on both (smaller or equal and more
    accurate, or smaller and as accurate), by size."""
    front = [
        name for name, (size, score) in points.items()
        if not any((s <= size and a > score) or (s < size and a >= score) for other, (s, a) in points.items() if other != name)
    ]  # fmt: skip
    return sorted(front, key=lambda name: points[name][0])


def _closest(files):
    """With no file meeting the budget: the one that misses it least (fewest of its limits missed, then the most
    accurate on validation, then the smallest)."""
    if not files:
        return None
    return min(files, key=lambda file: (len(file["misses"]), -file["val_accuracy"], file["size_kib"]))


def _verdict(chosen, met, teacher, budget):
    wanted = _described(budget)
    if chosen is None:
        return f"No candidate was trained to the end ({wanted}): every one was dropped before training; see the candidates."
    described = (
        f"{chosen['file']}: {chosen['size_kib']:.1f} KiB ({chosen['size_kib'] / teacher['int8']['size_kib']:.1%} of the teacher's int8 file), "
        f"{chosen['latency_ms']:.3f} ms per image, test accuracy {chosen['test_accuracy']:.4f} against the teacher's {teacher['test_accuracy']:.4f} "
        f"(validation: {chosen['drop_points']:.2f} points below it)"
    )
    if met:
        return f"Chosen, the smallest file that meets the budget ({wanted}): {described}."
    return f"No file meets the budget ({wanted}); the closest: {described}. It misses: {'; '.join(chosen['misses'])}."


def _described(budget):
    parts = {
        "max_drop": lambda value: f"at most {value:g} point{'' if value == 1 else 's'} below the teacher",
        "max_size_kib": lambda value: f"at most {value:.1f} KiB",
        "max_latency_ms": lambda value: f"at most {value:g} ms per image",
    }
    return ", ".join(parts[name](value) for name, value in dataclasses.asdict(budget).items() if value is not None)


def _splits_digest(splits):
    digest = hashlib.sha256()
    for part in (splits.train, splits.val, splits.test):
        for array in part:
            if is_stream(array):
                # Streamed images (here and below): their files' bytes or rows (a copy of the folder is the same data).
                digest.update(array.content_digest().encode())
                continue
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.tobytes())
    unlabeled = splits.unlabeled
    if unlabeled is not None:
        digest.update(unlabeled.content_digest().encode() if is_stream(unlabeled) else np.ascontiguousarray(unlabeled).tobytes())
    return digest.hexdigest()
