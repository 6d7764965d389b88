"""Training a network and measuring its robustness to noise: train and robustness."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .args import (
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    SEED,
    bounded,
    device_arguments,
    device_of,
    json_arg,
    json_object,
    load_chip_config,
    model_arguments,
    parse_sigmas,
)


def _zoo_kwargs(model: str, split, given: dict) -> dict:
    """Defaults for a zoo model from the data: channels, image size, classes (given ones win)."""
    channels, height, width = (split.input_shape + (1, 1))[:3] if len(split.input_shape) == 3 else (1, 1, split.input_shape[-1])
    defaults = {
        "mlp": {"in_features": int(np.prod(split.input_shape)), "num_classes": split.num_classes},
        "lenet5": {"in_channels": channels, "image_size": height, "num_classes": split.num_classes},
        "vgg11": {"in_channels": channels, "image_size": height, "num_classes": split.num_classes},
        "resnet18": {"in_channels": channels, "num_classes": split.num_classes},
        "lstm": {"input_size": width * channels, "num_classes": split.num_classes},
        "gru": {"input_size": width * channels, "num_classes": split.num_classes},
    }.get(model, {})
    return {**defaults, **given}


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from ..models import data
    from ..models.checkpoint import build_model, load_network, save_checkpoint
    from ..models.quant import QATConfig
    from ..models.training import TrainConfig, accuracy, train

    split = data.load(args.data)  # the split every command uses: --seed changes the training, not which samples are test
    kwargs = _zoo_kwargs(args.model, split, json_arg(args.model_args)) if ":" not in args.model else json_arg(args.model_args)
    torch.manual_seed(args.seed)
    model = build_model(args.model, kwargs)
    teacher = load_network(args.distill, allow_pickle=args.allow_pickle) if args.distill else None
    cfg = TrainConfig(
        epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
        noise_sigma=args.noisy, noise_mode=args.noise_mode,
        qat=QATConfig(args.qat, not args.asymmetric, args.scale) if args.qat else None,
        weight_noise_eta=args.weight_noise, bayesft_sigma=args.bayesft,
        gate_noise_sigma=args.gate_noise, gate_noise_relative=args.gate_noise_relative,
        distill_temperature=args.temperature, distill_beta=args.beta,
        hwa=load_chip_config(args.hwa) if args.hwa else None,
    )  # fmt: skip
    losses = train(model, split, cfg, teacher=teacher, device=device_of(args.device))
    print(f"trained {args.model} on {split.name} ({args.device}): final loss {losses[-1]:.4f}, "
          f"clean test accuracy {100 * accuracy(model, split.x_test, split.y_test):.2f}%")  # fmt: skip
    save_checkpoint(model, args.output)
    print(f"wrote {args.output}")
    return 0



def cmd_robustness(args: argparse.Namespace) -> int:
    from ..models import data
    from ..models.checkpoint import load_network
    from ..sweeps.metrics import NoMidpointError, noise_curve
    from ..sweeps.noise_kinds import parse_noise_kind
    from ..sweeps.plots import plot_noise_curves

    noise = parse_noise_kind(args.noise, args.mode, args.where, args.backend)
    network = load_network(args.checkpoint, args.model, json_arg(args.model_args), args.allow_pickle).to(device_of(args.device))
    split = data.load(args.data)
    print(f"noise: {noise.describe()}; {args.repeats} repeats per {noise.level_name}, seed {args.seed}")
    curve = noise_curve(network, split.x_test, split.y_test, args.sigmas, args.repeats, noise, args.seed, progress=True)
    print(f"{noise.level_name:>10} {'accuracy':>9} {'std':>7}")
    for sigma, mean, std in zip(curve.sigmas, curve.mean, curve.std):
        print(f"{sigma:>10.4g} {100 * mean:>8.2f}% {100 * std:>6.2f}%")
    try:
        fit = curve.midpoint()
        print(f"midpoint {noise.level_name} ({args.noise}): {fit.sigma_mid:.4g} ± {fit.sigma_mid_err:.2g}")
    except NoMidpointError as exc:
        print(f"midpoint {noise.level_name} ({args.noise}): none ({exc})")
    path = plot_noise_curves({Path(args.checkpoint).stem: curve}, args.plot, f"{split.name}: {noise.describe()}, vs {noise.level_name}",
                             noise.level_name)
    print(f"wrote {path}")
    return 0



def add_train(sub: argparse._SubParsersAction) -> None:
    """``xbarsim train``."""
    train_cmd = sub.add_parser("train", help="train a network, optionally with robustness options")
    train_cmd.add_argument("--model", required=True, help="zoo name (mlp, lenet5, vgg11, resnet18, lstm, gru) or package.module:Class")
    train_cmd.add_argument("--model-args", type=json_object, help="JSON object of constructor arguments (zoo defaults come from the data)")
    train_cmd.add_argument("--data", default="digits", help="digits, synthetic, mnist:PATH or cifar10:PATH")
    train_cmd.add_argument("--epochs", type=POSITIVE_INT, default=30, help="passes over the training split")
    train_cmd.add_argument("--lr", type=POSITIVE, default=2e-3, help="Adam learning rate")
    train_cmd.add_argument("--batch-size", type=POSITIVE_INT, default=64, help="training images per step")
    train_cmd.add_argument("--seed", type=SEED, default=0, help="seed of the weights, the batches and the noise")
    train_cmd.add_argument("--noisy", type=NON_NEGATIVE, default=0.0, metavar="SIGMA", help="noisy training: activation noise after every module")
    train_cmd.add_argument("--noise-mode", default="additive", choices=["additive", "multiplicative", "both"], help="how --noisy noise enters")
    train_cmd.add_argument("--qat", type=bounded(int, 2, 16), metavar="BITS", help="quantization-aware training with this many bits")
    train_cmd.add_argument("--scale", default="dynamic", help="QAT activation scale: dynamic or const:<max>")
    train_cmd.add_argument("--asymmetric", action="store_true", help="asymmetric QAT quantizers (default symmetric)")
    train_cmd.add_argument("--weight-noise", type=NON_NEGATIVE, default=0.0, metavar="ETA", help="Noisy Machines weight noise eta")
    train_cmd.add_argument("--bayesft", type=NON_NEGATIVE, default=0.0, metavar="SIGMA", help="BayesFT log-normal weight perturbation")
    train_cmd.add_argument("--gate-noise", type=NON_NEGATIVE, default=0.0, metavar="SIGMA", help="deep noise injection at RNN gates")
    train_cmd.add_argument("--gate-noise-relative", action="store_true", help="gate noise relative to the pre-activation std")
    train_cmd.add_argument("--distill", metavar="TEACHER", help="distil from this trained checkpoint")
    train_cmd.add_argument("--temperature", type=POSITIVE, default=4.0, help="distillation temperature")
    train_cmd.add_argument("--beta", type=FRACTION, default=0.5, help="weight of the distillation term")
    train_cmd.add_argument("--hwa", metavar="CHIP", help="hardware-aware training on this preset or chip YAML")
    train_cmd.add_argument("--allow-pickle", action="store_true", help="let --distill load a pickled module (trusted files only)")
    device_arguments(train_cmd, "the training", backend=False)
    train_cmd.add_argument("-o", "--output", required=True, help="checkpoint to write")
    train_cmd.set_defaults(func=cmd_train)


def add_robustness(sub: argparse._SubParsersAction) -> None:
    """``xbarsim robustness``."""
    rob = sub.add_parser("robustness", help="accuracy vs one kind of noise, its midpoint level and a plot")
    rob.add_argument("checkpoint", help="trained checkpoint (xbarsim checkpoint or state_dict)")
    rob.add_argument("--data", default="digits", help="digits, synthetic, mnist:PATH or cifar10:PATH")
    rob.add_argument("--noise", default="activation",
                     help="what to sweep: activation (after modules), gate or gate:relative (RNN gate pre-activations), "
                          "weight (eta x each layer's weight range), bayesft (log-normal sigma on every parameter), "
                          "chip:PRESET or chip:FILE (the chip's device noise scale)")  # fmt: skip
    rob.add_argument("--sigmas", type=parse_sigmas, default="logspace(-2, 2, 17)",
                     help="noise levels (sigma, eta or scale): logspace(a, b, n) or a comma-separated list")  # fmt: skip
    rob.add_argument("--repeats", type=POSITIVE_INT, default=10, help="noise draws per noise level")
    rob.add_argument("--seed", type=SEED, default=0, help="noise seed: one seed, one curve")
    rob.add_argument("--mode", choices=["additive", "multiplicative", "both"], help="activation noise only (default additive)")
    rob.add_argument("--where", help="activation noise only: all (default), or comma-separated module names")
    model_arguments(rob, "the model, for a plain state_dict")
    rob.add_argument("--allow-pickle", action="store_true", help="load a pickled module (trusted files only)")
    device_arguments(rob, "the network (and with chip noise its chip)")
    rob.add_argument("--plot", default="robustness.png", help="figure to write (.png or .pdf)")
    rob.set_defaults(func=cmd_robustness)
