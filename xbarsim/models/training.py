"""Training and evaluating torch networks: one loop (Adam, cosine schedule, progress bar, seed)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .data import DataSplit


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    lr: float = 2e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    seed: int = 0


def train(model: nn.Module, data: DataSplit, cfg: TrainConfig = TrainConfig(), progress: bool = True) -> list[float]:
    """Train on ``data``'s train split with cross-entropy; returns the mean loss of every epoch."""
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = -(-len(data.y_train) // cfg.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs * steps_per_epoch)
    losses = []
    model.train()
    with tqdm(range(cfg.epochs), desc="train", unit="epoch", disable=not progress, file=sys.stderr) as bar:
        for _ in bar:
            order = torch.randperm(len(data.y_train), generator=generator)
            total = 0.0
            for start in range(0, len(order), cfg.batch_size):
                idx = order[start : start + cfg.batch_size]
                loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                total += loss.item() * len(idx)
            losses.append(total / len(order))
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
    model.eval()
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy in [0, 1], in eval mode."""
    model.eval()
    correct = 0
    for start in range(0, len(y), batch_size):
        correct += int((model(x[start : start + batch_size]).argmax(dim=1) == y[start : start + batch_size]).sum())
    return correct / len(y)
