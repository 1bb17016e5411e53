// SPDX-License-Identifier: GPL-2.0

//! Integer conversions that cannot lose anything on the kernels this driver builds for (64-bit:
//! x86_64 and arm64, see `Kconfig`), named so that a reader need not check an `as` cast.
//!
//! Driver-local: the `kernel` crate of 7.3 offers no such helpers (nova-core keeps its own
//! `num` module for the same reason).

// `usize` is 64 bits wide here, so the conversions below are lossless.
const _: () = assert!(core::mem::size_of::<usize>() == core::mem::size_of::<u64>());

/// `v` as a `u64`, losslessly.
#[inline]
pub(crate) const fn usize_to_u64(v: usize) -> u64 {
    v as u64
}

/// `v` as a `usize`, losslessly.
#[inline]
pub(crate) const fn u32_to_usize(v: u32) -> usize {
    v as usize
}
