"""Embeddings of numeric features in front of the hidden layers."""

import torch
from torch import nn


class _FeatureEmbedding(nn.Module):
    """An embedding of each numeric feature; features of two values enter by groups.

    Features with at most two values (one-hot columns, flags) have no ranges to carve:
    any function of them is linear. With ``groups``, each group of them (the columns of
    one one-hot encoded category, or a flag alone) becomes one vector of
    ``group_dim`` values: a learned bias plus, for each of its columns, the column's
    value times a learned vector. For the columns of a one-hot encoding, at most one of
    which is high in a row, that is a learned vector for each category, as
    :class:`CategoryEmbedding` gives a column of codes; a table of many one-hot columns
    costs one ``group_dim`` wide input per category column, not per one-hot column.
    Without ``groups`` (models saved before they were introduced) the two-valued
    features enter as they are. Either way they come after the embedded features.
    Subclasses define ``_embed``, from (n_samples, n_embedded) to
    (n_samples, n_embedded * embedding_dim).
    """

    def __init__(
        self, n_features, embedding_dim, passthrough, groups=None, group_dim=16, levels=None
    ):
        super().__init__()
        passthrough = sorted({int(index) for index in passthrough})
        embedded = sorted(set(range(n_features)).difference(passthrough))
        # Not in the state dict: they follow from the constructor's arguments.
        self.register_buffer("embedded", torch.tensor(embedded, dtype=torch.long), False)
        self.register_buffer("passthrough", torch.tensor(passthrough, dtype=torch.long), False)
        self.groups = None if groups is None else [[int(j) for j in group] for group in groups]
        if self.groups is None:
            self.group_weight = self.group_bias = None
            group_widths = (1,) * len(passthrough)
        else:
            if sorted(j for group in self.groups for j in group) != passthrough:
                raise ValueError("groups must divide the passthrough features among them.")
            columns = [j for group in self.groups for j in group]
            owners = [g for g, group in enumerate(self.groups) for _ in group]
            self.register_buffer("grouped", torch.tensor(columns, dtype=torch.long), False)
            self.register_buffer("group_of", torch.tensor(owners, dtype=torch.long), False)
            # Each grouped column's two values, low and high, become 0 and 1: one-hot again.
            # A column constant in training keeps its unit scale, so that other values (in
            # later chunks of partial_fit) still move its vector.
            low, high = torch.tensor(levels, dtype=torch.float64).reshape(-1, 2).T
            spread = high - low
            scale = torch.where(spread > 0, 1 / spread.clamp_min(1e-30), 1.0)
            self.register_buffer("group_low", low.float(), False)
            self.register_buffer("group_scale", scale.float(), False)
            self.group_weight = nn.Parameter(torch.empty(len(columns), group_dim))
            self.group_bias = nn.Parameter(torch.empty(len(self.groups), group_dim))
            group_widths = (group_dim,) * len(self.groups)
        self.out_features = len(embedded) * embedding_dim + sum(group_widths)
        self.feature_widths = (embedding_dim,) * len(embedded) + group_widths

    @torch.no_grad()
    def _reset_groups(self):
        if self.group_weight is not None:
            # As CategoryEmbedding's vectors: uniform in +-1/sqrt(d); the biases at zero.
            bound = self.group_weight.shape[1] ** -0.5
            nn.init.uniform_(self.group_weight, -bound, bound)
            nn.init.zeros_(self.group_bias)

    def group_matrix(self):
        """The groups' map as one matrix, (n_grouped, n_groups * group_dim).

        Row ``i`` holds the vector of the ``i``-th grouped column in its group's block
        and zeros elsewhere, so one product sums each group's columns.
        """
        n_groups, dim = self.group_bias.shape
        blocks = self.group_weight.new_zeros(len(self.grouped), n_groups, dim)
        blocks[torch.arange(len(self.grouped), device=blocks.device), self.group_of] = (
            self.group_weight
        )
        return blocks.flatten(1)

    def forward(self, X):
        """Map (n_samples, n_features) to (n_samples, out_features)."""
        if len(self.passthrough) == 0:
            return self._embed(X)
        embedded = self._embed(X[:, self.embedded]) if len(self.embedded) else X[:, :0]
        if self.groups is None:
            return torch.cat([embedded, X[:, self.passthrough]], dim=1)
        indicators = (X[:, self.grouped] - self.group_low) * self.group_scale
        groups = torch.addmm(self.group_bias.flatten(), indicators, self.group_matrix())
        return torch.cat([embedded, groups], dim=1)


class PeriodicEmbedding(_FeatureEmbedding):
    """Embed each numeric feature with learned periodic functions (PLR embeddings).

    Every feature ``x_j`` becomes ``ReLU(W_j [cos(2 pi c_j x_j), sin(2 pi c_j x_j)] + b_j)``
    with its own learned frequencies ``c_j`` and linear map ``W_j``. This lets the
    network carve a feature into narrow ranges, which plain ReLU layers find hard on
    tabular data (Gorishniy et al., "On Embeddings for Numerical Features in Tabular
    Deep Learning", NeurIPS 2022). Features with at most two values are passed through.

    Parameters
    ----------
    n_features : int
        Number of input features.
    n_frequencies : int, default=16
        Number of frequencies per feature.
    embedding_dim : int, default=16
        Size of each embedded feature's embedding.
    frequency_scale : float, default=0.1
        Standard deviation of the initial frequencies, for standardized inputs.
    passthrough : sequence of int, default=()
        Indices of the features that skip the embedding.
    groups : list of list of int, default=None
        The passthrough features divided into groups, each entering as one vector
        of ``group_dim`` values; None: they enter as they are.
    group_dim : int, default=16
        Width of each group's vector.
    levels : list of [low, high], default=None
        With ``groups``: the two values of each grouped feature in training, in the
        order of the groups' features; they become 0 and 1.

    Attributes
    ----------
    out_features : int
        ``n_embedded * embedding_dim`` columns, then those of the passthrough features.
    feature_widths : tuple of int
        How many output columns each feature takes, in the order of the output:
        ``embedding_dim`` for each embedded feature, then ``group_dim`` for each
        group (or 1 for each passthrough feature, without groups).
    """

    def __init__(
        self,
        n_features,
        n_frequencies=16,
        embedding_dim=16,
        frequency_scale=0.1,
        passthrough=(),
        groups=None,
        group_dim=16,
        levels=None,
    ):
        super().__init__(n_features, embedding_dim, passthrough, groups, group_dim, levels)
        n_embedded = len(self.embedded)
        self.frequency_scale = frequency_scale
        self.frequencies = nn.Parameter(torch.empty(n_embedded, n_frequencies))
        self.weight = nn.Parameter(torch.empty(n_embedded, 2 * n_frequencies, embedding_dim))
        self.bias = nn.Parameter(torch.empty(n_embedded, embedding_dim))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        """Draw frequencies and weights; zero the biases."""
        nn.init.normal_(self.frequencies, std=self.frequency_scale)
        # Kaiming normal for ReLU with fan-in 2 * n_frequencies, per feature.
        nn.init.normal_(self.weight, std=(2 / self.weight.shape[1]) ** 0.5)
        nn.init.zeros_(self.bias)
        self._reset_groups()

    def _embed(self, X):
        angles = 2 * torch.pi * self.frequencies * X[..., None]
        periodic = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
        embedded = torch.einsum("nfk,fkd->nfd", periodic, self.weight) + self.bias
        return torch.relu(embedded).flatten(1)


class PiecewiseLinearEmbedding(_FeatureEmbedding):
    """Embed each numeric feature by its piecewise-linear encoding on bins (PLE embeddings).

    The encoding of ``x_j`` has one component per bin: 1 for the bins below it, 0 for
    those above, and in its own bin the fraction of the bin it has passed. A learned
    linear map of the encoding, plus a linear term ``x_j w_j + b_j``, is the feature's
    embedding: any piecewise-linear function of ``x_j`` with kinks at the bin edges is
    within reach of one layer (Gorishniy et al., NeurIPS 2022; this is their "version
    B", with the piecewise part starting at zero, used with TabM, ICLR 2025).

    The inputs arrive transformed to a standard normal (``input_transform="quantile"``),
    so the bins are fixed: the edges are the standard normal's quantiles at equal
    probability steps, which are the training data's quantiles after that transform.
    For other input transforms they are the same edges, on standardized values.

    Parameters
    ----------
    n_features : int
    n_bins : int, default=48
    embedding_dim : int, default=16
    passthrough : sequence of int, default=()
        Indices of the features that skip the embedding.
    groups, group_dim, levels
        As for :class:`PeriodicEmbedding`.

    Attributes
    ----------
    out_features : int
    feature_widths : tuple of int
    """

    def __init__(
        self,
        n_features,
        n_bins=48,
        embedding_dim=16,
        passthrough=(),
        groups=None,
        group_dim=16,
        levels=None,
    ):
        super().__init__(n_features, embedding_dim, passthrough, groups, group_dim, levels)
        n_embedded = len(self.embedded)
        # Inner edges at the normal's quantiles; the outer bins are open-ended (the encoding
        # keeps growing beyond them), so their outer edges only set the scale: +-5.2, the
        # range of the quantile transform's output.
        probabilities = torch.arange(1, n_bins, dtype=torch.float64) / n_bins
        inner = torch.special.ndtri(probabilities)
        edges = torch.cat([torch.tensor([-5.2], dtype=torch.float64), inner, torch.tensor([5.2])])
        width = edges.diff()
        self.register_buffer("bin_scale", (1 / width).float(), False)
        self.register_buffer("bin_offset", (-edges[:-1] / width).float(), False)
        # Each bin's part lies in [0, 1], except that below the first bin the encoding goes
        # negative and above the last one beyond 1: one clamp with per-bin bounds.
        low, high = torch.zeros(n_bins), torch.ones(n_bins)
        low[0], high[-1] = -torch.inf, torch.inf
        self.register_buffer("bin_low", low, False)
        self.register_buffer("bin_high", high, False)
        self.linear_weight = nn.Parameter(torch.empty(n_embedded, embedding_dim))
        self.linear_bias = nn.Parameter(torch.empty(n_embedded, embedding_dim))
        self.weight = nn.Parameter(torch.empty(n_embedded, n_bins, embedding_dim))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        """Draw the linear term, uniform in +-1/sqrt(embedding_dim); zero the piecewise part."""
        bound = self.linear_weight.shape[1] ** -0.5
        nn.init.uniform_(self.linear_weight, -bound, bound)
        nn.init.uniform_(self.linear_bias, -bound, bound)
        nn.init.zeros_(self.weight)
        self._reset_groups()

    def encode(self, X):
        """The piecewise-linear encoding, (n_samples, n_features, n_bins)."""
        position = torch.addcmul(self.bin_offset, self.bin_scale, X[..., None])
        return torch.clamp(position, self.bin_low, self.bin_high)

    def _embed(self, X):
        linear = torch.addcmul(self.linear_bias, self.linear_weight, X[..., None])
        embedded = linear + torch.einsum("nfb,fbd->nfd", self.encode(X), self.weight)
        return embedded.flatten(1)


class CategoryEmbedding(nn.Module):
    """A learned vector for each category of each categorical column.

    The columns hold integer codes (as floats, in the network's input): row 0 of a
    column's table is the "unknown" entry, for categories not seen in training, and
    starts at zero, the embedding's centre; the other rows start small and random, as
    in Gorishniy et al. (2021): uniform in ``[-1/sqrt(d), 1/sqrt(d)]``. All tables sit
    in one matrix, so a batch's lookup is one gather.

    Parameters
    ----------
    category_sizes : sequence of int
        Rows of each column's table: its categories, plus the unknown entry and any
        other reserved ones.
    embedding_dim : int, default=16
        Size of each category's vector.

    Attributes
    ----------
    out_features : int
        ``len(category_sizes) * embedding_dim`` columns.
    """

    def __init__(self, category_sizes, embedding_dim=16):
        super().__init__()
        sizes = [int(size) for size in category_sizes]
        starts = [sum(sizes[:column]) for column in range(len(sizes))]
        self.weight = nn.Parameter(torch.empty(sum(sizes), embedding_dim))
        self.register_buffer("starts", torch.tensor(starts, dtype=torch.long), False)
        self.out_features = len(sizes) * embedding_dim
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        """Draw the categories' vectors; zero the unknown entries."""
        bound = self.weight.shape[1] ** -0.5
        nn.init.uniform_(self.weight, -bound, bound)
        self.weight[self.starts] = 0.0

    def forward(self, codes):
        """Map codes of shape (n_samples, n_columns) to (n_samples, out_features)."""
        return self.weight[codes.long() + self.starts].flatten(1)


class TableEmbedding(nn.Module):
    """The input of a table with categorical columns: numeric features, then codes.

    The first ``n_numeric`` input columns are numbers, embedded by ``numeric`` (or
    passed as they are when it is None); the others are categorical codes, looked up
    in a :class:`CategoryEmbedding`. The output holds the numeric part, then each
    categorical column's vector.

    Parameters
    ----------
    n_numeric : int
    numeric : PeriodicEmbedding or None
    categories : CategoryEmbedding

    Attributes
    ----------
    out_features : int
    feature_widths : tuple of int
        How many output columns each input feature takes, in the order of the output.
    """

    def __init__(self, n_numeric, numeric, categories):
        super().__init__()
        self.n_numeric = n_numeric
        self.numeric = numeric
        self.categories = categories
        numeric_widths = (1,) * n_numeric if numeric is None else numeric.feature_widths
        dim = categories.weight.shape[1]
        self.feature_widths = tuple(numeric_widths) + (dim,) * len(categories.starts)
        self.out_features = sum(self.feature_widths)

    def forward(self, X):
        """Map (n_samples, n_numeric + n_categorical) to (n_samples, out_features)."""
        numeric, codes = X[:, : self.n_numeric], X[:, self.n_numeric :]
        if self.numeric is not None:
            numeric = self.numeric(numeric)
        return torch.cat([numeric, self.categories(codes)], dim=1)
