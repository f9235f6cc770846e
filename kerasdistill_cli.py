"""The `kerasdistill` command's launcher: arguments are read before Keras loads.

Importing `kerasdistill` registers its Keras serializables, which loads Keras
and its backend (seconds, and TensorFlow's log lines). The command asks the
package to import lazily instead, so `kerasdistill --help` and a bad argument
are answered at once; the subcommand then loads what it needs.
"""

import os
import sys


def main(argv=None):
    os.environ.setdefault("KERASDISTILL_LAZY_IMPORT", "1")
    from kerasdistill.cli import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
