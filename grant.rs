// SPDX-License-Identifier: GPL-2.0

//! Grants as the device hands them out, the global accounting against `limit`, and the deferred
//! list of grants that a remote domain still maps.
//!
//! A [`GrantBatch`] holds the grants of one ALLOC by value, one 4K "slot" of the file's index
//! space each. It is reference-counted ([`ARef`]) and shared by the file's index (which links it
//! in its tree, see `index.rs`, until every slot is deallocated or the file is closed) and by
//! every mapping (what one mmap() call made) that covers some of its slots: a [`SlotRun`] of a
//! `SpanMapping`, or the batch's own [`InlineMapping`]. Each slot counts its own users: the
//! listing and the mappings. When
//! the last one lets go, the slot fires its unmap notification (byte, then event) and ends its
//! grant. If the remote domain still maps the page, the grant goes to the deferred list
//! (`deferred.rs`): it stays counted against `limit` and is retried on later ioctls and by a
//! periodic work item until the remote has unmapped it.
//!
//! Compared with one object per grant, a batch costs one allocation per ALLOC (two for more
//! than one grant: the slot array) instead of two per grant, and a slot is three words: a batch
//! of one grant is as large as upstream's object for one. Batches come from a slab cache of
//! their own ([`BATCHES`], see `slab.rs`).
//!
//! Lock order (see `gntalloc.rs`): a file's index lock → the deferred list's lock → the
//! grant-table core's spinlock. A slot's notification is guarded by its file's index lock (see
//! [`GrantSlot`]).

use core::{
    cell::UnsafeCell,
    mem::{
        size_of,
        ManuallyDrop, //
    },
    ptr::NonNull,
};
use kernel::{
    bindings,
    prelude::*,
    sync::{
        aref::{
            ARef,
            AlwaysRefCounted, //
        },
        atomic::{
            Atomic,
            Full,
            Relaxed, //
        },
        Refcount,
    },
    types::Opaque,
};

use crate::{
    deferred,
    num::{
        u32_to_usize,
        usize_to_u64, //
    },
    slab::SlabCache,
    xen::{
        self,
        EvtchnRef,
        ForeignGrant,
        GrantError,
        PageRef,
        ZeroedPages,
        XEN_PAGES_PER_PAGE, //
    },
};

/// The slab cache of every [`GrantBatch`], created at module init.
pub(crate) static BATCHES: SlabCache<GrantBatch> = SlabCache::new();

/// Counters exported through debugfs; all monotonic except `in_use` and `deferred`.
pub(crate) struct Stats {
    /// Grants counted against `limit`: live, reserved by an ALLOC in flight, or deferred.
    pub(crate) in_use: Atomic<u32>,
    /// Grants whose page a remote domain still maps, waiting in the deferred list
    /// (`deferred.rs`).
    pub(crate) deferred: Atomic<u32>,
    /// How long the oldest deferred grant has waited, in milliseconds, at most, as the periodic
    /// retry last saw it (0: none).
    pub(crate) deferred_age_ms: Atomic<u64>,
    /// ALLOCs refused because of `limit`.
    pub(crate) limit_rejections: Atomic<u64>,
    /// ALLOCs that failed because the grant table was full.
    pub(crate) table_full: Atomic<u64>,
    /// Grants handed to the grant-table core's deferred list (memory shortage or unload).
    pub(crate) handed_to_core: Atomic<u64>,
}

/// The global counters.
pub(crate) static STATS: Stats = Stats {
    in_use: Atomic::new(0),
    deferred: Atomic::new(0),
    deferred_age_ms: Atomic::new(0),
    limit_rejections: Atomic::new(0),
    table_full: Atomic::new(0),
    handed_to_core: Atomic::new(0),
};

/// Reserves `count` grants against `limit` (the parameter's value, read once by the caller):
/// `ENOSPC` if that would exceed it.
///
/// As upstream, the check fails when usage is already above the limit (which root may have
/// lowered), even for `count == 0`.
pub(crate) fn reserve(count: u32, limit: u32) -> Result {
    let mut cur = STATS.in_use.load(Relaxed);
    loop {
        if cur > limit || count > limit - cur {
            STATS.limit_rejections.add(1, Relaxed);
            return Err(ENOSPC);
        }
        match STATS.in_use.cmpxchg(cur, cur + count, Relaxed) {
            Ok(_) => return Ok(()),
            Err(now) => cur = now,
        }
    }
}

/// The largest buffer `kvmalloc` serves without a warning (`INT_MAX` bytes).
const KVMALLOC_MAX: usize = 0x7fff_ffff;

/// Checks, before anything is reserved or allocated, that an ALLOC of `count` grants could be
/// served: `ENOMEM` if its slot array or its ids would be larger than `kvmalloc` serves, or its
/// pages more than the memory the kernel manages, so that a huge count (`limit` may be 2^30 or
/// more) fails cleanly instead of warning in the allocator or waking the OOM killer.
pub(crate) fn check_alloc_size(count: usize) -> Result {
    let bookkeeping = size_of::<GrantSlot>().max(size_of::<u32>());
    let too_big = count
        .checked_mul(bookkeeping)
        .is_none_or(|bytes| bytes > KVMALLOC_MAX)
        || count.div_ceil(XEN_PAGES_PER_PAGE) > xen::totalram_pages();
    if too_big {
        return Err(ENOMEM);
    }
    Ok(())
}

/// Returns `count` reserved or released grants.
pub(crate) fn unreserve(count: u32) {
    STATS.in_use.fetch_sub(count, Relaxed);
}

/// Ends `frame`, or defers it if the remote domain still maps it. The grant's slot is released
/// from the accounting only once the grant is really ended.
fn end_or_defer(mut frame: ForeignGrant) {
    if frame.try_end() {
        unreserve(1);
        return;
    }
    if let Err(frame) = deferred::defer(frame) {
        // No memory to keep it: dropping it hands it to the core, and it is no longer ours.
        drop(frame);
        STATS.handed_to_core.add(1, Relaxed);
        unreserve(1);
    }
}

/// What to do when a grant is released locally for the last time. A slot keeps one only once
/// it is armed, in an allocation of its own ([`GrantSlot`]'s `notify`): most grants never get
/// one, and a slot stays three words.
pub(crate) struct UnmapNotify {
    /// Byte to clear, as its offset in the slot's kernel page (below `PAGE_SIZE`, at most 64K):
    /// the byte's offset in the file's index space modulo `PAGE_SIZE`, since every batch starts
    /// on a kernel page.
    pub(crate) clear_byte: Option<u16>,
    /// Event channel to signal; holding it keeps the port from being closed or reused.
    pub(crate) event: Option<EvtchnRef>,
}

impl UnmapNotify {
    /// Whether any action is pending.
    pub(crate) fn is_armed(&self) -> bool {
        self.clear_byte.is_some() || self.event.is_some()
    }
}

/// The bit of [`GrantSlot`]`::users` that stands for the file listing the slot; each mapping
/// covering the slot counts one in the bits below it.
const LISTED: u32 = 1 << 31;

/// The most mappings a slot counts: one more would carry into [`LISTED`].
const MAX_MAPPINGS: u32 = LISTED - 1;

/// One 4K grant of a [`GrantBatch`]: one slot of a file's index space. The grant's parts (its
/// reference and page) are kept apart rather than as a [`ForeignGrant`], so that the slot is
/// three words: a grant reference and the user count share one.
///
/// # Invariants
///
/// - `users` is [`LISTED`] while the file lists the slot, plus one per mapping covering it. Once it has dropped to zero it never rises again.
/// - While `users` is not zero, `gref` and `page` are the parts of a live [`ForeignGrant`]
///   ([`ForeignGrant::into_parts`]) that the slot owns, and `notify` holds the pending
///   notification. Whoever drops `users` to zero owns `page` and `notify` from then on and
///   releases the grant ([`GrantSlot::release`]), as does `drop` for a slot still live (one
///   that no index lists and no mapping covers: a batch that failed to be made); nobody
///   touches them afterwards.
/// - `notify` is accessed only under the index lock of the file that lists the slot, while it
///   is listed, or by the releaser.
/// - The slot is counted once in [`STATS`]`.in_use` until its grant is ended.
struct GrantSlot {
    users: Atomic<u32>,
    gref: u32,
    page: UnsafeCell<ManuallyDrop<PageRef>>,
    notify: UnsafeCell<Option<KBox<UnmapNotify>>>,
}

impl GrantSlot {
    /// A listed slot owning `frame`, a grant not ended.
    fn new(frame: ForeignGrant) -> Result<Self, GrantError> {
        let (gref, page) = frame.into_parts().ok_or(GrantError::Other(EINVAL))?;
        // INVARIANT: listed, owning the grant's parts, with no notification.
        Ok(Self {
            users: Atomic::new(LISTED),
            gref,
            page: UnsafeCell::new(ManuallyDrop::new(page)),
            notify: UnsafeCell::new(None),
        })
    }

    /// Whether the file lists the slot. Stable under the file's index lock.
    fn is_listed(&self) -> bool {
        self.users.load(Relaxed) & LISTED != 0
    }

    /// Whether a mapping covers the slot.
    fn is_mapped(&self) -> bool {
        self.users.load(Relaxed) & !LISTED != 0
    }

    /// The granted kernel page (shared by the slots of one page on 64K kernels).
    ///
    /// # Safety
    ///
    /// The caller holds one of the slot's users (the listing, under the file's index lock, or
    /// a mapping) for as long as the result is used.
    unsafe fn page(&self) -> &PageRef {
        // SAFETY: `users` is not zero while the caller holds a user, so `page` is initialised
        // and only the releaser, which cannot exist yet, would take it (type invariant).
        unsafe { &*self.page.get() }
    }

    /// Gives up `user` (the listing or one mapping); the last one releases the slot.
    fn drop_user(&self, user: u32) {
        // Fully ordered, as a refcount's decrement: every access made while holding the user,
        // on any CPU, happens before the release below.
        if self.users.fetch_sub(user, Full) == user {
            // SAFETY: `users` has just dropped to zero here: this caller is the releaser.
            unsafe { self.release() };
        }
    }

    /// Fires the unmap notification and ends the grant, or defers it.
    ///
    /// # Safety
    ///
    /// The caller dropped `users` to zero, or has exclusive access to a slot that nobody else
    /// can reach; this is the slot's only release.
    unsafe fn release(&self) {
        // SAFETY: The caller is the releaser (function contract): it owns `notify` and `page`,
        // which are initialised until now and never touched again.
        let (notify, page) = unsafe {
            (
                (*self.notify.get()).take(),
                ManuallyDrop::take(&mut *self.page.get()),
            )
        };
        if let Some(notify) = notify {
            // Byte first, then event, then the grant end: a peer woken by the event must see
            // the byte cleared and its mapping still valid (libxenvchan relies on this order).
            if let Some(offset) = notify.clear_byte {
                page.clear_byte(usize::from(offset));
            }
            if let Some(event) = &notify.event {
                event.notify();
            }
        }
        // SAFETY: `gref` and `page` are the parts of the slot's grant (type invariant), taken
        // back once, here.
        end_or_defer(unsafe { ForeignGrant::from_parts(self.gref, page) });
    }
}

impl Drop for GrantSlot {
    fn drop(&mut self) {
        // Only a slot of a batch that failed to be completed, or to be shared, is still live
        // here: no index lists it and no mapping covers it, so this is its only release.
        if self.users.load(Relaxed) != 0 {
            // SAFETY: `&mut self`: nobody else can reach the slot, and its users are gone.
            unsafe { self.release() };
        }
    }
}

// A slot is three words: a one-grant batch fits in 64 bytes, and 1000 slots in 24 KiB.
const _: () = assert!(size_of::<GrantSlot>() <= 24);

/// The slots of a batch of more than one grant: an array of their own, and how many are still
/// listed.
///
/// # Invariants
///
/// `slots`, `len` and `cap` are the parts of a `KVVec<GrantSlot>` ([`KVVec::into_raw_parts`])
/// owned by the batch, with `len` at least 2.
struct SlotArray {
    slots: NonNull<GrantSlot>,
    len: u32,
    cap: u32,
    listed: Atomic<u32>,
}

/// Where a batch keeps its slots: inline for a single grant (libxengnttab's most common
/// request), so that an ALLOC of one costs one allocation besides the page; in an array of
/// their own otherwise. Which one is live is the batch's [`MANY`] bit.
union SlotStore {
    one: ManuallyDrop<GrantSlot>,
    many: ManuallyDrop<SlotArray>,
}

/// The bit of [`GrantBatch`]`::start_many` that says the slots are a [`SlotArray`]: keys are
/// kernel-page aligned, so the key's low bits are free.
const MANY: u64 = 1;

/// The grants of one ALLOC, held by value: slot `i` has key `start + i * XEN_PAGE_SIZE`.
///
/// A batch is reference-counted ([`ARef`]) and shared by the file's index (while any of its
/// slots is listed) and by every mapping that covers some of its slots; each slot counts
/// its own users, and is released, firing its notification and ending its grant, when the last
/// one lets go.
///
/// A batch of one grant is 64 bytes, as upstream's object per grant: the tree links (24), the
/// key (8), two counts (8) and the slot (24).
///
/// # Invariants
///
/// - The batch lives in an object of [`BATCHES`], freed when `refs` drops to zero.
/// - `slots` holds `one` if the [`MANY`] bit of `start_many` is clear, `many` if it is set;
///   the bit never changes. Every slot is live ([`GrantSlot`]'s invariants) when the batch is
///   made.
/// - The rest of `start_many` (the first key) changes only while the batch is a [`NewBatch`],
///   before anyone else can see it.
/// - The number of slots still listed (a [`SlotArray`]'s `listed`, or the one slot's listing)
///   changes only under the index lock of the file that lists the batch.
/// - The batch is listed in at most one file's index, and only while a slot is listed;
///   `links` belong to that index's tree meanwhile.
pub(crate) struct GrantBatch {
    links: Opaque<bindings::rb_node>,
    start_many: u64,
    refs: Refcount,
    inline: InlineMappingState,
    slots: SlotStore,
}

// A one-grant batch costs what upstream's per-grant object does (`kmalloc-64`).
const _: () = assert!(size_of::<GrantBatch>() <= 64);

// SAFETY: Every batch is reference-counted through `refs`, and lives (in its slab object) until
// the count drops to zero (type invariants).
unsafe impl AlwaysRefCounted for GrantBatch {
    fn inc_ref(&self) {
        self.refs.inc();
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: Every batch comes from `BATCHES` and is counted by `refs` (type invariants);
        // the caller owns the reference it gives up (function contract).
        unsafe { BATCHES.put(obj, |batch| &batch.refs) };
    }
}

impl Drop for GrantBatch {
    fn drop(&mut self) {
        if self.is_many() {
            // SAFETY: The `MANY` bit says `many` is live (type invariant), and it is dropped
            // once, here.
            let array = unsafe { ManuallyDrop::take(&mut self.slots.many) };
            // SAFETY: The parts of a `KVVec` the batch owns (`SlotArray` invariant), rebuilt once.
            drop(unsafe {
                KVVec::from_raw_parts(
                    array.slots.as_ptr(),
                    u32_to_usize(array.len),
                    u32_to_usize(array.cap),
                )
            });
        } else {
            // SAFETY: The `MANY` bit is clear, so `one` is live (type invariant), dropped once.
            unsafe { ManuallyDrop::drop(&mut self.slots.one) };
        }
    }
}

/// A batch that nobody else references yet: made by [`GrantBatch::build`], not listed. Its key
/// range is set when it is placed in the file's index space ([`NewBatch::place`]).
pub(crate) struct NewBatch(ARef<GrantBatch>);

impl NewBatch {
    /// Gives the batch its keys, from `start` on (kernel-page aligned), and hands it over for
    /// listing (by [`BatchIndex::insert`](crate::index::BatchIndex::insert) alone).
    pub(crate) fn place(self, start: u64) -> ARef<GrantBatch> {
        let batch = ARef::into_raw(self.0);
        // SAFETY: The batch is live and referenced by nobody else (a `NewBatch` holds the only
        // reference), so writing its key races with nothing. INVARIANT: still unshared, and
        // the `MANY` bit kept (`start` is page aligned: its own bit is clear).
        unsafe {
            let start_many = &mut (*batch.as_ptr()).start_many;
            *start_many = (start & !MANY) | (*start_many & MANY);
        }
        // SAFETY: The reference taken out of `self` above, handed on.
        unsafe { ARef::from_raw(batch) }
    }
}

// SAFETY: The slots' cells are accessed as their invariants say: `notify` under the owning
// file's index lock or by the releaser, `page` read by user holders and taken by the releaser
// alone. Everything else is atomic or immutable, and the owned values are `Send`.
unsafe impl Send for GrantBatch {}
// SAFETY: See `Send`: shared access never races on a cell.
unsafe impl Sync for GrantBatch {}

impl GrantBatch {
    /// Allocates fresh zeroed kernel pages and grants `domid` access to `count` 4K slots of
    /// them, packed (slot `k` is Xen page `k % XEN_PAGES_PER_PAGE` of page
    /// `k / XEN_PAGES_PER_PAGE`). Slot `k` gets key `start + k * XEN_PAGE_SIZE` and its grant
    /// reference goes to `ids[4k..4k + 4]`. The keys are given later ([`NewBatch::place`]).
    /// Sleeps; called without any lock held.
    ///
    /// The caller has reserved `count` grants of the limit, which the batch's slots then
    /// carry. On failure nothing is left behind: the grants made so far are ended and the whole
    /// reservation is returned.
    pub(crate) fn build(
        count: u32,
        domid: u16,
        writable: bool,
        ids: &mut [u8],
    ) -> Result<NewBatch, GrantError> {
        let mut made = 0usize;
        let res = Self::build_slots(u32_to_usize(count), domid, writable, ids, &mut made).and_then(
            |(slots, many)| {
                // INVARIANT: a `BATCHES` object with one reference (the `NewBatch`'s), every slot
                // live, all listed, not in any tree, `MANY` telling which store is live; if the
                // allocation fails, the batch is dropped and each slot ends its own grant.
                let batch = BATCHES
                    .alloc(Self {
                        links: Opaque::new(bindings::rb_node::default()),
                        start_many: if many { MANY } else { 0 },
                        refs: Refcount::new(1),
                        inline: InlineMappingState::new(),
                        slots,
                    })
                    .map_err(GrantError::Other)?;
                // SAFETY: A fresh batch with one reference, which the `NewBatch` takes over.
                Ok(NewBatch(unsafe { ARef::from_raw(batch) }))
            },
        );
        if res.is_err() {
            // The slots made were dropped with their batch (or its parts), each returning its
            // own reservation; return the rest.
            // `made` is at most `count`, a `u32`.
            unreserve(count - u32::try_from(made).unwrap_or(count));
        }
        res
    }

    /// Makes the slots of [`GrantBatch::build`], and whether they are an array (`MANY`); `made`
    /// counts those created (each carries its own reservation from then on).
    fn build_slots(
        count: usize,
        domid: u16,
        writable: bool,
        ids: &mut [u8],
        made: &mut usize,
    ) -> Result<(SlotStore, bool), GrantError> {
        let mut write_id = |k: usize, slot: &GrantSlot| {
            if let Some(id) = ids.get_mut(k * size_of::<u32>()..(k + 1) * size_of::<u32>()) {
                id.copy_from_slice(&slot.gref.to_ne_bytes());
            }
        };
        if count == 1 {
            let page = PageRef::alloc_zeroed().map_err(GrantError::Other)?;
            let slot = GrantSlot::new(ForeignGrant::new(domid, page, 0, writable)?)?;
            *made = 1;
            write_id(0, &slot);
            return Ok((
                SlotStore {
                    one: ManuallyDrop::new(slot),
                },
                false,
            ));
        }
        let mut slots =
            KVVec::with_capacity(count, GFP_KERNEL).map_err(|e| GrantError::Other(e.into()))?;
        let mut pages = ZeroedPages::new(count.div_ceil(XEN_PAGES_PER_PAGE));
        while *made < count {
            let in_page = (count - *made).min(XEN_PAGES_PER_PAGE);
            let mut page = Some(pages.take().map_err(GrantError::Other)?);
            for xen_index in 0..in_page {
                // Each slot owns one reference on the page; the last one takes the allocation's.
                let page_ref = if xen_index + 1 < in_page {
                    page.as_ref().map(PageRef::new_ref)
                } else {
                    page.take()
                }
                .ok_or(GrantError::Other(EINVAL))?;
                let frame = ForeignGrant::new(domid, page_ref, xen_index, writable)?;
                let slot = GrantSlot::new(frame)?;
                *made += 1;
                write_id(*made - 1, &slot);
                // Within the capacity reserved above, so this does not fail.
                slots
                    .push_within_capacity(slot)
                    .map_err(|_| GrantError::Other(ENOMEM))?;
            }
        }
        let (ptr, len, cap) = slots.into_raw_parts();
        let (Ok(len32), Ok(cap32), Some(ptr)) =
            (u32::try_from(len), u32::try_from(cap), NonNull::new(ptr))
        else {
            // Not reached: `count` fits a `u32` and the array was allocated. Dropped as it came.
            // SAFETY: The parts just taken out of `slots`, rebuilt once.
            drop(unsafe { KVVec::from_raw_parts(ptr, len, cap) });
            return Err(GrantError::Other(EINVAL));
        };
        // INVARIANT: the parts of the `KVVec`, `len` (the count) at least 2.
        let array = SlotArray {
            slots: ptr,
            len: len32,
            cap: cap32,
            listed: Atomic::new(len32),
        };
        Ok((
            SlotStore {
                many: ManuallyDrop::new(array),
            },
            true,
        ))
    }

    /// The batch's links in its file's index tree.
    pub(crate) fn links(&self) -> *mut bindings::rb_node {
        self.links.get()
    }

    /// The batch whose links are at `node`.
    ///
    /// # Safety
    ///
    /// `node` is the `links` of a live batch.
    pub(crate) unsafe fn from_links(node: *mut bindings::rb_node) -> NonNull<Self> {
        // `links` is an `Opaque`, whose `get()` gives the `rb_node` at its address.
        let node = node.cast::<Opaque<bindings::rb_node>>();
        // SAFETY: `node` points at the `links` field of a batch (function contract): stepping
        // back by that field's offset stays inside the same object.
        let batch = unsafe { kernel::container_of!(node, Self, links) };
        // SAFETY: Derived from a non-null pointer into a live object.
        unsafe { NonNull::new_unchecked(batch) }
    }

    /// Whether the slots are a [`SlotArray`].
    fn is_many(&self) -> bool {
        self.start_many & MANY != 0
    }

    /// The slot array, if the batch has one.
    fn array(&self) -> Option<&SlotArray> {
        // SAFETY: The `MANY` bit says `many` is live (type invariant).
        self.is_many().then(|| unsafe { &*self.slots.many })
    }

    fn slots(&self) -> &[GrantSlot] {
        match self.array() {
            // SAFETY: The array holds `len` live slots for as long as the batch lives
            // (`SlotArray` invariant).
            Some(array) => unsafe {
                core::slice::from_raw_parts(array.slots.as_ptr(), u32_to_usize(array.len))
            },
            // SAFETY: No `MANY` bit: `one` is live (type invariant).
            None => core::slice::from_ref(unsafe { &*self.slots.one }),
        }
    }

    /// Number of slots.
    pub(crate) fn len(&self) -> usize {
        self.array().map_or(1, |array| u32_to_usize(array.len))
    }

    /// The first key.
    fn start(&self) -> u64 {
        self.start_many & !MANY
    }

    /// Key of the last slot: the batch's key in its file's index.
    pub(crate) fn last_key(&self) -> u64 {
        self.start() + usize_to_u64(self.len().saturating_sub(1) * xen::XEN_PAGE_SIZE)
    }

    /// The position of the slot with `key`, if the batch has one.
    pub(crate) fn slot_of(&self, key: u64) -> Option<usize> {
        let off = key.checked_sub(self.start())?;
        if off % usize_to_u64(xen::XEN_PAGE_SIZE) != 0 {
            return None;
        }
        let i = usize::try_from(off / usize_to_u64(xen::XEN_PAGE_SIZE)).ok()?;
        (i < self.len()).then_some(i)
    }

    /// Whether every slot of `range` is listed. Stable under the file's index lock.
    pub(crate) fn all_listed(&self, range: core::ops::Range<usize>) -> bool {
        self.slots()
            .get(range)
            .is_some_and(|slots| slots.iter().all(GrantSlot::is_listed))
    }

    /// Number of slots still listed.
    pub(crate) fn listed(&self) -> usize {
        match self.array() {
            Some(array) => u32_to_usize(array.listed.load(Relaxed)),
            None => usize::from(self.slots().iter().any(GrantSlot::is_listed)),
        }
    }

    /// Number of granted slots of the kernel page holding slot `i`, from its first one on:
    /// every page of the batch is full but maybe the last.
    fn page_grants(&self, i: usize) -> usize {
        let first = i - xen::xen_index(i);
        (self.len() - first).min(XEN_PAGES_PER_PAGE)
    }

    /// The kernel pages of the slots `range`, which starts on a page's first slot (a mapping
    /// covers whole pages), in order: each page's first slot's page.
    ///
    /// # Safety
    ///
    /// The caller holds a mapping user on each slot of `range` for as long as the result is
    /// used.
    unsafe fn pages(&self, range: core::ops::Range<usize>) -> impl Iterator<Item = &xen::PageRef> {
        let slots = self.slots().get(range);
        slots
            .into_iter()
            .flatten()
            .step_by(XEN_PAGES_PER_PAGE)
            // SAFETY: The caller holds a user on the slot (function contract).
            .map(|slot| unsafe { slot.page() })
    }

    /// Gives up a mapping user of every slot of `range`.
    fn drop_mapping(&self, range: core::ops::Range<usize>) {
        if let Some(slots) = self.slots().get(range) {
            for slot in slots {
                slot.drop_user(1);
            }
        }
    }
}

/// A batch as found in the index of the file that lists it, for as long as that index is
/// borrowed: the witness that its holder is serialised with every other user of the index (the
/// file's index lock owns the index; a file going away has it to itself). The listing of the
/// batch's slots and their notifications change only through it.
///
/// # Invariants
///
/// `batch` is listed in a [`BatchIndex`](crate::index::BatchIndex) that is borrowed for `'a`,
/// or was taken out of one borrowed mutably for `'a` (a file going away).
#[derive(Clone, Copy)]
pub(crate) struct ListedBatch<'a> {
    batch: &'a GrantBatch,
}

impl<'a> ListedBatch<'a> {
    /// The witness for `batch`.
    ///
    /// # Safety
    ///
    /// `batch` is listed in a `BatchIndex` that the caller borrows for `'a`.
    pub(crate) unsafe fn new(batch: &'a GrantBatch) -> Self {
        // INVARIANT: The function contract.
        Self { batch }
    }

    /// The batch.
    pub(crate) fn batch(self) -> &'a GrantBatch {
        self.batch
    }

    /// Counts, among listed slots, those covered by a mapping and those with a notification.
    pub(crate) fn count_mapped_notify(self) -> (usize, usize) {
        let (mut mapped, mut notify) = (0, 0);
        for slot in self.batch.slots().iter().filter(|s| s.is_listed()) {
            mapped += usize::from(slot.is_mapped());
            // SAFETY: The slot is listed and we are serialised with every other user of the
            // index listing it (type invariant): nobody writes `notify` meanwhile.
            notify += usize::from(unsafe { &*slot.notify.get() }.is_some());
        }
        (mapped, notify)
    }

    /// Number of granted slots of the kernel page holding slot `i` (all of them from `i` on,
    /// when `i` is the page's first slot), if slot `i` is listed.
    pub(crate) fn page_grants(self, i: usize) -> Option<usize> {
        self.batch.slots().get(i).filter(|s| s.is_listed())?;
        Some(self.batch.page_grants(i))
    }

    /// Replaces the notification of listed slot `i` and returns the old one, to be dropped by
    /// the caller outside the lock (it may hold an event channel); `ENOENT` if the slot is not
    /// listed, before `make` runs; `ENOMEM` if an armed one finds no memory (the slot keeps
    /// its old one).
    pub(crate) fn replace_notify(
        self,
        i: usize,
        make: impl FnOnce() -> Result<UnmapNotify>,
    ) -> Result<Option<KBox<UnmapNotify>>> {
        let slot = self
            .batch
            .slots()
            .get(i)
            .filter(|s| s.is_listed())
            .ok_or(ENOENT)?;
        let new = make()?;
        let new = if new.is_armed() {
            Some(KBox::new(new, GFP_KERNEL)?)
        } else {
            None
        };
        // SAFETY: The slot is listed, so no releaser exists, and every other access to
        // `notify` is by a user of the index, with which we are serialised (type invariant).
        Ok(core::mem::replace(unsafe { &mut *slot.notify.get() }, new))
    }

    /// Unlists the listed slots of `range`, releasing those that no mapping holds. Returns
    /// whether no slot of the batch is listed any more (the caller then removes the batch from
    /// its index).
    pub(crate) fn unlist(self, range: core::ops::Range<usize>) -> bool {
        let mut n = 0u32;
        for slot in self.batch.slots().get(range).into_iter().flatten() {
            if slot.is_listed() {
                slot.drop_user(LISTED);
                n += 1;
            }
        }
        if let Some(array) = self.batch.array() {
            // Serialised with the index (type invariant): no concurrent change of `listed`.
            let left = array.listed.load(Relaxed).saturating_sub(n);
            array.listed.store(left, Relaxed);
        }
        self.batch.listed() == 0
    }

    /// Unlists every slot still listed: the file is going away. Slots that a mapping covers
    /// live on with it; the others are released here.
    pub(crate) fn unlist_all(self) {
        self.unlist(0..self.batch.len());
    }

    /// Adds a mapping user to every slot of `range`: `ENOENT` unless they are all listed,
    /// `ENOMEM` if one already has as many mappings as its count holds (no user taken either
    /// way).
    fn add_mapping(self, range: core::ops::Range<usize>) -> Result {
        let slots = self.batch.slots().get(range).ok_or(ENOENT)?;
        // One look at each slot for both checks. The listing is stable while we are serialised
        // with the index (type invariant); only mappings add to the count, and only under the
        // index lock, so it cannot grow meanwhile and none carries into `LISTED`.
        let mut full = false;
        for slot in slots {
            let users = slot.users.load(Relaxed);
            if users & LISTED == 0 {
                return Err(ENOENT);
            }
            full |= users & !LISTED == MAX_MAPPINGS;
        }
        if full {
            return Err(ENOMEM);
        }
        for slot in slots {
            // A listed slot has a user already: it cannot be released meanwhile.
            slot.users.add(1, Relaxed);
        }
        Ok(())
    }
}

/// Slots `first..first + count` of a batch, a run of consecutive slots that a mapping covers,
/// each holding one mapping user for as long as the run lives.
///
/// # Invariants
///
/// The run owns one mapping user on each slot of its range.
pub(crate) struct SlotRun {
    batch: ARef<GrantBatch>,
    first: usize,
    count: usize,
}

impl SlotRun {
    /// Takes a mapping user on slots `first..first + count` of `batch`; `ENOENT` unless they
    /// are all listed, `ENOMEM` if one has as many mappings as it can count.
    pub(crate) fn new(batch: ListedBatch<'_>, first: usize, count: usize) -> Result<Self> {
        let end = first.checked_add(count).ok_or(ENOENT)?;
        batch.add_mapping(first..end)?;
        // INVARIANT: One mapping user taken on each slot of the range.
        Ok(Self {
            batch: ARef::from(batch.batch()),
            first,
            count,
        })
    }

    /// The position of the slot right after the run, if the batch has one at `key`.
    pub(crate) fn following_slot(&self, key: u64) -> Option<usize> {
        let i = self.first + self.count;
        (self.batch.slot_of(key) == Some(i)).then_some(i)
    }

    /// Extends the run by the `count` slots that follow it, found listed in `batch`, the run's
    /// batch; `ENOENT` (and the run unchanged) unless they all are, `ENOMEM` as [`SlotRun::new`].
    pub(crate) fn extend(&mut self, batch: ListedBatch<'_>, count: usize) -> Result {
        let end = self.first + self.count;
        let new_end = end.checked_add(count).ok_or(ENOENT)?;
        if !core::ptr::eq(batch.batch(), &*self.batch) {
            return Err(ENOENT);
        }
        batch.add_mapping(end..new_end)?;
        // INVARIANT: The added slots have their mapping user.
        self.count += count;
        Ok(())
    }

    /// The kernel pages of the run, in order.
    pub(crate) fn pages(&self) -> impl Iterator<Item = &xen::PageRef> {
        // SAFETY: The run holds a mapping user on each of its slots (type invariant), for as
        // long as `self` is borrowed.
        unsafe { self.batch.pages(self.first..self.first + self.count) }
    }

    /// Hands the run's slots to its batch's inline mapping, if the run is the whole batch and no
    /// other mapping has claimed it; gives the run back otherwise. `batch` is the run's batch as
    /// its file's index lists it: claims are serialised by that index.
    pub(crate) fn into_inline(self, batch: ListedBatch<'_>) -> Result<ARef<InlineMapping>, Self> {
        if !core::ptr::eq(batch.batch(), &*self.batch)
            || self.first != 0
            || self.count != self.batch.len()
        {
            return Err(self);
        }
        let vmas = &self.batch.inline.vmas;
        // Claims are serialised by the index (the witness), so the count cannot leave zero
        // between this test and the `set` below; a last holder dropping it to zero meanwhile
        // only makes it claimable. Nothing else is handed over: the mapping's slots are the
        // whole batch, whoever claims it.
        if vmas.as_atomic().load(Relaxed) != 0 {
            return Err(self);
        }
        vmas.set(1);
        // INVARIANT: The run's mapping users and its batch reference go to the claimed inline
        // mapping, which has one reference, returned here.
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is not used again, nor dropped: its batch reference is moved out once.
        let batch = unsafe { core::ptr::read(&this.batch) };
        // A pointer to the whole batch (not to its `inline` field), so that what the mapping
        // reaches through it stays within what the pointer may access.
        let mapping = ARef::into_raw(batch).cast::<InlineMapping>();
        // SAFETY: `InlineMapping` is a transparent view of the batch, and this is the one
        // reference of the claim made above (`InlineMapping`'s invariants).
        Ok(unsafe { ARef::from_raw(mapping) })
    }
}

impl Drop for SlotRun {
    fn drop(&mut self) {
        self.batch.drop_mapping(self.first..self.first + self.count);
    }
}

/// The bookkeeping of the mapping every batch can carry inline, so that the most common
/// mapping, of a whole batch (libxengnttab maps what one ALLOC made, once), needs no allocation.
/// While claimed it is an [`InlineMapping`]; a mapping that finds it claimed, or that covers
/// part of a batch, gets a `SpanMapping` of its own (`gntalloc.rs`).
///
/// # Invariants
///
/// - While `vmas` is not zero (the mapping is claimed), it counts the references on the
///   [`InlineMapping`] (one per VMA of the mapping, or the mmap() call's; once saturated, it
///   stays so and never frees), and the batch holds one mapping user on each of its slots and
///   one reference on itself for them.
/// - `vmas` leaves zero only under the index lock of the file listing the batch.
pub(crate) struct InlineMappingState {
    vmas: Refcount,
}

impl InlineMappingState {
    fn new() -> Self {
        // INVARIANT: not claimed.
        Self {
            vmas: Refcount::new(0),
        }
    }
}

/// A batch's inline mapping while claimed: the only state in which it is reference-counted, by
/// the VMAs of the mapping (see [`InlineMappingState`]). A transparent view of the batch.
///
/// # Invariants
///
/// An `InlineMapping` is only reached through a counted reference ([`ARef`], from
/// [`SlotRun::into_inline`] or a copy of it), so `self.0.inline` is claimed whenever one is
/// borrowed.
#[repr(transparent)]
pub(crate) struct InlineMapping(GrantBatch);

impl InlineMapping {
    /// The kernel pages of the mapping, in order.
    pub(crate) fn pages(&self) -> impl Iterator<Item = &xen::PageRef> {
        // SAFETY: The claimed mapping holds a mapping user on each slot of its batch while a
        // reference on it is held (type invariants), and the borrow of `self` lasts no longer.
        unsafe { self.0.pages(0..self.0.len()) }
    }
}

// SAFETY: A claimed inline mapping keeps its batch, and therefore itself, alive until its count
// drops to zero; every reference handed out counts in `vmas` (type invariants).
unsafe impl AlwaysRefCounted for InlineMapping {
    fn inc_ref(&self) {
        // Saturates (and then never frees) rather than wrap, as every `refcount_t`.
        self.0.inline.vmas.inc();
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller owns a reference (function contract): the mapping is claimed and its
        // batch live.
        let mapping = unsafe { obj.as_ref() };
        if !mapping.0.inline.vmas.dec_and_test() {
            return;
        }
        // This was the last reference: the mapping users and the batch reference of the claim
        // are ours. Once the count is zero a new claim may take users and a reference of its
        // own, which these do not touch.
        mapping.0.drop_mapping(0..mapping.0.len());
        // SAFETY: A claimed inline mapping holds one reference on its batch (type invariants),
        // and `obj` points at that batch.
        drop(unsafe { ARef::from_raw(obj.cast::<GrantBatch>()) });
    }
}
