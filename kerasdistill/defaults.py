"""The defaults shared by the API, the config schema, QAT and the CLI.

One source for each value that more than one entry point offers: the
Distiller's `compile`, `kerasdistill.config` (from which the CLI help is
written), and `export.quantize_aware` / `export.prune` read them here.
"""

# Hinton et al. used 1-20; 4 is the keras.io example's neighbourhood and what
# the kd_gain benchmark measured best on the embedded digits.
TEMPERATURE = 4.0
# The weight of the label loss; the keras.io example's value.
ALPHA = 0.1
LEARNING_RATE = 1e-3
BATCH_SIZE = 64
