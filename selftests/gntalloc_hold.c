// SPDX-License-Identifier: GPL-2.0
/*
 * Runner helper, not a test: shares one page through /dev/xen/gntalloc, maps
 * it back through gntdev (the "remote"), then closes the gntalloc side, so
 * that only the remote keeps the grant. Prints "held REF" and waits for EOF
 * on stdin; meanwhile the runner unloads the module, which must hand the
 * grant to the grant-table core. Then it checks that its mapping still holds
 * the data, unmaps, prints "released" and exits 0.
 */
#include "gntalloc_util.h"

int main(void)
{
	struct remote_map r = { 0 };
	uint32_t ref;
	uint64_t idx;
	char c;
	int fd = open(GNTALLOC_DEV, O_RDWR), ok;

	if (fd < 0 || gnt_alloc(fd, 1, GNTALLOC_FLAG_WRITABLE, &idx, &ref) ||
	    remote_map(&r, &ref, 1, 1)) {
		perror("hold: share and map back");
		return 1;
	}
	strcpy((char *)r.addr, "held by the remote");
	if (gnt_dealloc(fd, idx, 1)) {
		perror("hold: DEALLOC");
		return 1;
	}
	close(fd);
	printf("held %u\n", ref);
	fflush(stdout);
	while (read(0, &c, 1) > 0)
		;
	ok = strcmp((const char *)r.addr, "held by the remote") == 0;
	remote_unmap(&r);
	printf("%s\n", ok ? "released" : "data lost while held");
	return ok ? 0 : 1;
}
