"""Transformer: linear embedding of each epoch's channels, sinusoidal positional encoding, a
post-norm Transformer encoder (GELU feed-forward of ``ff_mult * d_model``), and a head reading
the last token together with the mean of all tokens (the last token carries the most recent
state, the mean a smoothed summary of the whole window)."""
import math

from torch import nn

from .common import LastAndMeanHead, SinusoidalPositionalEncoding, transformer_encoder


class TransformerForecaster(nn.Module):
    def __init__(self, n_features, window, horizon, d_model, nhead, layers, ff_mult, dropout):
        super().__init__()
        self.embed = nn.Linear(n_features, d_model)
        self.scale = math.sqrt(d_model)
        self.pos = SinusoidalPositionalEncoding(d_model, window)
        self.drop = nn.Dropout(dropout)
        self.encoder = transformer_encoder(d_model, nhead, layers, ff_mult, dropout)
        self.head = LastAndMeanHead(d_model, horizon)

    def forward(self, x):  # (N, W, F)
        h = self.drop(self.pos(self.embed(x) * self.scale))
        return self.head(self.encoder(h))


def build(name, n_features, window, horizon, hp):
    return TransformerForecaster(n_features, window, horizon, hp["d_model"], hp["nhead"], hp["layers"],
                                 hp["ff_mult"], hp["dropout"])
