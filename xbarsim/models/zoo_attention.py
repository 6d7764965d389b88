"""The zoo's transformers, built on torch's own attention layers: ``vit`` (a small vision transformer on
``nn.TransformerEncoder``) and ``chargpt`` (a small causal character-level language model on
``nn.MultiheadAttention``). Registered in ``zoo.ZOO`` when ``zoo`` is imported."""

from __future__ import annotations

import torch
from torch import nn

from .zoo import _register


@_register("vit")
class ViT(nn.Module):
    """Vision transformer: square patches of ``patch_size`` pixels embedded by a strided Conv2d, a class
    token and learned position embeddings, ``depth`` pre-norm encoder layers (``nn.TransformerEncoderLayer``:
    multi-head self-attention and a GELU MLP), a final LayerNorm and a linear head on the class token.
    Digits (8x8): patches of 2 (16 tokens); CIFAR-shaped 32x32 images: patches of 4 (64 tokens)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 8, patch_size: int = 2, dim: int = 64,
                 depth: int = 2, heads: int = 4, mlp_dim: int = 128, dropout: float = 0.0):  # fmt: skip
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.patches = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        # scaled in place: on the meta device an out-of-place product runs torch's Python reference, which
        # imports torch._dynamo (1.5 s); the same values
        self.pos_embedding = nn.Parameter(torch.randn(1, (image_size // patch_size) ** 2 + 1, dim).mul_(0.02))
        layer = nn.TransformerEncoderLayer(dim, heads, mlp_dim, dropout, activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(dim), enable_nested_tensor=False)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> logits (B, classes)."""
        tokens = self.patches(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1) + self.pos_embedding
        return self.head(self.encoder(tokens)[:, 0])


class _Block(nn.Module):
    """A GPT block: x + attention(LayerNorm(x)) under a causal mask, then x + MLP(LayerNorm(x))."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, is_causal=True, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


@_register("chargpt")
class CharGPT(nn.Module):
    """A causal character-level language model: token and position embeddings, ``depth`` GPT blocks, a final
    LayerNorm and a linear head over the vocabulary at every position. Sequences up to ``context`` long."""

    def __init__(self, vocab_size: int = 97, context: int = 128, dim: int = 64, depth: int = 2, heads: int = 4, mlp_dim: int = 256,
                 dropout: float = 0.0):  # fmt: skip
        super().__init__()
        self.context = context
        self.tokens = nn.Embedding(vocab_size, dim)
        self.positions = nn.Embedding(context, dim)
        self.blocks = nn.ModuleList(_Block(dim, heads, mlp_dim, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, T) character indices, T <= context -> logits (B, T, vocab) for the next character."""
        steps = idx.shape[1]
        if steps > self.context:
            raise ValueError(f"chargpt reads at most {self.context} characters at once, got {steps}")
        x = self.tokens(idx) + self.positions(torch.arange(steps, device=idx.device))
        mask = torch.full((steps, steps), float("-inf"), device=idx.device).triu(1)
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.norm(x))
