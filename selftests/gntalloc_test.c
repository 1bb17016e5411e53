// SPDX-License-Identifier: GPL-2.0
/*
 * Selftests for /dev/xen/gntalloc, run against both the C reference and the
 * Rust module, in a Xen dom0 that maps its own grants through gntdev.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "gntalloc_util.h"

/* The established ABI (values, not code, of the upstream header). */
_Static_assert(IOCTL_GNTALLOC_ALLOC_GREF == 0x00184705, "ALLOC number");
_Static_assert(IOCTL_GNTALLOC_DEALLOC_GREF == 0x00104706, "DEALLOC number");
_Static_assert(IOCTL_GNTALLOC_SET_UNMAP_NOTIFY == 0x00104707, "NOTIFY number");
_Static_assert(sizeof(struct ioctl_gntalloc_alloc_gref) == 24, "ALLOC size");
_Static_assert(sizeof(struct ioctl_gntalloc_dealloc_gref) == 16, "DEALLOC size");
_Static_assert(sizeof(struct ioctl_gntalloc_unmap_notify) == 16, "NOTIFY size");

/* Every test gets a fresh file and the default limit back afterwards. */
FIXTURE(gnt)
{
	int fd;
	long limit;
};

FIXTURE_SETUP(gnt)
{
	self->fd = open(GNTALLOC_DEV, O_RDWR);
	ASSERT_LE(0, self->fd) TH_LOG("open %s: %s", GNTALLOC_DEV, strerror(errno));
	self->limit = get_limit();
	ASSERT_LT(0, self->limit);
}

FIXTURE_TEARDOWN(gnt)
{
	close(self->fd);
	set_limit(self->limit);
}

TEST(device_node_exists)
{
	struct stat st;

	ASSERT_EQ(0, stat(GNTALLOC_DEV, &st));
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	EXPECT_EQ(10, major(st.st_rdev)); /* misc */
	EXPECT_STRNE("none", module_under_test());
}

TEST_F(gnt, unknown_ioctls_enotty)
{
	unsigned long cmds[] = {
		_IOC(_IOC_NONE, 'G', 4, 24), _IOC(_IOC_NONE, 'G', 8, 16),
		_IOC(_IOC_NONE, 'G', 5, 20), _IOC(_IOC_NONE, 'G', 6, 12),
		_IOC(_IOC_READ | _IOC_WRITE, 'G', 5, 24), 0,
	};
	char buf[64] = { 0 };
	unsigned int i;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		EXPECT_EQ(-1, ioctl(self->fd, cmds[i], buf));
		EXPECT_EQ(ENOTTY, errno) TH_LOG("cmd %#lx", cmds[i]);
	}
}

TEST_F(gnt, read_write_lseek)
{
	char c;

	EXPECT_EQ(-1, read(self->fd, &c, 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, write(self->fd, &c, 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, lseek(self->fd, 0, SEEK_SET));
	EXPECT_EQ(ESPIPE, errno);
}

TEST_F(gnt, alloc_count_zero)
{
	uint64_t idx0 = 99, idx1 = 99, idx2 = 99;

	ASSERT_EQ(0, gnt_alloc(self->fd, 0, 0, &idx0, NULL));
	EXPECT_EQ(0, idx0);
	ASSERT_EQ(0, gnt_alloc(self->fd, 1, 0, &idx1, NULL));
	EXPECT_EQ(0, idx1);
	ASSERT_EQ(0, gnt_alloc(self->fd, 0, 0, &idx2, NULL));
	EXPECT_EQ(page_size(), idx2);
}

/* The header is written back whole (padding included), then the ids. */
TEST_F(gnt, alloc_writeback)
{
	uint8_t buf[40];
	struct ioctl_gntalloc_alloc_gref *op = (void *)buf;
	uint32_t ids[2];

	memset(buf, 0xa5, sizeof(buf));
	op->domid = 0;
	op->flags = GNTALLOC_FLAG_WRITABLE;
	op->count = 1;
	ASSERT_EQ(0, ioctl(self->fd, IOCTL_GNTALLOC_ALLOC_GREF, op));
	EXPECT_EQ(0, op->index);
	EXPECT_LE(8, op->gref_ids[0]);
	for (int i = 20; i < 40; i++) {
		EXPECT_EQ(0xa5, buf[i]) TH_LOG("byte %d changed", i);
	}

	memset(buf, 0xa5, sizeof(buf));
	op->domid = 0;
	op->flags = 0;
	op->count = 2;
	ASSERT_EQ(0, ioctl(self->fd, IOCTL_GNTALLOC_ALLOC_GREF, op));
	EXPECT_EQ(page_size(), op->index);
	memcpy(ids, op->gref_ids_flex, sizeof(ids));
	EXPECT_LE(8, ids[0]);
	EXPECT_LE(8, ids[1]);
	EXPECT_NE(ids[0], ids[1]);
	for (int i = 24; i < 40; i++)
		EXPECT_EQ(0xa5, buf[i]);
}

/* ALLOC reads exactly 24 bytes and writes 16 + 4 * count. */
TEST_F(gnt, alloc_copy_sizes)
{
	long ps = page_size();
	uint8_t *area = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			     -1, 0);
	struct ioctl_gntalloc_alloc_gref *op;

	ASSERT_NE(MAP_FAILED, area);
	ASSERT_EQ(0, mprotect(area + ps, ps, PROT_NONE));
	op = (void *)(area + ps - 24);
	for (uint32_t count = 0; count <= 2; count++) {
		memset(op, 0, 24);
		op->count = count;
		EXPECT_EQ(0, ioctl(self->fd, IOCTL_GNTALLOC_ALLOC_GREF, op)) TH_LOG("count %u", count);
	}
	op = (void *)(area + ps - 20);
	memset(op, 0, 20);
	op->count = 1;
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_GNTALLOC_ALLOC_GREF, op));
	EXPECT_EQ(EFAULT, errno);
	/* count 3 needs 28 bytes: the header lands, the ids fault, the grants stay. */
	op = (void *)(area + ps - 24);
	memset(op, 0, 24);
	op->count = 3;
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_GNTALLOC_ALLOC_GREF, op));
	EXPECT_EQ(EFAULT, errno);
	/* 0 + 1 + 2 pages were allocated before at indices 0, 1, 3. */
	EXPECT_EQ(0, gnt_dealloc(self->fd, 3 * ps, 3));
	munmap(area, 2 * ps);
}

TEST_F(gnt, alloc_above_limit)
{
	uint64_t idx = 0;

	EXPECT_EQ(-ENOSPC, gnt_alloc(self->fd, self->limit + 1, 0, NULL, NULL));
	/* A 24-byte buffer: the kernel must refuse before looking at the ids. */
	struct ioctl_gntalloc_alloc_gref op = { .count = 0xffffffffu };

	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_GNTALLOC_ALLOC_GREF, &op));
	EXPECT_EQ(ENOSPC, errno);
	/* Nothing was allocated, and no index consumed. */
	ASSERT_EQ(0, gnt_alloc(self->fd, 1, 0, &idx, NULL));
	EXPECT_EQ(0, idx);
}

TEST_F(gnt, limit_accounting)
{
	uint64_t idx;

	ASSERT_EQ(0, set_limit(8));
	ASSERT_EQ(0, gnt_alloc(self->fd, 5, 0, &idx, NULL));
	EXPECT_EQ(-ENOSPC, gnt_alloc(self->fd, 4, 0, NULL, NULL));
	ASSERT_EQ(0, gnt_alloc(self->fd, 3, 0, NULL, NULL));
	EXPECT_EQ(-ENOSPC, gnt_alloc(self->fd, 1, 0, NULL, NULL));
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx, 1));
	EXPECT_EQ(0, gnt_alloc(self->fd, 1, 0, NULL, NULL));
	EXPECT_EQ(-ENOSPC, gnt_alloc(self->fd, 1, 0, NULL, NULL));
}

TEST_F(gnt, limit_lowered_below_usage)
{
	ASSERT_EQ(0, set_limit(8));
	ASSERT_EQ(0, gnt_alloc(self->fd, 4, 0, NULL, NULL));
	ASSERT_EQ(0, set_limit(2));
	EXPECT_EQ(-ENOSPC, gnt_alloc(self->fd, 0, 0, NULL, NULL));
	EXPECT_EQ(-ENOSPC, gnt_alloc(self->fd, 1, 0, NULL, NULL));
	/* Nothing was revoked: the grants are still there. */
	EXPECT_EQ(0, gnt_dealloc(self->fd, 0, 4));
	EXPECT_EQ(0, gnt_alloc(self->fd, 2, 0, NULL, NULL));
	ASSERT_EQ(0, set_limit(8));
	EXPECT_EQ(0, gnt_alloc(self->fd, 6, 0, NULL, NULL));
}

/* The limit is global: another process's grants count too. */
TEST_F(gnt, limit_shared_between_processes)
{
	int pipefd[2];
	char c = 0;
	pid_t pid;

	ASSERT_EQ(0, set_limit(16));
	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd = open(GNTALLOC_DEV, O_RDWR);

		c = fd >= 0 && gnt_alloc(fd, 8, 0, NULL, NULL) == 0;
		if (write(pipefd[1], &c, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	ASSERT_EQ(1, read(pipefd[0], &c, 1));
	ASSERT_EQ(1, c);
	EXPECT_EQ(0, gnt_alloc(self->fd, 8, 0, NULL, NULL));
	EXPECT_EQ(-ENOSPC, gnt_alloc(self->fd, 1, 0, NULL, NULL));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	EXPECT_EQ(0, gnt_alloc(self->fd, 8, 0, NULL, NULL));
}

TEST_F(gnt, index_monotonic)
{
	long ps = page_size();
	uint64_t a, b, c, d;
	int fd2;

	ASSERT_EQ(0, gnt_alloc(self->fd, 1, 0, &a, NULL));
	ASSERT_EQ(0, gnt_alloc(self->fd, 2, 0, &b, NULL));
	ASSERT_EQ(0, gnt_dealloc(self->fd, a, 1));
	ASSERT_EQ(0, gnt_alloc(self->fd, 1, 0, &c, NULL));
	EXPECT_EQ(0, a);
	EXPECT_EQ(ps, b);
	EXPECT_EQ(3 * ps, c);
	fd2 = open(GNTALLOC_DEV, O_RDWR);
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, gnt_alloc(fd2, 1, 0, &d, NULL));
	EXPECT_EQ(0, d);
	close(fd2);
}

TEST_F(gnt, dealloc_errors)
{
	long ps = page_size();
	uint64_t idx;
	int fd2;

	ASSERT_EQ(0, gnt_alloc(self->fd, 2, 0, &idx, NULL));
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, idx, 0));
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, idx + 2 * ps, 1));
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, idx + 1, 1));
	fd2 = open(GNTALLOC_DEV, O_RDWR);
	ASSERT_LE(0, fd2);
	EXPECT_EQ(-EINVAL, gnt_dealloc(fd2, idx, 1));
	close(fd2);
	EXPECT_EQ(0, gnt_dealloc(self->fd, idx, 2));
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, idx, 1));
}

TEST_F(gnt, dealloc_subrange_and_span)
{
	long ps = page_size();
	uint64_t a, b;

	ASSERT_EQ(0, gnt_alloc(self->fd, 3, 0, &a, NULL));
	ASSERT_EQ(0, gnt_alloc(self->fd, 2, 0, &b, NULL));
	ASSERT_EQ(b, a + 3 * ps);
	EXPECT_EQ(0, gnt_dealloc(self->fd, a + ps, 3)); /* middle of a + first of b */
	EXPECT_EQ(0, gnt_dealloc(self->fd, a, 1));
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, a + 2 * ps, 1)); /* went with the span */
	EXPECT_EQ(0, gnt_dealloc(self->fd, b + ps, 1));
}

/* A range that runs past the end or over a hole removes nothing. */
TEST_F(gnt, dealloc_is_atomic)
{
	long ps = page_size();
	uint64_t a;

	ASSERT_EQ(0, gnt_alloc(self->fd, 4, 0, &a, NULL));
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, a, 5));
	ASSERT_EQ(0, gnt_dealloc(self->fd, a + 2 * ps, 1));
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, a, 4));
	EXPECT_EQ(0, gnt_dealloc(self->fd, a, 2));
	EXPECT_EQ(0, gnt_dealloc(self->fd, a + 3 * ps, 1));
}

TEST_F(gnt, mmap_must_be_shared)
{
	int rdonly;

	ASSERT_EQ(0, gnt_alloc(self->fd, 1, 0, NULL, NULL));
	EXPECT_EQ(MAP_FAILED, mmap(NULL, page_size(), PROT_READ | PROT_WRITE, MAP_PRIVATE,
				   self->fd, 0));
	EXPECT_EQ(EINVAL, errno);
	rdonly = open(GNTALLOC_DEV, O_RDONLY);
	ASSERT_LE(0, rdonly);
	ASSERT_EQ(0, gnt_alloc(rdonly, 1, 0, NULL, NULL));
	EXPECT_EQ(MAP_FAILED, mmap(NULL, page_size(), PROT_READ, MAP_SHARED, rdonly, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, page_size(), PROT_WRITE, MAP_SHARED, rdonly, 0));
	EXPECT_EQ(EACCES, errno);
	close(rdonly);
}

TEST_F(gnt, mmap_ranges)
{
	long ps = page_size();
	uint8_t *all, *mid, *tail;
	uint64_t a, b;

	ASSERT_EQ(0, gnt_alloc(self->fd, 3, 0, &a, NULL));
	ASSERT_EQ(0, gnt_alloc(self->fd, 1, 0, &b, NULL));
	EXPECT_EQ(MAP_FAILED, gnt_map(self->fd, a + 5 * ps, ps));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_EQ(MAP_FAILED, gnt_map(self->fd, a, 5 * ps));
	EXPECT_EQ(ENOENT, errno);
	all = gnt_map(self->fd, a, 4 * ps); /* spans both allocations */
	ASSERT_NE(MAP_FAILED, all);
	mid = gnt_map(self->fd, a + ps, ps);
	ASSERT_NE(MAP_FAILED, mid);
	tail = gnt_map(self->fd, a + 2 * ps, 2 * ps);
	ASSERT_NE(MAP_FAILED, tail);
	for (int i = 0; i < 4; i++)
		EXPECT_EQ(0, all[i * ps + 7]) TH_LOG("pages must be zeroed");
	all[ps + 5] = 0x11;
	all[2 * ps + 6] = 0x22;
	all[3 * ps + 7] = 0x33;
	EXPECT_EQ(0x11, mid[5]);
	EXPECT_EQ(0x22, tail[6]);
	EXPECT_EQ(0x33, tail[ps + 7]);
	munmap(all, 4 * ps);
	munmap(mid, ps);
	munmap(tail, 2 * ps);
	/* A hole after DEALLOC. */
	ASSERT_EQ(0, gnt_dealloc(self->fd, a + ps, 1));
	EXPECT_EQ(MAP_FAILED, gnt_map(self->fd, a, 2 * ps));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_NE(MAP_FAILED, gnt_map(self->fd, a + 2 * ps, 2 * ps));
}

/* Share through gntalloc, map back through gntdev, both directions. */
TEST_F(gnt, gntdev_round_trip)
{
	long ps = page_size();
	struct remote_map r = { 0 };
	uint32_t ids[2];
	uint64_t idx;
	uint8_t *local;

	if (ps != XPAGE)
		SKIP(return, "gntdev maps only 4K of each page on this kernel");
	ASSERT_EQ(0, gnt_alloc(self->fd, 2, GNTALLOC_FLAG_WRITABLE, &idx, ids));
	local = gnt_map(self->fd, idx, 2 * ps);
	ASSERT_NE(MAP_FAILED, local);
	strcpy((char *)local, "hello from gntalloc");
	strcpy((char *)local + ps, "second page");
	ASSERT_EQ(0, remote_map(&r, ids, 2, 1));
	EXPECT_STREQ("hello from gntalloc", (const char *)r.addr);
	EXPECT_STREQ("second page", (const char *)r.addr + XPAGE);
	strcpy((char *)r.addr + XPAGE + 100, "written by the remote");
	EXPECT_STREQ("written by the remote", (const char *)local + ps + 100);
	/* The libxengnttab pattern: DEALLOC at once, the mapping keeps the grants. */
	EXPECT_EQ(0, gnt_dealloc(self->fd, idx, 2));
	local[0] = 'H';
	EXPECT_EQ('H', r.addr[0]);
	munmap(local, 2 * ps);
	close(self->fd);
	self->fd = open(GNTALLOC_DEV, O_RDWR);
	/* The remote keeps its mapping after the local side is gone. */
	EXPECT_EQ('H', r.addr[0]);
	remote_unmap(&r);
}

TEST_F(gnt, readonly_grant)
{
	struct remote_map r = { 0 };
	uint32_t id;
	uint64_t idx;

	ASSERT_EQ(0, gnt_alloc(self->fd, 1, 0xfffe, &idx, &id)); /* unknown bits ignored */
	EXPECT_NE(0, remote_map(&r, &id, 1, 1));
	ASSERT_EQ(0, remote_map(&r, &id, 1, 0));
	EXPECT_EQ(0, r.addr[0]);
	remote_unmap(&r);
}

TEST_F(gnt, dealloc_while_mapped)
{
	long ps = page_size();
	uint64_t idx;
	uint8_t *p;

	ASSERT_EQ(0, gnt_alloc(self->fd, 2, 0, &idx, NULL));
	p = gnt_map(self->fd, idx, 2 * ps);
	ASSERT_NE(MAP_FAILED, p);
	p[0] = 1;
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx, 2));
	p[ps] = 2;
	EXPECT_EQ(1, p[0]);
	EXPECT_EQ(MAP_FAILED, gnt_map(self->fd, idx, ps));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_EQ(-ENOENT, gnt_notify(self->fd, idx, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	munmap(p, 2 * ps);
}

TEST_F(gnt, notify_errno_precedence)
{
	uint64_t idx;

	ASSERT_EQ(0, gnt_alloc(self->fd, 1, 0, &idx, NULL));
	EXPECT_EQ(-ENOENT, gnt_notify(self->fd, idx + 64 * page_size(), 0x80, 0));
	EXPECT_EQ(-EINVAL, gnt_notify(self->fd, idx, 0x80, 0));
	EXPECT_EQ(-EINVAL, gnt_notify(self->fd, idx, UNMAP_NOTIFY_SEND_EVENT, 0xfffffff0));
	EXPECT_EQ(-EINVAL, gnt_notify(self->fd, idx, UNMAP_NOTIFY_SEND_EVENT, 1)); /* in-kernel */
	EXPECT_EQ(0, gnt_notify(self->fd, idx + 17, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	EXPECT_EQ(0, gnt_notify(self->fd, idx, 0, 0));
}

/*
 * The remote (gntdev) watches a byte: DEALLOC of an unmapped grant clears it
 * before the ioctl returns, exactly that byte, and the remote's mapping stays
 * valid (the grant end is deferred while it is mapped).
 */
TEST_F(gnt, notify_clear_byte_on_dealloc)
{
	long ps = page_size();
	struct remote_map r = { 0 };
	uint32_t ids[3];
	uint64_t idx;
	uint8_t *p;

	if (ps != XPAGE)
		SKIP(return, "4K pages only");
	ASSERT_EQ(0, gnt_alloc(self->fd, 3, GNTALLOC_FLAG_WRITABLE, &idx, ids));
	p = gnt_map(self->fd, idx, 3 * ps);
	ASSERT_NE(MAP_FAILED, p);
	memset(p, 0x5a, 3 * ps);
	munmap(p, 3 * ps);
	ASSERT_EQ(0, remote_map(&r, ids, 3, 1));
	ASSERT_EQ(0, gnt_notify(self->fd, idx + 0, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	ASSERT_EQ(0, gnt_notify(self->fd, idx + ps + 4095, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	ASSERT_EQ(0, gnt_notify(self->fd, idx + 2 * ps + 1234, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	EXPECT_EQ(0x5a, r.addr[0]);
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx, 1));
	EXPECT_EQ(0, r.addr[0]);
	EXPECT_EQ(0x5a, r.addr[1]);
	EXPECT_EQ(0x5a, r.addr[XPAGE + 4095]);
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx + ps, 2));
	EXPECT_EQ(0, r.addr[XPAGE + 4095]);
	EXPECT_EQ(0x5a, r.addr[XPAGE + 4094]);
	EXPECT_EQ(0, r.addr[2 * XPAGE + 1234]);
	EXPECT_EQ(0x5a, r.addr[2 * XPAGE + 1233]);
	EXPECT_EQ(0x5a, r.addr[2 * XPAGE + 1235]);
	/* Still mapped by the remote after the local side let go. */
	r.addr[2 * XPAGE] = 7;
	EXPECT_EQ(7, r.addr[2 * XPAGE]);
	remote_unmap(&r);
}

/* Fixture for lifetime tests: one page, notify byte 42, watched by the remote. */
struct watched {
	struct remote_map r;
	uint64_t idx;
	uint32_t id;
};

static int watch_setup(struct __test_metadata *_metadata, int fd, struct watched *w, int pages)
{
	uint32_t ids[8];
	uint8_t *p;

	if (page_size() != XPAGE)
		return -1;
	if (gnt_alloc(fd, pages, GNTALLOC_FLAG_WRITABLE, &w->idx, ids))
		return -1;
	w->id = ids[0];
	p = gnt_map(fd, w->idx, page_size());
	if (p == MAP_FAILED)
		return -1;
	p[42] = 0xee;
	munmap(p, page_size());
	if (remote_map(&w->r, ids, 1, 1))
		return -1;
	return gnt_notify(fd, w->idx + 42, UNMAP_NOTIFY_CLEAR_BYTE, 0);
}

#define FIRED(w) ((w)->r.addr[42] == 0)

TEST_F(gnt, notify_at_last_munmap)
{
	struct watched w = { 0 };
	uint8_t *p;

	ASSERT_EQ(0, watch_setup(_metadata, self->fd, &w, 1));
	p = gnt_map(self->fd, w.idx, page_size());
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, gnt_dealloc(self->fd, w.idx, 1));
	EXPECT_FALSE(FIRED(&w));
	munmap(p, page_size());
	EXPECT_TRUE(FIRED(&w));
	remote_unmap(&w.r);
}

TEST_F(gnt, two_mmaps_release_after_both)
{
	struct watched w = { 0 };
	uint8_t *p, *q;

	ASSERT_EQ(0, watch_setup(_metadata, self->fd, &w, 1));
	p = gnt_map(self->fd, w.idx, page_size());
	q = gnt_map(self->fd, w.idx, page_size());
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_NE(MAP_FAILED, q);
	p[100] = 9;
	EXPECT_EQ(9, q[100]);
	ASSERT_EQ(0, gnt_dealloc(self->fd, w.idx, 1));
	munmap(p, page_size());
	EXPECT_FALSE(FIRED(&w));
	munmap(q, page_size());
	EXPECT_TRUE(FIRED(&w));
	remote_unmap(&w.r);
}

TEST_F(gnt, partial_munmap_and_mprotect)
{
	long ps = page_size();
	struct watched w = { 0 };
	uint8_t *p;

	ASSERT_EQ(0, watch_setup(_metadata, self->fd, &w, 4));
	p = gnt_map(self->fd, w.idx, 4 * ps);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, gnt_dealloc(self->fd, w.idx, 4));
	ASSERT_EQ(0, mprotect(p + ps, ps, PROT_READ));
	ASSERT_EQ(0, munmap(p, ps)); /* head, holding the watched page */
	EXPECT_FALSE(FIRED(&w));
	ASSERT_EQ(0, munmap(p + 2 * ps, ps)); /* middle */
	EXPECT_FALSE(FIRED(&w));
	p[3 * ps] = 1;
	ASSERT_EQ(0, munmap(p + 3 * ps, ps)); /* tail */
	EXPECT_FALSE(FIRED(&w));
	ASSERT_EQ(0, munmap(p + ps, ps)); /* the last piece */
	EXPECT_TRUE(FIRED(&w));
	remote_unmap(&w.r);
}

TEST_F(gnt, mremap_cases)
{
	long ps = page_size();
	struct watched w = { 0 };
	uint8_t *p, *q;

	ASSERT_EQ(0, watch_setup(_metadata, self->fd, &w, 3));
	p = gnt_map(self->fd, w.idx, 3 * ps);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, gnt_dealloc(self->fd, w.idx, 3));
	p[7] = 0x77;
	EXPECT_EQ(MAP_FAILED, mremap(p, 3 * ps, 4 * ps, 0));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(MAP_FAILED, mremap(p, 3 * ps, 3 * ps, MREMAP_MAYMOVE | MREMAP_DONTUNMAP));
	EXPECT_EQ(EINVAL, errno);
	q = mremap(p, 3 * ps, 2 * ps, 0); /* shrink */
	ASSERT_EQ(p, q);
	EXPECT_FALSE(FIRED(&w));
	q = mremap(p, 2 * ps, 2 * ps, MREMAP_MAYMOVE | MREMAP_FIXED,
		   mmap(NULL, 2 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	ASSERT_NE(MAP_FAILED, q);
	EXPECT_FALSE(FIRED(&w));
	EXPECT_EQ(0x77, q[7]);
	munmap(q, 2 * ps);
	EXPECT_TRUE(FIRED(&w));
	remote_unmap(&w.r);
}

TEST_F(gnt, fork_shares_mapping)
{
	struct watched w = { 0 };
	int to_child[2], to_parent[2];
	volatile uint8_t *p;
	char c;
	pid_t pid;
	int status;

	ASSERT_EQ(0, watch_setup(_metadata, self->fd, &w, 1));
	p = gnt_map(self->fd, w.idx, page_size());
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, gnt_dealloc(self->fd, w.idx, 1));
	ASSERT_EQ(0, pipe(to_child));
	ASSERT_EQ(0, pipe(to_parent));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		p[200] = 0xc1;
		if (write(to_parent[1], "x", 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(2);
		_exit(p[201] == 0xd1 ? 0 : 1);
	}
	ASSERT_EQ(1, read(to_parent[0], &c, 1));
	EXPECT_EQ(0xc1, p[200]);
	p[201] = 0xd1;
	munmap((void *)p, page_size());
	EXPECT_FALSE(FIRED(&w));
	ASSERT_EQ(1, write(to_child[1], "y", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_TRUE(FIRED(&w));
	remote_unmap(&w.r);
}

TEST_F(gnt, madv_dontfork)
{
	volatile uint8_t *p;
	uint64_t idx;
	pid_t pid;
	int status;

	ASSERT_EQ(0, gnt_alloc(self->fd, 1, 0, &idx, NULL));
	p = gnt_map(self->fd, idx, page_size());
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, madvise((void *)p, page_size(), MADV_DONTFORK));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		p[0] = 1; /* no mapping in the child */
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(SIGSEGV, WTERMSIG(status));
}

TEST_F(gnt, close_while_mapped)
{
	struct watched w = { 0 };
	uint8_t *p;

	ASSERT_EQ(0, watch_setup(_metadata, self->fd, &w, 1));
	p = gnt_map(self->fd, w.idx, page_size());
	ASSERT_NE(MAP_FAILED, p);
	close(self->fd);
	self->fd = open(GNTALLOC_DEV, O_RDWR);
	EXPECT_FALSE(FIRED(&w));
	p[1] = 3;
	munmap(p, page_size());
	EXPECT_TRUE(FIRED(&w));
	remote_unmap(&w.r);
}

TEST_F(gnt, close_fires_unmapped)
{
	struct watched w = { 0 };

	ASSERT_EQ(0, watch_setup(_metadata, self->fd, &w, 1));
	EXPECT_FALSE(FIRED(&w));
	close(self->fd);
	self->fd = open(GNTALLOC_DEV, O_RDWR);
	EXPECT_TRUE(FIRED(&w));
	remote_unmap(&w.r);
}

TEST_F(gnt, dup_and_scm_rights_share_state)
{
	struct watched w = { 0 };
	int dupfd, sv[2], got = -1;
	uint64_t idx;
	char cbuf[CMSG_SPACE(sizeof(int))], c = 'x';
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;

	ASSERT_EQ(0, watch_setup(_metadata, self->fd, &w, 1));
	dupfd = dup(self->fd);
	ASSERT_LE(0, dupfd);
	ASSERT_EQ(0, gnt_alloc(dupfd, 1, 0, &idx, NULL));
	EXPECT_EQ(page_size(), idx);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &dupfd, sizeof(int));
	ASSERT_EQ(1, sendmsg(sv[0], &msg, 0));
	close(dupfd);
	ASSERT_EQ(1, recvmsg(sv[1], &msg, 0));
	memcpy(&got, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof(int));
	ASSERT_LE(0, got);
	close(self->fd);
	EXPECT_FALSE(FIRED(&w));
	ASSERT_EQ(0, gnt_alloc(got, 1, 0, &idx, NULL));
	EXPECT_EQ(2 * page_size(), idx);
	close(got);
	close(sv[0]);
	close(sv[1]);
	EXPECT_TRUE(FIRED(&w));
	self->fd = open(GNTALLOC_DEV, O_RDWR);
	remote_unmap(&w.r);
}

TEST_F(gnt, notify_event_once)
{
	struct evtchn_loop e = { 0 };
	uint64_t idx;

	ASSERT_EQ(0, evtchn_loop_open(&e));
	ASSERT_EQ(0, gnt_alloc(self->fd, 2, 0, &idx, NULL));
	ASSERT_EQ(0, gnt_notify(self->fd, idx, UNMAP_NOTIFY_SEND_EVENT, e.port));
	/* Re-registering the same port holds one reference, not two. */
	ASSERT_EQ(0, gnt_notify(self->fd, idx, UNMAP_NOTIFY_SEND_EVENT, e.port));
	ASSERT_EQ(0, gnt_notify(self->fd, idx + page_size(), UNMAP_NOTIFY_SEND_EVENT, e.port));
	ASSERT_EQ(0, gnt_notify(self->fd, idx + page_size(), 0, 0)); /* cancelled */
	EXPECT_EQ(0, evtchn_loop_events(&e, 100));
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx, 2));
	EXPECT_EQ(1, evtchn_loop_events(&e, 1000));
	evtchn_loop_close(&e);
}

/* The notify's reference keeps the port alive after its evtchn fd is closed. */
TEST_F(gnt, notify_event_survives_evtchn_close)
{
	struct evtchn_loop e = { 0 };
	uint64_t idx;

	ASSERT_EQ(0, evtchn_loop_open(&e));
	ASSERT_EQ(0, gnt_alloc(self->fd, 1, 0, &idx, NULL));
	ASSERT_EQ(0, gnt_notify(self->fd, idx, UNMAP_NOTIFY_SEND_EVENT, e.port));
	close(e.lfd);
	e.lfd = -1;
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx, 1));
	EXPECT_EQ(1, evtchn_loop_events(&e, 1000));
	evtchn_loop_close(&e);
}

/*
 * Deferred freeing: a grant the remote still maps when the local side lets
 * go stays counted against the limit until the remote unmaps, then it is
 * freed promptly. Upstream stops counting it at once (B7).
 */
TEST_F(gnt, deferred_grant_counts_against_limit)
{
	struct remote_map r = { 0 };
	uint32_t ids[4];
	uint64_t idx;
	int ok = 0;

	ASSERT_EQ(0, set_limit(4));
	ASSERT_EQ(0, gnt_alloc(self->fd, 4, GNTALLOC_FLAG_WRITABLE, &idx, ids));
	ASSERT_EQ(0, remote_map(&r, ids, 1, 1));
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx, 4));
	r.addr[5] = 5; /* the remote's mapping is still valid */
	EXPECT_EQ(5, r.addr[5]);
	EXPECT_EQ(-ENOSPC, gnt_alloc(self->fd, 4, 0, NULL, NULL));
	EXPECT_EQ(0, gnt_alloc(self->fd, 3, 0, &idx, NULL));
	EXPECT_EQ(0, gnt_dealloc(self->fd, idx, 3));
	if (is_rust())
		EXPECT_EQ(1, rust_stat("deferred"));
	remote_unmap(&r);
	for (int i = 0; i < 40 && !ok; i++) {
		usleep(50000);
		ok = gnt_alloc(self->fd, 4, 0, NULL, NULL) == 0;
	}
	EXPECT_TRUE(ok) TH_LOG("the deferred grant was not freed within 2 s of the remote unmap");
	if (is_rust())
		EXPECT_EQ(0, rust_stat("deferred"));
}

/*
 * B5: when mmap fails while inserting pages (here: page-table allocation,
 * through fail_page_alloc), everything it took must be given back: the kernel
 * never calls ->close for a failed mmap. Upstream keeps the references taken
 * so far, and those grants can never be freed.
 */
#define FAIL_PAGE_ALLOC "/sys/kernel/debug/fail_page_alloc/"

static int fail_attr(const char *attr, const char *val)
{
	char path[128];
	int fd, ok;

	snprintf(path, sizeof(path), FAIL_PAGE_ALLOC "%s", attr);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ok = write(fd, val, strlen(val)) == (ssize_t)strlen(val);
	close(fd);
	return ok ? 0 : -1;
}

TEST_F(gnt, bug_b5_mmap_failure_releases)
{
	const size_t two_mb = 2UL << 20;
	long ps = page_size();
	uint64_t idx;
	int hit = 0;

	if (access(FAIL_PAGE_ALLOC "probability", W_OK))
		SKIP(return, "no fail_page_alloc in this kernel");
	ASSERT_EQ(0, set_limit(8));
	ASSERT_EQ(0, gnt_alloc(self->fd, 8, 0, &idx, NULL));
	ASSERT_EQ(0, fail_attr("verbose", "0"));
	ASSERT_EQ(0, fail_attr("task-filter", "Y"));
	ASSERT_EQ(0, fail_attr("ignore-gfp-wait", "N"));
	ASSERT_EQ(0, fail_attr("ignore-gfp-highmem", "N"));
	ASSERT_EQ(0, fail_attr("min-order", "0"));
	ASSERT_EQ(0, fail_attr("interval", "1"));
	ASSERT_EQ(0, fail_attr("probability", "100"));
	for (int attempt = 0; attempt < 16 && !hit; attempt++) {
		/* A 2 MB-aligned range with no page tables: inserting needs a new one. */
		uint8_t *area = mmap(NULL, 3 * two_mb, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		uint8_t *at = (uint8_t *)(((uintptr_t)area + two_mb - 1) & ~(two_mb - 1));
		void *p;

		ASSERT_NE(MAP_FAILED, area);
		munmap(area, 3 * two_mb);
		/* Warm the slab caches mmap uses, so the next page allocation is ours. */
		p = gnt_map(self->fd, idx, ps);
		ASSERT_NE(MAP_FAILED, p);
		munmap(p, ps);
		ASSERT_EQ(0, fail_attr("times", "1"));
		ASSERT_EQ(0, write_long("/proc/self/make-it-fail", 1));
		p = mmap(at, 8 * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE,
			 self->fd, idx);
		write_long("/proc/self/make-it-fail", 0);
		if (p == MAP_FAILED)
			hit = errno == ENOMEM;
		else
			munmap(p, 8 * ps);
	}
	fail_attr("probability", "0");
	fail_attr("times", "0");
	ASSERT_TRUE(hit) TH_LOG("could not make mmap fail with ENOMEM");
	/* Everything must be back: the 8 grants can be freed and allocated again. */
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx, 8));
	EXPECT_EQ(0, gnt_alloc(self->fd, 8, 0, NULL, NULL)) TH_LOG("grants leaked by the failed mmap");
}

/*
 * B1: an mmap spanning two allocations of file A, with an allocation of file
 * B in between, must release exactly A's grants at munmap: upstream walks the
 * global list and releases B's grant instead (use-after-free) and leaks A's.
 */
TEST_F(gnt, bug_b1_span_unmap_other_file)
{
	long ps = page_size();
	struct remote_map rb = { 0 }, ra = { 0 };
	uint32_t a0, b0, a1;
	uint64_t ia0, ib0, ia1;
	int fb;
	uint8_t *p;

	if (ps != XPAGE)
		SKIP(return, "4K pages only");
	fb = open(GNTALLOC_DEV, O_RDWR);
	ASSERT_LE(0, fb);
	ASSERT_EQ(0, gnt_alloc(self->fd, 1, GNTALLOC_FLAG_WRITABLE, &ia0, &a0));
	ASSERT_EQ(0, gnt_alloc(fb, 1, GNTALLOC_FLAG_WRITABLE, &ib0, &b0));
	ASSERT_EQ(0, gnt_alloc(self->fd, 1, GNTALLOC_FLAG_WRITABLE, &ia1, &a1));
	ASSERT_EQ(ia0 + ps, ia1);
	ASSERT_EQ(0, remote_map(&rb, &b0, 1, 1));
	ASSERT_EQ(0, remote_map(&ra, &a1, 1, 1));
	rb.addr[42] = 0xee;
	ra.addr[42] = 0xee;
	ASSERT_EQ(0, gnt_notify(fb, ib0 + 42, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	ASSERT_EQ(0, gnt_notify(self->fd, ia1 + 42, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	p = gnt_map(self->fd, ia0, 2 * ps);
	ASSERT_NE(MAP_FAILED, p);
	munmap(p, 2 * ps);
	if (rb.addr[42] == 0) {
		/*
		 * B's grant was released while B still lists it: touching B
		 * again would use freed memory. Park B in a process that
		 * never exits, so the bug cannot take the kernel down.
		 */
		if (fork() == 0) {
			for (;;)
				pause();
		}
		close(fb);
		fb = -1;
	}
	EXPECT_EQ(0xee, rb.addr[42]) TH_LOG("munmap of file A released file B's grant");
	close(self->fd);
	self->fd = open(GNTALLOC_DEV, O_RDWR);
	EXPECT_EQ(0, ra.addr[42]) TH_LOG("A's second grant was not released with file A");
	if (fb >= 0) {
		EXPECT_EQ(0, gnt_dealloc(fb, ib0, 1));
		EXPECT_EQ(0, rb.addr[42]);
		close(fb);
	}
	remote_unmap(&ra);
	remote_unmap(&rb);
}

/*
 * B2: when the grant table is full, ALLOC fails with ENOSPC and must leave
 * the accounting exact. Upstream takes one slot too many off its counter,
 * which wraps, and every later ALLOC fails until the module is reloaded.
 * Xen is booted with a small grant table (gnttab_max_frames) to get there.
 */
TEST_F(gnt, bug_b2_table_full_accounting)
{
	uint64_t total = 0;
	int ret = 0, fd2;

	ASSERT_EQ(0, set_limit(1 << 20));
	fd2 = open(GNTALLOC_DEV, O_RDWR);
	ASSERT_LE(0, fd2);
	while (total < 200000) {
		ret = gnt_alloc(fd2, 256, 0, NULL, NULL);
		if (ret)
			break;
		total += 256;
	}
	ASSERT_EQ(-ENOSPC, ret) TH_LOG("the grant table never filled up (%llu grants)",
				       (unsigned long long)total);
	TH_LOG("grant table full after %llu grants", (unsigned long long)total);
	/* Smaller requests fill the rest, then fail too. */
	while (gnt_alloc(fd2, 1, 0, NULL, NULL) == 0)
		total++;
	close(fd2);
	if (is_rust()) {
		EXPECT_LE(1, rust_stat("table_full"));
		EXPECT_EQ(0, rust_stat("in_use"));
	}
	ASSERT_EQ(0, set_limit(self->limit));
	EXPECT_EQ(0, gnt_alloc(self->fd, 1, 0, NULL, NULL));
	EXPECT_EQ(0, gnt_alloc(self->fd, self->limit - 1, 0, NULL, NULL));
	EXPECT_EQ(-ENOSPC, gnt_alloc(self->fd, 1, 0, NULL, NULL));
}

TEST_HARNESS_MAIN
