// SPDX-License-Identifier: GPL-2.0
/*
 * A plain client of /dev/xen/gntalloc, built against the system's copy of the
 * upstream UAPI header (linux-libc-dev), not ours, and using nothing of this
 * repository. It drives the device through a fixed sequence of valid calls
 * (and the errors that user space meets in normal use) and prints one line
 * per observable result. The runner runs it once per module and requires the
 * two transcripts to be identical: for valid input, the Rust module must be
 * indistinguishable from the C driver.
 *
 * Grant reference numbers depend on the grant table's history, so only their
 * properties are printed (valid, distinct); everything else is printed as is.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xen/gntalloc.h>

static long ps;

static const char *err(int ret)
{
	static char buf[32];

	if (ret == 0)
		return "ok";
	snprintf(buf, sizeof(buf), "%s", strerrorname_np(errno) ?: "?");
	return buf;
}

/* ALLOC; prints the result, the index and whether the ids are valid and distinct. */
static uint64_t alloc(int fd, const char *tag, uint32_t count, uint16_t flags)
{
	struct ioctl_gntalloc_alloc_gref *op = calloc(1, sizeof(*op) + 4 * count);
	int ret, ids_ok = 1;
	uint64_t index;

	op->domid = 0;
	op->flags = flags;
	op->count = count;
	op->index = 0xdeadbeef;
	ret = ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, op);
	for (uint32_t i = 0; i < count && !ret; i++) {
		ids_ok &= op->gref_ids_flex[i] >= 8;
		for (uint32_t j = 0; j < i; j++)
			ids_ok &= op->gref_ids_flex[i] != op->gref_ids_flex[j];
	}
	printf("%s: ALLOC(count=%u, flags=%#x) = %s", tag, count, flags, err(ret));
	if (!ret)
		printf(" index=%#llx ids=%s", (unsigned long long)op->index,
		       ids_ok ? "valid" : "INVALID");
	printf("\n");
	index = ret ? ~0ULL : op->index;
	free(op);
	return index;
}

static void dealloc(int fd, const char *tag, uint64_t index, uint32_t count)
{
	struct ioctl_gntalloc_dealloc_gref op = { .index = index, .count = count };

	printf("%s: DEALLOC(%#llx, %u) = %s\n", tag, (unsigned long long)index, count,
	       err(ioctl(fd, IOCTL_GNTALLOC_DEALLOC_GREF, &op)));
}

static void notify(int fd, const char *tag, uint64_t index, uint32_t action)
{
	struct ioctl_gntalloc_unmap_notify op = { .index = index, .action = action };

	printf("%s: NOTIFY(%#llx, action=%u) = %s\n", tag, (unsigned long long)index, action,
	       err(ioctl(fd, IOCTL_GNTALLOC_SET_UNMAP_NOTIFY, &op)));
}

static uint8_t *map(int fd, const char *tag, uint64_t index, long pages, int flags)
{
	uint8_t *p = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE, flags, fd, index);

	printf("%s: mmap(%#llx, %ld pages, %s) = %s\n", tag, (unsigned long long)index, pages,
	       flags & MAP_SHARED ? "shared" : "private", err(p == MAP_FAILED ? -1 : 0));
	return p == MAP_FAILED ? NULL : p;
}

int main(void)
{
	int fd = open("/dev/xen/gntalloc", O_RDWR), fd2, status;
	uint64_t a, b, c;
	uint8_t *p, *q;
	pid_t pid;

	ps = sysconf(_SC_PAGESIZE);
	if (fd < 0) {
		perror("open /dev/xen/gntalloc");
		return 1;
	}
	/* Allocation and the index space. */
	alloc(fd, "alloc", 0, 0);
	a = alloc(fd, "alloc", 1, GNTALLOC_FLAG_WRITABLE);
	b = alloc(fd, "alloc", 3, 0);
	c = alloc(fd, "alloc", 2, GNTALLOC_FLAG_WRITABLE);
	alloc(fd, "alloc", 0, 0);

	/* Mappings: whole, prefix, middle, span, and what is refused. */
	p = map(fd, "map", a, 6, MAP_SHARED);
	q = map(fd, "map", b + ps, 1, MAP_SHARED);
	map(fd, "map", b, 2, MAP_PRIVATE);
	map(fd, "map", c + ps, 2, MAP_SHARED);
	map(fd, "map", c + 2 * ps, 1, MAP_SHARED);
	if (p && q) {
		for (int i = 0; i < 6; i++)
			printf("data: page %d byte 0 = %u (fresh)\n", i, p[i * ps]);
		p[2 * ps + 10] = 0xab;
		printf("data: the other mapping reads %#x\n", q[10]);
	}

	/* Notifications: set, cleared, and their errors. */
	notify(fd, "notify", b + 10, UNMAP_NOTIFY_CLEAR_BYTE);
	notify(fd, "notify", b + ps + 4095, UNMAP_NOTIFY_CLEAR_BYTE);
	notify(fd, "notify", c, 0);
	notify(fd, "notify", c + 64 * ps, UNMAP_NOTIFY_CLEAR_BYTE);
	notify(fd, "notify", b, 4);

	/* DEALLOC: sub-ranges, spans, and what is refused. */
	dealloc(fd, "dealloc", b, 0);
	dealloc(fd, "dealloc", b + 2 * ps, 3);
	dealloc(fd, "dealloc", c + 7, 1);
	dealloc(fd, "dealloc", b + ps, 1);
	dealloc(fd, "dealloc", b + ps, 1);
	notify(fd, "notify", b + ps, UNMAP_NOTIFY_CLEAR_BYTE);
	map(fd, "map", b + ps, 1, MAP_SHARED);
	if (p && q) {
		/* Still mapped twice: nothing is released, the data stays. */
		printf("data: byte 10 of page 2 after DEALLOC = %#x\n", p[2 * ps + 10]);
		munmap(q, ps);
		printf("data: byte 10 of page 2 after one munmap = %#x\n", p[2 * ps + 10]);
	}

	/* fork: the child sees and writes the same pages. */
	pid = fork();
	if (pid == 0) {
		if (p)
			p[5 * ps + 1] = 0x5c;
		_exit(p && p[2 * ps + 10] == 0xab ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	printf("fork: child exit %d, parent reads %#x\n", WEXITSTATUS(status), p ? p[5 * ps + 1] : 0);
	if (p)
		munmap(p, 6 * ps);

	/* Another file has its own index space; closing releases everything. */
	fd2 = open("/dev/xen/gntalloc", O_RDWR);
	alloc(fd2, "file2", 2, 0);
	dealloc(fd2, "file2", a, 1);
	close(fd2);
	dealloc(fd, "dealloc", a, 1);
	dealloc(fd, "dealloc", b, 1);
	dealloc(fd, "dealloc", b + 2 * ps, 3);
	alloc(fd, "alloc", 1, 0);
	close(fd);
	printf("done\n");
	return 0;
}
