"""What runs beside the model during extraction: the next batch decoded in a thread, and forward
hooks that copy the requested outputs into the store's chunk layout."""

from __future__ import annotations

import numpy as np


class _StopForward(Exception):
    """Raised by the last hook: the outputs after the last requested layer are not needed."""


def _load_batch(stimuli, indices, preprocess):
    import torch

    imgs = [stimuli.load(i) for i in indices]
    if len({im.shape for im in imgs}) == 1:
        return preprocess(np.stack(imgs))
    return torch.cat([preprocess(im[None]) for im in imgs])


def _prefetched(stimuli, todo, bs: int, preprocess):
    """Yield (batch, rows, input tensor) of ``todo``; the next batch's images are decoded and
    preprocessed in a thread while the caller runs the current one through the model."""
    from concurrent.futures import ThreadPoolExecutor

    n = len(stimuli)

    def load(b):
        return _load_batch(stimuli, range(b * bs, min(n, (b + 1) * bs)), preprocess)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="brainlike-load") as pool:
        pending = pool.submit(load, todo[0]) if todo else None
        for i, b in enumerate(todo):
            x = pending.result()
            if i + 1 < len(todo):
                pending = pool.submit(load, todo[i + 1])
            yield b, (b * bs, min(n, (b + 1) * bs)), x


class _Capture:
    """Forward hooks that copy the requested outputs (before any in-place op changes them), straight
    into the store's chunk layout: one C-ordered (batch_size, unit_chunk) block per chunk file,
    zero-padded at the edges as zarr stores edge chunks. That copy is the only one before encoding."""

    def __init__(self, module, paths, unit_chunk: dict, batch_size: int, dtype):
        self.paths = list(dict.fromkeys(paths))
        self.unit_chunk, self.bs, self.dtype = unit_chunk, int(batch_size), np.dtype(dtype)
        self.out: dict[str, list] = {}
        self.handles = []
        subs = dict(module.named_modules())
        for p in self.paths:
            self.handles.append(subs[p].register_forward_hook(self._hook(p)))

    def _hook(self, path):

        def hook(_mod, _inp, out):
            t = out.detach()
            if t.device.type != "cpu":
                t = t.to("cpu")
            # copy now: a later in-place op (ReLU(inplace=True)) would change the tensor under us
            self.out[path] = self._blocks(t.reshape(t.shape[0], -1).numpy(), self.unit_chunk[path])
            if len(self.out) == len(self.paths):
                raise _StopForward

        return hook

    def _blocks(self, flat: np.ndarray, uc: int) -> list:
        rows, n = flat.shape
        blocks = []
        for s in range(0, n, uc):
            w = min(uc, n - s)
            block = np.empty((self.bs, uc), self.dtype)
            block[:rows, :w] = flat[:, s:s + w]
            if rows < self.bs:
                block[rows:] = 0
            if w < uc:
                block[:rows, w:] = 0
            blocks.append(block)
        return blocks

    def run(self, module, x):
        import torch

        self.out = {}
        try:
            with torch.no_grad():
                module(x)
        except _StopForward:
            pass
        if len(self.out) != len(self.paths):
            missing = [p for p in self.paths if p not in self.out]
            raise RuntimeError(f"layers {missing} produced no output in the forward pass")
        return self.out

    def close(self):
        for h in self.handles:
            h.remove()
