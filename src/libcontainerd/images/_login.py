"""Logging in to a registry: check the credentials, keep them where Docker keeps them.

No containerd is involved: ``docker login`` and ``lcd login`` write the same
``config.json`` (``$DOCKER_CONFIG`` or ``~/.docker``), which a later pull or
push reads when it is given no ``auth``.
"""

from __future__ import annotations

import asyncio
import os

from ._auth import Auth, as_credentials

__all__ = ["login", "logout"]


async def login(
    registry: str, auth: Auth, *, hosts_dir: str | os.PathLike[str] | None = None
) -> str:
    """Check ``auth`` with ``registry`` (``host[:port]``, ``docker.io`` for Docker Hub), then
    keep it in Docker's ``config.json``; the path written.

    Raises AuthenticationFailed (refused), RegistryError, DeadlineExceeded,
    InvalidArgument (a bad registry name, a config.json that is not JSON).
    """
    from ._auth import save_docker_login
    from ._registry import Reference, Repository

    reference = Reference.registry_only(registry)
    credentials = as_credentials(auth)
    assert credentials is not None
    async with Repository(reference, credentials=credentials, hosts_dir=hosts_dir) as repository:
        await repository.ping()
    return str(await asyncio.to_thread(save_docker_login, reference.registry, credentials))


def logout(registry: str) -> bool:
    """Forget what Docker's ``config.json`` keeps for ``registry``; whether it kept anything."""
    from ._auth import remove_docker_login
    from ._registry import Reference

    return remove_docker_login(Reference.registry_only(registry).registry)
