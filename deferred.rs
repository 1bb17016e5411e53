// SPDX-License-Identifier: GPL-2.0

//! The deferred grants: grants released locally while a remote domain still maps their page.
//! Each stays here, counted against `limit`, until the remote has unmapped it and it can be
//! ended.
//!
//! Qubes OS sees this backlog reach hundreds of thousands of grants (its GUI front end unmaps
//! after the agent has released), so it costs O(1) to add to and a bounded amount to retry:
//!
//! - Grants sit in chunks of [`CHUNK_GRANTS`], one 4K buffer each, listed in a vector of small
//!   chunk headers that `kvmalloc` backs (48 bytes per chunk of 256 grants, 192 KiB for a
//!   million grants, which vmalloc serves if contiguous memory is short): nothing large is
//!   copied under the lock, and no high-order allocation is needed.
//! - The periodic retry visits at most [`VISITS_PER_RUN`] chunks (each once) and tries at most
//!   [`TRIES_PER_RUN`] grants per run, from the chunk where the last run stopped, and holds the
//!   lock for one chunk at a time; it re-arms itself while anything is deferred.
//! - A chunk none of whose grants could be ended is tried again only 0.2 s later, then 0.4,
//!   0.8, 1.6 s and at most every [`MAX_BACKOFF_MS`] ms; one that ends a grant, or that a grant
//!   joins (always the last chunk), at the next visit again.
//!
//! Lock order (see `gntalloc.rs`): [`DEFERRED`] is taken under a file's index lock or
//! `mmap_lock`, and takes the grant-table core's lock (ending a grant). [`STATS`]`.deferred`
//! changes only under [`DEFERRED`], so that it never reads below zero.

use core::mem::{
    size_of,
    take, //
};
use kernel::{
    alloc::{
        Allocator,
        Vec, //
    },
    prelude::*,
    sync::atomic::Relaxed,
    time::{
        Delta,
        Instant,
        Monotonic, //
    },
};

use crate::{
    grant::{
        unreserve,
        STATS, //
    },
    xen::{
        self,
        ForeignGrant, //
    },
};

/// Grants per chunk: a chunk's buffer is one 4K allocation.
const CHUNK_GRANTS: usize = 4096 / size_of::<ForeignGrant>();

/// Chunks the periodic retry visits per run, at most: a visit to a chunk that is not due costs
/// a lock and a comparison.
const VISITS_PER_RUN: usize = 256;

/// Grants the periodic retry tries to end per run, at most (it finishes the chunk it is in).
const TRIES_PER_RUN: usize = 2048;

/// Longest backoff of a chunk, in milliseconds.
const MAX_BACKOFF_MS: i64 = 3200;

/// Grants tried on an ioctl path, at most: the newest ones, like upstream's cleanup there.
const IOCTL_TRIES: usize = 16;

/// Delay between two runs of the periodic retry, in milliseconds.
const RETRY_PERIOD_MS: u32 = 100;

/// Up to [`CHUNK_GRANTS`] deferred grants, and how eagerly to retry them.
struct Chunk {
    /// Allocated with room for [`CHUNK_GRANTS`] at once; never grows.
    grants: KVec<ForeignGrant>,
    /// When the chunk was last tried.
    tried: Instant<Monotonic>,
    /// How long after `tried` it is due again (zero: at every visit).
    backoff: Delta,
    /// When the chunk was made: every grant in it was deferred since.
    since: Instant<Monotonic>,
}

/// The deferred grants.
struct Deferred {
    /// No chunk is empty.
    chunks: KVVec<Chunk>,
    /// The chunk the next periodic run starts with.
    cursor: usize,
    /// The oldest `since` of the chunks visited in the cursor's current lap over the chunks.
    lap_oldest: Option<Instant<Monotonic>>,
}

kernel::sync::global_lock! {
    // SAFETY: Initialised by `init` in the module initialiser, before any file can be opened.
    unsafe(uninit) static DEFERRED: Mutex<Deferred> = Deferred {
        chunks: KVVec::new(),
        cursor: 0,
        lap_oldest: None,
    };
}

/// Initialises the list. Called once, from module init.
pub(crate) fn init() {
    // SAFETY: Called exactly once, before anything else uses `DEFERRED`.
    unsafe { DEFERRED.init() };
}

/// Keeps `grant`, whose page a remote domain still maps, until it can be ended, and has the
/// periodic retry armed; gives it back if there is no memory to keep it.
pub(crate) fn defer(grant: ForeignGrant) -> Result<(), ForeignGrant> {
    let mut list = DEFERRED.lock();
    if list
        .chunks
        .last()
        .is_none_or(|chunk| chunk.grants.len() == CHUNK_GRANTS)
    {
        let Ok(grants) = KVec::with_capacity(CHUNK_GRANTS, GFP_KERNEL) else {
            return Err(grant);
        };
        let now = Instant::now();
        let chunk = Chunk {
            grants,
            tried: now,
            backoff: Delta::ZERO,
            since: now,
        };
        if list.chunks.push(chunk, GFP_KERNEL).is_err() {
            return Err(grant);
        }
    }
    let Some(chunk) = list.chunks.last_mut() else {
        return Err(grant);
    };
    // The last chunk has room: it was not full, or has just been made.
    chunk.grants.push_within_capacity(grant).map_err(|e| e.0)?;
    chunk.backoff = Delta::ZERO;
    STATS.deferred.add(1, Relaxed);
    drop(list);
    // SAFETY: Called when a grant is dropped; grants live in open files and their mappings,
    // which pin the module, so module exit (`reclaim_stop`) has not begun.
    unsafe { xen::reclaim_arm(RETRY_PERIOD_MS) };
    Ok(())
}

/// Removes element `i` of `v`, putting the last one in its place.
fn swap_remove<T, A: Allocator>(v: &mut Vec<T, A>, i: usize) {
    let Some(last) = v.pop() else {
        return;
    };
    if let Some(slot) = v.get_mut(i) {
        drop(core::mem::replace(slot, last));
    }
}

/// Takes `freed` ended grants out of the deferred count, under the list's lock (which `_list`
/// proves held); returns the count for the caller to unreserve once it has dropped the lock.
fn count_out(_list: &Deferred, freed: usize) -> u32 {
    // At most what the list held, which `deferred` counts: it fits.
    let freed = u32::try_from(freed).unwrap_or(u32::MAX);
    if freed != 0 {
        STATS.deferred.fetch_sub(freed, Relaxed);
    }
    freed
}

/// One run of the periodic retry: a bounded part of the list, from where the last run stopped.
/// Re-arms the retry while grants remain deferred.
pub(crate) fn retry_run() {
    let now = Instant::<Monotonic>::now();
    let mut tries = 0;
    // Each chunk once at most (the chunks made meanwhile aside).
    let visits = VISITS_PER_RUN.min(DEFERRED.lock().chunks.len());
    for _ in 0..visits {
        if tries >= TRIES_PER_RUN {
            break;
        }
        let mut guard = DEFERRED.lock();
        let list = &mut *guard;
        if list.cursor >= list.chunks.len() {
            // A lap is over: the oldest chunk it saw bounds the age of every deferred grant.
            let age = list
                .lap_oldest
                .take()
                .map_or(0, |since| (now - since).as_millis());
            STATS
                .deferred_age_ms
                .store(u64::try_from(age).unwrap_or(0), Relaxed);
            list.cursor = 0;
        }
        let i = list.cursor;
        let Some(chunk) = list.chunks.get_mut(i) else {
            break;
        };
        // `Instant` has no `Ord` here: the older of two is the one further from now.
        let older = match list.lap_oldest {
            Some(t) if now - t >= now - chunk.since => t,
            _ => chunk.since,
        };
        list.lap_oldest = Some(older);
        let mut freed = 0;
        if now - chunk.tried >= chunk.backoff {
            let before = chunk.grants.len();
            chunk.grants.retain(|grant| !grant.try_end());
            tries += before;
            freed = before - chunk.grants.len();
            chunk.tried = now;
            chunk.backoff = if freed == 0 {
                // 0.2 s after the first fruitless try, doubling up to the longest.
                let ms = (chunk.backoff.as_millis() * 2).clamp(200, MAX_BACKOFF_MS);
                Delta::from_millis(ms)
            } else {
                Delta::ZERO
            };
        }
        if chunk.grants.is_empty() {
            // The last chunk takes its place, and is visited next.
            swap_remove(&mut list.chunks, i);
        } else {
            list.cursor = i + 1;
        }
        let freed = count_out(list, freed);
        drop(guard);
        unreserve(freed);
    }
    if STATS.deferred.load(Relaxed) != 0 {
        // SAFETY: Called by the retry itself, which `reclaim_stop` waits for and keeps from
        // re-queueing.
        unsafe { xen::reclaim_arm(RETRY_PERIOD_MS) };
    }
}

/// Tries a few of the newest deferred grants; called on the ioctl paths, like upstream's cleanup
/// there (the periodic retry does the rest).
#[inline]
pub(crate) fn retry_some() {
    // Nearly always nothing is deferred: say so without a call (twice per ALLOC + DEALLOC).
    if STATS.deferred.load(Relaxed) != 0 {
        retry_newest();
    }
}

/// Tries the last [`IOCTL_TRIES`] grants of the last chunk.
fn retry_newest() {
    let mut guard = DEFERRED.lock();
    let list = &mut *guard;
    let Some(chunk) = list.chunks.last_mut() else {
        return;
    };
    let mut freed = 0;
    let mut j = chunk.grants.len();
    for _ in 0..IOCTL_TRIES {
        let Some(k) = j.checked_sub(1) else {
            break;
        };
        j = k;
        if chunk.grants.get_mut(k).is_some_and(|grant| grant.try_end()) {
            // What moves to `k` was tried already.
            swap_remove(&mut chunk.grants, k);
            freed += 1;
        }
    }
    if chunk.grants.is_empty() {
        list.chunks.pop();
    }
    let freed = count_out(list, freed);
    drop(guard);
    unreserve(freed);
}

/// Hands every deferred grant to the grant-table core. Called at module unload, after the
/// periodic retry has been stopped and when no file is open.
pub(crate) fn flush_to_core() {
    let mut guard = DEFERRED.lock();
    // First a last chance to end them here; the rest is dropped, which hands it to the core.
    let mut pending = 0;
    for chunk in guard.chunks.iter_mut() {
        chunk.grants.retain(|grant| !grant.try_end());
        pending += chunk.grants.len();
    }
    // The buffers too: nothing of the module outlives its exit.
    let chunks = take(&mut guard.chunks);
    guard.cursor = 0;
    guard.lap_oldest = None;
    STATS.deferred.store(0, Relaxed);
    STATS.deferred_age_ms.store(0, Relaxed);
    drop(guard);
    drop(chunks);
    STATS.in_use.store(0, Relaxed);
    if pending > 0 {
        STATS
            .handed_to_core
            .add(u64::try_from(pending).unwrap_or(u64::MAX), Relaxed);
        pr_info!(
            "unload: {} grant(s) still mapped by a remote domain handed to the grant-table core\n",
            pending
        );
    }
}
