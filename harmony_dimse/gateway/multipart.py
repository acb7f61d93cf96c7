"""multipart/related bodies (PS3.18 style): splitting a request body, and framing response parts."""

from __future__ import annotations

import secrets

from .errors import RequestError


def content_type_params(value: str) -> tuple[str, dict[str, str]]:
    """``'multipart/related; type="application/dicom"; boundary=x'`` -> (media type, params)."""
    parts = value.split(";")
    media = parts[0].strip().lower()
    params: dict[str, str] = {}
    for part in parts[1:]:
        name, sep, val = part.strip().partition("=")
        if sep:
            params[name.strip().lower()] = val.strip().strip('"')
    return media, params


def split_multipart(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart body as (headers, content)."""
    if not boundary:
        raise RequestError("Content-Type", "multipart body without a boundary parameter")
    delimiter = b"--" + boundary.encode("latin-1")
    pieces = body.split(delimiter)
    if len(pieces) < 3:
        raise RequestError("body", f"no multipart part delimited by boundary {boundary!r}")
    parts = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            break  # close delimiter
        if piece.startswith(b"\r\n"):
            piece = piece[2:]
        head, sep, content = piece.partition(b"\r\n\r\n")
        if not sep:
            raise RequestError("body", "a multipart part has no blank line after its headers")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers = {}
        for line in head.split(b"\r\n"):
            if line:
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, content))
    return parts


def new_boundary() -> str:
    return "harmony-" + secrets.token_hex(12)


def part_header(boundary: str, content_type: str, extra: dict[str, str] | None = None) -> bytes:
    lines = [f"--{boundary}", f"Content-Type: {content_type}"]
    for name, value in (extra or {}).items():
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def closing(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode("latin-1")
