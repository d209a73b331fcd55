"""`ml07lab deploy --model DIR` (the gate: serve or refuse) and `ml07lab sign MODEL`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...artifacts import sha256_file
from .gate import environments, gate, load_weights, release, sign_model_dir
from .model_files import weights_file

def _cmd_deploy(args) -> int:  # noqa: ANN001
    import sys

    from ...backbones import unpack
    from ...cli import config_from, emit

    env = environments(args.env)
    res = gate(args.model, env)
    out: dict[str, Any] = {"model": str(args.model), "accepted": res.accepted, "reason": res.reason, "checks": res.checks}
    if not res.accepted:
        emit(out, args)
        print(f"ml07lab deploy: REFUSED {args.model}: {res.reason}", file=sys.stderr)
        return 1
    tensors, digest = load_weights(args.model, env)
    model, _ = unpack(tensors, config_from(args))
    out.update(serving=True, sha256=digest, parameters=sum(p.numel() for p in model.parameters()))
    emit(out, args)
    print(f"OK serving {args.model} (sha256 {digest})")
    return 0


def _cmd_sign(args) -> int:  # noqa: ANN001
    from ...cli import emit

    env = environments(args.env)
    sig = sign_model_dir(args.model, args.key or env.private_key)
    out = {"model": str(args.model), "signature": str(sig), "sha256": sha256_file(weights_file(Path(args.model)))}
    if args.release:
        out["released"] = str(release(args.model, env, args.release))
    emit(out, args)
    return 0


def add_isolation_commands(sub) -> None:  # noqa: ANN001
    """`ml07lab deploy --model DIR` (the gate; serves or refuses) and `ml07lab sign MODEL`."""
    from ...cli import _add_common

    p = sub.add_parser("deploy", help="run the deployment gate on a model folder, then serve it or refuse")
    _add_common(p)
    p.add_argument("--model", type=Path, required=True, help="model folder (weights + model.sig)")
    p.add_argument("--env", type=Path, default=None, help="environments root (default <data>/envs)")
    p.set_defaults(func=_cmd_deploy)
    p = sub.add_parser("sign", help="sign a model folder with the training environment's key (model-signing)")
    _add_common(p)
    p.add_argument("model", type=Path, help="model folder to sign")
    p.add_argument("--key", type=Path, default=None, help="private key PEM (default: the training environment's)")
    p.add_argument("--release", metavar="NAME", default=None,
                   help="also hand it over: copy into the read-only registry and allowlist its digest")
    p.add_argument("--env", type=Path, default=None, help="environments root (default <data>/envs)")
    p.set_defaults(func=_cmd_sign)
