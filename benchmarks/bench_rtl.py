"""Reference network of issue 4: 16-64-32-32-5."""
import logging, sys, time, resource
import numpy as np
import nnfab
from nnfab.ir import Graph, Node
from nnfab.backends.rtl import RTLProject

def reference_graph():
    rng = np.random.default_rng(0)
    sizes = [16, 64, 32, 32, 5]
    g = Graph(name="bench")
    g.add_node(Node("inp", "Input", [], attrs={"shape": (16,)}), (16,))
    prev = "inp"
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.integers(-32, 32, size=(a, b)) / 32.0
        bias = rng.integers(-32, 32, size=b) / 32.0
        g.add_node(Node(f"fc{k}", "Dense", [prev], weights={"kernel": w, "bias": bias}), (b,))
        prev = f"fc{k}"
        if k < 3:
            g.add_node(Node(f"relu{k}", "Activation", [prev], attrs={"function": "relu"}), (b,))
            prev = f"relu{k}"
    g.outputs = [prev]
    return g

def reference_config(g):
    cfg = {"Model": {"Precision": "ap_fixed<64,32>"}, "LayerName": {"inp": {"Precision": {"result": "ap_fixed<8,4>"}}}}
    for k in range(4):
        cfg["LayerName"][f"fc{k}"] = {"Precision": {"weight": "ap_fixed<6,1>", "bias": "ap_fixed<6,1>", "accum": "auto"}}
        if k < 3:
            cfg["LayerName"][f"relu{k}"] = {"Precision": {"result": "ap_ufixed<6,3>"}}
    return cfg

def reference_model():
    g = reference_graph()
    m = nnfab.convert_graph(g, reference_config(g))
    # last layer: the exact sum
    last = m.graph.node("fc3")
    m.graph.tensors["fc3"].type = last.precision["accum"]
    return m

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    style = sys.argv[1] if len(sys.argv) > 1 else "lut"
    aps = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] != "none" else None
    m = reference_model()
    for n in m.graph.nodes: print(n.name, n.op, n.attrs.get("activation"), {k: str(v) for k, v in n.precision.items()}, m.graph.tensors[n.name].type)
    t = time.time()
    tag = sys.argv[3] if len(sys.argv) > 3 else "x"
    p = RTLProject(m, f"/tmp/rtl/bench_{style}_{aps}_{tag}", style=style, adders_per_stage=aps)
    p.write()
    print("gen", time.time() - t, "latency", p.latency)
    for l in p.design.layers: print(l.node, l.latency, l.stats)
    if "sim" in sys.argv:
        x = np.random.default_rng(1).normal(size=(100000, 16)) * 4
        r = p.simulate(x)
        ref = m.predict(x)
        print("sim equal", np.array_equal(r.outputs, ref), "lat", r.latency, "build", r.build_seconds, "sim", r.sim_seconds)
    if "synth" in sys.argv:
        r = p.synthesize("xcvu9p-flgb2104-2l-e")
        print(r.table())
