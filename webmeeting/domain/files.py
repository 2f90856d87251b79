"""What may be shared in a meeting (pure): a type allow-list, checked by name and content.

Files are stored under random names; the original name is never kept. Each type is recognized
by its extension and, where the format has one, its magic bytes, so a renamed executable is
refused.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_FILE_BYTES = 25 * 1024 * 1024  # default upload limit (setting WEBMEETING_FILE_MAX_BYTES)
ZIP = (b"PK\x03\x04",)


@dataclass(frozen=True)
class FileType:
    ext: str
    content_type: str
    magic: tuple[bytes, ...] = ()  # accepted leading bytes; empty: text, checked for NULs


TYPES = {
    t.ext: t
    for t in [
        FileType("pdf", "application/pdf", (b"%PDF-",)),
        FileType("png", "image/png", (b"\x89PNG\r\n\x1a\n",)),
        FileType("jpg", "image/jpeg", (b"\xff\xd8\xff",)),
        FileType("jpeg", "image/jpeg", (b"\xff\xd8\xff",)),
        FileType("gif", "image/gif", (b"GIF87a", b"GIF89a")),
        FileType("txt", "text/plain"),
        FileType("csv", "text/csv"),
        FileType("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", ZIP),
        FileType("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ZIP),
        FileType("pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation", ZIP),
        FileType("odt", "application/vnd.oasis.opendocument.text", ZIP),
        FileType("zip", "application/zip", ZIP),
    ]
}


class FileRefused(ValueError):
    """Why a file cannot be shared (safe to show)."""


def classify(filename: str, data: bytes, max_bytes: int = MAX_FILE_BYTES) -> FileType:
    if not data:
        raise FileRefused("the file is empty")
    if len(data) > max_bytes:
        raise FileRefused(f"the file is larger than {max_bytes} bytes")
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    kind = TYPES.get(ext)
    if kind is None:
        raise FileRefused(f"files of type .{ext or '?'} cannot be shared; allowed: {', '.join(sorted(TYPES))}")
    if kind.magic and not any(data.startswith(m) for m in kind.magic):
        raise FileRefused(f"the content is not a .{ext} file")
    if not kind.magic and b"\x00" in data[:8192]:
        raise FileRefused(f"the content is not a .{ext} file")
    return kind
