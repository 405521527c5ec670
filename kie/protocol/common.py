"""Account and file utilities: credit balance, temporary download links, and the upload API (§6, §7)."""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from typing import Any

from kie.protocol.envelope import ApiRequest, Envelope, error_for
from kie.protocol.task import as_int


def credits_request() -> ApiRequest:
    return ApiRequest("GET", "/api/v1/chat/credit", label="credit balance")


def parse_credits(data: Any) -> float:
    """The balance is a bare number in `data` (fractional credits occur)."""
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return float(data)
    if isinstance(data, str):
        return float(data)
    raise ValueError(f"credit balance is not a number: {data!r}")


def download_url_request(url: str) -> ApiRequest:
    return ApiRequest("POST", "/api/v1/common/download-url", json={"url": url}, label="download-url")


def parse_download_url(data: Any) -> str:
    if isinstance(data, str) and data:
        return data
    raise ValueError(f"download-url answer is not a URL: {data!r}")


@dataclass(frozen=True)
class UploadedFile:
    download_url: str
    file_path: str | None
    file_name: str | None
    size: int | None
    mime_type: str | None


def unique_name(extension: str) -> str:
    """`<epoch-ms>-<random>.<ext>`: Kie overwrites same-named uploads and may serve a cached old copy."""
    ext = extension.lstrip(".") or "bin"
    return f"{int(time.time() * 1000)}-{secrets.token_hex(5)}.{ext}"


def stream_upload_request(
    content: bytes | Any, file_name: str, upload_path: str, mime_type: str
) -> ApiRequest:
    return ApiRequest(
        "POST",
        "/api/file-stream-upload",
        kind="upload",
        host="upload",
        files={"file": (file_name, content, mime_type)},
        data={"uploadPath": upload_path, "fileName": file_name},
        label="file upload",
    )


def base64_upload_request(content: bytes, file_name: str, upload_path: str, mime_type: str) -> ApiRequest:
    encoded = f"data:{mime_type};base64," + base64.b64encode(content).decode()
    return ApiRequest(
        "POST",
        "/api/file-base64-upload",
        kind="upload",
        host="upload",
        json={"base64Data": encoded, "uploadPath": upload_path, "fileName": file_name},
        label="base64 upload",
    )


def url_upload_request(file_url: str, upload_path: str, file_name: str | None = None) -> ApiRequest:
    body: dict[str, Any] = {"fileUrl": file_url, "uploadPath": upload_path}
    if file_name:
        body["fileName"] = file_name
    return ApiRequest(
        "POST", "/api/file-url-upload", kind="upload", host="upload", json=body, label="URL upload"
    )


def parse_upload(env: Envelope) -> UploadedFile:
    """Real answers carry `downloadUrl`; the quickstart's `fileUrl` never appears but is accepted."""
    if not env.ok:
        raise error_for(env)
    data = env.data if isinstance(env.data, dict) else {}
    url = data.get("downloadUrl") or data.get("fileUrl")
    if not url:
        raise ValueError(f"upload answer has no downloadUrl: {env.data!r}")
    return UploadedFile(
        download_url=str(url),
        file_path=data.get("filePath"),
        file_name=data.get("fileName"),
        size=as_int(data.get("fileSize")),
        mime_type=data.get("mimeType"),
    )
