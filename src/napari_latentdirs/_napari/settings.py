"""What the docks remember between sessions: their controls and this machine's step times.

One JSON file, ``settings.json`` in the user's config folder (``platformdirs``), or in
``$LATENTDIRS_CONFIG_DIR`` when set (the tests point it at a temporary folder, so they
never write the real user's file). Written atomically; an unreadable file is ignored
with a logged note, never a failed dock.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ..utils.atomic import atomic_write_text

log = logging.getLogger(__name__)

ENV = "LATENTDIRS_CONFIG_DIR"
APP = "napari-latentdirs"


def settings_path() -> Path:
    root = os.environ.get(ENV)
    if root:
        return Path(root) / "settings.json"
    import platformdirs

    return Path(platformdirs.user_config_dir(APP)) / "settings.json"


def load_all() -> dict[str, Any]:
    path = settings_path()
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable settings %s: %s", path, exc)
        return {}
    return doc if isinstance(doc, dict) else {}


def load(section: str) -> dict[str, Any]:
    value = load_all().get(section)
    return value if isinstance(value, dict) else {}


def save(section: str, values: dict[str, Any]) -> None:
    """Replace one section (a dock's controls, the step times) of the settings file."""
    doc = load_all()
    doc[section] = values
    path = settings_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=True))
    except OSError as exc:  # a read-only home must not break a dock
        log.warning("cannot save settings to %s: %s", path, exc)


def update(section: str, **values: Any) -> None:
    save(section, {**load(section), **values})
