// SPDX-License-Identifier: GPL-2.0

//! The ioctl ABI of `/dev/xen/gntalloc`: command numbers, argument parsing and the three
//! commands ALLOC_GREF, DEALLOC_GREF and SET_UNMAP_NOTIFY.
//!
//! Each argument is a typed `#[repr(C)]` structure ([`AllocGrefArg`], [`DeallocGrefArg`],
//! [`UnmapNotifyArg`]) whose layout is checked at compile time against the one bindgen
//! generates from our UAPI header, and the command numbers against the established values.
//! Arguments are copied in once, before any lock is taken, and results copied out after every
//! lock is dropped: `mmap` takes the file's index lock under `mmap_lock`, and a faulting user
//! copy under that lock would take `mmap_lock` in the other order.
//!
//! The errno precedence is upstream's, rule by rule, see the comments in each handler.
//!
//! 32-bit processes are served too (upstream answers them `ENOTTY`): their structures have the
//! same field offsets, and only i386 packs them shorter, which changes two command numbers. See
//! [`Layout`].

use core::mem::{
    offset_of,
    size_of, //
};
use kernel::{
    page::PAGE_SIZE,
    prelude::*,
    sync::atomic::Relaxed,
    transmute::{
        AsBytes,
        FromBytes, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
    uapi,
};

use crate::{
    deferred,
    grant::{
        self,
        GrantBatch,
        UnmapNotify, //
    },
    num::usize_to_u64,
    xen::{
        self,
        raw,
        EvtchnRef,
        GrantError,
        XEN_PAGES_PER_PAGE,
        XEN_PAGE_SIZE, //
    },
    FileState, //
};

/// ALLOC_GREF's argument as far as it is copied in and written back: the UAPI structure up to
/// its first grant reference, then the tail padding of the native layout, which the caller's
/// bytes fill and which goes back as read (upstream writes the whole argument back). The
/// other references follow the first at `gref_ids` when `count` is above one.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct AllocGrefArg {
    /// IN: the domain that may map the pages.
    domid: u16,
    /// IN: `GNTALLOC_FLAG_*`.
    flags: u16,
    /// IN: number of grants.
    count: u32,
    /// OUT: mmap offset of the first page.
    index: u64,
    /// OUT: the first grant reference (`gref_ids[0]`).
    first_id: u32,
    /// The native layout's tail padding (absent from i386's).
    tail: u32,
}

/// DEALLOC_GREF's argument, with the native layout's tail padding.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct DeallocGrefArg {
    /// IN: index of the first page, as ALLOC returned it.
    index: u64,
    /// IN: number of pages.
    count: u32,
    /// The native layout's tail padding (absent from i386's).
    tail: u32,
}

/// SET_UNMAP_NOTIFY's argument (no padding in any layout).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct UnmapNotifyArg {
    /// IN: offset of a byte in the file's index space.
    index: u64,
    /// IN: `UNMAP_NOTIFY_*`.
    action: u32,
    /// IN: event channel to signal when `UNMAP_NOTIFY_SEND_EVENT` is set.
    event_channel_port: u32,
}

// SAFETY: The three structures hold integers only, and their fields cover every byte (the
// asserts below check there is no implicit padding): any bit pattern is a valid value, and
// every byte of one is initialized.
unsafe impl FromBytes for AllocGrefArg {}
// SAFETY: As above.
unsafe impl AsBytes for AllocGrefArg {}
// SAFETY: As above.
unsafe impl FromBytes for DeallocGrefArg {}
// SAFETY: As above.
unsafe impl AsBytes for DeallocGrefArg {}
// SAFETY: As above.
unsafe impl FromBytes for UnmapNotifyArg {}
// SAFETY: As above.
unsafe impl AsBytes for UnmapNotifyArg {}

/// Fails the build unless our structure has the UAPI structure's size and its named fields'
/// offsets, and no implicit padding.
macro_rules! assert_abi {
    ($ours:ty, $uapi:ty, [$($field:ident),*], [$($extra:ident),*]) => {
        const _: () = assert!(size_of::<$ours>() == size_of::<$uapi>());
        $(const _: () = assert!(offset_of!($ours, $field) == offset_of!($uapi, $field));)*
        const _: () = assert!(
            0 $(+ size_of_field(|a: &$ours| &a.$field))* $(+ size_of_field(|a: &$ours| &a.$extra))*
                == size_of::<$ours>()
        );
    };
}

/// The size of the field that `f` picks, for [`assert_abi`].
const fn size_of_field<S, F>(_f: fn(&S) -> &F) -> usize {
    size_of::<F>()
}

assert_abi!(
    AllocGrefArg,
    raw::ioctl_gntalloc_alloc_gref,
    [domid, flags, count, index],
    [first_id, tail]
);
const _: () = assert!(
    offset_of!(AllocGrefArg, first_id)
        == offset_of!(raw::ioctl_gntalloc_alloc_gref, __bindgen_anon_1)
);
assert_abi!(
    DeallocGrefArg,
    raw::ioctl_gntalloc_dealloc_gref,
    [index, count],
    [tail]
);
assert_abi!(
    UnmapNotifyArg,
    raw::ioctl_gntalloc_unmap_notify,
    [index, action, event_channel_port],
    []
);

/// `_IOC(_IOC_NONE, 'G', nr, size)`: the encoding the ABI uses for all three commands.
/// Evaluated at compile time only (the command constants): a size that does not fit the
/// encoding's field fails the build there.
const fn ioc_none(nr: u32, size: usize) -> u32 {
    assert!(size < 1 << uapi::_IOC_SIZEBITS);
    (uapi::_IOC_NONE << uapi::_IOC_DIRSHIFT)
        | ((b'G' as u32) << uapi::_IOC_TYPESHIFT)
        | (nr << uapi::_IOC_NRSHIFT)
        | ((size as u32) << uapi::_IOC_SIZESHIFT)
}

/// Allocates and grants pages.
pub(crate) const IOCTL_GNTALLOC_ALLOC_GREF: u32 = ioc_none(5, size_of::<AllocGrefArg>());
/// Removes pages from the file.
pub(crate) const IOCTL_GNTALLOC_DEALLOC_GREF: u32 = ioc_none(6, size_of::<DeallocGrefArg>());
/// Sets the action taken when a page is released.
pub(crate) const IOCTL_GNTALLOC_SET_UNMAP_NOTIFY: u32 = ioc_none(7, size_of::<UnmapNotifyArg>());

/// How a caller lays out the ioctl arguments. The field offsets are the same in both.
#[derive(Clone, Copy)]
enum Layout {
    /// 64-bit callers, and 32-bit ones whose ABI aligns `u64` to 8 bytes (arm EABI): the
    /// structures of the UAPI header as they are.
    Native,
    /// i386 callers: `u64` is only 4-byte aligned there, so the structures lose their tail
    /// padding. ALLOC is 20 bytes (its header and the first id), DEALLOC 12.
    #[cfg_attr(not(CONFIG_COMPAT), expect(dead_code))]
    I386,
}

impl Layout {
    /// Bytes of the ALLOC argument read and written back before the other ids.
    const fn alloc_len(self) -> usize {
        match self {
            Layout::Native => size_of::<AllocGrefArg>(),
            Layout::I386 => offset_of!(AllocGrefArg, tail),
        }
    }

    /// Bytes of the DEALLOC argument.
    const fn dealloc_len(self) -> usize {
        match self {
            Layout::Native => size_of::<DeallocGrefArg>(),
            Layout::I386 => offset_of!(DeallocGrefArg, tail),
        }
    }
}

/// ALLOC_GREF as an i386 process encodes it.
#[cfg(CONFIG_COMPAT)]
const IOCTL_GNTALLOC_ALLOC_GREF_I386: u32 = ioc_none(5, Layout::I386.alloc_len());
/// DEALLOC_GREF as an i386 process encodes it.
#[cfg(CONFIG_COMPAT)]
const IOCTL_GNTALLOC_DEALLOC_GREF_I386: u32 = ioc_none(6, Layout::I386.dealloc_len());
#[cfg(CONFIG_COMPAT)]
const _: () = assert!(
    IOCTL_GNTALLOC_ALLOC_GREF_I386 == 0x0014_4705
        && IOCTL_GNTALLOC_DEALLOC_GREF_I386 == 0x000c_4706
);

// The established ABI on every 64-bit architecture, byte for byte.
const _: () = assert!(IOCTL_GNTALLOC_ALLOC_GREF == 0x0018_4705);
const _: () = assert!(IOCTL_GNTALLOC_DEALLOC_GREF == 0x0010_4706);
const _: () = assert!(IOCTL_GNTALLOC_SET_UNMAP_NOTIFY == 0x0010_4707);

/// Offset of `gref_ids` in the ALLOC argument.
const GREF_IDS_OFFSET: usize = offset_of!(AllocGrefArg, first_id);

/// Copies in the first `len` bytes of the argument at `arg` (all of `T`, or a shorter
/// layout's prefix of it), the rest zero: `EFAULT` if they cannot be read.
#[inline]
fn copy_in<T: FromBytes + AsBytes + Default>(arg: usize, len: usize) -> Result<T> {
    let mut reader = UserSlice::new(UserPtr::from_addr(arg), len).reader();
    if len == size_of::<T>() {
        // A copy of constant size, as C's `copy_from_user()` of a structure: the `kernel`
        // crate then calls `_copy_from_user()` directly, without the out-of-line slice path.
        return reader.read::<T>();
    }
    let mut value = T::default();
    reader.read_slice(value.as_bytes_mut().get_mut(..len).ok_or(EINVAL)?)?;
    Ok(value)
}

/// Copies the first `len` bytes of `value` (all of it, or a shorter layout's prefix) to the
/// argument at `arg`: `EFAULT` if they cannot be written.
#[inline]
fn copy_out<T: AsBytes>(arg: usize, value: &T, len: usize) -> Result {
    let mut writer = UserSlice::new(UserPtr::from_addr(arg), len).writer();
    if len == size_of::<T>() {
        // Of constant size, as in `copy_in`.
        return writer.write(value);
    }
    writer.write_slice(value.as_bytes().get(..len).ok_or(EINVAL)?)
}

/// Dispatches an ioctl of an open file.
pub(crate) fn ioctl(file: &FileState, cmd: u32, arg: usize) -> Result<isize> {
    match cmd {
        IOCTL_GNTALLOC_ALLOC_GREF => alloc_gref(file, arg, Layout::Native)?,
        IOCTL_GNTALLOC_DEALLOC_GREF => dealloc_gref(file, arg, Layout::Native)?,
        IOCTL_GNTALLOC_SET_UNMAP_NOTIFY => set_unmap_notify(file, arg)?,
        _ => return Err(ENOTTY),
    }
    Ok(0)
}

/// Dispatches an ioctl of a 32-bit process: the i386 encodings, then everything [`ioctl`]
/// takes. `arg` is the caller's pointer zero-extended, which is what `compat_ptr()` gives on
/// every architecture Xen guests run on.
#[cfg(CONFIG_COMPAT)]
pub(crate) fn compat_ioctl(file: &FileState, cmd: u32, arg: usize) -> Result<isize> {
    match cmd {
        IOCTL_GNTALLOC_ALLOC_GREF_I386 => alloc_gref(file, arg, Layout::I386)?,
        IOCTL_GNTALLOC_DEALLOC_GREF_I386 => dealloc_gref(file, arg, Layout::I386)?,
        _ => return ioctl(file, cmd, arg),
    }
    Ok(0)
}

/// ALLOCs of at most this many grants keep their ids on the stack.
const INLINE_IDS: usize = 16;

/// IOCTL_GNTALLOC_ALLOC_GREF.
///
/// Errors, first match wins: `EFAULT` (argument unreadable), `ENOSPC` (count above limit),
/// `ENOMEM` (bookkeeping), `ENOSPC` (limit reached), `ENOMEM`/`ENOSPC` (page allocation or grant
/// table full: nothing is left behind), `EFAULT` (result unwritable: the grants stay in the file,
/// as upstream).
fn alloc_gref(file: &FileState, arg: usize, layout: Layout) -> Result {
    let len = layout.alloc_len();
    let mut op: AllocGrefArg = copy_in(arg, len)?;
    let (domid, count) = (op.domid, op.count);
    let writable = u32::from(op.flags) & raw::GNTALLOC_FLAG_WRITABLE != 0;

    // Checked before allocating anything, so a huge count cannot reach the allocator.
    let limit = xen::grant_limit();
    if count > limit {
        grant::STATS.limit_rejections.add(1, Relaxed);
        return Err(ENOSPC);
    }
    let count_us = usize::try_from(count).map_err(|_| ENOMEM)?;
    grant::check_alloc_size(count_us)?;
    let ids_len = count_us.checked_mul(size_of::<u32>()).ok_or(ENOMEM)?;
    let mut inline_ids = [0u8; INLINE_IDS * size_of::<u32>()];
    let mut heap_ids: KVVec<u8>;
    let ids = match inline_ids.get_mut(..ids_len) {
        Some(ids) => ids,
        None => {
            // Up to 4 bytes per grant: Qubes' allocator asks for ~100k grants at once, and
            // vmalloc serves that where contiguous memory is short.
            heap_ids = KVVec::from_elem(0u8, ids_len, GFP_KERNEL)?;
            &mut heap_ids[..]
        }
    };

    deferred::retry_some();
    grant::reserve(count, limit)?;

    let pages = usize_to_u64(count_us.div_ceil(XEN_PAGES_PER_PAGE));
    let span = pages * usize_to_u64(kernel::page::PAGE_SIZE);
    // The pages and grants are made without the file's lock, so that mmap and page faults on
    // this file (which take it under `mmap_lock`) do not wait for a large allocation; one short
    // locked step then gives them their index range and lists them. A failed ALLOC thus never
    // takes an index range (upstream's B4 leaves it consumed).
    let index = if count > 0 {
        match GrantBatch::build(count, domid, writable, ids) {
            Ok(batch) => file.lock_index().place(batch, span),
            Err(e) => {
                // Nothing is left behind: `build` ended what it made and returned the whole
                // reservation.
                if let GrantError::TableFull = e {
                    grant::STATS.table_full.add(1, Relaxed);
                }
                return Err(e.into());
            }
        }
    } else {
        file.lock_index().next
    };

    // Results go out after the lock is dropped. As upstream, the whole argument as read (with
    // the caller's padding) is written back, then the ids. Ids that fit in the argument as read
    // (one grant, or two in the native layout, the second over the tail padding) go out with
    // it, in one copy that writes the same bytes.
    op.index = index;
    let fits = op
        .as_bytes_mut()
        .get_mut(GREF_IDS_OFFSET..len)
        .and_then(|room| room.get_mut(..ids.len()));
    if let Some(dst) = fits {
        dst.copy_from_slice(ids);
        return copy_out(arg, &op, len);
    }
    copy_out(arg, &op, len)?;
    UserSlice::new(
        UserPtr::from_addr(arg).wrapping_byte_add(GREF_IDS_OFFSET),
        ids.len(),
    )
    .writer()
    .write_slice(ids)
}

/// IOCTL_GNTALLOC_DEALLOC_GREF.
///
/// `EFAULT` (argument unreadable), then `EINVAL` unless `count` slots starting at `index` are all
/// in this file with consecutive indices; `count == 0` is `EINVAL` as upstream. Atomic: nothing
/// is removed on error.
fn dealloc_gref(file: &FileState, arg: usize, layout: Layout) -> Result {
    let op: DeallocGrefArg = copy_in(arg, layout.dealloc_len())?;
    let ret = match usize::try_from(op.count) {
        Ok(0) => Err(EINVAL),
        Ok(count) => file.remove_range(op.index, count),
        // Not on any architecture Xen guests run on (usize is at least 32 bits).
        Err(_) => Err(EINVAL),
    };
    // As upstream's cleanup, whatever the outcome.
    deferred::retry_some();
    ret
}

/// IOCTL_GNTALLOC_SET_UNMAP_NOTIFY.
///
/// `EFAULT` (argument unreadable), `ENOENT` (no such slot in this file, checked before the
/// action), `EINVAL` (unknown action bits), `EINVAL` (event channel cannot be referenced),
/// `ENOMEM` (no memory to keep an armed notification: the slot keeps its old one; upstream
/// allocates nothing here).
fn set_unmap_notify(file: &FileState, arg: usize) -> Result {
    let op: UnmapNotifyArg = copy_in(arg, size_of::<UnmapNotifyArg>())?;
    let (index, action, port) = (op.index, op.action, op.event_channel_port);

    let slot = index & !(usize_to_u64(XEN_PAGE_SIZE) - 1);
    // The byte's offset in its kernel page, where the slot's Xen page starts at the slot key's
    // offset (batches start on kernel pages). Below PAGE_SIZE (at most 64K), so it fits: the
    // conversion cannot fail.
    let offset = u16::try_from(index & (usize_to_u64(PAGE_SIZE) - 1)).map_err(|_| EINVAL)?;
    let known = action & !(raw::UNMAP_NOTIFY_CLEAR_BYTE | raw::UNMAP_NOTIFY_SEND_EVENT) == 0;
    // `evtchn_get` sleeps on Xen's `irq_mapping_update_lock`: the reference is taken before the
    // file's index lock, and a failure reported only after the slot and action checks, in
    // upstream's order. It is taken before the old one is dropped, so re-registering the same
    // port never closes it in between.
    let mut event =
        (known && action & raw::UNMAP_NOTIFY_SEND_EVENT != 0).then(|| EvtchnRef::get(port));
    let clear_byte = (action & raw::UNMAP_NOTIFY_CLEAR_BYTE != 0).then_some(offset);
    let old = file.replace_notify(slot, || {
        if !known {
            return Err(EINVAL);
        }
        Ok(UnmapNotify {
            clear_byte,
            event: event.take().transpose()?,
        })
    })?;
    // Outside the lock: dropping the old notification may release its event channel.
    drop(old);
    Ok(())
}
