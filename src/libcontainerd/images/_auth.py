"""Registry authentication: anonymous, Basic, and Bearer tokens (``WWW-Authenticate``).

A request goes out with what is known for its origin and scope (nothing at
first). A 401 carries a challenge: ``Basic realm=...`` is answered with the
credentials, ``Bearer realm=...,service=...,scope=...`` with a token fetched
from the realm (with the credentials, if any, as Basic), cached per scope
until its ``expires_in`` (60 s if it does not say). A request that was
answered 401 after fresh credentials or a fresh token is refused for good
(:class:`AuthenticationFailed`): the caller never loops.

Credentials come from the caller (``auth=(user, password)`` or a
:class:`Credentials`), else from Docker's ``config.json`` (``$DOCKER_CONFIG``
or ``~/.docker``: ``auths[host].auth`` / ``identitytoken``, and credential
helpers ``credsStore`` / ``credHelpers`` run as ``docker-credential-<name> get``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ..errors import AuthenticationFailed, InvalidArgument

__all__ = [
    "Auth",
    "Authorizer",
    "Challenge",
    "Credentials",
    "credentials_from_docker_config",
    "parse_challenges",
]

DOCKER_HUB_KEY: Final = "https://index.docker.io/v1/"
_DEFAULT_EXPIRY: Final = 60.0
# A cached token is dropped this long before it expires (the request may be slow).
_MARGIN: Final = 5.0


@dataclass(frozen=True, slots=True)
class Credentials:
    """What to log in to a registry with: a user and password, or a token.

    ``identity_token`` is an OAuth2 refresh token (Docker's ``identitytoken``),
    exchanged for access tokens at the Bearer realm; ``registry_token`` is a
    ready Bearer token sent as it is.
    """

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""

    def __repr__(self) -> str:  # never print a secret
        return f"Credentials(username={self.username!r}, ...)"

    def basic(self) -> str:
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()


Auth = Credentials | tuple[str, str]


def as_credentials(auth: Auth | None) -> Credentials | None:
    """``auth`` as Credentials; InvalidArgument for anything else."""
    if auth is None or isinstance(auth, Credentials):
        return auth
    if isinstance(auth, tuple) and len(auth) == 2 and all(isinstance(part, str) for part in auth):
        return Credentials(username=auth[0], password=auth[1])
    raise InvalidArgument("auth must be a (username, password) pair or a Credentials")


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "basic", "bearer"
    params: dict[str, str]


_PARAM: Final = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a ``WWW-Authenticate`` value (quoted and bare parameters)."""
    challenges: list[Challenge] = []
    position = 0
    while position < len(header):
        scheme_match = re.compile(r"\s*,?\s*([A-Za-z][A-Za-z0-9_-]*)\s*").match(header, position)
        if scheme_match is None or scheme_match.end() == position:
            break
        params: dict[str, str] = {}
        position = scheme_match.end()
        while (found := _PARAM.match(header, position)) is not None and found.end() > position:
            quoted, bare = found.group(2), found.group(3)
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare or ""
            params[found.group(1).lower()] = value
            position = found.end()
        challenges.append(Challenge(scheme_match.group(1).lower(), params))
    return challenges


TokenFetcher = Callable[[str, dict[str, str], str | None], Awaitable[tuple[str, float]]]
"""Fetches a token: (realm, query parameters, Authorization) -> (token, expires_in seconds)."""


class Authorizer:
    """The Authorization headers for one registry's requests (see the module docstring)."""

    def __init__(self, registry: str, credentials: Credentials | None, fetch: TokenFetcher):
        self.registry = registry
        self.credentials = credentials
        self._fetch = fetch
        self._basic: set[str] = set()  # origins that asked for Basic
        self._bearer: dict[str, Challenge] = {}  # origin -> its Bearer challenge
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}  # (origin, scope) -> token
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def header(self, origin: str, scope: str) -> str | None:
        """What to send now to ``origin`` for ``scope`` (None: nothing known yet)."""
        if self.credentials is not None and self.credentials.registry_token:
            return "Bearer " + self.credentials.registry_token
        if origin in self._basic and self.credentials is not None:
            return self.credentials.basic()
        cached = self._tokens.get((origin, scope))
        if cached is not None and cached[1] > time.monotonic():
            return "Bearer " + cached[0]
        return None

    async def answer(
        self, origin: str, scope: str, header: str, request: str, sent: str | None
    ) -> str:
        """The Authorization for a retry after a 401 with this ``WWW-Authenticate``.

        ``sent`` is what the refused request carried: requests refused at the
        same time share one token fetch (the first fetches, the others take
        its token). Raises AuthenticationFailed when the challenge cannot be
        answered.
        """
        lock = self._locks.setdefault((origin, scope), asyncio.Lock())
        async with lock:
            current = self.header(origin, scope)
            if current is not None and current != sent:
                return current
            return await self._answer(origin, scope, header, request)

    async def _answer(self, origin: str, scope: str, header: str, request: str) -> str:
        challenges = {c.scheme: c for c in parse_challenges(header)}
        credentials = self.credentials
        if "bearer" in challenges:
            challenge = challenges["bearer"]
            realm = challenge.params.get("realm", "")
            if not realm:
                raise self.failed(request, "its Bearer challenge names no realm")
            self._bearer[origin] = challenge
            params = {"service": challenge.params.get("service", "")}
            params["scope"] = scope or challenge.params.get("scope", "")
            params = {key: value for key, value in params.items() if value}
            basic = None
            if credentials is not None and (credentials.username or credentials.password):
                basic = credentials.basic()
            if credentials is not None and credentials.identity_token:
                params["refresh_token"] = credentials.identity_token
            token, expires_in = await self._fetch(realm, params, basic)
            self._tokens[(origin, scope)] = (token, time.monotonic() + expires_in - _MARGIN)
            return "Bearer " + token
        if "basic" in challenges:
            if credentials is None or not (credentials.username or credentials.password):
                raise self.failed(
                    request, "it asks for a user name and password and none were given"
                )
            self._basic.add(origin)
            return credentials.basic()
        raise self.failed(
            request, f"it asks for authentication this library cannot give: {header!r}"
        )

    def failed(self, request: str, why: str) -> AuthenticationFailed:
        given = "" if self.credentials is None else f" (user {self.credentials.username!r})"
        return AuthenticationFailed(
            f"registry {self.registry} refused {request}{given}: {why}",
            registry=self.registry,
            request=request,
            status=401,
        )


def _config_path() -> Path:
    folder = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(folder) / "config.json"


def save_docker_login(registry: str, credentials: Credentials) -> Path:
    """Store the credentials in Docker's ``config.json`` (``auths``, as ``docker login``)."""
    path = _config_path()
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        config = {}
    except ValueError as error:
        raise InvalidArgument(f"{path} is not JSON ({error}): not touching it") from None
    key = DOCKER_HUB_KEY if registry == "docker.io" else registry
    auths = config.setdefault("auths", {})
    pair = f"{credentials.username}:{credentials.password}".encode()
    auths[key] = {"auth": base64.b64encode(pair).decode()}
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(config, file, indent="\t")
    os.replace(partial, path)
    return path


def remove_docker_login(registry: str) -> bool:
    """Forget the registry's credentials in ``config.json``; whether there were any."""
    path = _config_path()
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    key = DOCKER_HUB_KEY if registry == "docker.io" else registry
    auths = config.get("auths")
    if not isinstance(auths, dict) or key not in auths:
        return False
    del auths[key]
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(config, file, indent="\t")
    os.replace(partial, path)
    return True


def credentials_from_docker_config(registry: str) -> Credentials | None:
    """The credentials Docker's ``config.json`` holds for ``registry`` (None: none).

    Raises AuthenticationFailed when a credential helper fails.
    """
    try:
        config = json.loads(_config_path().read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    key = DOCKER_HUB_KEY if registry == "docker.io" else registry
    helpers = config.get("credHelpers") or {}
    helper = helpers.get(registry) if isinstance(helpers, dict) else None
    helper = helper or config.get("credsStore")
    if isinstance(helper, str) and helper:
        found = _from_helper(helper, key, registry)
        if found is not None:
            return found
    auths = config.get("auths") or {}
    entry = None
    if isinstance(auths, dict):
        for name in (key, registry, f"https://{registry}", f"http://{registry}"):
            if isinstance(auths.get(name), dict):
                entry = auths[name]
                break
    if entry is None:
        return None
    username, password = entry.get("username", ""), entry.get("password", "")
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            username, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
    token = entry.get("identitytoken") or ""
    if not (username or password or token):
        return None
    return Credentials(str(username), str(password), identity_token=str(token))


def _from_helper(helper: str, key: str, registry: str) -> Credentials | None:
    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        return None
    try:
        done = subprocess.run(
            [program, "get"], input=key, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise AuthenticationFailed(
            f"credential helper {helper} failed for {registry}: {error}", registry=registry
        ) from None
    if done.returncode != 0:
        return None  # "credentials not found in native keychain"
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        return None
    username, secret = str(answer.get("Username", "")), str(answer.get("Secret", ""))
    if username == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(username, secret)
