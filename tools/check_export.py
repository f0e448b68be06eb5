#!/usr/bin/env python3
"""Checks that `longnet export` wrote the checkpoint's weights: every tensor of the export's
model.safetensors, loaded by the safetensors package, equals the parameter of the same name in
the checkpoint's model.pt, and neither has a name the other lacks.

model.pt is LibTorch's module archive (a zip holding data.pkl, whose tensors point at raw
little-endian storages under data/). The torch package is not needed to read it: its pickle
names only torch._utils._rebuild_tensor_v2, the storage types and OrderedDict, which are mapped
to numpy here; any other name is refused, so nothing in the file runs.

Usage: check_export.py CHECKPOINT_DIR EXPORT_DIR
"""
import collections
import io
import pickle
import sys
import zipfile

import numpy as np
from safetensors.numpy import load_file

STORAGES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "BoolStorage": np.bool_,
}


class _Module(dict):
    """The archive's top-level __torch__ Module: its state is the name -> tensor mapping."""

    def __setstate__(self, state):
        self.update(state)


def read_module_archive(path):
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        root = names[0].split("/")[0]
        if z.read(f"{root}/byteorder").decode().strip() != "little":
            raise SystemExit(f"{path}: not a little-endian archive")

        def rebuild(storage, offset, shape, strides, *rest):
            flat = storage[offset:]
            if not shape:
                return flat[:1].reshape(())
            return np.lib.stride_tricks.as_strided(flat, shape=shape, strides=[s * flat.itemsize for s in strides]).copy()

        class Unpickler(pickle.Unpickler):
            def find_class(self, module, name):
                if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                    return rebuild
                if module == "torch" and name in STORAGES:
                    return STORAGES[name]
                if (module, name) == ("collections", "OrderedDict"):
                    return collections.OrderedDict
                if module == "__torch__":
                    return _Module
                raise pickle.UnpicklingError(f"{path}: unexpected {module}.{name} in the archive")

            def persistent_load(self, pid):
                kind, dtype, key, _device, numel = pid
                if kind != "storage":
                    raise pickle.UnpicklingError(f"{path}: unexpected persistent id {pid!r}")
                data = np.frombuffer(z.read(f"{root}/data/{key}"), dtype=dtype)
                if data.size != numel:
                    raise pickle.UnpicklingError(f"{path}: storage {key} holds {data.size} values, not {numel}")
                return data

        return dict(Unpickler(io.BytesIO(z.read(f"{root}/data.pkl"))).load())


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    checkpoint, export = sys.argv[1], sys.argv[2]
    saved = read_module_archive(f"{checkpoint}/model.pt")
    exported = load_file(f"{export}/model.safetensors")
    if set(saved) != set(exported):
        raise SystemExit(f"FAIL: names differ: only in the checkpoint {sorted(set(saved) - set(exported))}, "
                         f"only in the export {sorted(set(exported) - set(saved))}")
    for name in sorted(saved):
        a, b = saved[name], exported[name]
        if a.shape != b.shape or a.dtype != b.dtype or not np.array_equal(a, b):
            raise SystemExit(f"FAIL: {name}: checkpoint {a.dtype}{list(a.shape)}, export {b.dtype}{list(b.shape)}, "
                             f"max difference {np.abs(a.astype(np.float64) - b.astype(np.float64)).max() if a.shape == b.shape else 'n/a'}")
    print(f"ok every one of the {len(saved)} tensors of {export}/model.safetensors equals {checkpoint}/model.pt's")


if __name__ == "__main__":
    main()
