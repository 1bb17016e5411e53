// SPDX-License-Identifier: GPL-2.0

//! `/dev/xen/gntalloc` in Rust: user space allocates pages, grants another Xen domain access to
//! them, maps them, and is notified when they are released.
//!
//! This file owns the device, the per-open-file state (the file's index space) and `mmap`. The
//! ioctl ABI is in `gntalloc_ioctl.rs`, grants and their accounting in `grant.rs`, the VMA
//! lifetime plumbing in `vma.rs` and everything Xen in `xen.rs`.
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
//! # Lock order
//!
//! `mmap_lock` (held by mm around `mmap` and the VMA callbacks) → [`FileState`]`::index` →
//! { Xen's `irq_mapping_update_lock`, the deferred list (`grant.rs`) → the grant-table core's
//! lock }.
//!
//! - A grant is dropped, firing its notification and ending it, wherever its last holder lets
//!   go: under `index` (DEALLOC, close, a failed mmap) or under `mmap_lock` alone (the last VMA
//!   of a mapping). Releasing its event channel (`evtchn_put`) takes the sleeping
//!   `irq_mapping_update_lock` there; SET_UNMAP_NOTIFY takes its reference (`evtchn_get`)
//!   before `index`.
//! - A grant's `notify` spinlock is a leaf: it is held only to swap the notification.
//! - No user memory is touched under `index`. ALLOC holds it while it allocates pages and grants
//!   them (sleeping allocations, as upstream under its global mutex), so an allocation appears in
//!   the file all at once; mmap holds it while it inserts the pages, and SET_UNMAP_NOTIFY while
//!   it swaps the notification, so that no reference to a grant outlives the lock but a
//!   mapping's: a DEALLOC that finds a grant unmapped ends it before it returns.

use kernel::{
    debugfs,
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
    rbtree::RBTree,
    seq_file::{
        seq_print,
        SeqFile, //
    },
    sync::{
        atomic::Relaxed,
        Arc,
        Mutex,
        MutexGuard, //
    },
};

mod gntalloc_ioctl;
mod grant;
mod vma;
mod xen;

use grant::{
    Grant,
    UnmapNotify, //
};
use vma::VmaFamily;
use xen::XEN_PAGE_SIZE;

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

/// The module: the misc device, the debugfs counters and the deferred-grant machinery.
struct GntallocModule {
    _stats: Pin<KBox<debugfs::Scope<()>>>,
    _debugfs: debugfs::Dir,
    _miscdev: Pin<KBox<MiscDeviceRegistration<FileState>>>,
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
        grant::init();

        let dir = debugfs::Dir::new(c"xen-gntalloc-rs");
        let stats = KBox::pin_init(
            dir.scope((), c"stats", |(), d| {
                let s = &grant::STATS;
                d.read_only_file(c"in_use", &s.in_use);
                d.read_only_file(c"deferred", &s.deferred);
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
            _miscdev: miscdev,
        })
    }
}

impl Drop for GntallocModule {
    fn drop(&mut self) {
        // No file is open (each pins the module), so no grant is alive but deferred ones.
        xen::reclaim_stop();
        grant::flush_deferred_to_core();
    }
}

/// The index space of an open file.
struct FileIndex {
    /// Grants still listed in the file (not yet deallocated), by slot key.
    grants: RBTree<u64, Arc<Grant>>,
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
    /// Lists a new grant at slot `key`, which must not be listed yet (allocations take keys from
    /// `next` upwards, and `next` only grows).
    pub(crate) fn insert_new(&mut self, key: u64, grant: Arc<Grant>) -> Result {
        // A duplicate key would replace (and drop) the old grant: the caller's rule excludes it.
        let _ = self.grants.try_create_and_insert(key, grant, GFP_KERNEL)?;
        Ok(())
    }

    /// Undoes a failed allocation: removes whichever of the `count` slots from `start`
    /// [`FileIndex::insert_new`] listed under the same lock hold, ending their grants.
    pub(crate) fn remove_new(&mut self, start: u64, count: usize) {
        for i in 0..count as u64 {
            drop(self.grants.remove(&(start + i * XEN_PAGE_SIZE as u64)));
        }
    }

    /// Collects the grants covering `pages` kernel pages from `start` for a new mapping: every
    /// granted slot of each page must be listed (padding slots after a page's last grant are
    /// not granted and not looked for); `ENOENT` otherwise.
    fn collect_mapping(&mut self, start: u64, pages: usize) -> Result<MappingRange> {
        let page_size = PAGE_SIZE as u64;
        let step = XEN_PAGE_SIZE as u64;
        let end = (pages as u64)
            .checked_mul(page_size)
            .and_then(|len| start.checked_add(len))
            .ok_or(ENOENT)?;
        // `rest` grows only with grants that exist, so a bogus length fails on ENOENT, not
        // ENOMEM; a one-page mapping on a 4K kernel needs no allocation for it.
        let mut first = None;
        let mut rest = KVec::new();
        // The next page to start, the next slot expected in the current page, and how many of
        // that page's granted slots are still to be seen.
        let mut next_page = start;
        let mut next_slot = start;
        let mut slots_left = 0usize;
        let mut cursor = self.grants.cursor_lower_bound_mut(&start).ok_or(ENOENT)?;
        loop {
            let (&key, grant) = cursor.current();
            if key >= end {
                break;
            }
            if slots_left == 0 {
                // A page's first slot, which says how many of its slots were granted (they all
                // come from one ALLOC, since an ALLOC starts on a fresh page).
                if key != next_page {
                    return Err(ENOENT);
                }
                slots_left = grant.page_grants();
                next_page += page_size;
            } else if key != next_slot {
                // A granted slot of this page is missing (deallocated).
                return Err(ENOENT);
            }
            slots_left -= 1;
            next_slot = key + step;
            match first {
                None => first = Some(grant.clone()),
                Some(_) => rest.push(grant.clone(), GFP_KERNEL)?,
            }
            cursor = match cursor.move_next() {
                Some(c) => c,
                None => break,
            };
        }
        match first {
            Some(first) if next_page == end && slots_left == 0 => {
                Ok(MappingRange::new(first, rest))
            }
            _ => Err(ENOENT),
        }
    }
}

impl FileState {
    /// Locks the index space for an allocation. The lock is held from the choice of the index to
    /// the listing of the last grant, so no other user of the file sees a partial allocation, and
    /// a failed one leaves no hole in the index space.
    pub(crate) fn lock_index(&self) -> MutexGuard<'_, FileIndex> {
        self.index.lock()
    }

    /// Replaces the unmap notification of the grant at slot `key` with the one `make` builds,
    /// and returns the old one for the caller to drop after the lock. `ENOENT` (before `make`
    /// runs) if the file does not list that slot. The grant is not referenced beyond the lock
    /// hold, so a concurrent DEALLOC cannot leave it alive after returning.
    pub(crate) fn replace_notify(
        &self,
        key: u64,
        make: impl FnOnce() -> Result<UnmapNotify>,
    ) -> Result<UnmapNotify> {
        let index = self.index.lock();
        let grant = index.grants.get(&key).ok_or(ENOENT)?;
        Ok(grant.set_notify(make()?))
    }

    /// Removes `count` slots starting at `start` if all of them are listed with consecutive
    /// keys; `EINVAL` (and nothing removed) otherwise. Released grants that no mapping holds are
    /// ended here, firing their notifications before the ioctl returns.
    fn remove_range(&self, start: u64, count: usize) -> Result {
        let step = XEN_PAGE_SIZE as u64;
        let mut index = self.index.lock();
        {
            let mut cursor = index.grants.cursor_lower_bound_mut(&start).ok_or(EINVAL)?;
            let mut expected = start;
            for i in 0..count {
                if *cursor.current().0 != expected {
                    return Err(EINVAL);
                }
                if i + 1 < count {
                    cursor = cursor.move_next().ok_or(EINVAL)?;
                    expected = expected.checked_add(step).ok_or(EINVAL)?;
                }
            }
        }
        // The `count` nodes from `start` are exactly the ones checked above: remove them in one
        // walk. Dropping the last reference ends a grant under this lock, which the lock order
        // allows; nothing here touches user memory.
        let mut cursor = index.grants.cursor_lower_bound_mut(&start);
        for _ in 0..count {
            let Some(current) = cursor else { break };
            let (next, node) = current.remove_current();
            drop(node);
            cursor = next;
        }
        Ok(())
    }
}

/// The grants covered by one `mmap()` call, shared by every VMA descended from it: they stay
/// alive until the last of those VMAs is gone. In index order: `first`, then `rest`.
pub(crate) struct MappingRange {
    first: Arc<Grant>,
    rest: KVec<Arc<Grant>>,
}

impl MappingRange {
    fn new(first: Arc<Grant>, rest: KVec<Arc<Grant>>) -> Self {
        let range = Self { first, rest };
        for grant in range.grants() {
            grant.mapped();
        }
        range
    }

    /// The grants, in index order.
    fn grants(&self) -> impl Iterator<Item = &Arc<Grant>> {
        Iterator::chain(core::iter::once(&self.first), self.rest.iter())
    }
}

impl Drop for MappingRange {
    fn drop(&mut self) {
        for grant in self.grants() {
            grant.unmapped();
        }
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
                        grants: RBTree::new(),
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
        let pgoff = unsafe { (*vma.as_ptr()).vm_pgoff } as u64;
        let start = pgoff.checked_mul(PAGE_SIZE as u64).ok_or(ENOENT)?;
        let pages = (vma.end() - vma.start()) / PAGE_SIZE;
        // Held until the mapping is complete (see the lock order): a DEALLOC waits for it, then
        // finds the grants mapped, or ended again if the mmap failed.
        let mut index = state.index.lock();
        let range = Arc::new(index.collect_mapping(start, pages)?, GFP_KERNEL)?;

        vma.set_dontexpand();
        vma.set_dontdump();
        let mixed = vma.set_mixedmap();
        // The first slot of each page is its first grant: map that page.
        let mut addr = vma.start();
        for grant in range.grants() {
            let (page, xen_index) = grant.page()?;
            if xen_index == 0 {
                // `range` keeps the page alive; the VMA family holds `range` until the last VMA
                // is closed, and zapping on munmap drops the mapping's own page references.
                mixed.vm_insert_page(addr, &page.borrow())?;
                addr += PAGE_SIZE;
            }
        }
        // On error above, `range` is dropped before `index` is unlocked, and the grants go back
        // as they were.
        drop(index);
        VmaFamily::attach(vma, range);
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
        let (mut mapped, mut notify) = (0usize, 0usize);
        for grant in index.grants.values() {
            mapped += usize::from(grant.is_mapped());
            notify += usize::from(grant.notify_armed());
        }
        seq_print!(
            m,
            "grants:\t{}\nmapped:\t{}\nnotify:\t{}\nnext_index:\t{:#x}\nglobal_in_use:\t{}\n",
            index.grants.iter().count(),
            mapped,
            notify,
            index.next,
            grant::STATS.in_use.load(Relaxed)
        );
    }
}
