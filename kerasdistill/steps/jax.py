"""The JAX form of the Distiller's steps: stateless, the variables' values in and out."""

import jax
import keras


class JaxStep:
    """`train_step`/`test_step` for Keras 3 on JAX.

    The whole step (teachers, student, loss, loss trackers and compiled
    metrics) runs in one `StatelessScope` over the values Keras passes in;
    the teachers' weights, which the optimizer never sees, are among the
    Distiller's non-trainable variables.
    """

    def _stateless_step(self, trainable, non_trainable, metrics, data, training=False, optimizer_variables=None):
        mapping = list(zip(self.trainable_variables, trainable))
        mapping += list(zip(self.non_trainable_variables, non_trainable))
        mapping += list(zip(self.metrics_variables, metrics))
        # collect_losses: the student's forward-pass losses (add_loss, activity
        # regularizers) join the objective, as on the other backends.
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
            x, y, sample_weight = self._prepare(data, training=training)
            y_pred = self.run_student(x, training=training)
            loss = self.compute_loss(x, y, y_pred, sample_weight, training=training)
            logs = self._step_logs(x, y, y_pred, sample_weight)
        non_trainable = [scope.get_current_value(v) for v in self.non_trainable_variables]
        metrics = [scope.get_current_value(v) for v in self.metrics_variables]
        if training:
            with keras.StatelessScope(state_mapping=list(zip(self.optimizer.variables, optimizer_variables))):
                loss = self.optimizer.scale_loss(loss)
        return loss, (logs, non_trainable, metrics)

    def train_step(self, state, data):
        trainable, non_trainable, optimizer_variables, metrics = state
        step = jax.value_and_grad(self._stateless_step, has_aux=True)
        (_, (logs, non_trainable, metrics)), gradients = step(
            trainable, non_trainable, metrics, data, training=True, optimizer_variables=optimizer_variables
        )
        trainable, optimizer_variables = self.optimizer.stateless_apply(optimizer_variables, gradients, trainable)
        return logs, (trainable, non_trainable, optimizer_variables, metrics)

    def test_step(self, state, data):
        trainable, non_trainable, metrics = state
        _, (logs, non_trainable, metrics) = self._stateless_step(trainable, non_trainable, metrics, data)
        return logs, (trainable, non_trainable, metrics)
