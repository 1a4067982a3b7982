"""Write a test config as YAML."""
from pathlib import Path

from ruamel.yaml import YAML


def dump(data, path: Path) -> None:
    with open(path, "w") as f:
        YAML(typ="safe", pure=True).dump(data, f)
