"""One digest covers the whole artefact: weights AND metadata (issue 13, finding 4).

Editing metrics or the data fingerprint in meta.json, or replacing it with a JSON list,
is one clear ArtifactError (one line from the CLI), never a traceback or a silent reuse.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ml07lab import artifacts as A
from ml07lab.cli import main
from ml07lab.config import get_config


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ML07LAB_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def _art(cache: Path) -> A.Artifact:
    return A.save_artifact(cache / "m", {"w": torch.ones(4)},
                           {"metrics": {"eer": 0.1, "asr": 0.9}, "data_fingerprint": "abc", "inputs": {"k": 1}})


def _edit(folder: Path, change) -> None:  # noqa: ANN001
    meta = json.loads((folder / A.META).read_text())
    change(meta)
    (folder / A.META).write_text(json.dumps(meta))


@pytest.mark.parametrize("change", [
    lambda m: m["metrics"].update(asr=0.0),
    lambda m: m.update(data_fingerprint="def"),
    lambda m: m.update(inputs={"k": 2}),
    lambda m: m.update(sha256="0" * 64),  # weights digest swapped: the meta digest no longer holds
    lambda m: m.update(extra_field=1),
    lambda m: m.pop("metrics"),
], ids=["metrics", "data_fingerprint", "inputs", "sha256", "added-field", "removed-field"])
def test_edited_metadata_is_refused(cache: Path, change) -> None:  # noqa: ANN001
    art = _art(cache)
    assert A.load_artifact(art.path).metrics["asr"] == 0.9
    _edit(art.path, change)
    with pytest.raises(A.ArtifactError, match="was edited|does not match") as e:
        A.load_artifact(art.path)
    assert "Delete" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("text, why", [
    ("[1, 2, 3]", "JSON list"), ('"a string"', "JSON str"), ("42", "JSON int"), ("null", "JSON NoneType"),
    ("{not json", "not valid JSON"), ("\xff\xfe", "not valid JSON"), ("{}", "no weights sha256"),
])
def test_malformed_metadata_is_one_clear_error(cache: Path, text: str, why: str) -> None:
    art = _art(cache)
    (art.path / A.META).write_bytes(text.encode("latin-1"))
    with pytest.raises(A.ArtifactError, match=why):
        A.load_artifact(art.path)


def test_metadata_without_a_digest_is_refused(cache: Path) -> None:
    """An artefact written before the digest existed (or with it removed) is not trusted."""
    art = _art(cache)
    _edit(art.path, lambda m: m.pop(A.DIGEST))
    with pytest.raises(A.ArtifactError, match="no weights sha256 or no 'digest'"):
        A.load_artifact(art.path)


def test_load_or_build_and_cli_refuse_a_list_meta_in_one_line(cache: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = get_config("ci")
    art = A.load_or_build("net", cfg, lambda: ({"w": torch.ones(2)}, {"metrics": {}}))
    (art.path / A.META).write_text("[]")
    with pytest.raises(A.ArtifactError, match="JSON list"):
        A.load_or_build("net", cfg, lambda: pytest.fail("must not rebuild silently"))
    (art.path / A.META).write_text("[]")
    capsys.readouterr()  # the first build announced itself (ml07lab.progress): not the command's output
    rc = main(["evaluate", "--profile", "ci", "--model", str(art.path)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "JSON list" in err and len(err.strip().splitlines()) == 1


def test_truncated_weights_are_one_clear_error(cache: Path) -> None:
    art = _art(cache)
    wp = art.path / A.WEIGHTS
    wp.write_bytes(wp.read_bytes()[:10])
    with pytest.raises(A.ArtifactError, match="sha256"):
        A.load_artifact(art.path)
    with pytest.raises(A.ArtifactError, match="not a valid safetensors file.*Delete .* to rebuild it"):
        A.load_artifact(art.path, verify=False)
