"""Graph / Node / Tensor: building, toposort, validate, JSON round trip, shape inference."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnfab.errors import GraphError
from nnfab.ir import OPS, FixedType, Graph, Node, Tensor, infer_shapes
from nnfab.ir.types import Overflow, Rounding

RNG = np.random.default_rng(1234)


# ------------------------------------------------------------------- helpers
def input_node(name: str, shape: tuple[int, ...]) -> Node:
    return Node(name, "Input", [], attrs={"shape": shape}, source_class="InputLayer")


def dense(name: str, src: str, n_in: int, n_out: int) -> Node:
    return Node(
        name,
        "Dense",
        [src],
        weights={"kernel": RNG.normal(size=(n_in, n_out)), "bias": RNG.normal(size=n_out)},
        source_class="Dense",
    )


def mlp() -> Graph:
    """input(6) -> fc1(4) -> relu -> drop -> fc2(3) -> softmax."""
    g = Graph("mlp")
    g.add_node(input_node("input", (6,)), (6,), FixedType(16, 6))
    g.add_node(dense("fc1", "input", 6, 4), (0,), FixedType(18, 8))
    g.add_node(Node("relu", "Activation", ["fc1"], attrs={"function": "relu"}), (0,))
    g.add_node(Node("drop", "Dropout", ["relu"]), (0,))
    g.add_node(dense("fc2", "drop", 4, 3), (0,))
    g.add_node(Node("softmax", "Softmax", ["fc2"]), (0,))
    g.outputs = ["softmax"]
    return g


def diamond() -> Graph:
    """input -> (a, b) -> add -> out, plus a concat reading input and add."""
    g = Graph("diamond")
    g.add_node(input_node("x", (5,)), (5,))
    g.add_node(dense("a", "x", 5, 5), (5,))
    g.add_node(dense("b", "x", 5, 5), (5,))
    g.add_node(Node("add", "Merge", ["a", "b"], attrs={"mode": "add"}), (5,))
    g.add_node(Node("cat", "Concatenate", ["x", "add"], attrs={"axis": 0}), (10,))
    g.add_node(dense("out", "cat", 10, 2), (2,))
    g.outputs = ["out"]
    return g


def assert_topological(g: Graph) -> None:
    """Independent check: every input is produced by an earlier node."""
    position = {n.name: i for i, n in enumerate(g.nodes)}
    assert len(position) == len(g.nodes)
    for n in g.nodes:
        for t in n.inputs:
            assert position[t] < position[n.name], f"{n.name} reads {t} before it exists"


def single(op: str, in_shape: tuple[int, ...], **node_kwargs: object) -> Graph:
    """A graph Input(in_shape) -> one node of op named 'n'."""
    g = Graph()
    g.add_node(input_node("x", in_shape), in_shape)
    g.add_node(Node("n", op, ["x"], **node_kwargs), (0,))  # type: ignore[arg-type]
    g.outputs = ["n"]
    return g


def out_shape(op: str, in_shape: tuple[int, ...], **node_kwargs: object) -> tuple[int, ...]:
    g = single(op, in_shape, **node_kwargs)
    infer_shapes(g)
    return g.tensors["n"].shape


def windows(length: int, k: int, stride: int, before: int, after: int) -> int:
    """Count window positions by walking them (independent of any closed formula)."""
    count, start = 0, -before
    while start + k <= length + after:
        count += 1
        start += stride
    return count


# ---------------------------------------------------------------- building
def test_access_helpers() -> None:
    g = mlp()
    assert len(g) == 6 and [n.name for n in g] == [n.name for n in g.nodes]
    assert g.inputs == ["input"]
    assert g.node("fc1").op == "Dense" and g.has_node("fc1") and not g.has_node("nope")
    assert g.producer("relu") is g.node("relu")
    assert [n.name for n in g.consumers("fc1")] == ["relu"]
    assert g.consumers("softmax") == []
    assert g.output_tensor("input").type == FixedType(16, 6)
    assert g.output_tensor(g.node("fc1")) is g.tensors["fc1"]
    assert [t.name for t in g.input_tensors(g.node("fc2"))] == ["drop"]
    assert g.node("fc2").output == "fc2"
    with pytest.raises(GraphError, match="'nope'"):
        g.node("nope")


def test_tensor_size() -> None:
    assert Tensor("t", (3, 4, 5)).size == 60
    assert Tensor("t", ()).size == 1
    assert Tensor("t", (2**20, 2**20)).size == 2**40  # no int32 overflow


def test_add_node_errors() -> None:
    g = mlp()
    with pytest.raises(GraphError, match="'fc1'"):
        g.add_node(dense("fc1", "input", 6, 4), (4,))
    with pytest.raises(GraphError, match="'ghost'") as info:
        g.add_node(Node("fc9", "Dense", ["ghost"]), (4,))
    assert "fc9" in str(info.value)
    assert not g.has_node("fc9") and "fc9" not in g.tensors
    g.add_node(input_node("second", (2,)), (2,))
    assert g.inputs == ["input", "second"]


# ---------------------------------------------------------------- toposort
@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("builder", [mlp, diamond])
def test_toposort_sorts_shuffled_nodes(seed: int, builder: object) -> None:
    g = builder()  # type: ignore[operator]
    names = {n.name for n in g.nodes}
    random.Random(seed).shuffle(g.nodes)
    g.toposort()
    assert {n.name for n in g.nodes} == names and len(g.nodes) == len(names)
    assert_topological(g)
    g.validate()


def test_toposort_keeps_sorted_order() -> None:
    g = diamond()
    before = [n.name for n in g.nodes]
    g.toposort()
    assert [n.name for n in g.nodes] == before


def test_toposort_long_chain() -> None:
    """No recursion limit: a 5000-layer chain sorts."""
    g = Graph()
    g.add_node(input_node("l0", (2,)), (2,))
    for i in range(1, 5000):
        g.add_node(Node(f"l{i}", "Dropout", [f"l{i - 1}"]), (2,))
    g.outputs = ["l4999"]
    g.nodes.reverse()
    g.toposort()
    assert [n.name for n in g.nodes] == [f"l{i}" for i in range(5000)]


def test_toposort_cycle_names_layers() -> None:
    g = Graph()
    g.add_node(input_node("x", (3,)), (3,))
    g.nodes += [
        Node("a", "Merge", ["x", "c"], attrs={"mode": "add"}),
        Node("b", "Dropout", ["a"]),
        Node("c", "Dropout", ["b"]),
        Node("d", "Dropout", ["c"]),
    ]
    with pytest.raises(GraphError, match="cycle") as info:
        g.toposort()
    # the message lists exactly the layers on the cycle, e.g. "a -> c -> b -> a"
    on_cycle = re.findall(r"\b\w\b", str(info.value))
    assert set(on_cycle) == {"a", "b", "c"}
    assert on_cycle[0] == on_cycle[-1]


def test_toposort_self_loop() -> None:
    g = Graph()
    g.nodes = [Node("loop", "Dropout", ["loop"])]
    with pytest.raises(GraphError, match="loop"):
        g.toposort()


def test_toposort_unknown_tensor() -> None:
    g = Graph()
    g.nodes = [Node("a", "Dropout", ["ghost"])]
    with pytest.raises(GraphError, match="'ghost'") as info:
        g.toposort()
    assert "'a'" in str(info.value)


def test_toposort_duplicate_names() -> None:
    g = mlp()
    g.nodes.append(Node("relu", "Dropout", ["fc1"]))
    with pytest.raises(GraphError, match=r"duplicate.*'relu'"):
        g.toposort()


# ---------------------------------------------------------------- validate
def test_validate_accepts_good_graphs() -> None:
    mlp().validate()
    diamond().validate()


def _broken(kind: str) -> tuple[Graph, str]:
    g = mlp()
    if kind == "duplicate":
        g.nodes.append(Node("relu", "Dropout", ["fc2"]))
        return g, "duplicate.*'relu'"
    if kind == "order":
        g.nodes[1], g.nodes[2] = g.nodes[2], g.nodes[1]
        return g, "'relu'.*'fc1'"
    if kind == "unknown":
        g.node("fc2").inputs = ["ghost"]
        return g, "'fc2'.*'ghost'.*no layer produces"
    if kind == "no_tensor":
        del g.tensors["drop"]
        return g, "'drop'"
    if kind == "input_with_inputs":
        g.nodes.insert(2, Node("in2", "Input", ["fc1"], attrs={"shape": (4,)}))
        g.tensors["in2"] = Tensor("in2", (4,))
        return g, "'in2'.*must not have inputs"
    if kind == "reuse":
        g.node("fc1").reuse_factor = 0
        return g, "'fc1'.*reuse"
    if kind == "no_outputs":
        g.outputs = []
        return g, "no outputs"
    if kind == "bad_output":
        g.outputs = ["ghost"]
        return g, "'ghost'"
    if kind == "bad_input":
        g.inputs = ["fc1"]
        return g, "'fc1'.*Input"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "duplicate",
        "order",
        "unknown",
        "no_tensor",
        "input_with_inputs",
        "reuse",
        "no_outputs",
        "bad_output",
        "bad_input",
    ],
)
def test_validate_errors(kind: str) -> None:
    g, pattern = _broken(kind)
    with pytest.raises(GraphError, match=pattern):
        g.validate()


# ---------------------------------------------------------- serialization
def rich_graph() -> Graph:
    """A graph using every serialized field: types, precision, odd dtypes, nested attrs."""
    g = Graph("rich", io_type="io_stream", metadata={"source": "test", "version": [1, 2]})
    g.add_node(input_node("in put", (8, 8, 3)), (8, 8, 3), FixedType(8, 0, False))
    conv = Node(
        "conv",
        "Conv2D",
        ["in put"],
        attrs={
            "strides": (2, 1),
            "pads": (1, 1, 0, 2),
            "name_hint": "c",
            "alpha": 0.1,
            "flag": True,
            "nested": ((1, 2), (3, 4)),
            "none": None,
            "count": np.int64(3),
            "scale": np.float32(0.5),
        },
        weights={
            "kernel": RNG.normal(size=(3, 3, 3, 4)),
            "bias": RNG.normal(size=4).astype(np.float32),
        },
        precision={
            "weight": FixedType(6, 1, rounding=Rounding.RND_CONV),
            "bias": FixedType(10, 3, overflow=Overflow.SAT),
            "accum": FixedType(32, 12),
        },
        reuse_factor=4,
        strategy="Resource",
        source_class="QConv2D",
    )
    g.add_node(conv, (4, 8, 4), FixedType(16, 6, True, Rounding.RND, Overflow.SAT_SYM))
    g.add_node(
        Node(
            "table",
            "Activation",
            ["conv"],
            attrs={"function": "tanh"},
            weights={"lut": np.arange(-8, 8, dtype=np.int8), "empty": np.zeros((0, 3))},
        ),
        (4, 8, 4),
        FixedType(64, 2, False),
    )
    g.outputs = ["table"]
    return g


def assert_same_graph(a: Graph, b: Graph) -> None:
    assert (a.name, a.io_type, a.inputs, a.outputs) == (b.name, b.io_type, b.inputs, b.outputs)
    assert list(a.tensors) == list(b.tensors)
    for name, t in a.tensors.items():
        u = b.tensors[name]
        assert (u.name, u.shape, u.type) == (t.name, t.shape, t.type)
        assert isinstance(u.shape, tuple)
    assert [n.name for n in a.nodes] == [n.name for n in b.nodes]
    for n, m in zip(a.nodes, b.nodes, strict=True):
        assert (m.op, m.inputs, m.precision) == (n.op, n.inputs, n.precision)
        assert (m.reuse_factor, m.strategy, m.source_class) == (
            n.reuse_factor,
            n.strategy,
            n.source_class,
        )
        assert sorted(m.weights) == sorted(n.weights)
        for k, w in n.weights.items():
            v = m.weights[k]
            assert v.dtype == w.dtype and v.shape == w.shape
            assert v.tobytes() == w.tobytes()  # bit-exact, not approximately equal


def test_save_load_round_trip(tmp_path: Path) -> None:
    g = rich_graph()
    path = tmp_path / "model.json"
    g.save(path)
    json.loads(path.read_text())  # plain JSON
    h = Graph.load(path)
    assert_same_graph(g, h)
    attrs = h.node("conv").attrs
    assert attrs["strides"] == (2, 1) and isinstance(attrs["strides"], tuple)
    assert attrs["pads"] == (1, 1, 0, 2)
    assert attrs["nested"] == ((1, 2), (3, 4))
    assert all(isinstance(x, tuple) for x in attrs["nested"])
    assert attrs["alpha"] == 0.1 and attrs["flag"] is True and attrs["none"] is None
    assert attrs["count"] == 3 and attrs["scale"] == 0.5
    assert h.metadata["source"] == "test"
    # saving again gives the same document
    second = tmp_path / "again.json"
    h.save(second)
    assert json.loads(second.read_text()) == json.loads(path.read_text())


def test_round_trip_keeps_numpy_bools_and_ints(tmp_path: Path) -> None:
    g = mlp()
    g.node("relu").attrs.update(
        {"bounded": np.bool_(True), "max_value": np.int32(6), "sizes": [np.int64(2), 3]}
    )
    g.save(tmp_path / "g.json")
    attrs = Graph.load(tmp_path / "g.json").node("relu").attrs
    assert attrs["bounded"] is True
    assert attrs["max_value"] == 6
    assert attrs["sizes"] == (2, 3)


def test_unserializable_attr_names_layer(tmp_path: Path) -> None:
    g = mlp()
    g.node("relu").attrs["bad"] = np.zeros(3)
    with pytest.raises(GraphError, match=r"'relu'.*'bad'.*ndarray"):
        g.save(tmp_path / "g.json")


def test_copy_is_deep() -> None:
    g = rich_graph()
    h = g.copy()
    assert_same_graph(g, h)
    h.node("conv").weights["kernel"][0, 0, 0, 0] += 1.0
    h.node("conv").attrs["strides"] = (9, 9)
    h.tensors["conv"].shape = (1,)
    h.nodes.pop()
    h.metadata["version"].append(3)
    assert (
        g.node("conv").weights["kernel"][0, 0, 0, 0] != h.node("conv").weights["kernel"][0, 0, 0, 0]
    )
    assert g.node("conv").attrs["strides"] == (2, 1)
    assert g.tensors["conv"].shape == (4, 8, 4)
    assert len(g.nodes) == 3
    assert g.metadata["version"] == [1, 2]


def test_load_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(GraphError, match=r"missing\.json"):
        Graph.load(missing)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(GraphError, match=r"bad\.json"):
        Graph.load(bad)
    doc = mlp().to_dict()
    with pytest.raises(GraphError, match="nnfab-ir"):
        Graph.from_dict({**doc, "format": "onnx"})
    with pytest.raises(GraphError, match="99"):
        Graph.from_dict({**doc, "version": 99})
    truncated = {k: v for k, v in doc.items() if k != "nodes"}
    with pytest.raises(GraphError, match="nodes"):
        Graph.from_dict(truncated)
    bad_type = json.loads(json.dumps(doc))
    bad_type["tensors"][0]["type"] = "ap_fixed<0,0>"
    with pytest.raises(GraphError, match="ap_fixed<0,0>"):
        Graph.from_dict(bad_type)
    with pytest.raises(GraphError, match="nnfab-ir"):
        Graph.from_dict([1, 2])  # type: ignore[arg-type]


# ------------------------------------------------------------- remove_node
def test_remove_node_rewires_consumers() -> None:
    g = mlp()
    g.remove_node("drop")
    assert g.node("fc2").inputs == ["relu"]
    assert "drop" not in g.tensors and not g.has_node("drop")
    g.validate()
    infer_shapes(g)
    assert g.tensors["fc2"].shape == (3,)


def test_remove_output_node_moves_output() -> None:
    g = mlp()
    g.remove_node("softmax")
    assert g.outputs == ["fc2"]
    g.validate()


def test_remove_node_read_twice() -> None:
    g = Graph()
    g.add_node(input_node("x", (3,)), (3,))
    g.add_node(Node("act", "Activation", ["x"], attrs={"function": "relu"}), (3,))
    g.add_node(Node("sq", "Merge", ["act", "act"], attrs={"mode": "multiply"}), (3,))
    g.add_node(Node("other", "Dropout", ["act"]), (3,))
    g.outputs = ["sq", "other", "act"]
    g.remove_node("act")
    assert g.node("sq").inputs == ["x", "x"]
    assert g.node("other").inputs == ["x"]
    assert g.outputs == ["sq", "other", "x"]
    g.validate()


def test_remove_node_errors() -> None:
    g = diamond()
    with pytest.raises(GraphError, match=r"'add'.*2 inputs"):
        g.remove_node("add")
    with pytest.raises(GraphError, match=r"'x'.*0 inputs"):
        g.remove_node("x")
    with pytest.raises(GraphError, match="'ghost'"):
        g.remove_node("ghost")
    assert len(g) == 6


# ---------------------------------------------------------- shape inference
def test_infer_shapes_mlp() -> None:
    g = mlp()
    infer_shapes(g)
    assert {k: t.shape for k, t in g.tensors.items()} == {
        "input": (6,),
        "fc1": (4,),
        "relu": (4,),
        "drop": (4,),
        "fc2": (3,),
        "softmax": (3,),
    }
    assert all(type(s) is int for t in g.tensors.values() for s in t.shape)


def test_shape_dense() -> None:
    w = {"kernel": np.zeros((8, 5)), "bias": np.zeros(5)}
    assert out_shape("Dense", (8,), weights=w) == (5,)
    assert out_shape("Dense", (7, 8), weights=w) == (7, 5)  # applies to the last axis
    with pytest.raises(GraphError, match=r"'n'.*7 features.*8"):
        out_shape("Dense", (7,), weights=w)
    with pytest.raises(GraphError, match=r"'n'.*'bias'"):
        out_shape("Dense", (8,), weights={"kernel": w["kernel"]})


CONV_CASES_1D = [
    # length, k, stride, pads
    (10, 3, 1, (0, 0)),
    (10, 3, 2, (0, 0)),
    (10, 3, 1, (1, 1)),
    (9, 4, 3, (2, 1)),
    (5, 5, 1, (0, 0)),
    (1, 3, 1, (1, 1)),
    (7, 1, 7, (0, 0)),
]


@pytest.mark.parametrize(("length", "k", "stride", "pads"), CONV_CASES_1D)
@pytest.mark.parametrize("op", ["Conv1D", "DepthwiseConv1D"])
def test_shape_conv1d(op: str, length: int, k: int, stride: int, pads: tuple[int, int]) -> None:
    channels, last = 3, 2
    kernel = np.zeros((k, channels, last))
    shape = out_shape(
        op,
        (length, channels),
        attrs={"strides": (stride,), "pads": pads},
        weights={"kernel": kernel, "bias": np.zeros(last)},
    )
    out_channels = channels * last if op.startswith("Depthwise") else last
    assert shape == (windows(length, k, stride, *pads), out_channels)


@settings(max_examples=200, deadline=None)
@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    kh=st.integers(1, 5),
    kw=st.integers(1, 5),
    sh=st.integers(1, 4),
    sw=st.integers(1, 4),
    pads=st.tuples(*[st.integers(0, 3)] * 4),
    channels=st.integers(1, 4),
    last=st.integers(1, 4),
    depthwise=st.booleans(),
)
def test_shape_conv2d(
    h: int,
    w: int,
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    pads: tuple[int, int, int, int],
    channels: int,
    last: int,
    depthwise: bool,
) -> None:
    op = "DepthwiseConv2D" if depthwise else "Conv2D"
    rows = windows(h, kh, sh, pads[0], pads[1])
    cols = windows(w, kw, sw, pads[2], pads[3])
    kwargs = {
        "attrs": {"strides": (sh, sw), "pads": pads},
        "weights": {"kernel": np.zeros((kh, kw, channels, last)), "bias": np.zeros(last)},
    }
    if rows < 1 or cols < 1:
        with pytest.raises(GraphError, match=r"'n'.*kernel larger"):
            out_shape(op, (h, w, channels), **kwargs)
        return
    out_channels = channels * last if depthwise else last
    assert out_shape(op, (h, w, channels), **kwargs) == (rows, cols, out_channels)


def test_shape_conv_defaults_and_errors() -> None:
    weights = {"kernel": np.zeros((3, 3, 2, 5)), "bias": np.zeros(5)}
    assert out_shape("Conv2D", (6, 7, 2), weights=weights) == (4, 5, 5)  # stride 1, no pad
    with pytest.raises(GraphError, match=r"'n'.*3 channels.*2"):
        out_shape("Conv2D", (6, 7, 3), weights=weights)
    with pytest.raises(GraphError, match=r"'n'.*kernel larger"):
        out_shape("Conv2D", (2, 7, 2), weights=weights)
    with pytest.raises(GraphError, match=r"'n'.*'kernel'"):
        out_shape("Conv1D", (6, 2), weights={"bias": np.zeros(5)})


def test_shape_conv_rank_mismatch() -> None:
    weights = {"kernel": np.zeros((3, 3, 3, 4)), "bias": np.zeros(4)}
    with pytest.raises(GraphError, match="'n'"):
        out_shape("Conv2D", (8, 3), weights=weights)  # a 1-D input to a 2-D conv


@pytest.mark.parametrize("strides", [(0,), (1, 1)])
def test_shape_conv_bad_strides(strides: tuple[int, ...]) -> None:
    weights = {"kernel": np.zeros((3, 2, 4)), "bias": np.zeros(4)}
    with pytest.raises(GraphError, match=r"'n'.*strides"):
        out_shape("Conv1D", (8, 2), attrs={"strides": strides}, weights=weights)


@settings(max_examples=150, deadline=None)
@given(
    dims=st.lists(st.integers(1, 9), min_size=1, max_size=2),
    pool=st.lists(st.integers(1, 4), min_size=2, max_size=2),
    strides=st.one_of(st.none(), st.lists(st.integers(1, 4), min_size=2, max_size=2)),
    pads=st.lists(st.integers(0, 2), min_size=4, max_size=4),
    mode=st.sampled_from(["max", "avg"]),
)
def test_shape_pooling(
    dims: list[int], pool: list[int], strides: list[int] | None, pads: list[int], mode: str
) -> None:
    rank = len(dims)
    op = f"Pooling{rank}D"
    size = tuple(pool[:rank])
    step = size if strides is None else tuple(strides[:rank])
    attrs: dict[str, object] = {"mode": mode, "pool_size": size, "pads": tuple(pads[: 2 * rank])}
    if strides is not None:
        attrs["strides"] = step
    expected = [
        windows(dims[a], size[a], step[a], pads[2 * a], pads[2 * a + 1]) for a in range(rank)
    ]
    if min(expected) < 1:
        with pytest.raises(GraphError, match=r"'n'.*pool window"):
            out_shape(op, (*dims, 3), attrs=attrs)
        return
    assert out_shape(op, (*dims, 3), attrs=attrs) == (*expected, 3)


def test_shape_pooling_defaults_and_errors() -> None:
    assert out_shape("Pooling2D", (8, 6, 4), attrs={"mode": "max", "pool_size": (2, 3)}) == (
        4,
        2,
        4,
    )
    assert out_shape("Pooling1D", (9, 2), attrs={"mode": "avg", "pool_size": (2,)}) == (4, 2)
    with pytest.raises(GraphError, match=r"'n'.*'pool_size'"):
        out_shape("Pooling1D", (9, 2), attrs={"mode": "avg"})
    with pytest.raises(GraphError, match=r"'n'.*'mode'"):
        out_shape("Pooling1D", (9, 2), attrs={"pool_size": (2,)})


@pytest.mark.parametrize(
    ("op", "shape"), [("GlobalPooling1D", (9, 5)), ("GlobalPooling2D", (4, 3, 5))]
)
def test_shape_global_pooling(op: str, shape: tuple[int, ...]) -> None:
    assert out_shape(op, shape, attrs={"mode": "avg"}) == (5,)


@pytest.mark.parametrize(
    ("op", "kwargs"),
    [
        ("Activation", {"attrs": {"function": "tanh"}}),
        ("Softmax", {}),
        ("Dropout", {}),
        ("BatchNormalization", {"weights": {"scale": np.ones(3), "bias": np.zeros(3)}}),
    ],
)
def test_shape_elementwise(op: str, kwargs: dict) -> None:
    assert out_shape(op, (4, 2, 3), **kwargs) == (4, 2, 3)


def test_shape_activation_needs_function() -> None:
    with pytest.raises(GraphError, match=r"'n'.*'function'"):
        out_shape("Activation", (3,))


def multi(op: str, shapes: list[tuple[int, ...]], attrs: dict) -> Graph:
    g = Graph()
    for i, s in enumerate(shapes):
        g.add_node(input_node(f"x{i}", s), s)
    g.add_node(Node("n", op, [f"x{i}" for i in range(len(shapes))], attrs=attrs), (0,))
    g.outputs = ["n"]
    return g


def test_shape_merge() -> None:
    g = multi("Merge", [(4, 3)] * 3, {"mode": "add"})
    infer_shapes(g)
    assert g.tensors["n"].shape == (4, 3)
    with pytest.raises(GraphError, match=r"'n'.*different shapes"):
        infer_shapes(multi("Merge", [(4, 3), (3, 4)], {"mode": "add"}))
    with pytest.raises(GraphError, match=r"'n'.*2..64 inputs, got 1"):
        infer_shapes(multi("Merge", [(4, 3)], {"mode": "add"}))


@pytest.mark.parametrize(
    ("shapes", "axis", "expected"),
    [
        ([(4,), (6,)], 0, (10,)),
        ([(2, 3), (2, 5), (2, 1)], 1, (2, 9)),
        ([(2, 3), (4, 3)], 0, (6, 3)),
        ([(2, 3, 4), (2, 3, 1)], 2, (2, 3, 5)),
    ],
)
def test_shape_concat(shapes: list, axis: int, expected: tuple) -> None:
    g = multi("Concatenate", shapes, {"axis": axis})
    infer_shapes(g)
    assert g.tensors["n"].shape == expected


@pytest.mark.parametrize(
    ("shapes", "axis", "pattern"),
    [
        ([(2, 3), (3, 3)], 1, "cannot concatenate"),
        ([(2, 3), (2, 3, 1)], 0, "cannot concatenate"),
        ([(2, 3), (2, 3)], 2, "axis 2"),
        ([(2, 3), (2, 3)], -3, "axis -3"),
    ],
)
def test_shape_concat_errors(shapes: list, axis: int, pattern: str) -> None:
    with pytest.raises(GraphError, match=f"'n'.*{pattern}"):
        infer_shapes(multi("Concatenate", shapes, {"axis": axis}))


def test_shape_flatten() -> None:
    assert out_shape("Flatten", (4, 3, 2)) == (24,)
    assert out_shape("Flatten", (7,)) == (7,)


@pytest.mark.parametrize(
    ("in_shape", "target", "expected"),
    [
        ((4, 3, 2), (24,), (24,)),
        ((4, 3, 2), (-1,), (24,)),
        ((4, 3, 2), (6, -1), (6, 4)),
        ((4, 3, 2), (-1, 3, 2), (4, 3, 2)),
        ((24,), (2, -1, 3), (2, 4, 3)),
        ((5,), (5, 1), (5, 1)),
    ],
)
def test_shape_reshape(in_shape: tuple, target: tuple, expected: tuple) -> None:
    assert out_shape("Reshape", in_shape, attrs={"target_shape": target}) == expected


@pytest.mark.parametrize(
    ("in_shape", "target"), [((4, 3), (5,)), ((4, 3), (5, -1)), ((6,), (4, 2))]
)
def test_shape_reshape_errors(in_shape: tuple, target: tuple) -> None:
    with pytest.raises(GraphError, match=r"'n'.*cannot reshape"):
        out_shape("Reshape", in_shape, attrs={"target_shape": target})


@pytest.mark.parametrize(("in_shape", "target"), [((1,), (-1, -1)), ((4,), (-2, -2))])
def test_shape_reshape_rejects_bad_target(in_shape: tuple, target: tuple) -> None:
    with pytest.raises(GraphError, match="'n'"):
        out_shape("Reshape", in_shape, attrs={"target_shape": target})


def test_shape_input_and_arity() -> None:
    g = Graph()
    g.add_node(input_node("x", (3, 4)), (0,))
    g.outputs = ["x"]
    infer_shapes(g)
    assert g.tensors["x"].shape == (3, 4)
    with pytest.raises(GraphError, match=r"'n'.*1..1 inputs, got 2"):
        infer_shapes(multi("Dropout", [(3,), (3,)], {}))


def test_unknown_op() -> None:
    g = single("Frobnicate", (3,))
    with pytest.raises(GraphError, match=r"'n'.*'Frobnicate'.*Dense"):
        infer_shapes(g)


@pytest.mark.parametrize(("data", "op", "expected"), [
    ((7, 3), "VertexMask", (7, 3)), ((7, 2, 3), "VertexMask", (7, 2, 3)),
    ((7, 3), "VertexMean", (3,)), ((5, 4, 2), "VertexMean", (4, 2)),
])
def test_shape_vertex_ops(data: tuple, op: str, expected: tuple) -> None:
    g = multi(op, [data, (1,)], {})
    infer_shapes(g)
    assert g.tensors["n"].shape == expected
    with pytest.raises(GraphError, match=r"'n' \(Vertex.*count input has shape \(3,\)"):
        infer_shapes(multi(op, [data, (3,)], {}))
    with pytest.raises(GraphError, match=r"'n'.*2..2 inputs, got 1"):
        infer_shapes(multi(op, [data], {}))


TESTED_OPS = {
    "Input",
    "VertexMask", "VertexMean",  # test_shape_vertex_ops
    "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D",  # test_shape_rearrangements
    "UpSampling1D", "UpSampling2D", "Permute", "Slice",
    "Dot", "MultiThreshold",  # test_shape_dot_and_multithreshold
    "MatMul",  # test_shape_matmul
    "ElementCast",  # test_shape_element_cast
    "Conv1DTranspose", "Conv2DTranspose", "Embedding",  # tests/emulate/test_zoo.py
    "LayerNormalization",
    "SimpleRNN",  # shapes: tests/emulate/test_recurrent.py::test_shapes
    "LSTM",
    "GRU",
    "Dense",
    "Conv1D",
    "Conv2D",
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "Pooling1D",
    "Pooling2D",
    "GlobalPooling1D",
    "GlobalPooling2D",
    "BatchNormalization",
    "Activation",
    "Softmax",
    "Merge",
    "Concatenate",
    "Flatten",
    "Reshape",
    "Dropout",
}


def test_every_op_has_a_shape_test() -> None:
    """A new op in OPS must get a shape-inference test here."""
    assert set(OPS) == TESTED_OPS


# ------------------------------------------------------------------------ tail
def test_tail_starts_at_the_cut_with_its_type() -> None:
    g = mlp()
    infer_shapes(g)
    part = g.tail("fc1")
    assert [n.name for n in part.nodes] == ["fc1", "relu", "drop", "fc2", "softmax"]
    assert part.node("fc1").op == "Input"
    assert part.inputs == ["fc1"] and part.outputs == ["softmax"]
    assert part.tensors["fc1"].type == FixedType(18, 8)
    assert part.tensors["fc1"].shape == g.tensors["fc1"].shape
    # the original is untouched, the copy is independent
    part.node("fc2").weights["kernel"][0, 0] = 123.0
    assert g.node("fc2").weights["kernel"][0, 0] != 123.0
    assert g.node("fc1").op == "Dense"


def test_tail_refuses_to_cut_a_skip_connection() -> None:
    g = diamond()
    with pytest.raises(GraphError, match="'cat' also reads"):
        g.tail("add")
    with pytest.raises(GraphError, match="no graph output depends"):
        g.tail("out")


# ------------------------------------------------------ rearrangements, Dot, thresholds
@pytest.mark.parametrize(
    ("op", "in_shape", "attrs", "expected"),
    [
        ("ZeroPadding1D", (5, 3), {"pads": (1, 2)}, (8, 3)),
        ("ZeroPadding2D", (4, 5, 2), {"pads": (1, 0, 2, 1)}, (5, 8, 2)),
        ("Cropping1D", (9, 2), {"crops": (2, 3)}, (4, 2)),
        ("Cropping2D", (6, 7, 3), {"crops": (1, 2, 0, 3)}, (3, 4, 3)),
        ("UpSampling1D", (4, 3), {"size": (3,)}, (12, 3)),
        ("UpSampling2D", (2, 3, 4), {"size": (2, 3)}, (4, 9, 4)),
        ("Permute", (2, 3, 4), {"perm": (2, 0, 1)}, (4, 2, 3)),
        ("Slice", (3, 4, 5), {"begin": (2, 0, 1), "size": (1, 4, 3)}, (1, 4, 3)),
    ],
)
def test_shape_rearrangements(op: str, in_shape: tuple, attrs: dict, expected: tuple) -> None:
    assert out_shape(op, in_shape, attrs=attrs) == expected


def test_shape_rearrangement_errors() -> None:
    with pytest.raises(GraphError, match="'n'"):
        out_shape("Cropping1D", (4, 2), attrs={"crops": (2, 2)})  # nothing left
    with pytest.raises(GraphError, match="'n'"):
        out_shape("Permute", (2, 3), attrs={"perm": (0, 0)})
    with pytest.raises(GraphError, match=r"'n'.*reach past axis 1"):
        out_shape("Slice", (2, 3), attrs={"begin": (0, 2), "size": (2, 2)})


def test_shape_element_cast() -> None:
    fields = {"keep_negative": np.ones((1, 3)), "bits": np.full((1, 3), 4),
              "integers": np.ones((1, 3))}
    attrs = {"rounding": "AP_TRN", "overflow": "AP_WRAP"}
    assert out_shape("ElementCast", (2, 3), attrs=attrs, weights=fields) == (2, 3)
    with pytest.raises(GraphError, match=r"'n' \(ElementCast\).*do not broadcast"):
        out_shape("ElementCast", (2, 4), attrs=attrs, weights=fields)
    with pytest.raises(GraphError, match=r"'n' \(ElementCast\).*allowed rounding"):
        out_shape("ElementCast", (2, 3), attrs={**attrs, "rounding": "RND"}, weights=fields)


def test_shape_matmul() -> None:
    g = multi("MatMul", [(2, 3, 4), (2, 4, 5)], {})
    infer_shapes(g)
    assert g.tensors["n"].shape == (2, 3, 5)
    for bad in ([(3, 4), (5, 2)], [(2, 3, 4), (3, 4, 5)], [(4,), (4,)]):
        with pytest.raises(GraphError, match=r"'n' \(MatMul\)"):
            infer_shapes(multi("MatMul", bad, {}))


def test_shape_dot_and_multithreshold() -> None:
    g = multi("Dot", [(7,), (7,)], {})
    infer_shapes(g)
    assert g.tensors["n"].shape == (1,)
    thresholds = np.zeros((3, 4))
    assert out_shape("MultiThreshold", (5, 3), weights={"thresholds": thresholds}) == (5, 3)
