/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The two-domain tests (run-qemu --domu pv|pvh): what dom0's xdom_test and
 * the guest's xdom_agent share. dom0 drives, the agent obeys, both through
 * xenstore under the guest's own directory (/local/domain/GUEST/data/xgr):
 *
 *   cmd   "SEQ VERB ARGS..."   written by dom0
 *   resp  "SEQ ok|err TEXT..." written by the agent once VERB has run
 *
 * The agent creates both nodes before it says "ready", so they belong to the
 * guest and both sides may write them. Every side shares and maps with
 * Debian's libxengnttab (xengntshr_* on /dev/xen/gntalloc, the module under
 * test; xengnttab_* on gntdev), so each direction of a grant runs through the
 * module in the granting domain.
 */
#ifndef XDOM_H
#define XDOM_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xengnttab.h>
#include <xenstore.h>

#define XDOM_DIR "data/xgr"
#define XDOM_PAGE 4096UL
#define XDOM_MAX_PAGES 64

/*
 * The byte that `who` (1: the granting side, 2: the mapping side) writes at
 * offset i of grant k of share `id`: every grant, every share and every
 * direction has its own bytes, so a grant that shows another's frame, or a
 * side that sees its own write, is caught.
 */
static inline uint8_t xdom_pattern(int who, unsigned int id, unsigned int k, size_t i)
{
	return (uint8_t)(who * 101 + id * 7 + k * 13 + i * 31 + (i >> 8));
}

/* Writes `who`'s bytes of grants first..first+n-1 of share `id` to the n pages at p. */
static inline void xdom_fill(volatile uint8_t *p, int who, unsigned int id, unsigned int first,
			     unsigned int n)
{
	for (unsigned int k = 0; k < n; k++)
		for (size_t i = 0; i < XDOM_PAGE; i++)
			p[k * XDOM_PAGE + i] = xdom_pattern(who, id, first + k, i);
}

/*
 * 0 if the n pages at p carry `who`'s bytes of grants first..first+n-1 of
 * share `id`; otherwise says where the first difference is in msg, -1.
 */
static inline int xdom_check(const volatile uint8_t *p, int who, unsigned int id,
			     unsigned int first, unsigned int n, char *msg, size_t len)
{
	for (unsigned int k = first; k < first + n; k++)
		for (size_t i = 0; i < XDOM_PAGE; i++) {
			uint8_t want = xdom_pattern(who, id, k, i);
			uint8_t got = p[(k - first) * XDOM_PAGE + i];

			if (got != want) {
				snprintf(msg, len, "grant %u byte %zu: %#x, expected %#x (side %d's)", k,
					 i, got, want, who);
				return -1;
			}
		}
	return 0;
}

/* Reads a counter of the Rust module's debugfs, or -1 (the C reference has none). */
static inline long xdom_rust_stat(const char *name)
{
	char path[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/debug/xen-gntalloc-rs/stats/%s", name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

#endif /* XDOM_H */
