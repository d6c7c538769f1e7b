"""Versioned artifact directories with a manifest and an atomically swapped CURRENT pointer.

Layout: ROOT/<version>/ (files + manifest.json), ROOT/CURRENT (a text file naming the version,
replaced with os.replace, so readers see the old or the new version, never half of one).
The previous version is kept for rollback; older ones are pruned beyond `keep`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymk.errors import ArtifactError

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
POINTER = "CURRENT"
# each stage of the nightly refresh (pymk/refresh.py) that publishes, and the artifact store it publishes to
PUBLISHES = {"snapshot": "snapshot", "embeddings": "embeddings", "ranker": "ranker", "precompute": "candidates"}


class ArtifactStore:
    """A family of versioned artifacts (snapshots, embeddings, ranker models) under one root."""

    def __init__(self, root: Path, keep: int = 3) -> None:
        self.root = root
        self.keep = max(2, keep)

    def staging_dir(self) -> Path:
        """A fresh private directory to write a new version into before `publish`."""
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and (p / MANIFEST).exists())

    def publish(self, staging: Path, manifest: dict[str, Any], make_current: bool = True) -> Path:
        """Move a staged directory into place as a new version and (by default) point CURRENT at it."""
        version = datetime.now(UTC).strftime("v%Y%m%dT%H%M%S%f")
        while (self.root / version).exists():  # same microsecond: keep names unique and ordered
            version += "a"
        manifest = {"version": version, "published_at": time.time(), **manifest}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        final = self.root / version
        os.replace(staging, final)
        if make_current:
            self.set_current(version)
        self._prune()
        log.info("published %s", final)
        return final

    def set_current(self, version: str) -> None:
        if not (self.root / version / MANIFEST).exists():
            raise ArtifactError(f"no complete version {version!r} under {self.root}")
        tmp = self.root / f".{POINTER}.tmp-{os.getpid()}"
        tmp.write_text(version + "\n")
        os.replace(tmp, self.root / POINTER)

    def current_version(self) -> str | None:
        try:
            version = (self.root / POINTER).read_text().strip()
        except FileNotFoundError:
            return None
        return version or None

    def current(self) -> Path:
        version = self.current_version()
        if version is None:
            raise ArtifactError(f"no published version under {self.root} (no {POINTER} pointer)")
        path = self.root / version
        if not (path / MANIFEST).exists():
            raise ArtifactError(f"{POINTER} names {version!r} but {path} has no {MANIFEST}")
        return path

    def manifest(self, path: Path) -> dict[str, Any]:
        try:
            return json.loads((path / MANIFEST).read_text())
        except FileNotFoundError:
            raise ArtifactError(f"{path} has no {MANIFEST}") from None

    def pinned(self, version: str | None) -> PinnedStore:
        """A view of this store whose current version is `version` (None: none yet), for a job that makes a
        chain of versions to release together later."""
        return PinnedStore(self.root, version, self.keep)

    def _prune(self) -> None:
        versions = self.versions()
        keep = {self.current_version(), ArtifactStore.current_version(self)}   # a pinned view's too
        for old in versions[: max(0, len(versions) - self.keep)]:
            if old not in keep:
                shutil.rmtree(self.root / old, ignore_errors=True)


class PinnedStore(ArtifactStore):
    """A store read at a pinned version, not at its CURRENT pointer: what it publishes becomes the pin and
    leaves CURRENT (what the API serves) alone until `release` points it there."""

    def __init__(self, root: Path, version: str | None, keep: int = 3) -> None:
        super().__init__(root, keep)
        self.version = version

    def current_version(self) -> str | None:
        return self.version

    def publish(self, staging: Path, manifest: dict[str, Any], make_current: bool = True) -> Path:
        path = super().publish(staging, manifest, make_current=False)
        self.version = path.name
        return path

    def release(self) -> bool:
        """Point CURRENT at the pin; whether it moved."""
        if self.version is None or ArtifactStore.current_version(self) == self.version:
            return False
        self.set_current(self.version)
        return True
        for stale in self.root.glob(".staging-*"):
            if time.time() - stale.stat().st_mtime > 24 * 3600:
                shutil.rmtree(stale, ignore_errors=True)


def live_stores(dirs: dict[str, Path]) -> dict[str, ArtifactStore]:
    """Each store of `dirs` (Settings.artifact_dirs) by name, read at its CURRENT pointer: what the API serves."""
    return {name: ArtifactStore(root) for name, root in dirs.items()}


def release(stores: dict[str, PinnedStore]) -> dict[str, str]:
    """Point every store's CURRENT at its pin, in reverse order of `stores` (Settings.artifact_dirs: the lists
    first and the snapshot last, so the API, which reloads on any pointer it sees move, meets the artifact a
    later one was made from last); what moved, by name."""
    return {name: stores[name].version for name in reversed(list(stores)) if stores[name].release()}
