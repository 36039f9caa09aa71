"""ZeroPadding, Cropping, UpSampling (nearest), Permute and Slice: values moved, one result
cast.

The reference here walks every output element with explicit index arithmetic written
from docs/semantics.md (not from nnfab.ir.rearrange), then applies the Fraction cast
of tests/emulate/helpers.py.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from nnfab.errors import GraphError
from nnfab.ir import fixed
from nnfab.ir.rearrange import gather_index
from tests.emulate.helpers import (
    assert_bits,
    cast_array,
    fr_array,
    random_on_grid,
    run,
    single_op_graph,
)


# ------------------------------------------------------------- reference
def ref_move(op: str, attrs: dict, x: np.ndarray) -> np.ndarray:
    """One sample (object array of Fractions) moved by ``op``, element by element."""
    if op == "Slice":
        begin, size = attrs["begin"], attrs["size"]
        step = attrs.get("step", (1,) * len(size))
        out = np.empty(tuple(size), dtype=object)
        for idx in np.ndindex(out.shape):
            out[idx] = x[tuple(b + i * s for b, i, s in zip(begin, idx, step, strict=True))]
        return out
    if op == "Permute":
        perm = attrs["perm"]
        out = np.empty(tuple(x.shape[p] for p in perm), dtype=object)
        for idx in np.ndindex(out.shape):
            src = [0] * x.ndim
            for k, p in enumerate(perm):
                src[p] = idx[k]
            out[idx] = x[tuple(src)]
        return out
    rank = x.ndim - 1
    spatial, chans = x.shape[:rank], x.shape[-1]
    if op.startswith("ZeroPadding"):
        p = attrs["pads"]
        shape = [spatial[a] + p[2 * a] + p[2 * a + 1] for a in range(rank)]

        def source(o: tuple[int, ...]) -> tuple[int, ...] | None:
            i = tuple(o[a] - p[2 * a] for a in range(rank))
            return i if all(0 <= i[a] < spatial[a] for a in range(rank)) else None
    elif op.startswith("Cropping"):
        c = attrs["crops"]
        shape = [spatial[a] - c[2 * a] - c[2 * a + 1] for a in range(rank)]

        def source(o: tuple[int, ...]) -> tuple[int, ...] | None:
            return tuple(o[a] + c[2 * a] for a in range(rank))
    else:
        s = attrs["size"]
        shape = [spatial[a] * s[a] for a in range(rank)]

        def source(o: tuple[int, ...]) -> tuple[int, ...] | None:
            return tuple(o[a] // s[a] for a in range(rank))
    out = np.empty((*shape, chans), dtype=object)
    for o in itertools.product(*(range(n) for n in shape)):
        i = source(o)
        for ch in range(chans):
            out[(*o, ch)] = Fraction(0) if i is None else x[(*i, ch)]
    return out


CASES = [
    ("ZeroPadding1D", (7, 3), {"pads": (2, 1)}),
    ("ZeroPadding1D", (4, 2), {"pads": (0, 3)}),
    ("ZeroPadding2D", (5, 4, 3), {"pads": (1, 2, 0, 3)}),
    ("ZeroPadding2D", (3, 3, 1), {"pads": (0, 0, 0, 0)}),
    ("Cropping1D", (9, 2), {"crops": (3, 1)}),
    ("Cropping2D", (6, 7, 2), {"crops": (1, 2, 3, 0)}),
    ("Cropping2D", (4, 4, 3), {"crops": (0, 3, 3, 0)}),
    ("UpSampling1D", (5, 3), {"size": (3,)}),
    ("UpSampling2D", (3, 4, 2), {"size": (2, 3)}),
    ("UpSampling2D", (2, 3, 2), {"size": (1, 1)}),
    ("Permute", (3, 4), {"perm": (1, 0)}),
    ("Permute", (2, 3, 4), {"perm": (2, 0, 1)}),
    ("Permute", (2, 3, 4), {"perm": (1, 2, 0)}),
    ("Permute", (2, 3, 4, 5), {"perm": (3, 1, 0, 2)}),
    ("Slice", (3, 4, 5), {"begin": (1, 0, 2), "size": (1, 4, 3)}),
    ("Slice", (6,), {"begin": (2,), "size": (3,)}),
    ("Slice", (2, 3, 4, 5), {"begin": (0, 2, 1, 0), "size": (2, 1, 2, 5)}),
    ("Slice", (7,), {"begin": (0,), "size": (3,), "step": (3,)}),
    ("Slice", (7,), {"begin": (1,), "size": (2,), "step": (5,)}),
    ("Slice", (5, 6, 4), {"begin": (0, 1, 1), "size": (3, 2, 2), "step": (2, 4, 2)}),
    ("Slice", (3, 5, 4, 2), {"begin": (2, 0, 3, 0), "size": (1, 2, 1, 2),
                             "step": (5, 3, 1, 1)}),
]


def _case_id(case: tuple) -> str:
    return f"{case[0]}-{'x'.join(map(str, case[1]))}-{next(iter(case[2].values()))}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_values_are_moved_exactly(case: tuple) -> None:
    op, shape, attrs = case
    t = fixed("ap_fixed<8,3>")
    g = single_op_graph(op, [shape], [t], t, attrs=attrs)
    x = random_on_grid(np.random.default_rng(len(shape) + sum(shape)), t, (6, *shape))
    res = run(g, x)
    want = np.stack([ref_move(op, attrs, fr_array(s)) for s in x])
    assert_bits(res.outputs["op"], want)
    assert res.overflows["op"]["result"] == 0
    # The shared description the backends use agrees with the reference too.
    index = gather_index(g.node("op"), shape)
    flat = np.concatenate([[0.0], x[0].reshape(-1)])
    assert np.array_equal(flat[index + 1], res.outputs["op"][0])


@pytest.mark.parametrize(("op", "attrs"), [
    ("ZeroPadding2D", {"pads": (1, 1, 2, 0)}),
    ("Cropping2D", {"crops": (1, 0, 0, 1)}),
    ("UpSampling2D", {"size": (2, 2)}),
    ("Permute", {"perm": (1, 0, 2)}),
    ("Slice", {"begin": (1, 1, 0), "size": (2, 3, 2)}),
])
@pytest.mark.parametrize("out_t", ["ap_fixed<5,2,AP_RND,AP_SAT>", "ap_ufixed<4,1,AP_RND_CONV>",
                                   "ap_fixed<6,3,AP_TRN,AP_SAT_SYM>"])
def test_result_cast_rounds_and_overflows_like_the_reference(op: str, attrs: dict,
                                                              out_t: str) -> None:
    in_t, res_t = fixed("ap_fixed<9,4>"), fixed(out_t)
    shape = (3, 4, 2)
    g = single_op_graph(op, [shape], [in_t], res_t, attrs=attrs)
    x = random_on_grid(np.random.default_rng(5), in_t, (20, *shape))
    res = run(g, x)
    moved = np.stack([ref_move(op, attrs, fr_array(s)) for s in x])
    want, n_over = cast_array(moved, res_t)
    assert_bits(res.outputs["op"], want)
    assert res.overflows["op"]["result"] == n_over > 0


@pytest.mark.parametrize(("op", "shape", "attrs", "needle"), [
    ("Cropping1D", (4, 2), {"crops": (2, 2)}, "remove all 4"),
    ("Cropping2D", (4, 4, 2), {"crops": (0, 0, 1)}, "crops"),
    ("ZeroPadding2D", (4, 4, 2), {"pads": (1, -1, 0, 0)}, "integers >= 0"),
    ("UpSampling2D", (4, 4, 2), {"size": (2, 0)}, "integers >= 1"),
    ("UpSampling1D", (4, 2), {"size": (2,), "interpolation": "bilinear"}, "'bilinear'"),
    ("ZeroPadding2D", (4, 2), {"pads": (1, 1, 1, 1)}, "3-D input"),
    ("Permute", (2, 3, 4), {"perm": (0, 0, 1)}, "permutation"),
    ("Permute", (2, 3), {"perm": (1, 0, 2)}, "integers"),
    ("Slice", (2, 3), {"begin": (1, 2), "size": (1, 2)}, "reach past axis 1"),
    ("Slice", (2, 5), {"begin": (0, 1), "size": (1, 3), "step": (1, 2)}, "reach past axis 1"),
    ("Slice", (2, 5), {"begin": (0, 1), "size": (1, 2), "step": (1, 0)}, "integers >= 1"),
    ("Slice", (2, 3), {"begin": (0, 0), "size": (0, 2)}, "integers >= 1"),
])
def test_bad_attributes_name_the_layer(op: str, shape: tuple, attrs: dict, needle: str) -> None:
    with pytest.raises(GraphError, match="layer 'op'") as e:
        single_op_graph(op, [shape], ["ap_fixed<8,3>"], "ap_fixed<8,3>", attrs=attrs)
    assert needle in str(e.value)


def test_pass_through_type_is_the_input_type() -> None:
    """Without a configured result type the output type is the input's (exact)."""
    import nnfab
    from nnfab.ir import Graph, Node, infer_shapes

    g = Graph("g")
    g.add_node(Node("x", "Input", [], attrs={"shape": (4, 3)}), (4, 3))
    g.add_node(Node("pad", "ZeroPadding1D", ["x"], attrs={"pads": (1, 2)}), ())
    g.add_node(Node("up", "UpSampling1D", ["pad"], attrs={"size": (2,)}), ())
    g.add_node(Node("perm", "Permute", ["up"], attrs={"perm": (1, 0)}), ())
    g.add_node(Node("crop", "Cropping1D", ["perm"], attrs={"crops": (1, 0)}), ())
    g.outputs = ["crop"]
    infer_shapes(g)
    model = nnfab.convert_graph(g, {"Model": {"Precision": "ap_fixed<10,4,AP_RND,AP_SAT>"}})
    types = {n: str(t.type) for n, t in model.graph.tensors.items()}
    assert set(types.values()) == {"ap_fixed<10,4,AP_RND,AP_SAT>"}
    assert model.graph.tensors["crop"].shape == (2, 14)
    x = np.random.default_rng(0).normal(0, 4, (5, 4, 3))
    xq = fixed("ap_fixed<10,4,AP_RND,AP_SAT>").quantize(x)
    padded = np.pad(xq, ((0, 0), (1, 2), (0, 0)))
    want = np.repeat(padded, 2, axis=1).transpose(0, 2, 1)[:, 1:]
    assert np.array_equal(model.predict(x), want)
