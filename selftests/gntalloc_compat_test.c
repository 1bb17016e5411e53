// SPDX-License-Identifier: GPL-2.0
/*
 * The ioctls from a 32-bit (i386) process on a 64-bit kernel. i386 aligns
 * u64 to 4 bytes, so the ALLOC and DEALLOC structures are shorter there and
 * their command numbers differ; the field offsets are the same. Upstream has
 * no compat handler and answers ENOTTY to all of this (B11).
 */
#include "kselftest_harness.h"
#include "gntalloc_util.h"

#ifndef __i386__
#error "build this test with -m32"
#endif

_Static_assert(IOCTL_GNTALLOC_ALLOC_GREF == 0x00144705, "i386 ALLOC number");
_Static_assert(IOCTL_GNTALLOC_DEALLOC_GREF == 0x000c4706, "i386 DEALLOC number");
_Static_assert(IOCTL_GNTALLOC_SET_UNMAP_NOTIFY == 0x00104707, "NOTIFY number");
_Static_assert(sizeof(struct ioctl_gntalloc_alloc_gref) == 20, "i386 ALLOC size");

FIXTURE(compat)
{
	int fd;
};

FIXTURE_SETUP(compat)
{
	self->fd = open(GNTALLOC_DEV, O_RDWR);
	ASSERT_LE(0, self->fd);
}

FIXTURE_TEARDOWN(compat)
{
	close(self->fd);
}

TEST_F(compat, alloc_map_notify_dealloc)
{
	long ps = page_size();
	uint32_t ids[2];
	uint64_t idx;
	uint8_t *p;

	ASSERT_EQ(0, gnt_alloc(self->fd, 2, GNTALLOC_FLAG_WRITABLE, &idx, ids));
	EXPECT_EQ(0, idx);
	EXPECT_LE(8, ids[0]);
	EXPECT_LE(8, ids[1]);
	EXPECT_NE(ids[0], ids[1]);
	if (is_rust())
		EXPECT_EQ(2, fdinfo(self->fd, "grants"));
	p = gnt_map(self->fd, idx, 2 * ps);
	ASSERT_TRUE(p != MAP_FAILED);
	EXPECT_EQ(0, p[ps + 5]);
	p[ps + 5] = 0x55;
	EXPECT_EQ(0, gnt_notify(self->fd, idx + ps + 5, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	EXPECT_EQ(-ENOENT, gnt_notify(self->fd, idx + 8 * ps, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, idx, 0));
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, idx, 3));
	EXPECT_EQ(0, gnt_dealloc(self->fd, idx, 2));
	if (is_rust())
		EXPECT_EQ(0, fdinfo(self->fd, "grants"));
	/* Still mapped: the notify fires at munmap, clearing the byte in the page. */
	EXPECT_EQ(0x55, p[ps + 5]);
	munmap(p, 2 * ps);
	EXPECT_TRUE(gnt_map(self->fd, idx, ps) == MAP_FAILED);
	EXPECT_EQ(ENOENT, errno);
}

/* ALLOC reads exactly the 20 bytes of the i386 structure. */
TEST_F(compat, alloc_reads_20_bytes)
{
	long ps = page_size();
	uint8_t *area = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			     -1, 0);
	struct ioctl_gntalloc_alloc_gref *op;

	ASSERT_TRUE(area != MAP_FAILED);
	ASSERT_EQ(0, mprotect(area + ps, ps, PROT_NONE));
	op = (void *)(area + ps - 20);
	memset(op, 0, 20);
	op->count = 1;
	EXPECT_EQ(0, ioctl(self->fd, IOCTL_GNTALLOC_ALLOC_GREF, op));
	EXPECT_LE(8, op->gref_ids[0]);
	op = (void *)(area + ps - 16);
	memset(op, 0, 16);
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_GNTALLOC_ALLOC_GREF, op));
	EXPECT_EQ(EFAULT, errno);
	munmap(area, 2 * ps);
}

/* Unknown commands stay ENOTTY in compat mode too. */
TEST_F(compat, unknown_ioctls_enotty)
{
	char buf[32] = { 0 };

	EXPECT_EQ(-1, ioctl(self->fd, _IOC(_IOC_NONE, 'G', 4, 20), buf));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(self->fd, _IOC(_IOC_NONE, 'G', 8, 16), buf));
	EXPECT_EQ(ENOTTY, errno);
}

TEST_HARNESS_MAIN
