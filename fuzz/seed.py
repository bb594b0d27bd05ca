#!/usr/bin/env python3
"""Seeds the fuzz corpora from the bpf_conformance suite and the benchmark
programs: corpus/asm_text gets every `-- asm` section (conformance dialect),
corpus/interp_bytes gets each vector as the interp_bytes target reads it
(one byte of slot count, the program, then the memory), corpus/jit_diff the
same with the blinding byte after the count (once plain, once blinded).

Assembly goes through the `bpfkit` binary: build it first with
`cargo build -p bpfkit-cli` in the repository root.

usage: python3 seed.py [CONFORMANCE_TESTS_DIR]
"""
import os
import pathlib
import subprocess
import sys
import tempfile

here = pathlib.Path(__file__).resolve().parent
root = here.parent
tests = pathlib.Path(
    sys.argv[1] if len(sys.argv) > 1
    else os.environ.get("BPFKIT_CONFORMANCE_DIR",
                        root.parent / "shared/conformance/bpf_conformance/tests"))
bpfkit = root / "target/debug/bpfkit"
asm_dir = here / "corpus/asm_text"
interp_dir = here / "corpus/interp_bytes"
jit_dir = here / "corpus/jit_diff"
for d in (asm_dir, interp_dir, jit_dir):
    d.mkdir(parents=True, exist_ok=True)


def sections(text):
    out, cur = {}, None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("--"):
            cur = s.lstrip("-").strip()
            out[cur] = []
        elif cur is not None:
            out[cur].append(line)
    return out


def assemble(asm):
    with tempfile.TemporaryDirectory() as d:
        src = pathlib.Path(d) / "p.asm"
        src.write_text(asm)
        r = subprocess.run([str(bpfkit), "asm", "--dialect", "conformance",
                            str(src), "-o", "-"], capture_output=True)
        return r.stdout if r.returncode == 0 else None


n = 0
for f in sorted(tests.glob("*.data")):
    sec = sections(f.read_text())
    asm = "\n".join(sec.get("asm", [])) + "\n"
    (asm_dir / (f.stem + ".asm")).write_text(asm)
    if "raw" in sec:
        prog = b"".join(int(l.strip(), 16).to_bytes(8, "little")
                        for l in sec["raw"] if l.strip() and not l.strip().startswith("#"))
    elif bpfkit.exists():
        prog = assemble(asm)
    else:
        prog = None
    if prog:
        mem = bytes.fromhex(" ".join(l for l in sec.get("mem", []) if not l.strip().startswith("#")))
        count = bytes([min(len(prog) // 8, 255)])
        (interp_dir / (f.stem + ".bin")).write_bytes(count + prog + mem)
        for blind in (0, 1):
            (jit_dir / f"{f.stem}.{blind}.bin").write_bytes(count + bytes([blind]) + prog + mem)
        n += 1
for p in sorted((root / "crates/vm/benches/programs").glob("*.asm")):
    (asm_dir / ("bench_" + p.name)).write_text(p.read_text())
print(f"{len(list(asm_dir.iterdir()))} asm_text seeds, {n} interp_bytes seeds, {2 * n} jit_diff seeds"
      + ("" if bpfkit.exists() else f" ({bpfkit} missing: raw sections only)"))
