"""Nothing a request carries can run code, name a file or reach the network on the daemon:
no unpickling anywhere in the package, no protocol field or task code that turns request data
into a path or URL (models are chosen by id, from the admin's registry), and the server loop
itself never imports model code, so pings and status never wait behind a job."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from sfumato.bridge import protocol

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = [ROOT / "core", ROOT / "bridge", ROOT / "plugins"]
PICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib",
            "jsonpickle"}
PICKLE_EXCEPTIONS = {"UnpicklingError", "PickleError", "PicklingError"}
NETWORK = {"urllib", "http", "requests", "httpx", "aiohttp", "socket", "ftplib", "urllib3"}
FILE_FUNCTIONS = {"open", "Path", "PurePath", "urlopen", "Popen"}
FILE_METHODS = {"read_text", "read_bytes", "write_text", "write_bytes", "unlink", "mkdir",
                "rmdir", "rename", "glob", "rglob", "iterdir", "load_file", "save_file",
                "from_pretrained", "from_single_file", "load_ip_adapter", "load_lora_weights",
                "listdir", "scandir", "rmtree", "copyfile", "urlopen"}
FILE_MODULES = {"os", "shutil", "subprocess", "io", "torch", "safetensors", "np", "numpy",
                "Image", "PIL", "tempfile", "glob"}
REQUEST_NAMES = {"params", "message", "request", "content", "header", "job", "desc"}


def unsafe_calls(source: str, name: str = "<source>") -> list[str]:
    """Every way `source` could unpickle (or pickle over a pipe), as 'name:line what'."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in PICKLERS and node.attr not in PICKLE_EXCEPTIONS:
                found.append(f"{where} {node.value.id}.{node.attr}")
        if isinstance(node, ast.Attribute) and node.attr in ("recv_pyobj", "send_pyobj",
                                                             "recv_serialized", "Unpickler"):
            found.append(f"{where} .{node.attr}")
        if not isinstance(node, ast.Call):
            continue
        keywords = {k.arg: k.value for k in node.keywords}
        for flag, bad in (("weights_only", False), ("allow_pickle", True)):
            value = keywords.get(flag)
            if isinstance(value, ast.Constant) and value.value is bad:
                found.append(f"{where} {flag}={bad}")
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "load" and \
                isinstance(func.value, ast.Name) and func.value.id == "torch":
            weights_only = keywords.get("weights_only")
            if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                found.append(f"{where} torch.load without weights_only=True")
        # multiprocessing connections pickle whatever .send/.recv carry; bytes only
        if isinstance(func, ast.Attribute) and func.attr in ("send", "recv") and \
                isinstance(func.value, ast.Name) and func.value.id.endswith("conn"):
            found.append(f"{where} {func.value.id}.{func.attr} (pickles)")
    return found


def _package_files() -> list[Path]:
    return sorted(p for d in PACKAGE_DIRS for p in d.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_scanner_catches_every_unpickling_pattern() -> None:
    bad = """
import pickle, dill, torch
pickle.loads(data)
pickle.Unpickler(f).load()
dill.load(f)
torch.load(path)
torch.load(path, weights_only=False)
np.load(path, allow_pickle=True)
sock.recv_pyobj()
conn.recv()
"""
    assert len(unsafe_calls(bad)) >= 9
    good = """
import pickle
torch.load(path, map_location="cpu", weights_only=True)
try:
    pass
except pickle.UnpicklingError:
    pass
conn.recv_bytes()
"""
    assert unsafe_calls(good) == []


def test_nothing_in_the_package_unpickles() -> None:
    files = _package_files()
    assert len(files) > 30  # the scan really covers the package
    found = [hit for path in files
             for hit in unsafe_calls(path.read_text(), str(path.relative_to(ROOT)))]
    assert found == []


def test_no_request_field_names_a_path_or_url() -> None:
    client_messages = [protocol.Hello, protocol.Submit, protocol.Cancel, protocol.Ping,
                       protocol.Status, protocol.Fetch]
    fields = {f.name for cls in client_messages for f in dataclasses.fields(cls)}
    assert fields == {"id", "client", "protocol_minor", "task", "model", "params", "job_id"}, (
        "a new request field: make sure it can never become a path or URL on the daemon")
    for word in ("path", "file", "dir", "url", "uri", "output", "dest"):
        assert not any(word in name for name in fields)


def _request_modules() -> list[Path]:
    """The modules a request's data flows through: the tasks and everything they import
    from core, except core/models (the admin's registry, reached by model id only) and
    core/config.py (the admin's settings)."""
    core = ROOT / "core"
    todo = sorted((core / "tasks").glob("*.py")) + [core / "daemon" / "server.py",
                                                     core / "worker" / "worker.py",
                                                     core / "daemon" / "admission.py"]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen or "models" in path.relative_to(core).parts[:1] or \
                path.name in ("config.py", "logs.py", "keys.py", "client_auth.py"):
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = path.parent
                for _ in range(node.level - 1):
                    base = base.parent
                parts = (node.module or "").split(".") if node.module else []
            elif node.module and node.module.startswith("sfumato.core."):
                base, parts = core, node.module.split(".")[2:]
            else:
                continue
            target = base.joinpath(*parts)
            candidates = [target.with_suffix(".py"), target / "__init__.py"]
            candidates += [target / f"{a.name}.py" for a in node.names]
            todo.extend(c for c in candidates if c.exists())
    return sorted(seen)


def request_data_to_files(source: str, name: str = "<source>") -> list[str]:
    """Network imports, and file or process calls fed from request data (a name such as
    `params`, `message` or `job` in their arguments), as 'name:line what'."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            named = [a.name for a in node.names] if isinstance(node, ast.Import) \
                else [node.module or ""]
            found += [f"{name}:{node.lineno} imports {m}" for m in named
                      if m.split(".")[0] in NETWORK]
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in FILE_FUNCTIONS:
            called = func.id
        elif isinstance(func, ast.Attribute) and (
            func.attr in FILE_METHODS
            or (isinstance(func.value, ast.Name) and func.value.id in FILE_MODULES)
        ):
            called = func.attr
        else:
            continue
        arguments = [*node.args, *(k.value for k in node.keywords)]
        fed = {n.id for a in arguments for n in ast.walk(a) if isinstance(n, ast.Name)}
        fed |= {n.attr for a in arguments for n in ast.walk(a) if isinstance(n, ast.Attribute)}
        if fed & REQUEST_NAMES:
            found.append(f"{name}:{node.lineno} {called}() from {sorted(fed & REQUEST_NAMES)}")
    return found


def test_the_request_scanner_catches_a_path_from_params() -> None:
    bad = """
import urllib.request
open(ctx.params["output"], "wb")
Path(params.get("dir")) / "x"
pipe.load_lora_weights(message.model)
"""
    assert len(request_data_to_files(bad)) == 4
    assert request_data_to_files('open("/proc/meminfo")\nPath(entry.path)') == []


def test_request_data_never_reaches_a_file_or_the_network() -> None:
    modules = _request_modules()
    names = {p.name for p in modules}
    assert {"upscale.py", "inpaint.py", "refine.py", "masks.py", "compose.py", "server.py",
            "admission.py", "params.py", "conditioning.py"} <= names
    found = [hit for path in modules
             for hit in request_data_to_files(path.read_text(), str(path.relative_to(ROOT)))]
    assert found == [], "request data must not become a path or URL:\n" + "\n".join(found)


def test_the_server_loop_never_loads_model_code() -> None:
    """Ping and status are answered between worker events, never behind a job: the server
    process does not even import the libraries that run models (bench/daemon_latency.py
    measures the answer time)."""
    script = (
        "import sys, tempfile, pathlib\n"
        "from sfumato.core.config import Settings\n"
        "from sfumato.core.daemon.server import Daemon\n"
        "Daemon(Settings(home=pathlib.Path(tempfile.mkdtemp()), endpoint='tcp://127.0.0.1:0'))\n"
        "heavy = {'torch', 'diffusers', 'spandrel', 'transformers', 'accelerate'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "[]"
