// SPDX-License-Identifier: GPL-2.0
/*
 * Runner helper, not a test: allocates (and touches) nearly all free memory,
 * then exits. With page poisoning on (page_poison=1), the page allocator
 * checks every page it hands out for the poison it wrote when the page was
 * freed, and reports a freed page that somebody wrote ("pagealloc: memory
 * corruption", which the host's verdict counts as a splat). Without the sweep
 * such a write is only found if the page happens to be allocated again before
 * the run ends; with it, after each module's tests, every free page is.
 *
 * Stops MARGIN_MB plus twice vm.min_free_kbytes plus a sixteenth of what was
 * free above zero free memory, so that the OOM killer stays out of it: free
 * pages parked in the per-CPU lists are not in MemFree, and with 64K pages
 * they are sixteen times larger (an arm64 64K dom0 was OOM-killed with 62 MB
 * in MemFree and 115 MB in per-CPU lists). Prints "poison_sweep: MB swept of
 * MB free".
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define CHUNK_MB 8
#define MARGIN_MB 48
#define MAX_CHUNKS 4096

/* vm.min_free_kbytes in MiB, or 0. */
static long min_free_mb(void)
{
	FILE *f = fopen("/proc/sys/vm/min_free_kbytes", "r");
	long kb = 0;

	if (f) {
		if (fscanf(f, "%ld", &kb) != 1)
			kb = 0;
		fclose(f);
	}
	return kb / 1024;
}

/* MemFree from /proc/meminfo, in MiB, or -1. */
static long mem_free_mb(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemFree: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb / 1024;
}

int main(void)
{
	static void *chunks[MAX_CHUNKS];
	long before = mem_free_mb(), swept = 0;
	long margin = MARGIN_MB + 2 * min_free_mb() + before / 16;
	int n = 0;

	if (before < 0) {
		printf("poison_sweep: cannot read MemFree\n");
		return 1;
	}
	while (n < MAX_CHUNKS && mem_free_mb() > margin + CHUNK_MB) {
		void *p = mmap(NULL, CHUNK_MB << 20, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

		if (p == MAP_FAILED)
			break;
		chunks[n++] = p;
		swept += CHUNK_MB;
	}
	while (n > 0)
		munmap(chunks[--n], CHUNK_MB << 20);
	printf("poison_sweep: %ld MB swept of %ld MB free\n", swept, before);
	return 0;
}
