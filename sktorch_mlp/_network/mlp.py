"""The PyTorch network: a stack of Linear -> ReLU -> Dropout blocks and a linear output."""

import torch
from torch import nn

from .dropout import Dropout
from .embeddings import (
    CategoryEmbedding,
    PeriodicEmbedding,
    PiecewiseLinearEmbedding,
    TableEmbedding,
)
from .ensembling import EnsembleLinear

# The width of a numeric feature's embedding, by embedding. The piecewise encoding gains
# from 32 on the benchmark suite's first fold (Computers 146.6 over three seeds against
# 149.8 over four at 16; hotel_rates 13.70 against 13.90); the periodic one was chosen at 16.
EMBEDDING_DIMS = {"periodic": 16, "piecewise": 32}

# The number of bins of the piecewise-linear encoding the regressor uses. 96 rather than the
# 48 of Gorishniy et al.: on the benchmark suite's five folds finer bins gain on California
# housing, Computers and hotel_rates and cost nothing elsewhere, for no more time.
PIECEWISE_BINS = 96


class MLP(nn.Module):
    """Multi-layer perceptron for regression, or a small ensemble of them.

    Each hidden block is ``Linear -> ReLU -> Dropout``; the output layer is a
    plain ``Linear`` so predictions can take any real value.

    Parameters
    ----------
    n_features : int
        Number of input features.
    n_outputs : int
        Number of regression targets.
    hidden_layer_sizes : tuple of int
        Width of each hidden layer, from input to output. An empty tuple gives
        a linear model.
    dropout : float
        Probability of zeroing each hidden unit during training. Dropout is a
        no-op in evaluation mode (``module.eval()``), so predictions are
        deterministic.
    embedding : {"none", "periodic", "piecewise"}, default="none"
        How each input feature enters the network: as is, or through a
        :class:`PeriodicEmbedding` or a :class:`PiecewiseLinearEmbedding`.
    ensemble_size : int, default=1
        Number of members trained side by side on the same batches, each with
        its own dropout masks and output layer (sharing the embedding). In
        training mode the output has shape (ensemble_size, n_samples,
        n_outputs), one prediction per member, so each member is fitted to the
        target; in evaluation mode the members' predictions are averaged.
    ensemble_type : {"independent", "shared"}, default="independent"
        "independent": every member has its own hidden layers. "shared": the
        members share the hidden layers' weights and differ by a learned
        scaling of their input, one vector per member (:attr:`member_scale`),
        and by their output layer (TabM-mini, Gorishniy et al., "TabM: Advancing
        Tabular Deep Learning with Parameter-Efficient Ensembling", ICLR 2025).
        Unused with one member.
    passthrough_features : sequence of int, default=()
        Features that the periodic embedding passes through as they are: those
        with at most two values.
    category_sizes : sequence of int, default=()
        One entry per categorical column: the size of its table of learned
        vectors (:class:`CategoryEmbedding`). These columns come last in the
        input and hold integer codes; the numeric features come first.
    embedding_dim : int, default=16
        Width of each numeric feature's embedding (:data:`EMBEDDING_DIMS` holds
        the width the regressor uses for each embedding).
    n_bins : int, default=48
        Bins of the piecewise-linear encoding, with ``embedding="piecewise"``
        (:data:`PIECEWISE_BINS` holds the number the regressor uses).
    passthrough_groups : list of list of int, default=None
        The passthrough features, divided into groups that each enter as one
        learned vector (the columns of a one-hot encoded category; a flag
        alone). None: they enter as they are.
    passthrough_levels : list of [low, high], default=None
        With ``passthrough_groups``: the two training values of each grouped
        feature, in the groups' order, which become 0 and 1.

    Notes
    -----
    Weights start small and random, biases at zero: hidden layers use Kaiming
    (He) normal initialization, which keeps the variance of activations
    roughly constant through ReLU layers; the output layer uses the same rule
    with a linear gain. The members' input scales start at one random value per
    member and feature (a standard normal draw behind an embedding, a random
    sign without), so the members start different. Randomness comes from
    torch's global generator, which the caller seeds.
    """

    def __init__(
        self,
        n_features,
        n_outputs,
        hidden_layer_sizes=(256, 256),
        dropout=0.1,
        embedding="none",
        ensemble_size=1,
        ensemble_type="independent",
        passthrough_features=(),
        category_sizes=(),
        embedding_dim=16,
        passthrough_groups=None,
        passthrough_levels=None,
        n_bins=48,
    ):
        super().__init__()
        self.ensemble_size = ensemble_size
        n_numeric = n_features - len(category_sizes)
        numeric = {"periodic": PeriodicEmbedding, "piecewise": PiecewiseLinearEmbedding}.get(
            embedding
        )
        if numeric is not None:
            # Only the piecewise encoding has bins.
            options = {"n_bins": n_bins} if embedding == "piecewise" else {}
            numeric = numeric(
                n_numeric,
                **options,
                embedding_dim=embedding_dim,
                passthrough=passthrough_features,
                groups=passthrough_groups,
                levels=passthrough_levels,
            )
        if len(category_sizes):
            self.embedding = TableEmbedding(n_numeric, numeric, CategoryEmbedding(category_sizes))
        else:
            self.embedding = nn.Identity() if numeric is None else numeric
        if isinstance(self.embedding, nn.Identity):
            width_in = n_features
            self._feature_widths = (1,) * n_features
        else:
            width_in = self.embedding.out_features
            self._feature_widths = self.embedding.feature_widths
        shared = ensemble_type == "shared" and ensemble_size > 1
        self.member_scale = (
            nn.Parameter(torch.empty(ensemble_size, 1, width_in)) if shared else None
        )

        def linear(width_in, width_out, own_per_member):
            if ensemble_size == 1 or not own_per_member:
                return nn.Linear(width_in, width_out)
            return EnsembleLinear(ensemble_size, width_in, width_out)

        layers = []
        for width in hidden_layer_sizes:
            layers += [linear(width_in, width, not shared), nn.ReLU(), Dropout(dropout)]
            width_in = width
        self.hidden = nn.Sequential(*layers)
        self.output = linear(width_in, n_outputs, True)
        self._layers = None  # see layers()
        self.reset_parameters()

    def members_input(self, embedded):
        """The hidden layers' input for embedded features of shape (n_samples, width).

        One member: the features themselves. Independent members: the same
        features for each, (ensemble_size, n_samples, width), without a copy.
        Shared members: each member's scaling of them, of that shape too.
        """
        if self.ensemble_size == 1:
            return embedded
        if self.member_scale is None:
            return embedded.expand(self.ensemble_size, *embedded.shape)
        return embedded * self.member_scale

    def layers(self):
        """The network's layers as plain tuples, for a training step written out by hand.

        Reading parameters through ``nn.Module`` attributes costs a Python lookup each;
        a training step reads a dozen of them. The tuples are built once and kept until
        the mode is next set (``train()`` or ``eval()``, at every epoch), so a changed
        dropout rate takes effect from the next epoch on.

        Returns
        -------
        hidden : tuple of (weight, bias, scale, dropout)
            One per hidden layer: its weight and bias parameters, the factor its
            input is scaled by (the keep scale of the dropout before it, or 1), and
            its own ``Dropout`` layer, or None when it drops nothing.
        output : tuple of (weight, bias, scale)
            The output layer's, likewise.
        embedding : nn.Module or None
            The input embedding; None when inputs enter as they are.
        member_scale : Parameter or None
            The members' input scales of a shared ensemble, of shape
            (ensemble_size, 1, width); None for other networks.
        """
        if self._layers is None:
            blocks = tuple(self.hidden)  # Linear, ReLU, Dropout, Linear, ReLU, Dropout, ...
            hidden, scale = [], 1.0
            for linear, dropout in zip(blocks[0::3], blocks[2::3], strict=True):
                hidden.append((linear.weight, linear.bias, scale, dropout if dropout.p else None))
                scale = dropout.scale
            output = (self.output.weight, self.output.bias, scale)
            embedding = None if isinstance(self.embedding, nn.Identity) else self.embedding
            self._layers = (tuple(hidden), output, embedding, self.member_scale)
        return self._layers

    def train(self, mode=True):
        self._layers = None
        return super().train(mode)

    def __getstate__(self):
        # The tuples refer to this module's parameters; a copy builds its own.
        state = super().__getstate__()
        state["_layers"] = None
        return state

    def __setstate__(self, state):
        if "member_scale" not in state and "member_scale" not in state.get("_parameters", {}):
            state = {**state, "member_scale": None}  # pickled before shared ensembles
        super().__setstate__({"_layers": None, **state})

    @torch.no_grad()
    def reset_parameters(self):
        """Draw new weights (Kaiming normal) and members' scales; set every bias to zero."""
        layers = [layer for layer in self.hidden if hasattr(layer, "in_features")]
        for layer, gain in [(layer, 2.0) for layer in layers] + [(self.output, 1.0)]:
            # Kaiming normal: variance gain / fan_in (2 for ReLU layers, 1 for the linear output).
            nn.init.normal_(layer.weight, std=(gain / layer.in_features) ** 0.5)
            nn.init.zeros_(layer.bias)
        if self.member_scale is not None:
            # One value per member and feature, repeated over the feature's embedding: as in
            # TabM, normal behind an embedding (which can absorb a sign), random signs without.
            widths = torch.tensor(self._feature_widths)
            per_feature = torch.randn(self.ensemble_size, 1, len(widths))
            if isinstance(self.embedding, nn.Identity):
                per_feature = per_feature.sign()
            self.member_scale.copy_(per_feature.repeat_interleave(widths, dim=-1))

    def member_predictions(self, X, n_passes=1):
        """Each member's prediction for ``n_passes`` draws of the dropout masks.

        The embedding, before any dropout, is computed once for all passes.
        Dropout is drawn only in training mode (``module.train()``).

        Parameters
        ----------
        X : Tensor of shape (n_samples, n_features)
        n_passes : int, default=1

        Returns
        -------
        Tensor of shape (n_passes * ensemble_size, n_samples, n_outputs)
        """
        hidden = self.members_input(self.embedding(X))
        draws = [self.output(self.hidden(hidden)) for _ in range(n_passes)]
        return torch.stack(draws).reshape(-1, *draws[0].shape[-2:])

    def forward(self, X):
        """Map (n_samples, n_features) to (n_samples, n_outputs).

        An ensemble in training mode returns (ensemble_size, n_samples, n_outputs).
        """
        members = self.output(self.hidden(self.members_input(self.embedding(X))))
        if self.ensemble_size == 1 or self.training:
            return members
        return members.mean(dim=0)
