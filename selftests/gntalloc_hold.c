// SPDX-License-Identifier: GPL-2.0
/*
 * Runner helper, not a test: shares N grants (the argument, 1 by default)
 * through /dev/xen/gntalloc, maps them back through gntdev (the "remote"),
 * then closes the gntalloc side, so that only the remote keeps them: a
 * deferred backlog. Prints "held N" and waits for EOF on stdin; meanwhile the
 * runner unloads the module, which must hand every grant to the grant-table
 * core. Then it checks that its mapping still holds the data of each grant,
 * unmaps, prints "released" and exits 0.
 */
#include "gntalloc_util.h"

int main(int argc, char **argv)
{
	uint32_t n = argc > 1 ? strtoul(argv[1], NULL, 0) : 1, ok = 0;
	uint32_t *refs = calloc(n ? n : 1, sizeof(*refs));
	struct remote_map r = { 0 };
	uint64_t idx;
	char c;
	int fd = open(GNTALLOC_DEV, O_RDWR);

	if (fd < 0 || !refs || n == 0 || gnt_alloc(fd, n, GNTALLOC_FLAG_WRITABLE, &idx, refs) ||
	    remote_map(&r, refs, n, 1)) {
		perror("hold: share and map back");
		return 1;
	}
	for (uint32_t k = 0; k < n; k++)
		snprintf((char *)remote_frame(&r, k), 64, "grant %u held by the remote", k);
	if (gnt_dealloc(fd, idx, n)) {
		perror("hold: DEALLOC");
		return 1;
	}
	close(fd);
	printf("held %u\n", n);
	fflush(stdout);
	while (read(0, &c, 1) > 0)
		;
	for (uint32_t k = 0; k < n; k++) {
		char want[64];

		snprintf(want, sizeof(want), "grant %u held by the remote", k);
		ok += strcmp((const char *)remote_frame(&r, k), want) == 0;
	}
	remote_unmap(&r);
	printf("%s (%u of %u grants intact)\n", ok == n ? "released" : "data lost while held", ok, n);
	return ok == n ? 0 : 1;
}
