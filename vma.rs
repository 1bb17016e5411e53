// SPDX-License-Identifier: GPL-2.0

//! Data shared by every VMA descended from one `mmap()` call: the driver's mapping.
//!
//! The `kernel` crate of 7.3 can set up a VMA in `->mmap` but has no way to learn when it is
//! split, copied or removed. This file fills that gap with the smallest sound piece: it installs
//! `vm_operations_struct` `open`/`close` callbacks and keeps one reference ([`ARef`]) per VMA in
//! `vm_private_data`.
//!
//! - `mmap` attaches the data to the new VMA (one reference);
//! - `open` runs for every VMA created from an existing one (split by a partial munmap or
//!   mprotect, fork, mremap move): the new VMA takes one more reference;
//! - `close` runs exactly once per VMA when it is removed (mm replaces `vm_ops` afterwards):
//!   it drops that VMA's reference.
//!
//! The data is dropped when the last of those VMAs is gone. mm never calls `close` for a VMA
//! whose `->mmap` failed, so [`VmaShared::attach`] must be the last step of a successful `mmap`.
//! Both callbacks run with `mmap_lock` held and may sleep, and so may `T`'s `Drop`.

use core::{
    marker::PhantomData,
    ptr::NonNull, //
};
use kernel::{
    bindings,
    mm::virt::VmaNew,
    sync::aref::{
        ARef,
        AlwaysRefCounted, //
    },
};

/// The `vm_operations_struct` of VMAs that share one `T` (one per `mmap()` call).
pub(crate) struct VmaShared<T: AlwaysRefCounted + Send + Sync + 'static>(PhantomData<T>);

impl<T: AlwaysRefCounted + Send + Sync + 'static> VmaShared<T> {
    /// The callbacks. A borrow in a `const` initialiser has the `'static` lifetime, so every VMA
    /// may keep pointing at it; no promotion rule is relied on.
    const OPS: &'static bindings::vm_operations_struct = &bindings::vm_operations_struct {
        open: Some(Self::open),
        close: Some(Self::close),
        ..pin_init::zeroed()
    };

    /// Attaches `data` to `vma`, which is being set up by `->mmap` and will not fail anymore.
    pub(crate) fn attach(vma: &VmaNew, data: ARef<T>) {
        let vma = vma.as_ptr();
        // SAFETY: `vma` is valid and, being set up by `->mmap` under the write `mmap_lock`, not
        // yet visible to anyone else: writing its fields cannot race. The reference taken out of
        // `data` is owned by this VMA and given back in `close`. `OPS` is `'static`: it stays
        // valid as long as the module's image, which outlives every VMA (each VMA holds its file,
        // and the file pins the module).
        unsafe {
            (*vma).vm_private_data = ARef::into_raw(data).as_ptr().cast();
            (*vma).vm_ops = Self::OPS;
        }
    }

    /// # Safety
    ///
    /// Called by mm, with `mmap_lock` held, for a VMA copied from one that shares a `T`: its
    /// `vm_private_data` is the source VMA's, which still owns its own reference.
    unsafe extern "C" fn open(vma: *mut bindings::vm_area_struct) {
        // SAFETY: By the function's contract `vm_private_data` came from `attach`, and the
        // source VMA's reference keeps it alive during this call.
        let data = unsafe { &*(*vma).vm_private_data.cast::<T>() };
        // The new VMA owns one more reference, given back in its own `close`.
        data.inc_ref();
    }

    /// # Safety
    ///
    /// Called by mm, with `mmap_lock` held, exactly once for each VMA that shares a `T` as it is
    /// removed.
    unsafe extern "C" fn close(vma: *mut bindings::vm_area_struct) {
        // SAFETY: Each VMA that shares a `T` owns one reference, from `attach` or `open`, on the
        // object at `vm_private_data` (not null: `attach` stored an `ARef`'s pointer); this is
        // its only `close`, so the reference is given back exactly once.
        drop(unsafe { ARef::from_raw(NonNull::new_unchecked((*vma).vm_private_data.cast::<T>())) });
    }
}
