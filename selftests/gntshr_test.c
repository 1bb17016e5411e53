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

TEST_F(shr, share_and_map_back)
{
	REQUIRE_REMOTE();
	uint32_t refs[4];
	uint8_t *local, *remote;

	if (page_size() != XPAGE)
		SKIP(return, "gntdev maps only 4K of each page on this kernel");
	local = xengntshr_share_pages(self->gs, DOMID_SELF_ID, 4, refs, 1);
	ASSERT_NE(NULL, local) TH_LOG("share_pages: %s", strerror(errno));
	for (int i = 0; i < 4; i++)
		memset(local + i * XPAGE, 0x10 + i, XPAGE);
	remote = xengnttab_map_domain_grant_refs(self->gt, 4, DOMID_SELF_ID, refs,
						 PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, remote) TH_LOG("map_domain_grant_refs: %s", strerror(errno));
	for (int i = 0; i < 4; i++) {
		EXPECT_EQ(0x10 + i, remote[i * XPAGE]);
		EXPECT_EQ(0x10 + i, remote[i * XPAGE + XPAGE - 1]);
	}
	remote[3 * XPAGE + 9] = 0x99;
	EXPECT_EQ(0x99, local[3 * XPAGE + 9]);
	EXPECT_EQ(0, xengnttab_unmap(self->gt, remote, 4));
	EXPECT_EQ(0, xengntshr_unshare(self->gs, local, 4));
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

	if (page_size() != XPAGE)
		SKIP(return, "4K pages only");
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
