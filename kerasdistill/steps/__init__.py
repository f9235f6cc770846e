"""The Distiller's training and evaluation steps, one form per Keras backend.

Keras documents three forms of a custom `train_step`: TensorFlow and PyTorch
take a batch and update the variables in place; JAX is stateless, taking and
returning the variables' values. Each form here is a thin mixin around the
same backend-neutral pieces of the `Distiller`: `_prepare` (augment, run the
teachers with no gradient), `run_student`, `compute_loss` and `_step_logs`.
`TrainStep` is the form of the backend this process runs Keras on.
"""

from kerasdistill.backend import backend_name


def _step_for_backend():
    name = backend_name()
    if name == "jax":
        from kerasdistill.steps.jax import JaxStep

        return JaxStep
    if name == "torch":
        from kerasdistill.steps.torch import TorchStep

        return TorchStep
    if name == "tensorflow":
        from kerasdistill.steps.tensorflow import TensorFlowStep

        return TensorFlowStep
    raise ImportError(
        f"kerasdistill runs on Keras' tensorflow, jax and torch backends; this process uses '{name}'. "
        "Set KERAS_BACKEND to one of those before importing keras."
    )


TrainStep = _step_for_backend()

__all__ = ["TrainStep"]
