"""What ``nestgrad compare --config`` runs for a configuration that is not the classic e-prop network.

A :class:`Comparison` runs one network in NEST and in a reference engine and formats the result; it is registered
per architecture and, where an architecture runs with gradient algorithms that need different engines, per
(architecture, ``network.gradient_algorithm``). :func:`comparison_for` looks the configuration up (its algorithm
first, then the architecture alone); architectures without an entry get the general spec comparison (NEST against
:mod:`nestgrad.reference.spec_online`). The command line never branches on the names.

Built in: ``eventprop`` (LIF EventProp, :mod:`~nestgrad.comparison.eventprop_compare`), ``v1`` with
``eventprop`` (the V1 column with EventProp, :mod:`~nestgrad.comparison.v1_eventprop_compare`), ``microcircuit``
(NEST draws the circuit; read back into a spec) and the spec comparison for ``v1`` and every other architecture.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nestgrad.config import ConfigError, ExperimentConfig


@dataclass(frozen=True)
class CompareOptions:
    """What the command line passes on: iterations (batches), NEST threads, output folder, and the exchange file to
    write the compared network to (``--save-network``; None: none)."""

    iterations: int
    threads: int
    out_dir: pathlib.Path
    save_network: str | None = None


@dataclass(frozen=True)
class Comparison:
    run: Callable[[ExperimentConfig, CompareOptions], dict[str, Any]]  # writes out_dir/compare.json
    format: Callable[[dict[str, Any]], str]  # the table printed


_REGISTRY: dict[tuple[str, str | None], Comparison] = {}


def register_comparison(architecture: str, comparison: Comparison, gradient_algorithm: str | None = None) -> None:
    """Make ``nestgrad compare --config`` run ``comparison`` for ``architecture`` (with ``gradient_algorithm``
    only, if given). Registering a key again replaces it."""
    _REGISTRY[(architecture, None if gradient_algorithm is None else str(gradient_algorithm))] = comparison


def comparison_for(config: ExperimentConfig) -> Comparison:
    net = config.network
    for key in ((net.architecture, str(net.gradient_algorithm)), (net.architecture, None)):
        if key in _REGISTRY:
            return _REGISTRY[key]
    return SPEC_COMPARISON


def _no_exchange_file(options: CompareOptions, what: str) -> None:
    if options.save_network:
        raise ConfigError(f"--save-network: {what} networks are not written as exchange files yet")


# -- the built-ins (imports inside the functions keep `nestgrad compare --help` light) ------------------------------
def _save_case(options: CompareOptions, case: Any) -> None:
    if options.save_network:
        from nestgrad.comparison import exchange

        exchange.save(options.save_network, exchange.from_batches(case.spec, case.batches, case.meta))
        print(f"network written: {options.save_network}")


def _run_spec(config: ExperimentConfig, options: CompareOptions) -> dict[str, Any]:
    from nestgrad.comparison.spec_compare import case_from_config, compare_case

    case = case_from_config(config, options.iterations)
    _save_case(options, case)
    return compare_case(case, threads=options.threads, out_dir=options.out_dir)


def _run_microcircuit(config: ExperimentConfig, options: CompareOptions) -> dict[str, Any]:
    from nestgrad.comparison.spec_compare import compare_run, microcircuit_run

    case, nest_run = microcircuit_run(config, options.iterations, threads=options.threads)
    _save_case(options, case)
    return compare_run(case, nest_run, out_dir=options.out_dir, threads=options.threads)


def _format_spec(result: dict[str, Any]) -> str:
    from nestgrad.comparison.spec_compare import format_table

    return format_table(result)


def _run_eventprop(config: ExperimentConfig, options: CompareOptions) -> dict[str, Any]:
    from nestgrad.comparison.eventprop_compare import compare_eventprop

    _no_exchange_file(options, "EventProp")
    return compare_eventprop(config, options.iterations, threads=options.threads, out_dir=options.out_dir)


def _format_eventprop(result: dict[str, Any]) -> str:
    from nestgrad.comparison.eventprop_compare import format_table

    return format_table(result)


def _run_v1_eventprop(config: ExperimentConfig, options: CompareOptions) -> dict[str, Any]:
    from nestgrad.comparison.v1_eventprop_compare import compare_v1_eventprop

    _no_exchange_file(options, "EventProp")
    return compare_v1_eventprop(config, options.iterations, threads=options.threads, out_dir=options.out_dir)


def _format_v1_eventprop(result: dict[str, Any]) -> str:
    from nestgrad.comparison.v1_eventprop_compare import format_table

    return format_table(result)


SPEC_COMPARISON = Comparison(_run_spec, _format_spec)
register_comparison("eventprop", Comparison(_run_eventprop, _format_eventprop))
register_comparison("microcircuit", Comparison(_run_microcircuit, _format_spec))
register_comparison("v1", SPEC_COMPARISON)
register_comparison("v1", Comparison(_run_v1_eventprop, _format_v1_eventprop), gradient_algorithm="eventprop")
