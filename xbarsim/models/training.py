"""Training and evaluating torch networks: one loop (Adam, cosine schedule, progress bar, seed)
with composable robustness options, for classifiers (logits (B, classes)) and language models (logits
(B, T, vocab) for targets (B, T): every position is a prediction); accuracy and bits per character."""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..config import ChipConfig
from ..limits import MAX_BATCH, MAX_EPOCHS, check_seed
from .data import DataSplit
from .hwa import HardwareAware
from .noise import NOISE_MODES, GateNoise, NoiseInjection
from .perturb import LogNormalPerturbation, WeightNoise
from .quant import QATConfig, QuantizationAware


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; every robustness option is off by default and they combine freely."""

    epochs: int = 30
    lr: float = 2e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    seed: int = 0
    noise_sigma: float = 0.0  # noisy training: activation noise after every module, as at test time
    noise_mode: str = "additive"
    qat: QATConfig | None = None  # fake quantization; stays on the model after training
    weight_noise_eta: float = 0.0  # Noisy Machines: sigma_l = eta * (max W_l - min W_l), every forward
    distill_temperature: float = 4.0  # with a teacher: L = (1-beta) CE + beta T^2 CE(soft targets)
    distill_beta: float = 0.5
    bayesft_sigma: float = 0.0  # BayesFT: theta * exp(N(0, sigma^2)), redrawn every step
    gate_noise_sigma: float = 0.0  # deep noise injection at every gate pre-activation (RNNs)
    gate_noise_relative: bool = False  # gate noise relative to the pre-activation's std (an SNR)
    hwa: ChipConfig | None = None  # hardware-aware: the chip's write/read noise and converters

    def __post_init__(self):
        for name, high in (("epochs", MAX_EPOCHS), ("batch_size", MAX_BATCH)):
            if not 1 <= getattr(self, name) <= high:
                raise ValueError(f"{name} must be from 1 to {high:,}, got {getattr(self, name)}")
        check_seed(self.seed)
        for name in ("lr", "noise_sigma", "weight_noise_eta", "bayesft_sigma", "gate_noise_sigma", "weight_decay"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode {self.noise_mode!r}: choose from {', '.join(NOISE_MODES)}")
        if not (self.distill_temperature > 0 and 0 <= self.distill_beta <= 1):
            raise ValueError("distillation needs temperature > 0 and 0 <= beta <= 1")


def predictions(logits: torch.Tensor) -> torch.Tensor:
    """Logits (B, classes) or, for a language model, (B, T, vocab) as one prediction a row: (B * T, vocab)."""
    return logits.flatten(0, -2)


def distillation_terms(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The two cross-entropies of distillation: ``CE(z_s, y)`` against the labels and the soft
    ``CE(softmax(z_t / T), z_s / T)`` against the teacher (means over the predictions, nats)."""
    student, teacher, labels = predictions(student), predictions(teacher), labels.flatten()
    soft = F.softmax(teacher / temperature, dim=1)
    soft_ce = -(soft * F.log_softmax(student / temperature, dim=1)).sum(dim=1).mean()
    return F.cross_entropy(student, labels), soft_ce


def combined_loss(hard_ce, soft_ce, temperature: float, beta: float):
    """``(1 - beta) hard_ce + beta T^2 soft_ce`` (tensors or floats)."""
    return (1 - beta) * hard_ce + beta * temperature**2 * soft_ce


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float, beta: float) -> torch.Tensor:
    """``(1 - beta) CE(z_s, y) + beta T^2 CE(softmax(z_t / T), z_s / T)``."""
    return combined_loss(*distillation_terms(student, teacher, labels, temperature), temperature, beta)


@dataclass
class DistillationParts:
    """An epoch's mean distillation loss taken apart. The soft cross-entropy is the teacher's own
    entropy at temperature T (a floor no student can go below) plus the KL divergence from the
    teacher to the student, so a large loss at T > 1 is mostly that floor times beta T^2."""

    temperature: float
    beta: float
    samples: int = 0
    hard_ce: float = 0.0  # sums over the samples seen (``describe`` divides by ``samples``)
    soft_ce: float = 0.0
    teacher_entropy: float = 0.0
    agreeing: int = 0  # samples where the student's top class is the teacher's

    @torch.no_grad()
    def add(self, hard_ce: torch.Tensor, soft_ce: torch.Tensor, student: torch.Tensor, teacher: torch.Tensor) -> None:
        """Add a batch: its two cross-entropies (``distillation_terms``) and both networks' logits."""
        student, teacher = predictions(student), predictions(teacher)
        soft = F.softmax(teacher / self.temperature, dim=1)
        entropy = -(soft * F.log_softmax(teacher / self.temperature, dim=1)).sum(dim=1).mean()
        n = len(teacher)
        self.samples += n
        self.hard_ce += float(hard_ce) * n
        self.soft_ce += float(soft_ce) * n
        self.teacher_entropy += float(entropy) * n
        self.agreeing += int((student.argmax(dim=1) == teacher.argmax(dim=1)).sum())

    def describe(self) -> str:
        n = max(self.samples, 1)
        hard, soft, floor = self.hard_ce / n, self.soft_ce / n, self.teacher_entropy / n
        total = combined_loss(hard, soft, self.temperature, self.beta)
        return (f"distillation loss {total:.4f} = {1 - self.beta:g} x CE vs labels {hard:.4f} + {self.beta:g} x T^2 "
                f"({self.temperature**2:g}) x soft CE vs teacher {soft:.4f}\n"
                f"  soft CE = the teacher's entropy at T = {self.temperature:g} ({floor:.4f}: a floor no student goes below) "
                f"+ KL teacher->student ({soft - floor:.4f}); the student's top class is the teacher's on "
                f"{100 * self.agreeing / n:.1f}% of the last epoch's training samples")  # fmt: skip


def _perturbations(model: nn.Module, cfg: TrainConfig, stack: contextlib.ExitStack) -> LogNormalPerturbation | None:
    """Enter the training-time options; returns the BayesFT perturbation (resampled every step)."""
    if cfg.qat is not None:
        stack.enter_context(QuantizationAware(model, cfg.qat))
    if cfg.noise_sigma > 0:
        stack.enter_context(NoiseInjection(model, cfg.noise_sigma, "all", cfg.noise_mode))
    if cfg.weight_noise_eta > 0:
        stack.enter_context(WeightNoise(model, cfg.weight_noise_eta))
    if cfg.gate_noise_sigma > 0:
        stack.enter_context(GateNoise(model, cfg.gate_noise_sigma, cfg.gate_noise_relative))
    if cfg.hwa is not None:
        stack.enter_context(HardwareAware(model, cfg.hwa))
    return stack.enter_context(LogNormalPerturbation(model, cfg.bayesft_sigma)) if cfg.bayesft_sigma > 0 else None


def train(model: nn.Module, data: DataSplit, cfg: TrainConfig = TrainConfig(), teacher: nn.Module | None = None,
          progress: bool = True, device: torch.device | str | None = None) -> list[float]:  # fmt: skip
    """Train on ``data``'s train split (cross-entropy, or distillation from ``teacher``); returns
    the mean loss of every epoch. Training-time noise is removed afterwards; QAT quantizers stay
    on the model (``model.qat``), since the quantized network is what was trained. ``device``: move
    the model (and teacher) there first and train there (default: where the model is); the data
    moves there a batch at a time. The data order is drawn on the CPU, so a device changes no batch."""
    if device is not None:
        model.to(device)
        if teacher is not None:
            teacher.to(device)
    device = model_device(model)
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = -(-len(data.y_train) // cfg.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs * steps_per_epoch)
    if teacher is not None:
        teacher.eval()
    losses = []
    parts = None
    with contextlib.ExitStack() as stack:
        bayes = _perturbations(model, cfg, stack)
        model.train()
        with tqdm(range(cfg.epochs), desc="train", unit="epoch", disable=not progress, file=sys.stderr) as bar:
            for _ in bar:
                order = torch.randperm(len(data.y_train), generator=generator)
                total = 0.0
                if teacher is not None:
                    parts = DistillationParts(cfg.distill_temperature, cfg.distill_beta)
                for start in range(0, len(order), cfg.batch_size):
                    idx = order[start : start + cfg.batch_size]
                    x, y = data.x_train[idx].to(device), data.y_train[idx].to(device)
                    if bayes is not None:
                        bayes.resample()
                    logits = model(x)
                    if teacher is None:
                        loss = F.cross_entropy(predictions(logits), y.flatten())
                    else:
                        with torch.no_grad():
                            target = teacher(x)
                        hard_ce, soft_ce = distillation_terms(logits, target, y, cfg.distill_temperature)
                        loss = combined_loss(hard_ce, soft_ce, cfg.distill_temperature, cfg.distill_beta)
                        parts.add(hard_ce, soft_ce, logits, target)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                    total += loss.item() * len(idx)
                losses.append(total / len(order))
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if parts is not None and progress:
            tqdm.write(parts.describe(), file=sys.stderr)
    if cfg.qat is not None:
        model.qat = QuantizationAware(model, cfg.qat)
    model.eval()
    return losses


def model_device(model: nn.Module) -> torch.device:
    """Where a network computes: a mapped chip's device, else its first parameter's or buffer's (the CPU if it has none)."""
    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    tensor = next(iter([*model.parameters(), *model.buffers()]), None)
    return torch.device("cpu") if tensor is None else tensor.device


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy in [0, 1] over every prediction (for a language model, every next character), in eval mode,
    on the model's device (``model_device``: the data moves there a batch at a time)."""
    model.eval()
    device = model_device(model)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for start in range(0, len(y), batch_size):
        logits = model(x[start : start + batch_size].to(device))
        correct += (logits.argmax(dim=-1) == y[start : start + batch_size].to(device)).sum()
    return int(correct) / y.numel()


@torch.no_grad()
def language_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64) -> dict[str, float]:
    """A language model's next-character accuracy and bits per character (mean cross-entropy per predicted
    character, in bits) on (x, y): (N, T) indices, from one pass in eval mode on the model's device."""
    model.eval()
    device = model_device(model)
    nats = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for start in range(0, len(y), batch_size):
        logits = predictions(model(x[start : start + batch_size].to(device)))
        targets = y[start : start + batch_size].flatten().to(device)
        nats += F.cross_entropy(logits, targets, reduction="sum").double()
        correct += (logits.argmax(dim=1) == targets).sum()
    return {"accuracy": int(correct) / y.numel(), "bpc": float(nats) / y.numel() / math.log(2)}


def bits_per_character(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64) -> float:
    """A language model's bits per character on (x, y) (``language_scores``)."""
    return language_scores(model, x, y, batch_size)["bpc"]


METRICS = {"accuracy": accuracy, "bpc": bits_per_character}


def score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, metric: str) -> float:
    """``metric`` ("accuracy" or "bpc") of ``model`` on (x, y)."""
    return METRICS[metric](model, x, y)
