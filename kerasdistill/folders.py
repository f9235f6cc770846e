"""Which files a folder of images holds: the formats Keras reads, without hidden entries.

Shared by the loaders of labeled folders (`data`) and the streams that read
folders lazily (`streams`), so that both see the same files.
"""

import os

# The image files `keras.utils.image_dataset_from_directory` reads.
IMAGE_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


def hidden(name):
    """Whether `image_dataset_from_directory` skips a sub-folder: its name starts with a dot.

    Jupyter's `.ipynb_checkpoints/`, `.git/` or a `.Trash-1000/` are no
    class; counting one would shift every class index after it.
    """
    return name.startswith(".")


def image_files(folder):
    """The image files under `folder` and its sub-folders, sorted, leaving out the hidden entries of `folder`
    itself, as Keras leaves out hidden class folders."""
    found = []
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if hidden(entry):
            continue
        if os.path.isdir(path):
            for root, _, names in sorted(os.walk(path)):
                found.extend(os.path.join(root, name) for name in sorted(names) if name.lower().endswith(IMAGE_FORMATS))
        elif entry.lower().endswith(IMAGE_FORMATS):
            found.append(path)
    return found


def holds_images(folder):
    """Whether `folder` (outside its hidden entries) holds an image file; stops at the first one."""
    for entry in os.listdir(folder):
        path = os.path.join(folder, entry)
        if hidden(entry):
            continue
        if entry.lower().endswith(IMAGE_FORMATS) and os.path.isfile(path):
            return True
        if os.path.isdir(path) and any(name.lower().endswith(IMAGE_FORMATS) for _, _, names in os.walk(path) for name in names):
            return True
    return False
