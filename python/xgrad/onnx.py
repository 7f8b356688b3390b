"""ONNX export and import.

Export the subgraph that computes some nodes; serve the file with ONNX Runtime::

    xg.onnx.export(probs, "model.onnx")            # inputs: every input probs depends on
    model = xg.onnx.load("model.onnx")             # a Graph again: run it, fine-tune it
    model(x=batch)                                 # numpy in, numpy out

Params become initializers (and come back as params), inputs and outputs keep
their names, a symbolic (None) batch dimension becomes the dim_param "batch".
Files are checked by the ONNX checker and shape inference before they are
written. Opset 17.
"""
import os

from . import _xgrad

__all__ = ["export", "export_bytes", "load", "load_bytes", "Model", "importable_ops"]


def _as_list(nodes, what):
    if nodes is None:
        return []
    if isinstance(nodes, _xgrad.Node):
        return [nodes]
    nodes = list(nodes)
    for n in nodes:
        if not isinstance(n, _xgrad.Node):
            raise TypeError(f"onnx export: {what} must be xgrad nodes, got {type(n).__name__}")
    return nodes


def _fixed(outs, fixed):
    """Fixed inputs by name; the layers' train/eval switch is fixed to eval unless given."""
    result = {}
    for key, value in (fixed or {}).items():
        result[key if isinstance(key, str) else key.name] = value
    try:
        flag = outs[0].graph.node("training")
    except ValueError:
        flag = None
    if flag is not None and flag.kind == "input" and "training" not in result:
        result["training"] = False
    return result


def export(outputs, path, inputs=None, output_names=None, opset=17, fixed=None):
    """Writes the ONNX model that computes `outputs` (a node or a list) to `path`.

    inputs: the model's inputs in order (default: every input the outputs depend
    on, in creation order). output_names: names for the outputs (default: the
    nodes' names). fixed: {input (node or name): value} exported as constants;
    the layers' "training" switch is fixed to False unless given, so dropout and
    batch norm export in eval mode. Raises ValueError naming the node when an op
    cannot be lowered.
    """
    outs = _as_list(outputs, "outputs")
    if not outs:
        raise ValueError("onnx export: no outputs given")
    _xgrad._onnx_export(outs, os.fspath(path), _as_list(inputs, "inputs"), list(output_names or []), int(opset),
                        _fixed(outs, fixed))


def export_bytes(outputs, inputs=None, output_names=None, opset=17, fixed=None):
    """The serialized model as bytes (see export)."""
    outs = _as_list(outputs, "outputs")
    if not outs:
        raise ValueError("onnx export: no outputs given")
    return _xgrad._onnx_export_bytes(outs, _as_list(inputs, "inputs"), list(output_names or []), int(opset),
                                     _fixed(outs, fixed))


class Model:
    """An imported ONNX model: its Graph, input and output nodes, and params.

    Calling it runs the graph: positional arrays follow `inputs`, keywords name
    them. A single-output model returns one array, otherwise a list.
    """

    def __init__(self, graph, inputs, outputs, output_names, opset):
        self.graph = graph
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.output_names = list(output_names)
        self.opset = opset
        self._program = None

    @property
    def params(self):
        """The initializers, now trainable params, by name."""
        return {p.name: p for p in self.graph.params}

    def __call__(self, *args, **feeds):
        if len(args) > len(self.inputs):
            raise TypeError(f"the model takes {len(self.inputs)} inputs, got {len(args)} positional arrays")
        for node, value in zip(self.inputs, args):
            if node.name in feeds:
                raise TypeError(f"input '{node.name}' given twice")
            feeds[node.name] = value
        if self._program is None:
            self._program = self.graph.compile(self.outputs)
        out = self._program(**feeds)
        return out[0] if len(self.outputs) == 1 else out

    def export(self, path, opset=17):
        """Writes the model (with its current params) back to ONNX, same names."""
        export(self.outputs, path, inputs=self.inputs, output_names=self.output_names, opset=opset)

    def __repr__(self):
        ins = ", ".join(f"{n.name}: {n.dtype.name}{tuple(n.shape)}" for n in self.inputs)
        return f"<xgrad.onnx.Model opset {self.opset} ({ins}) -> {self.output_names}>"


def load(path, constants=None):
    """Imports an ONNX file as a Model (initializers become params).

    constants: {input name: array} for graph inputs that must be known when the
    graph is built (a Reshape's shape, a ReduceSum's axes fed as inputs).
    """
    return Model(*_xgrad._onnx_load(os.fspath(path), dict(constants or {})))


def load_bytes(data, constants=None):
    """Imports a serialized ONNX model (see load)."""
    return Model(*_xgrad._onnx_load_bytes(bytes(data), dict(constants or {})))


def importable_ops():
    """The ONNX op types the importer maps (custom domains prefixed, e.g. com.microsoft.Inverse)."""
    return list(_xgrad._onnx_importable_ops())
