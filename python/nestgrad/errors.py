"""The errors a user can cause, under one base class.

Every error that bad input, a bad configuration, a corrupt file or a failing disk can cause derives from
:class:`NestgradError`; the command line turns those into one-line messages and lets anything else (a bug) show its
traceback. Errors about values also derive from ``ValueError`` and errors about the run's state from
``RuntimeError``, so that code written against the built-in classes keeps working.

This module imports nothing but the standard library: every layer (configuration, specification, reference
engine, NEST engine, trainer) may raise these.
"""

from __future__ import annotations

from pathlib import Path


class NestgradError(Exception):
    """Base class of every error a user can cause (input, configuration, files, resources)."""


class ConfigError(NestgradError, ValueError):
    """An invalid configuration value; the message names the key."""


class SpecError(NestgradError, ValueError):
    """An invalid network specification or exchange file; the message names the field."""


class ModelError(NestgradError, ValueError):
    """A neuron or synapse model (or one of its parameters) that a network, engine or algorithm cannot use."""


class SonataError(NestgradError, ValueError):
    """A SONATA file is missing, malformed or inconsistent. ``path`` and ``field`` say where."""

    def __init__(self, path: str | Path, field: str, message: str):
        self.path = str(path)
        self.field = field
        super().__init__(f"{path}: field '{field}': {message}")


class CheckpointError(NestgradError, RuntimeError):
    """A checkpoint that cannot be resumed (missing, corrupt, or from a different configuration)."""


class TrainingDivergedError(NestgradError, RuntimeError):
    """Training produced non-finite or exploding values; the last checkpoint is kept."""


class OutputError(NestgradError, RuntimeError):
    """The output folder cannot be written (full or read-only disk, locked by another run)."""


class ResourceError(NestgradError, RuntimeError):
    """A run would need more memory (or other resources) than the machine has; the message gives the estimate."""
