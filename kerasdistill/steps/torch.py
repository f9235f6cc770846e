"""The PyTorch form of the Distiller's steps: autograd on the student, the teachers under no_grad."""

import torch

from kerasdistill.steps.stateful import StatefulTestStep


class TorchStep(StatefulTestStep):
    """`train_step`/`test_step` for Keras 3 on PyTorch."""

    def train_step(self, data):
        with torch.no_grad():
            x, y, sample_weight = self._prepare(data, training=True)
        # Leftover gradients of the previous step are cleared, as Keras' own step does.
        self.zero_grad()
        y_pred = self.run_student(x, training=True)
        loss = self.compute_loss(x, y, y_pred, sample_weight)
        variables = self.trainable_weights
        self.optimizer.scale_loss(loss).backward()
        with torch.no_grad():
            self.optimizer.apply([v.value.grad for v in variables], variables)
        return self._step_logs(x, y, y_pred, sample_weight)
