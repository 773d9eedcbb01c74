"""Where things live: the repository, the ``data/`` artifacts and their manifest.

Every file under ``data/`` is produced by a script of this repository and listed in
``data/MANIFEST.json`` with its SHA-256, size, the command that produced it, the seed and the
package versions. :func:`data_path` verifies the hash before a chapter loads a file, so a
missing or corrupted artifact fails loudly and says how to regenerate it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from lgutils.core.validate import check_positive_int

__all__ = [
    "ArtifactError",
    "MissingArtifactError",
    "CorruptArtifactError",
    "repo_root",
    "data_dir",
    "manifest_path",
    "load_manifest",
    "data_path",
    "sha256",
    "record_artifact",
    "package_versions",
]

MANIFEST_NAME = "MANIFEST.json"
#: Where the artifacts are fetched from when lgutils runs outside a checkout of the book (on
#: Colab, say), into :data:`DOWNLOAD_CACHE`; ``LGUTILS_DATA_URL`` overrides it.
DATA_URL = "https://raw.githubusercontent.com/local-global-learning/book/main/data"
DOWNLOAD_CACHE = Path.home() / ".cache" / "lgutils" / "data"
_VERSIONED = ("numpy", "scipy", "casadi", "gymnasium", "stable-baselines3", "torch", "lgutils")


class ArtifactError(ValueError):
    """A data artifact is missing, unlisted or does not match its manifest entry."""


class MissingArtifactError(ArtifactError, FileNotFoundError):
    """A data artifact (or its manifest entry) does not exist."""


class CorruptArtifactError(ArtifactError):
    """A data artifact's SHA-256 differs from the one recorded in the manifest."""


def repo_root() -> Path:
    """The repository's top folder (the one holding ``_toc.yml``).

    Falls back to the current working directory's ancestors, then to the current directory,
    when :mod:`lgutils` is installed outside a checkout (for example on Colab).
    """
    here = Path(__file__).resolve().parent.parent
    if (here / "_toc.yml").exists():
        return here
    for parent in [Path.cwd(), *Path.cwd().parents]:
        if (parent / "_toc.yml").exists():
            return parent
    return Path.cwd()


def data_dir() -> Path:
    """The ``data/`` folder, overridable with the ``LGUTILS_DATA_DIR`` environment variable.

    Outside a checkout of the book it is :data:`DOWNLOAD_CACHE`, which :func:`data_path` fills
    from :data:`DATA_URL` on first use.
    """
    env = os.environ.get("LGUTILS_DATA_DIR")
    if env:
        return Path(env)
    local = repo_root() / "data"
    return local if local.is_dir() else DOWNLOAD_CACHE


def _download(name: str, root: Path) -> None:
    """Fetch ``name`` (relative to ``data/``) from :data:`DATA_URL` into ``root``."""
    import urllib.request

    url = f"{os.environ.get('LGUTILS_DATA_URL', DATA_URL).rstrip('/')}/{name}"
    dst = root / name
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (a fixed https URL)
            dst.write_bytes(response.read())
    except OSError as exc:
        raise MissingArtifactError(
            f"data artifact {name!r} is not in a checkout of the book and could not be fetched "
            f"from {url} ({exc}); clone the repository or set LGUTILS_DATA_DIR"
        ) from exc


def _as_path(name: str, value: object) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ValueError(f"{name} must be a path (str or pathlib.Path), got {value!r}")
    return Path(value)


def _root(root: object) -> Path:
    return data_dir() if root is None else _as_path("root", root)


def manifest_path(root: Path | None = None) -> Path:
    """Path of the manifest inside ``root`` (default :func:`data_dir`)."""
    return _root(root) / MANIFEST_NAME


def load_manifest(root: Path | None = None) -> dict[str, dict]:
    """Read the manifest: a mapping from a path relative to ``data/`` to its record.

    Raises
    ------
    ArtifactError
        If the manifest exists but is not valid JSON with an ``"artifacts"`` mapping.
    """
    path = manifest_path(root)
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(
            f"the manifest {path} is not valid JSON ({exc}); restore it from git or regenerate "
            "the artifacts (see the README's Reproducibility section)"
        ) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("artifacts"), dict):
        raise ArtifactError(
            f"the manifest {path} must hold a JSON object with an 'artifacts' mapping, got "
            f"{type(doc).__name__} with keys {sorted(doc) if isinstance(doc, dict) else []}"
        )
    return doc["artifacts"]


def sha256(path: Path) -> str:
    """Hex SHA-256 digest of a file.

    Raises
    ------
    MissingArtifactError
        If ``path`` is not an existing file.
    """
    path = _as_path("path", path)
    if not path.is_file():
        raise MissingArtifactError(f"path {path} is not an existing file")
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def data_path(name: str, root: Path | None = None) -> Path:
    """Return the verified path of the artifact ``name`` (relative to ``data/``).

    Raises
    ------
    MissingArtifactError
        If the file or its manifest entry is missing; the message names the regenerating command.
    CorruptArtifactError
        If the file's SHA-256 differs from the manifest's.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"name must be a non-empty path relative to data/, such as 'cstr_sac/weights.npz', "
            f"got {name!r}"
        )
    root = _root(root)
    if root == DOWNLOAD_CACHE and not (root / name).exists():
        _download(MANIFEST_NAME, root)
        _download(name, root)
    entries = load_manifest(root)
    path = root / name
    entry = entries.get(name)
    if entry is None:
        raise MissingArtifactError(
            f"data artifact {name!r} is not listed in {manifest_path(root)}; "
            "regenerate it with the script that produces it (see the README's Reproducibility section)"
        )
    if not path.exists():
        raise MissingArtifactError(
            f"data artifact {path} is missing; regenerate it with: {entry['command']}"
        )
    digest = sha256(path)
    if digest != entry["sha256"]:
        raise CorruptArtifactError(
            f"data artifact {path} is corrupted (sha256 {digest[:12]}..., manifest says "
            f"{entry['sha256'][:12]}...); regenerate it with: {entry['command']}"
        )
    return path


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages that determine the book's numbers."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def record_artifact(
    path: Path,
    command: str,
    seed: int | None = None,
    extra: dict | None = None,
    root: Path | None = None,
) -> dict:
    """Add or update the manifest entry of an artifact a script just wrote.

    Parameters
    ----------
    path : Path
        The artifact, inside ``root``.
    command : str
        The shell command that regenerates it, e.g. ``"python -m lgutils.value_function_mpc.train cstr --seed 0"``.
    seed : int, optional
        The seed it was produced with.
    extra : dict, optional
        Anything else worth keeping (steps, wall time, ...).
    root : Path, optional
        The data folder (default :func:`data_dir`).

    Returns
    -------
    dict
        The manifest entry written.
    """
    root = _root(root)
    path = _as_path("path", path).resolve()
    if not path.is_file():
        raise MissingArtifactError(f"path {path} is not an existing file: write the artifact first")
    if not path.is_relative_to(root.resolve()):
        raise ValueError(f"path must lie inside the data folder {root}, got {path}")
    rel = path.relative_to(root.resolve()).as_posix()
    if not isinstance(command, str) or not command.strip():
        raise ValueError(f"command must be the shell command that regenerates it, got {command!r}")
    if seed is not None:
        seed = check_positive_int("seed", seed, minimum=0)
    if extra is not None and not isinstance(extra, dict):
        raise ValueError(f"extra must be a dict or None, got {type(extra).__name__}")
    mpath = manifest_path(root)
    doc = {"artifacts": load_manifest(root)}
    entry = {
        "sha256": sha256(path),
        "bytes": path.stat().st_size,
        "command": command,
        "seed": seed,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": package_versions(),
        "platform": f"{platform.system()} {platform.machine()}, {sys.implementation.name}",
    }
    if extra:
        entry.update(extra)
        try:
            json.dumps(entry, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"extra must hold JSON values (numbers, strings, lists, dicts) without NaN or "
                f"infinity, got {extra!r}: {exc}"
            ) from exc
    doc["artifacts"][rel] = entry
    doc["artifacts"] = dict(sorted(doc["artifacts"].items()))
    mpath.write_text(json.dumps(doc, indent=2) + "\n")
    return entry
