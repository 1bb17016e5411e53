// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark, not a test: times the operations user space does most on
 * /dev/xen/gntalloc, on whichever module provides it (run-qemu --bench runs
 * it once per module, in the same VM, so the numbers compare). Under QEMU TCG
 * absolute times mean little; ratios between the modules do.
 *
 * Prints one line per case: "bench: MODULE CASE OPS ops in MS ms".
 */
#define _GNU_SOURCE
#include <time.h>

#include "gntalloc_util.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void report(const char *name, long ops, double ms)
{
	printf("bench: %s %s %ld ops in %.1f ms\n", module_under_test(), name, ops, ms);
}

static int fail(const char *what)
{
	printf("bench: %s FAILED: %s\n", what, strerror(errno));
	return 1;
}

/* `n` times what libxengnttab's share_page_notify and unshare do; 0 or -1. */
static int share_cycles(int fd, int n)
{
	long ps = page_size();
	uint64_t idx;

	for (int i = 0; i < n; i++) {
		uint8_t *p;

		if (gnt_alloc(fd, 1, GNTALLOC_FLAG_WRITABLE, &idx, NULL))
			return -1;
		p = gnt_map(fd, idx, ps);
		if (p == MAP_FAILED)
			return -1;
		if (gnt_notify(fd, idx + 21, UNMAP_NOTIFY_CLEAR_BYTE, 0) || gnt_dealloc(fd, idx, 1))
			return -1;
		p[0] = 1;
		munmap(p, ps);
	}
	return 0;
}

int main(void)
{
	enum { CYCLES = 2000, BULK = 256, BULK_ROUNDS = 40, MANY = 1000 };
	long ps = page_size();
	uint64_t idx, many[MANY];
	double t;
	int fd;

	set_limit(4096);
	fd = open(GNTALLOC_DEV, O_RDWR);
	if (fd < 0)
		return fail("open");

	/* libxengnttab's share_page_notify + unshare. */
	t = now_ms();
	if (share_cycles(fd, CYCLES))
		return fail("share cycle");
	report("share_unshare_cycle", CYCLES, now_ms() - t);
	if (is_rust())
		printf("bench: rust (after the cycle: in_use %ld, deferred %ld, handed to core %ld)\n",
		       rust_stat("in_use"), rust_stat("deferred"), rust_stat("handed_to_core"));

	/* The same cycle, one operation at a time. */
	{
		static uint64_t singles[CYCLES];

		t = now_ms();
		for (int i = 0; i < CYCLES; i++) {
			if (gnt_alloc(fd, 1, GNTALLOC_FLAG_WRITABLE, &singles[i], NULL))
				return fail("op: ALLOC");
		}
		report("op_alloc_1", CYCLES, now_ms() - t);
		t = now_ms();
		for (int i = 0; i < CYCLES; i++) {
			uint8_t *p = gnt_map(fd, singles[i], ps);

			if (p == MAP_FAILED)
				return fail("op: mmap");
			munmap(p, ps);
		}
		report("op_mmap_munmap_1", CYCLES, now_ms() - t);
		t = now_ms();
		for (int i = 0; i < CYCLES; i++) {
			if (gnt_notify(fd, singles[i] + 21, UNMAP_NOTIFY_CLEAR_BYTE, 0))
				return fail("op: NOTIFY");
		}
		report("op_notify", CYCLES, now_ms() - t);
		t = now_ms();
		for (int i = 0; i < CYCLES; i++) {
			if (gnt_dealloc(fd, singles[i], 1))
				return fail("op: DEALLOC");
		}
		report("op_dealloc_1", CYCLES, now_ms() - t);
		for (int i = 0; i < CYCLES; i++) {
			if (gnt_alloc(fd, 1, GNTALLOC_FLAG_WRITABLE, &singles[i], NULL))
				return fail("op: ALLOC");
		}
		t = now_ms();
		for (int i = 0; i < CYCLES; i++) {
			uint8_t *p = gnt_map(fd, singles[i], ps);

			if (p == MAP_FAILED || gnt_dealloc(fd, singles[i], 1))
				return fail("op: mmap+DEALLOC");
			munmap(p, ps);
		}
		report("op_mmap_dealloc_munmap_1", CYCLES, now_ms() - t);
	}

	/* Bulk: a vchan-sized ring allocated and freed at once. */
	t = now_ms();
	for (int i = 0; i < BULK_ROUNDS; i++) {
		if (gnt_alloc(fd, BULK, 0, &idx, NULL) || gnt_dealloc(fd, idx, BULK))
			return fail("bulk");
	}
	report("alloc_dealloc_256", BULK_ROUNDS, now_ms() - t);

	/* Many allocations in one file: lookups by index as the file fills up. */
	t = now_ms();
	for (int i = 0; i < MANY; i++) {
		if (gnt_alloc(fd, 1, 0, &many[i], NULL))
			return fail("many: ALLOC");
	}
	for (int i = 0; i < MANY; i++) {
		uint8_t *p = gnt_map(fd, many[MANY - 1 - i], ps);

		if (p == MAP_FAILED)
			return fail("many: mmap");
		munmap(p, ps);
	}
	for (int i = MANY - 1; i >= 0; i--) {
		if (gnt_dealloc(fd, many[i], 1))
			return fail("many: DEALLOC");
	}
	report("1000_singles_map_and_free_newest_first", MANY, now_ms() - t);

	/* The share cycle again, while another file holds 3000 grants (a busy system). */
	{
		int busy = open(GNTALLOC_DEV, O_RDWR);

		if (busy < 0 || gnt_alloc(busy, 3000, 0, &idx, NULL))
			return fail("busy: ALLOC 3000");
		t = now_ms();
		if (share_cycles(fd, CYCLES))
			return fail("busy: share cycle");
		report("share_unshare_cycle_3000_held_elsewhere", CYCLES, now_ms() - t);
		close(busy);
	}

	close(fd);
	set_limit(1024);
	return 0;
}
