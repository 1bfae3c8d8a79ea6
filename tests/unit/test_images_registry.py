"""The registry client's pure logic: references, challenges, hosts.toml, Docker's config.json."""

from __future__ import annotations

import base64
import json
import ssl
from pathlib import Path

import pytest

from libcontainerd.errors import AuthenticationFailed, InvalidArgument
from libcontainerd.images import Credentials
from libcontainerd.images._auth import (
    Authorizer,
    as_credentials,
    credentials_from_docker_config,
    parse_challenges,
)
from libcontainerd.images._hosts import endpoints_for
from libcontainerd.images._registry import Reference


@pytest.mark.parametrize(
    ("written", "registry", "repository", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", ""),
        ("library/busybox:1.36", "docker.io", "library/busybox", "1.36", ""),
        ("me/app", "docker.io", "me/app", "latest", ""),
        ("127.0.0.1:5000/a/b:tag", "127.0.0.1:5000", "a/b", "tag", ""),
        ("localhost/x", "localhost", "x", "latest", ""),
        ("h.io/a@sha256:" + "a" * 64, "h.io", "a", "", "sha256:" + "a" * 64),
    ],
)
def test_references_split_as_docker_users_write_them(
    written: str, registry: str, repository: str, tag: str, digest: str
) -> None:
    reference = Reference.parse(written)
    assert (reference.registry, reference.repository, reference.tag, reference.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    assert reference.object == (digest or tag)


@pytest.mark.parametrize("bad", ["UPPER/case", "a b", "host:5000/x:bad tag!", "x@sha256:12"])
def test_a_reference_with_bad_characters_is_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        Reference.parse(bad)


def test_challenges_parse_quoted_and_bare_parameters() -> None:
    (bearer,) = parse_challenges(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push",error=insufficient_scope'
    )
    assert bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull,push",
        "error": "insufficient_scope",
    }
    (basic,) = parse_challenges('Basic realm="say \\"hi\\""')
    assert basic.params == {"realm": 'say "hi"'}


async def test_concurrent_401s_share_one_token_and_a_refused_fresh_one_is_not_fetched_again() -> (
    None
):
    fetched: list[dict[str, str]] = []

    async def fetch(realm: str, params: dict[str, str], basic: str | None) -> tuple[str, float]:
        fetched.append(params)
        assert basic == Credentials("u", "p").basic()
        return f"t{len(fetched)}", 60.0

    authorizer = Authorizer("r.example", Credentials("u", "p"), fetch)
    challenge = 'Bearer realm="http://127.0.0.1:1/token",service="svc"'
    scope = "repository:a:pull"
    first = await authorizer.answer("https://r", scope, challenge, "GET /a", None)
    second = await authorizer.answer("https://r", scope, challenge, "GET /b", None)
    assert first == second == "Bearer t1"
    assert fetched == [{"service": "svc", "scope": scope}]
    assert authorizer.header("https://r", scope) == "Bearer t1"
    # The cached token refused: a fresh one (once; the caller raises on the next 401).
    assert await authorizer.answer("https://r", scope, challenge, "GET /c", "Bearer t1") == (
        "Bearer t2"
    )


async def test_basic_without_credentials_is_authentication_failed() -> None:
    async def fetch(realm: str, params: dict[str, str], basic: str | None) -> tuple[str, float]:
        raise AssertionError("no token for Basic")

    authorizer = Authorizer("r.example", None, fetch)
    with pytest.raises(AuthenticationFailed, match=r"r\.example.*user name and password"):
        await authorizer.answer("https://r", "", 'Basic realm="x"', "GET /v2/", None)


def test_auth_takes_a_pair_or_credentials_and_never_prints_a_password() -> None:
    assert as_credentials(("u", "secret")) == Credentials("u", "secret")
    assert "secret" not in repr(as_credentials(("u", "secret")))
    with pytest.raises(InvalidArgument):
        as_credentials(("u",))  # type: ignore[arg-type]


def test_hosts_toml_gives_plain_http_mirrors_and_tls(tmp_path: Path) -> None:
    assert [e.base for e in endpoints_for("docker.io", tmp_path)] == [
        "https://registry-1.docker.io/v2"
    ]
    folder = tmp_path / "r.example:5000"
    folder.mkdir()
    (folder / "hosts.toml").write_text(
        'server = "http://r.example:5000"\n'
        '[host."https://mirror.example"]\n'
        '  capabilities = ["pull", "resolve"]\n'
        "  skip_verify = true\n"
    )
    mirror, server = endpoints_for("r.example:5000", tmp_path)
    assert (mirror.base, mirror.mirror_of) == ("https://mirror.example/v2", "r.example:5000")
    assert mirror.capabilities == {"pull", "resolve"}
    assert isinstance(mirror.verify, ssl.SSLContext)
    assert mirror.verify.verify_mode == ssl.CERT_NONE
    assert (server.base, server.mirror_of, server.verify) == ("http://r.example:5000/v2", "", True)
    (folder / "hosts.toml").write_text("server = [")
    with pytest.raises(InvalidArgument, match=r"hosts\.toml"):
        endpoints_for("r.example:5000", tmp_path)


def test_docker_config_json_gives_credentials_by_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert credentials_from_docker_config("r.example") is None
    auth = base64.b64encode(b"alice:pw:with:colons").decode()
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "r.example": {"auth": auth},
                    "https://index.docker.io/v1/": {"identitytoken": "refresh"},
                }
            }
        )
    )
    assert credentials_from_docker_config("r.example") == Credentials("alice", "pw:with:colons")
    assert credentials_from_docker_config("docker.io") == Credentials(identity_token="refresh")
    assert credentials_from_docker_config("other.example") is None
