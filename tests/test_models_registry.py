"""The open model registry: register(), entry-point plugins, seeded random weights, and loaders
for files (ONNX, TorchScript) and hubs (timm, OpenCLIP, Hugging Face) checked layer by layer
against the network they came from."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from brainlike import models
from brainlike.features import extract


class Small(nn.Module):
    """A tiny image network with named stages, as exporters see them."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.head = nn.Linear(24, 5)

    def forward(self, x):
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


def _images(n=5, size=19, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size + 3, 3), dtype=np.uint8)


def _source_activations(net, x, paths):
    """Outputs of ``paths`` of the source network (forward hooks), for comparison."""
    out, subs = {}, dict(net.named_modules())
    hs = [subs[p].register_forward_hook(lambda m, i, o, p=p: out.__setitem__(p, o.detach().clone())) for p in paths]
    with torch.no_grad():
        net(x)
    for h in hs:
        h.remove()
    return {p: out[p].reshape(len(x), -1).numpy() for p in paths}


def _export_onnx(net, path, size=16, batch_dynamic=True):
    kw = {"dynamic_axes": {"image": {0: "batch"}}} if batch_dynamic else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, size, size),), str(path), input_names=["image"],
                          opset_version=17, dynamo=False, **kw)
    return path


# --- register, plugins, seeds -------------------------------------------------------------------
def test_register_a_family_and_refuse_clashes():
    def tiny(rest, pretrained=True, width=4):
        return models.wrap(nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU()), input_size=16,
                           name=f"tiny:{rest}")

    models.register("tiny", tiny)
    try:
        m = models.load("tiny:a", pretrained=False, width=6)
        assert m.name == "tiny:a" and m.seed == 0 and not m.pretrained
        assert models.layers(m) == ["0", "1"] and models.layer_shapes(m)["0"] == (6, 14, 14)
        assert models.prefixes()["tiny"] == "register"
        with pytest.raises(ValueError, match=r"options for 'tiny' models must be among \['width'\]; got \['depth'\]"):
            models.load("tiny:a", depth=3)
        with pytest.raises(ValueError, match=r"options for 'torchvision' models must be among \[\]"):
            models.load("torchvision:alexnet", pretrained=False, input_size=3)
        with pytest.raises(ValueError, match="already registered"):
            models.register("tiny", tiny)
        with pytest.raises(ValueError, match="already registered"):
            models.register("torchvision", tiny)
        models.register("tiny", lambda rest, pretrained=True: "not a model", replace=True)
        with pytest.raises(TypeError, match="must return a brainlike Model"):
            models.load("tiny:a")
    finally:
        models.unregister("tiny")
    with pytest.raises(ValueError, match=r"prefix 'tiny' is unknown; known prefixes: .*onnx"):
        models.load("tiny:a")
    with pytest.raises(ValueError, match="prefix must be"):
        models.register("9bad", tiny)
    with pytest.raises(ValueError, match="loader must be callable"):
        models.register("ok", 3)


def test_random_weights_are_seeded_bitwise_and_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = models.load("torchvision:squeezenet1_1", pretrained=False)
    b = models.load("torchvision:squeezenet1_1", pretrained=False, seed=0)
    c = models.load("torchvision:squeezenet1_1", pretrained=False, seed=1)
    assert torch.equal(torch.random.get_rng_state(), before)
    sa, sb, sc = a.module.state_dict(), b.module.state_dict(), c.module.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.seed == 0 and c.seed == 1
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    # and in another process: the weights depend on the seed alone
    code = ("from brainlike import models; "
            "print(models.weights_fingerprint(models.load('torchvision:squeezenet1_1', pretrained=False).module))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": ":".join(p for p in sys.path if p), "PATH": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == models.weights_fingerprint(a.module)
    for bad in (-1, 1.5, True, "0"):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            models.load("torchvision:squeezenet1_1", pretrained=False, seed=bad)


def test_efficientnet_lite_random_weights_are_seeded():
    a = models.load("efficientnet_lite0", pretrained=False, seed=7)
    b = models.load("efficientnet_lite:0", pretrained=False, seed=7)
    assert a.fingerprint() == b.fingerprint()
    assert models.load("efficientnet_lite0").seed is None  # pretrained: the seed plays no part


PLUGIN_SETUP = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "brainlike-tinyplug"
version = "0.0.1"

[project.entry-points."brainlike.models"]
tinyplug = "brainlike_tinyplug:load"
"""

PLUGIN_CODE = '''
import torch.nn as nn
from brainlike.models import wrap

def load(rest, pretrained=True, width=3):
    """tinyplug:<anything>: a two-conv network of ``width`` channels."""
    net = nn.Sequential(nn.Conv2d(3, width, 3), nn.Tanh(), nn.Conv2d(width, width, 3, stride=2), nn.Tanh())
    return wrap(net, input_size=12, name=f"tinyplug:{rest}")
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """A tiny plugin package, installed for real (pip, into a folder of its own)."""
    tmp_path = tmp_path_factory.mktemp("plugin")
    src = tmp_path / "src"
    (src / "brainlike_tinyplug").mkdir(parents=True)
    (src / "pyproject.toml").write_text(PLUGIN_SETUP)
    (src / "brainlike_tinyplug" / "__init__.py").write_text(PLUGIN_CODE)
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(src)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return target


def test_entry_point_plugin_installed_for_real_is_found_lazily(plugin_site, monkeypatch):
    target = plugin_site
    # a fresh interpreter: importing brainlike.models imports no plugin; the first use does
    code = textwrap.dedent("""
        import sys
        from brainlike import models
        assert "brainlike_tinyplug" not in sys.modules
        assert models.prefixes()["tinyplug"].startswith("plugin brainlike-tinyplug")
        assert "brainlike_tinyplug" not in sys.modules
        m = models.load("tinyplug:x", pretrained=False, seed=3, width=5)
        assert "brainlike_tinyplug" in sys.modules
        print(m.name, m.seed, models.layers(m))
    """)
    env_path = f"{target}:{':'.join(p for p in sys.path if p)}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": env_path, "PATH": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["tinyplug:x", "3", "['0',", "'1',", "'2',", "'3']"]
    # in this process too, once the entry points are read again
    monkeypatch.syspath_prepend(str(target))
    models.refresh_plugins()
    try:
        a = models.load("tinyplug:y", pretrained=False, seed=3)
        b = models.load("tinyplug:y", pretrained=False, seed=3)
        assert a.fingerprint() == b.fingerprint()
    finally:
        monkeypatch.undo()
        models.refresh_plugins()


# --- ONNX and TorchScript files -----------------------------------------------------------------
onnx_needed = pytest.mark.skipif(importlib.util.find_spec("onnx2torch") is None,
                                 reason="onnx and onnx2torch are part of the dev install (pip install -e .[dev])")


@onnx_needed
def test_onnx_file_layers_equal_the_source_network(tmp_path):
    torch.manual_seed(0)
    net = Small().eval()
    path = _export_onnx(net, tmp_path / "small.onnx")
    m = models.load(f"onnx:{path}")
    names = models.layers(m)
    assert [n.rsplit("/", 1)[-1] for n in names] == ["Conv", "Relu", "MaxPool", "Conv", "Relu", "AveragePool",
                                                     "Flatten", "Gemm"]
    assert m.input_size == (16, 16)
    assert m.aliases["features"] == m.aliases["features.4"] == names[4]
    src = ["features.0", "features.2", "features", "head"]
    assert all(a in m.aliases for a in src)
    imgs = _images()
    fs = extract(m, imgs, src, progress=False)
    ref = _source_activations(net, m.preprocess(imgs), src)
    for p in src:
        np.testing.assert_allclose(np.asarray(fs[p]), ref[p], rtol=1e-5, atol=1e-6)


@onnx_needed
def test_hand_built_caffe_style_graph_against_torch_functional(tmp_path):
    """Node names as Caffe converters write them (conv1, relu1); weights passed through Identity nodes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    nodes = [helper.make_node("Identity", ["w0"], ["w"], name="weights_copy"),
             helper.make_node("Conv", ["data", "w", "b"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Constant", [], ["two"], name="two", value=numpy_helper.from_array(np.float32(2))),
             helper.make_node("Mul", ["r1", "two"], ["s1"], name="scale1"),
             helper.make_node("MaxPool", ["s1"], ["prob"], name="pool1", kernel_shape=[2, 2], strides=[2, 2])]
    graph = helper.make_graph(nodes, "caffe_net",
                              [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 12, 12])],
                              [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 4, 6, 6])],
                              initializer=[numpy_helper.from_array(w, "w0"), numpy_helper.from_array(b, "b")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(proto)
    onnx.save(proto, tmp_path / "caffe.onnx")
    m = models.load(f"onnx:{tmp_path / 'caffe.onnx'}", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert models.layers(m) == ["conv1", "relu1", "scale1", "pool1"]  # the weight copy and constant are no layers
    imgs = _images(3, size=12)
    fs = extract(m, imgs, ["conv1", "relu1", "pool1"], progress=False)
    x = m.preprocess(imgs)
    conv = torch.nn.functional.conv2d(x, torch.from_numpy(w), torch.from_numpy(b), padding=1)
    ref = {"conv1": conv, "relu1": conv.relu(), "pool1": torch.nn.functional.max_pool2d(2 * conv.relu(), 2)}
    for k, v in ref.items():
        np.testing.assert_allclose(np.asarray(fs[k]), v.reshape(3, -1).numpy(), rtol=1e-5, atol=1e-5)


@onnx_needed
def test_onnx_random_weights_are_seeded_and_differ_from_the_file(tmp_path):
    torch.manual_seed(0)
    path = _export_onnx(Small().eval(), tmp_path / "small.onnx")
    a = models.load(f"onnx:{path}", pretrained=False, seed=5)
    b = models.load(f"onnx:{path}", pretrained=False, seed=5)
    file = models.load(f"onnx:{path}")
    assert a.fingerprint() == b.fingerprint() != file.fingerprint()
    assert a.fingerprint() != models.load(f"onnx:{path}", pretrained=False, seed=6).fingerprint()


@onnx_needed
def test_onnx_fixed_batch_graphs(tmp_path):
    torch.manual_seed(0)
    net = Small().eval()
    ok = models.load(f"onnx:{_export_onnx(net, tmp_path / 'fixed.onnx', batch_dynamic=False)}")
    imgs = _images(4)
    ref = _source_activations(net, ok.preprocess(imgs), ["head"])["head"]
    np.testing.assert_allclose(np.asarray(extract(ok, imgs, ["head"], progress=False)["head"]), ref,
                               rtol=1e-5, atol=1e-6)

    class Mixer(Small):  # reshapes to a constant shape: only batches of one are right
        def forward(self, x):
            return self.head(self.pool(self.features(x)).reshape(1, 24))

    bad = _export_onnx(Mixer().eval(), tmp_path / "mixer.onnx", batch_dynamic=False)
    with pytest.raises(ValueError, match="batches of exactly 1"):
        models.load(f"onnx:{bad}")


@onnx_needed
def test_onnx_and_torchscript_bad_files_are_named(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not onnx" * 10)
    with pytest.raises(ValueError, match="junk.onnx: not a readable ONNX file"):
        models.load(f"onnx:{junk}")
    with pytest.raises(FileNotFoundError, match="ONNX file not found"):
        models.load(f"onnx:{tmp_path / 'absent.onnx'}")
    with pytest.raises(ValueError, match="junk.onnx: not a readable TorchScript archive"):
        models.load(f"torchscript:{junk}")


@onnx_needed
@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript_file_layers_equal_the_source_network(tmp_path, how):
    torch.manual_seed(1)
    net = Small().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = torch.jit.script(net) if how == "script" else torch.jit.trace(net, torch.zeros(1, 3, 16, 16))
    ts.save(str(tmp_path / "small.pt"))
    m = models.load(f"torchscript:{tmp_path / 'small.pt'}", input_size=16)
    src = ["features.0", "features.1", "features.3", "features", "head"]
    imgs = _images(3)
    fs = extract(m, imgs, src, progress=False)
    ref = _source_activations(net, m.preprocess(imgs), src)
    for p in src:
        np.testing.assert_allclose(np.asarray(fs[p]), ref[p], rtol=1e-5, atol=1e-6)
    order = models.layers(m)
    assert [order.index(m.aliases[p]) for p in ["features.0", "features.1", "features.3", "head"]] == \
        sorted(order.index(m.aliases[p]) for p in ["features.0", "features.1", "features.3", "head"])


# --- hubs (optional packages) -------------------------------------------------------------------
def _skip_without(pkg, pip):
    return pytest.mark.skipif(importlib.util.find_spec(pkg) is None,
                              reason=f"{pip} is not installed (pip install 'brainlike[zoo]')")


@_skip_without("timm", "timm")
def test_timm_random_resnet_is_seeded_and_layered():
    a = models.load("timm:resnet18", pretrained=False, seed=2)
    b = models.load("timm:resnet18", pretrained=False, seed=2)
    assert a.fingerprint() == b.fingerprint()
    order = models.layers(a)
    assert order.index("layer1") < order.index("layer2") < order.index("layer4") < order.index("fc")
    with pytest.raises(ValueError, match="timm architecture 'nope' is unknown"):
        models.load("timm:nope", pretrained=False)


@_skip_without("open_clip", "open_clip_torch")
def test_open_clip_image_tower_from_a_model_config(tmp_path):
    import json

    import open_clip

    cfg = {"embed_dim": 8, "vision_cfg": {"image_size": 32, "layers": 2, "width": 16, "head_width": 8,
                                          "patch_size": 8},
           "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1}}
    (tmp_path / "bl-tiny-clip.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "bl-tiny-clip.json")
    a = models.load("open_clip:bl-tiny-clip", pretrained=False, seed=4)
    b = models.load("open_clip:bl-tiny-clip", pretrained=False, seed=4)
    assert a.fingerprint() == b.fingerprint() and a.input_size == (32, 32)
    order = models.layers(a)
    assert order.index("transformer.resblocks.0") < order.index("transformer.resblocks.1")
    imgs = _images(2, size=40)
    fs = extract(a, imgs, ["transformer.resblocks.1"], progress=False)
    ref = _source_activations(b.module, b.preprocess(imgs), ["transformer.resblocks.1"])
    np.testing.assert_array_equal(np.asarray(fs["transformer.resblocks.1"]), ref["transformer.resblocks.1"])
    with pytest.raises(ValueError, match="pretrained weight tags"):
        models.load("open_clip:bl-tiny-clip")


@_skip_without("transformers", "transformers")
def test_hugging_face_model_from_a_local_folder(tmp_path):
    from transformers import AutoModel, ViTConfig

    cfg = ViTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                    image_size=32, patch_size=8)
    torch.manual_seed(0)
    src = AutoModel.from_config(cfg).eval()
    src.save_pretrained(tmp_path / "vit")
    m = models.load(f"hf:{tmp_path / 'vit'}")
    assert m.input_size == (32, 32)
    order = models.layers(m)
    blocks = [n for n in order if n.count(".") == 1 and n.split(".")[-1].isdigit()]
    assert len(blocks) == 2 and order.index(blocks[0]) < order.index(blocks[1])
    imgs = _images(3, size=30)
    fs = extract(m, imgs, blocks, progress=False)
    ref = _source_activations(src, m.preprocess(imgs), blocks)
    for p in blocks:
        np.testing.assert_allclose(np.asarray(fs[p]), ref[p], rtol=1e-5, atol=1e-6)
    r1 = models.load(f"hf:{tmp_path / 'vit'}", pretrained=False, seed=1)
    r2 = models.load(f"hf:{tmp_path / 'vit'}", pretrained=False, seed=1)
    assert r1.fingerprint() == r2.fingerprint() != m.fingerprint()
    with pytest.raises(models.WeightsUnavailableError, match="not available"):
        models.load(f"hf:{tmp_path / 'absent'}")


# --- the seed in configs and stores -------------------------------------------------------------
def test_pipeline_dnn_entries_take_a_seed_that_keys_the_features(tmp_path):
    from brainlike.pipeline import load_config
    from brainlike.pipeline.inputs import feature_store_name
    from brainlike.stimuli import ImageSet

    def cfg(**dnn):
        return {"name": "t", "out": str(tmp_path), "dataset": "cowley2023_v4", "rois": ["V1", "V2"],
                "dnns": {"r": {"model": "torchvision:squeezenet1_1", "layers": ["features.0", "features.3"], **dnn}}}

    a, b = load_config(cfg(pretrained=False, seed=3)), load_config(cfg(pretrained=False))
    assert a.dnns["r"].seed == 3 and b.dnns["r"].seed == 0 and a.to_dict()["dnns"]["r"]["seed"] == 3
    stim = ImageSet.from_array(_images(2, size=30), ids=["i1", "i2"])

    def store_name(exp):
        d = exp.dnns["r"]
        return feature_store_name(d, models.load(d.model, pretrained=d.pretrained, seed=d.seed), stim)

    assert store_name(a) != store_name(b) == store_name(load_config(cfg(pretrained=False, seed=0)))
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match=r"'dnns\.r\.seed'"):
            load_config(cfg(pretrained=False, seed=bad))
    assert load_config(cfg(model_options={"input_size": 32})).dnns["r"].model_options == {"input_size": 32}
    with pytest.raises(ValueError, match=r"'dnns\.r\.model_options'"):
        load_config(cfg(model_options=[32]))
    # network files in a config file are found relative to it, like its other paths
    (tmp_path / "exp.yaml").write_text("name: t\nout: o\ndataset: cowley2023_v4\nrois: [V1, V2]\ndnns:\n"
                                       "  a: {model: 'onnx:nets/a.onnx', layers: [x, y]}\n"
                                       f"  b: {{model: 'torchscript:{tmp_path}/b.pt', layers: [x, y]}}\n")
    exp = load_config(tmp_path / "exp.yaml")
    assert exp.dnns["a"].model == f"onnx:{tmp_path / 'nets' / 'a.onnx'}"
    assert exp.dnns["b"].model == f"torchscript:{tmp_path}/b.pt"


def test_feature_store_records_the_seed(tmp_path):
    net = models.load("torchvision:squeezenet1_1", pretrained=False, seed=9)
    fs = extract(net, _images(2, size=40), ["features.0"], store=str(tmp_path / "s"), progress=False)
    assert fs.request["seed"] == 9 and fs.request["fingerprints"]["seed"] == 9


# --- through the pipeline -----------------------------------------------------------------------
@onnx_needed
def test_onnx_torchscript_and_plugin_networks_are_extracted_decoded_and_scored(tmp_path, plugin_site, monkeypatch):
    """run_experiment (the Python form of brainlike run) on an ONNX file, a TorchScript file and a plugin's network."""
    from brainlike.datasets import BrainData
    from brainlike.pipeline import run_experiment
    from brainlike.stimuli import ImageSet

    class Conv(nn.Module):  # fully convolutional: any input size
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                          nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                          nn.Conv2d(8, 8, 3), nn.ReLU())

        def forward(self, x):
            return self.features(x)

    torch.manual_seed(0)
    net = Conv().eval()
    _export_onnx(net, tmp_path / "net.onnx", size=24)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(net).save(str(tmp_path / "net.pt"))
    monkeypatch.syspath_prepend(str(plugin_site))
    models.refresh_plugins()
    layers = ["features.1", "features.4", "features.7"]
    n = 90
    rng = np.random.default_rng(1)
    stim = ImageSet.from_array(rng.integers(0, 256, (n, 24, 24, 3), dtype=np.uint8),
                               ids=[f"im{i:03d}" for i in range(n)])
    onnx_model = models.load(f"onnx:{tmp_path / 'net.onnx'}")
    feats = extract(onnx_model, stim, layers, progress=False)
    # ROI k's voxels are noisy mixtures of layer k's units (a planted hierarchy)
    resp = np.hstack([np.asarray(feats[ly]) @ rng.standard_normal((np.asarray(feats[ly]).shape[1], 12))
                      for ly in layers])
    resp = (resp / resp.std(0) + 0.5 * rng.standard_normal(resp.shape)).astype(np.float32)
    rois = {f"R{k + 1}": np.arange(36) // 12 == k for k in range(3)}
    split = np.array(["train"] * 70 + ["test"] * 20)
    brain = BrainData(resp, stim.ids, rois=rois, split=split, subject="s1")
    try:
        cfg = {"name": "files", "out": str(tmp_path / "out"), "analyses": ["decoding", "encoding"],
               "rois": ["R1", "R2", "R3"],
               "dnns": {"onnx_net": {"model": f"onnx:{tmp_path / 'net.onnx'}", "layers": layers},
                        "ts_net": {"model": f"torchscript:{tmp_path / 'net.pt'}", "layers": layers,
                                   "model_options": {"input_size": 24}},
                        "plugin_net": {"model": "tinyplug:a", "layers": ["1", "3"], "pretrained": False, "seed": 4}},
               "decoding": {"alpha": 10.0, "n_feat": 10, "units_per_layer": 16, "chunk_size": 16},
               "encoding": {"alphas": [1.0, 100.0], "cv": 3, "chunk_size": 16},
               "scores": {"n_layers": 2, "n_repeat": 3, "n_boot": 10, "n_perm": 10, "voxels_per_roi": None},
               "execution": {"scheduler": "synchronous"}, "report": False}
        res = run_experiment(cfg, brain=brain, stimuli=stim, progress=False)
    finally:
        models.refresh_plugins()
    scores = res.scores
    assert set(scores["dnn"]) == {"onnx_net", "ts_net", "plugin_net"}
    assert (scores["n_units"] > 0).all()  # every network's units were decoded and scored
    import json

    prov = json.loads((res.results_dir / "provenance.json").read_text())
    assert prov["inputs"]["features"]["plugin_net"]["seed"] == 4 and prov["config"]["dnns"]["plugin_net"]["seed"] == 4
    assert prov["inputs"]["features"]["onnx_net"]["seed"] is None  # the file's own weights
    dec = pd.read_parquet(res.results_dir / "decoding_accuracy.parquet")
    assert set(dec["dnn"]) == {"onnx_net", "ts_net", "plugin_net"}
    assert np.isfinite(dec["accuracy"]).mean() > 0.5  # dead ReLU units give NaN
    # one network, two file formats: the same encoding accuracies and scores (every unit is used)
    enc = pd.read_parquet(res.results_dir / "encoding_accuracy.parquet")
    a, b = (enc[enc["dnn"] == d].sort_values(["roi", "layer", "voxel"])["accuracy"].to_numpy()
            for d in ("onnx_net", "ts_net"))
    np.testing.assert_allclose(a, b, atol=1e-4)
    enc_scores = scores[scores["kind"] == "encoding"].set_index("dnn")["score"]
    on, ts = enc_scores["onnx_net"], enc_scores["ts_net"]
    assert np.isfinite(on) and on == pytest.approx(ts, abs=1e-6)
    best = enc[enc["dnn"] == "onnx_net"].groupby(["roi", "layer"], observed=True)["accuracy"].mean().unstack()
    assert [best.loc[f"R{k + 1}"].idxmax() for k in range(3)] == layers  # the planted layer predicts its ROI best


@_skip_without("transformers", "transformers")
def test_hugging_face_clip_like_model_gives_its_image_tower(tmp_path):
    from transformers import CLIPConfig, CLIPModel

    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}
    text = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
            "vocab_size": 50, "max_position_embeddings": 8}
    torch.manual_seed(0)
    src = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).eval()
    src.save_pretrained(tmp_path / "clip")
    m = models.load(f"hf:{tmp_path / 'clip'}")
    assert m.input_size == (32, 32) and type(m.module).__name__ == type(src.vision_model).__name__
    order = models.layers(m)
    layer = [n for n in order if n.endswith("layers.1")][0]
    imgs = _images(2, size=32)
    ref = _source_activations(src.vision_model, m.preprocess(imgs), [layer])[layer]
    np.testing.assert_allclose(np.asarray(extract(m, imgs, [layer], progress=False)[layer]), ref, rtol=1e-5,
                               atol=1e-6)
