"""Signed bundles: an Ed25519 signature (through ``cryptography``) over the bundle's ``edgekit.json``.

``edgekit.json`` lists the sha256 of every file of the bundle, so a signature over its exact bytes covers
the whole bundle: a model changed and re-hashed into the manifest changes the manifest, and the signature no
longer holds. The signature sits beside the manifest in ``edgekit.sig`` (JSON: scheme, key id, signature);
it is checked, with the public key the user trusts, by ``edgekit verify --key``, ``edgekit predict --key``
and the bundle's own ``run.py --key`` (:func:`~edgekit.stages.bundle.app.check_signature`).

Example:
    >>> write_keypair("keys/release")  # doctest: +SKIP
    (PosixPath('keys/release.pem'), PosixPath('keys/release.pub'))
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from edgekit.errors import InputError
from edgekit.stages.bundle.app import SIGNATURE_FILE, key_id


def write_keypair(stem: str | Path) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair: ``STEM.pem`` (private, PKCS#8, mode 0600) and ``STEM.pub`` (public, PEM).

    Example:
        >>> write_keypair("/nonexistent/dir/k")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: /nonexistent/dir: no such folder for the keys
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path, public_path = Path(f"{stem}.pem"), Path(f"{stem}.pub")
    if not private_path.parent.is_dir():
        raise InputError(f"{private_path.parent}: no such folder for the keys")
    if existing := [str(p) for p in (private_path, public_path) if p.exists()]:
        raise InputError(f"{existing[0]}: exists (keys are never overwritten)")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    public_path.write_bytes(public)
    return private_path, public_path


def _private_key(path: str | Path) -> Any:  # cryptography's Ed25519PrivateKey, imported lazily
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    p = Path(path)
    if not p.is_file():
        raise InputError(f"--sign {path}: no such key file")
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(f"--sign {path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"--sign {path}: a {type(key).__name__}; bundles are signed with Ed25519 keys "
                         "(edgekit keygen makes one)")  # fmt: skip
    return key


def signer_key_id(private_key_path: str | Path) -> str:
    """The key id (sha256 of the raw public key, 16 hex digits) of a private key file, checked before bundling.

    Example:
        >>> signer_key_id("missing.pem")
        Traceback (most recent call last):
        ...
        edgekit.errors.InputError: --sign missing.pem: no such key file
    """
    return _key_id_of(_private_key(private_key_path))


def _key_id_of(key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    return key_id(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def sign_manifest(folder: Path, private_key_path: str | Path) -> dict[str, str]:
    """Sign ``folder/edgekit.json`` as it is on disk; write ``edgekit.sig``; return what it holds.

    Example:
        >>> sign_manifest(Path("bundles/cat_rpi"), "keys/release.pem")["scheme"]  # doctest: +SKIP
        'ed25519'
    """
    key = _private_key(private_key_path)
    signature = key.sign((folder / "edgekit.json").read_bytes())
    body = {"scheme": "ed25519", "signs": "edgekit.json", "key_id": _key_id_of(key),
            "signature": base64.b64encode(signature).decode()}  # fmt: skip
    (folder / SIGNATURE_FILE).write_text(json.dumps(body, indent=2) + "\n")
    return body


def keygen(stem: str | Path) -> tuple[Path, Path]:
    """``edgekit keygen STEM``: a new Ed25519 key pair for signing bundles, ``STEM.pem`` (private, mode 0600) and
    ``STEM.pub`` (public); an existing file is never overwritten. Returns their paths.

    Example:
        >>> private, public = keygen("keys/release")  # doctest: +SKIP
        >>> bundle("runs/m", "rpi", sign=private)  # doctest: +SKIP
    """
    return write_keypair(stem)
