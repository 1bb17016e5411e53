// SPDX-License-Identifier: GPL-2.0
/*
 * Selftests for /dev/xen/gntalloc, run against both the C reference and the
 * Rust module, in a Xen dom0 that maps its own grants through gntdev.
 */
#define _GNU_SOURCE
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stddef.h>
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

/*
 * Ours: after a test, once its files are closed and its mappings gone, the
 * grants it made must all be gone too: the counters `in_use` (grants counted
 * against the limit, deferred ones included) and `deferred` (grants a remote
 * still maps) come back to what they were before it. Not at once: a gntdev
 * remote unmaps asynchronously, and ours retries deferred grants every
 * 100 ms; so this polls for up to 2 s, in 50 ms steps, each with a DEALLOC of
 * count 0 (EINVAL, but ours retries deferred grants on the way).
 */
static void expect_counters_back(struct __test_metadata *_metadata, long in_use, long deferred)
{
	long now_in_use, now_deferred;
	int fd = open(GNTALLOC_DEV, O_RDWR);

	for (int i = 0;; i++) {
		now_in_use = rust_stat("in_use");
		now_deferred = rust_stat("deferred");
		if ((now_in_use == in_use && now_deferred == deferred) || i == 40)
			break;
		if (fd >= 0)
			gnt_dealloc(fd, 0, 0);
		usleep(50000);
	}
	if (fd >= 0)
		close(fd);
	EXPECT_EQ(in_use, now_in_use) TH_LOG("grants in use: %ld before the test, %ld 2 s after (%s)",
					     in_use, now_in_use,
					     now_in_use > in_use ? "left behind" :
					     "fewer: released from before it, or miscounted");
	EXPECT_EQ(deferred, now_deferred) TH_LOG("deferred grants: %ld before the test, %ld 2 s after",
						 deferred, now_deferred);
}

/*
 * Every test gets a fresh file and the default limit back afterwards; on
 * ours, the test must leave no grant behind (expect_counters_back()).
 */
FIXTURE(gnt)
{
	int fd;
	long limit;
	long in_use, deferred; /* ours: the counters at setup; -1 on the C reference */
};

FIXTURE_SETUP(gnt)
{
	self->fd = open(GNTALLOC_DEV, O_RDWR);
	ASSERT_LE(0, self->fd) TH_LOG("open %s: %s", GNTALLOC_DEV, strerror(errno));
	self->limit = get_limit();
	ASSERT_LT(0, self->limit);
	self->in_use = self->deferred = -1;
	if (is_rust()) {
		self->in_use = rust_stat("in_use");
		self->deferred = rust_stat("deferred");
		ASSERT_LE(0, self->in_use) TH_LOG("no debugfs counters");
		ASSERT_LE(0, self->deferred) TH_LOG("no debugfs counters");
	}
}

/*
 * The fixture's file is closed first: grants a test leaves in it are
 * released with it, legitimately. Skipped after a failure: a failed ASSERT
 * runs this while the test's mappings and files are still there.
 */
FIXTURE_TEARDOWN(gnt)
{
	close(self->fd);
	set_limit(self->limit);
	if (self->in_use >= 0 && _metadata->exit_code != KSFT_FAIL)
		expect_counters_back(_metadata, self->in_use, self->deferred);
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

/*
 * The header is written back whole (padding included), then the ids. The
 * buffer is prefilled with a distinct value in every byte, and each id slot
 * with the ref of a grant that another file holds meanwhile: a plausible ref
 * (>= 8) that cannot be handed out again while it lives, so that an id slot
 * the kernel did not write (or wrote the wrong bytes to) cannot pass for a
 * new grant's ref.
 */
static void alloc_writeback_prefill(uint8_t *buf, size_t len, const uint32_t *live, uint32_t n)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = 0xc0 + i;
	memcpy(buf + offsetof(struct ioctl_gntalloc_alloc_gref, gref_ids), live, 4 * n);
}

TEST_F(gnt, alloc_writeback)
{
	uint8_t buf[40];
	struct ioctl_gntalloc_alloc_gref *op = (void *)buf;
	uint32_t live[3], ids[3];
	int fd2;

	fd2 = open(GNTALLOC_DEV, O_RDWR);
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, gnt_alloc(fd2, 3, 0, NULL, live));
	for (int k = 0; k < 3; k++) {
		ASSERT_LE(8, live[k]);
		ASSERT_NE(live[k], live[(k + 1) % 3]);
	}

	alloc_writeback_prefill(buf, sizeof(buf), live, 1);
	op->domid = 0;
	op->flags = GNTALLOC_FLAG_WRITABLE;
	op->count = 1;
	ASSERT_EQ(0, ioctl(self->fd, IOCTL_GNTALLOC_ALLOC_GREF, op));
	EXPECT_EQ(0, op->domid);
	EXPECT_EQ(GNTALLOC_FLAG_WRITABLE, op->flags);
	EXPECT_EQ(1, op->count);
	EXPECT_EQ(0, op->index);
	memcpy(&ids[0], op->gref_ids, 4);
	for (int i = 20; i < 40; i++) {
		EXPECT_EQ((uint8_t)(0xc0 + i), buf[i]) TH_LOG("byte %d changed", i);
	}

	alloc_writeback_prefill(buf, sizeof(buf), live + 1, 2);
	op->domid = 0;
	op->flags = 0;
	op->count = 2;
	ASSERT_EQ(0, ioctl(self->fd, IOCTL_GNTALLOC_ALLOC_GREF, op));
	EXPECT_EQ(0, op->domid);
	EXPECT_EQ(0, op->flags);
	EXPECT_EQ(2, op->count);
	EXPECT_EQ(page_size(), op->index);
	memcpy(&ids[1], op->gref_ids_flex, 2 * 4);
	for (int i = 24; i < 40; i++) {
		EXPECT_EQ((uint8_t)(0xc0 + i), buf[i]) TH_LOG("byte %d changed", i);
	}

	/* Three live grants: three refs, none of them another live grant's. */
	for (int k = 0; k < 3; k++) {
		EXPECT_LE(8, ids[k]) TH_LOG("id %d", k);
		EXPECT_NE(ids[k], ids[(k + 1) % 3]) TH_LOG("ids %d and %d", k, (k + 1) % 3);
		for (int j = 0; j < 3; j++) {
			EXPECT_NE(live[j], ids[k]) TH_LOG("id %d: a prefilled live ref", k);
		}
	}
	close(fd2);
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
	/*
	 * Grants of 0, 1 and 2 were allocated before at indices 0, 0 and
	 * grant_span(1): the 3 stayed right after (3 * ps on 4K kernels).
	 */
	EXPECT_EQ(0, gnt_dealloc(self->fd, grant_span(1) + grant_span(2), 3));
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

/*
 * Qubes OS writes 2^30 to `limit`. Then an ALLOC far larger than the machine must fail
 * cleanly, ENOMEM with nothing allocated, no index consumed and no kernel warning (the run's
 * splat check): whether its bookkeeping (2^30 grants: 4 bytes of ids and a slot each) or its
 * pages (2^22 grants: 16 GiB) are what cannot be had. Upstream asks kcalloc() for 4 bytes per
 * grant first, which warns in the page allocator above its largest order: a warning fails the
 * whole run, so the C reference does not run this (selftests/expected-skips).
 */
TEST_F(gnt, huge_alloc_fails_cleanly)
{
	/* Small buffers: the kernel must refuse before it writes any id. */
	struct ioctl_gntalloc_alloc_gref op = { .count = 1U << 30 };
	uint64_t idx = 0;

	if (!is_rust())
		SKIP(return, "upstream's kcalloc() of the ids warns in the page allocator");
	ASSERT_EQ(0, set_limit(1L << 30));
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_GNTALLOC_ALLOC_GREF, &op));
	EXPECT_EQ(ENOMEM, errno);
	op.count = 1U << 22;
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_GNTALLOC_ALLOC_GREF, &op));
	EXPECT_EQ(ENOMEM, errno);
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
	uint64_t a, b, c, d;
	int fd2;

	ASSERT_EQ(0, gnt_alloc(self->fd, 1, 0, &a, NULL));
	ASSERT_EQ(0, gnt_alloc(self->fd, 2, 0, &b, NULL));
	ASSERT_EQ(0, gnt_dealloc(self->fd, a, 1));
	ASSERT_EQ(0, gnt_alloc(self->fd, 1, 0, &c, NULL));
	EXPECT_EQ(0, a);
	EXPECT_EQ(grant_span(1), b); /* ps */
	EXPECT_EQ(grant_span(1) + grant_span(2), c); /* 3 * ps on 4K, 2 * ps on 64K */
	fd2 = open(GNTALLOC_DEV, O_RDWR);
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, gnt_alloc(fd2, 1, 0, &d, NULL));
	EXPECT_EQ(0, d);
	close(fd2);
}

TEST_F(gnt, dealloc_errors)
{
	uint64_t idx;
	int fd2;

	ASSERT_EQ(0, gnt_alloc(self->fd, 2, 0, &idx, NULL));
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, idx, 0));
	/* The slot after the last grant (padding of the page on 64K kernels). */
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, idx + 2 * XPAGE, 1));
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, idx + 1, 1));
	fd2 = open(GNTALLOC_DEV, O_RDWR);
	ASSERT_LE(0, fd2);
	EXPECT_EQ(-EINVAL, gnt_dealloc(fd2, idx, 1));
	close(fd2);
	EXPECT_EQ(0, gnt_dealloc(self->fd, idx, 2));
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, idx, 1));
}

/*
 * A DEALLOC may span allocations whose slots are contiguous. On 64K kernels
 * only an allocation that fills its last page is followed by a contiguous
 * one: `a` is 3 pages' worth of grants (3 on 4K kernels).
 */
TEST_F(gnt, dealloc_subrange_and_span)
{
	long ps = page_size(), gpp = grants_per_page();
	uint32_t na = 3 * gpp;
	uint64_t a, b, c, d;

	ASSERT_EQ(0, gnt_alloc(self->fd, na, 0, &a, NULL));
	ASSERT_EQ(0, gnt_alloc(self->fd, 2, 0, &b, NULL));
	ASSERT_EQ(b, a + 3 * ps);
	/* All of a but its first grant, and the first of b. */
	EXPECT_EQ(0, gnt_dealloc(self->fd, a + XPAGE, na));
	EXPECT_EQ(0, gnt_dealloc(self->fd, a, 1));
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, a + 2 * XPAGE, 1)); /* went with the span */
	EXPECT_EQ(0, gnt_dealloc(self->fd, b + XPAGE, 1));
	if (gpp > 1) {
		/* Padding slots separate c's grants from d's: no span across them. */
		ASSERT_EQ(0, gnt_alloc(self->fd, 3, 0, &c, NULL));
		ASSERT_EQ(0, gnt_alloc(self->fd, 1, 0, &d, NULL));
		ASSERT_EQ(d, c + ps);
		EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, c, 4));
		EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, c + 2 * XPAGE, 2));
		EXPECT_EQ(0, gnt_dealloc(self->fd, c, 3));
		EXPECT_EQ(0, gnt_dealloc(self->fd, d, 1));
	}
}

/* A range that runs past the end or over a hole removes nothing. */
TEST_F(gnt, dealloc_is_atomic)
{
	uint64_t a;

	ASSERT_EQ(0, gnt_alloc(self->fd, 4, 0, &a, NULL));
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, a, 5));
	ASSERT_EQ(0, gnt_dealloc(self->fd, a + 2 * XPAGE, 1));
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, a, 4));
	EXPECT_EQ(0, gnt_dealloc(self->fd, a, 2));
	EXPECT_EQ(0, gnt_dealloc(self->fd, a + 3 * XPAGE, 1));
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

/*
 * Every 4K frame of a mapping gets a marker of its own: 32-bit word w of
 * frame k (the grant's number in its allocation) under `seed`. No byte of a
 * marker is 0, so that a watched notify byte stays set. Frames < 128.
 */
static uint32_t frame_marker(uint32_t seed, uint32_t frame, uint32_t word)
{
	return 0x80808080u | (seed & 0x7f) << 24 | (frame & 0x7f) << 16 | (word >> 7 & 0x7f) << 8 |
	       (word & 0x7f);
}

/* Writes the markers of frames first .. first + n - 1 to `at`, frame first's start. */
static void frames_fill(volatile uint8_t *at, uint32_t first, uint32_t n, uint32_t seed)
{
	volatile uint32_t *w = (volatile uint32_t *)at;

	for (uint32_t k = 0; k < n; k++)
		for (uint32_t i = 0; i < XPAGE / 4; i++)
			w[k * (XPAGE / 4) + i] = frame_marker(seed, first + k, i);
}

/* The first of those frames at `at` that does not hold its markers, or -1. */
static long frames_check(const volatile uint8_t *at, uint32_t first, uint32_t n, uint32_t seed)
{
	const volatile uint32_t *w = (const volatile uint32_t *)at;

	for (uint32_t k = 0; k < n; k++)
		for (uint32_t i = 0; i < XPAGE / 4; i++)
			if (w[k * (XPAGE / 4) + i] != frame_marker(seed, first + k, i))
				return first + k;
	return -1;
}

/* Offset of the first byte of [at, at + len) that is not 0, or -1. */
static long first_nonzero(const volatile uint8_t *at, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (at[i])
			return i;
	return -1;
}

/*
 * How many of the 4K frames of [at, at + len) the process can read (with
 * `write_too`: read and write), probed at each frame's first byte by having
 * the kernel copy it through a pipe: a copy from or to memory not mapped that
 * way fails with EFAULT instead of faulting the process. The write probe puts
 * back the byte that was there. -1 if a probe failed otherwise.
 */
static long frames_accessible(volatile uint8_t *at, size_t len, int write_too)
{
	long n = 0;
	int pfd[2];
	char c;

	if (pipe(pfd))
		return -1;
	for (size_t off = 0; off < len && n >= 0; off += XPAGE) {
		ssize_t r = write(pfd[1], (const void *)(at + off), 1);

		if (r < 0 && errno == EFAULT)
			continue; /* not readable */
		if (r != 1) {
			n = -1;
			break;
		}
		/* The byte is in the pipe: back into the frame, or drained. */
		r = read(pfd[0], write_too ? (void *)(at + off) : &c, 1);
		if (r == 1)
			n++;
		else if (r >= 0 || errno != EFAULT || read(pfd[0], &c, 1) != 1)
			n = -1; /* but EFAULT: not writable, and the byte drained */
	}
	close(pfd[0]);
	close(pfd[1]);
	return n;
}

/*
 * Page ranges: the allocations are whole pages of grants (3 and 1 on 4K
 * kernels), so that any page-aligned sub-range is a set of whole grants. Every
 * 4K frame gets its own marker, written through one mapping and read back,
 * all of it, through every other mapping of that frame; frames stay zeroed
 * until written and keep their bytes across mappings while their grants live.
 * On 64K kernels, a few grants and their page's padding, and a page with a
 * deallocated grant, too.
 */
TEST_F(gnt, mmap_ranges)
{
	long ps = page_size(), gpp = grants_per_page();
	uint8_t *all, *mid, *tail, *p;
	uint64_t a, b;

	ASSERT_EQ(0, gnt_alloc(self->fd, 3 * gpp, 0, &a, NULL));
	ASSERT_EQ(0, gnt_alloc(self->fd, gpp, 0, &b, NULL));
	ASSERT_EQ(a + 3 * ps, b);
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
	EXPECT_EQ(-1, first_nonzero(all, 4 * ps)) TH_LOG("pages must be zeroed");
	/* Written through the whole mapping, seen through the ranges... */
	frames_fill(all, 0, 4 * gpp, 1);
	EXPECT_EQ(-1, frames_check(all, 0, 4 * gpp, 1));
	EXPECT_EQ(-1, frames_check(mid, gpp, gpp, 1));
	EXPECT_EQ(-1, frames_check(tail, 2 * gpp, 2 * gpp, 1));
	/* ...and written through the ranges, seen through the whole mapping. */
	frames_fill(mid, gpp, gpp, 2);
	frames_fill(tail, 2 * gpp, 2 * gpp, 3);
	EXPECT_EQ(-1, frames_check(all, 0, gpp, 1));
	EXPECT_EQ(-1, frames_check(all + ps, gpp, gpp, 2));
	EXPECT_EQ(-1, frames_check(all + 2 * ps, 2 * gpp, 2 * gpp, 3));
	munmap(all, 4 * ps);
	munmap(mid, ps);
	munmap(tail, 2 * ps);
	/* A hole after DEALLOC; the pages around it keep their grants and bytes. */
	ASSERT_EQ(0, gnt_dealloc(self->fd, a + ps, gpp));
	EXPECT_EQ(MAP_FAILED, gnt_map(self->fd, a, 2 * ps));
	EXPECT_EQ(ENOENT, errno);
	p = gnt_map(self->fd, a + 2 * ps, 2 * ps);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(-1, frames_check(p, 2 * gpp, 2 * gpp, 3));
	munmap(p, 2 * ps);
	p = gnt_map(self->fd, a, ps);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(-1, frames_check(p, 0, gpp, 1));
	munmap(p, ps);
	if (gpp > 1) {
		uint64_t c;

		/* 3 grants: one page, its padding mapped along, nothing after it. */
		ASSERT_EQ(0, gnt_alloc(self->fd, 3, 0, &c, NULL));
		EXPECT_EQ(MAP_FAILED, gnt_map(self->fd, c, 2 * ps));
		EXPECT_EQ(ENOENT, errno);
		p = gnt_map(self->fd, c, ps);
		ASSERT_NE(MAP_FAILED, p);
		EXPECT_EQ(-1, first_nonzero(p, ps)) TH_LOG("grants and padding must be zeroed");
		frames_fill(p, 0, 3, 4);
		munmap(p, ps);
		p = gnt_map(self->fd, c, ps);
		ASSERT_NE(MAP_FAILED, p);
		EXPECT_EQ(-1, frames_check(p, 0, 3, 4));
		munmap(p, ps);
		/* A page missing one of its grants, in the middle or first, cannot be mapped. */
		ASSERT_EQ(0, gnt_dealloc(self->fd, c + XPAGE, 1));
		EXPECT_EQ(MAP_FAILED, gnt_map(self->fd, c, ps));
		EXPECT_EQ(ENOENT, errno);
		ASSERT_EQ(0, gnt_dealloc(self->fd, c, 1));
		EXPECT_EQ(MAP_FAILED, gnt_map(self->fd, c, ps));
		EXPECT_EQ(ENOENT, errno);
	}
}

/*
 * Share through gntalloc, map back through gntdev, both directions: grant k
 * is the 4K frame at k * XPAGE of the local mapping (both in one page on 64K
 * kernels).
 */
TEST_F(gnt, gntdev_round_trip)
{
	REQUIRE_REMOTE();
	struct remote_map r = { 0 };
	uint32_t ids[2];
	uint64_t idx;
	uint8_t *local;

	ASSERT_EQ(0, gnt_alloc(self->fd, 2, GNTALLOC_FLAG_WRITABLE, &idx, ids));
	local = gnt_map(self->fd, idx, grant_span(2));
	ASSERT_NE(MAP_FAILED, local);
	strcpy((char *)local, "hello from gntalloc");
	strcpy((char *)local + XPAGE, "second page");
	ASSERT_EQ(0, remote_map(&r, ids, 2, 1));
	EXPECT_STREQ("hello from gntalloc", (const char *)remote_frame(&r, 0));
	EXPECT_STREQ("second page", (const char *)remote_frame(&r, 1));
	strcpy((char *)remote_frame(&r, 1) + 100, "written by the remote");
	EXPECT_STREQ("written by the remote", (const char *)local + XPAGE + 100);
	/* The libxengnttab pattern: DEALLOC at once, the mapping keeps the grants. */
	EXPECT_EQ(0, gnt_dealloc(self->fd, idx, 2));
	local[0] = 'H';
	EXPECT_EQ('H', remote_frame(&r, 0)[0]);
	munmap(local, grant_span(2));
	close(self->fd);
	self->fd = open(GNTALLOC_DEV, O_RDWR);
	/* The remote keeps its mapping after the local side is gone. */
	EXPECT_EQ('H', remote_frame(&r, 0)[0]);
	remote_unmap(&r);
}

TEST_F(gnt, readonly_grant)
{
	REQUIRE_REMOTE();
	struct remote_map r = { 0 };
	uint32_t id;
	uint64_t idx;

	ASSERT_EQ(0, gnt_alloc(self->fd, 1, 0xfffe, &idx, &id)); /* unknown bits ignored */
	EXPECT_NE(0, remote_map(&r, &id, 1, 1));
	ASSERT_EQ(0, remote_map(&r, &id, 1, 0));
	EXPECT_EQ(0, remote_frame(&r, 0)[0]);
	remote_unmap(&r);
}

TEST_F(gnt, dealloc_while_mapped)
{
	long ps = page_size();
	uint64_t idx;
	uint8_t *p;

	ASSERT_EQ(0, gnt_alloc(self->fd, 2, 0, &idx, NULL));
	p = gnt_map(self->fd, idx, grant_span(2));
	ASSERT_NE(MAP_FAILED, p);
	p[0] = 1;
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx, 2));
	p[XPAGE] = 2;
	EXPECT_EQ(1, p[0]);
	EXPECT_EQ(2, p[XPAGE]);
	EXPECT_EQ(MAP_FAILED, gnt_map(self->fd, idx, ps));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_EQ(-ENOENT, gnt_notify(self->fd, idx, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	EXPECT_EQ(-ENOENT, gnt_notify(self->fd, idx + XPAGE, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	munmap(p, grant_span(2));
}

TEST_F(gnt, notify_errno_precedence)
{
	int kernel_port = -1;
	uint64_t idx;

	ASSERT_EQ(0, gnt_alloc(self->fd, 1, 0, &idx, NULL));
	EXPECT_EQ(-ENOENT, gnt_notify(self->fd, idx + 64 * page_size(), 0x80, 0));
	EXPECT_EQ(-EINVAL, gnt_notify(self->fd, idx, 0x80, 0));
	EXPECT_EQ(-EINVAL, gnt_notify(self->fd, idx, UNMAP_NOTIFY_SEND_EVENT, 0xfffffff0));
	/*
	 * A port the kernel bound for itself (a VIRQ: the console's, a timer's) is not
	 * user space's to be notified on: evtchn_get() refuses it.
	 */
	for (uint32_t port = 1; port < 1024 && kernel_port < 0; port++)
		if (evtchn_status(port) == EVTCHN_STATE_VIRQ)
			kernel_port = port;
	ASSERT_LT(0, kernel_port) TH_LOG("no port bound to a VIRQ by the kernel found");
	EXPECT_EQ(-EINVAL, gnt_notify(self->fd, idx, UNMAP_NOTIFY_SEND_EVENT, kernel_port))
		TH_LOG("kernel-bound port %d accepted", kernel_port);
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
	REQUIRE_REMOTE();
	struct remote_map r = { 0 };
	volatile uint8_t *f0, *f1, *f2;
	uint32_t ids[3];
	uint64_t idx;
	uint8_t *p;

	ASSERT_EQ(0, gnt_alloc(self->fd, 3, GNTALLOC_FLAG_WRITABLE, &idx, ids));
	p = gnt_map(self->fd, idx, grant_span(3));
	ASSERT_NE(MAP_FAILED, p);
	memset(p, 0x5a, 3 * XPAGE);
	munmap(p, grant_span(3));
	ASSERT_EQ(0, remote_map(&r, ids, 3, 1));
	f0 = remote_frame(&r, 0);
	f1 = remote_frame(&r, 1);
	f2 = remote_frame(&r, 2);
	/* Byte `off` of grant k is at idx + k * XPAGE + off. */
	ASSERT_EQ(0, gnt_notify(self->fd, idx + 0, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	ASSERT_EQ(0, gnt_notify(self->fd, idx + XPAGE + 4095, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	ASSERT_EQ(0, gnt_notify(self->fd, idx + 2 * XPAGE + 1234, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	EXPECT_EQ(0x5a, f0[0]);
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx, 1));
	EXPECT_EQ(0, f0[0]);
	EXPECT_EQ(0x5a, f0[1]);
	EXPECT_EQ(0x5a, f1[4095]);
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx + XPAGE, 2));
	EXPECT_EQ(0, f1[4095]);
	EXPECT_EQ(0x5a, f1[4094]);
	EXPECT_EQ(0, f2[1234]);
	EXPECT_EQ(0x5a, f2[1233]);
	EXPECT_EQ(0x5a, f2[1235]);
	/* Still mapped by the remote after the local side let go. */
	f2[0] = 7;
	EXPECT_EQ(7, f2[0]);
	remote_unmap(&r);
}

/*
 * A SET_UNMAP_NOTIFY that finds no memory leaves the slot's notification as it
 * was: ours keeps an armed notification in an allocation of its own, so a slab
 * allocation failing there makes the call fail with ENOMEM, and the byte set
 * before is still the one cleared; upstream allocates nothing there, so it
 * succeeds and the new byte is cleared. Either way, exactly one of the two.
 *
 * The injected failure is not always ours to take: on the arm64 KASAN + lockdep
 * kernel another slab allocation of the task, between fault_task(1) and the
 * driver's, took it every time (failslab's times went to 0, the call succeeded,
 * nothing printed: a __GFP_NOWARN one). So the failure moves along the task's
 * allocations, `space` bytes at a time, until a call fails or the walk ends;
 * each call that succeeded armed the new byte, and the old one is set again
 * before the next. Ours must fail somewhere on the walk; C never does.
 */
TEST_F(gnt, notify_slab_failure_keeps_old)
{
	REQUIRE_REMOTE();
	ASSERT_TRUE(fault_available("failslab")) TH_LOG("no failslab in this kernel");
	struct remote_map r = { 0 };
	volatile uint8_t *f;
	int ret = 0, space;
	uint32_t id;
	uint64_t idx;
	uint8_t *p;

	ASSERT_EQ(0, gnt_alloc(self->fd, 1, GNTALLOC_FLAG_WRITABLE, &idx, &id));
	p = gnt_map(self->fd, idx, grant_span(1));
	ASSERT_NE(MAP_FAILED, p);
	memset(p, 0x5a, XPAGE);
	munmap(p, grant_span(1));
	ASSERT_EQ(0, remote_map(&r, &id, 1, 1));
	f = remote_frame(&r, 0);
	for (space = 0; space <= 2048; space += 8) {
		ASSERT_EQ(0, gnt_notify(self->fd, idx + 10, UNMAP_NOTIFY_CLEAR_BYTE, 0));
		ASSERT_EQ(0, fault_arm("failslab", space));
		fault_task(1);
		ret = gnt_notify(self->fd, idx + 20, UNMAP_NOTIFY_CLEAR_BYTE, 0);
		fault_task(0);
		fault_disarm("failslab");
		if (ret)
			break;
	}
	if (is_rust()) {
		EXPECT_EQ(-ENOMEM, ret) TH_LOG("no failure reached the driver's allocation");
	} else {
		EXPECT_EQ(0, ret);
	}
	if (ret)
		TH_LOG("SET_UNMAP_NOTIFY failed with %d at %d bytes of slab", ret, space);
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx, 1));
	EXPECT_EQ(ret ? 0 : 0x5a, f[10]) TH_LOG("SET_UNMAP_NOTIFY returned %d", ret);
	EXPECT_EQ(ret ? 0x5a : 0, f[20]) TH_LOG("SET_UNMAP_NOTIFY returned %d", ret);
	EXPECT_EQ(0x5a, f[11]);
	remote_unmap(&r);
}

/*
 * Fixture for lifetime tests: the first grant of an allocation carries an
 * unmap notification, and the test watches for it to fire. The watcher is
 * the remote (a gntdev mapping that sees byte 42 cleared) where gntdev can
 * map our own grants; elsewhere (PVH dom0, see REQUIRE_REMOTE) it is the
 * other end of an event channel that the notification signals.
 */
struct watched {
	struct remote_map r;
	struct evtchn_loop e;
	int by_event, fired;
	uint64_t idx;
	uint32_t id;
};

/* Allocates `count` writable grants and watches the first. */
static int watch_setup(struct __test_metadata *_metadata, int fd, struct watched *w,
		       uint32_t count)
{
	uint32_t *ids = calloc(count, sizeof(*ids));
	uint8_t *p;
	int ret;

	w->by_event = getenv("XGR_NO_GNTDEV") != NULL;
	if (!ids)
		return -1;
	ret = gnt_alloc(fd, count, GNTALLOC_FLAG_WRITABLE, &w->idx, ids);
	w->id = ids[0];
	free(ids);
	if (ret)
		return -1;
	if (w->by_event) {
		if (evtchn_loop_open(&w->e))
			return -1;
		return gnt_notify(fd, w->idx, UNMAP_NOTIFY_SEND_EVENT, w->e.port);
	}
	/* The first page holds grant 0 at offset 0. */
	p = gnt_map(fd, w->idx, page_size());
	if (p == MAP_FAILED)
		return -1;
	p[42] = 0xee;
	munmap(p, page_size());
	if (remote_map(&w->r, &w->id, 1, 1))
		return -1;
	return gnt_notify(fd, w->idx + 42, UNMAP_NOTIFY_CLEAR_BYTE, 0);
}

/* Whether the notification has fired (it fires synchronously, before the syscall returns). */
static int fired(struct watched *w)
{
	if (!w->by_event)
		return remote_frame(&w->r, 0)[42] == 0;
	if (!w->fired)
		w->fired = evtchn_loop_events(&w->e, 100) > 0;
	return w->fired;
}

static void watch_done(struct watched *w)
{
	if (w->by_event)
		evtchn_loop_close(&w->e);
	else
		remote_unmap(&w->r);
}

/* watch_setup() of one page, then mapped and deallocated: the mapping alone holds it. */
static void *watched_mapping(struct __test_metadata *_metadata, int fd, struct watched *w)
{
	void *p;

	if (watch_setup(_metadata, fd, w, 1))
		return MAP_FAILED;
	p = gnt_map(fd, w->idx, page_size());
	if (p != MAP_FAILED && gnt_dealloc(fd, w->idx, 1)) {
		munmap(p, page_size());
		return MAP_FAILED;
	}
	return p;
}

TEST_F(gnt, notify_at_last_munmap)
{
	struct watched w = { 0 };
	uint8_t *p;

	p = watched_mapping(_metadata, self->fd, &w);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_FALSE(fired(&w));
	munmap(p, page_size());
	EXPECT_TRUE(fired(&w));
	watch_done(&w);
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
	EXPECT_FALSE(fired(&w));
	munmap(q, page_size());
	EXPECT_TRUE(fired(&w));
	watch_done(&w);
}

/*
 * Mappings of one ALLOC's three pages, made in turn and at once with other
 * ranges: [0,2), then [1,3) while it lives, then [0,3) once the first is gone.
 * Ours keeps the first mapping of a batch in a record the batch carries,
 * reused once free, and gives a mapping made meanwhile an object of its own:
 * no mix of the two may release a grant while a mapping still covers it, nor
 * keep it after the last. Grant 0 is watched, and page 1's grant clears a byte
 * of its own page when released.
 */
TEST_F(gnt, mappings_in_turn_and_at_once)
{
	size_t ps = page_size();
	uint32_t count = 3 * (ps / 4096);
	struct watched w = { 0 };
	uint8_t *a, *b, *c;

	ASSERT_EQ(0, watch_setup(_metadata, self->fd, &w, count));
	a = gnt_map(self->fd, w.idx, 2 * ps);
	ASSERT_NE(MAP_FAILED, a);
	b = gnt_map(self->fd, w.idx + ps, 2 * ps);
	ASSERT_NE(MAP_FAILED, b);
	a[ps + 100] = 0x5a;
	EXPECT_EQ(0x5a, b[100]);
	ASSERT_EQ(0, gnt_notify(self->fd, w.idx + ps + 100, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	munmap(a, 2 * ps);
	c = gnt_map(self->fd, w.idx, 3 * ps);
	ASSERT_NE(MAP_FAILED, c);
	EXPECT_EQ(0x5a, c[ps + 100]);
	c[2 * ps + 9] = 0xa5;
	EXPECT_EQ(0xa5, b[ps + 9]);
	ASSERT_EQ(0, gnt_dealloc(self->fd, w.idx, count));
	munmap(b, 2 * ps);
	/* c still maps every page: nothing is released. */
	EXPECT_EQ(0x5a, c[ps + 100]);
	EXPECT_FALSE(fired(&w));
	munmap(c, 3 * ps);
	EXPECT_TRUE(fired(&w));
	watch_done(&w);
}

/*
 * Four pages of grants (4 on 4K kernels), split into four VMAs by an mprotect
 * and partial munmaps. Every 4K frame carries its own marker: each remaining
 * piece keeps showing its own frames, the read-only piece takes no writes,
 * the unmapped pieces are gone, and nothing is released (the watched grant 0
 * is not notified) until the last piece goes.
 */
TEST_F(gnt, partial_munmap_and_mprotect)
{
	long ps = page_size(), gpp = grants_per_page();
	uint32_t n = 4 * gpp;
	struct watched w = { 0 };
	uint8_t *p;

	ASSERT_EQ(0, watch_setup(_metadata, self->fd, &w, n));
	p = gnt_map(self->fd, w.idx, 4 * ps);
	ASSERT_NE(MAP_FAILED, p);
	frames_fill(p, 0, n, 1); /* no byte 0: the watched byte stays set */
	if (!w.by_event) {
		EXPECT_EQ(-1, frames_check(remote_frame(&w.r, 0), 0, 1, 1)) TH_LOG("remote's grant 0");
	}
	ASSERT_EQ(0, gnt_dealloc(self->fd, w.idx, n));
	ASSERT_EQ(0, mprotect(p + ps, ps, PROT_READ));
	EXPECT_EQ(-1, frames_check(p, 0, n, 1));
	EXPECT_EQ(gpp, frames_accessible(p, ps, 1));
	EXPECT_EQ(0, frames_accessible(p + ps, ps, 1)) TH_LOG("the read-only piece took writes");
	EXPECT_EQ(2 * gpp, frames_accessible(p + 2 * ps, 2 * ps, 1));
	ASSERT_EQ(0, munmap(p, ps)); /* head, holding the watched page */
	EXPECT_EQ(0, frames_accessible(p, ps, 0));
	EXPECT_FALSE(fired(&w));
	EXPECT_EQ(-1, frames_check(p + ps, gpp, 3 * gpp, 1));
	ASSERT_EQ(0, munmap(p + 2 * ps, ps)); /* middle */
	EXPECT_EQ(0, frames_accessible(p + 2 * ps, ps, 0));
	EXPECT_FALSE(fired(&w));
	EXPECT_EQ(-1, frames_check(p + ps, gpp, gpp, 1));
	EXPECT_EQ(-1, frames_check(p + 3 * ps, 3 * gpp, gpp, 1));
	frames_fill(p + 3 * ps, 3 * gpp, gpp, 2);
	EXPECT_EQ(-1, frames_check(p + 3 * ps, 3 * gpp, gpp, 2));
	ASSERT_EQ(0, munmap(p + 3 * ps, ps)); /* tail */
	EXPECT_EQ(0, frames_accessible(p + 3 * ps, ps, 0));
	EXPECT_FALSE(fired(&w));
	EXPECT_EQ(-1, frames_check(p + ps, gpp, gpp, 1));
	EXPECT_EQ(gpp, frames_accessible(p + ps, ps, 0));
	EXPECT_EQ(0, frames_accessible(p + ps, ps, 1));
	ASSERT_EQ(0, munmap(p + ps, ps)); /* the last piece */
	EXPECT_TRUE(fired(&w));
	watch_done(&w);
}

/* Three pages of grants (3 on 4K kernels). */
TEST_F(gnt, mremap_cases)
{
	long ps = page_size();
	uint32_t n = 3 * grants_per_page();
	struct watched w = { 0 };
	uint8_t *p, *q;

	ASSERT_EQ(0, watch_setup(_metadata, self->fd, &w, n));
	p = gnt_map(self->fd, w.idx, 3 * ps);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, gnt_dealloc(self->fd, w.idx, n));
	p[7] = 0x77;
	EXPECT_EQ(MAP_FAILED, mremap(p, 3 * ps, 4 * ps, 0));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(MAP_FAILED, mremap(p, 3 * ps, 3 * ps, MREMAP_MAYMOVE | MREMAP_DONTUNMAP));
	EXPECT_EQ(EINVAL, errno);
	q = mremap(p, 3 * ps, 2 * ps, 0); /* shrink */
	ASSERT_EQ(p, q);
	EXPECT_FALSE(fired(&w));
	q = mremap(p, 2 * ps, 2 * ps, MREMAP_MAYMOVE | MREMAP_FIXED,
		   mmap(NULL, 2 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	ASSERT_NE(MAP_FAILED, q);
	EXPECT_FALSE(fired(&w));
	EXPECT_EQ(0x77, q[7]);
	munmap(q, 2 * ps);
	EXPECT_TRUE(fired(&w));
	watch_done(&w);
}

TEST_F(gnt, fork_shares_mapping)
{
	struct watched w = { 0 };
	int to_child[2], to_parent[2];
	volatile uint8_t *p;
	char c;
	pid_t pid;
	int status;

	p = watched_mapping(_metadata, self->fd, &w);
	ASSERT_NE(MAP_FAILED, p);
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
	EXPECT_FALSE(fired(&w));
	ASSERT_EQ(1, write(to_child[1], "y", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_TRUE(fired(&w));
	watch_done(&w);
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
	munmap((void *)p, page_size()); /* it holds the grant (and the file) */
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
	EXPECT_FALSE(fired(&w));
	p[1] = 3;
	munmap(p, page_size());
	EXPECT_TRUE(fired(&w));
	watch_done(&w);
}

TEST_F(gnt, close_fires_unmapped)
{
	struct watched w = { 0 };

	ASSERT_EQ(0, watch_setup(_metadata, self->fd, &w, 1));
	EXPECT_FALSE(fired(&w));
	close(self->fd);
	self->fd = open(GNTALLOC_DEV, O_RDWR);
	EXPECT_TRUE(fired(&w));
	watch_done(&w);
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
	EXPECT_FALSE(fired(&w));
	ASSERT_EQ(0, gnt_alloc(got, 1, 0, &idx, NULL));
	EXPECT_EQ(2 * page_size(), idx);
	close(got);
	close(sv[0]);
	close(sv[1]);
	EXPECT_TRUE(fired(&w));
	self->fd = open(GNTALLOC_DEV, O_RDWR);
	watch_done(&w);
}

/* Keeps calling SET_UNMAP_NOTIFY on one slot until told to stop. */
struct notify_spinner {
	int fd;
	uint64_t slot;
	volatile int stop;
	volatile long calls;
};

static void *spin_notify(void *arg)
{
	struct notify_spinner *sp = arg;

	while (!sp->stop) {
		gnt_notify(sp->fd, sp->slot + 7, UNMAP_NOTIFY_CLEAR_BYTE, 0);
		sp->calls++;
	}
	return NULL;
}

/*
 * A DEALLOC of a grant that no mapping holds fires its notification (and
 * ends the grant) before it returns, even while another thread keeps calling
 * SET_UNMAP_NOTIFY on the same slot, and so may hold a reference to the
 * grant at that moment. Upstream serialises both under one mutex. A remote
 * mapping watches the notify byte; many rounds, to meet the race.
 */
TEST_F(gnt, dealloc_fires_notify_despite_concurrent_notify)
{
	REQUIRE_REMOTE();
	struct notify_spinner sp = { .fd = self->fd };
	const int rounds = 300;
	int late = 0;

	for (int i = 0; i < rounds; i++) {
		struct remote_map r = { 0 };
		uint64_t idx;
		uint32_t ref;
		pthread_t t;

		ASSERT_EQ(0, gnt_alloc(self->fd, 1, GNTALLOC_FLAG_WRITABLE, &idx, &ref));
		ASSERT_EQ(0, remote_map(&r, &ref, 1, 1));
		remote_frame(&r, 0)[7] = 0xaa;
		ASSERT_EQ(0, gnt_notify(self->fd, idx + 7, UNMAP_NOTIFY_CLEAR_BYTE, 0));
		sp.slot = idx;
		sp.stop = 0;
		sp.calls = 0;
		ASSERT_EQ(0, pthread_create(&t, NULL, spin_notify, &sp));
		while (sp.calls < 2)
			;
		ASSERT_EQ(0, gnt_dealloc(self->fd, idx, 1));
		late += remote_frame(&r, 0)[7] != 0;
		sp.stop = 1;
		pthread_join(t, NULL);
		EXPECT_EQ(0, remote_frame(&r, 0)[7]);
		remote_unmap(&r);
	}
	EXPECT_EQ(0, late) TH_LOG("%d of %d DEALLOCs returned before their notification fired",
				  late, rounds);
}

/*
 * A notification fires once, on its own port, when its grant goes:
 * re-registering the same port keeps one notification (and one reference), a
 * cancelled one never fires, and nothing fires again afterwards. Each grant
 * has a port of its own, so that two sends cannot merge into one pending
 * event; the grants go one at a time.
 */
TEST_F(gnt, notify_event_once)
{
	struct evtchn_loop e0 = { 0 }, e1 = { 0 };
	uint64_t idx;

	ASSERT_EQ(0, evtchn_loop_open(&e0));
	ASSERT_EQ(0, evtchn_loop_open(&e1));
	ASSERT_EQ(0, gnt_alloc(self->fd, 2, 0, &idx, NULL));
	ASSERT_EQ(0, gnt_notify(self->fd, idx, UNMAP_NOTIFY_SEND_EVENT, e0.port));
	/* Re-registering the same port holds one reference, not two. */
	ASSERT_EQ(0, gnt_notify(self->fd, idx, UNMAP_NOTIFY_SEND_EVENT, e0.port));
	ASSERT_EQ(0, gnt_notify(self->fd, idx + XPAGE, UNMAP_NOTIFY_SEND_EVENT, e1.port));
	ASSERT_EQ(0, gnt_notify(self->fd, idx + XPAGE, 0, 0)); /* cancelled */
	EXPECT_EQ(0, evtchn_loop_events(&e0, 100));
	EXPECT_EQ(0, evtchn_loop_events(&e1, 100));
	/* The cancelled grant goes first: nothing fires, on either port. */
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx + XPAGE, 1));
	EXPECT_EQ(0, evtchn_loop_events(&e1, 200)) TH_LOG("the cancelled notification fired");
	EXPECT_EQ(0, evtchn_loop_events(&e0, 100)) TH_LOG("fired for the other grant");
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx, 1));
	EXPECT_EQ(1, evtchn_loop_events(&e0, 1000));
	EXPECT_EQ(0, evtchn_loop_events(&e1, 100));
	/* Nothing fires again when the file goes. */
	close(self->fd);
	self->fd = open(GNTALLOC_DEV, O_RDWR);
	EXPECT_EQ(0, evtchn_loop_events(&e0, 100)) TH_LOG("fired again");
	EXPECT_EQ(0, evtchn_loop_events(&e1, 100));
	/* No reference left on either port: each closes with its evtchn fd. */
	close(e0.lfd);
	close(e1.lfd);
	e0.lfd = e1.lfd = -1;
	EXPECT_EQ(EVTCHN_STATE_CLOSED, evtchn_status(e0.port)) TH_LOG("a reference on e0 kept");
	EXPECT_EQ(EVTCHN_STATE_CLOSED, evtchn_status(e1.port)) TH_LOG("a reference on e1 kept");
	evtchn_loop_close(&e0);
	evtchn_loop_close(&e1);
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
	EXPECT_EQ(EVTCHN_STATE_INTERDOMAIN, evtchn_status(e.port)) TH_LOG("port closed under us");
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx, 1));
	EXPECT_EQ(1, evtchn_loop_events(&e, 1000));
	EXPECT_EQ(EVTCHN_STATE_CLOSED, evtchn_status(e.port)) TH_LOG("the last reference kept it");
	evtchn_loop_close(&e);
}

/*
 * Order at teardown: the byte is cleared before the event is sent, and the
 * grant is ended only after both. A peer woken by the event (a thread
 * blocked on the other end) must find the byte already cleared and its
 * mapping still valid, as libxenvchan's srv_live protocol relies on.
 */
struct peer {
	struct evtchn_loop *e;
	volatile uint8_t *byte;
	int woken, seen, live;
};

static void *peer_thread(void *arg)
{
	struct peer *p = arg;
	struct pollfd pfd = { .fd = p->e->rfd, .events = POLLIN };

	if (poll(&pfd, 1, 5000) == 1) {
		p->seen = *p->byte; /* first thing on wake-up */
		/* The grant is still live: the page holds what was written before the release. */
		p->live = p->byte[100] == 0x77 && p->byte[3000] == 0x78;
		p->woken = 1;
	}
	return NULL;
}

TEST_F(gnt, notify_byte_before_event)
{
	REQUIRE_REMOTE();
	struct evtchn_loop e = { 0 };
	struct remote_map r = { 0 };
	struct peer peer = { .e = &e, .seen = -1 };
	volatile uint8_t *f;
	pthread_t t;
	uint32_t id;
	uint64_t idx;

	ASSERT_EQ(0, evtchn_loop_open(&e));
	ASSERT_EQ(0, gnt_alloc(self->fd, 1, GNTALLOC_FLAG_WRITABLE, &idx, &id));
	ASSERT_EQ(0, remote_map(&r, &id, 1, 1));
	f = remote_frame(&r, 0);
	f[21] = 1; /* srv_live */
	f[21 + 100] = 0x77;
	f[21 + 3000] = 0x78;
	ASSERT_EQ(0, gnt_notify(self->fd, idx + 21,
				UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT, e.port));
	peer.byte = &f[21];
	ASSERT_EQ(0, pthread_create(&t, NULL, peer_thread, &peer));
	usleep(100000); /* let the peer block */
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx, 1));
	pthread_join(t, NULL);
	EXPECT_TRUE(peer.woken);
	EXPECT_EQ(0, peer.seen) TH_LOG("the event came before the byte was cleared");
	EXPECT_TRUE(peer.live) TH_LOG("at the event, the page no longer held its bytes");
	f[100] = 5; /* the grant outlives the notification */
	EXPECT_EQ(5, f[100]);
	remote_unmap(&r);
	evtchn_loop_close(&e);
}

/*
 * Deferred freeing: a grant the remote still maps when the local side lets
 * go stays counted against the limit until the remote unmaps, then it is
 * freed promptly. Upstream stops counting it at once (B7).
 */
TEST_F(gnt, deferred_grant_counts_against_limit)
{
	REQUIRE_REMOTE();
	struct remote_map r = { 0 };
	uint32_t ids[4];
	uint64_t idx;
	int ok = 0;

	ASSERT_EQ(0, set_limit(4));
	ASSERT_EQ(0, gnt_alloc(self->fd, 4, GNTALLOC_FLAG_WRITABLE, &idx, ids));
	ASSERT_EQ(0, remote_map(&r, ids, 1, 1));
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx, 4));
	remote_frame(&r, 0)[5] = 5; /* the remote's mapping is still valid */
	EXPECT_EQ(5, remote_frame(&r, 0)[5]);
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

/* Any domid is accepted: Xen checks it only when the remote maps the grant. */
TEST_F(gnt, alloc_any_domid)
{
	uint16_t domids[] = { 0x7ff0 /* DOMID_SELF */, 1234, 0x7ff4 /* DOMID_INVALID */ };
	uint8_t buf[sizeof(struct ioctl_gntalloc_alloc_gref) + 4];
	struct ioctl_gntalloc_alloc_gref *op = (void *)buf;

	for (unsigned int i = 0; i < sizeof(domids) / sizeof(domids[0]); i++) {
		memset(buf, 0, sizeof(buf));
		op->domid = domids[i];
		op->flags = GNTALLOC_FLAG_WRITABLE;
		op->count = 1;
		EXPECT_EQ(0, ioctl(self->fd, IOCTL_GNTALLOC_ALLOC_GREF, op)) TH_LOG("domid %#x", domids[i]);
		EXPECT_LE(8, op->gref_ids[0]);
	}
}

/* Each grant (page on 4K kernels) of one allocation notifies its own port, once. */
TEST_F(gnt, notify_per_page_ports)
{
	struct evtchn_loop e1 = { 0 }, e2 = { 0 };
	uint64_t idx;

	ASSERT_EQ(0, evtchn_loop_open(&e1));
	ASSERT_EQ(0, evtchn_loop_open(&e2));
	ASSERT_EQ(0, gnt_alloc(self->fd, 2, 0, &idx, NULL));
	ASSERT_EQ(0, gnt_notify(self->fd, idx, UNMAP_NOTIFY_SEND_EVENT, e1.port));
	ASSERT_EQ(0, gnt_notify(self->fd, idx + XPAGE, UNMAP_NOTIFY_SEND_EVENT, e2.port));
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx + XPAGE, 1));
	EXPECT_EQ(1, evtchn_loop_events(&e2, 1000));
	EXPECT_EQ(0, evtchn_loop_events(&e1, 100));
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx, 1));
	EXPECT_EQ(1, evtchn_loop_events(&e1, 1000));
	EXPECT_EQ(0, evtchn_loop_events(&e2, 100));
	evtchn_loop_close(&e1);
	evtchn_loop_close(&e2);
}

/*
 * The notify holds exactly one reference on its port: re-registering P keeps
 * one, switching to Q drops P's, action 0 drops S's, and teardown drops the
 * last. Seen through the port's state in Xen once its evtchn fd is closed:
 * a port nobody references any more is closed. And only the ports still
 * registered at teardown get an event, exactly one each: every port is
 * distinct, and the grants go one DEALLOC at a time, so that no send can
 * hide behind another one's pending event.
 */
TEST_F(gnt, notify_port_references)
{
	struct evtchn_loop p = { 0 }, q = { 0 }, r = { 0 }, s = { 0 };
	uint64_t idx;

	ASSERT_EQ(0, evtchn_loop_open(&p));
	ASSERT_EQ(0, evtchn_loop_open(&q));
	ASSERT_EQ(0, evtchn_loop_open(&r));
	ASSERT_EQ(0, evtchn_loop_open(&s));
	ASSERT_EQ(EVTCHN_STATE_INTERDOMAIN, evtchn_status(p.port));
	ASSERT_EQ(0, gnt_alloc(self->fd, 3, 0, &idx, NULL));
	ASSERT_EQ(0, gnt_notify(self->fd, idx, UNMAP_NOTIFY_SEND_EVENT, p.port));
	ASSERT_EQ(0, gnt_notify(self->fd, idx, UNMAP_NOTIFY_SEND_EVENT, p.port));
	ASSERT_EQ(0, gnt_notify(self->fd, idx, UNMAP_NOTIFY_SEND_EVENT, q.port));
	ASSERT_EQ(0, gnt_notify(self->fd, idx + XPAGE, UNMAP_NOTIFY_SEND_EVENT, r.port));
	ASSERT_EQ(0, gnt_notify(self->fd, idx + XPAGE, UNMAP_NOTIFY_SEND_EVENT, r.port));
	ASSERT_EQ(0, gnt_notify(self->fd, idx + 2 * XPAGE, UNMAP_NOTIFY_SEND_EVENT, s.port));
	close(p.lfd);
	close(q.lfd);
	close(r.lfd);
	close(s.lfd);
	p.lfd = q.lfd = r.lfd = s.lfd = -1;
	EXPECT_EQ(EVTCHN_STATE_CLOSED, evtchn_status(p.port)) TH_LOG("P still referenced");
	EXPECT_EQ(EVTCHN_STATE_INTERDOMAIN, evtchn_status(q.port));
	EXPECT_EQ(EVTCHN_STATE_INTERDOMAIN, evtchn_status(r.port));
	EXPECT_EQ(EVTCHN_STATE_INTERDOMAIN, evtchn_status(s.port));
	ASSERT_EQ(0, gnt_notify(self->fd, idx + 2 * XPAGE, 0, 0));
	EXPECT_EQ(EVTCHN_STATE_CLOSED, evtchn_status(s.port)) TH_LOG("S still referenced");
	/* The first grant notifies Q, the port it was switched to, and only Q. */
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx, 1));
	EXPECT_EQ(1, evtchn_loop_events(&q, 1000));
	EXPECT_EQ(0, evtchn_loop_events(&p, 100)) TH_LOG("P notified after the switch to Q");
	EXPECT_EQ(0, evtchn_loop_events(&r, 100));
	EXPECT_EQ(0, evtchn_loop_events(&s, 100));
	EXPECT_EQ(EVTCHN_STATE_CLOSED, evtchn_status(q.port)) TH_LOG("Q still referenced");
	/* The second notifies R once; the third, cancelled, nobody. */
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx + XPAGE, 2));
	EXPECT_EQ(1, evtchn_loop_events(&r, 1000));
	EXPECT_EQ(0, evtchn_loop_events(&s, 100)) TH_LOG("S notified after action 0");
	EXPECT_EQ(0, evtchn_loop_events(&q, 100));
	EXPECT_EQ(0, evtchn_loop_events(&p, 100));
	EXPECT_EQ(EVTCHN_STATE_CLOSED, evtchn_status(r.port)) TH_LOG("R referenced twice");
	evtchn_loop_close(&p);
	evtchn_loop_close(&q);
	evtchn_loop_close(&r);
	evtchn_loop_close(&s);
}

/*
 * exec drops the process's mappings: a grant already deallocated (the
 * libxengnttab pattern) is released at exec, while grants still listed in a
 * file that survives exec (no O_CLOEXEC) stay until that file is closed.
 * (On 64K kernels both grants share the one page mapped.)
 */
TEST_F(gnt, exec_releases_mappings)
{
	REQUIRE_REMOTE();
	struct remote_map r0 = { 0 }, r1 = { 0 };
	int ids_pipe[2], go_pipe[2], hold_pipe[2], i, status;
	volatile uint8_t *f0, *f1;
	uint32_t ids[2];
	pid_t pid;

	ASSERT_EQ(0, pipe(ids_pipe));
	ASSERT_EQ(0, pipe(go_pipe));
	ASSERT_EQ(0, pipe(hold_pipe));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd = open(GNTALLOC_DEV, O_RDWR);
		uint64_t idx;
		uint8_t *p;
		char c;

		if (fd < 0 || gnt_alloc(fd, 2, GNTALLOC_FLAG_WRITABLE, &idx, ids))
			_exit(1);
		p = gnt_map(fd, idx, grant_span(2));
		if (p == MAP_FAILED)
			_exit(1);
		p[42] = 0xee;
		p[XPAGE + 42] = 0xee;
		if (gnt_notify(fd, idx + 42, UNMAP_NOTIFY_CLEAR_BYTE, 0) ||
		    gnt_notify(fd, idx + XPAGE + 42, UNMAP_NOTIFY_CLEAR_BYTE, 0) ||
		    gnt_dealloc(fd, idx, 1))
			_exit(1);
		/* The exec'd shell must hold only the read end, to see EOF when told. */
		close(hold_pipe[1]);
		if (write(ids_pipe[1], ids, sizeof(ids)) != sizeof(ids) ||
		    read(go_pipe[0], &c, 1) != 1 || dup2(hold_pipe[0], 0) != 0)
			_exit(1);
		execl("/bin/sh", "sh", "-c", "read x", (char *)NULL);
		_exit(1);
	}
	close(hold_pipe[0]);
	close(ids_pipe[1]);
	ASSERT_EQ(sizeof(ids), read(ids_pipe[0], ids, sizeof(ids)));
	ASSERT_EQ(0, remote_map(&r0, &ids[0], 1, 1));
	ASSERT_EQ(0, remote_map(&r1, &ids[1], 1, 1));
	f0 = remote_frame(&r0, 0);
	f1 = remote_frame(&r1, 0);
	EXPECT_EQ(0xee, f0[42]);
	EXPECT_EQ(0xee, f1[42]);
	ASSERT_EQ(1, write(go_pipe[1], "g", 1));
	for (i = 0; i < 100 && f0[42]; i++)
		usleep(20000);
	EXPECT_EQ(0, f0[42]) TH_LOG("the deallocated grant was not released at exec");
	EXPECT_EQ(0, waitpid(pid, &status, WNOHANG)) TH_LOG("the exec'd program is gone");
	EXPECT_EQ(0xee, f1[42]) TH_LOG("a grant of the inherited file was released");
	close(hold_pipe[1]); /* the shell reads EOF and exits, closing the file */
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, f1[42]);
	remote_unmap(&r0);
	remote_unmap(&r1);
}

/* MADV_DONTNEED zaps the pages, which cannot be faulted back: SIGBUS. */
TEST_F(gnt, madv_dontneed_sigbus)
{
	struct watched w = { 0 };
	volatile uint8_t *p;
	pid_t pid;
	int status;

	p = watched_mapping(_metadata, self->fd, &w);
	ASSERT_NE(MAP_FAILED, p);
	p[7] = 7;
	ASSERT_EQ(0, madvise((void *)p, page_size(), MADV_DONTNEED));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(p[7]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(SIGBUS, WTERMSIG(status));
	EXPECT_FALSE(fired(&w)) TH_LOG("MADV_DONTNEED released the grant");
	munmap((void *)p, page_size());
	EXPECT_TRUE(fired(&w));
	watch_done(&w);
}

/* The mapping is shared, left out of core dumps, not expandable, mixed. */
TEST_F(gnt, smaps_flags)
{
	char line[512], want[32], flags[sizeof(line) + 1] = "";
	uint8_t *p;
	int in_vma = 0;
	FILE *f;

	ASSERT_EQ(0, gnt_alloc(self->fd, 1, 0, NULL, NULL));
	p = gnt_map(self->fd, 0, page_size());
	ASSERT_NE(MAP_FAILED, p);
	snprintf(want, sizeof(want), "%lx-", (unsigned long)p);
	f = fopen("/proc/self/smaps", "r");
	ASSERT_NE(NULL, f);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, want, strlen(want)) == 0)
			in_vma = 1;
		else if (in_vma && strncmp(line, "VmFlags:", 8) == 0) {
			/* " f1 f2 ... fn " so that each flag can be matched as " fx ". */
			strcpy(flags, line + 8);
			flags[strcspn(flags, "\n")] = ' ';
			break;
		}
	}
	fclose(f);
	ASSERT_TRUE(in_vma);
	EXPECT_NE(NULL, strstr(flags, " sh ")) TH_LOG("VmFlags:%s", flags);
	EXPECT_NE(NULL, strstr(flags, " dd ")) TH_LOG("VmFlags:%s", flags);
	EXPECT_NE(NULL, strstr(flags, " de ")) TH_LOG("VmFlags:%s", flags);
	EXPECT_NE(NULL, strstr(flags, " mm ")) TH_LOG("VmFlags:%s", flags);
	munmap(p, page_size());
}

/*
 * Concurrency: threads ALLOC, map, write, partially DEALLOC and unmap on one
 * shared file while another guesses indices to DEALLOC. Whatever interleaving
 * happens, nothing crashes and the accounting ends exact.
 */
struct churn {
	int fd;
	unsigned int seed;
	int iterations;
	int unexpected;  /* results outside the allowed set */
	char first[160]; /* the first of them */
};

/* Records an unexpected result of `what` (0 or -errno) unless it is 0 or `allowed`. */
static void churn_check(struct churn *c, const char *what, int rc, int allowed)
{
	if (rc == 0 || rc == allowed)
		return;
	if (c->unexpected++ == 0)
		snprintf(c->first, sizeof(c->first), "%s: %s", what, strerror(-rc));
}

static void *churn_thread(void *arg)
{
	struct churn *c = arg;

	for (int i = 0; i < c->iterations; i++) {
		uint32_t n = 1 + rand_r(&c->seed) % 4;
		size_t len = grant_span(n);
		uint64_t idx = 0;
		uint8_t *p;

		/* The limit leaves room for every churner: ALLOC must always succeed. */
		churn_check(c, "alloc", gnt_alloc(c->fd, n, GNTALLOC_FLAG_WRITABLE, &idx, NULL), 0);
		if (c->unexpected)
			break;
		/* A guesser may have taken some of the grants first: ENOENT, EINVAL. */
		p = gnt_map(c->fd, idx, len);
		if (p != MAP_FAILED)
			memset(p, i, len);
		else
			churn_check(c, "mmap", -errno, -ENOENT);
		churn_check(c, "dealloc first", gnt_dealloc(c->fd, idx, 1), -EINVAL);
		/*
		 * The second grant's slot: the next 4K on ours, the next kernel page on the C
		 * reference (which gives each grant a page of its own, B6 on 64K kernels).
		 */
		if (n > 1)
			churn_check(c, "dealloc rest",
				    gnt_dealloc(c->fd, idx + (is_rust() ? XPAGE : page_size()), n - 1),
				    -EINVAL);
		if (p != MAP_FAILED)
			churn_check(c, "munmap", munmap(p, len) ? -errno : 0, 0);
	}
	return NULL;
}

/* Guesses slots (pages on 4K kernels) over the range the churners use. */
static void *guess_thread(void *arg)
{
	struct churn *c = arg;
	long slots = c->iterations * 8 * grants_per_page();

	for (int i = 0; i < c->iterations * 4; i++) {
		uint64_t idx = (uint64_t)(rand_r(&c->seed) % slots) * XPAGE;

		churn_check(c, "guess dealloc", gnt_dealloc(c->fd, idx, 1 + rand_r(&c->seed) % 2),
			    -EINVAL);
		churn_check(c, "guess notify", gnt_notify(c->fd, idx + 3, UNMAP_NOTIFY_CLEAR_BYTE, 0),
			    -ENOENT);
	}
	return NULL;
}

/*
 * Two files, each with two threads allocating, mapping, writing and freeing
 * and one thread freeing and arming notifications at guessed indexes: every
 * call returns success or the one error its race allows, and afterwards the
 * accounting is exact (the whole limit can be allocated again).
 */
TEST_F(gnt, concurrent_churn)
{
	struct churn c[6];
	pthread_t t[6];
	int fds[2], unexpected = 0;
	uint64_t idx;

	ASSERT_EQ(0, set_limit(64));
	fds[0] = self->fd;
	fds[1] = open(GNTALLOC_DEV, O_RDWR);
	ASSERT_LE(0, fds[1]);
	for (int i = 0; i < 6; i++) {
		c[i] = (struct churn){ .fd = fds[i / 3], .seed = 1000 + i, .iterations = 200 };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, i % 3 == 2 ? guess_thread : churn_thread,
					    &c[i]));
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		if (c[i].unexpected)
			TH_LOG("thread %d: %d unexpected result(s), the first %s", i, c[i].unexpected,
			       c[i].first);
		unexpected += c[i].unexpected;
	}
	EXPECT_EQ(0, unexpected);
	close(fds[1]);
	close(self->fd);
	self->fd = open(GNTALLOC_DEV, O_RDWR);
	ASSERT_LE(0, self->fd);
	if (is_rust())
		EXPECT_EQ(0, rust_stat("in_use"));
	EXPECT_EQ(0, gnt_alloc(self->fd, 64, 0, &idx, NULL)) TH_LOG("accounting drifted");
}

/*
 * No user copy under a lock that mmap takes: an ALLOC whose result copy is
 * stalled by userfaultfd must not block mmap or ALLOC of the same file in the
 * same process. If it did, this test would hang until the harness kills it.
 */
struct stalled_alloc {
	int fd;
	struct ioctl_gntalloc_alloc_gref *op;
	int ret;
};

static void *stalled_alloc_thread(void *arg)
{
	struct stalled_alloc *s = arg;

	s->ret = ioctl(s->fd, IOCTL_GNTALLOC_ALLOC_GREF, s->op) ? -errno : 0;
	return NULL;
}

TEST_F(gnt, user_copy_not_under_lock)
{
	long ps = page_size();
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { 0 };
	struct uffdio_zeropage zero = { 0 };
	struct stalled_alloc s = { .fd = self->fd };
	struct uffd_msg msg;
	struct pollfd pfd;
	pthread_t t;
	uint64_t idx0;
	uint8_t *area, *p;
	int uffd;

	uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	ASSERT_LE(0, uffd) TH_LOG("userfaultfd: %s", strerror(errno));
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_API, &api));
	area = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, area);
	area[0] = 0;
	reg.range.start = (uintptr_t)area + ps;
	reg.range.len = ps;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_REGISTER, &reg));
	ASSERT_EQ(0, gnt_alloc(self->fd, 1, 0, &idx0, NULL));
	/* The header fits in the first page; ids 2 and 3 land in the stalled one. */
	s.op = (void *)(area + ps - sizeof(*s.op));
	memset(s.op, 0, sizeof(*s.op));
	s.op->count = 4;
	ASSERT_EQ(0, pthread_create(&t, NULL, stalled_alloc_thread, &s));
	pfd = (struct pollfd){ .fd = uffd, .events = POLLIN };
	ASSERT_EQ(1, poll(&pfd, 1, 5000)) TH_LOG("the result copy never faulted");
	ASSERT_EQ(sizeof(msg), read(uffd, &msg, sizeof(msg)));
	ASSERT_EQ(UFFD_EVENT_PAGEFAULT, msg.event);
	/* The ALLOC is now stalled in its result copy. */
	p = gnt_map(self->fd, idx0, ps);
	EXPECT_NE(MAP_FAILED, p);
	if (p != MAP_FAILED)
		munmap(p, ps);
	EXPECT_EQ(0, gnt_alloc(self->fd, 1, 0, NULL, NULL));
	zero.range = reg.range;
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_ZEROPAGE, &zero));
	pthread_join(t, NULL);
	EXPECT_EQ(0, s.ret);
	EXPECT_LE(8, s.op->gref_ids_flex[3]);
	EXPECT_EQ(0, gnt_dealloc(self->fd, s.op->index, 4));
	close(uffd);
}

/*
 * Observability (ours only; upstream has none): fdinfo counts the file's
 * grants, how many of them are mapped and have a notify pending; the global
 * counters in debugfs follow allocations, releases and limit rejections.
 * All of them count grants: 3 pages of them here (3 on 4K kernels), and on
 * 64K kernels a page of 3 grants and padding as well.
 */
TEST_F(gnt, fdinfo_and_counters)
{
	long ps = page_size(), gpp = grants_per_page(), in_use, rejected;
	uint32_t n = 3 * gpp;
	uint64_t idx;
	uint8_t *p;

	if (!is_rust())
		SKIP(return, "the C reference has no fdinfo fields or counters");
	in_use = rust_stat("in_use");
	rejected = rust_stat("limit_rejections");
	ASSERT_LE(0, in_use);
	ASSERT_LE(0, rejected);
	EXPECT_EQ(0, fdinfo(self->fd, "grants"));
	ASSERT_EQ(0, gnt_alloc(self->fd, n, 0, &idx, NULL));
	EXPECT_EQ(n, fdinfo(self->fd, "grants"));
	EXPECT_EQ(0, fdinfo(self->fd, "mapped"));
	EXPECT_EQ(in_use + n, rust_stat("in_use"));
	p = gnt_map(self->fd, idx + ps, 2 * ps);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(2 * gpp, fdinfo(self->fd, "mapped"));
	EXPECT_EQ(0, fdinfo(self->fd, "notify"));
	ASSERT_EQ(0, gnt_notify(self->fd, idx + 5, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	EXPECT_EQ(1, fdinfo(self->fd, "notify"));
	EXPECT_EQ(3 * ps, fdinfo(self->fd, "next_index"));
	EXPECT_EQ(-ENOSPC, gnt_alloc(self->fd, self->limit + 1, 0, NULL, NULL));
	EXPECT_EQ(rejected + 1, rust_stat("limit_rejections"));
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx, n));
	EXPECT_EQ(0, fdinfo(self->fd, "grants"));
	EXPECT_EQ(in_use + 2 * gpp, rust_stat("in_use")) TH_LOG("the mapping holds two pages");
	munmap(p, 2 * ps);
	EXPECT_EQ(in_use, rust_stat("in_use"));
	if (gpp > 1) {
		/* Padding is neither a grant nor mapped, but the index moves a whole page. */
		ASSERT_EQ(0, gnt_alloc(self->fd, 3, 0, &idx, NULL));
		EXPECT_EQ(3 * ps, idx);
		EXPECT_EQ(4 * ps, fdinfo(self->fd, "next_index"));
		EXPECT_EQ(3, fdinfo(self->fd, "grants"));
		EXPECT_EQ(in_use + 3, rust_stat("in_use"));
		p = gnt_map(self->fd, idx, ps);
		ASSERT_NE(MAP_FAILED, p);
		EXPECT_EQ(3, fdinfo(self->fd, "mapped"));
		munmap(p, ps);
		EXPECT_EQ(0, fdinfo(self->fd, "mapped"));
		ASSERT_EQ(0, gnt_dealloc(self->fd, idx, 3));
		EXPECT_EQ(in_use, rust_stat("in_use"));
	}
}

/*
 * A backlog of grants that the remote still maps when the local side lets
 * go: the remote keeps valid mappings, and once it unmaps, the whole backlog
 * is reclaimed promptly. Ours counts the backlog against the limit meanwhile.
 */
TEST_F(gnt, deferred_backlog_reclaimed)
{
	REQUIRE_REMOTE();
	enum { N = 256 };
	struct remote_map r = { 0 };
	uint32_t ids[N];
	uint64_t idx;
	int ok = 0;

	ASSERT_EQ(0, set_limit(N));
	ASSERT_EQ(0, gnt_alloc(self->fd, N, GNTALLOC_FLAG_WRITABLE, &idx, ids));
	ASSERT_EQ(0, remote_map(&r, ids, N, 1));
	close(self->fd); /* every grant is released locally */
	self->fd = open(GNTALLOC_DEV, O_RDWR);
	ASSERT_LE(0, self->fd);
	remote_frame(&r, N - 1)[0] = 1;
	EXPECT_EQ(1, remote_frame(&r, N - 1)[0]);
	if (is_rust()) {
		EXPECT_EQ(N, rust_stat("deferred"));
		EXPECT_EQ(-ENOSPC, gnt_alloc(self->fd, 1, 0, NULL, NULL));
	}
	remote_unmap(&r);
	for (int i = 0; i < 100 && !ok; i++) {
		usleep(50000);
		ok = gnt_alloc(self->fd, N, 0, &idx, NULL) == 0;
	}
	EXPECT_TRUE(ok) TH_LOG("the backlog was not reclaimed within 5 s of the remote unmap");
	if (is_rust())
		EXPECT_EQ(0, rust_stat("deferred"));
}

/*
 * A backlog of several thousand deferred grants that the remote keeps mapped for 13 s: the
 * remote's mappings stay valid, ours counts the backlog and reports its age meanwhile, and
 * backs off retrying grants that keep failing (0.2 s doubling to 3.2 s), yet drains the whole
 * backlog within 6 s once the remote unmaps: a backoff still growing past 3.2 s would have
 * reached 12.8 s by then. On the C reference, the grant-table core keeps the backlog and only
 * the remote's mappings are checked.
 */
TEST_F_TIMEOUT(gnt, deferred_backlog_backs_off_then_drains, 120)
{
	REQUIRE_REMOTE();
	enum { N = 3000, HELD_S = 13 };
	struct remote_map r = { 0 };
	uint32_t *ids = calloc(N, sizeof(*ids));
	double t0, waited;
	long age;
	uint64_t idx;

	ASSERT_NE(NULL, ids);
	ASSERT_EQ(0, set_limit(N));
	ASSERT_EQ(0, gnt_alloc(self->fd, N, GNTALLOC_FLAG_WRITABLE, &idx, ids));
	ASSERT_EQ(0, remote_map(&r, ids, N, 1));
	close(self->fd); /* every grant is released locally, and deferred */
	self->fd = open(GNTALLOC_DEV, O_RDWR);
	ASSERT_LE(0, self->fd);
	if (is_rust())
		EXPECT_EQ(N, rust_stat("deferred"));
	/* Long enough for every chunk of the list to have failed, and backed off, several times. */
	sleep(HELD_S);
	for (uint32_t k = 0; k < N; k += 97) {
		remote_frame(&r, k)[1] = (uint8_t)k;
		EXPECT_EQ((uint8_t)k, remote_frame(&r, k)[1]);
	}
	if (is_rust()) {
		EXPECT_EQ(N, rust_stat("deferred"));
		EXPECT_EQ(N, rust_stat("in_use"));
		age = rust_stat("deferred_age_ms");
		EXPECT_LE(HELD_S * 1000 - 1000, age) TH_LOG("the backlog is %ld ms old, by debugfs", age);
		EXPECT_GE(HELD_S * 1000 + 4000, age) TH_LOG("the backlog is %ld ms old, by debugfs", age);
	}
	remote_unmap(&r);
	free(ids);
	if (!is_rust())
		return;
	t0 = now_s();
	while (rust_stat("deferred") != 0 && now_s() - t0 < 20)
		usleep(50000);
	waited = now_s() - t0;
	EXPECT_EQ(0, rust_stat("deferred"));
	EXPECT_GE(6.0, waited) TH_LOG("the backlog took %.1f s to drain", waited);
	TH_LOG("%d deferred grants drained in %.1f s after the remote unmapped them", N, waited);
}

/*
 * B4: an ALLOC that fails consumes no index space, so that the next ALLOC
 * gets the same index; upstream leaves a hole.
 * Walks a slab-allocation failure over every point of a 4-grant ALLOC
 * (upstream's accounting is right on this path: only the hole shows). The
 * walk goes far (2 KiB of slab): on a KASAN + lockdep kernel, kmemleak's own
 * object for the id array alone takes hundreds of bytes of the budget before
 * upstream has moved its index.
 */
TEST_F(gnt, bug_b4_failed_alloc_no_index_hole)
{
	uint64_t span = grant_span(4);
	int failures = 0;

	ASSERT_TRUE(fault_available("failslab")) TH_LOG("no failslab in this kernel");
	for (int k = 0; k < 128; k++) {
		uint64_t before, after;
		int ret;

		ASSERT_EQ(0, gnt_alloc(self->fd, 0, 0, &before, NULL));
		ASSERT_EQ(0, fault_arm("failslab", k * 16));
		fault_task(1);
		ret = gnt_alloc(self->fd, 4, 0, NULL, NULL);
		fault_task(0);
		fault_disarm("failslab");
		ASSERT_EQ(0, gnt_alloc(self->fd, 0, 0, &after, NULL));
		if (ret == 0) {
			EXPECT_EQ(before + span, after);
			EXPECT_EQ(0, gnt_dealloc(self->fd, before, 4));
			continue;
		}
		failures++;
		EXPECT_EQ(-ENOMEM, ret);
		EXPECT_EQ(before, after) TH_LOG("ALLOC failing at %d bytes left a hole", k * 16);
	}
	EXPECT_LT(0, failures);
}

/*
 * B5: when mmap fails while inserting pages (here: page-table allocation,
 * through fail_page_alloc), everything it took must be given back: the kernel
 * never calls ->close for a failed mmap. Upstream keeps the references taken
 * so far, and those grants can never be freed.
 */
TEST_F(gnt, bug_b5_mmap_failure_releases)
{
	long ps = page_size();
	/* What one page-table page maps: 2 MB with 4K pages, 512 MB with 64K ones. */
	const size_t table_span = (size_t)ps / sizeof(uint64_t) * ps;
	uint32_t n = 8 * grants_per_page(); /* 8 pages */
	uint64_t idx;

	ASSERT_TRUE(fault_available("fail_page_alloc")) TH_LOG("no fail_page_alloc in this kernel");
	ASSERT_EQ(0, set_limit(n));
	ASSERT_EQ(0, gnt_alloc(self->fd, n, 0, &idx, NULL));
	/*
	 * The mmap fails when the page table of its first page cannot be allocated (nothing
	 * inserted yet), and when that of its fifth page cannot (four pages already inserted,
	 * under the page table that a neighbouring anonymous page made exist).
	 */
	for (int inserted = 0; inserted <= 4; inserted += 4) {
		int hit = 0;

		for (int attempt = 0; attempt < 16 && !hit; attempt++) {
			/* A range aligned to table_span with no page tables: inserting there needs one. */
			uint8_t *area = mmap(NULL, 3 * table_span, PROT_NONE,
					     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			uint8_t *at = (uint8_t *)(((uintptr_t)area + table_span - 1) &
						  ~(table_span - 1));
			uint8_t *below = MAP_FAILED;
			void *p;

			ASSERT_NE(MAP_FAILED, area);
			munmap(area, 3 * table_span);
			if (inserted) {
				below = mmap(at - (inserted + 1) * ps, ps, PROT_READ | PROT_WRITE,
					     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
				ASSERT_NE(MAP_FAILED, below);
				below[0] = 1; /* its page table now exists */
			}
			/* Warm the slab caches mmap uses, so the next page allocation is ours. */
			p = gnt_map(self->fd, idx, ps);
			ASSERT_NE(MAP_FAILED, p);
			munmap(p, ps);
			ASSERT_EQ(0, fault_arm("fail_page_alloc", 0));
			fault_task(1);
			p = mmap(at - inserted * ps, 8 * ps, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_FIXED_NOREPLACE, self->fd, idx);
			fault_task(0);
			if (p == MAP_FAILED)
				hit = errno == ENOMEM;
			else
				munmap(p, 8 * ps);
			if (below != MAP_FAILED)
				munmap(below, ps);
		}
		fault_disarm("fail_page_alloc");
		ASSERT_TRUE(hit) TH_LOG("could not make mmap fail with ENOMEM after %d pages", inserted);
	}
	/* Everything must be back: the grants can be freed and allocated again. */
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx, n));
	EXPECT_EQ(0, gnt_alloc(self->fd, n, 0, NULL, NULL)) TH_LOG("grants leaked by the failed mmaps");
}

/*
 * B1: an mmap spanning two allocations of file A, with an allocation of file
 * B in between, must release exactly A's grants at munmap: upstream walks the
 * global list and releases B's grant instead (use-after-free) and leaks A's.
 */
TEST_F(gnt, bug_b1_span_unmap_other_file)
{
	REQUIRE_REMOTE();
	long ps = page_size();
	struct remote_map rb = { 0 }, ra = { 0 };
	volatile uint8_t *fa1, *fb0;
	uint32_t a0, b0, a1;
	uint64_t ia0, ib0, ia1;
	int fb;
	uint8_t *p;

	fb = open(GNTALLOC_DEV, O_RDWR);
	ASSERT_LE(0, fb);
	ASSERT_EQ(0, gnt_alloc(self->fd, 1, GNTALLOC_FLAG_WRITABLE, &ia0, &a0));
	ASSERT_EQ(0, gnt_alloc(fb, 1, GNTALLOC_FLAG_WRITABLE, &ib0, &b0));
	ASSERT_EQ(0, gnt_alloc(self->fd, 1, GNTALLOC_FLAG_WRITABLE, &ia1, &a1));
	ASSERT_EQ(ia0 + ps, ia1);
	ASSERT_EQ(0, remote_map(&rb, &b0, 1, 1));
	ASSERT_EQ(0, remote_map(&ra, &a1, 1, 1));
	fb0 = remote_frame(&rb, 0);
	fa1 = remote_frame(&ra, 0);
	fb0[42] = 0xee;
	fa1[42] = 0xee;
	ASSERT_EQ(0, gnt_notify(fb, ib0 + 42, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	ASSERT_EQ(0, gnt_notify(self->fd, ia1 + 42, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	p = gnt_map(self->fd, ia0, 2 * ps);
	ASSERT_NE(MAP_FAILED, p);
	munmap(p, 2 * ps);
	if (fb0[42] == 0) {
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
	EXPECT_EQ(0xee, fb0[42]) TH_LOG("munmap of file A released file B's grant");
	close(self->fd);
	self->fd = open(GNTALLOC_DEV, O_RDWR);
	EXPECT_EQ(0, fa1[42]) TH_LOG("A's second grant was not released with file A");
	if (fb >= 0) {
		EXPECT_EQ(0, gnt_dealloc(fb, ib0, 1));
		EXPECT_EQ(0, fb0[42]);
		close(fb);
	}
	remote_unmap(&ra);
	remote_unmap(&rb);
}

/*
 * Allocation failures at every point of an ALLOC of `count` grants (walked by
 * the fault's `space` budget) must fail with ENOMEM and leave the accounting
 * exact: the whole limit, 2 * count, can be allocated right after. Returns
 * how many ALLOCs failed.
 */
static int alloc_failure_sweep(struct __test_metadata *_metadata, int fd, const char *which,
			       uint32_t count, long step, int steps, int times)
{
	size_t len = sizeof(struct ioctl_gntalloc_alloc_gref) + 4 * (size_t)count;
	struct ioctl_gntalloc_alloc_gref *op = malloc(len);
	/*
	 * Opened beforehand: with times < 0 every allocation of the task fails
	 * until make-it-fail is cleared, and a write to an open file allocates
	 * nothing, where opening it may.
	 */
	int mif = open("/proc/self/make-it-fail", O_WRONLY);
	int failed = 0, ret;
	uint64_t idx;

	if (!op || mif < 0) {
		free(op);
		if (mif >= 0)
			close(mif);
		return -1;
	}
	for (int k = 0; k < steps; k++) {
		memset(op, 0, len);
		op->count = count;
		if (fault_arm_times(which, k * step, times)) {
			failed = -1;
			break;
		}
		if (pwrite(mif, "1", 1, 0) != 1) {
			failed = -1;
			break;
		}
		ret = ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, op) ? -errno : 0;
		if (pwrite(mif, "0", 1, 0) != 1)
			fault_task(0);
		fault_disarm(which);
		if (ret == 0) {
			EXPECT_EQ(0, gnt_dealloc(fd, op->index, count));
		} else {
			EXPECT_EQ(-ENOMEM, ret) TH_LOG("%s at %ld bytes", which, k * step);
			failed++;
		}
		ret = gnt_alloc(fd, 2 * count, 0, &idx, NULL);
		EXPECT_EQ(0, ret) TH_LOG("accounting broken after a %s failure at %ld bytes",
					 which, k * step);
		if (ret)
			break;
		EXPECT_EQ(0, gnt_dealloc(fd, idx, 2 * count));
	}
	close(mif);
	free(op);
	return failed;
}

TEST_F(gnt, alloc_slab_failure_accounting)
{
	ASSERT_TRUE(fault_available("failslab")) TH_LOG("no failslab in this kernel");
	ASSERT_EQ(0, set_limit(16));
	EXPECT_LT(0, alloc_failure_sweep(_metadata, self->fd, "failslab", 8, 32, 64, 1));
}

/*
 * ALLOCs batches of 256 on `fd` until one fails (the grant table is full, Xen
 * is booted with a small one) or 200000 grants exist. Adds to `*total` what
 * was allocated; returns the failing ALLOC's -errno, or 0.
 */
static int fill_grant_table(int fd, uint64_t *total)
{
	int ret = 0;

	while (*total < 200000) {
		ret = gnt_alloc(fd, 256, 0, NULL, NULL);
		if (ret)
			break;
		*total += 256;
	}
	return ret;
}

/*
 * B3: a grant that fails (grant table full) must not leak its page. Pages
 * are counted through page_owner: those allocated from the module's code and
 * not freed. Upstream frees the page only through a successful grant end.
 */
TEST_F_TIMEOUT(gnt, bug_b3_table_full_no_page_leak, 120)
{
	long before = settled_module_pages(), after;
	uint64_t total = 0;
	int ret = 0, fd2;

	ASSERT_LE(0, before) TH_LOG("no page_owner: boot the test kernel with page_owner=on");
	ASSERT_EQ(0, set_limit(1 << 20));
	fd2 = open(GNTALLOC_DEV, O_RDWR);
	ASSERT_LE(0, fd2);
	ret = fill_grant_table(fd2, &total);
	ASSERT_EQ(-ENOSPC, ret) TH_LOG("the grant table never filled up");
	for (int i = 0; i < 64; i++)
		gnt_alloc(fd2, 1, 0, NULL, NULL);
	close(fd2);
	after = settled_module_pages();
	EXPECT_EQ(before, after) TH_LOG("%ld page(s) leaked by failed grants", after - before);
}

/*
 * B2 (page allocation variant): the page for grant k cannot be allocated.
 * Upstream takes one slot too many off its counter, which wraps. The ALLOC
 * takes 8 pages (8 grants on 4K kernels), the walk goes a page at a time.
 */
TEST_F(gnt, bug_b2_page_failure_accounting)
{
	uint32_t count = 8 * grants_per_page();

	ASSERT_TRUE(fault_available("fail_page_alloc")) TH_LOG("no fail_page_alloc in this kernel");
	ASSERT_EQ(0, set_limit(2 * count));
	/*
	 * Every allocation fails once the budget is spent, not only the first:
	 * a single failure may go to a slab's high-order page attempt, which
	 * falls back to a smaller order and hides it (seen on arm64 with KASAN,
	 * whose quarantine keeps slabs refilling, once ours made its slot array
	 * and index node before its pages).
	 */
	EXPECT_LT(0, alloc_failure_sweep(_metadata, self->fd, "fail_page_alloc", count,
					 page_size(), 10, -1));
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
	ret = fill_grant_table(fd2, &total);
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
