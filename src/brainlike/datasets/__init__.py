"""Brain data: one ``BrainData`` object, loaders for the field's formats, a checksummed registry.

``load_brain(name, **options)`` reads a named brain dataset as ``BrainData``; ``load(name)`` reads
any named dataset (``list_datasets()``; each entry has a ``kind``: brain data, stimuli, RDMs,
published results, config), from the offline mirror (``BRAINLIKE_DATA_MIRROR``), the data home
(``BRAINLIKE_DATA``) or its URL, every file checked against its SHA-256; ``register(info)`` adds a
dataset. The format loaders
(``load_bdata``, ``load_horikawa_bids``, ``load_decodability``, ``load_nsd``, ``load_kay_vim1``,
``load_kay_npz``) read local files directly.
"""

from ._braindata import BrainData, NaNVoxelWarning, concat_subjects
from ._fetch import ChecksumError, DataNotAvailableError, RemoteFile, data_home, file_sha256, mirror_dir
from ._real import Kriegeskorte92
from .bdata import float_label_to_id, id_to_float_label, load_bdata
from .decodeddnn import load_decodability, read_decoded_features
from .horikawa import derive_rois, load_horikawa_bids
from .kay import load_kay_npz, load_kay_stimuli_mat, load_kay_vim1
from .nsd import load_nsd
from .registry import KINDS, DatasetInfo, fetch, info, list_datasets, load, load_brain, register, unregister

__all__ = [
    "BrainData",
    "ChecksumError",
    "DataNotAvailableError",
    "DatasetInfo",
    "KINDS",
    "Kriegeskorte92",
    "NaNVoxelWarning",
    "RemoteFile",
    "concat_subjects",
    "data_home",
    "derive_rois",
    "fetch",
    "file_sha256",
    "float_label_to_id",
    "id_to_float_label",
    "load_bdata",
    "load_decodability",
    "load_horikawa_bids",
    "load_kay_npz",
    "load_kay_stimuli_mat",
    "load_kay_vim1",
    "load_nsd",
    "read_decoded_features",
    "info",
    "list_datasets",
    "load",
    "load_brain",
    "mirror_dir",
    "register",
    "unregister",
]
