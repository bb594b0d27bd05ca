//! What the VM fuzz targets share: the helpers their programs may call.

use bpfkit_vm::{HelperError, Helpers};

/// The conformance helpers and four more: add, read8, write8 (through the
/// checked program memory) and stop (ends the run).
pub fn helpers() -> Helpers {
    let mut h = bpfkit_vm::helpers::conformance();
    h.register(1, "add", |_, a| Ok(a[0].wrapping_add(a[1])));
    h.register(2, "read8", |ctx, a| {
        let b = ctx.read(a[0], 8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap()))
    });
    h.register(3, "write8", |ctx, a| {
        ctx.write(a[0], &a[1].to_le_bytes())?;
        Ok(0)
    });
    h.register(4, "stop", |_, a| Err(HelperError::Exit(a[0])));
    h
}
