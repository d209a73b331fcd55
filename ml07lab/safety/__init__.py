"""Reading untrusted files without running them: content sniffing (magic bytes, never
names), pickle opcode scans over every stream, strict safetensors header checks, and a
folder walk that refuses links, special files, oversized files and archive bombs.

Why a package of its own: the deployment gate, the audit and the artefact store all
look at bytes someone else wrote, and they must agree on what is refused and why. It
sits below ``controls`` and imports nothing from the rest of the kit.
"""
