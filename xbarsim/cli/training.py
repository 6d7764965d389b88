"""Training a network and measuring its robustness to noise: train and robustness."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import XbarsimError
from ..limits import DEFAULT_MAX_WORK
from .args import (
    BATCH,
    EPOCHS,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    REPEATS,
    SEED,
    WORK,
    bounded,
    device_arguments,
    device_of,
    json_arg,
    json_object,
    load_chip_config,
    model_arguments,
    parse_sigmas,
    user_model,
)


def _zoo_kwargs(model: str, split, given: dict) -> dict:
    """Defaults for a zoo model from the data: channels, image size, classes, vocabulary, context (given ones win)."""
    channels, height, width = (split.input_shape + (1, 1))[:3] if len(split.input_shape) == 3 else (1, 1, split.input_shape[-1])
    language = {"vocab_size": split.num_classes}
    defaults = {
        "mlp": {"in_features": int(np.prod(split.input_shape)), "num_classes": split.num_classes},
        "lenet5": {"in_channels": channels, "image_size": height, "num_classes": split.num_classes},
        "vgg11": {"in_channels": channels, "image_size": height, "num_classes": split.num_classes},
        "resnet18": {"in_channels": channels, "num_classes": split.num_classes},
        "lstm": {"input_size": width * channels, "num_classes": split.num_classes},
        "gru": {"input_size": width * channels, "num_classes": split.num_classes},
        "vit": {"in_channels": channels, "image_size": height, "num_classes": split.num_classes, "patch_size": 2 if height <= 16 else 4},
        "chargpt": {**language, "context": split.input_shape[-1]},
        "charlstm": language,
        "chargru": language,
    }.get(model, {})
    return {**defaults, **given}


def _trained(args: argparse.Namespace, split, seed: int):
    """The network ``args`` describe (``--model``, ``--model-args``) trained by the recipe in
    ``args`` (``add_recipe_arguments``) on ``split`` from ``seed``."""
    import torch

    from ..models.checkpoint import describable, load_network
    from ..models.quant import QATConfig
    from ..models.training import TrainConfig, train
    from ..models.usercode import is_class_path

    kwargs = json_arg(args.model_args) if is_class_path(args.model) else _zoo_kwargs(args.model, split, json_arg(args.model_args))
    torch.manual_seed(seed)
    model = user_model(args.model, kwargs)
    describable(model)  # a network the checkpoint cannot describe is refused before training, not after
    teacher = load_network(args.distill, allow_pickle=args.allow_pickle) if args.distill else None
    cfg = TrainConfig(
        epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=seed,
        noise_sigma=args.noisy, noise_mode=args.noise_mode,
        qat=QATConfig(args.qat, not args.asymmetric, args.scale) if args.qat else None,
        weight_noise_eta=args.weight_noise, bayesft_sigma=args.bayesft,
        gate_noise_sigma=args.gate_noise, gate_noise_relative=args.gate_noise_relative,
        distill_temperature=args.temperature, distill_beta=args.beta,
        hwa=load_chip_config(args.hwa) if args.hwa else None,
    )  # fmt: skip
    losses = train(model, split, cfg, teacher=teacher, device=device_of(args.device))
    return model, losses


def cmd_train(args: argparse.Namespace) -> int:
    from ..models import data
    from ..models.checkpoint import save_checkpoint
    from ..models.training import score

    split = data.load(args.data)  # the split every command uses: --seed changes the training, not which samples are test
    model, losses = _trained(args, split, args.seed)
    value = score(model, split.x_test, split.y_test, split.metric)
    shown = f"{value:.4f} bits per character" if split.metric == "bpc" else f"accuracy {100 * value:.2f}%"
    print(f"trained {args.model} on {split.name} ({args.device}): final loss {losses[-1]:.4f}, clean test {shown}")
    save_checkpoint(model, args.output)
    print(f"wrote {args.output}")
    return 0


def cmd_robustness(args: argparse.Namespace) -> int:
    from ..limits import check_work
    from ..models import data
    from ..models.checkpoint import load_network
    from ..models.training import score
    from ..sweeps.metrics import noise_curve
    from ..sweeps.noise_kinds import parse_noise_kind
    from ..sweeps.plots import plot_noise_curves

    noise = parse_noise_kind(args.noise, args.mode, args.where, args.backend)
    split = data.load(args.data)
    tests, count = len(split.y_test), args.train_seeds or 1
    check_work(count * len(args.sigmas) * args.repeats * tests, args.max_work, "this robustness run",
               f"{f'{count} networks x ' if count > 1 else ''}{len(args.sigmas)} levels x {args.repeats} repeats x {tests:,} test samples")  # fmt: skip
    if args.train_seeds is None:
        if args.checkpoint is None:
            raise XbarsimError("give a CHECKPOINT, or --train-seeds N with --model to train N networks and measure each")
        network = load_network(args.checkpoint, user_model(args.model, args.model_args), allow_pickle=args.allow_pickle).to(device_of(args.device))
        networks = {Path(args.checkpoint).stem: network}
    else:
        if args.checkpoint is not None or not args.model:
            raise XbarsimError("--train-seeds trains its own networks: give --model and the training options, not a CHECKPOINT")
        seeds = range(args.seed, args.seed + args.train_seeds)
        print(f"training {args.train_seeds} {args.model} network(s) on {split.name}, seeds {seeds[0]}..{seeds[-1]}")
        networks = {f"seed {seed}": _trained(args, split, seed)[0] for seed in seeds}
    print(f"noise: {noise.describe()}; {args.repeats} repeats per {noise.level_name}, noise seed {args.seed}")
    curves, rows = {}, []
    for label, network in networks.items():
        curve = curves[label] = noise_curve(network, split.x_test, split.y_test, args.sigmas, args.repeats, noise, args.seed, progress=True,
                                            metric=split.metric)  # fmt: skip
        rows.append(_robustness_lines(label if len(networks) > 1 else None, curve, score(network, split.x_test, split.y_test, split.metric),
                                      noise.level_name, args))  # fmt: skip
    if len(networks) > 1:
        _seed_summary(rows, noise.level_name, args)
    title = f"{split.name}: {noise.describe()}, vs {noise.level_name}"
    path = plot_noise_curves(curves, args.plot, title, noise.level_name)
    print(f"wrote {path}")
    return 0


def _robustness_lines(label: str | None, curve, clean: float, level_name: str, args: argparse.Namespace) -> tuple[float | None, float | None]:
    """Print one network's table, midpoint and level at the fixed drop (accuracy ``args.drop`` lower, or bits per
    character ``args.drop`` higher, than ``clean``); return (midpoint, level) or Nones."""
    from ..sweeps.metrics import NoMidpointError

    bpc = not curve.higher_is_better
    if label is not None:
        print(f"\n{label}: float test " + (f"{clean:.4f} bits per character" if bpc else f"accuracy {100 * clean:.2f}%"))
    print(f"{level_name:>10} {'BPC' if bpc else 'accuracy':>9} {'std':>7}")
    for sigma, mean, std in zip(curve.sigmas, curve.mean, curve.std):
        print(f"{sigma:>10.4g} {mean:>9.4f} {std:>7.4f}" if bpc else f"{sigma:>10.4g} {100 * mean:>8.2f}% {100 * std:>6.2f}%")
    worse = (f"{args.drop:g} bits per character above the float network's ({clean + args.drop:.4f})" if bpc
             else f"{100 * args.drop:g} points below the float accuracy ({100 * (clean - args.drop):.2f}%)")  # fmt: skip
    found: list[float | None] = []
    for what, measure in ((f"midpoint {level_name} ({args.noise})", lambda: _pair(curve.midpoint())),
                          (f"{level_name} at {worse}", lambda: curve.level_at_drop(clean, args.drop))):  # fmt: skip
        try:
            value, err = measure()
            print(f"{what}: {value:.4g} ± {err:.2g}")
            found.append(value)
        except NoMidpointError as exc:
            print(f"{what}: none ({exc})")
            found.append(None)
    return found[0], found[1]


def _pair(fit) -> tuple[float, float]:
    return fit.sigma_mid, fit.sigma_mid_err


def _seed_summary(rows: list[tuple[float | None, float | None]], level_name: str, args: argparse.Namespace) -> None:
    """Mean ± standard error over training seeds of the midpoint and of the level at the drop."""
    from ..sweeps.metrics import mean_and_error

    print(f"\nover {len(rows)} training seeds (mean ± standard error, from the seeds that have one):")
    for index, what in enumerate((f"midpoint {level_name}", f"{level_name} at {100 * args.drop:g} points below the float accuracy")):
        values = [row[index] for row in rows if row[index] is not None]
        per_seed = ", ".join("none" if row[index] is None else f"{row[index]:.4g}" for row in rows)
        if not values:
            print(f"  {what}: none (per seed: {per_seed})")
            continue
        mean, error = mean_and_error(values)
        spread = f" ± {error:.2g}" if len(values) > 1 else " (one seed)"
        print(f"  {what}: {mean:.4g}{spread} ({len(values)} of {len(rows)} seeds; per seed: {per_seed})")


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """How a network is trained: the options ``train`` and ``robustness --train-seeds`` share."""
    parser.add_argument("--epochs", type=EPOCHS, default=30, help="passes over the training split")
    parser.add_argument("--lr", type=POSITIVE, default=2e-3, help="Adam learning rate")
    parser.add_argument("--batch-size", type=BATCH, default=64, help="training images per step")
    parser.add_argument("--noisy", type=NON_NEGATIVE, default=0.0, metavar="SIGMA", help="noisy training: activation noise after every module")
    parser.add_argument("--noise-mode", default="additive", choices=["additive", "multiplicative", "both"], help="how --noisy noise enters")
    parser.add_argument("--qat", type=bounded(int, 2, 16), metavar="BITS", help="quantization-aware training with this many bits")
    parser.add_argument("--scale", default="dynamic", help="QAT activation scale: dynamic or const:<max>")
    parser.add_argument("--asymmetric", action="store_true", help="asymmetric QAT quantizers (default symmetric)")
    parser.add_argument("--weight-noise", type=NON_NEGATIVE, default=0.0, metavar="ETA", help="Noisy Machines weight noise eta")
    parser.add_argument("--bayesft", type=NON_NEGATIVE, default=0.0, metavar="SIGMA", help="BayesFT log-normal weight perturbation")
    parser.add_argument("--gate-noise", type=NON_NEGATIVE, default=0.0, metavar="SIGMA", help="deep noise injection at RNN gates")
    parser.add_argument("--gate-noise-relative", action="store_true", help="gate noise relative to the pre-activation std")
    parser.add_argument("--distill", metavar="TEACHER", help="distil from this trained checkpoint")
    parser.add_argument("--temperature", type=POSITIVE, default=4.0, help="distillation temperature")
    parser.add_argument("--beta", type=FRACTION, default=0.5, help="weight of the distillation term")
    parser.add_argument("--hwa", metavar="CHIP", help="hardware-aware training on this preset or chip YAML")


def add_train(sub: argparse._SubParsersAction) -> None:
    """``xbarsim train``."""
    train_cmd = sub.add_parser("train", help="train a network, optionally with robustness options")
    train_cmd.add_argument("--model", required=True, help="zoo name (mlp, lenet5, vgg11, resnet18, lstm, gru, vit; for text: "
                           "chargpt, charlstm, chargru) or package.module:Class (a module in the working folder is found, "
                           "as with python -m)")  # fmt: skip
    train_cmd.add_argument("--model-args", type=json_object, help="JSON object of constructor arguments (zoo defaults come from the data)")
    train_cmd.add_argument("--data", default="digits", help="digits, synthetic, mnist:PATH, cifar10:PATH, pydoc or text:PATH")
    train_cmd.add_argument("--seed", type=SEED, default=0, help="seed of the weights, the batches and the noise")
    add_recipe_arguments(train_cmd)
    train_cmd.add_argument("--allow-pickle", action="store_true", help="let --distill load a pickled module (trusted files only)")
    device_arguments(train_cmd, "the training", backend=False)
    train_cmd.add_argument("-o", "--output", required=True, help="checkpoint to write")
    train_cmd.set_defaults(func=cmd_train)


def add_robustness(sub: argparse._SubParsersAction) -> None:
    """``xbarsim robustness``."""
    rob = sub.add_parser("robustness", help="accuracy vs one kind of noise, its midpoint level and a plot")
    rob.add_argument("checkpoint", nargs="?", help="trained checkpoint (xbarsim checkpoint or state_dict); or none, with --train-seeds")
    rob.add_argument("--data", default="digits", help="digits, synthetic, mnist:PATH, cifar10:PATH, pydoc or text:PATH "
                     "(text: the curve and its midpoint are in bits per character)")  # fmt: skip
    rob.add_argument("--noise", default="activation",
                     help="what to sweep: activation (after modules), gate or gate:relative (RNN gate pre-activations), "
                          "weight (eta x each layer's weight range), bayesft (log-normal sigma on every parameter), "
                          "chip:PRESET or chip:FILE (the chip's device noise scale)")  # fmt: skip
    rob.add_argument("--sigmas", type=parse_sigmas, default="logspace(-2, 2, 17)",
                     help="noise levels (sigma, eta or scale): logspace(a, b, n) or a comma-separated list")  # fmt: skip
    rob.add_argument("--repeats", type=REPEATS, default=10, help="noise draws per noise level")
    rob.add_argument("--seed", type=SEED, default=0, help="noise seed: one seed, one curve (and the first training seed)")
    rob.add_argument("--drop", type=bounded(float, 0, 1, above=True), default=0.05,
                     help="also report the level where the accuracy is this far below the float network's (bits per "
                          "character: this far above)")  # fmt: skip
    rob.add_argument("--max-work", type=WORK, default=DEFAULT_MAX_WORK, metavar="N",
                     help="refuse a run of more than N network evaluations (networks x levels x repeats x test samples)")
    rob.add_argument("--train-seeds", type=bounded(int, 1, 1000), metavar="N",
                     help="train N networks of --model with the training options below (seeds --seed .. --seed + N - 1) and "
                          "report each, and the mean ± standard error over them")  # fmt: skip
    rob.add_argument("--mode", choices=["additive", "multiplicative", "both"], help="activation noise only (default additive)")
    rob.add_argument("--where", help="activation noise only: all (default), or comma-separated module names")
    model_arguments(rob, "the model, for a plain state_dict")
    rob.add_argument("--allow-pickle", action="store_true", help="load a pickled module (trusted files only)")
    device_arguments(rob, "the network (and with chip noise its chip)")
    rob.add_argument("--plot", default="robustness.png", help="figure to write (.png or .pdf)")
    add_recipe_arguments(rob.add_argument_group("training, with --train-seeds"))
    rob.set_defaults(func=cmd_robustness)
