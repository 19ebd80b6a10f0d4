#!/usr/bin/env python3
"""Checks that a control-vector GGUF written by this project reads back with repeng's importer
and the gguf package, and follows llama.cpp's loader rules. Run by hand in the reference venv:
    python scripts/reference/check_vector_file.py FILE.gguf
"""
import re
import sys

import gguf
import numpy as np
from repeng import ControlVector

path = sys.argv[1]
r = gguf.GGUFReader(path)
arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
assert arch == "controlvector", arch
names = [t.name for t in r.tensors]
lengths = set()
for t in r.tensors:
    m = re.fullmatch(r"direction\.(\d+)", t.name)
    assert m, f"llama.cpp rejects tensor {t.name}"
    assert int(m.group(1)) > 0, "llama.cpp rejects direction.0"
    assert t.tensor_type == gguf.GGMLQuantizationType.F32 and len(t.shape) == 1, t.name
    lengths.add(int(t.shape[0]))
assert len(lengths) == 1, lengths
v = ControlVector.import_gguf(path)
for t in r.tensors:
    layer = int(t.name.split(".")[1])
    assert np.array_equal(v.directions[layer], np.asarray(t.data)), layer
print(f"ok: {path}: {len(names)} directions of length {lengths.pop()}, model_type {v.model_type!r}; "
      f"keys: {', '.join(k for k in r.fields if not k.startswith('GGUF.'))}")
