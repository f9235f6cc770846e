"""The defaults and choices shared by the API, the config schema, QAT and the CLI.

One source for each value that more than one entry point offers: the
Distiller's `compile`, `kerasdistill.config` (from which the CLI help is
written), and `export.quantize_aware` / `export.prune` read them here. This
module imports nothing, so the command line can answer `--help` and refuse
bad arguments without loading Keras or TensorFlow.
"""

# Hinton et al. used 1-20; 4 is the keras.io example's neighbourhood and what
# the kd_gain benchmark measured best on the embedded digits.
TEMPERATURE = 4.0
# The weight of the label loss; the keras.io example's value.
ALPHA = 0.1
# A config's alpha and temperature default to AUTO: `kerasdistill run` chooses them on the validation split
# (kerasdistill.selection) among these, the defaults above first (they win ties). Alpha 0 is pure teaching
# (Beyer et al. 2022), 0.5 leans on the labels; alpha 1 (labels only) is the scratch student, which a run
# trains anyway. T 2 softens less (the teacher's ranking of the wrong classes matters less).
AUTO = "auto"
ALPHAS = (ALPHA, 0.0, 0.5)
TEMPERATURES = (TEMPERATURE, 2.0)
# The search may train the student this many times a run's epochs, in all.
SEARCH_BUDGET = 2.0
LEARNING_RATE = 1e-3
BATCH_SIZE = 64

# Above this, float32 softmax(z / T) loses the differences the loss is made of
# (soft-target KL is off by 8% at T = 1e4, and meaningless at 1e6).
MAX_TEMPERATURE = 100.0

# Augmented views of each image a teacher-output cache stores (the API's
# `views`, the config's distillation.teacher_views): each view is a whole
# copy of the training images in the cache.
MAX_TEACHER_VIEWS = 32

# A backbone teacher with ImageNet weights fine-tunes this share of its top layers by default (30 of
# MobileNetV2's 154, as keras.io's transfer-learning guide and kd_gain.py do), kept only if it beats the head.
FINE_TUNE_SHARE = 0.2
# Augmentations that mix images and their targets: the labels are not mixed, so they need alpha 0.
MIXING_AUGMENTATIONS = ("mixup", "cutmix")
STRATEGIES = ("none", "mirrored", "multi_worker")
# Learning-rate schedules of a run's models (kerasdistill.schedules).
SCHEDULES = ("cosine", "constant")
# A run keeps each model's best epoch on the validation split and stops a
# model this many epochs after its last improvement.
EPOCHS = 15
PATIENCE = 4
# The share of the training data held out for validation (the embedded
# digits: 500 of 4,000).
VALIDATION_SIZE = 0.125
# The embedded default job keeps the labels of this many of its training
# digits (the others are the transfer set): where distillation pays.
EMBEDDED_LABELED_SIZE = 500
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
# int4: weight-only int4 (activations float), by LiteRT's AI Edge Quantizer (the `int4` extra).
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8", "int4")
# What an exported .tflite file is for: "plain" (the model as trained) or
# "classifier" (RGB in, probabilities out, metadata and labels for
# MediaPipe Tasks and the TFLite Task Library).
TARGETS = ("plain", "classifier")
# `kerasdistill compress`: the candidate families (kerasdistill.candidates) and the cumulative epochs at
# which about half the candidates stop (successive halving).
COMPRESS_FAMILIES = ("convnet", "mobilenet_v2", "slim")
COMPRESS_RUNGS = (2, 6, 18)
