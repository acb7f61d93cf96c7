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
    """The parts of a multipart body (RFC 2046) as (headers with lower-case names, content).

    The preamble and epilogue are ignored, a part may have no headers, and the body must end
    with the close delimiter (a truncated upload is refused rather than half stored).
    """
    if not boundary:
        raise RequestError("Content-Type", "multipart body without a boundary parameter")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    chunks = (b"\r\n" + body).split(delimiter)  # the first delimiter may open the body
    pieces: list[bytes] = []
    for chunk in chunks[1:]:
        if pieces and not _after_delimiter(chunk):
            pieces[-1] += delimiter + chunk  # the boundary text inside content, not a delimiter
        else:
            pieces.append(chunk)
    if not pieces or pieces[0].startswith(b"--"):
        raise RequestError("body", f"no multipart part delimited by boundary {boundary!r}")
    parts: list[tuple[dict[str, str], bytes]] = []
    for piece in pieces:
        if piece.startswith(b"--"):
            return parts  # close delimiter; what follows is the epilogue
        line_end = piece.find(b"\r\n")
        if line_end < 0 or piece[:line_end].strip(b" \t"):
            raise RequestError(
                "body",
                f"multipart delimiter --{boundary} of part {len(parts) + 1} is not"
                " followed by a line break",
            )
        piece = piece[line_end + 2 :]
        if piece.startswith(b"\r\n"):
            head, content = b"", piece[2:]
        else:
            head, sep, content = piece.partition(b"\r\n\r\n")
            if not sep:
                raise RequestError(
                    "body", f"multipart part {len(parts) + 1} has no blank line after its headers"
                )
        headers = {}
        for line in head.split(b"\r\n"):
            if line:
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, content))
    raise RequestError(
        "body", f"multipart body ends without the close delimiter --{boundary}-- (truncated?)"
    )


def _after_delimiter(chunk: bytes) -> bool:
    """Whether ``chunk`` follows a real delimiter: "--" (close) or optional blanks then CRLF."""
    if chunk.startswith(b"--"):
        return True
    line_end = chunk.find(b"\r\n")
    return line_end >= 0 and not chunk[:line_end].strip(b" \t")


def new_boundary() -> str:
    return "harmony-" + secrets.token_hex(12)


def part_header(boundary: str, content_type: str, extra: dict[str, str] | None = None) -> bytes:
    lines = [f"--{boundary}", f"Content-Type: {content_type}"]
    for name, value in (extra or {}).items():
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def closing(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode("latin-1")


def preferred(accept: str, offered: str, default: str = "application/json") -> bool:
    """Whether an ``Accept`` header prefers ``offered`` over ``default`` (q-values honoured;
    ``*/*`` and ``type/*`` count for both)."""
    want, other = _quality(accept, offered), _quality(accept, default)
    return want > 0 and want > other


def _quality(accept: str, media: str) -> float:
    best, best_rank = 0.0, -1
    kind = media.split("/", 1)[0]
    for item in accept.split(","):
        name, params = content_type_params(item)
        rank = 2 if name == media else 1 if name == f"{kind}/*" else 0 if name == "*/*" else -1
        if rank < 0 or rank < best_rank:
            continue
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 0.0
        if rank > best_rank or q > best:
            best, best_rank = q, rank
    return best
