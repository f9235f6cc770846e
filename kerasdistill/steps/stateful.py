"""The evaluation step of the backends whose variables are updated in place (TensorFlow, PyTorch)."""


class StatefulTestStep:
    """`test_step`: the teachers and the student in inference mode, the loss terms and metrics logged."""

    def test_step(self, data):
        x, y, sample_weight = self._prepare(data, training=False)
        y_pred = self.run_student(x, training=False)
        self.compute_loss(x, y, y_pred, sample_weight, training=False)
        return self._step_logs(x, y, y_pred, sample_weight)
