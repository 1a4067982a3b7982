import sys
from pathlib import Path

# tests/conftest.py puts tests/ on sys.path, where the directory tests/alerting
# would be imported as a namespace package named `alerting` and hide the real
# one (the editable install's finder runs after the path finder). Put the
# repository first. (Lead: `pythonpath = ["."]` in pytest's config would do it.)
_ROOT = str(Path(__file__).resolve().parents[3])
if sys.path[:1] != [_ROOT]:
    sys.path.insert(0, _ROOT)
_mod = sys.modules.get("alerting")
if _mod is not None and getattr(_mod, "__file__", None) is None:
    for _name in [n for n in sys.modules if n == "alerting" or n.startswith("alerting.")]:
        del sys.modules[_name]
