"""ONNX Runtime from Python where `pip install onnxruntime` is not possible (no PyPI): the npm package
onnxruntime-node, installed here by `make ort`, run by runner.js in a Node.js process that talks JSON lines.

    import ort_node as ort                              # the subset of onnxruntime's API the notebooks use
    session = ort.InferenceSession("model.onnx")
    (y,) = session.run(None, {"x": np.ones((2, 3), np.float32)})

    runner = OrtRunner()                                # what the tests use: one process, many models
    (y,) = runner.run("/tmp/model.onnx", {"x": np.ones((2, 3), np.float32)})
    runner.close()

CPU execution provider only. Tests get one shared runner from the session fixture `ort` (tests/python/conftest.py).
This module needs only numpy and the standard library (no xgrad, no onnx).
"""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading

import numpy as np

ORT_DIR = os.path.dirname(os.path.abspath(__file__))
RUNNER_JS = os.path.join(ORT_DIR, "runner.js")
NOT_INSTALLED = "ONNX Runtime (npm onnxruntime-node in tools/onnxruntime) is not installed: run `make ort`"

# numpy dtype name <-> runner.js dtype name (the same words).
_DTYPES = {
    "float32", "float64", "float16", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64", "bool",
}


class OrtError(RuntimeError):
    """ONNX Runtime refused a model or a run; the message is ORT's own."""


def _node():
    return shutil.which("node") or shutil.which("nodejs")


def ort_available():
    """True when Node.js is on PATH and onnxruntime-node is installed in tools/onnxruntime."""
    return (_node() is not None
            and os.path.isfile(RUNNER_JS)
            and os.path.isfile(os.path.join(ORT_DIR, "node_modules", "onnxruntime-node", "package.json")))


def _encode(name, value):
    a = np.asarray(value)
    if a.dtype.name not in _DTYPES:
        raise TypeError(f"feed '{name}': dtype {a.dtype} is not supported by the ORT runner")
    # tobytes() writes C order whatever the strides; astype makes it little-endian. (Not ascontiguousarray:
    # that turns a 0-d array into shape (1,).)
    raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes(order="C")
    return {"dtype": a.dtype.name, "shape": list(a.shape), "data": base64.b64encode(raw).decode("ascii")}


def _decode(out):
    dtype = np.dtype(out["dtype"]).newbyteorder("<")
    raw = base64.b64decode(out["data"])
    a = np.frombuffer(raw, dtype=dtype).reshape(out["shape"])
    return a.astype(a.dtype.newbyteorder("="), copy=True)  # writable, native order


class OrtRunner:
    """One Node.js process running ONNX Runtime, started at the first run(); thread-safe, one run at a time."""

    def __init__(self):
        self._proc = None
        self._stderr = None
        self._lock = threading.Lock()
        self._next_id = 0

    def _start(self):
        if not ort_available():
            raise OrtError(NOT_INSTALLED)
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [_node(), RUNNER_JS], cwd=ORT_DIR,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            env=dict(os.environ, ONNXRUNTIME_NODE_INSTALL="skip"),
        )

    def _died(self):
        """The process is gone or spoke out of turn: collect what it said and forget it."""
        proc, err = self._proc, self._stderr
        self._proc = self._stderr = None
        try:
            proc.kill()
            proc.wait(timeout=10)
        except Exception:
            pass
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except Exception:
                pass
        text = ""
        if err is not None:
            err.seek(0)
            text = err.read().decode("utf-8", "replace").strip()
            err.close()
        return f"ONNX Runtime runner exited (code {proc.returncode})" + (f": {text}" if text else "")

    def run(self, model_path, feeds, output_names=None):
        """Runs the model at model_path with feeds {input name: array}; returns its outputs as numpy arrays,
        in the model's output order (or output_names' order). Raises OrtError with ORT's message."""
        request = {
            "model": os.path.abspath(os.fspath(model_path)),
            "feeds": {str(k): _encode(k, v) for k, v in feeds.items()},
        }
        if output_names is not None:
            request["outputs"] = list(output_names)
        with self._lock:
            if self._proc is None:
                self._start()
            self._next_id += 1
            request["id"] = self._next_id
            try:
                self._proc.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
                self._proc.stdin.flush()
                line = self._proc.stdout.readline()
            except (BrokenPipeError, OSError):
                line = b""
            try:
                reply = json.loads(line) if line else None
            except ValueError:
                reply = None
            if not isinstance(reply, dict) or reply.get("fatal") or reply.get("id") != request["id"]:
                detail = reply.get("error") if isinstance(reply, dict) else None
                msg = self._died()
                raise OrtError(f"{msg}: {detail}" if detail else msg)
        if not reply.get("ok"):
            raise OrtError(reply.get("error", "unknown ONNX Runtime error"))
        return [_decode(o) for o in reply["outputs"]]

    def close(self):
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is None:
                return
            try:
                proc.stdin.close()
                proc.wait(timeout=10)
            except Exception:
                proc.kill()
                proc.wait()
            finally:
                proc.stdout.close()
                if self._stderr is not None:
                    self._stderr.close()
                    self._stderr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


_shared = None


def _shared_runner():
    global _shared
    if _shared is None:
        _shared = OrtRunner()
    return _shared


class InferenceSession:
    """onnxruntime.InferenceSession's run() over the shared Node.js runner: session.run(None, {name: array})."""

    def __init__(self, path):
        self.path = os.path.abspath(os.fspath(path))
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"no ONNX model at {self.path}")

    def run(self, output_names, input_feed):
        """Outputs as numpy arrays, in the model's order (output_names=None) or in output_names' order."""
        return _shared_runner().run(self.path, input_feed, output_names)
