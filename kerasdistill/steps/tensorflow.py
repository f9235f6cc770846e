"""The TensorFlow form of the Distiller's steps: a gradient tape around the student."""

from kerasdistill.backend import KERAS_3, tf
from kerasdistill.steps.stateful import StatefulTestStep


class TensorFlowStep(StatefulTestStep):
    """`train_step`/`test_step` for Keras 3 on TensorFlow, and for tf_keras (Keras 2)."""

    def train_step(self, data):
        x, y, sample_weight = self._prepare(data, training=True)
        variables = self.trainable_weights
        with tf.GradientTape() as tape:
            y_pred = self.run_student(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
            if KERAS_3:
                loss = self.optimizer.scale_loss(loss)
        if KERAS_3:
            self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        else:
            # tf_keras optimizers scale the loss (mixed precision) inside minimize.
            self.optimizer.minimize(loss, variables, tape=tape)
        return self._step_logs(x, y, y_pred, sample_weight)
