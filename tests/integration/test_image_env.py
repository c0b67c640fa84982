"""The container image's Python environment, built here without Docker, then smoke-tested
the way the container runs it.

No Docker engine runs on the test machines, so this follows ``deploy/docker/Dockerfile``
step by step on the host, under a scratch root directory that stands for the image's
file system:

1. the build context is what ``Dockerfile.dockerignore`` lets through, and each COPY of
   the build stage copies from it (so a file the wheel needs but the Dockerfile forgets
   to copy fails here);
2. the build stage's RUN runs ``deploy/docker/build-venv.sh`` itself: ``pip wheel``
   builds strangler's wheel, a fresh virtualenv gets it and its dependencies from PyPI
   (nothing cached between runs: the Dockerfile sets ``PIP_NO_CACHE_DIR=1``);
3. the runtime stage's COPY lines, ENV, WORKDIR, USER (as root: the process runs as the
   image's numeric uid/gid, so a root-only file would fail), ENTRYPOINT + CMD with the
   image's paths mapped into the scratch root, and its HEALTHCHECK command;
4. the config is the compose stack's (``deploy/docker/strangler.yaml`` and the routes
   directory, read-only) with 127.0.0.1 and free ports; legacy and billing are the demo
   apps started by ``deploy/docker/demo_app.py`` with the built environment's Python;
5. /healthz, a routed and an unrouted request, the admin pages that need package data,
   then SIGTERM (the STOPSIGNAL) and exit 0.

The runtime stage's ``useradd``/``install -d`` RUN is not executed (it would add a user
to this machine): the state directory is created owned by the image's uid instead.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from tests.serve_support import free_port
from tests.test_deploy_files import (
    DOCKER,
    HOST,
    ROOT,
    Instruction,
    build_context_files,
    compose,
    dockerfile_instructions,
    mount_into,
    wait_answering,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

BUILD_DEADLINE: Final = 240  # seconds for pip wheel + venv + install from PyPI


class Image:
    """A scratch directory standing for the image's root file system."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env: dict[str, str] = {}
        self.workdir = "/"
        self.user: tuple[int, int] | None = None
        self.python = sys.executable  # the base image's python; see base_python()

    def path(self, container_path: str) -> Path:
        absolute = (
            container_path
            if container_path.startswith("/")
            else (f"{self.workdir.rstrip('/')}/{container_path}")
        )
        return self.root / os.path.normpath(absolute).lstrip("/")

    def map_args(self, args: Sequence[str]) -> list[str]:
        """Container paths in a command line, mapped into the scratch root."""
        return [str(self.path(a)) if a.startswith("/") else a for a in args]

    def copy(self, instruction: Instruction, context: Sequence[str]) -> None:
        """COPY from the build context (the files the dockerignore lets through)."""
        *sources, dest = instruction.args.split()
        into_dir = dest.endswith("/") or len(sources) > 1
        for source in sources:
            source = source.rstrip("/")
            under = [f for f in context if f.startswith(source + "/")]
            if under:  # a directory: its contents go into dest
                for f in under:
                    self._copy_file(ROOT / f, self.path(dest) / f[len(source) + 1 :])
            elif source in context:
                target = self.path(dest) / Path(source).name if into_dir else self.path(dest)
                self._copy_file(ROOT / source, target)
            else:
                pytest.fail(f"COPY {source}: not in the build context (see the dockerignore)")

    @staticmethod
    def _copy_file(source: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)

    def set_env(self, instruction: Instruction) -> None:
        for pair in shlex.split(instruction.args):
            key, _, value = pair.partition("=")
            value = value.replace("$PATH", self.env.get("PATH", os.environ["PATH"]))
            if key == "PATH":  # container paths in PATH point into the scratch root
                value = os.pathsep.join(
                    str(self.path(p)) if p.startswith("/opt/") else p for p in value.split(":")
                )
            self.env[key] = value


def build_stage(image: Image, instructions: Sequence[Instruction], context: Sequence[str]) -> None:
    for i in (i for i in instructions if i.stage == 0):
        if i.keyword == "ENV":
            image.set_env(i)
        elif i.keyword == "ARG":  # a build argument is in the environment of RUN
            name, _, default = i.args.partition("=")
            image.env[name] = default
        elif i.keyword == "WORKDIR":
            image.workdir = i.args
            image.path(i.args).mkdir(parents=True, exist_ok=True)
        elif i.keyword == "COPY":
            image.copy(i, context)
        elif i.keyword == "RUN":
            argv = shlex.split(i.args)
            script = image.path("/usr/local/bin/" + argv[0])
            assert script.is_file(), f"RUN {argv[0]}: not copied to /usr/local/bin"
            result = subprocess.run(
                ["sh", str(script), *image.map_args(argv[1:])],
                cwd=image.path(image.workdir),
                env={**os.environ, **image.env, "PYTHON": image.python},
                capture_output=True,
                text=True,
                timeout=BUILD_DEADLINE,
            )
            assert result.returncode == 0, f"RUN {i.args}:\n{result.stdout}\n{result.stderr}"


def runtime_stage(
    image: Image, instructions: Sequence[Instruction], context: Sequence[str]
) -> None:
    image.env = {}
    last = max(i.stage for i in instructions)
    for i in (i for i in instructions if i.stage == last):
        if i.keyword == "ENV":
            image.set_env(i)
        elif i.keyword == "WORKDIR":
            image.workdir = i.args
        elif i.keyword == "COPY" and i.args.startswith("--from=build "):
            source, dest = i.args.split()[1:]
            assert source == dest, "the venv must keep its path: scripts name their python"
            assert image.path(dest).is_dir()
        elif i.keyword == "COPY":
            image.copy(i, context)
        elif i.keyword == "USER":
            image.user = final_user(instructions)
    assert image.user is not None
    # The RUN that makes the user and the directories, done here without useradd.
    state = image.path("/var/lib/strangler")
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o750)
    if os.geteuid() == 0:
        os.chown(state, *image.user)


def base_python(user: tuple[int, int] | None) -> str:
    """A Python 3.11 the image's uid can run, standing for the base image's ``python``.

    This test's own interpreter may live where that uid cannot reach (e.g. under
    /root); Debian's /usr/bin/python3.11 is the fallback. When the tests do not run as
    root the processes keep the current user and this interpreter is used."""
    if os.geteuid() != 0 or user is None:
        return sys.executable
    base = getattr(sys, "_base_executable", sys.executable)
    for candidate in (
        os.path.realpath(base),
        shutil.which("python3.11") or "",
        "/usr/bin/python3.11",
    ):
        if not candidate:
            continue
        try:
            probe = subprocess.run(
                [
                    candidate,
                    "-c",
                    "import ensurepip, sys, venv; assert sys.version_info[:2] == (3, 11)",
                ],
                user=user[0],
                group=user[1],
                extra_groups=[],
                cwd="/",
                capture_output=True,
            )
        except OSError:  # cannot even be executed by that uid
            continue
        if probe.returncode == 0:
            return candidate
    pytest.fail(
        f"no Python 3.11 with venv that uid {user[0]} can run: apt-get install python3.11-venv"
    )


def exec_form(instructions: Sequence[Instruction], keyword: str) -> list[str]:
    (last,) = [i for i in instructions if i.keyword == keyword][-1:]
    return last.exec_form()


def final_user(instructions: Sequence[Instruction]) -> tuple[int, int]:
    (user,) = [i.args for i in instructions if i.keyword == "USER"]
    uid, gid = user.split(":")
    return int(uid), int(gid)


@contextlib.contextmanager
def scratch_root() -> Iterator[Path]:
    """A world-traversable temp directory: the image's uid must reach the files in it
    (pytest's tmp_path is private to the user running the tests)."""
    root = Path(tempfile.mkdtemp(prefix="strangler-image-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def read_only(tree: Path) -> None:
    """Like a ``:ro`` mount: nothing under ``tree`` is writable, by anyone but root."""
    for path in [tree, *tree.rglob("*")]:
        mode = 0o555 if path.is_dir() else 0o444
        path.chmod(mode)


@contextlib.contextmanager
def process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    user: tuple[int, int] | None = None,
) -> Iterator[subprocess.Popen[str]]:
    as_user: dict[str, Any] = {}
    if user is not None and os.geteuid() == 0:
        as_user = {"user": user[0], "group": user[1], "extra_groups": []}
    proc = subprocess.Popen(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **as_user,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def request(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def container_config(image: Image) -> tuple[Path, int, int, dict[str, int]]:
    """The compose stack's strangler config and routes, 'mounted' read-only at
    /etc/strangler, with loopback addresses and free ports."""
    mount_into(image.root, compose()["services"]["strangler"])
    main = image.path("/etc/strangler/strangler.yaml")
    config = yaml.safe_load(main.read_text())
    proxy_port, admin_port = free_port(), free_port()
    upstream_ports = {name: free_port() for name in config["upstreams"]}
    config["listen"] = f"{HOST}:{proxy_port}"
    config["admin"]["listen"] = f"{HOST}:{admin_port}"
    for name, port in upstream_ports.items():
        upstream = config["upstreams"][name]
        url = f"http://{HOST}:{port}"
        config["upstreams"][name] = {**upstream, "url": url} if isinstance(upstream, dict) else url
    config["state"]["dir"] = str(image.path(config["state"]["dir"]))
    main.write_text(yaml.safe_dump(config, sort_keys=False))
    read_only(image.path("/etc/strangler"))
    return main, proxy_port, admin_port, upstream_ports


def test_image_environment_serves_and_drains() -> None:
    instructions = dockerfile_instructions()
    context = build_context_files()
    started_at = time.monotonic()
    with scratch_root() as root:
        image = Image(root)
        image.python = base_python(final_user(instructions))
        build_stage(image, instructions, context)
        runtime_stage(image, instructions, context)
        built_in = time.monotonic() - started_at
        venv_python = image.path("/opt/strangler/venv/bin/python")
        env = {**image.env, "HOME": str(image.path(image.workdir))}
        workdir = image.path(image.workdir)

        # strangler comes from the wheel in the venv, never from this source tree
        where = subprocess.run(
            [str(venv_python), "-c", "import strangler; print(strangler.__file__)"],
            env=env,
            cwd=workdir,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert Path(where).is_relative_to(image.path("/opt/strangler/venv")), where
        # the image supports state.backend: redis (the redis extra is installed)
        subprocess.run([str(venv_python), "-c", "import redis"], env=env, cwd=workdir, check=True)

        main, proxy_port, admin_port, upstream_ports = container_config(image)
        argv = image.map_args(
            exec_form(instructions, "ENTRYPOINT") + exec_form(instructions, "CMD")
        )
        argv[0] = shutil.which(argv[0], path=env["PATH"]) or argv[0]
        assert argv[0] == str(image.path("/opt/strangler/venv/bin/strangler"))
        assert argv[argv.index("--config") + 1] == str(main)

        demo = [str(venv_python), str(DOCKER / "demo_app.py")]
        with (
            process(
                [*demo, "legacy", "--host", HOST, "--port", str(upstream_ports["legacy"])],
                env=env,
                cwd=workdir,
            ) as legacy,
            process(
                [*demo, "billing", "--host", HOST, "--port", str(upstream_ports["billing"])],
                env=env,
                cwd=workdir,
            ) as billing,
        ):
            wait_answering(legacy, upstream_ports["legacy"], "/health")
            wait_answering(billing, upstream_ports["billing"], "/health")
            health_env = {
                **env,
                "STRANGLER_HEALTHCHECK_URL": f"http://{HOST}:{admin_port}/healthz",
            }
            with process(argv, env=env, cwd=workdir, user=image.user) as proxy:
                health = wait_answering(proxy, admin_port, "/healthz")
                assert health["status"] == "ok"
                # the image's HEALTHCHECK command, as Docker runs it
                check = healthcheck_argv(instructions, image, health_env)
                result = subprocess.run(
                    check, env=health_env, cwd=workdir, capture_output=True, text=True
                )
                assert result.returncode == 0, result.stderr

                status, headers, _ = request(proxy_port, "/api/v1/invoices/5001")
                assert (status, headers["X-Served-By"]) == (200, "new-billing")
                status, headers, body = request(proxy_port, "/api/v1/customers/1")
                assert (status, headers["X-Served-By"]) == (200, "legacy")
                assert b'"id": 1' in body or b'"id":1' in body
                for page in ("/openapi.yaml", "/", "/readyz"):  # package data in the wheel
                    status, _, _ = request(admin_port, page)
                    assert status == 200, page

                proxy.send_signal(signal.SIGTERM)  # the image's STOPSIGNAL
                out, err = proxy.communicate(timeout=40)
                assert proxy.returncode == 0, f"{out}\n{err}"
                assert "strangler stopped" in err
            state_files = list(image.path("/var/lib/strangler").iterdir())
            assert state_files, "nothing was written to the state directory"
            if os.geteuid() == 0 and image.user is not None:
                assert {f.stat().st_uid for f in state_files} == {image.user[0]}
                assert not [f for f in state_files if f.stat().st_mode & stat.S_IWOTH]
            for app in (legacy, billing):
                app.send_signal(signal.SIGTERM)
                app.communicate(timeout=10)
                assert app.returncode == 0
    print(f"image environment built in {built_in:.1f}s")


def healthcheck_argv(
    instructions: Sequence[Instruction], image: Image, env: Mapping[str, str]
) -> list[str]:
    """The HEALTHCHECK's ``CMD [...]``, with ``python`` found on the image's PATH."""
    (health,) = [i for i in instructions if i.keyword == "HEALTHCHECK"]
    argv = [str(a) for a in json.loads(health.args.split("CMD", 1)[1])]
    argv = image.map_args(argv)
    found = shutil.which(argv[0], path=env["PATH"])
    assert found == str(image.path("/opt/strangler/venv/bin/python")), found
    return [found, *argv[1:]]
