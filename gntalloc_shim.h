/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C side of xen-gntalloc-rs: only what Rust cannot reach, i.e. static
 * inline functions and macros of the Xen and mm headers, a module parameter
 * that is writable at runtime, and a delayed work item that can be cancelled
 * synchronously. bindgen turns this header into Rust declarations.
 */
#ifndef _XEN_GNTALLOC_RS_SHIM_H
#define _XEN_GNTALLOC_RS_SHIM_H

#include <linux/types.h>

struct page;
struct vm_area_struct;

/* Current value of the `limit` module parameter (grants, system-wide). */
unsigned int gntalloc_rs_limit(void);
/* Whether the kernel runs as a Xen guest (xen_domain()). */
bool gntalloc_rs_xen_domain(void);
/* Guest frame number of the 4K Xen page `sub` of `page`. */
unsigned long gntalloc_rs_page_gfn(struct page *page, unsigned int sub);
/* Clear byte `offset` of `page` (the page may be shared with user space and a remote). */
void gntalloc_rs_clear_byte(struct page *page, unsigned int offset);
/* Send an event on `port` (EVTCHNOP_send, result ignored as upstream does). */
void gntalloc_rs_notify_remote(u32 port);
/* get_page() / put_page(). */
void gntalloc_rs_get_page(struct page *page);
void gntalloc_rs_put_page(struct page *page);
/*
 * vm_insert_page() of `count` pages from `addr` on, in a VMA being set up by ->mmap (VM_MIXEDMAP
 * set), with the page-table writes of each page table batched in the lazy MMU mode.
 * `prev_inserted`: the page before `addr` was just inserted, so its page table exists.
 */
int gntalloc_rs_insert_pages(struct vm_area_struct *vma, unsigned long addr,
			     struct page **pages, unsigned long count, bool prev_inserted);
/*
 * alloc_pages_bulk() of `count` zeroed pages into `pages` (all NULL on entry): the number
 * allocated, `pages[0..n]`, one reference each; fewer than asked when memory is short.
 */
unsigned long gntalloc_rs_alloc_zeroed_pages(unsigned long count, struct page **pages);
/* totalram_pages(): the pages of memory the kernel manages. */
unsigned long gntalloc_rs_totalram_pages(void);
/* Set the function the periodic retry of deferred grants runs (once, at init). */
void gntalloc_rs_reclaim_init(void (*run)(void));
/* (Re)arm the periodic retry of deferred grants, `ms` milliseconds from now. */
void gntalloc_rs_reclaim_arm(unsigned int ms);
/* Cancel the periodic retry and wait for a running one to finish. */
void gntalloc_rs_reclaim_stop(void);

/* Whether a misc device named "xen/gntalloc" (e.g. the C driver's) is registered. */
bool gntalloc_rs_node_taken(void);

#endif /* _XEN_GNTALLOC_RS_SHIM_H */
