// SPDX-License-Identifier: GPL-2.0

//! Grants as the device hands them out, the global accounting against `limit`, and the deferred
//! list of grants that a remote domain still maps.
//!
//! A [`GrantBatch`] holds the grants of one ALLOC by value, one 4K "slot" of the file's index
//! space each. It is reference-counted ([`ARef`]) and shared by the file's index (which links it
//! in its tree, see `index.rs`, until every slot is deallocated or the file is closed) and by
//! every mmap() family that covers some of its slots ([`MappedSlots`], or the batch's own
//! [`BatchMapping`]). Each slot counts its own users: the listing and the mappings. When
//! the last one lets go, the slot fires its unmap notification (byte, then event) and ends its
//! grant. If the remote domain still maps the page, the grant goes to [`DEFERRED`]: it stays
//! counted against `limit` and is retried on later ioctls and by a periodic work item until the
//! remote has unmapped it.
//!
//! Compared with one object per grant, a batch costs one allocation per ALLOC (two for more
//! than one grant: the slot array) instead of two per grant, and a slot is a few words. Batches
//! come from a slab cache of their own ([`BATCHES`], see `slab.rs`).
//!
//! Lock order (see `gntalloc.rs`): a file's index lock → [`DEFERRED`] → the grant-table core's
//! spinlock. A slot's notification is guarded by its file's index lock (see [`GrantSlot`]).
//! [`STATS`]`.deferred` changes only under [`DEFERRED`], with the list, so that it never reads
//! below zero.

use core::{
    cell::UnsafeCell,
    mem::{
        offset_of,
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
            Acquire,
            Atomic,
            Full,
            Relaxed,
            Release, //
        },
        Refcount,
    },
    types::Opaque,
};

use crate::{
    slab::SlabCache,
    xen::{
        self,
        EvtchnRef,
        ForeignGrant,
        GrantError,
        PageRef,
        XEN_PAGES_PER_PAGE, //
    },
};

/// The slab cache of every [`GrantBatch`], created at module init.
pub(crate) static BATCHES: SlabCache<GrantBatch> = SlabCache::new();

/// Counters exported through debugfs; all monotonic except `in_use` and `deferred`.
pub(crate) struct Stats {
    /// Grants counted against `limit`: live, reserved by an ALLOC in flight, or deferred.
    pub(crate) in_use: Atomic<u32>,
    /// Grants whose page a remote domain still maps, waiting in [`DEFERRED`].
    pub(crate) deferred: Atomic<u32>,
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
    limit_rejections: Atomic::new(0),
    table_full: Atomic::new(0),
    handed_to_core: Atomic::new(0),
};

/// Delay between two retries of the deferred list, in milliseconds.
const RECLAIM_PERIOD_MS: u32 = 100;

/// Deferred grants retried on an ioctl path; the periodic work item retries all of them.
const RECLAIM_IOCTL_BUDGET: usize = 16;

kernel::sync::global_lock! {
    // SAFETY: Initialised by `init` in the module initialiser, before any file can be opened.
    unsafe(uninit) static DEFERRED: Mutex<KVec<ForeignGrant>> = KVec::new();
}

/// Initialises the global state. Called once, from module init.
pub(crate) fn init() {
    // SAFETY: Called exactly once, before anything else uses `DEFERRED`.
    unsafe { DEFERRED.init() };
}

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

/// Returns `count` reserved or released grants.
pub(crate) fn unreserve(count: u32) {
    STATS.in_use.fetch_sub(count, Relaxed);
}

/// Retries ending deferred grants, at most `budget` of them (all with `None`), freeing those the
/// remote domain has unmapped. Re-arms the periodic retry while some remain.
pub(crate) fn reclaim_deferred(budget: Option<usize>) {
    if STATS.deferred.load(Relaxed) == 0 {
        return;
    }
    let mut list = DEFERRED.lock();
    let mut tried = 0usize;
    let before = list.len();
    list.retain(|grant| {
        if budget.is_some_and(|b| tried >= b) {
            return true;
        }
        tried += 1;
        !grant.try_end()
    });
    let freed = before - list.len();
    let remaining = list.len();
    STATS.deferred.fetch_sub(freed as u32, Relaxed);
    drop(list);
    unreserve(freed as u32);
    if remaining > 0 {
        // SAFETY: Called on an ioctl path (the open file pins the module) or by the retry
        // itself, never after module exit's `reclaim_stop`.
        unsafe { xen::reclaim_arm(RECLAIM_PERIOD_MS) };
    }
}

/// Retries a few deferred grants; called on the ioctl paths, like upstream's cleanup.
#[inline]
pub(crate) fn reclaim_some() {
    // Nearly always nothing is deferred: say so without a call (twice per ALLOC + DEALLOC).
    if STATS.deferred.load(Relaxed) != 0 {
        reclaim_deferred(Some(RECLAIM_IOCTL_BUDGET));
    }
}

/// Hands every deferred grant to the grant-table core. Called at module unload, after the
/// periodic retry has been stopped and when no file is open.
pub(crate) fn flush_deferred_to_core() {
    let mut list = DEFERRED.lock();
    // First a last chance to end them here; the rest is dropped, which hands it to the core.
    list.retain(|grant| !grant.try_end());
    let pending = list.len();
    // Its buffer too: nothing of the module outlives its exit.
    let rest = core::mem::take(&mut *list);
    STATS.deferred.store(0, Relaxed);
    drop(list);
    drop(rest);
    STATS.in_use.store(0, Relaxed);
    if pending > 0 {
        STATS.handed_to_core.add(pending as u64, Relaxed);
        pr_info!(
            "unload: {} grant(s) still mapped by a remote domain handed to the grant-table core\n",
            pending
        );
    }
}

/// Ends `frame`, or defers it if the remote domain still maps it. The grant's slot is released
/// from the accounting only once the grant is really ended.
fn end_or_defer(mut frame: ForeignGrant) {
    if frame.try_end() {
        unreserve(1);
        return;
    }
    let mut list = DEFERRED.lock();
    match list.push(frame, GFP_KERNEL) {
        Ok(()) => {
            STATS.deferred.add(1, Relaxed);
            drop(list);
            // SAFETY: Called when a grant is dropped; grants live in open files and their
            // mappings, which pin the module, so module exit (`reclaim_stop`) has not begun.
            unsafe { xen::reclaim_arm(RECLAIM_PERIOD_MS) };
        }
        Err(_) => {
            // `push` dropped the grant, which handed it to the core: it is no longer ours.
            drop(list);
            STATS.handed_to_core.add(1, Relaxed);
            unreserve(1);
        }
    }
}

/// What to do when a grant is released locally for the last time.
#[derive(Default)]
pub(crate) struct UnmapNotify {
    /// Byte of the granted Xen page to clear (below `XEN_PAGE_SIZE`). A `u16`, like the rest of
    /// a slot kept small: a batch's slots are one array, whose size rounds up to a power of two.
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

/// The bit of [`GrantSlot`]`::users` that stands for the file listing the slot; each mmap()
/// family covering the slot counts one in the bits below it.
const LISTED: u32 = 1 << 31;

/// One 4K grant of a [`GrantBatch`]: one slot of a file's index space.
///
/// # Invariants
///
/// - `users` is [`LISTED`] while the file lists the slot, plus one per mmap() family covering
///   it. Once it has dropped to zero it never rises again.
/// - While `users` is not zero, `frame` is initialised and `notify` holds the pending
///   notification. Whoever drops `users` to zero owns both from then on and releases them
///   ([`GrantSlot::release`]), as does `drop` for a slot still live (one that no index lists
///   and no mapping covers: a batch that failed to be made); nobody touches them afterwards.
/// - `notify` is accessed only under the index lock of the file that lists the slot, while it
///   is listed, or by the releaser.
/// - The slot is counted once in [`STATS`]`.in_use` until its frame is ended.
struct GrantSlot {
    users: Atomic<u32>,
    frame: UnsafeCell<ManuallyDrop<ForeignGrant>>,
    notify: UnsafeCell<UnmapNotify>,
}

impl GrantSlot {
    /// A listed slot owning `frame`.
    fn new(frame: ForeignGrant) -> Self {
        // INVARIANT: listed, with `frame` initialised and no notification.
        Self {
            users: Atomic::new(LISTED),
            frame: UnsafeCell::new(ManuallyDrop::new(frame)),
            notify: UnsafeCell::new(UnmapNotify::default()),
        }
    }

    /// Whether the file lists the slot. Stable under the file's index lock.
    fn is_listed(&self) -> bool {
        self.users.load(Relaxed) & LISTED != 0
    }

    /// Whether an mmap() family covers the slot.
    fn is_mapped(&self) -> bool {
        self.users.load(Relaxed) & !LISTED != 0
    }

    /// The granted frame.
    ///
    /// # Safety
    ///
    /// The caller holds one of the slot's users (the listing, under the file's index lock, or
    /// an mmap() family) for as long as the result is used.
    unsafe fn frame(&self) -> &ForeignGrant {
        // SAFETY: `users` is not zero while the caller holds a user, so `frame` is initialised
        // and only the releaser, which cannot exist yet, would take it (type invariant).
        unsafe { &*self.frame.get() }
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
        // SAFETY: The caller is the releaser (function contract): it owns `notify` and `frame`,
        // which are initialised until now and never touched again.
        let (notify, frame) = unsafe {
            (
                core::mem::take(&mut *self.notify.get()),
                ManuallyDrop::take(&mut *self.frame.get()),
            )
        };
        // Byte first, then event, then the grant end: a peer woken by the event must see the
        // byte cleared and its mapping still valid (libxenvchan relies on this order).
        if let (Some(offset), Some(page)) = (notify.clear_byte, frame.page()) {
            page.clear_byte(frame.xen_index() * xen::XEN_PAGE_SIZE + usize::from(offset));
        }
        if let Some(event) = &notify.event {
            event.notify();
        }
        drop(notify);
        end_or_defer(frame);
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

// A slot is four words: 1000 of them fill a 32 KiB allocation, not 64 KiB.
const _: () = assert!(size_of::<GrantSlot>() <= 32);

/// Where a batch keeps its slots: inline for a single grant (libxengnttab's most common
/// request), so that an ALLOC of one costs one allocation besides the page.
enum Slots {
    One(GrantSlot),
    Many(KVVec<GrantSlot>),
}

/// The grants of one ALLOC, held by value: slot `i` has key `start + i * XEN_PAGE_SIZE`.
///
/// A batch is reference-counted ([`ARef`]) and shared by the file's index (while any of its
/// slots is listed) and by every mmap() family that covers some of its slots; each slot counts
/// its own users, and is released, firing its notification and ending its grant, when the last
/// one lets go.
///
/// # Invariants
///
/// - The batch lives in an object of [`BATCHES`], freed when `refs` drops to zero.
/// - Every slot is live ([`GrantSlot`]'s invariants) when the batch is made.
/// - `start` changes only while the batch is a [`NewBatch`], before anyone else can see it.
/// - `listed` is the number of slots still listed; it changes only under the index lock of
///   the file that lists the batch.
/// - The batch is listed in at most one file's index, and only while `listed` is not zero;
///   `links` belong to that index's tree meanwhile.
pub(crate) struct GrantBatch {
    links: Opaque<bindings::rb_node>,
    refs: Refcount,
    listed: Atomic<u32>,
    start: u64,
    slots: Slots,
    mapping: BatchMapping,
}

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

/// A batch that nobody else references yet: made by [`GrantBatch::build`], not listed. Its key
/// range is set when it is placed in the file's index space ([`NewBatch::place`]).
pub(crate) struct NewBatch(ARef<GrantBatch>);

impl NewBatch {
    /// Gives the batch its keys, from `start` on, and hands it over for listing (by
    /// [`BatchIndex::insert`](crate::index::BatchIndex::insert) alone).
    pub(crate) fn place(self, start: u64) -> ARef<GrantBatch> {
        let batch = ARef::into_raw(self.0);
        // SAFETY: The batch is live and referenced by nobody else (a `NewBatch` holds the only
        // reference), so writing its `start` races with nothing. INVARIANT: still unshared.
        unsafe { (*batch.as_ptr()).start = start };
        // SAFETY: The reference taken out of `self` above, handed on.
        unsafe { ARef::from_raw(batch) }
    }
}

// SAFETY: The slots' cells are accessed as their invariants say: `notify` under the owning
// file's index lock or by the releaser, `frame` read by user holders and taken by the releaser
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
        count: usize,
        domid: u16,
        writable: bool,
        ids: &mut [u8],
    ) -> Result<NewBatch, GrantError> {
        let mut made = 0usize;
        let res = Self::build_slots(count, domid, writable, ids, &mut made).and_then(|slots| {
            // INVARIANT: a `BATCHES` object with one reference (the `NewBatch`'s), every slot
            // live, all listed, not in any tree; if the allocation fails, `slots` is dropped and
            // each slot ends its own grant.
            let batch = BATCHES
                .alloc(Self {
                    links: Opaque::new(bindings::rb_node::default()),
                    refs: Refcount::new(1),
                    listed: Atomic::new(count as u32),
                    start: 0,
                    slots,
                    mapping: BatchMapping::new(),
                })
                .map_err(GrantError::Other)?;
            // SAFETY: A fresh batch with one reference, which the `NewBatch` takes over.
            Ok(NewBatch(unsafe { ARef::from_raw(batch) }))
        });
        if res.is_err() {
            // The slots made were dropped with their batch (or its parts), each returning its
            // own reservation; return the rest.
            unreserve((count - made) as u32);
        }
        res
    }

    /// Makes the slots of [`GrantBatch::build`]; `made` counts those created (each carries its
    /// own reservation from then on).
    fn build_slots(
        count: usize,
        domid: u16,
        writable: bool,
        ids: &mut [u8],
        made: &mut usize,
    ) -> Result<Slots, GrantError> {
        let mut record = |k: usize, slot: &GrantSlot| {
            // SAFETY: The slot is new and listed; nothing else can reach it.
            let gref = unsafe { slot.frame() }.gref();
            if let Some(id) = ids.get_mut(k * size_of::<u32>()..(k + 1) * size_of::<u32>()) {
                id.copy_from_slice(&gref.to_ne_bytes());
            }
        };
        if count == 1 {
            let page = PageRef::alloc_zeroed().map_err(GrantError::Other)?;
            let slot = GrantSlot::new(ForeignGrant::new(domid, page, 0, 1, writable)?);
            *made = 1;
            record(0, &slot);
            return Ok(Slots::One(slot));
        }
        let mut slots =
            KVVec::with_capacity(count, GFP_KERNEL).map_err(|e| GrantError::Other(e.into()))?;
        while *made < count {
            let in_page = (count - *made).min(XEN_PAGES_PER_PAGE);
            let mut page = Some(PageRef::alloc_zeroed().map_err(GrantError::Other)?);
            for xen_index in 0..in_page {
                // Each slot owns one reference on the page; the last one takes the allocation's.
                let page_ref = if xen_index + 1 < in_page {
                    page.as_ref().map(PageRef::new_ref)
                } else {
                    page.take()
                }
                .ok_or(GrantError::Other(EINVAL))?;
                let frame = ForeignGrant::new(domid, page_ref, xen_index, in_page, writable)?;
                let slot = GrantSlot::new(frame);
                *made += 1;
                record(*made - 1, &slot);
                // Within the capacity reserved above, so this does not fail.
                slots
                    .push_within_capacity(slot)
                    .map_err(|_| GrantError::Other(ENOMEM))?;
            }
        }
        Ok(Slots::Many(slots))
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

    fn slots(&self) -> &[GrantSlot] {
        match &self.slots {
            Slots::One(slot) => core::slice::from_ref(slot),
            Slots::Many(slots) => slots,
        }
    }

    /// Number of slots.
    pub(crate) fn len(&self) -> usize {
        self.slots().len()
    }

    /// Key of the last slot: the batch's key in its file's index.
    pub(crate) fn last_key(&self) -> u64 {
        self.start + (self.len().saturating_sub(1) * xen::XEN_PAGE_SIZE) as u64
    }

    /// The position of the slot with `key`, if the batch has one.
    pub(crate) fn slot_of(&self, key: u64) -> Option<usize> {
        let off = key.checked_sub(self.start)?;
        if off % xen::XEN_PAGE_SIZE as u64 != 0 {
            return None;
        }
        let i = usize::try_from(off / xen::XEN_PAGE_SIZE as u64).ok()?;
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
        self.listed.load(Relaxed) as usize
    }

    /// The kernel pages of the slots `range`, in order: each page's first slot's page.
    ///
    /// # Safety
    ///
    /// The caller holds a mapping user on each slot of `range` for as long as the result is
    /// used.
    unsafe fn pages(&self, range: core::ops::Range<usize>) -> impl Iterator<Item = &xen::PageRef> {
        let slots = self.slots().get(range);
        slots.into_iter().flatten().filter_map(|slot| {
            // SAFETY: The caller holds a user on the slot (function contract).
            let frame = unsafe { slot.frame() };
            if frame.xen_index() == 0 {
                frame.page()
            } else {
                None
            }
        })
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
            notify += usize::from(unsafe { &*slot.notify.get() }.is_armed());
        }
        (mapped, notify)
    }

    /// Number of granted slots of the kernel page holding slot `i` (all of them from `i` on,
    /// when `i` is the page's first slot), if slot `i` is listed.
    pub(crate) fn page_grants(self, i: usize) -> Option<usize> {
        let slot = self.batch.slots().get(i).filter(|s| s.is_listed())?;
        // SAFETY: The listing is a user of the slot, which cannot go while we are serialised
        // with the index (type invariant) and borrow it.
        Some(unsafe { slot.frame() }.page_grants())
    }

    /// Replaces the notification of listed slot `i` and returns the old one, to be dropped by
    /// the caller outside the lock (it may hold an event channel); `ENOENT` if the slot is not
    /// listed, before `make` runs.
    pub(crate) fn replace_notify(
        self,
        i: usize,
        make: impl FnOnce() -> Result<UnmapNotify>,
    ) -> Result<UnmapNotify> {
        let slot = self
            .batch
            .slots()
            .get(i)
            .filter(|s| s.is_listed())
            .ok_or(ENOENT)?;
        let new = make()?;
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
        // Serialised with the index (type invariant): no concurrent change of `listed`.
        let left = self.batch.listed.load(Relaxed).saturating_sub(n);
        self.batch.listed.store(left, Relaxed);
        left == 0
    }

    /// Unlists every slot still listed: the file is going away. Slots that a mapping covers
    /// live on with it; the others are released here.
    pub(crate) fn unlist_all(self) {
        self.unlist(0..self.batch.len());
    }

    /// Adds a mapping user to every slot of `range`, if they are all listed; `false` (and no
    /// user taken) otherwise.
    fn add_mapping(self, range: core::ops::Range<usize>) -> bool {
        let Some(slots) = self.batch.slots().get(range) else {
            return false;
        };
        // Stable while we are serialised with the index (type invariant).
        if !slots.iter().all(GrantSlot::is_listed) {
            return false;
        }
        for slot in slots {
            // A listed slot has a user already: it cannot be released meanwhile.
            slot.users.add(1, Relaxed);
        }
        true
    }
}

/// Slots `first..first + count` of a batch, each holding one mapping user for as long as the
/// segment lives.
///
/// # Invariants
///
/// The segment owns one mapping user on each slot of its range.
pub(crate) struct MappedSlots {
    batch: ARef<GrantBatch>,
    first: usize,
    count: usize,
}

impl MappedSlots {
    /// Takes a mapping user on slots `first..first + count` of `batch`; `ENOENT` unless they
    /// are all listed.
    pub(crate) fn new(batch: ListedBatch<'_>, first: usize, count: usize) -> Result<Self> {
        let end = first.checked_add(count).ok_or(ENOENT)?;
        if !batch.add_mapping(first..end) {
            return Err(ENOENT);
        }
        // INVARIANT: One mapping user taken on each slot of the range.
        Ok(Self {
            batch: ARef::from(batch.batch()),
            first,
            count,
        })
    }

    /// The position of the slot right after the segment, if the batch has one at `key`.
    pub(crate) fn following_slot(&self, key: u64) -> Option<usize> {
        let i = self.first + self.count;
        (self.batch.slot_of(key) == Some(i)).then_some(i)
    }

    /// Extends the segment by the `count` slots that follow it, found listed in `batch`, the
    /// segment's batch; `ENOENT` (and the segment unchanged) unless they all are.
    pub(crate) fn extend(&mut self, batch: ListedBatch<'_>, count: usize) -> Result {
        let end = self.first + self.count;
        let new_end = end.checked_add(count).ok_or(ENOENT)?;
        if !core::ptr::eq(batch.batch(), &*self.batch) || !batch.add_mapping(end..new_end) {
            return Err(ENOENT);
        }
        // INVARIANT: The added slots have their mapping user.
        self.count += count;
        Ok(())
    }

    /// The kernel pages of the segment, in order.
    pub(crate) fn pages(&self) -> impl Iterator<Item = &xen::PageRef> {
        // SAFETY: The segment holds a mapping user on each of its slots (type invariant), for as
        // long as `self` is borrowed.
        unsafe { self.batch.pages(self.first..self.first + self.count) }
    }

    /// Hands the segment's slots to its batch's family record ([`BatchMapping`]), if no other
    /// family has claimed it; gives the segment back otherwise. `batch` is the segment's batch
    /// as its file's index lists it: claims are serialised by that index.
    pub(crate) fn into_family(self, batch: ListedBatch<'_>) -> Result<ARef<BatchMapping>, Self> {
        if !core::ptr::eq(batch.batch(), &*self.batch) {
            return Err(self);
        }
        let record = &self.batch.mapping;
        // Acquire: pairs with the release of the last holder, whose reads of `first` and `count`
        // then come before the writes below.
        if record.claimed.load(Acquire) != 0 {
            return Err(self);
        }
        let (Ok(first), Ok(count)) = (u32::try_from(self.first), u32::try_from(self.count)) else {
            return Err(self);
        };
        // SAFETY: Not claimed, and we are serialised with the index listing the batch (the
        // witness): nobody else reads or writes `first` and `count` (`BatchMapping`'s
        // invariants).
        unsafe {
            *record.first.get() = first;
            *record.count.get() = count;
        }
        record.vmas.store(1, Relaxed);
        record.claimed.store(1, Relaxed);
        // INVARIANT: The segment's mapping users and its batch reference go to the record, which
        // has one reference, returned here.
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is not used again, nor dropped: its batch reference is moved out once.
        let batch = unsafe { core::ptr::read(&this.batch) };
        let record = NonNull::from(&batch.mapping);
        let _ = ARef::into_raw(batch);
        // SAFETY: The record's one reference, claimed above.
        Ok(unsafe { ARef::from_raw(record) })
    }
}

impl Drop for MappedSlots {
    fn drop(&mut self) {
        self.batch.drop_mapping(self.first..self.first + self.count);
    }
}

/// The mmap() family record every batch carries, so that the most common mapping, of slots of
/// one batch (libxengnttab maps what one ALLOC made, once), needs no allocation: while claimed,
/// it stands for one family, holding a mapping user on each of its slots and a reference on the
/// batch, and counts the family's VMAs. A mapping that finds it claimed gets a
/// `MappingRange` of its own (`gntalloc.rs`).
///
/// # Invariants
///
/// - While `claimed` is set, `vmas` counts the references held on the record (one per VMA of
///   its family, or the mmap() call's), and the record holds one mapping user on each slot of
///   `first..first + count` and one reference on its batch. `first` and `count` change only
///   while `claimed` is clear, under the index lock of the file listing the batch.
/// - `claimed` is set only under that lock, and cleared by whoever drops `vmas` to zero, after
///   its last use of `first` and `count`.
pub(crate) struct BatchMapping {
    claimed: Atomic<u32>,
    vmas: Atomic<u32>,
    first: UnsafeCell<u32>,
    count: UnsafeCell<u32>,
}

impl BatchMapping {
    const fn new() -> Self {
        // INVARIANT: not claimed.
        Self {
            claimed: Atomic::new(0),
            vmas: Atomic::new(0),
            first: UnsafeCell::new(0),
            count: UnsafeCell::new(0),
        }
    }

    /// The batch that carries the record.
    fn batch(&self) -> &GrantBatch {
        let record = core::ptr::from_ref(self);
        // SAFETY: Every record is the `mapping` field of a batch, which is live while the
        // record is referenced: stepping back by the field's offset gives that batch.
        unsafe {
            &*record
                .byte_sub(offset_of!(GrantBatch, mapping))
                .cast::<GrantBatch>()
        }
    }

    /// The slots of the family, as `first..first + count`.
    ///
    /// # Safety
    ///
    /// The record is claimed and the caller holds a reference on it.
    unsafe fn slots(&self) -> core::ops::Range<usize> {
        // SAFETY: Claimed, so `first` and `count` do not change until the last reference,
        // which the caller still holds, is dropped (type invariant).
        let (first, count) = unsafe { (*self.first.get() as usize, *self.count.get() as usize) };
        first..first + count
    }

    /// The kernel pages of the family, in order.
    ///
    /// # Safety
    ///
    /// As [`BatchMapping::slots`].
    pub(crate) unsafe fn pages(&self) -> impl Iterator<Item = &xen::PageRef> {
        // SAFETY: As this function's contract.
        let range = unsafe { self.slots() };
        // SAFETY: The record holds a mapping user on each slot of `range` while the caller holds
        // its reference (type invariant), and the borrow of `self` lasts no longer.
        unsafe { self.batch().pages(range) }
    }
}

// SAFETY: `first` and `count` are written only while no reference exists (under the index
// lock) and read only by reference holders; everything else is atomic.
unsafe impl Sync for BatchMapping {}
// SAFETY: As `Sync`; the record owns nothing that is tied to a thread.
unsafe impl Send for BatchMapping {}

// SAFETY: A claimed record keeps its batch, and therefore itself, alive until its count drops to
// zero; every reference handed out counts in `vmas` (type invariants).
unsafe impl AlwaysRefCounted for BatchMapping {
    fn inc_ref(&self) {
        self.vmas.add(1, Relaxed);
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller owns a reference (function contract): the record is claimed and its
        // batch live.
        let record = unsafe { obj.as_ref() };
        // Fully ordered, as a refcount's decrement.
        if record.vmas.fetch_sub(1, Full) != 1 {
            return;
        }
        // SAFETY: This was the last reference: the record is ours until `claimed` is cleared.
        let range = unsafe { record.slots() };
        let batch = record.batch();
        batch.drop_mapping(range);
        // The reference the record held on its batch, taken out before the record is released
        // (a new claimer may take another one right after).
        // SAFETY: Claimed records hold one reference on their batch (type invariant).
        let batch = unsafe { ARef::from_raw(NonNull::from(batch)) };
        // INVARIANT: Released after the last use of `first` and `count`; the release orders
        // those uses before a new claimer's writes.
        record.claimed.store(0, Release);
        drop(batch);
    }
}
