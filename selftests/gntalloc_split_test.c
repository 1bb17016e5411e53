// SPDX-License-Identifier: GPL-2.0
/*
 * The 4K-in-64K grant split (doc section 14): on a kernel whose pages hold
 * several 4K Xen frames (arm64 with 64K pages), ALLOC(N) makes N 4K grants
 * packed into ceil(N/per_page) fresh kernel pages, and libxengnttab's view
 * of the device keeps working unchanged:
 *
 *  - index layout: kernel-page aligned indices, advancing by whole pages,
 *    4K slot keys (index + k*4096) for DEALLOC and SET_UNMAP_NOTIFY;
 *  - each grant is its own 4K frame: what the local mapping holds at offset
 *    k*4096 is exactly what a remote mapping of ref k sees, both ways;
 *  - CLEAR_BYTE clears byte `index & 4095` of the addressed slot's frame;
 *  - a kernel page lives until all of its grants have ended, deferred ones
 *    included;
 *  - mmap needs every granted slot of each covered page to be live, and
 *    ignores the padding slots of a partial last page.
 *
 * On a 4K kernel every page holds exactly one grant (per_page == 1) and all
 * of this reduces to upstream's behaviour: the same tests must pass on both
 * modules there. The remote is a gntdev mapping of one of our own refs: a
 * 64K kernel's gntdev maps one grant per kernel page, with the 4K frame at
 * offset 0 of a page_size() long mapping, so refs are mapped one at a time
 * and only the first 4096 bytes of such a mapping are touched.
 */
#define _GNU_SOURCE

#include "kselftest_harness.h"
#include "gntalloc_util.h"

/* 4K grants per kernel page: 1 on 4K kernels, 16 on 64K kernels. */
static long split_per_page(void)
{
	return page_size() / XPAGE;
}

/* Index space that an allocation of n grants takes: whole kernel pages. */
static uint64_t split_span(uint32_t n)
{
	return (uint64_t)((n + split_per_page() - 1) / split_per_page()) * page_size();
}

/* The (page-aligned) mmap offset of the kernel page holding slot key `key`. */
static uint64_t split_page_of(uint64_t key)
{
	return key & ~(uint64_t)(page_size() - 1);
}

/*
 * Byte i of the 4K pattern with seed s (inverted with inv): changes with i
 * inside each 256-byte run and from one run to the next.
 */
static uint8_t split_pat(unsigned int s, unsigned int i, int inv)
{
	uint8_t b = (uint8_t)(s + i + 31 * (i >> 8));

	return inv ? (uint8_t)~b : b;
}

static void split_fill(volatile uint8_t *p, unsigned int s, int inv)
{
	for (unsigned int i = 0; i < XPAGE; i++)
		p[i] = split_pat(s, i, inv);
}

/* First offset where the 4K frame at p differs from the pattern, or -1. */
static long split_pat_diff(const volatile uint8_t *p, unsigned int s, int inv)
{
	for (unsigned int i = 0; i < XPAGE; i++)
		if (p[i] != split_pat(s, i, inv))
			return i;
	return -1;
}

/* First offset in [0, len) where p is not `val` (offset `skip` excepted), or -1. */
static long split_val_diff(const volatile uint8_t *p, size_t len, uint8_t val, long skip)
{
	for (size_t i = 0; i < len; i++)
		if ((long)i != skip && p[i] != val)
			return i;
	return -1;
}

/*
 * The remote's view of one grant: a gntdev mapping of a single ref, one
 * kernel page long, whose first 4096 bytes are the granted frame.
 */
struct split_view {
	int fd;
	uint64_t index;
	volatile uint8_t *addr;
};

static int split_view_map(struct split_view *r, uint32_t ref, int writable)
{
	struct ioctl_gntdev_map_grant_ref op = { .count = 1 };
	void *p;
	int e;

	r->addr = NULL;
	r->fd = open("/dev/xen/gntdev", O_RDWR | O_CLOEXEC);
	if (r->fd < 0)
		return -errno;
	op.refs[0].domid = DOMID_SELF_ID;
	op.refs[0].ref = ref;
	if (ioctl(r->fd, IOCTL_GNTDEV_MAP_GRANT_REF, &op))
		goto fail;
	r->index = op.index;
	p = mmap(NULL, page_size(), writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
		 r->fd, op.index);
	if (p == MAP_FAILED)
		goto fail;
	r->addr = p;
	return 0;
fail:
	e = -errno;
	close(r->fd); /* releases a mapped-but-not-mmapped grant too */
	r->fd = -1;
	return e;
}

static void split_view_unmap(struct split_view *r)
{
	struct ioctl_gntdev_unmap_grant_ref op = { .index = r->index, .count = 1 };

	if (r->fd < 0)
		return;
	if (r->addr)
		munmap((void *)r->addr, page_size());
	ioctl(r->fd, IOCTL_GNTDEV_UNMAP_GRANT_REF, &op);
	close(r->fd);
	r->fd = -1;
	r->addr = NULL;
}

/*
 * Ours only: polls debugfs counter `name` every 100 ms until it equals
 * `want` or `ms` have passed; returns the last value read. Each round also
 * makes an ioctl (a DEALLOC of count 0, which fails with EINVAL), which
 * retries deferred grants, besides the module's own 100 ms reclaim.
 */
static long split_poll_stat(int fd, const char *name, long want, int ms)
{
	long v = rust_stat(name);

	for (int t = 0; v != want && t < ms; t += 100) {
		usleep(100000);
		gnt_dealloc(fd, 0, 0);
		v = rust_stat(name);
	}
	return v;
}

/*
 * module_pages() once it is at most `at_most`, or after `ms`. The C driver's
 * deferred grants are freed by the grant-table core's timer (1 s period).
 */
static long split_poll_pages(long at_most, int ms)
{
	long v = module_pages();

	for (int t = 0; v > at_most && t < ms; t += 100) {
		usleep(100000);
		v = module_pages();
	}
	return v;
}

FIXTURE(gnt)
{
	int fd;
};

FIXTURE_SETUP(gnt)
{
	self->fd = open(GNTALLOC_DEV, O_RDWR);
	ASSERT_LE(0, self->fd) TH_LOG("open %s: %s", GNTALLOC_DEV, strerror(errno));
	ASSERT_LE(100, get_limit()) TH_LOG("these tests need a limit of at least 100 grants");
	ASSERT_TRUE(split_per_page() == 1 || split_per_page() == 4 || split_per_page() == 16)
		TH_LOG("page size %ld", page_size());
}

FIXTURE_TEARDOWN(gnt)
{
	/* Leave no deferred grant behind for the next test (ours; upstream's core frees its own). */
	if (is_rust())
		split_poll_stat(self->fd, "deferred", 0, 2000);
	close(self->fd);
}

/*
 * ALLOC(N): a kernel-page aligned index, the next ALLOC ceil(N/per_page)
 * pages further, N distinct refs, N consecutive 4K slot keys (the padding
 * slots after them are not keys), and DEALLOC(index, N) takes them all.
 */
TEST_F(gnt, split_index_layout)
{
	long ps = page_size(), per = split_per_page();
	uint32_t ids[41];
	uint64_t a, b, expect = 0;

	TH_LOG("page size %ld: %ld grant(s) per page", ps, per);
	for (uint32_t n = 1; n <= 40; n++) {
		unsigned int dups = 0, reserved = 0;

		ASSERT_EQ(0, gnt_alloc(self->fd, n, 0, &a, ids)) TH_LOG("N=%u", n);
		ASSERT_EQ(0, gnt_alloc(self->fd, 1, 0, &b, ids + n)) TH_LOG("N=%u", n);
		EXPECT_EQ(0, a % ps) TH_LOG("N=%u: index %#llx not page aligned", n,
					    (unsigned long long)a);
		EXPECT_EQ(expect, a) TH_LOG("N=%u: index %#llx", n, (unsigned long long)a);
		EXPECT_EQ(a + split_span(n), b)
			TH_LOG("N=%u: ALLOC(N) at %#llx, the next one at %#llx instead of %#llx", n,
			       (unsigned long long)a, (unsigned long long)b,
			       (unsigned long long)(a + split_span(n)));
		expect = b + split_span(1);
		if (is_rust()) {
			EXPECT_EQ(n + 1, fdinfo(self->fd, "grants")) TH_LOG("N=%u", n);
			EXPECT_EQ(expect, fdinfo(self->fd, "next_index")) TH_LOG("N=%u", n);
		}
		for (uint32_t i = 0; i <= n; i++) {
			reserved += ids[i] < 8;
			for (uint32_t j = 0; j < i; j++)
				dups += ids[i] == ids[j];
		}
		EXPECT_EQ(0, dups) TH_LOG("N=%u: %u duplicate ref(s)", n, dups);
		EXPECT_EQ(0, reserved) TH_LOG("N=%u: %u reserved ref(s) handed out", n, reserved);
		/* The slot after the last grant is padding unless the last page is full. */
		if (n % per) {
			EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, a + n * XPAGE, 1)) TH_LOG("N=%u", n);
			EXPECT_EQ(-ENOENT, gnt_notify(self->fd, a + n * XPAGE + 5,
						      UNMAP_NOTIFY_CLEAR_BYTE, 0)) TH_LOG("N=%u", n);
		}
		EXPECT_EQ(0, gnt_dealloc(self->fd, a, n)) TH_LOG("N=%u: DEALLOC of all N slots", n);
		EXPECT_EQ(0, gnt_dealloc(self->fd, b, 1)) TH_LOG("N=%u", n);
		if (is_rust()) {
			EXPECT_EQ(0, fdinfo(self->fd, "grants")) TH_LOG("N=%u", n);
		}
	}
}

/*
 * Every grant is its own 4K frame: for each N, what the local mapping holds
 * at offset k*4096 is exactly what the remote sees through ref k, and what
 * the remote writes through ref k lands there and nowhere else.
 */
TEST_F(gnt, split_each_grant_own_bytes)
{
	REQUIRE_REMOTE();
	uint32_t ids[40];
	long in_use = -1;
	int bad = 0;

	if (is_rust()) {
		EXPECT_EQ(0, split_poll_stat(self->fd, "deferred", 0, 2000));
		in_use = rust_stat("in_use");
		ASSERT_LE(0, in_use);
	}
	for (uint32_t n = 1; n <= 40 && !bad; n++) {
		size_t len = n * XPAGE, span = split_span(n);
		uint64_t idx;
		uint8_t *local;
		long d;

		ASSERT_EQ(0, gnt_alloc(self->fd, n, GNTALLOC_FLAG_WRITABLE, &idx, ids)) TH_LOG("N=%u", n);
		local = gnt_map(self->fd, idx, len);
		ASSERT_NE(MAP_FAILED, local) TH_LOG("N=%u: mmap of N*4096: %s", n, strerror(errno));
		d = split_val_diff(local + len, span - len, 0, -1);
		EXPECT_EQ(-1, d) TH_LOG("N=%u: padding byte %ld not zero", n, d);
		for (uint32_t k = 0; k < n; k++)
			split_fill(local + k * XPAGE, n * 7 + k * 13, 0);

		for (uint32_t k = 0; k < n && !bad; k++) {
			struct split_view r = { .fd = -1 };
			unsigned int s = n * 7 + k * 13;

			ASSERT_EQ(0, split_view_map(&r, ids[k], 1)) TH_LOG("N=%u k=%u: gntdev map of ref %u",
								       n, k, ids[k]);
			d = split_pat_diff(r.addr, s, 0);
			EXPECT_EQ(-1, d) TH_LOG("N=%u k=%u: ref %u differs from local offset %#lx at byte %ld",
						n, k, ids[k], (unsigned long)(k * XPAGE), d);
			bad |= d != -1;
			split_fill(r.addr, s, 1);
			d = split_pat_diff(local + k * XPAGE, s, 1);
			EXPECT_EQ(-1, d) TH_LOG("N=%u k=%u: the remote's write is not at local offset %#lx (byte %ld)",
						n, k, (unsigned long)(k * XPAGE), d);
			bad |= d != -1;
			if (k > 0) {
				d = split_pat_diff(local + (k - 1) * XPAGE, s - 13, 1);
				EXPECT_EQ(-1, d) TH_LOG("N=%u k=%u: slot k-1 changed at byte %ld", n, k, d);
				bad |= d != -1;
			}
			if (k + 1 < n) {
				d = split_pat_diff(local + (k + 1) * XPAGE, s + 13, 0);
				EXPECT_EQ(-1, d) TH_LOG("N=%u k=%u: slot k+1 changed at byte %ld", n, k, d);
				bad |= d != -1;
			}
			split_view_unmap(&r);
		}
		for (uint32_t k = 0; k < n && !bad; k++) {
			d = split_pat_diff(local + k * XPAGE, n * 7 + k * 13, 1);
			EXPECT_EQ(-1, d) TH_LOG("N=%u: slot %u at the end: byte %ld", n, k, d);
			bad |= d != -1;
		}
		d = split_val_diff(local + len, span - len, 0, -1);
		EXPECT_EQ(-1, d) TH_LOG("N=%u: padding byte %ld written", n, d);
		munmap(local, len);
		EXPECT_EQ(0, gnt_dealloc(self->fd, idx, n)) TH_LOG("N=%u", n);
	}
	/* gntdev may end its mapping asynchronously: a grant can be deferred for a moment. */
	if (is_rust()) {
		EXPECT_EQ(in_use, split_poll_stat(self->fd, "in_use", in_use, 2000));
	}
}

/*
 * CLEAR_BYTE addresses the byte `index & 4095` of the slot `index & ~4095`:
 * for slot k of a 16-grant allocation that is local offset k*4096 + off,
 * i.e. byte off of ref k's frame (offsets >= 4096 within a 64K page). It
 * fires only when the grant is released for the last time, and touches
 * nothing else. The C driver on a 64K kernel fails this (12-bit offset,
 * one grant per page).
 */
TEST_F(gnt, split_notify_byte_subpages)
{
	REQUIRE_REMOTE();
	static const unsigned int offs[] = { 0, 1, 4095, 21, 2048, 4094, 7 };
	enum { G = 16 };
	uint32_t ids[G];

	for (unsigned int k = 1; k < G; k++) {
		struct split_view mine = { .fd = -1 }, prev = { .fd = -1 }, next = { .fd = -1 };
		unsigned int off = offs[k % (sizeof(offs) / sizeof(offs[0]))];
		uint64_t idx;
		uint8_t *local;
		long d;

		ASSERT_EQ(0, gnt_alloc(self->fd, G, GNTALLOC_FLAG_WRITABLE, &idx, ids)) TH_LOG("k=%u", k);
		local = gnt_map(self->fd, idx, G * XPAGE);
		ASSERT_NE(MAP_FAILED, local) TH_LOG("k=%u: mmap: %s", k, strerror(errno));
		memset(local, 0xaa, G * XPAGE);
		ASSERT_EQ(0, split_view_map(&mine, ids[k], 0)) TH_LOG("k=%u", k);
		ASSERT_EQ(0, split_view_map(&prev, ids[k - 1], 0)) TH_LOG("k=%u", k);
		if (k + 1 < G) {
			ASSERT_EQ(0, split_view_map(&next, ids[k + 1], 0)) TH_LOG("k=%u", k);
		}
		d = split_val_diff(mine.addr, XPAGE, 0xaa, -1);
		EXPECT_EQ(-1, d) TH_LOG("k=%u: ref %u does not show slot k's bytes (byte %ld)", k,
					ids[k], d);

		ASSERT_EQ(0, gnt_notify(self->fd, idx + k * XPAGE + off, UNMAP_NOTIFY_CLEAR_BYTE, 0))
			TH_LOG("k=%u off=%u", k, off);
		if (is_rust()) {
			EXPECT_EQ(1, fdinfo(self->fd, "notify")) TH_LOG("k=%u off=%u", k, off);
		}
		EXPECT_EQ(0xaa, mine.addr[off]) TH_LOG("k=%u off=%u: cleared by SET_UNMAP_NOTIFY", k, off);
		EXPECT_EQ(0xaa, local[k * XPAGE + off]) TH_LOG("k=%u off=%u", k, off);
		munmap(local, G * XPAGE);
		EXPECT_EQ(0xaa, mine.addr[off])
			TH_LOG("k=%u off=%u: cleared at munmap while the grant is still listed", k, off);

		/* No local mapping left: the DEALLOC releases slot k and fires. */
		ASSERT_EQ(0, gnt_dealloc(self->fd, idx + k * XPAGE, 1)) TH_LOG("k=%u", k);
		EXPECT_EQ(0, mine.addr[off]) TH_LOG("k=%u off=%u: not cleared at DEALLOC", k, off);
		d = split_val_diff(mine.addr, XPAGE, 0xaa, off);
		EXPECT_EQ(-1, d) TH_LOG("k=%u off=%u: byte %ld of ref %u changed too", k, off, d, ids[k]);
		d = split_val_diff(prev.addr, XPAGE, 0xaa, -1);
		EXPECT_EQ(-1, d) TH_LOG("k=%u off=%u: slot k-1 changed at byte %ld", k, off, d);
		if (k + 1 < G) {
			d = split_val_diff(next.addr, XPAGE, 0xaa, -1);
			EXPECT_EQ(-1, d) TH_LOG("k=%u off=%u: slot k+1 changed at byte %ld", k, off, d);
		}
		EXPECT_EQ(-ENOENT, gnt_notify(self->fd, idx + k * XPAGE, UNMAP_NOTIFY_CLEAR_BYTE, 0))
			TH_LOG("k=%u", k);
		split_view_unmap(&mine);
		split_view_unmap(&prev);
		split_view_unmap(&next);
		EXPECT_EQ(0, gnt_dealloc(self->fd, idx, k)) TH_LOG("k=%u", k);
		if (k + 1 < G) {
			EXPECT_EQ(0, gnt_dealloc(self->fd, idx + (k + 1) * XPAGE, G - k - 1))
				TH_LOG("k=%u", k);
		}
	}
}

/* Whether the kernel page at `pg` holds one of slots 3..5 (deallocated below). */
static int split_holds_hole(uint64_t idx, uint64_t pg)
{
	for (unsigned int j = 3; j <= 5; j++)
		if (split_page_of(idx + j * XPAGE) == pg)
			return 1;
	return 0;
}

/*
 * DEALLOC of a sub-range inside a kernel page: those slots go (in the file's
 * and the module's counts), the page's other grants keep their bytes, mmap
 * of that page is refused. A page whose last grant is deferred (the remote
 * still maps it) stays allocated until the remote lets go, then is freed.
 * Slots 0..15 are the first kernel page on 64K (16 pages on 4K), 16..31 the
 * second.
 */
TEST_F(gnt, split_dealloc_subrange_keeps_page)
{
	REQUIRE_REMOTE();
	enum { G = 32 };
	static const unsigned int probe[] = { 0, 2, 3, 4, 5, 6, 15, 16, 31 };
	long ps = page_size(), per = split_per_page();
	long in_use0 = -1, pages0, held, v;
	struct split_view r = { .fd = -1 };
	uint32_t ids[G];
	uint64_t idx;
	uint8_t *p;
	long d;

	if (is_rust()) {
		EXPECT_EQ(0, split_poll_stat(self->fd, "deferred", 0, 2000));
		in_use0 = rust_stat("in_use");
		ASSERT_LE(0, in_use0);
	}
	pages0 = module_pages();
	if (pages0 < 0)
		TH_LOG("no page_owner: the page counts are not checked");

	ASSERT_EQ(0, gnt_alloc(self->fd, G, GNTALLOC_FLAG_WRITABLE, &idx, ids));
	p = gnt_map(self->fd, idx, G * XPAGE);
	ASSERT_NE(MAP_FAILED, p) TH_LOG("mmap: %s", strerror(errno));
	for (unsigned int k = 0; k < G; k++)
		split_fill(p + k * XPAGE, 100 + k * 13, 0);
	munmap(p, G * XPAGE);
	if (is_rust()) {
		EXPECT_EQ(G, fdinfo(self->fd, "grants"));
		EXPECT_EQ(in_use0 + G, rust_stat("in_use"));
	}
	if (pages0 >= 0 && is_rust()) {
		EXPECT_EQ(pages0 + (G + per - 1) / per, module_pages());
	}

	/* Slots 3..5: the middle of the first kernel page on 64K. */
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx + 3 * XPAGE, 3));
	if (is_rust()) {
		EXPECT_EQ(G - 3, fdinfo(self->fd, "grants"));
		EXPECT_EQ(in_use0 + G - 3, rust_stat("in_use"));
	}
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, idx + 4 * XPAGE, 1));
	EXPECT_EQ(-EINVAL, gnt_dealloc(self->fd, idx + 2 * XPAGE, 2)); /* over the hole: nothing goes */

	/* The page's other grants still carry their bytes. */
	for (unsigned int s = 2; s <= 6; s += 4) {
		ASSERT_EQ(0, split_view_map(&r, ids[s], 0)) TH_LOG("slot %u", s);
		d = split_pat_diff(r.addr, 100 + s * 13, 0);
		EXPECT_EQ(-1, d) TH_LOG("slot %u: byte %ld", s, d);
		split_view_unmap(&r);
	}

	/* A page can be mapped only while all its grants are live. */
	for (unsigned int i = 0; i < sizeof(probe) / sizeof(probe[0]); i++) {
		unsigned int s = probe[i];
		uint64_t pg = split_page_of(idx + s * XPAGE);
		uint8_t *q = gnt_map(self->fd, pg, ps);
		int e = errno;

		if (split_holds_hole(idx, pg)) {
			EXPECT_EQ(MAP_FAILED, q) TH_LOG("slot %u: its page (offset %#llx) lost slots 3..5",
							s, (unsigned long long)pg);
			if (q == MAP_FAILED) {
				EXPECT_EQ(ENOENT, e) TH_LOG("slot %u", s);
			}
		} else {
			EXPECT_NE(MAP_FAILED, q) TH_LOG("slot %u: mmap of its page: %s", s, strerror(e));
		}
		if (q != MAP_FAILED) {
			d = split_pat_diff(q + (idx + s * XPAGE - pg), 100 + s * 13, 0);
			EXPECT_EQ(-1, d) TH_LOG("slot %u through its page: byte %ld", s, d);
			munmap(q, ps);
		}
	}
	EXPECT_EQ(MAP_FAILED, gnt_map(self->fd, idx, G * XPAGE));
	EXPECT_EQ(ENOENT, errno);

	/* The remote holds slot 10; every other grant of slots 0..15 goes, then slot 10. */
	ASSERT_EQ(0, split_view_map(&r, ids[10], 1));
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx, 3));
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx + 6 * XPAGE, 4));
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx + 11 * XPAGE, 5));
	d = split_pat_diff(r.addr, 100 + 10 * 13, 0);
	EXPECT_EQ(-1, d) TH_LOG("slot 10 after its neighbours went: byte %ld", d);
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx + 10 * XPAGE, 1));
	EXPECT_EQ(split_pat(100 + 10 * 13, 0, 0), r.addr[0]);
	r.addr[100] = 0x5c; /* the remote's mapping is still valid, and writable */
	EXPECT_EQ(0x5c, r.addr[100]);
	if (is_rust()) {
		EXPECT_EQ(1, split_poll_stat(self->fd, "deferred", 1, 2000));
		EXPECT_EQ(in_use0 + 16 + 1, rust_stat("in_use")) TH_LOG("the deferred grant still counts");
		EXPECT_EQ(16, fdinfo(self->fd, "grants"));
	}
	/* Slots 16..31's pages, and slot 10's. */
	held = (16 + per - 1) / per + 1;
	if (pages0 >= 0) {
		v = module_pages();
		if (is_rust()) {
			EXPECT_EQ(pages0 + held, v) TH_LOG("slot 10's page must outlive its neighbours");
		} else {
			EXPECT_LE(held, v);
		}
	}

	split_view_unmap(&r);
	ASSERT_EQ(0, gnt_dealloc(self->fd, idx + 16 * XPAGE, 16));
	if (is_rust()) {
		EXPECT_EQ(0, split_poll_stat(self->fd, "deferred", 0, 2000))
			TH_LOG("slot 10 not reclaimed within 2 s of the remote unmap");
		EXPECT_EQ(in_use0, split_poll_stat(self->fd, "in_use", in_use0, 500));
		EXPECT_EQ(0, fdinfo(self->fd, "grants"));
	}
	if (pages0 >= 0) {
		v = split_poll_pages(pages0, 3000);
		if (is_rust()) {
			EXPECT_EQ(pages0, v) TH_LOG("%ld page(s) not freed", v - pages0);
		} else {
			EXPECT_GE(pages0, v) TH_LOG("%ld page(s) not freed", v - pages0);
		}
	}
}

/*
 * mmap covers whole kernel pages: all granted slots of each must be live,
 * the padding slots of the last page do not count, and the offset must be
 * page aligned (a slot key inside a 64K page is not an mmap offset).
 */
TEST_F(gnt, split_mmap_needs_every_slot)
{
	enum { G = 20, GONE = 17 };
	static const unsigned int probe[] = { 0, 1, 15, 16, 17, 18, 19 };
	long ps = page_size(), per = split_per_page();
	uint64_t span = split_span(G), idx, last = 0, gone;
	uint8_t *p, *q;
	long d;

	ASSERT_EQ(0, gnt_alloc(self->fd, G, GNTALLOC_FLAG_WRITABLE, &idx, NULL));
	p = gnt_map(self->fd, idx, G * XPAGE);
	ASSERT_NE(MAP_FAILED, p) TH_LOG("mmap of N*4096: %s (padding slots must not count)",
					strerror(errno));
	for (unsigned int k = 0; k < G; k++) {
		p[k * XPAGE] = k + 1;
		p[k * XPAGE + XPAGE - 1] = k + 1;
	}
	d = split_val_diff(p + G * XPAGE, span - G * XPAGE, 0, -1);
	EXPECT_EQ(-1, d) TH_LOG("padding byte %ld not zero", d);
	munmap(p, G * XPAGE);

	/* All of the allocation's pages, but not one more. */
	p = gnt_map(self->fd, idx, span);
	EXPECT_NE(MAP_FAILED, p) TH_LOG("mmap of the whole span: %s", strerror(errno));
	if (p != MAP_FAILED) {
		EXPECT_EQ(G, p[(G - 1) * XPAGE]);
		munmap(p, span);
	}
	EXPECT_EQ(MAP_FAILED, gnt_map(self->fd, idx, span + ps));
	EXPECT_EQ(ENOENT, errno);
	/* The last page alone, padding included. */
	last = split_page_of(idx + (G - 1) * XPAGE);
	q = gnt_map(self->fd, last, ps);
	EXPECT_NE(MAP_FAILED, q) TH_LOG("mmap of the last page: %s", strerror(errno));
	if (q != MAP_FAILED) {
		EXPECT_EQ(G, q[idx + (G - 1) * XPAGE - last]);
		munmap(q, ps);
	}

	ASSERT_EQ(0, gnt_dealloc(self->fd, idx + GONE * XPAGE, 1));
	gone = split_page_of(idx + GONE * XPAGE);
	for (unsigned int i = 0; i < sizeof(probe) / sizeof(probe[0]); i++) {
		unsigned int s = probe[i];
		uint64_t pg = split_page_of(idx + s * XPAGE);
		int e;

		q = gnt_map(self->fd, pg, ps);
		e = errno;
		if (pg == gone) {
			EXPECT_EQ(MAP_FAILED, q) TH_LOG("slot %u: its page (offset %#llx) lost slot %u", s,
							(unsigned long long)pg, GONE);
			if (q == MAP_FAILED) {
				EXPECT_EQ(ENOENT, e) TH_LOG("slot %u", s);
			}
		} else {
			EXPECT_NE(MAP_FAILED, q) TH_LOG("slot %u: mmap of its page: %s", s, strerror(e));
		}
		if (q != MAP_FAILED) {
			EXPECT_EQ(s + 1, q[idx + s * XPAGE - pg]) TH_LOG("slot %u", s);
			munmap(q, ps);
		}
	}
	EXPECT_EQ(MAP_FAILED, gnt_map(self->fd, idx, G * XPAGE));
	EXPECT_EQ(ENOENT, errno);
	if (per > 1) {
		/* A slot key that is not page aligned: refused by the mmap syscall itself. */
		EXPECT_EQ(MAP_FAILED, gnt_map(self->fd, idx + XPAGE, ps));
		EXPECT_EQ(EINVAL, errno);
	} else {
		TH_LOG("4K pages: every slot key is a page, no misaligned offset to try");
	}
	EXPECT_EQ(0, gnt_dealloc(self->fd, idx, GONE));
	EXPECT_EQ(0, gnt_dealloc(self->fd, idx + (GONE + 1) * XPAGE, G - GONE - 1));
}

TEST_HARNESS_MAIN
