"""The README's troubleshooting table quotes the kit's real messages (issue 13).

Every quoted message in the "you see" column is produced here by the failure it
describes, and the quote ("…" standing for any text) must match what the kit says.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Callable

import pytest
import torch

from ml07lab import artifacts as A
from ml07lab.config import data_dir, get_config

REPO = Path(__file__).resolve().parent.parent
NOT_OURS = {"operator torchvision::nms does not exist": "torchvision's", "ModuleNotFoundError: ml07lab": "Python's",
            "make data": "a command, not a message"}


def _table_quotes() -> list[str]:
    text = (REPO / "README.md").read_text()
    table = text.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in table.splitlines() if ln.startswith("| ") and not ln.startswith("| you see") and "---" not in ln]
    return [q for row in rows for q in re.findall(r"`([^`]+)`", row.split(" | ")[0])]


def _error(call: Callable[[], object]) -> str:
    with pytest.raises(Exception) as e:  # noqa: PT011 - any of the kit's one-line errors
        call()
    return str(e.value)


def _not_prepared(tmp: Path) -> str:
    from ml07lab.data import load_dataset

    return _error(lambda: load_dataset("lfw", get_config("ci")))


def _download(tmp: Path) -> str:
    from ml07lab.data.fetch import download

    return _error(lambda: download((tmp / "missing.tgz").as_uri(), "0" * 64, tmp / "x.tgz", progress=False))


def _makefile(tmp: Path) -> str:
    return (REPO / "Makefile").read_text().replace("$(MIRROR)", "/path/to/mirror")


def _weights(tmp: Path) -> str:
    art = A.save_artifact(tmp / "a", {"w": torch.ones(4)}, {})
    (art.path / A.WEIGHTS).write_bytes((art.path / A.WEIGHTS).read_bytes()[:-1] + b"\x01")
    return _error(lambda: A.load_artifact(art.path))


def _meta(tmp: Path) -> str:
    art = A.save_artifact(tmp / "a", {"w": torch.ones(4)}, {"metrics": {"asr": 0.9}})
    meta = json.loads((art.path / A.META).read_text())
    meta["metrics"]["asr"] = 0.0
    (art.path / A.META).write_text(json.dumps(meta))
    return _error(lambda: A.load_artifact(art.path))


def _inputs(tmp: Path) -> str:
    cfg = get_config("ci")
    art = A.load_or_build("m", cfg, lambda: ({"w": torch.ones(2)}, {}), inputs={"company": "att"})
    other = A.artifact_dir("m", cfg, "copied")
    shutil.copytree(art.path, other)
    from ml07lab import keys

    real = keys.inputs_key
    try:
        A.inputs_key = lambda inputs, length=16: "copied"  # the copied folder sits under the other request's key
        return _error(lambda: A.load_or_build("m", cfg, lambda: ({}, {}), inputs={"company": "folder:other"}))
    finally:
        A.inputs_key = real


def _image(tmp: Path) -> str:
    """A folder dataset's skip report: corrupt files are left out and named, not fatal."""
    from ml07lab.data.files import scan_folder

    for person in ("ann", "bob"):
        (tmp / "faces" / person).mkdir(parents=True)
        for i in range(2):
            (tmp / "faces" / person / f"{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return scan_folder(tmp / "faces").report()


def _data_file(tmp: Path) -> str:
    f = tmp / "afile"
    f.write_text("x")
    import os

    os.environ["ML07LAB_DATA"] = str(f)
    return _error(data_dir)


SOURCES: dict[str, Callable[[Path], str]] = {
    "The 'lfw' dataset is not prepared": _not_prepared, "data: no mirror at": _makefile,
    "Download of": _download, "… does not match the sha256 recorded": _weights,
    "… does not match its recorded 'digest'": _meta, "… was built from other inputs": _inputs,
    "skipped": _image, "ML07LAB_DATA points at": _data_file,
}


@pytest.mark.parametrize("quote", [q for q in _table_quotes() if q not in NOT_OURS])
def test_quoted_message_is_the_real_one(quote: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML07LAB_DATA", str(tmp_path / "data"))
    source = [f for prefix, f in SOURCES.items() if quote.startswith(prefix)]
    assert len(source) == 1, f"no test produces the README's quote {quote!r}: add it to SOURCES"
    message = source[0](tmp_path)
    pattern = ".*?".join(re.escape(part.strip()) for part in quote.split("…"))
    assert re.search(pattern, message, re.S), f"README quotes {quote!r}; the kit says {message!r}"


def test_the_table_quotes_our_messages() -> None:
    ours = [q for q in _table_quotes() if q not in NOT_OURS]
    assert len(ours) >= 8, ours
