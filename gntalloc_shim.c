// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers for xen-gntalloc-rs; see gntalloc_shim.h for why each exists.
 * Also checks at build time that our UAPI header matches the established ABI.
 */
#include <linux/build_bug.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/namei.h>
#include <linux/pgtable.h>
#include <linux/workqueue.h>
#include <xen/events.h>
#include <xen/page.h>
#include <xen/xen.h>

#include "include/uapi/xen/gntalloc.h"
#include "gntalloc_shim.h"

static unsigned int limit = 1024;
module_param(limit, uint, 0644);
MODULE_PARM_DESC(limit, "Maximum number of grants that may be allocated by the device (system-wide)");

/* The ABI, byte for byte (values of the established interface). */
static_assert(IOCTL_GNTALLOC_ALLOC_GREF == 0x00184705);
static_assert(IOCTL_GNTALLOC_DEALLOC_GREF == 0x00104706);
static_assert(IOCTL_GNTALLOC_SET_UNMAP_NOTIFY == 0x00104707);
static_assert(sizeof(struct ioctl_gntalloc_alloc_gref) == 24);
static_assert(offsetof(struct ioctl_gntalloc_alloc_gref, gref_ids) == 16);
static_assert(sizeof(struct ioctl_gntalloc_dealloc_gref) == 16);
static_assert(sizeof(struct ioctl_gntalloc_unmap_notify) == 16);
static_assert(sizeof(grant_ref_t) == 4 && sizeof(evtchn_port_t) == 4);

unsigned int gntalloc_rs_limit(void)
{
	return READ_ONCE(limit);
}

bool gntalloc_rs_xen_domain(void)
{
	return xen_domain();
}

unsigned long gntalloc_rs_page_gfn(struct page *page, unsigned int sub)
{
	return pfn_to_gfn(page_to_xen_pfn(page) + sub);
}

void gntalloc_rs_clear_byte(struct page *page, unsigned int offset)
{
	u8 *addr = kmap_local_page(page);

	WRITE_ONCE(addr[offset], 0);
	kunmap_local(addr);
}

void gntalloc_rs_notify_remote(u32 port)
{
	notify_remote_via_evtchn(port);
}

void gntalloc_rs_get_page(struct page *page)
{
	get_page(page);
}

unsigned long gntalloc_rs_alloc_zeroed_pages(unsigned long count, struct page **pages)
{
	return alloc_pages_bulk(GFP_KERNEL | __GFP_ZERO, count, pages);
}

unsigned long gntalloc_rs_totalram_pages(void)
{
	return totalram_pages();
}

void gntalloc_rs_put_page(struct page *page)
{
	put_page(page);
}

int gntalloc_rs_insert_pages(struct vm_area_struct *vma, unsigned long addr,
			     struct page **pages, unsigned long count, bool prev_inserted)
{
	while (count) {
		unsigned long n = (pmd_addr_end(addr, addr + count * PAGE_SIZE) - addr) >> PAGE_SHIFT;
		unsigned long lazy = n;
		int err;

		/*
		 * The first page of a page table that may not exist yet goes in alone:
		 * allocating the table sleeps, which the lazy MMU mode forbids.
		 */
		if (!prev_inserted || IS_ALIGNED(addr, PMD_SIZE)) {
			err = vm_insert_page(vma, addr, pages[0]);
			if (err)
				return err;
			lazy--;
		}
		if (lazy) {
			unsigned long left = lazy;

			/*
			 * The table exists: nothing below sleeps. In a Xen PV domain each PTE
			 * write is otherwise a hypercall of its own; the lazy MMU mode queues
			 * them into multicalls, issued at the latest when it ends.
			 */
			lazy_mmu_mode_enable();
			err = vm_insert_pages(vma, addr + (n - lazy) * PAGE_SIZE, pages + (n - lazy),
					      &left);
			lazy_mmu_mode_disable();
			if (err)
				return err;
		}
		addr += n * PAGE_SIZE;
		pages += n;
		count -= n;
		prev_inserted = true;
	}
	return 0;
}

/* The Rust retry, set once at module init before anything can arm the work. */
static void (*reclaim_run)(void);

void gntalloc_rs_reclaim_init(void (*run)(void))
{
	reclaim_run = run;
}

static void reclaim_work_fn(struct work_struct *work)
{
	reclaim_run();
}

static DECLARE_DELAYED_WORK(reclaim_work, reclaim_work_fn);

void gntalloc_rs_reclaim_arm(unsigned int ms)
{
	/* Does nothing while a retry is already queued: drops must not postpone it. */
	queue_delayed_work(system_dfl_wq, &reclaim_work, msecs_to_jiffies(ms));
}

void gntalloc_rs_reclaim_stop(void)
{
	cancel_delayed_work_sync(&reclaim_work);
}

bool gntalloc_rs_node_taken(void)
{
	struct path path;

	/*
	 * misc_register() would fail on the duplicate sysfs name too, but only after sysfs
	 * has dumped a stack trace: look first, so that a conflict is a clean -EBUSY.
	 */
	if (kern_path("/sys/class/misc/xen!gntalloc", 0, &path))
		return false;
	path_put(&path);
	return true;
}
