"""Augmentations by name, for consistent teaching (Beyer et al. 2022).

"Knowledge distillation: A good teacher is patient and consistent": the
teacher and the student must see the *same* augmented view of each image,
over long schedules. The `Distiller` applies `augmentation=` inside its
training step, before both models run; `cache_teacher_outputs(...,
augmentation=..., views=K)` does the same once for a costly teacher. This
module turns names from a config file or the command line into the Keras
preprocessing layers that do it.

| name        | layer                                                   |
|-------------|---------------------------------------------------------|
| `flip`      | `RandomFlip("horizontal")` (not for digits or text)     |
| `translate` | `RandomTranslation(0.1, 0.1)`, zeros filled in          |
| `crop`      | `RandomZoom((-0.2, 0))`: a random crop resized back     |
| `rotate`    | `RandomRotation(0.05)` (±18°)                           |
| `mixup`     | `MixUp(alpha=0.2)`: needs `alpha=0` (pure distillation) |
| `cutmix`    | `CutMix()`: needs `alpha=0` (pure distillation)         |
"""

from kerasdistill.backend import keras

AUGMENTATIONS = {
    "flip": lambda seed: keras.layers.RandomFlip("horizontal", seed=seed, name="flip"),
    "translate": lambda seed: keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed, name="translate"),
    "crop": lambda seed: keras.layers.RandomZoom((-0.2, 0.0), fill_mode="constant", seed=seed, name="crop"),
    "rotate": lambda seed: keras.layers.RandomRotation(0.05, fill_mode="constant", seed=seed, name="rotate"),
    "mixup": lambda seed: keras.layers.MixUp(alpha=0.2, seed=seed, name="mixup"),
    "cutmix": lambda seed: keras.layers.CutMix(seed=seed, name="cutmix"),
}


def build(names, seed=None):
    """Keras layers for a list of augmentation names.

    Args:
        names: names from `AUGMENTATIONS` (see the module's table), applied in
            that order; an empty list or None gives None (no augmentation).
        seed: seed of the random layers.

    Returns:
        A list of Keras layers for `Distiller(augmentation=...)` or
        `cache_teacher_outputs(augmentation=...)`, or None.

    Example:

    ```python
    distiller = Distiller(teacher, student, augmentation=augment.build(["translate", "crop"]))
    ```
    """
    if not names:
        return None
    if isinstance(names, str):
        names = [names]
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(
            f"Unknown augmentation(s) {', '.join(map(repr, unknown))}; known: {', '.join(AUGMENTATIONS)}."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"Each augmentation may be named once; got {list(names)}.")
    return [AUGMENTATIONS[name](None if seed is None else seed + index) for index, name in enumerate(names)]
