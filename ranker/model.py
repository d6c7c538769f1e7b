"""Shared-bottom multi-task ranker: one trunk and three heads (logits).

send: P(request sent | shown); accept: P(accepted | sent), both learned from an impression log;
connect: P(the pair forms a tie soon | candidate), learned from how the graph grew.
"""

from __future__ import annotations

import torch
from torch import nn


class MultiTaskRanker(nn.Module):
    def __init__(self, in_features: int, hidden_channels: int = 64, num_layers: int = 2, dropout: float = 0.1,
                 linear: bool = False) -> None:
        super().__init__()
        self.linear = linear
        self.hidden_channels, self.num_layers, self.dropout = hidden_channels, num_layers, dropout
        layers: list[nn.Module] = [nn.BatchNorm1d(in_features)]
        width = in_features
        if not linear:  # linear=True: logistic regression per head (the baseline)
            for _ in range(num_layers):
                layers += [nn.Linear(width, hidden_channels), nn.ReLU(), nn.Dropout(dropout)]
                width = hidden_channels
        self.trunk = nn.Sequential(*layers)
        self.send_head = nn.Linear(width, 1)
        self.accept_head = nn.Linear(width, 1)
        self.connect_head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.send_head(h).squeeze(-1), self.accept_head(h).squeeze(-1), self.connect_head(h).squeeze(-1)

    @torch.no_grad()
    def freeze_inputs(self, columns: list[int]) -> None:
        """Ignore these inputs: the batch norm's output for each is its bias alone, for any value. For the
        inputs the training data holds constant (`fit`): every training batch normalised them to 0, so
        training is the same, but served as they were, a value the training never had (a feature constant in
        the graph's history that varies at serving, such as event counts) is scaled by 1 / sqrt(eps), ~316,
        and swamps every other input. Their weight stays 0 in training (its gradient is 0)."""
        bn = self.trunk[0]
        bn.weight[columns] = 0.0
