// SPDX-License-Identifier: GPL-2.0
/*
 * The ioctls from a 32-bit process on a 64-bit kernel: i386 on x86_64 (built
 * with -m32), AArch32 on arm64 (built for armhf). i386 aligns u64 to 4 bytes,
 * so the ALLOC and DEALLOC structures are shorter there and their command
 * numbers differ; arm EABI aligns u64 to 8 bytes, so its structures and
 * numbers are the native ones. The field offsets are the same everywhere.
 * Upstream has no compat handler and answers ENOTTY to all of this (B11).
 */
#include <stddef.h>

#include "kselftest_harness.h"
#include "gntalloc_util.h"

#if defined(__i386__)
#define ALLOC_SIZE 20
_Static_assert(IOCTL_GNTALLOC_ALLOC_GREF == 0x00144705, "i386 ALLOC number");
_Static_assert(IOCTL_GNTALLOC_DEALLOC_GREF == 0x000c4706, "i386 DEALLOC number");
_Static_assert(sizeof(struct ioctl_gntalloc_dealloc_gref) == 12, "i386 DEALLOC size");
#elif defined(__arm__)
#ifndef __ARM_EABI__
#error "the AArch32 compat ABI is EABI"
#endif
#define ALLOC_SIZE 24
_Static_assert(IOCTL_GNTALLOC_ALLOC_GREF == 0x00184705, "arm ALLOC number");
_Static_assert(IOCTL_GNTALLOC_DEALLOC_GREF == 0x00104706, "arm DEALLOC number");
_Static_assert(sizeof(struct ioctl_gntalloc_dealloc_gref) == 16, "arm DEALLOC size");
#else
#error "build this test for a 32-bit ABI: i386 (-m32) or AArch32 (armhf)"
#endif
_Static_assert(sizeof(struct ioctl_gntalloc_alloc_gref) == ALLOC_SIZE, "ALLOC size");
_Static_assert(offsetof(struct ioctl_gntalloc_alloc_gref, count) == 4, "ALLOC count");
_Static_assert(offsetof(struct ioctl_gntalloc_alloc_gref, index) == 8, "ALLOC index");
_Static_assert(offsetof(struct ioctl_gntalloc_alloc_gref, gref_ids) == 16, "ALLOC gref_ids");
_Static_assert(offsetof(struct ioctl_gntalloc_dealloc_gref, count) == 8, "DEALLOC count");
_Static_assert(IOCTL_GNTALLOC_SET_UNMAP_NOTIFY == 0x00104707, "NOTIFY number");
_Static_assert(sizeof(struct ioctl_gntalloc_unmap_notify) == 16, "NOTIFY size");

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

/*
 * Grant k is the 4K frame at k * XPAGE of the allocation's mapping, and its
 * slot (DEALLOC, SET_UNMAP_NOTIFY) is index + k * XPAGE: on 4K kernels a page
 * each, on 64K kernels (which a 32-bit process sees as its page size too)
 * both in one page.
 */
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
	p = gnt_map(self->fd, idx, grant_span(2));
	ASSERT_TRUE(p != MAP_FAILED);
	EXPECT_EQ(0, p[XPAGE + 5]);
	p[XPAGE + 5] = 0x55;
	EXPECT_EQ(0, gnt_notify(self->fd, idx + XPAGE + 5, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	EXPECT_EQ(-ENOENT, gnt_notify(self->fd, idx + 8 * XPAGE, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, idx, 0));
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, idx, 3));
	EXPECT_EQ(0, gnt_dealloc(self->fd, idx, 2));
	if (is_rust())
		EXPECT_EQ(0, fdinfo(self->fd, "grants"));
	/* Still mapped: the notify fires at munmap, clearing the byte in the page. */
	EXPECT_EQ(0x55, p[XPAGE + 5]);
	munmap(p, grant_span(2));
	EXPECT_TRUE(gnt_map(self->fd, idx, ps) == MAP_FAILED);
	EXPECT_EQ(ENOENT, errno);
}

/*
 * A zeroed ALLOC argument of `len` bytes that ends right before a PROT_NONE
 * page: the kernel may read and write those bytes and no further. `*area`
 * (two pages) is for munmap.
 */
static struct ioctl_gntalloc_alloc_gref *alloc_arg_before_guard(size_t len, uint8_t **area)
{
	long ps = page_size();
	uint8_t *a = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	*area = a;
	if (a == MAP_FAILED || mprotect(a + ps, ps, PROT_NONE))
		return NULL;
	memset(a + ps - len, 0, len);
	return (void *)(a + ps - len);
}

/*
 * ALLOC of `count` grants reads and writes back exactly `len` bytes (the
 * header and the ids): it succeeds in a buffer of `len` bytes before a guard
 * page, and faults in one 4 bytes shorter.
 */
static void alloc_reads_exactly(struct __test_metadata *_metadata, int fd, size_t len,
				uint32_t count)
{
	struct ioctl_gntalloc_alloc_gref *op;
	uint8_t *area;

	op = alloc_arg_before_guard(len, &area);
	ASSERT_TRUE(op != NULL);
	op->count = count;
	EXPECT_EQ(0, ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, op));
	EXPECT_EQ(0, op->index);
	for (uint32_t i = 0; i < count; i++) {
		EXPECT_LE(8, op->gref_ids_flex[i]);
		if (i)
			EXPECT_NE(op->gref_ids_flex[0], op->gref_ids_flex[i]);
	}
	munmap(area, 2 * page_size());
	op = alloc_arg_before_guard(len - 4, &area);
	ASSERT_TRUE(op != NULL);
	op->count = count - 1;
	EXPECT_EQ(-1, ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, op));
	EXPECT_EQ(EFAULT, errno);
	munmap(area, 2 * page_size());
}

#if defined(__i386__)
/* ALLOC reads exactly the 20 bytes of the i386 structure, which hold one id. */
TEST_F(compat, alloc_reads_20_bytes)
{
	alloc_reads_exactly(_metadata, self->fd, 20, 1);
}
#endif

#if defined(__arm__)
/*
 * ALLOC reads and writes back exactly the 24 bytes of the structure, which
 * hold the ids of 2 grants, and not the 20 of i386's: the arm caller gets the
 * native layout, not the i386 one.
 */
TEST_F(compat, alloc_reads_24_bytes)
{
	alloc_reads_exactly(_metadata, self->fd, 24, 2);
}
#endif

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
