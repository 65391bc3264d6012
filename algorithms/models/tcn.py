"""TCN: residual blocks of dilated causal 1-D convolutions (Bai et al. 2018).

Block ``i`` uses dilation ``2**i``; each convolution is padded on the left only, so the output
at time ``t`` sees inputs up to ``t`` and never the future. The receptive field is
``1 + 2 (k - 1)(2**levels - 1)`` epochs (29 for the defaults k=3, 3 levels), i.e. more than
any default window. The representation of the last time step feeds a linear head.
"""
import torch
from torch import nn


class CausalConv1d(nn.Conv1d):
    def __init__(self, c_in, c_out, kernel_size, dilation):
        super().__init__(c_in, c_out, kernel_size, dilation=dilation)
        self.left = (kernel_size - 1) * dilation

    def forward(self, x):
        return super().forward(nn.functional.pad(x, (self.left, 0)))


class TemporalBlock(nn.Module):
    def __init__(self, c_in, c_out, kernel_size, dilation, dropout):
        super().__init__()
        self.net = nn.Sequential(
            CausalConv1d(c_in, c_out, kernel_size, dilation), nn.ReLU(), nn.Dropout(dropout),
            CausalConv1d(c_out, c_out, kernel_size, dilation), nn.ReLU(), nn.Dropout(dropout))
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x):
        return torch.relu(self.net(x) + self.skip(x))


class TCN(nn.Module):
    def __init__(self, n_features, horizon, channels, levels, kernel_size, dropout):
        super().__init__()
        blocks, c = [], n_features
        for i in range(levels):
            blocks.append(TemporalBlock(c, channels, kernel_size, 2 ** i, dropout))
            c = channels
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, horizon)

    def forward(self, x):  # (N, W, F)
        h = self.blocks(x.transpose(1, 2))  # (N, C, W)
        return self.head(h[:, :, -1])


def build(name, n_features, window, horizon, hp):
    return TCN(n_features, horizon, hp["channels"], hp["levels"], hp["kernel_size"], hp["dropout"])
