"""Every subcommand answers bad arguments and bad environment variables with one line
naming the option, exit code 2, no traceback, before any work (issue 13, finding 6).

Run in-process (`cli.main(argv)`), so the whole table takes seconds; any case that
started training would blow the per-case time budget asserted below.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ml07lab.cli import main

NOPE = "/nonexistent/ml07lab"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("cli")
    out = {"dir": str(d / "folder"), "file": str(d / "afile")}
    (d / "folder").mkdir()
    (d / "afile").write_text("not a folder")
    for name, key in (("ed25519", ed25519.Ed25519PrivateKey.generate()), ("rsa", rsa.generate_private_key(65537, 1024)),
                      ("k1", ec.generate_private_key(ec.SECP256K1()))):
        p = d / f"{name}.pem"
        p.write_bytes(key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()))
        out[name] = str(p)
    return out


# (argv with {dir}/{file}/{ed25519}/... placeholders, environment, text the message must hold)
CASES: list[tuple[str, dict[str, str], str]] = [
    ("train-backbone --seed -5", {}, "--seed"),
    ("train-backbone --seed abc", {}, "--seed"),
    ("train-backbone --seed 99999999999", {}, "--seed"),
    ("train-backbone --profile gpu", {}, "--profile"),
    ("train-backbone --dataset fake", {}, "--dataset"),
    ("train-backbone", {"ML07LAB_DATA": "{file}"}, "ML07LAB_DATA"),
    ("train-backbone", {"ML07LAB_DATA": "{file}/below"}, "ML07LAB_DATA"),
    ("train-backbone", {"ML07LAB_PROFILE": "gpu"}, "ML07LAB_PROFILE"),
    ("train-backbone", {"ML07LAB_DATASET": "fake"}, "ML07LAB_DATASET"),
    ("evaluate --seed -1", {}, "--seed"),
    ("evaluate --model " + NOPE, {}, "--model"),
    ("evaluate", {"ML07LAB_MIRROR": "{file}"}, "ML07LAB_MIRROR"),
    ("scenario --poison-rate -0.5", {}, "--poison-rate"),
    ("scenario --poison-rate 1.5", {}, "--poison-rate"),
    ("scenario --poison-rate nan", {}, "--poison-rate"),
    ("scenario --poison-rate inf", {}, "--poison-rate"),
    ("scenario --poison-rate lots", {}, "--poison-rate"),
    ("scenario --target -1", {}, "--target"),
    ("scenario --target first", {}, "--target"),
    ("scenario --trigger sticker", {}, "--trigger"),
    ("scenario --path both", {}, "--path"),
    ("scenario --transfer all", {}, "--transfer"),
    ("scenario --seed -3 --poison-rate 0.2", {}, "--seed"),
    ("deploy", {}, "--model"),
    ("deploy --model " + NOPE, {}, "--model"),
    ("deploy --model {dir} --seed -2", {}, "--seed"),
    ("sign " + NOPE, {}, "MODEL"),
    ("sign {dir} --key " + NOPE, {}, "--key"),
    ("sign {dir} --key {ed25519}", {}, "--key"),
    ("sign {dir} --key {rsa}", {}, "--key"),
    ("sign {dir} --key {k1}", {}, "--key"),
    ("sign {dir} --key {file}", {}, "--key"),
    ("audit " + NOPE + " --out {dir}/o", {}, "MODEL_DIR"),
    ("audit {dir}", {}, "--out"),
    ("audit {dir} --out {dir}/o --baseline " + NOPE, {}, "--baseline"),
    ("audit {dir} --out {dir}/o --public-key " + NOPE, {}, "--public-key"),
    ("audit {dir} --out {dir}/o --seed -1", {}, "--seed"),
    ("run --cell-timeout soon", {}, "--cell-timeout"),
    ("run --cell-timeout 0", {}, "--cell-timeout"),
    ("run --labs " + NOPE, {}, "--labs"),
    ("run --profile gpu", {}, "--profile"),
    ("data fetch celeba", {}, "name"),
    ("data import att --from " + NOPE, {}, "--from"),
    ("data import att", {"ML07LAB_MIRROR": "{file}"}, "ML07LAB_MIRROR"),
    ("data info celeba", {}, "name"),
    ("data info", {"ML07LAB_DATA": "{file}"}, "ML07LAB_DATA"),
    ("data manifest " + NOPE, {}, "DIR"),
    ("data manifest {dir} --previous " + NOPE, {}, "--previous"),
    ("data diff " + NOPE + " {dir}", {}, "OLD"),
    ("data diff {dir} " + NOPE, {}, "NEW"),
    ("data diff {dir} {dir} --show many", {}, "--show"),
    ("data diff {dir} {dir} --show -3", {}, "--show"),
    ("data scan {dir} {dir} --reference " + NOPE, {}, "--reference"),
    ("data scan {dir} {dir} --seed -5", {}, "--seed"),
    ("data sign " + NOPE + " --key {ed25519}", {}, "DIR"),
    ("data sign {dir}", {}, "--key"),
    ("data sign {dir} --key " + NOPE, {}, "--key"),
    ("data verify " + NOPE + " --trusted {ed25519}", {}, "does not exist"),
    ("data verify {dir} --trusted " + NOPE, {}, "--trusted"),
    ("data verify {dir}", {}, "--trusted"),
    ("data verify {dir} --trusted {ed25519} --signature " + NOPE, {}, "--signature"),
    ("data keygen cur --dir {file}", {}, "--dir"),
    ("audit {dir} --out {file}", {}, "--out"),
    ("run --out {file}", {}, "--out"),
    ("data", {}, "fetch,import"),
    ("nonsense", {}, "command"),
]


@pytest.mark.parametrize("argv, env, needle", CASES, ids=[c[0].split(" --")[0][:30] + "|" + c[2] for c in CASES])
def test_bad_input_is_one_line_rc2_naming_the_option(argv: str, env: dict[str, str], needle: str, files: dict[str, str],
                                                     monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                                     tmp_path: Path) -> None:
    monkeypatch.setenv("ML07LAB_DATA", str(tmp_path / "data"))  # never the shared cache
    monkeypatch.setenv("ML07LAB_PROFILE", "ci")
    for k, v in env.items():
        monkeypatch.setenv(k, v.format(**files))
    t0 = time.perf_counter()
    try:
        rc = main(argv.format(**files).split())
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    out, err = capsys.readouterr()
    text = out + err
    assert "Traceback" not in text
    assert rc == 2, (rc, text)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0], lines[0]
    assert time.perf_counter() - t0 < 20, "refused only after doing work"


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 40
    commands = {c[0].split()[0] for c in CASES}
    assert commands >= {"train-backbone", "evaluate", "scenario", "deploy", "sign", "audit", "run", "data"}


def _cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out + err


def test_verify_refuses_a_symlink_with_the_refusal_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    """`data verify`'s help: exit 1 = refuse to train. A symlink in the dataset is a refusal."""
    import numpy as np
    from PIL import Image

    monkeypatch.setenv("ML07LAB_DATA", str(tmp_path / "data"))
    ds = tmp_path / "ds"
    for person in ("ann", "bob"):
        (ds / person).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((8, 8), 40 * i + (person == "bob") * 100, np.uint8)).save(ds / person / f"{i}.png")
    keys = tmp_path / "keys"
    assert _cli(["data", "keygen", "cur", "--dir", keys], capsys)[0] == 0
    assert _cli(["data", "manifest", ds], capsys)[0] == 0
    assert _cli(["data", "sign", ds, "--key", keys / "cur.key"], capsys)[0] == 0
    assert _cli(["data", "verify", ds, "--trusted", keys / "cur.pub"], capsys)[0] == 0
    (ds / "ann" / "2.png").symlink_to(ds / "bob" / "0.png")
    rc, text = _cli(["data", "verify", ds, "--trusted", keys / "cur.pub"], capsys)
    assert rc == 1 and "REFUSED" in text and "symlink" in text and "Traceback" not in text
    rc, text = _cli(["data", "verify", tmp_path / "missing", "--trusted", keys / "cur.pub"], capsys)
    assert rc == 2 and "does not exist" in text and "unsigned" not in text


def test_verify_api_on_a_missing_folder_says_so(tmp_path: Path) -> None:
    from ml07lab.controls.trusted_data.provenance import Keyring, verify_dataset
    from ml07lab.data.base import DataError

    with pytest.raises(DataError, match="does not exist") as e:
        verify_dataset(tmp_path / "missing", Keyring({}))
    assert "unsigned" not in str(e.value)
