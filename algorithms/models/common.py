"""Building blocks shared by the architectures (torch is imported here, not by the registry)."""
from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sine/cosine positional encoding (Vaswani et al. 2017), added to the embeddings.

    Not a learnable parameter and not saved in the state dict (rebuilt from ``d_model``/``max_len``).
    """

    def __init__(self, d_model: int, max_len: int):
        super().__init__()
        pos = torch.arange(max_len, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div[: d_model // 2])
        self.register_buffer("pe", pe[None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[:, : x.shape[1]]


class LastAndMeanHead(nn.Module):
    """Sequence ``(N, L, D)`` -> ``(N, H)`` from the last token and the mean over tokens."""

    def __init__(self, d: int, horizon: int):
        super().__init__()
        self.norm = nn.LayerNorm(2 * d)
        self.out = nn.Linear(2 * d, horizon)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = torch.cat([h[:, -1], h.mean(dim=1)], dim=-1)
        return self.out(self.norm(z))


def transformer_encoder(d_model: int, nhead: int, layers: int, ff_mult: int, dropout: float) -> nn.Module:
    layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=ff_mult * d_model, dropout=dropout,
                                       activation="gelu", batch_first=True, norm_first=False)
    return nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)


class RecurrentBody(nn.Module):
    """LSTM/GRU over the window; last hidden state -> linear head."""

    def __init__(self, cell: str, n_features: int, horizon: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(n_features, hidden, num_layers=layers, batch_first=True,
                       dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(self.drop(out[:, -1]))
