// SPDX-License-Identifier: GPL-2.0
/*
 * Demo: share a page through /dev/xen/gntalloc and map it back through
 * /dev/xen/gntdev, as another domain would, then write back the other way.
 */
#include "gntalloc_util.h"

int main(int argc, char **argv)
{
	struct remote_map r = { 0 };
	uint32_t ref;
	uint64_t idx;
	char *local;
	int ok;
	int fd = open(GNTALLOC_DEV, O_RDWR);

	printf("demo: /dev/xen/gntalloc is provided by the %s module\n", module_under_test());
	if (fd < 0 || gnt_alloc(fd, 1, GNTALLOC_FLAG_WRITABLE, &idx, &ref)) {
		perror("demo: ALLOC");
		return 1;
	}
	local = gnt_map(fd, idx, XPAGE);
	if (local == MAP_FAILED) {
		perror("demo: mmap");
		return 1;
	}
	snprintf(local, 128, "hello from the %s gntalloc driver", module_under_test());
	printf("demo: shared one page as grant ref %u (index %#llx), wrote: \"%s\"\n", ref,
	       (unsigned long long)idx, local);
	if (remote_map(&r, &ref, 1, 1)) {
		perror("demo: gntdev map");
		return 1;
	}
	printf("demo: gntdev mapped ref %u and reads: \"%s\"\n", ref, (const char *)r.addr);
	strcpy((char *)r.addr + 256, "and hello back through gntdev");
	printf("demo: the sharer reads what the mapper wrote: \"%s\"\n", local + 256);
	ok = strcmp((const char *)r.addr, local) == 0 &&
	     strcmp(local + 256, "and hello back through gntdev") == 0;
	gnt_dealloc(fd, idx, 1);
	munmap(local, XPAGE);
	remote_unmap(&r);
	close(fd);
	printf("demo: %s\n", ok ? "the page was shared and mapped back both ways" : "FAILED");
	return ok ? 0 : 1;
}
