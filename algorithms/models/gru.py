"""GRU: stacked gated recurrent units over the window, last hidden state -> all horizon steps."""
from .common import RecurrentBody


def build(name, n_features, window, horizon, hp):
    return RecurrentBody("gru", n_features, horizon, hp["hidden"], hp["layers"], hp["dropout"])
