"""Layer taps: the teacher and student re-wired to also return intermediate layers.

Losses on intermediate layers (hints, attention, RKD with pairs) name
`(teacher_layer, student_layer)` pairs. `Taps.build` makes, from the user's
models, functional models that return the output and those layers' outputs
(sharing every layer and weight: the user's models are not changed), and the
trainable adapters that map a student feature onto a teacher feature of
another shape, for the losses that use them.
"""

from kerasdistill.adapters import FeatureAdapter, needs_adapter
from kerasdistill.backend import keras


class Taps:
    """The tapped models and the adapters of one Distiller.

    A plain object on purpose: Keras does not track it, so the tapped models
    (which share every layer with the user's models) are neither saved twice
    nor counted twice. The Distiller tracks the adapters itself.

    Args:
        teacher: the tapped teacher (output first, then the named layers), or
            None when no loss compares intermediate layers.
        student: the tapped student, likewise.
        teacher_names: the teacher layers the tapped teacher returns, in order.
        student_names: likewise for the student.
        adapters: `{(teacher_layer, student_layer): FeatureAdapter}`.
    """

    def __init__(self, teacher=None, student=None, teacher_names=(), student_names=(), adapters=None):
        self.teacher = teacher
        self.student = student
        self.teacher_names = list(teacher_names)
        self.student_names = list(student_names)
        self.adapters = dict(adapters or {})

    @classmethod
    def build(cls, teachers, student, distillation_losses):
        """The taps the losses need (none when they all compare outputs)."""
        pairs = [pair for loss in distillation_losses for pair in (loss.pairs or ())]
        if not pairs:
            return cls()
        if len(teachers) > 1:
            raise ValueError(
                "Losses on intermediate layers (hint, attention, rkd with pairs) compare one teacher's "
                f"layers with the student's; this Distiller has {len(teachers)} teachers. Use one "
                "teacher with those losses, or losses on the outputs (soft_target_kl, dkd, rkd without pairs)."
            )
        teacher_names = list(dict.fromkeys(t for t, _ in pairs))
        student_names = list(dict.fromkeys(s for _, s in pairs))
        teacher_model = tap_model(teachers[0], teacher_names, "teacher")
        student_model = tap_model(student, student_names, "student")
        teacher_shapes = dict(zip(teacher_names, (t.shape for t in teacher_model.outputs[1:])))
        student_shapes = dict(zip(student_names, (s.shape for s in student_model.outputs[1:])))
        adapters = {}
        for loss in (loss for loss in distillation_losses if loss.uses_adapter):
            for pair in loss.pairs:
                teacher_shape, student_shape = teacher_shapes[pair[0]], student_shapes[pair[1]]
                if pair in adapters or not needs_adapter(student_shape, teacher_shape):
                    continue
                adapter = FeatureAdapter(teacher_shape[1:], name=f"adapter_{pair[1]}_to_{pair[0]}")
                adapter.build(student_shape)
                adapters[pair] = adapter
        return cls(teacher_model, student_model, teacher_names, student_names, adapters)

    def run_teacher(self, x):
        """`(outputs, {layer: feature})` of the tapped teacher in inference mode."""
        outputs = self.teacher(x, training=False)
        return outputs[0], dict(zip(self.teacher_names, outputs[1:]))

    def run_student(self, student, x, training):
        """`(outputs, {layer: feature}, {pair: adapted feature})` of the student."""
        if self.student is None:
            return student(x, training=training), {}, {}
        outputs = self.student(x, training=training)
        features = dict(zip(self.student_names, outputs[1:]))
        adapted = {pair: adapter(features[pair[1]]) for pair, adapter in self.adapters.items()}
        return outputs[0], features, adapted


def tap_model(model, layer_names, role):
    """A model with `model`'s inputs whose outputs are its output then the named layers' outputs."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ValueError(
            f"The {role} '{model.name}' is a subclassed model, whose intermediate layers cannot be "
            "tapped. Hint, attention and rkd losses with layer pairs need a functional or Sequential "
            f"{role} (built with keras.Input)."
        )
    known = [layer.name for layer in model.layers]
    outputs = []
    for name in layer_names:
        if name not in known:
            raise ValueError(
                f"The {role} '{model.name}' has no layer named '{name}'. Its layers: {', '.join(known)}."
            )
        outputs.append(model.get_layer(name).output)
    return keras.Model(inputs, [model.outputs[0], *outputs], name=f"{model.name}_taps")
