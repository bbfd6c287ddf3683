"""The ``nestgrad`` command (also ``python -m nestgrad``)."""

from __future__ import annotations

import argparse
import pathlib
import sys

from nestgrad.config import ConfigError, ExperimentConfig


def _cmd_train(args: argparse.Namespace) -> int:
    from nestgrad.trainer import CheckpointError, Trainer

    config = ExperimentConfig.from_toml(args.config)
    if args.iterations is not None:
        import dataclasses

        config = dataclasses.replace(config, training=dataclasses.replace(config.training, iterations=args.iterations))
    out = pathlib.Path(args.out) if args.out else pathlib.Path("out") / pathlib.Path(args.config).stem
    try:
        history = Trainer(config, out).run(resume=args.resume, overwrite=args.overwrite)
    except CheckpointError as err:
        print(f"nestgrad train: {err}", file=sys.stderr)
        return 2
    first, last = history[0]["loss"], history[-1]["loss"]
    print(
        f"done: loss {first:.5g} (iteration 1) -> {last:.5g} (iteration {history[-1]['iteration']}); results in {out}"
    )
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    import nestgrad

    for m in nestgrad.models():
        print(f"{m.name:28s} {m.language:7s} {m.source}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nestgrad", description="Train spiking networks with e-prop in NEST.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train",
        help="train a network described by a TOML configuration",
        description="Train a network described by a TOML configuration file (sections "
        "[network], [task], [optimizer], [training]). Writes metrics.csv, "
        "checkpoint.npz and plots to the output folder.",
    )
    train.add_argument("config", help="configuration file (.toml); examples in python/nestgrad/configs/")
    train.add_argument("--out", help="output folder (default: out/<config name>)")
    train.add_argument("--resume", action="store_true", help="continue from the checkpoint in the output folder")
    train.add_argument("--overwrite", action="store_true", help="replace an earlier run in the output folder")
    train.add_argument("--iterations", type=int, help="override training.iterations")
    train.set_defaults(func=_cmd_train)

    models = sub.add_parser(
        "models",
        help="list the models of nestgradmodule",
        description="List the neuron models that nestgradmodule registers in NEST.",
    )
    models.set_defaults(func=_cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ValueError) as err:
        print(f"nestgrad {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
