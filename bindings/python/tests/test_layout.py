# SPDX-License-Identifier: MIT
"""Every ctypes mirror in discshm/_ffi.py against the compiler's layout of
discshm.h (printed by layout_probe): same size, and every field the probe
names at the same offset. Fails as soon as a C struct changes without the
mirror following."""

import json
import os
import subprocess

from discshm import _ffi


def probe():
    exe = os.path.join(os.environ["DISC_BUILD_DIR"], "bindings", "python", "layout_probe")
    return json.loads(subprocess.run([exe], check=True, capture_output=True, text=True).stdout)


def test_every_mirror_matches_the_c_layout():
    c = probe()
    assert set(c) == set(_ffi.MIRRORS), "probe and _ffi.MIRRORS list different structs"
    for name, cls in _ffi.MIRRORS.items():
        import ctypes
        assert ctypes.sizeof(cls) == c[name]["size"], \
            f"struct {name}: C has {c[name]['size']} bytes, the ctypes mirror {ctypes.sizeof(cls)}"
        for fname, off in c[name]["fields"].items():
            assert hasattr(cls, fname), f"struct {name}: mirror lacks field {fname}"
            assert getattr(cls, fname).offset == off, \
                f"struct {name}.{fname}: C offset {off}, mirror {getattr(cls, fname).offset}"
