"""The ``nestgrad`` command (also ``python -m nestgrad``): train, evaluate, compare, meta, meta-test, models."""

from __future__ import annotations

import argparse
import pathlib
import sys

from nestgrad.config import ConfigError, ExperimentConfig
from nestgrad.errors import NestgradError


def _cmd_train(args: argparse.Namespace) -> int:
    from nestgrad.training.trainer import Trainer

    config = ExperimentConfig.from_toml(args.config)
    if args.iterations is not None:
        import dataclasses

        _require_positive("--iterations", args.iterations)
        config = dataclasses.replace(config, training=dataclasses.replace(config.training, iterations=args.iterations))
    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    out = pathlib.Path(args.out) if args.out else pathlib.Path("out") / pathlib.Path(args.config).stem
    history = Trainer(config, out).run(resume=args.resume, overwrite=args.overwrite)
    first, last = history[0]["loss"], history[-1]["loss"]
    print(
        f"done: loss {first:.5g} (iteration 1) -> {last:.5g} (iteration {history[-1]['iteration']}); results in {out}"
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from nestgrad.training.trainer import Trainer, evaluation_file

    _require_positive("--batches", args.batches)
    config = ExperimentConfig.from_toml(args.config)
    out = pathlib.Path(args.out) if args.out else pathlib.Path("out") / pathlib.Path(args.config).stem
    trainer = Trainer(config, out, verbose=False)
    result = trainer.evaluate(args.batches, initial=args.initial, final_weights=args.final_weights)
    acc = f", accuracy {result['accuracy']:.3f}" if "accuracy" in result else ""
    averaged = trainer.state is not None and trainer.state.averaged_count > 0
    name = evaluation_file(args.initial, args.final_weights and averaged)
    what = f"the {result['weights']}" if averaged and not args.final_weights else f"iteration {result['iteration']}"
    print(
        f"evaluation of {what} on {result['trials']} new trials (learning off): "
        f"loss {result['loss']:.5g}{acc}; written: {out / name}"
    )
    for task, per in result.get("accuracy_per_task", {}).items():  # several tasks at once, each on its readouts
        score = "no trials" if per["accuracy"] is None else f"accuracy {per['accuracy']:.3f}"
        print(f"  {task}: {score} on {per['trials']} trials")
    return 0


# The psc_delta models use ~30x larger weights (NEST's examples); with the common learning rate the network changes
# so fast that NEST and the reference, which sum synaptic inputs in different orders, part ways by rounding.
_COMPARE_ETA = {
    m: 1e-7
    for m in (
        "eprop_iaf_psc_delta",
        "eprop_iaf_psc_delta_adapt",
        "eprop_iaf_psc_delta_nestml",
        "eprop_iaf_psc_delta_adapt_nestml",
        "eprop_iaf_psc_delta_asc_nestml",
    )
}


def _cmd_compare(args: argparse.Namespace) -> int:
    import dataclasses

    from nestgrad.comparison.compare import compare, format_table
    from nestgrad.comparison.nest_runs import spec_from_config
    from nestgrad.config import NetworkConfig, OptimizerConfig, TaskConfig

    sources = [x for x in (args.network, args.config, args.task) if x]
    if len(sources) != 1:
        print("nestgrad compare: give exactly one of --network FILE, --config FILE or --task NAME", file=sys.stderr)
        return 2
    from nestgrad.resources import check_threads

    if args.iterations is not None:  # None: the configuration's training.iterations (or 5 for --task)
        _require_positive("--iterations", args.iterations)
    _require_positive("--threads", args.threads)
    check_threads(args.threads, "--threads")
    _require_positive("--n-rec", args.n_rec)
    if args.network:
        from nestgrad.comparison import exchange

        loaded = exchange.load(args.network)  # the exchange format, or the old classic format
        if isinstance(loaded, exchange.Exchange) and not loaded.is_classic:
            return _compare_exchange(args, loaded)
        spec = exchange.classic_view(loaded) if isinstance(loaded, exchange.Exchange) else loaded
    elif args.neuron.endswith("_bsshslm_2020") and not args.config:
        from nestgrad.comparison.bsshslm_nest import make_bsshslm_spec

        spec = make_bsshslm_spec(
            task=args.task,
            rec_model=args.neuron,
            n_rec=args.n_rec,
            iterations=5 if args.iterations is None else args.iterations,
            optimizer=args.optimizer,
            eta=args.eta,
        )
    else:
        if args.config:
            config = ExperimentConfig.from_toml(args.config)
            if config.network.architecture != "classic":
                return _compare_spec_network(args, config)
        else:
            eta = args.eta if args.eta is not None else _COMPARE_ETA.get(args.neuron, 1e-5)
            config = ExperimentConfig(
                network=NetworkConfig(
                    neuron_model=args.neuron, n_rec=args.n_rec, gradient_algorithm=args.gradient_algorithm
                ),
                task=TaskConfig(name=args.task),
                optimizer=OptimizerConfig(type=args.optimizer, eta=eta),
            )
        if args.eta is not None:
            config = dataclasses.replace(config, optimizer=dataclasses.replace(config.optimizer, eta=args.eta))
        spec = spec_from_config(config, 5 if args.iterations is None else args.iterations)
    if args.save_network:
        from nestgrad.comparison import exchange

        if spec.rec_model.endswith(exchange.BSSHSLM_SUFFIX):  # not built from a nestgrad.spec network yet
            spec.save(args.save_network)
        else:
            exchange.save(args.save_network, exchange.from_classic(spec))
        print(f"network written: {args.save_network}")
    out = pathlib.Path(args.out) if args.out else pathlib.Path("out") / f"compare_{spec.rec_model}"
    result = compare(spec, out, threads=args.threads)
    print(format_table(result))
    print(f"written: {out / 'compare.json'} and plots in {out}")
    return 0


def _compare_spec_network(args: argparse.Namespace, config: ExperimentConfig) -> int:
    """``nestgrad compare --config`` for every architecture but the classic one: the comparison registered for the
    configuration (nestgrad.comparison.registry; by default NEST vs the general reference engine)."""
    import dataclasses

    from nestgrad.comparison.registry import CompareOptions, comparison_for

    if args.eta is not None:
        config = dataclasses.replace(config, optimizer=dataclasses.replace(config.optimizer, eta=args.eta))
    iterations = args.iterations if args.iterations is not None else config.training.iterations
    out = pathlib.Path(args.out) if args.out else pathlib.Path("out") / f"compare_{config.network.architecture}"
    comparison = comparison_for(config)
    result = comparison.run(config, CompareOptions(iterations, args.threads, out, args.save_network))
    print(comparison.format(result))
    print(f"written: {out / 'compare.json'}")
    return 0


def _compare_exchange(args: argparse.Namespace, ex: object) -> int:
    """``nestgrad compare --network FILE`` of a network that is not the classic one: NEST vs the general reference
    engine, over the file's iterations (or the first ``--iterations``)."""
    from nestgrad.comparison import exchange
    from nestgrad.comparison.spec_compare import SpecCase, compare_case, format_table

    batches = ex.batches()
    if args.iterations is not None:
        if args.iterations > len(batches):
            raise ConfigError(f"--iterations = {args.iterations}: the file holds data of {len(batches)} iterations")
        batches = batches[: args.iterations]
    if args.save_network:
        exchange.save(args.save_network, exchange.from_batches(ex.spec, batches, ex.meta))
        print(f"network written: {args.save_network}")
    out = pathlib.Path(args.out) if args.out else pathlib.Path("out") / "compare_network"
    result = compare_case(SpecCase(ex.spec, batches, dict(ex.meta)), threads=args.threads, out_dir=out)
    print(format_table(result))
    print(f"written: {out / 'compare.json'}")
    return 0


def _cmd_convert_network(args: argparse.Namespace) -> int:
    from nestgrad.comparison.exchange import convert_file

    print(f"written: {convert_file(args.old, args.new)}")


def _meta_out(args: argparse.Namespace) -> pathlib.Path:
    return pathlib.Path(args.out) if args.out else pathlib.Path("out") / pathlib.Path(args.config).stem


def _cmd_meta(args: argparse.Namespace) -> int:
    from nestgrad.meta import MetaConfig, MetaRun

    config = MetaConfig.from_toml(args.config)
    if args.generations is not None:
        import dataclasses

        _require_positive("--generations", args.generations)
        config = dataclasses.replace(config, generations=args.generations)
    MetaRun(config, _meta_out(args)).run(resume=args.resume, overwrite=args.overwrite)
    return 0


def _cmd_meta_test(args: argparse.Namespace) -> int:
    from nestgrad.meta import MetaConfig, MetaTest
    from nestgrad.meta.metatest import format_table

    config = MetaConfig.from_toml(args.config)
    if args.tasks is not None:
        _require_positive("--tasks", args.tasks)
    if args.iterations is not None:
        import dataclasses

        _require_positive("--iterations", args.iterations)
        config = dataclasses.replace(config, test=dataclasses.replace(config.test, iterations=args.iterations))
    out = _meta_out(args)
    report = MetaTest(config, out, tasks=args.tasks).run()
    print(format_table(report), end="")
    print(f"written: {out / 'meta_test.md'}, {out / 'meta_test.json'}, {out / 'meta_test.png'}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    import nestgrad

    models = nestgrad.models()
    width = max(len(m.name) for m in models) + 2
    for m in models:
        print(f"{m.name:{width}s} {m.kind:8s} {m.language:7s} {m.source}")
    return 0


def _cmd_export_nir(args: argparse.Namespace) -> int:
    from nestgrad import nir_io

    out = pathlib.Path(args.out)
    if out.suffix != ".nir":
        raise ConfigError(f"output file {out}: the name must end in .nir")
    graph = nir_io.graph_from_run(args.run, args.dt)
    nir_io.write_graph(graph, out)
    dt_ms = float(graph.metadata["dt"]) * 1e3
    print(f"NIR graph written: {out} ({len(graph.nodes)} nodes, time step {dt_ms:g} ms)")
    return 0


def _cmd_import_nir(args: argparse.Namespace) -> int:
    from nestgrad import nir_io
    from nestgrad.nest_engine import fresh_kernel, wiring

    graph = nir_io.read_graph(args.graph)
    from nestgrad.config import OptimizerConfig

    if nir_io.is_eventprop_graph(graph):
        return _import_eventprop_graph(args, graph)
    optimizer = OptimizerConfig(eta=args.eta).nest_dict() if args.trainable else None
    spec = nir_io.graph_to_spec(graph, args.dt, trainable=args.trainable, optimizer=optimizer)
    nest = fresh_kernel(spec.resolution)
    built = wiring.build(nest, spec)  # NEST accepts every model, parameter and connection: ready to run
    print(f"NIR graph {args.graph}: built in NEST at a resolution of {spec.resolution:g} ms")
    for pop in spec.populations.values():
        print(f"  population {pop.name:16s} {pop.model:22s} {pop.size:6d} neurons ({pop.role.value})")
    for name, proj in spec.projections.items():
        kind = "e-prop" if proj.plastic_mask().any() else "static" if proj.kind == "spike" else proj.kind.value
        print(f"  projection {name:16s} {proj.source} -> {proj.target}: {proj.size} synapses ({kind})")
    del built
    return 0


def _import_eventprop_graph(args: argparse.Namespace, graph: object) -> int:
    """A graph with CubaLI readouts (an EventProp network's): built with NEST's EventProp models, as
    nest_engine.eventprop runs and trains it (one empty trial here: the inputs come with the trials)."""
    import numpy as np

    from nestgrad import nir_io
    from nestgrad.nest_engine import eventprop as engine
    from nestgrad.reference.eventprop import Trial

    if args.trainable:
        raise ConfigError("--trainable adds e-prop synapses, but this graph's CubaLI readouts have an exponential "
                          "current, which only the EventProp models have: it imports as an EventProp network, "
                          "trained with nestgrad.nest_engine.eventprop.run_training (docs/nir.md)")  # fmt: skip
    imported = nir_io.graph_to_eventprop(graph, args.dt)
    net, resolution = imported.network, imported.dt * 1e3
    inputs = {p.name: [[] for _ in range(p.size)] for p in net.populations if p.kind == "input"}
    built = engine.build(net, [Trial(inputs)], resolution=resolution)  # NEST accepts every parameter and delay
    readout = f", readout: cross-entropy on the {imported.loss.mode!r} value" if imported.loss is not None else ""
    print(f"NIR graph {args.graph}: EventProp network built in NEST at a resolution of {resolution:g} ms, trials of "
          f"{net.T:g} ms{readout}")  # fmt: skip
    for pop in net.populations:
        print(f"  population {pop.name:16s} {nir_io.EVENTPROP_MODELS[pop.kind]:26s} {pop.size:6d} neurons ({pop.kind})")
    for proj in net.projections:
        delay = float(np.max(proj.delays)) if np.size(proj.delays) else 0.0
        print(f"  projection {proj.name:16s} {proj.source} -> {proj.target}: {len(proj.sources)} synapses "
              f"(eventprop_synapse, delay {delay:g} ms)")  # fmt: skip
    del built
    return 0


def _require_positive(option: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{option} = {value}: an integer >= 1 is required")


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

    ev = sub.add_parser(
        "evaluate",
        help="test trained weights on new trials, learning off",
        description="Load the checkpoint of a training run and measure loss and accuracy on batches the training "
        "never drew, with every learning rate set to 0. Writes evaluation.json to the output folder.",
    )
    ev.add_argument("config", help="the configuration the run was trained with (.toml)")
    ev.add_argument("--out", help="the run's output folder (default: out/<config name>)")
    ev.add_argument("--batches", type=int, default=10, help="number of test batches (default 10)")
    ev.add_argument("--initial", action="store_true", help="evaluate the untrained network (the baseline)")
    ev.add_argument(
        "--final-weights",
        action="store_true",
        help="with training.average_weights_last: evaluate the last weights instead of their mean",
    )
    ev.set_defaults(func=_cmd_evaluate)

    cmp = sub.add_parser(
        "compare",
        help="check NEST's e-prop weight updates against the reference engine (and e-prop vs BPTT)",
        description="Run one network in NEST and in nestgrad's NumPy reference engine; report per projection the "
        "relative error of NEST's weight updates, the similarity of e-prop and BPTT gradients, and the "
        "losses per iteration. Writes DIR/compare.json and plots.",
    )
    cmp.add_argument("--task", choices=["sine", "evidence"], help="build the classic e-prop network for this task")
    cmp.add_argument("--neuron", default="eprop_iaf_psc_exp", help="recurrent e-prop model (with --task)")
    cmp.add_argument("--n-rec", type=int, default=100, help="recurrent neurons (with --task)")
    cmp.add_argument(
        "--gradient-algorithm",
        choices=["step", "event"],
        default="step",
        help="NEST side: eprop_synapse (step) or eprop_event_synapse (event) into the recurrent neurons (with --task)",
    )
    cmp.add_argument("--optimizer", choices=["gradient_descent", "adam"], default="gradient_descent")
    cmp.add_argument("--eta", type=float, help="learning rate (default 1e-5; 1e-7 for the psc_delta models)")
    cmp.add_argument(
        "--config",
        help="a training configuration (.toml) instead of --task: classic or v1 network (e.g. "
        "python/nestgrad/configs/compare_v1_small.toml)",
    )
    cmp.add_argument(
        "--network",
        help="an exchange file (.npz, written by --save-network; see docs/reference_engine.md) instead of --task",
    )
    cmp.add_argument(
        "--iterations",
        type=int,
        help="iterations with learning on (default 5; with --config of a v1 network: its training.iterations)",
    )
    cmp.add_argument("--threads", type=int, default=1, help="NEST threads")
    cmp.add_argument("--save-network", help="also write the compared network and its data to this exchange file")
    cmp.add_argument("--out", help="output folder (default out/compare_<model>)")
    cmp.set_defaults(func=_cmd_compare)

    conv = sub.add_parser(
        "convert-network",
        help="rewrite an old classic network file (.npz, format 1) in the exchange format",
        description="Rewrite a network file of the old format (dense matrices of the classic network, written by "
        "`nestgrad compare --save-network` before the exchange format) as an exchange file (a nestgrad spec and "
        "its data).",
    )
    conv.add_argument("old", help="the old network file")
    conv.add_argument("new", help="the exchange file to write")
    conv.set_defaults(func=_cmd_convert_network)

    exp = sub.add_parser(
        "export-nir",
        help="write a trained network as a NIR graph (for other simulators and neuromorphic hardware)",
        description="Export the network of a training run (its checkpoint's weights) as a NIR graph: CubaLIF, LIF "
        "and LI nodes (EventProp: CubaLIF and CubaLI) with Linear weights; time constants in s, potentials in mV, "
        "the time step as the graph's metadata 'dt'. Mapping and limits: docs/nir.md.",
    )
    exp.add_argument("run", help="a run folder (with checkpoint.npz) or a checkpoint file")
    exp.add_argument("out", help="the NIR file to write (.nir)")
    exp.add_argument("--dt", type=float, help="time step (s) to write the graph for: EventProp networks only (exact "
                     "in continuous time; default NEST's resolution), e.g. 1e-4 for snnTorch")  # fmt: skip
    exp.set_defaults(func=_cmd_export_nir)

    imp = sub.add_parser(
        "import-nir",
        help="build a NIR graph as a NEST network (checks every node maps, prints the network)",
        description="Read a NIR graph of Input, Output, Linear/Affine, CubaLIF, LIF and LI nodes, map it to a "
        "nestgrad network specification and build it in NEST (Python: nestgrad.nir_io.graph_to_spec); a graph with "
        "CubaLI readouts becomes an EventProp network (nestgrad.nir_io.graph_to_eventprop). "
        "Mapping and limits: docs/nir.md.",
    )
    imp.add_argument("graph", help="the NIR file (.nir)")
    imp.add_argument("--dt", type=float, help="time step (s) the graph was written for, if its metadata lacks 'dt' "
                     "(snnTorch: 1e-4)")  # fmt: skip
    imp.add_argument("--trainable", action="store_true", help="e-prop synapses and learning signals (needs an LI)")
    imp.add_argument("--eta", type=float, default=1e-4, help="learning rate with --trainable (default 1e-4)")
    imp.set_defaults(func=_cmd_import_nir)
    meta = sub.add_parser(
        "meta",
        help="learning to learn: search settings that make training learn faster on a task family",
        description="Outer loop (CMA-ES) over inner nestgrad trainings: a meta configuration ([meta] table: task "
        "family, search space, inner budget, executor; docs/meta_learning.md). Writes meta_state.json (resumable), "
        "meta_progress.csv/png and meta_best.json to the output folder.",
    )
    meta.add_argument("config", help="meta configuration (.toml); example: python/nestgrad/configs/meta/meta_sine.toml")
    meta.add_argument("--out", help="output folder (default: out/<config name>)")
    meta.add_argument("--resume", action="store_true", help="continue the outer loop saved in the output folder")
    meta.add_argument("--overwrite", action="store_true", help="replace an earlier outer loop in the output folder")
    meta.add_argument("--generations", type=int, help="override meta.generations")
    meta.set_defaults(func=_cmd_meta)

    mt = sub.add_parser(
        "meta-test",
        help="compare the learned settings with the defaults on unseen tasks of the family",
        description="Train the base configuration (defaults) and the best settings of `nestgrad meta` on unseen "
        "tasks of the family with the same inner budget; report iterations to the criterion, their spread and "
        "wall-clock (meta_test.md, meta_test.json, meta_test.png in the output folder).",
    )
    mt.add_argument("config", help="the meta configuration the outer loop ran with (.toml)")
    mt.add_argument("--out", help="the outer loop's output folder (default: out/<config name>)")
    mt.add_argument("--tasks", type=int, help="override meta.test.tasks")
    mt.add_argument("--iterations", type=int, help="override meta.test.iterations (the inner budget of both settings)")
    mt.set_defaults(func=_cmd_meta_test)

    models = sub.add_parser(
        "models",
        help="list the models of nestgradmodule",
        description="List the neuron and synapse models that nestgradmodule registers in NEST.",
    )
    models.set_defaults(func=_cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; an error the user can cause (NestgradError) prints one line ``nestgrad <command>: <message>``
    and returns 2, anything else (a bug) keeps its traceback. Under MPI an error that not every rank raised ends
    the whole job (MPI_Abort) after printing, so that no rank waits for the others forever."""
    from nestgrad.parallel import abort_job, world

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except NestgradError as err:  # what a user can cause: one line; anything else is a bug (traceback)
        rank, size = world()
        every_rank = getattr(err, "all_ranks", False)
        if rank == 0 or not every_rank:
            print(f"nestgrad {args.command}: {err}", file=sys.stderr, flush=True)
        if size > 1 and not every_rank:
            abort_job(2)
        return 2


if __name__ == "__main__":
    sys.exit(main())
