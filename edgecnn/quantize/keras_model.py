"""Load a trained Keras model safely (host side; imports Keras inside the function).

Only the Keras 3 ``.keras`` zip format is accepted, loaded with ``safe_mode=True``. Refused with one clear line:
legacy ``.h5``/``.hdf5`` files (they ignore ``safe_mode``), SavedModel folders, anything that is not a ``.keras``
zip, and models containing a ``Lambda`` layer (arbitrary Python code).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from edgecnn.errors import ModelError

_MAX_CONFIG_BYTES = 64 * 2**20


def _config_mentions_lambda(cfg: object) -> bool:
    if isinstance(cfg, dict):
        if cfg.get("class_name") == "Lambda":
            return True
        return any(_config_mentions_lambda(v) for v in cfg.values())
    if isinstance(cfg, list):
        return any(_config_mentions_lambda(v) for v in cfg)
    return False


def check_keras_file(path: str | Path) -> None:
    """ModelError unless ``path`` is a ``.keras`` zip without a Lambda layer (no Keras import needed)."""
    p = Path(path)
    if p.is_dir():
        if (p / "saved_model.pb").exists():
            raise ModelError(f"{p} is a TensorFlow SavedModel folder; edgecnn needs a Keras 3 .keras file "
                             "(save with model.save('model.keras'))")
        raise ModelError(f"{p} is a folder, not a Keras model; pass a run folder or a .keras file")
    if not p.exists():
        raise ModelError(f"model not found: {p}")
    if p.suffix.lower() in (".h5", ".hdf5"):
        raise ModelError(f"{p}: legacy .h5 models are refused (they load without safe mode); re-save the model "
                         "as .keras with Keras 3")
    if not zipfile.is_zipfile(p):
        raise ModelError(f"{p} is not a Keras model (.keras zip archive); check the path or re-save the model")
    try:
        with zipfile.ZipFile(p) as z:
            if z.getinfo("config.json").file_size > _MAX_CONFIG_BYTES:  # a zip bomb, not a model description
                raise ModelError(f"{p}: config.json unpacks to {z.getinfo('config.json').file_size:,} bytes; "
                                 "refused (a real model's is a few hundred KB)")
            cfg = json.loads(z.read("config.json"))
    except (KeyError, ValueError, zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"{p} is not a valid .keras model (no readable config.json); re-save it") from exc
    if _config_mentions_lambda(cfg):
        raise ModelError(f"{p} contains a Lambda layer, which can run arbitrary code; refused. Replace it with a "
                         "registered custom layer")


def load_keras_model(path: str | Path):
    """``keras.Model`` from a ``.keras`` file, loaded with ``safe_mode=True`` after :func:`check_keras_file`."""
    check_keras_file(path)
    import keras  # lazy: keras

    try:
        model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError/TypeError/OSError for broken archives
        raise ModelError(f"{path} could not be loaded as a Keras model ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); re-save it") from exc
    if not isinstance(model, keras.Model):
        raise ModelError(f"{path} holds a {type(model).__name__}, not a keras.Model")
    return model
