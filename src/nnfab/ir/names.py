"""Identifier sanitizing: turn layer names into safe C++ / Verilog / file names."""

from __future__ import annotations

import re
import unicodedata


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


CPP_KEYWORDS = _words(
    """alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t
    char16_t char32_t class compl concept const consteval constexpr constinit const_cast
    continue co_await co_return co_yield decltype default delete do double dynamic_cast else
    enum explicit export extern false float for friend goto if inline int long mutable
    namespace new noexcept not not_eq nullptr operator or or_eq private protected public
    register reinterpret_cast requires return short signed sizeof static static_assert
    static_cast struct switch template this thread_local throw true try typedef typeid
    typename union unsigned using virtual void volatile wchar_t while xor xor_eq
    main std nnet hls ap_int ap_uint ap_fixed ap_ufixed"""
)
VERILOG_KEYWORDS = _words(
    """always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos config
    deassign default defparam design disable edge else end endcase endconfig endfunction
    endgenerate endmodule endprimitive endspecify endtable endtask event for force forever
    fork function generate genvar highz0 highz1 if ifnone incdir include initial inout input
    instance integer join large liblist library localparam macromodule medium module nand
    negedge nmos nor noshowcancelled not notif0 notif1 or output parameter pmos posedge
    primitive pull0 pull1 pulldown pullup pulsestyle_onevent pulsestyle_ondetect rcmos real
    realtime reg release repeat rnmos rpmos rtran rtranif0 rtranif1 scalared showcancelled
    signed small specify specparam strong0 strong1 supply0 supply1 table task time tran
    tranif0 tranif1 tri tri0 tri1 triand trior trireg unsigned use uwire vectored wait wand
    weak0 weak1 while wire wor xnor xor logic bit byte int shortint longint clk rst"""
) | _words(
    # SystemVerilog (IEEE 1800) adds these; Verilator reads .v files as SystemVerilog.
    """accept_on alias always_comb always_ff always_latch assert assume before bind bins
    binsof break chandle checker class clocking const constraint context continue cover
    covergroup coverpoint cross dist do endchecker endclass endclocking endgroup
    endinterface endpackage endprogram endproperty endsequence enum eventually expect
    export extends extern final first_match foreach forkjoin global iff ignore_bins
    illegal_bins implements implies import inside interconnect interface intersect
    join_any join_none let local matches modport nettype new nexttime null package packed
    priority program property protected pure rand randc randcase randsequence ref
    reject_on restrict return s_always s_eventually s_nexttime s_until s_until_with
    sequence shortreal soft solve static string strong struct super sync_accept_on
    sync_reject_on tagged this throughout timeprecision timeunit type typedef union unique
    unique0 until until_with untyped var virtual void wait_order weak wildcard with
    within"""
)


def sanitize(name: str, reserved: frozenset[str] = CPP_KEYWORDS | VERILOG_KEYWORDS) -> str:
    """A lower-risk identifier: ASCII letters, digits and ``_``, not starting with a digit.

    Unicode is transliterated where possible (``é`` -> ``e``), every other character
    becomes ``_``, runs of ``_`` collapse, and keywords get a ``_`` suffix.
    """
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^A-Za-z0-9_]", "_", text)
    text = re.sub(r"_+", "_", text).strip("_")
    if not text:
        text = "layer"
    if text[0].isdigit():
        text = "l_" + text
    if text in reserved or text.lower() in reserved:
        text += "_"
    return text


class Namespace:
    """Hands out unique sanitized identifiers; the same source name gets the same result."""

    def __init__(self, reserved: frozenset[str] = CPP_KEYWORDS | VERILOG_KEYWORDS) -> None:
        self._reserved = reserved
        self._by_source: dict[str, str] = {}
        self._used: set[str] = set()

    def __call__(self, source: str) -> str:
        if source in self._by_source:
            return self._by_source[source]
        base = sanitize(source, self._reserved)
        # "int_" + "_1" would contain "__", which C++ reserves: number the stem instead
        stem = base.rstrip("_")
        candidate, i = base, 1
        while candidate.lower() in self._used or candidate.lower() in self._reserved:
            candidate = f"{stem}_{i}"
            i += 1
        self._used.add(candidate.lower())
        self._by_source[source] = candidate
        return candidate
