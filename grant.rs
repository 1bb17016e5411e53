// SPDX-License-Identifier: GPL-2.0

//! Grants as the device hands them out, the global accounting against `limit`, and the deferred
//! list of grants that a remote domain still maps.
//!
//! A [`Grant`] is one 4K grant (one "slot" of a file's index space). It is shared through `Arc`
//! by its holders: the file's index tree (until DEALLOC or close) and every mmap() family that
//! covers it. When the last holder lets go, `Drop` fires the unmap notification (byte, then
//! event) and ends the grant. If the remote domain still maps the page, the grant goes to
//! [`DEFERRED`]: it stays counted against `limit` and is retried on later ioctls and by a
//! periodic work item until the remote has unmapped it.
//!
//! Lock order (see `gntalloc.rs`): a file's index lock → [`DEFERRED`] → the grant-table core's
//! spinlock. A grant's `notify` lock is a leaf, never held while another lock is taken.
//! [`STATS`]`.deferred` changes only under [`DEFERRED`], with the list, so that it never reads
//! below zero.

use core::mem::ManuallyDrop;
use kernel::{
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        SpinLock, //
    },
};

use crate::xen::{
    self,
    EvtchnRef,
    ForeignGrant, //
};

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

/// Reserves `count` grants against `limit`: `ENOSPC` if that would exceed it.
///
/// As upstream, the check fails when usage is already above the limit (which root may have
/// lowered), even for `count == 0`.
pub(crate) fn reserve(count: u32) -> Result {
    let mut cur = STATS.in_use.load(Relaxed);
    loop {
        let limit = xen::grant_limit();
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
pub(crate) fn reclaim_some() {
    reclaim_deferred(Some(RECLAIM_IOCTL_BUDGET));
}

/// Hands every deferred grant to the grant-table core. Called at module unload, after the
/// periodic retry has been stopped and when no file is open.
pub(crate) fn flush_deferred_to_core() {
    let mut list = DEFERRED.lock();
    // First a last chance to end them here; the rest is dropped, which hands it to the core.
    list.retain(|grant| !grant.try_end());
    let pending = list.len();
    list.clear();
    STATS.deferred.store(0, Relaxed);
    drop(list);
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
    /// Byte of the granted Xen page to clear.
    pub(crate) clear_byte: Option<usize>,
    /// Event channel to signal; holding it keeps the port from being closed or reused.
    pub(crate) event: Option<EvtchnRef>,
}

impl UnmapNotify {
    /// Whether any action is pending.
    pub(crate) fn is_armed(&self) -> bool {
        self.clear_byte.is_some() || self.event.is_some()
    }
}

/// One 4K grant handed out by the device.
///
/// # Invariants
///
/// `frame` is initialised until `drop` takes it. The grant is counted once in
/// [`STATS`]`.in_use` from creation until its frame is ended.
#[pin_data(PinnedDrop)]
pub(crate) struct Grant {
    frame: ManuallyDrop<ForeignGrant>,
    /// The pending unmap notification, set by SET_UNMAP_NOTIFY.
    #[pin]
    notify: SpinLock<UnmapNotify>,
    /// Number of mmap() families that cover this grant, for fdinfo.
    mappings: Atomic<u32>,
}

impl Grant {
    /// Wraps a new grant; the caller has already reserved one slot of the limit for it.
    pub(crate) fn new(frame: ForeignGrant) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                frame: ManuallyDrop::new(frame),
                notify <- kernel::new_spinlock!(UnmapNotify::default(), "Grant::notify"),
                mappings: Atomic::new(0),
            }),
            GFP_KERNEL,
        )
    }

    /// The kernel page holding the granted Xen page, and the Xen page's index in it.
    ///
    /// Fails only if the grant has been ended, which cannot happen while `self` is shared.
    pub(crate) fn page(&self) -> Result<(&xen::PageRef, usize)> {
        Ok((self.frame.page().ok_or(ENOENT)?, self.frame.xen_index()))
    }

    /// Number of grants sharing this grant's kernel page (the first Xen pages of it; the rest
    /// is padding). 1 on 4K kernels.
    pub(crate) fn page_grants(&self) -> usize {
        self.frame.page_grants()
    }

    /// Replaces the unmap notification and returns the old one, to be dropped by the caller
    /// outside any lock (dropping it may release an event channel, which sleeps).
    pub(crate) fn set_notify(&self, new: UnmapNotify) -> UnmapNotify {
        core::mem::replace(&mut *self.notify.lock(), new)
    }

    /// Whether an unmap notification is pending.
    pub(crate) fn notify_armed(&self) -> bool {
        self.notify.lock().is_armed()
    }

    /// Records one more mmap() family covering this grant.
    pub(crate) fn mapped(&self) {
        self.mappings.add(1, Relaxed);
    }

    /// Records that an mmap() family covering this grant is gone.
    pub(crate) fn unmapped(&self) {
        self.mappings.fetch_sub(1, Relaxed);
    }

    /// Whether some mapping covers this grant.
    pub(crate) fn is_mapped(&self) -> bool {
        self.mappings.load(Relaxed) > 0
    }
}

#[pinned_drop]
impl PinnedDrop for Grant {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        let notify = core::mem::take(&mut *this.notify.lock());
        // SAFETY: `drop` runs once and nothing uses `frame` afterwards.
        let frame = unsafe { ManuallyDrop::take(this.frame) };
        // Byte first, then event, then the grant end: a peer woken by the event must see the
        // byte cleared and its mapping still valid (libxenvchan relies on this order).
        if let (Some(offset), Some(page)) = (notify.clear_byte, frame.page()) {
            page.clear_byte(frame.xen_index() * xen::XEN_PAGE_SIZE + offset);
        }
        if let Some(event) = &notify.event {
            event.notify();
        }
        drop(notify);
        end_or_defer(frame);
    }
}
