//! bpfkit's JIT against every peer in one run: bpfkit's interpreter, rbpf's
//! JIT, ubpf's JIT and interpreter, the kernel's JIT and native code, on the
//! workloads of `bpf/bench/jit_workloads.h`; Markdown tables of time per run,
//! ratios, and compile time (the ones BENCHMARKS.md shows).
//!
//! `cargo bench -p bpfkit-vm --bench jit_report [-- WORKLOAD...]`
//!
//! Every engine runs the same C source on the same 2048-byte input:
//! - bpfkit (JIT and interpreter), rbpf 0.4's JIT and ubpf run the `raw_NAME`
//!   program of `bpf/bench/jit_workloads.bpf.o` (r1 = the input);
//! - the kernel runs its `xdp_NAME` program (the same body after one packet
//!   bounds check) through BPF_PROG_TEST_RUN with `repeat`; it needs root,
//!   and the column says why it is empty otherwise;
//! - native code is the same header compiled for the host by `clang-19 -O2`
//!   (`$CLANG` overrides) into a shared object in a temporary directory at
//!   start-up, loaded with dlopen; the input reaches it through a pointer, so
//!   nothing folds to a constant;
//! - ubpf (built outside this repository) runs when `BPFKIT_UBPF_DRIVER`
//!   names a driver program: `DRIVER PROG.bin INPUT.mem` prints
//!   `ok jit_r0=R interp_r0=R load_ns=F compile_ns=F code_bytes=N`, then
//!   answers each stdin line `jit` or `interp` with the ns/run of one sample
//!   of about 10 ms in its thread CPU time (BENCHMARKS.md says how the one
//!   measured was built).
//!
//! Before timing, every engine's r0 is checked against native code's (the
//! kernel's 32-bit retval against its low half; the workloads return 32-bit
//! digests); a mismatch is reported as an error and the bench exits with
//! status 1. Then, after a warm-up, each engine is timed in samples of about
//! 10 ms, round-robin over the engines so all see the same machine, and the
//! best sample is kept. Samples are thread CPU time for the userspace engines;
//! the kernel's is its own mean duration per run (wall clock inside the
//! test-run loop, preemption excluded). `BPFKIT_BENCH_SAMPLES=N` sets the
//! number of samples per engine (30). With `BPFKIT_BENCH_DUMP=DIR`, each
//! workload's program (`NAME.bin`), input (`NAME.mem`) and expected r0 and
//! instruction count (`NAME.expect`) and bpfkit's machine code (`NAME.x86`) are
//! kept in DIR.
//!
//! Compile time is the best of 50 compilations, in thread CPU time: bpfkit
//! `Jit::new` (after `Program::new`), rbpf `jit_compile` (after
//! `EbpfVmRaw::new`, which runs rbpf's verifier), ubpf `ubpf_compile` (after
//! `ubpf_load`), per 1,000 instruction slots of the program.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod timing;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod bench {
    use bpfkit_vm::{Helpers, Interpreter, Jit, Program};
    use std::cell::RefCell;
    use std::hint::black_box;
    use std::io::{BufRead, BufReader, Write};
    use std::path::{Path, PathBuf};
    use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
    use std::rc::Rc;
    use std::time::Instant;

    /// The workloads, in the order of `WL_FOR_EACH` in the header.
    const WORKLOADS: [&str; 8] = [
        "alu", "prime", "switch", "unrolled", "stack", "memread", "fnv", "call",
    ];
    /// `WL_INPUT` in the header.
    const INPUT: usize = 2048;
    use crate::timing::{SAMPLE_NS, WARMUP};
    const COMPILES: usize = 50;

    fn bpf_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bpf/bench")
    }

    /// The input: fixed pseudo-random bytes (splitmix64).
    fn input() -> Vec<u8> {
        let mut s = 0x0123_4567_89ab_cdefu64;
        let mut out = Vec::with_capacity(INPUT);
        while out.len() < INPUT {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            out.extend_from_slice(&z.to_le_bytes());
        }
        out
    }

    /// Something that yields one sample: the time of one run, in ns.
    trait Sampler {
        fn sample(&mut self) -> Result<f64, String>;
    }

    /// A userspace engine run in this thread.
    struct Local<F: FnMut() -> u64> {
        run: F,
        reps: u64,
    }

    impl<F: FnMut() -> u64> Local<F> {
        fn new(mut run: F) -> Self {
            let reps = crate::timing::reps_per_sample(&mut run);
            Local { run, reps }
        }
    }

    impl<F: FnMut() -> u64> Sampler for Local<F> {
        fn sample(&mut self) -> Result<f64, String> {
            Ok(crate::timing::sample(&mut self.run, self.reps))
        }
    }

    /// The kernel's JIT through BPF_PROG_TEST_RUN with `repeat`.
    struct Kernel<'a> {
        prog: bpfkit_kernel::Program,
        input: &'a [u8],
        reps: u32,
    }

    impl Kernel<'_> {
        fn run(&self, repeat: u32) -> Result<bpfkit_kernel::TestRunOutput, String> {
            self.prog
                .test_run(&bpfkit_kernel::TestRun::new(self.input).repeat(repeat))
                .map_err(|e| e.to_string())
        }
    }

    impl Sampler for Kernel<'_> {
        fn sample(&mut self) -> Result<f64, String> {
            Ok(self.run(self.reps)?.duration_ns as f64)
        }
    }

    /// The ubpf driver, one process per workload.
    struct Ubpf {
        child: Child,
        stdin: ChildStdin,
        stdout: BufReader<ChildStdout>,
    }

    impl Ubpf {
        fn ask(&mut self, what: &str) -> Result<String, String> {
            writeln!(self.stdin, "{what}").map_err(|e| format!("ubpf driver: {e}"))?;
            self.stdin
                .flush()
                .map_err(|e| format!("ubpf driver: {e}"))?;
            let mut line = String::new();
            self.stdout
                .read_line(&mut line)
                .map_err(|e| format!("ubpf driver: {e}"))?;
            if line.is_empty() {
                return Err("ubpf driver: exited".into());
            }
            Ok(line.trim().to_string())
        }
    }

    impl Drop for Ubpf {
        fn drop(&mut self) {
            let _ = writeln!(self.stdin, "quit");
            let _ = self.stdin.flush();
            let _ = self.child.wait();
        }
    }

    struct UbpfSampler {
        driver: Rc<RefCell<Ubpf>>,
        what: &'static str,
    }

    impl Sampler for UbpfSampler {
        fn sample(&mut self) -> Result<f64, String> {
            let line = self.driver.borrow_mut().ask(self.what)?;
            line.parse()
                .map_err(|_| format!("ubpf driver: unexpected answer `{line}`"))
        }
    }

    /// What ubpf's driver reported on start-up.
    struct UbpfStart {
        jit_r0: u64,
        interp_r0: u64,
        load_ns: f64,
        compile_ns: f64,
        code_bytes: u64,
    }

    fn start_ubpf(driver: &Path, bin: &Path, mem: &Path) -> Result<(Ubpf, UbpfStart), String> {
        let mut child = Command::new(driver)
            .arg(bin)
            .arg(mem)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", driver.display()))?;
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .map_err(|e| format!("ubpf driver: {e}"))?;
        let u = Ubpf {
            child,
            stdin,
            stdout,
        };
        let line = line.trim();
        let Some(rest) = line.strip_prefix("ok ") else {
            return Err(format!("ubpf driver: {line}"));
        };
        let field = |name: &str| -> Result<&str, String> {
            rest.split(' ')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .ok_or_else(|| format!("ubpf driver: no {name} in `{line}`"))
        };
        let num = |name: &str| -> Result<f64, String> {
            field(name)?
                .parse()
                .map_err(|_| format!("ubpf driver: bad {name} in `{line}`"))
        };
        let int = |name: &str| -> Result<u64, String> {
            field(name)?
                .parse()
                .map_err(|_| format!("ubpf driver: bad {name} in `{line}`"))
        };
        let start = UbpfStart {
            jit_r0: int("jit_r0")?,
            interp_r0: int("interp_r0")?,
            load_ns: num("load_ns")?,
            compile_ns: num("compile_ns")?,
            code_bytes: int("code_bytes")?,
        };
        Ok((u, start))
    }

    /// The workloads compiled for the host, loaded with dlopen.
    struct Native {
        handle: *mut libc::c_void,
    }

    type NativeFn = unsafe extern "C" fn(*const u8) -> u64;

    impl Native {
        fn build() -> Result<Native, String> {
            let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang-19".into());
            let dir =
                std::env::temp_dir().join(format!("bpfkit-jit-native-{}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let header = bpf_dir().join("jit_workloads.h");
            let src = dir.join("native.c");
            let so = dir.join("native.so");
            std::fs::write(
                &src,
                format!(
                    "#include \"{}\"\n\
                     #define NATIVE(name, fn) \\\n\
                     wl_u64 native_##name(const wl_u8 *p) {{ return fn(p); }}\n\
                     WL_FOR_EACH(NATIVE)\n",
                    header.display()
                ),
            )
            .map_err(|e| e.to_string())?;
            let out = Command::new(&clang)
                .args(["-O2", "-fPIC", "-shared", "-o"])
                .arg(&so)
                .arg(&src)
                .output()
                .map_err(|e| format!("cannot run {clang}: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "{clang} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let path = std::ffi::CString::new(so.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: dlopen of a shared object we just built; its
            // initialisers are the compiler's only.
            let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
            let _ = std::fs::remove_dir_all(&dir);
            if handle.is_null() {
                return Err("dlopen of the native workloads failed".into());
            }
            Ok(Native { handle })
        }

        fn get(&self, name: &str) -> NativeFn {
            let sym = std::ffi::CString::new(format!("native_{name}")).unwrap();
            // SAFETY: the handle is open; the symbol is a function of this
            // type (the wrapper defines it).
            unsafe {
                let f = libc::dlsym(self.handle, sym.as_ptr());
                assert!(!f.is_null(), "native_{name} missing");
                std::mem::transmute::<*mut libc::c_void, NativeFn>(f)
            }
        }
    }

    /// Engines, in table order.
    const ENGINES: [&str; 7] = [
        "bpfkit JIT",
        "bpfkit interp",
        "rbpf JIT",
        "ubpf JIT",
        "ubpf interp",
        "kernel JIT",
        "native",
    ];
    const BPFKIT: usize = 0;
    const INTERP: usize = 1;
    const RBPF: usize = 2;
    const UBPF: usize = 3;
    const UBPF_I: usize = 4;
    const KERNEL: usize = 5;
    const NATIVE: usize = 6;

    struct Row {
        name: &'static str,
        insns: u64,
        slots: usize,
        /// Best ns/run per engine (None: not measured).
        ns: [Option<f64>; 7],
        /// ns per 1,000 slots: compile, load + compile (bpfkit, rbpf, ubpf).
        compile: [Option<(f64, f64)>; 3],
        code_bytes: [Option<u64>; 2],
    }

    fn best_of(n: usize, mut f: impl FnMut() -> (f64, f64)) -> (f64, f64) {
        let (mut a, mut b) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..n {
            let (x, y) = f();
            a = a.min(x);
            b = b.min(y);
        }
        (a, b)
    }

    #[allow(clippy::too_many_arguments)]
    fn workload(
        name: &'static str,
        obj: &bpfkit_object::ObjectFile,
        data: &[u8],
        native: &Result<Native, String>,
        kernel_ok: &Result<(), String>,
        ubpf_driver: Option<&Path>,
        dump: &Path,
        samples: usize,
        errors: &mut Vec<String>,
        notes: &mut Vec<String>,
    ) -> Row {
        let raw = obj
            .program(&format!("raw_{name}"))
            .unwrap_or_else(|| panic!("raw_{name} missing from the object"));
        let slots = raw.insns.clone();
        let bytes = bpfkit_isa::slots_to_bytes(&slots);
        let mut row = Row {
            name,
            insns: 0,
            slots: slots.len(),
            ns: [None; 7],
            compile: [None; 3],
            code_bytes: [None; 2],
        };
        // A wrong result is an error; an engine that cannot take the program
        // is a note.
        let mut fail = |engine: &str, msg: String| errors.push(format!("{name}: {engine}: {msg}"));
        let mut skip = |engine: &str, msg: String| notes.push(format!("{name}: {engine}: {msg}"));

        // The reference: native code, or else bpfkit's interpreter.
        let native_fn = native.as_ref().ok().map(|n| n.get(name));
        let prog = Program::new(&slots).expect("raw program loads in bpfkit");
        let helpers = Helpers::new();
        let mut interp = Interpreter::new(&prog, &helpers).expect("interpreter");
        let mut mem_i = data.to_vec();
        let out_i = interp.run(&mut mem_i).expect("interpreter run");
        // SAFETY: the native function reads INPUT bytes, as data holds.
        let reference = native_fn.map_or(out_i.r0, |f| unsafe { f(data.as_ptr()) });
        row.insns = out_i.insns;
        std::fs::write(dump.join(format!("{name}.bin")), &bytes).unwrap();
        std::fs::write(dump.join(format!("{name}.mem")), data).unwrap();
        std::fs::write(
            dump.join(format!("{name}.expect")),
            format!("{reference} {}\n", out_i.insns),
        )
        .unwrap();

        // bpfkit
        let mut jit = Jit::new(&prog, &helpers).expect("bpfkit JIT compiles");
        let mut mem_j = data.to_vec();
        let out_j = jit.run(&mut mem_j).expect("bpfkit JIT run");
        let jit_ok = out_j.r0 == reference && out_j.insns == out_i.insns;
        if !jit_ok {
            fail(
                "bpfkit JIT",
                format!(
                    "r0 {:#x} insns {} (expected r0 {reference:#x}, insns {})",
                    out_j.r0, out_j.insns, out_i.insns
                ),
            );
        }
        if out_i.r0 != reference {
            fail(
                "bpfkit interp",
                format!("r0 {:#x} (expected {reference:#x})", out_i.r0),
            );
        }
        row.code_bytes[0] = Some(jit.code_len() as u64);
        std::fs::write(dump.join(format!("{name}.x86")), jit.machine_code()).unwrap();
        let c = best_of(COMPILES, || {
            let t0 = crate::timing::thread_ns();
            let p = Program::new(&slots).unwrap();
            let t1 = crate::timing::thread_ns();
            let j = Jit::new(&p, &helpers).unwrap();
            let t2 = crate::timing::thread_ns();
            drop(black_box(j));
            (t2 - t1, t2 - t0)
        });
        row.compile[0] = Some(c);

        // rbpf
        let mut mem_r = data.to_vec();
        // rbpf 0.4's JIT writes into a fixed 4 KiB buffer and panics when
        // the code outgrows it.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let rbpf_vm = std::panic::catch_unwind(|| -> Result<rbpf::EbpfVmRaw<'_>, String> {
            let mut vm = rbpf::EbpfVmRaw::new(Some(&bytes)).map_err(|e| e.to_string())?;
            vm.jit_compile().map_err(|e| e.to_string())?;
            Ok(vm)
        })
        .unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!("jit_compile panicked: {msg}"))
        });
        std::panic::set_hook(hook);
        let rbpf_vm = match rbpf_vm {
            Ok(vm) => {
                // SAFETY: the program reads only its input and stack.
                let r0 = unsafe { vm.execute_program_jit(&mut mem_r) };
                match r0 {
                    Ok(r0) if r0 == reference => Some(vm),
                    Ok(r0) => {
                        fail("rbpf JIT", format!("r0 {r0:#x} (expected {reference:#x})"));
                        None
                    }
                    Err(e) => {
                        fail("rbpf JIT", e.to_string());
                        None
                    }
                }
            }
            Err(e) => {
                skip("rbpf JIT", e);
                None
            }
        };
        if rbpf_vm.is_some() {
            let c = best_of(COMPILES, || {
                let t0 = crate::timing::thread_ns();
                let mut vm = rbpf::EbpfVmRaw::new(Some(&bytes)).unwrap();
                let t1 = crate::timing::thread_ns();
                vm.jit_compile().unwrap();
                let t2 = crate::timing::thread_ns();
                drop(black_box(vm));
                (t2 - t1, t2 - t0)
            });
            row.compile[1] = Some(c);
        }

        // ubpf
        let mut ubpf = None;
        if let Some(driver) = ubpf_driver {
            match start_ubpf(
                driver,
                &dump.join(format!("{name}.bin")),
                &dump.join(format!("{name}.mem")),
            ) {
                Ok((u, start)) => {
                    let mut good = true;
                    if start.jit_r0 != reference {
                        fail(
                            "ubpf JIT",
                            format!("r0 {:#x} (expected {reference:#x})", start.jit_r0),
                        );
                        good = false;
                    }
                    if start.interp_r0 != reference {
                        fail(
                            "ubpf interp",
                            format!("r0 {:#x} (expected {reference:#x})", start.interp_r0),
                        );
                        good = false;
                    }
                    row.compile[2] = Some((start.compile_ns, start.load_ns + start.compile_ns));
                    row.code_bytes[1] = Some(start.code_bytes);
                    if good {
                        ubpf = Some(Rc::new(RefCell::new(u)));
                    }
                }
                Err(e) => skip("ubpf", e),
            }
        }

        // kernel
        let kernel = match kernel_ok {
            Ok(()) => {
                let xdp = obj
                    .program(&format!("xdp_{name}"))
                    .unwrap_or_else(|| panic!("xdp_{name} missing from the object"));
                let opts = bpfkit_kernel::LoadOptions::new(bpfkit_kernel::ProgType::Xdp)
                    .name(&format!("jit_{name}"));
                match bpfkit_kernel::load(&xdp.insns, &opts) {
                    Ok(prog) => {
                        let mut k = Kernel {
                            prog,
                            input: data,
                            reps: 1,
                        };
                        match k.run(1) {
                            Ok(out) if out.retval as u64 == reference & 0xffff_ffff => {
                                // Warm up, then size a sample to about 10 ms.
                                let t = Instant::now();
                                let mut reps = 16u32;
                                let mut ok = true;
                                while t.elapsed() < WARMUP {
                                    match k.run(reps) {
                                        Ok(o) => {
                                            let per = (o.duration_ns as f64).max(1.0);
                                            reps = ((SAMPLE_NS / per) as u32).clamp(1, 1 << 24);
                                        }
                                        Err(e) => {
                                            fail("kernel JIT", e);
                                            ok = false;
                                            break;
                                        }
                                    }
                                }
                                k.reps = reps;
                                ok.then_some(k)
                            }
                            Ok(out) => {
                                fail(
                                    "kernel JIT",
                                    format!(
                                        "retval {:#x} (expected {:#x})",
                                        out.retval,
                                        reference & 0xffff_ffff
                                    ),
                                );
                                None
                            }
                            Err(e) => {
                                fail("kernel JIT", e);
                                None
                            }
                        }
                    }
                    Err(e) => {
                        skip("kernel JIT", e.to_string());
                        None
                    }
                }
            }
            Err(_) => None,
        };

        let mut engines: Vec<(usize, Box<dyn Sampler + '_>)> = Vec::new();
        if jit_ok {
            engines.push((
                BPFKIT,
                Box::new(Local::new(|| jit.run(&mut mem_j).unwrap().r0)),
            ));
        }
        if out_i.r0 == reference {
            engines.push((
                INTERP,
                Box::new(Local::new(|| interp.run(&mut mem_i).unwrap().r0)),
            ));
        }
        if let Some(vm) = &rbpf_vm {
            engines.push((
                RBPF,
                Box::new(Local::new(|| {
                    // SAFETY: as above.
                    unsafe { vm.execute_program_jit(&mut mem_r) }.unwrap()
                })),
            ));
        }
        if let Some(u) = &ubpf {
            for (idx, what) in [(UBPF, "jit"), (UBPF_I, "interp")] {
                engines.push((
                    idx,
                    Box::new(UbpfSampler {
                        driver: u.clone(),
                        what,
                    }),
                ));
            }
        }
        if let Some(k) = kernel {
            engines.push((KERNEL, Box::new(k)));
        }
        if let Some(f) = native_fn {
            // SAFETY: the native function reads INPUT bytes, as data holds.
            engines.push((
                NATIVE,
                Box::new(Local::new(move || unsafe { f(black_box(data.as_ptr())) })),
            ));
        }

        let mut best = [f64::INFINITY; 7];
        let mut dead = [false; 7];
        for _ in 0..samples {
            for (idx, s) in engines.iter_mut() {
                if dead[*idx] {
                    continue;
                }
                match s.sample() {
                    Ok(ns) => best[*idx] = best[*idx].min(ns),
                    Err(e) => {
                        fail(ENGINES[*idx], e);
                        dead[*idx] = true;
                    }
                }
            }
        }
        for (idx, _) in &engines {
            if !dead[*idx] {
                row.ns[*idx] = Some(best[*idx]);
            }
        }
        row
    }

    fn cell(x: Option<f64>, digits: usize) -> String {
        x.map_or("–".into(), |v| format!("{v:.digits$}"))
    }

    pub fn main() {
        let filters = crate::timing::filters();
        let samples = crate::timing::samples(30);
        let (dump, keep_dump) = match std::env::var_os("BPFKIT_BENCH_DUMP") {
            Some(d) => (PathBuf::from(d), true),
            None => (
                std::env::temp_dir().join(format!("bpfkit-jit-dump-{}", std::process::id())),
                false,
            ),
        };
        std::fs::create_dir_all(&dump).expect("create dump directory");

        let obj_path = bpf_dir().join("jit_workloads.bpf.o");
        let obj_bytes =
            std::fs::read(&obj_path).unwrap_or_else(|e| panic!("{}: {e}", obj_path.display()));
        let obj = bpfkit_object::parse(&obj_bytes).expect("parse jit_workloads.bpf.o");
        let data = input();

        let native = Native::build();
        let kernel_ok = bpfkit_kernel::probe().map_err(|e| e.to_string());
        let ubpf_driver = std::env::var_os("BPFKIT_UBPF_DRIVER").map(PathBuf::from);
        match &native {
            Ok(_) => println!("native: the header compiled by clang -O2 for the host"),
            Err(e) => println!("native: skipped ({e}); r0 checked against bpfkit's interpreter"),
        }
        match &kernel_ok {
            Ok(()) => println!("kernel JIT: BPF_PROG_TEST_RUN of the XDP entries"),
            Err(e) => println!("kernel JIT: skipped: {e}"),
        }
        match &ubpf_driver {
            Some(d) => println!("ubpf: driver {}", d.display()),
            None => println!(
                "ubpf: skipped: BPFKIT_UBPF_DRIVER is not set (BENCHMARKS.md says how to build the driver)"
            ),
        }
        println!();

        let mut errors = Vec::new();
        let mut notes = Vec::new();
        let mut rows = Vec::new();
        for name in WORKLOADS {
            if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
                continue;
            }
            rows.push(workload(
                name,
                &obj,
                &data,
                &native,
                &kernel_ok,
                ubpf_driver.as_deref(),
                &dump,
                samples,
                &mut errors,
                &mut notes,
            ));
        }
        if !keep_dump {
            let _ = std::fs::remove_dir_all(&dump);
        }

        println!("ns per run (best sample):\n");
        print!("| workload | insns/run |");
        for e in ENGINES {
            print!(" {e} |");
        }
        println!("\n|---|---:|{}", "---:|".repeat(ENGINES.len()));
        for r in &rows {
            print!("| {} | {} |", r.name, r.insns);
            for x in r.ns {
                print!(" {} |", cell(x, 0));
            }
            println!();
        }

        println!("\nbpfkit JIT time / peer time (below 1: bpfkit's JIT is faster):\n");
        println!("| workload | bpfkit JIT ns/insn | / bpfkit interp | / rbpf JIT | / ubpf JIT | / kernel JIT | / native |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let ratio = |r: &Row, peer: usize| -> Option<f64> { Some(r.ns[BPFKIT]? / r.ns[peer]?) };
        for r in &rows {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.name,
                cell(r.ns[BPFKIT].map(|t| t / r.insns as f64), 3),
                cell(ratio(r, INTERP), 3),
                cell(ratio(r, RBPF), 2),
                cell(ratio(r, UBPF), 2),
                cell(ratio(r, KERNEL), 2),
                cell(ratio(r, NATIVE), 2),
            );
        }

        println!("\ncompile time, µs per 1,000 instruction slots (best of {COMPILES}; load + compile in brackets), and code size:\n");
        println!("| workload | slots | bpfkit JIT | rbpf JIT | ubpf JIT | bpfkit code bytes | ubpf code bytes |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for r in &rows {
            let per_k = |c: Option<(f64, f64)>| -> String {
                c.map_or("–".into(), |(comp, both)| {
                    let k = r.slots as f64;
                    format!("{:.1} ({:.1})", comp / k, both / k)
                })
            };
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.name,
                r.slots,
                per_k(r.compile[0]),
                per_k(r.compile[1]),
                per_k(r.compile[2]),
                r.code_bytes[0].map_or("–".into(), |b| b.to_string()),
                r.code_bytes[1].map_or("–".into(), |b| b.to_string()),
            );
        }

        println!();
        let goal = |label: &str, peer: usize, limit: f64| {
            let measured: Vec<(&str, f64)> = rows
                .iter()
                .filter_map(|r| Some((r.name, ratio(r, peer)?)))
                .collect();
            if measured.is_empty() {
                println!("goal {label}: not measured");
                return;
            }
            let missed: Vec<String> = measured
                .iter()
                .filter(|(_, x)| *x > limit)
                .map(|(n, x)| format!("{n} ({x:.2})"))
                .collect();
            if missed.is_empty() {
                println!("goal {label}: met on all {} measured", measured.len());
            } else {
                println!("goal {label}: MISSED on {}", missed.join(", "));
            }
        };
        goal("faster than ubpf's JIT (ratio < 1)", UBPF, 1.0);
        goal("faster than rbpf's JIT (ratio < 1)", RBPF, 1.0);
        goal("within 1.2x of the kernel's JIT", KERNEL, 1.2);

        if !notes.is_empty() {
            println!("\nnot measured (the engine cannot take the program):");
            for n in &notes {
                println!("- {n}");
            }
        }
        if !errors.is_empty() {
            println!("\nerrors (these engines are left out of the rows above):");
            for e in &errors {
                println!("- {e}");
            }
            std::process::exit(1);
        }
    }
}

fn main() {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    bench::main();
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    println!("jit_report: bpfkit's JIT targets x86-64 Linux only");
}
