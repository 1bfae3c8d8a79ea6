"""Where a registry's requests go: containerd's ``certs.d`` layout (``<host>/hosts.toml``).

One configuration serves containerd and this library. For registry
``host[:port]`` the folder ``<hosts_dir>/<host[:port]>/`` (else
``<hosts_dir>/_default/``) may hold a ``hosts.toml``::

    server = "http://127.0.0.1:5000"        # the registry itself (scheme: HTTPS or plain HTTP)
    ca = "/path/ca.pem"                     # trust this CA for it (one path or a list)
    skip_verify = false                     # do not check its certificate at all
    client = [["/path/cert.pem", "/path/key.pem"]]

    [host."https://mirror.example:5000"]   # tried first, in file order
      capabilities = ["pull", "resolve"]
      ca = "/path/mirror-ca.pem"

Without a file the registry is reached over HTTPS with the system's CAs
(Docker Hub's ``docker.io`` at ``registry-1.docker.io``); plain HTTP is used
only where a file says ``http://``.
"""

from __future__ import annotations

import functools
import os
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from ..errors import InvalidArgument

__all__ = ["DEFAULT_HOSTS_DIR", "Endpoint", "endpoints_for", "system_tls"]

DEFAULT_HOSTS_DIR: Final = "/etc/containerd/certs.d"
DOCKER_HUB: Final = "docker.io"
DOCKER_HUB_API: Final = "https://registry-1.docker.io"
_ALL: Final = frozenset({"pull", "resolve", "push"})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One place that serves a registry's API: the registry itself or a mirror."""

    base: str  # scheme://host[:port] and the API path (``/v2`` unless overridden)
    capabilities: frozenset[str]
    verify: ssl.SSLContext | bool
    mirror_of: str  # the registry's host when this endpoint is another host ("" otherwise)

    @property
    def origin(self) -> str:
        parts = urlsplit(self.base)
        return f"{parts.scheme}://{parts.netloc}"


def endpoints_for(registry: str, hosts_dir: str | os.PathLike[str] | None) -> list[Endpoint]:
    """The endpoints for ``registry`` (``host[:port]`` as in image names), in the order to try.

    Raises InvalidArgument for a ``hosts.toml`` that cannot be read.
    """
    folder = _folder(registry, hosts_dir)
    default_server = DOCKER_HUB_API if registry == DOCKER_HUB else f"https://{registry}"
    if folder is None:
        return [Endpoint(default_server + "/v2", _ALL, True, "")]
    path = folder / "hosts.toml"
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise InvalidArgument(f"cannot read {path}: {error}") from None
    endpoints = []
    hosts = document.get("host") or {}
    if not isinstance(hosts, Mapping):
        raise InvalidArgument(f"{path}: [host] is not a table")
    for url, section in hosts.items():
        if not isinstance(section, Mapping):
            raise InvalidArgument(f"{path}: [host.{url!r}] is not a table")
        endpoints.append(_endpoint(registry, str(url), section, path, mirror=True))
    server = document.get("server")
    if server is None:
        server = default_server
    if not isinstance(server, str):
        raise InvalidArgument(f"{path}: server is not a URL string")
    endpoints.append(_endpoint(registry, server, document, path, mirror=False))
    return endpoints


def _folder(registry: str, hosts_dir: str | os.PathLike[str] | None) -> Path | None:
    if hosts_dir is None:
        if not os.path.isdir(DEFAULT_HOSTS_DIR):
            return None
        hosts_dir = DEFAULT_HOSTS_DIR
    for name in (registry, "_default"):
        folder = Path(hosts_dir) / name
        if (folder / "hosts.toml").is_file():
            return folder
    return None


def _endpoint(
    registry: str, url: str, section: Mapping[str, Any], path: Path, *, mirror: bool
) -> Endpoint:
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidArgument(f"{path}: {url!r} is not an http:// or https:// URL")
    api_path = parts.path.rstrip("/")
    if not section.get("override_path", False):
        api_path = api_path + "/v2" if not api_path.endswith("/v2") else api_path
    capabilities = section.get("capabilities", sorted(_ALL))
    if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
        raise InvalidArgument(f"{path}: capabilities of {url!r} is not a list of strings")
    own = parts.netloc == registry or (registry == DOCKER_HUB and not mirror)
    return Endpoint(
        f"{parts.scheme}://{parts.netloc}{api_path}",
        frozenset(capabilities),
        _tls(section, path, parts.scheme == "https"),
        "" if own else registry,
    )


@functools.cache
def system_tls() -> ssl.SSLContext:
    """The system's CAs (OpenSSL's default paths, ``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured).

    Made once a process and shared by every connection that has no TLS
    settings of its own: loading the CA bundle costs ~20 ms, which each pull
    paid twice when every HTTP client made its own.
    """
    return ssl.create_default_context()


def _tls(section: Mapping[str, Any], path: Path, https: bool) -> ssl.SSLContext | bool:
    """The TLS settings of one endpoint: True (system CAs) or a context of its own."""
    if not https:
        return True
    cas = section.get("ca") or []
    cas = [cas] if isinstance(cas, str) else cas
    clients = section.get("client") or []
    clients = [clients] if isinstance(clients, str) else clients
    skip = section.get("skip_verify", False)
    if not cas and not clients and not skip:
        return True
    context = ssl.create_default_context()
    try:
        for ca in cas:
            context.load_verify_locations(cafile=str(_relative(ca, path)))
        for entry in clients:
            pair = [entry] if isinstance(entry, str) else list(entry)
            context.load_cert_chain(*(str(_relative(p, path)) for p in pair[:2]))
    except (OSError, ssl.SSLError, TypeError) as error:
        raise InvalidArgument(f"{path}: cannot load a CA or client certificate: {error}") from None
    if skip:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _relative(value: object, path: Path) -> Path:
    """A path from hosts.toml: absolute, or relative to the file's folder (as containerd)."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{path}: {value!r} is not a path")
    given = Path(value)
    return given if given.is_absolute() else path.parent / given
