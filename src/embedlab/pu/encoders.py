"""Encoders for PU learning: LeNet-style and small ResNet for 28×28 images, an MLP for rows.

* :class:`LeNet`: the reference's ``fmnist-lenet`` layout: conv 1→6 5×5 (pad 2) → max-pool →
  conv 6→16 5×5 → max-pool → conv 16→120 5×5 → linear 120→84 → BatchNorm → ReLU; 84-d features.
* :class:`SmallResNet`: a 3×3 stem (32 channels) and three basic residual blocks of 32, 64
  and 128 channels (the last two with stride 2), global average pooling; 128-d features.
* :class:`MLPEncoder`: ``in → 300 → 300 → out`` with BatchNorm and ReLU (after VPU's MLP,
  shortened), for tabular features.
* :func:`projection_head`: linear → BatchNorm → ReLU → linear (SimCLR's head) onto which the
  contrastive losses act; the classifier stage uses the encoder's features, not the head's.
"""

from __future__ import annotations

from torch import nn


class LeNet(nn.Module):
    feat_dim = 84

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(16, 120, 5), nn.ReLU(inplace=True), nn.Flatten(),
            nn.Linear(120, 84), nn.BatchNorm1d(84), nn.ReLU(inplace=True),
        )  # fmt: skip

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.net(x)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip
        self.skip = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.act(self.body(x) + self.skip(x))


class SmallResNet(nn.Module):
    feat_dim = 128

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            _Block(32, 32, 1), _Block(32, 64, 2), _Block(64, 128, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.net(x)


class MLPEncoder(nn.Module):
    def __init__(self, in_features: int, hidden: int = 300, out: int = 128) -> None:
        super().__init__()
        self.feat_dim = out
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, out), nn.BatchNorm1d(out), nn.ReLU(inplace=True),
        )  # fmt: skip

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.net(x)


def projection_head(feat_dim: int, out: int = 64) -> nn.Module:
    return nn.Sequential(
        nn.Linear(feat_dim, feat_dim),
        nn.BatchNorm1d(feat_dim),
        nn.ReLU(inplace=True),
        nn.Linear(feat_dim, out),
    )


ENCODERS = ("lenet", "resnet", "mlp")

__all__ = ["ENCODERS", "LeNet", "MLPEncoder", "SmallResNet", "projection_head"]
