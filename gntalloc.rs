// SPDX-License-Identifier: GPL-2.0

//! `/dev/xen/gntalloc` in Rust: user space allocates pages, grants another Xen domain access to
//! them, maps them, and is notified when they are released.
//!
//! This file owns the device, the per-open-file state (the file's index space) and `mmap`. The
//! ioctl ABI is in `gntalloc_ioctl.rs`, grants and their accounting in `grant.rs`, the tree of a
//! file's batches in `index.rs`, the VMA lifetime plumbing in `vma.rs`, the slab caches in
//! `slab.rs` and everything Xen in `xen.rs`.
//!
//! A file's index space is keyed in 4K Xen-page slots: ALLOC(count) gives `count` slots at keys
//! `index + k * 4096`, packed into `ceil(count / slots-per-page)` fresh kernel pages (grant `k` is
//! Xen page `k % slots-per-page` of page `k / slots-per-page`); `index` is kernel-page aligned and
//! only ever grows. The slots of a page after its last grant are padding: zeroed, never granted,
//! never listed. DEALLOC and SET_UNMAP_NOTIFY address slots; an mmap covers whole kernel pages and
//! needs every granted slot of each of them. On 4K kernels a slot is a page and every offset equals
//! upstream's; on 64K kernels libxengnttab's `mmap(count * 4096)` at `index` then puts grant `k`
//! at offset `k * 4096`, where upstream grants only the first 4K of each page.
//!
//! # Words
//!
//! - A *batch* (`grant::GrantBatch`) is what one ALLOC made; a *slot* is one 4K grant of it.
//! - A *mapping* is what one `mmap()` call made. Every VMA descended from that call (split by a
//!   partial munmap or mprotect, copied by fork, moved by mremap) shares it (`vma::VmaShared`),
//!   and it holds a *mapping user* on each slot it covers until the last of those VMAs is gone.
//! - A mapping of a whole batch lives inline in the batch (`grant::InlineMapping`) if no other
//!   mapping holds that place; any other mapping is a [`SpanMapping`], an object of its own
//!   listing one *run* (`grant::SlotRun`) per stretch of consecutive slots of one batch.
//!
//! # Lock order
//!
//! `mmap_lock` (held by mm around `mmap` and the VMA callbacks) → [`FileState`]`::index` →
//! { Xen's `irq_mapping_update_lock`, the deferred list (`grant.rs`) → the grant-table core's
//! lock }.
//!
//! - A slot is released, firing its notification and ending its grant, wherever its last user
//!   lets go: under `index` (DEALLOC, close, a failed mmap) or under `mmap_lock` alone (the last
//!   VMA of a mapping). Releasing its event channel (`evtchn_put`) takes the sleeping
//!   `irq_mapping_update_lock` there; SET_UNMAP_NOTIFY takes its reference (`evtchn_get`)
//!   before `index`.
//! - A slot's notification is guarded by `index` itself (no lock of its own): it is set and
//!   read only while the slot is listed, and taken by the slot's releaser.
//! - A batch's inline mapping (`grant::InlineMapping`) is claimed under `index` and given back,
//!   with atomics alone, by the last VMA of the mapping that claimed it.
//! - No user memory is touched under `index`, and nothing sleeps long under it: ALLOC makes the
//!   pages and grants without it, as upstream makes them outside its global mutex, then takes it
//!   once, briefly, to give the finished batch its index range and list it. mmap holds it while
//!   it inserts the pages, and SET_UNMAP_NOTIFY while it swaps the notification, so that no
//!   user of a slot outlives the lock but a mapping's: a DEALLOC that finds a slot unmapped ends
//!   its grant before it returns.

use core::{
    mem::MaybeUninit,
    ptr::NonNull, //
};
use kernel::{
    debugfs,
    error::to_result,
    fs::File,
    miscdevice::{
        MiscDevice,
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    mm::virt::{
        flags as vm_flags,
        VmaNew, //
    },
    page::PAGE_SIZE,
    prelude::*,
    seq_file::{
        seq_print,
        SeqFile, //
    },
    sync::{
        aref::{
            ARef,
            AlwaysRefCounted, //
        },
        atomic::Relaxed,
        Mutex,
        MutexGuard,
        Refcount, //
    },
};

mod deferred;
mod gntalloc_ioctl;
mod grant;
mod index;
mod num;
mod slab;
mod vma;
mod xen;

use grant::{
    InlineMapping,
    ListedBatch,
    SlotRun,
    UnmapNotify, //
};
use index::BatchIndex;
use num::usize_to_u64;
use slab::SlabCache;
use vma::VmaShared;
use xen::{
    XEN_PAGES_PER_PAGE,
    XEN_PAGE_SIZE, //
};

// Upstream's name when built as its drop-in replacement (`CONFIG_XEN_GNTALLOC_IMPL_RUST`, see
// `Kbuild`), so that its sysfs paths, modprobe options and `xen_gntalloc.limit=` stay valid.
#[cfg(xgr_dropin)]
module! {
    type: GntallocModule,
    name: "xen_gntalloc",
    authors: ["xen-gntalloc-rs developers"],
    description: "User-space grant reference allocator driver (Rust)",
    license: "GPL",
}

// The side-by-side test module, loaded in turn with the C driver.
#[cfg(not(xgr_dropin))]
module! {
    type: GntallocModule,
    name: "xen_gntalloc_rs",
    authors: ["xen-gntalloc-rs developers"],
    description: "User-space grant reference allocator driver (Rust)",
    license: "GPL",
}

/// The debugfs directory of the counters: named after the module, as upstream's name when ours
/// replaces it.
#[cfg(xgr_dropin)]
const DEBUGFS_DIR: &CStr = c"xen-gntalloc";
#[cfg(not(xgr_dropin))]
const DEBUGFS_DIR: &CStr = c"xen-gntalloc-rs";

/// The module: the misc device, the debugfs counters and the deferred-grant machinery.
struct GntallocModule {
    _stats: Pin<KBox<debugfs::Scope<()>>>,
    _debugfs: debugfs::Dir,
    /// Taken first at exit (see `Drop`).
    miscdev: Option<Pin<KBox<MiscDeviceRegistration<FileState>>>>,
}

impl kernel::Module for GntallocModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        if !xen::xen_domain() {
            return Err(ENODEV);
        }
        if xen::device_node_taken() {
            pr_err!("xen/gntalloc is already registered (is xen-gntalloc loaded?)\n");
            return Err(EBUSY);
        }
        deferred::init();
        xen::reclaim_init();
        // Nothing can use the caches before the device is registered, the last step; if a
        // step fails, no object exists and they go again.
        create_caches()
            .and_then(|()| Self::register())
            .inspect_err(|_| destroy_caches())
    }
}

impl GntallocModule {
    /// The debugfs counters, then the device.
    fn register() -> Result<Self> {
        let dir = debugfs::Dir::new(DEBUGFS_DIR);
        let stats = KBox::pin_init(
            dir.scope((), c"stats", |(), d| {
                let s = &grant::STATS;
                d.read_only_file(c"in_use", &s.in_use);
                d.read_only_file(c"deferred", &s.deferred);
                d.read_only_file(c"deferred_age_ms", &s.deferred_age_ms);
                d.read_only_file(c"limit_rejections", &s.limit_rejections);
                d.read_only_file(c"table_full", &s.table_full);
                d.read_only_file(c"handed_to_core", &s.handed_to_core);
            }),
            GFP_KERNEL,
        )?;
        let miscdev = KBox::pin_init(
            MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"xen/gntalloc",
            }),
            GFP_KERNEL,
        )?;
        Ok(Self {
            _stats: stats,
            _debugfs: dir,
            miscdev: Some(miscdev),
        })
    }
}

impl Drop for GntallocModule {
    /// Setup in reverse: the device, the periodic retry, the deferred grants (and their list's
    /// buffer), the caches; the debugfs counters last, with the fields.
    fn drop(&mut self) {
        // No file is open (each pins the module), so no grant is alive but deferred ones, and
        // no batch or mapping is left in the caches.
        drop(self.miscdev.take());
        xen::reclaim_stop();
        deferred::flush_to_core();
        destroy_caches();
    }
}

/// The slab cache of every [`SpanMapping`].
static SPAN_MAPPINGS: SlabCache<SpanMapping> = SlabCache::new();

/// Creates the slab caches of batches and mappings.
fn create_caches() -> Result {
    grant::BATCHES.create(c"xen_gntalloc_batch")?;
    SPAN_MAPPINGS.create(c"xen_gntalloc_mapping")
}

/// Destroys the slab caches (those made); every object has been freed.
fn destroy_caches() {
    SPAN_MAPPINGS.destroy();
    grant::BATCHES.destroy();
}

/// The index space of an open file.
pub(crate) struct FileIndex {
    /// The batches with a slot still listed (not yet deallocated), by the key of their last
    /// slot: the first batch whose last key is at or above a key is the only one that can hold
    /// it.
    batches: BatchIndex,
    /// Key of the next allocation: kernel-page aligned, never reused.
    pub(crate) next: u64,
}

/// Per-open-file state, shared by `dup()`, fork and `SCM_RIGHTS` copies of the file.
#[pin_data]
pub(crate) struct FileState {
    #[pin]
    index: Mutex<FileIndex>,
}

impl FileIndex {
    /// Gives a new batch the next `span` bytes of the index space and lists it; returns the
    /// first key. Listing allocates nothing, so it cannot fail. Allocations take their keys
    /// from `next` upwards and `next` only grows, so the batch's keys are free.
    pub(crate) fn place(&mut self, batch: grant::NewBatch, span: u64) -> u64 {
        let start = self.next;
        self.next = start.wrapping_add(span);
        self.batches.insert(batch, start);
        start
    }

    /// The batch holding slot `key` (the slot listed or not) and the slot's position in it.
    fn find(&self, key: u64) -> Option<(ListedBatch<'_>, usize)> {
        let batch = self.batches.lower_bound(key)?;
        Some((batch, batch.batch().slot_of(key)?))
    }

    /// Collects the slots covering `pages` kernel pages from `start` for a new mapping: every
    /// granted slot of each page must be listed (padding slots after a page's last grant are
    /// not granted and not looked for); `ENOENT` otherwise.
    fn collect_mapping(&self, start: u64, pages: usize) -> Result<NewMapping> {
        let (first, rest) = match self.mapping_in_one_batch(start, pages)? {
            Some((first, batch)) => match first.into_inline(batch) {
                Ok(mapping) => return Ok(NewMapping::Inline(mapping)),
                Err(first) => (first, None),
            },
            None => self.collect_runs(start, pages)?,
        };
        let mapping = SPAN_MAPPINGS.alloc(SpanMapping {
            refs: Refcount::new(1),
            first,
            rest,
        })?;
        // INVARIANT: A fresh `SPAN_MAPPINGS` object with one reference.
        // SAFETY: That reference is handed over to the `ARef`.
        Ok(NewMapping::Span(unsafe { ARef::from_raw(mapping) }))
    }

    /// [`FileIndex::collect_mapping`]'s common case, a mapping inside one batch (libxengnttab
    /// maps what one ALLOC made), in one lookup: the run and its batch, `ENOENT` if a slot
    /// it needs is not listed, or `None` if the pages are not all in the batch holding `start`.
    fn mapping_in_one_batch(
        &self,
        start: u64,
        pages: usize,
    ) -> Result<Option<(SlotRun, ListedBatch<'_>)>> {
        let Some(listed) = self.batches.lower_bound(start) else {
            return Ok(None);
        };
        let batch = listed.batch();
        let Some(i) = batch.slot_of(start) else {
            return Ok(None);
        };
        // Slot `i` is the first of its page (keys of a mapping and batches both start on kernel
        // pages), so the pages' slots are the next `pages * XEN_PAGES_PER_PAGE`, of which the
        // batch's last page may have fewer granted.
        let Some(wanted) = pages.checked_mul(XEN_PAGES_PER_PAGE) else {
            return Ok(None);
        };
        let count = wanted.min(batch.len() - i);
        if count + XEN_PAGES_PER_PAGE <= wanted {
            // The batch ends before the last page.
            return Ok(None);
        }
        Ok(Some((SlotRun::new(listed, i, count)?, listed)))
    }

    /// [`FileIndex::collect_mapping`] across batches: the first run and the others.
    fn collect_runs(&self, start: u64, pages: usize) -> Result<(SlotRun, Option<KVec<SlotRun>>)> {
        let page_size = usize_to_u64(PAGE_SIZE);
        let end = usize_to_u64(pages)
            .checked_mul(page_size)
            .and_then(|len| start.checked_add(len))
            .ok_or(ENOENT)?;
        let mut first: Option<SlotRun> = None;
        // Runs grow only with slots that exist, so a bogus length fails on ENOENT, not ENOMEM; a
        // mapping inside one allocation needs no allocation for them.
        let mut rest = KVec::new();
        // The batch of the last run, as the index lists it.
        let mut last_batch: Option<ListedBatch<'_>> = None;
        let mut key = start;
        while key < end {
            // The page at `key` starts with a slot of some batch, and its granted slots all
            // come from that batch, since an ALLOC starts on a fresh page. Most often it is the
            // batch of the page before.
            let last = match rest.last_mut() {
                Some(run) => Some(run),
                None => first.as_mut(),
            };
            if let (Some(run), Some(batch)) = (last, last_batch) {
                if let Some(i) = run.following_slot(key) {
                    let n = batch.page_grants(i).ok_or(ENOENT)?;
                    run.extend(batch, n)?;
                    key += page_size;
                    continue;
                }
            }
            let (batch, i) = self.find(key).ok_or(ENOENT)?;
            let n = batch.page_grants(i).ok_or(ENOENT)?;
            let run = SlotRun::new(batch, i, n)?;
            last_batch = Some(batch);
            match first {
                None => first = Some(run),
                Some(_) => rest.push(run, GFP_KERNEL)?,
            }
            key += page_size;
        }
        Ok((first.ok_or(ENOENT)?, Some(rest)))
    }
}

impl Drop for FileIndex {
    fn drop(&mut self) {
        // The last copy of the file is closed: the slots it lists lose that user. Those that a
        // mapping still covers live on with it (the mapping holds their batch); the others are
        // released here, firing their notifications.
        //
        // Each batch leaves the tree, and is dropped, right after its slots are released. Left
        // to the tree's own drop, the batches' slot arrays (order-3 allocations at 1000 slots)
        // would be freed back to back after every page: the page allocator takes such a run of
        // high-order frees as heavy freeing, shrinks the per-CPU page list and pushes the pages
        // just freed on to the buddy lists, work the C driver's close hardly does (the profile of
        // `run-qemu --profile close_file_30000` shows it).
        self.batches.drain(|batch| batch.unlist_all());
    }
}

impl FileState {
    /// Locks the index space.
    pub(crate) fn lock_index(&self) -> MutexGuard<'_, FileIndex> {
        self.index.lock()
    }

    /// Replaces the unmap notification of the slot at `key` with the one `make` builds, and
    /// returns the old one for the caller to drop after the lock. `ENOENT` (before `make` runs)
    /// if the file does not list that slot, `ENOMEM` if an armed one finds no memory (the old
    /// one stays). The slot is not referenced beyond the lock hold, so
    /// a concurrent DEALLOC cannot leave it alive after returning.
    pub(crate) fn replace_notify(
        &self,
        key: u64,
        make: impl FnOnce() -> Result<UnmapNotify>,
    ) -> Result<Option<KBox<UnmapNotify>>> {
        let index = self.index.lock();
        let (batch, i) = index.find(key).ok_or(ENOENT)?;
        batch.replace_notify(i, make)
    }

    /// Removes `count` slots starting at `start` if all of them are listed with consecutive
    /// keys; `EINVAL` (and nothing removed) otherwise. Released slots that no mapping holds are
    /// ended here, firing their notifications before the ioctl returns.
    fn remove_range(&self, start: u64, count: usize) -> Result {
        let mut index = self.index.lock();
        // Most often the range lies in one batch (libxengnttab frees what one ALLOC made): check
        // and unlist it through one lookup.
        {
            let cursor = index.batches.lower_bound_mut(start).ok_or(EINVAL)?;
            let within = {
                let listed = cursor.batch();
                let batch = listed.batch();
                let i = batch.slot_of(start).ok_or(EINVAL)?;
                if count <= batch.len() - i {
                    if !batch.all_listed(i..i + count) {
                        return Err(EINVAL);
                    }
                    Some(listed.unlist(i..i + count))
                } else {
                    None
                }
            };
            if let Some(emptied) = within {
                if emptied {
                    drop(cursor.remove());
                }
                return Ok(());
            }
        }
        // Otherwise first check the whole range: batch after batch, each slot listed, keys
        // consecutive.
        {
            let mut cursor = index.batches.lower_bound_mut(start).ok_or(EINVAL)?;
            let (mut key, mut left) = (start, count);
            loop {
                let batch = cursor.batch().batch();
                let i = batch.slot_of(key).ok_or(EINVAL)?;
                let n = left.min(batch.len() - i);
                if !batch.all_listed(i..i + n) {
                    return Err(EINVAL);
                }
                left -= n;
                if left == 0 {
                    break;
                }
                key = key
                    .checked_add(usize_to_u64(n * XEN_PAGE_SIZE))
                    .ok_or(EINVAL)?;
                cursor = cursor.move_next().ok_or(EINVAL)?;
            }
        }
        // Then unlist the same slots. Releasing ends grants under this lock, which the lock
        // order allows; nothing here touches user memory. A batch left with no listed slot
        // leaves the index (its mappings may still hold it).
        let mut cursor = index.batches.lower_bound_mut(start);
        let (mut key, mut left) = (start, count);
        while left > 0 {
            let Some(current) = cursor else { break };
            let (n, emptied) = {
                let listed = current.batch();
                let Some(i) = listed.batch().slot_of(key) else {
                    break;
                };
                let n = left.min(listed.batch().len() - i);
                (n, listed.unlist(i..i + n))
            };
            left -= n;
            key = key.wrapping_add(usize_to_u64(n * XEN_PAGE_SIZE));
            cursor = if emptied {
                let (next, batch) = current.remove_current();
                drop(batch);
                next
            } else {
                current.move_next()
            };
        }
        Ok(())
    }
}

/// A new mapping, which each of its VMAs will hold a reference on.
enum NewMapping {
    /// A whole batch, in the inline mapping the batch carries (the common case: nothing to
    /// allocate).
    Inline(ARef<InlineMapping>),
    /// Any other mapping (or one whose batch's inline mapping is taken), in an object of its own.
    Span(ARef<SpanMapping>),
}

/// Pages handed to the page-table code per call: 512 bytes of stack.
const PAGES_PER_INSERT: usize = 64;

/// Makes `vma` a mapping of `pages`, in order.
///
/// As `vm_insert_page` each would, with the page-table writes batched (see
/// `gntalloc_rs_insert_pages`): in a Xen PV domain each of them is otherwise a hypercall.
fn insert_pages<'a>(vma: &VmaNew, pages: impl Iterator<Item = &'a xen::PageRef>) -> Result {
    vma.set_dontexpand();
    vma.set_dontdump();
    let mixed = vma.set_mixedmap();
    // Not zeroed: only the first `count` entries are written, and only those are read. Zeroing
    // the 512 bytes cost every mmap() about 430 instructions, 1.6% of a one-grant share cycle.
    let mut page_ptrs = [const { MaybeUninit::uninit() }; PAGES_PER_INSERT];
    let mut addr = vma.start();
    let mut pages = pages.peekable();
    while pages.peek().is_some() {
        let mut count = 0;
        for (ptr, page) in page_ptrs.iter_mut().zip(pages.by_ref()) {
            ptr.write(page.as_ptr());
            count += 1;
        }
        // SAFETY: `mixed` is a VMA being set up by `->mmap` (mmap_lock held for writing) with
        // VM_MIXEDMAP set; the page-table code refuses (EFAULT) a range outside it. The first
        // `count` entries of `page_ptrs`, written just above and all the callee reads, are pages
        // that the mapping keeps alive (its VMAs hold the mapping until the last of them is
        // closed; zapping drops the page table's own references). The previous call, if any,
        // inserted the page before `addr`.
        to_result(unsafe {
            xen::raw::gntalloc_rs_insert_pages(
                mixed.as_ptr(),
                addr,
                page_ptrs.as_mut_ptr().cast(),
                count,
                addr != vma.start(),
            )
        })?;
        addr += count * PAGE_SIZE;
    }
    Ok(())
}

/// A mapping in an object of its own: the slots covered by one `mmap()` call, shared by every
/// VMA descended from it, each slot holding a mapping user until the last of those VMAs is gone.
/// In index order: `first`, then `rest`, one [`SlotRun`] per run of consecutive slots of one
/// batch. `rest` is `None` for a mapping inside one batch, which then frees no vector either (an
/// empty `KVec` still calls the allocator when dropped).
///
/// # Invariants
///
/// The mapping lives in an object of [`SPAN_MAPPINGS`], freed when `refs` drops to zero.
pub(crate) struct SpanMapping {
    refs: Refcount,
    first: SlotRun,
    rest: Option<KVec<SlotRun>>,
}

// SAFETY: Every span mapping is reference-counted through `refs` and lives (in its slab object)
// until the count drops to zero (type invariant).
unsafe impl AlwaysRefCounted for SpanMapping {
    fn inc_ref(&self) {
        self.refs.inc();
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: Every span mapping comes from `SPAN_MAPPINGS` and is counted by `refs` (type
        // invariant); the caller owns the reference it gives up (function contract).
        unsafe { SPAN_MAPPINGS.put(obj, |mapping| &mapping.refs) };
    }
}

impl SpanMapping {
    /// The runs, in index order.
    fn runs(&self) -> impl Iterator<Item = &SlotRun> {
        Iterator::chain(
            core::iter::once(&self.first),
            self.rest.iter().flat_map(|rest| rest.iter()),
        )
    }
}

#[vtable]
impl MiscDevice for FileState {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        KBox::try_pin_init(
            try_pin_init!(Self {
                index <- kernel::new_mutex!(
                    FileIndex {
                        batches: BatchIndex::new(),
                        next: 0,
                    },
                    "FileState::index"
                ),
            }),
            GFP_KERNEL,
        )
    }

    fn mmap(state: Pin<&Self>, _file: &File, vma: &VmaNew) -> Result {
        // Also refuses MAP_SHARED on an O_RDONLY file, where mm clears VM_SHARED.
        if vma.flags() & vm_flags::SHARED == 0 {
            return Err(EINVAL);
        }
        // SAFETY: `vma` is being set up by `->mmap`: its fields are stable and ours to read.
        let pgoff = usize_to_u64(unsafe { (*vma.as_ptr()).vm_pgoff });
        let start = pgoff.checked_mul(usize_to_u64(PAGE_SIZE)).ok_or(ENOENT)?;
        let pages = (vma.end() - vma.start()) / PAGE_SIZE;
        // Held until the mapping is complete (see the lock order): a DEALLOC waits for it, then
        // finds the grants mapped, or ended again if the mmap failed.
        let index = state.index.lock();
        // On error below, the mapping is dropped before `index` is unlocked, and the grants go
        // back as they were.
        match index.collect_mapping(start, pages)? {
            NewMapping::Inline(mapping) => {
                insert_pages(vma, mapping.pages())?;
                drop(index);
                VmaShared::attach(vma, mapping);
            }
            NewMapping::Span(mapping) => {
                insert_pages(vma, mapping.runs().flat_map(SlotRun::pages))?;
                drop(index);
                VmaShared::attach(vma, mapping);
            }
        }
        Ok(())
    }

    fn ioctl(state: Pin<&Self>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        gntalloc_ioctl::ioctl(state.get_ref(), cmd, arg)
    }

    /// 32-bit callers: the same commands, plus the shorter i386 encodings of two of them.
    #[cfg(CONFIG_COMPAT)]
    fn compat_ioctl(state: Pin<&Self>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        gntalloc_ioctl::compat_ioctl(state.get_ref(), cmd, arg)
    }

    fn show_fdinfo(state: Pin<&Self>, m: &SeqFile, _file: &File) {
        let index = state.index.lock();
        let (mut grants, mut mapped, mut notify) = (0usize, 0usize, 0usize);
        for batch in index.batches.iter() {
            grants += batch.batch().listed();
            let (m, n) = batch.count_mapped_notify();
            mapped += m;
            notify += n;
        }
        seq_print!(
            m,
            "grants:\t{}\nmapped:\t{}\nnotify:\t{}\nnext_index:\t{:#x}\nglobal_in_use:\t{}\n",
            grants,
            mapped,
            notify,
            index.next,
            grant::STATS.in_use.load(Relaxed)
        );
    }
}
