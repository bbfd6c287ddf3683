"""nestgrad: gradient-based training (e-prop) of biologically detailed spiking networks inside NEST.

Typical use::

    import nest, nestgrad
    nestgrad.install()                      # loads nestgradmodule (our e-prop neurons) into NEST
    nest.Create("eprop_iaf_psc_exp", 10)

Training runs through :class:`nestgrad.Trainer` or the ``nestgrad train CONFIG.toml`` command.
"""

from nestgrad.module import ModelInfo, install, model_names, models

__version__ = "0.1.0"

__all__ = ["ModelInfo", "Trainer", "install", "model_names", "models", "__version__"]


def __getattr__(name: str):
    # The trainer imports NEST; keep `import nestgrad` light for tools that only need the module list.
    if name == "Trainer":
        from nestgrad.training.trainer import Trainer

        return Trainer
    raise AttributeError(f"module 'nestgrad' has no attribute {name!r}")
