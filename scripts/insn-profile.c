// SPDX-License-Identifier: GPL-2.0
/*
 * A QEMU TCG plugin for run-qemu --profile: counts the instructions executed
 * at kernel addresses (Xen's and dom0's, at or above `min`), by translated
 * block, but only while the guest is inside a profiling window. The window
 * opens when any vCPU executes the block at `on` and closes at `off`: the
 * addresses of gntalloc_bench's marker functions, which live alone in their
 * own section at a fixed address (see selftests/Makefile), so that no other
 * program runs code there.
 *
 * Arguments: on=ADDR,off=ADDR,min=ADDR,out=FILE (addresses in hex).
 * At exit, FILE gets one line per translated block that ran in a window:
 * "VADDR INSTRUCTIONS" (hex, decimal). A block translated more than once
 * has more than one line; scripts/insn-profile-report adds them up by symbol.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

struct block {
	uint64_t vaddr;
	uint64_t insns;		/* per execution */
	uint64_t execs;		/* inside a window; atomic */
	struct block *next;
};

static uint64_t on_addr, off_addr, min_addr;
static const char *out_path;
static int counting;		/* atomic */
static struct block *blocks;	/* every block translated at a kernel address */
static pthread_mutex_t blocks_lock = PTHREAD_MUTEX_INITIALIZER;

static void window_open(unsigned int vcpu, void *udata)
{
	__atomic_store_n(&counting, 1, __ATOMIC_RELAXED);
}

static void window_close(unsigned int vcpu, void *udata)
{
	__atomic_store_n(&counting, 0, __ATOMIC_RELAXED);
}

static void block_ran(unsigned int vcpu, void *udata)
{
	struct block *b = udata;

	if (__atomic_load_n(&counting, __ATOMIC_RELAXED))
		__atomic_add_fetch(&b->execs, 1, __ATOMIC_RELAXED);
}

static void translated(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	uint64_t vaddr = qemu_plugin_tb_vaddr(tb);
	struct block *b;

	if (vaddr == on_addr) {
		qemu_plugin_register_vcpu_tb_exec_cb(tb, window_open, QEMU_PLUGIN_CB_NO_REGS, NULL);
		return;
	}
	if (vaddr == off_addr) {
		qemu_plugin_register_vcpu_tb_exec_cb(tb, window_close, QEMU_PLUGIN_CB_NO_REGS, NULL);
		return;
	}
	if (vaddr < min_addr)
		return;
	b = calloc(1, sizeof(*b));
	if (!b)
		return;	/* that block goes uncounted; the report's total shows less */
	b->vaddr = vaddr;
	b->insns = qemu_plugin_tb_n_insns(tb);
	pthread_mutex_lock(&blocks_lock);
	b->next = blocks;
	blocks = b;
	pthread_mutex_unlock(&blocks_lock);
	qemu_plugin_register_vcpu_tb_exec_cb(tb, block_ran, QEMU_PLUGIN_CB_NO_REGS, b);
}

static void write_counts(qemu_plugin_id_t id, void *udata)
{
	FILE *f = fopen(out_path, "w");

	if (!f) {
		qemu_plugin_outs("insn-profile: cannot write the output file\n");
		return;
	}
	pthread_mutex_lock(&blocks_lock);
	for (struct block *b = blocks; b; b = b->next) {
		uint64_t execs = __atomic_load_n(&b->execs, __ATOMIC_RELAXED);

		if (execs)
			fprintf(f, "%" PRIx64 " %" PRIu64 "\n", b->vaddr, execs * b->insns);
	}
	pthread_mutex_unlock(&blocks_lock);
	fclose(f);
}

static int parse_addr(const char *arg, const char *key, uint64_t *val)
{
	size_t n = strlen(key);
	char *end;

	if (strncmp(arg, key, n) || arg[n] != '=')
		return 0;
	*val = strtoull(arg + n + 1, &end, 16);
	return *end == '\0' ? 1 : -1;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
					   int argc, char **argv)
{
	int seen = 0;

	for (int i = 0; i < argc; i++) {
		int r = parse_addr(argv[i], "on", &on_addr);

		if (!r)
			r = parse_addr(argv[i], "off", &off_addr);
		if (!r)
			r = parse_addr(argv[i], "min", &min_addr);
		if (!r && !strncmp(argv[i], "out=", 4)) {
			out_path = argv[i] + 4;
			r = 1;
		}
		if (r != 1) {
			fprintf(stderr, "insn-profile: bad argument '%s'\n", argv[i]);
			return -1;
		}
		seen++;
	}
	if (seen != 4 || !on_addr || !off_addr || !out_path) {
		fprintf(stderr, "insn-profile: needs on=,off=,min=,out=\n");
		return -1;
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, translated);
	qemu_plugin_register_atexit_cb(id, write_counts, NULL);
	return 0;
}
