// SPDX-License-Identifier: GPL-2.0

//! The tree of a file's listed batches: an intrusive red-black tree whose links live in each
//! [`GrantBatch`], ordered by the key of the batch's last slot.
//!
//! Listing a batch therefore allocates nothing: ALLOC costs one allocation for its bookkeeping
//! (the batch), as upstream's costs one per grant, where the `kernel` crate's `RBTree` would add
//! a separately allocated node per batch. The tree holds one reference on each batch it lists.
//! Driver-local because the `kernel` crate's `RBTree` has no intrusive form (its nodes are
//! always its own allocations); this is the piece such a form would replace.
//!
//! Every method takes the tree by reference; the file's index lock (`FileState::index`, which
//! owns the tree) serialises them. The batches it hands out are [`ListedBatch`] witnesses of
//! that, valid for as long as the tree is borrowed.

use core::ptr::{
    self,
    NonNull, //
};
use kernel::{
    bindings,
    sync::aref::ARef, //
};

use crate::grant::{
    GrantBatch,
    ListedBatch,
    NewBatch, //
};

/// The listed batches of one file, by the key of their last slot.
///
/// # Invariants
///
/// Every node of `root` is the links of a live [`GrantBatch`] on which the tree owns one
/// reference, linked by this tree alone; the last keys of the batches are distinct.
pub(crate) struct BatchIndex {
    root: bindings::rb_root,
}

// SAFETY: The tree owns references to batches, which are `Send` and `Sync`; its raw pointers
// are only followed by the owner of the tree.
unsafe impl Send for BatchIndex {}

impl BatchIndex {
    /// An empty tree.
    pub(crate) const fn new() -> Self {
        // INVARIANT: no node.
        Self {
            root: bindings::rb_root {
                rb_node: ptr::null_mut(),
            },
        }
    }

    /// The batch whose links are `node`.
    ///
    /// # Safety
    ///
    /// `node` is a node of this tree, and the result is not used after the batch has left it.
    unsafe fn batch<'a>(node: *mut bindings::rb_node) -> &'a GrantBatch {
        // SAFETY: `node` is the links of a live batch the tree holds a reference on (type
        // invariant), and stays so while the caller uses the result (function contract).
        unsafe { GrantBatch::from_links(node).as_ref() }
    }

    /// Gives `batch` its keys from `start` on and lists it; no listed batch may have its last
    /// key. Only a new batch can be listed: it is in no tree yet.
    pub(crate) fn insert(&mut self, batch: NewBatch, start: u64) {
        let batch = batch.place(start);
        let key = batch.last_key();
        let mut parent = ptr::null_mut();
        let mut link: *mut *mut bindings::rb_node = &raw mut self.root.rb_node;
        // SAFETY: `link` points at the root pointer or at a child pointer of a node of the tree,
        // all of which are live while we hold `&mut self`.
        unsafe {
            while !(*link).is_null() {
                parent = *link;
                // SAFETY: `parent` is a node of the tree.
                link = if key < Self::batch(parent).last_key() {
                    &raw mut (*parent).rb_left
                } else {
                    &raw mut (*parent).rb_right
                };
            }
        }
        let node = batch.links();
        // SAFETY: `node` is the batch's own links, in no tree (it was a `NewBatch`, which no
        // tree lists); `link` is the empty child slot of `parent` where the order puts it.
        unsafe {
            bindings::rb_link_node(node, parent, link);
            bindings::rb_insert_color(node, &mut self.root);
        }
        // INVARIANT: The tree owns the caller's reference from now on.
        let _ = ARef::into_raw(batch);
    }

    /// The node of the first batch whose last key is at or above `key`: the only batch that can
    /// hold slot `key`.
    fn lower_bound_node(&self, key: u64) -> Option<NonNull<bindings::rb_node>> {
        let mut node = self.root.rb_node;
        let mut found = None;
        while let Some(current) = NonNull::new(node) {
            // SAFETY: `current` is a node of the tree; `&self` keeps it there.
            let batch = unsafe { Self::batch(current.as_ptr()) };
            // SAFETY: As above.
            node = unsafe {
                if batch.last_key() >= key {
                    found = Some(current);
                    (*current.as_ptr()).rb_left
                } else {
                    (*current.as_ptr()).rb_right
                }
            };
        }
        found
    }

    /// The first batch whose last key is at or above `key`: the only batch that can hold slot
    /// `key`.
    pub(crate) fn lower_bound(&self, key: u64) -> Option<ListedBatch<'_>> {
        let node = self.lower_bound_node(key)?;
        // SAFETY: A node of the tree, used while `&self` keeps it there: its batch is listed
        // here, and the witness borrows the tree.
        Some(unsafe { ListedBatch::new(Self::batch(node.as_ptr())) })
    }

    /// A cursor on [`BatchIndex::lower_bound`]'s batch, through which batches can be removed.
    pub(crate) fn lower_bound_mut(&mut self, key: u64) -> Option<Cursor<'_>> {
        let node = self.lower_bound_node(key)?;
        // INVARIANT: a node of this tree.
        Some(Cursor { index: self, node })
    }

    /// The listed batches, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = ListedBatch<'_>> {
        let mut node = self.root.rb_node;
        // SAFETY: The leftmost node is found through nodes of the tree.
        unsafe {
            while !node.is_null() && !(*node).rb_left.is_null() {
                node = (*node).rb_left;
            }
        }
        core::iter::from_fn(move || {
            let current = NonNull::new(node)?;
            // SAFETY: `current` is a node of the tree, which `&self` keeps unchanged.
            node = unsafe { bindings::rb_next(current.as_ptr()) };
            // SAFETY: As above; the batch is listed here and the witness borrows the tree.
            Some(unsafe { ListedBatch::new(Self::batch(current.as_ptr())) })
        })
    }

    /// Empties the tree: calls `f` with each batch, then drops the tree's reference on it, before
    /// the next (post-order: no rebalancing).
    pub(crate) fn drain(&mut self, mut f: impl FnMut(ListedBatch<'_>)) {
        // SAFETY: `&mut self` gives exclusive access to the tree.
        let mut node = unsafe { bindings::rb_first_postorder(&self.root) };
        self.root.rb_node = ptr::null_mut();
        while let Some(current) = NonNull::new(node) {
            // SAFETY: `current` was a node of the tree; in post-order, neither its successor
            // nor anything still to be visited is reached through it once it is handed over.
            node = unsafe { bindings::rb_next_postorder(current.as_ptr()) };
            // SAFETY: The tree owned one reference on the batch (type invariant); the tree has
            // been emptied, so it is taken over exactly once.
            let batch = unsafe { ARef::from_raw(GrantBatch::from_links(current.as_ptr())) };
            // SAFETY: Listed in this tree until it was emptied above, by `&mut self`, which the
            // witness borrows: nothing else reaches the batch through the index.
            f(unsafe { ListedBatch::new(&batch) });
            drop(batch);
        }
    }

    /// Takes `node` out of the tree and returns the tree's reference on its batch.
    ///
    /// # Safety
    ///
    /// `node` is a node of this tree.
    unsafe fn unlink(&mut self, node: *mut bindings::rb_node) -> ARef<GrantBatch> {
        // SAFETY: `node` is in `root` (function contract), which we borrow mutably.
        unsafe { bindings::rb_erase(node, &mut self.root) };
        // SAFETY: The tree owned one reference on the batch (type invariant), handed over once,
        // as the node has just left the tree.
        unsafe { ARef::from_raw(GrantBatch::from_links(node)) }
    }
}

impl Drop for BatchIndex {
    fn drop(&mut self) {
        self.drain(|_| ());
    }
}

/// A position in a [`BatchIndex`], which it borrows mutably.
///
/// # Invariants
///
/// `node` is a node of `index`.
pub(crate) struct Cursor<'a> {
    index: &'a mut BatchIndex,
    node: NonNull<bindings::rb_node>,
}

impl<'a> Cursor<'a> {
    /// The batch at the cursor.
    pub(crate) fn batch(&self) -> ListedBatch<'_> {
        // SAFETY: A node of the tree (type invariant), which stays there while `self` is
        // borrowed (removing needs `self` by value); the witness borrows the cursor, which
        // borrows the tree.
        unsafe { ListedBatch::new(BatchIndex::batch(self.node.as_ptr())) }
    }

    /// The cursor on the next batch in key order, if any.
    pub(crate) fn move_next(self) -> Option<Self> {
        // SAFETY: A node of the tree (type invariant).
        let next = NonNull::new(unsafe { bindings::rb_next(self.node.as_ptr()) })?;
        // INVARIANT: The successor of a node of the tree is one too.
        Some(Self {
            index: self.index,
            node: next,
        })
    }

    /// Removes the batch at the cursor from the tree and returns the tree's reference on it.
    pub(crate) fn remove(self) -> ARef<GrantBatch> {
        // SAFETY: A node of the tree (type invariant).
        unsafe { self.index.unlink(self.node.as_ptr()) }
    }

    /// As [`Cursor::remove`], with a cursor on the next batch, if any.
    pub(crate) fn remove_current(self) -> (Option<Self>, ARef<GrantBatch>) {
        let node = self.node.as_ptr();
        // SAFETY: A node of the tree (type invariant), looked at before it leaves.
        let next = NonNull::new(unsafe { bindings::rb_next(node) });
        // SAFETY: As above.
        let batch = unsafe { self.index.unlink(node) };
        // INVARIANT: `next` is still a node of the tree: erasing another node does not move it.
        let cursor = next.map(|node| Self {
            index: self.index,
            node,
        });
        (cursor, batch)
    }
}
