"""A transfer set streamed from disk: peak memory and time per image from 10,000 to 200,000 images.

Generates 96x96 colour JPEG files (smooth random colour fields, once, under
--folder), then for each size, in a fresh process: the teacher scores the
streamed folder into shards (`score_to_shards`), and the student trains one
epoch on `sharded_transfer_set` (500 labeled images beside the stream).
Printed per size: peak resident memory (ru_maxrss), seconds and
milliseconds per image for scoring and for the epoch (timed after a
20-step warm-up that traces the step), and the shards' bytes
per image (all logits and top-3). With `--views K`, the teacher scores K augmented views of each image (flip,
translate; stored as parameters) and the epoch trains on them. Also printed, at the first size (without views): scoring
images/s (up to 50,000 images, medians of 3 alternated runs) against a bare compiled `teacher(x)` loop over the same decoded
batches, with XLA and in bfloat16 too (each pass after the first reuses the scorer's trace, as the bare loop
does), and the peak memory of the in-memory path (`data.load_unlabeled` +
`transfer_set`) for comparison.

With `--run`, `kerasdistill run` itself instead: a labeled folder of 300
images beside each size as `data.unlabeled_path` (streamed), small .keras
models, one epoch; printed: the run's peak memory and seconds. With
`--run --labeled`, each size is the labeled folder itself (3 class folders
of links to the generated images, no transfer set; `--stream` sets
`data.stream`: auto streams them, false reads them into memory).

    python benchmarks/scale.py [--sizes 10000,50000,200000] [--folder /tmp/kerasdistill-scale] [--run [--labeled [--stream false]]]
"""

import argparse
import json
import os
import subprocess
import sys
import time

SIDE, CHUNK = 96, 10_000

# The small teacher and student of every measurement (scripts define SIDE and CLASSES first).
NETS = r"""
def net(widths, seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIDE, SIDE, 3))
    h = keras.layers.Rescaling(1 / 255.0)(inputs)
    for width in widths:
        h = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(h))

teacher, student = net((16, 32, 64), 0), net((8, 16), 1)
"""

MEASURE = r"""
import json, os, resource, sys, time
import numpy as np
import keras
import tensorflow as tf
import kerasdistill as kd
from kerasdistill import data, shards as shards_lib
from kerasdistill.streams import ImageStream

folder, mode, work, views = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
VIEWED = {{"augmentation": ["flip", "translate"], "views": views}} if views > 1 else {{}}
SIDE, CLASSES = {side}, 10
def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
{nets}
stream = ImageStream.from_folder(folder, (SIDE, SIDE, 3))
rng = np.random.default_rng(0)
labeled_x = np.concatenate([b.numpy() for b in stream.part(0, 500).dataset().batch(500)]).astype("float32")
labeled = labeled_x, rng.integers(0, 10, size=500)
result = {{"images": len(stream), "mode": mode}}
if mode == "memory":
    start = time.perf_counter()
    x = data.load_unlabeled(folder, (SIDE, SIDE, 3))
    distiller = kd.Distiller(teacher, student)
    distiller.compile(optimizer="adam", alpha=0.1, temperature=4.0)
    distiller.fit(data.transfer_set(labeled, x, batch_size=64), epochs=1, verbose=0)
    result.update(seconds=time.perf_counter() - start, peak_mib=peak_mib())
else:
    start = time.perf_counter()
    shards = shards_lib.score_to_shards(teacher, stream, os.path.join(work, "shards"), verbose=False, **VIEWED)
    result["score_seconds"] = time.perf_counter() - start
    result["shard_bytes_per_image"] = shards.nbytes() / len(stream)
    top = shards_lib.score_to_shards(teacher, stream.part(0, min(10000, len(stream))), os.path.join(work, "top3"), top_k=3, verbose=False, **VIEWED)
    result["top3_bytes_per_image"] = top.nbytes() / top.count
    if mode == "compare":
        batches = stream.part(0, min(50000, len(stream))).dataset().batch(256).prefetch(tf.data.AUTOTUNE)
        bare = tf.function(lambda x: teacher(x, training=False))
        for x in batches.take(1):
            bare(x)
        # Alternated three times, medians: a slower stretch of the machine falls on both.
        options = {{"shards": {{}}, "xla": {{"jit_compile": True}}, "bfloat16": {{"precision": "bfloat16"}}}}
        rates = {{name: [] for name in ["bare", *options]}}
        for repeat in range(3):
            start = time.perf_counter()
            count = sum(int(bare(x).shape[0]) for x in batches)
            rates["bare"].append(count / (time.perf_counter() - start))
            for name, settings in options.items():
                start = time.perf_counter()
                shards_lib.score_to_shards(teacher, stream.part(0, count), os.path.join(work, f"again-{{name}}-{{repeat}}"), verbose=False, **settings)
                rates[name].append(count / (time.perf_counter() - start))
        result.update({{f"{{name}}_images_per_s": sorted(values)[1] for name, values in rates.items()}})
    distiller = kd.Distiller(teacher, student)
    distiller.compile(optimizer="adam", alpha=0.1, temperature=4.0)
    batches = shards_lib.sharded_transfer_set(labeled, stream, shards, distiller, batch_size=64)
    distiller.fit(batches, epochs=1, steps_per_epoch=20, verbose=0)  # the step's tracing, left out of the timed epoch
    start = time.perf_counter()
    distiller.fit(batches, epochs=1, verbose=0)
    result.update(epoch_seconds=time.perf_counter() - start, peak_mib=peak_mib())
print("RESULT " + json.dumps(result))
"""


def generate(root, count):
    """`count` 96x96 colour JPEGs under `root`, in folders of 10,000 (kept between runs)."""
    for chunk in range(-(-count // CHUNK)):
        folder = os.path.join(root, "all", f"chunk{chunk:03d}")
        if not (os.path.isdir(folder) and len(os.listdir(folder)) == CHUNK):
            start = time.perf_counter()
            write_images([os.path.join(folder, f"{index:05d}.jpg") for index in range(CHUNK)], first_seed=chunk * CHUNK)
            print(f"  generated {folder} in {time.perf_counter() - start:.0f} s", flush=True)


def write_images(names, first_seed):
    """Smooth random colour fields with noise as JPEG files at `names` (their folders made), one seed each."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    for folder in {os.path.dirname(name) for name in names}:
        os.makedirs(folder, exist_ok=True)

    def write(name, seed):
        generator = tf.random.stateless_uniform
        corners = generator((2, 2, 3), seed=tf.stack([seed, 0]), maxval=255.0)
        field = tf.image.resize(corners[None], (SIDE, SIDE), method="bilinear")[0]
        noise = generator((SIDE, SIDE, 3), seed=tf.stack([seed, 1]), minval=-20.0, maxval=20.0)
        image = tf.cast(tf.clip_by_value(field + noise, 0, 255), tf.uint8)
        tf.io.write_file(name, tf.io.encode_jpeg(image, quality=90))
        return 0

    seeds = tf.range(first_seed, first_seed + len(names), dtype=tf.int64)
    for _ in tf.data.Dataset.from_tensor_slices((names, seeds)).map(write, num_parallel_calls=tf.data.AUTOTUNE):
        pass


def view(root, count):
    """A folder that holds the first `count` images (links to the generated folders)."""
    folder = os.path.join(root, f"first{count}")
    os.makedirs(folder, exist_ok=True)
    for chunk in range(count // CHUNK):
        link = os.path.join(folder, f"chunk{chunk:03d}")
        if not os.path.exists(link):
            os.symlink(os.path.join(root, "all", f"chunk{chunk:03d}"), link)
    return folder


RUN_MODELS = r"""
import sys, keras
SIDE, CLASSES = {side}, 3
{nets}
teacher.save(sys.argv[1])
student.save(sys.argv[2])
"""


def labeled_view(root, count):
    """A labeled folder of the first `count` images: 3 class folders of links to them (image `i` in class `i % 3`)."""
    folder = os.path.join(root, f"labeled{count}")
    if not os.path.isdir(folder):
        with_links = folder + ".partial"
        for index in range(count):
            chunk, name = divmod(index, CHUNK)
            link = os.path.join(with_links, f"class{index % 3}", f"{index:06d}.jpg")
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(os.path.join(root, "all", f"chunk{chunk:03d}", f"{name:05d}.jpg"), link)
        os.rename(with_links, folder)
    return folder


def product_run(root, size, labeled_size=False, stream="auto"):
    """`kerasdistill run` on a labeled folder of 300 images of its own (3 classes) with the first
    `size` images as `data.unlabeled_path` (with `labeled_size`: the first `size` images as the labeled folder,
    `data.stream` set to `stream`): `{"images", "peak_mib", "seconds"}` of the run's process."""
    import resource

    import yaml

    labeled = os.path.join(root, "labeled")
    if not os.path.isdir(labeled):
        # Images of their own (seeds past the unlabeled ones): the run refuses a transfer set holding its test images.
        write_images([os.path.join(labeled, f"class{index % 3}", f"{index:03d}.jpg") for index in range(300)], first_seed=10**7)
    teacher, student = os.path.join(root, "teacher.keras"), os.path.join(root, "student.keras")
    if not os.path.isfile(student):
        subprocess.run([sys.executable, "-c", RUN_MODELS.format(side=SIDE, nets=NETS), teacher, student], check=True, capture_output=True)
    data = (
        {"source": "image_folder", "path": labeled_view(root, size), "stream": stream} if labeled_size
        else {"source": "image_folder", "path": labeled, "unlabeled_path": view(root, size)}
    )
    config = {
        "data": data,
        "teacher": {"model": teacher}, "student": {"model": student},
        "training": {"epochs": 1, "batch_size": 64},
        "distillation": {"alpha": 0.1, "temperature": 4.0},
        "export": {"quantizations": ["float32"], "targets": ["plain"]},
        "report": {"plots": False},
    }
    path = os.path.join(root, f"run{size}.yaml")
    with open(path, "w") as handle:
        yaml.safe_dump(config, handle)
    start = time.perf_counter()
    command = [sys.executable, "-m", "kerasdistill_cli", "run", "--config", path, "--output", os.path.join(root, f"runs-{os.getpid()}"), "--quiet"]
    subprocess.run(command, check=True, capture_output=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    # The largest child so far: runs go from the smallest size up.
    return {"images": size, "peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "seconds": time.perf_counter() - start}


def measure(folder, mode, work, views=1):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-c", MEASURE.format(side=SIDE, nets=NETS), folder, mode, work, str(views)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.split("RESULT ", 1)[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,50000,200000")
    parser.add_argument("--folder", default="/tmp/kerasdistill-scale")
    parser.add_argument("--memory-path", action="store_true", help="also measure the in-memory path at the first size")
    parser.add_argument("--run", action="store_true", help="measure `kerasdistill run` itself at each size instead")
    parser.add_argument("--views", type=int, default=1, help="score K augmented views of each image (flip, translate) and train on them")
    parser.add_argument("--labeled", action="store_true", help="with --run: each size is the labeled folder (no transfer set)")
    parser.add_argument("--stream", default="auto", choices=["auto", "false"], help="with --run --labeled: data.stream")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    if any(size % CHUNK for size in sizes):
        parser.error(f"--sizes must be multiples of {CHUNK}")
    generate(args.folder, max(sizes))
    if args.run:
        for size in sizes:
            print(json.dumps(product_run(args.folder, size, args.labeled, "auto" if args.stream == "auto" else False)), flush=True)
        return
    rows = []
    for number, size in enumerate(sizes):
        work = os.path.join(args.folder, f"work{size}-{os.getpid()}")
        # The scoring comparison is of the plain teacher pass: with views, every size is measured alike.
        rows.append(measure(view(args.folder, size), "compare" if number == 0 and args.views == 1 else "stream", work, args.views))
        print(json.dumps(rows[-1]), flush=True)
    if args.memory_path:
        rows.append(measure(view(args.folder, sizes[0]), "memory", ""))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'images':>8} {'peak MiB':>9} {'score s':>8} {'score ms/img':>13} {'epoch s':>8} {'epoch ms/img':>13} {'B/img':>6} {'top-3 B/img':>12}")
    for row in rows:
        if row["mode"] == "memory":
            print(f"{row['images']:>8} {row['peak_mib']:>9.0f}   in-memory path (load_unlabeled + transfer_set, one epoch): {row['seconds']:.1f} s")
            continue
        print(
            f"{row['images']:>8} {row['peak_mib']:>9.0f} {row['score_seconds']:>8.1f} {1000 * row['score_seconds'] / row['images']:>13.3f} "
            f"{row['epoch_seconds']:>8.1f} {1000 * row['epoch_seconds'] / row['images']:>13.3f} {row['shard_bytes_per_image']:>6.0f} "
            f"{row['top3_bytes_per_image']:>12.0f}"
        )
    first = rows[0]
    if "shards_images_per_s" in first:
        print(f"\nScoring: {first['shards_images_per_s']:,.0f} images/s into shards, {first['bare_images_per_s']:,.0f} images/s for a bare "
              f"compiled teacher(x) loop over the same decoded batches: ratio {first['shards_images_per_s'] / first['bare_images_per_s']:.2f}; "
              f"with XLA (jit_compile=True) {first['xla_images_per_s']:,.0f} images/s; in bfloat16 {first['bfloat16_images_per_s']:,.0f} images/s.")
    streamed = [row for row in rows if row["mode"] != "memory"]
    print(f"Peak memory, last size / first: {streamed[-1]['peak_mib'] / streamed[0]['peak_mib']:.3f}; epoch time per image, last / first: "
          f"{(streamed[-1]['epoch_seconds'] / streamed[-1]['images']) / (streamed[0]['epoch_seconds'] / streamed[0]['images']):.3f}.")


if __name__ == "__main__":
    main()
