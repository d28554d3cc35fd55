"""The offline guarantee: the pipeline runs with every non-loopback connection made to fail, and tries none.

`offline` (the fixture) makes socket connects, sends, `create_connection` and name lookups of any
host that is not loopback fail, and records each attempt. Child processes get the same guard
through a `sitecustomize` module on their PYTHONPATH, recording into a file. The guard's own
tests prove that it catches urllib, raw sockets and DNS, so an empty record means something.
"""

from __future__ import annotations

import ast
import errno
import ipaddress
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import REPO
from tests.engine.llm_support import gemma_path  # noqa: F401  (fixture)

LOG_ENV = "STATCODER_TEST_NETWORK_LOG"
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_loopback(host: object) -> bool:
    if host is None or host == "":  # getaddrinfo(None, port): the local wildcard, not a remote host
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    name = str(host).split("%")[0].strip("[]").lower()
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_of(address: object) -> object:
    return address[0] if isinstance(address, tuple) and address else address


def install_guard(record: Callable[[str], None]) -> Callable[[], None]:
    """Make non-loopback networking fail and report it to `record`; returns a function that undoes it."""
    originals = {
        (socket.socket, "connect"): socket.socket.connect,
        (socket.socket, "connect_ex"): socket.socket.connect_ex,
        (socket.socket, "sendto"): socket.socket.sendto,
        (socket, "create_connection"): socket.create_connection,
        (socket, "getaddrinfo"): socket.getaddrinfo,
        (socket, "gethostbyname"): socket.gethostbyname,
    }

    def refuse(what: str) -> OSError:
        record(what)
        return OSError(errno.ENETUNREACH, f"network access blocked by the offline test: {what}")

    def remote(sock: socket.socket, address: object) -> bool:
        return sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(_host_of(address))

    def connect(self, address):
        if remote(self, address):
            raise refuse(f"connect {address!r}")
        return originals[(socket.socket, "connect")](self, address)

    def connect_ex(self, address):
        if remote(self, address):
            refuse(f"connect_ex {address!r}")
            return errno.ENETUNREACH
        return originals[(socket.socket, "connect_ex")](self, address)

    def sendto(self, data, *args):
        if remote(self, args[-1]):
            raise refuse(f"sendto {args[-1]!r}")
        return originals[(socket.socket, "sendto")](self, data, *args)

    def create_connection(address, *args, **kwargs):
        if not is_loopback(_host_of(address)):
            raise refuse(f"create_connection {address!r}")
        return originals[(socket, "create_connection")](address, *args, **kwargs)

    def getaddrinfo(host, *args, **kwargs):
        if not is_loopback(host):
            record(f"getaddrinfo {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"name lookup blocked by the offline test: {host}")
        return originals[(socket, "getaddrinfo")](host, *args, **kwargs)

    def gethostbyname(host):
        if not is_loopback(host):
            record(f"gethostbyname {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"name lookup blocked by the offline test: {host}")
        return originals[(socket, "gethostbyname")](host)

    replacements = {(socket.socket, "connect"): connect, (socket.socket, "connect_ex"): connect_ex,
                    (socket.socket, "sendto"): sendto, (socket, "create_connection"): create_connection,
                    (socket, "getaddrinfo"): getaddrinfo, (socket, "gethostbyname"): gethostbyname}
    for (owner, name), replacement in replacements.items():
        setattr(owner, name, replacement)

    def undo() -> None:
        for (owner, name), original in originals.items():
            setattr(owner, name, original)

    return undo


def install_from_environment() -> None:
    """Called by the child processes' sitecustomize: guard, recording into the file named by LOG_ENV."""
    log = Path(os.environ[LOG_ENV])
    lock = threading.Lock()

    def record(what: str) -> None:
        with lock, open(log, "a", encoding="utf-8") as handle:
            handle.write(f"pid {os.getpid()}: {what}\n")

    install_guard(record)


@dataclass
class Offline:
    """What the `offline` fixture gives a test: attempts made here and the environment for children."""

    attempts: list[str]
    child_log: Path
    child_env: dict[str, str] = field(default_factory=dict)

    def child_attempts(self) -> list[str]:
        return self.child_log.read_text(encoding="utf-8").splitlines() if self.child_log.exists() else []

    def all_attempts(self) -> list[str]:
        return self.attempts + self.child_attempts()


@pytest.fixture
def offline(tmp_path, monkeypatch) -> Offline:
    attempts: list[str] = []
    guard_dir = tmp_path / "network-guard"
    guard_dir.mkdir()
    (guard_dir / "sitecustomize.py").write_text(
        f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"
        "from tests.engine.test_offline import install_from_environment\ninstall_from_environment()\n",
        encoding="utf-8")
    log = tmp_path / "child-network-attempts.log"
    env = dict(os.environ)
    env[LOG_ENV] = str(log)
    env["PYTHONPATH"] = os.pathsep.join([str(guard_dir), str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    undo = install_guard(attempts.append)
    # Child processes that the engine itself starts (the fastText trainer) inherit the guard too.
    monkeypatch.setenv(LOG_ENV, env[LOG_ENV])
    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])
    try:
        yield Offline(attempts=attempts, child_log=log, child_env=env)
    finally:
        undo()


def run_child(offline: Offline, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in offline.child_env.items() if "proxy" not in k.lower()}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


# The guard catches what it must, and lets loopback through ----------------------------------------

def test_guard_blocks_and_records_remote_connections(offline, monkeypatch):
    import urllib.request

    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)  # urllib would connect to the proxy, not the host

    with pytest.raises(OSError):
        urllib.request.urlopen("http://example.com/", timeout=5)
    with pytest.raises(OSError):
        socket.create_connection(("192.0.2.1", 443), timeout=5)
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with raw, pytest.raises(OSError):
        raw.connect(("198.51.100.7", 80))
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("huggingface.co", 443)
    assert any("example.com" in a for a in offline.attempts)
    assert any("192.0.2.1" in a for a in offline.attempts)
    assert any("198.51.100.7" in a for a in offline.attempts)
    assert any("huggingface.co" in a for a in offline.attempts)


def test_guard_allows_loopback(offline):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        for host in ("127.0.0.1", "localhost"):
            socket.create_connection((host, port), timeout=5).close()
    assert offline.attempts == []


def test_guard_reaches_child_processes(offline):
    result = run_child(offline, "-c", "import urllib.request\n"
                       "try:\n    urllib.request.urlopen('http://example.org/', timeout=5)\n"
                       "except OSError as exc:\n    print('blocked', exc)\n")
    assert result.returncode == 0, result.stderr
    assert "blocked" in result.stdout
    assert any("example.org" in a for a in offline.child_attempts())


# The pipeline makes no attempt ---------------------------------------------------------------------

def test_pipeline_tries_no_connection(offline, tmp_path, gemma_path):
    """Every stage, in this process (its trainer child included) and through the CLI in child processes."""
    from engine.assist.coding import batch_code_csv, suggest
    from engine.curate import CurationOptions, curate
    from engine.evaluate.metrics import evaluate_model
    from engine.coders.fasttext.bindings import FastTextParams
    from engine.generate import GenerationParams, create_run, run_generation
    from engine.llm.backends import BackendSettings, HardwareSettings
    from engine.pipeline import PipelineOptions, prepare_project
    from engine.coders.data import DataMix
    from engine.coders.fasttext.training import TrainOptions, train_fasttext
    from engine.classification import leaf_codes_under

    project = prepare_project(PipelineOptions(project=tmp_path / "offline.statcoder", divisions=["10"]),
                              log=lambda line: None)
    summary = project.summary()
    assert summary["codes"] == 996 and summary["real_train"] > 7000
    # One llama.cpp thread: on a busy 2-core machine two spin-wait on each other.
    backend = BackendSettings(hardware=HardwareSettings(threads=1, n_ctx=1024))
    run_id = create_run(project, codes=["10.71"], quota=2, strategies=["keywords"], model=str(gemma_path),
                        backend=backend, params=GenerationParams(per_request=4, max_words=6))
    generated = run_generation(project, run_id)
    assert generated.status == "done" and generated.written >= 1 and generated.completion_tokens > 0
    curated = curate(project, run_ids=[run_id], options=CurationOptions(label_check=None))
    assert curated.samples == generated.samples
    params = FastTextParams(epoch=20, dim=20, bucket=20_000, thread=1)
    mix = DataMix(notes=1, real=1, synthetic=1, codes=leaf_codes_under(project, ["10"]))
    trained = train_fasttext(project, mix, TrainOptions(params=params))
    assert trained.path.exists() and trained.composition["counts"]["synthetic"] == curated.accepted
    evaluation, _ = evaluate_model(project, trained.model_id, codes=mix.codes)
    assert 0.0 <= evaluation.top1 <= evaluation.top5 <= 1.0 and evaluation.n > 300
    assert [s.code for s in suggest(project, "industrial bakery producing sliced bread", k=5)]
    texts = tmp_path / "to-code.csv"
    texts.write_text("text\nbaking bread\nslaughtering pigs\nbrewing beer\n", encoding="utf-8")
    batch = batch_code_csv(project, texts, tmp_path / "coded.csv", text_column="text")
    assert batch.rows == 3
    project.close()

    path = str(tmp_path / "child.statcoder")
    commands = [["pipeline", path, "--divisions", "11", "--quota", "1", "--model", str(gemma_path), "--threads", "1"],
                ["train", "run", "-p", path, "--notes", "1", "--real", "1", "--subset", "10", "--epoch", "10",
                 "--dim", "20", "--bucket", "20000", "--threads", "1"],
                ["evaluate", "-p", path, "--subset", "10"],
                ["code", "suggest", "-p", path, "baking bread"],
                ["code", "batch", "-p", path, str(texts), str(tmp_path / "child-coded.csv"), "--text-column", "text"],
                ["embed", "text", "-p", path, "baking bread", "brewing beer"],
                ["models", "list"],
                ["info", "-p", path, "--json"]]
    for command in commands:
        child = run_child(offline, "-m", "engine", *command)
        assert child.returncode == 0, f"{command[:2]}: {child.stderr}"
    assert (tmp_path / "child-coded.csv").read_text(encoding="utf-8").count("\n") == 4
    assert offline.all_attempts() == []


@pytest.mark.slow
def test_llama_cpp_inference_tries_no_connection(offline, gemma_path):
    """Loading a local GGUF file and generating with it never looks anything up (no hub, no telemetry)."""
    from llama_cpp import Llama

    # One thread: on a busy 2-core machine two llama.cpp threads spin-wait on each other (60x slower here).
    llm = Llama(model_path=str(gemma_path), n_ctx=256, n_threads=1, n_threads_batch=1, n_gpu_layers=0, seed=1,
                verbose=False)
    out = llm.create_completion("Bakery: baking bread and", max_tokens=8, temperature=0.0)
    assert out["usage"]["completion_tokens"] > 0 and out["choices"][0]["text"]
    assert offline.attempts == []


# Nothing in the code can download ------------------------------------------------------------------

NETWORK_MODULES = {"socket", "ssl", "urllib.request", "urllib3", "http.client", "requests", "httpx", "aiohttp",
                   "huggingface_hub", "openai", "websocket", "ftplib", "smtplib", "xmlrpc.client"}
NETWORK_CALLS = {"from_pretrained", "hf_hub_download", "snapshot_download", "urlopen", "urlretrieve"}
# The OpenAI-compatible server backend talks to the URL a user configures (an office GPU server);
# it is the one place that may open a connection, and its test uses 127.0.0.1 only.
SERVER_BACKEND_MARKERS = ("server", "openai")


def _network_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name in NETWORK_MODULES or name.split(".")[0] in NETWORK_MODULES - {"urllib"}:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} imports {name}")
        if isinstance(node, ast.Attribute) and node.attr in NETWORK_CALLS:
            found.append(f"{path.relative_to(REPO)}:{node.lineno} calls {node.attr}")
        if isinstance(node, ast.Name) and node.id in NETWORK_CALLS:
            found.append(f"{path.relative_to(REPO)}:{node.lineno} calls {node.id}")
    return found


def test_no_module_outside_the_server_backend_uses_the_network():
    offenders: list[str] = []
    for package in ("engine", "desktop"):
        for path in sorted((REPO / package).rglob("*.py")):
            uses = _network_uses(path)
            if uses and not (package == "engine" and any(m in path.name for m in SERVER_BACKEND_MARKERS)):
                offenders.extend(uses)
    assert offenders == [], "network use outside the server backend:\n" + "\n".join(offenders)
