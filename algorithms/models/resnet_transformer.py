"""ResNet+Transformer (the paper's best): a residual 1-D convolution stem feeding a Transformer
encoder.

The stem is a convolution ``F -> d_model`` followed by ``res_blocks`` residual blocks
(conv - norm - GELU - dropout - conv - norm, plus the identity, then GELU) with "same" padding,
so each epoch's token already summarises its local temporal neighbourhood (noise suppression,
local slope/curvature). The encoder then relates all epochs of the window (long-range
dependencies, seasonality) and the head reads the last token plus the token mean.

Normalisation inside the stem is GroupNorm with one group (a per-sample layer norm over
channels and time) rather than BatchNorm — a choice of ours: predictions then never depend on
which other pixels share a batch, so block-wise ensemble prediction gives the same numbers for a
pixel whatever the block size, and small tuning batches do not destabilise training.
"""
from torch import nn

from .common import LastAndMeanHead, SinusoidalPositionalEncoding, transformer_encoder


class ResBlock1d(nn.Module):
    def __init__(self, c, kernel_size, dropout):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(c, c, kernel_size, padding="same"), nn.GroupNorm(1, c), nn.GELU(), nn.Dropout(dropout),
            nn.Conv1d(c, c, kernel_size, padding="same"), nn.GroupNorm(1, c))

    def forward(self, x):
        return nn.functional.gelu(x + self.net(x))


class ResNetTransformer(nn.Module):
    def __init__(self, n_features, window, horizon, d_model, nhead, layers, ff_mult, res_blocks,
                 kernel_size, dropout):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(n_features, d_model, kernel_size, padding="same"),
                                  nn.GroupNorm(1, d_model), nn.GELU())
        self.blocks = nn.Sequential(*[ResBlock1d(d_model, kernel_size, dropout) for _ in range(res_blocks)])
        self.pos = SinusoidalPositionalEncoding(d_model, window)
        self.drop = nn.Dropout(dropout)
        self.encoder = transformer_encoder(d_model, nhead, layers, ff_mult, dropout)
        self.head = LastAndMeanHead(d_model, horizon)

    def forward(self, x):  # (N, W, F)
        h = self.blocks(self.stem(x.transpose(1, 2))).transpose(1, 2)  # (N, W, D)
        h = self.drop(self.pos(h))
        return self.head(self.encoder(h))


def build(name, n_features, window, horizon, hp):
    return ResNetTransformer(n_features, window, horizon, hp["d_model"], hp["nhead"], hp["layers"],
                             hp["ff_mult"], hp["res_blocks"], hp["kernel_size"], hp["dropout"])
