"""Training: the Trainer (blocks of iterations in fresh NEST kernels, metrics, checkpoints, resume, evaluation),
its callbacks, checkpoints and plots. The end of nestgrad's path: configuration -> network (spec) -> engine ->
training -> outputs."""

from nestgrad.training.trainer import Trainer

__all__ = ["Trainer"]
