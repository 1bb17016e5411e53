// SPDX-License-Identifier: GPL-2.0
/*
 * Model-based random tester for /dev/xen/gntalloc. This file owns the fuzzer:
 * random sequences of operations over a few open files of the device in one
 * process (ALLOC, DEALLOC, SET_UNMAP_NOTIFY, open, close, dup, mmap, munmap,
 * mprotect, reads and writes through the mappings, fork), each checked against
 * a user-space model of the driver. The model predicts every return value and
 * errno, the index ALLOC returns, the bytes each mapping shows (a pattern
 * written through one mapping must read back through every other mapping of
 * the same page), when unmap notifications fire (SEND_EVENT on event channels
 * looped back within the domain), and, on our module, its debugfs counters and
 * fdinfo fields.
 *
 * It needs no remote (gntdev) and no fault injection, so it runs on every pass
 * and on both modules. Sequences that reach upstream's known bugs are not
 * generated (B2-B5, B8: no ALLOC or mmap fails past its checks, the result
 * buffer is always writable, nothing is near the limit or the grant table's
 * size) or, for B1 (an mmap spanning allocations with another grant created
 * between them), not executed on the C reference. B6 is a documented
 * difference, not an accident: upstream gives each grant a kernel page of its
 * own, ours packs 4K grants into pages; the model takes the slot size (the
 * unit of index keys, DEALLOC counts and notify lookups) per module, which on
 * 4K kernels is 4096 for both.
 *
 * Options come from the environment, since the harness owns argv:
 *   XGR_FUZZ_SEED     seed of run_0 (default 1); run_1 and run_2 use seed + 1, + 2
 *   XGR_FUZZ_OPS      random operations per run (default 500)
 *   XGR_FUZZ_SECONDS  time budget per run (default 10, at most 100): a run that
 *                     spends it stops early, still cleans up, and says so
 * A failed prediction prints the seed, the operation, what was expected and
 * what was seen, the last operations, and the command that replays the run.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <time.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "gntalloc_util.h"

#define NFD		5	/* fd slots: up to 5 fds, on up to 5 files */
#define MAX_FILES	32	/* file records: fd slots plus files only mappings keep */
#define MAX_PAGES	256	/* kernel-page records alive at once (> LIVE_CAP + one ALLOC) */
#define MAX_SPP		16	/* 4K frames per kernel page: 64K pages at most */
#define MAX_ALLOC	(2 * MAX_SPP)
#define MAX_MAPS	12
#define MAX_MAP_PAGES	8
#define NPORTS		3
/*
 * Grants alive at once, mapped ones included: far below the default limit
 * (1024) and the grant table, so that no ALLOC can fail past its first check
 * (upstream's B2/B3 live there) and the other tests' headroom is untouched.
 */
#define LIVE_CAP	128
#define HISTORY		20
#define LINE		256
#define DEFAULT_OPS	500
#define DEFAULT_SECONDS	10
#define MAX_SECONDS	100
/* An event the model says is due must arrive within this (the send is synchronous). */
#define EVENT_WAIT_MS	2000
/* Beyond any event channel: evtchn_get() refuses it (EINVAL), as the ABI tests do. */
#define BAD_PORT	0xfffffff0u

enum op {
	OP_OPEN, OP_CLOSE, OP_DUP, OP_ALLOC, OP_DEALLOC, OP_NOTIFY, OP_MMAP, OP_MUNMAP,
	OP_MPROTECT, OP_WRITE, OP_CHECK, OP_FORK, NR_OPS
};

static const char *const op_names[NR_OPS] = {
	"open", "close", "dup", "alloc", "dealloc", "notify", "mmap", "munmap",
	"mprotect", "write", "check", "fork",
};

/* How often each is drawn, out of the sum. Fork is slow under emulation: rare. */
static const int op_weight[NR_OPS] = { 4, 3, 2, 16, 13, 12, 14, 10, 4, 10, 6, 1 };

/* One 4K grant, as the model sees it. */
struct mgrant {
	bool alive;	/* not yet ended: listed, or held by a mapping */
	bool listed;	/* still in its file (not deallocated, file not released) */
	int maps;	/* mmap() families that cover it */
	uint32_t action; /* its armed unmap notification: UNMAP_NOTIFY_* bits */
	int port;	/* ports[] it notifies, while action has SEND_EVENT */
	uint32_t ref;	/* the grant reference ALLOC returned */
};

/*
 * One kernel page of an allocation: `ngrants` grants, slot keys index +
 * k * slot. It lives while any of its grants does; its bytes are modelled
 * per 4K frame (padding frames of a packed page included).
 */
struct mpage {
	bool used;
	int file;
	uint64_t index;
	int ngrants;
	uint64_t seq;	/* creation order of grant 0 (upstream: place in the global list) */
	uint64_t alloc;	/* index of the ALLOC it came from, */
	uint32_t alloc_count; /* and that ALLOC's count */
	struct mgrant g[MAX_SPP];
	uint32_t stamp[MAX_SPP]; /* per frame: 0 = zeroes, else the last pattern written */
};

/* An open file description (dup shares it; each mapping holds it too). */
struct mfile {
	bool alive, rdonly;
	int fds, families;
	uint64_t next;	/* index the next ALLOC gets */
};

/* One mmap() call: its VMAs (pieces) share its lifetime, which ends with the last. */
struct mmapping {
	bool alive;
	int file, npages;
	uint64_t index;
	uint8_t *addr;
	int page[MAX_MAP_PAGES];	/* the page records it maps, in order */
	bool present[MAX_MAP_PAGES];	/* not munmapped yet */
	bool writable[MAX_MAP_PAGES];
};

/*
 * An event channel looped back within the domain, for SEND_EVENT. At most one
 * armed notification uses a port at a time, so that two sends cannot merge
 * into one pending event: each port expects exactly the events the model saw
 * fire.
 */
struct port {
	struct evtchn_loop e;
	int owner;	/* page * MAX_SPP + grant of the notification using it, or -1 */
	int expect;	/* events fired by the current operation */
};

struct fuzz {
	struct __test_metadata *md;
	uint64_t seed, rng;
	int op, ops, ops_done;
	bool failed, cleaning;
	double budget;
	struct timespec t0;

	bool rust, counters;
	long ps;
	uint64_t slot;	/* index-space unit of one grant: 4K ours, a page upstream */
	int spp;	/* grants per page: ps / slot */
	int frames;	/* 4K frames per page */
	long limit;
	long base_live, base_rej, base_full;
	long rejections;

	int live;	/* grants alive */
	uint64_t seq;
	uint32_t stamp;
	int touched;	/* fd slot the current operation used, for the fdinfo check */

	struct { int fd, file; } fds[NFD];
	struct mfile files[MAX_FILES];
	struct mpage pages[MAX_PAGES];
	struct mmapping maps[MAX_MAPS];
	struct port ports[NPORTS];
	int nports;
	int pipefd[2];

	int nhist;
	char hist[HISTORY][LINE];
	int done[NR_OPS], skipped, events, faults;
};

/* ---- randomness, history, failure ---------------------------------------- */

/* splitmix64: a few lines, and the same sequence everywhere for a seed. */
static uint64_t rnd(struct fuzz *z)
{
	uint64_t x = (z->rng += 0x9e3779b97f4a7c15ull);

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint32_t below(struct fuzz *z, uint32_t n)
{
	return n ? rnd(z) % n : 0;
}

static bool one_in(struct fuzz *z, uint32_t n)
{
	return below(z, n) == 0;
}

static double elapsed(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) + (t.tv_nsec - t0->tv_nsec) / 1e9;
}

static const char *res_str(long r, char *buf, size_t len)
{
	static const struct {
		int e;
		const char *name;
	} names[] = {
		{ EINVAL, "EINVAL" }, { ENOENT, "ENOENT" }, { ENOSPC, "ENOSPC" },
		{ EACCES, "EACCES" }, { EFAULT, "EFAULT" }, { ENOMEM, "ENOMEM" },
		{ EBADF, "EBADF" },   { ENOTTY, "ENOTTY" }, { EPERM, "EPERM" },
	};

	if (r >= 0) {
		snprintf(buf, len, "%ld", r);
		return buf;
	}
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (-r == names[i].e) {
			snprintf(buf, len, "-%s", names[i].name);
			return buf;
		}
	snprintf(buf, len, "-%ld", -r);
	return buf;
}

static char *cur_line(struct fuzz *z)
{
	return z->hist[z->nhist % HISTORY];
}

/* Starts the history line of a new operation (the reproducer prints the last ones). */
static void __attribute__((format(printf, 2, 3))) begin(struct fuzz *z, const char *fmt, ...)
{
	char *l;
	int n;
	va_list ap;

	z->nhist++;
	l = cur_line(z);
	n = snprintf(l, LINE, "#%d ", z->op);
	va_start(ap, fmt);
	vsnprintf(l + n, LINE - n, fmt, ap);
	va_end(ap);
}

/* Appends to the current operation's history line. */
static void __attribute__((format(printf, 2, 3))) note(struct fuzz *z, const char *fmt, ...)
{
	char *l = cur_line(z);
	size_t n = strnlen(l, LINE);
	va_list ap;

	if (n >= LINE - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(l + n, LINE - n, fmt, ap);
	va_end(ap);
}

/* Reports the first failed prediction of the run, with a reproducer; stops the run. */
static void __attribute__((format(printf, 2, 3))) fail(struct fuzz *z, const char *fmt, ...)
{
	struct __test_metadata *_metadata = z->md;
	char what[LINE];
	va_list ap;
	int first;

	if (z->failed)
		return;
	z->failed = true;
	_metadata->exit_code = KSFT_FAIL;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	TH_LOG("seed %llu, operation #%d%s, %s module, %ld-byte pages: %s",
	       (unsigned long long)z->seed, z->op, z->cleaning ? " (final cleanup)" : "",
	       z->rust ? "rust" : "c", z->ps, what);
	TH_LOG("replay: XGR_FUZZ_SEED=%llu XGR_FUZZ_OPS=%d XGR_FUZZ_SECONDS=%d gntalloc_fuzz -t run_0",
	       (unsigned long long)z->seed, z->cleaning ? z->ops_done : z->op + 1, MAX_SECONDS);
	first = z->nhist > HISTORY ? z->nhist - HISTORY + 1 : 1;
	TH_LOG("the last %d operations, this one last:", z->nhist - first + 1);
	for (int i = first; i <= z->nhist; i++)
		TH_LOG("  %s", z->hist[i % HISTORY]);
}

/* Checks a result (0 or more, or -errno) against the model's; notes it in the history. */
static bool expect(struct fuzz *z, const char *what, long want, long got)
{
	char a[32], b[32];

	note(z, " -> %s", res_str(got, b, sizeof(b)));
	if (want == got)
		return true;
	fail(z, "%s: expected %s, got %s", what, res_str(want, a, sizeof(a)),
	     res_str(got, b, sizeof(b)));
	return false;
}

/* ---- the model ------------------------------------------------------------ */

static uint64_t span(struct fuzz *z, uint32_t count)
{
	return (uint64_t)((count + z->spp - 1) / z->spp) * z->ps;
}

static uint64_t key_of(struct fuzz *z, int p, int k)
{
	return z->pages[p].index + (uint64_t)k * z->slot;
}

static bool of_file(struct fuzz *z, int p, int f)
{
	return z->pages[p].used && z->pages[p].file == f;
}

/* The page record at `index` of file f, or -1. */
static int page_at(struct fuzz *z, int f, uint64_t index)
{
	for (int p = 0; p < MAX_PAGES; p++)
		if (z->pages[p].used && z->pages[p].file == f && z->pages[p].index == index)
			return p;
	return -1;
}

/* The grant file f lists at slot `key`: its page (*k: its number there), or -1. */
static int listed_at(struct fuzz *z, int f, uint64_t key, int *k)
{
	for (int p = 0; p < MAX_PAGES; p++) {
		struct mpage *pg = &z->pages[p];
		uint64_t off;

		if (!pg->used || pg->file != f || key < pg->index)
			continue;
		off = key - pg->index;
		if (off % z->slot || off / z->slot >= (uint64_t)pg->ngrants)
			continue;
		if (!pg->g[off / z->slot].listed)
			return -1;
		*k = off / z->slot;
		return p;
	}
	return -1;
}

/* How many slots from `key` on file f lists one after the other, up to `max`. */
static uint32_t listed_run(struct fuzz *z, int f, uint64_t key, uint32_t max)
{
	uint32_t n = 0;
	int k;

	while (n < max && listed_at(z, f, key + (uint64_t)n * z->slot, &k) >= 0)
		n++;
	return n;
}

/* A page can be mapped while every grant it holds is still listed (padding aside). */
static bool mappable(struct fuzz *z, int f, uint64_t index)
{
	int p = page_at(z, f, index);

	if (p < 0)
		return false;
	for (int k = 0; k < z->pages[p].ngrants; k++)
		if (!z->pages[p].g[k].listed)
			return false;
	return true;
}

/* A random grant file f lists: its page (*k its number), or -1 if none. */
static int pick_listed(struct fuzz *z, int f, int *k)
{
	int n = 0, pick;

	for (int p = 0; p < MAX_PAGES; p++)
		for (int j = 0; of_file(z, p, f) && j < z->pages[p].ngrants; j++)
			n += z->pages[p].g[j].listed;
	if (!n)
		return -1;
	pick = below(z, n);
	for (int p = 0; p < MAX_PAGES; p++)
		for (int j = 0; of_file(z, p, f) && j < z->pages[p].ngrants; j++)
			if (z->pages[p].g[j].listed && pick-- == 0) {
				*k = j;
				return p;
			}
	return -1;
}

static bool ref_alive(struct fuzz *z, uint32_t ref)
{
	for (int p = 0; p < MAX_PAGES; p++)
		for (int k = 0; z->pages[p].used && k < z->pages[p].ngrants; k++)
			if (z->pages[p].g[k].alive && z->pages[p].g[k].ref == ref)
				return true;
	return false;
}

static int pick_fd(struct fuzz *z)
{
	int n = 0, pick;

	for (int s = 0; s < NFD; s++)
		n += z->fds[s].fd >= 0;
	if (!n)
		return -1;
	pick = below(z, n);
	for (int s = 0; s < NFD; s++)
		if (z->fds[s].fd >= 0 && pick-- == 0)
			return s;
	return -1;
}

static int free_fd(struct fuzz *z)
{
	for (int s = 0; s < NFD; s++)
		if (z->fds[s].fd < 0)
			return s;
	return -1;
}

static int pick_map(struct fuzz *z)
{
	int n = 0, pick;

	for (int m = 0; m < MAX_MAPS; m++)
		n += z->maps[m].alive;
	if (!n)
		return -1;
	pick = below(z, n);
	for (int m = 0; m < MAX_MAPS; m++)
		if (z->maps[m].alive && pick-- == 0)
			return m;
	return -1;
}

/*
 * A grant lost a holder: once neither its file nor a mapping holds it, it is
 * ended, and its notification fires now, before the syscall returns.
 */
static void grant_put(struct fuzz *z, int p, int k)
{
	struct mpage *pg = &z->pages[p];
	struct mgrant *g = &pg->g[k];

	if (!g->alive || g->listed || g->maps)
		return;
	g->alive = false;
	z->live--;
	if (g->action & UNMAP_NOTIFY_SEND_EVENT) {
		z->ports[g->port].expect++;
		z->ports[g->port].owner = -1;
		note(z, " {event on port %d}", g->port);
	}
	g->action = 0;
	for (int j = 0; j < pg->ngrants; j++)
		if (pg->g[j].alive)
			return;
	pg->used = false;
}

/* The file is released with its last fd and its last mapping: it lets go of every grant. */
static void file_put(struct fuzz *z, int f)
{
	struct mfile *mf = &z->files[f];

	if (!mf->alive || mf->fds || mf->families)
		return;
	mf->alive = false;
	note(z, " {file %d released}", f);
	for (int p = 0; p < MAX_PAGES; p++)
		for (int k = 0; of_file(z, p, f) && k < z->pages[p].ngrants; k++)
			if (z->pages[p].g[k].listed) {
				z->pages[p].g[k].listed = false;
				grant_put(z, p, k);
			}
}

/* The last piece of a mapping went: its grants lose that holder, its file a reference. */
static void mapping_put(struct fuzz *z, struct mmapping *m)
{
	m->alive = false;
	for (int i = 0; i < m->npages; i++)
		for (int k = 0; k < z->pages[m->page[i]].ngrants; k++)
			z->pages[m->page[i]].g[k].maps--;
	for (int i = 0; i < m->npages; i++)
		for (int k = 0; k < z->pages[m->page[i]].ngrants; k++)
			grant_put(z, m->page[i], k);
	z->files[m->file].families--;
	file_put(z, m->file);
}

/*
 * Upstream's B1: at the last munmap the C driver walks the grants of an mmap
 * through the global list, in creation order, not through the file. That is
 * right only while no other grant alive lies between the first and last
 * grant mapped in creation order; new grants go to the end, so what is true
 * at mmap stays true until munmap. A mapping inside one ALLOC always is.
 */
static bool c_walk_safe(struct fuzz *z, const int *pages, int n)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	int covered = 0, between = 0;

	if (z->rust)
		return true;
	for (int i = 0; i < n; i++) {
		const struct mpage *pg = &z->pages[pages[i]];

		lo = pg->seq < lo ? pg->seq : lo;
		hi = pg->seq + pg->ngrants - 1 > hi ? pg->seq + pg->ngrants - 1 : hi;
		covered += pg->ngrants;
	}
	for (int p = 0; p < MAX_PAGES; p++)
		for (int k = 0; z->pages[p].used && k < z->pages[p].ngrants; k++)
			between += z->pages[p].g[k].alive && z->pages[p].seq + k >= lo &&
				   z->pages[p].seq + k <= hi;
	return between == covered;
}

/* ---- memory through the mappings ----------------------------------------- */

/* Word w of a 4K frame holding stamp's pattern; stamp 0 is a zeroed frame. */
static uint32_t pattern(uint32_t stamp, uint32_t word)
{
	return stamp ? (stamp << 10 | word) ^ 0x5a000000u : 0;
}

/*
 * A mapping the driver got wrong may fault (SIGBUS without a PTE, SIGSEGV):
 * the access is made under a handler that jumps back, so that the run can
 * still print its reproducer.
 */
static sigjmp_buf fault_env;
static volatile sig_atomic_t fault_armed;

static void on_fault(int sig)
{
	if (fault_armed) {
		fault_armed = 0;
		siglongjmp(fault_env, sig);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

struct access {
	volatile uint32_t *w;
	uint32_t stamp;
	long bad;	/* first word that differs, or -1 */
	uint32_t seen;
};

static void frame_fill(struct access *a)
{
	for (uint32_t i = 0; i < XPAGE / 4; i++)
		a->w[i] = pattern(a->stamp, i);
}

static void frame_check(struct access *a)
{
	a->bad = -1;
	for (uint32_t i = 0; i < XPAGE / 4; i++)
		if (a->w[i] != pattern(a->stamp, i)) {
			a->seen = a->w[i];
			a->bad = i;
			return;
		}
}

/* Runs fn(a); 0, or the signal the access raised. */
static int guarded(void (*fn)(struct access *), struct access *a)
{
	int sig = sigsetjmp(fault_env, 1);

	if (sig == 0) {
		fault_armed = 1;
		fn(a);
	}
	fault_armed = 0;
	return sig;
}

static volatile uint8_t *frame_addr(struct fuzz *z, struct mmapping *m, int i, int fr)
{
	return m->addr + (size_t)i * z->ps + (size_t)fr * XPAGE;
}

/* Frame fr of page i of mapping m must hold what the model says its page holds. */
static bool check_frame(struct fuzz *z, int mi, int i, int fr, const char *when)
{
	struct mmapping *m = &z->maps[mi];
	const struct mpage *pg = &z->pages[m->page[i]];
	struct access a = { .w = (volatile uint32_t *)frame_addr(z, m, i, fr),
			    .stamp = pg->stamp[fr] };
	int sig = guarded(frame_check, &a);

	if (sig) {
		fail(z, "%s: signal %d reading map %d page %d frame %d", when, sig, mi, i, fr);
		return false;
	}
	if (a.bad >= 0) {
		fail(z, "%s: map %d (file %d index %#llx) page %d frame %d word %ld: expected %#x (stamp %u), read %#x",
		     when, mi, m->file, (unsigned long long)m->index, i, fr, a.bad,
		     pattern(a.stamp, a.bad), a.stamp, a.seen);
		return false;
	}
	return true;
}

/* Every present page of every mapping of page record p shows frame fr as the model says. */
static void check_everywhere(struct fuzz *z, int p, int fr, const char *when)
{
	for (int mi = 0; mi < MAX_MAPS && !z->failed; mi++)
		for (int i = 0; z->maps[mi].alive && i < z->maps[mi].npages && !z->failed; i++)
			if (z->maps[mi].present[i] && z->maps[mi].page[i] == p)
				check_frame(z, mi, i, fr, when);
}

/*
 * Whether the kernel may read and write the byte at `at`, asked through a
 * pipe so that a refusal is EFAULT instead of a signal: the byte goes into
 * the pipe and back to where it was. 1 writable, 0 read-only, -errno else.
 */
static int probe_writable(struct fuzz *z, volatile uint8_t *at)
{
	uint8_t c;
	ssize_t r;

	if (write(z->pipefd[1], (const void *)at, 1) != 1)
		return -errno;
	r = read(z->pipefd[0], (void *)at, 1);
	if (r == 1)
		return 1;
	r = errno;
	if (read(z->pipefd[0], &c, 1) != 1)
		return -EIO;
	return r == EFAULT ? 0 : -r;
}

/* ---- event channels and counters ---------------------------------------- */

/*
 * Events seen on port p: waits up to `ms` while fewer than `want` came, then
 * takes whatever else is already there. Each is acknowledged (unmasked).
 */
static int port_events(struct port *p, int want, int ms)
{
	struct pollfd pfd = { .fd = p->e.rfd, .events = POLLIN };
	struct timespec t0;
	uint32_t buf[16];
	int n = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int left = 0;
		ssize_t r;

		if (n < want) {
			left = ms - (int)(elapsed(&t0) * 1000);
			left = left < 0 ? 0 : left;
		}
		if (poll(&pfd, 1, left) <= 0)
			break;
		r = read(p->e.rfd, buf, sizeof(buf));
		if (r <= 0)
			break;
		n += r / 4;
		if (write(p->e.rfd, buf, r) != r)
			break;
	}
	return n;
}

/*
 * Each port must have seen exactly the notifications the operation fired on
 * it. An event due is waited for; one not due is looked for without waiting,
 * so a late one shows up at a later check, never as a spurious pass.
 */
static void check_events(struct fuzz *z)
{
	for (int i = 0; i < z->nports && !z->failed; i++) {
		struct port *p = &z->ports[i];
		int got = port_events(p, p->expect, EVENT_WAIT_MS);

		if (got != p->expect)
			fail(z, "port %d (%u): %d unmap notification event(s) expected, %d seen", i,
			     p->e.port, p->expect, got);
		z->events += got;
		p->expect = 0;
	}
}

/* Our module's fdinfo: grants, mapped, notify, next_index; false if unreadable. */
static bool read_fdinfo(int fd, long v[4])
{
	static const char *const keys[4] = { "grants", "mapped", "notify", "next_index" };
	char path[64], line[128];
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		for (int i = 0; i < 4; i++) {
			size_t n = strlen(keys[i]);

			if (strncmp(line, keys[i], n) == 0 && line[n] == ':') {
				v[i] = strtol(line + n + 1, NULL, 0);
				found++;
			}
		}
	fclose(f);
	return found == 4;
}

static void check_fdinfo(struct fuzz *z, int s)
{
	static const char *const keys[4] = { "grants", "mapped", "notify", "next_index" };
	int f = z->fds[s].file;
	long want[4] = { 0, 0, 0, (long)z->files[f].next }, got[4];

	for (int p = 0; p < MAX_PAGES; p++)
		for (int k = 0; of_file(z, p, f) && k < z->pages[p].ngrants; k++) {
			const struct mgrant *g = &z->pages[p].g[k];

			if (!g->listed)
				continue;
			want[0]++;
			want[1] += g->maps > 0;
			want[2] += g->action != 0;
		}
	if (!read_fdinfo(z->fds[s].fd, got)) {
		fail(z, "fdinfo of fd[%d] unreadable", s);
		return;
	}
	for (int i = 0; i < 4; i++)
		if (want[i] != got[i]) {
			fail(z, "fdinfo of fd[%d] (file %d): %s %ld expected, %ld read",
			     s, f, keys[i], want[i], got[i]);
			return;
		}
}

/*
 * Ours: grants alive (in_use less the deferred ones, which are other tests'
 * and may be reclaimed meanwhile), limit rejections and table-full failures
 * follow the model; so does the fdinfo of the file just used (and of every
 * open file now and then).
 */
static void check_counters(struct fuzz *z)
{
	long in_use = 0, deferred = 0, rej = 0, full = 0;

	if (!z->counters || z->failed)
		return;
	/* The two counters are not read atomically: retry a mismatch a few times. */
	for (int tries = 0;; tries++) {
		deferred = rust_stat("deferred");
		in_use = rust_stat("in_use");
		rej = rust_stat("limit_rejections");
		full = rust_stat("table_full");
		if (in_use - deferred == z->base_live + z->live &&
		    rej == z->base_rej + z->rejections && full == z->base_full)
			break;
		if (tries == 5) {
			fail(z, "counters: in_use - deferred %ld (expected %ld), limit_rejections %ld (expected %ld), table_full %ld (expected %ld)",
			     in_use - deferred, z->base_live + z->live, rej,
			     z->base_rej + z->rejections, full, z->base_full);
			return;
		}
		usleep(20000);
	}
	if (z->touched >= 0 && z->fds[z->touched].fd >= 0)
		check_fdinfo(z, z->touched);
	for (int s = 0; s < NFD && !z->failed && (z->op % 16 == 0 || z->cleaning); s++)
		if (z->fds[s].fd >= 0)
			check_fdinfo(z, s);
}

/* ---- operations ----------------------------------------------------------- */

static bool op_open(struct fuzz *z)
{
	int s = free_fd(z), f = -1, fd;
	bool rdonly;

	for (int i = 0; i < MAX_FILES && f < 0; i++)
		if (!z->files[i].alive)
			f = i;
	if (s < 0 || f < 0)
		return false;
	/* A read-only file: ioctls work, but no mapping can be made (EINVAL or EACCES). */
	rdonly = one_in(z, 8);
	begin(z, "OPEN fd[%d] %s", s, rdonly ? "O_RDONLY" : "O_RDWR");
	fd = open(GNTALLOC_DEV, (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (!expect(z, "open", 0, fd < 0 ? -errno : 0))
		return true;
	note(z, " = file %d", f);
	z->files[f] = (struct mfile){ .alive = true, .rdonly = rdonly, .fds = 1 };
	z->fds[s].fd = fd;
	z->fds[s].file = f;
	z->touched = s;
	return true;
}

static bool op_close(struct fuzz *z, int s)
{
	int f, ret;

	if (s < 0)
		s = pick_fd(z);
	if (s < 0)
		return false;
	f = z->fds[s].file;
	begin(z, "CLOSE fd[%d] (file %d)", s, f);
	ret = close(z->fds[s].fd) ? -errno : 0;
	z->fds[s].fd = -1;
	if (!expect(z, "close", 0, ret))
		return true;
	z->files[f].fds--;
	file_put(z, f);
	return true;
}

static bool op_dup(struct fuzz *z)
{
	int s = free_fd(z), from = pick_fd(z), fd;

	if (s < 0 || from < 0)
		return false;
	begin(z, "DUP fd[%d] (file %d) to fd[%d]", from, z->fds[from].file, s);
	fd = fcntl(z->fds[from].fd, F_DUPFD_CLOEXEC, 0);
	if (!expect(z, "dup", 0, fd < 0 ? -errno : 0))
		return true;
	z->fds[s].fd = fd;
	z->fds[s].file = z->fds[from].file;
	z->files[z->fds[s].file].fds++;
	z->touched = s;
	return true;
}

/*
 * ALLOC: count 0 (success, nothing allocated, index not advanced), 1..8 (on
 * packed kernels sometimes one or two full pages), or above the limit
 * (ENOSPC before anything is reserved: not upstream's buggy undo path).
 */
static bool op_alloc(struct fuzz *z)
{
	static const uint16_t odd_flags[] = { 0xfffe, 0xffff, 0x8000 };
	int s = pick_fd(z), f, kind;
	uint32_t count, ids[MAX_ALLOC];
	uint64_t index = 0;
	uint16_t flags;
	long ret;

	if (s < 0)
		return false;
	f = z->fds[s].file;
	/* Unknown flag bits are ignored: only bit 0 (writable for the remote) counts. */
	flags = one_in(z, 8) ? odd_flags[below(z, 3)] : below(z, 2);
	kind = below(z, 16);
	if (kind == 0)
		count = 0;
	else if (kind == 1 && z->limit < (long)UINT32_MAX)
		count = one_in(z, 2) ? (uint32_t)z->limit + 1 : UINT32_MAX;
	else if (kind == 2 && z->spp > 1)
		count = z->spp * (1 + below(z, 2));
	else
		count = 1 + below(z, 8);
	if (count <= z->limit && z->live + count > LIVE_CAP)
		count = LIVE_CAP - z->live;
	begin(z, "ALLOC fd[%d] (file %d) count=%u flags=%#x", s, f, count, flags);
	z->touched = s;

	if ((uint64_t)count > (uint64_t)z->limit) {
		/* A 24-byte argument: the kernel must refuse before it looks at the ids. */
		struct ioctl_gntalloc_alloc_gref op = { .flags = flags, .count = count };

		ret = ioctl(z->fds[s].fd, IOCTL_GNTALLOC_ALLOC_GREF, &op) ? -errno : 0;
		if (expect(z, "ALLOC above the limit", -ENOSPC, ret))
			z->rejections++;
		return true;
	}
	ret = gnt_alloc(z->fds[s].fd, count, flags, &index, ids);
	if (!expect(z, "ALLOC", 0, ret))
		return true;
	note(z, " index=%#llx", (unsigned long long)index);
	if (index != z->files[f].next) {
		fail(z, "ALLOC index: expected %#llx, got %#llx",
		     (unsigned long long)z->files[f].next, (unsigned long long)index);
		return true;
	}
	/* Refs are real grant references (never the 8 reserved) and unique among live grants. */
	for (uint32_t i = 0; i < count; i++) {
		bool dup = ref_alive(z, ids[i]);

		for (uint32_t j = 0; j < i; j++)
			dup |= ids[j] == ids[i];
		if (ids[i] < 8 || dup) {
			fail(z, "ALLOC ref %u of %u is %u: %s", i, count, ids[i],
			     ids[i] < 8 ? "a reserved entry" : "another live grant's");
			return true;
		}
	}
	for (uint32_t i = 0; i < count; i += z->spp) {
		int p = -1;

		for (int j = 0; j < MAX_PAGES && p < 0; j++)
			if (!z->pages[j].used)
				p = j;
		if (p < 0) {
			fail(z, "model: out of page records");
			return true;
		}
		memset(&z->pages[p], 0, sizeof(z->pages[p]));
		z->pages[p].used = true;
		z->pages[p].file = f;
		z->pages[p].index = index + (uint64_t)(i / z->spp) * z->ps;
		z->pages[p].ngrants = count - i < (uint32_t)z->spp ? count - i : (uint32_t)z->spp;
		z->pages[p].seq = z->seq;
		z->seq += z->pages[p].ngrants;
		z->pages[p].alloc = index;
		z->pages[p].alloc_count = count;
		for (int k = 0; k < z->pages[p].ngrants; k++) {
			z->pages[p].g[k].alive = true;
			z->pages[p].g[k].listed = true;
			z->pages[p].g[k].ref = ids[i + k];
		}
	}
	z->files[f].next += span(z, count);
	z->live += count;
	return true;
}

/*
 * DEALLOC: a whole allocation, or a run of listed slots (part of an
 * allocation, or across allocations whose slots are contiguous); or a range
 * that must be refused whole: count 0, running past the listed slots,
 * misaligned, unknown, or another file's index. The model's rule: each of
 * the `count` consecutive slots from `index` must be listed in this file.
 */
static bool op_dealloc(struct fuzz *z)
{
	int s = pick_fd(z), f, p, k = 0, kind;
	uint64_t index = 0;
	uint32_t count = 1, run = 0;
	long want = 0, ret;

	if (s < 0)
		return false;
	f = z->fds[s].file;
	p = pick_listed(z, f, &k);
	if (p >= 0) {
		index = key_of(z, p, k);
		run = listed_run(z, f, index, MAX_ALLOC * 4);
	}
	kind = below(z, 12);
	if (p < 0 && kind < 9)
		kind = 9;
	switch (kind) {
	case 0 ... 1:	/* the whole allocation (refused if part of it went already) */
		index = z->pages[p].alloc;
		count = z->pages[p].alloc_count;
		break;
	case 2 ... 5:	/* valid: part or all of the run, which may span allocations */
		count = one_in(z, 3) ? run : 1 + below(z, run);
		break;
	case 6:		/* past the run, or absurdly far */
		count = one_in(z, 4) ? UINT32_MAX : run + 1 + below(z, 3);
		break;
	case 7:		/* not a slot key */
		index += 1 + below(z, z->slot - 1);
		break;
	case 8:		/* count 0 is refused, even on a listed slot */
		count = 0;
		break;
	case 9:		/* anywhere in (or past) the index space */
		index = (uint64_t)below(z, z->files[f].next / z->slot + 4) * z->slot;
		count = 1 + below(z, 3);
		break;
	default: {	/* a slot another file lists */
		int of = below(z, MAX_FILES), ok = 0;

		p = z->files[of].alive ? pick_listed(z, of, &ok) : -1;
		if (p < 0)
			return false;
		index = key_of(z, p, ok);
		count = 1 + below(z, 2);
		break;
	}
	}
	for (uint32_t i = 0; i < count && !want; i++) {
		int kk;

		if (listed_at(z, f, index + (uint64_t)i * z->slot, &kk) < 0)
			want = -EINVAL;
	}
	if (count == 0)
		want = -EINVAL;
	begin(z, "DEALLOC fd[%d] (file %d) index=%#llx count=%u", s, f,
	      (unsigned long long)index, count);
	z->touched = s;
	ret = gnt_dealloc(z->fds[s].fd, index, count);
	if (!expect(z, "DEALLOC", want, ret) || ret)
		return true;
	for (uint32_t i = 0; i < count; i++) {
		int kk, pp = listed_at(z, f, index + (uint64_t)i * z->slot, &kk);

		z->pages[pp].g[kk].listed = false;
		grant_put(z, pp, kk);
	}
	return true;
}

/*
 * SET_UNMAP_NOTIFY: index = slot key + byte offset (0, last byte of the slot,
 * or anywhere); actions 0, CLEAR_BYTE, SEND_EVENT, both; unknown bits; a port
 * nobody bound. Errno precedence: slot not listed ENOENT, then unknown bits
 * EINVAL, then a port that cannot be referenced EINVAL.
 */
static bool op_notify(struct fuzz *z)
{
	static const uint32_t actions[] = {
		0, UNMAP_NOTIFY_CLEAR_BYTE, UNMAP_NOTIFY_SEND_EVENT,
		UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
	};
	int s = pick_fd(z), f, p, k = 0, kind, pp, kk = 0, port = -1;
	uint64_t index, off;
	uint32_t action, evtchn = 0;
	struct mgrant *g;
	long want = 0, ret;

	if (s < 0)
		return false;
	f = z->fds[s].file;
	p = pick_listed(z, f, &k);
	kind = below(z, 10);
	action = actions[below(z, 4)];
	off = one_in(z, 3) ? (one_in(z, 2) ? 0 : z->slot - 1) : below(z, z->slot);
	/* Anywhere in (or past) the index space; with unknown bits too: ENOENT wins. */
	if (p < 0 || kind == 7 || (kind == 8 && one_in(z, 2)))
		index = (uint64_t)below(z, z->files[f].next / z->slot + 4) * z->slot + off;
	else
		index = key_of(z, p, k) + off;
	if (kind == 8)
		action |= 1u << (2 + below(z, 30));
	if (action & UNMAP_NOTIFY_SEND_EVENT) {
		/* Our own port again, or a free one: never one another notification uses. */
		pp = listed_at(z, f, index & ~(z->slot - 1), &kk);
		g = pp >= 0 ? &z->pages[pp].g[kk] : NULL;
		if (g && (g->action & UNMAP_NOTIFY_SEND_EVENT) && one_in(z, 2))
			port = g->port;
		for (int i = 0; i < z->nports && port < 0; i++) {
			int c = (below(z, z->nports) + i) % z->nports;

			if (z->ports[c].owner < 0)
				port = c;
		}
		if (kind == 9)
			port = -1;
		evtchn = port < 0 ? BAD_PORT : z->ports[port].e.port;
	}
	pp = listed_at(z, f, index & ~(z->slot - 1), &kk);
	if (pp < 0)
		want = -ENOENT;
	else if (action & ~(uint32_t)(UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT))
		want = -EINVAL;
	else if ((action & UNMAP_NOTIFY_SEND_EVENT) && port < 0)
		want = -EINVAL;
	begin(z, "NOTIFY fd[%d] (file %d) index=%#llx action=%#x port=%d", s, f,
	      (unsigned long long)index, action, port);
	z->touched = s;
	ret = gnt_notify(z->fds[s].fd, index, action, evtchn);
	if (!expect(z, "SET_UNMAP_NOTIFY", want, ret) || ret)
		return true;
	/* The old port is let go unless it is the new one too. */
	g = &z->pages[pp].g[kk];
	if ((g->action & UNMAP_NOTIFY_SEND_EVENT) &&
	    !((action & UNMAP_NOTIFY_SEND_EVENT) && port == g->port))
		z->ports[g->port].owner = -1;
	g->action = action;
	if (action & UNMAP_NOTIFY_SEND_EVENT) {
		g->port = port;
		z->ports[port].owner = pp * MAX_SPP + kk;
	}
	return true;
}

/*
 * mmap: a whole allocation, or a run of mappable pages (part of an
 * allocation, or across allocations), read-write or read-only, with a length
 * that may end inside the last page; or a range with a page not (or no
 * longer) listed, or one page longer than the run (ENOENT); MAP_PRIVATE, or
 * any mapping of an O_RDONLY file (EINVAL, or EACCES for a writable shared
 * one); a misaligned offset or length 0 (EINVAL, from mmap itself). A new
 * mapping must show exactly the bytes the model holds.
 */
static bool op_mmap(struct fuzz *z)
{
	int s = pick_fd(z), f, p, k = 0, kind, mi = -1, prot = PROT_READ | PROT_WRITE;
	int flags = MAP_SHARED, npages = 1, pages[MAX_MAP_PAGES];
	uint64_t off = 0;
	size_t len;
	long want = 0, ret;
	struct mmapping *m;
	void *addr;

	for (int i = 0; i < MAX_MAPS && mi < 0; i++)
		if (!z->maps[i].alive)
			mi = i;
	if (s < 0 || mi < 0)
		return false;
	f = z->fds[s].file;
	p = pick_listed(z, f, &k);
	kind = below(z, 12);
	if (p >= 0 && kind != 7) {
		int run = 0;

		off = z->pages[p].index;
		while (run < MAX_MAP_PAGES && mappable(z, f, off + (uint64_t)run * z->ps))
			run++;
		if (kind == 6 && run < MAX_MAP_PAGES) {
			npages = run + 1; /* one page past the run: ENOENT */
		} else if (kind == 5) {
			/* The whole allocation, as libxengnttab maps it. */
			off = z->pages[p].alloc;
			npages = span(z, z->pages[p].alloc_count) / z->ps;
			npages = npages > MAX_MAP_PAGES ? MAX_MAP_PAGES : npages;
		} else
			npages = run ? 1 + below(z, run) : 1 + below(z, 2);
	} else {
		off = (uint64_t)below(z, z->files[f].next / z->ps + 2) * z->ps;
		npages = 1 + below(z, 4);
	}
	len = (size_t)npages * z->ps;
	if (one_in(z, 4))	/* libxengnttab maps count * 4096: the kernel rounds up */
		len -= below(z, z->ps);
	switch (kind) {
	case 8:
		flags = MAP_PRIVATE;
		break;
	case 9:
		off += 1 + below(z, z->ps - 1);
		break;
	case 10:
		len = 0;
		break;
	case 11:
		prot = PROT_READ;
		break;
	}
	if (len == 0 || off % z->ps)
		want = -EINVAL;
	else if (z->files[f].rdonly && flags == MAP_SHARED && (prot & PROT_WRITE))
		want = -EACCES;
	else if (z->files[f].rdonly || flags != MAP_SHARED)
		want = -EINVAL; /* no VM_SHARED: mm drops it on an O_RDONLY file */
	for (int i = 0; i < npages && !want; i++)
		if (!mappable(z, f, off + (uint64_t)i * z->ps))
			want = -ENOENT;
	begin(z, "MMAP fd[%d] (file %d) off=%#llx len=%#zx %s %s", s, f, (unsigned long long)off,
	      len, prot & PROT_WRITE ? "rw" : "ro", flags == MAP_SHARED ? "shared" : "private");
	z->touched = s;
	if (!want) {
		for (int i = 0; i < npages; i++)
			pages[i] = page_at(z, f, off + (uint64_t)i * z->ps);
		if (!c_walk_safe(z, pages, npages)) {
			note(z, " skipped on the C reference: B1");
			z->skipped++;
			return true;
		}
	}
	addr = mmap(NULL, len, prot, flags, z->fds[s].fd, off);
	ret = addr == MAP_FAILED ? -errno : 0;
	if (!expect(z, "mmap", want, ret)) {
		if (!ret)
			munmap(addr, len);
		return true;
	}
	if (ret)
		return true;
	m = &z->maps[mi];
	memset(m, 0, sizeof(*m));
	m->alive = true;
	m->file = f;
	m->index = off;
	m->npages = npages;
	m->addr = addr;
	note(z, " = map %d", mi);
	for (int i = 0; i < npages; i++) {
		m->page[i] = pages[i];
		m->present[i] = true;
		m->writable[i] = prot & PROT_WRITE;
		for (int j = 0; j < z->pages[pages[i]].ngrants; j++)
			z->pages[pages[i]].g[j].maps++;
	}
	z->files[f].families++;
	/* All of each page on 4K kernels; on bigger pages, the frames written and one more. */
	for (int i = 0; i < npages && !z->failed; i++)
		for (int fr = 0; fr < z->frames && !z->failed; fr++)
			if (z->frames <= 4 || z->pages[pages[i]].stamp[fr] || one_in(z, z->frames))
				check_frame(z, mi, i, fr, "new mapping");
	return true;
}

/* A random run [*a, *b) of pages of mapping m still mapped. */
static void pick_run(struct fuzz *z, struct mmapping *m, int *a, int *b)
{
	int n = 0, pick;

	for (int i = 0; i < m->npages; i++)
		n += m->present[i];
	pick = below(z, n);
	for (int i = 0; i < m->npages; i++)
		if (m->present[i] && pick-- == 0)
			*a = *b = i;
	while (*a > 0 && m->present[*a - 1])
		(*a)--;
	while (*b < m->npages && m->present[*b])
		(*b)++;
}

/* munmap of pages [start, start + n) of mapping mi (all still mapped). */
static void unmap_pages(struct fuzz *z, int mi, int start, int n)
{
	struct mmapping *m = &z->maps[mi];
	bool last = true;
	long ret;

	begin(z, "MUNMAP map %d (file %d index %#llx) pages %d..%d of %d", mi, m->file,
	      (unsigned long long)m->index, start, start + n - 1, m->npages);
	ret = munmap(m->addr + (size_t)start * z->ps, (size_t)n * z->ps) ? -errno : 0;
	if (!expect(z, "munmap", 0, ret))
		return;
	for (int i = start; i < start + n; i++)
		m->present[i] = false;
	for (int i = 0; i < m->npages; i++)
		last &= !m->present[i];
	/* A piece does not release anything: only the last one goes with the grants. */
	if (last) {
		note(z, " {last piece}");
		mapping_put(z, m);
	}
}

/* munmap of a mapping's pages still mapped (the whole run, or a piece of it: a split). */
static bool op_munmap(struct fuzz *z)
{
	int mi = pick_map(z), a = 0, b = 0, start, n;

	if (mi < 0)
		return false;
	pick_run(z, &z->maps[mi], &a, &b);
	if (one_in(z, 2)) {
		start = a;
		n = b - a;
	} else {
		start = a + below(z, b - a);
		n = 1 + below(z, b - start);
	}
	unmap_pages(z, mi, start, n);
	return true;
}

/* mprotect of part of a mapping (splits it): read-only, or read-write again. */
static bool op_mprotect(struct fuzz *z)
{
	int mi = pick_map(z), a = 0, b = 0, start, n, prot;
	struct mmapping *m;
	long ret;

	if (mi < 0)
		return false;
	m = &z->maps[mi];
	pick_run(z, m, &a, &b);
	start = a + below(z, b - a);
	n = 1 + below(z, b - start);
	prot = one_in(z, 2) ? PROT_READ : PROT_READ | PROT_WRITE;
	begin(z, "MPROTECT map %d pages %d..%d %s", mi, start, start + n - 1,
	      prot & PROT_WRITE ? "rw" : "ro");
	ret = mprotect(m->addr + (size_t)start * z->ps, (size_t)n * z->ps, prot) ? -errno : 0;
	if (!expect(z, "mprotect", 0, ret))
		return true;
	for (int i = start; i < start + n; i++)
		m->writable[i] = prot & PROT_WRITE;
	return true;
}

/* A random page still mapped (writable only, if asked): its mapping, *i its page. */
static int pick_mapped_page(struct fuzz *z, bool writable, int *i)
{
	int n = 0, pick;

	for (int mi = 0; mi < MAX_MAPS; mi++)
		for (int j = 0; z->maps[mi].alive && j < z->maps[mi].npages; j++)
			n += z->maps[mi].present[j] && (!writable || z->maps[mi].writable[j]);
	if (!n)
		return -1;
	pick = below(z, n);
	for (int mi = 0; mi < MAX_MAPS; mi++)
		for (int j = 0; z->maps[mi].alive && j < z->maps[mi].npages; j++)
			if (z->maps[mi].present[j] && (!writable || z->maps[mi].writable[j]) &&
			    pick-- == 0) {
				*i = j;
				return mi;
			}
	return -1;
}

/*
 * Writes a new pattern to one 4K frame through one mapping, then reads it
 * back through every mapping of the same page: all of them map one page.
 */
static bool op_write(struct fuzz *z)
{
	int i = 0, mi = pick_mapped_page(z, true, &i), fr, sig;
	struct access a;
	struct mmapping *m;

	if (mi < 0)
		return false;
	m = &z->maps[mi];
	fr = below(z, z->frames);
	a = (struct access){ .w = (volatile uint32_t *)frame_addr(z, m, i, fr),
			     .stamp = ++z->stamp };
	begin(z, "WRITE map %d page %d frame %d stamp %u (file %d index %#llx)", mi, i, fr, a.stamp,
	      m->file, (unsigned long long)(m->index + (uint64_t)i * z->ps));
	sig = guarded(frame_fill, &a);
	if (sig) {
		fail(z, "signal %d writing map %d page %d", sig, mi, i);
		return true;
	}
	z->pages[m->page[i]].stamp[fr] = a.stamp;
	check_everywhere(z, m->page[i], fr, "after a write");
	return true;
}

/* Reads a frame back, and asks the kernel whether the page takes writes as its protection says. */
static bool op_check(struct fuzz *z)
{
	int i = 0, mi = pick_mapped_page(z, false, &i), fr, w;
	struct mmapping *m;

	if (mi < 0)
		return false;
	m = &z->maps[mi];
	fr = below(z, z->frames);
	for (int j = 0; j < z->frames && one_in(z, 2); j++)
		if (z->pages[m->page[i]].stamp[j])
			fr = j;
	begin(z, "CHECK map %d page %d frame %d (%s)", mi, i, fr, m->writable[i] ? "rw" : "ro");
	if (!check_frame(z, mi, i, fr, "check"))
		return true;
	w = probe_writable(z, frame_addr(z, m, i, fr));
	expect(z, "write probe (1 writable, 0 read-only)", m->writable[i], w);
	return true;
}

/*
 * fork: the child shares the mappings and the files. It writes a pattern
 * through an inherited mapping, maps a listed page afresh (checking its bytes
 * against the model), unmaps it and exits; none of that releases anything,
 * the parent still holding all. The parent then sees the child's bytes.
 */
static bool op_fork(struct fuzz *z)
{
	int wi = 0, wm = pick_mapped_page(z, true, &wi), wfr = -1, s = pick_fd(z), p = -1, k = 0;
	uint64_t off = 0;
	int status = 0;
	struct access a = { 0 };
	pid_t pid;

	if (wm >= 0) {
		wfr = below(z, z->frames);
		a.w = (volatile uint32_t *)frame_addr(z, &z->maps[wm], wi, wfr);
		a.stamp = ++z->stamp;
		/* The child's copy of the model knows its own write. */
		z->pages[z->maps[wm].page[wi]].stamp[wfr] = a.stamp;
	}
	if (s >= 0 && !z->files[z->fds[s].file].rdonly)
		p = pick_listed(z, z->fds[s].file, &k);
	if (p >= 0) {
		off = z->pages[p].index;
		if (!mappable(z, z->fds[s].file, off))
			p = -1;
	}
	if (wm < 0 && p < 0)
		return false;
	begin(z, "FORK child writes map %d page %d frame %d stamp %u, maps fd[%d] off=%#llx",
	      wm, wi, wfr, a.stamp, p >= 0 ? s : -1, (unsigned long long)off);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		fail(z, "fork: %s", strerror(errno));
		return true;
	}
	if (pid == 0) {
		if (wm >= 0 && guarded(frame_fill, &a))
			_exit(2);
		if (p >= 0) {
			uint8_t *q = mmap(NULL, z->ps, PROT_READ | PROT_WRITE, MAP_SHARED,
					  z->fds[s].fd, off);

			if (q == MAP_FAILED)
				_exit(3);
			for (int fr = 0; fr < z->frames; fr++) {
				struct access c = {
					.w = (volatile uint32_t *)(q + (size_t)fr * XPAGE),
					.stamp = z->pages[p].stamp[fr],
				};

				if (guarded(frame_check, &c))
					_exit(5);
				if (c.bad >= 0)
					_exit(4);
			}
			munmap(q, z->ps);
		}
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid) {
		fail(z, "waitpid: %s", strerror(errno));
		return true;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		static const char *const why[] = {
			"", "", "its write faulted", "its mmap failed",
			"its new mapping showed other bytes", "its new mapping faulted",
		};

		if (WIFEXITED(status))
			fail(z, "the child exited with %d (%s)", WEXITSTATUS(status),
			     WEXITSTATUS(status) < 6 ? why[WEXITSTATUS(status)] : "?");
		else
			fail(z, "the child was killed by signal %d", WTERMSIG(status));
		return true;
	}
	note(z, " -> child ok");
	if (wm >= 0)
		check_everywhere(z, z->maps[wm].page[wi], wfr, "after the child's write");
	return true;
}

static bool do_op(struct fuzz *z, enum op op)
{
	switch (op) {
	case OP_OPEN:
		return op_open(z);
	case OP_CLOSE:
		return op_close(z, -1);
	case OP_DUP:
		return op_dup(z);
	case OP_ALLOC:
		return op_alloc(z);
	case OP_DEALLOC:
		return op_dealloc(z);
	case OP_NOTIFY:
		return op_notify(z);
	case OP_MMAP:
		return op_mmap(z);
	case OP_MUNMAP:
		return op_munmap(z);
	case OP_MPROTECT:
		return op_mprotect(z);
	case OP_WRITE:
		return op_write(z);
	case OP_CHECK:
		return op_check(z);
	case OP_FORK:
		return op_fork(z);
	default:
		return false;
	}
}

/* One random operation: drawn by weight, redrawn while it has nothing to act on. */
static void random_op(struct fuzz *z)
{
	int total = 0;

	for (int i = 0; i < NR_OPS; i++)
		total += op_weight[i];
	for (int tries = 0; tries < 50; tries++) {
		int r = below(z, total), op = 0;

		while (r >= op_weight[op])
			r -= op_weight[op++];
		if (do_op(z, op)) {
			z->done[op]++;
			return;
		}
	}
	/* Nothing else applied: all fd slots are free (open) or all taken (close). */
	if (op_open(z) || op_close(z, -1))
		return;
	fail(z, "no operation applies");
}

/* After each operation: the events it fired, the counters. */
static void after_op(struct fuzz *z)
{
	if (!z->failed)
		check_events(z);
	check_counters(z);
	z->touched = -1;
}

/* Every fd closed and every mapping unmapped, each predicted like any other operation. */
static void cleanup(struct fuzz *z)
{
	z->cleaning = true;
	for (int s = 0; s < NFD && !z->failed; s++) {
		if (z->fds[s].fd < 0)
			continue;
		z->op++;
		op_close(z, s);
		after_op(z);
	}
	for (int mi = 0; mi < MAX_MAPS && !z->failed; mi++)
		while (z->maps[mi].alive && !z->failed) {
			int a = 0, b = 0;

			pick_run(z, &z->maps[mi], &a, &b);
			z->op++;
			unmap_pages(z, mi, a, b - a);
			after_op(z);
		}
	if (!z->failed && z->live)
		fail(z, "model: %d grants still alive with no file and no mapping", z->live);
}

/* After a failure: let go of everything without predictions. */
static void cleanup_raw(struct fuzz *z)
{
	for (int mi = 0; mi < MAX_MAPS; mi++)
		for (int i = 0; z->maps[mi].alive && i < z->maps[mi].npages; i++)
			if (z->maps[mi].present[i])
				munmap(z->maps[mi].addr + (size_t)i * z->ps, z->ps);
	for (int s = 0; s < NFD; s++)
		if (z->fds[s].fd >= 0)
			close(z->fds[s].fd);
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : def;
}

static void fuzz_run(struct __test_metadata *_metadata, int run)
{
	struct fuzz *z = calloc(1, sizeof(*z));
	struct sigaction sa = { .sa_handler = on_fault };
	char tally[LINE] = "";
	size_t n = 0;

	ASSERT_NE(NULL, z);
	z->md = _metadata;
	z->seed = env_u64("XGR_FUZZ_SEED", 1) + run;
	z->rng = z->seed;
	z->ops = env_u64("XGR_FUZZ_OPS", DEFAULT_OPS);
	z->budget = env_u64("XGR_FUZZ_SECONDS", DEFAULT_SECONDS);
	if (z->budget > MAX_SECONDS)
		z->budget = MAX_SECONDS;
	z->rust = is_rust();
	z->ps = page_size();
	z->frames = z->ps / XPAGE;
	ASSERT_LE(1, z->frames);
	ASSERT_GE(MAX_SPP, z->frames);
	z->slot = z->rust ? XPAGE : (uint64_t)z->ps;
	z->spp = z->ps / z->slot;
	z->limit = get_limit();
	ASSERT_LE(LIVE_CAP + MAX_ALLOC, z->limit) TH_LOG("the limit is too low for the fuzzer");
	z->touched = -1;
	for (int s = 0; s < NFD; s++)
		z->fds[s].fd = -1;
	if (z->rust) {
		long in_use = rust_stat("in_use"), deferred = rust_stat("deferred");

		z->base_rej = rust_stat("limit_rejections");
		z->base_full = rust_stat("table_full");
		z->counters = in_use >= 0 && deferred >= 0 && z->base_rej >= 0 && z->base_full >= 0;
		z->base_live = in_use - deferred;
		if (!z->counters)
			TH_LOG("no debugfs counters: not checking them");
	}
	for (int i = 0; i < NPORTS; i++) {
		struct port *p = &z->ports[z->nports];

		p->e.lfd = p->e.rfd = -1;
		p->owner = -1;
		if (evtchn_loop_open(&p->e)) {
			evtchn_loop_close(&p->e);
			TH_LOG("event channel %d: %s; SEND_EVENT only with a bad port", i,
			       strerror(errno));
			break;
		}
		z->nports++;
	}
	/* Binding marks a port pending: a straggler of that event must not count later. */
	for (int i = 0; i < z->nports; i++)
		port_events(&z->ports[i], 1, 100);
	ASSERT_EQ(0, pipe2(z->pipefd, O_NONBLOCK | O_CLOEXEC));
	sigemptyset(&sa.sa_mask);
	ASSERT_EQ(0, sigaction(SIGSEGV, &sa, NULL));
	ASSERT_EQ(0, sigaction(SIGBUS, &sa, NULL));

	clock_gettime(CLOCK_MONOTONIC, &z->t0);
	for (z->op = 0; z->op < z->ops && !z->failed; z->op++) {
		if (elapsed(&z->t0) > z->budget) {
			TH_LOG("time budget of %.0f s spent after %d operations", z->budget, z->op);
			break;
		}
		random_op(z);
		after_op(z);
	}
	z->ops_done = z->op;
	if (!z->failed)
		cleanup(z);
	else
		cleanup_raw(z);
	for (int i = 0; i < z->nports; i++)
		evtchn_loop_close(&z->ports[i].e);
	close(z->pipefd[0]);
	close(z->pipefd[1]);

	for (int i = 0; i < NR_OPS && n < sizeof(tally); i++)
		n += snprintf(tally + n, sizeof(tally) - n, "%s%s %d", i ? ", " : "", op_names[i],
			      z->done[i]);
	TH_LOG("seed %llu, %s module, %ld-byte pages: %d operations in %.1f s (+%d to clean up), %d skipped on the C reference (B1), %d notification events",
	       (unsigned long long)z->seed, z->rust ? "rust" : "c", z->ps, z->ops_done,
	       elapsed(&z->t0), z->op - z->ops_done, z->skipped, z->events);
	TH_LOG("operations: %s", tally);
	free(z);
}

/*
 * No state of its own: each run makes its files, mappings and ports and
 * leaves none behind. The limit is only read.
 */
FIXTURE(fuzz)
{
	long limit;
};

FIXTURE_SETUP(fuzz)
{
	self->limit = get_limit();
	ASSERT_LT(0, self->limit) TH_LOG("no gntalloc module loaded (%s)", module_under_test());
}

FIXTURE_TEARDOWN(fuzz)
{
	EXPECT_EQ(self->limit, get_limit());
}

/*
 * The runs stop themselves after XGR_FUZZ_SECONDS; even a stuck one ends well
 * within the runner's 10 minutes per program.
 */
TEST_F_TIMEOUT(fuzz, run_0, MAX_SECONDS + 50)
{
	fuzz_run(_metadata, 0);
}

TEST_F_TIMEOUT(fuzz, run_1, MAX_SECONDS + 50)
{
	fuzz_run(_metadata, 1);
}

TEST_F_TIMEOUT(fuzz, run_2, MAX_SECONDS + 50)
{
	fuzz_run(_metadata, 2);
}

TEST_HARNESS_MAIN
