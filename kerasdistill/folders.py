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
    """The image files under `folder` and its sub-folders, sorted, leaving out hidden entries at every depth
    (a `.ipynb_checkpoints/` or `._photo.png` is no image of the set), as Keras leaves out hidden class folders."""
    found = []
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if hidden(entry):
            continue
        if os.path.isdir(path):
            walked = []
            for root, folders, names in os.walk(path):
                folders[:] = [name for name in folders if not hidden(name)]
                walked.append((root, names))
            for root, names in sorted(walked):
                found.extend(os.path.join(root, name) for name in sorted(names) if not hidden(name) and name.lower().endswith(IMAGE_FORMATS))
        elif entry.lower().endswith(IMAGE_FORMATS):
            found.append(path)
    return found


def visible(files, folder):
    """`files` (under `folder`) without those below a hidden entry: Keras lists the images inside a class folder's
    hidden sub-folders (a `.ipynb_checkpoints/` of copies) as images of that class."""
    return [file for file in files if not any(hidden(part) for part in os.path.relpath(file, folder).split(os.sep))]


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
