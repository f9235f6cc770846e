"""The `kerasdistill` command's launcher: arguments are read before Keras loads.

Importing `kerasdistill` registers its Keras serializables, which loads Keras
and its backend (seconds, and TensorFlow's log lines). The package defers that
while this module says so (an attribute of this process, so no child process
inherits it): `kerasdistill --help` and a bad argument are answered at once,
and the subcommand then loads what it needs.
"""

import sys

# True while `main` imports the package: a process that merely imports this module registers as usual.
READS_ARGUMENTS_FIRST = False


def main(argv=None):
    global READS_ARGUMENTS_FIRST
    READS_ARGUMENTS_FIRST = True
    try:
        from kerasdistill.cli import main as run
    finally:
        READS_ARGUMENTS_FIRST = False
    return run(argv)


if __name__ == "__main__":
    # `python -m kerasdistill_cli`: run as the module the package looks for (not as `__main__`).
    import kerasdistill_cli

    sys.exit(kerasdistill_cli.main())
