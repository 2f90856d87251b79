"""Cloud Storage adapter: objects under random names, and short-lived V4 signed URLs.

Signing needs key material: ``WEBMEETING_SIGNING_KEY_FILE`` (a service-account key; locally one
the launcher generates, which the emulator does not check) or, in production, the function's
own service account through the IAM signBlob API (roles/iam.serviceAccountTokenCreator on itself).
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from datetime import timedelta
from typing import Any

from google.auth.credentials import AnonymousCredentials
from google.cloud import storage  # type: ignore[attr-defined]

from webmeeting import runtime

_client: storage.Client | None = None
_signer: Any = None
_lock = threading.Lock()


def client() -> storage.Client:
    global _client
    with _lock:
        if _client is None:
            project = runtime.backends().project or None
            if runtime.backends().storage_emulator_host:
                _client = storage.Client(project=project, credentials=AnonymousCredentials())
            else:
                _client = storage.Client(project=project)
        return _client


def bucket(name: str) -> storage.Bucket:
    return client().bucket(name)


def ensure_bucket(name: str) -> None:
    """Local platform only: terraform creates the buckets in production."""
    if not bucket(name).exists():
        client().create_bucket(name)


def file_md5(path: str | os.PathLike[str]) -> str:
    """A file's MD5 as Cloud Storage reports it (base64): compare with ``blob.md5_hash`` to
    confirm an upload is complete and intact."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()


def put(bucket_name: str, object_name: str, data: bytes, content_type: str, download_name: str) -> None:
    blob = bucket(bucket_name).blob(object_name)
    blob.content_disposition = f'attachment; filename="{download_name}"'
    blob.upload_from_string(data, content_type=content_type)


def delete(bucket_name: str, object_name: str) -> None:
    try:
        bucket(bucket_name).blob(object_name).delete()
    except Exception as exc:  # NotFound: already gone, which is what we want
        if exc.__class__.__name__ != "NotFound":
            raise


def exists(bucket_name: str, object_name: str) -> bool:
    return bool(bucket(bucket_name).blob(object_name).exists())


def signed_url(bucket_name: str, object_name: str, ttl: timedelta) -> str:
    blob = bucket(bucket_name).blob(object_name)
    kwargs: dict[str, Any] = {"version": "v4", "expiration": ttl, "method": "GET"}
    emulator = runtime.backends().storage_emulator_host
    if emulator:
        kwargs["api_access_endpoint"] = emulator
    key_file = runtime.backends().signing_key_file
    if key_file:
        from google.oauth2 import service_account

        global _signer
        with _lock:
            if _signer is None:
                _signer = service_account.Credentials.from_service_account_file(key_file)
        kwargs["credentials"] = _signer
    else:
        import google.auth
        import google.auth.transport.requests

        creds, _ = google.auth.default()
        creds.refresh(google.auth.transport.requests.Request())
        kwargs["service_account_email"] = creds.service_account_email  # type: ignore[attr-defined]
        kwargs["access_token"] = creds.token
    return str(blob.generate_signed_url(**kwargs))
