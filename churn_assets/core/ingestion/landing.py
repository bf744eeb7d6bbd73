"""Finding landed files and deciding, from their content hashes, which to ingest.

A file is identified by its source and name; its content by its SHA-256. The decision is pure:
callers pass what was already ingested, so the sensor and the CLI share one rule set.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from churn_assets.core.errors import ChurnError
from churn_assets.core.ingestion.sources import FILE_SUFFIXES, SOURCES

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class LandingError(ChurnError):
    """A landed file that cannot be ingested; the message names the file and what to fix."""


@dataclass(frozen=True)
class LandedFile:
    """One file in ``landing/<source>/`` with the stat signature used to notice changes."""

    source: str
    name: str
    path: Path
    size: int
    mtime_ns: int

    @property
    def file_id(self) -> str:
        return f"{self.source}/{self.name}"


def check_file_name(name: str) -> str:
    """Return ``name`` if it is a plain file name that stays inside its landing folder."""
    if not _SAFE_NAME.match(name) or ".." in name:
        raise LandingError(
            f"landing file name {name!r} is not allowed: use letters, digits, '.', '_' and '-' only, "
            "no path separators, at most 200 characters"
        )
    if not name.lower().endswith(FILE_SUFFIXES):
        raise LandingError(f"landing file {name!r} must end with one of {', '.join(FILE_SUFFIXES)}")
    return name


def landed_path(landing_dir: Path, source: str, name: str) -> Path:
    """The path of landed file ``name`` of ``source``; refuses names that would escape the folder."""
    if source not in SOURCES:
        raise LandingError(f"unknown source {source!r}; expected one of {sorted(SOURCES)}")
    folder = (landing_dir / source).resolve()
    path = (folder / check_file_name(name)).resolve()
    if path.parent != folder:
        raise LandingError(f"landing file {name!r} resolves outside {folder}")
    return path


# What to do with a file type people export but the pipeline does not read.
_CONVERT_ADVICE = {
    ".gz": "only gzip-compressed CSV (.csv.gz) is read; decompress it and land the file inside",
    ".zip": "unzip it and land the CSV or Parquet files inside",
    ".xlsx": "save the sheet as CSV (UTF-8) and land that",
    ".xls": "save the sheet as CSV (UTF-8) and land that",
    ".json": "export it as CSV or Parquet and land that",
    ".jsonl": "export it as CSV or Parquet and land that",
    ".txt": "rename it to .csv if it is comma-separated",
    ".tsv": "export it comma-separated as .csv",
}


@dataclass(frozen=True)
class Refusal:
    """A file under landing/ that is not read, and why; ``file`` is its path inside landing/."""

    file: str
    reason: str

    @property
    def message(self) -> str:
        return f"refused {self.file}: {self.reason}"


_SYMLINK_REASON = "a symbolic link; links are not followed (nothing outside landing/ is opened), so land the file itself"


def scan_landing(landing_dir: Path) -> tuple[list[LandedFile], list[Refusal]]:
    """Landed files of every source, sorted by source and name, plus one refusal per other file
    found there: a name or type the pipeline does not read, a file in a subfolder, a symbolic
    link (never opened). Hidden files (a dot first, as tools name a file still being written)
    are left alone."""
    files, refused = [], []
    for source in SOURCES:
        folder = landing_dir / source
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):
                continue
            if path.is_symlink():
                refused.append(Refusal(f"{source}/{path.name}", _SYMLINK_REASON))
                continue
            if path.is_dir():
                refused += [_subfolder_refusal(landing_dir, source, inner) for inner in _files_under(path)]
                continue
            if not path.is_file():
                continue
            try:
                check_file_name(path.name)
            except LandingError as exc:
                refused.append(_unreadable_name(source, path.name, exc))
                continue
            stat = path.stat()
            files.append(LandedFile(source, path.name, path, stat.st_size, stat.st_mtime_ns))
    return files, refused + _outside_source_folders(landing_dir)


def _outside_source_folders(landing_dir: Path) -> list[Refusal]:
    """A refusal for each file under ``landing_dir`` but not in a source's folder."""
    if not landing_dir.is_dir():
        return []
    folders = ", ".join(f"landing/{s}/" for s in SOURCES)
    strays = []
    for entry in sorted(landing_dir.iterdir()):
        if entry.name.startswith(".") or entry.name in SOURCES:
            continue
        for path in [entry] if entry.is_file() else _files_under(entry) if entry.is_dir() else []:
            strays.append(Refusal(path.relative_to(landing_dir).as_posix(), f"not in a source folder; land it in one of {folders}"))
    return strays


def landing_holds_files(landing_dir: Path) -> bool:
    """Whether anything at all lies under ``landing_dir``: sample data goes only into an empty one."""
    return landing_dir.is_dir() and any(p.is_file() for p in landing_dir.rglob("*"))


def _files_under(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if (p.is_file() or p.is_symlink()) and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _subfolder_refusal(landing_dir: Path, source: str, path: Path) -> Refusal:
    inside = path.relative_to(landing_dir).as_posix()
    if path.is_symlink():
        return Refusal(inside, _SYMLINK_REASON)
    return Refusal(inside, f"files in subfolders are not read; move it into landing/{source}/ under a unique name")


def _unreadable_name(source: str, name: str, error: LandingError) -> Refusal:
    suffix = Path(name).suffix.lower()
    if suffix in _CONVERT_ADVICE:
        return Refusal(f"{source}/{name}", f"{suffix} files are not read; {_CONVERT_ADVICE[suffix]}")
    return Refusal(f"{source}/{name}", str(error))


def settled(landed: LandedFile, now_ns: int, settle_seconds: float) -> bool:
    """Whether ``landed`` has not been modified for ``settle_seconds``: a file still being copied
    keeps moving its modification time, so it is left for a later run instead of read half-way."""
    return now_ns - landed.mtime_ns >= settle_seconds * 1e9


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks so large files stay out of memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def changed_content_message(file_id: str, previous_sha: str, sha: str) -> str:
    return (
        f"refused {file_id}: its content changed since it was ingested "
        f"(sha256 {previous_sha[:12]}… then, {sha[:12]}… now). The rows ingested from it stay "
        "as they were. Land the new content under a new file name, or re-materialize the "
        "partition with config allow_changed_content: true to replace them."
    )


def check_content_unchanged(
    file_id: str, sha: str, requested_sha: str | None, ingested_sha: str | None, allow_change: bool
) -> None:
    """Raise ``LandingError`` when a file's content is not what was requested or ingested."""
    if requested_sha and sha != requested_sha:
        raise LandingError(
            f"{file_id} changed after it was requested for ingestion (sha256 {requested_sha[:12]}… "
            f"requested, {sha[:12]}… now); the landing sensor will decide on the new content"
        )
    if ingested_sha and ingested_sha != sha and not allow_change:
        raise LandingError(changed_content_message(file_id, ingested_sha, sha))


class Verdict(str, Enum):
    NEW = "new"
    ALREADY_INGESTED = "already_ingested"
    DUPLICATE_CONTENT = "duplicate_content"
    CHANGED_CONTENT = "changed_content"


@dataclass(frozen=True)
class IngestDecision:
    file: LandedFile
    sha256: str
    verdict: Verdict
    message: str
    retry_of: str | None = None  # the run that failed because of the machine, when this retries it

    @property
    def run_key(self) -> str:
        """Run keys are remembered forever, so the content hash is part of the key, and a retry
        names the failed run it retries (one retry per failure)."""
        key = f"{self.file.file_id}@{self.sha256}"
        return key if self.retry_of is None else f"{key}/retry-of/{self.retry_of}"


def decide_ingestion(
    candidates: Iterable[tuple[LandedFile, str]],
    ingested: Mapping[str, Mapping[str, str]],
    requested: Mapping[str, Mapping[str, str]] | None = None,
) -> list[IngestDecision]:
    """Decide for each (file, sha256) whether to ingest it.

    ``ingested`` maps source -> {file name: sha256} of files whose rows are in bronze;
    ``requested`` the same for files already requested but perhaps not (or not successfully)
    ingested. The same content is ingested once per source, whatever its name; a name that was
    ingested with other content is refused so the old rows stay untouched.
    """
    decisions = []
    by_sha: dict[str, dict[str, str]] = {}
    for known in (requested or {}, ingested):
        for source, names in known.items():
            by_sha.setdefault(source, {}).update({sha: name for name, sha in names.items()})
    for landed, sha in candidates:
        names = ingested.get(landed.source, {})
        shas = by_sha.setdefault(landed.source, {})
        previous = names.get(landed.name)
        if previous == sha:
            verdict, message = Verdict.ALREADY_INGESTED, f"{landed.file_id} is already ingested"
        elif previous is not None:
            verdict = Verdict.CHANGED_CONTENT
            message = changed_content_message(landed.file_id, previous, sha)
        elif shas.get(sha, landed.name) != landed.name:
            verdict = Verdict.DUPLICATE_CONTENT
            message = (
                f"skipped {landed.file_id}: same content as {landed.source}/{shas[sha]}, "
                "which is already ingested or requested"
            )
        else:
            verdict, message = Verdict.NEW, f"ingesting {landed.file_id}"
            shas[sha] = landed.name
        decisions.append(IngestDecision(landed, sha, verdict, message))
    return decisions
