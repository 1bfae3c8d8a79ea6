"""A small CNI runner: plugin executables run as the CNI spec (1.0.0) says, as libcni does.

ADD runs a conflist's plugins in order, each after the first given the
previous one's result as ``prevResult``; DEL runs them in reverse with the
final ADD result. CHECK is never run (portmap's CHECK fails on IPv4-only
networks, plugins#819). Plugins are found on ``$CNI_PATH`` (colon separated)
or in :data:`DEFAULT_CNI_PATH`; a missing one, or a missing ``iptables``,
is a :class:`~libcontainerd.errors.NetworkError` naming the Debian package.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..errors import NetworkError

__all__ = ["CNI_VERSION", "DEFAULT_CNI_PATH", "PluginRunner", "cni_path"]

CNI_VERSION: Final = "1.0.0"
DEFAULT_CNI_PATH: Final = ("/usr/lib/cni", "/opt/cni/bin")
PLUGINS_PACKAGE: Final = "containernetworking-plugins"
# A plugin that hangs (a stuck iptables lock) must not hang the client for ever.
_PLUGIN_TIMEOUT: Final = 60.0
# Plugins call iptables and ip, which live in sbin folders a user's PATH may lack.
_TOOL_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def cni_path() -> tuple[str, ...]:
    """Where plugins are looked for: ``$CNI_PATH``, else Debian's and the upstream folder."""
    configured = os.environ.get("CNI_PATH", "")
    folders = tuple(folder for folder in configured.split(":") if folder)
    return folders or DEFAULT_CNI_PATH


@dataclass(frozen=True, slots=True)
class Invocation:
    """Who a plugin chain runs for: the CNI_* variables other than the command."""

    container_id: str
    netns: str
    ifname: str


class PluginRunner:
    """Runs plugin chains; finds each plugin once per folder list."""

    def __init__(self, path: Sequence[str] | None = None) -> None:
        self.path = tuple(path) if path is not None else cni_path()
        self._found: dict[str, str] = {}

    def find(self, plugin: str) -> str:
        """The plugin's executable; NetworkError naming the package when it is missing."""
        found = self._found.get(plugin)
        if found is not None:
            return found
        for folder in self.path:
            candidate = os.path.join(folder, plugin)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                self._found[plugin] = candidate
                return candidate
        raise NetworkError(
            f"CNI plugin {plugin!r} is not in {':'.join(self.path)}: install the"
            f" {PLUGINS_PACKAGE} package (apt-get install {PLUGINS_PACKAGE}), or set"
            " CNI_PATH to the folder that holds it"
        )

    def check_chain(self, conflist: Mapping[str, Any]) -> None:
        """Every plugin of the list, and iptables when a plugin needs it, are there."""
        kinds = [str(plugin["type"]) for plugin in conflist["plugins"]]
        for kind in kinds:
            self.find(kind)
        needs_iptables = (
            {"portmap", "firewall"} & set(kinds)
            or any(plugin.get("ipMasq") for plugin in conflist["plugins"])
            or bool(conflist.get("libcontainerd"))  # the network's own rules (_rules)
        )
        if needs_iptables and shutil.which("iptables", path=_TOOL_PATH) is None:
            raise NetworkError(
                "iptables is not installed, and the network's plugins need it for"
                " masquerading and published ports: apt-get install iptables"
            )

    async def add(
        self,
        conflist: Mapping[str, Any],
        who: Invocation,
        runtime_config: Mapping[str, Any] | None = None,
        on_result: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """CNI ADD through the list; the final result. NetworkError if a plugin fails.

        ``on_result`` gets each plugin's result as it comes (what a DEL needs
        if the chain is cut).
        """
        result: dict[str, Any] | None = None
        for plugin in conflist["plugins"]:
            config = _plugin_config(conflist, plugin, result, runtime_config)
            reply = await self._run("ADD", config, who)
            if reply is None:
                raise NetworkError(f"CNI plugin {plugin['type']!r} printed no result on ADD")
            result = reply
            if on_result is not None:
                on_result(result)
        return result or {}

    async def delete(
        self,
        conflist: Mapping[str, Any],
        who: Invocation,
        result: Mapping[str, Any] | None,
        runtime_config: Mapping[str, Any] | None = None,
    ) -> None:
        """CNI DEL through the list in reverse; every plugin runs even if one before it failed.

        Raises the first failure's NetworkError once all have run.
        """
        first: NetworkError | None = None
        for plugin in reversed(conflist["plugins"]):
            config = _plugin_config(conflist, plugin, result, runtime_config)
            try:
                await self._run("DEL", config, who)
            except NetworkError as error:
                first = first or error
        if first is not None:
            raise first

    async def _run(
        self, command: str, config: Mapping[str, Any], who: Invocation
    ) -> dict[str, Any] | None:
        kind = str(config["type"])
        executable = self.find(kind)
        environment = {
            "PATH": _TOOL_PATH,
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": who.container_id,
            "CNI_NETNS": who.netns,
            "CNI_IFNAME": who.ifname,
            "CNI_ARGS": "IgnoreUnknown=1",
            "CNI_PATH": ":".join(self.path),
        }
        process = await asyncio.create_subprocess_exec(
            executable,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment,
        )
        try:
            async with asyncio.timeout(_PLUGIN_TIMEOUT):
                stdout, stderr = await process.communicate(json.dumps(config).encode())
        except BaseException as error:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            if isinstance(error, TimeoutError):
                raise NetworkError(
                    f"CNI plugin {kind!r} did not answer {command} within {_PLUGIN_TIMEOUT:.0f} s"
                ) from None
            raise
        if process.returncode != 0:
            raise _plugin_error(kind, command, stdout, stderr)
        if not stdout.strip():
            return None
        try:
            reply = json.loads(stdout)
        except ValueError:
            raise NetworkError(
                f"CNI plugin {kind!r} printed something other than JSON on {command}:"
                f" {stdout[:200]!r}"
            ) from None
        return reply if isinstance(reply, dict) else None


def _plugin_config(
    conflist: Mapping[str, Any],
    plugin: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    runtime_config: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """One plugin's stdin: its own config with the list's name and version, and what it asks for."""
    config = dict(plugin)
    config["name"] = conflist["name"]
    config["cniVersion"] = conflist.get("cniVersion", CNI_VERSION)
    if previous is not None:
        config["prevResult"] = previous
    capabilities = plugin.get("capabilities") or {}
    wanted = {
        name: value
        for name, value in (runtime_config or {}).items()
        if capabilities.get(name) and value
    }
    config.pop("capabilities", None)
    if wanted:
        config["runtimeConfig"] = wanted
    return config


def _plugin_error(kind: str, command: str, stdout: bytes, stderr: bytes) -> NetworkError:
    code: str | None = None
    message = stderr.decode(errors="replace").strip()
    try:
        reply = json.loads(stdout)
    except ValueError:
        reply = None
    if isinstance(reply, dict):
        code = str(reply.get("code", "")) or None
        message = (
            "; ".join(str(part) for part in (reply.get("msg"), reply.get("details")) if part)
            or message
        )
    return NetworkError(
        f"CNI plugin {kind!r} failed on {command}: {message or 'no message'}",
        code=code,
        details=message,
    )
