// SPDX-License-Identifier: GPL-2.0

//! Dedicated slab caches for the driver's two hot objects, a [`GrantBatch`] (one per ALLOC) and
//! a [`SpanMapping`] (one per mmap()), and the reference counting built on them.
//!
//! `KBox`/`Arc` allocate through `krealloc()`, which costs about twice a slab cache's
//! allocation on the share cycle's path (`run-qemu --profile share_cycle_1` shows it). A cache
//! also sizes each object exactly and names it in `/proc/slabinfo`.
//!
//! Driver-local because the `kernel` crate has no typed `kmem_cache` yet (its `Box`, `Arc` and
//! `KVec` allocate through `kmalloc`/`krealloc`); this file is what such a type would offer.
//!
//! [`GrantBatch`]: crate::grant::GrantBatch
//! [`SpanMapping`]: crate::SpanMapping

use core::{
    marker::PhantomData,
    mem::{
        align_of,
        size_of, //
    },
    ptr::{
        self,
        NonNull, //
    },
};
use kernel::{
    bindings,
    prelude::*,
    sync::{
        atomic::{
            Acquire,
            Atomic,
            Relaxed,
            Release, //
        },
        Refcount,
    },
};

/// A slab cache of `T` objects, created at module init and destroyed at module exit.
///
/// # Invariants
///
/// `cache` is null, or a cache of objects of `T`'s size and alignment, made by
/// [`SlabCache::create`] and not destroyed yet.
pub(crate) struct SlabCache<T> {
    cache: Atomic<*mut bindings::kmem_cache>,
    _type: PhantomData<T>,
}

// SAFETY: The cache pointer is atomic and the slab allocator is thread-safe; the cache only
// hands out memory for `T`, which its users share or send as `T` allows.
unsafe impl<T> Sync for SlabCache<T> {}

impl<T> SlabCache<T> {
    /// An uncreated cache; [`SlabCache::create`] makes it usable.
    pub(crate) const fn new() -> Self {
        // INVARIANT: null.
        Self {
            cache: Atomic::new(ptr::null_mut()),
            _type: PhantomData,
        }
    }

    /// Creates the cache, named `name` in `/proc/slabinfo`. Called once, from module init,
    /// before any object is allocated.
    pub(crate) fn create(&self, name: &'static CStr) -> Result {
        let mut args = bindings::kmem_cache_args {
            align: u32::try_from(align_of::<T>()).map_err(|_| EINVAL)?,
            ..pin_init::zeroed()
        };
        // SAFETY: `name` is a static NUL-terminated string; `args` is valid for the call.
        let cache = unsafe {
            bindings::__kmem_cache_create_args(
                name.as_char_ptr(),
                u32::try_from(size_of::<T>()).map_err(|_| EINVAL)?,
                &mut args,
                0,
            )
        };
        if cache.is_null() {
            return Err(ENOMEM);
        }
        // INVARIANT: a cache of `T`s. Released: a later `alloc` on another CPU sees it made.
        self.cache.store(cache, Release);
        Ok(())
    }

    /// Destroys the cache. Called at module exit (or after a failed init), when every object
    /// has been freed.
    pub(crate) fn destroy(&self) {
        let cache = self.cache.xchg(ptr::null_mut(), Relaxed);
        // SAFETY: `cache` is null (allowed) or a cache made by `create` and no longer reachable
        // through `self`; its objects are all freed (function contract).
        unsafe { bindings::kmem_cache_destroy(cache) };
    }

    /// Moves `value` into a new object of the cache.
    #[inline]
    pub(crate) fn alloc(&self, value: T) -> Result<NonNull<T>> {
        let cache = self.cache.load(Acquire);
        if cache.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `cache` is a live cache (type invariant): module exit destroys it only once
        // no file is open and no object is left, and callers run on behalf of an open file.
        let obj = unsafe { bindings::kmem_cache_alloc_noprof(cache, bindings::GFP_KERNEL) };
        let obj = NonNull::new(obj.cast::<T>()).ok_or(ENOMEM)?;
        // SAFETY: `obj` is a fresh allocation of `T`'s size and alignment (type invariant).
        unsafe { obj.as_ptr().write(value) };
        Ok(obj)
    }

    /// Gives up one reference on `obj`, counted by the `Refcount` that `refs` finds in it; the
    /// last one frees the object. The `dec_ref` of every reference-counted type of the cache.
    ///
    /// # Safety
    ///
    /// `obj` came from [`SlabCache::alloc`] on this cache, its references are all counted by
    /// `refs(obj)`, and the caller owns one of them, which it no longer uses.
    pub(crate) unsafe fn put(&self, obj: NonNull<T>, refs: impl FnOnce(&T) -> &Refcount) {
        // SAFETY: The caller owns a reference (function contract): the object is live.
        if refs(unsafe { obj.as_ref() }).dec_and_test() {
            // SAFETY: That was the last reference: nobody uses the object any more, and it came
            // from this cache (function contract).
            unsafe { self.free(obj) };
        }
    }

    /// Drops the object at `obj` and gives its memory back to the cache.
    ///
    /// # Safety
    ///
    /// `obj` came from [`SlabCache::alloc`] on this cache and nobody uses it any more.
    pub(crate) unsafe fn free(&self, obj: NonNull<T>) {
        // SAFETY: `obj` holds a live `T` that nobody uses any more (function contract).
        unsafe { ptr::drop_in_place(obj.as_ptr()) };
        // SAFETY: The cache made `obj` (function contract) and is still live: the object was.
        unsafe { bindings::kmem_cache_free(self.cache.load(Relaxed), obj.as_ptr().cast()) };
    }
}
