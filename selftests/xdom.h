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
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xengnttab.h>
#include <xenstore.h>

#include "gntalloc_util.h" /* rust_stat() */

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


/*
 * Maps each of the n grants of `domid` on its own (see `struct area` in xdom_agent.c for why
 * a kernel with pages bigger than a grant needs this): the n addresses, in a malloc()ed
 * array, or NULL (and nothing left mapped) with errno set.
 */
static inline uint8_t **xdom_map_each(xengnttab_handle *gt, uint32_t domid, const uint32_t *refs,
				      unsigned int n, int prot)
{
	uint8_t **each = calloc(n, sizeof(*each));
	int err;

	if (!each)
		return NULL;
	for (unsigned int k = 0; k < n; k++) {
		each[k] = xengnttab_map_grant_ref(gt, domid, refs[k], prot);
		if (each[k])
			continue;
		err = errno;
		while (k--)
			xengnttab_unmap(gt, each[k], 1);
		free(each);
		errno = err;
		return NULL;
	}
	return each;
}

/* Unmaps what xdom_map_each() mapped and frees the array: 0, or -1 if an unmap failed. */
static inline int xdom_unmap_each(xengnttab_handle *gt, uint8_t **each, unsigned int n)
{
	int rc = 0;

	for (unsigned int k = 0; k < n; k++)
		rc |= xengnttab_unmap(gt, each[k], 1);
	free(each);
	return rc ? -1 : 0;
}

/*
 * libxenvchan transfers: a stream of `bytes` pseudo-random bytes (xorshift64
 * from `seed`), which the reader regenerates and compares as it goes, and an
 * FNV-1a checksum of what went through, which both sides report. Both return
 * 0 when the whole stream went through intact, otherwise say why in msg.
 */
#include <libxenvchan.h>

/*
 * Bytes of each ring: four 4K grants where the client's kernel has 4K pages; one where it
 * has bigger ones. libxenvchan's client maps a ring of several grants with one
 * xengnttab_map_domain_grant_refs() call (tools/libs/vchan/init.c, init_gnt_cli), which a
 * 64K kernel's gntdev refuses (see xdom_map_each); one grant at a time it maps.
 */
#define XDOM_VCHAN_RING 16384
#define XDOM_VCHAN_RING_ONE_GRANT 4096
#define XDOM_VCHAN_CHUNK 16384

/* The ring size for a client whose kernel pages are `client_page` bytes. */
static inline unsigned int xdom_vchan_ring(long client_page)
{
	return client_page == XDOM_PAGE ? XDOM_VCHAN_RING : XDOM_VCHAN_RING_ONE_GRANT;
}

/* Bytes of the ring that v reads from. */
static inline unsigned int xdom_vchan_read_ring(const struct libxenvchan *v)
{
	return 1u << v->read.order;
}

struct xdom_stream {
	uint64_t state, fnv;
};

static inline void xdom_stream_init(struct xdom_stream *st, uint64_t seed)
{
	st->state = seed * 0x9e3779b97f4a7c15ull + 1;
	st->fnv = 0xcbf29ce484222325ull;
}

static inline uint8_t xdom_stream_next(struct xdom_stream *st)
{
	st->state ^= st->state << 13;
	st->state ^= st->state >> 7;
	st->state ^= st->state << 17;
	return (uint8_t)(st->state >> 32);
}

static inline void xdom_stream_sum(struct xdom_stream *st, uint8_t b)
{
	st->fnv = (st->fnv ^ b) * 0x100000001b3ull;
}

/*
 * Waits up to 30 s for the peer's next event: 0 when one came, -1 when none
 * did (a stalled channel fails the transfer instead of hanging it).
 */
static inline int xdom_vchan_wait(struct libxenvchan *v)
{
	struct pollfd pfd = { .fd = libxenvchan_fd_for_select(v), .events = POLLIN };

	if (poll(&pfd, 1, 30000) != 1)
		return -1;
	return libxenvchan_wait(v);
}

/* A server waits (up to 60 s) for its client: 0 once it is connected. */
static inline int xdom_vchan_connected(struct libxenvchan *v)
{
	for (int i = 0; i < 600 && libxenvchan_is_open(v) == 2; i++) {
		struct pollfd pfd = { .fd = libxenvchan_fd_for_select(v), .events = POLLIN };

		if (poll(&pfd, 1, 100) == 1)
			libxenvchan_wait(v);
	}
	return libxenvchan_is_open(v) == 1 ? 0 : -1;
}

static inline int xdom_vchan_send(struct libxenvchan *v, uint64_t bytes, uint64_t seed,
				  uint64_t *sum, char *msg, size_t len)
{
	static uint8_t buf[XDOM_VCHAN_CHUNK];
	struct xdom_stream st;
	uint64_t done = 0;

	xdom_stream_init(&st, seed);
	while (done < bytes) {
		size_t n = bytes - done < sizeof(buf) ? bytes - done : sizeof(buf), off = 0;

		for (size_t i = 0; i < n; i++) {
			buf[i] = xdom_stream_next(&st);
			xdom_stream_sum(&st, buf[i]);
		}
		while (off < n) {
			int w = libxenvchan_write(v, buf + off, n - off);

			if (w < 0) {
				snprintf(msg, len, "write failed after %llu bytes",
					 (unsigned long long)(done + off));
				return -1;
			}
			if (w == 0 && xdom_vchan_wait(v) < 0) {
				snprintf(msg, len, "no room for 30 s after %llu bytes",
					 (unsigned long long)(done + off));
				return -1;
			}
			off += w;
		}
		done += n;
	}
	*sum = st.fnv;
	return 0;
}

/*
 * What a wrong byte looks like, for the test bed's experiments (issue 17): where
 * it lies in the ring (the stream's offset modulo the ring size is its offset in
 * the ring) and in its 4K page, whether it is what the same ring offset held one
 * lap earlier (`lap`: the expected bytes of the last lap, indexed by ring
 * offset), and how many of the bytes read with it are wrong, and zero.
 */
static inline void xdom_vchan_mismatch(char *msg, size_t len, uint64_t at, const uint8_t *got,
				       int n, struct xdom_stream st, const uint8_t *lap,
				       unsigned int ring)
{
	uint64_t ring_off = at % ring;
	int wrong = 0, zero = 0, stale = 0;

	/* st is the generator at `at`, by value: it runs ahead here only. */
	for (int i = 0; i < n; i++) {
		uint8_t want = xdom_stream_next(&st);

		if (got[i] != want) {
			wrong++;
			zero += got[i] == 0;
			stale += at + i >= ring && got[i] == lap[(ring_off + i) % ring];
		}
	}
	snprintf(msg, len,
		 "byte %llu (ring offset %llu of %u, page offset %llu) is %#x; of the %d bytes "
		 "read from there %d are wrong, %d of them zero and %d the previous lap's",
		 (unsigned long long)at, (unsigned long long)ring_off, ring,
		 (unsigned long long)(at % 4096), got[0], n, wrong, zero, stale);
}

/*
 * Compares the `n` bytes read at stream offset `done` with what the stream says, and sums
 * them: 0 if every byte is right, otherwise -1 with what the first wrong one looks like in
 * msg. `lap` (XDOM_VCHAN_RING bytes) keeps the last lap's expected bytes of the `ring`
 * bytes long ring (at most XDOM_VCHAN_RING) for that report.
 */
static inline int xdom_vchan_compare(struct xdom_stream *st, uint8_t *lap, unsigned int ring,
				     uint64_t done, const uint8_t *buf, int n, char *msg,
				     size_t len)
{
	for (int i = 0; i < n; i++) {
		struct xdom_stream here = *st;
		uint8_t want = xdom_stream_next(st);

		if (buf[i] != want) {
			xdom_vchan_mismatch(msg, len, done + i, buf + i, n - i, here, lap, ring);
			return -1;
		}
		lap[(done + i) % ring] = want;
		xdom_stream_sum(st, buf[i]);
	}
	return 0;
}

static inline int xdom_vchan_receive(struct libxenvchan *v, uint64_t bytes, uint64_t seed,
				     uint64_t *sum, char *msg, size_t len)
{
	static uint8_t buf[XDOM_VCHAN_CHUNK], lap[XDOM_VCHAN_RING];
	struct xdom_stream st;
	uint64_t done = 0;

	xdom_stream_init(&st, seed);
	while (done < bytes) {
		size_t want = bytes - done < sizeof(buf) ? bytes - done : sizeof(buf);
		int r = libxenvchan_read(v, buf, want);

		if (r < 0) {
			snprintf(msg, len, "the channel closed after %llu of %llu bytes",
				 (unsigned long long)done, (unsigned long long)bytes);
			return -1;
		}
		if (r == 0) {
			if (xdom_vchan_wait(v) < 0) {
				snprintf(msg, len, "no data for 30 s after %llu bytes",
					 (unsigned long long)done);
				return -1;
			}
			continue;
		}
		if (xdom_vchan_compare(&st, lap, xdom_vchan_read_ring(v), done, buf, r, msg, len))
			return -1;
		done += r;
	}
	*sum = st.fnv;
	return 0;
}

#endif /* XDOM_H */
