"""The package for the board: one tar.gz of ``deploy/`` (bitfile, hwh or xclbin, the
driver, the test vectors and ``validate.py``)."""

from __future__ import annotations

import json
import logging
import tarfile
from pathlib import Path

from nnfab.accel.interface import BITFILE_STEM
from nnfab.errors import ConfigError

log = logging.getLogger(__name__)

PACKAGE_NAME = f"{BITFILE_STEM}_package"
"""The archive is ``<root>/nnfab_nn_package.tar.gz``; it unpacks into ``nnfab_nn_package/``."""
SOFTWARE = ("nnfab_driver.py", f"{BITFILE_STEM}.json", "validate.py", "X_test.npy",
            "y_test.npy")


def _needed(desc: dict) -> tuple[list[str], list[str]]:
    """(software files, build outputs) a complete package holds."""
    software = list(SOFTWARE)
    if desc["kind"] == "alveo":
        software.append("nnfab_xrt_driver.py")
        return software, [f"{BITFILE_STEM}.xclbin"]
    if desc["kind"] == "coyote":
        return software, [f"{BITFILE_STEM}.bit"]
    return software, [f"{BITFILE_STEM}.bit", f"{BITFILE_STEM}.hwh"]


def package(root: str | Path, *, require_bitfile: bool = True,
            output: str | Path | None = None) -> Path:
    """Write the package of a written accelerator project; returns the archive's path.

    Missing build outputs are an error naming them and the command that builds them;
    with ``require_bitfile=False`` the package is written without them and holds
    ``MISSING.txt`` saying what to add (for trying the software side first).
    """
    root = Path(root)
    deploy = root / "deploy"
    doc_path = deploy / f"{BITFILE_STEM}.json"
    if not doc_path.is_file():
        raise ConfigError(f"{root} has no deploy/{doc_path.name}: write the accelerator project "
                          "first (hm.write() with an accelerator backend)")
    desc = json.loads(doc_path.read_text())
    software, outputs = _needed(desc)
    absent_sw = [n for n in software if not (deploy / n).is_file()]
    if absent_sw:
        raise ConfigError(f"{deploy}: missing {', '.join(absent_sw)}; write the project again "
                          "(hm.write())")
    absent = [n for n in outputs if not (deploy / n).is_file()]
    script = root / "build_bitfile.sh"
    if absent and require_bitfile:
        raise ConfigError(
            f"{deploy}: missing build output(s) {', '.join(absent)}; build the bitfile first: "
            f"hm.build(bitfile=True) or, on a machine with the vendor tools, bash {script}"
        )
    archive = Path(output) if output is not None else root / f"{PACKAGE_NAME}.tar.gz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".part")
    with tarfile.open(tmp, "w:gz") as tar:
        for name in software + [n for n in outputs if n not in absent]:
            tar.add(deploy / name, arcname=f"{PACKAGE_NAME}/{name}")
        if absent:
            note = (f"This package lacks {', '.join(absent)}: build them with "
                    f"`bash build_bitfile.sh` in the nnfab project ({root}) on a machine with "
                    "the vendor tools, then copy them here.\n")
            missing = deploy / "MISSING.txt"
            missing.write_text(note)
            tar.add(missing, arcname=f"{PACKAGE_NAME}/MISSING.txt")
            missing.unlink()
    tmp.replace(archive)
    if absent:
        log.warning("package %s written without %s (not built yet)", archive, ", ".join(absent))
    else:
        log.info("package %s written", archive)
    return archive
