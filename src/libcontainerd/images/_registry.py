"""A registry's repository over the OCI distribution protocol, with ``httpx`` (async, streaming).

:class:`Repository` makes the requests a pull or a push needs (manifests by
tag or digest, blobs, uploads) against the endpoints of :mod:`._hosts`, and
gets three things right for every one of them:

- auth (:mod:`._auth`): a 401 is answered once with the challenge's
  credentials or token; a second 401 is :class:`AuthenticationFailed`;
- faults: 408, 429 and 5xx answers, dropped connections and timeouts are
  retried with exponential backoff (``Retry-After`` honoured, bounded); what
  still fails is a :class:`RegistryError` (or :class:`DeadlineExceeded` for a
  request that hung) naming the registry and the request;
- redirects (blob storage): followed by hand, at most 10 hops, keeping
  ``Range``, and the registry's ``Authorization`` is never sent to another origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin, urlsplit

import httpx

from ..errors import (
    AuthenticationFailed,
    DeadlineExceeded,
    DigestMismatch,
    ImageNotFound,
    InvalidImage,
    LibcontainerdError,
    RegistryError,
)
from . import _media
from ._auth import Authorizer, Credentials, credentials_from_docker_config
from ._hosts import Endpoint, endpoints_for, system_tls
from ._names import normalize_name
from ._types import Descriptor

__all__ = ["MANIFEST_TYPES", "Reference", "Repository"]

MANIFEST_TYPES: Final = (
    _media.DOCKER_MANIFEST,
    _media.DOCKER_MANIFEST_LIST,
    _media.OCI_MANIFEST,
    _media.OCI_INDEX,
)
_ACCEPT: Final = ", ".join(MANIFEST_TYPES) + ", */*;q=0.1"
_RETRY_STATUS: Final = frozenset({408, 429, 500, 502, 503, 504})
_MAX_REDIRECTS: Final = 10
ATTEMPTS = int(os.environ.get("LIBCONTAINERD_REGISTRYATTEMPTS", "5"))
_BACKOFF: Final = 0.2
_MAX_BACKOFF: Final = 5.0
# Connecting, and each read of the answer (not the whole answer: a layer takes long).
TIMEOUT = httpx.Timeout(float(os.environ.get("LIBCONTAINERD_REGISTRY_TIMEOUT", "30")), connect=15.0)


@dataclass(frozen=True, slots=True)
class Reference:
    """An image reference split for the protocol: registry host, repository, tag or digest."""

    name: str  # the normalised full name (what the image record is called)
    registry: str
    repository: str
    tag: str
    digest: str

    @classmethod
    def parse(cls, reference: str) -> Reference:
        """As Docker users write it (``busybox``, ``host:5000/a/b:tag``, ``...@sha256:...``)."""
        name = normalize_name(reference, "image reference")
        remainder, _, digest = name.partition("@")
        registry, _, path = remainder.partition("/")
        tag = ""
        if not digest:
            path, _, tag = path.rpartition(":")
        return cls(name, registry, path, tag, digest)

    @classmethod
    def registry_only(cls, server: str) -> Reference:
        """A registry without a repository (for a login): ``host[:port]`` or a URL of it."""
        host = server.split("://", 1)[-1].split("/", 1)[0].lower()
        if host in ("index.docker.io", "registry-1.docker.io", ""):
            host = "docker.io"
        normalize_name(f"{host}/x", "registry")  # a valid host, else InvalidArgument
        return cls("", host, "", "", "")

    @property
    def object(self) -> str:
        """What the manifest is asked by: the digest when there is one, else the tag."""
        return self.digest or self.tag


class Repository:
    """One repository of one registry, for a pull or a push (an async context manager)."""

    def __init__(
        self,
        reference: Reference,
        *,
        credentials: Credentials | None,
        hosts_dir: str | os.PathLike[str] | None,
        push: bool = False,
    ) -> None:
        self.reference = reference
        self.registry = reference.registry
        capability = "push" if push else "pull"
        self.endpoints = [
            e for e in endpoints_for(reference.registry, hosts_dir) if capability in e.capabilities
        ] or endpoints_for(reference.registry, None)
        access = "pull,push" if push else "pull"
        self.scope = f"repository:{reference.repository}:{access}" if reference.repository else ""
        self._credentials = credentials
        self._authorizer: Authorizer | None = None
        self._clients: dict[int, httpx.AsyncClient] = {}
        self._plain = httpx.AsyncClient(
            verify=system_tls(), timeout=TIMEOUT, follow_redirects=False
        )

    async def __aenter__(self) -> Repository:
        credentials = self._credentials
        if credentials is None:
            credentials = await asyncio.to_thread(credentials_from_docker_config, self.registry)
        self._authorizer = Authorizer(self.registry, credentials, self._fetch_token)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        for client in [*self._clients.values(), self._plain]:
            await client.aclose()
        self._clients.clear()

    def _client(self, endpoint: Endpoint) -> httpx.AsyncClient:
        key = id(endpoint.verify) if not isinstance(endpoint.verify, bool) else int(endpoint.verify)
        client = self._clients.get(key)
        if client is None:
            verify = system_tls() if endpoint.verify is True else endpoint.verify
            client = httpx.AsyncClient(verify=verify, timeout=TIMEOUT, follow_redirects=False)
            self._clients[key] = client
        return client

    def url(self, endpoint: Endpoint, kind: str, name: str) -> str:
        url = f"{endpoint.base}/{self.reference.repository}/{kind}/{name}"
        return url + (f"?ns={endpoint.mirror_of}" if endpoint.mirror_of else "")

    async def ping(self) -> None:
        """GET ``/v2/`` with the credentials: raises AuthenticationFailed if they are refused."""
        endpoint = self.endpoints[-1]
        async with self.send(endpoint, "GET", endpoint.base + "/"):
            return

    # -- manifests --------------------------------------------------------------------

    async def resolve(self) -> tuple[Endpoint, Descriptor, bytes]:
        """The reference's manifest or index: the endpoint that had it, its descriptor, bytes.

        Mirrors are tried first, the registry last. Raises ImageNotFound (no
        such tag or digest), DigestMismatch (the bytes are not the digest asked
        for or announced), InvalidImage (over 4 MiB, not a manifest), RegistryError,
        AuthenticationFailed, DeadlineExceeded.
        """
        last: LibcontainerdError | None = None
        for endpoint in self.endpoints:
            try:
                descriptor, data = await self.manifest(endpoint, self.reference.object, "")
                return endpoint, descriptor, data
            except (ImageNotFound, RegistryError) as error:
                if isinstance(error, AuthenticationFailed) and not endpoint.mirror_of:
                    raise
                last = error
        assert last is not None
        raise last

    async def manifest(
        self, endpoint: Endpoint, name: str, expected: str, media_type: str = ""
    ) -> tuple[Descriptor, bytes]:
        """GET a manifest (by tag or digest), checked: its descriptor and raw bytes."""
        url = self.url(endpoint, "manifests", name)
        request = f"GET {url}"
        headers = {"Accept": _ACCEPT}
        async with self.send(endpoint, "GET", url, headers=headers, not_found=True) as response:
            announced = response.headers.get("Content-Length")
            if announced and announced.isdigit() and int(announced) > _media.MAX_DOCUMENT:
                raise self._invalid(request, f"its manifest is {announced} bytes, over 4 MiB")
            parts = []
            received = 0
            async for chunk in response.aiter_bytes():
                received += len(chunk)
                if received > _media.MAX_DOCUMENT:
                    raise self._invalid(request, "its manifest is over 4 MiB")
                parts.append(chunk)
            data = b"".join(parts)
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
            header_digest = response.headers.get("Docker-Content-Digest", "")
        digest = _media.digest_of(data)
        wanted = expected or (self.reference.digest if name == self.reference.digest else "")
        for claimed, source in ((wanted, "asked for"), (header_digest, "announced")):
            if claimed and claimed.startswith("sha256:") and claimed != digest:
                raise DigestMismatch(
                    f"registry {self.registry}: {request} answered a manifest of digest"
                    f" {digest}, not the {claimed} {source}"
                )
        media_type = media_type or (content_type if content_type in MANIFEST_TYPES else "")
        if not media_type:
            media_type = _media.sniff_document(_json(data, request, self), request)
        return Descriptor(media_type, digest, len(data)), data

    async def put_manifest(
        self, endpoint: Endpoint, name: str, media_type: str, data: bytes
    ) -> str:
        """PUT a manifest under a tag or its digest; the digest the registry gives it."""
        url = self.url(endpoint, "manifests", name)
        async with self.send(
            endpoint,
            "PUT",
            url,
            headers={"Content-Type": media_type},
            body=lambda: data,
        ) as response:
            return str(response.headers.get("Docker-Content-Digest", _media.digest_of(data)))

    # -- blobs ------------------------------------------------------------------------

    async def blob_exists(self, endpoint: Endpoint, digest: str) -> bool:
        url = self.url(endpoint, "blobs", digest)
        async with self.send(endpoint, "HEAD", url, missing_ok=True) as response:
            return response.status_code == 200

    def blob(self, endpoint: Endpoint, digest: str, offset: int = 0) -> _Sending:
        """GET a blob, streaming (redirects to storage followed), from ``offset`` (a Range)."""
        url = self.url(endpoint, "blobs", digest)
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        return self.send(endpoint, "GET", url, headers=headers)

    def foreign(
        self, url: str, headers: dict[str, str]
    ) -> contextlib.AbstractAsyncContextManager[httpx.Response]:
        """GET a foreign layer from a URL of its own: no credentials, redirects followed."""
        return self._plain.stream("GET", url, headers=headers, follow_redirects=True)

    async def upload(
        self,
        endpoint: Endpoint,
        descriptor: Descriptor,
        chunks: Callable[[int, int], AsyncIterator[bytes]],
        chunk_size: int,
        mount_from: str = "",
    ) -> None:
        """Upload a blob: monolithic (one PUT), or chunked (PATCHes) over ``chunk_size``.

        ``chunks(offset, size)`` streams the blob's bytes from ``offset`` (size 0:
        to the end). With ``mount_from`` (another repository of this registry
        that has the blob) a cross-repository mount is asked first.
        """
        start = f"{endpoint.base}/{self.reference.repository}/blobs/uploads/"
        query = f"?mount={descriptor.digest}&from={mount_from}" if mount_from else ""
        async with self.send(endpoint, "POST", start + query, body=lambda: b"") as response:
            if response.status_code == 201:
                return  # mounted
            location = self._location(response, start)
        headers = {"Content-Type": "application/octet-stream"}
        if descriptor.size <= chunk_size:
            headers["Content-Length"] = str(descriptor.size)
            url = _with_query(location, f"digest={descriptor.digest}")
            async with self.send(
                endpoint, "PUT", url, headers=headers, body=lambda: chunks(0, 0), retry=False
            ):
                return
        offset = 0
        while offset < descriptor.size:
            size = min(chunk_size, descriptor.size - offset)
            end = offset + size - 1
            part_headers = {
                **headers,
                "Content-Length": str(size),
                "Content-Range": f"{offset}-{end}",
            }
            async with self.send(
                endpoint,
                "PATCH",
                location,
                headers=part_headers,
                body=lambda first=offset, size=size: chunks(first, size),  # type: ignore[misc]
                retry=False,
            ) as response:
                location = self._location(response, location)
            offset += size
        url = _with_query(location, f"digest={descriptor.digest}")
        async with self.send(
            endpoint, "PUT", url, headers={"Content-Length": "0"}, body=lambda: b""
        ):
            return

    def _location(self, response: httpx.Response, base: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(
                f"registry {self.registry}: {response.request.method} {response.request.url}"
                " answered without a Location for the upload",
                registry=self.registry,
                request=f"{response.request.method} {response.request.url}",
                status=response.status_code,
            )
        return urljoin(base, str(location))

    # -- one request: auth, retries, redirects ----------------------------------------

    def send(
        self,
        endpoint: Endpoint,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: Callable[[], bytes | AsyncIterator[bytes]] | None = None,
        retry: bool = True,
        not_found: bool = False,
        missing_ok: bool = False,
    ) -> _Sending:
        """An async context manager giving the (streaming) successful response.

        ``not_found``: a 404 is ImageNotFound (a manifest); ``missing_ok``: a
        404 is handed back (a HEAD). ``body`` makes the request's body again for
        each attempt; ``retry=False`` sends a streamed body once.
        """
        return _Sending(
            self, endpoint, method, url, headers or {}, body, retry, not_found, missing_ok
        )

    async def _fetch_token(
        self, realm: str, params: dict[str, str], basic: str | None
    ) -> tuple[str, float]:
        """A Bearer token from the realm (GET, or POST with a refresh token)."""
        request = f"GET {realm}"
        headers = {"Authorization": basic} if basic else {}
        for attempt in range(ATTEMPTS):
            try:
                if "refresh_token" in params:
                    form = {**params, "grant_type": "refresh_token", "client_id": "libcontainerd"}
                    request = f"POST {realm}"
                    response = await self._plain.post(realm, data=form, headers=headers)
                else:
                    response = await self._plain.get(realm, params=params, headers=headers)
            except httpx.TimeoutException:
                if attempt + 1 == ATTEMPTS:
                    raise self._hung(request) from None
                await _sleep(attempt, None)
                continue
            except httpx.TransportError as error:
                if attempt + 1 == ATTEMPTS:
                    raise self._unreachable(request, error) from None
                await _sleep(attempt, None)
                continue
            if response.status_code in _RETRY_STATUS and attempt + 1 < ATTEMPTS:
                await _sleep(attempt, response)
                continue
            break
        if response.status_code in (401, 403):
            assert self._authorizer is not None
            raise self._authorizer.failed(request, "its token service refused the credentials")
        if response.status_code != 200:
            raise self._status(request, response, "its token service")
        try:
            answer = response.json()
            token = answer.get("token") or answer.get("access_token")
            expires_in = float(answer.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            token = None
            expires_in = 60.0
        if not isinstance(token, str) or not token:
            raise RegistryError(
                f"registry {self.registry}: its token service ({request}) answered no token",
                registry=self.registry,
                request=request,
                status=response.status_code,
            )
        return token, max(expires_in, 1.0)

    # -- errors -----------------------------------------------------------------------

    def _invalid(self, request: str, why: str) -> InvalidImage:
        return InvalidImage(f"registry {self.registry}: {request}: {why}")

    def _hung(self, request: str) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"registry {self.registry}: {request} hung: no answer within"
            f" {TIMEOUT.read:g} s, {ATTEMPTS} attempts"
        )

    def _unreachable(self, request: str, error: Exception) -> RegistryError:
        return RegistryError(
            f"registry {self.registry}: {request} failed"
            f"{'' if _untrusted(error) else f' after {ATTEMPTS} attempts'}:"
            f" {type(error).__name__}: {error}",
            registry=self.registry,
            request=request,
        )

    def _status(self, request: str, response: httpx.Response, who: str = "it") -> RegistryError:
        detail = _error_text(response)
        return RegistryError(
            f"registry {self.registry}: {request}: {who} answered {response.status_code}"
            f" {response.reason_phrase}{': ' + detail if detail else ''}",
            registry=self.registry,
            request=request,
            status=response.status_code,
        )


class _Sending:
    """One request to a registry, its retries, auth and redirects (see Repository.send)."""

    def __init__(
        self,
        repository: Repository,
        endpoint: Endpoint,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Callable[[], bytes | AsyncIterator[bytes]] | None,
        retry: bool,
        not_found: bool,
        missing_ok: bool,
    ) -> None:
        self.repository = repository
        self.endpoint = endpoint
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.retry = retry
        self.not_found = not_found
        self.missing_ok = missing_ok
        self.response: httpx.Response | None = None

    @property
    def request(self) -> str:
        return f"{self.method} {self.url}"

    async def __aenter__(self) -> httpx.Response:
        self.response = await self._send()
        return self.response

    async def __aexit__(self, *_: object) -> None:
        if self.response is not None:
            await self.response.aclose()

    async def _send(self) -> httpx.Response:
        repository = self.repository
        authorizer = repository._authorizer
        assert authorizer is not None, "use the Repository as an async context manager"
        origin = self.endpoint.origin
        authorization = authorizer.header(origin, repository.scope)
        answered = False  # a 401 was answered with fresh credentials
        attempt = 0
        while True:
            try:
                response = await self._once(authorization)
            except httpx.TimeoutException:
                if not self.retry or attempt + 1 >= ATTEMPTS:
                    raise repository._hung(self.request) from None
                await _sleep(attempt, None)
                attempt += 1
                continue
            except httpx.TransportError as error:
                if not self.retry or attempt + 1 >= ATTEMPTS or _untrusted(error):
                    raise repository._unreachable(self.request, error) from None
                await _sleep(attempt, None)
                attempt += 1
                continue
            status = response.status_code
            if status == 401:
                challenge = response.headers.get("WWW-Authenticate", "")
                await response.aclose()
                if answered:
                    raise authorizer.failed(
                        self.request, "the credentials (or the token they gave) were refused"
                    )
                authorization = await authorizer.answer(
                    origin, repository.scope, challenge, self.request, authorization
                )
                answered = True
                continue
            if status in _RETRY_STATUS and self.retry and attempt + 1 < ATTEMPTS:
                await response.aclose()
                await _sleep(attempt, response)
                attempt += 1
                continue
            if status < 300 or (status == 404 and self.missing_ok):
                return response
            await response.aread()
            await response.aclose()
            if status == 404 and self.not_found:
                raise ImageNotFound(
                    f"registry {repository.registry} has no {repository.reference.repository}"
                    f":{repository.reference.object}"
                    f" ({self.request} answered 404: {_error_text(response) or 'not found'})"
                )
            if status == 403:
                raise authorizer.failed(self.request, f"403 Forbidden: {_error_text(response)}")
            raise repository._status(self.request, response)

    async def _once(self, authorization: str | None) -> httpx.Response:
        """One attempt, following redirects by hand (no credentials to another origin)."""
        repository = self.repository
        client = repository._client(self.endpoint)
        url = self.url
        origin = self.endpoint.origin
        for _ in range(_MAX_REDIRECTS + 1):
            headers = dict(self.headers)
            if authorization and _origin(url) == origin:
                headers["Authorization"] = authorization
            content = self.body() if self.body is not None else None
            request = client.build_request(self.method, url, headers=headers, content=content)
            sender = client if _origin(url) == origin else repository._plain
            response = await sender.send(request, stream=True)
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            location = response.headers.get("Location", "")
            await response.aclose()
            if not location or self.method not in ("GET", "HEAD"):
                raise repository._status(self.request, response)
            url = urljoin(url, location)
        raise RegistryError(
            f"registry {repository.registry}: {self.request} was redirected more than"
            f" {_MAX_REDIRECTS} times",
            registry=repository.registry,
            request=self.request,
        )


def _untrusted(error: BaseException) -> bool:
    """Whether a TLS certificate was refused (no retry changes that)."""
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(error)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _with_query(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


def _error_text(response: httpx.Response) -> str:
    """The registry's own error message (its JSON ``errors``), else the start of its answer."""
    try:
        body = response.content
    except httpx.ResponseNotRead:
        return ""
    try:
        import json

        document = json.loads(body)
        errors = document.get("errors") if isinstance(document, dict) else None
        if isinstance(errors, list) and errors:
            return "; ".join(
                f"{e.get('code', '')} {e.get('message', '')}".strip()
                for e in errors
                if isinstance(e, dict)
            )
    except ValueError:
        pass
    text = body[:200].decode("utf-8", "replace").strip()
    return " ".join(text.split())


def _json(data: bytes, request: str, repository: Repository) -> object:
    import json

    try:
        return json.loads(data)
    except ValueError:
        raise repository._invalid(
            request, "its answer is not a JSON manifest (an HTML page? a proxy's error?)"
        ) from None


async def _sleep(attempt: int, response: httpx.Response | None) -> None:
    """Back off before attempt ``attempt + 1``: exponential with jitter, or Retry-After."""
    delay = min(_BACKOFF * (2**attempt), _MAX_BACKOFF) * (0.5 + random.random() / 2)
    if response is not None:
        after = response.headers.get("Retry-After", "")
        if after.isdigit():
            delay = min(float(after), _MAX_BACKOFF)
        elif after:
            when = email.utils.parsedate_to_datetime(after)
            if when is not None:
                delay = min(max(when.timestamp() - time.time(), 0.0), _MAX_BACKOFF)
    await asyncio.sleep(delay)
