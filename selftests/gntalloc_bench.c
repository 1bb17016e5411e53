// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark, not a test: times what user space does on /dev/xen/gntalloc, on
 * whichever module provides it, at the scale Qubes OS runs it (its limit is
 * 2^30; one Wayland buffer is about 98k grants in a single ALLOC). run-qemu
 * --bench runs it in rounds, alternating the modules in one boot, and
 * tap-summary --bench takes each case's median over the rounds. Under QEMU TCG
 * absolute times mean little; ratios between the modules do.
 *
 * Output (stdout, line-buffered), one line per measurement:
 *
 *   bench: MODULE CASE OUTSTANDING OPS ops in MS ms
 *	OPS operations of CASE took MS milliseconds (wall clock). OUTSTANDING
 *	is the number of grants the program holds, in any of its files, while
 *	the case runs, not counting those its operations make and free again
 *	(for dealloc_60000 and close_file_30000: the grants being released):
 *	the x axis of scripts/bench-chart. MODULE is "rust" or "c".
 *   bench-mem: MODULE slab_bytes_per_grant X pages_bytes_per_grant Y grants N
 *	Memory that N grants held in one file cost, from /proc/meminfo before
 *	and after their ALLOCs: X is the growth of SUnreclaim (the driver's
 *	objects, and the grant-table core's) per grant, Y the fall of MemFree
 *	less that growth (the granted pages and anything else outside the
 *	slab) per grant. Both rounded to whole bytes; noise can make them
 *	slightly off, even negative.
 *   bench-lat: MODULE CASE median_us X max_us Y samples N
 *	Latency of one mmap of a grant made beforehand, a write to it (the
 *	page fault) and its munmap, in a thread of this process: median and
 *	maximum over N iterations, in microseconds (during_alloc_60000: those
 *	that overlapped another thread's ALLOC of 60000 grants in the same
 *	file).
 *   bench-val: MODULE CASE OUTSTANDING METRIC VALUE UNIT
 *	Any other measurement: deferred_retry_cpu's busy_of_one_cpu, in pct
 *	(the CPU time the system spent while the program slept, in percent of
 *	one CPU), at OUTSTANDING grants deferred.
 *   bench: MODULE FAILED: CASE: WHAT: ERROR
 *	A call failed (every return value is checked); the case is abandoned
 *	and the next one runs. tap-summary fails the run on such a line.
 *   bench-info: MODULE ...
 *	Context for a reader (ours: the counters after the op cases); not
 *	measured.
 *   bench-done: MODULE failed F seconds S
 *	Last line: the program got to its end, F cases failed, S seconds in
 *	all. Exit status 0 only if F is 0.
 *
 * The cases, in the order they run: share_cycle_1 and share_cycle_16 (one
 * share cycle, see share_cycles(), of 1 or 16 grants per op); the cycle's
 * steps one at a time (op_alloc_1, op_mmap_write_munmap_1, op_notify,
 * op_dealloc_1, op_mmap_dealloc_munmap_1; see case_ops());
 * alloc_dealloc_256 (ALLOC + DEALLOC of 256 grants per op); mmap_256,
 * share_256, mmap_4096 and share_4096 (one large ALLOC mapped, see
 * case_map_bulk());
 * share_cycle_held_other_file and share_cycle_held_same_file (1-grant
 * cycles while 0, 1k, 10k, 30k, 100k grants are held in another file or in
 * the cycles' own file); alloc_60000 and dealloc_60000 (one op each);
 * memory_per_grant_1 (memory per grant, held as ALLOCs of one grant), then
 * memory_per_grant (the bench-mem line: ALLOCs of 1000) and close_file_30000;
 * both count the slab's growth from shrunk caches; two workers
 * at once (OPS: both workers' cycles, MS: wall time): the share cycle in
 * two_threads_own_files, two_threads_shared_file and two_processes_own_files,
 * then ALLOC(1)+DEALLOC alone (alloc_dealloc_1_two_threads_own_files, with
 * alloc_dealloc_1_one_thread as its one-worker reference), and the share
 * cycle's mm part with no driver (no_driver_anon_cycle_two_threads and
 * _one_thread: an anonymous page's mmap, fault and munmap, the floor under
 * any driver; both modules measure the same thing there), and a pure
 * user-space loop (no_driver_user_loop_one_thread and _two_threads: whether
 * two workers run in parallel at all here); the bench-lat cases
 * mmap_fault_idle and mmap_fault_during_alloc_60000. Only when named in
 * XGR_BENCH_GROUPS, the Qubes OS scale groups (the limit at 2^30): backlog
 * (300k grants released while a remote maps them; see case_backlog()) and
 * million (share cycles while up to a million grants are held, their memory,
 * and the close() that releases them; see case_million()).
 *
 * Op counts are chosen so that one run takes about 20-40 s per module under
 * TCG, where a share cycle costs 50-150 us. The cases with 30k or 100k grants
 * outstanding run few cycles: the C driver walks its lists, so a cycle costs
 * it far more there.
 *
 * The grant table bounds the counts. An arm64 dom0's table is as large as
 * Xen's own text section (Xen on Arm maps it where Xen's image sits in the
 * host's memory, gnttab_dom0_frames()), whatever gnttab_max_frames says: 116
 * frames, 59392 grants, with Debian's Xen 4.20. The bench reads that size from
 * the device tree (see table_grants()) and then leaves out the held levels
 * that do not fit and makes its one large ALLOC smaller, in steps of 10000; the
 * cases that carry the count in their name (alloc_N, dealloc_N,
 * mmap_fault_during_alloc_N) say which. An x86 table (1024 frames in run-qemu
 * --bench) holds them all.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>

#include "gntalloc_util.h"

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

enum {
	LIMIT = 200000,		/* 100k held + a 60k ALLOC + headroom */
	CHUNK = 1000,		/* held grants are made in ALLOCs of this many */
	CYCLES_1 = 2000,	/* share_cycle_1 */
	CYCLES_16 = 500,	/* share_cycle_16 */
	OPS = 2000,		/* each op_* case */
	BULK = 256,		/* a vchan-sized ring (256 pages each way) */
	BULK_ROUNDS = 40,
	MAP_ROUNDS = 20,	/* each mmap_N and share_N case */
	BIG = 60000,		/* one ALLOC, as a large Wayland buffer */
	TABLE_SPARE = 4096,	/* grants left to the rest of dom0 (xenstore, consoles) */
	HELD_30K = 30000,	/* memory per grant and close() */
	THREAD_CYCLES = 1000,	/* per thread */
	USER_LOOP = 20000,	/* xorshift steps in a user_cycles() cycle */
	LAT_IDLE = 1000,
	NOTIFY_OFFSET = 21,	/* libxenvchan's srv_live byte */
	/* Qubes OS scale: the backlog and million groups */
	QUBES_LIMIT = 1 << 30,	/* what Qubes OS writes to the limit parameter */
	GNTDEV_MAP_MAX = 50000,	/* grants per ALLOC and per gntdev mapping (its limit: 65536) */
	BACKLOG = 300000,
	BACKLOG_CYCLES = 1000,
	CPU_WINDOW_MS = 10000,
	MILLION = 1000000,
	MILLION_CYCLES = 200,
};

/* Grants held while share cycles run, and how many cycles at each level. */
static const struct {
	long held;
	int cycles;
} levels[] = {
	{ 0, 1000 }, { 1000, 1000 }, { 10000, 500 }, { 30000, 200 }, { 100000, 200 },
};

static const char *mod;		/* module_under_test(), once */
static long big = BIG;		/* the one large ALLOC, smaller if the table is */
static long max_held = LONG_MAX;	/* the largest held level that fits the table */
static const char *profile_case;	/* XGR_PROFILE_CASE: the case run-qemu --profile counts */
static const char *cur_case;	/* for FAILED lines */
static int failures;

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/*
 * Markers for run-qemu --profile: its QEMU plugin counts the kernel's instructions from a
 * call of the first to a call of the second. They sit alone in their own section, which the
 * Makefile puts at a fixed address; `noinline` and the barrier keep each a real call.
 */
__attribute__((noinline, section(".xgr_profile_marks"), aligned(64))) void xgr_profile_on(void)
{
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline, section(".xgr_profile_marks"), aligned(64))) void xgr_profile_off(void)
{
	__asm__ volatile("" ::: "memory");
}

/* Starts timing case `name` (and counting it, if it is the profiled case); its start time. */
static double case_begin(const char *name)
{
	if (profile_case && !strcmp(name, profile_case))
		xgr_profile_on();
	return now_us();
}

static void report(const char *name, long outstanding, long ops, double us)
{
	xgr_profile_off();
	printf("bench: %s %s %ld %ld ops in %.3f ms\n", mod, name, outstanding, ops, us / 1e3);
}

/* Prints the FAILED line of the current case; -1 for the caller to pass up. */
static int failed(const char *what, int err)
{
	printf("bench: %s FAILED: %s: %s: %s\n", mod, cur_case, what, strerror(err));
	__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
	return -1;
}

static int open_dev(int *fd)
{
	*fd = open(GNTALLOC_DEV, O_RDWR);
	return *fd < 0 ? failed("open", errno) : 0;
}

static int close_dev(int fd)
{
	return close(fd) ? failed("close", errno) : 0;
}

/* Opens two files of the device, or neither; 0, or -1 after a FAILED line. */
static int open_two(int *a, int *b)
{
	if (open_dev(a))
		return -1;
	if (open_dev(b)) {
		close(*a);
		*a = -1;
		return -1;
	}
	return 0;
}

/*
 * `n` times what libxengnttab's share_pages with an unmap notification, then
 * its unshare, do for `count` grants: ALLOC, mmap, SET_UNMAP_NOTIFY (clear a
 * byte), DEALLOC (the mapping keeps the grants), a write, munmap (which
 * releases them). 0, or -1 after a FAILED line.
 */
static int share_cycles(int fd, int n, uint32_t count)
{
	size_t len = grant_span(count);
	uint64_t idx;
	int ret;

	for (int i = 0; i < n; i++) {
		uint8_t *p;

		ret = gnt_alloc(fd, count, GNTALLOC_FLAG_WRITABLE, &idx, NULL);
		if (ret)
			return failed("ALLOC", -ret);
		p = gnt_map(fd, idx, len);
		if (p == MAP_FAILED)
			return failed("mmap", errno);
		ret = gnt_notify(fd, idx + NOTIFY_OFFSET, UNMAP_NOTIFY_CLEAR_BYTE, 0);
		if (!ret)
			ret = gnt_dealloc(fd, idx, count);
		if (ret) {
			munmap(p, len);
			return failed("SET_UNMAP_NOTIFY or DEALLOC", -ret);
		}
		p[0] = 1;
		if (munmap(p, len))
			return failed("munmap", errno);
	}
	return 0;
}

/* Times `cycles` share cycles of `count` grants on `fd` as case `name`. */
static int timed_cycles(const char *name, int fd, long outstanding, int cycles, uint32_t count)
{
	double t;

	cur_case = name;
	t = case_begin(cur_case);
	if (share_cycles(fd, cycles, count))
		return -1;
	report(name, outstanding, cycles, now_us() - t);
	return 0;
}

/* Grows the grants held in `fd` from `*held` to `target`, `chunk` at most per ALLOC. */
static int hold_in_chunks(int fd, long *held, long target, uint32_t chunk)
{
	while (*held < target) {
		uint32_t n = target - *held < chunk ? target - *held : chunk;
		int ret = gnt_alloc(fd, n, 0, NULL, NULL);

		if (ret)
			return failed("ALLOC of held grants", -ret);
		*held += n;
	}
	return 0;
}

/* Grows the grants held in `fd` from `*held` to `target`, CHUNK at most per ALLOC. */
static int hold(int fd, long *held, long target)
{
	return hold_in_chunks(fd, held, target, CHUNK);
}

/* OPS writable ALLOCs of one grant, their indexes in `idx`; 0, or -1 after a FAILED line. */
static int alloc_singles(int fd, uint64_t *idx)
{
	for (int i = 0; i < OPS; i++) {
		int ret = gnt_alloc(fd, 1, GNTALLOC_FLAG_WRITABLE, &idx[i], NULL);

		if (ret)
			return failed("ALLOC", -ret);
	}
	return 0;
}

/*
 * The share cycle taken apart, OPS grants at a time: ALLOC of one grant; mmap,
 * a write and munmap of each (the grants stay); SET_UNMAP_NOTIFY; DEALLOC of
 * unmapped grants; and mmap, DEALLOC, munmap (the grant ends at the munmap).
 * Where the two modules differ in a cycle, these say in which step.
 */
static int case_ops(void)
{
	static uint64_t idx[OPS];
	size_t len = grant_span(1);
	double t;
	int fd, ret = 0;

	if (open_dev(&fd))
		return -1;
	cur_case = "op_alloc_1";
	t = case_begin(cur_case);
	ret = alloc_singles(fd, idx);
	if (!ret) {
		report(cur_case, 0, OPS, now_us() - t);
		cur_case = "op_mmap_write_munmap_1";
		t = case_begin(cur_case);
	}
	for (int i = 0; i < OPS && !ret; i++) {
		uint8_t *p = gnt_map(fd, idx[i], len);

		if (p == MAP_FAILED) {
			ret = failed("mmap", errno);
			break;
		}
		p[0] = 1;
		if (munmap(p, len))
			ret = failed("munmap", errno);
	}
	if (!ret) {
		report(cur_case, OPS, OPS, now_us() - t);
		cur_case = "op_notify";
		t = case_begin(cur_case);
	}
	for (int i = 0; i < OPS && !ret; i++)
		if ((ret = gnt_notify(fd, idx[i] + NOTIFY_OFFSET, UNMAP_NOTIFY_CLEAR_BYTE, 0)))
			ret = failed("SET_UNMAP_NOTIFY", -ret);
	if (!ret) {
		report(cur_case, OPS, OPS, now_us() - t);
		cur_case = "op_dealloc_1";
		t = case_begin(cur_case);
	}
	for (int i = 0; i < OPS && !ret; i++)
		if ((ret = gnt_dealloc(fd, idx[i], 1)))
			ret = failed("DEALLOC", -ret);
	if (!ret) {
		report(cur_case, OPS, OPS, now_us() - t);
		cur_case = "op_alloc_1";
	}
	if (!ret)
		ret = alloc_singles(fd, idx);
	if (!ret) {
		cur_case = "op_mmap_dealloc_munmap_1";
		t = case_begin(cur_case);
	}
	for (int i = 0; i < OPS && !ret; i++) {
		uint8_t *p = gnt_map(fd, idx[i], len);

		if (p == MAP_FAILED) {
			ret = failed("mmap", errno);
			break;
		}
		if ((ret = gnt_dealloc(fd, idx[i], 1)))
			ret = failed("DEALLOC", -ret);
		if (munmap(p, len))
			ret = failed("munmap", errno);
	}
	if (!ret)
		report(cur_case, OPS, OPS, now_us() - t);
	return close_dev(fd) || ret ? -1 : 0;
}

static int case_share_cycles(void)
{
	int fd, ret;

	if (open_dev(&fd))
		return -1;
	ret = timed_cycles("share_cycle_1", fd, 0, CYCLES_1, 1);
	if (!ret)
		ret = timed_cycles("share_cycle_16", fd, 0, CYCLES_16, 16);
	return close_dev(fd) || ret ? -1 : 0;
}

/*
 * Share cycles while more and more grants are held, (a) in another file and
 * (b) in the file the cycles run on (whose lookups then pass them). The
 * holding file serves both: its grants stay while the level grows.
 */
static int case_outstanding(void)
{
	int fd, held_fd, ret = 0;
	long held = 0;

	cur_case = "share_cycle_held_other_file";
	if (open_two(&fd, &held_fd))
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(levels) && levels[i].held <= max_held && !ret; i++) {
		cur_case = "share_cycle_held_other_file";
		ret = hold(held_fd, &held, levels[i].held);
		if (!ret)
			ret = timed_cycles("share_cycle_held_other_file", fd, held,
					   levels[i].cycles, 1);
		if (!ret)
			ret = timed_cycles("share_cycle_held_same_file", held_fd, held,
					   levels[i].cycles, 1);
	}
	cur_case = "share_cycle_held_other_file";
	/* Not timed: close_file_30000 times a close. */
	if (close_dev(held_fd))
		ret = -1;
	if (close_dev(fd))
		ret = -1;
	return ret;
}

static int case_bulk(void)
{
	uint64_t idx;
	double t;
	int fd, ret = 0;

	cur_case = "alloc_dealloc_256";
	if (open_dev(&fd))
		return -1;
	t = case_begin(cur_case);
	for (int i = 0; i < BULK_ROUNDS && !ret; i++) {
		ret = gnt_alloc(fd, BULK, 0, &idx, NULL);
		if (ret) {
			ret = failed("ALLOC", -ret);
			break;
		}
		ret = gnt_dealloc(fd, idx, BULK);
		if (ret)
			ret = failed("DEALLOC", -ret);
	}
	if (!ret)
		report(cur_case, 0, BULK_ROUNDS, now_us() - t);
	return close_dev(fd) || ret ? -1 : 0;
}

/* An ALLOC of `n` writable grants, mapped: the mapping, or NULL after a FAILED line. */
static uint8_t *alloc_mapped(int fd, uint32_t n, uint64_t *idx)
{
	uint8_t *p;
	int ret = gnt_alloc(fd, n, GNTALLOC_FLAG_WRITABLE, idx, NULL);

	if (ret) {
		failed("ALLOC", -ret);
		return NULL;
	}
	p = gnt_map(fd, *idx, grant_span(n));
	if (p == MAP_FAILED) {
		failed("mmap", errno);
		return NULL;
	}
	return p;
}

/*
 * Mapping a large ALLOC, as a window buffer or a vchan ring: for N = 256 and
 * 4096, mmap_N times the mmap() of one ALLOC of N grants made beforehand
 * (MAP_ROUNDS times; the munmap after each is not timed; every byte of the
 * fresh grants is checked to be zero first), and share_N the whole share:
 * ALLOC, mmap, a write to every page, DEALLOC, munmap.
 */
static int case_map_bulk(void)
{
	static const uint32_t sizes[] = { 256, 4096 };
	static char name[2][32];
	int fd, ret = 0;

	if (open_dev(&fd))
		return -1;
	for (size_t k = 0; k < ARRAY_SIZE(sizes) && !ret; k++) {
		uint32_t n = sizes[k];
		size_t len = grant_span(n);
		double t, mapping = 0;
		uint64_t idx;
		uint8_t *p;

		snprintf(name[0], sizeof(name[0]), "mmap_%u", n);
		snprintf(name[1], sizeof(name[1]), "share_%u", n);
		cur_case = name[0];
		/* Fresh grants read zero: the bulk page allocation zeroes every page, untimed. */
		p = alloc_mapped(fd, n, &idx);
		if (!p) {
			ret = -1;
			break;
		}
		for (size_t off = 0; off < len && !ret; off++)
			if (p[off])
				ret = failed("a fresh grant's byte is not zero", EIO);
		if (munmap(p, len) && !ret)
			ret = failed("munmap", errno);
		for (int i = 0; i < MAP_ROUNDS && !ret; i++) {
			t = case_begin(cur_case);
			p = gnt_map(fd, idx, len);
			if (p == MAP_FAILED) {
				ret = failed("mmap", errno);
				break;
			}
			mapping += now_us() - t;
			xgr_profile_off();
			if (munmap(p, len))
				ret = failed("munmap", errno);
		}
		if (!ret) {
			report(cur_case, n, MAP_ROUNDS, mapping);
			ret = gnt_dealloc(fd, idx, n);
			if (ret)
				ret = failed("DEALLOC", -ret);
		}
		if (ret)
			break;
		cur_case = name[1];
		t = case_begin(cur_case);
		for (int i = 0; i < MAP_ROUNDS && !ret; i++) {
			p = alloc_mapped(fd, n, &idx);
			if (!p) {
				ret = -1;
				break;
			}
			for (size_t off = 0; off < len; off += 4096)
				p[off] = 1;
			ret = gnt_dealloc(fd, idx, n);
			if (ret)
				ret = failed("DEALLOC", -ret);
			if (munmap(p, len))
				ret = failed("munmap", errno);
		}
		if (!ret)
			report(cur_case, 0, MAP_ROUNDS, now_us() - t);
	}
	return close_dev(fd) || ret ? -1 : 0;
}

/* One ALLOC of `big` grants, then its DEALLOC: two cases. */
static int case_big(void)
{
	static char alloc_name[32], dealloc_name[32];
	uint64_t idx;
	double t;
	int fd, ret;

	snprintf(alloc_name, sizeof(alloc_name), "alloc_%ld", big);
	snprintf(dealloc_name, sizeof(dealloc_name), "dealloc_%ld", big);
	cur_case = alloc_name;
	if (open_dev(&fd))
		return -1;
	t = case_begin(cur_case);
	ret = gnt_alloc(fd, big, 0, &idx, NULL);
	if (ret) {
		failed("ALLOC", -ret);
	} else {
		report(cur_case, 0, 1, now_us() - t);
		cur_case = dealloc_name;
		t = case_begin(cur_case);
		ret = gnt_dealloc(fd, idx, big);
		if (ret)
			failed("DEALLOC", -ret);
		else
			report(cur_case, big, 1, now_us() - t);
	}
	return close_dev(fd) || ret ? -1 : 0;
}

/*
 * A field of /proc/meminfo in kB, or -1. The kernel's memory counters are kept
 * per CPU and folded into the totals /proc/meminfo shows only past a threshold
 * (some hundred pages per CPU): writing vm.stat_refresh folds them first, so
 * that the growth of 30k grants' slab (about 2 MB) is read to the page, not
 * give or take a megabyte.
 */
static long meminfo_kb(const char *key)
{
	int fd = open("/proc/sys/vm/stat_refresh", O_WRONLY);

	if (fd >= 0) {
		/* Fails with EINVAL if a counter went negative meanwhile; it folded them all the same. */
		if (write(fd, "1", 1) < 0 && errno != EINVAL)
			perror("vm.stat_refresh");
		close(fd);
	}
	return key_value("/proc/meminfo", key, 10);
}

/* Shrinks every slab cache: frees its empty slabs. */
static void shrink_slab_caches(void)
{
	DIR *dir = opendir("/sys/kernel/slab");
	struct dirent *e;

	while (dir && (e = readdir(dir))) {
		char path[300];
		int fd;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/slab/%s/shrink", e->d_name);
		fd = open(path, O_WRONLY);
		if (fd < 0)
			continue;
		if (write(fd, "1", 1) < 0)
			perror(path);
		close(fd);
	}
	if (dir)
		closedir(dir);
}

/*
 * Where a memory case starts: the objects that earlier cases freed through RCU
 * (VMAs, maple tree nodes) given a second to be freed, every slab cache shrunk,
 * so that neither their freeing during the case nor their empty slabs offset
 * the grants' growth, then SUnreclaim and MemFree in `*slab0` and `*free0`.
 */
static void memory_baseline(long *slab0, long *free0)
{
	shrink_slab_caches();
	sleep(1);
	shrink_slab_caches();
	*slab0 = meminfo_kb("SUnreclaim");
	*free0 = meminfo_kb("MemFree");
}

/*
 * Memory per grant of `held` grants made since /proc/meminfo read `slab0`
 * (SUnreclaim) and `free0` (MemFree), in kB: the slab's growth per grant in
 * `*slab_b`, the rest of MemFree's fall per grant in `*pages_b`, in bytes;
 * 0, or -1 after a FAILED line.
 */
static int memory_per_grant(long slab0, long free0, long held, double *slab_b, double *pages_b)
{
	long slab1 = meminfo_kb("SUnreclaim"), free1 = meminfo_kb("MemFree");

	if (slab0 < 0 || free0 < 0 || slab1 < 0 || free1 < 0)
		return failed("reading /proc/meminfo", errno ? errno : EINVAL);
	*slab_b = (slab1 - slab0) * 1024.0 / held;
	*pages_b = ((free0 - free1) - (slab1 - slab0)) * 1024.0 / held;
	return 0;
}

/* The bench-mem line of memory_per_grant(); 0, or -1 after a FAILED line. */
static int report_memory(long slab0, long free0, long held)
{
	double slab_b, pages_b;

	if (memory_per_grant(slab0, free0, held, &slab_b, &pages_b))
		return -1;
	printf("bench-mem: %s slab_bytes_per_grant %.0f pages_bytes_per_grant %.0f grants %ld\n",
	       mod, slab_b, pages_b, held);
	return 0;
}

/*
 * Memory per grant at HELD_30K grants in one file, then the time close()
 * of that file takes to release them all.
 */
static int case_memory_and_close(void)
{
	long slab0, free0, held = 0;
	double t;
	int fd;

	cur_case = "memory_per_grant";
	if (open_dev(&fd))
		return -1;
	memory_baseline(&slab0, &free0);
	if (hold(fd, &held, HELD_30K)) {
		close(fd);
		return -1;
	}
	if (report_memory(slab0, free0, held)) {
		close(fd);
		return -1;
	}

	cur_case = "close_file_30000";
	t = case_begin(cur_case);
	if (close_dev(fd))
		return -1;
	report(cur_case, held, 1, now_us() - t);
	return 0;
}

/*
 * Memory per grant at HELD_30K grants in one file, each its own ALLOC of one
 * grant (what a vchan ring or a small share makes): slab and the rest, as
 * bench-val lines of memory_per_grant_1 (the bench-mem line is the large
 * ALLOCs' case).
 */
static int case_memory_one_grant_allocs(void)
{
	long slab0, free0, held = 0;
	double slab_b, pages_b;
	int fd;

	cur_case = "memory_per_grant_1";
	if (open_dev(&fd))
		return -1;
	memory_baseline(&slab0, &free0);
	if (hold_in_chunks(fd, &held, HELD_30K, 1) ||
	    memory_per_grant(slab0, free0, held, &slab_b, &pages_b)) {
		close(fd);
		return -1;
	}
	printf("bench-val: %s %s %ld slab_bytes_per_grant %.0f bytes\n", mod, cur_case, held, slab_b);
	printf("bench-val: %s %s %ld pages_bytes_per_grant %.0f bytes\n", mod, cur_case, held, pages_b);
	return close_dev(fd) ? -1 : 0;
}

/*
 * ALLOC of one grant and its DEALLOC, `n` times: the driver alone, no mm work.
 * 0, or -1 after a FAILED line.
 */
static int alloc_dealloc_cycles(int fd, int n)
{
	uint64_t idx;
	int ret;

	for (int i = 0; i < n; i++) {
		ret = gnt_alloc(fd, 1, GNTALLOC_FLAG_WRITABLE, &idx, NULL);
		if (ret)
			return failed("ALLOC", -ret);
		ret = gnt_dealloc(fd, idx, 1);
		if (ret)
			return failed("DEALLOC", -ret);
	}
	return 0;
}

/*
 * The mm part of a share cycle with no driver at all: mmap of an anonymous
 * page, a write (the fault) and munmap, `n` times. The floor under any
 * driver's cycle; `fd` is unused.
 */
static int anon_cycles(int fd, int n)
{
	long ps = page_size();

	(void)fd;
	for (int i = 0; i < n; i++) {
		uint8_t *p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			return failed("mmap", errno);
		p[0] = 1;
		if (munmap(p, ps))
			return failed("munmap", errno);
	}
	return 0;
}

/*
 * Pure user-space work, `n` times USER_LOOP steps of xorshift: no system call,
 * no memory shared between the workers. Whether two workers run in parallel
 * at all on this machine (two emulated vCPUs): if two of them take twice one's
 * time per cycle, nothing a driver does can make two workers scale.
 */
static int user_cycles(int fd, int n)
{
	uint64_t x = 88172645463325252ull + fd;

	for (int i = 0; i < n; i++)
		for (int j = 0; j < USER_LOOP; j++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
		}
	/* Never 0 from a nonzero seed; the test keeps the loop from being optimised out. */
	return x ? 0 : failed("xorshift reached 0", EINVAL);
}

static int one_share_cycle(int fd, int n)
{
	return share_cycles(fd, n, 1);
}

/* What each of two workers runs: `n` cycles on `fd`; 0, or -1 after a FAILED line. */
typedef int (*cycles_fn)(int fd, int n);

/*
 * Two workers at once, each running THREAD_CYCLES cycles of `fn`, on two
 * vCPUs if the scheduler puts them there. They wait for `go` (1: run, -1:
 * give up) so that both start together.
 */
struct cycler {
	int *go;
	int fd, ret;
	cycles_fn fn;
};

static void *cycler_thread(void *arg)
{
	struct cycler *c = arg;
	int go;

	while (!(go = __atomic_load_n(c->go, __ATOMIC_ACQUIRE)))
		sched_yield();
	if (go > 0)
		c->ret = c->fn(c->fd, THREAD_CYCLES);
	return NULL;
}

/*
 * Two threads of this process, each with its own file or both on one (`shared`).
 * In one process both share its mm: mmap_lock, and a TLB shootdown of the other
 * vCPU at each munmap.
 */
static int two_threads(const char *name, int shared, cycles_fn fn)
{
	struct cycler c[2] = { { 0 } };
	pthread_t t[2];
	int ret = 0, started, err = 0, go = 0;
	double t0;

	cur_case = name;
	if (open_dev(&c[0].fd))
		return -1;
	c[1].fd = c[0].fd;
	if (!shared && open_dev(&c[1].fd)) {
		close(c[0].fd);
		return -1;
	}
	for (started = 0; started < 2; started++) {
		c[started].go = &go;
		c[started].fn = fn;
		err = pthread_create(&t[started], NULL, cycler_thread, &c[started]);
		if (err)
			break;
	}
	if (err)
		ret = failed("pthread_create", err);
	t0 = case_begin(cur_case);
	__atomic_store_n(&go, err ? -1 : 1, __ATOMIC_RELEASE);
	for (int i = 0; i < started; i++) {
		int jerr = pthread_join(t[i], NULL);

		if (jerr)
			ret = failed("pthread_join", jerr);
		else if (c[i].ret)
			ret = -1; /* the thread printed why */
	}
	if (!ret)
		report(name, 0, 2 * THREAD_CYCLES, now_us() - t0);
	if (!shared && close_dev(c[1].fd))
		ret = -1;
	if (close_dev(c[0].fd))
		ret = -1;
	return ret;
}

/*
 * Two processes, each with its own file and its own mm, share cycles at once:
 * what two users of the device (two vchan servers, say) cost each other
 * through the driver and the grant table alone. Each child opens its file,
 * says so on `ready`, waits for a byte on `go` and exits 0 if its cycles ran.
 */
static int two_processes(const char *name)
{
	int ready[2], go[2], ret = 0, forked = 0;
	pid_t pid[2];
	double t0 = 0;
	char b = 0;

	cur_case = name;
	if (pipe(ready))
		return failed("pipe", errno);
	if (pipe(go)) {
		ret = failed("pipe", errno);
		goto close_ready;
	}
	fflush(stdout);
	for (; forked < 2; forked++) {
		pid[forked] = fork();
		if (pid[forked] < 0) {
			ret = failed("fork", errno);
			break;
		}
		if (!pid[forked]) {
			int fd, cret = 1;

			close(ready[0]);
			close(go[1]);
			/* "r": ready; "f": no file (the parent must not wait for more). */
			if (open_dev(&fd)) {
				if (write(ready[1], "f", 1) != 1)
					cret = 2;
			} else {
				if (write(ready[1], "r", 1) == 1 && read(go[0], &b, 1) == 1 && b == 'g')
					cret = one_share_cycle(fd, THREAD_CYCLES) ? 1 : 0;
				close(fd);
			}
			fflush(stdout);
			_exit(cret);
		}
	}
	close(ready[1]);
	ready[1] = -1;
	close(go[0]);
	go[0] = -1;
	for (int i = 0; i < forked; i++)
		if ((read(ready[0], &b, 1) != 1 || b != 'r') && !ret)
			ret = failed("a child did not open its file", EIO);
	t0 = case_begin(cur_case);
	for (int i = 0; i < forked; i++)
		if (write(go[1], ret ? "x" : "g", 1) != 1 && !ret)
			ret = failed("write to the go pipe", errno);
	for (int i = 0; i < forked; i++) {
		int status;

		if (waitpid(pid[i], &status, 0) < 0)
			ret = failed("waitpid", errno);
		else if (!WIFEXITED(status) || WEXITSTATUS(status))
			ret = ret ? ret : failed("a child's cycles (see its line above)", EIO);
	}
	if (!ret)
		report(name, 0, 2 * THREAD_CYCLES, now_us() - t0);
	close(go[1]);
	if (go[0] >= 0)
		close(go[0]);
close_ready:
	close(ready[0]);
	if (ready[1] >= 0)
		close(ready[1]);
	return ret;
}

/* The same `fn`, THREAD_CYCLES times, in this thread alone: the reference for two workers. */
static int one_worker(const char *name, cycles_fn fn)
{
	double t;
	int fd, ret;

	cur_case = name;
	if (open_dev(&fd))
		return -1;
	t = case_begin(cur_case);
	ret = fn(fd, THREAD_CYCLES);
	if (!ret)
		report(name, 0, THREAD_CYCLES, now_us() - t);
	return close_dev(fd) || ret ? -1 : 0;
}

/*
 * mmap of one grant made beforehand, a write to it (the fault) and munmap, in
 * a loop in its own thread, each iteration's start and end recorded; until
 * `max` iterations, or until `stop` when max is 0.
 */
struct lat_loop {
	int fd;
	uint64_t idx;
	long max;
	int stop;		/* atomic */
	long n;			/* atomic: iterations recorded */
	long cap;
	double *start, *end;	/* us */
	int err;
	const char *what;
};

static void lat_failed(struct lat_loop *l, const char *what, int err)
{
	l->what = what;
	__atomic_store_n(&l->err, err, __ATOMIC_RELEASE);
}

static void *lat_thread(void *arg)
{
	struct lat_loop *l = arg;
	long ps = page_size();

	while (!__atomic_load_n(&l->stop, __ATOMIC_ACQUIRE) && (!l->max || l->n < l->max)) {
		double t0 = now_us(), t1;
		uint8_t *p = gnt_map(l->fd, l->idx, ps);

		if (p == MAP_FAILED) {
			lat_failed(l, "mmap", errno);
			break;
		}
		p[0]++;	/* the fault, where the driver maps on demand */
		if (munmap(p, ps)) {
			lat_failed(l, "munmap", errno);
			break;
		}
		t1 = now_us();
		if (l->n == l->cap) {
			long cap = l->cap ? 2 * l->cap : 4096;
			double *s = realloc(l->start, cap * sizeof(*s));

			if (s)
				l->start = s;
			s = s ? realloc(l->end, cap * sizeof(*s)) : NULL;
			if (!s) {
				lat_failed(l, "recording samples", ENOMEM);
				break;
			}
			l->end = s;
			l->cap = cap;
		}
		l->start[l->n] = t0;
		l->end[l->n] = t1;
		__atomic_store_n(&l->n, l->n + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * Latency of mmap + fault + munmap: alone (mmap_fault_idle), and while the
 * main thread makes one ALLOC of `big` grants in the same file
 * (mmap_fault_during_alloc_60000; only iterations that overlapped the ALLOC
 * count). A driver that holds a file-wide lock through a large ALLOC shows
 * there as a latency as long as the ALLOC.
 */
static int latency(const char *name, int during_alloc)
{
	struct lat_loop l = { .max = during_alloc ? 0 : LAT_IDLE };
	double a0 = 0, a1 = 0, *lat = NULL;
	uint64_t big_idx;
	pthread_t t;
	long n = 0;
	int ret, err;

	cur_case = name;
	if (open_dev(&l.fd))
		return -1;
	ret = gnt_alloc(l.fd, 1, GNTALLOC_FLAG_WRITABLE, &l.idx, NULL);
	if (ret) {
		close(l.fd);
		return failed("ALLOC", -ret);
	}
	err = pthread_create(&t, NULL, lat_thread, &l);
	if (err) {
		close(l.fd);
		return failed("pthread_create", err);
	}
	if (during_alloc) {
		/* The loop is going (and its first mmap done) before the ALLOC starts. */
		while (__atomic_load_n(&l.n, __ATOMIC_ACQUIRE) < 10 &&
		       !__atomic_load_n(&l.err, __ATOMIC_ACQUIRE))
			usleep(1000);
		a0 = now_us();
		ret = gnt_alloc(l.fd, big, 0, &big_idx, NULL);
		a1 = now_us();
		__atomic_store_n(&l.stop, 1, __ATOMIC_RELEASE);
	}
	err = pthread_join(t, NULL);
	if (err) {
		/* The thread may still use the file and the buffers: leave them. */
		return failed("pthread_join", err);
	}
	if (ret) {
		ret = failed("the large ALLOC (the other thread)", -ret);
		goto out;
	}
	if (l.err) {
		ret = failed(l.what, l.err);
		goto out;
	}
	lat = malloc((l.n ? l.n : 1) * sizeof(*lat));
	if (!lat) {
		ret = failed("malloc", ENOMEM);
		goto out;
	}
	for (long i = 0; i < l.n; i++)
		if (!during_alloc || (l.end[i] > a0 && l.start[i] < a1))
			lat[n++] = l.end[i] - l.start[i];
	if (!n) {
		ret = failed("no iteration overlapped the ALLOC", EAGAIN);
		goto out;
	}
	qsort(lat, n, sizeof(*lat), cmp_double);
	printf("bench-lat: %s %s median_us %.1f max_us %.1f samples %ld\n", mod, name,
	       n % 2 ? lat[n / 2] : (lat[n / 2 - 1] + lat[n / 2]) / 2, lat[n - 1], n);
out:
	free(lat);
	free(l.start);
	free(l.end);
	/* The big allocation goes with the file. */
	if (close_dev(l.fd))
		ret = -1;
	return ret;
}

/*
 * Busy time of all CPUs since boot, in clock ticks: /proc/stat's "cpu" line
 * less its idle and iowait columns. -1 if it cannot be read.
 */
static long long busy_ticks(void)
{
	unsigned long long user, nice, sys, idle, iowait, irq, softirq, steal;
	FILE *f = fopen("/proc/stat", "r");
	int n;

	if (!f)
		return -1;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle,
		   &iowait, &irq, &softirq, &steal);
	fclose(f);
	return n == 8 ? (long long)(user + nice + sys + irq + softirq + steal) : -1;
}

/*
 * The CPU time the system spends while this program sleeps CPU_WINDOW_MS, in
 * percent of one CPU (the other programs of dom0 are idle: what is left is the
 * kernel's own work, a driver's worker among it). Printed as a bench-val line
 * of `name` at `outstanding`; 0, or -1 after a FAILED line.
 */
static int idle_cpu(const char *name, long outstanding)
{
	long long b0, b1;
	double t0, t1;

	cur_case = name;
	b0 = busy_ticks();
	t0 = now_us();
	while ((t1 = now_us()) < t0 + CPU_WINDOW_MS * 1e3)
		usleep(100000);
	b1 = busy_ticks();
	if (b0 < 0 || b1 < 0)
		return failed("reading /proc/stat", EIO);
	printf("bench-val: %s %s %ld busy_of_one_cpu %.3f pct\n", mod, name, outstanding,
	       (b1 - b0) * 100.0 / sysconf(_SC_CLK_TCK) / ((t1 - t0) / 1e6));
	return 0;
}

/*
 * Lets the grant-table core end every grant it was handed (the C module hands
 * it the grants it releases while a remote maps them), instead of the 10 per
 * second it takes by default: its free_per_iteration at 0 (no limit) for 3 s,
 * then its value back. Does nothing where the parameter is missing.
 */
static void drain_core_deferred(void)
{
	static const char *path = "/sys/module/grant_table/parameters/free_per_iteration";
	long old = read_long(path);

	if (old < 0 || write_long(path, 0))
		return;
	sleep(3);
	if (write_long(path, old))
		failed("restoring the grant-table core's free_per_iteration", errno ? errno : EIO);
}

/*
 * A deferred backlog as Qubes OS sees it, its GUI front end unmapping after
 * the agent has released: BACKLOG grants, each ALLOCed here and mapped by a
 * remote (gntdev in this domain, one mapping per GNTDEV_MAP_MAX grants), then
 * DEALLOCed while still mapped (dealloc_mapped_300000: those DEALLOCs, one op).
 * Ours keeps them in its deferred list and retries them, counted against
 * `limit`; C hands them to the grant-table core, which retries 10 a second.
 * Measured before the backlog (at 0) and with it (at BACKLOG): the CPU the
 * system spends while nothing runs (deferred_retry_cpu, a bench-val line: the
 * retry's cost), and share cycles in another file (share_cycle_deferred).
 * Then the remote unmaps, and the backlog drains before the next round: for
 * ours, how long that took is a bench-info line; the core is told to end its
 * whole list at once (drain_core_deferred()).
 */
static int case_backlog(void)
{
	enum { MAPS = (BACKLOG + GNTDEV_MAP_MAX - 1) / GNTDEV_MAP_MAX };
	struct remote_map maps[MAPS];
	uint64_t index[MAPS];
	uint32_t chunk[MAPS];
	size_t nmaps = 0;
	uint32_t *ids = malloc(sizeof(*ids) * GNTDEV_MAP_MAX);
	int fd = -1, backlog_fd = -1, ret;
	long held = 0;
	double t;

	cur_case = "share_cycle_deferred";
	if (!ids)
		return failed("malloc", ENOMEM);
	if (open_two(&fd, &backlog_fd)) {
		ret = -1;
		goto out;
	}
	ret = idle_cpu("deferred_retry_cpu", 0);
	if (!ret)
		ret = timed_cycles("share_cycle_deferred", fd, 0, BACKLOG_CYCLES, 1);
	cur_case = "dealloc_mapped_300000";
	/* Each ALLOC at once mapped by the remote. */
	for (held = 0; !ret && held < BACKLOG; held += chunk[nmaps++]) {
		chunk[nmaps] = BACKLOG - held < GNTDEV_MAP_MAX ? BACKLOG - held : GNTDEV_MAP_MAX;
		ret = gnt_alloc(backlog_fd, chunk[nmaps], 0, &index[nmaps], ids);
		if (ret) {
			ret = failed("ALLOC", -ret);
			break;
		}
		ret = remote_map(&maps[nmaps], ids, chunk[nmaps], 0);
		if (ret) {
			/* Released unmapped when the file closes. */
			ret = failed("gntdev mapping of the grants", -ret);
			break;
		}
	}
	if (!ret) {
		t = case_begin(cur_case);
		for (size_t i = 0; !ret && i < nmaps; i++) {
			ret = gnt_dealloc(backlog_fd, index[i], chunk[i]);
			if (ret)
				ret = failed("DEALLOC", -ret);
		}
		if (!ret)
			report(cur_case, held, 1, now_us() - t);
	}
	if (!ret)
		ret = idle_cpu("deferred_retry_cpu", held);
	if (!ret)
		ret = timed_cycles("share_cycle_deferred", fd, held, BACKLOG_CYCLES, 1);
	cur_case = "share_cycle_deferred";
	if (!ret && is_rust())
		printf("bench-info: %s backlog: deferred %ld in_use %ld handed_to_core %ld\n", mod,
		       rust_stat("deferred"), rust_stat("in_use"), rust_stat("handed_to_core"));
	while (nmaps)
		remote_unmap(&maps[--nmaps]);
	if (is_rust()) {
		double t0 = now_s();
		long left;

		while ((left = rust_stat("deferred")) > 0 && now_s() < t0 + 120)
			usleep(100000);
		if (left)
			ret = failed("the deferred backlog did not drain in 120 s", left < 0 ? EIO : EBUSY);
		else
			printf("bench-info: %s backlog of %ld drained %.1f s after the remote unmapped\n",
			       mod, held, now_s() - t0);
	}
	drain_core_deferred();
out:
	if (backlog_fd >= 0 && close_dev(backlog_fd))
		ret = -1;
	if (fd >= 0 && close_dev(fd))
		ret = -1;
	free(ids);
	return ret;
}

/* Grants held while share_cycle_held_million's cycles run. */
static const long million_levels[] = { 0, 250000, 500000, MILLION };

/*
 * A million grants held in one file, as Qubes OS allows (its limit 2^30, Xen's
 * grant table at 2048 frames): share cycles in another file at 0, 250k, 500k
 * and 1M held (share_cycle_held_million), the memory they cost (the bench-mem
 * line at 1000000 grants), and the close() that releases them all
 * (close_file_1000000). Held grants come in ALLOCs of GNTDEV_MAP_MAX.
 */
static int case_million(void)
{
	long slab0, free0, held = 0;
	int fd, held_fd, ret = 0;
	double t;

	cur_case = "share_cycle_held_million";
	if (open_two(&fd, &held_fd))
		return -1;
	memory_baseline(&slab0, &free0);
	for (size_t i = 0; i < ARRAY_SIZE(million_levels) && !ret; i++) {
		cur_case = "share_cycle_held_million";
		ret = hold_in_chunks(held_fd, &held, million_levels[i], GNTDEV_MAP_MAX);
		/* Memory at the last level, before its cycles (which allocate). */
		if (!ret && i == ARRAY_SIZE(million_levels) - 1) {
			cur_case = "memory_per_grant";
			ret = report_memory(slab0, free0, held);
			cur_case = "share_cycle_held_million";
		}
		if (!ret)
			ret = timed_cycles(cur_case, fd, held, MILLION_CYCLES, 1);
	}
	cur_case = "close_file_1000000";
	t = case_begin(cur_case);
	if (close_dev(held_fd))
		ret = -1;
	else if (!ret)
		report(cur_case, held, 1, now_us() - t);
	return close_dev(fd) || ret ? -1 : 0;
}

/*
 * XGR_BENCH_GROUPS (run-qemu --bench-groups): the groups of cases to run, comma-separated
 * (share, ops, bulk, map, held, big, memory, workers, latency; and the Qubes OS scale ones,
 * backlog and million, which need more memory and a larger grant table than run-qemu gives
 * the others); when unset, all but backlog and million.
 */
static bool want(const char *group)
{
	const char *list = getenv("XGR_BENCH_GROUPS");
	size_t n = strlen(group);

	if (!list || !*list)
		return strcmp(group, "backlog") && strcmp(group, "million");
	for (const char *p = list; (p = strstr(p, group)); p += n)
		if ((p == list || p[-1] == ',') && (p[n] == ',' || !p[n]))
			return true;
	return false;
}

/* A big-endian 32-bit device-tree property, or `dflt` if it cannot be read. */
static unsigned int dt_u32(const char *path, unsigned int dflt)
{
	unsigned char b[4];
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f)
		return dflt;
	n = fread(b, 1, sizeof(b), f);
	fclose(f);
	if (n != sizeof(b))
		return dflt;
	return (unsigned int)b[0] << 24 | (unsigned int)b[1] << 16 | (unsigned int)b[2] << 8 | b[3];
}

/*
 * Grants this domain's table can hold, from the device tree's Xen node on arm
 * (its first region is the grant table: 8-byte v1 entries), or 0 where there
 * is none (x86: the table grows to gnttab_max_frames on demand).
 */
static long table_grants(void)
{
	unsigned int acells = dt_u32("/proc/device-tree/#address-cells", 2);
	unsigned int scells = dt_u32("/proc/device-tree/#size-cells", 2);
	unsigned long long size = 0;
	unsigned char reg[32];
	FILE *f;
	size_t n;

	f = fopen("/proc/device-tree/hypervisor/reg", "rb");
	if (!f)
		return 0;
	n = fread(reg, 1, sizeof(reg), f);
	fclose(f);
	if (acells > 2 || scells < 1 || scells > 2 || n < 4 * (acells + scells))
		return 0;
	for (unsigned int i = 0; i < 4 * scells; i++)
		size = size << 8 | reg[4 * acells + i];
	return size / 8;
}

int main(void)
{
	long table;
	double t0 = now_us();
	long old_limit;
	int ret = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	mod = module_under_test();
	table = table_grants();
	if (table) {
		max_held = table - TABLE_SPARE;
		while (big > 10000 && big > max_held)
			big -= 10000;
		printf("bench-info: %s grant table of %ld grants (device tree): held levels of at most %ld, one ALLOC of %ld\n",
		       mod, table, max_held, big);
	}
	profile_case = getenv("XGR_PROFILE_CASE");
	cur_case = "setup";
	old_limit = get_limit();
	/* The default limit (1024) is far below what is held here. */
	if (old_limit < 0 || set_limit(LIMIT)) {
		failed("raising the module's limit parameter", errno ? errno : EINVAL);
		printf("bench-done: %s failed %d seconds %.1f\n", mod, failures,
		       (now_us() - t0) / 1e6);
		return 1;
	}

	if (want("share"))
		ret |= case_share_cycles();
	if (want("ops")) {
		ret |= case_ops();
		/* Ours only: every grant of the op cases ended at once, none deferred. */
		if (is_rust())
			printf("bench-info: %s after the op cases: in_use %ld deferred %ld handed_to_core %ld\n",
			       mod, rust_stat("in_use"), rust_stat("deferred"),
			       rust_stat("handed_to_core"));
	}
	if (want("bulk"))
		ret |= case_bulk();
	if (want("map"))
		ret |= case_map_bulk();
	if (want("held"))
		ret |= case_outstanding();
	if (want("big"))
		ret |= case_big();
	if (want("memory")) {
		/* One-grant ALLOCs first: none of the large case's slot arrays freed before them. */
		ret |= case_memory_one_grant_allocs();
		ret |= case_memory_and_close();
	}
	if (want("workers")) {
		ret |= two_threads("two_threads_own_files", 0, one_share_cycle);
		ret |= two_threads("two_threads_shared_file", 1, one_share_cycle);
		ret |= two_processes("two_processes_own_files");
		ret |= one_worker("alloc_dealloc_1_one_thread", alloc_dealloc_cycles);
		ret |= two_threads("alloc_dealloc_1_two_threads_own_files", 0, alloc_dealloc_cycles);
		ret |= one_worker("no_driver_anon_cycle_one_thread", anon_cycles);
		ret |= two_threads("no_driver_anon_cycle_two_threads", 0, anon_cycles);
		ret |= one_worker("no_driver_user_loop_one_thread", user_cycles);
		ret |= two_threads("no_driver_user_loop_two_threads", 0, user_cycles);
	}
	if (want("latency")) {
		ret |= latency("mmap_fault_idle", 0);
		static char name[48];

		snprintf(name, sizeof(name), "mmap_fault_during_alloc_%ld", big);
		ret |= latency(name, 1);
	}
	if (want("backlog") || want("million")) {
		cur_case = "setup";
		if (set_limit(QUBES_LIMIT)) {
			ret = failed("writing 2^30 to the limit parameter", errno ? errno : EINVAL);
		} else {
			if (want("backlog"))
				ret |= case_backlog();
			if (want("million"))
				ret |= case_million();
		}
	}

	cur_case = "teardown";
	if (set_limit(old_limit))
		ret = failed("restoring the limit", errno ? errno : EINVAL);
	printf("bench-done: %s failed %d seconds %.1f\n", mod, failures, (now_us() - t0) / 1e6);
	return ret || failures ? 1 : 0;
}
