// SPDX-License-Identifier: GPL-2.0
/*
 * The guest's half of the two-domain tests: runs in the domU and does what
 * dom0's xdom_test asks through xenstore (see xdom.h), one command at a time,
 * with the module under test that the guest's init loaded:
 *
 *   hello                     -> ok DOMID PAGE_SIZE MODULE
 *   share ID N DOMID RW       -> ok REF... : N pages shared with DOMID through
 *                                the module (xengntshr_share_pages), filled
 *                                with side 1's bytes of share ID
 *   check ID WHO              -> share ID holds side WHO's bytes
 *   unshare ID                -> xengntshr_unshare
 *   map ID DOMID RW REF...    -> maps DOMID's grants (xengnttab), -> ok | err ERRNO
 *   mcheck ID WHO, mwrite ID WHO, unmap ID: the same for a mapping
 *   stats                     -> ok IN_USE DEFERRED (-1 -1 on the C reference)
 *   notify PORT               -> binds dom0's unbound PORT, then a child shares
 *                                one page with dom0 with the byte at offset 0
 *                                (0xa5) and that event as unmap notification,
 *                                and waits -> ok REF
 *   kill                      -> SIGKILLs that child (its file closes)
 *   vserver PEER PATH MIB SEED RING
 *                             -> a child serves a libxenvchan at xenstore PATH
 *                                for domain PEER (its rings of RING bytes granted
 *                                through the module), sends MIB MiB of stream
 *                                SEED, then receives MIB MiB of stream SEED+1
 *   vclient PEER PATH MIB SEED -> a child connects to PEER's libxenvchan at
 *                                PATH, receives stream SEED, sends SEED+1
 *   vwait                     -> waits for that child: ok SENT_SUM RECEIVED_SUM,
 *                                or err WHY
 *   vkill                     -> SIGKILLs that child mid-transfer
 *   galloc ID N DOMID RW      -> ok INDEX REF...: N grants for DOMID made with the
 *                                device's own ioctls on a file of their own, mapped
 *                                whole and filled with side 1's bytes of share ID
 *                                (grant k at offset k*4096, packed sixteen to a 64K
 *                                page by ours)
 *   gcheck ID WHO             -> that mapping holds side WHO's bytes
 *   gdealloc ID FIRST COUNT   -> DEALLOC of grants FIRST..FIRST+COUNT-1 (4K slots)
 *   gnotify ID SLOT OFF PORT  -> binds dom0's unbound PORT and arms SET_UNMAP_NOTIFY
 *                                (clear byte OFF of grant SLOT's frame, which it sets
 *                                to 0xa5 first, and send that event)
 *   gunmap ID, gclose ID      -> munmap that mapping; close the file (its release)
 *   reset                     -> ends whatever an earlier test left behind (shares,
 *                                mappings, files, children, bound ports): ok N, N
 *                                the things it ended
 *   exit
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <xenevtchn.h>

#include "xdom.h"

/*
 * A share, or a mapping of another domain's grants. On a kernel whose pages are bigger than
 * a grant, a mapping of several grants is one mapping per grant (`each`; `addr` is the
 * first): libxengnttab maps several grants with one mmap() of count * 4K (XC_PAGE_SIZE),
 * and gntdev, which gives each grant a kernel page of its own, refuses that length
 * (EINVAL); one grant at a time it supports.
 */
struct area {
	uint8_t *addr;
	unsigned int n;
	uint8_t **each;
};

/*
 * An allocation made with the device's ioctls directly, for what libxengnttab cannot ask:
 * DEALLOC of one 4K slot of a kernel page, a notification in a slot other than the first,
 * the file's release while dom0 still maps its grants.
 */
struct raw_alloc {
	int fd; /* -1: unused */
	uint64_t index;
	unsigned int n;
	uint8_t *map; /* all n grants, grant_span(n) bytes, or NULL once unmapped */
	int port;     /* the local port bound for its notification, or -1 */
};

static struct raw_alloc raws[32];
static struct xs_handle *xs;
static xengntshr_handle *gs;
static xengnttab_handle *gt;
static xenevtchn_handle *xce;
static struct area shares[256], maps[256];
static pid_t notifier = -1, vchan_child = -1;
static int vchan_result = -1; /* read end of the child's result pipe */

static const char *loaded_module(void)
{
	if (access("/sys/module/xen_gntalloc_rs", F_OK) == 0)
		return "rust";
	if (access("/sys/module/xen_gntalloc", F_OK) == 0)
		return "c";
	return "none";
}

/*
 * The child of vserver/vclient: one transfer each way over a libxenvchan
 * with PEER (the server sends first), its result written to fd as
 * "SENT_SUM RECEIVED_SUM" or the reason it failed.
 */
static int vchan_transfer(int server, int peer, const char *path, uint64_t bytes, uint64_t seed,
			  size_t ring, int fd)
{
	struct libxenvchan *v = NULL;
	uint64_t sent = 0, received = 0;
	char msg[200] = "";
	int rc = 1;

	if (server) {
		v = libxenvchan_server_init(NULL, peer, path, ring, ring);
	} else {
		/* The server may not have written its rings' refs yet. */
		for (int i = 0; i < 300 && !v; i++) {
			v = libxenvchan_client_init(NULL, peer, path);
			if (!v)
				usleep(100000);
		}
	}
	if (!v) {
		snprintf(msg, sizeof(msg), "%s_init: %s", server ? "server" : "client", strerror(errno));
	} else {
		v->blocking = 0;
		if (server && xdom_vchan_connected(v) < 0)
			snprintf(msg, sizeof(msg), "no client connected within 60 s");
		else if (server)
			rc = xdom_vchan_send(v, bytes, seed, &sent, msg, sizeof(msg)) ||
			     xdom_vchan_receive(v, bytes, seed + 1, &received, msg, sizeof(msg));
		else
			rc = xdom_vchan_receive(v, bytes, seed, &received, msg, sizeof(msg)) ||
			     xdom_vchan_send(v, bytes, seed + 1, &sent, msg, sizeof(msg));
		if (rc == 0)
			snprintf(msg, sizeof(msg), "%016llx %016llx", (unsigned long long)sent,
				 (unsigned long long)received);
		libxenvchan_close(v);
	}
	if (write(fd, msg, strlen(msg)) < 0)
		rc = 1;
	return rc;
}

/* Binds dom0's unbound port `remote_port`: the local port, or -1 with the reason in out. */
static xenevtchn_port_or_error_t bind_dom0_port(uint32_t remote_port, char *out, size_t len)
{
	xenevtchn_port_or_error_t port = xenevtchn_bind_interdomain(xce, 0, remote_port);

	if (port < 0)
		snprintf(out, len, "err bind_interdomain(0, %u): %s", remote_port, strerror(errno));
	return port;
}

static struct area *slot(struct area *table, const char *arg)
{
	unsigned long id = strtoul(arg ? arg : "", NULL, 0);

	return id < 256 ? &table[id] : NULL;
}

static struct raw_alloc *raw_slot(const char *arg)
{
	unsigned long id = strtoul(arg ? arg : "", NULL, 0);

	return id < sizeof(raws) / sizeof(raws[0]) ? &raws[id] : NULL;
}

/* Unmaps and closes r and unbinds its port: the number of those it had (0 if unused). */
static int raw_end(struct raw_alloc *r)
{
	int ended = 0;

	if (r->map) {
		munmap(r->map, grant_span(r->n));
		r->map = NULL;
		ended++;
	}
	if (r->fd >= 0) {
		close(r->fd);
		r->fd = -1;
		ended++;
	}
	if (r->port >= 0) {
		xenevtchn_unbind(xce, r->port);
		r->port = -1;
		ended++;
	}
	return ended;
}

/* The raw allocation verbs (galloc, gcheck, gdealloc, gnotify, gunmap, gclose). */
static void handle_raw(const char *verb, struct raw_alloc *r, unsigned int id, char **save,
		       char *out, size_t len)
{
	char msg[160];

	if (!r) {
		snprintf(out, len, "err no such allocation");
	} else if (strcmp(verb, "galloc") == 0) {
		unsigned int n = strtoul(strtok_r(NULL, " ", save) ?: "0", NULL, 0);
		uint16_t domid = strtoul(strtok_r(NULL, " ", save) ?: "0", NULL, 0);
		int rw = atoi(strtok_r(NULL, " ", save) ?: "1"), err, off;
		uint32_t refs[XDOM_MAX_PAGES];
		void *p;

		if (r->fd >= 0 || n == 0 || n > XDOM_MAX_PAGES) {
			snprintf(out, len, "err bad galloc request");
			return;
		}
		r->fd = open(GNTALLOC_DEV, O_RDWR | O_CLOEXEC);
		if (r->fd < 0) {
			snprintf(out, len, "err open: %s", strerror(errno));
			return;
		}
		err = gnt_alloc_for(r->fd, domid, n, rw ? GNTALLOC_FLAG_WRITABLE : 0, &r->index, refs);
		p = err ? MAP_FAILED : gnt_map(r->fd, r->index, grant_span(n));
		if (p == MAP_FAILED) {
			snprintf(out, len, "err %s: %s", err ? "ALLOC" : "mmap", strerror(err ? -err : errno));
			raw_end(r);
			return;
		}
		r->map = p;
		r->n = n;
		xdom_fill(r->map, 1, id, 0, n);
		off = snprintf(out, len, "ok %llu", (unsigned long long)r->index);
		for (unsigned int k = 0; k < n && off < (int)len; k++)
			off += snprintf(out + off, len - off, " %u", refs[k]);
	} else if (r->fd < 0) {
		snprintf(out, len, "err no such allocation");
	} else if (strcmp(verb, "gcheck") == 0) {
		int who = atoi(strtok_r(NULL, " ", save) ?: "0");

		if (!r->map)
			snprintf(out, len, "err not mapped");
		else if (xdom_check(r->map, who, id, 0, r->n, msg, sizeof(msg)))
			snprintf(out, len, "err %s", msg);
		else
			snprintf(out, len, "ok");
	} else if (strcmp(verb, "gdealloc") == 0) {
		unsigned int first = strtoul(strtok_r(NULL, " ", save) ?: "0", NULL, 0);
		unsigned int count = strtoul(strtok_r(NULL, " ", save) ?: "0", NULL, 0);
		int err = gnt_dealloc(r->fd, r->index + first * XDOM_PAGE, count);

		snprintf(out, len, err ? "err DEALLOC: %s" : "ok", strerror(-err));
	} else if (strcmp(verb, "gnotify") == 0) {
		unsigned int slot = strtoul(strtok_r(NULL, " ", save) ?: "0", NULL, 0);
		unsigned int off = strtoul(strtok_r(NULL, " ", save) ?: "0", NULL, 0);
		uint32_t remote_port = strtoul(strtok_r(NULL, " ", save) ?: "", NULL, 0);
		xenevtchn_port_or_error_t port;
		int err;

		if (r->port >= 0 || slot >= r->n || off >= XDOM_PAGE) {
			snprintf(out, len, "err bad gnotify request");
			return;
		}
		port = bind_dom0_port(remote_port, out, len);
		if (port < 0)
			return;
		r->port = port;
		if (r->map)
			r->map[slot * XDOM_PAGE + off] = 0xa5;
		err = gnt_notify(r->fd, r->index + slot * XDOM_PAGE + off,
				 UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT, port);
		snprintf(out, len, err ? "err SET_UNMAP_NOTIFY: %s" : "ok", strerror(-err));
	} else if (strcmp(verb, "gunmap") == 0) {
		if (!r->map || munmap(r->map, grant_span(r->n))) {
			snprintf(out, len, "err munmap: %s", r->map ? strerror(errno) : "not mapped");
			return;
		}
		r->map = NULL;
		snprintf(out, len, "ok");
	} else { /* gclose: the port stays bound until reset, for an event still on its way */
		if (r->map)
			munmap(r->map, grant_span(r->n));
		r->map = NULL;
		close(r->fd);
		r->fd = -1;
		snprintf(out, len, "ok");
	}
}

/* Ends what earlier tests left behind: the number of things ended. */
static int reset(void)
{
	int ended = 0;

	for (unsigned int i = 0; i < 256; i++) {
		if (shares[i].addr) {
			xengntshr_unshare(gs, shares[i].addr, shares[i].n);
			shares[i].addr = NULL;
			ended++;
		}
		if (maps[i].addr) {
			if (maps[i].each)
				xdom_unmap_each(gt, maps[i].each, maps[i].n);
			else
				xengnttab_unmap(gt, maps[i].addr, maps[i].n);
			maps[i].addr = NULL;
			maps[i].each = NULL;
			ended++;
		}
	}
	for (unsigned int i = 0; i < sizeof(raws) / sizeof(raws[0]); i++)
		ended += raw_end(&raws[i]);
	if (notifier > 0) {
		kill(notifier, SIGKILL);
		waitpid(notifier, NULL, 0);
		notifier = -1;
		ended++;
	}
	if (vchan_child > 0) {
		kill(vchan_child, SIGKILL);
		waitpid(vchan_child, NULL, 0);
		close(vchan_result);
		vchan_child = vchan_result = -1;
		ended++;
	}
	return ended;
}

static void handle(char *line, char *out, size_t len)
{
	char *save = NULL, *verb = strtok_r(line, " ", &save);
	char *a1 = strtok_r(NULL, " ", &save);
	char msg[160];

	if (!verb) {
		snprintf(out, len, "err empty command");
	} else if (strcmp(verb, "hello") == 0) {
		char *dom = xs_read(xs, XBT_NULL, "domid", NULL);

		snprintf(out, len, "ok %s %ld %s", dom ? dom : "?", sysconf(_SC_PAGESIZE),
			 loaded_module());
		free(dom);
	} else if (strcmp(verb, "share") == 0) {
		struct area *s = slot(shares, a1);
		unsigned int n = strtoul(strtok_r(NULL, " ", &save) ?: "0", NULL, 0);
		uint32_t domid = strtoul(strtok_r(NULL, " ", &save) ?: "0", NULL, 0);
		int rw = atoi(strtok_r(NULL, " ", &save) ?: "1");
		uint32_t refs[XDOM_MAX_PAGES];
		int off;

		if (!s || s->addr || n == 0 || n > XDOM_MAX_PAGES) {
			snprintf(out, len, "err bad share request");
			return;
		}
		s->addr = xengntshr_share_pages(gs, domid, n, refs, rw);
		if (!s->addr) {
			snprintf(out, len, "err %d share_pages: %s", errno, strerror(errno));
			return;
		}
		s->n = n;
		xdom_fill(s->addr, 1, atoi(a1), 0, n);
		off = snprintf(out, len, "ok");
		for (unsigned int k = 0; k < n && off < (int)len; k++)
			off += snprintf(out + off, len - off, " %u", refs[k]);
	} else if (strcmp(verb, "check") == 0 || strcmp(verb, "mcheck") == 0) {
		struct area *s = slot(verb[0] == 'm' ? maps : shares, a1);
		int who = atoi(strtok_r(NULL, " ", &save) ?: "0");
		int bad = 0;

		if (!s || !s->addr) {
			snprintf(out, len, "err no such area");
			return;
		}
		if (!s->each)
			bad = xdom_check(s->addr, who, atoi(a1), 0, s->n, msg, sizeof(msg));
		for (unsigned int k = 0; s->each && k < s->n && !bad; k++)
			bad = xdom_check(s->each[k], who, atoi(a1), k, 1, msg, sizeof(msg));
		if (bad)
			snprintf(out, len, "err %s", msg);
		else
			snprintf(out, len, "ok");
	} else if (strcmp(verb, "mwrite") == 0) {
		struct area *s = slot(maps, a1);
		int who = atoi(strtok_r(NULL, " ", &save) ?: "0");

		if (!s || !s->addr) {
			snprintf(out, len, "err no such mapping");
			return;
		}
		if (!s->each)
			xdom_fill(s->addr, who, atoi(a1), 0, s->n);
		for (unsigned int k = 0; s->each && k < s->n; k++)
			xdom_fill(s->each[k], who, atoi(a1), k, 1);
		snprintf(out, len, "ok");
	} else if (strcmp(verb, "unshare") == 0) {
		struct area *s = slot(shares, a1);

		if (!s || !s->addr) {
			snprintf(out, len, "err no such share");
			return;
		}
		if (xengntshr_unshare(gs, s->addr, s->n))
			snprintf(out, len, "err unshare: %s", strerror(errno));
		else
			snprintf(out, len, "ok");
		s->addr = NULL;
	} else if (strcmp(verb, "map") == 0) {
		struct area *s = slot(maps, a1);
		uint32_t domid = strtoul(strtok_r(NULL, " ", &save) ?: "0", NULL, 0);
		int rw = atoi(strtok_r(NULL, " ", &save) ?: "1");
		uint32_t refs[XDOM_MAX_PAGES];
		unsigned int n = 0;
		char *r;

		while (n < XDOM_MAX_PAGES && (r = strtok_r(NULL, " ", &save)))
			refs[n++] = strtoul(r, NULL, 0);
		if (!s || s->addr || n == 0) {
			snprintf(out, len, "err bad map request");
			return;
		}
		if (n > 1 && sysconf(_SC_PAGESIZE) != XDOM_PAGE) {
			s->each = xdom_map_each(gt, domid, refs, n, PROT_READ | (rw ? PROT_WRITE : 0));
			s->addr = s->each ? s->each[0] : NULL;
		} else {
			s->addr = xengnttab_map_domain_grant_refs(gt, n, domid, refs,
								  PROT_READ | (rw ? PROT_WRITE : 0));
		}
		if (!s->addr) {
			snprintf(out, len, "err %d map: %s", errno, strerror(errno));
			return;
		}
		s->n = n;
		snprintf(out, len, "ok");
	} else if (strcmp(verb, "unmap") == 0) {
		struct area *s = slot(maps, a1);

		if (!s || !s->addr) {
			snprintf(out, len, "err no such mapping");
			return;
		}
		if (s->each ? xdom_unmap_each(gt, s->each, s->n) : xengnttab_unmap(gt, s->addr, s->n))
			snprintf(out, len, "err unmap: %s", strerror(errno));
		else
			snprintf(out, len, "ok");
		s->addr = NULL;
		s->each = NULL;
	} else if (strcmp(verb, "stats") == 0) {
		snprintf(out, len, "ok %ld %ld", rust_stat("in_use"), rust_stat("deferred"));
	} else if (strcmp(verb, "notify") == 0) {
		uint32_t remote_port = strtoul(a1 ? a1 : "", NULL, 0);
		int pipefd[2];
		xenevtchn_port_or_error_t port;
		uint32_t ref = 0;

		if (notifier > 0 || pipe(pipefd)) {
			snprintf(out, len, "err a notifier already runs");
			return;
		}
		port = bind_dom0_port(remote_port, out, len);
		if (port < 0)
			return;
		notifier = fork();
		if (notifier == 0) {
			/* Its own handle: the share dies with this process (SIGKILL). */
			xengntshr_handle *mine = xengntshr_open(NULL, 0);
			uint8_t *p = mine ? xengntshr_share_page_notify(mine, 0, &ref, 1, 0, port) : NULL;

			if (p)
				p[0] = 0xa5, p[1] = 0x5a;
			if (write(pipefd[1], &ref, sizeof(ref)) != sizeof(ref) || !p)
				_exit(1);
			for (;;)
				pause();
		}
		close(pipefd[1]);
		if (notifier < 0 || read(pipefd[0], &ref, sizeof(ref)) != sizeof(ref) || ref == 0)
			snprintf(out, len, "err notifier could not share");
		else
			snprintf(out, len, "ok %u", ref);
		close(pipefd[0]);
	} else if (strcmp(verb, "vserver") == 0 || strcmp(verb, "vclient") == 0) {
		int peer = atoi(a1 ? a1 : "0"), pipefd[2];
		char *path = strtok_r(NULL, " ", &save);
		uint64_t bytes = strtoull(strtok_r(NULL, " ", &save) ?: "0", NULL, 0) << 20;
		uint64_t seed = strtoull(strtok_r(NULL, " ", &save) ?: "0", NULL, 0);
		size_t ring = strtoul(strtok_r(NULL, " ", &save) ?: "0", NULL, 0);

		if (verb[1] == 's' && (ring == 0 || ring > XDOM_VCHAN_RING)) {
			snprintf(out, len, "err bad ring size");
			return;
		}
		if (vchan_child > 0 || !path || pipe(pipefd)) {
			snprintf(out, len, "err a transfer already runs, or no path");
			return;
		}
		vchan_child = fork();
		if (vchan_child == 0) {
			close(pipefd[0]);
			_exit(vchan_transfer(verb[1] == 's', peer, path, bytes, seed, ring, pipefd[1]));
		}
		close(pipefd[1]);
		vchan_result = pipefd[0];
		snprintf(out, len, vchan_child > 0 ? "ok" : "err fork");
	} else if (strcmp(verb, "vwait") == 0 || strcmp(verb, "vkill") == 0) {
		char res[256];
		ssize_t n;
		int status = 0;

		if (vchan_child <= 0) {
			snprintf(out, len, "err no transfer");
			return;
		}
		if (verb[1] == 'k')
			kill(vchan_child, SIGKILL);
		waitpid(vchan_child, &status, 0);
		n = read(vchan_result, res, sizeof(res) - 1);
		res[n > 0 ? n : 0] = '\0';
		close(vchan_result);
		vchan_child = vchan_result = -1;
		if (verb[1] == 'k')
			snprintf(out, len, "ok killed");
		else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			snprintf(out, len, "ok %s", res);
		else
			snprintf(out, len, "err status %#x: %s", status, res);
	} else if (strcmp(verb, "sweep") == 0) {
		/* Every free page allocated once: page poisoning checks each (poison_sweep.c). */
		FILE *p = popen("/poison_sweep", "r");
		char line[128] = "";
		int status = -1;

		if (p) {
			if (!fgets(line, sizeof(line), p))
				line[0] = '\0';
			status = pclose(p);
		}
		line[strcspn(line, "\n")] = '\0';
		snprintf(out, len, "%s %s", status == 0 ? "ok" : "err", line);
	} else if (strcmp(verb, "kmemleak") == 0) {
		/*
		 * Objects the module under test allocated that nothing references any
		 * more: "ok N" with N the backtrace lines naming it. Two scans, 6 s
		 * after the last test: kmemleak reports an object only once it has
		 * been seen unreferenced twice and is older than 5 s.
		 */
		char tag[64], line[256];
		int found = 0;
		FILE *f;

		snprintf(tag, sizeof(tag), "[%s]", module_sysname());
		sleep(6);
		for (int i = 0; i < 2; i++) {
			f = fopen("/sys/kernel/debug/kmemleak", "w");
			if (!f || fputs("scan", f) < 0 || fclose(f)) {
				snprintf(out, len, "err kmemleak scan: %s", strerror(errno));
				return;
			}
		}
		f = fopen("/sys/kernel/debug/kmemleak", "r");
		if (!f) {
			snprintf(out, len, "err kmemleak: %s", strerror(errno));
			return;
		}
		while (fgets(line, sizeof(line), f)) {
			if (strstr(line, tag)) {
				found++;
				/* The report goes to the guest's console, which the host keeps. */
				fprintf(stderr, "xgr-guest: kmemleak: %s", line);
			}
		}
		fclose(f);
		snprintf(out, len, "ok %d", found);
	} else if (verb[0] == 'g' && (strcmp(verb, "galloc") == 0 || strcmp(verb, "gcheck") == 0 ||
				      strcmp(verb, "gdealloc") == 0 || strcmp(verb, "gnotify") == 0 ||
				      strcmp(verb, "gunmap") == 0 || strcmp(verb, "gclose") == 0)) {
		handle_raw(verb, raw_slot(a1), atoi(a1 ?: "0"), &save, out, len);
	} else if (strcmp(verb, "reset") == 0) {
		snprintf(out, len, "ok %d", reset());
	} else if (strcmp(verb, "kill") == 0) {
		if (notifier <= 0) {
			snprintf(out, len, "err no notifier");
			return;
		}
		kill(notifier, SIGKILL);
		waitpid(notifier, NULL, 0);
		notifier = -1;
		snprintf(out, len, "ok");
	} else {
		snprintf(out, len, "err unknown verb %s", verb);
	}
}

int main(void)
{
	char last[32] = "", out[1024];

	for (unsigned int i = 0; i < sizeof(raws) / sizeof(raws[0]); i++)
		raws[i].fd = raws[i].port = -1;
	xs = xs_open(0);
	gt = xengnttab_open(NULL, 0);
	xce = xenevtchn_open(NULL, 0);
	gs = xengntshr_open(NULL, 0);
	if (!xs || !gt || !xce || !gs) {
		fprintf(stderr, "xdom_agent: cannot open xenstore, gntdev, evtchn or gntalloc: %s\n",
			strerror(errno));
		return 1;
	}
	if (!xs_write(xs, XBT_NULL, XDOM_DIR "/cmd", "", 0) ||
	    !xs_write(xs, XBT_NULL, XDOM_DIR "/resp", "", 0) ||
	    !xs_write(xs, XBT_NULL, XDOM_DIR "/ready", "1", 1)) {
		fprintf(stderr, "xdom_agent: cannot write %s: %s\n", XDOM_DIR, strerror(errno));
		return 1;
	}
	printf("xdom_agent: ready\n");
	fflush(stdout);
	for (;;) {
		unsigned int n;
		char *cmd = xs_read(xs, XBT_NULL, XDOM_DIR "/cmd", &n), *sp;

		if (!cmd || n == 0 || !(sp = strchr(cmd, ' ')) || (size_t)(sp - cmd) >= sizeof(last) ||
		    (strncmp(cmd, last, sp - cmd) == 0 && last[sp - cmd] == '\0')) {
			free(cmd);
			usleep(5000);
			continue;
		}
		*sp = '\0';
		snprintf(last, sizeof(last), "%s", cmd);
		printf("xdom_agent: %s %s\n", cmd, sp + 1);
		int off = snprintf(out, sizeof(out), "%s ", cmd);
		int quit = strcmp(sp + 1, "exit") == 0;

		if (quit)
			snprintf(out + off, sizeof(out) - off, "ok");
		else
			handle(sp + 1, out + off, sizeof(out) - off);
		printf("xdom_agent: -> %s\n", out);
		fflush(stdout);
		free(cmd);
		if (!xs_write(xs, XBT_NULL, XDOM_DIR "/resp", out, strlen(out)))
			fprintf(stderr, "xdom_agent: cannot write resp: %s\n", strerror(errno));
		if (quit)
			return 0;
	}
}
