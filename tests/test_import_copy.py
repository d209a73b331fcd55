"""Importing from the mirror copies, never hardlinks (issue 13, finding 5).

Nothing the kit or a learner does in data/ may change the mirror (it may be the
instructor's USB stick), and no temp file survives an import: not after a failure, not
after two imports at once, not after a killed one.
"""
from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
from pathlib import Path

import pytest

from ml07lab.data import fetch as F
from ml07lab.data.cli import dataset_info


def _mirror(tmp: Path, people: int = 3, photos: int = 4) -> Path:
    m = tmp / "mirror"
    lines = []
    for p in range(1, people + 1):
        for i in range(1, photos + 1):
            rel = f"att_faces/s{p}/{i}.pgm"
            (m / rel).parent.mkdir(parents=True, exist_ok=True)
            data = f"P5 fake face {p} {i}\n".encode() * 200
            (m / rel).write_bytes(data)
            lines.append(f"{hashlib.sha256(data).hexdigest()}  ./{rel}")
    (m / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return m


def _state(root: Path) -> dict[str, tuple[bytes, int, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_nlink, p.stat().st_ino)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _temps(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.tmp"))


def _import(m: str, data: str) -> None:
    F.import_mirror("att", Path(m), Path(data))


def test_import_copies_and_the_mirror_keeps_content_and_link_count(tmp_path: Path) -> None:
    m, data = _mirror(tmp_path), tmp_path / "data"
    before = _state(m)
    F.import_mirror("att", m, data)
    raw = F.raw_root("att", data)
    one = raw / "att_faces" / "s1" / "1.pgm"
    assert one.stat().st_nlink == 1 and not os.path.samefile(one, m / "att_faces" / "s1" / "1.pgm")
    with open(one, "r+b") as f:  # an in-place edit of the imported copy
        f.write(b"EDITED")
    assert _state(m) == before  # content, link count and inode of every mirror file
    F.import_mirror("att", m, data)  # the edited copy fails its checksum and is restored
    assert one.read_bytes() == (m / "att_faces" / "s1" / "1.pgm").read_bytes()
    assert _state(m) == before and _temps(tmp_path) == []


def test_an_older_hardlinked_import_is_replaced_by_a_copy(tmp_path: Path) -> None:
    m, data = _mirror(tmp_path), tmp_path / "data"
    F.import_mirror("att", m, data)
    d = F.raw_root("att", data) / "att_faces" / "s2" / "3.pgm"
    d.unlink()
    os.link(m / "att_faces" / "s2" / "3.pgm", d)  # what the old import did
    assert (m / "att_faces" / "s2" / "3.pgm").stat().st_nlink == 2
    F.import_mirror("att", m, data)
    assert (m / "att_faces" / "s2" / "3.pgm").stat().st_nlink == 1 and d.stat().st_nlink == 1


def test_concurrent_imports_leave_no_temp_files(tmp_path: Path) -> None:
    m, data = _mirror(tmp_path, people=6, photos=10), tmp_path / "data"
    before = _state(m)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_import, args=(str(m), str(data))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert _temps(tmp_path) == [] and F.is_prepared("att", data)
    assert _state(m) == before
    assert all(nlink == 1 for _, nlink, _ in _state(F.raw_root("att", data)).values())


def test_a_failed_copy_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m, data = _mirror(tmp_path), tmp_path / "data"

    def boom(src, dst, length=0):  # noqa: ANN001, ANN202 - shutil.copyfileobj's signature
        dst.write(b"half a file")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(F.shutil, "copyfileobj", boom)
    with pytest.raises(OSError, match="simulated"):
        F.import_mirror("att", m, data)
    assert _temps(tmp_path) == [] and not F.is_prepared("att", data)


def test_stale_temps_of_a_killed_import_are_removed_and_not_counted(tmp_path: Path) -> None:
    m, data = _mirror(tmp_path), tmp_path / "data"
    F.import_mirror("att", m, data)
    raw = F.raw_root("att", data)
    size = dataset_info("att", data)["bytes"]
    dead = 2 ** 22 + 12345  # above any pid_max default: no such process
    stale = [raw / "att_faces" / "s1" / f".1.pgm.{dead}.tmp", raw / "att_faces" / "s1" / f".2.pgm.pid{dead}.ab12cd.tmp"]
    live = raw / "att_faces" / "s1" / f".3.pgm.pid{os.getpid()}.xyz.tmp"  # a running import's temp
    for f in (*stale, live):
        f.write_bytes(b"x" * 10_000)
    assert dataset_info("att", data)["bytes"] == size  # temp files are not the dataset
    F.import_mirror("att", m, data)
    assert not any(f.exists() for f in stale) and live.exists()
