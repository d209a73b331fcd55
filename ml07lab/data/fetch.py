"""The data hub: where each real dataset comes from, and how it lands on disk verified.

Why digests everywhere: the lab is about a supply-chain attack, so its own data path
practises what it preaches. Every downloaded or imported file is checked against a
pinned sha256 before anything reads it, downloads are atomic (no half files), and
archives are extracted with path checks (no `../` or absolute members).

Layout written under `<data_root>/raw/<name>/` (the same as the offline mirror):
  att: olivetti/olivettifaces.mat  (online)  and/or  att_faces/s1..s40/*.pgm  (mirror)
  lfw: lfw_min5/<Name>/<Name>_NNNN.jpg  (people with >= 5 images)
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
from collections import Counter
from pathlib import Path, PurePosixPath

from ..artifacts import sha256_file
from .base import DataError

DATASET_NAMES = ("att", "lfw")
LFW_MIN_IMAGES_ON_DISK = 5  # what `fetch("lfw")` keeps; load_lfw filters further

# DATA_HUB[name] = (url, sha256), in the style of d2l. Digests are the ones scikit-learn
# pins for the same files (sklearn/datasets/_olivetti_faces.py and _lfw.py).
DATA_HUB: dict[str, tuple[str, str]] = {
    # AT&T: the original Cambridge archive (att_faces.zip) was never published with a
    # digest and its host has moved several times, so the online source is the Olivetti
    # .mat (the same 400 faces, hand-aligned, 64x64) that scikit-learn downloads.
    "olivettifaces.mat": (
        "https://ndownloader.figshare.com/files/5976027",
        "b612fb967f2dc77c9c62d3e1266e0c73d5fca46a4b8906c18e454d41af987794",
    ),
    # LFW original (not funneled), as `fetch_lfw_people(funneled=False)` downloads it.
    "lfw.tgz": (
        "https://ndownloader.figshare.com/files/5976018",
        "055f7d9c632d7370e6fb4afc7468d40f970c34a80d4c6f50ffec63f5a8d536c0",
    ),
}

# Which hub files make up each dataset, and which mirror sub-folders hold it.
_ONLINE = {"att": "olivettifaces.mat", "lfw": "lfw.tgz"}
_MIRROR_PARTS = {"att": ("att_faces/", "olivetti/olivettifaces.mat"), "lfw": ("lfw_min5/",)}
_IMPORT_EXTS = (".pgm", ".jpg", ".jpeg", ".png", ".mat")
_MARKER = ".prepared.json"


def _check_name(name: str) -> None:
    if name not in DATASET_NAMES:
        raise DataError(
            f"Unknown dataset {name!r}. Valid names: {', '.join(DATASET_NAMES)} "
            "(or 'all' on the command line)."
        )


def raw_root(name: str, data_root: Path) -> Path:
    """`<data_root>/raw/<name>`: where the loaders in `real.py` read `name` from."""
    _check_name(name)
    return Path(data_root) / "raw" / name


def is_prepared(name: str, data_root: Path) -> bool:
    """True once a fetch or import of `name` completed (its marker is written last)."""
    root = raw_root(name, data_root)
    if not (root / _MARKER).is_file():
        return False
    if name == "att":
        return (root / "att_faces" / "s1").is_dir() or (root / "olivetti" / "olivettifaces.mat").is_file()
    return (root / "lfw_min5").is_dir()


def _write_marker(name: str, data_root: Path, how: str, n_files: int) -> None:
    root = raw_root(name, data_root)
    fd, tmp = tempfile.mkstemp(dir=root, prefix=f"{_MARKER}.pid{os.getpid()}.", suffix=_TMP_SUFFIX)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps({"dataset": name, "how": how, "files": n_files}, indent=1))
        os.replace(tmp, root / _MARKER)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- download ----------------------------------------------------------------------------

def download(url: str, sha256: str, dest: Path, progress: bool = True) -> Path:
    """Fetch `url` to `dest`, verified. Skips the fetch when `dest` already has `sha256`.

    Streams to a temp file beside `dest`, checks the digest, then renames atomically, so
    an interrupted or tampered download never leaves a file that looks complete.
    Any urllib scheme works, including file:// (offline tests, local mirrors).
    """
    dest = Path(dest)
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    try:
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "ml07lab"})
            with os.fdopen(fd, "wb") as f, urllib.request.urlopen(req, timeout=60) as r:
                total = int(r.headers.get("Content-Length") or 0) or None
                bar = _bar(total, dest.name, progress)
                for block in iter(lambda: r.read(1 << 20), b""):
                    f.write(block)
                    h.update(block)
                    bar.update(len(block))
                bar.close()
        except OSError as e:  # URLError, HTTPError, timeouts are OSErrors
            raise DataError(
                f"Download of {url} failed: {e}. Check the network (or a proxy), or work "
                "offline: `ml07lab data import NAME --from ../shared/data`."
            ) from e
        got = h.hexdigest()
        if got != sha256:
            raise DataError(
                f"sha256 mismatch for {url}: expected {sha256}, got {got}. The file was "
                "truncated, changed or tampered with, and was deleted. Retry; if it "
                "persists, do not use this source (report it), or import from a verified "
                "mirror with `ml07lab data import NAME --from DIR`."
            )
        os.replace(tmp, dest)
        return dest
    finally:
        if tmp.exists():
            tmp.unlink()


def _bar(total: int | None, desc: str, enabled: bool):  # noqa: ANN202 - tqdm or a stub
    try:
        from tqdm.auto import tqdm

        return tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not enabled)
    except ImportError:  # tqdm is a dependency, but a bar is not worth failing for
        class _Null:
            def update(self, n: int) -> None: ...
            def close(self) -> None: ...
        return _Null()


# --- safe extraction ---------------------------------------------------------------------

def _safe_member_name(name: str) -> PurePosixPath:
    """Refuse absolute paths and `..` (path traversal: CVE-2007-4559 and friends)."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise DataError(
            f"Refusing to extract archive member {name!r}: it would write outside the "
            "target folder. The archive is malicious or corrupt; delete it and fetch again."
        )
    return p


def safe_extract(archive: Path, dest: Path, select=None) -> int:  # noqa: ANN001 - callable
    """Extract regular files of a tar archive into `dest`, checked member by member.

    `select(member_path) -> new relative path | None` renames or skips members. Links,
    devices and unsafe names raise DataError before anything is written; Python's
    `filter="data"` is applied on top where available. Returns files extracted.
    """
    dest = Path(dest)
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            chosen = []
            for m in members:
                rel = _safe_member_name(m.name)
                if m.issym() or m.islnk() or m.isdev() or m.isfifo():
                    raise DataError(
                        f"Refusing to extract archive member {m.name!r}: links and devices "
                        "are not expected in a face dataset. Delete the archive and fetch again."
                    )
                if not m.isfile():
                    continue
                new = select(rel) if select else rel
                if new is None:
                    continue
                m.name = str(_safe_member_name(str(new)))
                chosen.append(m)
            dest.mkdir(parents=True, exist_ok=True)
            kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(dest, members=chosen, **kw)
            return len(chosen)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(
            f"Cannot extract {archive}: {e}. Delete it and fetch again."
        ) from e


# --- fetch (online) ----------------------------------------------------------------------

def fetch(name: str, data_root: Path, progress: bool = True, keep_archive: bool = True) -> Path:
    """Download, verify and unpack `name` into `raw_root(name, data_root)`; returns it."""
    _check_name(name)
    data_root = Path(data_root)
    root = raw_root(name, data_root)
    url, digest = DATA_HUB[_ONLINE[name]]
    if name == "att":
        download(url, digest, root / "olivetti" / "olivettifaces.mat", progress)
        _write_marker(name, data_root, f"fetch {url}", 1)
        return root
    archive = download(url, digest, data_root / "downloads" / "lfw.tgz", progress)
    with tarfile.open(archive) as tar:  # count first: keep people with >= 5 images
        counts = Counter(PurePosixPath(m.name).parts[1] for m in tar.getmembers()
                         if m.isfile() and len(PurePosixPath(m.name).parts) == 3)
    keep = {p for p, c in counts.items() if c >= LFW_MIN_IMAGES_ON_DISK}

    def select(rel: PurePosixPath) -> PurePosixPath | None:
        # lfw/<Name>/<Name>_NNNN.jpg -> lfw_min5/<Name>/<Name>_NNNN.jpg
        if len(rel.parts) == 3 and rel.parts[1] in keep and rel.suffix == ".jpg":
            return PurePosixPath("lfw_min5", *rel.parts[1:])
        return None

    staging = Path(tempfile.mkdtemp(dir=data_root / "downloads", prefix=".lfw-extract-"))
    try:
        n = safe_extract(archive, staging, select)
        root.mkdir(parents=True, exist_ok=True)
        if (root / "lfw_min5").exists():
            shutil.rmtree(root / "lfw_min5")
        os.replace(staging / "lfw_min5", root / "lfw_min5")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not keep_archive:
        archive.unlink()
    _write_marker(name, data_root, f"fetch {url}", n)
    return root


# --- import (offline mirror) -------------------------------------------------------------

def read_sha256sums(path: Path) -> dict[str, str]:
    """`<hex>  ./path` (or `<hex> *path`) lines -> {posix relative path: hex}."""
    out: dict[str, str] = {}
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            hexd, rel = line.split(None, 1)
        except ValueError:
            raise DataError(f"{path}:{i}: not a `<sha256>  <path>` line: {line!r}") from None
        rel = rel.strip().lstrip("*")
        rel = rel[2:] if rel.startswith("./") else rel
        out[str(_safe_member_name(rel))] = hexd.lower()
    return out


_TMP_SUFFIX = ".tmp"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _temp_pid(name: str) -> int | None:
    """The importing process of a temp file: `.NAME.pidPID.XXXX.tmp` (or the older `.NAME.PID.tmp`)."""
    m = re.search(r"\.pid(\d+)\.[^.]*\.tmp$", name) or re.search(r"\.(\d+)\.tmp$", name)
    return int(m.group(1)) if m else None


def remove_stale_temps(root: Path) -> int:
    """Delete temp files left under `root` by imports whose process is gone (a crash or
    kill -9); a running import's temps are left alone. Returns how many were removed."""
    n = 0
    for f in root.rglob(f".*{_TMP_SUFFIX}") if root.is_dir() else ():
        pid = _temp_pid(f.name)
        if f.is_file() and (pid is None or not _pid_alive(pid)):
            f.unlink(missing_ok=True)
            n += 1
    return n


def copy_file_atomic(src: Path, dst: Path) -> None:
    """Copy (never hardlink: an in-place edit of the copy must not reach the mirror, which
    may be the instructor's USB stick) to a unique temp file beside `dst`, then rename it
    over `dst`. The temp file is removed on every failure path."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.pid{os.getpid()}.", suffix=_TMP_SUFFIX)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def import_mirror(name: str, src: Path, data_root: Path) -> Path:
    """Import `name` from a local mirror folder (offline), verifying each file against
    the mirror's SHA256SUMS. Idempotent: files already in place and intact are skipped."""
    _check_name(name)
    src = Path(src).expanduser()
    if not src.is_dir():
        raise DataError(
            f"Mirror folder {src} not found. Pass the folder that holds SHA256SUMS and "
            "att_faces/, olivetti/, lfw_min5/ (e.g. `--from ../shared/data`, or set "
            "ML07LAB_MIRROR), or download instead with `ml07lab data fetch NAME`."
        )
    sums_path = src / "SHA256SUMS"
    if not sums_path.is_file():
        raise DataError(
            f"{sums_path} not found: the mirror cannot be verified. Create it in the mirror "
            "folder with `find . -type f ! -name SHA256SUMS -exec sha256sum {} + > SHA256SUMS`."
        )
    sums = read_sha256sums(sums_path)
    parts = _MIRROR_PARTS[name]
    wanted = sorted(
        rel for rel in sums
        if any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in parts)
        and not any(s.startswith(".") for s in PurePosixPath(rel).parts)
        and (PurePosixPath(rel).suffix.lower() in _IMPORT_EXTS or PurePosixPath(rel).name == "README")
    )
    if not wanted:
        raise DataError(
            f"The mirror {src} lists no files for {name!r} in SHA256SUMS (expected "
            f"{', '.join(parts)}). Point --from at the right folder."
        )
    root = raw_root(name, data_root)
    (root / _MARKER).unlink(missing_ok=True)  # not prepared until the import completes
    from concurrent.futures import ThreadPoolExecutor

    def one(rel: str) -> None:
        s, d, want = src / rel, root / rel, sums[rel]
        if not s.is_file():
            raise DataError(f"{rel} is listed in {sums_path} but missing from the mirror {src}.")
        if d.is_file() and not os.path.samefile(s, d) and d.stat().st_size == s.stat().st_size:
            if sha256_file(d) == want:
                return  # an intact copy (a hardlink left by an older import is replaced below)
        got = sha256_file(s)
        if got != want:
            raise DataError(
                f"Mirror file {s} fails its checksum: expected {want}, got {got}. The mirror "
                "is corrupt or was tampered with: restore that file (or fetch online) and retry."
            )
        copy_file_atomic(s, d)

    remove_stale_temps(root)
    with ThreadPoolExecutor(4) as pool:  # hashing releases the GIL
        list(pool.map(one, wanted))
    _write_marker(name, data_root, f"import {src}", len(wanted))
    return root
