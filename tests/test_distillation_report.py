"""Distillation says what its loss is made of."""

import re

import pytest
import torch

from xbarsim.models import data, zoo
from xbarsim.models.training import DistillationParts, TrainConfig, distillation_loss, distillation_terms, train


def test_distillation_explains_its_final_loss(capsys):
    digits = data.digits()
    torch.manual_seed(0)
    teacher = zoo.build("mlp", hidden=(64,))
    train(teacher, digits, TrainConfig(epochs=4), progress=False)
    student = zoo.build("mlp", hidden=(16,))
    cfg = TrainConfig(epochs=2, distill_temperature=4.0, distill_beta=0.5)
    losses = train(student, digits, cfg, teacher=teacher, progress=True)
    err = capsys.readouterr().err
    numbers = re.search(r"distillation loss ([\d.]+) = 0.5 x CE vs labels ([\d.]+) \+ 0.5 x T\^2 \(16\) x soft CE vs "
                        r"teacher ([\d.]+)\n  soft CE = the teacher's entropy at T = 4 \(([\d.]+).*KL teacher->student "
                        r"\(([-\d.]+)\).*teacher's on ([\d.]+)% of", err)  # fmt: skip
    assert numbers, err
    total, hard, soft, floor, kl, agree = (float(v) for v in numbers.groups())
    assert total == pytest.approx(losses[-1], abs=1e-3)  # the number `xbarsim train` prints as the final loss
    assert total == pytest.approx(0.5 * hard + 0.5 * 16 * soft, abs=2e-3)
    assert soft == pytest.approx(floor + kl, abs=2e-4) and kl >= 0 and 0 <= agree <= 100


def test_parts_match_the_loss_and_split_off_the_teachers_entropy():
    generator = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(50, 10, generator=generator), torch.randn(50, 10, generator=generator)
    labels = torch.randint(0, 10, (50,), generator=generator)
    parts = DistillationParts(3.0, 0.7)
    parts.add(*distillation_terms(student, teacher, labels, 3.0), student, teacher)
    text = parts.describe()
    assert f"{float(distillation_loss(student, teacher, labels, 3.0, 0.7)):.4f}" in text
    p = torch.softmax(teacher / 3.0, dim=1)
    entropy = float(-(p * torch.log(p)).sum(dim=1).mean())
    kl = float((p * (torch.log(p) - torch.log_softmax(student / 3.0, dim=1))).sum(dim=1).mean())
    assert f"({entropy:.4f}: a floor" in text and f"KL teacher->student ({kl:.4f})" in text
    agree = float((student.argmax(1) == teacher.argmax(1)).float().mean())
    assert f"{100 * agree:.1f}% of" in text
    selfsame = DistillationParts(3.0, 0.7)
    selfsame.add(*distillation_terms(teacher, teacher, labels, 3.0), teacher, teacher)
    assert "KL teacher->student (0.0000)" in selfsame.describe() and "on 100.0% of" in selfsame.describe()
