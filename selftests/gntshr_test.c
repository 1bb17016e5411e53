// SPDX-License-Identifier: GPL-2.0
/*
 * The device as real user space drives it: libxengnttab (Debian's libxen-dev,
 * linked statically) shares pages through /dev/xen/gntalloc with its
 * xengntshr_* calls and maps them back through gntdev with xengnttab_*.
 * Nothing here knows which module provides the device; both must pass.
 */
#include <xengnttab.h>

#include "kselftest_harness.h"
#include "gntalloc_util.h"

FIXTURE(shr)
{
	xengntshr_handle *gs;
	xengnttab_handle *gt;
};

FIXTURE_SETUP(shr)
{
	self->gs = xengntshr_open(NULL, 0);
	ASSERT_NE(NULL, self->gs) TH_LOG("xengntshr_open: %s", strerror(errno));
	self->gt = xengnttab_open(NULL, 0);
	ASSERT_NE(NULL, self->gt) TH_LOG("xengnttab_open: %s", strerror(errno));
}

FIXTURE_TEARDOWN(shr)
{
	xengnttab_close(self->gt);
	xengntshr_close(self->gs);
}

/* The byte that `who` (1: the sharer, 2: the mapper) writes at `i` of grant `k` of a share of `n`. */
static uint8_t pattern(int who, int n, int k, size_t i)
{
	return (uint8_t)(who * 101 + n * 7 + k * 13 + i * 31 + (i >> 8));
}

/*
 * Every grant of a share of n = 1..40 pages carries its own 4K: what the sharer writes at
 * offset k * 4096 of xengntshr_share_pages()'s area is what a mapping of ref k alone shows,
 * and the other way round. On a 64K kernel sixteen grants share a kernel page; upstream
 * grants only the first 4K of each kernel page, so any n >= 2 diverges there. gntdev maps
 * one grant per kernel page, so each ref is mapped on its own; on 4K kernels all n refs are
 * also mapped in one call, as libxenvchan does.
 */
TEST_F(shr, share_pages_each_own_bytes)
{
	REQUIRE_REMOTE();
	uint32_t refs[40];
	int bad = 0;

	for (int n = 1; n <= 40 && !bad; n++) {
		uint8_t *local = xengntshr_share_pages(self->gs, DOMID_SELF_ID, n, refs, 1);

		ASSERT_NE(NULL, local) TH_LOG("share_pages(%d): %s", n, strerror(errno));
		for (int k = 0; k < n; k++)
			for (size_t i = 0; i < XPAGE; i++)
				local[k * XPAGE + i] = pattern(1, n, k, i);
		for (int k = 0; k < n && !bad; k++) {
			uint8_t *remote = xengnttab_map_domain_grant_refs(self->gt, 1, DOMID_SELF_ID,
									  &refs[k],
									  PROT_READ | PROT_WRITE);

			ASSERT_NE(NULL, remote) TH_LOG("map ref %d of %d: %s", k, n, strerror(errno));
			for (size_t i = 0; i < XPAGE && !bad; i++)
				if (remote[i] != pattern(1, n, k, i)) {
					bad = 1;
					TH_LOG("n=%d grant %d byte %zu: mapper sees %#x, sharer wrote %#x",
					       n, k, i, remote[i], pattern(1, n, k, i));
				}
			for (size_t i = 0; i < XPAGE; i++)
				remote[i] = pattern(2, n, k, i);
			for (size_t i = 0; i < XPAGE && !bad; i++)
				if (local[k * XPAGE + i] != pattern(2, n, k, i)) {
					bad = 1;
					TH_LOG("n=%d grant %d byte %zu: sharer sees %#x, mapper wrote %#x",
					       n, k, i, local[k * XPAGE + i], pattern(2, n, k, i));
				}
			EXPECT_EQ(0, xengnttab_unmap(self->gt, remote, 1));
		}
		if (!bad && page_size() == XPAGE) {
			uint8_t *all = xengnttab_map_domain_grant_refs(self->gt, n, DOMID_SELF_ID, refs,
								       PROT_READ);

			ASSERT_NE(NULL, all) TH_LOG("map %d refs: %s", n, strerror(errno));
			bad = memcmp(all, local, n * XPAGE) != 0;
			EXPECT_EQ(0, bad) TH_LOG("n=%d: a mapping of all refs differs", n);
			EXPECT_EQ(0, xengnttab_unmap(self->gt, all, n));
		}
		EXPECT_EQ(0, xengntshr_unshare(self->gs, local, n));
	}
	EXPECT_EQ(0, bad);
}

TEST_F(shr, readonly_share)
{
	REQUIRE_REMOTE();
	uint32_t ref;
	uint8_t *local, *remote;

	local = xengntshr_share_pages(self->gs, DOMID_SELF_ID, 1, &ref, 0);
	ASSERT_NE(NULL, local);
	local[0] = 0x42;
	EXPECT_EQ(NULL, xengnttab_map_domain_grant_refs(self->gt, 1, DOMID_SELF_ID, &ref,
							PROT_READ | PROT_WRITE));
	remote = xengnttab_map_domain_grant_refs(self->gt, 1, DOMID_SELF_ID, &ref, PROT_READ);
	ASSERT_NE(NULL, remote);
	EXPECT_EQ(0x42, remote[0]);
	EXPECT_EQ(0, xengnttab_unmap(self->gt, remote, 1));
	EXPECT_EQ(0, xengntshr_unshare(self->gs, local, 1));
}

/* The libxenvchan pattern: the peer learns of the unshare by byte and event. */
TEST_F(shr, unshare_notifies_peer)
{
	REQUIRE_REMOTE();
	struct evtchn_loop e = { 0 };
	volatile uint8_t *remote;
	uint8_t *local;
	uint32_t ref;

	ASSERT_EQ(0, evtchn_loop_open(&e));
	local = xengntshr_share_page_notify(self->gs, DOMID_SELF_ID, &ref, 1, 100, e.port);
	ASSERT_NE(NULL, local) TH_LOG("share_page_notify: %s", strerror(errno));
	local[100] = 1;
	remote = xengnttab_map_domain_grant_refs(self->gt, 1, DOMID_SELF_ID, &ref,
						 PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, remote);
	EXPECT_EQ(1, remote[100]);
	EXPECT_EQ(0, evtchn_loop_events(&e, 100));
	EXPECT_EQ(0, xengntshr_unshare(self->gs, local, 1));
	EXPECT_EQ(1, evtchn_loop_events(&e, 1000));
	EXPECT_EQ(0, remote[100]) TH_LOG("the notify byte was not cleared");
	remote[200] = 2; /* the peer's mapping stays valid until it unmaps */
	EXPECT_EQ(2, remote[200]);
	EXPECT_EQ(0, xengnttab_unmap(self->gt, (void *)remote, 1));
	evtchn_loop_close(&e);
}

/* Over the limit: NULL with ENOSPC, and nothing allocated. */
TEST_F(shr, share_over_limit)
{
	long limit = get_limit();
	uint32_t *refs = calloc(limit + 1, sizeof(*refs));
	void *p;

	ASSERT_LT(0, limit);
	ASSERT_NE(NULL, refs);
	EXPECT_EQ(NULL, xengntshr_share_pages(self->gs, DOMID_SELF_ID, limit + 1, refs, 1));
	EXPECT_EQ(ENOSPC, errno);
	p = xengntshr_share_pages(self->gs, DOMID_SELF_ID, limit, refs, 1);
	ASSERT_NE(NULL, p) TH_LOG("the whole limit is not available: %s", strerror(errno));
	EXPECT_EQ(0, xengntshr_unshare(self->gs, p, limit));
	free(refs);
}

TEST_HARNESS_MAIN
