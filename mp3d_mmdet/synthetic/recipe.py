"""The recipe file of a generated folder: what decided its bytes (the generator's arguments
and a digest of the generator's source), written last so that a folder holding it is complete
and can be recognised and reused (``mp3d-make-synthetic-deeplesion --reuse``)."""
import hashlib
import json
import os
import os.path as osp
from typing import Any, Dict, Optional

from ..utils.safe_files import atomic_write

__all__ = ['RECIPE_FILE', 'generator_digest', 'read_synthetic_recipe', 'write_recipe']

#: Written last into every generated folder: the arguments and the generator's source digest.
RECIPE_FILE = 'synthetic_recipe.json'


def generator_digest() -> str:
    """SHA-256 (hex) over the source of every module of :mod:`mp3d_mmdet.synthetic` (each
    module's name and digest, in name order): a change to any of them changes it."""
    folder = osp.dirname(osp.abspath(__file__))
    digest = hashlib.sha256()
    for name in sorted(n for n in os.listdir(folder) if n.endswith('.py')):
        with open(osp.join(folder, name), 'rb') as handle:
            digest.update(f'{name} {hashlib.sha256(handle.read()).hexdigest()}\n'.encode())
    return digest.hexdigest()


def read_synthetic_recipe(out_dir: str) -> Optional[Dict[str, Any]]:
    """The recipe stored in a generated folder, or None if it has none (or it is unreadable)."""
    try:
        with open(osp.join(out_dir, RECIPE_FILE)) as handle:
            recipe = json.load(handle)
    except (OSError, ValueError):
        return None
    return recipe if isinstance(recipe, dict) else None


def write_recipe(path: str, recipe: Dict[str, Any]) -> None:
    """Write ``recipe`` as indented JSON with sorted keys, whole or not at all."""
    with atomic_write(path) as handle:
        json.dump(recipe, handle, indent=2, sort_keys=True)
