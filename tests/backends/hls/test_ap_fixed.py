"""nnfab's own ap_fixed.h / ap_int.h (g++ C simulation) against FixedType, bit for bit.

One C++ program is generated and compiled per session; it reads commands on stdin
(cast a double to type k, cast between two types, arithmetic on two values) and prints
exact mantissas. Casts are checked against ``FixedType.to_mantissa`` (the contract,
itself tested against Fractions in tests/ir); the arithmetic results and their types
against Fractions and the documented width rules, written out here.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from nnfab.ir.types import FixedType, Overflow, Rounding

INCLUDE = Path(__file__).parents[3] / "src/nnfab/backends/hls/include"
GXX = shutil.which("g++")
pytestmark = pytest.mark.skipif(GXX is None, reason="g++ not installed")

ROUNDINGS = list(Rounding)
OVERFLOWS = list(Overflow)


def cpp(t: FixedType) -> str:
    """The C++ spelling of a type, written independently of the backend."""
    kind = "ap_fixed" if t.signed else "ap_ufixed"
    return f"{kind}<{t.width},{t.integer},{t.rounding.value},{t.overflow.value}>"


# ---------------------------------------------------------------- the types tested
def cast_types() -> list[FixedType]:
    types: list[FixedType] = []
    # every mode pair, signed and unsigned, on a few shapes (negative I, I > W, 1 bit)
    shapes = [(1, 1), (1, 0), (1, 3), (2, 1), (2, 2), (2, -1), (3, 2), (8, 3), (6, -2), (5, 9),
              (16, 6)]
    for (q, o), signed in itertools.product(itertools.product(ROUNDINGS, OVERFLOWS), (True, False)):
        for w, i in shapes:
            types.append(FixedType(w, i, signed, q, o))
    # every width 1..64, modes and binary points rotating
    for w in range(1, 65):
        for signed in (True, False):
            q = ROUNDINGS[(w + signed) % len(ROUNDINGS)]
            o = OVERFLOWS[(w // 7 + signed) % len(OVERFLOWS)]
            i = [w // 2, w, 0, -3, w + 5][w % 5]
            types.append(FixedType(w, i, signed, q, o))
    # wide types 65..128
    for w, i in [(65, 30), (80, 80), (100, 10), (127, 60), (128, 64), (128, 128), (96, -4)]:
        for signed, (q, o) in itertools.product(
            (True, False), [(Rounding.TRN, Overflow.WRAP), (Rounding.RND_CONV, Overflow.SAT),
                            (Rounding.RND_ZERO, Overflow.SAT_SYM)]
        ):
            types.append(FixedType(w, i, signed, q, o))
    return types


def pair_sources() -> list[FixedType]:
    return [
        FixedType(12, 4), FixedType(20, 8, False), FixedType(40, 10), FixedType(62, 30),
        FixedType(64, 20, False), FixedType(100, 40), FixedType(128, 64, False),
        FixedType(128, 1), FixedType(4, 10), FixedType(3, -5, False),
    ]


def pair_targets() -> list[FixedType]:
    out = []
    for k, (q, o) in enumerate(itertools.product(ROUNDINGS, OVERFLOWS)):
        signed = k % 2 == 0
        w, i = [(8, 3), (16, 6), (6, 6), (30, 2), (70, 30), (128, 60), (5, -1)][k % 7]
        out.append(FixedType(w, i, signed, q, o))
    return out


ARITH_TYPES = [
    FixedType(8, 3), FixedType(6, 2, False), FixedType(12, -2), FixedType(10, 14, False),
    FixedType(16, 6), FixedType(40, 20), FixedType(64, 32, False), FixedType(64, 10),
    FixedType(1, 1, False), FixedType(3, 0),
]


# ---------------------------------------------------------------- the harness program
def harness_source() -> str:
    casts, pairs, ariths = cast_types(), list(
        itertools.product(pair_sources(), pair_targets())
    ), list(itertools.product(ARITH_TYPES, ARITH_TYPES))
    lines = [
        '#include "ap_fixed.h"',
        "#include <cstdio>",
        "#include <cstdlib>",
        "#include <iostream>",
        "#include <string>",
        "using nnfab_ap::mantissa_string;",
        "template <class T> static void show(const T& v) {",
        '  std::cout << T::width << " " << T::iwidth << " " << T::sign_flag << " "',
        '            << mantissa_string(v) << "\\n";',
        "}",
        "template <class T> static void cast1(double x) {",
        "  T v = x;",
        '  std::printf("%s %a\\n", mantissa_string(v).c_str(), v.to_double());',
        "}",
        "template <class S, class T> static void cast2(double x) {",
        "  S s = x;",
        "  T t = s;",
        '  std::cout << mantissa_string(t) << "\\n";',
        "}",
        "template <class A, class B> static void arith(double x, double y) {",
        "  A a = x;",
        "  B b = y;",
        "  show(a + b); show(a - b); show(a * b); show(-a);",
        '  std::cout << (a < b) << (a <= b) << (a > b) << (a >= b) << (a == b) << (a != b)',
        '            << "\\n";',
        "  A c = a; c += b; show(c);",
        "  c = a; c -= b; show(c);",
        "}",
        "typedef void (*fn1)(double);",
        "typedef void (*fn2)(double, double);",
        "static const fn1 CASTS[] = {",
        *(f"  &cast1<{cpp(t)}>," for t in casts),
        "};",
        "static const fn1 PAIRS[] = {",
        *(f"  &cast2<{cpp(s)}, {cpp(t)}>," for s, t in pairs),
        "};",
        "static const fn2 ARITHS[] = {",
        *(f"  &arith<{cpp(a)}, {cpp(b)}>," for a, b in ariths),
        "};",
        "int main() {",
        "  char op;",
        "  int k;",
        "  std::string xs, ys;",
        "  while (std::cin >> op >> k >> xs) {",
        "    double x = std::strtod(xs.c_str(), nullptr);",
        "    if (op == 'c') CASTS[k](x);",
        "    else if (op == 'p') PAIRS[k](x);",
        "    else { std::cin >> ys; ARITHS[k](x, std::strtod(ys.c_str(), nullptr)); }",
        "  }",
        "  return 0;",
        "}",
    ]
    return "\n".join(lines) + "\n"


FLAGS = ["-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{INCLUDE}"]


@pytest.fixture(scope="session")
def harness() -> Path:
    """The harness binary, built once and cached in the temp dir by content hash.

    The c++14 build (-O1, so optimizer warnings show) is run; the c++17 one is
    checked warning-free alongside (syntax and template instantiation only).
    """
    source = harness_source()
    headers = "".join(p.read_text() for p in sorted(INCLUDE.glob("*.h")))
    key = hashlib.sha256((source + headers + GXX).encode()).hexdigest()[:16]
    work = Path(tempfile.gettempdir()) / f"nnfab-ap-harness-{key}"
    binary = work / "harness"
    if binary.exists():
        return binary
    work.mkdir(parents=True, exist_ok=True)
    src = work / "harness.cpp"
    src.write_text(source)
    partial = work / f"harness.{os.getpid()}"
    jobs = [
        subprocess.Popen(
            [GXX, *std_flags, *FLAGS, str(src)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for std_flags in (["-std=c++14", "-O1", "-o", str(partial)],
                          ["-std=c++17", "-fsyntax-only"])
    ]
    for job in jobs:
        _, err = job.communicate()
        assert job.returncode == 0, f"harness does not compile warning-free:\n{err[:5000]}"
    partial.replace(binary)
    return binary


def run(binary: Path, commands: list[str]) -> list[str]:
    done = subprocess.run(
        [str(binary)], input="\n".join(commands) + "\n", capture_output=True, text=True,
        check=True,
    )
    return done.stdout.splitlines()


# ---------------------------------------------------------------- test values
def values_for(t: FixedType, rng: np.random.Generator) -> list[float]:
    """Random and edge values for casts to ``t``: ties, grid points, range edges, extremes."""
    lsb = Fraction(2) ** -t.frac
    lo = Fraction(t.min_mantissa) * lsb
    hi = Fraction(t.max_mantissa) * lsb
    exact: list[Fraction] = [Fraction(0), lo, hi, lo - lsb, hi + lsb, lo - lsb / 2, hi + lsb / 2,
                             -hi, -hi - lsb / 2, 2 * hi + 2 * lsb, 2 * lo - lsb / 2]
    for k in (-3, -2, -1, 0, 1, 2, 5):
        exact += [(k + Fraction(1, 2)) * lsb, k * lsb, (k + Fraction(1, 4)) * lsb,
                  (k + Fraction(3, 4)) * lsb]
    for m in (t.max_mantissa, t.min_mantissa):
        exact += [(m + Fraction(1, 2)) * lsb, (m - Fraction(1, 2)) * lsb]
    out = [float(v) for v in exact]  # some of these round to the nearest double: fine
    span = float(hi - lo) if hi > lo else float(lsb)
    out += list(rng.uniform(float(lo) - span, float(hi) + span, 40))
    out += list(rng.normal(0.0, 4 * float(lsb), 10))
    out += [1e300, -1e300, 1e-300, -1e-300, 5e-324, 3.0e38, -7.5, 0.1, -0.1]
    neighbours = [np.nextafter(v, np.inf) for v in out[:20]] + [
        np.nextafter(v, -np.inf) for v in out[:20]
    ]
    return [float(v) for v in out + neighbours if np.isfinite(v)]


def expected_mantissas(t: FixedType, values: list[float]) -> list[str]:
    return [str(int(m)) for m in t.to_mantissa(np.array(values))]


# ---------------------------------------------------------------- tests
def test_cast_from_double_matches_fixedtype(harness: Path) -> None:
    rng = np.random.default_rng(1)
    commands, expected, labels = [], [], []
    doubles: list[tuple[FixedType, float]] = []
    for k, t in enumerate(cast_types()):
        vals = values_for(t, rng)
        commands += [f"c {k} {v.hex()}" for v in vals]
        expected += expected_mantissas(t, vals)
        labels += [f"{cpp(t)} <- {v!r}" for v in vals]
        doubles += [(t, v) for v in vals]
    got = run(harness, commands)
    assert len(got) == len(expected)
    bad = [
        f"{label}: C++ {g.split()[0]} FixedType {e}"
        for label, g, e in zip(labels, got, expected, strict=True)
        if g.split()[0] != e
    ]
    assert not bad, f"{len(bad)} mismatches, e.g.:\n" + "\n".join(bad[:20])
    # to_double: exact up to 53 bits, rounded toward zero beyond (as FixedType.quantize)
    bad = []
    for (t, v), g in zip(doubles, got, strict=True):
        want = float(t.quantize(np.array([v]))[0])
        if float.fromhex(g.split()[1]) != want:
            bad.append(f"{cpp(t)} <- {v!r}: to_double {g.split()[1]} FixedType {want!r}")
    assert not bad, f"{len(bad)} to_double mismatches, e.g.:\n" + "\n".join(bad[:20])


def test_cast_between_types_matches_fixedtype(harness: Path) -> None:
    rng = np.random.default_rng(2)
    commands, expected, labels = [], [], []
    for k, (src, dst) in enumerate(itertools.product(pair_sources(), pair_targets())):
        # values exactly on the source grid and inside its range, so the source cast is exact
        lo, hi = max(src.min_mantissa, -(2**52)), min(src.max_mantissa, 2**52)
        mants = [*rng.integers(lo, hi, 25, endpoint=True), lo, hi, 0, 1, -1 if lo < 0 else 2]
        # ties and near-ties of the target grid where the source can hold them
        step = dst.frac - src.frac
        if step < 0 and -step < 50:
            mants += [(2 * j + 1) << (-step - 1) for j in (-3, -1, 0, 1, 4)] if lo < 0 else [
                (2 * j + 1) << (-step - 1) for j in (0, 1, 4)
            ]
        mants = [int(m) for m in mants if lo <= m <= hi]
        vals = [float(np.ldexp(float(m), -src.frac)) for m in mants]
        commands += [f"p {k} {v.hex()}" for v in vals]
        expected += expected_mantissas(dst, vals)
        labels += [f"{cpp(src)} -> {cpp(dst)} value {v!r}" for v in vals]
    got = run(harness, commands)
    bad = [f"{lab}: C++ {g} FixedType {e}" for lab, g, e in zip(labels, got, expected, strict=True)
           if g != e]
    assert not bad, f"{len(bad)} mismatches, e.g.:\n" + "\n".join(bad[:20])


def ref_result_types(a: FixedType, b: FixedType) -> dict[str, tuple[int, int, bool]]:
    """(W, I, signed) of a+b, a-b, a*b and -a as UG1399 documents them."""
    ia = a.integer + (1 if b.signed and not a.signed else 0)
    ib = b.integer + (1 if a.signed and not b.signed else 0)
    i_sum = max(ia, ib) + 1
    f_sum = max(a.frac, b.frac)
    return {
        "add": (i_sum + f_sum, i_sum, a.signed or b.signed),
        "sub": (i_sum + f_sum, i_sum, True),
        "mul": (a.width + b.width, a.integer + b.integer, a.signed or b.signed),
        "neg": (a.width + 1, a.integer + 1, True),
    }


def ref_wrap_trn(value: Fraction, t: FixedType) -> int:
    """Mantissa of value cast to a truncating wrap-around type (floor, then modulo)."""
    m = (value * Fraction(2) ** t.frac).__floor__()
    m %= 1 << t.width
    if t.signed and m >= 1 << (t.width - 1):
        m -= 1 << t.width
    return m


def test_arithmetic_result_types_and_values(harness: Path) -> None:
    rng = np.random.default_rng(3)
    commands, cases = [], []

    def mantissas(t: FixedType) -> list[int]:
        lo, hi = max(t.min_mantissa, -(2**52)), min(t.max_mantissa, 2**52)  # exact doubles
        return [lo, hi, 0, *(int(v) for v in rng.integers(lo, hi, 4, endpoint=True))]

    for k, (a, b) in enumerate(itertools.product(ARITH_TYPES, ARITH_TYPES)):
        ma, mb = mantissas(a), mantissas(b)[::-1]
        for x, y in zip(ma, mb, strict=True):
            fx = Fraction(int(x)) * Fraction(2) ** -a.frac
            fy = Fraction(int(y)) * Fraction(2) ** -b.frac
            commands.append(f"a {k} {float(fx).hex()} {float(fy).hex()}")
            cases.append((a, b, fx, fy))
    got = run(harness, commands)
    assert len(got) == 7 * len(cases)
    for n, (a, b, fx, fy) in enumerate(cases):
        out = got[7 * n : 7 * n + 7]
        types = ref_result_types(a, b)
        exact = {"add": fx + fy, "sub": fx - fy, "mul": fx * fy, "neg": -fx}
        for line, op in zip(out[:4], ("add", "sub", "mul", "neg"), strict=True):
            w, i, s, m = line.split()
            where = f"{cpp(a)}({fx}) {op} {cpp(b)}({fy})"
            assert (int(w), int(i), s == "1") == types[op], where
            value = Fraction(int(m)) * Fraction(2) ** -(int(w) - int(i))
            assert value == exact[op], f"{where}: got {value}, exact {exact[op]}"
        flags = [fx < fy, fx <= fy, fx > fy, fx >= fy, fx == fy, fx != fy]
        assert out[4] == "".join(str(int(f)) for f in flags), f"compare {fx} {fy}"
        for line, value in zip(out[5:], (fx + fy, fx - fy), strict=True):
            w, i, s, m = line.split()
            if a.rounding is Rounding.TRN and a.overflow is Overflow.WRAP:
                assert int(m) == ref_wrap_trn(value, a), f"{cpp(a)} += / -= {cpp(b)}: {value}"


def test_wide_accumulation_wraps() -> None:
    """+= on 128-bit types (the sum needs 129 bits) compiles and wraps exactly."""
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("posix only")
    src = """
#include "ap_fixed.h"
#include <iostream>
int main() {
  ap_fixed<128, 100> acc = 0;
  ap_fixed<128, 100> big;
  big = ap_fixed<128, 100>(1.0);
  for (int k = 0; k < 99; ++k) big += big;   // 2^99, the largest power of two in range
  acc = big;
  acc += big;                                // 2^100 wraps to -2^100... then back
  std::cout << nnfab_ap::mantissa_string(acc) << "\\n";
  ap_uint<128> u = 0;
  u -= 1;                                    // wraps to 2^128 - 1
  std::cout << nnfab_ap::mantissa_string(u) << "\\n";
  return 0;
}
"""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wide.cpp"
        path.write_text(src)
        subprocess.run([GXX, "-std=c++14", *FLAGS, str(path), "-o", f"{tmp}/wide"], check=True)
        out = subprocess.run([f"{tmp}/wide"], capture_output=True, text=True, check=True)
    acc, u = out.stdout.split()
    expected_acc = ref_wrap_trn(Fraction(2) ** 100, FixedType(128, 100))
    assert int(acc) == expected_acc
    assert int(u) == 2**128 - 1
