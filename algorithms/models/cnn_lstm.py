"""CNN-LSTM: 1-D convolutions ("same" padding) extract local temporal features, an LSTM
summarises the sequence, and its last hidden state feeds a linear head."""
from torch import nn


class CNNLSTM(nn.Module):
    def __init__(self, n_features, horizon, conv_channels, conv_layers, kernel_size, hidden, layers, dropout):
        super().__init__()
        convs, c = [], n_features
        for _ in range(conv_layers):
            convs += [nn.Conv1d(c, conv_channels, kernel_size, padding="same"), nn.ReLU(), nn.Dropout(dropout)]
            c = conv_channels
        self.convs = nn.Sequential(*convs)
        self.lstm = nn.LSTM(conv_channels, hidden, num_layers=layers, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(hidden, horizon)

    def forward(self, x):  # (N, W, F)
        h = self.convs(x.transpose(1, 2)).transpose(1, 2)  # (N, W, C)
        out, _ = self.lstm(h)
        return self.head(out[:, -1])


def build(name, n_features, window, horizon, hp):
    return CNNLSTM(n_features, horizon, hp["conv_channels"], hp["conv_layers"], hp["kernel_size"],
                   hp["hidden"], hp["layers"], hp["dropout"])
