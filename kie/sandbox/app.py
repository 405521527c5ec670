"""The sandbox ASGI app: a local Kie.ai that follows the recorded real behaviour.

One app serves the API paths (`/api/v1/...`), the upload paths (`/api/file-*-upload`), result and
upload files (`/files/...`), temporary download links (`/dl/<token>`) and the sandbox-only
introspection API (`/_sandbox/...`). Each API family is one module registering its routes; the Market
family is `market.py`. Status reads of every family pass the named status faults first, and result
downloads the named download faults (`kie.sandbox.injection`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import mimetypes
import secrets
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kie.sandbox import injection, media
from kie.sandbox.engine import Engine, is_loopback
from kie.sandbox.families import load_families
from kie.sandbox.http import authorise, envelope, public_url, request_fault
from kie.sandbox.state import SandboxConfig, SandboxState, StoredFile


class Sandbox:
    """The app plus its state; `Sandbox(config).app` is a plain ASGI application."""

    def __init__(self, config: SandboxConfig) -> None:
        self.state = SandboxState(config)
        self.families: dict[str, Any] = {}
        self.engine = Engine(self.state, self.families)
        families, family_routes = load_families(self.state, self.engine)
        self.families.update(families)
        routes = [
            *injection.with_status_faults(self.state, family_routes),
            Route("/api/v1/chat/credit", self.credit, methods=["GET"]),
            Route("/api/v1/common/download-url", self.download_url, methods=["POST"]),
            Route("/api/file-stream-upload", self.stream_upload, methods=["POST"]),
            Route("/api/file-base64-upload", self.base64_upload, methods=["POST"]),
            Route("/api/file-url-upload", self.url_upload, methods=["POST"]),
            Route("/files/{path:path}", self.serve_file, methods=["GET", "HEAD"]),
            Route("/dl/{token}", self.serve_link, methods=["GET", "HEAD"]),
            Route("/_sandbox/state", self.introspect, methods=["GET"]),
            Route("/_sandbox/faults", self.add_fault, methods=["POST"]),
            Route("/_sandbox/keys/revoke", self.revoke_key, methods=["POST"]),
            Route("/_sandbox/credits", self.set_credits, methods=["POST"]),
        ]
        self.app = Starlette(routes=routes, lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        await self.engine.close()

    # -- utilities --------------------------------------------------------------------------------
    async def credit(self, request: Request) -> Response:
        key_id, denied = authorise(request, self.state)
        self.state.count("credit", key_id or "anonymous")
        if denied:
            return denied
        _, answer = await request_fault(self.state, "credit")
        if answer is not None:
            return answer
        return envelope(self.state, 200, "success", round(self.state.balance, 4))

    async def download_url(self, request: Request) -> Response:
        state = self.state
        key_id, denied = authorise(request, state)
        state.count("download-url", key_id or "anonymous")
        if denied:
            return denied
        try:
            body = await request.json()
        except ValueError:
            body = None
        url = body.get("url") if isinstance(body, dict) else None
        base = public_url(request, state.config.public_url)
        prefix = f"{base}/files/"
        if not isinstance(url, str) or not url.startswith(prefix):
            return envelope(state, 422, "url is wrong")
        path = url[len(prefix) :]
        if state.file(path, via_link=True) is None:
            return envelope(state, 422, "url is wrong")
        return envelope(state, 200, "success", f"{base}/dl/{state.new_link(path)}")

    # -- uploads ----------------------------------------------------------------------------------
    def _upload_answer(
        self, request: Request, data: bytes, upload_path: Any, file_name: Any, mime: str | None
    ) -> Response:
        state = self.state
        if not isinstance(upload_path, str) or not upload_path.strip("/"):
            return envelope(state, 400, "Missing required parameter: uploadPath", upload=True)
        name = file_name if isinstance(file_name, str) and file_name else None
        mime_type = mime or (mimetypes.guess_type(name)[0] if name else None) or "application/octet-stream"
        if name is None:
            ext = (mimetypes.guess_extension(mime_type) or ".bin").lstrip(".")
            name = f"{state.now_ms()}-{secrets.token_hex(5)}.{ext}"
        name = name.replace("/", "_")
        file_path = f"kieai/{state.config.user_id}/{upload_path.strip('/')}/{name}"
        now = state.now()
        state.store(
            f"u/{file_path}",
            StoredFile(
                content_type=mime_type,
                created_at=now,
                data=data,
                expires_at=now + state.config.scaled(state.config.upload_retention),
            ),
        )
        base = public_url(request, state.config.upload_public_url or state.config.public_url)
        uploaded_at = (
            datetime.fromtimestamp(state.clock.seconds(now), tz=timezone.utc)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        return envelope(
            state,
            200,
            "File uploaded successfully",
            {
                "success": True,
                "fileName": name,
                "filePath": file_path,
                "downloadUrl": f"{base}/files/u/{file_path}",
                "fileSize": len(data),
                "mimeType": mime_type,
                "uploadedAt": uploaded_at,
            },
            upload=True,
        )

    async def _upload_gate(self, request: Request, endpoint: str) -> Response | None:
        key_id, denied = authorise(request, self.state, upload=True)
        self.state.count(endpoint, key_id or "anonymous")
        if denied:
            return denied
        _, answer = await request_fault(self.state, endpoint, upload=True)
        return answer

    async def stream_upload(self, request: Request) -> Response:
        gate = await self._upload_gate(request, "file-stream-upload")
        if gate is not None:
            return gate
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return envelope(self.state, 400, "Missing required parameter: file", upload=True)
        data = await upload.read()
        return self._upload_answer(
            request, data, form.get("uploadPath"), form.get("fileName"), upload.content_type
        )

    async def base64_upload(self, request: Request) -> Response:
        gate = await self._upload_gate(request, "file-base64-upload")
        if gate is not None:
            return gate
        body = await _json(request)
        raw = body.get("base64Data")
        if not isinstance(raw, str) or not raw:
            return envelope(self.state, 400, "Missing required parameter: base64Data", upload=True)
        mime = None
        if raw.startswith("data:"):
            header, _, raw = raw.partition(",")
            mime = header[5:].split(";", 1)[0] or None
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return envelope(self.state, 400, "Base64 decoding failed: Invalid Base64 format", upload=True)
        return self._upload_answer(request, data, body.get("uploadPath"), body.get("fileName"), mime)

    async def url_upload(self, request: Request) -> Response:
        gate = await self._upload_gate(request, "file-url-upload")
        if gate is not None:
            return gate
        body = await _json(request)
        url = body.get("fileUrl")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return envelope(self.state, 400, "Missing required parameter: fileUrl", upload=True)
        if not (self.state.config.allow_external_url_upload or is_loopback(url)):
            return envelope(self.state, 400, "The sandbox only fetches loopback URLs", upload=True)
        try:
            async with httpx.AsyncClient(timeout=30.0, follow_redirects=True) as client:
                fetched = await client.get(url)
        except httpx.HTTPError as exc:
            return envelope(
                self.state, 500, f"Failed to download file: {exc.__class__.__name__}", upload=True
            )
        if fetched.status_code >= 400:
            return envelope(
                self.state, 400, f"Failed to download file: HTTP {fetched.status_code}", upload=True
            )
        mime = fetched.headers.get("content-type", "").split(";", 1)[0] or None
        return self._upload_answer(
            request, fetched.content, body.get("uploadPath"), body.get("fileName"), mime
        )

    # -- files ------------------------------------------------------------------------------------
    def _file_response(self, request: Request, stored: StoredFile | None, path: str) -> Response:
        self.state.count("file", "anonymous", path=path, authorization="authorization" in request.headers)
        if stored is None:
            return Response("Not Found", status_code=404, media_type="text/plain")
        if stored.data is None and stored.recipe is not None:
            model, kind, fmt, values, index = stored.recipe
            data, content_type = media.render(
                model, kind, fmt, values, index, max_image_side=self.state.config.max_image_side
            )
            with self.state.lock:
                stored.data, stored.content_type = data, content_type
        assert stored.data is not None
        fault = injection.download_fault(self.state, path) if request.method == "GET" else None
        if fault is not None:
            return injection.fault_response(self.state, fault, stored, stored.data)
        body = b"" if request.method == "HEAD" else stored.data
        return Response(
            body, media_type=stored.content_type, headers={"content-length": str(len(stored.data))}
        )

    async def serve_file(self, request: Request) -> Response:
        path = request.path_params["path"]
        return self._file_response(request, self.state.file(path), path)

    async def serve_link(self, request: Request) -> Response:
        token = request.path_params["token"]
        with self.state.lock:
            link = self.state.links.get(token)
        if link is None or self.state.now() >= link[1]:
            return self._file_response(request, None, f"dl/{token}")
        return self._file_response(request, self.state.file(link[0], via_link=True), link[0])

    # -- introspection ------------------------------------------------------------------------------
    async def introspect(self, request: Request) -> Response:
        return JSONResponse(self.state.snapshot())

    async def add_fault(self, request: Request) -> Response:
        """`{"name": "download.403", "times": 2}` plans a named fault; `{"endpoint", "kind", ...}` the
        older per-endpoint kinds."""
        body = await _json(request)
        if "name" in body:
            try:
                self.state.plan_named(str(body["name"]), int(body.get("times", 1)))
            except (TypeError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            return JSONResponse({"ok": True, "fault": {"name": body["name"], "times": body.get("times", 1)}})
        try:
            fault = self.state.inject(**body)
        except TypeError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"ok": True, "fault": fault.__dict__})

    async def revoke_key(self, request: Request) -> Response:
        """`{"key": "sk-…"}`: from now on that key gets 401 everywhere, as a key deleted in the dashboard."""
        key = (await _json(request)).get("key")
        if not isinstance(key, str) or key not in self.state.config.api_keys:
            return JSONResponse({"error": "key must be one of the sandbox's API keys"}, status_code=400)
        return JSONResponse({"ok": True, "revoked": self.state.revoke(key)})

    async def set_credits(self, request: Request) -> Response:
        body = await _json(request)
        with self.state.lock:
            self.state.balance = float(body.get("credits", self.state.balance))
        return JSONResponse({"credits": self.state.balance})


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def create_app(config: SandboxConfig | None = None) -> Sandbox:
    return Sandbox(config or SandboxConfig(api_keys=("sk-sandbox",)))
