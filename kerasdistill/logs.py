"""Hiding TensorFlow's and LiteRT's native log lines from the command line's output.

TensorFlow 2.19+ writes absl log lines from C++ straight to file descriptor
2 while it loads (CUDA probing on CPU-only machines, CPU features, oneDNN),
before `TF_CPP_MIN_LOG_LEVEL` is read; LiteRT prints one line per
interpreter. They read like errors and say nothing to a user of the command
line. `native_logs_hidden` routes descriptor 2 through a filter that drops
exactly those lines; everything else (Python's warnings and errors) passes.
"""

import contextlib
import os
import re
import sys
import threading

NATIVE_LOG_LINE = re.compile(
    rb"^(?:[IWEF]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\]"  # absl: I0000 00:00:17.. 123 port.cc:153] ...
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate"
    rb"|To enable the following instructions: .*rebuild TensorFlow)"
)


@contextlib.contextmanager
def native_logs_hidden():
    """Drops native log lines written to standard error inside the block.

    Example:

    ```python
    with native_logs_hidden():
        import tensorflow as tf  # no "Could not find cuda drivers" lines
    ```
    """
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    copier = threading.Thread(target=_copy_kept_lines, args=(read_end, original), daemon=True)
    copier.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last write end: the copier reads to its end
        copier.join(timeout=5)
        os.close(original)


def _copy_kept_lines(read_end, target):
    with os.fdopen(read_end, "rb") as lines:
        for line in lines:
            if not NATIVE_LOG_LINE.match(line):
                os.write(target, line)
