"""Make the CUDA-only torchvision wheel importable beside the CPU torch wheel (CPU venv only).

Why: PyPI has no CPU torchvision for Linux x86_64. The torchvision that matches torch 2.13
(0.28.0) is a CUDA build whose C extension cannot load here, and
``torchvision/_meta_registrations.py`` then registers fake kernels for ``torchvision::nms`` and
``torchvision::qnms`` without checking ``extension._has_ops()`` (every other registration is
guarded), so ``import torchvision`` dies with ``operator torchvision::nms does not exist``.
transformers' Qwen-VL processors cannot be built without torchvision.

Fix: define the two op schemas (no kernels) just before torchvision is first imported. Nothing in
this stack calls ``torchvision.ops.nms``; ``transforms.v2`` works. It must hold in every process,
including the workers vLLM spawns, so ``tools/setup_cpu_env.sh`` installs this module with a
``.pth`` file in the venv's site-packages. A meta-path hook keeps interpreter start-up free of
``import torch``: the schemas are defined only when something imports torchvision.

Never installed in the cluster environment, whose CUDA torchvision has real ops.
"""

from __future__ import annotations

import importlib.abc
import sys

_done = False


def _define_schemas() -> None:
    global _done
    if _done:
        return
    _done = True
    try:
        import torch

        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        # Keep the library object alive: dropping it would unregister the schemas.
        sys.modules[__name__]._torchvision_lib = lib  # type: ignore[attr-defined]
    except Exception:  # a torchvision with real ops defined them already: nothing to do
        pass


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001
        if fullname == "torchvision":
            sys.meta_path.remove(self)
            _define_schemas()
        return None  # let the normal finders import torchvision


def install() -> None:
    if "torchvision" in sys.modules:
        return
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
