// SPDX-License-Identifier: GPL-2.0
/*
 * fpu_integrity: do a process's vector registers survive context switches?
 *
 * Runner helper of the two-domain passes (scripts/xdom-init, scripts/xdom-guest-init).
 * Each of several processes loads every vector register with a value that names the
 * process, the round and the register, yields the CPU many times with the registers live
 * (sched_yield from inside one asm block, so that no compiler-generated code touches them),
 * then stores and compares them. Run in two domains at once, the rounds overlap with the
 * kernel's task switches and the hypervisor's vCPU switches. A register that comes back
 * with another value is a lost or foreign FPU context: the process whose value it is, if
 * any, is printed.
 *
 * Why this exists (issue 17): QEMU's TCG does not raise #NM for XSAVE, XSAVEOPT and XRSTOR
 * while CR0.TS is set; Xen switches the FPU lazily unless told `spec-ctrl=eager-fpu`, so a
 * PV kernel's XSAVEOPT saved, and its XRSTOR lost, whatever vCPU's registers were live,
 * and user processes of either domain read values they never wrote.
 *
 *   fpu_integrity [-p PROCESSES] [-t SECONDS] [-y YIELDS_PER_ROUND]
 *
 * Its last line is "fpu_integrity: P processes, R rounds, Y yields each, M registers wrong,
 * W processes failed"; it exits 1 unless M and W are 0 and R is not.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NREGS 16
#define REG_BYTES 16
#define REG_NAME "xmm"
#elif defined(__aarch64__)
#define NREGS 32
#define REG_BYTES 16
#define REG_NAME "v"
#else
#error "fpu_integrity: x86_64 or arm64"
#endif

#define TAG 0x46505549u /* "FPUI" */
#define MAX_REPORTS 8

struct reg {
	uint32_t tag;
	uint16_t worker;
	uint16_t index;
	uint64_t round;
};

_Static_assert(sizeof(struct reg) == REG_BYTES, "one register's value");

/* Counters shared by the workers and the parent. */
struct shared {
	uint64_t rounds;
	uint64_t wrong;
	unsigned int reports;
};

/*
 * Loads every vector register from @in, calls sched_yield @yields times, stores every
 * register to @out. Nothing but the syscall runs between the load and the store.
 */
static void round_trip(const struct reg *in, struct reg *out, unsigned long yields)
{
#if defined(__x86_64__)
	asm volatile("movdqu 0x00(%[in]), %%xmm0\n\t"
		     "movdqu 0x10(%[in]), %%xmm1\n\t"
		     "movdqu 0x20(%[in]), %%xmm2\n\t"
		     "movdqu 0x30(%[in]), %%xmm3\n\t"
		     "movdqu 0x40(%[in]), %%xmm4\n\t"
		     "movdqu 0x50(%[in]), %%xmm5\n\t"
		     "movdqu 0x60(%[in]), %%xmm6\n\t"
		     "movdqu 0x70(%[in]), %%xmm7\n\t"
		     "movdqu 0x80(%[in]), %%xmm8\n\t"
		     "movdqu 0x90(%[in]), %%xmm9\n\t"
		     "movdqu 0xa0(%[in]), %%xmm10\n\t"
		     "movdqu 0xb0(%[in]), %%xmm11\n\t"
		     "movdqu 0xc0(%[in]), %%xmm12\n\t"
		     "movdqu 0xd0(%[in]), %%xmm13\n\t"
		     "movdqu 0xe0(%[in]), %%xmm14\n\t"
		     "movdqu 0xf0(%[in]), %%xmm15\n\t"
		     "1:\n\t"
		     "mov $24, %%eax\n\t" /* __NR_sched_yield */
		     "syscall\n\t"
		     "dec %[n]\n\t"
		     "jnz 1b\n\t"
		     "movdqu %%xmm0, 0x00(%[out])\n\t"
		     "movdqu %%xmm1, 0x10(%[out])\n\t"
		     "movdqu %%xmm2, 0x20(%[out])\n\t"
		     "movdqu %%xmm3, 0x30(%[out])\n\t"
		     "movdqu %%xmm4, 0x40(%[out])\n\t"
		     "movdqu %%xmm5, 0x50(%[out])\n\t"
		     "movdqu %%xmm6, 0x60(%[out])\n\t"
		     "movdqu %%xmm7, 0x70(%[out])\n\t"
		     "movdqu %%xmm8, 0x80(%[out])\n\t"
		     "movdqu %%xmm9, 0x90(%[out])\n\t"
		     "movdqu %%xmm10, 0xa0(%[out])\n\t"
		     "movdqu %%xmm11, 0xb0(%[out])\n\t"
		     "movdqu %%xmm12, 0xc0(%[out])\n\t"
		     "movdqu %%xmm13, 0xd0(%[out])\n\t"
		     "movdqu %%xmm14, 0xe0(%[out])\n\t"
		     "movdqu %%xmm15, 0xf0(%[out])\n\t"
		     : [n] "+r"(yields)
		     : [in] "r"(in), [out] "r"(out)
		     : "rax", "rcx", "r11", "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4",
		       "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13",
		       "xmm14", "xmm15");
#elif defined(__aarch64__)
	asm volatile("ldp q0, q1, [%[in], #0]\n\t"
		     "ldp q2, q3, [%[in], #32]\n\t"
		     "ldp q4, q5, [%[in], #64]\n\t"
		     "ldp q6, q7, [%[in], #96]\n\t"
		     "ldp q8, q9, [%[in], #128]\n\t"
		     "ldp q10, q11, [%[in], #160]\n\t"
		     "ldp q12, q13, [%[in], #192]\n\t"
		     "ldp q14, q15, [%[in], #224]\n\t"
		     "ldp q16, q17, [%[in], #256]\n\t"
		     "ldp q18, q19, [%[in], #288]\n\t"
		     "ldp q20, q21, [%[in], #320]\n\t"
		     "ldp q22, q23, [%[in], #352]\n\t"
		     "ldp q24, q25, [%[in], #384]\n\t"
		     "ldp q26, q27, [%[in], #416]\n\t"
		     "ldp q28, q29, [%[in], #448]\n\t"
		     "ldp q30, q31, [%[in], #480]\n\t"
		     "1:\n\t"
		     "mov x8, #124\n\t" /* __NR_sched_yield */
		     "svc #0\n\t"
		     "subs %[n], %[n], #1\n\t"
		     "b.ne 1b\n\t"
		     "stp q0, q1, [%[out], #0]\n\t"
		     "stp q2, q3, [%[out], #32]\n\t"
		     "stp q4, q5, [%[out], #64]\n\t"
		     "stp q6, q7, [%[out], #96]\n\t"
		     "stp q8, q9, [%[out], #128]\n\t"
		     "stp q10, q11, [%[out], #160]\n\t"
		     "stp q12, q13, [%[out], #192]\n\t"
		     "stp q14, q15, [%[out], #224]\n\t"
		     "stp q16, q17, [%[out], #256]\n\t"
		     "stp q18, q19, [%[out], #288]\n\t"
		     "stp q20, q21, [%[out], #320]\n\t"
		     "stp q22, q23, [%[out], #352]\n\t"
		     "stp q24, q25, [%[out], #384]\n\t"
		     "stp q26, q27, [%[out], #416]\n\t"
		     "stp q28, q29, [%[out], #448]\n\t"
		     "stp q30, q31, [%[out], #480]\n\t"
		     : [n] "+r"(yields)
		     : [in] "r"(in), [out] "r"(out)
		     : "x0", "x8", "memory", "cc", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7",
		       "v8", "v9", "v10", "v11", "v12", "v13", "v14", "v15", "v16", "v17", "v18",
		       "v19", "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27", "v28", "v29",
		       "v30", "v31");
#endif
}

static void describe(char *buf, size_t len, const struct reg *r)
{
	if (r->tag == TAG)
		snprintf(buf, len, "process %u's %s%u of round %" PRIu64, r->worker, REG_NAME,
			 r->index, r->round);
	else
		snprintf(buf, len, "%016" PRIx64 "%016" PRIx64 " (no process's)",
			 ((const uint64_t *)r)[1], ((const uint64_t *)r)[0]);
}

static void worker(struct shared *sh, unsigned int id, time_t deadline, unsigned long yields)
{
	struct reg in[NREGS], out[NREGS];
	uint64_t round;

	for (round = 1; time(NULL) < deadline; round++) {
		for (unsigned int i = 0; i < NREGS; i++)
			in[i] = (struct reg){ .tag = TAG, .worker = id, .index = i, .round = round };
		memset(out, 0, sizeof(out));
		round_trip(in, out, yields);
		__atomic_add_fetch(&sh->rounds, 1, __ATOMIC_RELAXED);
		for (unsigned int i = 0; i < NREGS; i++) {
			char want[96], got[96];

			if (!memcmp(&in[i], &out[i], sizeof(in[i])))
				continue;
			__atomic_add_fetch(&sh->wrong, 1, __ATOMIC_RELAXED);
			if (__atomic_fetch_add(&sh->reports, 1, __ATOMIC_RELAXED) >= MAX_REPORTS)
				continue;
			describe(want, sizeof(want), &in[i]);
			describe(got, sizeof(got), &out[i]);
			printf("fpu_integrity: process %u (pid %d), round %" PRIu64 ": %s%u holds %s, "
			       "not %s\n",
			       id, getpid(), round, REG_NAME, i, got, want);
			fflush(stdout);
		}
	}
	exit(0);
}

int main(int argc, char **argv)
{
	unsigned long procs = 2, seconds = 10, yields = 64;
	struct shared *sh;
	time_t deadline;
	unsigned int failed = 0;
	int opt;

	while ((opt = getopt(argc, argv, "p:t:y:")) != -1) {
		switch (opt) {
		case 'p':
			procs = strtoul(optarg, NULL, 0);
			break;
		case 't':
			seconds = strtoul(optarg, NULL, 0);
			break;
		case 'y':
			yields = strtoul(optarg, NULL, 0);
			break;
		default:
			fprintf(stderr, "usage: %s [-p PROCESSES] [-t SECONDS] [-y YIELDS]\n", argv[0]);
			return 2;
		}
	}
	if (!procs || procs > 64 || !yields) {
		fprintf(stderr, "fpu_integrity: 1..64 processes, at least one yield\n");
		return 2;
	}
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("fpu_integrity: mmap");
		return 1;
	}
	memset(sh, 0, sizeof(*sh));
	setvbuf(stdout, NULL, _IOLBF, 0);
	deadline = time(NULL) + seconds;
	for (unsigned long i = 0; i < procs; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("fpu_integrity: fork");
			failed++;
			break;
		}
		if (pid == 0)
			worker(sh, i, deadline, yields);
	}
	for (;;) {
		int status;
		pid_t pid = wait(&status);

		if (pid < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			printf("fpu_integrity: worker pid %d ended with status %#x\n", pid, status);
			failed++;
		}
	}
	printf("fpu_integrity: %lu processes, %" PRIu64 " rounds, %lu yields each, %" PRIu64
	       " registers wrong, %u processes failed\n",
	       procs, sh->rounds, yields, sh->wrong, failed);
	return failed || sh->wrong || !sh->rounds ? 1 : 0;
}
