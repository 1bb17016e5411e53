/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the gntalloc selftests: raw ioctl wrappers for
 * /dev/xen/gntalloc, a gntdev mapping that plays the remote domain (Xen lets
 * a domain map the grants it issued to itself), an event-channel loopback,
 * and access to the module under test's parameters and counters.
 */
#ifndef GNTALLOC_UTIL_H
#define GNTALLOC_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xen/gntalloc.h>
/* The Xen UAPI headers expect these typedefs from their includer. */
typedef uint32_t grant_ref_t;
typedef uint16_t domid_t;
#include <xen/evtchn.h>
#include <xen/gntdev.h>

#define GNTALLOC_DEV "/dev/xen/gntalloc"
#define XPAGE 4096UL
#define DOMID_SELF_ID 0 /* tests run in dom0 and grant to themselves */

/* Seconds on the monotonic clock. */
static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline long page_size(void)
{
	return sysconf(_SC_PAGESIZE);
}

/*
 * 4K grants that one kernel page holds: 1 on 4K kernels, 16 on 64K ones. Our
 * module packs the grants of an ALLOC into kernel pages: grant k is 4K frame
 * k % grants_per_page() of page k / grants_per_page(), its slot (the index
 * DEALLOC and SET_UNMAP_NOTIFY take) is index + k * XPAGE, and so is the
 * offset of its frame in a mapping of the allocation. (The C driver on a 64K
 * kernel gives each grant a page of its own and grants only its first 4K.)
 */
static inline long grants_per_page(void)
{
	return page_size() / XPAGE;
}

/*
 * Bytes of index space, and of a mapping, that an ALLOC of `count` grants
 * takes: whole kernel pages (count * page_size() on 4K kernels).
 */
static inline uint64_t grant_span(uint64_t count)
{
	uint64_t per_page = grants_per_page();

	return (count + per_page - 1) / per_page * page_size();
}

/*
 * "rust" or "c": which module provides the device. Ours is xen_gntalloc_rs
 * side by side with the C driver, and xen_gntalloc as its drop-in
 * replacement (in tree, CONFIG_XEN_GNTALLOC_IMPL_RUST), where only its
 * debugfs counters tell it apart.
 */
static inline const char *module_under_test(void)
{
	struct stat st;

	/* Ours built in as the drop-in has upstream's names, and counters upstream has not. */
	if (stat("/sys/module/xen_gntalloc_rs", &st) == 0 ||
	    stat("/sys/kernel/debug/xen-gntalloc/stats", &st) == 0)
		return "rust";
	if (stat("/sys/module/xen_gntalloc", &st) == 0)
		return "c";
	return "none";
}

static inline int is_rust(void)
{
	return strcmp(module_under_test(), "rust") == 0;
}

/* sysfs name of the module under test. */
static inline const char *module_sysname(void)
{
	struct stat st;

	return stat("/sys/module/xen_gntalloc_rs", &st) == 0 ? "xen_gntalloc_rs" : "xen_gntalloc";
}

static inline const char *limit_path(void)
{
	return strcmp(module_sysname(), "xen_gntalloc_rs") == 0 ?
		       "/sys/module/xen_gntalloc_rs/parameters/limit" :
		       "/sys/module/xen_gntalloc/parameters/limit";
}

static inline long read_long(const char *path)
{
	char buf[64] = { 0 };
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? strtol(buf, NULL, 0) : -1;
}

static inline int write_long(const char *path, long v)
{
	char buf[64];
	int fd = open(path, O_WRONLY);
	int len, ok;

	if (fd < 0)
		return -1;
	len = snprintf(buf, sizeof(buf), "%ld\n", v);
	ok = write(fd, buf, len) == len;
	close(fd);
	return ok ? 0 : -1;
}

static inline long get_limit(void)
{
	return read_long(limit_path());
}

static inline int set_limit(long v)
{
	return write_long(limit_path(), v);
}

/*
 * A counter of the Rust module in debugfs, or -1: xen-gntalloc-rs/ as the side-by-side
 * module, xen-gntalloc/ built in as upstream's drop-in.
 */
static inline long rust_stat(const char *name)
{
	char path[128];
	long v;

	snprintf(path, sizeof(path), "/sys/kernel/debug/xen-gntalloc-rs/stats/%s", name);
	v = read_long(path);
	if (v >= 0)
		return v;
	snprintf(path, sizeof(path), "/sys/kernel/debug/xen-gntalloc/stats/%s", name);
	return read_long(path);
}

/* The number after "KEY:" in the text file at `path` (strtol with `base`), or -1. */
static inline long key_value(const char *path, const char *key, int base)
{
	char line[128];
	size_t klen = strlen(key);
	long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, klen) == 0 && line[klen] == ':')
			v = strtol(line + klen + 1, NULL, base);
	fclose(f);
	return v;
}

/* A numeric field of an open file's /proc/self/fdinfo (the Rust module's), or -1. */
static inline long fdinfo(int fd, const char *key)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	return key_value(path, key, 0);
}

/*
 * Pages allocated from the module's code and not freed yet, from page_owner
 * (kernel booted with page_owner=on): the sum of nr_base_pages over the
 * allocation stacks that run through "[module]", but for pages that belong to
 * someone else (see below). -1 without page_owner.
 */
static inline long module_pages(void)
{
	FILE *f = fopen("/sys/kernel/debug/page_owner_stacks/show_stacks", "r");
	char tag[64], line[512];
	long total = 0, n;
	int ours = 0, other = 0;

	if (!f)
		return -1;
	snprintf(tag, sizeof(tag), "[%s]", module_sysname());
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, tag))
			ours = 1;
		/*
		 * Slab pages outlive the objects that made the cache grow, the
		 * grant table never shrinks once grown, and the page tables that
		 * an mmap of ours needed belong to the process: not the module's.
		 */
		else if (strstr(line, "slab_alloc") || strstr(line, "new_slab") ||
			 strstr(line, "kmalloc_large") || strstr(line, "grow_gnttab_list") ||
			 strstr(line, "gnttab_expand") || strstr(line, "pte_alloc") ||
			 strstr(line, "pmd_alloc") || strstr(line, "pud_alloc") ||
			 strstr(line, "p4d_alloc") || strstr(line, "pagetable_alloc"))
			other = 1;
		else if (sscanf(line, "nr_base_pages: %ld", &n) == 1 && ours && !other)
			total += n;
		else if (line[0] == '\n')
			ours = other = 0;
	}
	fclose(f);
	return total;
}

/*
 * module_pages() once it holds still: the same count twice, 1.5 s apart (up to
 * 30 s). Pages of an earlier load of the module at the same address count as
 * the module's too, and the grant-table core frees the deferred ones on its own
 * timer: one freed while a test measures cancels a page the test leaked (seen
 * on the C reference's B3 test, which leaks a single page per load).
 */
static inline long settled_module_pages(void)
{
	long was = module_pages(), now;

	for (int i = 0; i < 20 && was >= 0; i++, was = now) {
		usleep(1500 * 1000);
		now = module_pages();
		if (now == was)
			break;
	}
	return was;
}

/*
 * The state of one of our event-channel ports, asked of Xen directly
 * (EVTCHNOP_status through privcmd): a port nobody references any more has
 * been closed; a VIRQ port is one the kernel bound for itself. Values and layout from Xen's public event_channel.h.
 */
enum {
	EVTCHN_STATE_CLOSED,
	EVTCHN_STATE_UNBOUND,
	EVTCHN_STATE_INTERDOMAIN,
	EVTCHN_STATE_PIRQ,
	EVTCHN_STATE_VIRQ,
	EVTCHN_STATE_IPI,
};

/* privcmd's raw hypercall (the installed xen/privcmd.h is not self-contained). */
struct privcmd_raw_hypercall {
	uint64_t op, arg[5];
};
#define PRIVCMD_RAW_HYPERCALL _IOC(_IOC_NONE, 'P', 0, sizeof(struct privcmd_raw_hypercall))

static inline int evtchn_status(uint32_t port)
{
	struct {
		uint16_t dom;
		uint32_t port, status, vcpu, u[2];
	} st = { .dom = 0x7ff0 /* DOMID_SELF */, .port = port };
	struct privcmd_raw_hypercall call = {
		.op = 32,	/* __HYPERVISOR_event_channel_op */
		.arg = { 5 /* EVTCHNOP_status */, (uintptr_t)&st },
	};
	int fd = open("/dev/xen/privcmd", O_RDWR), ret;

	if (fd < 0)
		fd = open("/proc/xen/privcmd", O_RDWR);
	if (fd < 0)
		return -errno;
	ret = ioctl(fd, PRIVCMD_RAW_HYPERCALL, &call);
	close(fd);
	return ret < 0 ? -errno : (int)st.status;
}

/* Fault injection (failslab, fail_page_alloc) through debugfs. */
#define FAULT_DIR "/sys/kernel/debug/"

static inline int fault_attr(const char *which, const char *attr, const char *val)
{
	char path[160];
	int fd, ok;

	snprintf(path, sizeof(path), FAULT_DIR "%s/%s", which, attr);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ok = write(fd, val, strlen(val)) == (ssize_t)strlen(val);
	close(fd);
	return ok ? 0 : -1;
}

static inline int fault_available(const char *which)
{
	char path[160];

	snprintf(path, sizeof(path), FAULT_DIR "%s/probability", which);
	return access(path, W_OK) == 0;
}

/*
 * Arms `which` to fail exactly one allocation of this task, once `space`
 * bytes have been allocated; injection happens only while the task's
 * make-it-fail is set (fault_task(1)).
 */
static inline int fault_arm_times(const char *which, long space, int times)
{
	char buf[32], nbuf[16];

	snprintf(buf, sizeof(buf), "%ld", space);
	snprintf(nbuf, sizeof(nbuf), "%d", times);
	if (fault_attr(which, "verbose", "0") || fault_attr(which, "task-filter", "Y") ||
	    fault_attr(which, "interval", "1") || fault_attr(which, "probability", "100") ||
	    fault_attr(which, "space", buf) || fault_attr(which, "times", nbuf))
		return -1;
	/* Only in fail_page_alloc: also fail small and sleeping allocations. */
	fault_attr(which, "ignore-gfp-wait", "N");
	fault_attr(which, "ignore-gfp-highmem", "N");
	fault_attr(which, "min-order", "0");
	return 0;
}

/* One failure, the first eligible allocation once `space` bytes have been allocated. */
static inline int fault_arm(const char *which, long space)
{
	return fault_arm_times(which, space, 1);
}

static inline void fault_disarm(const char *which)
{
	fault_attr(which, "probability", "0");
	fault_attr(which, "times", "0");
	fault_attr(which, "space", "0");
}

static inline void fault_task(int on)
{
	write_long("/proc/self/make-it-fail", on);
}

/* ALLOC of `count` grants for `domid`, with a heap buffer; returns 0 or -errno. */
static inline int gnt_alloc_for(int fd, uint16_t domid, uint32_t count, uint16_t flags,
				uint64_t *index, uint32_t *ids)
{
	size_t len = sizeof(struct ioctl_gntalloc_alloc_gref) + 4 * (size_t)count;
	struct ioctl_gntalloc_alloc_gref *op = calloc(1, len);
	int ret;

	if (!op)
		return -ENOMEM;
	op->domid = domid;
	op->flags = flags;
	op->count = count;
	ret = ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, op) ? -errno : 0;
	if (!ret) {
		if (index)
			*index = op->index;
		if (ids)
			memcpy(ids, op->gref_ids, 4 * (size_t)count);
	}
	free(op);
	return ret;
}

/* ALLOC for this domain itself (the gntdev "remote" of the one-domain tests). */
static inline int gnt_alloc(int fd, uint32_t count, uint16_t flags, uint64_t *index,
			    uint32_t *ids)
{
	return gnt_alloc_for(fd, DOMID_SELF_ID, count, flags, index, ids);
}

static inline int gnt_dealloc(int fd, uint64_t index, uint32_t count)
{
	struct ioctl_gntalloc_dealloc_gref op = { .index = index, .count = count };

	return ioctl(fd, IOCTL_GNTALLOC_DEALLOC_GREF, &op) ? -errno : 0;
}

static inline int gnt_notify(int fd, uint64_t index, uint32_t action, uint32_t port)
{
	struct ioctl_gntalloc_unmap_notify op = {
		.index = index, .action = action, .event_channel_port = port,
	};

	return ioctl(fd, IOCTL_GNTALLOC_SET_UNMAP_NOTIFY, &op) ? -errno : 0;
}

/* mmap `len` bytes of the gntalloc file at `index`; MAP_FAILED on error. */
static inline void *gnt_map(int fd, uint64_t index, size_t len)
{
	return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, index);
}

/*
 * Tests that need the "remote" below start with this. The runner sets
 * XGR_NO_GNTDEV on a PVH dom0, where gntdev mappings of the domain's own
 * grants corrupt its memory whichever driver made the grants (seen on 7.3.4
 * + Xen 4.20): there, those tests are reported as skipped. Xen's rule: a
 * translated domain's grant map adds the frame at the mapping's gfn with
 * p2m_add_page(), which, finding the frame already the same domain's at
 * another gfn, removes that gfn (xen/arch/x86/mm/p2m.c); the unmap removes
 * the mapping's gfn too (replace_grant_p2m_mapping()), and nothing puts the
 * first one back. The granted page is then at no gfn: it reads all 0xff and
 * drops writes, and once freed, whatever the kernel keeps in it is lost. A
 * foreign domain's map has no such effect (the frame is not its own), and
 * an arm64 dom0, translated too, runs these tests clean (Arm's grant map
 * keeps no machine-to-guest uniqueness, which that removal serves). This
 * is not the two-CPU fault that made run-qemu give a PVH dom0 one CPU: with
 * one CPU, gntdev self-mappings still end in "kernel BUG at
 * mm/mmu_gather.c:202".
 */
#define REQUIRE_REMOTE()                                                         \
	do {                                                                     \
		if (getenv("XGR_NO_GNTDEV"))                                     \
			SKIP(return, "no gntdev self-mapping on this dom0 (PVH)"); \
	} while (0)

/*
 * A gntdev mapping of our own grants: the "remote domain". gntdev maps one
 * grant per kernel page, so ref k's 4K frame starts at k * page_size() of the
 * mapping (on 4K kernels: k * XPAGE); use remote_frame(). The mapping is
 * `len` bytes long.
 */
struct remote_map {
	int fd;
	uint64_t index;
	uint32_t count;
	size_t len;
	volatile uint8_t *addr;
};

/* The 4K frame of ref k (k < count) as the remote sees it. */
static inline volatile uint8_t *remote_frame(const struct remote_map *r, uint32_t k)
{
	return r->addr + (size_t)k * page_size();
}

static inline int remote_map(struct remote_map *r, const uint32_t *refs, uint32_t count,
			     int writable)
{
	size_t len = sizeof(struct ioctl_gntdev_map_grant_ref) +
		     sizeof(struct ioctl_gntdev_grant_ref) * count;
	struct ioctl_gntdev_map_grant_ref *op = calloc(1, len);
	uint32_t i;
	void *p;

	r->fd = open("/dev/xen/gntdev", O_RDWR | O_CLOEXEC);
	if (r->fd < 0 || !op) {
		free(op);
		return -errno;
	}
	op->count = count;
	for (i = 0; i < count; i++) {
		op->refs[i].domid = DOMID_SELF_ID;
		op->refs[i].ref = refs[i];
	}
	if (ioctl(r->fd, IOCTL_GNTDEV_MAP_GRANT_REF, op)) {
		int e = -errno;

		free(op);
		close(r->fd);
		return e;
	}
	r->index = op->index;
	r->count = count;
	r->len = (size_t)count * page_size();
	free(op);
	p = mmap(NULL, r->len, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, r->fd,
		 r->index);
	if (p == MAP_FAILED) {
		int e = -errno;

		close(r->fd);
		return e;
	}
	r->addr = p;
	return 0;
}

static inline void remote_unmap(struct remote_map *r)
{
	struct ioctl_gntdev_unmap_grant_ref op = { .index = r->index, .count = r->count };

	munmap((void *)r->addr, r->len);
	ioctl(r->fd, IOCTL_GNTDEV_UNMAP_GRANT_REF, &op);
	close(r->fd);
}

/*
 * An event channel looped back within dom0: `port` is the end given to
 * gntalloc; events sent on it are read from `rfd` as `rport`.
 */
struct evtchn_loop {
	int lfd, rfd;
	uint32_t port, rport;
};

/* Number of events seen on the remote end within `ms` (re-enables the port). */
static inline int evtchn_loop_events(struct evtchn_loop *e, int ms)
{
	struct pollfd pfd = { .fd = e->rfd, .events = POLLIN };
	uint32_t ports[16];
	int n = 0;

	while (poll(&pfd, 1, ms) > 0) {
		ssize_t r = read(e->rfd, ports, sizeof(ports));

		if (r <= 0)
			break;
		n += r / 4;
		if (write(e->rfd, ports, r) != r)
			break;
		ms = 50;
	}
	return n;
}

static inline int evtchn_loop_open(struct evtchn_loop *e)
{
	struct ioctl_evtchn_bind_unbound_port unbound = { .remote_domain = DOMID_SELF_ID };
	struct ioctl_evtchn_bind_interdomain inter = { .remote_domain = DOMID_SELF_ID };
	int ret;

	e->lfd = open("/dev/xen/evtchn", O_RDWR);
	e->rfd = open("/dev/xen/evtchn", O_RDWR);
	if (e->lfd < 0 || e->rfd < 0)
		return -errno;
	ret = ioctl(e->lfd, IOCTL_EVTCHN_BIND_UNBOUND_PORT, &unbound);
	if (ret < 0)
		return -errno;
	e->port = ret;
	inter.remote_port = e->port;
	ret = ioctl(e->rfd, IOCTL_EVTCHN_BIND_INTERDOMAIN, &inter);
	if (ret < 0)
		return -errno;
	e->rport = ret;
	/* Xen marks a freshly bound interdomain port pending: consume that event. */
	evtchn_loop_events(e, 100);
	return 0;
}

static inline void evtchn_loop_close(struct evtchn_loop *e)
{
	if (e->lfd >= 0)
		close(e->lfd);
	if (e->rfd >= 0)
		close(e->rfd);
}

#endif /* GNTALLOC_UTIL_H */
