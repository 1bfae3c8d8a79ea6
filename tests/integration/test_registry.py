"""Pull and push against real registries: Debian's reference registry, skopeo and ctr as referees.

Each test starts its own ``docker-registry`` (distribution 2.8) on 127.0.0.1
with a free port and a temporary storage folder (registries.py), reached
over plain HTTP because a ``hosts.toml`` in a test ``certs.d`` folder says
so, and stops it by its pid. The images are part 1's archives (built by
umoci and skopeo, image_archives.py). skopeo reads what we push and pushes
what we pull; ``ctr images check`` must find what we pulled complete. Faults
come from a loopback proxy in front of the registry (503s, a flipped byte).
Every test runs in the namespace ``lcdimages``, which it leaves empty.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from libcontainerd._api.containerd.api.services.content.v1 import content_pb2
from libcontainerd.client import AsyncClient
from libcontainerd.errors import (
    AuthenticationFailed,
    DeadlineExceeded,
    DigestMismatch,
    ImageNotFound,
    InvalidImage,
    NotFound,
    RegistryError,
)
from libcontainerd.images import Platform, Progress, _pull, _registry, host_platform
from libcontainerd.supervisor import Supervisor

from .containers import NewClient
from .image_archives import EXPECTED_OUTPUT, OCI_NAME, Archives
from .registries import Faults, Proxy, Registry, StaticFiles, TokenService
from .test_images import (  # noqa: F401 - archives, client, ctr: fixtures
    CLEAN,
    NAMESPACE,
    REPO,
    Ctr,
    archives,
    client,
    ctr,
    delete_container,
    images,
    run_image,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with Registry(tmp_path / "registry") as started:
        yield started


def skopeo(*args: str) -> str:
    done = subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, check=False, timeout=120
    )
    if done.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout


async def test_a_pushed_image_pulls_back_under_another_name_and_runs(
    client: AsyncClient, archives: Archives, registry: Registry, ctr: Ctr, tmp_path: Path
) -> None:
    service = images(client)
    (imported,) = await service.import_archive(archives.oci)
    hosts = registry.hosts_dir()
    pushed_name = f"{registry.host}/lcdtest/app:pushed"
    steps: list[Progress] = []
    digest = await service.push(OCI_NAME, pushed_name, hosts_dir=hosts, progress=steps.append)
    assert digest == imported.manifest.digest if imported.manifest else False
    assert {step.phase for step in steps} == {"upload"}
    # skopeo reads it back: same manifest bytes.
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{pushed_name}")
    assert json.loads(raw)["config"]["digest"] == imported.config_descriptor.digest  # type: ignore[union-attr]
    # The namespace forgets it; the pull brings it back under the pushed name.
    await service.remove(OCI_NAME)
    steps.clear()
    pulled = await service.pull(pushed_name, hosts_dir=hosts, progress=steps.append)
    assert pulled.name == pushed_name
    assert pulled.manifest == imported.manifest
    assert pulled.diff_ids == imported.diff_ids
    assert {step.phase for step in steps} == {"download", "unpack"}
    assert "complete" in ctr("images", "check", f"name=={pushed_name}")
    (row,) = [row for row in ctr.rows("content", "ls") if row.split()[0] == pulled.layers[0].digest]
    assert "containerd.io/distribution.source.127.0.0.1=lcdtest/app" in row
    code, output, container_id = await run_image(client, pulled)
    assert (code, output) == (0, EXPECTED_OUTPUT)
    await delete_container(client, container_id)
    # Pulled again: nothing new is downloaded (every blob is in the store).
    steps.clear()
    again = await service.pull(pushed_name, hosts_dir=hosts, progress=steps.append)
    assert again.digest == pulled.digest
    assert all(s.done == s.total for s in steps if s.phase == "download")


@pytest.mark.async_only(reason="the skopeo round trip needs no second run on the twin")
async def test_an_image_skopeo_pushed_with_zstd_layers_pulls_and_runs_and_skopeo_reads_ours(
    client: AsyncClient, archives: Archives, registry: Registry, tmp_path: Path
) -> None:
    theirs = f"{registry.host}/skopeo/app:zstd"
    skopeo(
        "copy", "--dest-tls-verify=false", f"oci-archive:{archives.oci_zstd}", f"docker://{theirs}"
    )
    service = images(client)
    hosts = registry.hosts_dir()
    pulled = await service.pull(theirs, hosts_dir=hosts)
    assert {layer.media_type for layer in pulled.layers} == {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    }
    code, output, container_id = await run_image(client, pulled)
    assert (code, output) == (0, EXPECTED_OUTPUT)
    await delete_container(client, container_id)
    ours = f"{registry.host}/ours/app:1"
    await service.push(theirs, ours, hosts_dir=hosts)
    copied = tmp_path / "copied"
    skopeo("copy", "--src-tls-verify=false", f"docker://{ours}", f"dir:{copied}")
    manifest = json.loads((copied / "manifest.json").read_text())
    assert [layer["digest"] for layer in manifest["layers"]] == [
        layer.digest for layer in pulled.layers
    ]


async def test_basic_auth_pushes_and_pulls_and_a_wrong_password_is_refused_by_type(
    client: AsyncClient, archives: Archives, ctr: Ctr, tmp_path: Path
) -> None:
    with Registry(tmp_path / "auth", users={"alice": "s3cret"}) as registry:
        service = images(client)
        await service.import_archive(archives.oci)
        hosts = registry.hosts_dir()
        name = f"{registry.host}/private/app:1"
        with pytest.raises(AuthenticationFailed) as refused:
            await service.push(OCI_NAME, name, hosts_dir=hosts)
        assert registry.host in str(refused.value)
        await service.push(OCI_NAME, name, hosts_dir=hosts, auth=("alice", "s3cret"))
        with pytest.raises(AuthenticationFailed) as wrong:
            await service.pull(name, hosts_dir=hosts, auth=("alice", "wrong"))
        assert "alice" in str(wrong.value)
        assert wrong.value.status == 401
        await service.remove(OCI_NAME)
        pulled = await service.pull(name, hosts_dir=hosts, auth=("alice", "s3cret"))
        assert pulled.complete
        await service.remove(name)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN


@pytest.mark.async_only(reason="the token flow is the client's logic, the same on the twin")
async def test_a_bearer_challenge_gets_one_token_per_scope_with_the_credentials(
    client: AsyncClient, archives: Archives, tmp_path: Path
) -> None:
    with (
        TokenService() as tokens,
        Registry(tmp_path / "bearer", token_realm=tokens.realm) as registry,
    ):
        service = images(client)
        await service.import_archive(archives.oci)
        hosts = registry.hosts_dir()
        name = f"{registry.host}/tokens/app:1"
        await service.push(OCI_NAME, name, hosts_dir=hosts, auth=("bob", "pw"))
        assert len(tokens.requests) == 1  # cached for the scope, every later request reuses it
        path, headers = tokens.requests[0]
        assert "scope=repository%3Atokens%2Fapp%3Apull%2Cpush" in path
        assert "service=lcdtest" in path
        assert headers["Authorization"].startswith("Basic ")
        await service.remove(OCI_NAME)
        await service.pull(name, hosts_dir=hosts, auth=("bob", "pw"))
        assert len(tokens.requests) == 2  # a new client call, a pull scope
        assert "scope=repository%3Atokens%2Fapp%3Apull&" in tokens.requests[1][0] + "&"
        await service.remove(name)


@pytest.mark.async_only(reason="a token service that refuses is the client's logic")
async def test_a_refused_token_is_one_typed_error_not_a_loop(
    client: AsyncClient, tmp_path: Path
) -> None:
    with (
        TokenService(lambda n: (401, {"details": "no"})) as tokens,
        Registry(tmp_path / "bearer", token_realm=tokens.realm) as registry,
    ):
        name, hosts = f"{registry.host}/tokens/app:1", registry.hosts_dir()
        with pytest.raises(AuthenticationFailed):
            await images(client).pull(name, hosts_dir=hosts, transfer=False)
        assert len(tokens.requests) == 1
        # The default: where the daemon pulls first (Transfer), it asks once, then this client.
        tokens.requests.clear()
        with pytest.raises(AuthenticationFailed):
            await images(client).pull(name, hosts_dir=hosts)
        askers = collections.Counter(
            "daemon" if headers.get("User-Agent", "").startswith("containerd/") else "client"
            for _, headers in tokens.requests
        )
        assert askers["client"] == 1
        assert askers["daemon"] <= 1


async def test_an_unknown_tag_is_image_not_found_and_leaves_nothing(
    client: AsyncClient, registry: Registry, ctr: Ctr
) -> None:
    with pytest.raises(ImageNotFound) as absent:
        await images(client).pull(
            f"{registry.host}/nobody/here:never", hosts_dir=registry.hosts_dir()
        )
    assert registry.host in str(absent.value)
    assert "nobody/here:never" in str(absent.value)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN


@pytest.mark.async_only(reason="the digest check is the client's logic, the same on the twin")
async def test_a_blob_that_is_not_its_digest_is_refused_and_nothing_is_committed(
    client: AsyncClient, archives: Archives, registry: Registry, ctr: Ctr
) -> None:
    service = images(client)
    (imported,) = await service.import_archive(archives.oci)
    hosts = registry.hosts_dir()
    name = f"{registry.host}/lying/app:1"
    await service.push(OCI_NAME, name, hosts_dir=hosts)
    await service.remove(OCI_NAME)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN
    big = max(imported.layers, key=lambda layer: layer.size)
    with Proxy(registry.port, Faults(match=big.digest, corrupt=True)) as proxy:
        with pytest.raises(DigestMismatch) as mismatch:
            await service.pull(name, hosts_dir=registry.hosts_dir(port=proxy.port))
        assert big.digest in str(mismatch.value)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN
    pulled = await service.pull(name, hosts_dir=hosts)  # straight from the registry: fine
    assert pulled.complete


@pytest.mark.async_only(reason="retries are the client's logic, the same on the twin")
async def test_503_three_times_then_success_is_retried_to_a_complete_pull(
    client: AsyncClient, archives: Archives, registry: Registry, ctr: Ctr
) -> None:
    service = images(client)
    (imported,) = await service.import_archive(archives.oci)
    hosts = registry.hosts_dir()
    name = f"{registry.host}/flaky/app:1"
    await service.push(OCI_NAME, name, hosts_dir=hosts)
    await service.remove(OCI_NAME)
    for match in ("/manifests/", imported.layers[0].digest):
        faults = Faults(match=match, unavailable=3)
        with Proxy(registry.port, faults) as proxy:
            pulled = await service.pull(name, hosts_dir=registry.hosts_dir(port=proxy.port))
        assert pulled.complete
        assert faults.unavailable == 0
        assert sum(match in seen for seen in faults.seen) >= 4
        await service.remove(name)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN


@pytest.mark.async_only(reason="redirects are the client's logic, the same on the twin")
async def test_blob_redirects_to_storage_never_carry_the_registry_credentials(
    client: AsyncClient, archives: Archives, ctr: Ctr, tmp_path: Path
) -> None:
    folder = tmp_path / "redirecting"
    with (
        StaticFiles(folder / "data") as storage,
        Registry(folder, users={"alice": "s3cret"}, redirect_to=storage.url) as registry,
    ):
        service = images(client)
        await service.import_archive(archives.oci)
        hosts = registry.hosts_dir()
        name = f"{registry.host}/redirected/app:1"
        await service.push(OCI_NAME, name, hosts_dir=hosts, auth=("alice", "s3cret"))
        await service.remove(OCI_NAME)
        pulled = await service.pull(name, hosts_dir=hosts, auth=("alice", "s3cret"))
        assert pulled.complete
        fetched = [path for path, _ in storage.requests]
        assert len(fetched) == 1 + len(pulled.layers)  # the config and each layer
        assert not [h for _, h in storage.requests if "authorization" in map(str.lower, h)]
        await service.remove(name)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN


@pytest.mark.async_only(reason="timeouts are the client's logic, the same on the twin")
async def test_a_request_that_hangs_is_deadline_exceeded_naming_it(
    client: AsyncClient, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_registry, "TIMEOUT", httpx.Timeout(0.3, connect=5.0))
    monkeypatch.setattr(_registry, "ATTEMPTS", 2)
    with (
        Proxy(registry.port, Faults(match="/manifests/", stall=1.5)) as proxy,
        pytest.raises(DeadlineExceeded) as hung,
    ):
        await images(client).pull(
            f"{registry.host}/slow/app:1", hosts_dir=registry.hosts_dir(port=proxy.port)
        )
    assert f"GET http://127.0.0.1:{proxy.port}/v2/slow/app/manifests/1" in str(hung.value)
    assert registry.host in str(hung.value)


@pytest.mark.async_only(reason="answer checks are the client's logic, the same on the twin")
@pytest.mark.parametrize(
    ("reply", "says"),
    [
        ((200, {"Content-Type": "text/html"}, b"<html><body>login</body></html>"), "HTML"),
        (
            (200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, b" " * (5 << 20)),
            "over 4 MiB",
        ),
        ((500, {"Content-Type": "text/plain"}, b"boom"), "500"),
    ],
    ids=["html", "oversized", "500 for good"],
)
async def test_a_bad_registry_answer_is_a_typed_error_naming_the_registry_and_request(
    client: AsyncClient,
    registry: Registry,
    ctr: Ctr,
    monkeypatch: pytest.MonkeyPatch,
    reply: tuple[int, dict[str, str], bytes],
    says: str,
) -> None:
    monkeypatch.setattr(_registry, "ATTEMPTS", 2)
    with (
        Proxy(registry.port, Faults(match="/manifests/", reply=reply)) as proxy,
        pytest.raises((InvalidImage, RegistryError)) as refused,
    ):
        await images(client).pull(
            f"{registry.host}/bad/app:1", hosts_dir=registry.hosts_dir(port=proxy.port)
        )
    message = str(refused.value)
    assert says in message
    assert registry.host in message
    assert f"127.0.0.1:{proxy.port}/v2/bad/app/manifests/1" in message
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN


@pytest.mark.async_only(reason="ctr is the referee once; the twin pulls the same way")
async def test_ctr_pulls_the_same_digests_chain_and_gc_labels_as_we_do(
    client: AsyncClient, archives: Archives, registry: Registry, ctr: Ctr, containerd: str
) -> None:
    service = images(client)
    await service.import_archive(archives.oci)
    hosts = registry.hosts_dir()
    name = f"{registry.host}/referee/app:1"
    await service.push(OCI_NAME, name, hosts_dir=hosts)
    await service.remove(OCI_NAME)

    def content() -> dict[str, set[str]]:
        rows = [row.split() for row in ctr.rows("content", "ls")]
        return {row[0]: set(row[-1].split(",")) for row in rows}

    ours = await service.pull(name, hosts_dir=hosts)
    our_content = await asyncio.to_thread(content)
    our_snapshots = sorted(ctr.keys("snapshots", "ls"))
    await service.remove(name)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN
    local = ["--local"] if "1.7" in Path(containerd).parent.as_posix() else []
    await asyncio.to_thread(ctr, "images", "pull", "--plain-http", *local, name)
    theirs = await service.get(name)
    assert (theirs.digest, theirs.chain_id) == (ours.digest, ours.chain_id)
    assert await asyncio.to_thread(content) == our_content
    assert sorted(ctr.keys("snapshots", "ls")) == our_snapshots
    await service.remove(name)


@pytest.mark.async_only(reason="the lcd command is one program whichever client the library has")
async def test_lcd_login_push_pull_logout_through_dockers_config_json(
    client: AsyncClient, archives: Archives, supervisor: Supervisor, tmp_path: Path
) -> None:
    from .lcd import LCD

    docker_config = tmp_path / "docker"
    env = {**os.environ, "DOCKER_CONFIG": str(docker_config)}

    def lcd(
        *args: str, stdin: str | None = None, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [LCD, "--address", supervisor.address, "--namespace", NAMESPACE, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
        )
        assert (done.returncode == 0) == ok, done.stderr
        return done

    with Registry(tmp_path / "auth", users={"alice": "s3cret"}) as registry:
        hosts = str(registry.hosts_dir())
        await images(client).import_archive(archives.oci)
        name = f"{registry.host}/cli/app:1"
        refused = lcd("push", "--hosts-dir", hosts, OCI_NAME, name, ok=False)
        assert refused.stderr.count("\n") == 1
        assert "refused" in refused.stderr
        assert registry.host in refused.stderr
        wrong = lcd(
            "login",
            "-u",
            "alice",
            "--password-stdin",
            "--hosts-dir",
            hosts,
            registry.host,
            stdin="nope\n",
            ok=False,
        )
        assert "alice" in wrong.stderr
        assert not (docker_config / "config.json").exists()
        lcd(
            "login",
            "-u",
            "alice",
            "--password-stdin",
            "--hosts-dir",
            hosts,
            registry.host,
            stdin="s3cret\n",
        )
        kept = json.loads((docker_config / "config.json").read_text())
        assert registry.host in kept["auths"]
        pushed = lcd("push", "--hosts-dir", hosts, OCI_NAME, name)
        assert pushed.stdout.startswith("Digest: sha256:")
        await images(client).remove(OCI_NAME)
        pulled = lcd("pull", "--hosts-dir", hosts, name)
        assert pulled.stdout.splitlines()[-1] == name
        assert lcd("logout", registry.host).stdout.startswith("Removing login credentials")
        assert registry.host not in json.loads((docker_config / "config.json").read_text())["auths"]
        await images(client).remove(name)


@pytest.mark.async_only(reason="mounts are the client's logic, the same on the twin")
async def test_a_pulled_image_pushed_to_another_repository_mounts_its_blobs_without_upload(
    client: AsyncClient, archives: Archives, registry: Registry
) -> None:
    service = images(client)
    await service.import_archive(archives.oci)
    hosts = registry.hosts_dir()
    first = f"{registry.host}/first/app:1"
    await service.push(OCI_NAME, first, hosts_dir=hosts)
    await service.remove(OCI_NAME)
    await service.pull(first, hosts_dir=hosts)
    faults = Faults()
    with Proxy(registry.port, faults) as proxy:
        await service.push(
            first, f"{registry.host}/second/app:1", hosts_dir=registry.hosts_dir(port=proxy.port)
        )
    mounts = [seen for seen in faults.seen if seen.startswith("POST") and "mount=" in seen]
    assert len(mounts) == 4  # the config and three layers
    assert all("from=first/app" in seen for seen in mounts)
    assert not [
        seen for seen in faults.seen if seen.startswith(("PATCH", "PUT /v2/second/app/blobs"))
    ]
    skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/second/app:1")


@pytest.mark.async_only(reason="chunked uploads are the client's logic, the same on the twin")
async def test_a_chunked_push_is_read_back_whole_by_skopeo(
    client: AsyncClient,
    archives: Archives,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(_pull, "UPLOAD_CHUNK", 256 << 10)
    service = images(client)
    (imported,) = await service.import_archive(archives.oci)
    faults = Faults()
    name = f"{registry.host}/chunked/app:1"
    with Proxy(registry.port, faults) as proxy:
        await service.push(OCI_NAME, name, hosts_dir=registry.hosts_dir(port=proxy.port))
    patches = [seen for seen in faults.seen if seen.startswith("PATCH")]
    big = max(layer.size for layer in imported.layers)
    assert len(patches) >= -(-big // (256 << 10))
    copied = tmp_path / "copied"
    skopeo("copy", "--src-tls-verify=false", f"docker://{name}", f"dir:{copied}")
    for layer in imported.layers:  # skopeo checks each blob's digest as it copies
        assert (copied / layer.digest.removeprefix("sha256:")).stat().st_size == layer.size


async def test_https_with_the_registrys_ca_from_hosts_toml_and_an_unknown_ca_refused(
    client: AsyncClient, archives: Archives, ctr: Ctr, tmp_path: Path
) -> None:
    with Registry(tmp_path / "tls", tls=True) as registry:
        service = images(client)
        await service.import_archive(archives.oci)
        name = f"{registry.host}/tls/app:1"
        with pytest.raises(RegistryError) as untrusted:  # no hosts.toml: the system's CAs
            await service.push(OCI_NAME, name, hosts_dir=tmp_path / "empty")
        assert "CERTIFICATE_VERIFY_FAILED" in str(untrusted.value)
        assert f"https://{registry.host}/v2/" in str(untrusted.value)
        hosts = registry.hosts_dir()
        await service.push(OCI_NAME, name, hosts_dir=hosts)
        await service.remove(OCI_NAME)
        pulled = await service.pull(name, hosts_dir=hosts)
        assert pulled.complete
        await service.remove(name)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN


@pytest.mark.async_only(reason="the overlap is the client's logic, the same on the twin")
async def test_lower_layers_unpack_while_a_later_one_still_downloads(
    client: AsyncClient, archives: Archives, registry: Registry
) -> None:
    service = images(client)
    (imported,) = await service.import_archive(archives.oci)
    name = f"{registry.host}/overlap/app:1"
    await service.push(OCI_NAME, name, hosts_dir=registry.hosts_dir())
    await service.remove(OCI_NAME)
    top = imported.layers[-1].digest
    steps: list[Progress] = []
    with Proxy(registry.port, Faults(match=f"/blobs/{top}", stall=1.0)) as proxy:
        # This client's overlap (containerd 2.1's own pull does not report its unpacks).
        await service.pull(
            name,
            hosts_dir=registry.hosts_dir(port=proxy.port),
            progress=steps.append,
            transfer=False,
        )

    def first(phase: str, digest: str, done: bool) -> int:
        return next(
            i
            for i, s in enumerate(steps)
            if (s.phase, s.item) == (phase, digest) and (s.done == s.total) == done
        )

    bottom = imported.layers[0].digest
    assert first("unpack", bottom, done=True) < first("download", top, done=True)


def multi_platform_layout(layout: Path, folder: Path) -> Path:
    """A copy of the image's OCI layout whose ``multi`` is an index: an attestation-like
    ``unknown/unknown`` entry first, then linux/amd64, then linux/arm64 (the same manifest,
    whose config says amd64)."""
    copy = folder / "multi-layout"
    shutil.copytree(layout, copy)
    index = json.loads((copy / "index.json").read_text())
    (app,) = [
        m
        for m in index["manifests"]
        if m["annotations"]["org.opencontainers.image.ref.name"] == "app"
    ]
    entry = {key: app[key] for key in ("mediaType", "digest", "size")}
    platforms = [("unknown", "unknown"), ("linux", "amd64"), ("linux", "arm64")]
    inner = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {**entry, "platform": {"os": os_name, "architecture": arch}}
            for os_name, arch in platforms
        ],
    }
    data = json.dumps(inner).encode()
    digest = hashlib.sha256(data).hexdigest()
    (copy / "blobs" / "sha256" / digest).write_bytes(data)
    index["manifests"].append(
        {
            "mediaType": inner["mediaType"],
            "digest": f"sha256:{digest}",
            "size": len(data),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }
    )
    (copy / "index.json").write_text(json.dumps(index))
    return copy


@pytest.mark.async_only(reason="platform choice is the client's logic, the same on the twin")
async def test_an_index_skopeo_pushed_pulls_the_platforms_manifest_skipping_attestations(
    client: AsyncClient, archives: Archives, registry: Registry, ctr: Ctr, tmp_path: Path
) -> None:
    if host_platform() != Platform("linux", "amd64"):
        pytest.skip("the index's usable manifest is for linux/amd64")
    layout = multi_platform_layout(archives.layout, tmp_path)
    name = f"{registry.host}/multi/app:1"
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:multi", f"docker://{name}")
    service = images(client)
    hosts = registry.hosts_dir()
    pulled = await service.pull(name, hosts_dir=hosts)
    assert pulled.media_type == "application/vnd.oci.image.index.v1+json"
    assert pulled.platform == "linux/amd64"
    assert "complete" in ctr("images", "check", f"name=={name}")
    with pytest.raises(NotFound, match="linux/arm64"):  # its config says amd64
        await service.pull(name, hosts_dir=hosts, platform="linux/arm64")
    with pytest.raises(NotFound, match="linux/s390x"):
        await service.pull(name, hosts_dir=hosts, platform="linux/s390x")


@pytest.mark.async_only(reason="resuming is the client's logic, the same on the twin")
async def test_a_blob_cut_off_midway_is_resumed_from_the_ingests_offset_with_a_range(
    client: AsyncClient, archives: Archives, registry: Registry, ctr: Ctr
) -> None:
    service = images(client)
    (imported,) = await service.import_archive(archives.oci)
    name = f"{registry.host}/resumed/app:1"
    await service.push(OCI_NAME, name, hosts_dir=registry.hosts_dir())
    await service.remove(OCI_NAME)
    big = max(imported.layers, key=lambda layer: layer.size)
    cut = big.size * 6 // 10
    faults = Faults(match=f"/blobs/{big.digest}", drop_after=cut)
    with Proxy(registry.port, faults) as proxy:
        pulled = await service.pull(name, hosts_dir=registry.hosts_dir(port=proxy.port))
    assert pulled.complete
    ranges = [
        h.get("Range", "")
        for s, h in zip(faults.seen, faults.headers, strict=True)
        if big.digest in s
    ]
    assert len(ranges) == 2
    assert ranges[0] == ""
    assert ranges[1].startswith("bytes=")
    offset = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < offset <= cut  # only what the store did not have yet
    code, output, container_id = await run_image(client, pulled)
    assert (code, output) == (0, EXPECTED_OUTPUT)
    await delete_container(client, container_id)
    await service.remove(name)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN


@pytest.mark.async_only(reason="kills a client process of its own; the test's client is async")
async def test_a_pull_after_a_client_killed_midway_fetches_only_the_rest_of_the_layer(
    client: AsyncClient, archives: Archives, registry: Registry, ctr: Ctr, supervisor: Supervisor
) -> None:
    service = images(client)
    (imported,) = await service.import_archive(archives.oci)
    name = f"{registry.host}/killed/app:1"
    await service.push(OCI_NAME, name, hosts_dir=registry.hosts_dir())
    await service.remove(OCI_NAME)
    big = max(imported.layers, key=lambda layer: layer.size)
    cut = big.size * 4 // 10
    faults = Faults(match=f"/blobs/{big.digest}", stall_after=cut)
    ref = f"layer-{big.digest}"  # containerd's own ref for it, which the daemon's pull uses too

    async def ingested() -> int:
        """The bytes in the blob's ingest now (Content.Status; ctr rounds them)."""
        session = client._session
        try:
            reply = await session.call(
                session.methods.content.status, content_pb2.StatusRequest(ref=ref), "status"
            )
        except NotFound:
            return 0
        return reply.status.offset

    with Proxy(registry.port, faults) as proxy:
        hosts = registry.hosts_dir(port=proxy.port)
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.killed_pull_client",
            supervisor.address,
            NAMESPACE,
            name,
            str(hosts),
            cwd=REPO,
            stdout=subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(60):  # the blob stalls at 40 %: SIGKILL once 30 % is in
                while await ingested() < big.size * 3 // 10:
                    await asyncio.sleep(0.1)
        finally:
            child.send_signal(signal.SIGKILL)
            await child.wait()
        left = await ingested()
        pulled = await service.pull(name, hosts_dir=hosts)
    assert pulled.complete
    ranges = [
        h.get("Range", "")
        for s, h in zip(faults.seen, faults.headers, strict=True)
        if s.startswith("GET") and big.digest in s
    ]
    assert len(ranges) == 2
    assert ranges[0] == ""
    # The rest only, from what the killed client's ingest held, not the whole blob again.
    assert ranges[-1] == f"bytes={left}-"
    assert big.size * 3 // 10 <= left <= cut
    assert ctr.rows("content", "active") == []
    await service.remove(name)


@pytest.mark.async_only(reason="two pulls at once on one loop: the twin adds nothing")
async def test_two_clients_pulling_at_once_both_succeed_and_fetch_each_blob_once(
    client: AsyncClient, new_client: NewClient, archives: Archives, registry: Registry
) -> None:
    service = images(client)
    (imported,) = await service.import_archive(archives.oci)
    name = f"{registry.host}/twice/app:1"
    await service.push(OCI_NAME, name, hosts_dir=registry.hosts_dir())
    await service.remove(OCI_NAME)
    faults = Faults()
    with Proxy(registry.port, faults) as proxy:
        hosts = registry.hosts_dir(port=proxy.port)
        async with new_client(namespace=NAMESPACE) as other:
            first, second = await asyncio.gather(
                service.pull(name, hosts_dir=hosts), other.images.pull(name, hosts_dir=hosts)
            )
    assert first.digest == second.digest
    assert first.chain_id == second.chain_id
    for blob in (imported.config_descriptor, *imported.layers):
        assert blob is not None
        path = f"GET /v2/twice/app/blobs/{blob.digest}"
        gets = [seen for seen in faults.seen if seen.split("?")[0] == path]
        assert len(gets) == 1, (blob, faults.seen)
