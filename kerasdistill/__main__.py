"""`python -m kerasdistill`: the `kerasdistill` command (which answers `--help` faster, before Keras loads)."""

import sys

from kerasdistill.cli import main

sys.exit(main())
