// SPDX-License-Identifier: GPL-2.0
/*
 * Ours as upstream's drop-in replacement (built in, CONFIG_XEN_GNTALLOC_IMPL_RUST),
 * run by scripts/run-qemu --kernel dropin after the runner has written Qubes OS's
 * limit, 2^30, to /sys/module/xen_gntalloc/parameters/limit. The limit must be
 * honoured under upstream's name, both ways.
 */
#include "kselftest_harness.h"
#include "gntalloc_util.h"

/* The limit dom0's command line set (xen_gntalloc.limit=), see run-qemu. */
#define BOOT_LIMIT 4096

TEST(is_ours_under_upstream_name)
{
	EXPECT_STREQ("rust", module_under_test());
	EXPECT_STREQ("xen_gntalloc", module_sysname());
	EXPECT_STREQ("/sys/module/xen_gntalloc/parameters/limit", limit_path());
}

TEST(limit_is_honoured)
{
	int fd = open(GNTALLOC_DEV, O_RDWR);
	uint64_t index = 0;

	ASSERT_LE(0, fd);
	ASSERT_EQ(1L << 30, get_limit()) TH_LOG("the runner's write of 2^30 did not stick");
	/* More than the boot limit: the sysfs write raised it. */
	EXPECT_EQ(0, gnt_alloc(fd, BOOT_LIMIT + 904, 0, &index, NULL));
	EXPECT_EQ(BOOT_LIMIT + 904, rust_stat("in_use"));
	EXPECT_EQ(0, gnt_dealloc(fd, index, BOOT_LIMIT + 904));
	/* And lowered again: one more than the limit is refused. */
	ASSERT_EQ(0, set_limit(16));
	EXPECT_EQ(-ENOSPC, gnt_alloc(fd, 17, 0, NULL, NULL));
	EXPECT_EQ(0, gnt_alloc(fd, 16, 0, &index, NULL));
	EXPECT_EQ(-ENOSPC, gnt_alloc(fd, 1, 0, NULL, NULL));
	EXPECT_EQ(0, gnt_dealloc(fd, index, 16));
	ASSERT_EQ(0, set_limit(1L << 30));
	close(fd);
	EXPECT_EQ(0, rust_stat("in_use"));
}

TEST_HARNESS_MAIN
