"""Named datasets: what each is (its kind), where its files come from (URL, SHA-256), how to load it.

Nothing is registered by import side effects: the table below is plain data, read by
``list_datasets``, ``info``, ``fetch`` and ``load``; ``register(info)`` adds an entry at run time.
Every entry has a ``kind`` (``KINDS``): ``load_brain`` accepts only brain data and always returns
``BrainData``; ``load`` returns the object of the entry's kind.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ._fetch import RemoteFile, resolve_file

__all__ = ["DatasetInfo", "KINDS", "list_datasets", "info", "fetch", "load", "load_brain", "register", "unregister",
           "DATASETS"]

KINDS = {
    "brain": "brain responses: load_brain returns BrainData",
    "stimuli": "stimulus images: an ImageSet",
    "rdms": "representational dissimilarity matrices (with their stimuli)",
    "results": "published results of a study (accuracies, scores)",
    "config": "an analysis configuration (subjects, ROIs, networks and layers)",
}

_COWLEY = "https://raw.githubusercontent.com/cowleygroup/V4_compact_models/f4552ad9d34a466ebc66658f72a08a8e5038f1cf/data_V4_responses"
_RSA = "https://raw.githubusercontent.com/rsagroup/rsatoolbox/f1f83cadb7243492a1aae7460466e0f0140b20ac/demos/92imageData"
_BHSCORE = "https://raw.githubusercontent.com/KamitaniLab/BHscore/860859587ebb2e97b2af23e49b8cc5e51cec99a1"
_NSD = "https://natural-scenes-dataset.s3.amazonaws.com"
_NSD_NOTE = "NSD requires accepting its terms of use (naturalscenesdataset.org); checksum verified on first download"

# SHA-256 of the files (from the sources listed in docs/datasets.md; the copies in the shared
# data mirror were taken byte for byte from those commits).
COWLEY_SESSIONS: dict[str, dict] = {
    "190923": {"images": "e99a4df1c7476bdc4d565ff4408bc421976ecc3a22c41af6bfd0cfbddb508c0c", "avg": "741672d36541ce39930c8a3b5bd1cfd33c187aa47b1549c9c5569bc21aa97a28", "animal": "WE", "role": "test"},
    "190925": {"images": "765b4d4372302d4ed72c3382d41ece5ca55d7dcc3d84da7402091253529b87d1", "avg": "2f94d7bcef0f68fecdb7472f509737fafac92477cf6b11a4966162b1b1072529", "animal": "WE", "role": "train"},
    "190927": {"images": "d2469cc2caa629d4ed38e8d4964fb1de8c0b29e9937c25ce1c5838bc4e382653", "avg": "4c3c75ec72bc4bd3f0e22987a7b2e7e962af249d6577e8a6d727ea9075bde034", "animal": "WE", "role": "train"},
    "190928": {"images": "6d90fdf2341e038beb57c16ce85f48c3a2bdfd450bc1c6440489529aead0f161", "avg": "41707e2d31ace45da6d181ad28a91c299971d42430c91cc738602523e7d7eda6", "animal": "WE", "role": "train"},
    "190929": {"images": "7fea6a28c092acfa646145813f532b2ea1d5a22a0b1bdade47d392b8f6bfb3f0", "avg": "18639c9e2b2baed54c4fb22e311d84dafbd986a12069370b1004880a721d2c4a", "animal": "WE", "role": "train"},
    "201025": {"images": "3abb63679107665eab7220bdeaf7863832a1df943bf3d7792501f5082a55b2e8", "avg": "f729f3dc0d29aa38bd380c0da9e39aba916f9e2580949929b65d1714e7217a8a", "animal": "PE", "role": "test"},
    "210224": {"images": "e2690810bee34c2e2821e5dd504c7970f3441579bc57659f27d2c11678b52c6b", "avg": "4dbb7367707a5ca47ab4cea863bbf4e9765b8409cb30216693721bddfad7abfe", "animal": "PE", "role": "validation"},
    "210225": {"images": "79bfb1066949a7f7bbd3c632ab420c2230b966b80cade76593d8745aea49b7f6", "avg": "853f196247504fa2526b507f56ee5237711ed166f295f7cb23ec5441a7bf789b", "animal": "PE", "role": "test"},
    "210305": {"images": "9fab651e9c2d0b44091c2ea238c78d68fedf573cd7d4ae6b0545c5d84c121776", "avg": "00dce8d39558bfc3f5dd55c6f678c05de1b63895d56193379fd7dfe41fc703f0", "animal": "PE", "role": "train"},
    "210322": {"images": "a72f357c73381fc6e496403820b38abe38c78b92f6d1c0b7153d6fe6d3986c32", "avg": "1d643594633c7ad6d5281147bf1742275135507c8b283550e00e7028c65a5373", "animal": "PE", "role": "train"},
    "210325": {"images": "992774eca3508a2ad01accb1a31f5f3e3d90248c49f4eec314f2a915a263e454", "avg": "555e67037182611969ab90da291dcc39601de4411f651a64ad60e90572cf59d3", "animal": "PE", "role": "test", "raw": "4008dbbf31a47d9b1b8d8da609f4a7a3433c7071f0e45c611c220b217dd75b76"},
    "210621": {"images": "aff4d1639a04fb0d964ee09f8e76b07707e8435283c8e0ea47b0fd398ffcc233", "avg": "28e57e8eefe774b455087a62f039931b9547b2300908a0af85eee5baa49aa1ba", "animal": "RA", "role": "train"},
}

_KRIEGESKORTE_FILES = {
    "Kriegeskorte_Neuron2008_supplementalData.mat": "06f21214399a5d43dc264eed19a7f4b8daf11c8622a59eec3e106064ce5e3504",
    "92_brainRDMs.mat": "1743f90a15e895798a94318649e80e1123a7e5943a1703fa1dd7c31ea5780b7c",
    "92_modelRDMs.mat": "e1d2b58bb2f9508bc13da4c81b94d1ab07823b25ed30b9563bd9d6d730c2a00a",
    "92_behavRDMs.mat": "7a8e118c144c3840adeeeef6ea0706a0be2b3e80df719af15fbb56fc62562f5f",
    "rdm92_V1model.mat": "4efc3291a5c85943c5f6ea3d05daedbf232b6dbd263104e8e5b5de38be6be8b1",
}

# Shen et al. 2019 (Deep Image Reconstruction) preprocessed fMRI, BData HDF5, figshare 7033577.
_SHEN_FIGSHARE = {
    ("sub-01", "Training"): 24153026, ("sub-02", "Training"): 24153080, ("sub-03", "Training"): 24153098,
    ("sub-01", "Test"): 24153020, ("sub-02", "Test"): 24153077, ("sub-03", "Test"): 24153095,
}
# Horikawa & Kamitani 2017 (Generic Object Decoding), BData HDF5, figshare 7387130.
_GOD_FIGSHARE = {1: 24080120, 2: 24080123, 3: 24080126, 4: 24080129, 5: 24080132}
# Horikawa et al. 2019 decodability files: figshare file ids of the zips decodedDNN-<mode>-<net>-<layer>.zip
# (KamitaniLab/brain-decoding-datasets bdds/decodeddnn.py, version 1.0.1, commit b98e8eb: the "__remote_files"
# table, downloaded with ?private_link=76f1e5e10fdfacc5ec12). No checksums are published.
_DECODEDDNN_FIGSHARE = {
    "AlexNet": {
        "accuracy": {"conv1": 13077233, "conv2": 13077236, "conv3": 13077239, "conv4": 13077242, "conv5": 13077245,
                     "fc6": 13077248, "fc7": 13077251, "fc8": 13077254},
        "rank": {"conv1": 13077185, "conv2": 13077188, "conv3": 13077191, "conv4": 13077194, "conv5": 13077197,
                 "fc6": 13077200, "fc7": 13077203, "fc8": 13077206},
        "decoded": {"conv1": 13077257, "conv2": 13077260, "conv3": 13077263, "conv4": 13077266, "conv5": 13077173,
                    "fc6": 13077176, "fc7": 13077179, "fc8": 13077182},
        "true": {"conv1": 13110746, "conv2": 13111937, "conv3": 13110752, "conv4": 13110731, "conv5": 13110734,
                 "fc6": 13110740, "fc7": 13110743, "fc8": 13110737},
    },
    "VGG19": {
        "accuracy": {"conv1_1": 13077314, "conv1_2": 13077317, "conv2_1": 13077320, "conv2_2": 13077323, "conv3_1": 13077326,
                     "conv3_2": 13077329, "conv3_3": 13077332, "conv3_4": 13077335, "conv4_1": 13077338, "conv4_2": 13077284,
                     "conv4_3": 13077287, "conv4_4": 13077290, "conv5_1": 13077293, "conv5_2": 13077296, "conv5_3": 13077299,
                     "conv5_4": 13077302, "fc6": 13077305, "fc7": 13077308, "fc8": 13077311},
        "rank": {"conv1_1": 13083275, "conv1_2": 13083278, "conv2_1": 13083281, "conv2_2": 13083284, "conv3_1": 13083287,
                 "conv3_2": 13083152, "conv3_3": 13083155, "conv3_4": 13083158, "conv4_1": 13083161, "conv4_2": 13083164,
                 "conv4_3": 13083167, "conv4_4": 13083170, "conv5_1": 13083173, "conv5_2": 13083176, "conv5_3": 13083179,
                 "conv5_4": 13083182, "fc6": 13083185, "fc7": 13083188, "fc8": 13083191},
        "decoded": {"conv1_1": 13077926, "conv1_2": 13077962, "conv2_1": 13077986, "conv2_2": 13111850, "conv3_1": 13078008,
                    "conv3_2": 13078023, "conv3_3": 13078080, "conv3_4": 13077653, "conv4_1": 13077674, "conv4_2": 13077704,
                    "conv4_3": 13077728, "conv4_4": 13077731, "conv5_1": 13077734, "conv5_2": 13077737, "conv5_3": 13077740,
                    "conv5_4": 13077752, "fc6": 13077755, "fc7": 13077758, "fc8": 13077761},
        "true": {"conv1_1": 13110797, "conv1_2": 13110800, "conv2_1": 13110803, "conv2_2": 13110806, "conv3_1": 13110812,
                 "conv3_2": 13110815, "conv3_3": 13110755, "conv3_4": 13110761, "conv4_1": 13110764, "conv4_2": 13110767,
                 "conv4_3": 13110770, "conv4_4": 13110773, "conv5_1": 13110776, "conv5_2": 13110779, "conv5_3": 13110782,
                 "conv5_4": 13110785, "fc6": 13110788, "fc7": 13110791, "fc8": 13110794},
    },
}
_DECODEDDNN_LINK = "76f1e5e10fdfacc5ec12"


@dataclass(frozen=True)
class DatasetInfo:
    """What a named dataset is and where its files come from.

    ``files``: a list of ``RemoteFile`` or a function ``(**options) -> list[RemoteFile]``;
    ``loader``: a function ``(paths: dict[str, Path], **options)`` or its ``"module:function"``
    name (imported only when the dataset is loaded); ``kind``: one of ``KINDS``.
    """

    name: str
    title: str
    description: str
    citation: str
    license: str
    homepage: str
    files: Callable[..., list[RemoteFile]] | list
    loader: str | Callable  # called with (paths: dict[str, Path], **options)
    options: dict = field(default_factory=dict)  # option -> (default, help)
    access: str = "open"  # "open" | "mirror-only" | "registration"
    kind: str = "brain"
    # brain data only: a function (paths, **options) -> BrainMeta (stimulus ids, splits, ROI masks without
    # the responses; datasets.metadata) or its "module:function" name; None: checks load the data whole
    metadata: str | Callable | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ValueError(f"DatasetInfo.name must be a non-empty string without '/'; got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"DatasetInfo.kind must be one of {list(KINDS)}; got {self.kind!r}")
        if self.access not in ("open", "mirror-only", "registration"):
            raise ValueError(f"DatasetInfo.access must be 'open', 'mirror-only' or 'registration'; got {self.access!r}")
        if isinstance(self.files, (list, tuple)):
            if not all(isinstance(f, RemoteFile) for f in self.files):
                raise ValueError(f"DatasetInfo.files of {self.name!r} must list RemoteFile objects")
            fixed = list(self.files)
            object.__setattr__(self, "files", lambda **_: list(fixed))
        elif not callable(self.files):
            raise ValueError(f"DatasetInfo.files of {self.name!r} must be a list of RemoteFile or a function")
        if not callable(self.loader) and not (isinstance(self.loader, str) and ":" in self.loader):
            raise ValueError(f"DatasetInfo.loader of {self.name!r} must be a function or 'module:function'; "
                             f"got {self.loader!r}")
        bad = [k for k, v in self.options.items() if not (isinstance(v, tuple) and len(v) == 2)]
        if bad:
            raise ValueError(f"DatasetInfo.options of {self.name!r} must map each option to (default, help); "
                             f"got {bad}")

    def load_function(self) -> Callable:
        if callable(self.loader):
            return self.loader
        module, func = self.loader.split(":")
        return getattr(importlib.import_module(module), func)

    def metadata_function(self) -> Callable:
        if callable(self.metadata):
            return self.metadata
        module, func = self.metadata.split(":")
        return getattr(importlib.import_module(module), func)

    def file_list(self, **options) -> list[RemoteFile]:
        unknown = set(options) - set(self.options)
        if unknown:
            raise ValueError(
                f"options for {self.name!r} must be among {sorted(self.options)}; got {sorted(unknown)}"
            )
        opts = {k: v[0] for k, v in self.options.items()}
        opts.update(options)
        return self.files(**opts)


def _cowley_files(session="190923", raw=False, stimuli=True, **_):
    s = str(session)
    if s not in COWLEY_SESSIONS:
        raise ValueError(f"session must be one of {sorted(COWLEY_SESSIONS)}; got {session!r}")
    meta = COWLEY_SESSIONS[s]
    out = [RemoteFile(f"cowley2023_v4/responses_repeat_averaged/responses_{s}.npy",
                      f"{_COWLEY}/responses_repeat_averaged/responses_{s}.npy", meta["avg"])]
    if raw:
        if "raw" not in meta:
            have = [k for k, m in COWLEY_SESSIONS.items() if "raw" in m]
            raise ValueError(f"raw=True: raw repeats exist only for session(s) {have}; got session {s!r}")
        out.append(RemoteFile(f"cowley2023_v4/responses_raw/responses_{s}.npy",
                              f"{_COWLEY}/responses_raw/responses_{s}.npy", meta["raw"]))
    if stimuli:
        out.append(RemoteFile(f"cowley2023_v4/images/images_{s}.zip", f"{_COWLEY}/images/images_{s}.zip",
                              meta["images"]))
    return out


def _kriegeskorte_files(**_):
    return [RemoteFile(f"kriegeskorte2008_92images/{f}", f"{_RSA}/{f}", h) for f, h in _KRIEGESKORTE_FILES.items()]


def _kay_stimuli_files(**_):
    return [RemoteFile(
        "kay2008_vim1_stimuli/kay_train_stimuli_1750_jpg.zip", None,
        "80f15a74407473b8c72bb694605bd833ca629a9b8827bc0ffbf8b8c9bc0ec179",
        note=("a repackaging (zip of stimuli/<i>.jpg) of github.com/Medoalmasry/kayProject commit "
              "f4dc6b2ab4bfd978d32471c8ff859a8e24c85676 images/stimuli/0.jpg..1749.jpg; place it in the mirror"),
    )]


def _bhscore_files(**_):
    return [RemoteFile("bhscore/settings.json", f"{_BHSCORE}/settings.json",
                       "f4f8415bd59533d3626d8a3e26a26e81ee4b15947c507c1197c58972db240b77")]


def _bhscore_accuracy_files(kind="decoding", **_):
    from .bhscore import ACCURACY_URLS, ARCHIVE_DIRS

    if kind not in ACCURACY_URLS:
        raise ValueError(f"kind must be one of {sorted(ACCURACY_URLS)}; got {kind!r}")
    return _bhscore_files() + [RemoteFile(f"bhscore/{ARCHIVE_DIRS[kind]}.zip", ACCURACY_URLS[kind], None,
                                          "figshare 12401168; checksum recorded on first download")]


def _kay_vim1_files(**_):
    note = "CRCNS vim-1 needs a free CRCNS account: download from crcns.org (doi:10.6080/K0QN64NG) into the data home"
    return [RemoteFile("kay2008_vim1/EstimatedResponses.mat", None, None, note),
            RemoteFile("kay2008_vim1/Stimuli.mat", None, None, note)]


def _kay_npz_files(**_):
    return [RemoteFile("kay2008_vim1/kay_images.npz", "https://osf.io/ymnjv/download", None,
                       "Neuromatch Academy repackaging of vim-1 (OSF ymnjv); checksum verified on first download")]


def _shen_files(subject="sub-01", **_):
    out = []
    for part in ("Training", "Test"):
        key = (subject, part)
        if key not in _SHEN_FIGSHARE:
            raise ValueError(f"subject must be one of ['sub-01', 'sub-02', 'sub-03']; got {subject!r}")
        out.append(RemoteFile(f"shen2019_deeprecon/{subject}_perceptionNaturalImage{part}_VC_v2.h5",
                              f"https://ndownloader.figshare.com/files/{_SHEN_FIGSHARE[key]}"))
    return out


def _god_files(subject=1, **_):
    s = int(subject)
    if s not in _GOD_FIGSHARE:
        raise ValueError(f"subject must be one of {sorted(_GOD_FIGSHARE)}; got {subject!r}")
    return [RemoteFile(f"horikawa2017_god/Subject{s}.h5", f"https://ndownloader.figshare.com/files/{_GOD_FIGSHARE[s]}")]


def _decodeddnn_files(net="AlexNet", layers=None, modes=("accuracy", "rank"), **_):
    if net not in _DECODEDDNN_FIGSHARE:
        raise ValueError(f"net must be one of {sorted(_DECODEDDNN_FIGSHARE)}; got {net!r}")
    table = _DECODEDDNN_FIGSHARE[net]
    if isinstance(modes, str):
        modes = [modes]
    if isinstance(layers, str):
        layers = [layers]
    out = []
    for mode in modes:
        if mode not in table:
            raise ValueError(f"modes must be among {sorted(table)}; got {mode!r}")
        for layer in table[mode] if layers is None else layers:
            fid = table[mode].get(layer)
            if fid is None:
                raise ValueError(f"layers of {net} must be among {list(table[mode])}; got {layer!r}")
            out.append(RemoteFile(f"horikawa2019_decodeddnn/decodedDNN-{mode}-{net}-{layer}.zip",
                                  f"https://ndownloader.figshare.com/files/{fid}?private_link={_DECODEDDNN_LINK}",
                                  None, "figshare (bdds 1.0.1 table); no published checksum: recorded on first download"))
    return out


def _nsd_files(subject=1, sessions=(1,), space="func1pt8mm", betas_format="hdf5", **_):
    s = int(subject)
    if not 1 <= s <= 8:
        raise ValueError(f"subject must be in 1..8; got {subject!r}")
    ext = {"hdf5": "hdf5", "nifti": "nii.gz"}.get(betas_format)
    if ext is None:
        raise ValueError(f"betas_format must be 'hdf5' or 'nifti'; got {betas_format!r}")
    sub = f"subj{s:02d}"
    beta_dir = f"nsddata_betas/ppdata/{sub}/{space}/betas_fithrf_GLMdenoise_RR"
    rel = [
        "nsddata/experiments/nsd/nsd_expdesign.mat",
        f"nsddata/ppdata/{sub}/{space}/roi/prf-visualrois.nii.gz",
        f"nsddata/ppdata/{sub}/{space}/roi/nsdgeneral.nii.gz",
        f"{beta_dir}/ncsnr.nii.gz",
    ] + [f"{beta_dir}/betas_session{int(k):02d}.{ext}" for k in sessions]
    return [RemoteFile(f"nsd/{r}", f"{_NSD}/{r}", None, _NSD_NOTE) for r in rel]


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        DatasetInfo(
            "cowley2023_v4", "Cowley et al. 2023 macaque V4 responses to natural images",
            "Utah-array V4 spike counts (100 ms bins), 12 sessions of 3 monkeys, 112x112 images. Neurons are "
            "the 'voxels' (one ROI 'V4'); responses (n_images, n_neurons); raw repeats for session 210325.",
            "Cowley, Stan, Pillow & Smith (2023) Compact deep neural network models of visual cortex. bioRxiv.",
            "GPL-3.0 (repository); cite the paper", "https://github.com/cowleygroup/V4_compact_models",
            _cowley_files, "brainlike.datasets._real:load_cowley",
            {"session": ("190923", f"one of {sorted(COWLEY_SESSIONS)}"),
             "raw": (False, "single-repeat samples instead of repeat averages (session 210325 only)"),
             "stimuli": (True, "attach the session's ImageSet as .stimuli")},
        ),
        DatasetInfo(
            "kriegeskorte2008_92", "Kriegeskorte et al. 2008: 92 object images with human and monkey IT RDMs",
            "92 images (175x175), category vectors, human IT RDMs (4 subjects x 2 sessions), the fig. 1 "
            "human and monkey IT RDMs, model and behavioural RDMs.",
            "Kriegeskorte et al. (2008) Neuron 60(6):1126-1141; Kiani et al. (2007) J Neurophysiol 97:4296-4309.",
            "MIT (rsatoolbox repository); cite the papers", "https://github.com/rsagroup/rsatoolbox",
            _kriegeskorte_files, "brainlike.datasets._real:load_kriegeskorte", kind="rdms",
        ),
        DatasetInfo(
            "kay2008_vim1_stimuli", "Kay et al. 2008 vim-1: the 1750 training images",
            "128x128 grayscale natural images (JPEG) of the vim-1 training set, ids '0'..'1749'. No responses.",
            "Kay, Naselaris, Prenger & Gallant (2008) Nature 452:352-355; CRCNS vim-1 doi:10.6080/K0QN64NG.",
            "CC0-1.0 (kayProject repository); images under the CRCNS terms",
            "https://github.com/Medoalmasry/kayProject", _kay_stimuli_files,
            "brainlike.datasets._real:load_kay_stimuli", access="mirror-only", kind="stimuli",
        ),
        DatasetInfo(
            "bhscore_settings", "BHscore settings.json (Nonaka et al. 2021)",
            "Subjects, ROIs and the ordered layers of the 29 DNNs used for the BH score.",
            "Nonaka, Majima, Aoki & Kamitani (2021) iScience 24(9):103013.", "see repository",
            "https://github.com/KamitaniLab/BHscore", _bhscore_files, "brainlike.datasets._real:load_bhscore_settings",
            kind="config",
        ),
        DatasetInfo(
            "bhscore_accuracy", "BHscore published decoding / encoding accuracies (Nonaka et al. 2021)",
            "Per-unit decoding (1000 random units per layer) or per-voxel encoding accuracies of the 29 DNNs, "
            "per subject and ROI, as tree[dnn][layer][subject][roi] (read by datasets.bhscore).",
            "Nonaka, Majima, Aoki & Kamitani (2021) iScience 24(9):103013.", "CC BY 4.0 (figshare)",
            "https://figshare.com/articles/dataset/The_Brain_Hierarchy_Score/12401168", _bhscore_accuracy_files,
            "brainlike.datasets._real:load_bhscore_accuracy",
            {"kind": ("decoding", "decoding or encoding"), "dnns": (None, "restrict to some networks")},
            kind="results",
        ),
        DatasetInfo(
            "shen2019_deeprecon", "Shen et al. 2019 Deep Image Reconstruction: preprocessed fMRI (BData HDF5)",
            "Natural-image training (1200 images x 5) and test (50 images x 24) samples, visual-cortex voxels "
            "with ROI_V1...ROI_HVC, ROI_VC columns; used by the BH score.",
            "Shen, Horikawa, Majima & Kamitani (2019) PLoS Comput Biol 15(1):e1006633.", "CC BY 4.0 (figshare)",
            "https://figshare.com/articles/dataset/Deep_Image_Reconstruction/7033577", _shen_files,
            "brainlike.datasets._real:load_shen", {"subject": ("sub-01", "sub-01, sub-02 or sub-03"),
                                                   "roi": (None, "ROI name(s) to read (None: all voxels)")},
            metadata="brainlike.datasets._real:meta_shen",
        ),
        DatasetInfo(
            "horikawa2017_god", "Horikawa & Kamitani 2017 Generic Object Decoding: preprocessed fMRI (BData HDF5)",
            "1200 training images, 50 test images (perception, 35 repeats) and imagery, per subject.",
            "Horikawa & Kamitani (2017) Nat Commun 8:15037.", "CC BY 4.0 (figshare)",
            "https://figshare.com/articles/dataset/Generic_Object_Decoding/7387130", _god_files,
            "brainlike.datasets._real:load_god", {"subject": (1, "1..5"), "roi": (None, "ROI name(s)")},
            metadata="brainlike.datasets._real:meta_god",
        ),
        DatasetInfo(
            "horikawa2019_decodability", "Horikawa et al. 2019 DNN feature decodability (accuracy / rank / decoded / true)",
            "Per-unit decoding accuracy and identification rank of every unit of AlexNet (conv1..fc8) and VGG19 "
            "(conv1_1..fc8) layers, decoded from VC, per subject S1-S5 and Averaged; decoded and true features of "
            "the 50 test images (zips per mode, network and layer).",
            "Horikawa, Aoki, Tsukamoto & Kamitani (2019) Sci Data 6:190012.", "CC BY 4.0 (figshare)",
            "https://figshare.com/articles/dataset/6269321", _decodeddnn_files,
            "brainlike.datasets._real:load_decodeddnn_zips",
            {"net": ("AlexNet", "AlexNet or VGG19"), "layers": (None, "layer names (None: all of the network)"),
             "modes": (("accuracy", "rank"), "accuracy, rank, decoded, true")},
            kind="results",
        ),
        DatasetInfo(
            "kay2008_vim1", "Kay et al. 2008 vim-1 estimated responses (CRCNS)",
            "EstimatedResponses.mat (v7.3: dataTrnS1/S2, dataValS1/S2, roiS1/S2, voxIdxS1/S2) and Stimuli.mat.",
            "Kay, Naselaris, Prenger & Gallant (2008) Nature 452:352-355.", "CRCNS terms of use",
            "https://crcns.org/data-sets/vc/vim-1", _kay_vim1_files, "brainlike.datasets._real:load_kay_vim1_registry",
            {"subject": (1, "1 or 2"), "stimuli": (True, "attach the images of Stimuli.mat")}, access="registration",
        ),
        DatasetInfo(
            "kay2008_vim1_npz", "Kay et al. 2008 vim-1, Neuromatch repackaging (kay_images.npz)",
            "stimuli (1750,128,128), stimuli_test (120,...), responses (1750, 8428), responses_test, roi, roi_names.",
            "Kay, Naselaris, Prenger & Gallant (2008) Nature 452:352-355.", "CRCNS terms of use",
            "https://osf.io/ymnjv", _kay_npz_files, "brainlike.datasets._real:load_kay_npz_registry",
        ),
        DatasetInfo(
            "nsd", "Natural Scenes Dataset (Allen et al. 2022), single-trial betas",
            "Single-trial GLMsingle betas (int16, /300) per session, expdesign, visual ROI masks, ncsnr; "
            "shared-1000 images as the test split (as in St-Yves et al. 2022). Read lazily per ROI.",
            "Allen et al. (2022) Nat Neurosci 25:116-126.", "NSD terms and conditions",
            "https://naturalscenesdataset.org", _nsd_files, "brainlike.datasets._real:load_nsd_registry",
            {"subject": (1, "1..8"), "sessions": ((1,), "session numbers (1-based)"),
             "space": ("func1pt8mm", "func1pt8mm or func1mm"), "betas_format": ("hdf5", "hdf5 or nifti"),
             "roi": ("V1", "ROI name(s) (prf-visualrois / nsdgeneral)")}, access="registration",
            metadata="brainlike.datasets._real:meta_nsd",
        ),
    ]
}


_REGISTERED: dict[str, DatasetInfo] = {}


def register(entry: DatasetInfo, *, replace: bool = False) -> DatasetInfo:
    """Add a dataset to the registry (for this process); a taken name is refused unless ``replace=True``."""
    if not isinstance(entry, DatasetInfo):
        raise ValueError(f"entry must be a DatasetInfo; got {type(entry).__name__}")
    if not replace and (entry.name in _REGISTERED or entry.name in DATASETS):
        raise ValueError(f"dataset {entry.name!r} is already registered; pass replace=True to override it")
    _REGISTERED[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove a dataset added with ``register``."""
    if name not in _REGISTERED:
        raise ValueError(f"name must be a dataset added with register(); got {name!r} (registered: {sorted(_REGISTERED)})")
    del _REGISTERED[name]


def list_datasets(kind: str | None = None) -> list[str]:
    """Names accepted by ``load``, ``info`` and ``fetch`` (only those of ``kind`` when given)."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}; got {kind!r}")
    names = list(DATASETS) + [n for n in _REGISTERED if n not in DATASETS]
    return [n for n in names if kind is None or info(n).kind == kind]


def info(name: str) -> DatasetInfo:
    """The registry entry of ``name``."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in DATASETS:
        raise ValueError(f"name must be one of {list_datasets()}; got {name!r}")
    return DATASETS[name]


def fetch(name: str, *, progress: bool = True, data_dir=None, **options) -> dict[str, Path]:
    """Local, verified paths of the files of ``name`` (downloaded when needed; see ``_fetch``).

    ``data_dir``: a folder of your own holding the files as published (e.g. your CRCNS download):
    they are read from there, checked against the registry's checksums, never downloaded.
    """
    entry = info(name)
    if data_dir is not None:
        from ._fetch import resolve_in_folder

        return {rf.path: resolve_in_folder(rf, data_dir) for rf in entry.file_list(**options)}
    return {rf.path: resolve_file(rf, progress=progress) for rf in entry.file_list(**options)}


def load(name: str, *, data_dir=None, **options):
    """Load a named dataset (``list_datasets()``): the object of its kind (``info(name).kind``).

    Brain data are ``BrainData`` (``load_brain`` insists on it); stimuli an ``ImageSet``; the
    other kinds the object their loader documents. Options as listed by ``info(name).options``.
    ``data_dir``: read the dataset's files from this folder of yours instead of the data home
    (see :func:`fetch`).
    """
    entry = info(name)
    file_opts = {k: v for k, v in options.items() if k in entry.options}
    paths = fetch(name, data_dir=data_dir, **file_opts)
    loader = entry.load_function()
    params = inspect.signature(loader).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        allowed = list(params)[1:]
        bad = [k for k in options if k not in allowed]
        if bad:
            raise ValueError(f"options for {name!r} must be among {allowed}; got {bad}")
    opts = {k: v[0] for k, v in entry.options.items()}
    opts.update(options)
    return loader(paths, **opts)


def load_brain(name: str, *, data_dir=None, **options):
    """Brain responses of a named dataset as ``BrainData`` (datasets of kind ``"brain"`` only).

    Options as listed by ``info(name).options`` (subject, session, ROI ...); ``data_dir`` as in
    :func:`load`. A dataset of another kind is refused with its kind named (``load`` reads those).
    """
    from ._braindata import BrainData

    entry = info(name)
    if entry.kind != "brain":
        brains = list_datasets("brain")
        raise ValueError(f"dataset {name!r} holds {KINDS[entry.kind]} (kind {entry.kind!r}), not brain data; "
                         f"read it with brainlike.datasets.load. Brain datasets: {brains}")
    out = load(name, data_dir=data_dir, **options)
    if not isinstance(out, BrainData):
        raise TypeError(f"the loader of brain dataset {name!r} returned {type(out).__name__}, not BrainData")
    return out
