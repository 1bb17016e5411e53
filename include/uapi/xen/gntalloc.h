/* SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR MIT) */
/*
 * /dev/xen/gntalloc: allocate pages and grant another Xen domain access to
 * them.
 *
 * The interface is binary-compatible with the Linux driver of the same name:
 * the same command numbers, layouts and sizes. All three commands are encoded
 * with _IOC_NONE although data flows both ways; that is the established ABI.
 *
 * An open file owns a private "index" space. Each allocation returns the
 * index of its first page; mmap() the file at that offset to reach the pages.
 * Grants are given up when the file no longer lists them (DEALLOC or close)
 * and no mapping covers them; the memory is released once the remote domain
 * has unmapped it too.
 */
#ifndef __XEN_GNTALLOC_UAPI_H__
#define __XEN_GNTALLOC_UAPI_H__

#include <linux/types.h>

/* Command numbers: _IOC(_IOC_NONE, 'G', nr, sizeof(struct ...)). */

/*
 * Allocate `count` zeroed pages, grant `domid` access to each of them and
 * return one grant reference per page in gref_ids[] (in index order), and in
 * `index` the mmap() offset of the first page. The caller's buffer must hold
 * at least sizeof(struct) bytes and 16 + 4 * count bytes.
 */
#define IOCTL_GNTALLOC_ALLOC_GREF \
	_IOC(_IOC_NONE, 'G', 5, sizeof(struct ioctl_gntalloc_alloc_gref))
struct ioctl_gntalloc_alloc_gref {
	/* IN: the domain that may map the pages. */
	__u16 domid;
	/* IN: GNTALLOC_FLAG_* bits; other bits are ignored. */
	__u16 flags;
	/* IN: number of pages (0 is accepted and allocates nothing). */
	__u32 count;
	/* OUT: mmap() offset of the first page. */
	__u64 index;
	/* OUT: `count` grant references. */
	union {
		__u32 gref_ids[1];
		__DECLARE_FLEX_ARRAY(__u32, gref_ids_flex);
	};
};

/* The remote domain may write to the pages; without it the grant is read-only. */
#define GNTALLOC_FLAG_WRITABLE 1

/*
 * Remove `count` consecutive pages starting at `index` from the file. Pages
 * still mapped stay alive until their last mapping is gone.
 */
#define IOCTL_GNTALLOC_DEALLOC_GREF \
	_IOC(_IOC_NONE, 'G', 6, sizeof(struct ioctl_gntalloc_dealloc_gref))
struct ioctl_gntalloc_dealloc_gref {
	/* IN: index of the first page, as returned by ALLOC. */
	__u64 index;
	/* IN: number of pages. */
	__u32 count;
};

/*
 * Arrange for an action when the page holding byte `index` is released
 * locally (the last of DEALLOC/close and munmap): clear that byte, signal an
 * event channel, or both. The last call for a page wins; action 0 cancels.
 * Same layout and number as the gntdev command of the same name.
 */
#define IOCTL_GNTALLOC_SET_UNMAP_NOTIFY \
	_IOC(_IOC_NONE, 'G', 7, sizeof(struct ioctl_gntalloc_unmap_notify))
struct ioctl_gntalloc_unmap_notify {
	/* IN: offset of a byte in the file's index space. */
	__u64 index;
	/* IN: UNMAP_NOTIFY_* bits. */
	__u32 action;
	/* IN: event channel to signal when UNMAP_NOTIFY_SEND_EVENT is set. */
	__u32 event_channel_port;
};

/* Clear the byte at `index` to zero. */
#define UNMAP_NOTIFY_CLEAR_BYTE 0x1
/* Send an event on `event_channel_port`. */
#define UNMAP_NOTIFY_SEND_EVENT 0x2

#endif /* __XEN_GNTALLOC_UAPI_H__ */
