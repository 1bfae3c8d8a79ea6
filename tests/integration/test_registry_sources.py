"""Where a pull takes its credentials and bytes from, and a pull containerd's death cuts off.

Against Debian's reference registry on 127.0.0.1 (registries.py): Bearer
tokens that expire during a pull, Docker's credential helpers and identity
tokens (``$DOCKER_CONFIG`` pointed at a folder of the test's), registry
mirrors from a ``hosts.toml`` (tried first, and passed over when down),
foreign layers fetched from their own URLs (a loopback file server), the
media types a pull refuses, and containerd SIGKILLed in the middle of a
layer (its own daemon, not the session's). Every test leaves the namespace
empty.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
from collections.abc import Iterable
from pathlib import Path

import httpx
import pytest

from libcontainerd.client import AsyncClient
from libcontainerd.errors import (
    AuthenticationFailed,
    LibcontainerdError,
    Unavailable,
    UnsupportedMediaType,
)
from libcontainerd.images import Image, ImageService, _media
from libcontainerd.supervisor import Supervisor

from .. import figures
from .image_archives import EXPECTED_OUTPUT, OCI_NAME, Archives
from .matrix import versions
from .registries import Faults, Proxy, Registry, StaticFiles, TokenService, free_port
from .test_images import (  # noqa: F401 - archives, client, ctr: fixtures
    CLEAN,
    NAMESPACE,
    Ctr,
    archives,
    client,
    ctr,
    delete_container,
    images,
    run_image,
)
from .test_registry import registry  # noqa: F401 - a fixture

pytestmark = pytest.mark.integration


def _hosts_toml(folder: Path, registry_host: str, text: str) -> Path:
    (folder / registry_host).mkdir(parents=True, exist_ok=True)
    (folder / registry_host / "hosts.toml").write_text(text)
    return folder


async def _pushed(
    service: ImageService,
    archives: Archives,
    registry: Registry,
    repository: str,
    auth: tuple[str, str] | None = None,
) -> tuple[Image, str]:
    """The suite's image imported, pushed as ``<registry>/<repository>/app:1`` and removed
    here (a pull must fetch all of it): the image as imported, and the name pushed."""
    (imported,) = await service.import_archive(archives.oci)
    assert imported.manifest is not None
    name = f"{registry.host}/{repository}/app:1"
    await service.push(OCI_NAME, name, hosts_dir=registry.hosts_dir(), auth=auth)
    await service.remove(OCI_NAME)
    return imported, name


async def _runs(client: AsyncClient, image: Image) -> None:
    """A container of the pulled image prints what the suite's image prints (then goes)."""
    code, output, container_id = await run_image(client, image)
    assert (code, output) == (0, EXPECTED_OUTPUT), f"a container of {image.name}"
    await delete_container(client, container_id)


def _gets(faults: Faults, digests: Iterable[str]) -> list[str]:
    """The GET requests the proxy saw for any of the digests (blobs, by their digest)."""
    wanted = tuple(digests)
    return [
        seen for seen in faults.seen if seen.startswith("GET") and any(d in seen for d in wanted)
    ]


# --- credentials -----------------------------------------------------------------------


@pytest.mark.async_only(reason="token caching is the client's own logic, the same on the twin")
async def test_a_token_that_expires_during_a_pull_is_fetched_again(
    client: AsyncClient, archives: Archives, tmp_path: Path
) -> None:
    # expires_in 6 s is 1 s of use: tokens are dropped 5 s early (slow requests).
    with (
        TokenService(lambda n: (200, {"token": f"token-{n}", "expires_in": 6})) as tokens,
        Registry(tmp_path / "bearer", token_realm=tokens.realm) as registry,
    ):
        service = images(client)
        imported, name = await _pushed(service, archives, registry, "expiring", ("bob", "pw"))
        assert imported.config_descriptor is not None
        # The config's answer comes 1.5 s late: the layers are asked for after the expiry.
        faults = Faults(match=f"/blobs/{imported.config_descriptor.digest}", stall=1.5)
        before = len(tokens.requests)
        with Proxy(registry.port, faults) as proxy:
            pulled = await service.pull(
                name, hosts_dir=registry.hosts_dir(port=proxy.port), auth=("bob", "pw")
            )
        assert pulled.complete
        fetched = len(tokens.requests) - before
        assert fetched == 2  # the first token, and one more once it expired
        newest = f"Bearer token-{len(tokens.requests)}"
        layer_gets = [
            headers.get("Authorization", "")
            for seen, headers in zip(faults.seen, faults.headers, strict=True)
            if seen.startswith("GET") and any(layer.digest in seen for layer in pulled.layers)
        ]
        assert layer_gets
        assert layer_gets[-1] == newest
        assert f"Bearer token-{before + 1}" not in layer_gets  # never sent once expired
        await service.remove(name)


def _credential_helper(folder: Path, log: Path, answer: str, code: int = 0) -> None:
    """A ``docker-credential-lcdtest`` that logs what it is asked and answers ``answer``."""
    folder.mkdir(parents=True, exist_ok=True)
    helper = folder / "docker-credential-lcdtest"
    helper.write_text(
        "#!/bin/sh\n"
        "read -r server\n"
        f'echo "$1 $server" >> {log}\n'
        f"cat <<'EOF'\n{answer}\nEOF\n"
        f"exit {code}\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)


@pytest.mark.async_only(reason="config.json is read by the shared client logic, in a thread")
async def test_credentials_come_from_dockers_credential_helpers(
    client: AsyncClient,
    archives: Archives,
    ctr: Ctr,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = tmp_path / "helper.log"
    bin_dir = tmp_path / "bin"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    docker_config = tmp_path / "docker"
    docker_config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))
    with Registry(tmp_path / "auth", users={"alice": "s3cret"}) as registry:
        service = images(client)
        hosts = registry.hosts_dir()
        good = json.dumps({"ServerURL": registry.host, "Username": "alice", "Secret": "s3cret"})
        _credential_helper(bin_dir, log, good)
        # credHelpers: a helper for this registry only.
        (docker_config / "config.json").write_text(
            json.dumps({"credHelpers": {registry.host: "lcdtest"}})
        )
        _, name = await _pushed(service, archives, registry, "helped")
        assert log.read_text().splitlines() == [f"get {registry.host}"]
        # credsStore: the helper for every registry.
        (docker_config / "config.json").write_text(json.dumps({"credsStore": "lcdtest"}))
        pulled = await service.pull(name, hosts_dir=hosts)
        assert pulled.complete
        assert len(log.read_text().splitlines()) == 2
        await service.remove(name)
        # A helper that knows no credentials (exit 1) falls back to the auths entry.
        _credential_helper(bin_dir, log, "credentials not found in native keychain", code=1)
        (docker_config / "config.json").write_text(
            json.dumps(
                {"credsStore": "lcdtest", "auths": {registry.host: {"auth": "YWxpY2U6czNjcmV0"}}}
            )
        )
        pulled = await service.pull(name, hosts_dir=hosts)
        await service.remove(name)
        # Neither: refused, by type, naming the registry.
        (docker_config / "config.json").write_text(json.dumps({"credsStore": "lcdtest"}))
        with pytest.raises(AuthenticationFailed) as refused:
            await service.pull(name, hosts_dir=hosts)
        assert registry.host in str(refused.value)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN


@pytest.mark.async_only(reason="config.json is read by the shared client logic, in a thread")
async def test_an_identity_token_is_exchanged_at_the_realm_as_an_oauth2_refresh_token(
    client: AsyncClient,
    archives: Archives,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docker_config = tmp_path / "docker"
    docker_config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))
    with (
        TokenService() as tokens,
        Registry(tmp_path / "bearer", token_realm=tokens.realm) as registry,
    ):
        (docker_config / "config.json").write_text(
            json.dumps({"auths": {registry.host: {"identitytoken": "refresh-me"}}})
        )
        await _pushed(images(client), archives, registry, "identity")
        assert tokens.forms, "no POST reached the token service"
        form = tokens.forms[0]
        assert form["grant_type"] == "refresh_token"
        assert form["refresh_token"] == "refresh-me"
        assert form["service"] == "lcdtest"
        assert form["scope"] == "repository:identity/app:pull,push"


# --- mirrors ---------------------------------------------------------------------------


async def test_a_mirror_from_hosts_toml_is_tried_first_and_passed_over_when_down(
    client: AsyncClient, archives: Archives, ctr: Ctr, tmp_path: Path
) -> None:
    with (
        Registry(tmp_path / "upstream") as upstream,
        Registry(tmp_path / "mirror") as mirror,
    ):
        service = images(client)
        await service.import_archive(archives.oci)
        # The mirror holds the image under the upstream's repository name, as a pull-through
        # cache does; the upstream holds it too, for the case where the mirror is down.
        await service.push(OCI_NAME, f"{mirror.host}/mirrored/app:1", hosts_dir=mirror.hosts_dir())
        await service.push(
            OCI_NAME, f"{upstream.host}/mirrored/app:1", hosts_dir=upstream.hosts_dir()
        )
        await service.remove(OCI_NAME)
        name = f"{upstream.host}/mirrored/app:1"
        upstream_faults, mirror_faults = Faults(), Faults()
        with (
            Proxy(upstream.port, upstream_faults) as upstream_proxy,
            Proxy(mirror.port, mirror_faults) as mirror_proxy,
        ):
            hosts = _hosts_toml(
                tmp_path / "certs.d",
                upstream.host,
                f'server = "http://127.0.0.1:{upstream_proxy.port}"\n'
                f'[host."http://127.0.0.1:{mirror_proxy.port}"]\n'
                '  capabilities = ["pull", "resolve"]\n',
            )
            pulled = await service.pull(name, hosts_dir=hosts)
            assert pulled.complete
            assert upstream_faults.seen == []  # all from the mirror
            gets = [seen for seen in mirror_faults.seen if seen.startswith("GET")]
            assert gets
            # This client names the registry to the mirror (containerd 2's own pull does not).
            mine = [
                seen
                for seen, headers in zip(mirror_faults.seen, mirror_faults.headers, strict=True)
                if seen.startswith("GET")
                and not headers.get("User-Agent", "").startswith("containerd/")
            ]
            assert all(f"ns={upstream.host}" in seen for seen in mine)
            await _runs(client, pulled)
            await service.remove(name)
            # The mirror down (nothing listens there): the registry itself serves the pull.
            hosts = _hosts_toml(
                tmp_path / "certs.d-down",
                upstream.host,
                f'server = "http://127.0.0.1:{upstream_proxy.port}"\n'
                f'[host."http://127.0.0.1:{free_port()}"]\n'
                '  capabilities = ["pull", "resolve"]\n',
            )
            pulled = await service.pull(name, hosts_dir=hosts)
            assert pulled.complete
            assert any(
                seen.startswith("GET /v2/mirrored/app/manifests/") for seen in upstream_faults.seen
            )
            await service.remove(name)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN


# --- what comes from elsewhere, and what is refused ------------------------------------


async def _registry_get(registry: Registry, path: str) -> bytes:
    """A manifest or blob straight from the registry (over plain HTTP, no client of ours)."""
    async with httpx.AsyncClient(follow_redirects=True) as http:
        answer = await http.get(
            f"http://{registry.host}/v2/{path}", headers={"Accept": _media.OCI_MANIFEST}
        )
    answer.raise_for_status()
    return answer.content


def _foreign_manifest(manifest: bytes, layer_digest: str, url: str) -> bytes:
    """The manifest with one layer made non-distributable, fetched from ``url``."""
    document = json.loads(manifest)
    for layer in document["layers"]:
        if layer["digest"] == layer_digest:
            layer["mediaType"] = layer["mediaType"].replace(
                "image.layer.v1", "image.layer.nondistributable.v1"
            )
            layer["urls"] = [url]
    return json.dumps(document).encode()


@pytest.mark.parametrize("url_serves", [True, False], ids=["from-its-url", "url-fails"])
async def test_a_foreign_layer_comes_from_its_own_url_without_credentials(
    client: AsyncClient,
    archives: Archives,
    registry: Registry,
    ctr: Ctr,
    tmp_path: Path,
    url_serves: bool,
) -> None:
    service = images(client)
    imported, name = await _pushed(service, archives, registry, "foreign")
    manifest = await _registry_get(registry, "foreign/app/manifests/1")
    big = max(imported.layers, key=lambda layer: layer.size)
    storage = tmp_path / "storage"
    (storage / "layers").mkdir(parents=True)
    if url_serves:
        blob = await _registry_get(registry, f"foreign/app/blobs/{big.digest}")
        (storage / "layers" / big.digest.removeprefix("sha256:")).write_bytes(blob)
    with StaticFiles(storage) as files:
        url = f"{files.url}/layers/{big.digest.removeprefix('sha256:')}"
        changed = _foreign_manifest(manifest, big.digest, url)
        reply = (200, {"Content-Type": _media.OCI_MANIFEST}, changed)
        faults = Faults(match="/manifests/1", reply=reply)
        with Proxy(registry.port, faults) as proxy:
            pulled = await service.pull(
                name, hosts_dir=registry.hosts_dir(port=proxy.port), auth=("who", "ever")
            )
    assert pulled.complete
    foreign = [layer for layer in pulled.layers if layer.digest == big.digest]
    assert foreign
    assert foreign[0].urls == (url,)
    assert [path for path, _ in files.requests] == [f"/layers/{big.digest.removeprefix('sha256:')}"]
    assert all("Authorization" not in headers for _, headers in files.requests)
    assert len(_gets(faults, [big.digest])) == (0 if url_serves else 1)
    await _runs(client, pulled)
    await service.remove(name)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN


_SCHEMA1 = json.dumps(
    {"schemaVersion": 1, "name": "old/app", "tag": "1", "architecture": "amd64", "fsLayers": []}
).encode()


def _encrypted(manifest: dict[str, object]) -> bytes:
    layers = manifest["layers"]
    assert isinstance(layers, list)
    layers[0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted"
    return json.dumps(manifest).encode()


@pytest.mark.parametrize("kind", ["schema1", "encrypted", "artifact"])
async def test_what_cannot_run_is_refused_by_type_before_any_layer_is_fetched(
    client: AsyncClient,
    archives: Archives,
    registry: Registry,
    ctr: Ctr,
    kind: str,
) -> None:
    service = images(client)
    imported, name = await _pushed(service, archives, registry, "refused")
    manifest = json.loads(await _registry_get(registry, "refused/app/manifests/1"))
    if kind == "schema1":
        reply = (
            200,
            {"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"},
            _SCHEMA1,
        )
        says = "schema 1"
    elif kind == "encrypted":
        reply = (200, {"Content-Type": _media.OCI_MANIFEST}, _encrypted(manifest))
        says = "encrypted"
    else:
        manifest["config"]["mediaType"] = "application/vnd.example.model.config.v1+json"
        reply = (200, {"Content-Type": _media.OCI_MANIFEST}, json.dumps(manifest).encode())
        says = "application/vnd.example.model.config.v1+json"
    faults = Faults(match="/manifests/1", reply=reply)
    with Proxy(registry.port, faults) as proxy, pytest.raises(UnsupportedMediaType) as refused:
        await service.pull(name, hosts_dir=registry.hosts_dir(port=proxy.port))
    assert says in str(refused.value)
    assert _gets(faults, (layer.digest for layer in imported.layers)) == []
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN


# --- containerd killed mid-pull --------------------------------------------------------


@pytest.mark.async_only(reason="kills its own containerd; the twin's pull is the same code")
async def test_a_pull_cut_off_by_containerd_dying_completes_on_the_next_one_leaving_nothing(
    archives: Archives,
    registry: Registry,
    containerd: str,
    workdir: Path,
) -> None:
    containerd_name = next(v.name for v in versions() if v.binary == containerd)
    daemon = Supervisor(workdir / "s", workdir / "r", containerd=containerd)
    async with daemon, AsyncClient(daemon.address, NAMESPACE) as own:
        own_ctr = Ctr(Path(containerd).with_name("ctr"), daemon.address)
        service = own.images
        imported, name = await _pushed(service, archives, registry, "crashed")
        big = max(imported.layers, key=lambda layer: layer.size)
        # The layer stalls at 40 % for 5 s, then its connection drops: containerd is
        # killed during the stall, with the layer's ingest open.
        faults = Faults(match=f"/blobs/{big.digest}", stall_after=big.size * 4 // 10, stall_for=5)
        with Proxy(registry.port, faults) as proxy:
            hosts = registry.hosts_dir(port=proxy.port)
            pulling = asyncio.create_task(service.pull(name, hosts_dir=hosts))
            async with asyncio.timeout(60):
                while not any(big.digest in row for row in own_ctr.rows("content", "active")):
                    await asyncio.sleep(0.1)
            restarts = daemon.restarts
            os.kill(daemon.pid or 0, signal.SIGKILL)
            async with asyncio.timeout(120):
                await daemon.wait_ready(min_restarts=restarts + 1)
                # The pull either resumes the layer on the restarted containerd by itself
                # (the dropped connection is retried from the ingest's offset) or fails
                # with a typed error; then the next pull completes.
                first = (await asyncio.gather(pulling, return_exceptions=True))[0]
                if isinstance(first, BaseException):
                    assert isinstance(first, LibcontainerdError), repr(first)
                    figures.record(
                        f"pull, containerd killed [{containerd_name}]", "failed, then completed", 1
                    )
                    while True:  # the channel reconnects within its backoff (<= 2 s)
                        try:
                            pulled = await service.pull(name, hosts_dir=hosts)
                            break
                        except Unavailable:
                            await asyncio.sleep(0.2)
                else:
                    figures.record(
                        f"pull, containerd killed [{containerd_name}]", "resumed by itself", 1
                    )
                    pulled = first
        assert pulled.complete
        assert len(_gets(faults, [big.digest])) == 2  # the cut-off answer, then the rest
        assert own_ctr.rows("content", "active") == []
        await _runs(own, pulled)
        await service.remove(name)
        # The cut-off pull's lease was ended by the pull that completed: nothing is left.
        assert await asyncio.to_thread(own_ctr.leftovers) == CLEAN
