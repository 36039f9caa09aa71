"""Check a generated Vivado Tcl script without Vivado: run it in the system ``tclsh``.

The script runs in a plain Tcl interpreter in which every command Tcl does not know
(``create_project``, ``create_bd_cell``, ``launch_runs`` ...) is caught by an ``unknown``
handler that records it with its arguments and the script line, and returns a plausible
value (``get_bd_pins x`` -> ``x``, ``get_property PROGRESS`` -> ``100%``, ``make_wrapper``
-> a wrapper path inside the Vivado project ...). So the script's own control flow runs:
its ``if``/``foreach``/``proc``/``error`` and the Tcl it computes paths with. Writes to the
file system (``file copy``/``mkdir``/``delete``, ``exec``, ``open`` for writing) are
recorded, never done.

Checked: the script parses and runs to its end without a Tcl error; every file it adds,
reads or sources exists (files inside the Vivado project directory that ``create_project``
names, and the expected IP repository, count as produced by the tools); ``create_project``
uses the expected part; the board part, when given, is set; the IP repository, when
given, is the one set with ``ip_repo_paths``. Commands that are neither Tcl nor in a list
of known Vivado commands become warnings (a typo would fail in Vivado).

Not checked (no Vivado here): that Vivado accepts the arguments, IP names, pin names and
configuration values.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from nnfab.errors import BackendError

log = logging.getLogger(__name__)

TIMEOUT_S = 20.0
_VIVADO_COMMAND_NAMES = """
add_files apply_bd_automation assign_bd_address close_bd_design close_project connect_bd_intf_net
connect_bd_net create_bd_addr_seg create_bd_cell create_bd_design create_bd_intf_pin
create_bd_intf_port create_bd_net create_bd_pin create_bd_port create_fileset create_ip
create_project current_bd_design current_bd_instance current_fileset current_project
delete_bd_objs exclude_bd_addr_seg generate_target get_bd_addr_segs get_bd_addr_spaces
get_bd_cells get_bd_designs get_bd_intf_nets get_bd_intf_pins get_bd_intf_ports get_bd_nets
get_bd_pins get_bd_ports get_board_parts get_boards get_filesets get_files get_ipdefs get_ips
get_param get_parts get_property get_runs import_files include_bd_addr_seg launch_runs
list_property make_bd_intf_pins_external make_bd_pins_external make_wrapper open_bd_design
open_project open_run read_bd read_checkpoint read_ip read_verilog read_vhdl read_xdc
regenerate_bd_layout report_ip_status report_timing_summary report_utilization reset_run
save_bd_design set_param set_property update_compile_order update_ip_catalog upgrade_ip
validate_bd_design version wait_on_run write_bitstream write_hw_platform write_hwdef
"""
VIVADO_COMMANDS = frozenset(_VIVADO_COMMAND_NAMES.split())
"""Commands outside Tcl that the check accepts without a warning."""

_PRELUDE = r"""
namespace eval ::nnfab_check {
    variable script [file normalize [lindex $argv 0]]
    variable out [open [lindex $argv 1] w]
    variable produced {}
    foreach p [lrange $argv 2 end] { lappend produced [file normalize $p] }
    variable proj_dir ""
    variable proj_name project
    variable bd_name design
    variable valued {-part -fileset -of_objects -filter -vlnv -type -reference -config -rule
        -dict -objects -jobs -to_step -name -dir -library -mode -files -offset -range
        -target_address_space -from -to -timeout -copy_to -encoding -regexp_filter -quiet_value}
}
proc ::nnfab_check::esc {s} { string map [list \\ \\\\ \n \\n \t \\t \r \\r] $s }
proc ::nnfab_check::line {} {
    for {set i [expr {[info frame] - 1}]} {$i > 0} {incr i -1} {
        set f [info frame $i]
        if {[dict exists $f file] && [dict exists $f line]
                && [file normalize [dict get $f file]] eq $::nnfab_check::script} {
            return [dict get $f line]
        }
    }
    return 0
}
proc ::nnfab_check::emit {kind args} {
    set fields [list $kind [::nnfab_check::line]]
    foreach a $args { lappend fields [::nnfab_check::esc $a] }
    puts $::nnfab_check::out [join $fields \t]
    flush $::nnfab_check::out
}
proc ::nnfab_check::positional {words} {
    set pos {}
    set skip 0
    foreach w $words {
        if {$skip} { set skip 0; continue }
        if {[string index $w 0] eq "-" && [string length $w] > 1 && ![string is double $w]} {
            if {$w in $::nnfab_check::valued} { set skip 1 }
            continue
        }
        lappend pos $w
    }
    return $pos
}
proc ::nnfab_check::generated {path} {
    set p [file normalize $path]
    set roots $::nnfab_check::produced
    if {$::nnfab_check::proj_dir ne ""} { lappend roots $::nnfab_check::proj_dir }
    foreach r $roots {
        if {$p eq $r || [string first "$r/" $p] == 0} { return 1 }
    }
    return 0
}
proc ::nnfab_check::check_files {cmd words} {
    foreach w [::nnfab_check::positional $words] {
        foreach f $w {
            set p [file normalize $f]
            set exists [expr {[::nnfab_check::real_file exists $p] ? 1 : 0}]
            ::nnfab_check::emit FILE $cmd $p $exists [::nnfab_check::generated $p]
        }
    }
}
proc ::nnfab_check::first {words {default obj}} {
    set pos [::nnfab_check::positional $words]
    if {[llength $pos]} { return [lindex $pos 0] }
    return $default
}

namespace eval ::nnfab_check::stub {}
proc ::nnfab_check::stub::create_project {args} {
    set pos [::nnfab_check::positional $args]
    set ::nnfab_check::proj_name [lindex $pos 0]
    set dir [expr {[llength $pos] > 1 ? [lindex $pos 1] : $::nnfab_check::proj_name}]
    set ::nnfab_check::proj_dir [file normalize $dir]
    return $::nnfab_check::proj_name
}
proc ::nnfab_check::stub::current_project {args} { return $::nnfab_check::proj_name }
proc ::nnfab_check::stub::create_bd_design {args} {
    set ::nnfab_check::bd_name [::nnfab_check::first $args design]
    return $::nnfab_check::bd_name
}
proc ::nnfab_check::stub::current_bd_design {args} { return $::nnfab_check::bd_name }
proc ::nnfab_check::stub::create_bd_cell {args} {
    return "/[lindex [::nnfab_check::positional $args] end]"
}
foreach c {create_bd_port create_bd_intf_port create_bd_net create_bd_pin create_bd_intf_pin
        get_runs get_filesets get_ips get_ipdefs get_board_parts get_parts
        get_bd_cells get_bd_pins get_bd_intf_pins get_bd_ports get_bd_intf_ports get_bd_nets
        get_bd_intf_nets get_bd_addr_spaces get_bd_addr_segs get_boards get_bd_designs} {
    proc ::nnfab_check::stub::$c {args} { return [::nnfab_check::first $args] }
}
proc ::nnfab_check::stub::current_fileset {args} { return sources_1 }
proc ::nnfab_check::stub::version {args} { return 2023.2 }
proc ::nnfab_check::stub::get_files {args} {
    set pattern [::nnfab_check::first $args file]
    if {[::nnfab_check::real_file isfile $pattern]} { return [file normalize $pattern] }
    set tail [file tail [string map {* x ? x} $pattern]]
    set prj [expr {$::nnfab_check::proj_dir eq "" ? [pwd] : $::nnfab_check::proj_dir}]
    set bd $::nnfab_check::bd_name
    return [file join $prj $::nnfab_check::proj_name.srcs sources_1 bd $bd $tail]
}
proc ::nnfab_check::stub::make_wrapper {args} {
    set bd $::nnfab_check::bd_name
    return [file join $::nnfab_check::proj_dir $::nnfab_check::proj_name.gen sources_1 bd $bd \
        hdl ${bd}_wrapper.v]
}
proc ::nnfab_check::stub::get_property {args} {
    set pos [::nnfab_check::positional $args]
    set prop [string toupper [lindex $pos 0]]
    set obj [lindex $pos 1]
    switch -glob -- $prop {
        PROGRESS { return 100% }
        STATUS { return "write_bitstream Complete!" }
        DIRECTORY { return [file join $::nnfab_check::proj_dir \
            $::nnfab_check::proj_name.runs $obj] }
        NAME { return $obj }
        STATS.* { return 0.100 }
        NEEDS_REFRESH { return 0 }
    }
    return ""
}
proc ::nnfab_check::stub::set_property {args} {
    set pos [::nnfab_check::positional $args]
    if {[string tolower [lindex $pos 0]] eq "ip_repo_paths"} {
        foreach p [lindex $pos 1] { ::nnfab_check::emit IPREPO [file normalize $p] }
    }
    return ""
}
foreach c {add_files read_verilog read_vhdl read_xdc read_ip read_bd import_files
        read_checkpoint} {
    proc ::nnfab_check::stub::$c {args} [string map [list @C@ $c] {
        ::nnfab_check::check_files @C@ $args
        return [lindex [::nnfab_check::positional $args] 0]
    }]
}

proc unknown {cmd args} {
    ::nnfab_check::emit CALL $cmd {*}$args
    set stub ::nnfab_check::stub::$cmd
    if {[llength [info commands $stub]]} { return [$stub {*}$args] }
    return ""
}
rename file ::nnfab_check::real_file
proc file {sub args} {
    switch -- $sub {
        copy - delete - mkdir - rename - link {
            ::nnfab_check::emit FILEOP $sub {*}$args
            return ""
        }
        exists - isfile - isdirectory - readable - writable {
            if {[::nnfab_check::generated [lindex $args end]]} { return 1 }
        }
    }
    return [::nnfab_check::real_file $sub {*}$args]
}
rename exec ::nnfab_check::real_exec
proc exec {args} { ::nnfab_check::emit FILEOP exec {*}$args; return "" }
rename open ::nnfab_check::real_open
proc open {name {mode r} args} {
    if {[string match {*[wa+]*} $mode] || [string match {*WRONLY*} $mode]
            || [string match {*RDWR*} $mode]} {
        ::nnfab_check::emit FILEOP open $name $mode
        return [::nnfab_check::real_open /dev/null w]
    }
    return [::nnfab_check::real_open $name $mode {*}$args]
}
rename source ::nnfab_check::real_source
proc source {args} {
    ::nnfab_check::check_files source $args
    set f [lindex [::nnfab_check::positional $args] end]
    if {[::nnfab_check::real_file isfile $f]} { uplevel #0 [list ::nnfab_check::real_source $f] }
    return ""
}
rename exit ::nnfab_check::real_exit
proc exit {{code 0}} { return -code error -errorcode [list NNFAB_EXIT $code] "exit $code" }

set ::argv {}
set ::argc 0
if {[catch {uplevel #0 [list ::nnfab_check::real_source $::nnfab_check::script]} msg opts]} {
    set code [dict get $opts -errorcode]
    if {[lindex $code 0] eq "NNFAB_EXIT" && [lindex $code 1] == 0} {
        ::nnfab_check::emit DONE
    } else {
        ::nnfab_check::emit ERROR $msg [dict get $opts -errorinfo]
    }
} else {
    ::nnfab_check::emit DONE
}
close $::nnfab_check::out
::nnfab_check::real_exit 0
"""


@dataclass
class TclCall:
    """One Vivado command the script ran (in the stub interpreter)."""

    line: int
    name: str
    args: list[str]

    def option(self, flag: str) -> str | None:
        """The value after ``flag`` (``-part``), or None."""
        for i, a in enumerate(self.args[:-1]):
            if a == flag:
                return self.args[i + 1]
        return None


@dataclass
class TclCheck:
    """What ``check_tcl`` found; ``ok`` when the script ran and no check failed."""

    path: Path
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    calls: list[TclCall] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    file_ops: list[tuple[str, list[str]]] = field(default_factory=list)
    ip_repos: list[Path] = field(default_factory=list)
    finished: bool = False
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.skipped is None and self.finished and not self.errors

    def calls_to(self, name: str) -> list[TclCall]:
        return [c for c in self.calls if c.name == name]

    @property
    def copies(self) -> list[tuple[Path, Path]]:
        """``file copy`` (source, destination) pairs, ``-force`` dropped."""
        out = []
        for op, args in self.file_ops:
            if op == "copy":
                paths = [a for a in args if not a.startswith("-")]
                if len(paths) >= 2:
                    out.append((Path(paths[-2]), Path(paths[-1])))
        return out

    def raise_for_errors(self) -> None:
        """``BackendError`` listing every failed check (nothing when skipped or ok)."""
        if self.errors:
            raise BackendError(f"Tcl check of {self.path} failed:\n  " + "\n  ".join(self.errors))


def find_tclsh() -> Path | None:
    """``tclsh`` (``NNFAB_TCLSH`` overrides), or None."""
    override = os.environ.get("NNFAB_TCLSH")
    found = shutil.which(override) if override else (shutil.which("tclsh") or
                                                        shutil.which("tclsh8.6"))
    return Path(found) if found else None


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1),
                                                                            m.group(1)), s)


def _norm(p: str | Path) -> Path:
    return Path(os.path.normpath(os.path.abspath(p)))


def check_tcl(path: str | Path, *, part: str, board_part: str | None = None,
              ip_repo: str | Path | None = None, root: str | Path | None = None,
              produced: list[str | Path] | None = None, timeout: float = TIMEOUT_S,
              raise_on_error: bool = False) -> TclCheck:
    """Run the Vivado script ``path`` in ``tclsh`` with stub Vivado commands; see the module
    docstring for what is checked.

    ``root``: the directory the script is run from (Vivado's working directory; default:
    three levels up, ``<root>/accel/vivado/x.tcl`` -> ``<root>``).
    ``ip_repo``: the IP repository the script must set (it counts as existing, as an
    earlier step exports it). ``produced``: more paths that count as existing.
    Errors name the script line and command. Without tclsh the result is ``skipped``
    (with a warning), never ok.
    """
    path = _norm(path)
    result = TclCheck(path=path)
    if not path.is_file():
        result.errors.append(f"{path}: no such script")
        if raise_on_error:
            result.raise_for_errors()
        return result
    run_dir = _norm(root) if root is not None else path.parent.parent.parent
    tclsh = find_tclsh()
    if tclsh is None:
        result.skipped = ("tclsh was not found on PATH (install tcl, e.g. apt-get install tcl, or "
                          "set NNFAB_TCLSH); the Tcl script was not checked")
        log.warning("%s: %s", path, result.skipped)
        return result
    expected_repo = _norm(run_dir / ip_repo) if ip_repo is not None else None
    extra = [str(_norm(run_dir / p)) for p in (produced or [])]
    if expected_repo is not None:
        extra.append(str(expected_repo))
    with tempfile.TemporaryDirectory(prefix="nnfab_tclcheck_") as tmp:
        prelude = Path(tmp) / "prelude.tcl"
        prelude.write_text(_PRELUDE)
        record = Path(tmp) / "record.txt"
        try:
            proc = subprocess.run([str(tclsh), str(prelude), str(path), str(record), *extra],
                                  cwd=run_dir, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            result.errors.append(f"{path}: the script did not finish in {timeout:.0f} s under "
                                 "tclsh (an endless loop?)")
            if raise_on_error:
                result.raise_for_errors()
            return result
        lines = record.read_text().splitlines() if record.is_file() else []
    if proc.returncode != 0 and not lines:
        result.errors.append(f"{path}: tclsh failed ({proc.returncode}): {proc.stderr.strip()}")
    _parse(result, lines)
    _check(result, part=part, board_part=board_part, ip_repo=expected_repo)
    if raise_on_error:
        result.raise_for_errors()
    return result


def _parse(result: TclCheck, lines: list[str]) -> None:
    for raw in lines:
        kind, line_s, *fields = [_unescape(f) for f in raw.split("\t")]
        line = int(line_s) if line_s.isdigit() else 0
        where = f"{result.path.name}:{line}"
        if kind == "CALL":
            call = TclCall(line, fields[0], fields[1:])
            result.calls.append(call)
            if call.name not in VIVADO_COMMANDS:
                result.warnings.append(f"{where}: {call.name!r} is neither Tcl nor a Vivado "
                                       "command nnfab knows (a typo?)")
        elif kind == "FILE":
            cmd, p, exists, generated = fields
            result.files.append(Path(p))
            if exists != "1" and generated != "1":
                result.errors.append(f"{where}: {cmd}: file {p} does not exist")
        elif kind == "FILEOP":
            result.file_ops.append((fields[0], fields[1:]))
        elif kind == "IPREPO":
            result.ip_repos.append(Path(fields[0]))
        elif kind == "ERROR":
            msg, info = fields
            result.errors.append(_describe_error(result.path, msg, info))
        elif kind == "DONE":
            result.finished = True


def _describe_error(path: Path, msg: str, info: str) -> str:
    """``script:line: Tcl error: msg (in: command)`` from Tcl's errorInfo."""
    line = "?"
    for m in re.finditer(r'\(file "([^"]*)" line (\d+)\)', info):
        if _norm(m.group(1)) == path:
            line = m.group(2)
            break
    cmd = re.search(r'(?:while executing|invoked from within)\n"([^\n]*)', info)
    where = f" (in: {cmd.group(1)[:120]})" if cmd else ""
    return f"{path.name}:{line}: Tcl error: {msg}{where}"


def _check(result: TclCheck, *, part: str, board_part: str | None,
           ip_repo: Path | None) -> None:
    if not result.finished and not any("Tcl error" in e for e in result.errors):
        result.errors.append(f"{result.path.name}: the script did not run to its end")
    if not result.finished:
        return
    name = result.path.name
    projects = result.calls_to("create_project")
    if not projects:
        result.errors.append(f"{name}: the script never calls create_project")
    for call in projects:
        got = call.option("-part")
        if got != part:
            result.errors.append(f"{name}:{call.line}: create_project uses part {got!r}, "
                                 f"expected {part!r}")
    if len(projects) > 1:
        result.errors.append(f"{name}: create_project is called {len(projects)} times")
    board_sets = [c for c in result.calls_to("set_property")
                  if c.args and c.args[0].lower() == "board_part"]
    if board_part is not None:
        if not board_sets:
            result.errors.append(f"{name}: the board part {board_part!r} is never set "
                                 "(set_property board_part ... [current_project])")
        for call in board_sets:
            got = call.args[1] if len(call.args) > 1 else None
            if got != board_part:
                result.errors.append(f"{name}:{call.line}: board_part is {got!r}, expected "
                                     f"{board_part!r}")
    if ip_repo is not None:
        if not result.ip_repos:
            result.errors.append(f"{name}: the script never sets ip_repo_paths (expected "
                                 f"{ip_repo})")
        for repo in result.ip_repos:
            if _norm(repo) != ip_repo:
                result.errors.append(f"{name}: ip_repo_paths is {repo}, expected {ip_repo}")
